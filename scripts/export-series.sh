#!/usr/bin/env bash
# Export the overlay and patches/ as a git format-patch series against the
# pinned QEMU, one commit per line of patches/series.
#
# usage: export-series.sh OUTDIR
# Leaves OUTDIR/src, a git tree of pristine QEMU with the series committed
# on top (branch "pvsched", base tag "pristine"), and OUTDIR/patches/.
#
# patches/series says how (see its header).  Checked here: every file in
# patches/ and patches/steps/ is used once; a steps/ patch touches only
# overlay files, a patches/*.patch only upstream ones; and the series ends
# at exactly the tree `make` builds (prepare-tree.sh: pristine, every
# patches/*.patch, the overlay), so no intermediate version of an overlay
# file can outlive the series or differ from what is built and tested.
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
            *.patch) check_patch_paths "$f"
                     git -C "$out/src" apply --index "$top/patches/$f" ||
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

# The overlay files that go into the series (tests/functional and tests/fuzz
# are the project's own and stay out).
SERIES_DIRS="accel hw include qapi tests/unit tests/qtest docs"
overlay_files() {
    (cd "$top" && for d in $SERIES_DIRS; do
         [ ! -d "$d" ] || find "$d" -type f ! -name '*~'
     done | sort)
}

# The names in patches/series, one a line.
series_items() {
    grep -vE '^(#|$)' "$top/patches/series" | tr -s ' \t' '\n' | sed '/^$/d'
}

# patches/ and patches/series agree: each file used, each item named once.
check_series_file() {
    local dup unused
    dup=$(series_items | sort | uniq -d)
    [ -z "$dup" ] || die "patches/series names these more than once: $(echo $dup)"
    unused=$(comm -23 <(cd "$top/patches" &&
                        ls -- *.patch *.msg steps/*.patch 2>/dev/null | sort) \
                      <(series_items | sort))
    [ -z "$unused" ] || die "in patches/ but not in patches/series: $(echo $unused)"
}

# A steps/ patch gives intermediate versions of overlay files only; a
# patches/*.patch changes upstream files only (prepare-tree.sh applies it,
# then copies the overlay over it).
check_patch_paths() {
    local f=$1 path
    git apply --numstat "$top/patches/$f" | cut -f3 | while read -r path; do
        if grep -qxF -- "$path" "$out/overlay.list"; then
            case "$f" in steps/*) ;; *)
                die "$f changes $path, an overlay file: only a steps/ patch may" ;;
            esac
        else
            case "$f" in steps/*)
                die "$f changes $path, which is not an overlay file" ;;
            esac
        fi
    done
}

pristine=$(bash "$top/scripts/fetch-qemu.sh")
repo=$(pristine_git "$pristine")
rm -rf "$out/src" "$out/patches"
git clone -q --shared "$repo" "$out/src"
git -C "$out/src" tag pristine
git -C "$out/src" checkout -q -b pvsched
check_series_file
overlay_files > "$out/overlay.list"

grep -vE '^(#|$)' "$top/patches/series" | while read -r entry; do
    # shellcheck disable=SC2086
    commit_entry $entry
done

# The series ends at the tree make builds: pristine QEMU, every
# patches/*.patch in name order as prepare-tree.sh applies them, and the
# overlay as it is in the repository, byte for byte.  Built in an index of
# its own, so nothing is checked out.
built_index=$out/built.index
rm -f "$built_index"
GIT_INDEX_FILE=$built_index git -C "$out/src" read-tree pristine
for p in "$top"/patches/*.patch; do
    GIT_INDEX_FILE=$built_index git -C "$out/src" apply --cached "$p" ||
        die "$(basename "$p") does not apply in name order, as make applies it"
done
GIT_INDEX_FILE=$built_index git --git-dir="$out/src/.git" --work-tree="$top" \
    update-index --add --stdin < "$out/overlay.list"
built=$(GIT_INDEX_FILE=$built_index git -C "$out/src" write-tree)
rm -f "$built_index"
drift=$(git -C "$out/src" diff --name-status "$built" HEAD)
[ -z "$drift" ] || die "the series does not end at the tree make builds (A: only in the series, D: not in the series, M: differs): $(echo $drift)"

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
