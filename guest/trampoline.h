/* Where the AP real-mode trampoline is copied (4 KiB aligned, < 1 MiB). */
#ifndef GUEST_TRAMPOLINE_H
#define GUEST_TRAMPOLINE_H

#define TRAMPOLINE_BASE 0x8000

#ifndef __ASSEMBLER__
extern const char trampoline_start[], trampoline_end[];
extern volatile unsigned int ap_boot_stack;
#endif

#endif
