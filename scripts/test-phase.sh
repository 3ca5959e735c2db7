#!/bin/sh
# One phase of `make test`: build, list what should run, run it, and leave
# records the summary (scripts/test-summary.py BUILD:PHASE) can trust.
#
# usage: test-phase.sh BUILD PHASE [NINJA-TARGET...] -- [MESON-TEST-ARGS...]
#
# Writes into BUILD/meson-logs/, after deleting what a previous run left:
#   phase-PHASE.expected  `meson test --list` with the same arguments: what
#                         this phase must run (a test missing from the log
#                         below is a failure, so a run cut short cannot pass)
#   phase-PHASE.json      meson's log of this run (--logbase), never the
#                         shared testlog.json that `make bench` also writes
#   phase-PHASE.status    how the phase ended: "ninja-failed", "list-failed"
#                         or "meson-test-exit N"; no file means the phase
#                         never got that far, which the summary counts as a
#                         failure too
set -u
BUILD=$1
PHASE=$2
shift 2
TARGETS=
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    TARGETS="$TARGETS $1"
    shift
done
[ $# -gt 0 ] && shift # the --

LOGS=$BUILD/meson-logs
BASE=$LOGS/phase-$PHASE
mkdir -p "$LOGS"
rm -f "$BASE.expected" "$BASE.json" "$BASE.status" "$BASE.txt" "$BASE.junit.xml" \
    "$LOGS/testlog.json"

# shellcheck disable=SC2086 # TARGETS is a word list on purpose
if ! ninja -C "$BUILD" $TARGETS; then
    echo ninja-failed >"$BASE.status"
    exit 1
fi
if ! meson test -C "$BUILD" --no-rebuild --list "$@" >"$BASE.expected.tmp"; then
    rm -f "$BASE.expected.tmp"
    echo list-failed >"$BASE.status"
    exit 1
fi
mv "$BASE.expected.tmp" "$BASE.expected"
meson test -C "$BUILD" --no-rebuild --print-errorlogs --logbase "phase-$PHASE" "$@"
rc=$?
echo "meson-test-exit $rc" >"$BASE.status"
exit $rc
