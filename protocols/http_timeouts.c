/* The HTTP server's time limits, each against a client that holds its
 * connection without doing its part (http.c's essay): the request head's
 * deadline (--header-timeout), and the watch for output that makes no
 * progress (--send-timeout) and a connection idle between requests
 * (--keepalive-timeout). */
#include <errno.h>
#include <stdint.h>

#include <ringserve.h>

#include "http_int.h"

/* The watch looks this many times per timeout: a timeout then ends a
 * connection between 1 and 1 + 1/WATCH_LOOKS timeouts after its last
 * progress (or the start of its idleness), never before. */
#define WATCH_LOOKS 4

/* What the watch saw at its last look (watch_fn). */
enum { W_NONE, W_SEND, W_IDLE };

/* ---- the request head's deadline ---- */

/* The request-head deadline (--header-timeout): it runs while the session
 * waits for a request head, from the moment one is due until the head is
 * complete. The first request is due when the connection opens; a later
 * one when its first byte came (pipelined: when the server is ready for
 * it, the response before queued and the output below --max-pending):
 * until then the connection is idle between requests, which is the
 * keep-alive timeout's (watch_fn). Bytes trickling in do not extend it:
 * a client sending one byte a second would otherwise hold its connection
 * for as long as its 8 KiB head lasts (slowloris). */
static void head_timeout_fn(struct rs_loop *loop, struct rs_timer *t)
{
    struct http_sess *h = t->data;
    if (!h->s || h->state != ST_IDLE || !rs_stream_is_open(h->s))
        return;
    rs_loop_stats(loop)->header_timeouts++;
    rs_stream_read_stop(h->s);
    if (h->in_len > 0) {
        /* Part of a head came: say why the connection ends. */
        h->head_only = false;
        h->keep_alive = false;
        h->in_len = 0;
        http_respond_short(h, 408, NULL, 0);
    }
    /* Nothing of a request: a connection that never sent one, closed
     * without a word (a client may be sending a request right now; an
     * answer to a request it has not sent would confuse it). */
    rs_stream_close(h->s);
}

/* ---- the send and keep-alive timeouts ---- */

/* Between two looks of the watch: a fraction of the shorter timeout on,
 * so that either ends a connection at most that late; 0 when both are
 * off (the watch is never armed). */
static uint64_t watch_step(const struct rs_config *cfg)
{
    uint32_t a = cfg->send_timeout_ms, b = cfg->keepalive_timeout_ms;
    uint32_t t = !a ? b : !b ? a : a < b ? a : b;
    return t ? (t + WATCH_LOOKS - 1) / WATCH_LOOKS : 0;
}

/* Between requests with nothing queued and nothing of a next head: what
 * --keepalive-timeout bounds. */
static bool idle_between_requests(const struct http_sess *h)
{
    return h->state == ST_IDLE && h->in_len == 0 && rs_stream_pending(h->s) == 0;
}

/* The watch: a timer that, instead of being moved at every byte, looks
 * every watch_step at how many bytes were sent (queued - pending: it moves
 * only when the client takes some) and at what the connection waits for:
 * - output queued: the client owes us progress. Unchanged since the look
 *   that saw it last move, for --send-timeout: the client stopped reading,
 *   and the response it was taking is cut with a reset (a FIN after the
 *   bytes already sent would pass for its end);
 * - idle between requests: unchanged for --keepalive-timeout, the
 *   connection is closed with a FIN, nothing being cut (the client sends
 *   a request that crossed it again, as on any keep-alive close);
 * - anything else (a file being opened or read, a head arriving, which
 *   its own deadline bounds): the server's turn, nothing to time; the
 *   watch rests until the next response arms it.
 * A deadline runs from the look that first saw the state unchanged, so
 * it ends a connection between 1 and 1 + 1/WATCH_LOOKS timeouts after
 * the last progress, never earlier. What a look costs: a subtraction and
 * a heap move, per connection a few times per timeout, none per
 * request. */
static void watch_fn(struct rs_loop *loop, struct rs_timer *t)
{
    struct http_sess *h = t->data;
    if (!h->s || !rs_stream_is_open(h->s))
        return; /* a close has its own bound (--drain-timeout) */
    const struct rs_config *cfg = rs_loop_config(loop);
    uint64_t pending = rs_stream_pending(h->s);
    uint64_t sent = h->queued - pending;
    uint8_t mode = pending > 0 ? W_SEND : idle_between_requests(h) ? W_IDLE : W_NONE;
    uint64_t now = rs_loop_now(loop);
    uint32_t limit = mode == W_SEND   ? cfg->send_timeout_ms
                     : mode == W_IDLE ? cfg->keepalive_timeout_ms
                                      : 0;
    if (mode != h->watch_mode || sent != h->watch_sent) {
        /* Something moved since the last look: the clock starts again. */
        h->watch_mode = mode;
        h->watch_sent = sent;
        h->watch_ms = now;
    } else if (limit && now - h->watch_ms >= limit) {
        if (mode == W_SEND) {
            rs_loop_stats(loop)->send_timeouts++;
            rs_log_debug("http: no output taken for %u ms: reset", limit);
            if (h->state == ST_BODY)
                http_drop_done_slots(h); /* as a failed read does: their buffers back */
            die(h, -ETIMEDOUT);
        } else {
            rs_loop_stats(loop)->keepalive_timeouts++;
            rs_stream_read_stop(h->s);
            rs_stream_close(h->s);
        }
        return;
    }
    /* Output may drain into idleness with no callback of ours: the watch
     * goes on while either timeout could come of it. */
    if (mode == W_NONE || (mode == W_IDLE && !cfg->keepalive_timeout_ms)) {
        h->watch_mode = W_NONE;
        return;
    }
    uint64_t delay = watch_step(cfg);
    if (limit && h->watch_ms + limit - now < delay)
        delay = h->watch_ms + limit - now;
    rs_timer_start(loop, t, delay, watch_fn, h);
}

/* watch_arm (http_int.h) found the watch at rest: it looks a step from
 * now. */
void http_watch_start(struct http_sess *h)
{
    uint64_t step = watch_step(rs_loop_config(h->loop));
    if (step)
        rs_timer_start(h->loop, &h->watch, step, watch_fn, h);
}

void http_head_deadline_start(struct http_sess *h)
{
    uint32_t ms = rs_loop_config(h->loop)->header_timeout_ms;
    if (ms && !rs_timer_active(&h->head_timer))
        rs_timer_start(h->loop, &h->head_timer, ms, head_timeout_fn, h);
}
