#!/usr/bin/env bash
# The whole test suite: unit tests, qtests, KVM tests with the bundled
# guest, the build with pvsched disabled, and the exported series.
# Ends with one line that totals every suite: "N passed, N failed, N skipped".
#
# Everything is built and installed here first; then the suites that
# need KVM run where KVM is real (scripts/with-kvm.sh: on this host, or
# all of them in one L1 VM), as "run-tests.sh --kvm", and their totals
# come back in its last line.
#
# usage: run-tests.sh [--kvm [SUITE...] | --prepare-kvm [SUITE...]]
set -uo pipefail
. "$(dirname "$0")/pvsched-env.sh"
top=$(pvsched_top)
cd "$top"
B=$top/build
QB=$B/qemu

passed=0 failed=0 skipped=0
# Every grep of a log here is grep -a: the L1 VM's output can carry a NUL
# (seen in CI), and a plain grep then prints "binary file matches" in place
# of the summary line it found, so a green run would count as unfinished.
results=$B/test-results
mkdir -p "$results"

# Fold a suite's TAP output (GTest --tap) into the totals.  A binary that
# exits non-zero (an abort ends a GTest run: the cases after it never
# run) or stops short of its plan has failed, whatever its "ok" lines say.
count_tap() {
    local name=$1 file=$2 rc=$3 p f s plan ran
    p=$(grep -acE '^ok ' "$file")
    s=$(grep -acE '^ok .*# SKIP' "$file")
    f=$(grep -acE '^not ok ' "$file")
    plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$file" | tail -n 1)
    ran=$((p + f))
    p=$((p - s))
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        f=1     # a suite that ran no test has failed
        log "$name: ran no test"
    elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] ||
         { [ -n "$plan" ] && [ "$ran" -lt "$plan" ]; }; then
        f=$((f + 1))
        log "FAILED: $name: exit status $rc after $ran of ${plan:-?} cases"
    fi
    add "$name" "$p" "$f" "$s"
}

# Each line says how long its step took (since the previous line): where
# the time of a make check with empty caches goes (issue 12: 60 minutes).
last_add=$SECONDS
add() {
    passed=$((passed + $2)) failed=$((failed + $3)) skipped=$((skipped + $4))
    printf '== %s: %s passed, %s failed, %s skipped (%d s)\n' "$1" "$2" "$3" \
        "$4" $((SECONDS - last_add))
    last_add=$SECONDS
}

# One check that is not itself a counted test suite.
check() {
    local name=$1
    shift
    if "$@" > "$results/$name.log" 2>&1; then
        add "$name" 1 0 0
    else
        tail -n 40 "$results/$name.log"
        add "$name" 0 1 0
    fi
}

suite_unit() {
    local t
    # QEMU's own seccomp test, with the sched_setattr() rules added to it.
    for t in test-pvsched-state test-pvsched-vcpu test-pvsched-host test-pvsched-pi \
             test-seccomp; do
        "$QB/tests/unit/$t" --tap -k 2>&1 | tee "$results/$t.tap"
        count_tap "unit $t" "$results/$t.tap" "${PIPESTATUS[0]}"
    done
}

suite_qtest() {
    local t=$1
    QTEST_QEMU_BINARY=$QB/qemu-system-x86_64 \
        "$QB/tests/qtest/$t" --tap -k 2>&1 | tee "$results/$t.tap"
    count_tap "qtest $t" "$results/$t.tap" "${PIPESTATUS[0]}"
}

# A suite that ends with its own "N passed, N failed[, N skipped]" line.
suite_summary() {
    local name=$1 out=$results/$1.log line p f s rc
    shift
    "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    line=$(grep -aE '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        add "$name" 0 1 0
        return
    fi
    read -r p _ f _ s _ <<< "${line//,/}"
    # A suite that ran nothing, or failed without saying so, has failed.
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then
        log "$name: exit status $rc, $line"
        f=1
    fi
    add "$name" "$p" "$f" "${s:-0}"
}

# pvsched off: QEMU still builds, and has neither the device nor the bit.
NOPV=$B/qemu-nopvsched/qemu-system-x86_64
build_disabled() {
    local devices
    bash scripts/build-qemu.sh "$B/src" "$B/qemu-nopvsched" -Dpvsched=false ||
        return 1
    devices=$("$NOPV" -device help) || return 1
    if grep '"pvsched"' <<< "$devices"; then
        echo "pvsched device present in a -Dpvsched=false build"
        return 1
    fi
}

# ... and refuses kvm-pvsched=on, which needs KVM to say so.
disabled_refuses_bit() {
    printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "quit"}' |
        timeout 120 "$NOPV" -accel kvm -cpu qemu64,kvm-pvsched=on -machine pc -S \
            -nodefaults -display none -monitor none -qmp stdio 2>&1 |
        tee /dev/stderr |
        grep "doesn't support requested feature.*bit 18" >/dev/null
}

# The quick benchmarks leave out stock QEMU: building it is a third full
# QEMU build (~6 of the ~57 minutes of a make check with empty caches
# here); make bench compares with it.
BENCH_QUICK=--no-stock

# The KVM tests are QEMU functional tests (qemu_test): they run with the
# QEMU build's Python venv, as QEMU's own do (it sees Debian's pycotap).
FUNC_PYTHON=build/qemu/pyvenv/bin/python3

# The suites that need KVM; where KVM is in the L1 VM, all of them run
# in one boot of it.  KVM_SUITES names them; "run-tests.sh --kvm SUITE..."
# runs only those (scripts/soak.sh).
KVM_SUITES="qtest kvm libvirt linux bench without-pvsched-kvm robust"
kvm_suite() {
    case $1 in
        qtest) suite_qtest pvsched-test ;;
        kvm) suite_summary kvm "$FUNC_PYTHON" tests/functional/pvsched/run.py ;;
        libvirt)
            suite_summary libvirt \
                python3 tests/functional/pvsched/libvirt/test_libvirt.py ;;
        # Benchmarks print numbers, never pass or fail on them: this
        # checks they run.
        bench) check bench-quick python3 bench/run.py --quick $BENCH_QUICK ;;
        without-pvsched-kvm) check without-pvsched-kvm disabled_refuses_bit ;;
        robust)
            suite_summary robust "$FUNC_PYTHON" \
                tests/functional/pvsched/robust/run.py ;;
        # Debian's kernel, our module, cyclictest (issue 14).
        linux) suite_summary linux python3 guest/linux/test.py ;;
        *) log "no KVM suite $1 (there are: $KVM_SUITES)"; add "$1" 0 1 0 ;;
    esac
}

totals() {
    echo
    echo "${1:-}$passed passed, $failed failed, $skipped skipped"
    [ "$failed" -eq 0 ]
}

# What the KVM suites (all, or those named) use is built, and installed,
# here: an L1 VM has no network, and builds in it would be emulated.
prepare_kvm() {
    local suites=" ${*:-$KVM_SUITES} "

    check test-deps bash scripts/install-deps.sh --test
    if [[ $suites == *" robust "* ]]; then
        check asan-build bash scripts/build-asan.sh
    fi
    if [[ $suites == *" without-pvsched-kvm "* ]]; then
        check build-without-pvsched build_disabled
    fi
    if [[ $suites == *" bench "* ]]; then
        check bench-build python3 bench/run.py --quick $BENCH_QUICK --build-only
    fi
    if [[ $suites == *" linux "* ]]; then
        check linux-guest-build python3 guest/linux/test.py --build-only
    fi
    # The QEMU whose TCG runs the L1 VM, with its fixes (scripts/l1).
    if [ "$PVSCHED_KVM_WHERE" = l1 ]; then
        check l1-qemu-build bash scripts/l1/build-qemu.sh
    fi
}

# "run-tests.sh --prepare-kvm SUITE...": only that (scripts/soak.sh).
if [ "${1:-}" = --prepare-kvm ]; then
    shift
    pvsched_kvm_where
    prepare_kvm "$@"
    totals "prepare-kvm: "
    exit
fi

if [ "${1:-}" = --kvm ]; then
    shift
    # shellcheck disable=SC2086
    for suite in ${*:-$KVM_SUITES}; do
        kvm_suite "$suite"
    done
    totals "kvm-suites: "
    exit
fi

# The KVM suites, where KVM is: their totals come back in the last line
# of "run-tests.sh --kvm".  Without that line (an L1 that died or hung,
# a crash), what ran is lost: counted as one failure, loudly.
suite_kvm() {
    local out=$results/kvm-suites.log line p f s
    bash scripts/with-kvm.sh -- bash scripts/run-tests.sh --kvm 2>&1 | tee "$out"
    line=$(grep -aE '^kvm-suites: [0-9]+ passed' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        log "FAILED: the KVM suites did not finish (see above and $out)"
        add "kvm suites (did not finish)" 0 1 0
        return
    fi
    line=${line#kvm-suites: }
    read -r p _ f _ s _ <<< "${line//,/}"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

pvsched_kvm_where
log "KVM suites run $([ "$PVSCHED_KVM_WHERE" = host ] && echo "on this host" ||
    echo "in an L1 VM"): $PVSCHED_KVM_WHY"
prepare_kvm
suite_unit
# A minute of coverage-guided fuzzing of what a guest controls (the
# documented long run is scripts/fuzz.sh --runs 10000000).
check fuzz-short bash scripts/fuzz.sh --seconds 60
suite_qtest qmp-cmd-test
check docs bash scripts/build-docs.sh
# The last commit only: make series builds every commit (check-series.sh).
if [ -x scripts/export-series.sh ]; then
    check series bash scripts/check-series.sh --tip
fi
suite_kvm
totals
