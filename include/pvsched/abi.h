/*
 * pvsched guest ABI, version 1
 *
 * Shared between QEMU and guests: this header is self-contained and needs
 * only <stdint.h>, so that a bare-metal or Linux guest can include it as is.
 * The normative text is docs/specs/pvsched.rst.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef PVSCHED_ABI_H
#define PVSCHED_ABI_H

#include <stdint.h>

/* Discovery: CPUID 0x40000001 (KVM_CPUID_FEATURES) EAX bit 18. */
#define PVSCHED_CPUID_LEAF          0x40000001u
#define PVSCHED_CPUID_FEATURE_BIT   18

/* The per-vCPU MSR, same number as the KVM RFC's MSR_KVM_PV_SCHED. */
#define PVSCHED_MSR                 0x4b564da0u

/* MSR write values. */
#define PVSCHED_MSR_ENABLE          0x1ull              /* gpa | ENABLE */
#define PVSCHED_MSR_RESERVED_MASK   0x3eull             /* bits 5:1 */
#define PVSCHED_MSR_DISABLE         0x0ull
#define PVSCHED_MSR_DOORBELL        0xffffffffffffffffull

#define PVSCHED_AREA_SIZE           64
#define PVSCHED_AREA_ALIGN          64

/* boost_status, written by the host. */
enum {
    PVSCHED_STATUS_DISABLED  = 0,
    PVSCHED_STATUS_NORMAL    = 1,
    PVSCHED_STATUS_BOOSTED   = 2,
    PVSCHED_STATUS_THROTTLED = 3,
};

/* boost_req, written by the guest. */
enum {
    PVSCHED_REQ_NONE    = 0,
    PVSCHED_REQ_UNBOOST = 1,
    PVSCHED_REQ_BOOST   = 2,
};

/* Offsets in the area (little-endian). */
#define PVSCHED_OFF_BOOST_STATUS     0x00  /* u64, host */
#define PVSCHED_OFF_BOOST_REQ        0x08  /* u8, guest */
#define PVSCHED_OFF_PREEMPT_DISABLED 0x09  /* u8, guest */
#define PVSCHED_OFF_HOST_EXT         0x10  /* 48 bytes, host */

struct pvsched_area {
    uint64_t boost_status;
    uint8_t boost_req;
    uint8_t preempt_disabled;
    uint8_t reserved[6];
    uint8_t host_ext[48];
} __attribute__((aligned(PVSCHED_AREA_ALIGN)));

/* Compile-time layout checks, usable by any C11 compiler. */
_Static_assert(sizeof(struct pvsched_area) == PVSCHED_AREA_SIZE,
               "pvsched area is 64 bytes");
_Static_assert(__builtin_offsetof(struct pvsched_area, boost_req) ==
               PVSCHED_OFF_BOOST_REQ, "boost_req offset");
_Static_assert(__builtin_offsetof(struct pvsched_area, preempt_disabled) ==
               PVSCHED_OFF_PREEMPT_DISABLED, "preempt_disabled offset");
_Static_assert(__builtin_offsetof(struct pvsched_area, host_ext) ==
               PVSCHED_OFF_HOST_EXT, "host_ext offset");

#endif /* PVSCHED_ABI_H */
