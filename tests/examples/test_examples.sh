#!/bin/sh
# The examples/ programs as an outside developer builds them: install the
# library into a temporary prefix, compile each example with nothing but
#   cc -std=c11 $(pkg-config --cflags --libs ringserve)
# (warnings as errors), then run each against BACKEND (test_examples.py).
#   test_examples.sh BUILD_DIR SOURCE_DIR BACKEND
set -eu
build=$1
src=$2
backend=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
pc=$(find "$tmp/root" -name ringserve.pc | head -1)
[ -n "$pc" ] || { echo "no ringserve.pc installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp/root
flags=$(pkg-config --cflags --libs ringserve)
cflags=$(pkg-config --cflags ringserve)
mkdir "$tmp/bin"
for f in "$src"/examples/*.c; do
    name=$(basename "$f" .c)
    # shellcheck disable=SC2086
    cc -std=c11 -Wall -Wextra -Wpedantic -Werror -o "$tmp/bin/$name" "$f" $flags ||
        { echo "examples/$name.c does not build against the installed library"; exit 1; }
    # gcc accepts some non-constant initializers that strict C11 (clang)
    # refuses: check with clang too, where there is one.
    if command -v clang >/dev/null; then
        # shellcheck disable=SC2086
        clang -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only "$f" $cflags ||
            { echo "examples/$name.c is not strict C11 (clang)"; exit 1; }
    fi
done
LD_LIBRARY_PATH=$(dirname "$(find "$tmp/root" -name 'libringserve.so*' | head -1)")
export LD_LIBRARY_PATH
exec python3 "$src/tests/examples/test_examples.py" "$tmp/bin" "$backend" "$tmp/work"
