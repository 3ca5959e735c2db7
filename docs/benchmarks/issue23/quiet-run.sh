#!/bin/sh
# The quiet-window benchmark runs (nothing else running). Usage: quiet-run.sh [SRC [OUT]]
# LIBURING=<a built liburing checkout> (docs/compare.md: "liburing's example")
set -x
SRC=${1:-.}; OUT=${2:-/tmp/quiet-run}
B=$OUT/rel
mkdir -p $OUT
cd $SRC || exit 1
[ -x $B/ringserve ] || { meson setup $B --buildtype=release -Dtests=false >/dev/null && ninja -C $B >/dev/null; } || exit 1
R="--ringserve=$B/ringserve --ringbench=$B/tools/ringbench"
LU=${LIBURING:-/path/to/liburing}/examples/echo-server
LP=${LIBURING:-/path/to/liburing}/examples/proxy
T=--textbook=$B/tools/textbook_echo
date; uptime
# 1. echo closed loop at split (+ the costs pass, both placements), 5 interleaved reps
./tools/compare --configs=textbook,liburing-example,epoll-et,uring-default,uring-default-auto,uring-batch-wait \
    --liburing-example=$LU $T --conns=50,500 --sizes=64 --repeat=5 --duration=3 --warmup=1 \
    --pin=split $R --out=$OUT/echo-split > $OUT/echo-split.log 2>&1
date
# 2. open-loop latency (3 repeats each): proxy, echo, HTTP
./tools/compare --proxy --latency $R --liburing-proxy=$LP --configs=ringserve-uring,ringserve-uring-auto,ringserve-uring-batch-wait,ringserve-epoll-et,haproxy,nginx,liburing --repeat=3 --duration=2 --warmup=0.5 --out=$OUT/lat-proxy > $OUT/lat-proxy.log 2>&1
date
./tools/compare --latency $R $T --liburing-example=$LU --configs=textbook,liburing-example,epoll-et,uring-default,uring-default-auto,uring-batch-wait --repeat=3 --duration=2 --warmup=0.5 --out=$OUT/lat-echo > $OUT/lat-echo.log 2>&1
date
./tools/compare --http --latency $R --repeat=3 --duration=2 --warmup=0.5 --out=$OUT/lat-http > $OUT/lat-http.log 2>&1
date; uptime
# echo closed loop, same CPU
./tools/compare --costs=off --configs=textbook,liburing-example,epoll-et,uring-default,uring-default-auto,uring-batch-wait \
    --liburing-example=$LU $T --conns=50,500 --sizes=64 --repeat=5 --duration=3 --warmup=1 \
    --pin=same $R --out=$OUT/echo-same > $OUT/echo-same.log 2>&1
date
# 3. costs passes (syscalls, context switches, instructions per request, both placements)
./tools/compare --proxy $R --liburing-proxy=$LP --configs=ringserve-uring,ringserve-epoll-et,haproxy,nginx,liburing \
    --sizes=64 --conns=50 --repeat=1 --duration=3 --warmup=0.5 --throughput=none --redis=off --out=$OUT/costs-proxy > $OUT/costs-proxy.log 2>&1
date
./tools/compare --http $R --configs=uring,epoll-pool,epoll-inline,nginx-sendfile \
    --files=1K --conns=50 --repeat=1 --duration=3 --warmup=1 --no-cold --out=$OUT/costs-http > $OUT/costs-http.log 2>&1
date; uptime
# 4. large files against nginx, both placements
for pin in same split; do
  ./tools/http_large.py --ringserve=$B/ringserve --configs=uring,epoll,nginx --file-size=64M --conns=4 \
      --pin=$pin --reps=5 --duration=5 --syscalls > $OUT/large-64M-$pin.txt 2>&1
  ./tools/http_large.py --ringserve=$B/ringserve --configs=uring,epoll,nginx --file-size=1M --conns=10 \
      --pin=$pin --reps=5 --duration=3 --syscalls > $OUT/large-1M-$pin.txt 2>&1
done
date; uptime

# the proxy at both placements, 5 interleaved repeats
for pin in split same; do
./tools/compare --proxy $R --configs=ringserve-uring,ringserve-uring-batch-wait,ringserve-epoll-et,haproxy,nginx \
  --sizes=64 --conns=50,500 --repeat=5 --duration=3 --warmup=1 --throughput=none --redis=off --costs=off \
  --pin=$pin --out=$OUT/proxy-$pin > $OUT/proxy-$pin.log 2>&1
done
