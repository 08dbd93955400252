"""Benchmark 2: the doorbell's round trip.

One VM with the device; in each round the guest times, interleaved
operation by operation: a doorbell that boosts and one that unboosts
(each includes the host's sched_setattr on the vCPU thread), a doorbell
with req NONE (changes nothing), a read of MSR 0x35 (QEMU's own
MSR_CORE_THREAD_COUNT: a plain userspace MSR exit through the same KVM
MSR filter) and a port-0x80 write (a plain userspace PIO exit). A run's
value per kind is the median over its loops.

SPDX-License-Identifier: GPL-2.0-or-later
"""

from . import common as C

KINDS = [('doorbell-boost', 'doorbell BOOST (state change)'),
         ('doorbell-unboost', 'doorbell UNBOOST (state change)'),
         ('doorbell-none', 'doorbell, req NONE (no change)'),
         ('msr-0x35', 'plain userspace MSR exit (rdmsr 0x35)'),
         ('pio-0x80', 'plain userspace PIO exit (outb 0x80)')]
# No CPU-time bound: this measures the round trip, not the bound. With
# the default 3 ms one, a vCPU is now and then THROTTLED here even though
# each boost lasts tens of microseconds: on this nested host a thread's
# CPU time also grows while the outer hypervisor has its CPU (no steal
# time is reported), and the guest's checks would fail.
POLICY = 'boost-class=fifo,boost-priority=8,max-boost-us=0'


def run(p):
    loops = 2000 if p.quick else 10000
    vm = None
    try:
        vm = C.BenchVM('doorbell', 'bench-doorbell', f'loops={loops}',
                       cpu='qemu64,kvm-pvsched=on', policy=POLICY,
                       device=True)
        C.boot_all([vm])
        runs = []
        for r in range(p.runs):
            res = vm.step(b'r')
            runs.append({d['name']: d for d in res})
            C.log(f'doorbell: round {r + 1}/{p.runs} done')
        vm.quit()
        tsc_khz = vm.tsc_khz
    finally:
        if vm:
            vm.close()
    return analyse(runs, tsc_khz, loops)


def analyse(runs, tsc_khz, loops):
    res = {'loops': loops, 'tsc_khz': tsc_khz, 'policy': POLICY,
           'kinds': {}}
    us = 1000.0 / tsc_khz
    rows = []
    for kind, desc in KINDS:
        meds = [r[kind]['med'] for r in runs]
        ratio = [r[kind]['med'] / r['msr-0x35']['med'] for r in runs]
        e = {'median_cycles': C.summary(meds),
             'p90_cycles': C.summary([r[kind]['p90'] for r in runs]),
             'ratio_vs_msr': C.summary(ratio),
             'runs': [r[kind] for r in runs]}
        res['kinds'][kind] = e
        rows.append([desc, C.fmt_spread(e['median_cycles'], digits=5),
                     C.fmt_num(e['median_cycles']['median'] * us, 4),
                     C.fmt_num(e['p90_cycles']['median'], 4),
                     C.fmt_spread(e['ratio_vs_msr'], digits=3)])
    res['table'] = C.table(
        f'2. Doorbell round trip, guest-timed, {loops} of each per run, '
        f'{len(runs)} runs, kinds interleaved op by op',
        ['operation', 'cycles: median [min..max] of runs', 'us',
         'p90 cycles', 'x plain MSR exit [min..max]'],
        rows,
        'Target: a state-changing doorbell within 1.3x of a plain '
        'userspace MSR exit.')
    return res
