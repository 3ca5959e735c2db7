/* Moving a connection from one io_uring to another (see handoff.c). */
#ifndef RINGSERVE_URING_HANDOFF_H
#define RINGSERVE_URING_HANDOFF_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

/* True when IORING_OP_MSG_RING can send a direct descriptor to another
 * ring (IORING_MSG_SEND_FD, Linux 6.0+). Tried once per process. */
bool rs_uring_msg_ring_fd_works(void);

/* Send direct descriptor src_slot of the submitting ring to a free slot of
 * the ring target_ring_fd, which gets a CQE with res = that slot (or
 * nothing, if it fails: the sender's CQE says why) and user_data
 * target_data. The sender's slot stays in use until closed. */
void rs_prep_msg_send_fd(struct io_uring_sqe *sqe, int target_ring_fd, unsigned src_slot,
                         uint64_t target_data);

#endif
