"""Robustness: the guest fuzzes the pvsched MSR on every vCPU at once.

The bundled guest's `fuzz` scenario (guest/PROTOCOL.md) makes seeded
random MSR writes and reads on 4 vCPUs at once -- reserved bits, GPAs
beyond RAM, in MMIO and ROM, page-crossing, unaligned, random values --
interleaved with valid enables, doorbells with random requests and
disables, and writes random bytes into its registered areas.  Each vCPU
checks every outcome against its model of DESIGN section 4.  Here, on the
ASan+UBSan QEMU: QEMU stays up, the guest ends with no failed check,
query-pvsched agrees with the guest's view of every vCPU (registered,
area), no sanitizer report, no error output.

Environment:
  PVSCHED_FUZZ_OPS   total ops over all vCPUs (default 30000, the CI
                     count; a long run: PVSCHED_FUZZ_OPS=2000000)
  PVSCHED_FUZZ_SEED  the seed to replay (default: a new one per run)
  PVSCHED_FUZZ_SMP   vCPUs (default 4; the guest handles up to 8)

The seed and the command that replays it are printed before the run and
repeated in every failure message.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import random
import re
import sys
import time

import sanitizers
from sanitizers import RobustTestCase

# The CI count: sized for the L1 VM (scripts/l1), where make check runs
# it on hosts without hardware KVM; a long run sets PVSCHED_FUZZ_OPS.
CI_OPS = 30000
# pvsched_vm gives every VM -m 128M; the guest's model must know it.
RAM_MB = 128
# Not a performance claim, a hang detector.  Measured, ASan build, 4 vCPUs
# on 2 CPUs: ~3000 ops/s boot included on a kvm_pvm host (guest code
# emulated); 199 ops/s boot included in the L1 VM, where every MSR exit
# goes through nested SVM under TCG.  The bound allows 2x slower than the
# L1, so a loaded machine passes and a stuck vCPU still fails well before
# the suite's own patience ends.
OPS_PER_S_FLOOR = 100
BOOT_S = 60

FUZZ_RE = re.compile(r'^FUZZ cpu=(\d+) (.*)$')
KINDS_RE = re.compile(r'^INFO fuzz cpu=(\d+) (.*)$')


def log(msg):
    print(f'fuzz: {msg}', file=sys.stderr, flush=True)


def keyvals(text):
    return dict(w.split('=', 1) for w in text.split() if '=' in w)


def per_cpu(regex, transcript):
    """{cpu: {key: value}} from the lines regex matches."""
    return {int(m[1]): keyvals(m[2])
            for m in map(regex.match, transcript) if m}


class FuzzTest(RobustTestCase):

    def settings(self):
        ops = int(os.environ.get('PVSCHED_FUZZ_OPS', CI_OPS))
        smp = int(os.environ.get('PVSCHED_FUZZ_SMP', 4))
        seed = os.environ.get('PVSCHED_FUZZ_SEED')
        seed = int(seed) if seed else random.randrange(1, 2 ** 32)
        return ops, smp, seed

    def test_fuzz(self):
        ops, smp, seed = self.settings()
        replay = (f'PVSCHED_FUZZ_SEED={seed} PVSCHED_FUZZ_OPS={ops} '
                  f'PVSCHED_FUZZ_SMP={smp} build/qemu/pyvenv/bin/python3 '
                  f'tests/functional/pvsched/robust/run.py test_fuzz')
        self.ctx = f'\n[fuzz seed={seed}; replay: {replay}]'
        log(f'seed={seed} ops={ops} vcpus={smp} qemu={sanitizers.QEMU}')
        log(f'replay: {replay}')

        t0 = time.monotonic()
        vm = self.start_vm('fuzz', f'seed={seed} ops={ops} ram_mb={RAM_MB}',
                           smp=smp)
        got = vm.next_wait(timeout=BOOT_S + ops / OPS_PER_S_FLOOR)
        fuzz_s = time.monotonic() - t0
        self.assertEqual(got, ('fuzz-done', 0), 'expected WAIT fuzz-done '
                         'cpu=0' + vm.report() + self.ctx)
        self.assert_running(vm, 'fuzz-done')
        guest = per_cpu(FUZZ_RE, vm.transcript)
        self.assertEqual(sorted(guest), list(range(smp)),
                         'expected one FUZZ line per vCPU' + vm.report() +
                         self.ctx)
        self.assert_query_matches(vm, guest)

        vm.go()
        code = vm.finish()
        self.assert_guest_passed(vm, code, guest, ops)
        self.assert_no_sanitizer_report(vm)
        self.assert_no_errors(vm)
        self.log_totals(vm, guest, fuzz_s)

    def assert_query_matches(self, vm, guest):
        """query-pvsched, asked while the guest waits, agrees with the
        guest's own view of every vCPU's registration."""
        host = {v['cpu-index']: v for v in vm.cmd('query-pvsched')['vcpus']}
        for cpu, g in guest.items():
            h = host.get(cpu)
            self.assertIsNotNone(h, f'query-pvsched has no vCPU {cpu}' +
                                 self.ctx)
            want = (g['registered'] == '1',
                    int(g['area'], 16) if g['registered'] == '1' else None)
            have = (h['registered'], h.get('area'))
            self.assertEqual(have, want,
                             f'vCPU {cpu}: query-pvsched (registered, area) '
                             f'= {have}, the guest says {want}' +
                             vm.report() + self.ctx)

    def assert_guest_passed(self, vm, code, guest, ops):
        ctx = vm.report() + self.ctx
        self.assertEqual(vm.failed_checks(), [],
                         'expected every guest CHECK to pass' + ctx)
        names = {c[0] for c in vm.checks}
        for cpu in guest:
            self.assertIn(f'fuzz-model.cpu{cpu}', names, ctx)
        self.assertEqual(vm.done and vm.done[1], 0,
                         f'expected DONE fail=0, saw {vm.done}' + ctx)
        self.assertEqual(code, sanitizers.pvsched_vm.EXIT_PASS,
                         f'expected QEMU exit status '
                         f'{sanitizers.pvsched_vm.EXIT_PASS}, saw {code}' +
                         ctx)
        done = sum(int(g['ops']) for g in guest.values())
        self.assertGreaterEqual(done, ops, f'the guest did {done} ops' + ctx)

    def log_totals(self, vm, guest, fuzz_s):
        """The figures the issue asks for, summed over the vCPUs."""
        kinds = per_cpu(KINDS_RE, vm.transcript)

        def total(table, key):
            return sum(int(v.get(key, 0)) for v in table.values())

        ops = total(guest, 'ops')
        log(f'inputs={ops} msr_writes={total(guest, "writes")} '
            f'(invalid={total(guest, "invalid")}) '
            f'msr_reads={total(guest, "reads")} '
            f'scribbles={total(kinds, "scribble")} '
            f'enables={total(kinds, "enable")} '
            f'doorbells={total(kinds, "doorbell")} '
            f'disables={total(kinds, "disable")} '
            f'gp={total(guest, "gp")} mismatches={total(guest, "mismatches")} '
            f'crashes=0 sanitizer_findings=0 '
            f'boot+fuzz={fuzz_s:.1f}s ({ops / fuzz_s:.0f} ops/s)')
