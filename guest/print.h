/*
 * Formatted output to the serial port, one whole line per call even with
 * several CPUs printing. Formats: %s %c %d %u %x %llx %llu.
 */
#ifndef GUEST_PRINT_H
#define GUEST_PRINT_H

#include <stdarg.h>

void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Format into out (always NUL-terminated). */
void kvsnprintf(char *out, unsigned size, const char *fmt, va_list ap);
void ksnprintf(char *out, unsigned size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
