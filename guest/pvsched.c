#include "pvsched.h"
#include "io.h"
#include "lib.h"
#include "msr.h"
#include "print.h"

#define CPUID_HV_BASE       0x40000000u
#define CPUID1_ECX_HV       (1u << 31)
#define DUMMY_PORT          0x80

struct pvsched_area pv_area[MAX_CPUS];
struct pvsched_area pv_area2[MAX_CPUS];

bool pvsched_feature(void)
{
    uint32_t a, b, c, d;
    char sig[12];

    cpuid(1, &a, &b, &c, &d);
    if (!(c & CPUID1_ECX_HV)) {
        return false;
    }
    cpuid(CPUID_HV_BASE, &a, &b, &c, &d);
    memcpy(sig + 0, &b, 4);
    memcpy(sig + 4, &c, 4);
    memcpy(sig + 8, &d, 4);
    if (memcmp(sig, "KVMKVMKVM\0\0\0", 12) || a < PVSCHED_CPUID_LEAF) {
        return false;
    }
    cpuid(PVSCHED_CPUID_LEAF, &a, &b, &c, &d);
    return a & (1u << PVSCHED_CPUID_FEATURE_BIT);
}

bool pv_write(uint64_t val)
{
    return wrmsr_safe(PVSCHED_MSR, val);
}

bool pv_read(uint64_t *val)
{
    return rdmsr_safe(PVSCHED_MSR, val);
}

bool pv_enable(struct pvsched_area *a)
{
    return pv_write(pv_gpa(a) | PVSCHED_MSR_ENABLE);
}

bool pv_disable(void)
{
    return pv_write(PVSCHED_MSR_DISABLE);
}

bool pv_doorbell(void)
{
    return pv_write(PVSCHED_MSR_DOORBELL);
}

/* Port 0x80 has no in-kernel handler: the write always reaches QEMU. */
void pv_port_exit(void)
{
    outb(DUMMY_PORT, 0);
}

const char *pv_status_name(uint64_t s)
{
    static const char *const names[] = {
        "DISABLED", "NORMAL", "BOOSTED", "THROTTLED",
    };
    /* One buffer per CPU so concurrent callers do not clobber each other. */
    static char unknown[MAX_CPUS][24];
    char *u = unknown[this_cpu()];

    if (s < 4) {
        return names[s];
    }
    ksnprintf(u, sizeof(unknown[0]), "?%llu", (unsigned long long)s);
    return u;
}

const char *pv_req_name(uint8_t r)
{
    static const char *const names[] = { "NONE", "UNBOOST", "BOOST" };
    static char unknown[MAX_CPUS][8];
    char *u = unknown[this_cpu()];

    if (r < 3) {
        return names[r];
    }
    ksnprintf(u, sizeof(unknown[0]), "?%u", r);
    return u;
}

void pv_print_state(unsigned cpu)
{
    const struct pvsched_area *a = &pv_area[cpu];

    kprintf("STATE cpu=%u status=%s req=%s\n", cpu,
            pv_status_name(pv_status(a)), pv_req_name(pv_req(a)));
}
