"""KVM test: mode=static boosts every vCPU from its thread's start.

libvirt's vcpusched is the baseline static mode stands for: the vCPU
threads are real-time before the guest runs a single instruction, whether
or not the guest ever registers an area, and a vCPU hotplugged later
starts boosted too.  Leaving static mode gives every thread back its own
attributes.  The guest is never started (-S): nothing here depends on it.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import time

from pvsched_test import PvschedTest

STATIC = 'mode=static,boost-class=fifo,boost-priority=8'


def by_cpu(vm):
    return {v['cpu-index']: v for v in vm.cmd('query-pvsched')['vcpus']}


class StaticModeTest(PvschedTest):

    def assert_threads(self, vm, want, cpus):
        """Every listed vCPU's thread, seen from outside, is `want`."""
        vcpus = by_cpu(vm)
        self.assertEqual(sorted(vcpus), sorted(cpus), vcpus)
        for cpu in cpus:
            got = vm.sched(vcpus[cpu]['thread-id'])[:2]
            self.assertEqual(got, want, f'vCPU {cpu}: {vcpus[cpu]}')
            self.assertFalse(vcpus[cpu]['registered'], vcpus[cpu])

    def wait_threads(self, vm, want, cpus, timeout=10):
        """Work queued on a vCPU runs soon, not synchronously: poll."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.assert_threads(vm, want, cpus)
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    def test_static_from_start_and_hotplug(self):
        with self.launch_vm('boost', smp='1,maxcpus=2', policy=STATIC,
                            paused=True) as vm:
            # Before the guest ran: boosted though never registered.
            self.wait_threads(vm, ('SCHED_FIFO', 8), [0])

            slots = [c for c in vm.cmd('query-hotpluggable-cpus')
                     if 'qom-path' not in c]
            self.assertEqual(len(slots), 1, slots)
            vm.cmd('device_add', driver=slots[0]['type'], id='cpu1',
                   **slots[0]['props'])
            # The hotplugged vCPU's thread starts boosted.
            self.assert_threads(vm, ('SCHED_FIFO', 8), [0, 1])

            # Every vCPU follows a change of policy, the new one included.
            vm.cmd('pvsched-set-policy', id='pol0', **{'boost-priority': 5})
            self.assert_threads(vm, ('SCHED_FIFO', 5), [0, 1])
            vm.cmd('pvsched-set-policy', id='pol0', mode='dynamic')
            self.assert_threads(vm, ('SCHED_OTHER', 0), [0, 1])

    def test_dynamic_hotplug_is_normal(self):
        with self.launch_vm('boost', smp='1,maxcpus=2',
                            policy='mode=dynamic,boost-priority=8',
                            paused=True) as vm:
            slots = [c for c in vm.cmd('query-hotpluggable-cpus')
                     if 'qom-path' not in c]
            vm.cmd('device_add', driver=slots[0]['type'], id='cpu1',
                   **slots[0]['props'])
            self.assert_threads(vm, ('SCHED_OTHER', 0), [0, 1])
            self.assertEqual(by_cpu(vm)[1]['status'], 'disabled')
            # The new vCPU has its own state: static reaches it.
            vm.cmd('pvsched-set-policy', id='pol0', mode='static')
            self.assert_threads(vm, ('SCHED_FIFO', 8), [0, 1])


if __name__ == '__main__':
    PvschedTest.main()
