/*
 * msr: the MSR's whole contract (DESIGN.md section 4) on every CPU, each
 * CPU testing its own MSR. Every invalid value must raise #GP and change
 * nothing, both while disabled and while registered.
 */
#include "scenarios.h"
#include "check.h"
#include "idt.h"
#include "print.h"
#include "pvsched.h"
#include "smp.h"

#define N_INVALID 10

struct invalid {
    const char *name;
    uint64_t val;
};

/* The values depend on the CPU's own area for the near-miss cases. */
static void invalid_values(struct invalid *v, uint64_t gpa)
{
    const struct invalid list[N_INVALID] = {
        { "bit0-clear",    0x2 },
        { "reserved-bit1", gpa | PVSCHED_MSR_ENABLE | 0x2 },
        { "reserved-bit5", gpa | PVSCHED_MSR_ENABLE | 0x20 },
        { "unaligned",     (gpa + 8) | PVSCHED_MSR_ENABLE },
        /* 0xfe0 is only 32-byte aligned: an area there ends past 0x1000. */
        { "page-cross",    0xfe0 | PVSCHED_MSR_ENABLE },
        /* -m 128M: nothing at or above 4 GiB. */
        { "above-4g",      0x100000000ull | PVSCHED_MSR_ENABLE },
        { "beyond-ram",    0x7fff0000000ull | PVSCHED_MSR_ENABLE },
        { "lapic-mmio",    0xfee00000ull | PVSCHED_MSR_ENABLE },
        { "ioapic-mmio",   0xfec00000ull | PVSCHED_MSR_ENABLE },
        { "bios-rom",      0xfffc0000ull | PVSCHED_MSR_ENABLE },
    };
    unsigned i;

    for (i = 0; i < N_INVALID; i++) {
        v[i] = list[i];
    }
}

/*
 * Try every invalid value; each must #GP and leave the read-back at
 * `expect` and (when registered) the area's status at NORMAL.
 */
static void invalid_writes(unsigned cpu, bool registered, uint64_t expect)
{
    const struct pvsched_area *a = &pv_area[cpu];
    const char *phase = registered ? "registered" : "disabled";
    struct invalid v[N_INVALID];
    char name[48];
    unsigned i;

    invalid_values(v, pv_gpa(a));
    for (i = 0; i < N_INVALID; i++) {
        uint64_t rd = 0;
        bool gp = pv_write(v[i].val);
        bool rd_gp = pv_read(&rd);
        uint64_t st = pv_status(a);
        bool st_ok = !registered || st == PVSCHED_STATUS_NORMAL;

        ksnprintf(name, sizeof(name), "invalid-%s-%s", v[i].name, phase);
        check(name, cpu, gp && !rd_gp && rd == expect && st_ok,
              "val=%llx gp=%d msr=%llx want=%llx status=%s", v[i].val, gp,
              rd, expect, pv_status_name(st));
    }
}

/* Enable pv_area[cpu] and check; returns the expected read-back. */
static uint64_t valid_enable(unsigned cpu, struct pvsched_area *area,
                             const char *name)
{
    uint64_t want = pv_gpa(area) | PVSCHED_MSR_ENABLE, rd = 0;
    bool gp, rd_gp;

    pv_set_req(area, PVSCHED_REQ_NONE);
    pv_set_status(area, 0xa5);   /* so a missing host write shows */
    gp = pv_enable(area);
    rd_gp = pv_read(&rd);
    check(name, cpu,
          !gp && !rd_gp && rd == want &&
          pv_status(area) == PVSCHED_STATUS_NORMAL,
          "gp=%d msr=%llx want=%llx status=%s", gp, rd, want,
          pv_status_name(pv_status(area)));
    return want;
}

/* A write that must succeed and leave read-back and status as given. */
static void valid_write(unsigned cpu, const char *name, uint64_t val,
                        const struct pvsched_area *area, uint64_t want_msr,
                        uint64_t want_status)
{
    uint64_t rd = 0;
    bool gp = pv_write(val);
    bool rd_gp = pv_read(&rd);
    uint64_t st = pv_status(area);

    check(name, cpu, !gp && !rd_gp && rd == want_msr && st == want_status,
          "gp=%d msr=%llx want=%llx status=%s want=%s", gp, rd, want_msr,
          pv_status_name(st), pv_status_name(want_status));
}

/* Runs on the CPU under test; cpu 0 also stops at the WAIT points. */
static void msr_test(void *unused)
{
    unsigned cpu = this_cpu();
    struct pvsched_area *a = &pv_area[cpu], *b = &pv_area2[cpu];
    uint32_t gp0 = gp_count[cpu];
    uint64_t rd = 0, reg_b;
    bool rd_gp = pv_read(&rd);

    check("initial-readback", cpu, !rd_gp && rd == 0, "rd_gp=%d msr=%llx",
          rd_gp, rd);
    invalid_writes(cpu, false, 0);

    valid_enable(cpu, a, "enable");
    if (cpu == 0) {
        wait_point("registered", 0);
    }
    invalid_writes(cpu, true, pv_gpa(a) | PVSCHED_MSR_ENABLE);
    if (cpu == 0) {
        wait_point("invalid-done", 0);
    }

    reg_b = valid_enable(cpu, b, "reenable-second-area");
    pv_set_req(b, PVSCHED_REQ_NONE);
    valid_write(cpu, "doorbell-none", PVSCHED_MSR_DOORBELL, b, reg_b,
                PVSCHED_STATUS_NORMAL);
    valid_write(cpu, "disable", PVSCHED_MSR_DISABLE, b, 0,
                PVSCHED_STATUS_DISABLED);
    valid_write(cpu, "doorbell-disabled", PVSCHED_MSR_DOORBELL, b, 0,
                PVSCHED_STATUS_DISABLED);
    kprintf("INFO cpu=%u gp_count=%u\n", cpu, gp_count[cpu] - gp0);
    (void)unused;
}

void scenario_msr(void)
{
    unsigned cpu;

    require_feature();
    for (cpu = 0; cpu < ncpus; cpu++) {
        run_on(cpu, msr_test, 0);
    }
    done();
}
