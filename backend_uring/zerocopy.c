/* Zero-copy sends (send-zc): IORING_OP_SEND_ZC for sends of at least
 * --zc-threshold bytes from memory whose lifetime we control, the buffer
 * held until the kernel's notification, and a per-descriptor verdict that
 * stops zero copy where the kernel reports copying anyway (a loopback
 * peer: a deferred copy plus a notification, slower than a plain send). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "uring_state.h"

/* A zero-copy send in flight. Its first CQE completes the send (the core
 * may send the next bytes at once); its second, IORING_CQE_F_NOTIF, says
 * the kernel no longer reads the memory. On TCP that is when the data is
 * ACKed, which a peer waiting for the rest of a message may delay by
 * ~40 ms: holding the *send* until the notification would stall every
 * large echo on delayed ACKs. So only the *buffer* waits. */
struct zc_rec {
    struct rs_op *op; /* NULL once the first CQE was delivered */
    int32_t bid;      /* pool buffer held until the notification, or -1 */
    int fd;           /* the socket, for the copied verdict */
    uint8_t gen;
    uint8_t fd_epoch; /* which use of that descriptor number sent it */
};

/* Records (st->zc_recs) are counted while out: a stopping loop waits for
 * the notifications still to come (ur_busy). */
static struct zc_rec *zc_get(struct ur_state *st)
{
    struct zc_rec *r = ur_record_get(&st->zc_recs, sizeof(*r));
    if (r)
        st->zc_inflight++;
    return r;
}

static void zc_put(struct ur_state *st, struct zc_rec *r)
{
    assert(st->zc_inflight > 0);
    st->zc_inflight--;
    ur_record_put(&st->zc_recs, r);
}

#define ZC_COPIED 0x80u
#define ZC_EPOCH  0x7fu

static uint8_t zc_fd_get(const struct ur_state *st, int fd)
{
    return fd >= 0 && (uint32_t)fd < st->zc_fd_cap ? st->zc_fd[fd] : 0;
}

/* The descriptor is being closed: its next owner starts afresh. */
void ur_zc_fd_closed(struct ur_state *st, int fd)
{
    if (fd >= 0 && (uint32_t)fd < st->zc_fd_cap)
        st->zc_fd[fd] = (uint8_t)((st->zc_fd[fd] + 1) & ZC_EPOCH);
}

/* A notification said the kernel copied what r sent. */
static void zc_fd_copied(struct rs_loop *loop, struct ur_state *st,
                         const struct zc_rec *r)
{
    uint8_t v = zc_fd_get(st, r->fd);
    if (st->opts.zc_keep_copied || (uint32_t)r->fd >= st->zc_fd_cap ||
        (v & ZC_EPOCH) != r->fd_epoch || (v & ZC_COPIED))
        return;
    st->zc_fd[r->fd] = (uint8_t)(v | ZC_COPIED);
    loop->stats.zc_copied++;
}

/* Zero-copy only for memory whose lifetime we control: a pool buffer (held
 * back from reuse until the notification) or memory the core declares
 * static. A heap chunk could be freed while the kernel still reads it. */
bool ur_prep_send_zc(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                     struct io_uring_sqe *sqe)
{
    int32_t bid = -1;
    if (!ur_zc_kind_ok(st, op))
        return false;
    uint8_t fd_state = zc_fd_get(st, op->fd);
    if (fd_state & ZC_COPIED)
        return false;
    /* A zero-copy send pins its buffer until the data is ACKed, which a
     * peer that stops reading postpones forever. Cap what may be pinned so
     * such peers cannot drain the pool: past a quarter of the pool pinned,
     * or half of it lent, plain sends (which copy into the socket) it is. */
    const struct rs_bufpool *pool = &loop->pool;
    if (st->zc_held >= pool->count / 4 || pool->lent > pool->count / 2)
        return false;
    if (rs_bufpool_contains(pool, op->buf)) {
        bid = rs_bufpool_bid(pool, op->buf);
        if (st->zc_hold[bid] == UINT8_MAX)
            return false;
    } else if (!(op->flags & RS_OPF_STATIC_BUF)) {
        return false;
    }
    struct zc_rec *r = zc_get(st);
    if (!r)
        return false;
    *r = (struct zc_rec){.op = op,
                         .bid = bid,
                         .fd = op->fd,
                         .gen = op->bk_gen,
                         .fd_epoch = (uint8_t)(fd_state & ZC_EPOCH)};
    if (bid >= 0) {
        assert(st->zc_hold[bid] < UINT8_MAX);
        if (st->zc_hold[bid]++ == 0)
            st->zc_held++;
    }
    op->bk_flags |= BKF_ZC;
    op->bk_ptr = r;
    io_uring_prep_send_zc(sqe, op->fd, op->buf, op->len, MSG_NOSIGNAL,
                          IORING_SEND_ZC_REPORT_USAGE);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)r | (uint64_t)TAG_ZC << 56);
    return true;
}

/* The last zero-copy send reading a buffer is done with it. */
static void zc_unhold(struct rs_loop *loop, struct ur_state *st, int32_t bid)
{
    if (bid < 0)
        return;
    assert(st->zc_hold[bid] > 0);
    if (--st->zc_hold[bid] > 0)
        return;
    st->zc_held--;
    if (ur_inc_ring_bid(st, (uint32_t)bid)) {
        ur_inc_settle(loop, st, (uint16_t)bid);
        return;
    }
    if (st->zc_release[bid]) {
        /* The core released it earlier; it stayed counted as lent, so the
         * core's view of pool pressure included it. */
        st->zc_release[bid] = 0;
        rs_bufpool_unlend(&loop->pool, (uint16_t)bid);
        ur_buf_return(loop, st, (uint16_t)bid);
    }
}

void ur_zc_cqe(struct rs_loop *loop, struct ur_state *st, struct zc_rec *r,
               const struct io_uring_cqe *cqe)
{
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        assert(r->op == NULL);
        if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
            zc_fd_copied(loop, st, r);
        zc_unhold(loop, st, r->bid);
        zc_put(st, r);
        return;
    }
    struct rs_op *op = r->op;
    int32_t res = cqe->res;
    bool notif_follows = cqe->flags & IORING_CQE_F_MORE;
    bool stale = op->bk_gen != r->gen; /* read before r may be recycled */
    r->op = NULL;
    op->bk_flags &= (uint8_t)~BKF_ZC;
    op->bk_ptr = NULL;
    if (!notif_follows) {
        zc_unhold(loop, st, r->bid);
        zc_put(st, r);
    }
    if (stale) {
        rs_log_error("dropping a stale zero-copy completion (res %d)", res);
        return;
    }
    if (res == -ENOMEM || res == -EOPNOTSUPP) {
        /* e.g. a low RLIMIT_MEMLOCK: plain sends from now on. */
        if (!st->zc_warned) {
            rs_log_error("send_zc failed (%s); falling back to plain send",
                         strerror(-res));
            st->zc_warned = true;
        }
        st->zc_enabled = false;
        st->plain_send_max = UINT32_MAX; /* ur_submit: every send is plain */
        if (ur_prep_send(loop, st, op) == 0)
            return;
        res = -EBUSY;
    }
    rs_op_complete(loop, op, res, 0, 0);
}

/* The backend's per-buffer holds and per-descriptor verdicts. */
int ur_zc_setup(struct rs_loop *loop, struct ur_state *st)
{
    st->zc_hold = calloc(loop->pool.count, 1);
    st->zc_release = calloc(loop->pool.count, 1);
    st->zc_fd = calloc(st->zc_fd_cap, 1);
    return st->zc_hold && st->zc_release && st->zc_fd ? 0 : -ENOMEM;
}

/* The ring is gone: so are the notifications that never came, and the
 * holds they kept. */
void ur_zc_fini(struct rs_loop *loop, struct ur_state *st)
{
    for (uint32_t bid = 0; st->zc_release && bid < loop->pool.count; bid++)
        if (st->zc_release[bid])
            rs_bufpool_unlend(&loop->pool, (uint16_t)bid);
    ur_records_free(&st->zc_recs);
    free(st->zc_hold);
    free(st->zc_release);
    free(st->zc_fd);
}
