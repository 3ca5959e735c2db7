#!/usr/bin/env python3
"""Where a server's user-space instructions per echo round trip (or request) go.

Runs the server under callgrind, drives it with two fixed-count ringbench
runs (N and 2N rounds per connection, counts zeroed and dumped around each)
and prints the difference divided by N x connections: the total per round
trip (the figure tools/compare's costs pass reports, same method) and, with
--top, the functions that account for it, self and inclusive, from
callgrind_annotate on each dump. Connection set-up and teardown cancel out.

  tools/instr_profile.py [--conns=50] [--rounds=40] [--size=64] [--top=25] \
      -- build/ringserve --backend=uring --listen=127.0.0.1:PORT
  tools/instr_profile.py --upstream='build/ringserve --listen=127.0.0.1:UPORT' \
      -- build/ringserve --protocol=proxy --upstream=127.0.0.1:UPORT --listen=127.0.0.1:PORT

  tools/instr_profile.py --request='GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n' \
      -- build/ringserve --protocol=http --root=DIR --listen=127.0.0.1:PORT

--cache-sim: also simulate the data caches (valgrind's --cache-sim=yes,
an L1d of 32 KiB 8-way and a last level of 1 MiB 16-way, 64-byte lines)
and print the misses per round trip, after a first run of N rounds that
warms them (not counted). Only user space is simulated: on a
machine the kernel's own accesses between two round trips of a stream
evict more, so the figure is a floor; what it shows is which lines a
round trip touches that the last ones did not (with hundreds of
connections: each stream's).

--request: each round trip is that request on a keep-alive connection
(ringbench --mode=request); the reply's size is learnt from one request
made first, outside the counted runs, and every reply must be a 2xx of
that size.

PORT in the command is replaced by a free port. The server is killed at
the end (under valgrind an io_uring server may never see a signal).
"""
import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_cost  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def reply_size(port, request):
    """The size of the whole reply to one request (head and Content-Length
    bytes of body), asked once on a connection of its own."""
    raw = request.encode().decode('unicode_escape').encode('latin-1')
    s = socket.create_connection(('127.0.0.1', port), timeout=60)
    s.sendall(raw)
    data = b''
    while b'\r\n\r\n' not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head = data.split(b'\r\n\r\n', 1)[0]
    s.close()
    m = re.search(rb'(?im)^content-length:\s*(\d+)', head)
    if not head.startswith(b'HTTP/1.1 2') or not m:
        sys.exit('--request: not a 2xx reply with a Content-Length: %r' % head[:200])
    return len(head) + 4 + int(m.group(1))


def annotate(path, inclusive):
    """{function: Ir} from callgrind_annotate on one dump."""
    p = subprocess.run(['callgrind_annotate', '--auto=no', '--inclusive=%s' % ('yes' if inclusive else 'no'),
                        '--threshold=100', path], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, universal_newlines=True)
    out = {}
    for line in p.stdout.splitlines():
        m = re.match(r'^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*?)\s*(?:\[.*\])?$', line)
        if not m or ':' not in m.group(2):
            continue
        fn = m.group(2).split(':', 1)[1]
        out[fn] = out.get(fn, 0) + int(m.group(1).replace(',', ''))
    return out


CACHE_SIM = ['--cache-sim=yes', '--D1=32768,8,64', '--I1=32768,8,64', '--LL=1048576,16,64']


def read_events(path):
    """{event: count} of a callgrind dump's totals (trailing zero counts
    are left out of the file: they are 0)."""
    with open(path) as f:
        text = f.read()
    names = re.search(r'^events:\s+(.*)$', text, re.M).group(1).split()
    m = re.search(r'^(?:summary|totals):\s+(.*)$', text, re.M)
    vals = [int(v) for v in m.group(1).split()]
    return dict(zip(names, vals + [0] * (len(names) - len(vals))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--conns', type=int, default=50)
    ap.add_argument('--rounds', type=int, default=40, help='N (the second run does 2N)')
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--top', type=int, default=0, help='functions to list (0: total only)')
    ap.add_argument('--ringbench', default='build/tools/ringbench')
    ap.add_argument('--upstream', metavar='COMMAND',
                    help='start this server first, untraced (UPORT in it and in the '
                    'traced command is replaced by a free port): an echo server '
                    'behind a traced proxy')
    ap.add_argument('--request', metavar='TEXT',
                    help='send this request (\\r \\n decoded) instead of echoing '
                    'messages: an HTTP server, one request per round trip')
    ap.add_argument('--port', type=int, default=0,
                    help='the port the server listens on (default: a free one, '
                    'put in place of PORT in the command): for a server configured '
                    'by a file, such as nginx')
    ap.add_argument('--lines', action='store_true',
                    help='keep line numbers in the dumps (for callgrind_annotate --auto=yes)')
    ap.add_argument('--cache-sim', action='store_true',
                    help='also print simulated data-cache misses per round trip')
    ap.add_argument('cmd', nargs='+')
    a = ap.parse_args()
    port = a.port or free_port()
    uport = free_port()
    cmd = [c.replace('UPORT', str(uport)).replace('PORT', str(port)) for c in a.cmd]
    upstream = None
    if a.upstream:
        upstream = subprocess.Popen([c.replace('UPORT', str(uport)) for c in a.upstream.split()],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(uport, upstream, 10):
            sys.exit('upstream did not start')
    tmp = tempfile.mkdtemp(prefix='instr-')
    outfile = os.path.join(tmp, 'cg.out')
    prefix = bench_cost.callgrind_prefix(outfile)
    if a.lines:
        prefix = [o for o in prefix if o != '--dump-line=no']
    if a.cache_sim:
        prefix = prefix[:2] + CACHE_SIM + prefix[2:]
    proc = subprocess.Popen(prefix + cmd,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, 'log'), 'w'))
    try:
        if not wait_port(port, proc):
            sys.exit('server did not start (log: %s)' % os.path.join(tmp, 'log'))
        load = ['--size=%d' % a.size]
        if a.request:
            load = ['--mode=request', '--request=' + a.request,
                    '--reply-size=%d' % reply_size(port, a.request)]
        dumps, totals = [], []
        # With the cache simulation a first, uncounted run warms the caches
        # (and the loop's recycled streams), so that the two counted runs
        # start alike and their difference holds only round trips.
        for rounds in ((a.rounds,) if a.cache_sim else ()) + (a.rounds, 2 * a.rounds):
            bench_cost.callgrind_zero(proc.pid)
            subprocess.run([a.ringbench, '--connect=127.0.0.1:%d' % port,
                            '--connections=%d' % a.conns, '--rounds=%d' % rounds,
                            bench_cost.VALGRIND_STALL, '--quiet'] + load, check=True,
                           stdout=subprocess.DEVNULL)
            before = set(bench_cost.dump_parts(outfile))
            totals.append(bench_cost.callgrind_dump(proc.pid, outfile))
            dumps.append([p for p in bench_cost.dump_parts(outfile) if p not in before][-1])
    finally:
        proc.kill()
        proc.wait()
        if upstream:
            upstream.terminate()
            upstream.wait()
    if a.cache_sim:
        dumps, totals = dumps[1:], totals[1:]
    n = float(a.rounds * a.conns)
    what = 'request' if a.request else 'round trip'
    print('user instructions per %s: %.1f' % (what, (totals[1] - totals[0]) / n))
    if a.cache_sim:
        e0, e1 = read_events(dumps[0]), read_events(dumps[1])
        per = {k: (e1.get(k, 0) - e0.get(k, 0)) / n for k in e1}
        print('L1d misses per %s: %.2f (reads %.2f, writes %.2f); last level: %.2f'
              % (what, per['D1mr'] + per['D1mw'], per['D1mr'], per['D1mw'],
                 per['DLmr'] + per['DLmw']))
    if a.top:
        for inclusive in (False, True):
            d0, d1 = annotate(dumps[0], inclusive), annotate(dumps[1], inclusive)
            rows = sorted(((d1.get(f, 0) - d0.get(f, 0)) / n, f) for f in set(d0) | set(d1))
            if not inclusive:
                # The frames still on the stack at a dump (the thread's start
                # routine and its callers) show the whole as their own.
                total = (totals[1] - totals[0]) / n
                rows = [(v, f) for v, f in rows if v < 0.9 * total]
            print('\n%s per %s:' % ('inclusive' if inclusive else 'self', what))
            for v, f in reversed(rows[-a.top:]):
                print('%8.1f  %s' % (v, f))
    print('dumps in', tmp)


if __name__ == '__main__':
    main()
