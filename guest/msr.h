/*
 * MSR access that survives #GP: the exception handler (idt.c) counts the
 * fault in gp_count[this cpu] and skips the 2-byte rdmsr/wrmsr, so a
 * changed count tells that the instruction faulted.
 */
#ifndef GUEST_MSR_H
#define GUEST_MSR_H

#include <stdbool.h>
#include <stdint.h>
#include "idt.h"

/* Returns true if the write raised #GP. */
static inline bool wrmsr_safe(uint32_t msr, uint64_t val)
{
    uint32_t before = gp_count[this_cpu()];

    asm volatile("wrmsr" : : "c"(msr), "a"((uint32_t)val),
                 "d"((uint32_t)(val >> 32)) : "memory");
    return gp_count[this_cpu()] != before;
}

/* Returns true if the read raised #GP; *val is then 0. */
static inline bool rdmsr_safe(uint32_t msr, uint64_t *val)
{
    uint32_t before = gp_count[this_cpu()];
    uint32_t lo = 0, hi = 0;

    /* EAX/EDX are inputs too: on #GP they keep the zeroes. */
    asm volatile("rdmsr" : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
    *val = ((uint64_t)hi << 32) | lo;
    return gp_count[this_cpu()] != before;
}

#endif
