/*
 * pvsched: the device, as the monitor and the x86 CPU see it
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_PVSCHED_H
#define PVSCHED_PVSCHED_H

#include "pvsched/vcpu.h"

/* The VM's policy, or NULL when it has no pvsched device.  BQL. */
PvschedPolicy *pvsched_device_policy(void);

/* The state of vCPU @cpu_index; only when the device exists. */
PvschedVcpu *pvsched_device_vcpu(int cpu_index);

/*
 * The vCPU's pvsched MSR: its registered area, gpa | 1, or 0.  Only when
 * the device exists.  Any thread.
 */
uint64_t pvsched_device_msr(CPUState *cs);

/*
 * vmstate_x86_cpu's cpu/pvsched_msr subsection was loaded: the source's
 * guest had registered an area on this vCPU.  Register it again here,
 * under the BQL, with the vCPUs stopped.  Returns 0, or -EINVAL, with
 * the error reported, when that cannot be done on this machine: the
 * migration or loadvm then fails rather than the guest losing its area.
 */
int pvsched_cpu_post_load(CPUState *cs);

#endif
