#include "tsc.h"
#include "io.h"
#include "lib.h"
#include "print.h"

#define PIT_HZ          1193182u
#define CALIB_MS        10
#define FALLBACK_KHZ    2000000u   /* only if nothing else works */

uint32_t tsc_khz = FALLBACK_KHZ;

/* KVM's leaf 0x40000010 EAX gives the TSC frequency in kHz when exposed. */
static uint32_t khz_from_cpuid(void)
{
    uint32_t a, b, c, d;

    cpuid(0x40000000, &a, &b, &c, &d);
    if (a < 0x40000010) {
        return 0;
    }
    cpuid(0x40000010, &a, &b, &c, &d);
    return a;
}

/*
 * Count TSC cycles across a 10 ms one-shot of PIT channel 2 (the speaker
 * channel, whose output is readable in port 0x61 bit 5). The poll is
 * bounded by TSC cycles so a missing PIT cannot hang the boot.
 */
static uint32_t khz_from_pit(void)
{
    const uint32_t latch = PIT_HZ / (1000 / CALIB_MS);
    uint64_t t0, t1;

    outb(0x61, (inb(0x61) & ~0x02) | 0x01);  /* gate on, speaker off */
    outb(0x43, 0xb0);                        /* ch2, lo/hi, mode 0 */
    outb(0x42, latch & 0xff);
    outb(0x42, latch >> 8);
    t0 = t1 = rdtsc();
    while (!(inb(0x61) & 0x20)) {
        t1 = rdtsc();
        if (t1 - t0 > 50000000000ull) {
            return 0;
        }
    }
    return (uint32_t)udiv64(t1 - t0, CALIB_MS, 0);
}

void tsc_init(void)
{
    uint32_t khz = khz_from_cpuid();
    const char *how = "cpuid";

    if (!khz) {
        khz = khz_from_pit();
        how = "pit";
    }
    if (!khz) {
        khz = FALLBACK_KHZ;
        how = "fallback";
    }
    tsc_khz = khz;
    kprintf("INFO tsc_khz=%u source=%s\n", khz, how);
}

uint64_t us_to_tsc(uint32_t us)
{
    return udiv64((uint64_t)us * tsc_khz, 1000, 0);
}

uint64_t ms_to_tsc(uint32_t ms)
{
    return (uint64_t)ms * tsc_khz;
}

uint32_t tsc_to_us(uint64_t cycles)
{
    return (uint32_t)udiv64(cycles * 1000, tsc_khz, 0);
}

void udelay(uint32_t us)
{
    uint64_t end = rdtsc() + us_to_tsc(us);

    while (rdtsc() < end) {
        barrier();
    }
}
