/* A stream's output queue (stream.h: the writes; stream_int.h: the
 * stream's files): the lent slot, then the chunks, and the one send op
 * that carries them, in order, one at a time. */
#include "stream_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "protocol.h"

/* A sendfile op moves at most this much, unless the backend chose its
 * own size (loop->sendfile_op_max): its completion is where the stream's
 * accounting, low watermark and idle clock move on. A backend whose op
 * completes after each sendfile(2) (epoll) keeps this, which then only
 * bounds one call, as nginx's sendfile_max_chunk does; one whose op lasts
 * across its waits for room takes larger ops only if it ends them early
 * enough for that clock (io_uring: at its first wait after 1 MiB went
 * out, docs/http.md). */
#define SENDFILE_OP_MAX (1u << 20)
/* A file chunk holds at most this much; larger ranges take several, each
 * with a descriptor of its own (dup). */
#define FILE_CHUNK_MAX (1u << 30)

/* A vectored send: up to RS_SENDV_MAX queued chunks in one sendmsg. Only
 * streams that ever have several chunks queued get one (ping-pong never
 * does); it stays with the struct when the loop recycles it. */
#define RS_SENDV_MAX 16
struct rs_sendv {
    struct msghdr msg;
    struct iovec iov[RS_SENDV_MAX];
};
/* Big enough to coalesce many small pipelined messages, small enough that
 * thousands of streams copying under pressure stay cheap. */
#define HEAP_CHUNK_MIN 4000u

static struct rs_chunk *chunk_get(struct rs_loop *loop)
{
    struct rs_chunk *k = loop->free_chunks;
    if (k) {
        loop->free_chunks = k->next;
        loop->nfree_chunks--;
        return k;
    }
    return malloc(sizeof(*k));
}

static void chunk_put(struct rs_loop *loop, struct rs_chunk *k)
{
    if (k->req) {
        /* All sent (len 0), or dropped: the request's callback runs on
         * the loop's next turn, never from inside this call. */
        rs_fs_stream_done(k->req, k->len == 0);
        k->req = NULL;
    }
    if (is_file(k)) {
        close(k->file.file_fd); /* read-only: close(2) does no IO */
        k->file.file_fd = -1;
    }
    if (k->bid >= 0) {
        loop->ops->buf_release(loop, (uint16_t)k->bid);
    }
    if (k->cap > 0 || loop->nfree_chunks >= CACHE_MAX) {
        free(k);
        return;
    }
    k->next = loop->free_chunks;
    loop->free_chunks = k;
    loop->nfree_chunks++;
}

void rs_stream_cache_fini(struct rs_loop *loop)
{
    while (loop->free_chunks) {
        struct rs_chunk *k = loop->free_chunks;
        loop->free_chunks = k->next;
        free(k);
    }
    loop->nfree_chunks = 0;
    while (loop->free_streams) {
        struct rs_stream *s = loop->free_streams;
        loop->free_streams = s->next;
        free(s->sendv);
        free(s);
    }
    loop->nfree_streams = 0;
}

static void enqueue(struct rs_stream *s, struct rs_chunk *k)
{
    k->next = NULL;
    if (s->tail)
        s->tail->next = k;
    else
        s->head = k;
    s->tail = k;
    s->pending += k->len;
}

/* Send the head of the queue (start_send checked there is one and no
 * send is in flight). */
void stream_send_head(struct rs_stream *s)
{
    /* Open, or closing gracefully (flushing): not connecting yet, not
     * aborted, not closed. */
    if (s->state != RS_STREAM_OPEN && !(s->state == RS_STREAM_CLOSING && s->graceful))
        return;
    struct rs_chunk *k = s->head;
    if (s->slot_len > 0) {
        send_slot(s, opf(s, k && is_file(k) ? RS_OPF_MORE : 0u));
        return;
    }
    assert(k->len > 0);
    if (is_file(k)) {
        /* The file's bytes go from the page cache to the socket. */
        s->send_chunks = 1;
        s->send_op.kind = RS_OP_SENDFILE;
        s->send_op.buf = &k->file;
        uint32_t max =
            s->loop->sendfile_op_max ? s->loop->sendfile_op_max : SENDFILE_OP_MAX;
        s->send_op.len = k->len < max ? k->len : max;
        s->send_op.flags = opf(s, 0);
    } else if (k->next && !is_file(k->next) &&
               (s->sendv || (s->sendv = malloc(sizeof(*s->sendv))))) {
        /* Several chunks wait: one sendmsg for as many as fit (up to a
         * file chunk: that one needs an op of its own). */
        struct rs_sendv *v = s->sendv;
        uint32_t n = 0;
        uint64_t total = 0;
        s->send_op.kind = RS_OP_SEND;
        for (; k && !is_file(k) && n < RS_SENDV_MAX && total + k->len <= UINT32_MAX;
             k = k->next, n++) {
            v->iov[n] = (struct iovec){.iov_base = (void *)k->ptr, .iov_len = k->len};
            total += k->len;
        }
        v->msg = (struct msghdr){.msg_iov = v->iov, .msg_iovlen = n};
        s->send_chunks = (uint8_t)n;
        s->send_op.buf = &v->msg;
        s->send_op.len = (uint32_t)total;
        s->send_op.flags = opf(s, RS_OPF_MSG | (k && is_file(k) ? RS_OPF_MORE : 0u));
    } else {
        s->send_chunks = 1;
        s->send_op.kind = RS_OP_SEND;
        s->send_op.buf = k->ptr;
        s->send_op.len = k->len;
        /* Static chunks (chargen's table) may go zero-copy without a hold;
         * ref chunks may not (their owner reuses the memory once told). */
        bool is_static = k->bid < 0 && k->cap == 0 && !k->req;
        s->send_op.flags = opf(s, is_static ? RS_OPF_STATIC_BUF : 0);
        /* A file follows (an HTTP head before its body): one segment. */
        if (k->next && is_file(k->next))
            s->send_op.flags |= RS_OPF_MORE;
    }
    send_submitted(s, s->loop->ops->submit(s->loop, &s->send_op));
}

/* Bytes that still fit in the last queued chunk: 0 unless it is a heap
 * chunk (lent and static chunks are never appended to). */
static size_t tail_room(const struct rs_stream *s)
{
    const struct rs_chunk *t = s->tail;
    if (!t || t->cap == 0)
        return 0;
    return (size_t)(t->data + t->cap - (t->ptr + t->len));
}

static void fill_chunk(struct rs_stream *s, struct rs_chunk *k, const uint8_t *ptr,
                       uint32_t len, int32_t bid, uint32_t cap)
{
    k->ptr = ptr;
    k->len = len;
    k->bid = bid;
    k->cap = cap;
    k->file.file_fd = -1;
    k->req = NULL;
    enqueue(s, k);
}

static void queue_chunk(struct rs_stream *s, struct rs_chunk *k, const uint8_t *ptr,
                        uint32_t len, int32_t bid, uint32_t cap)
{
    fill_chunk(s, k, ptr, len, bid, cap);
    start_send(s);
}

/* rs_stream_write_lent behind something queued, or refused, or under
 * pressure (stream_write_lent took the ping-pong case). */
__attribute__((noinline)) void stream_write_lent_queued(struct rs_stream *s,
                                                        const uint8_t *p, uint32_t len,
                                                        uint16_t bid)
{
    struct rs_loop *loop = s->loop;
    if (!accepts_output(s)) {
        rs_stream_release(s, bid);
        return;
    }
    bool pressure = pool_pressure(loop);
    if (!has_output(s) && !pressure && len > 0) {
        /* Nothing queued after all (connecting, say): the slot. */
        slot_fill(s, p, len, bid);
        start_send(s);
        return;
    }
    if (tail_room(s) >= len || pressure) {
        loop->stats.copies++;
        rs_stream_write_copy(s, p, len);
        rs_stream_release(s, bid);
        return;
    }
    struct rs_chunk *k = chunk_get(loop);
    if (!k) {
        rs_stream_release(s, bid);
        output_failed(s, -ENOMEM);
        return;
    }
    queue_chunk(s, k, p, len, bid, 0);
}

void rs_stream_write_lent(struct rs_stream *s, const uint8_t *p, uint32_t len,
                          uint16_t bid)
{
    stream_write_lent(s, p, len, bid);
}

/* Copy len bytes to the end of the queue, without starting a send: false
 * when nothing was queued (no output accepted, or out of memory: the stream
 * failed). */
static bool queue_copy(struct rs_stream *s, const uint8_t *p, uint32_t len)
{
    if (len == 0 || !accepts_output(s))
        return false;
    if (tail_room(s) >= len) {
        /* Appending is safe even while this chunk is being sent: data[]
         * never moves, and the in-flight send covers only the old length. */
        struct rs_chunk *t = s->tail;
        memcpy((uint8_t *)t->ptr + t->len, p, len);
        t->len += len;
        s->pending += len;
        return true;
    }
    uint32_t cap = len > HEAP_CHUNK_MIN ? len : HEAP_CHUNK_MIN;
    struct rs_chunk *k = malloc(sizeof(*k) + cap);
    if (!k) {
        output_failed(s, -ENOMEM);
        return false;
    }
    memcpy(k->data, p, len);
    fill_chunk(s, k, k->data, len, -1, cap);
    return true;
}

void rs_stream_write_copy(struct rs_stream *s, const uint8_t *p, uint32_t len)
{
    if (queue_copy(s, p, len))
        start_send(s);
}

void rs_stream_write_static(struct rs_stream *s, const uint8_t *p, uint32_t len)
{
    if (len == 0 || !accepts_output(s))
        return;
    struct rs_chunk *k = chunk_get(s->loop);
    if (!k) {
        output_failed(s, -ENOMEM);
        return;
    }
    queue_chunk(s, k, p, len, -1, 0);
}

int rs_stream_write_file(struct rs_stream *s, int fd, uint64_t off, uint64_t len)
{
    int rc = rs_stream_write_file_req(s, fd, off, len, NULL);
    return rc < 0 ? rc : 0;
}

int rs_stream_write_head_file(struct rs_stream *s, const uint8_t *head, uint32_t hlen,
                              int fd, uint64_t off, uint64_t len)
{
    if (!(s->loop->caps & RS_CAP_SENDFILE))
        return -EOPNOTSUPP;
    if (!rs_file_range_ok(off, len))
        return -EINVAL; /* nothing queued, fd untouched */
    /* The head is queued but not sent: were it sent now, it would leave
     * alone (nothing behind it yet, so no MSG_MORE), in a segment of its
     * own. Measured on loopback, a client then never grows its receive
     * window past a few hundred KiB for the body that follows (its
     * autotuning sees the tiny head answered at once), the sender's
     * window stays shut, and the rest of every body is pushed out by the
     * client's own ACKs, on the client's CPU: wrk spent 1.8x the CPU per
     * 1 MiB response. Queued first, the head goes with MSG_MORE (a file
     * follows) and shares its segment with the body's first bytes. */
    queue_copy(s, head, hlen);
    int rc = rs_stream_write_file(s, fd, off, len);
    start_send(s); /* the head alone when the range was empty */
    return rc;
}

int rs_stream_write_file_req(struct rs_stream *s, int fd, uint64_t off, uint64_t len,
                             struct rs_fs_req *req)
{
    if (!(s->loop->caps & RS_CAP_SENDFILE))
        return -EOPNOTSUPP;
    if (!rs_file_range_ok(off, len))
        return -EINVAL;
    if (len == 0 || !accepts_output(s)) {
        close(fd);
        return req ? 1 : 0;
    }
    while (len > 0) {
        uint32_t n = len < FILE_CHUNK_MAX ? (uint32_t)len : FILE_CHUNK_MAX;
        /* Each chunk owns its descriptor: the last one gets fd itself. */
        int cfd = n == len ? fd : rs_loop_dup_fd(s->loop, fd);
        struct rs_chunk *k = cfd >= 0 ? chunk_get(s->loop) : NULL;
        if (!k) {
            int err = cfd < 0 ? cfd : -ENOMEM;
            if (cfd >= 0 && cfd != fd)
                close(cfd);
            close(fd);
            output_failed(s, err);
            return req ? 1 : 0;
        }
        k->ptr = NULL;
        k->len = n;
        k->bid = -1;
        k->cap = 0;
        k->file = (struct rs_sendfile){.file_fd = cfd, .off = off};
        k->req = n == len ? req : NULL; /* the last chunk tells it */
        enqueue(s, k);
        off += n;
        len -= n;
    }
    start_send(s);
    return 0;
}

int rs_stream_write_ref_req(struct rs_stream *s, const uint8_t *p, uint32_t len,
                            struct rs_fs_req *req)
{
    if (len == 0 || !accepts_output(s))
        return 1;
    struct rs_chunk *k = chunk_get(s->loop);
    if (!k) {
        output_failed(s, -ENOMEM);
        return 1;
    }
    fill_chunk(s, k, p, len, -1, 0);
    k->req = req;
    start_send(s);
    return 0;
}

bool rs_stream_has_file(const struct rs_stream *s)
{
    for (const struct rs_chunk *k = s->head; k; k = k->next)
        if (is_file(k))
            return true;
    return false;
}

void rs_stream_release(struct rs_stream *s, uint16_t bid)
{
    s->loop->ops->buf_release(s->loop, bid);
}

/* Drop queued output, except the chunks the kernel may still be reading
 * (those the in-flight send covers). */
void stream_drop_queue(struct rs_stream *s)
{
    if (s->slot_len > 0 && !(s->send_busy && s->send_chunks == 0)) {
        s->pending -= s->slot_len;
        s->slot_len = 0;
        rs_stream_release(s, s->slot_bid);
    }
    struct rs_chunk *k = s->head, *last_kept = NULL;
    for (uint32_t i = 0; k && s->send_busy && i < s->send_chunks; i++) {
        last_kept = k;
        k = k->next;
    }
    if (last_kept)
        last_kept->next = NULL;
    else
        s->head = NULL;
    s->tail = last_kept;
    while (k) {
        struct rs_chunk *n = k->next;
        s->pending -= k->len;
        chunk_put(s->loop, k);
        k = n;
    }
}

/* The backend failed for good: nothing will complete. Free what the
 * stream holds in memory; its lent buffers go with the pool, its socket
 * with the process. */
void rs_stream_abandon(struct rs_stream *s)
{
    struct rs_chunk *k = s->head;
    while (k) {
        struct rs_chunk *n = k->next;
        if (is_file(k))
            close(k->file.file_fd);
        free(k); /* every node is malloc'd: lent, heap and static alike */
        k = n;
    }
    s->head = s->tail = NULL;
    free(s->sendv);
    free(s);
}

/* A send failed: this stream only. The peer gone (ECONNRESET, EPIPE) or
 * our own abort's cancel (ECANCELED on a closing stream): the stream ends
 * as that already decided. Anything else cut a transfer on our side — a
 * zero result (a file chunk whose file ended early: it was truncated
 * while being sent), a file read error (EIO), no memory: the peer must
 * not read what it got as complete, so the stream ends with a reset, not
 * a FIN after a prefix. */
__attribute__((noinline)) static void send_failed(struct rs_stream *s, int res)
{
    bool peer_gone = res == -ECONNRESET || res == -EPIPE;
    bool ours = res == -ECANCELED && s->state == RS_STREAM_CLOSING;
    if (peer_gone || ours)
        stream_peer_failed(s, res);
    else
        rs_stream_abort_reset(s, res < 0 ? res : -EPIPE);
}

/* A send of queued chunks moved res bytes: the head chunk, or several
 * from the head on. True when it finished a file chunk. */
__attribute__((noinline)) static bool chunks_sent(struct rs_stream *s, uint32_t left)
{
    bool file_done = false;
    while (left > 0) {
        struct rs_chunk *k = s->head;
        assert(k);
        uint32_t n = left < k->len ? left : k->len;
        if (is_file(k))
            k->file.off += n;
        else
            k->ptr += n;
        k->len -= n;
        left -= n;
        if (k->len == 0) {
            file_done = file_done || is_file(k);
            s->head = k->next;
            if (!s->head)
                s->tail = NULL;
            chunk_put(s->loop, k);
            s->loop->stats.round_trips++;
        }
    }
    return file_done;
}

/* A send completed on a closing stream. Aborted: the rest of the queue
 * goes, and false (the completion is handled). Closing gracefully: the
 * progress restarts the close's bound, and true (send on). */
__attribute__((noinline)) static bool sent_while_closing(struct rs_stream *s)
{
    if (!s->graceful) {
        stream_drop_queue(s);
        maybe_progress(s);
        return false;
    }
    if (rs_timer_active(&s->timer))
        stream_close_timer_start(
            s); /* progress: the graceful close's bound starts again */
    return true;
}

void stream_on_send(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *comp)
{
    struct rs_stream *s = stream_of(op, send_op);
    assert(s == op->data);
    int res = comp->res;
    assert(s->send_busy && s->inflight > 0 && !(comp->flags & RS_CF_MORE));
    s->send_busy = false;
    s->send_cancel = false;
    s->inflight--;
    loop->stats.sends++;
    if (res <= 0) {
        send_failed(s, res);
        return;
    }
    assert((uint32_t)res <= op->len && (uint64_t)res <= s->pending);
    uint64_t before = s->pending;
    bool file_done = false;
    loop->stats.bytes_out += (uint64_t)res;
    s->active = true; /* for the idle scan */
    s->pending -= (uint64_t)res;
    if (s->send_chunks == 0) {
        /* The send covered the slot: all of it, or its first bytes (the
         * rest goes next, still ahead of any chunk). */
        assert((uint32_t)res <= s->slot_len);
        s->slot_ptr += res;
        s->slot_len -= (uint32_t)res;
        if (s->slot_len == 0) {
            loop->ops->buf_release(loop, s->slot_bid);
            loop->stats.round_trips++;
        }
    } else {
        file_done = chunks_sent(s, (uint32_t)res);
    }
    if (s->state == RS_STREAM_CLOSING && !sent_while_closing(s))
        return;
    start_send(s);
    relay_after_send(s);
    /* The last byte of a file went out: its owner may queue the next one
     * (rs_stream_has_file), whatever the watermark says. */
    if (((before > s->lowat && s->pending <= s->lowat) || file_done) &&
        accepts_output(s) && s->cbs->on_writable)
        s->cbs->on_writable(s);
    maybe_progress(s);
}
