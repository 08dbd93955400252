/*
 * pvsched: the per-VM policy object (-object pvsched-policy)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_POLICY_H
#define PVSCHED_POLICY_H

#include "qemu/notify.h"
#include "qom/object.h"
#include "qapi/qapi-types-pvsched.h"
#include "pvsched/vcpu-state.h"

#define TYPE_PVSCHED_POLICY "pvsched-policy"
OBJECT_DECLARE_SIMPLE_TYPE(PvschedPolicy, PVSCHED_POLICY)

/*
 * Copy the policy in force into @cfg.  Lock-free (RCU): vCPU threads call
 * it from the run loop without the BQL.
 */
void pvsched_policy_get_config(PvschedPolicy *pol, PvschedBoostConfig *cfg);

/* @n is called, with the BQL, after every run-time change. */
void pvsched_policy_add_change_notifier(PvschedPolicy *pol, Notifier *n);

/* A run-time change, as pvsched-set-policy gives it: all or nothing. */
bool pvsched_policy_update(PvschedPolicy *pol, const PvschedPolicyChange *u,
                           Error **errp);
PvschedPolicyInfo *pvsched_policy_info(PvschedPolicy *pol);

#endif
