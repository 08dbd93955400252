#include <stdarg.h>
#include <stdint.h>
#include "print.h"
#include "serial.h"
#include "smp.h"
#include "lib.h"
#include "io.h"

#define LINE_MAX 256
#define NO_OWNER 0xffffffffu

struct buf {
    char s[LINE_MAX];
    unsigned n;
};

/* Owner of the print lock; NO_OWNER when free. */
static volatile uint32_t print_owner = NO_OWNER;

static void put(struct buf *b, char c)
{
    if (b->n < LINE_MAX - 1) {
        b->s[b->n++] = c;
    }
}

static void put_str(struct buf *b, const char *s)
{
    if (!s) {
        s = "(null)";
    }
    while (*s) {
        put(b, *s++);
    }
}

static void put_u64(struct buf *b, uint64_t v, unsigned base)
{
    char tmp[24];
    int i = 0;
    uint32_t r;

    do {
        if (base == 16) {
            r = v & 15;
            v >>= 4;
        } else {
            v = udiv64(v, 10, &r);
        }
        tmp[i++] = "0123456789abcdef"[r];
    } while (v);
    while (i) {
        put(b, tmp[--i]);
    }
}

static void format(struct buf *b, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        int is_ll = 0;
        int32_t d;

        if (*fmt != '%') {
            put(b, *fmt);
            continue;
        }
        fmt++;
        if (fmt[0] == 'l' && fmt[1] == 'l') {
            is_ll = 1;
            fmt += 2;
        }
        switch (*fmt) {
        case 's':
            put_str(b, va_arg(ap, const char *));
            break;
        case 'c':
            put(b, (char)va_arg(ap, int));
            break;
        case 'd':
            d = va_arg(ap, int32_t);
            if (d < 0) {
                put(b, '-');
                d = -d;
            }
            put_u64(b, (uint32_t)d, 10);
            break;
        case 'u':
        case 'x':
            put_u64(b, is_ll ? va_arg(ap, uint64_t) : va_arg(ap, uint32_t),
                    *fmt == 'x' ? 16 : 10);
            break;
        case '%':
            put(b, '%');
            break;
        default:
            put(b, '?');
            return;
        }
    }
}

/*
 * The lock is taken per call. If this CPU already owns it, an exception
 * hit while printing: go on rather than deadlock, since the fault report
 * matters more than a garbled line.
 */
static void lock(void)
{
    uint32_t me = this_cpu();

    if (print_owner == me) {
        return;
    }
    while (!__sync_bool_compare_and_swap(&print_owner, NO_OWNER, me)) {
        cpu_pause();
    }
}

static void unlock(void)
{
    __sync_synchronize();
    print_owner = NO_OWNER;
}

void kvsnprintf(char *out, unsigned size, const char *fmt, va_list ap)
{
    struct buf b = { .n = 0 };

    format(&b, fmt, ap);
    if (b.n >= size) {
        b.n = size - 1;
    }
    memcpy(out, b.s, b.n);
    out[b.n] = 0;
}

void ksnprintf(char *out, unsigned size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    kvsnprintf(out, size, fmt, ap);
    va_end(ap);
}

void kprintf(const char *fmt, ...)
{
    struct buf b = { .n = 0 };
    va_list ap;
    unsigned i;

    va_start(ap, fmt);
    format(&b, fmt, ap);
    va_end(ap);

    lock();
    for (i = 0; i < b.n; i++) {
        serial_putc(b.s[i]);
    }
    unlock();
}
