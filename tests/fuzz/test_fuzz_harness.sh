#!/bin/sh
# The fuzz tests' harness (run_fuzz.sh) must report every kind of failure
# as a failure: exit 1, which meson counts as FAIL -- never 0, never 77
# (meson's skip, libFuzzer's default failure code). fuzz_selftest fails on
# purpose for inputs starting CRASH, UB, LEAK and HANG; each is given as the
# only seed, so the first execution finds it. An input that passes must
# still make the run pass.
#
# usage: test_fuzz_harness.sh RUN_FUZZ.SH FUZZ_SELFTEST
set -u
RUN=$1
TARGET=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
for input in CRASH UB LEAK HANG fine; do
    mkdir -p "$TMP/$input/seed"
    printf '%s' "$input" >"$TMP/$input/seed/input"
    # -runs=1: run the seed, then one mutation (too few to stumble on a
    # failing prefix from "fine"). libFuzzer's -timeout is wall time: 1 s
    # only where a hang is the failure to find; elsewhere a process that
    # got no CPU for a second (a loaded machine) failed "fine" as a
    # timeout, and a timeout that fired in the middle of the UB report
    # (symbolizing) deadlocked the two reports until meson's timeout.
    limit=30
    [ "$input" = HANG ] && limit=1
    sh "$RUN" "$TMP/$input/work" "$TARGET" "$TMP/$input/seed" \
        -runs=1 -timeout=$limit -max_total_time=30 >"$TMP/$input/log" 2>&1
    rc=$?
    want=1
    [ "$input" = fine ] && want=0
    if [ $rc -eq $want ]; then
        echo "ok: $input: exit $rc"
    else
        echo "FAIL: $input: run_fuzz.sh exited $rc, expected $want"
        cat "$TMP/$input/log"
        fails=$((fails + 1))
    fi
done
[ $fails -eq 0 ]
