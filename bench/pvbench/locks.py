"""Benchmark 4: the BQL's mutex in each configuration.

stock QEMU (a plain mutex), the patched QEMU without a pvsched-policy (the
same plain mutex: qemu_init_cpu_loop() takes the same call) and with one
(PTHREAD_PRIO_INHERIT), side by side: uncontended and contended
lock/unlock, and a priority inversion, unbounded without PI and bounded
with it (DESIGN.md section 5).  bench/locks/locks.c does the measuring,
the kinds interleaved.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess

from . import common as C

LOCKS = os.path.join(C.BIN, 'locks')
KINDS = ('stock', 'nopolicy', 'policy')


def _lines(args, timeout=600):
    out = subprocess.run([LOCKS] + [str(a) for a in args], check=True,
                         capture_output=True, text=True, timeout=timeout)
    rows = []
    for line in out.stdout.splitlines():
        words = line.split()
        d = {'what': words[0]}
        for w in words[1:]:
            k, _, v = w.partition('=')
            d[k] = C._num(v)
        rows.append(d)
    return rows


def run(p):
    runs = max(p.runs, 5)
    cpus = C.host_cpus()
    q = p.quick
    res = {'uncontended': _lines(['uncontended', 200000, 4 * runs]),
           'single': _lines(['uncontended', 200000, 2 * runs, 'single']),
           'contended': [], 'inversion': []}
    for threads in (2, 4):
        res['contended'] += _lines(['contended', threads,
                                    10000 if q else 50000, runs])
    hold_us = 1000
    hogs = [2000, 8000] if q else [5000, 20000]
    for hog_us in hogs:
        res['inversion'] += _lines(['inversion', 10 if q else 30, hold_us,
                                    hog_us, cpus[-1]])
    return analyse(res, hold_us, hogs)


def _by(rows, kind, **kw):
    return [r for r in rows if r['kind'] == kind and
            all(r[k] == v for k, v in kw.items())]


def _ratio(rows, kind, base):
    """Per-repetition ratios kind / base (the two ran back to back)."""
    b = {r['rep']: r['ns_per_op'] for r in _by(rows, base)}
    return C.summary([r['ns_per_op'] / b[r['rep']] for r in _by(rows, kind)
                      if r['rep'] in b])


def _row(label, rows, kinds):
    e = {k: C.summary([r['ns_per_op'] for r in _by(rows, k)]) for k in kinds}
    e['nopolicy_over_stock'] = _ratio(rows, 'nopolicy', 'stock')
    e['policy_over_stock'] = _ratio(rows, 'policy', 'stock')
    cells = [label] + [C.fmt_spread(e.get(k)) for k in KINDS]
    cells += [C.fmt_spread(e['nopolicy_over_stock']),
              C.fmt_spread(e['policy_over_stock'])]
    return e, cells


def analyse(res, hold_us, hogs):
    out = {'raw': res, 'hold_us': hold_us, 'hog_us': hogs}
    rows = []
    out['uncontended'], cells = _row('uncontended (2 threads in process)',
                                     res['uncontended'], KINDS + ('pifutex',))
    rows.append(cells)
    out['uncontended']['pifutex_over_stock'] = _ratio(res['uncontended'],
                                                      'pifutex', 'stock')
    out['single'], cells = _row('uncontended (single-threaded process)',
                                res['single'], KINDS)
    rows.append(cells)
    out['contended'] = {}
    for threads in sorted({r['threads'] for r in res['contended']}):
        sub = [r for r in res['contended'] if r['threads'] == threads]
        e, cells = _row(f'contended, {threads} threads on '
                        f'{sub[0]["cpus"]} CPUs', sub, KINDS)
        out['contended'][threads] = e
        rows.append(cells)
    pif = out['uncontended']
    t1 = C.table('4a. The BQL\'s mutex, lock+unlock, ns per operation (median '
                 '[min..max] of runs; ratios per run), configurations '
                 'interleaved',
                 ['case', 'stock', 'no policy', 'policy (PI)',
                  'no policy / stock', 'policy / stock'], rows,
                 'Target: no policy / stock within 1% (the same mutex, so '
                 'this is the harness\'s own spread); policy / stock '
                 'uncontended within 5%.  A PI futex with an inline '
                 'fast path (QEMU-owned, "pifutex"): '
                 f"{C.fmt_spread(pif['pifutex'])} ns, "
                 f"{C.fmt_spread(pif['pifutex_over_stock'])} x stock.")
    rows = []
    out['inversion'] = {}
    for hog_us in hogs:
        e = {}
        for kind in ('stock', 'policy'):
            w = [r['wait_us'] for r in _by(res['inversion'], kind,
                                           hog_us=hog_us)]
            s = C.summary(w)
            s['p90'] = sorted(w)[int(0.9 * (len(w) - 1))]
            s['all'] = w
            e[kind] = s
        out['inversion'][hog_us] = e
        for kind in ('stock', 'policy'):
            s = e[kind]
            rows.append([f'{hog_us}', 'no PI' if kind == 'stock' else 'PI',
                         f"{s['median']:.0f}", f"{s['min']:.0f}",
                         f"{s['p90']:.0f}", f"{s['max']:.0f}", str(s['n'])])
    t2 = C.table(
        f'4b. Priority inversion on one CPU: holder SCHED_FIFO 10 needs '
        f'{hold_us} us of CPU with the lock, waiter SCHED_FIFO 30, hog '
        f'SCHED_FIFO 20 spins for hog_us; the waiter\'s wait, us',
        ['hog_us', 'mutex', 'median', 'min', 'p90', 'max', 'trials'], rows,
        'Without PI the waiter also waits for the whole hog (unbounded: it '
        'grows with hog_us); with PI the holder runs at the waiter\'s '
        'priority and the wait stays near hold_us.')
    out['table'] = t1 + '\n\n' + t2
    return out


def plot(res, outdir, plt):
    inv = res['inversion']
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for hog_us, e in sorted(inv.items()):
        for kind, style in (('stock', '-'), ('policy', '--')):
            w = sorted(e[kind]['all'])
            ax.step([x / 1000.0 for x in w],
                    [(i + 1) / len(w) for i in range(len(w))], style,
                    where='post',
                    label=f"{'no PI' if kind == 'stock' else 'PI'}, "
                          f"hog {hog_us / 1000:g} ms")
    ax.set_xlabel('high-priority waiter\'s wait (ms)')
    ax.set_ylabel('fraction of trials')
    ax.set_title(f'Priority inversion: holder needs {res["hold_us"]} us')
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize='small')
    fig.tight_layout()
    path = os.path.join(outdir, 'locks-inversion.png')
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
