/* The small scenarios: nofeature, demo and spin. */
#include "scenarios.h"
#include "check.h"
#include "cmdline.h"
#include "io.h"
#include "print.h"
#include "pvsched.h"
#include "smp.h"
#include "tsc.h"

/* Without the device the bit is clear and KVM answers the MSR with #GP. */
void scenario_nofeature(void)
{
    bool gp;

    check("feature-absent", NO_CPU, !pvsched_feature(),
          "cpuid 0x%x eax bit %u set", PVSCHED_CPUID_LEAF,
          PVSCHED_CPUID_FEATURE_BIT);
    gp = pv_enable(&pv_area[0]);
    check("msr-gp", NO_CPU, gp, "wrmsr(gpa|1) did not raise #GP");
    done();
}

/* Doorbell BOOST, then a lazy UNBOOST, on each cpu in turn, loops times. */
void scenario_demo(void)
{
    uint32_t loops = cmdline_u32("loops", 3), round;
    unsigned cpu;

    require_feature();
    register_all();
    for (round = 1; round <= loops; round++) {
        kprintf("INFO round=%u/%u\n", round, loops);
        for (cpu = 0; cpu < ncpus; cpu++) {
            pv_op_on(cpu, PVSCHED_REQ_BOOST, HOW_DOORBELL);
            pv_print_state(cpu);
            wait_point("boosted", cpu);
            pv_op_on(cpu, PVSCHED_REQ_UNBOOST, HOW_PORT_EXIT);
            pv_print_state(cpu);
            wait_point("unboosted", cpu);
        }
    }
    done();
}

/*
 * Boosted busy loop with no exit at all (no I/O, no pause), so that only
 * the host's own bound can end the boost; the final status is reported,
 * not checked: the host test knows what it configured.  With io_us=<n>,
 * a rogue guest instead: BOOST stays requested and a port write every n
 * microseconds gives the host an exit at which to boost it again.
 *
 * Nothing is printed between the boost and the end of the loop: every
 * character is two exits, which cost the boosted vCPU CPU time (in a
 * nested guest ~100-250 us each, a 3 ms bound in a dozen characters).
 */

/*
 * The doorbell's BOOST, as the guest read its status right after it
 * (op_us: the doorbell's wall time).  THROTTLED is right only once the
 * bound (bound_us, 0: not given) is spent, and the vCPU thread's CPU time
 * since the boost is at most the doorbell's wall time: a doorbell shorter
 * than the bound sees BOOSTED.  A longer one may not: in a nested VM on a
 * loaded host, L1 charges the thread for the milliseconds its CPU stood
 * still (it has no steal clock), and the bound can be spent before the
 * guest looks.
 */
static void check_doorbell_boost(const struct pv_op *op, uint32_t op_us,
                                 uint32_t bound_us)
{
    bool spent = bound_us && op_us >= bound_us;

    check("doorbell-boost", 0,
          !op->gp && (op->status == PVSCHED_STATUS_BOOSTED ||
                      (spent && op->status == PVSCHED_STATUS_THROTTLED)),
          "gp=%d status=%s want=%s doorbell_us=%u bound_us=%u", op->gp,
          pv_status_name(op->status),
          spent ? "boosted or throttled" : "boosted", op_us, bound_us);
}

void scenario_spin(void)
{
    uint32_t ms = cmdline_u32("ms", 100);
    uint32_t io_us = cmdline_u32("io_us", 0);
    uint64_t io_every = io_us ? us_to_tsc(io_us) : 0;
    uint32_t bound_us = cmdline_u32("bound_us", 0), op_us;
    struct pvsched_area *a = &pv_area[0];
    struct pv_op op;
    uint64_t t0, end, t1, st, next_io;
    uint8_t req;

    require_feature();
    register_all();
    t0 = rdtsc();
    op = pv_op_on(0, PVSCHED_REQ_BOOST, HOW_DOORBELL);
    op_us = tsc_to_us(rdtsc() - t0);

    t0 = rdtsc();
    end = t0 + ms_to_tsc(ms);
    next_io = t0 + io_every;
    while ((t1 = rdtsc()) < end) {
        if (io_every && t1 >= next_io) {
            outb(0x80, 0);
            next_io = t1 + io_every;
        }
        barrier();
    }
    st = pv_status(a);
    req = pv_req(a);

    check_doorbell_boost(&op, op_us, bound_us);
    kprintf("STATE cpu=0 status=%s req=%s\n", pv_status_name(st),
            pv_req_name(req));
    kprintf("INFO boosted_spin_ms=%u\n", tsc_to_us(t1 - t0) / 1000);
    pv_op_on(0, PVSCHED_REQ_UNBOOST, HOW_DOORBELL);
    done();
}
