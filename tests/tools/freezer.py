#!/usr/bin/env python3
"""Run a command while freezing some of its processes now and then.

    freezer.py [--who=server|client|all] [--stop=1.5] [--run=0.5] [--seed=N] -- CMD...

Every --run seconds of running (give or take half of it, at random so that
the freezes land at different points of a test), the chosen descendants of
CMD are stopped with SIGSTOP for --stop seconds, then continued:

  server  every server process (named ringserve, or one of --servers):
          a server that gets no CPU;
  client  every other descendant (the test program and its helpers: a
          client that gets none);
  all     both: a machine-wide freeze, as when the hypervisor steals the
          vCPUs. CLOCK_MONOTONIC runs on through it, so every timer of
          every process is late at once.

CMD itself (meson test, say) is never stopped: its own timeouts are a
safety net, not what is being tried. Whatever is stopped when the freezer
ends (CMD exited, or Ctrl-C) is continued. Exits with CMD's status. Prints
one line per freeze on stderr (what was stopped and when), for matching a
failure against the freeze that caused it.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import time


def children_map():
    kids = {}
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                st = f.read()
        except OSError:
            continue
        # comm is in parentheses and may hold spaces: ppid follows the last ')'
        close = st.rindex(')')
        comm = st[st.index('(') + 1:close]
        ppid = int(st[close + 2:].split()[1])
        kids.setdefault(ppid, []).append((int(name), comm))
    return kids


def descendants(root):
    kids, out, todo = children_map(), [], [root]
    while todo:
        for pid, comm in kids.get(todo.pop(), []):
            out.append((pid, comm))
            todo.append(pid)
    return out


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--who', choices=['server', 'client', 'all'], default='all')
    ap.add_argument('--stop', type=float, default=1.5, help='seconds stopped')
    ap.add_argument('--run', type=float, default=0.5, help='mean seconds running between')
    ap.add_argument('--seed', type=int, default=None)
    ap.add_argument('--servers', default='ringserve,broken_echo,textbook_echo,blocking_echo',
                    help='process names that are servers (comma-separated)')
    ap.add_argument('cmd', nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ['--'] else a.cmd
    if not cmd:
        ap.error('no command')
    rnd = random.Random(a.seed)
    servers = set(a.servers.split(','))
    child = subprocess.Popen(cmd)
    stopped = []
    t0 = time.monotonic()
    try:
        while child.poll() is None:
            time.sleep(rnd.uniform(a.run / 2, a.run * 1.5))
            procs = [(p, c) for p, c in descendants(child.pid)
                     if a.who == 'all' or (c in servers) == (a.who == 'server')]
            if not procs:
                continue
            stopped = [p for p, _ in procs]
            signal_all(stopped, signal.SIGSTOP)
            print('freezer: %.1f s: %s stopped for %.1f s' % (
                time.monotonic() - t0, ' '.join('%s:%d' % (c, p) for p, c in procs),
                a.stop), file=sys.stderr, flush=True)
            time.sleep(a.stop)
            signal_all(stopped, signal.SIGCONT)
            stopped = []
    finally:
        signal_all(stopped, signal.SIGCONT)
    sys.exit(child.wait())


if __name__ == '__main__':
    main()
