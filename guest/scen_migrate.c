/*
 * migrate: every write QEMU makes to an area must reach the destination
 * of a live migration (PROTOCOL.md).
 *
 * QEMU writes boost_status through its own mapping of guest RAM, which
 * KVM's dirty log does not see: only QEMU's dirty marking makes migration
 * send such a page again.  cpu 0 cycles through MIG_PAGES areas, one per
 * page.  Each step registers the next area (QEMU writes DISABLED to the
 * one let go of, NORMAL to the new one) and boosts through the doorbell;
 * the guest then asks for UNBOOST in the area but spins, boosted, for
 * ms=N milliseconds without any exit, and only then leaves the guest
 * (port 0x80), where QEMU applies the UNBOOST and writes NORMAL.  So
 * QEMU's writes reach an area's page ms after the guest last wrote it:
 * if migration sent the page in between and QEMU did not mark it dirty,
 * the destination keeps the stale BOOSTED.  Each step first checks that
 * its area says DISABLED, as QEMU last wrote it.  Make ms longer than
 * the migration takes to sync the dirty log and send what it found.
 *
 * While it spins it keeps writing BEAT_PAGES pages of its own, so that
 * migration always has plenty to send again: with a small downtime-limit
 * and bandwidth the host keeps the migration live (sending those pages,
 * syncing the dirty log, sending them again) for as long as it wants.
 * Boosted, the vCPU is not starved of the host CPU by the migration.
 *
 * Runs until the host sends a byte (cpu 0 polls the UART at every step),
 * then one more round, so that every area is checked after it.
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
#define MIG_PAGES       4
#define PAGE_SIZE       4096

/* One area at the start of each page: a page holds nothing else. */
static uint8_t mig_pages[MIG_PAGES][PAGE_SIZE]
    __attribute__((aligned(PAGE_SIZE)));

struct mig_count {
    uint32_t steps;
    uint32_t gp;
    uint32_t bad;           /* a doorbell that did not give its status */
    uint32_t stale;         /* an area let go of that did not say DISABLED */
    uint32_t stale_step;    /* the first of them */
    uint32_t stale_page;
    uint64_t stale_status;
};

/* Written all the time while spinning: each write must reach RAM. */
#define BEAT_PAGES      64
static volatile uint32_t mig_beat[BEAT_PAGES][PAGE_SIZE / 4] /* see above */
    __attribute__((aligned(PAGE_SIZE)));

static void mig_spin(uint32_t ms)
{
    uint64_t end = rdtsc() + ms_to_tsc(ms);
    unsigned i;

    while (rdtsc() < end) {
        for (i = 0; i < BEAT_PAGES; i++) {
            mig_beat[i][0]++;
        }
    }
}

static struct pvsched_area *mig_area(unsigned i)
{
    return (struct pvsched_area *)mig_pages[i];
}

/* @after: what the guest did last, so a failure says which check it is. */
static void mig_expect(struct mig_count *m, struct pvsched_area *a,
                       uint64_t want, const char *after)
{
    if (pv_status(a) != want) {
        if (!m->bad) {
            kprintf("INFO migrate step=%u after=%s status=%s want=%s\n",
                    m->steps, after, pv_status_name(pv_status(a)),
                    pv_status_name(want));
        }
        m->bad++;
    }
}

static void mig_step(struct mig_count *m, uint32_t ms)
{
    unsigned i = m->steps % MIG_PAGES;
    struct pvsched_area *a = mig_area(i);
    uint64_t st = pv_status(a);

    if (st != PVSCHED_STATUS_DISABLED && !m->stale++) {
        m->stale_step = m->steps;
        m->stale_page = i;
        m->stale_status = st;
    }
    /*
     * Registered with no BOOST pending (the area holds this step's
     * UNBOOST of a round ago, or nothing), so it must read NORMAL.  A
     * BOOST pending here could be honoured by any exit before the read,
     * a signal included: the migration's stop of the source vCPU, the
     * destination's first KVM_RUN (the spec allows it; seen in L1).
     */
    m->gp += pv_enable(a);
    mig_expect(m, a, PVSCHED_STATUS_NORMAL, "enable");
    pv_set_req(a, PVSCHED_REQ_BOOST);
    m->gp += pv_doorbell();
    mig_expect(m, a, PVSCHED_STATUS_BOOSTED, "doorbell");
    /* The guest's last write to the page until the next round. */
    pv_set_req(a, PVSCHED_REQ_UNBOOST);
    mig_spin(ms);
    pv_port_exit();
    mig_expect(m, a, PVSCHED_STATUS_NORMAL, "port-exit");
    m->steps++;
}

void scenario_migrate(void)
{
    uint32_t ms = cmdline_u32("ms", 200);
    struct mig_count m = { 0 };
    unsigned n;

    require_feature();
    kprintf("INFO migrate start pages=%u ms=%u\n", MIG_PAGES, ms);
    do {
        mig_step(&m, ms);
        if (!(m.steps % MIG_PAGES)) {
            kprintf("INFO migrate round=%u\n", m.steps / MIG_PAGES);
        }
    } while (!(inb(COM1_LSR) & LSR_DR));
    (void)inb(COM1_DATA);
    for (n = 0; n < MIG_PAGES; n++) {
        mig_step(&m, 0);
    }
    m.gp += pv_disable();
    kprintf("INFO migrate steps=%u stale=%u bad=%u gp=%u\n", m.steps,
            m.stale, m.bad, m.gp);
    check("migrate-no-gp", 0, m.gp == 0, "gp=%u", m.gp);
    check("migrate-status", 0, m.bad == 0, "bad=%u", m.bad);
    check("migrate-area-writes", 0, m.stale == 0,
          "%u areas let go of did not say DISABLED, the first at step %u: "
          "area %u said %s (a write QEMU made was lost)", m.stale,
          m.stale_step, m.stale_page, pv_status_name(m.stale_status));
    done();
}
