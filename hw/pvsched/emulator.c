/*
 * pvsched: the emulator threads' own scheduling
 *
 * Whoever can wake or police a thread must run above it: the main loop
 * and the I/O threads complete the I/O boosted vCPUs wait for, and the
 * main loop enforces their bound, so with a real-time boost class they
 * run above every boosted vCPU: SCHED_FIFO above the boost priority, or
 * SCHED_DEADLINE, above every FIFO thread and bounded by the kernel.
 * Either way with RESET_ON_FORK, without which a SCHED_DEADLINE thread
 * could not create threads at all.  Each changes only its own attributes:
 * the main loop where the policy is applied, each I/O thread in its own
 * AioContext.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "block/aio-wait.h"
#include "qom/object.h"
#include "system/iothread.h"
#include "pvsched/emulator.h"
#include "trace.h"

/* Each thread keeps the attributes it had before its first change. */
static __thread bool saved_valid;
static __thread PvschedSchedAttr saved;
static int main_tid;

/* One thread's change, as it is undone. */
typedef struct ThreadUndo {
    IOThread *iot;              /* a reference; NULL: the main loop */
    PvschedSchedAttr prev;      /* its attributes before the change */
    PvschedSchedAttr saved;     /* and its bookkeeping */
    bool saved_valid;
} ThreadUndo;

struct PvschedEmulatorUndo {
    GArray *threads;            /* ThreadUndo, in the order changed */
};

/* Attributes the thread had before, RESET_ON_FORK kept if it must be. */
static int set_back(const PvschedBackend *be, const PvschedSchedAttr *prev)
{
    PvschedSchedAttr attr = *prev;

    return pvsched_sched_set_lower(be, &attr);
}

/*
 * On the thread itself: take @want, or with NULL its own attributes;
 * @u records how to undo it.  On failure nothing changed.
 */
static int order_self(const PvschedSchedAttr *want, ThreadUndo *u)
{
    const PvschedBackend *be = &pvsched_host_backend;
    PvschedSchedAttr attr;
    int ret;

    ret = be->get(&u->prev, be->opaque);
    if (ret < 0) {
        return ret;
    }
    u->saved = saved;
    u->saved_valid = saved_valid;
    if (!want) {
        ret = saved_valid ? set_back(be, &saved) : 0;
        saved_valid = saved_valid && ret < 0;
    } else {
        attr = *want;
        /* Threads created from here, e.g. workers, stay non-RT. */
        attr.flags |= PVSCHED_FLAG_RESET_ON_FORK;
        ret = be->set(&attr, be->opaque);
        if (ret == 0 && !saved_valid) {
            saved = u->prev;
            saved_valid = true;
        }
    }
    trace_pvsched_emulator(qemu_get_thread_id(),
                           want ? pvsched_policy_name(want->policy) : "own",
                           want ? want->priority : 0,
                           want ? want->runtime : 0,
                           want ? want->period : 0, ret);
    return ret;
}

/* On the thread itself: back to where @u found it. */
static void undo_self(const ThreadUndo *u)
{
    const PvschedBackend *be = &pvsched_host_backend;
    int ret = set_back(be, &u->prev);

    saved = u->saved;
    saved_valid = u->saved_valid;
    trace_pvsched_emulator_undo(qemu_get_thread_id(),
                                pvsched_policy_name(u->prev.policy),
                                u->prev.priority, ret);
    if (ret < 0) {
        warn_report("pvsched: thread %d: cannot restore its scheduling "
                    "attributes: %s", qemu_get_thread_id(), strerror(-ret));
    }
}

PvschedEmulatorUndo *pvsched_emulator_undo_new(void)
{
    PvschedEmulatorUndo *undo = g_new0(PvschedEmulatorUndo, 1);

    undo->threads = g_array_new(false, false, sizeof(ThreadUndo));
    return undo;
}

static void undo_append(PvschedEmulatorUndo *undo, const ThreadUndo *u)
{
    g_array_append_val(undo->threads, *u);
    if (u->iot) {
        object_ref(OBJECT(u->iot));
    }
}

typedef struct OrderIothread {
    const PvschedSchedAttr *want;
    ThreadUndo u;
    int ret;
} OrderIothread;

static void order_iothread_bh(void *opaque)
{
    OrderIothread *o = opaque;

    o->ret = order_self(o->want, &o->u);
}

static void undo_iothread_bh(void *opaque)
{
    undo_self(opaque);
}

typedef struct OrderIothreads {
    const PvschedSchedAttr *want;
    PvschedEmulatorUndo *undo;
    int ret;
} OrderIothreads;

/* Each in its own AioContext; stop at the first that fails. */
static int order_iothread(Object *obj, void *opaque)
{
    IOThread *iot = (IOThread *)object_dynamic_cast(obj, TYPE_IOTHREAD);
    OrderIothreads *all = opaque;
    OrderIothread o = { .want = all->want, .u.iot = iot };

    if (!iot) {
        return 0;
    }
    aio_wait_bh_oneshot(iothread_get_aio_context(iot), order_iothread_bh,
                        &o);
    if (o.ret < 0) {
        all->ret = o.ret;
        return 1;
    }
    undo_append(all->undo, &o.u);
    return 0;
}

int pvsched_emulator_order_main_loop(const PvschedSchedAttr *want,
                                     PvschedEmulatorUndo *undo)
{
    ThreadUndo u = { };
    int ret;

    assert(qemu_in_main_thread());
    main_tid = qemu_get_thread_id();
    ret = order_self(want, &u);
    if (ret == 0) {
        undo_append(undo, &u);
    }
    return ret;
}

int pvsched_emulator_order_iothreads(const PvschedSchedAttr *want,
                                     PvschedEmulatorUndo *undo)
{
    OrderIothreads all = { .want = want, .undo = undo };
    Object *objects = object_get_objects_root();

    assert(qemu_in_main_thread());
    /*
     * At exit, user_creatable_cleanup() finalizes /objects, whose child
     * properties then still point to children already finalized: there
     * is no walking it, and no I/O thread left to care.
     */
    if (!objects->parent) {
        return 0;
    }
    object_child_foreach(objects, order_iothread, &all);
    return all.ret;
}

static void undo_clear(PvschedEmulatorUndo *undo)
{
    int i;

    for (i = 0; i < undo->threads->len; i++) {
        ThreadUndo *u = &g_array_index(undo->threads, ThreadUndo, i);

        if (u->iot) {
            object_unref(OBJECT(u->iot));
        }
    }
    g_array_set_size(undo->threads, 0);
}

void pvsched_emulator_rollback(PvschedEmulatorUndo *undo)
{
    int i;

    assert(qemu_in_main_thread());
    /* Last changed, first restored: the way back keeps the order. */
    for (i = undo->threads->len - 1; i >= 0; i--) {
        ThreadUndo *u = &g_array_index(undo->threads, ThreadUndo, i);

        if (u->iot) {
            aio_wait_bh_oneshot(iothread_get_aio_context(u->iot),
                                undo_iothread_bh, u);
        } else {
            undo_self(u);
        }
    }
    undo_clear(undo);
}

void pvsched_emulator_undo_free(PvschedEmulatorUndo *undo)
{
    if (undo) {
        undo_clear(undo);
        g_array_free(undo->threads, true);
        g_free(undo);
    }
}

int pvsched_emulator_thread_id(void)
{
    return main_tid ? main_tid : qemu_get_thread_id();
}

static int add_iothread_id(Object *obj, void *opaque)
{
    IOThread *iot = (IOThread *)object_dynamic_cast(obj, TYPE_IOTHREAD);
    GArray *tids = opaque;

    if (iot) {
        g_array_append_val(tids, iot->thread_id);
    }
    return 0;
}

GArray *pvsched_iothread_ids(void)
{
    GArray *tids = g_array_new(false, false, sizeof(int));

    object_child_foreach(object_get_objects_root(), add_iothread_id, tids);
    return tids;
}
