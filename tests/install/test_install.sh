#!/bin/sh
# Install into a temporary prefix, build tools/example_proto.c against it
# with pkg-config, run it, and check the man pages cover every option.
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

meson install -C "$build" --destdir "$tmp" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp" -name ringserve.pc | head -1)
[ -n "$pc" ] || { echo "no ringserve.pc installed"; exit 1; }
for f in ringserve ringbench; do
    find "$tmp" -path "*/bin/$f" | grep -q . || { echo "bin/$f not installed"; exit 1; }
    man=$(find "$tmp" -name "$f.1" | head -1)
    [ -n "$man" ] || { echo "man page $f.1 not installed"; exit 1; }
    # Every long option of --help must be in the man page.
    for opt in $("$build"/$( [ $f = ringserve ] && echo ringserve || echo tools/ringbench ) --help |
                 grep -o -- '--[a-z][a-z-]*' | sort -u); do
        grep -q -- "$(echo "$opt" | sed 's/-/\\\\-/g')" "$man" ||
            { echo "man page $f.1 lacks $opt"; exit 1; }
    done
done
find "$tmp" -name libringserve.a | grep -q . || { echo "static library missing"; exit 1; }
find "$tmp" -path '*/include/ringserve/loop.h' | grep -q . || { echo "headers missing"; exit 1; }

export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp
flags=$(pkg-config --cflags --libs ringserve)
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$tmp/upper" \
    "$src/tools/example_proto.c" $flags
libdir=$(dirname "$(find "$tmp" -name 'libringserve.so*' | head -1)")

LD_LIBRARY_PATH=$libdir "$tmp/upper" --listen=127.0.0.1:0 --backend=epoll \
    2>"$tmp/log" &
pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/log")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "example did not start:"; cat "$tmp/log"; exit 1; }
got=$(python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"hello, ringserve\n")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    b = s.recv(100)
    if not b:
        break
    data += b
sys.stdout.write(data.decode())
PY
)
[ "$got" = "HELLO, RINGSERVE" ] || { echo "unexpected reply: '$got'"; exit 1; }
kill -TERM "$pid"
wait "$pid" || { echo "example exited with $?"; exit 1; }
pid=
grep -q "protocol=upper" "$tmp/log" || { echo "start line lacks protocol=upper"; exit 1; }
echo "install test ok"
