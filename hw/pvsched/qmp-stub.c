/*
 * pvsched: QMP commands in a QEMU built without pvsched
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-pvsched.h"

/* Management may ask any QEMU: the honest answer is "no device". */
PvschedInfo *qmp_query_pvsched(Error **errp)
{
    return g_new0(PvschedInfo, 1);
}

void qmp_pvsched_set_policy(PvschedPolicyChange *change, Error **errp)
{
    error_setg(errp, "this QEMU is built without pvsched");
}
