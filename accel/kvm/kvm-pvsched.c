/*
 * pvsched: the KVM run-loop hook
 *
 * Kept in accel/kvm and free of any hw/pvsched dependency so that a build
 * without the pvsched device still links: the device brings the hook.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/atomic.h"
#include "pvsched/kvm-hook.h"

const KVMPvschedHook *kvm_pvsched_hook;

bool kvm_pvsched_install_hook(const KVMPvschedHook *hook)
{
    return qatomic_cmpxchg(&kvm_pvsched_hook, NULL, hook) == NULL;
}

void kvm_pvsched_remove_hook(const KVMPvschedHook *hook)
{
    qatomic_cmpxchg(&kvm_pvsched_hook, hook, NULL);
}
