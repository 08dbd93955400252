"""Robustness: a rogue guest on every vCPU against host CPU hogs.

The guest's `storm` scenario (guest/PROTOCOL.md): every vCPU asks for
BOOST and spins on the TSC without exits, ringing the doorbell with BOOST
still requested every 2 ms so that the host sees a fresh request as soon
as a cooldown ends.  Each vCPU thread is pinned to a host CPU, with a CPU
hog pinned to the same CPU.  On the ASan+UBSan QEMU:

- no host starvation: on every CPU the hog keeps the share of the CPU
  time the two got that the bound promises, with a 10% margin.  With
  max-boost-us=3000 and cooldown-us=27000 a vCPU takes at most 10% of
  the CPU's real time by force and shares the rest fairly: 45% for the
  hog on a CPU the two have to themselves, which with the margin is
  test_bound's 40%.  Other load on the machine (another VM's real-time
  vCPUs, say) that takes a fraction x of the CPU leaves the forced 10%
  as it is and shrinks the fair part, so the promise is
  (1 - x - 0.1) / (2 (1 - x)) (e.g. 35% at x = 0.67, measured here with
  two other engineers' builds and VMs).  Hogs and vCPU threads run at
  nice -10 so that other SCHED_OTHER load takes little.  What makes the
  promise up is also checked on its own, in CPU time: each boost ran at
  most max-boost-us + one host tick (two in the L1 VM: OVERRUN_NS), at
  most one boost per max-boost-us + cooldown-us of real time, and
  outside its boosts the vCPU got no more CPU than the hog (80% margin);
- PVSCHED_THROTTLED stays rate-limited: monitor.c lets one event per
  vCPU through per second (patches/0009), so at most floor(T) + 2 per
  vCPU over T seconds, while the vCPUs are throttled tens of times a
  second (counted by query-pvsched);
- QMP stays responsive: query-pvsched in a loop through the storm; its
  latency (p50/p99/max) is printed, and only a very generous sanity bound
  is asserted (the client is an ordinary SCHED_OTHER process competing
  with the hogs, so the figure includes its own scheduling).
Every share asserted is CPU time from the kernel, never wall time.

Environment: PVSCHED_STORM_SECONDS, the measured window (default 6; a
long run: e.g. 120).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import re
import subprocess
import sys
import time

import sanitizers  # first: the ASan QEMU and its options
from sanitizers import RobustTestCase
import pvsched_vm
from test_bound import BOUNDED, HOG, OVERRUN_NS, cpu_ns

POLICY = BOUNDED                # max-boost-us=3000, cooldown-us=27000
MAX_BOOST_NS = 3_000_000
PERIOD_S = 0.030                # max-boost-us + cooldown-us
FAIR = 0.8                      # CFS between equals, with a margin
SMP = 2
IO_US = 2000                    # the guest re-rings its BOOST every 2 ms
FORCED = 0.10                   # 3 ms of every 30 ms, by force
MARGIN = 0.9                    # 0.9 * 45% = test_bound's 40%
EVENT_PERIOD_S = 1.0            # monitor.c's rate for PVSCHED_THROTTLED
# Hogs and vCPU threads both at nice -10: the machine's other
# SCHED_OTHER load (builds, other tests) then takes ~10% of their CPUs
# instead of most of it, and the share measures the bound, not the load.
NICE = -10
QMP_SANITY_S = 10.0             # a stuck monitor, not a slow one
LEAD_S = 0.5                    # storm start -> measured window
# Measured window -> storm end.  Long: the storm ends by the guest's
# clock, and a host slower than that (a loaded L1: the QMP client lagged
# 1.5 s) found QEMU gone at its first query-pvsched (BrokenPipeError).
TAIL_S = 20
STORM_RE = re.compile(r'^INFO storm cpu=(\d+) (.*)$')


def log(msg):
    print(f'storm: {msg}', file=sys.stderr, flush=True)


def pct(sorted_vals, q):
    return sorted_vals[min(len(sorted_vals) - 1,
                           int(q * (len(sorted_vals) - 1) + 0.5))]


class StormTest(RobustTestCase):

    def start_hog(self, cpu):
        hog = subprocess.Popen([sys.executable, '-c', HOG])
        self.addCleanup(hog.wait)
        self.addCleanup(hog.kill)
        os.sched_setaffinity(hog.pid, {cpu})
        os.setpriority(os.PRIO_PROCESS, hog.pid, NICE)
        return hog

    def test_storm(self):
        seconds = float(os.environ.get('PVSCHED_STORM_SECONDS', 6))
        host_cpus = sorted(os.sched_getaffinity(0))[-SMP:]
        # vCPU i and hog i share host CPU cpu_of[i] (with one host CPU,
        # both vCPUs and both hogs share it).
        cpu_of = [host_cpus[i % len(host_cpus)] for i in range(SMP)]
        ms = int((LEAD_S + seconds + TAIL_S) * 1000)
        vm = self.start_vm('storm', append=f'ms={ms} io_us={IO_US}',
                           smp=SMP, policy=POLICY)
        tids = vm.vcpu_tids()
        for i in range(SMP):
            os.sched_setaffinity(tids[i], {cpu_of[i]})
            # Unboosted, the vCPU thread keeps what it had (pvsched saves
            # it at each boost), so it competes with its hog as an equal.
            os.setpriority(os.PRIO_PROCESS, tids[i], NICE)
        hogs = [self.start_hog(cpu_of[i]) for i in range(SMP)]

        vm.wait_line('INFO storm start', pvsched_vm.START_TIMEOUT * 2)
        t_start = time.monotonic()
        time.sleep(LEAD_S)
        # The QMP client too: else the latency measures how little CPU
        # this process gets next to the niced hogs.
        own_nice = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
        self.addCleanup(os.setpriority, os.PRIO_PROCESS, 0, own_nice)
        first = {v['cpu-index']: v for v in vm.cmd('query-pvsched')['vcpus']}
        t0 = time.monotonic()
        h0 = [cpu_ns(h.pid) for h in hogs]
        v0 = [cpu_ns(vm.pid, tids[i]) for i in range(SMP)]
        lat = []
        while time.monotonic() - t0 < seconds:
            q0 = time.monotonic()
            info = vm.cmd('query-pvsched')
            lat.append(time.monotonic() - q0)
            self.assertTrue(all(v['registered'] for v in info['vcpus']),
                            info)
        t1 = time.monotonic()
        h1 = [cpu_ns(h.pid) for h in hogs]
        v1 = [cpu_ns(vm.pid, tids[i]) for i in range(SMP)]
        os.setpriority(os.PRIO_PROCESS, 0, own_nice)
        vcpus = {v['cpu-index']: v for v in info['vcpus']}

        # The storm ends in the guest; the rate limiter's last delayed
        # event comes at most one period after the last throttle.
        self.assertIsNone(vm.next_wait(timeout=60, stop_on_fail=True))
        self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS, vm.report())
        guest = {int(m[1]): dict(w.split('=', 1) for w in m[2].split())
                 for m in map(STORM_RE.match, vm.transcript) if m}

        # Of the CPU time the hog and the vCPU(s) got on a CPU, the hog's.
        shares = {}
        for cpu in sorted(set(cpu_of)):
            hog = sum(h1[i] - h0[i] for i in range(SMP) if cpu_of[i] == cpu)
            vcpu = sum(v1[i] - v0[i] for i in range(SMP) if cpu_of[i] == cpu)
            shares[cpu] = (hog / (hog + vcpu), hog, vcpu)
        events = {i: 0 for i in range(SMP)}
        for e in vm.events:
            if e['event'] == 'PVSCHED_THROTTLED':
                events[e['data']['cpu-index']] += 1
        # Events can only have been sent between the storm's start and
        # the last QMP read; each vCPU gets one at once and then at most
        # one per period.
        span = t1 - t_start
        allowed = int(span / EVENT_PERIOD_S) + 2
        lat.sort()

        wall_ns = (t1 - t0) * 1e9
        promised = {}
        for cpu, (share, hog, vcpu) in shares.items():
            n = cpu_of.count(cpu)
            other = min(max(0.0, 1 - (hog + vcpu) / wall_ns), 0.99)
            promised[cpu] = MARGIN * max(0.0, 1 - other - n * FORCED) / \
                ((1 + n) * (1 - other))
            log(f'host CPU {cpu}: hog share {share:.1%} (hog {hog / 1e9:.2f}'
                f' s, vCPU {vcpu / 1e9:.2f} s of CPU over {t1 - t0:.1f} s; '
                f'other load took {other:.0%} of the CPU); the bound '
                f'promises at least {promised[cpu]:.1%}')
        per_boost, boosted, nboosts = {}, {}, {}
        for i in range(SMP):
            v, f = vcpus[i], first[i]
            boosts = v['boosts'] - f['boosts']
            boosted[i] = v['boosted-ns'] - f['boosted-ns']
            per_boost[i] = boosted[i] / max(boosts, 1)
            nboosts[i] = boosts
            log(f'vCPU {i}: boosts {v["boosts"]}, throttles '
                f'{v["throttles"]}, PVSCHED_THROTTLED events {events[i]} '
                f'(allowed {allowed} over {span:.1f} s); in the window '
                f'{boosts} boosts, {per_boost[i] / 1e6:.2f} ms of CPU each;'
                f' guest: {guest.get(i)}')
        log(f'query-pvsched during the storm: n={len(lat)} '
            f'p50={pct(lat, .5) * 1e3:.1f} ms p99={pct(lat, .99) * 1e3:.1f}'
            f' ms max={lat[-1] * 1e3:.1f} ms')

        for cpu, (share, hog, vcpu) in shares.items():
            forced = sum(boosted[i] for i in range(SMP) if cpu_of[i] == cpu)
            # Outside its bounded boosts a vCPU gets no more than its hog.
            self.assertGreaterEqual(hog, FAIR * (vcpu - forced),
                                    f'host CPU {cpu}: hog {hog} ns, vCPU '
                                    f'{vcpu} ns of which {forced} boosted')
            self.assertGreaterEqual(share, promised[cpu],
                                    f'hog on host CPU {cpu} got {share:.1%}'
                                    f' of what the two got, the bound '
                                    f'promises {promised[cpu]:.1%}')
        for i in range(SMP):
            # The storm really was one: throttled over and over.
            self.assertGreaterEqual(vcpus[i]['throttles'], 10, vcpus[i])
            self.assertGreaterEqual(events[i], 1, vm.events)
            self.assertLessEqual(events[i], allowed,
                                 f'vCPU {i}: {events[i]} PVSCHED_THROTTLED '
                                 f'in {span:.1f} s: not rate-limited')
            self.assertLess(events[i], vcpus[i]['throttles'], vcpus[i])
            # The bound itself, in CPU time: no boost ran past
            # max-boost-us by more than OVERRUN_NS on average.
            self.assertLessEqual(per_boost[i], MAX_BOOST_NS + OVERRUN_NS,
                                 vcpus[i])
            # ... and a cooldown after each: at most one boost per
            # max-boost-us + cooldown-us of real time (a slow machine
            # only makes the window, and so the allowance, longer).
            self.assertLessEqual(nboosts[i],
                                 (t1 - t0) / PERIOD_S + 2, vcpus[i])
        self.assertLess(lat[-1], QMP_SANITY_S,
                        'query-pvsched stalled during the storm')
        self.assert_no_errors(vm)


if __name__ == '__main__':
    sanitizers.PvschedTest.main()
