/*
 * Benchmark scenarios (bench/run.py drives them; PROTOCOL.md documents
 * their BENCH lines): bench-pio, bench-doorbell, bench-wakeup and
 * bench-scale. The guest measures with rdtsc and reports statistics, not
 * raw samples: every serial line costs milliseconds here.
 *
 * Each scenario is a loop of steps: "WAIT step cpu=0", then the byte the
 * host sends says what to measure next ('q': DONE). So the host can boot
 * the VMs it compares once, keep them stopped (QMP stop) at their WAIT,
 * and interleave their measurements step by step.
 *
 * bench-wakeup and bench-scale need interrupts, which the rest of the
 * guest never enables. They install their own 256-entry IDT (the
 * guest's 32 exception gates copied, plus a timer, a wake-up IPI and
 * stray/spurious vectors), and only ever enable interrupts in `sti; hlt`:
 * the handlers return with popf + ret (no iret, see isr.S) and clear IF
 * in the flags they return with, so the code after hlt runs with
 * interrupts off again.
 *
 * bench-scale drives up to BENCH_MAX_CPUS vCPUs, more than smp.c's
 * MAX_CPUS: it (re)starts every AP with INIT-SIPI-SIPI into its own
 * trampoline and stacks, and its APs never print (kprintf's lock and
 * this_cpu() only know smp.c's stacks).
 */
#include "scenarios.h"
#include "acpi.h"
#include "check.h"
#include "cmdline.h"
#include "gdt.h"
#include "idt.h"
#include "io.h"
#include "lib.h"
#include "print.h"
#include "pvsched.h"
#include "serial.h"
#include "smp.h"
#include "tsc.h"

#define XSTR(x)             STR(x)
#define STR(x)              #x

#define PIO_PORT            0x80    /* no in-kernel device: QEMU handles it */
#define MSR_CORE_THREAD_COUNT 0x35  /* QEMU answers it through the filter */
#define MSR_TSC_DEADLINE    0x6e0

#define LAPIC_BASE          0xfee00000u
#define LAPIC_ID            0x020
#define LAPIC_TPR           0x080
#define LAPIC_EOI           0x0b0
#define LAPIC_SVR           0x0f0
#define LAPIC_ICR_LO        0x300
#define LAPIC_ICR_HI        0x310
#define LAPIC_LVT_TIMER     0x320
#define LAPIC_TMR_INIT      0x380
#define LAPIC_TMR_CUR       0x390
#define LAPIC_TMR_DIV       0x3e0
#define SVR_ENABLE          0x100
#define LVT_MASKED          0x10000
#define LVT_TSC_DEADLINE    (2u << 17)
#define TMR_DIV_1           0xb
#define ICR_PENDING         0x1000
#define ICR_INIT            0x00004500u
#define ICR_STARTUP         0x00004600u
#define ICR_FIXED           0x00004000u   /* fixed, assert */
#define ICR_ALL_BUT_SELF    0x000c0000u

#define VEC_TIMER           0x40
#define VEC_WAKE            0x41
#define VEC_SPURIOUS        0xff
#define NUM_VECTORS         256
#define GATE_INTR32         0x8e
#define EFLAGS_IF           0x200

#define CPUID1_ECX_TSC_DEADLINE (1u << 24)

#define BENCH_MAX_CPUS      32
#define BENCH_STACK_SIZE    8192
#define BENCH_TRAMPOLINE    0x7000  /* free low page; smp.c uses 0x8000 */
#define MADT_MAX            64

#define CDF_POINTS          200     /* quantiles 0/200 .. 200/200 */
#define CDF_PER_LINE        16      /* a kprintf line holds 255 */

/* ---- statistics ------------------------------------------------------ */

/*
 * On this project's nested host (PVM) the guest's instructions may be
 * emulated one by one, ~2 us each: everything done per sample must be a
 * handful of instructions. So samples go into a log-linear histogram
 * (exact below 256, then 256 buckets per power of two: each bucket is
 * under 0.4% wide), and quantiles are read off it in one pass; no
 * 64-bit division anywhere near a timed loop.
 */
#define HIST_SUB            256
#define HIST_BUCKETS        (HIST_SUB + 24 * HIST_SUB)

struct hist {
    uint32_t n, min, max;
    uint64_t sum;
    uint32_t b[HIST_BUCKETS];
};

static void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = 0xffffffffu;
}

static inline void hist_add(struct hist *h, uint32_t v)
{
    uint32_t e, idx = v;

    if (v >= HIST_SUB) {
        asm("bsr %1, %0" : "=r"(e) : "r"(v));
        idx = HIST_SUB * (e - 7) + ((v >> (e - 8)) & (HIST_SUB - 1));
    }
    h->b[idx]++;
    h->n++;
    h->sum += v;
    h->min = v < h->min ? v : h->min;
    h->max = v > h->max ? v : h->max;
}

/* Middle of bucket idx. */
static uint32_t hist_value(uint32_t idx)
{
    uint32_t e, m;

    if (idx < HIST_SUB) {
        return idx;
    }
    e = idx / HIST_SUB + 7;
    m = idx % HIST_SUB;
    return ((HIST_SUB + m) << (e - 8)) + ((1u << (e - 8)) >> 1);
}

/*
 * out[i] = the value at rank num[i] / den (nearest rank), num[] sorted
 * ascending, in one walk over the buckets; the extremes are exact.
 */
static void hist_quantiles(const struct hist *h, const uint32_t *num,
                           unsigned count, uint32_t den, uint32_t *out)
{
    uint32_t idx = 0, seen = h->b[0];
    unsigned i;

    for (i = 0; i < count; i++) {
        uint32_t rank = (h->n ? h->n - 1 : 0) * num[i] / den;

        if (!h->n) {
            out[i] = 0;
            continue;
        }
        while (seen <= rank && idx + 1 < HIST_BUCKETS) {
            seen += h->b[++idx];
        }
        out[i] = num[i] == 0 ? h->min : num[i] == den ? h->max
                                                       : hist_value(idx);
        if (out[i] > h->max) {
            out[i] = h->max;
        }
        if (out[i] < h->min) {
            out[i] = h->min;
        }
    }
}

/* The mean, without a 64-bit division: sum / n with n < 2^32. */
static uint32_t hist_mean(const struct hist *h)
{
    return h->n ? (uint32_t)udiv64(h->sum, h->n, 0) : 0;
}

/*
 * Decimal output with 32-bit arithmetic: kprintf's %u divides in 64 bits
 * digit by digit, which costs a millisecond per number when emulated.
 */
static char *put_str(char *p, const char *s)
{
    while (*s) {
        *p++ = *s++;
    }
    return p;
}

static char *put_u32(char *p, uint32_t v)
{
    char tmp[10];
    int i = 0;

    do {
        tmp[i++] = '0' + v % 10;
        v /= 10;
    } while (v);
    while (i) {
        *p++ = tmp[--i];
    }
    return p;
}

/* " key=value" */
static char *put_kv(char *p, const char *key, uint32_t v)
{
    *p++ = ' ';
    p = put_str(p, key);
    *p++ = '=';
    return put_u32(p, v);
}

/* "BENCH <what> n=.. med=.. mean=.. min=.. p10=.. p90=.. p99=.. max=.." */
static void hist_print(const char *what, const struct hist *h)
{
    static const uint32_t num[] = { 100, 500, 900, 990 };
    char line[160], *p = line;
    uint32_t q[4];

    hist_quantiles(h, num, 4, 1000, q);
    p = put_str(p, "BENCH ");
    p = put_str(p, what);
    p = put_kv(p, "n", h->n);
    p = put_kv(p, "med", q[1]);
    p = put_kv(p, "mean", hist_mean(h));
    p = put_kv(p, "min", h->n ? h->min : 0);
    p = put_kv(p, "p10", q[0]);
    p = put_kv(p, "p90", q[2]);
    p = put_kv(p, "p99", q[3]);
    p = put_kv(p, "max", h->max);
    *p = 0;
    kprintf("%s\n", line);
}

/* A cycle count as a uint32 (a preempted vCPU can exceed 2^32). */
static inline uint32_t clamp32(uint64_t c)
{
    return c > 0xffffffffull ? 0xffffffffu : (uint32_t)c;
}

/* TSC cycles to ns as a 32.32 fixed-point multiply (set by ns_init). */
static uint64_t ns_per_cycle_fp;

static void ns_init(void)
{
    ns_per_cycle_fp = udiv64(1000000ull << 32, tsc_khz, 0);
}

static uint32_t cycles_to_ns(uint32_t c)
{
    return (uint32_t)(((uint64_t)c * (uint32_t)ns_per_cycle_fp +
                       (((uint64_t)c * (uint32_t)(ns_per_cycle_fp >> 32))
                        << 32)) >> 32);
}

/* ---- raw exits (no #GP bookkeeping inside timed regions) -------------- */

static inline void raw_wrmsr(uint32_t msr, uint64_t val)
{
    asm volatile("wrmsr" : : "c"(msr), "a"((uint32_t)val),
                 "d"((uint32_t)(val >> 32)) : "memory");
}

static inline uint64_t raw_rdmsr(uint32_t msr)
{
    uint32_t lo = 0, hi = 0;

    asm volatile("rdmsr" : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
    return ((uint64_t)hi << 32) | lo;
}

static inline void doorbell(struct pvsched_area *a, uint8_t req)
{
    pv_set_req(a, req);
    raw_wrmsr(PVSCHED_MSR, PVSCHED_MSR_DOORBELL);
}

/* WAIT <tag> cpu=0 and return the host's byte; 'q' ends the scenario. */
static uint8_t bench_step(const char *tag)
{
    uint8_t b;

    kprintf("WAIT %s cpu=0\n", tag);
    b = serial_getc();
    if (b == 'q') {
        done();
    }
    return b;
}

/* ---- bench-pio -------------------------------------------------------- */

/*
 * What timing itself costs here: an empty rdtsc pair (the floor of every
 * guest-timed number), and a 1M-iteration register loop, which tells
 * whether guest code runs natively (1-2 cycles per iteration) or under
 * the host's instruction emulator.
 */
static void calibrate(void)
{
    static struct hist h;
    uint32_t i, x = 0;
    uint64_t t0, t1;

    hist_reset(&h);
    for (i = 0; i < 1000; i++) {
        t0 = rdtsc();
        t1 = rdtsc();
        hist_add(&h, clamp32(t1 - t0));
    }
    t0 = rdtsc();
    for (i = 0; i < 1000000; i++) {
        asm volatile("add %1, %0" : "+r"(x) : "r"(i));
    }
    t1 = rdtsc();
    hist_print("calib-rdtsc-pair", &h);
    kprintf("BENCH calib-loop iters=1000000 cycles=%llu\n", t1 - t0);
}

static struct hist pio_hist;

/*
 * Per step (any byte but 'q'): loops=N port-0x80 writes, each timed on
 * its own (rdtsc before and after), so that the median is the cost of
 * an exit the host did not preempt; the total includes everything.
 * reg=1 registers every cpu first (req NONE: the hook runs on every
 * exit but never changes anything).
 */
void scenario_bench_pio(void)
{
    uint32_t loops = cmdline_u32("loops", 100000);
    bool reg = cmdline_u32("reg", 0);
    uint32_t rep, i;
    char what[48];

    if (reg) {
        require_feature();
        register_all();
    }
    calibrate();
    for (rep = 0;; rep++) {
        uint64_t t0, t1, start;

        bench_step("step");
        hist_reset(&pio_hist);
        start = rdtsc();
        for (i = 0; i < loops; i++) {
            t0 = rdtsc();
            outb(PIO_PORT, 0);
            t1 = rdtsc();
            hist_add(&pio_hist, clamp32(t1 - t0));
        }
        t1 = rdtsc();
        kprintf("BENCH pio-total rep=%u n=%u cycles=%llu reg=%u\n", rep,
                loops, t1 - start, reg ? 1 : 0);
        ksnprintf(what, sizeof(what), "pio rep=%u reg=%u", rep, reg ? 1 : 0);
        hist_print(what, &pio_hist);
    }
}

/* ---- bench-doorbell --------------------------------------------------- */

enum { DB_BOOST, DB_UNBOOST, DB_NONE, DB_MSR, DB_PIO, DB_KINDS };

static const char *const db_names[DB_KINDS] = {
    "doorbell-boost", "doorbell-unboost", "doorbell-none", "msr-0x35",
    "pio-0x80",
};

static struct hist db_hist[DB_KINDS];

/*
 * Per step: loops=N rounds on cpu 0, each timing one of every kind: a
 * doorbell that boosts, one that unboosts (each includes the host's
 * sched_setattr), one with req NONE (changes nothing), a read of
 * MSR_CORE_THREAD_COUNT (a plain userspace MSR exit through the same
 * filter) and a port-0x80 write (a plain userspace PIO exit).
 */
void scenario_bench_doorbell(void)
{
    uint32_t loops = cmdline_u32("loops", 10000);
    struct pvsched_area *a = &pv_area[0];
    uint32_t bad_boost, bad_unboost, gp0, i, k, rep;
    uint64_t t0, t1, bad_status;
    char what[48];

    require_feature();
    register_all();
    for (rep = 0;; rep++) {
        bench_step("step");
        bad_boost = bad_unboost = 0;
        bad_status = PVSCHED_STATUS_BOOSTED;
        for (k = 0; k < DB_KINDS; k++) {
            hist_reset(&db_hist[k]);
        }
        gp0 = gp_count[0];
        for (i = 0; i < loops; i++) {
            t0 = rdtsc();
            doorbell(a, PVSCHED_REQ_NONE);
            t1 = rdtsc();
            hist_add(&db_hist[DB_NONE], clamp32(t1 - t0));

            t0 = rdtsc();
            doorbell(a, PVSCHED_REQ_BOOST);
            t1 = rdtsc();
            hist_add(&db_hist[DB_BOOST], clamp32(t1 - t0));
            if (pv_status(a) != PVSCHED_STATUS_BOOSTED) {
                bad_boost++;
                bad_status = pv_status(a);
            }

            t0 = rdtsc();
            (void)raw_rdmsr(MSR_CORE_THREAD_COUNT);
            t1 = rdtsc();
            hist_add(&db_hist[DB_MSR], clamp32(t1 - t0));

            t0 = rdtsc();
            doorbell(a, PVSCHED_REQ_UNBOOST);
            t1 = rdtsc();
            hist_add(&db_hist[DB_UNBOOST], clamp32(t1 - t0));
            if (pv_status(a) != PVSCHED_STATUS_NORMAL) {
                bad_unboost++;
                bad_status = pv_status(a);
            }

            t0 = rdtsc();
            outb(PIO_PORT, 0);
            t1 = rdtsc();
            hist_add(&db_hist[DB_PIO], clamp32(t1 - t0));
        }
        check("no-gp", NO_CPU, gp_count[0] == gp0, "gp=%u",
              gp_count[0] - gp0);
        check("boost-applied", NO_CPU, !bad_boost,
              "%u of %u not BOOSTED (last: %s)", bad_boost, loops,
              pv_status_name(bad_status));
        check("unboost-applied", NO_CPU, !bad_unboost,
              "%u of %u not NORMAL (last: %s)", bad_unboost, loops,
              pv_status_name(bad_status));
        for (k = 0; k < DB_KINDS; k++) {
            ksnprintf(what, sizeof(what), "%s rep=%u", db_names[k], rep);
            hist_print(what, &db_hist[k]);
        }
    }
}

/* ---- interrupts: our own IDT ------------------------------------------ */

struct gate {
    uint16_t off_lo, sel;
    uint8_t zero, type;
    uint16_t off_hi;
} __attribute__((packed));

struct idt_desc {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed));

static struct gate bench_idt[NUM_VECTORS] __attribute__((aligned(8)));

/* Written by the handlers below. */
volatile uint64_t bench_timer_tsc;
volatile uint32_t bench_timer_count, bench_wake_count, bench_stray_count,
                  bench_spurious_count;

void bench_isr_timer(void);
void bench_isr_wake(void);
void bench_isr_stray(void);
void bench_isr_spurious(void);

/*
 * Entry: [eip, cs, eflags] on the stack (same privilege level). Exit:
 * clear IF in the saved eflags, then popf + ret as isr.S does.
 */
asm(
    "    .section .text\n"
    "    .globl bench_isr_timer, bench_isr_wake\n"
    "    .globl bench_isr_stray, bench_isr_spurious\n"
    "bench_isr_timer:\n"
    "    push %eax\n"
    "    push %edx\n"
    "    rdtsc\n"
    "    mov %eax, bench_timer_tsc\n"
    "    mov %edx, bench_timer_tsc+4\n"
    "    lock incl bench_timer_count\n"
    "    movl $0, " XSTR(LAPIC_BASE) " + " XSTR(LAPIC_EOI) "\n"
    "    jmp bench_isr_return\n"
    "bench_isr_wake:\n"
    "    push %eax\n"
    "    push %edx\n"
    "    lock incl bench_wake_count\n"
    "    movl $0, " XSTR(LAPIC_BASE) " + " XSTR(LAPIC_EOI) "\n"
    "    jmp bench_isr_return\n"
    "bench_isr_stray:\n"
    "    push %eax\n"
    "    push %edx\n"
    "    lock incl bench_stray_count\n"
    "    movl $0, " XSTR(LAPIC_BASE) " + " XSTR(LAPIC_EOI) "\n"
    "    jmp bench_isr_return\n"
    "bench_isr_spurious:\n"          /* no EOI for the spurious vector */
    "    push %eax\n"
    "    push %edx\n"
    "    lock incl bench_spurious_count\n"
    "bench_isr_return:\n"
    /* [edx, eax, eip, cs, eflags]: return with interrupts off */
    "    andl $~" XSTR(EFLAGS_IF) ", 16(%esp)\n"
    "    pop %edx\n"
    "    pop %eax\n"
    /* [eip, cs, eflags] -> [eflags, eip], then popf; ret */
    "    push %eax\n"
    "    mov 4(%esp), %eax\n"
    "    xchg %eax, 12(%esp)\n"
    "    mov %eax, 8(%esp)\n"
    "    pop %eax\n"
    "    add $4, %esp\n"
    "    popf\n"
    "    ret\n");

static void set_gate(unsigned vec, void (*fn)(void))
{
    uint32_t off = (uint32_t)fn;

    bench_idt[vec] = (struct gate) {
        .off_lo = off & 0xffff, .sel = GDT_CODE, .zero = 0,
        .type = GATE_INTR32, .off_hi = off >> 16,
    };
}

/* Once, on cpu 0: the guest's exception gates plus ours. */
static void bench_idt_build(void)
{
    struct idt_desc cur;
    unsigned v;

    /* idt.c's table: the 32 exception gates, nothing more. */
    asm volatile("sidt %0" : "=m"(cur));
    memcpy(bench_idt, (const void *)cur.base, 32 * sizeof(struct gate));
    for (v = 32; v < NUM_VECTORS; v++) {
        set_gate(v, bench_isr_stray);
    }
    set_gate(VEC_TIMER, bench_isr_timer);
    set_gate(VEC_WAKE, bench_isr_wake);
    set_gate(VEC_SPURIOUS, bench_isr_spurious);
}

static uint32_t lapic_read(uint32_t reg)
{
    return mmio_read32(LAPIC_BASE + reg);
}

static void lapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(LAPIC_BASE + reg, v);
}

/* On each CPU that takes interrupts: our IDT, its local APIC on. */
static void bench_irq_local_init(void)
{
    struct idt_desc d = { sizeof(bench_idt) - 1, (uint32_t)bench_idt };

    asm volatile("lidt %0" : : "m"(d));
    lapic_write(LAPIC_SVR, (lapic_read(LAPIC_SVR) & ~0xffu) | SVR_ENABLE |
                VEC_SPURIOUS);
    lapic_write(LAPIC_TPR, 0);
}

/* The 8259s: the firmware may leave the PIT's IRQ 0 unmasked. */
static void mask_pic(void)
{
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

/* Halt until *flag changes from old (interrupts on only inside sti;hlt). */
static void halt_until_changed(volatile uint32_t *flag, uint32_t old)
{
    while (*flag == old) {
        asm volatile("sti; hlt; cli" : : : "memory");
    }
}

/* ---- bench-wakeup ----------------------------------------------------- */

static struct hist wake_hist, armed_hist;
static uint32_t cdf_num[CDF_POINTS + 1], cdf_val[CDF_POINTS + 1];
static bool timer_deadline;
static uint64_t lapic_tmr_khz;

/* LAPIC timer ticks per ms at divide-by-1, measured against the TSC. */
static uint64_t calibrate_lapic_timer(void)
{
    uint64_t t0, t1;
    uint32_t c0, c1;

    lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
    lapic_write(LAPIC_TMR_DIV, TMR_DIV_1);
    lapic_write(LAPIC_TMR_INIT, 0xffffffffu);
    c0 = lapic_read(LAPIC_TMR_CUR);
    t0 = rdtsc();
    udelay(20000);
    c1 = lapic_read(LAPIC_TMR_CUR);
    t1 = rdtsc();
    lapic_write(LAPIC_TMR_INIT, 0);
    return udiv64((uint64_t)(c0 - c1) * tsc_khz, (uint32_t)(t1 - t0), 0);
}

static void timer_setup(const char *want)
{
    uint32_t a, b, c, d;

    cpuid(1, &a, &b, &c, &d);
    timer_deadline = (c & CPUID1_ECX_TSC_DEADLINE) && strcmp(want, "oneshot");
    if (!strcmp(want, "deadline") && !timer_deadline) {
        check_fatal("tsc-deadline", "CPUID.1:ECX[24] clear (add "
                    "tsc-deadline=on to -cpu, or timer=oneshot)");
    }
    if (timer_deadline) {
        lapic_write(LAPIC_LVT_TIMER, LVT_TSC_DEADLINE | VEC_TIMER);
        kprintf("INFO timer=deadline\n");
    } else {
        lapic_tmr_khz = calibrate_lapic_timer();
        lapic_write(LAPIC_LVT_TIMER, VEC_TIMER);     /* one-shot */
        kprintf("INFO timer=oneshot lapic_khz=%llu\n", lapic_tmr_khz);
    }
}

/* One-shot mode: LAPIC ticks per TSC cycle as 32.32 fixed point. */
static uint64_t lapic_per_cycle_fp;

/* Fire at TSC value `deadline` (one-shot: as near as the APIC allows). */
static void timer_arm(uint64_t deadline)
{
    uint64_t now;
    uint32_t delta;

    if (timer_deadline) {
        raw_wrmsr(MSR_TSC_DEADLINE, deadline);
        return;
    }
    now = rdtsc();
    delta = deadline > now ? clamp32(deadline - now) : 1;
    delta = (uint32_t)(((uint64_t)delta * (uint32_t)lapic_per_cycle_fp) >>
                       32) + delta * (uint32_t)(lapic_per_cycle_fp >> 32);
    lapic_write(LAPIC_TMR_INIT, delta ? delta : 1);
}

/* Up to this many intervals in us=<a>,<b>,... */
#define WAKE_MAX_INTERVALS  8

static unsigned parse_list(const char *list, uint32_t *out, unsigned max)
{
    char word[16];
    unsigned n = 0, len;

    while (*list && n < max) {
        for (len = 0; list[len] && list[len] != ','; len++) {
        }
        if (len < sizeof(word)) {
            memcpy(word, list, len);
            word[len] = 0;
            if (parse_u32(word, &out[n]) && out[n]) {
                n++;
            }
        }
        list += len;
        if (*list) {
            list++;
        }
    }
    return n;
}

enum wake_mode {
    WAKE_PLAIN,     /* no pvsched */
    WAKE_CYCLE,     /* BOOST before each halt, UNBOOST after each cycle */
    WAKE_RENEW,     /* boosted throughout, renewed before the bound */
};

static void wake_boost(struct pvsched_area *a, uint8_t req, uint32_t *bad,
                       uint64_t *bad_status)
{
    uint64_t want = req == PVSCHED_REQ_BOOST ? PVSCHED_STATUS_BOOSTED
                                              : PVSCHED_STATUS_NORMAL;

    doorbell(a, req);
    if (pv_status(a) != want) {
        (*bad)++;
        *bad_status = pv_status(a);
    }
}

/*
 * One run of the periodic timer-wakeup loop (cyclictest's shape) on cpu
 * 0: n cycles `us` apart, on absolute deadlines. A cycle's latency is
 * the timer handler's rdtsc - its deadline. A cycle whose deadline
 * passed before the loop could arm it (the vCPU did not run in time) is
 * an overrun: it starts at once and its latency is now - deadline, as
 * cyclictest counts it; periods that passed entirely are skipped.
 * wake_hist has every cycle, armed_hist only the armed ones (the timer
 * wake-up itself).
 *
 * The vCPU is boosted while its "RT work" is pending. WAKE_CYCLE:
 * doorbell BOOST before arming and halting, the work (work_us of
 * spinning) after the wake-up, doorbell UNBOOST; between that UNBOOST
 * and the next BOOST the vCPU competes as a normal thread. WAKE_RENEW:
 * BOOST once, and UNBOOST + BOOST only when the time run boosted since
 * the last BOOST (wake-up to end of work, as the guest sees it) reaches
 * renew_us, to stay within the host's CPU-time bound per boost. A BOOST
 * the host did not grant (THROTTLED: the bound tripped) is counted, not
 * a failure: it is the policy at work. The loop body is kept to a few
 * dozen instructions.
 */
static void wakeup_run(uint32_t us, uint32_t n, uint32_t work_us,
                       enum wake_mode mode, uint32_t renew_us, bool cdf)
{
    static const uint32_t num[] = { 500, 990, 999 };
    struct pvsched_area *a = &pv_area[0];
    uint32_t i, overruns = 0, early = 0, not_boosted = 0, not_unboosted = 0;
    uint32_t fired, q[3], aq[2], skipped = 0, renewals = 0;
    char line[400], *p;
    uint64_t period = us_to_tsc(us), work = us_to_tsc(work_us);
    uint64_t renew = us_to_tsc(renew_us), run = 0;
    uint64_t deadline, t_start, t_end, boosted = 0, now, wake;
    uint64_t bad_status = 0;
    unsigned k;

    hist_reset(&wake_hist);
    hist_reset(&armed_hist);
    t_start = rdtsc();
    deadline = t_start + period;
    if (mode == WAKE_RENEW) {
        wake_boost(a, PVSCHED_REQ_BOOST, &not_boosted, &bad_status);
    }
    for (i = 0; i < n; i++) {
        if (mode == WAKE_CYCLE) {
            wake_boost(a, PVSCHED_REQ_BOOST, &not_boosted, &bad_status);
        }
        now = rdtsc();
        if (deadline > now) {
            fired = bench_timer_count;
            timer_arm(deadline);
            halt_until_changed(&bench_timer_count, fired);
            wake = bench_timer_tsc;
            if (wake >= deadline) {
                hist_add(&armed_hist, clamp32(wake - deadline));
            } else {
                early++;                /* counted as 0 */
                hist_add(&armed_hist, 0);
            }
        } else {
            /* Too late to even arm it: this cycle starts now, late. */
            overruns++;
            wake = now;
        }
        hist_add(&wake_hist, wake >= deadline ? clamp32(wake - deadline) : 0);
        while (rdtsc() - wake < work) {
            barrier();
        }
        if (mode == WAKE_CYCLE) {
            wake_boost(a, PVSCHED_REQ_UNBOOST, &not_unboosted, &bad_status);
            boosted += rdtsc() - wake;
        } else if (mode == WAKE_RENEW) {
            now = rdtsc();
            boosted += now - wake;
            run += now - wake;
            if (run >= renew) {
                wake_boost(a, PVSCHED_REQ_UNBOOST, &not_unboosted,
                           &bad_status);
                wake_boost(a, PVSCHED_REQ_BOOST, &not_boosted, &bad_status);
                renewals++;
                run = 0;
            }
        }
        /* Absolute deadlines; periods that passed entirely are skipped. */
        deadline += period;
        while (deadline <= wake) {
            deadline += period;
            skipped++;
        }
    }
    if (mode == WAKE_RENEW) {
        wake_boost(a, PVSCHED_REQ_UNBOOST, &not_unboosted, &bad_status);
    }
    t_end = rdtsc();
    if (timer_deadline) {
        raw_wrmsr(MSR_TSC_DEADLINE, 0);
    } else {
        lapic_write(LAPIC_TMR_INIT, 0);
    }
    /* The host closes its measurement window (hog, CPU time) here. */
    bench_step("measured");

    hist_quantiles(&wake_hist, num, 3, 1000, q);
    hist_quantiles(&armed_hist, &num[1], 1, 1000, aq);
    p = put_str(line, "BENCH wakeup");
    p = put_kv(p, "us", us);
    p = put_kv(p, "n", n);
    p = put_kv(p, "wall_us", tsc_to_us(t_end - t_start));
    p = put_kv(p, "avg_ns", cycles_to_ns(hist_mean(&wake_hist)));
    p = put_kv(p, "min_ns", cycles_to_ns(wake_hist.min));
    p = put_kv(p, "p50_ns", cycles_to_ns(q[0]));
    p = put_kv(p, "p99_ns", cycles_to_ns(q[1]));
    p = put_kv(p, "p999_ns", cycles_to_ns(q[2]));
    p = put_kv(p, "max_ns", cycles_to_ns(wake_hist.max));
    *p = 0;
    kprintf("%s\n", line);             /* kprintf lines end at 255 */
    p = put_str(line, "BENCH wakeup-run");
    p = put_kv(p, "us", us);
    p = put_kv(p, "overruns", overruns);
    p = put_kv(p, "skipped", skipped);
    p = put_kv(p, "early", early);
    p = put_kv(p, "mode", mode);
    p = put_kv(p, "renewals", renewals);
    p = put_kv(p, "armed_p99_ns", cycles_to_ns(aq[0]));
    p = put_kv(p, "armed_max_ns", cycles_to_ns(armed_hist.max));
    p = put_kv(p, "boosted_run_us", tsc_to_us(boosted));
    p = put_kv(p, "not_boosted", not_boosted);
    p = put_kv(p, "not_unboosted", not_unboosted);
    p = put_str(p, " bad_status=");
    p = put_str(p, pv_status_name(bad_status));
    p = put_kv(p, "stray", bench_stray_count + bench_spurious_count);
    p = put_str(p, timer_deadline ? " timer=deadline" : " timer=oneshot");
    *p = 0;
    kprintf("%s\n", line);
    if (!cdf) {
        return;
    }
    /* The distribution, for a CDF: quantiles k/CDF_POINTS, in ns. */
    for (k = 0; k <= CDF_POINTS; k++) {
        cdf_num[k] = k;
    }
    hist_quantiles(&wake_hist, cdf_num, CDF_POINTS + 1, CDF_POINTS, cdf_val);
    for (k = 0; k <= CDF_POINTS; k += CDF_PER_LINE) {
        unsigned j;

        p = put_str(line, "BENCH wakeup-cdf");
        p = put_kv(p, "us", us);
        p = put_kv(p, "from", k);
        p = put_kv(p, "of", CDF_POINTS);
        p = put_str(p, " v=");
        for (j = k; j < k + CDF_PER_LINE && j <= CDF_POINTS; j++) {
            if (j > k) {
                *p++ = ',';
            }
            p = put_u32(p, cycles_to_ns(cdf_val[j]));
        }
        *p = 0;
        kprintf("%s\n", line);
    }
}

/*
 * The timer-wakeup benchmark. us=<a>,<b>,... (default 500,1000) are the
 * periods; per step the host's byte says what to run for ms=<n>
 * milliseconds: '0'+i period i without pvsched, or with boost=1 boosted
 * per cycle (WAKE_CYCLE); 'a'+i period i boosted throughout and renewed
 * every renew_us=<n> (default 1000) of boosted running (WAKE_RENEW,
 * needs boost=1). Then "WAIT measured" before the results are printed.
 * boost=1 registers cpu 0 (needs the feature); work_us=<n> (default
 * 20); timer=deadline|oneshot|auto (default auto: TSC deadline when
 * CPUID has it); cdf=0 leaves out the wakeup-cdf lines.
 */
void scenario_bench_wakeup(void)
{
    uint32_t intervals[WAKE_MAX_INTERVALS];
    unsigned nint = parse_list(cmdline_str("us", "500,1000"), intervals,
                               WAKE_MAX_INTERVALS);
    uint32_t ms = cmdline_u32("ms", 2000);
    uint32_t work_us = cmdline_u32("work_us", 20);
    uint32_t renew_us = cmdline_u32("renew_us", 1000);
    bool boost = cmdline_u32("boost", 0);
    bool cdf = cmdline_u32("cdf", 1);
    const char *timer = cmdline_str("timer", "auto");
    enum wake_mode mode;
    unsigned idx;
    uint64_t n;
    uint8_t b;

    if (!nint) {
        check_fatal("us", "no valid interval in us=");
    }
    if (boost) {
        require_feature();
        register_all();
    }
    ns_init();
    mask_pic();
    bench_idt_build();
    bench_irq_local_init();
    timer_setup(timer);
    if (!timer_deadline) {
        lapic_per_cycle_fp = udiv64(lapic_tmr_khz << 32, tsc_khz, 0);
    }
    for (;;) {
        b = bench_step("step");
        if (b >= 'a') {
            idx = b - 'a';
            mode = WAKE_RENEW;
        } else {
            idx = b - '0';
            mode = boost ? WAKE_CYCLE : WAKE_PLAIN;
        }
        if (idx >= nint || (mode == WAKE_RENEW && !boost)) {
            check_fatal("step", "byte 0x%x: interval %u of %u, boost=%u",
                        b, idx, nint, boost ? 1 : 0);
        }
        n = udiv64((uint64_t)ms * 1000, intervals[idx], 0);
        n = n < 1 ? 1 : n > 1000000 ? 1000000 : n;
        wakeup_run(intervals[idx], (uint32_t)n, work_us, mode, renew_us,
                   cdf);
    }
}

/* ---- bench-scale: up to BENCH_MAX_CPUS vCPUs on the doorbell ----------- */

static uint8_t bench_stacks[BENCH_MAX_CPUS][BENCH_STACK_SIZE]
    __attribute__((aligned(16)));
static struct pvsched_area bench_area[BENCH_MAX_CPUS];

struct scale_result {
    uint32_t ops, min, max;
    uint64_t sum;
    uint32_t bad;               /* status not what the request asked */
    uint32_t bad_status;        /* the last such status */
} __attribute__((aligned(64)));

static struct scale_result scale_res[BENCH_MAX_CPUS];
volatile uint32_t bench_boot_stack;        /* read by the trampoline */
static volatile uint32_t bench_boot_idx;
static volatile uint32_t ap_up[BENCH_MAX_CPUS];
static volatile uint32_t scale_gen, scale_done;
static volatile uint32_t scale_toggle;
static volatile uint64_t scale_end_tsc;
static unsigned scale_cpus;
static uint8_t bsp_apic;

void bench_ap_main(void);

/* smp.c's trampoline with our stack and entry point. */
extern const char bench_tramp_start[], bench_tramp_end[];
asm(
    "    .section .text\n"
    "    .code16\n"
    "    .globl bench_tramp_start, bench_tramp_end\n"
    "bench_tramp_start:\n"
    "    cli\n"
    "    cld\n"
    "    xor %ax, %ax\n"
    "    mov %ax, %ds\n"
    "    lgdtl (bench_tramp_gdt - bench_tramp_start + "
    XSTR(BENCH_TRAMPOLINE) ")\n"
    "    mov %cr0, %eax\n"
    "    or $1, %eax\n"
    "    mov %eax, %cr0\n"
    "    ljmpl $" XSTR(GDT_CODE) ", $(bench_tramp32 - bench_tramp_start + "
    XSTR(BENCH_TRAMPOLINE) ")\n"
    "    .code32\n"
    "bench_tramp32:\n"
    "    mov $" XSTR(GDT_DATA) ", %eax\n"
    "    mov %eax, %ds\n"
    "    mov %eax, %es\n"
    "    mov %eax, %fs\n"
    "    mov %eax, %gs\n"
    "    mov %eax, %ss\n"
    "    mov bench_boot_stack, %esp\n"
    "    mov $bench_ap_main, %eax\n"
    "    call *%eax\n"
    "1:  cli\n"
    "    hlt\n"
    "    jmp 1b\n"
    "    .align 4\n"
    "bench_tramp_gdt:\n"
    "    .word " XSTR(GDT_LIMIT) "\n"
    "    .long gdt\n"
    "bench_tramp_end:\n");

static void send_ipi(uint8_t apic_id, uint32_t icr)
{
    uint64_t end = rdtsc() + us_to_tsc(1000);

    while ((lapic_read(LAPIC_ICR_LO) & ICR_PENDING) && rdtsc() < end) {
        cpu_pause();
    }
    lapic_write(LAPIC_ICR_HI, (uint32_t)apic_id << 24);
    lapic_write(LAPIC_ICR_LO, icr);
}

/* One scale window on this CPU: doorbells until scale_end_tsc. */
static void scale_window(unsigned idx)
{
    struct pvsched_area *a = &bench_area[idx];
    struct scale_result r = { .min = 0xffffffffu };
    bool toggle = scale_toggle;
    uint64_t end = scale_end_tsc, t0, t1, st;
    uint8_t req = PVSCHED_REQ_NONE;
    uint32_t d;

    while ((t0 = rdtsc()) < end) {
        if (toggle) {
            req = req == PVSCHED_REQ_BOOST ? PVSCHED_REQ_UNBOOST
                                           : PVSCHED_REQ_BOOST;
        }
        doorbell(a, req);
        t1 = rdtsc();
        st = pv_status(a);
        if (st != (req == PVSCHED_REQ_BOOST ? PVSCHED_STATUS_BOOSTED
                                             : PVSCHED_STATUS_NORMAL)) {
            r.bad++;
            r.bad_status = (uint32_t)st;
        }
        r.ops++;
        r.sum += t1 - t0;
        d = clamp32(t1 - t0);
        r.min = d < r.min ? d : r.min;
        r.max = d > r.max ? d : r.max;
    }
    if (req == PVSCHED_REQ_BOOST) {
        doorbell(a, PVSCHED_REQ_UNBOOST);
    }
    scale_res[idx] = r;
}

/* Register bench_area[idx] on this CPU; true if the host took it. */
static bool scale_register(unsigned idx)
{
    struct pvsched_area *a = &bench_area[idx];

    pv_set_status(a, 0xa5);
    pv_set_req(a, PVSCHED_REQ_NONE);
    raw_wrmsr(PVSCHED_MSR, pv_gpa(a) | PVSCHED_MSR_ENABLE);
    return pv_status(a) == PVSCHED_STATUS_NORMAL;
}

void bench_ap_main(void)
{
    unsigned idx = bench_boot_idx;
    uint32_t gen = 0;

    bench_irq_local_init();
    ap_up[idx] = scale_register(idx) ? 1 : 2;
    for (;;) {
        halt_until_changed(&scale_gen, gen);
        gen = scale_gen;
        scale_window(idx);
        if (__sync_add_and_fetch(&scale_done, 1) == scale_cpus) {
            send_ipi(bsp_apic, ICR_FIXED | VEC_WAKE);
        }
    }
}

/* INIT-SIPI-SIPI into our trampoline, whatever the AP was doing. */
static bool scale_start_ap(unsigned idx, uint8_t apic_id)
{
    uint64_t end;
    int sipi;

    bench_boot_idx = idx;
    bench_boot_stack = (uint32_t)&bench_stacks[idx][BENCH_STACK_SIZE];
    ap_up[idx] = 0;
    __sync_synchronize();
    send_ipi(apic_id, ICR_INIT);
    udelay(10000);
    for (sipi = 0; sipi < 2; sipi++) {
        send_ipi(apic_id, ICR_STARTUP | (BENCH_TRAMPOLINE >> 12));
        /* Generous: on an overcommitted host the AP may wait for a CPU. */
        end = rdtsc() + us_to_tsc(sipi ? 10000000 : 10000);
        while (!ap_up[idx] && rdtsc() < end) {
            cpu_pause();
        }
        if (ap_up[idx]) {
            return ap_up[idx] == 1;
        }
    }
    return false;
}

/*
 * Every vCPU of the machine (up to BENCH_MAX_CPUS) registers, then per
 * step all of them ring the doorbell in a loop for ms=<n> milliseconds:
 * byte 'n' with req NONE (changes nothing), 't' with BOOST and UNBOOST
 * alternately (each a sched_setattr on the host). Between windows the
 * APs sleep in hlt and cpu 0 wakes them with an IPI, so only cpu 0 uses
 * host CPU outside the windows. "WAIT measured" ends each window,
 * before the results are printed.
 */
void scenario_bench_scale(void)
{
    uint32_t ms = cmdline_u32("ms", 1000);
    uint8_t ids[MADT_MAX];
    unsigned n = acpi_cpu_apic_ids(ids, MADT_MAX), i, idx = 1;

    require_feature();
    bsp_apic = lapic_read(LAPIC_ID) >> 24;
    mask_pic();
    bench_idt_build();
    bench_irq_local_init();
    if (!check("scale-register", 0, scale_register(0), "status=%s",
               pv_status_name(pv_status(&bench_area[0])))) {
        done();
    }
    memcpy((void *)BENCH_TRAMPOLINE, bench_tramp_start,
           bench_tramp_end - bench_tramp_start);
    for (i = 0; i < n && idx < BENCH_MAX_CPUS; i++) {
        if (ids[i] == bsp_apic) {
            continue;
        }
        if (!check("scale-ap", idx, scale_start_ap(idx, ids[i]),
                   "apic=%u up=%u", ids[i], ap_up[idx])) {
            done();
        }
        idx++;
    }
    scale_cpus = idx;
    kprintf("INFO scale cpus=%u madt=%u\n", scale_cpus, n);

    for (;;) {
        uint8_t b = bench_step("step");
        const char *kind = b == 't' ? "toggle" : "none";
        uint64_t t0, t1, ops = 0, sum = 0;
        uint32_t min = 0xffffffffu, max = 0, bad = 0, old, bad_status = 0;
        uint32_t ops_min = 0xffffffffu, ops_max = 0;

        scale_toggle = b == 't';
        scale_done = 0;
        t0 = rdtsc();
        scale_end_tsc = t0 + ms_to_tsc(ms);
        __sync_synchronize();
        scale_gen++;
        if (scale_cpus > 1) {
            send_ipi(0, ICR_FIXED | ICR_ALL_BUT_SELF | VEC_WAKE);
        }
        scale_window(0);
        __sync_add_and_fetch(&scale_done, 1);
        /* The last AP to finish sends us VEC_WAKE; recheck on any wake. */
        while (scale_done != scale_cpus) {
            old = bench_wake_count;
            if (scale_done != scale_cpus) {
                halt_until_changed(&bench_wake_count, old);
            }
        }
        t1 = rdtsc();
        bench_step("measured");
        for (i = 0; i < scale_cpus; i++) {
            const struct scale_result *r = &scale_res[i];

            ops += r->ops;
            sum += r->sum;
            bad += r->bad;
            bad_status = r->bad ? r->bad_status : bad_status;
            min = r->min < min ? r->min : min;
            max = r->max > max ? r->max : max;
            ops_min = r->ops < ops_min ? r->ops : ops_min;
            ops_max = r->ops > ops_max ? r->ops : ops_max;
        }
        kprintf("BENCH scale kind=%s cpus=%u ops=%llu window_us=%u "
                "mean_op=%u min_op=%u max_op=%u ops_min=%u ops_max=%u\n",
                kind, scale_cpus, ops, tsc_to_us(t1 - t0),
                ops ? (uint32_t)udiv64(sum, (uint32_t)ops, 0) : 0, min, max,
                ops_min, ops_max);
        check("scale-status", NO_CPU, !bad, "%u of %llu doorbells left "
              "another status than asked (last: %s)", bad, ops,
              pv_status_name(bad_status));
    }
}
