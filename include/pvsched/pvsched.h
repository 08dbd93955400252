/*
 * pvsched: the device, as the monitor sees it
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

#endif
