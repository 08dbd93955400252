/*
 * pvsched: the per-VM policy object (-object pvsched-policy)
 *
 * The properties describe what "boosted" means.  On completion, and on
 * every change after it, they are validated as a whole (including whether
 * this process may use them at all) and published as an immutable
 * snapshot that vCPU threads read under RCU.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qapi/qapi-types-pvsched.h"
#include "qemu/rcu.h"
#include "qemu/timer.h"
#include "qom/object_interfaces.h"
#include "qemu/notify.h"
#include "system/system.h"
#ifdef CONFIG_SECCOMP
#include "system/seccomp.h"
#endif
#include "pvsched/emulator.h"
#include "pvsched/policy.h"
#include "trace.h"

#define DEFAULT_BOOST_PRIORITY  1
#define DEFAULT_MAX_BOOST_US    3000    /* as in the KVM RFC */
/* 3 ms boosted then 27 ms throttled: at most 10% of a CPU taken by force. */
#define DEFAULT_COOLDOWN_US     27000
#define MAX_US                  (1000 * 1000 * 1000)
#define DEFAULT_BOOST_NICE      (-10)
/* 20% of a CPU, granted within each 10 ms */
#define DEFAULT_DL_RUNTIME_US   2000
#define DEFAULT_DL_PERIOD_US    10000
/*
 * An emulator thread with emulator-class=deadline: half a CPU, granted
 * within each 10 ms.  Enough for the I/O of a busy VM, and a guest that
 * drives it without pause leaves the other half of that CPU to the host.
 */
#define DEFAULT_EMU_RUNTIME_US  5000
#define DEFAULT_EMU_PERIOD_US   10000
/* Where emulator_rank() puts SCHED_DEADLINE: above every FIFO priority. */
#define EMULATOR_RANK_DEADLINE  100

typedef struct PvschedPolicySnapshot {
    struct rcu_head rcu;
    PvschedBoostConfig cfg;
} PvschedPolicySnapshot;

typedef struct PvschedPolicySettings {
    PvschedMode mode;
    PvschedBoostClass boost_class;
    uint32_t boost_priority;
    uint32_t max_boost_us;
    uint32_t cooldown_us;
    uint32_t emulator_priority;     /* 0: boost-priority + 1 */
    uint32_t iothread_priority;     /* 0: emulator-priority */
    PvschedEmulatorClass emulator_class;
    uint32_t emu_runtime_us;        /* emulator-class deadline */
    uint32_t emu_period_us;
    uint32_t priority_ceiling;      /* 0 until creation: rt_need() */
    int32_t boost_nice;             /* class other */
    uint32_t dl_runtime_us;         /* class deadline */
    uint32_t dl_deadline_us;
    uint32_t dl_period_us;
    uint32_t util_min;              /* class uclamp */
    uint32_t util_max;
} PvschedPolicySettings;

struct PvschedPolicy {
    Object parent_obj;

    Notifier machine_done;          /* every -object exists by then */
    PvschedPolicySettings set;      /* the properties; BQL */
    bool complete;
    PvschedPolicySnapshot *snap;    /* what vCPUs read; RCU */
    NotifierList changed;           /* run-time changes; BQL */
};

static bool is_rt_class(const PvschedPolicySettings *pol)
{
    return pol->boost_class == PVSCHED_BOOST_CLASS_FIFO ||
           pol->boost_class == PVSCHED_BOOST_CLASS_RR;
}

/* In 64 bits: the properties take up to MAX_US, 1000 s. */
static int64_t us_to_ns(uint32_t us)
{
    return (int64_t)us * SCALE_US;
}

/* SCHED_DEADLINE with these parameters, in microseconds. */
static PvschedSchedAttr dl_attr(uint32_t runtime_us, uint32_t deadline_us,
                                uint32_t period_us)
{
    return (PvschedSchedAttr) {
        .policy = PVSCHED_SCHED_DEADLINE,
        .runtime = us_to_ns(runtime_us),
        .deadline = us_to_ns(deadline_us),
        .period = us_to_ns(period_us),
    };
}

/*
 * What the kernel's admission needs of the parameters alone; @params
 * names them as the user wrote them.
 */
static bool dl_check(const char *params, uint32_t runtime_us,
                     uint32_t deadline_us, uint32_t period_us, Error **errp)
{
    if (runtime_us <= deadline_us && deadline_us <= period_us) {
        return true;
    }
    error_setg(errp, "pvsched-policy: %s: SCHED_DEADLINE needs runtime <= "
               "deadline <= period", params);
    return false;
}

/* What a boost applies to a vCPU thread, for each class. */
static PvschedSchedAttr policy_boost_attr(const PvschedPolicySettings *pol)
{
    switch (pol->boost_class) {
    case PVSCHED_BOOST_CLASS_FIFO:
    case PVSCHED_BOOST_CLASS_RR:
        return (PvschedSchedAttr) {
            .policy = pol->boost_class == PVSCHED_BOOST_CLASS_FIFO ?
                      SCHED_FIFO : SCHED_RR,
            .priority = pol->boost_priority,
        };
    case PVSCHED_BOOST_CLASS_OTHER:
        return (PvschedSchedAttr) { .policy = SCHED_OTHER,
                                    .nice = pol->boost_nice };
    case PVSCHED_BOOST_CLASS_DEADLINE:
        return dl_attr(pol->dl_runtime_us, pol->dl_deadline_us,
                       pol->dl_period_us);
    default:
        /* uclamp: the thread keeps its class, only its clamps move. */
        return (PvschedSchedAttr) {
            .flags = PVSCHED_FLAG_KEEP_ALL | PVSCHED_FLAG_UTIL_CLAMP,
            .util_min = pol->util_min,
            .util_max = pol->util_max,
        };
    }
}

static PvschedBoostConfig policy_to_config(const PvschedPolicySettings *pol)
{
    static const PvschedStateMode modes[] = {
        [PVSCHED_MODE_DYNAMIC] = PVSCHED_STATE_DYNAMIC,
        [PVSCHED_MODE_STATIC] = PVSCHED_STATE_STATIC,
        [PVSCHED_MODE_OFF] = PVSCHED_STATE_OFF,
    };
    PvschedBoostConfig cfg = {
        .mode = modes[pol->mode],
        .max_boost_ns = us_to_ns(pol->max_boost_us),
        .cooldown_ns = us_to_ns(pol->cooldown_us),
    };

    /* The bound polices what a guest asks for; static is the host's call. */
    if (pol->mode == PVSCHED_MODE_STATIC) {
        cfg.max_boost_ns = 0;
    }
    cfg.boost = policy_boost_attr(pol);
    return cfg;
}

static bool have_cap_sys_nice(void)
{
    struct __user_cap_header_struct hdr = {
        .version = _LINUX_CAPABILITY_VERSION_3,
    };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { };

    if (syscall(SYS_capget, &hdr, data) < 0) {
        return false;
    }
    return data[CAP_TO_INDEX(CAP_SYS_NICE)].effective &
           CAP_TO_MASK(CAP_SYS_NICE);
}

static uint32_t emulator_priority(const PvschedPolicySettings *pol)
{
    return pol->emulator_priority ?: pol->boost_priority + 1;
}

static uint32_t iothread_priority(const PvschedPolicySettings *pol)
{
    return pol->iothread_priority ?: emulator_priority(pol);
}

/* Whether the emulator threads take a SCHED_FIFO priority. */
static bool emulator_fifo(const PvschedPolicySettings *pol)
{
    return pol->emulator_class == PVSCHED_EMULATOR_CLASS_FIFO;
}

/* The highest real-time priority the settings give any thread. */
static uint32_t rt_need(const PvschedPolicySettings *pol)
{
    if (!is_rt_class(pol)) {
        return 0;
    }
    if (!emulator_fifo(pol)) {
        return pol->boost_priority;
    }
    return MAX(pol->boost_priority,
               MAX(emulator_priority(pol), iothread_priority(pol)));
}

static bool policy_check_class(const PvschedPolicySettings *pol,
                               Error **errp)
{
    if (pol->boost_class == PVSCHED_BOOST_CLASS_DEADLINE) {
        g_autofree char *params =
            g_strdup_printf("deadline-runtime-us=%u, deadline-deadline-us=%u, "
                            "deadline-period-us=%u", pol->dl_runtime_us,
                            pol->dl_deadline_us, pol->dl_period_us);

        if (!dl_check(params, pol->dl_runtime_us, pol->dl_deadline_us,
                      pol->dl_period_us, errp)) {
            return false;
        }
    }
    if (pol->emulator_class == PVSCHED_EMULATOR_CLASS_DEADLINE) {
        g_autofree char *params =
            g_strdup_printf("emulator-runtime-us=%u, emulator-period-us=%u",
                            pol->emu_runtime_us, pol->emu_period_us);

        /* The deadline is the period. */
        if (!dl_check(params, pol->emu_runtime_us, pol->emu_period_us,
                      pol->emu_period_us, errp)) {
            return false;
        }
    }
    if (pol->boost_class == PVSCHED_BOOST_CLASS_UCLAMP &&
        pol->util_min > pol->util_max) {
        error_setg(errp, "pvsched-policy: util-min=%u is above util-max=%u",
                   pol->util_min, pol->util_max);
        return false;
    }
    if (pol->boost_class == PVSCHED_BOOST_CLASS_UCLAMP) {
        int ret = pvsched_uclamp_probe();

        if (ret < 0) {
            error_setg_errno(errp, -ret, "pvsched-policy: boost-class=uclamp "
                             "needs a host kernel with utilization clamping "
                             "(CONFIG_UCLAMP_TASK), and this one refuses it");
            error_append_hint(errp, "Use another boost-class on this "
                              "host.\n");
            return false;
        }
    }
    return true;
}

static bool policy_check_order(const PvschedPolicySettings *pol,
                               Error **errp)
{
    uint32_t emu = emulator_priority(pol);

    /* SCHED_DEADLINE runs above every priority. */
    if (!is_rt_class(pol) || !emulator_fifo(pol)) {
        return true;
    }
    if (emu > 99) {
        error_setg(errp, "pvsched-policy: boost-priority=%u leaves no room "
                   "for the emulator thread above it", pol->boost_priority);
        error_append_hint(errp, "Use a boost-priority of at most 98.\n");
        return false;
    }
    if (emu <= pol->boost_priority) {
        error_setg(errp, "pvsched-policy: emulator-priority=%u must be above "
                   "boost-priority=%u: the emulator thread wakes and polices "
                   "boosted vCPUs", emu, pol->boost_priority);
        return false;
    }
    if (iothread_priority(pol) <= pol->boost_priority) {
        error_setg(errp, "pvsched-policy: iothread-priority=%u must be above "
                   "boost-priority=%u: I/O threads wake boosted vCPUs",
                   iothread_priority(pol), pol->boost_priority);
        return false;
    }
    return true;
}

/*
 * The ceiling QEMU set on its RLIMIT_RTPRIO at creation cannot be raised
 * again without CAP_SYS_RESOURCE: refuse what would need more, and any
 * change of the ceiling itself.
 */
static bool policy_check_ceiling(const PvschedPolicy *pol,
                                 const PvschedPolicySettings *want,
                                 Error **errp)
{
    uint32_t ceiling = want->priority_ceiling;

    if (pol->complete && ceiling != pol->set.priority_ceiling) {
        error_setg(errp, "pvsched-policy: priority-ceiling is fixed at %u "
                   "since the object was created", pol->set.priority_ceiling);
        return false;
    }
    if (ceiling && rt_need(want) > ceiling) {
        error_setg(errp, "pvsched-policy: a thread would run at real-time "
                   "priority %u, above priority-ceiling=%u", rt_need(want),
                   ceiling);
        error_append_hint(errp, "Keep boost-priority, emulator-priority and "
                          "iothread-priority at most %u, or create the "
                          "object with a higher priority-ceiling.\n",
                          ceiling);
        return false;
    }
    return true;
}

/*
 * Refuse at start-up what would fail at the first boost: a boost that
 * silently does nothing is worse than no boost.
 */
static bool policy_check_permission(const PvschedPolicySettings *pol,
                                    Error **errp)
{
    uint32_t need = MAX(emulator_priority(pol), iothread_priority(pol));
    struct rlimit rl;

    if (pol->mode == PVSCHED_MODE_OFF || have_cap_sys_nice()) {
        return true;
    }
    if (pol->boost_class == PVSCHED_BOOST_CLASS_DEADLINE) {
        error_setg(errp, "pvsched-policy: boost-class=deadline needs "
                   "CAP_SYS_NICE, and QEMU does not have it");
        return false;
    }
    if (is_rt_class(pol) &&
        pol->emulator_class == PVSCHED_EMULATOR_CLASS_DEADLINE) {
        error_setg(errp, "pvsched-policy: emulator-class=deadline needs "
                   "CAP_SYS_NICE, and QEMU does not have it: RLIMIT_RTPRIO "
                   "does not allow SCHED_DEADLINE");
        error_append_hint(errp, "Grant QEMU CAP_SYS_NICE, or use "
                          "emulator-class=fifo.\n");
        return false;
    }
    if (pol->boost_class == PVSCHED_BOOST_CLASS_OTHER) {
        if (pol->boost_nice >= 0 ||
            (getrlimit(RLIMIT_NICE, &rl) == 0 &&
             rl.rlim_cur >= 20 - pol->boost_nice)) {
            return true;
        }
        error_setg(errp, "pvsched-policy: boost-nice=%d needs CAP_SYS_NICE "
                   "or RLIMIT_NICE >= %d, and QEMU has neither",
                   pol->boost_nice, 20 - pol->boost_nice);
        return false;
    }
    if (!is_rt_class(pol)) {
        return true;
    }
    if (getrlimit(RLIMIT_RTPRIO, &rl) == 0 && rl.rlim_cur >= need) {
        return true;
    }
    error_setg(errp, "pvsched-policy: boost-class=%s,boost-priority=%u "
               "with the emulator thread at %u needs CAP_SYS_NICE or "
               "RLIMIT_RTPRIO >= %u, and QEMU has neither",
               PvschedBoostClass_str(pol->boost_class), pol->boost_priority,
               need, need);
    error_append_hint(errp, "Grant QEMU CAP_SYS_NICE, or raise its "
                      "RLIMIT_RTPRIO (e.g. 'ulimit -r %u' or "
                      "'prlimit --rtprio=%u') before starting it.\n",
                      need, need);
    return false;
}

/*
 * Where the main loop (or the I/O threads) rank under @pol: their
 * real-time priority, EMULATOR_RANK_DEADLINE above every priority for
 * SCHED_DEADLINE, 0 for their own attributes, the policy being off or
 * not real-time.
 */
static uint32_t emulator_rank(const PvschedPolicySettings *pol,
                              bool iothreads)
{
    if (pol->mode == PVSCHED_MODE_OFF || !is_rt_class(pol)) {
        return 0;
    }
    if (pol->emulator_class == PVSCHED_EMULATOR_CLASS_DEADLINE) {
        return EMULATOR_RANK_DEADLINE;
    }
    return iothreads ? iothread_priority(pol) : emulator_priority(pol);
}

/*
 * Why the kernel refused an emulator thread SCHED_DEADLINE, and what to
 * do, in the message itself: QMP drops hints.
 */
static void dl_refused(int err, const PvschedPolicySettings *pol,
                       bool iothreads, Error **errp)
{
    const char *who = iothreads ? "the I/O threads" : "the main loop thread";
    g_autofree char *what =
        g_strdup_printf("pvsched-policy: cannot set %s to SCHED_DEADLINE "
                        "with emulator-runtime-us=%u, emulator-period-us=%u",
                        who, pol->emu_runtime_us, pol->emu_period_us);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t cpus;

    switch (err) {
    case EPERM:
        error_setg(errp, "%s: the kernel allows SCHED_DEADLINE only to a "
                   "thread that may run on every CPU of its root domain; "
                   "remove the emulator threads' CPU pinning (libvirt's "
                   "<emulatorpin>, taskset, a cpuset that is not a root "
                   "domain of its own), or use emulator-class=fifo", what);
        if (!iothreads && sched_getaffinity(0, sizeof(cpus), &cpus) == 0 &&
            CPU_COUNT(&cpus) < online) {
            error_append_hint(errp, "The main loop thread may run on %d of "
                              "the %ld online CPUs.\n", CPU_COUNT(&cpus),
                              online);
        }
        break;
    case EBUSY:
        error_setg(errp, "%s: the kernel's admission control refused the "
                   "bandwidth (each emulator thread takes "
                   "emulator-runtime-us of every emulator-period-us, and "
                   "all deadline threads together at most "
                   "sched_rt_runtime_us/sched_rt_period_us of every CPU); "
                   "lower emulator-runtime-us, or use emulator-class=fifo",
                   what);
        break;
    case EINVAL:
        error_setg(errp, "%s: the kernel refuses these parameters; keep "
                   "emulator-period-us within "
                   "/proc/sys/kernel/sched_deadline_period_min_us and "
                   "sched_deadline_period_max_us", what);
        break;
    default:
        error_setg_errno(errp, err, "%s", what);
    }
}

/* The main loop (or every I/O thread) takes its place above the vCPUs. */
static bool policy_order_emulator(const PvschedPolicySettings *pol,
                                  bool iothreads, PvschedEmulatorUndo *undo,
                                  Error **errp)
{
    uint32_t prio = emulator_rank(pol, iothreads);
    PvschedSchedAttr attr = { .policy = SCHED_FIFO, .priority = prio };
    const char *who = iothreads ? "the I/O threads" : "the main loop thread";
    int ret;

    if (prio == EMULATOR_RANK_DEADLINE) {
        attr = dl_attr(pol->emu_runtime_us, pol->emu_period_us,
                       pol->emu_period_us);
    }
    ret = iothreads ?
        pvsched_emulator_order_iothreads(prio ? &attr : NULL, undo) :
        pvsched_emulator_order_main_loop(prio ? &attr : NULL, undo);
    if (ret == 0) {
        return true;
    }
    if (prio == EMULATOR_RANK_DEADLINE) {
        dl_refused(-ret, pol, iothreads, errp);
    } else if (prio) {
        error_setg_errno(errp, -ret, "pvsched-policy: cannot set %s to "
                         "SCHED_FIFO %u", who, prio);
        error_append_hint(errp, "QEMU needs CAP_SYS_NICE or RLIMIT_RTPRIO "
                          ">= %u, and on a host with real-time group "
                          "scheduling, real-time runtime "
                          "(cpu.rt_runtime_us) in the thread's cgroup.\n",
                          prio);
    } else {
        error_setg_errno(errp, -ret, "pvsched-policy: cannot give %s back "
                         "its own scheduling attributes", who);
    }
    return false;
}

static void policy_publish(PvschedPolicy *pol)
{
    PvschedPolicySnapshot *snap = g_new0(PvschedPolicySnapshot, 1);
    PvschedPolicySnapshot *old = pol->snap;

    snap->cfg = policy_to_config(&pol->set);
    qatomic_rcu_set(&pol->snap, snap);
    if (old) {
        g_free_rcu(old, rcu);
        /* A run-time change: whoever follows the policy applies it now. */
        notifier_list_notify(&pol->changed, pol);
    }
    trace_pvsched_policy(object_get_canonical_path_component(OBJECT(pol)),
                         PvschedMode_str(pol->set.mode),
                         PvschedBoostClass_str(pol->set.boost_class),
                         pol->set.boost_priority, pol->set.max_boost_us,
                         pol->set.cooldown_us);
}

/* All of @want that can be checked without changing anything. */
static bool policy_validate(const PvschedPolicy *pol,
                            const PvschedPolicySettings *want, Error **errp)
{
    return policy_check_class(want, errp) &&
           policy_check_order(want, errp) &&
           policy_check_ceiling(pol, want, errp) &&
           policy_check_permission(want, errp);
}

/*
 * A run-time change.  Whoever can wake or police a vCPU must run above it
 * at every moment of the change, not only at its end: an emulator thread
 * that goes up changes before the vCPUs (top down), one that goes down
 * after them (bottom up).  A failure gives every thread already changed
 * its attributes back, last changed first (the way back keeps the order
 * too), so that a refused change leaves every thread as it was.
 */
static bool policy_change(PvschedPolicy *pol, const PvschedPolicySettings *want,
                          Error **errp)
{
    g_autoptr(PvschedEmulatorUndo) before = pvsched_emulator_undo_new();
    g_autoptr(PvschedEmulatorUndo) after = pvsched_emulator_undo_new();
    PvschedPolicySettings old = pol->set;
    bool main_up = emulator_rank(want, false) >= emulator_rank(&old, false);
    bool iot_up = emulator_rank(want, true) >= emulator_rank(&old, true);
    Error *err = NULL;

    trace_pvsched_policy_change(main_up, iot_up);
    if ((main_up && !policy_order_emulator(want, false, before, &err)) ||
        (iot_up && !policy_order_emulator(want, true, before, &err))) {
        goto fail;
    }
    pol->set = *want;
    policy_publish(pol);            /* every vCPU follows, on its thread */
    if ((!iot_up && !policy_order_emulator(want, true, after, &err)) ||
        (!main_up && !policy_order_emulator(want, false, after, &err))) {
        pvsched_emulator_rollback(after);
        pol->set = old;
        policy_publish(pol);        /* the vCPUs go back */
        goto fail;
    }
    return true;

fail:
    pvsched_emulator_rollback(before);
    trace_pvsched_policy_rollback(error_get_pretty(err));
    error_propagate(errp, err);
    return false;
}

/*
 * Make @want the policy, as a whole or not at all.  Once the object is
 * complete this is a run-time change: vCPUs follow it at once.
 */
static bool policy_apply(PvschedPolicy *pol, const PvschedPolicySettings *want,
                         Error **errp)
{
    Error *err = NULL;

    if (!pol->complete) {
        pol->set = *want;
        return true;
    }
    if (!policy_validate(pol, want, &err) ||
        !policy_change(pol, want, &err)) {
        trace_pvsched_policy_refused(error_get_pretty(err));
        error_propagate(errp, err);
        return false;
    }
    return true;
}

void pvsched_policy_add_change_notifier(PvschedPolicy *pol, Notifier *n)
{
    notifier_list_add(&pol->changed, n);
}

void pvsched_policy_get_config(PvschedPolicy *pol, PvschedBoostConfig *cfg)
{
    RCU_READ_LOCK_GUARD();
    *cfg = qatomic_rcu_read(&pol->snap)->cfg;
}

static int policy_get_mode(Object *obj, Error **errp)
{
    return PVSCHED_POLICY(obj)->set.mode;
}

static void policy_set_mode(Object *obj, int value, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);
    PvschedPolicySettings want = pol->set;

    want.mode = value;
    policy_apply(pol, &want, errp);
}

static int policy_get_boost_class(Object *obj, Error **errp)
{
    return PVSCHED_POLICY(obj)->set.boost_class;
}

static void policy_set_boost_class(Object *obj, int value, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);
    PvschedPolicySettings want = pol->set;

    want.boost_class = value;
    policy_apply(pol, &want, errp);
}

static int policy_get_emulator_class(Object *obj, Error **errp)
{
    return PVSCHED_POLICY(obj)->set.emulator_class;
}

static void policy_set_emulator_class(Object *obj, int value, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);
    PvschedPolicySettings want = pol->set;

    want.emulator_class = value;
    policy_apply(pol, &want, errp);
}

typedef struct PolicyU32Prop {
    const char *name;
    size_t offset;
    uint32_t min, max;
    const char *desc;
} PolicyU32Prop;

static const PolicyU32Prop policy_u32_props[] = {
    { "boost-priority", offsetof(PvschedPolicySettings, boost_priority), 1, 99,
      "Real-time priority of a boosted vCPU thread (1..99)" },
    { "max-boost-us", offsetof(PvschedPolicySettings, max_boost_us), 0, MAX_US,
      "Boosted CPU time allowed per boost, in microseconds (0: no bound)" },
    { "cooldown-us", offsetof(PvschedPolicySettings, cooldown_us), 0, MAX_US,
      "Time a throttled vCPU ignores BOOST, in microseconds" },
    { "emulator-priority", offsetof(PvschedPolicySettings, emulator_priority),
      0, 99, "Real-time priority of the emulator (main-loop) thread, above "
      "boost-priority (0: boost-priority + 1)" },
    { "iothread-priority", offsetof(PvschedPolicySettings, iothread_priority),
      0, 99, "Real-time priority of every I/O thread, above boost-priority "
      "(0: emulator-priority)" },
    { "emulator-runtime-us", offsetof(PvschedPolicySettings, emu_runtime_us),
      2, MAX_US, "SCHED_DEADLINE runtime of each emulator thread with "
      "emulator-class=deadline, microseconds" },
    { "emulator-period-us", offsetof(PvschedPolicySettings, emu_period_us),
      2, MAX_US, "SCHED_DEADLINE period (and deadline) of each emulator "
      "thread with emulator-class=deadline, microseconds" },
    { "priority-ceiling", offsetof(PvschedPolicySettings, priority_ceiling),
      0, 99, "Highest real-time priority of any QEMU thread, set as "
      "RLIMIT_RTPRIO at creation (0: the highest the policy uses then)" },
    { "deadline-runtime-us", offsetof(PvschedPolicySettings, dl_runtime_us),
      2, MAX_US, "SCHED_DEADLINE runtime of a boosted vCPU, microseconds" },
    { "deadline-deadline-us", offsetof(PvschedPolicySettings, dl_deadline_us),
      2, MAX_US, "SCHED_DEADLINE deadline of a boosted vCPU, microseconds" },
    { "deadline-period-us", offsetof(PvschedPolicySettings, dl_period_us),
      2, MAX_US, "SCHED_DEADLINE period of a boosted vCPU, microseconds" },
    { "util-min", offsetof(PvschedPolicySettings, util_min), 0, 1024,
      "Minimum utilization clamp of a boosted vCPU (0..1024)" },
    { "util-max", offsetof(PvschedPolicySettings, util_max), 0, 1024,
      "Maximum utilization clamp of a boosted vCPU (0..1024)" },
};

static uint32_t *u32_field(PvschedPolicySettings *set,
                           const PolicyU32Prop *p)
{
    return (uint32_t *)((char *)set + p->offset);
}

static const PolicyU32Prop *u32_prop(const char *name)
{
    int i;

    for (i = 0; i < ARRAY_SIZE(policy_u32_props); i++) {
        if (!strcmp(policy_u32_props[i].name, name)) {
            return &policy_u32_props[i];
        }
    }
    g_assert_not_reached();
}

static bool u32_set(PvschedPolicySettings *set, const char *name,
                    uint32_t value, Error **errp)
{
    const PolicyU32Prop *p = u32_prop(name);

    if (value < p->min || value > p->max) {
        trace_pvsched_policy_refused(name);
        error_setg(errp, "pvsched-policy: %s=%u is out of range: it must be "
                   "between %u and %u", name, value, p->min, p->max);
        return false;
    }
    *u32_field(set, p) = value;
    return true;
}

static void policy_get_u32(Object *obj, Visitor *v, const char *name,
                           void *opaque, Error **errp)
{
    visit_type_uint32(v, name, u32_field(&PVSCHED_POLICY(obj)->set, opaque),
                      errp);
}

static void policy_set_u32(Object *obj, Visitor *v, const char *name,
                           void *opaque, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);
    PvschedPolicySettings want = pol->set;
    uint32_t value;

    if (visit_type_uint32(v, name, &value, errp) &&
        u32_set(&want, name, value, errp)) {
        policy_apply(pol, &want, errp);
    }
}

static bool nice_set(PvschedPolicySettings *set, int32_t value, Error **errp)
{
    if (value < -20 || value > 19) {
        error_setg(errp, "pvsched-policy: boost-nice=%d is out of range: it "
                   "must be between -20 and 19", value);
        return false;
    }
    set->boost_nice = value;
    return true;
}

static void policy_get_nice(Object *obj, Visitor *v, const char *name,
                            void *opaque, Error **errp)
{
    visit_type_int32(v, name, &PVSCHED_POLICY(obj)->set.boost_nice, errp);
}

static void policy_set_nice(Object *obj, Visitor *v, const char *name,
                            void *opaque, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);
    PvschedPolicySettings want = pol->set;
    int32_t value;

    if (visit_type_int32(v, name, &value, errp) &&
        nice_set(&want, value, errp)) {
        policy_apply(pol, &want, errp);
    }
}

bool pvsched_policy_update(PvschedPolicy *pol, const PvschedPolicyChange *u,
                           Error **errp)
{
    PvschedPolicySettings want = pol->set;

    if (u->has_mode) {
        want.mode = u->mode;
    }
    if (u->has_boost_class) {
        want.boost_class = u->boost_class;
    }
    if (u->has_emulator_class) {
        want.emulator_class = u->emulator_class;
    }
    if ((u->has_boost_priority &&
         !u32_set(&want, "boost-priority", u->boost_priority, errp)) ||
        (u->has_max_boost_us &&
         !u32_set(&want, "max-boost-us", u->max_boost_us, errp)) ||
        (u->has_cooldown_us &&
         !u32_set(&want, "cooldown-us", u->cooldown_us, errp)) ||
        (u->has_emulator_priority &&
         !u32_set(&want, "emulator-priority", u->emulator_priority, errp)) ||
        (u->has_iothread_priority &&
         !u32_set(&want, "iothread-priority", u->iothread_priority, errp)) ||
        (u->has_emulator_runtime_us &&
         !u32_set(&want, "emulator-runtime-us", u->emulator_runtime_us,
                  errp)) ||
        (u->has_emulator_period_us &&
         !u32_set(&want, "emulator-period-us", u->emulator_period_us,
                  errp)) ||
        (u->has_boost_nice &&
         !nice_set(&want, u->boost_nice, errp)) ||
        (u->has_deadline_runtime_us &&
         !u32_set(&want, "deadline-runtime-us", u->deadline_runtime_us,
                  errp)) ||
        (u->has_deadline_deadline_us &&
         !u32_set(&want, "deadline-deadline-us", u->deadline_deadline_us,
                  errp)) ||
        (u->has_deadline_period_us &&
         !u32_set(&want, "deadline-period-us", u->deadline_period_us,
                  errp)) ||
        (u->has_util_min && !u32_set(&want, "util-min", u->util_min, errp)) ||
        (u->has_util_max && !u32_set(&want, "util-max", u->util_max, errp))) {
        return false;
    }
    return policy_apply(pol, &want, errp);
}

PvschedPolicyInfo *pvsched_policy_info(PvschedPolicy *pol)
{
    PvschedPolicyInfo *info = g_new0(PvschedPolicyInfo, 1);

    /* Optional in the base, the object's properties; all are in force. */
    info->id = g_strdup(object_get_canonical_path_component(OBJECT(pol)));
#define SET(member, value) \
    do { info->has_##member = true; info->member = (value); } while (0)
    SET(mode, pol->set.mode);
    SET(boost_class, pol->set.boost_class);
    SET(boost_priority, pol->set.boost_priority);
    SET(max_boost_us, pol->set.max_boost_us);
    SET(cooldown_us, pol->set.cooldown_us);
    SET(emulator_priority, emulator_priority(&pol->set));
    SET(iothread_priority, iothread_priority(&pol->set));
    SET(emulator_class, pol->set.emulator_class);
    SET(emulator_runtime_us, pol->set.emu_runtime_us);
    SET(emulator_period_us, pol->set.emu_period_us);
    SET(priority_ceiling, pol->set.priority_ceiling);
    SET(boost_nice, pol->set.boost_nice);
    SET(deadline_runtime_us, pol->set.dl_runtime_us);
    SET(deadline_deadline_us, pol->set.dl_deadline_us);
    SET(deadline_period_us, pol->set.dl_period_us);
    SET(util_min, pol->set.util_min);
    SET(util_max, pol->set.util_max);
#undef SET
    return info;
}

/*
 * I/O threads created after the policy take their place now, and so does
 * the main loop if it is not the thread that took it: -daemonize forks
 * after the policy exists, and RESET_ON_FORK leaves the daemon's main
 * thread below every boosted vCPU.
 */
static void policy_machine_done(Notifier *n, void *data)
{
    PvschedPolicy *pol = container_of(n, PvschedPolicy, machine_done);
    g_autoptr(PvschedEmulatorUndo) undo = pvsched_emulator_undo_new();

    if (pvsched_emulator_thread_id() != qemu_get_thread_id()) {
        policy_order_emulator(&pol->set, false, undo, &error_warn);
    }
    policy_order_emulator(&pol->set, true, undo, &error_warn);
}

/*
 * vCPU, main-loop and I/O threads each set their own attributes; under
 * -sandbox resourcecontrol=deny that is allowed only if asked for before
 * the sandbox is entered (vl.c creates this object early for it).
 */
static bool policy_allow_own_sched(Error **errp)
{
#ifdef CONFIG_SECCOMP
    if (!qemu_seccomp_allow_own_sched()) {
        error_setg(errp, "pvsched-policy: -sandbox resourcecontrol=deny "
                   "forbids QEMU's threads to change their own scheduling "
                   "attributes, and the sandbox is already in place");
        error_append_hint(errp, "Create the pvsched-policy object on the "
                          "command line, not at run time.\n");
        return false;
    }
#endif
    return true;
}

/*
 * A ceiling a compromised QEMU without CAP_SYS_RESOURCE cannot raise.
 * With CAP_SYS_NICE the kernel ignores RLIMIT_RTPRIO: grant the limit
 * rather than the capability for the ceiling to bind.
 */
static bool policy_set_ceiling(uint32_t ceiling, Error **errp)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_RTPRIO, &rl) < 0) {
        error_setg_errno(errp, errno, "pvsched-policy: cannot read "
                         "RLIMIT_RTPRIO");
        return false;
    }
    rl.rlim_cur = MIN(rl.rlim_cur, ceiling);
    rl.rlim_max = MIN(rl.rlim_max, ceiling);
    if (setrlimit(RLIMIT_RTPRIO, &rl) < 0) {
        error_setg_errno(errp, errno, "pvsched-policy: cannot lower "
                         "RLIMIT_RTPRIO to priority-ceiling=%u", ceiling);
        return false;
    }
    trace_pvsched_priority_ceiling(ceiling);
    return true;
}

/* The completed policy; BQL. */
static PvschedPolicy *the_policy;

/*
 * The main loop, the I/O threads and RLIMIT_RTPRIO belong to the whole
 * process: a second policy could only take them from the first, under
 * the device that follows it.
 */
static bool policy_check_unique(Error **errp)
{
    if (the_policy) {
        error_setg(errp, "pvsched-policy '%s' exists already, and QEMU has "
                   "one pvsched policy",
                   object_get_canonical_path_component(OBJECT(the_policy)));
        error_append_hint(errp, "Change it with pvsched-set-policy or "
                          "qom-set instead.\n");
        return false;
    }
    return true;
}

/*
 * A boosted vCPU that waits for the BQL waits for its holder, and unless
 * the BQL inherits priority, for every thread that preempts the holder:
 * without bound.  vl.c makes it inherit for a policy on the command line
 * (the BQL's kind is chosen before the options are parsed); one added
 * later, or from -readconfig, or on a host without PI futexes, works
 * without that bound.
 */
static void policy_check_bql(PvschedPolicy *pol)
{
    trace_pvsched_policy_bql(bql_priority_inheriting());
    if (!bql_priority_inheriting()) {
        warn_report("pvsched-policy '%s': the BQL does not inherit priority, "
                    "so a boosted vCPU can wait for it without bound; "
                    "create the policy with -object on the command line, "
                    "on a host with PI futexes",
                    object_get_canonical_path_component(OBJECT(pol)));
    }
}

/*
 * Everything that can fail comes first, the emulator threads (undone on
 * failure) last: the ceiling, which cannot be raised again, and the
 * object's state are committed only when nothing can fail any more.
 */
static void policy_complete(UserCreatable *uc, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(uc);
    g_autoptr(PvschedEmulatorUndo) undo = pvsched_emulator_undo_new();
    PvschedPolicySettings want = pol->set;

    want.priority_ceiling = want.priority_ceiling ?: rt_need(&want);
    if (!policy_check_unique(errp) ||
        !policy_validate(pol, &want, errp) ||
        !policy_allow_own_sched(errp)) {
        return;
    }
    if (!policy_order_emulator(&want, false, undo, errp) ||
        !policy_order_emulator(&want, true, undo, errp) ||
        !policy_set_ceiling(want.priority_ceiling, errp)) {
        pvsched_emulator_rollback(undo);
        return;
    }
    pol->set = want;
    pol->complete = true;
    the_policy = pol;
    policy_publish(pol);
    policy_check_bql(pol);
    pol->machine_done.notify = policy_machine_done;
    qemu_add_machine_init_done_notifier(&pol->machine_done);
}

/*
 * A device that follows the policy keeps it: it cannot be unplugged, and
 * it registered for the policy's changes.
 */
static bool policy_can_be_deleted(UserCreatable *uc)
{
    PvschedPolicy *pol = PVSCHED_POLICY(uc);

    if (QLIST_EMPTY(&pol->changed.notifiers)) {
        return true;
    }
    /* The caller's error cannot say why, nor what to do. */
    error_report("pvsched-policy '%s' is used by the pvsched device, which "
                 "cannot be removed: change the policy with "
                 "pvsched-set-policy instead (mode=off stops boosting)",
                 object_get_canonical_path_component(OBJECT(pol)));
    return false;
}

/*
 * Undo what policy_complete() did: the emulator threads take back their
 * own attributes, lowered bottom up (the I/O threads, then the main
 * loop).  The ceiling stays: RLIMIT_RTPRIO cannot be raised again.
 */
static void policy_uncomplete(PvschedPolicy *pol)
{
    g_autoptr(PvschedEmulatorUndo) undo = pvsched_emulator_undo_new();
    PvschedPolicySettings own = pol->set;

    own.mode = PVSCHED_MODE_OFF;
    qemu_remove_machine_init_done_notifier(&pol->machine_done);
    policy_order_emulator(&own, true, undo, &error_warn);
    policy_order_emulator(&own, false, undo, &error_warn);
    if (the_policy == pol) {
        the_policy = NULL;
    }
    pol->complete = false;
}

static void policy_instance_init(Object *obj)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);

    notifier_list_init(&pol->changed);
    pol->set = (PvschedPolicySettings) {
        .mode = PVSCHED_MODE_DYNAMIC,
        .boost_class = PVSCHED_BOOST_CLASS_FIFO,
        .boost_priority = DEFAULT_BOOST_PRIORITY,
        .max_boost_us = DEFAULT_MAX_BOOST_US,
        .cooldown_us = DEFAULT_COOLDOWN_US,
        .boost_nice = DEFAULT_BOOST_NICE,
        .dl_runtime_us = DEFAULT_DL_RUNTIME_US,
        .dl_deadline_us = DEFAULT_DL_PERIOD_US,
        .dl_period_us = DEFAULT_DL_PERIOD_US,
        .emulator_class = PVSCHED_EMULATOR_CLASS_FIFO,
        .emu_runtime_us = DEFAULT_EMU_RUNTIME_US,
        .emu_period_us = DEFAULT_EMU_PERIOD_US,
        .util_min = 1024,
        .util_max = 1024,
    };
}

static void policy_instance_finalize(Object *obj)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);

    if (pol->complete) {
        policy_uncomplete(pol);
    }
    if (pol->snap) {
        g_free_rcu(pol->snap, rcu);
    }
}

static void policy_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);
    int i;

    ucc->complete = policy_complete;
    ucc->can_be_deleted = policy_can_be_deleted;

    object_class_property_add_enum(oc, "mode", "PvschedMode",
                                   &PvschedMode_lookup,
                                   policy_get_mode, policy_set_mode);
    object_class_property_set_description(oc, "mode",
        "dynamic: boosted while the guest asks; static: always boosted, "
        "without the bound; off: never boosted");
    object_class_property_add_enum(oc, "boost-class", "PvschedBoostClass",
                                   &PvschedBoostClass_lookup,
                                   policy_get_boost_class,
                                   policy_set_boost_class);
    object_class_property_set_description(oc, "boost-class",
        "Host scheduling class of a boosted vCPU thread");
    object_class_property_add_enum(oc, "emulator-class",
                                   "PvschedEmulatorClass",
                                   &PvschedEmulatorClass_lookup,
                                   policy_get_emulator_class,
                                   policy_set_emulator_class);
    object_class_property_set_description(oc, "emulator-class",
        "Host scheduling class of the main loop and I/O threads with a "
        "real-time boost-class: fifo (unbounded) or deadline (bounded)");
    object_class_property_add(oc, "boost-nice", "int32", policy_get_nice,
                              policy_set_nice, NULL, NULL);
    object_class_property_set_description(oc, "boost-nice",
        "Nice value of a boosted vCPU thread with boost-class=other");
    for (i = 0; i < ARRAY_SIZE(policy_u32_props); i++) {
        const PolicyU32Prop *p = &policy_u32_props[i];

        object_class_property_add(oc, p->name, "uint32", policy_get_u32,
                                  policy_set_u32, NULL, (void *)p);
        object_class_property_set_description(oc, p->name, p->desc);
    }
}

static const TypeInfo pvsched_policy_types[] = {
    {
        .name = TYPE_PVSCHED_POLICY,
        .parent = TYPE_OBJECT,
        .instance_size = sizeof(PvschedPolicy),
        .instance_init = policy_instance_init,
        .instance_finalize = policy_instance_finalize,
        .class_init = policy_class_init,
        .interfaces = (InterfaceInfo[]) {
            { TYPE_USER_CREATABLE },
            { }
        },
    },
};

DEFINE_TYPES(pvsched_policy_types)
