#!/usr/bin/env python3
"""Thread-pool completions (aio=threads) behind a real-time vCPU.

QEMU's thread-pool workers start SCHED_OTHER (the emulator threads that
create them carry RESET_ON_FORK).  This measures what that costs a
completion when a real-time thread holds the CPU the worker may run on:
QEMU (a pvsched-policy, so the main loop is SCHED_FIFO above the vCPUs)
and a SCHED_FIFO spinner at the boost priority are pinned to one CPU,
and HMP `qemu-io` reads of an aio=threads file are timed (each waits in
the main loop for a worker's completion):

  idle     no spinner
  dynamic  the spinner holds the CPU 3 ms of every 30 ms (a guest that
           boosts as much as the default bound lets it)
  static   the spinner never lets go (mode=static, or no bound)

No KVM needed.  usage: threadpool.py [--qemu PATH] [--reads N]

SPDX-License-Identifier: GPL-2.0-or-later
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
CPU = 0
PRIO = 8

SPIN = r'''
import os, sys, time
os.sched_setaffinity(0, {%d})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(%d))
print('spinning', flush=True)
on, off = float(sys.argv[1]), float(sys.argv[2])
while True:
    end = time.monotonic() + on
    while time.monotonic() < end:
        pass
    if off:
        time.sleep(off)
''' % (CPU, PRIO)


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        for _ in range(200):
            try:
                self.s.connect(path)
                break
            except OSError:
                time.sleep(0.05)
        self.f = self.s.makefile('rw')
        self.f.readline()
        self.cmd('qmp_capabilities')

    def cmd(self, name, **args):
        self.f.write(json.dumps({'execute': name, 'arguments': args}) + '\n')
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if 'return' in r or 'error' in r:
                return r


def run(qemu, reads, spin):
    tmp = tempfile.mkdtemp()
    disk = os.path.join(tmp, 'disk')
    with open(disk, 'wb') as f:
        f.truncate(1 << 20)
    sock = os.path.join(tmp, 'qmp')
    proc = subprocess.Popen(
        ['taskset', '-c', str(CPU), qemu, '-machine', 'none', '-nodefaults',
         '-display', 'none', '-object',
         f'pvsched-policy,id=pol0,boost-priority={PRIO}',
         '-blockdev', f'driver=file,node-name=f0,filename={disk},aio=threads',
         '-qmp', f'unix:{sock},server=on,wait=off'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spinner = None
    try:
        qmp = QMP(sock)
        hmp = 'human-monitor-command'
        qmp.cmd(hmp, **{'command-line': 'qemu-io f0 "read 0 4k"'})  # warm
        if spin:
            spinner = subprocess.Popen([sys.executable, '-c', SPIN,
                                        str(spin[0]), str(spin[1])],
                                       stdout=subprocess.PIPE, text=True)
            # Measure only once it spins at its real-time priority (a
            # Python start-up on a loaded host takes longer than any
            # fixed sleep).
            if spinner.stdout.readline() != 'spinning\n':
                raise RuntimeError('the spinner did not start')
        lat = []
        for i in range(reads):
            t0 = time.monotonic()
            qmp.cmd(hmp, **{'command-line': f'qemu-io f0 "read {i * 4096} 4k"'})
            lat.append(time.monotonic() - t0)
            time.sleep(0.013)   # not in phase with the spinner
        return lat
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--qemu', default=os.path.join(REPO, 'build',
                                                   'qemu-system-x86_64'))
    ap.add_argument('--reads', type=int, default=20)
    a = ap.parse_args()
    print(f'{a.reads} HMP qemu-io reads (aio=threads), QEMU and a '
          f'SCHED_FIFO {PRIO} spinner on CPU {CPU}; ms per read')
    print(f'{"":>8} {"median":>8} {"p90":>8} {"max":>8}')
    for name, spin in (('idle', None), ('dynamic', (0.003, 0.027)),
                       ('static', (1e9, 0))):
        lat = sorted(x * 1e3 for x in run(a.qemu, a.reads, spin))
        print(f'{name:>8} {statistics.median(lat):8.2f} '
              f'{lat[int(len(lat) * 0.9) - 1]:8.2f} {lat[-1]:8.2f}',
              flush=True)


if __name__ == '__main__':
    main()
