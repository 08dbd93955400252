/* TSC-based time: rdtsc does not exit, so timing loops stay exit-free. */
#ifndef GUEST_TSC_H
#define GUEST_TSC_H

#include <stdint.h>

extern uint32_t tsc_khz;

/* Calibrate; prints an INFO line saying how. Call once, on cpu 0. */
void tsc_init(void);

uint64_t us_to_tsc(uint32_t us);
uint64_t ms_to_tsc(uint32_t ms);
uint32_t tsc_to_us(uint64_t cycles);

/* Busy-wait without any exit (no pause either, to avoid PLE exits). */
void udelay(uint32_t us);

#endif
