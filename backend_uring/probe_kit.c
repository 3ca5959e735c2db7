/* What the io_uring probe's trials share (backend_uring/probe_rings.c,
 * probe_ops.c): a small ring, a wait for one completion that cannot hang,
 * loopback sockets and connections, and a provided-buffer ring built by
 * hand. Every helper cleans up what it made, so a trial that fails half-way
 * leaves nothing behind. Built only with liburing (RS_HAVE_URING).
 */
#include "probe_trials.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uring_util.h"

int probe_next_cqe(struct io_uring *ring, struct cqe_copy *out)
{
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = WAIT_NS};
    struct io_uring_cqe *cqe;
    int ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);

    if (ret < 0)
        return ret;
    out->res = cqe->res;
    out->flags = cqe->flags;
    io_uring_cqe_seen(ring, cqe);
    return 0;
}

int probe_run_one(struct io_uring *ring)
{
    struct cqe_copy c;

    if (io_uring_submit(ring) != 1 || probe_next_cqe(ring, &c) < 0)
        return -EIO;
    return c.res;
}

bool probe_ring_open(struct io_uring *ring)
{
    return io_uring_queue_init(RING_ENTRIES, ring, 0) == 0;
}

/* --- loopback sockets --- */

int probe_listener_open(struct sockaddr_in *addr)
{
    socklen_t len = sizeof(*addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, 8) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* On loopback the handshake completes inside connect(), before any accept. */
int probe_client_connect(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

void probe_fd_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

bool probe_pair_open(struct conn_pair *p)
{
    struct sockaddr_in addr;

    p->cfd = p->sfd = -1;
    p->lfd = probe_listener_open(&addr);
    if (p->lfd >= 0)
        p->cfd = probe_client_connect(&addr);
    if (p->cfd >= 0)
        p->sfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    return p->sfd >= 0;
}

void probe_pair_close(struct conn_pair *p)
{
    probe_fd_close(&p->sfd);
    probe_fd_close(&p->cfd);
    probe_fd_close(&p->lfd);
}

bool probe_on_pair(bool (*once)(struct io_uring *, struct conn_pair *))
{
    struct io_uring ring;
    struct conn_pair p = {-1, -1, -1};
    bool ok = false;

    if (!probe_ring_open(&ring))
        return false;
    if (probe_pair_open(&p))
        ok = once(&ring, &p);
    io_uring_queue_exit(&ring);
    probe_pair_close(&p);
    return ok;
}

/* --- provided buffer ring, built by hand (liburing 2.3 lacks
 * io_uring_setup_buf_ring): mmap the ring, register it, publish buffers. */

int probe_buf_ring_setup(struct io_uring *ring, struct buf_ring *b, unsigned flags)
{
    int err;
    const char *what;
    b->br = rs_buf_ring_register(ring, BR_COUNT, BR_GROUP, flags, &b->len, &err, &what);
    if (!b->br)
        return err;
    for (int i = 0; i < BR_COUNT; i++)
        io_uring_buf_ring_add(b->br, b->data[i], BR_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(BR_COUNT), i);
    io_uring_buf_ring_advance(b->br, BR_COUNT);
    return 0;
}

void probe_buf_ring_free(struct buf_ring *b)
{
    if (b->br)
        munmap(b->br, b->len);
    b->br = NULL;
}
