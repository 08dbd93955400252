"""Run the pvsched Linux test guest under the patched QEMU.

Shared by guest/linux/test.py and bench/linux/cyclictest.py.  The VM is
QEMU's own machine class (python/qemu, through pvsched_vm): the guest's
console is the machine's console socket, QMP qemu.qmp; the guest side
of the line protocol is guest/linux/initramfs/scenarios.sh.

Every blocking call has a deadline, and LinuxVM.close() (the context
manager calls it, also on any exception) kills QEMU and removes its
temporary directory.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import hashlib
import os
import re
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(REPO, 'tests', 'functional', 'pvsched'))
import pvsched_vm  # noqa: E402  (also puts QEMU's python/ on sys.path)
from qemu.qmp import ExecuteError  # noqa: E402
QEMU = os.environ.get('PVSCHED_QEMU',
                      os.path.join(REPO, 'build', 'qemu-system-x86_64'))
GUEST_DIR = os.environ.get('PVSCHED_LINUX_GUEST',
                           os.path.join(REPO, 'build', 'linux-guest'))
BUILD_SCRIPT = os.path.join(HERE, 'build-guest.sh')

# What any x86 KVM host can give; the pvsched CPUID bit is added per VM.
CPU_MODEL = 'qemu64'


class GuestError(AssertionError):
    """The guest or QEMU did not do what was expected in time."""


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


def guest_sources():
    """The files the guest is built from (a change means a rebuild)."""
    files = [BUILD_SCRIPT, os.path.join(HERE, 'initramfs', 'init'),
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
            for f in ('bzImage', 'initramfs.cpio.gz')]
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
    """(policy name, rt priority) of a thread, read from outside and
    cross-checked as the other KVM tests read it."""
    return pvsched_vm.read_sched(pid, tid)[:2]


def thread_cpu_ns(pid, tid):
    """CPU time of a thread (first field of schedstat, ns)."""
    with open(f'/proc/{pid}/task/{tid}/schedstat') as f:
        return int(f.read().split()[0])


# The one VM configuration of every test and benchmark run: two vCPUs,
# with the pvsched device and CPUID bit unless the benchmark's "vanilla"
# VM leaves both out.
SMP = 2
MEM = '256M'
SCENARIOS = os.path.join(HERE, 'initramfs', 'scenarios.sh')


class LinuxVM(pvsched_vm.GuestMachine):
    """One QEMU running the Linux guest, driven over its console.

    pvsched: the pvsched-policy properties (policy_string()), or False
    for a VM without the device and its CPUID bit (stock QEMU's view);
    trace: record pvsched_* trace events to a file; settings: shell
    variables for the scenario (e.g. {'MODARGS': 'keep_idle_boost=0'}).

    start() boots the guest (seconds under KVM), waits for /init to ask
    for its script, and sends initramfs/scenarios.sh with the scenario.
    """

    def __init__(self, scenario, pvsched=None, trace=False, settings=None,
                 qemu=QEMU, guest_dir=GUEST_DIR, log=None):
        self.scenario = scenario
        self.policy = (pvsched or policy_string(mode='off')
                       if pvsched is not False else None)
        self.settings = settings or {}
        self.guest_dir = guest_dir
        super().__init__(qemu)
        self.trace_path = (os.path.join(self._tmp, 'trace.log') if trace
                           else None)
        self.log = log
        self.boot_seconds = None
        self.serial_log = []
        self._buf = b''
        self.add_args(*self._vm_args())

    def _vm_args(self):
        cpu = CPU_MODEL + (',kvm-pvsched=on' if self.policy else '')
        args = ['-accel', 'kvm', '-cpu', cpu, '-smp', str(SMP),
                '-m', MEM, '-no-reboot', '-nodefaults',
                '-kernel', os.path.join(self.guest_dir, 'bzImage'),
                '-initrd', os.path.join(self.guest_dir, 'initramfs.cpio.gz'),
                '-append', 'console=ttyS0 loglevel=4 pvsched.scenario=host']
        if self.policy:
            args += ['-object', 'pvsched-policy,id=pol0,' + self.policy,
                     '-device', 'pvsched,policy=pol0']
        if self.trace_path:
            args += ['-trace', f'enable=pvsched_*,file={self.trace_path}']
        return args

    def start(self, boot_timeout=300):
        """Boot the guest until it waits for its script, and send it."""
        t0 = time.monotonic()
        self.launch()
        self._qmp.settimeout(10)
        self.expect(r'^WAIT script', boot_timeout)
        self.boot_seconds = time.monotonic() - t0
        self.send_script()

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
        sock = self.console_socket
        while b'\n' not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError('timed out waiting for the guest; last '
                                 'lines:\n  ' +
                                 '\n  '.join(self.serial_log[-15:]))
            r, _, _ = select.select([sock], [], [], min(left, 1))
            if not r and 'KVM internal error' in self.stderr():
                # QEMU pauses the VM and waits: say why at once.
                err = self.stderr()
                raise GuestError('KVM internal error (QEMU paused the '
                                 'VM):\n' +
                                 '\n'.join(ln for ln in err.splitlines()
                                           if ln.startswith(('KVM', 'emul',
                                                             'RIP', 'Code')))
                                 + '\nlast lines:\n  ' +
                                 '\n  '.join(self.serial_log[-15:]))
            if r:
                chunk = sock.recv(65536)
                if not chunk:
                    raise GuestError(f'QEMU exited ({self._subp.wait()}): '
                                     f'{self.stderr()[-2000:]}\n'
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
        self.console_socket.sendall(text.encode())

    # -- QMP ------------------------------------------------------------
    def cmd(self, cmd, args_dict=None, conv_keys=None, **args):
        """QEMUMachine.cmd(); an error is a GuestError, with QEMU's
        description."""
        try:
            return super().cmd(cmd, args_dict, conv_keys, **args)
        except ExecuteError as e:
            raise GuestError(f'QMP {cmd}: {e.error_class}: {e}') from e

    def vcpu_threads(self):
        """{cpu index: host thread id}."""
        return {c['cpu-index']: c['thread-id']
                for c in self.cmd('query-cpus-fast')}

    # -- end ------------------------------------------------------------
    def wait_exit(self, timeout):
        try:
            return self._subp.wait(timeout)
        except subprocess.TimeoutExpired:
            raise GuestError(f'QEMU still running after {timeout} s')

    def trace_lines(self):
        if not self.trace_path or not os.path.exists(self.trace_path):
            return []
        with open(self.trace_path, errors='replace') as f:
            return f.read().splitlines()


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
