/*
 * libFuzzer target for everything a guest controls in pvsched: the MSR
 * values it writes, the bytes of guest RAM (its areas included), and
 * their interleaving with doorbells, exits, CPU time, resets, migration,
 * vCPU hot-unplug, policy changes and host permission changes.
 *
 * The real hw/pvsched/vcpu.c, vcpu-state.c and guest-area.c run with the
 * real QEMU timers, threads and bottom halves; the scheduling backend,
 * the clocks, the memory map, the CPU list and the policy object are
 * fakes, as in tests/unit/test-pvsched-vcpu.c.  The fake kernel models
 * sched_setattr()'s permission rules; the fake memory map has every kind
 * of region an area must not be in.  After every step the harness checks
 * what the guest and the host can see against an independent model and
 * aborts on the first difference, so a finding is a broken invariant,
 * not only a crash.  Built and run by scripts/fuzz.sh.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/main-loop.h"
#include "qemu/thread.h"
#include "block/aio.h"
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include "hw/core/cpu.h"
#include "pvsched/vcpu.h"

#define US 1000LL
#define MS (1000 * US)
/* vcpu.c's BOUND_POLL_MIN_NS: how far a running vCPU may overrun. */
#define BOUND_SLACK_NS (100 * US)
/* The fake kernel's tick: CPU-time timers fire on one. */
#define TICK_NS (1 * MS)

/* The fake memory map: one region of each kind an area may meet. */
enum { K_RAM, K_ROM, K_ROMD, K_MMIO, K_RAMDEV, K_DISCARD, K_NOBLOCK };

typedef struct FakeRegion {
    MemoryRegion mr;            /* first: the MemoryRegion * is ours */
    uint64_t base, size;
    int kind;
    int refs;
} FakeRegion;

/* Small: the harness compares all of guest RAM around every host step. */
static FakeRegion regions[] = {
    { .base = 0x000, .size = 0x200, .kind = K_RAM },
    { .base = 0x200, .size = 0x200, .kind = K_RAM },
    { .base = 0x400, .size = 0x80, .kind = K_ROM },
    { .base = 0x480, .size = 0x80, .kind = K_ROMD },
    { .base = 0x500, .size = 0x80, .kind = K_MMIO },
    { .base = 0x580, .size = 0x80, .kind = K_RAMDEV },
    { .base = 0x600, .size = 0x100, .kind = K_DISCARD },   /* half plugged */
    { .base = 0x700, .size = 0x60, .kind = K_RAM },        /* then a hole */
    { .base = 0x780, .size = 0x80, .kind = K_NOBLOCK },
};
#define NR_REGIONS ARRAY_SIZE(regions)
#define RAM_END 0x800
#define DISCARD_PLUGGED 0x80

static uint8_t ram[RAM_END] __attribute__((aligned(64)));
static uint8_t ram_before[RAM_END];
static MemoryRegion system_memory;
static RamDiscardManager *fake_rdm = (RamDiscardManager *)&fake_rdm;

/* What the host wrote through memory_region_set_dirty() in one step. */
static struct {
    uint64_t gpa[8];
    uint64_t size[8];
    int n;
} dirty;

/* A main-loop timer's expiry (real time) as last seen, and in fake time. */
typedef struct FakeDue {
    int64_t seen;
    int64_t due_ns;
} FakeDue;

/* The fake world: one vCPU thread, its clocks, its CPU, the host. */
enum { PERM_CAP, PERM_RLIMIT, PERM_NO_RT, PERM_DENIED, PERM_NR };

static struct {
    PvschedSchedAttr attr;      /* the vCPU thread's real attributes */
    int perm;
    int64_t cpu_ns;             /* the vCPU thread's CPU clock */
    int64_t now_ns;
    FakeDue bound_due;          /* the main loop's timers, */
    FakeDue cooldown_due;       /* in fake time, */
    int64_t real_mark;          /* armed after this real time */
    int64_t excused_bound;      /* the boost whose bound... */
    int64_t excused_ns;         /* ...may overrun by this much more */
    int64_t backstop_at;        /* CPU-time timer's expiry; 0: disarmed */
    bool stalled;               /* the main loop does not run */
    int64_t stalled_bound;      /* a boost the stall left to the backstop */
    int kicks;
    int warnings;               /* since the thread started */
    bool guest_wrote_status;    /* since the host last published it */
    bool off_thread;            /* reset, restore: no backend call */
    bool outside;               /* changed by chrt since pvsched set it */
    bool forgotten;             /* ...and the host said so since */
    PvschedSchedAttr pre_boost; /* the thread's attributes at its boost */
    bool strict;                /* the unboost must give them back */
    PvschedBoostConfig cfg;
} w;

static CPUState fake_cpu;
static PvschedVcpu vcpu;
static uint64_t msr;            /* the CPU's CPUX86State.pvsched_msr */

#define CHECK(cond) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "pvsched-fuzz: invariant broken: %s (%s:%d)\n", \
                    #cond, __FILE__, __LINE__); \
            abort(); \
        } \
    } while (0)

/* ---- the fake kernel: sched_setattr() on the calling thread ---- */

static bool is_rt(uint32_t policy)
{
    return policy == SCHED_FIFO || policy == SCHED_RR ||
           policy == PVSCHED_SCHED_DEADLINE;
}

/*
 * A boost, then its unboost: the unboost gives back the attributes the
 * thread had at the boost (flags aside: RESET_ON_FORK may stay).  Not
 * required when chrt changed the thread since pvsched last read it and
 * the host has not said so: that unboost gives back what was read before
 * (docs/system/pvsched.rst).  The fake kernel refuses no give-back that
 * unboost's fallback to plain SCHED_OTHER would then get through.
 */
static void check_give_back(const PvschedSchedAttr *attr)
{
    if (is_rt(attr->policy) && !is_rt(w.attr.policy)) {
        w.pre_boost = w.attr;
        w.strict = !w.outside || w.forgotten;
    } else if (!is_rt(attr->policy) && is_rt(w.attr.policy) && w.strict) {
        CHECK(attr->policy == w.pre_boost.policy &&
              attr->nice == w.pre_boost.nice &&
              attr->priority == w.pre_boost.priority);
    }
}

static int fake_get(PvschedSchedAttr *attr, void *opaque)
{
    CHECK(!w.off_thread);
    *attr = w.attr;
    return 0;
}

/*
 * Unprivileged (RLIMIT_RTPRIO 10): no DEADLINE, no priority above the
 * limit, and RESET_ON_FORK cannot be cleared.  A cgroup without
 * real-time runtime refuses every real-time class; a sandbox, everything.
 */
static int fake_set(const PvschedSchedAttr *attr, void *opaque)
{
    /* Off the vCPU thread, this would change another thread. */
    CHECK(!w.off_thread);
    switch (w.perm) {
    case PERM_RLIMIT:
        if (attr->policy == PVSCHED_SCHED_DEADLINE ||
            (is_rt(attr->policy) && attr->priority > 10) ||
            ((w.attr.flags & PVSCHED_FLAG_RESET_ON_FORK) &&
             !(attr->flags & PVSCHED_FLAG_RESET_ON_FORK))) {
            return -EPERM;
        }
        break;
    case PERM_NO_RT:
        if (is_rt(attr->policy)) {
            return -EPERM;
        }
        break;
    case PERM_DENIED:
        return -EPERM;
    }
    check_give_back(attr);
    w.attr = *attr;
    w.outside = false;
    return 0;
}

static int64_t fake_thread_cpu_ns(void *opaque)
{
    CHECK(!w.off_thread);
    return w.cpu_ns;
}

static int64_t fake_now_ns(void *opaque)
{
    return w.now_ns;
}

static int64_t fake_clock_cpu_ns(clockid_t clock, void *opaque)
{
    return w.cpu_ns;
}

static int fake_cpu_timer_create(timer_t *timer, void *opaque)
{
    CHECK(!w.off_thread);
    *timer = (timer_t)&w.backstop_at;
    return 0;
}

static int fake_cpu_timer_arm(timer_t timer, int64_t ns, void *opaque)
{
    CHECK(timer == (timer_t)&w.backstop_at && ns >= 0);
    w.backstop_at = ns ? w.cpu_ns + ns : 0;
    return 0;
}

static void fake_cpu_timer_delete(timer_t timer, void *opaque)
{
    CHECK(timer == (timer_t)&w.backstop_at);
    w.backstop_at = 0;
}

const PvschedBackend pvsched_host_backend = {
    .get = fake_get,
    .set = fake_set,
    .thread_cpu_ns = fake_thread_cpu_ns,
    .now_ns = fake_now_ns,
    .clock_cpu_ns = fake_clock_cpu_ns,
    .cpu_timer_create = fake_cpu_timer_create,
    .cpu_timer_arm = fake_cpu_timer_arm,
    .cpu_timer_delete = fake_cpu_timer_delete,
};

const char *pvsched_policy_name(uint32_t policy)
{
    return is_rt(policy) ? "rt" : "other";
}

void pvsched_policy_get_config(PvschedPolicy *pol, PvschedBoostConfig *cfg)
{
    *cfg = w.cfg;
}

CPUState *qemu_get_cpu(int index)
{
    return index == 0 ? &fake_cpu : NULL;
}

void qemu_cpu_kick(CPUState *cpu)
{
    CHECK(cpu == &fake_cpu);
    w.kicks++;
}

/* warn_report() and friends: counted, not printed 10^7 times. */
int error_vprintf(const char *fmt, va_list ap)
{
    if (!strncmp(fmt, "warning", 7)) {
        w.warnings++;
    }
    return 0;
}

int error_vprintf_unless_qmp(const char *fmt, va_list ap)
{
    return error_vprintf(fmt, ap);
}

/* ---- the fake memory API that guest-area.c uses ---- */

static FakeRegion *region_of(MemoryRegion *mr)
{
    return container_of(mr, FakeRegion, mr);
}

static FakeRegion *region_at(uint64_t gpa)
{
    for (size_t i = 0; i < NR_REGIONS; i++) {
        if (gpa >= regions[i].base && gpa - regions[i].base < regions[i].size) {
            return &regions[i];
        }
    }
    return NULL;
}

MemoryRegion *get_system_memory(void)
{
    return &system_memory;
}

MemoryRegionSection memory_region_find(MemoryRegion *mr, hwaddr addr,
                                       uint64_t size)
{
    FakeRegion *r = region_at(addr);
    uint64_t off;

    CHECK(mr == &system_memory);
    if (!r) {
        return (MemoryRegionSection) { .mr = NULL };
    }
    r->refs++;
    off = addr - r->base;
    return (MemoryRegionSection) {
        .mr = &r->mr,
        .offset_within_region = off,
        .offset_within_address_space = addr,
        .size = int128_make64(MIN(size, r->size - off)),
    };
}

void memory_region_unref(MemoryRegion *mr)
{
    FakeRegion *r = region_of(mr);

    CHECK(r->refs > 0);
    r->refs--;
}

bool memory_region_is_ram_device(MemoryRegion *mr)
{
    return mr->ram_device;
}

RamDiscardManager *memory_region_get_ram_discard_manager(MemoryRegion *mr)
{
    return region_of(mr)->kind == K_DISCARD ? fake_rdm : NULL;
}

bool ram_discard_manager_is_populated(const RamDiscardManager *rdm,
                                      const MemoryRegionSection *section)
{
    CHECK(rdm == fake_rdm);
    return section->offset_within_region +
           int128_get64(section->size) <= DISCARD_PLUGGED;
}

void *qemu_map_ram_ptr(RAMBlock *ram_block, ram_addr_t addr)
{
    FakeRegion *r = (FakeRegion *)ram_block;

    CHECK(r && r->mr.ram && addr < r->size);
    return ram + r->base + addr;
}

void memory_region_set_dirty(MemoryRegion *mr, hwaddr addr, hwaddr size)
{
    FakeRegion *r = region_of(mr);

    CHECK(addr + size <= r->size);
    CHECK(dirty.n < ARRAY_SIZE(dirty.gpa));
    dirty.gpa[dirty.n] = r->base + addr;
    dirty.size[dirty.n++] = size;
}

static void init_regions(void)
{
    for (size_t i = 0; i < NR_REGIONS; i++) {
        FakeRegion *r = &regions[i];
        int k = r->kind;

        memset(&r->mr, 0, sizeof(r->mr));
        r->mr.ram = k != K_MMIO;
        r->mr.readonly = k == K_ROM;
        r->mr.rom_device = r->mr.romd_mode = k == K_ROMD;
        r->mr.ram_device = k == K_RAMDEV;
        r->mr.ram_block = k == K_MMIO || k == K_NOBLOCK ? NULL :
                          (RAMBlock *)r;
        r->refs = 0;
    }
}

/* The ABI, written out again: what an MSR write must be accepted for. */
static bool model_msr_valid(uint64_t val)
{
    uint64_t gpa = val & ~PVSCHED_MSR_ENABLE;
    FakeRegion *r;

    if (val == PVSCHED_MSR_DISABLE || val == PVSCHED_MSR_DOORBELL) {
        return true;
    }
    if (!(val & PVSCHED_MSR_ENABLE) || (val & PVSCHED_MSR_RESERVED_MASK) ||
        gpa % PVSCHED_AREA_ALIGN) {
        return false;
    }
    r = region_at(gpa);
    if (!r || (r->kind != K_RAM && r->kind != K_DISCARD)) {
        return false;
    }
    if (gpa + PVSCHED_AREA_SIZE > r->base + r->size) {
        return false;
    }
    return r->kind != K_DISCARD ||
           gpa - r->base + PVSCHED_AREA_SIZE <= DISCARD_PLUGGED;
}

/* ---- invariants ---- */

static uint64_t area_gpa(const PvschedArea *a)
{
    return a->hva ? (uint8_t *)a->hva - ram : UINT64_MAX;
}

static bool attr_equal(const PvschedSchedAttr *a, const PvschedSchedAttr *b)
{
    return !memcmp(a, b, sizeof(*a));
}

static bool debug;

static void print_attr(const char *what, const PvschedSchedAttr *a)
{
    fprintf(stderr, "  %s: policy %u prio %u flags 0x%" PRIx64 "\n", what,
            a->policy, a->priority, a->flags);
}

static void check_state(void)
{
    PvschedVcpuState *st = &vcpu.st;

    if (debug) {
        fprintf(stderr, "  status %" PRIu64 " boosted %d bounded %d msr 0x%"
                PRIx64 " perm %d cpu %" PRId64 " error %d\n", st->status,
                st->boosted, st->bounded, msr, w.perm, w.cpu_ns,
                st->last_error);
        print_attr("thread", &w.attr);
        print_attr("applied", &st->applied);
        print_attr("saved", &st->saved);
    }
    bool registered = vcpu.area.hva != NULL;
    int refs = 0;

    for (size_t i = 0; i < NR_REGIONS; i++) {
        CHECK(regions[i].refs >= 0);
        refs += regions[i].refs;
    }
    /* One reference, on the area's region, while registered: none after. */
    CHECK(refs == registered);
    CHECK(!registered || region_of(vcpu.area.mr)->refs == 1);
    CHECK(st->status <= PVSCHED_STATUS_THROTTLED);
    CHECK(registered == (st->status != PVSCHED_STATUS_DISABLED));
    CHECK(registered == (msr != 0));
    /* Between steps, no boost is left for the thread to give back. */
    CHECK(!pvsched_vcpu_unsettled(&vcpu) || st->last_error);
    if (registered) {
        uint64_t gpa = area_gpa(&vcpu.area);

        CHECK(msr == (gpa | PVSCHED_MSR_ENABLE));
        CHECK(model_msr_valid(msr));
        CHECK(vcpu.area.offset == gpa - region_of(vcpu.area.mr)->base);
        /* What the guest reads, unless it wrote over it since. */
        if (!w.guest_wrote_status) {
            CHECK(le64_to_cpu(vcpu.area.hva->boost_status) == st->status);
        }
        /* BOOSTED to the guest iff its thread really is boosted. */
        CHECK((st->status == PVSCHED_STATUS_BOOSTED) == st->boosted);
    }
    /* What QEMU thinks the thread has is what the thread has... */
    CHECK(w.outside || attr_equal(&st->applied, &w.attr));
    /* ...and boosted means at the policy's boost attributes. */
    CHECK(st->boosted == is_rt(w.attr.policy));
    CHECK(!st->boosted || w.attr.flags & PVSCHED_FLAG_RESET_ON_FORK);
    CHECK(st->boosts - st->unboosts == st->boosted);
    CHECK(st->throttles <= st->unboosts);
    CHECK(st->boosted_cpu_ns >= 0 && st->boosted_cpu_ns <= w.cpu_ns);
    CHECK(!st->last_error || st->last_error == -EPERM);
    CHECK(w.warnings <= 1);
    /* Whatever ended a boost took its backstop with it. */
    CHECK(st->boosted || !w.backstop_at);
    /*
     * A bounded boost is policed, by a pending timer, and by the kernel's
     * CPU-time timer at the bound at the latest.
     */
    if (st->status == PVSCHED_STATUS_BOOSTED && st->bounded &&
        w.cfg.max_boost_ns) {
        CHECK(timer_pending(vcpu.bound_timer));
        CHECK(w.backstop_at &&
              w.backstop_at <= MAX(st->bound_cpu_ns + w.cfg.max_boost_ns,
                                   w.cpu_ns + 1));
    }
}

/*
 * The bound, in the vCPU thread's CPU time: a vCPU whose thread may
 * lower itself is never boosted for longer than the bound plus the
 * timer's precision.  With the main loop stalled, the kernel's CPU-time
 * timer ends the boost, on the first tick after its expiry, which the
 * vCPU armed for the bound (check_state()).
 */
static void check_bound(void)
{
    PvschedVcpuState *st = &vcpu.st;

    if (st->status != PVSCHED_STATUS_BOOSTED || !st->bounded ||
        !w.cfg.max_boost_ns || w.perm == PERM_DENIED) {
        return;
    }
    if (st->bound_cpu_ns == w.stalled_bound) {
        CHECK(w.backstop_at &&
              w.cpu_ns <= QEMU_ALIGN_UP(w.backstop_at, TICK_NS));
    } else {
        CHECK(w.cpu_ns - st->bound_cpu_ns <=
              w.cfg.max_boost_ns + BOUND_SLACK_NS +
              (st->bound_cpu_ns == w.excused_bound ? w.excused_ns : 0));
    }
}

/*
 * Around everything QEMU does: it writes guest RAM only in the status
 * field of the area registered before or after, marks it dirty for
 * migration, and writes a defined status there.
 */
static void host_begin(void)
{
    memcpy(ram_before, ram, sizeof(ram));
    dirty.n = 0;
}

static void host_end(uint64_t gpa_before, bool may_write)
{
    uint64_t gpa_after = area_gpa(&vcpu.area);

    for (int i = 0; i < dirty.n; i++) {
        CHECK(may_write);
        CHECK(dirty.size[i] == 8);
        CHECK(dirty.gpa[i] == gpa_before || dirty.gpa[i] == gpa_after);
        CHECK(le64_to_cpu(*(uint64_t *)(ram + dirty.gpa[i])) <=
              PVSCHED_STATUS_THROTTLED);
        if (dirty.gpa[i] == gpa_after) {
            w.guest_wrote_status = false;
        }
    }
    /* Nothing else changed: the dirty bytes taken out, RAM is as it was. */
    for (int i = 0; i < dirty.n; i++) {
        memcpy(ram_before + dirty.gpa[i], ram + dirty.gpa[i], dirty.size[i]);
    }
    CHECK(!memcmp(ram, ram_before, sizeof(ram)));
    if (gpa_after != gpa_before && gpa_after != UINT64_MAX) {
        /* A new registration publishes its status at once. */
        CHECK(dirty.n > 0 && dirty.gpa[dirty.n - 1] == gpa_after);
    }
    /* The events QEMU queued go out from the main loop. */
    aio_bh_poll(qemu_get_aio_context());
    check_state();
}

/* ---- the guest's and the host's moves ---- */

/*
 * KVM_RUN returned: the run-loop hook runs first, at every exit;
 * @interrupted: a signal (a kick) ended it.
 */
static void guest_exit_why(bool interrupted)
{
    uint64_t gpa = area_gpa(&vcpu.area);

    host_begin();
    pvsched_vcpu_sync(&vcpu, interrupted);
    host_end(gpa, true);
}

static void guest_exit(void)
{
    guest_exit_why(false);
}

static void msr_write(uint64_t val)
{
    PvschedVcpu before;
    uint64_t msr_before = msr;
    uint64_t gpa;
    PvschedSchedAttr attr;
    bool ok;

    guest_exit();
    gpa = area_gpa(&vcpu.area);
    before = vcpu;
    attr = w.attr;
    host_begin();
    ok = pvsched_vcpu_msr_write(&vcpu, &msr, val);
    CHECK(ok == model_msr_valid(val));
    if (!ok) {
        /* #GP: nothing changed, not even guest memory. */
        CHECK(msr == msr_before);
        CHECK(!memcmp(&before, &vcpu, sizeof(vcpu)));
        CHECK(attr_equal(&attr, &w.attr));
        CHECK(!memcmp(ram, ram_before, sizeof(ram)));
    }
    host_end(gpa, true);
    if (val == PVSCHED_MSR_DISABLE) {
        CHECK(!vcpu.area.hva);
    }
}

/*
 * When a main-loop timer of the vCPU's (bound_check(), cooldown_end())
 * is due.  QEMU's clocks are real, the vCPU's are fake: the timer is due
 * once as much fake time has passed as it had left in real time when it
 * was armed, at the fake time of now (fake time only moves in run(),
 * which looks at the timers first).  Real time moves meanwhile, by up to
 * a step's worth; which way the harness errs depends on the timer:
 * - the bound timer is seen due early, by the real time since it was
 *   armed: never late, so that the bound is held to its precision;
 * - the cooldown timer is seen due late, by the real time since the last
 *   look before it was armed (w.real_mark): never early, for its callback
 *   would find the cooldown not over, the exit would arm it again for
 *   what is left, and fake time would stand still while it fires again
 *   and again.
 */
static int64_t timer_left(QEMUTimer *timer, FakeDue *due, bool never_early)
{
    int64_t expire;

    if (!timer_pending(timer)) {
        return INT64_MAX;
    }
    expire = timer_expire_time_ns(timer);
    if (expire != due->seen) {
        /* Armed since the last look: due in this much fake time. */
        int64_t armed = never_early ? w.real_mark :
                                      qemu_clock_get_ns(QEMU_CLOCK_REALTIME);

        due->seen = expire;
        due->due_ns = w.now_ns + MAX(expire - armed, 0);
    }
    /* A stalled main loop runs no timer. */
    return w.stalled ? INT64_MAX : MAX(due->due_ns - w.now_ns, 0);
}

static int64_t bound_timer_left(void)
{
    return timer_left(vcpu.bound_timer, &w.bound_due, false);
}

static int64_t cooldown_timer_left(void)
{
    return timer_left(vcpu.cooldown_timer, &w.cooldown_due, true);
}

/* After QEMU ran: what it armed is seen before real time moves on. */
static void look_at_timers(void)
{
    bound_timer_left();
    cooldown_timer_left();
    w.real_mark = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
}

static void fire_timer(QEMUTimer *timer)
{
    int kicks = w.kicks;

    timer_mod_ns(timer, 1);
    qemu_clock_run_timers(QEMU_CLOCK_REALTIME);
    if (w.kicks != kicks) {
        /* A kick ends KVM_RUN at once, or the next one at its start. */
        guest_exit_why(true);
    }
    look_at_timers();
}

/*
 * The end of a cooldown is honoured without the guest's help (which
 * rings no doorbell while THROTTLED, and may have asked BOOST meanwhile):
 * a vCPU THROTTLED past its cooldown has a cooldown timer pending...
 */
static bool cooldown_over(void)
{
    bool over = vcpu.st.status == PVSCHED_STATUS_THROTTLED &&
                w.now_ns >= vcpu.st.cooldown_end_ns;

    CHECK(!over || timer_pending(vcpu.cooldown_timer));
    return over;
}

/* ...and once that fired, it is not THROTTLED, unless by a new throttle. */
static void fire_cooldown_timer(void)
{
    uint64_t throttles = vcpu.st.throttles;
    bool over = cooldown_over();

    fire_timer(vcpu.cooldown_timer);
    check_state();
    CHECK(!over || vcpu.st.status != PVSCHED_STATUS_THROTTLED ||
          vcpu.st.throttles != throttles);
}

/*
 * The vCPU runs in the guest for @ns of CPU time, or is halted, while
 * the main loop's timers fire when due (timer_left()).  A stalled main
 * loop runs none; the kernel's CPU-time timer fires all the same, on the
 * first tick at or after its expiry.
 */
static void run(int64_t ns, bool halted)
{
    while (ns > 0) {
        int64_t due_left = bound_timer_left();
        int64_t cool_left = cooldown_timer_left();
        int64_t slice, fire_left = INT64_MAX;

        if (w.backstop_at && !halted) {
            fire_left = MAX(QEMU_ALIGN_UP(w.backstop_at, TICK_NS) - w.cpu_ns,
                            0);
        }
        slice = MIN(MIN(ns, cool_left), MIN(due_left, fire_left));
        if (!halted) {
            w.cpu_ns += slice;
        }
        w.now_ns += slice;
        ns -= slice;
        if (w.stalled && vcpu.st.status == PVSCHED_STATUS_BOOSTED) {
            w.stalled_bound = vcpu.st.bound_cpu_ns;
        }
        if (due_left == slice) {
            fire_timer(vcpu.bound_timer);
            check_state();
        }
        if (cool_left == slice) {
            fire_cooldown_timer();
        }
        if (fire_left == slice && w.backstop_at &&
            w.cpu_ns >= w.backstop_at) {
            w.backstop_at = 0;
            guest_exit_why(true);
        }
        /* Checked once the timers had their say: they run when due. */
        check_bound();
        cooldown_over();
    }
}

static const int64_t max_boosts[] = { 0, 1 * MS, 3 * MS, 20 * MS };
static const int64_t cooldowns[] = { 0, 1 * MS, 27 * MS };
static const PvschedSchedAttr boost_attrs[] = {
    { .policy = SCHED_FIFO, .priority = 8 },
    { .policy = SCHED_RR, .priority = 20 },
    { .policy = SCHED_FIFO, .priority = 1 },
    { .policy = PVSCHED_SCHED_DEADLINE, .runtime = 1 * MS,
      .deadline = 5 * MS, .period = 10 * MS },
};

/* The VM resumes, or the policy changes: the main loop tells the vCPU. */
static void forget_own(void)
{
    pvsched_vcpu_forget_own(&vcpu);
    w.forgotten = true;
}

/*
 * pvsched-set-policy: the notifier has every vCPU thread read its own
 * attributes again and apply the policy.
 */
static void set_policy(uint8_t mode, uint8_t sel)
{
    uint64_t gpa = area_gpa(&vcpu.area);

    forget_own();

    w.cfg = (PvschedBoostConfig) {
        .mode = mode % 3,
        .boost = boost_attrs[sel % ARRAY_SIZE(boost_attrs)],
        .max_boost_ns = max_boosts[(sel >> 2) % ARRAY_SIZE(max_boosts)],
        .cooldown_ns = cooldowns[(sel >> 4) % ARRAY_SIZE(cooldowns)],
    };
    host_begin();
    pvsched_vcpu_apply(&vcpu);
    host_end(gpa, true);
}

/*
 * System reset's hold phase, off the vCPU thread with the vCPU stopped:
 * unregistered at once, guest memory left alone, no thread changed.
 */
static void reset_hold(void)
{
    host_begin();
    w.off_thread = true;
    msr = 0;
    pvsched_vcpu_reset(&vcpu);
    w.off_thread = false;
    CHECK(dirty.n == 0 && !memcmp(ram, ram_before, sizeof(ram)));
    CHECK(!vcpu.area.hva && vcpu.st.status == PVSCHED_STATUS_DISABLED);
    aio_bh_poll(qemu_get_aio_context());
}

/* The work reset queued, on the vCPU thread, whatever came in between. */
static void settle(void)
{
    uint64_t gpa = area_gpa(&vcpu.area);

    host_begin();
    pvsched_vcpu_settle(&vcpu);
    host_end(gpa, true);
}

/* System reset: unboosted, unregistered, guest memory left alone. */
static void reset(void)
{
    reset_hold();
    settle();
    CHECK(!vcpu.area.hva && !msr);
    CHECK(!vcpu.st.boosted || w.cfg.mode == PVSCHED_STATE_STATIC ||
          vcpu.st.last_error);
}

/*
 * loadvm or incoming migration of @val: reset, then the CPU's state
 * loaded (post_load, off the vCPU thread) before the vCPU runs the work
 * reset queued on it.
 */
static void restore(uint64_t val)
{
    const char *why = NULL;
    bool ok;

    reset_hold();
    host_begin();
    w.off_thread = true;
    ok = pvsched_vcpu_restore(&vcpu, val, CLOCK_THREAD_CPUTIME_ID, &why);
    w.off_thread = false;
    /* Failed, the migration fails: this VM never runs.  Go on from 0. */
    msr = ok ? val : 0;
    CHECK(ok == (model_msr_valid(val) && val != PVSCHED_MSR_DISABLE &&
                 val != PVSCHED_MSR_DOORBELL));
    CHECK(ok || why);
    pvsched_vcpu_settle(&vcpu);
    host_end(UINT64_MAX, true);
}

/* A vCPU thread applies the policy first (pvsched.c: realize, hotplug). */
static void thread_start(void)
{
    host_begin();
    pvsched_vcpu_apply(&vcpu);
    host_end(UINT64_MAX, false);
}

/* CPU hot-unplug: the thread exits; a new one comes with the re-plug. */
static void thread_exit(void)
{
    if (vcpu.exit_watched) {
        qemu_thread_atexit_remove(&vcpu.thread_exit);
        host_begin();
        vcpu.thread_exit.notify(&vcpu.thread_exit, NULL);
        /* The attributes died with the thread; the next one has its own. */
        w.attr = (PvschedSchedAttr) { .policy = SCHED_OTHER };
        w.warnings = 0;
        /* So did the CPU, and its MSR: a CPU plugged in again has 0. */
        msr = 0;
        host_end(UINT64_MAX, false);
    }
    CHECK(!vcpu.area.hva && !vcpu.st.boosted && !vcpu.exit_watched);
    CHECK(vcpu.st.status == PVSCHED_STATUS_DISABLED);
    CHECK(!timer_pending(vcpu.bound_timer) && !w.backstop_at);
    thread_start();
}

/*
 * A thread that may not lower itself stays boosted over its bound, and
 * the retried kicks have backed off (to 10 ms) by the time the
 * permission comes back: that boost may overrun by this much more.
 */
/*
 * An administrator's chrt on the unboosted thread (a boosted one is
 * pvsched's until it unboosts): SCHED_OTHER or SCHED_BATCH, any nice.
 */
static void chrt(uint8_t b)
{
    if (vcpu.st.boosted) {
        return;
    }
    w.attr = (PvschedSchedAttr) {
        .policy = b & 1 ? SCHED_BATCH : SCHED_OTHER,
        .nice = (b >> 1) % 40 - 20,
    };
    w.outside = true;
    w.forgotten = false;
}

static void set_perm(int perm)
{
    PvschedVcpuState *st = &vcpu.st;

    if (w.perm == PERM_DENIED && perm != PERM_DENIED) {
        w.excused_bound = st->bound_cpu_ns;
        w.excused_ns = MAX(w.cpu_ns - st->bound_cpu_ns, 0) + 10 * MS;
    }
    w.perm = perm;
}

/* A guest-chosen MSR value aimed at the fake map: any region, any bits. */
static uint64_t aimed_msr(const uint8_t *p)
{
    FakeRegion *r = &regions[p[0] % NR_REGIONS];
    uint64_t off = (p[1] | p[2] << 8) % (r->size + 0x80);
    uint64_t val = ((r->base + off) & ~0x3full) | (p[3] & 0x3f);

    if (p[3] & 0x80) {
        val |= (uint64_t)p[1] << 40;    /* beyond guest RAM */
    }
    return val;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return le64_to_cpu(v);
}

static void guest_writes(uint64_t gpa, uint8_t val)
{
    ram[gpa] = val;
    if (vcpu.area.hva && gpa - area_gpa(&vcpu.area) < 8) {
        w.guest_wrote_status = true;
    }
}

static void reset_world(void)
{
    if (vcpu.exit_watched) {
        qemu_thread_atexit_remove(&vcpu.thread_exit);
    }
    if (vcpu.bound_timer) {
        timer_free(vcpu.bound_timer);
        timer_free(vcpu.cooldown_timer);
    }
    aio_bh_poll(qemu_get_aio_context());
    memset(&w, 0, sizeof(w));
    memset(ram, 0, sizeof(ram));
    msr = 0;                    /* a new CPU, as the new vCPU */
    init_regions();
    w.real_mark = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    w.stalled_bound = INT64_MIN;
    w.cfg = (PvschedBoostConfig) {
        .mode = PVSCHED_STATE_DYNAMIC,
        .boost = boost_attrs[0],
        .max_boost_ns = 3 * MS,
        .cooldown_ns = 27 * MS,
    };
    pvsched_vcpu_init(&vcpu, 0, NULL);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    qemu_init_main_loop(&error_abort);
    /* PVSCHED_FUZZ_DEBUG=1: print every step and the state after it. */
    debug = getenv("PVSCHED_FUZZ_DEBUG");
    return 0;
}

/* Each step: an opcode, then its operand bytes. */
enum {
    OP_EXIT, OP_REQ, OP_SCRIBBLE, OP_MSR_AIMED, OP_MSR_RAW, OP_DISABLE,
    OP_DOORBELL, OP_RUN, OP_HALT, OP_POLICY, OP_RESET, OP_PERM,
    OP_UNPLUG, OP_RESTORE, OP_STALL, OP_CHRT, OP_FORGET, OP_NR
};
static const size_t op_len[OP_NR] = {
    [OP_REQ] = 1, [OP_SCRIBBLE] = 3, [OP_MSR_AIMED] = 4, [OP_MSR_RAW] = 8,
    [OP_RUN] = 1, [OP_HALT] = 1, [OP_POLICY] = 2, [OP_PERM] = 1,
    [OP_RESTORE] = 4, [OP_CHRT] = 1,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reset_world();
    thread_start();
    while (size) {
        int op = data[0] % OP_NR;
        const uint8_t *p = data + 1;

        if (size < 1 + op_len[op]) {
            break;
        }
        if (debug) {
            fprintf(stderr, "op %d:", op);
            for (size_t i = 0; i < op_len[op]; i++) {
                fprintf(stderr, " %02x", p[i]);
            }
            fprintf(stderr, "\n");
        }
        data += 1 + op_len[op];
        size -= 1 + op_len[op];
        switch (op) {
        case OP_EXIT:
            guest_exit();
            break;
        case OP_REQ:        /* boost_req, or any byte, then an exit */
            if (vcpu.area.hva) {
                guest_writes(area_gpa(&vcpu.area) + PVSCHED_OFF_BOOST_REQ,
                             p[0] % 4 == 3 ? p[0] : p[0] % 4);
            }
            guest_exit();
            break;
        case OP_SCRIBBLE:   /* any byte of RAM: other areas, the status */
            if (p[0] & 0x80 && vcpu.area.hva) {
                guest_writes(area_gpa(&vcpu.area) + p[0] % 64, p[1]);
            } else {
                guest_writes((p[0] | p[1] << 8) % RAM_END, p[2]);
            }
            break;
        case OP_MSR_AIMED:
            msr_write(aimed_msr(p));
            break;
        case OP_MSR_RAW:
            msr_write(get_u64(p));
            break;
        case OP_DISABLE:
            msr_write(PVSCHED_MSR_DISABLE);
            break;
        case OP_DOORBELL:
            msr_write(PVSCHED_MSR_DOORBELL);
            break;
        case OP_RUN:        /* up to 25.5 ms of CPU in the guest */
            run(p[0] * 100 * US, false);
            break;
        case OP_STALL:      /* the main loop blocks, or runs again */
            w.stalled = !w.stalled;
            break;
        case OP_HALT:
            run(p[0] * 100 * US, true);
            break;
        case OP_POLICY:
            set_policy(p[0], p[1]);
            break;
        case OP_RESET:
            reset();
            break;
        case OP_PERM:       /* the host grants or takes permissions */
            set_perm(p[0] % PERM_NR);
            break;
        case OP_UNPLUG:
            thread_exit();
            break;
        case OP_RESTORE:
            restore(aimed_msr(p));
            break;
        case OP_CHRT:
            chrt(p[0]);
            break;
        case OP_FORGET:
            forget_own();
            break;
        }
        look_at_timers();
    }
    return 0;
}
