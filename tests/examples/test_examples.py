#!/usr/bin/env python3
"""Run each examples/ program, built against the installed library, on one
backend: test_examples.py BIN_DIR BACKEND WORK_DIR (BACKEND: uring,
epoll-et, epoll-lt). Loopback only; every wait is bounded; exit 77 when
io_uring is unavailable here."""
import hashlib
import os
import random
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rs_server  # noqa: E402

BIN, BACKEND, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
FLAG = {"uring": "uring", "epoll-et": "epoll", "epoll-lt": "epoll-lt"}[BACKEND]
DEADLINE_S = 20
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def until(cond, what, limit=DEADLINE_S):
    """Poll an observable condition, bounded: never a fixed sleep."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    check(False, "timed out waiting for " + what)
    return False


class Server(rs_server.Server):
    """An example that listens: started on port 0, its port read from the
    start-up line (rs_server.Server; io_uring unavailable here: a skip)."""

    def __init__(self, name, *args):
        super().__init__([os.path.join(BIN, name), "--backend=" + FLAG, "--threads=1", *args],
                         log_path=os.path.join(WORK, name + "-%d.log" % random.randrange(1 << 30)),
                         timeout=DEADLINE_S)

    def stop(self):
        """SIGTERM: the exit status, or "hung"."""
        rc = super().stop(DEADLINE_S)
        return "hung" if rc is None else rc


def read_all(s):
    """Everything until EOF; 'reset' when the connection was reset."""
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b
    except ConnectionResetError:
        return "reset"


def upload(port, data, result, i):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    result[i] = read_all(s)
    s.close()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def test_upload_sink():
    store = os.path.join(WORK, "uploads")
    os.mkdir(store)
    srv = Server("upload_sink", "--dir=" + store)
    sizes = [0, 1, 17, 4096, 65543, 200000, 1048579, 3 << 20]
    datas = [os.urandom(n) for n in sizes]
    replies = [None] * len(datas)
    threads = [threading.Thread(target=upload, args=(srv.port, d, replies, i))
               for i, d in enumerate(datas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    for d, r in zip(datas, replies):
        check(r == b"OK %d\n" % len(d), "upload of %d bytes: reply %r" % (len(d), r))
    stored = sorted(sha(open(os.path.join(store, f), "rb").read()) for f in os.listdir(store))
    check(stored == sorted(sha(d) for d in datas), "stored files differ from the uploads")

    # A graceful stop during an upload: the client is told (no OK line),
    # never a clean EOF it could take for success; a finished upload
    # before it is stored.
    before = set(os.listdir(store))
    cut = socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S)
    cut.sendall(os.urandom(300000))
    until(lambda: any(os.path.getsize(os.path.join(store, f)) > 0
                      for f in set(os.listdir(store)) - before), "the cut upload to be stored in part")
    rc = srv.stop()
    reply = read_all(cut)
    cut.close()
    check(reply == "reset" or b"OK" not in reply, "a cut upload was answered %r" % reply)
    check(rc == 0, "upload_sink exit status after SIGTERM: %r" % rc)
    check("not stored" in srv.text(), "upload_sink did not report the cut upload")

    # Idle connections are closed, and not as a stored upload.
    idle_dir = os.path.join(WORK, "idle")
    os.mkdir(idle_dir)
    srv = Server("upload_sink", "--dir=" + idle_dir, "--idle=1")
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S)
    s.sendall(b"0123456789")
    reply = read_all(s)
    s.close()
    check(reply == "reset" or b"OK" not in reply, "an idle upload was answered %r" % reply)
    check(srv.stop() == 0, "upload_sink (idle) exit status")


def make_tree(root):
    rnd = random.Random(21)
    os.makedirs(os.path.join(root, "a", "b", "c"))
    os.makedirs(os.path.join(root, "empty-dir"))
    dirs = [root, os.path.join(root, "a"), os.path.join(root, "a", "b"),
            os.path.join(root, "a", "b", "c")]
    for i in range(150):
        n = rnd.choice([0, 1, 100, 4095, 4096, 70000, 300001])
        with open(os.path.join(rnd.choice(dirs), "f%03d" % i), "wb") as f:
            f.write(rnd.randbytes(n))
    with open(os.path.join(root, "big"), "wb") as f:
        f.write(rnd.randbytes(5 << 20))
    for n in os.listdir(root):
        if n.startswith("f0"):
            os.chmod(os.path.join(root, n), 0o600)
            break
    with open(os.path.join(root, "script"), "wb") as f:
        f.write(b"#!/bin/sh\n")
    os.chmod(os.path.join(root, "script"), 0o755)
    os.symlink("big", os.path.join(root, "link"))


def describe(root):
    """Path -> (type, mode, content hash or link target), for comparing."""
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), sha(open(p, "rb").read()))
    return out


def test_tree_copy():
    src, dst, ref = (os.path.join(WORK, n) for n in ("src", "dst", "ref"))
    make_tree(src)
    subprocess.run(["cp", "-r", src, ref], check=True)
    r = subprocess.run([os.path.join(BIN, "tree_copy"), "--backend=" + FLAG,
                        "--inflight=8", "--chunk=65536", src, dst],
                       capture_output=True, text=True, timeout=60)
    if "is unavailable" in r.stderr and FLAG == "uring":
        skip("io_uring unavailable: " + r.stderr.strip())
    check(r.returncode == 0, "tree_copy failed: %s" % r.stderr)
    want, got = describe(ref), describe(dst)
    check(want == got, "tree_copy differs from cp -r: %s" %
          sorted(set(want.items()) ^ set(got.items()))[:5])
    # DST must not exist: refused, nothing half-done reported as success.
    r = subprocess.run([os.path.join(BIN, "tree_copy"), "--backend=" + FLAG, src, dst],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode != 0, "tree_copy into an existing directory succeeded")


def free_run(n):
    """n consecutive ports free now, below the ephemeral range."""
    rnd = random.Random()
    for _ in range(100):
        base = rnd.randrange(20000, 30000)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            pass
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_port_check():
    base = free_run(6)
    keep = []
    for p in (base + 1, base + 4):  # open
        s = socket.socket()
        s.bind(("127.0.0.1", p))
        s.listen(8)
        keep.append(s)
    # base + 3: a listener whose accept queue is full drops new SYNs, so a
    # connect there waits until the checker's timeout.
    full = socket.socket()
    full.bind(("127.0.0.1", base + 3))
    full.listen(0)
    keep += [full, socket.create_connection(("127.0.0.1", base + 3))]
    r = subprocess.run([os.path.join(BIN, "port_check"), "--backend=" + FLAG, "--timeout=1000",
                        "127.0.0.1", "%d-%d" % (base, base + 5)],
                       capture_output=True, text=True, timeout=60)
    if "is unavailable" in r.stderr and FLAG == "uring":
        skip("io_uring unavailable: " + r.stderr.strip())
    want = "".join("%d %s\n" % (base + i, w) for i, w in
                   enumerate(["closed", "open", "closed", "timeout", "open", "closed"]))
    check(r.returncode == 0 and r.stdout == want,
          "port_check: %r (stderr %r), expected %r" % (r.stdout, r.stderr, want))
    for s in keep:
        s.close()


def echo_upstream():
    """A plain threaded echo server; its EOF follows the client's."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)

    def serve(c):
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
        c.shutdown(socket.SHUT_WR)
        c.close()

    def accept():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return ls


def through(port, data, result, i):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
    got = []
    reader = threading.Thread(target=lambda: got.append(read_all(s)))
    reader.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    reader.join(DEADLINE_S)
    result[i] = got[0] if got else None
    s.close()


def test_relay():
    up = echo_upstream()
    srv = Server("relay", "--to=127.0.0.1:%d" % up.getsockname()[1])
    datas = [os.urandom(n) for n in (1, 1000, 1 << 20, 3 << 20)]
    got = [None] * len(datas)
    threads = [threading.Thread(target=through, args=(srv.port, d, got, i))
               for i, d in enumerate(datas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    for d, g in zip(datas, got):
        check(g == d, "relay of %d bytes came back %s" %
              (len(d), "as a reset" if g == "reset" else "different"))
    check(srv.stop() == 0, "relay exit status")
    up.close()
    # An upstream that refuses: the client is reset (or closed), gets nothing.
    srv = Server("relay", "--to=127.0.0.1:%d" % free_run(1))
    try:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=DEADLINE_S)
    except ConnectionResetError:
        # The reset can beat connect()'s own return (a timeout makes
        # Python connect without blocking and read SO_ERROR after).
        r = "reset"
    else:
        r = read_all(s)
        s.close()
    check(r in ("reset", b""), "relay with its upstream down answered %r" % r)
    check(srv.stop() == 0, "relay exit status (upstream down)")


def recv_until(s, n):
    """n bytes, or fewer at EOF; 'reset' when the connection was reset."""
    out = b""
    try:
        while len(out) < n:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except ConnectionResetError:
        return "reset"
    return out


def test_chat():
    srv = Server("chat", "--max-line=64")
    port = srv.port
    a, b, c = (socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
               for _ in range(3))
    # a line sent in two pieces reaches every other client, never the sender
    b.sendall(b"ready\n")  # a and c are in the room once they hear b
    check(recv_until(a, 6) == b"ready\n", "chat: a hears b")
    check(recv_until(c, 6) == b"ready\n", "chat: c hears b")
    a.sendall(b"hel")
    a.sendall(b"lo\n")
    check(recv_until(b, 6) == b"hello\n", "chat: b hears a's line whole")
    check(recv_until(c, 6) == b"hello\n", "chat: c hears a's line whole")
    # a line over --max-line: its sender is reset, the room goes on
    c.sendall(b"y" * 200)
    check(read_all(c) == "reset", "chat: a line too long resets its sender")
    # at a stop, a client in the middle of a line reads every line the
    # room accepted, the notice, then a reset: never a clean EOF
    b.sendall(b"cut")
    a.sendall(b"last\n")
    check(recv_until(b, 5) == b"last\n", "chat: b hears a's last line")
    a.close()  # a finished: it does not wait for the drain deadline
    check(srv.stop() == 0, "chat: exits 0 on SIGTERM")
    check(read_all(b) == "reset", "chat: a cut line ends in a reset")
    b.close()
    c.close()


def main():
    os.makedirs(WORK)
    for t in (test_upload_sink, test_tree_copy, test_port_check, test_relay, test_chat):
        print("#", t.__name__, BACKEND)
        t()
    if failures:
        print("%d failure(s)" % len(failures))
        return 1
    print("examples ok on", BACKEND)
    return 0


if __name__ == "__main__":
    sys.exit(main())
