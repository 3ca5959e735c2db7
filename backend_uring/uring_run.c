/* The io_uring backend, from a CQE to the core, and the wait: each
 * completion by its user_data tag and its op's generation, the common
 * case (a send's result, a recv's data in a buffer it lends) first and
 * kept short, the rest out of line; then ur_run, one turn: submit what was
 * queued, wait the way the features allow, dispatch the batch. uring.c
 * says what each feature is for; uring_submit.c is the other way. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include "uring_state.h"

static void arm_wake(struct ur_state *st, struct rs_loop *loop)
{
    if (st->wake_armed)
        return;
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return; /* retried next turn */
    io_uring_prep_read(sqe, loop->wake_fd, &st->wake_val, sizeof(st->wake_val), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_WAKE << 56);
    st->wake_armed = true;
}

/* A bundle CQE: res bytes in ceil(res / size) buffers taken from the ring
 * in order, starting with the one named in the CQE. The following ids are
 * read from the ring slots after it: the kernel consumed those slots, and
 * we cannot have refilled them yet (the ring never holds more than the
 * buffers nobody holds, and these are held until delivered; CQEs arrive in
 * consumption order). The core gets one completion per buffer, all but the
 * last flagged MORE, so its one-buffer-per-completion model holds. */
__attribute__((noinline)) static void deliver_bundle(struct rs_loop *loop,
                                                     struct ur_state *st,
                                                     struct rs_op *op,
                                                     const struct io_uring_cqe *cqe)
{
    uint32_t size = loop->pool.size;
    uint16_t first = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    uint16_t pos = st->br_pos[first];
    uint32_t left = (uint32_t)cqe->res;
    assert((left + size - 1) / size <= loop->pool.count);
    loop->stats.bundles++;
    for (uint16_t i = 0; left > 0; i++) {
        /* Read slot pos+i before delivering buffer i: the slot can only be
         * refilled after buffer i itself has been released. */
        uint16_t bid =
            i == 0 ? first : st->br->bufs[(uint16_t)(pos + i) & st->br_mask].bid;
        uint32_t len = left < size ? left : size;
        left -= len;
        uint32_t flags = RS_CF_BUFFER;
        if (left > 0 || (cqe->flags & IORING_CQE_F_MORE))
            flags |= RS_CF_MORE;
        rs_bufpool_lend(&loop->pool, bid);
        rs_op_complete(loop, op, (int32_t)len, flags, bid);
    }
}

static void on_op_cqe(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                      const struct io_uring_cqe *cqe)
{
    uint32_t flags = 0, off = 0;
    uint16_t bid = 0;
    int32_t res = cqe->res;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        /* The common case, one test for two features: a whole buffer
         * with bytes in it, lent as it is. */
        if (st->lend_plain && res > 0) {
            rs_bufpool_lend(&loop->pool, bid);
            uint32_t more = (cqe->flags & IORING_CQE_F_MORE) ? RS_CF_MORE : 0u;
            rs_op_complete_slice(loop, op, res, RS_CF_BUFFER | more, bid, 0);
            return;
        }
        if (res > (int32_t)loop->pool.size && (st->features & UF_BUNDLE)) {
            deliver_bundle(loop, st, op, cqe);
            return;
        }
        /* Only a CQE flagged F_BUFFER carries one: EOF and errors don't. */
        if (st->inc) {
            /* A slice of a buffer the kernel may keep filling (bufinc.c);
             * without bytes nothing was consumed: it stays the ring's. */
            if (res > 0) {
                off = ur_inc_recv(loop, st, bid, res, cqe->flags);
                flags |= RS_CF_BUFFER;
            }
        } else if (res > 0) {
            rs_bufpool_lend(&loop->pool, bid);
            flags |= RS_CF_BUFFER;
        } else {
            ur_buf_return(loop, st, bid); /* picked, but nothing to lend */
        }
    }
    if (cqe->flags & IORING_CQE_F_MORE)
        flags |= RS_CF_MORE;
    rs_op_complete_slice(loop, op, res, flags, bid, off);
}

static inline void on_op_ud(struct rs_loop *loop, struct ur_state *st,
                            const struct io_uring_cqe *cqe, uint64_t ud, unsigned tag);

/* A completion of the backend's own requests (wake-ups, buffer returns,
 * splice steps, zero-copy notifications, hang-up guards, the inbox), by
 * tag, and a new socket's second step (an op's, but rare). */
__attribute__((noinline)) static void on_own_cqe(struct rs_loop *loop,
                                                 struct ur_state *st,
                                                 const struct io_uring_cqe *cqe,
                                                 uint64_t ud, unsigned tag)
{
    switch (tag) {
    case TAG_WAKE:
        st->wake_armed = false;
        return;
    case TAG_SOCKOPT:
        on_op_ud(loop, st, cqe, ud, tag);
        return;
    case TAG_PROVIDE:
        /* A returned buffer the kernel refused would be lost for good. */
        if (cqe->res < 0) {
            rs_log_error("IORING_OP_PROVIDE_BUFFERS(bid %u): %s; retrying",
                         (unsigned)(ud & 0xffff), strerror(-cqe->res));
            ur_buf_return(loop, st, (uint16_t)(ud & 0xffff));
        }
        return;
    case TAG_SPLICE:
        ur_splice_cqe(st->splice, loop, ud, cqe->res);
        return;
    case TAG_ZC:
        ur_zc_cqe(loop, st, (struct zc_rec *)(uintptr_t)(ud & UD_PTR_MASK), cqe);
        return;
    case TAG_HUP:
        ur_hup_cqe(st, (struct hup_rec *)(uintptr_t)(ud & UD_PTR_MASK), cqe->res);
        return;
    case TAG_INBOX:
        if (st->inbox)
            rs_op_complete(loop, st->inbox, cqe->res,
                           RS_CF_MORE | (cqe->res >= 0 ? RS_CF_DIRECT : 0), 0);
        else if (cqe->res >= 0)
            ur_close_slot(st, cqe->res); /* arrived after we stopped taking them */
        return;
    case TAG_INBOX_END: {
        struct rs_op *op = st->inbox;
        st->inbox = NULL;
        if (op)
            rs_op_complete(loop, op, -ECANCELED, 0, 0);
        return;
    }
    default:
        /* TAG_IGNORE, and liburing's own timeout SQE of a wait without
         * ext-arg (LIBURING_UDATA_TIMEOUT): its CQE comes when the time is
         * up, or after the CQE that ended the wait. */
        return;
    }
}

/* An op's completion that needs more than forwarding its result: made in
 * submit(), a poll before its recv, a socket's steps, a hand-off, a
 * multishot recv's last CQE (its hang-up guard ends with it). true when
 * handled here; false: forward it (on_op_cqe). */
__attribute__((noinline)) static bool
on_special_op_cqe(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                  const struct io_uring_cqe *cqe, unsigned tag)
{
    if (op->bk_flags & BKF_DONE_NOW) {
        rs_op_complete(loop, op, (int32_t)(intptr_t)op->bk_ptr, 0, 0);
        return true;
    }
    if (op->bk_flags & BKF_SET_ASIDE) {
        ur_inc_read_done(loop, op, cqe->res);
        return true;
    }
    if (op->bk_flags & BKF_POLL_FIRST) {
        ur_recv_after_poll(loop, st, op, cqe->res);
        return true;
    }
    if (op->kind == RS_OP_SOCKET) {
        ur_socket_cqe(loop, st, op, cqe, tag);
        return true;
    }
    if (op->kind == RS_OP_ACCEPT) {
        /* With fixed-files: a direct descriptor (BKF_KIND_CQE). */
        uint32_t flags = (cqe->flags & IORING_CQE_F_MORE) ? RS_CF_MORE : 0u;
        rs_op_complete(loop, op, cqe->res, flags | (cqe->res >= 0 ? RS_CF_DIRECT : 0u),
                       0);
        return true;
    }
    if (op->kind == RS_OP_OPENAT && !(op->bk_flags & BKF_CANCEL_ASKED) &&
        ur_fds_give_back(st, cqe->res))
        return ur_reopen(loop, st, op);
    if (op->kind == RS_OP_HANDOFF && cqe->res >= 0)
        ur_close_slot(st, op->fd); /* the other ring has its own reference now */
    if ((op->bk_flags & BKF_HUP) && !(cqe->flags & IORING_CQE_F_MORE))
        ur_hup_end(st, op);
    if ((op->bk_flags & BKF_HUP_REARM) && !(cqe->flags & IORING_CQE_F_MORE)) {
        op->bk_flags &= (uint8_t)~BKF_HUP_REARM;
        if (cqe->res == -ECANCELED && !(op->bk_flags & BKF_CANCEL_ASKED) &&
            ur_rearm_after_hup(loop, st, op))
            return true;
    }
    return false;
}

/* A completion of an op's earlier use (its generation moved on). The
 * cold paths of on_cqe are out of line: inlined, their registers would be
 * saved and restored around every completion. */
__attribute__((noinline)) static void
drop_stale_cqe(struct rs_loop *loop, struct ur_state *st, const struct io_uring_cqe *cqe)
{
    rs_log_error("dropping a stale completion (res %d)", cqe->res);
    /* A buffer the kernel picked for it must still go back. */
    uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    if ((cqe->flags & IORING_CQE_F_BUFFER) && st->inc)
        ur_inc_drop(loop, st, bid, cqe->res, cqe->flags);
    else if (cqe->flags & IORING_CQE_F_BUFFER)
        ur_buf_return(loop, st, bid);
}

/* A CQE of an op: TAG_OP, or TAG_SOCKOPT (the second step of an
 * RS_OP_SOCKET, which on_own_cqe sends here). */
static inline void on_op_ud(struct rs_loop *loop, struct ur_state *st,
                            const struct io_uring_cqe *cqe, uint64_t ud, unsigned tag)
{
    struct rs_op *op = (struct rs_op *)(uintptr_t)(ud & UD_PTR_MASK);
    if ((uint8_t)(ud >> 48) != op->bk_gen) {
        drop_stale_cqe(loop, st, cqe);
        return;
    }
    /* The common case (a send's result, a recv's data while it stays
     * armed) passes these tests and goes straight to the core. */
    bool last = !(cqe->flags & IORING_CQE_F_MORE);
    if (((op->bk_flags &
          (BKF_DONE_NOW | BKF_POLL_FIRST | BKF_KIND_CQE | BKF_SET_ASIDE)) ||
         (last && (op->bk_flags & (BKF_HUP | BKF_HUP_REARM)))) &&
        on_special_op_cqe(loop, st, op, cqe, tag))
        return;
    on_op_cqe(loop, st, op, cqe);
}

static void on_cqe(struct rs_loop *loop, struct ur_state *st,
                   const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    unsigned tag = (unsigned)(ud >> 56);
    /* Nearly every CQE is an op's own (TAG_OP, zero): that path is tested
     * first, with one test, and kept short. */
    if (tag != TAG_OP) {
        on_own_cqe(loop, st, cqe, ud, tag);
        return;
    }
    on_op_ud(loop, st, cqe, ud, TAG_OP);
}

void ur_dispatch_cqe(struct rs_loop *loop, struct ur_state *st,
                     const struct io_uring_cqe *cqe)
{
    on_cqe(loop, st, cqe);
}

static struct __kernel_timespec ms_to_ts(int ms)
{
    return (struct __kernel_timespec){.tv_sec = ms / 1000,
                                      .tv_nsec = (ms % 1000) * 1000000L};
}

/* Submit, then wait for `want` completions for at most BATCH_WAIT_US from
 * the start of the wait; after that the kernel returns as soon as anything
 * has been posted, and with nothing posted it waits on, up to the timeout,
 * in the same call (IORING_FEAT_MIN_TIMEOUT, 6.12+). Under DEFER_TASKRUN
 * the task is not even woken before `want` task-work items are pending or
 * the minimum is up: fewer sleeps when requests come close together, and a
 * lone request waits at most BATCH_WAIT_US. At split placement that bought
 * fewer io_uring_enter calls but no CPU per request measurable beyond the
 * noise (BENCHMARKS.md, "Split placement: wake-ups per request"): opt-in.
 * liburing 2.3 has no wrapper for that wait. Queued SQEs go to the
 * kernel with io_uring_submit() (only the untimed wait of one, the common
 * turn, publishes the tail itself: ur_submit_and_wait1),
 * and the wait is io_uring_enter2(2) on the ring fd with
 * IORING_ENTER_EXT_ARG and a struct io_uring_getevents_arg whose `pad`
 * field is the kernel's min_wait_usec. The price: a second syscall on turns
 * that have something to submit. */
/* Without EXT_ARG (Linux before 5.11, or --uring-features=-ext-arg) a
 * timed wait is an IORING_OP_TIMEOUT SQE that completes when the time is
 * up or once one other completion was posted (count 1), and a wait for one
 * completion, which that SQE guarantees; its CQE is ignored (TAG_IGNORE).
 * Not liburing 2.3's own fallback in io_uring_submit_and_wait_timeout():
 * that one consumes the timeout's CQE itself and then waits again with no
 * timeout, so with nothing else to complete it never returns (the CQ burst
 * contract test hung there on the none ring, in its settling turns). The
 * kernel reads the timespec when the SQE is submitted: by the call below. */
static int timeout_sqe_wait(struct ur_state *st, int timeout_ms)
{
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return -EBUSY;
    struct __kernel_timespec ts = ms_to_ts(timeout_ms);
    io_uring_prep_timeout(sqe, &ts, 1, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    return io_uring_submit_and_wait(&st->ring, 1);
}

/* A timed wait whose arguments the kernel reads from the registered
 * region (wait-reg): the registered ring fd when there is one. */
static int wait_reg_enter(struct ur_state *st, unsigned want,
                          const struct __kernel_timespec *ts, unsigned min_wait_usec)
{
    bool reg = st->features & UF_RING_FD;
    return rs_wait_reg_enter(&st->ring, &st->wreg, want, ts, min_wait_usec,
                             reg ? st->ring.enter_ring_fd : st->ring.ring_fd, reg);
}

static int batch_enter(struct ur_state *st, unsigned want, int timeout_ms)
{
    struct io_uring *ring = &st->ring;
    /* No timeout wanted: a long one (1 s), re-armed each turn. */
    struct __kernel_timespec ts = ms_to_ts(timeout_ms >= 0 ? timeout_ms : 1000);
    if (st->wait_reg) /* submission and wait in one call */
        return wait_reg_enter(st, want, &ts, BATCH_WAIT_US);
    if (io_uring_sq_ready(ring) > 0) {
        int rc = io_uring_submit(ring);
        if (rc < 0)
            return rc;
    }
    /* In order (sigmask, sigmask_sz, min wait, ts): the third field is
     * `pad` in liburing 2.3's header and `min_wait_usec` in newer ones. */
    struct io_uring_getevents_arg arg = {0, _NSIG / 8, BATCH_WAIT_US,
                                         (uint64_t)(uintptr_t)&ts};
    return io_uring_enter2((unsigned)ring->ring_fd, 0, want,
                           IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                           (sigset_t *)(void *)&arg, sizeof(arg));
}

int ur_run(struct rs_loop *loop, int timeout_ms)
{
    struct ur_state *st = state(loop);
    struct io_uring_cqe *cqe;
    int dispatched = 0;
    arm_wake(st, loop);
    if (st->nsockopt_wait > 0) /* a new socket's TCP_NODELAY still to ask for */
        ur_retry_sockopts(st);
    ur_refill(st);
    /* One io_uring_enter below, whichever way (liburing 2.3 enters for
     * every wait with wait_nr > 0; with SQPOLL it may skip one). */
    loop->stats.waits++;
    int rc;
    if (timeout_ms < 0 && st->plain_wait) {
        /* The common turn, tested first: no timer, wait for anything. */
        rc = ur_submit_and_wait1(st);
    } else if (st->features & UF_SQPOLL) {
        /* The SQ thread submits; we only wait (never a busy-wait on peek). */
        io_uring_submit(&st->ring);
        if (timeout_ms == 0) {
            rc = 0;
        } else if (timeout_ms < 0) {
            rc = io_uring_wait_cqe(&st->ring, &cqe);
        } else {
            struct __kernel_timespec ts = ms_to_ts(timeout_ms);
            rc = io_uring_wait_cqe_timeout(&st->ring, &cqe, &ts);
        }
    } else if (st->batch_wait && timeout_ms != 0 && st->last_batch > 1) {
        rc = batch_enter(st, st->last_batch, timeout_ms);
    } else if (timeout_ms == 0) {
        rc = io_uring_submit_and_get_events(&st->ring);
    } else if (timeout_ms < 0) {
        rc = ur_submit_and_wait1(st);
    } else if (!(st->features & UF_EXT_ARG)) {
        rc = timeout_sqe_wait(st, timeout_ms);
    } else if (st->wait_reg) {
        struct __kernel_timespec ts = ms_to_ts(timeout_ms);
        rc = wait_reg_enter(st, 1, &ts, 0);
    } else {
        struct __kernel_timespec ts = ms_to_ts(timeout_ms);
        rc = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &ts, NULL);
    }
    /* -ETIME: the timeout expired; -EINTR: a signal; -EBUSY/-EAGAIN: the
     * kernel is short of CQ space or memory right now. None is fatal: reap
     * what is there, and the next turn submits again. */
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
        return rc;
    /* The batch the kernel posted before we look: one acquire load of its
     * tail (io_uring_for_each_cqe loads it again for every CQE). What it
     * posts meanwhile is the next turn's, which then does not wait. */
    unsigned n = io_uring_cq_ready(&st->ring);
    /* The kernel holds completions the CQ had no room for (a tiny ring
     * under load); counted so a test can prove that path was taken. */
    bool overflow = io_uring_cq_has_overflow(&st->ring);
    if (overflow)
        loop->stats.cq_overflows++;
    /* What this wait brought is the best guess of the next one: grow the
     * CQ now if that would not fit (the SQ is empty after the enter). The
     * test reuses the two readings above (rs_cq_short, its threshold
     * kept: one compare); a resize may bring overflowed completions in,
     * so the count is read again after one. */
    /* (The kept threshold is rs_cq_short's, unless a resize outside a
     * turn's end made it stale: smaller, so a grow that finds room.) */
    assert(!st->resize || st->cq.dirty ||
           (n >= st->cq_short_from) == rs_cq_short(&st->ring, n, false));
    if ((n >= st->cq_short_from || overflow) && st->resize) {
        rs_cq_grow(&st->ring, &st->cq);
        n = io_uring_cq_ready(&st->ring);
    }
    /* The CQ's fields are read again for each CQE: a resize during the
     * dispatch (resize) replaces them, with the same CQEs at the same
     * indices. The CQEs are never 32 bytes (set-up asserts it). */
    struct io_uring_cq *cq = &st->ring.cq;
    unsigned head = *cq->khead;
    for (unsigned i = 0; i < n; i++)
        on_cqe(loop, st, &cq->cqes[(head + i) & cq->ring_mask]);
    io_uring_cq_advance(&st->ring, n);
    dispatched += (int)n;
    if (st->batch_wait)
        st->last_batch = n < BATCH_MAX ? n : BATCH_MAX;
    /* Only a resize (with retired rings to unmap) or a failed one leaves
     * work here (dirty). */
    if (st->cq.dirty) {
        /* Rings replaced during the dispatch stayed mapped for the CQEs
         * being read from them; nobody reads them now. */
        rs_cq_grower_release(&st->cq);
        st->cq_short_from = rs_cq_short_from(&st->ring);
        loop->stats.cq_resizes += st->cq.grown;
        st->cq.grown = 0;
        st->cq.dirty = st->cq.broken; /* broken: every later run() fails too */
        if (st->cq.broken) {
            rs_log_error("io_uring: the resized rings could not be mapped");
            return -ENOMEM;
        }
    }
    return rc == -EINTR ? -EINTR : dispatched;
}
