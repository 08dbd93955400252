/*
 * Self-tests of the guest's own machinery, runnable on any KVM (no
 * pvsched needed): selftest checks #GP counting, run_on and the serial
 * WAIT; fault checks that an unexpected exception on an AP ends the run.
 */
#include "scenarios.h"
#include "check.h"
#include "idt.h"
#include "io.h"
#include "msr.h"
#include "print.h"
#include "pvsched.h"
#include "smp.h"
#include "tsc.h"

#define MSR_TSC 0x10

struct self_result {
    unsigned cpu;
    uint32_t gp_delta;
    bool bad_gp, tsc_gp;
    uint64_t tsc;
};

/* Bit 0 clear and non-zero: #GP with or without the pvsched device. */
static void self_local(void *p)
{
    struct self_result *r = p;
    uint32_t gp0 = gp_count[this_cpu()];

    r->cpu = this_cpu();
    r->bad_gp = wrmsr_safe(PVSCHED_MSR, 0x2);
    r->tsc_gp = rdmsr_safe(MSR_TSC, &r->tsc);
    r->gp_delta = gp_count[this_cpu()] - gp0;
}

void scenario_selftest(void)
{
    struct self_result r;
    uint64_t t0;
    uint32_t us;
    unsigned cpu;

    for (cpu = 0; cpu < ncpus; cpu++) {
        run_on(cpu, self_local, &r);
        check("run-on", cpu, r.cpu == cpu, "ran on cpu %u", r.cpu);
        check("gp-counted", cpu, r.bad_gp && !r.tsc_gp && r.gp_delta == 1,
              "bad_gp=%d tsc_gp=%d delta=%u", r.bad_gp, r.tsc_gp,
              r.gp_delta);
        kprintf("INFO cpu=%u gp_count=%u\n", cpu, gp_count[cpu]);
    }
    t0 = rdtsc();
    udelay(10000);
    us = tsc_to_us(rdtsc() - t0);
    /* Upper bound loose: an overcommitted host may preempt the vCPU. */
    check("udelay", NO_CPU, us >= 10000 && us < 1000000, "us=%u", us);
    wait_point("selftest", 0);
    check("wait-returned", NO_CPU, true, "-");
    done();
}

static void fault_local(void *unused)
{
    asm volatile("ud2");
    (void)unused;
}

void scenario_fault(void)
{
    run_on(ncpus - 1, fault_local, 0);
    check("fault-returned", NO_CPU, false, "ud2 did not end the run");
    done();
}
