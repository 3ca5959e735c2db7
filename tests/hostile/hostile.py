"""Shared pieces of the hostile-client suite (tests/hostile/README.md).

A `Server` runs the real ringserve binary on 127.0.0.1, port 0, with JSON
statistics every 0.1 s: the interval line's `conns` gauge is the number of
streams the server holds (sockets, upstreams included), counted by the
server itself, which sees io_uring direct descriptors that /proc/PID/fd
does not. Every wait is a poll for a state with a generous deadline: a
slow machine makes a test slower, never makes it pass or fail.

Python 3 standard library only.
"""
import errno
import json
import os
import random
import re
import select
import shutil
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import rs_server  # noqa: E402  (tests/rs_server.py)

# How long any single wait may take before it is a failure. Only reached
# when the server is broken (hung, leaking a stream): never the pass path.
DEADLINE = 20.0
# A flood that made no progress for this long has met a server that
# stopped reading: the expected end of every flood that is not consumed.
STALL = 1.0
FLOOD_LIMIT = 300 << 20
MIB = 1 << 20


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def note(msg):
    print("# " + msg, flush=True)


def asan():
    return "ASAN_OPTIONS" in os.environ or "UBSAN_OPTIONS" in os.environ


def option(opts, name, default):
    """The value of --name=V in opts (the last one wins), else default."""
    val = default
    for o in opts:
        if o.startswith("--" + name + "="):
            val = o.split("=", 1)[1]
    return val


def size_arg(text):
    m = re.fullmatch(r"(\d+)([KMG]?)", text)
    check(m, "bad size %r" % text)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[m.group(2)]


RUNNING = []  # every server started, killed at the end whatever happened
CLEANUP = []  # further scratch directories, removed at the end


class Server(rs_server.Server):
    """One ringserve process; `opts` are the backend variant's options.
    Started by rs_server.Server (port 0, its port from the start-up line;
    a kernel without io_uring is the one allowed skip), with statistics."""

    def __init__(self, exe, opts, extra, tmp, name="server"):
        self.opts = list(opts) + list(extra)
        try:
            super().__init__([exe, "--stats-interval=0.1", "--stats-format=json"] + self.opts,
                             log_path=os.path.join(tmp, name + ".log"), timeout=DEADLINE)
        except rs_server.ServerError as e:
            raise Fail(str(e))
        RUNNING.append(self)
        self.connects = 0  # every connection this test made to it
        self._off = 0
        self._partial = b""
        self.last = None  # the newest interval statistics

    def connect(self, rcvbuf=None, timeout=DEADLINE, mss=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if mss:
            # Before connect: the server's segments, and with them the send
            # buffer it starts with (a few segments' worth), are this small.
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", self.port))
        self.connects += 1
        return s

    def _lines(self):
        with open(self.log_path, "rb") as f:
            f.seek(self._off)
            data = f.read()
        self._off += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        out = []
        for line in lines:
            if line.startswith(b"{"):
                out.append(json.loads(line))
        return out

    def stats(self):
        """The first interval line printed after this call. It may still
        carry a loop's snapshot from before the call (each loop posts one at
        the end of its turn), so conditions are polled (wait_*), never
        read once."""
        for st in self._lines():  # what was printed before the call
            if st.get("type") == "interval":
                self.last = st
        deadline = time.time() + DEADLINE
        while True:
            new = [st for st in self._lines() if st.get("type") == "interval"]
            if new:
                self.last = new[-1]
                return self.last
            check(self.proc.poll() is None, "server exited: %s" % self.text()[-2000:])
            check(time.time() < deadline, "no statistics line for %ds" % DEADLINE)
            time.sleep(0.05)

    def wait_total(self, key, at_least, what):
        """Polls until the counter `key` has reached `at_least`."""
        deadline = time.time() + DEADLINE
        st = self.stats()
        while st["totals"][key] < at_least:
            check(time.time() < deadline, "%s: %s=%d, expected at least %d" %
                  (what, key, st["totals"][key], at_least))
            st = self.stats()
        return st

    def wait_conns(self, want, what):
        """Polls the server's own stream count until it is `want`."""
        deadline = time.time() + DEADLINE
        st = self.stats()
        while st["conns"] != want:
            check(time.time() < deadline,
                  "%s: the server holds %d streams, expected %d (leak)" %
                  (what, st["conns"], want))
            st = self.stats()
        return st

    def wait_quiet(self, key, lines=3):
        """Polls until the counter `key` stayed the same over `lines` fresh
        statistics lines: the server has done what it will do for now. Used
        only to let an attack reach its state before the next step."""
        deadline = time.time() + DEADLINE
        seen = [self.stats()["totals"][key]]
        while len(seen) < lines or len(set(seen[-lines:])) > 1:
            check(time.time() < deadline, "%s never settled: %s" % (key, seen[-5:]))
            seen.append(self.stats()["totals"][key])
        return seen[-1]

    def rss_kb(self):
        """Resident memory: smaps_rollup's Rss (all mappings, one read)."""
        try:
            with open("/proc/%d/smaps_rollup" % self.pid) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        return int(line.split()[1])
        except FileNotFoundError:
            pass
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Fail("no RSS for %d" % self.pid)

    def alive(self):
        check(self.proc.poll() is None,
              "server died (status %s): %s" % (self.proc.returncode, self.text()[-3000:]))

    def stop(self):
        """SIGTERM; status 0 and the final statistics, which must account
        for every connection: as many closed as accepted, none rejected."""
        self.alive()
        rc = rs_server.Server.stop(self, DEADLINE)
        if rc is None:
            raise Fail("SIGTERM did not end the server within %ds" % DEADLINE)
        check(rc == 0, "exit status %d after SIGTERM: %s" % (rc, self.text()[-3000:]))
        final = None
        for st in self._lines() + [json.loads(x) for x in [self._partial] if x.startswith(b"{")]:
            if st.get("type") == "final":
                final = st
        check(final is not None, "no final statistics: %s" % self.text()[-2000:])
        check(final["accepted"] == final["closed"],
              "final: accepted=%d closed=%d" % (final["accepted"], final["closed"]))
        check(final["rejected"] == 0, "final: rejected=%d" % final["rejected"])
        return final

    def kill(self):
        super().kill()
        self.log.close()


def pattern(n, seed=0):
    """n reproducible bytes that never repeat: a shifted or dropped piece
    shows."""
    return random.Random(seed).randbytes(n)


def reset(s):
    """Close with SO_LINGER {1, 0}: the peer gets an RST, not a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


def read_all(s, limit=None):
    """Reads until EOF or an error: (bytes, None or the errno)."""
    got = bytearray()
    while limit is None or len(got) < limit:
        try:
            b = s.recv(1 << 20)
        except ConnectionResetError:
            return bytes(got), errno.ECONNRESET
        except socket.timeout:
            raise Fail("read_all: nothing for %ds after %d bytes" % (DEADLINE, len(got)))
        if not b:
            return bytes(got), None
        got += b
    return bytes(got), None


def send_until_full(s, data):
    """Non-blocking sends of data, in order, until the socket buffer is
    full (the first EAGAIN, no waiting): how many bytes the kernel took."""
    s.setblocking(False)
    sent = 0
    try:
        while sent < len(data):
            sent += s.send(data[sent:sent + (1 << 20)])
    except BlockingIOError:
        pass
    s.settimeout(DEADLINE)
    check(sent < len(data), "%d bytes went without filling the socket buffer" % len(data))
    return sent


def flood(s, chunk, limit=FLOOD_LIMIT, every=None, on_progress=None):
    """Streams `chunk` repeatedly (never reading) until `limit` bytes went
    or the socket made no progress for STALL seconds: the server stopped
    reading, the expected state when it holds what it may. Calls
    on_progress(sent) about every `every` bytes. Returns (sent, stalled)."""
    s.setblocking(False)
    p = select.poll()
    p.register(s, select.POLLOUT)
    sent = 0
    mark = every
    while sent < limit:
        if not p.poll(STALL * 1000):
            return sent, True
        try:
            sent += s.send(chunk)
        except BlockingIOError:
            continue
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Fail("the flood's connection failed after %d bytes: %s" % (sent, e))
        if on_progress and sent >= mark:
            on_progress(sent)
            mark += every
    return sent, False


class MemoryWatch:
    """The server's RSS growth above a baseline, sampled when told."""

    def __init__(self, server, bound_kb, why):
        self.server = server
        self.bound_kb = bound_kb
        self.why = why
        self.base = server.rss_kb()
        self.peak = self.base

    def sample(self):
        self.peak = max(self.peak, self.server.rss_kb())
        return self.peak - self.base

    def check(self, what):
        grown = self.sample()
        note("%s: RSS %d KiB -> peak %d KiB (+%d KiB, bound %d KiB: %s)" %
             (what, self.base, self.peak, grown, self.bound_kb, self.why))
        if asan():
            # ASan's quarantine and shadow keep freed memory resident.
            note("sanitizer build: RSS bound not checked")
            return
        check(grown <= self.bound_kb, "%s: the server's RSS grew by %d KiB, bound %d KiB (%s)" %
              (what, grown, self.bound_kb, self.why))


def memory_bound_kb(opts, streams):
    """The stated bound (README.md): per stream that the attack holds, twice
    --max-pending (queued output, plus input taken before reading pauses);
    plus the whole receive-buffer pool of every loop (allocated once, touched
    as used); plus 8 MiB for the allocator's arenas, file-worker stacks and
    pages first touched during the test."""
    pending = size_arg(option(opts, "max-pending", "1M"))
    pool = int(option(opts, "buffers", "512")) * size_arg(option(opts, "buffer-size", "16K"))
    threads = int(option(opts, "threads", "1"))
    return (streams * 2 * pending + threads * pool) // 1024 + 8 * 1024


def main(run, usage):
    """Runs run(mode, exe, opts, tmp) in a scratch directory (sys.argv:
    MODE RINGSERVE [SERVER OPTIONS...]); exit 0, 1 or 77."""
    if len(sys.argv) < 3:
        print("usage: %s %s RINGSERVE [SERVER OPTIONS...]" % (sys.argv[0], usage))
        return 2
    tmp = tempfile.mkdtemp(prefix="rs-hostile-")
    try:
        run(sys.argv[1], sys.argv[2], sys.argv[3:], tmp)
    except Fail as e:
        print("FAIL: %s" % e, flush=True)
        return 1
    finally:
        for srv in RUNNING:
            srv.kill()
        if os.environ.get("RS_HOSTILE_KEEP"):
            note("scratch kept in " + tmp)
        else:
            for d in [tmp] + CLEANUP:
                shutil.rmtree(d, ignore_errors=True)
    print("OK")
    return 0
