"""KVM test: registrations survive stop/cont, migration and loadvm.

The guest registers on both vCPUs; the VM is stopped and migrated to a
file; a new QEMU restores it with -incoming.  On the destination every
registration is there, and the guest boosts and unboosts the new vCPU
threads as before (the area's status is written through the host mapping
the destination made, which is what migration of guest RAM needs).

A live migration, while the guest registers, boosts and unboosts, carries
every write QEMU made to the areas (QEMU's dirty marking: KVM's dirty log
does not see them).  loadvm of a snapshot taken while boosted gives back
the registration, unboosted, and leaves the main loop's priority alone.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import tempfile
import time

import pvsched_vm
from pvsched_test import PvschedTest

UNBOUNDED = 'mode=dynamic,boost-class=fifo,boost-priority=8,max-boost-us=0'


def by_cpu(info):
    return {v['cpu-index']: v for v in info['vcpus']}


def wait_migration(vm, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        status = vm.cmd('query-migrate').get('status')
        if status == 'completed':
            return
        if status in ('failed', 'cancelled') or time.monotonic() > deadline:
            raise AssertionError(f'migration {status}' + vm.report())
        time.sleep(0.05)


def migrate_live(src, rounds, timeout=60):
    """Keep src's migration live until the guest has made `rounds` more
    rounds through its areas (or the migration ended on its own, which a
    host starved of CPU can make happen), then let it end.  Returns
    (rounds made while live, dirty log syncs)."""
    start = src.said_count('INFO migrate round=')
    raised = False
    deadline = time.monotonic() + timeout
    while True:
        info = src.cmd('query-migrate')
        status = info.get('status')
        made = src.said_count('INFO migrate round=') - start
        if status == 'completed':
            return made, info['ram']['dirty-sync-count']
        if status not in ('setup', 'active', 'device') or \
                time.monotonic() > deadline:
            raise AssertionError(f'migration {status}: {info}' +
                                 src.report())
        if made >= rounds and not raised:
            src.cmd('migrate-set-parameters',
                    **{'max-bandwidth': 128 << 20, 'downtime-limit': 2000})
            raised = True
        time.sleep(0.05)


def add_snapshot_disk(vm, path):
    """The qcow2 disk savevm needs, made by this QEMU (no qemu-img here)."""
    open(path, 'wb').close()
    vm.cmd('blockdev-add', driver='file', filename=path,
           **{'node-name': 'snapfile'})
    vm.cmd('blockdev-create', **{'job-id': 'mk'},
           options={'driver': 'qcow2', 'file': 'snapfile', 'size': 1 << 20})
    deadline = time.monotonic() + 30
    while True:
        jobs = {j['id']: j for j in vm.cmd('query-jobs')}
        if jobs['mk']['status'] == 'concluded':
            break
        if time.monotonic() > deadline:
            raise AssertionError(f'blockdev-create: {jobs}' + vm.report())
        time.sleep(0.05)
    vm.cmd('job-dismiss', id='mk')
    vm.cmd('blockdev-add', driver='qcow2', file='snapfile',
           **{'node-name': 'snapdisk'})


def hmp(vm, cmd):
    out = vm.cmd('human-monitor-command', **{'command-line': cmd})
    if out.strip():
        raise AssertionError(f'{cmd}: {out}' + vm.report())


class LifecycleTest(PvschedTest):

    def test_migration_keeps_registrations(self):
        state = os.path.join(tempfile.mkdtemp(prefix='pvsched-mig-'), 'vm')
        with self.launch_vm('boost', smp=2, policy=UNBOUNDED) as src:
            src.wait_for('registered', 0)
            before = by_cpu(src.cmd('query-pvsched'))
            src.cmd('stop')
            src.cmd('migrate', uri=f'file:{state}')
            wait_migration(src)

        with self.launch_vm('boost', smp=2, policy=UNBOUNDED,
                            extra=['-incoming', 'defer']) as dst:
            dst.cmd('migrate-incoming', uri=f'file:{state}')
            wait_migration(dst)
            after = by_cpu(dst.cmd('query-pvsched'))
            for cpu in (0, 1):
                self.assertTrue(after[cpu]['registered'], after[cpu])
                self.assertEqual(after[cpu]['area'], before[cpu]['area'])
                self.assertEqual(after[cpu]['status'], 'normal')
            if dst.cmd('query-status')['status'] != 'running':
                dst.cmd('cont')
            tids = dst.vcpu_tids()
            dst.go()

            dst.wait_for('boosted', 0)
            self.assertEqual(dst.sched(tids[0])[:2], ('SCHED_FIFO', 8),
                             dst.report())
            # stop/cont leaves the boost, and the guest, as they were.
            dst.cmd('stop')
            dst.cmd('cont')
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

    def test_live_migration_carries_area_writes(self):
        """The guest's migrate scenario checks, on the destination, that
        every area says what QEMU last wrote to it.  A small bandwidth
        and downtime-limit keep the migration live (the guest dirties
        256 KiB all the time) while the guest makes two rounds through
        its areas, boosting and writing them; then it may end."""
        sock = os.path.join(tempfile.mkdtemp(prefix='pvsched-live-'),
                            'mig.sock')
        small = ['-m', '32M']
        with self.launch_vm('migrate', smp=1, policy=UNBOUNDED,
                            extra=small) as src, \
             self.launch_vm('migrate', smp=1, policy=UNBOUNDED,
                            extra=small + ['-incoming', 'defer']) as dst:
            src.wait_line('INFO migrate start')
            src.cmd('migrate-set-parameters',
                    **{'max-bandwidth': 4 << 20, 'downtime-limit': 1})
            dst.cmd('migrate-incoming', uri=f'unix:{sock}')
            src.cmd('migrate', uri=f'unix:{sock}')
            made, syncs = migrate_live(src, 2)
            wait_migration(dst)
            if dst.cmd('query-status')['status'] != 'running':
                dst.cmd('cont')
            dst.go()
            code = dst.finish()
            self.assertEqual(dst.failed_checks(), [], dst.report())
            self.assertEqual(code, pvsched_vm.EXIT_PASS, dst.report())
            self.assertTrue(any(c[0] == 'migrate-area-writes.cpu0'
                                for c in dst.checks), dst.report())
            # Not an assertion: a starved host may end the migration
            # early, which weakens this run but makes it no less right.
            print(f'live migration: {made} rounds of the guest and {syncs} '
                  f'dirty log syncs while live')
        os.rmdir(os.path.dirname(sock))

    def test_loadvm_while_boosted(self):
        """savevm while vCPU 0 is boosted, loadvm with the VM stopped:
        the registration comes back unboosted (boosts are not carried),
        the main-loop thread keeps the emulator's FIFO priority, and the
        guest's pending BOOST is honoured at its next exit."""
        disk = os.path.join(tempfile.mkdtemp(prefix='pvsched-snap-'), 'd')
        with self.launch_vm('boost', smp=2, policy=UNBOUNDED,
                            extra=['-m', '32M']) as vm:
            add_snapshot_disk(vm, disk)
            vm.wait_for('registered', 0)
            vm.go()
            vm.wait_for('boosted', 0)
            tids = vm.vcpu_tids()
            main = vm.sched(vm.pid)
            self.assertEqual(main[:2], ('SCHED_FIFO', 9), vm.report())
            self.assertEqual(vm.sched(tids[0])[:2], ('SCHED_FIFO', 8))
            before = by_cpu(vm.cmd('query-pvsched'))
            hmp(vm, 'savevm s0')

            vm.cmd('stop')
            hmp(vm, 'loadvm s0')
            self.assertEqual(vm.cmd('query-status')['status'], 'paused')
            info = vm.cmd('query-pvsched')
            after = by_cpu(info)
            for cpu in (0, 1):
                self.assertTrue(after[cpu]['registered'], after[cpu])
                self.assertEqual(after[cpu]['area'], before[cpu]['area'])
                self.assertEqual(after[cpu]['status'], 'normal', after[cpu])
                outside = vm.sched(tids[cpu])
                self.assertNotIn(outside[0], pvsched_vm.RT_POLICIES,
                                 f'vCPU {cpu} still boosted' + vm.report())
                self.assertEqual(after[cpu]['sched']['policy'], 'other')
            self.assertEqual(vm.sched(vm.pid), main, vm.report())
            self.assertEqual(info['emulator']['thread-id'], vm.pid)
            self.assertEqual(info['emulator']['sched']['policy'], 'fifo')
            self.assertEqual(info['emulator']['sched']['priority'], 9)

            # The guest waits at 'boosted', polling the UART: its next exit
            # applies the BOOST the snapshot still asks for.
            vm.cmd('cont')
            deadline = time.monotonic() + 10
            while by_cpu(vm.cmd('query-pvsched'))[0]['status'] != 'boosted':
                self.assertLess(time.monotonic(), deadline, vm.report())
                time.sleep(0.05)
            self.assertEqual(vm.sched(tids[0])[:2], ('SCHED_FIFO', 8))
            self.assertEqual(vm.sched(vm.pid), main)
            vm.go()
            while vm.next_wait(stop_on_fail=True) is not None:
                vm.go()
            self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS,
                             vm.report())
        os.unlink(disk)
        os.rmdir(os.path.dirname(disk))


if __name__ == '__main__':
    PvschedTest.main()
