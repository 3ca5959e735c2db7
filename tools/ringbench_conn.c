/* ringbench's workers: each thread's epoll loop and the connections it
 * owns, from connect to the run's end: messages sent speculatively, every
 * byte read checked against the connection's stream, round trips timed
 * into the worker's histogram, --rate's schedule, stalls named. What a run
 * is, and how the controller moves the workers through its phases:
 * ringbench.c's opening comment. */
#include "ringbench.h"

#include "bench_hist.h"
#include "bench_pattern.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>

#define CONNECT_BATCH 256u /* connects in progress per worker */
#define EVENTS        512

static _Atomic bool g_stall_named; /* the first stall is named on stderr */
#define STALLS_SHOWN 10

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

void *rb_worker_main(void *arg)
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
