/* Handing a connection to another ring.
 *
 * A direct descriptor lives in one ring's private table; the kernel sizes
 * that table up to RLIMIT_NOFILE per ring, so N rings hold N times the
 * process descriptor limit. SO_REUSEPORT spreads connections over N
 * listeners by a hash of the addresses, blind to how full each table is:
 * one ring fills up (and must turn clients away) while others have room.
 *
 * IORING_OP_MSG_RING with IORING_MSG_SEND_FD (Linux 6.0) installs a file
 * from the sender's table into a free slot of another ring's table, and
 * posts a CQE there whose res is the slot. So one loop accepts every
 * connection and passes each to the loop with the most room: the tables
 * fill evenly and the server is full only when all of them are. The file
 * is shared, not moved: the sender closes its own slot after its MSG_RING
 * CQE says the other ring has it. Where the receiving ring runs
 * DEFER_TASKRUN, the kernel installs the file from the receiver's own
 * task (task work), so the sender's CQE comes only once it is done; a
 * receiver whose thread has exited refuses (-EOWNERDEAD) and the
 * connection stays with the sender.
 *
 * liburing 2.3 has IORING_OP_MSG_RING but no helper for sending a
 * descriptor, so the SQE is filled by hand here, and whether the kernel
 * does it is tried once with two throw-away rings.
 */
#include "handoff.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#ifndef IORING_MSG_SEND_FD
#define IORING_MSG_SEND_FD 1 /* enum io_uring_msg_ring_flags, 6.0+ */
#endif
#ifndef IORING_FILE_INDEX_ALLOC
#define IORING_FILE_INDEX_ALLOC (~0U)
#endif

void rs_prep_msg_send_fd(struct io_uring_sqe *sqe, int target_ring_fd, unsigned src_slot,
                         uint64_t target_data)
{
    /* addr: the command; off: the receiver's user_data; addr3: our slot;
     * file_index: where it goes in the receiver's table (allocated). */
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, target_ring_fd,
                     (const void *)(uintptr_t)IORING_MSG_SEND_FD, 0, target_data);
    sqe->addr3 = src_slot;
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
}

static bool works;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static bool try_send_fd(struct io_uring *a, struct io_uring *b)
{
    if (io_uring_register_files_sparse(a, 1) < 0 ||
        io_uring_register_files_sparse(b, 1) < 0)
        return false;
    int efd = eventfd(0, EFD_CLOEXEC);
    if (efd < 0)
        return false;
    int rc = io_uring_register_files_update(a, 0, &efd, 1);
    close(efd); /* the table holds its own reference */
    if (rc != 1)
        return false;
    struct io_uring_sqe *sqe = io_uring_get_sqe(a);
    if (!sqe)
        return false;
    rs_prep_msg_send_fd(sqe, b->ring_fd, 0, 0x5eed);
    struct io_uring_cqe *cqe;
    if (io_uring_submit_and_wait(a, 1) < 0 || io_uring_peek_cqe(a, &cqe) < 0)
        return false;
    bool sent = cqe->res >= 0;
    io_uring_cqe_seen(a, cqe);
    if (!sent || io_uring_peek_cqe(b, &cqe) < 0)
        return false;
    bool got = cqe->res == 0 && cqe->user_data == 0x5eed;
    io_uring_cqe_seen(b, cqe);
    return got;
}

static void probe(void)
{
    struct io_uring a, b;
    if (io_uring_queue_init(4, &a, 0) < 0)
        return;
    if (io_uring_queue_init(4, &b, 0) == 0) {
        works = try_send_fd(&a, &b);
        io_uring_queue_exit(&b);
    }
    io_uring_queue_exit(&a);
}

bool rs_uring_msg_ring_fd_works(void)
{
    pthread_once(&once, probe);
    return works;
}
