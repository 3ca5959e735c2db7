#!/usr/bin/env python3
# groups.py DIR NAME RT_PER_RUN: inclusive (children) us/rt of key kernel paths, pooled over DIR/NAME-*.data
import collections, glob, re, subprocess, sys
d, name, rtper = sys.argv[1], sys.argv[2], float(sys.argv[3])
syms = ['entry_SYSCALL_64_after_hwframe', '__do_sys_io_uring_enter', 'io_submit_sqes', 'io_send', 'tcp_sendmsg_locked', 'net_rx_action',
        'sock_def_readable', 'io_cqring_wait', 'io_run_local_work', '__io_run_local_work_loop', 'io_poll_task_func', 'io_recv', 'tcp_recvmsg', 'schedule', 'finish_task_switch.isra.0', 'skb_defer_free_flush', 'io_fill_cqe_req', '__io_submit_flush_completions', 'fget', 'fput']
tot = collections.Counter(); allc = 0; user = 0; files = glob.glob(f'{d}/{name}-*.data')
for f in files:
    out = subprocess.run(['perf', 'report', '-i', f, '--children', '--sort', 'sym', '-q', '--stdio', '-g', 'none', '-n'], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    rows = []
    for l in out.splitlines():
        m = re.match(r'\s*([\d.]+)%\s+([\d.]+)%\s+(\d+)\s+\[(.)\]\s+(\S+)', l)
        if m: rows.append((float(m.group(1)), float(m.group(2)), int(m.group(3)), m.group(4), m.group(5)))
    n = sum(r[2] for r in rows)
    allc += n
    for ch, se, s, k, sym in rows:
        if sym in syms: tot[sym] += ch / 100 * n
        if k == '.': user += s
k = 1e6 / 8000 / (rtper * len(files))
print(f'{name}: total {allc*k:.3f} us/rt, user self {user*k:.3f}')
for s in syms: print(f'  {s:34s} {tot[s]*k:.3f}')
