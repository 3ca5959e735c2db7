/* --protocol=http: a small, strict static-file HTTP/1.1 server.
 *
 * A client of the public API alone (<ringserve.h>), like every shipped
 * protocol: the request arrives on a stream (<ringserve/stream.h>), the
 * file is opened and read with file requests (<ringserve/fs.h>), and the
 * response leaves through the stream's output queue. On io_uring the
 * kernel does all of it; on epoll the file requests run on the worker
 * pool (or inline with --fs=inline). The protocol cannot tell the
 * difference, which is the point.
 *
 * One request at a time per connection, in order: a pipelined request
 * waits in the input buffer until the response before it is queued.
 *
 *   idle -> open (openat2 RESOLVE_BENEATH from the root), statx(2) at once
 *        -> directory? close it, open DIR/index.html, statx again
 *        -> respond: 304 / 416 / HEAD / empty: the head alone
 *                    small (one pool buffer): one read into a lent pool
 *                      buffer (rs_fs_read_lent), then head + body copied into one write,
 * so one send carries both large: the head, then the file itself queued on the stream
 * (rs_stream_write_head_file: sendfile(2) or splice, no byte through our memory; the
 * stream closes it); with --sendfile=off (or a backend without RS_CAP_SENDFILE) reads of
 * 128 KiB into the session's own four buffers (READ_AHEAD), each sent from there as it
 * lands (rs_fs_send: no copy into the stream's queue; the buffer is read into again
 * once its bytes are in the socket), the head in front of the first
 *        -> close the file -> idle (or close the connection)
 *
 * Backpressure: reads are issued only while the stream's queued output
 * plus the reads in flight stay under --max-pending; the stream's
 * on_writable (queued output fell to half) issues the next ones. A client
 * that stops reading therefore holds at most --max-pending (plus one read)
 * of file data. Large bodies use buffers of their own rather than lent
 * pool buffers: 50 slow clients each holding up to --max-pending of lent
 * buffers exhausted the pool (measured by i13http: the stream then copied
 * every chunk out and reads retried on -ENOBUFS, ~1000 us of CPU per 1 MiB
 * response). A large response holds READ_AHEAD buffers of BODY_CHUNK, no
 * more: each is either being read into or being sent from, so some are
 * read while the others drain. Four, not two: each buffer's round (read,
 * send, told it was sent) takes loop turns, and with two the socket ran
 * dry between them (1 MiB, 10 connections, client on its own CPU: 742
 * req/s with two, 984 with four, nginx `sendfile off` 882). They come from a small
 * per-loop cache, since a fresh malloc per response (and the copies into the stream's
 * queue that the buffers once went through) cost page faults and a memmove per byte: ~20
 * % of the copy path's CPU in a profile. 128 KiB rather than 64: half the ops (16 SQEs
 * per MiB instead of 32 on io_uring) for the same CPU.
 *
 * Confinement: the parser (http_parse.c) already refuses "..", NUL and
 * friends; openat2 with RESOLVE_BENEATH refuses whatever remains, notably
 * symbolic links that lead out of the root, in the kernel and atomically.
 * Without openat2, the epoll backend's fallback refuses every symbolic
 * link (backend_epoll/fspool.c). Every refusal is a 404.
 *
 * Lifetime: a session lives until its stream closed AND its last file op
 * completed; a file op cannot be recalled once the kernel or a worker has
 * it. Each file request keeps the loop alive (fs.h), so the loop runs
 * until the stragglers are back, on its own thread.
 *
 * Stop (http_stop): idle connections close at once; a response in
 * progress is finished, its body still flowing (from the file with
 * sendfile, or read after read without it), then the connection closes.
 *
 * Time limits, each against a client that holds its connection without
 * doing its part: the request head's deadline (--header-timeout, a timer
 * armed only while a head is awaited), and one lazy watch per connection
 * for the two waits on the client between heads (watch_fn): output that
 * makes no progress (--send-timeout: the client stopped reading; cut
 * with a reset) and a connection idle between requests
 * (--keepalive-timeout; closed with a FIN). The watch is no timer per
 * request: it is armed once a response exists and then wakes a few times
 * per timeout to compare what was sent with what it saw last time.
 *
 * The session's jobs, a file each; http_int.h has what they share:
 *   http.c          the connection: the session's life, its input and the
 *                   requests parsed from it, the stream and loop callbacks
 *   http_file.c     the file a request names: opened (or found in the
 *                   open-file cache) and examined, a directory's index
 *   http_respond.c  the response it gets, and its head: 200/206, 304,
 *                   416 and the errors; a large body queued as the file
 *                   itself, or read
 *   http_body.c     a read body: the reads, in order, within the window,
 *                   and the sends out of their buffers
 *   http_timeouts.c the time limits above
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ringserve.h>

#include "http_int.h"
#include "protocols.h"

static void next_request(struct http_sess *h);

/* ---- session lifetime ---- */

/* The response is over: its body buffers go back to the loop, except those
 * still being sent from (on_sent gives them back). */
static void free_bufs(struct http_sess *h)
{
    for (int i = 0; i < READ_AHEAD; i++) {
        if (h->rd[i].buf && !h->rd[i].sending) {
            body_buf_put(h->hl, h->rd[i].buf);
            h->rd[i].buf = NULL;
        }
    }
}

void http_sess_free(struct http_sess *h)
{
    rs_timer_stop(h->loop, &h->retry);
    rs_timer_stop(h->loop, &h->head_timer);
    rs_timer_stop(h->loop, &h->watch);
    free_bufs(h);
    close_file(h);
    free(h->in);
    free(h);
}

/* After the peer's EOF: close once no complete request is left to answer
 * (one may wait for the output queue to drain). */
static void close_if_done(struct http_sess *h)
{
    if (h->state != ST_IDLE || !h->peer_eof || !h->s || !rs_stream_is_open(h->s))
        return;
    if (h->in_len > 0 && rs_http_parse(h->in, h->in_len, &h->req) != 0)
        return;
    rs_stream_close(h->s);
}

void http_finish_response(struct http_sess *h)
{
    close_file(h);
    free_bufs(h); /* no read is in flight any more */
    h->state = ST_IDLE;
    if (!h->s)
        return;
    if (!h->keep_alive) {
        rs_stream_close(h->s);
        return;
    }
    h->served = true;
    watch_arm(h);
    next_request(h);
    close_if_done(h);
}

/* ---- requests ---- */

static void start_request(struct http_sess *h)
{
    h->head_only = h->req.method == RS_HTTP_HEAD;
    /* Stopping: this response is the connection's last. */
    h->keep_alive = h->req.keep_alive && !rs_loop_stopping(h->loop);
    h->is_index = false;
    size_t n = strlen(h->req.path);
    memcpy(h->path, h->req.path, n + 1);
    http_open_file(h);
}

/* Reading goes on while the input buffer has room for a head. */
static void resume_input(struct http_sess *h)
{
    if (h->in_paused) {
        h->in_paused = false;
        rs_stream_read_start(h->s);
    }
}

/* Parse and start the next request, if there is one and the output queue
 * has room. Errors answer and close. */
static void next_request(struct http_sess *h)
{
    struct rs_stream *s = h->s;
    if (h->state != ST_IDLE || !rs_stream_is_open(s))
        return;
    if (rs_stream_pending(s) > rs_loop_config(rs_stream_loop(s))->max_pending ||
        rs_stream_has_file(s))
        return; /* on_writable comes back here; http_data bounds the input */
    int n =
        h->in_len ? rs_http_parse_at(h->in, h->in_len, (int64_t)time(NULL), &h->req) : 0;
    if (n == 0 && h->in_full) {
        /* Every complete request held is answered; the rest was dropped.
         * Closing between responses is what HTTP/1.1 allows a server at
         * any time: the client sends what went unanswered again. */
        rs_stream_close(s);
        return;
    }
    if (n == 0) {
        /* Waiting for (the rest of) a head. */
        if (h->in_len > 0 || !h->served)
            http_head_deadline_start(h);
        resume_input(h);
        return;
    }
    rs_timer_stop(h->loop, &h->head_timer);
    if (n < 0) {
        h->head_only = h->req.method == RS_HTTP_HEAD;
        h->keep_alive = false;
        h->in_len = 0;
        rs_stream_read_stop(s);
        static const char allow[] = "Allow: GET, HEAD\r\n";
        http_respond_short(h, -n, allow, n == -405 ? sizeof(allow) - 1 : 0);
        rs_stream_close(s);
        return;
    }
    h->in_len -= (uint32_t)n;
    memmove(h->in, h->in + n, h->in_len);
    start_request(h);
}

/* The most input a session holds. Reading pauses once RS_HTTP_HEAD_MAX
 * bytes wait unparsed (http_data), but receives already under way still
 * land: on io_uring a multishot receive hands over whatever the socket had
 * queued in the same batch (measured: 1.5 MiB from a client streaming
 * junk). Two receive buffers of them are kept. */
static uint64_t in_max(const struct http_sess *h)
{
    return RS_HTTP_HEAD_MAX + 2 * (uint64_t)rs_loop_config(h->loop)->buffer_size;
}

/* Append received bytes to the input buffer; 0 or -ENOMEM. Past in_max
 * they are dropped, and so is all that follows (in_full): the session
 * answers the complete requests it holds and closes. Only a client that
 * sent far ahead of its answers gets there. */
static int in_append(struct http_sess *h, const uint8_t *p, uint32_t len)
{
    uint64_t need = (uint64_t)h->in_len + len;
    if (h->in_full || need > in_max(h)) {
        if (!h->in_full)
            rs_log_debug("http: over %" PRIu64 " bytes of requests ahead of the "
                         "answers: closing after those held",
                         in_max(h));
        h->in_full = true;
        return 0;
    }
    if (need > h->in_cap) {
        uint64_t cap = h->in_cap ? h->in_cap : 1024;
        while (cap < need)
            cap *= 2; /* need <= in_max: no overflow, and cap fits 32 bits */
        char *in = realloc(h->in, (size_t)cap);
        if (!in)
            return -ENOMEM;
        h->in = in;
        h->in_cap = (uint32_t)cap;
    }
    memcpy(h->in + h->in_len, p, len);
    h->in_len += len;
    return 0;
}

/* ---- the stream's callbacks, the loop's ---- */

static void http_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    struct http_sess *h = rs_stream_data(s);
    int rc = in_append(h, p, len);
    rs_stream_release(s, bid);
    if (rc < 0) {
        /* No memory for the input: requests taken off the socket go
         * unanswered, and a response may be under way (pipelined input
         * arrives while a body is sent). Both are transfers cut: a reset,
         * as for every other failure of ours once a request is in, never
         * a FIN the client could take for a keep-alive close between
         * responses, or for the end of a body. */
        if (h->state == ST_BODY)
            http_drop_done_slots(h); /* those in flight release theirs as they land */
        die(h, rc);
        return;
    }
    next_request(h);
    /* Whatever the session is doing (a response under way, its file still
     * being sent, output over --max-pending), the bytes it could not parse
     * yet are bounded: once they fill a head, reading pauses until they are
     * consumed (next_request resumes it). A client that streams without
     * reading our answers holds no more than that. */
    if ((h->in_len >= RS_HTTP_HEAD_MAX || h->in_full) && !h->in_paused &&
        rs_stream_is_open(s)) {
        h->in_paused = true;
        rs_stream_read_stop(s);
    }
}

static void http_writable(struct rs_stream *s)
{
    struct http_sess *h = rs_stream_data(s);
    if (h->state == ST_BODY)
        http_pump(h);
    else
        next_request(h);
}

/* The peer finished sending: answer the complete requests it sent, then
 * close. */
static void http_eof(struct rs_stream *s)
{
    struct http_sess *h = rs_stream_data(s);
    h->peer_eof = true;
    next_request(h);
    close_if_done(h);
}

static void http_close(struct rs_stream *s, int reason)
{
    (void)reason;
    struct http_sess *h = rs_stream_data(s);
    if (!h)
        return;
    h->s = NULL;
    rs_timer_stop(h->loop, &h->retry);
    rs_timer_stop(h->loop, &h->head_timer);
    rs_timer_stop(h->loop, &h->watch);
    if (h->state == ST_BODY)
        http_drop_done_slots(h); /* those in flight release theirs as they land */
    if (h->ops == 0)
        http_sess_free(h);
    /* else: the last file op's completion frees it */
}

static void http_open(struct rs_stream *s)
{
    struct http_sess *h = calloc(1, sizeof(*h));
    if (!h) {
        rs_stream_abort_reason(s, -ENOMEM);
        return;
    }
    h->s = s;
    h->loop = rs_stream_loop(s);
    h->hl = rs_loop_data(h->loop);
    h->fd = -1;
    rs_timer_unref(&h->retry);
    rs_timer_unref(&h->head_timer);
    rs_timer_unref(&h->watch);
    rs_stream_set_data(s, h);
    http_head_deadline_start(h);
}

static int http_loop_init(struct rs_loop *loop, char *err, size_t errlen)
{
    const char *root = rs_loop_config(loop)->root;
    if (!root) {
        snprintf(err, errlen, "--protocol=http needs --root=DIR");
        return -EINVAL;
    }
    if (!(rs_loop_caps(loop) & RS_CAP_FILE_OPS)) {
        snprintf(err, errlen,
                 "--protocol=http needs file ops, which the %s backend lacks here "
                 "(a kernel too old for it?): try another --backend",
                 rs_loop_backend_name(loop));
        return -EINVAL;
    }
    struct http_loop *hl = calloc(1, sizeof(*hl));
    if (!hl) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    hl->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (hl->root_fd < 0) {
        snprintf(err, errlen, "--root=%s: %s", root, strerror(errno));
        free(hl);
        return -EINVAL;
    }
    hl->scratch = malloc(HEAD_ROOM + rs_loop_config(loop)->buffer_size);
    if (!hl->scratch) {
        close(hl->root_fd);
        free(hl);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (rs_fcache_init(&hl->fcache, rs_loop_config(loop)->open_file_cache) < 0) {
        close(hl->root_fd);
        free(hl->scratch);
        free(hl);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    rs_http_date_init(&hl->date);
    rs_loop_set_data(loop, hl);
    return 0;
}

/* A graceful stop: a connection between requests ends now (a FIN is how
 * HTTP/1.1 says "no more requests here"; a client whose next request
 * crossed it retries, as it must on any keep-alive close); one with a
 * response in progress or a request head arriving finishes that one,
 * sent with "Connection: close" where its head is still to come, and
 * closes after it (http_finish_response). The drain deadline resets what is
 * still open. */
static void http_stop(struct rs_stream *s)
{
    struct http_sess *h = rs_stream_data(s);
    if (!h) {
        rs_stream_stop(s);
        return;
    }
    h->keep_alive = false;
    if (h->state == ST_IDLE && h->in_len == 0)
        rs_stream_close(s); /* queued output (a file body) is sent first */
}

/* Streams are all closed, and the loop ran until the last file op came
 * back (each is a loop request): every session is gone. */
static void http_loop_fini(struct rs_loop *loop)
{
    struct http_loop *hl = rs_loop_data(loop);
    if (!hl)
        return;
    if (hl->ops > 0) /* only a failed backend leaves them */
        rs_log_error("http: %u file ops still in flight at exit", hl->ops);
    rs_fcache_fini(&hl->fcache);
    close(hl->root_fd);
    free(hl->scratch);
    while (hl->nbody)
        free(hl->body[--hl->nbody]);
    free(hl);
    rs_loop_set_data(loop, NULL);
}

const struct rs_fcache_stats *rs_http_fcache_stats(const struct rs_loop *loop)
{
    const struct http_loop *hl = rs_loop_data(loop);
    return hl ? &hl->fcache.stats : NULL;
}

/* The open-file cache's descriptors (fcache.h). */
static uint32_t http_loop_descriptors(const struct rs_config *cfg)
{
    return cfg->open_file_cache;
}

const struct rs_protocol rs_proto_http = {.name = "http",
                                          .cbs = {.on_data = http_data,
                                                  .on_eof = http_eof,
                                                  .on_writable = http_writable,
                                                  .on_close = http_close},
                                          .on_open = http_open,
                                          .on_stop = http_stop,
                                          .loop_init = http_loop_init,
                                          .loop_fini = http_loop_fini,
                                          .descriptors_per_conn = 2,
                                          .descriptors_per_loop = http_loop_descriptors};
