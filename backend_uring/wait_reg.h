/* Waits whose parameters live in memory registered with the ring
 * (IORING_REGISTER_MEM_REGION with IORING_MEM_REGION_REG_WAIT_ARG, waited
 * on with IORING_ENTER_EXT_ARG_REG; Linux 6.13), for liburing 2.3, which
 * has neither. Internal; include only where liburing is (RS_HAVE_URING). */
#ifndef RINGSERVE_WAIT_REG_H
#define RINGSERVE_WAIT_REG_H

#include <stdbool.h>
#include <stddef.h>

#include <liburing.h>

/* The kernel's struct io_uring_reg_wait (include/uapi/linux/io_uring.h). */
struct rs_reg_wait {
    struct __kernel_timespec ts;
    __u32 min_wait_usec;
    __u32 flags; /* RS_REG_WAIT_TS: ts is a timeout */
    __u64 sigmask;
    __u32 sigmask_sz;
    __u32 pad[3];
    __u64 pad2[2];
};
#define RS_REG_WAIT_TS 1u

struct rs_wait_reg {
    struct rs_reg_wait *slot; /* one page, registered; slot[0] is ours */
    size_t len;
};

/* Register a page of wait parameters with `ring`, which must have been
 * created with IORING_SETUP_R_DISABLED and not enabled yet (the kernel's
 * rule), then enable it. 0 or -errno (the ring then still disabled). */
int rs_wait_reg_setup(struct io_uring *ring, struct rs_wait_reg *w);

/* After io_uring_queue_exit(): the kernel has let go of the page. */
void rs_wait_reg_free(struct rs_wait_reg *w);

/* Submit what is queued and wait, in one io_uring_enter, for `want`
 * completions but no longer than *ts, and no longer than min_wait_usec for
 * the rest of the batch once one has come (0: no such minimum; needs
 * IORING_FEAT_MIN_TIMEOUT). enter_fd/registered: the ring fd, or its
 * registered index (io_uring_register_ring_fd). The result of
 * io_uring_enter: submitted count or -errno (-ETIME: time up). */
int rs_wait_reg_enter(struct io_uring *ring, struct rs_wait_reg *w, unsigned want,
                      const struct __kernel_timespec *ts, unsigned min_wait_usec,
                      int enter_fd, bool registered);

#endif
