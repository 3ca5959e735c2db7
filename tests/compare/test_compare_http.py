#!/usr/bin/env python3
"""Test of `tools/compare --http` that needs no peers (no wrk, no nginx).

usage: test_compare_http.py COMPARE RINGSERVE

Runs `compare --http --smoke` against ringserve's three configurations
(uring, epoll-et with the file worker pool, epoll --fs=inline) with
tests/compare/fake_wrk.py standing in for wrk, into a temporary directory
(document root included), and checks: results.csv has the documented
columns, a row per run and per median, numbers where numbers belong and no
failed run; report.md has the cached table, the cold-file table with the
ratio to epoll --fs=inline, and the command line; chart.png is a PNG and
chart.svg parses. Standard library only.
"""
import csv
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from costs_check import check_costs

COLUMNS = ['kind', 'experiment', 'config', 'label', 'file', 'conns', 'rep',
           'status', 'n_ok', 'req_per_s', 'p50_us', 'p99_us', 'p999_us',
           'server_us_per_req', 'server_cpu_s', 'requests', 'duration_s',
           'mb_per_s', 'stream_mb_per_s', 'errors', 'error']
NUMERIC = ['file', 'conns', 'req_per_s', 'p50_us', 'p99_us', 'server_cpu_s',
           'requests', 'duration_s', 'mb_per_s']
CONFIGS = ['uring', 'epoll-pool', 'epoll-inline']

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print('FAIL: ' + msg)
    return cond


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    compare, ringserve = sys.argv[1:3]
    fake = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fake_wrk.py')
    with tempfile.TemporaryDirectory(prefix='compare-http-test-') as tmp:
        out = os.path.join(tmp, 'out')
        argv = [sys.executable, compare, '--http', '--smoke',
                '--configs=' + ','.join(CONFIGS), '--ringserve=' + ringserve,
                '--wrk=' + fake, '--out=' + out, '--callgrind=off',
                '--data-dir=' + os.path.join(tmp, 'www')]
        print('$ ' + ' '.join(argv), flush=True)
        p = subprocess.run(argv, timeout=240)
        check(p.returncode == 0, 'compare --http exited %d' % p.returncode)
        check_costs(out, CONFIGS, check)

        path = os.path.join(out, 'results.csv')
        if check(os.path.isfile(path), 'no results.csv'):
            with open(path, newline='') as f:
                rows = list(csv.DictReader(f))
                f.seek(0)
                header = next(csv.reader(f))
            check(header == COLUMNS, 'CSV columns %s' % header)
            runs = [r for r in rows if r['kind'] == 'run']
            meds = [r for r in rows if r['kind'] == 'median']
            check(len(runs) == 2 * len(CONFIGS), '%d runs, want %d' % (
                len(runs), 2 * len(CONFIGS)))
            check(len(meds) == len(runs), '%d medians for %d runs' % (len(meds), len(runs)))
            check({(r['experiment'], r['config']) for r in runs} ==
                  {(e, c) for e in ('cached', 'cold') for c in CONFIGS},
                  'runs do not cover cached and cold for every configuration')
            for r in rows:
                if not check(r['status'] == 'ok', 'failed: %s %s: %s' % (
                        r['experiment'], r['config'], r['error'])):
                    continue
                for k in NUMERIC + (['stream_mb_per_s'] if r['experiment'] == 'cold' else []):
                    try:
                        x = float(r[k])
                        check(x == x and x >= 0, '%s=%r' % (k, r[k]))
                    except ValueError:
                        check(False, '%s=%r in %s/%s is not numeric' % (
                            k, r[k], r['experiment'], r['config']))
                check(float(r['req_per_s'] or 0) > 0, 'no requests: %s' % r)

        path = os.path.join(out, 'report.md')
        if check(os.path.isfile(path), 'no report.md'):
            text = open(path).read()
            check(text.startswith('# '), 'report.md has no title')
            check('--http' in text and '--smoke' in text, 'no command line in report.md')
            check(re.search(r'^\| 1 KiB \| 8 \| [0-9,]+ · [0-9.]+ · [0-9.,]+ \|', text, re.M),
                  'no cached table row')
            check(re.search(r'^\| ringserve uring \| [0-9.]+ \| [0-9.]+ \| [0-9,]+ \| '
                            r'[0-9.,]+ \| [0-9.]+× \|', text, re.M),
                  'no cold-file row with a ratio')
            check('CPU placement' in text, 'no CPU placement in report.md')

        path = os.path.join(out, 'chart.png')
        if check(os.path.isfile(path), 'no chart.png'):
            with open(path, 'rb') as f:
                check(f.read(8) == b'\x89PNG\r\n\x1a\n', 'chart.png is not a PNG')
        path = os.path.join(out, 'chart.svg')
        if check(os.path.isfile(path), 'no chart.svg'):
            try:
                check(ET.parse(path).getroot().tag.endswith('svg'), 'chart.svg root')
            except ET.ParseError as e:
                check(False, 'chart.svg does not parse: %s' % e)
        if failures:
            for name in ('report.md', 'results.csv'):
                p = os.path.join(out, name)
                if os.path.isfile(p):
                    print('---- %s' % name)
                    print(open(p).read()[-4000:])
            logs = os.path.join(out, 'logs')
            for name in sorted(os.listdir(logs)) if os.path.isdir(logs) else []:
                if name.endswith('.log'):
                    print('---- logs/%s' % name)
                    print(open(os.path.join(logs, name), errors='replace').read()[-2000:])
    print('%d failure(s)' % len(failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
