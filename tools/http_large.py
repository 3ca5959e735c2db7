#!/usr/bin/env python3
"""Large-file HTTP: where each request's CPU goes, on both ends.

    tools/http_large.py --ringserve=BUILD/ringserve --file-size=1M --conns=10 \\
        --pin=split --reps=5 --configs=uring,epoll,nginx

The file is evicted and read back in 1 MiB reads first, so that its pages
are in the same state (large folios) for every run and every server.
wrk (one thread, keep-alive) fetches one file of --file-size from a fresh
server per run (ringserve --protocol=http, or Debian's nginx with the
configuration tools/compare --http uses). Configurations run interleaved,
their order rotated each repeat; medians are printed. Per request:

  rps      requests/s (wrk);
  us       server CPU, utime+stime of the whole process (exited io-wq
           workers included: /proc/PID/stat);
  usr_us   the part of us spent in user space (the rest is the kernel's:
           system calls, and the TCP work done in the process's context);
  cs       server context switches (voluntary + involuntary, every thread
           alive at the end of the run);
  cli_us   wrk's own CPU (getrusage of the child): with the client on a CPU
           of its own (--pin=split) and large files, wrk is the bottleneck,
           and what it pays per response decides requests/s;
  cli_usr_us  the part of cli_us spent in user space;
  cli_cs   wrk's context switches;
  sys, sqe system calls and io_uring submissions of the server
           (perf stat, tracepoints raw_syscalls:sys_enter and
           io_uring:io_uring_submit_req) with --syscalls;
  sys_NAME with --syscall-kinds=NAME,...: the server's calls of each
           (tracepoint syscalls:sys_enter_NAME);
  srv_seg, cli_seg, srv_ack, cli_ack
           with --syscalls: the TCP segments each side's CPU transmitted
           (tracepoint net:net_dev_queue counted per process: data over
           1000 bytes, and the rest, mostly ACKs). On loopback whoever
           transmits also delivers: bytes the server left unsent in its
           socket are sent later from the client's ACK processing, so
           cli_seg is server work the client pays for.

--pin=split: server on CPU 0, wrk on CPU 1; same: both on CPU 0.
--extra NAME=BINARY:ARGS adds a ringserve configuration with its own
binary (a before/after comparison of two builds in one interleaved run).
"""

import argparse
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_http import NGINX_CONF  # noqa: E402  (the same nginx as compare --http)
from bench_proc import free_port  # noqa: E402

RINGSERVE = {
    'uring': ['--backend=uring'],
    'uring-copy': ['--backend=uring', '--sendfile=off'],
    'epoll': ['--backend=epoll', '--epoll-mode=et', '--fs=pool'],
    'epoll-copy': ['--backend=epoll', '--epoll-mode=et', '--fs=pool', '--sendfile=off'],
}
NGINX = {'nginx': 'on', 'nginx-nosendfile': 'off'}

LUA = '''done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"p99":%d,"errs":%d}\\n',
    summary.requests, summary.duration, latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
'''


def size_of(s):
    mult = {'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def usage(pids):
    """(CPU seconds, context switches, user CPU seconds) of these
    processes, every thread."""
    tck = os.sysconf('SC_CLK_TCK')
    cpu, cs, user = 0.0, 0, 0.0
    for p in pids:
        try:
            with open('/proc/%d/stat' % p) as f:
                st = f.read().rsplit(')', 1)[1].split()
            cpu += (int(st[11]) + int(st[12])) / tck
            user += int(st[11]) / tck
            for t in os.listdir('/proc/%d/task' % p):
                with open('/proc/%d/task/%s/status' % (p, t)) as f:
                    cs += sum(int(l.split()[1]) for l in f if 'ctxt_switches' in l)
        except OSError:
            pass
    return cpu, cs, user


def with_children(pid):
    out = subprocess.run(['pgrep', '-P', str(pid)], stdout=subprocess.PIPE,
                         universal_newlines=True).stdout.split()
    return [pid] + [int(k) for k in out]


def start(a, cfg, port, cpu):
    if cfg in NGINX:
        prefix = tempfile.mkdtemp(prefix='http-large-nginx-', dir=a.tmp)
        with open(prefix + '/nginx.conf', 'w') as f:
            f.write(NGINX_CONF.format(prefix=prefix, port=port, root=a.root,
                                      sendfile=NGINX[cfg]))
        argv = [a.nginx, '-c', prefix + '/nginx.conf', '-p', prefix]
    else:
        binary, args = a.extra.get(cfg, (a.ringserve, RINGSERVE.get(cfg)))
        argv = [binary, '--protocol=http', '--root=' + a.root, '--threads=1',
                '--listen=127.0.0.1:%d' % port] + args
    p = subprocess.Popen(['taskset', '-c', str(cpu)] + argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(('127.0.0.1', port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.02)
    p.kill()
    sys.exit('%s did not listen' % cfg)


def run(a, cfg):
    port = free_port()
    ccpu = 0 if a.pin == 'same' else 1
    p = start(a, cfg, port, 0)
    url = 'http://127.0.0.1:%d/%s' % (port, a.name)
    wrk = ['taskset', '-c', str(ccpu), a.wrk, '-t1', '--timeout', '20s',
           '-c%d' % a.conns, '-s', a.lua]
    subprocess.run(wrk + ['-d%ds' % a.warmup, url], stdout=subprocess.DEVNULL)
    pids = with_children(p.pid)
    perf = None
    if a.syscalls:
        kinds = [x for k in a.syscall_kinds for x in ('-e', 'syscalls:sys_enter_' + k)]
        perf = subprocess.Popen(['perf', 'stat', '-x,', '-e', 'raw_syscalls:sys_enter',
                                 '-e', 'io_uring:io_uring_submit_req'] + SEGS + kinds + ['-p',
                                 ','.join(map(str, pids)), '-o', a.perf_out],
                                stderr=subprocess.DEVNULL)
        time.sleep(0.3)
    c0, s0, u0 = usage(pids)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_perf = ['perf', 'stat', '-x,', '-o', a.perf_out + '.cli'] + SEGS + ['--']
    out = subprocess.run((cli_perf if perf else []) + wrk + ['-d%ds' % a.duration, url],
                         stdout=subprocess.PIPE,
                         universal_newlines=True).stdout
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    c1, s1, u1 = usage(with_children(p.pid))
    counts = {}
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait()
        counts = perf_counts(a.perf_out)
        cli = perf_counts(a.perf_out + '.cli')
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    d = [json.loads(l) for l in out.splitlines() if l.startswith('{')][-1]
    n = d['requests']
    r = {'rps': n / (d['duration_us'] / 1e6), 'us': (c1 - c0) * 1e6 / n,
         'usr_us': (u1 - u0) * 1e6 / n,
         'cs': (s1 - s0) / n,
         'cli_us': (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1e6 / n,
         'cli_usr_us': (r1.ru_utime - r0.ru_utime) * 1e6 / n,
         'cli_cs': (r1.ru_nvcsw + r1.ru_nivcsw - r0.ru_nvcsw - r0.ru_nivcsw) / n,
         'p99ms': d['p99'] / 1000, 'errs': d['errs']}
    if counts:
        r['sys'] = counts.get('raw_syscalls:sys_enter', 0) / n
        r['sqe'] = counts.get('io_uring:io_uring_submit_req', 0) / n
        for k in a.syscall_kinds:
            r['sys_' + k] = counts.get('syscalls:sys_enter_' + k, 0) / n
        r['srv_seg'] = counts.get('net:net_dev_queue', 0) / n
        r['cli_seg'] = cli.get('net:net_dev_queue', 0) / n
        r['srv_ack'] = counts.get('net:net_dev_queue#2', 0) / n
        r['cli_ack'] = cli.get('net:net_dev_queue#2', 0) / n
    return r


# Segments a process transmits (loopback: also delivers): data, then the
# rest (ACKs, window updates, the request).
SEGS = ['-e', 'net:net_dev_queue', '--filter', 'len > 1000',
        '-e', 'net:net_dev_queue', '--filter', 'len <= 1000']


def perf_counts(path):
    """perf stat -x, output: {event: count}; an event counted twice
    (another filter) is EVENT#2 the second time."""
    counts = {}
    with open(path) as f:
        for line in f:
            x = line.strip().split(',')
            if len(x) > 3 and x[0].isdigit():
                k = x[2] if x[2] not in counts else x[2] + '#2'
                counts[k] = int(x[0])
    return counts


def page_cache_state(path):
    """Put the file's pages in a known state: evicted, then read back in
    1 MiB reads. How they sit in the page cache (large folios after big
    reads or writes, 4 KiB pages after reclaim or small reads) changes
    what every server pays per MiB (the page lookups of sendfile and
    splice, cachestat's walk: 1 vs 6-10 us per MiB for the latter on
    Linux 6.18), and a file left by earlier runs could be in either."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        while os.read(fd, 1 << 20):
            pass
    finally:
        os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--configs', default='uring,epoll,nginx',
                    help='servers to run, comma-separated (default %(default)s)')
    ap.add_argument('--file-size', default='1M',
                    help='size of the served file, K/M/G suffixes (default %(default)s)')
    ap.add_argument('--conns', type=int, default=10,
                    help="wrk's keep-alive connections (default %(default)s)")
    ap.add_argument('--pin', choices=['split', 'same'], default='split',
                    help='split: server CPU 0, wrk CPU 1; same: both on CPU 0 '
                    '(default %(default)s)')
    ap.add_argument('--reps', type=int, default=3,
                    help='interleaved repeats; medians are printed (default %(default)s)')
    ap.add_argument('--duration', type=int, default=3,
                    help='seconds measured per run (default %(default)s)')
    ap.add_argument('--warmup', type=int, default=1,
                    help='seconds of load before the measured window (default %(default)s)')
    ap.add_argument('--syscalls', action='store_true',
                    help='also count system calls and io_uring submissions (perf stat)')
    ap.add_argument('--syscall-kinds', default='',
                    help='with --syscalls, also count these system calls of the server '
                    'per response, comma-separated tracepoint names (e.g. '
                    'close,fcntl,rt_sigaction,cachestat,sendfile64,io_uring_enter,'
                    'epoll_wait): columns sys_NAME')
    ap.add_argument('--ringserve', default='build/ringserve',
                    help='ringserve binary (default %(default)s)')
    ap.add_argument('--nginx', default='/usr/sbin/nginx',
                    help='nginx binary (default %(default)s)')
    ap.add_argument('--wrk', default='wrk', help='wrk binary (default %(default)s)')
    ap.add_argument('--root', default='/var/tmp/ringserve-http-large',
                    help='directory for the file and the servers\' files (default %(default)s)')
    ap.add_argument('--extra', action='append', default=[], metavar='NAME=BINARY:ARGS',
                    help='one more ringserve configuration with its own binary and '
                    'arguments (repeatable)')
    a = ap.parse_args()
    a.extra = {}
    for e in ap.parse_args().extra:
        name, rest = e.split('=', 1)
        binary, _, args = rest.partition(':')
        a.extra[name] = (binary, args.split())
    a.tmp = tempfile.mkdtemp(prefix='http-large-')
    a.lua = os.path.join(a.tmp, 'done.lua')
    a.perf_out = os.path.join(a.tmp, 'perf.out')
    a.syscall_kinds = [k for k in a.syscall_kinds.split(',') if k]
    with open(a.lua, 'w') as f:
        f.write(LUA)
    size = size_of(a.file_size)
    a.name = 'large-%d.bin' % size
    path = os.path.join(a.root, a.name)
    os.makedirs(a.root, exist_ok=True)
    if not os.path.exists(path) or os.path.getsize(path) != size:
        with open(path, 'wb') as f:
            f.write(os.urandom(size))
    page_cache_state(path)
    cfgs = a.configs.split(',')
    for c in cfgs:
        if c not in RINGSERVE and c not in NGINX and c not in a.extra:
            sys.exit('unknown configuration %s' % c)
    res = {c: [] for c in cfgs}
    for rep in range(a.reps):
        for c in cfgs[rep % len(cfgs):] + cfgs[:rep % len(cfgs)]:
            r = run(a, c)
            res[c].append(r)
            print(json.dumps(dict(cfg=c, **{k: round(v, 2) for k, v in r.items()})),
                  flush=True)
    print('# medians: file %s, %d connections, pin %s, %d reps of %d s' %
          (a.file_size, a.conns, a.pin, a.reps, a.duration))
    for c in cfgs:
        med = {k: statistics.median(r[k] for r in res[c]) for k in res[c][0]}
        print('%-16s ' % c + ' '.join('%s=%.2f' % kv for kv in med.items()))


main()
