/*
 * pvsched: host scheduling attributes and the backend that applies them
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_SCHED_ATTR_H
#define PVSCHED_SCHED_ATTR_H

/*
 * The fields of the kernel's struct sched_attr that pvsched uses.  Kept
 * separate from the kernel layout so the state machine and its unit tests
 * need no syscall.
 */
typedef struct PvschedSchedAttr {
    uint32_t policy;        /* SCHED_OTHER, SCHED_FIFO, ... */
    uint64_t flags;         /* SCHED_FLAG_* */
    int32_t nice;
    uint32_t priority;      /* 1..99 for SCHED_FIFO/SCHED_RR */
    uint64_t runtime;       /* SCHED_DEADLINE, ns */
    uint64_t deadline;
    uint64_t period;
    uint32_t util_min;      /* utilization clamps, 0..1024 */
    uint32_t util_max;
} PvschedSchedAttr;

/* The kernel's values, which Debian 12's headers do not all have. */
#define PVSCHED_SCHED_DEADLINE      6
#define PVSCHED_FLAG_RESET_ON_FORK  0x01
#define PVSCHED_FLAG_KEEP_ALL       0x18    /* KEEP_POLICY | KEEP_PARAMS */
#define PVSCHED_FLAG_UTIL_CLAMP     0x60    /* UTIL_CLAMP_MIN | _MAX */

/*
 * The scheduling backend: every call acts on the calling thread only.
 * Each thread changes its own attributes, so that a sandbox can deny
 * sched_setattr() on any other thread.
 */
typedef struct PvschedBackend {
    int (*get)(PvschedSchedAttr *attr, void *opaque);        /* 0 or -errno */
    int (*set)(const PvschedSchedAttr *attr, void *opaque);  /* 0 or -errno */
    int64_t (*thread_cpu_ns)(void *opaque);  /* this thread's CPU time */
    int64_t (*now_ns)(void *opaque);         /* monotonic clock */
    /* Any thread's CPU time, by its clock; -errno if the thread is gone. */
    int64_t (*clock_cpu_ns)(clockid_t clock, void *opaque);
    /*
     * A timer on the calling thread's CPU clock that sends that thread
     * SIG_IPI, as a kick does, when armed for @ns and the thread has run
     * that much more.  Any thread may arm it; @ns 0 disarms.  0 or -errno.
     */
    int (*cpu_timer_create)(timer_t *timer, void *opaque);
    int (*cpu_timer_arm)(timer_t timer, int64_t ns, void *opaque);
    void (*cpu_timer_delete)(timer_t timer, void *opaque);
    void *opaque;
} PvschedBackend;

/* sched_getattr()/sched_setattr() on the calling thread. */
extern const PvschedBackend pvsched_host_backend;

/*
 * Lower the calling thread to @attr.  Without CAP_SYS_NICE (RLIMIT_RTPRIO
 * only) the kernel lets a thread lower itself but not clear the
 * RESET_ON_FORK a boost set: then @attr keeps that flag, and only that.
 */
int pvsched_sched_set_lower(const PvschedBackend *be, PvschedSchedAttr *attr);

/* Reading another thread is fine: only changes are kept to oneself. */
int pvsched_sched_get_thread(int tid, PvschedSchedAttr *attr);

const char *pvsched_policy_name(uint32_t policy);

/* 0 if this host's kernel clamps utilization, else -errno. */
int pvsched_uclamp_probe(void);

#endif
