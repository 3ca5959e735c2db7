/* The HTTP server's read body: a small one in one read into a lent pool
 * buffer, sent with its head; a large one (--sendfile=off, or a backend
 * without RS_CAP_SENDFILE) in reads of BODY_CHUNK into the session's
 * READ_AHEAD buffers, each sent from there as it lands, in order, while
 * the window (--max-pending) allows. http.c's essay says why so. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ringserve.h>

#include "http_int.h"

#define RETRY_MS 1 /* after -ENOBUFS / -EAGAIN on a read */

static void on_read(struct rs_fs_req *req);

static void retry_fn(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    http_pump(t->data);
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
 * buffer. Called through http_pump (http_int.h): a body is being read,
 * and the stream is there. */
void http_pump_reads(struct http_sess *h)
{
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
    http_pump(h);
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
            int n = http_format_head(h, head);
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
    int n = http_format_head(h, (char *)out);
    memcpy(out + n, p, (size_t)r->res);
    rs_loop_buf_release(h->loop, r->bid);
    out_copy(h, out, (uint32_t)n + (uint32_t)r->res);
}

/* Slots read but not yet sent (waiting for an earlier one): give their
 * buffers back; http_pump() reads them again. */
void http_drop_done_slots(struct http_sess *h)
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
        http_drop_done_slots(h);
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
            http_drop_done_slots(h);
            h->rd_head = h->rd_tail;
            die(h, o->res < 0 ? o->res : -EIO);
            return;
        }
        deliver(h, o);
        if (!h->s)
            return;
    }
    if (h->rd_head == h->rd_tail && h->next_off >= h->end) {
        http_finish_response(h);
        return;
    }
    http_pump(h);
}
