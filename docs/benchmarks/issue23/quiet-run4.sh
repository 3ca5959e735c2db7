#!/bin/sh
# The fourth quiet window's runs (nothing else running, ~10 minutes): echo
# at split placement after the third round on its instructions, and large
# files after the io_uring sendfile kept its socket between ops (OLD = a
# release build of the tree before, to show what that bought in the same
# run). Usage: quiet-run4.sh [SRC [OUT]]
# LIBURING=<a built liburing checkout> (docs/compare.md: "liburing's example"),
# OLD=<the previous build's ringserve>. Instructions per request are
# counts: tools/instr_profile.py, any time.
set -x
SRC=${1:-.}; OUT=${2:-/tmp/quiet-run4}
B=$OUT/rel
mkdir -p $OUT
cd $SRC || exit 1
[ -x $B/ringserve ] || { meson setup $B --buildtype=release -Dtests=false >/dev/null && ninja -C $B >/dev/null; } || exit 1
R="--ringserve=$B/ringserve --ringbench=$B/tools/ringbench"
LU=${LIBURING:-/path/to/liburing}/examples/echo-server
T=--textbook=$B/tools/textbook_echo
date; uptime
# 1. echo at split placement against the textbook server and liburing's example
./tools/compare --costs=off --configs=textbook,liburing-example,epoll-et,uring-default \
    --liburing-example=$LU $T --conns=50,500 --sizes=64 --repeat=5 --duration=3 --warmup=1 \
    --pin=split $R --out=$OUT/echo-split > $OUT/echo-split.log 2>&1
date
# 2. large files against nginx, both placements, with the previous build
NEW="new=$B/ringserve:--backend=uring"
N256="new-256k=$B/ringserve:--backend=uring --notsent-lowat=256K"
for pin in same split; do
  ./tools/http_large.py --configs=new,${OLD:+old,}nginx,new-256k --extra "$NEW" --extra "$N256" \
      ${OLD:+--extra "old=$OLD:--backend=uring"} \
      --file-size=64M --conns=4 --pin=$pin --reps=5 --duration=5 --syscalls > $OUT/large-64M-$pin.txt 2>&1
  ./tools/http_large.py --configs=new,${OLD:+old,}nginx --extra "$NEW" ${OLD:+--extra "old=$OLD:--backend=uring"} \
      --file-size=1M --conns=10 --pin=$pin --reps=5 --duration=3 --syscalls > $OUT/large-1M-$pin.txt 2>&1
done
date; uptime
