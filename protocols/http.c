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
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <ringserve.h>

#include "fcache.h"
#include "http_head.h"
#include "http_parse.h"
#include "protocols.h"

#define READ_AHEAD 4             /* body buffers per large response (--sendfile=off) */
#define BODY_CHUNK (128u * 1024) /* bytes per read of a large body */
#define HEAD_ROOM  1024          /* bytes reserved for a response head */
#define BODY_CACHE 16            /* body buffers kept per loop for the next responses */
#define RETRY_MS   1             /* after -ENOBUFS / -EAGAIN on a read */
#define TAIL_LEN   11            /* strlen("/index.html") */
/* The watch looks this many times per timeout: a timeout then ends a
 * connection between 1 and 1 + 1/WATCH_LOOKS timeouts after its last
 * progress (or the start of its idleness), never before. */
#define WATCH_LOOKS 4

struct http_loop {
    int root_fd;               /* O_PATH directory: every open is beneath it */
    uint32_t ops;              /* file ops in flight, all sessions */
    struct rs_http_date date;  /* the Date line, made once per second */
    uint8_t *scratch;          /* HEAD_ROOM + one pool buffer: small responses */
    struct rs_fcache fcache;   /* open files by path (--open-file-cache) */
    uint8_t *body[BODY_CACHE]; /* idle body buffers (HEAD_ROOM + BODY_CHUNK) */
    uint32_t nbody;
};

enum { ST_IDLE, ST_OPEN, ST_BODY, ST_DEAD };

/* What the watch saw at its last look (watch_fn). */
enum { W_NONE, W_SEND, W_IDLE };

struct rd_slot {
    struct rs_fs_req req; /* req.data: the session */
    /* Large bodies: HEAD_ROOM + BODY_CHUNK bytes of the session's own; reads
     * land after the room, where the first is preceded by the head. */
    uint8_t *buf;
    uint64_t off;
    uint32_t len;
    int32_t res;
    uint16_t bid;
    bool busy, done;
    bool lent;    /* read with rs_fs_read_lent: a result > 0 brings buffer bid */
    bool sending; /* buf is queued on the stream (rs_fs_send) until on_sent */
};

struct http_sess {
    struct rs_stream *s; /* NULL once the stream closed */
    struct rs_loop *loop;
    struct http_loop *hl;
    uint8_t state;
    bool keep_alive, head_only, is_index, in_paused, small, peer_eof;
    bool in_full;  /* input was dropped (in_append): answer what is held, then close */
    bool head_due; /* read body: the head goes in front of the first bytes */
    int fd;        /* the file (or directory) being served, or -1 */
    struct rs_fcache_entry *fce; /* fd's cache entry (the cache owns fd), or NULL */
    uint32_t ops;                /* file ops in flight */
    struct rs_fs_req fop;        /* the open; fop.data: the session */
    struct statx stx;
    struct rs_http_file_head fh; /* the file's header lines when it is not cached */
    struct rs_http_request req;
    char path[RS_HTTP_PATH_MAX + TAIL_LEN + 1]; /* what is opened */
    int status;                                 /* 200 or 206 */
    uint64_t first, count, size;                /* the range served, the file's size */
    uint64_t next_off, end;    /* next offset to read; end of the range */
    uint32_t rd_head, rd_tail; /* slots in use: [head, tail) modulo READ_AHEAD */
    struct rd_slot rd[READ_AHEAD];
    /* The timers, all unreferenced: the stream keeps the loop alive. */
    struct rs_timer retry;
    struct rs_timer head_timer; /* the request-head deadline (--header-timeout) */
    /* The send and keep-alive timeouts (watch_fn): queued - pending is the
     * count of bytes sent, which only moves when the client takes some. */
    struct rs_timer watch;
    uint64_t queued;     /* bytes ever queued on the stream */
    uint64_t watch_sent; /* bytes sent at the look that started watch_ms */
    uint64_t watch_ms;   /* since when nothing moved (loop time) */
    uint8_t watch_mode;  /* W_*: what that look saw */
    bool served;         /* a response was queued: the next head is due at its
                            first byte (next_request) */
    char *in;            /* request bytes not yet parsed */
    uint32_t in_len, in_cap;
};

static void next_request(struct http_sess *h);
static void pump(struct http_sess *h);
static void die(struct http_sess *h, int reason);
static void watch_arm(struct http_sess *h);

/* Every write to the stream counts its bytes: the watch tells what was
 * sent from what was queued. (Bytes a closing stream drops are counted
 * too; the watch no longer looks then.) */
static void out_copy(struct http_sess *h, const void *p, uint32_t len)
{
    rs_stream_write_copy(h->s, p, len);
    h->queued += len;
}

/* ---- response heads ---- */

/* Heads are assembled by copying pieces formatted once (http_head.h):
 * no printf on the way of a response. */

/* The Date header line, remade when the second changes; "" when the clock
 * is outside what an HTTP-date can say (RFC 9110 6.6.1: no clock, no
 * Date). */
static const char *date_line(struct http_loop *hl, size_t *len)
{
    return rs_http_date_line(&hl->date, (int64_t)time(NULL), len);
}

/* What a 200 states about the file being served (type, length,
 * Last-Modified): made once per cached file and kept in its cache entry,
 * else made per response in the session. Checked against the size and
 * mtime served at every use: another session may have refreshed the entry
 * (rs_fcache_refresh) since, and this response keeps what it examined. */
static const struct rs_http_file_head *file_head(struct http_sess *h)
{
    struct rs_http_file_head *fh = h->fce ? &h->fce->head : &h->fh;
    return rs_http_file_head_for(fh, h->path, h->stx.stx_size,
                                 (int64_t)h->stx.stx_mtime.tv_sec);
}

/* "Connection:" as the request asked: 1.1 says close only when closing,
 * 1.0 says keep-alive only when keeping it. */
static char *put_conn_header(const struct http_sess *h, char *o)
{
    if (!h->keep_alive)
        return RS_HTTP_PUT_LIT(o, "Connection: close\r\n");
    if (h->req.version_minor == 0)
        return RS_HTTP_PUT_LIT(o, "Connection: keep-alive\r\n");
    return o;
}

/* Bytes of respond_short's head beyond its `extra` lines: the status and
 * Server lines, Date, Connection, Content-Type, Content-Length, the blank
 * line and the text body, with room to spare. */
#define SHORT_ROOM 384

/* A response with a short text body (or none): errors, 304, 416. `extra`:
 * header lines to add (extra_len bytes, at most HEAD_ROOM). */
static void respond_short(struct http_sess *h, int status, const char *extra,
                          size_t extra_len)
{
    char buf[SHORT_ROOM + HEAD_ROOM];
    char text[64];
    char *t = text;
    if (status >= 400 && status != 416) {
        const char *reason = rs_http_reason(status);
        t = rs_http_put_u64(t, (uint64_t)status);
        *t++ = ' ';
        t = rs_http_put(t, reason, strlen(reason));
        *t++ = '\n';
    }
    size_t tl = (size_t)(t - text), dl;
    const char *date = date_line(h->hl, &dl);
    char *o = rs_http_put_status(buf, status);
    o = rs_http_put(o, date, dl);
    if (extra_len) /* extra may be NULL then: no memcpy from NULL */
        o = rs_http_put(o, extra, extra_len);
    o = put_conn_header(h, o);
    if (tl)
        o = RS_HTTP_PUT_LIT(o, "Content-Type: text/plain\r\n");
    if (status != 304) { /* a 304 has no body, and says nothing of its length */
        o = RS_HTTP_PUT_LIT(o, "Content-Length: ");
        o = rs_http_put_u64(o, tl);
        o = RS_HTTP_PUT_LIT(o, "\r\n");
    }
    o = RS_HTTP_PUT_LIT(o, "\r\n");
    if (!h->head_only)
        o = rs_http_put(o, text, tl);
    out_copy(h, buf, (uint32_t)(o - buf));
}

/* The head of a 200/206: into out (HEAD_ROOM bytes); returns its length. */
static int format_head(struct http_sess *h, char *out)
{
    const struct rs_http_file_head *fh = file_head(h);
    size_t dl;
    const char *date = date_line(h->hl, &dl);
    char *o = rs_http_put_status(out, h->status);
    o = rs_http_put(o, date, dl);
    if (h->count == fh->size) {
        o = rs_http_put(o, fh->text, fh->len); /* type, length, date, ranges */
    } else {
        o = rs_http_put(o, fh->text, fh->ct_end);
        o = RS_HTTP_PUT_LIT(o, "Content-Length: ");
        o = rs_http_put_u64(o, h->count);
        o = RS_HTTP_PUT_LIT(o, "\r\n");
        o = rs_http_put(o, fh->text + fh->cl_end, (size_t)(fh->len - fh->cl_end));
    }
    o = put_conn_header(h, o);
    if (h->status == 206) {
        o = RS_HTTP_PUT_LIT(o, "Content-Range: bytes ");
        o = rs_http_put_u64(o, h->first);
        *o++ = '-';
        o = rs_http_put_u64(o, h->first + h->count - 1);
        *o++ = '/';
        o = rs_http_put_u64(o, h->size);
        o = RS_HTTP_PUT_LIT(o, "\r\n");
    }
    o = RS_HTTP_PUT_LIT(o, "\r\n");
    assert(o - out <= HEAD_ROOM);
    return (int)(o - out);
}

/* ---- session lifetime ---- */

static uint8_t *body_buf_get(struct http_loop *hl)
{
    return hl->nbody ? hl->body[--hl->nbody] : malloc(HEAD_ROOM + BODY_CHUNK);
}

static void body_buf_put(struct http_loop *hl, uint8_t *b)
{
    if (hl->nbody < BODY_CACHE)
        hl->body[hl->nbody++] = b;
    else
        free(b);
}

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

static void close_file(struct http_sess *h);

static void sess_free(struct http_sess *h)
{
    rs_timer_stop(h->loop, &h->retry);
    rs_timer_stop(h->loop, &h->head_timer);
    rs_timer_stop(h->loop, &h->watch);
    free_bufs(h);
    close_file(h);
    free(h->in);
    free(h);
}

/* Every file op completion starts here: the session may be orphaned. */
static bool op_done(struct http_sess *h)
{
    h->ops--;
    h->hl->ops--;
    if (h->s)
        return true;
    if (h->ops == 0)
        sess_free(h);
    return false;
}

/* rc: what the rs_fs_* call that started a request returned. A started
 * request is one more the session waits for (the loop waits for it too:
 * every file request is one of the loop's). */
static void file_op_started(struct http_sess *h, const char *what, int rc)
{
    if (rc < 0) {
        rs_log_error("http: %s of %s failed to start: %s", what, h->path, strerror(-rc));
        die(h, rc);
        return;
    }
    h->ops++;
    h->hl->ops++;
}

/* Close the current file at once: a read-only file's close(2) does no IO.
 * (It went through the backend as RS_OP_CLOSE until that op was seen, about
 * once in 30 test runs on io_uring, still in flight 5 s after the session
 * closed, leaking the session at exit. The likely cause, since fixed: a
 * loop ended as soon as its last stream was gone, with the close in
 * flight, and its teardown ran on the thread that destroyed the server,
 * where run() on a ring with a registered fd fails at once; the 5 s were
 * the teardown's bounded retries. Loops now wait for their requests and
 * finish on their own thread.) */
static void close_file(struct http_sess *h)
{
    if (h->fd < 0)
        return;
    if (h->fce)
        rs_fcache_release(&h->hl->fcache, h->fce); /* the cache keeps it open */
    else
        close(h->fd);
    h->fce = NULL;
    h->fd = -1;
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

static void finish_response(struct http_sess *h)
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

/* Give up on the connection: the session ignores every completion still
 * to come, except to give back what they carry. A response was promised
 * (its head may be out, with a Content-Length the body will not reach):
 * the connection ends with a reset, so the client cannot take the prefix
 * it got for the whole file. */
static void die(struct http_sess *h, int reason)
{
    h->state = ST_DEAD;
    rs_stream_abort_reset(h->s, reason);
}

/* ---- the file ---- */

static void on_open(struct rs_fs_req *req);

static void open_path(struct http_sess *h)
{
    h->state = ST_OPEN;
    h->fop.data = h;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. Regular files
     * ignore it. Beneath the root: no "..", absolute path or symbolic link
     * leads out (rs_fs_open_beneath). */
    int rc =
        rs_fs_open_beneath(h->loop, &h->fop, h->hl->root_fd, h->path[0] ? h->path : ".",
                           O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, on_open);
    file_op_started(h, "open", rc);
}

static void examined(struct http_sess *h);
static void not_found(struct http_sess *h);

/* h->path from the open-file cache (no open, no statx, no close:
 * fcache.h), else opened. */
static void open_file(struct http_sess *h)
{
    struct rs_fcache_entry *e =
        rs_fcache_get(&h->hl->fcache, h->hl->root_fd, h->path, rs_loop_now(h->loop),
                      rs_loop_config(h->loop)->open_file_cache_valid_ms);
    if (e) {
        h->state = ST_OPEN;
        h->fce = e;
        h->fd = e->fd;
        /* More than one buffer: the statx of the descriptor costs nothing
         * next to the body, and a file changed in place (truncated,
         * appended to) is then served at its size of now. */
        if (e->stx.stx_size > rs_loop_config(h->loop)->buffer_size &&
            rs_fcache_refresh(e) < 0) {
            not_found(h);
            return;
        }
        h->stx = e->stx;
        examined(h);
        return;
    }
    open_path(h);
}

static void start_request(struct http_sess *h)
{
    h->head_only = h->req.method == RS_HTTP_HEAD;
    /* Stopping: this response is the connection's last. */
    h->keep_alive = h->req.keep_alive && !rs_loop_stopping(h->loop);
    h->is_index = false;
    size_t n = strlen(h->req.path);
    memcpy(h->path, h->req.path, n + 1);
    open_file(h);
}

static void not_found(struct http_sess *h)
{
    close_file(h);
    respond_short(h, 404, NULL, 0);
    finish_response(h);
}

/* Large bodies go from the file to the socket in the kernel when the
 * backend can (RS_CAP_SENDFILE: sendfile(2) on epoll, splice through a pipe
 * on io_uring) unless --sendfile=off: no read into memory, no copy. */
static bool use_sendfile(const struct http_sess *h)
{
    return (rs_loop_caps(h->loop) & RS_CAP_SENDFILE) &&
           !rs_loop_config(h->loop)->no_sendfile;
}

/* The head, then the file itself: the stream owns the descriptor from here
 * and closes it once the body is sent (or dropped). The response is
 * complete as far as the session is concerned; the next request waits
 * until the file has left (rs_stream_has_file), so a connection holds one
 * file at a time whatever a client pipelines. */
static void send_by_file(struct http_sess *h)
{
    char head[HEAD_ROOM];
    int n = format_head(h, head);
    int fd = h->fd;
    h->fd = -1;
    if (h->fce) {
        /* The stream closes what it is given: a descriptor of its own
         * (at the limit, made with what the loop holds given back). */
        fd = rs_loop_dup_fd(h->loop, fd);
        rs_fcache_release(&h->hl->fcache, h->fce);
        h->fce = NULL;
        if (fd < 0) {
            die(h, fd);
            return;
        }
    }
    /* Head and body queued together: the head leaves in the body's first
     * segment, never alone (stream.h says why that matters). */
    if (rs_stream_write_head_file(h->s, (const uint8_t *)head, (uint32_t)n, fd, h->first,
                                  h->count) == 0)
        h->queued += (uint64_t)n + h->count;
    finish_response(h);
}

/* The file is open and examined: answer. */
static void respond(struct http_sess *h)
{
    struct rs_http_request *r = &h->req;
    h->size = h->stx.stx_size;
    int64_t mtime = (int64_t)h->stx.stx_mtime.tv_sec;
    h->fh.made = false; /* a session's own is for one response (one path) */
    const struct rs_http_file_head *fh = file_head(h);
    /* A file without a date we could state has no validator: the
     * conditions that compare with it do not apply (RFC 9110 13.1.3), and
     * an If-Range cannot match (13.1.5). */
    bool dated = fh->dated;
    if (dated && r->has_ims && mtime <= r->ims) {
        /* The Last-Modified line, as a 200 would have it. */
        respond_short(h, 304, fh->text + fh->cl_end, (size_t)(fh->lm_end - fh->cl_end));
        finish_response(h);
        return;
    }
    /* If-Range that does not match: the Range is ignored, the whole file
     * is sent (200), so a resumed download is never stitched from two
     * versions of the file. The clock only matters to an If-Range. */
    int64_t now = r->has_range && r->has_if_range ? (int64_t)time(NULL) : 0;
    r->has_range = rs_http_range_applies(r, dated ? mtime : -1, now);
    int64_t first, count;
    h->status = rs_http_range_resolve(r, (int64_t)h->size, &first, &count);
    if (h->status == 416) {
        char extra[64];
        char *o = RS_HTTP_PUT_LIT(extra, "Content-Range: bytes */");
        o = rs_http_put_u64(o, h->size);
        o = RS_HTTP_PUT_LIT(o, "\r\n");
        respond_short(h, 416, extra, (size_t)(o - extra));
        finish_response(h);
        return;
    }
    h->first = (uint64_t)first;
    h->count = (uint64_t)count;
    h->next_off = h->first;
    h->end = h->first + h->count;
    h->small = h->count <= rs_loop_config(h->loop)->buffer_size;
    if (!h->small && !h->head_only && use_sendfile(h)) {
        send_by_file(h);
        return;
    }
    if (!h->small && !h->head_only) {
        /* The session's own read buffers, for this response only (an idle
         * keep-alive connection holds none; one still being sent from for
         * the response before is kept). */
        for (int i = 0; i < READ_AHEAD; i++) {
            if (!h->rd[i].buf && !(h->rd[i].buf = body_buf_get(h->hl))) {
                die(h, -ENOMEM);
                return;
            }
        }
    }
    /* A read body's head waits for its first bytes: one send, one segment
     * (stream.h, rs_stream_write_head_file, says why that matters). */
    h->head_due = !h->small && !h->head_only && h->count > 0;
    if (h->head_only || h->count == 0) {
        char head[HEAD_ROOM];
        int n = format_head(h, head);
        out_copy(h, head, (uint32_t)n);
        if (h->head_only || h->count == 0) {
            finish_response(h);
            return;
        }
    }
    h->state = ST_BODY;
    h->rd_head = h->rd_tail = 0;
    pump(h);
}

static void on_open(struct rs_fs_req *req)
{
    struct http_sess *h = req->data;
    /* req lives inside the session, which op_done() may free. */
    int res = req->result;
    if (!op_done(h) || h->state != ST_OPEN) {
        if (res >= 0)
            close(res); /* orphaned: nobody will read it */
        return;
    }
    if (res < 0) {
        /* ENOENT, ENOTDIR, EXDEV (escape), ELOOP, EACCES...: 404 for all,
         * so a prober learns nothing. EMFILE & co. are ours: 503. */
        if (res == -EMFILE || res == -ENFILE || res == -ENOMEM) {
            rs_fcache_trim(&h->hl->fcache); /* give back what nobody reads */
            respond_short(h, 503, NULL, 0);
            finish_response(h);
        } else {
            not_found(h);
        }
        return;
    }
    h->fd = res;
    /* statx of the descriptor just opened, here and now: its inode is in
     * memory, so this cannot wait for a disk (on a local file system),
     * while IORING_OP_STATX always goes to an io-wq thread (measured: one
     * hand-off per request and ~1.5x the CPU per 1 KiB request) and the
     * epoll pool would add a second round trip. */
    if (statx(h->fd, "", AT_EMPTY_PATH, RS_FCACHE_STATX_MASK, &h->stx) < 0) {
        not_found(h);
        return;
    }
    if (S_ISDIR(h->stx.stx_mode) && !h->is_index) {
        /* A directory: its index.html, or 404 (no listings). */
        size_t n = strlen(h->path);
        close_file(h);
        if (n + TAIL_LEN + 1 > sizeof(h->path)) {
            not_found(h);
            return;
        }
        memcpy(h->path + n, n ? "/index.html" : "index.html",
               n ? TAIL_LEN + 1 : TAIL_LEN);
        h->is_index = true;
        open_file(h);
        return;
    }
    if (S_ISREG(h->stx.stx_mode)) {
        struct rs_fcache_entry *e =
            rs_fcache_put(&h->hl->fcache, h->path, h->fd, &h->stx, rs_loop_now(h->loop));
        if (e)
            h->fce = e;
    }
    examined(h);
}

/* The file is open and its statx at hand (just now, or from the cache). */
static void examined(struct http_sess *h)
{
    /* Not a regular file, or "file.txt/": 404. */
    if (!S_ISREG(h->stx.stx_mode) || (h->req.dir_slash && !h->is_index)) {
        not_found(h);
        return;
    }
    respond(h);
}

/* ---- the body ---- */

static void on_read(struct rs_fs_req *req);

static void retry_fn(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    pump(t->data);
}

static bool may_read_more(const struct http_sess *h)
{
    uint32_t inflight = h->rd_tail - h->rd_head;
    if (inflight >= READ_AHEAD || h->next_off >= h->end)
        return false;
    if (h->rd[h->rd_tail % READ_AHEAD].sending)
        return false; /* its buffer is still being sent from */
    uint64_t ahead = rs_stream_pending(h->s) + (uint64_t)inflight * BODY_CHUNK;
    return ahead < rs_loop_config(h->loop)->max_pending;
}

static void submit_read(struct http_sess *h, struct rd_slot *r)
{
    r->req.data = h;
    r->busy = true;
    r->done = false;
    r->lent = h->small;
    /* Small: into a lent buffer, sent with the head from there (deliver);
     * large: into the slot's own memory. */
    int rc = h->small ? rs_fs_read_lent(h->loop, &r->req, h->fd, r->len, r->off, on_read)
                      : rs_fs_read(h->loop, &r->req, h->fd, r->buf + HEAD_ROOM, r->len,
                                   r->off, on_read);
    if (rc < 0)
        r->busy = false;
    file_op_started(h, "read", rc);
}

/* Issue reads while the window allows; re-issue those that found no
 * buffer. */
static void pump(struct http_sess *h)
{
    if (!h->s || h->state != ST_BODY)
        return;
    for (uint32_t i = h->rd_head; i != h->rd_tail; i++) {
        struct rd_slot *r = &h->rd[i % READ_AHEAD];
        if (!r->busy && !r->done)
            submit_read(h, r); /* a retry */
    }
    while (h->s && may_read_more(h)) {
        struct rd_slot *r = &h->rd[h->rd_tail++ % READ_AHEAD];
        uint64_t left = h->end - h->next_off;
        r->off = h->next_off;
        uint32_t chunk = h->small ? rs_loop_config(h->loop)->buffer_size : BODY_CHUNK;
        r->len = left < chunk ? (uint32_t)left : chunk;
        h->next_off += r->len;
        submit_read(h, r);
    }
}

/* A body buffer's bytes are in the socket (or were dropped with the
 * stream): it can be read into again, or goes back to the loop. */
static void on_sent(struct rs_fs_req *req)
{
    struct http_sess *h = req->data;
    struct rd_slot *r =
        (struct rd_slot *)(void *)((char *)req - offsetof(struct rd_slot, req));
    r->sending = false;
    if (!op_done(h))
        return; /* the session's end frees its buffers */
    if (h->state != ST_BODY) {
        body_buf_put(h->hl, r->buf);
        r->buf = NULL;
        return;
    }
    pump(h);
}

/* The oldest read is back with all its bytes: send them. */
static void deliver(struct http_sess *h, struct rd_slot *r)
{
    if (!h->small) {
        /* Sent from the session's buffer itself, not copied into the
         * stream's queue; the buffer is read into again once on_sent says
         * its bytes are in the socket. A slow client pins none of the
         * shared pool (lent buffers held by 50 slow clients used to
         * exhaust it), only this response's READ_AHEAD buffers. */
        uint8_t *p = r->buf + HEAD_ROOM;
        uint32_t len = (uint32_t)r->res;
        if (h->head_due) {
            char head[HEAD_ROOM];
            int n = format_head(h, head);
            p -= n;
            memcpy(p, head, (size_t)n);
            len += (uint32_t)n;
            h->head_due = false;
        }
        r->req.data = h;
        r->sending = true;
        int rc = rs_fs_send(h->loop, &r->req, h->s, p, len, on_sent);
        if (rc < 0)
            r->sending = false;
        else
            h->queued += len;
        file_op_started(h, "send", rc);
        watch_arm(h);
        return;
    }
    /* Small: head and body in one write, so one send, one segment. */
    const uint8_t *p = rs_loop_buf(h->loop, r->bid);
    uint8_t *out = h->hl->scratch;
    int n = format_head(h, (char *)out);
    memcpy(out + n, p, (size_t)r->res);
    rs_loop_buf_release(h->loop, r->bid);
    out_copy(h, out, (uint32_t)n + (uint32_t)r->res);
}

/* Slots read but not yet sent (waiting for an earlier one): give their
 * buffers back; pump() reads them again. */
static void drop_done_slots(struct http_sess *h)
{
    for (uint32_t i = h->rd_head; i != h->rd_tail; i++) {
        struct rd_slot *x = &h->rd[i % READ_AHEAD];
        if (x->done && x->res > 0 && h->small)
            rs_loop_buf_release(h->loop, x->bid);
        x->done = false;
    }
}

static void on_read(struct rs_fs_req *req)
{
    struct http_sess *h = req->data;
    struct rs_loop *loop = req->loop;
    struct rd_slot *r =
        (struct rd_slot *)(void *)((char *)req - offsetof(struct rd_slot, req));
    bool lent = r->lent && req->result > 0; /* req->bid is ours to give back */
    int32_t res = req->result;
    uint16_t bid = req->bid;
    r->busy = false;
    if (!op_done(h) || h->state != ST_BODY) {
        if (lent)
            rs_loop_buf_release(loop, bid);
        return;
    }
    if (res == -ENOBUFS || res == -EAGAIN) {
        /* No buffer free (or a kernel that honours O_NONBLOCK on files):
         * try again shortly; the slot keeps its place in the order. Later
         * slots already read give their buffers back and read again: held
         * while waiting for this one, they could be the very buffers it
         * waits for (with a small pool, a deadlock). */
        drop_done_slots(h);
        rs_timer_start(loop, &h->retry, RETRY_MS, retry_fn, h);
        return;
    }
    r->done = true;
    r->res = res;
    r->bid = bid;
    /* In order: reads may complete out of order, bytes may not. */
    while (h->rd_head != h->rd_tail) {
        struct rd_slot *o = &h->rd[h->rd_head % READ_AHEAD];
        if (!o->done)
            break;
        o->done = false;
        h->rd_head++;
        if (o->res != (int32_t)o->len) {
            /* An error, or the file shrank under us: the promised length
             * cannot be kept, so the connection ends here. */
            if (o->res > 0 && h->small)
                rs_loop_buf_release(loop, o->bid);
            rs_log_info("http: read of %s at %" PRIu64 ": %s", h->path, o->off,
                        o->res < 0 ? strerror(-o->res) : "file shrank");
            /* Later slots: those done give their buffers back now, those
             * in flight when they complete (ST_DEAD). */
            drop_done_slots(h);
            h->rd_head = h->rd_tail;
            die(h, o->res < 0 ? o->res : -EIO);
            return;
        }
        deliver(h, o);
        if (!h->s)
            return;
    }
    if (h->rd_head == h->rd_tail && h->next_off >= h->end) {
        finish_response(h);
        return;
    }
    pump(h);
}

/* ---- requests ---- */

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
        respond_short(h, 408, NULL, 0);
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
                drop_done_slots(h); /* as a failed read does: their buffers back */
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

/* A response was queued (or a body's next part): have the watch look
 * soon, unless it already does. No clock, no heap move while it runs. */
static void watch_arm(struct http_sess *h)
{
    if (rs_timer_active(&h->watch) || !h->s || !rs_stream_is_open(h->s))
        return;
    uint64_t step = watch_step(rs_loop_config(h->loop));
    if (step)
        rs_timer_start(h->loop, &h->watch, step, watch_fn, h);
}

static void head_deadline_start(struct http_sess *h)
{
    uint32_t ms = rs_loop_config(h->loop)->header_timeout_ms;
    if (ms && !rs_timer_active(&h->head_timer))
        rs_timer_start(h->loop, &h->head_timer, ms, head_timeout_fn, h);
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
            head_deadline_start(h);
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
        respond_short(h, -n, allow, n == -405 ? sizeof(allow) - 1 : 0);
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
            drop_done_slots(h); /* those in flight release theirs as they land */
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
        pump(h);
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
        drop_done_slots(h); /* those in flight release theirs as they land */
    if (h->ops == 0)
        sess_free(h);
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
    head_deadline_start(h);
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
 * closes after it (finish_response). The drain deadline resets what is
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
