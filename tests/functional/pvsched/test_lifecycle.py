"""KVM test: registrations survive stop/cont and migration.

The guest registers on both vCPUs; the VM is stopped and migrated to a
file; a new QEMU restores it with -incoming.  On the destination every
registration is there, and the guest boosts and unboosts the new vCPU
threads as before (the area's status is written through the host mapping
the destination made, which is what migration of guest RAM needs).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import tempfile
import time
import unittest

import pvsched_vm
from pvsched_vm import PvschedVM

UNBOUNDED = 'mode=dynamic,boost-class=fifo,boost-priority=8,max-boost-us=0'


def by_cpu(info):
    return {v['cpu-index']: v for v in info['vcpus']}


def wait_migration(vm, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        status = vm.qmp('query-migrate').get('status')
        if status == 'completed':
            return
        if status in ('failed', 'cancelled') or time.monotonic() > deadline:
            raise AssertionError(f'migration {status}' + vm.report())
        time.sleep(0.05)


class LifecycleTest(unittest.TestCase):

    def setUp(self):
        problems = pvsched_vm.missing_prerequisites()
        if problems:
            self.fail('cannot run KVM tests: ' + '; '.join(problems))

    def test_migration_keeps_registrations(self):
        state = os.path.join(tempfile.mkdtemp(prefix='pvsched-mig-'), 'vm')
        with PvschedVM('boost', smp=2, policy=UNBOUNDED) as src:
            src.wait_for('registered', 0)
            before = by_cpu(src.qmp('query-pvsched'))
            src.qmp('stop')
            src.qmp('migrate', uri=f'file:{state}')
            wait_migration(src)

        with PvschedVM('boost', smp=2, policy=UNBOUNDED,
                       extra=['-incoming', 'defer']) as dst:
            dst.qmp('migrate-incoming', uri=f'file:{state}')
            wait_migration(dst)
            after = by_cpu(dst.qmp('query-pvsched'))
            for cpu in (0, 1):
                self.assertTrue(after[cpu]['registered'], after[cpu])
                self.assertEqual(after[cpu]['area'], before[cpu]['area'])
                self.assertEqual(after[cpu]['status'], 'normal')
            if dst.qmp('query-status')['status'] != 'running':
                dst.qmp('cont')
            tids = dst.vcpu_tids()
            dst.go()

            dst.wait_for('boosted', 0)
            self.assertEqual(dst.sched(tids[0])[:2], ('SCHED_FIFO', 8),
                             dst.report())
            # stop/cont leaves the boost, and the guest, as they were.
            dst.qmp('stop')
            dst.qmp('cont')
            self.assertEqual(dst.sched(tids[0])[:2], ('SCHED_FIFO', 8))
            dst.go()
            dst.wait_for('unboosted', 0)
            self.assertNotIn(dst.sched(tids[0])[0], pvsched_vm.RT_POLICIES)
            dst.go()
            while dst.next_wait(stop_on_fail=True) is not None:
                dst.go()
            self.assertEqual(dst.wait_exit(), pvsched_vm.EXIT_PASS,
                             dst.report())
        os.unlink(state)


if __name__ == '__main__':
    unittest.main()
