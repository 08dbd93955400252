/*
 * iostorm: a guest that drives QEMU's I/O handling as fast as it can
 * (PROTOCOL.md).
 *
 * Cpu 0 finds the first legacy virtio PCI device on bus 0 (PCI
 * configuration mechanism #1), gives queue 0 an empty ring and sets
 * DRIVER_OK; then every cpu writes the queue-notify register in a loop,
 * for good.  With ioeventfd (virtio-pci's default) KVM turns each write
 * into an eventfd signal without leaving the kernel: the vCPU threads
 * never take the BQL, and the thread that handles the device's queue
 * (the main loop, or the device's iothread) is woken for every kick it
 * has not yet consumed, runs the device's handler and finds the ring
 * empty.  That is the path a virtio driver's kicks take, as often as a
 * guest can make them.
 */
#include <stddef.h>
#include "scenarios.h"
#include "check.h"
#include "io.h"
#include "print.h"
#include "smp.h"

#define PCI_ADDR            0xcf8
#define PCI_DATA            0xcfc
#define PCI_VENDOR_VIRTIO   0x1af4

/* The legacy virtio-pci I/O BAR (virtio 0.9.5). */
#define VIRTIO_PCI_QUEUE_PFN    8
#define VIRTIO_PCI_QUEUE_NUM    12
#define VIRTIO_PCI_QUEUE_SEL    14
#define VIRTIO_PCI_QUEUE_NOTIFY 16
#define VIRTIO_PCI_STATUS       18
#define VIRTIO_S_ACK            1
#define VIRTIO_S_DRIVER         2
#define VIRTIO_S_DRIVER_OK      4

/*
 * A legacy ring of up to VIRTQ_MAX entries (virtio's largest): 16 bytes
 * of descriptor per entry, the avail ring, then the used ring on the
 * next 4 KiB boundary.  All zero: the avail index stays 0, the ring
 * empty.
 */
#define VIRTQ_MAX           1024
static uint8_t ring[8 * 4096] __attribute__((aligned(4096)));

static uint16_t notify_port;

static void __attribute__((noreturn)) kick_forever(void *arg)
{
    (void)arg;
    for (;;) {
        outw(notify_port, 0);
    }
}

static uint32_t pci_read32(unsigned dev, unsigned reg)
{
    outl(PCI_ADDR, 0x80000000u | (dev << 11) | reg);
    return inl(PCI_DATA);
}

static void pci_write32(unsigned dev, unsigned reg, uint32_t v)
{
    outl(PCI_ADDR, 0x80000000u | (dev << 11) | reg);
    outl(PCI_DATA, v);
}

void scenario_iostorm(void)
{
    unsigned dev;
    uint32_t id = 0, bar0 = 0;
    uint16_t io, qnum;

    for (dev = 0; dev < 32; dev++) {
        id = pci_read32(dev, 0);
        bar0 = pci_read32(dev, 0x10);
        if ((id & 0xffff) == PCI_VENDOR_VIRTIO && (bar0 & 1)) {
            break;
        }
    }
    check("virtio-present", -1, dev < 32, "dev=%u id=0x%x bar0=0x%x",
          dev, id, bar0);
    if (dev == 32) {
        done();
    }
    io = bar0 & 0xfffc;
    /* I/O decode on (the firmware may have left it off). */
    pci_write32(dev, 0x04, pci_read32(dev, 0x04) | 1);

    outb(io + VIRTIO_PCI_STATUS, 0);
    outb(io + VIRTIO_PCI_STATUS, VIRTIO_S_ACK | VIRTIO_S_DRIVER);
    outw(io + VIRTIO_PCI_QUEUE_SEL, 0);
    qnum = inw(io + VIRTIO_PCI_QUEUE_NUM);
    check("virtio-queue", -1, qnum != 0 && qnum <= VIRTQ_MAX, "num=%u",
          qnum);
    if (qnum == 0 || qnum > VIRTQ_MAX) {
        done();
    }
    outl(io + VIRTIO_PCI_QUEUE_PFN, (uint32_t)(uintptr_t)ring >> 12);
    /* DRIVER_OK: QEMU starts the device's ioeventfds. */
    outb(io + VIRTIO_PCI_STATUS,
         VIRTIO_S_ACK | VIRTIO_S_DRIVER | VIRTIO_S_DRIVER_OK);
    notify_port = io + VIRTIO_PCI_QUEUE_NOTIFY;
    kprintf("INFO iostorm start cpus=%u dev=%u id=0x%x io=0x%x qnum=%u\n",
            ncpus, dev, id, io, qnum);
    for (unsigned cpu = 1; cpu < ncpus; cpu++) {
        run_on_async(cpu, kick_forever, NULL);
    }
    kick_forever(NULL);
}
