/*
 * pvsched: the per-VM policy object (-object pvsched-policy)
 *
 * The properties describe what "boosted" means.  On completion, and on
 * every change after it, they are validated as a whole (including whether
 * this process may use them at all) and published as an immutable
 * snapshot that vCPU threads read under RCU.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/capability.h>
#include "qapi/error.h"
#include "qapi/visitor.h"
#include "qapi/qapi-types-pvsched.h"
#include "qemu/rcu.h"
#include "qom/object_interfaces.h"
#include "qemu/notify.h"
#include "pvsched/emulator.h"
#include "pvsched/policy.h"
#include "trace.h"

#define DEFAULT_BOOST_PRIORITY  1
#define DEFAULT_MAX_BOOST_US    3000    /* as in the KVM RFC */
/* 3 ms boosted then 27 ms throttled: at most 10% of a CPU taken by force. */
#define DEFAULT_COOLDOWN_US     27000
#define MAX_US                  (1000 * 1000 * 1000)

typedef struct PvschedPolicySnapshot {
    struct rcu_head rcu;
    PvschedBoostConfig cfg;
} PvschedPolicySnapshot;

typedef struct PvschedPolicySettings {
    PvschedMode mode;
    PvschedBoostClass boost_class;
    uint32_t boost_priority;
    uint32_t max_boost_us;
    uint32_t cooldown_us;
    uint32_t emulator_priority;     /* 0: boost-priority + 1 */
} PvschedPolicySettings;

struct PvschedPolicy {
    Object parent_obj;

    PvschedPolicySettings set;      /* the properties; BQL */
    bool complete;
    PvschedPolicySnapshot *snap;    /* what vCPUs read; RCU */
    NotifierList changed;           /* run-time changes; BQL */
};

static PvschedBoostConfig policy_to_config(const PvschedPolicySettings *pol)
{
    static const PvschedStateMode modes[] = {
        [PVSCHED_MODE_DYNAMIC] = PVSCHED_STATE_DYNAMIC,
        [PVSCHED_MODE_STATIC] = PVSCHED_STATE_STATIC,
        [PVSCHED_MODE_OFF] = PVSCHED_STATE_OFF,
    };
    static const uint32_t policies[] = {
        [PVSCHED_BOOST_CLASS_FIFO] = SCHED_FIFO,
        [PVSCHED_BOOST_CLASS_RR] = SCHED_RR,
    };

    return (PvschedBoostConfig) {
        .mode = modes[pol->mode],
        .boost = {
            .policy = policies[pol->boost_class],
            .priority = pol->boost_priority,
        },
        .max_boost_ns = pol->max_boost_us * 1000LL,
        .cooldown_ns = pol->cooldown_us * 1000LL,
    };
}

static bool have_cap_sys_nice(void)
{
    struct __user_cap_header_struct hdr = {
        .version = _LINUX_CAPABILITY_VERSION_3,
    };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { };

    if (syscall(SYS_capget, &hdr, data) < 0) {
        return false;
    }
    return data[CAP_TO_INDEX(CAP_SYS_NICE)].effective &
           CAP_TO_MASK(CAP_SYS_NICE);
}

static uint32_t emulator_priority(const PvschedPolicySettings *pol)
{
    return pol->emulator_priority ?: pol->boost_priority + 1;
}

/* Seed 000's rule: a thread that can wake a vCPU runs above it. */
static bool policy_check_order(const PvschedPolicySettings *pol,
                               Error **errp)
{
    uint32_t emu = emulator_priority(pol);

    if (emu > 99) {
        error_setg(errp, "pvsched-policy: boost-priority=%u leaves no room "
                   "for the emulator thread above it", pol->boost_priority);
        error_append_hint(errp, "Use a boost-priority of at most 98.\n");
        return false;
    }
    if (emu <= pol->boost_priority) {
        error_setg(errp, "pvsched-policy: emulator-priority=%u must be above "
                   "boost-priority=%u: the emulator thread wakes and polices "
                   "boosted vCPUs", emu, pol->boost_priority);
        return false;
    }
    return true;
}

/*
 * Refuse at start-up what would fail at the first boost: a boost that
 * silently does nothing is worse than no boost.
 */
static bool policy_check_permission(const PvschedPolicySettings *pol,
                                    Error **errp)
{
    uint32_t need = emulator_priority(pol);
    struct rlimit rl;

    if (pol->mode == PVSCHED_MODE_OFF || have_cap_sys_nice()) {
        return true;
    }
    if (getrlimit(RLIMIT_RTPRIO, &rl) == 0 && rl.rlim_cur >= need) {
        return true;
    }
    error_setg(errp, "pvsched-policy: boost-class=%s,boost-priority=%u "
               "with the emulator thread at %u needs CAP_SYS_NICE or "
               "RLIMIT_RTPRIO >= %u, and QEMU has neither",
               PvschedBoostClass_str(pol->boost_class), pol->boost_priority,
               need, need);
    error_append_hint(errp, "Grant QEMU CAP_SYS_NICE, or raise its "
                      "RLIMIT_RTPRIO (e.g. 'ulimit -r %u' or "
                      "'prlimit --rtprio=%u') before starting it.\n",
                      need, need);
    return false;
}

/* The main loop, where this runs, takes its place above the vCPUs. */
static bool policy_order_emulator(const PvschedPolicySettings *pol,
                                  Error **errp)
{
    PvschedSchedAttr attr = {
        .policy = SCHED_FIFO,
        .priority = emulator_priority(pol),
    };
    int ret;

    ret = pvsched_emulator_apply(pol->mode == PVSCHED_MODE_OFF ? NULL : &attr);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "pvsched-policy: cannot set the emulator "
                         "thread to SCHED_FIFO %u", attr.priority);
        return false;
    }
    return true;
}

static void policy_publish(PvschedPolicy *pol)
{
    PvschedPolicySnapshot *snap = g_new0(PvschedPolicySnapshot, 1);
    PvschedPolicySnapshot *old = pol->snap;

    snap->cfg = policy_to_config(&pol->set);
    qatomic_rcu_set(&pol->snap, snap);
    if (old) {
        g_free_rcu(old, rcu);
        /* A run-time change: whoever follows the policy applies it now. */
        notifier_list_notify(&pol->changed, pol);
    }
    trace_pvsched_policy(object_get_canonical_path_component(OBJECT(pol)),
                         PvschedMode_str(pol->set.mode),
                         PvschedBoostClass_str(pol->set.boost_class),
                         pol->set.boost_priority, pol->set.max_boost_us,
                         pol->set.cooldown_us);
}

/*
 * Make @want the policy, as a whole or not at all.  Once the object is
 * complete this is a run-time change: vCPUs follow it at once.
 */
static bool policy_apply(PvschedPolicy *pol, const PvschedPolicySettings *want,
                         Error **errp)
{
    if (pol->complete &&
        (!policy_check_order(want, errp) ||
         !policy_check_permission(want, errp) ||
         !policy_order_emulator(want, errp))) {
        return false;
    }
    pol->set = *want;
    if (pol->complete) {
        policy_publish(pol);
    }
    return true;
}

void pvsched_policy_add_change_notifier(PvschedPolicy *pol, Notifier *n)
{
    notifier_list_add(&pol->changed, n);
}

void pvsched_policy_get_config(PvschedPolicy *pol, PvschedBoostConfig *cfg)
{
    RCU_READ_LOCK_GUARD();
    *cfg = qatomic_rcu_read(&pol->snap)->cfg;
}

static int policy_get_mode(Object *obj, Error **errp)
{
    return PVSCHED_POLICY(obj)->set.mode;
}

static void policy_set_mode(Object *obj, int value, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);
    PvschedPolicySettings want = pol->set;

    want.mode = value;
    policy_apply(pol, &want, errp);
}

static int policy_get_boost_class(Object *obj, Error **errp)
{
    return PVSCHED_POLICY(obj)->set.boost_class;
}

static void policy_set_boost_class(Object *obj, int value, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);
    PvschedPolicySettings want = pol->set;

    want.boost_class = value;
    policy_apply(pol, &want, errp);
}

typedef struct PolicyU32Prop {
    const char *name;
    size_t offset;
    uint32_t min, max;
    const char *desc;
} PolicyU32Prop;

static const PolicyU32Prop policy_u32_props[] = {
    { "boost-priority", offsetof(PvschedPolicySettings, boost_priority), 1, 99,
      "Real-time priority of a boosted vCPU thread (1..99)" },
    { "max-boost-us", offsetof(PvschedPolicySettings, max_boost_us), 0, MAX_US,
      "Boosted CPU time allowed per boost, in microseconds (0: no bound)" },
    { "cooldown-us", offsetof(PvschedPolicySettings, cooldown_us), 0, MAX_US,
      "Time a throttled vCPU ignores BOOST, in microseconds" },
    { "emulator-priority", offsetof(PvschedPolicySettings, emulator_priority),
      0, 99, "Real-time priority of the emulator (main-loop) thread, above "
      "boost-priority (0: boost-priority + 1)" },
};

static uint32_t *u32_field(PvschedPolicySettings *set,
                           const PolicyU32Prop *p)
{
    return (uint32_t *)((char *)set + p->offset);
}

static const PolicyU32Prop *u32_prop(const char *name)
{
    int i;

    for (i = 0; i < ARRAY_SIZE(policy_u32_props); i++) {
        if (!strcmp(policy_u32_props[i].name, name)) {
            return &policy_u32_props[i];
        }
    }
    g_assert_not_reached();
}

static bool u32_set(PvschedPolicySettings *set, const char *name,
                    uint32_t value, Error **errp)
{
    const PolicyU32Prop *p = u32_prop(name);

    if (value < p->min || value > p->max) {
        error_setg(errp, "pvsched-policy: %s=%u is out of range: it must be "
                   "between %u and %u", name, value, p->min, p->max);
        return false;
    }
    *u32_field(set, p) = value;
    return true;
}

static void policy_get_u32(Object *obj, Visitor *v, const char *name,
                           void *opaque, Error **errp)
{
    visit_type_uint32(v, name, u32_field(&PVSCHED_POLICY(obj)->set, opaque),
                      errp);
}

static void policy_set_u32(Object *obj, Visitor *v, const char *name,
                           void *opaque, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);
    PvschedPolicySettings want = pol->set;
    uint32_t value;

    if (visit_type_uint32(v, name, &value, errp) &&
        u32_set(&want, name, value, errp)) {
        policy_apply(pol, &want, errp);
    }
}

bool pvsched_policy_update(PvschedPolicy *pol, const PvschedPolicyChange *u,
                           Error **errp)
{
    PvschedPolicySettings want = pol->set;

    if (u->has_mode) {
        want.mode = u->mode;
    }
    if (u->has_boost_class) {
        want.boost_class = u->boost_class;
    }
    if ((u->has_boost_priority &&
         !u32_set(&want, "boost-priority", u->boost_priority, errp)) ||
        (u->has_max_boost_us &&
         !u32_set(&want, "max-boost-us", u->max_boost_us, errp)) ||
        (u->has_cooldown_us &&
         !u32_set(&want, "cooldown-us", u->cooldown_us, errp)) ||
        (u->has_emulator_priority &&
         !u32_set(&want, "emulator-priority", u->emulator_priority, errp))) {
        return false;
    }
    return policy_apply(pol, &want, errp);
}

PvschedPolicyInfo *pvsched_policy_info(PvschedPolicy *pol)
{
    PvschedPolicyInfo *info = g_new0(PvschedPolicyInfo, 1);

    info->id = g_strdup(object_get_canonical_path_component(OBJECT(pol)));
    info->mode = pol->set.mode;
    info->boost_class = pol->set.boost_class;
    info->boost_priority = pol->set.boost_priority;
    info->max_boost_us = pol->set.max_boost_us;
    info->cooldown_us = pol->set.cooldown_us;
    info->emulator_priority = emulator_priority(&pol->set);
    return info;
}

static void policy_complete(UserCreatable *uc, Error **errp)
{
    PvschedPolicy *pol = PVSCHED_POLICY(uc);

    if (!policy_check_order(&pol->set, errp) ||
        !policy_check_permission(&pol->set, errp) ||
        !policy_order_emulator(&pol->set, errp)) {
        return;
    }
    pol->complete = true;
    policy_publish(pol);
}

static void policy_instance_init(Object *obj)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);

    notifier_list_init(&pol->changed);
    pol->set = (PvschedPolicySettings) {
        .mode = PVSCHED_MODE_DYNAMIC,
        .boost_class = PVSCHED_BOOST_CLASS_FIFO,
        .boost_priority = DEFAULT_BOOST_PRIORITY,
        .max_boost_us = DEFAULT_MAX_BOOST_US,
        .cooldown_us = DEFAULT_COOLDOWN_US,
    };
}

static void policy_instance_finalize(Object *obj)
{
    PvschedPolicy *pol = PVSCHED_POLICY(obj);

    if (pol->snap) {
        g_free_rcu(pol->snap, rcu);
    }
}

static void policy_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);
    int i;

    ucc->complete = policy_complete;

    object_class_property_add_enum(oc, "mode", "PvschedMode",
                                   &PvschedMode_lookup,
                                   policy_get_mode, policy_set_mode);
    object_class_property_set_description(oc, "mode",
        "dynamic: boosted while the guest asks; static: always boosted; "
        "off: never boosted");
    object_class_property_add_enum(oc, "boost-class", "PvschedBoostClass",
                                   &PvschedBoostClass_lookup,
                                   policy_get_boost_class,
                                   policy_set_boost_class);
    object_class_property_set_description(oc, "boost-class",
        "Host scheduling class of a boosted vCPU thread");
    for (i = 0; i < ARRAY_SIZE(policy_u32_props); i++) {
        const PolicyU32Prop *p = &policy_u32_props[i];

        object_class_property_add(oc, p->name, "uint32", policy_get_u32,
                                  policy_set_u32, NULL, (void *)p);
        object_class_property_set_description(oc, p->name, p->desc);
    }
}

static const TypeInfo pvsched_policy_types[] = {
    {
        .name = TYPE_PVSCHED_POLICY,
        .parent = TYPE_OBJECT,
        .instance_size = sizeof(PvschedPolicy),
        .instance_init = policy_instance_init,
        .instance_finalize = policy_instance_finalize,
        .class_init = policy_class_init,
        .interfaces = (InterfaceInfo[]) {
            { TYPE_USER_CREATABLE },
            { }
        },
    },
};

DEFINE_TYPES(pvsched_policy_types)
