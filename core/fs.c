/* File requests on top of the backend's file ops (fs.h says what callers
 * get; this says how).
 *
 * A request embeds the backend's op (struct rs_file_op), so starting one
 * allocates nothing. Its life has three states:
 *
 *   IDLE --start--> IN_FLIGHT --completion--> IDLE (callback)
 *            \--refused (-EBUSY)--> REFUSED --retry--> IN_FLIGHT
 *
 * A backend may refuse a submit or a cancel for a moment (io_uring: the
 * submission queue is full and the kernel will not take more until it has
 * posted completions). Such a refusal is not the request's result: the
 * request goes on the loop's retry list and every loop turn asks again
 * (rs_fs_retry, called by the loop before it waits, whose wait is then
 * short: RS_RETRY_MS). A cancel of a request still waiting there needs no
 * backend at all: the next turn completes it with -ECANCELED, never the
 * cancel call itself (callbacks only ever run from the loop).
 *
 * Generations: the backend bumps the op's generation on each submit and
 * drops completions whose generation is not the current one.
 * rs_file_op_init keeps the generation, so reusing a request (the common
 * case: one request per file, reused for each write) still gets a new one
 * on every use.
 *
 * Each started request counts as one of the loop's requests
 * (rs_loop_req_start) until the moment its callback is called, so a
 * stopping loop waits for it.
 */
#include "fs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>

#include "loop.h"
#include "op.h"
#include "stream.h"

/* What rs_fs_req.priv holds. */
struct fs_priv {
    rs_fs_fn cb;
    struct rs_fs_req *retry_prev, *retry_next; /* loop->fs_retry */
    uint8_t state;
    uint8_t cancel_wanted;
    uint8_t queued; /* on the loop's retry list */
    struct rs_file_op fop;
};

_Static_assert(sizeof(struct fs_priv) <= sizeof(((struct rs_fs_req *)0)->priv),
               "struct rs_fs_req has room for the library's part");
_Static_assert(_Alignof(struct fs_priv) <= _Alignof(struct rs_fs_req),
               "struct rs_fs_req is aligned for the library's part");

static struct fs_priv *priv(struct rs_fs_req *req)
{
    return (struct fs_priv *)(void *)&req->priv;
}

#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_BENEATH
#define RESOLVE_BENEATH 0x08
#endif

/* DONE: the stream of a sendfile or send reported the outcome; the
 * callback is due on the next turn (the report may come from inside a
 * stream call). */
enum { IDLE = 0, IN_FLIGHT, REFUSED, DONE };

/* The backend may take this call later: keep the request and ask again. */
static bool is_refusal(int rc)
{
    return rc == -EBUSY || rc == -EAGAIN;
}

static void retry_add(struct rs_fs_req *req)
{
    struct rs_loop *loop = req->loop;
    if (priv(req)->queued)
        return;
    priv(req)->queued = 1;
    priv(req)->retry_prev = NULL;
    priv(req)->retry_next = loop->fs_retry;
    if (loop->fs_retry)
        priv(loop->fs_retry)->retry_prev = req;
    loop->fs_retry = req;
}

static void retry_remove(struct rs_fs_req *req)
{
    struct rs_loop *loop = req->loop;
    if (!priv(req)->queued)
        return;
    priv(req)->queued = 0;
    if (priv(req)->retry_prev)
        priv(priv(req)->retry_prev)->retry_next = priv(req)->retry_next;
    else
        loop->fs_retry = priv(req)->retry_next;
    if (priv(req)->retry_next)
        priv(priv(req)->retry_next)->retry_prev = priv(req)->retry_prev;
    priv(req)->retry_prev = priv(req)->retry_next = NULL;
}

static void finish(struct rs_fs_req *req, int32_t res)
{
    retry_remove(req);
    priv(req)->state = IDLE;
    priv(req)->cancel_wanted = 0;
    req->result = res;
    rs_loop_req_done(req->loop);
    priv(req)->cb(req);
}

static void on_complete(struct rs_loop *loop, struct rs_op *op,
                        const struct rs_completion *c)
{
    struct rs_fs_req *req = op->data;
    (void)loop;
    /* One completion per op: no multishot; a pool buffer only for a read
     * that asked for one (rs_fs_read_lent). */
    assert(priv(req)->state == IN_FLIGHT && !(c->flags & RS_CF_MORE));
    assert(!(c->flags & RS_CF_BUFFER) || (priv(req)->fop.op.flags & RS_OPF_POOL_BUF));
    /* rs_loop_buf(bid) is where the bytes are: a read fills a buffer from
     * its start, never a slice of one. */
    assert(!(c->flags & RS_CF_BUFFER) || c->off == 0);
    req->bid = (c->flags & RS_CF_BUFFER) ? c->bid : 0;
    finish(req, c->res);
}

/* Common start: the op initialised for this use, its generation kept. */
static int prepare(struct rs_loop *loop, struct rs_fs_req *req, uint8_t type,
                   uint8_t kind, int fd, rs_fs_fn cb)
{
    if (!loop || !req || !cb)
        return -EINVAL;
    /* Resubmitting an op the backend still holds would corrupt its lists. */
    if (priv(req)->state != IDLE)
        return -EINPROGRESS;
    if (kind != RS_OP_CLOSE && kind != RS_OP_SENDFILE && kind != RS_OP_SEND &&
        !(loop->caps & RS_CAP_FILE_OPS))
        return -EOPNOTSUPP;
    rs_file_op_init(&priv(req)->fop, kind, fd, on_complete, req);
    req->loop = loop;
    req->type = type;
    priv(req)->cb = cb;
    req->result = 0;
    priv(req)->cancel_wanted = 0;
    priv(req)->queued = 0;
    priv(req)->retry_prev = priv(req)->retry_next = NULL;
    return 0;
}

static int submit(struct rs_fs_req *req)
{
    struct rs_loop *loop = req->loop;
    int rc = loop->ops->submit(loop, &priv(req)->fop.op);
    if (rc == 0) {
        priv(req)->state = IN_FLIGHT;
    } else if (is_refusal(rc)) {
        loop->stats.refused++;
        priv(req)->state = REFUSED;
        retry_add(req);
    } else {
        return rc;
    }
    rs_loop_req_start(loop);
    return 0;
}

static int open_how(struct rs_loop *loop, struct rs_fs_req *req, int dirfd,
                    const char *path, int flags, unsigned mode, uint64_t resolve,
                    rs_fs_fn cb)
{
    if (!path)
        return -EINVAL;
    int rc = prepare(loop, req, RS_FS_OPEN, RS_OP_OPENAT, dirfd, cb);
    if (rc < 0)
        return rc;
    /* openat2 refuses a mode it would ignore. */
    bool creates = (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
    priv(req)->fop.path = path;
    priv(req)->fop.how =
        (struct rs_open_how){.flags = (uint64_t)(unsigned)(flags | O_CLOEXEC),
                             .mode = creates ? mode : 0,
                             .resolve = resolve};
    return submit(req);
}

int rs_fs_open(struct rs_loop *loop, struct rs_fs_req *req, const char *path, int flags,
               unsigned mode, rs_fs_fn cb)
{
    return open_how(loop, req, AT_FDCWD, path, flags, mode, 0, cb);
}

int rs_fs_open_beneath(struct rs_loop *loop, struct rs_fs_req *req, int dirfd,
                       const char *path, int flags, unsigned mode, rs_fs_fn cb)
{
    if (dirfd < 0)
        return -EBADF;
    return open_how(loop, req, dirfd, path, flags, mode,
                    RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, cb);
}

int rs_fs_read(struct rs_loop *loop, struct rs_fs_req *req, int fd, void *buf,
               uint32_t len, uint64_t off, rs_fs_fn cb)
{
    if ((!buf && len > 0) || !rs_file_range_ok(off, len))
        return -EINVAL;
    int rc = prepare(loop, req, RS_FS_READ, RS_OP_READ, fd, cb);
    if (rc < 0)
        return rc;
    priv(req)->fop.dst = buf;
    priv(req)->fop.op.len = len;
    priv(req)->fop.off = off;
    return submit(req);
}

int rs_fs_read_lent(struct rs_loop *loop, struct rs_fs_req *req, int fd, uint32_t len,
                    uint64_t off, rs_fs_fn cb)
{
    if (!rs_file_range_ok(off, len))
        return -EINVAL;
    int rc = prepare(loop, req, RS_FS_READ, RS_OP_READ, fd, cb);
    if (rc < 0)
        return rc;
    priv(req)->fop.op.flags = RS_OPF_POOL_BUF;
    priv(req)->fop.op.len = len;
    priv(req)->fop.off = off;
    return submit(req);
}

int rs_fs_write(struct rs_loop *loop, struct rs_fs_req *req, int fd, const void *buf,
                uint32_t len, uint64_t off, rs_fs_fn cb)
{
    if ((!buf && len > 0) || !rs_file_range_ok(off, len))
        return -EINVAL;
    int rc = prepare(loop, req, RS_FS_WRITE, RS_OP_WRITE, fd, cb);
    if (rc < 0)
        return rc;
    priv(req)->fop.op.buf = buf;
    priv(req)->fop.op.len = len;
    priv(req)->fop.off = off;
    return submit(req);
}

int rs_fs_statx(struct rs_loop *loop, struct rs_fs_req *req, int dirfd, const char *path,
                int at_flags, unsigned mask, struct statx *out, rs_fs_fn cb)
{
    if (!out)
        return -EINVAL;
    int rc = prepare(loop, req, RS_FS_STATX, RS_OP_STATX, dirfd, cb);
    if (rc < 0)
        return rc;
    priv(req)->fop.path = path ? path : "";
    priv(req)->fop.at_flags = path ? at_flags : at_flags | AT_EMPTY_PATH;
    priv(req)->fop.mask = mask;
    priv(req)->fop.stx = out;
    return submit(req);
}

static int sync_req(struct rs_loop *loop, struct rs_fs_req *req, int fd, uint32_t how,
                    rs_fs_fn cb)
{
    int rc = prepare(loop, req, RS_FS_FSYNC, RS_OP_FSYNC, fd, cb);
    if (rc < 0)
        return rc;
    priv(req)->fop.op.len = how;
    return submit(req);
}

int rs_fs_fsync(struct rs_loop *loop, struct rs_fs_req *req, int fd, rs_fs_fn cb)
{
    return sync_req(loop, req, fd, 0, cb);
}

int rs_fs_fdatasync(struct rs_loop *loop, struct rs_fs_req *req, int fd, rs_fs_fn cb)
{
    return sync_req(loop, req, fd, RS_FSYNC_DATA, cb);
}

int rs_fs_close(struct rs_loop *loop, struct rs_fs_req *req, int fd, rs_fs_fn cb)
{
    if (fd < 0)
        return -EBADF;
    /* A plain RS_OP_CLOSE (no RS_OPF_DIRECT): files are process fds. */
    int rc = prepare(loop, req, RS_FS_CLOSE, RS_OP_CLOSE, fd, cb);
    if (rc < 0)
        return rc;
    return submit(req);
}

int rs_fs_sendfile(struct rs_loop *loop, struct rs_fs_req *req, struct rs_stream *s,
                   int fd, uint64_t off, uint64_t len, rs_fs_fn cb)
{
    if (!s || s->loop != loop || fd < 0 || len == 0 || len > INT32_MAX ||
        !rs_file_range_ok(off, len))
        return -EINVAL;
    if (!(loop->caps & RS_CAP_SENDFILE))
        return -EOPNOTSUPP;
    int rc = prepare(loop, req, RS_FS_SENDFILE, RS_OP_SENDFILE, fd, cb);
    if (rc < 0)
        return rc;
    /* The stream closes what it is given once sent: a duplicate, so that
     * fd stays the caller's (at the descriptor limit, made with what the
     * loop's backend holds given back). */
    int dup = rs_loop_dup_fd(loop, fd);
    if (dup < 0)
        return dup;
    priv(req)->fop.off = len; /* the result once all is sent */
    /* In flight before the stream sees it: a stream that fails at once
     * reports the drop from inside the call. */
    priv(req)->state = IN_FLIGHT;
    rs_loop_req_start(loop);
    rc = rs_stream_write_file_req(s, dup, off, len, req);
    if (rc < 0) { /* not taken, nothing queued: dup is still ours */
        close(dup);
        priv(req)->state = IDLE;
        rs_loop_req_done(loop);
        return rc;
    }
    if (rc == 1) /* nothing queued (dup closed): dropped, reported next turn */
        rs_fs_stream_done(req, false);
    return 0;
}

int rs_fs_send(struct rs_loop *loop, struct rs_fs_req *req, struct rs_stream *s,
               const void *buf, uint32_t len, rs_fs_fn cb)
{
    if (!s || s->loop != loop || !buf || len == 0 || len > INT32_MAX)
        return -EINVAL;
    int rc = prepare(loop, req, RS_FS_SEND, RS_OP_SEND, -1, cb);
    if (rc < 0)
        return rc;
    priv(req)->fop.off = len; /* the result once all is sent */
    /* In flight before the stream sees it, as for a sendfile. */
    priv(req)->state = IN_FLIGHT;
    rs_loop_req_start(loop);
    if (rs_stream_write_ref_req(s, buf, len, req) == 1)
        rs_fs_stream_done(req, false); /* dropped, reported next turn */
    return 0;
}

void rs_fs_stream_done(struct rs_fs_req *req, bool sent)
{
    assert(priv(req)->state == IN_FLIGHT &&
           (req->type == RS_FS_SENDFILE || req->type == RS_FS_SEND));
    priv(req)->state = DONE;
    req->result = sent ? (int32_t)priv(req)->fop.off : -ECANCELED;
    retry_add(req);
}

/* Ask the backend to cancel. A cancel it cannot take now (-EBUSY,
 * -ENOMEM) is asked again next turn; -ENOENT: the op finished already and
 * its completion is on the way. */
static int cancel_in_flight(struct rs_fs_req *req)
{
    struct rs_loop *loop = req->loop;
    int rc = loop->ops->cancel(loop, &priv(req)->fop.op);
    if (rc < 0 && rc != -ENOENT) {
        loop->stats.refused++;
        priv(req)->cancel_wanted = 1;
        retry_add(req);
        return 0;
    }
    priv(req)->cancel_wanted = 0;
    return rc;
}

int rs_fs_cancel(struct rs_fs_req *req)
{
    if (!req || priv(req)->state == IDLE || priv(req)->state == DONE)
        return -ENOENT;
    if (req->type == RS_FS_SENDFILE || req->type == RS_FS_SEND)
        return -EOPNOTSUPP; /* in its stream's queue: abort the stream */
    if (priv(req)->state == REFUSED) {
        priv(req)->cancel_wanted = 1; /* completed by the next rs_fs_retry */
        return 0;
    }
    return cancel_in_flight(req);
}

/* One request of the retry list, taken off it: submit or cancel again. */
static void retry_one(struct rs_fs_req *req)
{
    if (priv(req)->state == DONE) {
        finish(req, req->result);
        return;
    }
    if (priv(req)->state == REFUSED) {
        if (priv(req)->cancel_wanted) {
            finish(req, -ECANCELED);
            return;
        }
        int rc = req->loop->ops->submit(req->loop, &priv(req)->fop.op);
        if (rc == 0)
            priv(req)->state = IN_FLIGHT;
        else if (is_refusal(rc))
            retry_add(req);
        else
            finish(req, rc); /* cannot be done at all: that is its result */
        return;
    }
    if (priv(req)->state == IN_FLIGHT && priv(req)->cancel_wanted)
        cancel_in_flight(req);
}

void rs_fs_retry(struct rs_loop *loop)
{
    /* Take the whole list: what is refused again goes on a fresh one, and
     * callbacks run here may start (or cancel) requests of their own. The
     * requests still to do stay flagged queued, so nothing adds them to
     * the fresh list meanwhile (no completion can remove one: backends
     * deliver only from run()). */
    struct rs_fs_req *list = loop->fs_retry;
    loop->fs_retry = NULL;
    while (list) {
        struct rs_fs_req *req = list;
        list = priv(req)->retry_next;
        if (list)
            priv(list)->retry_prev = NULL;
        priv(req)->retry_prev = priv(req)->retry_next = NULL;
        priv(req)->queued = 0;
        retry_one(req);
    }
}
