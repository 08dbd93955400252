#!/usr/bin/env python3
"""Keep the L1 VM's CPU state when it resets itself.

usage: watch.py QMP_SOCKET OUT_FILE KALLSYMS

run.sh starts the L1 QEMU with -action reboot=shutdown,shutdown=pause:
any shutdown stops the VM instead of ending QEMU.  This connects to its
QMP socket and waits.  A shutdown the guest asked for (the L1's poweroff
at the end of the command) is let through at once; any other (a triple
fault: L1 resets itself, which -no-reboot used to turn into a silent
exit) first has every CPU's registers written to OUT_FILE, the
instruction pointer named from L1's /proc/kallsyms (which its init
copies out at boot), then QEMU is
told to quit.  Those registers are the state in which L1 gave up: the
only evidence such a stop leaves.  SIGUSR1 (run.sh, for an L1 that
stopped answering) writes them the same way while L1 runs on.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import bisect
import json
import re
import signal
import socket
import sys
import time


def connect(path, tries=300):
    for _ in range(tries):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            s.close()
            time.sleep(0.1)
    raise SystemExit(f'watch.py: cannot connect to {path}')


class Qmp:
    def __init__(self, path):
        self.f = connect(path).makefile('rw')
        self.recv()                                 # the greeting
        self.cmd('qmp_capabilities')

    def recv(self):
        line = self.f.readline()
        if not line:
            raise EOFError('QMP connection closed')
        return json.loads(line)

    def send(self, cmd, **args):
        self.f.write(json.dumps({'execute': cmd, 'arguments': args}) + '\n')
        self.f.flush()

    def cmd(self, cmd, **args):
        self.send(cmd, **args)
        while True:
            msg = self.recv()
            if 'return' in msg or 'error' in msg:
                return msg.get('return', msg.get('error'))


def kernel_symbols(path):
    addrs, names = [], []
    try:
        with open(path) as f:
            for line in f:
                a, t, n = line.split()[:3]
                if t in 'tTwW':
                    addrs.append(int(a, 16))
                    names.append(n)
    except (OSError, ValueError):
        pass
    return addrs, names


def symbolize(text, syms):
    addrs, names = syms

    def name(m):
        ip = int(m.group(2), 16)
        i = bisect.bisect_right(addrs, ip) - 1
        if i < 0 or ip - addrs[i] > 0x100000:
            return m.group(0)
        return f'{m.group(0)} <{names[i]}+{ip - addrs[i]:#x}>'
    return re.sub(r'(RIP|EIP)=([0-9a-f]+)', name, text)


class DumpRequest(Exception):
    pass


def on_usr1(signum, frame):
    raise DumpRequest()


def dump(qmp, out, kallsyms, what):
    regs = qmp.cmd('human-monitor-command',
                   **{'command-line': 'info registers -a'})
    with open(out, 'w') as f:
        f.write(f'L1 {what}\n')
        f.write(symbolize(str(regs), kernel_symbols(kallsyms)))


def main(sock, out, kallsyms):
    qmp = Qmp(sock)
    signal.signal(signal.SIGUSR1, on_usr1)
    while True:
        try:
            msg = qmp.recv()
        except EOFError:
            return 0                                # QEMU ended on its own
        except DumpRequest:
            dump(qmp, out, kallsyms, 'stopped answering (no heartbeat)')
            continue
        if msg.get('event') != 'SHUTDOWN':
            continue
        reason = msg.get('data', {}).get('reason', '?')
        if reason != 'guest-shutdown':
            dump(qmp, out, kallsyms, f'shutdown, reason: {reason}')
        try:
            qmp.cmd('quit')
        except (EOFError, OSError):
            pass
        return 0


if __name__ == '__main__':
    sys.exit(main(*sys.argv[1:4]))
