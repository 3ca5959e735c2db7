"""HTTP mode of tools/compare (`compare --http`): wrk against ringserve's
static-file server and against nginx. See docs/compare.md.

Two experiments, each a fresh server per run, repeated with the order of
the configurations rotated between repeats, medians reported:

1. Cached files: wrk (one thread, keep-alive) fetches one file (1 KiB and
   1 MiB by default) over 50 and 500 connections. Requests/s and p99 come
   from wrk (a Lua done() hook prints them as JSON); server CPU per request
   is the server's utime+stime (every thread; nginx: master and worker)
   over the measured run, divided by the requests wrk completed.
2. Cold files: while a second wrk streams large files on a few connections,
   with every large file evicted from the page cache (posix_fadvise
   DONTNEED) before the run and every 50 ms during it so its reads go to the
   disk, the measured wrk fetches the small cached file on other
   connections. Its p99 shows whether a blocking disk read stalls everyone
   else (epoll --fs=inline, nginx without aio) or not (io_uring, the epoll
   worker pool).

The server runs on the first CPU this process may use, every wrk on the
second (on a 2-CPU machine: server and clients never share a core).
nginx is Debian's, `worker_processes 1`, `sendfile on` and `off`; the report
prints the configuration. wrk and nginx are installed with apt-get when
missing and this runs as root; otherwise the message says what to install.
"""

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
import threading
import time
import types

from bench_proc import can_connect, children, free_port, proc_cpu_s
import bench_cost
import openloop

KIB = 1024
MIB = 1024 * 1024


class HConfig:
    def __init__(self, cid, label, kind, args=(), sendfile=None, default=True,
                 binary=None):
        self.id = cid
        self.binary = binary      # ringserve: another build (--baseline), else opts'
        self.default = default    # in the run when --configs is not given
        self.label = label
        self.kind = kind          # 'ringserve' or 'nginx'
        self.args = list(args)
        self.sendfile = sendfile
        self.skip = None


def all_configs():
    return [
        HConfig('uring', 'ringserve uring', 'ringserve', ['--backend=uring']),
        HConfig('epoll-pool', 'ringserve epoll-et + fs pool', 'ringserve',
                ['--backend=epoll', '--epoll-mode=et', '--fs=pool']),
        HConfig('epoll-inline', 'ringserve epoll-et --fs=inline', 'ringserve',
                ['--backend=epoll', '--epoll-mode=et', '--fs=inline']),
        HConfig('nginx-sendfile', 'nginx sendfile on', 'nginx', sendfile=True),
        HConfig('nginx-nosendfile', 'nginx sendfile off', 'nginx', sendfile=False),
        # Large bodies read into memory and copied out, as before sendfile
        # (ask for them: --configs=...,uring-copy,epoll-copy).
        HConfig('uring-copy', 'ringserve uring --sendfile=off', 'ringserve',
                ['--backend=uring', '--sendfile=off'], default=False),
        HConfig('epoll-copy', 'ringserve epoll-et + fs pool --sendfile=off', 'ringserve',
                ['--backend=epoll', '--epoll-mode=et', '--fs=pool', '--sendfile=off'],
                default=False),
        # The scheduling policy that was the default before normal (ask for
        # it; --latency runs it).
        HConfig('uring-auto', 'ringserve uring, sched auto', 'ringserve',
                ['--backend=uring', '--sched=auto'], default=False),
    ]


def with_baseline(cfgs, binary):
    """cfgs with, right after each ringserve configuration, the same one run
    by `binary` (the previous build) as old-ID: interleaved in every repeat."""
    out = []
    for x in cfgs:
        out.append(x)
        if x.kind == 'ringserve' and not x.binary:
            out.append(HConfig('old-' + x.id, 'old ' + x.label, 'ringserve', x.args,
                               binary=binary))
    return out


CSV_FIELDS = ['kind', 'experiment', 'config', 'label', 'file', 'conns', 'rep',
              'status', 'n_ok', 'req_per_s', 'p50_us', 'p99_us', 'p999_us',
              'server_us_per_req', 'server_cpu_s', 'requests', 'duration_s',
              'mb_per_s', 'stream_mb_per_s', 'errors', 'error']
METRICS = ['req_per_s', 'p50_us', 'p99_us', 'p999_us', 'server_us_per_req',
           'server_cpu_s', 'requests', 'duration_s', 'mb_per_s', 'stream_mb_per_s']

# wrk's Lua hooks: done() prints one JSON line; the streamer also cycles
# through a list of paths given after "--".
LUA_DONE = r'''
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
'''
LUA_PATHS = r'''
local paths = {}
local n = 0
local size, span = 0, 0
init = function(args)
  size = tonumber(args[1])
  span = tonumber(args[2])
  for i = 3, #args do paths[#paths + 1] = args[i] end
  math.randomseed(os.time())
  n = math.random(#paths)
end
-- Each request: the next file, and with span > 0 a random range of span
-- bytes in it, so read-ahead cannot hide the disk.
request = function()
  n = n % #paths + 1
  if span > 0 then
    local first = math.random(0, (size - span) / 4096) * 4096
    return wrk.format(nil, paths[n], {Range = "bytes=" .. first .. "-" .. (first + span - 1)})
  end
  return wrk.format(nil, paths[n])
end
'''

NGINX_CONF = '''worker_processes 1;
daemon off;
master_process on;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    sendfile {sendfile};
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
    }}
}}
'''


def ensure_tools(c, opts, need_nginx):
    """wrk (and nginx when asked for): apt-get them as root when missing."""
    missing = []
    if not opts.wrk:
        opts.wrk = shutil.which('wrk')
        if not opts.wrk:
            missing.append('wrk')
    if need_nginx and not opts.nginx:
        opts.nginx = shutil.which('nginx') or (
            '/usr/sbin/nginx' if os.access('/usr/sbin/nginx', os.X_OK) else None)
        if not opts.nginx:
            missing.append('nginx')
    if not missing:
        return
    if os.geteuid() != 0:
        c.die('missing %s: run as root, or: apt-get install -y %s' % (
            ', '.join(missing), ' '.join(missing)), 1)
    c.note('installing %s (apt-get)' % ' '.join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    subprocess.run(['apt-get', 'update', '-qq'], env=env)
    p = subprocess.run(['apt-get', 'install', '-y', '-qq'] + missing, env=env)
    if p.returncode != 0:
        c.die('apt-get install %s failed' % ' '.join(missing), 1)
    if 'wrk' in missing:
        opts.wrk = shutil.which('wrk')
    if 'nginx' in missing:
        opts.nginx = shutil.which('nginx') or '/usr/sbin/nginx'
    if not opts.wrk or (need_nginx and not opts.nginx):
        c.die('still missing after apt-get: %s' % ' '.join(missing), 1)


# ------------------------------------------------------------- the files

def write_file(path, size, seed):
    """size bytes of a cheap deterministic pattern, unless already there."""
    try:
        if os.path.getsize(path) == size:
            return
    except OSError:
        pass
    block = bytes((i * 131 + seed) & 0xff for i in range(65536))
    with open(path + '.tmp', 'wb') as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
    os.rename(path + '.tmp', path)


def file_name(size):
    if size % MIB == 0:
        return 'file%dm.bin' % (size // MIB)
    if size % KIB == 0:
        return 'file%dk.bin' % (size // KIB)
    return 'file%d.bin' % size


def make_docroot(opts):
    root = opts.data_dir
    os.makedirs(os.path.join(root, 'cold'), exist_ok=True)
    for i, s in enumerate(sorted(set(opts.files + [opts.cold_small]))):
        write_file(os.path.join(root, file_name(s)), s, i)
    opts.cold_paths = []
    if opts.cold:
        for i in range(opts.cold_files):
            p = os.path.join(root, 'cold', '%d.bin' % i)
            write_file(p, opts.cold_size, 100 + i)
            opts.cold_paths.append(p)
    return root


def evict(paths):
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class Evictor(threading.Thread):
    """Keeps the cold files out of the page cache during a run."""

    def __init__(self, paths, period=0.05):
        super().__init__(daemon=True)
        self.fds = [os.open(p, os.O_RDONLY) for p in paths]
        self.period = period
        self.stop_ev = threading.Event()
        self.rounds = 0

    def run(self):
        while not self.stop_ev.is_set():
            for fd in self.fds:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            self.rounds += 1
            self.stop_ev.wait(self.period)

    def stop(self):
        self.stop_ev.set()
        self.join()
        for fd in self.fds:
            os.close(fd)


def run(argv, timeout=30):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, universal_newlines=True)
        return p.returncode, p.stdout, p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, '', str(e)


# ------------------------------------------------------------- servers

class NginxServer:
    def __init__(self, c, opts, cfg, root, wrap=()):
        self.prefix = os.path.join(opts.logdir, 'nginx-%s-%d' % (cfg.id, os.getpid()))
        os.makedirs(self.prefix, exist_ok=True)
        self.port = free_port()
        self.conf = NGINX_CONF.format(prefix=self.prefix, port=self.port, root=root,
                                      sendfile='on' if cfg.sendfile else 'off')
        self.single = bool(wrap)
        if wrap:  # under valgrind: one process, the one measured
            self.conf = self.conf.replace('master_process on;', 'master_process off;')
        cpath = os.path.join(self.prefix, 'nginx.conf')
        with open(cpath, 'w') as f:
            f.write(self.conf)
        self.argv = list(wrap) + [opts.nginx, '-c', cpath, '-p', self.prefix]
        self.logpath = os.path.join(self.prefix, 'stderr.log')
        self.logf = open(self.logpath, 'w')
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     preexec_fn=c.set_affinity(opts.server_cpu))

    def wait_ready(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return 'nginx exited %d: %s' % (self.proc.returncode, self.log()[-300:])
            if can_connect(self.port, 0.5) and (self.single or children(self.proc.pid)):
                return None
            time.sleep(0.02)
        return 'nginx did not listen within %.0f s' % timeout

    def pids(self):
        return [self.proc.pid] + children(self.proc.pid)

    def log(self):
        try:
            with open(self.logpath, errors='replace') as f:
                text = f.read()
            with open(os.path.join(self.prefix, 'error.log'), errors='replace') as f:
                return text + f.read()
        except OSError:
            return ''

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return 0 if self.proc.returncode in (0, -signal.SIGTERM) else self.proc.returncode

    def discard_log(self):
        pass


class RingServer:
    def __init__(self, c, opts, cfg, root, wrap=()):
        # compare's Server takes a configuration: args, and cmd (None: ringserve).
        rcfg = types.SimpleNamespace(args=cfg.args + opts.ringserve_args +
                                     ['--protocol=http', '--root=' + root], cmd=None,
                                     binary=cfg.binary)
        self.srv = c.Server(opts.ringserve, rcfg, opts.server_cpu, opts.logdir, wrap=wrap)
        self.proc = self.srv.proc
        self.argv = self.srv.argv

    def wait_ready(self, timeout=10.0):
        err = self.srv.wait_ready(timeout=timeout)
        self.port = self.srv.port
        return err

    def pids(self):
        return [self.proc.pid]

    def log(self):
        return self.srv.log()

    def stop(self):
        return self.srv.stop()

    def discard_log(self):
        self.srv.discard_log()


def start_server(c, opts, cfg, root, wrap=()):
    if cfg.kind == 'nginx':
        return NginxServer(c, opts, cfg, root, wrap)
    return RingServer(c, opts, cfg, root, wrap)


# ------------------------------------------------------------- open loop

def http_request(path):
    """The request ringbench --mode=request sends (its \\r\\n escapes)."""
    return 'GET %s HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n' % path


def http_reply_size(port, path, tries=3, timeout=5.0):
    """The exact length of the server's reply to http_request(path), from
    `tries` requests on one keep-alive connection (status line, headers and
    Content-Length bytes of body). (size, None), or (None, why) when a reply
    is not a 2xx with a Content-Length or the lengths differ."""
    import socket
    req = http_request(path).replace('\\r', '\r').replace('\\n', '\n').encode()
    sizes = []
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=timeout) as s:
            buf = b''
            for _ in range(tries):
                s.sendall(req)
                while b'\r\n\r\n' not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        return None, 'connection closed after %d replies' % len(sizes)
                    buf += chunk
                head, _, rest = buf.partition(b'\r\n\r\n')
                lines = head.decode('latin-1').split('\r\n')
                if not re.match(r'HTTP/1\.1 2\d\d ', lines[0] + ' '):
                    return None, 'reply %r is not an HTTP/1.1 2xx' % lines[0]
                clen = [int(l.split(':', 1)[1]) for l in lines[1:]
                        if l.lower().startswith('content-length:')]
                if not clen:
                    return None, 'reply has no Content-Length'
                while len(rest) < clen[0]:
                    chunk = s.recv(65536)
                    if not chunk:
                        return None, 'connection closed in a body'
                    rest += chunk
                sizes.append(len(head) + 4 + clen[0])
                buf = rest[clen[0]:]
    except OSError as e:
        return None, 'cannot fetch %s: %s' % (path, e)
    if len(set(sizes)) != 1:
        return None, 'reply lengths differ: %s' % sizes
    return sizes[0], None


LATENCY_IDS = ['uring', 'uring-auto', 'epoll-pool', 'nginx-sendfile']
LATENCY_PAIRS = [('uring-auto', 'uring'), ('old-uring-auto', 'old-uring')]


def latency_run(c, opts, cfg, root, size, conns, rate):
    """One fresh server, ringbench --mode=request (keep-alive GETs of one
    file, the reply length probed first) closed loop, or open loop at
    `rate` requests/s. The server's CPU: ringserve, or nginx's one worker."""
    rec = {'status': 'ok', 'error': ''}
    srv = start_server(c, opts, cfg, root)
    err = srv.wait_ready()
    try:
        path = '/' + file_name(size)
        if err is None:
            reply, err = http_reply_size(srv.port, path)
        if err is None:
            pids = srv.pids()
            argv = [opts.ringbench, '--connect=127.0.0.1:%d' % srv.port, '--mode=request',
                    '--request=' + http_request(path), '--reply-size=%d' % reply,
                    '--connections=%d' % conns, '--duration=%g' % opts.duration,
                    '--warmup=%g' % opts.warmup, '--json', '--quiet',
                    '--server-pid=%d' % pids[-1]]
            more, more_s = openloop.client_args(opts)
            argv += more
            if rate:
                argv.append('--rate=%d' % rate)
            limit = opts.duration + opts.warmup + more_s + 30
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, universal_newlines=True,
                                   timeout=limit, preexec_fn=c.set_affinity(opts.client_cpu))
                data = parse_wrk(p.stdout)
                if data is None:
                    errl = [l for l in p.stderr.splitlines() if l.strip()]
                    err = 'ringbench exit %d, no JSON: %s' % (
                        p.returncode, errl[-1] if errl else '(no output)')
                else:
                    lat = data.get('latency_us') or {}
                    srvd = data.get('server') or {}
                    rec.update(rtt_per_s=data.get('rtt_per_s'), p50_us=lat.get('p50'),
                               p99_us=lat.get('p99'), p999_us=lat.get('p999'),
                               server_us_per_rt=srvd.get('cpu_us_per_rt'))
                    if p.returncode != 0 or data.get('errors'):
                        err = 'ringbench exit %d: %s' % (p.returncode, data.get('error') or
                                                         p.stderr.strip()[-200:])
            except subprocess.TimeoutExpired:
                err = 'ringbench timed out after %.0f s' % limit
    finally:
        code = srv.stop()
    conclude(rec, err, code)
    srv.discard_log()
    return rec


def conclude(rec, err, code):
    """Mark rec failed when the run or the server's exit status says so;
    returns the error (None: the run is good)."""
    if err is None and code not in (0, None):
        err = 'server exit status %s after the run' % code
    if err is not None:
        rec['status'] = 'error'
        rec['error'] = err.replace('\n', ' ')[:300]
    return err


def latency_mode(c, opts, cfgs, run_cfgs, root, out, cmdline, started):
    """Each server's capacity (closed loop), then open-loop p50/p99/p99.9 at
    fractions of it, both placements (tools/openloop.py)."""
    cpus = sorted(os.sched_getaffinity(0))
    places = {'same': (cpus[0], cpus[0]), 'split': (cpus[0], cpus[-1])}
    cells = {'%s x %d conns' % (size_label(s), n): (s, n)
             for s in opts.files for n in opts.conns}

    def runner(cfg):
        def run(cell, pl, rate):
            opts.server_cpu, opts.client_cpu = places[pl]
            return latency_run(c, opts, cfg, root, cells[cell][0], cells[cell][1], rate)
        return run

    targets = [openloop.Target(x.id, x.label, http_sched(x), runner(x)) for x in run_cfgs]
    path = os.path.join(out, 'latency.csv')
    rows = []
    interrupted = False
    try:
        openloop.run_table(targets, list(cells), opts.placements, opts.loads, opts.repeat,
                           opts.gate, c.note,
                           on_run=lambda rs: openloop.write_csv(path, rs), rows=rows)
    except KeyboardInterrupt:
        interrupted = True
    openloop.write_csv(path, rows)
    L = ['# ringserve HTTP: open-loop latency', '',
         '- date: %s to %s' % (started.strftime('%Y-%m-%d %H:%M'),
                               datetime.datetime.now().strftime('%H:%M')),
         '- host: %s; load average at start %s, at end %s' % (
             opts.host_desc, opts.load_start,
             ' '.join('%.2f' % x for x in os.getloadavg())),
         '- command: `%s`' % cmdline,
         '- client: `ringbench --mode=request` — keep-alive `GET` of one cached file per '
         'message, each reply checked to be a 2xx of the length probed before the run '
         '(status line + headers + Content-Length); `--warmup=%g --duration=%g`, '
         '`--rate=R` for the open-loop runs; server CPU: ringserve, or nginx\'s one '
         'worker; %d repeat(s), configurations interleaved' % (
             opts.warmup, opts.duration, opts.repeat), '',
         '| config | sched | server |', '|---|---|---|']
    for x in cfgs:
        cmd = ('%s --protocol=http --root=DIR %s' % (x.binary or 'ringserve',
                                                    ' '.join(x.args + opts.ringserve_args))
               if x.kind == 'ringserve' else
               'nginx -c nginx.conf (sendfile %s)' % ('on' if x.sendfile else 'off'))
        L.append('| %s | %s | `%s`%s |' % (x.label, http_sched(x), cmd,
                                          (' **skipped**: ' + x.skip) if x.skip else ''))
    L.append('')
    L += openloop.report_lines(
        rows, opts.loads, opts.gate, unit='request', client='ringbench --mode=request '
        '--rate=R', pairs=LATENCY_PAIRS,
        placement_text='`same` = server and ringbench on CPU %d; `split` = server on CPU '
        '%d, ringbench on CPU %d' % (places['same'][0], places['split'][0],
                                     places['split'][1]))
    with open(os.path.join(out, 'report.md'), 'w') as f:
        f.write('\n'.join(L) + '\n')
    nerr = sum(1 for r in rows if r['status'] != 'ok')
    c.note('%d runs, %d failed; wrote %s/report.md, latency.csv' % (len(rows), nerr, out))
    if interrupted:
        return 130
    return 1 if nerr or not rows else 0


# ------------------------------------------------------------- wrk

def wrk_argv(opts, port, path, conns, duration, script, extra=(), timeout='10s'):
    # wrk takes whole seconds only.
    return [opts.wrk, '-t1', '-c%d' % conns, '-d%ds' % max(1, round(duration)),
            '--timeout', timeout,
            '-s', script, 'http://127.0.0.1:%d%s' % (port, path)] + (
                ['--'] + list(extra) if extra else [])


def parse_wrk(out):
    for line in out.splitlines():
        line = line.strip()
        if line.startswith('{'):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


def run_wrk(c, opts, argv, limit):
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=limit,
                           preexec_fn=c.set_affinity(opts.client_cpu))
    except subprocess.TimeoutExpired:
        return None, 'wrk timed out after %.0f s' % limit
    except OSError as e:
        return None, 'cannot run wrk: %s' % e
    data = parse_wrk(p.stdout)
    if data is None:
        errl = [l for l in (p.stderr + p.stdout).splitlines() if l.strip()]
        return None, 'wrk exit %d, no JSON: %s' % (p.returncode,
                                                   errl[-1] if errl else '(no output)')
    return data, None


def wrk_errors(d):
    return sum(d.get(k, 0) for k in ('err_connect', 'err_read', 'err_write',
                                     'err_status', 'err_timeout'))


def measure(c, opts, cfg, root, exp, size, conns):
    """One fresh server, a warm-up, one measured wrk run (plus the cold
    streamer when exp == 'cold')."""
    rec = {'experiment': exp, 'config': cfg.id, 'label': cfg.label,
           'file': size, 'conns': conns, 'status': 'ok', 'error': ''}
    srv = start_server(c, opts, cfg, root)
    err = srv.wait_ready()
    path = '/' + file_name(size)
    stream = evictor = None
    try:
        if err is None and opts.warmup > 0:
            _, err = run_wrk(c, opts, wrk_argv(opts, srv.port, path, conns, opts.warmup,
                                               opts.lua_done), opts.warmup + 30)
        if err is None and exp == 'cold':
            evict(opts.cold_paths)
            evictor = Evictor(opts.cold_paths)
            evictor.start()
            sdur = opts.duration + 1.0
            sargv = wrk_argv(opts, srv.port, '/', opts.cold_streams, sdur, opts.lua_paths,
                             [str(opts.cold_size), str(opts.cold_range)] +
                             ['/cold/' + os.path.basename(p) for p in opts.cold_paths],
                             timeout='60s')
            stream = subprocess.Popen(sargv, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      universal_newlines=True,
                                      preexec_fn=c.set_affinity(opts.client_cpu))
            time.sleep(0.5)  # the streams are under way
        if err is None:
            win = bench_cost.Window(srv.pids())
            win.start()
            cpu0 = sum(proc_cpu_s(p) or 0.0 for p in srv.pids())
            d, err = run_wrk(c, opts, wrk_argv(opts, srv.port, path, conns, opts.duration,
                                               opts.lua_done), opts.duration + 30)
            cpu1 = sum(proc_cpu_s(p) or 0.0 for p in srv.pids())
            rec.update(win.stop())
            if d is not None:
                dur = d['duration_us'] / 1e6
                n = d['requests']
                rec.update({
                    'requests': n, 'duration_s': dur,
                    'req_per_s': n / dur if dur > 0 else 0,
                    'p50_us': d['lat_p50_us'], 'p99_us': d['lat_p99_us'],
                    'p999_us': d['lat_p999_us'],
                    'server_cpu_s': cpu1 - cpu0,
                    'server_us_per_req': (cpu1 - cpu0) * 1e6 / n if n else None,
                    'mb_per_s': d['bytes'] / dur / 1e6 if dur > 0 else 0,
                    'errors': wrk_errors(d),
                })
                if n == 0:
                    err = 'no requests completed'
                elif d.get('err_status'):
                    err = '%d responses were not 2xx/3xx' % d['err_status']
        if stream is not None:
            try:
                sout, serr = stream.communicate(timeout=opts.duration + 60)
            except subprocess.TimeoutExpired:
                stream.kill()
                sout, serr = stream.communicate()
            sd = parse_wrk(sout)
            if sd and sd['duration_us'] > 0:
                rec['stream_mb_per_s'] = sd['bytes'] / (sd['duration_us'] / 1e6) / 1e6
            elif err is None:
                err = 'the cold streamer printed no result: %s' % (serr.strip()[-200:])
    finally:
        if evictor is not None:
            evictor.stop()
        if stream is not None and stream.poll() is None:
            stream.kill()
            stream.wait()
        code = srv.stop()
    if conclude(rec, err, code) is not None:
        try:
            with open(os.path.join(opts.logdir, '%s-%s-%d-c%d.log' % (
                    exp, cfg.id, size, conns)), 'a') as f:
                f.write('server: %s\n%s\n' % (' '.join(srv.argv), srv.log()))
        except OSError:
            pass
    srv.discard_log()
    return rec


# ------------------------------------------------------------- costs

def http_sched(cfg):
    return bench_cost.sched_of(cfg.args) if cfg.kind == 'ringserve' else 'n/a (external)'


def http_instructions(c, opts, cfg, root, size, conns):
    """User instructions per request, the server under callgrind: wrk for
    --duration seconds between a callgrind_control zero and dump, divided by
    the requests wrk completed (its connection set-up is included,
    amortised over them)."""
    outfile = os.path.join(opts.logdir, 'callgrind-%s-%d-c%d.out' % (cfg.id, size, conns))
    srv = start_server(c, opts, cfg, root, wrap=bench_cost.callgrind_prefix(outfile))
    try:
        err = srv.wait_ready(timeout=60.0)
        if err:
            return None, err
        pid = srv.pids()[0]
        if not bench_cost.callgrind_zero(pid):
            return None, 'callgrind_control -z failed'
        d, err = run_wrk(c, opts, wrk_argv(opts, srv.port, '/' + file_name(size), conns,
                                           opts.duration, opts.lua_done, timeout='60s'),
                         opts.duration + 90)
        if err:
            return None, err
        ir = bench_cost.callgrind_dump(pid, outfile)
        if ir is None or not d.get('requests'):
            return None, 'no callgrind dump or no requests'
        return ir / d['requests'], None
    finally:
        srv.proc.kill()  # a signal may never reach an io_uring server under valgrind
        srv.proc.wait()
        srv.stop()
        srv.discard_log()
        for f in [outfile] + bench_cost.dump_parts(outfile):
            try:
                os.unlink(f)
            except OSError:
                pass


def costs_pass(c, opts, cfgs, root):
    rows = []
    saved = opts.server_cpu, opts.client_cpu
    for size in opts.files:
        for conns in opts.conns:
            for cfg in cfgs:
                instr = err_i = None
                if opts.callgrind == 'on':
                    instr, err_i = http_instructions(c, opts, cfg, root, size, conns)
                    if err_i:
                        c.note('callgrind %s: %s' % (cfg.label, err_i))
                for pl, scpu, ccpu in bench_cost.placements():
                    opts.server_cpu, opts.client_cpu = scpu, ccpu
                    rec = measure(c, opts, cfg, root, 'cached', size, conns)
                    rows.append(bench_cost.make_row(
                        opts, cfg.id, cfg.label, http_sched(cfg), pl,
                        '%s, %d conns' % (size_label(size), conns), rec, rec.get('requests'),
                        rec.get('server_us_per_req'), instr, err_i, c.note))
    opts.server_cpu, opts.client_cpu = saved
    return rows


def costs_report(opts, rows):
    out = []
    for pl, _, _ in bench_cost.placements():
        sel = [(r['label'], r['sched'], r['cell'], r) for r in rows if r['placement'] == pl]
        out += bench_cost.report_lines(
            'Costs that travel (%s CPU)' % pl, 'request (every server process)',
            'server and wrk on one CPU' if pl == 'same' else
            'server alone on one CPU, wrk on another', opts.syscall_us, sel,
            opts.ref_syscall_us,
            instr_note='User instructions: the server under callgrind (nginx as one '
            'process), wrk for --duration seconds between callgrind_control zero and '
            'dump, divided by the requests completed. Under valgrind the server runs '
            '~50x slower and batches more per loop turn.')
    return out


# ------------------------------------------------------------- output

def medians(runs):
    groups = {}
    for r in runs:
        key = (r['experiment'], r['config'], r['file'], r['conns'])
        groups.setdefault(key, []).append(r)
    med = {}
    for key, rs in groups.items():
        ok = [r for r in rs if r['status'] == 'ok']
        m = {'kind': 'median', 'experiment': key[0], 'config': key[1],
             'label': rs[0]['label'], 'file': key[2], 'conns': key[3],
             'status': 'ok' if ok else 'error', 'n_ok': len(ok),
             'error': '' if ok else rs[0]['error']}
        for k in METRICS:
            vals = [r[k] for r in ok if r.get(k) is not None]
            m[k] = statistics.median(vals) if vals else None
        med[key] = m
    return med


def write_csv(path, runs, med):
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction='ignore')
        w.writeheader()
        for r in runs:
            w.writerow(dict(r, kind='run'))
        for m in med.values():
            w.writerow(m)


def f_num(v, digits=0):
    if v is None:
        return '—'
    if digits == 0:
        return '{:,.0f}'.format(v)
    return '{:,.{}f}'.format(v, digits)


def f_ms(us):
    return '—' if us is None else ('%.2f' % (us / 1000.0))


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def size_label(s):
    if s % MIB == 0:
        return '%d MiB' % (s // MIB)
    if s % KIB == 0:
        return '%d KiB' % (s // KIB)
    return '%d B' % s


def write_report(path, opts, cfgs, med, cmdline, started, finished):
    run_cfgs = [c for c in cfgs if not c.skip]
    L = []
    L.append('# ringserve HTTP comparison: wrk against ringserve and nginx')
    L.append('')
    L.append('- date: %s to %s' % (started.strftime('%Y-%m-%d %H:%M'),
                                   finished.strftime('%H:%M')))
    L.append('- host: %s; load average at start %s' % (opts.host_desc, opts.load_start))
    L.append('- command: `%s`' % cmdline)
    L.append('- CPU placement: server (ringserve, or nginx master + worker) on CPU %d, '
             'every wrk on CPU %d; ringserve --threads=1 (its epoll file workers share '
             'the server CPU)' % (opts.server_cpu, opts.client_cpu))
    L.append('- wrk: `%s -t1 -cN -dD --timeout 10s -s done.lua URL` (keep-alive '
             'HTTP/1.1); %g s measured after a %g s warm-up on the same fresh server; '
             '%d repeats, configurations rotated between repeats; medians' % (
                 opts.wrk, opts.duration, opts.warmup, opts.repeat))
    L.append('- server CPU per request: the server\'s utime+stime (all threads and '
             'processes) during the measured run ÷ the requests wrk completed')
    L.append('')
    for c in cfgs:
        if c.skip:
            L.append('- skipped %s: %s' % (c.label, c.skip))
    L.append('')
    L.append('| config | server command |')
    L.append('|---|---|')
    for c in run_cfgs:
        cmd = ('%s --protocol=http --root=DIR ' % (c.binary or 'ringserve') +
               ' '.join(c.args + opts.ringserve_args)
               if c.kind == 'ringserve' else
               'nginx -c nginx.conf (sendfile %s)' % ('on' if c.sendfile else 'off'))
        L.append('| %s | `%s` |' % (c.label, cmd))
    L.append('')
    if opts.cached:
        L.append('## Cached files')
        L.append('')
        L.append('requests/s · p99 ms · server CPU µs per request (medians)')
        L.append('')
        L.append('| file | conns | ' + ' | '.join(c.label for c in run_cfgs) + ' |')
        L.append('|---|---:|' + '---:|' * len(run_cfgs))
        for s in opts.files:
            for n in opts.conns:
                cells = []
                for c in run_cfgs:
                    m = med.get(('cached', c.id, s, n))
                    if not m or m['status'] != 'ok':
                        cells.append('error' if m else '—')
                        continue
                    cells.append('%s · %s · %s' % (f_num(m['req_per_s']), f_ms(m['p99_us']),
                                                   f_num(m['server_us_per_req'], 1)))
                L.append('| %s | %d | %s |' % (size_label(s), n, ' | '.join(cells)))
        L.append('')
        nginxes = [c for c in run_cfgs if c.kind == 'nginx']
        if any(c.id == 'uring' for c in run_cfgs) and nginxes:
            L.append('ringserve uring against nginx (same run, medians): '
                     'requests/s ratio (goal ≥ 1) and CPU per request ratio (goal ≤ 0.9)')
            L.append('')
            L.append('| file | conns | ' + ' | '.join(
                'vs %s: req/s · CPU/req' % c.label for c in nginxes) + ' |')
            L.append('|---|---:|' + '---:|' * len(nginxes))
            for s in opts.files:
                for n in opts.conns:
                    u = med.get(('cached', 'uring', s, n)) or {}
                    cells = []
                    for c in nginxes:
                        g = med.get(('cached', c.id, s, n)) or {}
                        a = ratio(u.get('req_per_s'), g.get('req_per_s'))
                        b = ratio(u.get('server_us_per_req'), g.get('server_us_per_req'))
                        cells.append('%s · %s' % ('—' if a is None else '%.2f×' % a,
                                                  '—' if b is None else '%.2f×' % b))
                    L.append('| %s | %d | %s |' % (size_label(s), n, ' | '.join(cells)))
            L.append('')
    if opts.cold:
        L.append('## Cold files: small requests next to disk-bound streams')
        L.append('')
        L.append('%d files of %s, evicted (posix_fadvise DONTNEED) before the run and '
                 'every 50 ms during it, read by a second wrk on %d connections (%s); '
                 'measured: the cached %s file over %d other connections.' % (
                     opts.cold_files, size_label(opts.cold_size), opts.cold_streams,
                     ('random %s ranges' % size_label(opts.cold_range)) if opts.cold_range
                     else 'whole files', size_label(opts.cold_small), opts.cold_conns))
        L.append('')
        L.append('| config | small p99 ms | small p50 ms | small req/s | cold MB/s '
                 'streamed | p99 ÷ epoll --fs=inline |')
        L.append('|---|---:|---:|---:|---:|---:|')
        base = med.get(('cold', 'epoll-inline', opts.cold_small, opts.cold_conns)) or {}
        for c in run_cfgs:
            m = med.get(('cold', c.id, opts.cold_small, opts.cold_conns))
            if not m or m['status'] != 'ok':
                L.append('| %s | %s |  |  |  |  |' % (c.label, 'error' if m else '—'))
                continue
            r = ratio(m['p99_us'], base.get('p99_us'))
            L.append('| %s | %s | %s | %s | %s | %s |' % (
                c.label, f_ms(m['p99_us']), f_ms(m['p50_us']), f_num(m['req_per_s']),
                f_num(m['stream_mb_per_s'], 1), '—' if r is None else '%.3f×' % r))
        L.append('')
    if any(c.kind == 'nginx' for c in run_cfgs):
        L.append('## nginx configuration')
        L.append('')
        L.append('As run (`sendfile off` for the other variant; PORT, ROOT and PREFIX '
                 'filled in per run):')
        L.append('')
        L.append('```nginx')
        L.append(NGINX_CONF.format(prefix='PREFIX', port='PORT', root='ROOT',
                                   sendfile='on').rstrip())
        L.append('```')
        L.append('')
    errs = [m for m in med.values() if m['status'] != 'ok']
    if errs:
        L.append('## Failed cells')
        L.append('')
        for m in errs:
            L.append('- %s %s %s conns %d: %s' % (m['experiment'], m['label'],
                                                  size_label(m['file']), m['conns'],
                                                  m['error']))
        L.append('')
    L.append('Files: results.csv (every run and the medians), chart.png / chart.svg, '
             'logs/ (failed runs, nginx prefixes).')
    with open(path, 'w') as f:
        f.write('\n'.join(L) + '\n')


def write_chart(c, out, opts, cfgs, med):
    run_cfgs = [x for x in cfgs if not x.skip]
    cells = [(s, n) for s in opts.files for n in opts.conns] if opts.cached else []
    colors = ['#1f77b4', '#ff7f0e', '#d62728', '#2ca02c', '#7f7f7f', '#9467bd']
    dat = os.path.join(out, 'chart.dat')
    cdat = os.path.join(out, 'chart-cold.dat')
    with open(dat, 'w') as f:
        f.write('# cell ' + ' '.join(x.id for x in run_cfgs) + '  (requests/s, medians)\n')
        for s, n in cells:
            vals = []
            for x in run_cfgs:
                v = (med.get(('cached', x.id, s, n)) or {}).get('req_per_s')
                vals.append('%.6g' % v if v is not None else 'NaN')
            f.write('"%s, %d conns" %s\n' % (size_label(s), n, ' '.join(vals)))
    with open(cdat, 'w') as f:
        f.write('# config small-request p99 ms (cold streams running)\n')
        for i, x in enumerate(run_cfgs):
            v = (med.get(('cold', x.id, opts.cold_small, opts.cold_conns)) or {}).get('p99_us')
            f.write('%d "%s" %s %d\n' % (i, x.label, '%.6g' % (v / 1000.0)
                                         if v is not None else 'NaN',
                                         int(colors[i % len(colors)][1:], 16)))
    body = ['set multiplot layout 1,2 title %s' % c.gp_quote(
        'ringserve vs nginx, wrk (%s; medians of %d)' % (opts.host_desc, opts.repeat))]
    body += ['set style data histogram', 'set style histogram clustered gap 1',
             'set style fill solid 0.85 border -1', 'set boxwidth 0.9',
             'set grid ytics', 'set yrange [0:*]', 'set xtics rotate by -20 font ",9"',
             'set key top right font ",9"', 'set datafile missing "NaN"',
             'set title "cached file: requests/s"', 'set ylabel "requests/s"']
    if any(v is not None for v in (
            (med.get(('cached', x.id, s, n)) or {}).get('req_per_s')
            for x in run_cfgs for s, n in cells)):
        plots = ["'%s' using %d:xtic(1) title %s lc rgb %s" % (
            dat, i + 2, c.gp_quote(x.label), c.gp_quote(colors[i % len(colors)]))
            for i, x in enumerate(run_cfgs)]
        body.append('plot ' + ', \\\n     '.join(plots))
    else:
        body += ['set label 1 "not run" at graph 0.5,0.5 center', 'set xrange [0:1]',
                 'set yrange [0:1]', 'plot -1 notitle', 'unset label 1']
    body += ['unset style', 'set style fill solid 0.85 border -1', 'set boxwidth 0.6',
             'set logscale y', 'set yrange [*:*]', 'set xrange [-0.6:%g]' % (
                 len(run_cfgs) - 0.4),
             'set title "cold files streaming: p99 of small requests (log scale)"',
             'set ylabel "p99 ms"', 'set key off']
    if any((med.get(('cold', x.id, opts.cold_small, opts.cold_conns)) or {}).get('p99_us')
           for x in run_cfgs):
        body.append("plot '%s' using 1:3:4:xtic(2) with boxes lc rgb variable" % cdat)
    else:
        body += ['unset logscale y', 'set label 2 "not run" at graph 0.5,0.5 center',
                 'set xrange [0:1]', 'set yrange [0:1]', 'plot -1 notitle', 'unset label 2']
    body.append('unset multiplot')
    script = ['# generated by tools/compare --http; run: gnuplot chart.gp']
    script += ['set terminal pngcairo size 1500,620 noenhanced font "sans,10"',
               "set output '%s'" % os.path.join(out, 'chart.png')] + body
    script += ['set terminal svg size 1500,620 noenhanced font "sans,10" background "white"',
               "set output '%s'" % os.path.join(out, 'chart.svg')] + body
    script += ['set output']
    gpf = os.path.join(out, 'chart.gp')
    with open(gpf, 'w') as f:
        f.write('\n'.join(script) + '\n')
    gnuplot = shutil.which('gnuplot')
    if not gnuplot:
        return 'gnuplot not found (apt-get install gnuplot-nox); chart.gp written'
    rc, _, err = run([gnuplot, gpf], timeout=60)
    if rc != 0:
        return 'gnuplot failed: ' + err.strip()[-300:]
    return None


# ------------------------------------------------------------- main

def parse_args(c, argv):
    import argparse
    ap = argparse.ArgumentParser(
        prog='compare --http',
        description='wrk against ringserve --protocol=http (uring, epoll-et with the '
        'file worker pool, epoll --fs=inline) and nginx (sendfile on/off): cached '
        'files, then small requests next to cold-file streams. Writes report.md, '
        'results.csv, chart.png, chart.svg. See docs/compare.md.')
    ap.add_argument('--smoke', action='store_true',
                    help='a few seconds in all: 1 KiB only, 8 connections, 1 s runs, '
                    'small cold files (for the test)')
    ap.add_argument('--configs', help='comma-separated ids (default all): ' +
                    ', '.join(x.id for x in all_configs()))
    ap.add_argument('--files', help='cached file sizes (default 1K,1M)')
    ap.add_argument('--conns', help='connection counts (default 50,500)')
    ap.add_argument('--repeat', type=int, help='repeats per cell (default 3)')
    ap.add_argument('--duration', type=float, help='measured seconds per run (default 5; '
                    'wrk rounds to whole seconds, --latency\'s ringbench does not)')
    ap.add_argument('--warmup', type=float, help='warm-up seconds per run (default 1)')
    ap.add_argument('--no-cached', dest='cached', action='store_false',
                    help='skip the cached-file matrix')
    ap.add_argument('--no-cold', dest='cold', action='store_false',
                    help='skip the cold-file experiment')
    ap.add_argument('--cold-files', type=int, help='large cold files (default 16)')
    ap.add_argument('--cold-size', help='size of each (default 64M)')
    ap.add_argument('--cold-range', help='bytes per cold request, a random range of a '
                    'cold file (default 256K; 0: whole files, sequential)')
    ap.add_argument('--cold-streams', type=int, help='connections streaming them (default 8)')
    ap.add_argument('--cold-conns', type=int,
                    help='connections measuring small requests meanwhile (default 50)')
    ap.add_argument('--data-dir', help='document root, reused between runs '
                    '(default /var/tmp/ringserve-http-bench)')
    ap.add_argument('--out', help='output directory (default out/compare-http-DATE-TIME)')
    ap.add_argument('--ringserve', help='ringserve binary (default build/ringserve)')
    ap.add_argument('--ringserve-args', default='',
                    help='more arguments for every ringserve configuration, e.g. '
                    '"--buffers=8192"')
    ap.add_argument('--ringbench', help='ringbench binary, for --latency (default '
                    'build/tools/ringbench)')
    ap.add_argument('--baseline', metavar='BIN',
                    help='another ringserve binary (the previous build): every ringserve '
                    'configuration also runs with it as old-ID, interleaved in the same '
                    'repeats')
    ap.add_argument('--wrk', help='wrk binary (default: wrk in PATH, installed if missing)')
    ap.add_argument('--nginx', help='nginx binary (default: nginx in PATH or /usr/sbin)')
    bench_cost.add_arguments(ap)
    openloop.add_arguments(ap)
    ap.add_argument('--dry-run', action='store_true', help='print the plan and exit')
    return ap.parse_args(argv)


def main(c, argv):
    """argv: the command line without the program name and without --http."""
    opts = parse_args(c, argv)
    cmdline = 'tools/compare --http ' + ' '.join(shlex.quote(a) for a in argv)
    cfgs_all = all_configs()
    by_id = {x.id: x for x in cfgs_all}
    if opts.configs:
        ids = []
        for part in opts.configs.split(','):
            part = part.strip()
            if part == 'all':
                ids += list(by_id)
            elif part in by_id:
                ids.append(part)
            elif part:
                c.die('--configs: unknown configuration %r (known: %s)' % (
                    part, ', '.join(by_id)))
    elif opts.latency:
        ids = LATENCY_IDS
    else:
        ids = [x.id for x in cfgs_all if x.default]
    cfgs = [x for x in cfgs_all if x.id in ids]
    if opts.latency and not opts.configs:
        cfgs = [by_id[i] for i in LATENCY_IDS]   # auto and normal side by side
    if opts.baseline:
        if not (os.path.isfile(opts.baseline) and os.access(opts.baseline, os.X_OK)):
            c.die('--baseline: not found or not executable: %s' % opts.baseline)
        cfgs = with_baseline(cfgs, os.path.abspath(opts.baseline))
    sm = opts.smoke
    opts.ringserve_args = shlex.split(opts.ringserve_args)
    lat = opts.latency
    opts.files = c.int_list(opts.files, 'files') if opts.files else (
        [KIB] if sm or lat else [KIB, MIB])
    opts.conns = c.int_list(opts.conns, 'conns') if opts.conns else (
        [8] if sm else [50] if lat else [50, 500])
    opts.repeat = opts.repeat or (1 if sm else openloop.LATENCY_REPEAT if lat else 3)
    if lat:
        opts.cached, opts.cold = True, False
        try:
            opts.loads = openloop.parse_loads(opts.loads or '0.5,0.9')
            opts.placements = openloop.placements_from(opts.placements)
            opts.gate = openloop.gate_from(opts, smoke=sm)
        except ValueError as e:
            c.die(str(e))
    opts.duration = opts.duration or (1.0 if sm else 5.0)
    if opts.warmup is None:
        opts.warmup = 0 if sm else 1.0
    opts.cold_files = opts.cold_files or (2 if sm else 16)
    opts.cold_size = c.int_list(opts.cold_size, 'cold-size')[0] if opts.cold_size else (
        4 * MIB if sm else 64 * MIB)
    opts.cold_streams = opts.cold_streams or (2 if sm else 8)
    opts.cold_range = (0 if opts.cold_range in ('0', '0K', '0M') else
                       c.int_list(opts.cold_range, 'cold-range')[0]) if opts.cold_range else (
        64 * KIB if sm else 256 * KIB)
    if opts.cold_range > opts.cold_size:
        c.die('--cold-range must not exceed --cold-size')
    opts.cold_conns = opts.cold_conns or (4 if sm else 50)
    opts.cold_small = KIB
    if opts.repeat < 1 or opts.duration <= 0 or opts.warmup < 0:
        c.die('--repeat must be >= 1, --duration > 0, --warmup >= 0')
    opts.data_dir = os.path.abspath(opts.data_dir or '/var/tmp/ringserve-http-bench')
    cpus = sorted(os.sched_getaffinity(0))
    opts.server_cpu = cpus[0]
    opts.client_cpu = cpus[1] if len(cpus) > 1 else cpus[0]

    exps = (['cached'] if opts.cached else []) + (['cold'] if opts.cold else [])
    nruns = len(cfgs) * opts.repeat * (
        (len(opts.files) * len(opts.conns) if opts.cached else 0) + (1 if opts.cold else 0))
    if lat and opts.dry_run:
        n = (len(cfgs) * len(opts.files) * len(opts.conns) * len(opts.placements) *
             opts.repeat * (1 + len(opts.loads)))
        print('latency table: %d configurations x %d cells x placements %s x %d repeats '
              'x (capacity + loads %s) = %d runs, about %.0f min (plus any wait for a '
              'quiet machine)' % (len(cfgs), len(opts.files) * len(opts.conns),
                                  ','.join(opts.placements), opts.repeat,
                                  ','.join(openloop.load_name(f) for f in opts.loads), n,
                                  n * (opts.duration + opts.warmup + 1.5) / 60))
        for x in cfgs:
            print('  %-22s sched %-15s %s%s' % (x.id, http_sched(x), x.label,
                                               (' (%s)' % x.binary) if x.binary else ''))
        return 0
    if opts.dry_run:
        print('%d configurations, experiments %s: %d runs, about %.0f min' % (
            len(cfgs), '+'.join(exps), nruns,
            nruns * (opts.duration + opts.warmup + 2.5) / 60))
        for x in cfgs:
            print('  %-22s %s%s' % (x.id, x.label, (' (%s)' % x.binary) if x.binary else ''))
        return 0

    need_ringserve = any(x.kind == 'ringserve' for x in cfgs)
    if need_ringserve:
        opts.ringserve = c.find_binary(opts.ringserve, 'ringserve', 'ringserve')
    if lat:
        opts.ringbench = c.find_binary(opts.ringbench, os.path.join('tools', 'ringbench'),
                                       'ringbench')
        opts.wrk = opts.wrk or 'wrk'  # not used: ringbench is the client
    ensure_tools(c, opts, any(x.kind == 'nginx' for x in cfgs))

    started = datetime.datetime.now()
    out = opts.out or os.path.join('out', 'compare-http-' + started.strftime('%Y%m%d-%H%M%S'))
    os.makedirs(out, exist_ok=True)
    opts.logdir = os.path.abspath(os.path.join(out, 'logs'))
    os.makedirs(opts.logdir, exist_ok=True)
    opts.lua_done = os.path.join(out, 'done.lua')
    opts.lua_paths = os.path.join(out, 'stream.lua')
    with open(opts.lua_done, 'w') as f:
        f.write(LUA_DONE)
    with open(opts.lua_paths, 'w') as f:
        f.write(LUA_PATHS + LUA_DONE)
    try:
        opts.load_start = ' '.join('%.2f' % x for x in os.getloadavg())
    except OSError:
        opts.load_start = '?'
    opts.host_desc = '%s, %d CPUs' % (os.uname().release, os.cpu_count() or 0)

    c.note('document root %s (files written once, reused)' % opts.data_dir)
    root = make_docroot(opts)

    for x in cfgs:
        srv = start_server(c, opts, x, root)
        err = srv.wait_ready()
        srv.stop()
        srv.discard_log()
        if err:
            x.skip = err
            c.note('skipping %s: %s' % (x.label, err))
    run_cfgs = [x for x in cfgs if not x.skip]
    if lat:
        return latency_mode(c, opts, cfgs, run_cfgs, root, out, cmdline, started)
    c.note('%d configurations, %d runs' % (len(run_cfgs), nruns))

    runs = []
    k = 0
    for rep in range(opts.repeat):
        order = run_cfgs[rep % max(1, len(run_cfgs)):] + run_cfgs[:rep % max(1, len(run_cfgs))]
        for exp in exps:
            cells = ([(s, n) for s in opts.files for n in opts.conns] if exp == 'cached'
                     else [(opts.cold_small, opts.cold_conns)])
            for s, n in cells:
                for x in order:
                    k += 1
                    rec = measure(c, opts, x, root, exp, s, n)
                    rec['rep'] = rep + 1
                    runs.append(rec)
                    c.note('[%d/%d] %s %s %s %d conns: %s' % (
                        k, nruns, exp, x.label, size_label(s), n,
                        'ERROR ' + rec['error'] if rec['status'] != 'ok' else
                        '%.0f req/s, p99 %.2f ms, %.1f us CPU/req' % (
                            rec['req_per_s'], rec['p99_us'] / 1000.0,
                            rec['server_us_per_req'] or 0)))
    med = medians(runs)
    cost_rows = []
    if opts.costs == 'on' and opts.cached:
        if opts.callgrind == 'on' and not bench_cost.have_callgrind():
            c.note('valgrind/callgrind_control not installed: no instruction counts')
            opts.callgrind = 'off'
        bench_cost.calibrate(opts, c.note)
        cost_rows = costs_pass(c, opts, run_cfgs, root)
        bench_cost.write_csv(os.path.join(out, 'costs.csv'), cost_rows,
                             bench_cost.CSV_FIELDS)
    finished = datetime.datetime.now()
    write_csv(os.path.join(out, 'results.csv'), runs, med)
    write_report(os.path.join(out, 'report.md'), opts, cfgs, med, cmdline, started, finished)
    if cost_rows:
        with open(os.path.join(out, 'report.md'), 'a') as f:
            f.write('\n' + '\n'.join(costs_report(opts, cost_rows)) + '\n')
    cerr = write_chart(c, out, opts, cfgs, med)
    if cerr:
        c.note(cerr)
    c.note('wrote %s/report.md, results.csv, chart.png, chart.svg' % out)
    failed = [m for m in list(med.values()) + cost_rows if m['status'] != 'ok']
    return 1 if failed or not run_cfgs else 0
