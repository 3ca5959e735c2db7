#!/bin/sh
# tree_copy against cp -r, on files cold (evicted from the page cache with
# posix_fadvise DONTNEED, only the source tree's pages: nothing else on the
# machine is disturbed) and cached. Prints one line per run, interleaved,
# with the wall time and the CPU time the copy used (its threads included):
#   examples/bench_tree_copy.sh TREE_COPY_BINARY [RUNS]
# The tree: 1000 files of 128 KiB and 4 of 16 MiB (189 MiB) in a scratch
# directory under ${TMPDIR:-/tmp}, removed at the end.
set -eu
bin=$1
runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work/src" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(10):
    os.makedirs(os.path.join(root, "d%d" % d))
    for i in range(100):
        with open(os.path.join(root, "d%d" % d, "f%d" % i), "wb") as f:
            f.write(os.urandom(128 << 10))
for i in range(4):
    with open(os.path.join(root, "big%d" % i), "wb") as f:
        f.write(os.urandom(16 << 20))
PY
sync
evict() {
    python3 - "$work/src" <<'PY'
import os, sys
for d, _, files in os.walk(sys.argv[1]):
    for n in files:
        fd = os.open(os.path.join(d, n), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
PY
}
one() { # name, cold|cached, command...
    name=$1 state=$2
    shift 2
    rm -rf "$work/dst"
    sync
    [ "$state" = cold ] && evict
    python3 - "$name" "$state" "$@" "$work/src" "$work/dst" <<'PY'
import os, subprocess, sys, time
t0 = time.monotonic()
p = subprocess.Popen(sys.argv[3:])
_, status, ru = os.wait4(p.pid, 0)
wall = time.monotonic() - t0
if status != 0:
    sys.exit("%s failed" % sys.argv[1])
print("%-16s %-6s wall %.3f s  cpu %.3f s (user %.3f, sys %.3f)" % (
    sys.argv[1], sys.argv[2], wall, ru.ru_utime + ru.ru_stime, ru.ru_utime, ru.ru_stime))
PY
}
for r in $(seq 1 "$runs"); do
    for state in cold cached; do
        one cp "$state" cp -r
        one tree_copy-uring "$state" "$bin" --backend=uring --inflight=16
        one tree_copy-epoll "$state" "$bin" --backend=epoll --inflight=16
    done
done
