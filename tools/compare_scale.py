"""tools/compare --scale: many connections in one ringserve process.

The C100K run of docs/scale.md: a fresh ringserve per configuration, then
ringbench opens the connections (several processes, each under its own
RLIMIT_NOFILE; spread over 127.0.0.x source addresses so no (source,
destination) pair runs out of ephemeral ports), makes every connection do
round trips for --duration seconds, and reports what the server held:

  held connections, round trips/s, fairness (fewest and most round trips
  of one connection, and how many had none), p99, server RSS per held
  connection, the kernel's TCP memory (/proc/net/sockstat, both ends on
  loopback), and the server's process descriptors.

Configurations: `uring` (io_uring with fixed files, --threads loops, loop 0
handing connections to the loop with the most room) takes --conns; `epoll`
needs a process descriptor per connection, so it is run at its own
ceiling, the max-conns= its start-up line states, which is the comparison.
Writes report.md and results.json into --out. Standard library only.
"""

import argparse
import datetime
import json
import os
import re
import resource
import shlex
import signal
import subprocess
import sys
import time

CONFIGS = {
    'uring': ['--backend=uring'],
    'epoll': ['--backend=epoll', '--threads=1'],
}
LINE = re.compile(r'listening on (\S+):(\d+) \((.*)\)')


def note(msg):
    print('compare: ' + msg, file=sys.stderr, flush=True)


def die(msg, code=2):
    print('compare: ' + msg, file=sys.stderr)
    sys.exit(code)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog='compare --scale',
                                 description='Many connections in one ringserve process.')
    ap.add_argument('--scale', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--conns', type=int, default=100000,
                    help='connections for uring (default 100000)')
    ap.add_argument('--threads', type=int, default=6,
                    help='uring loops, each a table of RLIMIT_NOFILE direct '
                    'descriptors (default 6)')
    ap.add_argument('--duration', type=float, default=30, help='measured seconds (30)')
    ap.add_argument('--warmup', type=float, default=2, help='warm-up seconds (2)')
    ap.add_argument('--source-addrs', type=int, default=8,
                    help='ringbench --source-addrs (default 8)')
    ap.add_argument('--server-args', default='--buffers=256 --buffer-size=2048',
                    help='more ringserve options for every configuration (default: a '
                    'small pool, 256 x 2 KiB per loop, enough for 64-byte messages)')
    ap.add_argument('--configs', default='uring,epoll', help='uring,epoll (default both)')
    ap.add_argument('--smoke', action='store_true',
                    help='2,000 connections, 4 loops, 1 s: checks the machinery only')
    ap.add_argument('--out', help='output directory (default out/scale-DATE-TIME)')
    ap.add_argument('--ringserve', help='ringserve binary (default build/ringserve)')
    ap.add_argument('--ringbench', help='ringbench binary (default build/tools/ringbench)')
    o = ap.parse_args(argv)
    if o.smoke:
        o.conns, o.threads, o.duration, o.warmup, o.source_addrs = 2000, 4, 1, 0.5, 2
    for c in o.configs.split(','):
        if c not in CONFIGS:
            die('--configs: unknown configuration %r (known: %s)' % (c, ', '.join(CONFIGS)))
    return o


def start_server(opts, cfg, logpath):
    args = [opts.ringserve, '--listen=127.0.0.1:0'] + CONFIGS[cfg] + \
        shlex.split(opts.server_args)
    if cfg == 'uring':
        args.append('--threads=%d' % opts.threads)
    # O_APPEND: the server shares this open file and its offset, and the
    # seek(0) below must not send its next line over the start of the log.
    log = open(logpath, 'w')
    log.close()
    log = open(logpath, 'a+')
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        log.seek(0)
        m = LINE.search(log.read())
        if m:
            return p, log, args, m
        if p.poll() is not None:
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    log.seek(0)
    die('%s: ringserve did not start:\n%s' % (cfg, log.read()), 1)


def stop_server(p, log):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    log.seek(0)
    stats = {}
    for line in log.read().splitlines():
        if line.startswith('ringserve: stats:'):
            stats = dict(kv.split('=', 1) for kv in line.split()[2:] if '=' in kv)
    log.close()
    return stats


def value(desc, key):
    m = re.search(r'(?:^|[ ,])' + re.escape(key) + r'=(\d+)', desc)
    return int(m.group(1)) if m else None


def run_one(opts, cfg):
    logpath = os.path.join(opts.out, 'server-%s.log' % cfg)
    p, log, args, m = start_server(opts, cfg, logpath)
    port, desc = m.group(2), m.group(3)
    max_conns = value(desc, 'max-conns')
    conns = opts.conns if cfg == 'uring' else min(opts.conns, max_conns or opts.conns)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    per = max(1, soft - 64)
    procs = max(1, -(-conns // per))
    bench = [opts.ringbench, '--connect=127.0.0.1:' + port, '--connections=%d' % conns,
             '--processes=%d' % procs, '--source-addrs=%d' % opts.source_addrs,
             '--duration=%g' % opts.duration, '--warmup=%g' % opts.warmup,
             '--stall-timeout=%g' % max(30, opts.duration), '--server-pid=%d' % p.pid,
             '--json', '--quiet']
    note('%s: %s' % (cfg, ' '.join(shlex.quote(a) for a in bench)))
    r = subprocess.run(bench, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stats = stop_server(p, log)
    try:
        res = json.loads(r.stdout)
    except ValueError:
        res = {'error': 'no JSON from ringbench (exit %d): %s' % (r.returncode,
                                                                  r.stderr.strip()[-500:])}
    return {'config': cfg, 'server_args': args[1:], 'ringbench_args': bench[1:],
            'start_line': desc, 'max_conns': max_conns, 'conn_limit':
            value(desc, 'conn-limit'), 'asked': conns, 'status': r.returncode,
            'result': res, 'server_stats': stats}


def row(run):
    r = run['result']
    srv = r.get('server') or {}
    sock = r.get('sockstat') or {}
    lat = r.get('latency_us') or {}
    fair = r.get('fairness') or {}

    def num(v, f='%.0f'):
        return f % v if isinstance(v, (int, float)) else 'n/a'
    return [run['config'], num(run['conn_limit']), num(r.get('held')),
            num(r.get('rtt_per_s')),
            '%s / %s' % (num(fair.get('min')), num(fair.get('max'))), num(fair.get('zero')),
            num(lat.get('p99'), '%.0f'), num(srv.get('rss_bytes_per_conn')),
            num(sock.get('tcp_mem_kib')), num(srv.get('fds')),
            'ok' if run['status'] == 0 else 'FAILED: %s' % r.get('error')]


HEAD = ['config', 'conn-limit', 'held', 'round trips/s', 'fairness min / max',
        'conns with 0 rt', 'p99 us', 'server RSS B/conn', 'kernel TCP mem KiB',
        'server fds', 'status']


def report(opts, runs):
    lines = ['# C100K: connections in one ringserve process', '',
             'Generated %s by `%s`.' % (datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
                                      opts.cmdline), '',
             'Kernel %s, %d CPUs, RLIMIT_NOFILE %d. Server RSS per connection is the '
             'whole process RSS (pools included) over the connections held; kernel TCP '
             'memory counts both ends (client and server share the machine).' % (
                 os.uname().release, os.cpu_count(),
                 resource.getrlimit(resource.RLIMIT_NOFILE)[1]), '',
             '| ' + ' | '.join(HEAD) + ' |', '|' + '---|' * len(HEAD)]
    for run in runs:
        lines.append('| ' + ' | '.join(row(run)) + ' |')
    lines.append('')
    for run in runs:
        lines += ['- `%s`: server `ringserve %s`, start-up line `%s`; stats: rejected=%s' % (
            run['config'], ' '.join(run['server_args']), run['start_line'],
            run['server_stats'].get('rejected', '?'))]
    return '\n'.join(lines) + '\n'


def main(argv, common):
    opts = parse_args(argv[1:])
    opts.cmdline = ' '.join(shlex.quote(a) for a in argv)
    opts.ringserve = common.find_binary(opts.ringserve, 'ringserve', 'ringserve')
    opts.ringbench = common.find_binary(opts.ringbench, os.path.join('tools', 'ringbench'),
                                        'ringbench')
    if not opts.out:
        opts.out = os.path.join('out', 'scale-' +
                                datetime.datetime.now().strftime('%Y%m%d-%H%M%S'))
    os.makedirs(opts.out, exist_ok=True)
    runs = [run_one(opts, cfg) for cfg in opts.configs.split(',')]
    with open(os.path.join(opts.out, 'results.json'), 'w') as f:
        json.dump(runs, f, indent=1)
    text = report(opts, runs)
    with open(os.path.join(opts.out, 'report.md'), 'w') as f:
        f.write(text)
    print(text)
    note('wrote %s' % os.path.join(opts.out, 'report.md'))
    return 0 if all(r['status'] == 0 for r in runs) else 1
