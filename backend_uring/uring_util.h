/* io_uring pieces that Debian's liburing 2.3 lacks or gets wrong, shared by
 * the feature probe and the io_uring backend. Internal (not installed);
 * include only where liburing is (RS_HAVE_URING). */
#ifndef RINGSERVE_URING_UTIL_H
#define RINGSERVE_URING_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <liburing.h>

/* Socket commands (IORING_OP_URING_CMD on a socket, Linux 6.7+): newer
 * than liburing 2.3's headers. Kernel ABI (include/uapi/linux/io_uring.h,
 * enum io_uring_socket_op). */
#ifndef SOCKET_URING_OP_SETSOCKOPT
#define SOCKET_URING_OP_GETSOCKOPT 2
#define SOCKET_URING_OP_SETSOCKOPT 3
#endif

/* A provided-buffer ring with room for `entries` buffers (a power of two)
 * of group bgid, built by hand: liburing 2.3 has no io_uring_setup_buf_ring.
 * Mapped, initialised and registered, still empty. Returns it, with its
 * mapping length in *bytes (unmap it after io_uring_queue_exit()), or NULL
 * with -errno in *err and the failed step ("mmap",
 * "io_uring_register_buf_ring") in *what. reg_flags: the registration's
 * flags (RS_IOU_PBUF_RING_INC), 0 for a plain ring. */
struct io_uring_buf_ring *rs_buf_ring_register(struct io_uring *ring, unsigned entries,
                                               unsigned short bgid, unsigned reg_flags,
                                               size_t *bytes, int *err,
                                               const char **what);

/* IOU_PBUF_RING_INC (6.12): buffers of the ring are consumed incrementally,
 * several receives sharing one. Kernel ABI; liburing 2.3 lacks it. */
#define RS_IOU_PBUF_RING_INC 2u

/* Accept into a slot of the direct-descriptor table the kernel picks. Not
 * io_uring_prep_accept_direct(..., IORING_FILE_INDEX_ALLOC): liburing 2.3
 * adds 1 to the index, turning ALLOC into 0, which the kernel reads as "not
 * direct". No SOCK_CLOEXEC: a direct descriptor is no fd, and the kernel
 * rejects the flag with -EINVAL. */
static inline void rs_prep_accept_alloc(struct io_uring_sqe *sqe, int fd)
{
    io_uring_prep_accept(sqe, fd, NULL, NULL, 0);
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
}

/* A new TCP socket of `family` in a slot of the direct-descriptor table the
 * kernel picks (IORING_OP_SOCKET, 5.19+). No SOCK_CLOEXEC (no fd to
 * inherit; the kernel refuses it for direct sockets) and no SOCK_NONBLOCK
 * (io_uring never blocks on a socket it drives), like accepted ones. */
static inline void rs_prep_socket_alloc(struct io_uring_sqe *sqe, int family)
{
    io_uring_prep_socket(sqe, family, SOCK_STREAM, 0, 0);
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
}

/* Opcodes newer than liburing 2.3's enum: the kernel's numbers (include/
 * uapi/linux/io_uring.h, enum io_uring_op). */
enum {
    RS_IORING_OP_BIND = 56,       /* 6.11 */
    RS_IORING_OP_LISTEN = 57,     /* 6.11 */
    RS_IORING_OP_RECV_ZC = 58,    /* 6.15 */
    RS_IORING_OP_EPOLL_WAIT = 59, /* 6.15 */
    RS_IORING_OP_PIPE = 62,       /* 6.16 */
};

/* IORING_OP_PIPE (6.16): pipe2(2) as an SQE; liburing 2.3 has no
 * io_uring_prep_pipe_direct(). */
/* A pipe whose two ends go into slots of the direct-descriptor table the
 * kernel picks; their numbers land in fds[0] (read end) and fds[1] (write
 * end), which must stay valid until the completion. pipe_flags shares the
 * SQE's op-flags word with rw_flags: O_NONBLOCK, never O_CLOEXEC (a direct
 * descriptor is no fd to inherit; the kernel refuses it with -EINVAL). */
static inline void rs_prep_pipe_alloc(struct io_uring_sqe *sqe, int *fds, int pipe_flags)
{
    io_uring_prep_rw(RS_IORING_OP_PIPE, sqe, 0, fds, 0, 0);
    sqe->rw_flags = pipe_flags;
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
}

/* bind(2) and listen(2) as SQEs (6.11), as liburing 2.7's
 * io_uring_prep_bind()/io_uring_prep_listen() fill them: the address and
 * its length in addr and off, the backlog in len. *addr is read when the
 * op runs: it must stay valid until the completion. Add IOSQE_FIXED_FILE
 * for a direct socket. */
static inline void rs_prep_bind(struct io_uring_sqe *sqe, int fd, const void *addr,
                                uint32_t addrlen)
{
    io_uring_prep_rw(RS_IORING_OP_BIND, sqe, fd, addr, 0, addrlen);
}

static inline void rs_prep_listen(struct io_uring_sqe *sqe, int fd, int backlog)
{
    io_uring_prep_rw(RS_IORING_OP_LISTEN, sqe, fd, NULL, (unsigned)backlog, 0);
}

/* setsockopt(fd, level, optname, val, sizeof(int)) as a socket command
 * (SOCKET_URING_OP_SETSOCKOPT, 6.7+): what liburing 2.5's
 * io_uring_prep_cmd_sock() prepares, which 2.3 lacks along with the SQE's
 * level/optname/optlen/optval names. Those are unions over fields 2.3 has,
 * per the kernel's struct io_uring_sqe: cmd_op over `off`; level and
 * optname, two u32 in that order, over `addr`; optlen over `file_index`;
 * optval over `addr3`. *val is read when the command runs, maybe after
 * submission: it must stay valid until the completion. Add
 * IOSQE_FIXED_FILE for a direct descriptor. */
static inline void rs_prep_setsockopt_cmd(struct io_uring_sqe *sqe, int fd,
                                          uint32_t level, uint32_t optname,
                                          const int *val)
{
    io_uring_prep_rw(IORING_OP_URING_CMD, sqe, fd, NULL, 0, 0);
    sqe->cmd_op = SOCKET_URING_OP_SETSOCKOPT;
    uint32_t lo[2] = {level, optname};
    memcpy(&sqe->addr, lo, sizeof(lo));
    sqe->file_index = (uint32_t)sizeof(*val);
    sqe->addr3 = (uint64_t)(uintptr_t)val;
}

#endif
