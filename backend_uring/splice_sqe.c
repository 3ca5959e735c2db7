/* RS_OP_SENDFILE on io_uring: the SQEs of each step of the op (splice.c
 * draws the machine). A step's SQEs are taken all at once or not at all,
 * then written; each carries the op's record and generation in its
 * user_data (ud_of), and a flag bit for what is not the step itself. */
#include "splice_int.h"

#include <assert.h>
#include <fcntl.h>
#include <poll.h>

#include "op.h"
#include "uring_util.h"

/* How long a worker's pipe -> socket splice may wait for room in a
 * blocking socket before the loop cancels it (prep_out). */
#define OUT_TIMEOUT_MS 50

static struct __kernel_timespec out_timeout = {.tv_nsec = OUT_TIMEOUT_MS * 1000000L};

/* IORING_OP_FIXED_FD_INSTALL (6.8): a process fd for a direct descriptor.
 * Newer than liburing 2.3's enum: the kernel's number. */
#define RS_IORING_OP_FIXED_FD_INSTALL 54

/* The file -> pipe splice of the next part into sqe (the pipe is empty:
 * the part is at most its size): what it asks for. */
static uint32_t prep_in(struct ur_splice *sp, struct sp_rec *r, struct io_uring_sqe *sqe)
{
    const struct rs_sendfile *src = r->op->buf;
    uint32_t left = r->want - r->sent;
    uint32_t len = left < r->pipe->cap ? left : r->pipe->cap;
    assert(r->inpipe == 0);
    io_uring_prep_splice(sqe, src->file_fd, (int64_t)(src->off + r->sent), r->pipe->wr,
                         -1, len, SPLICE_F_NONBLOCK);
    if (r->pipe->direct)
        sqe->flags |= IOSQE_FIXED_FILE; /* fd_out, the pipe */
    io_uring_sqe_set_data64(sqe, ud_of(sp, r));
    return len;
}

/* The pipe -> socket splice of n bytes in sqe, for an io-wq worker; with
 * t, the timer that stops it (a socket that blocks). */
static void prep_out(struct ur_splice *sp, struct sp_rec *r, struct io_uring_sqe *sqe,
                     struct io_uring_sqe *t, uint32_t n)
{
    struct rs_op *op = r->op;
    /* MORE while this op has more to send after these bytes: no half-empty
     * segment at the pipe's boundary. */
    unsigned more = r->sent + n < r->want ? SPLICE_F_MORE : 0;
    unsigned fixed_in = r->pipe->direct ? SPLICE_F_FD_IN_FIXED : 0;
    io_uring_prep_splice(sqe, r->pipe->rd, -1, op->fd, -1, n,
                         SPLICE_F_NONBLOCK | more | fixed_in);
    if (op->flags & RS_OPF_DIRECT)
        sqe->flags |= IOSQE_FIXED_FILE; /* fd_out, the socket */
    io_uring_sqe_set_data64(sqe, ud_of(sp, r));
    if (!t)
        return; /* non-blocking: a full socket ends it with -EAGAIN */
    /* The socket blocks (a direct one the loop has no fd for, to make it
     * non-blocking), and the worker's splice would wait until the peer
     * reads: a pure timer, at whose CQE the loop cancels the splice if
     * it still runs (out_timer_cqe): io-wq signals the worker, and the
     * splice returns what it sent, or -ERESTARTSYS. An
     * IORING_OP_LINK_TIMEOUT would do that by itself, but on 6.18 it
     * never fires for a splice io-wq runs (counted: 294 armed, 0 fired). */
    io_uring_prep_timeout(t, &out_timeout, 0, 0);
    io_uring_sqe_set_data64(t, ud_of(sp, r) | UD_OUT_TIMER);
    r->out_timer = true;
}

/* Queue the SQEs of r's step s. false: no SQE to be had, nothing issued.
 * Every SQE of the chain is taken before any is filled: a link flag
 * (IOSQE_IO_LINK) on an SQE whose successor never came would chain the
 * next, unrelated SQE to it, and a timeout prepared into a NULL SQE would
 * crash. get_sqe promises n free slots, but that promise is checked here,
 * not trusted; SQEs taken before a refusal become NOPs nobody hears of. */
static const unsigned step_sqes[] = {
    [STEP_PAIR] = 2, [STEP_OUT] = 2,     [STEP_POLL] = 1, [STEP_PIPE] = 1,
    [STEP_END] = 1,  [STEP_INSTALL] = 1, [STEP_WAIT] = 1, [STEP_IN] = 1};

/* The n SQEs of a chain into q, all or none. */
bool sp_take(struct ur_splice *sp, struct io_uring_sqe **q, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        q[i] = sp->get_sqe(sp->ctx, n - i);
        if (!q[i]) {
            for (unsigned k = 0; k < i; k++) {
                io_uring_prep_nop(q[k]);
                io_uring_sqe_set_data64(q[k], (uint64_t)sp->tag << 56);
            }
            return false;
        }
    }
    return true;
}

bool sp_issue(struct ur_splice *sp, struct sp_rec *r, uint8_t s)
{
    struct io_uring_sqe *q[2] = {NULL, NULL};
    /* OUT alone takes its timer's SQE only for a socket that blocks. */
    if (!sp_take(sp, q, s == STEP_OUT && r->nb_set ? 1 : step_sqes[s]))
        return false;
    sp_fill(sp, r, s, q);
    return true;
}

/* Write r's step s into its SQEs q (as many as step_sqes[s]). */
void sp_fill(struct ur_splice *sp, struct sp_rec *r, uint8_t s, struct io_uring_sqe **q)
{
    struct rs_op *op = r->op;
    r->step = s;
    switch (s) {
    case STEP_PAIR: {
        /* IN, linked to OUT for as many bytes: when IN brings fewer (the
         * file ends, or an offset inside a page leaves the pipe a page
         * short) the kernel cancels OUT, and the rest goes alone. */
        uint32_t len = prep_in(sp, r, q[0]);
        q[0]->flags |= IOSQE_IO_LINK;
        assert(r->nb_set); /* a blocking socket's OUT is not linked (sp_part_step) */
        prep_out(sp, r, q[1], NULL, len);
        r->asked = len;
        r->in_done = false;
        r->cqes = 2;
        return;
    }
    case STEP_OUT:
        prep_out(sp, r, q[0], r->nb_set ? NULL : q[1], r->inpipe);
        r->cqes = 1;
        return;
    case STEP_IN: {
        /* The file -> pipe half alone, for the loop to send: a worker's
         * read of the file ends by itself, whoever the peer is. */
        (void)prep_in(sp, r, q[0]);
        r->cqes = 1;
        return;
    }
    case STEP_POLL: /* room for the rest of the pipe */
    case STEP_WAIT: /* room for the loop's next sendfile(2) */
        io_uring_prep_poll_add(q[0], op->fd, POLLOUT);
        if (op->flags & RS_OPF_DIRECT)
            q[0]->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data64(q[0], ud_of(sp, r));
        r->cqes = 1;
        return;
    case STEP_PIPE:
        rs_prep_pipe_alloc(q[0], r->pipe->made, O_NONBLOCK);
        io_uring_sqe_set_data64(q[0], ud_of(sp, r));
        r->cqes = 1;
        return;
    case STEP_END:
        /* The op ends with r->in_res, at this NOP's CQE: from run(), even
         * when the file ended during ur_splice_submit (backend.h rule 1). */
        io_uring_prep_nop(q[0]);
        io_uring_sqe_set_data64(q[0], ud_of(sp, r));
        r->cqes = 1;
        return;
    case STEP_INSTALL:
        /* A process fd for the direct socket, O_CLOEXEC (flags 0). */
        io_uring_prep_rw(RS_IORING_OP_FIXED_FD_INSTALL, q[0], op->fd, NULL, 0, 0);
        q[0]->flags |= IOSQE_FIXED_FILE;
        q[0]->rw_flags = 0;
        io_uring_sqe_set_data64(q[0], ud_of(sp, r));
        r->cqes = 1;
        return;
    }
}

/* An ASYNC_CANCEL of whatever r has in flight; false: no SQE. Its CQE
 * comes back flagged UD_CANCEL (cancel_cqe). */
bool sp_cancel_sqe(struct ur_splice *sp, struct sp_rec *r)
{
    struct io_uring_sqe *sqe = sp->get_sqe(sp->ctx, 1);
    if (!sqe)
        return false;
    io_uring_prep_cancel64(sqe, ud_of(sp, r), 0);
    io_uring_sqe_set_data64(sqe, ud_of(sp, r) | UD_CANCEL);
    return true;
}
