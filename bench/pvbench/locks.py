"""Benchmark 4: plain vs priority-inheritance pthread mutexes.

The PI variant of QemuMutex does not exist yet; this is the harness that
will decide it (DESIGN.md section 5: uncontended within 5% of the stock
mutex; a priority inversion unbounded without PI and bounded with it).
bench/locks/locks.c does the measuring, the two kinds interleaved.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess

from . import common as C

LOCKS = os.path.join(C.BIN, 'locks')


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


def analyse(res, hold_us, hogs):
    out = {'raw': res, 'hold_us': hold_us, 'hog_us': hogs}

    def by(rows, kind, **kw):
        return [r for r in rows if r['kind'] == kind and
                all(r[k] == v for k, v in kw.items())]

    rows = []
    unc = {}
    for kind in ('plain', 'pi'):
        unc[kind] = C.summary([r['ns_per_op'] for r in
                               by(res['uncontended'], kind)])
    pairs = [b['ns_per_op'] / a['ns_per_op'] for a, b in
             zip(by(res['uncontended'], 'plain'),
                 by(res['uncontended'], 'pi'))]
    out['uncontended'] = {'plain': unc['plain'], 'pi': unc['pi'],
                          'pi_over_plain': C.summary(pairs)}
    rows.append(['uncontended, 1 thread (SCHED_FIFO 1, pinned)',
                 C.fmt_spread(unc['plain']), C.fmt_spread(unc['pi']),
                 C.fmt_spread(C.summary(pairs))])
    out['contended'] = {}
    for threads in sorted({r['threads'] for r in res['contended']}):
        pl = by(res['contended'], 'plain', threads=threads)
        pi = by(res['contended'], 'pi', threads=threads)
        e = {'plain': C.summary([r['ns_per_op'] for r in pl]),
             'pi': C.summary([r['ns_per_op'] for r in pi]),
             'pi_over_plain': C.summary([b['ns_per_op'] / a['ns_per_op']
                                         for a, b in zip(pl, pi)])}
        out['contended'][threads] = e
        rows.append([f'contended, {threads} threads on '
                     f'{pl[0]["cpus"]} CPUs (SCHED_OTHER)',
                     C.fmt_spread(e['plain']), C.fmt_spread(e['pi']),
                     C.fmt_spread(e['pi_over_plain'])])
    t1 = C.table('4a. Mutex lock+unlock, ns per operation (median '
                 '[min..max] of runs), plain vs PTHREAD_PRIO_INHERIT '
                 'interleaved',
                 ['case', 'plain ns/op', 'PI ns/op', 'PI / plain'], rows,
                 'Target for a PI BQL: uncontended within 5% of plain '
                 '(PI / plain <= 1.05).')
    rows = []
    out['inversion'] = {}
    for hog_us in hogs:
        e = {}
        for kind in ('plain', 'pi'):
            w = [r['wait_us'] for r in by(res['inversion'], kind,
                                          hog_us=hog_us)]
            s = C.summary(w)
            s['p90'] = sorted(w)[int(0.9 * (len(w) - 1))]
            s['all'] = w
            e[kind] = s
        out['inversion'][hog_us] = e
        for kind in ('plain', 'pi'):
            s = e[kind]
            rows.append([f'{hog_us}', 'no PI' if kind == 'plain' else 'PI',
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
        for kind, style in (('plain', '-'), ('pi', '--')):
            w = sorted(e[kind]['all'])
            ax.step([x / 1000.0 for x in w],
                    [(i + 1) / len(w) for i in range(len(w))], style,
                    where='post',
                    label=f"{'no PI' if kind == 'plain' else 'PI'}, "
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
