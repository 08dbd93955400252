"""Shared machinery of the pvsched benchmarks (bench/run.py).

Statistics, tables, the host's CPUs and threads, the CPU hog, and BenchVM:
a PvschedVM (tests/functional/pvsched/pvsched_vm.py) that runs one of the
bundled guest's bench-* scenarios step by step (guest/PROTOCOL.md), kept
stopped (QMP stop) between its steps so that several VMs can be compared
side by side, their measurements interleaved, without rebooting and
without the idle ones polling the serial port meanwhile.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import mmap
import os
import re
import signal
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(REPO, 'tests', 'functional', 'pvsched'))

import pvsched_vm  # noqa: E402  (after the sys.path change)

BUILD = os.path.join(REPO, 'build')
OUT = os.path.join(BUILD, 'bench')
BIN = os.path.join(OUT, 'bin')
PATCHED_QEMU = os.path.join(BUILD, 'qemu-system-x86_64')
STOCK_QEMU = os.path.join(BUILD, 'qemu-stock', 'qemu-system-x86_64')
GUEST = os.path.join(BUILD, 'guest', 'pvsched-guest.elf')

# qboot boots the multiboot guest in a few seconds where SeaBIOS takes
# tens on this busy nested host; it only changes the boot, not the exits.
QBOOT = '/usr/share/qemu/qboot.rom'

BENCH_RE = re.compile(r'^BENCH (\S+)((?: \S+=\S*)*)$')
INFO_KV_RE = re.compile(r'(\w+)=(\S+)')


def log(msg):
    print(f'[bench] {msg}', file=sys.stderr, flush=True)


# ---- statistics -------------------------------------------------------------

def summary(values):
    """median, min, max, q1, q3, n of a list of numbers (None if empty)."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method='inclusive')
    else:
        q1 = q3 = v[0]
    return {'median': statistics.median(v), 'min': v[0], 'max': v[-1],
            'q1': q1, 'q3': q3, 'n': len(v)}


def fmt_num(x, digits=3):
    """A number with `digits` significant digits, no exponent for usual
    magnitudes."""
    if x is None:
        return '-'
    if x == 0:
        return '0'
    ax = abs(x)
    if ax >= 10 ** digits:
        return f'{x:,.0f}'
    decimals = max(0, digits - 1 - int(f'{ax:e}'.split('e')[1]))
    return f'{x:.{decimals}f}'


def fmt_spread(s, scale=1.0, digits=3):
    """'median [min..max]' of a summary()."""
    if not s:
        return '-'
    return (f"{fmt_num(s['median'] * scale, digits)} "
            f"[{fmt_num(s['min'] * scale, digits)}.."
            f"{fmt_num(s['max'] * scale, digits)}]")


def table(title, header, rows, note=None):
    """Render a plain-text table (list of lists of str); returns the text."""
    cols = len(header)
    width = [max(len(str(r[i])) for r in [header] + rows)
             for i in range(cols)]
    line = '+'.join('-' * (w + 2) for w in width)
    out = [title, line]

    def fmt(r):
        return ' | '.join(str(c).rjust(w) if i else str(c).ljust(w)
                          for i, (c, w) in enumerate(zip(r, width)))
    out.append(fmt(header))
    out.append(line)
    out += [fmt(r) for r in rows]
    out.append(line)
    if note:
        out.append(note)
    return '\n'.join(out)


# ---- guest output -------------------------------------------------------------

def parse_bench(lines):
    """BENCH lines as dicts: {'name': ..., key: value (int/float/str)}."""
    out = []
    for line in lines:
        m = BENCH_RE.match(line)
        if not m:
            continue
        d = {'name': m[1]}
        for k, v in INFO_KV_RE.findall(m[2]):
            d[k] = _num(v)
        out.append(d)
    return out


def _num(v):
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


# ---- host ---------------------------------------------------------------------

def host_cpus():
    return sorted(os.sched_getaffinity(0))


def cpu_model():
    with open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return 'unknown'


def kvm_caps():
    """KVM's recommended and maximum vCPU counts (KVM_CHECK_EXTENSION)."""
    import fcntl
    fd = os.open('/dev/kvm', os.O_RDWR)
    try:
        nr = fcntl.ioctl(fd, 0xAE03, 9)      # KVM_CAP_NR_VCPUS
        mx = fcntl.ioctl(fd, 0xAE03, 66)     # KVM_CAP_MAX_VCPUS
    finally:
        os.close(fd)
    return nr, mx


def kvm_module():
    """Which KVM implementation serves /dev/kvm: kvm_intel, kvm_amd or
    kvm_pvm (a software nested KVM), from /sys/module."""
    try:
        mods = sorted(m for m in os.listdir('/sys/module')
                      if m.startswith('kvm'))
    except OSError:
        mods = []
    return ', '.join(mods) if mods else 'unknown'


def rt_throttling():
    """(sched_rt_runtime_us, sched_rt_period_us)."""
    vals = []
    for name in ('sched_rt_runtime_us', 'sched_rt_period_us'):
        with open(f'/proc/sys/kernel/{name}') as f:
            vals.append(int(f.read()))
    return tuple(vals)


def loadavg():
    with open('/proc/loadavg') as f:
        return f.read().split()[0]


def thread_cpu_ns(pid, tid):
    """CPU time a thread has used, from /proc/<pid>/task/<tid>/schedstat."""
    with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
        return int(f.read().split()[0])


def threads_of(pid):
    return [int(t) for t in os.listdir(f'/proc/{pid}/task')]


def pin(tid, cpus):
    os.sched_setaffinity(tid, set(cpus))


# ---- the CPU hog --------------------------------------------------------------

class Hog:
    """bench/tools/hog.c pinned to one CPU; rate() over any window."""

    def __init__(self, cpu, tmpdir):
        self.path = os.path.join(tmpdir, 'hog.count')
        with open(self.path, 'wb') as f:
            f.write(b'\0' * 4096)
        self.proc = subprocess.Popen(
            ['taskset', '-c', str(cpu), os.path.join(BIN, 'hog'), self.path],
            preexec_fn=pvsched_vm._die_with_parent)
        fd = os.open(self.path, os.O_RDONLY)
        self.map = mmap.mmap(fd, 4096, prot=mmap.PROT_READ)
        os.close(fd)
        self.stopped = False
        deadline = time.monotonic() + 10
        while self.count() == 0:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError('the CPU hog did not start')
            time.sleep(0.01)
        self.pause()

    def count(self):
        return int.from_bytes(self.map[:8], 'little')

    def sample(self):
        return self.count(), time.monotonic()

    @staticmethod
    def rate(a, b):
        """Iterations per second between two sample()s."""
        return (b[0] - a[0]) / (b[1] - a[1]) if b[1] > a[1] else 0.0

    def pause(self):
        if not self.stopped:
            self.proc.send_signal(signal.SIGSTOP)
            self.stopped = True

    def resume(self):
        if self.stopped:
            self.proc.send_signal(signal.SIGCONT)
            self.stopped = False

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait()
        self.map.close()


# ---- VMs ----------------------------------------------------------------------

class BenchVM(pvsched_vm.PvschedVM):
    """One VM running a bench-* scenario, driven step by step.

    At every "WAIT step" the VM is stopped (QMP stop); step() resumes it,
    sends the step's byte and reads to the next WAIT.
    """

    def __init__(self, label, scenario, append='', smp=1, qemu=None,
                 cpu='qemu64', policy=None, device=False, extra=()):
        self.label = label
        self.paused = False
        self.pos = 0
        self.tsc_khz = None
        self.has_device = device
        fw = ['-bios', QBOOT] if os.path.exists(QBOOT) else []
        super().__init__(scenario, append, smp=smp, cpu=cpu, policy=policy,
                         device=device, extra=fw + list(extra),
                         qemu=qemu or PATCHED_QEMU, guest=GUEST)

    def boot(self, timeout=300):
        """Wait for the first WAIT step, then stop the VM there."""
        self.wait_for('step', 0, timeout)
        for line in self.transcript:
            if m := re.search(r'tsc_khz=(\d+)', line):
                self.tsc_khz = int(m[1])
        self.boot_bench = parse_bench(self.new_lines())
        self.pause()
        return self

    def pause(self):
        if not self.paused:
            self.cmd('stop')
            self.paused = True

    def resume(self):
        if self.paused:
            self.cmd('cont')
            self.paused = False

    def new_lines(self):
        lines = self.transcript[self.pos:]
        self.pos = len(self.transcript)
        return lines

    def step(self, byte, timeout=600, before=None, measured=None):
        """Run one step: resume, [before()], send byte, read to the next
        WAIT. Scenarios that stop at "WAIT measured" call measured() there
        (to close a host-side window) before the results are printed.
        Returns the BENCH lines of the step, parsed."""
        self.resume()
        if before:
            before()
        self.send(byte)
        got = self.next_wait(timeout, stop_on_fail=True)
        if got == ('measured', 0):
            if measured:
                measured()
            self.send(b'g')
            got = self.next_wait(timeout, stop_on_fail=True)
        if got != ('step', 0):
            raise pvsched_vm.GuestProtocolError(
                f'{self.label}: expected WAIT step, got {got}' + self.report())
        self.pause()
        return parse_bench(self.new_lines())

    def quit(self):
        """'q': the guest says DONE; its exit status must be a pass."""
        self.resume()
        self.send(b'q')
        code = self.finish(60)
        if code != pvsched_vm.EXIT_PASS:
            raise pvsched_vm.GuestProtocolError(
                f'{self.label}: QEMU exit status {code}' + self.report())

    def cycles_to_us(self, c):
        return c / (self.tsc_khz / 1000.0)


def boot_all(vms, timeout=300):
    """The VMs were started together (they boot in parallel): wait for
    each to reach its first step and stop it there."""
    for vm in vms:
        vm.boot(timeout)
    return vms


def close_all(vms):
    for vm in vms:
        try:
            vm.close()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


def rotated(items, r):
    """items rotated by r: each round starts with another configuration."""
    r %= len(items)
    return items[r:] + items[:r]
