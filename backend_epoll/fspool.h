/* File IO for the epoll backend: a small pool of worker threads that run
 * the blocking calls, and the calls themselves (also used inline, with
 * --fs=inline). Private to backend_epoll/; see fspool.c for why. */
#ifndef RINGSERVE_FSPOOL_H
#define RINGSERVE_FSPOOL_H

#include <stdint.h>
#include <sys/types.h>

#include "op.h"

struct rs_fspool;

/* A pool of up to nthreads workers, started on the first submit. A worker
 * that finishes a call writes 1 to wake_fd (the loop's eventfd) when the
 * list of finished ops was empty. NULL on out of memory. */
struct rs_fspool *rs_fspool_new(unsigned nthreads, int wake_fd);
/* Stop taking ops: every op still queued (no worker started it) is taken
 * back and returned, a list through bk_next with bk_res -ECANCELED, for
 * the caller to complete (backend.h rule 5: every op completes once).
 * Calls already running finish; rs_fspool_reap still returns them. */
struct rs_file_op *rs_fspool_stop(struct rs_fspool *pool);
/* Stop (the queued ops are taken back first: call rs_fspool_stop), join
 * the workers and free the pool. Returns the ops that finished and were
 * never reaped (a list through bk_next), for the caller to complete. */
struct rs_file_op *rs_fspool_free(struct rs_fspool *pool);
/* Queue an op for a worker. 0, or -errno when no worker could start. */
int rs_fspool_submit(struct rs_fspool *pool, struct rs_file_op *f);
/* Take an op back if no worker has started it: 0 (the caller completes it
 * with -ECANCELED), or -EBUSY when it is running or finished. */
int rs_fspool_cancel(struct rs_fspool *pool, struct rs_file_op *f);
/* Every finished op, oldest first (a list through bk_next), and how many
 * ops are queued or running after that. */
struct rs_file_op *rs_fspool_reap(struct rs_fspool *pool, uint32_t *busy);

/* A job kind of this pool's own (not an op of op.h): sendfile(2) from
 * the struct rs_sendfile at dst, op.len bytes at most, to the socket op.fd
 * (non-blocking: the job never waits for the peer, only for the disk).
 * res: bytes sent or -errno (-EAGAIN: the socket is full). The epoll
 * backend runs it when the pages to send are not in the page cache, so
 * that the disk read blocks a worker, not the loop (nginx: `aio threads`
 * with `sendfile on`). */
#define RS_FS_SENDFILE 0xf0

/* Perform f's call now, in this thread; the result goes to f->bk_res. */
void rs_fs_perform(struct rs_file_op *f);

/* openat(2) confined to dirfd for kernels without openat2(2): refuses
 * absolute paths, ".." and every symbolic link (stricter than
 * RESOLVE_BENEATH, which follows links that stay inside). fd or -errno. */
int rs_openat_walk(int dirfd, const char *path, int flags, mode_t mode);

#endif
