/* COM1 (0x3f8), polled: no interrupts, so no interrupt controller setup. */
#ifndef GUEST_SERIAL_H
#define GUEST_SERIAL_H

#include <stdint.h>

void serial_init(void);
void serial_putc(char c);
/* Blocks until the host sends a byte: only for WAIT points. */
uint8_t serial_getc(void);

#endif
