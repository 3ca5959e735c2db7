/* The epoll backend's state, shared by its files (internal: not
 * installed, included only inside backend_epoll/).
 *
 *   epoll.c          what the backend is (its opening essay), the table,
 *                    init, fini, buffer returns
 *   epoll_io.c       an op's way through the loop: submit and cancel, the
 *                    interest set, the readiness handlers that do a
 *                    socket's IO, file ops handed to the pool and reaped,
 *                    and run()
 *   epoll_sendfile.c RS_OP_SENDFILE's page-cache check, and the worker
 *                    jobs for ranges that are not cached
 *   fspool.c         the worker pool for file ops (its own interface)
 *   options.c        the backend's command-line options
 */
#ifndef RINGSERVE_EPOLL_STATE_H
#define RINGSERVE_EPOLL_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "backend.h"
#include "fspool.h"
#include "loop.h"

#define MAX_EVENTS  256
#define READ_BUDGET 16 /* reads per socket per wake-up (libuv uses 32) */
#define WAKE_TAG    UINT32_MAX

struct ep_sock {
    struct rs_op *rd; /* accept or recv waiting for readability */
    struct rs_op *wr; /* send waiting for writability */
    uint32_t gen;     /* bumped at close; events carrying an older one are stale */
    uint32_t events;  /* interest mask registered with epoll (0: not registered) */
    bool rd_ready;    /* et: readable until EAGAIN or a short read says otherwise */
    /* No wr_ready: a send is parked only after EAGAIN, so only an
     * EPOLLOUT that arrives afterwards can let it progress. */
    bool rdhup; /* the peer closed: keep reading to reach EOF */
    bool on_ready_list;
    bool dirty; /* epoll_ctl failed to narrow the interest set: retried by run() */
    /* et: an EPOLLOUT came while a worker had the sendfile. The worker's
     * EAGAIN reaches the loop after the call, and the edge that the room
     * made meanwhile found nothing parked: without this the op would be
     * parked after its only edge and wait for good. */
    bool out_edge;
    struct ep_job *job; /* a sendfile a worker makes (pages not cached) */
    /* The file range last found all cached for a sendfile on this socket
     * (ep_sendfile_cached_len): its source and descriptor, [cs_start,
     * cs_end), and the loop's clock when checked. cs_src NULL: none. */
    const struct rs_sendfile *cs_src;
    int cs_fd;
    uint64_t cs_start, cs_end, cs_ms;
    uint32_t cs_last; /* what the last call sent (the socket's usual take) */
};

/* A sendfile whose pages are not all in the page cache: a worker makes
 * the call (RS_FS_SENDFILE), which would otherwise wait for the disk with
 * every connection of the loop. */
struct ep_job {
    struct rs_file_op f;        /* RS_FS_SENDFILE */
    struct rs_op *op;           /* the sendfile */
    bool cancel;                /* a cancel came while a worker had it */
    struct ep_job *next, *prev; /* ep_state.jobs: fini frees the stragglers */
};

/* Bytes one worker's sendfile may send: the disk reads it waits for hold a
 * worker that other file ops (small files) may be queued behind. */
#define JOB_MAX (256u * 1024)

/* A sendfile's range found all cached is trusted, for later calls of the
 * same transfer on the socket, this long (the io_uring backend's
 * splice_here.c trusts an op's range as long while it waits for room):
 * its pages were just counted, and a page evicted meanwhile costs one
 * call's read in the loop, as one evicted between a check and its call
 * always could. Checking before every call was one cachestat(2) per
 * sendfile(2), each walking the op's whole range (up to 1 MiB). */
#define CACHED_TRUST_MS 10

struct ep_done { /* a completion waiting for run() */
    struct rs_op *op;
    int32_t res;
    uint32_t flags;
    uint16_t bid;
};

struct ep_state {
    int epfd;
    bool et;
    struct ep_sock *socks; /* indexed by fd */
    uint32_t nsocks;
    struct ep_done *done;                   /* FIFO ring */
    uint32_t done_head, done_len, done_cap; /* cap: a power of two */
    int *ready; /* et: fds with readiness left over (capacity 2 x nsocks) */
    uint32_t nready;
    uint32_t ndirty;      /* sockets with dirty set */
    struct rs_fspool *fs; /* file ops' workers, made on first use */
    struct ep_job *jobs;  /* RS_FS_SENDFILE jobs the pool has */
    bool fs_inline;       /* --fs=inline: file ops block the loop */
    bool no_cachestat;    /* the kernel cannot say what is cached (before 6.5) */
    unsigned fs_threads;
    struct epoll_event events[MAX_EVENTS];
};

static inline struct ep_state *state(struct rs_loop *loop)
{
    return loop->backend;
}

static inline uint64_t ep_pack(int fd, uint32_t gen)
{
    return (uint64_t)gen << 32 | (uint32_t)fd;
}

static inline void ep_job_free(struct ep_state *st, struct ep_job *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        st->jobs = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w);
}

/* epoll_io.c: rs_backend_ops.submit, .cancel and .run; the end of a
 * worker's sendfile job (its op completes, or waits for room as a parked
 * send); at fini, the file ops the pool gives back */
int ep_submit(struct rs_loop *loop, struct rs_op *op);
int ep_cancel(struct rs_loop *loop, struct rs_op *op);
int ep_run(struct rs_loop *loop, int timeout_ms);
void ep_job_done(struct rs_loop *loop, struct rs_op *fop, const struct rs_completion *c);
void ep_fs_complete_list(struct rs_loop *loop, struct rs_file_op *f);

/* epoll_sendfile.c: how much of a sendfile the loop may send itself, and
 * a worker's job for the rest */
uint32_t ep_sendfile_cached_len(struct rs_loop *loop, struct ep_state *st,
                                struct ep_sock *s, const struct rs_op *op);
int ep_job_start(struct rs_loop *loop, struct ep_state *st, struct ep_sock *s,
                 struct rs_op *op);

#endif
