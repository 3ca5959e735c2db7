#!/usr/bin/env python3
"""Test of `tools/compare --proxy` that needs no peer installed and runs no
benchmark.

usage: test_compare_proxy.py COMPARE RINGSERVE RINGBENCH

1. --dry-run prints the matrix and each peer's exact configuration
   (HAProxy `mode tcp` + `nbthread 1`, nginx stream with one worker,
   ringserve --protocol=proxy, the liburing binary given by path).
2. Usage errors exit 2 with a message: unknown configuration, liburing
   without --liburing-proxy, a malformed --throughput, a missing binary.
3. --report-from rebuilds the report from a synthetic results.csv,
   redis.csv and meta.json: medians of the runs, the goal sentences with
   the right ratios and verdicts (met at 50 sessions, missed at 500, the
   throughput goal), a stall flagged, the redis table, the peers' configs,
   results.csv median rows, and a PNG/SVG chart when gnuplot is present.
Standard library only.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

from costs_check import check_costs

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print('FAIL: ' + msg)
    return cond


def run(argv):
    p = subprocess.run([sys.executable] + argv, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


def synthetic(d):
    """Three repeats of a small matrix with known medians."""
    ids = ['ringserve-epoll-et', 'ringserve-uring', 'haproxy', 'nginx']
    labels = {'ringserve-epoll-et': 'ringserve epoll et',
              'ringserve-uring': 'ringserve uring default', 'haproxy': 'HAProxy',
              'nginx': 'nginx stream'}
    # (size, conns) -> config -> proxy µs per round trip (median is the middle)
    cpu = {(64, 50): {'ringserve-epoll-et': 9.0, 'ringserve-uring': 6.0,
                      'haproxy': 12.0, 'nginx': 10.0},
           (64, 500): {'ringserve-epoll-et': 18.0, 'ringserve-uring': 19.0,
                       'haproxy': 23.0, 'nginx': 20.0},
           (1048576, 4): {'ringserve-epoll-et': 700.0, 'ringserve-uring': 600.0,
                          'haproxy': 880.0, 'nginx': 760.0}}
    mbps = {'ringserve-epoll-et': 450.0, 'ringserve-uring': 520.0, 'haproxy': 400.0,
            'nginx': 470.0}
    fields = ['kind', 'config', 'label', 'size', 'conns', 'rep', 'order', 'status', 'n_ok',
              'rtt_per_s', 'proxy_us_per_rt', 'syscalls_per_rt', 'p50_us', 'p99_us',
              'max_us', 'mb_per_s', 'rss_kib', 'cpu_s', 'stall', 'error']
    rows = []
    for (size, conns), per in cpu.items():
        for cid, v in per.items():
            for rep, k in ((1, 1.1), (2, 1.0), (3, 0.8)):
                stall = cid == 'ringserve-epoll-et' and conns == 50 and rep == 2
                rows.append({'kind': 'run', 'config': cid, 'label': labels[cid],
                             'size': size, 'conns': conns, 'rep': rep, 'order': 1,
                             'status': 'ok', 'n_ok': 1, 'rtt_per_s': 1e6 / v / k,
                             'proxy_us_per_rt': v * k, 'syscalls_per_rt': 2.0,
                             'p50_us': 100.0, 'p99_us': 41000.0 if stall else 300.0,
                             'max_us': 42000.0 if stall else 900.0,
                             'mb_per_s': mbps[cid] * k if size > 64 else 3.0,
                             'rss_kib': 5000, 'cpu_s': 1.0, 'stall': 1 if stall else 0,
                             'error': ''})
    rows.append({'kind': 'run', 'config': 'nginx', 'label': 'nginx stream', 'size': 64,
                 'conns': 50, 'rep': 4, 'order': 1, 'status': 'error', 'n_ok': 0,
                 'error': 'synthetic failure'})
    with open(os.path.join(d, 'results.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        w.writeheader()
        for r in rows:
            w.writerow(r)
    rfields = ['kind', 'config', 'label', 'test', 'rep', 'status', 'rps', 'proxy_cpu_s',
               'proxy_us_per_req', 'requests', 'error']
    with open(os.path.join(d, 'redis.csv'), 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=rfields, extrasaction='ignore')
        w.writeheader()
        for cid, lab, rps in (('direct', 'redis-server direct', 90000.0),
                              ('ringserve-uring', labels['ringserve-uring'], 61000.0),
                              ('haproxy', 'HAProxy', 42000.0)):
            for test in ('PING_INLINE', 'SET', 'GET'):
                w.writerow({'kind': 'run', 'config': cid, 'label': lab, 'test': test,
                            'rep': 1, 'status': 'ok', 'rps': rps, 'requests': 1000})
            w.writerow({'kind': 'run', 'config': cid, 'label': lab, 'test': 'ALL',
                        'rep': 1, 'status': 'ok', 'requests': 3000,
                        'proxy_cpu_s': '' if cid == 'direct' else 0.0123,
                        'proxy_us_per_req': '' if cid == 'direct' else 4.1})
    describe = {cid: {'command': ['x', cid], 'config': None, 'skip': None,
                      'version': None} for cid in ids}
    describe['haproxy']['config'] = 'global\n    nbthread 1\ndefaults\n    mode tcp\n'
    describe['nginx']['config'] = 'worker_processes 1;\nstream { }\n'
    meta = {'cmdline': 'tools/compare --proxy (synthetic)', 'started': '2026-01-01 00:00:00',
            'elapsed': '1.0 min', 'sizes': [64], 'conns': [50, 500],
            'throughput': [1048576, 4], 'repeat': 3, 'duration': 5, 'warmup': 1,
            'proxy_cpu': 1, 'echo_cpu': 1, 'client_cpu': 1, 'redis_requests': 1000,
            'echo_cmd': 'ringserve --backend=uring', 'ids': ids, 'labels': labels,
            'describe': describe, 'host': 'test', 'load_start': '0', 'load_end': '0'}
    with open(os.path.join(d, 'meta.json'), 'w') as f:
        json.dump(meta, f)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    compare, ringserve, ringbench = sys.argv[1:4]
    bins = ['--ringserve=' + ringserve, '--ringbench=' + ringbench]

    # 1. dry run: the matrix and the exact configurations
    rc, out, err = run([compare, '--proxy', '--dry-run', '--liburing-proxy=/bin/true'] + bins)
    check(rc == 0, '--dry-run exited %d: %s' % (rc, err))
    for needle in ('mode tcp', 'nbthread 1', 'worker_processes 1;', 'proxy_pass echo;',
                   'ngx_stream_module.so', '--protocol=proxy', '--upstream=127.0.0.1:',
                   '--backend=epoll', '--uring-features=default', '/bin/true -B1 -b 16384',
                   '64 B x1', '16 KiB x500', '1 MiB x4', 'placement:'):
        check(needle in out, '--dry-run output lacks %r' % needle)

    # 2. usage errors
    for args, what in ((['--configs=nope'], 'unknown configuration'),
                       (['--configs=liburing'], 'liburing without a path'),
                       (['--throughput=lots'], 'bad --throughput'),
                       (['--liburing-proxy=/nonexistent/proxy'], 'missing liburing binary'),
                       (['--sizes=0'], 'size 0')):
        rc, out, err = run([compare, '--proxy', '--dry-run'] + bins + args)
        check(rc == 2 and 'compare' in err, '%s: exit %d, stderr %r' % (what, rc, err[-200:]))

    # 3. report from synthetic results
    with tempfile.TemporaryDirectory(prefix='compare-proxy-test-') as d:
        synthetic(d)
        rc, out, err = run([compare, '--proxy', '--report-from=' + d])
        have_gnuplot = shutil.which('gnuplot') is not None
        check(rc == (0 if have_gnuplot else 1), '--report-from exited %d: %s' % (rc, err))
        path = os.path.join(d, 'report.md')
        if check(os.path.isfile(path), 'no report.md'):
            text = open(path).read()
            # goal: 6.0 vs nginx 10.0 at 50 -> 0.60 met; 19 vs 20 at 500 -> 0.95 missed
            check('64 B, 50 sessions: ringserve uring 6.00 µs/round trip vs nginx 10.00: '
                  '**0.60x** — met' in text, 'goal sentence at 50 sessions')
            check('64 B, 500 sessions: ringserve uring 19.00 µs/round trip vs nginx 20.00: '
                  '**0.95x** — missed' in text, 'goal sentence at 500 sessions')
            check('4 x 1 MiB throughput: ringserve uring 520 MB/s vs nginx 470: **1.11x** '
                  '— met' in text, 'throughput goal sentence')
            check('in ringserve uring runs: none' in text, 'stall summary for uring')
            check('⚠stall' in text, 'the stalled epoll-et cell is not flagged')
            check('| **uring ÷ better peer** | 0.60 | 0.95 |' in text,
                  'ratio row of the CPU table')
            check('mode tcp' in text and 'nbthread 1' in text and 'worker_processes 1;'
                  in text, 'peer configurations missing from the report')
            check('| HAProxy | 42,000 | 42,000 | 42,000 | 4.10 |' in text,
                  'redis table row for HAProxy')
            check('| redis-server direct | 90,000 |' in text, 'redis direct row')
            check('synthetic failure' in text and '37 runs, 1 failed.' in text,
                  'failed run not reported')
        path = os.path.join(d, 'results.csv')
        with open(path, newline='') as f:
            rows = list(csv.DictReader(f))
        meds = [r for r in rows if r['kind'] == 'median']
        check(len(meds) == 12, '%d median rows, expected 12' % len(meds))
        nginx50 = [r for r in meds if r['config'] == 'nginx' and r['conns'] == '50']
        check(len(nginx50) == 1 and nginx50[0]['status'] == 'partial' and
              nginx50[0]['n_ok'] == '3', 'nginx 64 B x50 median row: %s' % nginx50)
        if have_gnuplot:
            with open(os.path.join(d, 'chart.png'), 'rb') as f:
                check(f.read(8) == b'\x89PNG\r\n\x1a\n', 'chart.png is not a PNG')
            check(os.path.getsize(os.path.join(d, 'chart.svg')) > 0, 'empty chart.svg')
        if failures and os.path.isfile(os.path.join(d, 'report.md')):
            print(open(os.path.join(d, 'report.md')).read()[-6000:])
    # 4. a real, tiny run of ringserve's own proxy: the costs pass at both
    # placements (no peer needed; callgrind off: the echo test covers it)
    with tempfile.TemporaryDirectory(prefix='compare-proxy-costs-') as d:
        rc, out, err = run([compare, '--proxy', '--configs=ringserve-uring,ringserve-epoll-et',
                            '--sizes=64', '--conns=8', '--repeat=1', '--duration=0.5',
                            '--warmup=0.1', '--throughput=none', '--redis=off',
                            '--callgrind=off', '--out=' + d,
                            # the run shares the machine with the rest of
                            # `make test`: the proxy may not run for seconds
                            # (not what is checked)
                            '--stall-timeout=30'] + bins)
        check(rc in (0, 1), 'proxy run exited %d: %s' % (rc, err[-300:]))
        check_costs(d, ['ringserve-uring', 'ringserve-epoll-et'], check)
    print('%d failure(s)' % len(failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
