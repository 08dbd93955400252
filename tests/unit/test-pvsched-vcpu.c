/*
 * Unit tests for one pvsched vCPU (hw/pvsched/vcpu.c): the run-loop hook,
 * the doorbell, the bound timer the main loop polices and the kernel's
 * CPU-time timer behind it, what is left when
 * the vCPU's thread exits, and reset and restore, which run off it.  The
 * scheduling backend, the clocks, the guest area, the policy and the CPU
 * list are fakes; the QEMU timer and thread code are the real ones.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/main-loop.h"
#include "qemu/thread.h"
#include "hw/core/cpu.h"
#include "system/cpu-timers.h"
#include "pvsched/vcpu.h"

#define US 1000LL
#define MAX_BOOST_NS (3000 * US)
#define AREA_GPA 0x100000ULL
/* A kick that follows a bound check by at most the poll floor. */
#define BOUND_POLL_SLACK_NS (100 * US)

/* The fake world: one vCPU thread, its clocks, its CPU, its guest area. */
static struct {
    PvschedSchedAttr attr;
    int64_t cpu_ns;         /* the vCPU thread's CPU clock */
    int64_t now_ns;
    int cpu_reads;          /* of the CPU clock, from any thread */
    int gets;               /* reads of the thread's own attributes */
    bool thread_gone;       /* its CPU clock reads fail, as for a dead tid */
    bool cpu_unplugged;     /* qemu_get_cpu() finds nothing */
    int kicks;
    int config_reads;       /* one per evaluation of the guest's request */
    int areas_mapped;       /* references held on guest memory */
    int wakeups;            /* of the main loop, for a timer moved */
    bool off_thread;        /* reset, restore: the backend must not run */
    int64_t backstop_at;    /* the CPU-time timer's expiry; 0: disarmed */
    int backstop_arms;      /* timer_settime() calls */
    int backstop_timers;    /* created and not deleted */
    int backstop_error;     /* what creating one fails with */
    int unbounded_raises;   /* boosts set while no backstop was armed */
    int early_disarms;      /* backstops disarmed while still boosted */
    PvschedBoostConfig cfg;
    struct pvsched_area area;
} w;

static CPUState fake_cpu;

static int fake_get(PvschedSchedAttr *attr, void *opaque)
{
    g_assert_false(w.off_thread);
    w.gets++;
    *attr = w.attr;
    return 0;
}

static int fake_set(const PvschedSchedAttr *attr, void *opaque)
{
    /* Off the vCPU thread it would change another thread's attributes. */
    g_assert_false(w.off_thread);
    if (attr->policy == SCHED_FIFO && w.attr.policy != SCHED_FIFO &&
        !w.backstop_at) {
        w.unbounded_raises++;
    }
    w.attr = *attr;
    return 0;
}

static int64_t fake_thread_cpu_ns(void *opaque)
{
    g_assert_false(w.off_thread);
    w.cpu_reads++;
    return w.cpu_ns;
}

static int64_t fake_now_ns(void *opaque)
{
    return w.now_ns;
}

static int64_t fake_clock_cpu_ns(clockid_t clock, void *opaque)
{
    w.cpu_reads++;
    return w.thread_gone ? -EINVAL : w.cpu_ns;
}

static int fake_cpu_timer_create(timer_t *timer, void *opaque)
{
    g_assert_false(w.off_thread);
    if (w.backstop_error) {
        return w.backstop_error;
    }
    w.backstop_timers++;
    *timer = (timer_t)&w.backstop_at;
    return 0;
}

static int fake_cpu_timer_arm(timer_t timer, int64_t ns, void *opaque)
{
    g_assert(timer == (timer_t)&w.backstop_at);
    g_assert_cmpint(ns, >=, 0);
    w.backstop_arms++;
    if (!ns && w.attr.policy == SCHED_FIFO) {
        w.early_disarms++;
    }
    w.backstop_at = ns ? w.cpu_ns + ns : 0;
    return 0;
}

static void fake_cpu_timer_delete(timer_t timer, void *opaque)
{
    g_assert(timer == (timer_t)&w.backstop_at);
    w.backstop_timers--;
    w.backstop_at = 0;
}

const PvschedBackend pvsched_host_backend = {
    .get = fake_get,
    .set = fake_set,
    .thread_cpu_ns = fake_thread_cpu_ns,
    .now_ns = fake_now_ns,
    .clock_cpu_ns = fake_clock_cpu_ns,
    .cpu_timer_create = fake_cpu_timer_create,
    .cpu_timer_arm = fake_cpu_timer_arm,
    .cpu_timer_delete = fake_cpu_timer_delete,
};

const char *pvsched_policy_name(uint32_t policy)
{
    return policy == SCHED_FIFO ? "fifo" : "other";
}

void pvsched_policy_get_config(PvschedPolicy *pol, PvschedBoostConfig *cfg)
{
    w.config_reads++;
    *cfg = w.cfg;
}

bool pvsched_area_map(PvschedArea *area, uint64_t gpa, const char **why)
{
    g_assert_cmphex(gpa, ==, AREA_GPA);
    w.areas_mapped++;
    *area = (PvschedArea) { .mr = (MemoryRegion *)&w.area, .hva = &w.area };
    return true;
}

void pvsched_area_unmap(PvschedArea *area)
{
    if (area->mr) {
        w.areas_mapped--;
    }
    *area = (PvschedArea) { };
}

void pvsched_area_set_status(PvschedArea *area, uint64_t status)
{
    area->hva->boost_status = status;
}

CPUState *qemu_get_cpu(int index)
{
    return index == 0 && !w.cpu_unplugged ? &fake_cpu : NULL;
}

void qemu_cpu_kick(CPUState *cpu)
{
    g_assert(cpu == &fake_cpu);     /* the real one dereferences it */
    w.kicks++;
}

/* A timer that becomes the first to expire wakes the main loop. */
void qemu_timer_notify_cb(void *opaque, QEMUClockType type)
{
    w.wakeups++;
}

static PvschedVcpu vcpu;
static uint64_t msr;            /* the CPU's CPUX86State.pvsched_msr */

static void setup(void)
{
    timer_free(vcpu.bound_timer);
    timer_free(vcpu.cooldown_timer);
    memset(&w, 0, sizeof(w));
    w.cfg = (PvschedBoostConfig) {
        .mode = PVSCHED_STATE_DYNAMIC,
        .boost = { .policy = SCHED_FIFO, .priority = 8 },
        .max_boost_ns = MAX_BOOST_NS,
        .cooldown_ns = 27000 * US,
    };
    pvsched_vcpu_init(&vcpu, 0, NULL);
    msr = 0;
}

/* What kvm_cpu_exec() does at every KVM_RUN return. */
static void guest_exit(uint8_t req)
{
    w.area.boost_req = req;
    pvsched_vcpu_sync(&vcpu, false);
}

/* ... when a signal ended KVM_RUN: a kick, or the CPU-time timer. */
static void kicked_exit(uint8_t req)
{
    w.area.boost_req = req;
    pvsched_vcpu_sync(&vcpu, true);
}

static void enable_and_boost(void)
{
    g_assert_true(pvsched_vcpu_msr_write(&vcpu, &msr,
                                         AREA_GPA | PVSCHED_MSR_ENABLE));
    g_assert_cmphex(msr, ==, AREA_GPA | PVSCHED_MSR_ENABLE);
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_FIFO);
}

/* Reset's hold phase, off the vCPU thread: the device clears the MSR. */
static void reset(void)
{
    w.off_thread = true;
    msr = 0;
    pvsched_vcpu_reset(&vcpu);
    w.off_thread = false;
}

/* post_load, off the vCPU thread: the MSR value was loaded into the CPU. */
static bool restore(uint64_t val)
{
    const char *why = NULL;
    bool ok;

    w.off_thread = true;
    msr = val;
    ok = pvsched_vcpu_restore(&vcpu, val, CLOCK_THREAD_CPUTIME_ID, &why);
    w.off_thread = false;
    g_assert(ok || why);
    return ok;
}

static int64_t realtime_ns(void)
{
    return qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

/* The bound timer's time has come: the main loop runs bound_check(). */
static void fire_bound_timer(void)
{
    g_assert_true(timer_pending(vcpu.bound_timer));
    timer_mod_ns(vcpu.bound_timer, 1);
    g_assert_true(qemu_clock_run_timers(QEMU_CLOCK_REALTIME));
}

/* A bounded boost is policed: the timer fires within the bound. */
static void assert_policed_from(int64_t before)
{
    g_assert_true(timer_pending(vcpu.bound_timer));
    g_assert_cmpint(timer_expire_time_ns(vcpu.bound_timer), <=,
                    realtime_ns() + MAX_BOOST_NS);
    g_assert_cmpint(timer_expire_time_ns(vcpu.bound_timer), >=,
                    before + MAX_BOOST_NS);
}

/*
 * Defect: the vCPU armed the bound only if it saw the timer idle.  What
 * it sees may be stale: the main loop may have taken the timer off its
 * list already and read the status from before this boost (store
 * buffering: each thread stores, then loads the other's old value), and
 * then nobody arms it.  Here the timer looks pending, as the stale read
 * would show it, far in the future: the boost must arm it all the same.
 */
static void test_every_boost_arms_the_bound(void)
{
    int64_t before;

    setup();
    before = realtime_ns();
    enable_and_boost();
    assert_policed_from(before);

    guest_exit(PVSCHED_REQ_UNBOOST);
    timer_mod_ns(vcpu.bound_timer,
                 realtime_ns() + 3600 * NANOSECONDS_PER_SECOND);
    before = realtime_ns();
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    assert_policed_from(before);
}

/*
 * Defect: only the main loop's bound_check() ended a boost that no exit
 * ended, and the main loop can block: traced in the L1 VM, 1.2 and 1.6 s
 * in mmap() behind a thread the boosted vCPUs starved, the boosts lasting
 * that long.  Each bounded boost arms a timer on the vCPU thread's own
 * CPU clock for the whole bound, one system call, and disarms it when it
 * ends, another; exits in between call nothing.
 */
static void test_backstop_armed_per_boost(void)
{
    int i, arms;

    setup();
    enable_and_boost();
    g_assert_cmpint(w.backstop_timers, ==, 1);
    g_assert_cmpint(w.backstop_at, ==, w.cpu_ns + MAX_BOOST_NS);
    arms = w.backstop_arms;
    for (i = 0; i < 100; i++) {
        guest_exit(PVSCHED_REQ_BOOST);
    }
    g_assert_cmpint(w.backstop_arms, ==, arms);
    guest_exit(PVSCHED_REQ_UNBOOST);
    g_assert_cmpint(w.backstop_at, ==, 0);
    g_assert_cmpint(w.backstop_arms, ==, arms + 1);
    for (i = 0; i < 100; i++) {
        guest_exit(PVSCHED_REQ_NONE);
    }
    g_assert_cmpint(w.backstop_arms, ==, arms + 1);
}

/*
 * Defect: the backstop was armed after the boost, in police_bound(), and
 * traced in the L1 VM 9.9 ms of the vCPU thread's CPU time went by
 * between the two on a first boost, charged to the boost with nothing
 * bounding it.  The kernel's bound comes first, then the priority; the
 * priority falls first, then the bound goes: at no point is the thread
 * real-time without it.
 */
static void test_backstop_brackets_the_boost(void)
{
    setup();
    enable_and_boost();
    g_assert_cmpint(w.unbounded_raises, ==, 0);
    guest_exit(PVSCHED_REQ_UNBOOST);
    g_assert_cmpint(w.attr.policy, ==, SCHED_OTHER);
    g_assert_cmpint(w.backstop_at, ==, 0);
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpint(w.unbounded_raises, ==, 0);
    /* The bound spent: throttling lowers the priority, then disarms. */
    w.cpu_ns += MAX_BOOST_NS + 100 * US;
    kicked_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);
    g_assert_cmpint(w.backstop_at, ==, 0);
    g_assert_cmpint(w.early_disarms, ==, 0);
}

/* When it fires, the exit it forces throttles: no main loop involved. */
static void test_backstop_kick_throttles(void)
{
    setup();
    enable_and_boost();
    /* The kernel fires it at a tick after its expiry. */
    w.cpu_ns = w.backstop_at + 100 * US;
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    kicked_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_OTHER);
    g_assert_cmpint(w.backstop_at, ==, 0);
}

/* A kick before the bound is spent re-arms the timer for what is left. */
static void test_backstop_early_kick_rearms(void)
{
    int64_t end;

    setup();
    enable_and_boost();
    end = w.backstop_at;
    w.cpu_ns += MAX_BOOST_NS / 3;
    kicked_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpint(w.backstop_at, ==, end);
}

/* No timer: the main loop alone polices the bound, and says so once. */
static void test_backstop_unavailable(void)
{
    setup();
    w.backstop_error = -EAGAIN;
    enable_and_boost();
    g_assert_cmpint(w.backstop_arms, ==, 0);
    g_assert_true(timer_pending(vcpu.bound_timer));
    w.cpu_ns += MAX_BOOST_NS + 100 * US;
    fire_bound_timer();
    g_assert_cmpint(w.kicks, ==, 1);
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);
}

/* The other order: bound_check saw NORMAL and let go; a boost re-arms. */
static void test_boost_after_bound_check_let_go(void)
{
    int64_t before;

    setup();
    enable_and_boost();
    guest_exit(PVSCHED_REQ_UNBOOST);
    fire_bound_timer();
    g_assert_false(timer_pending(vcpu.bound_timer));
    before = realtime_ns();
    guest_exit(PVSCHED_REQ_BOOST);
    assert_policed_from(before);
}

/* A switch from an unbounded to a bounded policy polices the boost. */
static void test_bound_from_unbounded(void)
{
    int64_t before;

    setup();
    w.cfg.max_boost_ns = 0;
    enable_and_boost();
    g_assert_false(timer_pending(vcpu.bound_timer));
    w.cfg.max_boost_ns = MAX_BOOST_NS;
    before = realtime_ns();
    pvsched_vcpu_apply(&vcpu);      /* the policy-change notifier's work */
    assert_policed_from(before);
}

/*
 * Defect (found by tests/fuzz/pvsched-fuzz.c): a policy change that
 * lowers max-boost-us under a boost left the bound timer where the old
 * bound had put it, so the boost ran on for up to the old bound.  The
 * timer must be due by the time what is left of the new bound is spent.
 */
static void test_bound_lowered_under_boost(void)
{
    setup();
    w.cfg.max_boost_ns = 20 * MAX_BOOST_NS;
    enable_and_boost();
    w.cpu_ns += MAX_BOOST_NS / 2;
    w.cfg.max_boost_ns = MAX_BOOST_NS;
    pvsched_vcpu_apply(&vcpu);      /* the policy-change notifier's work */
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_true(timer_pending(vcpu.bound_timer));
    g_assert_cmpint(timer_expire_time_ns(vcpu.bound_timer), <=,
                    realtime_ns() + MAX_BOOST_NS / 2);

    w.cpu_ns += MAX_BOOST_NS;
    fire_bound_timer();
    g_assert_cmpint(w.kicks, ==, 1);
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);
}

/*
 * Defect (found by tests/fuzz/pvsched-fuzz.c): an incoming migration in
 * static mode made the vCPU BOOSTED under a bound without arming the
 * bound timer; a guest that spins without exiting to QEMU was never
 * throttled.  A restored boost is policed from the start.
 */
static void test_restore_polices_static_boost(void)
{
    setup();
    w.cfg.mode = PVSCHED_STATE_STATIC;
    pvsched_vcpu_apply(&vcpu);      /* realize: static mode boosts */
    g_assert_cmpuint(w.attr.policy, ==, SCHED_FIFO);
    g_assert_true(restore(AREA_GPA | PVSCHED_MSR_ENABLE));
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_true(timer_pending(vcpu.bound_timer));
    g_assert_cmpint(timer_expire_time_ns(vcpu.bound_timer), <=,
                    realtime_ns() + MAX_BOOST_NS);
}

/*
 * Defect (found by tests/fuzz/pvsched-fuzz.c): in static mode a boost
 * outlives its area, and a new registration gave it a whole bound again
 * on the timer while the budget kept counting from the boost: a guest
 * that registers again every 2 ms of a 3 ms bound kept pushing the
 * timer out and was never throttled.  The timer must be due by the time
 * the budget is spent.
 */
static void test_reregister_keeps_static_bound(void)
{
    int i;

    setup();
    w.cfg.mode = PVSCHED_STATE_STATIC;
    enable_and_boost();
    for (i = 0; i < 3; i++) {
        w.cpu_ns += MAX_BOOST_NS * 2 / 3;
        g_assert_true(pvsched_vcpu_msr_write(&vcpu, &msr,
                                             AREA_GPA | PVSCHED_MSR_ENABLE));
        g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
        g_assert_true(timer_pending(vcpu.bound_timer));
        g_assert_cmpint(timer_expire_time_ns(vcpu.bound_timer), <=,
                        realtime_ns() +
                        MAX(MAX_BOOST_NS - (w.cpu_ns - vcpu.st.bound_cpu_ns),
                            0));
    }
}

/*
 * Defect: every boost moved the bound timer to its own end, so each one
 * woke the main loop, which runs above every vCPU: a guest that boosts
 * and unboosts as fast as it can drove the main loop with it (the storm
 * test saw it take most of a CPU).  A timer due earlier is left alone:
 * bound_check() works out what is left when it fires.
 */
static void test_boost_churn_leaves_the_timer(void)
{
    int64_t due;
    int i;

    setup();
    enable_and_boost();
    due = timer_expire_time_ns(vcpu.bound_timer);
    w.wakeups = 0;
    for (i = 0; i < 100; i++) {
        guest_exit(PVSCHED_REQ_UNBOOST);
        g_usleep(10);
        guest_exit(PVSCHED_REQ_BOOST);
        g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    }
    g_assert_cmpint(w.wakeups, ==, 0);
    g_assert_cmpint(timer_expire_time_ns(vcpu.bound_timer), ==, due);

    /* Early, it finds the boost that is on and what is left of it. */
    fire_bound_timer();
    g_assert_cmpint(w.kicks, ==, 0);
    assert_policed_from(realtime_ns() - MAX_BOOST_NS);
}

/*
 * The bound spent: the main loop kicks the vCPU and the vCPU throttles
 * itself at the exit that follows, without waiting for another kick.
 */
static void test_spent_bound_kicks_and_throttles(void)
{
    setup();
    enable_and_boost();
    w.cpu_ns += MAX_BOOST_NS / 2;
    fire_bound_timer();
    g_assert_cmpint(w.kicks, ==, 0);
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);

    w.cpu_ns += MAX_BOOST_NS;
    fire_bound_timer();
    g_assert_cmpint(w.kicks, ==, 1);
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_OTHER);
    g_assert_cmpuint(w.area.boost_status, ==, PVSCHED_STATUS_THROTTLED);
}

/*
 * Defect: a THROTTLED vCPU whose guest went on asking for BOOST stayed
 * unboosted past its cooldown until its next exit, which a guest with
 * the in-kernel irqchip may not make for long.  To find the cooldown's
 * end the Linux module rang the doorbell at every real-time switch of
 * the cooldown: in the linux benchmark, most of its ~1,000 doorbells a
 * second were answered THROTTLED.  The main loop now kicks the vCPU when
 * the cooldown ends, and the exit that follows honours the pending BOOST;
 * a kick that comes early (another clock) arms the timer again.
 */
static void test_cooldown_end_kicks(void)
{
    setup();
    w.cfg.cooldown_ns = 1 * US;
    enable_and_boost();
    w.cpu_ns += 2 * MAX_BOOST_NS;
    fire_bound_timer();
    kicked_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);

    /* The guest asks for BOOST and runs on, without an exit. */
    w.kicks = 0;
    g_usleep(1000);                 /* past the cooldown on QEMU's clock */
    qemu_clock_run_timers(QEMU_CLOCK_REALTIME);
    g_assert_cmpint(w.kicks, ==, 1);
    /* Not yet over on the state machine's clock: still THROTTLED... */
    kicked_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);
    /* ...and kicked again when it is. */
    w.now_ns += 1 * US;
    g_usleep(1000);
    qemu_clock_run_timers(QEMU_CLOCK_REALTIME);
    g_assert_cmpint(w.kicks, ==, 2);
    kicked_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpuint(w.area.boost_status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_FIFO);

    /* Unregistered while THROTTLED: the cooldown's end kicks nothing. */
    w.cpu_ns += 2 * MAX_BOOST_NS;
    fire_bound_timer();
    kicked_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);
    w.kicks = 0;
    g_assert_true(pvsched_vcpu_msr_write(&vcpu, &msr, 0));
    w.now_ns += 1 * US;
    g_usleep(1000);
    qemu_clock_run_timers(QEMU_CLOCK_REALTIME);
    g_assert_cmpint(w.kicks, ==, 0);
}

/* Registered, boosted once and back to NORMAL: ready for boosts. */
static void setup_unboosted(void)
{
    setup();
    enable_and_boost();
    guest_exit(PVSCHED_REQ_UNBOOST);
}

/*
 * One bounded boost, from its start to its throttle, on a platform where
 * the vCPU runs on for @lag_ns of CPU time after the kick that ends it
 * (the main loop's wake-up and the kick's trip out of KVM_RUN).  The vCPU
 * spins without exits meanwhile, so its CPU clock follows real time until
 * each bound check.  Returns the boost's CPU time.
 */
static int64_t one_boost_with_lag(int64_t lag_ns)
{
    int64_t start;

    w.now_ns += 27000 * US;             /* past the cooldown */
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    start = w.cpu_ns;
    w.kicks = 0;
    while (!w.kicks) {
        g_assert_true(timer_pending(vcpu.bound_timer));
        w.cpu_ns += MAX(timer_expire_time_ns(vcpu.bound_timer) -
                        realtime_ns(), 0);
        fire_bound_timer();
    }
    w.cpu_ns += lag_ns;
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_THROTTLED);
    return w.cpu_ns - start;
}

/*
 * Defect: boosts overran the bound by the kick's lag, every time: in the
 * L1 VM of scripts/l1 a median 4 ms past a 3 ms bound (issue 12), which
 * the storm test's hogs then lost.  Measured, the lag is aimed ahead of:
 * once learned, a boost ends at its bound, give or take a little.
 */
static void test_bound_anticipates_kick_lag(void)
{
    const int64_t lag = 2 * MAX_BOOST_NS / 3;
    int64_t spent = 0;
    int i;

    setup_unboosted();
    for (i = 0; i < 40; i++) {
        spent = one_boost_with_lag(lag);
        g_assert_cmpint(spent, >=, lag);
    }
    g_assert_cmpint(spent, <=, MAX_BOOST_NS + MAX_BOOST_NS / 20);
    g_assert_cmpint(spent, >=, MAX_BOOST_NS - MAX_BOOST_NS / 20);

    /* The lag gone (a quiet host again): boosts get their whole bound. */
    for (i = 0; i < 60; i++) {
        spent = one_boost_with_lag(0);
    }
    g_assert_cmpint(spent, >=, MAX_BOOST_NS - MAX_BOOST_NS / 20);
    g_assert_cmpint(spent, <=, MAX_BOOST_NS + MAX_BOOST_NS / 20);
}

/*
 * A lag longer than the bound itself: each boost is kicked as soon as
 * the main loop polices it, never later than without the estimate.
 */
static void test_bound_lag_beyond_bound(void)
{
    int64_t spent = 0;
    int i;

    setup_unboosted();
    for (i = 0; i < 40; i++) {
        spent = one_boost_with_lag(2 * MAX_BOOST_NS);
        g_assert_cmpint(spent, <=, 3 * MAX_BOOST_NS + BOUND_POLL_SLACK_NS);
    }
    g_assert_cmpint(spent, <=, 2 * MAX_BOOST_NS + BOUND_POLL_SLACK_NS);
}

/*
 * Defect: every exit of a boosted vCPU read its CPU clock (a system
 * call) although the main loop polices the bound.
 */
static void test_exit_reads_no_clock(void)
{
    int i, reads;

    setup();
    enable_and_boost();
    reads = w.cpu_reads;
    for (i = 0; i < 100; i++) {
        guest_exit(PVSCHED_REQ_BOOST);
    }
    g_assert_cmpint(w.cpu_reads - reads, ==, 0);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
}

/*
 * A registered guest that does not change its request costs its exits no
 * policy read and no state machine (7% of a userspace exit otherwise);
 * a new request is still seen at the next exit.
 */
static void test_unchanged_request_skips(void)
{
    int i, reads;

    setup();
    g_assert_true(pvsched_vcpu_msr_write(&vcpu, &msr,
                                         AREA_GPA | PVSCHED_MSR_ENABLE));
    guest_exit(PVSCHED_REQ_NONE);
    reads = w.config_reads;
    for (i = 0; i < 100; i++) {
        guest_exit(PVSCHED_REQ_NONE);
    }
    g_assert_cmpint(w.config_reads - reads, ==, 0);

    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_FIFO);
    /* The exit after a change looks once more, then the rest skip. */
    reads = w.config_reads;
    for (i = 0; i < 100; i++) {
        guest_exit(PVSCHED_REQ_BOOST);
    }
    g_assert_cmpint(w.config_reads - reads, ==, 1);

    guest_exit(PVSCHED_REQ_UNBOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_NORMAL);
    g_assert_cmpuint(w.area.boost_status, ==, PVSCHED_STATUS_NORMAL);
}

/*
 * Defect: a doorbell was evaluated twice, by the run-loop hook at the
 * MSR exit and again by the MSR handler.  KVM runs the hook first.
 */
static void test_doorbell_evaluated_once(void)
{
    int evals;

    setup();
    g_assert_true(pvsched_vcpu_msr_write(&vcpu, &msr,
                                         AREA_GPA | PVSCHED_MSR_ENABLE));
    evals = w.config_reads;
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_true(pvsched_vcpu_msr_write(&vcpu, &msr, PVSCHED_MSR_DOORBELL));
    g_assert_cmphex(msr, ==, AREA_GPA | PVSCHED_MSR_ENABLE);
    g_assert_cmpint(w.config_reads - evals, ==, 1);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpuint(w.area.boost_status, ==, PVSCHED_STATUS_BOOSTED);
}

/*
 * The thread's own attributes are read once, not at every boost; after the
 * host acts on the VM (a resume, a policy change: from the main loop) the
 * next boost reads them again, and gives back what was set from outside.
 */
static void test_own_attributes_forgotten_by_host(void)
{
    const PvschedSchedAttr outside = { .policy = SCHED_BATCH, .nice = 7 };
    int i;

    setup();
    enable_and_boost();
    for (i = 0; i < 3; i++) {
        guest_exit(PVSCHED_REQ_UNBOOST);
        guest_exit(PVSCHED_REQ_BOOST);
    }
    g_assert_cmpint(w.gets, ==, 1);
    guest_exit(PVSCHED_REQ_UNBOOST);

    w.attr = outside;
    pvsched_vcpu_forget_own(&vcpu);
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_FIFO);
    guest_exit(PVSCHED_REQ_UNBOOST);
    g_assert_cmpint(w.gets, ==, 2);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_BATCH);
    g_assert_cmpint(w.attr.nice, ==, 7);
}

static void *vcpu_thread_boosts_and_exits(void *opaque)
{
    enable_and_boost();
    return NULL;
}

/*
 * Defect (CPU hot-unplug): the thread's exit left its state behind: a
 * reference on guest memory, a bound timer reading a dead thread's
 * clock, and a BOOSTED status that a re-plugged vCPU would inherit.
 */
static void test_thread_exit_tears_down(void)
{
    QemuThread t;

    setup();
    qemu_thread_create(&t, "vcpu", vcpu_thread_boosts_and_exits, NULL,
                       QEMU_THREAD_JOINABLE);
    qemu_thread_join(&t);
    g_assert_cmpint(w.areas_mapped, ==, 0);
    g_assert_false(timer_pending(vcpu.bound_timer));
    g_assert_cmpint(w.backstop_timers, ==, 0);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_DISABLED);
    g_assert_false(vcpu.st.boosted);
    g_assert_cmpuint(vcpu.st.boosts, ==, 0);

    /* The next thread for this vCPU starts clean, and can boost. */
    qemu_thread_create(&t, "vcpu", vcpu_thread_boosts_and_exits, NULL,
                       QEMU_THREAD_JOINABLE);
    qemu_thread_join(&t);
    g_assert_cmpint(w.areas_mapped, ==, 0);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_DISABLED);
}

/*
 * Defect: a bound timer that outlived its vCPU kicked
 * qemu_get_cpu(index), NULL by then, when the dead thread's CPU clock
 * (whose read failed, unchecked) looked spent.
 */
static void test_bound_check_after_unplug(void)
{
    setup();
    w.cfg.max_boost_ns = 1;
    enable_and_boost();
    w.cpu_ns += 10 * MAX_BOOST_NS;
    w.cpu_unplugged = true;
    w.thread_gone = true;
    fire_bound_timer();
    g_assert_cmpint(w.kicks, ==, 0);
    g_assert_false(timer_pending(vcpu.bound_timer));
}

/*
 * Defect: reset queued the whole disable on the vCPU thread, so the
 * registration outlived the reset until the vCPU ran its queue.  It now
 * ends in the reset, off the thread, which changes no thread attributes
 * (the fake backend asserts it) and leaves the guest's memory alone; the
 * thread gives its boost back when it runs the work queued for it.
 */
static void test_reset_ends_registration_at_once(void)
{
    setup();
    enable_and_boost();
    reset();
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_DISABLED);
    g_assert_null(vcpu.area.hva);
    g_assert_cmpint(w.areas_mapped, ==, 0);
    g_assert_cmpuint(w.area.boost_status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_FIFO);
    g_assert_true(pvsched_vcpu_unsettled(&vcpu));

    pvsched_vcpu_settle(&vcpu);     /* the work reset queued */
    g_assert_cmpuint(w.attr.policy, ==, SCHED_OTHER);
    g_assert_false(vcpu.st.boosted);
    g_assert_false(pvsched_vcpu_unsettled(&vcpu));
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_DISABLED);
    g_assert_cmpuint(w.area.boost_status, ==, PVSCHED_STATUS_BOOSTED);

    /* Static mode keeps its boost, registered or not: nothing is owed. */
    setup();
    w.cfg.mode = PVSCHED_STATE_STATIC;
    enable_and_boost();
    reset();
    g_assert_false(pvsched_vcpu_unsettled(&vcpu));
    g_assert_cmpuint(w.attr.policy, ==, SCHED_FIFO);
}

/*
 * Defect: loadvm resets, then loads: the reset's queued work ran after
 * the load and disabled the registration just loaded, and the load
 * itself unboosted on the thread that loads (the main loop) rather than
 * the vCPU's.  Now the load registers off the thread, the guest sees
 * NORMAL at once, and the thread's first act, whatever it is (the queued
 * settle, or an exit before it), gives the old boost back; the late
 * settle then changes nothing.  A boost taken after that gives back the
 * thread's own attributes, not the boosted ones.
 */
static void test_restore_before_settle(void)
{
    setup();
    w.attr = (PvschedSchedAttr) { .policy = SCHED_OTHER, .nice = 5 };
    enable_and_boost();
    reset();
    w.area.boost_status = PVSCHED_STATUS_BOOSTED;   /* the snapshot's */
    g_assert_true(restore(AREA_GPA | PVSCHED_MSR_ENABLE));
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_NORMAL);
    g_assert_cmpuint(w.area.boost_status, ==, PVSCHED_STATUS_NORMAL);
    g_assert_nonnull(vcpu.area.hva);
    g_assert_true(pvsched_vcpu_unsettled(&vcpu));

    /* An exit first: it settles, then boosts from the thread's own. */
    guest_exit(PVSCHED_REQ_BOOST);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpint(vcpu.st.saved.nice, ==, 5);
    pvsched_vcpu_settle(&vcpu);     /* late: finds nothing owed */
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_nonnull(vcpu.area.hva);
    guest_exit(PVSCHED_REQ_UNBOOST);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_OTHER);
    g_assert_cmpint(w.attr.nice, ==, 5);

    /* The settle first, as the queue has it: the registration stays. */
    guest_exit(PVSCHED_REQ_BOOST);
    reset();
    g_assert_true(restore(AREA_GPA | PVSCHED_MSR_ENABLE));
    g_assert_cmpuint(w.attr.policy, ==, SCHED_FIFO);
    pvsched_vcpu_settle(&vcpu);
    g_assert_cmpuint(w.attr.policy, ==, SCHED_OTHER);
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_NORMAL);
    g_assert_nonnull(vcpu.area.hva);
    g_assert_cmpint(w.areas_mapped, ==, 1);
}

/* A value the machine cannot honour: refused, nothing changed. */
static void test_restore_refuses(void)
{
    setup();
    g_assert_false(restore(AREA_GPA));
    g_assert_false(restore(AREA_GPA | PVSCHED_MSR_ENABLE | 0x2));
    g_assert_cmpuint(vcpu.st.status, ==, PVSCHED_STATUS_DISABLED);
    g_assert_cmpint(w.areas_mapped, ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    qemu_init_main_loop(&error_abort);
    g_test_add_func("/pvsched/vcpu/exit/unchanged-request-skips",
                    test_unchanged_request_skips);
    g_test_add_func("/pvsched/vcpu/bound/every-boost-arms",
                    test_every_boost_arms_the_bound);
    g_test_add_func("/pvsched/vcpu/bound/boost-after-let-go",
                    test_boost_after_bound_check_let_go);
    g_test_add_func("/pvsched/vcpu/bound/from-unbounded",
                    test_bound_from_unbounded);
    g_test_add_func("/pvsched/vcpu/bound/lowered-under-boost",
                    test_bound_lowered_under_boost);
    g_test_add_func("/pvsched/vcpu/bound/restore-polices-static",
                    test_restore_polices_static_boost);
    g_test_add_func("/pvsched/vcpu/bound/reregister-keeps-static",
                    test_reregister_keeps_static_bound);
    g_test_add_func("/pvsched/vcpu/bound/churn-leaves-the-timer",
                    test_boost_churn_leaves_the_timer);
    g_test_add_func("/pvsched/vcpu/bound/spent-kicks-throttles",
                    test_spent_bound_kicks_and_throttles);
    g_test_add_func("/pvsched/vcpu/bound/cooldown-end-kicks",
                    test_cooldown_end_kicks);
    g_test_add_func("/pvsched/vcpu/bound/anticipates-kick-lag",
                    test_bound_anticipates_kick_lag);
    g_test_add_func("/pvsched/vcpu/bound/lag-beyond-bound",
                    test_bound_lag_beyond_bound);
    g_test_add_func("/pvsched/vcpu/backstop/armed-per-boost",
                    test_backstop_armed_per_boost);
    g_test_add_func("/pvsched/vcpu/backstop/brackets-the-boost",
                    test_backstop_brackets_the_boost);
    g_test_add_func("/pvsched/vcpu/backstop/kick-throttles",
                    test_backstop_kick_throttles);
    g_test_add_func("/pvsched/vcpu/backstop/early-kick-rearms",
                    test_backstop_early_kick_rearms);
    g_test_add_func("/pvsched/vcpu/backstop/unavailable",
                    test_backstop_unavailable);
    g_test_add_func("/pvsched/vcpu/exit/reads-no-clock",
                    test_exit_reads_no_clock);
    g_test_add_func("/pvsched/vcpu/doorbell/evaluated-once",
                    test_doorbell_evaluated_once);
    g_test_add_func("/pvsched/vcpu/own-attributes-forgotten-by-host",
                    test_own_attributes_forgotten_by_host);
    g_test_add_func("/pvsched/vcpu/unplug/thread-exit-tears-down",
                    test_thread_exit_tears_down);
    g_test_add_func("/pvsched/vcpu/unplug/bound-check-after",
                    test_bound_check_after_unplug);
    g_test_add_func("/pvsched/vcpu/reset/at-once",
                    test_reset_ends_registration_at_once);
    g_test_add_func("/pvsched/vcpu/reset/restore-before-settle",
                    test_restore_before_settle);
    g_test_add_func("/pvsched/vcpu/restore/refuses", test_restore_refuses);
    return g_test_run();
}
