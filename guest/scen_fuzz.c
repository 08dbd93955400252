/*
 * fuzz: seeded random MSR traffic on every CPU at once (PROTOCOL.md).
 *
 * Each CPU fuzzes its own MSR and keeps its own model of it, from the
 * rules of DESIGN.md section 4: what the MSR must read back and which area
 * is registered. Every write is followed by a read-back that is compared
 * with the model; anything else is a mismatch, counted and reported.
 *
 * Valid enables only ever name an area in the CPU's own page below, so the
 * host never writes into memory the guest uses for anything else. Each
 * CPU draws from its own generator, seeded from (seed, cpu): the inputs a
 * CPU tries do not depend on how the CPUs interleave, so a seed replays.
 */
#include "scenarios.h"
#include "check.h"
#include "cmdline.h"
#include "idt.h"
#include "io.h"
#include "lib.h"
#include "print.h"
#include "pvsched.h"
#include "smp.h"
#include "tsc.h"

#define FUZZ_SLOTS      (4096 / PVSCHED_AREA_SIZE)
#define DEFAULT_OPS     100000u
#define DEFAULT_RAM_MB  128u            /* what the tests give with -m */
#define MMIO_LOW        0xfec00000u     /* IOAPIC: lowest fixed MMIO */
#define LAPIC_BASE      0xfee00000u
#define IOAPIC_BASE     0xfec00000u
#define HPET_BASE       0xfed00000u
#define BIOS_ROM_BASE   0xfffc0000u     /* 256 KiB SeaBIOS image */
#define STATUS_SENTINEL 0xa5a5a5a5a5a5a5a5ull
/* The host test bounds the run; this only catches a CPU that never ends. */
#define FUZZ_WAIT_MS    (3600u * 1000u)

/* One page per CPU: its 64 areas, any of which it may register. */
static struct pvsched_area fuzz_page[MAX_CPUS][FUZZ_SLOTS]
    __attribute__((aligned(4096)));

/* What one op is; the invalid kinds come first. */
enum fuzz_kind {
    K_RESERVED,     /* own area | ENABLE | some of bits 5:1 */
    K_BIT0_CLEAR,   /* neither 0 nor the doorbell, enable bit clear */
    K_BEYOND_RAM,   /* aligned, between the end of RAM and the MMIO */
    K_ABOVE_4G,     /* aligned, above 4 GiB (no RAM there with -m 128M) */
    K_LAPIC,
    K_IOAPIC,
    K_HPET,
    K_ROM,
    K_PAGE_CROSS,   /* starts in the last 64 bytes of the page */
    K_UNALIGNED,    /* own area + a multiple of 8 */
    K_RANDOM,       /* any 64-bit value that the rules make invalid */
    N_INVALID,
    K_ENABLE = N_INVALID,
    K_DISABLE,
    K_DOORBELL,
    K_READ,
    K_SCRIBBLE,     /* random bytes into the area, status included */
    N_KINDS
};

static const char *const kind_names[N_KINDS] = {
    "reserved", "bit0-clear", "beyond-ram", "above-4g", "lapic", "ioapic",
    "hpet", "rom", "page-cross", "unaligned", "random", "enable", "disable",
    "doorbell", "read", "scribble",
};

struct fuzz_cpu {
    uint32_t rng;
    uint32_t ops;                   /* to do */
    uint32_t op;                    /* the one being done */
    uint64_t msr;                   /* model: what the MSR reads back */
    struct pvsched_area *area;      /* model: registered area or NULL */
    /*
     * We overwrote the registered area's status: the host writes it only
     * when the state changes, so until the next enable or disable it may
     * hold anything.
     */
    bool scribbled;
    uint32_t n[N_KINDS];
    uint32_t writes, reads, gp, mismatches;
    uint32_t us;
    char first[120];                /* the first mismatch */
} __attribute__((aligned(64)));

static struct fuzz_cpu fuzz[MAX_CPUS];
static uint32_t ram_end;

/* ---- the generator: xorshift32, one per CPU ---- */

static uint32_t rnd(struct fuzz_cpu *f)
{
    uint32_t x = f->rng;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return f->rng = x;
}

static uint64_t rnd64(struct fuzz_cpu *f)
{
    uint64_t hi = rnd(f);

    return hi << 32 | rnd(f);
}

/* murmur3's finaliser: nearby seeds and cpus give unrelated streams. */
static uint32_t seed_mix(uint32_t seed, unsigned cpu)
{
    uint32_t h = seed ^ (0x9e3779b9u * (cpu + 1));

    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h ? h : 1;               /* xorshift's one fixed point */
}

/* NONE, UNBOOST, BOOST, or a value the ABI does not define. */
static uint8_t rnd_req(struct fuzz_cpu *f)
{
    uint32_t r = rnd(f);

    return (r & 3) == 3 ? (uint8_t)(r >> 8) : (uint8_t)(r & 3);
}

/* ---- the model ---- */

static void mismatch(struct fuzz_cpu *f, unsigned kind, uint64_t val,
                     const char *what, uint64_t got)
{
    if (!f->mismatches++) {
        ksnprintf(f->first, sizeof(f->first),
                  "op=%u kind=%s val=%llx %s=%llx model=%llx",
                  f->op, kind_names[kind], val, what, got,
                  f->msr);
    }
}

static bool legal_status(uint64_t s)
{
    return s == PVSCHED_STATUS_NORMAL || s == PVSCHED_STATUS_BOOSTED ||
           s == PVSCHED_STATUS_THROTTLED;
}

/*
 * The registered area's status after an op: a state the host can be in
 * while enabled, and the one a request asked for (THROTTLED may always
 * come instead: the bound trips on its own).
 */
static bool status_ok(uint64_t s, unsigned kind, uint8_t req)
{
    if (!legal_status(s)) {
        return false;
    }
    if (kind == K_ENABLE) {
        /*
         * NORMAL; the read-back's exit may already have applied a BOOST,
         * and the bound may have tripped on it since (a nested guest's
         * exit under ASan costs milliseconds of the vCPU's CPU time).
         */
        return s == PVSCHED_STATUS_NORMAL ||
               (req == PVSCHED_REQ_BOOST && s != PVSCHED_STATUS_DISABLED);
    }
    if (kind == K_DOORBELL && req == PVSCHED_REQ_BOOST) {
        return s != PVSCHED_STATUS_NORMAL;
    }
    if (kind == K_DOORBELL && req == PVSCHED_REQ_UNBOOST) {
        return s != PVSCHED_STATUS_BOOSTED;
    }
    return true;
}

/* Read the MSR back and compare the outcome of the op with the model. */
static void verify(struct fuzz_cpu *f, unsigned kind, uint64_t val, bool gp,
                   uint8_t req)
{
    bool want_gp = kind < N_INVALID;
    uint64_t rd = 0;

    if (gp != want_gp) {
        mismatch(f, kind, val, "gp", gp);
    }
    f->reads++;
    if (pv_read(&rd)) {
        mismatch(f, kind, val, "read-gp", 1);
    } else if (rd != f->msr) {
        mismatch(f, kind, val, "readback", rd);
    }
    if (f->area && !f->scribbled &&
        !status_ok(pv_status(f->area), kind, req)) {
        mismatch(f, kind, val, "status", pv_status(f->area));
    }
}

/* ---- the ops ---- */

static struct pvsched_area *rnd_slot(struct fuzz_cpu *f, unsigned cpu)
{
    return &fuzz_page[cpu][rnd(f) & (FUZZ_SLOTS - 1)];
}

/* A value DESIGN section 4 says must #GP, of the given kind. */
static uint64_t invalid_value(struct fuzz_cpu *f, unsigned cpu,
                              unsigned kind)
{
    uint64_t gpa = pv_gpa(rnd_slot(f, cpu)), v;
    uint32_t r = rnd(f);

    switch (kind) {
    case K_RESERVED:
        return gpa | PVSCHED_MSR_ENABLE | (uint64_t)(1 + r % 31) << 1;
    case K_BIT0_CLEAR:
        /* Half the time the likeliest guest bug: the GPA alone. */
        v = (r & 1) ? gpa : rnd64(f) & ~PVSCHED_MSR_ENABLE;
        return v ? v : gpa;
    case K_BEYOND_RAM:
        return (ram_end + (uint64_t)(r % ((MMIO_LOW - ram_end) >> 6)) * 64) |
               PVSCHED_MSR_ENABLE;
    case K_ABOVE_4G:
        v = (uint64_t)(rnd(f) | 1) << 32 | (r & ~0x3fu);
        return v | PVSCHED_MSR_ENABLE;
    case K_LAPIC:
        return (LAPIC_BASE + (r & 0xfc0)) | PVSCHED_MSR_ENABLE;
    case K_IOAPIC:
        return (IOAPIC_BASE + (r & 0xfc0)) | PVSCHED_MSR_ENABLE;
    case K_HPET:
        return (HPET_BASE + (r & 0x3c0)) | PVSCHED_MSR_ENABLE;
    case K_ROM:
        return (BIOS_ROM_BASE + (r & 0x3ffc0)) | PVSCHED_MSR_ENABLE;
    case K_PAGE_CROSS:
        /* Bits 5:1 cannot all be zero here: 64 bytes never cross a page. */
        return (pv_gpa(fuzz_page[cpu]) + 0xfc0 + 2 * (1 + r % 31)) |
               PVSCHED_MSR_ENABLE;
    case K_UNALIGNED:
        return (gpa + 8 * (1 + r % 7)) | PVSCHED_MSR_ENABLE;
    default:
        v = rnd64(f);
        if (v == PVSCHED_MSR_DISABLE || v == PVSCHED_MSR_DOORBELL) {
            return v ^ 0x2;
        }
        /* Well-formed below 4 GiB could be RAM: move it above. */
        if ((v & PVSCHED_MSR_ENABLE) && !(v & PVSCHED_MSR_RESERVED_MASK) &&
            !(v >> 32)) {
            v |= 1ull << 40;
        }
        return v;
    }
}

static void op_invalid(struct fuzz_cpu *f, unsigned cpu, unsigned kind)
{
    uint64_t v = invalid_value(f, cpu, kind);

    f->writes++;
    verify(f, kind, v, pv_write(v), PVSCHED_REQ_NONE);
}

static void op_enable(struct fuzz_cpu *f, unsigned cpu)
{
    struct pvsched_area *a = rnd_slot(f, cpu);
    uint64_t v = pv_gpa(a) | PVSCHED_MSR_ENABLE;
    uint8_t req = rnd_req(f);
    bool gp;

    pv_set_req(a, req);
    pv_set_status(a, STATUS_SENTINEL);  /* a missing host write shows */
    f->writes++;
    gp = pv_write(v);
    f->msr = v;
    f->area = a;
    f->scribbled = false;
    verify(f, K_ENABLE, v, gp, req);
}

static void op_disable(struct fuzz_cpu *f)
{
    struct pvsched_area *old = f->area;
    bool gp;

    f->writes++;
    gp = pv_write(PVSCHED_MSR_DISABLE);
    f->msr = 0;
    f->area = 0;
    f->scribbled = false;
    verify(f, K_DISABLE, PVSCHED_MSR_DISABLE, gp, 0);
    /* The host says DISABLED in the area it lets go of, and then no more. */
    if (old && pv_status(old) != PVSCHED_STATUS_DISABLED) {
        mismatch(f, K_DISABLE, PVSCHED_MSR_DISABLE, "old-status",
                 pv_status(old));
    }
}

static void op_doorbell(struct fuzz_cpu *f, unsigned cpu)
{
    uint8_t req = rnd_req(f);

    pv_set_req(f->area ? f->area : rnd_slot(f, cpu), req);
    f->writes++;
    verify(f, K_DOORBELL, PVSCHED_MSR_DOORBELL,
           pv_write(PVSCHED_MSR_DOORBELL), req);
}

static void op_read(struct fuzz_cpu *f)
{
    uint64_t rd = 0;

    f->reads++;
    if (pv_read(&rd)) {
        mismatch(f, K_READ, 0, "read-gp", 1);
    } else if (rd != f->msr) {
        mismatch(f, K_READ, 0, "readback", rd);
    }
}

/* 1 to 4 random bytes anywhere in the area, the host's fields included. */
static void op_scribble(struct fuzz_cpu *f, unsigned cpu)
{
    struct pvsched_area *a = f->area ? f->area : rnd_slot(f, cpu);
    uint32_t r = rnd(f);
    unsigned i;

    for (i = 0; i <= (r & 3); i++) {
        uint32_t b = rnd(f);
        unsigned off = b & (PVSCHED_AREA_SIZE - 1);

        ((volatile uint8_t *)a)[off] = b >> 8;
        if (a == f->area && off < sizeof(a->boost_status)) {
            f->scribbled = true;
        }
    }
}

/* One random op; the weights are out of 64. */
static void fuzz_op(struct fuzz_cpu *f, unsigned cpu)
{
    uint32_t r = rnd(f) & 63;
    unsigned kind;

    if (r < 28) {
        kind = rnd(f) % N_INVALID;
        op_invalid(f, cpu, kind);
    } else if (r < 36) {
        kind = K_ENABLE;
        op_enable(f, cpu);
    } else if (r < 40) {
        kind = K_DISABLE;
        op_disable(f);
    } else if (r < 50) {
        kind = K_DOORBELL;
        op_doorbell(f, cpu);
    } else if (r < 56) {
        kind = K_READ;
        op_read(f);
    } else {
        kind = K_SCRIBBLE;
        op_scribble(f, cpu);
    }
    f->n[kind]++;
}

/* Runs on every CPU at once. */
static void fuzz_cpu_run(void *unused)
{
    unsigned cpu = this_cpu();
    struct fuzz_cpu *f = &fuzz[cpu];
    uint32_t gp0 = gp_count[cpu], i;
    uint64_t t0 = rdtsc();

    for (i = 0; i < f->ops; i++) {
        f->op = i;
        fuzz_op(f, cpu);
    }
    f->gp = gp_count[cpu] - gp0;
    f->us = tsc_to_us(rdtsc() - t0);
    (void)unused;
}

/* The counts, the model's verdict and the guest's view, for the host. */
static void fuzz_report(unsigned cpu)
{
    const struct fuzz_cpu *f = &fuzz[cpu];
    uint32_t invalid = 0;
    unsigned k;

    for (k = 0; k < N_INVALID; k++) {
        invalid += f->n[k];
    }
    kprintf("INFO fuzz cpu=%u reserved=%u bit0-clear=%u beyond-ram=%u "
            "above-4g=%u lapic=%u ioapic=%u hpet=%u rom=%u page-cross=%u "
            "unaligned=%u random=%u enable=%u disable=%u doorbell=%u "
            "read=%u scribble=%u\n", cpu, f->n[K_RESERVED],
            f->n[K_BIT0_CLEAR], f->n[K_BEYOND_RAM], f->n[K_ABOVE_4G],
            f->n[K_LAPIC], f->n[K_IOAPIC], f->n[K_HPET], f->n[K_ROM],
            f->n[K_PAGE_CROSS], f->n[K_UNALIGNED], f->n[K_RANDOM],
            f->n[K_ENABLE], f->n[K_DISABLE], f->n[K_DOORBELL],
            f->n[K_READ], f->n[K_SCRIBBLE]);
    kprintf("FUZZ cpu=%u ops=%u writes=%u reads=%u invalid=%u gp=%u "
            "mismatches=%u msr=%llx registered=%d area=%llx us=%u\n", cpu,
            f->ops, f->writes, f->reads, invalid, f->gp, f->mismatches,
            f->msr, f->area ? 1 : 0, f->area ? pv_gpa(f->area) : 0ull,
            f->us);
    /* Every #GP is an invalid write's: valid writes and reads never. */
    check("fuzz-model", cpu, !f->mismatches && f->gp == invalid,
          "mismatches=%u gp=%u invalid=%u first: %s", f->mismatches, f->gp,
          invalid, f->mismatches ? f->first : "-");
}

void scenario_fuzz(void)
{
    const char *s = cmdline_str("seed", 0);
    uint32_t seed, ops = cmdline_u32("ops", DEFAULT_OPS), per;
    uint32_t ram_mb = cmdline_u32("ram_mb", DEFAULT_RAM_MB);
    unsigned cpu;

    require_feature();
    if (!s || !parse_u32(s, &seed)) {
        seed = (uint32_t)rdtsc();
    }
    /* Above ~3.5 GiB QEMU moves RAM past 4 GiB: the model would be wrong. */
    if (!ram_mb || ram_mb > 3072) {
        check_fatal("fuzz-args", "ram_mb=%u: 1..3072 only", ram_mb);
    }
    ram_end = ram_mb << 20;
    per = (ops + ncpus - 1) / ncpus;
    kprintf("INFO fuzz seed=%u ops=%u cpus=%u ops_per_cpu=%u ram_mb=%u\n",
            seed, per * ncpus, ncpus, per, ram_end >> 20);
    for (cpu = 0; cpu < ncpus; cpu++) {
        fuzz[cpu].rng = seed_mix(seed, cpu);
        fuzz[cpu].ops = per;
    }
    for (cpu = 1; cpu < ncpus; cpu++) {
        run_on_async(cpu, fuzz_cpu_run, 0);
    }
    fuzz_cpu_run(0);
    for (cpu = 1; cpu < ncpus; cpu++) {
        run_wait(cpu, FUZZ_WAIT_MS);
    }
    for (cpu = 0; cpu < ncpus; cpu++) {
        fuzz_report(cpu);
    }
    /* QEMU is still up: the host compares query-pvsched with FUZZ lines. */
    wait_point("fuzz-done", 0);
    done();
}
