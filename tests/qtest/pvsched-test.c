/*
 * qtests for the pvsched device and the pvsched-policy object: start-up
 * errors that say what to add, property validation, and that a policy
 * cannot be changed behind the vCPUs' back.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "libqtest.h"
#include "qobject/qdict.h"

/*
 * Start QEMU, expecting it to refuse the command line; return its stderr.
 * qtest_init() cannot be used: it aborts when QEMU does not start.
 */
static char *start_fails_accel(const char *accel, const char *args)
{
    g_autofree char *cmd = g_strdup_printf("%s -machine pc -accel %s "
                                           "-display none -nodefaults %s",
                                           g_getenv("QTEST_QEMU_BINARY"),
                                           accel, args);
    g_auto(GStrv) argv = NULL;
    g_autofree char *out = NULL;
    char *err = NULL;
    int status;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL,
                               &out, &err, &status, NULL));
    /* Refused: a clean exit with an error, not a crash. */
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    return err;
}

static void assert_refused_accel(const char *accel, const char *args,
                                 const char *what)
{
    g_autofree char *err = start_fails_accel(accel, args);

    if (!strstr(err, what)) {
        g_test_message("stderr: %s", err);
    }
    g_assert_nonnull(strstr(err, what));
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

static void test_needs_kvm(void)
{
    assert_refused("-cpu qemu64,kvm-pvsched=on " POLICY
                   "-device pvsched,policy=pol0", "Add -accel kvm");
    assert_refused("-cpu qemu64 " POLICY "-device pvsched,policy=pol0",
                   "Add -accel kvm");
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

    /* Refused once created, and nothing changes. */
    rsp = qtest_qmp(qts, "{'execute': 'qom-set', 'arguments': {"
                    "'path': %s, 'property': 'boost-priority', 'value': 30}}",
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

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* pvsched is a KVM feature: without /dev/kvm half of this is moot. */
    if (!qtest_has_accel("kvm")) {
        g_printerr("pvsched-test: KVM is not available; this test needs "
                   "/dev/kvm\n");
        return 1;
    }
    qtest_add_func("/pvsched/device/needs-cpuid-property",
                   test_needs_cpuid_property);
    qtest_add_func("/pvsched/device/needs-kvm", test_needs_kvm);
    qtest_add_func("/pvsched/device/needs-policy", test_needs_policy);
    qtest_add_func("/pvsched/device/one-device", test_one_device);
    qtest_add_func("/pvsched/device/unknown-policy-id",
                   test_unknown_policy_id);
    qtest_add_func("/pvsched/policy/rejects", test_policy_rejects);
    qtest_add_func("/pvsched/policy/properties", test_policy_properties);
    qtest_add_func("/pvsched/policy/defaults", test_policy_defaults);
    qtest_add_func("/pvsched/cpu/kvm-pvsched", test_cpuid_property);
    return g_test_run();
}
