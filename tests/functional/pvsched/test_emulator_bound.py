"""KVM test: emulator-class=deadline bounds what a guest can make the
emulator threads take from a host task on their CPU.

The guest (scenario iostorm) drives I/O as fast as it can: each of its
two vCPUs kicks queue 0 of a legacy virtio-blk device (a null-co
backend) in a loop.  virtio-pci's ioeventfd turns each kick into an
eventfd signal inside KVM, so the guest's exits never leave the kernel
and never need the BQL; the thread that owns the queue (the main loop,
or the device's I/O thread with iothread=) wakes for every kick it has
not consumed yet, runs virtio-blk's handler and goes back to sleep.
That is the path by which a guest makes QEMU's emulator threads work,
the virtio kick, bounded by nothing but how fast the guest can kick.
(The former design, an HPET timer periodic at one tick, made the main
loop run a QEMU timer without ever sleeping or dropping the BQL: it
loaded the main loop, but starved the guest's own exits and QMP too,
and showed a QEMU timer loop rather than guest-driven I/O.)

One CPU hog per host CPU, pinned, stands for the host's own work.  For
each thread that can be driven (the main loop; an I/O thread) one VM
with emulator-class=fifo (the default, unbounded) and one with
emulator-class=deadline run one after the other, in one run; over a
window the kernel's accounting of the driven thread and of every hog is
read from /proc/<pid>/task/<tid>/sched, and printed side by side.

Asserted is only what the kernel guarantees.  The constant bandwidth
server gives a SCHED_DEADLINE thread its runtime Q once per period P:
the grants whose deadlines fall in a window of length W number at most
W/P + 1, the grant that is current at its end adds at most Q, and what
the thread ran past its budget before the kernel noticed (it checks at
the tick, and in a nested guest a "tick" can be far longer than 4 ms)
is a debt the kernel takes back from the next grants, readable as a
negative dl.runtime.  So with deadline

    CPU time in the window - debt at its end <= Q * (W / P + 2)

where W also covers the staleness of the reading at the window's start
(the kernel updates the sched file's sum at the tick, as it does the
budget).  With fifo the driven thread must take more than that bound,
or the test would prove nothing.  The hogs' share is printed, not
asserted: they share their CPUs with the guest's vCPUs under CFS, so
what the bound gives back goes to the vCPUs as much as to them.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import sys
import time

import pvsched_vm
from pvsched_test import PvschedTest

POLICY = 'mode=dynamic,boost-class=fifo,boost-priority=8'
RUNTIME_US = 1000
PERIOD_US = 10000
WINDOW_S = 4.0
SETTLE_S = 0.5
TICK_NS = 4_000_000     # HZ=250: the sched file's staleness at the start
HOG = 'while True: pass'
DISK = ['-blockdev', 'null-co,node-name=d0,size=1048576']
CASES = (
    ('main loop', [*DISK, '-device',
                   'virtio-blk-pci,drive=d0,disable-modern=on']),
    ('iothread', [*DISK, '-object', 'iothread,id=io0', '-device',
                  'virtio-blk-pci,drive=d0,disable-modern=on,'
                  'iothread=io0']),
)


def sched_stats(pid, tid):
    """(sum_exec_runtime ns, dl.runtime ns or None) from the kernel's
    /proc/<pid>/task/<tid>/sched, read at once."""
    total, dl = None, None
    with open(f'/proc/{pid}/task/{tid}/sched') as f:
        for line in f:
            key, sep, val = line.partition(':')
            key = key.strip()
            if key == 'se.sum_exec_runtime':
                ms, _, frac = val.strip().partition('.')
                total = int(ms) * 1_000_000 + int(frac.ljust(6, '0')[:6])
            elif key == 'dl.runtime':
                dl = int(val.strip())
    return total, dl


def measure(pid, tid, hogs):
    """{'thread', 'debt', 'hogs', 'window'} over WINDOW_S, in ns."""
    time.sleep(SETTLE_S)
    t0 = time.monotonic_ns()
    m0, _ = sched_stats(pid, tid)
    h0 = [sched_stats(h.pid, h.pid)[0] for h in hogs]
    time.sleep(WINDOW_S)
    m1, dl = sched_stats(pid, tid)
    h1 = [sched_stats(h.pid, h.pid)[0] for h in hogs]
    t1 = time.monotonic_ns()
    return {'thread': m1 - m0,
            'debt': max(0, -dl) if dl is not None else 0,
            'hogs': [b - a for a, b in zip(h0, h1)],
            'window': t1 - t0}


def bound_ns(window_ns):
    """What the kernel lets the thread run in the window, its debt aside."""
    q, p = RUNTIME_US * 1000, PERIOD_US * 1000
    return q * ((window_ns + TICK_NS) / p + 2)


class EmulatorBoundTest(PvschedTest):

    # The class of the VM that must stay within the bound, and the
    # policy its driven thread must show (overridden only to show the
    # test failing without the bound).
    BOUNDED = ('deadline', 'SCHED_DEADLINE')

    def run_vm(self, extra, cls, want, hogs):
        pol = (f'{POLICY},emulator-class={cls},'
               f'emulator-runtime-us={RUNTIME_US},'
               f'emulator-period-us={PERIOD_US}')
        with self.launch_vm('iostorm', smp=2, policy=pol, extra=extra) as vm:
            vm.wait_line('INFO iostorm start')
            io = vm.cmd('query-iothreads')
            tid = io[0]['thread-id'] if io else vm.pid
            self.assertEqual(vm.sched(tid)[0], want)
            vcpus = vm.vcpu_tids().values()
            try:
                v0 = sum(sched_stats(vm.pid, v)[0] for v in vcpus)
                res = measure(vm.pid, tid, hogs)
                res['vcpu'] = sum(sched_stats(vm.pid, v)[0]
                                  for v in vcpus) - v0
            except FileNotFoundError as e:
                # A thread of QEMU's is gone: the guest never stops.
                self.fail(f'{pvsched_vm.QEMU_ENDED}: {e}{vm.report()}')
            self.assertTrue(vm.is_running(), 'QEMU exited')
            # The guest is still kicking, and QMP still answers.
            vm.cmd('query-status')
            return res

    def test_deadline_bounds_driven_threads(self):
        cpus = sorted(os.sched_getaffinity(0))
        hogs = [subprocess.Popen([sys.executable, '-c', HOG])
                for _ in cpus]
        res = {}
        try:
            for h, cpu in zip(hogs, cpus):
                os.sched_setaffinity(h.pid, {cpu})
            for case, extra in CASES:
                for run, (cls, want) in (('fifo', ('fifo', 'SCHED_FIFO')),
                                         ('bounded', self.BOUNDED)):
                    res[case, run] = self.run_vm(extra, cls, want, hogs)
                    res[case, run]['class'] = cls
        finally:
            for h in hogs:
                h.kill()
                h.wait()

        rows = []
        for (case, _), r in res.items():
            w = r['window']
            rows.append(
                f'  {case:>9} {r["class"]:>8}: {case} {r["thread"] / w:6.1%} '
                f'(bound {bound_ns(w) / w:5.1%}, debt '
                f'{r["debt"] / 1e6:.1f} ms), vCPUs {r["vcpu"] / w:6.1%}, '
                f'hogs {sum(r["hogs"]) / (w * len(hogs)):6.1%} of their '
                f'{len(hogs)} CPUs (' +
                ', '.join(f'{x / w:.1%}' for x in r['hogs']) + ')')
        print(f'\n  iostorm (virtio kicks), one hog per CPU, {WINDOW_S:.0f} '
              f's windows, shares of one CPU; deadline {RUNTIME_US}/'
              f'{PERIOD_US} us:\n' + '\n'.join(rows), file=sys.stderr)

        for case, _ in CASES:
            r = res[case, 'bounded']
            bound = bound_ns(r['window'])
            self.assertLessEqual(
                r['thread'] - r['debt'], bound,
                f'{case}: ran {r["thread"]} ns ({r["debt"]} ns of it a debt '
                f'still to pay) in {r["window"]} ns under '
                f'emulator-class={self.BOUNDED[0]} {RUNTIME_US}/{PERIOD_US} '
                f'us: more than the kernel allows, {bound:.0f} ns')
            r = res[case, 'fifo']
            self.assertGreater(
                r['thread'], bound_ns(r['window']),
                f'{case}: the guest did not drive it beyond the bound under '
                f'fifo: the test proves nothing')


if __name__ == '__main__':
    PvschedTest.main()
