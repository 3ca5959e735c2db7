#!/usr/bin/env python3
# task-work items per round trip (io_uring_local_work_run count field), split placement.
import os, re, signal, socket, subprocess, sys, time
conns, rounds = int(sys.argv[1]), int(sys.argv[2]); cmd = sys.argv[3]
RB = os.environ.get('RB', 'build/tools/ringbench')
s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
srv = subprocess.Popen(['taskset', '-c', '0'] + cmd.replace('PORT', str(port)).split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(0.5)
def bench(n): subprocess.run(['taskset', '-c', '1', RB, f'--connect=127.0.0.1:{port}', f'--connections={conns}', '--size=64', f'--rounds={n}', '--quiet'], stdout=subprocess.DEVNULL)
bench(rounds // 4)
p = subprocess.Popen(['perf', 'record', '-q', '-e', 'io_uring:io_uring_local_work_run', '-p', str(srv.pid), '-o', '/tmp/echosplit-lw.data'], stderr=subprocess.DEVNULL)
time.sleep(0.3); bench(rounds); p.send_signal(signal.SIGINT); p.wait()
srv.terminate(); srv.wait()
out = subprocess.run(['perf', 'script', '-i', '/tmp/echosplit-lw.data'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
n = c = l = 0; hist = {}
for line in out.splitlines():
    m = re.search(r'count (-?\d+), loops (\d+)', line)
    if m: n += 1; c += int(m.group(1)); l += int(m.group(2)); k = min(int(m.group(1)), 20); hist[k] = hist.get(k, 0) + 1
req = conns * rounds
print(f"runs/rt {n/req:.4f} items/rt {c/req:.4f} loops/rt {l/req:.4f} items/run {c/max(n,1):.2f} hist {sorted(hist.items())}")
