/*
 * CHECK lines, the final DONE line and the isa-debug-exit verdict
 * (PROTOCOL.md). Checks may run on any CPU; counters are atomic.
 */
#ifndef GUEST_CHECK_H
#define GUEST_CHECK_H

#include <stdbool.h>

#define NO_CPU (-1)

/*
 * Print "CHECK <name>[.cpu<cpu>] ok" or "... FAIL <detail>" and count it;
 * cpu is NO_CPU for a check that is not about one CPU. Returns ok.
 */
bool check(const char *name, int cpu, bool ok, const char *detail_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A failure that ends the run: CHECK FAIL, DONE, exit 1. */
void check_fatal(const char *name, const char *detail_fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

/* Print DONE and leave through isa-debug-exit: 0 if no check failed. */
void done(void) __attribute__((noreturn));

#endif
