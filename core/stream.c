/* The stream state machine (see stream.h for the contract with owners).
 *
 * Three ops per stream: the recv (multishot while the backend allows), the
 * send (one in flight, the head of the output queue) and a control op that
 * is, in turn, the socket (outbound: RS_OP_SOCKET, the fd is -1 until it
 * completes), the connect, the shutdown and the close. `inflight` counts
 * them; the close op is submitted only when it is zero, and the struct is
 * freed only when the close op completed.
 */
#include "stream.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "protocol.h"

/* A piece of queued output. Four kinds, by where the bytes live:
 *   lent   - in a pool buffer (bid >= 0): the zero-copy path;
 *   heap   - in data[] behind this header (cap > 0): copies, coalesced;
 *   static - in memory that outlives the stream (chargen's table);
 *   ref    - in the caller's memory until a request is told (req set,
 *            rs_fs_send): like static, but never zero-copy, since the
 *            caller reuses it once told;
 *   file   - in a file (file.file_fd >= 0, ptr NULL): sent with
 *            RS_OP_SENDFILE, never through our memory; the chunk owns the
 *            descriptor and closes it when sent or dropped. */
struct rs_chunk {
    struct rs_chunk *next;
    const uint8_t *ptr;      /* next byte to send */
    uint32_t len;            /* bytes left to send */
    int32_t bid;             /* lent buffer, or -1 */
    uint32_t cap;            /* heap: size of data[]; 0 otherwise */
    struct rs_sendfile file; /* file: the next byte; file_fd -1 otherwise */
    struct rs_fs_req *req;   /* file, ref: a request told when sent or dropped */
    uint8_t data[];
};

/* A sendfile op moves at most this much: its completion is where the
 * stream's accounting, low watermark and idle clock move on. */
#define SENDFILE_OP_MAX (1u << 20)
/* A file chunk holds at most this much; larger ranges take several, each
 * with a descriptor of its own (dup). */
#define FILE_CHUNK_MAX (1u << 30)

static bool is_file(const struct rs_chunk *k)
{
    return k->file.file_fd >= 0;
}

/* A vectored send: up to RS_SENDV_MAX queued chunks in one sendmsg. Only
 * streams that ever have several chunks queued get one (ping-pong never
 * does); it stays with the struct when the loop recycles it. */
#define RS_SENDV_MAX 16
struct rs_sendv {
    struct msghdr msg;
    struct iovec iov[RS_SENDV_MAX];
};

/* Keep a few recycled nodes per loop: the hot path should not malloc. */
#define CACHE_MAX 1024u
/* Big enough to coalesce many small pipelined messages, small enough that
 * thousands of streams copying under pressure stay cheap. */
#define HEAP_CHUNK_MIN 4000u

static void on_recv(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *c);
static void on_send(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *c);
static void on_ctl(struct rs_loop *loop, struct rs_op *op, const struct rs_completion *c);
static void advance(struct rs_stream *s);

/* Called after every completion and most calls: the common case, an open
 * stream with no shutdown asked and no EOF seen, has nothing to wind up,
 * and that test is inline. */
static inline void maybe_progress(struct rs_stream *s)
{
    if (!(s->state == RS_STREAM_OPEN && !s->shut_wanted && !s->eof))
        advance(s);
}

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

/* Output waits: in the lent slot, in chunks, or both. */
static inline bool has_output(const struct rs_stream *s)
{
    return s->slot_len > 0 || s->head;
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

/* Open, or lingering after a graceful close (reading to the peer's EOF,
 * dropping what comes), and no EOF yet. */
static bool may_read(const struct rs_stream *s)
{
    if (s->eof)
        return false;
    return s->state == RS_STREAM_OPEN || (s->state == RS_STREAM_CLOSING && s->lingering);
}

static bool wants_input(const struct rs_stream *s)
{
    return s->reading && may_read(s);
}

/* Bytes may still be queued: open (or connecting) and not shut down. */
static bool accepts_output(const struct rs_stream *s)
{
    return rs_stream_is_open(s) && !s->shut_wanted;
}

/* A backend refused a cancel, shutdown or close (its submission queue was
 * full, or it ran out of memory): nothing was issued, and nothing will
 * complete for it. The loop calls rs_stream_retry() on a later turn; until
 * then the stream stays on loop->streams with retry set. */
static void want_retry(struct rs_stream *s)
{
    s->loop->stats.refused++;
    if (!s->retry) {
        s->retry = true;
        s->loop->nretry++;
    }
}

/* Ask the backend to end op early. Only an accepted cancel (or -ENOENT:
 * the op already finished and its completion is on the way) counts as
 * issued; a refusal is retried. */
static bool cancel_op(struct rs_stream *s, struct rs_op *op)
{
    int rc = s->loop->ops->cancel(s->loop, op);
    if (rc == 0 || rc == -ENOENT)
        return true;
    want_retry(s);
    return false;
}

static void cancel_recv(struct rs_stream *s)
{
    if (s->recv_armed && !s->recv_cancel)
        s->recv_cancel = cancel_op(s, &s->recv_op);
}

static void cancel_send(struct rs_stream *s)
{
    if (s->send_busy && !s->send_cancel)
        s->send_cancel = cancel_op(s, &s->send_op);
}

static void cancel_connect(struct rs_stream *s)
{
    if (s->connect_busy && !s->connect_cancel)
        s->connect_cancel = cancel_op(s, &s->ctl_op);
}

/* Op flags, with the stream's descriptor kind. */
static uint8_t opf(const struct rs_stream *s, unsigned flags)
{
    return (uint8_t)(flags | (s->direct ? RS_OPF_DIRECT : 0u));
}

static void fail(struct rs_stream *s, int reason)
{
    rs_stream_abort_reason(s, reason);
}

/* A recv or send failed: the peer reset the connection (ECONNRESET; EPIPE
 * once the reset was reported), or another error. Counted once per stream,
 * apart from the resets we send (resets_out). */
static void peer_failed(struct rs_stream *s, int res)
{
    if ((res == -ECONNRESET || res == -EPIPE) && s->close_reason == 0)
        s->loop->stats.resets_in++;
    fail(s, res);
}

static void arm_recv(struct rs_stream *s)
{
    /* Armed already is the common case: a multishot recv stays armed
     * across its completions, and this runs after each of them. */
    if (s->recv_armed || s->starved || !wants_input(s))
        return;
    s->recv_op.flags = opf(s, RS_OPF_MULTISHOT);
    int rc = s->loop->ops->submit(s->loop, &s->recv_op);
    if (rc < 0) {
        fail(s, rc);
        return;
    }
    s->recv_armed = true;
    s->inflight++;
}

/* The send submitted: in flight until on_send. */
static inline void send_submitted(struct rs_stream *s, int rc)
{
    if (rc < 0) {
        fail(s, rc);
        return;
    }
    s->send_busy = true;
    s->inflight++;
}

/* Send the slot: the queue's first entry, alone, flagged as a lent chunk
 * would be (a file chunk behind it: MSG_MORE, one segment). */
static inline void send_slot(struct rs_stream *s)
{
    const struct rs_chunk *k = s->head;
    s->send_chunks = 0;
    s->send_op.kind = RS_OP_SEND;
    s->send_op.buf = s->slot_ptr;
    s->send_op.len = s->slot_len;
    s->send_op.flags = opf(s, k && is_file(k) ? RS_OPF_MORE : 0u);
    send_submitted(s, s->loop->ops->submit(s->loop, &s->send_op));
}

/* Send the head of the queue (start_send checked there is one and no
 * send is in flight). */
static void send_head(struct rs_stream *s)
{
    /* Open, or closing gracefully (flushing): not connecting yet, not
     * aborted, not closed. */
    if (s->state != RS_STREAM_OPEN && !(s->state == RS_STREAM_CLOSING && s->graceful))
        return;
    if (s->slot_len > 0) {
        send_slot(s);
        return;
    }
    struct rs_chunk *k = s->head;
    assert(k->len > 0);
    if (is_file(k)) {
        /* The file's bytes go from the page cache to the socket. */
        s->send_chunks = 1;
        s->send_op.kind = RS_OP_SENDFILE;
        s->send_op.buf = &k->file;
        s->send_op.len = k->len < SENDFILE_OP_MAX ? k->len : SENDFILE_OP_MAX;
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

/* Called after every queued write and every send completion: most find
 * a send in flight or nothing queued, so that test is inline. */
static inline void start_send(struct rs_stream *s)
{
    if (!s->send_busy && has_output(s))
        send_head(s);
}

/* A stream struct from the loop's cache, or a fresh one, linked into
 * loop->streams. */
static struct rs_stream *stream_new(struct rs_loop *loop, int fd, bool direct,
                                    const struct rs_stream_cbs *cbs, void *data)
{
    /* Room in the timer heap first, so that this stream's timers (and its
     * protocol's) can always be started: two per stream. */
    if (rs_timer_reserve(loop, 2 * (loop->nstreams + 1) + RS_TIMER_LOOP_SLOTS) < 0)
        return NULL;
    struct rs_stream *s = loop->free_streams;
    uint8_t gens[3] = {0, 0, 0};
    if (s) {
        loop->free_streams = s->next;
        loop->nfree_streams--;
        /* Keep the ops' generations counting across reuse, so a stale
         * completion for the previous owner can never match. */
        gens[0] = s->recv_op.bk_gen;
        gens[1] = s->send_op.bk_gen;
        gens[2] = s->ctl_op.bk_gen;
    } else {
        s = malloc(sizeof(*s));
        if (!s)
            return NULL;
        s->sendv = NULL;
    }
    struct rs_sendv *sendv = s->sendv;
    memset(s, 0, sizeof(*s));
    s->sendv = sendv;
    s->loop = loop;
    s->cbs = cbs;
    s->data = data;
    s->fd = fd;
    s->direct = direct;
    s->reading = true;
    rs_timer_unref(&s->timer); /* the stream itself keeps the loop alive */
    s->lowat = loop->cfg->max_pending / 2;
    s->last_active_ms = rs_loop_now(loop);
    rs_op_init(&s->recv_op, RS_OP_RECV, fd, on_recv, s);
    rs_op_init(&s->send_op, RS_OP_SEND, fd, on_send, s);
    rs_op_init(&s->ctl_op, RS_OP_CLOSE, fd, on_ctl, s);
    s->recv_op.bk_gen = gens[0];
    s->send_op.bk_gen = gens[1];
    s->ctl_op.bk_gen = gens[2];
    s->next = loop->streams;
    if (loop->streams)
        loop->streams->prev = s;
    loop->streams = s;
    loop->nstreams++;
    return s;
}

struct rs_stream *rs_stream_accept(struct rs_loop *loop, int fd, bool direct, bool reject)
{
    const struct rs_protocol *proto = loop->proto;
    struct rs_stream *s = stream_new(loop, fd, direct, &proto->cbs, NULL);
    if (!s)
        return NULL;
    s->state = RS_STREAM_OPEN;
    if (reject) {
        s->cbs = NULL; /* the protocol never hears of it */
        loop->stats.rejected++;
        rs_stream_abort_reason(s, -ECONNREFUSED);
        return s;
    }
    loop->stats.accepted++;
    if (proto->on_open)
        proto->on_open(s);
    arm_recv(s);
    return s;
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

/* Holding a lent buffer is free only while the pool has plenty: under
 * pressure (or behind a heap chunk with room) copy and give it back, so
 * a peer that never reads cannot pin the buffers its neighbours need.
 * (set_aside: free buffers no receive can have, as good as lent here.) */
static inline bool pool_pressure(const struct rs_loop *loop)
{
    return loop->pool.lent + loop->pool.set_aside > loop->pool.lent_hi;
}

/* rs_stream_write_lent behind something queued, or refused, or under
 * pressure. Out of line: the ping-pong case stays small. */
__attribute__((noinline)) static void write_lent_queued(struct rs_stream *s,
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
        s->slot_ptr = p;
        s->slot_len = len;
        s->slot_bid = bid;
        s->pending += len;
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
        fail(s, -ENOMEM);
        return;
    }
    queue_chunk(s, k, p, len, bid, 0);
}

void rs_stream_write_lent(struct rs_stream *s, const uint8_t *p, uint32_t len,
                          uint16_t bid)
{
    /* Ping-pong: an open stream with nothing queued (so no send in
     * flight) and a pool with plenty. The buffer takes the slot, no
     * chunk, and goes out at once. */
    if (s->state == RS_STREAM_OPEN && !has_output(s) && !s->shut_wanted && len > 0 &&
        !pool_pressure(s->loop)) {
        assert(!s->send_busy);
        s->slot_ptr = p;
        s->slot_len = len;
        s->slot_bid = bid;
        s->pending += len;
        send_slot(s);
        return;
    }
    write_lent_queued(s, p, len, bid);
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
        fail(s, -ENOMEM);
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
        fail(s, -ENOMEM);
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
    if (len == 0 || !accepts_output(s)) {
        close(fd);
        return req ? 1 : 0;
    }
    while (len > 0) {
        uint32_t n = len < FILE_CHUNK_MAX ? (uint32_t)len : FILE_CHUNK_MAX;
        /* Each chunk owns its descriptor: the last one gets fd itself. */
        int cfd = n == len ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0);
        struct rs_chunk *k = cfd >= 0 ? chunk_get(s->loop) : NULL;
        if (!k) {
            int err = cfd < 0 ? -errno : -ENOMEM;
            if (cfd >= 0 && cfd != fd)
                close(cfd);
            close(fd);
            fail(s, err);
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
        fail(s, -ENOMEM);
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
static void drop_queue(struct rs_stream *s)
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

static void unstarve_remove(struct rs_stream *s)
{
    if (!s->starved)
        return;
    struct rs_loop *loop = s->loop;
    if (s->starved_prev)
        s->starved_prev->starved_next = s->starved_next;
    else
        loop->starved = s->starved_next;
    if (s->starved_next)
        s->starved_next->starved_prev = s->starved_prev;
    else
        loop->starved_tail = s->starved_prev;
    s->starved_next = s->starved_prev = NULL;
    s->starved = false;
    loop->nstarved--;
}

static void starve(struct rs_stream *s)
{
    struct rs_loop *loop = s->loop;
    assert(!s->starved);
    s->starved = true;
    s->starved_next = NULL;
    s->starved_prev = loop->starved_tail;
    if (loop->starved_tail)
        loop->starved_tail->starved_next = s;
    else
        loop->starved = s;
    loop->starved_tail = s;
    loop->nstarved++;
}

void rs_stream_read_start(struct rs_stream *s)
{
    s->reading = true;
    arm_recv(s);
}

void rs_stream_read_stop(struct rs_stream *s)
{
    if (s->state == RS_STREAM_CLOSING && s->lingering)
        return; /* a lingering close reads to EOF whatever the owner wanted */
    s->reading = false;
    unstarve_remove(s);
    cancel_recv(s);
    maybe_progress(s);
}

void rs_stream_shutdown(struct rs_stream *s)
{
    if (!rs_stream_is_open(s) || s->shut_wanted)
        return;
    s->shut_wanted = true;
    maybe_progress(s);
}

void rs_stream_abort_reason(struct rs_stream *s, int reason)
{
    if (s->state == RS_STREAM_CLOSED)
        return;
    if (s->close_reason == 0)
        s->close_reason = reason < 0 ? reason : -ECONNABORTED;
    s->state = RS_STREAM_CLOSING;
    s->graceful = false;
    s->lingering = false;
    unstarve_remove(s);
    cancel_recv(s);
    cancel_send(s);
    cancel_connect(s);
    rs_timer_stop(s->loop, &s->timer);
    drop_queue(s);
    maybe_progress(s);
}

/* A graceful close gives up once --drain-timeout passes without progress:
 * no send completed (a peer that stopped reading), or, everything sent, no
 * EOF came (a lingering close). Measured from the last progress, not from
 * rs_stream_close: a slow reader that keeps reading gets all its bytes. */
static void close_expired(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    struct rs_stream *s = t->data;
    /* What was not sent is cut: the peer must be able to tell. */
    rs_stream_abort_reset(s, -ETIMEDOUT);
}

/* --drain-timeout=0 means "no drain" for a stop; a close outside a stop
 * (a response with Connection: close) still needs time to send, and still
 * needs a bound. */
#define CLOSE_BOUND_DEFAULT_MS 2000

static void close_timer_start(struct rs_stream *s)
{
    uint32_t ms = s->loop->cfg->drain_timeout_ms;
    /* Unbounded is not an option: without its timer, abort now. (Cannot
     * happen while stream_new's reservation holds.) */
    if (rs_timer_start(s->loop, &s->timer, ms ? ms : CLOSE_BOUND_DEFAULT_MS,
                       close_expired, s) < 0)
        fail(s, -ENOMEM);
}

void rs_stream_close(struct rs_stream *s)
{
    if (!rs_stream_is_open(s))
        return;
    if (s->state == RS_STREAM_CONNECTING) {
        fail(s, -ECANCELED);
        return;
    }
    s->state = RS_STREAM_CLOSING;
    s->graceful = true;
    /* Keep reading (to drop input until EOF) unless the peer already sent
     * its EOF; a recv stopped by the owner resumes once the output is
     * gone. */
    s->lingering = !s->eof;
    /* Bounded whether or not the peer's EOF came already: a peer that sent
     * it and never reads would otherwise hold the stream for good (the
     * idle scan looks at open streams only). */
    close_timer_start(s);
    maybe_progress(s);
}

void rs_stream_reset_reason(struct rs_stream *s, int reason)
{
    if (s->state == RS_STREAM_CLOSED)
        return;
    s->reset = true;
    if (s->close_reason == 0)
        s->close_reason = reason < 0 ? reason : -ECONNRESET;
    /* Connecting (nothing to flush yet), or aborting already: the close
     * op carries the reset. */
    if (s->state == RS_STREAM_CONNECTING ||
        (s->state == RS_STREAM_CLOSING && !s->graceful)) {
        fail(s, s->close_reason);
        return;
    }
    /* Open, or closing gracefully: flush as a graceful close does, but
     * read nothing more and end with the reset instead of a FIN. */
    s->state = RS_STREAM_CLOSING;
    s->graceful = true;
    s->lingering = false;
    s->reading = false;
    unstarve_remove(s);
    cancel_recv(s);
    close_timer_start(s);
    maybe_progress(s);
}

void rs_stream_abort_reset(struct rs_stream *s, int reason)
{
    if (s->state == RS_STREAM_CLOSED)
        return;
    s->reset = true;
    rs_stream_abort_reason(s, reason);
}

void rs_stream_stop(struct rs_stream *s)
{
    if (!rs_stream_is_open(s))
        return;
    if (s->state == RS_STREAM_OPEN && !s->eof)
        s->stop_hold = true;
    rs_stream_close(s);
}

void rs_stream_unstarve(struct rs_stream *s)
{
    unstarve_remove(s);
    arm_recv(s);
}

static void free_stream(struct rs_stream *s)
{
    struct rs_loop *loop = s->loop;
    /* Checked in release builds too: an op still in flight would complete
     * into a struct already reused for another connection. Nothing sane
     * can follow, so stop here, loudly, rather than corrupt memory. */
    if (s->inflight != 0 || s->recv_armed || s->send_busy || s->starved) {
        rs_log_error("contract violation: stream (fd %d) freed with %u ops in flight; "
                     "aborting",
                     s->fd, (unsigned)s->inflight);
        abort();
    }
    if (s->retry) { /* a refused cancel whose op has ended since */
        s->retry = false;
        loop->nretry--;
    }
    drop_queue(s);
    assert(!has_output(s) && s->pending == 0);
    rs_timer_stop(loop, &s->timer);
    if (s->prev)
        s->prev->next = s->next;
    else
        loop->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    loop->nstreams--;
    bool accepted = !s->outbound;
    if (accepted)
        loop->stats.closed++; /* accepted ones: closed = accepted + rejected */
    s->state = RS_STREAM_CLOSED;
    if (s->cbs && s->cbs->on_close)
        s->cbs->on_close(s, s->close_reason);
    if (loop->nfree_streams < CACHE_MAX) {
        s->next = loop->free_streams;
        loop->free_streams = s;
        loop->nfree_streams++;
    } else {
        free(s->sendv);
        free(s);
    }
    rs_loop_stream_closed(loop, accepted);
}

/* Submit the shutdown or close op. A refusal is not a programming error:
 * the io_uring backend says -EBUSY when its queue is full, the epoll
 * backend -ENOMEM. Nothing is in flight then, so the caller records
 * nothing, and rs_stream_retry() tries again on a later loop turn. */
static bool submit_ctl(struct rs_stream *s, uint8_t kind)
{
    assert(!s->close_issued);
    bool reset = kind == RS_OP_CLOSE && s->reset;
    s->ctl_op.kind = kind;
    s->ctl_op.flags = opf(s, reset ? RS_OPF_RESET : 0u);
    int rc = s->loop->ops->submit(s->loop, &s->ctl_op);
    if (rc < 0) {
        want_retry(s);
        return false;
    }
    s->inflight++;
    if (reset)
        s->loop->stats.resets_out++;
    return true;
}

/* Move a stream forward: send, shut down after the last queued byte when
 * asked, close once both directions are done or the stream is closing and
 * nothing is in flight. */
static void advance(struct rs_stream *s)
{
    if (s->state == RS_STREAM_CONNECTING || s->state == RS_STREAM_CLOSED)
        return;
    if (s->state == RS_STREAM_OPEN) {
        if (s->shut_wanted && !s->shut_done && !has_output(s) && !s->send_busy) {
            /* A recv may still be in flight: shutdown(SHUT_WR) does not
             * disturb it. */
            s->shut_done = submit_ctl(s, RS_OP_SHUTDOWN);
        }
        if (!(s->eof && s->shut_done && !s->recv_armed))
            return;
        /* Both directions are done. */
        s->state = RS_STREAM_CLOSING;
        s->graceful = true;
    }
    if (s->graceful && has_output(s)) {
        start_send(s);
        return;
    }
    if (s->graceful && s->stop_hold && !s->reset && !s->send_busy) {
        /* Closing for a stop (rs_stream_stop): the queued output is sent.
         * Input the stop dropped ends it with a reset; a FIN is for a peer
         * that finished sending, so until its EOF the stream reads and
         * drops (the first byte dropped is a cut), bounded by the drain
         * deadline, which resets. */
        if (s->cut) {
            rs_stream_abort_reset(s, -ECONNABORTED);
            return;
        }
        if (!s->eof) {
            s->reading = true;
            arm_recv(s);
            if (s->recv_armed || s->starved || s->state != RS_STREAM_CLOSING ||
                !s->graceful)
                return;
        }
    }
    /* A reset sends no FIN: the peer must not see a clean EOF. */
    if (s->graceful && !s->shut_done && !s->send_busy && !s->reset) {
        s->shut_done = submit_ctl(s, RS_OP_SHUTDOWN);
        return;
    }
    if (s->lingering && !s->eof && !s->send_busy && !has_output(s)) {
        s->reading = true; /* nothing is queued any more */
        arm_recv(s);
        if (s->recv_armed || s->starved)
            return; /* until EOF, an error, or the close timer */
    }
    /* No socket (its op failed): on_socket_op frees the stream. */
    if (s->inflight > 0 || s->fd < 0)
        return;
    if (!s->close_issued) {
        rs_timer_stop(s->loop, &s->timer);
        s->close_issued = submit_ctl(s, RS_OP_CLOSE);
        if (s->close_issued && !s->outbound)
            rs_loop_stream_closing(s->loop);
    }
}

void rs_stream_retry(struct rs_stream *s)
{
    if (!s->retry)
        return;
    s->retry = false;
    s->loop->nretry--;
    /* Whatever was refused and is still wanted: the recv's cancel
     * (read_stop, or an abort), the send's and the connect's cancel (an
     * abort, a connect timeout), then the shutdown or close that
     * maybe_progress submits. */
    if (!wants_input(s))
        cancel_recv(s);
    if (s->state == RS_STREAM_CLOSING && !s->graceful) {
        cancel_send(s);
        cancel_connect(s);
    }
    if (s->timed_out)
        cancel_connect(s);
    maybe_progress(s);
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

static void on_ctl(struct rs_loop *loop, struct rs_op *op,
                   const struct rs_completion *comp)
{
    struct rs_stream *s = op->data;
    (void)loop;
    (void)comp; /* only asserted: unused with NDEBUG */
    /* A failed shutdown still ends in close; close cannot be retried. */
    assert(!(comp->flags & RS_CF_MORE));
    assert(s->inflight > 0);
    s->inflight--;
    if (op->kind == RS_OP_CLOSE) {
        free_stream(s);
        return;
    }
    maybe_progress(s);
}

/* The peer's EOF: the owner decides, by default our side shuts down too. */
static void got_eof(struct rs_stream *s)
{
    s->eof = true;
    if (s->state != RS_STREAM_OPEN)
        return;
    if (s->cbs->on_eof)
        s->cbs->on_eof(s);
    else
        rs_stream_shutdown(s);
}

/* A receive that brought no data for the owner: input dropped while
 * closing, the peer's EOF, an empty pool, an error. Out of line: the
 * data case stays small. */
__attribute__((noinline)) static void recv_other(struct rs_stream *s,
                                                 const struct rs_completion *comp)
{
    struct rs_loop *loop = s->loop;
    int res = comp->res;
    if (res > 0) {
        loop->stats.dropped += (uint64_t)res;
        rs_stream_release(s, comp->bid); /* closing: input is dropped */
        /* A stop cut this input: the peer must not see a FIN. */
        if (s->stop_hold)
            s->cut = true;
        return;
    }
    assert(!(comp->flags & RS_CF_BUFFER));
    if (res == 0) {
        got_eof(s);
    } else if (res == -ENOBUFS) {
        /* Not an error: the pool is empty. Re-armed by the loop once
         * buffers come back, whichever stream returns them. */
        loop->stats.enobufs++;
        if (may_read(s) && !s->recv_armed && !s->starved)
            starve(s);
    } else if (res != -ECANCELED) {
        peer_failed(s, res);
    }
}

static void on_recv(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *comp)
{
    struct rs_stream *s = op->data;
    int res = comp->res;
    if (!(comp->flags & RS_CF_MORE)) {
        assert(s->recv_armed && s->inflight > 0);
        s->recv_armed = false;
        s->recv_cancel = false;
        s->inflight--;
    }
    if (res > 0) {
        assert(comp->flags & RS_CF_BUFFER);
        loop->stats.recvs++;
        s->last_active_ms = rs_loop_now(loop);
    }
    if (res > 0 && s->state == RS_STREAM_OPEN) {
        loop->stats.bytes_in += (uint64_t)res;
        const uint8_t *p = rs_bufpool_ptr(&loop->pool, comp->bid) + comp->off;
        s->cbs->on_data(s, p, (uint32_t)res, comp->bid);
    } else {
        recv_other(s, comp);
    }
    arm_recv(s);
    maybe_progress(s);
}

/* A send failed: ECONNRESET, EPIPE, ECANCELED...: this stream only. A
 * zero result for a non-empty send means the same: no progress. */
__attribute__((noinline)) static void send_failed(struct rs_stream *s, int res)
{
    if (res < 0)
        peer_failed(s, res);
    else
        fail(s, -EPIPE);
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
        drop_queue(s);
        maybe_progress(s);
        return false;
    }
    if (rs_timer_active(&s->timer))
        close_timer_start(s); /* progress: the graceful close's bound starts again */
    return true;
}

static void on_send(struct rs_loop *loop, struct rs_op *op,
                    const struct rs_completion *comp)
{
    struct rs_stream *s = op->data;
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
    s->last_active_ms = rs_loop_now(loop);
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
    /* The last byte of a file went out: its owner may queue the next one
     * (rs_stream_has_file), whatever the watermark says. */
    if (((before > s->lowat && s->pending <= s->lowat) || file_done) &&
        accepts_output(s) && s->cbs->on_writable)
        s->cbs->on_writable(s);
    maybe_progress(s);
}

/* ---- outbound ------------------------------------------------------- */

static void connect_expired(struct rs_loop *loop, struct rs_timer *t)
{
    struct rs_stream *s = t->data;
    (void)loop;
    if (s->state != RS_STREAM_CONNECTING)
        return;
    s->timed_out = true;
    cancel_connect(s);
}

static void connect_done(struct rs_stream *s, int res)
{
    struct rs_loop *loop = s->loop;
    rs_timer_stop(loop, &s->timer);
    if (s->state != RS_STREAM_CONNECTING) {
        /* Aborted while connecting: the close follows. */
        maybe_progress(s);
        return;
    }
    if (res == -ECANCELED && s->timed_out)
        res = -ETIMEDOUT;
    if (res < 0) {
        loop->stats.connect_failed++;
        fail(s, res);
        if (s->cbs->on_connect)
            s->cbs->on_connect(s, res);
        return;
    }
    s->state = RS_STREAM_OPEN;
    s->last_active_ms = rs_loop_now(loop);
    if (s->cbs->on_connect)
        s->cbs->on_connect(s, 0);
    arm_recv(s);
    start_send(s);
    maybe_progress(s);
}

static void on_connect_op(struct rs_loop *loop, struct rs_op *op,
                          const struct rs_completion *comp);

/* Submit the connect on the stream's new socket. A refusal is reported
 * like a failed connect (the socket is closed by the close op). */
static int start_connect(struct rs_stream *s)
{
    s->ctl_op.kind = RS_OP_CONNECT;
    s->ctl_op.fn = on_connect_op;
    s->ctl_op.buf = &s->peer;
    s->ctl_op.len = s->peer_len;
    s->ctl_op.flags = opf(s, 0);
    int rc = s->loop->ops->submit(s->loop, &s->ctl_op);
    if (rc < 0) {
        s->ctl_op.fn = on_ctl;
        return rc;
    }
    s->inflight++;
    s->connect_busy = true;
    s->connect_sent = true;
    return 0;
}

static void on_connect_op(struct rs_loop *loop, struct rs_op *op,
                          const struct rs_completion *comp)
{
    struct rs_stream *s = op->data;
    (void)loop;
    assert(!(comp->flags & RS_CF_MORE));
    assert(s->inflight > 0 && s->connect_busy);
    s->inflight--;
    s->connect_busy = false;
    s->connect_cancel = false;
    op->fn = on_ctl; /* the op is the shutdown and close from now on */
    connect_done(s, comp->res);
}

/* The stream's descriptor from now on: every op uses it. */
static void adopt_fd(struct rs_stream *s, int fd, bool direct)
{
    s->fd = fd;
    s->direct = direct;
    s->recv_op.fd = s->send_op.fd = s->ctl_op.fd = fd;
    if (direct)
        s->loop->stats.connects_direct++;
}

/* RS_OP_SOCKET completed: connect on the new socket, or end the stream.
 * Without a socket there is nothing to close: the stream is freed here,
 * from the completion (never from inside an rs_stream_* call). */
static void on_socket_op(struct rs_loop *loop, struct rs_op *op,
                         const struct rs_completion *comp)
{
    struct rs_stream *s = op->data;
    int res = comp->res;
    assert(!(comp->flags & RS_CF_MORE));
    assert(s->inflight > 0 && s->connect_busy && s->fd < 0);
    s->inflight--;
    s->connect_busy = false;
    s->connect_cancel = false;
    op->fn = on_ctl;
    if (res >= 0)
        adopt_fd(s, res, (comp->flags & RS_CF_DIRECT) != 0);
    if (s->state != RS_STREAM_CONNECTING) {
        /* Aborted meanwhile: close the socket if there is one. */
        if (s->fd >= 0)
            maybe_progress(s);
        else
            free_stream(s);
        return;
    }
    if (s->timed_out)
        res = -ETIMEDOUT; /* the timer cancelled it, or the socket came too late */
    if (res >= 0) {
        int rc = start_connect(s);
        if (rc < 0)
            connect_done(s, rc);
        return;
    }
    if (s->fd >= 0) {
        connect_done(s, res); /* on_connect, then the close op */
        return;
    }
    rs_timer_stop(loop, &s->timer);
    loop->stats.connect_failed++;
    /* Closing before on_connect: whatever the owner calls from it (abort,
     * close, writes) finds a stream that is done. */
    s->state = RS_STREAM_CLOSING;
    s->close_reason = res;
    if (s->cbs->on_connect)
        s->cbs->on_connect(s, res);
    free_stream(s);
}

struct rs_stream *rs_stream_connect(struct rs_loop *loop, const struct sockaddr *addr,
                                    socklen_t addrlen, uint32_t timeout_ms,
                                    const struct rs_stream_cbs *cbs, void *data)
{
    if (addrlen > sizeof(((struct rs_stream *)0)->peer) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
        errno = EAFNOSUPPORT;
        return NULL;
    }
    struct rs_stream *s = stream_new(loop, -1, false, cbs, data);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->state = RS_STREAM_CONNECTING;
    s->outbound = true;
    memcpy(&s->peer, addr, addrlen);
    s->peer_len = addrlen;
    int rc;
    if (loop->caps & RS_CAP_SOCKET) {
        /* The backend makes the socket, direct where it can. */
        s->ctl_op.kind = RS_OP_SOCKET;
        s->ctl_op.fn = on_socket_op;
        s->ctl_op.len = addr->sa_family;
        s->ctl_op.flags = RS_OPF_DIRECT | (loop->cfg->nodelay ? RS_OPF_NODELAY : 0);
        rc = loop->ops->submit(loop, &s->ctl_op);
        if (rc < 0) {
            /* Nothing exists yet, nobody knows of it: gone at once. */
            s->ctl_op.fn = on_ctl;
            s->cbs = NULL;
            s->state = RS_STREAM_CLOSING;
            free_stream(s);
            errno = -rc;
            return NULL;
        }
        s->inflight++;
        s->connect_busy = true;
    } else {
        int fd = rs_tcp_socket(loop, addr->sa_family, loop->cfg->nodelay);
        if (fd < 0) {
            s->cbs = NULL;
            s->state = RS_STREAM_CLOSING;
            free_stream(s);
            errno = -fd;
            return NULL;
        }
        adopt_fd(s, fd, false);
        rc = start_connect(s);
        if (rc < 0) {
            /* Never submitted: nothing is in flight; the close op (retried
             * if refused) ends it without telling anyone. */
            s->state = RS_STREAM_CLOSING;
            s->close_reason = rc;
            s->cbs = NULL;
            maybe_progress(s);
            errno = -rc;
            return NULL;
        }
    }
    loop->stats.connects++;
    /* A connect without its timeout could hang for good: abort it (the
     * owner hears on_close). Cannot happen while the reservation holds. */
    if (timeout_ms && rs_timer_start(loop, &s->timer, timeout_ms, connect_expired, s) < 0)
        fail(s, -ENOMEM);
    return s;
}
