#!/usr/bin/env python3
"""Run every pvsched benchmark, print the tables, write plots and results.

    python3 bench/run.py            # the full run (~15 minutes here)
    python3 bench/run.py --quick    # a short run that checks it all works
    python3 bench/run.py --only latency,locks --runs 7

Needs root (KVM, SCHED_FIFO, chrt). Builds what it needs first: the
bundled guest, the patched QEMU (only if missing; `make` rebuilds it),
the stock QEMU (scripts/build-stock-qemu.sh, cheap with ccache once
built) and the two small C programs; installs python3-matplotlib with
apt-get when it is missing. Output under build/bench/: results.json,
results.txt (the tables) and PNG plots.

Benchmarks never pass or fail on a measured value: the exit status is
non-zero only when a benchmark could not run (or a guest check failed).
Every comparison is measured in one run with its configurations
interleaved; tables give the median of the runs and their spread.
The results of this machine are in docs/system/pvsched-benchmarks.rst.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import traceback

SYSTEM_PYTHON = '/usr/bin/python3'


def ensure_matplotlib():
    """Debian's python3-matplotlib; re-run under Debian's python3 if
    this interpreter (pyenv, a venv) cannot import it."""
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    if subprocess.run([SYSTEM_PYTHON, '-c', 'import matplotlib'],
                      capture_output=True).returncode != 0:
        print('[bench] installing python3-matplotlib (apt-get)',
              file=sys.stderr, flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        if subprocess.run(['apt-get', 'install', '-y', '-qq',
                           'python3-matplotlib'], env=env,
                          stdout=subprocess.DEVNULL).returncode != 0:
            subprocess.run(['apt-get', 'update', '-qq'], env=env, check=True)
            subprocess.run(['apt-get', 'install', '-y', '-qq',
                            'python3-matplotlib'], env=env, check=True,
                           stdout=subprocess.DEVNULL)
    try:
        import matplotlib  # noqa: F401,F811
        return
    except ImportError:
        pass
    if os.path.realpath(sys.executable) != os.path.realpath(SYSTEM_PYTHON):
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
    raise SystemExit('python3-matplotlib is installed but cannot be '
                     'imported')


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pvbench import common as C  # noqa: E402
from pvbench import doorbell, exitcost, locks, scale, wakeup  # noqa: E402
from linux import cyclictest as linux_cyclictest  # noqa: E402

# linux: cyclictest in a Debian guest (bench/linux/cyclictest.py).
BENCHMARKS = [('exit', exitcost), ('doorbell', doorbell),
              ('latency', wakeup), ('locks', locks), ('scale', scale),
              ('linux', linux_cyclictest)]


def sh(cmd, **kw):
    C.log(' '.join(cmd))
    return subprocess.run(cmd, cwd=C.REPO, check=True, **kw)


def built(p, only):
    """What build() makes, all there: inside the L1 VM nothing is built
    (it has no network, and a compile there is emulated)."""
    need = [C.PATCHED_QEMU, C.GUEST, os.path.join(C.BIN, 'hog'),
            os.path.join(C.BIN, 'locks')]
    if p.stock and (not only or 'exit' in only):
        need.append(C.STOCK_QEMU)
    if not only or 'linux' in only:
        need.append(os.path.join(linux_cyclictest.linuxvm.GUEST_DIR,
                                 'bzImage'))
    missing = [x for x in need if not os.path.exists(x)]
    if missing:
        raise SystemExit('not built (run "python3 bench/run.py '
                         '--build-only" on the host first): ' +
                         ', '.join(missing))


def build(p, only):
    """Everything the benchmarks run, built (or found up to date)."""
    if os.environ.get('PVSCHED_IN_L1'):
        built(p, only)
        return
    # rt-tests (the host-side cyclictest) among them.
    sh(['bash', 'scripts/install-deps.sh', '--test'])
    sh(['make', '--no-print-directory', 'guest'], stdout=subprocess.DEVNULL)
    if not only or 'linux' in only:
        err = linux_cyclictest.linuxvm.ensure_guest(log=C.log)
        if err:
            raise SystemExit(err)
    if not os.access(C.PATCHED_QEMU, os.X_OK):
        sh(['make', '--no-print-directory', 'qemu'])
    if p.stock and (not only or 'exit' in only):
        sh(['bash', 'scripts/build-stock-qemu.sh'], stdout=subprocess.DEVNULL)
    os.makedirs(C.BIN, exist_ok=True)
    for src, name, flags in (('bench/tools/hog.c', 'hog', []),
                             ('bench/locks/locks.c', 'locks', ['-pthread'])):
        out = os.path.join(C.BIN, name)
        if (not os.path.exists(out) or os.path.getmtime(out) <
                os.path.getmtime(os.path.join(C.REPO, src))):
            sh(['gcc', '-O2', '-Wall', '-Wextra', '-Werror'] + flags +
               ['-o', out, src])


def machine():
    nr, mx = C.kvm_caps()
    rt = C.rt_throttling()
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                          cwd=C.REPO, capture_output=True, text=True)
    return {
        'commit': head.stdout.strip() or 'unknown',
        'date': datetime.datetime.now().isoformat(timespec='seconds'),
        'nproc': os.cpu_count(),
        'cpu_model': C.cpu_model(),
        'kernel': platform.release(),
        'kvm': C.kvm_module(),
        'kvm_nr_vcpus': nr, 'kvm_max_vcpus': mx,
        'sched_rt_runtime_us': rt[0], 'sched_rt_period_us': rt[1],
        'loadavg_start': C.loadavg(),
    }


def describe(m):
    return (f"commit {m['commit']}; "
            f"machine: {m['nproc']} CPUs ({m['cpu_model']}), kernel "
            f"{m['kernel']}, KVM: {m['kvm']} (nested/PVM when kvm_pvm), "
            f"KVM recommends <= {m['kvm_nr_vcpus']} vCPUs, allows "
            f"{m['kvm_max_vcpus']}; RT throttling "
            f"{m['sched_rt_runtime_us']}/{m['sched_rt_period_us']} us; "
            f"load average {m['loadavg_start']} at start, "
            f"{m.get('loadavg_end', '?')} at the end")


def pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot
    return matplotlib.pyplot


def plot_exit(res, outdir, plt):
    cfg = res['configs']
    labels = list(cfg)
    med = [cfg[l]['median_cycles']['median'] for l in labels]
    lo = [m - cfg[l]['median_cycles']['min'] for m, l in zip(med, labels)]
    hi = [cfg[l]['median_cycles']['max'] - m for m, l in zip(med, labels)]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(range(len(labels)), med, yerr=[lo, hi], capsize=4,
           color=['#888', '#4a7', '#47a'][:len(labels)])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize='small')
    ax.set_ylabel('guest TSC cycles per PIO exit')
    ax.set_title('Exit-path cost (median of runs, min..max)')
    ax.set_ylim(min(med) * 0.9, max(m + h for m, h in zip(med, hi)) * 1.03)
    fig.tight_layout()
    path = os.path.join(outdir, 'exit-cost.png')
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_doorbell(res, outdir, plt):
    kinds = [k for k, _ in doorbell.KINDS]
    med = [res['kinds'][k]['median_cycles']['median'] for k in kinds]
    lo = [m - res['kinds'][k]['median_cycles']['min']
          for m, k in zip(med, kinds)]
    hi = [res['kinds'][k]['median_cycles']['max'] - m
          for m, k in zip(med, kinds)]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(kinds)), med, yerr=[lo, hi], capsize=4,
           color=['#c54', '#c85', '#47a', '#888', '#aaa'])
    msr = res['kinds']['msr-0x35']['median_cycles']['median']
    ax.axhline(1.5 * msr, color='red', ls='--', lw=1,
               label='1.5 x plain MSR exit (target)')
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels(kinds, fontsize='small')
    ax.set_ylabel('guest TSC cycles, round trip')
    ax.set_title('Doorbell round trip (median of runs, min..max)')
    ax.legend(fontsize='small')
    fig.tight_layout()
    path = os.path.join(outdir, 'doorbell.png')
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true',
                    help='short runs: checks that every benchmark works '
                         '(a minute or two)')
    ap.add_argument('--only', default='',
                    help='comma-separated subset of: ' +
                         ','.join(n for n, _ in BENCHMARKS))
    ap.add_argument('--runs', type=int, default=5,
                    help='runs per configuration (at least 5; default 5)')
    ap.add_argument('--no-stock', dest='stock', action='store_false',
                    help='leave out stock QEMU (no scripts/'
                         'build-stock-qemu.sh)')
    ap.add_argument('--out', default=C.OUT, help='output directory')
    ap.add_argument('--build-only', action='store_true',
                    help='build and install what the benchmarks need, '
                         'run none (make bench does this on the host '
                         'before it runs them in the L1 VM)')
    p = ap.parse_args()
    if p.runs < 5:
        ap.error('--runs must be at least 5')
    only = [x for x in p.only.split(',') if x]
    unknown = set(only) - {n for n, _ in BENCHMARKS}
    if unknown:
        ap.error(f'unknown benchmark(s): {", ".join(sorted(unknown))}')
    if os.geteuid() != 0:
        raise SystemExit('run as root: KVM, SCHED_FIFO, chrt and taskset '
                         'on QEMU\'s threads')
    ensure_matplotlib()
    plt = pyplot()
    t_start = time.monotonic()
    build(p, only)
    if p.build_only:
        return 0
    os.makedirs(p.out, exist_ok=True)
    m = machine()
    C.log(describe(m))
    results = {'machine': m, 'quick': p.quick, 'runs': p.runs}
    texts, plots, failed = [], [], []
    for name, mod in BENCHMARKS:
        if only and name not in only:
            continue
        t0 = time.monotonic()
        C.log(f'--- {name} ---')
        try:
            res = mod.run(p)
        except Exception as e:  # noqa: BLE001 - report, go on with the rest
            traceback.print_exc()
            failed.append(name)
            results[name] = {'error': f'{type(e).__name__}: {e}'}
            texts.append(f'{name}: FAILED TO RUN: {type(e).__name__}: '
                         f'{str(e).splitlines()[0] if str(e) else ""}')
            continue
        res['seconds'] = round(time.monotonic() - t0, 1)
        results[name] = res
        print('\n' + res['table'] + '\n', flush=True)
        texts.append(res['table'])
        try:
            if name == 'exit':
                plots += plot_exit(res, p.out, plt)
            elif name == 'doorbell':
                plots += plot_doorbell(res, p.out, plt)
            else:
                plots += mod.plot(res, p.out, plt)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            failed.append(f'{name} (plot)')
    m['loadavg_end'] = C.loadavg()
    m['seconds'] = round(time.monotonic() - t_start, 1)
    head = describe(m) + (' [--quick]' if p.quick else '')
    with open(os.path.join(p.out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1, default=str)
    with open(os.path.join(p.out, 'results.txt'), 'w') as f:
        f.write(head + '\n\n' + '\n\n'.join(texts) + '\n')
    print(head)
    print(f'results: {os.path.join(p.out, "results.txt")}, results.json; '
          f'plots: {", ".join(os.path.basename(x) for x in plots)} '
          f'({m["seconds"]:.0f} s)')
    if failed:
        print(f'could not run: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
