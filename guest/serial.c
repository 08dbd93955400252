#include "serial.h"
#include "io.h"

#define COM1        0x3f8
#define REG_DATA    0
#define REG_IER     1
#define REG_FCR     2
#define REG_LCR     3
#define REG_MCR     4
#define REG_LSR     5
#define LSR_DR      0x01    /* a received byte is waiting */
#define LSR_THRE    0x20    /* transmit holding register empty */

/*
 * Bound on the transmit wait: QEMU holds THRE clear while its chardev
 * backend is full, so a host that never reads would otherwise hang us.
 * Each poll is an exit (microseconds), so this is tens of seconds.
 */
#define TX_POLL_LIMIT 10000000u

void serial_init(void)
{
    outb(COM1 + REG_IER, 0x00);   /* polling only */
    outb(COM1 + REG_LCR, 0x80);   /* DLAB on */
    outb(COM1 + REG_DATA, 0x01);  /* divisor 1: 115200 baud */
    outb(COM1 + REG_IER, 0x00);
    outb(COM1 + REG_LCR, 0x03);   /* DLAB off, 8N1 */
    outb(COM1 + REG_FCR, 0xc7);   /* FIFOs on and cleared */
    outb(COM1 + REG_MCR, 0x03);   /* DTR, RTS */
}

void serial_putc(char c)
{
    uint32_t n;

    for (n = 0; n < TX_POLL_LIMIT; n++) {
        if (inb(COM1 + REG_LSR) & LSR_THRE) {
            break;
        }
    }
    outb(COM1 + REG_DATA, (uint8_t)c);
}

uint8_t serial_getc(void)
{
    while (!(inb(COM1 + REG_LSR) & LSR_DR)) {
        cpu_pause();
    }
    return inb(COM1 + REG_DATA);
}
