#!/usr/bin/env python3
"""Run the pvsched robustness tests: every test_*.py in this folder.

They run QEMU built with ASan+UBSan (build/qemu-asan, scripts/build-asan.sh)
with options that make any sanitizer report abort it (sanitizers.py says
which and why), and each test fails on a report in QEMU's stderr.

Prints one line per test as it ends, with its failure's details right
after it (an L1 VM that freezes later must not take them along), then
exactly one summary line `N passed, N failed, N skipped`; exits 0 only
when nothing failed and something ran.  A missing ASan binary, /dev/kvm or
guest is a failure (loudly announced), never a skip.

usage: run.py [test_module ...]     e.g. run.py test_fuzz

Environment: PVSCHED_ASAN_QEMU (the binary), PVSCHED_GUEST; the tests'
own knobs are in README.md here.  Run as root: the vCPU threads boost.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import faulthandler
import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import sanitizers  # noqa: E402  (sets the environment up on import)


class LineResult(unittest.TestResult):
    """One line per test, printed when it has ended (cleanups included,
    so a sanitizer report found at cleanup turns the line into FAIL)."""

    def __init__(self):
        super().__init__()
        self.verdicts = []

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.monotonic()
        self._verdict = 'ok'

    def _set(self, verdict):
        if self._verdict == 'ok':
            self._verdict = verdict

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set('FAIL')

    def addError(self, test, err):
        super().addError(test, err)
        self._set('ERROR')

    def addSkip(self, test, reason):
        # The tests skip without KVM, as QEMU's do; make check always has
        # it (on this host or in the L1 VM), so here a skip is a failure.
        super().addSkip(test, reason)
        self._set('SKIP')
        print(f'SKIP (counted as failed): {test.id()}: {reason}', flush=True)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set('FAIL')

    def stopTest(self, test):
        super().stopTest(test)
        self.verdicts.append(self._verdict)
        print(f'{self._verdict:5} {test.id()} '
              f'({time.monotonic() - self._t0:.1f} s)', flush=True)
        for kind, items in (('FAIL', self.failures), ('ERROR', self.errors)):
            for failed, trace in items:
                if failed is test:
                    print(f'\n{"=" * 72}\n{kind}: {test.id()}\n'
                          f'{"-" * 72}\n{trace}', flush=True)


def load(names):
    loader = unittest.defaultTestLoader
    if not names:
        return loader.discover(HERE, pattern='test_*.py', top_level_dir=HERE)
    return loader.loadTestsFromNames(
        [n[:-3] if n.endswith('.py') else n for n in names])


def main(argv):
    # A silent test is as bad as a failed one: "kill -USR1 <pid>" prints
    # where every thread of this process is, and it goes on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    problems = sanitizers.missing_prerequisites()
    if problems:
        bar = '!' * 72
        print(f'{bar}\nFAILURE: the pvsched robustness tests cannot run:',
              flush=True)
        for p in problems:
            print(f'  - {p}')
        print(f'Every test will fail.\n{bar}', flush=True)

    result = LineResult()
    load(argv).run(result)

    # Per test: one that failed and then failed again in cleanup is one.
    passed = result.verdicts.count('ok')
    failed = len(result.verdicts) - passed
    if not result.verdicts:
        print('FAILURE: no test ran')
        failed = 1      # so that scripts/run-tests.sh counts it
    print(f'{passed} passed, {failed} failed, 0 skipped', flush=True)
    return 0 if failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
