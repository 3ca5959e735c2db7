/* The listening socket as a direct descriptor (direct-listen).
 *
 * With fixed-files every accepted socket lives in the ring's own table, not
 * among the process's descriptors; the listener was the one socket left
 * there. Linux 6.11 added IORING_OP_BIND and IORING_OP_LISTEN, so a socket
 * made by IORING_OP_SOCKET into a direct slot can now become a listener
 * without ever being a process fd: its options are set by the
 * SOCKET_URING_OP_SETSOCKOPT command (6.7), bind and listen are SQEs, and
 * accepts name it with IOSQE_FIXED_FILE. A server with both then holds no
 * socket at all in /proc/self/fd.
 *
 * What a direct listener cannot do before 6.19 is getsockname(): nothing
 * tells which port the kernel picked for port 0. The core therefore binds
 * the port first with a plain socket of its own, bound and not listening
 * (SO_REUSEADDR), reads the port from that, and closes it once every loop
 * listens there (core/server.c); a direct listener always binds an
 * explicit port. Nothing else changes: SO_REUSEPORT groups, TCP_NODELAY
 * inherited by accepted sockets and IPV6_V6ONLY are socket options like
 * any other.
 *
 * Each step runs alone and is waited for, once per loop at start-up (a
 * handful of enters, before the loop's first run()): no chain to break
 * when the SQ is small, and the first failure is the one reported. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "uring_state.h"

/* The options' value, read by the kernel when each command runs. */
static const int one = 1;

/* Tag the step prepared in sqe, submit it with whatever is queued, and
 * wait for its CQE: its result. CQEs of anything else queued at init
 * (buffers handed to the kernel) go where run() would send them. */
static int run_step(struct rs_loop *loop, struct ur_state *st, struct io_uring_sqe *sqe)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_LISTEN << 56);
    for (;;) {
        int rc = io_uring_submit_and_wait(&st->ring, 1);
        if (rc < 0 && rc != -EINTR)
            return rc;
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&st->ring, &cqe) == 0) {
            struct io_uring_cqe c = *cqe;
            io_uring_cqe_seen(&st->ring, cqe);
            if ((unsigned)(c.user_data >> 56) == TAG_LISTEN)
                return c.res;
            ur_dispatch_cqe(loop, st, &c);
        }
    }
}

static int set_option(struct rs_loop *loop, struct ur_state *st, int slot, int level,
                      int name, const int *val)
{
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return -EBUSY;
    rs_prep_setsockopt_cmd(sqe, slot, (uint32_t)level, (uint32_t)name, val);
    sqe->flags |= IOSQE_FIXED_FILE;
    return run_step(loop, st, sqe);
}

/* The options, bind and listen on the new socket in slot: 0 or -errno. */
static int make_listener(struct rs_loop *loop, struct ur_state *st, int slot,
                         const struct sockaddr *addr, uint32_t addrlen, unsigned flags,
                         int backlog)
{
    /* The value stays put until run_step has the setsockopt's CQE. */
    const int lowat = (int)loop->cfg->notsent_lowat;
    const struct {
        int level, name;
        bool on;
        const int *val;
    } opts[] = {
        {SOL_SOCKET, SO_REUSEADDR, true, &one},
        {SOL_SOCKET, SO_REUSEPORT, flags & RS_LISTEN_REUSEPORT, &one},
        {IPPROTO_TCP, TCP_NODELAY, flags & RS_LISTEN_NODELAY, &one},
        {IPPROTO_TCP, TCP_NOTSENT_LOWAT, lowat > 0, &lowat},
        {IPPROTO_IPV6, IPV6_V6ONLY, flags & RS_LISTEN_V6ONLY, &one},
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        int rc = opts[i].on ? set_option(loop, st, slot, opts[i].level, opts[i].name,
                                         opts[i].val)
                            : 0;
        if (rc < 0)
            return rc;
    }
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return -EBUSY;
    rs_prep_bind(sqe, slot, addr, addrlen);
    sqe->flags |= IOSQE_FIXED_FILE;
    int rc = run_step(loop, st, sqe);
    if (rc < 0)
        return rc;
    if (!(sqe = ur_get_sqe(st)))
        return -EBUSY;
    rs_prep_listen(sqe, slot, backlog);
    sqe->flags |= IOSQE_FIXED_FILE;
    return run_step(loop, st, sqe);
}

int ur_listen(struct rs_loop *loop, const struct sockaddr *addr, uint32_t addrlen,
              unsigned flags, int backlog)
{
    struct ur_state *st = state(loop);
    if (!(loop->caps & RS_CAP_LISTEN_DIRECT))
        return -EOPNOTSUPP;
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    if (!sqe)
        return -EBUSY;
    rs_prep_socket_alloc(sqe, addr->sa_family);
    int slot = run_step(loop, st, sqe);
    if (slot < 0)
        return slot;
    int rc = make_listener(loop, st, slot, addr, addrlen, flags, backlog);
    if (rc < 0) {
        ur_close_slot(st, slot);
        io_uring_submit(&st->ring);
        return rc;
    }
    return slot;
}
