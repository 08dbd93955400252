#!/usr/bin/env python3
"""KVM test of the pvsched Linux guest module (python3 stdlib, as root).

Boots Debian's 6.1 kernel with -smp 2 and the pvsched device, loads the
module in the guest, and checks from the host that an RT task's vCPU
thread is SCHED_FIFO 8 while it runs, that the guest's counters moved,
that both vCPU threads get their own policy back afterwards, and that
unloading disabled every area (QEMU trace).  One line per check, then
"N passed, N failed, N skipped"; exit 0 only if none failed.

    guest/linux/test.py [--verbose] [--timeout SECONDS]

The guest is built with guest/linux/build-guest.sh when build/linux-guest
is missing.  PVSCHED_QEMU and PVSCHED_LINUX_GUEST override the paths.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linuxvm  # noqa: E402

# The spinner holds CPU 1 for as long as the host looks, and every console
# line costs milliseconds here: a 3 ms bound (the default) would throttle
# it before the host can see it boosted.  Throttling is the state
# machine's business, tested with the bare-metal guest.
POLICY = linuxvm.policy_string(max_boost_us=60_000_000, cooldown_us=27000)


class Checks:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def ok(self, name, cond, detail=''):
        if cond:
            self.passed += 1
            print(f'PASS {name}' + (f': {detail}' if detail else ''))
        else:
            self.failed += 1
            print(f'FAIL {name}' + (f': {detail}' if detail else ''))
        sys.stdout.flush()
        return cond

    def skip(self, name, why):
        self.skipped += 1
        print(f'SKIP {name}: {why}')

    def summary(self):
        print(f'{self.passed} passed, {self.failed} failed, '
              f'{self.skipped} skipped')
        return 0 if self.failed == 0 and self.passed else 1


def status_changes(trace, cpu):
    """(boosts, unboosts) of one vCPU in the pvsched_status trace lines."""
    up = down = 0
    rx = re.compile(rf'pvsched_status cpu {cpu} (\w+) -> (\w+)')
    for line in trace:
        m = rx.search(line)
        if m and m.group(2) == 'boosted':
            up += 1
        elif m and m.group(1) == 'boosted':
            down += 1
    return up, down


def trace_cpus(trace, event):
    return {int(m.group(1)) for m in
            (re.search(rf'{event} cpu (\d+)', line) for line in trace) if m}


def run(c, args):
    log = (lambda s: print('  | ' + s)) if args.verbose else None
    deadline = time.monotonic() + args.timeout
    left = lambda: max(1.0, deadline - time.monotonic())  # noqa: E731

    # maxcpus=1: CPU 1 comes online only after the module is loaded.
    with linuxvm.LinuxVM('test', smp=2, mem='256M', pvsched=POLICY,
                         append='maxcpus=1', trace=True, log=log) as vm:
        t0 = time.monotonic()
        m = vm.expect(r'^READY cpus=(\d+) kernel=(\S+)', left())
        c.ok('boot', True, f'Linux {m.group(2)}, {m.group(1)} CPU online, '
             f'{time.monotonic() - t0:.0f} s')
        vm.expect(r'^WAIT before-load', left())
        threads = vm.vcpu_threads()
        orig = {i: linuxvm.read_sched(vm.pid, t) for i, t in threads.items()}
        vm.send('\n')

        m = vm.expect(r'^LOADED rc=(\d+)', left())
        c.ok('module-load', m.group(1) == '0', f'insmod rc={m.group(1)}')
        vm.expect(r'^STATS feature=', left())
        cpus, summ = linuxvm.parse_stats(vm.serial_log)
        c.ok('feature-found', summ.get('feature') == '1',
             ' '.join(f'{k}={v}' for k, v in summ.items()))
        c.ok('registered-cpu0', cpus.get(0, {}).get('registered') == '1',
             f'cpu0 status={cpus.get(0, {}).get("status")}')

        # CPU 1 comes online: the hotplug callback registers it.
        m = vm.expect(r'^ONLINE cpu=1 rc=(\d+) online=(\S+)', left())
        c.ok('cpu1-online', m.group(1) == '0' and m.group(2) == '0-1',
             f'online={m.group(2)}')
        n0 = len(vm.serial_log)
        vm.expect(r'^STATS feature=', left())
        cpus, summ = linuxvm.parse_stats(vm.serial_log[n0:])
        c.ok('registered-every-cpu',
             summ.get('registered') == '2' and
             all(cpus.get(i, {}).get('registered') == '1' and
                 cpus.get(i, {}).get('status') in ('NORMAL', 'BOOSTED')
                 for i in (0, 1)),
             ' '.join(f'cpu{i}:registered={cpus.get(i, {}).get("registered")}'
                      f',{cpus.get(i, {}).get("status")}' for i in (0, 1)))

        # An RT spinner on guest CPU 1, announced by the guest.
        vm.expect(r'^RT-RUNNING cpu=1', left())
        vm.expect(r'^WAIT rt-running cpu=1', left())
        pol = linuxvm.read_sched(vm.pid, threads[1])
        c.ok('rt-task-vcpu-fifo', pol == ('SCHED_FIFO', 8),
             f'vCPU 1 thread {threads[1]}: {pol[0]} {pol[1]}')
        vm.send('\n')
        n0 = len(vm.serial_log)
        vm.expect(r'^STATS feature=', left())
        spin, _ = linuxvm.parse_stats(vm.serial_log[n0:])

        # cyclictest on CPU 1: boosted while it runs (and while it sleeps:
        # keep_idle_boost), within the bound.
        vm.expect(r'^WAIT cyclictest-running cpu=1', left())
        pol = linuxvm.read_sched(vm.pid, threads[1])
        c.ok('cyclictest-vcpu-fifo', pol == ('SCHED_FIFO', 8),
             f'vCPU 1 thread: {pol[0]} {pol[1]}')
        vm.send('\n')
        m = vm.expect(r'^RESULT cyclictest rc=(\d+)(.*)', left())
        c.ok('cyclictest-ran', m.group(1) == '0', m.group(2).strip())
        n0 = len(vm.serial_log)
        vm.expect(r'^STATS feature=', left())
        after, _ = linuxvm.parse_stats(vm.serial_log[n0:])

        c1 = {k: int(v) for k, v in after.get(1, {}).items()
              if v.isdigit()}
        c.ok('counters-moved',
             c1.get('boosts', 0) >= 1 and c1.get('unboosts', 0) >= 1 and
             c1.get('doorbells', 0) >= 2 and c1.get('msr_errors', 1) == 0,
             f'cpu1 after spinner: boosts={spin.get(1, {}).get("boosts")}; '
             f'after cyclictest: boosts={c1.get("boosts")} '
             f'unboosts={c1.get("unboosts")} doorbells={c1.get("doorbells")} '
             f'throttled={c1.get("throttled")} '
             f'msr_errors={c1.get("msr_errors")}')

        # Normal tasks ran on both CPUs: both threads are back.
        vm.expect(r'^WAIT after cpu=1', left())
        now = {i: linuxvm.read_sched(vm.pid, t) for i, t in threads.items()}
        c.ok('policy-restored', now == orig,
             f'before {orig}, after {now}')
        vm.send('\n')

        m = vm.expect(r'^OFFLINE cpu=1 rc=(\d+)', left())
        c.ok('cpu1-offline', m.group(1) == '0', f'rc={m.group(1)}')
        m = vm.expect(r'^UNLOADED rc=(\d+)', left())
        c.ok('module-unload', m.group(1) == '0', f'rmmod rc={m.group(1)}')
        vm.expect(r'^DONE', left())
        code = vm.wait_exit(min(30, left()))
        c.ok('guest-poweroff', code == 0, f'QEMU exit status {code}')

        trace = vm.trace_lines()
        enabled = trace_cpus(trace, 'pvsched_msr_enable')
        disabled = trace_cpus(trace, 'pvsched_msr_disable')
        c.ok('trace-enabled-every-cpu', enabled == {0, 1},
             f'pvsched_msr_enable for cpus {sorted(enabled)}')
        c.ok('trace-disabled-every-cpu', disabled == {0, 1},
             f'pvsched_msr_disable for cpus {sorted(disabled)}')
        up, down = status_changes(trace, 1)
        c.ok('trace-boosts-cpu1', up >= 1 and down >= 1,
             f'{up} boosts, {down} unboosts of vCPU 1 in the trace')
        last = [line for line in trace if 'pvsched_status' in line]
        c.ok('trace-ends-disabled',
             all(re.search(rf'cpu {i} \w+ -> disabled', '\n'.join(last))
                 for i in (0, 1)),
             (last[-1] if last else 'no pvsched_status lines'))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--verbose', '-v', action='store_true',
                    help='echo the guest console')
    # This host's nested KVM takes 10-25 minutes to boot the guest (see the
    # docs); on an ordinary KVM host the run takes well under a minute.
    ap.add_argument('--timeout', type=float, default=2700,
                    help='bound on the whole guest run (s, default 2700)')
    args = ap.parse_args()
    c = Checks()

    problems = linuxvm.missing_prerequisites()
    for p in problems:
        c.ok('prerequisites', False, p)
    if not problems:
        err = linuxvm.ensure_guest()
        if c.ok('guest-built', err is None, err or linuxvm.GUEST_DIR):
            try:
                run(c, args)
            except linuxvm.GuestError as e:
                c.ok('guest-run', False, str(e))
    return c.summary()


if __name__ == '__main__':
    sys.exit(main())
