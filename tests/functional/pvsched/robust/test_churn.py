"""Robustness: registrations, disables and resets, over and over.

The guest's `churn` scenario (guest/PROTOCOL.md): every boot is one
cycle.  At `WAIT fresh` the host checks the state a reset must leave, then
says how the cycle ends; the guest makes regs=N rounds of register /
BOOST / re-register with another area / BOOST / disable on every vCPU,
registers and boosts every vCPU once more, and then, in turn:
  d  disables every vCPU and resets itself (port 0xcf9),
  b  resets itself while every vCPU is registered and boosted,
  h  waits, registered and boosted, for the host's system_reset.
The policy is unbounded (max-boost-us=0), so that the bound cannot undo
a boost the reset left behind.  On the ASan+UBSan QEMU:

- after every reset, no vCPU is registered or boosted, in query-pvsched
  and in every vCPU thread's real attributes (/proc, sched_getattr);
- QEMU's RSS (VmRSS) stays flat: the second cycle's (the first one after
  a reset) and the last one's may differ by at most RSS_MARGIN_KB (6 MiB;
  ASan's quarantine is off for this VM, see QUARANTINE_MB);
- no memory-region reference leaks: a registration maps the area with
  memory_region_find(), which takes a reference on the RAM region's owner,
  the machine's RAM backend (hw/pvsched/guest-area.c), and disable and
  reset must drop it.  The test reads that object's reference count
  (current_machine->memdev->parent.ref) at the first cycle, while every
  vCPU is registered (it must be higher by one per vCPU: the probe sees
  the references) and at the end (back to the first value).  gdb finds
  where it lives once, in the binary's debug info, before QEMU starts;
  the reads go through /proc/PID/mem and never stop QEMU.  (Attaching
  gdb at every read took up to 3 minutes in the L1: a SCHED_OTHER gdb
  parsing the ASan binary's debug info while both vCPUs spin at
  SCHED_FIFO gets the 5% the RT throttle leaves.)

One cycle takes ~10 s on this project's nested-KVM machine, almost all
of it SeaBIOS running again after the reset; CI makes 12 cycles of 20
registration rounds per vCPU.  PVSCHED_CHURN_CYCLES=1000 is the long mode
(~3 hours here); PVSCHED_CHURN_REGS sets the rounds per boot.

Needs gdb (to find the reference count).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import re
import shutil
import subprocess
import sys
import time

import sanitizers  # first: the ASan QEMU and its options
from sanitizers import RobustTestCase
import pvsched_vm

SMP = 2
POLICY = 'mode=dynamic,boost-class=fifo,boost-priority=8,max-boost-us=0'
# A hang guard, not a measure: gdb reads the ASan binary's debug info,
# which took over 120 s in the L1 on a loaded host.
GDB_TIMEOUT_S = 900
BASELINE = ('SCHED_OTHER', 0, 0)
BOOSTED = ('SCHED_FIFO', 8, 0)
ENDINGS = 'dbh'
CYCLE_S = 180                   # one boot, whatever the load
# ASan keeps freed memory in a quarantine, 256 MiB by default, and RSS
# grows until it is full with no leak at all (~1 MiB per cycle here with
# a 16 MiB one).  This VM runs without it: ASan still checks every access
# against its redzones, it just reuses freed memory at once (the other
# robustness tests keep the quarantine for use-after-free).
QUARANTINE_MB = 0
# Measured here over 11 resets: +0.3 MiB (plain build), +1.4 MiB (ASan,
# no quarantine), flat after the third boot.  A leak of 0.5 MiB per reset
# fails the CI count, one of 6 KiB per reset the long mode.
RSS_MARGIN_KB = 6 * 1024
# Where the reference count is: current_machine->memdev->parent.ref.
REF_PATH = ('&current_machine',
            '&((MachineState *)0)->memdev',
            '&((HostMemoryBackend *)0)->parent.ref')
RSS_RE = re.compile(r'^VmRSS:\s+(\d+) kB', re.M)


def log(msg):
    print(f'churn: {msg}', file=sys.stderr, flush=True)


def rss_kb(pid):
    with open(f'/proc/{pid}/status') as f:
        return int(RSS_RE.search(f.read())[1])


class ChurnTest(RobustTestCase):

    def find_refs(self, binary):
        """The link-time address of current_machine and the offsets
        that lead from it to the RAM backend's reference count, from
        the binary's debug info."""
        gdb = shutil.which('gdb')
        self.assertIsNotNone(gdb, 'gdb is needed to find the RAM '
                             "backend's reference count (apt-get install "
                             'gdb)')
        cmd = [gdb, '-nx', '-batch', binary]
        for expr in REF_PATH:
            cmd += ['-ex', f'print/d (long){expr}']
        out = subprocess.run(cmd, capture_output=True, text=True,
                             timeout=GDB_TIMEOUT_S)
        found = re.findall(r'^\$\d+ = (\d+)$', out.stdout, re.M)
        self.assertEqual(len(found), len(REF_PATH),
                         f'gdb could not find {REF_PATH} in {binary}:\n'
                         f'{out.stdout[-2000:]}\n{out.stderr[-2000:]}')
        self.ref_path = [int(x) for x in found]

    def ram_refs(self, vm):
        """The reference count of the machine's RAM backend, read from
        the running QEMU's memory."""
        exe = os.path.realpath(f'/proc/{vm.pid}/exe')
        with open(f'/proc/{vm.pid}/maps') as f:
            # A PIE: link-time addresses are offsets from where the
            # mapping of the binary's first page starts.
            base = next(int(line.split('-')[0], 16) for line in f
                        if line.split()[2] == '00000000' and
                        line.rstrip().endswith(exe))
        sym, memdev, ref = self.ref_path
        with open(f'/proc/{vm.pid}/mem', 'rb') as mem:
            def read(addr, size):
                mem.seek(addr)
                return int.from_bytes(mem.read(size), sys.byteorder)
            machine = read(base + sym, 8)
            backend = read(machine + memdev, 8)
            self.assertNotEqual(backend, 0, 'no memory backend: '
                                'the VM must have -machine memory-backend')
            return read(backend + ref, 4)

    def check_fresh(self, vm, tids, cycle):
        """After a reset: nothing registered, nothing boosted."""
        for v in vm.cmd('query-pvsched')['vcpus']:
            where = f'cycle {cycle}, vCPU {v["cpu-index"]}: {v}'
            self.assertFalse(v['registered'], where)
            self.assertEqual(v['status'], 'disabled', where)
            self.assertEqual(vm.sched(tids[v['cpu-index']]), BASELINE,
                             where + vm.report())

    def check_boosted(self, vm, tids):
        for v in vm.cmd('query-pvsched')['vcpus']:
            self.assertTrue(v['registered'], v)
            self.assertEqual(v['status'], 'boosted', v)
            self.assertEqual(vm.sched(tids[v['cpu-index']]), BOOSTED, v)

    def test_churn(self):
        cycles = int(os.environ.get('PVSCHED_CHURN_CYCLES', 12))
        regs = int(os.environ.get('PVSCHED_CHURN_REGS', 20))
        self.assertGreaterEqual(cycles, 3, 'PVSCHED_CHURN_CYCLES >= 3')
        asan = os.environ.get('ASAN_OPTIONS', '')
        os.environ['ASAN_OPTIONS'] = \
            f'{asan}:quarantine_size_mb={QUARANTINE_MB}'.lstrip(':')
        self.find_refs(sanitizers.QEMU)
        try:
            vm = self.start_vm('churn', append=f'regs={regs}', smp=SMP,
                               policy=POLICY)
        finally:
            os.environ['ASAN_OPTIONS'] = asan
        # pvsched_vm passes -no-reboot: make resets resets again.
        vm.cmd('set-action', reboot='reset')
        tids = vm.vcpu_tids()
        # Boosted and unbounded, the vCPUs spin at SCHED_FIFO (cpu 0
        # waiting for cpu 1 in run_on()): one host CPU each, or two of
        # them on one CPU, e.g. pushed there by other real-time load,
        # would starve one another (same priority, no time slice).
        host = sorted(os.sched_getaffinity(0))
        for i, tid in tids.items():
            os.sched_setaffinity(tid, {host[i % len(host)]})
        rss, times, endings = [], [], {}
        refs = {}
        t_prev = time.monotonic()
        for cycle in range(cycles):
            vm.wait_for('fresh', 0, timeout=CYCLE_S)
            now = time.monotonic()
            times.append(now - t_prev)
            t_prev = now
            self.check_fresh(vm, tids, cycle)
            rss.append(rss_kb(vm.pid))
            if cycle == 0:
                refs['first'] = self.ram_refs(vm)
            if cycle == cycles - 1:
                refs['last'] = self.ram_refs(vm)
                vm.send(b'q')
                break
            how = 'p' if cycle == 1 else ENDINGS[cycle % len(ENDINGS)]
            endings[how] = endings.get(how, 0) + 1
            vm.send(how.encode())
            if how == 'h':
                vm.wait_for('host-reset', 0, timeout=CYCLE_S)
                vm.cmd('system_reset')
            elif how == 'p':
                vm.wait_for('probe', 0, timeout=CYCLE_S)
                self.check_boosted(vm, tids)
                refs['registered'] = self.ram_refs(vm)
                vm.go()
        self.assertIsNone(vm.next_wait(timeout=CYCLE_S, stop_on_fail=True))
        self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS, vm.report())
        ops = sum(1 for c in vm.checks if c[0] == 'churn-ops' and c[1])

        times = sorted(times[1:])
        log(f'{cycles} boots ({cycles - 1} resets: '
            + ', '.join(f'{k} {v}' for k, v in sorted(endings.items()))
            + f'), {regs + 1} registrations per vCPU per boot, '
            f'{ops} boots with every operation as expected; one cycle '
            f'{times[len(times) // 2]:.1f} s (median), '
            f'{times[-1]:.1f} s (max)')
        log(f'VmRSS: first {rss[0]} kB, after the first reset {rss[1]} kB,'
            f' last {rss[-1]} kB, max {max(rss)} kB (margin '
            f'{RSS_MARGIN_KB} kB); per cycle: {rss}')
        log(f'RAM backend references: {refs["first"]} at the start, '
            f'{refs["registered"]} with {SMP} vCPUs registered, '
            f'{refs["last"]} at the end')

        self.assertEqual(ops, cycles, vm.report())
        self.assertEqual(refs['registered'], refs['first'] + SMP,
                         'a registration must hold one reference on the RAM '
                         'backend: the probe cannot see them')
        self.assertEqual(refs['last'], refs['first'],
                         'memory-region references leaked')
        self.assertLessEqual(rss[-1] - rss[1], RSS_MARGIN_KB,
                             f'RSS grew from {rss[1]} to {rss[-1]} kB over '
                             f'{cycles - 2} resets: {rss}')
        self.assert_no_errors(vm)


if __name__ == '__main__':
    sanitizers.PvschedTest.main()
