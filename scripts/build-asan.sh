#!/usr/bin/env bash
# Build the patched QEMU with AddressSanitizer and UBSan, for the
# robustness tests (tests/functional/pvsched/robust/).
#
# usage: build-asan.sh [BUILDDIR]     (default build/qemu-asan)
#
# Uses the tree `make` prepared in build/src and the same options as
# build/qemu plus QEMU's own --enable-asan --enable-ubsan (meson's asan and
# ubsan options, which also add -fno-sanitize=function for us). Only
# qemu-system-x86_64 is built. build-qemu.sh reconfigures only when the
# options change and ccache is shared with the other builds, so running
# this again is cheap.
#
# -O0: with the sanitizers, -O2 compiles 2 to 3.6 times slower (5.3 s vs
# 1.5 s for target/i386/cpu.c here), and this build is compiled from
# scratch on every machine without a ccache; -O0 also keeps every frame in
# a sanitizer's stack trace.  What runs on it is guest-bound.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)
bld=${1:-$top/build/qemu-asan}

[ -f "$top/build/src/configure" ] ||
    die "build/src is not prepared: run 'make qemu' first"

# The machine is shared: stay below the other builds and the KVM tests.
PVSCHED_NINJA_TARGETS=qemu-system-x86_64 \
    nice -n 10 bash "$top/scripts/build-qemu.sh" "$top/build/src" "$bld" \
        --enable-asan --enable-ubsan -Doptimization=0 --disable-werror
