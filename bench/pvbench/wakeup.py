"""Benchmark 3: guest wake-up latency with a CPU hog on the vCPU's CPU.

The guest (scenario bench-wakeup, one vCPU) runs a periodic timer loop:
LAPIC timer in TSC-deadline mode, `sti; hlt` until the interrupt, whose
handler takes the rdtsc; latency = that rdtsc - the programmed deadline.
Its vCPU thread and the hog (bench/tools/hog.c) are pinned to the same
host CPU (the last one); QEMU's other threads to the other CPUs.

Configurations, interleaved within each round (each round in another
order), for each period:
  idle, vanilla   no hog; QEMU without the pvsched device
  idle, dynamic   no hog; device, guest boosts while its work is pending
  vanilla         hog; no device, the vCPU thread stays SCHED_OTHER
  dynamic         hog; device: doorbell BOOST before halting for the
                  timer, the wake-up and 20 us of "RT work" boosted,
                  doorbell UNBOOST after it, every cycle
  dynamic, renewed
                  hog; device: boosted throughout the run, renewed
                  (UNBOOST + BOOST) every 1 ms of boosted running, to
                  stay within the 3 ms CPU-time bound per boost
  static RT       hog; no device, the vCPU thread made SCHED_FIFO 8 from
                  outside with chrt for the run (what libvirt's
                  <vcpusched scheduler='fifo'> does)
  hog alone       no VM running: the hog's own throughput

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import tempfile
import time

from . import common as C

INTERVALS = [500, 1000]
WORK_US = 20
PRIO = 8
POLICY = f'mode=dynamic,boost-class=fifo,boost-priority={PRIO}'
RENEW_US = 1000
CONFIGS = ['idle, vanilla', 'idle, dynamic', 'vanilla', 'dynamic',
           'dynamic, renewed', 'static RT', 'hog alone']


def chrt(args):
    subprocess.run(['chrt'] + args, check=True, stdout=subprocess.DEVNULL)


class Measure:
    """One configuration's run of one period on one VM (or the hog alone)."""

    def __init__(self, vm, cpu, others, hog, hogged, rt):
        self.vm, self.cpu, self.others = vm, cpu, others
        self.hog, self.hogged, self.rt = hog, hogged, rt
        self.tid = None
        self.result = {}

    def before(self):
        vm = self.vm
        self.tid = vm.vcpu_tids()[0]
        for t in C.threads_of(vm.pid):
            C.pin(t, [self.cpu] if t == self.tid else self.others)
        if self.rt:
            chrt(['-f', '-p', str(PRIO), str(self.tid)])
        if self.hogged:
            self.hog.resume()
        self.b0 = boosted_ns(vm)
        self.h0 = self.hog.sample()
        self.c0 = C.thread_cpu_ns(vm.pid, self.tid)

    def measured(self):
        h1 = self.hog.sample()
        c1 = C.thread_cpu_ns(self.vm.pid, self.tid)
        self.hog.pause()
        b1 = boosted_ns(self.vm)
        if self.rt:
            chrt(['-o', '-p', '0', str(self.tid)])
        wall = h1[1] - self.h0[1]
        self.result['hog_rate'] = C.Hog.rate(self.h0, h1) if self.hogged \
            else None
        self.result['vcpu_cpu_share'] = (c1 - self.c0) / 1e9 / wall
        self.result['window_s'] = wall
        # Host CPU time spent boosted: pvsched's own count (dynamic), the
        # whole vCPU time under chrt (static), none otherwise.
        if self.b0 is not None and b1 is not None:
            self.result['boosted_cpu_share'] = (b1 - self.b0) / 1e9 / wall
        elif self.rt:
            self.result['boosted_cpu_share'] = \
                self.result['vcpu_cpu_share']
        else:
            self.result['boosted_cpu_share'] = 0.0


def boosted_ns(vm):
    """vCPU 0's boosted CPU time from query-pvsched (None without the
    device or with a QEMU that lacks the command)."""
    if not vm.has_device:
        return None
    try:
        return vm.cmd('query-pvsched')['vcpus'][0]['boosted-ns']
    except (C.pvsched_vm.QMPError, KeyError, IndexError):
        return None


def run(p):
    ms = 100 if p.quick else 3000
    cpus = C.host_cpus()
    if len(cpus) < 2:
        raise RuntimeError('the latency benchmark needs 2 host CPUs')
    cpu, others = cpus[-1], cpus[:-1]
    append = (f"us={','.join(map(str, INTERVALS))} ms={ms} "
              f"work_us={WORK_US} renew_us={RENEW_US} timer=deadline")
    tmp = tempfile.mkdtemp(prefix='pvsched-bench-')
    vms, hog = [], None
    try:
        hog = C.Hog(cpu, tmp)
        van = C.BenchVM('vanilla', 'bench-wakeup', append + ' boost=0',
                        cpu='qemu64,tsc-deadline=on')
        dyn = C.BenchVM('dynamic', 'bench-wakeup', append + ' boost=1',
                        cpu='qemu64,kvm-pvsched=on,tsc-deadline=on',
                        policy=POLICY, device=True)
        vms = [van, dyn]
        C.boot_all(vms)
        # label: (VM, hog, chrt, step byte for the first period)
        setups = {'idle, vanilla': (van, False, False, '0'),
                  'idle, dynamic': (dyn, False, False, '0'),
                  'vanilla': (van, True, False, '0'),
                  'dynamic': (dyn, True, False, '0'),
                  'dynamic, renewed': (dyn, True, False, 'a'),
                  'static RT': (van, True, True, '0'),
                  'hog alone': (None, True, False, None)}
        runs = {(us, c): [] for us in INTERVALS for c in CONFIGS}
        for r in range(p.runs):
            for i, us in enumerate(INTERVALS):
                for label in C.rotated(CONFIGS, r + i):
                    vm, hogged, rt, base = setups[label]
                    if vm is None:
                        hog.resume()
                        a = hog.sample()
                        time.sleep(ms / 1000.0)
                        b = hog.sample()
                        hog.pause()
                        runs[(us, label)].append({'hog_rate': C.Hog.rate(a, b)})
                        continue
                    m = Measure(vm, cpu, others, hog, hogged, rt)
                    res = vm.step(chr(ord(base) + i).encode(),
                                  before=m.before, measured=m.measured)
                    w = next(d for d in res if d['name'] == 'wakeup')
                    w.update(next(d for d in res
                                  if d['name'] == 'wakeup-run'))
                    cdf = []
                    for d in sorted((d for d in res
                                     if d['name'] == 'wakeup-cdf'),
                                    key=lambda d: d['from']):
                        cdf += [int(x) for x in str(d['v']).split(',')]
                    m.result.update(w)
                    m.result['cdf_ns'] = cdf
                    runs[(us, label)].append(m.result)
            C.log(f'latency: round {r + 1}/{p.runs} done')
        for vm in vms:
            vm.quit()
    finally:
        C.close_all(vms)
        if hog:
            hog.close()
    return analyse(runs, ms, cpu, p)


def analyse(runs, ms, cpu, p):
    rt_runtime, rt_period = C.rt_throttling()
    res = {'ms_per_run': ms, 'work_us': WORK_US, 'policy': POLICY,
           'cpu': cpu, 'sched_rt_runtime_us': rt_runtime,
           'sched_rt_period_us': rt_period, 'intervals': {}}
    tables = []
    for us in INTERVALS:
        alone = C.summary([x['hog_rate'] for x in runs[(us, 'hog alone')]])
        per = {}
        rows = []
        for label in CONFIGS:
            rr = runs[(us, label)]
            e = {'runs': rr}
            if label != 'hog alone':
                for k in ('avg_ns', 'p50_ns', 'p99_ns', 'p999_ns', 'max_ns',
                          'overruns', 'armed_p99_ns', 'armed_max_ns',
                          'vcpu_cpu_share', 'boosted_cpu_share',
                          'not_boosted', 'renewals', 'n'):
                    e[k] = C.summary([x[k] for x in rr])
                e['boosted_share'] = C.summary(
                    [x['boosted_run_us'] / (x['wall_us'] or 1) for x in rr])
            if label == 'hog alone' or not label.startswith('idle'):
                e['hog_rate'] = C.summary([x['hog_rate'] for x in rr])
                e['hog_loss'] = C.summary(
                    [1 - x['hog_rate'] / alone['median'] for x in rr])
            per[label] = e
            if label == 'hog alone':
                rows.append([label, '-', '-', '-', '-', '-', '-',
                             C.fmt_spread(e['hog_rate'], 1e-6), '0', '-',
                             '-'])
                continue
            rows.append([
                label,
                C.fmt_spread(e['avg_ns'], 1e-3),
                C.fmt_spread(e['p99_ns'], 1e-3),
                C.fmt_spread(e['max_ns'], 1e-3),
                C.fmt_spread(e['armed_p99_ns'], 1e-3),
                C.fmt_num(e['overruns']['median']),
                C.fmt_num(e['not_boosted']['max']) if 'dynamic' in label
                else '-',
                C.fmt_spread(e['hog_rate'], 1e-6) if 'hog_rate' in e else '-',
                (f"{e['hog_loss']['median'] * 100:.1f}%"
                 if 'hog_loss' in e else '-'),
                f"{e['vcpu_cpu_share']['median'] * 100:.1f}%",
                f"{e['boosted_cpu_share']['median'] * 100:.1f}%",
            ])
        # The targets, paired within each round.
        def paired(a, b, key):
            return C.summary([x[key] / y[key] for x, y in
                              zip(runs[(us, a)], runs[(us, b)]) if y[key]])
        per['ratios'] = {
            'dynamic_p99_over_static': paired('dynamic', 'static RT',
                                              'p99_ns'),
            'dynamic_p99_over_vanilla': paired('dynamic', 'vanilla',
                                               'p99_ns'),
            'renewed_p99_over_static': paired('dynamic, renewed',
                                              'static RT', 'p99_ns'),
            'renewed_p99_over_vanilla': paired('dynamic, renewed',
                                               'vanilla', 'p99_ns'),
            'dynamic_armed_p99_over_static': paired(
                'dynamic', 'static RT', 'armed_p99_ns'),
        }
        res['intervals'][us] = per
        n = per['vanilla']['n']['median']
        tables.append(C.table(
            f'3. Wake-up latency, period {us} us, {ms} ms per run '
            f'(~{n:.0f} wake-ups), {len(runs[(us, "vanilla")])} runs; '
            f'vCPU thread and hog pinned to host CPU {cpu}',
            ['configuration', 'avg us', 'p99 us', 'max us',
             'p99 us, wake-ups only', 'late cycles', 'refused',
             'hog Miter/s', 'hog loss', 'vCPU CPU',
             'boosted CPU'],
            rows,
            f'pvsched: {POLICY} with the default bound (max-boost-us=3000, '
            'cooldown-us=27000); static RT: chrt -f -p '
            f'{PRIO}.\n'
            'Values: median [min..max] over runs. Latency of every cycle '
            '(as cyclictest: a cycle that could not even arm its timer in '
            'time counts from its deadline); "wake-ups only": the armed '
            'cycles, timer to handler; late cycles: those not armed in '
            'time (median count); refused: BOOSTs the host did not grant '
            '(THROTTLED by the bound), worst run. hog loss: throughput '
            'lost vs the hog alone; vCPU CPU: the vCPU thread\'s CPU time '
            'per wall time; boosted CPU: the part of it spent boosted '
            '(query-pvsched boosted-ns; all of it under chrt).\n'
            f"p99 / static RT p99 (target <= 2): dynamic "
            f"{C.fmt_spread(per['ratios']['dynamic_p99_over_static'])}, "
            f"renewed "
            f"{C.fmt_spread(per['ratios']['renewed_p99_over_static'])}, "
            f"dynamic wake-ups only "
            f"{C.fmt_spread(per['ratios']['dynamic_armed_p99_over_static'])}"
            f"; p99 / vanilla p99 (target <= 0.1): dynamic "
            f"{C.fmt_spread(per['ratios']['dynamic_p99_over_vanilla'])}, "
            f"renewed "
            f"{C.fmt_spread(per['ratios']['renewed_p99_over_vanilla'])}."))
    tables.append(
        f'RT throttling: sched_rt_runtime_us={rt_runtime} of '
        f'sched_rt_period_us={rt_period} (left as is): a SCHED_FIFO vCPU '
        f'that never halts gets at most {rt_runtime / rt_period:.0%} of '
        f'its CPU, the rest goes to the hog; here the guest halts between '
        f'wake-ups, so static RT never reaches that cap.')
    res['table'] = '\n\n'.join(tables)
    return res


def plot(res, outdir, plt):
    """Per period: the latency CDF (top) and its tail, the fraction of
    cycles later than x on a log scale (bottom); one line per
    configuration, every run's quantiles pooled."""
    ints = sorted(res['intervals'].items())
    fig, axes = plt.subplots(2, len(ints), figsize=(6.5 * len(ints), 8),
                             squeeze=False)
    for col, (us, per) in enumerate(ints):
        top, bottom = axes[0][col], axes[1][col]
        for label in CONFIGS:
            if label == 'hog alone':
                continue
            pts = sorted(v for x in per[label]['runs']
                         for v in x.get('cdf_ns', []))
            if not pts:
                continue
            xs = [max(v, 1000) / 1000.0 for v in pts]
            ys = [(i + 1) / len(pts) for i in range(len(pts))]
            top.step(xs, ys, where='post', label=label)
            tail = [max(1 - y, 0.5 / len(pts)) for y in ys]
            bottom.step(xs, tail, where='post', label=label)
        for ax in (top, bottom):
            ax.set_xscale('log')
            ax.set_xlim(left=10)
            ax.grid(True, which='both', alpha=0.3)
            ax.legend(fontsize='small')
        top.set_title(f'timer period {us} us: latency of every cycle')
        top.set_ylabel('fraction of cycles')
        bottom.set_yscale('log')
        bottom.set_ylabel('fraction of cycles later than x')
        bottom.set_xlabel('latency (us, log scale)')
    fig.tight_layout()
    path = os.path.join(outdir, 'latency-cdf.png')
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
