/*
 * pvsched: one vCPU, from its guest area to its thread's scheduling
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/thread.h"
#include "block/aio.h"
#include "hw/core/cpu.h"
#include "qapi/qapi-events-pvsched.h"
#include "pvsched/vcpu.h"
#include "trace.h"

static const PvschedBackend *backend = &pvsched_host_backend;

/*
 * The budget cannot be spent faster than real time, so now + left is the
 * earliest the bound can run out.  But a halted or stopped vCPU spends
 * nothing and left stays where it is: polling at now + left would wake
 * the main loop, which runs above every vCPU, at 1/left Hz for as long
 * as the vCPU sleeps, and spin at left == 0.  The floor is the precision
 * of the bound: a vCPU that runs again overruns it by at most this much
 * before it is kicked, and the main loop wakes at most this often.
 */
#define BOUND_POLL_MIN_NS (100 * SCALE_US)

/*
 * A kick is not lost: it stays pending until the vCPU next enters
 * KVM_RUN, which then returns at once and the vCPU throttles itself.  A
 * vCPU still boosted after a kick has not been back in the guest since
 * (a stopped VM, say), so the kick is resent as a safety net only, less
 * and less often.
 */
#define BOUND_KICK_RETRY_MAX_NS (10 * SCALE_MS)

/*
 * A bound check sees the CPU time spent up to itself, not what the vCPU
 * spends after it: until the main loop has woken, kicked, and the kick
 * has brought the vCPU out of KVM_RUN to throttle.  Microseconds on
 * hardware; milliseconds in a nested VM whose timer and kick are exits
 * its host emulates (a median 4 ms past a 3 ms bound in the L1 VM of
 * scripts/l1).  So each throttle measures that lag, and the checks aim
 * that far ahead of the bound: boosts end at their bound on average,
 * whatever the platform.  An average over about 2^LAG_SHIFT boosts,
 * never more than the bound: a longer lag is kicked at once.
 */
#define LAG_SHIFT 3

/* The boosted CPU time at which the bound checks kick. */
static int64_t bound_aim(PvschedVcpu *v, int64_t max_boost_ns)
{
    return MAX(max_boost_ns - qatomic_read(&v->lag_ns), 1);
}

/*
 * On the vCPU thread, at a throttle: how far past the aim the boost ran
 * (@boosted_ns: its CPU time, from the boost to now).
 */
static void learn_lag(PvschedVcpu *v, int64_t aim_ns, int64_t max_boost_ns,
                      int64_t boosted_ns)
{
    /* Only what ran under the bound: a static boost may predate it. */
    int64_t spent = boosted_ns - (v->st.bound_cpu_ns - v->st.boost_cpu_ns);
    int64_t sample = MAX(spent - aim_ns, 0);
    int64_t lag = qatomic_read(&v->lag_ns);

    lag += (sample - lag) / (1 << LAG_SHIFT);
    lag = MIN(MAX(lag, 0), max_boost_ns);
    qatomic_set(&v->lag_ns, lag);
    trace_pvsched_bound_lag(v->index, sample, lag);
}

/*
 * From any thread: the boosted CPU time the vCPU has spent under its
 * bound so far, in *@spent; false once its thread is gone.
 */
static bool bound_spent(PvschedVcpu *v, int64_t *spent)
{
    int64_t cpu_ns = backend->clock_cpu_ns(qatomic_read(&v->cpu_clock),
                                           backend->opaque);

    *spent = cpu_ns - qatomic_read(&v->st.bound_cpu_ns);
    return cpu_ns >= 0;
}

/*
 * The bound on boosted CPU time, enforced from the main loop whatever the
 * guest does: POSIX CPU-time timers fire on the host tick, too late to be
 * the only check of a 3 ms budget (they are the backstop, below), so a
 * high-resolution timer compares the vCPU thread's CPU
 * clock with its budget and, once it is spent, kicks the vCPU out of
 * KVM_RUN; the vCPU thread then throttles itself in its run loop.  The
 * vCPU reads its own clock only then (bound_due), not at every exit.
 *
 * Runs under the BQL, as does vcpu_thread_exit(): a vCPU whose thread has
 * exited is either torn down already (not BOOSTED) or found gone here.
 */
static void bound_check(void *opaque)
{
    PvschedVcpu *v = opaque;
    PvschedBoostConfig cfg;
    CPUState *cs;
    int64_t spent, left, next;

    if (qatomic_read(&v->st.status) != PVSCHED_STATUS_BOOSTED) {
        v->kick_retry_ns = 0;
        return;
    }
    pvsched_policy_get_config(v->policy, &cfg);
    if (!cfg.max_boost_ns) {
        v->kick_retry_ns = 0;
        return;
    }
    cs = qemu_get_cpu(v->index);
    if (!bound_spent(v, &spent) || !cs) {
        trace_pvsched_bound_gone(v->index);
        v->kick_retry_ns = 0;
        return;
    }
    left = bound_aim(v, cfg.max_boost_ns) - spent;
    if (left >= 0) {
        v->kick_retry_ns = 0;
        next = MAX(left, BOUND_POLL_MIN_NS);
    } else {
        trace_pvsched_bound_kick(v->index, -left);
        /* Seen at the exit the kick forces: a system call orders it. */
        qatomic_set(&v->bound_due, true);
        qemu_cpu_kick(cs);
        next = v->kick_retry_ns ?: BOUND_POLL_MIN_NS;
        v->kick_retry_ns = MIN(next * 2, BOUND_KICK_RETRY_MAX_NS);
    }
    timer_mod(v->bound_timer, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + next);
}

/*
 * The kernel's half of the bound.  bound_check() runs in the main loop,
 * which can block in the kernel behind a thread that the boosted vCPUs
 * starve: traced in the L1 VM, it waited 1.2 and 1.6 s in mmap() for
 * mmap_lock (no priority inheritance there), held by a SCHED_OTHER
 * thread's page fault, while both vCPUs stayed boosted.  So a timer on
 * the vCPU thread's own CPU clock also kicks it at the whole bound: up
 * to a host tick late, but whatever the rest of QEMU is doing.  The exit
 * it forces checks the bound, as a kick from bound_check() does.  One
 * timer_settime() arms it per boost, another disarms it when the boost
 * ends: without that, a vCPU that later runs unboosted for max-boost-us
 * would be kicked for nothing.  The state machine does both around the
 * priority change itself (pvsched_state_arm_backstop()), so that the
 * thread is never real-time without it; here it is armed again when the
 * bound moves.
 */
static void backstop_arm(PvschedVcpu *v, int64_t ns)
{
    int ret;

    if (pvsched_state_arm_backstop(&v->st, backend, ns, &ret)) {
        trace_pvsched_bound_backstop(v->index, ns, ret);
    }
}

/* On the vCPU thread: its CPU clock is the backstop's. */
static void backstop_create(PvschedVcpu *v)
{
    int ret = backend->cpu_timer_create(&v->st.backstop, backend->opaque);

    v->st.has_backstop = ret == 0;
    v->st.backstop_armed = false;
    if (ret < 0) {
        /* Only the main loop polices this vCPU's bound now. */
        warn_report("pvsched: vCPU %d: no CPU-time timer for its boost "
                    "bound: %s", v->index, strerror(-ret));
    }
}

/* What is left of a bound that started before now; at least 1 ns. */
static int64_t bound_left(PvschedVcpu *v, int64_t max_boost_ns)
{
    int64_t spent;

    return bound_spent(v, &spent) ? MAX(max_boost_ns - spent, 1) : 1;
}

static bool bound_applies(PvschedVcpu *v)
{
    return v->st.status == PVSCHED_STATUS_BOOSTED && v->st.bounded;
}

/*
 * On the vCPU thread, after every change of its state: each start of a
 * bounded boost arms the bound timer, whatever the timer looks like.
 *
 * Testing timer_pending() instead loses the bound: this thread stores
 * BOOSTED then loads the timer's state; bound_check() is called once the
 * timer is off its list, then loads the status.  Each thread may read the
 * other's old value (store buffering): the timer looks pending here while
 * bound_check() sees no boost and lets go.
 *
 * Arming unconditionally cannot lose it.  Arming and the main loop's
 * removal of an expired timer take the same timer-list lock.  If we arm
 * first, the timer expires at the latest max_boost_ns later, and the main
 * loop, which takes it off the list under the lock after we released it,
 * then sees our BOOSTED store in bound_check().  If the removal comes
 * first, arming puts the timer back.  Either way, as long as the vCPU is
 * boosted its bound timer is pending or its callback will see the boost
 * and re-arm it; only this thread ends a boost.
 *
 * Arming only ever brings the timer forward (timer_mod_anticipate): a
 * timer moved to a new end at every boost would be the first to expire
 * each time, and wake the main loop, which runs above every vCPU, once
 * per boost of a guest that boosts as fast as it can.  A timer that fires
 * early costs one bound_check(), which re-arms it for what is left.
 */
static void police_bound(PvschedVcpu *v, const PvschedBoostConfig *cfg,
                         bool checked)
{
    bool applies = bound_applies(v);
    bool boosted = v->st.boosts != v->policed_boosts;
    /* Boosted, or bounded, since we last looked: a bound starts now. */
    bool fresh = boosted || (v->st.bounded && !v->policed_bounded);
    bool whole = fresh && !v->policing;
    bool moved = !v->policing || cfg->max_boost_ns != v->policed_ns;

    if (applies && moved) {
        /*
         * A bound that starts now has all of it left.  Any other is due
         * now, and bound_check() works out what is left of it: the policy
         * changed the bound under this boost, or a static boost, which
         * outlives its area, is policed again after a new registration
         * or a migration.  A whole bound for those would let a guest that
         * registers again and again push the timer out for ever.
         */
        trace_pvsched_bound_arm(v->index, cfg->max_boost_ns);
        timer_mod_anticipate(v->bound_timer,
                             qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                             (whole ? bound_aim(v, cfg->max_boost_ns) : 0));
    }
    if (applies && boosted && v->st.backstop_armed) {
        /* The boost armed it, before it raised the priority. */
        trace_pvsched_bound_backstop(v->index, cfg->max_boost_ns, 0);
    } else if (applies && (moved || checked)) {
        /* A check may have been the backstop's own, which then is spent. */
        backstop_arm(v, whole ? cfg->max_boost_ns :
                               bound_left(v, cfg->max_boost_ns));
    } else if (!applies) {
        backstop_arm(v, 0);
    }
    v->policing = applies;
    v->policed_ns = applies ? cfg->max_boost_ns : 0;
    v->policed_boosts = v->st.boosts;
    v->policed_bounded = v->st.bounded;
}

/*
 * The end of a cooldown, in the main loop.  The guest cannot see it
 * coming, and the host reads the area only at an exit, which a vCPU whose
 * interrupts the in-kernel irqchip delivers may not make for long: kick
 * the vCPU, so that the exit honours a BOOST the guest asked for meanwhile
 * without the guest ringing through the cooldown to find its end.
 */
static void cooldown_end(void *opaque)
{
    PvschedVcpu *v = opaque;
    CPUState *cs;

    if (qatomic_read(&v->st.status) != PVSCHED_STATUS_THROTTLED) {
        return;
    }
    cs = qemu_get_cpu(v->index);
    if (cs) {
        trace_pvsched_cooldown_kick(v->index);
        qemu_cpu_kick(cs);
    }
}

/*
 * On the vCPU thread, at each exit that leaves it THROTTLED.  Only ever
 * brought forward, so that a guest ringing through its cooldown does not
 * push the kick out; a kick that comes early (QEMU's clock against the
 * state machine's) finds the vCPU still THROTTLED and arms it again.  The
 * status is stored before the timer-list lock is taken here, and read
 * after the main loop takes it: cooldown_end() sees it.
 */
static void police_cooldown(PvschedVcpu *v)
{
    int64_t left = v->st.cooldown_end_ns - backend->now_ns(backend->opaque);

    timer_mod_anticipate(v->cooldown_timer,
                         qemu_clock_get_ns(QEMU_CLOCK_REALTIME) +
                         MAX(left, 0));
}

void pvsched_vcpu_init(PvschedVcpu *v, int index, PvschedPolicy *policy)
{
    *v = (PvschedVcpu) { .index = index, .policy = policy, .quiet_req = -1 };
    pvsched_state_init(&v->st);
    v->bound_timer = timer_new_ns(QEMU_CLOCK_REALTIME, bound_check, v);
    v->cooldown_timer = timer_new_ns(QEMU_CLOCK_REALTIME, cooldown_end, v);
}

/*
 * QMP events, sent from the main loop: vCPU threads run without the BQL.
 * Guest triggered, so monitor.c rate-limits them per vCPU.
 */
typedef struct PvschedEvent {
    int index;
    bool throttled;             /* else: the area changed */
    bool registered;
    uint64_t area;              /* its address, when registered */
} PvschedEvent;

static void send_event(void *opaque)
{
    g_autofree PvschedEvent *ev = opaque;
    CPUState *cs = qemu_get_cpu(ev->index);

    if (ev->throttled) {
        qapi_event_send_pvsched_throttled(ev->index, cs ? cs->thread_id : 0);
    } else {
        qapi_event_send_pvsched_area_changed(ev->index, ev->registered,
                                             ev->registered, ev->area);
    }
}

static void queue_event(PvschedVcpu *v, bool throttled, uint64_t area)
{
    PvschedEvent *ev = g_new(PvschedEvent, 1);

    *ev = (PvschedEvent) {
        .index = v->index,
        .throttled = throttled,
        .registered = v->area.hva != NULL,
        .area = area,
    };
    aio_bh_schedule_oneshot(qemu_get_aio_context(), send_event, ev);
}

/*
 * The start-up check cannot see everything: libvirt, for one, moves vCPU
 * threads into cgroups later, and a cgroup without real-time runtime makes
 * every boost fail.  Say so once per vCPU rather than fail in silence.
 */
static void warn_failure(PvschedVcpu *v)
{
    if (!v->warned) {
        v->warned = true;
        warn_report("pvsched: vCPU %d: changing its thread's scheduling "
                    "failed: %s", v->index, strerror(-v->st.last_error));
        error_printf("The vCPU thread needs CAP_SYS_NICE or a sufficient "
                     "RLIMIT_RTPRIO, and its cgroup real-time runtime "
                     "(cpu.rt_runtime_us) if the host has RT group "
                     "scheduling.  query-pvsched shows the last error.\n");
    }
}

static void trace_change(PvschedVcpu *v, uint64_t old, uint8_t req)
{
    trace_pvsched_status(v->index, pvsched_status_name(old),
                         pvsched_status_name(v->st.status), req,
                         pvsched_policy_name(v->st.applied.policy),
                         v->st.applied.priority);
    if (v->st.last_error) {
        trace_pvsched_sched_error(v->index, v->st.last_error);
        warn_failure(v);
    }
}

static void publish(PvschedVcpu *v, bool changed, uint64_t old, uint8_t req)
{
    if (changed && v->area.hva) {
        pvsched_area_set_status(&v->area, v->st.status);
        if (v->st.status == PVSCHED_STATUS_THROTTLED) {
            queue_event(v, true, 0);
        }
    }
    if (changed || v->st.last_error) {
        trace_change(v, old, req);
    }
}

/*
 * The vCPU's thread exits (CPU hot-unplug).  Its scheduling attributes
 * die with it; what is kept here must not outlive it: a bound timer would
 * read a dead thread's clock and kick a CPU that is gone, a reference on
 * guest memory would never be dropped, and a vCPU plugged in again at
 * this index would start out BOOSTED on a thread that is not.
 *
 * Runs on the exiting thread after its loop, without the BQL: take it, as
 * bound_check() and memory_region_unref() do.  Whoever unplugs the CPU
 * waits for the thread without the BQL (cpu_remove_sync()).
 */
static void vcpu_thread_exit(Notifier *n, void *data)
{
    PvschedVcpu *v = container_of(n, PvschedVcpu, thread_exit);
    bool registered = v->area.hva;

    bql_lock();
    trace_pvsched_thread_exit(v->index, pvsched_status_name(v->st.status),
                              registered);
    timer_del(v->bound_timer);
    timer_del(v->cooldown_timer);
    if (v->st.has_backstop) {
        backend->cpu_timer_delete(v->st.backstop, backend->opaque);
    }
    pvsched_area_unmap(&v->area);
    /* The MSR goes with its CPU: a CPU plugged in again starts at 0. */
    pvsched_state_init(&v->st);
    v->kick_retry_ns = 0;
    v->lag_ns = 0;
    v->bound_due = false;
    v->own_stale = false;
    v->policing = false;
    v->policed_ns = 0;
    v->policed_boosts = 0;
    v->policed_bounded = false;
    v->quiet_req = -1;
    v->warned = false;
    v->exit_watched = false;
    if (registered) {
        queue_event(v, false, 0);
    }
    bql_unlock();
}

/*
 * On the vCPU thread, before it first gets any state here: what lives and
 * dies with the thread, its teardown at exit and its CPU-time timer.
 */
static void bind_thread(PvschedVcpu *v)
{
    if (unlikely(!v->exit_watched)) {
        v->thread_exit.notify = vcpu_thread_exit;
        qemu_thread_atexit_add(&v->thread_exit);
        v->exit_watched = true;
        backstop_create(v);
    }
}

void pvsched_vcpu_forget_own(PvschedVcpu *v)
{
    qatomic_set(&v->own_stale, true);
}

/* On the vCPU thread, the only one that writes its state. */
static void take_own_stale(PvschedVcpu *v)
{
    if (unlikely(qatomic_read(&v->own_stale))) {
        qatomic_set(&v->own_stale, false);
        pvsched_state_forget_own(&v->st);
    }
}

/*
 * An exit that found nothing to do will find nothing again with the same
 * request, until something else moves: time only matters to a THROTTLED
 * vCPU (the cooldown) or to the bound, whose checks come as kicks
 * (@interrupted) or bound_due; a refused change retries at every exit;
 * a policy change applies on each vCPU itself; the MSR, reset, restore
 * and settle forget the quiet request.  So most exits of a registered
 * guest, the doorbell with req NONE included, skip the state machine.
 */
static bool settled(PvschedVcpu *v, bool changed, uint64_t old,
                    uint64_t throttles)
{
    return !changed && v->st.status == old && !v->st.last_error &&
           v->st.throttles == throttles &&
           (old == PVSCHED_STATUS_NORMAL || old == PVSCHED_STATUS_BOOSTED);
}

static void apply(PvschedVcpu *v, bool check_bound)
{
    PvschedBoostConfig cfg, aimed;
    const PvschedBoostConfig *state_cfg = &cfg;
    /* Unregistered: no request, but static mode boosts all the same. */
    uint8_t req = v->area.hva ? pvsched_area_boost_req(&v->area) :
                                PVSCHED_REQ_NONE;
    uint64_t old = v->st.status;
    uint64_t throttles = v->st.throttles;
    int64_t boosted_ns = v->st.boosted_cpu_ns;
    bool changed;

    bind_thread(v);
    take_own_stale(v);
    pvsched_policy_get_config(v->policy, &cfg);
    /*
     * The state machine throttles where the bound checks kick; it reads
     * the bound only when told to check it, so other exits skip this.
     */
    if (check_bound && cfg.max_boost_ns) {
        aimed = cfg;
        aimed.max_boost_ns = bound_aim(v, cfg.max_boost_ns);
        state_cfg = &aimed;
    }
    changed = pvsched_state_exit(&v->st, state_cfg, backend, req,
                                 check_bound);
    if (v->st.throttles != throttles) {
        learn_lag(v, state_cfg->max_boost_ns, cfg.max_boost_ns,
                  v->st.boosted_cpu_ns - boosted_ns);
    }
    publish(v, changed, old, req);
    police_bound(v, &cfg, check_bound);
    if (v->st.status == PVSCHED_STATUS_THROTTLED) {
        police_cooldown(v);
    }
    v->quiet_req = settled(v, changed, old, throttles) ? req : -1;
}

void pvsched_vcpu_apply(PvschedVcpu *v)
{
    apply(v, true);
}

void pvsched_vcpu_exit(PvschedVcpu *v, bool interrupted)
{
    /* A kick of a policed vCPU may be the backstop's: check the bound. */
    bool check_bound = interrupted && v->policing;

    if (unlikely(qatomic_read(&v->bound_due))) {
        qatomic_set(&v->bound_due, false);
        /*
         * Cleared before the clock is read: a request the main loop makes
         * meanwhile stays set for the next exit.
         */
        smp_mb();
        check_bound = true;
    }
    if (!check_bound &&
        pvsched_area_boost_req(&v->area) == v->quiet_req) {
        return;
    }
    apply(v, check_bound);
}

static void disable(PvschedVcpu *v, bool tell_guest)
{
    uint64_t old = v->st.status;
    PvschedBoostConfig cfg;
    bool changed;

    pvsched_policy_get_config(v->policy, &cfg);
    changed = pvsched_state_disable(&v->st, &cfg, backend);

    if (tell_guest) {
        pvsched_area_set_status(&v->area, v->st.status);
    }
    if (changed) {
        trace_change(v, old, 0);
    }
    police_bound(v, &cfg, false);
    pvsched_area_unmap(&v->area);
    queue_event(v, false, 0);
}

static bool enable(PvschedVcpu *v, uint64_t *msr, uint64_t val)
{
    PvschedBoostConfig cfg;
    PvschedArea area;
    clockid_t clock;
    const char *why;
    uint64_t old = v->st.status;

    if (!pvsched_area_map(&area, val & ~PVSCHED_MSR_ENABLE, &why)) {
        trace_pvsched_msr_invalid(v->index, val, why);
        return false;
    }
    bind_thread(v);
    if (v->area.hva) {
        disable(v, true);
    }
    v->quiet_req = -1;
    v->area = area;
    qatomic_set(msr, val);
    /* On the vCPU thread: the clock the main loop polices the bound with. */
    pthread_getcpuclockid(pthread_self(), &clock);
    qatomic_set(&v->cpu_clock, clock);
    trace_pvsched_msr_enable(v->index, val & ~PVSCHED_MSR_ENABLE);
    /*
     * Status becomes NORMAL (BOOSTED in static mode); a pending BOOST
     * waits for the next exit.
     */
    pvsched_policy_get_config(v->policy, &cfg);
    pvsched_state_enable(&v->st, &cfg, backend);
    publish(v, true, old, 0);
    police_bound(v, &cfg, false);
    queue_event(v, false, val & ~PVSCHED_MSR_ENABLE);
    return true;
}

/*
 * Under the BQL: an area holds a reference on the memory it is in, and
 * letting go of the last one (a DIMM unplugged and its backend deleted
 * meanwhile) finalizes that memory, which only the BQL's holder may do.
 * The Xen emulation's vcpu_info runs the same steps under the BQL too.
 * MSR handlers run without it, so take it: registering is rare, and the
 * doorbell, the hot path, stays lock-free.
 */
static bool msr_register(PvschedVcpu *v, uint64_t *msr, uint64_t val)
{
    BQL_LOCK_GUARD();

    if (val == PVSCHED_MSR_DISABLE) {
        trace_pvsched_msr_disable(v->index);
        v->quiet_req = -1;
        if (v->area.hva) {
            disable(v, true);
        }
        qatomic_set(msr, 0);
        return true;
    }
    if (!(val & PVSCHED_MSR_ENABLE)) {
        trace_pvsched_msr_invalid(v->index, val, "enable bit clear");
        return false;
    }
    if (val & PVSCHED_MSR_RESERVED_MASK) {
        trace_pvsched_msr_invalid(v->index, val, "reserved bits 5:1 set");
        return false;
    }
    return enable(v, msr, val);
}

bool pvsched_vcpu_msr_write(PvschedVcpu *v, uint64_t *msr, uint64_t val)
{
    if (val == PVSCHED_MSR_DOORBELL) {
        /*
         * Evaluated already: the run-loop hook runs at every KVM_RUN
         * return, this MSR exit's included, before the exit is handled.
         */
        trace_pvsched_msr_doorbell(v->index);
        return true;
    }
    return msr_register(v, msr, val);
}

/*
 * Off the vCPU thread, under the BQL, with the vCPU stopped (the device's
 * reset hold phase).  The registration ends here and now, so that what
 * comes next (the vCPUs running again, or loadvm and incoming migration
 * loading theirs) starts from it; only the unboost waits for the thread.
 */
void pvsched_vcpu_reset(PvschedVcpu *v)
{
    PvschedBoostConfig cfg;
    uint64_t old = v->st.status;
    bool registered = v->area.hva;
    v->quiet_req = -1;

    trace_pvsched_reset(v->index, registered);
    pvsched_policy_get_config(v->policy, &cfg);
    if (pvsched_state_reset(&v->st)) {
        trace_change(v, old, 0);
    }
    /* Not BOOSTED any more: the bound timer lets go when it next fires. */
    police_bound(v, &cfg, false);
    /* After reset the area is guest memory like any other: hands off. */
    pvsched_area_unmap(&v->area);
    if (registered) {
        queue_event(v, false, 0);
    }
}

/* Off the vCPU thread, under the BQL, with the vCPU stopped: post_load. */
bool pvsched_vcpu_restore(PvschedVcpu *v, uint64_t val, clockid_t cpu_clock,
                          const char **why)
{
    PvschedBoostConfig cfg;
    PvschedArea area;

    if (!(val & PVSCHED_MSR_ENABLE)) {
        *why = "enable bit clear";
        return false;
    }
    if (val & PVSCHED_MSR_RESERVED_MASK) {
        *why = "reserved bits 5:1 set";
        return false;
    }
    if (!pvsched_area_map(&area, val & ~PVSCHED_MSR_ENABLE, why)) {
        return false;
    }
    if (v->area.hva) {
        /* Loaded over a registration that no reset ended: end it. */
        pvsched_vcpu_reset(v);
    }
    v->quiet_req = -1;
    v->area = area;
    qatomic_set(&v->cpu_clock, cpu_clock);
    /*
     * Not boosted here yet: a pending BOOST is honoured at the next exit.
     * Static mode keeps its boost, policed from now on: the next exit to
     * QEMU may be far away.  The guest is told before it runs again.
     */
    pvsched_policy_get_config(v->policy, &cfg);
    pvsched_state_restore(&v->st, &cfg);
    pvsched_area_set_status(&v->area, v->st.status);
    trace_pvsched_restore(v->index, val & ~PVSCHED_MSR_ENABLE,
                          pvsched_status_name(v->st.status));
    police_bound(v, &cfg, false);
    return true;
}

bool pvsched_vcpu_unsettled(PvschedVcpu *v)
{
    PvschedBoostConfig cfg;

    pvsched_policy_get_config(v->policy, &cfg);
    return pvsched_state_unsettled(&v->st, &cfg);
}

/* On the vCPU thread, with the BQL: work that reset queued. */
void pvsched_vcpu_settle(PvschedVcpu *v)
{
    PvschedBoostConfig cfg;
    uint64_t old = v->st.status;
    bool changed;

    pvsched_policy_get_config(v->policy, &cfg);
    if (!pvsched_state_unsettled(&v->st, &cfg)) {
        return;
    }
    v->quiet_req = -1;
    trace_pvsched_settle(v->index, pvsched_status_name(old));
    changed = pvsched_state_settle(&v->st, &cfg, backend);
    publish(v, changed, old, 0);
    if (!changed) {
        trace_change(v, old, 0);
    }
    police_bound(v, &cfg, false);
}
