/*
 * iostorm: a guest that makes QEMU's main loop work as hard as it can
 * (PROTOCOL.md).
 *
 * HPET timer 0 in periodic mode with a period of one HPET tick, its
 * interrupt masked: QEMU emulates the HPET in the main loop with a
 * QEMU timer, clamps the period to 1 us, and then runs that timer a
 * million times a second for as long as the guest lets it, while the
 * guest itself halts and costs the host nothing.  Only a bound on the
 * main loop keeps it from taking a whole host CPU.
 */
#include <stddef.h>
#include "scenarios.h"
#include "check.h"
#include "io.h"
#include "print.h"

#define HPET_BASE       0xfed00000u
#define HPET_ID         0x000   /* bits 15:0 vendor, 63:32 period (fs) */
#define HPET_CFG        0x010   /* bit 0: enable */
#define HPET_T0_CFG     0x100
#define HPET_T0_CMP     0x108
#define HPET_TN_PERIODIC    (1u << 3)
#define HPET_TN_SETVAL      (1u << 6)

void scenario_iostorm(void)
{
    uint32_t id = mmio_read32(HPET_BASE + HPET_ID);
    uint32_t period_fs = mmio_read32(HPET_BASE + HPET_ID + 4);
    bool present = id != 0xffffffffu && period_fs != 0;

    check("hpet-present", -1, present, "id=0x%x period=%u fs", id, period_fs);
    if (!present) {
        done();
    }
    mmio_write32(HPET_BASE + HPET_CFG, 0);
    /* Periodic, interrupt not enabled: the host works, the guest sleeps. */
    mmio_write32(HPET_BASE + HPET_T0_CFG, HPET_TN_PERIODIC | HPET_TN_SETVAL);
    mmio_write32(HPET_BASE + HPET_T0_CMP, 1);
    mmio_write32(HPET_BASE + HPET_T0_CMP + 4, 0);
    /*
     * Said before the storm: once it runs, QEMU's main loop always has an
     * expired timer, never waits, and so never drops the BQL, which every
     * exit of this vCPU to QEMU (a serial byte too) needs.
     */
    kprintf("INFO iostorm start hpet_period_fs=%u\n", period_fs);
    mmio_write32(HPET_BASE + HPET_CFG, 1);
    halt_forever();
}
