#!/usr/bin/env python3
"""pvsched under libvirt: the example domain XML, end to end.

Installs libvirt if it is missing (Debian 12, bookworm-backports), applies
the narrowest host configuration that lets libvirt's unprivileged QEMU
boost its vCPU threads (docs/system/pvsched-libvirt.rst), starts the
libvirt daemons if they are not running, validates pvsched-domain.xml
(and that docs/system/pvsched-libvirt.rst shows it), checks that QEMU
refuses to start without the grant, defines and starts the domain with
virsh, checks that QEMU runs unprivileged with CAP_SYS_NICE only, checks `query-pvsched` and
`query-cpus-fast` through `virsh qemu-monitor-command`, drives the bundled
guest's `demo` scenario over its serial socket and checks at every WAIT that
the vCPU thread really is SCHED_FIFO 8 (boosted) or back to SCHED_OTHER,
then destroys and undefines the domain.

Whatever happens, it destroys and undefines the domain, puts back
/etc/libvirt/qemu.conf as it found it, and stops the daemons it started.
The file capability goes on a copy of QEMU that the test installs in its
own temporary directory: the build tree is never changed.  Every blocking step has a timeout
and a watchdog bounds the whole run.

Prints one line per check (PASS/FAIL/SKIP) and ends with exactly one line
`N passed, N failed, N skipped`; exits 0 only if nothing failed.  A missing
/dev/kvm, QEMU binary or guest is a failure, not a skip.

Run as root:  python3 tests/functional/pvsched/libvirt/test_libvirt.py
Environment:  PVSCHED_QEMU, PVSCHED_GUEST (as for the other KVM tests).

SPDX-License-Identifier: GPL-2.0-or-later
"""

import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import l1_evidence  # noqa: E402
import pvsched_vm  # noqa: E402  (failure reports, shared with the KVM tests)
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..', '..'))
QEMU = os.environ.get('PVSCHED_QEMU',
                      os.path.join(REPO, 'build', 'qemu-system-x86_64'))
GUEST = os.environ.get('PVSCHED_GUEST',
                       os.path.join(REPO, 'build', 'guest', 'pvsched-guest.elf'))
XML = os.path.join(HERE, 'pvsched-domain.xml')
DOC = os.path.join(REPO, 'docs', 'system', 'pvsched-libvirt.rst')

DOMAIN = 'pvsched-libvirt-test'     # not the example's name: never clobber
QEMU_CONF = '/etc/libvirt/qemu.conf'
URI = 'qemu:///system'
QEMU_NS = 'http://libvirt.org/schemas/domain/qemu/1.0'
BOOST = ('fifo', 8)                 # what pvsched-domain.xml asks for
CAP_SYS_NICE = 23
SCHED_RESET_ON_FORK = 0x40000000    # or-ed into sched_getscheduler()

APT_PKGS = ['libvirt-daemon-system', 'libvirt-clients',
            'libvirt-daemon-driver-qemu', 'libxml2-utils']
# Every cgroup v1 controller libvirt knows, less "cpu" (see rt_group_sched).
CGROUP_CONTROLLERS = ['cpuacct', 'cpuset', 'memory', 'devices', 'freezer',
                      'blkio', 'net_cls', 'perf_event']

WATCHDOG = 600          # seconds for the whole run, installation included
CMD_TIMEOUT = 60
LINE_TIMEOUT = 30
PIDFILE = f'/run/libvirt/qemu/{DOMAIN}.pid'


class Timeout(Exception):
    pass


def _watchdog(signum, frame):
    if signum == signal.SIGTERM:
        raise Timeout('terminated')
    raise Timeout(f'out of time (watchdog: {WATCHDOG} s for the test, '
                  '120 s for the cleanup)')


def run(cmd, timeout=CMD_TIMEOUT, **kw):
    """Run a command, capture its output; never raises on a non-zero exit."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, **kw)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(
            cmd, 124, e.stdout or '', f'timed out after {timeout} s')
    except OSError as e:
        return subprocess.CompletedProcess(cmd, 127, '', str(e))


def virsh(*args, timeout=CMD_TIMEOUT):
    return run(['virsh', '-c', URI] + list(args), timeout=timeout)


def out(p):
    """One line that says how a command ended, for failure details."""
    text = (p.stderr.strip() or p.stdout.strip()).replace('\n', ' | ')
    return f'exit {p.returncode}: {text[:600]}'


def qmp(cmd):
    """A QMP command through virsh; returns its 'return' value."""
    p = virsh('qemu-monitor-command', DOMAIN,
              json.dumps({'execute': cmd}), timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f'virsh qemu-monitor-command {cmd}: {out(p)}')
    reply = json.loads(p.stdout)
    if 'return' not in reply:
        raise RuntimeError(f'{cmd}: {reply.get("error")}')
    return reply['return']


class Results:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def check(self, name, ok, detail=''):
        word = 'PASS' if ok else 'FAIL'
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f'{word} {name}' + (f': {detail}' if detail else ''),
              flush=True)
        return ok

    def skip(self, name, why):
        self.skipped += 1
        print(f'SKIP {name}: {why}', flush=True)


def info(text):
    for line in text.splitlines():
        print(f'     {line}', flush=True)


# ---------------------------------------------------------------- host


def dpkg_installed(pkg):
    p = run(['dpkg-query', '-W', '-f=${Status}', pkg])
    return p.returncode == 0 and 'install ok installed' in p.stdout


def libvirt_daemon():
    """The daemon that serves qemu:///system: monolithic or modular."""
    for name in ('libvirtd', 'virtqemud'):
        for d in ('/usr/sbin', '/usr/bin'):
            if os.access(os.path.join(d, name), os.X_OK):
                return name, os.path.join(d, name)
    return None, None


def qemu_conf_user(text):
    """The user libvirt runs QEMU as (qemu.conf 'user', Debian's default)."""
    m = re.search(r'^[ \t]*user[ \t]*=[ \t]*"([^"]*)"', text, re.M)
    user = m.group(1) if m else 'libvirt-qemu'
    if user.startswith('+'):
        return pwd.getpwuid(int(user[1:])).pw_name
    return user


def rt_group_sched():
    """The cgroup v1 cpu controller's mount point if it does RT group
    scheduling (CONFIG_RT_GROUP_SCHED), else None.

    There, a cgroup that libvirt creates for a VM (machine/<vm>/vcpuN) has
    cpu.rt_runtime_us = 0, and sched_setattr(SCHED_FIFO) fails with EPERM
    in it whatever the thread's capabilities.  Debian 12's own kernel has no
    RT group scheduling (and uses cgroup v2), so this is None there.
    """
    with open('/proc/mounts') as f:
        for line in f:
            fields = line.split()
            if (len(fields) >= 4 and fields[2] == 'cgroup' and
                    'cpu' in fields[3].split(',') and
                    os.path.exists(os.path.join(fields[1],
                                                'cpu.rt_runtime_us'))):
                return fields[1]
    return None


def without_cpu_controller(text):
    """qemu.conf text with "cpu" out of cgroup_controllers, or None if
    it is out already."""
    setting = re.compile(r'^[ \t]*cgroup_controllers[ \t]*=[ \t]*\[[^\]]*\]',
                         re.M)
    m = setting.search(text)
    if m is None:
        names = CGROUP_CONTROLLERS
    else:
        names = re.findall(r'"([^"]+)"', m.group(0))
        if 'cpu' not in names:
            return None
        names = [n for n in names if n != 'cpu']
    line = ('# pvsched test_libvirt.py: no "cpu" controller (RT group '
            'scheduling)\ncgroup_controllers = [ ' +
            ', '.join(f'"{n}"' for n in names) + ' ]')
    if m is None:
        return text.rstrip('\n') + '\n\n' + line + '\n'
    return text[:m.start()] + line + text[m.end():]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(') ')[-1][0] != 'Z'
    except OSError:
        return False


def pid_from(pidfile):
    try:
        with open(pidfile) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if alive(pid) else None


def stop_pid(pid, timeout=20):
    """SIGTERM one process we started (by its pid), SIGKILL if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    time.sleep(0.5)
    return not alive(pid)


def wait_for_libvirt(timeout=90):
    deadline = time.monotonic() + timeout
    p = None
    while time.monotonic() < deadline:
        p = virsh('version', timeout=max(5, int(deadline - time.monotonic())))
        if p.returncode == 0:
            return True, p.stdout
        time.sleep(1)
    return False, out(p) if p else 'no answer'


def cap_eff(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('CapEff:'):
                return int(line.split()[1], 16)
    return None


def proc_uid(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('Uid:'):
                return int(line.split()[2])     # effective
    return None


# ----------------------------------------------------------------- test


class LibvirtTest:
    def __init__(self):
        self.r = Results()
        self.undo = []          # (name, fn): run in reverse order, always
        self.tmp = tempfile.mkdtemp(prefix='pvsched-libvirt-')
        self.serial_path = os.path.join(self.tmp, 'serial.sock')
        self.conf_changed = False
        self.qemu_user = 'libvirt-qemu'
        self.captured = None    # the query-pvsched reply at a boost

    # -- cleanup

    def cleanup(self):
        while self.undo:
            name, fn = self.undo.pop()
            try:
                detail = fn()
                self.r.check(f'cleanup: {name}', True, detail or '')
            except Exception as e:          # noqa: BLE001 - report, go on
                self.r.check(f'cleanup: {name}', False,
                             f'{type(e).__name__}: {e}')
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- steps; each returns False when the steps after it cannot run

    def prerequisites(self):
        problems = []
        if os.geteuid() != 0:
            problems.append('not root: run as root (apt-get, qemu.conf, '
                            'setcap, the libvirt daemons)')
        if not os.path.exists('/dev/kvm'):
            problems.append('/dev/kvm is missing: KVM is required')
        if not (os.path.isfile(QEMU) and os.access(QEMU, os.X_OK)):
            problems.append(f'QEMU binary missing: {QEMU} (run make)')
        if not os.path.isfile(GUEST):
            problems.append(f'guest kernel missing: {GUEST} (run make)')
        if not os.path.isfile(XML):
            problems.append(f'domain XML missing: {XML}')
        if problems:
            bar = '!' * 72
            print(f'{bar}\nFAILURE: the libvirt test cannot run:', flush=True)
            for p in problems:
                print(f'  - {p}')
            print(bar, flush=True)
        return self.r.check('prerequisites', not problems,
                            '; '.join(problems) or
                            f'root, /dev/kvm, {QEMU}, {GUEST}')

    def install(self):
        missing = [p for p in APT_PKGS if not dpkg_installed(p)]
        if not shutil.which('setcap') or not shutil.which('getcap'):
            missing.append('libcap2-bin')
        if missing:
            print(f'     installing {" ".join(missing)} (bookworm-backports)',
                  flush=True)
            p = run(['bash', os.path.join(REPO, 'scripts', 'install-deps.sh')],
                    timeout=400)
            if p.returncode != 0:
                return self.r.check('install libvirt', False,
                                    f'scripts/install-deps.sh: {out(p)}')
            env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
            p = run(['apt-get', 'install', '-y', '-q',
                     '--no-install-recommends', '-t', 'bookworm-backports']
                    + missing, timeout=400, env=env)
            if p.returncode != 0:
                return self.r.check('install libvirt', False, out(p))
        name, _ = libvirt_daemon()
        tools = [t for t in ('virsh', 'virt-xml-validate', 'xmllint',
                             'setcap', 'getcap') if not shutil.which(t)]
        ok = name is not None and not tools
        ver = run(['virsh', '--version']).stdout.strip()
        return self.r.check(
            'install libvirt', ok,
            (f'libvirt {ver}, daemon {name}' +
             (f' (installed {" ".join(missing)})' if missing else
              ' (already installed)')) if ok else
            f'still missing: daemon={name} tools={tools}')

    def validate_example(self):
        p = run(['virt-xml-validate', XML, 'domain'])
        return self.r.check('virt-xml-validate pvsched-domain.xml',
                            p.returncode == 0, out(p))

    def doc_shows_example(self):
        """The user guide shows the example inline (it must read on its
        own in the QEMU tree): it has to be this very XML."""
        with open(XML) as f:
            xml = f.read()
        want = xml[xml.index('<domain'):xml.index('</domain>') + 9]
        try:
            with open(DOC) as f:
                doc = f.read()
            block = doc[doc.index('.. code-block:: xml\n'):]
            block = block[block.index('<domain'):block.index('</domain>') + 9]
        except (OSError, ValueError) as e:
            return self.r.check('docs: pvsched-libvirt.rst shows the XML',
                                False, f'no XML block in {DOC}: {e}')
        got = '\n'.join(ln[2:] if ln.startswith('  ') else ln
                        for ln in block.split('\n'))
        return self.r.check('docs: pvsched-libvirt.rst shows the XML',
                            got == want, 'same as pvsched-domain.xml'
                            if got == want else
                            'differs from pvsched-domain.xml: update the doc')

    def configure_host(self):
        """The narrowest grant: CAP_SYS_NICE as a file capability on the
        QEMU binary (grant_cap(), later); qemu.conf untouched except, on RT
        group scheduling hosts only, the cpu cgroup controller."""
        ok = True
        with open(QEMU_CONF, 'rb') as f:
            conf = f.read()
        conf_mode = stat.S_IMODE(os.stat(QEMU_CONF).st_mode)
        self.qemu_user = qemu_conf_user(conf.decode())

        # 1. QEMU installed where the test owns it, as a packaged QEMU
        #    would be: the file capability goes on that copy, so the
        #    build tree is never changed, and it works where the build
        #    tree's filesystem has no file capabilities (9p in the L1 VM).
        #    Its firmware path is absolute, so the copy finds it.
        bindir = os.path.join(self.tmp, 'bin')
        os.makedirs(bindir)
        os.chmod(self.tmp, 0o755)
        self.binary = os.path.join(bindir, os.path.basename(QEMU))
        shutil.copy2(os.path.realpath(QEMU), self.binary)
        self.before_caps = ''

        # 2. RT group scheduling: keep QEMU's threads out of cpu cgroups
        #    that have no real-time runtime.
        mnt = rt_group_sched()
        new = without_cpu_controller(conf.decode()) if mnt else None
        if new is None:
            self.r.check('host: qemu.conf', True,
                         'unchanged' + (f' (cpu controller at {mnt} '
                                        'already unused)' if mnt else
                                        ' (no RT group scheduling)'))
        else:
            def restore_conf():
                with open(QEMU_CONF, 'wb') as f:
                    f.write(conf)
                os.chmod(QEMU_CONF, conf_mode)
                return f'{QEMU_CONF} restored'
            self.undo.append(('qemu.conf', restore_conf))
            with open(QEMU_CONF, 'w') as f:
                f.write(new)
            self.conf_changed = True
            line = [ln for ln in new.splitlines()
                    if ln.startswith('cgroup_controllers')][0]
            self.r.check('host: qemu.conf', True,
                         f'RT group scheduling ({mnt}/cpu.rt_runtime_us): '
                         f'{line}')

        # 3. /dev/kvm for the qemu user, as Debian's udev rule sets it
        #    (root:kvm 0660); only changed if it is not so already.
        st = os.stat('/dev/kvm')
        ok_kvm = run(['runuser', '-u', self.qemu_user, '--', 'test', '-r',
                      '/dev/kvm', '-a', '-w', '/dev/kvm']).returncode == 0
        if not ok_kvm:
            def restore_kvm():
                os.chown('/dev/kvm', st.st_uid, st.st_gid)
                os.chmod('/dev/kvm', stat.S_IMODE(st.st_mode))
                return f'/dev/kvm mode {stat.S_IMODE(st.st_mode):o}'
            self.undo.append(('/dev/kvm', restore_kvm))
            os.chown('/dev/kvm', 0, grp.getgrnam('kvm').gr_gid)
            os.chmod('/dev/kvm', 0o660)
            ok_kvm = run(['runuser', '-u', self.qemu_user, '--', 'test',
                          '-r', '/dev/kvm', '-a', '-w',
                          '/dev/kvm']).returncode == 0
        ok &= self.r.check(f'host: /dev/kvm usable by {self.qemu_user}',
                           ok_kvm, f'{stat.filemode(os.stat("/dev/kvm").st_mode)} '
                           f'group {grp.getgrgid(os.stat("/dev/kvm").st_gid).gr_name}')

        # 4. The qemu user must reach the binary and the kernel.
        p = run(['runuser', '-u', self.qemu_user, '--', 'test', '-x',
                 self.binary, '-a', '-r', GUEST])
        ok &= self.r.check(f'host: {self.qemu_user} can run QEMU and read '
                           'the guest', p.returncode == 0,
                           'yes' if p.returncode == 0 else
                           f'make every directory above {self.binary} and '
                           f'{GUEST} '
                           f'searchable (o+x) by {self.qemu_user}')
        return ok

    def start_daemons(self):
        name, path = libvirt_daemon()
        systemd = os.path.isdir('/run/systemd/system')
        if systemd:
            was_active = run(['systemctl', 'is-active', '--quiet',
                              f'{name}.service']).returncode == 0
            act = 'restart' if (self.conf_changed or not was_active) else None
            if act:
                p = run(['systemctl', act, f'{name}.service'])
                if p.returncode != 0:
                    return self.r.check(f'{name} running', False,
                                        f'systemctl {act}: {out(p)}')

            def systemd_undo():
                if not was_active:
                    p = run(['systemctl', 'stop', f'{name}.service'])
                    what = 'stopped'
                elif self.conf_changed:
                    p = run(['systemctl', 'restart', f'{name}.service'])
                    what = 'restarted with the restored qemu.conf'
                else:
                    return 'left running, as found'
                if p.returncode != 0:
                    raise RuntimeError(out(p))
                return f'{name}.service {what}'
            if act:
                self.undo.append((name, systemd_undo))
            how = f'systemd ({act or "already active"})'
        else:
            how = self.start_daemons_directly(name, path)
            if how is None:
                return False
        ok, text = wait_for_libvirt()
        if ok:
            lib = [ln for ln in text.splitlines() if 'library' in ln]
            text = (lib or text.strip().splitlines())[-1].strip()
        return self.r.check(f'{name} running', ok, f'{how}; {text}')

    def spawn(self, name, argv):
        """Start a daemon in the foreground as our own child, in the
        background; the undo step stops exactly that process."""
        log = open(os.path.join(self.tmp, f'{name}.log'), 'wb')
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        finally:
            log.close()

        def stop():
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            return f'{name} (pid {proc.pid}) stopped'
        self.undo.append((name, stop))
        return proc

    def daemon_log(self, name):
        try:
            with open(os.path.join(self.tmp, f'{name}.log')) as f:
                return f.read()[-800:].strip().replace('\n', ' | ')
        except OSError as e:
            return str(e)

    def start_daemons_directly(self, name, path):
        """No systemd (CI containers): start what is not running, ourselves,
        in the background, and stop exactly those processes at the end."""
        how = []
        # virtlogd: libvirt writes the QEMU log through it.
        if pid_from('/run/virtlogd.pid') is None:
            proc = self.spawn('virtlogd', ['virtlogd'])
            how.append(f'started virtlogd (pid {proc.pid})')
        pidfile = f'/run/{name}.pid'
        old = pid_from(pidfile)
        if old is not None and self.conf_changed:
            # qemu.conf is read at start-up only: restart the running
            # daemon now, and again at the end with the restored file.
            if not stop_pid(old):
                self.r.check(f'{name} running', False,
                             f'cannot restart {name} (pid {old})')
                return None
            how.append(f'stopped the running {name} (pid {old}) to '
                       'reload qemu.conf')

            def restart():
                p = run([path, '-d'])
                if p.returncode != 0:
                    raise RuntimeError(out(p))
                return f'{name} -d started again, as it was running before'
            self.undo.append((f'{name} restart', restart))
        if old is None or self.conf_changed:
            proc = self.spawn(name, [path])
            time.sleep(0.5)
            if proc.poll() is not None:
                self.r.check(f'{name} running', False,
                             f'{name} exited with {proc.returncode}: '
                             f'{self.daemon_log(name)}')
                return None
            how.append(f'started {name} (pid {proc.pid})')
        else:
            how.append(f'{name} already running (pid {old})')
        return ', '.join(how)

    def check_needs_grant(self, path):
        """Without the file capability, libvirt's QEMU must refuse to start
        and say why: the grant below is needed, and the error reaches the
        libvirt user."""
        run(['setcap', '-r', self.binary])
        self.forget_leftover()
        p = virsh('define', path)
        if p.returncode != 0:
            return self.r.check('without CAP_SYS_NICE: QEMU refuses to start',
                                False, f'virsh define: {out(p)}')
        try:
            p = virsh('start', '--paused', DOMAIN, timeout=120)
        finally:
            self.destroy()
            virsh('undefine', DOMAIN)
        msg = [ln.strip() for ln in p.stderr.splitlines() if 'needs' in ln]
        return self.r.check('without CAP_SYS_NICE: QEMU refuses to start',
                            p.returncode != 0 and
                            'CAP_SYS_NICE or RLIMIT_RTPRIO' in p.stderr,
                            (msg[0] if msg else out(p))[:400])

    def grant_cap(self):
        p = run(['setcap', 'cap_sys_nice+ep', self.binary])
        now = run(['getcap', self.binary]).stdout.strip()
        return self.r.check('host: setcap cap_sys_nice+ep on QEMU',
                            p.returncode == 0 and
                            now.endswith('cap_sys_nice=ep'),
                            f'{now or out(p)} (before: '
                            f'{self.before_caps or "none"})')

    def libvirt_accepts_qemu(self):
        """libvirt probes the binary (-machine none -qmp, many query-*)."""
        p = virsh('domcapabilities', '--emulatorbin', self.binary,
                  '--virttype', 'kvm', '--arch', 'x86_64', timeout=120)
        m = re.search(r'<machine>([^<]+)</machine>', p.stdout)
        return self.r.check('libvirt accepts the QEMU build (domcapabilities)',
                            p.returncode == 0 and m is not None,
                            f'machine {m.group(1)}' if m else
                            f'libvirt could not probe {self.binary}: '
                            f'{out(p)}')

    def domain_xml(self):
        ET.register_namespace('qemu', QEMU_NS)
        tree = ET.parse(XML)
        dom = tree.getroot()
        dom.find('name').text = DOMAIN
        dom.find('devices/emulator').text = self.binary
        dom.find('os/kernel').text = os.path.abspath(GUEST)
        dom.find("devices/serial[@type='unix']/source").set(
            'path', self.serial_path)
        path = os.path.join(self.tmp, 'domain.xml')
        tree.write(path, encoding='unicode')
        p = run(['virt-xml-validate', path, 'domain'])
        self.r.check('virt-xml-validate the test domain', p.returncode == 0,
                     out(p))
        return path

    def forget_leftover(self):
        if virsh('dominfo', DOMAIN).returncode == 0:
            virsh('destroy', DOMAIN)
            virsh('undefine', DOMAIN)
            info(f'removed a leftover domain {DOMAIN}')

    def qemu_log(self, lines=15):
        try:
            with open(f'/var/log/libvirt/qemu/{DOMAIN}.log') as f:
                return ''.join(f.readlines()[-lines:])
        except OSError as e:
            return str(e)

    @staticmethod
    def destroy():
        pid = pid_from(PIDFILE)
        if virsh('domstate', DOMAIN).stdout.strip() in ('shut off', ''):
            if pid is None:
                return f'{DOMAIN} not running'
        else:
            p = virsh('destroy', DOMAIN)
            if p.returncode == 0:
                return f'{DOMAIN} destroyed'
            if pid is None:
                raise RuntimeError(out(p))
        # libvirt lost it: end the QEMU it started for this test.
        stop_pid(pid, timeout=10)
        if alive(pid):
            raise RuntimeError(f'QEMU pid {pid} of {DOMAIN} still running')
        return f'{DOMAIN}: QEMU pid {pid} killed'

    def define_and_start(self, path):
        self.forget_leftover()
        p = virsh('define', path)
        if not self.r.check(f'virsh define {DOMAIN}', p.returncode == 0,
                            out(p)):
            return None

        def undefine():
            if virsh('dominfo', DOMAIN).returncode != 0:
                return f'{DOMAIN} not defined'
            p = virsh('undefine', DOMAIN)
            if p.returncode != 0:
                raise RuntimeError(out(p))
            return f'{DOMAIN} undefined'
        self.undo.append(('undefine', undefine))

        # Registered before the start, so that an interruption while virsh
        # start runs cannot leave a QEMU behind.
        self.undo.append(('destroy', self.destroy))
        # Paused: the test connects to the serial socket before the guest
        # can print anything.
        p = virsh('start', '--paused', DOMAIN, timeout=120)
        if not self.r.check(f'virsh start --paused {DOMAIN}',
                            p.returncode == 0, out(p)):
            info('QEMU log tail:\n' + self.qemu_log())
            return None
        pid = pid_from(PIDFILE)
        if pid is None:
            self.r.check('QEMU process', False, 'no pid file')
            return None
        return pid

    def check_process(self, pid):
        uid, caps = proc_uid(pid), cap_eff(pid)
        user = pwd.getpwuid(uid).pw_name
        self.r.check('QEMU is unprivileged with CAP_SYS_NICE only',
                     uid != 0 and caps == 1 << CAP_SYS_NICE,
                     f'pid {pid} runs as {user} (uid {uid}), effective '
                     f'capabilities {caps:#x} (cap_sys_nice = '
                     f'{1 << CAP_SYS_NICE:#x})')
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            argv = f.read().split(b'\0')
        sandbox = [a.decode() for i, a in enumerate(argv)
                   if i and argv[i - 1] == b'-sandbox']
        if sandbox and 'resourcecontrol=deny' in sandbox[0]:
            self.r.check('QEMU runs in libvirt\'s seccomp sandbox', True,
                         f'-sandbox {sandbox[0]}')
        else:
            self.r.skip('QEMU runs in libvirt\'s seccomp sandbox',
                        'qemu.conf seccomp_sandbox is off on this host')

    def check_query(self, pid):
        try:
            pv = qmp('query-pvsched')
            cpus = qmp('query-cpus-fast')
        except (RuntimeError, ValueError) as e:
            self.r.check('query-pvsched', False, str(e))
            return None
        pol = pv.get('policy', {})
        vcpus = {v['cpu-index']: v for v in pv.get('vcpus', [])}
        self.r.check('query-pvsched: present, policy from the XML',
                     pv.get('present') is True and
                     (pol.get('boost-class'), pol.get('boost-priority')) ==
                     BOOST and pol.get('mode') == 'dynamic',
                     f'present={pv.get("present")} policy={pol}')
        self.r.check('query-pvsched: one entry per vCPU',
                     sorted(vcpus) == [0, 1] and
                     all(v['status'] == 'disabled' for v in vcpus.values()),
                     ', '.join(f'cpu {i}: {v["status"]}'
                               for i, v in sorted(vcpus.items())))
        fast = {c['cpu-index']: c['thread-id'] for c in cpus}
        mine = {i: v['thread-id'] for i, v in vcpus.items()}
        tasks = set(int(t) for t in os.listdir(f'/proc/{pid}/task'))
        self.r.check('query-pvsched thread ids = query-cpus-fast',
                     mine == fast and bool(mine) and
                     set(mine.values()) <= tasks,
                     f'query-pvsched {mine}, query-cpus-fast {fast}, '
                     f'threads of QEMU pid {pid}')
        return mine

    def hang_report(self, pid):
        """Where the guest is, for one that stopped talking: its QEMU's
        threads (a vCPU spinning in the guest, or asleep?) and each vCPU's
        registers, the instruction pointer named from the guest's ELF."""
        info('--- QEMU threads ---\n' + pvsched_vm.threads_table(pid))
        p = virsh('qemu-monitor-command', DOMAIN, '--hmp',
                  'info registers -a', timeout=30)
        keep = re.compile(r'^(CPU#|[ER]AX=|[ER]SI=|[ER]IP=|CR0=)')
        regs = [pvsched_vm.guest_symbolize(l) for l in p.stdout.splitlines()
                if keep.match(l)]
        st = virsh('domstate', DOMAIN, '--reason', timeout=30)
        info(f'--- vCPU registers (domstate: {out(st)}) ---\n' +
             ('\n'.join(regs) or out(p)))
        info('--- QEMU log ---\n' + self.qemu_log() +
             l1_evidence.report(pid))

    def drive_guest(self, tids, pid):
        """Resume, follow the guest to every WAIT and check the vCPU."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(10)
            sock.connect(self.serial_path)
        except OSError as e:
            self.r.check('connect to the serial socket', False, str(e))
            return
        with sock:
            p = virsh('resume', DOMAIN)
            if not self.r.check('virsh resume', p.returncode == 0, out(p)):
                return
            buf = b''
            done = None
            waits = 0
            deadline = time.monotonic() + LINE_TIMEOUT
            while done is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    silent = (f'nothing new for {LINE_TIMEOUT} s '
                              f'(last: {buf[-200:]!r})')
                    self.hang_report(pid)
                    self.r.check('guest output', False, silent)
                    return
                sock.settimeout(left)
                try:
                    data = sock.recv(4096)
                except socket.timeout:
                    continue
                if not data:
                    self.r.check('guest output', False,
                                 'serial socket closed before DONE')
                    return
                buf += data
                while b'\n' in buf and done is None:
                    raw, buf = buf.split(b'\n', 1)
                    line = raw.decode(errors='replace').strip()
                    deadline = time.monotonic() + LINE_TIMEOUT
                    if re.match(r'^(CHECK \S+ FAIL|DONE|READY)', line):
                        info(f'guest: {line}')
                    m = re.match(r'^WAIT (\S+) cpu=(\d+)$', line)
                    if m:
                        waits += 1
                        self.check_wait(m.group(1), int(m.group(2)), tids)
                        sock.sendall(b'g')
                    m = re.match(r'^DONE pass=(\d+) fail=(\d+)$', line)
                    if m:
                        done = (int(m.group(1)), int(m.group(2)))
            self.r.check('guest: demo scenario passed',
                         done[1] == 0 and done[0] > 0 and waits == 4,
                         f'guest checks: {done[0]} passed, {done[1]} '
                         f'failed; {waits} WAITs (4 expected)')

    def check_wait(self, tag, cpu, tids):
        want_boost = tag == 'boosted'
        name = f'WAIT {tag} cpu={cpu}: vCPU thread ' + (
            'SCHED_FIFO 8' if want_boost else 'back to SCHED_OTHER')
        try:
            pv = qmp('query-pvsched')
        except (RuntimeError, ValueError) as e:
            self.r.check(name, False, str(e))
            return
        v = {x['cpu-index']: x for x in pv['vcpus']}.get(cpu, {})
        sched = v.get('sched', {})
        tid = tids.get(cpu)
        # The thread as the host kernel sees it, read from outside QEMU.
        try:
            pol = os.sched_getscheduler(tid)
            host = (pol & ~SCHED_RESET_ON_FORK,
                    os.sched_getparam(tid).sched_priority,
                    bool(pol & SCHED_RESET_ON_FORK))
        except (OSError, TypeError) as e:
            host = (None, str(e), None)
        names = {os.SCHED_OTHER: 'SCHED_OTHER', os.SCHED_FIFO: 'SCHED_FIFO',
                 os.SCHED_RR: 'SCHED_RR'}
        if want_boost:
            # A boost always sets SCHED_FLAG_RESET_ON_FORK.
            ok = (v.get('status') == 'boosted' and
                  (sched.get('policy'), sched.get('priority')) == BOOST and
                  host == (os.SCHED_FIFO, BOOST[1], True))
            if self.captured is None and ok:
                # As a user sees it (docs/system/pvsched-libvirt.rst).
                self.captured = virsh('qemu-monitor-command', DOMAIN,
                                      '--pretty', '{"execute":'
                                      '"query-pvsched"}').stdout.strip()
        else:
            ok = (v.get('status') == 'normal' and
                  sched.get('policy') == 'other' and
                  host == (os.SCHED_OTHER, 0, False))
        detail = (f'status {v.get("status")}, query-pvsched sched '
                  f'{sched.get("policy")} {sched.get("priority")}; host: '
                  f'thread {tid} {names.get(host[0], host[0])} {host[1]}'
                  + (', reset-on-fork' if host[2] else ''))
        if v.get('last-error'):
            detail += f', last-error: {v["last-error"]}'
            if 'not permitted' in v['last-error']:
                detail += (' (QEMU lacks CAP_SYS_NICE, or the thread is in '
                           'a cgroup without RT runtime, or AppArmor denies '
                           'sys_nice: see docs/system/pvsched-libvirt.rst)')
        self.r.check(name, ok, detail)

    def stop_domain(self):
        p = virsh('destroy', DOMAIN)
        self.r.check(f'virsh destroy {DOMAIN}', p.returncode == 0, out(p))
        p = virsh('undefine', DOMAIN)
        gone = virsh('dominfo', DOMAIN).returncode != 0
        self.r.check(f'virsh undefine {DOMAIN}', p.returncode == 0 and gone,
                     out(p))

    def main(self):
        def stop(why):
            info(f'stopping here: the remaining checks need {why}')
        if not self.prerequisites():
            return stop('the prerequisites')
        if not self.install():
            return stop('libvirt')
        self.validate_example()
        self.doc_shows_example()
        if not self.configure_host():
            return stop('the host configuration')
        if not self.start_daemons():
            return stop('the libvirt daemon')
        if not self.libvirt_accepts_qemu():
            return stop('libvirt to accept this QEMU')
        path = self.domain_xml()
        self.check_needs_grant(path)
        if not self.grant_cap():
            return stop('CAP_SYS_NICE on the QEMU binary')
        pid = self.define_and_start(path)
        if pid is None:
            return stop('a running domain')
        self.check_process(pid)
        tids = self.check_query(pid)
        if tids:
            self.drive_guest(tids, pid)
        if self.captured is not None:
            print(f"     virsh qemu-monitor-command {DOMAIN} --pretty "
                  """'{"execute":"query-pvsched"}' while vCPU 0 was """
                  'boosted:')
            info(self.captured)
        self.stop_domain()


def main():
    signal.signal(signal.SIGALRM, _watchdog)
    signal.signal(signal.SIGTERM, _watchdog)
    signal.alarm(WATCHDOG)
    t = LibvirtTest()
    try:
        t.main()
    except Exception as e:      # noqa: BLE001 - any error is a failure
        t.r.check('test', False, f'{type(e).__name__}: {e}')
    finally:
        signal.alarm(0)
        signal.alarm(120)       # cleanup is bounded too
        try:
            t.cleanup()
        except Timeout as e:
            t.r.check('cleanup', False, str(e))
        signal.alarm(0)
    r = t.r
    if r.passed + r.failed == 0:
        r.check('test', False, 'ran no check')
    print(f'{r.passed} passed, {r.failed} failed, {r.skipped} skipped',
          flush=True)
    return 0 if r.failed == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
