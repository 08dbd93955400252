"""KVM test: the host takes the permission to boost away while the guest
runs, then gives it back.

QEMU runs as a host that grants RLIMIT_RTPRIO rather than CAP_SYS_NICE
runs it (docs/system/pvsched.rst, Permissions).  Between two of the
guest's boosts (scenario `demo`, guest/PROTOCOL.md) the test lowers that
limit from outside, as `prlimit --pid` does; every boost then fails in
sched_setattr() with EPERM.  What must hold: the guest reads a defined
status (NORMAL, the truth: its thread is not boosted), the thread is left
at its own attributes with nothing half-applied, QEMU warns once for the
vCPU, query-pvsched's last-error says why, nothing crashes, and once the
limit is back the next boost works, with no second warning.

cgroup's cpu.rt_runtime_us=0, the other way a host takes real-time away
(libvirt's vCPU cgroups), needs CONFIG_RT_GROUP_SCHED, which Debian's
kernels do not have: there the file does not exist.  It would fail the
same sched_setattr() the same way (EPERM).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import resource

import pvsched_vm
from pvsched_vm import fmt_sched
from pvsched_test import PvschedTest

UNBOUNDED = 'mode=dynamic,boost-class=fifo,boost-priority=8,max-boost-us=0'
BOOSTED = ('SCHED_FIFO', 8)
CAP_SYS_NICE = 23
WARNING = ("warning: pvsched: vCPU 0: changing its thread's scheduling "
           "failed: Operation not permitted")


def effective_caps(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('CapEff:'):
                return int(line.split()[1], 16)
    raise AssertionError(f'no CapEff in /proc/{pid}/status')


class HostFaultTest(PvschedTest):

    def vcpu0(self, vm):
        return vm.cmd('query-pvsched')['vcpus'][0]

    def expect_round(self, vm, tid, boosts, where, boosted=True):
        """At the guest's `boosted` WAIT: the guest, the thread seen from
        outside and query-pvsched agree; then on to `unboosted`, where the
        guest is left waiting: the caller changes the limit before it lets
        the guest go on to its next boost (a change made after vm.go()
        races that boost, and lost in a CI run)."""
        vm.wait_for('boosted', 0)
        info = self.vcpu0(vm)
        seen = vm.sched(tid)
        status = 'BOOSTED' if boosted else 'NORMAL'
        self.assertEqual(vm.states[0][0], status,
                         f'{where}: the guest read' + vm.report())
        self.assertEqual(info['status'], status.lower(), f'{where}: {info}')
        self.assertEqual(info['boosts'], boosts, f'{where}: {info}')
        if boosted:
            self.assertEqual(seen[:2], BOOSTED,
                             f'{where}: thread {fmt_sched(seen)}' +
                             vm.report())
            self.assertNotIn('last-error', info, f'{where}: {info}')
        else:
            self.assertNotIn(seen[0], pvsched_vm.RT_POLICIES,
                             f'{where}: a refused boost left thread '
                             f'{fmt_sched(seen)}' + vm.report())
            self.assertEqual(info['sched']['policy'], 'other', info)
            self.assertEqual(info.get('last-error'),
                             'Operation not permitted', f'{where}: {info}')
        vm.go()
        vm.wait_for('unboosted', 0)
        seen = vm.sched(tid)
        self.assertEqual(vm.states[0][0], 'NORMAL', where + vm.report())
        self.assertNotIn(seen[0], pvsched_vm.RT_POLICIES,
                         f'{where}: unboosted, thread {fmt_sched(seen)}')

    def test_rtprio_taken_away_and_given_back(self):
        with self.launch_vm('demo', 'loops=3', smp=1, policy=UNBOUNDED,
                            rtprio=9) as vm:
            # Otherwise the limit would not matter and this test could
            # not fail.
            self.assertFalse(effective_caps(vm.pid) >> CAP_SYS_NICE & 1,
                             'QEMU has CAP_SYS_NICE' + vm.report())
            tid = vm.vcpu_tids()[0]
            self.expect_round(vm, tid, 1, 'round 1, RLIMIT_RTPRIO 9')

            limit = resource.prlimit(vm.pid, resource.RLIMIT_RTPRIO)
            resource.prlimit(vm.pid, resource.RLIMIT_RTPRIO, (0, limit[1]))
            vm.go()
            self.expect_round(vm, tid, 1, 'round 2, RLIMIT_RTPRIO 0',
                              boosted=False)

            resource.prlimit(vm.pid, resource.RLIMIT_RTPRIO, limit)
            vm.go()
            self.expect_round(vm, tid, 2, 'round 3, RLIMIT_RTPRIO back')
            vm.go()

            code = vm.finish()
            self.assertEqual(code, pvsched_vm.EXIT_PASS, vm.report())
            warnings = [line for line in vm.stderr().splitlines()
                        if 'warning:' in line]
            self.assertEqual(len(warnings), 1, vm.report())
            self.assertTrue(warnings[0].endswith(WARNING), vm.report())


if __name__ == '__main__':
    PvschedTest.main()
