# pvsched: build the patched QEMU and the bundled guest, run, test, export.
#
#   make          install build dependencies, fetch QEMU, build everything
#   make run      the main job: boot the bundled guest with pvsched under KVM
#   make check    the whole test suite (what CI runs)
#   make series   export the patchset as a git format-patch series, checked
#   make bench    run the benchmarks (tables, build/bench/*.png)

TOP := $(abspath .)
BUILD := $(TOP)/build
SRC := $(BUILD)/src
QEMU_BUILD := $(BUILD)/qemu
QEMU := $(BUILD)/qemu-system-x86_64
GUEST := $(BUILD)/guest/pvsched-guest.elf

# QEMU and the test binaries built alongside it.
TARGETS := qemu-system-x86_64 tests/unit/test-pvsched-state tests/unit/test-pvsched-vcpu tests/unit/test-pvsched-host tests/unit/test-pvsched-pi tests/qtest/pvsched-test \
	tests/qtest/qmp-cmd-test tests/unit/test-seccomp

.PHONY: all deps qemu guest run check series bench clean kvm-where FORCE

all: qemu guest

deps:
	@bash scripts/install-deps.sh

# Cheap to re-run: only changed files are rewritten and rebuilt.
qemu: deps
	@pristine=$$(bash scripts/fetch-qemu.sh) && \
	bash scripts/prepare-tree.sh "$$pristine" $(SRC) && \
	PVSCHED_NINJA_TARGETS="$(TARGETS)" \
	    bash scripts/build-qemu.sh $(SRC) $(QEMU_BUILD) && \
	ln -sf qemu/qemu-system-x86_64 $(QEMU)

# ASan+UBSan build for the robustness tests: build/qemu-asan/qemu-system-x86_64.
.PHONY: asan
asan: qemu
	@bash scripts/build-asan.sh

guest: deps
	@$(MAKE) --no-print-directory -C guest O=$(BUILD)/guest

# Where KVM work runs (this host, or an L1 VM), and why: said first.
kvm-where:
	@bash scripts/with-kvm.sh --where

run: kvm-where all
	bash scripts/with-kvm.sh -- \
	    python3 scripts/pvsched-demo.py --qemu $(QEMU) --guest $(GUEST)

check: kvm-where all
	@bash scripts/run-tests.sh

# BENCH_ARGS: e.g. --quick, or --only exit,doorbell --runs 7.
bench: kvm-where all
	python3 bench/run.py --build-only $(BENCH_ARGS)
	bash scripts/with-kvm.sh -- python3 bench/run.py $(BENCH_ARGS)

# Exported, checkpatch-clean, and every commit built on its own.
series: qemu
	@bash scripts/check-series.sh

clean:
	rm -rf $(BUILD)
