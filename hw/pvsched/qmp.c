/*
 * pvsched: QMP commands
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-pvsched.h"
#include "qom/object_interfaces.h"
#include "hw/core/cpu.h"
#include "pvsched/emulator.h"
#include "pvsched/pvsched.h"


/* The thread's attributes as the kernel has them, not as we think. */
static PvschedThreadSched *thread_sched(int tid)
{
    PvschedSchedAttr attr;
    PvschedThreadSched *info;

    if (pvsched_sched_get_thread(tid, &attr) < 0) {
        return NULL;
    }
    info = g_new0(PvschedThreadSched, 1);
    info->policy = g_strdup(pvsched_policy_name(attr.policy));
    info->priority = attr.priority;
    info->nice = attr.nice;
    info->reset_on_fork = attr.flags & PVSCHED_FLAG_RESET_ON_FORK;
    if (attr.policy == PVSCHED_SCHED_DEADLINE) {
        info->has_runtime_ns = info->has_deadline_ns = true;
        info->has_period_ns = true;
        info->runtime_ns = attr.runtime;
        info->deadline_ns = attr.deadline;
        info->period_ns = attr.period;
    }
    return info;
}

/*
 * The vCPU thread updates its state without the BQL: each field is read
 * once; a reply may mix two consecutive states, never a torn value.
 */
static PvschedVcpuInfo *vcpu_info(CPUState *cs, PvschedVcpu *v)
{
    PvschedVcpuInfo *info = g_new0(PvschedVcpuInfo, 1);
    uint64_t msr_val = pvsched_device_msr(cs);
    int err = qatomic_read(&v->st.last_error);

    info->cpu_index = cs->cpu_index;
    info->thread_id = cs->thread_id;
    info->registered = msr_val != 0;
    info->has_area = info->registered;
    info->area = msr_val & ~PVSCHED_MSR_ENABLE;
    info->status = qatomic_read(&v->st.status);
    info->sched = thread_sched(cs->thread_id);
    info->boosts = qatomic_read(&v->st.boosts);
    info->unboosts = qatomic_read(&v->st.unboosts);
    info->throttles = qatomic_read(&v->st.throttles);
    info->boosted_ns = qatomic_read(&v->st.boosted_cpu_ns);
    if (err) {
        info->last_error = g_strdup(strerror(-err));
    }
    return info;
}

static PvschedEmulatorInfo *emulator_info(int tid)
{
    PvschedEmulatorInfo *info = g_new0(PvschedEmulatorInfo, 1);

    info->thread_id = tid;
    info->sched = thread_sched(tid);
    return info;
}

PvschedInfo *qmp_query_pvsched(Error **errp)
{
    PvschedInfo *info = g_new0(PvschedInfo, 1);
    PvschedPolicy *pol = pvsched_device_policy();
    PvschedVcpuInfoList **tail = &info->vcpus;
    PvschedEmulatorInfoList **iot_tail = &info->iothreads;
    g_autoptr(GArray) tids = NULL;
    CPUState *cs;
    int i;

    if (!pol) {
        return info;
    }
    info->present = true;
    info->policy = pvsched_policy_info(pol);
    info->emulator = emulator_info(pvsched_emulator_thread_id());
    tids = pvsched_iothread_ids();
    for (i = 0; i < tids->len; i++) {
        QAPI_LIST_APPEND(iot_tail,
                         emulator_info(g_array_index(tids, int, i)));
    }
    info->has_iothreads = true;
    CPU_FOREACH(cs) {
        QAPI_LIST_APPEND(tail,
                         vcpu_info(cs, pvsched_device_vcpu(cs->cpu_index)));
    }
    return info;
}

void qmp_pvsched_set_policy(PvschedPolicyChange *change, Error **errp)
{
    Object *obj = object_resolve_path_component(object_get_objects_root(),
                                                change->id);
    PvschedPolicy *pol = (PvschedPolicy *)object_dynamic_cast(obj,
                                                    TYPE_PVSCHED_POLICY);

    if (!pol) {
        error_setg(errp, "there is no pvsched-policy object with id '%s'",
                   change->id);
        return;
    }
    pvsched_policy_update(pol, change, errp);
}
