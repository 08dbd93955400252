/*
 * pvsched: the emulator (main-loop) thread's own scheduling
 *
 * Whoever can wake or police a thread must run above it: the main loop
 * completes the I/O boosted vCPUs wait for and enforces their bound, so
 * with a real-time boost class it runs above every boosted vCPU.  It
 * changes only its own attributes, from the main loop.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "pvsched/emulator.h"
#include "trace.h"


static bool saved_valid;
static PvschedSchedAttr saved;      /* the main loop's own attributes */
static int main_tid;

int pvsched_emulator_apply(const PvschedSchedAttr *want)
{
    const PvschedBackend *be = &pvsched_host_backend;
    PvschedSchedAttr attr;
    int ret;

    assert(qemu_in_main_thread());
    main_tid = qemu_get_thread_id();
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
        /* Threads the main loop creates, e.g. workers, stay non-RT. */
        attr.flags |= PVSCHED_FLAG_RESET_ON_FORK;
        ret = be->set(&attr, be->opaque);
    }
    trace_pvsched_emulator(main_tid, want ? want->priority : 0, ret);
    return ret;
}

int pvsched_emulator_thread_id(void)
{
    return main_tid ? main_tid : qemu_get_thread_id();
}
