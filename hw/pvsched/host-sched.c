/*
 * pvsched: the host scheduling backend
 *
 * Debian 12's glibc has neither sched_setattr() nor struct sched_attr, so
 * call the system calls directly with the kernel's layout.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/syscall.h>
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "pvsched/sched-attr.h"
#include "trace.h"


/* The kernel's struct sched_attr, SCHED_ATTR_SIZE_VER1. */
struct pvsched_kernel_attr {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
    uint32_t sched_util_min;
    uint32_t sched_util_max;
};

int pvsched_sched_get_thread(int tid, PvschedSchedAttr *attr)
{
    struct pvsched_kernel_attr k = { 0 };

    if (syscall(SYS_sched_getattr, tid, &k, sizeof(k), 0) < 0) {
        return -errno;
    }
    *attr = (PvschedSchedAttr) {
        .policy = k.sched_policy,
        .flags = k.sched_flags,
        .nice = k.sched_nice,
        .priority = k.sched_priority,
        .runtime = k.sched_runtime,
        .deadline = k.sched_deadline,
        .period = k.sched_period,
        .util_min = k.sched_util_min,
        .util_max = k.sched_util_max,
    };
    return 0;
}

static int host_get(PvschedSchedAttr *attr, void *opaque)
{
    return pvsched_sched_get_thread(0, attr);
}

static int host_set(const PvschedSchedAttr *attr, void *opaque)
{
    struct pvsched_kernel_attr k = {
        .size = sizeof(k),
        .sched_policy = attr->policy,
        .sched_flags = attr->flags,
        .sched_nice = attr->nice,
        .sched_priority = attr->priority,
        .sched_runtime = attr->runtime,
        .sched_deadline = attr->deadline,
        .sched_period = attr->period,
        .sched_util_min = attr->util_min,
        .sched_util_max = attr->util_max,
    };

    int ret = syscall(SYS_sched_setattr, 0, &k, 0) < 0 ? -errno : 0;

    /*
     * Which thread changed, and in which order: see the policy changes.
     * Asking for the thread id is a system call: only when tracing.
     */
    if (trace_event_get_state_backends(TRACE_PVSCHED_SCHED_SET)) {
        trace_pvsched_sched_set(qemu_get_thread_id(),
                                pvsched_policy_name(attr->policy),
                                attr->priority, ret);
    }
    return ret;
}

static int64_t clock_ns(clockid_t clk)
{
    struct timespec ts;

    if (clock_gettime(clk, &ts) < 0) {
        return -errno;
    }
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The calling thread's own clocks exist as long as it runs. */
static int64_t host_thread_cpu_ns(void *opaque)
{
    int64_t ns = clock_ns(CLOCK_THREAD_CPUTIME_ID);

    assert(ns >= 0);
    return ns;
}

static int64_t host_now_ns(void *opaque)
{
    int64_t ns = clock_ns(CLOCK_MONOTONIC);

    assert(ns >= 0);
    return ns;
}

/* Another thread's clock fails (EINVAL) once that thread has exited. */
static int64_t host_clock_cpu_ns(clockid_t clock, void *opaque)
{
    return clock_ns(clock);
}

/*
 * The kernel checks CPU-time timers at its tick, so one fires up to a tick
 * late; it signals the thread it times wherever that thread is, even in
 * KVM_RUN, which returns -EINTR as for a kick (same signal, same handler).
 */
static int host_cpu_timer_create(timer_t *timer, void *opaque)
{
    struct sigevent sev = {
        .sigev_notify = SIGEV_THREAD_ID,
        .sigev_signo = SIG_IPI,
    };

    sev._sigev_un._tid = qemu_get_thread_id();
    return timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, timer) < 0 ?
           -errno : 0;
}

static int host_cpu_timer_arm(timer_t timer, int64_t ns, void *opaque)
{
    struct itimerspec its = {
        .it_value = { .tv_sec = ns / NANOSECONDS_PER_SECOND,
                      .tv_nsec = ns % NANOSECONDS_PER_SECOND },
    };

    return timer_settime(timer, 0, &its, NULL) < 0 ? -errno : 0;
}

static void host_cpu_timer_delete(timer_t timer, void *opaque)
{
    timer_delete(timer);
}

const PvschedBackend pvsched_host_backend = {
    .get = host_get,
    .set = host_set,
    .thread_cpu_ns = host_thread_cpu_ns,
    .now_ns = host_now_ns,
    .clock_cpu_ns = host_clock_cpu_ns,
    .cpu_timer_create = host_cpu_timer_create,
    .cpu_timer_arm = host_cpu_timer_arm,
    .cpu_timer_delete = host_cpu_timer_delete,
};

int pvsched_uclamp_probe(void)
{
    /* The unclamped range, on this thread: a no-op where uclamp exists. */
    PvschedSchedAttr attr = {
        .flags = PVSCHED_FLAG_KEEP_ALL | PVSCHED_FLAG_UTIL_CLAMP,
        .util_min = 0,
        .util_max = 1024,
    };

    return host_set(&attr, NULL);
}

const char *pvsched_policy_name(uint32_t policy)
{
    switch (policy) {
    case SCHED_OTHER:
        return "other";
    case SCHED_FIFO:
        return "fifo";
    case SCHED_RR:
        return "rr";
    case SCHED_BATCH:
        return "batch";
    case SCHED_IDLE:
        return "idle";
    case PVSCHED_SCHED_DEADLINE:
        return "deadline";
    default:
        return "unknown";
    }
}
