/* proxy: a TCP proxy, the worked example of a two-socket protocol.
 *
 *   ringserve --protocol=proxy --upstream=HOST:PORT[,HOST:PORT...]
 *
 * Each accepted client stream gets a session and an outbound stream to the
 * next upstream, round robin. An upstream whose connect failed (refused,
 * unreachable, --connect-timeout) is skipped for DOWN_MS by the sessions
 * that follow; when every upstream is down, the one that went down first
 * is tried anyway.
 *
 * The two streams relay to each other (rs_stream_relay): bytes received
 * on one are written to the other by the stream layer, from the very
 * buffer the kernel filled, without a callback per chunk: the buffer is
 * lent by the backend, travels to the other socket's send, and goes back
 * to the pool when that send completes. No copy in user space.
 *
 * Policies, all through the stream API:
 *  - backpressure across the pair (the relay's): a stream whose queued
 *    output passes --max-pending stops the other side's reading until
 *    half of it went out. Memory per session is bounded whatever either
 *    peer does;
 *  - half-close both ways (the relay's, there being no on_eof): one
 *    side's EOF becomes shutdown(SHUT_WR) on the other once what was
 *    queued there is sent; the other direction keeps flowing. A stream
 *    with both directions done closes itself;
 *  - a reset stays a reset: when either side ends in error (the peer
 *    reset it, a send failed, an idle timeout, a failed connect), the
 *    other side gets what was already read for it and then a TCP reset
 *    (rs_stream_reset), never a FIN: a close-delimited transfer cut on one
 *    side can never look complete on the other. A graceful close of one
 *    side closes the other gracefully;
 *  - the session is freed when both streams reported on_close: nothing
 *    leaks, whatever order things end in;
 *  - a graceful stop lets sessions flow for --drain-timeout (proxy_stop).
 *
 * Reading from the client starts at once: what it sends before the
 * upstream connection is up waits in the upstream stream's queue (bounded
 * by the same backpressure), so a client that speaks first loses no round
 * trip.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringserve.h>

#include "protocols.h"

/* How long a failed upstream is skipped. */
#define DOWN_MS 2000

struct upstream_state {
    uint64_t down_until_ms; /* 0: up */
};

/* Per loop: the round-robin position and what each upstream did lately.
 * Loops share nothing: each learns on its own that an upstream is down. */
struct proxy_loop {
    uint32_t next;
    uint32_t n;
    struct upstream_state up[];
};

struct session {
    struct rs_stream *client, *upstream;
    uint32_t up; /* index into cfg->upstreams */
    struct rs_stats *stats;
};

static const struct rs_stream_cbs upstream_cbs;

/* ---- upstream choice ------------------------------------------------ */

static uint32_t pick_upstream(struct rs_loop *loop)
{
    struct proxy_loop *pl = rs_loop_data(loop);
    uint32_t best = pl->next % pl->n;
    for (uint32_t i = 0; i < pl->n; i++) {
        uint32_t k = (pl->next + i) % pl->n;
        if (pl->up[k].down_until_ms <= rs_loop_now(loop)) {
            best = k;
            break;
        }
        /* All down so far: remember the one that comes back first. */
        if (pl->up[k].down_until_ms < pl->up[best].down_until_ms)
            best = k;
    }
    pl->next = best + 1;
    return best;
}

static void mark(struct rs_loop *loop, uint32_t up, bool down)
{
    struct proxy_loop *pl = rs_loop_data(loop);
    bool was_down = pl->up[up].down_until_ms != 0;
    pl->up[up].down_until_ms = down ? rs_loop_now(loop) + DOWN_MS : 0;
    if (down && !was_down)
        rs_log_info("loop %d: upstream %u is down, skipped for %d ms",
                    rs_loop_index(loop), up, DOWN_MS);
}

/* ---- the pair ------------------------------------------------------- */

static struct rs_stream *other(const struct session *ss, const struct rs_stream *s)
{
    return s == ss->client ? ss->upstream : ss->client;
}

/* Only once the relay ended: the other side was freed, and what this
 * one still receives goes nowhere (its on_close comes next). */
static void on_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    (void)p;
    (void)len;
    rs_stream_release(s, bid);
}

static void on_close(struct rs_stream *s, int reason)
{
    struct session *ss = rs_stream_data(s);
    if (!ss)
        return; /* client_open found no memory for a session */
    struct rs_stream *peer = other(ss, s);
    if (s == ss->client)
        ss->client = NULL;
    else
        ss->upstream = NULL;
    if (peer) {
        if (reason < 0)
            rs_stream_reset_reason(peer, reason);
        else
            rs_stream_close(peer);
    } else {
        free(ss);
    }
}

/* Failures of our own making (no descriptor, no memory, no local port
 * left) say nothing about the upstream; nor does a connect that never
 * started (the timer fired while the socket was still being made). */
static bool local_failure(const struct rs_stream *s, int res)
{
    return !rs_stream_connect_sent(s) || res == -EMFILE || res == -ENFILE ||
           res == -ENOBUFS || res == -ENOMEM || res == -EADDRNOTAVAIL;
}

static void on_connect(struct rs_stream *s, int res)
{
    struct session *ss = rs_stream_data(s);
    struct rs_loop *loop = rs_stream_loop(s);
    if (!local_failure(s, res))
        mark(loop, ss->up, res < 0);
    if (res < 0) {
        rs_log_debug("loop %d: upstream %u: connect: %s", rs_loop_index(loop), ss->up,
                     strerror(-res));
        /* The client is reset (what it sent went nowhere); the upstream
         * stream closes itself. */
        if (ss->client)
            rs_stream_reset_reason(ss->client, res);
    }
}

static void client_open(struct rs_stream *c)
{
    struct rs_loop *loop = rs_stream_loop(c);
    const struct rs_config *cfg = rs_loop_config(loop);
    struct session *ss = calloc(1, sizeof(*ss));
    if (!ss) {
        rs_stream_set_cbs(c, NULL);
        rs_stream_abort_reason(c, -ENOMEM);
        return;
    }
    ss->client = c;
    ss->stats = rs_loop_stats(loop);
    rs_stream_set_data(c, ss);
    ss->stats->sessions++;
    ss->up = pick_upstream(loop);
    const struct rs_upstream *u = &cfg->upstreams[ss->up];
    ss->upstream = rs_stream_connect(loop, (const struct sockaddr *)&u->addr, u->addrlen,
                                     cfg->connect_timeout_ms, &upstream_cbs, ss);
    if (!ss->upstream) {
        /* No socket (EMFILE...): not the upstream's fault. errno first:
         * the log call may change it. */
        int err = errno;
        ss->stats->connect_failed++;
        rs_log_debug("loop %d: upstream socket: %s", rs_loop_index(loop), strerror(err));
        rs_stream_reset_reason(c, -err);
        return;
    }
    /* Both fresh and open, on one loop: the relays cannot be refused. */
    int rc = rs_stream_relay(c, ss->upstream, &ss->stats->bytes_up);
    if (rc == 0)
        rc = rs_stream_relay(ss->upstream, c, &ss->stats->bytes_down);
    if (rc < 0)
        rs_stream_reset_reason(c, rc);
}

/* A graceful stop: every session keeps flowing, both ways, until it ends
 * by itself (the client's or the upstream's close) or the drain deadline
 * resets both sides; a session whose upstream is still connecting goes on
 * connecting. A byte-stream proxy cannot see message boundaries: it
 * cannot tell an idle session from one between two transfers, so it
 * never ends one early. */
static void proxy_stop(struct rs_stream *client)
{
    (void)client;
}

static const struct rs_stream_cbs upstream_cbs = {
    .on_data = on_data, .on_connect = on_connect, .on_close = on_close};

/* ---- per loop ------------------------------------------------------- */

static int proxy_loop_init(struct rs_loop *loop, char *err, size_t errlen)
{
    uint32_t n = rs_loop_config(loop)->nupstreams;
    if (n == 0) {
        snprintf(err, errlen, "--protocol=proxy needs --upstream=HOST:PORT");
        return -EINVAL;
    }
    if (!(rs_loop_caps(loop) & RS_CAP_CONNECT)) {
        snprintf(err, errlen, "the %s backend cannot connect",
                 rs_loop_backend_name(loop));
        return -EINVAL;
    }
    struct proxy_loop *pl = calloc(1, sizeof(*pl) + n * sizeof(pl->up[0]));
    if (!pl) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pl->n = n;
    rs_loop_set_data(loop, pl);
    return 0;
}

static void proxy_loop_fini(struct rs_loop *loop)
{
    free(rs_loop_data(loop));
    rs_loop_set_data(loop, NULL);
}

const struct rs_protocol rs_proto_proxy = {
    .name = "proxy",
    /* The client side: spelled out here, since C11 cannot
     * copy a const struct in a static initializer. */
    .cbs = {.on_data = on_data, .on_close = on_close},
    .on_open = client_open,
    .on_stop = proxy_stop,
    .loop_init = proxy_loop_init,
    .loop_fini = proxy_loop_fini,
    .descriptors_per_conn = 2};
