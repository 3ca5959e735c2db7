#!/usr/bin/env python3
"""Live statistics (--stats-interval, --stats-format), against one backend.

usage: test_stats.py RINGSERVE RINGBENCH [SERVER ARGS...]

Nothing here depends on timing: the test waits (bounded) for a state, never
for a duration, and checks identities that hold however the intervals fall.

1. JSON: a server with --stats-interval=0.05 --stats-format=json serves a
   fixed amount of work (ringbench --rounds: every byte known in advance).
   Then the test waits for an interval line whose totals show all of it and
   no open connection, stops the server (SIGINT) and checks that every
   statistics line is one JSON object with the documented keys; that each
   interval's per-interval counts ("delta") add up to the totals of the
   last interval, counter by counter, and those totals equal the final
   line's; that bytes in/out are exactly what ringbench sent; that the
   counters the issue names moved (round trips, bytes, loop turns, wait
   calls, completions per turn); that rates agree with delta/dt.
2. Buffers and starvation: four clients send without reading to a server
   with --buffers=2. The test waits for the buffer gauges to move: an
   interval line with a lent buffer or a starved connection, or receives
   that found no buffer (enobufs). Which of them shows depends on where the
   backend holds buffers (io_uring's kernel hands the pool to multishot
   receives in flight; epoll takes one only inside its own recv, and the
   core copies out of lent buffers under pressure), so any of them counts.
   No line may show more than the 2 buffers lent. Then the clients close
   and the test waits for lent=0, starved=0, conns=0.
3. Text: the same work with the default format: interval lines match the
   documented layout, the final line carries turns=, completions=, waits=.
4. Bad values exit 2 with a message naming the option.
5. --sched=auto: with 4 connections on a loop, its thread runs
   SCHED_BATCH (/proc/PID/task/TID/stat, field 41), with none again
   SCHED_OTHER; --sched=normal and the default (normal) never switch. (Not statistics,
   but the same harness; it waits for states, never for durations.)

A uring variant exits 77 (skip) where io_uring is unavailable.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
import rs_server  # noqa: E402  (tests/rs_server.py)

RINGSERVE, RINGBENCH = sys.argv[1], sys.argv[2]
VARIANT = sys.argv[3:]
CONNS, ROUNDS, SIZE = 20, 300, 100
WAIT_S = 30.0  # bound on every wait for a state (never reached when all is well)

COUNTERS = ['accepted', 'rejected', 'closed', 'bytes_in', 'bytes_out', 'dropped',
            'recvs', 'sends', 'round_trips', 'enobufs', 'copies', 'accept_pauses',
            'idle_closed', 'bundles', 'recvs_shared', 'cq_overflows', 'cq_resizes', 'zc_copied', 'turns', 'completions', 'waits']
GAUGES = ['conns', 'lent', 'starved']
RATES = ['round_trips_per_s', 'bytes_in_per_s', 'bytes_out_per_s',
         'completions_per_turn', 'waits_per_s', 'turns_per_s']

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print('FAIL: ' + msg, flush=True)
    return cond


class Server(rs_server.Server):
    """The server of VARIANT with extra options, its output in a log file
    (rs_server.Server)."""

    def __init__(self, extra):
        # A skip only where the server says io_uring is unavailable here
        # (the form scripts/test-summary.py checks), and never over
        # failures already found: any other start-up failure fails.
        try:
            super().__init__([RINGSERVE] + VARIANT + extra, timeout=WAIT_S,
                             skip_ok=not failures)
        except rs_server.ServerError as e:
            print(e)
            print('%d failure(s) before' % len(failures))
            sys.exit(1)

    def lines(self):
        """Complete lines only: the server may be writing the last one."""
        text = self.text()
        return text[:text.rfind('\n') + 1].splitlines()

    def wait_for(self, pred, what):
        """Poll the log until pred(lines) is true; bounded."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if pred(self.lines()):
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        check(False, 'waited %.0f s for %s; log:\n%s' % (WAIT_S, what,
                                                        '\n'.join(self.lines()[-5:])))
        return False

    def stop(self):
        """SIGINT: the exit status (None when it hung and was killed)."""
        return super().stop(WAIT_S, signal.SIGINT)


def ringbench(port):
    p = subprocess.run([RINGBENCH, '--connect=127.0.0.1:%d' % port,
                        '--connections=%d' % CONNS, '--rounds=%d' % ROUNDS,
                        # a busy machine may not run the server for a
                        # second: not what is checked here
                        '--size=%d' % SIZE, '--stall-timeout=30', '--quiet'],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=120)
    check(p.returncode == 0, 'ringbench exit %d: %s' % (p.returncode, p.stdout[-300:]))


def json_lines(lines):
    out = []
    for l in lines:
        if l.startswith('{'):
            try:
                out.append(json.loads(l))
            except ValueError as e:
                check(False, 'not JSON (%s): %s' % (e, l[:200]))
    return out


def intervals(objs):
    return [o for o in objs if o.get('type') == 'interval']


def test_json():
    srv = Server(['--stats-interval=0.05', '--stats-format=json'])
    ringbench(srv.port)
    want = CONNS * ROUNDS * SIZE

    def done(lines):
        iv = intervals(json_lines(lines))
        return bool(iv) and iv[-1]['totals']['bytes_out'] >= want and \
            iv[-1]['conns'] == 0
    srv.wait_for(done, 'an interval line with all %d bytes echoed, no connection' % want)
    rc = srv.stop()
    check(rc == 0, 'server exit %s after SIGINT' % rc)
    lines = srv.lines()
    for l in lines:
        check(l.startswith('{') or (l.startswith('ringserve: ') and
                                    'stats:' not in l and 'interval:' not in l),
              'a statistics line that is not JSON: %s' % l[:200])
    objs = json_lines(lines)
    iv = intervals(objs)
    finals = [o for o in objs if o.get('type') == 'final']
    if not (check(len(finals) == 1, '%d final objects, expected 1' % len(finals)) and
            check(objs and objs[-1].get('type') == 'final', 'final is not the last line')
            and check(iv, 'no interval line')):
        return
    final = finals[0]
    for k in COUNTERS + GAUGES:
        check(isinstance(final.get(k), int), 'final: %s missing or not an integer' % k)
    for o in iv:
        for k in ['backend', 'wait_call']:
            check(isinstance(o.get(k), str), 'interval: %s missing' % k)
        for k in ['t', 'dt'] + RATES:
            check(isinstance(o.get(k), (int, float)) and o[k] >= 0,
                  'interval: %s missing or negative: %r' % (k, o.get(k)))
        for k in GAUGES:
            check(isinstance(o.get(k), int), 'interval: gauge %s missing' % k)
        for k in COUNTERS:
            check(isinstance(o['delta'].get(k), int) and o['delta'][k] >= 0,
                  'interval: delta.%s missing or negative' % k)
            check(isinstance(o['totals'].get(k), int), 'interval: totals.%s missing' % k)
        d = o['delta']
        if o['dt'] > 0:
            check(abs(o['round_trips_per_s'] - d['round_trips'] / o['dt']) <=
                  0.001 * d['round_trips'] / o['dt'] + 0.1,
                  'round_trips_per_s %r is not delta/dt' % o['round_trips_per_s'])
        if d['turns']:
            check(abs(o['completions_per_turn'] - d['completions'] / d['turns']) < 0.001,
                  'completions_per_turn is not completions/turns')
    check(iv[0]['backend'] in ('uring', 'epoll'), 'backend %r' % iv[0]['backend'])
    check(iv[0]['wait_call'] == {'uring': 'io_uring_enter',
                                 'epoll': 'epoll_wait'}.get(iv[0]['backend']),
          'wait_call %r for backend %r' % (iv[0]['wait_call'], iv[0]['backend']))
    ts = [o['t'] for o in iv]
    check(ts == sorted(ts), 'interval times go backwards: %r' % ts[:10])
    last = iv[-1]['totals']
    for k in COUNTERS:
        total = sum(o['delta'][k] for o in iv)
        check(total == last[k], '%s: deltas add up to %d, totals say %d' % (k, total, last[k]))
        check(last[k] <= final[k], '%s: interval total %d > final %d' % (k, last[k], final[k]))
    for k in ['bytes_in', 'bytes_out', 'round_trips', 'recvs', 'sends', 'accepted',
              'closed']:
        check(last[k] == final[k], '%s: last interval %d, final %d' % (k, last[k], final[k]))
    check(final['bytes_in'] == want and final['bytes_out'] == want,
          'bytes in/out %d/%d, ringbench sent %d' % (final['bytes_in'], final['bytes_out'],
                                                    want))
    check(final['accepted'] == CONNS and final['closed'] == CONNS,
          'accepted/closed %d/%d, expected %d' % (final['accepted'], final['closed'], CONNS))
    check(final['round_trips'] >= CONNS * ROUNDS,
          'round_trips %d < %d messages' % (final['round_trips'], CONNS * ROUNDS))
    for k in ['turns', 'waits', 'completions']:
        check(final[k] > 0, 'final %s did not move' % k)
    check(final['completions'] >= final['recvs'] + final['sends'] or
          iv[0]['backend'] == 'epoll',
          'uring: completions %d < recvs + sends %d' % (final['completions'],
                                                        final['recvs'] + final['sends']))
    moved = [o for o in iv if o['round_trips_per_s'] > 0 and o['bytes_in_per_s'] > 0 and
             o['bytes_out_per_s'] > 0 and o['waits_per_s'] > 0 and
             o['completions_per_turn'] > 0]
    check(moved, 'no interval line shows the load moving (rates all zero)')
    check(iv[-1]['conns'] == 0 and iv[-1]['lent'] == 0 and iv[-1]['starved'] == 0,
          'idle at the end, yet conns/lent/starved = %d/%d/%d' % (
              iv[-1]['conns'], iv[-1]['lent'], iv[-1]['starved']))
    print('json: %d interval lines, %d round trips, %d turns, %d waits' % (
        len(iv), final['round_trips'], final['turns'], final['waits']))


def test_starved():
    srv = Server(['--stats-interval=0.05', '--stats-format=json', '--buffers=2',
                  '--buffer-size=1024'])
    socks = []
    try:
        for _ in range(4):
            s = socket.create_connection(('127.0.0.1', srv.port), timeout=WAIT_S)
            s.setblocking(False)
            socks.append(s)
        chunk = b'x' * 65536
        deadline = time.monotonic() + WAIT_S
        seen = False
        while time.monotonic() < deadline and not seen:
            for s in socks:  # write, never read: the echo backs up
                try:
                    s.send(chunk)
                except (BlockingIOError, InterruptedError):
                    pass
            iv = intervals(json_lines(srv.lines()))
            seen = any(o['lent'] >= 1 or o['starved'] >= 1 or
                       o['totals']['enobufs'] > 0 for o in iv)
            time.sleep(0.02)
        check(seen, 'no interval line showed a lent buffer, a starved connection '
              'or a receive without a buffer')
        iv = intervals(json_lines(srv.lines()))
        check(all(o['lent'] <= 2 for o in iv), 'more than 2 buffers lent from a pool of 2')
    finally:
        for s in socks:
            s.close()

    def idle(lines):
        iv = intervals(json_lines(lines))
        return bool(iv) and iv[-1]['conns'] == 0 and iv[-1]['lent'] == 0 and \
            iv[-1]['starved'] == 0 and iv[-1]['totals']['closed'] == 4
    srv.wait_for(idle, 'conns, lent and starved back to 0 after the clients closed')
    rc = srv.stop()
    check(rc == 0, 'server exit %s after SIGINT' % rc)
    print('starved: ok')


TEXT_RE = re.compile(
    r'^ringserve: interval: t=[\d.]+s conns=\d+ round_trips/s=\d+ in=\d+B/s '
    r'out=\d+B/s completions/turn=[\d.]+ (epoll_wait|io_uring_enter)/s=\d+ '
    r'lent=\d+ starved=\d+ accepted/s=\d+ closed/s=\d+$')


def test_text():
    srv = Server(['--stats-interval=0.05'])
    ringbench(srv.port)

    def done(lines):
        iv = [l for l in lines if l.startswith('ringserve: interval:')]
        return bool(iv) and ' conns=0 ' in iv[-1] and \
            any(re.search(r' round_trips/s=[1-9]', l) for l in iv)
    srv.wait_for(done, 'text interval lines showing load, then no connection')
    rc = srv.stop()
    check(rc == 0, 'server exit %s after SIGINT' % rc)
    lines = srv.lines()
    iv = [l for l in lines if l.startswith('ringserve: interval:')]
    for l in iv:
        check(TEXT_RE.match(l), 'interval line layout: %s' % l)
    final = [l for l in lines if l.startswith('ringserve: stats:')]
    if check(len(final) == 1, '%d final lines' % len(final)):
        for k in ['round_trips', 'turns', 'completions', 'waits']:
            m = re.search(r' %s=(\d+)' % k, final[0])
            check(m and int(m.group(1)) > 0, 'final text line: %s= missing or 0' % k)
        check(not re.search(r' (conns|lent|starved)=', final[0]),
              'gauges on the final text line')
    check(not any(l.startswith('{') for l in lines), 'JSON in text mode')
    print('text: %d interval lines' % len(iv))


def test_usage():
    for bad, opt in [('--stats-interval=abc', '--stats-interval'),
                     ('--stats-interval=-1', '--stats-interval'),
                     ('--stats-interval=0.001', '--stats-interval'),
                     ('--stats-interval=nan', '--stats-interval'),
                     ('--stats-interval=1e9', '--stats-interval'),
                     ('--stats-format=xml', '--stats-format')]:
        p = subprocess.run([RINGSERVE, '--listen=127.0.0.1:0', bad],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=30)
        check(p.returncode == 2 and opt in p.stderr,
              '%s: exit %d, stderr %r' % (bad, p.returncode, p.stderr[:200]))


SCHED_OTHER, SCHED_BATCH = 0, 3


def policies(pid):
    """The scheduling policy of every thread of pid but io_uring's workers
    (iou-wrk-*, iou-sqp-*: kernel threads that inherit the policy of the
    thread they were created for at that moment, and keep it)."""
    out = []
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/stat' % (pid, tid)) as f:
                stat = f.read()
            if stat.split('(', 1)[1].startswith('iou-'):
                continue
            out.append(int(stat.rsplit(')', 1)[1].split()[38]))
        except (OSError, IndexError, ValueError):
            pass
    return out


def test_sched(mode):
    srv = Server(['--stats-interval=0.05', '--stats-format=json'] +
                 (['--sched=' + mode] if mode else []))
    auto = mode == 'auto'
    socks = []

    def conns_now(n):
        def pred(lines):
            iv = intervals(json_lines(lines))
            return bool(iv) and iv[-1]['conns'] == n
        return pred
    try:
        # 3T+1 connections over T loops: one loop has at least 4.
        threads = [int(a.split('=')[1]) for a in VARIANT if a.startswith('--threads=')]
        n = 3 * (threads[0] if threads else 1) + 1
        for _ in range(n):
            s = socket.create_connection(('127.0.0.1', srv.port), timeout=WAIT_S)
            socks.append(s)
        srv.wait_for(conns_now(n), 'the server to see %d connections' % n)
        for s in socks:  # a message each: a loop turn after the accepts
            s.sendall(b'ping')
            check(s.recv(4) == b'ping', 'no echo')
        if not auto:
            # The main thread is always SCHED_OTHER, so "SCHED_OTHER is
            # among the threads" proves nothing. The check is that no loop
            # switched: a loop switches at the end of the turn that accepted
            # its 4th connection (core/loop.c sched_auto), before the echoes
            # above could come back, so --sched=auto would be batch by now.
            check(SCHED_BATCH not in policies(srv.proc.pid),
                  '--sched=%s, 4 connections: thread policies %r, yet batch' %
                  (mode or 'normal (the default)', policies(srv.proc.pid)))
        else:
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline and SCHED_BATCH not in policies(srv.proc.pid):
                time.sleep(0.02)
            check(SCHED_BATCH in policies(srv.proc.pid),
                  '--sched=auto, 4 connections: thread policies %r, expected one %d' % (
                      policies(srv.proc.pid), SCHED_BATCH))
    finally:
        for s in socks:
            s.close()
    srv.wait_for(conns_now(0), 'the server to see the connections closed')
    if auto:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and SCHED_BATCH in policies(srv.proc.pid):
            time.sleep(0.02)
        check(SCHED_BATCH not in policies(srv.proc.pid),
              'no connection left, yet a thread is still SCHED_BATCH: %r' %
              policies(srv.proc.pid))
    rc = srv.stop()
    check(rc == 0, 'server exit %s after SIGINT' % rc)
    print('sched %s: ok' % (mode or 'default'))


def main():
    test_usage()
    test_sched('auto')
    test_sched(None)
    test_sched('normal')
    test_json()
    test_starved()
    test_text()
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('ok')
    return 0


if __name__ == '__main__':
    sys.exit(main())
