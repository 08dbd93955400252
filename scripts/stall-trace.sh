#!/usr/bin/env bash
# Run a command with the kernel's scheduler tracing on, and report where
# QEMU's threads slept the longest: for each of those sleeps its length,
# the thread that woke it, and for an uninterruptible one (D) the kernel
# stack it slept in.  This is how the main loop was found blocked in
# mmap() for 1.2-1.6 s behind a starved thread (issue 12); run it where
# the stall happens (in the L1 VM: scripts/with-kvm.sh -- ...).
#
# usage: stall-trace.sh [--out DIR] [--top N] [--] COMMAND [ARG...]
#
# Needs root and tracefs.  The raw trace is kept in DIR (default
# build/stall-trace) as trace.txt; the report goes to stdout and to
# DIR/report.txt.  The command's exit status is the script's.
set -euo pipefail
. "$(dirname "$0")/pvsched-env.sh"

out=$(pvsched_top)/build/stall-trace
top=10
while [ $# -gt 0 ]; do
    case $1 in
        --out) out=$2; shift 2 ;;
        --top) top=$2; shift 2 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || die "usage: stall-trace.sh [--out DIR] [--top N] [--] COMMAND"
mkdir -p "$out"

T=/sys/kernel/tracing
mountpoint -q "$T" || mount -t tracefs tracefs "$T" ||
    die "no tracefs at $T: this needs root and a kernel with ftrace"
trig=$T/events/sched/sched_switch/trigger
# Uninterruptible sleeps (D: prev_state 2) of QEMU's threads carry their
# kernel stack; every switch and wake-up is recorded.
filter='stacktrace if prev_comm ~ "qemu*" && prev_state == 2'
cleanup() {
    echo 0 > "$T/tracing_on"
    echo "!$filter" > "$trig" 2>/dev/null || true
    echo > "$T/set_event"
}
trap cleanup EXIT
echo 0 > "$T/tracing_on"
echo 32768 > "$T/buffer_size_kb"
echo > "$T/set_event"
echo sched:sched_switch >> "$T/set_event"
echo sched:sched_wakeup >> "$T/set_event"
echo "$filter" > "$trig"
echo > "$T/trace"
echo 1 > "$T/tracing_on"

rc=0
"$@" || rc=$?

echo 0 > "$T/tracing_on"
cat "$T/trace" > "$out/trace.txt"
python3 "$(dirname "$0")/stall-report.py" --top "$top" "$out/trace.txt" |
    tee "$out/report.txt"
exit "$rc"
