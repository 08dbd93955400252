#!/usr/bin/env bash
# Lay the overlay and the upstream patches onto a copy of the pristine
# tree: build/src.  Only files whose content changed are rewritten, so
# ninja rebuilds just what an edit touched.
#
# usage: prepare-tree.sh PRISTINE_TREE OUT_TREE
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"

pristine=$1
out=$2
top=$(pvsched_top)
stage=$out.stage

# Directories of the overlay, laid out as in the QEMU tree.
OVERLAY_DIRS="accel hw include qapi tests docs"

rm -rf "$stage"
mkdir -p "$(dirname "$stage")"
# Hard links are cheap; patch and cp below replace files rather than
# writing through the links, so the pristine tree stays pristine.
cp -al "$pristine" "$stage"
for p in "$top"/patches/*.patch; do
    [ -e "$p" ] || continue
    patch -s -p1 -d "$stage" --no-backup-if-mismatch -r - < "$p" ||
        die "$(basename "$p") does not apply to $(cat "$pristine/.pvsched-pristine")"
done
for d in $OVERLAY_DIRS; do
    [ -d "$top/$d" ] || continue
    (cd "$top" && find "$d" -type f ! -name '*~') | while read -r f; do
        mkdir -p "$stage/$(dirname "$f")"
        cp --remove-destination "$top/$f" "$stage/$f"
    done
done
mkdir -p "$out"
rsync -rlc --delete "$stage/" "$out/"
rm -rf "$stage"
