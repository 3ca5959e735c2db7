#!/bin/sh
# Install what ringserve needs to build and test, on Debian/Ubuntu.
# As root: apt-get installs what is missing. Otherwise: print the exact
# command and fail, so nothing is installed behind the user's back.
set -eu

PKGS="gcc make meson ninja-build pkg-config liburing-dev libcmocka-dev python3 \
valgrind clang libclang-rt-14-dev gnuplot-nox linux-perf iproute2 procps curl"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "ringserve: missing packages:$missing" >&2
    echo "ringserve: run as root:  apt-get install -y$missing" >&2
    exit 1
fi
echo "ringserve: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
# linux-perf is for benchmarks only; do not fail the build without it.
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null || {
    rest=$(echo "$missing" | sed 's/ linux-perf//')
    apt-get install -y -qq $rest >/dev/null
}
