/*
 * churn: registrations, boosts, disables and resets, over and over
 * (PROTOCOL.md).  One boot is one cycle: the host says at WAIT fresh how
 * this one ends, the guest makes regs=N rounds of register / BOOST /
 * re-register with a second area / BOOST / disable on every CPU, then
 * registers and boosts every CPU once more and ends the cycle that way.
 */
#include <stddef.h>
#include "scenarios.h"
#include "check.h"
#include "cmdline.h"
#include "io.h"
#include "print.h"
#include "pvsched.h"
#include "serial.h"
#include "smp.h"
#include "tsc.h"

#define RCR_PORT        0xcf9   /* PIIX3 reset control register */
#define RCR_HARD_RESET  0x06    /* SYS_RST | RST_CPU */
#define RESET_WAIT_US   5000000u

static uint32_t churn_bad;

static void expect(const struct pv_op *op, uint64_t want)
{
    if (op->gp || op->status != want) {
        if (!churn_bad) {
            kprintf("INFO churn first bad op: gp=%d status=%s want=%s\n",
                    op->gp, pv_status_name(op->status),
                    pv_status_name(want));
        }
        churn_bad++;
    }
}

/* Register pv_area on every CPU, then BOOST every CPU. */
static void register_and_boost(void)
{
    unsigned cpu;

    for (cpu = 0; cpu < ncpus; cpu++) {
        struct pv_op op = pv_op_on(cpu, PVSCHED_REQ_NONE, HOW_ENABLE);

        expect(&op, PVSCHED_STATUS_NORMAL);
        op = pv_op_on(cpu, PVSCHED_REQ_BOOST, HOW_DOORBELL);
        expect(&op, PVSCHED_STATUS_BOOSTED);
    }
}

static void reenable_second(void *unused)
{
    unsigned cpu = this_cpu();
    struct pvsched_area *a2 = &pv_area2[cpu];

    pv_set_status(a2, 0xa5);
    pv_set_req(a2, PVSCHED_REQ_BOOST);
    /* Moving the area drops the boost; the next doorbell asks again. */
    if (pv_enable(a2) || pv_status(a2) != PVSCHED_STATUS_NORMAL ||
        pv_doorbell() || pv_status(a2) != PVSCHED_STATUS_BOOSTED) {
        churn_bad++;
    }
}

static void disable_all(void)
{
    unsigned cpu;

    for (cpu = 0; cpu < ncpus; cpu++) {
        struct pv_op op = pv_op_on(cpu, PVSCHED_REQ_UNBOOST, HOW_DISABLE);

        expect(&op, PVSCHED_STATUS_DISABLED);
        if (op.rd_gp || op.msr) {       /* reads 0 once disabled */
            churn_bad++;
        }
    }
}

static void __attribute__((noreturn)) guest_reset(void)
{
    outb(RCR_PORT, RCR_HARD_RESET);
    udelay(RESET_WAIT_US);
    check_fatal("churn-reset", "still running %u ms after the reset "
                "request", RESET_WAIT_US / 1000);
}

void scenario_churn(void)
{
    uint32_t regs = cmdline_u32("regs", 10), i;
    unsigned cpu;
    uint8_t how;

    require_feature();
    /* wait_point() without dropping the byte: it says how to end. */
    kprintf("WAIT fresh cpu=0\n");
    how = serial_getc();
    for (i = 0; i < regs; i++) {
        register_and_boost();
        for (cpu = 0; cpu < ncpus; cpu++) {
            run_on(cpu, reenable_second, NULL);
        }
        disable_all();
    }
    register_and_boost();
    check("churn-ops", NO_CPU, !churn_bad, "%u of %u rounds went wrong",
          churn_bad, regs + 1);
    switch (how) {
    case 'd':               /* disable everything, then reset */
        disable_all();
        guest_reset();
    case 'b':               /* reset while registered and boosted */
        guest_reset();
    case 'h':               /* the host resets us */
        wait_point("host-reset", 0);
        check_fatal("churn-reset", "the host sent a byte instead of "
                    "system_reset");
    case 'p':               /* the host probes us registered, then reset */
        wait_point("probe", 0);
        guest_reset();
    case 'q':
        disable_all();
        done();
    default:
        check_fatal("churn-byte", "unknown byte 0x%x", how);
    }
}
