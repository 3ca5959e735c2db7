#!/bin/sh
# End-to-end: ringbench against ringserve with the given server options.
# ringbench must verify every byte and exit 0; the server must exit 0 on
# SIGTERM. Exits 77 (meson: skipped) only when the server says the kernel
# lacks what these options need (io_uring, or one of its features), with a
# SKIP-REASON line; any other start-up failure fails.
#
# usage: test_ringserve.sh RINGBENCH RINGSERVE MODE SERVER-OPTIONS...
#   MODE: echo | discard | chargen
set -u
RB=$1
RS=$2
MODE=$3
shift 3
TMP=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null; rm -rf "$TMP"' EXIT

"$RS" --listen=127.0.0.1:0 --protocol="$MODE" "$@" 2>"$TMP/log" &
SERVER=$!
i=0
PORT=
while [ $i -lt 100 ]; do
    PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/log")
    [ -n "$PORT" ] && break
    if ! kill -0 "$SERVER" 2>/dev/null; then
        SERVER=
        cat "$TMP/log"
        # Only what the kernel lacks is a skip, said in the form
        # scripts/test-summary.py checks against the probe; a crash or a
        # usage error is a failure.
        if grep -q "io_uring is unavailable" "$TMP/log"; then
            echo "SKIP-REASON: io_uring unavailable: $(grep -m1 'io_uring is unavailable' "$TMP/log")"
            exit 77
        fi
        feature=$(sed -n "s/.*this kernel does not support '\([^']*\)'.*/\1/p" "$TMP/log" | head -n1)
        if [ -n "$feature" ]; then
            echo "SKIP-REASON: feature unavailable: $feature"
            exit 77
        fi
        echo "FAIL: ringserve $* exited before printing its port"
        exit 1
    fi
    sleep 0.05
    i=$((i + 1))
done
[ -n "$PORT" ] || { echo "ringserve did not report its port"; cat "$TMP/log"; exit 1; }
head -n1 "$TMP/log"

fails=0
bench() {
    echo "ringbench $*"
    if ! "$RB" --connect="127.0.0.1:$PORT" --quiet --stall-timeout=10 \
        --server-pid="$SERVER" "$@"; then
        echo "FAIL: ringbench $*"
        fails=$((fails + 1))
    fi
}

case $MODE in
echo)
    # Ping-pong, pipelined, mixed sizes across the 16 KiB receive buffers.
    bench --connections=1 --rounds=200
    bench --connections=20 --size=1-64K --pipeline=2 --rounds=20
    bench --connections=300 --threads=2 --size=100 --pipeline=4 --rounds=30
    ;;
discard | chargen)
    bench --mode="$MODE" --connections=4 --size=64K --rounds=50
    ;;
esac

# discard: let the server read to EOF before asking it to stop (a drain
# stops reading): wait until none of its connections is left, by state.
if [ "$MODE" = discard ]; then
    i=0
    while [ $i -lt 400 ] &&
        ss -Htn state established state close-wait "( sport = :$PORT )" | grep -q .; do
        sleep 0.05
        i=$((i + 1))
    done
fi

kill -TERM "$SERVER"
wait "$SERVER"
rc=$?
SERVER=
if [ $rc -ne 0 ]; then
    echo "FAIL: ringserve exited $rc on SIGTERM"
    cat "$TMP/log"
    fails=$((fails + 1))
fi
# discard: the server must have received exactly what was sent
# (4 connections x 64 KiB x 50 rounds), as its final statistics say.
if [ "$MODE" = discard ]; then
    want=$((4 * 65536 * 50))
    got=$(sed -n 's/.*stats:.* bytes_in=\([0-9]*\).*/\1/p' "$TMP/log")
    if [ "$got" != "$want" ]; then
        echo "FAIL: server stats bytes_in=$got, expected $want"
        fails=$((fails + 1))
    fi
fi
[ $fails -eq 0 ] || exit 1
echo "all passed"
