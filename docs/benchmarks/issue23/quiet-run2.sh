#!/bin/sh
# The second quiet window's runs (nothing else running, ~15 minutes): what
# the first window (quiet-run.sh) left open. Usage: quiet-run2.sh [SRC [OUT]]
# LIBURING=<a built liburing checkout> (docs/compare.md: "liburing's example").
# Instructions per request are counts: tools/instr_profile.py, any time.
set -x
SRC=${1:-.}; OUT=${2:-/tmp/quiet-run2}
B=$OUT/rel
mkdir -p $OUT
cd $SRC || exit 1
[ -x $B/ringserve ] || { meson setup $B --buildtype=release -Dtests=false >/dev/null && ninja -C $B >/dev/null; } || exit 1
R="--ringserve=$B/ringserve --ringbench=$B/tools/ringbench"
LU=${LIBURING:-/path/to/liburing}/examples/echo-server
LP=${LIBURING:-/path/to/liburing}/examples/proxy
T=--textbook=$B/tools/textbook_echo
date; uptime
# 1. echo at split placement against the textbook server and liburing's example
./tools/compare --costs=off --configs=textbook,liburing-example,epoll-et,uring-default \
    --liburing-example=$LU $T --conns=50,500 --sizes=64 --repeat=5 --duration=3 --warmup=1 \
    --pin=split $R --out=$OUT/echo-split > $OUT/echo-split.log 2>&1
date
# 2. the proxy at split placement (liburing's demo proxy crashes past ~200 sessions: 50 only)
./tools/compare --proxy $R --liburing-proxy=$LP --configs=ringserve-uring,ringserve-epoll-et,haproxy,nginx,liburing \
  --sizes=64 --conns=50,500 --repeat=5 --duration=3 --warmup=1 --throughput=none --redis=off --costs=off \
  --pin=split --out=$OUT/proxy-split > $OUT/proxy-split.log 2>&1
date
# 3. HTTP 1 KiB at split placement, both servers offered the same rates
./tools/compare --http --latency $R --configs=uring,nginx-sendfile --files=1K --conns=50 \
  --loads=5000/s,20000/s --placements=split --repeat=3 --duration=2 --warmup=0.5 \
  --out=$OUT/lat-http-fixed > $OUT/lat-http-fixed.log 2>&1
date
# 4. large files against nginx, both placements
for pin in same split; do
  ./tools/http_large.py --ringserve=$B/ringserve --configs=uring,nginx --file-size=64M --conns=4 \
      --pin=$pin --reps=5 --duration=5 --syscalls > $OUT/large-64M-$pin.txt 2>&1
  ./tools/http_large.py --ringserve=$B/ringserve --configs=uring,nginx --file-size=1M --conns=10 \
      --pin=$pin --reps=5 --duration=3 --syscalls > $OUT/large-1M-$pin.txt 2>&1
done
date; uptime
