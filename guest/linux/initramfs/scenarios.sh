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

# One cyclictest run on CPU $1, interval $2 us, $3 seconds: prints
# "RESULT cyclictest ..." with avg, max and p99 from the histogram.
run_cyclictest() {
	rm -f /tmp/hist
	cyclictest -q -m -t1 -a "$1" -p 80 -i "$2" -D "$3" \
		-h 100000 --histfile=/tmp/hist > /tmp/ct.out 2>&1
	rc=$?
	awk -v rc=$rc -v cpu="$1" -v iv="$2" '
	/^# Avg Latencies:/ { avg = $4 + 0 }
	/^# Max Latencies:/ { max = $4 + 0 }
	/^# Histogram Overflows:/ { ovf = $4 + 0 }
	/^[0-9]+[ \t]+[0-9]+$/ { h[$1 + 0] = $2 + 0; n += $2; if ($1 + 0 > top) top = $1 + 0 }
	END {
		total = n + ovf; want = total * 0.99; acc = 0; p99 = -1
		for (i = 0; i <= top && p99 < 0; i++) {
			acc += h[i]
			if (acc >= want) p99 = i
		}
		if (p99 < 0) p99 = ">" top
		printf "RESULT cyclictest cpu=%s interval=%s rc=%d samples=%d avg=%d p99=%s max=%d overflows=%d\n",
			cpu, iv, rc, total, avg, p99, max, ovf
	}' /tmp/hist 2>/dev/null || echo "RESULT cyclictest rc=$rc no-histogram"
	[ $rc -eq 0 ] || sed 's/^/INFO cyclictest: /' /tmp/ct.out
}

# test: what guest/linux/test.py checks, step by step.  The kernel is
# booted with maxcpus=1 and CPU 1 comes online after the module is loaded,
# so that CPU 1 registers through the module's hotplug callback; and CPU 1
# is offline while the module's tracepoints are attached and detached
# (see "This host's KVM" in docs/system/pvsched-linux-guest.rst).
CPU1=/sys/devices/system/cpu/cpu1/online

scen_test() {
	# No RT throttling: the spinner must hold CPU 1 while the host looks.
	echo -1 > /proc/sys/kernel/sched_rt_runtime_us
	wait_host before-load 0
	load_module $MODARGS
	stats
	echo 1 > $CPU1
	echo "ONLINE cpu=1 rc=$? online=$(cat /sys/devices/system/cpu/online)"
	# Keep this shell off CPU 1, which the RT work owns.
	taskset -p -c 0 $$ > /dev/null
	stats

	chrt -f 50 taskset -c 1 sh -c 'while :; do :; done' &
	spinner=$!
	sleep 1
	echo "RT-RUNNING cpu=1"
	wait_host rt-running 1
	kill $spinner
	wait $spinner 2>/dev/null
	stats

	taskset -c 1 cyclictest -q -m -t1 -a 1 -p 80 -i 1000 -D 3 > /tmp/ct.out 2>&1 &
	ct=$!
	sleep 1
	wait_host cyclictest-running 1
	wait $ct
	echo "RESULT cyclictest rc=$? $(grep -o 'Max: *[0-9]*' /tmp/ct.out)"
	stats

	# Normal tasks on both CPUs: each gives its boost back.
	taskset -c 1 sh -c true
	taskset -c 0 sh -c true
	wait_host after 1

	echo 0 > $CPU1
	echo "OFFLINE cpu=1 rc=$?"
	if rmmod pvsched; then
		echo "UNLOADED rc=0"
	else
		echo "UNLOADED rc=$?"
	fi
	stats
}

# bench: load the module if LOAD_MODULE=1, then run what the host asks
# (CPU 1 stays offline: a one-CPU guest):
#   RUN <cpu> <interval-us> <seconds>   one cyclictest run, RESULT line
#   STATS                               the module's counters
#   QUIT
scen_bench() {
	echo -1 > /proc/sys/kernel/sched_rt_runtime_us
	if [ "${LOAD_MODULE:-0}" = 1 ]; then
		load_module $MODARGS
		stats
	fi
	while :; do
		echo "BENCH-READY"
		read -r cmd a b c || break
		case "$cmd" in
		RUN) run_cyclictest "$a" "$b" "$c" ;;
		STATS) stats ;;
		QUIT) break ;;
		*) echo "FAIL bench: unknown command '$cmd'" ;;
		esac
	done
}
