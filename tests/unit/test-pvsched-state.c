/*
 * Unit tests for the pvsched per-vCPU state machine, with a fake clock and
 * a fake scheduling backend standing for the vCPU thread.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "pvsched/vcpu-state.h"

#define US 1000LL
#define FLAG_RESET_ON_FORK 0x01

/* The fake thread: its attributes, clocks, and what was done to it. */
typedef struct FakeThread {
    PvschedSchedAttr attr;
    int64_t cpu_ns;
    int64_t now_ns;
    int fail_set;       /* -errno for the next set() calls, 0: succeed */
    int fail_set_count; /* how many set() calls fail */
    bool no_cap_sys_nice; /* the kernel's rules for an unprivileged thread */
    int gets, sets;
    int64_t backstop_at;  /* the CPU-time timer's expiry; 0: disarmed */
    int backstop_error;   /* what arming it fails with */
    int unbounded_raises; /* boosts set while the backstop was disarmed */
    int early_disarms;    /* backstops disarmed while still boosted */
} FakeThread;

static int fake_get(PvschedSchedAttr *attr, void *opaque)
{
    FakeThread *t = opaque;

    t->gets++;
    *attr = t->attr;
    return 0;
}

static int fake_set(const PvschedSchedAttr *attr, void *opaque)
{
    FakeThread *t = opaque;

    t->sets++;
    if (attr->policy == SCHED_FIFO && t->attr.policy != SCHED_FIFO &&
        !t->backstop_at) {
        t->unbounded_raises++;
    }
    if (t->fail_set_count) {
        t->fail_set_count--;
        return t->fail_set;
    }
    /* __sched_setscheduler(): only CAP_SYS_NICE clears RESET_ON_FORK. */
    if (t->no_cap_sys_nice && (t->attr.flags & FLAG_RESET_ON_FORK) &&
        !(attr->flags & FLAG_RESET_ON_FORK)) {
        return -EPERM;
    }
    t->attr = *attr;
    return 0;
}

static int64_t fake_cpu(void *opaque)
{
    return ((FakeThread *)opaque)->cpu_ns;
}

static int64_t fake_now(void *opaque)
{
    return ((FakeThread *)opaque)->now_ns;
}

static int fake_cpu_timer_arm(timer_t timer, int64_t ns, void *opaque)
{
    FakeThread *t = opaque;

    g_assert(timer == (timer_t)&t->backstop_at);
    if (t->backstop_error) {
        return t->backstop_error;
    }
    if (!ns && t->attr.policy == SCHED_FIFO) {
        t->early_disarms++;
    }
    t->backstop_at = ns ? t->cpu_ns + ns : 0;
    return 0;
}

typedef struct Fixture {
    FakeThread t;
    PvschedBackend be;
    PvschedBoostConfig cfg;
    PvschedVcpuState st;
} Fixture;

/* The thread starts as libvirt's vcpusched or chrt might have left it. */
static const PvschedSchedAttr batch_nice5 = {
    .policy = SCHED_BATCH, .nice = 5,
};

static void setup(Fixture *f, gconstpointer data)
{
    f->t = (FakeThread) { .attr = batch_nice5 };
    f->be = (PvschedBackend) {
        .get = fake_get, .set = fake_set,
        .thread_cpu_ns = fake_cpu, .now_ns = fake_now,
        .cpu_timer_arm = fake_cpu_timer_arm,
        .opaque = &f->t,
    };
    f->cfg = (PvschedBoostConfig) {
        .mode = PVSCHED_STATE_DYNAMIC,
        .boost = { .policy = SCHED_FIFO, .priority = 8 },
        .max_boost_ns = 3000 * US,
        .cooldown_ns = 27000 * US,
    };
    pvsched_state_init(&f->st);
}

static void teardown(Fixture *f, gconstpointer data)
{
}

static bool update(Fixture *f, uint8_t req)
{
    return pvsched_state_update(&f->st, &f->cfg, &f->be, req);
}

static void enable_and_boost(Fixture *f)
{
    g_assert_true(pvsched_state_enable(&f->st, &f->cfg, &f->be));
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
}

static void assert_thread_is_batch_nice5(Fixture *f)
{
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_BATCH);
    g_assert_cmpint(f->t.attr.nice, ==, 5);
    g_assert_cmpuint(f->t.attr.priority, ==, 0);
}

static void test_disabled_ignores_requests(Fixture *f, gconstpointer data)
{
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_DISABLED);
    g_assert_cmpint(f->t.sets, ==, 0);
}

static void test_enable_is_normal(Fixture *f, gconstpointer data)
{
    g_assert_true(pvsched_state_enable(&f->st, &f->cfg, &f->be));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    g_assert_cmpint(f->t.sets, ==, 0);
    /* NONE and UNBOOST leave a normal vCPU alone. */
    g_assert_false(update(f, PVSCHED_REQ_NONE));
    g_assert_false(update(f, PVSCHED_REQ_UNBOOST));
    g_assert_cmpint(f->t.sets, ==, 0);
}

static void test_boost_sets_fifo_with_reset_on_fork(Fixture *f,
                                                    gconstpointer data)
{
    enable_and_boost(f);
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_FIFO);
    g_assert_cmpuint(f->t.attr.priority, ==, 8);
    g_assert_cmphex(f->t.attr.flags & FLAG_RESET_ON_FORK, ==,
                    FLAG_RESET_ON_FORK);
    g_assert_cmpuint(f->st.boosts, ==, 1);
    /* Holding BOOST costs nothing more. */
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_false(update(f, PVSCHED_REQ_NONE));
    g_assert_cmpint(f->t.sets, ==, 1);
}

static void test_unboost_restores_own_attributes(Fixture *f,
                                                 gconstpointer data)
{
    enable_and_boost(f);
    f->t.cpu_ns += 500 * US;
    g_assert_true(update(f, PVSCHED_REQ_UNBOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    assert_thread_is_batch_nice5(f);
    g_assert_cmpuint(f->st.unboosts, ==, 1);
    g_assert_cmpint(f->st.boosted_cpu_ns, ==, 500 * US);
}

/* One sched_getattr() per registration, not one per boost. */
static void test_attributes_read_once(Fixture *f, gconstpointer data)
{
    int i;

    enable_and_boost(f);
    for (i = 0; i < 5; i++) {
        g_assert_true(update(f, PVSCHED_REQ_UNBOOST));
        assert_thread_is_batch_nice5(f);
        g_assert_true(update(f, PVSCHED_REQ_BOOST));
    }
    g_assert_cmpint(f->t.gets, ==, 1);
    g_assert_cmpuint(f->st.boosts, ==, 6);
}

/* Someone (chrt, libvirt) changes the thread between two boosts. */
static void change_from_outside(Fixture *f)
{
    f->t.attr = (PvschedSchedAttr) { .policy = SCHED_OTHER, .nice = -3 };
}

static void assert_thread_is_other_nice_minus3(Fixture *f)
{
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_OTHER);
    g_assert_cmpint(f->t.attr.nice, ==, -3);
}

/* What the host does to the VM (resume, policy change) says: read again. */
static void test_attributes_read_after_forget(Fixture *f, gconstpointer d)
{
    enable_and_boost(f);
    update(f, PVSCHED_REQ_UNBOOST);
    change_from_outside(f);
    pvsched_state_forget_own(&f->st);
    update(f, PVSCHED_REQ_BOOST);
    update(f, PVSCHED_REQ_UNBOOST);
    assert_thread_is_other_nice_minus3(f);
    g_assert_cmpint(f->t.gets, ==, 2);
}

/* So does a registration: libvirt's vcpusched predates the guest's. */
static void test_attributes_read_at_registration(Fixture *f, gconstpointer d)
{
    enable_and_boost(f);
    update(f, PVSCHED_REQ_UNBOOST);
    change_from_outside(f);
    pvsched_state_enable(&f->st, &f->cfg, &f->be);
    update(f, PVSCHED_REQ_BOOST);
    update(f, PVSCHED_REQ_UNBOOST);
    assert_thread_is_other_nice_minus3(f);
}

/* And a refused boost: what refused it may have changed the thread too. */
static void test_attributes_read_after_failure(Fixture *f, gconstpointer d)
{
    enable_and_boost(f);
    update(f, PVSCHED_REQ_UNBOOST);
    change_from_outside(f);
    f->t.fail_set = -EPERM;
    f->t.fail_set_count = 1;
    update(f, PVSCHED_REQ_BOOST);
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    update(f, PVSCHED_REQ_BOOST);
    update(f, PVSCHED_REQ_UNBOOST);
    assert_thread_is_other_nice_minus3(f);
}

static void test_undefined_request_changes_nothing(Fixture *f,
                                                   gconstpointer data)
{
    enable_and_boost(f);
    g_assert_false(update(f, 0x7f));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
}

static void test_boost_failure_stays_normal(Fixture *f, gconstpointer data)
{
    pvsched_state_enable(&f->st, &f->cfg, &f->be);
    f->t.fail_set = -EPERM;
    f->t.fail_set_count = 1;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    g_assert_cmpint(f->st.last_error, ==, -EPERM);
    assert_thread_is_batch_nice5(f);
    /* The next request tries again, and succeeds. */
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpint(f->st.last_error, ==, 0);
}

static void test_unboost_failure_falls_back_to_other(Fixture *f,
                                                     gconstpointer data)
{
    enable_and_boost(f);
    /* The saved attributes are refused, with and without RESET_ON_FORK. */
    f->t.fail_set = -EPERM;
    f->t.fail_set_count = 2;
    g_assert_true(update(f, PVSCHED_REQ_UNBOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_OTHER);
    g_assert_cmpuint(f->t.attr.priority, ==, 0);
}

/*
 * With RLIMIT_RTPRIO but without CAP_SYS_NICE, a thread may boost itself
 * but never clear the RESET_ON_FORK its boost set: unboost must keep it.
 */
static void test_unboost_without_cap_sys_nice(Fixture *f, gconstpointer d)
{
    f->t.no_cap_sys_nice = true;
    enable_and_boost(f);
    g_assert_true(update(f, PVSCHED_REQ_UNBOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    g_assert_cmpint(f->st.last_error, ==, 0);
    assert_thread_is_batch_nice5(f);
    g_assert_cmphex(f->t.attr.flags & FLAG_RESET_ON_FORK, ==,
                    FLAG_RESET_ON_FORK);
    /* And again: the flag it kept does not get in the way. */
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_true(update(f, PVSCHED_REQ_UNBOOST));
    assert_thread_is_batch_nice5(f);
}

/*
 * An unboost the kernel refuses outright leaves the thread real-time: the
 * status must say so (and the bound keep policing it), never NORMAL.
 */
static void test_unboost_refused_stays_boosted(Fixture *f, gconstpointer d)
{
    enable_and_boost(f);
    f->t.fail_set = -EPERM;
    f->t.fail_set_count = 100;
    update(f, PVSCHED_REQ_UNBOOST);
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_FIFO);
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_true(f->st.boosted);
    g_assert_cmpint(f->st.last_error, ==, -EPERM);
    /* Once the kernel allows it, the next request unboosts. */
    f->t.fail_set_count = 0;
    g_assert_true(update(f, PVSCHED_REQ_UNBOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    assert_thread_is_batch_nice5(f);
}

/* A throttle the kernel refuses leaves it BOOSTED, over the bound: retried. */
static void test_throttle_refused_retries(Fixture *f, gconstpointer d)
{
    enable_and_boost(f);
    f->t.cpu_ns += 3000 * US + 1;
    f->t.fail_set = -EPERM;
    f->t.fail_set_count = 100;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpuint(f->st.throttles, ==, 0);
    g_assert_cmpint(f->st.last_error, ==, -EPERM);
    f->t.fail_set_count = 0;
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_THROTTLED);
    g_assert_cmpuint(f->st.throttles, ==, 1);
    assert_thread_is_batch_nice5(f);
}

static void test_bound_throttles_then_cooldown(Fixture *f, gconstpointer d)
{
    enable_and_boost(f);
    /* Within the bound: still boosted. */
    f->t.cpu_ns += 3000 * US;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    /* Over it: unboosted and throttled, whatever the guest asks. */
    f->t.cpu_ns += 1;
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_THROTTLED);
    g_assert_cmpuint(f->st.throttles, ==, 1);
    assert_thread_is_batch_nice5(f);
    /* BOOST is ignored until the cooldown has passed... */
    f->t.now_ns += 27000 * US - 1;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_THROTTLED);
    /* ...then honoured again. */
    f->t.now_ns += 1;
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpuint(f->st.boosts, ==, 2);
}

static void test_cooldown_ends_in_normal(Fixture *f, gconstpointer data)
{
    enable_and_boost(f);
    f->t.cpu_ns += 3001 * US;
    update(f, PVSCHED_REQ_BOOST);
    f->t.now_ns += 27000 * US;
    g_assert_true(update(f, PVSCHED_REQ_NONE));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
}

static void test_unbounded(Fixture *f, gconstpointer data)
{
    f->cfg.max_boost_ns = 0;
    enable_and_boost(f);
    f->t.cpu_ns += 3600LL * 1000000 * US;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
}

/*
 * A bound that appears under a boost counts from then: the CPU time the
 * vCPU spent boosted without one must not throttle it at once.
 */
static void assert_bound_counts_from_now(Fixture *f)
{
    f->cfg.mode = PVSCHED_STATE_DYNAMIC;
    f->cfg.max_boost_ns = 3000 * US;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
    f->t.cpu_ns += 3000 * US;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
    f->t.cpu_ns += 1;
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_THROTTLED);
    /* All the boosted time is accounted, bounded or not. */
    g_assert_cmpint(f->st.boosted_cpu_ns, ==, 10000 * US + 3000 * US + 1);
}

static void test_bound_from_unbounded(Fixture *f, gconstpointer data)
{
    f->cfg.max_boost_ns = 0;
    enable_and_boost(f);
    f->t.cpu_ns += 10000 * US;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    assert_bound_counts_from_now(f);
}

static void test_bound_from_static(Fixture *f, gconstpointer data)
{
    /* As the policy object gives it: static mode has no bound. */
    f->cfg.mode = PVSCHED_STATE_STATIC;
    f->cfg.max_boost_ns = 0;
    g_assert_true(pvsched_state_enable(&f->st, &f->cfg, &f->be));
    g_assert_true(update(f, PVSCHED_REQ_NONE));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
    f->t.cpu_ns += 10000 * US;
    g_assert_false(update(f, PVSCHED_REQ_NONE));
    assert_bound_counts_from_now(f);
}

static void test_disable_unboosts(Fixture *f, gconstpointer data)
{
    enable_and_boost(f);
    g_assert_true(pvsched_state_disable(&f->st, &f->cfg, &f->be));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_DISABLED);
    assert_thread_is_batch_nice5(f);
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
}

static void test_reenable_unboosts(Fixture *f, gconstpointer data)
{
    enable_and_boost(f);
    g_assert_true(pvsched_state_enable(&f->st, &f->cfg, &f->be));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    assert_thread_is_batch_nice5(f);
}

static void test_mode_static_and_off(Fixture *f, gconstpointer data)
{
    pvsched_state_enable(&f->st, &f->cfg, &f->be);
    f->cfg.mode = PVSCHED_STATE_STATIC;
    g_assert_true(update(f, PVSCHED_REQ_UNBOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
    f->cfg.mode = PVSCHED_STATE_OFF;
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_NORMAL);
    assert_thread_is_batch_nice5(f);
}

/* Static mode is libvirt's vcpusched: boosted before the guest registers. */
static void test_static_boosts_unregistered(Fixture *f, gconstpointer data)
{
    f->cfg.mode = PVSCHED_STATE_STATIC;
    g_assert_false(update(f, PVSCHED_REQ_NONE));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_DISABLED);
    g_assert_true(f->st.boosted);
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_FIFO);
    g_assert_cmphex(f->t.attr.flags & FLAG_RESET_ON_FORK, ==,
                    FLAG_RESET_ON_FORK);

    /* Registering shows the boost to the guest without a system call. */
    g_assert_true(pvsched_state_enable(&f->st, &f->cfg, &f->be));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_BOOSTED);
    g_assert_cmpint(f->t.sets, ==, 1);
    /* Nor does an UNBOOST request or disabling undo it. */
    g_assert_false(update(f, PVSCHED_REQ_UNBOOST));
    g_assert_true(pvsched_state_disable(&f->st, &f->cfg, &f->be));
    g_assert_true(f->st.boosted);
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_FIFO);
    g_assert_cmpint(f->t.sets, ==, 1);

    /* Leaving static mode gives the thread back its own attributes. */
    f->cfg.mode = PVSCHED_STATE_DYNAMIC;
    g_assert_false(update(f, PVSCHED_REQ_NONE));
    g_assert_false(f->st.boosted);
    assert_thread_is_batch_nice5(f);
    g_assert_cmpuint(f->st.unboosts, ==, 1);
}

/* The caller's CPU-time timer, which the state machine arms. */
static void give_backstop(Fixture *f)
{
    f->st.backstop = (timer_t)&f->t.backstop_at;
    f->st.has_backstop = true;
}

/*
 * Defect: vcpu.c armed the backstop after the boost, and in the L1 VM
 * 9.9 ms of the thread's CPU time went by between the two, boosted with
 * nothing bounding it.  Armed first, disarmed last: the thread is never
 * real-time without it, whether the boost ends by UNBOOST or throttling.
 */
static void test_backstop_brackets_boost(Fixture *f, gconstpointer data)
{
    give_backstop(f);
    enable_and_boost(f);
    g_assert_cmpint(f->t.unbounded_raises, ==, 0);
    g_assert_cmpint(f->t.backstop_at, ==, f->cfg.max_boost_ns);
    g_assert_true(f->st.backstop_armed);
    g_assert_true(update(f, PVSCHED_REQ_UNBOOST));
    g_assert_cmpint(f->t.backstop_at, ==, 0);
    g_assert_false(f->st.backstop_armed);

    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    f->t.cpu_ns += f->cfg.max_boost_ns + 1;
    g_assert_true(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->st.status, ==, PVSCHED_STATUS_THROTTLED);
    g_assert_cmpint(f->t.backstop_at, ==, 0);
    g_assert_cmpint(f->t.unbounded_raises, ==, 0);
    g_assert_cmpint(f->t.early_disarms, ==, 0);
}

/* A boost the kernel refuses leaves no backstop armed behind it. */
static void test_backstop_gone_with_failed_boost(Fixture *f, gconstpointer d)
{
    give_backstop(f);
    pvsched_state_enable(&f->st, &f->cfg, &f->be);
    f->t.fail_set = -EPERM;
    f->t.fail_set_count = 1;
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpint(f->t.backstop_at, ==, 0);
    g_assert_false(f->st.backstop_armed);
}

/*
 * A backstop that cannot be armed does not keep the boost from
 * happening (the main loop still polices it); it is left disarmed, for
 * the caller to see.
 */
static void test_backstop_arm_failure_boosts(Fixture *f, gconstpointer d)
{
    give_backstop(f);
    f->t.backstop_error = -EINVAL;
    enable_and_boost(f);
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_FIFO);
    g_assert_false(f->st.backstop_armed);
}

/* Static mode's boost of an unregistered vCPU is not policed. */
static void test_backstop_not_for_unregistered(Fixture *f, gconstpointer d)
{
    give_backstop(f);
    f->cfg.mode = PVSCHED_STATE_STATIC;
    g_assert_false(update(f, PVSCHED_REQ_NONE));
    g_assert_true(f->st.boosted);
    g_assert_cmpint(f->t.backstop_at, ==, 0);
    g_assert_false(f->st.backstop_armed);
}

/* A policy change reaches a static vCPU that never registered. */
static void test_static_follows_policy_unregistered(Fixture *f,
                                                    gconstpointer data)
{
    f->cfg.mode = PVSCHED_STATE_STATIC;
    update(f, PVSCHED_REQ_NONE);
    f->cfg.boost = (PvschedSchedAttr) { .policy = SCHED_RR, .priority = 20 };
    g_assert_false(update(f, PVSCHED_REQ_NONE));
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_RR);
    g_assert_cmpuint(f->t.attr.priority, ==, 20);
    f->cfg.mode = PVSCHED_STATE_OFF;
    update(f, PVSCHED_REQ_NONE);
    assert_thread_is_batch_nice5(f);
    /* Dynamic and off leave an unregistered vCPU alone. */
    f->t.sets = 0;
    f->cfg.mode = PVSCHED_STATE_DYNAMIC;
    update(f, PVSCHED_REQ_BOOST);
    g_assert_cmpint(f->t.sets, ==, 0);
}

static void test_policy_change_while_boosted(Fixture *f, gconstpointer d)
{
    enable_and_boost(f);
    f->cfg.boost = (PvschedSchedAttr) { .policy = SCHED_RR, .priority = 20 };
    g_assert_false(update(f, PVSCHED_REQ_BOOST));
    g_assert_cmpuint(f->t.attr.policy, ==, SCHED_RR);
    g_assert_cmpuint(f->t.attr.priority, ==, 20);
    g_assert_cmphex(f->t.attr.flags & FLAG_RESET_ON_FORK, ==,
                    FLAG_RESET_ON_FORK);
    /* Same policy again: no further system call. */
    g_assert_false(update(f, PVSCHED_REQ_NONE));
    g_assert_cmpint(f->t.sets, ==, 2);
    /* Unboost still gives back the thread's own attributes. */
    update(f, PVSCHED_REQ_UNBOOST);
    assert_thread_is_batch_nice5(f);
}

static void test_status_names(void)
{
    g_assert_cmpstr(pvsched_status_name(PVSCHED_STATUS_THROTTLED), ==,
                    "throttled");
    g_assert_cmpstr(pvsched_status_name(42), ==, "invalid");
}

#define ADD(name, fn) \
    g_test_add("/pvsched/state/" name, Fixture, NULL, setup, fn, teardown)

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    ADD("disabled-ignores-requests", test_disabled_ignores_requests);
    ADD("enable-is-normal", test_enable_is_normal);
    ADD("boost-fifo-reset-on-fork", test_boost_sets_fifo_with_reset_on_fork);
    ADD("unboost-restores-own", test_unboost_restores_own_attributes);
    ADD("attributes-read-once", test_attributes_read_once);
    ADD("attributes-read-after-forget", test_attributes_read_after_forget);
    ADD("attributes-read-at-registration",
        test_attributes_read_at_registration);
    ADD("attributes-read-after-failure", test_attributes_read_after_failure);
    ADD("undefined-request", test_undefined_request_changes_nothing);
    ADD("boost-failure", test_boost_failure_stays_normal);
    ADD("unboost-failure-fallback", test_unboost_failure_falls_back_to_other);
    ADD("unboost-without-cap-sys-nice", test_unboost_without_cap_sys_nice);
    ADD("unboost-refused-stays-boosted", test_unboost_refused_stays_boosted);
    ADD("throttle-refused-retries", test_throttle_refused_retries);
    ADD("bound-throttle-cooldown", test_bound_throttles_then_cooldown);
    ADD("cooldown-ends-normal", test_cooldown_ends_in_normal);
    ADD("unbounded", test_unbounded);
    ADD("bound-from-unbounded", test_bound_from_unbounded);
    ADD("bound-from-static", test_bound_from_static);
    ADD("disable-unboosts", test_disable_unboosts);
    ADD("reenable-unboosts", test_reenable_unboosts);
    ADD("mode-static-off", test_mode_static_and_off);
    ADD("static-boosts-unregistered", test_static_boosts_unregistered);
    ADD("static-follows-policy-unregistered",
        test_static_follows_policy_unregistered);
    ADD("policy-change-while-boosted", test_policy_change_while_boosted);
    ADD("backstop-brackets-boost", test_backstop_brackets_boost);
    ADD("backstop-gone-with-failed-boost",
        test_backstop_gone_with_failed_boost);
    ADD("backstop-arm-failure-boosts", test_backstop_arm_failure_boosts);
    ADD("backstop-not-for-unregistered", test_backstop_not_for_unregistered);
    g_test_add_func("/pvsched/state/status-names", test_status_names);
    return g_test_run();
}
