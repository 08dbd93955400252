/*
 * The multiboot command line: QEMU passes "<kernel path> <-append text>",
 * so only the key=value words count.
 */
#ifndef GUEST_CMDLINE_H
#define GUEST_CMDLINE_H

#include <stdint.h>

/* Copy the line out of the multiboot info (which is not ours to keep). */
void cmdline_init(uint32_t mb_magic, uint32_t mb_info);

/* Value of key, or def when the key is absent. */
const char *cmdline_str(const char *key, const char *def);
/* Numeric value of key, or def when absent or not a number. */
uint32_t cmdline_u32(const char *key, uint32_t def);

#endif
