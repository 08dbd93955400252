#!/usr/bin/env bash
# Fetch what the L1 VM is made of from Debian's archive and cache it in
# $PVSCHED_CACHE/l1: QEMU 10.0.x from bookworm-backports (its TCG runs
# the L1), Debian's 6.1 kernel with its modules, and busybox.  Prints
# the cache directory.  Quick when everything is already there.
#
# Why QEMU 10.0.x and not bookworm's 7.2: with 7.2, multi-threaded TCG
# froze L1 in 4 of 11 runs (both CPUs looping in exc_int3 at a kernel
# text-patching site: a stale translation of the temporary int3).
set -euo pipefail
. "$(dirname "$0")/../pvsched-env.sh"

L1=$PVSCHED_CACHE/l1
QEMU_MIN=10.0

# Newest version of $1 that the suite $2 offers.
candidate() {
    apt-cache madison "$1" 2>/dev/null |
        awk -F'|' -v s="$2" '$3 ~ s { gsub(/ /, "", $2); print $2 }' |
        sort -V | tail -n 1
}

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

fetch_qemu() {
    local v libs
    v=$(candidate qemu-system-x86 bookworm-backports)
    [ -n "$v" ] ||
        die "L1: no qemu-system-x86 in bookworm-backports (apt-get update?)"
    dpkg --compare-versions "${v#*:}" ge "$QEMU_MIN" ||
        die "L1: qemu-system-x86 $v is older than $QEMU_MIN: its TCG freezes L1"
    extract "$L1/qemu" "qemu-system-x86=$v" \
        "qemu-system-data=$v" \
        "seabios=$(candidate seabios bookworm-backports)"
    # The binary's shared libraries are bookworm's own: install them.
    libs=$(apt-cache depends "qemu-system-x86=$v" 2>/dev/null |
           sed -n 's/^ *Depends: \(lib[^ ]*\)$/\1/p' | sort -u)
    bash "$(dirname "$0")/../install-deps.sh" $libs >&2
    if LD_LIBRARY_PATH= "$L1/qemu/usr/bin/qemu-system-x86_64" --version \
           > /dev/null 2>"$L1/qemu-error"; then
        rm -f "$L1/qemu-error"
    else
        die "L1: $L1/qemu/usr/bin/qemu-system-x86_64 does not run: $(cat "$L1/qemu-error")"
    fi
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

fetch_qemu
fetch_kernel
echo "$L1"
