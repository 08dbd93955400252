#!/usr/bin/env bash
# Run KVM suites round after round, where KVM is (in one boot of the L1
# VM where this host has no hardware KVM), with CPU hogs on this host,
# and say how many rounds in a row passed (issue 12: 20 in a row while
# the other host core is busy).
#
# usage: soak.sh [--rounds N] [--hogs N] [--keep-going] [--] [SUITE...]
#
# SUITE: the names of run-tests.sh's KVM_SUITES (all of them by default).
# A round passes when every suite in it passed.  The soak stops at
# the first failed round unless --keep-going.  Each round's output is
# kept in build/soak/round-N.log.  Ends with
# "soak: N of M rounds passed in a row[, the first failure in round K]".
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)
cd "$top"

rounds=20 hogs=1 inner= keep_going=
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift 2 ;;
        --hogs) hogs=$2; shift 2 ;;
        --keep-going) keep_going=--keep-going; shift ;;
        --inner) inner=1; shift ;;
        --) shift; break ;;
        -*) die "usage: $0 [--rounds N] [--hogs N] [--keep-going] [--] [SUITE...]" ;;
        *) break ;;
    esac
done

if [ -z "$inner" ]; then
    # Built before the hogs start, as make check builds before its KVM
    # suites: a suite whose build is missing would fail every round.
    bash scripts/run-tests.sh --prepare-kvm "$@" ||
        die "soak: what the suites need could not be built (see above)"
    out=$top/build/soak
    rm -rf "$out"
    mkdir -p "$out"
    pids=()
    for _ in $(seq 1 "$hogs"); do
        # An ordinary process, as a compile is: nice 0, any CPU.
        sh -c 'while :; do :; done' &
        pids+=($!)
    done
    trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
    log "soak: $rounds rounds of ${*:-every KVM suite}, $hogs CPU hog(s) on this host"
    bash scripts/with-kvm.sh --timeout $((rounds * 3600)) -- \
        bash scripts/soak.sh --inner --rounds "$rounds" $keep_going -- "$@"
    exit
fi

out=$top/build/soak
good=0 first_bad=
for r in $(seq 1 "$rounds"); do
    log_file=$out/round-$r.log
    start=$(date +%s)
    bash scripts/run-tests.sh --kvm "$@" > "$log_file" 2>&1 || true
    line=$(grep -aE '^kvm-suites: [0-9]+ passed' "$log_file" | tail -n 1)
    verdict=passed
    if [ -z "$line" ] || ! grep -qE ' 0 failed' <<< "$line"; then
        verdict=FAILED
        first_bad=${first_bad:-$r}
        grep -aE '^== |^(FAIL|ERROR)[: ]' "$log_file" | head -n 20
    elif [ -z "$first_bad" ]; then
        good=$((good + 1))
    fi
    echo "soak round $r/$rounds: $verdict in $(($(date +%s) - start)) s:" \
         "${line:-no summary line}"
    [ "$verdict" = passed ] || [ -n "$keep_going" ] || break
done
echo "soak: $good of $rounds rounds passed in a row${first_bad:+, the first failure in round $first_bad}"
[ -z "$first_bad" ]
