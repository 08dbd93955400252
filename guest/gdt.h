/* Segment selectors of the flat GDT in boot.S; shared by C and assembly. */
#ifndef GUEST_GDT_H
#define GUEST_GDT_H

#define GDT_CODE        0x08
#define GDT_DATA        0x10
#define GDT_LIMIT       (3 * 8 - 1)  /* null, code, data */
#define STACK_SIZE_ASM  16384   /* must equal STACK_SIZE in smp.h */

#endif
