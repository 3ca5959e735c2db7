#!/usr/bin/env python3
"""The HTTP open-file cache end to end, on one backend.

    test_http_fcache.py RINGSERVE [SERVER OPTIONS...]

1. Revalidation over the network: with --open-file-cache-valid=3600 a
   removed file is still served from its cached descriptor (the cache is
   in use); with --open-file-cache-valid=0 (re-check on every request: no
   clock, no sleep) a file renamed over is served new, a removed one is a
   404.
2. The descriptor budget: under RLIMIT_NOFILE=400, --open-file-cache=120
   takes 120/2 = 60 connections off conn-limit and the default max-conns
   (the start-up line says "120 held by the loops"); then max-conns
   connections each fetch 1 KiB files from a set larger than the cache,
   then a 256 KiB file all at once (a cached file sent by sendfile needs a
   descriptor of its own per connection): every answer is a 200 with the
   right bytes (no 503: the server never ran out), and once the clients are
   gone the server holds no more descriptors than before plus the cache's.
Bounded in time; loopback only.
"""
import os
import re
import resource
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rs_server import Server  # noqa: E402

TIMEOUT = 20.0
NOFILE = 400
CACHE = 120
SMALL_FILES = 160  # more than the cache: evictions happen
BIG = 256 * 1024


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def content(i, n=1024):
    return (b"%05d:" % i) * (n // 6) + b"x" * (n % 6)


def start(ringserve, args, root, nofile=None):
    def limit():
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    p = Server([ringserve, "--protocol=http", "--root=" + root] + args, preexec_fn=limit)
    m = re.search(r"max-conns=(\d+), conn-limit=(\d+) \[([^\]]*)\]", p.line)
    if not m:
        p.kill()
        fail("no start-up line: %r %r" % (p.line, p.text()[-2000:]))
    return p, p.port, int(m.group(1)), int(m.group(2)), m.group(3)


def stop(p):
    rc = p.stop()
    check(rc is not None, "the server did not exit on SIGTERM")
    check(rc == 0, "server exit status %d" % rc)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buf = b""

    def send_get(self, path):
        self.s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            b = self.s.recv(1 << 20)
            if not b:
                fail("EOF before a response")
            self.buf += b
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        m = re.search(rb"(?i)content-length: (\d+)", head)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            b = self.s.recv(1 << 20)
            if not b:
                fail("EOF inside a body")
            rest += b
        self.buf = rest[n:]
        return status, rest[:n]

    def get(self, path):
        self.send_get(path)
        return self.response()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def put(root, name, data):
    with open(os.path.join(root, name), "wb") as f:
        f.write(data)


def revalidation(ringserve, opts, root):
    put(root, "r.txt", b"first\n")
    # A long interval: the cached descriptor outlives the name.
    p, port, _, _, _ = start(ringserve, opts + ["--open-file-cache-valid=3600"], root)
    try:
        c = Conn(port)
        check(c.get("/r.txt") == (200, b"first\n"), "first GET")
        os.unlink(os.path.join(root, "r.txt"))
        check(c.get("/r.txt") == (200, b"first\n"),
              "a removed file within the valid interval: not served from the cache")
    finally:
        stop(p)
    # Interval 0: every request re-checks the path.
    put(root, "r.txt", b"first\n")
    p, port, _, _, _ = start(ringserve, opts + ["--open-file-cache-valid=0"], root)
    try:
        c = Conn(port)
        check(c.get("/r.txt") == (200, b"first\n"), "first GET (valid=0)")
        put(root, "r.new", b"second\n")
        os.rename(os.path.join(root, "r.new"), os.path.join(root, "r.txt"))
        check(c.get("/r.txt") == (200, b"second\n"), "a file renamed over: old content")
        os.unlink(os.path.join(root, "r.txt"))
        st, _ = c.get("/r.txt")
        check(st == 404, "a removed file after revalidation: %d" % st)
    finally:
        stop(p)


def budget(ringserve, opts, root):
    _, _, max0, lim0, why0 = start_stop(ringserve, opts + ["--open-file-cache=0"], root)
    p, port, maxc, lim, why = start(ringserve, opts + ["--open-file-cache=%d" % CACHE],
                                    root, NOFILE)
    try:
        check("%d held by the loops" % CACHE in why, "start-up line: %r" % why)
        check("held by the loops" not in why0, "no cache, yet: %r" % why0)
        check(lim0 - lim == CACHE // 2, "conn-limit %d with the cache, %d without" % (
            lim, lim0))
        check(max0 - maxc == CACHE // 2, "max-conns %d with the cache, %d without" % (
            maxc, max0))
        base = fd_count(p.pid)
        conns = [Conn(port) for _ in range(maxc)]
        # Every connection open (the server accepted them all).
        for i, c in enumerate(conns):
            k = i % SMALL_FILES
            st, body = c.get("/s%d" % k)
            check(st == 200 and body == content(k), "small file %d: status %d" % (k, st))
        for rnd in range(2):
            for i, c in enumerate(conns):
                c.send_get("/s%d" % ((i * 7 + rnd * 13) % SMALL_FILES))
            for i, c in enumerate(conns):
                k = (i * 7 + rnd * 13) % SMALL_FILES
                st, body = c.response()
                check(st == 200 and body == content(k), "round %d file %d: %d" % (rnd, k, st))
        for c in conns:
            c.send_get("/big.bin")
        big = content(7, BIG)
        for c in conns:
            st, body = c.response()
            check(st == 200 and body == big, "big file: status %d, %d bytes" % (st, len(body)))
        for c in conns:
            c.s.close()
        # The server closes its ends; then it holds what it held plus at
        # most the cache's own.
        deadline = time.monotonic() + TIMEOUT
        while fd_count(p.pid) > base + CACHE and time.monotonic() < deadline:
            time.sleep(0.05)
        n = fd_count(p.pid)
        check(n <= base + CACHE, "%d descriptors after the clients left (%d before, "
              "cache %d)" % (n, base, CACHE))
        check(n <= NOFILE, "over the limit: %d" % n)
    finally:
        stop(p)


def start_stop(ringserve, args, root):
    p, port, maxc, lim, why = start(ringserve, args, root, NOFILE)
    stop(p)
    return p, port, maxc, lim, why


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    ringserve, opts = sys.argv[1], sys.argv[2:]
    root = tempfile.mkdtemp(prefix="rs-fcache-")
    try:
        for i in range(SMALL_FILES):
            put(root, "s%d" % i, content(i))
        put(root, "big.bin", content(7, BIG))
        revalidation(ringserve, opts, root)
        budget(ringserve, opts, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
