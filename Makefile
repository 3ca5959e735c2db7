# Thin wrapper around meson. Two commands do everything on a fresh
# Debian/Ubuntu machine:
#   make run    install build packages (as root), build, run the server
#   make test   same set-up, then every test suite: a normal build (with
#               valgrind runs), an ASan+UBSan build, and a short fuzz run
BUILD   ?= build
ASAN    ?= build-asan
FUZZ    ?= build-fuzz
ARGS    ?= --backend=auto

.PHONY: all deps build run test test-build test-asan test-fuzz bench kernels newer-liburing clean format

all: build

deps:
	@./scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

$(ASAN)/build.ninja:
	meson setup $(ASAN) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

$(FUZZ)/build.ninja:
	CC=clang meson setup $(FUZZ) -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	./$(BUILD)/ringserve $(ARGS)

# Each phase runs even if an earlier one failed; the summary decides, from
# the records each phase writes for itself (scripts/test-phase.sh): what it
# was to run, what ran, how it ended. A phase that never got to write them
# (its set-up failed) is a failure, never an old run's result.
PHASES = $(BUILD):build $(ASAN):asan $(FUZZ):fuzz
test: deps
	@rm -f $(foreach p,$(PHASES),$(word 1,$(subst :, ,$(p)))/meson-logs/phase-$(word 2,$(subst :, ,$(p))).status)
	-@$(MAKE) --no-print-directory test-build
	-@$(MAKE) --no-print-directory test-asan
	-@$(MAKE) --no-print-directory test-fuzz
	@./scripts/test-summary.py $(PHASES)

# Three tests at a time on two CPUs: most of a test's time is spent waiting
# (timeouts, a peer's pace, drains), a full run keeps the CPUs ~30 % busy.
TEST_JOBS = 3
test-build: $(BUILD)/build.ninja
	./scripts/test-phase.sh $(BUILD) build -- --num-processes $(TEST_JOBS)

# The compare suite checks the report tool (about 1.5 minutes of test time
# in the build phase); the servers it drives are run under ASan by every
# e2e suite.
test-asan: $(ASAN)/build.ninja
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ./scripts/test-phase.sh $(ASAN) asan -- --num-processes $(TEST_JOBS) \
	  --no-suite valgrind --no-suite slow --no-suite install --no-suite compare

# 5 s of libFuzzer on the connection state machine and 5 s on the HTTP
# request parser, the harness's own check that a crash fails, and the
# corpus replays (clang, ASan+UBSan; any sanitizer report fails). The 60 s
# run is documented in tests/fuzz/README.md.
test-fuzz: $(FUZZ)/build.ninja
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ./scripts/test-phase.sh $(FUZZ) fuzz tests/fuzz/fuzz_conn tests/fuzz/fuzz_replay \
	  tests/fuzz/fuzz_http tests/fuzz/fuzz_http_replay tests/fuzz/fuzz_selftest -- --suite fuzz

bench: build
	meson test -C $(BUILD) --benchmark

# The kernel matrix (docs/kernels.md): Debian's 5.10, 6.1, 6.12 and 7.3 cloud kernels
# under qemu, the probe and the build's tests inside each. Needs root to
# install qemu-system-x86 and busybox-static; minutes per kernel under TCG.
# KERNELS=5.10 or KERNELS=5.10,7.3,host; KERNELS_ARGS for more options.
KERNELS ?= 5.10,6.1,6.12,7.3
kernels: build
	./tools/kernels --build=$(BUILD) --kernels=$(KERNELS) $(KERNELS_ARGS)

# Build against a newer liburing (Debian trixie's 2.9, or sid's newest)
# unpacked into a private prefix, and run the io_uring tests with it: the
# check that the #ifndef'd constants agree with newer headers. Needs the
# package registry, so not part of `make test`.
LIBURING_SUITE ?= sid
newer-liburing:
	./tools/newer-liburing --suite=$(LIBURING_SUITE)

format:
	clang-format -i core/*.[ch] backend_epoll/*.[ch] backend_uring/*.[ch] tools/*.[ch] tests/*/*.[ch] \
	    include/*.h include/ringserve/*.h protocols/*.[ch] probe/*.[ch] backend_table.[ch]

clean:
	rm -rf $(BUILD) $(ASAN) $(FUZZ)
