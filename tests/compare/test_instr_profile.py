#!/usr/bin/env python3
"""tools/instr_profile.py, the instruction counter BENCHMARKS.md quotes for
"instructions per request": it runs the server under callgrind, drives a
fixed count of echo round trips and reports a total and the functions that
account for it. Checked: the total is a plausible count and the breakdown
names the loop and the stream layer (a broken dump parser, or dumps taken
outside the measured window, would show neither). Then --request, an HTTP
server answering a keep-alive GET of a 1 KiB file: a plausible total, the
parser in the breakdown, and no printf-family function on a response's way
(heads are copied from pieces made once: protocols/http_head.h). And
--cache-sim prints simulated L1d misses per round trip.

usage: test_instr_profile.py INSTR_PROFILE RINGSERVE RINGBENCH
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def main():
    tool, ringserve, ringbench = sys.argv[1:4]
    if os.environ.get('RS_SANITIZED') == '1':
        print('sanitized build: valgrind cannot run it')
        sys.exit(77)
    if not (shutil.which('valgrind') and shutil.which('callgrind_control')):
        print('no valgrind')
        sys.exit(77)
    p = profile(tool, ringbench, ['--rounds=100', '--top=40'],
                [ringserve, '--listen=127.0.0.1:PORT'])
    m = re.search(r'user instructions per round trip: ([\d.]+)', p.stdout)
    assert m, 'no total'
    total = float(m.group(1))
    # An echo round trip is two completions through the stream layer: far
    # more than 50 instructions, far fewer than 100,000.
    assert 50 < total < 100000, total
    self_part = p.stdout.split('self per round trip:')[1].split('inclusive')[0]
    # (Echo's write of each chunk is inline in on_recv: the relay.)
    for fn in ('on_recv', 'stream_on_send'):
        assert re.search(r'^\s+[\d.]+\s+%s$' % fn, self_part, re.M), fn + ' missing'
    incl = p.stdout.split('inclusive per round trip:')[1]
    m = re.search(r'^\s+([\d.]+)\s+rs_loop_run$', incl, re.M)
    assert m, 'rs_loop_run missing from the inclusive list'
    # Everything the loop does per round trip is inside rs_loop_run.
    assert abs(float(m.group(1)) - total) <= 0.05 * total, (m.group(1), total)
    check_cache_sim(tool, ringserve, ringbench)
    check_http(tool, ringserve, ringbench)
    print('ok')


def profile(tool, ringbench, options, server):
    """instr_profile.py with these options on two connections against the
    server command; its output printed, its exit status asserted."""
    p = subprocess.run([sys.executable, tool, '--conns=2'] + options +
                       ['--ringbench=' + ringbench, '--'] + server,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=240)
    print(p.stdout)
    assert p.returncode == 0, 'exit %d' % p.returncode
    return p


def check_cache_sim(tool, ringserve, ringbench):
    """--cache-sim: the same total, and the simulated L1d misses per round
    trip printed, a count (never negative: the warm-up run keeps the cold
    start out of the difference) and far below the accesses a round trip
    makes."""
    p = profile(tool, ringbench, ['--cache-sim', '--rounds=50'],
                [ringserve, '--listen=127.0.0.1:PORT'])
    assert re.search(r'user instructions per round trip: [\d.]+', p.stdout), 'no total'
    m = re.search(r'L1d misses per round trip: (-?[\d.]+) \(reads (-?[\d.]+), '
                  r'writes (-?[\d.]+)\); last level: (-?[\d.]+)', p.stdout)
    assert m, 'no cache figures'
    d1, reads, writes, ll = (float(g) for g in m.groups())
    assert abs(d1 - reads - writes) < 0.02, m.group(0)
    assert -0.05 <= ll and -0.05 <= d1 < 100, m.group(0)


def check_http(tool, ringserve, ringbench):
    root = tempfile.mkdtemp(prefix='instr-http-')
    with open(os.path.join(root, '1k.txt'), 'wb') as f:
        f.write(b'x' * 1024)
    try:
        p = profile(tool, ringbench,
                    ['--rounds=100', '--top=60',
                     '--request=GET /1k.txt HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n'],
                    [ringserve, '--protocol=http', '--root=' + root,
                     '--listen=127.0.0.1:PORT'])
    finally:
        shutil.rmtree(root)
    m = re.search(r'user instructions per request: ([\d.]+)', p.stdout)
    assert m, 'no total'
    total = float(m.group(1))
    assert 500 < total < 200000, total
    self_part = p.stdout.split('self per request:')[1].split('inclusive')[0]
    assert re.search(r'^\s+[\d.]+\s+rs_http_parse_at$', self_part, re.M), 'parser missing'
    printf = [line for line in self_part.splitlines()
              if re.search(r'printf|_IO_default_xsputn|_itoa_word', line)
              and float(line.split()[0]) >= 10]
    assert not printf, 'printf on the way of a response: %s' % printf


if __name__ == '__main__':
    main()
