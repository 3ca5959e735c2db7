#!/bin/sh
# The third quiet window's runs (nothing else running, ~15 minutes): large
# files with the unsent queue bounded (TCP_NOTSENT_LOWAT 256 KiB, the
# default of the build this window ran; `uring-off` is the same binary with
# --notsent-lowat=0, the default since: to repeat the `uring` rows now, add
# --notsent-lowat=256K), and HTTP's p99
# at a low offered rate with longer runs and more repeats than the second
# window's (3 x 2 s there: 10,000 requests per run, so a p99 of 100 samples,
# and the per-repeat p99s spread 282-1,360 us for nginx, 622-963 for uring).
# Usage: quiet-run3.sh [SRC [OUT]]
set -x
SRC=${1:-.}; OUT=${2:-/tmp/quiet-run3}
B=$OUT/rel
mkdir -p $OUT
cd $SRC || exit 1
[ -x $B/ringserve ] || { meson setup $B --buildtype=release -Dtests=false >/dev/null && ninja -C $B >/dev/null; } || exit 1
R="--ringserve=$B/ringserve --ringbench=$B/tools/ringbench"
date; uptime
# 1. large files against nginx, both placements
OFF="uring-off=$B/ringserve:--backend=uring --notsent-lowat=0"
for pin in same split; do
  ./tools/http_large.py --ringserve=$B/ringserve --configs=uring,uring-off,nginx --extra "$OFF" \
      --file-size=64M --conns=4 --pin=$pin --reps=5 --duration=5 --syscalls > $OUT/large-64M-$pin.txt 2>&1
  ./tools/http_large.py --ringserve=$B/ringserve --configs=uring,uring-off,nginx --extra "$OFF" \
      --file-size=1M --conns=10 --pin=$pin --reps=5 --duration=3 --syscalls > $OUT/large-1M-$pin.txt 2>&1
done
date
# 2. the proxy's bulk transfers with the unsent queue bounded (accepted
#    sockets get TCP_NOTSENT_LOWAT): 4 sessions x 1 MiB and 16 KiB ping-pong,
#    against the previous build (BASE=<its ringserve>, without the limit)
for pin in same split; do
  ./tools/compare --proxy $R ${BASE:+--baseline=$BASE} --configs=ringserve-uring,haproxy,nginx \
    --sizes=16K --conns=50 --throughput=4x1M --repeat=3 --duration=3 --warmup=1 \
    --redis=off --costs=off --pin=$pin --out=$OUT/proxy-bulk-$pin > $OUT/proxy-bulk-$pin.log 2>&1
done
date
# 3. HTTP 1 KiB at split placement, both servers offered the same rates,
#    6 s per run (30,000 requests at 5,000/s), 5 repeats
./tools/compare --http --latency $R --configs=uring,nginx-sendfile --files=1K --conns=50 \
  --loads=5000/s,20000/s --placements=split --repeat=5 --duration=6 --warmup=0.5 \
  --out=$OUT/lat-http-fixed > $OUT/lat-http-fixed.log 2>&1
date; uptime
