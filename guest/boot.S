/*
 * Multiboot v1 entry. QEMU's -kernel loads this 32-bit ELF at 1 MiB and
 * jumps here in flat protected mode with EAX = magic, EBX = info.
 * Multiboot leaves the GDT undefined, so load our own before anything
 * reloads a segment register (the APs use the same GDT).
 */
#include "gdt.h"

#define MB_MAGIC    0x1badb002
#define MB_FLAGS    0x00000003      /* page-align modules, want mem info */

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .data
    .align 8
    .globl gdt, gdt_desc
gdt:
    .quad 0                         /* null */
    .quad 0x00cf9a000000ffff        /* GDT_CODE: flat 4 GiB, 32-bit, RX */
    .quad 0x00cf92000000ffff        /* GDT_DATA: flat 4 GiB, RW */
gdt_end:
gdt_desc:
    .word GDT_LIMIT
    .long gdt

    .section .text
    .globl _start
_start:
    cli
    cld
    lgdt gdt_desc
    ljmp $GDT_CODE, $1f
1:  mov $GDT_DATA, %ecx
    mov %ecx, %ds
    mov %ecx, %es
    mov %ecx, %fs
    mov %ecx, %gs
    mov %ecx, %ss
    /* cpu 0 runs on cpu_stacks[0]: this_cpu() depends on it. */
    mov $(cpu_stacks + STACK_SIZE_ASM), %esp
    /* Zero .bss ourselves rather than trust the loader; keep EAX/EBX. */
    mov %eax, %esi
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    push %ebx
    push %esi
    call kmain
2:  cli
    hlt
    jmp 2b

    .section .note.GNU-stack, "", @progbits
