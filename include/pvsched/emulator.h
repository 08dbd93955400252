/*
 * pvsched: the emulator threads' own scheduling
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_EMULATOR_H
#define PVSCHED_EMULATOR_H

#include "pvsched/sched-attr.h"

/*
 * A change of the emulator threads as a transaction: each call below
 * records in an undo log what it changed, so that a change made of
 * several steps can give every thread back its attributes when a later
 * step fails.
 */
typedef struct PvschedEmulatorUndo PvschedEmulatorUndo;

PvschedEmulatorUndo *pvsched_emulator_undo_new(void);

/*
 * From the main loop, with the BQL: the main loop takes @want (plus
 * RESET_ON_FORK) on itself; NULL gives it back the attributes it had
 * before its first change.  0 or -errno; on failure it is unchanged.
 */
int pvsched_emulator_order_main_loop(const PvschedSchedAttr *want,
                                     PvschedEmulatorUndo *undo);

/*
 * The same for every I/O thread, each on itself, in its AioContext.
 * Stops at the first failure (-errno); the threads changed before it
 * are in @undo.
 */
int pvsched_emulator_order_iothreads(const PvschedSchedAttr *want,
                                     PvschedEmulatorUndo *undo);

/* Give every thread in @undo its attributes back, last changed first. */
void pvsched_emulator_rollback(PvschedEmulatorUndo *undo);

/* Keep the changes; NULL is fine. */
void pvsched_emulator_undo_free(PvschedEmulatorUndo *undo);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(PvschedEmulatorUndo, pvsched_emulator_undo_free)

/* The main-loop thread's host thread id. */
int pvsched_emulator_thread_id(void);

/* The host thread ids of the VM's I/O threads. */
GArray *pvsched_iothread_ids(void);

#endif
