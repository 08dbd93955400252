"""KVM test: the boost bound holds whatever the guest does.

(a) a guest that BOOSTs and then spins without a single exit is unboosted
    after max-boost-us of CPU time plus at most one host tick;
(b) a rogue guest that keeps BOOST and exits regularly, with its vCPU
    thread and a CPU hog pinned to the same host CPU, leaves the hog at
    least 40% of that CPU (without the bound: what RT throttling leaves);
(c) the guest sees THROTTLED, and management gets PVSCHED_THROTTLED.
Every figure asserted is CPU time from the kernel, never wall time.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import sys
import time
import unittest

import pvsched_vm
from pvsched_vm import PvschedVM

BOUNDED = ('mode=dynamic,boost-class=fifo,boost-priority=8,'
           'max-boost-us=3000,cooldown-us=27000')
TICK_NS = 4_000_000             # HZ=250: one host tick
HOG = 'while True: pass'


def cpu_ns(pid, tid=None):
    """utime+stime of a process or thread, in ns (from /proc, in ticks)."""
    path = f'/proc/{pid}/stat' if tid is None else \
        f'/proc/{pid}/task/{tid}/stat'
    with open(path) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1_000_000_000 // os.sysconf('SC_CLK_TCK')


class BoundTest(unittest.TestCase):

    def setUp(self):
        problems = pvsched_vm.missing_prerequisites()
        if problems:
            self.fail('cannot run KVM tests: ' + '; '.join(problems))

    def test_bound_in_cpu_time(self):
        """(a) and (c): throttled after the bound plus one tick at most."""
        with PvschedVM('spin', append='ms=2000', smp=2, policy=BOUNDED) as vm:
            # The guest spins for 2 s without exits, and says nothing
            # until it is done: look while it spins.
            vm.wait_event('PVSCHED_THROTTLED', timeout=30, **{'cpu-index': 0})
            v = {x['cpu-index']: x for x in
                 vm.qmp('query-pvsched')['vcpus']}[0]
            self.assertEqual(v['status'], 'throttled', v)
            self.assertEqual(v['throttles'], 1, v)
            self.assertNotEqual(v['sched']['policy'], 'fifo', v)
            self.assertLessEqual(v['boosted-ns'], 3_000_000 + TICK_NS,
                                 f'boosted for {v["boosted-ns"]} ns of CPU '
                                 f'time, bound 3 ms + one tick')
            self.assertGreaterEqual(v['boosted-ns'], 3_000_000, v)
            self.assertIsNone(vm.next_wait(timeout=30, stop_on_fail=True))
            self.assertEqual(vm.states[0][0], 'THROTTLED', vm.report())
            self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS)

    def test_hog_keeps_its_share(self):
        """(b): 5 s of a rogue guest against a hog on the same CPU."""
        cpu = max(os.sched_getaffinity(0))
        hog = subprocess.Popen([sys.executable, '-c', HOG])
        try:
            os.sched_setaffinity(hog.pid, {cpu})
            with PvschedVM('spin', append='ms=8000 io_us=2000', smp=2,
                           policy=BOUNDED) as vm:
                tid = vm.vcpu_tids()[0]
                os.sched_setaffinity(tid, {cpu})
                # Boosted, and the bound at work.
                vm.wait_event('PVSCHED_THROTTLED', timeout=30,
                              **{'cpu-index': 0})
                t0, h0 = time.monotonic(), cpu_ns(hog.pid)
                v0 = cpu_ns(vm.pid, tid)
                time.sleep(5)
                t1, h1 = time.monotonic(), cpu_ns(hog.pid)
                v1 = cpu_ns(vm.pid, tid)
                info = {x['cpu-index']: x for x in
                        vm.qmp('query-pvsched')['vcpus']}[0]
                # Of the CPU time the two got on their CPU, the hog's part.
                share = (h1 - h0) / ((h1 - h0) + (v1 - v0))
                print(f'\n  hog share of CPU {cpu}: {share:.1%} '
                      f'(hog {(h1 - h0) / 1e9:.2f} s, vCPU '
                      f'{(v1 - v0) / 1e9:.2f} s of CPU over '
                      f'{t1 - t0:.1f} s); boosts {info["boosts"]}, '
                      f'throttles {info["throttles"]}', file=sys.stderr)
                self.assertGreaterEqual(info['throttles'], 10, info)
                self.assertGreaterEqual(share, 0.40,
                                        f'hog got {share:.1%} of its CPU')
        finally:
            hog.kill()
            hog.wait()


if __name__ == '__main__':
    unittest.main()
