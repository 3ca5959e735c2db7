#!/usr/bin/env python3
"""Which sockets an echo server holds as process descriptors.

    test_process_fds.py RINGSERVE LISTENERS PER_CONN [SERVER OPTIONS...]

The server starts on port 0; CONNS clients connect and each gets an echo
back (so every connection is accepted and served). Then the test reads
/proc/PID/fd: the sockets among them that listen (by inode, in
/proc/net/tcp and tcp6) must number LISTENERS, the others PER_CONN per
connection. What each configuration promises:

    epoll                      1 listener per accepting loop, 1 per connection
    io_uring, fixed-files      1 listener per accepting loop, 0 (direct)
    io_uring, direct-listen    0 and 0: the listener is a direct descriptor
                               too (IORING_OP_BIND/LISTEN), the process holds
                               no socket at all

A second server asked for the same port must fail to start ("Address
already in use"), and SIGTERM must stop the first with status 0 (its
listener closed, a direct one by an op). Loopback only; bounded; no sleeps.
"""
import os
import re
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from rs_server import Server, ServerError  # noqa: E402

CONNS = 8
TIMEOUT = 20.0


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def listening_inodes():
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    cols = line.split()
                    if cols[3] == "0A":  # TCP_LISTEN
                        inodes.add(cols[9])
        except FileNotFoundError:
            pass
    return inodes


def socket_inodes(pid):
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except FileNotFoundError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            out.append(m.group(1))
    return out


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        sys.exit(2)
    ringserve, listeners, per_conn = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    args = sys.argv[4:]
    # The variants name what their counts rely on (fixed-files,
    # direct-listen) in a strict list: a kernel without one refuses to
    # start the server, which Server turns into a skip.
    p = Server([ringserve] + args)
    try:
        port = p.port
        conns = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
                 for _ in range(CONNS)]
        for i, s in enumerate(conns):
            msg = b"hello %d\n" % i
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                b = s.recv(4096)
                check(b, "connection %d: EOF before its echo" % i)
                got += b
            check(got == msg, "connection %d: echo %r" % (i, got))
        # Every connection was served, so accepted: what it holds is held now.
        held = socket_inodes(p.pid)
        listen = listening_inodes()
        nlisten = sum(1 for i in held if i in listen)
        nother = len(held) - nlisten
        print("server holds %d listening and %d other sockets for %d connections"
              % (nlisten, nother, CONNS))
        check(nlisten == listeners, "%d listening sockets among the process's "
              "descriptors, expected %d" % (nlisten, listeners))
        check(nother == per_conn * CONNS, "%d other sockets among the process's "
              "descriptors, expected %d" % (nother, per_conn * CONNS))
        try:
            q = Server([ringserve] + args, listen="127.0.0.1:%d" % port,
                       timeout=TIMEOUT, skip_ok=False)
        except ServerError as e:
            check(e.returncode is not None and e.returncode != 0 and "in use" in e.text,
                  "a second server on port %d: status %s, %r"
                  % (port, e.returncode, e.text[-300:]))
        else:
            q.kill()
            fail("a second server on the same port started")
        for s in conns:
            s.close()
        rc = p.stop()
        check(rc is not None, "the server did not exit on SIGTERM")
        check(rc == 0, "server exit status %d: %r" % (rc, p.text()[-2000:]))
        print("OK")
    finally:
        p.kill()


if __name__ == "__main__":
    main()
