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

void pvsched_vcpu_init(PvschedVcpu *v, int index, PvschedPolicy *policy)
{
    *v = (PvschedVcpu) { .index = index, .policy = policy };
    pvsched_state_init(&v->st);
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
    if (changed) {
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
    uint8_t req = pvsched_area_boost_req(&v->area);
    uint64_t old = v->st.status;

    pvsched_policy_get_config(v->policy, &cfg);
    publish(v, pvsched_state_update(&v->st, &cfg, backend, req), old, req);
}

static void disable(PvschedVcpu *v, bool tell_guest)
{
    uint64_t old = v->st.status;
    bool changed = pvsched_state_disable(&v->st, backend);

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
    trace_pvsched_msr_enable(v->index, val & ~PVSCHED_MSR_ENABLE);
    /* Status becomes NORMAL; a pending BOOST waits for the next exit. */
    pvsched_state_enable(&v->st, backend);
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

void pvsched_vcpu_reset(PvschedVcpu *v)
{
    trace_pvsched_reset(v->index);
    if (v->area.hva) {
        /* After reset the area is guest memory like any other: hands off. */
        disable(v, false);
    }
}
