"""Host-side helper for the pvsched KVM tests, the benchmarks and the demo.

Starts the patched QEMU with the bundled bare-metal guest through QEMU's
own machine class (python/qemu of the QEMU tree this series patches),
talks to the guest over the machine's console (guest/PROTOCOL.md) and to
QEMU over QMP (qemu.qmp), and reads vCPU thread scheduling attributes
from outside the QEMU process.

Every blocking call has a deadline, and PvschedVM.close() (called by the
context manager and by every failure path) kills QEMU and removes the
temporary directory, so a broken QEMU or guest can never hang a test run.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import asyncio
import ctypes
import functools
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import l1_evidence

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
# QEMU's own Python (its machine and QMP library, and the functional
# tests' qemu_test) from the QEMU tree this series patches.
QEMU_SRC = os.environ.get('PVSCHED_QEMU_SRC',
                          os.path.join(REPO, 'build', 'src'))
for _p in ('tests/functional', 'python'):
    if os.path.join(QEMU_SRC, _p) not in sys.path:
        sys.path.insert(0, os.path.join(QEMU_SRC, _p))

from qemu.machine import QEMUMachine  # noqa: E402
from qemu.qmp import ExecuteError  # noqa: E402
from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402

QEMU = os.environ.get('PVSCHED_QEMU',
                      os.path.join(REPO, 'build', 'qemu-system-x86_64'))
GUEST = os.environ.get('PVSCHED_GUEST',
                       os.path.join(REPO, 'build', 'guest', 'pvsched-guest.elf'))

DEFAULT_CPU = 'qemu64,kvm-pvsched=on'
DEFAULT_POLICY = 'mode=dynamic,boost-class=fifo,boost-priority=8'

# Bounded waits (seconds).  Generous for a loaded CI machine, small enough
# that a stuck guest fails the test instead of the whole run.
START_TIMEOUT = 30
LINE_TIMEOUT = 30
EXIT_TIMEOUT = 15

# What the isa-debug-exit guest makes QEMU exit with: (0 << 1) | 1 when
# every CHECK passed, (1 << 1) | 1 otherwise (guest/PROTOCOL.md).
EXIT_PASS = 1
EXIT_FAIL = 3

POLICY_NAMES = {0: 'SCHED_OTHER', 1: 'SCHED_FIFO', 2: 'SCHED_RR',
                3: 'SCHED_BATCH', 5: 'SCHED_IDLE', 6: 'SCHED_DEADLINE'}
RT_POLICIES = ('SCHED_FIFO', 'SCHED_RR', 'SCHED_DEADLINE')

# stderr lines a healthy run may print: chardev wait=on announcing itself,
# and the CPU model's features this (nested) host's KVM lacks (qemu64's pni
# here), which say nothing about pvsched.
EXPECTED_STDERR = [re.compile(r'info: QEMU waiting for connection on: '),
                   re.compile(r"warning: host doesn't support requested "
                              r'feature: ')]
ERROR_WORDS = re.compile(r'error|warning|assert|abort|fault|panic|crash|'
                         r'sanitizer', re.I)

WAIT_RE = re.compile(r'^WAIT (\S+) cpu=(\d+)$')
STATE_RE = re.compile(r'^STATE cpu=(\d+) status=(\S+) req=(\S+)$')
CHECK_RE = re.compile(r'^CHECK (\S+) (ok|FAIL)(?: (.*))?$')
DONE_RE = re.compile(r'^DONE pass=(\d+) fail=(\d+)$')
READY_RE = re.compile(r'^READY (.*)$')
QEMU_ENDED = l1_evidence.QEMU_ENDED


# A QMP command answered with an error; str() is QEMU's description,
# .error_class its class.
QMPError = ExecuteError


class GuestProtocolError(AssertionError):
    """The guest did not do what the test expected (reported as FAIL)."""


def _die_with_parent():
    """In the QEMU child: be killed if the test process dies (even by
    SIGKILL), so that no QEMU outlives an interrupted run."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def missing_prerequisites(qemu=None, guest=None):
    """List of reasons the KVM tests cannot run here (empty when they can).

    Callers must treat a non-empty list as a failure, never as a skip: a
    test run that silently did nothing would look green.
    """
    qemu = qemu or QEMU
    guest = guest or GUEST
    problems = []
    if not os.path.exists('/dev/kvm'):
        problems.append('/dev/kvm does not exist (KVM is required)')
    elif not os.access('/dev/kvm', os.R_OK | os.W_OK):
        problems.append('/dev/kvm is not readable and writable by this user')
    if not os.access(qemu, os.X_OK):
        problems.append(f'QEMU binary missing or not executable: {qemu} '
                        f'(set PVSCHED_QEMU)')
    if not os.path.isfile(guest):
        problems.append(f'guest kernel missing: {guest} (set PVSCHED_GUEST)')
    return problems


def qemu_args(scenario, append='', smp=2, cpu=DEFAULT_CPU,
              policy=DEFAULT_POLICY, device=True, extra=(), guest=None):
    """Everything on the QEMU command line except the serial/QMP plumbing.

    policy: the pvsched-policy properties after 'id=pol0,' (None: no object);
    device: add '-device pvsched,policy=pol0'.
    """
    args = ['-accel', 'kvm', '-cpu', cpu, '-smp', str(smp), '-m', '128M',
            '-no-reboot', '-nodefaults']
    if policy is not None:
        args += ['-object', 'pvsched-policy,id=pol0,' + policy]
    if device:
        args += ['-device', 'pvsched,policy=pol0']
    cmdline = f'scenario={scenario}' + (f' {append}' if append else '')
    args += ['-kernel', guest or GUEST, '-append', cmdline,
             '-device', 'isa-debug-exit,iobase=0xf4,iosize=4']
    return args + trace_args() + list(extra)


def trace_args():
    """For a look inside a run: PVSCHED_TRACE='pvsched_bound_*,...' turns
    those trace events on, with timestamps, into PVSCHED_TRACE_LOG (a
    file name, where QEMU puts its PID for %d; default: stderr)."""
    events = os.environ.get('PVSCHED_TRACE')
    if not events:
        return []
    args = ['-msg', 'timestamp=on']
    for e in events.split(','):
        args += ['-trace', e]
    log_file = os.environ.get('PVSCHED_TRACE_LOG')
    return args + (['-D', log_file] if log_file else [])


def run_startup(args, qemu=None, timeout=10):
    """Run QEMU for a negative start-up test: returns (exit code, stderr).

    Serial goes to a file and there is no QMP, so nothing waits for a
    client.  If QEMU is still running after `timeout` (it did *not* refuse
    to start), it is killed and the exit code is None.  Any guest serial
    output is appended to the returned stderr, so the caller can show what
    happened; use a scenario that blocks at a WAIT so that a QEMU that
    wrongly starts cannot also exit on its own.
    """
    tmp = tempfile.mkdtemp(prefix='pvsched-')
    try:
        serial = os.path.join(tmp, 'serial.log')
        with open(os.path.join(tmp, 'stderr'), 'w+') as err:
            proc = subprocess.Popen([qemu or QEMU] + list(args) +
                                    ['-display', 'none',
                                     '-serial', 'file:' + serial],
                                    stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err,
                                    preexec_fn=_die_with_parent)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            err.seek(0)
            text = err.read()
        if os.path.exists(serial) and os.path.getsize(serial):
            with open(serial, errors='replace') as f:
                text += '\n[the guest ran; its serial output:]\n' + f.read()
        return code, text
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _proc_sched(pid, tid):
    """policy and prio from /proc/<pid>/task/<tid>/sched (CONFIG_SCHED_DEBUG)."""
    vals = {}
    with open(f'/proc/{pid}/task/{tid}/sched') as f:
        for line in f:
            key, sep, val = line.partition(':')
            if sep and key.strip() in ('policy', 'prio'):
                vals[key.strip()] = int(val.strip())
    return vals['policy'], vals['prio']


def read_sched(pid, tid, tries=200):
    """(policy name, rt priority, nice) of thread `tid`, read from outside.

    Read through the syscalls and through /proc and cross-checked, so that
    a wrong reading from one of them cannot make a test pass.  /proc shows
    the effective priority, which priority inheritance raises while a
    higher thread waits on a lock this one holds (the BQL is PI with a
    pvsched-policy): such a reading is taken again, for a while.  So is
    one during which the thread changed (a boost between the syscalls and
    /proc): the syscalls, read again after /proc, disagree then.
    """
    for _ in range(tries - 1):
        try:
            return _read_sched(pid, tid)
        except (PiBoosted, Moving):
            time.sleep(0.001)
    return _read_sched(pid, tid)


@functools.lru_cache(maxsize=None)
def guest_symbols(elf=GUEST):
    """[(address, name)] of the bundled guest's functions, sorted."""
    try:
        out = subprocess.run(['nm', '-n', elf], capture_output=True,
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in 'tT':
            syms.append((int(f[0], 16), f[2]))
    return syms


def guest_symbolize(line):
    """An 'info registers' line with its EIP/RIP named: 'func+0x13'."""
    m = re.search(r'[ER]IP=([0-9a-f]+)', line)
    if not m:
        return line
    ip = int(m.group(1), 16)
    below = [(a, n) for a, n in guest_symbols() if a <= ip]
    if not below:
        return line
    addr, name = below[-1]
    return line + f'  <{name}+{ip - addr:#x}>'


HZ = os.sysconf('SC_CLK_TCK')


def threads_table(pid):
    """One line per thread of process pid: what it is doing and under
    which policy, for failure reports (a stuck vCPU: sleeping in the
    kernel, runnable but starved, or spinning?)."""
    lines = []
    for tid in sorted(map(int, os.listdir(f'/proc/{pid}/task'))):
        base = f'/proc/{pid}/task/{tid}'
        try:
            with open(f'{base}/comm') as f:
                comm = f.read().strip()
            with open(f'{base}/stat') as f:
                # After the comm: field 3 onwards; utime 14, stime 15,
                # guest_time 43 (in ticks; utime includes guest time).
                st = f.read().rsplit(')', 1)[1].split()
            state = st[0]
            utime, stime, guest = (int(st[i - 3]) for i in (14, 15, 43))
            with open(f'{base}/wchan') as f:
                wchan = f.read().strip() or '-'
            with open(f'{base}/schedstat') as f:
                run_ns, wait_ns, _ = map(int, f.read().split())
            policy = os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK
            prio = os.sched_getparam(tid).sched_priority
            nice = os.getpriority(os.PRIO_PROCESS, tid)
        except (OSError, ValueError):
            continue                    # the thread ended meanwhile
        lines.append(f'{tid:>7} {comm:<16} {state} {wchan:<24} '
                     f'{POLICY_NAMES.get(policy, policy)} rt={prio} '
                     f'nice={nice} cpu={run_ns / 1e9:.3f}s '
                     f'waited={wait_ns / 1e9:.3f}s '
                     # A spinning vCPU: in the guest, in QEMU or in KVM?
                     f'guest={guest / HZ:.2f}s qemu={(utime - guest) / HZ:.2f}s '
                     f'kernel={stime / HZ:.2f}s')
    return '\n'.join(lines)


class PiBoosted(AssertionError):
    """/proc's priority is above the thread's own: inherited, for now."""


class Moving(AssertionError):
    """The thread's attributes changed while they were being read."""


def _syscall_sched(tid):
    # sched_getscheduler() ORs in SCHED_RESET_ON_FORK, which pvsched sets on
    # every boost; /proc shows the bare policy.
    return (os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK,
            os.sched_getparam(tid).sched_priority,
            os.getpriority(os.PRIO_PROCESS, tid))


def _read_sched(pid, tid):
    before = _syscall_sched(tid)
    ppolicy, pprio = _proc_sched(pid, tid)
    policy, rtprio, nice = _syscall_sched(tid)
    if (policy, rtprio, nice) != before:
        raise Moving(f'thread {tid}: changed from {before} to '
                     f'{(policy, rtprio, nice)} while read')
    name = POLICY_NAMES.get(policy, f'policy{policy}')
    if name in ('SCHED_FIFO', 'SCHED_RR'):
        want_prio = 99 - rtprio          # kernel prio = MAX_RT_PRIO-1 - rt
    elif name == 'SCHED_DEADLINE':
        want_prio = -1
    else:
        want_prio = 120 + nice           # kernel prio = DEFAULT_PRIO + nice
    if ppolicy != policy or pprio != want_prio:
        raise (PiBoosted if ppolicy == policy and pprio < want_prio else
               AssertionError)(
            f'thread {tid}: syscalls say {name} rtprio={rtprio} nice={nice} '
            f'(kernel prio {want_prio}) but /proc/{pid}/task/{tid}/sched says '
            f'policy={ppolicy} prio={pprio}')
    return name, rtprio, nice


def fmt_sched(s):
    """'SCHED_FIFO 8' for RT, 'SCHED_BATCH nice 5' otherwise."""
    name, rtprio, nice = s
    if name in ('SCHED_FIFO', 'SCHED_RR'):
        return f'{name} {rtprio}'
    return f'{name} nice {nice}'


def qemu_wrapper(rtprio=None):
    """What QEMU runs under: killed with this process (setpriv).  With
    @rtprio, also as a host that grants RLIMIT_RTPRIO rather than
    CAP_SYS_NICE runs it (docs/system/pvsched.rst, Permissions): still
    root, but without CAP_SYS_NICE, with that limit.  Giving the limit
    needs CAP_SYS_RESOURCE."""
    wrapper = ['setpriv', '--pdeathsig', 'KILL']
    if rtprio is None:
        return wrapper
    return (['prlimit', f'--rtprio={rtprio}:{rtprio}', '--'] + wrapper +
            ['--inh-caps', '-sys_nice', '--bounding-set', '-sys_nice', '--'])


class GuestMachine(QEMUMachine):
    """QEMU's machine class with what every VM of ours wants: a private
    temporary directory, QEMU killed with this process (setpriv; even by
    SIGKILL, so that none outlives an interrupted run), the first serial
    port on the machine's console socket, and QEMU's output readable while
    it runs.  Use as a context manager or call close()."""

    def __init__(self, qemu, base_temp_dir=None, log_dir=None, rtprio=None,
                 **kwargs):
        self._tmp = tempfile.mkdtemp(prefix='pvsched-', dir=base_temp_dir)
        super().__init__(qemu, base_temp_dir=self._tmp,
                         log_dir=log_dir or self._tmp,
                         wrapper=qemu_wrapper(rtprio), **kwargs)
        self.set_machine('pc')
        self.set_console()

    def close(self):
        """Kill QEMU if still running and remove the temporary directory."""
        self.shutdown(hard=True)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __exit__(self, *exc):
        self.close()

    @property
    def pid(self):
        """QEMU's pid, also once it ended (get_pid() is None then)."""
        return self._popen.pid if self._popen else None

    def stderr(self):
        """QEMU's stderr (and stdout) so far."""
        if self._qemu_log_path is None:          # after shutdown
            return self.get_log() or ''
        with open(self._qemu_log_path, errors='replace') as f:
            return f.read()


class PvschedVM(GuestMachine):
    """One QEMU + guest run: the guest's serial protocol on the machine's
    console."""

    def __init__(self, scenario, append='', smp=2, cpu=DEFAULT_CPU,
                 policy=DEFAULT_POLICY, device=True, extra=(), paused=False,
                 qemu=None, guest=None, monitors=1, base_temp_dir=None,
                 log_dir=None, sock_dir=None, rtprio=None):
        super().__init__(qemu or QEMU, base_temp_dir, log_dir, rtprio,
                         qmp_timer=START_TIMEOUT)
        self.add_args(*qemu_args(scenario, append, smp, cpu, policy, device,
                                 extra, guest))
        # Further QMP monitors, for open_monitor(): a second client.  A
        # UNIX socket's path must be short: sock_dir, where the test's
        # temporary directory is deep.
        self.monitor_paths = [os.path.join(sock_dir or self._tmp,
                                           f'qmp{i}.sock')
                              for i in range(1, monitors)]
        for i, path in enumerate(self.monitor_paths, 1):
            self.add_args('-chardev', f'socket,id=qmp{i},path={path},'
                          'server=on,wait=off',
                          '-mon', f'chardev=qmp{i},mode=control')
        # Nothing the guest says before the test reads is lost: the
        # console is a socket pair QEMU gets at its start.
        if paused:
            self.add_args('-S')
        self.transcript = []     # every serial line, for failure messages
        self.checks = []         # (name, ok, detail)
        self.states = {}         # cpu -> (status, req), latest STATE line
        self.ready = None        # dict from the READY line
        self.done = None         # (pass, fail) from the DONE line
        self._seen_events = []   # every QMP event, in order
        self.eof = False
        self._reporting = False
        self._sbuf = b''
        self._serial = None
        try:
            self.launch()
            self._qmp.settimeout(LINE_TIMEOUT)
            self._serial = self.console_socket
        except BaseException:
            self.close()
            raise

    # ---- lifecycle -------------------------------------------------------

    def close(self):
        self._serial = None
        super().close()

    def unexpected_stderr(self):
        """stderr lines that look like errors, minus the expected ones."""
        return [l for l in self.stderr().splitlines()
                if ERROR_WORDS.search(l)
                and not any(p.search(l) for p in EXPECTED_STDERR)]

    def report(self):
        """Transcript, stderr and exit status, for assertion messages."""
        self._drain_serial()
        if self.eof and self.is_running():
            try:                 # a connection closed: QEMU may be exiting
                self._subp.wait(2)
            except subprocess.TimeoutExpired:
                pass
        code = self._subp.poll() if self._launched else self.exitcode()
        unread = self._sbuf.decode('ascii', 'replace')
        threads = ''
        if code is None:
            threads = ('\n--- QEMU threads ---\n' + threads_table(self.pid) +
                       self._cpu_registers() + l1_evidence.report(self.pid))
        # First, so that a report cut short (CI keeps only the head of a
        # long one) still says which of the guest's checks failed.
        failed = ''.join(f'\nFAILED guest check {n}: {d}'
                         for n, _, d in self.failed_checks())
        return (failed +
                '\n--- guest serial ---\n' + '\n'.join(self.transcript) +
                ('\n(not yet read:)\n' + unread if unread else '') +
                '\n--- QEMU stderr ---\n' + self.stderr() +
                '--- QEMU ' + ('still running' if code is None else
                               f'exit status {code}') + ' ---' + threads)

    def _cpu_registers(self):
        """Where each vCPU is, for a guest that stopped talking: a hung
        print and a spinning guest look alike from the serial alone.
        Best effort, and never from inside another report."""
        if self._reporting or self._qmp_connection is None or self.eof:
            return ''
        self._reporting = True
        try:
            self._qmp.settimeout(10)
            # internal-error: KVM_RUN failed (an entry the CPU refused).
            status = self.cmd('query-status')['status']
            regs = self.cmd('human-monitor-command', args_dict={
                'command-line': 'info registers -a'})
        except Exception as e:           # e.g. the BQL is never released
            status = '?'
            regs = f'(info registers failed: {str(e).splitlines()[0]})'
        finally:
            self._reporting = False
            if self._qmp_connection is not None:
                self._qmp.settimeout(LINE_TIMEOUT)
        keep = re.compile(r'^(CPU#|[ER]AX=|[ER]SI=|[ER]IP=|CR0=)')
        lines = [guest_symbolize(l) for l in regs.splitlines()
                 if keep.match(l) or l.startswith('(')]
        return (f'\n--- vCPU registers (run state: {status}) ---\n' +
                '\n'.join(lines))

    # ---- QMP ---------------------------------------------------------------

    def cmd(self, cmd, args_dict=None, conv_keys=None, **args):
        """QEMUMachine.cmd(): returns 'return', raises QMPError.  A QEMU
        that is gone, or a command without an answer in LINE_TIMEOUT,
        raises RuntimeError with the report."""
        try:
            return super().cmd(cmd, args_dict, conv_keys, **args)
        except QMPError:
            raise
        except Exception as e:       # the connection broke, or timed out
            if self._reporting:
                raise
            self.eof = True
            raise RuntimeError(f'QMP {cmd}: {type(e).__name__}: {e}' +
                               self.report()) from e

    @property
    def events(self):
        """Every QMP event received so far, in order."""
        if self._qmp_connection is not None:
            self._seen_events += self.get_qmp_events()
        return self._seen_events

    def wait_event(self, name, timeout=LINE_TIMEOUT, **data):
        """The first event called name whose data has these items,
        received before or within timeout seconds; raises on timeout.
        Unlike QEMUMachine.event_wait(), the event stays in events:
        tests count them."""
        def match(e):
            return e.get('event') == name and all(
                e.get('data', {}).get(k) == v for k, v in data.items())
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if match(e):
                    return e
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                self._seen_events.append(
                    self.get_qmp_event(wait=float(left)))
            except asyncio.TimeoutError:
                raise RuntimeError(f'timed out waiting for QMP event '
                                   f'{name} {data}' + self.report()) from None

    def open_monitor(self, i=1):
        """A client on QMP monitor i (1 .. monitors-1), independent of
        cmd(): for a second client, e.g. in another thread."""
        mon = QEMUMonitorProtocol(self.monitor_paths[i - 1])
        mon.connect()
        mon.settimeout(LINE_TIMEOUT)
        return mon

    def vcpu_tids(self):
        """{cpu-index: host thread id} from query-cpus-fast."""
        return {c['cpu-index']: c['thread-id']
                for c in self.cmd('query-cpus-fast')}

    def sched(self, tid):
        """(policy name, rt priority, nice) of a thread of this QEMU."""
        return read_sched(self.pid, tid)

    # ---- serial --------------------------------------------------------------

    def _readline(self, deadline):
        """Next serial line (without EOL), or None at EOF."""
        while b'\n' not in self._sbuf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._serial], [], [], left)[0]:
                raise GuestProtocolError('timed out waiting for the guest' +
                                         self.report())
            try:
                data = self._serial.recv(4096)
            except OSError:              # reset: treat as EOF
                data = b''
            if not data:
                self.eof = True
                if self._sbuf:           # last line without a newline
                    line, self._sbuf = self._sbuf, b''
                    return self._record(line)
                return None
            self._sbuf += data
        line, self._sbuf = self._sbuf.split(b'\n', 1)
        return self._record(line)

    def _drain_serial(self):
        """Buffer whatever serial output is already there, without waiting
        and without consuming it (for failure reports: the guest may have
        said why; a later read still sees every line)."""
        try:
            while (self._serial and not self.eof and
                   select.select([self._serial], [], [], 0)[0]):
                data = self._serial.recv(4096)
                if not data:
                    self.eof = True
                self._sbuf += data
        except OSError:
            self.eof = True

    def said(self, text):
        """Whether the guest has printed text so far (read or not)."""
        return self.said_count(text) > 0

    def said_count(self, text):
        """How many lines so far (read or not) contain text."""
        self._drain_serial()
        unread = self._sbuf.decode('ascii', 'replace').split('\n')
        return sum(text in ln for ln in self.transcript + unread)

    def _record(self, raw):
        line = raw.decode('ascii', 'replace').rstrip('\r')
        self.transcript.append(line)
        if m := STATE_RE.match(line):
            self.states[int(m[1])] = (m[2], m[3])
        elif m := CHECK_RE.match(line):
            self.checks.append((m[1], m[2] == 'ok', m[3] or ''))
        elif m := DONE_RE.match(line):
            self.done = (int(m[1]), int(m[2]))
        elif m := READY_RE.match(line):
            self.ready = dict(w.split('=', 1) for w in m[1].split() if '=' in w)
        return line

    def next_wait(self, timeout=LINE_TIMEOUT, stop_on_fail=False):
        """Read up to the next WAIT: returns (tag, cpu), or None after DONE.

        EOF without DONE is always an error; a CHECK FAIL is one when
        stop_on_fail (the tests want to stop at the first guest failure;
        the demo wants to show everything).
        """
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                raise GuestProtocolError('guest serial closed (EOF) before '
                                         'DONE' + self.report())
            if stop_on_fail and (m := CHECK_RE.match(line)) and m[2] == 'FAIL':
                raise GuestProtocolError(f'guest check failed: {line}' +
                                         self.report())
            if DONE_RE.match(line):
                return None
            if m := WAIT_RE.match(line):
                return m[1], int(m[2])

    def wait_for(self, tag, cpu, timeout=LINE_TIMEOUT):
        """Read until 'WAIT <tag> cpu=<cpu>'; fail on anything else first."""
        what = f'WAIT {tag} cpu={cpu}'
        got = self.next_wait(timeout, stop_on_fail=True)
        if got is None:
            raise GuestProtocolError(f'guest said DONE while the test '
                                     f'expected {what}' + self.report())
        if got != (tag, cpu):
            raise GuestProtocolError(f'expected {what}, guest sent WAIT '
                                     f'{got[0]} cpu={got[1]}' + self.report())

    def wait_line(self, prefix, timeout=LINE_TIMEOUT):
        """Read until a line that starts with prefix, and return it;
        a CHECK FAIL, DONE or EOF first is an error."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line is None or DONE_RE.match(line) or (
                    (m := CHECK_RE.match(line)) and m[2] == 'FAIL'):
                raise GuestProtocolError(f'expected a line starting with '
                                         f'{prefix!r}, guest sent '
                                         f'{line!r}' + self.report())
            if line.startswith(prefix):
                return line

    def go(self):
        """Let the guest continue past its WAIT."""
        self.send(b'g')

    def send(self, data):
        """Bytes to the guest's serial port."""
        self._serial.sendall(data)

    def finish(self, timeout=LINE_TIMEOUT):
        """Read to DONE, then wait for QEMU to exit; returns its exit code.

        A WAIT at this point means the test and the guest disagree about
        the scenario: fail instead of answering it.
        """
        got = self.next_wait(timeout)
        if got is not None:
            raise GuestProtocolError(f'expected DONE, guest sent WAIT '
                                     f'{got[0]} cpu={got[1]}' + self.report())
        return self.wait_exit()

    def wait_exit(self):
        """After DONE: QEMU's exit status (isa-debug-exit ends it)."""
        try:
            return self._subp.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise GuestProtocolError(f'QEMU still running {EXIT_TIMEOUT}s '
                                     f'after DONE' + self.report()) from None

    def failed_checks(self):
        return [c for c in self.checks if not c[1]]
