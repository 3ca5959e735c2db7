/* ringbench: a load generator for TCP echo (and discard, chargen) servers.
 *
 * It shares nothing with the server it measures: plain non-blocking sockets
 * and its own epoll loop per thread, so a bug in the server's event loop
 * cannot hide in the tool that measures it.
 *
 * Shape of a run. The main thread is the controller: it parses the command
 * line, starts --threads workers, and moves every worker through the phases
 * connect -> warmup -> measure -> stop by storing the phase in an atomic and
 * kicking an eventfd that sits in every worker's epoll set. Workers own their
 * connections outright; the only things they share are that phase, a few
 * counters read for the progress line, and the first error message.
 *
 * A worker turn is one epoll_wait (edge-triggered, each socket registered
 * once for IN|OUT|RDHUP, no epoll_ctl per message), then for each ready
 * socket: read until EAGAIN or a short read, verify every byte against the
 * connection's stream (bench_pattern.h), retire the messages whose last byte
 * came back (one latency sample each, into the worker's histogram), start the
 * next messages and send speculatively; EPOLLOUT is only awaited after a
 * short send. Send data is generated on the fly from (connection, offset) into
 * one scratch buffer per worker, so nothing is allocated per message.
 *
 * Counting. With --duration, a round trip counts if it completes while the
 * phase is "measure". With --rounds, a message counts if it *starts* during
 * "measure", each connection starts exactly N counted messages, and the run
 * ends when all have come back: fixed work, for instruction or syscall counts.
 *
 * Open loop (--rate). A closed-loop client sends the next message only after
 * the previous one returned, so when the server stalls the client stops
 * offering load and the stall shows up as one slow sample instead of the many
 * it delayed ("coordinated omission"). With --rate, each worker follows a
 * fixed schedule of intended send times, round-robin over its connections;
 * a message that cannot go out on time (pipeline full) waits in a per
 * connection backlog, and its latency is measured from the intended time.
 *
 * This file: the workers that drive the connections, the controller, main.
 * ringbench_opts.c parses the command line, ringbench_report.c prints the
 * result (their declarations in ringbench.h). */
#include "ringbench.h"

#include "bench_hist.h"
#include "bench_pattern.h"
#include "bench_procs.h"
#include "bench_server.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_BATCH 256u /* connects in progress per worker */
#define IO_BUF        (256u << 10)
#define EVENTS        512
#define FD_RESERVE    32u /* descriptors kept for stdio, epoll, perf pipes... */
#define NS_PER_S      1000000000ull

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

static _Atomic int g_phase = PH_CONNECT;
static _Atomic uint32_t g_connected;
static _Atomic uint32_t g_errors;
static _Atomic bool g_failed;
/* Stalled connections: counted, the first few named on stderr, the first
 * one quoted in the final error. A stall does not stop the run. */
static _Atomic uint32_t g_stalls;
static _Atomic bool g_stall_named;
static char g_stallmsg[400];
#define STALLS_SHOWN 10
static _Atomic uint32_t g_workers_done;
static char g_errmsg[512];
static int g_wake_fd = -1; /* controller -> workers: the phase changed */
static int g_done_fd = -1; /* workers -> controller: finished or failed */
static volatile sig_atomic_t g_interrupted;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void efd_kick(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof(one));
    (void)r; /* only fails if the counter would overflow: then it is readable */
}

static void set_phase(int ph)
{
    atomic_store(&g_phase, ph);
    efd_kick(g_wake_fd);
}

/* The first error wins the message; every one is counted. The run stops. */
static void fail(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(struct worker *w, const char *fmt, ...)
{
    atomic_fetch_add(&g_errors, 1);
    bool expected = false;
    if (atomic_compare_exchange_strong(&g_failed, &expected, true)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g_errmsg, sizeof(g_errmsg), fmt, ap);
        va_end(ap);
        atomic_store(&g_phase, PH_STOP);
        efd_kick(g_wake_fd);
        efd_kick(g_done_fd);
    }
    w->stop = true;
}

/* Size of message k of a connection: fixed, or drawn from [min, max] by a
 * hash, so a run is reproducible. */
static uint64_t msg_size(const struct opts *o, const struct conn *c, uint64_t k)
{
    if (o->size_min == o->size_max)
        return o->size_min;
    uint64_t span = o->size_max - o->size_min + 1;
    return o->size_min + bench_mix64(((uint64_t)c->id << 40) ^ k ^ 0x5bd1e995u) % span;
}

/* ---------------------------------------------------------------- worker */

static void conn_close(struct worker *w, struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->state != CS_DONE) {
        c->state = CS_DONE;
        w->done++;
        if (w->o->rounds && w->done == w->nconns)
            w->t_done = now_ns();
    }
}

static void conn_start(struct worker *w, uint32_t i, uint64_t now)
{
    const struct opts *o = w->o;
    struct conn *c = &w->conns[i];
    int fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail(w, "connection %u: socket: %s%s", c->id, strerror(errno),
             errno == EMFILE ? " (RLIMIT_NOFILE too low for --connections)" : "");
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->source_addrs) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + c->id % o->source_addrs);
        /* Let connect() pick the port per 4-tuple, not bind() per address. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            fail(w, "connection %u: bind to 127.0.0.%u: %s", c->id,
                 1 + c->id % o->source_addrs, strerror(errno));
            return;
        }
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = c};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        fail(w, "connection %u: epoll_ctl: %s", c->id, strerror(errno));
        return;
    }
    c->state = CS_CONNECTING;
    c->last_progress = now;
    w->connecting++;
    if (connect(fd, (struct sockaddr *)&o->addr, o->addrlen) < 0 &&
        errno != EINPROGRESS) {
        fail(w, "connection %u: connect to %s: %s%s", c->id, o->target, strerror(errno),
             errno == EADDRNOTAVAIL ? " (out of ephemeral ports? try --source-addrs)"
                                    : "");
    }
    /* Completion, immediate or not, is reported by EPOLLOUT. */
}

static void conn_connected(struct worker *w, struct conn *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        fail(w, "connection %u: connect to %s: %s", c->id, w->o->target, strerror(err));
        return;
    }
    c->state = CS_OPEN;
    c->last_progress = now;
    w->connecting--;
    w->open++;
    atomic_fetch_add_explicit(&g_connected, 1, memory_order_relaxed);
}

static bool rounds_left(const struct worker *w, const struct conn *c)
{
    return !w->o->rounds || !w->measuring || c->counted_started < w->o->rounds;
}

/* The request stream: the same request over and over. */
static void request_fill(const struct opts *o, uint64_t off, uint8_t *buf, size_t len)
{
    size_t at = (size_t)(off % o->request_len);
    for (size_t i = 0; i < len;) {
        size_t n = o->request_len - at < len - i ? o->request_len - at : len - i;
        memcpy(buf + i, o->request + at, n);
        i += n;
        at = 0;
    }
}

/* Index of the first byte of buf (reply stream offset off) that breaks
 * the reply shape: every reply starts with REPLY_HEAD. len if none. */
static size_t reply_check(const struct opts *o, uint64_t off, const uint8_t *buf,
                          size_t len)
{
    for (size_t i = 0; i < len;) {
        uint64_t pos = (off + i) % o->reply_size;
        if (pos >= REPLY_HEAD_N) {
            uint64_t skip = o->reply_size - pos; /* to the next reply */
            if (skip >= len - i)
                break;
            i += (size_t)skip;
            continue;
        }
        if (buf[i] != (uint8_t)REPLY_HEAD[pos])
            return i;
        i++;
    }
    return len;
}

static void conn_send(struct worker *w, struct conn *c, uint64_t now)
{
    while (c->sent < c->queued && !c->wblocked) {
        uint64_t want = c->queued - c->sent;
        size_t len = want < IO_BUF ? (size_t)want : IO_BUF;
        if (w->o->mode == MODE_REQUEST)
            request_fill(w->o, c->sent, w->wbuf, len);
        else
            bench_pattern_fill(c->id, c->sent, w->wbuf, len);
        ssize_t n = send(c->fd, w->wbuf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->wblocked = true;
                break;
            }
            fail(w, "connection %u: send at offset %" PRIu64 ": %s", c->id, c->sent,
                 strerror(errno));
            return;
        }
        c->sent += (uint64_t)n;
        c->last_progress = now;
        if (w->o->mode == MODE_DISCARD && w->measuring) {
            w->served += c->counted_bytes == 0;
            c->counted_bytes += (uint64_t)n;
            w->bytes += (uint64_t)n;
        }
        /* A short send means the socket buffer is full and the kernel has
         * flagged it: an EPOLLOUT edge follows when space frees up. */
        if ((size_t)n < len)
            c->wblocked = true;
    }
}

/* Edge-triggered epoll announces a socket once per change: a connection that
 * stops on the per-turn budget while the kernel still has work for it is
 * remembered here and served at the end of the turn (nginx's "ready" bit). */
static void set_ready(struct worker *w, struct conn *c)
{
    if (!c->on_ready)
        w->ready[w->nready++] = (uint32_t)(c - w->conns);
    c->on_ready = true;
}

/* Start as many messages as the pipeline, the schedule and --rounds allow,
 * then send. */
static void conn_pump(struct worker *w, struct conn *c, uint64_t now)
{
    const struct opts *o = w->o;
    if (c->state != CS_OPEN)
        return;
    if (o->mode == MODE_CHARGEN)
        return;
    if (o->mode == MODE_DISCARD) {
        /* Send until the socket is full or --rounds is met, a few buffers at
         * most per call so one connection cannot starve the others; a
         * connection stopped by that budget rather than by EAGAIN gets no
         * EPOLLOUT edge, so it goes on the worker's ready list instead. */
        for (unsigned budget = 4;; budget--) {
            uint64_t target = o->rounds * o->size_min;
            if (o->rounds && w->measuring && c->counted_bytes >= target) {
                conn_close(w, c);
                return;
            }
            if (c->queued == c->sent) {
                uint64_t add = IO_BUF;
                if (o->rounds && w->measuring && target - c->counted_bytes < add)
                    add = target - c->counted_bytes;
                c->queued += add;
            }
            conn_send(w, c, now);
            if (c->wblocked || w->stop)
                return;
            if (budget == 0) {
                set_ready(w, c);
                return;
            }
        }
    }
    while (c->n < o->pipeline && rounds_left(w, c)) {
        uint64_t t0 = now;
        if (o->rate > 0) {
            if (c->backlog == 0)
                break;
            t0 = w->rate_t0 + (uint64_t)((double)c->sched_seq * w->rate_period);
            c->backlog--;
            c->sched_seq += w->nconns;
        }
        struct msg *m = &c->ring[(c->head + c->n) % o->pipeline];
        c->queued += msg_size(o, c, c->started);
        if (o->mode == MODE_REQUEST) {
            c->rqueued += o->reply_size;
            m->end = c->rqueued; /* retired when its whole reply is in */
        } else {
            m->end = c->queued;
        }
        m->t0 = t0;
        m->counted = w->measuring;
        c->started++;
        if (w->measuring)
            c->counted_started++;
        if (c->n == 0)
            c->last_progress = now; /* the stall clock runs while waiting */
        c->n++;
    }
    conn_send(w, c, now);
}

/* The echo must be the connection's own stream, byte for byte, and no more
 * than was sent. false: the run failed. */
static bool echo_verify(struct worker *w, struct conn *c, size_t len)
{
    uint64_t room = c->sent - c->recvd;
    size_t ok = len <= room ? len : (size_t)room;
    size_t bad = bench_pattern_check(c->id, c->recvd, w->rbuf, ok);
    if (bad < ok) {
        uint64_t off = c->recvd + bad;
        fail(w,
             "connection %u: wrong byte at offset %" PRIu64
             ": got 0x%02x, expected 0x%02x (corrupted, lost, duplicated, "
             "reordered or another connection's data)",
             c->id, off, w->rbuf[bad], bench_pattern_byte(c->id, off));
        return false;
    }
    if (ok < len) {
        fail(w,
             "connection %u: %zu unexpected bytes at offset %" PRIu64 " (only %" PRIu64
             " bytes were sent: duplicated or added data)",
             c->id, len - ok, c->sent, c->sent);
        return false;
    }
    return true;
}

/* Replies: each starts with REPLY_HEAD, and no more arrive than requests
 * were started. false: the run failed. */
static bool reply_verify(struct worker *w, struct conn *c, size_t len)
{
    const struct opts *o = w->o;
    uint64_t room = c->rqueued - c->recvd;
    size_t ok = len <= room ? len : (size_t)room;
    size_t bad = reply_check(o, c->recvd, w->rbuf, ok);
    if (bad < ok) {
        uint64_t off = c->recvd + bad;
        fail(w,
             "connection %u: reply %" PRIu64
             " does not start with \"%s\" (its byte %" PRIu64
             " is 0x%02x): not a 2xx answer, or not --reply-size=%" PRIu64 " bytes long",
             c->id, off / o->reply_size + 1, REPLY_HEAD, off % o->reply_size,
             w->rbuf[bad], o->reply_size);
        return false;
    }
    if (ok < len) {
        fail(w,
             "connection %u: %zu bytes more than the %" PRIu64 " replies due (%" PRIu64
             " bytes each): wrong --reply-size?",
             c->id, len - ok, c->rqueued / o->reply_size, o->reply_size);
        return false;
    }
    return true;
}

static void conn_read(struct worker *w, struct conn *c, uint32_t events, uint64_t *now)
{
    const struct opts *o = w->o;
    bool hup = events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR);
    bool progressed = false;
    c->more_to_read = false;
    for (unsigned budget = 8;; budget--) {
        if (budget == 0) {
            /* A server that never pauses (chargen) must not keep this worker
             * from its other connections, its phase changes and its clock. */
            c->more_to_read = true;
            set_ready(w, c);
            break;
        }
        ssize_t n = recv(c->fd, w->rbuf, IO_BUF, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            fail(w, "connection %u: recv at offset %" PRIu64 ": %s", c->id, c->recvd,
                 strerror(errno));
            return;
        }
        if (n == 0) {
            fail(w,
                 "connection %u: early EOF at offset %" PRIu64 " (%" PRIu64
                 " bytes sent, %" PRIu64 " received)",
                 c->id, c->recvd, c->sent, c->recvd);
            return;
        }
        size_t len = (size_t)n;
        *now = now_ns();
        if (round_trips(o)) {
            if (!(o->mode == MODE_REQUEST ? reply_verify(w, c, len)
                                          : echo_verify(w, c, len)))
                return;
            c->recvd += len;
            /* Retire every message whose last byte is now in. */
            while (c->n && c->ring[c->head].end <= c->recvd) {
                struct msg *m = &c->ring[c->head];
                bool count = o->rounds ? m->counted : w->measuring;
                if (count) {
                    bench_hist_record(w->hist, *now > m->t0 ? *now - m->t0 : 0);
                    w->served += c->rt++ == 0;
                    w->rt++;
                    c->counted_bytes += m->end - c->retired;
                    w->bytes += m->end - c->retired;
                }
                c->retired = m->end;
                c->head = (c->head + 1) % o->pipeline;
                c->n--;
                progressed = true;
            }
        } else if (o->mode == MODE_CHARGEN) {
            if (!c->have_phase) {
                if (w->rbuf[0] < ' ' || w->rbuf[0] > '~') {
                    fail(w,
                         "connection %u: chargen byte at offset 0 is 0x%02x, not a "
                         "printable character",
                         c->id, w->rbuf[0]);
                    return;
                }
                c->cg_phase = (uint8_t)(w->rbuf[0] - ' ');
                c->have_phase = true;
            }
            size_t bad = bench_chargen_check(c->cg_phase, c->recvd, w->rbuf, len);
            if (bad < len) {
                uint64_t off = c->recvd + bad;
                fail(w,
                     "connection %u: wrong chargen byte at offset %" PRIu64
                     ": got 0x%02x, expected 0x%02x",
                     c->id, off, w->rbuf[bad], bench_chargen_byte(c->cg_phase, off));
                return;
            }
            c->recvd += len;
            if (w->measuring) {
                uint64_t take = len;
                if (o->rounds) {
                    uint64_t left = o->rounds * o->size_min - c->counted_bytes;
                    take = take < left ? take : left;
                }
                w->served += c->counted_bytes == 0 && take > 0;
                c->counted_bytes += take;
                w->bytes += take;
            }
        } else {
            fail(w, "connection %u: discard server sent %zu bytes at offset %" PRIu64,
                 c->id, len, c->recvd);
            return;
        }
        c->last_progress = *now;
        if (len < IO_BUF && !hup)
            break; /* a short read drained the socket; no EAGAIN round trip */
    }
    if (o->mode == MODE_CHARGEN && o->rounds && w->measuring &&
        c->counted_bytes >= o->rounds * o->size_min) {
        conn_close(w, c);
        return;
    }
    if (progressed) {
        if (o->rounds && w->measuring && c->n == 0 && c->counted_started >= o->rounds) {
            conn_close(w, c);
            return;
        }
        conn_pump(w, c, *now);
    }
}

static void on_event(struct worker *w, struct conn *c, uint32_t events, uint64_t *now)
{
    if (c->state == CS_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        conn_connected(w, c, *now);
        if (w->stop)
            return;
        if (w->kicked)
            conn_pump(w, c, *now);
        events &= ~(uint32_t)EPOLLOUT; /* a fresh socket is writable */
    }
    if (c->state != CS_OPEN)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        conn_read(w, c, events, now);
        if (w->stop || c->state != CS_OPEN)
            return;
    }
    if (events & EPOLLOUT) {
        c->wblocked = false;
        if (w->o->mode == MODE_DISCARD)
            conn_pump(w, c, *now);
        else
            conn_send(w, c, *now);
    }
}

/* Is connection c waiting on the server (so silence counts as a stall)? */
static bool conn_waiting(const struct worker *w, const struct conn *c)
{
    switch (w->o->mode) {
    case MODE_ECHO:
    case MODE_REQUEST:
        return c->n > 0;
    case MODE_DISCARD:
        return c->wblocked;
    case MODE_CHARGEN:
        return true;
    }
    return false;
}

/* What connection c waits for, for the report: "waits for 64 bytes". */
static void awaited(const struct worker *w, const struct conn *c, char *out, size_t n)
{
    switch (w->o->mode) {
    case MODE_ECHO:
        snprintf(out, n, "waits for %" PRIu64 " echoed bytes", c->sent - c->recvd);
        break;
    case MODE_REQUEST:
        snprintf(out, n, "waits for %" PRIu64 " reply bytes", c->rqueued - c->recvd);
        break;
    case MODE_DISCARD:
        snprintf(out, n, "cannot send %" PRIu64 " bytes", c->queued - c->sent);
        break;
    case MODE_CHARGEN:
        snprintf(out, n, "waits for any byte");
        break;
    }
}

/* An open connection that waits on the server and got nothing for the
 * stall timeout: count it, name it, close it (so --rounds can finish), and
 * let the others run on. The run fails at the end. */
static void stall(struct worker *w, struct conn *c, uint64_t now)
{
    char what[80], msg[sizeof(g_stallmsg)];
    awaited(w, c, what, sizeof(what));
    snprintf(msg, sizeof(msg),
             "connection %u: no progress for %.1f s at offset %" PRIu64 ": %s (%" PRIu64
             " bytes sent, %" PRIu64 " received)",
             c->id, (double)(now - c->last_progress) / 1e9, c->recvd, what, c->sent,
             c->recvd);
    uint32_t k = atomic_fetch_add(&g_stalls, 1);
    bool expected = false;
    if (atomic_compare_exchange_strong(&g_stall_named, &expected, true))
        memcpy(g_stallmsg, msg, sizeof(msg));
    if (k < STALLS_SHOWN)
        fprintf(stderr, "ringbench: stall: %s\n", msg);
    else if (k == STALLS_SHOWN)
        fprintf(stderr, "ringbench: stall: more stalled connections not shown\n");
    conn_close(w, c);
}

static void check_stalls(struct worker *w, uint64_t now)
{
    uint64_t limit = (uint64_t)(w->o->stall_timeout * 1e9);
    for (uint32_t i = 0; i < w->nconns && !w->stop; i++) {
        struct conn *c = &w->conns[i];
        bool waiting = c->state == CS_CONNECTING ||
                       (c->state == CS_OPEN && w->kicked && conn_waiting(w, c));
        if (!waiting || now - c->last_progress < limit)
            continue;
        if (c->state == CS_CONNECTING)
            fail(w, "connection %u: connect to %s made no progress for %.1f s", c->id,
                 w->o->target, w->o->stall_timeout);
        else
            stall(w, c, now);
    }
}

/* --rate: hand every slot that is due to its connection. */
static void rate_tick(struct worker *w, uint64_t now)
{
    for (;;) {
        uint64_t due = w->rate_t0 + (uint64_t)((double)w->rate_seq * w->rate_period);
        if (due > now)
            return;
        struct conn *c = &w->conns[w->rate_seq % w->nconns];
        if (c->backlog == 0)
            c->sched_seq = w->rate_seq;
        c->backlog++;
        w->rate_seq++;
        conn_pump(w, c, now);
        if (w->stop)
            return;
    }
}

static int wait_events(struct worker *w, struct epoll_event *evs, uint64_t now)
{
    uint64_t timeout = w->nready ? 0 : 250 * 1000000ull;
    if (atomic_load_explicit(&g_phase, memory_order_relaxed) == PH_CONNECT &&
        w->next_connect < w->nconns)
        timeout = 10 * 1000000ull;
    if (w->o->rate > 0 && w->kicked) {
        uint64_t due = w->rate_t0 + (uint64_t)((double)w->rate_seq * w->rate_period);
        uint64_t wait = due > now ? due - now : 0;
        if (wait < timeout)
            timeout = wait;
    }
    struct timespec ts = {.tv_sec = (time_t)(timeout / NS_PER_S),
                          .tv_nsec = (long)(timeout % NS_PER_S)};
    /* epoll_pwait2 (Linux 5.11) takes nanoseconds, which --rate needs; older
     * kernels (and valgrind) say ENOSYS once, then get milliseconds. */
    static _Atomic bool no_pwait2;
    if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
        int n = epoll_pwait2(w->ep, evs, EVENTS, &ts, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
    }
    return epoll_wait(w->ep, evs, EVENTS, (int)((timeout + 999999) / 1000000));
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    const struct opts *o = w->o;
    struct epoll_event evs[EVENTS];
    /* Timer slack would add up to 50 us to every --rate wake-up. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    uint64_t now = now_ns();
    w->next_check = now + 250 * 1000000ull;

    while (!w->stop) {
        int ph = atomic_load_explicit(&g_phase, memory_order_acquire);
        if (ph == PH_STOP)
            break;
        while (w->next_connect < w->nconns && w->connecting < CONNECT_BATCH && !w->stop)
            conn_start(w, w->next_connect++, now);
        if (ph >= PH_WARMUP) {
            bool was_measuring = w->measuring;
            w->measuring = ph == PH_MEASURE;
            if (!w->kicked) {
                w->kicked = true;
                w->rate_t0 = now;
                for (uint32_t i = 0; i < w->nconns && !w->stop; i++) {
                    w->conns[i].last_progress = now;
                    conn_pump(w, &w->conns[i], now);
                }
            } else if (w->measuring && !was_measuring) {
                /* Connections idle at the end of warmup start their counted
                 * messages now; the others on their next completion. */
                for (uint32_t i = 0; i < w->nconns && !w->stop; i++)
                    if (w->conns[i].n == 0)
                        conn_pump(w, &w->conns[i], now);
            }
        }
        if (w->stop)
            break;
        if (o->rounds && w->measuring && w->done == w->nconns)
            break;

        int n = wait_events(w, evs, now);
        now = now_ns();
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fail(w, "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n && !w->stop; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c)
                on_event(w, c, evs[i].events, &now);
        }
        if (o->rate > 0 && w->kicked && !w->stop)
            rate_tick(w, now);
        /* Pumping may re-add a connection: take the list as it is now. */
        for (uint32_t i = 0, n_ready = w->nready; i < n_ready && !w->stop; i++) {
            struct conn *c = &w->conns[w->ready[i]];
            c->on_ready = false;
            w->ready[i] = UINT32_MAX;
            if (c->state != CS_OPEN)
                continue;
            if (c->more_to_read)
                conn_read(w, c, EPOLLIN, &now);
            else
                conn_pump(w, c, now);
        }
        if (w->nready) {
            uint32_t k = 0;
            for (uint32_t i = 0; i < w->nready; i++)
                if (w->ready[i] != UINT32_MAX)
                    w->ready[k++] = w->ready[i];
            w->nready = k;
        }
        atomic_store_explicit(&w->live_rt, w->rt, memory_order_relaxed);
        atomic_store_explicit(&w->live_bytes, w->bytes, memory_order_relaxed);
        atomic_store_explicit(&w->live_served, w->served, memory_order_relaxed);
        if (now >= w->next_check) {
            w->next_check = now + 250 * 1000000ull;
            check_stalls(w, now);
        }
    }
    /* A silence that crossed the limit since the last check still counts. */
    if (!w->stop)
        check_stalls(w, now_ns());
    if (!w->t_done)
        w->t_done = now_ns();
    atomic_store_explicit(&w->live_rt, w->rt, memory_order_relaxed);
    atomic_store_explicit(&w->live_bytes, w->bytes, memory_order_relaxed);
    atomic_store_explicit(&w->live_served, w->served, memory_order_relaxed);
    atomic_fetch_add(&g_workers_done, 1);
    efd_kick(g_done_fd);
    return NULL;
}

/* -------------------------------------------------------- controller */

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
    efd_kick(g_done_fd);
}

/* What a --processes child sends its parent, then its histogram. */
struct child_report {
    double seconds, connect_s;
    uint64_t rt, bytes, fair_min, fair_max, zero, held;
    uint32_t errors, stalls;
    bool interrupted, measured;
    char error[sizeof(g_errmsg) + sizeof(g_stallmsg) + 100];
};

static struct bench_child g_child_self;
static struct bench_child *g_child; /* set in a --processes child */

/* The server while the connections are held. */
static void sample_server(const struct opts *o, struct result *r)
{
    r->have_sock = bench_sockstat_read(&r->sock);
    if (!o->server_pid)
        return;
    r->rss_kib = bench_proc_rss_kib(o->server_pid);
    r->fds = bench_proc_fd_count(o->server_pid);
}

static uint64_t sum_live(struct worker *ws, uint32_t n, bool bytes)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += atomic_load_explicit(bytes ? &ws[i].live_bytes : &ws[i].live_rt,
                                  memory_order_relaxed);
    return s;
}

/* Wait until `deadline` (ns, 0 = none), a worker reports, or a signal. */
static void controller_wait(uint64_t deadline, int max_ms)
{
    int ms = max_ms;
    if (deadline) {
        uint64_t now = now_ns();
        uint64_t left = deadline > now ? deadline - now : 0;
        if (left / 1000000 < (uint64_t)ms)
            ms = (int)((left + 999999) / 1000000);
    }
    struct pollfd pfd = {.fd = g_done_fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) > 0) {
        uint64_t v;
        ssize_t r = read(g_done_fd, &v, sizeof(v));
        (void)r;
    }
}

struct progress {
    bool on;
    uint64_t next, last_rt, last_bytes, last_t;
};

static void progress_tick(struct progress *p, const struct opts *o, struct worker *ws,
                          const char *what, uint64_t t_start)
{
    if (!p->on)
        return;
    uint64_t now = now_ns();
    if (now < p->next)
        return;
    p->next = now + NS_PER_S;
    uint64_t rt = sum_live(ws, o->threads, false), bytes = sum_live(ws, o->threads, true);
    double dt = p->last_t ? (double)(now - p->last_t) / 1e9 : 0;
    if (dt > 0 && rt >= p->last_rt && bytes >= p->last_bytes)
        fprintf(stderr, "\r\033[K[%6.1fs] %-9s %10.0f rt/s %9.2f MB/s  %u/%u connected",
                (double)(now - t_start) / 1e9, what, (double)(rt - p->last_rt) / dt,
                (double)(bytes - p->last_bytes) / dt / 1e6,
                atomic_load_explicit(&g_connected, memory_order_relaxed), o->connections);
    else
        fprintf(stderr, "\r\033[K[%6.1fs] %-9s %u/%u connected",
                (double)(now - t_start) / 1e9, what,
                atomic_load_explicit(&g_connected, memory_order_relaxed), o->connections);
    p->last_rt = rt;
    p->last_bytes = bytes;
    p->last_t = now;
}

/* Does a --duration window that ended at `end` still hold nothing for some
 * connection (for any, with --rate)? Then it runs on until every connection
 * has something measured, but for no longer than the stall timeout (by
 * then a connection still waiting is a stall). A window the server or this
 * client spent without CPU (a loaded machine) is merely longer; a
 * connection the server never serves still ends the run with nothing
 * (`zero`). */
static bool window_empty(const struct opts *o, struct worker *ws, uint64_t end)
{
    /* Open loop (--rate): a connection's turn may not come in a window,
     * so only a window with nothing at all runs on. */
    if (o->rate > 0 && sum_live(ws, o->threads, !round_trips(o)))
        return false;
    uint64_t served = 0, conns = 0;
    for (uint32_t i = 0; i < o->threads; i++) {
        served += atomic_load_explicit(&ws[i].live_served, memory_order_relaxed);
        conns += ws[i].nconns;
    }
    if (o->rate <= 0 && served >= conns)
        return false;
    return now_ns() < end + (uint64_t)(o->stall_timeout * 1e9);
}

static bool should_stop(void)
{
    return g_interrupted || atomic_load(&g_failed);
}

/* CPU and syscalls of the server over the measured interval. */
static void server_cpu(const struct opts *o, struct result *r,
                       const struct bench_proc_usage *cpu0,
                       const struct bench_proc_usage *cpu1, long long sys)
{
    if (!o->server_pid)
        return;
    if (cpu0->utime >= 0 && cpu1->utime >= 0) {
        long hz = sysconf(_SC_CLK_TCK);
        double tick = 1.0 / (double)(hz > 0 ? hz : 100);
        r->user_s = (double)(cpu1->utime - cpu0->utime) * tick;
        r->sys_s = (double)(cpu1->stime - cpu0->stime) * tick;
        r->cpu_s = r->user_s + r->sys_s;
        r->have_cpu = r->cpu_s >= 0;
        if (r->rt)
            r->cpu_us_per_rt = r->cpu_s * 1e6 / (double)r->rt;
        if (cpu0->ctxsw >= 0 && cpu1->ctxsw >= cpu0->ctxsw)
            r->ctxsw = cpu1->ctxsw - cpu0->ctxsw;
    }
    if (sys >= 0) {
        r->syscalls = sys;
        r->have_sys = true;
        if (r->rt)
            r->syscalls_per_rt = (double)sys / (double)r->rt;
    } else if (!o->quiet) {
        fprintf(stderr, "ringbench: note: perf stat unavailable or failed; syscalls "
                        "per round trip n/a\n");
    }
}

/* Why this run failed, or "": the first error; else stalled connections,
 * or nothing measured at all (a broken run must never read as a good one). */
static void verdict(const struct opts *o, const struct result *r, uint32_t stalls,
                    bool measured, char *error, size_t len)
{
    error[0] = '\0';
    if (atomic_load(&g_failed) && g_errmsg[0])
        snprintf(error, len, "%s", g_errmsg);
    else if (stalls)
        snprintf(error, len, "%u of %u connections stalled; first: %s", stalls,
                 o->connections, g_stallmsg);
    else if (!g_interrupted && measured && (round_trips(o) ? !r->rt : !r->bytes))
        snprintf(error, len, "no %s measured in %.3f s",
                 round_trips(o) ? "round trips" : "bytes", r->seconds);
}

/* Report; the exit status. */
static int conclude(const struct opts *o, const struct result *r, uint32_t errors,
                    uint32_t stalls, const char *error)
{
    if (error[0])
        fprintf(stderr, "ringbench: FAILED: %s\n", error);
    else if (g_interrupted)
        fprintf(stderr, "ringbench: interrupted\n");
    if (o->json)
        rb_report_json(o, r, errors, stalls, error[0] ? error : NULL);
    else
        rb_report_text(o, r, errors, stalls);
    fflush(stdout);
    if (error[0] || errors)
        return 1;
    return g_interrupted ? 130 : 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s,
                          .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !g_interrupted)
        ;
}

/* --processes: fork the children, keep them in step, merge what they
 * measured. Returns the exit status, or -1 in a child (which then runs
 * its slice; see bench_procs.h). */
static int run_parent(struct opts *o)
{
    struct result r = {
        .fair_min = UINT64_MAX, .rss_kib = -1, .rss0_kib = -1, .fds = -1, .ctxsw = -1};
    if (o->server_pid)
        r.rss0_kib = bench_proc_rss_kib(o->server_pid);
    fflush(stdout);
    fflush(stderr);
    struct bench_procs p;
    struct bench_child self;
    int rc = bench_procs_spawn(&p, o->processes, &self);
    if (rc < 0) {
        fprintf(stderr, "ringbench: cannot start %u processes: %s\n", o->processes,
                strerror(-rc));
        return 1;
    }
    if (rc == 1) {
        uint32_t first = (uint32_t)((uint64_t)o->connections * self.index / o->processes);
        uint32_t next =
            (uint32_t)((uint64_t)o->connections * (self.index + 1) / o->processes);
        o->id_base = first;
        o->connections = next - first;
        o->server_pid = 0; /* the parent watches the server */
        o->json = false;
        o->quiet = true;
        g_child_self = self;
        g_child = &g_child_self;
        return -1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct bench_perf perf = {.pid = -1};
    if (o->server_pid)
        bench_perf_start(&perf, o->server_pid);
    if (!o->quiet)
        fprintf(stderr, "ringbench: %u processes open %u connections...\n", o->processes,
                o->connections);
    uint64_t t_begin = now_ns();
    bool all = true;
    for (unsigned i = 0; i < p.n; i++) {
        char tag = '\0';
        if (!bench_read_all(p.up[i], &tag, 1) || tag != 'C')
            all = false;
    }
    r.connect_s = (double)(now_ns() - t_begin) / 1e9;
    bench_procs_tell(&p, all ? 'G' : 'S');
    struct bench_proc_usage cpu0 = {.utime = -1}, cpu1 = {.utime = -1};
    long long sys = -1;
    if (all && !o->rounds) {
        if (!o->quiet)
            fprintf(stderr,
                    "ringbench: all connected after %.1f s; %.0f s warm-up, %.0f s "
                    "measured\n",
                    r.connect_s, o->warmup, o->duration);
        sleep_s(o->warmup);
        if (o->server_pid) {
            bench_perf_cmd(&perf, "enable");
            if (!bench_proc_usage_read(o->server_pid, &cpu0))
                cpu0.utime = -1;
        }
    }
    struct bench_hist *total = malloc(sizeof(*total)), *h = malloc(sizeof(*h));
    if (!total || !h) {
        fprintf(stderr, "ringbench: out of memory\n");
        return 1;
    }
    bench_hist_init(total);
    r.hist = total;
    uint32_t errors = 0, stalls = 0;
    char error[sizeof(((struct child_report *)0)->error) + 32] = "";
    bool measured = true;
    for (unsigned i = 0; i < p.n; i++) {
        struct child_report rep;
        if (!bench_read_all(p.up[i], &rep, sizeof(rep)) ||
            !bench_read_all(p.up[i], h, sizeof(*h))) {
            errors++;
            if (!error[0])
                snprintf(error, sizeof(error), "process %u ended without a report", i);
            continue;
        }
        r.rt += rep.rt;
        r.bytes += rep.bytes;
        r.zero += rep.zero;
        r.held += rep.held;
        if (rep.seconds > r.seconds)
            r.seconds = rep.seconds;
        if (rep.fair_min < r.fair_min)
            r.fair_min = rep.fair_min;
        if (rep.fair_max > r.fair_max)
            r.fair_max = rep.fair_max;
        errors += rep.errors;
        stalls += rep.stalls;
        measured = measured && rep.measured;
        if (rep.interrupted)
            g_interrupted = 1;
        if (!error[0] && rep.error[0])
            snprintf(error, sizeof(error), "process %u: %s", i, rep.error);
        bench_hist_merge(total, h);
    }
    if (o->server_pid && cpu0.utime >= 0) {
        if (!bench_proc_usage_read(o->server_pid, &cpu1))
            cpu1.utime = -1;
        if (bench_perf_cmd(&perf, "disable"))
            sys = bench_perf_finish(&perf);
    }
    if (perf.pid > 0)
        bench_perf_finish(&perf);
    if (r.fair_min == UINT64_MAX)
        r.fair_min = 0;
    sample_server(o, &r); /* every connection still open */
    bench_procs_tell(&p, 'X');
    if (!bench_procs_reap(&p) && !error[0])
        snprintf(error, sizeof(error), "a process crashed");
    bench_procs_free(&p);
    server_cpu(o, &r, &cpu0, &cpu1, sys);
    if (!error[0] && !g_interrupted && measured && (round_trips(o) ? !r.rt : !r.bytes))
        snprintf(error, sizeof(error), "no %s measured in %.3f s",
                 round_trips(o) ? "round trips" : "bytes", r.seconds);
    int status = conclude(o, &r, errors, stalls, error);
    free(total);
    free(h);
    return status;
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t max_conns = 1000000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        max_conns = rl.rlim_cur > FD_RESERVE ? rl.rlim_cur - FD_RESERVE : 1;

    struct opts o;
    rb_parse_opts(&o, argc, argv, max_conns);

    signal(SIGPIPE, SIG_IGN);
    if (o.processes > 1) {
        int rc = run_parent(&o);
        if (rc >= 0)
            return rc;
        /* A child: the run below, on its slice, reporting to the parent. */
    }
    g_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g_wake_fd < 0 || g_done_fd < 0) {
        fprintf(stderr, "ringbench: eventfd: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct bench_perf perf = {.pid = -1};
    long long rss0 = -1;
    if (o.server_pid) {
        bench_perf_start(&perf, o.server_pid);
        rss0 = bench_proc_rss_kib(o.server_pid);
    }

    struct worker *ws = calloc(o.threads, sizeof(*ws));
    struct bench_hist *total = malloc(sizeof(*total));
    if (!ws || !total) {
        fprintf(stderr, "ringbench: out of memory\n");
        return 1;
    }
    bench_hist_init(total);
    for (uint32_t t = 0; t < o.threads; t++) {
        struct worker *w = &ws[t];
        w->idx = t;
        w->o = &o;
        uint32_t first = (uint32_t)((uint64_t)o.connections * t / o.threads);
        w->nconns = (uint32_t)((uint64_t)o.connections * (t + 1) / o.threads) - first;
        w->first_id = o.id_base + first;
        w->conns = calloc(w->nconns, sizeof(*w->conns));
        w->msgs = calloc((size_t)w->nconns * o.pipeline, sizeof(*w->msgs));
        w->rbuf = malloc(IO_BUF);
        w->wbuf = malloc(IO_BUF);
        w->hist = malloc(sizeof(*w->hist));
        /* Each pass may re-add what it takes: room for twice the connections. */
        w->ready = calloc(2 * (size_t)w->nconns, sizeof(*w->ready));
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!w->conns || !w->msgs || !w->rbuf || !w->wbuf || !w->hist || !w->ready ||
            w->ep < 0) {
            fprintf(stderr, "ringbench: cannot set up worker %u: %s\n", t,
                    strerror(errno));
            return 1;
        }
        bench_hist_init(w->hist);
        for (uint32_t i = 0; i < w->nconns; i++) {
            w->conns[i].fd = -1;
            w->conns[i].id = w->first_id + i;
            w->conns[i].ring = &w->msgs[(size_t)i * o.pipeline];
        }
        if (o.rate > 0)
            w->rate_period = 1e9 / (o.rate * (double)w->nconns / (double)o.connections);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, g_wake_fd, &ev);
    }

    /* Signals go to the controller only. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    uint32_t started = 0;
    for (; started < o.threads; started++) {
        int rc = pthread_create(&ws[started].tid, NULL, worker_main, &ws[started]);
        if (rc) {
            fprintf(stderr, "ringbench: pthread_create: %s\n", strerror(rc));
            atomic_store(&g_failed, true);
            set_phase(PH_STOP);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    struct progress prog = {.on = isatty(STDERR_FILENO) && !o.quiet};
    uint64_t t_begin = now_ns();
    while (!should_stop() && atomic_load(&g_connected) < o.connections) {
        controller_wait(0, 100);
        progress_tick(&prog, &o, ws, "connect", t_begin);
    }
    double connect_s = (double)(now_ns() - t_begin) / 1e9;
    if (g_child) {
        /* Every process connected before any warms up: they measure
         * together. */
        char tag = should_stop() ? 'F' : 'C';
        if (!bench_write_all(g_child->up, &tag, 1) ||
            (tag == 'C' && bench_child_next(g_child) != 'G'))
            g_interrupted = 1;
    }

    uint64_t t0 = 0, t1 = 0;
    struct bench_proc_usage cpu0 = {.utime = -1}, cpu1 = {.utime = -1};
    long long sys = -1;
    if (!should_stop() && o.warmup > 0) {
        set_phase(PH_WARMUP);
        uint64_t end = now_ns() + (uint64_t)(o.warmup * 1e9);
        while (!should_stop() && now_ns() < end) {
            controller_wait(end, 100);
            progress_tick(&prog, &o, ws, "warmup", t_begin);
        }
    }
    if (!should_stop()) {
        if (o.server_pid) {
            bench_perf_cmd(&perf, "enable");
            if (!bench_proc_usage_read(o.server_pid, &cpu0))
                cpu0.utime = -1;
        }
        t0 = now_ns();
        set_phase(PH_MEASURE);
        uint64_t end = o.rounds ? 0 : t0 + (uint64_t)(o.duration * 1e9);
        bool extended = false;
        while (!should_stop()) {
            if (o.rounds) {
                if (atomic_load(&g_workers_done) == started)
                    break;
            } else if (now_ns() >= end) {
                if (!window_empty(&o, ws, end))
                    break;
                /* A connection had nothing come back within the window:
                 * the server, or this client, did not run (a frozen or
                 * overloaded machine). Wait for its first reply, up to the
                 * stall timeout, rather than fail a run that is merely
                 * slow; the rates use the real window, so the slowness
                 * shows. */
                if (!extended && !o.quiet)
                    fprintf(stderr,
                            "ringbench: note: a connection had nothing measured in "
                            "%.3f s; the window runs on until every connection has "
                            "a reply (at most --stall-timeout=%g s more)\n",
                            o.duration, o.stall_timeout);
                extended = true;
                controller_wait(0, 10);
                continue;
            }
            controller_wait(end, 100);
            progress_tick(&prog, &o, ws, "measure", t_begin);
        }
        t1 = now_ns();
    }
    set_phase(PH_STOP);
    if (o.server_pid && t0) {
        if (!bench_proc_usage_read(o.server_pid, &cpu1))
            cpu1.utime = -1;
        if (bench_perf_cmd(&perf, "disable"))
            sys = bench_perf_finish(&perf);
    }
    if (perf.pid > 0)
        bench_perf_finish(&perf);
    for (uint32_t t = 0; t < started; t++)
        pthread_join(ws[t].tid, NULL);
    if (prog.on)
        fprintf(stderr, "\r\033[K");

    struct result r = {.hist = total,
                       .fair_min = UINT64_MAX,
                       .rss_kib = -1,
                       .rss0_kib = rss0,
                       .fds = -1,
                       .ctxsw = -1,
                       .connect_s = connect_s};
    uint64_t t_last = 0;
    for (uint32_t t = 0; t < o.threads; t++) {
        struct worker *w = &ws[t];
        r.rt += w->rt;
        r.bytes += w->bytes;
        bench_hist_merge(total, w->hist);
        if (w->t_done > t_last)
            t_last = w->t_done;
        for (uint32_t i = 0; i < w->nconns; i++) {
            const struct conn *c = &w->conns[i];
            uint64_t v = round_trips(&o) ? c->rt : c->counted_bytes;
            r.zero += v == 0;
            r.held += c->state == CS_OPEN;
            if (v < r.fair_min)
                r.fair_min = v;
            if (v > r.fair_max)
                r.fair_max = v;
        }
    }
    if (r.fair_min == UINT64_MAX)
        r.fair_min = 0;
    if (o.rounds && t_last && t_last < t1 && !should_stop())
        t1 = t_last;
    r.seconds = t0 && t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    sample_server(&o, &r);
    server_cpu(&o, &r, &cpu0, &cpu1, sys);
    uint32_t errors = atomic_load(&g_errors);
    uint32_t stalls = atomic_load(&g_stalls);
    char error[sizeof(((struct child_report *)0)->error)];
    verdict(&o, &r, stalls, t0 != 0, error, sizeof(error));
    int status = 0;
    if (g_child) {
        /* The parent reports; it also looks at the server while our
         * connections are still open, so we wait for its 'X'. */
        struct child_report rep = {.seconds = r.seconds,
                                   .connect_s = r.connect_s,
                                   .rt = r.rt,
                                   .bytes = r.bytes,
                                   .fair_min = r.fair_min,
                                   .fair_max = r.fair_max,
                                   .zero = r.zero,
                                   .held = r.held,
                                   .errors = errors,
                                   .stalls = stalls,
                                   .interrupted = g_interrupted,
                                   .measured = t0 != 0};
        snprintf(rep.error, sizeof(rep.error), "%s", error);
        if (bench_write_all(g_child->up, &rep, sizeof(rep)) &&
            bench_write_all(g_child->up, total, sizeof(*total)))
            while (bench_child_next(g_child) == 'S')
                ;
        status = error[0] || errors ? 1 : 0;
    } else {
        status = conclude(&o, &r, errors, stalls, error);
    }
    fflush(stdout);

    for (uint32_t t = 0; t < o.threads; t++) {
        struct worker *w = &ws[t];
        for (uint32_t i = 0; i < w->nconns; i++)
            if (w->conns[i].fd >= 0)
                close(w->conns[i].fd);
        close(w->ep);
        free(w->conns);
        free(w->msgs);
        free(w->rbuf);
        free(w->wbuf);
        free(w->hist);
        free(w->ready);
    }
    free(ws);
    free(total);
    close(g_wake_fd);
    close(g_done_fd);
    return status;
}
