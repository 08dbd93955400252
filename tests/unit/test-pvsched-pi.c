/*
 * qemu_mutex_init_pi(), observed: a SCHED_OTHER thread holds a QemuMutex
 * that a SCHED_FIFO thread waits for.  With qemu_mutex_init_pi() the
 * holder runs at the waiter's priority (its effective priority, as the
 * kernel shows it in /proc/<pid>/task/<tid>/sched); with a plain mutex it
 * does not.  These mutexes are the test's own: that the BQL itself is
 * made this way is tested on a running QEMU, by the qtest
 * /pvsched/pi/bql-inherits in tests/qtest/pvsched-test.c.  Needs
 * CAP_SYS_NICE.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <dlfcn.h>
#include "qemu/thread.h"

#define WAITER_RT_PRIO 10
#define NORMAL_PRIO 120     /* the kernel's prio of a nice-0 thread */
#define RT_PRIO(p) (99 - (p))

typedef struct Inversion {
    QemuMutex lock;
    QemuSemaphore held, release;
    int holder_tid, waiter_tid;
} Inversion;

static void *holder(void *opaque)
{
    Inversion *inv = opaque;

    inv->holder_tid = qemu_get_thread_id();
    qemu_mutex_lock(&inv->lock);
    qemu_sem_post(&inv->held);
    qemu_sem_wait(&inv->release);
    qemu_mutex_unlock(&inv->lock);
    return NULL;
}

static void *waiter(void *opaque)
{
    Inversion *inv = opaque;
    struct sched_param sp = { .sched_priority = WAITER_RT_PRIO };

    g_assert_cmpint(pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp),
                    ==, 0);
    qatomic_set(&inv->waiter_tid, qemu_get_thread_id());
    qemu_mutex_lock(&inv->lock);
    qemu_mutex_unlock(&inv->lock);
    return NULL;
}

static char task_state(int tid)
{
    g_autofree char *path = g_strdup_printf("/proc/self/task/%d/stat", tid);
    g_autofree char *stat = NULL;

    g_assert_true(g_file_get_contents(path, &stat, NULL, NULL));
    return strrchr(stat, ')')[2];
}

static int effective_prio(int tid)
{
    g_autofree char *path = g_strdup_printf("/proc/self/task/%d/sched", tid);
    g_autofree char *sched = NULL;
    char *line;

    g_assert_true(g_file_get_contents(path, &sched, NULL, NULL));
    line = strstr(sched, "\nprio");
    g_assert_nonnull(line);
    return atoi(strchr(line, ':') + 1);
}

/* The holder's effective priority while the FIFO waiter is blocked. */
static int holder_prio_while_waited_for(bool pi)
{
    Inversion inv = { };
    QemuThread h, w;
    int i, prio;

    if (pi) {
        g_assert_true(qemu_mutex_init_pi(&inv.lock));
    } else {
        qemu_mutex_init(&inv.lock);
    }
    qemu_sem_init(&inv.held, 0);
    qemu_sem_init(&inv.release, 0);
    qemu_thread_create(&h, "holder", holder, &inv, QEMU_THREAD_JOINABLE);
    qemu_sem_wait(&inv.held);
    g_assert_cmpint(effective_prio(inv.holder_tid), ==, NORMAL_PRIO);

    qemu_thread_create(&w, "waiter", waiter, &inv, QEMU_THREAD_JOINABLE);
    /* Wait (bounded) until the waiter sleeps on the lock. */
    for (i = 0; i < 5000; i++) {
        int tid = qatomic_read(&inv.waiter_tid);

        if (tid && task_state(tid) == 'S') {
            break;
        }
        g_usleep(1000);
    }
    g_assert_cmpint(i, <, 5000);
    prio = effective_prio(inv.holder_tid);

    qemu_sem_post(&inv.release);
    qemu_thread_join(&w);
    qemu_thread_join(&h);
    qemu_mutex_destroy(&inv.lock);
    return prio;
}

static void test_pi_mutex_inherits(void)
{
    g_assert_cmpint(holder_prio_while_waited_for(true), ==,
                    RT_PRIO(WAITER_RT_PRIO));
}

static void test_plain_mutex_inverts(void)
{
    g_assert_cmpint(holder_prio_while_waited_for(false), ==, NORMAL_PRIO);
}

/*
 * A host kernel without PI futexes, as glibc reports it: it accepts
 * PTHREAD_PRIO_INHERIT in the attribute and refuses the mutex with
 * ENOTSUP from pthread_mutex_init().  The test binary's definition
 * takes the place of libc's for qemu-thread-posix.c.
 */
static bool no_pi_futex;

int pthread_mutex_init(pthread_mutex_t *mutex,
                       const pthread_mutexattr_t *attr)
{
    static int (*real_init)(pthread_mutex_t *, const pthread_mutexattr_t *);
    const int no_pi = ENOTSUP;  /* positive, as pthread calls return it */
    int protocol;

    if (no_pi_futex && attr &&
        pthread_mutexattr_getprotocol(attr, &protocol) == 0 &&
        protocol == PTHREAD_PRIO_INHERIT) {
        return no_pi;
    }
    if (!real_init) {
        real_init = dlsym(RTLD_NEXT, "pthread_mutex_init");
        g_assert_nonnull(real_init);
    }
    return real_init(mutex, attr);
}

/* Without PI futexes a PI mutex is a plain one, not an abort. */
static void test_pi_mutex_without_pi_futex(void)
{
    QemuMutex m;

    if (g_test_subprocess()) {
        no_pi_futex = true;
        g_assert_false(qemu_mutex_init_pi(&m));
        qemu_mutex_lock(&m);
        g_assert_false(qemu_mutex_trylock(&m) == 0);
        qemu_mutex_unlock(&m);
        qemu_mutex_destroy(&m);
        return;
    }
    g_test_trap_subprocess(NULL, 0, 0);
    g_test_trap_assert_passed();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/pvsched/pi/pi-mutex-inherits", test_pi_mutex_inherits);
    g_test_add_func("/pvsched/pi/plain-mutex-inverts",
                    test_plain_mutex_inverts);
    g_test_add_func("/pvsched/pi/without-pi-futex",
                    test_pi_mutex_without_pi_futex);
    return g_test_run();
}
