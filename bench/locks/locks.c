/*
 * Lock benchmarks for the BQL (DESIGN.md section 5): the mutex the BQL is
 * in each configuration, measured side by side with the kinds
 * interleaved:
 *   stock     QEMU 10.0's BQL: qemu_mutex_init(), pthread_mutex_init(m, NULL)
 *   nopolicy  the patched QEMU without a pvsched-policy: qemu_init_cpu_loop()
 *             takes the same call (a second mutex, so that the table shows
 *             what the harness itself cannot tell apart)
 *   policy    with a pvsched-policy: qemu_mutex_init_pi(), PTHREAD_PRIO_INHERIT
 *   pifutex   (uncontended only) what a QEMU-owned PI lock could cost: a
 *             PI futex with an inline compare-and-swap of the owner's tid
 *             as fast path, FUTEX_LOCK_PI/FUTEX_UNLOCK_PI when contended
 * QemuMutex adds the same wrapper to every kind (qemu_mutex_lock_impl()),
 * so the pthread calls are what differs.
 *
 *   locks uncontended ITERS REPS [single]
 *       one thread, ITERS lock/unlock pairs per kind and repetition, with
 *       an idle second thread in the process as QEMU always has one
 *       (single: without it, see uncontended())
 *   locks contended THREADS ITERS REPS
 *       THREADS threads (pinned round-robin to the allowed CPUs), each
 *       ITERS lock / counter++ / unlock
 *   The uncontended run is pinned at SCHED_FIFO 1, so that the other
 *   work on a busy machine does not preempt it mid-measurement (keep
 *   ITERS to a few milliseconds per measurement); the contended threads
 *   run as QEMU's threads normally do, SCHED_OTHER.
 *   locks inversion TRIALS HOLD_US HOG_US CPU
 *       priority inversion on one CPU, stock against policy: a SCHED_FIFO
 *       10 holder takes the lock and needs HOLD_US of CPU time; a
 *       SCHED_FIFO 30 waiter wants the lock; a SCHED_FIFO 20 hog spins
 *       for HOG_US.  Without PI the hog preempts the holder and the
 *       waiter waits for the hog too.
 *
 * Prints one "key=value ..." line per measurement (bench/pvbench/locks.py
 * parses them).  Needs root (or CAP_SYS_NICE) for SCHED_FIFO.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { STOCK, NOPOLICY, POLICY, KINDS };
static const char *const kind_name[KINDS] = { "stock", "nopolicy", "policy" };

static void die(const char *what, int err)
{
    fprintf(stderr, "locks: %s: %s\n", what, strerror(err));
    exit(1);
}

/* As qemu_mutex_init() and qemu_mutex_init_pi() make them. */
static void mutex_init(pthread_mutex_t *m, int kind)
{
    pthread_mutexattr_t a;
    int r;

    if (kind != POLICY) {
        r = pthread_mutex_init(m, NULL);
        if (r) {
            die("pthread_mutex_init", r);
        }
        return;
    }
    pthread_mutexattr_init(&a);
    r = pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
    if (r) {
        die("PTHREAD_PRIO_INHERIT", r);
    }
    r = pthread_mutex_init(m, &a);
    if (r) {
        die("pthread_mutex_init", r);
    }
    pthread_mutexattr_destroy(&a);
}

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pin(pthread_t t, int cpu)
{
    cpu_set_t set;
    int r;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    r = pthread_setaffinity_np(t, sizeof(set), &set);
    if (r) {
        die("pthread_setaffinity_np", r);
    }
}

static void set_fifo(pthread_t t, int prio)
{
    struct sched_param p = { .sched_priority = prio };
    int r = pthread_setschedparam(t, SCHED_FIFO, &p);

    if (r) {
        die("SCHED_FIFO (run as root or grant CAP_SYS_NICE)", r);
    }
}

/* ---- uncontended -------------------------------------------------------- */

static double uncontended_once(int kind, long iters)
{
    pthread_mutex_t m;
    int64_t t0, t1;
    long i;

    mutex_init(&m, kind);
    pthread_mutex_lock(&m);             /* warm up */
    pthread_mutex_unlock(&m);
    t0 = now_ns(CLOCK_MONOTONIC);
    for (i = 0; i < iters; i++) {
        pthread_mutex_lock(&m);
        __asm__ volatile("" : : : "memory");
        pthread_mutex_unlock(&m);
    }
    t1 = now_ns(CLOCK_MONOTONIC);
    pthread_mutex_destroy(&m);
    return (double)(t1 - t0) / iters;
}

/*
 * A PI futex taken and released without the kernel when free: the word
 * holds the owner's tid.  Out of line, as a pthread call is.
 */
static _Atomic int pif_word;
static __thread int pif_tid;

static __attribute__((noinline)) void pif_lock(void)
{
    int free_word = 0;

    if (!atomic_compare_exchange_strong_explicit(&pif_word, &free_word,
                                                 pif_tid,
                                                 memory_order_acquire,
                                                 memory_order_relaxed)) {
        syscall(SYS_futex, &pif_word, FUTEX_LOCK_PI_PRIVATE, 0, NULL);
    }
}

static __attribute__((noinline)) void pif_unlock(void)
{
    int owned = pif_tid;

    if (!atomic_compare_exchange_strong_explicit(&pif_word, &owned, 0,
                                                 memory_order_release,
                                                 memory_order_relaxed)) {
        syscall(SYS_futex, &pif_word, FUTEX_UNLOCK_PI_PRIVATE, 0, NULL);
    }
}

static double uncontended_pifutex_once(long iters)
{
    int64_t t0, t1;
    long i;

    pif_tid = gettid();
    pif_lock();                         /* warm up */
    pif_unlock();
    t0 = now_ns(CLOCK_MONOTONIC);
    for (i = 0; i < iters; i++) {
        pif_lock();
        __asm__ volatile("" : : : "memory");
        pif_unlock();
    }
    t1 = now_ns(CLOCK_MONOTONIC);
    return (double)(t1 - t0) / iters;
}

static void *idle_thread(void *opaque)
{
    sem_wait(opaque);
    return NULL;
}

/*
 * SINGLE: measure in a single-threaded process, where glibc takes and
 * releases a plain mutex without atomic instructions (it does not for a
 * PI one).  QEMU is never single-threaded (its call_rcu thread starts
 * before main()), so by default an idle thread keeps this one company.
 */
static void uncontended(long iters, int reps, int single)
{
    cpu_set_t set;
    int rep, j, i, last = 0;
    pthread_t idle;
    sem_t stop;

    sem_init(&stop, 0, 0);
    if (!single) {
        i = pthread_create(&idle, NULL, idle_thread, &stop);
        if (i) {
            die("pthread_create", i);
        }
    }

    sched_getaffinity(0, sizeof(set), &set);
    for (i = 0; i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &set)) {
            last = i;
        }
    }
    pin(pthread_self(), last);
    set_fifo(pthread_self(), 1);

    for (rep = 0; rep < reps; rep++) {
        for (j = 0; j <= KINDS; j++) {
            int kind = (rep + j) % (KINDS + 1);  /* rotate who goes first */
            double ns = kind == KINDS ? uncontended_pifutex_once(iters)
                                      : uncontended_once(kind, iters);

            printf("uncontended rep=%d kind=%s iters=%ld threads=%d "
                   "ns_per_op=%.3f\n", rep,
                   kind == KINDS ? "pifutex" : kind_name[kind], iters,
                   single ? 1 : 2, ns);
            fflush(stdout);
        }
    }
    if (!single) {
        sem_post(&stop);
        pthread_join(idle, NULL);
    }
    sem_destroy(&stop);
}

/* ---- contended ---------------------------------------------------------- */

struct contended {
    pthread_mutex_t m;
    long iters;
    volatile long counter;
    atomic_int ready;
    atomic_int go;
};

static void *contended_thread(void *p)
{
    struct contended *c = p;
    long i;

    struct timespec pause = { 0, 20000 };

    atomic_fetch_add(&c->ready, 1);
    while (!atomic_load(&c->go)) {
        nanosleep(&pause, NULL);
    }
    for (i = 0; i < c->iters; i++) {
        pthread_mutex_lock(&c->m);
        c->counter++;
        pthread_mutex_unlock(&c->m);
    }
    return NULL;
}

static double contended_once(int kind, int nthreads, long iters,
                             const int *cpus, int ncpus)
{
    struct contended c = { .iters = iters };
    pthread_t t[64];
    int64_t t0, t1;
    int i;

    mutex_init(&c.m, kind);
    for (i = 0; i < nthreads; i++) {
        int r = pthread_create(&t[i], NULL, contended_thread, &c);

        if (r) {
            die("pthread_create", r);
        }
        pin(t[i], cpus[i % ncpus]);
    }
    while (atomic_load(&c.ready) < nthreads) {
        nanosleep(&(struct timespec){ 0, 20000 }, NULL);
    }
    t0 = now_ns(CLOCK_MONOTONIC);
    atomic_store(&c.go, 1);
    for (i = 0; i < nthreads; i++) {
        pthread_join(t[i], NULL);
    }
    t1 = now_ns(CLOCK_MONOTONIC);
    if (c.counter != (long)nthreads * iters) {
        fprintf(stderr, "locks: lost updates: %ld of %ld\n", c.counter,
                (long)nthreads * iters);
        exit(1);
    }
    pthread_mutex_destroy(&c.m);
    return (double)(t1 - t0) / ((double)nthreads * iters);
}

static void contended(int nthreads, long iters, int reps)
{
    cpu_set_t set;
    int cpus[CPU_SETSIZE], ncpus = 0, i, rep, j;

    if (nthreads < 1 || nthreads > 64) {
        fprintf(stderr, "locks: 1..64 threads\n");
        exit(2);
    }
    sched_getaffinity(0, sizeof(set), &set);
    for (i = 0; i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &set)) {
            cpus[ncpus++] = i;
        }
    }
    for (rep = 0; rep < reps; rep++) {
        for (j = 0; j < KINDS; j++) {
            int kind = (rep + j) % KINDS;

            printf("contended rep=%d kind=%s threads=%d cpus=%d iters=%ld "
                   "ns_per_op=%.3f\n", rep, kind_name[kind], nthreads,
                   ncpus < nthreads ? ncpus : nthreads, iters,
                   contended_once(kind, nthreads, iters, cpus, ncpus));
            fflush(stdout);
        }
    }
}

/* ---- priority inversion ------------------------------------------------- */

struct inversion {
    pthread_mutex_t m;
    long hold_ns, hog_ns;
    sem_t go_high, go_hog;
    atomic_int locked;
    int64_t wait_ns;
    int64_t holder_done_ns, hog_done_ns;
};

static void *holder(void *p)
{
    struct inversion *v = p;
    int64_t start;

    pthread_mutex_lock(&v->m);
    atomic_store(&v->locked, 1);
    /* CPU time, not wall time: preempted, the holder makes no progress. */
    start = now_ns(CLOCK_THREAD_CPUTIME_ID);
    while (now_ns(CLOCK_THREAD_CPUTIME_ID) - start < v->hold_ns) {
    }
    pthread_mutex_unlock(&v->m);
    v->holder_done_ns = now_ns(CLOCK_MONOTONIC);
    return NULL;
}

static void *waiter(void *p)
{
    struct inversion *v = p;
    int64_t t0;

    while (sem_wait(&v->go_high) && errno == EINTR) {
    }
    t0 = now_ns(CLOCK_MONOTONIC);
    pthread_mutex_lock(&v->m);
    v->wait_ns = now_ns(CLOCK_MONOTONIC) - t0;
    pthread_mutex_unlock(&v->m);
    return NULL;
}

static void *hog(void *p)
{
    struct inversion *v = p;
    int64_t start;

    while (sem_wait(&v->go_hog) && errno == EINTR) {
    }
    start = now_ns(CLOCK_MONOTONIC);
    while (now_ns(CLOCK_MONOTONIC) - start < v->hog_ns) {
    }
    v->hog_done_ns = now_ns(CLOCK_MONOTONIC);
    return NULL;
}

static pthread_t spawn(void *(*fn)(void *), void *arg, int cpu, int prio)
{
    pthread_attr_t a;
    struct sched_param sp = { .sched_priority = prio };
    cpu_set_t set;
    pthread_t t;
    int r;

    /* Pinned and SCHED_FIFO from the first instruction. */
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_attr_init(&a);
    pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED);
    pthread_attr_setschedpolicy(&a, SCHED_FIFO);
    pthread_attr_setschedparam(&a, &sp);
    pthread_attr_setaffinity_np(&a, sizeof(set), &set);
    r = pthread_create(&t, &a, fn, arg);
    if (r) {
        die("pthread_create (SCHED_FIFO: run as root or grant "
            "CAP_SYS_NICE)", r);
    }
    pthread_attr_destroy(&a);
    return t;
}

static double inversion_once(int kind, long hold_us, long hog_us, int cpu)
{
    struct inversion v = { .hold_ns = hold_us * 1000, .hog_ns = hog_us * 1000 };
    pthread_t tl, th, tm;
    struct timespec pause = { 0, 20000 };

    mutex_init(&v.m, kind);
    sem_init(&v.go_high, 0, 0);
    sem_init(&v.go_hog, 0, 0);
    th = spawn(waiter, &v, cpu, 30);
    tm = spawn(hog, &v, cpu, 20);
    tl = spawn(holder, &v, cpu, 10);
    while (!atomic_load(&v.locked)) {
        nanosleep(&pause, NULL);
    }
    /* The waiter blocks on the lock; then the hog becomes runnable. */
    sem_post(&v.go_high);
    sem_post(&v.go_hog);
    pthread_join(tl, NULL);
    pthread_join(th, NULL);
    pthread_join(tm, NULL);
    pthread_mutex_destroy(&v.m);
    sem_destroy(&v.go_high);
    sem_destroy(&v.go_hog);
    return v.wait_ns / 1000.0;
}

static void inversion(int trials, long hold_us, long hog_us, int cpu)
{
    cpu_set_t set;
    int trial, j, other = -1, i;

    /* The controller runs on another CPU, above the three, so that it
     * posts the waiter and the hog while the holder still holds. */
    sched_getaffinity(0, sizeof(set), &set);
    for (i = 0; i < CPU_SETSIZE; i++) {
        if (CPU_ISSET(i, &set) && i != cpu) {
            other = i;
            break;
        }
    }
    if (other < 0) {
        fprintf(stderr, "locks: inversion needs a second CPU\n");
        exit(2);
    }
    pin(pthread_self(), other);
    set_fifo(pthread_self(), 40);
    for (trial = 0; trial < trials; trial++) {
        for (j = 0; j < 2; j++) {
            int kind = (trial + j) % 2 ? POLICY : STOCK;

            printf("inversion trial=%d kind=%s hold_us=%ld hog_us=%ld cpu=%d "
                   "wait_us=%.1f\n", trial, kind_name[kind], hold_us, hog_us,
                   cpu, inversion_once(kind, hold_us, hog_us, cpu));
            fflush(stdout);
        }
    }
}

int main(int argc, char **argv)
{
    if ((argc == 4 || (argc == 5 && !strcmp(argv[4], "single"))) &&
        !strcmp(argv[1], "uncontended")) {
        uncontended(atol(argv[2]), atoi(argv[3]), argc == 5);
    } else if (argc == 5 && !strcmp(argv[1], "contended")) {
        contended(atoi(argv[2]), atol(argv[3]), atoi(argv[4]));
    } else if (argc == 6 && !strcmp(argv[1], "inversion")) {
        inversion(atoi(argv[2]), atol(argv[3]), atol(argv[4]),
                  atoi(argv[5]));
    } else {
        fprintf(stderr,
                "usage: locks uncontended ITERS REPS [single]\n"
                "       locks contended THREADS ITERS REPS\n"
                "       locks inversion TRIALS HOLD_US HOG_US CPU\n");
        return 2;
    }
    return 0;
}
