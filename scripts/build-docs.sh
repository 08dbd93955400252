#!/usr/bin/env bash
# Build QEMU's manual, ours included, with Sphinx warnings as errors, so
# that broken rST or a QAPI doc comment Sphinx cannot render fails.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)

PVSCHED_NINJA_TARGETS=sphinxdocs \
    bash "$top/scripts/build-qemu.sh" "$top/build/src" "$top/build/docs" \
    --enable-docs
for f in specs/pvsched system/pvsched; do
    [ -s "$top/build/docs/docs/manual/$f.html" ] ||
        die "docs/$f.rst was not rendered"
done
log "docs: build/docs/docs/manual/system/pvsched.html"
