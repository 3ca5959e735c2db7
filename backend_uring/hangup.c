/* The hang-up guard of a multishot recv: a one-shot IORING_OP_POLL_ADD for
 * POLLRDHUP|POLLERR|POLLHUP on the same socket, armed with the recv.
 *
 * Why: a multishot recv that has read the socket empty (msg_inq 0, no
 * IORING_CQE_F_SOCK_NONEMPTY) goes back to waiting for a wake-up without
 * looking at the socket's state again. When the peer's EOF or reset came
 * before that last read (its wake-up already spent, e.g. found by the
 * poll armed right after an -EAGAIN, or a queue of more than one issue's
 * worth of data and then an AF_UNIX EOF), no wake-up ever comes: the recv
 * stays armed on a dead socket for good (seen on Linux 6.18; liburing
 * issue 1549 is the same family). A one-shot poll has no such shortcut: it
 * completes as soon as the state is there, at arm time or later. When it
 * does while the recv is still armed, the recv is cancelled and the core
 * arms a fresh one, whose first read sees the socket as it is: what is
 * still queued, then the EOF or the reset. Bytes stay in the socket until
 * read, so none is lost. The guard ends with the recv: its final CQE
 * cancels it. */
#include <poll.h>

#include "uring_state.h"

/* A guard's record (st->hup_recs): it lives until the guard's own CQE. */
struct hup_rec {
    struct rs_op *op; /* the recv; NULL once it ended */
};

static uint64_t hup_ud(const struct hup_rec *r)
{
    return (uint64_t)(uintptr_t)r | (uint64_t)TAG_HUP << 56;
}

/* Arm the guard of a multishot recv just prepared. Without a record or an
 * SQE the recv goes unguarded, as it always did. */
void ur_hup_arm(struct ur_state *st, struct rs_op *op)
{
    struct hup_rec *r = ur_record_get(&st->hup_recs, sizeof(*r));
    if (!r)
        return;
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe) {
        ur_record_put(&st->hup_recs, r);
        return;
    }
    io_uring_prep_poll_add(sqe, op->fd, POLLRDHUP | POLLERR | POLLHUP);
    ur_set_fd(op, sqe);
    io_uring_sqe_set_data64(sqe, hup_ud(r));
    r->op = op;
    op->bk_flags |= BKF_HUP;
    op->bk_ptr = r;
}

/* The recv ended (its final CQE): its guard goes too. The record is
 * recycled when the guard's own CQE comes. */
void ur_hup_end(struct ur_state *st, struct rs_op *op)
{
    struct hup_rec *r = op->bk_ptr;
    op->bk_flags &= (uint8_t)~BKF_HUP;
    op->bk_ptr = NULL;
    r->op = NULL;
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return; /* it completes at the socket's hang-up or at fini */
    io_uring_prep_cancel64(sqe, hup_ud(r), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
}

/* The guard completed: the peer hung up (or it was cancelled). */
void ur_hup_cqe(struct ur_state *st, struct hup_rec *r, int32_t res)
{
    struct rs_op *op = r->op;
    ur_record_put(&st->hup_recs, r);
    if (!op)
        return; /* the recv ended first */
    /* Checked in release builds: an op that moved on is not this guard's. */
    if (!(op->bk_flags & BKF_HUP) || op->bk_ptr != r) {
        rs_log_error("a hang-up guard outlived its receive: ignored");
        return;
    }
    op->bk_flags &= (uint8_t)~BKF_HUP;
    op->bk_ptr = NULL;
    /* A hang-up: EOF or reset (a reset shows all three). An error alone
     * (POLLERR) need not end the input, so it is left to the recv. */
    if (res <= 0 || !(res & (POLLRDHUP | POLLHUP)))
        return;
    /* The recv is still armed (else op would be NULL). It is cancelled by
     * its user_data, which names this request and no other: a shutdown by
     * descriptor number could land on a new connection, since the kernel
     * runs IORING_OP_SHUTDOWN on a worker and looks a direct slot up only
     * there, after a close and an accept may have refilled it (seen: a
     * healthy client read EOF half-way). Its -ECANCELED never reaches the
     * core: on_cqe arms the same op again (rearm_after_hup), and the new
     * recv's first read finds what is left, then the EOF or the reset. */
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, ur_ud_of(op, TAG_OP), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    op->bk_flags |= BKF_HUP_REARM;
}

/* The op starts a new life (submit): a guard still tied to its previous one
 * (whose last CQE never reached ur_hup_end: dropped as stale) must not act
 * on the new one. */
void ur_hup_forget(struct rs_op *op)
{
    assert(op->bk_flags & BKF_HUP);
    ((struct hup_rec *)op->bk_ptr)->op = NULL;
}

/* The ring is gone: so are the guards still out. */
void ur_hup_fini(struct ur_state *st)
{
    ur_records_free(&st->hup_recs);
}
