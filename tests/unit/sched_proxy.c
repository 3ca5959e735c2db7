/* The schedule driver for two-socket sessions: the proxy protocol
 * (core/proxy.c) on the real stream code, over the scripted fake backend.
 *
 * Each session is a client stream the driver "accepts" and the upstream
 * stream the proxy opens with rs_stream_connect (its RS_OP_SOCKET answered
 * by the driver with a made-up descriptor, plain or direct, or -EMFILE).
 * At each step a choice source picks one legal event: a completion of any
 * op in flight (socket: a descriptor, -EMFILE; connect: 0, -ECONNREFUSED,
 * -ETIMEDOUT; recv: data in a lent buffer with
 * or without RS_CF_MORE, EOF, -ENOBUFS, -ECONNRESET; send: all, short, an
 * error; after a cancel: -ECANCELED or a result racing it), a new session,
 * an abort of one stream (what the idle timeout does), the connect timer
 * firing, or a loop turn (starved streams fed, refusals retried).
 *
 * A model per stream checks, at every step:
 *  - the bytes sent on one stream are exactly the next bytes received on
 *    the other (both directions, zero-copy and copied alike), and the
 *    bytes of an in-flight send never change;
 *  - a lent buffer is released once, never while a send still reads it;
 *  - no op after a stream's close op, no send after its shutdown, at most
 *    one recv and one send in flight, close only with nothing else;
 *  - no op on an upstream before its socket op completed, and every op
 *    carries the descriptor kind the socket op gave (RS_OPF_DIRECT);
 *  - a graceful shutdown forwards everything: SHUT_WR on one stream only
 *    after all the other stream received was sent on it;
 *  - queued output stays within --max-pending plus the receives that raced
 *    a read_stop;
 *  - a session always has something in flight or a stream waiting for
 *    buffers (no hang);
 * and at the end (every session drained: SIGTERM-style close, EOFs, or
 * aborts) that nothing is in flight, no buffer is lent and no timer is
 * left.
 */
#include "sched_proxy.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fake_backend.h"
#include "log.h"
#include "loop.h"
#include "proxy.h"
#include "stream.h"

#define MAX_SESS   6  /* at once */
#define MAX_OPENED 16 /* per schedule */
#define MAX_SHADOW 64
#define MAX_RACES  3
#define CLIENT_FD  10000 /* made-up descriptors: the fake does no IO */
#define UP_FD      20000
#define DRAIN_MAX  100000

struct sched_proxy_totals sched_proxy_totals;

struct side {
    int fd;      /* -1 until known (an upstream: at its connect) */
    bool up;     /* the upstream side */
    bool live;   /* known, close op not completed */
    bool direct; /* the socket op said RS_CF_DIRECT */
    bool shut, close_sub, errored;
    uint32_t races; /* data completions that raced a cancel of the recv */
    uint8_t *rx;    /* bytes delivered by recvs on this side */
    size_t rx_len, rx_cap;
    size_t tx_len; /* bytes sent on this side: a prefix of the other's rx */
};

struct sess {
    struct side s[2];  /* [0] client, [1] upstream */
    bool dirty;        /* an error, abort or failed connect: no graceful check */
    int sock_inflight; /* the upstream's socket op, in flight */
};

struct shadow {
    struct rs_op *op;
    int fd;
    uint8_t kind;
    bool cancelled;
    int sess; /* RS_OP_SOCKET: the session it is for (fd is -1) */
    const uint8_t *buf;
    uint32_t len;
    uint8_t *snap;
};

struct pd {
    struct rs_loop loop; /* first: the wrappers cast back */
    struct rs_config cfg;
    struct sched_src *src;
    bool trace;
    uint32_t step;
    uint64_t rng;
    struct sess ss[MAX_OPENED];
    int nss, opening;
    int next_up_fd;
    struct shadow sh[MAX_SHADOW];
    int nsh;
    uint8_t *held;
    int enobufs_fd;
};

static void fail(struct pd *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void fail(struct pd *d, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\nsched-proxy: FAILED at step %u: ", d->step);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (sched_context[0])
        fprintf(stderr, "sched-proxy: reproduce with: %s\n", sched_context);
    abort();
}

#define TRACE(d, ...)                                                                    \
    do {                                                                                 \
        if ((d)->trace) {                                                                \
            fprintf(stderr, "  [%4u] ", (d)->step);                                      \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

static struct pd *of(struct rs_loop *loop)
{
    return (struct pd *)(void *)loop;
}

static struct side *side_of(struct pd *d, int fd, struct sess **out)
{
    for (int i = 0; i < d->nss; i++)
        for (int k = 0; k < 2; k++)
            if (d->ss[i].s[k].live && d->ss[i].s[k].fd == fd) {
                if (out)
                    *out = &d->ss[i];
                return &d->ss[i].s[k];
            }
    return NULL;
}

static struct rs_stream *stream_of(struct pd *d, int fd)
{
    for (struct rs_stream *s = d->loop.streams; s; s = s->next)
        if (s->fd == fd)
            return s;
    return NULL;
}

static int shadow_count(struct pd *d, int fd, int kind)
{
    int n = 0;
    for (int i = 0; i < d->nsh; i++)
        if (d->sh[i].fd == fd && (kind < 0 || d->sh[i].kind == kind))
            n++;
    return n;
}

static const char *kname(uint8_t k)
{
    static const char *const n[] = {"?",     "accept",  "recv",   "send", "shutdown",
                                    "close", "connect", "openat", "read", "write",
                                    "statx", "handoff", "socket"};
    return k < sizeof(n) / sizeof(n[0]) ? n[k] : "?";
}

/* ---- backend wrappers ---------------------------------------------- */

static struct shadow *shadow_add(struct pd *d, struct rs_op *op)
{
    if (d->nsh >= MAX_SHADOW)
        fail(d, "too many ops in flight");
    struct shadow *h = &d->sh[d->nsh++];
    *h = (struct shadow){.op = op, .fd = op->fd, .kind = op->kind, .sess = -1};
    return h;
}

/* The upstream of the session being opened asks for its socket. */
static int socket_submit(struct pd *d, struct rs_loop *loop, struct rs_op *op)
{
    if (d->opening < 0)
        fail(d, "a socket op outside a session's open");
    struct sess *ss = &d->ss[d->opening];
    if (ss->s[1].fd >= 0 || ss->sock_inflight)
        fail(d, "a second socket op for one session");
    if (op->fd != -1 || op->len != AF_INET || !(op->flags & RS_OPF_DIRECT))
        fail(d, "socket op: fd %d, family %u, flags %#x", op->fd, op->len, op->flags);
    int rc = fake_backend.submit(loop, op);
    if (rc < 0)
        return rc;
    shadow_add(d, op)->sess = d->opening;
    ss->sock_inflight = 1;
    TRACE(d, "    core: submit socket (session %d)", d->opening);
    return 0;
}

static int pk_submit(struct rs_loop *loop, struct rs_op *op)
{
    struct pd *d = of(loop);
    struct sess *ss = NULL;
    if (op->kind == RS_OP_SOCKET)
        return socket_submit(d, loop, op);
    struct side *x = side_of(d, op->fd, &ss);
    if (!x)
        fail(d, "%s on fd %d, which no live stream owns", kname(op->kind), op->fd);
    if (x->close_sub)
        fail(d, "%s on fd %d after its close op", kname(op->kind), op->fd);
    if (!(op->flags & RS_OPF_DIRECT) != !x->direct)
        fail(d, "%s on fd %d with the wrong descriptor kind", kname(op->kind), op->fd);
    struct side *y = &ss->s[x == &ss->s[0]];
    switch (op->kind) {
    case RS_OP_CONNECT:
        if (!x->up)
            fail(d, "a connect on the client's fd %d", op->fd);
        if (shadow_count(d, op->fd, -1))
            fail(d, "a connect on fd %d with ops in flight", op->fd);
        break;
    case RS_OP_RECV:
        if (shadow_count(d, op->fd, RS_OP_RECV))
            fail(d, "a second recv on fd %d", op->fd);
        if (d->enobufs_fd == op->fd)
            fail(d, "recv on fd %d re-armed inside its -ENOBUFS completion", op->fd);
        /* Racing receives count against the other stream's queue until
         * this one reads again for real; a closing stream's recv only
         * drops what comes (a lingering close). */
        if (stream_of(d, op->fd)->state == RS_STREAM_OPEN)
            x->races = 0;
        break;
    case RS_OP_SEND:
        if (shadow_count(d, op->fd, RS_OP_SEND))
            fail(d, "a second send in flight on fd %d", op->fd);
        if (x->shut)
            fail(d, "send on fd %d after its shutdown", op->fd);
        if (!op->len || !op->buf)
            fail(d, "empty send on fd %d", op->fd);
        break;
    case RS_OP_SHUTDOWN:
        if (x->shut)
            fail(d, "a second shutdown on fd %d", op->fd);
        if (shadow_count(d, op->fd, RS_OP_SEND))
            fail(d, "shutdown on fd %d with a send in flight", op->fd);
        if (!ss->dirty && x->tx_len != y->rx_len)
            fail(d,
                 "graceful shutdown of fd %d loses data: the other side received %zu, "
                 "%zu were sent here",
                 op->fd, y->rx_len, x->tx_len);
        x->shut = true;
        sched_proxy_totals.graceful_shutdowns += !ss->dirty;
        break;
    case RS_OP_CLOSE:
        if (shadow_count(d, op->fd, -1))
            fail(d, "close on fd %d with %d ops in flight", op->fd,
                 shadow_count(d, op->fd, -1));
        x->close_sub = true;
        break;
    default:
        fail(d, "unexpected op kind %u", op->kind);
    }
    int rc = fake_backend.submit(loop, op);
    if (rc < 0)
        return rc;
    struct shadow *h = shadow_add(d, op);
    if (op->kind == RS_OP_SEND) {
        h->buf = op->buf;
        h->len = op->len;
        h->snap = malloc(op->len);
        assert(h->snap);
        fake_send_gather(op, h->snap);
    }
    TRACE(d, "    core: submit %s fd=%d%s", kname(op->kind), op->fd,
          op->kind == RS_OP_SEND ? " (send)" : "");
    return 0;
}

static int pk_cancel(struct rs_loop *loop, struct rs_op *op)
{
    struct pd *d = of(loop);
    int rc = fake_backend.cancel(loop, op);
    for (int i = 0; i < d->nsh; i++)
        if (d->sh[i].op == op) {
            if (rc != 0)
                fail(d, "the fake and the driver disagree on %s fd=%d", kname(op->kind),
                     op->fd);
            d->sh[i].cancelled = true;
        }
    sched_proxy_totals.cancels++;
    TRACE(d, "    core: cancel %s fd=%d", kname(op->kind), op->fd);
    return rc;
}

static void pk_release(struct rs_loop *loop, uint16_t bid)
{
    struct pd *d = of(loop);
    if (bid >= d->loop.pool.count || !d->held[bid])
        fail(d, "bid %u released twice (or never lent)", bid);
    const uint8_t *lo = rs_bufpool_ptr(&d->loop.pool, bid), *hi = lo + d->loop.pool.size;
    for (int i = 0; i < d->nsh; i++)
        if (d->sh[i].kind == RS_OP_SEND && fake_send_reads(d->sh[i].op, lo, hi))
            fail(d, "bid %u released while the send of fd %d reads it", bid, d->sh[i].fd);
    d->held[bid] = 0;
    fake_backend.buf_release(loop, bid);
}

static struct rs_backend_ops wrapped;

static const struct rs_backend_ops *table(void)
{
    if (!wrapped.name) {
        wrapped = fake_backend;
        wrapped.name = "sched-proxy";
        wrapped.submit = pk_submit;
        wrapped.cancel = pk_cancel;
        wrapped.buf_release = pk_release;
    }
    return &wrapped;
}

/* ---- checks -------------------------------------------------------- */

static void check(struct pd *d)
{
    uint32_t held = 0;
    for (uint32_t b = 0; b < d->loop.pool.count; b++)
        held += d->held[b];
    if (held != d->loop.pool.lent)
        fail(d, "the pool counts %u buffers lent, the driver %u", d->loop.pool.lent,
             held);
    for (int i = 0; i < d->nss; i++) {
        struct sess *ss = &d->ss[i];
        int inflight = 0, waiting = 0, live = 0;
        for (int k = 0; k < 2; k++) {
            struct side *x = &ss->s[k], *y = &ss->s[!k];
            if (!x->live)
                continue;
            live++;
            struct rs_stream *st = stream_of(d, x->fd);
            if (!st)
                fail(d, "fd %d: stream gone before its close completed", x->fd);
            int n = shadow_count(d, x->fd, -1);
            if (st->inflight != n)
                fail(d, "fd %d: the stream counts %u ops in flight, the backend %d",
                     x->fd, st->inflight, n);
            inflight += n;
            waiting += st->starved || st->retry;
            uint64_t bound = d->cfg.max_pending +
                             (uint64_t)d->cfg.buffer_size * (1 + y->races + x->races);
            if (st->pending > bound)
                fail(d, "fd %d: %llu bytes queued, bound %llu", x->fd,
                     (unsigned long long)st->pending, (unsigned long long)bound);
            if (st->pending > y->rx_len - x->tx_len)
                fail(d, "fd %d: more queued than the other side received and not sent",
                     x->fd);
        }
        inflight += ss->sock_inflight;
        if ((live || ss->sock_inflight) && !inflight && !waiting)
            fail(d, "session %d hangs: nothing in flight, nothing waiting", i);
    }
}

/* ---- events -------------------------------------------------------- */

static uint64_t mix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void open_session(struct pd *d)
{
    struct sess *ss = &d->ss[d->nss];
    memset(ss, 0, sizeof(*ss));
    ss->s[0].fd = CLIENT_FD + d->nss;
    ss->s[0].live = true;
    ss->s[1].fd = -1;
    ss->s[1].up = true;
    d->opening = d->nss++;
    TRACE(d, "open session, client fd=%d", ss->s[0].fd);
    if (!rs_stream_accept(&d->loop, ss->s[0].fd, false, false))
        fail(d, "rs_stream_accept failed");
    d->opening = -1;
    if (!ss->sock_inflight)
        fail(d, "the proxy asked for no upstream socket");
    sched_proxy_totals.sessions++;
}

static void rx_append(struct side *x, const uint8_t *p, uint32_t len)
{
    if (x->rx_len + len > x->rx_cap) {
        x->rx_cap = (x->rx_len + len) * 2 + 256;
        x->rx = realloc(x->rx, x->rx_cap);
        assert(x->rx);
    }
    memcpy(x->rx + x->rx_len, p, len);
    x->rx_len += len;
}

/* The socket op's completion: res >= 0 means a new descriptor, the
 * driver's own number (direct with flags RS_CF_DIRECT). The side is live
 * from now on: the core may close it at once (an abort came first). */
static void deliver_socket(struct pd *d, int i, int32_t res, uint32_t flags)
{
    struct shadow h = d->sh[i];
    struct sess *ss = &d->ss[h.sess];
    struct side *u = &ss->s[1];
    if (res >= 0) {
        res = UP_FD + d->next_up_fd++;
        u->fd = res;
        u->live = true;
        u->direct = (flags & RS_CF_DIRECT) != 0;
    } else {
        ss->dirty = true;
    }
    TRACE(d, "complete socket (session %d) res=%d%s%s", h.sess, res,
          (flags & RS_CF_DIRECT) ? " DIRECT" : "", h.cancelled ? " (cancel asked)" : "");
    d->sh[i] = d->sh[--d->nsh];
    ss->sock_inflight = 0;
    fake_complete(&d->loop, h.op, res, flags, 0);
    if (fake_run(&d->loop) != 1)
        fail(d, "the fake did not deliver exactly one completion");
    if (res < 0 && !ss->s[0].live)
        sched_proxy_totals.sessions_closed++;
}

static void deliver(struct pd *d, int i, int32_t res, uint32_t flags, uint32_t len)
{
    struct shadow h = d->sh[i];
    if (h.kind == RS_OP_SOCKET) {
        deliver_socket(d, i, res, flags);
        return;
    }
    struct sess *ss = NULL;
    struct side *x = side_of(d, h.fd, &ss);
    struct side *y = &ss->s[x == &ss->s[0]];
    struct rs_stream *st = stream_of(d, h.fd);
    uint16_t bid = 0;
    if (h.kind == RS_OP_RECV && len > 0) {
        uint8_t data[256];
        for (uint32_t k = 0; k < len; k += 8) {
            uint64_t r = mix64(&d->rng);
            memcpy(data + k, &r, len - k < 8 ? len - k : 8);
        }
        bid = fake_lend(&d->loop, data, len);
        d->held[bid] = 1;
        /* Bytes a closing stream drops are not forwarded: not in the model. */
        if (st->state == RS_STREAM_OPEN)
            rx_append(x, data, len);
        res = (int32_t)len;
        flags |= RS_CF_BUFFER;
        sched_proxy_totals.bytes += len;
        if (h.cancelled) {
            x->races++;
            sched_proxy_totals.races++;
        }
    }
    if (h.kind == RS_OP_RECV && res < 0 && res != -ECANCELED && res != -ENOBUFS)
        ss->dirty = true;
    if (h.kind == RS_OP_CONNECT && res < 0)
        ss->dirty = true;
    if (h.kind == RS_OP_SEND) {
        uint8_t *cur = malloc(h.len);
        assert(cur);
        fake_send_gather(h.op, cur);
        if (memcmp(cur, h.snap, h.len) != 0)
            fail(d, "fd %d: an in-flight send's bytes changed", h.fd);
        if (res > 0) {
            if (x->tx_len + (size_t)res > y->rx_len ||
                memcmp(cur, y->rx + x->tx_len, (size_t)res) != 0)
                fail(d,
                     "fd %d sends bytes that are not the next ones the other side "
                     "received (offset %zu)",
                     h.fd, x->tx_len);
            x->tx_len += (size_t)res;
        } else {
            ss->dirty = true;
        }
        free(cur);
    }
    TRACE(d, "complete %s fd=%d res=%d%s%s", kname(h.kind), h.fd, res,
          (flags & RS_CF_MORE) ? " MORE" : "", h.cancelled ? " (cancel asked)" : "");
    if (!(flags & RS_CF_MORE)) {
        free(d->sh[i].snap);
        d->sh[i] = d->sh[--d->nsh];
    }
    fake_complete(&d->loop, h.op, res, flags, bid);
    d->enobufs_fd = h.kind == RS_OP_RECV && res == -ENOBUFS ? h.fd : -1;
    if (fake_run(&d->loop) != 1)
        fail(d, "the fake did not deliver exactly one completion");
    d->enobufs_fd = -1;
    if (h.kind == RS_OP_CLOSE) {
        if (stream_of(d, h.fd))
            fail(d, "fd %d still listed after its close", h.fd);
        x->live = false;
        if (!y->live && !ss->sock_inflight)
            sched_proxy_totals.sessions_closed++;
    }
}

static uint32_t pick(struct pd *d, uint32_t n)
{
    return sched_pick(d->src, n);
}

static void complete_random(struct pd *d, int i)
{
    struct shadow *h = &d->sh[i];
    bool buf = d->loop.pool.nfree > 0;
    struct side *x = side_of(d, h->fd, NULL);
    switch (h->kind) {
    case RS_OP_SOCKET: {
        uint32_t w = pick(d, 8);
        if (h->cancelled && w < 5)
            deliver(d, i, -ECANCELED, 0, 0);
        else if (w < 7)
            deliver(d, i, 0, w & 1 ? RS_CF_DIRECT : 0, 0);
        else
            deliver(d, i, -EMFILE, 0, 0);
        return;
    }
    case RS_OP_CONNECT: {
        static const int32_t r[] = {0, 0, 0, 0, -ECONNREFUSED, -ETIMEDOUT};
        if (h->cancelled)
            deliver(d, i, pick(d, 4) ? -ECANCELED : 0, 0, 0);
        else
            deliver(d, i, r[pick(d, 6)], 0, 0);
        return;
    }
    case RS_OP_RECV: {
        uint32_t w = pick(d, 32);
        bool racing = h->cancelled;
        if (racing && w < 20) {
            deliver(d, i, -ECANCELED, 0, 0);
        } else if (buf && w < 28 && (!racing || x->races < MAX_RACES)) {
            uint32_t len = 1 + pick(d, d->loop.pool.size);
            deliver(d, i, 0, pick(d, 5) ? RS_CF_MORE : 0, len);
        } else if (w < 29 || !buf) {
            deliver(d, i, -ENOBUFS, 0, 0);
        } else if (w < 31) {
            deliver(d, i, 0, 0, 0); /* EOF */
        } else {
            deliver(d, i, -ECONNRESET, 0, 0);
        }
        return;
    }
    case RS_OP_SEND: {
        uint32_t w = pick(d, 16);
        if (h->cancelled && w < 10)
            deliver(d, i, -ECANCELED, 0, 0);
        else if (w < 9)
            deliver(d, i, (int32_t)h->len, 0, 0);
        else if (w < 15 && h->len > 1)
            deliver(d, i, (int32_t)(1 + pick(d, h->len - 1)), 0, 0);
        else
            deliver(d, i, -EPIPE, 0, 0);
        return;
    }
    default:
        deliver(d, i, pick(d, 12) ? 0 : -EIO, 0, 0);
    }
}

static struct side *pick_live(struct pd *d)
{
    int n = 0;
    for (int i = 0; i < d->nss; i++)
        for (int k = 0; k < 2; k++)
            n += d->ss[i].s[k].live;
    if (!n)
        return NULL;
    uint32_t r = pick(d, (uint32_t)n);
    for (int i = 0; i < d->nss; i++)
        for (int k = 0; k < 2; k++)
            if (d->ss[i].s[k].live && r-- == 0)
                return &d->ss[i].s[k];
    return NULL;
}

static int live_sessions(struct pd *d)
{
    int n = 0;
    for (int i = 0; i < d->nss; i++)
        n += d->ss[i].s[0].live || d->ss[i].s[1].live || d->ss[i].sock_inflight;
    return n;
}

static void loop_turn(struct pd *d)
{
    TRACE(d, "loop turn");
    rs_loop_feed_starved(&d->loop);
    rs_loop_retry(&d->loop);
}

static bool step(struct pd *d)
{
    uint32_t nops = (uint32_t)d->nsh;
    uint32_t total = nops * 4 + 3;
    uint32_t r = pick(d, total);
    if (r < nops * 4) {
        complete_random(d, (int)(r / 4));
        return true;
    }
    r -= nops * 4;
    if (r == 0 && d->nss < MAX_OPENED && live_sessions(d) < MAX_SESS) {
        open_session(d);
    } else if (r == 1) {
        struct side *x = pick_live(d);
        struct sess *ss;
        if (x && side_of(d, x->fd, &ss)) {
            TRACE(d, "abort fd=%d", x->fd);
            ss->dirty = true;
            rs_stream_abort(stream_of(d, x->fd));
        }
    } else if (r == 2 && pick(d, 4) == 0) {
        /* Time passes: the connect timers of streams still connecting
         * fire, and the bounds of graceful closes that made no progress
         * for --drain-timeout (half of it: those that did stay). */
        uint32_t k = pick(d, 3);
        uint32_t ms = k == 0   ? d->cfg.connect_timeout_ms
                      : k == 1 ? d->cfg.drain_timeout_ms / 2
                               : d->cfg.drain_timeout_ms;
        TRACE(d, "time passes: %u ms", ms);
        d->loop.now_ms += ms;
        rs_timer_run_due(&d->loop);
    } else {
        loop_turn(d);
    }
    return true;
}

static void drain(struct pd *d)
{
    uint32_t mode = pick(d, 3);
    TRACE(d, "drain mode %u", mode);
    for (struct rs_stream *s = d->loop.streams, *n; s; s = n) {
        n = s->next;
        if (mode == 0)
            rs_stream_close(s);
        else if (mode == 2)
            rs_stream_abort(s);
    }
    for (int it = 0; live_sessions(d) > 0; it++) {
        d->step++;
        if (it > DRAIN_MAX)
            fail(d, "drain does not end");
        loop_turn(d);
        check(d);
        if (d->nsh == 0) {
            /* Time passes: lingering closes end on their timer. */
            d->loop.now_ms += d->cfg.drain_timeout_ms;
            rs_timer_run_due(&d->loop);
            if (d->nsh == 0)
                fail(d, "drain stuck: %d sessions live, nothing in flight",
                     live_sessions(d));
            continue;
        }
        struct shadow *h = &d->sh[0];
        switch (h->kind) {
        case RS_OP_RECV:
            deliver(d, 0, h->cancelled ? -ECANCELED : 0, 0, 0);
            break;
        case RS_OP_SEND:
            deliver(d, 0, (int32_t)h->len, 0, 0);
            break;
        case RS_OP_CONNECT:
        case RS_OP_SOCKET:
            deliver(d, 0, h->cancelled ? -ECANCELED : 0, 0, 0);
            break;
        default:
            deliver(d, 0, 0, 0, 0);
        }
        check(d);
    }
}

uint32_t sched_proxy_run(struct sched_src *src, uint32_t max_steps, bool trace)
{
    static const uint32_t pendings[] = {100, 200, 1000, 1u << 20};
    struct pd *d = calloc(1, sizeof(*d));
    assert(d);
    d->src = src;
    d->trace = trace;
    d->rng = 0x5eed;
    d->opening = -1;
    d->enobufs_fd = -1;
    rs_log_level = -1; /* "upstream is down" is expected here */
    rs_config_defaults(&d->cfg);
    d->cfg.buffers = pick(d, 3) == 0 ? 4 : 16;
    d->cfg.buffer_size = 64;
    d->cfg.max_pending = pendings[pick(d, 4)];
    d->cfg.protocol = "proxy";
    d->cfg.connect_timeout_ms = 1000;
    char err[200];
    if (rs_proxy_parse_upstreams(&d->cfg, "127.0.0.1:7001,127.0.0.1:7002", err,
                                 sizeof(err)))
        fail(d, "upstreams: %s", err);
    if (rs_loop_init(&d->loop, table(), &d->cfg, err, sizeof(err)) != 0)
        fail(d, "rs_loop_init: %s", err);
    d->held = calloc(d->loop.pool.count, 1);
    assert(d->held);
    int first = 1 + (int)pick(d, MAX_SESS);
    for (int i = 0; i < first; i++)
        open_session(d);
    check(d);
    uint32_t steps = 1 + pick(d, max_steps);
    for (d->step = 1; d->step <= steps; d->step++) {
        step(d);
        check(d);
    }
    drain(d);
    if (d->nsh || fake(&d->loop)->ninflight)
        fail(d, "ops in flight after every session closed");
    if (d->loop.pool.lent)
        fail(d, "%u buffers still lent", d->loop.pool.lent);
    if (d->loop.nstreams)
        fail(d, "%u streams left", d->loop.nstreams);
    if (d->loop.ntimers)
        fail(d, "%u timers left", d->loop.ntimers);
    uint32_t taken = d->step;
    sched_proxy_totals.schedules++;
    sched_proxy_totals.steps += taken;
    sched_proxy_totals.connect_failed += d->loop.stats.connect_failed;
    sched_proxy_totals.copies += d->loop.stats.copies;
    sched_proxy_totals.enobufs += d->loop.stats.enobufs;
    rs_loop_fini(&d->loop);
    for (int i = 0; i < d->nss; i++)
        for (int k = 0; k < 2; k++)
            free(d->ss[i].s[k].rx);
    free(d->held);
    free(d);
    return taken;
}

void sched_proxy_totals_print(FILE *out)
{
    const struct sched_proxy_totals *t = &sched_proxy_totals;
    fprintf(
        out,
        "  %llu schedules, %llu steps, %llu sessions (%llu fully closed), %llu failed "
        "connects\n"
        "  %llu bytes received, %llu copies under pressure, %llu -ENOBUFS, %llu "
        "cancels, %llu receives racing a cancel, %llu checked half-closes\n",
        (unsigned long long)t->schedules, (unsigned long long)t->steps,
        (unsigned long long)t->sessions, (unsigned long long)t->sessions_closed,
        (unsigned long long)t->connect_failed, (unsigned long long)t->bytes,
        (unsigned long long)t->copies, (unsigned long long)t->enobufs,
        (unsigned long long)t->cancels, (unsigned long long)t->races,
        (unsigned long long)t->graceful_shutdowns);
}
