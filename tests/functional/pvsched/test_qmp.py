"""KVM test: the control plane against a running guest.

query-pvsched reports what the guest registered and what the host thread
really runs at; PVSCHED_AREA_CHANGED events follow registrations;
pvsched-set-policy takes effect on a boosted vCPU at once, even one that
spins in the guest without ever exiting (the change kicks it).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import time

import pvsched_vm
from pvsched_vm import QMPError, fmt_sched
from pvsched_test import PvschedTest

UNBOUNDED = 'mode=dynamic,boost-class=fifo,boost-priority=8,max-boost-us=0'
# Room for the run-time change to boost-priority 20 (emulator at 21).
ROOMY = UNBOUNDED + ',priority-ceiling=30'


def by_cpu(info):
    return {v['cpu-index']: v for v in info['vcpus']}


class QmpTest(PvschedTest):

    def area_events(self, vm):
        vm.cmd('query-status')      # collect the events queued so far
        return [e['data'] for e in vm.events
                if e['event'] == 'PVSCHED_AREA_CHANGED']

    def test_query_events_and_set_policy(self):
        with self.launch_vm('boost', smp=2, policy=ROOMY) as vm:
            tids = vm.vcpu_tids()
            vm.wait_for('registered', 0)
            info = vm.cmd('query-pvsched')
            self.assertTrue(info['present'])
            self.assertEqual(info['policy']['boost-priority'], 8)
            vcpus = by_cpu(info)
            for cpu in (0, 1):
                v = vcpus[cpu]
                self.assertEqual(v['thread-id'], tids[cpu])
                self.assertTrue(v['registered'], v)
                self.assertEqual(v['status'], 'normal', v)
                self.assertEqual(v['area'] % 64, 0, v)
            self.assertNotEqual(vcpus[0]['area'], vcpus[1]['area'])
            events = self.area_events(vm)
            self.assertEqual(sorted((e['cpu-index'], e['registered'],
                                     e.get('area')) for e in events),
                             [(c, True, vcpus[c]['area']) for c in (0, 1)])
            vm.go()

            vm.wait_for('boosted', 0)
            v = by_cpu(vm.cmd('query-pvsched'))[0]
            self.assertEqual(v['status'], 'boosted', v)
            self.assertEqual(v['boosts'], 1, v)
            self.assertEqual(v['sched'], {'policy': 'fifo', 'priority': 8,
                                          'nice': 0, 'reset-on-fork': True})
            # A run-time change moves the boosted vCPU with it...
            vm.cmd('pvsched-set-policy', id='pol0', **{'boost-priority': 20})
            self.assertEqual(vm.sched(tids[0])[:2], ('SCHED_FIFO', 20),
                             vm.report())
            # ...and a refused one changes nothing at all.
            with self.assertRaisesRegex(QMPError, 'boost-priority=0 is out'):
                vm.cmd('pvsched-set-policy', id='pol0', mode='off',
                       **{'boost-priority': 0})
            self.assertEqual(vm.cmd('query-pvsched')['policy']['mode'],
                             'dynamic')
            self.assertEqual(vm.sched(tids[0])[:2], ('SCHED_FIFO', 20))
            vm.go()

            while (w := vm.next_wait(stop_on_fail=True)) is not None:
                vm.go()
            self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS,
                             vm.report())
            self.assertEqual(vm.failed_checks(), [])

    def wait_sched(self, vm, tid, ok, what, timeout=30):
        """Poll the vCPU thread's scheduling attributes until ok()."""
        deadline = time.monotonic() + timeout
        while not ok(vm.sched(tid)):
            if time.monotonic() > deadline:
                self.fail(f'vCPU thread never {what}: ' +
                          fmt_sched(vm.sched(tid)) + vm.report())
            time.sleep(0.005)

    def test_policy_change_kicks_spinning_vcpu(self):
        """mode=off must unboost a vCPU that never exits on its own."""
        with self.launch_vm('spin', append='ms=4000', smp=2,
                            policy=UNBOUNDED) as vm:
            tid = vm.vcpu_tids()[0]
            # The guest says nothing until its spin (4 s, no exits) ends.
            self.wait_sched(vm, tid, lambda s: s[:2] == ('SCHED_FIFO', 8),
                            'boosted to SCHED_FIFO 8')
            vm.cmd('pvsched-set-policy', id='pol0', mode='off')
            self.wait_sched(vm, tid, lambda s: s[0] != 'SCHED_FIFO',
                            'unboosted after mode=off')
            # Unboosted while the guest still spins: QEMU kicked it out of
            # KVM_RUN, the guest did not exit on its own.
            self.assertFalse(vm.said('doorbell-boost'),
                             'the spin was over before the vCPU was '
                             'unboosted: it was not kicked' + vm.report())
            # The guest, still spinning, ends up seeing NORMAL.
            self.assertIsNone(vm.next_wait(stop_on_fail=True))
            self.assertEqual(vm.states[0][0], 'NORMAL', vm.report())
            self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS)


if __name__ == '__main__':
    PvschedTest.main()
