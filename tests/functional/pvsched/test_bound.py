"""KVM test: the boost bound holds whatever the guest does.

(a) a guest that BOOSTs and then spins without a single exit is unboosted
    after max-boost-us of CPU time plus at most one host tick (two in
    the L1 VM: OVERRUN_NS);
(b) a rogue guest that keeps BOOST and exits regularly, with its vCPU
    thread and a CPU hog pinned to the same host CPU, leaves the hog at
    least 40% of that CPU (without the bound: what RT throttling leaves);
(c) the guest sees THROTTLED, and management gets PVSCHED_THROTTLED;
(d) a guest that goes on asking BOOST without an exit is boosted again
    when the cooldown ends (the main loop kicks it).
Every figure asserted is CPU time from the kernel, never wall time, and
none is QEMU's own account: (a) brackets the boost in the vCPU thread's
CPU time (/proc/<pid>/task/<tid>/schedstat) from outside QEMU.

SPDX-License-Identifier: GPL-2.0-or-later
"""

import contextlib
import ctypes
import os
import subprocess
import sys
import threading
import time

import pvsched_vm
from pvsched_test import PvschedTest

BOUND_US = 3000
BOUNDED = ('mode=dynamic,boost-class=fifo,boost-priority=8,'
           f'max-boost-us={BOUND_US},cooldown-us=27000')
# The spin guest checks the doorbell's BOOST against the bound.
SPIN_BOUND = f'bound_us={BOUND_US}'
TICK_NS = 4_000_000             # HZ=250: one host tick
# How far past max-boost-us a boost may run: one host tick (the CPU
# clock's granularity) where KVM is the host's.  In the L1 VM (issue 12)
# every timer interrupt and every kick is a nested exit that TCG
# emulates, and L1 charges the time its host takes its CPU away (it has
# no steal clock) to the thread it was running.  Traced there
# (pvsched_bound_kick, pvsched_status), the main loop's 3 ms bound check
# ran 0.5-2.4 ms late and its kick took about 1 ms more of the vCPU's
# CPU time to land: 5-6 ms per boost on an idle host, 8.2 ms in a CI run
# (test_bound), 9.6 ms with a build running on the host.  With the main
# loop stopped, the backstop's tick comes that late too: 4-9.4 ms in 27
# runs, 12 of them with a CPU hog on the host.  Two ticks there: still a
# small fraction of what an unbounded boost would take.  L1's CPUs also
# stand still now and then, their time charged to whatever ran there: a
# boost during which the vCPU's CPU missed timer ticks measures nothing
# and is measured again (BoostWatch.stalled()).
OVERRUN_NS = TICK_NS * (2 if os.environ.get('PVSCHED_IN_L1') else 1)
# A run whose sampler was held off measures nothing (below) and is run
# again; in a clean run in L1, with a build on the host, 3 in a row were.
MEASURE_ATTEMPTS = 5
HOG = 'while True: pass'


def local_timer_ticks(fd, cpu):
    """The local timer interrupts CPU cpu has taken: its column of the LOC
    line of /proc/interrupts (fd, open on it)."""
    data = os.pread(fd, 1 << 16, 0)
    return int(data[data.index(b'LOC:'):].split()[1 + cpu])


def cpu_ns(pid, tid=None):
    """utime+stime of a process or thread, in ns (from /proc, in ticks)."""
    path = f'/proc/{pid}/stat' if tid is None else \
        f'/proc/{pid}/task/{tid}/stat'
    with open(path) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks * 1_000_000_000 // os.sysconf('SC_CLK_TCK')


class BoostWatch(threading.Thread):
    """Samples a thread's policy, and its CPU time on either side of that.

    CPU time is the kernel's sum_exec_runtime, the first field of
    /proc/<pid>/task/<tid>/schedstat, in ns: brought up to date whenever
    the thread is switched out, as it is for every sample (below).

    A sample (c0, fifo, c1) says: the thread had c0 ns of CPU time before
    its policy was read, and c1 after.  A boost (FIFO) is bracketed by the
    samples around its start and its end: it began after the last
    non-FIFO sample's c0 and before the first FIFO sample's c1, and ended
    before the next non-FIFO sample's c1.  While it lasts, the sampler is
    runnable and real-time (below): the vCPU, if not FIFO, could not have
    run before that sample's c0.  So the CPU time the boost lasted is at
    least lower() and at most upper().

    A boost lasts 3 ms of CPU time.  To bracket it closely however slow a
    turn of this loop is (in the L1, say), the sampler runs on the vCPU's
    CPU: the vCPU gains no CPU time while a sample is taken (c0 == c1).
    Until the boost, it runs above it, and about one short sleep's worth
    of the vCPU's CPU time passes between two samples.

    Once the boost is seen, the sampler drops below it and samples without
    sleeping: it runs again the moment the vCPU stops being FIFO (or
    blocks), so the end is bracketed as closely, and it takes none of the
    boost's CPU meanwhile.  It must not: the kernel checks a CPU-time
    timer (the bound's backstop) only at a tick that finds the vCPU on
    its CPU, and a sampler taking every 0.5 ms a turn that costs about as
    much in the L1 took half the ticks: the backstop fired one or two
    ticks late (boosts of 9-13 ms of CPU time), seen in CI.

    ticks: the local timer interrupts the vCPU's CPU took from the first
    FIFO sample to the first one after the boost (stalled() says why).
    """

    PRIORITY = 50               # above the boost (8) and the main loop (9)
    QUIET_PRIORITY = 1          # below the boost, above SCHED_OTHER
    # Short enough to bracket a 3 ms boost closely, long enough to leave
    # the vCPU most of its CPU before the boost (a tight loop would make
    # the kernel throttle real-time tasks on that CPU).
    SLEEP_S = 0.0005

    def __init__(self, pid, tid, cpu):
        super().__init__(daemon=True)
        self.pid, self.tid, self.cpu = pid, tid, cpu
        self.samples = []
        self.ticks = []
        self.done = threading.Event()

    def run(self):
        os.sched_setaffinity(0, {self.cpu})
        os.sched_setscheduler(0, os.SCHED_FIFO,
                              os.sched_param(self.PRIORITY))
        self.fd = fd = os.open(
            f'/proc/{self.pid}/task/{self.tid}/schedstat', os.O_RDONLY)
        irqs = os.open('/proc/interrupts', os.O_RDONLY)
        quiet = False
        try:
            while not self.done.is_set():
                c0 = int(os.pread(fd, 128, 0).split()[0])
                # A boost sets SCHED_RESET_ON_FORK, which is or'ed in.
                policy = os.sched_getscheduler(self.tid)
                c1 = int(os.pread(fd, 128, 0).split()[0])
                fifo = policy & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
                self.samples.append((c0, fifo, c1))
                # At the first boost's first sample, and the one after it.
                if len(self.ticks) == (0 if fifo else 1):
                    self.ticks.append((local_timer_ticks(irqs, self.cpu),
                                       time.monotonic_ns()))
                if not self.sampled(fifo):
                    break
                if fifo != quiet:
                    quiet = fifo
                    prio = self.QUIET_PRIORITY if quiet else self.PRIORITY
                    os.sched_setscheduler(0, os.SCHED_FIFO,
                                          os.sched_param(prio))
                if not quiet:
                    time.sleep(self.SLEEP_S)
        finally:
            os.close(irqs)
            os.close(fd)
            self.finish()

    def sampled(self, fifo):
        """After each sample, on this thread; False ends the sampling."""
        return True

    def finish(self):
        """When the sampling ends, on this thread."""

    def stop(self):
        self.done.set()
        self.join()

    def boost(self):
        """Indices of the first and last FIFO sample of the first boost."""
        fifo = [i for i, s in enumerate(self.samples) if s[1]]
        if not fifo:
            return None
        first = last = fifo[0]
        while last + 1 < len(self.samples) and self.samples[last + 1][1]:
            last += 1
        assert 0 < first and last + 1 < len(self.samples), \
            'the boost is not bracketed by samples'
        return first, last

    def lower(self):
        first, last = self.boost()
        return self.samples[last + 1][0] - self.samples[first][2]

    def upper(self):
        first, last = self.boost()
        return self.samples[last + 1][2] - self.samples[first - 1][0]

    def stalled(self):
        """Why the boost's CPU time measures nothing, or None.

        A CPU that runs takes a timer tick every TICK_NS: from the first
        FIFO sample to the first one after the boost, the vCPU's CPU took
        at least one per TICK_NS of the wall time between them.  Fewer:
        it stood still for a tick or more, and that time was charged to
        the vCPU anyway.  In the L1 VM that is its CPU stopped by its host
        (L1 has no steal clock): seen there for 4-10 ms, one to two times
        a second, with or without a load on the host (a spinning CPU's
        ticks, watched from the other CPU), and in a soak as a boost of
        11.0 ms against 11 ms allowed; in 15 runs after this check, as
        boosts of 8.2-14.7 ms with one tick or more missing."""
        (n0, t0), (n1, t1) = self.ticks
        if n1 - n0 >= (t1 - t0) // TICK_NS:
            return None
        return (f'the vCPU\'s CPU {self.cpu} took {n1 - n0} timer ticks in '
                f'the {(t1 - t0) / 1e6:.1f} ms the boost ran '
                f'({self.lower() / 1e6:.1f} ms of its CPU time), fewer than '
                f'one per {TICK_NS / 1e6:.0f} ms: it stood still meanwhile '
                f'and the vCPU was charged for it')


class MainLoopStopper(BoostWatch):
    """A BoostWatch that stops QEMU's main loop as soon as the boost starts.

    Only the main thread (tid == pid) stops, in a ptrace stop
    (PTRACE_SEIZE, PTRACE_INTERRUPT): the vCPU threads run on, and so
    does the boost, now with nothing in QEMU's main loop to police it.
    The main loop blocks like this in real life too: traced in the L1
    during test_storm, it slept 1.2 and 1.6 s in mmap(), waiting for
    mmap_lock, which a SCHED_OTHER QEMU thread held for a page fault while
    the boosted vCPUs and their hogs starved it (an rwsem has no priority
    inheritance).  ptrace requests must come from the tracer thread, so
    all of them are made here, on the sampler thread.
    The main loop stays stopped until the boost ends or has run CAP_NS of
    CPU time; stopped_at is then the CPU time of the vCPU thread when the
    main loop was seen stopped.
    """

    CAP_NS = 500_000_000
    PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_DETACH = 0x4206, 0x4207, 17
    WALL = 0x40000000

    def __init__(self, pid, tid, cpu):
        super().__init__(pid, tid, cpu)
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int,
                                     ctypes.c_void_p, ctypes.c_void_p]
        self.stopped_at = None
        self.traced = False

    def ptrace(self, req):
        if self.libc.ptrace(req, self.pid, None, None) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f'ptrace({req:#x}) on QEMU\'s main thread: '
                          f'{os.strerror(err)}')

    def sampled(self, fifo):
        if fifo and self.stopped_at is None:
            self.ptrace(self.PTRACE_SEIZE)
            self.traced = True
            self.ptrace(self.PTRACE_INTERRUPT)
            os.waitpid(self.pid, self.WALL)
            self.stopped_at = int(os.pread(self.fd, 128, 0).split()[0])
            return True
        if self.stopped_at is None:
            return True
        # The boost ended (a few samples after, to bracket it), or it is
        # unbounded.
        end = next((i for i, x in enumerate(self.samples) if x[1]), 0)
        while end < len(self.samples) and self.samples[end][1]:
            end += 1
        if end + 2 < len(self.samples):
            return False
        return self.samples[-1][2] - self.stopped_at < self.CAP_NS

    def finish(self):
        if self.traced:
            self.traced = False
            self.ptrace(self.PTRACE_DETACH)


class BoundTest(PvschedTest):

    def measured(self, run):
        """run(last) until it measured something (True), at most
        MEASURE_ATTEMPTS times; last: fail rather than return False."""
        for attempt in range(1, MEASURE_ATTEMPTS + 1):
            if run(attempt == MEASURE_ATTEMPTS):
                return

    def again(self, msg, last):
        """A run that measured nothing: False, or on the last one, fail."""
        if last:
            self.fail(msg)
        print(f'  {msg}; again', file=sys.stderr)
        return False

    def test_bound_in_cpu_time(self):
        """(a), (c), (d): throttled after the bound plus OVERRUN_NS at most."""
        self.measured(self.boosted_spin)

    @contextlib.contextmanager
    def watched_spin(self, watch_class):
        """The spin guest with vCPU 0 pinned to the last CPU and sampled by
        a watch_class thread from before the guest runs: yields (vm,
        watch) with the guest running.  The caller stops the watch."""
        mine = os.sched_getaffinity(0)
        vcpu_cpu = max(mine)
        with self.launch_vm('spin', append=f'ms=2000 {SPIN_BOUND}', smp=2, policy=BOUNDED,
                            paused=True) as vm:
            tid = vm.vcpu_tids()[0]
            os.sched_setaffinity(tid, {vcpu_cpu})
            # This thread off the vCPU's CPU: preempted there by the boost
            # while it holds the GIL, it would keep the sampler from
            # running for the whole boost (seen: 'never seen boosted').
            os.sched_setaffinity(0, mine - {vcpu_cpu} or mine)
            watch = watch_class(vm.pid, tid, vcpu_cpu)
            watch.start()
            try:
                vm.cmd('cont')
                yield vm, watch
            finally:
                watch.stop()
                os.sched_setaffinity(0, mine)

    def boosted_spin(self, last):
        """One run of (a); False if it could not be measured closely."""
        with self.watched_spin(BoostWatch) as (vm, watch):
            try:
                # The guest boosts, then spins for 2 s without exits and
                # says nothing until it is done: look while it spins.
                vm.wait_event('PVSCHED_THROTTLED', timeout=30,
                              **{'cpu-index': 0})
                # One more sample after the unboost, to bracket it.
                n = len(watch.samples)
                while len(watch.samples) < n + 2 and watch.is_alive():
                    time.sleep(0.001)
            finally:
                watch.stop()
            v = {x['cpu-index']: x for x in
                 vm.cmd('query-pvsched')['vcpus']}[0]
            self.assertIsNotNone(watch.boost(), 'never seen boosted')
            lower, upper = watch.lower(), watch.upper()
            print(f'\n  boosted for {lower / 1e6:.3f} to {upper / 1e6:.3f} '
                  f'ms of CPU time ({len(watch.samples)} samples); QEMU '
                  f'says {v["boosted-ns"] / 1e6:.3f} ms', file=sys.stderr)
            if stall := watch.stalled():
                return self.again(stall, last)
            self.assertLessEqual(lower, 3_000_000 + OVERRUN_NS,
                                 f'boosted for at least {lower} ns of CPU '
                                 f'time, bound 3 ms + {OVERRUN_NS} ns')
            if upper - lower > TICK_NS:
                # Only when the sampler was held off, its CPU not running
                # (an L1 whose host is overloaded): no measurement.
                return self.again(f'boost measured to within '
                                  f'{(upper - lower) / 1e6:.1f} ms only, '
                                  f'more than a tick: the sampler was held '
                                  f'off', last)
            self.assertGreaterEqual(upper, 3_000_000,
                                    f'unboosted after at most {upper} ns '
                                    f'of CPU time, before the bound')
            self.assertGreaterEqual(v['throttles'], 1, v)
            self.rethrottled(vm)
            self.assertIsNone(vm.next_wait(timeout=30, stop_on_fail=True))
            self.assertIn(vm.states[0][0], ('THROTTLED', 'BOOSTED'),
                          vm.report())
            self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS)
        return True

    def rethrottled(self, vm):
        """(d): the guest spins on for 2 s asking BOOST, without an exit:
        a cooldown's end boosts it again (a kick), and the bound throttles
        it again.  Seen while it spins: once it is done, QEMU exits."""
        deadline = time.monotonic() + 30
        try:
            while True:
                v = {x['cpu-index']: x for x in
                     vm.cmd('query-pvsched')['vcpus']}[0]
                if v['throttles'] >= 2 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        except RuntimeError as e:
            self.fail(f'not boosted again after the cooldown while the '
                      f'guest spun: {e}')
        self.assertGreaterEqual(v['throttles'], 2,
                                f'not boosted again after the cooldown '
                                f'while spinning: {v}')

    def test_bound_without_main_loop(self):
        """(a) with QEMU's main loop stopped: the kernel ends the boost."""
        self.measured(self.stopped_spin)

    def stopped_spin(self, last):
        """One run; False if the main loop stopped too late to tell."""
        with self.watched_spin(MainLoopStopper) as (vm, watch):
            watch.join(timeout=60)
            watch.stop()
            self.assertIsNotNone(watch.stopped_at,
                                 'never seen boosted, or the main loop '
                                 'could not be stopped (see above)')
            first = next(i for i, x in enumerate(watch.samples) if x[1])
            late = watch.stopped_at - watch.samples[first - 1][0]
            if watch.samples[-1][1]:
                spent = watch.samples[-1][0] - watch.samples[first - 1][2]
                self.fail(f'with the main loop stopped, still boosted after'
                          f' {spent / 1e6:.0f} ms of CPU time')
            lower, upper = watch.lower(), watch.upper()
            print(f'\n  main loop stopped after at most {late / 1e6:.3f} ms'
                  f' of the boost; boosted for {lower / 1e6:.3f} to '
                  f'{upper / 1e6:.3f} ms of CPU time', file=sys.stderr)
            if late >= 3_000_000:
                # The main loop ran for the whole bound: this run says
                # nothing about the kernel's half of it.
                return self.again(f'the main loop stopped {late / 1e6:.1f} '
                                  f'ms into the boost', last)
            if stall := watch.stalled():
                return self.again(stall, last)
            self.assertLessEqual(lower, 3_000_000 + OVERRUN_NS,
                                 f'with the main loop stopped, boosted for'
                                 f' at least {lower} ns of CPU time, bound'
                                 f' 3 ms + {OVERRUN_NS} ns')
            if upper - lower > TICK_NS:
                return self.again(f'the boost measured to within '
                                  f'{(upper - lower) / 1e6:.1f} ms', last)
            vm.wait_event('PVSCHED_THROTTLED', timeout=30,
                          **{'cpu-index': 0})
            v = {x['cpu-index']: x for x in
                 vm.cmd('query-pvsched')['vcpus']}[0]
            self.assertGreaterEqual(v['throttles'], 1, v)
            self.assertIsNone(vm.next_wait(timeout=30, stop_on_fail=True))
            self.assertEqual(vm.wait_exit(), pvsched_vm.EXIT_PASS)
        return True

    def test_hog_keeps_its_share(self):
        """(b): 5 s of a rogue guest against a hog on the same CPU."""
        cpu = max(os.sched_getaffinity(0))
        hog = subprocess.Popen([sys.executable, '-c', HOG])
        try:
            os.sched_setaffinity(hog.pid, {cpu})
            with self.launch_vm('spin', append=f'ms=8000 io_us=2000 {SPIN_BOUND}', smp=2,
                                policy=BOUNDED) as vm:
                tid = vm.vcpu_tids()[0]
                os.sched_setaffinity(tid, {cpu})
                # Boosted, and the bound at work.
                vm.wait_event('PVSCHED_THROTTLED', timeout=30,
                              **{'cpu-index': 0})
                t0, h0 = time.monotonic(), cpu_ns(hog.pid)
                v0 = cpu_ns(vm.pid, tid)
                time.sleep(5)
                t1, h1 = time.monotonic(), cpu_ns(hog.pid)
                v1 = cpu_ns(vm.pid, tid)
                info = {x['cpu-index']: x for x in
                        vm.cmd('query-pvsched')['vcpus']}[0]
                # Of the CPU time the two got on their CPU, the hog's part.
                share = (h1 - h0) / ((h1 - h0) + (v1 - v0))
                print(f'\n  hog share of CPU {cpu}: {share:.1%} '
                      f'(hog {(h1 - h0) / 1e9:.2f} s, vCPU '
                      f'{(v1 - v0) / 1e9:.2f} s of CPU over '
                      f'{t1 - t0:.1f} s); boosts {info["boosts"]}, '
                      f'throttles {info["throttles"]}', file=sys.stderr)
                self.assertGreaterEqual(info['throttles'], 10, info)
                self.assertGreaterEqual(share, 0.40,
                                        f'hog got {share:.1%} of its CPU')
        finally:
            hog.kill()
            hog.wait()


if __name__ == '__main__':
    PvschedTest.main()
