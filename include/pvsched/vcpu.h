/*
 * pvsched: one vCPU, from its guest area to its thread's scheduling
 *
 * Every function runs on the vCPU's own thread, without the BQL: they
 * change the calling thread's attributes.  Reset and restore run off it,
 * with the thread stopped, and change none.
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
 * cpu_clock and st's status, counters, bound_cpu_ns and last_error are
 * read from other threads (QMP, the bound timer): written with
 * qatomic_set(), read with qatomic_read().
 *
 * The MSR's value is not here: it is the vCPU's architectural state
 * (what the guest reads back, what migrates, what reset clears), kept by
 * the CPU (CPUX86State.pvsched_msr).  Functions that change the
 * registration on the guest's behalf are given it to update; the area
 * here is what the device made of it.
 */
typedef struct PvschedVcpu {
    int index;
    PvschedPolicy *policy;
    PvschedArea area;
    PvschedVcpuState st;
    bool warned;                /* about a failed scheduling change */
    QEMUTimer *bound_timer;     /* polices max-boost-us; main loop */
    QEMUTimer *cooldown_timer;  /* ends THROTTLED with a kick; main loop */
    int64_t kick_retry_ns;      /* next resend of a kick; main loop */
    int64_t lag_ns;             /* kick to throttle, learned; vCPU thread */
    bool bound_due;             /* main loop to vCPU: check the bound */
    bool own_stale;             /* main loop to vCPU: read own attributes */
    bool policing;              /* vCPU armed the bound for this boost */
    int64_t policed_ns;         /* ...and for this max_boost_ns */
    uint64_t policed_boosts;    /* st.boosts when last policed */
    bool policed_bounded;       /* st.bounded when last policed */
    int quiet_req;              /* boost_req an exit may skip, or -1 */
    clockid_t cpu_clock;        /* the vCPU thread's CPU-time clock */
    bool exit_watched;          /* thread_exit is on the thread's list */
    Notifier thread_exit;       /* tears the state down with the thread */
} PvschedVcpu;

void pvsched_vcpu_init(PvschedVcpu *v, int index, PvschedPolicy *policy);

/*
 * MSR writes; false means #GP with nothing changed.  *@msr is the vCPU's
 * MSR value, set to what the guest reads from now on.
 */
bool pvsched_vcpu_msr_write(PvschedVcpu *v, uint64_t *msr, uint64_t val);

/*
 * Reset, and incoming migration or loadvm: off the vCPU thread, under the
 * BQL, with the vCPU stopped.  They change no thread attributes (only
 * the thread does: see pvsched_vcpu_settle()).
 *
 * pvsched_vcpu_reset() ends the registration at once: the area is
 * forgotten without writing guest memory (after reset it is the guest's
 * like any other) and the status is DISABLED.  The caller clears the MSR.
 *
 * pvsched_vcpu_restore() registers the MSR value @val again, as the
 * source had it; @cpu_clock is the vCPU thread's.  False, with @why, if
 * @val is not valid here.  The guest sees NORMAL (BOOSTED for a boost
 * static mode keeps): boosts are not carried, the thread is boosted at
 * its next exit if the guest still asks.
 */
void pvsched_vcpu_reset(PvschedVcpu *v);
bool pvsched_vcpu_restore(PvschedVcpu *v, uint64_t val, clockid_t cpu_clock,
                          const char **why);

/*
 * After those, true when the thread must still give back a boost that no
 * registration holds: run pvsched_vcpu_settle() on it.  Only that; it
 * reads the state as it is when it runs, so that queued late it undoes
 * nothing that was loaded since.
 */
bool pvsched_vcpu_unsettled(PvschedVcpu *v);
void pvsched_vcpu_settle(PvschedVcpu *v);

/*
 * From any thread: the host acted on the VM (a resume, a policy change),
 * and may have changed the vCPU thread's attributes from outside.  Its
 * next boost reads them again; see pvsched_state_forget_own().
 */
void pvsched_vcpu_forget_own(PvschedVcpu *v);

/* Apply the policy and the guest's boost_req now, bound included. */
void pvsched_vcpu_apply(PvschedVcpu *v);

/*
 * The guest's boost_req at an exit of a registered vCPU; @interrupted: a
 * signal ended KVM_RUN, which may be the bound's backstop (see vcpu.c).
 */
void pvsched_vcpu_exit(PvschedVcpu *v, bool interrupted);

/*
 * Called on every KVM_RUN return, the doorbell's included: keep the
 * unused case cheap.
 */
static inline void pvsched_vcpu_sync(PvschedVcpu *v, bool interrupted)
{
    /* The common case on the exit path: this vCPU never registered. */
    if (v->area.hva) {
        pvsched_vcpu_exit(v, interrupted);
    }
}

#endif
