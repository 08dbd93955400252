/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * include/pvsched/abi.h is shared with QEMU and bare-metal guests and asks
 * for <stdint.h>; the kernel has no libc headers but the same types.
 */
#ifndef PVSCHED_COMPAT_STDINT_H
#define PVSCHED_COMPAT_STDINT_H
#include <linux/types.h>
#endif
