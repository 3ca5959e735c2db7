#!/usr/bin/env python3
"""Interleaved A/B, split placement (server CPU 0, ringbench CPU 1), fixed work after a warm-up.
usage: ab.py CONNS ROUNDS REPS NAME=cmd... (cmd with PORT; ';'-free, space separated)
Per run: server started, warm-up ringbench (CONNS x ROUNDS/4), then the measured ringbench
(CONNS x ROUNDS) under perf stat -p; reports medians per name of per-round-trip figures."""
import json, os, signal, socket, subprocess, sys, time, statistics
conns, rounds, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cfgs = [a.split('=', 1) for a in sys.argv[4:]]
RB = os.environ.get('RB', 'build/tools/ringbench')
EV = os.environ.get('EV', 'raw_syscalls:sys_enter,sched:sched_switch,io_uring:io_uring_cqring_wait,io_uring:io_uring_local_work_run,io_uring:io_uring_complete,io_uring:io_uring_submit_req,timer:hrtimer_start,sched:sched_waking').split(',')
def freeport():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p
def rt(pid):
    return sum(int(open(f'/proc/{pid}/task/{t}/schedstat').read().split()[0]) for t in os.listdir(f'/proc/{pid}/task'))
def bench(port, n):
    r = subprocess.run(['taskset', '-c', '1', RB, f'--connect=127.0.0.1:{port}', f'--connections={conns}',
                        '--size=64', f'--rounds={n}', '--json', '--quiet'], stdout=subprocess.PIPE)
    return json.loads(r.stdout)
def one(cmd):
    port = freeport()
    srv = subprocess.Popen(['taskset', '-c', '0'] + [c.replace('PORT', str(port)) for c in cmd.split()],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try: socket.create_connection(('127.0.0.1', port)).close(); break
        except OSError: time.sleep(0.02)
    bench(port, max(1, rounds // 4))
    global runno
    runno = globals().get('runno', 0) + 1
    if os.environ.get('REC'):
        perf = subprocess.Popen(['perf', 'record', '-q', '-e', 'cpu-clock', '-F', '8000', '-g', '-p', str(srv.pid), '-o', f"{os.environ['REC']}/{cmd.split()[0].split('/')[-1]}-{runno}.data"], stderr=subprocess.PIPE, text=True)
    else:
        perf = subprocess.Popen(['perf', 'stat', '-x,', '-e', ','.join(EV), '-p', str(srv.pid)], stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    r0 = rt(srv.pid); w0 = time.time()
    j = bench(port, rounds)
    r1 = rt(srv.pid); w1 = time.time()
    perf.send_signal(signal.SIGINT); _, perr = perf.communicate()
    srv.send_signal(signal.SIGINT)
    try: srv.wait(timeout=10)
    except subprocess.TimeoutExpired: srv.kill(); srv.wait()
    req = conns * rounds
    d = {'cpu_us': (r1 - r0) / 1e3 / req, 'rt/s': j.get('rtt_per_s', 0), 'busy': (r1 - r0) / 1e9 / (w1 - w0)}
    for l in perr.splitlines():
        p = l.split(',')
        if len(p) > 3 and p[0].replace('.', '').isdigit():
            d[p[2].split(':')[-1]] = float(p[0]) / req
    return d
res = {n: [] for n, _ in cfgs}
for i in range(reps):
    order = cfgs if i % 2 == 0 else cfgs[::-1]
    for n, c in order:
        d = one(c); res[n].append(d)
        print(f"rep {i} {n:10s} " + ' '.join(f"{k}={v:.4g}" for k, v in d.items()), flush=True)
print(f"== medians of {reps}, {conns} conns x {rounds} rounds (loaded machine)")
for n, _ in cfgs:
    ks = res[n][0].keys()
    print(f"{n:10s} " + ' '.join(f"{k}={statistics.median(x[k] for x in res[n]):.4g}" for k in ks))
