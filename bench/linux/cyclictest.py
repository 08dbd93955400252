#!/usr/bin/env python3
"""cyclictest in the Linux guest: vanilla vs dynamic pvsched vs static RT.

The KVM RFC's table (seed 002) rebuilt on QEMU's pvsched: cyclictest
-i 500 and -i 1000 on the guest's CPU, on an idle host and on a busy one
(a CPU hog pinned to the same host CPU as the vCPU thread), for

  vanilla  policy mode=off and no guest module: no area is registered,
           the vCPU thread stays SCHED_OTHER
  dynamic  policy fifo/8, max-boost-us=3000, cooldown-us=27000, and the
           guest module: boosted while the guest runs RT tasks
  hints    dynamic, with the module's lazy irq hints on (irq_hints=1):
           do boosts requested on interrupt entry, which QEMU only sees
           at a userspace exit, change anything?
  static   the vanilla VM with its vCPU thread made SCHED_FIFO 8 from
           outside (what libvirt's <vcpusched> does)

The three VMs boot the guest of guest/linux/linuxvm.py (the one that
guest/linux/test.py uses); cyclictest runs on its CPU 0, and both vCPU
threads are pinned to --host-cpu.

Guest: avg, p99 (cyclictest histogram) and max latency.  Host: the hog's
throughput (loop iterations per second) and the vCPU thread's CPU time.
Runs are interleaved (each round visits every configuration, in a
shuffled order) and the table shows the median of the rounds with the
range.  Never passes or fails on a number.

    bench/linux/cyclictest.py [--quick] [--rounds N] [--seconds S]

Writes build/bench/linux-cyclictest.{txt,json,png}.  As root.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, os.path.join(REPO, 'guest', 'linux'))
import linuxvm  # noqa: E402

HOG = r'''
import os, signal, sys, time
stop = False
def handler(*a):
    global stop
    stop = True
signal.signal(signal.SIGTERM, handler)
n = 0
t0 = time.monotonic()
while not stop:
    for _ in range(10000):
        pass
    n += 10000
print(n / (time.monotonic() - t0), flush=True)
'''

MODES = ('vanilla', 'dynamic', 'hints', 'static')
# The guest module's parameters in each VM that loads it.
MODULE_ARGS = {'dynamic': '', 'hints': 'irq_hints=1'}
RESULT_RE = re.compile(r'^RESULT cyclictest .*rc=(\d+) samples=(\d+) '
                       r'avg=(\d+) p99=(>?\d+) max=(\d+) overflows=(\d+)')


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Hog:
    """A busy loop pinned to one host CPU; reports iterations/second."""

    def __init__(self, cpu):
        self.proc = subprocess.Popen([sys.executable, '-c', HOG],
                                     stdout=subprocess.PIPE, text=True)
        os.sched_setaffinity(self.proc.pid, {cpu})

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return float(out.strip() or 0)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start(name, pvsched, args):
    """One guest, not started yet."""
    log(f'# starting the {name} guest')
    module = name in MODULE_ARGS
    vm = linuxvm.LinuxVM('bench', pvsched=pvsched, trace=module,
                         settings={'LOAD_MODULE': int(module),
                                   'MODARGS': MODULE_ARGS.get(name, '')},
                         log=(lambda s: log(f'  {name} | ' + s))
                         if args.verbose else None)
    vm.name = name
    vm.module = module
    return vm


def ready(vm, args, host_cpu):
    """Wait for the guest's first BENCH-READY, pin the vCPU, stop the VM."""
    vm.start(boot_timeout=args.boot_timeout)
    log(f'# {vm.name}: booted in {vm.boot_seconds:.0f} s')
    vm.expect(r'^SCRIPT lines=', 600)
    if vm.module:
        m = vm.expect(r'^LOADED rc=(\d+)', 600)
        if m.group(1) != '0':
            raise linuxvm.GuestError(f'{vm.name}: insmod failed')
    vm.expect(r'^BENCH-READY', 600)
    # cyclictest runs on vCPU 0.
    vm.tid = vm.vcpu_threads()[0]
    for tid in vm.vcpu_threads().values():
        os.sched_setaffinity(tid, {host_cpu})
    vm.qmp('stop')
    log(f'# {vm.name} guest ready')


def measure(vm, mode, load, interval, args, host_cpu):
    """One cyclictest run; returns a dict of numbers."""
    static = mode == 'static'
    vm.qmp('cont')
    hog = None
    try:
        if static:
            os.sched_setscheduler(vm.tid, os.SCHED_FIFO, os.sched_param(8))
        ntrace = len(vm.trace_lines())
        cpu0 = linuxvm.thread_cpu_ns(vm.pid, vm.tid)
        if load == 'busy':
            hog = Hog(host_cpu)
        vm.send(f'RUN 0 {interval} {args.seconds}\n')
        m = vm.expect(RESULT_RE, args.seconds * 10 + 120)
        rate = hog.stop() if hog else None
        hog = None
        cpu_ms = (linuxvm.thread_cpu_ns(vm.pid, vm.tid) - cpu0) / 1e6
        trace = vm.trace_lines()[ntrace:]
        vm.expect(r'^BENCH-READY', 60)
    finally:
        if hog:
            hog.kill()
        if static:
            os.sched_setscheduler(vm.tid, os.SCHED_OTHER, os.sched_param(0))
        vm.qmp('stop')
    p99 = m.group(4)
    return {
        'rc': int(m.group(1)), 'samples': int(m.group(2)),
        'avg': int(m.group(3)),
        'p99': int(p99.lstrip('>')), 'p99_overflow': p99.startswith('>'),
        'max': int(m.group(5)),
        'hog_ips': rate,
        'vcpu_cpu_ms_per_s': cpu_ms / args.seconds,
        'boosts': sum('-> boosted' in t for t in trace),
        'throttles': sum('-> throttled' in t for t in trace),
    }


def fmt(values, unit=1.0, digits=0):
    vals = [v / unit for v in values if v is not None]
    if not vals:
        return '-'
    f = f'{{:.{digits}f}}'
    med = f.format(statistics.median(vals))
    if len(vals) == 1 or min(vals) == max(vals):
        return med
    return f'{med} [{f.format(min(vals))}-{f.format(max(vals))}]'


def table(results, args):
    hdr = (f'{"host":5} {"-i":>5} {"mode":8} {"avg us":>13} {"p99 us":>17} '
           f'{"max us":>21} {"hog Mit/s":>17} {"vCPU ms/s":>15} '
           f'{"boosts/run":>10}')
    lines = [f'cyclictest in the guest, {args.seconds} s per run, median '
             f'[min-max] of {args.rounds} interleaved rounds', hdr,
             '-' * len(hdr)]
    for load in ('idle', 'busy'):
        for iv in args.intervals:
            for mode in MODES:
                rs = results[f'{load}/{iv}/{mode}']
                if not rs:
                    continue
                p99 = fmt([r['p99'] for r in rs])
                if any(r['p99_overflow'] for r in rs):
                    p99 += '+'
                lines.append(
                    f'{load:5} {iv:>5} {mode:8} '
                    f'{fmt([r["avg"] for r in rs]):>13} {p99:>17} '
                    f'{fmt([r["max"] for r in rs]):>21} '
                    f'{fmt([r["hog_ips"] for r in rs], 1e6, 2):>17} '
                    f'{fmt([r["vcpu_cpu_ms_per_s"] for r in rs], 1, 1):>15} '
                    f'{fmt([r["boosts"] for r in rs]) if mode in MODULE_ARGS else "-":>10}')
    lines.append('p99 "+": beyond the 100 ms histogram in some run. '
                 'hog: iterations/s of a Python loop on the vCPU\'s host CPU.')
    return '\n'.join(lines)


def import_matplotlib():
    """Debian's python3-matplotlib, installed with apt if missing.  It lives
    in /usr/lib/python3/dist-packages, which a python3 other than Debian's
    (pyenv, say) does not search."""
    for attempt in range(2):
        try:
            import matplotlib
            return matplotlib
        except ImportError:
            pass
        if '/usr/lib/python3/dist-packages' not in sys.path:
            sys.path.append('/usr/lib/python3/dist-packages')
            try:
                import matplotlib
                return matplotlib
            except ImportError:
                pass
        if attempt == 0 and os.geteuid() == 0:
            subprocess.run(['apt-get', 'install', '-y', '-q',
                            'python3-matplotlib'],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    return None


def _plot(results, args, path):
    matplotlib = import_matplotlib()
    if matplotlib is None:
        log('# no python3-matplotlib: no plot')
        return None
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    groups = [(load, iv) for load in ('idle', 'busy') for iv in args.intervals]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.2
    colors = {'vanilla': '#999999', 'dynamic': '#1f77b4', 'hints': '#2ca02c',
              'static': '#d62728'}
    for ax, key, title, scale in (
            (axes[0], 'p99', 'guest p99 latency (us, log)', 1),
            (axes[1], 'max', 'guest max latency (us, log)', 1),
            (axes[2], 'hog_ips', 'busy host: hog throughput (M it/s)', 1e6)):
        for k, mode in enumerate(MODES):
            xs, meds, lo, hi = [], [], [], []
            for g, (load, iv) in enumerate(groups):
                if key == 'hog_ips' and load == 'idle':
                    continue
                vals = [r[key] / scale for r in results[f'{load}/{iv}/{mode}']
                        if r[key] is not None]
                if not vals:
                    continue
                med = statistics.median(vals)
                xs.append(g + (k - (len(MODES) - 1) / 2) * width)
                meds.append(med)
                lo.append(med - min(vals))
                hi.append(max(vals) - med)
            ax.bar(xs, meds, width, yerr=[lo, hi], capsize=3,
                   color=colors[mode], label=mode)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([f'{load}\n-i {iv}' for load, iv in groups])
        ax.set_title(title)
        if key != 'hog_ips':
            ax.set_yscale('log')
        else:
            ax.set_xlim(len(groups) / 2 - 0.5, len(groups) - 0.5)
    axes[0].legend()
    fig.suptitle(f'pvsched Linux guest: cyclictest, {args.seconds} s runs, '
                 f'median and range of {args.rounds} rounds')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def bench(args):
    """Boot the VMs, run every configuration args.rounds
    times; returns (results, the module's STATS lines, table)."""
    problems = linuxvm.missing_prerequisites()
    err = None if problems else linuxvm.ensure_guest(log=log)
    if problems or err:
        raise RuntimeError('; '.join(problems + ([err] if err else [])))

    configs = [(load, iv, mode) for load in ('idle', 'busy')
               for iv in args.intervals for mode in MODES]
    results = {f'{load}/{iv}/{mode}': [] for load, iv, mode in configs}
    vms = {}
    try:
        # vanilla: mode=off and no guest module (no area registered);
        # static: the same VM, its vCPU thread made SCHED_FIFO 8 from outside.
        vms['vanilla'] = start('vanilla', linuxvm.policy_string(mode='off'),
                               args)
        for name in MODULE_ARGS:
            vms[name] = start(name, linuxvm.policy_string(), args)
        for vm in vms.values():
            ready(vm, args, args.host_cpu)
        rng = random.Random(1)
        for rnd in range(args.rounds):
            order = configs[:]
            rng.shuffle(order)
            for load, iv, mode in order:
                vm = vms[mode if mode in MODULE_ARGS else 'vanilla']
                r = measure(vm, mode, load, iv, args, args.host_cpu)
                results[f'{load}/{iv}/{mode}'].append(r)
                log(f'# round {rnd + 1}/{args.rounds} {load} -i {iv} '
                    f'{mode}: avg {r["avg"]} p99 {r["p99"]} max {r["max"]} '
                    f'hog {r["hog_ips"] and round(r["hog_ips"] / 1e6, 2)} '
                    f'boosts {r["boosts"]} throttles {r["throttles"]}')
        stats = []
        for name in MODULE_ARGS:
            vm = vms[name]
            vm.qmp('cont')
            n0 = len(vm.serial_log)
            vm.send('STATS\n')
            vm.expect(r'^STATS feature=', 60)
            stats += [f'{name}: {s}' for s in vm.serial_log[n0:]
                      if s.startswith('STATS ')]
    finally:
        for vm in vms.values():
            vm.close()
    text = table(results, args)
    text += '\nguest module counters at the end:\n  ' + \
        '\n  '.join(stats)
    return results, stats, text


# bench/run.py's interface: run(p) -> {'table': ...}, plot(res, outdir, plt)
RUN_PY_ROUNDS_SECONDS = 5


def run(p):
    """The linux benchmark of bench/run.py (p.runs rounds of 5 s runs)."""
    args = argparse.Namespace(
        rounds=p.runs, seconds=RUN_PY_ROUNDS_SECONDS, intervals=[500, 1000],
        host_cpu=1, boot_timeout=300, verbose=False, out=p.out)
    results, stats, text = bench(args)
    return {'table': text, 'results': results, 'stats': stats,
            'args': {k: v for k, v in vars(args).items()}}


def plot(res, outdir, plt):  # noqa: ARG001 - plt: cyclictest's own import
    args = argparse.Namespace(**res['args'])
    path = _plot(res['results'], args,
                 os.path.join(outdir, 'linux-cyclictest.png'))
    return [path] if path else []


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='2 rounds of 3 s runs (the default: 5 of 10 s)')
    ap.add_argument('--rounds', type=int)
    ap.add_argument('--seconds', type=int)
    ap.add_argument('--intervals', default='500,1000')
    ap.add_argument('--host-cpu', type=int, default=1,
                    help='host CPU for the vCPU threads and the hog')
    ap.add_argument('--boot-timeout', type=float, default=300,
                    help='seconds for a guest to boot (default 300)')
    ap.add_argument('--out', default=os.path.join(REPO, 'build', 'bench'))
    ap.add_argument('--verbose', '-v', action='store_true')
    args = ap.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.seconds = args.seconds or (3 if args.quick else 10)
    args.intervals = [int(i) for i in args.intervals.split(',')]

    try:
        results, stats, text = bench(args)
    except (RuntimeError, linuxvm.GuestError) as e:
        log(f'error: {e}')
        return 1
    os.makedirs(args.out, exist_ok=True)
    print(text)
    base = os.path.join(args.out, 'linux-cyclictest')
    with open(base + '.txt', 'w') as f:
        f.write(text + '\n')
    with open(base + '.json', 'w') as f:
        json.dump({'args': vars(args), 'results': results}, f, indent=1)
    png = _plot(results, args, base + '.png')
    print(f'wrote {base}.txt, {base}.json' + (f', {png}' if png else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
