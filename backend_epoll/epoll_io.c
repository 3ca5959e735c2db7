/* The epoll backend, an op's way through the loop: submit() and cancel(),
 * the kernel's interest set kept to what ops wait for, the readiness
 * handlers that do a socket's IO (accept, recv, send, sendfile, connect)
 * and turn it into a completion, file ops handed to the pool (or done
 * inline) and reaped, and run(), one turn. epoll.c says why readiness is
 * made into completions this way; epoll_sendfile.c decides when a
 * sendfile is a worker's. One file, because the hot path (a recv's data,
 * a speculative send) goes through all of it and the compiler inlines it
 * only within a file. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "epoll_state.h"
#include "listener.h"

/* The table grows with the highest fd seen: memory follows connections. */
static struct ep_sock *sock_get(struct ep_state *st, int fd)
{
    assert(fd >= 0);
    if ((uint32_t)fd >= st->nsocks) {
        uint32_t n = st->nsocks ? st->nsocks : 64;
        while (n <= (uint32_t)fd)
            n *= 2;
        /* The ready list holds each fd at most once, plus, while run()
         * works through it, the entries already served: twice the table
         * and it can never be full. */
        int *r = realloc(st->ready, 2 * (size_t)n * sizeof(*r));
        if (!r)
            return NULL;
        st->ready = r;
        struct ep_sock *s = realloc(st->socks, n * sizeof(*s));
        if (!s)
            return NULL;
        memset(s + st->nsocks, 0, (n - st->nsocks) * sizeof(*s));
        st->socks = s;
        st->nsocks = n;
    }
    return &st->socks[fd];
}

/* Make room for one more queued completion, before doing anything that
 * cannot be undone (a send, a close): an op the backend refuses must have
 * left no trace, or the core would retry a close on a number that may
 * already belong to someone else. */
static int reserve_done(struct ep_state *st)
{
    if (st->done_len < st->done_cap)
        return 0;
    /* 256, doubled: a power of two, so positions wrap with a mask, not a
     * division, on every completion. */
    uint32_t cap = st->done_cap ? st->done_cap * 2 : 256;
    struct ep_done *d = malloc(cap * sizeof(*d));
    if (!d)
        return -ENOMEM;
    for (uint32_t i = 0; i < st->done_len; i++)
        d[i] = st->done[(st->done_head + i) & (st->done_cap - 1)];
    free(st->done);
    st->done = d;
    st->done_cap = cap;
    st->done_head = 0;
    return 0;
}

/* Queue a completion for run(); reserve_done() made room. */
static void queue_done(struct ep_state *st, struct rs_op *op, int32_t res, uint32_t flags,
                       uint16_t bid)
{
    assert(st->done_len < st->done_cap);
    st->done[(st->done_head + st->done_len) & (st->done_cap - 1)] =
        (struct ep_done){.op = op, .res = res, .flags = flags, .bid = bid};
    st->done_len++;
}

/* Make the kernel's interest set match what we wait for. */
static int update_interest(struct ep_state *st, int fd, struct ep_sock *s)
{
    uint32_t want;
    if (st->et) {
        /* Register once; edges cost nothing while we don't care. */
        want = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
        if (s->events)
            return 0;
    } else {
        /* Level-triggered: listen only for what an op waits on, or
         * epoll_wait would report the same readiness forever. */
        want = (s->rd ? EPOLLIN | EPOLLRDHUP : 0u) | (s->wr ? EPOLLOUT : 0u);
    }
    if (want == s->events)
        return 0;
    struct epoll_event ev = {.events = want, .data.u64 = ep_pack(fd, s->gen)};
    int rc;
    if (s->events == 0)
        rc = epoll_ctl(st->epfd, EPOLL_CTL_ADD, fd, &ev);
    else if (want == 0) /* EPOLLERR/EPOLLHUP cannot be masked: remove it */
        rc = epoll_ctl(st->epfd, EPOLL_CTL_DEL, fd, NULL);
    else
        rc = epoll_ctl(st->epfd, EPOLL_CTL_MOD, fd, &ev);
    if (rc < 0)
        return -errno;
    s->events = want;
    return 0;
}

/* An op on fd ended: stop listening for what nobody waits on any more. In
 * lt a socket left registered for input nobody reads makes epoll_wait
 * return at once, forever (a spin), so a failure here is not ignored:
 * a MOD that fails falls back to DEL (interest is added back when an op
 * needs it), a DEL that finds nothing registered (ENOENT, or EBADF: the
 * descriptor is gone, which took it out of the set) is done, and anything
 * else marks the socket dirty: run() retries before it waits. */
static void narrow_interest(struct ep_state *st, int fd, struct ep_sock *s)
{
    if (update_interest(st, fd, s) == 0) {
        if (s->dirty) {
            s->dirty = false;
            st->ndirty--;
        }
        return;
    }
    if (!st->et && s->events != 0) {
        if (epoll_ctl(st->epfd, EPOLL_CTL_DEL, fd, NULL) == 0 || errno == ENOENT ||
            errno == EBADF) {
            s->events = 0;
            narrow_interest(st, fd, s); /* ADD back what is still wanted */
            return;
        }
    }
    if (!s->dirty) {
        s->dirty = true;
        st->ndirty++;
    }
}

static void retry_dirty(struct ep_state *st)
{
    for (uint32_t fd = 0; st->ndirty > 0 && fd < st->nsocks; fd++)
        if (st->socks[fd].dirty)
            narrow_interest(st, (int)fd, &st->socks[fd]);
}

static void ready_push(struct ep_state *st, int fd, struct ep_sock *s)
{
    if (s->on_ready_list)
        return;
    assert(st->nready < 2 * st->nsocks);
    st->ready[st->nready++] = fd;
    s->on_ready_list = true;
}

/* Deliver a result of the read-side op (accept or recv). Unless MORE
 * follows, the op ends here: stop watching for input first, since the core
 * may submit the next one from the callback. Returns whether it goes on. */
static bool read_done(struct rs_loop *loop, struct ep_state *st, int fd, struct rs_op *op,
                      int32_t res, uint32_t flags, uint16_t bid)
{
    if (!(flags & RS_CF_MORE)) {
        struct ep_sock *s = &st->socks[fd];
        s->rd = NULL;
        narrow_interest(st, fd, s);
    }
    rs_op_complete(loop, op, res, flags, bid);
    return flags & RS_CF_MORE;
}

/* One accept(2); delivers. Returns false when the op is no longer armed or
 * the socket is not ready. */
static bool do_accept(struct rs_loop *loop, struct ep_state *st, int fd)
{
    struct ep_sock *s = &st->socks[fd];
    struct rs_op *op = s->rd;
    int nfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (nfd >= 0) {
        /* A new socket: whatever this table remembers about the number
         * belongs to a descriptor closed behind our back (a listener closed
         * with close(2)). Start afresh, with a new generation. */
        struct ep_sock *n = sock_get(st, nfd);
        if (!n) {
            close(nfd);
            return true;
        }
        if (n->dirty)
            st->ndirty--;
        *n = (struct ep_sock){.gen = n->gen + 1, .on_ready_list = n->on_ready_list};
        bool multi = op->flags & RS_OPF_MULTISHOT;
        return read_done(loop, st, fd, op, nfd, multi ? RS_CF_MORE : 0, 0);
    }
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
        if (errno == EAGAIN)
            s->rd_ready = false;
        return errno != EAGAIN;
    }
    /* EMFILE/ENFILE and the rest end the op: the core backs off and
     * re-submits. In lt, leaving EPOLLIN registered here is the classic
     * 100%-CPU bug: a pending connection nobody can accept. */
    return read_done(loop, st, fd, op, -errno, 0, 0);
}

/* One recv(2) into a fresh pool buffer; delivers. */
static bool do_recv(struct rs_loop *loop, struct ep_state *st, int fd)
{
    struct ep_sock *s = &st->socks[fd];
    struct rs_op *op = s->rd;
    bool multi = op->flags & RS_OPF_MULTISHOT;
    int bid = rs_bufpool_get(&loop->pool);
    if (bid < 0)
        return read_done(loop, st, fd, op, -ENOBUFS, 0, 0);
    uint32_t size = loop->pool.size;
    ssize_t n = recv(fd, rs_bufpool_ptr(&loop->pool, (uint16_t)bid), size, 0);
    if (n > 0) {
        /* A short read means the socket is drained (unless the peer closed:
         * then the EOF behind the data must still be read). */
        if ((size_t)n < size && !s->rdhup)
            s->rd_ready = false;
        rs_bufpool_lend(&loop->pool, (uint16_t)bid);
        return read_done(loop, st, fd, op, (int32_t)n,
                         RS_CF_BUFFER | (multi ? RS_CF_MORE : 0), (uint16_t)bid);
    }
    rs_bufpool_put(&loop->pool, (uint16_t)bid);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        if (errno == EAGAIN)
            s->rd_ready = false;
        return errno == EINTR;
    }
    /* EOF or an error ends a multishot recv, as in io_uring. */
    return read_done(loop, st, fd, op, n == 0 ? 0 : -errno, 0, 0);
}

static void handle_read(struct rs_loop *loop, struct ep_state *st, int fd, uint32_t gen)
{
    /* lt reads once: the next epoll_wait reports what is left. */
    int budget = st->et ? READ_BUDGET : 1;
    while (budget-- > 0) {
        /* Re-fetch after every delivery: the callback may have closed the
         * socket, cancelled the op, or grown the table. */
        struct ep_sock *s = &st->socks[fd];
        if (s->gen != gen || !s->rd || !s->rd_ready)
            return;
        bool more =
            s->rd->kind == RS_OP_ACCEPT ? do_accept(loop, st, fd) : do_recv(loop, st, fd);
        if (!more)
            return;
    }
    struct ep_sock *s = &st->socks[fd];
    if (st->et && s->gen == gen && s->rd && s->rd_ready)
        ready_push(st, fd, s); /* budget spent, data left: next turn */
}

/* send(2), sendmsg(2) for a vectored send (RS_OPF_MSG), or sendfile(2)
 * for RS_OP_SENDFILE: the kernel moves the file's page-cache pages into
 * the socket, no copy through our memory, as much as the socket's buffer
 * takes (nginx's `sendfile on`). From the page cache it does not block; a
 * file not cached is read right here, blocking the loop like --fs=inline
 * (what nginx does too without its thread pool). */
static ssize_t send_op(struct ep_sock *s, int fd, const struct rs_op *op, uint32_t len)
{
    if (op->kind == RS_OP_SENDFILE) {
        /* len: what ep_sendfile_cached_len allows of the op's range. */
        const struct rs_sendfile *sf = op->buf;
        off_t off = (off_t)sf->off;
        ssize_t n = sendfile(fd, sf->file_fd, &off, len);
        /* The checked range serves the rest of this op, and of the next
         * from where this one stopped, only while the transfer goes on:
         * an op that ends whole may have ended its file, whose
         * descriptor number the next file may then reuse, and one that
         * failed ends it. */
        if (n < 0 ? (errno != EAGAIN && errno != EINTR)
                  : ((uint32_t)n >= op->len || n == 0))
            s->cs_src = NULL;
        else if (n > 0)
            s->cs_last = (uint32_t)n;
        return n;
    }
    int flags = MSG_NOSIGNAL | ((op->flags & RS_OPF_MORE) ? MSG_MORE : 0);
    if (op->flags & RS_OPF_MSG)
        return sendmsg(fd, (const struct msghdr *)op->buf, flags);
    return send(fd, op->buf, op->len, flags);
}

/* A parked connect: the socket became writable or failed. */
static void connect_ready(struct rs_loop *loop, struct ep_state *st, int fd)
{
    struct ep_sock *s = &st->socks[fd];
    struct rs_op *op = s->wr;
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return; /* a spurious wake-up: still connecting */
    s->wr = NULL;
    update_interest(st, fd, s);
    rs_op_complete(loop, op, -err, 0, 0);
}

static void handle_write(struct rs_loop *loop, struct ep_state *st, int fd)
{
    struct ep_sock *s = &st->socks[fd];
    struct rs_op *op = s->wr;
    if (op->kind == RS_OP_CONNECT) {
        connect_ready(loop, st, fd);
        return;
    }
    uint32_t len = op->len;
    if (op->kind == RS_OP_SENDFILE && !st->fs_inline &&
        (len = ep_sendfile_cached_len(loop, st, s, op)) == 0) {
        /* Room in the socket, but the pages are not cached (any more). */
        s->wr = NULL;
        narrow_interest(st, fd, s);
        if (ep_job_start(loop, st, s, op) == 0)
            return;
        s->wr = op;
        update_interest(st, fd, s);
        len = op->len;
    }
    ssize_t n = send_op(s, fd, op, len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    int32_t res = n < 0 ? -errno : (int32_t)n;
    s->wr = NULL;
    narrow_interest(st, fd, s);
    rs_op_complete(loop, op, res, 0, 0);
}

/* A file op's result, as a completion: a pool read lends its buffer only
 * when it read something. */
static uint32_t fs_result(struct rs_loop *loop, struct rs_file_op *f)
{
    if (!(f->op.flags & RS_OPF_POOL_BUF) || f->op.kind != RS_OP_READ)
        return 0;
    if (f->bk_res > 0) {
        rs_bufpool_lend(&loop->pool, f->bk_bid);
        return RS_CF_BUFFER;
    }
    rs_bufpool_put(&loop->pool, f->bk_bid);
    return 0;
}

static int fs_submit(struct rs_loop *loop, struct ep_state *st, struct rs_op *op)
{
    struct rs_file_op *f = rs_file_op_of(op);
    bool pool_read = op->kind == RS_OP_READ && (op->flags & RS_OPF_POOL_BUF);
    /* Room for the completion first, where it is queued here (a refused op
     * must not have read or written anything). */
    if (pool_read || st->fs_inline) {
        int rc = reserve_done(st);
        if (rc < 0)
            return rc;
    }
    if (pool_read) {
        int bid = rs_bufpool_get(&loop->pool);
        if (bid < 0) {
            queue_done(st, op, -ENOBUFS, 0, 0);
            return 0;
        }
        f->bk_bid = (uint16_t)bid;
        f->bk_buf = rs_bufpool_ptr(&loop->pool, (uint16_t)bid);
        /* The cap is ours to remember: the caller's op.len stays as it
         * gave it (io_uring's backend caps in the SQE, never in the op). */
        f->bk_len = op->len == 0 || op->len > loop->pool.size ? loop->pool.size : op->len;
    }
    if (st->fs_inline) {
        rs_fs_perform(f);
        uint32_t flags = fs_result(loop, f);
        queue_done(st, op, f->bk_res, flags, f->bk_bid);
        return 0;
    }
    if (!st->fs) {
        st->fs = rs_fspool_new(st->fs_threads, loop->wake_fd);
        if (!st->fs)
            return -ENOMEM;
    }
    int rc = rs_fspool_submit(st->fs, f);
    if (rc < 0 && (op->flags & RS_OPF_POOL_BUF) && op->kind == RS_OP_READ)
        rs_bufpool_put(&loop->pool, f->bk_bid);
    return rc;
}

/* At fini: complete each op of a list (bk_next), except the pool's own
 * sendfile jobs. */
void ep_fs_complete_list(struct rs_loop *loop, struct rs_file_op *f)
{
    while (f) {
        struct rs_file_op *next = f->bk_next;
        if (f->op.kind != RS_FS_SENDFILE) {
            uint32_t flags = fs_result(loop, f);
            rs_op_complete(loop, &f->op, f->bk_res, flags, f->bk_bid);
        }
        f = next;
    }
}

/* Ops the workers finished: delivered here, on the loop's thread. */
static int fs_reap(struct rs_loop *loop, struct ep_state *st)
{
    int n = 0;
    struct rs_file_op *f = st->fs ? rs_fspool_reap(st->fs, NULL) : NULL;
    while (f) {
        struct rs_file_op *next = f->bk_next;
        uint32_t flags = fs_result(loop, f);
        rs_op_complete(loop, &f->op, f->bk_res, flags, f->bk_bid);
        f = next;
        n++;
    }
    return n;
}

/* A new socket is no IO at all: made here at once, and its completion
 * (the fd or -errno) delivered from run() like every other. A plain fd,
 * always: epoll has no direct descriptors. */
static int socket_submit(struct rs_loop *loop, struct ep_state *st, struct rs_op *op)
{
    int rc = reserve_done(st);
    if (rc < 0)
        return rc;
    queue_done(st, op,
               rs_tcp_socket(loop, (int)op->len, (op->flags & RS_OPF_NODELAY) != 0), 0,
               0);
    return 0;
}

/* A worker's sendfile ended. We are inside run(): the op may complete
 * right here. */
void ep_job_done(struct rs_loop *loop, struct rs_op *fop, const struct rs_completion *c)
{
    struct ep_state *st = state(loop);
    struct ep_job *w = (struct ep_job *)(void *)rs_file_op_of(fop);
    struct rs_op *op = w->op;
    bool cancel = w->cancel;
    int32_t res = c->res;
    ep_job_free(st, w);
    struct ep_sock *s = &st->socks[op->fd];
    s->job = NULL;
    if (cancel) {
        rs_op_complete(loop, op, res > 0 ? res : -ECANCELED, 0, 0);
        return;
    }
    if (res == -EAGAIN || res == -EINTR) {
        /* The socket is full: wait for room, like a send; room that came
         * while the worker had it is used now (out_edge). */
        s->wr = op;
        int rc = update_interest(st, op->fd, s);
        if (rc == 0) {
            if (s->out_edge) {
                s->out_edge = false;
                handle_write(loop, st, op->fd);
            }
            return;
        }
        s->wr = NULL;
        res = rc;
    }
    rs_op_complete(loop, op, res, 0, 0);
}

/* A send or a connect that must wait for the socket to be writable:
 * parked as the write side's op, the interest set asked for EPOLLOUT. The
 * park is undone when the kernel refuses, so the op is not left waiting
 * for an event that will never come. */
static int wait_writable(struct ep_state *st, struct ep_sock *s, struct rs_op *op)
{
    s->wr = op;
    int rc = update_interest(st, op->fd, s);
    if (rc < 0)
        s->wr = NULL;
    return rc;
}

int ep_submit(struct rs_loop *loop, struct rs_op *op)
{
    struct ep_state *st = state(loop);
    if (rs_op_is_file(op))
        return fs_submit(loop, st, op);
    if (op->kind == RS_OP_SOCKET)
        return socket_submit(loop, st, op);
    struct ep_sock *s = sock_get(st, op->fd);
    if (!s)
        return -ENOMEM;
    switch (op->kind) {
    case RS_OP_ACCEPT:
    case RS_OP_RECV: {
        assert(!s->rd);
        s->rd = op;
        int rc = update_interest(st, op->fd, s);
        if (rc < 0) {
            s->rd = NULL;
            return rc;
        }
        /* et: readiness seen earlier is not announced again. */
        if (st->et && s->rd_ready)
            ready_push(st, op->fd, s);
        return 0;
    }
    case RS_OP_SEND:
    case RS_OP_SENDFILE: {
        assert(!s->wr);
        if (op->kind == RS_OP_SENDFILE && op->len == 0)
            return -EINVAL;
        /* Pages not cached: a worker reads them first, unless the loop
         * is to block (--fs=inline) or no worker can take it. */
        uint32_t len = op->len;
        if (op->kind == RS_OP_SENDFILE && !st->fs_inline &&
            (len = ep_sendfile_cached_len(loop, st, s, op)) == 0) {
            if (ep_job_start(loop, st, s, op) == 0)
                return 0;
            len = op->len;
        }
        int rc = reserve_done(st);
        if (rc < 0)
            return rc;
        /* Speculative: the socket is almost always writable. */
        ssize_t n = send_op(s, op->fd, op, len);
        if (n >= 0 || (errno != EAGAIN && errno != EINTR)) {
            queue_done(st, op, n >= 0 ? (int32_t)n : -errno, 0, 0);
            return 0;
        }
        return wait_writable(st, s, op);
    }
    case RS_OP_SHUTDOWN: {
        int rc = reserve_done(st);
        if (rc < 0)
            return rc;
        queue_done(st, op, shutdown(op->fd, SHUT_WR) < 0 ? -errno : 0, 0, 0);
        return 0;
    }
    case RS_OP_CONNECT: {
        assert(!s->rd && !s->wr);
        int rc = reserve_done(st);
        if (rc < 0)
            return rc;
        /* The first op of a fresh socket: whatever this table remembers
         * about the number belongs to a descriptor closed behind our back
         * (close(2) on a listener). Start afresh, with a new generation. */
        *s = (struct ep_sock){.gen = s->gen + 1, .on_ready_list = s->on_ready_list};
        if (connect(op->fd, (const struct sockaddr *)op->buf, (socklen_t)op->len) == 0) {
            queue_done(st, op, 0, 0, 0);
            return 0;
        }
        if (errno != EINPROGRESS && errno != EINTR) {
            queue_done(st, op, -errno, 0, 0);
            return 0;
        }
        return wait_writable(st, s, op);
    }
    case RS_OP_CLOSE: {
        assert(!s->rd && !s->wr);
        /* Room first: after close(2) there is no way back. */
        int rc = reserve_done(st);
        if (rc < 0)
            return rc;
        if (s->dirty) {
            s->dirty = false;
            st->ndirty--;
        }
        /* An abort: SO_LINGER {on, 0 s} makes close(2) send a reset (the
         * classic way; a failure leaves an ordinary close). */
        if (op->flags & RS_OPF_RESET) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            (void)setsockopt(op->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        /* close() also removes the fd from the epoll set (no dups exist).
         * Events for it already fetched in this batch carry the old gen. */
        rc = close(op->fd) < 0 ? -errno : 0;
        /* on_ready_list stays: the fd may still sit in the ready array,
         * where a reused number must not appear twice. */
        *s = (struct ep_sock){.gen = s->gen + 1, .on_ready_list = s->on_ready_list};
        queue_done(st, op, rc, 0, 0);
        return 0;
    }
    }
    return -EINVAL;
}

int ep_cancel(struct rs_loop *loop, struct rs_op *op)
{
    struct ep_state *st = state(loop);
    if (rs_op_is_file(op)) {
        /* Inline ops are done already; a running one ends naturally. */
        if (st->fs_inline || !st->fs)
            return -ENOENT;
        struct rs_file_op *f = rs_file_op_of(op);
        int rc = reserve_done(st); /* a refused cancel leaves the op queued */
        if (rc < 0)
            return rc;
        if (rs_fspool_cancel(st->fs, f) < 0)
            return 0;
        if (op->kind == RS_OP_READ && (op->flags & RS_OPF_POOL_BUF))
            rs_bufpool_put(&loop->pool, f->bk_bid);
        queue_done(st, op, -ECANCELED, 0, 0);
        return 0;
    }
    if (op->fd < 0 || (uint32_t)op->fd >= st->nsocks)
        return -ENOENT;
    struct ep_sock *s = &st->socks[op->fd];
    if (s->job && s->job->op == op) {
        /* Take the job back if no worker started it; else the worker's
         * sendfile ends on its own (it never waits for the peer), and the
         * op completes then, with what it sent or -ECANCELED. */
        int rc = reserve_done(st);
        if (rc < 0)
            return rc;
        struct ep_job *w = s->job;
        if (rs_fspool_cancel(st->fs, &w->f) != 0) {
            w->cancel = true;
            return 0;
        }
        s->job = NULL;
        ep_job_free(st, w);
        queue_done(st, op, -ECANCELED, 0, 0);
        return 0;
    }
    if (s->rd != op && s->wr != op)
        return -ENOENT;        /* already completed; its completion is queued */
    int rc = reserve_done(st); /* a refused cancel leaves the op armed */
    if (rc < 0)
        return rc;
    if (s->rd == op) {
        s->rd = NULL;
    } else {
        s->wr = NULL;
        s->cs_src = NULL; /* the transfer may end here */
    }
    narrow_interest(st, op->fd, s);
    queue_done(st, op, -ECANCELED, 0, 0);
    return 0;
}

static void drain_wake(struct rs_loop *loop)
{
    uint64_t v;
    while (read(loop->wake_fd, &v, sizeof(v)) > 0) {
    }
}

int ep_run(struct rs_loop *loop, int timeout_ms)
{
    struct ep_state *st = state(loop);
    if (st->ndirty)
        retry_dirty(st);
    if (st->done_len || st->nready)
        timeout_ms = 0;
    loop->stats.waits++;
    int n = epoll_wait(st->epfd, st->events, MAX_EVENTS, timeout_ms);
    int err = n < 0 ? -errno : 0;
    int dispatched = 0;
    bool woken = false;
    for (int i = 0; i < n; i++) {
        uint32_t ev = st->events[i].events;
        int fd = (int)(uint32_t)st->events[i].data.u64;
        uint32_t gen = (uint32_t)(st->events[i].data.u64 >> 32);
        if (gen == WAKE_TAG && fd == loop->wake_fd) {
            drain_wake(loop); /* before the reap below: no wake-up is lost */
            woken = true;
            continue;
        }
        struct ep_sock *s = &st->socks[fd];
        if (s->gen != gen)
            continue; /* the fd was closed (and maybe reused) in this batch */
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
            s->rd_ready = true;
        if (ev & (EPOLLRDHUP | EPOLLHUP))
            s->rdhup = true;
        if (s->wr && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            handle_write(loop, st, fd);
            dispatched++;
            s = &st->socks[fd];
        } else if (s->job && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
            s->out_edge = true;
        }
        if (s->gen == gen && s->rd && s->rd_ready) {
            handle_read(loop, st, fd, gen);
            dispatched++;
        }
    }
    /* Sockets whose read budget ran out last turn: the entries present now.
     * handle_read may append (this fd again, or others); those wait for the
     * next turn and move to the front. */
    uint32_t nr = st->nready;
    for (uint32_t i = 0; i < nr; i++) {
        int fd = st->ready[i];
        struct ep_sock *s = &st->socks[fd];
        s->on_ready_list = false;
        handle_read(loop, st, fd, s->gen);
        dispatched++;
    }
    if (nr > 0) { /* st->ready is NULL until the first socket */
        memmove(st->ready, st->ready + nr, (st->nready - nr) * sizeof(*st->ready));
        st->nready -= nr;
    }
    if (woken)
        dispatched += fs_reap(loop, st);
    /* Completions queued by submit()/cancel(): only those present now, so a
     * chain of speculative sends cannot keep us from epoll_wait forever. */
    for (uint32_t todo = st->done_len; todo > 0 && st->done_len > 0; todo--) {
        struct ep_done d = st->done[st->done_head];
        st->done_head = (st->done_head + 1) & (st->done_cap - 1);
        st->done_len--;
        rs_op_complete(loop, d.op, d.res, d.flags, d.bid);
        dispatched++;
    }
    return err < 0 ? err : dispatched;
}
