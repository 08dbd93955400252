#!/usr/bin/env bash
# Install what building and testing pvsched needs on Debian 12: build
# dependencies, firmware, and the deb-src/backports lines for them.
# Idempotent and quick when everything is already there.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"

PKGS="build-essential libglib2.0-dev libpixman-1-dev libfdt-dev flex bison
libseccomp-dev libslirp-dev python3-venv pkg-config ninja-build dpkg-dev
ccache seabios qemu-system-data rsync git patch xz-utils util-linux
python3-sphinx python3-sphinx-rtd-theme gdb kmod cpio"
BPO_PKGS="meson python3-pycotap"
# --test: what the tests need beyond building: libvirt (its daemon runs
# in the test, not as a service; where KVM is in the L1 VM it has no
# network, so everything is installed here first), setcap, matplotlib
# for the benchmarks' plots, rt-tests for the host side of the Linux
# guest's cyclictest benchmark, what builds the L1 VM, and clang with its
# sanitizer and libFuzzer runtimes for scripts/fuzz.sh.
TEST_PKGS="libcap2-bin python3-matplotlib clang libclang-rt-14-dev rt-tests"
TEST_BPO_PKGS="libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
libxml2-utils"
bpo_opts=()
if [ "${1:-}" = --test ]; then
    shift
    PKGS="$PKGS $TEST_PKGS"
    BPO_PKGS="$BPO_PKGS $TEST_BPO_PKGS"
    bpo_opts=(--no-install-recommends)
fi
SOURCES=/etc/apt/sources.list.d/pvsched.sources

[ "$(id -u)" = 0 ] || die "run as root (apt-get, and SCHED_FIFO for the tests)"

write_sources() {
    cat > "$SOURCES.new" <<'X'
# Added by pvsched: meson >= 1.5 from backports, QEMU 10.0.x source
# from trixie (bookworm-backports' own 10.0 .dsc has left the archive).
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
X
    if cmp -s "$SOURCES.new" "$SOURCES"; then
        rm -f "$SOURCES.new"
        return 1
    fi
    mv "$SOURCES.new" "$SOURCES"
}

missing() {
    local p
    for p in $PKGS $BPO_PKGS "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
            grep 'install ok installed' >/dev/null || echo "$p"
    done
}

meson_ok() {
    command -v meson >/dev/null &&
        dpkg --compare-versions "$(meson --version)" ge 1.5
}

updated=
if write_sources ||
   ! ls /var/lib/apt/lists/*trixie*Sources* >/dev/null 2>&1; then
    log "apt-get update"
    apt-get update -qq
    updated=1
fi

need=$(missing "$@")
if [ -n "$need" ] || ! meson_ok; then
    [ -n "$updated" ] || apt-get update -qq
    log "installing: $(echo $need)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq $PKGS "$@" >/dev/null
    apt-get install -y -qq "${bpo_opts[@]}" -t bookworm-backports $BPO_PKGS \
        >/dev/null
fi
meson_ok || die "meson >= 1.5 is needed (bookworm-backports)"
