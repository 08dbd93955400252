"""Robustness: a rogue guest on every vCPU against host CPU hogs.

The guest's `storm` scenario (guest/PROTOCOL.md): every vCPU asks for
BOOST and spins on the TSC without exits, ringing the doorbell with BOOST
still requested every 2 ms so that the host sees a fresh request as soon
as a cooldown ends.  Each vCPU thread is pinned to a host CPU, with a CPU
hog pinned to the same CPU.  On the ASan+UBSan QEMU:

- no host starvation: on every CPU the hog keeps at least 40% of the CPU
  time the two got (test_bound's bar: with max-boost-us=3000 and
  cooldown-us=27000 a vCPU takes at most 10% by force and shares the rest
  fairly, so the bound promises 45%).  Hogs and vCPU threads run at
  nice -10 so that the machine's other SCHED_OTHER load does not dilute
  the figure; when other load (e.g. another VM's real-time vCPUs) still
  took more than 20% of a CPU, the 40% bar does not apply to it (the
  boosted part is 10% of real time, the fair part shrinks) and the
  promise is checked through what makes it up, which hold under any
  load: each boost ran at most max-boost-us + one tick of CPU time, at
  most one boost per max-boost-us + cooldown-us of real time, and outside
  its boosts the vCPU got no more CPU than the hog (80% margin);
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

import sanitizers
from sanitizers import RobustTestCase
import pvsched_vm
from test_bound import BOUNDED, HOG, TICK_NS, cpu_ns

POLICY = BOUNDED                # max-boost-us=3000, cooldown-us=27000
MAX_BOOST_NS = 3_000_000
PERIOD_S = 0.030                # max-boost-us + cooldown-us
FAIR = 0.8                      # CFS between equals, with a margin
ALONE = 0.8                     # the two got >= 80% of their CPU
SMP = 2
IO_US = 2000                    # the guest re-rings its BOOST every 2 ms
MIN_SHARE = 0.40                # test_bound's bar
EVENT_PERIOD_S = 1.0            # monitor.c's rate for PVSCHED_THROTTLED
# Hogs and vCPU threads both at nice -10: the machine's other
# SCHED_OTHER load (builds, other tests) then takes ~10% of their CPUs
# instead of most of it, and the share measures the bound, not the load.
NICE = -10
QMP_SANITY_S = 10.0             # a stuck monitor, not a slow one
LEAD_S = 0.5                    # storm start -> measured window
TAIL_S = 1.5                    # measured window -> storm end
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

    def read_until(self, vm, prefix, timeout=pvsched_vm.START_TIMEOUT * 2):
        deadline = time.monotonic() + timeout
        while True:
            line = vm._readline(deadline)
            self.assertIsNotNone(line, f'guest ended before {prefix!r}' +
                                 vm.report())
            if line.startswith('CHECK') and ' FAIL' in line:
                self.fail(f'guest check failed: {line}' + vm.report())
            if line.startswith(prefix):
                return line

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

        self.read_until(vm, 'INFO storm start')
        t_start = time.monotonic()
        time.sleep(LEAD_S)
        # The QMP client too: else the latency measures how little CPU
        # this process gets next to the niced hogs.
        own_nice = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
        self.addCleanup(os.setpriority, os.PRIO_PROCESS, 0, own_nice)
        first = {v['cpu-index']: v for v in vm.qmp('query-pvsched')['vcpus']}
        t0 = time.monotonic()
        h0 = [cpu_ns(h.pid) for h in hogs]
        v0 = [cpu_ns(vm.pid, tids[i]) for i in range(SMP)]
        lat = []
        while time.monotonic() - t0 < seconds:
            q0 = time.monotonic()
            info = vm.qmp('query-pvsched')
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
        for cpu, (share, hog, vcpu) in shares.items():
            log(f'host CPU {cpu}: hog share {share:.1%} (hog {hog / 1e9:.2f}'
                f' s, vCPU {vcpu / 1e9:.2f} s of CPU over {t1 - t0:.1f} s: '
                f'{(hog + vcpu) / wall_ns:.0%} of the CPU for the two)')
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
            if (hog + vcpu) / wall_ns >= ALONE:
                self.assertGreaterEqual(share, MIN_SHARE,
                                        f'hog on host CPU {cpu} got '
                                        f'{share:.1%} of it')
            else:
                log(f'host CPU {cpu}: other load took '
                    f'{1 - (hog + vcpu) / wall_ns:.0%} of it: the '
                    f'{MIN_SHARE:.0%} bar is for a CPU the two have to '
                    f'themselves; the bound is checked in CPU time below')
        for i in range(SMP):
            # The storm really was one: throttled over and over.
            self.assertGreaterEqual(vcpus[i]['throttles'], 10, vcpus[i])
            self.assertGreaterEqual(events[i], 1, vm.events)
            self.assertLessEqual(events[i], allowed,
                                 f'vCPU {i}: {events[i]} PVSCHED_THROTTLED '
                                 f'in {span:.1f} s: not rate-limited')
            self.assertLess(events[i], vcpus[i]['throttles'], vcpus[i])
            # The bound itself, in CPU time: no boost ran past
            # max-boost-us by more than a host tick on average.
            self.assertLessEqual(per_boost[i], MAX_BOOST_NS + TICK_NS,
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
    import unittest
    unittest.main()
