"""What the L1 VM (scripts/l1) knows about an L2 guest that stopped.

Issue 12: in the L1 VM, L2 guests now and then stop talking with their
QEMU alive, a vCPU holding L1's own state at its VMRUN.  The L1's init
turns on two records for that (scripts/l1/init): the kvm_exit and
kvm_userspace_exit trace events, in a small ring, and kvm_amd's
dump_invalid_vmcb, which logs the VMCB of an entry the (emulated) CPU
refused.  A failure report in L1 appends what they hold for the QEMU
under test.  Outside L1, or when they cannot be read, nothing.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import os
import subprocess
import sys

IN_L1 = bool(os.environ.get('PVSCHED_IN_L1'))
# A test whose QEMU ended while the test still needed it says so with this.
QEMU_ENDED = 'QEMU ended under the test'

# How the L1 platform makes an L2 guest fail, as a failure report shows it:
# (what to look for, all of it, and what it means).  One list, read by the
# KVM tests' runner and, through main(), by scripts/run-tests.sh.
PLATFORM_FAILURES = (
    (('timed out waiting for the guest', '--- QEMU still running ---'),
     'the guest went silent with its QEMU alive'),
    ((QEMU_ENDED,), 'the QEMU of a guest that never ends ended'),
    (('run state: internal-error',),
     'KVM_RUN refused the vCPU (seen holding L1\'s own VMRUN state)'),
    # Seen in CI and in 1 of 12 test_qmp runs in one L1 boot: the guest
    # printed garbage, then took #UD at eip=3 with the registers it had
    # at boot (ebx=2badb002), right after a QMP command kicked its vCPU.
    (('CHECK exception FAIL',),
     'the guest took a CPU exception its code never raises'),
)


def _died_waiting(text):
    """A guest that ended with its failure status (3) while it waited at
    a WAIT point, where nothing of its own can fail: only its exception
    handler ends it there, and the serial FIFO lost what it printed
    (seen in a clean run: test_qmp, right after the same QMP kick as the
    #UD above)."""
    serial = text.partition('--- guest serial ---\n')[2]
    serial = serial.partition('\n--- QEMU stderr ---')[0].split('\n')
    last = [l for l in serial if l.strip()][-1:]
    return ('--- QEMU exit status 3 ---' in text and bool(last) and
            last[0].startswith('WAIT '))
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


def platform_failure(text):
    """What the L1 platform did, if text (a failure report) shows one of
    its L2 failures; None otherwise, and always outside L1."""
    if not IN_L1:
        return None
    for needles, what in PLATFORM_FAILURES:
        if all(n in text for n in needles):
            return what
    if _died_waiting(text):
        return 'the guest died where it only waits (an exception, unprinted)'
    return None


def main(argv):
    """usage: l1_evidence.py --platform-failure LOG
    Exit status 0, and what it was on stdout, when LOG shows an L1
    platform failure; 1 when it does not (or outside L1)."""
    if len(argv) != 2 or argv[0] != '--platform-failure':
        print(main.__doc__, file=sys.stderr)
        return 2
    with open(argv[1], errors='replace') as f:
        what = platform_failure(f.read())
    if what:
        print(what)
    return 0 if what else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
