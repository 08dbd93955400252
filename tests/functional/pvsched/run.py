#!/usr/bin/env python3
"""Run the pvsched KVM tests: every test_*.py in this folder.

usage: run.py [test_module[.Class[.test]] ...]   e.g. run.py test_bound
(no argument: every test_*.py here).

Prints one line per test, then exactly one summary line
`N passed, N failed, N skipped`; exits 0 only when nothing failed.
Missing /dev/kvm, QEMU binary or guest is a failure (loudly announced), not
a skip: each test then fails in setUp with the reason.

Environment: PVSCHED_QEMU, PVSCHED_GUEST (see pvsched_vm.py).  Run as root
(or with CAP_SYS_NICE): the tests change vCPU thread policies from outside.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pvsched_vm  # noqa: E402


def main(names):
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
    result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)

    failed = (len(result.failures) + len(result.errors) +
              len(result.unexpectedSuccesses))
    skipped = len(result.skipped)
    passed = result.testsRun - failed - skipped
    # A discovery problem (syntax error in a test file) shows up as an
    # error of a synthetic test, so it is counted as failed above.
    sys.stdout.flush()
    print(f'{passed} passed, {failed} failed, {skipped} skipped', flush=True)
    return 0 if failed == 0 and result.testsRun > 0 else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
