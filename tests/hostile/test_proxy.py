#!/usr/bin/env python3
"""A reset stays a reset through --protocol=proxy.

    test_proxy.py resets RINGSERVE [SERVER OPTIONS...]

The upstream is this script (a listening socket on 127.0.0.1), so it can
misbehave on cue:
- upstream reset while the client is behind: the upstream fills the path
  toward a client that reads nothing, then resets (SO_LINGER {1,0}). The
  client must read a prefix of what was sent and then ECONNRESET: a clean
  EOF would make a cut download look complete.
- client reset mid-upload: the client fills the path toward an upstream
  that reads nothing, then resets. The upstream must read a prefix of the
  upload and then ECONNRESET, not a clean EOF.
After each: the proxy's own stream count comes back to zero, a new client
is forwarded both ways, and the final statistics account for every
connection.
"""
import errno
import socket
import sys

import hostile
from hostile import MIB, Fail, Server, check, note, pattern, read_all, reset, send_until_full


class Upstream:
    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.ls.settimeout(hostile.DEADLINE)
        self.port = self.ls.getsockname()[1]

    def accept(self):
        try:
            u, _ = self.ls.accept()
        except socket.timeout:
            raise Fail("the proxy never connected to the upstream")
        u.settimeout(hostile.DEADLINE)
        return u


def session(proxy, up, rcvbuf=None):
    """A client connected through the proxy and the upstream's end of it;
    one byte each way proves the session is established."""
    c = proxy.connect(rcvbuf=rcvbuf)
    c.sendall(b"?")
    u = up.accept()
    check(u.recv(1) == b"?", "the upstream did not get the client's first byte")
    u.sendall(b"!")
    check(c.recv(1) == b"!", "the client did not get the upstream's first byte")
    return c, u


def served(proxy, up):
    c, u = session(proxy, up)
    c.sendall(b"ping")
    got = b""
    while len(got) < 4:
        got += u.recv(4 - len(got))
    u.sendall(b"pong")
    got2 = b""
    while len(got2) < 4:
        got2 += c.recv(4 - len(got2))
    check(got == b"ping" and got2 == b"pong", "through the proxy: %r %r" % (got, got2))
    c.close()
    u.close()


def upstream_reset(proxy, up):
    c, u = session(proxy, up, rcvbuf=4096)
    data = pattern(64 * MIB, seed=9)
    sent = send_until_full(u, data)
    reset(u)
    got, err = read_all(c)
    c.close()
    note("upstream reset: the upstream sent %d bytes, the client read %d and then %s" %
         (sent, len(got), "a reset" if err else "a clean EOF"))
    check(got == data[:len(got)], "the client read bytes the upstream did not send")
    check(err == errno.ECONNRESET,
          "the upstream reset, the client saw a clean EOF after %d of %d bytes" % (len(got), sent))


def client_reset(proxy, up):
    c, u = session(proxy, up)
    data = pattern(64 * MIB, seed=11)
    sent = send_until_full(c, data)
    reset(c)
    got, err = read_all(u)
    u.close()
    note("client reset: the client sent %d bytes, the upstream read %d and then %s" %
         (sent, len(got), "a reset" if err else "a clean EOF"))
    check(got == data[:len(got)], "the upstream read bytes the client did not send")
    check(err == errno.ECONNRESET,
          "the client reset, the upstream saw a clean EOF after %d of %d bytes" % (len(got), sent))


def run(mode, exe, opts, tmp):
    if mode != "resets":
        raise Fail("unknown mode %s" % mode)
    up = Upstream()
    proxy = Server(exe, opts, ["--protocol=proxy", "--upstream=127.0.0.1:%d" % up.port], tmp)
    served(proxy, up)
    failures = []
    for name, attack in (("upstream reset", upstream_reset), ("client reset", client_reset)):
        # Both run even when the first fails: each says what it saw.
        try:
            attack(proxy, up)
        except Fail as e:
            failures.append(str(e))
            note("not ok: %s" % e)
        proxy.wait_conns(0, name)
        served(proxy, up)
    proxy.wait_conns(0, "the end")
    final = proxy.stop()
    check(final["accepted"] == proxy.connects,
          "final: accepted=%d, the test connected %d times" % (final["accepted"], proxy.connects))
    check(not failures, "; ".join(failures))


if __name__ == "__main__":
    sys.exit(hostile.main(run, "resets"))
