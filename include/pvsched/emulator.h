/*
 * pvsched: the emulator threads' own scheduling
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_EMULATOR_H
#define PVSCHED_EMULATOR_H

#include "pvsched/sched-attr.h"

/*
 * From the main loop, with the BQL: the main loop takes @main_loop and
 * every I/O thread @iothreads (plus RESET_ON_FORK), each on itself; NULL
 * gives a thread back the attributes it had before.  0 or -errno.
 */
int pvsched_emulator_apply(const PvschedSchedAttr *main_loop,
                           const PvschedSchedAttr *iothreads);

/* The main-loop thread's host thread id. */
int pvsched_emulator_thread_id(void);

/* The host thread ids of the VM's I/O threads. */
GArray *pvsched_iothread_ids(void);

#endif
