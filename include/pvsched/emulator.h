/*
 * pvsched: the emulator (main-loop) thread's own scheduling
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_EMULATOR_H
#define PVSCHED_EMULATOR_H

#include "pvsched/sched-attr.h"

/*
 * From the main loop: give it @want (plus RESET_ON_FORK), or with NULL
 * the attributes it had before the first call.  Returns 0 or -errno.
 */
int pvsched_emulator_apply(const PvschedSchedAttr *want);

/* The main-loop thread's host thread id. */
int pvsched_emulator_thread_id(void);

#endif
