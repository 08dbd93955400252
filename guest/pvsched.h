/*
 * The guest side of the pvsched ABI (include/pvsched/abi.h, DESIGN.md
 * section 4): discovery, one area per CPU, and the MSR operations. All
 * MSR calls act on the CPU they run on: the MSR is per vCPU.
 */
#ifndef GUEST_PVSCHED_H
#define GUEST_PVSCHED_H

#include <stdbool.h>
#include <stdint.h>
#include "pvsched/abi.h"
#include "smp.h"

/* Two areas per CPU: the msr scenario re-registers with a second one. */
extern struct pvsched_area pv_area[MAX_CPUS];
extern struct pvsched_area pv_area2[MAX_CPUS];

/* KVM signature at 0x40000000 and PVSCHED_CPUID_FEATURE_BIT. */
bool pvsched_feature(void);

static inline uint64_t pv_gpa(const struct pvsched_area *a)
{
    return (uint64_t)(uintptr_t)a;
}

/* Field accessors: the host writes status behind the compiler's back. */
static inline uint64_t pv_status(const struct pvsched_area *a)
{
    return *(const volatile uint64_t *)&a->boost_status;
}

static inline void pv_set_status(struct pvsched_area *a, uint64_t s)
{
    *(volatile uint64_t *)&a->boost_status = s;
}

static inline uint8_t pv_req(const struct pvsched_area *a)
{
    return *(const volatile uint8_t *)&a->boost_req;
}

static inline void pv_set_req(struct pvsched_area *a, uint8_t req)
{
    *(volatile uint8_t *)&a->boost_req = req;
}

/* Each returns true if the MSR access raised #GP. */
bool pv_write(uint64_t val);
bool pv_read(uint64_t *val);
bool pv_enable(struct pvsched_area *a);   /* wrmsr(gpa | ENABLE) */
bool pv_disable(void);                    /* wrmsr(DISABLE) */
bool pv_doorbell(void);                   /* wrmsr(DOORBELL) */

/* A userspace exit that is not the doorbell: the lazy path's trigger. */
void pv_port_exit(void);

const char *pv_status_name(uint64_t s);   /* "?<n>" for unknown values */
const char *pv_req_name(uint8_t r);

/* "STATE cpu=<i> status=<NAME> req=<NAME>" for cpu's primary area. */
void pv_print_state(unsigned cpu);

#endif
