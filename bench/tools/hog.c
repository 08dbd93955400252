/*
 * CPU hog for the latency-under-contention benchmark: a busy loop that
 * publishes its iteration count in a shared file, so that the benchmark
 * can read the hog's throughput over any window without stopping it.
 *
 * usage: hog COUNTER_FILE
 *
 * The count is a little-endian uint64 at offset 0, updated every 4096
 * iterations.  SIGSTOP/SIGCONT pause it; SIGTERM ends it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    volatile uint64_t *shared;
    uint64_t n = 0, x = 1;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: %s COUNTER_FILE\n", argv[0]);
        return 2;
    }
    fd = open(argv[1], O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 4096) < 0) {
        perror(argv[1]);
        return 1;
    }
    shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (shared == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    for (;;) {
        /* One iteration: a dependent multiply-add, a few ns. */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        if (!(++n & 4095)) {
            *shared = n;
            __asm__ volatile("" : : "r"(x) : "memory");
        }
    }
}
