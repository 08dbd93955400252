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
 * Works on an unmodified kernel: the scheduler hook is the sched_switch
 * tracepoint, found by name because it is not exported to modules, and
 * return probes on the two functions that change a task's priority.
 *
 * The doorbell is an exit to QEMU, tens of microseconds in a nested VM:
 * it is never rung under the runqueue lock, but from an irq_work that
 * the CPU takes as soon as it enables interrupts again.
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
#include <linux/irq_work.h>
#include <linux/kprobes.h>
#include <linux/panic_notifier.h>
#include <linux/reboot.h>
#include <linux/syscore_ops.h>
#include <linux/version.h>
#include <trace/events/sched.h>
#include <asm/msr.h>
#include <asm/processor.h>
#include <asm/cpufeature.h>
#include <asm/pgtable_types.h>

#include <pvsched/abi.h>

static bool keep_idle_boost = true;
module_param(keep_idle_boost, bool, 0644);
MODULE_PARM_DESC(keep_idle_boost,
		 "Stay boosted while idle after an RT task, so the RT task's wakeup is boosted (default: on)");

/* The area the host reads; per-CPU memory, 64-byte aligned by its type. */
static DEFINE_PER_CPU_ALIGNED(struct pvsched_area, pvsched_area);

struct pvsched_cpu {
	bool registered;
	unsigned long boosts;	/* boost_req set to BOOST */
	unsigned long unboosts;	/* boost_req set to UNBOOST */
	unsigned long doorbells;
	unsigned long throttled;	/* BOOSTs asked while THROTTLED */
	unsigned long msr_errors;	/* doorbells that faulted */
};

/*
 * Only touched by its own CPU with interrupts off (the probes run so, or
 * disable them), so plain accesses suffice; debugfs reads it racily.
 */
static DEFINE_PER_CPU(struct pvsched_cpu, pvsched_cpu);

/*
 * Ring the doorbell, if still needed, outside the runqueue lock: the
 * irq_work from this CPU, the call from another one (irq_work_queue_on()
 * is not exported); pvsched_csd_lock serialises the senders of a call,
 * which smp_call_function_single_async() leaves to its callers.
 */
static DEFINE_PER_CPU(struct irq_work, pvsched_work);
static DEFINE_PER_CPU(call_single_data_t, pvsched_csd);
static DEFINE_PER_CPU(raw_spinlock_t, pvsched_csd_lock);

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

/* Whether a boost is wanted while @p runs. */
static bool pvsched_wants_boost(struct task_struct *p)
{
	/* SCHED_FIFO/RR, SCHED_DEADLINE, or PI-boosted to either. */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 11, 0)
	return rt_or_dl_task(p);
#else
	return rt_task(p);
#endif
}

/*
 * Whether the host must hear of @req now: it shows something else, and
 * will listen.  A THROTTLED vCPU is never rung: the host ignores BOOST
 * until the cooldown ends, and then honours the pending one by itself.
 */
static bool pvsched_must_ring(const struct pvsched_area *a, u8 req)
{
	u64 status = READ_ONCE(a->boost_status);

	if (req == PVSCHED_REQ_BOOST)
		return status == PVSCHED_STATUS_NORMAL;
	return req == PVSCHED_REQ_UNBOOST && status == PVSCHED_STATUS_BOOSTED;
}

/* Write @req into this CPU's area; true if the host must hear of it now. */
static bool pvsched_request(struct pvsched_cpu *pc, u8 req)
{
	struct pvsched_area *a = this_cpu_ptr(&pvsched_area);

	if (READ_ONCE(a->boost_req) != req) {
		WRITE_ONCE(a->boost_req, req);
		if (req == PVSCHED_REQ_BOOST) {
			pc->boosts++;
			if (READ_ONCE(a->boost_status) ==
			    PVSCHED_STATUS_THROTTLED)
				pc->throttled++;
		} else {
			pc->unboosts++;
		}
	}
	return pvsched_must_ring(a, req);
}

/* Ring unless the host already shows what the area asks for. */
static void pvsched_ring(struct pvsched_cpu *pc)
{
	struct pvsched_area *a = this_cpu_ptr(&pvsched_area);

	if (pc->registered && pvsched_must_ring(a, READ_ONCE(a->boost_req)))
		pvsched_doorbell(pc);
}

/*
 * Write what this CPU asks for while @p runs; true if the host must hear
 * of it now.  A halted vCPU costs the host nothing, boosted or not;
 * staying boosted in idle after an RT task means that the timer that
 * wakes it is not queued behind host tasks.  The host bounds the boost's
 * CPU time.
 */
static bool pvsched_update(struct pvsched_cpu *pc, struct task_struct *p)
{
	if (pvsched_wants_boost(p))
		return pvsched_request(pc, PVSCHED_REQ_BOOST);
	if (!is_idle_task(p) || !READ_ONCE(keep_idle_boost))
		return pvsched_request(pc, PVSCHED_REQ_UNBOOST);
	return false;
}

/*
 * Hard irq context, on the CPU whose area it is, with no runqueue lock
 * held: re-read what the current task wants (its priority may have
 * changed since the look was asked for) and ring if the host must know.
 */
static void pvsched_look_again(void)
{
	struct pvsched_cpu *pc = this_cpu_ptr(&pvsched_cpu);

	if (!pc->registered)
		return;
	if (pvsched_update(pc, current))
		pvsched_ring(pc);
}

static void pvsched_work_fn(struct irq_work *work)
{
	pvsched_look_again();
}

static void pvsched_csd_fn(void *info)
{
	pvsched_look_again();
}

/* Make @cpu look again, soon, from hard irq context. */
static void pvsched_kick(unsigned int cpu)
{
	raw_spinlock_t *lock = per_cpu_ptr(&pvsched_csd_lock, cpu);
	unsigned long flags;

	if (cpu == get_cpu()) {
		irq_work_queue(this_cpu_ptr(&pvsched_work));
	} else {
		raw_spin_lock_irqsave(lock, flags);
		/* -EBUSY: a look is already on its way. */
		smp_call_function_single_async(cpu,
					       per_cpu_ptr(&pvsched_csd, cpu));
		raw_spin_unlock_irqrestore(lock, flags);
	}
	put_cpu();
}

/*
 * Called with interrupts off and the runqueue locked, on the CPU that
 * switches: the request is written at once, the doorbell waits until
 * the lock is dropped.
 */
static void pvsched_sched_switch(void *data, bool preempt,
				 struct task_struct *prev,
				 struct task_struct *next,
				 unsigned int prev_state)
{
	struct pvsched_cpu *pc = this_cpu_ptr(&pvsched_cpu);

	if (!pc->registered)
		return;
	if (pvsched_update(pc, next))
		irq_work_queue(this_cpu_ptr(&pvsched_work));
}

/* tracepoint, probe */
#define PVSCHED_TRACEPOINTS(X)						\
	X(sched_switch, pvsched_sched_switch)

/*
 * The probes are attached by name, through void *: the compiler checks
 * each against its tracepoint's prototype here instead.
 */
#define PVSCHED_CHECK_PROBE(name, probe) \
	check_trace_callback_type_##name(probe);
static void __maybe_unused pvsched_check_probes(void)
{
	PVSCHED_TRACEPOINTS(PVSCHED_CHECK_PROBE)
}

static struct pvsched_tp {
	const char *name;
	void *probe;
	struct tracepoint *tp;
	bool registered;
} pvsched_tps[] = {
#define PVSCHED_TP(name, probe) { #name, probe },
	PVSCHED_TRACEPOINTS(PVSCHED_TP)
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

/*
 * A task that becomes RT (or stops being RT) while it runs does not
 * switch, so sched_switch never sees it.  Both ways a priority changes,
 * sched_setscheduler() and friends and priority inheritance, end in one
 * of these two functions; their return is the first point at which the
 * new priority is in place and the runqueue lock is free, so the CPU
 * that runs the task is asked to look again.  (The sched_pi_setprio
 * tracepoint fires before the change, under the lock: a remote CPU's
 * irq_work could read the old priority.)
 */
static atomic_long_t pvsched_prio_kicks;

static int pvsched_prio_entry(struct kretprobe_instance *ri,
			      struct pt_regs *regs)
{
	/* Both take the task as their first argument. */
	*(struct task_struct **)ri->data =
		(struct task_struct *)regs_get_kernel_argument(regs, 0);
	return 0;
}

static int pvsched_prio_return(struct kretprobe_instance *ri,
			       struct pt_regs *regs)
{
	struct task_struct *p = *(struct task_struct **)ri->data;
	unsigned int cpu = task_cpu(p);

	/* Not running: it asks for what it wants at its next switch-in. */
	if (!READ_ONCE(p->on_cpu) ||
	    !READ_ONCE(per_cpu_ptr(&pvsched_cpu, cpu)->registered))
		return 0;
	atomic_long_inc(&pvsched_prio_kicks);
	pvsched_kick(cpu);
	return 0;
}

static struct kretprobe pvsched_prio_probes[] = {
	{ .kp.symbol_name = "__sched_setscheduler" },
	{ .kp.symbol_name = "rt_mutex_setprio" },
};
static unsigned int pvsched_prio_hooks;

static void pvsched_register_prio_probes(void)
{
	struct kretprobe *rp;
	int i, err;

	for (i = 0; i < ARRAY_SIZE(pvsched_prio_probes); i++) {
		rp = &pvsched_prio_probes[i];
		rp->entry_handler = pvsched_prio_entry;
		rp->handler = pvsched_prio_return;
		rp->data_size = sizeof(struct task_struct *);
		err = register_kretprobe(rp);
		if (err) {
			pr_warn("cannot probe %s (%d): a running task whose priority changes there is (un)boosted at its next switch\n",
				rp->kp.symbol_name, err);
			rp->kp.addr = NULL;
			continue;
		}
		pvsched_prio_hooks++;
	}
}

static void pvsched_unregister_prio_probes(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(pvsched_prio_probes); i++)
		if (pvsched_prio_probes[i].kp.addr)
			unregister_kretprobe(&pvsched_prio_probes[i]);
}

/*
 * The host writes boost_status into the area until it is disabled: on
 * reboot, kexec, crash and suspend the area must be given back first,
 * or QEMU writes into whatever the next kernel (or the resumed image)
 * keeps there.  As Linux's own KVM paravirt features do
 * (arch/x86/kernel/kvm.c).
 */
static void pvsched_disable_this_cpu(void *unused)
{
	struct pvsched_cpu *pc = this_cpu_ptr(&pvsched_cpu);
	unsigned long flags;

	local_irq_save(flags);
	if (pc->registered) {
		pc->registered = false;
		/* The host unboosts and marks the area DISABLED. */
		wrmsrl_safe(PVSCHED_MSR, PVSCHED_MSR_DISABLE);
	}
	local_irq_restore(flags);
}

/* Reboot, halt, power off, and kexec (kernel_restart_prepare()). */
static int pvsched_reboot(struct notifier_block *nb, unsigned long code,
			  void *unused)
{
	on_each_cpu(pvsched_disable_this_cpu, NULL, 1);
	return NOTIFY_DONE;
}

static struct notifier_block pvsched_reboot_nb = {
	.notifier_call = pvsched_reboot,
};

/*
 * A crash stops the other CPUs with NMIs a module cannot hook; like
 * kvm_crash_shutdown(), give back the panicking CPU's area.  The other
 * areas stay in the crashed kernel's per-CPU memory, which a kdump
 * kernel does not use, and the host bounds their boosts.
 */
static int pvsched_panic(struct notifier_block *nb, unsigned long code,
			 void *unused)
{
	pvsched_disable_this_cpu(NULL);
	return NOTIFY_DONE;
}

static struct notifier_block pvsched_panic_nb = {
	.notifier_call = pvsched_panic,
};

static int pvsched_enable_this_cpu(void);

/*
 * Suspend and hibernation: the other CPUs went through the hotplug
 * callbacks already; these run on the last one, interrupts off.
 */
static int pvsched_suspend(void)
{
	pvsched_disable_this_cpu(NULL);
	return 0;
}

static void pvsched_resume(void)
{
	pvsched_enable_this_cpu();
}

static void pvsched_shutdown(void)
{
	pvsched_disable_this_cpu(NULL);
}

static struct syscore_ops pvsched_syscore_ops = {
	.suspend = pvsched_suspend,
	.resume = pvsched_resume,
	.shutdown = pvsched_shutdown,
};

/* CPUHP_AP_ONLINE_DYN callbacks run on the CPU going on/offline. */
/* Register this CPU's area; interrupts may be on or off. */
static int pvsched_enable_this_cpu(void)
{
	struct pvsched_area *a = this_cpu_ptr(&pvsched_area);
	struct pvsched_cpu *pc = this_cpu_ptr(&pvsched_cpu);
	u64 gpa = slow_virt_to_phys(a);
	unsigned long flags;

	memset(a, 0, sizeof(*a));
	/* #GP, caught: no pvsched device, or the host rejects the area. */
	if (wrmsrl_safe(PVSCHED_MSR, gpa | PVSCHED_MSR_ENABLE)) {
		pr_err("cpu %u: host refused area at %#llx (is -device pvsched missing?)\n",
		       smp_processor_id(), gpa);
		return -EIO;
	}
	local_irq_save(flags);
	pc->registered = true;
	local_irq_restore(flags);
	return 0;
}

static int pvsched_cpu_online(unsigned int cpu)
{
	if (WARN_ON_ONCE(cpu != smp_processor_id()))
		return -EINVAL;
	return pvsched_enable_this_cpu();
}

static int pvsched_cpu_offline(unsigned int cpu)
{
	/* Off first, so that no probe on this CPU uses the area meanwhile. */
	pvsched_disable_this_cpu(NULL);
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
		seq_printf(m, "cpu=%u registered=%d status=%s req=%s boosts=%lu unboosts=%lu doorbells=%lu throttled=%lu msr_errors=%lu\n",
			   cpu, pc->registered,
			   status < ARRAY_SIZE(pvsched_status_names) ?
			   pvsched_status_names[status] : "?",
			   req < ARRAY_SIZE(pvsched_req_names) ?
			   pvsched_req_names[req] : "?",
			   pc->boosts, pc->unboosts, pc->doorbells,
			   pc->throttled, pc->msr_errors);
	}
	seq_printf(m, "feature=1 online=%u registered=%u keep_idle_boost=%d prio_hooks=%u prio_kicks=%lu\n",
		   online, registered, READ_ONCE(keep_idle_boost),
		   pvsched_prio_hooks, atomic_long_read(&pvsched_prio_kicks));
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(pvsched_stats);

static void pvsched_nop(void *unused)
{
}

/* Wait for every look asked for: none may run once the module is gone. */
static void pvsched_sync_work(void)
{
	unsigned int cpu;

	/* Each CPU runs its calls in order: ours too, before this one. */
	on_each_cpu(pvsched_nop, NULL, 1);
	for_each_possible_cpu(cpu)
		irq_work_sync(per_cpu_ptr(&pvsched_work, cpu));
}

static int __init pvsched_init(void)
{
	unsigned int cpu;
	int ret;

	if (!pvsched_host_has_feature()) {
		pr_err("host does not offer pvsched (KVM CPUID 0x40000001 EAX bit %d)\n",
		       PVSCHED_CPUID_FEATURE_BIT);
		return -ENODEV;
	}
	for_each_possible_cpu(cpu) {
		init_irq_work(per_cpu_ptr(&pvsched_work, cpu), pvsched_work_fn);
		INIT_CSD(per_cpu_ptr(&pvsched_csd, cpu), pvsched_csd_fn, NULL);
		raw_spin_lock_init(per_cpu_ptr(&pvsched_csd_lock, cpu));
	}

	/* Before any area exists: none may outlive this kernel. */
	ret = register_reboot_notifier(&pvsched_reboot_nb);
	if (ret)
		return ret;
	atomic_notifier_chain_register(&panic_notifier_list,
				       &pvsched_panic_nb);
	register_syscore_ops(&pvsched_syscore_ops);

	/* Registers every online CPU now, and each CPU that comes later. */
	ret = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "pvsched:online",
				pvsched_cpu_online, pvsched_cpu_offline);
	if (ret < 0)
		goto fail_shutdown_hooks;
	pvsched_hp_state = ret;

	ret = pvsched_register_probes();
	if (ret)
		goto fail_hotplug;
	pvsched_register_prio_probes();

	pvsched_dir = debugfs_create_dir("pvsched", NULL);
	debugfs_create_file("stats", 0444, pvsched_dir, NULL,
			    &pvsched_stats_fops);
	pr_info("registered on %u CPUs, %u of %zu priority hooks\n",
		num_online_cpus(), pvsched_prio_hooks,
		ARRAY_SIZE(pvsched_prio_probes));
	return 0;

fail_hotplug:
	cpuhp_remove_state(pvsched_hp_state);
fail_shutdown_hooks:
	unregister_syscore_ops(&pvsched_syscore_ops);
	atomic_notifier_chain_unregister(&panic_notifier_list,
					 &pvsched_panic_nb);
	unregister_reboot_notifier(&pvsched_reboot_nb);
	pvsched_sync_work();
	return ret;
}

static void __exit pvsched_exit(void)
{
	debugfs_remove_recursive(pvsched_dir);
	pvsched_unregister_prio_probes();
	pvsched_unregister_probes();
	/* Disables the area (wrmsr 0) on every online CPU. */
	cpuhp_remove_state(pvsched_hp_state);
	unregister_syscore_ops(&pvsched_syscore_ops);
	atomic_notifier_chain_unregister(&panic_notifier_list,
					 &pvsched_panic_nb);
	unregister_reboot_notifier(&pvsched_reboot_nb);
	/* No work of ours may run once the module's text is gone. */
	pvsched_sync_work();
	pr_info("unloaded\n");
}

module_init(pvsched_init);
module_exit(pvsched_exit);
MODULE_DESCRIPTION("pvsched guest side: RT tasks boost their vCPU thread on the host");
MODULE_LICENSE("GPL");
