"""tools/compare --proxy: ringserve's proxy against HAProxy and nginx.

Each run: a fresh ringserve echo server (the upstream), a fresh proxy in
front of it, and ringbench driving the proxy with --server-pid pointing at
the proxy process, so "CPU per round trip", "syscalls per round trip" and
RSS are the proxy's alone. Cells: message sizes x session counts, plus a
throughput cell (4 sessions x 1 MiB messages). Then redis-benchmark through
each proxy to a local redis-server. Writes report.md, results.csv,
redis.csv, meta.json, chart.png and chart.svg; --report-from=DIR rebuilds
the report from those files alone. See docs/compare.md ("Proxy mode").

Standard library only; called from tools/compare (the `common` module
passed in is that script: Server-independent helpers are reused from it).
"""

import argparse
import csv
import datetime
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_proc import can_connect, children, free_port, proc_cpu_s
import bench_cost
import openloop

SIZES = [64, 16384]
CONNS = [1, 50, 500]
THROUGHPUT = (1048576, 4)       # size, sessions: "4 x 1 MiB"
STALL_US = 40000.0              # Nagle + delayed ACK: 40 ms steps
STALL_MAX_CONNS = 50            # above this, p99 is not judged
GOAL_CPU_RATIO = 0.80           # ringserve uring vs the better peer
GOAL_CONNS = (50, 500)
REDIS_TESTS = 'ping,set,get'
REDIS_CLIENTS = 50
PACKAGES = {'haproxy': ['haproxy'], 'nginx': ['nginx', 'libnginx-mod-stream'],
            'redis': ['redis-server', 'redis-tools']}
NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so'

CSV_FIELDS = ['kind', 'config', 'label', 'size', 'conns', 'rep', 'order', 'status',
              'n_ok', 'rtt_per_s', 'proxy_us_per_rt', 'syscalls_per_rt', 'p50_us',
              'p99_us', 'max_us', 'mb_per_s', 'rss_kib', 'cpu_s', 'stall', 'error']
METRICS = ['rtt_per_s', 'proxy_us_per_rt', 'syscalls_per_rt', 'p50_us', 'p99_us',
           'max_us', 'mb_per_s', 'rss_kib', 'cpu_s']
REDIS_FIELDS = ['kind', 'config', 'label', 'test', 'rep', 'status', 'rps',
                'proxy_cpu_s', 'proxy_us_per_req', 'requests', 'error']


def note(msg):
    print('compare: ' + msg, file=sys.stderr, flush=True)


def die(msg, code=2):
    print('compare: ' + msg, file=sys.stderr)
    sys.exit(code)


# ------------------------------------------------------------ configurations

HAPROXY_CFG = """\
global
    nbthread 1
    maxconn {maxconn}
defaults
    mode tcp{extra}
    timeout connect 5s
    timeout client 1m
    timeout server 1m
frontend proxy
    bind 127.0.0.1:{port}
    default_backend echo
backend echo
    server upstream 127.0.0.1:{up_port}
"""

NGINX_CFG = """\
load_module {module};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
    worker_connections 8000;
}}
stream {{
    upstream echo {{
        server 127.0.0.1:{up_port};
    }}
    server {{
        listen 127.0.0.1:{port};
        proxy_pass echo;
        tcp_nodelay on;
    }}
}}
"""


class Proxy:
    """One proxy configuration: how to start it and which pid to measure."""

    def __init__(self, cid, label, kind, args=None, binary=None):
        self.id, self.label, self.kind = cid, label, kind
        self.args = args or []
        self.binary = binary    # ringserve: another build (--baseline), else opts'
        self.skip = None
        self.version = None

    def describe(self, opts):
        """(command, config file text or None) with placeholder ports."""
        return self.command(opts, '{port}', '{up_port}', '{workdir}'), \
            self.config_text('{port}', '{up_port}', '{workdir}')

    def config_text(self, port, up_port, workdir):
        if self.kind == 'haproxy':
            # haproxy-splice: the kernel moves the bytes (splice(2) through
            # a pipe) when HAProxy judges it worth it: no copy to user space.
            # Its pipes count against RLIMIT_NOFILE (20,000 here) too.
            splice = 'splice' in self.args
            extra = '\n    option splice-auto' if splice else ''
            return HAPROXY_CFG.format(port=port, up_port=up_port, extra=extra,
                                      maxconn=4000 if splice else 8000)
        if self.kind == 'nginx':
            return NGINX_CFG.format(port=port, up_port=up_port, workdir=workdir,
                                    module=NGINX_STREAM_MODULE)
        return None

    def command(self, opts, port, up_port, workdir):
        if self.kind == 'ringserve':
            return [self.binary or opts.ringserve, '--protocol=proxy',
                    '--upstream=127.0.0.1:%s' % up_port,
                    '--listen=127.0.0.1:%s' % port] + self.args
        if self.kind == 'haproxy':
            return ['haproxy', '-db', '-f', os.path.join(str(workdir), 'haproxy.cfg')]
        if self.kind == 'nginx':
            return ['nginx', '-p', str(workdir), '-e', os.path.join(str(workdir),
                                                                    'error.log'),
                    '-c', os.path.join(str(workdir), 'nginx.conf')]
        if self.kind == 'liburing':
            # -b: its default 32-byte buffers cut a 64-byte message in two
            # sends, and with no TCP_NODELAY the second waits ~40 ms for
            # the upstream's delayed ACK; 16 KiB is ringserve's default.
            return [opts.liburing_proxy, '-B1', '-b', '16384', '-H', '127.0.0.1', '-r', str(port),
                    '-p', str(up_port)]
        raise ValueError(self.kind)


def all_proxies(opts):
    out = [
        Proxy('ringserve-epoll-et', 'ringserve epoll et', 'ringserve',
              ['--backend=epoll', '--epoll-mode=et']),
        Proxy('ringserve-uring', 'ringserve uring default', 'ringserve',
              ['--backend=uring', '--uring-features=default']),
        Proxy('haproxy', 'HAProxy', 'haproxy'),
        Proxy('nginx', 'nginx stream', 'nginx'),
    ]
    if opts.liburing_proxy:
        out.append(Proxy('liburing', 'liburing examples/proxy', 'liburing'))
    return out


# Opt-in (--configs=...,haproxy-splice): not in the default set, and not a
# "peer" of the goal lines, which compare against the packaged defaults.
def optional_proxies():
    return [Proxy('haproxy-splice', 'HAProxy splice-auto', 'haproxy', ['splice']),
            Proxy('ringserve-uring-auto', 'ringserve uring default, sched auto',
                  'ringserve', ['--backend=uring', '--uring-features=default',
                                '--sched=auto']),
            # The batched wait against the plain one at split placement,
            # where the proxy sleeps between requests (BENCHMARKS.md,
            # "Split placement: wake-ups per request").
            Proxy('ringserve-uring-batch-wait', 'ringserve uring +batch-wait',
                  'ringserve', ['--backend=uring', '--uring-features=default,batch-wait'])]


# --latency: ringserve's uring under both scheduling policies, its epoll
# et, and the peers (liburing's proxy joins when given).
LATENCY_IDS = ['ringserve-uring', 'ringserve-uring-auto', 'ringserve-epoll-et',
               'haproxy', 'nginx', 'liburing']
LATENCY_PAIRS = [('ringserve-uring-auto', 'ringserve-uring'),
                 ('old-ringserve-uring-auto', 'old-ringserve-uring')]


def with_baseline(proxies, binary):
    """proxies with, right after each ringserve one, the same run by
    `binary` (the previous build) as old-ID: interleaved in every repeat."""
    out = []
    for px in proxies:
        out.append(px)
        if px.kind == 'ringserve' and not px.binary:
            out.append(Proxy('old-' + px.id, 'old ' + px.label, 'ringserve',
                             list(px.args), binary=binary))
    return out


# ------------------------------------------------------------ processes

def pin(cpu):
    def fn():
        os.setsid()
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass
    return fn


class Proc:
    """A child with its output in a log file; started in its own session so
    a stop reaches every process it forks (nginx's worker)."""

    def __init__(self, argv, cpu, logdir, name):
        self.logfd, self.logpath = tempfile.mkstemp(prefix=name + '-', suffix='.log',
                                                    dir=logdir)
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.logfd,
                                     stderr=self.logfd, preexec_fn=pin(cpu))

    def log(self):
        try:
            with open(self.logpath, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def wait_line(self, pattern, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                return None
            time.sleep(0.02)
        return None

    def wait_port(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if can_connect(port, 1):
                return True
            time.sleep(0.02)
        return False

    def stop(self, sig=signal.SIGTERM, timeout=8.0):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout)
            except (subprocess.TimeoutExpired, OSError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                self.proc.wait()
        try:
            os.close(self.logfd)
        except OSError:
            pass
        return self.proc.returncode

    def last_line(self):
        lines = [l for l in self.log().splitlines() if l.strip()]
        return lines[-1] if lines else '(no output)'

    def discard(self):
        try:
            os.unlink(self.logpath)
        except OSError:
            pass


def start_echo(opts):
    p = Proc([opts.ringserve, '--listen=127.0.0.1:0'] + opts.echo_args, opts.echo_cpu,
             opts.logdir, 'echo')
    m = p.wait_line(r'ringserve: listening on 127\.0\.0\.1:(\d+)')
    if not m:
        err = 'echo server did not start: ' + p.last_line()
        p.stop()
        p.discard()
        return None, None, err
    return p, int(m.group(1)), None


def start_proxy(opts, px, up_port, wrap=()):
    """Start px in front of up_port. Returns (Proc, port, measured pid, error).
    wrap: a prefix such as valgrind's; nginx then runs as one process."""
    workdir = tempfile.mkdtemp(prefix='proxy-' + px.id + '-', dir=opts.logdir)
    port = 0 if px.kind == 'ringserve' else free_port()
    text = px.config_text(port, up_port, workdir)
    if text is not None and wrap:
        text = text.replace('master_process on;', 'master_process off;')
    if text is not None:
        name = 'haproxy.cfg' if px.kind == 'haproxy' else 'nginx.conf'
        with open(os.path.join(workdir, name), 'w') as f:
            f.write(text)
    p = Proc(list(wrap) + px.command(opts, port, up_port, workdir), opts.proxy_cpu,
             opts.logdir, px.id)
    p.workdir = workdir
    limit = 60.0 if wrap else 10.0
    if px.kind == 'ringserve':
        m = p.wait_line(r'ringserve: listening on 127\.0\.0\.1:(\d+)', timeout=limit)
        port = int(m.group(1)) if m else None
    elif not p.wait_port(port, timeout=limit):
        port = None
    if port is None:
        err = '%s did not start: %s' % (px.label, p.last_line())
        stop_proxy(p)
        return None, None, None, err
    pid = p.proc.pid
    if px.kind == 'nginx' and not wrap:
        deadline = time.monotonic() + 5
        kids = children(pid)
        while not kids and time.monotonic() < deadline:
            time.sleep(0.02)
            kids = children(pid)
        if len(kids) != 1:
            stop_proxy(p)
            return None, None, None, 'nginx: expected one worker, found %d' % len(kids)
        pid = kids[0]
    return p, port, pid, None


def stop_proxy(p, keep_log=False):
    code = p.stop()
    if not keep_log:
        p.discard()
    shutil.rmtree(getattr(p, 'workdir', ''), ignore_errors=True)
    return code


# ------------------------------------------------------------ one run

def stalled(conns, rtt_per_s, p99):
    """A 40 ms step (Nagle against delayed ACK, a lost wake-up) adds 40 ms
    or more to the round trips it hits: flag a run whose p99 exceeds its
    mean round trip (Little's law: sessions / round trips per second) by
    STALL_US, with at most STALL_MAX_CONNS sessions. With more sessions on
    one CPU, unfair turns give such tails too: there p99 is reported, not
    judged."""
    if p99 is None or not rtt_per_s:
        return False
    mean_us = conns / rtt_per_s * 1e6
    return conns <= STALL_MAX_CONNS and p99 >= STALL_US + mean_us


def bench_once(opts, px, size, conns, rate=None):
    """One run; rate: open loop (ringbench --rate), else closed loop."""
    rec = {'config': px.id, 'label': px.label, 'size': size, 'conns': conns,
           'status': 'ok', 'error': ''}
    echo, up_port, err = start_echo(opts)
    proxy = None
    rb_err = ''
    try:
        if err is None:
            proxy, port, pid, err = start_proxy(opts, px, up_port)
        if err is None:
            argv = [opts.ringbench, '--connect=127.0.0.1:%d' % port,
                    '--connections=%d' % conns, '--size=%d' % size,
                    '--duration=%g' % opts.duration, '--warmup=%g' % opts.warmup,
                    '--json', '--quiet', '--server-pid=%d' % pid]
            more, more_s = openloop.client_args(opts)
            argv += more
            if rate:
                argv.append('--rate=%d' % rate)
            limit = opts.duration + opts.warmup + more_s + 30 + conns / 100.0
            try:
                r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, universal_newlines=True,
                                   timeout=limit, preexec_fn=pin(opts.client_cpu))
                rb_err = r.stderr
                data = None
                for line in r.stdout.splitlines():
                    if line.strip().startswith('{'):
                        try:
                            data = json.loads(line)
                        except ValueError:
                            pass
                if data is None:
                    errl = [l for l in rb_err.splitlines() if l.strip()]
                    err = 'ringbench exit %s, no JSON: %s' % (
                        r.returncode, errl[-1] if errl else '(no output)')
                else:
                    lat = data.get('latency_us') or {}
                    srv = data.get('server') or {}
                    rec.update({'rtt_per_s': data.get('rtt_per_s'),
                                'proxy_us_per_rt': srv.get('cpu_us_per_rt'),
                                'syscalls_per_rt': srv.get('syscalls_per_rt'),
                                'p50_us': lat.get('p50'), 'p99_us': lat.get('p99'),
                                'p999_us': lat.get('p999'), 'max_us': lat.get('max'),
                                'mb_per_s': data.get('mb_per_s'),
                                'rss_kib': srv.get('rss_kib'), 'cpu_s': srv.get('cpu_s'),
                                'round_trips': data.get('round_trips'),
                                'user_s': srv.get('user_s'), 'sys_s': srv.get('sys_s'),
                                'ctxsw': srv.get('ctxsw'), 'syscalls': srv.get('syscalls')})
                    rec['stall'] = 1 if stalled(conns, rec['rtt_per_s'], rec['p99_us']) else 0
                    if r.returncode != 0 or data.get('errors'):
                        err = 'ringbench exit %s: %s' % (
                            r.returncode, data.get('error') or rb_err.strip()[-200:])
            except subprocess.TimeoutExpired:
                err = 'ringbench timed out after %.0f s' % limit
    finally:
        if proxy is not None:
            code = stop_proxy(proxy, keep_log=True)
            if err is None and px.kind == 'ringserve' and code not in (0, None):
                err = 'proxy exit status %d after the run' % code
            if err is None:
                proxy.discard()
            else:
                err += ' (proxy log: %s)' % proxy.logpath
        if echo is not None:
            echo.stop()
            echo.discard()
    if err:
        rec['status'] = 'error'
        rec['error'] = err.replace('\n', ' ')[:300]
    return rec


# ------------------------------------------------------------ costs that travel

def proxy_instructions(opts, px, size, conns):
    """User instructions per round trip of the proxy under callgrind."""
    outfile = os.path.join(opts.logdir, 'callgrind-%s-c%d-s%d.out' % (px.id, conns, size))
    echo, up_port, err = start_echo(opts)
    proxy = None
    try:
        if err is None:
            proxy, port, pid, err = start_proxy(opts, px, up_port,
                                                wrap=bench_cost.callgrind_prefix(outfile))
        if err is not None:
            return None, err
        return bench_cost.ringbench_instructions(opts.ringbench, port, pid, outfile, conns,
                                                 size, preexec=pin(opts.client_cpu))
    finally:
        if proxy is not None:
            # A signal may never reach an io_uring server under valgrind.
            proxy.stop(sig=signal.SIGKILL)
            proxy.discard()
            shutil.rmtree(getattr(proxy, 'workdir', ''), ignore_errors=True)
        if echo is not None:
            echo.stop()
            echo.discard()
        for f in [outfile] + bench_cost.dump_parts(outfile):
            try:
                os.unlink(f)
            except OSError:
                pass


def proxy_sched(px):
    return bench_cost.sched_of(px.args) if px.kind == 'ringserve' else 'n/a (external)'


def costs_pass(opts, run_px, cells):
    """Every proxy and cell at both placements, plus user instructions."""
    rows = []
    saved = opts.proxy_cpu, opts.echo_cpu, opts.client_cpu
    cpus = sorted(os.sched_getaffinity(0))
    others = [c for c in cpus if c != opts.proxy_cpu]
    places = [('same', opts.proxy_cpu, opts.proxy_cpu)]
    if others:
        places.append(('split', opts.proxy_cpu, others[0]))
    for size, conns in cells:
        for px in run_px:
            instr = err_i = None
            if opts.callgrind == 'on':
                opts.proxy_cpu, opts.echo_cpu, opts.client_cpu = saved
                instr, err_i = proxy_instructions(opts, px, size, conns)
                if err_i:
                    note('callgrind %s, %s x%d: %s' % (px.label, size_name(size), conns, err_i))
            for pl, pcpu, ocpu in places:
                opts.proxy_cpu, opts.echo_cpu, opts.client_cpu = pcpu, ocpu, ocpu
                rec = bench_once(opts, px, size, conns)
                rows.append(bench_cost.make_row(
                    opts, px.id, px.label, proxy_sched(px), pl,
                    '%s x%d' % (size_name(size), conns), rec, rec.get('round_trips'),
                    rec.get('proxy_us_per_rt'), instr, err_i, note))
    opts.proxy_cpu, opts.echo_cpu, opts.client_cpu = saved
    return rows


def costs_report(opts, rows):
    out = []
    for pl in ('same', 'split'):
        sel = [(r['label'], r['sched'], r['cell'], r) for r in rows if r['placement'] == pl]
        if not sel:
            continue
        out += bench_cost.report_lines(
            'Costs that travel (%s CPU)' % pl, 'round trip, the proxy\'s own',
            'proxy, echo server and client on one CPU' if pl == 'same' else
            'proxy alone on one CPU, echo server and client on another',
            opts.syscall_us, sel, opts.ref_syscall_us,
            instr_note='User instructions: the proxy under callgrind (nginx as one '
            'process: master_process off), two fixed-count ringbench runs (N and 2N '
            'rounds per session) between callgrind_control zeroes and dumps; the '
            'difference / (N x sessions). Under valgrind the proxy runs ~50x slower '
            'and batches more per loop turn.')
    return out


# ------------------------------------------------------------ --latency

def latency_mode(opts, proxies, run_px, cells, out, meta):
    """Each proxy's capacity, then open-loop p50/p99/p99.9 at fractions of
    it, both placements (tools/openloop.py): latency.csv and report.md."""
    cpu = opts.proxy_cpu
    other = [c for c in sorted(os.sched_getaffinity(0)) if c != cpu]
    places = {'same': (cpu, cpu, cpu), 'split': (cpu, other[0] if other else cpu,
                                                 other[0] if other else cpu)}
    if 'split' in opts.placements and not other:
        die('--placements=split needs two CPUs')
    names = {'%s x%d' % (size_name(s), c): (s, c) for s, c in cells}

    def runner(px):
        def run(cell, pl, rate):
            opts.proxy_cpu, opts.echo_cpu, opts.client_cpu = places[pl]
            rec = bench_once(opts, px, names[cell][0], names[cell][1], rate=rate)
            rec['server_us_per_rt'] = rec.get('proxy_us_per_rt')
            return rec
        return run

    targets = [openloop.Target(px.id, px.label, proxy_sched(px), runner(px))
               for px in run_px]
    path = os.path.join(out, 'latency.csv')
    rows = []
    interrupted = False
    note('latency table: %d proxies, placements %s, %d repeats; output in %s' % (
        len(targets), ','.join(opts.placements), opts.repeat, out))
    try:
        openloop.run_table(targets, list(names), opts.placements, opts.loads, opts.repeat,
                           opts.gate, note, on_run=lambda rs: openloop.write_csv(path, rs),
                           rows=rows)
    except KeyboardInterrupt:
        interrupted = True
    openloop.write_csv(path, rows)
    L = ['# ringserve proxy: open-loop latency', '',
         'Generated by `tools/compare --proxy --latency` on %s.' % meta.get('started'), '',
         '```', opts.cmdline, '```', '',
         '- Machine: %s; load average at start %s, at end %s.' % (
             meta.get('host', '?'), meta.get('load_start', '?'),
             ' '.join('%.2f' % x for x in os.getloadavg())),
         '- Each run: a fresh upstream `%s`, a fresh proxy in front of it, then '
         '`ringbench --warmup=%g --duration=%g --server-pid=PROXY` (every byte verified; '
         '`--rate=R` for the open-loop runs); %d repeat(s), configurations interleaved '
         '(order reversed on odd repeats).' % (meta.get('echo_cmd'), opts.warmup,
                                               opts.duration, opts.repeat), '',
         '| config | sched | command |', '|---|---|---|']
    for px in proxies:
        L.append('| %s | %s | `%s`%s |' % (
            px.label, proxy_sched(px), ' '.join(px.describe(opts)[0]),
            (' **skipped**: ' + px.skip) if px.skip else ''))
    L.append('')
    L += openloop.report_lines(
        rows, opts.loads, opts.gate, unit='round trip', client='ringbench --rate=R',
        pairs=LATENCY_PAIRS,
        placement_text='`same` = proxy, echo server and ringbench on CPU %d; `split` = '
        'the proxy alone on CPU %d, echo server and ringbench on CPU %d' % (
            places['same'][0], places['split'][0], places['split'][1]))
    with open(os.path.join(out, 'report.md'), 'w') as f:
        f.write('\n'.join(L) + '\n')
    try:
        if not os.listdir(opts.logdir):
            os.rmdir(opts.logdir)
    except OSError:
        pass
    nerr = sum(1 for r in rows if r['status'] != 'ok')
    note('%d runs, %d failed; wrote %s/report.md, latency.csv' % (len(rows), nerr, out))
    if interrupted:
        return 130
    return 1 if nerr or not rows else 0


# ------------------------------------------------------------ redis-benchmark

def parse_redis_csv(text):
    """redis-benchmark --csv: {"PING_INLINE": rps, "SET": rps, ...}."""
    out = {}
    for row in csv.reader(text.splitlines()):
        if len(row) >= 2 and row[0] != 'test':
            try:
                out[row[0]] = float(row[1])
            except ValueError:
                pass
    return out


def redis_once(opts, px, rep):
    """redis-benchmark through px (or straight to redis when px is None)."""
    label = px.label if px else 'redis-server direct'
    cid = px.id if px else 'direct'
    recs = []
    rport = free_port()
    rs = Proc(['redis-server', '--port', str(rport), '--bind', '127.0.0.1', '--save', '',
               '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'no'],
              opts.echo_cpu, opts.logdir, 'redis')
    proxy = None
    err = None
    limit = 0
    try:
        if not rs.wait_port(rport):
            err = 'redis-server did not start: ' + rs.last_line()
        port, pid = rport, None
        if err is None and px:
            proxy, port, pid, err = start_proxy(opts, px, rport)
        if err is None:
            c0 = proc_cpu_s(pid) if pid else None
            argv = ['redis-benchmark', '-h', '127.0.0.1', '-p', str(port), '-t', REDIS_TESTS,
                    '-c', str(REDIS_CLIENTS), '-n', str(opts.redis_requests), '--csv', '-q']
            # Four tests at 20,000 requests/s or more take a fraction of this;
            # a proxy that stalls 40 ms per request (no TCP_NODELAY) would
            # take hours: such a run is cut off and reported.
            limit = 30 + opts.redis_requests * 4 / 20000.0
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True,
                               timeout=limit, preexec_fn=pin(opts.client_cpu))
            c1 = proc_cpu_s(pid) if pid else None
            res = parse_redis_csv(r.stdout)
            if r.returncode != 0 or not res:
                err = 'redis-benchmark exit %d: %s' % (r.returncode,
                                                       (r.stderr or r.stdout).strip()[-200:])
            else:
                ntests = len(res)
                cpu = (c1 - c0) if (c0 is not None and c1 is not None) else None
                for test, rps in res.items():
                    recs.append({'kind': 'run', 'config': cid, 'label': label,
                                 'test': test, 'rep': rep, 'status': 'ok', 'rps': rps,
                                 'requests': opts.redis_requests})
                total = opts.redis_requests * ntests
                recs.append({'kind': 'run', 'config': cid, 'label': label, 'test': 'ALL',
                             'rep': rep, 'status': 'ok', 'proxy_cpu_s': cpu,
                             'requests': total,
                             'proxy_us_per_req': cpu * 1e6 / total if cpu is not None
                             else None})
    except subprocess.TimeoutExpired:
        err = 'redis-benchmark did not finish in %.0f s (stalls?)' % limit
    finally:
        if proxy is not None:
            stop_proxy(proxy)
        rs.stop()
        rs.discard()
    if err:
        recs.append({'kind': 'run', 'config': cid, 'label': label, 'test': 'ALL',
                     'rep': rep, 'status': 'error', 'error': err.replace('\n', ' ')[:300]})
    return recs


# ------------------------------------------------------------ medians, files

def medians(runs, ids, cells):
    med = {}
    for cid in ids:
        for size, conns in cells:
            rs = [r for r in runs if r['config'] == cid and int(r['size']) == size
                  and int(r['conns']) == conns]
            if not rs:
                continue
            ok = [r for r in rs if r['status'] == 'ok']
            row = {'kind': 'median', 'config': cid, 'label': rs[0]['label'], 'size': size,
                   'conns': conns, 'n_ok': len(ok),
                   'status': 'ok' if len(ok) == len(rs) else ('partial' if ok else 'error'),
                   'error': '; '.join(sorted(set(r['error'] for r in rs
                                                 if r.get('error'))))[:300]}
            for m in METRICS:
                vals = [float(r[m]) for r in ok if r.get(m) not in (None, '')]
                row[m] = statistics.median(vals) if vals else None
            row['stall'] = sum(int(r.get('stall') or 0) for r in ok)
            med[(cid, size, conns)] = row
    return med


def redis_medians(rruns):
    med = {}
    for r in rruns:
        med.setdefault((r['config'], r['test']), []).append(r)
    out = {}
    for key, rs in med.items():
        ok = [r for r in rs if r['status'] == 'ok']
        row = {'kind': 'median', 'config': key[0], 'label': rs[0]['label'], 'test': key[1],
               'status': 'ok' if ok and len(ok) == len(rs) else ('partial' if ok else
                                                                 'error'),
               'error': '; '.join(sorted(set(r.get('error') or '' for r in rs) - {''}))}
        for m in ('rps', 'proxy_cpu_s', 'proxy_us_per_req', 'requests'):
            vals = [float(r[m]) for r in ok if r.get(m) not in (None, '')]
            row[m] = statistics.median(vals) if vals else None
        out[key] = row
    return out


def write_rows(path, fields, rows):
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        w.writeheader()
        for r in rows:
            w.writerow({k: ('' if r.get(k) is None else
                            ('%.6g' % r[k] if isinstance(r.get(k), float) else r[k]))
                        for k in fields})


def read_rows(path):
    if not os.path.isfile(path):
        return []
    with open(path, newline='') as f:
        return [r for r in csv.DictReader(f)]


def num(v):
    if v is None or v == '':
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------ report

def fmt(v, kind='us'):
    v = num(v)
    if v is None:
        return '—'
    if kind == 'rate':
        return '{:,.0f}'.format(v)
    if kind == 'us':
        return '%.2f' % v if v < 100 else '{:,.0f}'.format(v)
    if kind == 'mb':
        return '{:,.0f}'.format(v)
    if kind == 'ratio':
        return '%.2f' % v
    if kind == 'sys':
        return '%.2f' % v
    return str(v)


def size_name(s):
    s = int(s)
    if s % 1048576 == 0:
        return '%d MiB' % (s // 1048576)
    if s % 1024 == 0:
        return '%d KiB' % (s // 1024)
    return '%d B' % s


def best_peer(med, cell, peers, key, lower_better=True):
    vals = [(num(med.get((p, cell[0], cell[1]), {}).get(key)), p) for p in peers]
    vals = [(v, p) for v, p in vals if v is not None]
    if not vals:
        return None, None
    return (min(vals) if lower_better else max(vals))


def goal_lines(meta, med):
    """Sentences on the issue's goal, computed from the medians."""
    peers = [p for p in ('haproxy', 'nginx') if p in meta['ids']]
    if 'ringserve-uring' not in meta['ids'] or not peers:
        return ['Goal check needs ringserve-uring and at least one of HAProxy and nginx.']
    out = []
    for size in meta['sizes']:
        for conns in GOAL_CONNS:
            if conns not in meta['conns']:
                continue
            mine = num(med.get(('ringserve-uring', size, conns), {}).get('proxy_us_per_rt'))
            best, who = best_peer(med, (size, conns), peers, 'proxy_us_per_rt')
            if mine is None or best is None:
                out.append('- %s, %d sessions: no data.' % (size_name(size), conns))
                continue
            r = mine / best
            out.append('- %s, %d sessions: ringserve uring %.2f µs/round trip vs %s %.2f: '
                       '**%.2fx** — %s (goal ≤ %.2fx).' % (
                           size_name(size), conns, mine, who, best, r,
                           'met' if r <= GOAL_CPU_RATIO else 'missed', GOAL_CPU_RATIO))
    tp = tuple(meta['throughput'])
    if tp[0]:
        mine = num(med.get(('ringserve-uring', tp[0], tp[1]), {}).get('mb_per_s'))
        best, who = best_peer(med, tp, peers, 'mb_per_s', lower_better=False)
        if mine is not None and best is not None:
            out.append('- %d x %s throughput: ringserve uring %.0f MB/s vs %s %.0f: '
                       '**%.2fx** — %s (goal ≥ 1).' % (
                           tp[1], size_name(tp[0]), mine, who, best, mine / best,
                           'met' if mine >= best else 'missed'))
    stalls = [(k, v['stall']) for k, v in med.items() if k[0] == 'ringserve-uring'
              and v.get('stall')]
    out.append('- Stalls (p99 ≥ mean + 40 ms, ≤ %d sessions) in ringserve uring runs: '
               '%s.' % (
        STALL_MAX_CONNS,
        ', '.join('%s/%d sessions in %d run(s)' % (size_name(k[1]), k[2], n)
                  for k, n in stalls) if stalls else 'none'))
    return out


def write_report(out, meta, runs, med, rmed, chart_error):
    ids = meta['ids']
    labels = meta['labels']
    cells = [(s, c) for s in meta['sizes'] for c in meta['conns']]
    L = ['# ringserve proxy comparison', '']
    L.append('Generated by `tools/compare --proxy` on %s (%s).' % (
        meta.get('started', '?'), meta.get('elapsed', '?')))
    L += ['', '```', meta.get('cmdline', ''), '```', '']
    L.append('## Set-up')
    L.append('')
    L.append('- Machine: %s; load average at start %s, at end %s.' % (
        meta.get('host', '?'), meta.get('load_start', '?'), meta.get('load_end', '?')))
    L.append('- CPU placement (the same for every configuration): proxy on CPU %s, '
             'echo server on CPU %s, ringbench on CPU %s.' % (
                 meta.get('proxy_cpu'), meta.get('echo_cpu'), meta.get('client_cpu')))
    L.append('- Each run: a fresh upstream `%s`, a fresh proxy in front of it, then '
             '`ringbench --warmup=%s --duration=%s --server-pid=PROXY` ping-pong '
             '(every byte verified). CPU, syscalls and RSS are the proxy process\'s '
             '(nginx: its one worker). %s repeat(s), configurations interleaved '
             '(order reversed on odd repeats); tables show **medians**.' % (
                 meta.get('echo_cmd', 'ringserve'), meta.get('warmup'),
                 meta.get('duration'), meta.get('repeat')))
    L.append('- A run **stalls** when its p99 exceeds its mean round trip (sessions ÷ '
             'round trips/s) by 40 ms or more, with at most %d sessions (the Nagle/'
             'delayed-ACK step); cells with more sessions show p99 but are not judged. '
             'Stalled cells are marked ⚠stall.' % STALL_MAX_CONNS)
    L.append('')
    L.append('## Configurations')
    L.append('')
    for cid in ids:
        d = meta['describe'].get(cid, {})
        L.append('### %s%s' % (labels[cid], ('  (%s)' % d['version']) if d.get('version')
                               else ''))
        L.append('')
        if d.get('skip'):
            L.append('**skipped**: %s' % d['skip'])
            L.append('')
            continue
        L.append('```')
        L.append(' '.join(shlex.quote(a) for a in d.get('command', [])))
        L.append('```')
        if d.get('config'):
            L.append('')
            L.append('```')
            L.append(d['config'].rstrip())
            L.append('```')
        L.append('')
    nerr = sum(1 for r in runs if r['status'] != 'ok')
    L.append('%d runs, %d failed.' % (len(runs), nerr))
    L.append('')
    L.append('## Goal (issue 12)')
    L.append('')
    L += goal_lines(meta, med)
    L.append('')
    run_ids = [c for c in ids if not meta['describe'].get(c, {}).get('skip')]

    def table(title, key, kind, cell_list, ratio_to_best=False):
        L.append('### ' + title)
        L.append('')
        hdr = '| config | ' + ' | '.join('%s x%d' % (size_name(s), c)
                                         for s, c in cell_list) + ' |'
        L.append(hdr)
        L.append('|---|' + '---|' * len(cell_list))
        for cid in run_ids:
            cells_txt = []
            for s, c in cell_list:
                row = med.get((cid, s, c), {})
                t = fmt(row.get(key), kind)
                if row.get('stall'):
                    t += ' ⚠stall'
                if row.get('status') in ('error', 'partial'):
                    t += ' (%s)' % row['status']
                cells_txt.append(t)
            L.append('| %s | %s |' % (labels[cid], ' | '.join(cells_txt)))
        if ratio_to_best and 'ringserve-uring' in run_ids:
            peers = [p for p in ('haproxy', 'nginx') if p in run_ids]
            if peers:
                rr = []
                for s, c in cell_list:
                    mine = num(med.get(('ringserve-uring', s, c), {}).get(key))
                    best, _ = best_peer(med, (s, c), peers, key,
                                        lower_better=(kind != 'mb' and kind != 'rate'))
                    rr.append(fmt(mine / best, 'ratio') if mine is not None and best
                              else '—')
                L.append('| **uring ÷ better peer** | %s |' % ' | '.join(rr))
        L.append('')

    table('Proxy CPU per round trip (µs, lower is better)', 'proxy_us_per_rt', 'us', cells,
          True)
    table('Round trips per second', 'rtt_per_s', 'rate', cells, True)
    table('p99 latency (µs)', 'p99_us', 'us', cells)
    table('Max latency (µs)', 'max_us', 'us', cells)
    table('Proxy syscalls per round trip', 'syscalls_per_rt', 'sys', cells)
    table('Proxy RSS (KiB)', 'rss_kib', 'rate', cells)
    tp = tuple(meta['throughput'])
    if tp[0]:
        table('Throughput: %d sessions x %s messages (MB/s, higher is better)' % (
            tp[1], size_name(tp[0])), 'mb_per_s', 'mb', [tp], True)
        table('Throughput run: proxy CPU per round trip (µs)', 'proxy_us_per_rt', 'us',
              [tp])
    if chart_error:
        L.append('(chart: %s)' % chart_error)
    else:
        L.append('![proxy CPU per round trip](chart.png)')
    L.append('')
    if rmed:
        L.append('## redis-benchmark through each proxy')
        L.append('')
        L.append('`redis-benchmark -t %s -c %d -n %s --csv` against a local `redis-server '
                 '--save "" --appendonly no` (CPU %s), through each proxy (same placement '
                 'as above; the client on CPU %s). Requests/s (median of %s), and the proxy\'s '
                 'CPU per request over the whole benchmark.' % (
                     REDIS_TESTS, REDIS_CLIENTS, meta.get('redis_requests'),
                     meta.get('echo_cpu'), meta.get('client_cpu'), meta.get('repeat')))
        L.append('')
        tests = sorted({k[1] for k in rmed if k[1] != 'ALL'})
        L.append('| config | ' + ' | '.join('%s req/s' % t for t in tests) +
                 ' | proxy µs/request |')
        L.append('|---|' + '---|' * (len(tests) + 1))
        for cid in ['direct'] + run_ids:
            if not any(k[0] == cid for k in rmed):
                continue
            lab = rmed.get((cid, 'ALL'), {}).get('label') or labels.get(cid, cid)
            vals = [fmt(rmed.get((cid, t), {}).get('rps'), 'rate') for t in tests]
            allr = rmed.get((cid, 'ALL'), {})
            cpu = fmt(allr.get('proxy_us_per_req'), 'us') if cid != 'direct' else '(none)'
            if allr.get('status') == 'error':
                cpu += ' (error: %s)' % allr.get('error', '')[:80]
            L.append('| %s | %s | %s |' % (lab, ' | '.join(vals), cpu))
        L.append('')
    errs = [r for r in runs if r['status'] != 'ok']
    if errs:
        L.append('## Failed runs')
        L.append('')
        for r in errs[:50]:
            L.append('- %s, %s x%s, rep %s: %s' % (r['label'], size_name(r['size']),
                                                  r['conns'], r.get('rep'), r['error']))
        L.append('')
    with open(os.path.join(out, 'report.md'), 'w') as f:
        f.write('\n'.join(L) + '\n')


def gp_quote(s):
    return '"' + str(s).replace('\\', '\\\\').replace('"', '\\"') + '"'


def write_chart(out, meta, med):
    ids = [c for c in meta['ids'] if not meta['describe'].get(c, {}).get('skip')]
    conns = meta['conns']
    panels = []
    for size in meta['sizes']:
        dat = os.path.join(out, 'chart-%d.dat' % size)
        with open(dat, 'w') as f:
            f.write('# conns ' + ' '.join(ids) + '\n')
            for n in conns:
                vals = [num(med.get((c, size, n), {}).get('proxy_us_per_rt')) for c in ids]
                f.write('%d %s\n' % (n, ' '.join('%.6g' % v if v is not None else 'NaN'
                                                  for v in vals)))
        panels.append((size, dat))
    tp = tuple(meta['throughput'])
    tdat = os.path.join(out, 'chart-throughput.dat')
    with open(tdat, 'w') as f:
        for i, c in enumerate(ids):
            v = num(med.get((c, tp[0], tp[1]), {}).get('mb_per_s'))
            f.write('%d %s %s\n' % (i, gp_quote(meta['labels'][c]),
                                    '%.6g' % v if v is not None else 'NaN'))
    colors = {'ringserve-uring': '#1f77b4', 'ringserve-epoll-et': '#ff7f0e',
              'haproxy': '#2ca02c', 'nginx': '#d62728', 'liburing': '#9467bd',
              'haproxy-splice': '#8c564b'}
    tp_vals = [num(med.get((c, tp[0], tp[1]), {}).get('mb_per_s')) for c in ids]
    have_tp = tp[0] and any(v is not None for v in tp_vals)
    body = ['set multiplot layout 1,%d title %s' % (len(panels) + (1 if have_tp else 0),
                                                    gp_quote(
        'proxy CPU per round trip, client -> proxy -> ringserve echo (%s; medians of %s)'
        % (meta.get('host', ''), meta.get('repeat'))))]
    for size, dat in panels:
        body.append('set title %s' % gp_quote('%s ping-pong' % size_name(size)))
        body.append('set logscale x')
        body.append('set xrange [%g:%g]' % (conns[0] / 2.0, conns[-1] * 2.0))
        body.append('set xtics (%s)' % ', '.join('"%d" %d' % (n, n) for n in conns))
        body.append('set xlabel "sessions"')
        body.append('set ylabel "proxy µs CPU / round trip"')
        body.append('set yrange [0:*]')
        body.append('set key top left font ",9"')
        if not any(num(med.get((c, size, n), {}).get('proxy_us_per_rt')) is not None
                   for c in ids for n in conns):
            body += ['set label 1 "no data" at graph 0.5,0.5 center', 'plot 1/0 notitle',
                     'unset label 1']
            continue
        plots = ["'%s' using 1:%d with linespoints lw 2 pt %d lc rgb %s title %s" % (
            dat, i + 2, i + 5, gp_quote(colors.get(c, '#7f7f7f')),
            gp_quote(meta['labels'][c])) for i, c in enumerate(ids)]
        body.append('plot ' + ', \\\n     '.join(plots))
    if have_tp:
        body.append('unset logscale x')
        body.append('set xrange [-0.6:%g]' % (len(ids) - 0.4))
        body.append('set xtics rotate by -30 font ",8"')
        body.append('set xlabel ""')
        body.append('set title %s' % gp_quote('%d x %s throughput' % (tp[1],
                                                                      size_name(tp[0]))))
        body.append('set ylabel "MB/s"')
        body.append('set style fill solid 0.7')
        body.append('set boxwidth 0.6')
        body.append('unset key')
        body.append("plot '%s' using 1:3:xtic(2) with boxes lc rgb \"#1f77b4\" notitle"
                    % tdat)
    body.append('unset multiplot')
    script = ['# generated by tools/compare --proxy; run: gnuplot chart.gp',
              'set datafile missing "NaN"', 'set grid']
    script += ['set terminal pngcairo size 1500,560 noenhanced font "sans,10"',
               "set output '%s'" % os.path.join(out, 'chart.png')] + body
    script += ['set terminal svg size 1500,560 noenhanced font "sans,10" '
               'background "white"', "set output '%s'" % os.path.join(out, 'chart.svg')]
    script += body + ['set output']
    gpf = os.path.join(out, 'chart.gp')
    with open(gpf, 'w') as f:
        f.write('\n'.join(script) + '\n')
    gnuplot = shutil.which('gnuplot')
    if not gnuplot:
        return 'gnuplot not found (apt-get install gnuplot-nox); chart.gp written'
    r = subprocess.run([gnuplot, gpf], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=60)
    if r.returncode != 0:
        return 'gnuplot failed: ' + r.stderr.strip()[-300:]
    return None


def finish(out, meta, runs, rruns):
    cells = [(s, c) for s in meta['sizes'] for c in meta['conns']]
    tp = tuple(meta['throughput'])
    if tp[0]:
        cells.append(tp)
    med = medians(runs, meta['ids'], cells)
    rmed = redis_medians(rruns)
    write_rows(os.path.join(out, 'results.csv'), CSV_FIELDS, runs + list(med.values()))
    if rruns:
        write_rows(os.path.join(out, 'redis.csv'), REDIS_FIELDS, rruns + list(rmed.values()))
    chart_error = write_chart(out, meta, med)
    if chart_error:
        note('chart: ' + chart_error)
    write_report(out, meta, runs, med, rmed, chart_error)
    return chart_error


# ------------------------------------------------------------ set-up

def ensure_packages(opts, want):
    """Install the peers' Debian packages when missing (root only)."""
    missing = []
    need = {'haproxy': 'haproxy', 'nginx': 'nginx', 'redis': 'redis-server'}
    for key in want:
        if not shutil.which(need[key]) or (key == 'nginx' and
                                           not os.path.isfile(NGINX_STREAM_MODULE)) or \
                (key == 'redis' and not shutil.which('redis-benchmark')):
            missing += PACKAGES[key]
    if not missing:
        return
    if opts.no_install:
        note('missing packages (not installing, --no-install): ' + ' '.join(missing))
        return
    if os.geteuid() != 0:
        note('missing packages: %s; run as root to have them installed, or: '
             'sudo apt-get install %s' % (' '.join(missing), ' '.join(missing)))
        return
    note('installing ' + ' '.join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    subprocess.run(['apt-get', 'update', '-q'], env=env, stdout=subprocess.DEVNULL)
    r = subprocess.run(['apt-get', 'install', '-y', '-q', '--no-install-recommends'] +
                       missing, env=env, stdout=subprocess.DEVNULL)
    if r.returncode != 0:
        note('apt-get install failed (%d); the configurations that need them are '
             'skipped' % r.returncode)


def version_of(px):
    try:
        if px.kind == 'haproxy':
            r = subprocess.run(['haproxy', '-v'], stdout=subprocess.PIPE,
                               universal_newlines=True, timeout=10)
            return r.stdout.splitlines()[0].split(' - ')[0]
        if px.kind == 'nginx':
            r = subprocess.run(['nginx', '-v'], stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=10)
            return r.stderr.strip().split(': ', 1)[-1]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return None
    return None


def why_skip(opts, px):
    if px.kind == 'haproxy' and not shutil.which('haproxy'):
        return 'haproxy not installed (apt-get install haproxy)'
    if px.kind == 'nginx' and not shutil.which('nginx'):
        return 'nginx not installed (apt-get install nginx libnginx-mod-stream)'
    if px.kind == 'nginx' and not os.path.isfile(NGINX_STREAM_MODULE):
        return 'nginx stream module missing (apt-get install libnginx-mod-stream)'
    if px.kind == 'liburing' and not os.access(opts.liburing_proxy, os.X_OK):
        return 'not executable: %s' % opts.liburing_proxy
    # a real start in front of a real echo server
    echo, up_port, err = start_echo(opts)
    if err:
        return err
    try:
        p, port, pid, err = start_proxy(opts, px, up_port)
        if p is not None:
            stop_proxy(p)
        return err
    finally:
        echo.stop()
        echo.discard()


def parse_args(argv, common):
    ap = argparse.ArgumentParser(
        prog='compare --proxy',
        description='client (ringbench) -> proxy -> ringserve echo, for ringserve\'s '
        'proxy (epoll et, uring default), HAProxy, nginx stream and optionally '
        'liburing\'s examples/proxy; then redis-benchmark through each. See '
        'docs/compare.md.')
    ap.add_argument('--proxy', action='store_true', help='this mode (required)')
    ap.add_argument('--configs', help='comma-separated: ringserve-epoll-et, ringserve-uring, '
                    'haproxy-splice (opt-in: HAProxy with option splice-auto), '
                    'haproxy, nginx, liburing (default: all available)')
    ap.add_argument('--sizes', help='message sizes (default 64,16K)')
    ap.add_argument('--conns', help='session counts (default 1,50,500)')
    ap.add_argument('--throughput', default='4x1M',
                    help='throughput cell SESSIONSxSIZE, or "none" (default 4x1M)')
    ap.add_argument('--repeat', type=int, help='repeats per cell (default 3; '
                    '--latency: 5)')
    ap.add_argument('--duration', type=float, default=5.0, help='measured seconds (5)')
    ap.add_argument('--warmup', type=float, default=1.0, help='warm-up seconds (1)')
    ap.add_argument('--cpu', type=int, help='the one CPU for proxy, echo server and '
                    'client (default: the last CPU this process may use)')
    ap.add_argument('--pin', choices=['same', 'split'], default='same',
                    help='same: everything on --cpu (default); split: the proxy on '
                    'its own CPU, echo server and client on another')
    ap.add_argument('--baseline', metavar='BIN',
                    help='another ringserve binary (the previous build): every ringserve '
                    'configuration also runs with it as old-ID, interleaved in the same '
                    'repeats')
    bench_cost.add_arguments(ap)
    openloop.add_arguments(ap)
    ap.add_argument('--redis', choices=['on', 'off'], default='on',
                    help='also run redis-benchmark through each proxy (default on)')
    ap.add_argument('--redis-requests', type=int, default=100000,
                    help='redis-benchmark -n (default 100000)')
    ap.add_argument('--liburing-proxy', metavar='PATH',
                    help='a built liburing examples/proxy binary to compare too '
                    '(run with -B1: bidirectional)')
    ap.add_argument('--echo-args', default='--backend=uring',
                    help='options of the ringserve echo server behind every proxy '
                    '(default --backend=uring)')
    ap.add_argument('--no-install', action='store_true',
                    help='never apt-get install missing peers (skip them instead)')
    ap.add_argument('--smoke', action='store_true',
                    help='tiny: 64 B, 1 and 50 sessions, 1 repeat, 1 s runs, no '
                    'throughput cell, no redis')
    ap.add_argument('--dry-run', action='store_true',
                    help='print the matrix and each configuration\'s exact command '
                    'and config file, run nothing')
    ap.add_argument('--report-from', metavar='DIR',
                    help='rebuild report.md and the chart from DIR\'s results.csv, '
                    'redis.csv and meta.json; run nothing')
    ap.add_argument('--out', help='output directory (default out/proxy-DATE-TIME)')
    ap.add_argument('--ringserve', help='ringserve binary (default build/ringserve)')
    ap.add_argument('--ringbench', help='ringbench binary (default build/tools/ringbench)')
    o = ap.parse_args(argv)
    if o.latency:
        # One cell by default, no throughput cell, no redis: the table only.
        o.sizes = o.sizes or '64'
        o.conns = o.conns or '50'
        o.throughput = 'none'
        o.redis = 'off'
        if o.repeat is None:
            o.repeat = 1 if o.smoke else openloop.LATENCY_REPEAT
    if o.repeat is None:
        o.repeat = 3
    if o.smoke:
        o.sizes = o.sizes or '64'
        o.conns = o.conns or '1,50'
        o.repeat, o.duration, o.warmup = 1, 1.0, 0.3
        o.throughput = 'none'
        o.redis = 'off'
    o.sizes = common.int_list(o.sizes, 'sizes') if o.sizes else list(SIZES)
    o.conns = common.int_list(o.conns, 'conns') if o.conns else list(CONNS)
    if o.throughput == 'none':
        o.throughput = (0, 0)
    else:
        m = re.fullmatch(r'(\d+)x(\d+[kKmM]?)', o.throughput)
        if not m:
            die('--throughput: expected SESSIONSxSIZE such as 4x1M, or none')
        o.throughput = (common.int_list(m.group(2), 'throughput')[0], int(m.group(1)))
    if o.repeat < 1 or o.duration <= 0 or o.warmup < 0 or o.redis_requests < 1:
        die('--repeat and --redis-requests must be >= 1, --duration > 0, --warmup >= 0')
    if o.liburing_proxy and not os.path.isfile(o.liburing_proxy):
        die('--liburing-proxy: no such file: %s' % o.liburing_proxy)
    if o.baseline and not (os.path.isfile(o.baseline) and os.access(o.baseline, os.X_OK)):
        die('--baseline: not found or not executable: %s' % o.baseline)
    if o.latency:
        try:
            o.loads = openloop.parse_loads(o.loads or '0.5,0.9')
            o.placements = openloop.placements_from(o.placements)
            o.gate = openloop.gate_from(o, smoke=o.smoke)
        except ValueError as e:
            die(str(e))
    return o


def main(argv, common):
    opts = parse_args(argv[1:], common)
    opts.cmdline = ' '.join(shlex.quote(a) for a in argv)
    if opts.report_from:
        d = opts.report_from
        try:
            with open(os.path.join(d, 'meta.json')) as f:
                meta = json.load(f)
        except (OSError, ValueError) as e:
            die('--report-from: cannot read %s/meta.json: %s' % (d, e))
        runs = [r for r in read_rows(os.path.join(d, 'results.csv')) if r['kind'] == 'run']
        rruns = [r for r in read_rows(os.path.join(d, 'redis.csv')) if r['kind'] == 'run']
        for r in runs:
            r['size'], r['conns'] = int(r['size']), int(r['conns'])
        out = opts.out or d
        os.makedirs(out, exist_ok=True)
        err = finish(out, meta, runs, rruns)
        note('wrote %s' % os.path.join(out, 'report.md'))
        return 1 if err else 0

    opts.ringserve = common.find_binary(opts.ringserve, 'ringserve', 'ringserve')
    opts.ringbench = common.find_binary(opts.ringbench, os.path.join('tools', 'ringbench'),
                                        'ringbench')
    proxies = all_proxies(opts)
    by_id = {p.id: p for p in proxies + optional_proxies()}
    if opts.configs:
        ids = []
        for part in opts.configs.split(','):
            part = part.strip()
            if part == 'liburing' and not opts.liburing_proxy:
                die('--configs=liburing needs --liburing-proxy=PATH')
            if part and part not in by_id:
                die('--configs: unknown %r (known: %s)' % (part, ', '.join(by_id)))
            if part:
                ids.append(part)
        proxies = [by_id[i] for i in dict.fromkeys(ids)]
    elif opts.latency:
        proxies = [by_id[i] for i in LATENCY_IDS if i in by_id]
    if opts.baseline:
        proxies = with_baseline(proxies, os.path.abspath(opts.baseline))
    cpus = sorted(os.sched_getaffinity(0))
    cpu = opts.cpu if opts.cpu is not None else cpus[-1]
    if cpu not in cpus:
        die('--cpu=%d: this process may use CPUs %s' % (cpu, cpus))
    opts.proxy_cpu = opts.echo_cpu = opts.client_cpu = cpu
    if opts.pin == 'split':
        if len(cpus) < 2:
            die('--pin=split needs two CPUs')
        other = [c for c in cpus if c != cpu][0]
        opts.echo_cpu = opts.client_cpu = other
    opts.echo_args = shlex.split(opts.echo_args)
    cells = [(s, c) for s in opts.sizes for c in opts.conns]
    if opts.throughput[0]:
        cells.append(opts.throughput)

    if opts.latency and opts.dry_run:
        n = (len(cells) * len(opts.placements) * len(proxies) * opts.repeat *
             (1 + len(opts.loads)))
        print('latency table: %d configurations x %d cells x placements %s x %d repeats '
              'x (capacity + loads %s) = %d runs, about %.0f min (plus any wait for a '
              'quiet machine)' % (
                  len(proxies), len(cells), ','.join(opts.placements), opts.repeat,
                  ','.join(openloop.load_name(f) for f in opts.loads), n,
                  n * (opts.duration + opts.warmup + 1.5) / 60))
        for px in proxies:
            print('  %-28s sched %-15s %s' % (px.id, proxy_sched(px),
                                               ' '.join(px.describe(opts)[0])))
        return 0
    if opts.dry_run:
        n = len(cells) * len(proxies) * opts.repeat
        per = opts.duration + opts.warmup + 1.0
        print('%d configurations x %d cells x %d repeats = %d runs, about %.0f min%s' % (
            len(proxies), len(cells), opts.repeat, n, n * per / 60,
            ' (+ redis-benchmark)' if opts.redis == 'on' else ''))
        print('cells: ' + ', '.join('%s x%d' % (size_name(s), c) for s, c in cells))
        print('placement: proxy CPU %d, echo CPU %d, client CPU %d' % (
            opts.proxy_cpu, opts.echo_cpu, opts.client_cpu))
        for px in proxies:
            cmd, text = px.describe(opts)
            print('\n== %s (%s)\n$ %s' % (px.label, px.id, ' '.join(cmd)))
            if text:
                print(text.rstrip())
        return 0

    started = datetime.datetime.now()
    out = opts.out or os.path.join('out', 'proxy-' + started.strftime('%Y%m%d-%H%M%S'))
    os.makedirs(out, exist_ok=True)
    opts.logdir = os.path.join(out, 'logs')
    os.makedirs(opts.logdir, exist_ok=True)
    want = {p.kind for p in proxies if p.kind in ('haproxy', 'nginx')}
    if opts.redis == 'on':
        want.add('redis')
    ensure_packages(opts, sorted(want))

    meta = {'cmdline': opts.cmdline, 'started': started.strftime('%Y-%m-%d %H:%M:%S'),
            'sizes': opts.sizes, 'conns': opts.conns, 'throughput': list(opts.throughput),
            'repeat': opts.repeat, 'duration': opts.duration, 'warmup': opts.warmup,
            'proxy_cpu': opts.proxy_cpu, 'echo_cpu': opts.echo_cpu,
            'client_cpu': opts.client_cpu, 'redis_requests': opts.redis_requests,
            'echo_cmd': ' '.join([os.path.basename(opts.ringserve)] + opts.echo_args),
            'ids': [p.id for p in proxies], 'labels': {p.id: p.label for p in proxies},
            'describe': {}}
    try:
        meta['load_start'] = ' '.join('%.2f' % x for x in os.getloadavg())
        meta['host'] = '%s, %d CPUs' % (os.uname().release, os.cpu_count() or 0)
    except OSError:
        pass
    for px in proxies:
        px.skip = why_skip(opts, px)
        px.version = version_of(px)
        cmd, text = px.describe(opts)
        meta['describe'][px.id] = {'command': cmd, 'config': text, 'skip': px.skip,
                                   'version': px.version}
        if px.skip:
            note('skipping %s: %s' % (px.label, px.skip))
    run_px = [p for p in proxies if not p.skip]
    if opts.latency:
        return latency_mode(opts, proxies, run_px, cells, out, meta)
    total = len(cells) * len(run_px) * opts.repeat
    note('%d runs; placement: proxy CPU %d, echo CPU %d, client CPU %d; output in %s' % (
        total, opts.proxy_cpu, opts.echo_cpu, opts.client_cpu, out))
    runs, rruns = [], []
    done = 0
    t0 = time.monotonic()
    interrupted = False
    try:
        for rep in range(opts.repeat):
            for size, conns in cells:
                order = run_px if rep % 2 == 0 else list(reversed(run_px))
                for i, px in enumerate(order):
                    rec = bench_once(opts, px, size, conns)
                    rec.update({'kind': 'run', 'rep': rep + 1, 'order': i + 1,
                                'n_ok': 1 if rec['status'] == 'ok' else 0})
                    runs.append(rec)
                    done += 1
                    el = time.monotonic() - t0
                    msg = ('%s us/rt, %.0f rt/s, %s MB/s, p99 %s us%s' % (
                        fmt(rec.get('proxy_us_per_rt')), rec.get('rtt_per_s') or 0,
                        fmt(rec.get('mb_per_s'), 'mb'), fmt(rec.get('p99_us')),
                        ' STALL' if rec.get('stall') else '')
                        if rec['status'] == 'ok' else 'ERROR ' + rec['error'])
                    note('[%d/%d %.0f s] %s, %s x%d, rep %d: %s' % (
                        done, total, el, px.label, size_name(size), conns, rep + 1, msg))
                    write_rows(os.path.join(out, 'results.csv'), CSV_FIELDS, runs)
        if opts.redis == 'on':
            if not (shutil.which('redis-server') and shutil.which('redis-benchmark')):
                note('redis-server/redis-benchmark missing: no redis section')
            else:
                for rep in range(opts.repeat):
                    order = [None] + run_px
                    if rep % 2:
                        order = list(reversed(order))
                    for px in order:
                        recs = redis_once(opts, px, rep + 1)
                        rruns += recs
                        allr = [r for r in recs if r['test'] == 'ALL'][0]
                        note('redis %s rep %d: %s' % (
                            px.label if px else 'direct', rep + 1,
                            ', '.join('%s %.0f/s' % (r['test'], r['rps']) for r in recs
                                      if r['test'] != 'ALL') or allr.get('error')))
    except KeyboardInterrupt:
        interrupted = True
        note('interrupted: writing the report of what was measured')
    cost_rows = []
    if opts.costs == 'on' and not interrupted:
        if opts.callgrind == 'on' and not bench_cost.have_callgrind():
            note('valgrind/callgrind_control not installed: no instruction counts')
            opts.callgrind = 'off'
        bench_cost.calibrate(opts, note)
        try:
            cost_rows = costs_pass(opts, run_px, [(s, c) for s in opts.sizes
                                                  for c in opts.conns])
        except KeyboardInterrupt:
            interrupted = True
        bench_cost.write_csv(os.path.join(out, 'costs.csv'), cost_rows,
                             bench_cost.CSV_FIELDS)
    finished = datetime.datetime.now()
    meta['elapsed'] = '%.1f min' % ((finished - started).total_seconds() / 60)
    try:
        meta['load_end'] = ' '.join('%.2f' % x for x in os.getloadavg())
    except OSError:
        pass
    with open(os.path.join(out, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    chart_error = finish(out, meta, runs, rruns)
    if cost_rows:
        with open(os.path.join(out, 'report.md'), 'a') as f:
            f.write('\n' + '\n'.join(costs_report(opts, cost_rows)) + '\n')
    try:
        if not os.listdir(opts.logdir):
            os.rmdir(opts.logdir)
    except OSError:
        pass
    nerr = sum(1 for r in runs + cost_rows if r['status'] != 'ok')
    note('%d runs, %d failed; wrote %s/report.md' % (len(runs), nerr, out))
    if interrupted:
        return 130
    return 1 if (nerr or chart_error or not runs) else 0
