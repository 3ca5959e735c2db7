/* What the HTTP protocol's files share (http.c's essay says which does
 * what): the per-loop and per-session state, the functions one file calls
 * in another, and the small helpers every one of them uses, inline as
 * they were when all of it was one file (a request passes through most
 * of them). Internal to protocols/http*.c. */
#ifndef RINGSERVE_HTTP_INT_H
#define RINGSERVE_HTTP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ringserve.h>

#include "fcache.h"
#include "http_head.h"
#include "http_parse.h"

#define READ_AHEAD 4             /* body buffers per large response (--sendfile=off) */
#define BODY_CHUNK (128u * 1024) /* bytes per read of a large body */
#define HEAD_ROOM  1024          /* bytes reserved for a response head */
#define BODY_CACHE 16            /* body buffers kept per loop for the next responses */
#define TAIL_LEN   11            /* strlen("/index.html") */

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
    uint8_t watch_mode;  /* what that look saw (http_timeouts.c) */
    bool served;         /* a response was queued: the next head is due at its
                            first byte (next_request) */
    char *in;            /* request bytes not yet parsed */
    uint32_t in_len, in_cap;
};

/* http.c: the session's end, once its stream closed and its last file
 * op came back; the end of a response (its file closed, its buffers
 * back), then the next request, or the connection's end. */
void http_sess_free(struct http_sess *h);
void http_finish_response(struct http_sess *h);

/* http_file.c: open h->path (or find it in the open-file cache), examine
 * it, and answer (http_respond), or 404, 503. */
void http_open_file(struct http_sess *h);

/* http_respond.c: answer the request for the file examined; a response
 * with a short text body or none (errors, 304, 416; `extra`: header lines
 * to add, extra_len bytes, at most HEAD_ROOM); the head of a 200/206 into
 * out (HEAD_ROOM bytes), its length returned. */
void http_respond(struct http_sess *h);
void http_respond_short(struct http_sess *h, int status, const char *extra,
                        size_t extra_len);
int http_format_head(struct http_sess *h, char *out);

/* http_body.c: a read body's next reads (through http_pump, below); its
 * slots read but not yet sent give their buffers back (read again later,
 * if the body goes on). */
void http_pump_reads(struct http_sess *h);
void http_drop_done_slots(struct http_sess *h);

/* http_timeouts.c: the request-head deadline starts (unless it runs); the
 * watch starts looking (through watch_arm, below). */
void http_head_deadline_start(struct http_sess *h);
void http_watch_start(struct http_sess *h);

/* Every write to the stream counts its bytes: the watch tells what was
 * sent from what was queued. (Bytes a closing stream drops are counted
 * too; the watch no longer looks then.) */
static inline void out_copy(struct http_sess *h, const void *p, uint32_t len)
{
    rs_stream_write_copy(h->s, p, len);
    h->queued += len;
}

/* What a 200 states about the file being served (type, length,
 * Last-Modified): made once per cached file and kept in its cache entry,
 * else made per response in the session. Checked against the size and
 * mtime served at every use: another session may have refreshed the entry
 * (rs_fcache_refresh) since, and this response keeps what it examined. */
static inline const struct rs_http_file_head *file_head(struct http_sess *h)
{
    struct rs_http_file_head *fh = h->fce ? &h->fce->head : &h->fh;
    return rs_http_file_head_for(fh, h->path, h->stx.stx_size,
                                 (int64_t)h->stx.stx_mtime.tv_sec);
}

static inline uint8_t *body_buf_get(struct http_loop *hl)
{
    return hl->nbody ? hl->body[--hl->nbody] : malloc(HEAD_ROOM + BODY_CHUNK);
}

static inline void body_buf_put(struct http_loop *hl, uint8_t *b)
{
    if (hl->nbody < BODY_CACHE)
        hl->body[hl->nbody++] = b;
    else
        free(b);
}

/* Give up on the connection: the session ignores every completion still
 * to come, except to give back what they carry. A response was promised
 * (its head may be out, with a Content-Length the body will not reach):
 * the connection ends with a reset, so the client cannot take the prefix
 * it got for the whole file. */
static inline void die(struct http_sess *h, int reason)
{
    h->state = ST_DEAD;
    rs_stream_abort_reset(h->s, reason);
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
static inline void close_file(struct http_sess *h)
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

/* Every file op completion starts here: the session may be orphaned. */
static inline bool op_done(struct http_sess *h)
{
    h->ops--;
    h->hl->ops--;
    if (h->s)
        return true;
    if (h->ops == 0)
        http_sess_free(h);
    return false;
}

/* rc: what the rs_fs_* call that started a request returned. A started
 * request is one more the session waits for (the loop waits for it too:
 * every file request is one of the loop's). */
static inline void file_op_started(struct http_sess *h, const char *what, int rc)
{
    if (rc < 0) {
        rs_log_error("http: %s of %s failed to start: %s", what, h->path, strerror(-rc));
        die(h, rc);
        return;
    }
    h->ops++;
    h->hl->ops++;
}

/* A body being read reads on (http_body.c), once its stream is known to
 * be there: the test inline, as every read body, one per small response,
 * comes here from http_respond.c. */
static inline void http_pump(struct http_sess *h)
{
    if (!h->s || h->state != ST_BODY)
        return;
    http_pump_reads(h);
}

/* A response was queued (or a body's next part): have the watch look
 * soon, unless it already does. No clock, no heap move while it runs:
 * every response passes here, and the watch mostly runs already. */
static inline void watch_arm(struct http_sess *h)
{
    if (rs_timer_active(&h->watch) || !h->s || !rs_stream_is_open(h->s))
        return;
    http_watch_start(h);
}

#endif
