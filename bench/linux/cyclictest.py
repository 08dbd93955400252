"""cyclictest in a Debian guest: the KVM RFC's table (seed 002), rebuilt.

One 2-vCPU Linux guest (guest/linux/linuxvm.py, Debian's kernel and
rt-tests) per configuration:

  vanilla  no pvsched device, no CPUID bit, no guest module: stock QEMU's
           view of the guest
  dynamic  the device (fifo/8, max-boost-us=3000, cooldown-us=27000) and
           the guest module with its defaults (keep_idle_boost on)
  unbounded  dynamic without the bound (max-boost-us=0), as the RFC's
           boost had none
  static   the device in mode=static: both vCPU threads SCHED_FIFO 8 all
           the time (what the RFC did with chrt, libvirt's <vcpusched>)

vCPU i runs on host CPU i.  Each measurement runs, at the same time,
cyclictest in the guest (-m -S -p 80: a SCHED_FIFO thread per vCPU) and
cyclictest on the host (-m -t 2 -a 0,1, SCHED_OTHER like the RFC's: the
host's ordinary tasks, which a static RT vCPU can starve), on an idle
host or a busy one (bench/tools/hog.c on each host CPU, SCHED_OTHER; its
throughput is the host's work done).

The VMs boot once and are kept stopped (QMP stop) between measurements;
each round visits every configuration in a shuffled order.  Tables give
the median of the rounds with [min..max], the targets are checked on
ratios taken within a round, and build/bench/linux-cdf.png plots the
latency distributions.  Never passes or fails on a number.

    python3 bench/run.py --only linux [--runs N] [--quick]

SPDX-License-Identifier: GPL-2.0-or-later
"""

import bisect
import os
import random
import subprocess
import sys
import tempfile
import time

from pvbench import common as C

sys.path.insert(0, os.path.join(C.REPO, 'guest', 'linux'))
import linuxvm  # noqa: E402  (after the sys.path change)

MODES = ('vanilla', 'dynamic', 'unbounded', 'static')
# mode: (pvsched-policy properties or False for no device, module args
# or None for no module)
VMS = {
    'vanilla': (False, None),
    'dynamic': (linuxvm.policy_string(), ''),
    'unbounded': (linuxvm.policy_string(max_boost_us=0), ''),
    'static': (linuxvm.policy_string(mode='static'), None),
}
LOADS = ('idle', 'busy')
HOST_CPUS = (0, 1)
HIST_US = 100000            # histogram range of both cyclictests

RESULT_RE = (r'^RESULT cyclictest interval=(\d+) rc=(\d+) samples=(\d+) '
             r'avg=(\d+) p99=(>?\d+) max=(\d+) overflows=(\d+)')
CDF_RE = r'^CDF ((?:\d+:\d+ )*)overflow:(\d+)'

# Seed 002's numbers (cyclictest -i 500/1000, 4-vCPU guest, Intel N4500):
# (load, interval) -> metric -> (vanilla, dynamic, static), us.
SEED = {
    ('idle', 500): {'guest avg': (9, 9, 10), 'guest max': (1577, 1433, 140),
                    'host avg': (5, 3, 3), 'host max': (1577, 1526, 15969)},
    ('idle', 1000): {'guest avg': (34, 35, 35),
                     'guest max': (6649, 765, 204),
                     'host avg': (5, 3, 3), 'host max': (697, 174, 2444)},
    ('busy', 500): {'guest avg': (887, 21, 25),
                    'guest max': (216835, 13978, 1728),
                    'host avg': (6, 6, 7), 'host max': (2075, 2114, 2447)},
    ('busy', 1000): {'guest avg': (6335, 45, 38),
                     'guest max': (199575, 70651, 1537),
                     'host avg': (11, 11, 14),
                     'host max': (1886, 1285, 27104)},
}


# ---- histograms ---------------------------------------------------------------

# Bins of 1/20 decade, edges as the guest's awk computes them (by repeated
# multiplication: busybox awk has no log()), so both sides bin alike.
EDGES = [1.0]
for _ in range(101):
    EDGES.append(EDGES[-1] * 1.1220184543)


def bin_of(us):
    return max(0, bisect.bisect_right(EDGES, us) - 1)


def bin_lower_us(b):
    return 0.0 if b == 0 else EDGES[b]


def _num(s):
    return int(s.lstrip('0') or '0')


def parse_host_hist(path, rc):
    """cyclictest's --histfile, all threads summed: the same numbers as the
    guest's RESULT and CDF lines."""
    h, bins, tot, avg, mx, ovf = {}, {}, [], [], 0, 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if line[:1].isdigit():
                c = sum(_num(x) for x in parts[1:])
                if c:
                    v = _num(parts[0])
                    h[v] = h.get(v, 0) + c
                    bins[bin_of(v)] = bins.get(bin_of(v), 0) + c
            elif line.startswith('# Total:'):
                tot = [_num(x) for x in parts[2:]]
            elif line.startswith('# Avg Latencies:'):
                avg = [_num(x) for x in parts[3:]]
            elif line.startswith('# Max Latencies:'):
                mx = max(_num(x) for x in parts[3:])
            elif line.startswith('# Histogram Overflows:'):
                ovf = sum(_num(x) for x in parts[3:])
    total = sum(h.values()) + ovf
    acc, p99 = 0, None
    for v in sorted(h):
        acc += h[v]
        if acc >= total * 0.99:
            p99 = v
            break
    return {'rc': rc, 'samples': total,
            'avg': sum(a * t for a, t in zip(avg, tot)) // max(1, sum(tot)),
            'p99': p99 if p99 is not None else HIST_US,
            'p99_overflow': p99 is None, 'max': mx, 'overflows': ovf,
            'cdf': bins}


def parse_guest(m, cdf):
    p99 = m[5]
    return {'rc': int(m[2]), 'samples': int(m[3]), 'avg': int(m[4]),
            'p99': int(p99.lstrip('>')), 'p99_overflow': p99[0] == '>',
            'max': int(m[6]), 'overflows': int(m[7]),
            'cdf': {int(b): int(n) for b, n in
                    (x.split(':') for x in cdf[1].split())}}


class HostCyclictest:
    """cyclictest on the host while the guest's runs: one SCHED_OTHER
    thread per host CPU, as the RFC's host-side column."""

    def __init__(self, interval, seconds, tmpdir):
        self.hist = os.path.join(tmpdir, 'host-hist')
        self.proc = subprocess.Popen(
            ['cyclictest', '-q', '-m', '-t', str(len(HOST_CPUS)),
             '-a', ','.join(map(str, HOST_CPUS)), '-i', str(interval),
             '-D', str(seconds), '-h', str(HIST_US),
             '--histfile=' + self.hist],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def result(self, timeout):
        _, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode or not os.path.exists(self.hist):
            raise RuntimeError(f'host cyclictest failed '
                               f'({self.proc.returncode}): {err[-500:]}')
        return parse_host_hist(self.hist, self.proc.returncode)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- the VMs ------------------------------------------------------------------

def boot(mode, timeout):
    """One guest at its first BENCH-READY, vCPU i on host CPU i, stopped."""
    policy, modargs = VMS[mode]
    vm = linuxvm.LinuxVM('bench', pvsched=policy,
                         settings={'LOAD_MODULE': int(modargs is not None),
                                   'MODARGS': modargs or ''})
    vm.mode = mode
    vm.start(boot_timeout=timeout)
    if modargs is not None:
        if vm.expect(r'^LOADED rc=(\d+)', 300)[1] != '0':
            raise linuxvm.GuestError(f'{mode}: insmod pvsched failed')
    vm.expect(r'^BENCH-READY', 300)
    vm.tids = vm.vcpu_threads()
    for cpu, tid in vm.tids.items():
        os.sched_setaffinity(tid, {HOST_CPUS[cpu % len(HOST_CPUS)]})
    vm.cmd('stop')
    C.log(f'linux: {mode} guest up in {vm.boot_seconds:.0f} s')
    return vm


def counters(vm):
    """Summed boosts, throttles and boosted-ns of every vCPU, and the vCPU
    threads' CPU time (ns)."""
    cpu = sum(linuxvm.thread_cpu_ns(vm.pid, t) for t in vm.tids.values())
    if VMS[vm.mode][0] is False:
        return {'boosts': 0, 'throttles': 0, 'boosted_ns': 0, 'cpu_ns': cpu,
                'wall_ns': time.monotonic_ns()}
    vcpus = vm.cmd('query-pvsched')['vcpus']
    return {'boosts': sum(v['boosts'] for v in vcpus),
            'throttles': sum(v['throttles'] for v in vcpus),
            'boosted_ns': sum(v['boosted-ns'] for v in vcpus),
            'cpu_ns': cpu, 'wall_ns': time.monotonic_ns()}


def measure(vm, load, interval, seconds, hogs, tmpdir):
    """One run of both cyclictests; returns its numbers."""
    vm.cmd('cont')
    host = None
    try:
        c0 = counters(vm)
        if load == 'busy':
            for h in hogs:
                h.resume()
        s0 = [h.sample() for h in hogs]
        host = HostCyclictest(interval, seconds, tmpdir)
        vm.send(f'RUN {interval} {seconds}\n')
        m = vm.expect(RESULT_RE, seconds * 10 + 120)
        cdf = vm.expect(CDF_RE, 60)
        s1 = [h.sample() for h in hogs]
        for h in hogs:
            h.pause()
        c1 = counters(vm)
        hostr = host.result(seconds * 10 + 60)
        vm.expect(r'^BENCH-READY', 60)
    finally:
        for h in hogs:
            h.pause()
        if host:
            host.kill()
        vm.cmd('stop')
    guest = parse_guest(m, cdf)
    if guest['rc'] or not guest['samples']:
        raise linuxvm.GuestError(f'{vm.mode}: guest cyclictest rc '
                                 f'{guest["rc"]}, {guest["samples"]} samples')
    d = {k: c1[k] - c0[k] for k in c0}
    return {'guest': guest, 'host': hostr,
            'hog_ips': (sum(C.Hog.rate(a, b) for a, b in zip(s0, s1))
                        if load == 'busy' else None),
            'boosts': d['boosts'], 'throttles': d['throttles'],
            'boosted_ms_per_s': d['boosted_ns'] / d['wall_ns'] * 1e3,
            'vcpu_ms_per_s': d['cpu_ns'] / d['wall_ns'] * 1e3}


def bench(rounds, seconds, intervals, boot_timeout=300):
    problems = linuxvm.missing_prerequisites()
    err = None if problems else linuxvm.ensure_guest(log=C.log)
    if problems or err:
        raise RuntimeError('; '.join(problems + ([err] if err else [])))
    configs = [(ld, iv, mo) for ld in LOADS for iv in intervals
               for mo in MODES]
    results = {key(*c): [] for c in configs}
    vms, hogs = {}, []
    with tempfile.TemporaryDirectory(prefix='pvsched-linux-') as tmpdir:
        try:
            hogs = [C.Hog(cpu, tmpdir) for cpu in HOST_CPUS]
            for mode in MODES:
                vms[mode] = boot(mode, boot_timeout)
            rng = random.Random(1)
            for rnd in range(rounds):
                order = configs[:]
                rng.shuffle(order)
                for ld, iv, mo in order:
                    r = measure(vms[mo], ld, iv, seconds, hogs, tmpdir)
                    r['round'] = rnd
                    results[key(ld, iv, mo)].append(r)
                    C.log(f'linux: round {rnd + 1}/{rounds} {ld} -i {iv} '
                          f'{mo}: guest avg {r["guest"]["avg"]} max '
                          f'{r["guest"]["max"]}, host max '
                          f'{r["host"]["max"]}, boosts {r["boosts"]}, '
                          f'throttles {r["throttles"]}')
            stats = module_stats(vms)
        finally:
            for vm in vms.values():
                vm.close()
            for h in hogs:
                h.close()
    return results, stats


def module_stats(vms):
    """The guest module's own counters, from each VM that loads it."""
    out = []
    for mode, vm in vms.items():
        if VMS[mode][1] is None:
            continue
        vm.cmd('cont')
        n0 = len(vm.serial_log)
        vm.send('STATS\n')
        vm.expect(r'^BENCH-READY', 60)
        out += [f'{mode}: {s[6:]}' for s in vm.serial_log[n0:]
                if s.startswith('STATS ')]
        vm.cmd('stop')
    return out


def key(load, interval, mode):
    return f'{load}/{interval}/{mode}'


# ---- tables -------------------------------------------------------------------

def spread(rs, get, scale=1.0, digits=3):
    vals = [get(r) for r in rs]
    return C.fmt_spread(C.summary([v for v in vals if v is not None]),
                        scale, digits)


def p99_cell(rs, side):
    cell = spread(rs, lambda r: r[side]['p99'])
    return cell + ('+' if any(r[side]['p99_overflow'] for r in rs) else '')


def main_table(results, rounds, seconds, intervals):
    rows = []
    for ld in LOADS:
        for iv in intervals:
            for mo in MODES:
                rs = results[key(ld, iv, mo)]
                rows.append([
                    f'{ld} -i {iv} {mo}',
                    spread(rs, lambda r: r['guest']['avg']),
                    p99_cell(rs, 'guest'),
                    spread(rs, lambda r: r['guest']['max']),
                    spread(rs, lambda r: r['host']['avg']),
                    spread(rs, lambda r: r['host']['max']),
                    spread(rs, lambda r: r['hog_ips'], 1e-6),
                    spread(rs, lambda r: r['vcpu_ms_per_s']),
                    spread(rs, lambda r: r['boosted_ms_per_s']),
                    spread(rs, lambda r: r['boosts']),
                    spread(rs, lambda r: r['throttles'])])
    return C.table(
        f'cyclictest, guest (-m -S -p 80, 2 vCPUs) and host (-m -t 2, '
        f'SCHED_OTHER) side by side: {seconds} s runs, median [min..max] of '
        f'{rounds} interleaved round(s)',
        ['load, interval, mode', 'guest avg us', 'guest p99 us',
         'guest max us', 'host avg us', 'host max us', 'hog M it/s',
         'vCPU CPU ms/s', 'boosted ms/s', 'boosts', 'throttles'],
        rows,
        'p99 "+": beyond the 100 ms histogram in some run.  hog: the '
        'iterations/s of a CPU hog on each host CPU, summed (busy host).  '
        'vCPU CPU and boosted: both vCPU threads, per second of run.')


def seed_table(results, intervals):
    """Seed 002's numbers next to ours (medians), metric by metric."""
    rows = []
    for ld in LOADS:
        for iv in intervals:
            seed = SEED.get((ld, iv))
            for metric in ('guest avg', 'guest max', 'host avg', 'host max'):
                side, stat = metric.split()
                ours = []
                for mo in ('vanilla', 'dynamic', 'unbounded', 'static'):
                    s = C.summary([r[side][stat]
                                   for r in results[key(ld, iv, mo)]])
                    ours.append(C.fmt_num(s['median']) if s else '-')
                rows.append([f'{ld} -i {iv} {metric}'] +
                            [str(x) for x in (seed[metric] if seed
                                              else ('-',) * 3)] + ours)
    return C.table(
        'seed 002 (RFC, in-KVM boost: Intel N4500, 4 vCPUs, 90 s runs) vs '
        'this run (pvsched in QEMU, medians)',
        ['load, interval, metric', 'RFC vanilla', 'RFC dynamic',
         'RFC static', 'vanilla', 'dynamic', 'unbounded', 'static'], rows)


# (side, stat, numerator mode, denominator mode, target): the issue's
# targets for both dynamic policies, and what static costs.
TARGETS = tuple(
    t for dyn in ('dynamic', 'unbounded') for t in (
        ('guest', 'avg', dyn, 'static', '<= 2'),
        ('guest', 'p99', dyn, 'static', '<= 2'),
        ('guest', 'avg', dyn, 'vanilla', '<= 0.1'),
        ('guest', 'p99', dyn, 'vanilla', '<= 0.1'),
        ('host', 'max', dyn, 'vanilla', '<= 1.5'),
        (None, 'hog_ips', dyn, 'vanilla', ''))) + (
    ('host', 'max', 'static', 'vanilla', ''),
    (None, 'hog_ips', 'static', 'vanilla', ''))


def ratios(results, load, iv, side, stat, num, den):
    """num/den within each round (both measured in that round)."""
    def get(r):
        return r[stat] if side is None else r[side][stat]
    by_round = {r['round']: get(r) for r in results[key(load, iv, den)]}
    out = []
    for r in results[key(load, iv, num)]:
        d = by_round.get(r['round'])
        if d:
            out.append(get(r) / d)
    return out


def target_table(results, intervals):
    rows = []
    for iv in intervals:
        for side, stat, num, den, target in TARGETS:
            name = (f'{side or "hog"} {stat.replace("hog_ips", "it/s")}, '
                    f'{num} / {den}')
            rs = ratios(results, 'busy', iv, side, stat, num, den)
            s = C.summary(rs)
            met = ''
            if target and s:
                met = 'met' if s['median'] <= float(target[3:]) else 'MISSED'
            rows.append([f'busy -i {iv}: {name}', C.fmt_spread(s),
                         target, met])
    return C.table('targets on a busy host, as ratios within a round '
                   '(median [min..max])',
                   ['ratio', 'value', 'target', ''], rows,
                   'a p99 beyond the histogram counts as 100 ms, so its '
                   'ratios are bounds.')


# ---- bench/run.py's interface -------------------------------------------------

def run(p):
    """Full: p.runs rounds of 10 s runs at -i 500 and 1000.  Quick: one
    round of 2 s runs at -i 1000, only to show every configuration runs."""
    rounds, seconds, intervals = ((1, 2, [1000]) if p.quick else
                                  (p.runs, 10, [500, 1000]))
    results, stats = bench(rounds, seconds, intervals)
    text = '\n\n'.join([main_table(results, rounds, seconds, intervals),
                        seed_table(results, intervals),
                        target_table(results, intervals)])
    text += '\nguest module counters at the end:\n  ' + '\n  '.join(stats)
    return {'table': text, 'results': results, 'stats': stats,
            'rounds': rounds, 'seconds': seconds, 'intervals': intervals}


def plot(res, outdir, plt):
    """Latency distributions: a panel per (load, interval), a colour per
    mode, the guest's solid and the host's dashed."""
    intervals = res['intervals']
    fig, axes = plt.subplots(len(LOADS), len(intervals), squeeze=False,
                             figsize=(6 * len(intervals), 4.5 * len(LOADS)))
    colors = {'vanilla': '#777777', 'dynamic': '#1f77b4',
              'unbounded': '#9467bd', 'static': '#d62728'}
    for i, ld in enumerate(LOADS):
        for j, iv in enumerate(intervals):
            ax = axes[i][j]
            for mo in MODES:
                for side, ls in (('guest', '-'), ('host', '--')):
                    xs, ys = ccdf(res['results'][key(ld, iv, mo)], side)
                    if xs:
                        ax.step(xs, ys, where='post', ls=ls,
                                color=colors[mo], label=f'{mo} {side}')
            ax.set_xscale('log')
            ax.set_yscale('log')
            ax.set_xlabel('latency (us)')
            ax.set_ylabel('fraction of samples above (1 - CDF)')
            ax.set_title(f'{ld} host, cyclictest -i {iv}')
            ax.grid(True, which='both', alpha=0.3)
    axes[0][0].legend(fontsize='x-small', ncol=2)
    fig.suptitle('pvsched Linux guest: cyclictest latency, all rounds '
                 '(solid: in the guest; dashed: on the host)')
    fig.tight_layout()
    path = os.path.join(outdir, 'linux-cdf.png')
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return [path]


def ccdf(rs, side):
    """x: each bin's lower edge (us); y: the fraction of samples at or
    above it, over every round's histogram."""
    bins, ovf = {}, 0
    for r in rs:
        for b, n in r[side]['cdf'].items():
            bins[int(b)] = bins.get(int(b), 0) + n
        ovf += r[side]['overflows']
    total = sum(bins.values()) + ovf
    if not total:
        return [], []
    xs, ys, above = [], [], total
    for b in sorted(bins):
        xs.append(max(bin_lower_us(b), 0.5))
        ys.append(above / total)
        above -= bins[b]
    if ovf:
        xs.append(HIST_US)
        ys.append(ovf / total)
    return xs, ys
