#!/usr/bin/env python3
"""Run the pvsched KVM tests: every test_*.py in this folder.

usage: run.py [test_module[.Class[.test]] ...]   e.g. run.py test_bound
(no argument: every test_*.py here).

Prints one line per test, then exactly one summary line
`N passed, N failed, N skipped`; exits 0 only when nothing failed.
The tests are QEMU functional tests (pvsched_test.PvschedTest, on
qemu_test.QemuSystemTest).  Missing /dev/kvm, QEMU binary or guest is a
failure (loudly announced), not a skip: each test skips or fails in
setUp with the reason, and a skip counts as failed here.

Environment: PVSCHED_QEMU, PVSCHED_GUEST (see pvsched_vm.py).  Run as root
(or with CAP_SYS_NICE): the tests change vCPU thread policies from outside.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import faulthandler
import os
import signal
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pvsched_vm  # noqa: E402


class PromptResult(unittest.TextTestResult):
    """Prints a failure's details as soon as it happens, not only in the
    summary at the end: an L1 VM that freezes later in the run must not
    take them along (seen in a clean run: test_other_nice's FAIL line was
    all that was left)."""

    def _now(self, kind, test, err):
        self.stream.writeln(f'\n{kind}: {test.id()}\n'
                            f'{self._exc_info_to_string(err, test)}')
        self.stream.flush()

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._now('FAIL', test, err)

    def addError(self, test, err):
        super().addError(test, err)
        self._now('ERROR', test, err)


def main(names):
    # A silent test is as bad as a failed one: "kill -USR1 <pid>" prints
    # where every thread of this process is, and it goes on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    problems = pvsched_vm.missing_prerequisites()
    if problems:
        bar = '!' * 72
        print(f'{bar}\nFAILURE: the pvsched KVM tests cannot run:', flush=True)
        for p in problems:
            print(f'  - {p}')
        print(f'Every test will fail.\n{bar}', flush=True)

    loader = unittest.defaultTestLoader
    if names:
        suite = loader.loadTestsFromNames(names)
    else:
        suite = loader.discover(HERE, pattern='test_*.py', top_level_dir=HERE)
    # Runner output on stdout, so it is ordered with our summary line.
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=PromptResult)
    result = runner.run(suite)

    failed = (len(result.failures) + len(result.errors) +
              len(result.unexpectedSuccesses))
    # The tests skip without KVM, as QEMU's do; make check always has it
    # (on this host or in the L1 VM), so here a skip is a failure.
    failed += len(result.skipped)
    passed = result.testsRun - failed
    # A discovery problem (syntax error in a test file) shows up as an
    # error of a synthetic test, so it is counted as failed above.
    sys.stdout.flush()
    print(f'{passed} passed, {failed} failed, 0 skipped', flush=True)
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
