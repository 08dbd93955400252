"""The pvsched KVM tests' base class: QEMU's functional test class
(tests/functional/qemu_test of the QEMU tree this series patches).

As QEMU's own tests, a test skips without KVM (require_accelerator); the
runners (run.py, robust/run.py) count such a skip as a failure, since
make check always has KVM (on this host or in the L1 VM).  Each test's
VMs and logs live under the QEMU build's tests/functional/x86_64/<test>,
as QEMU's tests' do.  Run a file on its own like one of QEMU's:
  build/qemu/pyvenv/bin/python3 tests/functional/pvsched/test_boost.py

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os

import pvsched_vm

# What qemu_test reads at import: the QEMU under test and the build tree.
os.environ.setdefault('QEMU_TEST_QEMU_BINARY', pvsched_vm.QEMU)
os.environ.setdefault('QEMU_BUILD_ROOT',
                      os.path.join(pvsched_vm.REPO, 'build', 'qemu'))

from qemu_test import QemuSystemTest  # noqa: E402


class PvschedTest(QemuSystemTest):
    """A test of the patched QEMU with the bundled guest, under KVM."""

    def setUp(self):
        super().setUp()
        self.require_accelerator('kvm')
        problems = pvsched_vm.missing_prerequisites(qemu=self.qemu_bin)
        if problems:
            self.fail('cannot run KVM tests: ' + '; '.join(problems))

    def launch_vm(self, *args, **kwargs):
        """A PvschedVM of this test (pvsched_vm.PvschedVM's arguments),
        shut down at the latest when the test ends."""
        kwargs.setdefault('qemu', self.qemu_bin)
        vm = pvsched_vm.PvschedVM(*args, base_temp_dir=self.workdir,
                                  log_dir=self.log_file(),
                                  sock_dir=self.socket_dir().name, **kwargs)
        self.addCleanup(vm.close)
        return vm
