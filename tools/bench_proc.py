"""Process and port helpers shared by tools/compare and its HTTP and proxy
modes (standard library only)."""

import os
import socket


def free_port():
    """A port nobody listens on right now (an external server is told it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def can_connect(port, timeout):
    """True when something accepts on 127.0.0.1:port within timeout seconds."""
    try:
        socket.create_connection(('127.0.0.1', port), timeout=timeout).close()
        return True
    except OSError:
        return False


def children(pid):
    """The direct children of pid (empty when it is gone)."""
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), seconds; None if gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    except (OSError, IndexError, ValueError):
        return None
