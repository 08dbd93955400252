"""Robustness: management changes the policy in a tight loop.

While every vCPU rings the doorbell (BOOST, UNBOOST, ...) in the guest's
`ring` scenario (guest/PROTOCOL.md), one QMP client changes the policy as
fast as it can, with pvsched-set-policy and with qom-set on the object,
mixing valid settings with invalid ones (out of range, wrong type, unknown
enum value or property or object, inverted priority ordering, inconsistent
deadline parameters), and a second QMP client, on a second monitor, runs
query-pvsched in a loop.  On the ASan+UBSan QEMU:

- no deadlock: every command has a bounded wait (pvsched_vm's), and the
  second client's thread must end within a bound after it is told to;
- no crash, no sanitizer report, no error output;
- every change the model of the policy rules (hw/pvsched/policy.c) calls
  valid is accepted, every invalid one refused with an error, and a
  refused one changes nothing (the policy is compared with the model
  every few changes);
- every policy the second client sees is a whole one (the ordering and
  class rules hold in it: never half of a change);
- at the end (VM stopped, so nothing moves), query-pvsched's policy is the
  last accepted one, and every vCPU thread's real attributes, read from
  /proc and sched_getattr, are what that policy gives for the vCPU's
  status (boosted attributes if boosted or static, its own otherwise),
  and the main-loop thread sits above the vCPUs exactly when the policy
  is a real-time one.

boost-class=uclamp is refused on hosts without utilization clamping (this
one) and accepted on others: the model accepts either answer.

Environment: PVSCHED_ABUSE_SECONDS, the length of the abuse (default 8;
a long run: e.g. 300), PVSCHED_ABUSE_SEED (default: a new one per run,
printed).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import random
import re
import sys
import threading
import time

import sanitizers  # first: the ASan QEMU and its options
from sanitizers import RobustTestCase
import pvsched_vm
from pvsched_vm import QMPError

SMP = 2
CEILING = 50                    # so that the ceiling refuses some
START = ('mode=dynamic,boost-class=fifo,boost-priority=8,'
         f'max-boost-us=3000,cooldown-us=27000,priority-ceiling={CEILING}')
JOIN_S = 60                     # the querier must stop within this
CHECK_EVERY = 25                # compare the policy with the model
BASELINE = ('SCHED_OTHER', 0, 0)
RING_RE = re.compile(r'^INFO ring cpu=(\d+) (.*)$')
U32 = {'boost-priority': (1, 99), 'max-boost-us': (0, 10 ** 9),
       'cooldown-us': (0, 10 ** 9), 'emulator-priority': (0, 99),
       'iothread-priority': (0, 99), 'priority-ceiling': (0, 99),
       'deadline-runtime-us': (2, 10 ** 9),
       'deadline-deadline-us': (2, 10 ** 9),
       'deadline-period-us': (2, 10 ** 9), 'util-min': (0, 1024),
       'util-max': (0, 1024)}
ENUMS = {'mode': ('dynamic', 'static', 'off'),
         'boost-class': ('fifo', 'rr', 'other', 'deadline', 'uclamp')}
NICE = (-20, 19)
SCHED_NAME = {'fifo': 'SCHED_FIFO', 'rr': 'SCHED_RR'}
# NO_DEADLINE: why the random changes never pick boost-class=deadline
# (issue 15).  With
# it, vCPU threads switch between SCHED_DEADLINE and other classes many
# times a second while they contend for the BQL, a priority-inheriting
# futex.  On Debian 12's kernel (6.1.0-57, in the L1 VM) that left a vCPU
# thread SCHED_DEADLINE, runnable, off every runqueue (dl_nr_running 0)
# and with no replenishment timer (none in /proc/timer_list), its
# runtime negative since its last deadline: throttled for ever, while
# both CPUs idled.  Everything else in QEMU then waited on the BQL, and
# the process could not even exit (a zombie whose DL thread never ran).
# 2 of about 30 runs here.  That is the kernel's deadline class losing
# a throttled task across priority inheritance, not QEMU's doing;
# test_classes still boosts with SCHED_DEADLINE, once per test.


def log(msg):
    print(f'qmp-abuse: {msg}', file=sys.stderr, flush=True)


def verdict(raw, change, how):
    """'valid', 'invalid' or 'maybe' (host-dependent) for applying the
    change to the settings raw, by the rules of hw/pvsched/policy.c, with
    pvsched-set-policy (how 'set') or qom-set (how 'qom')."""
    if how == 'set' and 'priority-ceiling' in change:
        return 'invalid'        # a property only: fixed at creation
    new = dict(raw)
    for k, v in change.items():
        if k in ENUMS:
            if v not in ENUMS[k]:
                return 'invalid'
        elif k in U32 or k == 'boost-nice':
            lo, hi = U32.get(k, NICE)
            if type(v) is not int or not lo <= v <= hi:
                return 'invalid'
        else:
            return 'invalid'            # no such property
        new[k] = v
    cls, bp = new['boost-class'], new['boost-priority']
    if cls == 'deadline' and not (new['deadline-runtime-us'] <=
                                  new['deadline-deadline-us'] <=
                                  new['deadline-period-us']):
        return 'invalid'
    if cls == 'uclamp' and new['util-min'] > new['util-max']:
        return 'invalid'
    if cls in ('fifo', 'rr'):
        emu = new['emulator-priority'] or bp + 1
        iot = new['iothread-priority'] or emu
        if emu > 99 or emu <= bp or iot <= bp:
            return 'invalid'
        # The ceiling: fixed at creation, and nothing may need more.
        if new['priority-ceiling'] and max(bp, emu, iot) > \
                new['priority-ceiling']:
            return 'invalid'
    if new['priority-ceiling'] != raw['priority-ceiling']:
        return 'invalid'
    if cls == 'uclamp':
        return 'maybe'
    return 'valid'


def reported(raw):
    """The policy as query-pvsched reports it for the settings raw."""
    rep = dict(raw)
    rep['emulator-priority'] = raw['emulator-priority'] or \
        raw['boost-priority'] + 1
    rep['iothread-priority'] = raw['iothread-priority'] or \
        rep['emulator-priority']
    return rep


def whole(policy):
    """The rules that make a policy whole hold in a reported one."""
    cls, bp = policy['boost-class'], policy['boost-priority']
    if cls in ('fifo', 'rr') and not (
            bp < policy['emulator-priority'] <= CEILING and
            bp < policy['iothread-priority'] <= CEILING):
        return False
    if policy['priority-ceiling'] != CEILING:
        return False
    if cls == 'deadline' and not (policy['deadline-runtime-us'] <=
                                  policy['deadline-deadline-us'] <=
                                  policy['deadline-period-us']):
        return False
    return policy['util-min'] <= policy['util-max'] or cls != 'uclamp'


class Changes:
    """Random policy changes, valid and invalid, from a seeded rng."""

    def __init__(self, rng):
        self.rng = rng

    def value(self, key):
        r = self.rng
        if key == 'mode':
            return r.choice(('dynamic', 'dynamic', 'static', 'off', 'off'))
        if key == 'boost-class':
            # Not 'deadline': see NO_DEADLINE at the top.
            return r.choice(('fifo', 'fifo', 'rr', 'other', 'other',
                             'uclamp'))
        if key == 'boost-priority':
            return r.randint(1, CEILING + 5)
        if key == 'priority-ceiling':
            return r.choice((CEILING, CEILING, r.randint(0, 99)))
        if key == 'max-boost-us':
            return r.choice((0, 500, 1000, 3000, 20000))
        if key == 'cooldown-us':
            return r.choice((0, 1000, 27000, 100000))
        if key in ('emulator-priority', 'iothread-priority'):
            return r.choice((0, 0, r.randint(2, CEILING + 5)))
        if key == 'boost-nice':
            return r.randint(-20, 19)
        if key == 'deadline-runtime-us':
            return r.randint(500, 3000)
        if key in ('deadline-deadline-us', 'deadline-period-us'):
            return r.choice((r.randint(5000, 20000), 20000))
        return r.randint(0, 1024)       # util-min, util-max

    def bad(self):
        """One invalid (key, value)."""
        return self.rng.choice((
            ('boost-priority', 0), ('boost-priority', 100),
            ('boost-priority', -1), ('boost-priority', 'high'),
            ('boost-priority', 99),     # no room for the emulator above
            ('max-boost-us', 10 ** 9 + 1), ('cooldown-us', 2 ** 32),
            ('emulator-priority', 100), ('priority-ceiling', 99),
            ('boost-nice', -21),
            ('boost-nice', 20), ('deadline-runtime-us', 1),
            ('util-max', 1025), ('mode', 'sometimes'),
            ('boost-class', 'idle'), ('no-such-property', 1)))

    def next(self, raw):
        """(how, change): how is 'set' (pvsched-set-policy), 'qom' (one
        qom-set) or 'noid' (pvsched-set-policy on a missing object).

        Static mode keeps every vCPU thread real-time, and the ring guest
        never halts: on a small host that leaves this client 5% of a CPU
        (RT throttling), so a change out of static mode follows soon."""
        r = self.rng
        if raw['mode'] == 'static' and r.random() < 0.8:
            return 'set', {'mode': r.choice(('dynamic', 'off'))}
        keys = list(U32) + list(ENUMS) + ['boost-nice']
        roll = r.random()
        if roll < 0.03:
            return 'noid', {'mode': 'dynamic'}
        if roll < 0.30:
            key = r.choice(keys)
            if r.random() < 0.3:
                key, val = self.bad()
                return 'qom', {key: val}
            return 'qom', {key: self.value(key)}
        change = {k: self.value(k) for k in r.sample(keys, r.randint(1, 4))}
        if r.random() < 0.3:
            key, val = self.bad()
            change[key] = val
        return 'set', change


class Querier(threading.Thread):
    """The second client: query-pvsched in a loop until told to stop."""

    def __init__(self, vm):
        super().__init__(daemon=True)
        self.vm = vm
        self.stop = threading.Event()
        self.count = 0
        self.problems = []
        self.latencies = []

    def run(self):
        mon = None
        try:
            mon = self.vm.open_monitor(1)
            while not self.stop.is_set():
                t = time.monotonic()
                info = mon.cmd('query-pvsched')
                self.latencies.append(time.monotonic() - t)
                self.count += 1
                pol = info['policy']
                if not whole(pol):
                    self.problems.append(f'half-applied policy seen: {pol}')
                for v in info['vcpus']:
                    if not v['registered'] or v['status'] not in (
                            'normal', 'boosted', 'throttled'):
                        self.problems.append(f'vCPU state: {v}')
                if len(self.problems) > 10:
                    return
        except Exception as e:     # reported by the test, not lost
            self.problems.append(f'second client: {e!r}')
        finally:
            if mon:
                mon.close()


class QmpAbuseTest(RobustTestCase):

    def expected_vcpu(self, pol, status):
        boosted = pol['mode'] == 'static' or status == 'boosted'
        cls = pol['boost-class']
        if not boosted or cls == 'uclamp':
            return BASELINE
        if cls in SCHED_NAME:
            return (SCHED_NAME[cls], pol['boost-priority'], 0)
        if cls == 'other':
            return ('SCHED_OTHER', 0, pol['boost-nice'])
        return ('SCHED_DEADLINE', 0, 0)

    def apply(self, vm, how, change):
        """Send one change; returns True if QEMU accepted it."""
        try:
            if how == 'qom':
                (key, val), = change.items()
                vm.cmd('qom-set', path='/objects/pol0', property=key,
                       value=val)
            else:
                vm.cmd('pvsched-set-policy',
                       id='pol0' if how == 'set' else 'no-such-policy',
                       **change)
        except QMPError as e:
            self.assertTrue(str(e), e.error_class)
            self.last_error = str(e)
            return False
        return True

    def test_policy_churn_while_ringing(self):
        seconds = float(os.environ.get('PVSCHED_ABUSE_SECONDS', 8))
        seed = int(os.environ.get('PVSCHED_ABUSE_SEED') or
                   random.randrange(1, 2 ** 32))
        log(f'seed={seed} seconds={seconds} (replay: PVSCHED_ABUSE_SEED='
            f'{seed} build/qemu/pyvenv/bin/python3 '
            f'tests/functional/pvsched/robust/run.py '
            f'test_qmp_abuse)')
        changes = Changes(random.Random(seed))
        # Paused: the ring guest boosts as soon as it runs, so the threads'
        # attributes before it are only seen before it runs.
        vm = self.start_vm('ring', smp=SMP, policy=START, monitors=2,
                           paused=True)
        tids = vm.vcpu_tids()
        for cpu, tid in tids.items():
            self.assertEqual(vm.sched(tid), BASELINE, vm.report())
        self.assertEqual(vm.sched(vm.pid)[0], 'SCHED_FIFO')   # emulator
        vm.cmd('cont')

        raw = vm.cmd('query-pvsched')['policy']
        del raw['id']
        # Not on the command line: derived from boost-priority.
        raw['emulator-priority'] = raw['iothread-priority'] = 0
        self.assertEqual(reported(raw), {k: v for k, v in
                         vm.cmd('query-pvsched')['policy'].items()
                         if k != 'id'})

        deadline = time.monotonic() + pvsched_vm.START_TIMEOUT * 2
        while not any(l.startswith('INFO ring start') for l in vm.transcript):
            line = vm._readline(deadline)
            self.assertIsNotNone(line, vm.report())
            self.assertNotRegex(line, r'^CHECK .* FAIL', vm.report())

        querier = Querier(vm)
        querier.start()
        stats = {}
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < seconds and querier.is_alive():
            how, change = changes.next(raw)
            want = 'invalid' if how == 'noid' else verdict(raw, change, how)
            ok = self.apply(vm, how, change)
            key = f'{how}-{"accepted" if ok else "refused"}'
            stats[key] = stats.get(key, 0) + 1
            if want != 'maybe':
                self.assertEqual(ok, want == 'valid',
                                 f'change #{n} {how} {change}: the model '
                                 f'says {want}, QEMU '
                                 f'{"accepted" if ok else "refused"} it '
                                 f'({"" if ok else self.last_error}); '
                                 f'settings before: {raw} (seed {seed})')
            if ok:
                raw.update(change)
            n += 1
            if n % CHECK_EVERY == 0:
                pol = vm.cmd('query-pvsched')['policy']
                del pol['id']
                self.assertEqual(pol, reported(raw),
                                 f'after change #{n} (seed {seed})')
        elapsed = time.monotonic() - t0

        vm.go()                         # the guest stops ringing
        querier.stop.set()
        querier.join(JOIN_S)
        self.assertFalse(querier.is_alive(), 'the second QMP client is '
                         f'stuck (deadlock?) {JOIN_S} s after its stop' +
                         vm.report())
        self.assertEqual(querier.problems, [], vm.report())
        try:
            vm.wait_for('rung', 0, timeout=60)
        except pvsched_vm.GuestProtocolError as e:
            raise AssertionError(f'the ring did not stop under the last '
                                 f'accepted policy {raw} (seed {seed}): '
                                 f'{e}') from None
        ring = {int(m[1]): dict(w.split('=', 1) for w in m[2].split())
                for m in map(RING_RE.match, vm.transcript) if m}

        # Nothing moves while the VM is stopped: compare.
        vm.cmd('stop')
        info = vm.cmd('query-pvsched')
        pol = info['policy']
        del pol['id']
        self.assertEqual(pol, reported(raw), 'the last accepted policy is '
                         f'not the one in force (seed {seed})')
        final = []
        for v in info['vcpus']:
            got = vm.sched(tids[v['cpu-index']])
            want = self.expected_vcpu(pol, v['status'])
            final.append((v['cpu-index'], v['status'], got))
            if pol['mode'] == 'off':
                self.assertNotEqual(v['status'], 'boosted', v)
            if want[0] == 'SCHED_DEADLINE':
                self.assertEqual(got[0], want[0], v)
            else:
                self.assertEqual(got, want, f'vCPU {v["cpu-index"]} '
                                 f'({v["status"]}) under {pol}: {v}')
        rt = pol['boost-class'] in SCHED_NAME and pol['mode'] != 'off'
        self.assertEqual(info['emulator']['thread-id'], vm.pid)
        self.assertEqual(vm.sched(vm.pid),
                         ('SCHED_FIFO', pol['emulator-priority'], 0)
                         if rt else BASELINE, pol)
        lat = sorted(querier.latencies) or [0]
        log(f'{n} policy changes in {elapsed:.1f} s: '
            + ', '.join(f'{k} {v}' for k, v in sorted(stats.items())))
        log(f'second client: {querier.count} query-pvsched, p50 '
            f'{lat[len(lat) // 2] * 1e3:.1f} ms, max {lat[-1] * 1e3:.1f} ms')
        log(f'guest: ' + '; '.join(f'cpu{c} {ring[c]}' for c in sorted(ring)))
        log(f'final policy: {pol}')
        log(f'final vCPUs: {final}; emulator {vm.sched(vm.pid)}')
        self.assertGreater(stats.get('set-accepted', 0), 0, stats)
        self.assertGreater(stats.get('set-refused', 0), 0, stats)
        self.assertGreater(querier.count, 0)

        vm.cmd('cont')
        vm.go()
        self.assertIsNone(vm.next_wait(timeout=60, stop_on_fail=True))
        self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS, vm.report())
        self.assert_no_errors(vm)


if __name__ == '__main__':
    sanitizers.PvschedTest.main()
