/* The HTTP server's responses: what a request for an examined file
 * gets (200 or 206, 304, 416; the head alone for HEAD), how its body
 * goes (in the kernel from the file, or read: http_body.c), and the
 * short text responses (errors, 304, 416). Heads are assembled by
 * copying pieces formatted once (http_head.h): no printf on the way of a
 * response. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <ringserve.h>

#include "http_int.h"

/* The Date header line, remade when the second changes; "" when the clock
 * is outside what an HTTP-date can say (RFC 9110 6.6.1: no clock, no
 * Date). */
static const char *date_line(struct http_loop *hl, size_t *len)
{
    return rs_http_date_line(&hl->date, (int64_t)time(NULL), len);
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

/* Bytes of http_respond_short's head beyond its `extra` lines: the status and
 * Server lines, Date, Connection, Content-Type, Content-Length, the blank
 * line and the text body, with room to spare. */
#define SHORT_ROOM 384

/* A response with a short text body (or none): errors, 304, 416. `extra`:
 * header lines to add (extra_len bytes, at most HEAD_ROOM). */
void http_respond_short(struct http_sess *h, int status, const char *extra,
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
int http_format_head(struct http_sess *h, char *out)
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
    int n = http_format_head(h, head);
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
    http_finish_response(h);
}

/* The file is open and examined: answer. */
void http_respond(struct http_sess *h)
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
        http_respond_short(h, 304, fh->text + fh->cl_end,
                           (size_t)(fh->lm_end - fh->cl_end));
        http_finish_response(h);
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
        http_respond_short(h, 416, extra, (size_t)(o - extra));
        http_finish_response(h);
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
        int n = http_format_head(h, head);
        out_copy(h, head, (uint32_t)n);
        if (h->head_only || h->count == 0) {
            http_finish_response(h);
            return;
        }
    }
    h->state = ST_BODY;
    h->rd_head = h->rd_tail = 0;
    http_pump(h);
}
