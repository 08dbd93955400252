#!/usr/bin/env bash
# Fetch the pinned QEMU source package from Debian, extract it with
# Debian's patches applied, and cache the pristine tree outside the
# repository.  Prints the pristine tree's path.
#
# The pin falls back to the newest $PVSCHED_QEMU_SERIES.x the archive
# offers when the pinned version has left it.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"

pick_version() {
    local v
    # No grep -q: with pipefail, an early exit would SIGPIPE apt-cache.
    if apt-cache showsrc qemu 2>/dev/null |
           grep -x "Version: $PVSCHED_QEMU_PIN" >/dev/null; then
        echo "$PVSCHED_QEMU_PIN"
        return
    fi
    v=$(apt-cache showsrc qemu 2>/dev/null | sed -n 's/^Version: //p' |
        grep -E "^([0-9]+:)?${PVSCHED_QEMU_SERIES//./\\.}\.[0-9]+\+" |
        sort -V | tail -n 1)
    [ -n "$v" ] || die "no QEMU $PVSCHED_QEMU_SERIES.x source package in apt (deb-src lines missing? run scripts/install-deps.sh)"
    log "pinned qemu $PVSCHED_QEMU_PIN is gone from the archive, using $v"
    echo "$v"
}

version=$(pick_version)
upstream=${version#*:}
upstream=${upstream%%+*}
tree=$PVSCHED_CACHE/qemu-$upstream
if [ -f "$tree/.pvsched-pristine" ]; then
    echo "$tree"
    exit 0
fi

mkdir -p "$PVSCHED_CACHE/dl"
cd "$PVSCHED_CACHE/dl"
dsc=$(ls qemu_"${version#*:}".dsc 2>/dev/null || true)
if [ -z "$dsc" ]; then
    log "downloading the qemu $version source package"
    apt-get source -qq --download-only "qemu=$version" >&2 2>/dev/null ||
        apt-get source --download-only "qemu=$version" >&2
    dsc=qemu_${version#*:}.dsc
fi
rm -rf "$tree.tmp"
log "extracting $dsc"
dpkg-source -q -x "$dsc" "$tree.tmp" >&2
got=$(cat "$tree.tmp/VERSION")
case "$got" in
    "$PVSCHED_QEMU_SERIES".*) ;;
    *) die "$dsc holds QEMU $got, not $PVSCHED_QEMU_SERIES.x" ;;
esac
echo "$version" > "$tree.tmp/.pvsched-pristine"
mv "$tree.tmp" "$tree"
echo "$tree"
