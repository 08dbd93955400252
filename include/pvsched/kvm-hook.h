/*
 * pvsched: the KVM run-loop hook
 *
 * kvm_cpu_exec() calls kvm_pvsched_post_run() on the vCPU thread after
 * every KVM_RUN return, without the BQL, before the exit is handled,
 * saying whether a signal interrupted KVM_RUN (a kick, SIG_IPI);
 * a vCPU thread calls kvm_pvsched_vcpu_start() once, before it first
 * enters the guest (it holds the BQL then).
 * At most one hook exists: the pvsched device installs it at realize,
 * before any vCPU runs guest code, and removes it only if its realize
 * fails after that, still before any vCPU ran guest code.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_KVM_HOOK_H
#define PVSCHED_KVM_HOOK_H

#include "qemu/atomic.h"

typedef void KVMPvschedHookFn(CPUState *cpu, void *opaque);
typedef void KVMPvschedPostRunFn(CPUState *cpu, bool interrupted,
                                 void *opaque);

typedef struct KVMPvschedHook {
    KVMPvschedPostRunFn *post_run;
    KVMPvschedHookFn *vcpu_start;
    void *opaque;
} KVMPvschedHook;

extern const KVMPvschedHook *kvm_pvsched_hook;

/* Install @hook; fails (returns false) if another hook is installed. */
bool kvm_pvsched_install_hook(const KVMPvschedHook *hook);

/* Remove @hook if it is the one installed. */
void kvm_pvsched_remove_hook(const KVMPvschedHook *hook);

static inline void kvm_pvsched_post_run(CPUState *cpu, bool interrupted)
{
    const KVMPvschedHook *hook = qatomic_load_acquire(&kvm_pvsched_hook);

    if (unlikely(hook)) {
        hook->post_run(cpu, interrupted, hook->opaque);
    }
}

static inline void kvm_pvsched_vcpu_start(CPUState *cpu)
{
    const KVMPvschedHook *hook = qatomic_load_acquire(&kvm_pvsched_hook);

    if (hook) {
        hook->vcpu_start(cpu, hook->opaque);
    }
}

#endif
