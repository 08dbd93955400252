"""What the L1 VM (scripts/l1) knows about an L2 guest that stopped.

In the L1 VM, L2 guests once stopped talking with their QEMU alive, a
vCPU holding L1's own state at its VMRUN (issue 12; the cause was the
L1's TCG, fixed by scripts/l1/qemu-patches/0003).  The records that
found it stay on for any failure there: the L1's init turns on the
kvm_exit and kvm_userspace_exit trace events, in a small ring, and
kvm_amd's dump_invalid_vmcb, which logs the VMCB of an entry the
(emulated) CPU refused (scripts/l1/init).  A failure report in L1
appends what they hold for the QEMU under test.  Outside L1, or when
they cannot be read, nothing.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess

IN_L1 = bool(os.environ.get('PVSCHED_IN_L1'))
# A test whose QEMU ended while the test still needed it says so with this.
QEMU_ENDED = 'QEMU ended under the test'

TRACE = '/sys/kernel/tracing/trace'
LINES = 25
# Per thread: a busy vCPU's exits must not hide a quiet one's last ones
# (seen: vCPU 1's MSR exits filled all 25 lines of a report about vCPU 0).
LINES_PER_THREAD = 12


def _trace_of(pid):
    """The last kvm trace lines of each of pid's threads ('comm-tid' in
    each), thread by thread."""
    try:
        tids = sorted(os.listdir(f'/proc/{pid}/task'), key=int)
        with open(TRACE) as f:
            lines = f.readlines()
    except OSError as e:
        return f'(cannot read {TRACE}: {e})'
    out = []
    for t in tids:
        mine = [l.rstrip() for l in lines if f'-{t} ' in l]
        if mine:
            out.append(f'thread {t}:')
            out.extend(mine[-LINES_PER_THREAD:])
    return '\n'.join(out) or '(no kvm events of this QEMU)'


def _kernel_log():
    """The L1 kernel's last messages from KVM (a refused VMRUN, say)."""
    try:
        out = subprocess.run(['dmesg'], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f'(dmesg: {e})'
    keep = [l for l in out.splitlines()
            if any(w in l for w in ('kvm', 'svm', 'SVM', 'VMCB', 'vmcb'))]
    return '\n'.join(keep[-LINES:]) or '(nothing from KVM)'


def report(pid):
    """Text for a failure report of the QEMU with this pid, in L1."""
    if not IN_L1:
        return ''
    return ('\n--- L1: kvm trace of this QEMU (last lines) ---\n' +
            _trace_of(pid) +
            '\n--- L1: kernel log, KVM lines ---\n' + _kernel_log())
