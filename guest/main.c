/*
 * pvsched test guest: boot, bring up the CPUs, run one scenario
 * (PROTOCOL.md), report through serial and isa-debug-exit.
 */
#include <stdint.h>
#include "check.h"
#include "cmdline.h"
#include "idt.h"
#include "print.h"
#include "pvsched.h"
#include "scenarios.h"
#include "serial.h"
#include "smp.h"
#include "tsc.h"

void kmain(uint32_t mb_magic, uint32_t mb_info);
void kmain(uint32_t mb_magic, uint32_t mb_info)
{
    const char *name;

    serial_init();
    idt_init();
    idt_load();
    cmdline_init(mb_magic, mb_info);
    name = cmdline_str("scenario", "none");
    tsc_init();
    smp_init();

    kprintf("READY cpus=%u feature=%d scenario=%s\n", ncpus,
            pvsched_feature() ? 1 : 0, name);
    scenario_run(name);
    check_fatal("scenario", "unknown scenario '%s'", name);
}
