#!/usr/bin/env python3
"""pvsched demo: watch guest boosts turn into host scheduling policy.

Boots the bundled guest (scenario `demo`: on every vCPU, a doorbell BOOST
then a lazy UNBOOST, `loops` times) under a dynamic SCHED_FIFO 8 policy.
At each guest WAIT it prints one table row: what the guest sees in its
shared area and what the host thread really is, read from outside the QEMU
process.  Exits 0 only if every boosted row had the thread at SCHED_FIFO 8,
every unboosted row had it back at its original attributes, and the guest
passed all its own checks.

Run as root (QEMU needs CAP_SYS_NICE for SCHED_FIFO):
    scripts/pvsched-demo.py [--qemu PATH] [--guest PATH] [--smp N]

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'functional', 'pvsched'))

import pvsched_vm  # noqa: E402
from pvsched_vm import PvschedVM, fmt_sched  # noqa: E402

BOOST = ('SCHED_FIFO', 8)
# max-boost-us=0: at each WAIT the guest polls the UART, which costs boosted
# CPU time; with the default 3 ms bound the vCPU would be throttled before
# its row is printed.  The demo shows boost/unboost, not the bound.
POLICY = 'mode=dynamic,boost-class=fifo,boost-priority=8,max-boost-us=0'
LOOPS = 3


def expected_boost(tag, status):
    """True if this WAIT follows a boost, False after an unboost.

    From the wait tag when it says so (what the guest asked for), else from
    the status the guest sees.
    """
    tag = tag.lower()
    if 'unboost' in tag:
        return False
    if 'boost' in tag:
        return True
    return status == 'BOOSTED'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--qemu', default=pvsched_vm.QEMU)
    ap.add_argument('--guest', default=pvsched_vm.GUEST)
    ap.add_argument('--smp', type=int, default=2)
    opts = ap.parse_args()

    problems = pvsched_vm.missing_prerequisites(opts.qemu, opts.guest)
    if problems:
        print('cannot run the demo:\n  ' + '\n  '.join(problems),
              file=sys.stderr)
        return 2

    rows = []   # (step, tag, cpu, guest status, tid, host, boosted?, ok)
    fmt = '{:>4}  {:<16} {:>4}  {:<10} {:>8}  {:<22} {}'
    # Start paused (-S) so the original attributes are read before the
    # guest can boost anything; they are what "unboosted" must return to.
    with PvschedVM('demo', append=f'loops={LOOPS}', smp=opts.smp,
                   policy=POLICY,
                   paused=True, qemu=opts.qemu, guest=opts.guest) as vm:
        try:
            tids = vm.vcpu_tids()
            original = {cpu: vm.sched(tid) for cpu, tid in tids.items()}
            vm.cmd('cont')
            print('vCPU threads before the guest runs:')
            for cpu, tid in sorted(tids.items()):
                print(f'  cpu {cpu}: thread {tid}, {fmt_sched(original[cpu])}')
            print()
            print(fmt.format('step', 'wait tag', 'vCPU', 'guest sees',
                             'thread', 'host policy', 'verdict'))
            while (got := vm.next_wait()) is not None:
                tag, cpu = got
                status = vm.states.get(cpu, ('?', '?'))[0]
                tid = tids.get(cpu)
                host = vm.sched(tid) if tid else None
                boosted = expected_boost(tag, status)
                if boosted:
                    ok = (status == 'BOOSTED' and host is not None
                          and host[:2] == BOOST)
                else:
                    ok = (status == 'NORMAL' and host is not None
                          and host == original[cpu])
                rows.append((len(rows) + 1, tag, cpu, status, tid, host,
                             boosted, ok))
                print(fmt.format(len(rows), tag, cpu, status, tid or '?',
                                 fmt_sched(host) if host else '?',
                                 'ok' if ok else
                                 'MISMATCH (want ' +
                                 (f'{BOOST[0]} {BOOST[1]}' if boosted else
                                  fmt_sched(original[cpu])) + ')'),
                      flush=True)
                vm.go()
            code = vm.wait_exit()
        except (AssertionError, RuntimeError, OSError,
                pvsched_vm.QMPError) as e:
            print(f'\ndemo failed: {e}', file=sys.stderr)
            return 2

        # Summary: what the guest saw vs what the host did.
        guest_boosts = sum(1 for r in rows if r[3] == 'BOOSTED')
        host_boosts = sum(1 for r in rows if r[5] and r[5][:2] == BOOST)
        bad = [r for r in rows if not r[7]]
        failed = vm.failed_checks()
        guest_ok = code == pvsched_vm.EXIT_PASS and not failed
        print()
        print(f'boosts seen by the guest: {guest_boosts}, boosts seen on '
              f'the host ({BOOST[0]} {BOOST[1]}): {host_boosts}, '
              f'rows: {len(rows)}, mismatched rows: {len(bad)}')
        print(f'guest: {len(vm.checks) - len(failed)} checks passed, '
              f'{len(failed)} failed, QEMU exit status {code} '
              f'({"pass" if guest_ok else "FAIL"})')
        for name, _, detail in failed:
            print(f'  CHECK {name} FAIL {detail}')
        if not rows:
            print('the guest never stopped at a WAIT: nothing was shown')
        success = guest_ok and rows and not bad
        if not success and vm.stderr().strip():
            print('--- QEMU stderr ---\n' + vm.stderr(), end='')
        print('RESULT: ' + ('PASS' if success else 'FAIL'))
        return 0 if success else 1


if __name__ == '__main__':
    sys.exit(main())
