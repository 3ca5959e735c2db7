"""Costs that travel: what a server spends per request in units that mean
the same on another machine, shared by tools/compare's echo, proxy and
HTTP modes (standard library only).

Time per request depends on the machine: on the 2-vCPU PVM guest these
tools were written on, one system call costs about 1 us, where bare metal
pays about a tenth of that, so a CPU-time ratio favours whichever server
makes fewer system calls. Counts do not depend on the machine (nor much on
its load): system calls per request (the raw_syscalls:sys_enter
tracepoint, every thread), context switches per request (/proc, every
thread), user-space instructions per request (callgrind) and how the CPU
time splits between user and kernel. From those and this machine's
measured syscall cost, `bare_metal_us` estimates the CPU per request on a
machine whose syscalls cost REFERENCE_SYSCALL_US:

    estimate = cpu_us - syscalls * (measured_syscall_us - REFERENCE_SYSCALL_US)

It is an estimate: it assumes a syscall's extra cost here is all entry and
exit overhead (true for the virtualisation tax the difference is about), and
it leaves the rest of the kernel's work as measured.
"""

import glob
import os
import re
import signal
import subprocess
import time

# The reference: the cost of a null system call (getppid) on current
# bare-metal x86-64 with the default Spectre/Meltdown mitigations, about
# 0.1 us. Sources: lmbench's `lat_syscall null` reports 0.04-0.1 us on
# recent hardware; Brendan Gregg, "KPTI/KAISER Meltdown Initial Performance
# Regressions" (2018) measures the mitigations adding ~0.1 us per call on
# top of the ~0.05 us before them. The range is 0.05-0.2 us; change
# it with --ref-syscall-us.
REFERENCE_SYSCALL_US = 0.1
REFERENCE_SOURCE = ('null syscall on bare-metal x86-64 with default mitigations: '
                    'lmbench lat_syscall null 0.04-0.1 us; KPTI adds ~0.1 us '
                    '(B. Gregg, "KPTI/KAISER Meltdown Initial Performance '
                    'Regressions", 2018)')

CALIBRATION_CALLS = 1000000
# ringbench against a server under valgrind, which runs ~50x slower: a
# second without a reply is no stall there.
VALGRIND_STALL = '--stall-timeout=30'


def syscall_cost_us(calls=CALIBRATION_CALLS):
    """This machine's cost of one getppid() system call, in microseconds:
    CPU time of `calls` getppid()s minus the same loop around a builtin that
    makes no system call. CPU time (not wall time), so being descheduled by
    a neighbour does not count; the best of three rounds."""
    best = None
    getppid = os.getppid
    nosys = abs
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(calls // 3):
            getppid()
        t1 = time.process_time()
        for _ in range(calls // 3):
            nosys(1)
        t2 = time.process_time()
        us = ((t1 - t0) - (t2 - t1)) * 1e6 / (calls // 3)
        best = us if best is None else min(best, us)
    return max(best, 0.0)


# ------------------------------------------------------- /proc usage

def _task_ctxsw(pid):
    total = 0
    try:
        tids = os.listdir('/proc/%d/task' % pid)
    except OSError:
        return None
    for tid in tids:
        try:
            with open('/proc/%d/task/%s/status' % (pid, tid)) as f:
                for line in f:
                    if line.startswith(('voluntary_ctxt_switches:',
                                        'nonvoluntary_ctxt_switches:')):
                        total += int(line.split(':')[1])
        except (OSError, ValueError):
            pass
    return total


def usage(pids):
    """(user_s, sys_s, ctxsw) summed over processes (all their threads);
    None when one is gone."""
    hz = os.sysconf('SC_CLK_TCK')
    u = s = c = 0
    for pid in pids:
        try:
            with open('/proc/%d/stat' % pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            return None
        u += int(fields[11])
        s += int(fields[12])
        n = _task_ctxsw(pid)
        if n is None:
            return None
        c += n
    return u / hz, s / hz, c


class Window:
    """The server's syscalls (perf, counters enabled only inside the
    window), CPU split and context switches between start() and stop()."""

    def __init__(self, pids, use_perf=True):
        self.pids = list(pids)
        self.perf = None
        self.u0 = None
        if use_perf:
            self._start_perf()

    def _start_perf(self):
        ctl_r, ctl_w = os.pipe()
        ack_r, ack_w = os.pipe()
        try:
            self.perf = subprocess.Popen(
                ['perf', 'stat', '-e', 'raw_syscalls:sys_enter', '-x,', '-D', '-1',
                 '-p', ','.join(str(p) for p in self.pids),
                 '--control', 'fd:%d,%d' % (ctl_r, ack_w)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, pass_fds=(ctl_r, ack_w),
                universal_newlines=True)
        except OSError:
            self.perf = None
        os.close(ctl_r)
        os.close(ack_w)
        self.ctl, self.ack = ctl_w, ack_r
        if self.perf is None:
            os.close(ctl_w)
            os.close(ack_r)

    def _perf_cmd(self, cmd):
        """Send a control command; True once perf acknowledged it."""
        if self.perf is None:
            return False
        try:
            os.write(self.ctl, (cmd + '\n').encode())
            return os.read(self.ack, 64).startswith(b'ack')
        except OSError:
            return False

    def start(self):
        if not self._perf_cmd('enable') and self.perf is not None:
            self._close_perf()
        self.u0 = usage(self.pids)

    def _close_perf(self):
        text = ''
        if self.perf is not None:
            try:
                self.perf.send_signal(signal.SIGINT)
                _, text = self.perf.communicate(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.perf.kill()
                self.perf.wait()
            os.close(self.ctl)
            os.close(self.ack)
            self.perf = None
        return text

    def stop(self):
        """{'user_s', 'sys_s', 'ctxsw', 'syscalls'} over the window (None
        for what could not be measured)."""
        u1 = usage(self.pids)
        ok = self._perf_cmd('disable')
        text = self._close_perf()
        rec = {'user_s': None, 'sys_s': None, 'ctxsw': None, 'syscalls': None}
        if self.u0 and u1:
            rec.update(user_s=u1[0] - self.u0[0], sys_s=u1[1] - self.u0[1],
                       ctxsw=u1[2] - self.u0[2])
        if ok:
            for line in text.splitlines():
                parts = line.split(',')
                if len(parts) > 2 and parts[2].startswith('raw_syscalls:sys_enter'):
                    try:
                        rec['syscalls'] = int(float(parts[0]))
                    except ValueError:
                        pass
        return rec


# ------------------------------------------------------- derived columns

# The columns every mode adds, per request (round trip for echo/proxy).
COLUMNS = ['syscalls_per_req', 'ctxsw_per_req', 'user_us_per_req', 'sys_us_per_req',
           'instr_per_req', 'bare_metal_us_per_req', 'syscall_us']


def per_request(totals, n, syscall_us, ref_us=REFERENCE_SYSCALL_US):
    """The per-request columns from a window's totals over n requests."""
    out = dict.fromkeys(COLUMNS)
    out['syscall_us'] = syscall_us
    if not n:
        return out
    if totals.get('syscalls') is not None:
        out['syscalls_per_req'] = totals['syscalls'] / n
    if totals.get('ctxsw') is not None:
        out['ctxsw_per_req'] = totals['ctxsw'] / n
    if totals.get('user_s') is not None:
        out['user_us_per_req'] = totals['user_s'] * 1e6 / n
        out['sys_us_per_req'] = totals['sys_s'] * 1e6 / n
    out['bare_metal_us_per_req'] = bare_metal_us(
        (out['user_us_per_req'] or 0) + (out['sys_us_per_req'] or 0)
        if out['user_us_per_req'] is not None else None,
        out['syscalls_per_req'], syscall_us, ref_us)
    return out


def bare_metal_us(cpu_us, syscalls, syscall_us, ref_us=REFERENCE_SYSCALL_US):
    """CPU per request with this machine's syscall overhead replaced by the
    reference's (never below zero); None when an input is missing."""
    if cpu_us is None or syscalls is None or syscall_us is None:
        return None
    return max(0.0, cpu_us - syscalls * max(0.0, syscall_us - ref_us))


# ------------------------------------------------------- callgrind

def callgrind_prefix(outfile):
    """Put this before a server's argv to count its user instructions.
    Instrumentation runs from the start, but the counts are zeroed and
    dumped around the measured window (callgrind_control), so start-up and
    shutdown are not counted; a signal may never reach an io_uring server
    under valgrind, so it is stopped with SIGKILL after the last dump."""
    return ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + outfile,
            '--dump-line=no', '--compress-strings=no']


def callgrind_zero(pid):
    return _callgrind_control(['-z', str(pid)])


def _callgrind_control(args):
    try:
        p = subprocess.run(['callgrind_control'] + args, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=60)
        return p.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def dump_parts(outfile):
    return sorted(glob.glob(glob.escape(outfile) + '.*'),
                  key=lambda p: int(p.rsplit('.', 1)[1])
                  if p.rsplit('.', 1)[1].isdigit() else -1)


def callgrind_dump(pid, outfile):
    """Dump the counts since the last zero; the instructions (Ir) in that
    dump, or None."""
    before = set(dump_parts(outfile))
    if not _callgrind_control(['-d', str(pid)]):
        return None
    for _ in range(200):
        new = [p for p in dump_parts(outfile) if p not in before]
        if new:
            return read_total(new[-1])
        time.sleep(0.05)
    return None


def read_total(path):
    """The total Ir of a callgrind output file ('summary:' or 'totals:')."""
    tries = 0
    while tries < 40:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            text = ''
        m = re.search(r'^(?:summary|totals):\s+(\d+)', text, re.M)
        if m:
            return int(m.group(1))
        tries += 1
        time.sleep(0.05)  # still being written
    return None


def fmt(v, digits=2):
    if v is None:
        return '—'
    if abs(v) >= 1000:
        return '{:,.0f}'.format(v)
    return '%.*f' % (digits, v)


def sched_of(args):
    """The --sched policy a ringserve command line runs with (its default
    is normal, the kernel's); for another server, the kernel's (normal)."""
    for a in args:
        if a.startswith('--sched='):
            return a.split('=', 1)[1]
    return 'normal'


def report_lines(title, unit, placement, syscall_us, rows, ref_us=REFERENCE_SYSCALL_US,
                 instr_note=None):
    """A Markdown section: one row per (label, sched, cell, per-request
    columns + cpu_us). `unit` names what a request is."""
    L = ['## %s' % title, '',
         'Per %s, medians. Placement: %s. This machine\'s syscall cost: '
         '**%s us** (getppid x %d, CPU time, best of 3); the bare-metal '
         'estimate replaces it by a reference of %s us (%s) — '
         '**an estimate**, not a measurement: CPU - syscalls x (%s - %s).' % (
             unit, placement, fmt(syscall_us, 3), CALIBRATION_CALLS, fmt(ref_us, 3),
             REFERENCE_SOURCE, fmt(syscall_us, 3), fmt(ref_us, 3)), '']
    if instr_note:
        L += [instr_note, '']
    L.append('| server | sched | cell | syscalls | ctx switches | user µs | kernel µs '
             '| CPU µs | user instructions | bare-metal est. µs |')
    L.append('|---|---|---|---|---|---|---|---|---|---|')
    for label, sched, cell, d in rows:
        L.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            label, sched, cell, fmt(d.get('syscalls_per_req')),
            fmt(d.get('ctxsw_per_req')), fmt(d.get('user_us_per_req')),
            fmt(d.get('sys_us_per_req')), fmt(d.get('cpu_us')),
            fmt(d.get('instr_per_req'), 0), fmt(d.get('bare_metal_us_per_req'))))
    L.append('')
    return L


def ringbench_instructions(ringbench, port, pid, outfile, conns, size, preexec=None,
                           round_trips=2000):
    """User instructions per round trip of a callgrind-traced server at
    127.0.0.1:port: two fixed-count ringbench runs, N and 2N rounds per
    connection, each between a zero and a dump; the difference is N rounds
    of every connection, without connection set-up and teardown."""
    n = max(10, round_trips // max(1, conns))
    totals = []
    for rounds in (n, 2 * n):
        if not callgrind_zero(pid):
            return None, 'callgrind_control -z failed'
        try:
            p = subprocess.run([ringbench, '--connect=127.0.0.1:%d' % port,
                                '--connections=%d' % conns, '--size=%d' % size,
                                '--rounds=%d' % rounds, VALGRIND_STALL,
                                '--quiet', '--json'],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True,
                               timeout=300, preexec_fn=preexec)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, 'ringbench: %s' % e
        if p.returncode != 0:
            return None, 'ringbench exit %d: %s' % (p.returncode, p.stderr.strip()[-200:])
        ir = callgrind_dump(pid, outfile)
        if ir is None:
            return None, 'no callgrind dump'
        totals.append(ir)
    return (totals[1] - totals[0]) / float(n * conns), None


def calibrate(opts, note=None):
    """Set opts.syscall_us (measured here) and opts.ref_us (the reference
    unless --ref-syscall-us gave one)."""
    opts.syscall_us = syscall_cost_us()
    if getattr(opts, 'ref_syscall_us', None) is None:
        opts.ref_syscall_us = REFERENCE_SYSCALL_US
    if note:
        note('syscall cost here: %.3f us (getppid); bare-metal reference %.3f us' % (
            opts.syscall_us, opts.ref_syscall_us))


def add_arguments(ap):
    """The cost options every mode shares."""
    ap.add_argument('--costs', choices=['on', 'off'], default='on',
                    help='the costs-that-travel pass: syscalls, context switches, '
                    'user/kernel CPU and user instructions per request at both '
                    'placements (default on)')
    ap.add_argument('--callgrind', choices=['on', 'off'], default='on',
                    help='count user instructions per request under callgrind in '
                    'the costs pass (default on when valgrind is installed)')
    ap.add_argument('--ref-syscall-us', type=float, default=None,
                    help='bare-metal syscall cost for the estimate column '
                    '(default %.2f us)' % REFERENCE_SYSCALL_US)


def have_callgrind():
    import shutil
    return bool(shutil.which('valgrind') and shutil.which('callgrind_control'))


def placements():
    """(name, server CPU, client CPU) for both placements this process can
    use: same CPU, and split (server alone on its CPU) when there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    out = [('same', cpus[0], cpus[0])]
    if len(cpus) > 1:
        out.append(('split', cpus[0], cpus[1]))
    return out


def write_csv(path, rows, fields):
    import csv
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        w.writeheader()
        for r in rows:
            w.writerow({k: ('' if r.get(k) is None else r.get(k)) for k in fields})


CSV_FIELDS = ['config', 'label', 'sched', 'placement', 'cell', 'status', 'error',
              'requests', 'cpu_us'] + COLUMNS + ['ref_syscall_us']


def make_row(opts, cfg_id, label, sched, placement, cell, rec, n, cpu_us, instr, err,
             note):
    """One costs.csv row from a run's record (with the Window or ringbench
    totals) over n requests; logs it with note()."""
    row = {'config': cfg_id, 'label': label, 'sched': sched, 'placement': placement,
           'cell': cell, 'status': rec['status'], 'error': rec['error'] or err or '',
           'requests': n, 'cpu_us': cpu_us, 'ref_syscall_us': opts.ref_syscall_us}
    row.update(per_request(rec, n, opts.syscall_us, opts.ref_syscall_us))
    row['instr_per_req'] = instr
    note('[costs] %s, %s, %s: %s syscalls, %s ctxsw, %s instr per request' % (
        label, cell, placement, fmt(row['syscalls_per_req']), fmt(row['ctxsw_per_req']),
        fmt(instr, 0)))
    return row
