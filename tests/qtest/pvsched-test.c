/*
 * qtests for the pvsched device and the pvsched-policy object: start-up
 * errors that say what to add, property validation, and that a policy
 * cannot be changed behind the vCPUs' back.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include "libqtest.h"
#include "qemu/cutils.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "qobject/qjson.h"
#include "qapi/error.h"

/*
 * Start QEMU, expecting it to refuse the command line; return its stderr.
 * qtest_init() cannot be used: it aborts when QEMU does not start.
 */
static char *start_fails_as(const char *wrapper, const char *accel,
                            const char *args)
{
    g_autofree char *cmd = g_strdup_printf("%s %s -machine pc -accel %s "
                                           "-display none -nodefaults %s",
                                           wrapper,
                                           g_getenv("QTEST_QEMU_BINARY"),
                                           accel, args);
    g_auto(GStrv) argv = NULL;
    g_autofree char *out = NULL;
    char *err = NULL;
    int status;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                               NULL, &out, &err, &status, NULL));
    /* Refused: a clean exit with an error, not a crash. */
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    return err;
}

static void assert_refused_as(const char *wrapper, const char *accel,
                              const char *args, const char *what)
{
    g_autofree char *err = start_fails_as(wrapper, accel, args);

    if (!strstr(err, what)) {
        g_test_message("stderr: %s", err);
    }
    g_assert_nonnull(strstr(err, what));
}

static void assert_refused_accel(const char *accel, const char *args,
                                 const char *what)
{
    assert_refused_as("", accel, args, what);
}

static void assert_refused(const char *args, const char *what)
{
    assert_refused_accel("qtest", args, what);
}

#define POLICY "-object pvsched-policy,id=pol0 "

static QDict *qom_get(QTestState *qts, const char *path, const char *prop)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'qom-get', 'arguments': {"
                           "'path': %s, 'property': %s}}", path, prop);

    g_assert_true(qdict_haskey(rsp, "return"));
    return rsp;
}

static char *qom_get_str(QTestState *qts, const char *path, const char *prop)
{
    QDict *rsp = qom_get(qts, path, prop);
    char *s = g_strdup(qdict_get_str(rsp, "return"));

    qobject_unref(rsp);
    return s;
}

static int64_t qom_get_int(QTestState *qts, const char *path,
                           const char *prop)
{
    QDict *rsp = qom_get(qts, path, prop);
    int64_t v = qdict_get_int(rsp, "return");

    qobject_unref(rsp);
    return v;
}

static void assert_qom_str(QTestState *qts, const char *path,
                           const char *prop, const char *want)
{
    g_autofree char *got = qom_get_str(qts, path, prop);

    g_assert_cmpstr(got, ==, want);
}

/* The CPUID bit is checked once KVM is there: it needs KVM too. */
static void test_needs_cpuid_property(void)
{
    assert_refused_accel("kvm", "-cpu qemu64 " POLICY
                         "-device pvsched,policy=pol0",
                         "Add kvm-pvsched=on to -cpu");
}

static void test_needs_policy(void)
{
    assert_refused("-cpu qemu64,kvm-pvsched=on -device pvsched",
                   "Add -object pvsched-policy,id=pol0");
}

static void test_one_device(void)
{
    assert_refused_accel("kvm", "-cpu qemu64,kvm-pvsched=on " POLICY
                         "-device pvsched,policy=pol0 "
                         "-device pvsched,policy=pol0",
                         "at most one pvsched device");
}

static void test_unknown_policy_id(void)
{
    assert_refused("-cpu qemu64,kvm-pvsched=on -device pvsched,policy=nope",
                   "nope");
}

static void test_policy_rejects(void)
{
    assert_refused("-object pvsched-policy,id=p,boost-priority=0",
                   "boost-priority=0 is out of range");
    assert_refused("-object pvsched-policy,id=p,boost-priority=100",
                   "boost-priority=100 is out of range");
    assert_refused("-object pvsched-policy,id=p,boost-class=idle",
                   "idle");
    assert_refused("-object pvsched-policy,id=p,mode=sometimes",
                   "sometimes");
    assert_refused("-object pvsched-policy,id=p,boost-priority=20,"
                   "emulator-priority=20",
                   "emulator-priority=20 must be above boost-priority=20");
    assert_refused("-object pvsched-policy,id=p,boost-priority=99",
                   "boost-priority=99 leaves no room for the emulator");
    assert_refused("-object pvsched-policy,id=p,boost-priority=20,"
                   "iothread-priority=3",
                   "iothread-priority=3 must be above boost-priority=20");
    assert_refused("-object pvsched-policy,id=p,boost-class=deadline,"
                   "deadline-runtime-us=5000,deadline-deadline-us=4000",
                   "SCHED_DEADLINE needs runtime <= deadline <= period");
    assert_refused("-object pvsched-policy,id=p,boost-class=deadline,"
                   "deadline-deadline-us=20000", "deadline-period-us=10000");
    assert_refused("-object pvsched-policy,id=p,boost-class=other,"
                   "boost-nice=-21", "boost-nice=-21 is out of range");
    /* This host's kernel has no uclamp: a clear error, not a crash. */
    assert_refused("-object pvsched-policy,id=p,boost-class=uclamp",
                   "needs a host kernel with utilization clamping");
}

static void test_policy_properties(void)
{
    QTestState *qts = qtest_init("-object pvsched-policy,id=pol0,mode=static,"
                                 "boost-class=rr,boost-priority=20,"
                                 "max-boost-us=1000,cooldown-us=9000");
    const char *path = "/objects/pol0";
    QDict *rsp;

    assert_qom_str(qts, path, "mode", "static");
    assert_qom_str(qts, path, "boost-class", "rr");
    g_assert_cmpint(qom_get_int(qts, path, "boost-priority"), ==, 20);
    g_assert_cmpint(qom_get_int(qts, path, "max-boost-us"), ==, 1000);
    g_assert_cmpint(qom_get_int(qts, path, "cooldown-us"), ==, 9000);

    /* Refused, and nothing changes. */
    rsp = qtest_qmp(qts, "{'execute': 'qom-set', 'arguments': {"
                    "'path': %s, 'property': 'boost-priority', 'value': 300}}",
                    path);
    g_assert_true(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);
    g_assert_cmpint(qom_get_int(qts, path, "boost-priority"), ==, 20);
    qtest_quit(qts);
}

static void test_policy_defaults(void)
{
    QTestState *qts = qtest_init("-object pvsched-policy,id=pol0");
    const char *path = "/objects/pol0";

    assert_qom_str(qts, path, "mode", "dynamic");
    assert_qom_str(qts, path, "boost-class", "fifo");
    g_assert_cmpint(qom_get_int(qts, path, "boost-priority"), ==, 1);
    g_assert_cmpint(qom_get_int(qts, path, "max-boost-us"), ==, 3000);
    g_assert_cmpint(qom_get_int(qts, path, "cooldown-us"), ==, 27000);
    qtest_quit(qts);
}

static void test_cpuid_property(void)
{
    QTestState *qts = qtest_init("-accel kvm -cpu qemu64,kvm-pvsched=on");

    g_assert_true(qtest_qom_get_bool(qts, "/machine/unattached/device[0]",
                                     "kvm-pvsched"));
    qtest_quit(qts);
}

/*
 * -cpu host and -cpu max enable what the accelerator supports, and the bit
 * is reported as supported: without -device pvsched a guest would see the
 * feature, write the MSR and get #GP from KVM.  Only kvm-pvsched=on sets it.
 */
static void test_cpuid_not_autoenabled(void)
{
    const char *models[] = { "host", "max" };
    int i;

    for (i = 0; i < ARRAY_SIZE(models); i++) {
        g_autofree char *args = g_strdup_printf("-accel kvm -cpu %s",
                                                models[i]);
        QTestState *qts = qtest_init(args);

        g_test_message("-cpu %s", models[i]);
        g_assert_false(qtest_qom_get_bool(qts,
                                          "/machine/unattached/device[0]",
                                          "kvm-pvsched"));
        qtest_quit(qts);
    }
}

/* Without CAP_SYS_NICE and with RLIMIT_RTPRIO 0: refuse, and say why. */
static void test_policy_needs_permission(void)
{
    const char *drop = "prlimit --rtprio=0:0 setpriv --inh-caps=-sys_nice "
                       "--bounding-set=-sys_nice";

    /* The emulator thread needs one more than the vCPUs. */
    assert_refused_as(drop, "qtest", "-object pvsched-policy,id=p,"
                      "boost-priority=8", "with the emulator thread at 9 "
                      "needs CAP_SYS_NICE or RLIMIT_RTPRIO >= 9");
    assert_refused_as(drop, "qtest", "-object pvsched-policy,id=p,"
                      "boost-priority=8", "prlimit --rtprio=9");
}

static QDict *query(QTestState *qts)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-pvsched'}");

    g_assert_true(qdict_haskey(rsp, "return"));
    return rsp;
}

static void test_query_no_device(void)
{
    QTestState *qts = qtest_init("-machine none");
    QDict *rsp = query(qts);
    QDict *ret = qdict_get_qdict(rsp, "return");

    g_assert_false(qdict_get_bool(ret, "present"));
    g_assert_true(qlist_empty(qdict_get_qlist(ret, "vcpus")));
    qobject_unref(rsp);
    qtest_quit(qts);
}

#define KVM_VM "-accel kvm -S -smp 2 -cpu qemu64,kvm-pvsched=on " \
    "-object pvsched-policy,id=pol0,boost-priority=8 " \
    "-object iothread,id=io0 -device pvsched,policy=pol0"

static void test_query_device(void)
{
    QTestState *qts = qtest_init(KVM_VM);
    QDict *rsp = query(qts);
    QDict *ret = qdict_get_qdict(rsp, "return");
    QDict *pol = qdict_get_qdict(ret, "policy");
    QDict *emu, *sched;
    const QListEntry *iot;
    QListEntry *e;
    int n = 0;

    g_assert_true(qdict_get_bool(ret, "present"));
    g_assert_cmpstr(qdict_get_str(pol, "id"), ==, "pol0");
    g_assert_cmpstr(qdict_get_str(pol, "mode"), ==, "dynamic");
    g_assert_cmpint(qdict_get_int(pol, "boost-priority"), ==, 8);
    QLIST_FOREACH_ENTRY(qdict_get_qlist(ret, "vcpus"), e) {
        QDict *v = qobject_to(QDict, qlist_entry_obj(e));

        g_assert_cmpint(qdict_get_int(v, "cpu-index"), ==, n++);
        g_assert_cmpint(qdict_get_int(v, "thread-id"), >, 0);
        g_assert_false(qdict_get_bool(v, "registered"));
        g_assert_false(qdict_haskey(v, "area"));
        g_assert_cmpstr(qdict_get_str(v, "status"), ==, "disabled");
        g_assert_cmpint(qdict_get_int(v, "boosts"), ==, 0);
        g_assert_cmpstr(qdict_get_str(qdict_get_qdict(v, "sched"), "policy"),
                        ==, "other");
    }
    g_assert_cmpint(n, ==, 2);
    /* The emulator thread runs above every boosted vCPU. */
    g_assert_cmpint(qdict_get_int(pol, "emulator-priority"), ==, 9);
    emu = qdict_get_qdict(ret, "emulator");
    g_assert_cmpint(qdict_get_int(emu, "thread-id"), >, 0);
    sched = qdict_get_qdict(emu, "sched");
    g_assert_cmpstr(qdict_get_str(sched, "policy"), ==, "fifo");
    g_assert_cmpint(qdict_get_int(sched, "priority"), ==, 9);
    g_assert_true(qdict_get_bool(sched, "reset-on-fork"));
    /* So do I/O threads, even one created after the policy. */
    g_assert_cmpint(qdict_get_int(pol, "iothread-priority"), ==, 9);
    iot = qlist_first(qdict_get_qlist(ret, "iothreads"));
    g_assert_nonnull(iot);
    sched = qdict_get_qdict(qobject_to(QDict, qlist_entry_obj(iot)),
                            "sched");
    g_assert_cmpstr(qdict_get_str(sched, "policy"), ==, "fifo");
    g_assert_cmpint(qdict_get_int(sched, "priority"), ==, 9);
    qobject_unref(rsp);
    qtest_quit(qts);
}

/* Every refused change leaves the whole policy as it was. */
static void assert_set_refused(QTestState *qts, const char *args,
                               const char *what)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'pvsched-set-policy', "
                           "'arguments': %p}",
                           qobject_from_json(args, &error_abort));
    const char *desc;

    g_assert_true(qdict_haskey(rsp, "error"));
    desc = qdict_get_str(qdict_get_qdict(rsp, "error"), "desc");
    if (!strstr(desc, what)) {
        g_test_message("error: %s", desc);
    }
    g_assert_nonnull(strstr(desc, what));
    qobject_unref(rsp);
    assert_qom_str(qts, "/objects/pol0", "mode", "dynamic");
    assert_qom_str(qts, "/objects/pol0", "boost-class", "fifo");
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "boost-priority"), ==,
                    8);
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "max-boost-us"), ==,
                    3000);
}

static void test_set_policy_errors(void)
{
    QTestState *qts = qtest_init(KVM_VM);

    assert_set_refused(qts, "{'id': 'nope', 'boost-priority': 9}",
                       "no pvsched-policy object with id 'nope'");
    assert_set_refused(qts, "{'id': 'pol0', 'mode': 'off', "
                       "'boost-priority': 100}",
                       "boost-priority=100 is out of range");
    assert_set_refused(qts, "{'id': 'pol0', 'boost-class': 'rr', "
                       "'max-boost-us': 1000, 'boost-priority': 0}",
                       "boost-priority=0 is out of range");
    assert_set_refused(qts, "{'id': 'pol0', 'boost-class': 'idle'}",
                       "idle");
    assert_set_refused(qts, "{'id': 'pol0', 'boost-class': 'deadline', "
                       "'deadline-runtime-us': 20000}",
                       "SCHED_DEADLINE needs runtime <= deadline <= period");
    assert_set_refused(qts, "{'id': 'pol0', 'max-boost-us': 2000000000}",
                       "max-boost-us=2000000000 is out of range");
    assert_set_refused(qts, "{'id': 'pol0', 'mode': 'static', "
                       "'emulator-priority': 5}",
                       "emulator-priority=5 must be above boost-priority=8");
    assert_set_refused(qts, "{'id': 'pol0', 'boost-priority': 12, "
                       "'emulator-priority': 11}",
                       "emulator-priority=11 must be above boost-priority=12");
    assert_set_refused(qts, "{'id': 'pol0', 'iothread-priority': 8}",
                       "iothread-priority=8 must be above boost-priority=8");
    qtest_quit(qts);
}

static void test_set_policy(void)
{
    QTestState *qts = qtest_init("-accel kvm -S -smp 2 "
                                 "-cpu qemu64,kvm-pvsched=on "
                                 "-object pvsched-policy,id=pol0,"
                                 "boost-priority=8,priority-ceiling=30 "
                                 "-device pvsched,policy=pol0");
    QDict *rsp;

    rsp = qtest_qmp(qts, "{'execute': 'pvsched-set-policy', 'arguments': {"
                    "'id': 'pol0', 'boost-class': 'rr', 'boost-priority': 20,"
                    " 'max-boost-us': 500, 'cooldown-us': 4500}}");
    g_assert_true(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    assert_qom_str(qts, "/objects/pol0", "boost-class", "rr");
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "boost-priority"), ==,
                    20);
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "max-boost-us"), ==,
                    500);
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "cooldown-us"), ==,
                    4500);

    /* qom-set: the same validation, one property at a time. */
    rsp = qtest_qmp(qts, "{'execute': 'qom-set', 'arguments': {"
                    "'path': '/objects/pol0', 'property': 'mode', "
                    "'value': 'off'}}");
    g_assert_true(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    assert_qom_str(qts, "/objects/pol0", "mode", "off");
    qtest_quit(qts);
}

static int rtprio_limit(QTestState *qts)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/limits",
                                            (int)qtest_pid(qts));
    g_autofree char *text = NULL;
    const char *line;
    int soft, hard;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    line = strstr(text, "Max realtime priority");
    g_assert(line);
    g_assert_cmpint(sscanf(line + strlen("Max realtime priority"), "%d %d",
                           &soft, &hard), ==, 2);
    g_assert_cmpint(soft, ==, hard);
    return hard;
}

/*
 * What QEMU's RLIMIT_RTPRIO must be after a ceiling of @ceiling: lowered
 * to it, never raised.  (Where the hard limit starts at 0, as for root
 * here, only the "never raised" half shows.)
 */
static int rtprio_after_ceiling(int ceiling)
{
    struct rlimit rl;

    g_assert_cmpint(getrlimit(RLIMIT_RTPRIO, &rl), ==, 0);
    return MIN(rl.rlim_max, ceiling);
}

/*
 * The ceiling: QEMU's RLIMIT_RTPRIO, lowered at creation to the highest
 * priority the policy uses (the emulator thread's, boost-priority + 1).
 */
static void test_priority_ceiling(void)
{
    QTestState *qts = qtest_init(KVM_VM);

    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "priority-ceiling"),
                    ==, 9);
    g_assert_cmpint(rtprio_limit(qts), ==, rtprio_after_ceiling(9));
    assert_set_refused(qts, "{'id': 'pol0', 'boost-priority': 20}",
                       "a thread would run at real-time priority 21, above "
                       "priority-ceiling=9");
    assert_set_refused(qts, "{'id': 'pol0', 'iothread-priority': 10}",
                       "above priority-ceiling=9");
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "boost-priority"), ==,
                    8);
    qtest_quit(qts);

    assert_refused("-object pvsched-policy,id=p,boost-priority=8,"
                   "priority-ceiling=5", "a thread would run at real-time "
                   "priority 9, above priority-ceiling=5");
}

static void test_priority_ceiling_fixed(void)
{
    QTestState *qts = qtest_init(KVM_VM);
    QDict *rsp;

    rsp = qtest_qmp(qts, "{'execute': 'qom-set', 'arguments': {"
                    "'path': '/objects/pol0', 'property': "
                    "'priority-ceiling', 'value': 50}}");
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "error"), "desc"), ==,
                    "pvsched-policy: priority-ceiling is fixed at 9 since "
                    "the object was created");
    qobject_unref(rsp);
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "priority-ceiling"),
                    ==, 9);
    g_assert_cmpint(rtprio_limit(qts), ==, rtprio_after_ceiling(9));
    qtest_quit(qts);
}

static void test_hmp_info(void)
{
    QTestState *qts = qtest_init(KVM_VM);
    g_autofree char *out = qtest_hmp(qts, "info pvsched");

    g_assert_nonnull(strstr(out, "pvsched policy pol0: mode dynamic, fifo "
                            "priority 8"));
    g_assert_nonnull(strstr(out, "disabled"));
    qtest_quit(qts);

    qts = qtest_init("-machine none");
    g_free(out);
    out = qtest_hmp(qts, "info pvsched");
    g_assert_nonnull(strstr(out, "no pvsched device"));
    qtest_quit(qts);
}

/*
 * The MSR and the run loop, driven through the qtest protocol on each
 * vCPU's own thread: the same handler and hook as under KVM.
 */
#define QTEST_VM "-machine pc -smp 2 -m 128M -cpu qemu64 " \
    "-object pvsched-policy,id=pol0,boost-priority=8,max-boost-us=0 " \
    "-device pvsched,policy=pol0"

#define AREA0   0x100000ULL     /* guest RAM, 64-byte aligned */
#define AREA1   0x100040ULL
#define MSR_ENABLE 1ULL
#define DOORBELL   UINT64_MAX

enum { DISABLED, NORMAL, BOOSTED, THROTTLED };
enum { REQ_NONE, REQ_UNBOOST, REQ_BOOST };

static bool wrmsr(QTestState *qts, int cpu, uint64_t val)
{
    return qtest_pvsched(qts, "wrmsr", cpu, val);
}

static uint64_t rdmsr(QTestState *qts, int cpu)
{
    return qtest_pvsched(qts, "rdmsr", cpu, 0);
}

static void vm_exit(QTestState *qts, int cpu)
{
    qtest_pvsched(qts, "exit", cpu, 0);
}

static QDict *vcpu_state(QTestState *qts, int cpu)
{
    QDict *rsp = query(qts);
    QListEntry *e;
    QDict *found = NULL;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(qdict_get_qdict(rsp, "return"),
                                        "vcpus"), e) {
        QDict *v = qobject_to(QDict, qlist_entry_obj(e));

        if (qdict_get_int(v, "cpu-index") == cpu) {
            found = v;
            qobject_ref(found);
        }
    }
    qobject_unref(rsp);
    g_assert(found);
    return found;
}

static void assert_vcpu(QTestState *qts, int cpu, const char *status,
                        const char *policy, int prio)
{
    QDict *v = vcpu_state(qts, cpu);
    QDict *sched = qdict_get_qdict(v, "sched");

    g_assert_cmpstr(qdict_get_str(v, "status"), ==, status);
    g_assert_cmpstr(qdict_get_str(sched, "policy"), ==, policy);
    g_assert_cmpint(qdict_get_int(sched, "priority"), ==, prio);
    qobject_unref(v);
}

/* Every value DESIGN section 4 calls invalid: #GP, nothing changes. */
static const uint64_t invalid_msr_values[] = {
    0x2,                                /* bit 0 clear, not zero */
    AREA0 | MSR_ENABLE | 0x2,           /* reserved bits 5:1 */
    AREA0 | MSR_ENABLE | 0x20,
    (AREA0 + 8) | MSR_ENABLE,           /* not 64-byte aligned */
    0xfe1,                              /* would cross a page */
    0x100000000ULL | MSR_ENABLE,        /* beyond RAM */
    0x7fff0000000ULL | MSR_ENABLE,
    0xfee00000ULL | MSR_ENABLE,         /* LAPIC MMIO */
    0xfec00000ULL | MSR_ENABLE,         /* IOAPIC MMIO */
    0xfffc0000ULL | MSR_ENABLE,         /* BIOS ROM */
};

static void assert_all_invalid_refused(QTestState *qts, int cpu)
{
    uint64_t before = rdmsr(qts, cpu);
    int i;

    for (i = 0; i < ARRAY_SIZE(invalid_msr_values); i++) {
        g_assert_false(wrmsr(qts, cpu, invalid_msr_values[i]));
        g_assert_cmphex(rdmsr(qts, cpu), ==, before);
    }
}

static void test_msr_rules(void)
{
    QTestState *qts = qtest_init(QTEST_VM);

    g_assert_cmphex(rdmsr(qts, 0), ==, 0);
    assert_all_invalid_refused(qts, 0);
    /* The doorbell while disabled: accepted, does nothing. */
    g_assert_true(wrmsr(qts, 0, DOORBELL));
    g_assert_cmphex(rdmsr(qts, 0), ==, 0);

    qtest_writeq(qts, AREA0, 0xdead);
    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    g_assert_cmphex(rdmsr(qts, 0), ==, AREA0 | MSR_ENABLE);
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, NORMAL);
    assert_all_invalid_refused(qts, 0);
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, NORMAL);
    /* The MSR is per vCPU. */
    g_assert_cmphex(rdmsr(qts, 1), ==, 0);

    /* Moving the area: the old one is told DISABLED. */
    g_assert_true(wrmsr(qts, 0, AREA1 | MSR_ENABLE));
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, DISABLED);
    g_assert_cmphex(qtest_readq(qts, AREA1), ==, NORMAL);

    g_assert_true(wrmsr(qts, 0, 0));
    g_assert_cmphex(rdmsr(qts, 0), ==, 0);
    g_assert_cmphex(qtest_readq(qts, AREA1), ==, DISABLED);
    qtest_quit(qts);
}

/* The path of a new empty file, for QEMU to write (-D) or use as a disk. */
static char *empty_tmp_file(const char *tmpl)
{
    char *path = NULL;
    int fd = g_file_open_tmp(tmpl, &path, NULL);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    return path;
}

/*
 * 64-byte alignment keeps an area within a page, and RAM regions
 * usually end on a page: the check that the whole area is RAM needs RAM
 * that ends elsewhere.  max-ram-below-4g is not rounded: with -m 128M
 * RAM below 4G ends 32 bytes short of 128M, and RAM above 4G is those
 * 32 bytes.  Aligned areas there are refused by the range check alone,
 * which the trace says.
 */
#define RAM_END_LOW  0x7ffffe0ULL

static void test_msr_ram_end(void)
{
    g_autofree char *log = NULL;
    g_autofree char *text = NULL;
    g_autofree char *args = NULL;
    QTestState *qts;

    log = empty_tmp_file("pvsched-test-trace-XXXXXX");
    args = g_strdup_printf("-machine pc,max-ram-below-4g=%llu -smp 1 "
                           "-m 128M -cpu qemu64 "
                           "-object pvsched-policy,id=pol0 "
                           "-device pvsched,policy=pol0 "
                           "-trace pvsched_msr_invalid -D %s",
                           RAM_END_LOW, log);
    qts = qtest_init(args);

    /* The last whole area below the end is fine. */
    g_assert_true(wrmsr(qts, 0, (RAM_END_LOW - 0x60) | MSR_ENABLE));
    g_assert_true(wrmsr(qts, 0, 0));
    /* Its first 32 bytes are RAM, the rest is not. */
    g_assert_false(wrmsr(qts, 0, (RAM_END_LOW - 0x20) | MSR_ENABLE));
    /* 32 bytes of RAM above 4G. */
    g_assert_false(wrmsr(qts, 0, 0x100000000ULL | MSR_ENABLE));
    g_assert_cmphex(rdmsr(qts, 0), ==, 0);
    qtest_quit(qts);

    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    unlink(log);
    g_test_message("trace: %s", text);
    g_assert_nonnull(strstr(text, "0x7ffffc1: runs past the end of RAM"));
    g_assert_nonnull(strstr(text, "0x100000001: runs past the end of RAM"));
}

/*
 * virtio-mem memory that the guest has not plugged is discarded: an area
 * there would be written behind virtio-mem's back (populating it again),
 * so it is refused like MMIO.  The guest plugs nothing here, so all of
 * the device's memory is unplugged.
 */
static void test_msr_unplugged_virtio_mem(void)
{
    QTestState *qts = qtest_init("-machine pc -smp 1 -m 128M,maxmem=1G "
                                 "-cpu qemu64 "
                                 "-object memory-backend-ram,id=vmem0,"
                                 "size=128M "
                                 "-device virtio-mem-pci,id=vm0,"
                                 "memdev=vmem0,requested-size=0 "
                                 "-object pvsched-policy,id=pol0 "
                                 "-device pvsched,policy=pol0");
    uint64_t addr = qom_get_int(qts, "/machine/peripheral/vm0", "memaddr");

    g_assert_cmphex(addr, !=, 0);
    g_assert_cmpint(qom_get_int(qts, "/machine/peripheral/vm0", "size"), ==,
                    0);
    g_assert_false(wrmsr(qts, 0, addr | MSR_ENABLE));
    g_assert_false(wrmsr(qts, 0, (addr + 64 * 1024 * 1024) | MSR_ENABLE));
    g_assert_cmphex(rdmsr(qts, 0), ==, 0);
    /* Plain RAM still is fine. */
    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    qtest_quit(qts);
}

#define DIMM_ADDR   0x100000000ULL
#define MHP_BASE    0x0a00      /* ACPI memory hotplug registers (PIIX4) */

/*
 * An area keeps its memory alive after the DIMM that held it is gone and
 * its backend deleted; the disable that lets go of it must not finalize
 * the memory on the vCPU thread without the BQL (memory regions are
 * finalized under the BQL, which memory_region_transaction_commit()
 * asserts).  Under qtest the MSR handler runs without the BQL, as KVM does.
 */
static void test_area_outlives_dimm(void)
{
    QTestState *qts = qtest_init("-machine pc -smp 1 "
                                 "-m 128M,slots=1,maxmem=1G -cpu qemu64 "
                                 "-object memory-backend-ram,id=mem0,"
                                 "size=128M "
                                 "-device pc-dimm,id=dimm0,memdev=mem0,"
                                 "addr=0x100000000 "
                                 "-object pvsched-policy,id=pol0 "
                                 "-device pvsched,policy=pol0");
    QDict *rsp;

    g_assert_true(wrmsr(qts, 0, DIMM_ADDR | MSR_ENABLE));
    g_assert_cmphex(qtest_readq(qts, DIMM_ADDR), ==, NORMAL);

    /* Unplug: the request, then the guest's ACPI eject of slot 0. */
    qtest_qmp_assert_success(qts, "{'execute': 'device_del', "
                             "'arguments': {'id': 'dimm0'}}");
    qtest_outl(qts, MHP_BASE, 0);
    qtest_outb(qts, MHP_BASE + 0x14, 8);
    qtest_qmp_eventwait(qts, "DEVICE_DELETED");
    qtest_qmp_assert_success(qts, "{'execute': 'object-del', "
                             "'arguments': {'id': 'mem0'}}");
    rsp = qtest_qmp(qts, "{'execute': 'qom-list', 'arguments': {"
                    "'path': '/objects/mem0'}}");
    g_assert_true(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);
    /*
     * The memory maps of before the unplug hold the memory until RCU
     * frees them; a device_add that fails waits for that (it calls
     * drain_call_rcu()).  Then the area holds the last reference.
     */
    rsp = qtest_qmp(qts, "{'execute': 'device_add', 'arguments': {"
                    "'driver': 'pvsched-test-no-such-device'}}");
    g_assert_true(qdict_haskey(rsp, "error"));
    qobject_unref(rsp);

    /* Still registered; letting go of it frees the memory. */
    g_assert_cmphex(rdmsr(qts, 0), ==, DIMM_ADDR | MSR_ENABLE);
    vm_exit(qts, 0);
    g_assert_true(wrmsr(qts, 0, 0));
    g_assert_cmphex(rdmsr(qts, 0), ==, 0);
    /* The memory the area was in is gone from the guest's view. */
    g_assert_false(wrmsr(qts, 0, DIMM_ADDR | MSR_ENABLE));
    qtest_quit(qts);
}

static void test_boost_through_the_area(void)
{
    QTestState *qts = qtest_init(QTEST_VM);

    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    g_assert_true(wrmsr(qts, 1, AREA1 | MSR_ENABLE));

    /* A lazy BOOST: nothing until the vCPU leaves the guest. */
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, NORMAL);
    vm_exit(qts, 0);
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, BOOSTED);
    assert_vcpu(qts, 0, "boosted", "fifo", 8);
    assert_vcpu(qts, 1, "normal", "other", 0);

    /* UNBOOST through the doorbell. */
    qtest_writeb(qts, AREA0 + 8, REQ_UNBOOST);
    g_assert_true(wrmsr(qts, 0, DOORBELL));
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, NORMAL);
    assert_vcpu(qts, 0, "normal", "other", 0);

    /* An undefined request changes nothing. */
    qtest_writeb(qts, AREA1 + 8, 0x7f);
    vm_exit(qts, 1);
    assert_vcpu(qts, 1, "normal", "other", 0);

    /* Disable unboosts. */
    qtest_writeb(qts, AREA1 + 8, REQ_BOOST);
    vm_exit(qts, 1);
    assert_vcpu(qts, 1, "boosted", "fifo", 8);
    g_assert_true(wrmsr(qts, 1, 0));
    assert_vcpu(qts, 1, "disabled", "other", 0);
    g_assert_cmphex(qtest_readq(qts, AREA1), ==, DISABLED);
    qtest_quit(qts);
}

static void test_reset(void)
{
    QTestState *qts = qtest_init(QTEST_VM);
    QDict *v;

    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "boosted", "fifo", 8);

    qobject_unref(qtest_qmp(qts, "{'execute': 'system_reset'}"));
    qtest_qmp_eventwait(qts, "RESET");
    /* Reset work is queued on the vCPU: this waits for it. */
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "disabled", "other", 0);
    v = vcpu_state(qts, 0);
    g_assert_false(qdict_get_bool(v, "registered"));
    qobject_unref(v);
    g_assert_cmphex(rdmsr(qts, 0), ==, 0);
    /* After reset, guest memory is not ours to write. */
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, BOOSTED);
    qtest_quit(qts);
}

/*
 * The qcow2 disk savevm needs, made by this QEMU itself (no qemu-img
 * here): a file node on an empty file, blockdev-create, the qcow2 node.
 */
static void add_snapshot_disk(QTestState *qts, const char *path)
{
    QDict *ev;
    bool done = false;

    qtest_qmp_assert_success(qts, "{'execute': 'blockdev-add', "
                             "'arguments': {'driver': 'file', "
                             "'node-name': 'snapfile', 'filename': %s}}",
                             path);
    qtest_qmp_assert_success(qts, "{'execute': 'blockdev-create', "
                             "'arguments': {'job-id': 'mk', 'options': {"
                             "'driver': 'qcow2', 'file': 'snapfile', "
                             "'size': 1048576}}}");
    while (!done) {
        ev = qtest_qmp_eventwait_ref(qts, "JOB_STATUS_CHANGE");
        done = !strcmp(qdict_get_str(qdict_get_qdict(ev, "data"), "status"),
                       "concluded");
        qobject_unref(ev);
    }
    qtest_qmp_assert_success(qts, "{'execute': 'job-dismiss', "
                             "'arguments': {'id': 'mk'}}");
    qtest_qmp_assert_success(qts, "{'execute': 'blockdev-add', "
                             "'arguments': {'driver': 'qcow2', "
                             "'node-name': 'snapdisk', 'file': 'snapfile'}}");
}

static void hmp_ok(QTestState *qts, const char *cmd)
{
    g_autofree char *out = qtest_hmp(qts, "%s", cmd);

    if (*out) {
        g_test_message("%s: %s", cmd, out);
    }
    g_assert_cmpstr(out, ==, "");
}

static void assert_emulator(QTestState *qts, const char *policy, int prio)
{
    QDict *rsp = query(qts);
    QDict *sched = qdict_get_qdict(qdict_get_qdict(qdict_get_qdict(rsp,
                                   "return"), "emulator"), "sched");

    g_assert_cmpstr(qdict_get_str(sched, "policy"), ==, policy);
    g_assert_cmpint(qdict_get_int(sched, "priority"), ==, prio);
    qobject_unref(rsp);
}

static void assert_registered(QTestState *qts, int cpu, uint64_t area)
{
    QDict *v = vcpu_state(qts, cpu);

    g_assert_cmpint(qdict_get_bool(v, "registered"), ==, area != 0);
    if (area) {
        g_assert_cmphex(qdict_get_int(v, "area"), ==, area);
    }
    qobject_unref(v);
}

/*
 * The vapic option ROM's reset calls run_on_cpu(), which lets every vCPU
 * run the work queued on it before reset returns.  Without it nothing in
 * reset or loadvm waits for the vCPUs: what reset queued runs after the
 * snapshot or the incoming state is loaded.
 */
#define NO_VAPIC " -global apic-common.vapic=off"

/*
 * loadvm resets the machine, then loads the snapshot: each vCPU ends up
 * with the snapshot's registration, unboosted by its own thread, and the
 * main loop keeps its own attributes.  Checked right after loadvm and
 * again once each vCPU has run whatever work was queued on it: work that
 * reset queued must not undo what was loaded.
 */
static void loadvm_while_boosted(const char *args)
{
    g_autofree char *disk = NULL;
    QTestState *qts;

    disk = empty_tmp_file("pvsched-test-disk-XXXXXX");
    qts = qtest_init(args);
    add_snapshot_disk(qts, disk);

    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "boosted", "fifo", 8);
    assert_emulator(qts, "fifo", 9);
    /* In the snapshot: vCPU 0 registered and boosted, vCPU 1 not. */
    hmp_ok(qts, "savevm s0");
    g_assert_true(wrmsr(qts, 1, AREA1 | MSR_ENABLE));
    assert_vcpu(qts, 1, "normal", "other", 0);

    hmp_ok(qts, "loadvm s0");
    assert_registered(qts, 0, AREA0);
    assert_vcpu(qts, 0, "normal", "other", 0);
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, NORMAL);
    assert_registered(qts, 1, 0);
    assert_vcpu(qts, 1, "disabled", "other", 0);
    assert_emulator(qts, "fifo", 9);

    /*
     * An op on a vCPU runs what is queued there, then the exit hook, as
     * KVM would: the registrations stay as loaded, and the snapshot's
     * guest, which still asks for BOOST, is boosted.
     */
    g_assert_cmphex(rdmsr(qts, 1), ==, 0);
    g_assert_cmphex(rdmsr(qts, 0), ==, AREA0 | MSR_ENABLE);
    assert_registered(qts, 1, 0);
    assert_vcpu(qts, 1, "disabled", "other", 0);
    assert_registered(qts, 0, AREA0);
    assert_vcpu(qts, 0, "boosted", "fifo", 8);
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, BOOSTED);
    assert_emulator(qts, "fifo", 9);
    qtest_quit(qts);
    unlink(disk);
}

static void test_loadvm(void)
{
    loadvm_while_boosted(QTEST_VM);
}

static void test_loadvm_undrained(void)
{
    loadvm_while_boosted(QTEST_VM NO_VAPIC);
}

/* Static mode boosts every vCPU from the start, registered or not. */
static void test_static_from_start(void)
{
    QTestState *qts = qtest_init("-machine pc -smp 2 -m 128M -cpu qemu64 "
                                 "-object pvsched-policy,id=pol0,mode=static,"
                                 "boost-priority=8 "
                                 "-device pvsched,policy=pol0");
    QDict *rsp;

    /* vm_exit() waits for the work realize queued on each vCPU. */
    vm_exit(qts, 0);
    vm_exit(qts, 1);
    assert_vcpu(qts, 0, "disabled", "fifo", 8);
    assert_vcpu(qts, 1, "disabled", "fifo", 8);

    /* Registering shows the guest the boost it already has. */
    g_assert_true(wrmsr(qts, 1, AREA1 | MSR_ENABLE));
    assert_vcpu(qts, 1, "boosted", "fifo", 8);
    g_assert_cmphex(qtest_readq(qts, AREA1), ==, BOOSTED);

    /* Mode off unboosts registered and unregistered alike. */
    rsp = qtest_qmp(qts, "{'execute': 'pvsched-set-policy', 'arguments': {"
                    "'id': 'pol0', 'mode': 'off'}}");
    g_assert_true(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    assert_vcpu(qts, 0, "disabled", "other", 0);
    assert_vcpu(qts, 1, "normal", "other", 0);
    qtest_quit(qts);
}

/* Microseconds above UINT32_MAX / 1000 must not wrap when made ns. */
#define US_PAST_U32_NS 4294968

static const char *vcpu_status(QTestState *qts, int cpu)
{
    QDict *v = vcpu_state(qts, cpu);
    const char *status = g_intern_string(qdict_get_str(v, "status"));

    qobject_unref(v);
    return status;
}

/*
 * Reset ends every registration in the reset itself, with the vCPUs
 * stopped: query-pvsched right after it, before the vCPU has run
 * anything (the VM stopped, nothing draining its queue), shows it
 * unregistered.  Only the unboost waits for the vCPU's own thread, which
 * alone changes its attributes; the main loop keeps its FIFO.  The
 * guest's memory is not written: after reset it is not ours.
 */
static void test_reset_stopped(void)
{
    QTestState *qts = qtest_init(QTEST_VM NO_VAPIC);

    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "boosted", "fifo", 8);

    qtest_qmp_assert_success(qts, "{'execute': 'stop'}");
    qtest_qmp_assert_success(qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(qts, "RESET");
    assert_registered(qts, 0, 0);
    g_assert_cmpstr(vcpu_status(qts, 0), ==, "disabled");
    assert_emulator(qts, "fifo", 9);

    /* The vCPU runs what reset queued on it: the unboost, nothing else. */
    g_assert_cmphex(rdmsr(qts, 0), ==, 0);
    assert_registered(qts, 0, 0);
    assert_vcpu(qts, 0, "disabled", "other", 0);
    assert_emulator(qts, "fifo", 9);
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, BOOSTED);

    /* The guest can register again, as after any reset. */
    g_assert_true(wrmsr(qts, 0, AREA1 | MSR_ENABLE));
    assert_vcpu(qts, 0, "normal", "other", 0);
    qtest_quit(qts);
}

/*
 * Migrate @src to a new QEMU started with @dst_args, over a UNIX socket.
 * The destination's stderr goes to @dst_err (libqtest starts QEMU with
 * sh -c) and it stays up when loading fails (exit-on-error false), so
 * that the test can see why.  Returns the destination; *@status is its
 * incoming migration's final status.
 */
static QTestState *migrate(QTestState *src, const char *dst_args,
                           const char *dst_err, char **status)
{
    g_autofree char *dir = g_dir_make_tmp("pvsched-test-mig-XXXXXX", NULL);
    g_autofree char *uri = g_strdup_printf("unix:%s/sock", dir);
    g_autofree char *sock = g_strdup_printf("%s/sock", dir);
    QTestState *dst;
    QDict *rsp, *ret;
    const char *st;
    bool src_done = false, dst_done = false;
    int i;

    g_assert_nonnull(dir);
    dst = qtest_initf("%s -incoming defer 2>%s", dst_args, dst_err);
    qtest_qmp_assert_success(dst, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    qtest_qmp_assert_success(src, "{'execute': 'migrate', "
                             "'arguments': {'uri': %s}}", uri);
    *status = NULL;
    for (i = 0; i < 3000 && !(src_done && dst_done); i++) {
        if (!src_done) {
            rsp = qtest_qmp(src, "{'execute': 'query-migrate'}");
            ret = qdict_get_qdict(rsp, "return");
            st = qdict_haskey(ret, "status") ?
                 qdict_get_str(ret, "status") : "";
            src_done = !strcmp(st, "completed") || !strcmp(st, "failed");
            qobject_unref(rsp);
        }
        if (!dst_done) {
            rsp = qtest_qmp(dst, "{'execute': 'query-migrate'}");
            ret = qdict_get_qdict(rsp, "return");
            st = qdict_haskey(ret, "status") ?
                 qdict_get_str(ret, "status") : "";
            dst_done = !strcmp(st, "completed") || !strcmp(st, "failed");
            if (dst_done) {
                *status = g_strdup(st);
            }
            qobject_unref(rsp);
        }
        g_usleep(10 * 1000);
    }
    g_assert_true(src_done && dst_done);
    unlink(sock);
    rmdir(dir);
    return dst;
}

static char *read_text(const char *path)
{
    char *text = NULL;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    return text;
}

/*
 * The registration travels with its vCPU (vmstate_x86_cpu's
 * cpu/pvsched_msr subsection): the destination has it at the same area
 * before the guest runs again, and tells the guest NORMAL there.  Boosts
 * are not carried: the destination's thread is boosted at its first exit
 * if the guest still asks.  A vCPU that never registered stays so.
 */
static void test_migrate_registered(void)
{
    g_autofree char *err = empty_tmp_file("pvsched-test-err-XXXXXX");
    g_autofree char *status = NULL;
    QTestState *src = qtest_init(QTEST_VM);
    QTestState *dst;

    g_assert_true(wrmsr(src, 0, AREA0 | MSR_ENABLE));
    qtest_writeb(src, AREA0 + 8, REQ_BOOST);
    vm_exit(src, 0);
    assert_vcpu(src, 0, "boosted", "fifo", 8);

    dst = migrate(src, QTEST_VM, err, &status);
    g_assert_cmpstr(status, ==, "completed");
    assert_registered(dst, 0, AREA0);
    assert_registered(dst, 1, 0);
    g_assert_cmpstr(vcpu_status(dst, 0), ==, "normal");
    g_assert_cmpstr(vcpu_status(dst, 1), ==, "disabled");
    g_assert_cmphex(qtest_readq(dst, AREA0), ==, NORMAL);
    assert_emulator(dst, "fifo", 9);

    g_assert_cmphex(rdmsr(dst, 0), ==, AREA0 | MSR_ENABLE);
    g_assert_cmphex(rdmsr(dst, 1), ==, 0);
    vm_exit(dst, 0);
    assert_vcpu(dst, 0, "boosted", "fifo", 8);
    g_assert_cmphex(qtest_readq(dst, AREA0), ==, BOOSTED);
    assert_emulator(dst, "fifo", 9);
    qtest_quit(dst);
    qtest_quit(src);
    unlink(err);
}

/* The destination of the tests below: no pvsched device at all. */
#define PLAIN_VM "-machine pc -smp 2 -m 128M -cpu qemu64"

/*
 * A guest that never registered sends nothing of pvsched: it migrates to
 * a QEMU without the device (or without pvsched) as any other VM does.
 */
static void test_migrate_unregistered(void)
{
    g_autofree char *err = empty_tmp_file("pvsched-test-err-XXXXXX");
    g_autofree char *status = NULL;
    g_autofree char *text = NULL;
    QTestState *src = qtest_init(QTEST_VM);
    QTestState *dst;

    /* Registered once, then no more: the MSR reads 0 again. */
    g_assert_true(wrmsr(src, 1, AREA1 | MSR_ENABLE));
    g_assert_true(wrmsr(src, 1, 0));

    dst = migrate(src, PLAIN_VM, err, &status);
    text = read_text(err);
    if (strcmp(status, "completed")) {
        g_test_message("destination's stderr: %s", text);
    }
    g_assert_cmpstr(status, ==, "completed");
    qtest_quit(dst);
    qtest_quit(src);
    unlink(err);
}

/*
 * A registration the destination cannot honour fails the migration, with
 * an error that says which vCPU and what to do, rather than a guest that
 * silently loses its area: no pvsched device there, or the area not in
 * RAM there (the same RAM, laid out differently: below 4G it ends at
 * 64M on the destination).
 */
static void migrate_refused(const char *dst_args, uint64_t area,
                            const char *what)
{
    g_autofree char *err = empty_tmp_file("pvsched-test-err-XXXXXX");
    g_autofree char *status = NULL;
    g_autofree char *text = NULL;
    QTestState *src = qtest_init(QTEST_VM);
    QTestState *dst;

    g_assert_true(wrmsr(src, 1, area | MSR_ENABLE));
    dst = migrate(src, dst_args, err, &status);
    text = read_text(err);
    g_test_message("destination's stderr: %s", text);
    g_assert_cmpstr(status, ==, "failed");
    g_assert_nonnull(strstr(text, what));
    qtest_quit(dst);
    qtest_quit(src);
    unlink(err);
}

static void test_migrate_needs_device(void)
{
    migrate_refused(PLAIN_VM, AREA1,
                    "pvsched: vCPU 1 has a pvsched area registered (at "
                    "0x100040), but this QEMU has no pvsched device");
}

static void test_migrate_invalid_area(void)
{
    migrate_refused("-machine pc,max-ram-below-4g=64M -smp 2 -m 128M "
                    "-cpu qemu64 "
                    "-object pvsched-policy,id=pol0,boost-priority=8,"
                    "max-boost-us=0 "
                    "-device pvsched,policy=pol0",
                    0x6000000ULL,
                    "pvsched: vCPU 1's area at 0x6000000 cannot be "
                    "registered here:");
}

/* Leave the guest until the vCPU is no longer boosted, or give up. */
static const char *exit_until_unboosted(QTestState *qts, int cpu)
{
    int i;

    for (i = 0; i < 100; i++) {
        vm_exit(qts, cpu);
        if (strcmp(vcpu_status(qts, cpu), "boosted")) {
            break;
        }
        g_usleep(1000);
    }
    return vcpu_status(qts, cpu);
}

static QTestState *boost_vcpu0(const char *policy)
{
    g_autofree char *args = g_strdup_printf(
        "-machine pc -smp 1 -m 128M -cpu qemu64 "
        "-object pvsched-policy,id=pol0,boost-priority=8,%s "
        "-device pvsched,policy=pol0", policy);
    QTestState *qts = qtest_init(args);

    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    g_assert_cmpstr(vcpu_status(qts, 0), ==, "boosted");
    return qts;
}

/* vCPU 0 exits to QEMU every millisecond, for about 0.1 s. */
static void exit_for_100ms(QTestState *qts)
{
    int i;

    for (i = 0; i < 100; i++) {
        vm_exit(qts, 0);
        g_usleep(1000);
    }
}

/* A 4.3 s bound is not spent within 0.1 s of boosted time. */
static void test_large_max_boost(void)
{
    g_autofree char *pol = g_strdup_printf("max-boost-us=%d",
                                           US_PAST_U32_NS);
    QTestState *qts = boost_vcpu0(pol);
    QDict *rsp;

    exit_for_100ms(qts);
    g_assert_cmpstr(vcpu_status(qts, 0), ==, "boosted");
    rsp = query(qts);
    g_assert_cmpint(qdict_get_int(qdict_get_qdict(qdict_get_qdict(rsp,
                    "return"), "policy"), "max-boost-us"), ==, US_PAST_U32_NS);
    qobject_unref(rsp);
    qtest_quit(qts);
}

/* A 4.3 s cooldown is not over 0.1 s after the bound tripped. */
static void test_large_cooldown(void)
{
    g_autofree char *pol = g_strdup_printf("max-boost-us=1,cooldown-us=%d",
                                           US_PAST_U32_NS);
    QTestState *qts = boost_vcpu0(pol);
    QDict *v;

    g_assert_cmpstr(exit_until_unboosted(qts, 0), ==, "throttled");
    exit_for_100ms(qts);
    /* The guest still asks: not one boost more. */
    v = vcpu_state(qts, 0);
    g_assert_cmpstr(qdict_get_str(v, "status"), ==, "throttled");
    g_assert_cmpint(qdict_get_int(v, "boosts"), ==, 1);
    g_assert_cmpint(qdict_get_int(v, "throttles"), ==, 1);
    qobject_unref(v);
    qtest_quit(qts);
}

/* How often @what occurs in the file at @path. */
static int count_matches(const char *path, const char *what)
{
    g_autofree char *text = NULL;
    const char *p;
    int n = 0;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    for (p = text; (p = strstr(p, what)); p += strlen(what)) {
        n++;
    }
    return n;
}

/*
 * A boosted vCPU over its bound that does not run (halted, stopped; here
 * the qtest vCPU, which only runs when told to) is kicked, but the main
 * loop must not keep waking to kick it again at a high rate.
 */
static void test_bound_kick_backoff(void)
{
    g_autofree char *log = NULL;
    g_autofree char *pol = NULL;
    QTestState *qts;
    int kicks;

    log = empty_tmp_file("pvsched-test-trace-XXXXXX");
    pol = g_strdup_printf("max-boost-us=1 -trace pvsched_bound_kick -D %s",
                          log);
    qts = boost_vcpu0(pol);
    g_usleep(500 * 1000);
    g_assert_cmpstr(vcpu_status(qts, 0), ==, "boosted");
    qtest_quit(qts);

    kicks = count_matches(log, "pvsched_bound_kick");
    unlink(log);
    g_test_message("%d kicks in 0.5 s", kicks);
    g_assert_cmpint(kicks, >=, 1);
    g_assert_cmpint(kicks, <=, 200);
}

static int area_events(QTestState *qts, int cpu, int *last_registered)
{
    QDict *ev;
    int n = 0;

    qobject_unref(query(qts));      /* let queued events through */
    while ((ev = qtest_qmp_event_ref(qts, "PVSCHED_AREA_CHANGED"))) {
        QDict *data = qdict_get_qdict(ev, "data");

        if (qdict_get_int(data, "cpu-index") == cpu) {
            n++;
            *last_registered = qdict_get_bool(data, "registered");
        }
        qobject_unref(ev);
    }
    return n;
}

/* Guest-triggered events: one per second per vCPU, the last one kept. */
static void test_event_rate_limit(void)
{
    QTestState *qts = qtest_init(QTEST_VM);
    int i, registered = -1;

    for (i = 0; i < 5; i++) {
        g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
        g_assert_true(wrmsr(qts, 0, 0));
    }
    g_assert_cmpint(area_events(qts, 0, &registered), ==, 1);
    g_assert_cmpint(registered, ==, 1);
    /* Another vCPU is not held back by the first one's limit. */
    g_assert_true(wrmsr(qts, 1, AREA1 | MSR_ENABLE));
    g_assert_cmpint(area_events(qts, 1, &registered), ==, 1);
    /* A second later the last of the burst arrives: disabled. */
    qtest_clock_step(qts, 1000 * 1000 * 1000);
    g_assert_cmpint(area_events(qts, 0, &registered), ==, 1);
    g_assert_cmpint(registered, ==, 0);
    qtest_quit(qts);
}

/*
 * Threads as the kernel has them, read (and, to set up a case, changed)
 * from outside QEMU with the kernel's struct sched_attr.
 */
struct test_sched_attr {
    uint32_t size;
    uint32_t policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
};

/* "fifo/9", "other/0": a thread's policy and real-time priority. */
static char *thread_sched_str(int tid)
{
    static const char *const names[] = {
        [SCHED_OTHER] = "other", [SCHED_FIFO] = "fifo", [SCHED_RR] = "rr",
        [SCHED_BATCH] = "batch", [SCHED_IDLE] = "idle", [6] = "deadline",
    };
    struct test_sched_attr a = { };

    g_assert_cmpint(syscall(SYS_sched_getattr, tid, &a, sizeof(a), 0), ==,
                    0);
    g_assert_cmpuint(a.policy, <, ARRAY_SIZE(names));
    return g_strdup_printf("%s/%u", names[a.policy], a.priority);
}

#define assert_thread(tid, want) do {                               \
        g_autofree char *got_ = thread_sched_str(tid);              \
        g_assert_cmpstr(got_, ==, want);                            \
    } while (0)

static int set_thread_fifo(int tid, int prio)
{
    struct test_sched_attr a = {
        .size = sizeof(a),
        .policy = prio ? SCHED_FIFO : SCHED_OTHER,
        .priority = prio,
    };

    return syscall(SYS_sched_setattr, tid, &a, 0) < 0 ? -errno : 0;
}

static int vcpu_tid(QTestState *qts, int cpu)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-cpus-fast'}");
    QListEntry *e;
    int tid = 0;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(rsp, "return"), e) {
        QDict *c = qobject_to(QDict, qlist_entry_obj(e));

        if (qdict_get_int(c, "cpu-index") == cpu) {
            tid = qdict_get_int(c, "thread-id");
        }
    }
    qobject_unref(rsp);
    g_assert_cmpint(tid, >, 0);
    return tid;
}

static int iothread_tid(QTestState *qts, const char *id)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-iothreads'}");
    QListEntry *e;
    int tid = 0;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(rsp, "return"), e) {
        QDict *t = qobject_to(QDict, qlist_entry_obj(e));

        if (!strcmp(qdict_get_str(t, "id"), id)) {
            tid = qdict_get_int(t, "thread-id");
        }
    }
    qobject_unref(rsp);
    g_assert_cmpint(tid, >, 0);
    return tid;
}

/* The main loop runs in QEMU's main thread. */
static int main_loop_tid(QTestState *qts)
{
    return qtest_pid(qts);
}

/* Send @cmd; return the error's description, or NULL on success. */
static char *qmp_error(QTestState *qts, const char *cmd, const char *args)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': %s, 'arguments': %p}", cmd,
                           qobject_from_json(args, &error_abort));
    char *desc = NULL;

    if (qdict_haskey(rsp, "error")) {
        desc = g_strdup(qdict_get_str(qdict_get_qdict(rsp, "error"),
                                      "desc"));
        g_test_message("%s: %s", cmd, desc);
    } else {
        g_assert_true(qdict_haskey(rsp, "return"));
    }
    qobject_unref(rsp);
    return desc;
}

static void qmp_ok(QTestState *qts, const char *cmd, const char *args)
{
    g_autofree char *err = qmp_error(qts, cmd, args);

    g_assert_null(err);
}

static void qmp_refused(QTestState *qts, const char *cmd, const char *args,
                        const char *what)
{
    g_autofree char *err = qmp_error(qts, cmd, args);

    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, what));
}

static bool object_exists(QTestState *qts, const char *path)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'qom-list', 'arguments': {"
                           "'path': %s}}", path);
    bool exists = qdict_haskey(rsp, "return");

    qobject_unref(rsp);
    return exists;
}

/*
 * A vCPU reads its thread's own attributes once, not at every boost; the
 * VM's resume has it read them again.  Without stop/cont, a change made
 * from outside is undone by the next unboost (as documented); with them,
 * the unboost gives it back.
 */
static void test_own_attributes_at_resume(void)
{
    QTestState *qts = qtest_init(QTEST_VM);
    int tid = vcpu_tid(qts, 0);

    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    assert_thread(tid, "fifo/8");
    qtest_writeb(qts, AREA0 + 8, REQ_UNBOOST);
    vm_exit(qts, 0);
    assert_thread(tid, "other/0");

    g_assert_cmpint(set_thread_fifo(tid, 3), ==, 0);
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    qtest_writeb(qts, AREA0 + 8, REQ_UNBOOST);
    vm_exit(qts, 0);
    assert_thread(tid, "other/0");

    g_assert_cmpint(set_thread_fifo(tid, 3), ==, 0);
    qtest_qmp_assert_success(qts, "{'execute': 'stop'}");
    qtest_qmp_assert_success(qts, "{'execute': 'cont'}");
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    assert_thread(tid, "fifo/8");
    qtest_writeb(qts, AREA0 + 8, REQ_UNBOOST);
    vm_exit(qts, 0);
    assert_thread(tid, "fifo/3");
    assert_vcpu(qts, 0, "normal", "fifo", 3);
    qtest_quit(qts);
}

/*
 * To make one thread's change fail, deterministically, from outside QEMU,
 * whichever way this host allows:
 * - a cpu cgroup (v1, with RT group scheduling) without real-time
 *   runtime, where a thread cannot become SCHED_FIFO, not even with
 *   CAP_SYS_NICE;
 * - else QEMU runs without CAP_SYS_NICE, with RLIMIT_RTPRIO 30, and the
 *   thread is made SCHED_IDLE from outside: without CAP_SYS_NICE a
 *   thread leaves SCHED_IDLE only as far as RLIMIT_NICE (here 0) allows.
 */
#define CPU_CGROUP "/sys/fs/cgroup/cpu"
#define UNPRIVILEGED "prlimit --rtprio=30:30 --nice=0:0 setpriv " \
    "--inh-caps=-sys_nice --bounding-set=-sys_nice "

typedef struct Breaker {
    char *cgroup;           /* NULL: SCHED_IDLE, QEMU unprivileged */
    const char *broken;     /* what a broken thread shows */
} Breaker;

static bool can_run_unprivileged(void)
{
    g_auto(GStrv) argv = NULL;
    int status;

    g_assert_true(g_shell_parse_argv(UNPRIVILEGED "true", NULL, &argv,
                                     NULL));
    return g_spawn_sync(NULL, argv, NULL,
                        G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL |
                        G_SPAWN_STDERR_TO_DEV_NULL,
                        NULL, NULL, NULL, NULL, &status, NULL) &&
           WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static bool breaker_init(Breaker *b)
{
    char *dir = g_strdup_printf(CPU_CGROUP "/pvsched-test-%d", getpid());
    g_autofree char *runtime = g_strdup_printf("%s/cpu.rt_runtime_us", dir);
    g_autofree char *text = NULL;

    if ((mkdir(dir, 0755) == 0 || errno == EEXIST) &&
        g_file_get_contents(runtime, &text, NULL, NULL) &&
        atoi(text) == 0) {
        *b = (Breaker) { .cgroup = dir, .broken = "other/0" };
        return true;
    }
    rmdir(dir);
    g_free(dir);
    if (can_run_unprivileged()) {
        *b = (Breaker) { .broken = "idle/0" };
        return true;
    }
    g_test_skip("needs a cpu cgroup with RT group scheduling (cgroup v1, "
                "CONFIG_RT_GROUP_SCHED), or to run QEMU without "
                "CAP_SYS_NICE with RLIMIT_RTPRIO 30, to make a thread's "
                "sched_setattr() fail");
    return false;
}

static QTestState *breaker_qemu(Breaker *b, const char *args)
{
    g_autofree char *qemu = NULL;

    if (b->cgroup) {
        return qtest_init(args);
    }
    qemu = g_strdup_printf(UNPRIVILEGED "%s",
                           g_getenv("QTEST_QEMU_BINARY"));
    g_setenv("PVSCHED_TEST_QEMU", qemu, true);
    return qtest_init_with_env("PVSCHED_TEST_QEMU", args, true);
}

static void cgroup_move(const char *cgroup, int tid)
{
    g_autofree char *tasks = g_strdup_printf("%s/tasks", cgroup);
    g_autofree char *id = g_strdup_printf("%d", tid);
    int fd;

    /* Only a SCHED_OTHER thread may enter a group without RT runtime. */
    g_assert_cmpint(set_thread_fifo(tid, 0), ==, 0);
    fd = open(tasks, O_WRONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, id, strlen(id)), ==, strlen(id));
    close(fd);
}

/* From now on, thread @tid cannot become SCHED_FIFO. */
static void breaker_break(Breaker *b, int tid)
{
    struct test_sched_attr idle = { .size = sizeof(idle),
                                    .policy = SCHED_IDLE };

    if (b->cgroup) {
        cgroup_move(b->cgroup, tid);
    } else {
        g_assert_cmpint(syscall(SYS_sched_setattr, tid, &idle, 0), ==, 0);
    }
    assert_thread(tid, b->broken);
}

static void breaker_mend(Breaker *b, int tid)
{
    if (b->cgroup) {
        cgroup_move(CPU_CGROUP, tid);
    } else {
        g_assert_cmpint(set_thread_fifo(tid, 0), ==, 0);
    }
}

static void breaker_cleanup(Breaker *b)
{
    if (b->cgroup) {
        rmdir(b->cgroup);
        g_free(b->cgroup);
    }
}

/*
 * A run-time change that fails at a later step (here the I/O thread,
 * which cannot become SCHED_FIFO) leaves every thread as it was: the
 * main loop changed before it, going up, and the vCPUs changed before
 * it, going down, are given back their attributes.
 */
static void test_change_rolls_back(void)
{
    Breaker b;
    QTestState *qts;
    int main_tid, vcpu, iot;

    if (!breaker_init(&b)) {
        return;
    }
    qts = breaker_qemu(&b, "-machine pc -smp 1 -m 128M -cpu qemu64 "
                       "-object pvsched-policy,id=pol0,boost-priority=8,"
                       "max-boost-us=0,priority-ceiling=30 "
                       "-object iothread,id=io0 "
                       "-device pvsched,policy=pol0");
    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    main_tid = main_loop_tid(qts);
    vcpu = vcpu_tid(qts, 0);
    iot = iothread_tid(qts, "io0");
    assert_thread(main_tid, "fifo/9");
    assert_thread(iot, "fifo/9");
    assert_thread(vcpu, "fifo/8");
    breaker_break(&b, iot);

    /* Up: the main loop goes first, then the I/O thread fails. */
    qmp_refused(qts, "pvsched-set-policy", "{'id': 'pol0', "
                "'boost-priority': 12}", "cannot set");
    assert_thread(main_tid, "fifo/9");
    assert_thread(vcpu, "fifo/8");
    assert_thread(iot, b.broken);
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "boost-priority"), ==,
                    8);

    /* Down: the vCPU goes first, then the I/O thread fails. */
    qmp_refused(qts, "pvsched-set-policy", "{'id': 'pol0', "
                "'boost-priority': 3}", "cannot set");
    assert_thread(main_tid, "fifo/9");
    assert_thread(vcpu, "fifo/8");
    assert_thread(iot, b.broken);
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "boost-priority"), ==,
                    8);
    g_assert_cmpstr(vcpu_status(qts, 0), ==, "boosted");
    qtest_quit(qts);
    breaker_cleanup(&b);
}

/* Set QEMU's RLIMIT_RTPRIO from outside, as "prlimit --pid" does. */
static void set_rtprio_limit(QTestState *qts, int limit)
{
    struct rlimit rl = { .rlim_cur = limit, .rlim_max = limit };

    g_assert_cmpint(prlimit(qtest_pid(qts), RLIMIT_RTPRIO, &rl, NULL), ==,
                    0);
}

/*
 * The host takes the permission away under a running guest (RLIMIT_RTPRIO
 * lowered with prlimit --pid, QEMU without CAP_SYS_NICE), then gives it
 * back.  A boost already held stays until the guest lets go; a new one is
 * refused: the guest reads NORMAL, query-pvsched says why, QEMU warns
 * once per vCPU however often the guest asks, and the thread is left as
 * it was.  With the limit back, the next request boosts.
 */
static void test_fault_rtprio_lowered(void)
{
    g_autofree char *err = NULL;
    g_autofree char *args = NULL;
    g_autofree char *qemu = NULL;
    const char *warning = "changing its thread's scheduling failed";
    QTestState *qts;
    QDict *v;
    int i;

    if (!can_run_unprivileged()) {
        g_test_skip("needs to run QEMU without CAP_SYS_NICE (setpriv, "
                    "prlimit)");
        return;
    }
    err = empty_tmp_file("pvsched-test-stderr-XXXXXX");
    args = g_strdup_printf(QTEST_VM " 2>%s", err);
    qemu = g_strdup_printf(UNPRIVILEGED "%s",
                           g_getenv("QTEST_QEMU_BINARY"));
    g_setenv("PVSCHED_TEST_QEMU", qemu, true);
    qts = qtest_init_with_env("PVSCHED_TEST_QEMU", args, true);
    g_assert_true(wrmsr(qts, 0, AREA0 | MSR_ENABLE));
    g_assert_true(wrmsr(qts, 1, AREA1 | MSR_ENABLE));
    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "boosted", "fifo", 8);

    set_rtprio_limit(qts, 0);
    /* Held: the kernel checks the limit only when a priority is raised. */
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "boosted", "fifo", 8);
    qtest_writeb(qts, AREA0 + 8, REQ_UNBOOST);
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "normal", "other", 0);

    qtest_writeb(qts, AREA0 + 8, REQ_BOOST);
    qtest_writeb(qts, AREA1 + 8, REQ_BOOST);
    for (i = 0; i < 5; i++) {
        vm_exit(qts, 0);
        vm_exit(qts, 1);
    }
    for (i = 0; i < 2; i++) {
        g_assert_cmphex(qtest_readq(qts, i ? AREA1 : AREA0), ==, NORMAL);
        assert_vcpu(qts, i, "normal", "other", 0);
        v = vcpu_state(qts, i);
        g_assert_cmpstr(qdict_get_try_str(v, "last-error"), ==,
                        "Operation not permitted");
        qobject_unref(v);
    }
    g_assert_cmpint(count_matches(err, warning), ==, 2);

    set_rtprio_limit(qts, 30);
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "boosted", "fifo", 8);
    g_assert_cmphex(qtest_readq(qts, AREA0), ==, BOOSTED);
    v = vcpu_state(qts, 0);
    g_assert_false(qdict_haskey(v, "last-error"));
    qobject_unref(v);
    qtest_quit(qts);
    unlink(err);
}

/* Positions in @log of the lines that set a thread to fifo/@prio. */
static GArray *fifo_sets(const char *log, int prio)
{
    g_autofree char *what = g_strdup_printf(": fifo/%d: 0", prio);
    g_auto(GStrv) lines = g_strsplit(log, "\n", -1);
    GArray *at = g_array_new(false, false, sizeof(int));
    int i;

    for (i = 0; lines[i]; i++) {
        if (strstr(lines[i], "pvsched_sched_set") &&
            g_str_has_suffix(lines[i], what)) {
            g_array_append_val(at, i);
        }
    }
    return at;
}

/*
 * Whoever can wake or police a vCPU runs above it at every moment of a
 * change: going up, the main loop and the I/O thread change before the
 * vCPUs; going down, after them.  Seen in the order of the threads' own
 * sched_setattr() calls.
 */
static void test_change_order(void)
{
    g_autofree char *log = NULL;
    g_autofree char *text = NULL;
    g_autofree char *pol = NULL;
    g_autoptr(GArray) vcpu_down = NULL, emu_down = NULL;
    g_autoptr(GArray) vcpu_up = NULL, emu_up = NULL;
    QTestState *qts;
    int i;

    log = empty_tmp_file("pvsched-test-trace-XXXXXX");
    pol = g_strdup_printf("max-boost-us=0,priority-ceiling=30 "
                          "-object iothread,id=io0 "
                          "-trace pvsched_sched_set -D %s", log);
    qts = boost_vcpu0(pol);
    /* vCPU 8 -> 3, main loop and I/O thread 9 -> 4 */
    qmp_ok(qts, "pvsched-set-policy", "{'id': 'pol0', "
           "'boost-priority': 3}");
    assert_thread(vcpu_tid(qts, 0), "fifo/3");
    /* vCPU 3 -> 12, main loop and I/O thread 4 -> 13 */
    qmp_ok(qts, "pvsched-set-policy", "{'id': 'pol0', "
           "'boost-priority': 12}");
    assert_thread(vcpu_tid(qts, 0), "fifo/12");
    assert_thread(main_loop_tid(qts), "fifo/13");
    qtest_quit(qts);

    g_assert_true(g_file_get_contents(log, &text, NULL, NULL));
    unlink(log);
    vcpu_down = fifo_sets(text, 3);
    emu_down = fifo_sets(text, 4);
    vcpu_up = fifo_sets(text, 12);
    emu_up = fifo_sets(text, 13);
    g_assert_cmpint(vcpu_down->len, ==, 1);
    g_assert_cmpint(emu_down->len, ==, 2);
    g_assert_cmpint(vcpu_up->len, ==, 1);
    g_assert_cmpint(emu_up->len, ==, 2);
    for (i = 0; i < 2; i++) {
        g_test_message("down: vCPU at line %d, emulator thread at line %d",
                       g_array_index(vcpu_down, int, 0),
                       g_array_index(emu_down, int, i));
        g_assert_cmpint(g_array_index(emu_down, int, i), >,
                        g_array_index(vcpu_down, int, 0));
        g_assert_cmpint(g_array_index(emu_up, int, i), <,
                        g_array_index(vcpu_up, int, 0));
    }
}

/*
 * object-add of a policy that fails at its last step (ordering the I/O
 * thread) leaves nothing behind: the main loop's attributes and
 * RLIMIT_RTPRIO are as they were, and a later object-add succeeds.
 */
static void test_object_add_fails_cleanly(void)
{
    Breaker b;
    QTestState *qts;
    int iot, rtprio;

    if (!breaker_init(&b)) {
        return;
    }
    qts = breaker_qemu(&b, "-machine none -object iothread,id=io0");
    iot = iothread_tid(qts, "io0");
    rtprio = rtprio_limit(qts);
    breaker_break(&b, iot);
    qmp_refused(qts, "object-add", "{'qom-type': 'pvsched-policy', "
                "'id': 'pol0', 'priority-ceiling': 20}", "cannot set");
    g_assert_cmpint(rtprio_limit(qts), ==, rtprio);
    assert_thread(main_loop_tid(qts), "other/0");
    assert_thread(iot, b.broken);
    g_assert_false(object_exists(qts, "/objects/pol0"));

    breaker_mend(&b, iot);
    qmp_ok(qts, "object-add", "{'qom-type': 'pvsched-policy', "
           "'id': 'pol0'}");
    assert_thread(main_loop_tid(qts), "fifo/2");
    assert_thread(iot, "fifo/2");
    qtest_quit(qts);
    breaker_cleanup(&b);
}

/* object-del gives the threads back what they had before the policy. */
static void test_object_del_restores(void)
{
    QTestState *qts = qtest_init("-machine none -object iothread,id=io0");
    int main_tid = main_loop_tid(qts);
    int iot = iothread_tid(qts, "io0");

    qmp_ok(qts, "object-add", "{'qom-type': 'pvsched-policy', "
           "'id': 'pol0', 'boost-priority': 4}");
    assert_thread(main_tid, "fifo/5");
    assert_thread(iot, "fifo/5");
    qmp_ok(qts, "object-del", "{'id': 'pol0'}");
    assert_thread(main_tid, "other/0");
    assert_thread(iot, "other/0");

    /* Nothing of it is left to stand in the way of a new one. */
    qmp_ok(qts, "object-add", "{'qom-type': 'pvsched-policy', "
           "'id': 'pol1'}");
    assert_thread(main_tid, "fifo/2");
    assert_thread(iot, "fifo/2");
    qtest_quit(qts);
}

/*
 * The main loop, the I/O threads and RLIMIT_RTPRIO belong to the whole
 * process: a second policy is refused, and the first keeps them.
 */
static void test_one_policy(void)
{
    QTestState *qts = qtest_init("-machine none -object iothread,id=io0 "
                                 "-object pvsched-policy,id=pol0,"
                                 "boost-priority=8");
    int rtprio = rtprio_limit(qts);

    assert_thread(main_loop_tid(qts), "fifo/9");
    qmp_refused(qts, "object-add", "{'qom-type': 'pvsched-policy', "
                "'id': 'pol1', 'boost-priority': 2}",
                "pvsched-policy 'pol0' exists already");
    assert_thread(main_loop_tid(qts), "fifo/9");
    assert_thread(iothread_tid(qts, "io0"), "fifo/9");
    g_assert_cmpint(rtprio_limit(qts), ==, rtprio);
    g_assert_false(object_exists(qts, "/objects/pol1"));
    qtest_quit(qts);
}

/*
 * emulator-class=deadline: the emulator threads run SCHED_DEADLINE,
 * above every FIFO vCPU and bounded by the kernel.
 */
#define EMU_DL "emulator-class=deadline,emulator-runtime-us=3000," \
    "emulator-period-us=7000"

/* Thread @tid is SCHED_DEADLINE with these parameters, and RESET_ON_FORK. */
static void assert_thread_dl(int tid, uint64_t runtime_us, uint64_t period_us)
{
    struct test_sched_attr a = { };

    g_assert_cmpint(syscall(SYS_sched_getattr, tid, &a, sizeof(a), 0), ==,
                    0);
    g_assert_cmpuint(a.policy, ==, 6);
    g_assert_cmpuint(a.flags & 1, ==, 1);
    g_assert_cmpuint(a.runtime, ==, runtime_us * 1000);
    g_assert_cmpuint(a.deadline, ==, period_us * 1000);
    g_assert_cmpuint(a.period, ==, period_us * 1000);
}

static void test_emulator_dl_rejects(void)
{
    const char *no_cap = "setpriv --inh-caps=-sys_nice "
                         "--bounding-set=-sys_nice";

    assert_refused("-object pvsched-policy,id=p," EMU_DL
                   ",emulator-runtime-us=8000", "emulator-runtime-us=8000, "
                   "emulator-period-us=7000: SCHED_DEADLINE needs runtime");
    assert_refused("-object pvsched-policy,id=p," EMU_DL
                   ",emulator-runtime-us=0",
                   "emulator-runtime-us=0 is out of range");
    assert_refused("-object pvsched-policy,id=p," EMU_DL
                   ",emulator-period-us=0",
                   "emulator-period-us=0 is out of range");
    assert_refused("-object pvsched-policy,id=p,emulator-class=rr", "rr");
    /* Whatever RLIMIT_RTPRIO allows: it never allows SCHED_DEADLINE. */
    assert_refused_as(no_cap, "qtest", "-object pvsched-policy,id=p,"
                      EMU_DL, "emulator-class=deadline needs CAP_SYS_NICE, "
                      "and QEMU does not have it");
    assert_refused_as(no_cap, "qtest", "-object pvsched-policy,id=p,"
                      EMU_DL, "use emulator-class=fifo");
    /* The kernel refuses SCHED_DEADLINE to a pinned thread. */
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1) {
        assert_refused_as("taskset -c 0", "qtest", "-object pvsched-policy,"
                          "id=p," EMU_DL, "The main loop thread may run on "
                          "1 of the");
        assert_refused_as("taskset -c 0", "qtest", "-object pvsched-policy,"
                          "id=p," EMU_DL, "remove the emulator threads' CPU "
                          "pinning");
    }
}

/* The threads QEMU has, by id. */
static GHashTable *thread_ids(QTestState *qts)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/task",
                                            (int)qtest_pid(qts));
    GHashTable *tids = g_hash_table_new(NULL, NULL);
    GDir *dir = g_dir_open(path, 0, NULL);
    const char *name;

    g_assert_nonnull(dir);
    while ((name = g_dir_read_name(dir))) {
        g_hash_table_add(tids, GINT_TO_POINTER(atoi(name)));
    }
    g_dir_close(dir);
    return tids;
}

/*
 * The main loop and the I/O threads run SCHED_DEADLINE with the
 * policy's parameters, as the kernel reports them, and so says
 * query-pvsched.  A SCHED_DEADLINE thread may create threads only with
 * RESET_ON_FORK: the main loop still can (an I/O thread added at run
 * time, thread-pool workers for aio=threads), and they start
 * SCHED_OTHER.
 */
static void test_emulator_dl(void)
{
    g_autofree char *disk = empty_tmp_file("pvsched-test-disk-XXXXXX");
    g_autoptr(GHashTable) before = NULL;
    g_autoptr(GHashTable) after = NULL;
    g_autofree char *out = NULL;
    QTestState *qts;
    QDict *rsp;
    GHashTableIter it;
    gpointer tid;
    int main_tid, workers = 0;

    g_assert_cmpint(truncate(disk, 1 << 20), ==, 0);
    qts = qtest_init("-machine none -object iothread,id=io0 "
                     "-object pvsched-policy,id=pol0,boost-priority=99,"
                     EMU_DL);
    main_tid = main_loop_tid(qts);
    assert_thread_dl(main_tid, 3000, 7000);
    assert_thread_dl(iothread_tid(qts, "io0"), 3000, 7000);
    assert_qom_str(qts, "/objects/pol0", "emulator-class", "deadline");

    rsp = query(qts);
    g_assert_false(qdict_get_bool(qdict_get_qdict(rsp, "return"),
                                  "present"));
    qobject_unref(rsp);

    /* Threads created from the main loop. */
    qmp_ok(qts, "object-add", "{'qom-type': 'iothread', 'id': 'io1'}");
    assert_thread(iothread_tid(qts, "io1"), "other/0");
    qtest_qmp_assert_success(qts, "{'execute': 'blockdev-add', "
                             "'arguments': {'driver': 'file', "
                             "'node-name': 'f0', 'aio': 'threads', "
                             "'filename': %s}}", disk);
    before = thread_ids(qts);
    out = qtest_hmp(qts, "qemu-io f0 \"read 0 4k\"");
    after = thread_ids(qts);
    g_hash_table_iter_init(&it, after);
    while (g_hash_table_iter_next(&it, &tid, NULL)) {
        if (!g_hash_table_contains(before, tid)) {
            assert_thread(GPOINTER_TO_INT(tid), "other/0");
            workers++;
        }
    }
    g_test_message("%d thread-pool worker(s), SCHED_OTHER", workers);
    g_assert_cmpint(workers, >=, 1);
    assert_thread_dl(main_tid, 3000, 7000);

    /* object-del gives the threads back their own attributes. */
    qmp_ok(qts, "object-del", "{'id': 'pol0'}");
    assert_thread(main_tid, "other/0");
    assert_thread(iothread_tid(qts, "io0"), "other/0");
    qtest_quit(qts);
    unlink(disk);
}

/*
 * At run time, fifo -> deadline -> other parameters -> fifo, and a
 * change the kernel's admission control refuses half way (the main loop
 * admitted, the first I/O thread not) gives every thread back its
 * attributes.  query-pvsched and info pvsched show the class.
 */
static void test_emulator_dl_change(void)
{
    QTestState *qts = qtest_init(QTEST_VM " -object iothread,id=io0 "
                                 "-object iothread,id=io1");
    int main_tid = main_loop_tid(qts);
    int io0 = iothread_tid(qts, "io0"), io1 = iothread_tid(qts, "io1");
    g_autofree char *out = NULL;
    g_autofree char *line = NULL;
    g_autofree char *err = NULL;
    QDict *rsp, *emu;

    assert_thread(main_tid, "fifo/9");
    qmp_ok(qts, "qom-set", "{'path': '/objects/pol0', "
           "'property': 'emulator-class', 'value': 'deadline'}");
    assert_thread_dl(main_tid, 5000, 10000);
    assert_thread_dl(io0, 5000, 10000);
    assert_thread_dl(io1, 5000, 10000);
    qmp_ok(qts, "pvsched-set-policy", "{'id': 'pol0', "
           "'emulator-runtime-us': 3000, 'emulator-period-us': 7000}");
    assert_thread_dl(main_tid, 3000, 7000);
    assert_thread_dl(io1, 3000, 7000);

    rsp = query(qts);
    emu = qdict_get_qdict(qdict_get_qdict(qdict_get_qdict(rsp, "return"),
                                          "emulator"), "sched");
    g_assert_cmpstr(qdict_get_str(emu, "policy"), ==, "deadline");
    g_assert_cmpint(qdict_get_int(emu, "runtime-ns"), ==, 3000000);
    g_assert_cmpint(qdict_get_int(emu, "period-ns"), ==, 7000000);
    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(qdict_get_qdict(rsp,
                    "return"), "policy"), "emulator-class"), ==, "deadline");
    qobject_unref(rsp);
    out = qtest_hmp(qts, "info pvsched");
    g_test_message("%s", out);
    g_assert_nonnull(strstr(out, "emulator-class deadline"));
    line = g_strdup_printf("emulator thread %d: deadline 3000/7000 us",
                           main_tid);
    g_assert_nonnull(strstr(out, line));

    /* 0.9 CPU for each of three threads: more than two CPUs can admit. */
    err = qmp_error(qts, "pvsched-set-policy", "{'id': 'pol0', "
                    "'emulator-runtime-us': 900000, "
                    "'emulator-period-us': 1000000}");
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err, "cannot set the I/O threads to "
                            "SCHED_DEADLINE"));
    g_assert_nonnull(strstr(err, "admission control refused"));
    g_assert_nonnull(strstr(err, "lower emulator-runtime-us"));
    assert_thread_dl(main_tid, 3000, 7000);
    assert_thread_dl(io0, 3000, 7000);
    assert_thread_dl(io1, 3000, 7000);
    g_assert_cmpint(qom_get_int(qts, "/objects/pol0", "emulator-runtime-us"),
                    ==, 3000);

    qmp_ok(qts, "qom-set", "{'path': '/objects/pol0', "
           "'property': 'emulator-class', 'value': 'fifo'}");
    assert_thread(main_tid, "fifo/9");
    assert_thread(io0, "fifo/9");
    assert_thread(io1, "fifo/9");
    qtest_quit(qts);
}

/* The device follows its policy until QEMU exits: it cannot go. */
static void test_object_del_in_use(void)
{
    QTestState *qts = qtest_init(QTEST_VM);

    qmp_refused(qts, "object-del", "{'id': 'pol0'}", "in use");
    g_assert_true(object_exists(qts, "/objects/pol0"));
    qmp_ok(qts, "pvsched-set-policy", "{'id': 'pol0', 'mode': 'static'}");
    vm_exit(qts, 0);
    assert_vcpu(qts, 0, "disabled", "fifo", 8);
    qtest_quit(qts);
}

static int effective_prio(int pid, int tid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/task/%d/sched", pid,
                                            tid);
    g_autofree char *sched = NULL;
    char *line;

    g_assert_true(g_file_get_contents(path, &sched, NULL, NULL));
    line = strstr(sched, "\nprio");
    g_assert_nonnull(line);
    return atoi(strchr(line, ':') + 1);
}

/* The system call a thread is blocked in, -1 if it runs. */
static long blocked_in(int pid, int tid)
{
    g_autofree char *path = g_strdup_printf("/proc/%d/task/%d/syscall",
                                            pid, tid);
    g_autofree char *text = NULL;
    const char *end;
    long nr;

    g_assert_true(g_file_get_contents(path, &text, NULL, NULL));
    if (g_str_has_prefix(text, "running")) {
        return -1;
    }
    g_assert_cmpint(qemu_strtol(text, &end, 10, &nr), ==, 0);
    return nr;
}

static void wait_blocked_in(int pid, int tid, long nr)
{
    int i;

    for (i = 0; i < 5000 && blocked_in(pid, tid) != nr; i++) {
        g_usleep(1000);
    }
    g_assert_cmpint(blocked_in(pid, tid), ==, nr);
}

#define WAITER_RT_PRIO 50
#define KERNEL_PRIO(rt) (99 - (rt))

/*
 * The BQL's holder, the main loop, while a SCHED_FIFO thread waits for
 * the BQL: its effective priority before and during the wait, or false
 * (the case skipped) without the permission to make a thread SCHED_FIFO.
 * The main loop holds the BQL through pmemsave, blocked writing to a pipe
 * nobody reads yet; the vCPU thread (qtest's dummy vCPU, which takes the
 * BQL whenever SIG_IPI wakes it) is made SCHED_FIFO and woken.
 */
static bool bql_holder_prio(const char *extra_args, int *before, int *during)
{
    g_autofree char *dir = g_dir_make_tmp("pvsched-bql-XXXXXX", NULL);
    g_autofree char *fifo = g_strdup_printf("%s/fifo", dir);
    QTestState *qts;
    char buf[65536];
    int pid, vcpu, fd;
    bool ran = false;
    QDict *rsp;

    g_assert_cmpint(mkfifo(fifo, 0600), ==, 0);
    qts = qtest_initf("-machine pc -smp 1 -m 128M -cpu qemu64 %s",
                      extra_args);
    pid = qtest_pid(qts);
    vcpu = vcpu_tid(qts, 0);
    if (set_thread_fifo(vcpu, WAITER_RT_PRIO) < 0) {
        g_test_skip("needs CAP_SYS_NICE to make a thread SCHED_FIFO");
        goto out;
    }
    fd = open(fifo, O_RDONLY | O_NONBLOCK);
    g_assert_cmpint(fd, >=, 0);
    qtest_qmp_send(qts, "{'execute': 'pmemsave', 'arguments': {"
                   "'val': 0, 'size': %d, 'filename': %s}}",
                   (int)sizeof(buf) * 16, fifo);
    wait_blocked_in(pid, pid, SYS_write);
    *before = effective_prio(pid, pid);

    g_assert_cmpint(syscall(SYS_tgkill, pid, vcpu, SIGUSR1), ==, 0);
    wait_blocked_in(pid, vcpu, SYS_futex);
    *during = effective_prio(pid, pid);

    /* Let pmemsave finish. */
    g_assert_cmpint(fcntl(fd, F_SETFL, 0), ==, 0);
    while (read(fd, buf, sizeof(buf)) > 0) {
        /* drain */
    }
    close(fd);
    rsp = qtest_qmp_receive(qts);
    g_assert_true(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    ran = true;
out:
    qtest_quit(qts);
    unlink(fifo);
    rmdir(dir);
    return ran;
}

/*
 * With a pvsched-policy on the command line the BQL inherits priority,
 * in each form -object takes it.
 */
static void test_bql_inherits(void)
{
    static const char *const policy[] = {
        "-object pvsched-policy,id=pol0",
        "-object iothread,id=io0 --object id=pol0,qom-type=pvsched-policy",
        "-object '{\"qom-type\": \"pvsched-policy\", \"id\": \"pol0\"}'",
    };
    int before, during, i;

    for (i = 0; i < ARRAY_SIZE(policy); i++) {
        if (!bql_holder_prio(policy[i], &before, &during)) {
            return;
        }
        g_assert_cmpint(before, !=, KERNEL_PRIO(WAITER_RT_PRIO));
        g_assert_cmpint(during, ==, KERNEL_PRIO(WAITER_RT_PRIO));
    }
}

/*
 * Without one QEMU takes the BQL as stock QEMU does, a plain mutex (PI
 * costs every acquisition): its holder keeps its own priority.
 */
static void test_bql_plain_without_policy(void)
{
    int before, during;

    if (bql_holder_prio("", &before, &during)) {
        g_assert_cmpint(before, !=, KERNEL_PRIO(WAITER_RT_PRIO));
        g_assert_cmpint(during, ==, before);
    }
}

/*
 * CPU hot-unplug, which a guest can trigger: vCPU 1 boosts, then the
 * guest ejects it.  Its thread exits; nothing of its pvsched state may
 * outlive it (the bound timer, the area, the status), and a vCPU plugged
 * in again at its index starts clean.
 */
#define HOTPLUG_VM "-machine pc -smp 1,maxcpus=2 -m 128M -cpu qemu64 " \
    "-object pvsched-policy,id=pol0,boost-priority=8,max-boost-us=1000 " \
    "-device pvsched,policy=pol0"
#define CPU_HOTPLUG_PORT 0xaf00     /* PIIX4's, legacy and modern */

static void plug_cpu1(QTestState *qts)
{
    qtest_qmp_device_add(qts, "qemu64-x86_64-cpu", "cpu1",
                         "{'socket-id': 0, 'core-id': 1, 'thread-id': 0}");
}

/* device_del, then what the guest's ACPI code does to eject the CPU. */
static void unplug_cpu1(QTestState *qts)
{
    QDict *rsp;

    qtest_outb(qts, CPU_HOTPLUG_PORT, 0);          /* to the modern one */
    rsp = qtest_qmp(qts, "{'execute': 'device_del', "
                    "'arguments': {'id': 'cpu1'}}");
    g_assert(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    qtest_outl(qts, CPU_HOTPLUG_PORT, 1);          /* select CPU 1 */
    qtest_outb(qts, CPU_HOTPLUG_PORT + 4, 8);      /* eject it */
    qtest_qmp_eventwait(qts, "DEVICE_DELETED");
}

static int vcpus_listed(QTestState *qts)
{
    QDict *rsp = query(qts);
    QListEntry *e;
    int n = 0;

    QLIST_FOREACH_ENTRY(qdict_get_qlist(qdict_get_qdict(rsp, "return"),
                                        "vcpus"), e) {
        n++;
    }
    qobject_unref(rsp);
    return n;
}

static void test_cpu_unplug_boosted(void)
{
    QTestState *qts = qtest_init(HOTPLUG_VM);
    QDict *v;

    plug_cpu1(qts);
    g_assert_true(wrmsr(qts, 1, AREA1 | MSR_ENABLE));
    qtest_writeb(qts, AREA1 + 8, REQ_BOOST);
    vm_exit(qts, 1);
    assert_vcpu(qts, 1, "boosted", "fifo", 8);

    unplug_cpu1(qts);
    g_assert_cmpint(vcpus_listed(qts), ==, 1);
    /* Time for the bound timer to run, were it still armed: 1 ms. */
    g_usleep(50 * 1000);
    g_assert_cmpint(vcpus_listed(qts), ==, 1);

    plug_cpu1(qts);
    v = vcpu_state(qts, 1);
    g_assert_cmpstr(qdict_get_str(v, "status"), ==, "disabled");
    g_assert_false(qdict_get_bool(v, "registered"));
    g_assert_cmpint(qdict_get_int(v, "boosts"), ==, 0);
    qobject_unref(v);
    assert_vcpu(qts, 1, "disabled", "other", 0);
    g_assert_cmphex(rdmsr(qts, 1), ==, 0);
    /* The guest's area is not written for a vCPU that is gone. */
    g_assert_cmphex(qtest_readq(qts, AREA1), ==, BOOSTED);

    /* The new vCPU registers and boosts like any other. */
    g_assert_true(wrmsr(qts, 1, AREA1 | MSR_ENABLE));
    vm_exit(qts, 1);
    assert_vcpu(qts, 1, "boosted", "fifo", 8);
    qtest_quit(qts);
}

/*
 * The same under KVM, where a vCPU thread starts through the run-loop
 * hook: in static mode a hotplugged vCPU's thread is boosted from its
 * start, and one plugged in again after an unplug must be too.
 */
static void test_cpu_replug_static(void)
{
    QTestState *qts = qtest_init("-accel kvm -machine pc "
                                 "-smp 1,maxcpus=2 -m 128M "
                                 "-cpu qemu64,kvm-pvsched=on "
                                 "-object pvsched-policy,id=pol0,mode=static,"
                                 "boost-priority=8 "
                                 "-device pvsched,policy=pol0");
    QDict *v;

    plug_cpu1(qts);
    assert_vcpu(qts, 1, "disabled", "fifo", 8);
    unplug_cpu1(qts);
    g_assert_cmpint(vcpus_listed(qts), ==, 1);
    plug_cpu1(qts);
    assert_vcpu(qts, 1, "disabled", "fifo", 8);
    v = vcpu_state(qts, 1);
    g_assert_cmpint(qdict_get_int(v, "boosts"), ==, 1);
    qobject_unref(v);
    qtest_quit(qts);
}

static int unix_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    g_assert_cmpint(fd, >=, 0);
    pstrcpy(addr.sun_path, sizeof(addr.sun_path), path);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * -daemonize forks while the main thread holds the BQL, and the child
 * goes on under another thread id: a PI BQL (which records its owner's)
 * must be taken afresh there, or its first unlock fails and QEMU aborts;
 * a plain one is left as stock QEMU leaves it.  Either way the daemon
 * answers QMP and quits when told.
 */
static void daemonize_and_talk(const char *extra_args)
{
    g_autofree char *dir = g_dir_make_tmp("pvsched-daemon-XXXXXX", NULL);
    g_autofree char *sock = g_strdup_printf("%s/qmp", dir);
    g_autofree char *pidfile = g_strdup_printf("%s/pid", dir);
    g_autofree char *cmd = g_strdup_printf(
        "%s -machine none -display none -daemonize -pidfile %s "
        "-qmp unix:%s,server=on,wait=off %s",
        g_getenv("QTEST_QEMU_BINARY"), pidfile, sock, extra_args);
    g_autofree char *pidtext = NULL;
    int status, fd, pid, i;
    QDict *rsp;

    g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, &status,
                                            NULL));
    /* g_spawn_check_wait_status() is newer than QEMU's glib floor. */
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 0);
    g_assert_true(g_file_get_contents(pidfile, &pidtext, NULL, NULL));
    pid = atoi(pidtext);

    fd = unix_connect(sock);
    g_assert_cmpint(fd, >=, 0);
    qobject_unref(qmp_fd_receive(fd));              /* the greeting */
    rsp = qmp_fd(fd, "{'execute': 'qmp_capabilities'}");
    g_assert_true(qdict_haskey(rsp, "return"));
    qobject_unref(rsp);
    rsp = qmp_fd(fd, "{'execute': 'query-status'}");
    g_assert_true(qdict_get_bool(qdict_get_qdict(rsp, "return"),
                                 "running"));
    qobject_unref(rsp);
    qmp_fd_send(fd, "{'execute': 'quit'}");
    for (i = 0; i < 5000 && kill(pid, 0) == 0; i++) {
        g_usleep(1000);
    }
    g_assert_cmpint(kill(pid, 0), <, 0);
    close(fd);
    unlink(sock);
    unlink(pidfile);
    rmdir(dir);
}

static void test_daemonize_plain_bql(void)
{
    daemonize_and_talk("");
}

static void test_daemonize_pi_bql(void)
{
    daemonize_and_talk("-object pvsched-policy,id=pol0");
}

static void skip_without_kvm(const void *data)
{
    g_test_skip("needs KVM (/dev/kvm): make check runs it where KVM is");
}

/* A case that starts QEMU with -accel kvm: skipped, loudly, without it. */
static void add_kvm_func(const char *path, void (*fn)(void))
{
    if (qtest_has_accel("kvm")) {
        qtest_add_func(path, fn);
    } else {
        qtest_add_data_func(path, NULL, skip_without_kvm);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* pvsched is a KVM feature: without /dev/kvm half of this is moot. */
    if (!qtest_has_accel("kvm")) {
        g_printerr("pvsched-test: WARNING: KVM is not available (no usable "
                   "/dev/kvm): the cases that need it are SKIPPED\n");
    }
    add_kvm_func("/pvsched/device/needs-cpuid-property",
                 test_needs_cpuid_property);
    qtest_add_func("/pvsched/device/needs-policy", test_needs_policy);
    add_kvm_func("/pvsched/device/one-device", test_one_device);
    qtest_add_func("/pvsched/device/unknown-policy-id",
                   test_unknown_policy_id);
    qtest_add_func("/pvsched/policy/rejects", test_policy_rejects);
    qtest_add_func("/pvsched/policy/properties", test_policy_properties);
    qtest_add_func("/pvsched/policy/defaults", test_policy_defaults);
    add_kvm_func("/pvsched/cpu/kvm-pvsched", test_cpuid_property);
    add_kvm_func("/pvsched/cpu/not-autoenabled", test_cpuid_not_autoenabled);
    qtest_add_func("/pvsched/policy/needs-permission",
                   test_policy_needs_permission);
    qtest_add_func("/pvsched/qmp/query-no-device", test_query_no_device);
    add_kvm_func("/pvsched/qmp/query-device", test_query_device);
    add_kvm_func("/pvsched/qmp/set-policy-errors", test_set_policy_errors);
    add_kvm_func("/pvsched/qmp/set-policy", test_set_policy);
    add_kvm_func("/pvsched/hmp/info", test_hmp_info);
    add_kvm_func("/pvsched/policy/priority-ceiling", test_priority_ceiling);
    add_kvm_func("/pvsched/policy/priority-ceiling-fixed",
                 test_priority_ceiling_fixed);
    qtest_add_func("/pvsched/lifecycle/static-from-start",
                   test_static_from_start);
    qtest_add_func("/pvsched/msr/rules", test_msr_rules);
    qtest_add_func("/pvsched/msr/boost", test_boost_through_the_area);
    qtest_add_func("/pvsched/msr/own-attributes-at-resume",
                   test_own_attributes_at_resume);
    qtest_add_func("/pvsched/msr/ram-end", test_msr_ram_end);
    qtest_add_func("/pvsched/msr/unplugged-virtio-mem",
                   test_msr_unplugged_virtio_mem);
    qtest_add_func("/pvsched/lifecycle/area-outlives-dimm",
                   test_area_outlives_dimm);
    qtest_add_func("/pvsched/lifecycle/reset", test_reset);
    qtest_add_func("/pvsched/lifecycle/loadvm", test_loadvm);
    qtest_add_func("/pvsched/lifecycle/loadvm-undrained",
                   test_loadvm_undrained);
    qtest_add_func("/pvsched/lifecycle/reset-stopped", test_reset_stopped);
    qtest_add_func("/pvsched/migration/registered", test_migrate_registered);
    qtest_add_func("/pvsched/migration/unregistered",
                   test_migrate_unregistered);
    qtest_add_func("/pvsched/migration/needs-device",
                   test_migrate_needs_device);
    qtest_add_func("/pvsched/migration/invalid-area",
                   test_migrate_invalid_area);
    qtest_add_func("/pvsched/events/rate-limit", test_event_rate_limit);
    qtest_add_func("/pvsched/policy/large-max-boost", test_large_max_boost);
    qtest_add_func("/pvsched/policy/large-cooldown", test_large_cooldown);
    qtest_add_func("/pvsched/bound/kick-backoff", test_bound_kick_backoff);
    qtest_add_func("/pvsched/policy/change-order", test_change_order);
    qtest_add_func("/pvsched/faults/rtprio-lowered",
                   test_fault_rtprio_lowered);
    qtest_add_func("/pvsched/policy/change-rolls-back",
                   test_change_rolls_back);
    qtest_add_func("/pvsched/policy/object-add-fails-cleanly",
                   test_object_add_fails_cleanly);
    qtest_add_func("/pvsched/policy/object-del-restores",
                   test_object_del_restores);
    qtest_add_func("/pvsched/policy/one-policy", test_one_policy);
    qtest_add_func("/pvsched/emulator/deadline-rejects",
                   test_emulator_dl_rejects);
    qtest_add_func("/pvsched/emulator/deadline", test_emulator_dl);
    qtest_add_func("/pvsched/emulator/deadline-change",
                   test_emulator_dl_change);
    qtest_add_func("/pvsched/policy/object-del-in-use",
                   test_object_del_in_use);
    qtest_add_func("/pvsched/pi/bql-inherits", test_bql_inherits);
    qtest_add_func("/pvsched/pi/bql-plain-without-policy",
                   test_bql_plain_without_policy);
    qtest_add_func("/pvsched/pi/daemonize-plain-bql", test_daemonize_plain_bql);
    qtest_add_func("/pvsched/pi/daemonize-pi-bql", test_daemonize_pi_bql);
    qtest_add_func("/pvsched/hotplug/cpu-unplug-boosted",
                   test_cpu_unplug_boosted);
    add_kvm_func("/pvsched/hotplug/cpu-replug-static", test_cpu_replug_static);
    return g_test_run();
}
