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
 * Bytes received on one stream are written to the other from the very
 * buffer the kernel filled (rs_stream_write_lent): the buffer is lent by
 * the backend, travels to the other socket's send, and goes back to the
 * pool when that send completes. No copy in user space.
 *
 * Policies, all through the stream API:
 *  - backpressure across the pair: a stream whose queued output passes
 *    --max-pending stops the other side's reading; its on_writable (queued
 *    output back under half of it) starts it again. Memory per session is
 *    bounded whatever either peer does;
 *  - half-close both ways: one side's EOF becomes shutdown(SHUT_WR) on the
 *    other once what was queued there is sent; the other direction keeps
 *    flowing. A stream with both directions done closes itself;
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
#include "proxy.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "protocol.h"
#include "stream.h"

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
};

static const struct rs_stream_cbs upstream_cbs;

/* ---- upstream choice ------------------------------------------------ */

static uint32_t pick_upstream(struct rs_loop *loop)
{
    struct proxy_loop *pl = loop->proto_data;
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
    struct proxy_loop *pl = loop->proto_data;
    bool was_down = pl->up[up].down_until_ms != 0;
    pl->up[up].down_until_ms = down ? rs_loop_now(loop) + DOWN_MS : 0;
    if (down && !was_down)
        rs_log_info("loop %d: upstream %u is down, skipped for %d ms", loop->index, up,
                    DOWN_MS);
}

/* ---- the pair ------------------------------------------------------- */

static struct rs_stream *other(const struct rs_stream *s)
{
    struct session *ss = s->data;
    return s == ss->client ? ss->upstream : ss->client;
}

static void on_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    struct session *ss = s->data;
    struct rs_stream *to = other(s);
    if (!to) {
        rs_stream_release(s, bid);
        return;
    }
    if (s == ss->client)
        s->loop->stats.bytes_up += len;
    else
        s->loop->stats.bytes_down += len;
    rs_stream_write_lent(to, p, len, bid);
    if (rs_stream_pending(to) > s->loop->cfg->max_pending)
        rs_stream_read_stop(s);
}

/* s's queued output fell under half of --max-pending: the side that feeds
 * it may read again. */
static void on_writable(struct rs_stream *s)
{
    struct rs_stream *from = other(s);
    if (from)
        rs_stream_read_start(from);
}

/* One side will send nothing more: pass the half-close on. */
static void on_eof(struct rs_stream *s)
{
    struct rs_stream *to = other(s);
    if (to)
        rs_stream_shutdown(to);
    else
        rs_stream_shutdown(s); /* the other side is gone: finish this one */
}

static void on_close(struct rs_stream *s, int reason)
{
    struct session *ss = s->data;
    if (!ss)
        return; /* client_open found no memory for a session */
    struct rs_stream *peer = other(s);
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
    return !s->connect_sent || res == -EMFILE || res == -ENFILE || res == -ENOBUFS ||
           res == -ENOMEM || res == -EADDRNOTAVAIL;
}

static void on_connect(struct rs_stream *s, int res)
{
    struct session *ss = s->data;
    if (!local_failure(s, res))
        mark(s->loop, ss->up, res < 0);
    if (res < 0) {
        rs_log_debug("loop %d: upstream %u: connect: %s", s->loop->index, ss->up,
                     strerror(-res));
        /* The client is reset (what it sent went nowhere); the upstream
         * stream closes itself. */
        if (ss->client)
            rs_stream_reset_reason(ss->client, res);
    }
}

static void client_open(struct rs_stream *c)
{
    struct rs_loop *loop = c->loop;
    const struct rs_config *cfg = loop->cfg;
    struct session *ss = calloc(1, sizeof(*ss));
    if (!ss) {
        c->cbs = NULL;
        rs_stream_abort_reason(c, -ENOMEM);
        return;
    }
    ss->client = c;
    c->data = ss;
    loop->stats.sessions++;
    ss->up = pick_upstream(loop);
    const struct rs_upstream *u = &cfg->upstreams[ss->up];
    ss->upstream = rs_stream_connect(loop, (const struct sockaddr *)&u->addr, u->addrlen,
                                     cfg->connect_timeout_ms, &upstream_cbs, ss);
    if (!ss->upstream) {
        /* No socket (EMFILE...): not the upstream's fault. errno first:
         * the log call may change it. */
        int err = errno;
        loop->stats.connect_failed++;
        rs_log_debug("loop %d: upstream socket: %s", loop->index, strerror(err));
        rs_stream_reset_reason(c, -err);
    }
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

static const struct rs_stream_cbs upstream_cbs = {.on_data = on_data,
                                                  .on_eof = on_eof,
                                                  .on_writable = on_writable,
                                                  .on_connect = on_connect,
                                                  .on_close = on_close};

/* ---- per loop ------------------------------------------------------- */

static int proxy_loop_init(struct rs_loop *loop, char *err, size_t errlen)
{
    uint32_t n = loop->cfg->nupstreams;
    if (n == 0) {
        snprintf(err, errlen, "--protocol=proxy needs --upstream=HOST:PORT");
        return -EINVAL;
    }
    if (!(loop->caps & RS_CAP_CONNECT)) {
        snprintf(err, errlen, "the %s backend cannot connect", loop->ops->name);
        return -EINVAL;
    }
    struct proxy_loop *pl = calloc(1, sizeof(*pl) + n * sizeof(pl->up[0]));
    if (!pl) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    pl->n = n;
    loop->proto_data = pl;
    return 0;
}

static void proxy_loop_fini(struct rs_loop *loop)
{
    free(loop->proto_data);
    loop->proto_data = NULL;
}

const struct rs_protocol rs_proto_proxy = {
    .name = "proxy",
    /* The client side: spelled out here, since C11 cannot
     * copy a const struct in a static initializer. */
    .cbs = {.on_data = on_data,
            .on_eof = on_eof,
            .on_writable = on_writable,
            .on_close = on_close},
    .on_open = client_open,
    .on_stop = proxy_stop,
    .loop_init = proxy_loop_init,
    .loop_fini = proxy_loop_fini,
    .descriptors_per_conn = 2};

/* ---- --upstream ----------------------------------------------------- */

/* One HOST:PORT or [V6]:PORT, resolved now (numeric or by name). */
static int parse_one(const char *s, size_t len, struct rs_upstream *u, char *err,
                     size_t errlen)
{
    char buf[300];
    if (len == 0 || len >= sizeof(buf)) {
        snprintf(err, errlen, "empty or too long address");
        return -EINVAL;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *host = buf, *port;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "'%s': expected [V6ADDR]:PORT", buf);
            return -EINVAL;
        }
        *close = '\0';
        host = buf + 1;
        port = close + 2;
    } else {
        char *colon = strrchr(buf, ':');
        if (!colon || colon == buf || memchr(buf, ':', (size_t)(colon - buf))) {
            snprintf(err, errlen, "'%s': expected HOST:PORT", buf);
            return -EINVAL;
        }
        *colon = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 1 || p > 65535) {
        snprintf(err, errlen, "'%s': bad port", port);
        return -EINVAL;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "'%s': %s", host, gai_strerror(gai));
        return -EINVAL;
    }
    memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
    u->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int rs_proxy_parse_upstreams(struct rs_config *cfg, const char *list, char *err,
                             size_t errlen)
{
    cfg->nupstreams = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (cfg->nupstreams == RS_MAX_UPSTREAMS) {
            snprintf(err, errlen, "at most %d upstreams", RS_MAX_UPSTREAMS);
            return -EINVAL;
        }
        int rc = parse_one(p, len, &cfg->upstreams[cfg->nupstreams], err, errlen);
        if (rc < 0)
            return rc;
        cfg->nupstreams++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}
