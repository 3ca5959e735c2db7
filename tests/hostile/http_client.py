"""A strict little HTTP/1.1 client for the hostile suite: it reads
responses by Content-Length and checks every head it sees (printable
ASCII only, one status line, no header twice)."""
import re
import socket

from hostile import DEADLINE, check

HEAD_LINE = re.compile(rb"[\x20-\x7e\t]*")
IMF_DATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                      r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                      r"\d\d:\d\d:\d\d GMT")


def req(path, method="GET", extra="", version="1.1"):
    return ("%s %s HTTP/%s\r\nHost: t\r\n%s\r\n" % (method, path, version, extra)).encode()


def parse_head(head):
    """(status, {lower-case name: value}) of a response head (no CRLFCRLF);
    fails on any byte a header may not carry."""
    lines = head.split(b"\r\n")
    for line in lines:
        check(HEAD_LINE.fullmatch(line), "non-printable bytes in a response header: %r" % line)
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", lines[0])
    check(m, "bad status line %r" % lines[0])
    hdrs = {}
    for line in lines[1:]:
        k, sep, v = line.decode("ascii").partition(":")
        check(sep, "header line without a colon: %r" % line)
        check(k.lower() not in hdrs, "header %s twice" % k)
        hdrs[k.lower()] = v.strip()
    for name in ("date", "last-modified"):
        if name in hdrs:
            check(IMF_DATE.fullmatch(hdrs[name]), "%s is not an IMF date: %r" % (name, hdrs[name]))
    return int(m.group(1)), hdrs


class Conn:
    def __init__(self, server, rcvbuf=None):
        self.s = server.connect(rcvbuf=rcvbuf)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        try:
            b = self.s.recv(1 << 20)
        except socket.timeout:
            check(False, "no response for %ds (have %r)" % (DEADLINE, self.buf[:200]))
        if not b:
            return False
        self.buf += b
        return True

    def response(self, head_only=False):
        """(status, headers, body), or None at a clean EOF between responses."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                check(self.buf == b"", "connection closed mid-head: %r" % self.buf[:200])
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status, hdrs = parse_head(head)
        n = 0
        if not head_only and status != 304:
            check("content-length" in hdrs, "no Content-Length: %r" % head)
            n = int(hdrs["content-length"])
        while len(self.buf) < n:
            check(self._fill(), "connection closed mid-body (%d of %d)" % (len(self.buf), n))
        body, self.buf = self.buf[:n], self.buf[n:]
        return status, hdrs, body

    def closed(self):
        """True once the server has closed (EOF or reset) with nothing more."""
        try:
            return not self._fill() and self.buf == b""
        except ConnectionResetError:
            return self.buf == b""

    def close(self):
        self.s.close()


def get(server, path, method="GET", extra="", raw=None):
    c = Conn(server)
    c.send(raw if raw is not None else req(path, method, extra))
    r = c.response(head_only=method == "HEAD")
    c.close()
    check(r is not None, "no response to %r" % (raw or path))
    return r


def wait_head(s):
    """Reads a response head and not one byte more (the body stays in the
    socket, so the client remains one that does not read)."""
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        check(b, "EOF before the end of a response head (%r)" % head)
        head += b
    return head
