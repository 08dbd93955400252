#!/bin/bash
# Build the Linux test guest for pvsched from Debian packages only:
#   OUTDIR/bzImage            Debian bookworm's 6.1 kernel (linux-image-*-amd64)
#   OUTDIR/vmlinux            the same kernel, uncompressed, PVH-bootable
#   OUTDIR/initramfs.cpio.gz  busybox, cyclictest, pvsched.ko and /init
#                             (the userland is i386: see "32-bit userland")
#   OUTDIR/initramfs.cpio     the same, uncompressed
#
# usage: guest/linux/build-guest.sh OUTDIR
#
# Packages are fetched with apt-get download and unpacked with dpkg-deb
# into PVSCHED_LINUX_CACHE (default /var/cache/pvsched/linux-guest), so a
# rebuild is seconds and needs no network.  Run as root (it installs the
# host tools it needs with apt-get).
#
# SPDX-License-Identifier: GPL-2.0-or-later

set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
OUT=$(realpath -m "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${PVSCHED_LINUX_CACHE:-/var/cache/pvsched/linux-guest}

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

# 32-bit userland: this host's nested KVM mishandles the 64-bit SYSCALL
# instruction of an unmodified guest (it jumps to the guest's LSTAR but
# stays in user mode), and raises #UD for int $0x80, which the guest
# kernel, patched by extract-pvh.py, turns back into the system call.
# i386 processes make every system call with int $0x80 once the guest
# kernel is told not to use SYSCALL32/SYSENTER32 in its 32-bit vDSO
# (clearcpuid=110,111 in kernel-args).  The 64-bit kernel runs them
# through CONFIG_IA32_EMULATION, as on any Debian amd64 system.  (Still
# not enough on this host: see "This host's KVM" in the docs.)
USERLAND=(busybox-static:i386 rt-tests:i386 libnuma1:i386 libc6:i386)
if ! dpkg --print-foreign-architectures | grep -qx i386; then
    log "adding the i386 architecture to dpkg for the guest's userland"
    [ "$(id -u)" = 0 ] || die "run as root: dpkg --add-architecture i386"
    dpkg --add-architecture i386
    # A half-synced mirror fails one index; what the download needs is
    # usually there, and apt-get download says so if it is not.
    apt-get update >&2 || true
fi
PKGS=("linux-image-$ABI=$KVER" "linux-headers-$ABI=$KVER"
      "linux-headers-$FLAVOUR_COMMON=$KVER" "linux-kbuild-6.1=$KVER"
      "${USERLAND[@]}")

# One download per package name+version; a stamp lists what was fetched.
stamp="$CACHE/deb/fetched-$ABI-$KVER-i386"
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
# The same kernel as a PVH-bootable ELF, with the one change this host's
# nested KVM needs to boot it (see extract-pvh.py).
python3 "$HERE/extract-pvh.py" "$OUT/bzImage" "$OUT/vmlinux"

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
for p in busybox-static rt-tests libnuma1 libc6; do
    f=$(deb "$p" i386)
    [ -n "$f" ] || die "missing package $p:i386 in $CACHE/deb"
    dpkg-deb -x "$f" "$BUILD/pkgs"
done
cp "$BUILD/pkgs/bin/busybox" "$IR/bin/busybox"
# Applet links at build time: the guest's /init must not depend on them
# being created (and it stays a plain cpio).
for a in $("$IR/bin/busybox" --list 2>/dev/null ||
           "$BUILD/pkgs/bin/busybox" --list); do
    [ -e "$IR/bin/$a" ] || ln -s busybox "$IR/bin/$a"
done
[ -e "$IR/bin/sh" ] || die "busybox --list gave no applets (can this host run i386?)"

cp "$BUILD/pkgs/usr/bin/cyclictest" "$IR/bin/cyclictest"
# cyclictest is dynamically linked: copy its interpreter and, following
# DT_NEEDED, every library from the unpacked i386 packages (not the
# host's: it need not run i386 programs).
copy_lib() {
    local name=$1 src
    src=$(find "$BUILD/pkgs/lib" "$BUILD/pkgs/usr/lib" -name "$name" \
          \( -type f -o -type l \) | head -1)
    [ -n "$src" ] || die "cyclictest: $name not in the i386 packages"
    local dest=${src#"$BUILD/pkgs"}
    [ -e "$IR$dest" ] && return 0
    mkdir -p "$IR$(dirname "$dest")"
    cp -L "$src" "$IR$dest"
    local n
    for n in $(readelf -d "$src" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        copy_lib "$n"
    done
}
interp=$(readelf -l "$IR/bin/cyclictest" |
         sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
[ "$interp" = /lib/ld-linux.so.2 ] || die "cyclictest: unexpected interpreter '$interp'"
mkdir -p "$IR/lib"
cp -L "$BUILD/pkgs$interp" "$IR$interp"
for n in $(readelf -d "$IR/bin/cyclictest" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    copy_lib "$n"
done

# No debug info: the guest kernel copies and parses every byte at insmod.
strip --strip-debug -o "$IR/lib/modules/pvsched.ko" "$BUILD/pvsched/pvsched.ko"
# Only /init: the scenarios come from the host at run time (see init).
cp "$HERE/initramfs/init" "$IR/init"
chmod 755 "$IR/init"
# PID 1 for a host that emulates guest user code (rdinit=/sbin/pvinit,
# see pvinit.c): no libc, general registers only.
gcc -m32 -static -nostdlib -ffreestanding -fno-pic -no-pie \
    -fno-stack-protector -fcf-protection=none -mgeneral-regs-only \
    -march=i686 -O2 -Wall -Wextra -Werror \
    -o "$IR/sbin/pvinit" "$HERE/initramfs/pvinit.c" ||
    die "pvinit build failed"

(cd "$IR" && find . -print0 | LC_ALL=C sort -z |
     cpio --quiet -o -0 -H newc --owner=0:0) > "$OUT/initramfs.cpio"
# The tests boot the uncompressed one: inflating it is minutes of emulated
# guest kernel on this host (see extract-pvh.py).
gzip -9 -c "$OUT/initramfs.cpio" > "$OUT/initramfs.cpio.gz"
echo "$ABI" > "$OUT/kernel-release"
log "wrote $OUT/bzImage $OUT/initramfs.cpio.gz ($(du -h "$OUT/initramfs.cpio.gz" | cut -f1))"
