"""Start the real server (or an example program) for a test, learn its
port, stop it: what every test script that runs the binary shares.

Test scripts live in tests/<suite>/; they import this module as they do
skip_reason:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
    from rs_server import Server, ServerError

    srv = Server([ringserve, '--protocol=http', ...])   # on 127.0.0.1:0
    ... srv.port, srv.pid, srv.line (the start-up line), srv.text() ...
    rc = srv.stop()      # SIGTERM; the exit status, None if it hung
    srv.kill()           # in a finally: whatever happened, nothing left

The output goes to a log file, never to a pipe (a pipe nobody reads
could fill and block the server). The server's stdout and stderr share
one open file description with this process, and so its offset: the
descriptor is made O_APPEND (Python's TemporaryFile(mode="a+") only
seeks to the end once, so a seek here put the server's next line over
the log's start), and it is read with pread(2), which never moves the
offset (a seek-and-read would also skip what the server appended
between two of its reads, gluing half a line to a later one). The port comes from the
start-up line ("listening on 127.0.0.1:PORT ..."), polled for with a
bound; no fixed sleep. A server that exits or stays silent instead is a
ServerError, unless what it said means the kernel lacks io_uring or a
feature asked for: then the test skips (skip_reason.skip_for).
"""
import fcntl
import os
import re
import signal
import subprocess
import tempfile
import time

from skip_reason import skip_for

START_TIMEOUT = 30.0
POLL_S = 0.02
LISTENING = re.compile(r"^.*listening on 127\.0\.0\.1:(\d+).*$", re.M)


def read_log(fd):
    """The whole file behind fd as text, read with pread(2) so that the
    offset the server writes at is never touched."""
    chunks, off = [], 0
    while True:
        b = os.pread(fd, 1 << 16, off)
        if not b:
            break
        chunks.append(b)
        off += len(b)
    return b"".join(chunks).decode("utf-8", "replace")


class ServerError(Exception):
    """The server did not start: text is what it printed, returncode its
    exit status (None when it was still running at the deadline)."""

    def __init__(self, argv, text, returncode):
        super().__init__("server did not start (status %s): %s\n%s"
                         % (returncode, " ".join(argv), text))
        self.text = text
        self.returncode = returncode


class Server:
    def __init__(self, argv, listen="127.0.0.1:0", log_path=None,
                 timeout=START_TIMEOUT, preexec_fn=None, skip_ok=True):
        """argv: the program and its options; listen: added as --listen=
        (None: argv says it). log_path: where the output goes (default: an
        anonymous file). skip_ok=False: a start-up failure is a
        ServerError whatever it says (a test that expects the failure)."""
        self.argv = list(argv[:1]) + (["--listen=" + listen] if listen else []) + \
            list(argv[1:])
        self.log_path = log_path
        if log_path:
            self.log = open(log_path, "a+", errors="replace")
        else:
            self.log = tempfile.TemporaryFile(mode="a+", errors="replace")
        fd = self.log.fileno()
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     preexec_fn=preexec_fn)
        self.pid = self.proc.pid
        self.port = None
        self.line = None
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            # Complete lines only: the server may be writing this one.
            m = LISTENING.search(text[:text.rfind("\n") + 1])
            if m:
                self.port, self.line = int(m.group(1)), m.group(0)
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        rc = self.proc.poll()  # None: still running at the deadline
        Server.kill(self)  # this class's: a subclass's may close the log
        text = self.text()
        if skip_ok:
            skip_for(text)
        raise ServerError(self.argv, text, rc)

    def text(self):
        """Everything the server printed so far (its last line may be
        still being written: callers that parse keep complete lines)."""
        return read_log(self.log.fileno())

    def stop(self, timeout=15.0, sig=signal.SIGTERM):
        """Signal it and wait: its exit status, or None when it did not
        exit within timeout (it is killed then)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return None
        return self.proc.returncode

    def kill(self):
        """Whatever state it is in, it is gone after this."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
