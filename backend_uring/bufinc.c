/* buf-inc: a provided-buffer ring whose buffers are consumed incrementally
 * (IOU_PBUF_RING_INC, Linux 6.12).
 *
 * A plain buffer ring gives each receive a whole buffer: a 64-byte message
 * takes a 16 KiB buffer until the core gives it back. Registered with
 * IOU_PBUF_RING_INC, the ring's head buffer is filled a receive at a time,
 * each CQE saying with IORING_CQE_F_BUF_MORE that the kernel will put the
 * next receive's bytes behind these; it moves to the next buffer only once
 * this one is full. So one buffer is lent to the core as several slices,
 * to different connections, given back in any order.
 *
 * The rules this file keeps, per buffer of the ring (struct inc_buf):
 *  - The CQE carries no address: where a receive's bytes start is counted
 *    here (off), since the kernel fills a buffer in CQE order. The core
 *    gets it in rs_completion.off.
 *  - A buffer goes back into the ring only when the kernel has moved past
 *    it (a CQE without BUF_MORE), every slice came back (out) and no
 *    zero-copy send still reads it. Added earlier, it would sit in the
 *    ring twice and be filled from its start under bytes still held.
 *  - A CQE with no bytes (EOF, an error) consumed nothing: the buffer stays
 *    at the ring's head, whatever BUF_MORE says (kernels without the fix
 *    for zero-length incremental commits, liburing issue 1553, leave it
 *    unset although the buffer was not consumed).
 *  - For the pool's pressure accounting (rs_bufpool.lent) a buffer is lent
 *    from its first slice out to its last back, as a whole buffer was.
 *  - The core releases by buffer id, not by slice, so a double release is
 *    refused and counted (rs_bufpool_release_refused) when the buffer has
 *    no slice out; a slice released twice while another slice of the same
 *    buffer is still out is caught one release later, when that one finds
 *    nothing to release.
 *
 * File reads into pool buffers (RS_OPF_POOL_BUF) cannot use such a ring:
 * they would get the rest of a partly filled buffer, at an offset and
 * short, and rs_fs_read_lent promises a whole buffer from its start. A
 * quarter of the pool (at least one buffer) is set aside for them on the
 * free stack (rs_bufpool.set_aside: no receive counts on those), read into
 * with a plain IORING_OP_READ; none free is -ENOBUFS, as from an empty
 * ring. Ids below ring_bufs are the ring's, the others set aside. */
#include <stdlib.h>

#include "uring_state.h"

struct inc_buf {
    uint32_t off; /* bytes the kernel put in it since it was added */
    uint32_t out; /* slices lent to the core and not released */
    bool done;    /* the kernel moved past it: ours until added again */
};

int ur_inc_setup(struct rs_loop *loop, struct ur_state *st)
{
    uint32_t count = loop->pool.count;
    st->ring_bufs = count - (count / 4 ? count / 4 : 1);
    st->inc = calloc(st->ring_bufs, sizeof(*st->inc));
    return st->inc ? 0 : -ENOMEM;
}

void ur_inc_fini(struct rs_loop *loop, struct ur_state *st)
{
    /* Zero-copy notifications that never came: the ring is gone, so is
     * their hold (slices still out are the core's to give back first). */
    for (uint32_t bid = 0; st->inc && bid < st->ring_bufs; bid++)
        if (st->inc[bid].out == 0 && loop->pool.held[bid])
            rs_bufpool_unlend(&loop->pool, (uint16_t)bid);
    loop->pool.set_aside = 0; /* the pool is the loop's alone again */
    free(st->inc);
    st->inc = NULL;
}

/* res > 0 bytes of a CQE went into ring buffer bid: where they start. */
static uint32_t fill(struct ur_state *st, uint16_t bid, uint32_t res, bool more)
{
    struct inc_buf *b = &st->inc[bid];
    uint32_t off = b->off;
    assert(!b->done && (uint64_t)off + res <= UINT32_MAX);
    b->off = off + res;
    b->done = !more;
    return off;
}

void ur_inc_settle(struct rs_loop *loop, struct ur_state *st, uint16_t bid)
{
    struct inc_buf *b = &st->inc[bid];
    if (b->out > 0 || (st->zc_hold && st->zc_hold[bid]))
        return;
    if (loop->pool.held[bid])
        rs_bufpool_clear_loan(&loop->pool, bid);
    if (!b->done)
        return; /* still the ring's: the kernel fills the rest */
    *b = (struct inc_buf){0};
    ur_buf_return(loop, st, bid);
}

uint32_t ur_inc_recv(struct rs_loop *loop, struct ur_state *st, uint16_t bid, int32_t res,
                     uint32_t cqe_flags)
{
    uint32_t off = fill(st, bid, (uint32_t)res, cqe_flags & IORING_CQE_F_BUF_MORE);
    if (st->inc[bid].out++ == 0 && !loop->pool.held[bid])
        rs_bufpool_lend(&loop->pool, bid);
    if (off > 0)
        loop->stats.recvs_shared++;
    return off;
}

void ur_inc_drop(struct rs_loop *loop, struct ur_state *st, uint16_t bid, int32_t res,
                 uint32_t cqe_flags)
{
    if (res <= 0)
        return; /* nothing consumed: still at the ring's head */
    fill(st, bid, (uint32_t)res, cqe_flags & IORING_CQE_F_BUF_MORE);
    ur_inc_settle(loop, st, bid);
}

void ur_inc_release(struct rs_loop *loop, struct ur_state *st, uint16_t bid)
{
    /* Checked in release builds: see the top of this file. */
    if (st->inc[bid].out == 0) {
        rs_bufpool_release_refused(&loop->pool, bid);
        return;
    }
    st->inc[bid].out--;
    ur_inc_settle(loop, st, bid);
}

void ur_inc_put_aside(struct rs_loop *loop, uint16_t bid)
{
    rs_bufpool_put(&loop->pool, bid);
    loop->pool.set_aside++;
}

void ur_inc_prep_read(struct rs_loop *loop, struct rs_op *op, struct io_uring_sqe *sqe)
{
    struct rs_file_op *f = rs_file_op_of(op);
    /* Taken off the free stack but still set aside until it holds bytes:
     * no receive may count on it meanwhile. */
    int bid = rs_bufpool_get(&loop->pool);
    if (bid < 0) {
        ur_done_now(op, -ENOBUFS, sqe);
        return;
    }
    uint32_t len = op->len && op->len < loop->pool.size ? op->len : loop->pool.size;
    f->bk_bid = (uint16_t)bid;
    op->bk_flags |= BKF_SET_ASIDE;
    io_uring_prep_read(sqe, op->fd, rs_bufpool_ptr(&loop->pool, (uint16_t)bid), len,
                       f->off);
}

void ur_inc_read_done(struct rs_loop *loop, struct rs_op *op, int32_t res)
{
    uint16_t bid = rs_file_op_of(op)->bk_bid;
    op->bk_flags &= (uint8_t)~BKF_SET_ASIDE;
    if (res <= 0) {
        rs_bufpool_put(&loop->pool, bid);
        rs_op_complete(loop, op, res, 0, 0);
        return;
    }
    loop->pool.set_aside--;
    rs_bufpool_lend(&loop->pool, bid);
    rs_op_complete(loop, op, res, RS_CF_BUFFER, bid);
}
