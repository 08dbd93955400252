/*
 * pvsched: HMP "info pvsched"
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-pvsched.h"

/* An emulator thread: "fifo/9", or "deadline 5000/10000 us". */
static void print_emulator(Monitor *mon, const char *what,
                           PvschedEmulatorInfo *t)
{
    PvschedThreadSched *s = t->sched;

    if (s && s->has_runtime_ns) {
        monitor_printf(mon, "%s %" PRId64 ": %s %" PRIu64 "/%" PRIu64
                       " us\n", what, t->thread_id, s->policy,
                       s->runtime_ns / 1000, s->period_ns / 1000);
    } else {
        monitor_printf(mon, "%s %" PRId64 ": %s/%u\n", what, t->thread_id,
                       s ? s->policy : "?", s ? s->priority : 0);
    }
}

static void print_vcpu(Monitor *mon, PvschedVcpuInfo *v)
{
    g_autofree char *sched = v->sched ?
        g_strdup_printf("%s/%u nice %d", v->sched->policy, v->sched->priority,
                        v->sched->nice) : g_strdup("?");

    monitor_printf(mon, "  %3" PRId64 " %8" PRId64 "  %-9s 0x%-10" PRIx64
                   " %-16s %7" PRIu64 " %8" PRIu64 " %9" PRIu64 " %10.3f%s%s\n",
                   v->cpu_index, v->thread_id, PvschedStatus_str(v->status),
                   v->area, sched, v->boosts, v->unboosts, v->throttles,
                   v->boosted_ns / 1e6, v->last_error ? "  error: " : "",
                   v->last_error ?: "");
}

void hmp_info_pvsched(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;
    g_autoptr(PvschedInfo) info = qmp_query_pvsched(&err);
    PvschedPolicyInfo *p;
    PvschedVcpuInfoList *l;
    PvschedEmulatorInfoList *iot;

    if (hmp_handle_error(mon, err)) {
        return;
    }
    if (!info->present) {
        monitor_printf(mon, "pvsched: no pvsched device\n");
        return;
    }
    p = info->policy;
    monitor_printf(mon, "pvsched policy %s: mode %s, %s priority %u, "
                   "max-boost %u us, cooldown %u us, priority ceiling %u, "
                   "emulator-class %s\n",
                   p->id, PvschedMode_str(p->mode),
                   PvschedBoostClass_str(p->boost_class), p->boost_priority,
                   p->max_boost_us, p->cooldown_us, p->priority_ceiling,
                   PvschedEmulatorClass_str(p->emulator_class));
    if (info->emulator) {
        print_emulator(mon, "emulator thread", info->emulator);
    }
    for (iot = info->iothreads; iot; iot = iot->next) {
        print_emulator(mon, "I/O thread", iot->value);
    }
    monitor_printf(mon, "  cpu   thread  status    area         sched     "
                   "        boosts unboosts throttles boosted-ms\n");
    for (l = info->vcpus; l; l = l->next) {
        print_vcpu(mon, l->value);
    }
}
