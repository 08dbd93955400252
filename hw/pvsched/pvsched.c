/*
 * pvsched: guest-assisted vCPU scheduling (-device pvsched)
 *
 * A bus-less device that routes the pvsched MSR to QEMU through the KVM
 * MSR filter and installs the run-loop hook.  The guest's requests flow
 * guest area -> run-loop hook -> state machine -> scheduling backend ->
 * the vCPU's own thread; see docs/system/pvsched.rst.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/error-report.h"
#include "qemu/module.h"
#include "hw/boards.h"
#include "hw/core/cpu.h"
#include "hw/qdev-properties.h"
#include "qemu/cutils.h"
#include "qemu/main-loop.h"
#include "system/kvm.h"
#include "system/qtest.h"
#include "system/reset.h"
#include "system/runstate.h"
#include "target/i386/cpu.h"
#include "target/i386/kvm/kvm_i386.h"
#include "pvsched/kvm-hook.h"
#include "pvsched/pvsched.h"
#include "trace.h"

#define TYPE_PVSCHED "pvsched"
OBJECT_DECLARE_SIMPLE_TYPE(PvschedState, PVSCHED)

struct PvschedState {
    DeviceState parent_obj;

    PvschedPolicy *policy;
    unsigned nr_vcpus;
    PvschedVcpu *vcpus;         /* indexed by cpu_index */
    KVMPvschedHook hook;
    Notifier policy_changed;
};

/* MSR handlers get no opaque pointer; realize allows one device. */
static PvschedState *pvsched_state;

static PvschedVcpu *vcpu_of(CPUState *cs)
{
    return &pvsched_state->vcpus[cs->cpu_index];
}

PvschedPolicy *pvsched_device_policy(void)
{
    return pvsched_state ? pvsched_state->policy : NULL;
}

PvschedVcpu *pvsched_device_vcpu(int cpu_index)
{
    assert(pvsched_state && cpu_index < pvsched_state->nr_vcpus);
    return &pvsched_state->vcpus[cpu_index];
}

/*
 * The MSR's value lives in the CPU, and only there: it is the vCPU's
 * architectural state, which the guest reads back, which migrates with
 * the vCPU (vmstate_x86_cpu's cpu/pvsched_msr subsection, sent only when
 * it is not 0) and which reset clears.  What the device keeps per vCPU
 * (the area mapped from it, the state machine, the thread's attributes)
 * is derived from it, and only the MSR handler, reset and post_load
 * below change the two together.  The vCPU thread writes it, QMP reads
 * it: qatomic.
 */
static uint64_t *msr_of(CPUState *cs)
{
    return &X86_CPU(cs)->env.pvsched_msr;
}

uint64_t pvsched_device_msr(CPUState *cs)
{
    return qatomic_read(msr_of(cs));
}

static bool pvsched_rdmsr(X86CPU *cpu, uint32_t msr, uint64_t *val)
{
    *val = pvsched_device_msr(CPU(cpu));
    return true;
}

static bool pvsched_wrmsr(X86CPU *cpu, uint32_t msr, uint64_t val)
{
    return pvsched_vcpu_msr_write(vcpu_of(CPU(cpu)), msr_of(CPU(cpu)), val);
}

static void pvsched_post_run(CPUState *cs, bool interrupted, void *opaque)
{
    PvschedState *s = opaque;

    pvsched_vcpu_sync(&s->vcpus[cs->cpu_index], interrupted);
}

/* On the vCPU's thread: follow the policy, registered or not. */
static void pvsched_apply_on_vcpu(CPUState *cs, run_on_cpu_data data)
{
    pvsched_vcpu_apply(vcpu_of(cs));
}

/* A vCPU thread starts after realize: one that is hotplugged. */
static void pvsched_vcpu_start(CPUState *cs, void *opaque)
{
    pvsched_apply_on_vcpu(cs, RUN_ON_CPU_NULL);
}

/*
 * When pvsched-set-policy returns, every vCPU thread has applied the new
 * policy to itself: run_on_cpu() kicks a vCPU out of the guest, even one
 * spinning without exits, and waits for it.
 */
static void pvsched_policy_changed(Notifier *n, void *data)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        pvsched_vcpu_forget_own(vcpu_of(cs));
        run_on_cpu(cs, pvsched_apply_on_vcpu, RUN_ON_CPU_NULL);
    }
}

/*
 * libvirt sets vcpusched with the vCPUs paused, at start and at hot-plug,
 * and an administrator's chrt is safest there too: each resume has every
 * vCPU read its thread's own attributes again at its next boost.
 */
static void pvsched_vm_state_change(void *opaque, bool running,
                                    RunState state)
{
    PvschedState *s = opaque;
    unsigned i;

    if (running) {
        for (i = 0; i < s->nr_vcpus; i++) {
            pvsched_vcpu_forget_own(&s->vcpus[i]);
        }
    }
}

static bool pvsched_cpus_advertise(Error **errp)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        CPUX86State *env = &X86_CPU(cs)->env;

        if (!(env->features[FEAT_KVM] & (1U << PVSCHED_CPUID_FEATURE_BIT))) {
            error_setg(errp, "pvsched: vCPU %d does not advertise pvsched "
                       "to the guest", cs->cpu_index);
            error_append_hint(errp, "Add kvm-pvsched=on to -cpu, e.g. "
                              "-cpu qemu64,kvm-pvsched=on\n");
            return false;
        }
    }
    return true;
}

/*
 * Under the qtest accelerator, which runs no guest code, "pvsched
 * wrmsr|rdmsr|exit CPU VALUE" drives the MSR handler and the run-loop
 * hook on that vCPU's own thread, as KVM exits would.
 */
typedef struct PvschedQtestOp {
    const char *op;
    uint64_t val;
} PvschedQtestOp;

static void pvsched_qtest_on_vcpu(CPUState *cs, run_on_cpu_data data)
{
    PvschedQtestOp *q = data.host_ptr;
    PvschedVcpu *v = vcpu_of(cs);

    /*
     * As kvm_cpu_exec(): without the BQL, and the hook first, at every
     * return from the guest.
     */
    bql_unlock();
    pvsched_vcpu_sync(v, false);
    if (!strcmp(q->op, "wrmsr")) {
        q->val = pvsched_vcpu_msr_write(v, msr_of(cs), q->val);
    } else if (!strcmp(q->op, "rdmsr")) {
        q->val = pvsched_device_msr(cs);
    } else {
        q->val = 0;
    }
    bql_lock();
}

static bool pvsched_qtest_command(CharBackend *chr, gchar **words)
{
    PvschedQtestOp q = { };
    CPUState *cs;
    int64_t cpu;

    if (strcmp(words[0], "pvsched")) {
        return false;
    }
    g_assert(words[1] && words[2] && words[3]);
    g_assert(!qemu_strtoi64(words[2], NULL, 0, &cpu));
    g_assert(!qemu_strtou64(words[3], NULL, 0, &q.val));
    g_assert(!strcmp(words[1], "wrmsr") || !strcmp(words[1], "rdmsr") ||
             !strcmp(words[1], "exit"));
    q.op = words[1];
    cs = qemu_get_cpu(cpu);
    g_assert(cs);
    run_on_cpu(cs, pvsched_qtest_on_vcpu, RUN_ON_CPU_HOST_PTR(&q));
    qtest_sendf(chr, "OK 0x%" PRIx64 "\n", q.val);
    return true;
}

static bool pvsched_check(PvschedState *s, Error **errp)
{
    if (pvsched_state) {
        error_setg(errp, "pvsched: at most one pvsched device is permitted");
        return false;
    }
    if (!s->policy) {
        error_setg(errp, "pvsched: the 'policy' property is not set");
        error_append_hint(errp, "Add -object pvsched-policy,id=pol0 and "
                          "-device pvsched,policy=pol0\n");
        return false;
    }
    if (qtest_enabled()) {
        return true;
    }
    if (!kvm_enabled()) {
        error_setg(errp, "pvsched: needs the KVM accelerator");
        error_append_hint(errp, "Add -accel kvm\n");
        return false;
    }
    return pvsched_cpus_advertise(errp);
}

/*
 * Under KVM: the run-loop hook, then the MSR filter, which cannot be
 * removed and so comes last; the hook is removed if the filter fails.
 * Before any vCPU runs guest code: machine creation is not done.
 */
static bool pvsched_install_kvm(PvschedState *s, Error **errp)
{
    int ret;

    s->hook = (KVMPvschedHook) { .post_run = pvsched_post_run,
                                 .vcpu_start = pvsched_vcpu_start,
                                 .opaque = s };
    if (!kvm_pvsched_install_hook(&s->hook)) {
        error_setg(errp, "pvsched: the KVM run-loop hook is already taken");
        return false;
    }
    ret = kvm_filter_msr(kvm_state, PVSCHED_MSR, pvsched_rdmsr,
                         pvsched_wrmsr);
    if (ret < 0) {
        kvm_pvsched_remove_hook(&s->hook);
        error_setg_errno(errp, -ret, "pvsched: cannot route MSR 0x%x to QEMU",
                         PVSCHED_MSR);
        error_append_hint(errp, "The host kernel must support "
                          "KVM_CAP_X86_USER_SPACE_MSR and MSR filters.\n");
        return false;
    }
    return true;
}

static void pvsched_realize(DeviceState *dev, Error **errp)
{
    PvschedState *s = PVSCHED(dev);
    MachineState *ms = MACHINE(qdev_get_machine());
    CPUState *cs;
    int i;

    /*
     * Every step that can fail comes first: a failed realize leaves no
     * global, hook or filter behind.  The hook and the MSR handlers use
     * the state set up below only once vCPUs run guest code, which they
     * cannot do before realize returns (we hold the BQL).
     */
    if (!pvsched_check(s, errp) ||
        (kvm_enabled() && !pvsched_install_kvm(s, errp))) {
        return;
    }

    /* Room for every vCPU the machine may ever have, hotplugged ones too. */
    s->nr_vcpus = ms->smp.max_cpus;
    s->vcpus = g_new(PvschedVcpu, s->nr_vcpus);
    for (i = 0; i < s->nr_vcpus; i++) {
        pvsched_vcpu_init(&s->vcpus[i], i, s->policy);
    }
    pvsched_state = s;
    if (qtest_enabled()) {
        qtest_set_command_cb(pvsched_qtest_command);
    }
    s->policy_changed.notify = pvsched_policy_changed;
    pvsched_policy_add_change_notifier(s->policy, &s->policy_changed);
    qemu_add_vm_change_state_handler(pvsched_vm_state_change, s);
    /*
     * The vCPU threads exist already: they take the policy (static mode
     * boosts them) before they first enter the guest.
     */
    CPU_FOREACH(cs) {
        async_run_on_cpu(cs, pvsched_apply_on_vcpu, RUN_ON_CPU_NULL);
    }
    /* Bus-less: nobody resets us unless we ask. */
    qemu_register_resettable(OBJECT(s));
}

/* On the vCPU's thread: the one thing reset leaves to it. */
static void pvsched_settle_vcpu(CPUState *cs, run_on_cpu_data data)
{
    pvsched_vcpu_settle(vcpu_of(cs));
}

/*
 * The vCPUs are stopped: each registration ends here, at once (the MSR,
 * the area, the status), so that nothing that follows (the vCPUs running
 * again, loadvm or an incoming migration loading their state) can meet
 * it.  Each vCPU thread changes only its own attributes: the unboost is
 * queued on it.  It runs before the vCPU next enters the guest and reads
 * the state as it then is: a registration loaded meanwhile stays.
 */
static void pvsched_reset_hold(Object *obj, ResetType type)
{
    CPUState *cs;

    CPU_FOREACH(cs) {
        PvschedVcpu *v = vcpu_of(cs);

        qatomic_set(msr_of(cs), 0);
        pvsched_vcpu_reset(v);
        if (pvsched_vcpu_unsettled(v)) {
            async_run_on_cpu(cs, pvsched_settle_vcpu, RUN_ON_CPU_NULL);
        }
    }
}

/*
 * Migration carries each vCPU's registration in its CPU state (the area
 * itself is guest RAM); boosts are not carried: the destination's threads
 * boost at their first exit if the guest still asks.  Called once that
 * state is loaded, before the guest runs again.
 */
int pvsched_cpu_post_load(CPUState *cs)
{
    uint64_t val = pvsched_device_msr(cs);
    uint64_t gpa = val & ~PVSCHED_MSR_ENABLE;
    Error *err = NULL;
    const char *why;
    clockid_t clock;
    int ret;

    if (!pvsched_state) {
        error_setg(&err, "pvsched: vCPU %d has a pvsched area registered "
                   "(at 0x%" PRIx64 "), but this QEMU has no pvsched device",
                   cs->cpu_index, gpa);
        error_append_hint(&err, "Start it with the pvsched-policy object "
                          "and the -device pvsched of the source.\n");
        error_report_err(err);
        return -EINVAL;
    }
    ret = pthread_getcpuclockid(cs->thread->thread, &clock);
    if (ret) {
        error_report("pvsched: vCPU %d: its thread's CPU clock: %s",
                     cs->cpu_index, strerror(ret));
        return -EINVAL;
    }
    if (!pvsched_vcpu_restore(vcpu_of(cs), val, clock, &why)) {
        error_setg(&err, "pvsched: vCPU %d's area at 0x%" PRIx64 " cannot "
                   "be registered here: %s", cs->cpu_index, gpa, why);
        error_append_hint(&err, "The guest registered it on the source: "
                          "give this machine the source's memory layout "
                          "(-m, -machine, memory devices).\n");
        error_report_err(err);
        return -EINVAL;
    }
    /*
     * Reset queued the unboost already where one is owed; one more finds
     * nothing left to do, and covers a load that no reset came before.
     */
    if (pvsched_vcpu_unsettled(vcpu_of(cs))) {
        async_run_on_cpu(cs, pvsched_settle_vcpu, RUN_ON_CPU_NULL);
    }
    return 0;
}

static const Property pvsched_properties[] = {
    DEFINE_PROP_LINK("policy", PvschedState, policy, TYPE_PVSCHED_POLICY,
                     PvschedPolicy *),
};

static void pvsched_class_init(ObjectClass *oc, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(oc);
    ResettableClass *rc = RESETTABLE_CLASS(oc);

    dc->realize = pvsched_realize;
    /* No state of its own: the vCPUs carry theirs (cpu/pvsched_msr). */
    dc->hotpluggable = false;
    dc->desc = "guest-assisted vCPU scheduling";
    device_class_set_props(dc, pvsched_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    rc->phases.hold = pvsched_reset_hold;
}

static const TypeInfo pvsched_types[] = {
    {
        .name = TYPE_PVSCHED,
        .parent = TYPE_DEVICE,
        .instance_size = sizeof(PvschedState),
        .class_init = pvsched_class_init,
    },
};

DEFINE_TYPES(pvsched_types)
