"""KVM test: the MSR ABI, feature discovery and the start-up check.

- `msr`: the guest makes every invalid MSR write of DESIGN section 4 and
  checks #GP and unchanged state itself; the host checks that QEMU survives
  it (QMP still answers, running) and prints no errors.
- `-device pvsched` without `kvm-pvsched=on` must refuse to start, naming
  the missing option.
- Without pvsched at all the guest must see neither CPUID bit nor MSR.

SPDX-License-Identifier: GPL-2.0-or-later
"""


import pvsched_vm
from pvsched_test import PvschedTest


class MsrTest(PvschedTest):

    def assert_guest_passed(self, vm, code):
        self.assertEqual(vm.failed_checks(), [],
                         'expected every guest CHECK to pass' + vm.report())
        self.assertTrue(vm.checks,
                        'expected guest CHECK lines, saw none' + vm.report())
        self.assertEqual(vm.done and vm.done[1], 0,
                         f'expected DONE fail=0, saw {vm.done}' + vm.report())
        self.assertEqual(code, pvsched_vm.EXIT_PASS,
                         f'expected QEMU exit status {pvsched_vm.EXIT_PASS} '
                         f'(guest passed), saw {code}' + vm.report())

    def assert_running(self, vm, where):
        status = vm.cmd('query-status')
        self.assertEqual((status.get('status'), status.get('running')),
                         ('running', True),
                         f'at {where}: expected query-status running, saw '
                         f'{status}' + vm.report())

    def test_msr_invalid_writes(self):
        with self.launch_vm('msr', smp=2) as vm:
            vm.wait_for('registered', 0)
            self.assert_running(vm, 'registered cpu=0')
            vm.go()
            vm.wait_for('invalid-done', 0)
            self.assert_running(vm, 'invalid-done cpu=0')
            vm.go()
            code = vm.finish()
            self.assert_guest_passed(vm, code)
            self.assertEqual(vm.unexpected_stderr(), [],
                             'expected no error output from QEMU' +
                             vm.report())

    def test_device_without_cpu_property_refused(self):
        # `boost` blocks at its first WAIT (nobody answers): a QEMU that
        # wrongly starts keeps running and run_startup reports code None.
        args = pvsched_vm.qemu_args('boost', cpu='qemu64')
        code, err = pvsched_vm.run_startup(args)
        self.assertIsNotNone(code, 'expected QEMU to refuse to start with '
                             '-device pvsched but no kvm-pvsched=on; it kept '
                             'running:\n' + err)
        # > 0: an error exit, not a crash (negative = killed by a signal).
        self.assertGreater(code, 0, f'expected an error exit, saw exit status '
                           f'{code}; stderr:\n{err}')
        self.assertIn('kvm-pvsched=on', err,
                      'expected the error to name the missing option '
                      f'kvm-pvsched=on; stderr:\n{err}')

    def test_nofeature_without_device(self):
        # Stock configuration: no pvsched CPU property, object or device.
        with self.launch_vm('nofeature', smp=2, cpu='qemu64', policy=None,
                            device=False) as vm:
            code = vm.finish()
            self.assertEqual((vm.ready or {}).get('feature'), '0',
                             f'expected READY feature=0, saw {vm.ready}' +
                             vm.report())
            self.assert_guest_passed(vm, code)


if __name__ == '__main__':
    PvschedTest.main()
