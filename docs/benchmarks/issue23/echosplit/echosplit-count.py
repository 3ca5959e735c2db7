#!/usr/bin/env python3
"""Per-round-trip kernel event counts, split placement (server CPU 0, ringbench CPU 1),
fixed work: CONNS x ROUNDS round trips. usage: count.py NAME CONNS ROUNDS -- server cmd with PORT
env EVENTS= extra perf events (comma list); PERFREC=file: perf record -e cpu-clock -g instead"""
import json, os, signal, socket, subprocess, sys, time
name, conns, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cmd = sys.argv[sys.argv.index('--') + 1:]
RB = os.environ.get('RB', 'build/tools/ringbench')
s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()
cmd = [c.replace('PORT', str(port)) for c in cmd]
srv = subprocess.Popen(['taskset', '-c', '0'] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
for _ in range(300):
    try:
        socket.create_connection(('127.0.0.1', port)).close(); break
    except OSError: time.sleep(0.02)
EV = ('raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,io_uring:io_uring_submit_req,'
      'io_uring:io_uring_complete,io_uring:io_uring_task_add,io_uring:io_uring_poll_arm,'
      'io_uring:io_uring_queue_async_work,io_uring:io_uring_cqring_wait,io_uring:io_uring_local_work_run,'
      'io_uring:io_uring_task_work_run,io_uring:io_uring_cqe_overflow,sched:sched_switch,sched:sched_waking,'
      'timer:hrtimer_start,tcp:tcp_probe,skb:kfree_skb,skb:consume_skb,net:net_dev_xmit,tcp:tcp_rcv_space_adjust')
if os.environ.get('EVENTS'): EV += ',' + os.environ['EVENTS']
if os.environ.get('PERFREC'):
    perf = subprocess.Popen(['perf', 'record', '-q', '-e', 'cpu-clock', '-F', '8000', '-g', '-p', str(srv.pid), '-o', os.environ['PERFREC']],
                            stderr=subprocess.DEVNULL)
else:
    EVL = ['-e', EV, '-e', 'sock:sock_recv_length', '--filter', 'ret < 0', '-e', 'sock:sock_recv_length', '-e', 'sock:sock_send_length', '-e', 'sock:sk_data_ready', '-e', 'irq:softirq_entry', '-e', 'irq:softirq_raise', '-e', 'net:netif_rx', '-e', 'skb:skb_copy_datagram_iovec', '-e', 'io_uring:io_uring_file_get', '-e', 'syscalls:sys_enter_setsockopt']
    perf = subprocess.Popen(['perf', 'stat', '-x,'] + EVL + ['-p', str(srv.pid)], stderr=subprocess.PIPE, text=True)
time.sleep(0.5)
def cpu(pid):
    f = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return int(f[11]), int(f[12])
def rt(pid):
    return sum(int(open(f'/proc/{pid}/task/{t}/schedstat').read().split()[0]) for t in os.listdir(f'/proc/{pid}/task'))
def sw(pid):
    a = [0, 0, 0]
    for t in os.listdir(f'/proc/{pid}/task'):
        ss = open(f'/proc/{pid}/task/{t}/schedstat').read().split()
        a[2] += int(ss[1])
        for l in open(f'/proc/{pid}/task/{t}/status'):
            if l.startswith('voluntary_ctxt_switches:'): a[0] += int(l.split()[1])
            if l.startswith('nonvoluntary_ctxt_switches:'): a[1] += int(l.split()[1])
    return a
u0, k0 = cpu(srv.pid); r0 = rt(srv.pid); s0 = sw(srv.pid); w0 = time.time()
rb = subprocess.run(['taskset', '-c', '1', RB, f'--connect=127.0.0.1:{port}', f'--connections={conns}',
                     '--size=64', f'--rounds={rounds}', '--json', '--quiet'], stdout=subprocess.PIPE)
u1, k1 = cpu(srv.pid); r1 = rt(srv.pid); s1 = sw(srv.pid); w1 = time.time()
perf.send_signal(signal.SIGINT)
_, perr = perf.communicate()
srv.send_signal(signal.SIGINT)
try: _, serr = srv.communicate(timeout=10)
except subprocess.TimeoutExpired: srv.kill(); _, serr = srv.communicate()
r = json.loads(rb.stdout)
req = conns * rounds
tck = os.sysconf('SC_CLK_TCK')
out = [f"{name} c={conns} rt={req} rt/s={r.get('rtt_per_s',0):.0f} usr_us/rt={(u1-u0)*1e6/tck/req:.2f} sys_us/rt={(k1-k0)*1e6/tck/req:.2f} run_us/rt={(r1-r0)/1e3/req:.2f} busy={(r1-r0)/1e9/(w1-w0):.2f} wall={w1-w0:.2f} vcs/rt={(s1[0]-s0[0])/req:.4f} ivcs/rt={(s1[1]-s0[1])/req:.4f} rqwait={(s1[2]-s0[2])/1e9/(w1-w0):.2f}"]
if not os.environ.get('PERFREC'):
    for l in perr.splitlines():
        p = l.split(',')
        if len(p) > 3 and p[0].replace('.', '').isdigit():
            out.append(f"  {p[2]:45s} {float(p[0])/req:8.4f}")
print('\n'.join(out), flush=True)
if os.environ.get('SHOWERR'): print(serr.decode()[-3000:])
