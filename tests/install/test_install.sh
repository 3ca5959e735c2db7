#!/bin/sh
# Install into a temporary prefix, check that only the public API is
# installed and exported, build tools/example_proto.c against it with the
# documented plain line (cc -std=c11 and pkg-config, nothing else), run it,
# and check the man pages cover every option.
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

# Exactly the public headers: the umbrella and include/ringserve/ of the
# source tree; nothing of core/ (the internals).
inc=$(dirname "$(find "$tmp" -name ringserve.h -path '*/include/ringserve.h' | head -1)")
[ -f "$inc/ringserve.h" ] || { echo "<ringserve.h> not installed"; exit 1; }
want=$(cd "$src/include/ringserve" && ls *.h | sort | tr '\n' ' ')
got=$(cd "$inc/ringserve" && ls | sort | tr '\n' ' ')
[ "$want" = "$got" ] || { echo "installed headers: '$got', expected '$want'"; exit 1; }
[ "$(ls "$inc" | sort | tr '\n' ' ')" = "ringserve ringserve.h " ] ||
    { echo "unexpected files in include/: $(ls "$inc")"; exit 1; }

# Exported symbols: only rs_ functions, and every one declared RS_EXPORT in
# a public header (nothing internal leaks, nothing public is missing).
so=$(find "$tmp" -name 'libringserve.so.*.*' | head -1)
readelf -d "$so" | grep -q 'SONAME.*libringserve\.so\.[0-9]' ||
    { echo "no versioned soname"; exit 1; }
nm -D --defined-only "$so" | awk '{print $3}' | sort >"$tmp/exported"
bad=$(grep -v '^rs_' "$tmp/exported" || true)
[ -z "$bad" ] || { echo "exported symbols without rs_:"; echo "$bad"; exit 1; }
# (A declaration may break after its return type: read the headers as one
# line, then take the name before each RS_EXPORT declaration's "(".)
cat "$src"/include/ringserve/*.h | tr '\n' ' ' | grep -o 'RS_EXPORT [^;(]*(' |
    sed -n 's/.*[ *]\(rs_[a-z0-9_]*\) *($/\1/p' | sort >"$tmp/declared"
diff "$tmp/declared" "$tmp/exported" >"$tmp/symdiff" ||
    { echo "exported (>) vs declared RS_EXPORT (<):"; cat "$tmp/symdiff"; exit 1; }

export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp
flags=$(pkg-config --cflags --libs ringserve)
# The documented line, with warnings as errors: public headers must need
# nothing but C11 (no _GNU_SOURCE, no POSIX feature macro).
cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$tmp/upper" \
    "$src/tools/example_proto.c" $flags
# Each public header on its own compiles too (self-sufficient).
for h in "$inc"/ringserve.h "$inc"/ringserve/*.h; do
    printf '#include <%s>\nint one;\n' "${h#$inc/}" >"$tmp/one.c"
    cc -std=c11 -Wall -Wextra -Wpedantic -Werror -c -o "$tmp/one.o" "$tmp/one.c" \
        $(pkg-config --cflags ringserve) || { echo "$h does not compile alone"; exit 1; }
done
libdir=$(dirname "$(find "$tmp" -name 'libringserve.so*' | head -1)")

# The log exists before the example starts: the redirection is made by the
# forked shell, which a loaded machine may not run before the loop reads.
: >"$tmp/log"
LD_LIBRARY_PATH=$libdir "$tmp/upper" --listen=127.0.0.1:0 --backend=epoll \
    2>>"$tmp/log" &
pid=$!
port=
# A bound on a wait for the start-up line (20 s, the suite's safety bound),
# never a pace: the loop ends as soon as the line is there.
for _ in $(seq 1 200); do
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
