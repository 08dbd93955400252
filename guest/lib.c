/* memset/memcpy are also called by gcc itself for struct copies. */
#include "lib.h"

void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;

    while (n--) {
        *p++ = (uint8_t)c;
    }
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;

    while (n--) {
        *p++ = *q++;
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *p = a, *q = b;

    for (; n; n--, p++, q++) {
        if (*p != *q) {
            return *p - *q;
        }
    }
    return 0;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (uint8_t)*a - (uint8_t)*b;
}

size_t strlen(const char *s)
{
    size_t n = 0;

    while (s[n]) {
        n++;
    }
    return n;
}

/* Restoring shift-subtract division: slow but tiny, and never hot. */
uint64_t udiv64(uint64_t n, uint32_t d, uint32_t *rem)
{
    uint64_t q = 0, r = 0;
    int i;

    for (i = 63; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1);
        if (r >= d) {
            r -= d;
            q |= 1ull << i;
        }
    }
    if (rem) {
        *rem = (uint32_t)r;
    }
    return q;
}

int parse_u32(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    if (!*s) {
        return 0;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 429496728u) {
            return 0;
        }
        v = v * 10 + (uint32_t)(*s - '0');
    }
    *out = v;
    return 1;
}
