/* The stream state machine (see stream.h for the contract with owners,
 * stream_int.h for how its files divide the work): a stream's life —
 * created on accept, closed gracefully, reset or aborted, freed when its
 * close op completed — and its input, the recv op. */
#include "stream_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "protocol.h"

static void on_recv(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *c);

/* What a ping-pong round trip touches lies in the (aligned) stream's
 * first three cache lines, each field in the line stream.h puts it in:
 * a field moved to another line adds a miss per round trip with many
 * connections. */
#define FIELD_END(field)                                                                 \
    (offsetof(struct rs_stream, field) + sizeof(((struct rs_stream *)0)->field))
#define IN_LINE(field, line)                                                             \
    (offsetof(struct rs_stream, field) >= (line)*RS_STREAM_LINE &&                       \
     FIELD_END(field) <= ((line) + 1) * RS_STREAM_LINE)
_Static_assert(IN_LINE(loop, 0) && IN_LINE(cbs, 0) && IN_LINE(pending, 0) &&
                   IN_LINE(lowat, 0) && IN_LINE(head, 0) && IN_LINE(relay_from, 0) &&
                   IN_LINE(state, 0) && IN_LINE(relay_hold, 0),
               "the state line of a stream spills over");
_Static_assert(IN_LINE(send_op, 1) && IN_LINE(slot_ptr, 1) && IN_LINE(slot_len, 1) &&
                   IN_LINE(slot_bid, 1) && IN_LINE(send_chunks, 1) &&
                   IN_LINE(inflight, 1),
               "the send line of a stream spills over");
_Static_assert(IN_LINE(recv_op, 2) && IN_LINE(relay_to, 2) && IN_LINE(relay_count, 2),
               "the receive line of a stream spills over");
_Static_assert(RS_STREAM_ALIGN % RS_STREAM_LINE == 0, "streams start on a line");
/* maybe_progress tests both with one load (stream.h). */
_Static_assert(offsetof(struct rs_stream, eof) / 4 ==
                   offsetof(struct rs_stream, shut_wanted) / 4,
               "eof and shut_wanted no longer share an aligned word");

/* A backend refused a cancel, shutdown or close (its submission queue was
 * full, or it ran out of memory): nothing was issued, and nothing will
 * complete for it. The loop calls rs_stream_retry() on a later turn; until
 * then the stream stays on loop->streams with retry set. */
static void want_retry(struct rs_stream *s)
{
    s->loop->stats.refused++;
    if (!s->retry) {
        s->retry = true;
        s->loop->nretry++;
    }
}

/* Ask the backend to end op early. Only an accepted cancel (or -ENOENT:
 * the op already finished and its completion is on the way) counts as
 * issued; a refusal is retried. */
static bool cancel_op(struct rs_stream *s, struct rs_op *op)
{
    int rc = s->loop->ops->cancel(s->loop, op);
    if (rc == 0 || rc == -ENOENT)
        return true;
    want_retry(s);
    return false;
}

static void cancel_recv(struct rs_stream *s)
{
    if (s->recv_armed && !s->recv_cancel)
        s->recv_cancel = cancel_op(s, &s->recv_op);
}

static void cancel_send(struct rs_stream *s)
{
    if (s->send_busy && !s->send_cancel)
        s->send_cancel = cancel_op(s, &s->send_op);
}

void stream_cancel_connect(struct rs_stream *s)
{
    if (s->connect_busy && !s->connect_cancel)
        s->connect_cancel = cancel_op(s, &s->ctl_op);
}

void stream_fail(struct rs_stream *s, int reason)
{
    rs_stream_abort_reason(s, reason);
}

/* A recv or send failed: the peer reset the connection (ECONNRESET; EPIPE
 * once the reset was reported), or another error. Counted once per stream,
 * apart from the resets we send (resets_out). */
void stream_peer_failed(struct rs_stream *s, int res)
{
    if ((res == -ECONNRESET || res == -EPIPE) && s->close_reason == 0)
        s->loop->stats.resets_in++;
    stream_fail(s, res);
}

void stream_arm_recv(struct rs_stream *s)
{
    /* Armed already is the common case: a multishot recv stays armed
     * across its completions, and this runs after each of them. */
    if (s->recv_armed || s->starved || !wants_input(s))
        return;
    s->recv_op.flags = opf(s, RS_OPF_MULTISHOT);
    int rc = s->loop->ops->submit(s->loop, &s->recv_op);
    if (rc < 0) {
        stream_fail(s, rc);
        return;
    }
    s->recv_armed = true;
    s->inflight++;
}

/* A stream struct from the loop's cache, or a fresh one, linked into
 * loop->streams. */
struct rs_stream *stream_new(struct rs_loop *loop, int fd, bool direct,
                             const struct rs_stream_cbs *cbs, void *data)
{
    /* Room in the timer heap first, so that this stream's timers (and its
     * protocol's) can always be started (timer.h). */
    if (rs_timer_reserve(loop, RS_TIMERS_PER_STREAM * (loop->nstreams + 1) +
                                   RS_TIMER_LOOP_SLOTS) < 0)
        return NULL;
    struct rs_stream *s = loop->free_streams;
    uint8_t gens[3] = {0, 0, 0};
    if (s) {
        loop->free_streams = s->next;
        loop->nfree_streams--;
        /* Keep the ops' generations counting across reuse, so a stale
         * completion for the previous owner can never match. */
        gens[0] = s->recv_op.bk_gen;
        gens[1] = s->send_op.bk_gen;
        gens[2] = s->ctl_op.bk_gen;
    } else {
        /* Aligned, so the fields a round trip touches share three cache
         * lines (stream.h); free() takes it back. */
        size_t bytes =
            (sizeof(*s) + RS_STREAM_ALIGN - 1) & ~(size_t)(RS_STREAM_ALIGN - 1);
        s = aligned_alloc(RS_STREAM_ALIGN, bytes);
        if (!s)
            return NULL;
        s->sendv = NULL;
    }
    assert((uintptr_t)s % RS_STREAM_ALIGN == 0);
    struct rs_sendv *sendv = s->sendv;
    memset(s, 0, sizeof(*s));
    s->sendv = sendv;
    s->loop = loop;
    s->cbs = cbs;
    s->data = data;
    s->fd = fd;
    s->direct = direct;
    s->reading = true;
    rs_timer_unref(&s->timer); /* the stream itself keeps the loop alive */
    s->lowat = loop->cfg->max_pending / 2;
    s->last_active_ms = rs_loop_now(loop);
    rs_op_init(&s->recv_op, RS_OP_RECV, fd, on_recv, s);
    rs_op_init(&s->send_op, RS_OP_SEND, fd, stream_on_send, s);
    rs_op_init(&s->ctl_op, RS_OP_CLOSE, fd, stream_on_ctl, s);
    s->recv_op.bk_gen = gens[0];
    s->send_op.bk_gen = gens[1];
    s->ctl_op.bk_gen = gens[2];
    s->next = loop->streams;
    if (loop->streams)
        loop->streams->prev = s;
    loop->streams = s;
    loop->nstreams++;
    return s;
}

struct rs_stream *rs_stream_accept(struct rs_loop *loop, int fd, bool direct, bool reject)
{
    const struct rs_protocol *proto = loop->proto;
    struct rs_stream *s = stream_new(loop, fd, direct, &proto->cbs, NULL);
    if (!s)
        return NULL;
    s->state = RS_STREAM_OPEN;
    if (reject) {
        s->cbs = NULL; /* the protocol never hears of it */
        loop->stats.rejected++;
        rs_stream_abort_reason(s, -ECONNREFUSED);
        return s;
    }
    loop->stats.accepted++;
    if (proto->on_open)
        proto->on_open(s);
    stream_arm_recv(s);
    return s;
}

static void unstarve_remove(struct rs_stream *s)
{
    if (!s->starved)
        return;
    struct rs_loop *loop = s->loop;
    if (s->starved_prev)
        s->starved_prev->starved_next = s->starved_next;
    else
        loop->starved = s->starved_next;
    if (s->starved_next)
        s->starved_next->starved_prev = s->starved_prev;
    else
        loop->starved_tail = s->starved_prev;
    s->starved_next = s->starved_prev = NULL;
    s->starved = false;
    loop->nstarved--;
}

static void starve(struct rs_stream *s)
{
    struct rs_loop *loop = s->loop;
    assert(!s->starved);
    s->starved = true;
    s->starved_next = NULL;
    s->starved_prev = loop->starved_tail;
    if (loop->starved_tail)
        loop->starved_tail->starved_next = s;
    else
        loop->starved = s;
    loop->starved_tail = s;
    loop->nstarved++;
}

void rs_stream_read_start(struct rs_stream *s)
{
    s->reading = true;
    stream_arm_recv(s);
}

void rs_stream_read_stop(struct rs_stream *s)
{
    if (s->state == RS_STREAM_CLOSING && s->lingering)
        return; /* a lingering close reads to EOF whatever the owner wanted */
    s->reading = false;
    unstarve_remove(s);
    cancel_recv(s);
    maybe_progress(s);
}

/* Whether the stream wants input changed (a relay's hold began or
 * ended): arm the recv, or cancel it. */
void stream_input_changed(struct rs_stream *s)
{
    if (wants_input(s)) {
        stream_arm_recv(s);
        return;
    }
    unstarve_remove(s);
    cancel_recv(s);
}

void rs_stream_shutdown(struct rs_stream *s)
{
    if (!rs_stream_is_open(s) || s->shut_wanted)
        return;
    s->shut_wanted = true;
    maybe_progress(s);
}

void rs_stream_abort_reason(struct rs_stream *s, int reason)
{
    if (s->state == RS_STREAM_CLOSED)
        return;
    if (s->close_reason == 0)
        s->close_reason = reason < 0 ? reason : -ECONNABORTED;
    s->state = RS_STREAM_CLOSING;
    s->graceful = false;
    s->lingering = false;
    unstarve_remove(s);
    cancel_recv(s);
    cancel_send(s);
    stream_cancel_connect(s);
    rs_timer_stop(s->loop, &s->timer);
    stream_drop_queue(s);
    maybe_progress(s);
}

/* A graceful close gives up once --drain-timeout passes without progress:
 * no send completed (a peer that stopped reading), or, everything sent, no
 * EOF came (a lingering close). Measured from the last progress, not from
 * rs_stream_close: a slow reader that keeps reading gets all its bytes. */
static void close_expired(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    struct rs_stream *s = t->data;
    /* What was not sent is cut: the peer must be able to tell. */
    rs_stream_abort_reset(s, -ETIMEDOUT);
}

/* --drain-timeout=0 means "no drain" for a stop; a close outside a stop
 * (a response with Connection: close) still needs time to send, and still
 * needs a bound. */
#define CLOSE_BOUND_DEFAULT_MS 2000

void stream_close_timer_start(struct rs_stream *s)
{
    uint32_t ms = s->loop->cfg->drain_timeout_ms;
    /* Unbounded is not an option: without its timer, abort now. (Cannot
     * happen while stream_new's reservation holds.) */
    if (rs_timer_start(s->loop, &s->timer, ms ? ms : CLOSE_BOUND_DEFAULT_MS,
                       close_expired, s) < 0)
        stream_fail(s, -ENOMEM);
}

void rs_stream_close(struct rs_stream *s)
{
    if (!rs_stream_is_open(s))
        return;
    if (s->state == RS_STREAM_CONNECTING) {
        stream_fail(s, -ECANCELED);
        return;
    }
    s->state = RS_STREAM_CLOSING;
    s->graceful = true;
    /* Keep reading (to drop input until EOF) unless the peer already sent
     * its EOF; a recv stopped by the owner resumes once the output is
     * gone. */
    s->lingering = !s->eof;
    /* Bounded whether or not the peer's EOF came already: a peer that sent
     * it and never reads would otherwise hold the stream for good (the
     * idle scan looks at open streams only). */
    stream_close_timer_start(s);
    maybe_progress(s);
}

void rs_stream_reset_reason(struct rs_stream *s, int reason)
{
    if (s->state == RS_STREAM_CLOSED)
        return;
    s->reset = true;
    if (s->close_reason == 0)
        s->close_reason = reason < 0 ? reason : -ECONNRESET;
    /* Connecting (nothing to flush yet), or aborting already: the close
     * op carries the reset. */
    if (s->state == RS_STREAM_CONNECTING ||
        (s->state == RS_STREAM_CLOSING && !s->graceful)) {
        stream_fail(s, s->close_reason);
        return;
    }
    /* Open, or closing gracefully: flush as a graceful close does, but
     * read nothing more and end with the reset instead of a FIN. */
    s->state = RS_STREAM_CLOSING;
    s->graceful = true;
    s->lingering = false;
    s->reading = false;
    unstarve_remove(s);
    cancel_recv(s);
    stream_close_timer_start(s);
    maybe_progress(s);
}

void rs_stream_abort_reset(struct rs_stream *s, int reason)
{
    if (s->state == RS_STREAM_CLOSED)
        return;
    s->reset = true;
    rs_stream_abort_reason(s, reason);
}

void rs_stream_stop(struct rs_stream *s)
{
    if (!rs_stream_is_open(s))
        return;
    if (s->state == RS_STREAM_OPEN && !s->eof)
        s->stop_hold = true;
    rs_stream_close(s);
}

void rs_stream_unstarve(struct rs_stream *s)
{
    unstarve_remove(s);
    stream_arm_recv(s);
}

void stream_free(struct rs_stream *s)
{
    struct rs_loop *loop = s->loop;
    /* Checked in release builds too: an op still in flight would complete
     * into a struct already reused for another connection. Nothing sane
     * can follow, so stop here, loudly, rather than corrupt memory. */
    if (s->inflight != 0 || s->recv_armed || s->send_busy || s->starved) {
        rs_log_error("contract violation: stream (fd %d) freed with %u ops in flight; "
                     "aborting",
                     s->fd, (unsigned)s->inflight);
        abort();
    }
    if (s->retry) { /* a refused cancel whose op has ended since */
        s->retry = false;
        loop->nretry--;
    }
    stream_drop_queue(s);
    assert(!has_output(s) && s->pending == 0);
    rs_timer_stop(loop, &s->timer);
    if (s->relay_to || s->relay_from)
        stream_relay_unlink(s); /* before on_close: the owner sees no relay left */
    if (s->prev)
        s->prev->next = s->next;
    else
        loop->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    loop->nstreams--;
    bool accepted = !s->outbound;
    if (accepted)
        loop->stats.closed++; /* accepted ones: closed = accepted + rejected */
    s->state = RS_STREAM_CLOSED;
    if (s->cbs && s->cbs->on_close)
        s->cbs->on_close(s, s->close_reason);
    if (loop->nfree_streams < CACHE_MAX) {
        s->next = loop->free_streams;
        loop->free_streams = s;
        loop->nfree_streams++;
    } else {
        free(s->sendv);
        free(s);
    }
    rs_loop_stream_closed(loop, accepted);
}

/* Submit the shutdown or close op. A refusal is not a programming error:
 * the io_uring backend says -EBUSY when its queue is full, the epoll
 * backend -ENOMEM. Nothing is in flight then, so the caller records
 * nothing, and rs_stream_retry() tries again on a later loop turn. */
static bool submit_ctl(struct rs_stream *s, uint8_t kind)
{
    assert(!s->close_issued);
    bool reset = kind == RS_OP_CLOSE && s->reset;
    s->ctl_op.kind = kind;
    s->ctl_op.flags = opf(s, reset ? RS_OPF_RESET : 0u);
    int rc = s->loop->ops->submit(s->loop, &s->ctl_op);
    if (rc < 0) {
        want_retry(s);
        return false;
    }
    s->inflight++;
    if (reset)
        s->loop->stats.resets_out++;
    return true;
}

/* Move a stream forward: send, shut down after the last queued byte when
 * asked, close once both directions are done or the stream is closing and
 * nothing is in flight. */
void stream_advance(struct rs_stream *s)
{
    if (s->state == RS_STREAM_CONNECTING || s->state == RS_STREAM_CLOSED)
        return;
    if (s->state == RS_STREAM_OPEN) {
        if (s->shut_wanted && !s->shut_done && !has_output(s) && !s->send_busy) {
            /* A recv may still be in flight: shutdown(SHUT_WR) does not
             * disturb it. */
            s->shut_done = submit_ctl(s, RS_OP_SHUTDOWN);
        }
        if (!(s->eof && s->shut_done && !s->recv_armed))
            return;
        /* Both directions are done. */
        s->state = RS_STREAM_CLOSING;
        s->graceful = true;
    }
    if (s->graceful && has_output(s)) {
        start_send(s);
        return;
    }
    if (s->graceful && s->stop_hold && !s->reset && !s->send_busy) {
        /* Closing for a stop (rs_stream_stop): the queued output is sent.
         * Input the stop dropped ends it with a reset; a FIN is for a peer
         * that finished sending, so until its EOF the stream reads and
         * drops (the first byte dropped is a cut), bounded by the drain
         * deadline, which resets. */
        if (s->cut) {
            rs_stream_abort_reset(s, -ECONNABORTED);
            return;
        }
        if (!s->eof) {
            s->reading = true;
            s->relay_hold = false; /* the output it waited for is gone */
            stream_arm_recv(s);
            if (s->recv_armed || s->starved || s->state != RS_STREAM_CLOSING ||
                !s->graceful)
                return;
        }
    }
    /* A reset sends no FIN: the peer must not see a clean EOF. */
    if (s->graceful && !s->shut_done && !s->send_busy && !s->reset) {
        s->shut_done = submit_ctl(s, RS_OP_SHUTDOWN);
        return;
    }
    if (s->lingering && !s->eof && !s->send_busy && !has_output(s)) {
        s->reading = true; /* nothing is queued any more */
        s->relay_hold = false;
        stream_arm_recv(s);
        if (s->recv_armed || s->starved)
            return; /* until EOF, an error, or the close timer */
    }
    /* No socket (its op failed): on_socket_op frees the stream. */
    if (s->inflight > 0 || s->fd < 0)
        return;
    if (!s->close_issued) {
        rs_timer_stop(s->loop, &s->timer);
        s->close_issued = submit_ctl(s, RS_OP_CLOSE);
        if (s->close_issued && !s->outbound)
            rs_loop_stream_closing(s->loop);
    }
}

void rs_stream_retry(struct rs_stream *s)
{
    if (!s->retry)
        return;
    s->retry = false;
    s->loop->nretry--;
    /* Whatever was refused and is still wanted: the recv's cancel
     * (read_stop, or an abort), the send's and the connect's cancel (an
     * abort, a connect timeout), then the shutdown or close that
     * maybe_progress submits. */
    if (!wants_input(s))
        cancel_recv(s);
    if (s->state == RS_STREAM_CLOSING && !s->graceful) {
        cancel_send(s);
        stream_cancel_connect(s);
    }
    if (s->timed_out)
        stream_cancel_connect(s);
    maybe_progress(s);
}

void stream_on_ctl(struct rs_loop *loop, struct rs_op *op,
                   const struct rs_completion *comp)
{
    struct rs_stream *s = op->data;
    (void)loop;
    (void)comp; /* only asserted: unused with NDEBUG */
    /* A failed shutdown still ends in close; close cannot be retried. */
    assert(!(comp->flags & RS_CF_MORE));
    assert(s->inflight > 0);
    s->inflight--;
    if (op->kind == RS_OP_CLOSE) {
        stream_free(s);
        return;
    }
    maybe_progress(s);
}

/* The peer's EOF: the owner decides; by default the half-close goes where
 * the bytes went: our side of this stream, or a relay's destination once
 * what the relay queued there is sent. */
static void got_eof(struct rs_stream *s)
{
    s->eof = true;
    if (s->state != RS_STREAM_OPEN)
        return;
    if (s->cbs->on_eof)
        s->cbs->on_eof(s);
    else
        rs_stream_shutdown(s->relay_to ? s->relay_to : s);
}

/* A receive that brought no data for the owner: input dropped while
 * closing, the peer's EOF, an empty pool, an error. Out of line: the
 * data case stays small. */
__attribute__((noinline)) static void recv_other(struct rs_stream *s,
                                                 const struct rs_completion *comp)
{
    struct rs_loop *loop = s->loop;
    int res = comp->res;
    if (res > 0) {
        assert(comp->flags & RS_CF_BUFFER);
        loop->stats.recvs++;
        s->active = true;
        loop->stats.dropped += (uint64_t)res;
        rs_stream_release(s, comp->bid); /* closing: input is dropped */
        /* A stop cut this input: the peer must not see a FIN. */
        if (s->stop_hold)
            s->cut = true;
        return;
    }
    assert(!(comp->flags & RS_CF_BUFFER));
    if (res == 0) {
        got_eof(s);
    } else if (res == -ENOBUFS) {
        /* Not an error: the pool is empty. Re-armed by the loop once
         * buffers come back, whichever stream returns them. */
        loop->stats.enobufs++;
        if (may_read(s) && !s->recv_armed && !s->starved)
            starve(s);
    } else if (res != -ECANCELED) {
        stream_peer_failed(s, res);
    }
}

static void on_recv(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *comp)
{
    struct rs_stream *s = stream_of(op, recv_op);
    assert(s == op->data);
    int res = comp->res;
    if (!(comp->flags & RS_CF_MORE)) {
        assert(s->recv_armed && s->inflight > 0);
        s->recv_armed = false;
        s->recv_cancel = false;
        s->inflight--;
    }
    if (res > 0 && s->state == RS_STREAM_OPEN) {
        assert(comp->flags & RS_CF_BUFFER);
        loop->stats.recvs++;
        s->active = true; /* for the idle scan: no clock read per receive */
        loop->stats.bytes_in += (uint64_t)res;
        const uint8_t *p = rs_bufpool_ptr(&loop->pool, comp->bid) + comp->off;
        if (s->relay_to)
            relay_data(s, p, (uint32_t)res, comp->bid);
        else
            s->cbs->on_data(s, p, (uint32_t)res, comp->bid);
    } else {
        recv_other(s, comp);
    }
    stream_arm_recv(s);
    maybe_progress(s);
}
