/* What the stream's own files share (none of it is for other callers):
 *   stream.c          a stream's life: creation, closing, its control op,
 *                     and its input (the recv op);
 *   stream_out.c      its output queue: the writes, the lent slot, the
 *                     chunks, and the send op;
 *   stream_connect.c  outbound streams: the socket and connect ops;
 *   stream_relay.c    the relay: input written to another stream's (or
 *                     its own) output without the owner's on_data.
 *
 * Three ops per stream: the recv (multishot while the backend allows), the
 * send (one in flight, the head of the output queue) and a control op that
 * is, in turn, the socket (outbound: RS_OP_SOCKET, the fd is -1 until it
 * completes), the connect, the shutdown and the close. `inflight` counts
 * them; the close op is submitted only when it is zero, and the struct is
 * freed only when the close op completed.
 */
#ifndef RINGSERVE_STREAM_INT_H
#define RINGSERVE_STREAM_INT_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "loop.h"
#include "op.h"
#include "stream.h"

struct rs_loop;

/* The stream one of its own ops (recv_op, send_op) belongs to, from the
 * op's address alone. Not op->data, which is the same pointer but a load
 * from the op: with hundreds of connections the op's line is a cache miss
 * when its completion comes, and the stream's lines could only be asked
 * for once it arrived; computed, they are fetched while it is on its way
 * (the completion callback starts on the predicted call target before
 * the backend's load of op->fn completes). The empty asm hides where the
 * pointer came from: else the compiler keeps both op and the stream in
 * registers (one more saved and restored per call). */
#define stream_of(op, member) stream_at((char *)(op)-offsetof(struct rs_stream, member))
static inline struct rs_stream *stream_at(char *p)
{
    __asm__("" : "+r"(p));
    return (struct rs_stream *)(void *)p;
}

/* Shared between the stream's files (see each definition). */
struct rs_stream *stream_new(struct rs_loop *loop, int fd, bool direct,
                             const struct rs_stream_cbs *cbs, void *data);
void stream_free(struct rs_stream *s);
void stream_advance(struct rs_stream *s);
void stream_fail(struct rs_stream *s, int reason);
void stream_peer_failed(struct rs_stream *s, int res);
void stream_arm_recv(struct rs_stream *s);
void stream_cancel_connect(struct rs_stream *s);
void stream_close_timer_start(struct rs_stream *s);
void stream_send_head(struct rs_stream *s);
void stream_drop_queue(struct rs_stream *s);
void stream_on_ctl(struct rs_loop *loop, struct rs_op *op, const struct rs_completion *c);
void stream_on_send(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *c);
void stream_input_changed(struct rs_stream *s);
/* The relay's (stream_relay.c). */
void stream_relay_hold(struct rs_stream *from);
void stream_relay_resume(struct rs_stream *to);
void stream_relay_unlink(struct rs_stream *s);

/* A piece of queued output. Four kinds, by where the bytes live:
 *   lent   - in a pool buffer (bid >= 0): the zero-copy path;
 *   heap   - in data[] behind this header (cap > 0): copies, coalesced;
 *   static - in memory that outlives the stream (chargen's table);
 *   ref    - in the caller's memory until a request is told (req set,
 *            rs_fs_send): like static, but never zero-copy, since the
 *            caller reuses it once told;
 *   file   - in a file (file.file_fd >= 0, ptr NULL): sent with
 *            RS_OP_SENDFILE, never through our memory; the chunk owns the
 *            descriptor and closes it when sent or dropped. */
struct rs_chunk {
    struct rs_chunk *next;
    const uint8_t *ptr;      /* next byte to send */
    uint32_t len;            /* bytes left to send */
    int32_t bid;             /* lent buffer, or -1 */
    uint32_t cap;            /* heap: size of data[]; 0 otherwise */
    struct rs_sendfile file; /* file: the next byte; file_fd -1 otherwise */
    struct rs_fs_req *req;   /* file, ref: a request told when sent or dropped */
    uint8_t data[];
};

static inline bool is_file(const struct rs_chunk *k)
{
    return k->file.file_fd >= 0;
}

/* Keep a few recycled nodes per loop: the hot path should not malloc. */
#define CACHE_MAX 1024u

/* Called after every completion and most calls: the common case, an open
 * stream with no shutdown asked and no EOF seen, has nothing to wind up,
 * and that test is inline. */
static inline void maybe_progress(struct rs_stream *s)
{
    if (!(s->state == RS_STREAM_OPEN && !s->shut_wanted && !s->eof))
        stream_advance(s);
}

/* Output waits: in the lent slot, in chunks, or both. */
static inline bool has_output(const struct rs_stream *s)
{
    return s->slot_len > 0 || s->head;
}

/* Open, or lingering after a graceful close (reading to the peer's EOF,
 * dropping what comes), and no EOF yet. */
static inline bool may_read(const struct rs_stream *s)
{
    if (s->eof)
        return false;
    return s->state == RS_STREAM_OPEN || (s->state == RS_STREAM_CLOSING && s->lingering);
}

/* The owner wants input, and no relay holds the stream back. (A closing
 * stream that reads to drop, once its output is gone, lifts both: see
 * stream_advance.) */
static inline bool wants_input(const struct rs_stream *s)
{
    return s->reading && !s->relay_hold && may_read(s);
}

/* Bytes may still be queued: open (or connecting) and not shut down. */
static inline bool accepts_output(const struct rs_stream *s)
{
    return rs_stream_is_open(s) && !s->shut_wanted;
}

/* Op flags, with the stream's descriptor kind. */
static inline uint8_t opf(const struct rs_stream *s, unsigned flags)
{
    return (uint8_t)(flags | (s->direct ? RS_OPF_DIRECT : 0u));
}

/* Output could not be queued or sent here (no memory, no descriptor, the
 * backend refused the send): what the owner wrote is cut, and the peer
 * must not take the bytes it got for the end of it: a reset, never a FIN. */
static inline void output_failed(struct rs_stream *s, int err)
{
    rs_stream_abort_reset(s, err);
}

/* The send submitted: in flight until on_send. */
static inline void send_submitted(struct rs_stream *s, int rc)
{
    if (rc < 0) {
        output_failed(s, rc);
        return;
    }
    s->send_busy = true;
    s->inflight++;
}

/* Send the slot: the queue's first entry, alone, with op flags `flags`
 * (RS_OPF_MORE when a file chunk follows: one segment). */
static inline void send_slot(struct rs_stream *s, uint8_t flags)
{
    s->send_chunks = 0;
    s->send_op.kind = RS_OP_SEND;
    s->send_op.buf = s->slot_ptr;
    s->send_op.len = s->slot_len;
    s->send_op.flags = flags;
    send_submitted(s, s->loop->ops->submit(s->loop, &s->send_op));
}

/* Holding a lent buffer is free only while the pool has plenty: under
 * pressure (or behind a heap chunk with room) copy and give it back, so
 * a peer that never reads cannot pin the buffers its neighbours need.
 * (set_aside: free buffers no receive can have, as good as lent here.) */
static inline bool pool_pressure(const struct rs_loop *loop)
{
    return loop->pool.lent + loop->pool.set_aside > loop->pool.lent_hi;
}

/* The queue is empty: the lent buffer takes the slot. */
static inline void slot_fill(struct rs_stream *s, const uint8_t *p, uint32_t len,
                             uint16_t bid)
{
    s->slot_ptr = p;
    s->slot_len = len;
    s->slot_bid = bid;
    s->pending += len;
}

void stream_write_lent_queued(struct rs_stream *s, const uint8_t *p, uint32_t len,
                              uint16_t bid);

/* rs_stream_write_lent. Inline, for the relay's every chunk: the
 * ping-pong case, an open stream with nothing queued (so no send in
 * flight) and a pool with plenty. The buffer takes the slot, no chunk,
 * and goes out at once. Every other case is stream_write_lent_queued's
 * (stream_out.c). */
static inline void stream_write_lent(struct rs_stream *s, const uint8_t *p, uint32_t len,
                                     uint16_t bid)
{
    if (s->state == RS_STREAM_OPEN && !has_output(s) && !s->shut_wanted && len > 0 &&
        !pool_pressure(s->loop)) {
        assert(!s->send_busy && !s->head);
        slot_fill(s, p, len, bid);
        send_slot(s, opf(s, 0)); /* nothing behind it */
        return;
    }
    stream_write_lent_queued(s, p, len, bid);
}

/* A relayed stream received len bytes in lent buffer bid (on_recv, open
 * streams only): they go to the relay's destination as the owner's
 * on_data would have sent them, and the destination's queue past
 * --max-pending holds this stream's reading until it drained (the bound
 * echo and the proxy kept themselves). Inline: this is every chunk. */
static inline void relay_data(struct rs_stream *from, const uint8_t *p, uint32_t len,
                              uint16_t bid)
{
    struct rs_stream *to = from->relay_to;
    if (from->relay_count)
        *from->relay_count += len;
    stream_write_lent(to, p, len, bid);
    if (to->pending > from->loop->cfg->max_pending)
        stream_relay_hold(from);
}

/* A send completed on s: the stream relaying into it, held back, may
 * read again once s's queue is down to its low watermark. Inline: one
 * test per send for a relay target, none for a plain stream. */
static inline void relay_after_send(struct rs_stream *s)
{
    if (s->relay_from && s->relay_from->relay_hold)
        stream_relay_resume(s);
}

/* Called after every queued write and every send completion: most find
 * a send in flight or nothing queued, so that test is inline. */
static inline void start_send(struct rs_stream *s)
{
    if (!s->send_busy && has_output(s))
        stream_send_head(s);
}

#endif
