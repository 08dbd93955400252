#!/usr/bin/env bash
# Build the QEMU whose TCG runs the L1 VM (scripts/l1/run.sh): the same
# Debian source as the patched build (scripts/fetch-qemu.sh), with TCG,
# plus the fixes in scripts/l1/qemu-patches/ to TCG's emulated SVM that
# the L1 needs (issue 12).  Never the QEMU that pvsched patches.
#
# Before: bookworm's QEMU 7.2 froze L1 in 4 of 11 runs (both CPUs looping
# in exc_int3 at a kernel text-patching site: multi-threaded TCG running
# a stale translation of the temporary int3); bookworm-backports' 10.0.2
# did not, but lost interrupts of L1's to the race the patch fixes.
# Prints the path of the binary.  Quick when it is built already.
#
# usage: build-qemu.sh [BUILDDIR]        (default: build/qemu-l1)
set -euo pipefail
. "$(dirname "$0")/../pvsched-env.sh"
top=$(pvsched_top)
bld=${1:-$top/build/qemu-l1}

pristine=$(bash "$top/scripts/fetch-qemu.sh")
patches=("$top"/scripts/l1/qemu-patches/*.patch)

# The patched tree, in the cache: hard links to the pristine tree, which
# patch(1) breaks for the files it changes (it writes new ones).  One
# path whatever the patches: ccache then recompiles only what they touch.
key=$(cat "$pristine/.pvsched-pristine" "${patches[@]}" | md5sum | cut -c1-12)
src=$PVSCHED_CACHE/l1/qemu-src
if [ "$(cat "$src/.pvsched-l1" 2>/dev/null)" != "$key" ]; then
    log "L1: preparing the L1's QEMU source ($src)"
    rm -rf "$src" "$src.tmp" "$src"-*
    mkdir -p "$PVSCHED_CACHE/l1"
    # The tree's contents: a pristine tree that is a symbolic link must
    # not be copied as the link, or patch(1) would write into it.
    mkdir -p "$src.tmp"
    cp -al "$pristine/." "$src.tmp/"
    for p in "${patches[@]}"; do
        patch -s -p1 -d "$src.tmp" < "$p" ||
            die "L1: $p does not apply to $(cat "$pristine/.pvsched-pristine")"
    done
    echo "$key" > "$src.tmp/.pvsched-l1"
    mv "$src.tmp" "$src"
fi

# TCG, 9p for L1's root; KVM stays in (scripts/build-qemu.sh turns it
# on), unused: L1 runs with -accel tcg.
bash "$top/scripts/build-qemu.sh" "$src" "$bld" \
    --enable-tcg --enable-attr --enable-virtfs >&2
echo "$(realpath "$bld")/qemu-system-x86_64"
