/* The few libc-like helpers a freestanding kernel needs. */
#ifndef GUEST_LIB_H
#define GUEST_LIB_H

#include <stddef.h>
#include <stdint.h>

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
int strcmp(const char *a, const char *b);
size_t strlen(const char *s);

/* 64-by-32 unsigned division without libgcc's __udivdi3. */
uint64_t udiv64(uint64_t n, uint32_t d, uint32_t *rem);

/* Parse a decimal number; returns false on anything but digits. */
int parse_u32(const char *s, uint32_t *out);

#endif
