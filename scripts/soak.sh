#!/usr/bin/env bash
# Run the KVM suites N times in a row, where KVM is (scripts/with-kvm.sh:
# one L1 boot for all N), optionally with a CPU hog on every host CPU
# but one, and stop at the first failure.  For flakes: a test that fits
# its platform passes every time.
#
# usage: soak.sh [-n N] [--hog] [SUITE...]
#   SUITE: kvm (default), libvirt, robust, qtest
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)
cd "$top"

n=20 hog=
while [ $# -gt 0 ]; do
    case $1 in
        -n) n=$2; shift 2 ;;
        --hog) hog=1; shift ;;
        *) break ;;
    esac
done
suites=${*:-kvm}

if [ -z "${PVSCHED_SOAK_INNER:-}" ]; then
    hogs=()
    if [ -n "$hog" ]; then
        for _ in $(seq 2 "$(nproc)"); do
            bash -c 'while :; do :; done' & hogs+=($!)
        done
        log "soak: $(( $(nproc) - 1 )) CPU hog(s) on the host: ${hogs[*]}"
    fi
    trap '[ ${#hogs[@]} -eq 0 ] || kill "${hogs[@]}"' EXIT
    PVSCHED_SOAK_INNER=1 bash scripts/with-kvm.sh -- \
        bash scripts/soak.sh -n "$n" $suites
    exit
fi

cmd() {
    case $1 in
        kvm) python3 tests/functional/pvsched/run.py ;;
        libvirt) python3 tests/functional/pvsched/libvirt/test_libvirt.py ;;
        robust) python3 tests/functional/pvsched/robust/run.py ;;
        qtest) QTEST_QEMU_BINARY=build/qemu/qemu-system-x86_64 \
                   build/qemu/tests/qtest/pvsched-test --tap ;;
        *) die "unknown suite $1" ;;
    esac
}

mkdir -p build/soak
for i in $(seq 1 "$n"); do
    for s in $suites; do
        if cmd "$s" > "build/soak/$s.$i.log" 2>&1; then
            log "soak: run $i/$n: $s passed ($(tail -n 1 "build/soak/$s.$i.log"))"
        else
            tail -n 60 "build/soak/$s.$i.log"
            die "soak: run $i/$n: $s FAILED (build/soak/$s.$i.log)"
        fi
    done
done
log "soak: $suites: $n runs in a row, no failure"
