#!/usr/bin/env bash
# Build the stock QEMU the benchmarks compare against: the same pinned
# source as the patched build (scripts/fetch-qemu.sh's pristine tree,
# Debian's patches applied, no pvsched overlay or patches), configured and
# built by scripts/build-qemu.sh with the same options, into
# build/qemu-stock.  Prints the path of the binary.
#
# usage: build-stock-qemu.sh [BUILDDIR]      (default: build/qemu-stock)
#
# The pristine tree is read-only input here: QEMU builds out of tree, and
# the check at the end makes sure nothing in it changed.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)
bld=${1:-$top/build/qemu-stock}

bash "$top/scripts/install-deps.sh" >&2
pristine=$(bash "$top/scripts/fetch-qemu.sh")
stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
bash "$top/scripts/build-qemu.sh" "$pristine" "$bld"
changed=$(find "$pristine" -newer "$stamp" -print -quit)
[ -z "$changed" ] || die "building stock QEMU wrote into the pristine tree: $changed"
log "stock QEMU $(cat "$pristine/.pvsched-pristine"): $bld/qemu-system-x86_64"
echo "$(realpath "$bld")/qemu-system-x86_64"
