/*
 * pvsched: one vCPU, from its guest area to its thread's scheduling
 *
 * Every function runs on the vCPU's own thread, without the BQL, or with
 * that thread stopped: they change the calling thread's attributes.
 * Registering and disabling take the BQL for the guest memory they
 * reference and let go of.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_VCPU_H
#define PVSCHED_VCPU_H

#include "qemu/notify.h"
#include "qemu/timer.h"
#include "pvsched/guest-area.h"
#include "pvsched/policy.h"
#include "pvsched/vcpu-state.h"

/*
 * msr_val, cpu_clock and st's status, counters, bound_cpu_ns and
 * last_error are read from other threads (QMP, the bound timer): written
 * with qatomic_set(), read with qatomic_read().
 */
typedef struct PvschedVcpu {
    int index;
    PvschedPolicy *policy;
    uint64_t msr_val;           /* last successful enable, or 0 */
    PvschedArea area;
    PvschedVcpuState st;
    bool warned;                /* about a failed scheduling change */
    QEMUTimer *bound_timer;     /* polices max-boost-us; main loop */
    int64_t kick_retry_ns;      /* next resend of a kick; main loop */
    bool bound_due;             /* main loop to vCPU: check the bound */
    bool policing;              /* vCPU armed the bound for this boost */
    int64_t policed_ns;         /* ...and for this max_boost_ns */
    uint64_t policed_boosts;    /* st.boosts when last policed */
    bool policed_bounded;       /* st.bounded when last policed */
    clockid_t cpu_clock;        /* the vCPU thread's CPU-time clock */
    bool exit_watched;          /* thread_exit is on the thread's list */
    Notifier thread_exit;       /* tears the state down with the thread */
} PvschedVcpu;

void pvsched_vcpu_init(PvschedVcpu *v, int index, PvschedPolicy *policy);

/* MSR writes; false means #GP with nothing changed. */
bool pvsched_vcpu_msr_write(PvschedVcpu *v, uint64_t val);

/*
 * Incoming migration, vCPUs stopped: register @val again, as the source
 * had it; @cpu_clock is the vCPU thread's.  False if @val is not valid
 * here.
 */
bool pvsched_vcpu_restore(PvschedVcpu *v, uint64_t val, clockid_t cpu_clock);

/* Reset: unboost and forget the area without writing guest memory. */
void pvsched_vcpu_reset(PvschedVcpu *v);

/* Apply the policy and the guest's boost_req now, bound included. */
void pvsched_vcpu_apply(PvschedVcpu *v);

/* The guest's boost_req at an exit of a registered vCPU. */
void pvsched_vcpu_exit(PvschedVcpu *v);

/*
 * Called on every KVM_RUN return, the doorbell's included: keep the
 * unused case cheap.
 */
static inline void pvsched_vcpu_sync(PvschedVcpu *v)
{
    /* The common case on the exit path: this vCPU never registered. */
    if (v->area.hva) {
        pvsched_vcpu_exit(v);
    }
}

#endif
