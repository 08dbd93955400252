#!/usr/bin/env python3
"""Run a test command again and again; when one goes silent, take the
stacks of every QEMU it started before anything kills it.

usage: stall-watch.py [--runs N] [--quiet S] [--limit S] [--out DIR]
                      -- COMMAND...

A stall is COMMAND printing nothing for S seconds (default 60).  Then,
for every qemu-system process below COMMAND: each thread's state, wchan
and kernel stack (/proc), and every thread's user stack (gdb -batch
'thread apply all bt'), into DIR/run-<i>/stall-<pid>.txt; the Python test
runner gets SIGUSR1 (run.py prints its threads' stacks on it).  The run
goes on until it ends or has taken --limit seconds (default 600), then it
is killed.  Each run's output is kept in DIR/run-<i>/output.log only if
it failed or stalled.  Ends with
"stall-watch: N runs, N failed, N stalled", exit status 1 if any did.

Where the host has no hardware KVM, run it in the L1 VM:
  bash scripts/with-kvm.sh -- python3 scripts/stall-watch.py --runs 100 \\
      --out build/stalls -- build/qemu/pyvenv/bin/python3 \\
      tests/functional/pvsched/robust/run.py test_qmp_abuse

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time


def children_of(root):
    """Every process below @root, by /proc's parent links."""
    parent = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    stat = f.read()
                parent[int(d)] = int(stat.rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        kids = [p for p, pp in parent.items() if pp == pid]
        found += kids
        todo += kids
    return found


def comm(pid):
    try:
        with open(f'/proc/{pid}/comm') as f:
            return f.read().strip()
    except OSError:
        return ''


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return f'({e.strerror})'


def kernel_view(pid):
    """What the kernel says each thread is doing."""
    lines = []
    for tid in sorted(os.listdir(f'/proc/{pid}/task'), key=int):
        t = f'/proc/{pid}/task/{tid}'
        state = read(f'{t}/stat').rsplit(')', 1)[-1].split()[:1]
        lines.append(f'--- thread {tid} {read(t + "/comm")} '
                     f'state={"".join(state)} wchan={read(t + "/wchan")}')
        lines.append(read(f'{t}/stack'))
    return '\n'.join(lines)


def user_stacks(pid):
    gdb = shutil.which('gdb')
    if not gdb:
        return '(no gdb: scripts/install-deps.sh --test installs it)'
    p = subprocess.run([gdb, '-batch', '-nx', '-p', str(pid),
                        '-ex', 'set pagination off',
                        '-ex', 'thread apply all bt'],
                       capture_output=True, text=True, timeout=120)
    return p.stdout + p.stderr


def take_stacks(proc, run_dir):
    """The stall's evidence: QEMU's threads, then the runner's."""
    pids = children_of(proc.pid)
    qemus = [p for p in pids if comm(p).startswith('qemu-system')]
    for pid in qemus:
        path = os.path.join(run_dir, f'stall-{pid}.txt')
        try:
            text = kernel_view(pid) + '\n\n' + user_stacks(pid)
        except (OSError, subprocess.TimeoutExpired) as e:
            text = f'could not read {pid}: {e}'
        with open(path, 'w') as f:
            f.write(text)
    for pid in [proc.pid] + pids:
        if comm(pid).startswith('python'):
            try:
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass
    return qemus


def run_once(cmd, run_dir, quiet_s, limit_s):
    """Returns (exit status or None if killed, stalled, output)."""
    os.makedirs(run_dir, exist_ok=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = []
    start = last = time.monotonic()
    stalled = False
    while True:
        now = time.monotonic()
        if now - start > limit_s:
            out.append(f'\nstall-watch: killed after {limit_s} s\n'.encode())
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, stalled, b''.join(out)
        if not sel.select(timeout=1):
            if not stalled and now - last > quiet_s:
                stalled = True
                qemus = take_stacks(proc, run_dir)
                msg = (f'\nstall-watch: silent for {quiet_s} s; stacks of '
                       f'QEMU {qemus} in {run_dir}\n')
                sys.stdout.write(msg)
                sys.stdout.flush()
                out.append(msg.encode())
            continue
        data = os.read(proc.stdout.fileno(), 65536)
        if not data:
            return proc.wait(), stalled, b''.join(out)
        out.append(data)
        last = time.monotonic()


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--runs', type=int, default=1)
    ap.add_argument('--quiet', type=int, default=60,
                    help='seconds without output that make a stall')
    ap.add_argument('--limit', type=int, default=600,
                    help='seconds after which a run is killed')
    ap.add_argument('--out', default='build/stalls')
    ap.add_argument('cmd', nargs=argparse.REMAINDER)
    p = ap.parse_args()
    cmd = p.cmd[1:] if p.cmd[:1] == ['--'] else p.cmd
    if not cmd:
        ap.error('no command given')
    failed = stalled = 0
    for i in range(1, p.runs + 1):
        run_dir = os.path.join(p.out, f'run-{i}')
        code, stall, out = run_once(cmd, run_dir, p.quiet, p.limit)
        failed += code != 0
        stalled += stall
        if code != 0 or stall:
            with open(os.path.join(run_dir, 'output.log'), 'wb') as f:
                f.write(out)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        print(f'run {i}: exit status {code}' +
              (', STALLED' if stall else ''), flush=True)
    print(f'stall-watch: {p.runs} runs, {failed} failed, {stalled} stalled')
    return 1 if failed or stalled else 0


if __name__ == '__main__':
    sys.exit(main())
