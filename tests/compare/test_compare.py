#!/usr/bin/env python3
"""Smoke test of tools/compare: a tiny matrix, then check every output parses.

usage: test_compare.py COMPARE RINGSERVE RINGBENCH TEXTBOOK_ECHO

Runs `compare --smoke --open-loop=0.5` (the textbook epoll server,
epoll-et and uring-default, 1 and 50 connections, 64 B, one 1 s run each,
then one open-loop run each at half the lowest maximum) into a temporary
directory and checks:
results.csv has the documented columns, a row per run plus medians, and
numbers where numbers belong; report.md has the machine summary and a
Markdown table; chart.png starts with the PNG signature; chart.svg parses
as XML with an <svg> root. Standard library only.
"""
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from costs_check import check_costs

COLUMNS = ['kind', 'config', 'label', 'size', 'conns', 'rep', 'order',
           'status', 'n_ok', 'rtt_per_s', 'server_us_per_rt',
           'syscalls_per_rt', 'p50_us', 'p99_us', 'rss_kib', 'mb_per_s',
           'round_trips', 'duration_s', 'cpu_s', 'cpu_spread_pct',
           'server_args', 'error', 'load', 'offered_rate', 'p999_us']
# Always numeric in a successful row (syscalls_per_rt may be empty: perf
# can be missing; cpu_spread_pct needs two repeats).
NUMERIC = ['size', 'conns', 'n_ok', 'rtt_per_s', 'server_us_per_rt', 'p50_us',
           'p99_us', 'rss_kib', 'mb_per_s', 'round_trips', 'duration_s', 'cpu_s']
OPTIONAL_NUMERIC = ['syscalls_per_rt', 'cpu_spread_pct', 'rep', 'order',
                    'offered_rate', 'p999_us']

# Round trips whose server CPU must reach a tick of utime+stime (10 ms).
CPU_ROUND_TRIPS = 10000

failures = []

# The runs share the machine with the rest of `make test`: a pinned server
# may not run for seconds, which is not what is checked here.
BUSY = '--stall-timeout=30'


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print('FAIL: ' + msg)
    return cond


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    compare, ringserve, ringbench, textbook = sys.argv[1:5]
    with tempfile.TemporaryDirectory(prefix='compare-test-') as tmp:
        out = os.path.join(tmp, 'out')
        argv = [sys.executable, compare, '--smoke', '--ringserve=' + ringserve,
                '--ringbench=' + ringbench, '--out=' + out, '--open-loop=0.5',
                '--textbook=' + textbook, '--callgrind=off', BUSY]
        print('$ ' + ' '.join(argv), flush=True)
        p = subprocess.run(argv, timeout=180)
        check(p.returncode == 0, 'compare exited %d' % p.returncode)
        check_costs(out, ['textbook', 'epoll-et', 'uring-default'], check)

        # results.csv
        path = os.path.join(out, 'results.csv')
        if check(os.path.isfile(path), 'no results.csv'):
            with open(path, newline='') as f:
                rows = list(csv.DictReader(f))
                f.seek(0)
                header = next(csv.reader(f))
            check(header == COLUMNS, 'CSV columns %s' % header)
            runs = [r for r in rows if r['kind'] == 'run']
            meds = [r for r in rows if r['kind'] == 'median']
            check(len(rows) == len(runs) + len(meds), 'unknown row kinds')
            check(len(runs) >= 2, '%d runs in the CSV' % len(runs))
            check(len(meds) >= 2, '%d median rows in the CSV' % len(meds))
            cells = {(r['config'], r['conns'], r['load']) for r in runs}
            check(cells == {(r['config'], r['conns'], r['load']) for r in meds},
                  'median rows do not match the runs')
            check({'epoll-et', 'textbook'} <= {r['config'] for r in runs},
                  'epoll-et or the textbook server missing from the runs')
            check({r['load'] for r in runs} == {'closed', '50%'},
                  'loads %s, expected closed and 50%%' % {r['load'] for r in runs})
            for r in runs:
                if r['load'] == '50%':
                    check(r['offered_rate'] != '' and float(r['offered_rate']) > 0 and
                          r['p999_us'] != '', 'open-loop run without rate or p99.9: %s' % r)
            for r in rows:
                ok = r['status'] == 'ok'
                for k in NUMERIC + OPTIONAL_NUMERIC:
                    v = r[k]
                    if v == '' and (k in OPTIONAL_NUMERIC or not ok):
                        continue
                    try:
                        x = float(v)
                        check(x == x and x >= 0, '%s=%r is not a number >= 0' % (k, v))
                    except ValueError:
                        check(False, '%s=%r in %s/%s is not numeric' % (
                            k, v, r['config'], r['conns']))
                if ok:
                    check(float(r['rtt_per_s']) > 0, 'no round trips: %s' % r)
                else:
                    check(False, 'run failed: %s %s conns: %s' % (
                        r['config'], r['conns'], r['error']))
            # The server's CPU is utime+stime, in 10 ms ticks: a run of a
            # few hundred round trips (a loaded machine that gave the
            # server no CPU for a second shrinks a smoke run that much)
            # may measure 0. A configuration's runs together, over
            # CPU_ROUND_TRIPS round trips (at least 2 us of server CPU
            # each: two syscalls and the loopback's TCP), cannot.
            for cfg in {r['config'] for r in runs}:
                ok_runs = [r for r in runs if r['config'] == cfg and r['status'] == 'ok']
                trips = sum(float(r['round_trips']) for r in ok_runs)
                cpu = sum(float(r['cpu_s']) for r in ok_runs)
                if trips >= CPU_ROUND_TRIPS:
                    check(cpu > 0, 'no server CPU in %d round trips of %s: %s' %
                          (trips, cfg, ok_runs))
                else:
                    print('note: %s: %d round trips, too few to require a CPU tick' %
                          (cfg, trips))

        # report.md
        path = os.path.join(out, 'report.md')
        if check(os.path.isfile(path), 'no report.md'):
            text = open(path).read()
            check(text.startswith('# '), 'report.md has no title')
            check('kernel' in text and 'io_uring available' in text,
                  'report.md lacks the probe summary')
            check('compare' in text and '--smoke' in text,
                  'report.md lacks the command line')
            check(re.search(r'^\| config \|.*\n\|[-|:]+\|\n\| [a-z ]+ \| [0-9]',
                            text, re.M) is not None,
                  'report.md has no table of results')
            check(re.search(r'^## Against the textbook epoll server\n(.*\n)*?'
                            r'\| uring default \| [0-9.]+ \(([0-9.]+)\)', text, re.M)
                  is not None, 'report.md has no table of ratios to the textbook server')
            check('## Open-loop latency' in text and '50% load' in text,
                  'report.md has no open-loop table')

        # chart.png, chart.svg
        path = os.path.join(out, 'chart.png')
        if check(os.path.isfile(path), 'no chart.png'):
            with open(path, 'rb') as f:
                check(f.read(8) == b'\x89PNG\r\n\x1a\n', 'chart.png is not a PNG')
        path = os.path.join(out, 'chart.svg')
        if check(os.path.isfile(path), 'no chart.svg'):
            try:
                root = ET.parse(path).getroot()
                check(root.tag.endswith('svg'), 'chart.svg root is %s' % root.tag)
            except ET.ParseError as e:
                check(False, 'chart.svg does not parse: %s' % e)
        # User instructions under callgrind: one small matrix, both kinds of
        # server (external and ringserve), one connection.
        if os.environ.get('RS_SANITIZED') == '1':
            print('note: a sanitized build (ASan) cannot run under valgrind; '
                  'instruction counts are checked by the normal build')
        elif shutil.which('valgrind') and shutil.which('callgrind_control'):
            out2 = os.path.join(tmp, 'out-callgrind')
            argv = [sys.executable, compare, '--smoke', '--ringserve=' + ringserve,
                    '--ringbench=' + ringbench, '--out=' + out2, '--conns=1',
                    '--configs=textbook,uring-default', '--textbook=' + textbook,
                    BUSY]
            print('$ ' + ' '.join(argv), flush=True)
            p = subprocess.run(argv, timeout=180)
            check(p.returncode == 0, 'compare (callgrind) exited %d' % p.returncode)
            check_costs(out2, ['textbook', 'uring-default'], check, instructions=True)
        else:
            print('note: valgrind not installed; instruction counts not checked')
        if failures:
            for name in ('report.md', 'results.csv'):
                p = os.path.join(out, name)
                if os.path.isfile(p):
                    print('---- %s' % name)
                    print(open(p).read()[-4000:])
    print('%d failure(s)' % len(failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
