#!/usr/bin/env bash
# Check the exported series as a reviewer would: it applies to pristine
# QEMU (export-series.sh applies it), every patch is free of checkpatch
# errors, and every commit builds on its own; and that patches/steps/ is
# what scripts/series-steps.py writes from the overlay.
#
# usage: check-series.sh [--tip]
#   --tip: build only the last commit (make check).  Building every
#   commit takes about 20 minutes with empty caches on 2 CPUs, a third of
#   make check's hour (issue 12): the commits before the meson option
#   share no object with any other build.  make series builds them all.
set -euo pipefail
tip=
[ "${1:-}" != --tip ] || tip=1
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)
out=$top/build/series

python3 "$top/scripts/series-steps.py" --check ||
    die "patches/steps/ is stale: run scripts/series-steps.py"
bash "$top/scripts/export-series.sh" "$out"

log "checkpatch"
errors=0
cover=$out/patches/0000-cover-letter.patch
! grep -n '\*\*\*' "$cover" || die "the cover letter has an unfilled placeholder"
for p in "$out"/patches/*.patch; do
    [ "$p" != "$cover" ] || continue
    perl "$out/src/scripts/checkpatch.pl" "$p" > "$p.checkpatch" 2>&1 || true
    grep -E '^(ERROR|WARNING)|^total' "$p.checkpatch" | sed "s|^|  $(basename "$p"): |"
    grep -q '^total: 0 errors' "$p.checkpatch" || errors=$((errors + 1))
done
[ "$errors" -eq 0 ] || die "$errors patches have checkpatch errors"

# Oldest first, so that each step rebuilds only what its commit changed.
# Each commit builds QEMU, every pvsched test it has (a test builds from
# the commit that adds it on, with the code it tests) and the upstream
# tests the patchset changes or extends, as make does.
commits=$(git -C "$out/src" rev-list --reverse pristine..pvsched)
[ -z "$tip" ] || commits=$(git -C "$out/src" rev-parse pvsched)
for c in $commits; do
    log "building $(git -C "$out/src" log -1 --format=%s "$c")"
    git -C "$out/src" checkout -q "$c"
    targets="qemu-system-x86_64 tests/unit/test-seccomp tests/qtest/qmp-cmd-test $(git -C "$out/src" ls-tree --name-only "$c" tests/unit/ tests/qtest/ |
        sed -n 's|^\(tests/.*pvsched[^/]*\)\.c$|\1|p' | tr '\n' ' ')"
    PVSCHED_NINJA_TARGETS=$targets \
        bash "$top/scripts/build-qemu.sh" "$out/src" "$out/qemu" > "$out/build.log" 2>&1 ||
        { tail -n 30 "$out/build.log"; die "commit $c does not build"; }
done
git -C "$out/src" checkout -q pvsched
log "series OK: $(ls "$out"/patches/*.patch | grep -vc /0000-) patches apply, are checkpatch-clean and build $([ -n "$tip" ] && echo "(the last commit: --tip)" || echo "one by one"); cover letter $(basename "$cover")"
