/*
 * boost: doorbell BOOST/UNBOOST on cpu 0 and cpu 1, a lazy BOOST/UNBOOST
 * on cpu 0 applied at a port exit, then disable everywhere.
 */
#include "scenarios.h"
#include "check.h"
#include "io.h"
#include "print.h"
#include "pvsched.h"
#include "smp.h"
#include "tsc.h"

#define LAZY_SPIN_US 2000

/* Doorbell BOOST then UNBOOST on cpu, with a WAIT after each. */
static void doorbell_round(unsigned cpu)
{
    struct pv_op op;

    op = pv_op_on(cpu, PVSCHED_REQ_BOOST, HOW_DOORBELL);
    check_op("doorbell-boost", cpu, &op, PVSCHED_STATUS_BOOSTED);
    pv_print_state(cpu);
    wait_point("boosted", cpu);

    op = pv_op_on(cpu, PVSCHED_REQ_UNBOOST, HOW_DOORBELL);
    check_op("doorbell-unboost", cpu, &op, PVSCHED_STATUS_NORMAL);
    pv_print_state(cpu);
    wait_point("unboosted", cpu);
}

/*
 * Watch boost_status for `us` without any exit (rdtsc and memory reads
 * only). Returns the first value that differs from `start`, else start.
 */
static uint64_t watch_status(const struct pvsched_area *a, uint64_t start,
                             uint32_t us)
{
    uint64_t end = rdtsc() + us_to_tsc(us);

    while (rdtsc() < end) {
        uint64_t s = pv_status(a);

        if (s != start) {
            return s;
        }
    }
    return start;
}

/*
 * Lazy path on cpu 0: a request with no doorbell must not be seen until
 * the next userspace exit. Statuses are sampled before printing, since
 * printing is itself a (serial) exit.
 */
static void lazy_round(void)
{
    struct pvsched_area *a = &pv_area[0];
    uint64_t before, after;

    pv_set_req(a, PVSCHED_REQ_BOOST);
    before = watch_status(a, pv_status(a), LAZY_SPIN_US);
    pv_port_exit();
    after = pv_status(a);
    kprintf("INFO lazy status_before_exit=%s status_after_exit=%s\n",
            pv_status_name(before), pv_status_name(after));
    check("lazy-not-before-exit", NO_CPU, before == PVSCHED_STATUS_NORMAL,
          "status=%s", pv_status_name(before));
    check("lazy-applied-at-exit", NO_CPU, after == PVSCHED_STATUS_BOOSTED,
          "status=%s", pv_status_name(after));
    pv_print_state(0);
    wait_point("lazy-boosted", 0);

    pv_set_req(a, PVSCHED_REQ_UNBOOST);
    pv_port_exit();
    after = pv_status(a);
    check("lazy-unboost-at-exit", NO_CPU, after == PVSCHED_STATUS_NORMAL,
          "status=%s", pv_status_name(after));
    pv_print_state(0);
    wait_point("lazy-unboosted", 0);
}

static void disable_all(void)
{
    unsigned cpu;

    for (cpu = 0; cpu < ncpus; cpu++) {
        struct pv_op op = pv_op_on(cpu, REQ_KEEP, HOW_DISABLE);

        check_op("disable", cpu, &op, PVSCHED_STATUS_DISABLED);
        check("disable-readback", cpu, !op.rd_gp && op.msr == 0,
              "rd_gp=%d msr=%llx", op.rd_gp, op.msr);
    }
}

void scenario_boost(void)
{
    require_feature();
    register_all();
    wait_point("registered", 0);

    doorbell_round(0);
    if (check("two-cpus", NO_CPU, ncpus >= 2, "cpus=%u", ncpus)) {
        doorbell_round(1);
    }
    lazy_round();

    disable_all();
    wait_point("disabled", 0);
    done();
}
