#include <stdarg.h>
#include <stdint.h>
#include "check.h"
#include "io.h"
#include "print.h"
#include "tsc.h"

#define DEBUG_EXIT_PORT 0xf4
#define DETAIL_MAX      256

static volatile uint32_t n_pass, n_fail;

static void put_check(const char *name, int cpu, bool ok,
                      const char *fmt, va_list ap)
{
    char detail[DETAIL_MAX];
    char suffix[16] = "";

    if (cpu != NO_CPU) {
        ksnprintf(suffix, sizeof(suffix), ".cpu%d", cpu);
    }
    if (ok) {
        __sync_fetch_and_add(&n_pass, 1);
        kprintf("CHECK %s%s ok\n", name, suffix);
        return;
    }
    __sync_fetch_and_add(&n_fail, 1);
    kvsnprintf(detail, sizeof(detail), fmt, ap);
    kprintf("CHECK %s%s FAIL %s\n", name, suffix, detail);
}

bool check(const char *name, int cpu, bool ok, const char *detail_fmt, ...)
{
    va_list ap;

    va_start(ap, detail_fmt);
    put_check(name, cpu, ok, detail_fmt, ap);
    va_end(ap);
    return ok;
}

/*
 * isa-debug-exit makes QEMU exit with (code << 1) | 1. QEMU may let the
 * vCPU run on briefly after the write, so wait (without exits) before
 * concluding that the device is missing: DONE must stay the last line.
 */
static void __attribute__((noreturn)) debug_exit(uint32_t code)
{
    outl(DEBUG_EXIT_PORT, code);
    udelay(2000000);
    kprintf("INFO isa-debug-exit did not stop the VM; halting\n");
    halt_forever();
}

void check_fatal(const char *name, const char *detail_fmt, ...)
{
    va_list ap;

    va_start(ap, detail_fmt);
    put_check(name, NO_CPU, false, detail_fmt, ap);
    va_end(ap);
    done();
}

void done(void)
{
    kprintf("DONE pass=%u fail=%u\n", n_pass, n_fail);
    debug_exit(n_fail ? 1 : 0);
}
