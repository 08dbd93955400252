"""KVM test: every boost class the host supports changes the real thread.

The `boost` scenario with boost-class other (a nice value) and deadline
(SCHED_DEADLINE runtime/period): while the guest holds a boost its vCPU
thread runs in that class; afterwards it is back to its own attributes.
(fifo and rr are in test_boost.py; uclamp, which this host's kernel lacks,
is refused at start-up: see the qtest.)

SPDX-License-Identifier: GPL-2.0-or-later
"""


import pvsched_vm
from pvsched_vm import fmt_sched
from pvsched_test import PvschedTest


class ClassesTest(PvschedTest):

    def run_class(self, policy, boosted):
        with self.launch_vm('boost', smp=2,
                            policy=policy + ',max-boost-us=0') as vm:
            tid = vm.vcpu_tids()[0]
            vm.wait_for('registered', 0)
            normal = vm.sched(tid)
            vm.go()
            vm.wait_for('boosted', 0)
            seen = vm.sched(tid)
            self.assertEqual(seen, boosted, f'boosted: expected '
                             f'{fmt_sched(boosted)}, saw {fmt_sched(seen)}' +
                             vm.report())
            vm.go()
            vm.wait_for('unboosted', 0)
            self.assertEqual(vm.sched(tid), normal, vm.report())
            vm.go()
            while vm.next_wait(stop_on_fail=True) is not None:
                vm.go()
            self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS,
                             vm.report())

    def test_other_nice(self):
        self.run_class('boost-class=other,boost-nice=-7',
                       ('SCHED_OTHER', 0, -7))

    def test_deadline(self):
        self.run_class('boost-class=deadline,deadline-runtime-us=3000,'
                       'deadline-deadline-us=9000,deadline-period-us=10000',
                       ('SCHED_DEADLINE', 0, 0))


if __name__ == '__main__':
    PvschedTest.main()
