"""KVM test: guest boosts change the real vCPU thread's host policy.

Scenario `boost` (guest/PROTOCOL.md).  Before any boost the test gives the
vCPU threads attributes of their own from outside, as libvirt's vcpusched
or chrt would, so that "unboosted" can be told apart from "SCHED_OTHER":
DESIGN section 5 says normal means the thread's earlier attributes.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os

import pvsched_vm
from pvsched_vm import fmt_sched
from pvsched_test import PvschedTest

# The attributes the test sets from outside at `registered`.
CPU0_NORMAL = ('SCHED_BATCH', 0, 5)
CPU1_NORMAL = ('SCHED_OTHER', 0, 3)


class BoostTest(PvschedTest):

    def expect(self, vm, tid, want, where):
        """Assert thread `tid` is at `want` = (policy, rtprio, nice)."""
        seen = vm.sched(tid)
        if seen != want:
            self.fail(f'at {where}: expected thread {tid} at '
                      f'{fmt_sched(want)}, saw {fmt_sched(seen)}' +
                      vm.report())

    def expect_boosted(self, vm, tid, want, where):
        """Assert thread `tid` is at `want` = (policy, rtprio), any nice."""
        seen = vm.sched(tid)
        if seen[:2] != want:
            self.fail(f'at {where}: expected thread {tid} at {want[0]} '
                      f'{want[1]}, saw {fmt_sched(seen)}' + vm.report())

    def expect_not_rt(self, vm, tid, where):
        seen = vm.sched(tid)
        if seen[0] in pvsched_vm.RT_POLICIES:
            self.fail(f'at {where}: expected thread {tid} not real-time, '
                      f'saw {fmt_sched(seen)}' + vm.report())

    def run_boost(self, boost_class, boost_priority):
        boosted = (boost_class, boost_priority)
        # max-boost-us=0 (no bound): at a WAIT the guest polls the UART,
        # which costs boosted CPU time, so the default 3 ms bound would
        # throttle the vCPU before the host test can look at it.  The bound
        # is a separate claim with its own test.
        policy = (f'mode=dynamic,boost-class={boost_class[6:].lower()},'
                  f'boost-priority={boost_priority},max-boost-us=0')
        with self.launch_vm('boost', smp=2, policy=policy) as vm:
            tids = vm.vcpu_tids()
            self.assertEqual(sorted(tids), [0, 1],
                             f'query-cpus-fast: expected cpus 0 and 1, saw '
                             f'{tids}')
            t0, t1 = tids[0], tids[1]

            vm.wait_for('registered', 0)
            self.assertEqual((vm.ready or {}).get('feature'), '1',
                             f'expected READY feature=1, saw {vm.ready}' +
                             vm.report())
            # Set the "own" attributes from outside, then check they took,
            # so a later mismatch is QEMU's doing and not ours.
            os.sched_setscheduler(t0, os.SCHED_BATCH, os.sched_param(0))
            os.setpriority(os.PRIO_PROCESS, t0, 5)
            os.setpriority(os.PRIO_PROCESS, t1, 3)
            self.expect(vm, t0, CPU0_NORMAL, 'registered (set from outside)')
            self.expect(vm, t1, CPU1_NORMAL, 'registered (set from outside)')
            vm.go()

            # Doorbell boost and unboost of cpu 0; cpu 1 must be untouched.
            vm.wait_for('boosted', 0)
            self.expect_boosted(vm, t0, boosted, 'boosted cpu=0')
            self.expect_not_rt(vm, t1, 'boosted cpu=0 (cpu 1 not boosted)')
            vm.go()

            vm.wait_for('unboosted', 0)
            self.expect(vm, t0, CPU0_NORMAL, 'unboosted cpu=0')
            self.expect(vm, t1, CPU1_NORMAL, 'unboosted cpu=0 (cpu 1)')
            vm.go()

            # Same for cpu 1, with cpu 0 staying at its own attributes.
            vm.wait_for('boosted', 1)
            self.expect_boosted(vm, t1, boosted, 'boosted cpu=1')
            self.expect(vm, t0, CPU0_NORMAL, 'boosted cpu=1 (cpu 0)')
            vm.go()

            vm.wait_for('unboosted', 1)
            self.expect(vm, t1, CPU1_NORMAL, 'unboosted cpu=1')
            vm.go()

            # Lazy boost: seen at the next userspace exit (a port write).
            vm.wait_for('lazy-boosted', 0)
            self.expect_boosted(vm, t0, boosted, 'lazy-boosted cpu=0')
            vm.go()

            vm.wait_for('lazy-unboosted', 0)
            self.expect(vm, t0, CPU0_NORMAL, 'lazy-unboosted cpu=0')
            vm.go()

            vm.wait_for('disabled', 0)
            self.expect(vm, t0, CPU0_NORMAL, 'disabled cpu=0')
            vm.go()

            code = vm.finish()
            self.assertEqual(vm.failed_checks(), [],
                             'expected every guest CHECK to pass' +
                             vm.report())
            self.assertTrue(vm.checks, 'expected guest CHECK lines, saw none'
                            + vm.report())
            self.assertEqual(code, pvsched_vm.EXIT_PASS,
                             f'expected QEMU exit status '
                             f'{pvsched_vm.EXIT_PASS} (guest passed), saw '
                             f'{code}' + vm.report())

    def test_boost_fifo8(self):
        self.run_boost('SCHED_FIFO', 8)

    def test_boost_rr20(self):
        self.run_boost('SCHED_RR', 20)


if __name__ == '__main__':
    PvschedTest.main()
