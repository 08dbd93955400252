"""Run the pvsched Linux test guest under the patched QEMU (stdlib only).

Shared by guest/linux/test.py and bench/linux/cyclictest.py.  The guest's
console is QEMU's stdio (a pipe here), QMP a unix socket; the guest side of
the line protocol is guest/linux/initramfs/scenarios.sh.

Every blocking call has a deadline, and LinuxVM.close() (the context
manager calls it, also on any exception) kills QEMU and removes its
temporary directory.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import ctypes
import fcntl
import glob
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
QEMU = os.environ.get('PVSCHED_QEMU',
                      os.path.join(REPO, 'build', 'qemu-system-x86_64'))
GUEST_DIR = os.environ.get('PVSCHED_LINUX_GUEST',
                           os.path.join(REPO, 'build', 'linux-guest'))
BUILD_SCRIPT = os.path.join(HERE, 'build-guest.sh')

# This host's nested KVM (kvm_pvm) emulates parts of the guest kernel and
# fails on instructions KVM's emulator lacks: keep them out of the guest
# (docs/system/pvsched-linux-guest.rst, "This host's KVM").  cx16 and
# xsave go through CPUID; the rest through the kernel command line.
# No steal time: enabling its static key at boot patches account_process_tick()
# with an int3 while the timer interrupt runs it.
CPU_MODEL = ('qemu64,-cx16,-xsave,-rdrand,-rdseed,-kvm-steal-time,'
             '-kvmclock-stable-bit,+xsaveerptr')
with open(os.path.join(HERE, 'kernel-args')) as _f:
    KERNEL_ARGS = ' '.join(_f.read().split())

POLICY_NAMES = {0: 'SCHED_OTHER', 1: 'SCHED_FIFO', 2: 'SCHED_RR',
                3: 'SCHED_BATCH', 5: 'SCHED_IDLE', 6: 'SCHED_DEADLINE'}


class GuestError(AssertionError):
    """The guest or QEMU did not do what was expected in time."""


def _die_with_parent():
    """In the QEMU child: killed when the Python process dies, even by
    SIGKILL, so that no QEMU outlives an interrupted run."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PDEATHSIG


def emulated_user_code():
    """Why this host's /dev/kvm cannot run an ordinary userland, or None.

    kvm_pvm in its native mode runs an unmodified guest's kernel through
    KVM's instruction emulator, and goes on emulating user code after the
    kernel returns to it: an instruction that emulator lacks (glibc's SSE2
    memset, x87 arithmetic) reaches the guest as #UD, and busybox as PID 1
    dies (docs/system/pvsched-linux-guest.rst, "This host's KVM")."""
    try:
        with open('/sys/module/kvm_pvm/parameters/pvm_native') as f:
            native = f.read().strip() == 'Y'
    except OSError:
        return None
    if not native:
        return None
    return ('/dev/kvm is kvm_pvm in native mode (pvm_native=Y): it '
            'emulates guest user code after returns from the kernel and '
            'raises #UD where its emulator lacks an instruction (SSE, x87), '
            'so neither busybox nor cyclictest survives; run on a host with '
            'hardware virtualization (VMX/SVM, nested or not)')


# PID 1: busybox and initramfs/init (the scenarios, cyclictest), or where
# the host emulates user code, initramfs/pvinit.c (the test scenario only,
# no libc).  PVSCHED_LINUX_USERLAND=busybox|pvinit overrides the choice.
USERLAND = os.environ.get('PVSCHED_LINUX_USERLAND') or \
    ('pvinit' if emulated_user_code() else 'busybox')
INIT_ARGS = 'rdinit=/sbin/pvinit' if USERLAND == 'pvinit' else ''


def missing_prerequisites(qemu=QEMU):
    problems = []
    if not os.path.exists('/dev/kvm'):
        problems.append('/dev/kvm does not exist (KVM is required)')
    elif not os.access('/dev/kvm', os.R_OK | os.W_OK):
        problems.append('/dev/kvm is not readable and writable')
    if not os.access(qemu, os.X_OK):
        problems.append(f'patched QEMU missing: {qemu} (make qemu, or set '
                        f'PVSCHED_QEMU)')
    if os.geteuid() != 0:
        problems.append('must run as root (thread policies, SCHED_FIFO)')
    return problems


def guest_kernel(guest_dir):
    """The kernel to boot: the PVH ELF when present (see build-guest.sh:
    this host's nested KVM runs the bzImage decompressor very slowly)."""
    vmlinux = os.path.join(guest_dir, 'vmlinux')
    return vmlinux if os.path.exists(vmlinux) else \
        os.path.join(guest_dir, 'bzImage')


def guest_initrd(guest_dir):
    """The uncompressed initramfs when present: inflating it in the guest
    is slow where the guest kernel is emulated."""
    cpio = os.path.join(guest_dir, 'initramfs.cpio')
    return cpio if os.path.exists(cpio) else \
        os.path.join(guest_dir, 'initramfs.cpio.gz')


def guest_sources():
    """The files the guest is built from (a change means a rebuild)."""
    files = [BUILD_SCRIPT, os.path.join(HERE, 'extract-pvh.py'),
             os.path.join(HERE, 'initramfs', 'init'),
             os.path.join(HERE, 'initramfs', 'pvinit.c'),
             os.path.join(REPO, 'include', 'pvsched', 'abi.h')]
    mod = os.path.join(HERE, 'pvsched')
    for root, dirs, names in os.walk(mod):
        dirs.sort()
        files += [os.path.join(root, n) for n in sorted(names)
                  if n.endswith(('.c', '.h', 'Kbuild', 'Makefile'))]
    return files


def _digest(paths, extra=''):
    h = hashlib.sha256(extra.encode())
    for p in paths:
        h.update(os.path.relpath(p, REPO).encode() + b'\0')
        with open(p, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                h.update(chunk)
    return h.hexdigest()


def ensure_guest(guest_dir=GUEST_DIR, log=print):
    """Build the guest if its files are missing or older than its sources
    (cached packages: seconds)."""
    need = [os.path.join(guest_dir, f)
            for f in ('bzImage', 'initramfs.cpio.gz', 'initramfs.cpio')]
    stamp = os.path.join(guest_dir, 'sources.sha256')
    want = _digest(guest_sources())
    try:
        with open(stamp) as f:
            have = f.read().strip()
    except OSError:
        have = None
    if have == want and all(os.path.exists(f) for f in need):
        return None
    log(f'# building the Linux guest into {guest_dir}')
    r = subprocess.run(['bash', BUILD_SCRIPT, guest_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=900)
    if r.returncode:
        return f'build-guest.sh failed ({r.returncode}):\n{r.stdout[-3000:]}'
    with open(stamp, 'w') as f:
        f.write(want + '\n')
    return None


def policy_string(mode='dynamic', prio=8, max_boost_us=3000,
                  cooldown_us=27000):
    return (f'mode={mode},boost-class=fifo,boost-priority={prio},'
            f'max-boost-us={max_boost_us},cooldown-us={cooldown_us}')


def read_sched(pid, tid):
    """(policy name, rt priority) of a thread, from sched_getscheduler and
    cross-checked with /proc/<pid>/task/<tid>/sched."""
    policy = os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK
    prio = os.sched_getparam(tid).sched_priority
    proc = {}
    with open(f'/proc/{pid}/task/{tid}/sched') as f:
        for line in f:
            k, sep, v = line.partition(':')
            if sep and k.strip() in ('policy', 'prio', 'nr_switches'):
                proc[k.strip()] = int(v.strip())
    if proc.get('policy') != policy:
        raise GuestError(f'thread {tid}: sched_getscheduler says {policy}, '
                         f'/proc says {proc.get("policy")}')
    return POLICY_NAMES.get(policy, f'policy{policy}'), prio


def thread_cpu_ns(pid, tid):
    """CPU time of a thread (first field of schedstat, ns)."""
    with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
        return int(f.read().split()[0])


# The one VM configuration that every test and benchmark run restores: two
# vCPUs, CPU 1 offline at boot (test.py brings it online after insmod;
# the benchmark's guest keeps it offline), the pvsched device and CPUID
# bit always present (a run without the guest module is "vanilla": no
# area is ever registered, so QEMU never touches a thread's policy).
SMP = 2
MEM = '256M'
APPEND = f'maxcpus=1 {INIT_ARGS}'.strip()
SCENARIOS = os.path.join(HERE, 'initramfs', 'scenarios.sh')
SNAPSHOT_DIR = os.environ.get(
    'PVSCHED_LINUX_SNAPSHOTS',
    os.path.join(os.environ.get('PVSCHED_LINUX_CACHE',
                                '/var/cache/pvsched/linux-guest'),
                 'snapshots'))


def snapshot_key(guest_dir=GUEST_DIR):
    """What a booted guest depends on: the kernel, what the initramfs was
    built from (sources.sha256: the initramfs itself differs between two
    builds in file dates and paths, so that a fresh clone could never
    reuse a snapshot), the command line, CPU model and machine size.  Not
    the QEMU binary: a snapshot that a rebuilt QEMU cannot load is
    replaced by a fresh boot."""
    with open(os.path.join(guest_dir, 'sources.sha256')) as f:
        sources = f.read().strip()
    return _digest([guest_kernel(guest_dir)],
                   f'{sources}|{CPU_MODEL}|{SMP}|{MEM}|{APPEND}|'
                   f'{KERNEL_ARGS}')[:16]


class LinuxVM:
    """One QEMU running the Linux guest, driven over its console.

    pvsched: the pvsched-policy properties (policy_string()); trace:
    record pvsched_* trace events to a file; settings: shell variables
    for the scenario (e.g. {'MODARGS': 'irq_hints=1'}).

    start() restores the booted guest from the snapshot in SNAPSHOT_DIR
    (seconds), or boots it (on this host's nested KVM, tens of minutes;
    see the docs) and saves the snapshot for the next run; then sends
    initramfs/scenarios.sh and runs the scenario.
    """

    def __init__(self, scenario, pvsched=None, trace=False, settings=None,
                 qemu=QEMU, guest_dir=GUEST_DIR, log=None):
        self.scenario = scenario
        self.policy = pvsched or policy_string(mode='off')
        self.settings = settings or {}
        self.qemu = qemu
        self.guest_dir = guest_dir
        self.tmp = tempfile.mkdtemp(prefix='pvsched-linux-')
        self.trace_path = os.path.join(self.tmp, 'trace.log') if trace else None
        self.log = log
        self.proc = None
        self.pid = None
        self.stderr = None
        self.restored = False
        self.boot_seconds = None
        self.start_seconds = None
        self.serial_log = []
        self._qmp = None
        self._n = 0

    def _launch(self, incoming=None):
        """Start QEMU: a fresh boot, or a restore from a snapshot file."""
        self._n += 1
        self.qmp_path = os.path.join(self.tmp, f'qmp{self._n}.sock')
        self.serial_log = []
        self._buf = b''
        self._qmp = None
        cpu = CPU_MODEL + ',kvm-pvsched=on'
        args = [self.qemu, '-accel', 'kvm', '-cpu', cpu, '-smp', str(SMP),
                '-m', MEM, '-display', 'none', '-no-reboot', '-nodefaults',
                '-kernel', guest_kernel(self.guest_dir),
                '-initrd', guest_initrd(self.guest_dir),
                '-append', f'console=ttyS0 loglevel=4 {KERNEL_ARGS} '
                           f'pvsched.scenario=host {APPEND}',
                '-serial', 'stdio',
                '-qmp', f'unix:{self.qmp_path},server=on,wait=off',
                '-object', 'pvsched-policy,id=pol0,' + self.policy,
                '-device', 'pvsched,policy=pol0']
        if self.trace_path:
            args += ['-trace', f'enable=pvsched_*,file={self.trace_path}']
        if incoming:
            args += ['-incoming', f'file:{incoming}']
        self.args = args
        if self.stderr:
            self.stderr.close()
        self.stderr = open(os.path.join(self.tmp, f'stderr{self._n}'), 'w+')
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=self.stderr,
                                     preexec_fn=_die_with_parent)
        self.pid = self.proc.pid

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None

    def _restore(self, path, timeout=120):
        """Load the snapshot; False (QEMU gone) if this QEMU cannot."""
        self._launch(incoming=path)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                st = self.qmp('query-status')
                if st['status'] == 'running':
                    return True
                # The snapshot was saved from a stopped VM, and QEMU
                # carries that state over: loaded, and paused.
                if (st['status'] != 'inmigrate' and
                        self.qmp('query-migrate').get('status') ==
                        'completed'):
                    self.qmp('cont')
                    return True
                time.sleep(0.2)
        except (OSError, ValueError, GuestError):
            if self.proc.poll() is not None:
                return False
            raise
        raise GuestError(f'snapshot {path} not loaded after {timeout} s')

    def _boot_and_save(self, path, boot_timeout):
        self._launch()
        t0 = time.monotonic()
        self.expect(r'^WAIT script', boot_timeout)
        self.boot_seconds = time.monotonic() - t0
        self.qmp('stop')
        tmp = path + '.tmp'
        self.qmp('migrate', uri=f'file:{tmp}')
        deadline = time.monotonic() + 300
        while True:
            st = self.qmp('query-migrate').get('status')
            if st == 'completed':
                break
            if st in ('failed', 'cancelled') or time.monotonic() > deadline:
                raise GuestError(f'saving the snapshot: migration {st}')
            time.sleep(0.2)
        os.rename(tmp, path)
        for old in glob.glob(os.path.join(os.path.dirname(path), '*.mig')):
            if old != path:
                os.unlink(old)
        self.qmp('cont')

    def _snapshot_path(self):
        os.makedirs(SNAPSHOT_DIR, exist_ok=True)
        return os.path.join(SNAPSHOT_DIR,
                            snapshot_key(self.guest_dir) + '.mig')

    def start(self, boot_timeout=2700):
        """Bring up a booted guest waiting for its script, and send it."""
        path = self._snapshot_path()
        t0 = time.monotonic()
        # One process boots and saves; the others wait for its snapshot.
        with open(path + '.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.exists(path):
                if self._restore(path):
                    self.restored = True
                else:
                    msg = self.stderr_text().strip().splitlines()[-3:]
                    if self.log:
                        self.log('snapshot not loadable by this QEMU, '
                                 'booting afresh: ' + ' / '.join(msg))
                    self._kill()
                    os.unlink(path)
            if not self.restored:
                self._boot_and_save(path, boot_timeout)
        self.start_seconds = time.monotonic() - t0
        self.send_script()

    def prepare(self, boot_timeout=2700):
        """Make sure the booted-guest snapshot exists, booting and saving
        it if not; no scenario runs.  True if it was already there (not
        loaded: a QEMU that cannot load it is found out by start())."""
        path = self._snapshot_path()
        with open(path + '.lock', 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if os.path.exists(path):
                return True
            self._boot_and_save(path, boot_timeout)
            self._kill()
        return False

    def send_script(self):
        lines = [f"{k}='{v}'" for k, v in self.settings.items()]
        with open(SCENARIOS) as f:
            # Comments and blank lines stay at home: every byte crosses an
            # emulated UART.
            lines += [ln.rstrip('\n') for ln in f
                      if ln.strip() and not ln.lstrip().startswith('#')]
        lines += [f'scen_{self.scenario}', 'END-SCRIPT']
        self.send('\n'.join(lines) + '\n')

    # -- serial ---------------------------------------------------------
    def readline(self, deadline):
        """Next console line (without \\r\\n) or GuestError at deadline."""
        while b'\n' not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError('timed out waiting for the guest; last '
                                 'lines:\n  ' +
                                 '\n  '.join(self.serial_log[-15:]))
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 1))
            if not r and 'KVM internal error' in self.stderr_text():
                # QEMU pauses the VM and waits: say why at once.
                err = self.stderr_text()
                raise GuestError('KVM internal error (this host cannot '
                                 'emulate an instruction the guest ran):\n' +
                                 '\n'.join(ln for ln in err.splitlines()
                                           if ln.startswith(('KVM', 'emul',
                                                             'RIP', 'Code')))
                                 + '\nlast lines:\n  ' +
                                 '\n  '.join(self.serial_log[-15:]))
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise GuestError(f'QEMU exited ({self.proc.wait()}): '
                                     f'{self.stderr_text()[-2000:]}\n'
                                     'last lines:\n  ' +
                                     '\n  '.join(self.serial_log[-15:]))
                self._buf += chunk
        line, self._buf = self._buf.split(b'\n', 1)
        text = line.decode(errors='replace').rstrip('\r')
        self.serial_log.append(text)
        if self.log:
            self.log(text)
        return text

    def expect(self, pattern, timeout):
        """Read lines until one matches the regex; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            line = self.readline(deadline)
            m = rx.search(line)
            if m:
                return m
            if line.startswith('FAIL '):
                raise GuestError(f'guest: {line}')

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    # -- QMP ------------------------------------------------------------
    def qmp(self, cmd, **args):
        if self._qmp is None:
            deadline = time.monotonic() + 10
            while True:
                try:
                    s = socket.socket(socket.AF_UNIX)
                    s.settimeout(10)
                    s.connect(self.qmp_path)
                    break
                except OSError:
                    s.close()
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            self._qmp = s.makefile('rw')
            self._qmp.readline()
            self._qmp_cmd('qmp_capabilities', {})
        return self._qmp_cmd(cmd, args)

    def _qmp_cmd(self, cmd, args):
        self._qmp.write(json.dumps({'execute': cmd, 'arguments': args}) + '\n')
        self._qmp.flush()
        while True:
            r = json.loads(self._qmp.readline())
            if 'error' in r:
                raise GuestError(f'QMP {cmd}: {r["error"]}')
            if 'return' in r:
                return r['return']

    def vcpu_threads(self):
        """{cpu index: host thread id}."""
        return {c['cpu-index']: c['thread-id']
                for c in self.qmp('query-cpus-fast')}

    # -- end ------------------------------------------------------------
    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise GuestError(f'QEMU still running after {timeout} s')

    def stderr_text(self):
        self.stderr.flush()
        with open(self.stderr.name, errors='replace') as f:
            return f.read()

    def trace_lines(self):
        if not self.trace_path or not os.path.exists(self.trace_path):
            return []
        with open(self.trace_path, errors='replace') as f:
            return f.read().splitlines()

    def close(self):
        self._kill()
        if self.stderr:
            self.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def parse_stats(lines):
    """'STATS cpu=N k=v ...' lines -> ({cpu: {k: v}}, {summary k: v})."""
    cpus, summary = {}, {}
    for line in lines:
        if not line.startswith('STATS '):
            continue
        kv = dict(w.split('=', 1) for w in line.split()[1:] if '=' in w)
        if 'cpu' in kv:
            cpus[int(kv['cpu'])] = kv
        else:
            summary = kv
    return cpus, summary
