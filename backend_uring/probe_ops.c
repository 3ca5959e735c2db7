/* The io_uring probe's trials of operations on a loopback connection:
 * multishot accept and recv (with a provided-buffer ring), accept into a
 * direct slot, send_zc and its notification, IORING_OP_SOCKET and the
 * setsockopt command, IORING_OP_PIPE, a listener made by IORING_OP_BIND/
 * LISTEN, and whether a waiting recv holds a provided buffer. Each runs
 * the op the way the backend will and checks what comes back, so a
 * kernel that knows an opcode but behaves differently is caught. Built
 * only with liburing (RS_HAVE_URING); backend_uring/probe_uring.c decides
 * the order and records the findings.
 */
#include "probe_trials.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uring_util.h"

static const char ping[] = "ringserve-probe";

/* --- operations on a loopback connection --- */

/* One multishot accept SQE must yield two connections, both flagged MORE
 * (the request stays armed). Ring exit cancels it afterwards. */
static bool accept_twice(struct io_uring *ring, int lfd, const struct sockaddr_in *addr)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    int cfd[2] = {-1, -1};
    int got = 0;
    struct cqe_copy c;

    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    if (io_uring_submit(ring) != 1)
        return false;
    for (int i = 0; i < 2; i++)
        cfd[i] = probe_client_connect(addr);
    while (got < 2 && probe_next_cqe(ring, &c) == 0 && c.res >= 0) {
        close(c.res);
        if (!(c.flags & IORING_CQE_F_MORE))
            break;
        got++;
    }
    probe_fd_close(&cfd[0]);
    probe_fd_close(&cfd[1]);
    return got == 2;
}

bool probe_try_multishot_accept(void)
{
    struct io_uring ring;
    struct sockaddr_in addr;
    int lfd;
    bool ok = false;

    if (!probe_ring_open(&ring))
        return false;
    lfd = probe_listener_open(&addr);
    if (lfd >= 0)
        ok = accept_twice(&ring, lfd, &addr);
    io_uring_queue_exit(&ring);
    probe_fd_close(&lfd);
    return ok;
}

/* Two messages through one multishot recv: each must arrive in a provided
 * buffer (F_BUFFER) holding exactly the bytes sent, with the recv still
 * armed (F_MORE). */
static bool recv_twice(struct io_uring *ring, struct buf_ring *b, struct conn_pair *p)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    const unsigned want = IORING_CQE_F_BUFFER | IORING_CQE_F_MORE;
    struct cqe_copy c;

    io_uring_prep_recv_multishot(sqe, p->sfd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BR_GROUP;
    if (io_uring_submit(ring) != 1)
        return false;
    for (int round = 0; round < 2; round++) {
        unsigned bid;

        if (send(p->cfd, ping, sizeof(ping), MSG_NOSIGNAL) != (ssize_t)sizeof(ping))
            return false;
        if (probe_next_cqe(ring, &c) < 0 || c.res != (int)sizeof(ping) ||
            (c.flags & want) != want)
            return false;
        bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
        if (bid >= BR_COUNT || memcmp(b->data[bid], ping, sizeof(ping)) != 0)
            return false;
    }
    return true;
}

bool probe_try_multishot_recv(void)
{
    struct io_uring ring;
    struct buf_ring b = {.br = NULL};
    struct conn_pair p = {-1, -1, -1};
    bool ok = false;

    if (!probe_ring_open(&ring))
        return false;
    if (probe_buf_ring_setup(&ring, &b, 0) == 0 && probe_pair_open(&p))
        ok = recv_twice(&ring, &b, &p);
    io_uring_queue_exit(&ring);
    probe_pair_close(&p);
    probe_buf_ring_free(&b);
    return ok;
}

/* Accept into a slot the kernel allocates in the sparse table, then close
 * it with close_direct: that succeeds only if the slot really holds a file.
 *
 * liburing 2.3's io_uring_prep_accept_direct() adds 1 to the index, which
 * turns IORING_FILE_INDEX_ALLOC into 0 = "not direct": a plain accept that
 * returns an fd. Set the raw field instead. */
static bool accept_direct_once(struct io_uring *ring, int lfd,
                               const struct sockaddr_in *addr)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;
    int cfd;
    bool ok;

    rs_prep_accept_alloc(sqe, lfd);
    if (io_uring_submit(ring) != 1)
        return false;
    cfd = probe_client_connect(addr);
    ok = probe_next_cqe(ring, &c) == 0 && c.res >= 0 && c.res < SPARSE_SLOTS;
    if (ok) {
        sqe = io_uring_get_sqe(ring);
        io_uring_prep_close_direct(sqe, (unsigned)c.res);
        ok = io_uring_submit(ring) == 1 && probe_next_cqe(ring, &c) == 0 && c.res == 0;
    }
    probe_fd_close(&cfd);
    return ok;
}

bool probe_try_accept_direct(void)
{
    struct io_uring ring;
    struct sockaddr_in addr;
    int lfd = -1;
    bool ok = false;

    if (!probe_ring_open(&ring))
        return false;
    if (io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0)
        lfd = probe_listener_open(&addr);
    if (lfd >= 0)
        ok = accept_direct_once(&ring, lfd, &addr);
    io_uring_queue_exit(&ring);
    probe_fd_close(&lfd);
    return ok;
}

/* send_zc completes twice: the result (flagged MORE), then a notification
 * (F_NOTIF) once the kernel no longer needs the buffer. A low
 * RLIMIT_MEMLOCK can make the first one -ENOMEM. */
static bool send_zc_once(struct io_uring *ring, struct conn_pair *p)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;

    io_uring_prep_send_zc(sqe, p->cfd, ping, sizeof(ping), MSG_NOSIGNAL, 0);
    if (io_uring_submit(ring) != 1)
        return false;
    if (probe_next_cqe(ring, &c) < 0 || c.res != (int)sizeof(ping) ||
        !(c.flags & IORING_CQE_F_MORE))
        return false;
    return probe_next_cqe(ring, &c) == 0 && (c.flags & IORING_CQE_F_NOTIF);
}

bool probe_try_send_zc(void)
{
    return probe_on_pair(send_zc_once);
}

/* IORING_OP_SOCKET into a slot the kernel picks (*slot), in a sparse
 * table. 0 or -errno. */
static int socket_direct_once(struct io_uring *ring, int *slot)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;

    rs_prep_socket_alloc(sqe, AF_INET);
    if (io_uring_submit(ring) != 1 || probe_next_cqe(ring, &c) < 0)
        return -EIO;
    if (c.res < 0)
        return c.res;
    *slot = c.res;
    return c.res < SPARSE_SLOTS ? 0 : -ERANGE;
}

/* SOCKET_URING_OP_SETSOCKOPT(TCP_NODELAY) on fd (fixed: a direct slot).
 * The command's result. */
static int sockopt_cmd_once(struct io_uring *ring, int fd, bool fixed)
{
    static const int one = 1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;

    rs_prep_setsockopt_cmd(sqe, fd, IPPROTO_TCP, TCP_NODELAY, &one);
    if (fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
    if (io_uring_submit(ring) != 1 || probe_next_cqe(ring, &c) < 0)
        return -EIO;
    return c.res;
}

/* A direct socket, and TCP_NODELAY set on it by command: the command must
 * succeed on the direct slot, and on a plain socket getsockopt(2) must
 * then read the option back (a probe bit alone says neither). Fills both
 * findings. */
void probe_try_socket_direct(struct rs_uring_support *s)
{
    struct io_uring ring;
    int slot = -1, fd = -1, v = 0;
    socklen_t vlen = sizeof(v);

    if (!probe_ring_open(&ring))
        return;
    if (io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0)
        s->socket_direct = socket_direct_once(&ring, &slot) == 0;
    if (s->socket_direct) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        s->sockopt_cmd = fd >= 0 && sockopt_cmd_once(&ring, slot, true) == 0 &&
                         sockopt_cmd_once(&ring, fd, false) == 0 &&
                         getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vlen) == 0 &&
                         v != 0;
    }
    io_uring_queue_exit(&ring); /* closes the slot with the table */
    probe_fd_close(&fd);
}

/* IORING_OP_PIPE into two kernel-chosen direct slots: the op must succeed
 * and name two different slots of the table. */
bool probe_try_pipe_direct(void)
{
    struct io_uring ring;
    int fds[2] = {-1, -1};
    bool ok = false;

    if (!probe_ring_open(&ring))
        return false;
    if (io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        rs_prep_pipe_alloc(sqe, fds, O_NONBLOCK);
        ok = probe_run_one(&ring) == 0 && fds[0] >= 0 && fds[0] < SPARSE_SLOTS &&
             fds[1] >= 0 && fds[1] < SPARSE_SLOTS && fds[0] != fds[1];
    }
    io_uring_queue_exit(&ring); /* closes the slots with the table */
    return ok;
}

/* A listener made only of ring ops: IORING_OP_SOCKET into a direct slot,
 * SO_REUSEADDR by command, IORING_OP_BIND, IORING_OP_LISTEN. It binds the
 * port a plain socket holds (bound, not listening, SO_REUSEADDR: a direct
 * socket has no getsockname before 6.19), and must then accept a
 * connection made to that port. */
static bool listen_direct_once(struct io_uring *ring, int *holder, int *cfd)
{
    static const int one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int slot = -1;
    struct io_uring_sqe *sqe;

    *holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*holder < 0 || setsockopt(*holder, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(*holder, (struct sockaddr *)&addr, sizeof(addr)) ||
        getsockname(*holder, (struct sockaddr *)&addr, &len))
        return false;
    if (socket_direct_once(ring, &slot) < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    rs_prep_setsockopt_cmd(sqe, slot, SOL_SOCKET, SO_REUSEADDR, &one);
    sqe->flags |= IOSQE_FIXED_FILE;
    if (probe_run_one(ring) < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    rs_prep_bind(sqe, slot, &addr, sizeof(addr));
    sqe->flags |= IOSQE_FIXED_FILE;
    if (probe_run_one(ring) < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    rs_prep_listen(sqe, slot, 8);
    sqe->flags |= IOSQE_FIXED_FILE;
    if (probe_run_one(ring) < 0)
        return false;
    *cfd = probe_client_connect(&addr);
    if (*cfd < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    rs_prep_accept_alloc(sqe, slot);
    sqe->flags |= IOSQE_FIXED_FILE;
    int res = probe_run_one(ring);
    return res >= 0 && res < SPARSE_SLOTS;
}

bool probe_try_listen_direct(void)
{
    struct io_uring ring;
    int holder = -1, cfd = -1;
    bool ok = false;

    if (!probe_ring_open(&ring))
        return false;
    if (io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0)
        ok = listen_direct_once(&ring, &holder, &cfd);
    io_uring_queue_exit(&ring);
    probe_fd_close(&cfd);
    probe_fd_close(&holder);
    return ok;
}

/* A single-shot recv with IOSQE_BUFFER_SELECT from IORING_OP_PROVIDE_BUFFERS
 * buffers finds no data and waits. Does it hold a buffer meanwhile? Provide
 * one, arm the recv on an idle connection, then remove one buffer from the
 * group: 1 removed if the buffer is still there (the kernel put it back when
 * the recv went to wait), -ENOENT if the waiting recv keeps it. On such a
 * kernel every idle connection pins a buffer of the pool. */
static bool buf_recycle_once(struct io_uring *ring, struct conn_pair *p)
{
    static char buf[BR_SIZE];
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;

    io_uring_prep_provide_buffers(sqe, buf, BR_SIZE, 1, BR_GROUP, 0);
    if (io_uring_submit(ring) != 1 || probe_next_cqe(ring, &c) < 0 || c.res < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv(sqe, p->sfd, NULL, BR_SIZE, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BR_GROUP;
    if (io_uring_submit(ring) != 1) /* issued here: no data, so it waits */
        return false;
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_remove_buffers(sqe, 1, BR_GROUP);
    return io_uring_submit(ring) == 1 && probe_next_cqe(ring, &c) == 0 && c.res == 1;
}

bool probe_try_buf_recycle(void)
{
    return probe_on_pair(buf_recycle_once);
}
