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
 * (splice_pipes.c).
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
 *
 * This file starts an op (which step first), moves a cached part into the
 * pipe in the loop, and asks for a cancel; splice_sqe.c writes each
 * step's SQEs, splice_cqe.c takes their CQEs (the step after, or the op's
 * end). splice_int.h holds what the five splice*.c files share.
 */
#include "splice_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

#include "loop.h"
#include "op.h"
#include "pagecache.h"

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
uint8_t sp_part_step(struct ur_splice *sp, struct sp_rec *r)
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
        sp_pipe_sized(r);
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
        ok = sp_issue(sp, r, r->pipe->rd < 0 ? STEP_PIPE : sp_part_step(sp, r));
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
    if (!sp_cancel_sqe(sp, r))
        return -EBUSY;
    r->cancel = true;
    return 0;
}
