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

int ur_prep_send(struct rs_loop *loop, struct ur_state *st, struct rs_op *op)
{
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return -EBUSY;
    int more = (op->flags & RS_OPF_MORE) ? MSG_MORE : 0;
    if (op->flags & RS_OPF_MSG) {
        /* Several queued chunks in one SQE (the kernel copies the msghdr
         * when it prepares the request; ours stays valid anyway). */
        io_uring_prep_sendmsg(sqe, op->fd, (const struct msghdr *)op->buf,
                              MSG_NOSIGNAL | more);
        io_uring_sqe_set_data64(sqe, ur_ud_of(op, TAG_OP));
        ur_set_fd(op, sqe);
        return 0;
    }
    bool zc = st->zc_enabled && op->len >= st->opts.zc_threshold && !more &&
              ur_prep_send_zc(loop, st, op, sqe);
    if (!zc) {
        io_uring_prep_send(sqe, op->fd, op->buf, op->len, MSG_NOSIGNAL | more);
        io_uring_sqe_set_data64(sqe, ur_ud_of(op, TAG_OP));
    }
    ur_set_fd(op, sqe);
    return 0;
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

/* File ops: plain descriptors, never IOSQE_FIXED_FILE. */
static void prep_file(struct rs_loop *loop, struct rs_op *op, struct io_uring_sqe *sqe)
{
    struct rs_file_op *f = rs_file_op_of(op);
    switch (op->kind) {
    case RS_OP_OPENAT:
        /* struct rs_open_how is laid out as struct open_how; the kernel
         * copies it at submission. */
        io_uring_prep_openat2(sqe, op->fd, f->path, (struct open_how *)(void *)&f->how);
        break;
    case RS_OP_READ:
        if ((op->flags & RS_OPF_POOL_BUF) && state(loop)->inc) {
            ur_inc_prep_read(loop, op, sqe); /* never from a buf-inc ring */
        } else if (op->flags & RS_OPF_POOL_BUF) {
            uint32_t len =
                op->len && op->len < loop->pool.size ? op->len : loop->pool.size;
            io_uring_prep_read(sqe, op->fd, NULL, len, f->off);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = BGID;
        } else {
            io_uring_prep_read(sqe, op->fd, f->dst, op->len, f->off);
        }
        break;
    case RS_OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, op->len, f->off);
        break;
    case RS_OP_STATX:
        io_uring_prep_statx(sqe, op->fd, f->path, f->at_flags, f->mask, f->stx);
        break;
    case RS_OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd,
                            op->len == RS_FSYNC_DATA ? IORING_FSYNC_DATASYNC : 0);
        break;
    }
}

/* Closing a direct descriptor removes it from the ring's table, but the
 * socket lives on while any request issued before the removal is still in
 * flight: up to at least Linux 6.12 those pin the whole table generation,
 * and a multishot accept or another connection's multishot recv stays in
 * flight for ever. The peer then saw no FIN until some unrelated request
 * ended (tools/kernels found it on 6.1 and 6.12: an idle-closed client got
 * its EOF seconds late). So shut the socket down first, in a hard link (the
 * close runs even when the shutdown fails, e.g. ENOTCONN after a reset):
 * the FIN goes out now, whenever the file itself is freed. Returns the SQE
 * for the close: `sqe` itself when no second one is free (then as before). */
static struct io_uring_sqe *prep_shutdown_before_close(struct ur_state *st,
                                                       const struct rs_op *op,
                                                       struct io_uring_sqe *sqe)
{
    if (io_uring_sq_space_left(&st->ring) == 0)
        return sqe;
    io_uring_prep_shutdown(sqe, op->fd, SHUT_RDWR);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    return ur_get_sqe(st);
}

/* RS_OPF_RESET: abort the connection, then close. SO_LINGER {1, 0} would
 * need a setsockopt command on a direct descriptor (6.7+), and its reset
 * goes out only when the file is freed, which in-flight requests of other
 * connections delay on kernels up to at least 6.12 (see above). connect(2)
 * to an AF_UNSPEC address instead "dissolves the association" (connect(2)):
 * for TCP the kernel runs tcp_disconnect(), which sends the reset at once
 * from any synchronised state, on every kernel with IORING_OP_CONNECT
 * (5.5+), plain fd or direct descriptor alike. Hard-linked: the close runs
 * whatever the connect returns. The caller checked there is room for the
 * second SQE; returns it. */
static const struct sockaddr unspec_addr = {.sa_family = AF_UNSPEC};

static struct io_uring_sqe *prep_reset_before_close(struct ur_state *st,
                                                    const struct rs_op *op,
                                                    struct io_uring_sqe *sqe)
{
    io_uring_prep_connect(sqe, op->fd, &unspec_addr, sizeof(unspec_addr));
    ur_set_fd(op, sqe);
    sqe->flags |= IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    return ur_get_sqe(st);
}

static void prep_recv(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                      struct io_uring_sqe *sqe, bool multi)
{
    /* Buffer ring: the kernel chooses the buffer when data arrives. */
    if (multi && (st->features & UF_MULTISHOT_RECV))
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
    else
        io_uring_prep_recv(sqe, op->fd, NULL, loop->pool.size, 0);
    /* Bundles: one CQE may fill several buffers in a row. */
    if (st->features & UF_BUNDLE)
        sqe->ioprio |= IORING_RECVSEND_BUNDLE;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    ur_set_fd(op, sqe);
}

/* The POLLIN of a recv without buf-recycle came: now the recv, which finds
 * the data at once and so holds its buffer only while there is data. An
 * error (-ECANCELED...) or a cancel asked meanwhile ends the op instead. */
static void recv_after_poll(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                            int32_t res)
{
    op->bk_flags &= ~(unsigned)BKF_POLL_FIRST;
    if (res < 0 || (op->bk_flags & BKF_CANCEL_ASKED)) {
        rs_op_complete(loop, op, res < 0 ? res : -ECANCELED, 0, 0);
        return;
    }
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe) {
        /* as when the pool is empty: the core arms the recv again */
        rs_op_complete(loop, op, -ENOBUFS, 0, 0);
        return;
    }
    prep_recv(loop, st, op, sqe, false);
    io_uring_sqe_set_data64(sqe, ur_ud_of(op, TAG_OP));
}

/* A multishot recv its hang-up guard cancelled (ur_hup_cqe): the same op,
 * same generation, armed again with a guard of its own. false: no SQE, the
 * -ECANCELED goes to the core, which arms a new recv itself. */
static bool rearm_after_hup(struct rs_loop *loop, struct ur_state *st, struct rs_op *op)
{
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return false;
    prep_recv(loop, st, op, sqe, true);
    io_uring_sqe_set_data64(sqe, ur_ud_of(op, TAG_OP));
    ur_hup_arm(st, op);
    return true;
}

/* Every op but a send (ur_submit). Kept out of line: inlined, its many
 * cases would make every send save and restore the registers they use. */
__attribute__((noinline)) static int submit_other(struct rs_loop *loop,
                                                  struct ur_state *st, struct rs_op *op)
{
    if (op->kind == RS_OP_SENDFILE)
        return st->splice ? ur_splice_submit(st->splice, op) : -EOPNOTSUPP;
    if (op->kind == RS_OP_ACCEPT && op->fd == RS_FD_INBOX) {
        /* Nothing to submit: the other loops' MSG_RINGs post to our CQ. */
        if (!(loop->caps & RS_CAP_HANDOFF) || st->inbox)
            return -EINVAL;
        st->inbox = op;
        return 0;
    }
    if (rs_op_is_file(op) && !(loop->caps & RS_CAP_FILE_NATIVE))
        return -EOPNOTSUPP; /* a kernel older than 5.6 */
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return -EBUSY;
    bool multi = op->flags & RS_OPF_MULTISHOT;
    switch (op->kind) {
    case RS_OP_ACCEPT:
        /* With fixed-files the accepted socket goes straight into the
         * ring's table; the listener is a plain fd, or a direct one too
         * (direct-listen, listen.c). */
        if (multi && (st->features & UF_MULTISHOT_ACCEPT)) {
            if (st->fixed)
                io_uring_prep_multishot_accept_direct(sqe, op->fd, NULL, NULL, 0);
            else
                io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
        } else if (st->fixed) {
            rs_prep_accept_alloc(sqe, op->fd);
        } else {
            io_uring_prep_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
        }
        if (st->fixed)
            op->bk_flags |= BKF_KIND_CQE; /* its result is a direct descriptor */
        ur_set_fd(op, sqe);
        break;
    case RS_OP_RECV:
        if (!(st->features & (UF_BUF_RING | UF_BUF_RECYCLE))) {
            /* a waiting recv would pin its buffer: wait for data first */
            io_uring_prep_poll_add(sqe, op->fd, POLLIN);
            op->bk_flags |= BKF_POLL_FIRST;
            ur_set_fd(op, sqe);
            break;
        }
        prep_recv(loop, st, op, sqe, multi);
        break;
    case RS_OP_SHUTDOWN:
        if ((st->features & UF_SHUTDOWN_OP) || (op->flags & RS_OPF_DIRECT)) {
            io_uring_prep_shutdown(sqe, op->fd, SHUT_WR);
            ur_set_fd(op, sqe);
        } else {
            ur_done_now(op, shutdown(op->fd, SHUT_WR) == 0 ? 0 : -errno, sqe);
        }
        break;
    case RS_OP_CONNECT:
        /* The kernel waits for the handshake itself (no EINPROGRESS here):
         * the CQE carries connect(2)'s final result. */
        io_uring_prep_connect(sqe, op->fd, (const struct sockaddr *)op->buf,
                              (socklen_t)op->len);
        ur_set_fd(op, sqe);
        break;
    case RS_OP_HANDOFF: {
        const struct rs_loop *to = op->buf;
        if (!(loop->caps & RS_CAP_HANDOFF) || to->ops != loop->ops || to == loop)
            return -EINVAL;
        rs_prep_msg_send_fd(sqe, state((struct rs_loop *)to)->ring.ring_fd,
                            (unsigned)op->fd, (uint64_t)TAG_INBOX << 56);
        op->bk_flags |= BKF_KIND_CQE;
        break;
    }
    case RS_OP_SOCKET:
        op->bk_flags |= BKF_KIND_CQE;
        ur_prep_socket(loop, st, op, sqe);
        break;
    case RS_OP_CLOSE:
        if (op->flags & RS_OPF_RESET) {
            /* The reset needs an SQE of its own: without one, refuse
             * (the core retries) rather than close with a FIN. */
            if (io_uring_sq_space_left(&st->ring) == 0) {
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
                return -EBUSY;
            }
            sqe = prep_reset_before_close(st, op, sqe);
        } else if (op->flags & RS_OPF_DIRECT) {
            sqe = prep_shutdown_before_close(st, op, sqe);
        }
        if (ur_zc_kind_ok(st, op))
            ur_zc_fd_closed(st, op->fd);
        if (op->flags & RS_OPF_DIRECT) {
            io_uring_prep_close_direct(sqe, (unsigned)op->fd);
        } else {
            io_uring_prep_close(sqe, op->fd);
        }
        break;
    case RS_OP_OPENAT:
        op->bk_flags |= BKF_KIND_CQE; /* out of descriptors: once more */
        prep_file(loop, op, sqe);
        break;
    case RS_OP_READ:
    case RS_OP_WRITE:
    case RS_OP_STATX:
    case RS_OP_FSYNC:
        prep_file(loop, op, sqe);
        break;
    default:
        /* The SQE is taken: left as it is, the kernel would run whatever
         * it held last. A refused op must leave no trace. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
        return -EINVAL;
    }
    io_uring_sqe_set_data64(sqe, ur_ud_of(op, TAG_OP));
    if (op->kind == RS_OP_RECV && multi && (st->features & UF_MULTISHOT_RECV))
        ur_hup_arm(st, op);
    return 0;
}

/* A plain send (one buffer, no MSG_MORE, below the zero-copy threshold):
 * an echo's every reply. The SQE is written whole, as io_uring_prep_send
 * would leave it (every field it sets, zero where it zeroes), in a few
 * wide stores instead of one per field. */
static inline void prep_plain_send(struct io_uring_sqe *sqe, const struct rs_op *op)
{
    *sqe = (struct io_uring_sqe){
        .opcode = IORING_OP_SEND,
        .flags = (op->flags & RS_OPF_DIRECT) ? IOSQE_FIXED_FILE : 0,
        .fd = op->fd,
        .addr = (uint64_t)(uintptr_t)op->buf,
        .len = op->len,
        .msg_flags = MSG_NOSIGNAL,
        .user_data = ur_ud_of((struct rs_op *)op, TAG_OP),
    };
}

/* An op's SQE (ur_submit: what the splice code holds is dealt with). */
static inline int submit_op(struct rs_loop *loop, struct ur_state *st, struct rs_op *op)
{
    /* Most submissions are sends, most of them plain: straight to their
     * SQE, without the switch over every other kind. A send never has a
     * hang-up guard (BKF_HUP: multishot recvs only). */
    if (op->kind == RS_OP_SEND) {
        assert(!(op->bk_flags & BKF_HUP));
        op->bk_gen++;
        op->bk_flags = 0;
        if (!(op->flags & (RS_OPF_MSG | RS_OPF_MORE)) && op->len < st->plain_send_max) {
            struct io_uring_sqe *sqe = ur_get_sqe(st);
            if (!sqe)
                return -EBUSY;
            prep_plain_send(sqe, op);
            return 0;
        }
        return ur_prep_send(loop, st, op);
    }
    if (op->bk_flags & BKF_HUP)
        ur_hup_forget(op); /* a guard of the op's previous life */
    op->bk_gen++;
    op->bk_flags = 0;
    return submit_other(loop, st, op);
}

/* ur_submit while the splice code holds sockets between sendfile ops: a
 * socket the loop keeps as it made it for those is blocking again before
 * a send, and given back before anything else but a receive. Held
 * sockets are direct descriptors, and every op on one says so: a plain
 * fd that only has a held slot's number (a file's, the root
 * directory's) must not take the hold away. Out of line, so that the
 * common case pays one test of splice_held and no register saved for
 * this call. */
__attribute__((noinline, cold)) static int submit_holding(struct rs_loop *loop,
                                                          struct rs_op *op)
{
    struct ur_state *st = state(loop);
    if (op->flags & RS_OPF_DIRECT) { /* a plain fd is never a held socket */
        if (op->kind == RS_OP_SEND)
            ur_splice_unflag(st->splice, op->fd);
        else if (op->kind != RS_OP_SENDFILE && op->kind != RS_OP_RECV)
            ur_splice_release(st->splice, op->fd);
    }
    return submit_op(loop, st, op);
}

static int ur_submit(struct rs_loop *loop, struct rs_op *op)
{
    struct ur_state *st = state(loop);
    if (__builtin_expect(st->splice_held != 0, 0))
        return submit_holding(loop, op);
    return submit_op(loop, st, op);
}

static int ur_cancel(struct rs_loop *loop, struct rs_op *op)
{
    struct ur_state *st = state(loop);
    if (op->kind == RS_OP_SENDFILE)
        return st->splice ? ur_splice_cancel(st->splice, op) : -ENOENT;
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return -EBUSY;
    if (op == st->inbox) {
        /* Its -ECANCELED comes from run(), through a NOP's CQE. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, (uint64_t)TAG_INBOX_END << 56);
        return 0;
    }
    op->bk_flags |= BKF_CANCEL_ASKED;
    uint64_t target = ur_ud_of(op, TAG_OP);
    if (op->bk_flags & BKF_ZC)
        target = (uint64_t)(uintptr_t)op->bk_ptr | (uint64_t)TAG_ZC << 56;
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    return 0;
}

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

/* An open that found the process out of descriptors, with held sockets'
 * fds just given back (ur_fds_give_back): the same op, same generation,
 * once more. false: no SQE, the error goes to the core. */
static bool reopen(struct rs_loop *loop, struct ur_state *st, struct rs_op *op)
{
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return false;
    prep_file(loop, op, sqe);
    io_uring_sqe_set_data64(sqe, ur_ud_of(op, TAG_OP));
    return true;
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
        recv_after_poll(loop, st, op, cqe->res);
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
        return reopen(loop, st, op);
    if (op->kind == RS_OP_HANDOFF && cqe->res >= 0)
        ur_close_slot(st, op->fd); /* the other ring has its own reference now */
    if ((op->bk_flags & BKF_HUP) && !(cqe->flags & IORING_CQE_F_MORE))
        ur_hup_end(st, op);
    if ((op->bk_flags & BKF_HUP_REARM) && !(cqe->flags & IORING_CQE_F_MORE)) {
        op->bk_flags &= (uint8_t)~BKF_HUP_REARM;
        if (cqe->res == -ECANCELED && !(op->bk_flags & BKF_CANCEL_ASKED) &&
            rearm_after_hup(loop, st, op))
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

static int ur_run(struct rs_loop *loop, int timeout_ms)
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
