#!/usr/bin/env bash
# Build and run the libFuzzer target for what a guest controls in pvsched
# (tests/fuzz/pvsched-fuzz.c): the real hw/pvsched/vcpu.c, vcpu-state.c
# and guest-area.c, compiled with clang -fsanitize=fuzzer,address,undefined
# and linked with the QEMU utility code `make qemu` built (gcc, not
# instrumented: coverage and the sanitizers are on pvsched's code and the
# harness).  No second QEMU build: QEMU's --enable-fuzzing would be one.
#
# usage: fuzz.sh [--seconds N] [--runs N] [--jobs N] [--out DIR]
#                [--build-only] [-- LIBFUZZER_ARGS...]
#
# Builds into DIR (default build/fuzz) and runs from the seed corpus
# tests/fuzz/pvsched-corpus/ into a working corpus in DIR/corpus (kept
# between runs); a finding is written to DIR as crash-* (or leak-*,
# timeout-*), and the script fails.  Default: 60 seconds.  A finding
# replays with PVSCHED_FUZZ_DEBUG=1 DIR/pvsched-fuzz DIR/crash-...,
# which prints every step and the state after it.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)
src=$top/build/src
qb=$top/build/qemu
out=$top/build/fuzz
seeds=$top/tests/fuzz/pvsched-corpus

seconds=60 runs= jobs=1 build_only=
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) seconds=$2; shift 2 ;;
        --runs) runs=$2; seconds=0; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        --out) out=$(realpath -m "$2"); shift 2 ;;
        --build-only) build_only=1; shift ;;
        --) shift; break ;;
        *) die "usage: fuzz.sh [--seconds N] [--runs N] [--jobs N] [--out DIR] [--build-only] [-- ARGS]" ;;
    esac
done

[ -f "$qb/libqemuutil.a" ] && [ -f "$qb/config-host.h" ] ||
    die "build/qemu is not built: run 'make qemu' first"
command -v clang >/dev/null || die "clang is missing: scripts/install-deps.sh --test"

# The include paths and defines of QEMU's own compile lines, for clang.
CFLAGS=(-std=gnu11 -O1 -g -fno-omit-frame-pointer -Wall -Werror
        -Wno-unused-function -fno-strict-aliasing -fno-common -fwrapv
        -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -D_LARGEFILE_SOURCE -mcx16 -msse2
        -I"$qb" -I"$qb/qapi" -I"$qb/trace"
        -isystem "$src/linux-headers" -isystem "$qb/linux-headers"
        -iquote "$qb" -iquote "$src" -iquote "$src/include"
        -iquote "$src/host/include/x86_64" -iquote "$src/host/include/generic"
        $(pkg-config --cflags glib-2.0)
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -fno-sanitize=function)
# What test-pvsched-vcpu links besides libqemuutil.a (objects, not archives).
QEMU_OBJS=("$qb/libevent-loop-base.a.p/event-loop-base.c.o"
           "$qb"/libqom.a.p/qom_{container,object,object_interfaces,qom-qobject}.c.o)

mkdir -p "$out/obj" "$out/corpus"
objs=()
for f in "$top/tests/fuzz/pvsched-fuzz.c" "$src"/hw/pvsched/{vcpu,vcpu-state,guest-area}.c; do
    # Always: four files, seconds; no header dependency to get wrong.
    o=$out/obj/$(basename "$f" .c).o
    clang "${CFLAGS[@]}" -c "$f" -o "$o"
    objs+=("$o")
done
clang -fsanitize=fuzzer,address,undefined -o "$out/pvsched-fuzz" "${objs[@]}" \
    "${QEMU_OBJS[@]}" -Wl,--start-group "$qb/libqemuutil.a" -lrt -lm -pthread \
    $(pkg-config --libs glib-2.0) -Wl,--end-group
log "built $out/pvsched-fuzz"
[ -z "$build_only" ] || exit 0

args=(-max_len=256 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
      -artifact_prefix="$out/" "$@")
[ -n "$runs" ] && args+=(-runs="$runs") || args+=(-max_total_time="$seconds")
[ "$jobs" -le 1 ] || args+=(-fork="$jobs")
cd "$out"
# halt_on_error: UBSan's reports are findings too.
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
ASAN_OPTIONS=detect_leaks=1 \
    nice -n 10 "$out/pvsched-fuzz" "${args[@]}" "$out/corpus" "$seeds"
