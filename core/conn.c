#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "loop.h"
#include "protocol.h"

/* A piece of queued output. Three kinds, by where the bytes live:
 *   lent   - in a pool buffer (bid >= 0): echo's zero-copy path;
 *   heap   - in data[] behind this header (cap > 0): copies, coalesced;
 *   static - in memory that outlives the connection (chargen's table). */
struct rs_chunk {
    struct rs_chunk *next;
    const uint8_t *ptr; /* next byte to send */
    uint32_t len;       /* bytes left to send */
    int32_t bid;        /* lent buffer, or -1 */
    uint32_t cap;       /* heap: size of data[]; 0 otherwise */
    uint8_t data[];
};

/* Keep a few recycled nodes per loop: the hot path should not malloc. */
#define CACHE_MAX 1024u
/* Big enough to coalesce many small pipelined messages, small enough that
 * thousands of connections copying under pressure stay cheap. */
#define HEAP_CHUNK_MIN 4000u

static void on_recv(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *c);
static void on_send(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *c);
static void on_ctl(struct rs_loop *loop, struct rs_op *op, const struct rs_completion *c);
static void maybe_progress(struct rs_conn *c);

static struct rs_chunk *chunk_get(struct rs_loop *loop)
{
    struct rs_chunk *k = loop->free_chunks;
    if (k) {
        loop->free_chunks = k->next;
        loop->nfree_chunks--;
        return k;
    }
    return malloc(sizeof(*k));
}

static void chunk_put(struct rs_loop *loop, struct rs_chunk *k)
{
    if (k->bid >= 0) {
        loop->ops->buf_release(loop, (uint16_t)k->bid);
    }
    if (k->cap > 0 || loop->nfree_chunks >= CACHE_MAX) {
        free(k);
        return;
    }
    k->next = loop->free_chunks;
    loop->free_chunks = k;
    loop->nfree_chunks++;
}

void rs_conn_cache_fini(struct rs_loop *loop)
{
    while (loop->free_chunks) {
        struct rs_chunk *k = loop->free_chunks;
        loop->free_chunks = k->next;
        free(k);
    }
    loop->nfree_chunks = 0;
    while (loop->free_conns) {
        struct rs_conn *c = loop->free_conns;
        loop->free_conns = c->next;
        free(c);
    }
    loop->nfree_conns = 0;
}

static void enqueue(struct rs_conn *c, struct rs_chunk *k)
{
    k->next = NULL;
    if (c->tail)
        c->tail->next = k;
    else
        c->head = k;
    c->tail = k;
    c->pending += k->len;
}

static bool over_limit(const struct rs_conn *c)
{
    return c->pending > c->loop->cfg->max_pending;
}

/* Open, or lingering after a graceful finish (reading to the client's EOF,
 * dropping what comes). */
static bool wants_input(const struct rs_conn *c)
{
    return c->state == RS_CONN_OPEN || (c->state == RS_CONN_CLOSING && c->lingering);
}

/* A backend refused a cancel, shutdown or close (its submission queue was
 * full, or it ran out of memory): nothing was issued, and nothing will
 * complete for it. The loop calls rs_conn_retry() on a later turn; until
 * then the connection stays on loop->conns with retry set. */
static void want_retry(struct rs_conn *c)
{
    c->loop->stats.refused++;
    if (!c->retry) {
        c->retry = true;
        c->loop->nretry++;
    }
}

/* Ask the backend to end op early. Only an accepted cancel (or -ENOENT:
 * the op already finished and its completion is on the way) counts as
 * issued; a refusal is retried. */
static bool cancel_op(struct rs_conn *c, struct rs_op *op)
{
    int rc = c->loop->ops->cancel(c->loop, op);
    if (rc == 0 || rc == -ENOENT)
        return true;
    want_retry(c);
    return false;
}

static void cancel_recv(struct rs_conn *c)
{
    if (c->recv_armed && !c->recv_cancel)
        c->recv_cancel = cancel_op(c, &c->recv_op);
}

static void cancel_send(struct rs_conn *c)
{
    if (c->send_busy && !c->send_cancel)
        c->send_cancel = cancel_op(c, &c->send_op);
}

static void arm_recv(struct rs_conn *c)
{
    if (!wants_input(c) || c->eof || c->recv_armed || c->starved || c->paused)
        return;
    c->recv_op.flags = RS_OPF_MULTISHOT;
    int rc = c->loop->ops->submit(c->loop, &c->recv_op);
    if (rc < 0) {
        rs_conn_abort(c);
        return;
    }
    c->recv_armed = true;
    c->inflight++;
}

static void start_send(struct rs_conn *c)
{
    if (c->send_busy || !c->head || c->state == RS_CONN_CLOSED)
        return;
    if (c->state == RS_CONN_CLOSING && !c->graceful)
        return;
    struct rs_chunk *k = c->head;
    assert(k->len > 0);
    c->send_op.buf = k->ptr;
    c->send_op.len = k->len;
    /* Static chunks (chargen's table) may be sent zero-copy without a hold. */
    c->send_op.flags = (k->bid < 0 && k->cap == 0) ? RS_OPF_STATIC_BUF : 0;
    int rc = c->loop->ops->submit(c->loop, &c->send_op);
    if (rc < 0) {
        rs_conn_abort(c);
        return;
    }
    c->send_busy = true;
    c->inflight++;
}

struct rs_conn *rs_conn_open(struct rs_loop *loop, int fd, bool reject)
{
    struct rs_conn *c = loop->free_conns;
    uint8_t gens[3] = {0, 0, 0};
    if (c) {
        loop->free_conns = c->next;
        loop->nfree_conns--;
        /* Keep the ops' generations counting across reuse, so a stale
         * completion for the previous owner can never match. */
        gens[0] = c->recv_op.bk_gen;
        gens[1] = c->send_op.bk_gen;
        gens[2] = c->ctl_op.bk_gen;
    } else {
        c = malloc(sizeof(*c));
        if (!c)
            return NULL;
    }
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->fd = fd;
    c->state = RS_CONN_OPEN;
    c->last_active_ms = loop->now_ms;
    rs_op_init(&c->recv_op, RS_OP_RECV, fd, on_recv, c);
    rs_op_init(&c->send_op, RS_OP_SEND, fd, on_send, c);
    rs_op_init(&c->ctl_op, RS_OP_CLOSE, fd, on_ctl, c);
    c->recv_op.bk_gen = gens[0];
    c->send_op.bk_gen = gens[1];
    c->ctl_op.bk_gen = gens[2];
    c->next = loop->conns;
    if (loop->conns)
        loop->conns->prev = c;
    loop->conns = c;
    loop->nconns++;
    if (reject) {
        loop->stats.rejected++;
        rs_conn_abort(c);
        return c;
    }
    loop->stats.accepted++;
    if (loop->proto->on_open)
        loop->proto->on_open(c);
    arm_recv(c);
    return c;
}

/* Bytes that still fit in the last queued chunk: 0 unless it is a heap
 * chunk (lent and static chunks are never appended to). */
static size_t tail_room(const struct rs_conn *c)
{
    const struct rs_chunk *t = c->tail;
    if (!t || t->cap == 0)
        return 0;
    return (size_t)(t->data + t->cap - (t->ptr + t->len));
}

static void queue_chunk(struct rs_conn *c, struct rs_chunk *k, const uint8_t *ptr,
                        uint32_t len, int32_t bid, uint32_t cap)
{
    k->ptr = ptr;
    k->len = len;
    k->bid = bid;
    k->cap = cap;
    enqueue(c, k);
    start_send(c);
}

void rs_conn_send_lent(struct rs_conn *c, const uint8_t *data, uint32_t len, uint16_t bid)
{
    struct rs_loop *loop = c->loop;
    if (c->state != RS_CONN_OPEN) { /* stopping: nothing more is echoed */
        rs_conn_release(c, bid);
        return;
    }
    /* Holding a lent buffer is free only while the pool has plenty: under
     * pressure (or behind a heap chunk with room) copy and give it back, so
     * a client that never reads cannot pin the buffers its neighbours need. */
    uint32_t reserve = loop->pool.count / 4 ? loop->pool.count / 4 : 1;
    bool pressure = loop->pool.lent > loop->pool.count - reserve;
    if (tail_room(c) >= len || pressure) {
        loop->stats.copies++;
        rs_conn_send_copy(c, data, len);
        rs_conn_release(c, bid);
        return;
    }
    struct rs_chunk *k = chunk_get(loop);
    if (!k) {
        rs_conn_release(c, bid);
        rs_conn_abort(c);
        return;
    }
    queue_chunk(c, k, data, len, bid, 0);
}

void rs_conn_send_copy(struct rs_conn *c, const uint8_t *data, uint32_t len)
{
    if (len == 0)
        return;
    if (tail_room(c) >= len) {
        /* Appending is safe even while this chunk is being sent: data[]
         * never moves, and the in-flight send covers only the old length. */
        struct rs_chunk *t = c->tail;
        memcpy((uint8_t *)t->ptr + t->len, data, len);
        t->len += len;
        c->pending += len;
        start_send(c);
        return;
    }
    uint32_t cap = len > HEAP_CHUNK_MIN ? len : HEAP_CHUNK_MIN;
    struct rs_chunk *k = malloc(sizeof(*k) + cap);
    if (!k) {
        rs_conn_abort(c);
        return;
    }
    memcpy(k->data, data, len);
    queue_chunk(c, k, k->data, len, -1, cap);
}

void rs_conn_send_static(struct rs_conn *c, const uint8_t *data, uint32_t len)
{
    if (len == 0)
        return;
    struct rs_chunk *k = chunk_get(c->loop);
    if (!k) {
        rs_conn_abort(c);
        return;
    }
    queue_chunk(c, k, data, len, -1, 0);
}

void rs_conn_release(struct rs_conn *c, uint16_t bid)
{
    c->loop->ops->buf_release(c->loop, bid);
}

uint64_t rs_conn_pending(const struct rs_conn *c)
{
    return c->pending;
}

/* Drop queued output, except a chunk the kernel may still be reading. */
static void drop_queue(struct rs_conn *c)
{
    struct rs_chunk *k = c->head;
    struct rs_chunk *keep = NULL;
    if (k && c->send_busy) {
        keep = k;
        k = k->next;
        keep->next = NULL;
    }
    while (k) {
        struct rs_chunk *n = k->next;
        c->pending -= k->len;
        chunk_put(c->loop, k);
        k = n;
    }
    c->head = c->tail = keep;
}

static void unstarve_remove(struct rs_conn *c)
{
    if (!c->starved)
        return;
    struct rs_loop *loop = c->loop;
    if (c->starved_prev)
        c->starved_prev->starved_next = c->starved_next;
    else
        loop->starved = c->starved_next;
    if (c->starved_next)
        c->starved_next->starved_prev = c->starved_prev;
    else
        loop->starved_tail = c->starved_prev;
    c->starved_next = c->starved_prev = NULL;
    c->starved = false;
}

static void starve(struct rs_conn *c)
{
    struct rs_loop *loop = c->loop;
    assert(!c->starved);
    c->starved = true;
    c->starved_next = NULL;
    c->starved_prev = loop->starved_tail;
    if (loop->starved_tail)
        loop->starved_tail->starved_next = c;
    else
        loop->starved = c;
    loop->starved_tail = c;
}

void rs_conn_abort(struct rs_conn *c)
{
    if (c->state == RS_CONN_CLOSED)
        return;
    c->state = RS_CONN_CLOSING;
    c->graceful = false;
    c->lingering = false;
    unstarve_remove(c);
    cancel_recv(c);
    cancel_send(c);
    drop_queue(c);
    maybe_progress(c);
}

void rs_conn_finish(struct rs_conn *c)
{
    if (c->state != RS_CONN_OPEN)
        return;
    c->state = RS_CONN_CLOSING;
    c->graceful = true;
    /* Keep reading (to drop input until EOF) unless the peer already sent
     * its EOF or the recv is paused for backpressure: that resumes once
     * the output is gone. */
    c->lingering = !c->eof;
    maybe_progress(c);
}

void rs_conn_unstarve(struct rs_conn *c)
{
    unstarve_remove(c);
    arm_recv(c);
}

static void free_conn(struct rs_conn *c)
{
    struct rs_loop *loop = c->loop;
    assert(c->inflight == 0 && !c->recv_armed && !c->send_busy);
    assert(!c->starved);
    if (c->retry) { /* a refused cancel whose op has ended since */
        c->retry = false;
        loop->nretry--;
    }
    drop_queue(c);
    assert(c->head == NULL && c->pending == 0);
    if (loop->proto->on_close)
        loop->proto->on_close(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        loop->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    loop->nconns--;
    loop->stats.closed++;
    c->state = RS_CONN_CLOSED;
    if (loop->nfree_conns < CACHE_MAX) {
        c->next = loop->free_conns;
        loop->free_conns = c;
        loop->nfree_conns++;
    } else {
        free(c);
    }
    rs_listener_conn_closed(loop);
}

/* Submit the shutdown or close op. A refusal is not a programming error:
 * the io_uring backend says -EBUSY when its queue is full, the epoll
 * backend -ENOMEM. Nothing is in flight then, so the caller records
 * nothing, and rs_conn_retry() tries again on a later loop turn. */
static bool submit_ctl(struct rs_conn *c, uint8_t kind)
{
    assert(!c->close_issued);
    c->ctl_op.kind = kind;
    c->ctl_op.flags = 0;
    int rc = c->loop->ops->submit(c->loop, &c->ctl_op);
    if (rc < 0) {
        want_retry(c);
        return false;
    }
    c->inflight++;
    return true;
}

/* Move a closing connection forward: shutdown after the last byte of a
 * graceful close, then the close op once nothing else is in flight. */
static void maybe_progress(struct rs_conn *c)
{
    if (c->state == RS_CONN_OPEN) {
        if (c->eof && !c->head && !c->recv_armed) {
            c->state = RS_CONN_CLOSING;
            c->graceful = true;
        } else {
            return;
        }
    }
    if (c->state != RS_CONN_CLOSING)
        return;
    if (c->graceful && c->head) {
        start_send(c);
        return;
    }
    if (c->graceful && !c->shut_done && !c->send_busy) {
        /* A lingering recv may still be in flight: shutdown(SHUT_WR) does
         * not disturb it. */
        c->shut_done = submit_ctl(c, RS_OP_SHUTDOWN);
        return;
    }
    if (c->lingering && !c->eof) {
        c->paused = false; /* nothing is queued any more */
        arm_recv(c);
        if (c->recv_armed || c->starved)
            return; /* until EOF, an error, or the drain deadline */
    }
    if (c->inflight > 0)
        return;
    if (!c->close_issued)
        c->close_issued = submit_ctl(c, RS_OP_CLOSE);
}

void rs_conn_retry(struct rs_conn *c)
{
    if (!c->retry)
        return;
    c->retry = false;
    c->loop->nretry--;
    /* Whatever was refused and is still wanted: the recv's cancel
     * (backpressure, or an abort), the send's cancel (an abort), then the
     * shutdown or close that maybe_progress submits. */
    if (c->paused || !wants_input(c))
        cancel_recv(c);
    if (c->state == RS_CONN_CLOSING && !c->graceful)
        cancel_send(c);
    maybe_progress(c);
}

/* The backend failed for good: nothing will complete. Free what the
 * connection holds in memory; its lent buffers go with the pool, its
 * socket with the process. */
void rs_conn_abandon(struct rs_conn *c)
{
    struct rs_chunk *k = c->head;
    while (k) {
        struct rs_chunk *n = k->next;
        free(k); /* every node is malloc'd: lent, heap and static alike */
        k = n;
    }
    c->head = c->tail = NULL;
    free(c);
}

static void on_ctl(struct rs_loop *loop, struct rs_op *op,
                   const struct rs_completion *comp)
{
    struct rs_conn *c = op->data;
    (void)loop;
    (void)comp; /* a failed shutdown still ends in close; close cannot be retried */
    assert(!(comp->flags & RS_CF_MORE));
    assert(c->inflight > 0);
    c->inflight--;
    if (op->kind == RS_OP_CLOSE) {
        free_conn(c);
        return;
    }
    maybe_progress(c);
}

static void on_recv(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *comp)
{
    struct rs_conn *c = op->data;
    int res = comp->res;
    if (!(comp->flags & RS_CF_MORE)) {
        assert(c->recv_armed && c->inflight > 0);
        c->recv_armed = false;
        c->recv_cancel = false;
        c->inflight--;
    }
    if (res > 0) {
        assert(comp->flags & RS_CF_BUFFER);
        loop->stats.recvs++;
        c->last_active_ms = loop->now_ms;
        if (c->state == RS_CONN_OPEN) {
            loop->stats.bytes_in += (uint64_t)res;
            const uint8_t *p = rs_bufpool_ptr(&loop->pool, comp->bid);
            loop->proto->on_data(c, p, (uint32_t)res, comp->bid);
        } else {
            loop->stats.dropped += (uint64_t)res;
            rs_conn_release(c, comp->bid); /* stopping: input is dropped */
        }
        /* Backpressure: stop reading while too much output is queued. */
        if (over_limit(c)) {
            c->paused = true;
            cancel_recv(c);
        }
    } else {
        assert(!(comp->flags & RS_CF_BUFFER));
        if (res == 0) {
            c->eof = true;
        } else if (res == -ENOBUFS) {
            /* Not an error: the pool is empty. Re-armed by the loop once
             * buffers come back, whichever connection returns them. */
            loop->stats.enobufs++;
            if (wants_input(c) && !c->recv_armed && !c->starved)
                starve(c);
        } else if (res != -ECANCELED) {
            rs_conn_abort(c);
        }
    }
    arm_recv(c);
    maybe_progress(c);
}

static void on_send(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *comp)
{
    struct rs_conn *c = op->data;
    int res = comp->res;
    assert(c->send_busy && c->inflight > 0 && !(comp->flags & RS_CF_MORE));
    c->send_busy = false;
    c->send_cancel = false;
    c->inflight--;
    loop->stats.sends++;
    if (res <= 0) {
        /* ECONNRESET, EPIPE, ECANCELED...: this connection only. A zero
         * result for a non-empty send means the same: no progress. */
        rs_conn_abort(c);
        return;
    }
    struct rs_chunk *k = c->head;
    assert(k && (uint32_t)res <= k->len);
    loop->stats.bytes_out += (uint64_t)res;
    c->last_active_ms = loop->now_ms;
    k->ptr += res;
    k->len -= (uint32_t)res;
    c->pending -= (uint64_t)res;
    if (k->len == 0) {
        c->head = k->next;
        if (!c->head)
            c->tail = NULL;
        chunk_put(loop, k);
        loop->stats.round_trips++;
    }
    if (c->state == RS_CONN_CLOSING && !c->graceful) {
        drop_queue(c);
        maybe_progress(c);
        return;
    }
    if (!c->head && c->state == RS_CONN_OPEN && !c->eof && loop->proto->on_drained)
        loop->proto->on_drained(c);
    start_send(c);
    if (c->paused && c->pending <= loop->cfg->max_pending / 2) {
        c->paused = false;
        arm_recv(c);
    }
    maybe_progress(c);
}
