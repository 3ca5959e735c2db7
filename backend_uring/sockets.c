/* RS_OP_SOCKET: a new outbound TCP socket. With direct-socket it is
 * IORING_OP_SOCKET into a direct slot the kernel picks, then TCP_NODELAY
 * by the SOCKET_URING_OP_SETSOCKOPT command (a direct socket has no fd for
 * setsockopt(2)); else, or when that fails, socket(2) made at submit time
 * and delivered on a NOP's CQE (ur_done_now). */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>

#include "listener.h"
#include "uring_state.h"

/* TCP_NODELAY's value, read by the kernel when the command runs. */
static const int one = 1;

/* The fallback: a plain socket, made now. fd or -errno. */
static int plain_socket(struct rs_loop *loop, const struct rs_op *op)
{
    bool nodelay = (op->flags & RS_OPF_NODELAY) != 0;
    int fd = rs_tcp_socket(loop, (int)op->len, nodelay);
    if (ur_fds_give_back(state(loop), fd)) /* held sockets' fds given back */
        fd = rs_tcp_socket(loop, (int)op->len, nodelay);
    return fd;
}

void ur_prep_socket(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                    struct io_uring_sqe *sqe)
{
    if ((op->flags & RS_OPF_DIRECT) && st->direct_socket) {
        rs_prep_socket_alloc(sqe, (int)op->len);
        return;
    }
    ur_done_now(op, plain_socket(loop, op), sqe);
}

/* TCP_NODELAY on the new direct socket in op->bk_ptr, as a command. false:
 * no SQE free. */
static bool prep_sockopt(struct ur_state *st, struct rs_op *op)
{
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return false;
    rs_prep_setsockopt_cmd(sqe, (int)(intptr_t)op->bk_ptr, IPPROTO_TCP, TCP_NODELAY,
                           &one);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ur_ud_of(op, TAG_SOCKOPT));
    return true;
}

/* No SQE for the command right now: the op waits, and run() tries again
 * before its next wait (ur_retry_sockopts). false: no memory to wait. */
static bool park_sockopt(struct ur_state *st, struct rs_op *op)
{
    if (st->nsockopt_wait == st->sockopt_wait_cap) {
        uint32_t cap = st->sockopt_wait_cap ? st->sockopt_wait_cap * 2 : 8;
        struct rs_op **w = realloc(st->sockopt_wait, cap * sizeof(*w));
        if (!w)
            return false;
        st->sockopt_wait = w;
        st->sockopt_wait_cap = cap;
    }
    st->sockopt_wait[st->nsockopt_wait++] = op;
    return true;
}

void ur_retry_sockopts(struct ur_state *st)
{
    if (st->nsockopt_wait == 0)
        return; /* the common case; and memmove must not see a NULL array */
    uint32_t done = 0;
    while (done < st->nsockopt_wait && prep_sockopt(st, st->sockopt_wait[done]))
        done++;
    memmove(st->sockopt_wait, st->sockopt_wait + done,
            (st->nsockopt_wait - done) * sizeof(*st->sockopt_wait));
    st->nsockopt_wait -= done;
}

/* A CQE of RS_OP_SOCKET: deliver the plain fd, or take the direct slot and
 * set TCP_NODELAY on it before the core sees it. A direct socket that
 * cannot have TCP_NODELAY is not delivered (rule 9): its slot is closed and
 * a plain socket, whose setsockopt(2) reports its own failure, goes
 * instead; the first such failure is a warning. */
void ur_socket_cqe(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                   const struct io_uring_cqe *cqe, unsigned tag)
{
    if (tag == TAG_SOCKOPT) {
        int slot = (int)(intptr_t)op->bk_ptr;
        if (cqe->res >= 0) {
            rs_op_complete(loop, op, slot, RS_CF_DIRECT, 0);
            return;
        }
        if (!st->sockopt_warned) {
            st->sockopt_warned = true;
            rs_log_error("warning: SOCKET_URING_OP_SETSOCKOPT(TCP_NODELAY) on a direct "
                         "socket: %s; such sockets are replaced by plain ones",
                         strerror(-cqe->res));
        }
        ur_close_slot(st, slot);
        rs_op_complete(loop, op, plain_socket(loop, op), 0, 0);
        return;
    }
    int32_t res = cqe->res;
    if (res < 0 && res != -ECANCELED) {
        /* -ENFILE: the direct table is full; anything else the kernel
         * refuses: a plain socket may still do. */
        rs_op_complete(loop, op, plain_socket(loop, op), 0, 0);
        return;
    }
    if (res >= 0 && (op->flags & RS_OPF_NODELAY)) {
        op->bk_ptr = (void *)(intptr_t)res;
        if (prep_sockopt(st, op) || park_sockopt(st, op))
            return;
        /* Neither an SQE nor memory to wait for one: plain it is. */
        ur_close_slot(st, res);
        rs_op_complete(loop, op, plain_socket(loop, op), 0, 0);
        return;
    }
    rs_op_complete(loop, op, res, res >= 0 ? RS_CF_DIRECT : 0, 0);
}
