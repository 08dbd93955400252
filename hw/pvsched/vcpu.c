/*
 * pvsched: one vCPU, from its guest area to its thread's scheduling
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
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

static int64_t vcpu_cpu_ns(PvschedVcpu *v)
{
    struct timespec ts;

    clock_gettime(v->cpu_clock, &ts);
    return ts.tv_sec * NANOSECONDS_PER_SECOND + ts.tv_nsec;
}

/*
 * The bound on boosted CPU time, enforced from the main loop whatever the
 * guest does: POSIX CPU-time timers fire on the host tick, too late for a
 * 3 ms budget, so a high-resolution timer compares the vCPU thread's CPU
 * clock with its budget and, once it is spent, kicks the vCPU out of
 * KVM_RUN; the vCPU thread then throttles itself in its run loop.
 */
static void bound_check(void *opaque)
{
    PvschedVcpu *v = opaque;
    PvschedBoostConfig cfg;
    int64_t left, next;

    if (qatomic_read(&v->st.status) != PVSCHED_STATUS_BOOSTED) {
        v->kick_retry_ns = 0;
        return;
    }
    pvsched_policy_get_config(v->policy, &cfg);
    if (!cfg.max_boost_ns) {
        v->kick_retry_ns = 0;
        return;
    }
    left = cfg.max_boost_ns -
           (vcpu_cpu_ns(v) - qatomic_read(&v->st.bound_cpu_ns));
    if (left >= 0) {
        v->kick_retry_ns = 0;
        next = MAX(left, BOUND_POLL_MIN_NS);
    } else {
        trace_pvsched_bound_kick(v->index, -left);
        qemu_cpu_kick(qemu_get_cpu(v->index));
        next = v->kick_retry_ns ?: BOUND_POLL_MIN_NS;
        v->kick_retry_ns = MIN(next * 2, BOUND_KICK_RETRY_MAX_NS);
    }
    timer_mod(v->bound_timer, qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + next);
}

void pvsched_vcpu_init(PvschedVcpu *v, int index, PvschedPolicy *policy)
{
    *v = (PvschedVcpu) { .index = index, .policy = policy };
    pvsched_state_init(&v->st);
    v->bound_timer = timer_new_ns(QEMU_CLOCK_REALTIME, bound_check, v);
}

/*
 * QMP events, sent from the main loop: vCPU threads run without the BQL.
 * Guest triggered, so monitor.c rate-limits them per vCPU.
 */
typedef struct PvschedEvent {
    int index;
    bool throttled;             /* else: the area changed */
    bool registered;
    uint64_t area;
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

static void queue_event(PvschedVcpu *v, bool throttled)
{
    PvschedEvent *ev = g_new(PvschedEvent, 1);

    *ev = (PvschedEvent) {
        .index = v->index,
        .throttled = throttled,
        .registered = v->area.hva != NULL,
        .area = v->msr_val & ~PVSCHED_MSR_ENABLE,
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
            queue_event(v, true);
        }
    }
    if (changed || v->st.last_error) {
        trace_change(v, old, req);
    }
}

void pvsched_vcpu_apply(PvschedVcpu *v)
{
    PvschedBoostConfig cfg;
    /* Unregistered: no request, but static mode boosts all the same. */
    uint8_t req = v->area.hva ? pvsched_area_boost_req(&v->area) :
                                PVSCHED_REQ_NONE;
    uint64_t old = v->st.status;

    pvsched_policy_get_config(v->policy, &cfg);
    publish(v, pvsched_state_update(&v->st, &cfg, backend, req), old, req);
    /*
     * Police the bound from the first boost, and from a switch to a
     * bounded mode under a boost that was not bounded.  Thread-safe; CPU
     * time never runs ahead of real time.
     */
    if (v->st.status == PVSCHED_STATUS_BOOSTED && cfg.max_boost_ns &&
        !timer_pending(v->bound_timer)) {
        timer_mod(v->bound_timer,
                  qemu_clock_get_ns(QEMU_CLOCK_REALTIME) + cfg.max_boost_ns);
    }
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
    pvsched_area_unmap(&v->area);
    v->msr_val = 0;
    queue_event(v, false);
}

static bool enable(PvschedVcpu *v, uint64_t val)
{
    PvschedBoostConfig cfg;
    PvschedArea area;
    const char *why;
    uint64_t old = v->st.status;

    if (!pvsched_area_map(&area, val & ~PVSCHED_MSR_ENABLE, &why)) {
        trace_pvsched_msr_invalid(v->index, val, why);
        return false;
    }
    if (v->area.hva) {
        disable(v, true);
    }
    v->area = area;
    v->msr_val = val;
    /* On the vCPU thread: the clock the main loop polices the bound with. */
    pthread_getcpuclockid(pthread_self(), &v->cpu_clock);
    trace_pvsched_msr_enable(v->index, val & ~PVSCHED_MSR_ENABLE);
    /*
     * Status becomes NORMAL (BOOSTED in static mode); a pending BOOST
     * waits for the next exit.
     */
    pvsched_policy_get_config(v->policy, &cfg);
    pvsched_state_enable(&v->st, &cfg, backend);
    publish(v, true, old, 0);
    queue_event(v, false);
    return true;
}

bool pvsched_vcpu_msr_write(PvschedVcpu *v, uint64_t val)
{
    if (val == PVSCHED_MSR_DOORBELL) {
        trace_pvsched_msr_doorbell(v->index);
        pvsched_vcpu_sync(v);   /* a no-op while disabled */
        return true;
    }
    if (val == PVSCHED_MSR_DISABLE) {
        trace_pvsched_msr_disable(v->index);
        if (v->area.hva) {
            disable(v, true);
        }
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
    return enable(v, val);
}

bool pvsched_vcpu_restore(PvschedVcpu *v, uint64_t val, clockid_t cpu_clock)
{
    PvschedBoostConfig cfg;
    PvschedArea area;
    const char *why;

    if (!(val & PVSCHED_MSR_ENABLE) || (val & PVSCHED_MSR_RESERVED_MASK) ||
        !pvsched_area_map(&area, val & ~PVSCHED_MSR_ENABLE, &why)) {
        return false;
    }
    v->area = area;
    v->msr_val = val;
    v->cpu_clock = cpu_clock;
    /* Not boosted here yet: a pending BOOST is honoured at the next exit. */
    pvsched_policy_get_config(v->policy, &cfg);
    pvsched_state_enable(&v->st, &cfg, backend);
    pvsched_area_set_status(&v->area, v->st.status);
    return true;
}

void pvsched_vcpu_reset(PvschedVcpu *v)
{
    trace_pvsched_reset(v->index);
    if (v->area.hva) {
        /* After reset the area is guest memory like any other: hands off. */
        disable(v, false);
    }
}
