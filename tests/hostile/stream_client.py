"""Clients that check the answers of echo, discard and chargen: the
'other clients are served meanwhile' of every hostile test."""
import socket

import hostile
from hostile import check, pattern

CHARGEN = bytes(range(32, 127))


def chargen_ok(data):
    """Lines of 72 characters, each starting one printable later."""
    lines = data.split(b"\r\n")
    for line in lines[:-1]:
        if len(line) != 72:
            return False
        start = CHARGEN.index(line[0:1])
        want = (CHARGEN * 2)[start:start + 72]
        if line != want:
            return False
    return True


def served_echo(srv):
    s = srv.connect()
    data = pattern(64 << 10, seed=3)
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        b = s.recv(1 << 20)
        check(b, "echo: EOF after %d bytes" % len(got))
        got += b
    check(got == data, "echo: the answer differs from what was sent")
    s.close()


def served_discard(srv):
    before = srv.stats()["totals"]["bytes_in"]
    s = srv.connect()
    s.sendall(pattern(64 << 10))
    s.shutdown(socket.SHUT_WR)
    data, err = hostile.read_all(s)
    check(data == b"" and err is None, "discard answered %d bytes (err %s)" % (len(data), err))
    s.close()
    # Others may be flooding: this proves only that ours were counted too.
    srv.wait_total("bytes_in", before + (64 << 10), "discard")


def served_chargen(srv):
    s = srv.connect()
    data = b""
    while len(data) < 64 << 10:
        b = s.recv(1 << 20)
        check(b, "chargen: EOF after %d bytes" % len(data))
        data += b
    check(chargen_ok(data), "chargen: not the RFC 864 pattern: %r" % data[:200])
    s.close()
