/* The io_uring backend: real completions.
 *
 * io_uring is two rings shared with the kernel. We write requests into the
 * submission queue (SQ) — "receive on this socket", "send these bytes" —
 * and the kernel writes results into the completion queue (CQ): bytes
 * received, bytes sent, -errno. The kernel does the IO itself, waiting for
 * readiness internally (FAST_POLL) instead of telling us about it. So where
 * the epoll backend must perform every recv/send and remember readiness,
 * this file only describes work and forwards results: cqe->res goes to the
 * core unchanged. One io_uring_enter per loop turn submits everything
 * queued during the previous turn and waits for the next completions.
 *
 * The features, each switchable with --uring-features:
 *  - multishot accept/recv: one SQE keeps producing CQEs (IORING_CQE_F_MORE)
 *    until an error, EOF, cancel or -ENOBUFS ends it; each multishot recv
 *    goes with a hang-up guard, a one-shot poll, because the recv itself
 *    can miss an EOF or reset that came before its last read (hangup.c);
 *  - buf-ring: a provided-buffer ring (built by hand with mmap and
 *    io_uring_register_buf_ring: liburing 2.3 has no io_uring_setup_buf_ring).
 *    The kernel picks a buffer only when data arrives, so idle connections
 *    hold none. It is the loop's buffer pool, and the core returns each
 *    buffer when the echo that carried it completes. An empty ring gives
 *    -ENOBUFS, which ends a multishot recv: a state, not an error (the core
 *    re-arms once buffers come back);
 *  - fixed-files: accepted sockets are direct descriptors (a private table
 *    in the ring, no fget/fput per op, no process fd used);
 *  - ring-fd: the ring's own fd is registered, saving an fget per enter;
 *  - defer-taskrun: SINGLE_ISSUER|DEFER_TASKRUN, completions are produced
 *    only when we ask for them, in our thread, in batches (else
 *    COOP_TASKRUN|TASKRUN_FLAG); with SUBMIT_ALL and a CQ 8x the SQ;
 *  - send-zc: sends of --zc-threshold bytes or more are zero-copy; the
 *    buffer is ours again only after the second, IORING_CQE_F_NOTIF CQE,
 *    which also says whether the kernel copied after all (to a loopback
 *    peer it must): such a connection gets plain sends from then on;
 *  - sqpoll (opt-in): a kernel thread polls the SQ, submission costs no
 *    syscall while it is awake.
 *  - ext-arg: a wait with a timeout passes it to io_uring_enter
 *    (IORING_ENTER_EXT_ARG, 5.11). Without it run() queues an
 *    IORING_OP_TIMEOUT SQE, which completes with the next CQE or when
 *    the time is up, and waits for one CQE (timeout_sqe_wait);
 *  - resize (6.13, DEFER_TASKRUN rings): the CQ starts at the SQ's size
 *    plus a margin and doubles whenever it has less room than a full SQ
 *    more (ring_resize.c), instead of a fixed 8x the SQ;
 *  - wait-reg (6.13, opt-in): timed waits read their timeout from a page
 *    registered with the ring instead of arguments copied in on every
 *    io_uring_enter (wait_reg.c);
 *  - shutdown-op: RS_OP_SHUTDOWN is IORING_OP_SHUTDOWN (5.11); without it
 *    shutdown(2) is called in submit() and its result carried to run() on
 *    a NOP, as for a plain socket below (a direct descriptor has no fd for
 *    shutdown(2), but direct descriptors need 5.19 anyway);
 *  - buf-recycle: without buf-ring, a single-shot recv that finds no data
 *    and waits holds no provided buffer meanwhile: the kernel recycles it.
 *    Older kernels (Debian's 5.10 among them: tools/kernels found it)
 *    keep the buffer the recv took at issue, so every idle connection pins
 *    one and, once the pool is gone, a connection with data starves for
 *    ever. There a recv first waits with IORING_OP_POLL_ADD (POLLIN) and
 *    is issued when the socket is readable: a buffer is taken only when
 *    there is data for it, at the price of an SQE and a CQE per read;
 *  - buf-inc (opt-in): the buffer ring is registered with
 *    IOU_PBUF_RING_INC (6.12), so the kernel fills a buffer a receive at a
 *    time and the core gets slices of it (rs_completion.off); bufinc.c
 *    says when such a buffer may go back into the ring;
 *  - direct-socket: outbound sockets (RS_OP_SOCKET) are direct
 *    descriptors too, made by IORING_OP_SOCKET into a slot the kernel
 *    picks, TCP_NODELAY set by the SOCKET_URING_OP_SETSOCKOPT command
 *    (6.7+; a direct socket has no fd for setsockopt(2)). Where either is
 *    missing, without fixed-files, or when the table is full (-ENFILE),
 *    RS_OP_SOCKET falls back to socket(2): a plain fd, its result carried
 *    to run() on a NOP. So one loop may hold both kinds: the kind travels
 *    with each op (RS_OPF_DIRECT), never with the loop.
 *  - direct-pipe: a sendfile's splice pipe that pipe2(2) cannot make (the
 *    process is out of descriptors) is made by IORING_OP_PIPE in the
 *    table instead (splice.c);
 *  - direct-listen (opt-in): the listening socket is a direct descriptor
 *    too, made with IORING_OP_BIND/LISTEN (listen.c), and accepts name it
 *    with IOSQE_FIXED_FILE.
 * With fixed-files and several loops, loop 0 accepts for all and passes
 * each direct descriptor to the loop with the most room (--accept=handoff,
 * IORING_OP_MSG_RING; see handoff.c): N tables, filled evenly.
 * Without buf-ring (e.g. --uring-features=none) the pool is handed over
 * with the older IORING_OP_PROVIDE_BUFFERS: the kernel still picks buffers
 * as data arrives, but each returned buffer costs an SQE of its own.
 *
 * Never IOSQE_ASYNC on sockets: it forces a worker thread where FAST_POLL
 * would wait for readiness for free.
 *
 * Files are where completions matter most. A regular file is never "not
 * ready", so readiness (epoll) has nothing to say about it, and the epoll
 * backend needs worker threads. Here a file op is one more SQE:
 * IORING_OP_OPENAT2 (RESOLVE_BENEATH checked by the kernel during the
 * walk), READ/WRITE at an offset, STATX, FSYNC, CLOSE. The kernel first tries
 * the call without blocking (a read from the page cache completes inline,
 * no thread involved) and only when it must wait for the disk hands it to
 * its own workers (io-wq); either way the loop never blocks. A read may
 * also pick a buffer from the ring, like a recv (RS_OPF_POOL_BUF). Files
 * are plain descriptors even when sockets are direct ones.
 *
 * A file sent to a socket (RS_OP_SENDFILE) has no single SQE: io_uring has
 * no sendfile. splice.c makes it from IORING_OP_SPLICE through a pipe of
 * its own, file -> pipe -> socket, which the kernel always runs in io-wq
 * workers; the essay at its top says how a full socket, a short file and
 * a cancel are handled. Sockets stay blocking for it: io_uring's own
 * sends misbehave on O_NONBLOCK ones (see there).
 *
 * This file keeps the backend's table (at the end), the buffers' way back
 * into the ring, and the direct descriptors it closes or gives back. An
 * op's way into the SQ is uring_submit.c; a CQE's way to the core, and
 * the wait of each loop turn, uring_run.c; the rest of the backend's files
 * are listed in uring_state.h.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include "uring_state.h"

struct io_uring_sqe *ur_get_sqe_flush(struct ur_state *st)
{
    struct io_uring_sqe *sqe = NULL;
    /* SQ full: push it to the kernel and take a fresh slot. The kernel may
     * refuse for a moment (-EBUSY: completions to flush first, -EAGAIN:
     * memory), so try a few times; flushing overflowed CQEs into the ring
     * (io_uring_get_events) dispatches nothing, so this is safe anywhere. */
    for (int tries = 0; !sqe && tries < 64; tries++) {
        int rc = io_uring_submit(&st->ring);
        /* The SQ is empty now: the one moment the CQ can grow. */
        if (st->resize)
            rs_cq_grow_check(&st->ring, &st->cq);
        if (st->features & UF_SQPOLL)
            io_uring_sqring_wait(&st->ring);
        else if (rc == -EBUSY || rc == -EAGAIN)
            io_uring_get_events(&st->ring);
        sqe = io_uring_get_sqe(&st->ring);
    }
    if (!sqe)
        rs_log_error("io_uring submission queue stuck full");
    return sqe;
}

/* Close a direct descriptor nobody else will: a connection handed on, or
 * one handed to us after the inbox closed. What the loop keeps for the
 * slot goes first, whatever happens next: a held socket's installed fd
 * would keep the connection open by itself. The slot is closed by an SQE,
 * batched with the turn's others; with the SQ stuck full (the kernel
 * refusing submits, ur_get_sqe_flush), by a synchronous update of the
 * table instead, so that the slot and its socket do not leak. */
void ur_close_slot(struct ur_state *st, int slot)
{
    ur_zc_fd_closed(st, slot);
    if (st->splice)
        ur_splice_release(st->splice, slot);
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (sqe) {
        io_uring_prep_close_direct(sqe, (unsigned)slot);
        io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
        return;
    }
    int none = -1;
    int rc = io_uring_register_files_update(&st->ring, (unsigned)slot, &none, 1);
    if (rc < 0)
        rs_log_error("closing direct descriptor %d: %s", slot, strerror(-rc));
}

/* An op that makes a process descriptor failed with res. The splice code
 * may hold installed fds of direct sockets between sendfile ops (up to 16
 * per loop, splice_here.c): if the process is out of descriptors (EMFILE,
 * ENFILE) and some are held, they are given back, and true says: try the
 * op once more. Once more only: none is held after this, until a
 * sendfile op installs one again. Every kind of op that makes a process
 * fd on a loop that can hold any comes here: RS_OP_OPENAT, a plain
 * RS_OP_SOCKET and the splice code's own pipe2 (an accept on such a loop
 * makes direct descriptors; holds need fixed-files), and the core's own
 * dup(2)s through give_back_fds (rs_loop_dup_fd). Only this loop's
 * holds: another loop's, in the same process, stay until its own next
 * failure or their connections' next op. */
bool ur_fds_give_back(struct ur_state *st, int32_t res)
{
    return st->splice_held != 0 && ur_splice_give_back(st->splice, res);
}

/* rs_backend_ops.give_back_fds: the same for a descriptor the core makes
 * itself (a dup(2) of a file handed to a stream: rs_loop_dup_fd). */
static bool ur_give_back_fds(struct rs_loop *loop, int err)
{
    return ur_fds_give_back(state(loop), err);
}

void ur_buf_return(struct rs_loop *loop, struct ur_state *st, uint16_t bid)
{
    if (st->inc && bid >= st->ring_bufs) {
        ur_inc_put_aside(loop, bid); /* set aside for file reads */
        return;
    }
    if (st->features & UF_BUF_RING) {
        io_uring_buf_ring_add(st->br, rs_bufpool_ptr(&loop->pool, bid), loop->pool.size,
                              bid, (int)st->br_mask, (int)st->br_pending);
        if (st->br_pos)
            st->br_pos[bid] = (uint16_t)(st->br->tail + st->br_pending);
        st->br_pending++;
        return;
    }
    /* Without a ring, each buffer goes back with an SQE of its own: the
     * cost the buffer ring (5.19) was invented to remove. */
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe) {
        rs_log_error("cannot return buffer %u: submission queue full", bid);
        return;
    }
    io_uring_prep_provide_buffers(sqe, rs_bufpool_ptr(&loop->pool, bid),
                                  (int)loop->pool.size, 1, BGID, bid);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_PROVIDE << 56 | bid);
}

/* Every case but the common one (below): a slice of a shared buffer, a
 * call the contract check refuses, a buffer a zero-copy send still reads,
 * a pool without a buffer ring. */
__attribute__((noinline)) static void buf_release_other(struct rs_loop *loop,
                                                        struct ur_state *st, uint16_t bid)
{
    if (ur_inc_ring_bid(st, bid)) {
        ur_inc_release(loop, st, bid); /* a slice of a shared buffer */
        return;
    }
    /* Checked in release builds too: a buffer added to the ring twice
     * would be filled for two connections at once. */
    if (!rs_bufpool_release_ok(&loop->pool, bid))
        return;
    if (st->zc_hold && st->zc_hold[bid]) {
        if (st->zc_release[bid]) { /* released twice while a send_zc holds it */
            loop->pool.violations++;
            rs_log_error("contract violation: buffer %u returned twice; refused", bid);
            return;
        }
        st->zc_release[bid] = 1; /* returned at the last notification */
        return;
    }
    rs_bufpool_clear_loan(&loop->pool, bid); /* checked above */
    ur_buf_return(loop, st, bid);
}

static void ur_buf_release(struct rs_loop *loop, uint16_t bid)
{
    struct ur_state *st = state(loop);
    struct rs_bufpool *pool = &loop->pool;
    /* The common case, every echo's: a whole buffer, lent (the release
     * check), held by no zero-copy send, back into the buffer ring
     * (ur_buf_return's first case). */
    if (st->br_plain && bid < pool->count && pool->held[bid] &&
        (st->zc_held == 0 || !st->zc_hold[bid])) {
        rs_bufpool_clear_loan(pool, bid);
        io_uring_buf_ring_add(st->br, rs_bufpool_ptr(pool, bid), pool->size, bid,
                              (int)st->br_mask, (int)st->br_pending);
        st->br_pending++;
        return;
    }
    buf_release_other(loop, st, bid);
}

/* A stopping loop waits for the notifications, so their buffers (and the
 * copied verdicts they carry) are settled before the statistics. */
static bool ur_busy(struct rs_loop *loop)
{
    return state(loop)->zc_inflight > 0;
}

static void ur_describe(struct rs_loop *loop, char *out, size_t outlen)
{
    struct ur_state *st = state(loop);
    char f[200];
    rs_uring_features_format(st->features, f, sizeof(f));
    if (st->iowq_max[0] || st->iowq_max[1])
        snprintf(out, outlen, "features=%s, taskrun=%s, io-wq=%u/%u", f, st->taskrun,
                 st->iowq_max[0], st->iowq_max[1]);
    else
        snprintf(out, outlen, "features=%s, taskrun=%s, io-wq=default", f, st->taskrun);
}

/* The kernel lets this process create a ring (probed once). */
static bool ur_available(char *why, size_t whylen)
{
    const struct rs_uring_support *s = rs_probe_uring_cached();
    if (!s->available)
        snprintf(why, whylen, "io_uring is unavailable: %s", s->why);
    return s->available;
}

const struct rs_backend_ops rs_backend_uring = {
    .name = "uring",
    .available = ur_available,
    .init = ur_init,
    .fini = ur_fini,
    .submit = ur_submit,
    .cancel = ur_cancel,
    .run = ur_run,
    .wake = rs_loop_wake,
    .buf_release = ur_buf_release,
    .describe = ur_describe,
    .wait_call = "io_uring_enter",
    .busy = ur_busy,
    .give_back_fds = ur_give_back_fds,
    .listen = ur_listen,
    .built_with = "liburing " RS_LIBURING_VERSION,
    .options = rs_uring_options,
    .help = rs_uring_help,
};
