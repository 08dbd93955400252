#include "scenarios.h"
#include "check.h"
#include "lib.h"
#include "print.h"
#include "pvsched.h"
#include "serial.h"
#include "smp.h"

/* Preset before enabling, so a status the host never wrote shows up. */
#define STATUS_SENTINEL 0xa5

static const struct {
    const char *name;
    void (*run)(void);
} scenarios[] = {
    { "boost", scenario_boost },
    { "msr", scenario_msr },
    { "nofeature", scenario_nofeature },
    { "demo", scenario_demo },
    { "spin", scenario_spin },
    { "selftest", scenario_selftest },
    { "fault", scenario_fault },
    { "bench-pio", scenario_bench_pio },
    { "bench-doorbell", scenario_bench_doorbell },
    { "bench-wakeup", scenario_bench_wakeup },
    { "bench-scale", scenario_bench_scale },
    { "fuzz", scenario_fuzz },
    { "storm", scenario_storm },
    { "iostorm", scenario_iostorm },
    { "ring", scenario_ring },
    { "churn", scenario_churn },
    { "migrate", scenario_migrate },
};

void scenario_run(const char *name)
{
    unsigned i;

    for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
        if (!strcmp(name, scenarios[i].name)) {
            scenarios[i].run();
        }
    }
}

struct pv_op_args {
    uint8_t req;
    enum pv_how how;
    struct pv_op out;
};

/* Runs on the target CPU: the MSR is per vCPU. */
static void pv_op_local(void *p)
{
    struct pv_op_args *a = p;
    struct pvsched_area *area = &pv_area[this_cpu()];

    if (a->how == HOW_ENABLE) {
        pv_set_status(area, STATUS_SENTINEL);
    }
    if (a->req != REQ_KEEP) {
        pv_set_req(area, a->req);
    }
    switch (a->how) {
    case HOW_ENABLE:
        a->out.gp = pv_enable(area);
        break;
    case HOW_DISABLE:
        a->out.gp = pv_disable();
        break;
    case HOW_DOORBELL:
        a->out.gp = pv_doorbell();
        break;
    case HOW_PORT_EXIT:
        pv_port_exit();
        break;
    case HOW_NONE:
        break;
    }
    a->out.status = pv_status(area);
    a->out.rd_gp = pv_read(&a->out.msr);
}

struct pv_op pv_op_on(unsigned cpu, uint8_t req, enum pv_how how)
{
    struct pv_op_args a = { .req = req, .how = how };

    run_on(cpu, pv_op_local, &a);
    return a.out;
}

void wait_point(const char *tag, unsigned cpu)
{
    kprintf("WAIT %s cpu=%u\n", tag, cpu);
    serial_getc();
}

void require_feature(void)
{
    if (!check("feature", NO_CPU, pvsched_feature(),
               "cpuid 0x%x eax bit %u absent", PVSCHED_CPUID_LEAF,
               PVSCHED_CPUID_FEATURE_BIT)) {
        done();
    }
}

bool check_op(const char *name, int cpu, const struct pv_op *op,
              uint64_t want)
{
    return check(name, cpu, !op->gp && op->status == want,
                 "gp=%d status=%s want=%s", op->gp,
                 pv_status_name(op->status), pv_status_name(want));
}

void register_all(void)
{
    unsigned cpu;

    for (cpu = 0; cpu < ncpus; cpu++) {
        struct pv_op op = pv_op_on(cpu, PVSCHED_REQ_NONE, HOW_ENABLE);
        uint64_t want = pv_gpa(&pv_area[cpu]) | PVSCHED_MSR_ENABLE;

        check_op("register", cpu, &op, PVSCHED_STATUS_NORMAL);
        check("register-readback", cpu, !op.rd_gp && op.msr == want,
              "rd_gp=%d msr=%llx want=%llx", op.rd_gp, op.msr, want);
    }
}
