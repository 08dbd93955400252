#include "acpi.h"
#include "lib.h"

struct rsdp {
    char sig[8];
    uint8_t checksum;
    char oem[6];
    uint8_t revision;
    uint32_t rsdt;
    uint32_t length;
    uint64_t xsdt;
} __attribute__((packed));

struct sdt_header {
    char sig[4];
    uint32_t length;
    uint8_t revision, checksum;
    char oem[6], oem_table[8];
    uint32_t oem_rev, creator, creator_rev;
} __attribute__((packed));

#define MADT_ENTRIES_OFF    44   /* header + local APIC address + flags */
#define MADT_LAPIC          0
#define MADT_LAPIC_ENABLED  1

static int checksum_ok(const void *p, uint32_t len)
{
    const uint8_t *b = p;
    uint8_t sum = 0;

    while (len--) {
        sum += *b++;
    }
    return sum == 0;
}

/* SeaBIOS puts the RSDP in the BIOS area, 16-byte aligned. */
static const struct rsdp *find_rsdp(void)
{
    uintptr_t a;

    for (a = 0xe0000; a < 0x100000; a += 16) {
        const struct rsdp *r = (const struct rsdp *)a;

        if (!memcmp(r->sig, "RSD PTR ", 8) && checksum_ok(r, 20)) {
            return r;
        }
    }
    return 0;
}

/* RSDT entries are 32-bit: enough, as everything is below 4 GiB here. */
static const struct sdt_header *find_table(const struct rsdp *r,
                                           const char *sig)
{
    const struct sdt_header *rsdt = (const void *)(uintptr_t)r->rsdt;
    const uint32_t *ent;
    unsigned i, n;

    if (!rsdt || memcmp(rsdt->sig, "RSDT", 4)) {
        return 0;
    }
    ent = (const uint32_t *)(rsdt + 1);
    n = (rsdt->length - sizeof(*rsdt)) / 4;
    for (i = 0; i < n; i++) {
        const struct sdt_header *t = (const void *)(uintptr_t)ent[i];

        if (!memcmp(t->sig, sig, 4) && checksum_ok(t, t->length)) {
            return t;
        }
    }
    return 0;
}

unsigned acpi_cpu_apic_ids(uint8_t *apic_ids, unsigned max)
{
    const struct rsdp *r = find_rsdp();
    const struct sdt_header *madt;
    const uint8_t *p, *end;
    unsigned n = 0;

    if (!r || !(madt = find_table(r, "APIC"))) {
        return 0;
    }
    p = (const uint8_t *)madt + MADT_ENTRIES_OFF;
    end = (const uint8_t *)madt + madt->length;
    while (p + 2 <= end && p[1] >= 2 && n < max) {
        /* Type 0: ACPI processor ID, APIC ID, 32-bit flags. */
        if (p[0] == MADT_LAPIC && (p[4] & MADT_LAPIC_ENABLED)) {
            apic_ids[n++] = p[3];
        }
        p += p[1];
    }
    return n;
}
