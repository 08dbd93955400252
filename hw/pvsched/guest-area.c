/*
 * pvsched: the guest's per-vCPU area, mapped into QEMU
 *
 * Modelled on the Xen emulation's vcpu_info: look the area up once at
 * registration, keep a host pointer and a reference on the region, and
 * read it lock-free from the vCPU thread on every exit.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "exec/memory.h"
#include "exec/address-spaces.h"
#include "exec/cpu-common.h"
#include "pvsched/guest-area.h"

static const char *area_unusable(MemoryRegionSection *mrs)
{
    MemoryRegion *mr = mrs->mr;

    if (!mr) {
        return "not backed by anything";
    }
    if (!memory_region_is_ram(mr) || !mr->ram_block ||
        memory_region_is_ram_device(mr)) {
        return "not RAM";
    }
    if (memory_region_is_rom(mr) || memory_region_is_romd(mr)) {
        return "ROM";
    }
    if (int128_lt(mrs->size, int128_make64(PVSCHED_AREA_SIZE))) {
        return "runs past the end of RAM";
    }
    /*
     * Memory that virtio-mem (the RAM's discard manager) has not plugged
     * is not the guest's: writing the status there would populate it
     * behind the device's back.
     */
    if (memory_region_has_ram_discard_manager(mr) &&
        !ram_discard_manager_is_populated(
            memory_region_get_ram_discard_manager(mr), mrs)) {
        return "discarded (unplugged memory)";
    }
    return NULL;
}

bool pvsched_area_map(PvschedArea *area, uint64_t gpa, const char **why)
{
    MemoryRegionSection mrs;

    /* 64-byte alignment alone keeps the 64-byte area within a page. */
    if (gpa & (PVSCHED_AREA_ALIGN - 1)) {
        *why = "not 64-byte aligned";
        return false;
    }
    mrs = memory_region_find(get_system_memory(), gpa, PVSCHED_AREA_SIZE);
    *why = area_unusable(&mrs);
    if (*why) {
        if (mrs.mr) {
            memory_region_unref(mrs.mr);
        }
        return false;
    }
    *area = (PvschedArea) {
        .mr = mrs.mr,
        .offset = mrs.offset_within_region,
        .hva = qemu_map_ram_ptr(mrs.mr->ram_block, mrs.offset_within_region),
    };
    return true;
}

void pvsched_area_unmap(PvschedArea *area)
{
    if (area->mr) {
        memory_region_unref(area->mr);
    }
    *area = (PvschedArea) { };
}

void pvsched_area_set_status(PvschedArea *area, uint64_t status)
{
    qatomic_set(&area->hva->boost_status, cpu_to_le64(status));
    memory_region_set_dirty(area->mr, area->offset,
                            sizeof(area->hva->boost_status));
}
