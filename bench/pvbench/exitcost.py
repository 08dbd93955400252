"""Benchmark 1: the cost pvsched adds to every userspace exit.

Three VMs side by side, booted afresh for every round (once with
--quick) and measured in turns (each round in another order): stock QEMU built from the same pinned source without the
patchset; the patched QEMU without the device; the patched QEMU with the
device and a guest that registered its area and never changes its
request (so the run-loop hook reads the area on every exit and finds
nothing to do). The guest times each port-0x80 write (a userspace PIO
exit) with rdtsc; a run's value is the median over its N exits, which
leaves out the exits during which the host preempted the vCPU.

SPDX-License-Identifier: GPL-2.0-or-later
"""

from . import common as C

CONFIGS = [
    # label, qemu, cpu, policy, device, reg
    ('stock', C.STOCK_QEMU, 'qemu64', None, False, 0),
    ('patched, no device', C.PATCHED_QEMU, 'qemu64', None, False, 0),
    ('patched, device, registered', C.PATCHED_QEMU,
     'qemu64,kvm-pvsched=on', 'boost-class=fifo,boost-priority=8', True, 1),
]


def run(p):
    loops = 5000 if p.quick else 100000
    configs = [c for c in CONFIGS if c[1] != C.STOCK_QEMU or p.stock]
    runs = {c[0]: [] for c in configs}
    calib = None
    # Fresh VMs every round: one instance of a configuration can sit a few
    # % above another instance of the same one for its whole life (seen
    # here), which interleaving alone does not average out. --quick boots
    # once (it only checks that the benchmark works).
    fresh = not p.quick
    vms = []
    try:
        for r in range(p.runs):
            if not vms:
                for label, qemu, cpu, policy, device, reg in configs:
                    vms.append(C.BenchVM(label, 'bench-pio',
                                         f'loops={loops} reg={reg}',
                                         qemu=qemu, cpu=cpu, policy=policy,
                                         device=device))
                C.boot_all(vms)
            if calib is None:
                calib = {d['name']: d for d in vms[0].boot_bench}
                tsc_khz = vms[0].tsc_khz
            for vm in C.rotated(vms, r):
                res = vm.step(b'r')
                stats = next(d for d in res if d['name'] == 'pio')
                total = next(d for d in res if d['name'] == 'pio-total')
                runs[vm.label].append({
                    'med': stats['med'], 'mean': stats['mean'],
                    'min': stats['min'], 'p90': stats['p90'],
                    'total_per_exit': total['cycles'] / total['n']})
            if fresh or r == p.runs - 1:
                for vm in vms:
                    vm.quit()
                C.close_all(vms)
                vms = []
            C.log(f'exit cost: round {r + 1}/{p.runs} done')
    finally:
        C.close_all(vms)
    return analyse(runs, tsc_khz, loops, calib, fresh)


def analyse(runs, tsc_khz, loops, calib, fresh=True):
    labels = list(runs)
    base = labels[0]
    res = {'loops': loops, 'tsc_khz': tsc_khz, 'base': base, 'configs': {},
           'rdtsc_pair_cycles': calib['calib-rdtsc-pair']['med'],
           'loop_cycles_per_iter': calib['calib-loop']['cycles'] /
           calib['calib-loop']['iters']}
    for label in labels:
        meds = [x['med'] for x in runs[label]]
        entry = {
            'runs': runs[label],
            'median_cycles': C.summary(meds),
            'mean_cycles': C.summary([x['mean'] for x in runs[label]]),
        }
        if label != base:
            # Paired: the ratio within each round, then its spread.
            pairs = [a['med'] / b['med']
                     for a, b in zip(runs[label], runs[base])]
            entry['ratio_paired'] = C.summary(pairs)
            entry['ratio_of_medians'] = (
                entry['median_cycles']['median'] /
                res_median(runs[base]))
        res['configs'][label] = entry
    rows = []
    for label in labels:
        e = res['configs'][label]
        us = 1000.0 / tsc_khz
        rows.append([
            label,
            C.fmt_spread(e['median_cycles'], digits=5),
            C.fmt_num(e['median_cycles']['median'] * us, 4),
            f"{C.fmt_num(e['median_cycles']['q1'], 5)}.."
            f"{C.fmt_num(e['median_cycles']['q3'], 5)}",
            C.fmt_num(e['mean_cycles']['median'], 4),
            '1 (base)' if label == base else
            f"{e['ratio_of_medians']:.4f}",
            '-' if label == base else C.fmt_spread(e['ratio_paired'], digits=4),
        ])
    res['table'] = C.table(
        f'1. Exit-path cost: guest-timed userspace PIO exit (outb 0x80), '
        f'{loops} exits per run, {len(runs[base])} runs'
        f'{" (fresh VMs each)" if fresh else " (one boot)"}, '
        f'configurations interleaved',
        ['configuration', 'cycles/exit: median [min..max] of runs',
         'us/exit', 'IQR of runs', 'mean incl. preemption',
         f'ratio vs {base}', 'paired ratio [min..max]'],
        rows,
        'A run\'s value is the median of its per-exit rdtsc deltas; '
        'target: within 1% (ratio 0.99..1.01).\n'
        f"Timing floor: an empty rdtsc pair takes "
        f"{res['rdtsc_pair_cycles']} cycles, and a register loop "
        f"{res['loop_cycles_per_iter']:,.0f} cycles per iteration (1-2 "
        f"when guest code runs natively): this host emulates the bundled "
        f"guest's instructions, so the absolute values include emulation; "
        f"the differences between configurations are QEMU's.")
    return res


def res_median(runs):
    return C.summary([x['med'] for x in runs])['median']
