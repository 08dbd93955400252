/*
 * AP bring-up (INIT-SIPI-SIPI through the xAPIC, one AP at a time so each
 * gets a known index and stack) and the run_on() mailboxes.
 */
#include "smp.h"
#include "acpi.h"
#include "check.h"
#include "idt.h"
#include "io.h"
#include "lib.h"
#include "print.h"
#include "trampoline.h"
#include "tsc.h"

#define LAPIC_BASE      0xfee00000u
#define LAPIC_ID        0x020
#define LAPIC_SVR       0x0f0
#define LAPIC_ICR_LO    0x300
#define LAPIC_ICR_HI    0x310
#define SVR_ENABLE      0x100
#define ICR_INIT        0x00004500u   /* INIT, level assert */
#define ICR_STARTUP     0x00004600u   /* SIPI; low byte = vector (page) */
#define ICR_PENDING     0x00001000u

#define INIT_DELAY_US       10000     /* INIT -> SIPI, as the MP spec says */
#define FIRST_SIPI_WAIT_US  10000
#define SECOND_SIPI_WAIT_US 1000000
#define RUN_ON_TIMEOUT_MS   10000u    /* 10 s: our functions take ms */
#define MADT_MAX            64

struct mailbox {
    void (*volatile fn)(void *);
    void *volatile arg;
    volatile uint32_t req;      /* bumped by cpu 0 to post fn */
    volatile uint32_t done;     /* set to req by the AP when fn returned */
} __attribute__((aligned(64)));

uint8_t cpu_stacks[MAX_CPUS][STACK_SIZE] __attribute__((aligned(16)));
unsigned ncpus = 1;

volatile unsigned int ap_boot_stack;    /* read by trampoline.S */
static volatile unsigned ap_boot_index;
static volatile uint32_t ap_online[MAX_CPUS];
static struct mailbox mbox[MAX_CPUS];

static uint32_t lapic_read(uint32_t reg)
{
    return mmio_read32(LAPIC_BASE + reg);
}

static void lapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(LAPIC_BASE + reg, v);
}

static void send_ipi(uint8_t apic_id, uint32_t icr)
{
    uint64_t end = rdtsc() + us_to_tsc(1000);

    while ((lapic_read(LAPIC_ICR_LO) & ICR_PENDING) && rdtsc() < end) {
        cpu_pause();
    }
    lapic_write(LAPIC_ICR_HI, (uint32_t)apic_id << 24);
    lapic_write(LAPIC_ICR_LO, icr);
}

static bool wait_online(unsigned idx, uint32_t us)
{
    uint64_t end = rdtsc() + us_to_tsc(us);

    while (!ap_online[idx]) {
        if (rdtsc() > end) {
            return false;
        }
        cpu_pause();
    }
    return true;
}

static bool start_ap(unsigned idx, uint8_t apic_id)
{
    ap_boot_index = idx;
    ap_boot_stack = (uint32_t)&cpu_stacks[idx][STACK_SIZE];
    __sync_synchronize();

    send_ipi(apic_id, ICR_INIT);
    udelay(INIT_DELAY_US);
    send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_BASE >> 12));
    if (wait_online(idx, FIRST_SIPI_WAIT_US)) {
        return true;
    }
    /* A second SIPI is ignored by an AP that already started. */
    send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE_BASE >> 12));
    return wait_online(idx, SECOND_SIPI_WAIT_US);
}

/* The AP idles here: memory polling with pause only, so no exits. */
static void __attribute__((noreturn)) ap_loop(struct mailbox *m)
{
    for (;;) {
        uint32_t req;

        while ((req = m->req) == m->done) {
            cpu_pause();
        }
        m->fn(m->arg);
        __sync_synchronize();
        m->done = req;
    }
}

void ap_main(void);
void ap_main(void)
{
    unsigned idx = ap_boot_index;

    idt_load();
    ap_online[idx] = 1;
    ap_loop(&mbox[idx]);
}

void smp_init(void)
{
    uint8_t ids[MADT_MAX];
    unsigned n = acpi_cpu_apic_ids(ids, MADT_MAX), i;
    uint8_t bsp = lapic_read(LAPIC_ID) >> 24;
    size_t tramp_len = trampoline_end - trampoline_start;

    if (!n) {
        kprintf("INFO no ACPI MADT: running on cpu 0 only\n");
        return;
    }
    if (tramp_len > 4096) {
        check_fatal("trampoline", "size=%u", (unsigned)tramp_len);
    }
    /* IPIs are sent only by a software-enabled local APIC. */
    lapic_write(LAPIC_SVR, lapic_read(LAPIC_SVR) | SVR_ENABLE);
    memcpy((void *)TRAMPOLINE_BASE, trampoline_start, tramp_len);

    kprintf("INFO cpu=0 apic=%u\n", bsp);
    for (i = 0; i < n && ncpus < MAX_CPUS; i++) {
        if (ids[i] == bsp) {
            continue;
        }
        if (!start_ap(ncpus, ids[i])) {
            /* A late AP could share the next one's stack: stop here. */
            check("ap-startup", ncpus, false, "apic=%u no check-in",
                  ids[i]);
            break;
        }
        kprintf("INFO cpu=%u apic=%u\n", ncpus, ids[i]);
        ncpus++;
    }
    if (n > MAX_CPUS) {
        kprintf("INFO %u cpus in MADT, using %u\n", n, ncpus);
    }
}

void run_on_async(unsigned cpu, void (*fn)(void *), void *arg)
{
    struct mailbox *m = &mbox[cpu];

    if (cpu >= ncpus) {
        check_fatal("run_on", "cpu=%u not online", cpu);
    }
    m->fn = fn;
    m->arg = arg;
    __sync_synchronize();
    m->req = m->req + 1;
}

void run_wait(unsigned cpu, uint32_t timeout_ms)
{
    struct mailbox *m = &mbox[cpu];
    uint64_t end = rdtsc() + ms_to_tsc(timeout_ms);

    while (m->done != m->req) {
        if (rdtsc() > end) {
            check_fatal("run_on", "cpu=%u timed out", cpu);
        }
        cpu_pause();
    }
    __sync_synchronize();
}

void run_on(unsigned cpu, void (*fn)(void *), void *arg)
{
    if (cpu == this_cpu()) {
        fn(arg);
        return;
    }
    run_on_async(cpu, fn, arg);
    run_wait(cpu, RUN_ON_TIMEOUT_MS);
}
