/*
 * pvinit: PID 1 of the pvsched Linux test guest on a host whose KVM
 * emulates guest user code (kvm_pvm in native mode, see "This host's KVM"
 * in docs/system/pvsched-linux-guest.rst).
 *
 * That host raises #UD for every instruction its emulator lacks, which
 * rules out glibc (SSE string functions) and floating point, so this is
 * an i386 program without libc, built with general registers only, that
 * makes its system calls with int $0x80.  It speaks the line protocol of
 * initramfs/init + scenarios.sh ("Host/guest protocol" in the docs) and
 * runs the "test" scenario built in; an RT task that sleeps periodically
 * and measures its wakeups in integer nanoseconds stands in for
 * cyclictest, which needs the FPU.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#define NR_exit 1
#define NR_fork 2
#define NR_read 3
#define NR_write 4
#define NR_open 5
#define NR_close 6
#define NR_kill 37
#define NR_dup2 63
#define NR_ioctl 54
#define NR_mount 21
#define NR_reboot 88
#define NR_wait4 114
#define NR_delete_module 129
#define NR_sched_setscheduler 156
#define NR_nanosleep 162
#define NR_sched_setaffinity 241
#define NR_clock_gettime 265
#define NR_clock_nanosleep 267
#define NR_finit_module 350

#define O_RDONLY 0
#define O_WRONLY 1
#define O_RDWR 2
#define O_NOCTTY 0400
#define O_NONBLOCK 04000
#define SCHED_FIFO 1
#define SIGKILL 9
#define CLOCK_MONOTONIC 1
#define TIMER_ABSTIME 1
#define TCGETS 0x5401
#define TCSETS 0x5402
#define ECHO 0x8

struct timespec32 {
    long sec;
    long nsec;
};

static long sys5(long nr, long a, long b, long c, long d, long e)
{
    long ret;

    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e)
                     : "memory");
    return ret;
}

static long sys(long nr, long a, long b, long c, long d)
{
    return sys5(nr, a, b, c, d, 0);
}

/* The compiler may call these for struct copies and initializers. */
void *memset(void *s, int c, unsigned long n)
{
    char *p = s;

    while (n--) {
        *p++ = c;
    }
    return s;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
    char *p = d;
    const char *q = s;

    while (n--) {
        *p++ = *q++;
    }
    return d;
}

static unsigned long slen(const char *s)
{
    unsigned long n = 0;

    while (s[n]) {
        n++;
    }
    return n;
}

static int sprefix(const char *s, const char *prefix)
{
    while (*prefix) {
        if (*s++ != *prefix++) {
            return 0;
        }
    }
    return 1;
}

/* One console line, written with one system call. */
static char out[512];
static unsigned long outlen;

static void put(const char *s)
{
    while (*s && outlen < sizeof(out) - 1) {
        out[outlen++] = *s++;
    }
}

static void putnum(long v)
{
    char buf[12];
    int i = sizeof(buf);
    unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;

    buf[--i] = 0;
    do {
        buf[--i] = '0' + u % 10;
        u /= 10;
    } while (u);
    if (v < 0) {
        buf[--i] = '-';
    }
    put(buf + i);
}

static void endline(void)
{
    out[outlen++] = '\n';
    sys(NR_write, 1, (long)out, outlen, 0);
    outlen = 0;
}

static void say(const char *s)
{
    put(s);
    endline();
}

/*
 * A line from the host, without its newline (truncated to size - 1).
 * The tty is in canonical mode, so one read() usually returns the whole
 * line: every system call is an exit to the host here.
 */
static int readline(char *buf, int size)
{
    int n = 0;
    long r;

    for (;;) {
        r = sys(NR_read, 0, (long)buf + n, size - 1 - n, 0);
        if (r <= 0) {
            return -1;
        }
        n += r;
        if (buf[n - 1] == '\n') {
            n--;
            break;
        }
        if (n == size - 1) {
            /* Too long: keep the start, drop the rest of the line. */
            char c = 0;

            while (c != '\n' && sys(NR_read, 0, (long)&c, 1, 0) == 1) {
            }
            break;
        }
    }
    if (n > 0 && buf[n - 1] == '\r') {
        n--;
    }
    buf[n] = 0;
    return n;
}

static void wait_host(const char *tag, int cpu)
{
    char line[64];

    put("WAIT ");
    put(tag);
    put(" cpu=");
    putnum(cpu);
    endline();
    readline(line, sizeof(line));
}

static long write_file(const char *path, const char *text)
{
    long fd = sys(NR_open, (long)path, O_WRONLY, 0, 0);
    long rc;

    if (fd < 0) {
        return fd;
    }
    rc = sys(NR_write, fd, (long)text, slen(text), 0);
    sys(NR_close, fd, 0, 0, 0);
    return rc < 0 ? rc : 0;
}

static char filebuf[8192];

/* The whole file, NUL-terminated, in filebuf; < 0 on error. */
static long read_file(const char *path)
{
    long fd = sys(NR_open, (long)path, O_RDONLY, 0, 0);
    long n = 0, r;

    if (fd < 0) {
        return fd;
    }
    while (n < (long)sizeof(filebuf) - 1 &&
           (r = sys(NR_read, fd, (long)filebuf + n,
                    sizeof(filebuf) - 1 - n, 0)) > 0) {
        n += r;
    }
    sys(NR_close, fd, 0, 0, 0);
    filebuf[n] = 0;
    return n;
}

static void stats(void)
{
    char *p, *nl;

    if (read_file("/sys/kernel/debug/pvsched/stats") <= 0) {
        say("STATS none");
        return;
    }
    for (p = filebuf; *p; p = nl + 1) {
        for (nl = p; *nl && *nl != '\n'; nl++) {
        }
        if (!*nl) {
            break;
        }
        *nl = 0;
        put("STATS ");
        say(p);
    }
}

static void pin(int cpu)
{
    unsigned long mask = 1ul << cpu;

    sys(NR_sched_setaffinity, 0, sizeof(mask), (long)&mask, 0);
}

static long make_fifo(int prio)
{
    int param = prio;

    return sys(NR_sched_setscheduler, 0, SCHED_FIFO, (long)&param, 0);
}

static void sleep_ms(long ms)
{
    struct timespec32 ts = { ms / 1000, (ms % 1000) * 1000000 };

    sys(NR_nanosleep, (long)&ts, 0, 0, 0);
}

static long waitchild(long pid)
{
    int status = 0;

    sys(NR_wait4, pid, (long)&status, 0, 0);
    return status;
}

static void timespec_add_ns(struct timespec32 *t, long ns)
{
    t->nsec += ns;
    while (t->nsec >= 1000000000) {
        t->nsec -= 1000000000;
        t->sec++;
    }
}

/* Nanoseconds from a to b, for differences of under two seconds. */
static long diff_ns(const struct timespec32 *a, const struct timespec32 *b)
{
    return (b->sec - a->sec) * 1000000000 + (b->nsec - a->nsec);
}

/*
 * What cyclictest -t1 -p 80 -i interval_us -D seconds does, in integers:
 * sleep to absolute deadlines, report how late each wakeup was.
 */
static void rt_sleeper(int cpu, long interval_us, long seconds)
{
    struct timespec32 next, now;
    long samples = 0, late, max_ns = 0, sum_us = 0, rc;
    long total = seconds * 1000000 / interval_us;

    pin(cpu);
    rc = make_fifo(80);
    sys(NR_clock_gettime, CLOCK_MONOTONIC, (long)&next, 0, 0);
    while (rc == 0 && samples < total) {
        timespec_add_ns(&next, interval_us * 1000);
        rc = sys(NR_clock_nanosleep, CLOCK_MONOTONIC, TIMER_ABSTIME,
                 (long)&next, 0);
        sys(NR_clock_gettime, CLOCK_MONOTONIC, (long)&now, 0, 0);
        late = diff_ns(&next, &now);
        max_ns = late > max_ns ? late : max_ns;
        sum_us += late / 1000;
        samples++;
    }
    put("RESULT sleeper rc=");
    putnum(-rc);
    put(" samples=");
    putnum(samples);
    put(" avg=");
    putnum(samples ? sum_us / samples : 0);
    put(" max=");
    putnum(max_ns / 1000);
    endline();
    sys(NR_exit, rc != 0, 0, 0, 0);
}

static long spawn_on(int cpu, void (*fn)(int))
{
    long pid = sys(NR_fork, 0, 0, 0, 0);

    if (pid == 0) {
        pin(cpu);
        fn(cpu);
        sys(NR_exit, 0, 0, 0, 0);
    }
    return pid;
}

static void spin(int cpu)
{
    (void)cpu;
    if (make_fifo(50) == 0) {
        for (;;) {
            __asm__ volatile("" ::: "memory");
        }
    }
}

static void nothing(int cpu)
{
    (void)cpu;
}

static void sleeper(int cpu)
{
    rt_sleeper(cpu, 1000, 3);
}

static const char cpu1_online[] = "/sys/devices/system/cpu/cpu1/online";

static void scen_test(const char *modargs)
{
    long fd, rc, pid;

    /* No RT throttling: the spinner must hold CPU 1 while the host looks. */
    write_file("/proc/sys/kernel/sched_rt_runtime_us", "-1");
    wait_host("before-load", 0);
    fd = sys(NR_open, (long)"/lib/modules/pvsched.ko", O_RDONLY, 0, 0);
    rc = fd < 0 ? fd : sys(NR_finit_module, fd, (long)modargs, 0, 0);
    put("LOADED rc=");
    putnum(-rc);
    endline();
    stats();

    rc = write_file(cpu1_online, "1");
    read_file("/sys/devices/system/cpu/online");
    filebuf[slen(filebuf) ? slen(filebuf) - 1 : 0] = 0;
    put("ONLINE cpu=1 rc=");
    putnum(-rc);
    put(" online=");
    say(filebuf);
    /* Keep PID 1 off CPU 1, which the RT work owns. */
    pin(0);
    stats();

    if (rc) {
        /* No CPU 1: the spinner would take PID 1's only CPU for good. */
        say("FAIL CPU 1 did not come online");
        return;
    }
    pid = spawn_on(1, spin);
    sleep_ms(1000);
    say("RT-RUNNING cpu=1");
    wait_host("rt-running", 1);
    sys(NR_kill, pid, SIGKILL, 0, 0);
    waitchild(pid);
    stats();

    pid = spawn_on(1, sleeper);
    sleep_ms(1000);
    wait_host("sleeper-running", 1);
    waitchild(pid);
    stats();

    /* Normal tasks on both CPUs: each gives its boost back. */
    waitchild(spawn_on(1, nothing));
    waitchild(spawn_on(0, nothing));
    wait_host("after", 1);

    rc = write_file(cpu1_online, "0");
    put("OFFLINE cpu=1 rc=");
    putnum(-rc);
    endline();
    rc = sys(NR_delete_module, (long)"pvsched", O_NONBLOCK, 0, 0);
    put("UNLOADED rc=");
    putnum(-rc);
    endline();
    stats();
}

static void console(void)
{
    unsigned int termios[9];    /* i386 struct termios: 36 bytes */
    long fd;

    fd = sys(NR_open, (long)"/dev/ttyS0", O_RDWR | O_NOCTTY, 0, 0);
    if (fd < 0) {
        return;
    }
    sys(NR_dup2, fd, 0, 0, 0);
    sys(NR_dup2, fd, 1, 0, 0);
    sys(NR_dup2, fd, 2, 0, 0);
    /* The host's lines must not come back as output. */
    if (sys(NR_ioctl, 0, TCGETS, (long)termios, 0) == 0) {
        termios[3] &= ~ECHO;
        sys(NR_ioctl, 0, TCSETS, (long)termios, 0);
    }
}

static void mount(const char *type, const char *dir)
{
    long rc = sys5(NR_mount, (long)type, (long)dir, (long)type, 0, 0);

    if (rc) {
        put("INFO mount ");
        put(dir);
        put(" rc=");
        putnum(-rc);
        endline();
    }
}

static void mounts(void)
{
    mount("devtmpfs", "/dev");
    console();
    mount("proc", "/proc");
    mount("sysfs", "/sys");
    mount("debugfs", "/sys/kernel/debug");
}

static char modargs[256];

void _start(void)
{
    char line[256];
    int lines = 0;

    mounts();
    say("READY cpus=1 kernel=pvinit scenario=host");
    say("WAIT script cpu=0");
    /*
     * The host sends scenarios.sh with its settings in front: keep
     * MODARGS, count the lines, run the built-in test.
     */
    while (readline(line, sizeof(line)) >= 0 && !sprefix(line, "END-SCRIPT")) {
        lines++;
        if (sprefix(line, "MODARGS='")) {
            unsigned long n = slen(line + 9);

            memcpy(modargs, line + 9, n ? n - 1 : 0);
        }
    }
    put("SCRIPT lines=");
    putnum(lines);
    endline();
    scen_test(modargs);
    say("DONE");
    /* LINUX_REBOOT_CMD_RESTART; -no-reboot makes it QEMU's exit. */
    sys(NR_reboot, 0xfee1dead, 672274793, 0x01234567, 0);
    for (;;) {
        sleep_ms(1000);
    }
}
