/* RS_OP_SENDFILE on io_uring: a file's bytes into a socket through a pipe.
 *
 * io_uring has no sendfile. What it has is IORING_OP_SPLICE, splice(2) as
 * an SQE, and splice needs a pipe at one end: so a file goes to a socket
 * in two splices, file -> pipe (the pipe takes references to the page-cache
 * pages: no copy) and pipe -> socket (TCP attaches those pages to its
 * packets: no copy either). That is what sendfile(2) does inside the
 * kernel with a hidden per-task pipe; here the pipe is ours.
 *
 * What the kernel promises, and what it does not:
 *  - Every splice SQE runs in an io-wq worker thread (the opcode is always
 *    forced async): each costs a hand-off to a worker and back, and its
 *    CQE wakes the loop (on a DEFER_TASKRUN ring a worker's completion is
 *    task work for the loop's thread, and a linked successor is issued
 *    only once the loop has run it). So the pipe is made large
 *    (F_SETPIPE_SZ, up to 1 MiB) to need few of them.
 *  - The socket side is not polled the way a send SQE is. On a
 *    non-blocking socket whose buffer is full a pipe -> socket splice
 *    ends with -EAGAIN (io-wq completes it so, it does not retry); on a
 *    blocking one it waits in its worker until the peer reads. The
 *    backend's sockets are blocking (io_uring's own sends and receives
 *    misbehave on O_NONBLOCK sockets: a sendmsg that waited for room was
 *    once seen to complete with -EAGAIN), and io-wq bounds its workers
 *    for such work only by RLIMIT_NPROC: every client that asks for a
 *    file and never reads would hold a kernel thread for as long as it
 *    stays connected. An IORING_OP_LINK_TIMEOUT on the splice does not
 *    bound that: on 6.18 it never fires for a splice io-wq runs (counted:
 *    294 armed, none fired).
 *  - Bytes in the pipe are taken from the file but not yet sent. They stay
 *    with their op: the op completes only when its pipe is empty (or on an
 *    error or cancel, when what is left in the pipe is thrown away with the
 *    pipe itself, and never counted as sent). A pipe known to be empty goes
 *    back to a small per-loop cache; any other is closed.
 *
 * Hence only the file -> pipe half goes to a worker, and only when it
 * must wait for the disk: a read of the file ends by itself, whoever the
 * peer is. The pipe -> socket half is the loop's own splice(2), into the
 * socket made O_NONBLOCK for the op (as a process fd: a plain socket is
 * one, a direct one gets one from IORING_OP_FIXED_FD_INSTALL, Linux 6.8;
 * splice_here.c has that discipline): a full socket is a POLLOUT poll,
 * never a thread. The file -> pipe half is the loop's splice(2) too
 * whenever that cannot block: cachestat(2) (Linux 6.5) says every page
 * of the part is cached, so it only takes page references (a few
 * microseconds per MiB, plus 1-10 for cachestat, which walks the pages:
 * 1 in large folios, 6-10 in 4 KiB ones). When the whole op's range is
 * cached the loop sends it with sendfile(2) and takes no pipe at all.
 *
 * Where the loop has no descriptor to splice with, a worker still sends:
 * a direct socket without FIXED_FD_INSTALL (before 6.8, or the process
 * out of descriptors), or a direct pipe (splice_pipes.c: a process out of
 * descriptors). Into a socket the loop has as an fd, non-blocking for the
 * op, the worker's splice ends with -EAGAIN when it is full. Into a
 * direct socket it has none for, which stays blocking, the splice is
 * bounded by a pure IORING_OP_TIMEOUT (OUT_TIMEOUT_MS): at its CQE the
 * loop cancels the splice, io-wq signals the worker, and the splice
 * returns what it sent (or -ERESTARTSYS). Either way the rest of the
 * pipe waits for POLLOUT: a peer that does not read holds a worker at
 * most OUT_TIMEOUT_MS each time the socket has room again.
 *
 * Pipes come from a small per-loop cache, or, for a process out of
 * descriptors, are made in the ring's direct-descriptor table
 * (splice_pipes.c). splice_int.h holds what the three files share.
 *
 * One op is a small state machine, one step in flight at a time:
 *
 *     INSTALL: a process fd for the direct socket (then as below)
 *     the loop's own send of a cached range: sendfile(2); all sent -> END;
 *          socket full -> WAIT (POLLOUT), then sendfile(2) again
 *     the loop's pipe: splice(2) of a cached part into the pipe, or IN
 *          (the ring's file -> pipe splice, one SQE); then the loop's
 *          splice(2) of the pipe into the socket: pipe empty -> the next
 *          part, or done; socket full -> WAIT, then splice(2) again
 *     END: the loop found the file's end or an error, or sent all there
 *          was, inside submit: a NOP, so that the op completes from run()
 *     a worker sends (no descriptor for the loop):
 *        PAIR: IN linked to OUT (pipe -> socket), a non-blocking socket
 *           -> pipe empty: done (want sent), or the next part
 *           -> IN short (the file ended; an offset inside a page): the
 *              kernel cancels OUT; OUT alone sends what IN brought
 *        IN, then OUT alone with its timer, a blocking socket
 *        OUT short, -EAGAIN or stopped by its timer (the peer is not
 *           reading): POLL for POLLOUT, then OUT alone with the rest
 *
 * Each SQE's user_data names the op's record and its generation, so a
 * cancel aims at whichever step is in flight. The op's completion always
 * comes from a CQE, so from run() (backend.h rule 1).
 */
#include "splice_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>

#include "log.h"
#include "loop.h"
#include "op.h"
#include "pagecache.h"
#include "uring_util.h"

#define UD_PTR_MASK ((UINT64_C(1) << 48) - 1)
/* How long a worker's pipe -> socket splice may wait for room in a
 * blocking socket before the loop cancels it (prep_out). */
#define OUT_TIMEOUT_MS 50
#ifndef ERESTARTSYS
#define ERESTARTSYS 512 /* a worker's splice interrupted (timeout, cancel) */
#endif

/* In the user_data of a cancel, and of the timer before a cancel is
 * asked again (ur_splice_cancel): their CQEs are theirs, not the step's
 * (records are aligned, so the pointer's lowest bits are free). */
#define UD_CANCEL UINT64_C(1)
#define UD_RETRY  UINT64_C(2)
/* Both bits: the timer that stops a worker's splice into a blocking
 * socket (prep_out). */
#define UD_OUT_TIMER (UD_CANCEL | UD_RETRY)
/* How often a cancel that found nothing is asked again while the pair's
 * OUT is still to be issued, the n-th time after 1 << min(n, 6) ms: about
 * a second in all, for a worker the machine keeps from running. */
#define CANCEL_TRIES 24

static struct __kernel_timespec out_timeout = {.tv_nsec = OUT_TIMEOUT_MS * 1000000L};
static struct __kernel_timespec retry_after[] = {
    {.tv_nsec = 1000000L},  {.tv_nsec = 2000000L},  {.tv_nsec = 4000000L},
    {.tv_nsec = 8000000L},  {.tv_nsec = 16000000L}, {.tv_nsec = 32000000L},
    {.tv_nsec = 64000000L},
};

/* IORING_OP_FIXED_FD_INSTALL (6.8): a process fd for a direct descriptor.
 * Newer than liburing 2.3's enum: the kernel's number. */
#define RS_IORING_OP_FIXED_FD_INSTALL 54

struct ur_splice *ur_splice_new(ur_get_sqe_fn get_sqe, void *ctx, unsigned tag,
                                uint32_t pipe_size, uint32_t *nheld)
{
    struct ur_splice *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return NULL;
    sp->nheld = nheld ? nheld : &sp->own_nheld;
    *sp->nheld = 0;
    sp->get_sqe = get_sqe;
    sp->ctx = ctx;
    sp->tag = tag;
    sp->pipe_size = pipe_size;
    return sp;
}

void ur_splice_free(struct ur_splice *sp)
{
    if (!sp)
        return;
    sp_held_drop_all(sp);
    while (sp->live) {
        struct sp_rec *r = sp->live;
        sp->live = r->next;
        sp_sock_put(r); /* a plain socket's flags put back, an installed fd closed */
        if (r->pipe)
            sp_pipe_close(sp, r->pipe, true);
        free(r);
    }
    while (sp->free_recs) {
        struct sp_rec *r = sp->free_recs;
        sp->free_recs = r->next;
        free(r);
    }
    while (sp->cache) {
        struct sp_pipe *p = sp->cache;
        sp->cache = p->next;
        sp_pipe_close(sp, p, true);
    }
    while (sp->doomed) {
        struct sp_pipe *p = sp->doomed;
        sp->doomed = p->next;
        sp_pipe_close(sp, p, true);
    }
    free(sp);
}

static uint64_t ud_of(const struct ur_splice *sp, const struct sp_rec *r)
{
    uintptr_t p = (uintptr_t)r;
    assert((p & ~UD_PTR_MASK) == 0 && (p & (UD_CANCEL | UD_RETRY)) == 0);
    return (uint64_t)p | (uint64_t)r->gen << 48 | (uint64_t)sp->tag << 56;
}

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

/* The file -> pipe half of the next part in the loop itself, when that
 * cannot block: the pipe has a descriptor (a direct one has none) and
 * every page of the part is in the page cache (cachestat(2), Linux 6.5).
 * Then splice(2) only takes page references, a few microseconds per MiB,
 * where the same splice as an SQE costs a trip to an io-wq worker and
 * back: two context switches, and a wake-up of the loop for its CQE.
 * The bytes now in the pipe (> 0), 0 at the file's end, -errno from
 * splice(2), or -EAGAIN: not here, through the ring. */
static int in_here(struct ur_splice *sp, struct sp_rec *r, uint32_t len)
{
    const struct rs_sendfile *src = r->op->buf;
    if (sp->no_cachestat || r->pipe->direct)
        return -EAGAIN;
    uint64_t off = src->off + r->sent;
    int c = rs_range_cached(src->file_fd, off, len);
    if (c != 1) {
        /* Not all cached (or past the end: the ring's IN says how
         * much there is), or no cachestat here at all. */
        if (c == -ENOSYS || c == -EPERM)
            sp->no_cachestat = true;
        return -EAGAIN;
    }
    loff_t pos = (loff_t)off;
    ssize_t n = splice(src->file_fd, &pos, r->pipe->wr, NULL, len, SPLICE_F_NONBLOCK);
    if (n < 0)
        return errno == EAGAIN ? -EAGAIN : -errno;
    return (int)n;
}

/* The step that moves the next part: OUT alone when the part went into
 * the pipe here, the linked pair when it must go through the ring, END
 * when the file ended or failed (r->in_res says how). */
static uint8_t part_step(struct ur_splice *sp, struct sp_rec *r)
{
    uint32_t left = r->want - r->sent;
    uint32_t len = left < r->pipe->cap ? left : r->pipe->cap;
    assert(r->inpipe == 0);
    int n = in_here(sp, r, len);
    if (n == -EAGAIN) /* a blocking socket's OUT needs its timer: not linked */
        return r->nb_set ? STEP_PAIR : STEP_IN;
    if (n > 0) {
        r->inpipe = (uint32_t)n;
        return STEP_OUT;
    }
    r->in_res = n;
    return STEP_END;
}

/* The loop moves the op through its pipe itself (it has the socket as
 * r->sock, and the pipe has descriptors): what the pipe holds into the
 * socket (sp_out_here), then the next part into the pipe when it is
 * cached (in_here), until the socket is full (WAIT, a POLLOUT poll), a
 * part must come from the disk (IN: the ring's file -> pipe splice,
 * which ends by itself), or the op is done or failed (END, r->in_res
 * says how). */
uint8_t sp_pipe_here(struct ur_splice *sp, struct sp_rec *r)
{
    for (;;) {
        if (r->inpipe > 0) {
            int err = sp_out_here(sp, r);
            if (err == -EAGAIN)
                return STEP_WAIT;
            if (err < 0) {
                r->in_res = err;
                return STEP_END;
            }
        }
        if (r->sent == r->want) {
            r->in_res = 0;
            return STEP_END;
        }
        uint32_t left = r->want - r->sent;
        int n = in_here(sp, r, left < r->pipe->cap ? left : r->pipe->cap);
        if (n == -EAGAIN)
            return STEP_IN;
        if (n <= 0) {
            r->in_res = n;
            return STEP_END;
        }
        r->inpipe = (uint32_t)n;
    }
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
        assert(r->nb_set); /* a blocking socket's OUT is not linked (part_step) */
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

/* An op that goes through a pipe ends once UR_SPLICE_STEP went out
 * (ending it at a wait for room would throw away what its pipe holds, and
 * the pipe with it): it carries at most that much. */
static void pipe_sized(struct sp_rec *r)
{
    if (r->want > UR_SPLICE_STEP && r->sent < UR_SPLICE_STEP)
        r->want = UR_SPLICE_STEP;
}

int ur_splice_submit(struct ur_splice *sp, struct rs_op *op)
{
    if (op->len == 0 || !op->buf)
        return -EINVAL;
    struct sp_rec *r = sp->free_recs;
    if (r)
        sp->free_recs = r->next;
    else if (!(r = calloc(1, sizeof(*r))))
        return -ENOMEM;
    uint8_t gen = (uint8_t)(r->gen + 1);
    *r = (struct sp_rec){.op = op, .want = op->len, .gen = gen, .sock = -1};
    /* The loop sends whenever it can have the socket as a process fd: a
     * cached range with its own sendfile(2) (no pipe), any other through
     * a pipe, splicing out of it itself. Only a direct socket without
     * IORING_OP_FIXED_FD_INSTALL, or a direct pipe (no descriptor to
     * splice from), leaves the sending to io-wq workers. */
    bool can_fd = !(op->flags & RS_OPF_DIRECT) || !sp->no_install;
    if (op->flags & RS_OPF_DIRECT)
        (void)sp_sock_take(sp, r); /* held since its last op: no INSTALL */
    uint64_t now = rs_now_ms();
    bool here = can_fd && (sp_next_trusted(sp, r, now) || sp_rest_cached(sp, r, now));
    if (!here)
        pipe_sized(r);
    int err = 0;
    if (!here && !(r->pipe = sp_pipe_get(sp, &err))) {
        sp_sock_put(r);
        r->next = sp->free_recs;
        sp->free_recs = r;
        return err;
    }
    bool ok;
    if (can_fd && (here || !r->pipe->direct)) {
        ok = sp_start_here(sp, r);
    } else {
        /* io-wq sends. A plain socket is non-blocking for the op: a
         * worker's splice into it when it is full ends with -EAGAIN
         * (POLL, then the rest) instead of waiting for the peer. */
        if (!(op->flags & RS_OPF_DIRECT)) {
            r->sock = op->fd;
            (void)sp_sock_nb(r);
        } else {
            sp_sock_put(r); /* a held one: blocking again, as a worker needs */
        }
        ok = sp_issue(sp, r, r->pipe->rd < 0 ? STEP_PIPE : part_step(sp, r));
    }
    if (!ok) {
        sp_sock_put(r);
        sp_pipe_put(sp, r->pipe, r->inpipe == 0);
        r->next = sp->free_recs;
        sp->free_recs = r;
        return -EBUSY;
    }
    r->next = sp->live;
    if (sp->live)
        sp->live->prev = r;
    sp->live = r;
    sp->nlive++;
    op->bk_ptr = r;
    return 0;
}

/* An ASYNC_CANCEL of whatever r has in flight; false: no SQE. Its CQE
 * comes back flagged UD_CANCEL (cancel_cqe). */
static bool cancel_sqe(struct ur_splice *sp, struct sp_rec *r)
{
    struct io_uring_sqe *sqe = sp->get_sqe(sp->ctx, 1);
    if (!sqe)
        return false;
    io_uring_prep_cancel64(sqe, ud_of(sp, r), 0);
    io_uring_sqe_set_data64(sqe, ud_of(sp, r) | UD_CANCEL);
    return true;
}

int ur_splice_cancel(struct ur_splice *sp, struct rs_op *op)
{
    struct sp_rec *r = op->bk_ptr;
    if (!r)
        return -ENOENT;
    if (r->cancel)
        return 0;
    /* Whatever step is in flight now; one racing it to the CQ is already
     * done, and the flag ends the op at its CQE instead of the next step.
     * A poll ends at once; a splice a worker runs is interrupted (io-wq
     * signals the worker) and returns what it sent, or -ERESTARTSYS when
     * it had sent nothing: out_done() reports that as -ECANCELED. The
     * loop's own sends always have one SQE in flight too (sendfile(2)
     * itself runs inside submit or a CQE's handling, never between): an
     * INSTALL completes as it is issued, so the cancel finds nothing and
     * the flag ends the op at its CQE (the fd closed); a WAIT's poll ends
     * with -ECANCELED; either way the socket's flags go back first.
     *
     * The loop's pipe path adds IN alone (a worker's read of the file:
     * not interrupted, its CQE ends the op) and WAIT (as above).
     *
     * The pair's OUT (a worker's, into a non-blocking socket) is not in
     * flight until its IN completed, and a cancel cannot reach it
     * before: it finds IN done, or running (a worker's read of the file
     * is not interrupted). OUT then runs, and ends with -EAGAIN if the
     * socket is full, but the op would go on waiting for POLLOUT. So
     * IN's CQE asks again, and a cancel that found nothing while OUT was
     * still to be issued is asked again after a while (cancel_cqe). */
    if (!cancel_sqe(sp, r))
        return -EBUSY;
    r->cancel = true;
    return 0;
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
    pipe_sized(r);
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
    step(sp, loop, r, r->pipe->rd < 0 ? STEP_PIPE : part_step(sp, r));
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
    step(sp, loop, r, part_step(sp, r));
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
        (void)cancel_sqe(sp, r);
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
    (void)cancel_sqe(sp, r); /* its CQE is cancel_cqe's, which ignores it */
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
                (void)cancel_sqe(sp, r);
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
        step(sp, loop, r, part_step(sp, r));
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
