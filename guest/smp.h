/*
 * CPUs: cpu 0 is the BSP and drives everything; APs wait on a mailbox.
 * cpu index i is the i-th enabled processor in the ACPI MADT with the BSP
 * first, which with QEMU's default topology is APIC ID i, i.e. vCPU i.
 */
#ifndef GUEST_SMP_H
#define GUEST_SMP_H

#include <stdint.h>
#include "gdt.h"

#define MAX_CPUS    8
#define STACK_SIZE  STACK_SIZE_ASM   /* gdt.h: shared with boot.S */

/* One stack per CPU; also how a CPU finds its own index (see this_cpu). */
extern uint8_t cpu_stacks[MAX_CPUS][STACK_SIZE];

extern unsigned ncpus;

/*
 * The running CPU's index, from which stack it is on: no MSR, no MMIO,
 * so no VM exit, and it works inside exception handlers.
 */
static inline unsigned this_cpu(void)
{
    uintptr_t sp;
    uintptr_t base = (uintptr_t)cpu_stacks;

    asm volatile("mov %%esp, %0" : "=r"(sp));
    if (sp < base || sp >= base + sizeof(cpu_stacks)) {
        return 0;
    }
    return (sp - base) / STACK_SIZE;
}

/* Find and start every AP listed in the MADT. Needs tsc_init(). */
void smp_init(void);

/*
 * Run fn(arg) on cpu and wait until it returns (bounded: a stuck AP is a
 * fatal CHECK failure). On the calling CPU itself it is a direct call.
 */
void run_on(unsigned cpu, void (*fn)(void *), void *arg);

/*
 * For work on several CPUs at the same time: post fn(arg) to AP cpu and
 * return at once; run_wait() waits (up to timeout_ms, else a fatal CHECK
 * failure) until it has returned. One call in flight per AP.
 */
void run_on_async(unsigned cpu, void (*fn)(void *), void *arg);
void run_wait(unsigned cpu, uint32_t timeout_ms);

#endif
