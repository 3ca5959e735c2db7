#!/bin/sh
# The fifth quiet window's runs (nothing else running, ~12 minutes): echo at
# split placement, 50 and 500 connections, after the stream's round-trip
# fields moved into three cache lines (from four), against the textbook
# server, liburing's example and (OLD set) the build before, in the same
# run; then large files (64 MiB and 1 MiB) against nginx at both placements
# after the io_uring sendfile ops grew to 4 MiB with an early end at their
# first wait after 1 MiB. Usage: quiet-run5.sh [SRC [OUT]]
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
date
# large files against nginx, both placements, with the previous build
NEW="new=$B/ringserve:--backend=uring"
K="--syscall-kinds=cachestat,sendfile64,io_uring_enter,epoll_wait"
for pin in same split; do
  ./tools/http_large.py --configs=new,${OLD:+old,}nginx --extra "$NEW" \
      ${OLD:+--extra "old=$OLD:--backend=uring"} \
      --file-size=64M --conns=4 --pin=$pin --reps=5 --duration=5 --syscalls $K > $OUT/large-64M-$pin.txt 2>&1
  ./tools/http_large.py --configs=new,${OLD:+old,}nginx --extra "$NEW" ${OLD:+--extra "old=$OLD:--backend=uring"} \
      --file-size=1M --conns=10 --pin=$pin --reps=5 --duration=3 --syscalls $K > $OUT/large-1M-$pin.txt 2>&1
done
date; uptime
