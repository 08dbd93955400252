/* The scenarios of PROTOCOL.md and the helpers they share. */
#ifndef GUEST_SCENARIOS_H
#define GUEST_SCENARIOS_H

#include <stdbool.h>
#include <stdint.h>

/* Runs the named scenario, which ends the VM; returns if name is unknown. */
void scenario_run(const char *name);

void scenario_boost(void);
void scenario_msr(void);
void scenario_nofeature(void);
void scenario_demo(void);
void scenario_spin(void);
void scenario_selftest(void);
void scenario_fault(void);
void scenario_bench_pio(void);
void scenario_bench_doorbell(void);
void scenario_bench_wakeup(void);
void scenario_bench_scale(void);
void scenario_fuzz(void);
void scenario_storm(void);
void scenario_iostorm(void);
void scenario_ring(void);
void scenario_churn(void);
void scenario_migrate(void);

/* ---- shared helpers (scenarios.c) ---- */

enum pv_how {
    HOW_NONE,       /* only set boost_req */
    HOW_ENABLE,     /* register pv_area[cpu] (status preset to a sentinel) */
    HOW_DISABLE,
    HOW_DOORBELL,
    HOW_PORT_EXIT,  /* lazy: outb(0x80) */
};

#define REQ_KEEP 0xff   /* leave boost_req as it is */

/* What one operation on a CPU saw, for cpu 0 to check and print. */
struct pv_op {
    bool gp;            /* the MSR write raised #GP */
    bool rd_gp;         /* the read-back raised #GP */
    uint64_t msr;       /* read-back after the operation */
    uint64_t status;    /* boost_status right after the operation */
};

/* Set boost_req (unless REQ_KEEP) and do `how`, on cpu itself. */
struct pv_op pv_op_on(unsigned cpu, uint8_t req, enum pv_how how);

/* Print "WAIT <tag> cpu=<cpu>" and block until the host sends a byte. */
void wait_point(const char *tag, unsigned cpu);

/* CHECK feature; without it the scenario cannot run: DONE, exit 1. */
void require_feature(void);

/* Register pv_area[i] on every cpu i, with checks. */
void register_all(void);

/* CHECK that op left status `want` with no #GP. */
bool check_op(const char *name, int cpu, const struct pv_op *op,
              uint64_t want);

#endif
