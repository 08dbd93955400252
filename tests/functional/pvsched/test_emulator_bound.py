"""KVM test: emulator-class=deadline bounds what a guest can make the
main loop take.

The iostorm guest makes QEMU's main loop run its HPET timer as often as
QEMU allows (every microsecond) and halts, so the main loop is the only
busy QEMU thread.  One CPU hog per host CPU, each pinned to its CPU,
stands for the host's own work.  In one run, first a VM with
emulator-class=fifo (unbounded, the default), then a
VM with emulator-class=deadline, the main loop's CPU time over a
window is read from the kernel (/proc/<pid>/task/<tid>/schedstat) and so
is every hog's.

Asserted is only what the kernel guarantees: with deadline the main
loop's CPU time over the window is at most runtime/period of it, plus
the budget of two periods and one host tick (the CBS enforces the budget
at the tick and carries an overrun into the next period); and with fifo
the storm takes more than that, or the test would prove nothing.  The
hogs' share, with and without the bound, is printed for the figure.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import sys
import time
import unittest

import pvsched_vm
from pvsched_vm import PvschedVM

POLICY = 'mode=dynamic,boost-class=fifo,boost-priority=8'
RUNTIME_US = 2000
PERIOD_US = 10000
WINDOW_S = 3.0
SETTLE_S = 0.5
TICK_NS = 4_000_000             # HZ=250: one host tick
HOG = 'while True: pass'


def exec_ns(pid, tid):
    """The thread's sum_exec_runtime in ns (schedstat's first field)."""
    with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
        return int(f.read().split()[0])


def measure(vm, hogs):
    """(main loop CPU ns, [hog CPU ns], window ns) over WINDOW_S."""
    time.sleep(SETTLE_S)
    t0 = time.monotonic_ns()
    m0 = exec_ns(vm.pid, vm.pid)
    h0 = [exec_ns(h.pid, h.pid) for h in hogs]
    time.sleep(WINDOW_S)
    m1 = exec_ns(vm.pid, vm.pid)
    h1 = [exec_ns(h.pid, h.pid) for h in hogs]
    t1 = time.monotonic_ns()
    return m1 - m0, [b - a for a, b in zip(h0, h1)], t1 - t0


class EmulatorBoundTest(unittest.TestCase):

    def setUp(self):
        problems = pvsched_vm.missing_prerequisites()
        if problems:
            self.fail('cannot run KVM tests: ' + '; '.join(problems))

    def test_deadline_bounds_the_main_loop(self):
        cpus = sorted(os.sched_getaffinity(0))
        hogs = [subprocess.Popen([sys.executable, '-c', HOG])
                for _ in cpus]
        try:
            for h, cpu in zip(hogs, cpus):
                os.sched_setaffinity(h.pid, {cpu})
            # One VM per class, each from its command line: under the
            # storm the main loop never drops the BQL, so nothing that
            # needs a vCPU (a run-time policy change waits for each) can
            # complete; only what the kernel says is read meanwhile.
            res = {}
            for cls, want in (('fifo', 'SCHED_FIFO'),
                              ('deadline', 'SCHED_DEADLINE')):
                pol = (f'{POLICY},emulator-class={cls},'
                       f'emulator-runtime-us={RUNTIME_US},'
                       f'emulator-period-us={PERIOD_US}')
                with PvschedVM('iostorm', smp=1, policy=pol) as vm:
                    vm.wait_line('INFO iostorm start')
                    self.assertEqual(vm.sched(vm.pid)[0], want)
                    res[cls] = measure(vm, hogs)
                    self.assertIsNone(vm.proc.poll(), 'QEMU exited')
            fifo, dl = res['fifo'], res['deadline']
        finally:
            for h in hogs:
                h.kill()
                h.wait()

        share = RUNTIME_US / PERIOD_US
        rows = []
        for name, (m, h, w) in (('fifo', fifo),
                                (f'deadline {RUNTIME_US}/{PERIOD_US} us',
                                 dl)):
            rows.append(f'  {name:>26}: main loop {m / w:6.1%} of a CPU, '
                        f'hogs {sum(h) / (w * len(h)):6.1%} of their '
                        f'{len(h)} CPUs (' +
                        ', '.join(f'{x / w:.1%}' for x in h) + ')')
        print('\n  iostorm guest, one hog per CPU, '
              f'{WINDOW_S:.0f} s windows:\n' + '\n'.join(rows),
              file=sys.stderr)

        m, _, w = dl
        bound = share * w + 2 * RUNTIME_US * 1000 + TICK_NS
        self.assertLessEqual(m, bound,
                             f'main loop took {m} ns of CPU in {w} ns '
                             f'under SCHED_DEADLINE {RUNTIME_US}/'
                             f'{PERIOD_US} us: more than {bound:.0f}')
        m, _, w = fifo
        self.assertGreater(m, share * w + 2 * RUNTIME_US * 1000 + TICK_NS,
                           'the guest did not load the main loop beyond '
                           'the bound under fifo: the test proves nothing')


if __name__ == '__main__':
    unittest.main()
