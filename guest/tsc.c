#include "tsc.h"
#include "io.h"
#include "lib.h"
#include "msr.h"
#include "print.h"

#define PIT_HZ          1193182u
#define CALIB_MS        10
#define PIT_RUNS        5
#define FALLBACK_KHZ    2000000u   /* only if nothing else works */

#define KVM_FEATURE_CLOCKSOURCE2    (1u << 3)
#define MSR_KVM_SYSTEM_TIME_NEW     0x4b564d01u

/* KVM's pvclock_vcpu_time_info. */
struct pvclock {
    uint32_t version, pad0;
    uint64_t tsc_timestamp, system_time;
    uint32_t tsc_to_system_mul;
    int8_t tsc_shift;
    uint8_t flags, pad[2];
} __attribute__((aligned(64)));

static struct pvclock kvmclock;

uint32_t tsc_khz = FALLBACK_KHZ;

static bool kvm_signature(uint32_t *max_leaf)
{
    uint32_t b, c, d;

    cpuid(0x40000000, max_leaf, &b, &c, &d);
    return b == 0x4b4d564b && c == 0x564b4d56 && d == 0x4d;  /* KVMKVMKVM */
}

/* KVM's leaf 0x40000010 EAX gives the TSC frequency in kHz when exposed. */
static uint32_t khz_from_cpuid(void)
{
    uint32_t a, b, c, d;

    if (!kvm_signature(&a) || a < 0x40000010) {
        return 0;
    }
    cpuid(0x40000010, &a, &b, &c, &d);
    return a;
}

/*
 * kvmclock publishes the exact TSC-to-nanoseconds factor: enable it on
 * this cpu just long enough to read it (as Linux's pvclock_tsc_khz()).
 */
static uint32_t khz_from_kvmclock(void)
{
    volatile struct pvclock *pc = &kvmclock;
    uint32_t max, a, b, c, d, mul, spins = 0;
    int8_t shift;
    uint64_t khz;

    if (!kvm_signature(&max) || max < 0x40000001) {
        return 0;
    }
    cpuid(0x40000001, &a, &b, &c, &d);
    if (!(a & KVM_FEATURE_CLOCKSOURCE2) ||
        wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, (uint32_t)&kvmclock | 1)) {
        return 0;
    }
    /*
     * KVM fills it before the guest runs again; odd version = updating.
     * The spin bound (well over a second) only guards a broken host.
     */
    do {
        mul = pc->tsc_to_system_mul;
        shift = pc->tsc_shift;
        barrier();
    } while (((pc->version & 1) || pc->version == 0) && ++spins < 500000000u);
    wrmsr_safe(MSR_KVM_SYSTEM_TIME_NEW, 0);
    if (spins >= 500000000u || !mul) {
        return 0;
    }
    khz = udiv64(1000000ull << 32, mul, 0);
    khz = shift < 0 ? khz << -shift : khz >> shift;
    return (uint32_t)khz;
}

/*
 * Count TSC cycles across a 10 ms one-shot of PIT channel 2 (the speaker
 * channel, whose output is readable in port 0x61 bit 5). The poll is
 * bounded by TSC cycles so a missing PIT cannot hang the boot.
 */
static uint32_t khz_from_pit_once(void)
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

/*
 * A vCPU preempted between starting the PIT and reading the TSC (or
 * between the PIT firing and the read) skews one run: take the median.
 */
static uint32_t khz_from_pit(void)
{
    uint32_t v[PIT_RUNS], t;
    int i, j;

    for (i = 0; i < PIT_RUNS; i++) {
        v[i] = khz_from_pit_once();
        for (j = i; j > 0 && v[j - 1] > v[j]; j--) {
            t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    }
    return v[PIT_RUNS / 2];
}

void tsc_init(void)
{
    uint32_t khz = khz_from_cpuid();
    const char *how = "cpuid";

    if (!khz) {
        khz = khz_from_kvmclock();
        how = "kvmclock";
    }
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
