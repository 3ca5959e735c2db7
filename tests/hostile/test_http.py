#!/usr/bin/env python3
"""Hostile clients of --protocol=http.

    test_http.py attacks|dates|slowloris|cold|burst RINGSERVE [SERVER OPTIONS...]

attacks:
- traversal: ~45 targets that try to leave the root (.., %2e%2e, %2f,
  backslashes, %00, overlong UTF-8, double encoding, absolute-form,
  symlinks out by absolute and relative paths) and special files in the
  root (a FIFO, /dev/null's device node, a socket): each a 400 or 404 in
  time, never a byte of what lies outside; controls inside the root are 200;
- smuggling: CL+TE, TE alone, duplicate and list Content-Length, obs-fold,
  bare CR and LF, a space before the colon, huge and negative lengths, NUL
  bytes, oversized heads: each rejected with its status and Connection:
  close, then EOF, and the request hidden behind it never answered;
- ranges: a handful of edge cases and huge numbers, checked byte for byte
  against the file, and one range at the end of a 5 GiB sparse file;
- 1,000 pipelined requests answered in order;
- 20 clients that ask for a 32 MiB file and never read: bounded RSS;
- 200 resets in the middle of a response (SO_LINGER {1,0}), 300 in the
  middle of a request head;
- after each: the server's own stream count comes back to zero, a new
  client is served, and the final statistics account for every connection.
dates: files dated 1960, 1970 and (where the file system allows) after
  9999: every response head (GET, HEAD, If-Modified-Since) is printable
  ASCII, and a Last-Modified, when present, is the file's true date.
slowloris: clients sending a request head one byte every half second
  against --header-timeout=1: the server closes them long before the head
  could end, and serves others meanwhile.
"""
import ctypes
import email.utils
import mmap
import os
import re
import select
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

import hostile
from hostile import MIB, Fail, MemoryWatch, Server, check, note, reset
from http_client import Conn, get, parse_head, req, wait_head

A_TXT = b"hello, world\n"
SECRET = b"secret-outside-the-root"


def make_root(tmp):
    root = os.path.join(tmp, "root")
    for d in ("sub", "noindex"):
        os.makedirs(os.path.join(root, d))
    files = {"a.txt": A_TXT, "sub/index.html": b"sub index\n", "smuggled": b"SMUGGLED\n"}
    for name, data in files.items():
        with open(os.path.join(root, name), "wb") as f:
            f.write(data)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(3 * MIB))
    with open(os.path.join(root, "huge.bin"), "wb") as f:
        f.write(os.urandom(32 * MIB))
    outside = os.path.join(tmp, "outside.txt")
    with open(outside, "wb") as f:
        f.write(SECRET + b"\n")
    os.symlink("/etc/passwd", os.path.join(root, "leak"))
    os.symlink(outside, os.path.join(root, "abs"))
    os.symlink("../outside.txt", os.path.join(root, "rel"))
    os.symlink("..", os.path.join(root, "up"))
    os.symlink("a.txt", os.path.join(root, "inside"))
    os.mkfifo(os.path.join(root, "fifo"))
    # Special files reached through symbolic links, and a FIFO where a
    # directory's index.html should be: never a hang, always a 404.
    os.symlink("fifo", os.path.join(root, "fifolink"))
    os.symlink("/dev/zero", os.path.join(root, "zerolink"))
    os.makedirs(os.path.join(root, "fifodir"))
    os.mkfifo(os.path.join(root, "fifodir", "index.html"))
    try:
        os.mknod(os.path.join(root, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        note("not root: no device node in the root")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(os.path.join(root, "sock"))
    return root, files, unix


TRAVERSAL = [
    "/../outside.txt", "/../../../../../../etc/passwd", "/%2e%2e/outside.txt",
    "/%2E%2E/outside.txt", "/.%2e/outside.txt", "/%2e./outside.txt", "/..%2foutside.txt",
    "/..%2Foutside.txt", "/%2e%2e%2foutside.txt", "/sub/../../outside.txt",
    "/sub/..%2f..%2foutside.txt", "/sub/%2e%2e/%2e%2e/outside.txt", "/./../outside.txt",
    "/..\\outside.txt", "/%5c..%5coutside.txt", "/..%5coutside.txt", "/sub\\..\\..\\outside.txt",
    "/a.txt%00", "/a.txt%00.html", "/%00", "/%00/../outside.txt",
    "/%252e%252e/outside.txt", "/%c0%ae%c0%ae/outside.txt", "//etc/passwd", "///../outside.txt",
    "/leak", "/abs", "/rel", "/up/outside.txt", "/sub/../up/outside.txt", "/up/up/etc/passwd",
    "/fifo", "/null", "/sock", "/fifo/", "/noindex/", "/a.txt/", "/fifolink", "/zerolink",
    "/fifodir/", "/fifodir",
    "http://t/../outside.txt", "http://t/%2e%2e/outside.txt", "*", "../outside.txt",
]
INSIDE = [("/a.txt", A_TXT), ("/sub/../a.txt", A_TXT), ("/sub/./../a.txt", A_TXT),
          ("/%61.txt", A_TXT), ("/inside", A_TXT), ("/sub/", b"sub index\n"),
          ("http://t/a.txt", A_TXT)]


def traversal(srv):
    for target in TRAVERSAL:
        st, h, body = get(srv, target)
        check(st in (400, 404), "GET %s: %d, expected 404 (or 400)" % (target, st))
        check(SECRET not in body and b"root:" not in body, "GET %s leaked: %r" % (target, body))
    for target, want in INSIDE:
        st, h, body = get(srv, target)
        check(st == 200 and body == want, "GET %s: %d %r, expected 200" % (target, st, body))
    # A raw NUL and a raw backslash in the target: 400 or 404, never the file.
    for raw in (b"GET /a.txt\x00 HTTP/1.1\r\nHost: t\r\n\r\n",
                b"GET /\x00/../outside.txt HTTP/1.1\r\nHost: t\r\n\r\n"):
        st, h, body = get(srv, None, raw=raw)
        check(st in (400, 404) and SECRET not in body, "%r: %d" % (raw, st))


SMUGGLED = req("/smuggled")
SMUGGLING = [
    ("CL+TE", 413, "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE", 413, "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("TE, obs-folded", 400, "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("CL twice", 400, "Content-Length: 0\r\nContent-Length: 5\r\n\r\n"),
    ("CL list", 400, "Content-Length: 0, 5\r\n\r\n"),
    ("CL +0", 400, "Content-Length: +0\r\n\r\n"),
    ("CL -1", 400, "Content-Length: -1\r\n\r\n"),
    ("CL huge", 400, "Content-Length: 99999999999999999999999\r\n\r\n"),
    ("CL space before colon", 400, "Content-Length : 5\r\n\r\n"),
    ("obs-fold", 400, "X-A: a\r\n b\r\n\r\n"),
    ("header line starting with a space", 400, " X-A: a\r\n\r\n"),
    ("NUL in a header", 400, "X-A: a\x00b\r\n\r\n"),
    ("Host twice", 400, "Host: u\r\n\r\n"),
    ("201 header lines", 431, "X: y\r\n" * 200 + "\r\n"),
    ("9000-byte header", 431, "X: " + "y" * 9000 + "\r\n\r\n"),
]
RAW_SMUGGLING = [
    ("bare LF", 400, b"GET /a.txt HTTP/1.1\nHost: t\n\n"),
    ("bare CR", 400, b"GET /a.txt HTTP/1.1\rHost: t\r\n\r\n"),
    ("no Host in 1.1", 400, b"GET /a.txt HTTP/1.1\r\n\r\n"),
    ("tab for space", 400, b"GET\t/a.txt HTTP/1.1\r\nHost: t\r\n\r\n"),
    ("TE in HTTP/1.0", 413, b"GET /a.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("2 KiB target", 414, req("/" + "a" * 2000)),
    ("8 KiB request line", None, b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: t\r\n\r\n"),
]


def smuggling(srv):
    cases = [(n, st, b"GET /a.txt HTTP/1.1\r\nHost: t\r\n" + tail.encode("latin1"))
             for n, st, tail in SMUGGLING if tail is not None] + RAW_SMUGGLING
    for name, want, raw in cases:
        c = Conn(srv)
        c.send(raw + SMUGGLED)
        r = c.response()
        check(r is not None, "%s: no response" % name)
        st, h, body = r
        if want is None:
            check(400 <= st < 500, "%s: %d, expected a 4xx" % (name, st))
        else:
            check(st == want, "%s: %d, expected %d" % (name, st, want))
        check(h.get("connection") == "close", "%s: %d without Connection: close" % (name, st))
        check(c.closed(), "%s: the connection stayed open after %d" % (name, st))
        check(b"SMUGGLED" not in body, "%s: the hidden request was answered" % name)
        c.close()


def check_range(name, resp, data, allowed):
    st, h, body = resp
    check(st in allowed, "%s: %d, expected one of %s" % (name, st, allowed))
    if st == 200:
        check(body == data, "%s: 200 with %d bytes, not the file" % (name, len(body)))
    elif st == 206:
        unit, _, rest = h["content-range"].partition(" ")
        span, _, size = rest.partition("/")
        a, _, b = span.partition("-")
        check(unit == "bytes" and int(size) == len(data), "%s: %r" % (name, h["content-range"]))
        check(body == data[int(a):int(b) + 1], "%s: the body is not bytes %s" % (name, span))
    elif st == 416:
        check(h.get("content-range") == "bytes */%d" % len(data), "%s: 416 %r" % (name, h))


RANGES = [
    ("0-0", (206,)), ("12-12", (206,)), ("13-13", (416,)), ("-0", (416,)), ("-1", (206,)),
    ("-13", (206,)), ("-14", (206,)), ("0-", (206,)), ("5-2", (200, 416)),
    ("0-1,3-4", (200, 206)), ("-5-6", (200, 416)), ("0-99999999999999999999999", (200, 206)),
    ("99999999999999999999999-", (200, 416)), ("-99999999999999999999999", (200, 206)),
    ("18446744073709551615-18446744073709551616", (200, 416)), (" 0-1", (200, 206)),
]


def ranges(srv, root):
    for spec, allowed in RANGES:
        r = get(srv, "/a.txt", extra="Range: bytes=%s\r\n" % spec)
        check_range("Range: bytes=" + spec, r, A_TXT, allowed)
    r = get(srv, "/a.txt", extra="Range: bytes=0-1\r\nRange: bytes=3-4\r\n")
    check(r[0] in (200, 206, 400), "two Range headers: %d" % r[0])
    # 64-bit offsets: the last bytes of a 5 GiB sparse file.
    size = 5 << 30
    tail = b"the end of a sparse file\n"
    with open(os.path.join(root, "sparse.bin"), "wb") as f:
        f.seek(size - len(tail))
        f.write(tail)
    c = Conn(srv)
    c.send(req("/sparse.bin", extra="Range: bytes=%d-\r\n" % (size - 100)))
    st, h, body = c.response()
    check(st == 206 and body == bytes(100 - len(tail)) + tail and
          h["content-range"] == "bytes %d-%d/%d" % (size - 100, size - 1, size),
          "sparse tail: %d %r" % (st, h))
    c.close()
    os.unlink(os.path.join(root, "sparse.bin"))


def pipelined(srv, n=1000):
    menu = [(req("/a.txt"), 200, A_TXT), (req("/sub/"), 200, b"sub index\n"),
            (req("/missing"), 404, None), (req("/a.txt", "HEAD"), 200, b"")]
    c = Conn(srv)
    wire = b"".join(menu[i % 4][0] for i in range(n))
    sender = threading.Thread(target=c.send, args=(wire,))
    sender.start()
    for i in range(n):
        _, want_st, want_body = menu[i % 4]
        r = c.response(head_only=i % 4 == 3)
        check(r is not None, "pipelined: EOF after %d responses" % i)
        check(r[0] == want_st and (want_body is None or r[2] == want_body),
              "pipelined #%d: %d %r" % (i, r[0], r[2][:50]))
    sender.join()
    c.close()


def non_readers(srv, n=20):
    watch = MemoryWatch(srv, hostile.memory_bound_kb(srv.opts, n),
                        "2 x max-pending per stream + buffer pool + 8 MiB")
    socks = []
    for _ in range(n):
        s = srv.connect(rcvbuf=4096)
        s.sendall(req("/huge.bin"))
        check(wait_head(s).startswith(b"HTTP/1.1 200 "), "huge.bin: not 200")
        socks.append(s)
    srv.wait_quiet("bytes_out")
    served(srv)
    watch.check("%d clients not reading a 32 MiB file" % n)
    for s in socks:
        s.close()


def resets(srv):
    for i in range(200):
        s = srv.connect(rcvbuf=4096 if i % 2 else None)
        s.sendall(req("/big.bin" if i % 4 < 2 else "/huge.bin"))
        wait_head(s)
        if i % 3 == 0:
            s.recv(65536)
        reset(s)
    for i in range(300):
        s = srv.connect()
        s.sendall(req("/a.txt")[:1 + i % 30])
        reset(s)


def served(srv):
    st, h, body = get(srv, "/a.txt")
    check(st == 200 and body == A_TXT, "a new client: %d %r" % (st, body))


def attacks(exe, opts, tmp):
    root, files, unix = make_root(tmp)
    srv = Server(exe, opts, ["--protocol=http", "--root=" + root], tmp)
    served(srv)
    for name, attack in (("traversal", lambda: traversal(srv)),
                         ("smuggling", lambda: smuggling(srv)),
                         ("ranges", lambda: ranges(srv, root)),
                         ("1000 pipelined", lambda: pipelined(srv)),
                         ("20 non-readers", lambda: non_readers(srv)),
                         ("500 resets", lambda: resets(srv))):
        attack()
        srv.wait_conns(0, name)
        served(srv)
        note("%s: the server holds no stream afterwards and still serves" % name)
    srv.wait_conns(0, "the end")
    final = srv.stop()
    check(final["accepted"] == srv.connects,
          "final: accepted=%d, the test connected %d times" % (final["accepted"], srv.connects))
    unix.close()


def dates(exe, opts, tmp):
    # tmpfs stores any 64-bit time; ext4 stops at 1901 and 2446.
    if os.path.isdir("/dev/shm"):
        tmp = tempfile.mkdtemp(prefix="rs-hostile-dates-", dir="/dev/shm")
        hostile.CLEANUP.append(tmp)
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    stamps = {"1960.txt": -315619200, "1970.txt": 0, "1900.txt": -2208988800,
              "9999.txt": 253402300799, "10000.txt": 253402300800}
    for name, t in list(stamps.items()):
        with open(os.path.join(root, name), "wb") as f:
            f.write(A_TXT)
        os.utime(os.path.join(root, name), (t, t))
        if os.stat(os.path.join(root, name)).st_mtime != t:
            note("the file system cannot date a file %d: %s skipped" % (t, name))
            del stamps[name]
    srv = Server(exe, opts, ["--protocol=http", "--root=" + root], tmp)
    now = time.time()
    for name, t in stamps.items():
        # An IMF date has four digits for the year: none for 10000.
        true_date = email.utils.formatdate(t, usegmt=True) if t < 253402300800 else None
        for method, extra in (("GET", ""), ("HEAD", ""),
                              ("GET", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n"),
                              ("GET", "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n"),
                              ("GET", "If-Modified-Since: %s\r\n" % true_date)):
            what = "%s /%s %s" % (method, name, extra.strip())
            try:
                # parse_head fails on any non-printable byte and on a
                # Last-Modified that is not an IMF date.
                st, h, body = get(srv, "/" + name, method, extra)
            except Fail as e:
                raise Fail("%s: %s" % (what, e))
            check(st in (200, 304), "%s: %d" % (what, st))
            if st == 200 and method == "GET":
                check(body == A_TXT, "%s: body %r" % (what, body))
            # A file dated in the future may be given the response's Date
            # instead (RFC 9110 8.8.2.1).
            allowed = [true_date] + ([h.get("date")] if t > now else [])
            if "last-modified" in h:
                check(h["last-modified"] in allowed,
                      "%s: Last-Modified %r, the file is dated %s" %
                      (what, h["last-modified"], true_date))
    note("dates: %s answered with clean heads" % ", ".join(stamps))
    srv.wait_conns(0, "the end")
    srv.stop()


# Seconds: short, so the test is; the slow clients below would need 20 s
# to send their heads.
HEADER_TIMEOUT = "1"
SLOW_HEAD = b"GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: 0123456789\r\n\r\n"


def slowloris(exe, opts, tmp):
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    with open(os.path.join(root, "a.txt"), "wb") as f:
        f.write(A_TXT)
    try:
        srv = Server(exe, opts, ["--protocol=http", "--root=" + root, "--idle-timeout=60",
                                 "--header-timeout=" + HEADER_TIMEOUT], tmp)
    except Fail:
        help_text = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
        if "--header-timeout" not in help_text:
            raise Fail("ringserve has no --header-timeout option: a request head may take "
                       "for ever (the fix is the http-hard branch)")
        raise
    slow = {}
    p = select.poll()
    for _ in range(4):
        s = srv.connect()
        slow[s.fileno()] = s
        p.register(s, select.POLLIN)
    start = time.time()
    sent = 0
    # One byte per client every half second: the poll's timeout paces the
    # bytes, and the server's close ends the poll at once. The head would
    # take 26 s; the only pass condition is that every slow client is closed
    # before its head is complete, so a slow machine cannot fail this.
    while slow and sent < len(SLOW_HEAD) - 1:
        for s in slow.values():
            try:
                s.send(SLOW_HEAD[sent:sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                pass  # closed: the poll below reports it
        sent += 1
        for fd, _ in p.poll(500):
            s = slow.pop(fd)
            p.unregister(fd)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            if data:  # an answer is allowed (408), a file is not
                status, _ = parse_head(data.split(b"\r\n\r\n")[0])
                check(status in (400, 408), "slowloris: the server answered %r" % data[:100])
            s.close()
        if sent % 4 == 0:
            served(srv)
    check(not slow, "slowloris: %d of 4 clients still connected after %.1f s and %d of %d "
          "head bytes (--header-timeout=%s)" % (len(slow), time.time() - start, sent,
                                                len(SLOW_HEAD), HEADER_TIMEOUT))
    note("slowloris: 4 clients closed after %d bytes, %.1f s" % (sent, time.time() - start))
    served(srv)
    srv.wait_conns(0, "the end")
    final = srv.stop()
    check(final["accepted"] == srv.connects, "final: accepted=%d" % final["accepted"])


# cold: each stalled client asks for its own COLD_SPAN of the file, far
# enough apart that no read-ahead of one brings in the next one's pages.
COLD_CLIENTS = 16
COLD_SPAN = 4 * MIB
# Threads the server may gain while COLD_CLIENTS hold it stalled: a few
# io-wq workers reading the file (a read ends by itself), none per client.
COLD_THREADS = 6


def resident_pages(path):
    """Pages of the file in the page cache (mincore(2) of a mapping that
    touches none)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = os.path.getsize(path)
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    with open(path, "rb") as f:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
    check(addr not in (None, ctypes.c_void_p(-1).value), "mmap: errno %d" % ctypes.get_errno())
    vec = (ctypes.c_ubyte * pages)()
    rc = libc.mincore(addr, size, vec)
    libc.munmap(addr, size)
    check(rc == 0, "mincore: errno %d" % ctypes.get_errno())
    return sum(v & 1 for v in vec)


def evict(path, limit_s=30.0):
    """Drops the file's pages from the page cache: True when all went
    (False on tmpfs, whose pages are the file). Pages still being read
    (the read-ahead a cold request started past its range finishes after
    the response) are locked and skipped by POSIX_FADV_DONTNEED: asked
    again until none is left, for up to limit_s (that read can take
    seconds on a busy machine's disk; it usually takes milliseconds)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        pages = (os.fstat(fd).st_size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
        deadline = time.monotonic() + limit_s
        first = True
        while True:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            left = resident_pages(path)
            if left == 0:
                return True
            if first and left == pages:
                return False  # none could go: tmpfs
            first = False
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
    finally:
        os.close(fd)


def cold_root(tmp, name, size):
    """A root with a.txt and `name`, `size` reproducible bytes: (root, the
    file's path, its bytes). On a real file system: tmpfs pages (/tmp in
    the qemu guests) cannot be evicted, and every range of such a file is
    cached."""
    d = tempfile.mkdtemp(prefix="rs-hostile-cold-",
                         dir="/var/tmp" if os.path.isdir("/var/tmp") else tmp)
    hostile.CLEANUP.append(d)
    root = os.path.join(d, "root")
    os.mkdir(root)
    path = os.path.join(root, name)
    data = hostile.pattern(size)
    with open(path, "wb") as f:
        f.write(data)
    with open(os.path.join(root, "a.txt"), "wb") as f:
        f.write(A_TXT)
    return root, path, data


def threads(pid):
    """The server's threads: (all of them, its io_uring io-wq workers)."""
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass  # a worker that just exited
    return len(names), sum(n.startswith("iou-wrk") for n in names)


def cold(exe, opts, tmp):
    """Clients that ask for a file not in the page cache and never read
    must not hold a thread each: on io_uring a pipe -> socket splice that
    an io-wq worker runs into a full blocking socket waits until the peer
    reads, so a worker per such client (io-wq bounds them only by
    RLIMIT_NPROC). The server may gain a few threads, never one per
    client; a normal client is still served the whole file, byte for
    byte; the stalled clients' closes give back their streams."""
    root, path, data = cold_root(tmp, "cold.bin", (COLD_CLIENTS + 1) * COLD_SPAN)
    srv = Server(exe, opts, ["--protocol=http", "--root=" + root], tmp)
    served(srv)
    # A first client of a cold range: the pools a cold read uses exist.
    cold_ok = evict(path)
    if not cold_ok:
        note("the file's pages cannot be evicted here (tmpfs?): every range is cached, "
             "the server sends from the page cache; the thread bound is not asserted")
    st, h, body = get(srv, "/cold.bin", extra="Range: bytes=%d-%d\r\n" %
                      (COLD_CLIENTS * COLD_SPAN, COLD_CLIENTS * COLD_SPAN + MIB - 1))
    check(st == 206 and body == data[COLD_CLIENTS * COLD_SPAN:][:MIB], "a cold range: %d" % st)
    before, workers_before = threads(srv.pid)
    if cold_ok:
        check(evict(path), "the file's pages came back")
    socks = []
    for i in range(COLD_CLIENTS):
        # One at a time, each until the first bytes of its body are here:
        # its part of the file was read, and the server sends it (and
        # waits for room). A worker that read one client's part is free
        # for the next: the count below shows the ones clients hold.
        # The smallest segments (TCP_MIN_MSS): the server's socket starts
        # with a send buffer far smaller than a pipe-full, so the first
        # part already meets a full socket (with a loopback MSS the send
        # buffer takes a megabyte or two, and the part after it is read
        # ahead: the server would send it from the page cache).
        s = srv.connect(rcvbuf=4096, mss=88)
        s.sendall(req("/cold.bin", extra="Range: bytes=%d-\r\n" % (i * COLD_SPAN)))
        check(wait_head(s).startswith(b"HTTP/1.1 206 "), "cold.bin: not 206")
        r, _, _ = select.select([s], [], [], hostile.DEADLINE)
        check(r, "client %d: no byte of the body for %ds" % (i, hostile.DEADLINE))
        socks.append(s)
    srv.wait_quiet("bytes_out")  # every one of them stalled
    after, workers = threads(srv.pid)
    note("%d clients not reading a cold file: the server has %d threads (%d before), "
         "%d io-wq workers (%d before)" % (COLD_CLIENTS, after, before, workers, workers_before))
    if cold_ok:
        check(after - before <= COLD_THREADS,
              "%d clients that do not read hold %d more server threads (%d io-wq workers): "
              "at most %d" % (COLD_CLIENTS, after - before, workers, COLD_THREADS))
    # A normal client: the whole file, byte for byte, while they wait.
    c = srv.connect()
    c.sendall(req("/cold.bin"))
    head = wait_head(c)
    check(head.startswith(b"HTTP/1.1 200 "), "a normal client: %r" % head[:40])
    body, err = hostile.read_all(c, len(data))
    check(err is None and body == data,
          "a normal client got %d of %d bytes (%s), %s" %
          (len(body), len(data), err, "equal" if body == data[:len(body)] else "different"))
    c.close()
    for s in socks:
        s.close()
    srv.wait_conns(0, "the stalled clients closed")
    served(srv)
    final = srv.stop()
    check(final["accepted"] == srv.connects, "final: accepted=%d" % final["accepted"])


# burst: BURST_CLIENTS ask at once, each for its own BURST_LEN of a file
# not in the page cache, BURST_SPAN apart: a read at an offset whose
# preceding pages are not cached is a random read, and the kernel reads
# what it was asked for, so no client's read brings in another's range.
BURST_CLIENTS = 96
BURST_LEN = 512 << 10
BURST_SPAN = BURST_LEN + (128 << 10)
# The caps the burst runs with: smaller than the default (8,16), because
# here a read from the "disk" (the host's page cache) ends in about the
# time the next one is queued, and a worker that is free takes it: before
# the caps the 96 requests made 14 to 67 workers, depending on how the
# variant batches its submissions (the default caps are checked as the
# start-up line reports them).
BURST_CAPS = (1, 2)
# io-wq workers the burst may show beyond the caps: /proc still lists a
# worker that has left its pool (idle, or the pool shrank) until it has
# exited, and the count is of both pools.
BURST_MARGIN = 2
IOWQ_CAPS = re.compile(r"io-wq=(\d+)/(\d+)")


def iowq_caps(srv):
    """The io-wq caps of the server's start-up line, (bounded, unbounded);
    None where the kernel keeps its own (before 5.15: io-wq=default)."""
    m = IOWQ_CAPS.search(srv.line)
    if m:
        return int(m.group(1)), int(m.group(2))
    check("io-wq=default" in srv.line,
          "no io-wq=BOUNDED/UNBOUNDED in the start-up line: %s" % srv.line)
    return None


class ThreadSampler(threading.Thread):
    """Counts the server's io-wq workers over and over until stopped: the
    most seen at once. Idle workers stay about five seconds, so the count
    after a burst is close to its peak too; sampling during it catches
    workers that came and went."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid = pid
        self.most = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.most = max(self.most, threads(self.pid)[1])
            self.samples += 1
            time.sleep(0.001)

    def stop(self):
        self.done.set()
        self.join()
        self.most = max(self.most, threads(self.pid)[1])
        return self.most


def read_responses(socks, want):
    """Reads one response from each socket, all at once: {socket: body}."""
    bufs = {s: bytearray() for s in socks}
    bodies = {}
    deadline = time.time() + hostile.DEADLINE
    while len(bodies) < len(socks):
        left = [s for s in socks if s not in bodies]
        r, _, _ = select.select(left, [], [], max(0.0, deadline - time.time()))
        check(r, "%d of %d responses incomplete after %ds" %
              (len(left), len(socks), hostile.DEADLINE))
        for s in r:
            b = s.recv(1 << 20)
            check(b, "EOF after %d bytes" % len(bufs[s]))
            bufs[s] += b
            head, sep, body = bytes(bufs[s]).partition(b"\r\n\r\n")
            if sep and len(body) >= want:
                check(head.startswith(b"HTTP/1.1 206 "), "not 206: %r" % head[:40])
                bodies[s] = body
    return bodies


def burst(exe, opts, tmp):
    """A burst of requests for distinct ranges of a file not in the page
    cache: on io_uring each is a read io-wq runs (a splice into a pipe is
    unbound work), and io-wq starts a worker for each work item queued
    while none is free, up to RLIMIT_NPROC unless the ring caps its pools
    (IORING_REGISTER_IOWQ_MAX_WORKERS, the caps the start-up line shows as
    io-wq=BOUNDED/UNBOUNDED). The server's workers stay within the caps;
    every client gets its bytes."""
    root, path, data = cold_root(tmp, "burst.bin", BURST_CLIENTS * BURST_SPAN)
    uring = "--backend=uring" in opts
    if uring:
        # The default caps, as the kernel reports them back.
        srv = Server(exe, opts, ["--protocol=http", "--root=" + root], tmp, "default")
        check(iowq_caps(srv) in ((8, 16), None), "default caps: %s" % srv.line)
        srv.stop()
    caps_opt = ["--iowq-max=%d,%d" % BURST_CAPS] if uring else []
    srv = Server(exe, opts, ["--protocol=http", "--root=" + root] + caps_opt, tmp)
    caps = iowq_caps(srv) if uring else None
    if uring and caps is None:
        note("the kernel keeps io-wq's own limits (IORING_REGISTER_IOWQ_MAX_WORKERS is "
             "Linux 5.15+): the worker bound is not asserted")
    if caps:
        check(caps == BURST_CAPS, "--iowq-max=%d,%d: %s" % (BURST_CAPS + (srv.line,)))
    served(srv)
    # The file in the open-file cache, then out of the page cache.
    st, h, body = get(srv, "/burst.bin", extra="Range: bytes=0-0\r\n")
    check(st == 206 and body == data[:1], "a first byte: %d" % st)
    cold_ok = evict(path)
    if not cold_ok:
        note("the file's pages cannot be evicted here (tmpfs?): every range is cached, "
             "no read goes to a worker; the worker bound is not asserted")
    socks = [srv.connect() for _ in range(BURST_CLIENTS)]
    srv.wait_conns(BURST_CLIENTS, "the burst's clients connected")
    before = threads(srv.pid)
    sampler = ThreadSampler(srv.pid)
    sampler.start()
    for i, s in enumerate(socks):
        s.sendall(req("/burst.bin", extra="Range: bytes=%d-%d\r\n" %
                      (i * BURST_SPAN, i * BURST_SPAN + BURST_LEN - 1)))
    bodies = read_responses(socks, BURST_LEN)
    workers = sampler.stop()
    after = threads(srv.pid)
    for i, s in enumerate(socks):
        want = data[i * BURST_SPAN:][:BURST_LEN]
        got = bodies[s]
        check(got == want, "client %d: %d bytes, %s" %
              (i, len(got), "equal" if got[:len(want)] == want else "different"))
        s.close()
    note("%d clients at once, each a cold %d KiB: at most %d io-wq workers seen "
         "(%d samples; %d before, %d after), caps %s" %
         (BURST_CLIENTS, BURST_LEN >> 10, workers, sampler.samples, before[1], after[1],
          "%d/%d" % caps if caps else "none"))
    if cold_ok and caps:
        bound, unbound = caps
        check(workers <= bound + unbound + BURST_MARGIN,
              "%d requests for cold ranges made %d io-wq workers: at most %d + %d + %d" %
              (BURST_CLIENTS, workers, bound, unbound, BURST_MARGIN))
    if not uring:
        check(workers == 0, "%d io-wq workers without io_uring" % workers)
    srv.wait_conns(0, "the burst's clients closed")
    served(srv)
    final = srv.stop()
    check(final["accepted"] == srv.connects, "final: accepted=%d" % final["accepted"])


def run(mode, exe, opts, tmp):
    modes = {"attacks": attacks, "dates": dates, "slowloris": slowloris, "cold": cold,
             "burst": burst}
    if mode not in modes:
        raise Fail("unknown mode %s" % mode)
    modes[mode](exe, opts, tmp)


if __name__ == "__main__":
    sys.exit(hostile.main(run, "attacks|dates|slowloris|cold|burst"))
