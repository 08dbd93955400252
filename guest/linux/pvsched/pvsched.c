// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pvsched guest module: tell the host which vCPUs run latency-critical work.
 *
 * Guest side of the pvsched ABI v1 (include/pvsched/abi.h in QEMU): one
 * 64-byte area per CPU, registered through MSR 0x4b564da0.  A CPU asks for
 * a boost while it runs a real-time task and gives it back when it runs a
 * normal one.  The host (QEMU, not KVM) only reads the area when the vCPU
 * exits to userspace, so every request that must take effect now is
 * followed by the doorbell, a write of ~0 to the MSR, which is such an exit.
 *
 * Works on an unmodified kernel: the scheduler and irq hooks are the
 * sched_switch, irq and softirq tracepoints, found by name because only
 * some of them are exported to modules.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/cpuhotplug.h>
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/tracepoint.h>
#include <linux/sched.h>
#include <linux/sched/rt.h>
#include <linux/interrupt.h>
#include <asm/msr.h>
#include <asm/processor.h>
#include <asm/cpufeature.h>
#include <asm/pgtable_types.h>

#include <pvsched/abi.h>

static bool irq_hints;
module_param(irq_hints, bool, 0444);
MODULE_PARM_DESC(irq_hints,
		 "Lazy boost hints on hard/soft irq entry, dropped on exit (default: off)");

static bool keep_idle_boost = true;
module_param(keep_idle_boost, bool, 0644);
MODULE_PARM_DESC(keep_idle_boost,
		 "Stay boosted while idle after an RT task, so the RT task's wakeup is boosted (default: on)");

/* The area the host reads; per-CPU memory, 64-byte aligned by its type. */
static DEFINE_PER_CPU_ALIGNED(struct pvsched_area, pvsched_area);

struct pvsched_cpu {
	bool registered;
	bool irq_hint;		/* boost_req BOOST was set by an irq hint */
	unsigned int irq_depth;	/* nesting of hooked irq/softirq handlers */
	unsigned long boosts;	/* boost_req set to BOOST */
	unsigned long unboosts;	/* boost_req set to UNBOOST */
	unsigned long doorbells;
	unsigned long throttled;	/* boost doorbells answered THROTTLED */
	unsigned long msr_errors;	/* doorbells that faulted */
	unsigned long hints;	/* lazy boosts written on irq entry */
	unsigned long hints_seen;	/* ...found BOOSTED by the irq's exit */
};

/*
 * Only touched by its own CPU with interrupts off (the probes run so, or
 * disable them), so plain accesses suffice; debugfs reads it racily.
 */
static DEFINE_PER_CPU(struct pvsched_cpu, pvsched_cpu);

static enum cpuhp_state pvsched_hp_state;
static struct dentry *pvsched_dir;

static bool pvsched_host_has_feature(void)
{
	u32 eax, sig[3];

	/* Without a hypervisor, leaves 0x4000000x mirror the highest leaf. */
	if (!boot_cpu_has(X86_FEATURE_HYPERVISOR))
		return false;
	cpuid(0x40000000, &eax, &sig[0], &sig[1], &sig[2]);
	if (memcmp(sig, "KVMKVMKVM\0\0\0", 12) || eax < PVSCHED_CPUID_LEAF)
		return false;
	return cpuid_eax(PVSCHED_CPUID_LEAF) & BIT(PVSCHED_CPUID_FEATURE_BIT);
}

static void pvsched_doorbell(struct pvsched_cpu *pc)
{
	/* QEMU applies boost_req before this instruction retires. */
	if (wrmsrl_safe(PVSCHED_MSR, PVSCHED_MSR_DOORBELL))
		pc->msr_errors++;
	else
		pc->doorbells++;
}

/*
 * Ask for @req on this CPU.  With @now, ring the doorbell unless the host
 * already shows the wanted state: a lazy request waits for the next exit
 * to userspace, which with the in-kernel irqchip may be far away.
 */
static void pvsched_request(struct pvsched_cpu *pc, u8 req, bool now)
{
	struct pvsched_area *a = this_cpu_ptr(&pvsched_area);
	bool boosted;

	if (READ_ONCE(a->boost_req) != req) {
		WRITE_ONCE(a->boost_req, req);
		if (req == PVSCHED_REQ_BOOST)
			pc->boosts++;
		else
			pc->unboosts++;
	}
	if (!now)
		return;

	boosted = READ_ONCE(a->boost_status) == PVSCHED_STATUS_BOOSTED;
	/*
	 * A THROTTLED vCPU is rung too: the host re-boosts it at the first
	 * doorbell after its cooldown, which the guest cannot see coming.
	 */
	if (boosted == (req == PVSCHED_REQ_BOOST))
		return;
	pvsched_doorbell(pc);
	if (req == PVSCHED_REQ_BOOST &&
	    READ_ONCE(a->boost_status) == PVSCHED_STATUS_THROTTLED)
		pc->throttled++;
}

/* Called with interrupts off, on the CPU that switches. */
static void pvsched_sched_switch(void *data, bool preempt,
				 struct task_struct *prev,
				 struct task_struct *next,
				 unsigned int prev_state)
{
	struct pvsched_cpu *pc = this_cpu_ptr(&pvsched_cpu);

	if (!pc->registered)
		return;
	/* From here on the boost belongs to the task, not to an irq. */
	pc->irq_hint = false;

	/* rt_task(): SCHED_FIFO/RR, SCHED_DEADLINE, or PI-boosted. */
	if (rt_task(next))
		pvsched_request(pc, PVSCHED_REQ_BOOST, true);
	/*
	 * A halted vCPU costs the host nothing, boosted or not; staying
	 * boosted means the timer that wakes the RT task is not queued
	 * behind host tasks.  The host bounds the boost's CPU time.
	 */
	else if (!is_idle_task(next) || !READ_ONCE(keep_idle_boost))
		pvsched_request(pc, PVSCHED_REQ_UNBOOST, true);
}

/*
 * Irq hints, after RFC patch 8/8: a lazy BOOST on entry, never a doorbell
 * (an exit per interrupt would cost more than it saves).  The host sees it
 * only if the handler happens to exit to userspace; hints_seen counts that.
 */
static void pvsched_irq_enter(void)
{
	struct pvsched_cpu *pc = this_cpu_ptr(&pvsched_cpu);
	struct pvsched_area *a = this_cpu_ptr(&pvsched_area);

	if (!pc->registered || pc->irq_depth++)
		return;
	if (READ_ONCE(a->boost_req) == PVSCHED_REQ_BOOST)
		return;		/* a task's boost: not ours to drop */
	WRITE_ONCE(a->boost_req, PVSCHED_REQ_BOOST);
	pc->irq_hint = true;
	pc->hints++;
}

static void pvsched_irq_exit(void)
{
	struct pvsched_cpu *pc = this_cpu_ptr(&pvsched_cpu);
	struct pvsched_area *a = this_cpu_ptr(&pvsched_area);
	bool seen;

	/* Depth 0: the probe was registered in the middle of a handler. */
	if (!pc->registered || !pc->irq_depth || --pc->irq_depth ||
	    !pc->irq_hint)
		return;
	pc->irq_hint = false;
	seen = READ_ONCE(a->boost_status) == PVSCHED_STATUS_BOOSTED;
	if (seen)
		pc->hints_seen++;
	/* The interrupted task is not RT (or it would hold BOOST already). */
	pvsched_request(pc, PVSCHED_REQ_UNBOOST, seen);
}

static void pvsched_hardirq_entry(void *data, int irq, struct irqaction *action)
{
	pvsched_irq_enter();
}

static void pvsched_hardirq_exit(void *data, int irq,
				 struct irqaction *action, int ret)
{
	pvsched_irq_exit();
}

static void pvsched_vector_entry(void *data, int vector)
{
	pvsched_irq_enter();
}

static void pvsched_vector_exit(void *data, int vector)
{
	pvsched_irq_exit();
}

/* Softirqs run with interrupts on: keep the per-CPU state consistent. */
static void pvsched_softirq_entry(void *data, unsigned int vec_nr)
{
	unsigned long flags;

	local_irq_save(flags);
	pvsched_irq_enter();
	local_irq_restore(flags);
}

static void pvsched_softirq_exit(void *data, unsigned int vec_nr)
{
	unsigned long flags;

	local_irq_save(flags);
	pvsched_irq_exit();
	local_irq_restore(flags);
}

static struct pvsched_tp {
	const char *name;
	void *probe;
	bool hint;		/* only with irq_hints=1 */
	struct tracepoint *tp;
	bool registered;
} pvsched_tps[] = {
	{ "sched_switch", pvsched_sched_switch },
	{ "irq_handler_entry", pvsched_hardirq_entry, true },
	{ "irq_handler_exit", pvsched_hardirq_exit, true },
	/* The local APIC timer (hrtimers, the tick) is no irq_handler. */
	{ "local_timer_entry", pvsched_vector_entry, true },
	{ "local_timer_exit", pvsched_vector_exit, true },
	{ "softirq_entry", pvsched_softirq_entry, true },
	{ "softirq_exit", pvsched_softirq_exit, true },
};

static void pvsched_find_tp(struct tracepoint *tp, void *priv)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(pvsched_tps); i++)
		if (!strcmp(tp->name, pvsched_tps[i].name))
			pvsched_tps[i].tp = tp;
}

static void pvsched_unregister_probes(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(pvsched_tps); i++) {
		if (!pvsched_tps[i].registered)
			continue;
		tracepoint_probe_unregister(pvsched_tps[i].tp,
					    pvsched_tps[i].probe, NULL);
		pvsched_tps[i].registered = false;
	}
	/* No probe may still run when the areas are disabled and freed. */
	tracepoint_synchronize_unregister();
}

static int pvsched_register_probes(void)
{
	struct pvsched_tp *t;
	int i, err;

	for_each_kernel_tracepoint(pvsched_find_tp, NULL);
	for (i = 0; i < ARRAY_SIZE(pvsched_tps); i++) {
		t = &pvsched_tps[i];
		if (t->hint && !irq_hints)
			continue;
		if (!t->tp) {
			pr_err("tracepoint %s not found\n", t->name);
			err = -ENOENT;
			goto fail;
		}
		err = tracepoint_probe_register(t->tp, t->probe, NULL);
		if (err) {
			pr_err("cannot attach to tracepoint %s: %d\n",
			       t->name, err);
			goto fail;
		}
		t->registered = true;
	}
	return 0;
fail:
	pvsched_unregister_probes();
	return err;
}

/* CPUHP_AP_ONLINE_DYN callbacks run on the CPU going on/offline. */
static int pvsched_cpu_online(unsigned int cpu)
{
	struct pvsched_area *a = per_cpu_ptr(&pvsched_area, cpu);
	struct pvsched_cpu *pc = per_cpu_ptr(&pvsched_cpu, cpu);
	u64 gpa = slow_virt_to_phys(a);
	int err;

	if (WARN_ON_ONCE(cpu != smp_processor_id()))
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	/* #GP, caught: no pvsched device, or the host rejects the area. */
	err = wrmsrl_safe(PVSCHED_MSR, gpa | PVSCHED_MSR_ENABLE);
	if (err) {
		pr_err("cpu %u: host refused area at %#llx (is -device pvsched missing?)\n",
		       cpu, gpa);
		return -EIO;
	}
	local_irq_disable();
	pc->irq_depth = 0;
	pc->irq_hint = false;
	pc->registered = true;
	local_irq_enable();
	return 0;
}

static int pvsched_cpu_offline(unsigned int cpu)
{
	struct pvsched_cpu *pc = per_cpu_ptr(&pvsched_cpu, cpu);

	/* Off first, so that no probe on this CPU uses the area meanwhile. */
	local_irq_disable();
	pc->registered = false;
	/* The host unboosts and marks the area DISABLED. */
	wrmsrl_safe(PVSCHED_MSR, PVSCHED_MSR_DISABLE);
	local_irq_enable();
	return 0;
}

static const char *const pvsched_status_names[] = {
	[PVSCHED_STATUS_DISABLED] = "DISABLED",
	[PVSCHED_STATUS_NORMAL] = "NORMAL",
	[PVSCHED_STATUS_BOOSTED] = "BOOSTED",
	[PVSCHED_STATUS_THROTTLED] = "THROTTLED",
};

static const char *const pvsched_req_names[] = {
	[PVSCHED_REQ_NONE] = "NONE",
	[PVSCHED_REQ_UNBOOST] = "UNBOOST",
	[PVSCHED_REQ_BOOST] = "BOOST",
};

static int pvsched_stats_show(struct seq_file *m, void *v)
{
	unsigned int cpu, online = 0, registered = 0;

	for_each_possible_cpu(cpu) {
		struct pvsched_area *a = per_cpu_ptr(&pvsched_area, cpu);
		struct pvsched_cpu *pc = per_cpu_ptr(&pvsched_cpu, cpu);
		u64 status = READ_ONCE(a->boost_status);
		u8 req = READ_ONCE(a->boost_req);

		if (!cpu_online(cpu) && !pc->registered)
			continue;
		online += cpu_online(cpu);
		registered += pc->registered;
		seq_printf(m, "cpu=%u registered=%d status=%s req=%s boosts=%lu unboosts=%lu doorbells=%lu throttled=%lu msr_errors=%lu hints=%lu hints_seen=%lu\n",
			   cpu, pc->registered,
			   status < ARRAY_SIZE(pvsched_status_names) ?
			   pvsched_status_names[status] : "?",
			   req < ARRAY_SIZE(pvsched_req_names) ?
			   pvsched_req_names[req] : "?",
			   pc->boosts, pc->unboosts, pc->doorbells,
			   pc->throttled, pc->msr_errors, pc->hints,
			   pc->hints_seen);
	}
	seq_printf(m, "feature=1 online=%u registered=%u irq_hints=%d keep_idle_boost=%d\n",
		   online, registered, irq_hints, READ_ONCE(keep_idle_boost));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(pvsched_stats);

static int __init pvsched_init(void)
{
	int ret;

	if (!pvsched_host_has_feature()) {
		pr_err("host does not offer pvsched (KVM CPUID 0x40000001 EAX bit %d)\n",
		       PVSCHED_CPUID_FEATURE_BIT);
		return -ENODEV;
	}

	/* Registers every online CPU now, and each CPU that comes later. */
	ret = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "pvsched:online",
				pvsched_cpu_online, pvsched_cpu_offline);
	if (ret < 0)
		return ret;
	pvsched_hp_state = ret;

	ret = pvsched_register_probes();
	if (ret) {
		cpuhp_remove_state(pvsched_hp_state);
		return ret;
	}

	pvsched_dir = debugfs_create_dir("pvsched", NULL);
	debugfs_create_file("stats", 0444, pvsched_dir, NULL,
			    &pvsched_stats_fops);
	pr_info("registered on %u CPUs, irq_hints=%d\n", num_online_cpus(),
		irq_hints);
	return 0;
}

static void __exit pvsched_exit(void)
{
	debugfs_remove_recursive(pvsched_dir);
	pvsched_unregister_probes();
	/* Disables the area (wrmsr 0) on every online CPU. */
	cpuhp_remove_state(pvsched_hp_state);
	pr_info("unloaded\n");
}

module_init(pvsched_init);
module_exit(pvsched_exit);
MODULE_DESCRIPTION("pvsched guest side: RT tasks boost their vCPU thread on the host");
MODULE_LICENSE("GPL");
