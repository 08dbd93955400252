/*
 * pvsched: the guest's per-vCPU area, mapped into QEMU
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_GUEST_AREA_H
#define PVSCHED_GUEST_AREA_H

#include "qemu/atomic.h"
#include "exec/hwaddr.h"
#include "pvsched/abi.h"

typedef struct PvschedArea {
    MemoryRegion *mr;           /* referenced while mapped */
    hwaddr offset;              /* of the area within @mr */
    struct pvsched_area *hva;   /* NULL when not mapped */
} PvschedArea;

/*
 * Map the area at @gpa.  Fails, leaving @area untouched, unless the whole
 * area lies in one writable RAM region: never in MMIO, ROM or a RAM
 * device, never across a page, never in memory a discard manager
 * (virtio-mem) has not plugged.  @why gets a reason for the trace.
 */
bool pvsched_area_map(PvschedArea *area, uint64_t gpa, const char **why);
void pvsched_area_unmap(PvschedArea *area);

/* The guest writes boost_req at any time: read it once, atomically. */
static inline uint8_t pvsched_area_boost_req(const PvschedArea *area)
{
    return qatomic_read(&area->hva->boost_req);
}

/* Write boost_status, marked dirty so that migration carries it. */
void pvsched_area_set_status(PvschedArea *area, uint64_t status);

#endif
