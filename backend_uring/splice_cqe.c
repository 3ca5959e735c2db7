/* RS_OP_SENDFILE on io_uring: the CQEs of the op's steps (splice.c draws
 * the machine), each leading to the step after or to the op's end, and
 * the CQEs of the cancels and timers around them. */
#include "splice_int.h"

#include <errno.h>

#include "log.h"
#include "loop.h"
#include "op.h"

#ifndef ERESTARTSYS
#define ERESTARTSYS 512 /* a worker's splice interrupted (timeout, cancel) */
#endif

/* How often a cancel that found nothing is asked again while the pair's
 * OUT is still to be issued, the n-th time after 1 << min(n, 6) ms: about
 * a second in all, for a worker the machine keeps from running. */
#define CANCEL_TRIES 24

static struct __kernel_timespec retry_after[] = {
    {.tv_nsec = 1000000L},  {.tv_nsec = 2000000L},  {.tv_nsec = 4000000L},
    {.tv_nsec = 8000000L},  {.tv_nsec = 16000000L}, {.tv_nsec = 32000000L},
    {.tv_nsec = 64000000L},
};

/* The splice ended before its timer: the timer goes (its CQE and the
 * removal's are ignored). Without an SQE it fires later and finds the
 * op at another step (ignored), or cancels a later splice early, which
 * then waits for POLLOUT and goes on. */
static void timer_off(struct ur_splice *sp, struct sp_rec *r)
{
    if (!r->out_timer)
        return;
    r->out_timer = false;
    struct io_uring_sqe *sqe = sp->get_sqe(sp->ctx, 1);
    if (!sqe)
        return;
    io_uring_prep_timeout_remove(sqe, ud_of(sp, r) | UD_OUT_TIMER, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)sp->tag << 56);
}

static void finish(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r,
                   int32_t res)
{
    struct rs_op *op = r->op;
    /* Flags back, an installed fd closed, before the caller hears — or,
     * after an op that went well, a direct socket held for the next. */
    bool well = res > 0 && !r->cancel && r->in_res >= 0;
    if (well)
        sp_sock_keep(sp, r);
    else
        sp_sock_put(r);
    if (well)
        sp_next_set(sp, r); /* before r->pipe goes: an op sent by pipe is not */
    sp_pipe_put(sp, r->pipe, r->inpipe == 0);
    if (r->prev)
        r->prev->next = r->next;
    else
        sp->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    sp->nlive--;
    r->op = NULL;
    r->pipe = NULL;
    r->next = sp->free_recs;
    sp->free_recs = r;
    op->bk_ptr = NULL;
    rs_op_complete(loop, op, res, 0, 0);
    sp->next.op = NULL; /* the next op of the transfer, if any, was submitted */
}

/* The op ends with what went out, or err when nothing did. */
void sp_finish_err(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r,
                   int32_t err)
{
    finish(sp, loop, r, r->sent > 0 ? (int32_t)r->sent : err);
}

/* Next step, or the end when no SQE is to be had. */
static void step(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r, uint8_t s)
{
    if (!sp_issue(sp, r, s)) {
        rs_log_error("sendfile: no SQE for the next splice");
        sp_finish_err(sp, loop, r, -EBUSY);
    }
}

/* A pipe -> socket splice that moved nothing and met no error of the
 * socket: it was stopped. Its timeout or a cancel stops a splice that a
 * worker runs by signalling the worker (-ERESTARTSYS, or -EINTR), one no
 * worker took yet with -ECANCELED; a non-blocking socket that is full
 * says -EAGAIN. */
static bool stopped(int32_t res)
{
    return res == -EINTR || res == -ERESTARTSYS || res == -ECANCELED || res == -EAGAIN;
}

/* What a step's last CQE ends a cancelled op with (before sp_finish_err()
 * makes it the bytes sent, when some went out): a step the cancel
 * stopped failed at nothing, so -ECANCELED (rule 10 of backend.h) — a
 * splice in a worker says -ERESTARTSYS or -EINTR, a poll (POLL, WAIT)
 * -ECANCELED, one that completed first its own result; a real error of
 * the socket that raced the cancel stays what it is. */
static int32_t cancelled(int32_t res)
{
    return res < 0 && !stopped(res) ? res : -ECANCELED;
}

/* The loop cannot send the rest of the op: on by pipe, through the ring;
 * or, UR_SPLICE_STEP sent already, the op ends here (the next one starts
 * by pipe). */
void sp_by_pipe(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r)
{
    if (r->sent >= UR_SPLICE_STEP) {
        finish(sp, loop, r, (int32_t)r->sent);
        return;
    }
    sp_pipe_sized(r);
    int err = 0;
    if (!r->pipe && !(r->pipe = sp_pipe_get(sp, &err))) {
        sp_finish_err(sp, loop, r, err);
        return;
    }
    if (r->sock >= 0 && !r->pipe->direct) {
        sp_here_step(sp, loop, r); /* the loop splices out of the pipe */
        return;
    }
    /* io-wq sends: into a socket the loop has, non-blocking (a full one
     * is a POLL step, not a waiting worker). */
    if (r->sock >= 0)
        (void)sp_sock_nb(r);
    step(sp, loop, r, r->pipe->rd < 0 ? STEP_PIPE : sp_part_step(sp, r));
}

/* The pipe -> socket splice ended with res (its step's last CQE). */
static void out_done(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r,
                     int32_t res)
{
    if (res > 0) {
        r->sent += (uint32_t)res;
        r->inpipe -= (uint32_t)res;
    }
    if (r->cancel) {
        /* A splice stopped by the cancel (or by its timeout while a cancel
         * was asked) failed at nothing: the op was cancelled (rule 10 of
         * backend.h). A worker interrupted before its first byte reports
         * -ERESTARTSYS, which is no errno a caller may ever see. A real
         * error of the socket that raced the cancel stays what it is. */
        sp_finish_err(sp, loop, r, cancelled(res));
        return;
    }
    /* Cut short by its timeout (nothing sent: stopped; some sent: res > 0
     * with bytes left in the pipe), or a full non-blocking socket: the
     * peer is not reading fast enough. Wait for room, then the rest of
     * the pipe. */
    bool full = stopped(res) || (res > 0 && r->inpipe > 0);
    if (full) {
        step(sp, loop, r, STEP_POLL);
        return;
    }
    if (res <= 0) {
        sp_finish_err(sp, loop, r, res < 0 ? res : -EPIPE);
        return;
    }
    if (r->sent == r->want) {
        finish(sp, loop, r, (int32_t)r->sent);
        return;
    }
    step(sp, loop, r, sp_part_step(sp, r));
}

/* The pair's IN brought all it was asked for, and its OUT has not
 * completed: OUT runs, or is about to be issued. */
static bool out_follows(const struct sp_rec *r)
{
    return r->step == STEP_PAIR && r->in_done && r->in_res == (int32_t)r->asked;
}

/* The CQE of a cancel (or, retry, of the timer before one) for op
 * generation gen of r. While OUT follows, a cancel may have missed it
 * two ways: it found nothing (-ENOENT), OUT not issued yet (by the worker
 * that ran IN, or by the loop's own task work); or it found IN itself
 * still the worker's current work (-EALREADY: IN's CQE is posted before
 * the worker lets go of it), and the worker drops that signal before it
 * starts OUT. Either way ask again, after a while, since asking at once
 * can only find the same; a cancel that did stop OUT ends the step, and
 * the next retry then finds nothing to do. Only that OUT can be missed:
 * every other step (OUT, POLL, PIPE, END, and the loop's INSTALL and
 * WAIT) is either reached by the cancel or has its CQE on the way, and
 * the flag ends the op there; nothing to ask again, no timer. */
static void cancel_cqe(struct ur_splice *sp, struct sp_rec *r, uint8_t gen, bool retry,
                       int32_t res)
{
    if (!r->op || gen != r->gen || !out_follows(r)) /* the op ended or goes on */
        return;
    if (retry) {
        (void)sp_cancel_sqe(sp, r);
        return;
    }
    if ((res != -ENOENT && res != -EALREADY) || r->cancels >= CANCEL_TRIES)
        return;
    struct io_uring_sqe *sqe = sp->get_sqe(sp->ctx, 1);
    if (!sqe)
        return; /* the flag still ends the op at OUT's CQE */
    unsigned n = r->cancels++;
    io_uring_prep_timeout(sqe, &retry_after[n < 6 ? n : 6], 0, 0);
    io_uring_sqe_set_data64(sqe, ud_of(sp, r) | UD_RETRY);
}

/* The timer of a worker's splice into a blocking socket fired (prep_out):
 * if the splice still runs, cancel it; it ends with what it sent, or
 * stopped, and out_done() waits for room (POLL) before the rest. */
static void out_timer_cqe(struct ur_splice *sp, struct sp_rec *r, uint8_t gen,
                          int32_t res)
{
    if (res != -ETIME || !r->op || gen != r->gen || r->step != STEP_OUT || r->cqes == 0)
        return; /* removed, or the op ended or went on */
    r->out_timer = false;
    (void)sp_cancel_sqe(sp, r); /* its CQE is cancel_cqe's, which ignores it */
}

void ur_splice_cqe(struct ur_splice *sp, struct rs_loop *loop, uint64_t user_data,
                   int32_t res)
{
    if (sp->doomed)
        sp_close_doomed(sp);
    uint64_t mark = user_data & (UD_CANCEL | UD_RETRY);
    struct sp_rec *r = (struct sp_rec *)(uintptr_t)(user_data & UD_PTR_MASK & ~mark);
    if (!r)
        return; /* a timeout's own CQE, or a direct pipe's close */
    if (mark == UD_OUT_TIMER) {
        out_timer_cqe(sp, r, (uint8_t)(user_data >> 48), res);
        return;
    }
    if (mark) {
        cancel_cqe(sp, r, (uint8_t)(user_data >> 48), mark == UD_RETRY, res);
        return;
    }
    if (!r->op || (uint8_t)(user_data >> 48) != r->gen || r->cqes == 0) {
        rs_log_error("sendfile: dropping a stale splice completion (res %d)", res);
        return;
    }
    r->cqes--;
    switch (r->step) {
    case STEP_PAIR:
        if (!r->in_done) {
            /* The IN (a chain completes in order): OUT follows, run or
             * cancelled by the kernel. */
            loop->stats.sendfile_worker_reads++;
            r->in_done = true;
            r->in_res = res;
            if (res > 0)
                r->inpipe = (uint32_t)res;
            /* OUT runs now (a short IN fails it): a cancel asked before
             * could not reach it (ur_splice_cancel). Without an SQE the
             * flag still ends the op at OUT's CQE. */
            if (r->cancel && res == (int32_t)r->asked)
                (void)sp_cancel_sqe(sp, r);
            return;
        }
        if (r->in_res == (int32_t)r->asked || r->cancel) {
            loop->stats.sendfile_worker_sends++;
            out_done(sp, loop, r, res);
            return;
        }
        /* IN came short, so the kernel cancelled OUT (-ECANCELED): 0 is
         * the file's end, < 0 its error; else send what IN brought. */
        if (r->in_res <= 0) {
            sp_finish_err(sp, loop, r, r->in_res);
            return;
        }
        step(sp, loop, r, STEP_OUT);
        return;
    case STEP_OUT:
        loop->stats.sendfile_worker_sends++;
        timer_off(sp, r);
        out_done(sp, loop, r, res);
        return;
    case STEP_IN:
        /* The part is in the pipe (what it holds goes with the pipe if
         * the op ends here): the loop sends it. */
        loop->stats.sendfile_worker_reads++;
        if (res > 0)
            r->inpipe = (uint32_t)res;
        if (r->cancel || res <= 0) {
            sp_finish_err(sp, loop, r, r->cancel ? cancelled(res) : res);
            return;
        }
        if (r->sock >= 0 && !r->pipe->direct)
            sp_here_step(sp, loop, r); /* the loop splices out of the pipe */
        else
            step(sp, loop, r, STEP_OUT); /* a worker, bounded by its timer */
        return;
    case STEP_PIPE:
        /* -ENFILE: the direct table is full too. A pipe made while a
         * cancel was asked is the op's all the same: an empty one, cached
         * or closed by finish(). */
        if (res >= 0) {
            r->pipe->rd = r->pipe->made[0];
            r->pipe->wr = r->pipe->made[1];
        }
        if (res < 0 || r->cancel) {
            sp_finish_err(sp, loop, r, res < 0 ? res : -ECANCELED);
            return;
        }
        step(sp, loop, r, sp_part_step(sp, r));
        return;
    case STEP_END:
        sp_finish_err(sp, loop, r, r->cancel && r->in_res == 0 ? -ECANCELED : r->in_res);
        return;
    case STEP_INSTALL:
        if (res >= 0) {
            r->sock = res;
            r->own_sock = true;
        }
        if (r->cancel) {
            sp_sock_put(r);
            sp_finish_err(sp, loop, r, -ECANCELED);
            return;
        }
        if (res < 0) {
            /* No such opcode (before 6.8), or out of descriptors: by
             * pipe, through the ring. */
            if ((res == -EINVAL || res == -EOPNOTSUPP) && !sp->no_install) {
                sp->no_install = true;
                rs_log_info("sendfile: no IORING_OP_FIXED_FD_INSTALL (Linux 6.8): "
                            "io-wq workers send to direct sockets");
            }
            sp_by_pipe(sp, loop, r);
            return;
        }
        sp_here_step(sp, loop, r);
        return;
    case STEP_WAIT:
        /* POLLOUT, or POLLERR/POLLHUP: sendfile(2) tells which. A cancel
         * ends the op here, whatever the poll says: the socket's flags go
         * back and an installed fd is closed (sp_sock_put) before it
         * completes. */
        if (res < 0 || r->cancel) {
            sp_sock_put(r);
            sp_finish_err(sp, loop, r, r->cancel ? cancelled(res) : res);
            return;
        }
        sp_here_step(sp, loop, r);
        return;
    case STEP_POLL:
        /* POLLOUT, or POLLERR/POLLHUP: the splice tells which. */
        if (res < 0 || r->cancel) {
            sp_finish_err(sp, loop, r, r->cancel ? cancelled(res) : res);
            return;
        }
        step(sp, loop, r, STEP_OUT);
        return;
    }
}
