"""Shared plumbing of the robustness tests: the ASan+UBSan QEMU.

Importing this module (every robust test does, before anything else):
  - sets ASAN_OPTIONS and UBSAN_OPTIONS in this process's environment, so
    every QEMU started from here inherits them;
  - points pvsched_vm (the parent folder's helper, reused as it is) at the
    ASan build: PvschedVM(), run_startup(), missing_prerequisites() and
    qemu_test's QEMU_TEST_QEMU_BINARY
    without an explicit qemu= all use build/qemu-asan/qemu-system-x86_64
    (PVSCHED_ASAN_QEMU overrides the path).

Tests derive from RobustTestCase and start QEMU with self.start_vm():
a missing ASan binary fails every test in setUp (never a skip), and every
VM is checked for sanitizer reports and error output when the test ends,
whatever the test itself checked.  See README.md in this folder.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import functools
import mmap
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import pvsched_vm  # noqa: E402

QEMU = os.environ.get('PVSCHED_ASAN_QEMU',
                      os.path.join(pvsched_vm.REPO, 'build', 'qemu-asan',
                                   'qemu-system-x86_64'))

# Any report ends QEMU at once, with SIGABRT.  abort_on_error matters: the
# sanitizers' default is exit(1), and 1 is what isa-debug-exit makes of a
# guest that passed (pvsched_vm.EXIT_PASS), so a report in the middle of a
# passing run would otherwise look like success.  halt_on_error makes
# UBSan stop at the first report too (by default it prints and goes on).
#
# detect_leaks=0: LeakSanitizer runs at exit, and these VMs end through
# isa-debug-exit, i.e. exit() called on a vCPU thread while the others and
# the main loop still run and hold allocations only they point to (device
# state, coroutine stacks, QAPI objects in flight): what it reports there
# is QEMU tearing down without freeing, not a leak pvsched causes and
# repeats.  A leak that grows with what the guest does shows up as RSS
# growth instead, which the churn test measures.
ASAN_OPTIONS = ':'.join([
    'halt_on_error=1',
    'abort_on_error=1',
    'detect_leaks=0',
    'print_stacktrace=1',
    'handle_abort=1',          # a g_assert() failure gets a stack trace too
    'symbolize=1',
    'detect_stack_use_after_return=0',   # coroutines switch stacks
])
UBSAN_OPTIONS = ':'.join([
    'halt_on_error=1',
    'abort_on_error=1',
    'print_stacktrace=1',
    'symbolize=1',
])

# What a sanitizer prints when it finds something (and nothing else does).
REPORT = re.compile(r'ERROR: AddressSanitizer|ERROR: LeakSanitizer|'
                    r'AddressSanitizer:DEADLYSIGNAL|'
                    r'SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer|'
                    r'WARNING: AddressSanitizer|'
                    r'runtime error: |==\d+==ERROR: ')

# stderr lines these runs may print besides pvsched_vm.EXPECTED_STDERR:
# more vCPUs than this 2-CPU host's KVM recommends (the tests want several
# vCPUs at once on purpose); ASan's one-time notice at QEMU's first
# coroutine switch (QEMU tells ASan about every stack switch with
# __sanitizer_start/finish_switch_fiber, the notice is printed anyway).
EXPECTED_STDERR = [re.compile(r'warning: Number of (SMP|hotpluggable) cpus '
                              r'requested \(\d+\) exceeds the recommended '
                              r'cpus supported by KVM'),
                   re.compile(r"^==\d+==WARNING: ASan doesn't fully support "
                              r'makecontext/swapcontext functions')]


def setup_environment():
    """Force our options (a caller's own ASAN_OPTIONS could turn the
    checks off) and make the ASan QEMU pvsched_vm's default."""
    os.environ['ASAN_OPTIONS'] = ASAN_OPTIONS
    os.environ['UBSAN_OPTIONS'] = UBSAN_OPTIONS
    # Looked up at call time by every pvsched_vm function.
    pvsched_vm.QEMU = QEMU
    # The QEMU of qemu_test's tests (self.qemu_bin), read at its import.
    os.environ['QEMU_TEST_QEMU_BINARY'] = QEMU


setup_environment()

from pvsched_test import PvschedTest  # noqa: E402


def missing_prerequisites():
    """As pvsched_vm's, plus: the binary really is a sanitizer build."""
    problems = [p.replace('(set PVSCHED_QEMU)', '(scripts/build-asan.sh '
                          'builds it; PVSCHED_ASAN_QEMU sets another)')
                for p in pvsched_vm.missing_prerequisites(qemu=QEMU)]
    if os.access(QEMU, os.X_OK) and not is_sanitized(QEMU):
        problems.append(f'{QEMU} is not built with ASan+UBSan '
                        f'(run scripts/build-asan.sh)')
    return problems


@functools.lru_cache(maxsize=None)
def is_sanitized(binary):
    """True if the binary carries both runtimes' entry points."""
    with open(binary, 'rb') as f, \
            mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(b'__asan_init') >= 0 and \
            data.find(b'__ubsan_handle_') >= 0


def sanitizer_reports(text):
    """The lines of text (QEMU's stderr) that are sanitizer reports."""
    return [l for l in text.splitlines() if REPORT.search(l)]


def unexpected_errors(vm):
    """stderr lines of vm that look like errors, minus the expected ones
    (pvsched_vm's list and ours)."""
    return [l for l in vm.unexpected_stderr()
            if not any(p.search(l) for p in EXPECTED_STDERR)]


class RobustTestCase(PvschedTest):
    """A test that runs the ASan QEMU; use start_vm() for every VM."""

    def setUp(self):
        super().setUp()
        problems = missing_prerequisites()
        if problems:     # a failure, not a skip: see run.py
            self.fail('cannot run the robustness tests: ' +
                      '; '.join(problems))

    def start_vm(self, *args, **kwargs):
        """launch_vm(*args, **kwargs) on the ASan QEMU.  When the test
        ends, the VM is closed and its stderr checked: a sanitizer report
        fails the test even if the test itself passed."""
        kwargs.setdefault('qemu', QEMU)
        vm = self.launch_vm(*args, **kwargs)
        self.addCleanup(self._close_and_check, vm)
        return vm

    def _close_and_check(self, vm):
        vm.close()
        self.assert_no_sanitizer_report(vm)

    def assert_no_sanitizer_report(self, vm):
        found = sanitizer_reports(vm.stderr())
        self.assertEqual(found, [], 'sanitizer report in QEMU stderr' +
                         vm.report())

    def assert_no_errors(self, vm):
        """The host-side check: QEMU logged no error or warning."""
        self.assertEqual(unexpected_errors(vm), [],
                         'expected no error output from QEMU' + vm.report())

    def assert_running(self, vm, where):
        """QEMU alive and the guest running (QMP answers)."""
        self.assertTrue(vm.is_running(), f'at {where}: QEMU exited' +
                          vm.report())
        status = vm.cmd('query-status')
        self.assertEqual((status.get('status'), status.get('running')),
                         ('running', True),
                         f'at {where}: expected query-status running, saw '
                         f'{status}' + vm.report())
