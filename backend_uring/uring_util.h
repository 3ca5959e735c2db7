/* io_uring pieces that Debian's liburing 2.3 lacks or gets wrong, shared by
 * the feature probe and the io_uring backend. Internal (not installed);
 * include only where liburing is (RS_HAVE_URING). */
#ifndef RINGSERVE_URING_UTIL_H
#define RINGSERVE_URING_UTIL_H

#include <stddef.h>

#include <liburing.h>

/* A provided-buffer ring with room for `entries` buffers (a power of two)
 * of group bgid, built by hand: liburing 2.3 has no io_uring_setup_buf_ring.
 * Mapped, initialised and registered, still empty. Returns it, with its
 * mapping length in *bytes (unmap it after io_uring_queue_exit()), or NULL
 * with -errno in *err and the failed step ("mmap",
 * "io_uring_register_buf_ring") in *what. */
struct io_uring_buf_ring *rs_buf_ring_register(struct io_uring *ring, unsigned entries,
                                               unsigned short bgid, size_t *bytes,
                                               int *err, const char **what);

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

#endif
