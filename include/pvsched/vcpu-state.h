/*
 * pvsched: the per-vCPU boost state machine
 *
 * Pure logic: the clocks and the scheduling calls come from a
 * PvschedBackend, so that unit tests run it with a fake clock and a fake
 * scheduler.  Every function runs on the vCPU's own thread (the backend
 * acts on the calling thread), or with that thread stopped.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_VCPU_STATE_H
#define PVSCHED_VCPU_STATE_H

#include "pvsched/abi.h"
#include "pvsched/sched-attr.h"

typedef enum PvschedStateMode {
    PVSCHED_STATE_DYNAMIC,  /* boosted while the guest asks */
    PVSCHED_STATE_STATIC,   /* always boosted, registered or not */
    PVSCHED_STATE_OFF,      /* never boosted */
} PvschedStateMode;

/* What "boosted" means, resolved from the policy object. */
typedef struct PvschedBoostConfig {
    PvschedStateMode mode;
    PvschedSchedAttr boost;     /* applied on boost, plus RESET_ON_FORK */
    int64_t max_boost_ns;       /* boosted CPU time per boost; 0: unbounded */
    int64_t cooldown_ns;        /* THROTTLED for this long after the bound */
} PvschedBoostConfig;

typedef struct PvschedVcpuState {
    uint64_t status;            /* PVSCHED_STATUS_*, as the guest sees it */
    bool boosted;               /* the thread runs with the boost applied */
    PvschedSchedAttr own;       /* the thread's own attributes... */
    bool own_known;             /* ...as read since it was last forgotten */
    PvschedSchedAttr saved;     /* what unboost gives back */
    PvschedSchedAttr applied;   /* what the thread has now, as we set it */
    int64_t boost_cpu_ns;       /* thread CPU clock when boosted */
    bool bounded;               /* the boost is under max_boost_ns... */
    int64_t bound_cpu_ns;       /* ...since this thread CPU clock */
    int64_t cooldown_end_ns;    /* monotonic; end of THROTTLED */
    uint64_t boosts;
    uint64_t unboosts;
    uint64_t throttles;
    int64_t boosted_cpu_ns;     /* total CPU time spent boosted */
    int last_error;             /* -errno of the last failed change, or 0 */
    /*
     * The bound's kernel half, a timer on the thread's CPU clock that the
     * caller created (has_backstop) and polices with: a boost of a
     * registered vCPU arms it before the priority rises, and whatever
     * lowers the priority disarms it after.
     */
    timer_t backstop;
    bool has_backstop;
    bool backstop_armed;        /* it may fire */
} PvschedVcpuState;

void pvsched_state_init(PvschedVcpuState *st);

/*
 * Each returns true when boost_status changed, i.e. when the caller must
 * publish st->status to the guest before the guest runs again.  In static
 * mode the thread is boosted whether or not the guest has registered:
 * enable and disable keep that boost, and update applies it to a vCPU
 * that never registered.
 */
bool pvsched_state_enable(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                          const PvschedBackend *be);
bool pvsched_state_disable(PvschedVcpuState *st,
                           const PvschedBoostConfig *cfg,
                           const PvschedBackend *be);
bool pvsched_state_update(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                          const PvschedBackend *be, uint8_t boost_req);

/*
 * Reset and incoming migration change the registration off the vCPU
 * thread, with that thread stopped, and so must not touch the thread's
 * attributes: these two call no backend.  pvsched_state_reset() ends
 * the registration (DISABLED); pvsched_state_restore() makes it anew
 * (NORMAL, or BOOSTED for a boost static mode keeps), as
 * pvsched_state_enable() would.  Both return true when boost_status
 * changed.
 *
 * A boost the state no longer holds (the thread is boosted, the status
 * is not BOOSTED, the mode does not keep it) is then unsettled: the
 * thread gives it back itself with pvsched_state_settle(), which every
 * other function here runs first, so that nothing on the thread can
 * build on it (a boost that saved the boosted attributes as the
 * thread's own would never give them back).  If the kernel refuses, a
 * registered vCPU is BOOSTED again, as when update() cannot unboost.
 */
bool pvsched_state_reset(PvschedVcpuState *st);
bool pvsched_state_restore(PvschedVcpuState *st, const PvschedBoostConfig *cfg);
bool pvsched_state_unsettled(const PvschedVcpuState *st,
                             const PvschedBoostConfig *cfg);
bool pvsched_state_settle(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                          const PvschedBackend *be);

/*
 * The same at a guest exit, the hot path: it reads no CPU clock (a system
 * call) unless @check_bound.  The bound is policed from outside (the main
 * loop watches the thread's CPU clock), which sets @check_bound when the
 * bound may be spent; without it a spent bound is not noticed.
 */
bool pvsched_state_exit(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                        const PvschedBackend *be, uint8_t boost_req,
                        bool check_bound);

/*
 * Arm the backstop to fire after @ns of the thread's CPU time, or disarm
 * it (@ns 0).  False when that took no system call (no backstop, or
 * disarmed already); else *@ret is 0 or -errno.
 */
bool pvsched_state_arm_backstop(PvschedVcpuState *st,
                                const PvschedBackend *be, int64_t ns,
                                int *ret);

/*
 * The thread's own attributes may have changed from outside: read them
 * again at the next boost.  Called where the host acts on the VM.
 */
void pvsched_state_forget_own(PvschedVcpuState *st);

const char *pvsched_status_name(uint64_t status);

#endif
