"""KVM test: pvsched under libvirt's sandbox, -sandbox ...resourcecontrol=deny.

With the sandbox on, sched_setattr() on another thread is always denied
(tests/unit/test-seccomp.c shows that); a thread may change its own
attributes only because a pvsched-policy was created before the sandbox.
Here the real guest boosts and unboosts under that filter, the emulator
thread takes its place above the vCPUs, and a policy added at run time,
after the sandbox, is refused with a clear error that changes nothing.

SPDX-License-Identifier: GPL-2.0-or-later
"""


import pvsched_vm
from pvsched_vm import QMPError
from pvsched_test import PvschedTest

# What libvirt passes when its seccomp_sandbox is on (the default).
SANDBOX = ['-sandbox', 'on,obsolete=deny,elevateprivileges=deny,'
                       'spawn=deny,resourcecontrol=deny']
POLICY = 'mode=dynamic,boost-class=fifo,boost-priority=8,max-boost-us=0'


def seccomp_mode(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('Seccomp:'):
                return int(line.split()[1])
    return None


class SandboxTest(PvschedTest):

    def test_boost_under_sandbox(self):
        with self.launch_vm('boost', smp=2, policy=POLICY,
                            extra=SANDBOX) as vm:
            self.assertEqual(seccomp_mode(vm.pid), 2, 'no seccomp filter')
            # The main loop set itself above the vCPUs.
            self.assertEqual(vm.sched(vm.pid)[:2], ('SCHED_FIFO', 9))
            tids = vm.vcpu_tids()
            vm.wait_for('registered', 0)
            vm.go()
            vm.wait_for('boosted', 0)
            self.assertEqual(vm.sched(tids[0])[:2], ('SCHED_FIFO', 8),
                             vm.report())
            vm.go()
            vm.wait_for('unboosted', 0)
            self.assertNotIn(vm.sched(tids[0])[0], pvsched_vm.RT_POLICIES)
            info = {v['cpu-index']: v for v in vm.cmd('query-pvsched')['vcpus']}
            self.assertNotIn('last-error', info[0], info[0])
            vm.go()
            while vm.next_wait(stop_on_fail=True) is not None:
                vm.go()
            self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS,
                             vm.report())
            self.assertEqual(vm.unexpected_stderr(), [])

    def test_policy_after_sandbox_refused(self):
        """No pvsched-policy before the sandbox: none can come after it."""
        with self.launch_vm('boost', smp=2, policy=None, device=False,
                            extra=SANDBOX, paused=True) as vm:
            self.assertEqual(seccomp_mode(vm.pid), 2, 'no seccomp filter')
            with self.assertRaises(QMPError) as cm:
                vm.cmd('object-add', **{'qom-type': 'pvsched-policy',
                                        'id': 'late'})
            self.assertIn('-sandbox resourcecontrol=deny forbids QEMU\'s '
                          'threads to change their own scheduling',
                          str(cm.exception))
            names = [o['name'] for o in vm.cmd('qom-list', path='/objects')]
            self.assertNotIn('late', names)
            # Nothing changed: the main loop kept its own attributes.
            self.assertEqual(vm.sched(vm.pid)[:2], ('SCHED_OTHER', 0))
            self.assertFalse(vm.cmd('query-pvsched')['present'])

    def test_policy_at_run_time_without_sandbox(self):
        """The refusal is the sandbox's doing: without it, object-add works."""
        with self.launch_vm('boost', smp=2, policy=None, device=False,
                            paused=True) as vm:
            vm.cmd('object-add', **{'qom-type': 'pvsched-policy',
                                    'id': 'late'})
            names = [o['name'] for o in vm.cmd('qom-list', path='/objects')]
            self.assertIn('late', names)
            # The BQL's kind was chosen before: QEMU says what that costs.
            self.assertRegex(vm.stderr(), r"pvsched-policy 'late': the BQL "
                             r'does not inherit priority')


if __name__ == '__main__':
    PvschedTest.main()
