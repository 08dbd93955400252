#!/usr/bin/env bash
# Fetch the L1 VM's kernel from Debian's archive and cache it in
# $PVSCHED_CACHE/l1: Debian's 6.1 kernel with its modules, and busybox.
# Prints the cache directory.  Quick when everything is already there.
# The QEMU that runs L1 is built, not fetched (scripts/l1/build-qemu.sh).
set -euo pipefail
. "$(dirname "$0")/../pvsched-env.sh"

L1=$PVSCHED_CACHE/l1

# Extract the .deb files of "pkg=version ..." into $1, once per set of
# versions (recorded in $1/.pvsched-debs).
extract() {
    local dir=$1 want
    shift
    want="$*"
    if [ "$(cat "$dir/.pvsched-debs" 2>/dev/null)" = "$want" ]; then
        return
    fi
    log "L1: fetching $want"
    rm -rf "$dir" "$L1/dl"
    mkdir -p "$dir" "$L1/dl"
    (cd "$L1/dl" && apt-get download -qq "$@" 2>/dev/null) ||
        die "L1: apt-get download $* failed (run scripts/install-deps.sh)"
    for deb in "$L1"/dl/*.deb; do
        dpkg-deb -x "$deb" "$dir"
    done
    rm -rf "$L1/dl"
    echo "$want" > "$dir/.pvsched-debs"
}

fetch_kernel() {
    local image kver
    image=$(apt-cache depends linux-image-amd64 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-image-6\.1\.[^ ]*-amd64\)$/\1/p' |
            head -n 1)
    [ -n "$image" ] || die "L1: no linux-image-6.1.*-amd64 in apt"
    extract "$L1/kernel" "$image" "busybox-static"
    kver=${image#linux-image-}
    # The package leaves modules.dep to its postinst.
    [ -s "$L1/kernel/lib/modules/$kver/modules.dep" ] ||
        depmod -b "$L1/kernel" "$kver"
}

fetch_kernel
echo "$L1"
