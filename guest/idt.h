/*
 * Exceptions. #GP raised by rdmsr/wrmsr is expected (the ABI answers bad
 * MSR values with #GP): it is counted per CPU and the instruction skipped.
 * Anything else is a fatal CHECK failure.
 */
#ifndef GUEST_IDT_H
#define GUEST_IDT_H

#include <stdint.h>
#include "smp.h"

struct exc_frame {
    uint32_t edi, esi, ebp, esp_unused, ebx, edx, ecx, eax;  /* pusha */
    uint32_t vector, error;
    uint32_t eip, cs, eflags;                                /* CPU */
};

/* #GP taken on rdmsr/wrmsr, per CPU; only that CPU writes its entry. */
extern volatile uint32_t gp_count[MAX_CPUS];

void idt_init(void);   /* build the table, once, on cpu 0 */
void idt_load(void);   /* lidt, on every CPU */

#endif
