# Scenarios of the pvsched Linux test guest.  Not in the initramfs: the
# host (guest/linux/linuxvm.py) sends this file over the console, after
# its settings (MODARGS: module parameters, space-separated; LOAD_MODULE:
# 1 to load the module in the bench scenario) and before the scenario's
# name (scen_test or scen_bench), and /init runs it.
#
# Lines to the host: READY, INFO, STATS, WAIT <tag> cpu=<n> (the guest
# then reads one line from the host), RESULT, FAIL, DONE.

MODULE=/lib/modules/pvsched.ko
STATS=/sys/kernel/debug/pvsched/stats

# Stop until the host has looked: it sends one line (a lone newline will do).
wait_host() {
	echo "WAIT $1 cpu=$2"
	read -r _reply
}

stats() {
	if [ -r $STATS ]; then
		sed 's/^/STATS /' $STATS
	else
		echo "STATS none"
	fi
}

load_module() {
	if insmod $MODULE "$@"; then
		echo "LOADED rc=0"
	else
		echo "LOADED rc=$?"
	fi
}

# One cyclictest run, a SCHED_FIFO 80 thread on every CPU (-S), interval
# $1 us, $2 seconds.  Prints "RESULT cyclictest ..." with avg, p99 and
# max over all threads, and "CDF b:n ..." with the histogram in bins of
# 1/20 decade (bin b holds 10^(b/20) <= latency us < 10^((b+1)/20), 0 us
# in bin 0): a hundred numbers, not 100,000 lines through the UART.
run_cyclictest() {
	rm -f /tmp/hist
	cyclictest -q -m -S -p 80 -i "$1" -D "$2" \
		-h 100000 --histfile=/tmp/hist > /tmp/ct.out 2>&1
	rc=$?
	# 100,000 lines, nearly all zero: grep drops those first, 4x faster
	# than awk reading them in a nested guest.  Debian's busybox awk has
	# no log() and reads a leading 0 as octal: bin edges by
	# multiplication (the lines come in ascending order), numbers through
	# num().
	grep -E '^#|[	 ]0*[1-9]' /tmp/hist > /tmp/hist.nz
	awk -v rc=$rc -v iv="$1" '
	function num(s) { sub(/^0+/, "", s); return s + 0 }
	BEGIN { nv = 0; edge[0] = 1; for (e = 1; e <= 101; e++) edge[e] = edge[e - 1] * 1.1220184543 }
	/^[0-9]+[ \t]/ {
		c = 0
		for (i = 2; i <= NF; i++) c += num($i)
		if (!c) next
		v = num($1); h[nv] = c; val[nv] = v; nv++; n += c
		while (v >= edge[b + 1]) b++
		bin[b] += c
		next
	}
	/^# Total:/ { for (i = 3; i <= NF; i++) tot[i] = num($i) }
	/^# Avg Latencies:/ { for (i = 4; i <= NF; i++) { sum += num($i) * tot[i - 1]; all += tot[i - 1] } }
	/^# Max Latencies:/ { for (i = 4; i <= NF; i++) if (num($i) > max) max = num($i) }
	/^# Histogram Overflows:/ { for (i = 4; i <= NF; i++) ovf += num($i) }
	END {
		total = n + ovf; want = total * 0.99; acc = 0; p99 = -1
		for (i = 0; i < nv && p99 < 0; i++) {
			acc += h[i]
			if (acc >= want) p99 = val[i]
		}
		if (p99 < 0) p99 = ">99999"
		printf "RESULT cyclictest interval=%s rc=%d samples=%d avg=%d p99=%s max=%d overflows=%d\n",
			iv, rc, total, all ? sum / all : 0, p99, max, ovf
		line = "CDF"
		for (b = 0; b < 100; b++) if (bin[b]) line = line " " b ":" bin[b]
		print line " overflow:" ovf
	}' /tmp/hist.nz 2>/dev/null || echo "RESULT cyclictest rc=$rc no-histogram"
	[ $rc -eq 0 ] || sed 's/^/INFO cyclictest: /' /tmp/ct.out
}

# test: what guest/linux/test.py checks, step by step.
CPU1=/sys/devices/system/cpu/cpu1/online
SPIN='while :; do :; done'

# Wait until task $1 has scheduling policy $2 (e.g. SCHED_FIFO).
wait_policy() {
	while :; do
		out=$(chrt -p "$1") || { echo "FAIL chrt -p $1 failed"; return 1; }
		case "$out" in *"policy: $2"*) return 0 ;; esac
	done
}

# Stop task $1 and reap it.
stop_task() {
	kill "$1"
	wait "$1" 2>/dev/null
}

scen_test() {
	# No RT throttling: the spinners must hold CPU 1 while the host looks.
	echo -1 > /proc/sys/kernel/sched_rt_runtime_us
	# This shell stays off CPU 1, which the tasks under test own.
	taskset -p -c 0 $$ > /dev/null
	wait_host before-load 0
	load_module $MODARGS
	stats

	# Hotplug: CPU 1 gives its area back, and registers it again.
	echo 0 > $CPU1
	echo "OFFLINE cpu=1 rc=$?"
	wait_host cpu1-offline 0
	echo 1 > $CPU1
	echo "ONLINE cpu=1 rc=$? online=$(cat /sys/devices/system/cpu/online)"
	stats

	# RT from its first instruction on CPU 1.
	chrt -f 50 taskset -c 1 sh -c "$SPIN" &
	task=$!
	wait_policy $task SCHED_FIFO
	wait_host rt-running 1
	stop_task $task

	# A task that makes itself RT while it runs: the shell spins as a
	# normal task, then execs chrt, which calls sched_setscheduler() on
	# itself and execs the spinner; no context switch on the way.
	taskset -c 1 sh -c "i=0; while [ \$i -lt 20000 ]; do i=\$((i+1)); done; exec chrt -f 50 sh -c '$SPIN'" &
	task=$!
	wait_policy $task SCHED_FIFO
	wait_host rt-self 1
	stop_task $task

	# A running normal task made RT, and normal again, from CPU 0.
	taskset -c 1 sh -c "$SPIN" &
	task=$!
	sleep 1
	wait_host normal-running 1
	chrt -f -p 50 $task
	wait_host rt-other 1
	chrt -o -p 0 $task
	wait_host normal-again 1
	stop_task $task
	stats

	# Runs until the host has seen what it looks for (SIGINT: cyclictest
	# prints its summary and exits 0), not for a fixed time that a slow
	# host may spend before it looks; -D only ends a run nobody stops.
	taskset -c 1 cyclictest -q -m -t1 -a 1 -p 80 -i 1000 -D 300 > /tmp/ct.out 2>&1 &
	task=$!
	sleep 1
	wait_host cyclictest-running 1
	kill -INT $task
	wait $task
	echo "RESULT cyclictest rc=$? $(grep -o 'Max: *[0-9]*' /tmp/ct.out)"
	stats

	# Normal tasks on both CPUs: each gives its boost back.
	taskset -c 1 sh -c true
	taskset -c 0 sh -c true
	wait_host after 1

	if rmmod pvsched; then
		echo "UNLOADED rc=0"
	else
		echo "UNLOADED rc=$?"
	fi
	wait_host unloaded 0

	# Reboot with the module loaded: every area is given back first.
	load_module $MODARGS
	stats
	echo "REBOOTING"
}

# bench: load the module if LOAD_MODULE=1, then run what the host asks:
#   RUN <interval-us> <seconds>   one cyclictest run: RESULT, CDF
#   STATS                         the module's counters
#   QUIT
scen_bench() {
	echo -1 > /proc/sys/kernel/sched_rt_runtime_us
	if [ "${LOAD_MODULE:-0}" = 1 ]; then
		load_module $MODARGS
		stats
	fi
	while :; do
		echo "BENCH-READY"
		read -r cmd a b || break
		case "$cmd" in
		RUN) run_cyclictest "$a" "$b" ;;
		STATS) stats ;;
		QUIT) break ;;
		*) echo "FAIL bench: unknown command '$cmd'" ;;
		esac
	done
}
