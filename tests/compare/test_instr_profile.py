#!/usr/bin/env python3
"""tools/instr_profile.py, the instruction counter BENCHMARKS.md quotes for
"instructions per request": it runs the server under callgrind, drives a
fixed count of echo round trips and reports a total and the functions that
account for it. Checked: the total is a plausible count and the breakdown
names the loop and the stream layer (a broken dump parser, or dumps taken
outside the measured window, would show neither).

usage: test_instr_profile.py INSTR_PROFILE RINGSERVE RINGBENCH
"""
import os
import re
import shutil
import subprocess
import sys


def main():
    tool, ringserve, ringbench = sys.argv[1:4]
    if os.environ.get('RS_SANITIZED') == '1':
        print('sanitized build: valgrind cannot run it')
        sys.exit(77)
    if not (shutil.which('valgrind') and shutil.which('callgrind_control')):
        print('no valgrind')
        sys.exit(77)
    p = subprocess.run([sys.executable, tool, '--conns=2', '--rounds=100', '--top=40',
                        '--ringbench=' + ringbench, '--', ringserve,
                        '--listen=127.0.0.1:PORT'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=240)
    print(p.stdout)
    assert p.returncode == 0, 'exit %d' % p.returncode
    m = re.search(r'user instructions per round trip: ([\d.]+)', p.stdout)
    assert m, 'no total'
    total = float(m.group(1))
    # An echo round trip is two completions through the stream layer: far
    # more than 50 instructions, far fewer than 100,000.
    assert 50 < total < 100000, total
    self_part = p.stdout.split('self per round trip:')[1].split('inclusive')[0]
    for fn in ('on_recv', 'stream_on_send', 'rs_stream_write_lent'):
        assert re.search(r'^\s+[\d.]+\s+%s$' % fn, self_part, re.M), fn + ' missing'
    incl = p.stdout.split('inclusive per round trip:')[1]
    m = re.search(r'^\s+([\d.]+)\s+rs_loop_run$', incl, re.M)
    assert m, 'rs_loop_run missing from the inclusive list'
    # Everything the loop does per round trip is inside rs_loop_run.
    assert abs(float(m.group(1)) - total) <= 0.05 * total, (m.group(1), total)
    print('ok')


if __name__ == '__main__':
    main()
