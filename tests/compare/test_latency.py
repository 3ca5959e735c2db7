#!/usr/bin/env python3
"""Functional test of `tools/compare --latency` (echo, proxy, HTTP),
`--baseline=BIN` (proxy, HTTP) and `ringbench --mode=request`, with tiny
runs against ringserve only (no peer needed; about 25 s).

usage: test_latency.py COMPARE RINGSERVE RINGBENCH

1. echo --latency --smoke, uring default (sched auto) and --sched=normal,
   both placements: latency.csv has a capacity run and a run per load for
   each server and placement, each open-loop run offers the fraction of
   THAT server's capacity at THAT placement (the median of its closed-loop
   runs in the same CSV), p50/p99/p99.9 numbers, the sched named, the
   quiet gate's reading; report.md has the table and the auto-vs-normal
   section and describes the gate.
2. proxy --smoke --baseline=RINGSERVE (closed-loop matrix): old-ringserve-uring
   runs next to ringserve-uring in every cell, both succeed; proxy --latency
   --dry-run names every server with its sched, old-* included.
3. HTTP --latency --smoke --baseline=RINGSERVE: uring and old-uring,
   capacity and open-loop runs with ringbench's request mode, all ok.
4. ringbench --mode=request against ringserve --protocol=http: the right
   --reply-size passes with exactly connections x rounds round trips; a
   reply size one byte short fails naming --reply-size; a 404 fails naming
   the 2xx check; missing options are usage errors (exit 2).
Standard library only; timing never decides a verdict (only that runs
succeed and the arithmetic of the rates holds).
"""
import csv
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from rs_server import Server, ServerError  # noqa: E402

failures = []

# These runs share the machine with the rest of `make test`: a server (or
# this client) pinned to a busy CPU may not run for seconds. That is not what
# is checked here, so a connection counts as stalled only after 30 s, and an
# empty window runs on until the first reply (ringbench --duration).
BUSY = '--stall-timeout=30'


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print('FAIL: ' + msg)
    return cond


def read_csv(path):
    if not check(os.path.isfile(path), 'no %s' % path):
        return []
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def compare(argv, timeout=240):
    argv = [sys.executable] + argv
    print('$ ' + ' '.join(argv), flush=True)
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=timeout)
    if p.returncode != 0:
        print(p.stdout[-3000:])
        print(p.stderr[-3000:])
    return p


def check_rates(rows, what):
    """Every open-loop run offers its fraction of its own server's median
    closed-loop rate at the same placement."""
    import statistics
    runs = [r for r in rows if r['kind'] == 'run']
    for r in runs:
        if r['phase'] != 'open' or r['status'] != 'ok':
            continue
        caps = [num(x['rtt_per_s']) for x in runs if x['phase'] == 'capacity' and
                x['config'] == r['config'] and x['placement'] == r['placement'] and
                x['status'] == 'ok']
        cap = statistics.median(caps) if caps else None
        frac = float(r['load'].rstrip('%')) / 100
        # (within 1: the tool truncates the rate to whole requests/s; the CSV
        # keeps 12 significant digits, so the capacity is the one it used)
        check(cap is not None and abs(num(r['offered_rate']) - max(1, cap * frac)) <= 1,
              '%s: %s %s %s offered %s, want %s of its capacity %s' % (
                  what, r['config'], r['placement'], r['load'], r['offered_rate'], frac, cap))
        check(abs(num(r['capacity']) - cap) < 1e-6 * cap,
              '%s: capacity column %s != median %s' % (what, r['capacity'], cap))


def test_echo(cmp, ringserve, ringbench, tmp):
    out = os.path.join(tmp, 'echo')
    p = compare([cmp, '--latency', '--smoke', '--configs=uring-default,uring-default-auto',
                 '--conns=2', '--duration=0.3', '--warmup=0.1', '--quiet=off', BUSY,
                 '--ringserve=' + ringserve, '--ringbench=' + ringbench, '--out=' + out])
    check(p.returncode == 0, 'echo --latency exited %d' % p.returncode)
    rows = read_csv(os.path.join(out, 'latency.csv'))
    runs = [r for r in rows if r['kind'] == 'run']
    check(len(runs) == 12, 'echo: %d runs, want 2 servers x 2 placements x 3' % len(runs))
    for cid, sched in (('uring-default', 'normal'), ('uring-default-auto', 'auto')):
        for pl in ('same', 'split'):
            mine = [r for r in runs if r['config'] == cid and r['placement'] == pl]
            check(sorted(r['load'] for r in mine) == ['50%', '90%', 'closed'],
                  'echo %s %s: loads %r' % (cid, pl, [r['load'] for r in mine]))
            for r in mine:
                check(r['status'] == 'ok', 'echo %s %s %s: %s' % (cid, pl, r['load'],
                                                                  r['error']))
                check(r['sched'] == sched, 'echo %s: sched %r' % (cid, r['sched']))
                for k in ('rtt_per_s', 'p50_us', 'p99_us', 'p999_us', 'quiet_pct'):
                    check(num(r[k]) is not None, 'echo %s %s: %s = %r' % (cid, r['load'],
                                                                         k, r[k]))
    check_rates(rows, 'echo')
    check(sum(1 for r in rows if r['kind'] == 'median') == 12, 'echo: median rows')
    with open(os.path.join(out, 'report.md')) as f:
        text = f.read()
    check('## Open-loop latency at 50 % and 90 % of each server\'s own capacity' in text,
          'echo report: no table section')
    check('--sched=auto` against `--sched=normal' in text, 'echo report: no auto vs normal')
    check('Quiet gate:' in text and 'ungated' in text, 'echo report: gate not described')
    check(re.search(r'\| uring default, sched auto \| auto \| split \| [\d,]+ \| 90% \|',
                    text), 'echo report: no row for auto, split, 90%')


def test_proxy(cmp, ringserve, ringbench, tmp):
    out = os.path.join(tmp, 'proxy')
    p = compare([cmp, '--proxy', '--smoke', '--configs=ringserve-uring', '--conns=4',
                 '--baseline=' + ringserve, '--costs=off', BUSY, '--ringserve=' + ringserve,
                 '--ringbench=' + ringbench, '--out=' + out])
    check(p.returncode == 0, 'proxy --baseline exited %d' % p.returncode)
    runs = [r for r in read_csv(os.path.join(out, 'results.csv')) if r['kind'] == 'run']
    ids = [r['config'] for r in runs]
    check(ids == ['ringserve-uring', 'old-ringserve-uring'],
          'proxy --baseline: runs %r, want new then old in one repeat' % ids)
    check(all(r['status'] == 'ok' for r in runs), 'proxy --baseline: a run failed')
    with open(os.path.join(out, 'report.md')) as f:
        text = f.read()
    check('old ringserve uring default' in text and ringserve in text,
          'proxy report: the baseline and its binary are not shown')
    p = compare([cmp, '--proxy', '--latency', '--dry-run', '--baseline=' + ringserve,
                 '--ringserve=' + ringserve, '--ringbench=' + ringbench])
    check(p.returncode == 0, 'proxy --latency --dry-run exited %d' % p.returncode)
    for cid, sched in (('ringserve-uring', 'normal'), ('ringserve-uring-auto', 'auto'),
                       ('old-ringserve-uring-auto', 'auto'), ('haproxy', 'n/a'),
                       ('nginx', 'n/a')):
        check(re.search(r'^  %s +sched %s' % (re.escape(cid), re.escape(sched)), p.stdout,
                        re.M), 'proxy --latency --dry-run: no %s (sched %s):\n%s' % (
                            cid, sched, p.stdout))
    p = compare([cmp, '--proxy', '--baseline=/nonexistent', '--dry-run'])
    check(p.returncode == 2 and 'baseline' in p.stderr, 'proxy: a bad --baseline: exit %d'
          % p.returncode)
    # The batched wait, opt-in, set against the plain one under the same policy.
    p = compare([cmp, '--proxy', '--latency', '--dry-run', '--placements=split',
                 '--configs=ringserve-uring,ringserve-uring-batch-wait',
                 '--ringserve=' + ringserve, '--ringbench=' + ringbench])
    check(p.returncode == 0 and re.search(
        r'^  ringserve-uring-batch-wait +sched normal .*--uring-features=default,batch-wait',
        p.stdout, re.M), 'proxy: no ringserve-uring-batch-wait (exit %d):\n%s%s' % (
            p.returncode, p.stdout, p.stderr))


def test_http(cmp, ringserve, ringbench, tmp):
    out = os.path.join(tmp, 'http')
    p = compare([cmp, '--http', '--latency', '--smoke', '--configs=uring',
                 '--baseline=' + ringserve, '--conns=2', '--duration=0.3',
                 '--placements=split', '--quiet=off', BUSY, '--ringserve=' + ringserve,
                 '--ringbench=' + ringbench, '--out=' + out,
                 '--data-dir=' + os.path.join(tmp, 'www')])
    check(p.returncode == 0, 'http --latency exited %d' % p.returncode)
    rows = read_csv(os.path.join(out, 'latency.csv'))
    runs = [r for r in rows if r['kind'] == 'run']
    check(sorted(r['config'] for r in runs) == ['old-uring'] * 3 + ['uring'] * 3,
          'http: runs %r' % [r['config'] for r in runs])
    for r in runs:
        check(r['status'] == 'ok' and num(r['p999_us']) is not None,
              'http %s %s: %s %s' % (r['config'], r['load'], r['status'], r['error']))
    check_rates(rows, 'http')
    p = compare([cmp, '--http', '--dry-run', '--baseline=' + ringserve, '--configs=uring'])
    check(p.returncode == 0 and 'old-uring' in p.stdout, 'http --baseline --dry-run')


def test_request_mode(cmp, ringserve, ringbench, tmp):
    sys.path.insert(0, os.path.dirname(os.path.abspath(cmp)))   # tools/
    import compare_http
    root = os.path.join(tmp, 'root')
    os.makedirs(root)
    with open(os.path.join(root, 'f.bin'), 'wb') as f:
        f.write(bytes(range(256)) * 7)
    try:
        # This suite never skips: a failure to start is a failure.
        srv = Server([ringserve, '--protocol=http', '--root=' + root],
                     log_path=os.path.join(tmp, 'http.log'), skip_ok=False)
    except ServerError as e:
        check(False, 'ringserve --protocol=http did not start: %s' % e)
        return
    port = srv.port
    try:
        size, err = compare_http.http_reply_size(port, '/f.bin')
        check(size and size > 1792, 'reply size of /f.bin: %r %r' % (size, err))

        def rb(*args):
            return subprocess.run([ringbench, '--connect=127.0.0.1:%d' % port, '--quiet',
                                   BUSY] + list(args),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, timeout=60)
        req = compare_http.http_request('/f.bin')
        r = rb('--mode=request', '--request=' + req, '--reply-size=%d' % size,
               '--connections=3', '--rounds=20', '--json')
        check(r.returncode == 0 and '"round_trips":60,' in r.stdout,
              'request mode, right size: exit %d %s %s' % (r.returncode, r.stdout, r.stderr))
        r = rb('--mode=request', '--request=' + req, '--reply-size=%d' % (size - 1),
               '--connections=1', '--rounds=5')
        check(r.returncode == 1 and '--reply-size' in r.stderr,
              'request mode, 1 byte short: exit %d %s' % (r.returncode, r.stderr))
        r = rb('--mode=request', '--request=' + compare_http.http_request('/nope'),
               '--reply-size=%d' % size, '--connections=1', '--rounds=5')
        check(r.returncode == 1 and 'HTTP/1.1 2' in r.stderr,
              'request mode, 404: exit %d %s' % (r.returncode, r.stderr))
        for args in (['--mode=request', '--request=x'], ['--reply-size=100'],
                     ['--mode=request', '--request=x', '--reply-size=100', '--size=5'],
                     ['--mode=request', '--request=a\\q', '--reply-size=100']):
            r = rb(*args)
            check(r.returncode == 2, 'usage error %r: exit %d' % (args, r.returncode))
    finally:
        srv.stop(10, signal.SIGINT)


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    cmp, ringserve, ringbench = sys.argv[1:4]
    with tempfile.TemporaryDirectory(prefix='compare-latency-test-') as tmp:
        test_request_mode(cmp, ringserve, ringbench, tmp)
        test_echo(cmp, ringserve, ringbench, tmp)
        test_proxy(cmp, ringserve, ringbench, tmp)
        test_http(cmp, ringserve, ringbench, tmp)
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('all passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
