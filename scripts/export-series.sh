#!/usr/bin/env bash
# Export the overlay and patches/ as a git format-patch series against the
# pinned QEMU, one commit per line of patches/series.
#
# usage: export-series.sh OUTDIR
# Leaves OUTDIR/src, a git tree of pristine QEMU with the series committed
# on top (branch "pvsched", base tag "pristine"), and OUTDIR/patches/.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)
out=$(mkdir -p "$1" && realpath "$1")
GIT_ID=(-c user.name="pvsched developers" -c user.email=pvsched@localhost)

# A git repository of the pristine tree, made once and cached.
pristine_git() {
    local tree=$1 repo=$1.git
    if [ ! -d "$repo" ]; then
        log "making a git repository of $(basename "$tree") (once)"
        rm -rf "$repo.tmp"
        git init -q "$repo.tmp"
        # -f: QEMU's .gitignore hides subprojects/, which the tarball ships.
        git -C "$repo.tmp" --work-tree="$tree" add -A -f -- . ':!.pvsched-pristine'
        git -C "$repo.tmp" "${GIT_ID[@]}" commit -q \
            -m "QEMU $(cat "$tree/.pvsched-pristine") (Debian source package)"
        mv "$repo.tmp" "$repo"
    fi
    echo "$repo"
}

# The commit message of a patches/ file: its mail header and body.
message() {
    sed -n -e '/^---$/q' -e '/^From: /d' \
        -e 's/^Subject: \[PATCH[^]]*\] //' -e p "$1"
}

commit_entry() {
    local file=$1
    shift
    local p=$top/patches/$file f
    [ -f "$p" ] || die "patches/series names $file, which does not exist"
    for f in "$file" "$@"; do
        case "$f" in
            *.patch) git -C "$out/src" apply --index "$top/patches/$f" ||
                         die "$f does not apply" ;;
        esac
    done
    for f in "$@"; do
        case "$f" in *.patch) continue ;; esac
        [ -f "$top/$f" ] || die "patches/series names $f, which does not exist"
        mkdir -p "$out/src/$(dirname "$f")"
        cp "$top/$f" "$out/src/$f"
        git -C "$out/src" add "$f"
    done
    message "$p" | git -C "$out/src" "${GIT_ID[@]}" commit -q -F -
}

pristine=$(bash "$top/scripts/fetch-qemu.sh")
repo=$(pristine_git "$pristine")
rm -rf "$out/src" "$out/patches"
git clone -q --shared "$repo" "$out/src"
git -C "$out/src" tag pristine
git -C "$out/src" checkout -q -b pvsched

grep -vE '^(#|$)' "$top/patches/series" | while read -r entry; do
    # shellcheck disable=SC2086
    commit_entry $entry
done

# Everything in the overlay must be in some commit.
(cd "$top" && for d in accel hw include qapi tests/unit tests/qtest docs; do
     [ ! -d "$d" ] || find "$d" -type f
 done | sort) > "$out/overlay.list"
git -C "$out/src" diff --name-only pristine HEAD | sort > "$out/series.list"
missing=$(comm -23 "$out/overlay.list" "$out/series.list")
[ -z "$missing" ] || die "not in patches/series: $(echo $missing)"

# The cover letter: git's shortlog and diffstat, our subject and text.
git -C "$out/src" "${GIT_ID[@]}" format-patch -q --cover-letter -o "$out/patches" pristine..HEAD
cover=$out/patches/0000-cover-letter.patch
python3 - "$cover" "$top/patches/0000-cover-letter.txt" <<'PY'
import sys
path, text = sys.argv[1], open(sys.argv[2]).read()
subject, blurb = text.split('\n', 1)
mail = open(path).read()
for placeholder, value in (('*** SUBJECT HERE ***', subject),
                           ('*** BLURB HERE ***', blurb.strip('\n'))):
    if placeholder not in mail:
        sys.exit(f'{path}: no "{placeholder}" to fill in')
    mail = mail.replace(placeholder, value)
open(path, 'w').write(mail)
PY
log "series: $(ls "$out"/patches/*.patch | grep -vc /0000-) patches and a cover letter in $out/patches"
