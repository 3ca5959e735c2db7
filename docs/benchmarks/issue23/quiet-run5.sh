#!/bin/sh
# The fifth quiet window's runs (nothing else running, ~5 minutes): echo at
# split placement, 50 and 500 connections, after the stream's round-trip
# fields moved into three cache lines (from four), against the textbook
# server, liburing's example and (OLD set) the build before, in the same
# run. Usage: quiet-run5.sh [SRC [OUT]]
# LIBURING=<a built liburing checkout> (docs/compare.md: "liburing's example"),
# OLD=<the previous build's ringserve>. User instructions and the simulated
# cache misses per round trip are counts: tools/instr_profile.py, any time.
set -x
SRC=${1:-.}; OUT=${2:-/tmp/quiet-run5}
B=$OUT/rel
mkdir -p $OUT
cd $SRC || exit 1
[ -x $B/ringserve ] || { meson setup $B --buildtype=release -Dtests=false >/dev/null && ninja -C $B >/dev/null; } || exit 1
R="--ringserve=$B/ringserve --ringbench=$B/tools/ringbench"
LU=${LIBURING:-/path/to/liburing}/examples/echo-server
T=--textbook=$B/tools/textbook_echo
date; uptime
./tools/compare --costs=off --configs=textbook,liburing-example,uring-default${OLD:+,old-uring} \
    ${OLD:+--external="old-uring=$OLD --backend=uring --listen=127.0.0.1:PORT"} \
    --liburing-example=$LU $T --conns=50,500 --sizes=64 --repeat=7 --duration=3 --warmup=1 \
    --pin=split $R --out=$OUT/echo-split > $OUT/echo-split.log 2>&1
date; uptime
