#!/usr/bin/env bash
# Configure (once per option set) and build QEMU from build/src.
#
# usage: build-qemu.sh SRC BUILDDIR [extra configure options...]
# Builds $PVSCHED_NINJA_TARGETS, by default qemu-system-x86_64.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"

src=$(realpath "$1")
bld=$2
shift 2

# A minimal x86_64 KVM build; firmware from Debian's seabios and
# qemu-system-data packages so that no -L is needed at run time.
# -Werror always, as QEMU's configure does for a git checkout (the
# series' tree, scripts/check-series.sh): with one set of compiler flags
# ccache shares objects between this build, the series' commits and the
# build without pvsched; with two, a cold make check compiled QEMU once
# more for the series.
opts=(--python=/usr/bin/python3 --target-list=x86_64-softmmu
      --enable-kvm --disable-tcg --enable-seccomp --disable-docs --enable-werror
      --without-default-features --enable-slirp --enable-fdt=system
      --disable-install-blobs
      --firmwarepath=/usr/share/seabios:/usr/share/qemu:/usr/lib/ipxe/qemu
      "$@")

mkdir -p "$bld"
bld=$(realpath "$bld")

# QEMU's configure names the compiler itself, so meson never adds ccache:
# put ccache's compiler links first instead, when ccache is installed.
if [ -d /usr/lib/ccache ] && [ -z "${PVSCHED_NO_CCACHE:-}" ]; then
    export PATH=/usr/lib/ccache:$PATH
    export CCACHE_BASEDIR=$(pvsched_top)
fi
stamp="$bld/.pvsched-configure"
want="$src ${opts[*]}"
if [ ! -f "$bld/build.ninja" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "configuring $bld"
    rm -rf "$bld"
    mkdir -p "$bld"
    (cd "$bld" && "$src/configure" "${opts[@]}" > configure.log 2>&1) ||
        { tail -n 30 "$bld/configure.log" >&2; die "configure failed: $bld/configure.log"; }
    echo "$want" > "$stamp"
fi
log "building in $bld"
# shellcheck disable=SC2086
ninja -C "$bld" ${PVSCHED_NINJA_TARGETS:-qemu-system-x86_64} >&2

# Run from the build tree, QEMU looks for firmware under qemu-bundle/ +
# the configured path: point those at Debian's packages.
for d in /usr/share/seabios /usr/share/qemu /usr/lib/ipxe/qemu; do
    mkdir -p "$bld/qemu-bundle$(dirname "$d")"
    ln -sfn "$d" "$bld/qemu-bundle$d"
done
