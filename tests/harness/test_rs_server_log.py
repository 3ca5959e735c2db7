#!/usr/bin/env python3
"""tests/rs_server.py reads a server's log while the server writes it.

A writer announces itself like ringserve ("listening on 127.0.0.1:PORT"),
then appends numbered lines of varying length to stdout and stderr with
one write(2) each, as ringserve's log does. While it writes, the test
reads the log through Server.text() again and again: every snapshot's
complete lines must be the writer's lines, whole and in order, and the
final log must hold all of them. A reader that moved the offset the
writer shares would make the writer's lines land over older ones or
glue half a line to a later one (what made the stats test fail once).
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from rs_server import Server, ServerError  # noqa: E402

LINES = 20000
WRITER = r'''
import os, sys
n = int(sys.argv[1])
os.write(2, b"writer: listening on 127.0.0.1:1\n")
for i in range(n):
    body = ("%d:" % i) + "x" * (i * 37 % 200)
    os.write(1 + i % 2, ("L %s %d\n" % (body, len(body))).encode())
'''
LINE = re.compile(r'^L ((\d+):x*) (\d+)$')


def check_lines(text, complete):
    """The numbered lines in text, checked; the count of them."""
    if complete:
        text = text[:text.rfind('\n') + 1]
    want = 0
    for l in text.splitlines()[1:]:
        m = LINE.match(l)
        if not m or len(m.group(1)) != int(m.group(3)) or int(m.group(2)) != want:
            sys.exit('FAIL: line %d of the log is %r' % (want, l[:120]))
        want += 1
    return want


def main():
    try:
        srv = Server([sys.executable, '-c', WRITER, str(LINES)], listen=None)
    except ServerError as e:
        sys.exit('FAIL: the start-up line was not found: %s' % str(e)[:300])
    reads = 0
    try:
        while srv.proc.poll() is None:
            check_lines(srv.text(), True)
            reads += 1
        got = check_lines(srv.text(), False)
        if got != LINES:
            sys.exit('FAIL: %d lines in the log, the writer wrote %d' % (got, LINES))
    finally:
        srv.kill()
    print('ok: %d lines whole and in order across %d reads while writing' % (LINES, reads))


if __name__ == '__main__':
    main()
