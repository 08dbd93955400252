/*
 * storm: a rogue guest on every CPU at once (PROTOCOL.md).
 *
 * Every CPU asks for BOOST and spins on the TSC without any exit; every
 * io_us microseconds it rings the doorbell with BOOST still requested
 * (db=1, the default) or makes a plain port exit (db=0), so that the host
 * sees a fresh request as soon as a cooldown ends.  Only the host's bound
 * keeps such a guest from taking a host CPU.  With io_us=0 there is no
 * exit at all after the first doorbell.
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

/* How long cpu 0 waits for the others beyond the storm itself. */
#define STORM_SLACK_MS  10000u

struct storm_count {
    uint32_t rings;         /* doorbells rung (the first one included) */
    uint32_t gp;            /* doorbells that raised #GP */
    uint32_t seen[5];       /* status after each doorbell; [4]: invalid */
    uint64_t last;          /* status at the end of the spin */
} __attribute__((aligned(64)));

static struct storm_count storm[MAX_CPUS];
static volatile uint64_t storm_end;
static uint64_t storm_every;
static bool storm_db;

static void storm_ring(struct storm_count *c, struct pvsched_area *a)
{
    uint64_t st;

    c->gp += pv_doorbell();
    c->rings++;
    st = pv_status(a);
    c->seen[st < 4 ? st : 4]++;
}

static void storm_one(void *unused)
{
    unsigned cpu = this_cpu();
    struct storm_count *c = &storm[cpu];
    struct pvsched_area *a = &pv_area[cpu];
    uint64_t t, next;

    pv_set_req(a, PVSCHED_REQ_BOOST);
    storm_ring(c, a);
    next = rdtsc() + storm_every;
    while ((t = rdtsc()) < storm_end) {
        if (storm_every && t >= next) {
            if (storm_db) {
                storm_ring(c, a);
            } else {
                pv_port_exit();
            }
            next = t + storm_every;
        }
        barrier();
    }
    c->last = pv_status(a);
    pv_set_req(a, PVSCHED_REQ_UNBOOST);
    pv_doorbell();
}

void scenario_storm(void)
{
    uint32_t ms = cmdline_u32("ms", 2000);
    uint32_t io_us = cmdline_u32("io_us", 2000);
    unsigned cpu;

    storm_db = cmdline_u32("db", 1) != 0;
    storm_every = io_us ? us_to_tsc(io_us) : 0;
    require_feature();
    register_all();
    kprintf("INFO storm start cpus=%u ms=%u io_us=%u db=%d\n", ncpus, ms,
            io_us, storm_db);
    storm_end = rdtsc() + ms_to_tsc(ms);
    for (cpu = 1; cpu < ncpus; cpu++) {
        run_on_async(cpu, storm_one, NULL);
    }
    storm_one(NULL);
    for (cpu = 1; cpu < ncpus; cpu++) {
        run_wait(cpu, STORM_SLACK_MS);
    }
    kprintf("INFO storm end\n");
    for (cpu = 0; cpu < ncpus; cpu++) {
        struct storm_count *c = &storm[cpu];

        kprintf("INFO storm cpu=%u rings=%u boosted=%u throttled=%u "
                "normal=%u disabled=%u invalid=%u last=%s\n", cpu, c->rings,
                c->seen[PVSCHED_STATUS_BOOSTED],
                c->seen[PVSCHED_STATUS_THROTTLED],
                c->seen[PVSCHED_STATUS_NORMAL],
                c->seen[PVSCHED_STATUS_DISABLED], c->seen[4],
                pv_status_name(c->last));
        check("storm-no-gp", cpu, c->gp == 0, "gp=%u of %u doorbells",
              c->gp, c->rings);
        /* Registered all along: never DISABLED, never anything undefined. */
        check("storm-status", cpu,
              !c->seen[PVSCHED_STATUS_DISABLED] && !c->seen[4],
              "disabled=%u invalid=%u", c->seen[PVSCHED_STATUS_DISABLED],
              c->seen[4]);
    }
    done();
}
