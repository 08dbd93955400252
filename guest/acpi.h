/* Just enough ACPI to list the processors: RSDP -> RSDT/XSDT -> MADT. */
#ifndef GUEST_ACPI_H
#define GUEST_ACPI_H

#include <stdint.h>

/*
 * Fill apic_ids with the APIC IDs of the enabled processors, in MADT
 * order; returns how many (at most max), or 0 when there is no MADT.
 */
unsigned acpi_cpu_apic_ids(uint8_t *apic_ids, unsigned max);

#endif
