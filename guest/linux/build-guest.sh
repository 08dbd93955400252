#!/bin/bash
# Build the Linux test guest for pvsched from Debian packages only:
#   OUTDIR/bzImage            Debian bookworm's 6.1 kernel (linux-image-*-amd64)
#   OUTDIR/initramfs.cpio.gz  busybox, cyclictest, pvsched.ko and /init
#
# usage: guest/linux/build-guest.sh OUTDIR
#
# Packages are fetched with apt-get download and unpacked with dpkg-deb
# into PVSCHED_LINUX_CACHE (default $PVSCHED_CACHE/linux-guest), so a
# rebuild is seconds and needs no network.  Run as root (it installs the
# host tools it needs with apt-get).
#
# SPDX-License-Identifier: GPL-2.0-or-later

set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$(realpath -m "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${PVSCHED_LINUX_CACHE:-${PVSCHED_CACHE:-/var/cache/pvsched}/linux-guest}

log() { echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

# --- host tools: gcc-12 is the guest kernel's compiler (CONFIG_CC_VERSION_TEXT)
need=()
for p in gcc-12 make cpio gzip libelf1 libssl3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
        need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    [ "$(id -u)" = 0 ] || die "run as root to install: ${need[*]}"
    apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
fi

# --- which kernel: the newest 6.1 that bookworm (incl. security) carries
mkdir -p "$CACHE/deb"
resolve() {
    # linux-image-amd64 is the meta package; its Depends names the ABI.
    local ver
    ver=$(apt-cache madison linux-image-amd64 | awk -F'|' '$2 ~ /^ *6\.1\./ {gsub(/ /,"",$2); print $2; exit}')
    [ -n "$ver" ] || return 1
    ABI=$(apt-cache show "linux-image-amd64=$ver" |
          sed -n 's/^Depends: linux-image-\([0-9.]*-[0-9]*-amd64\).*/\1/p' | head -1)
    [ -n "$ABI" ] || return 1
    KVER=$ver
}
if [ -f "$CACHE/kernel.env" ] && [ -z "${PVSCHED_LINUX_REFRESH:-}" ]; then
    # Pinned by the first build: rebuilds stay offline and reproducible.
    # PVSCHED_LINUX_REFRESH=1 picks up a newer kernel from the archive.
    . "$CACHE/kernel.env"
else
    resolve || { apt-get update >&2; resolve; } ||
        die "no linux-image-amd64 6.1.x in the apt sources (bookworm?)"
    printf 'ABI=%s\nKVER=%s\n' "$ABI" "$KVER" > "$CACHE/kernel.env"
fi
FLAVOUR_COMMON=${ABI%-amd64}-common
log "guest kernel $ABI ($KVER)"

# busybox has no chrt: util-linux's, which also does SCHED_DEADLINE.
USERLAND=(busybox-static rt-tests util-linux libnuma1 libc6)
PKGS=("linux-image-$ABI=$KVER" "linux-headers-$ABI=$KVER"
      "linux-headers-$FLAVOUR_COMMON=$KVER" "linux-kbuild-6.1=$KVER"
      "${USERLAND[@]}")

# One download per package name+version; a stamp lists what was fetched.
stamp="$CACHE/deb/fetched-$(echo "${PKGS[*]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    log "downloading ${PKGS[*]}"
    # _apt cannot write into root's cache dir: download from a temp dir.
    tmp=$(mktemp -d)
    chown _apt "$tmp" 2>/dev/null || true
    (cd "$tmp" && apt-get download "${PKGS[@]}" >&2) ||
        { apt-get update >&2 || true; (cd "$tmp" && apt-get download "${PKGS[@]}" >&2); }
    mv "$tmp"/*.deb "$CACHE/deb/"
    rmdir "$tmp"
    touch "$stamp"
fi
# deb NAME [ARCH]: the newest cached package (ARCH defaults to amd64/all).
deb() {
    { ls -1 "$CACHE"/deb/"$1"_*_"${2:-amd64}".deb \
        "$CACHE"/deb/"$1"_*_all.deb 2>/dev/null || true; } | sort -V | tail -1
}

# --- unpack kernel headers + kbuild into a private root
ROOT="$CACHE/root-$ABI"
if [ ! -f "$ROOT/.done" ]; then
    log "unpacking headers into $ROOT"
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    for p in "linux-headers-$ABI" "linux-headers-$FLAVOUR_COMMON" linux-kbuild-6.1; do
        f=$(deb "$p")
        [ -n "$f" ] || die "missing package $p in $CACHE/deb"
        dpkg-deb -x "$f" "$ROOT"
    done
    # The flavour's Makefile includes the common tree by absolute path.
    echo "include $ROOT/usr/src/linux-headers-$FLAVOUR_COMMON/Makefile" \
        > "$ROOT/usr/src/linux-headers-$ABI/Makefile"
    touch "$ROOT/.done"
fi
KDIR="$ROOT/usr/src/linux-headers-$ABI"

mkdir -p "$OUT"
BUILD="$OUT/.build"
rm -rf "$BUILD"
mkdir -p "$BUILD"

# --- the kernel image: only /boot/vmlinuz from the 70 MB package
f=$(deb "linux-image-$ABI")
[ -n "$f" ] || die "missing package linux-image-$ABI"
dpkg-deb --fsys-tarfile "$f" | tar -x -C "$BUILD" "./boot/vmlinuz-$ABI"
cp "$BUILD/boot/vmlinuz-$ABI" "$OUT/bzImage"

# --- the module, built in a copy so the source tree stays clean
cp -r "$HERE/pvsched" "$BUILD/pvsched"
log "building pvsched.ko against $ABI"
if ! make -C "$KDIR" M="$BUILD/pvsched" PVSCHED_INCLUDE="$REPO/include" \
        modules > "$BUILD/module.log" 2>&1; then
    cat "$BUILD/module.log" >&2
    die "module build failed"
fi
if grep -qiE 'warning|error' "$BUILD/module.log"; then
    cat "$BUILD/module.log" >&2
    die "module build is not warning-free"
fi

# --- the initramfs
IR="$BUILD/initramfs"
mkdir -p "$IR"/{bin,sbin,dev,proc,sys,tmp,run,root,etc,lib/modules}
for p in "${USERLAND[@]}"; do
    f=$(deb "$p")
    [ -n "$f" ] || die "missing package $p in $CACHE/deb"
    dpkg-deb -x "$f" "$BUILD/pkgs"
done
cp "$BUILD/pkgs/bin/busybox" "$IR/bin/busybox"
# Applet links at build time: the guest's /init must not depend on them
# being created (and it stays a plain cpio).
for a in $("$IR/bin/busybox" --list); do
    [ -e "$IR/bin/$a" ] || ln -s busybox "$IR/bin/$a"
done
[ -e "$IR/bin/sh" ] || die "busybox --list gave no applets"

# cyclictest and chrt are dynamically linked: copy their interpreter
# and, following DT_NEEDED, every library from the unpacked packages (not
# the host's: the guest's userland is Debian bookworm's, whatever this
# host runs).
copy_lib() {
    local name=$1 src
    src=$(find "$BUILD/pkgs/lib" "$BUILD/pkgs/usr/lib" -name "$name" \
          \( -type f -o -type l \) | head -1)
    [ -n "$src" ] || die "$name is not in the packages"
    local dest=${src#"$BUILD/pkgs"}
    [ -e "$IR$dest" ] && return 0
    mkdir -p "$IR$(dirname "$dest")"
    cp -L "$src" "$IR$dest"
    local n
    for n in $(readelf -d "$src" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        copy_lib "$n"
    done
}
copy_program() {
    local prog=$1 interp n
    mkdir -p "$IR/usr/bin"
    cp "$BUILD/pkgs/usr/bin/$prog" "$IR/usr/bin/$prog"
    interp=$(readelf -l "$IR/usr/bin/$prog" |
             sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
    [ "$interp" = /lib64/ld-linux-x86-64.so.2 ] ||
        die "$prog: unexpected interpreter '$interp'"
    mkdir -p "$IR/lib64"
    cp -L "$BUILD/pkgs$interp" "$IR$interp"
    for n in $(readelf -d "$IR/usr/bin/$prog" |
               sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        copy_lib "$n"
    done
}
copy_program cyclictest
copy_program chrt

# No debug info: the guest kernel copies and parses every byte at insmod.
strip --strip-debug -o "$IR/lib/modules/pvsched.ko" "$BUILD/pvsched/pvsched.ko"
# Only /init: the scenarios come from the host at run time (see init).
cp "$HERE/initramfs/init" "$IR/init"
chmod 755 "$IR/init"

(cd "$IR" && find . -print0 | LC_ALL=C sort -z |
     cpio --quiet -o -0 -H newc --owner=0:0) | gzip -9 > "$OUT/initramfs.cpio.gz"
echo "$ABI" > "$OUT/kernel-release"
log "wrote $OUT/bzImage $OUT/initramfs.cpio.gz ($(du -h "$OUT/initramfs.cpio.gz" | cut -f1))"
