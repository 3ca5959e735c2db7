/* ringbench's shared declarations (internal to tools/ringbench*.c):
 *
 *   ringbench.c         what a run is (its opening comment), the
 *                       controller that moves the workers through it, main
 *   ringbench_conn.c    a worker: its connections driven, each byte checked
 *   ringbench_opts.c    the command line: --help, each option's parsing
 *   ringbench_report.c  the result, as text or as JSON
 *
 * The bench_*.h headers are the support library the tests share. */
#ifndef RINGBENCH_H
#define RINGBENCH_H

#include "bench_hist.h"
#include "bench_server.h"

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef RB_VERSION
#define RB_VERSION "unknown"
#endif

#define MAX_PIPELINE  1024u
#define MAX_SIZE      (64ull << 20)
#define MAX_THREADS   64u
#define MAX_PROCESSES 64u

/* MODE_REQUEST: each message is the same request (--request, e.g. an HTTP
 * GET on a keep-alive connection) and its answer is --reply-size bytes that
 * start with REPLY_HEAD (a 2xx status line); a round trip as in echo. */
enum mode { MODE_ECHO, MODE_DISCARD, MODE_CHARGEN, MODE_REQUEST };
#define NMODES 4u
extern const char *const rb_mode_names[NMODES]; /* by enum mode */
#define MAX_REQUEST  4096u
#define REPLY_HEAD   "HTTP/1.1 2"
#define REPLY_HEAD_N (sizeof(REPLY_HEAD) - 1)

enum phase { PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_STOP };

struct opts {
    char target[300]; /* as given, for the report */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t connections;
    uint64_t size_min, size_max;
    uint32_t pipeline;
    double duration, warmup, rate, stall_timeout;
    bool duration_set, warmup_set;
    uint64_t rounds; /* 0: run for --duration */
    uint32_t source_addrs;
    uint32_t threads;   /* per process */
    uint32_t processes; /* --processes: this many, each with a slice */
    uint32_t id_base;   /* first connection id of this process's slice */
    long server_pid;    /* 0: none */
    enum mode mode;
    bool json, quiet, allow_remote, size_set;
    char request[MAX_REQUEST]; /* --mode=request: the bytes of one request */
    size_t request_len;
    uint64_t reply_size; /* --mode=request: bytes of one reply */
};

/* Messages are answered one for one (echo, request): round trips count. */
static inline bool round_trips(const struct opts *o)
{
    return o->mode == MODE_ECHO || o->mode == MODE_REQUEST;
}

struct result {
    double seconds;
    double connect_s; /* until every connection was open */
    uint64_t rt, bytes;
    uint64_t fair_min, fair_max;
    uint64_t zero; /* connections with no round trip (no byte) measured */
    uint64_t held; /* connections open at the end */
    struct bench_hist *hist;
    double cpu_us_per_rt, cpu_s, syscalls_per_rt;
    double user_s, sys_s;      /* cpu_s split */
    long long ctxsw, syscalls; /* server totals over the measured interval; -1: n/a */
    long long rss_kib, rss0_kib, fds; /* server, at the end (rss0: at the start) */
    struct bench_sockstat sock;
    bool have_cpu, have_sys, have_sock;
};

/* Shared with the workers (ringbench_conn.c) */
#define IO_BUF     (256u << 10)
#define FD_RESERVE 32u /* descriptors kept for stdio, epoll, perf pipes... */
#define NS_PER_S   1000000000ull

/* One message in flight on an echo connection. */
struct msg {
    uint64_t end; /* stream offset one past its last byte */
    uint64_t t0;  /* send time (intended send time with --rate), ns */
    bool counted; /* started during the measured phase (--rounds) */
};

enum conn_state { CS_IDLE, CS_CONNECTING, CS_OPEN, CS_DONE };

struct conn {
    int fd;
    uint32_t id; /* global connection number, also the stream id */
    uint8_t state;
    bool wblocked;     /* a send came up short: wait for EPOLLOUT */
    bool have_phase;   /* chargen: line phase learnt from the first byte */
    bool on_ready;     /* on the worker's ready list: work left over */
    bool more_to_read; /* stopped reading on the budget, not on EAGAIN */
    uint8_t cg_phase;
    uint32_t head, n; /* ring of in-flight messages, capacity = pipeline */
    struct msg *ring;
    uint64_t queued;  /* stream offset one past the last byte to send */
    uint64_t sent;    /* bytes written */
    uint64_t recvd;   /* bytes read and verified */
    uint64_t rqueued; /* request: reply offset one past the last reply due */
    uint64_t retired; /* echo: end offset of the last message come back */
    uint64_t started; /* messages started, all phases */
    uint64_t counted_started;
    uint64_t rt; /* counted round trips */
    uint64_t counted_bytes;
    uint64_t last_progress;
    uint64_t backlog;   /* --rate: scheduled messages not yet started */
    uint64_t sched_seq; /* --rate: schedule slot of the oldest one */
};

struct worker {
    unsigned idx;
    pthread_t tid;
    const struct opts *o;
    struct conn *conns;
    struct msg *msgs;
    uint32_t nconns, first_id;
    uint32_t next_connect, connecting, open, done;
    uint32_t *ready, nready; /* connections with work left for the next turn */
    int ep;
    uint8_t *rbuf, *wbuf;
    struct bench_hist *hist;
    bool measuring, kicked, stop;
    uint64_t rt, bytes; /* counted */
    uint64_t t_done;    /* --rounds: when the last connection finished */
    /* --rate: slot s of this worker is due at rate_t0 + s * rate_period. */
    double rate_period;
    uint64_t rate_t0, rate_seq;
    uint64_t next_check;
    _Atomic uint64_t live_rt; /* copies of rt and bytes for the progress line */
    _Atomic uint64_t live_bytes;
    uint32_t served;              /* connections with something counted */
    _Atomic uint32_t live_served; /* its copy for the window's end */
};

/* What the controller (ringbench.c, which defines them) and the workers
 * share: the phase, a few counters, the first error and stall messages,
 * the two eventfds. */
extern _Atomic int g_phase;
extern _Atomic uint32_t g_connected;
extern _Atomic uint32_t g_errors;
extern _Atomic bool g_failed;
extern _Atomic uint32_t g_stalls;
extern char g_stallmsg[400];
extern _Atomic uint32_t g_workers_done;
extern char g_errmsg[512];
extern int g_wake_fd; /* controller -> workers: the phase changed */
extern int g_done_fd; /* workers -> controller: finished or failed */
extern volatile sig_atomic_t g_interrupted;

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline void efd_kick(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof(one));
    (void)r; /* only fails if the counter would overflow: then it is readable */
}

/* ringbench_conn.c: a worker thread (pthread_create's start routine, arg
 * its struct worker): its connections from connect to the run's end */
void *rb_worker_main(void *arg);

/* ringbench_opts.c: the command line into o, or exit (2 on a usage error,
 * 0 after --help or --version); max_conns: what the descriptor limit
 * allows */
void rb_parse_opts(struct opts *o, int argc, char **argv, uint64_t max_conns);

/* ringbench_report.c: the run's result on stdout */
void rb_report_json(const struct opts *o, const struct result *r, uint32_t errors,
                    uint32_t stalls, const char *error);
void rb_report_text(const struct opts *o, const struct result *r, uint32_t errors,
                    uint32_t stalls);

#endif
