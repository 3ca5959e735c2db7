/* End-to-end harness: run ringserve as a child process and talk to it.
 *
 * The server is spawned with its stdout and stderr on pipes that a thread
 * drains continuously, so a chatty server can never block on a full pipe.
 * h_server_start() returns once the server has printed its
 * "ringserve: listening on HOST:PORT (backend=NAME, ...)" line, or once it
 * has exited without printing it (a usage or start-up failure the caller
 * wants to inspect). h_server_stop() sends a signal and reaps the child.
 *
 * Every child is also killed when the test program exits, however it exits:
 * an atexit() handler SIGKILLs anything still registered, and the child
 * asks the kernel (PR_SET_PDEATHSIG) to be killed if the test dies first.
 *
 * Nothing here measures time to decide pass or fail: every wait is a poll()
 * with a long safety timeout (H_TIMEOUT_MS) that only stops a broken server
 * from hanging the suite.
 */
#ifndef RINGSERVE_E2E_HARNESS_H
#define RINGSERVE_E2E_HARNESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The longest any single wait may last before the test gives up. */
#define H_TIMEOUT_MS 20000

/* Output a child wrote, accumulated by the drain thread. */
struct h_capture {
    char *buf;
    size_t len, cap;
    bool eof;
};

struct h_server {
    pid_t pid;          /* 0 once reaped */
    int out_fd, err_fd; /* read ends; -1 once drained to EOF */
    pthread_t drain;
    bool drain_running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct h_capture out, err;

    bool ready;           /* the listening line was seen */
    char host[64];        /* from the listening line: "127.0.0.1" */
    uint16_t port;        /* from the listening line */
    char backend[32];     /* from "backend=NAME" on the listening line */
    bool exited;          /* reaped: status is valid */
    int status;           /* raw waitpid() status */
    unsigned connects;    /* connections opened with h_connect() */
    size_t err_at_signal; /* stderr length when h_server_stop() signalled */
    int signal_sent;      /* that signal, or 0 */
};

/* Result of h_server_start(). */
enum h_start {
    H_STARTED = 0,  /* listening line seen; host/port/backend are set */
    H_EXITED = 1,   /* exited before listening; status and stderr are set */
    H_TIMEDOUT = 2, /* neither within H_TIMEOUT_MS; the child was killed */
    H_SPAWN_FAILED = 3,
};

/* Spawn argv (NULL-terminated; argv[0] is the program, searched in PATH if
 * it has no '/') followed by the NULL-terminated extra arguments (may be
 * NULL), and wait for the listening line or an exit. */
enum h_start h_server_start(struct h_server *s, char *const argv[],
                            const char *const extra[]);

/* Send sig (if still running) and wait for the exit, SIGKILLing after
 * H_TIMEOUT_MS. Returns 0 if the child was reaped, -1 if not running. Joins
 * the drain thread, so s->err holds everything the child wrote. */
int h_server_stop(struct h_server *s, int sig);

/* Wait for the child to exit by itself (no signal); SIGKILL after
 * timeout_ms. Returns 0 if it exited by itself, -1 if it had to be killed. */
int h_server_wait(struct h_server *s, int timeout_ms);

/* Release everything; kills the child if it is still running. */
void h_server_destroy(struct h_server *s);

/* True if the child exited normally with this code. */
bool h_exited_with(const struct h_server *s, int code);

/* Human-readable exit status, e.g. "exit 2" or "signal 9". */
const char *h_status_str(const struct h_server *s, char *buf, size_t len);

/* Snapshot of the captured stderr/stdout (NUL-terminated, caller frees). */
char *h_server_stderr(struct h_server *s);
char *h_server_stdout(struct h_server *s);

/* Find the line of stderr that starts with prefix (e.g. "ringserve: stats:")
 * and copy it (without newline) into line. Returns true if found; the last
 * such line wins. */
bool h_find_line(struct h_server *s, const char *prefix, char *line, size_t len);

/* Look up key=NUMBER in a "key=value key=value" line; the key must start at
 * a token boundary. Returns true if found and numeric. */
bool h_line_value(const char *line, const char *key, unsigned long long *val);

/* VmRSS of the child in KiB from /proc/PID/status, or -1. */
long h_server_rss_kib(const struct h_server *s);

/* Descriptors the child holds: its /proc/PID/fd entries plus, for each
 * io_uring instance among them, the direct descriptors registered in that
 * ring ("UserFiles:" in its fdinfo; sockets accepted or created as direct
 * descriptors live only there). -1 on failure. */
long h_server_fd_count(const struct h_server *s);

/* Poll h_server_fd_count() every 50 ms until it equals base, for at most
 * H_TIMEOUT_MS. Returns the last count (base on success). */
long h_wait_fd_count(const struct h_server *s, long base);

/* Print the child's captured stderr on our stderr, for failures. A marker
 * line shows where the harness sent its stop signal, so output the server
 * wrote before it (say, a drain caused by a signal from someone else) is
 * told apart from its reaction to ours. */
void h_dump_stderr(struct h_server *s, const char *why);

/* --- clients ------------------------------------------------------------ */

/* Blocking TCP connection to 127.0.0.1:port (SOCK_CLOEXEC). Counts it in
 * s->connects. Returns the fd or -1. */
int h_connect(struct h_server *s);

/* The same with SO_RCVBUF set before connecting (0: the default). A small
 * receive buffer keeps the client's window small, so the server has to queue
 * echo output in user space instead of in the kernel. */
int h_connect_rcvbuf(struct h_server *s, int rcvbuf);

int h_set_nonblock(int fd, bool on);

/* Write all len bytes, polling for POLLOUT as needed. 0 or -errno (-ETIMEDOUT
 * if no progress for H_TIMEOUT_MS). */
int h_write_all(int fd, const void *buf, size_t len);

/* Read exactly len bytes. Returns len, fewer on EOF (the count read), or
 * -errno. */
ssize_t h_read_exact(int fd, void *buf, size_t len);

/* Expect EOF next: 0 if read() returns 0, 1 if data arrived instead,
 * -errno on error or timeout. */
int h_expect_eof(int fd);

/* Deterministic pseudo-random bytes: the same (seed, offset) always gives
 * the same byte, so streams can be verified without keeping a copy. */
void h_fill(unsigned char *buf, size_t len, uint64_t seed);

/* One client in a concurrent echo exchange driven by h_flows_run(). */
struct h_flow {
    int fd;                   /* non-blocking socket */
    const unsigned char *out; /* bytes to send; the echo must match */
    size_t len;
    bool shut_wr;     /* shutdown(SHUT_WR) right after the last byte */
    bool want_eof;    /* done only after EOF follows the echo */
    bool lazy_reader; /* read only while the socket is not writable, and
                         1 KiB per wake-up, so the server has echo output
                         queued in user space when the FIN arrives */
    /* progress, filled in by h_flows_run() */
    size_t sent, recvd;
    bool shut_done, eof;
    char error[160]; /* first problem seen for this flow, or "" */
};

/* Drive all flows at once with one poll() loop: each writes its bytes as
 * fast as the socket accepts them and reads its echo concurrently, checking
 * every byte. Stops when every flow is done or one fails, or when nothing at
 * all happens for H_TIMEOUT_MS. Returns 0 on success; otherwise -1 with the
 * failing flow's error set and a summary in err. */
int h_flows_run(struct h_flow *flows, size_t n, char *err, size_t errlen);

/* Monotonic milliseconds, and a sleep that survives signals. */
int64_t h_now_ms(void);
void h_sleep_ms(long ms);

/* send() until len bytes went out or the socket would block (or fails);
 * returns how many went out. */
size_t h_send_some(int fd, const void *data, size_t len);

/* Close with SO_LINGER 0: the peer gets a reset, whatever is in flight. */
void h_reset_close(int fd);

/* A listening TCP socket of our own on 127.0.0.1 with an ephemeral port
 * (SOCK_CLOEXEC), for tests that play a server themselves. backlog as in
 * listen(2); backlog < 0 binds without listening (connects to it are
 * refused, and the port stays ours). Returns the fd or -1; *port is set. */
int h_listen_local(int backlog, uint16_t *port);

/* Accept one connection on a listener made by h_listen_local(), waiting at
 * most H_TIMEOUT_MS. Returns the fd (blocking, SOCK_CLOEXEC) or -1. */
int h_accept(int lfd);

/* Read and discard until EOF or an error; returns the bytes read, or -errno
 * if the socket failed (ECONNRESET...) or stayed silent for H_TIMEOUT_MS
 * (-ETIMEDOUT). *total gets the count either way if not NULL. */
long long h_drain_to_eof(int fd, unsigned long long *total);

/* Start the server once (with --listen=127.0.0.1:0) and stop it. Returns -1
 * when it works; 77 (skip) when io_uring is unavailable here or the kernel
 * lacks a feature the command line asks for, or when the binary predates
 * --protocol=http; 1 (reported on stderr, with
 * `prog` as prefix) when it fails to start for any other reason. */
int h_preflight(char *const argv[], const char *prog);

/* The same, with these arguments instead of --listen=127.0.0.1:0 alone
 * (a proxy needs --upstream=...). */
int h_preflight_with(char *const argv[], const char *const extra[], const char *prog);

#endif
