/* The relay (stream.h: rs_stream_relay): what one stream receives is
 * written to another, or back to itself, by the stream layer, without a
 * call to the owner's on_data per chunk.
 *
 * A relay is two pointers and a flag. on_recv hands each received lent
 * buffer to rs_stream_write_lent on the destination (stream_int.h:
 * relay_data), exactly what echo's and the proxy's on_data did, so every
 * rule of the output queue holds unchanged: order, the lent slot, short
 * sends, the buffer released once its send completed or its bytes were
 * dropped. What the owner's on_data did besides — the backpressure — is
 * the relay's too: when the destination holds more than --max-pending
 * bytes, the source's recv is cancelled (relay_hold, a flag of its own so
 * the owner's rs_stream_read_start/stop keep their meaning), and a send
 * that brings the destination down to its low watermark arms it again.
 *
 * Everything that is not data stays the owner's: on_eof (without one the
 * half-close is forwarded to the destination), on_close, on_connect,
 * on_writable. A relay ends with rs_stream_relay_stop, or when either
 * stream is freed (before its on_close runs); a stream that stops being
 * open keeps its relay but receives nothing more for it (input on a
 * closing stream is dropped by the close machine; writes to a closing
 * stream are dropped by its queue), as with an owner's own writes.
 */
#include "stream_int.h"

#include <errno.h>

int rs_stream_relay(struct rs_stream *from, struct rs_stream *to, uint64_t *count)
{
    if (from->loop != to->loop)
        return -EINVAL;
    if (!rs_stream_is_open(from) || !rs_stream_is_open(to))
        return -EPIPE;
    if (from->relay_to || to->relay_from)
        return -EBUSY;
    from->relay_to = to;
    from->relay_count = count;
    to->relay_from = from;
    /* Already over the bound (the owner queued a lot before): the relay
     * starts held. */
    if (to->pending > to->loop->cfg->max_pending)
        stream_relay_hold(from);
    return 0;
}

void rs_stream_relay_stop(struct rs_stream *from)
{
    struct rs_stream *to = from->relay_to;
    if (!to)
        return;
    from->relay_to = NULL;
    from->relay_count = NULL;
    to->relay_from = NULL;
    if (from->relay_hold) {
        /* Input is the owner's again, backpressure included. */
        from->relay_hold = false;
        stream_input_changed(from);
    }
}

struct rs_stream *rs_stream_relay_target(const struct rs_stream *s)
{
    return s->relay_to;
}

/* from's destination passed --max-pending: stop reading (the recv is
 * cancelled; what races the cancel is still relayed, as an owner's
 * read_stop would take it). Held already: a cancel the backend refused
 * is asked again with every chunk that still comes, as read_stop would. */
void stream_relay_hold(struct rs_stream *from)
{
    from->relay_hold = true;
    stream_input_changed(from);
}

/* A send completed on to, whose source is held: read again once to's
 * queue is down to its low watermark. A destination that is no longer
 * open keeps its source held: what it read would be dropped; the source
 * is let go when to is freed. */
void stream_relay_resume(struct rs_stream *to)
{
    struct rs_stream *from = to->relay_from;
    if (to->pending > to->lowat || !rs_stream_is_open(to))
        return;
    from->relay_hold = false;
    stream_input_changed(from);
}

/* s is being freed: end the relays it is part of. The other stream, if
 * it was held back by s, reads again (its owner's on_data takes over; the
 * owner hears of s's end from s's on_close, right after this). */
void stream_relay_unlink(struct rs_stream *s)
{
    struct rs_stream *from = s->relay_from;
    if (from && from != s)
        rs_stream_relay_stop(from);
    /* s itself reads nothing any more: just forget its links. */
    if (s->relay_to)
        s->relay_to->relay_from = NULL;
    s->relay_to = NULL;
    s->relay_from = NULL;
    s->relay_count = NULL;
    s->relay_hold = false;
}
