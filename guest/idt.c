#include "idt.h"
#include "check.h"
#include "gdt.h"
#include "print.h"

#define NUM_VECTORS     32
#define GATE_INTR32     0x8e    /* present, ring 0, 32-bit interrupt gate */
#define VEC_GP          13

struct gate {
    uint16_t off_lo, sel;
    uint8_t zero, type;
    uint16_t off_hi;
} __attribute__((packed));

struct idt_desc {
    uint16_t limit;
    uint32_t base;
} __attribute__((packed));

extern const uint32_t isr_table[NUM_VECTORS];

static struct gate idt[NUM_VECTORS];
volatile uint32_t gp_count[MAX_CPUS];

void idt_init(void)
{
    int i;

    for (i = 0; i < NUM_VECTORS; i++) {
        idt[i].off_lo = isr_table[i] & 0xffff;
        idt[i].off_hi = isr_table[i] >> 16;
        idt[i].sel = GDT_CODE;
        idt[i].zero = 0;
        idt[i].type = GATE_INTR32;
    }
}

void idt_load(void)
{
    struct idt_desc d = { sizeof(idt) - 1, (uint32_t)idt };

    asm volatile("lidt %0" : : "m"(d));
}

/* wrmsr is 0F 30, rdmsr is 0F 32: both two bytes, no prefixes used. */
static int is_msr_insn(uint32_t eip)
{
    const uint8_t *p = (const uint8_t *)eip;

    return p[0] == 0x0f && (p[1] == 0x30 || p[1] == 0x32);
}

void exc_dispatch(struct exc_frame *f);
void exc_dispatch(struct exc_frame *f)
{
    if (f->vector == VEC_GP && is_msr_insn(f->eip)) {
        gp_count[this_cpu()]++;
        f->eip += 2;
        return;
    }
    /*
     * Same privilege level: the CPU pushed no esp, so the interrupted
     * stack starts right after the frame.  Its top words name the
     * caller when a bad pointer was called or returned to.
     */
    const uint32_t *sp = (const uint32_t *)(f + 1);

    check_fatal("exception", "vec=%u eip=%x err=%x cpu=%u esp=%x "
                "stack=%x,%x,%x,%x eax=%x ebx=%x ecx=%x edx=%x esi=%x "
                "edi=%x ebp=%x", f->vector, f->eip, f->error, this_cpu(),
                (uint32_t)sp, sp[0], sp[1], sp[2], sp[3], f->eax, f->ebx,
                f->ecx, f->edx, f->esi, f->edi, f->ebp);
}
