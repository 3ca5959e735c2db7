/* The schedule driver: see sched_driver.h for what it does and checks.
 *
 * How it stays legal. The driver only completes ops that the core really
 * has in flight (it wraps the fake backend's table and keeps a shadow list
 * of every submitted op), only one completion at a time, and only results a
 * kernel could produce for that op:
 *   recv: data (1..buffer size bytes, in a buffer lent from the pool, with or
 *         without RS_CF_MORE), -ENOBUFS (always possible: an io_uring buffer
 *         ring can be empty while completions that hold buffers are still
 *         unreaped), EOF, -ECONNRESET, -EPIPE; once a cancel was asked:
 *         -ECANCELED, or a natural result that raced it (at most
 *         MAX_RACES data completions with RS_CF_MORE, as CQEs already
 *         posted before the cancel was seen);
 *   send: all bytes, a short count, -ECONNRESET, -EPIPE; once cancelled,
 *         -ECANCELED or one of those;
 *   shutdown/close: 0, sometimes an error (the core ignores both).
 * With chaos, the backend also refuses calls the way a full io_uring SQ
 * does (-EBUSY, nothing issued): a recv or send (the core closes that
 * connection), a cancel, a shutdown or a close (the core must retry them
 * on a later loop turn, rs_loop_retry(), and never count them as issued).
 * Between completions it may call rs_stream_abort()/rs_stream_close() (what
 * the idle scan, SIGTERM and the drain deadline do), open a connection
 * (sometimes over the cap: rejected), or take a loop turn, which feeds
 * starved connections exactly as core/loop.c does.
 *
 * After the random part, a drain (finish all, EOF all, or abort all) must
 * bring every connection to its close completion with deterministic,
 * always-successful results; a connection left with nothing in flight that
 * is not waiting for buffers is a hang and fails the run.
 */
#include "sched_driver.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fake_backend.h"
#include "loop.h"
#include "stream.h"

#define MAX_CONNS  8  /* at once */
#define MAX_OPENED 32 /* per schedule */
#define MAX_SHADOW 64
#define MAX_RACES  3 /* data completions with MORE after a cancel was asked */
#define TRACE_LEN  256
#define FD_BASE    100
#define DRAIN_MAX  100000

char sched_context[256];
struct sched_totals sched_totals;

enum ev_type {
    EV_OPEN = 1,
    EV_REJECT,
    EV_ABORT,
    EV_FINISH,
    EV_TURN,
    EV_DONE,
    EV_SUBMIT,
    EV_CANCEL,
    EV_RELEASE,
    EV_DRAIN,
    EV_CONFIG,
};

struct ev {
    uint32_t step;
    uint8_t type, kind;
    bool cancelled;
    int fd;
    int32_t res;
    uint32_t flags, len;
    int bid;
};

/* An op the core has in flight, as the driver sees it. */
struct shadow {
    struct rs_op *op;
    int fd;
    uint8_t kind;
    bool cancelled;
    uint8_t races;
    /* RS_OP_SEND: what the send covered when submitted, and a copy of those
     * bytes: they must not change while the kernel may read them. */
    const uint8_t *buf;
    uint32_t len;
    uint8_t *snap;
};

/* The reference model of one connection. */
struct mconn {
    int fd;
    bool live; /* opened, close not completed */
    struct rs_stream *conn;
    bool rejected, aborted, errored, finished, eof;
    bool shut_submitted, close_submitted;
    uint32_t races; /* racing data completions of the current recv */
    uint8_t *rx;    /* every byte delivered by a recv, in order */
    size_t rx_len, rx_cap;
    size_t tx_len; /* bytes the server reported sent (a prefix of rx) */
};

struct sched {
    struct rs_loop loop; /* first: the backend wrappers cast back to us */
    struct rs_config cfg;
    struct sched_src *src;
    const struct sched_opts *opts;
    uint32_t step;
    uint64_t payload_rng;
    struct shadow sh[MAX_SHADOW];
    int nsh;
    struct mconn mc[MAX_OPENED];
    int nmc, target, nlive;
    uint32_t chaos; /* weight of errors, EOF, abort, finish */
    bool inject;    /* random phase with chaos: some submits fail */
    int enobufs_fd; /* delivering -ENOBUFS to this fd right now, or -1 */
    uint8_t *held;  /* per bid: lent by the driver, not yet released */
    uint64_t lends, releases;
    struct ev trace[TRACE_LEN];
    uint32_t ntrace;
};

static struct sched *current;
static bool dumped;

/* ---- choice sources -------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sched_src_seed(struct sched_src *s, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->rng = seed;
}

void sched_src_bytes(struct sched_src *s, const uint8_t *data, size_t len)
{
    memset(s, 0, sizeof(*s));
    s->data = data;
    s->len = len;
}

static uint32_t next_byte(struct sched_src *s)
{
    if (s->pos >= s->len) {
        s->exhausted = true;
        return 0;
    }
    return s->data[s->pos++];
}

uint32_t sched_pick(struct sched_src *s, uint32_t n)
{
    assert(n >= 1);
    if (n == 1)
        return 0; /* no choice: consume nothing */
    if (!s->data)
        return (uint32_t)(splitmix64(&s->rng) % n);
    uint32_t v = next_byte(s);
    if (n > 256)
        v = v << 8 | next_byte(s);
    return v % n;
}

/* ---- trace and failure ----------------------------------------------- */

static const char *kind_name(uint8_t k)
{
    switch (k) {
    case RS_OP_ACCEPT:
        return "accept";
    case RS_OP_RECV:
        return "recv";
    case RS_OP_SEND:
        return "send";
    case RS_OP_SHUTDOWN:
        return "shutdown";
    case RS_OP_CLOSE:
        return "close";
    default:
        return "?";
    }
}

static const char *res_name(int32_t res, char *buf, size_t n)
{
    switch (res) {
    case -ENOBUFS:
        return "-ENOBUFS";
    case -ECANCELED:
        return "-ECANCELED";
    case -ECONNRESET:
        return "-ECONNRESET";
    case -EPIPE:
        return "-EPIPE";
    case -ENOTCONN:
        return "-ENOTCONN";
    case -EIO:
        return "-EIO";
    case -EBUSY:
        return "-EBUSY";
    default:
        snprintf(buf, n, "%d", (int)res);
        return buf;
    }
}

static void print_ev(FILE *out, const struct ev *e)
{
    char rb[16];
    fprintf(out, "  [%4u] ", e->step);
    switch (e->type) {
    case EV_CONFIG:
        fprintf(out, "config: %d conns, %u buffers, max_pending %u, chaos %d\n", e->fd,
                e->len, e->flags, (int)e->res);
        break;
    case EV_OPEN:
        fprintf(out, "open fd=%d\n", e->fd);
        break;
    case EV_REJECT:
        fprintf(out, "open fd=%d (rejected: over the cap)\n", e->fd);
        break;
    case EV_ABORT:
        fprintf(out, "rs_stream_abort fd=%d\n", e->fd);
        break;
    case EV_FINISH:
        fprintf(out, "rs_stream_close fd=%d\n", e->fd);
        break;
    case EV_TURN:
        fprintf(out, "loop turn: feed starved, retry refused calls\n");
        break;
    case EV_DRAIN:
        fprintf(out, "drain: %s\n",
                e->res == 0   ? "finish all"
                : e->res == 1 ? "EOF on every recv"
                              : "abort all");
        break;
    case EV_DONE:
        fprintf(out, "complete %s fd=%d res=%s%s%s", kind_name(e->kind), e->fd,
                res_name(e->res, rb, sizeof(rb)), (e->flags & RS_CF_MORE) ? " MORE" : "",
                e->cancelled ? " (cancel asked)" : "");
        if (e->flags & RS_CF_BUFFER)
            fprintf(out, " bid=%d", e->bid);
        if (e->kind == RS_OP_SEND)
            fprintf(out, " of %u", e->len);
        fputc('\n', out);
        break;
    case EV_SUBMIT:
        fprintf(out, "    core: submit %s fd=%d", kind_name(e->kind), e->fd);
        if (e->kind == RS_OP_SEND)
            fprintf(out, " len=%u", e->len);
        if (e->res)
            fprintf(out, " -> refused with %s", res_name(e->res, rb, sizeof(rb)));
        fputc('\n', out);
        break;
    case EV_CANCEL:
        fprintf(out, "    core: cancel %s fd=%d%s\n", kind_name(e->kind), e->fd,
                e->res == -EBUSY ? " -> refused with -EBUSY"
                : e->res         ? " (not in flight)"
                                 : "");
        break;
    case EV_RELEASE:
        fprintf(out, "    core: release bid=%d\n", e->bid);
        break;
    default:
        fprintf(out, "?\n");
    }
}

static void record(struct sched *s, struct ev e)
{
    e.step = s->step;
    s->trace[s->ntrace++ % TRACE_LEN] = e;
    if (s->opts->trace)
        print_ev(stderr, &e);
}

void sched_dump_current(FILE *out)
{
    struct sched *s = current;
    if (dumped)
        return;
    dumped = true;
    if (sched_context[0])
        fprintf(out, "sched: reproduce with: %s\n", sched_context);
    if (!s)
        return;
    uint32_t first = s->ntrace > TRACE_LEN ? s->ntrace - TRACE_LEN : 0;
    fprintf(out, "sched: step %u; the last %u events:\n", s->step, s->ntrace - first);
    for (uint32_t i = first; i < s->ntrace; i++)
        print_ev(out, &s->trace[i % TRACE_LEN]);
    fflush(out);
}

static void fail(struct sched *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void fail(struct sched *s, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "\nsched: FAILED at step %u: ", s->step);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    sched_dump_current(stderr);
    abort();
}

void sched_totals_print(FILE *out)
{
    const struct sched_totals *t = &sched_totals;
    fprintf(out,
            "  %llu schedules, %llu steps, %llu connections (%llu rejected): %llu "
            "graceful closes, %llu aborted\n"
            "  %llu bytes in, %llu out; %llu copies under pressure, %llu -ENOBUFS, %llu "
            "starved feeds\n"
            "  %llu steps paused by backpressure, %llu cancels, %llu completions racing "
            "a cancel, %llu short sends, %llu errors, %llu refused submits\n"
            "  %llu refused cancels/shutdowns/closes, %llu loop turns retrying them\n",
            (unsigned long long)t->schedules, (unsigned long long)t->steps,
            (unsigned long long)t->conns, (unsigned long long)t->rejected,
            (unsigned long long)t->graceful_closes,
            (unsigned long long)t->abortive_closes, (unsigned long long)t->bytes_in,
            (unsigned long long)t->bytes_out, (unsigned long long)t->copies,
            (unsigned long long)t->enobufs, (unsigned long long)t->starved_fed,
            (unsigned long long)t->paused_steps, (unsigned long long)t->cancels,
            (unsigned long long)t->races, (unsigned long long)t->partial_sends,
            (unsigned long long)t->errors, (unsigned long long)t->submit_failures,
            (unsigned long long)t->refusals, (unsigned long long)t->retry_turns);
}

/* ---- model look-ups -------------------------------------------------- */

static struct sched *of(struct rs_loop *loop)
{
    return (struct sched *)(void *)loop;
}

static struct mconn *mconn_of(struct sched *s, int fd)
{
    int i = fd - FD_BASE;
    if (i < 0 || i >= s->nmc)
        fail(s, "op for fd %d, which the driver never opened", fd);
    return &s->mc[i];
}

static int shadow_find(struct sched *s, const struct rs_op *op)
{
    for (int i = 0; i < s->nsh; i++)
        if (s->sh[i].op == op)
            return i;
    return -1;
}

static int shadow_count(struct sched *s, int fd, int kind)
{
    int n = 0;
    for (int i = 0; i < s->nsh; i++)
        if (s->sh[i].fd == fd && (kind < 0 || s->sh[i].kind == kind))
            n++;
    return n;
}

static void shadow_remove(struct sched *s, int i)
{
    free(s->sh[i].snap);
    s->sh[i] = s->sh[--s->nsh];
}

static bool in_conn_list(struct sched *s, const struct rs_stream *c, int fd)
{
    for (struct rs_stream *p = s->loop.streams; p; p = p->next)
        if (p == c && p->fd == fd)
            return true;
    return false;
}

static bool in_starved_list(struct sched *s, const struct rs_stream *c)
{
    for (struct rs_stream *p = s->loop.starved; p; p = p->starved_next)
        if (p == c)
            return true;
    return false;
}

/* loop->starved is a FIFO: doubly linked, with a tail pointer. */
static void check_starved_list(struct sched *s)
{
    const struct rs_stream *prev = NULL;
    int n = 0;
    for (struct rs_stream *p = s->loop.starved; p; p = p->starved_next) {
        if (p->starved_prev != prev || !p->starved)
            fail(s, "loop->starved is corrupt at fd %d", p->fd);
        if (++n > MAX_OPENED)
            fail(s, "loop->starved loops");
        prev = p;
    }
    if (s->loop.starved_tail != prev)
        fail(s, "loop->starved_tail does not point at the last starved connection");
}

/* ---- the backend wrappers: the fake, plus the model's checks --------- */

/* With chaos, the backend refuses about one call in 16 of those the core
 * must retry (cancel, shutdown, close). */
static bool refuse_now(struct sched *s)
{
    return s->inject && sched_pick(s->src, 16) == 0 && !s->src->exhausted;
}

static int sk_submit(struct rs_loop *loop, struct rs_op *op)
{
    struct sched *s = of(loop);
    struct mconn *m = mconn_of(s, op->fd);
    bool refuse_ctl =
        (op->kind == RS_OP_SHUTDOWN || op->kind == RS_OP_CLOSE) && refuse_now(s);
    if (!m->live || m->close_submitted)
        fail(s, "%s submitted on fd %d after its close op", kind_name(op->kind), op->fd);
    if (op->data != m->conn && m->conn)
        fail(s, "%s op of fd %d does not point at its connection", kind_name(op->kind),
             op->fd);
    switch (op->kind) {
    case RS_OP_RECV:
        if (shadow_count(s, op->fd, RS_OP_RECV))
            fail(s, "a second recv on fd %d", op->fd);
        if (m->eof)
            fail(s, "recv re-armed on fd %d after EOF", op->fd);
        /* After a finish the core reads on past its shutdown(SHUT_WR), dropping
         * input until the peer's EOF (a lingering close). */
        if (m->shut_submitted && !m->finished)
            fail(s, "recv armed on fd %d after shutdown", op->fd);
        if (m->conn && m->conn->pending > s->cfg.max_pending)
            fail(s, "recv armed on fd %d with %llu bytes pending (max_pending %llu)",
                 op->fd, (unsigned long long)m->conn->pending,
                 (unsigned long long)s->cfg.max_pending);
        if (s->enobufs_fd == op->fd)
            fail(s,
                 "recv on fd %d re-armed from inside its -ENOBUFS completion: with no "
                 "buffer free it would spin",
                 op->fd);
        m->races = 0;
        break;
    case RS_OP_SEND:
        if (shadow_count(s, op->fd, RS_OP_SEND))
            fail(s, "a second send in flight on fd %d", op->fd);
        if (op->len == 0 || !op->buf)
            fail(s, "empty send on fd %d", op->fd);
        if (m->shut_submitted)
            fail(s, "send on fd %d after shutdown(SHUT_WR)", op->fd);
        break;
    case RS_OP_SHUTDOWN:
        if (m->shut_submitted)
            fail(s, "second shutdown on fd %d", op->fd);
        {
            int busy = shadow_count(s, op->fd, -1);
            if (m->finished)
                busy -= shadow_count(s, op->fd, RS_OP_RECV); /* lingering */
            if (busy)
                fail(s, "shutdown on fd %d while %d ops are in flight", op->fd, busy);
        }
        if (m->aborted || m->errored || m->rejected)
            fail(s, "graceful shutdown on fd %d, which was aborted or failed", op->fd);
        if (!m->eof && !m->finished)
            fail(s, "shutdown on fd %d without EOF or finish", op->fd);
        if (m->tx_len != m->rx_len)
            fail(s,
                 "graceful close of fd %d loses data: %zu bytes received, %zu echoed "
                 "before shutdown",
                 op->fd, m->rx_len, m->tx_len);
        m->shut_submitted = !refuse_ctl;
        break;
    case RS_OP_CLOSE:
        if (shadow_count(s, op->fd, -1))
            fail(s, "close on fd %d while %d ops are in flight (close must be last)",
                 op->fd, shadow_count(s, op->fd, -1));
        if (!m->shut_submitted && !(m->aborted || m->errored || m->rejected))
            fail(s,
                 "fd %d closed without shutdown, but it was neither aborted nor failed "
                 "(eof=%d finished=%d, %zu received, %zu echoed)",
                 op->fd, m->eof, m->finished, m->rx_len, m->tx_len);
        m->close_submitted = !refuse_ctl;
        break;
    default:
        fail(s, "unexpected op kind %u on fd %d", op->kind, op->fd);
    }
    if (refuse_ctl) {
        sched_totals.refusals++;
        record(s, (struct ev){
                      .type = EV_SUBMIT, .kind = op->kind, .fd = op->fd, .res = -EBUSY});
        return -EBUSY;
    }
    /* A backend may refuse an op (submission queue full...): the core must
     * then close that connection, and only that one. Not in the drain. */
    if (s->inject && (op->kind == RS_OP_RECV || op->kind == RS_OP_SEND) &&
        sched_pick(s->src, 64) == 0 && !s->src->exhausted) {
        m->errored = true;
        sched_totals.submit_failures++;
        record(s, (struct ev){
                      .type = EV_SUBMIT, .kind = op->kind, .fd = op->fd, .res = -EBUSY});
        return -EBUSY;
    }
    int rc = fake_backend.submit(loop, op);
    if (rc < 0)
        return rc;
    if (s->nsh >= MAX_SHADOW)
        fail(s, "too many ops in flight");
    struct shadow *h = &s->sh[s->nsh++];
    *h = (struct shadow){.op = op, .fd = op->fd, .kind = op->kind};
    if (op->kind == RS_OP_SEND) {
        h->buf = op->buf;
        h->len = op->len;
        h->snap = malloc(op->len);
        assert(h->snap);
        fake_send_gather(op, h->snap);
    }
    record(s, (struct ev){
                  .type = EV_SUBMIT, .kind = op->kind, .fd = op->fd, .len = op->len});
    return 0;
}

static int sk_cancel(struct rs_loop *loop, struct rs_op *op)
{
    struct sched *s = of(loop);
    int i = shadow_find(s, op);
    if (i >= 0 && refuse_now(s)) {
        /* Not issued: the recv goes on delivering until the core asks
         * again, each completion up to one more buffer of output. */
        struct mconn *m = mconn_of(s, op->fd);
        if (op->kind == RS_OP_RECV)
            m->races++;
        sched_totals.refusals++;
        record(s, (struct ev){
                      .type = EV_CANCEL, .kind = op->kind, .fd = op->fd, .res = -EBUSY});
        return -EBUSY;
    }
    int rc = fake_backend.cancel(loop, op);
    if ((i >= 0) != (rc == 0))
        fail(s, "the driver and the fake disagree on whether %s fd=%d is in flight",
             kind_name(op->kind), op->fd);
    if (i >= 0)
        s->sh[i].cancelled = true;
    sched_totals.cancels++;
    record(s, (struct ev){.type = EV_CANCEL, .kind = op->kind, .fd = op->fd, .res = rc});
    return rc;
}

static void sk_buf_release(struct rs_loop *loop, uint16_t bid)
{
    struct sched *s = of(loop);
    record(s, (struct ev){.type = EV_RELEASE, .bid = bid});
    if (bid >= s->loop.pool.count)
        fail(s, "release of bid %u: no such buffer", bid);
    if (!s->held[bid])
        fail(s, "bid %u released twice (or never lent)", bid);
    const uint8_t *lo = rs_bufpool_ptr(&s->loop.pool, bid), *hi = lo + s->loop.pool.size;
    for (int i = 0; i < s->nsh; i++) {
        const struct shadow *h = &s->sh[i];
        if (h->kind == RS_OP_SEND && fake_send_reads(h->op, lo, hi))
            fail(s, "bid %u released while the send of fd %d still reads it", bid, h->fd);
    }
    s->held[bid] = 0;
    s->releases++;
    fake_backend.buf_release(loop, bid);
}

/* fake_backend is an extern object, not a constant expression, so the
 * wrapping table is filled at run time. */
static struct rs_backend_ops wrapped;

static const struct rs_backend_ops *backend_table(void)
{
    if (!wrapped.name) {
        wrapped = fake_backend;
        wrapped.name = "sched";
        wrapped.submit = sk_submit;
        wrapped.cancel = sk_cancel;
        wrapped.buf_release = sk_buf_release;
    }
    return &wrapped;
}

/* ---- invariants checked after every step ----------------------------- */

static void check(struct sched *s)
{
    uint32_t held = 0;
    for (uint32_t b = 0; b < s->loop.pool.count; b++)
        held += s->held[b];
    if (held != s->loop.pool.lent)
        fail(s, "the pool counts %u buffers lent, the driver %u", s->loop.pool.lent,
             held);
    int live = 0;
    for (int i = 0; i < s->nmc; i++) {
        struct mconn *m = &s->mc[i];
        if (!m->live)
            continue;
        live++;
        struct rs_stream *c = m->conn;
        if (!in_conn_list(s, c, m->fd))
            fail(s,
                 "fd %d: connection missing from loop->conns before its close completed",
                 m->fd);
        int n = shadow_count(s, m->fd, -1);
        if (c->inflight != n)
            fail(s, "fd %d: the core counts %u ops in flight, the backend has %d", m->fd,
                 c->inflight, n);
        if (c->starved != in_starved_list(s, c))
            fail(s, "fd %d: starved=%d but %s loop->starved", m->fd, c->starved,
                 c->starved ? "not on" : "on");
        if (c->retry && s->loop.nretry == 0)
            fail(s, "fd %d waits for a retry, but loop->nretry is 0", m->fd);
        if (n == 0 && !c->starved && !c->retry)
            fail(s,
                 "fd %d hangs: nothing in flight, not waiting for buffers (state %u, "
                 "pending %llu, paused %d, eof %d)",
                 m->fd, c->state, (unsigned long long)c->pending, !c->reading, c->eof);
        sched_totals.paused_steps += !c->reading;
        uint64_t bound =
            s->cfg.max_pending + (uint64_t)s->cfg.buffer_size * (1 + m->races);
        if (c->pending > bound)
            fail(s, "fd %d: %llu bytes pending, bound %llu (max_pending + %u recv(s))",
                 m->fd, (unsigned long long)c->pending, (unsigned long long)bound,
                 1 + m->races);
        uint64_t queued = m->rx_len - m->tx_len;
        if (c->pending > queued)
            fail(s, "fd %d: %llu bytes pending but only %llu received and not yet echoed",
                 m->fd, (unsigned long long)c->pending, (unsigned long long)queued);
    }
    check_starved_list(s);
    if ((uint32_t)live != s->loop.nstreams)
        fail(s, "loop->nstreams is %u, the driver has %d live connections",
             s->loop.nstreams, live);
    uint32_t retrying = 0;
    for (struct rs_stream *p = s->loop.streams; p; p = p->next)
        retrying += p->retry;
    if (retrying != s->loop.nretry)
        fail(s, "loop->nretry is %u, but %u connections wait for a retry", s->loop.nretry,
             retrying);
    if (s->nsh == 0 && live > 0 && s->loop.pool.lent >= s->loop.pool.count &&
        s->loop.nretry == 0)
        fail(s, "deadlock: connections starve for buffers, every buffer is held, and no "
                "op is in flight to return one");
}

/* ---- events ---------------------------------------------------------- */

static bool turn_useful(struct sched *s)
{
    struct rs_loop *loop = &s->loop;
    return (loop->starved && loop->pool.lent < loop->pool.count) || loop->nretry > 0;
}

/* A loop turn, as core/loop.c takes it: feed starved connections
 * (rs_loop_feed_starved), then retry refused calls (rs_loop_retry). */
static void feed_starved(struct sched *s)
{
    struct rs_loop *loop = &s->loop;
    if (!turn_useful(s))
        return;
    record(s, (struct ev){.type = EV_TURN});
    if (loop->starved && loop->pool.lent < loop->pool.count)
        sched_totals.starved_fed++;
    if (loop->nretry > 0)
        sched_totals.retry_turns++;
    rs_loop_feed_starved(loop);
    rs_loop_retry(loop);
}

static void open_conn(struct sched *s, bool reject)
{
    assert(s->nmc < MAX_OPENED);
    struct mconn *m = &s->mc[s->nmc];
    *m = (struct mconn){.fd = FD_BASE + s->nmc, .live = true, .rejected = reject};
    s->nmc++;
    s->nlive++;
    record(s, (struct ev){.type = reject ? EV_REJECT : EV_OPEN, .fd = m->fd});
    m->conn = rs_stream_accept(&s->loop, m->fd, false, reject);
    if (!m->conn)
        fail(s, "rs_stream_accept failed");
}

static void rx_append(struct mconn *m, const uint8_t *p, uint32_t len)
{
    if (m->rx_len + len > m->rx_cap) {
        m->rx_cap = (m->rx_len + len) * 2 + 256;
        m->rx = realloc(m->rx, m->rx_cap);
        assert(m->rx);
    }
    memcpy(m->rx + m->rx_len, p, len);
    m->rx_len += len;
}

/* Deliver one completion for shadow op i. len > 0 with a recv: lend a
 * buffer with that many fresh bytes (res is then len). */
static void deliver(struct sched *s, int i, int32_t res, uint32_t flags, uint32_t len)
{
    struct shadow h = s->sh[i];
    struct mconn *m = mconn_of(s, h.fd);
    uint16_t bid = 0;
    if (h.kind == RS_OP_RECV && len > 0) {
        uint8_t data[256];
        assert(len <= sizeof(data) && len <= s->loop.pool.size);
        for (uint32_t k = 0; k < len; k += 8) {
            uint64_t r = splitmix64(&s->payload_rng);
            memcpy(data + k, &r, len - k < 8 ? len - k : 8);
        }
        bid = fake_lend(&s->loop, data, len);
        s->held[bid] = 1;
        s->lends++;
        /* Input after rs_stream_close is dropped by the core, not echoed. */
        if (!m->finished)
            rx_append(m, data, len);
        res = (int32_t)len;
        flags |= RS_CF_BUFFER;
        if (h.cancelled) { /* raced the cancel: one more recv's worth allowed */
            sched_totals.races++;
            s->sh[i].races++;
            m->races++;
        }
    }
    if (h.kind == RS_OP_RECV) {
        if (res == 0)
            m->eof = true;
        else if (res < 0 && res != -ECANCELED && res != -ENOBUFS) {
            m->errored = true;
            sched_totals.errors++;
        }
    }
    if (h.kind == RS_OP_SEND) {
        /* Check the bytes before the callback: it may release the buffer. */
        uint8_t *cur = malloc(h.len);
        assert(cur);
        fake_send_gather(h.op, cur);
        if (memcmp(cur, h.snap, h.len) != 0)
            fail(s, "fd %d: the bytes of an in-flight send changed under the kernel",
                 h.fd);
        if (res > 0) {
            if ((uint32_t)res > h.len)
                fail(s, "driver bug: send result %d > len %u", res, h.len);
            sched_totals.partial_sends += (uint32_t)res < h.len;
            if (m->tx_len + (size_t)res > m->rx_len)
                fail(s, "fd %d echoes more than it received (%zu + %d > %zu)", h.fd,
                     m->tx_len, res, m->rx_len);
            if (memcmp(cur, m->rx + m->tx_len, (size_t)res) != 0)
                fail(s,
                     "fd %d echoes bytes that are not the next ones received (stream "
                     "offset %zu, %d bytes)",
                     h.fd, m->tx_len, res);
            m->tx_len += (size_t)res;
        } else {
            m->errored = true;
            sched_totals.errors++;
        }
        free(cur);
    }
    record(s, (struct ev){.type = EV_DONE,
                          .kind = h.kind,
                          .fd = h.fd,
                          .res = res,
                          .flags = flags,
                          .len = h.len,
                          .bid = bid,
                          .cancelled = h.cancelled});
    if (!(flags & RS_CF_MORE))
        shadow_remove(s, i);
    fake_complete(&s->loop, h.op, res, flags, bid);
    s->enobufs_fd = h.kind == RS_OP_RECV && res == -ENOBUFS ? h.fd : -1;
    if (fake_run(&s->loop) != 1)
        fail(s, "the fake did not deliver exactly one completion");
    s->enobufs_fd = -1;
    if (h.kind == RS_OP_CLOSE) {
        if (in_conn_list(s, m->conn, h.fd))
            fail(s, "fd %d still listed after its close completed", h.fd);
        if (shadow_count(s, h.fd, -1))
            fail(s, "fd %d freed with ops in flight", h.fd);
        m->live = false;
        m->conn = NULL;
        if (m->shut_submitted)
            sched_totals.graceful_closes++;
        else
            sched_totals.abortive_closes++;
        s->nlive--;
    }
}

/* What may happen to an in-flight op next, with weights. */
enum { O_DATA_MORE, O_DATA_ONE, O_RES, O_PARTIAL };
struct outcome {
    uint8_t what;
    int32_t res;
    uint32_t w;
};

static uint32_t add(struct outcome *o, uint32_t *n, uint8_t what, int32_t res, uint32_t w)
{
    if (w) {
        o[*n] = (struct outcome){.what = what, .res = res, .w = w};
        (*n)++;
    }
    return w;
}

static void complete_random(struct sched *s, int i)
{
    struct shadow *h = &s->sh[i];
    struct outcome o[12];
    uint32_t n = 0, total = 0, ch = s->chaos;
    bool buf = s->loop.pool.nfree > 0;
    switch (h->kind) {
    case RS_OP_RECV:
        if (!h->cancelled) {
            total += add(o, &n, O_DATA_MORE, 0, buf ? 20 : 0);
            total += add(o, &n, O_DATA_ONE, 0, buf ? 4 : 0);
            total += add(o, &n, O_RES, -ENOBUFS, buf ? 1 : 20);
            total += add(o, &n, O_RES, 0, ch);
            total += add(o, &n, O_RES, -ECONNRESET, ch);
            total += add(o, &n, O_RES, -EPIPE, ch / 2);
        } else {
            total += add(o, &n, O_RES, -ECANCELED, 12);
            total += add(o, &n, O_DATA_MORE, 0, buf && h->races < MAX_RACES ? 4 : 0);
            total += add(o, &n, O_DATA_ONE, 0, buf ? 2 : 0);
            total += add(o, &n, O_RES, -ENOBUFS, 1);
            total += add(o, &n, O_RES, 0, 1);
            total += add(o, &n, O_RES, -ECONNRESET, 1);
        }
        break;
    case RS_OP_SEND:
        if (!h->cancelled) {
            total += add(o, &n, O_RES, (int32_t)h->len, 10);
            total += add(o, &n, O_PARTIAL, 0, h->len > 1 ? 6 : 0);
            total += add(o, &n, O_RES, -ECONNRESET, ch);
            total += add(o, &n, O_RES, -EPIPE, ch);
        } else {
            total += add(o, &n, O_RES, -ECANCELED, 10);
            total += add(o, &n, O_RES, (int32_t)h->len, 3);
            total += add(o, &n, O_PARTIAL, 0, h->len > 1 ? 3 : 0);
            total += add(o, &n, O_RES, -EPIPE, 1);
        }
        break;
    default: /* shutdown, close: never cancelled by the core */
        total += add(o, &n, O_RES, 0, 10);
        total += add(o, &n, O_RES, h->kind == RS_OP_SHUTDOWN ? -ENOTCONN : -EIO, 1);
        break;
    }
    uint32_t r = sched_pick(s->src, total);
    uint32_t k = 0;
    while (r >= o[k].w) {
        r -= o[k].w;
        k++;
    }
    switch (o[k].what) {
    case O_DATA_MORE:
    case O_DATA_ONE: {
        uint32_t len = 1 + sched_pick(s->src, s->loop.pool.size);
        deliver(s, i, 0, o[k].what == O_DATA_MORE ? RS_CF_MORE : 0, len);
        break;
    }
    case O_PARTIAL:
        deliver(s, i, (int32_t)(1 + sched_pick(s->src, h->len - 1)), 0, 0);
        break;
    default:
        deliver(s, i, o[k].res, 0, 0);
    }
}

/* rs_stream_abort: nothing more is read or sent, so whatever is in flight
 * must have been asked to stop (or, when the backend refused the cancel,
 * be waiting for the retry). rs_stream_close: input from then on is read
 * and dropped until EOF (a lingering close), so nothing is cancelled. */
static void do_abort(struct sched *s, struct mconn *m)
{
    m->aborted = true;
    record(s, (struct ev){.type = EV_ABORT, .fd = m->fd});
    rs_stream_abort(m->conn);
    for (int i = 0; i < s->nsh; i++)
        if (s->sh[i].fd == m->fd &&
            (s->sh[i].kind == RS_OP_RECV || s->sh[i].kind == RS_OP_SEND) &&
            !s->sh[i].cancelled && !m->conn->retry)
            fail(s, "rs_stream_abort left the %s of fd %d running, not cancelled",
                 kind_name(s->sh[i].kind), m->fd);
}

static void do_finish(struct sched *s, struct mconn *m)
{
    m->finished = true;
    record(s, (struct ev){.type = EV_FINISH, .fd = m->fd});
    rs_stream_close(m->conn);
}

static struct mconn *pick_live(struct sched *s)
{
    uint32_t k = sched_pick(s->src, (uint32_t)s->nlive);
    for (int i = 0; i < s->nmc; i++)
        if (s->mc[i].live && k-- == 0)
            return &s->mc[i];
    fail(s, "driver bug: no live connection %u", k);
}

enum { C_OP, C_OPEN, C_ABORT, C_FINISH, C_TURN };

/* One random step. false when nothing at all can happen. */
static bool step(struct sched *s)
{
    struct {
        uint8_t what;
        int i;
        uint32_t w;
    } c[MAX_SHADOW + 4];
    uint32_t n = 0, total = 0;
    for (int i = 0; i < s->nsh; i++) {
        uint32_t w = s->sh[i].kind == RS_OP_RECV || s->sh[i].kind == RS_OP_SEND ? 8 : 4;
        c[n].what = C_OP;
        c[n].i = i;
        c[n++].w = w;
        total += w;
    }
    if (s->nlive < s->target && s->nmc < MAX_OPENED) {
        c[n].what = C_OPEN;
        c[n++].w = 2;
        total += 2;
    }
    if (s->nlive > 0 && s->chaos > 0) {
        c[n].what = C_ABORT;
        c[n++].w = 1;
        c[n].what = C_FINISH;
        c[n++].w = 1;
        total += 2;
    }
    if (turn_useful(s)) {
        c[n].what = C_TURN;
        c[n++].w = 4;
        total += 4;
    }
    if (total == 0)
        return false;
    uint32_t r = sched_pick(s->src, total), k = 0;
    while (r >= c[k].w) {
        r -= c[k].w;
        k++;
    }
    switch (c[k].what) {
    case C_OP:
        complete_random(s, c[k].i);
        break;
    case C_OPEN:
        open_conn(s, sched_pick(s->src, 16) == 0);
        break;
    case C_ABORT:
        do_abort(s, pick_live(s));
        break;
    case C_FINISH:
        do_finish(s, pick_live(s));
        break;
    case C_TURN:
        feed_starved(s);
        break;
    }
    return true;
}

/* Bring every connection to its end with results that always succeed. */
static void drain(struct sched *s)
{
    int mode = (int)sched_pick(s->src, 3);
    record(s, (struct ev){.type = EV_DRAIN, .res = mode});
    for (int i = 0; i < s->nmc; i++) {
        struct mconn *m = &s->mc[i];
        if (!m->live)
            continue;
        if (mode == 0)
            do_finish(s, m);
        else if (mode == 2)
            do_abort(s, m);
    }
    check(s);
    for (int iter = 0; s->nlive > 0; iter++) {
        s->step++;
        if (iter > DRAIN_MAX)
            fail(s, "drain does not end");
        feed_starved(s);
        if (s->nsh == 0)
            fail(s, "drain stuck: %d connections live, nothing in flight", s->nlive);
        struct shadow *h = &s->sh[0];
        switch (h->kind) {
        case RS_OP_RECV:
            deliver(s, 0, h->cancelled ? -ECANCELED : 0, 0, 0);
            break;
        case RS_OP_SEND:
            deliver(s, 0, (int32_t)h->len, 0, 0);
            break;
        default:
            deliver(s, 0, 0, 0, 0);
        }
        check(s);
    }
}

uint32_t sched_run(struct sched_src *src, const struct sched_opts *opts)
{
    static const uint32_t pendings[] = {200, 200, 64, 1000};
    static const uint32_t chaoses[] = {0, 1, 2, 4};
    struct sched *s = calloc(1, sizeof(*s));
    assert(s);
    s->src = src;
    s->opts = opts;
    s->payload_rng = 0x5eed;
    s->enobufs_fd = -1;
    rs_config_defaults(&s->cfg);
    s->cfg.buffers = sched_pick(src, 4) == 0 ? 4 : 16;
    s->cfg.buffer_size = 64;
    s->cfg.max_pending = pendings[sched_pick(src, 4)];
    s->cfg.protocol = "echo";
    s->chaos = chaoses[sched_pick(src, 4)];
    s->target = 1 + (int)sched_pick(src, MAX_CONNS);
    uint32_t steps = opts->max_steps;
    if (!src->data)
        steps = 1 + sched_pick(src, opts->max_steps);
    current = s;
    dumped = false;
    char err[128];
    if (rs_loop_init(&s->loop, backend_table(), &s->cfg, err, sizeof(err)) != 0)
        fail(s, "rs_loop_init: %s", err);
    s->held = calloc(s->loop.pool.count, 1);
    assert(s->held);
    record(s, (struct ev){.type = EV_CONFIG,
                          .fd = s->target,
                          .len = s->cfg.buffers,
                          .flags = (uint32_t)s->cfg.max_pending,
                          .res = (int32_t)s->chaos});
    s->inject = s->chaos > 0;
    for (int i = 0; i < s->target; i++)
        open_conn(s, false);
    check(s);
    for (s->step = 1; s->step <= steps && !src->exhausted; s->step++) {
        if (!step(s))
            break;
        check(s);
    }
    s->inject = false;
    drain(s);
    if (s->nsh != 0 || fake(&s->loop)->ninflight != 0)
        fail(s, "ops in flight after every connection closed");
    if (s->loop.pool.lent != 0 || s->lends != s->releases)
        fail(s, "buffers leaked: %u still lent (%llu lent, %llu released)",
             s->loop.pool.lent, (unsigned long long)s->lends,
             (unsigned long long)s->releases);
    uint32_t taken = s->step;
    sched_totals.schedules++;
    sched_totals.steps += taken;
    sched_totals.conns += (uint64_t)s->nmc;
    sched_totals.rejected += s->loop.stats.rejected;
    sched_totals.bytes_in += s->loop.stats.bytes_in;
    sched_totals.bytes_out += s->loop.stats.bytes_out;
    sched_totals.copies += s->loop.stats.copies;
    sched_totals.enobufs += s->loop.stats.enobufs;
    rs_loop_fini(&s->loop);
    for (int i = 0; i < s->nmc; i++)
        free(s->mc[i].rx);
    free(s->held);
    current = NULL;
    free(s);
    return taken;
}
