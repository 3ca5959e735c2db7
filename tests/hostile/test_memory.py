#!/usr/bin/env python3
"""Memory per connection is bounded whatever a client sends.

    test_memory.py PROTOCOL RINGSERVE [SERVER OPTIONS...]

PROTOCOL: echo, discard, chargen, http (sendfile), http-copy
(--sendfile=off) or proxy (in front of a ringserve echo upstream).

One client streams up to 300 MiB and never reads, so the server can never
answer it (echo's echoes, chargen's lines, HTTP responses, the upstream's
echoes through the proxy all stay unread). The flood ends at 300 MiB or
when the client's send made no progress for STALL seconds: the server
stopped reading, which is what it must do once the client's output is
queued. Meanwhile, every 32 MiB and once the flood has ended, a new client
must get a correct answer. The server's RSS growth must stay under
hostile.memory_bound_kb (README.md); the flooder's reset must give back its
streams, and the final statistics must account for every connection.
"""
import os
import sys

import hostile
from hostile import MIB, Fail, MemoryWatch, Server, check, note, pattern
from stream_client import served_chargen, served_discard, served_echo
from http_client import get, req, wait_head


def make_root(tmp):
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    with open(os.path.join(root, "a.txt"), "wb") as f:
        f.write(b"hello, world\n")
    with open(os.path.join(root, "medium.bin"), "wb") as f:
        f.write(pattern(64 << 10, seed=1))
    with open(os.path.join(root, "huge.bin"), "wb") as f:
        f.write(os.urandom(32 * MIB))
    return root


def served_http(srv):
    st, h, body = get(srv, "/a.txt")
    check(st == 200 and body == b"hello, world\n", "GET /a.txt: %d %r" % (st, body[:100]))


def run(proto, exe, opts, tmp):
    streams = 1
    if proto in ("echo", "discard", "chargen"):
        srv = Server(exe, opts, ["--protocol=" + proto], tmp)
        served = {"echo": served_echo, "discard": served_discard, "chargen": served_chargen}[proto]
        chunk = pattern(256 << 10)
    elif proto in ("http", "http-copy"):
        root = make_root(tmp)
        extra = ["--protocol=http", "--root=" + root]
        if proto == "http-copy":
            # Bodies up to a 64 KiB buffer are read into memory and queued
            # whole: a non-reader's responses pile up in the server.
            extra += ["--sendfile=off", "--buffer-size=64K", "--buffers=64"]
        srv = Server(exe, opts, extra, tmp)
        served = served_http
        # The flood is valid pipelined requests, which the server must not
        # read ahead without bound once it has an unsent response.
        small = req("/a.txt")
        chunk = small * ((256 << 10) // len(small))
    elif proto == "proxy":
        up = Server(exe, opts, ["--protocol=echo"], tmp, name="upstream")
        srv = Server(exe, opts, ["--protocol=proxy",
                                 "--upstream=127.0.0.1:%d" % up.port], tmp)
        served = served_echo
        chunk = pattern(256 << 10)
        streams = 2  # the client's and the upstream's
    else:
        raise Fail("unknown protocol %s" % proto)

    served(srv)  # warm up: the first answer touches pages once
    watch = MemoryWatch(srv, hostile.memory_bound_kb(srv.opts, streams),
                        "2 x max-pending per stream + buffer pool + 8 MiB")
    flooder = srv.connect(rcvbuf=4096)
    if proto == "http":
        # A large file goes out with sendfile: once its head arrives, the
        # session waits for the file to leave, with nothing in progress.
        flooder.sendall(req("/huge.bin"))
        head = wait_head(flooder)
        check(head.startswith(b"HTTP/1.1 200 "), "http: %r" % head[:100])
    elif proto == "http-copy":
        # Responses that overflow --max-pending from requests that stay
        # under the 8 KiB the server may buffer: once it has stopped
        # answering (no more sends), it waits for the client to read.
        flooder.sendall(req("/medium.bin") * 200)
        srv.wait_quiet("bytes_out")

    checks = [0]

    def progress(sent):
        watch.sample()
        served(srv)
        checks[0] += 1

    sent, stalled = hostile.flood(flooder, chunk, every=32 * MIB, on_progress=progress)
    note("%s: flood of %d MiB %s; %d clients served meanwhile" %
         (proto, sent // MIB, "stalled (server paused reading)" if stalled else "consumed",
          checks[0]))
    served(srv)  # while the flooder still holds everything it could
    watch.check(proto + " flood")
    hostile.reset(flooder)
    srv.wait_conns(0, "after the flooder's reset")
    served(srv)
    srv.wait_conns(0, "after the last client")
    final = srv.stop()
    check(final["accepted"] == srv.connects,
          "final: accepted=%d, the test connected %d times" % (final["accepted"], srv.connects))
    if proto == "proxy":
        up.stop()


if __name__ == "__main__":
    sys.exit(hostile.main(run, "echo|discard|chargen|http|http-copy|proxy"))
