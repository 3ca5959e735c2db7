/* ringbench's shared declarations (internal to tools/ringbench*.c):
 *
 *   ringbench.c         what a run is (its opening comment), the workers
 *                       that drive the connections, the controller, main
 *   ringbench_opts.c    the command line: --help, each option's parsing
 *   ringbench_report.c  the result, as text or as JSON
 *
 * The bench_*.h headers are the support library the tests share. */
#ifndef RINGBENCH_H
#define RINGBENCH_H

#include "bench_hist.h"
#include "bench_server.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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
