#!/bin/bash
# pair.sh A B CONNS [SECONDS] [RINGBENCH]: two patched servers (dispatch-tsc-patch.py)
# at the same time on CPU 0, a ringbench each on CPU 1 (both see the same
# neighbours); prints each one's round trips/s, server CPU per round trip
# (ringbench --server-pid) and dispatch cycles per CQE. A, B: ringserve binaries.
a=$1; b=$2; c=$3; d=${4:-3}; rb=${5:-build/tools/ringbench}
fp() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
tmp=$(mktemp -d)
pa=$(fp); pb=$(fp)
taskset -c 0 $a --listen=127.0.0.1:$pa --backend=uring 2>$tmp/a.err >/dev/null & sa=$!
taskset -c 0 $b --listen=127.0.0.1:$pb --backend=uring 2>$tmp/b.err >/dev/null & sb=$!
sleep 0.4
taskset -c 1 $rb --connect=127.0.0.1:$pa --connections=$c --duration=$d --warmup=0.5 --quiet --json --server-pid=$sa >$tmp/a.json 2>&1 & ba=$!
taskset -c 1 $rb --connect=127.0.0.1:$pb --connections=$c --duration=$d --warmup=0.5 --quiet --json --server-pid=$sb >$tmp/b.json 2>&1 & bb=$!
wait $ba $bb; sleep 0.2
kill -INT $sa $sb; wait $sa $sb
for x in a b; do
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); s=d.get("server") or {}; print(sys.argv[2], "rt/s %.0f" % d["rtt_per_s"], "srv_us/rt %s" % s.get("cpu_us_per_rt"), sys.argv[3])' \
    $tmp/$x.json $x "$(grep TSC $tmp/$x.err)"
done
rm -rf $tmp
