/*
 * ring: every CPU rings the doorbell in a loop, BOOST then UNBOOST
 * (PROTOCOL.md), while the host changes the policy under it.
 *
 * Runs for loops=N rounds per CPU, or (loops=0, the default) until the
 * host sends a byte on the serial port, which cpu 0 polls every 64
 * rounds.  Each CPU then leaves BOOST requested (one last doorbell), so
 * that the host can compare every vCPU thread with the policy in force,
 * and cpu 0 stops at WAIT rung.
 */
#include <stddef.h>
#include "scenarios.h"
#include "check.h"
#include "cmdline.h"
#include "io.h"
#include "print.h"
#include "pvsched.h"
#include "smp.h"
#include "tsc.h"

#define COM1_DATA       0x3f8
#define COM1_LSR        0x3fd
#define LSR_DR          0x01
/* After the stop, how long cpu 0 waits for the others to notice. */
#define RING_STOP_MS    10000u

struct ring_count {
    uint32_t rounds;
    uint32_t gp;            /* doorbells that raised #GP */
    uint32_t seen[5];       /* status after each doorbell; [4]: invalid */
} __attribute__((aligned(64)));

static struct ring_count ring[MAX_CPUS];
static volatile uint32_t ring_stop;
static uint32_t ring_loops;

static void ring_bell(struct ring_count *c, struct pvsched_area *a,
                      uint8_t req)
{
    uint64_t st;

    pv_set_req(a, req);
    c->gp += pv_doorbell();
    st = pv_status(a);
    c->seen[st < 4 ? st : 4]++;
}

static void ring_one(void *unused)
{
    unsigned cpu = this_cpu();
    struct ring_count *c = &ring[cpu];
    struct pvsched_area *a = &pv_area[cpu];

    while (!ring_stop && (!ring_loops || c->rounds < ring_loops)) {
        ring_bell(c, a, PVSCHED_REQ_BOOST);
        ring_bell(c, a, PVSCHED_REQ_UNBOOST);
        c->rounds++;
        if (cpu == 0 && !(c->rounds & 63) && (inb(COM1_LSR) & LSR_DR)) {
            (void)inb(COM1_DATA);
            ring_stop = 1;
        }
    }
    ring_bell(c, a, PVSCHED_REQ_BOOST);
}

void scenario_ring(void)
{
    unsigned cpu;

    ring_loops = cmdline_u32("loops", 0);
    require_feature();
    register_all();
    kprintf("INFO ring start cpus=%u loops=%u\n", ncpus, ring_loops);
    for (cpu = 1; cpu < ncpus; cpu++) {
        run_on_async(cpu, ring_one, NULL);
    }
    ring_one(NULL);
    /* With loops=N, cpu 0 may be done first: stop the others too. */
    ring_stop = 1;
    for (cpu = 1; cpu < ncpus; cpu++) {
        run_wait(cpu, RING_STOP_MS);
    }
    for (cpu = 0; cpu < ncpus; cpu++) {
        struct ring_count *c = &ring[cpu];

        kprintf("INFO ring cpu=%u rounds=%u boosted=%u throttled=%u "
                "normal=%u disabled=%u invalid=%u\n", cpu, c->rounds,
                c->seen[PVSCHED_STATUS_BOOSTED],
                c->seen[PVSCHED_STATUS_THROTTLED],
                c->seen[PVSCHED_STATUS_NORMAL],
                c->seen[PVSCHED_STATUS_DISABLED], c->seen[4]);
        check("ring-no-gp", cpu, c->gp == 0, "gp=%u", c->gp);
        check("ring-status", cpu,
              !c->seen[PVSCHED_STATUS_DISABLED] && !c->seen[4],
              "disabled=%u invalid=%u", c->seen[PVSCHED_STATUS_DISABLED],
              c->seen[4]);
        pv_print_state(cpu);
    }
    wait_point("rung", 0);
    for (cpu = 0; cpu < ncpus; cpu++) {
        struct pv_op op = pv_op_on(cpu, PVSCHED_REQ_UNBOOST, HOW_DISABLE);

        check_op("disable", cpu, &op, PVSCHED_STATUS_DISABLED);
    }
    done();
}
