#!/bin/sh
# A short libFuzzer run whose exit status meson can trust.
#
# usage: run_fuzz.sh WORK-DIR TARGET SEED-DIR [LIBFUZZER-OPTION...]
#
# New inputs and any crash, leak or timeout artifact go to WORK-DIR (the
# first corpus directory; the seed directory in the source tree is only
# read). libFuzzer's own failure code is 77 (-error_exitcode), which meson
# reads as a skip, and undefined behaviour is only printed unless UBSan is
# told to halt: so every failure is made exit status 1 here, and UBSan
# halts on the first report. Later options override earlier ones, so the
# caller can shorten -max_total_time or -timeout.
set -u
WORK=$1
TARGET=$2
SEED=$3
shift 3
mkdir -p "$WORK" || exit 1
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"
export UBSAN_OPTIONS
"$TARGET" -error_exitcode=1 -timeout_exitcode=1 -timeout=10 -max_total_time=5 \
    -print_final_stats=1 -artifact_prefix="$WORK/" "$@" "$WORK" "$SEED"
rc=$?
if [ $rc -ne 0 ]; then
    echo "run_fuzz: $TARGET failed (exit $rc); the input is in $WORK/" >&2
    exit 1
fi
