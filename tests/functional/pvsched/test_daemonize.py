"""Test: a daemonized QEMU's main loop keeps its place above the vCPUs.

-daemonize forks after the pvsched-policy object exists (it is created
before the sandbox, among the early options), and the main loop carries
RESET_ON_FORK, so without more the daemon's main loop would run
SCHED_OTHER below every boosted vCPU.  Read from outside, with the
kernel's word for it; no guest and no KVM needed (-machine none).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import shutil
import signal
import subprocess
import tempfile

import pvsched_vm
from pvsched_test import PvschedTest

POLICY = 'pvsched-policy,id=pol0,boost-class=fifo,boost-priority=8'


class DaemonizeTest(PvschedTest):

    def daemon_sched(self, policy):
        """The daemon's main-loop (sched policy, rt priority, nice)."""
        tmp = tempfile.mkdtemp(prefix='pvsched-')
        pidfile = os.path.join(tmp, 'pid')
        try:
            run = subprocess.run(
                [self.qemu_bin, '-machine', 'none', '-nodefaults',
                 '-display', 'none', '-object', policy, '-daemonize',
                 '-pidfile', pidfile],
                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=30)
            self.assertEqual(run.returncode, 0, run.stderr)
            with open(pidfile) as f:
                pid = int(f.read())
            try:
                return pvsched_vm.read_sched(pid, pid)
            finally:
                os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_daemon_main_loop_fifo(self):
        self.assertEqual(self.daemon_sched(POLICY)[:2], ('SCHED_FIFO', 9))

    def test_daemon_main_loop_deadline(self):
        self.assertEqual(
            self.daemon_sched(POLICY + ',emulator-class=deadline,'
                              'emulator-runtime-us=1000,'
                              'emulator-period-us=10000')[0],
            'SCHED_DEADLINE')


if __name__ == '__main__':
    PvschedTest.main()
