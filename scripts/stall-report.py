#!/usr/bin/env python3
"""The longest sleeps of QEMU's threads in an ftrace sched trace.

Reads the text trace that scripts/stall-trace.sh records (sched_switch,
sched_wakeup, and a stack trace after each uninterruptible switch) and
prints, longest first, each sleep of a thread whose name starts with
"qemu": how long, in which state (D: uninterruptible, in the kernel;
S: waiting for an event, e.g. in ppoll() or on a futex), which thread
woke it, and for a D sleep the innermost kernel functions it slept in.

usage: stall-report.py [--top N] [--min-ms MS] [--idle] TRACE

Only D sleeps by default: an S sleep is most often a thread with
nothing to do (the RCU thread, a worker); --idle lists those too.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import re

EVENT = re.compile(r'^\s*(.+?)-(\d+)\s+\[\d+\]\s+\S+\s+([\d.]+): '
                   r'(sched_switch|sched_wakeup): (.*)$')
# The scheduler's own frames, the same at the top of every stack.
SCHED_FRAMES = {'trace_event_raw_event_sched_switch', '__traceiter_sched_switch',
                '__schedule', 'schedule', 'event_triggers_call',
                'trace_event_buffer_commit', 'stack_trace_save',
                'ftrace_trace_stack', '__ftrace_trace_stack',
                'trace_buffer_unlock_commit_regs', 'event_trigger_stacktrace'}


def sleeps(lines):
    """(length s, pid, state, start s, waker, stack) of every sleep."""
    asleep = {}
    i = 0
    while i < len(lines):
        m = EVENT.match(lines[i])
        i += 1
        if not m:
            continue
        comm, pid, t, ev, rest = m.groups()
        t = float(t)
        f = dict(re.findall(r'(\w+)=(\S+)', rest))
        if ev == 'sched_switch':
            state = f.get('prev_state', '')
            if not f.get('prev_comm', '').startswith('qemu') or \
               state not in ('D', 'S'):
                continue
            stack = []
            while i < len(lines) and ('<stack trace>' in lines[i] or
                                      lines[i].lstrip().startswith('=>')):
                frame = lines[i].strip()[3:].split('+')[0]
                if lines[i].lstrip().startswith('=>') and \
                   frame not in SCHED_FRAMES:
                    stack.append(frame)
                i += 1
            asleep[int(f['prev_pid'])] = (t, state, stack)
        else:
            pid_woken = int(f.get('pid', -1))
            if pid_woken in asleep:
                t0, state, stack = asleep.pop(pid_woken)
                yield t - t0, pid_woken, state, t0, f'{comm}-{pid}', stack


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--top', type=int, default=10)
    ap.add_argument('--min-ms', type=float, default=10.0)
    ap.add_argument('--idle', action='store_true',
                    help='S sleeps too')
    ap.add_argument('trace')
    args = ap.parse_args()
    with open(args.trace, errors='replace') as f:
        lines = f.read().splitlines()
    found = sorted(sleeps(lines), reverse=True)
    found = [s for s in found if s[0] * 1e3 >= args.min_ms and
             (args.idle or s[2] == 'D')][:args.top]
    print(f'longest {"" if args.idle else "uninterruptible "}sleeps of QEMU '
          f'threads (at least {args.min_ms} ms):')
    if not found:
        print('  none')
    for length, pid, state, start, waker, stack in found:
        print(f'  {length * 1e3:9.1f} ms  tid {pid} {state} at {start:.6f} s,'
              f' woken by {waker}')
        if stack:
            print(f'               in {" < ".join(stack[:8])}')


if __name__ == '__main__':
    main()
