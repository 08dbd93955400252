/*
 * pvsched: the per-vCPU boost state machine
 *
 * DISABLED --enable--> NORMAL <--BOOST/UNBOOST--> BOOSTED
 *                        ^                          |
 *                        +--cooldown-- THROTTLED <--+ boosted CPU time
 *                                                     over the bound
 *
 * The status is what the guest sees; st->boosted is what the thread has.
 * They differ only in static mode, which boosts a vCPU before (and after)
 * its guest registers, as libvirt's vcpusched would.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "pvsched/vcpu-state.h"

/*
 * Only the vCPU's thread writes its state (or another thread while it is
 * stopped), but QMP and the bound timer read status, bound_cpu_ns, the
 * counters and last_error from other threads, with qatomic_read(): those
 * are written with qatomic_set(), never torn.
 */
static void count(uint64_t *counter)
{
    qatomic_set(counter, *counter + 1);
}

static void set_error(PvschedVcpuState *st, int err)
{
    qatomic_set(&st->last_error, err);
}


void pvsched_state_init(PvschedVcpuState *st)
{
    *st = (PvschedVcpuState) { .status = PVSCHED_STATUS_DISABLED };
}

const char *pvsched_status_name(uint64_t status)
{
    static const char *const names[] = {
        [PVSCHED_STATUS_DISABLED] = "disabled",
        [PVSCHED_STATUS_NORMAL] = "normal",
        [PVSCHED_STATUS_BOOSTED] = "boosted",
        [PVSCHED_STATUS_THROTTLED] = "throttled",
    };

    return status < ARRAY_SIZE(names) ? names[status] : "invalid";
}

static PvschedSchedAttr boost_attr(const PvschedBoostConfig *cfg)
{
    PvschedSchedAttr attr = cfg->boost;

    /* QEMU creates threads from vCPU threads: they must not inherit RT. */
    attr.flags |= PVSCHED_FLAG_RESET_ON_FORK;
    return attr;
}

bool pvsched_state_arm_backstop(PvschedVcpuState *st,
                                const PvschedBackend *be, int64_t ns,
                                int *ret)
{
    if (!st->has_backstop || (!ns && !st->backstop_armed)) {
        return false;
    }
    *ret = be->cpu_timer_arm(st->backstop, ns, be->opaque);
    st->backstop_armed = ns && *ret == 0;
    return true;
}

/*
 * A registered vCPU's boost is bounded from its start (an unregistered
 * one, boosted by static mode, is not policed: see vcpu.c).
 */
static bool bounds(const PvschedVcpuState *st, const PvschedBoostConfig *cfg)
{
    return st->status != PVSCHED_STATUS_DISABLED && cfg->max_boost_ns;
}

void pvsched_state_forget_own(PvschedVcpuState *st)
{
    st->own_known = false;
}

/*
 * What unboost must give back is whatever libvirt's vcpusched or chrt set
 * last, so it is read from the thread, but not at every boost: a
 * doorbell's cost is its system calls, and the thread's attributes change
 * only where the host acts.  They are read at the first boost after the
 * guest registers, after each of the host's own steps that the caller
 * reports (pvsched_state_forget_own(): the VM resumes, the policy
 * changes) and after a refused boost.  Only ever read unboosted: then the
 * thread has its own attributes, not ours.
 */
static int learn_own(PvschedVcpuState *st, const PvschedBackend *be)
{
    int ret;

    if (st->own_known) {
        return 0;
    }
    ret = be->get(&st->own, be->opaque);
    st->own_known = ret == 0;
    return ret;
}

static int boost(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                 const PvschedBackend *be)
{
    PvschedSchedAttr attr = boost_attr(cfg);
    PvschedSchedAttr saved;
    int ret, err;

    ret = learn_own(st, be);
    if (ret < 0) {
        return ret;
    }
    saved = st->own;
    /*
     * The bound's kernel half first: whatever delays the thread between
     * the two, a page fault or a preemption, then never runs real-time
     * with nothing to bound it.  A failed arm is the caller's to see.
     */
    if (bounds(st, cfg)) {
        pvsched_state_arm_backstop(st, be, cfg->max_boost_ns, &err);
    }
    ret = be->set(&attr, be->opaque);
    if (ret < 0) {
        pvsched_state_arm_backstop(st, be, 0, &err);
        pvsched_state_forget_own(st);
        return ret;
    }
    /* A clamp-only boost is undone by setting the clamps back, only. */
    saved.flags |= attr.flags & (PVSCHED_FLAG_KEEP_ALL |
                                 PVSCHED_FLAG_UTIL_CLAMP);
    st->saved = saved;
    st->applied = attr;
    st->boost_cpu_ns = be->thread_cpu_ns(be->opaque);
    qatomic_set(&st->bound_cpu_ns, st->boost_cpu_ns);
    st->bounded = cfg->max_boost_ns != 0;
    st->boosted = true;
    count(&st->boosts);
    return 0;
}

int pvsched_sched_set_lower(const PvschedBackend *be, PvschedSchedAttr *attr)
{
    int ret = be->set(attr, be->opaque);

    if (ret == -EPERM && !(attr->flags & PVSCHED_FLAG_RESET_ON_FORK)) {
        attr->flags |= PVSCHED_FLAG_RESET_ON_FORK;
        ret = be->set(attr, be->opaque);
    }
    return ret;
}

static int unboost(PvschedVcpuState *st, const PvschedBackend *be)
{
    /* Lowering one's own priority needs no privilege... */
    int ret = pvsched_sched_set_lower(be, &st->saved);
    int err;

    if (ret < 0) {
        /*
         * ...unless the saved attributes were raised by someone else (a
         * negative nice, say).  Never stay boosted: fall back to plain
         * SCHED_OTHER, which is always allowed.
         */
        PvschedSchedAttr other = { .policy = SCHED_OTHER };

        if (pvsched_sched_set_lower(be, &other) == 0) {
            st->saved = other;
            st->own = other;
        } else {
            return ret;
        }
    }
    qatomic_set(&st->boosted_cpu_ns, st->boosted_cpu_ns +
                be->thread_cpu_ns(be->opaque) - st->boost_cpu_ns);
    /* Not real-time any more: the bound has nothing left to police. */
    pvsched_state_arm_backstop(st, be, 0, &err);
    st->boosted = false;
    st->applied = st->saved;
    count(&st->unboosts);
    return ret;
}

static bool attr_equal(const PvschedSchedAttr *a, const PvschedSchedAttr *b)
{
    return a->policy == b->policy && a->flags == b->flags &&
           a->nice == b->nice && a->priority == b->priority &&
           a->runtime == b->runtime && a->deadline == b->deadline &&
           a->period == b->period && a->util_min == b->util_min &&
           a->util_max == b->util_max;
}

/* The policy changed under a boosted vCPU: follow it, keep the bound. */
static int reapply(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                   const PvschedBackend *be)
{
    PvschedSchedAttr attr = boost_attr(cfg);
    int ret;

    if (attr_equal(&attr, &st->applied)) {
        return 0;
    }
    ret = be->set(&attr, be->opaque);
    if (ret == 0) {
        st->applied = attr;
    }
    return ret;
}

static bool set_status(PvschedVcpuState *st, uint64_t status)
{
    bool changed = st->status != status;

    qatomic_set(&st->status, status);
    return changed;
}

bool pvsched_state_enable(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                          const PvschedBackend *be)
{
    /* Re-registering moves the area; a guest-driven boost is dropped. */
    bool changed = pvsched_state_disable(st, cfg, be);

    pvsched_state_forget_own(st);

    return set_status(st, st->boosted ? PVSCHED_STATUS_BOOSTED :
                                        PVSCHED_STATUS_NORMAL) || changed;
}

bool pvsched_state_disable(PvschedVcpuState *st,
                           const PvschedBoostConfig *cfg,
                           const PvschedBackend *be)
{
    if (st->boosted && cfg->mode != PVSCHED_STATE_STATIC) {
        set_error(st, unboost(st, be));
    }
    return set_status(st, PVSCHED_STATUS_DISABLED);
}

bool pvsched_state_reset(PvschedVcpuState *st)
{
    return set_status(st, PVSCHED_STATUS_DISABLED);
}

bool pvsched_state_restore(PvschedVcpuState *st, const PvschedBoostConfig *cfg)
{
    bool keep = st->boosted && cfg->mode == PVSCHED_STATE_STATIC;

    pvsched_state_forget_own(st);
    return set_status(st, keep ? PVSCHED_STATUS_BOOSTED :
                                 PVSCHED_STATUS_NORMAL);
}

bool pvsched_state_unsettled(const PvschedVcpuState *st,
                             const PvschedBoostConfig *cfg)
{
    return st->boosted && st->status != PVSCHED_STATUS_BOOSTED &&
           cfg->mode != PVSCHED_STATE_STATIC;
}

bool pvsched_state_settle(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                          const PvschedBackend *be)
{
    if (!pvsched_state_unsettled(st, cfg)) {
        return false;
    }
    set_error(st, unboost(st, be));
    /* Refused outright, a registered thread is still real-time: say so. */
    if (st->boosted && st->status == PVSCHED_STATUS_NORMAL) {
        return set_status(st, PVSCHED_STATUS_BOOSTED);
    }
    return false;
}

/* No area, so no request and no status to publish: only the mode counts. */
static void follow_mode_unregistered(PvschedVcpuState *st,
                                     const PvschedBoostConfig *cfg,
                                     const PvschedBackend *be)
{
    if (cfg->mode == PVSCHED_STATE_STATIC) {
        set_error(st, st->boosted ? reapply(st, cfg, be) :
                                    boost(st, cfg, be));
    } else if (st->boosted) {
        set_error(st, unboost(st, be));
    }
}

/*
 * A boost that had no bound (static mode, max_boost_ns 0) gets one when
 * the policy changes: it counts from then.  Holding the time boosted
 * before against the guest would throttle every such vCPU at once.
 */
static bool over_bound(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                       const PvschedBackend *be, bool check_bound)
{
    if (!cfg->max_boost_ns) {
        st->bounded = false;
        return false;
    }
    if (!st->bounded) {
        qatomic_set(&st->bound_cpu_ns, be->thread_cpu_ns(be->opaque));
        st->bounded = true;
        return false;
    }
    return check_bound &&
           be->thread_cpu_ns(be->opaque) - st->bound_cpu_ns >
           cfg->max_boost_ns;
}

static bool throttle(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                     const PvschedBackend *be)
{
    set_error(st, unboost(st, be));
    if (st->boosted) {
        /* Still real-time: stay BOOSTED, and over the bound, to retry. */
        return false;
    }
    count(&st->throttles);
    st->cooldown_end_ns = be->now_ns(be->opaque) + cfg->cooldown_ns;
    return set_status(st, PVSCHED_STATUS_THROTTLED);
}

static bool want_boost(const PvschedBoostConfig *cfg, uint8_t boost_req,
                       bool boosted)
{
    switch (cfg->mode) {
    case PVSCHED_STATE_STATIC:
        return true;
    case PVSCHED_STATE_OFF:
        return false;
    default:
        /* NONE, and any value the ABI does not define, change nothing. */
        if (boost_req == PVSCHED_REQ_BOOST) {
            return true;
        }
        if (boost_req == PVSCHED_REQ_UNBOOST) {
            return false;
        }
        return boosted;
    }
}

static bool update(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                   const PvschedBackend *be, uint8_t boost_req,
                   bool check_bound)
{
    bool changed = pvsched_state_settle(st, cfg, be);
    int ret;

    switch (st->status) {
    case PVSCHED_STATUS_DISABLED:
        follow_mode_unregistered(st, cfg, be);
        return false;
    case PVSCHED_STATUS_THROTTLED:
        if (be->now_ns(be->opaque) < st->cooldown_end_ns) {
            return false;
        }
        changed = set_status(st, PVSCHED_STATUS_NORMAL);
        break;
    case PVSCHED_STATUS_BOOSTED:
        if (over_bound(st, cfg, be, check_bound)) {
            return throttle(st, cfg, be);
        }
        break;
    }

    if (want_boost(cfg, boost_req, st->status == PVSCHED_STATUS_BOOSTED)) {
        if (st->status == PVSCHED_STATUS_NORMAL) {
            ret = boost(st, cfg, be);
            set_error(st, ret);
            if (ret == 0) {
                changed |= set_status(st, PVSCHED_STATUS_BOOSTED);
            }
        } else {
            set_error(st, reapply(st, cfg, be));
        }
    } else if (st->status == PVSCHED_STATUS_BOOSTED) {
        set_error(st, unboost(st, be));
        /* Refused outright, the thread is still real-time: say so. */
        if (!st->boosted) {
            changed |= set_status(st, PVSCHED_STATUS_NORMAL);
        }
    }
    return changed;
}

bool pvsched_state_update(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                          const PvschedBackend *be, uint8_t boost_req)
{
    return update(st, cfg, be, boost_req, true);
}

bool pvsched_state_exit(PvschedVcpuState *st, const PvschedBoostConfig *cfg,
                        const PvschedBackend *be, uint8_t boost_req,
                        bool check_bound)
{
    return update(st, cfg, be, boost_req, check_bound);
}
