/*
 * AP start-up code. smp.c copies [trampoline_start, trampoline_end) to
 * TRAMPOLINE_BASE (below 1 MiB, page aligned) and points the SIPI vector
 * at it, so the AP starts here in real mode at CS:IP = BASE>>4:0.
 * Everything is addressed as BASE + offset-in-trampoline since the code
 * does not run where it was linked.
 *
 * smp.c fills ap_boot_stack before each SIPI; APs start one at a time.
 */
#include "gdt.h"
#include "trampoline.h"

#define REL(x) ((x) - trampoline_start + TRAMPOLINE_BASE)

    .section .text
    .code16
    .globl trampoline_start, trampoline_end
trampoline_start:
    cli
    cld
    xor %ax, %ax
    mov %ax, %ds
    /* 32-bit operand: the GDT itself lives above 1 MiB. */
    lgdtl REL(tramp_gdt_desc)
    mov %cr0, %eax
    or $1, %eax                     /* PE */
    mov %eax, %cr0
    ljmpl $GDT_CODE, $REL(tramp32)

    .code32
tramp32:
    mov $GDT_DATA, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %fs
    mov %eax, %gs
    mov %eax, %ss
    mov ap_boot_stack, %esp
    /* Absolute jump into the kernel proper, linked at 1 MiB. */
    mov $ap_main, %eax
    call *%eax
1:  cli
    hlt
    jmp 1b

    .align 4
tramp_gdt_desc:
    .word GDT_LIMIT
    .long gdt
trampoline_end:

    .section .note.GNU-stack, "", @progbits
