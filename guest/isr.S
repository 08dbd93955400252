/*
 * Exception entry stubs for vectors 0-31. Each pushes a fake error code
 * when the CPU does not push one, then its vector, so that exc_dispatch()
 * sees one frame layout (struct exc_frame in idt.h) for all of them.
 */
    .section .text

.macro ISR_NOERR vec
isr\vec:
    push $0
    push $\vec
    jmp isr_common
.endm

.macro ISR_ERR vec
isr\vec:
    push $\vec
    jmp isr_common
.endm

/* The CPU pushes an error code for 8, 10-14, 17, 21, 29 and 30. */
ISR_NOERR 0
ISR_NOERR 1
ISR_NOERR 2
ISR_NOERR 3
ISR_NOERR 4
ISR_NOERR 5
ISR_NOERR 6
ISR_NOERR 7
ISR_ERR   8
ISR_NOERR 9
ISR_ERR   10
ISR_ERR   11
ISR_ERR   12
ISR_ERR   13
ISR_ERR   14
ISR_NOERR 15
ISR_NOERR 16
ISR_ERR   17
ISR_NOERR 18
ISR_NOERR 19
ISR_NOERR 20
ISR_ERR   21
ISR_NOERR 22
ISR_NOERR 23
ISR_NOERR 24
ISR_NOERR 25
ISR_NOERR 26
ISR_NOERR 27
ISR_NOERR 28
ISR_ERR   29
ISR_ERR   30
ISR_NOERR 31

isr_common:
    pusha
    cld
    push %esp                       /* struct exc_frame * */
    call exc_dispatch
    add $4, %esp
    popa
    add $8, %esp                    /* vector, error code */
    /*
     * Return without iret: this machine's /dev/kvm (kvm_pvm) emulates
     * iret and only supports it in real mode ("emulation failure").
     * Same privilege level, same CS, so popf + ret does the same job:
     * stack is [eip, cs, eflags]; turn it into [eflags, eip].
     */
    push %eax                       /* [eax, eip, cs, eflags] */
    mov 4(%esp), %eax
    xchg %eax, 12(%esp)             /* [eax, eip, cs, eip], eax = eflags */
    mov %eax, 8(%esp)               /* [eax, eip, eflags, eip] */
    pop %eax
    add $4, %esp                    /* [eflags, eip] */
    popf
    ret

    .section .rodata
    .align 4
    .globl isr_table
isr_table:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .long isr\v
    .endr

    .section .note.GNU-stack, "", @progbits
