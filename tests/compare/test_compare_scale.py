#!/usr/bin/env python3
"""Smoke test of `tools/compare --scale` (issue 15): the machinery of the
C100K report at 2,000 connections (4 io_uring loops, 1 s), not its numbers.

usage: test_compare_scale.py COMPARE RINGSERVE RINGBENCH

uring must hold every connection, each with at least one round trip, with
a flat process descriptor count; epoll runs at its stated ceiling (or the
2,000 if that is lower); report.md has the table; results.json has every
column. Standard library only.
"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    compare, ringserve, ringbench = sys.argv[1:4]
    failures = []

    def check(cond, msg):
        if not cond:
            failures.append(msg)
            print('FAIL: ' + msg)

    with tempfile.TemporaryDirectory() as out:
        p = subprocess.run([sys.executable, compare, '--scale', '--smoke',
                            '--ringserve=' + ringserve, '--ringbench=' + ringbench,
                            '--out=' + out], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=150)
        print(p.stdout)
        print(p.stderr, file=sys.stderr)
        check(p.returncode == 0, 'compare --scale --smoke exited %d' % p.returncode)
        with open(os.path.join(out, 'results.json')) as f:
            runs = {r['config']: r for r in json.load(f)}
        with open(os.path.join(out, 'report.md')) as f:
            md = f.read()
        check('| config | conn-limit | held |' in md, 'report.md has no table')
        for cfg in ('uring', 'epoll'):
            r = runs.get(cfg, {}).get('result', {})
            want = runs.get(cfg, {}).get('asked')
            check(r.get('held') == want, '%s: held %s of %s' % (cfg, r.get('held'), want))
            check(r.get('fairness', {}).get('zero') == 0,
                  '%s: connections without a round trip' % cfg)
            for key in ('rtt_per_s', 'latency_us', 'sockstat', 'server'):
                check(r.get(key) is not None, '%s: no %s in the JSON' % (cfg, key))
            srv = r.get('server') or {}
            for key in ('rss_bytes_per_conn', 'fds', 'rss_kib'):
                check(srv.get(key) is not None, '%s: no server.%s' % (cfg, key))
        u = runs.get('uring', {})
        check(u.get('asked') == 2000, 'uring asked for %s connections' % u.get('asked'))
        check((u.get('result', {}).get('server') or {}).get('fds', 1e9) < 100,
              'uring: the server holds a process descriptor per connection')
        check('accept=handoff' in u.get('start_line', ''),
              'uring: no accept=handoff on the start-up line')
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
