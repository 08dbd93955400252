"""Benchmark 5: the doorbell with 1, 2, 4, ... vCPUs ringing at once.

One VM per vCPU count (up to 32, or what KVM allows), booted together and
measured in turns. In a window every vCPU rings the doorbell in a loop:
req NONE (no state change) and BOOST/UNBOOST alternately (a
sched_setattr each). Reported per count: the host CPU time the vCPU
threads used per doorbell (their CPU time over the window / doorbells:
independent of how many host CPUs they share), the aggregate rate, and
the guest-timed mean round trip (which, overcommitted, includes the
time a vCPU waited for a host CPU).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os

from . import common as C

# No CPU-time bound: this measures the doorbell, not the bound (a vCPU
# throttled mid-window would also fail the guest's scale-status check).
POLICY = 'boost-class=fifo,boost-priority=8,max-boost-us=0'
KINDS = [(b'n', 'none'), (b't', 'toggle')]


def counts(limit):
    c, out = 1, []
    while c <= limit:
        out.append(c)
        c *= 2
    if out[-1] != limit:
        out.append(limit)
    return out


def run(p):
    nr, mx = C.kvm_caps()
    # --quick only shows that it works: all sizes boot at once, and 63
    # vCPUs on a 2-CPU host under load can miss the guest's AP start-up bound.
    # It stays within the vCPUs KVM recommends (the host's CPUs): in the L1
    # VM, 4 vCPUs on its 2 CPUs hung in 2 of 2 make check runs, a vCPU's
    # VMCB-held registers garbage (issue 12); the full run goes past them.
    limit = min(4, nr) if p.quick else min(32, mx)
    ms = 50 if p.quick else 1000
    vms = []
    try:
        for n in counts(limit):
            vms.append(C.BenchVM(f'{n}', 'bench-scale', f'ms={ms}', smp=n,
                                 cpu='qemu64,kvm-pvsched=on', policy=POLICY,
                                 device=True))
        C.boot_all(vms, timeout=600)
        runs = {(vm.label, k): [] for vm in vms for _, k in KINDS}
        for r in range(p.runs):
            for vm in C.rotated(vms, r):
                for byte, kind in C.rotated(KINDS, r):
                    box = {}

                    def before(vm=vm, box=box):
                        box['tids'] = list(vm.vcpu_tids().values())
                        box['c0'] = sum(C.thread_cpu_ns(vm.pid, t)
                                        for t in box['tids'])

                    def measured(vm=vm, box=box):
                        box['c1'] = sum(C.thread_cpu_ns(vm.pid, t)
                                        for t in box['tids'])

                    res = vm.step(byte, before=before, measured=measured)
                    d = next(x for x in res if x['name'] == 'scale')
                    d['host_cpu_ns'] = box['c1'] - box['c0']
                    d['tsc_khz'] = vm.tsc_khz
                    runs[(vm.label, kind)].append(d)
            C.log(f'scale: round {r + 1}/{p.runs} done')
        for vm in vms:
            vm.quit()
    finally:
        C.close_all(vms)
    return analyse(runs, ms, nr, mx, limit)


def analyse(runs, ms, nr, mx, limit):
    ncpu = len(C.host_cpus())
    res = {'ms_per_window': ms, 'kvm_nr_vcpus': nr, 'kvm_max_vcpus': mx,
           'max_counted': limit, 'host_cpus': ncpu, 'counts': {}}
    rows = []
    for n in counts(limit):
        e = {}
        for _, kind in KINDS:
            rr = runs[(str(n), kind)]
            khz = rr[0]['tsc_khz']
            e[kind] = {
                'runs': rr,
                'host_cpu_us_per_op': C.summary(
                    [x['host_cpu_ns'] / 1000.0 / x['ops'] for x in rr]),
                'ops_per_s': C.summary(
                    [x['ops'] / (x['window_us'] / 1e6) for x in rr]),
                'guest_mean_us': C.summary(
                    [x['mean_op'] / (khz / 1000.0) for x in rr]),
                'guest_min_us': C.summary(
                    [x['min_op'] / (khz / 1000.0) for x in rr]),
                'fairness': C.summary(
                    [x['ops_min'] / x['ops_max'] if x['ops_max'] else 0
                     for x in rr]),
            }
        res['counts'][n] = e
        rows.append([
            str(n), f'{n / ncpu:g}x',
            C.fmt_spread(e['none']['host_cpu_us_per_op']),
            C.fmt_spread(e['toggle']['host_cpu_us_per_op']),
            C.fmt_num(e['none']['ops_per_s']['median']),
            C.fmt_num(e['toggle']['ops_per_s']['median']),
            C.fmt_num(e['none']['guest_mean_us']['median']),
            C.fmt_num(e['toggle']['guest_mean_us']['median']),
            f"{e['none']['fairness']['median']:.2f}",
        ])
    res['table'] = C.table(
        f'5. Doorbell scaling: all vCPUs ring in a loop for {ms} ms per '
        f'run, {len(runs[("1", "none")])} runs per count; host has {ncpu} '
        f'CPUs (KVM recommends <= {nr} vCPUs, allows {mx})',
        ['vCPUs', 'overcommit', 'host CPU us/op, NONE',
         'host CPU us/op, BOOST/UNBOOST', 'ops/s NONE', 'ops/s toggle',
         'guest us/op NONE', 'guest us/op toggle', 'fairness NONE'],
        rows,
        'host CPU us/op: CPU time of all vCPU threads over the window / '
        'doorbells (median [min..max] of runs); guest us/op: mean rdtsc '
        'round trip, which includes waiting for a host CPU when '
        'overcommitted; fairness: fewest / most doorbells of one vCPU.')
    return res


def plot(res, outdir, plt):
    ns = sorted(res['counts'])
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for kind, label in (('none', 'req NONE (no change)'),
                        ('toggle', 'BOOST/UNBOOST (sched_setattr)')):
        med = [res['counts'][n][kind]['host_cpu_us_per_op']['median']
               for n in ns]
        lo = [m - res['counts'][n][kind]['host_cpu_us_per_op']['min']
              for m, n in zip(med, ns)]
        hi = [res['counts'][n][kind]['host_cpu_us_per_op']['max'] - m
              for m, n in zip(med, ns)]
        a1.errorbar(ns, med, yerr=[lo, hi], marker='o', capsize=3,
                    label=label)
        a2.plot(ns, [res['counts'][n][kind]['guest_mean_us']['median']
                     for n in ns], marker='o', label=label)
    for ax in (a1, a2):
        ax.set_xscale('log', base=2)
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel(f'vCPUs ringing at once (host: {res["host_cpus"]} CPUs)')
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize='small')
        ax.axvline(res['host_cpus'], color='grey', ls=':', lw=1)
    a1.set_ylabel('host CPU time per doorbell (us)')
    a1.set_title('cost per doorbell (median, min..max)')
    a2.set_yscale('log')
    a2.set_ylabel('guest-timed round trip, mean (us)')
    a2.set_title('round trip seen by the guest (incl. waiting for a CPU)')
    fig.tight_layout()
    path = os.path.join(outdir, 'scale.png')
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
