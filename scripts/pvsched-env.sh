# Shared settings for the build scripts; sourced, not run.
# The pinned QEMU: Debian's source package, fetched at build time.

PVSCHED_QEMU_PIN=${PVSCHED_QEMU_PIN:-1:10.0.13+ds-0+deb13u1}
PVSCHED_QEMU_SERIES=10.0
# Outside the repository, so a clean clone reuses it.
PVSCHED_CACHE=${PVSCHED_CACHE:-/var/cache/pvsched}
export CCACHE_DIR=${CCACHE_DIR:-$PVSCHED_CACHE/ccache}
# Object files are shared between clones: hash paths relative to the tree.
export CCACHE_NOHASHDIR=1

pvsched_top() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }
log() { printf '[pvsched] %s\n' "$*" >&2; }
die() { printf '[pvsched] error: %s\n' "$*" >&2; exit 1; }
