#!/bin/sh
# TCP_NOTSENT_LOWAT sweep, quiet machine: 0 (off), 256K, 1M, 2M (run after
# quiet-run3.sh, on its release build; reports quiet3-lowat-sweep-*.txt)
cd /work/main
B=/tmp/quiet-run3/rel/ringserve
OUT=/tmp/quiet-run3/sweep; mkdir -p $OUT
E="--extra lw0=$B:--backend=uring --notsent-lowat=0"
X1="lw256k=$B:--backend=uring --notsent-lowat=256K"
X2="lw1m=$B:--backend=uring --notsent-lowat=1M"
X3="lw2m=$B:--backend=uring --notsent-lowat=2M"
X0="lw0=$B:--backend=uring --notsent-lowat=0"
for cell in "64M 4 same 5" "64M 4 split 5" "1M 10 same 3" "1M 10 split 3"; do
  set -- $cell
  ./tools/http_large.py --ringserve=$B --configs=lw0,lw256k,lw1m,lw2m --extra "$X0" --extra "$X1" --extra "$X2" --extra "$X3" \
     --file-size=$1 --conns=$2 --pin=$3 --reps=3 --duration=$4 --syscalls > $OUT/$1-$3.txt 2>&1
done
date
