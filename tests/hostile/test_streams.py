#!/usr/bin/env python3
"""Hostile clients of the byte-stream protocols.

    test_streams.py echo|discard|chargen RINGSERVE [SERVER OPTIONS...]

- half-close: the client sends 1 MiB and shuts its side: echo answers every
  byte and then closes, discard closes with nothing sent, chargen's lines
  stay correct (it owes nothing more, so it may close or go on);
- resets: 200 clients that send (echo: 64 KiB they never read; chargen:
  read a little) and reset with SO_LINGER {1,0};
- churn: 2,000 connections opened and dropped at once, half of them with a
  FIN and half with a reset, in batches of 100;
- after each attack: the server's own stream count comes back to zero and a
  new client gets a correct answer; at SIGTERM the final statistics count
  as many accepted connections as the test made and as many closed.
"""
import socket
import sys

import hostile
from hostile import MIB, Fail, Server, check, note, pattern, reset
from stream_client import chargen_ok, served_chargen, served_discard, served_echo


def half_close(srv, proto):
    s = srv.connect()
    data = pattern(MIB, seed=5)
    if proto == "echo":
        # A thread would do, but sends of 64 KiB alternating with reads keep
        # both directions moving without one.
        got = bytearray()
        s.setblocking(True)
        for off in range(0, len(data), 64 << 10):
            s.sendall(data[off:off + (64 << 10)])
            while len(got) < off + (64 << 10):
                b = s.recv(1 << 20)
                check(b, "echo half-close: EOF after %d bytes" % len(got))
                got += b
        s.shutdown(socket.SHUT_WR)
        rest, err = hostile.read_all(s)
        got += rest
        check(err is None, "echo half-close: reset instead of EOF after %d bytes" % len(got))
        check(bytes(got) == data, "echo half-close: %d bytes back, not the 1 MiB sent" % len(got))
    elif proto == "discard":
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        rest, err = hostile.read_all(s)
        check(rest == b"" and err is None, "discard half-close: %d bytes, err %s" % (len(rest), err))
    else:
        s.sendall(b"ignored input\r\n")
        s.shutdown(socket.SHUT_WR)
        got, err = hostile.read_all(s, limit=256 << 10)
        check(len(got) > 0 and chargen_ok(got[:len(got) - len(got) % 74]),
              "chargen half-close: %d bytes, not the pattern: %r" % (len(got), got[:100]))
    s.close()


def resets(srv, proto):
    socks = []
    for i in range(200):
        s = srv.connect(rcvbuf=4096)
        if proto == "chargen":
            check(s.recv(100), "chargen: nothing before the reset")
        else:
            s.sendall(pattern(64 << 10, seed=i))
        socks.append(s)
    for s in socks:
        reset(s)


def churn(srv, total=2000, batch=100):
    for b in range(total // batch):
        socks = [srv.connect() for _ in range(batch)]
        for i, s in enumerate(socks):
            if i % 2:
                reset(s)
            else:
                s.close()


def run(proto, exe, opts, tmp):
    served = {"echo": served_echo, "discard": served_discard, "chargen": served_chargen}.get(proto)
    if not served:
        raise Fail("unknown protocol %s" % proto)
    srv = Server(exe, opts, ["--protocol=" + proto], tmp)
    served(srv)
    for name, attack in (("half-close", lambda: half_close(srv, proto)),
                         ("200 resets", lambda: resets(srv, proto)),
                         ("2000 connections dropped", lambda: churn(srv))):
        attack()
        st = srv.wait_conns(0, name)
        served(srv)
        note("%s: %s: streams back to 0 (accepted %d)" % (proto, name, st["totals"]["accepted"]))
    srv.wait_conns(0, "the end")
    final = srv.stop()
    check(final["accepted"] == srv.connects,
          "final: accepted=%d, the test connected %d times" % (final["accepted"], srv.connects))


if __name__ == "__main__":
    sys.exit(hostile.main(run, "echo|discard|chargen"))
