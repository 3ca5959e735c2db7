/* The io_uring backend, from an op to its SQE: what each kind of rs_op
 * becomes in the submission queue (ur_submit, the common plain send first
 * and kept short), its cancel (ur_cancel), and the SQEs a completion asks
 * for again (a recv after its poll or its hang-up guard, an open retried
 * once descriptors were given back). uring.c says what each feature is
 * for; uring_run.c is the other way, from a CQE to the core. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include "uring_state.h"

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
void ur_recv_after_poll(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
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
bool ur_rearm_after_hup(struct rs_loop *loop, struct ur_state *st, struct rs_op *op)
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

int ur_submit(struct rs_loop *loop, struct rs_op *op)
{
    struct ur_state *st = state(loop);
    if (__builtin_expect(st->splice_held != 0, 0))
        return submit_holding(loop, op);
    return submit_op(loop, st, op);
}

int ur_cancel(struct rs_loop *loop, struct rs_op *op)
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

/* An open that found the process out of descriptors, with held sockets'
 * fds just given back (ur_fds_give_back): the same op, same generation,
 * once more. false: no SQE, the error goes to the core. */
bool ur_reopen(struct rs_loop *loop, struct ur_state *st, struct rs_op *op)
{
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return false;
    prep_file(loop, op, sqe);
    io_uring_sqe_set_data64(sqe, ur_ud_of(op, TAG_OP));
    return true;
}
