/*
 * pvsched: the emulator threads' own scheduling
 *
 * Whoever can wake or police a thread must run above it: the main loop
 * and the I/O threads complete the I/O boosted vCPUs wait for, and the
 * main loop enforces their bound, so with a real-time boost class they
 * run above every boosted vCPU.  Each changes only its own attributes:
 * the main loop where the policy is applied, each I/O thread in its own
 * AioContext.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
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

/* On the thread itself: take @want, or with NULL its own attributes. */
static int order_self(const PvschedSchedAttr *want)
{
    const PvschedBackend *be = &pvsched_host_backend;
    PvschedSchedAttr attr;
    int ret;

    if (!want) {
        ret = saved_valid ? be->set(&saved, be->opaque) : 0;
        saved_valid = saved_valid && ret < 0;
    } else {
        if (!saved_valid) {
            ret = be->get(&saved, be->opaque);
            if (ret < 0) {
                return ret;
            }
            saved_valid = true;
        }
        attr = *want;
        /* Threads created from here, e.g. workers, stay non-RT. */
        attr.flags |= PVSCHED_FLAG_RESET_ON_FORK;
        ret = be->set(&attr, be->opaque);
    }
    trace_pvsched_emulator(qemu_get_thread_id(),
                           want ? want->priority : 0, ret);
    return ret;
}

typedef struct OrderIothreads {
    const PvschedSchedAttr *want;
    int ret;
} OrderIothreads;

static void order_iothread_bh(void *opaque)
{
    OrderIothreads *o = opaque;
    int ret = order_self(o->want);

    o->ret = o->ret ?: ret;
}

static int order_iothread(Object *obj, void *opaque)
{
    IOThread *iot = (IOThread *)object_dynamic_cast(obj, TYPE_IOTHREAD);

    if (iot) {
        aio_wait_bh_oneshot(iothread_get_aio_context(iot), order_iothread_bh,
                            opaque);
    }
    return 0;
}

int pvsched_emulator_apply(const PvschedSchedAttr *main_loop,
                           const PvschedSchedAttr *iothreads)
{
    OrderIothreads o = { .want = iothreads };
    int ret;

    assert(qemu_in_main_thread());
    main_tid = qemu_get_thread_id();
    ret = order_self(main_loop);
    if (ret < 0) {
        return ret;
    }
    object_child_foreach(object_get_objects_root(), order_iothread, &o);
    return o.ret;
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
