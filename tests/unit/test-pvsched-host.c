/*
 * Unit tests for the pvsched host scheduling backend, on real threads:
 * a boost sets SCHED_FLAG_RESET_ON_FORK, so that threads created by a
 * boosted vCPU thread (QEMU creates some) are not real-time, and unboost
 * gives the thread back its own attributes.  Needs CAP_SYS_NICE.
 * And the bound's backstop: a timer on the thread's own CPU clock that
 * signals that thread, as a kick does, once it has run long enough.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "pvsched/vcpu-state.h"

static void *child_attr(void *opaque)
{
    PvschedSchedAttr *attr = opaque;

    g_assert_cmpint(pvsched_host_backend.get(attr, NULL), ==, 0);
    return NULL;
}

/* Boost this thread as a vCPU would, then create a thread from it. */
static void boost_then_create(const PvschedSchedAttr *boost,
                              uint32_t want_policy)
{
    const PvschedBackend *be = &pvsched_host_backend;
    PvschedBoostConfig cfg = { .mode = PVSCHED_STATE_DYNAMIC, .boost = *boost };
    PvschedSchedAttr mine, child = { .policy = 1234 };
    PvschedVcpuState st;
    pthread_t t;

    g_assert_cmpint(be->get(&mine, NULL), ==, 0);
    pvsched_state_init(&st);
    pvsched_state_enable(&st, &cfg, be);
    g_assert_true(pvsched_state_update(&st, &cfg, be, PVSCHED_REQ_BOOST));
    g_assert_cmpint(st.last_error, ==, 0);

    g_assert_cmpint(pthread_create(&t, NULL, child_attr, &child), ==, 0);
    pthread_join(t, NULL);

    g_assert_true(pvsched_state_update(&st, &cfg, be, PVSCHED_REQ_UNBOOST));
    /* The child started with the default policy, not the boost. */
    g_assert_cmpuint(child.policy, ==, want_policy);
    g_assert_cmpuint(child.priority, ==, 0);
    /* And this thread is back to what it was. */
    g_assert_cmpint(be->get(&st.applied, NULL), ==, 0);
    g_assert_cmpuint(st.applied.policy, ==, mine.policy);
    g_assert_cmpint(st.applied.nice, ==, mine.nice);
}

static void test_fifo_child_not_rt(void)
{
    boost_then_create(&(PvschedSchedAttr) { .policy = SCHED_FIFO,
                                            .priority = 1 }, SCHED_OTHER);
}

static void test_deadline_child_not_dl(void)
{
    /* Without RESET_ON_FORK the kernel refuses to fork a DL task. */
    boost_then_create(&(PvschedSchedAttr) {
        .policy = PVSCHED_SCHED_DEADLINE,
        .runtime = 1000000, .deadline = 10000000, .period = 10000000,
    }, SCHED_OTHER);
}

static __thread int kicks;
static int kicked_tid;

static void count_kick(int sig)
{
    kicks++;
    kicked_tid = qemu_get_thread_id();
}

static int64_t thread_cpu_ns(void)
{
    return pvsched_host_backend.thread_cpu_ns(NULL);
}

/* Burn this thread's CPU until @done or @limit_ns of it; CPU time then. */
static int64_t spin_until(volatile int *done, int64_t limit_ns)
{
    int64_t start = thread_cpu_ns(), now;

    do {
        now = thread_cpu_ns();
    } while (!*done && now - start < limit_ns);
    return now - start;
}

static void *backstop_thread(void *opaque)
{
    const PvschedBackend *be = &pvsched_host_backend;
    timer_t timer;
    sigset_t set;
    int64_t spent;

    sigemptyset(&set);
    sigaddset(&set, SIG_IPI);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    g_assert_cmpint(be->cpu_timer_create(&timer, NULL), ==, 0);

    /* Armed for 5 ms: it fires after 5 ms of this thread's CPU time. */
    g_assert_cmpint(be->cpu_timer_arm(timer, 5 * SCALE_MS, NULL), ==, 0);
    spent = spin_until(&kicks, 2 * NANOSECONDS_PER_SECOND);
    g_assert_cmpint(kicks, ==, 1);
    g_assert_cmpint(kicked_tid, ==, qemu_get_thread_id());
    g_assert_cmpint(spent, >=, 5 * SCALE_MS);

    /* Disarmed, it does not fire. */
    kicks = 0;
    g_assert_cmpint(be->cpu_timer_arm(timer, 5 * SCALE_MS, NULL), ==, 0);
    g_assert_cmpint(be->cpu_timer_arm(timer, 0, NULL), ==, 0);
    spin_until(&kicks, 50 * SCALE_MS);
    g_assert_cmpint(kicks, ==, 0);
    be->cpu_timer_delete(timer, NULL);
    return NULL;
}

/* On another thread than the main one, to show that it is that thread's. */
static void test_backstop_signals_its_thread(void)
{
    struct sigaction sa = { .sa_handler = count_kick };
    pthread_t t;

    sigaction(SIG_IPI, &sa, NULL);
    pthread_create(&t, NULL, backstop_thread, NULL);
    pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvsched/host/fifo-child-not-rt",
                    test_fifo_child_not_rt);
    g_test_add_func("/pvsched/host/deadline-child-not-dl",
                    test_deadline_child_not_dl);
    g_test_add_func("/pvsched/host/backstop-signals-its-thread",
                    test_backstop_signals_its_thread);
    return g_test_run();
}
