/* Setting the io_uring backend up and tearing it down: the ring and its
 * flags (taskrun mode, SQPOLL shared between loops), the registrations
 * (ring fd, the sparse direct-descriptor table, the provided-buffer ring
 * or IORING_OP_PROVIDE_BUFFERS), the splice machinery, the caps on the
 * kernel's worker threads (io-wq), and the check that the addresses
 * packed into user_data fit. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "probe.h"
#include "uring_state.h"

static int setup_buf_ring(struct rs_loop *loop, struct ur_state *st, char *err,
                          size_t errlen)
{
    uint32_t count = loop->pool.count;
    int rc;
    const char *what;
    /* buf-inc sets buffers aside for file reads (bufinc.c): one at least,
     * which a pool of one cannot spare. */
    if (count < 2)
        st->features &= ~(uint32_t)UF_BUF_INC;
    unsigned flags = (st->features & UF_BUF_INC) ? RS_IOU_PBUF_RING_INC : 0;
    st->br =
        rs_buf_ring_register(&st->ring, count, BGID, flags, &st->br_bytes, &rc, &what);
    if (!st->br) {
        snprintf(err, errlen, "buffer ring: %s: %s", what, strerror(-rc));
        return rc;
    }
    st->br_mask = (unsigned)io_uring_buf_ring_mask(count);
    if (st->features & UF_BUNDLE) {
        st->br_pos = malloc(count * sizeof(*st->br_pos));
        if (!st->br_pos) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    if ((st->features & UF_BUF_INC) && ur_inc_setup(loop, st) < 0) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* The kernel owns every id now, but those buf-inc sets aside, which go
     * back on the free stack one by one. */
    loop->pool.nfree = 0;
    for (uint32_t i = 0; i < count; i++)
        ur_buf_return(loop, st, (uint16_t)i);
    ur_refill(st);
    return 0;
}

/* No buffer ring: hand the whole pool to the kernel with the older
 * IORING_OP_PROVIDE_BUFFERS (5.7), so the kernel still picks a buffer only
 * when data arrives and an idle connection holds none. One SQE provides
 * equally spaced buffers of one length, and ours are spaced a cache line
 * further apart than their length (RS_BUFPOOL_COLOR): the first is
 * provided here to learn whether the kernel takes them, the rest through
 * the same path that returns buffers later. */
static int provide_all(struct rs_loop *loop, struct ur_state *st, char *err,
                       size_t errlen)
{
    struct io_uring_sqe *sqe = ur_get_sqe(st);
    struct io_uring_cqe *cqe;
    if (!sqe) {
        snprintf(err, errlen, "provide buffers: no SQE");
        return -EBUSY;
    }
    io_uring_prep_provide_buffers(sqe, loop->pool.mem, (int)loop->pool.size, 1, BGID, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    int rc = io_uring_submit_and_wait(&st->ring, 1);
    if (rc >= 0)
        rc = io_uring_peek_cqe(&st->ring, &cqe);
    if (rc >= 0) {
        rc = cqe->res < 0 ? cqe->res : 0;
        io_uring_cqe_seen(&st->ring, cqe);
    }
    if (rc < 0) {
        snprintf(err, errlen, "IORING_OP_PROVIDE_BUFFERS: %s", strerror(-rc));
        return rc;
    }
    for (uint32_t bid = 1; bid < loop->pool.count; bid++)
        ur_buf_return(loop, st, (uint16_t)bid);
    loop->pool.nfree = 0; /* every id is the kernel's now */
    return 0;
}

/* The ring whose SQPOLL thread other loops attach to. */
static pthread_mutex_t sqpoll_mu = PTHREAD_MUTEX_INITIALIZER;
static int sqpoll_owner_fd = -1;

/* The process's descriptor limit, but at most max. */
static uint32_t nofile_at_most(uint32_t max)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < max)
        return (uint32_t)rl.rlim_cur;
    return max;
}

/* Descriptors a zero-copy verdict can be kept for: the direct table, or
 * the process's descriptor limit (a byte each, at most 1 MiB, and calloc
 * leaves untouched pages unmapped). */
static uint32_t zc_fd_cap(const struct rs_loop *loop)
{
    return (loop->caps & RS_CAP_DIRECT_FD) ? loop->fd_cap : nofile_at_most(1u << 20);
}

/* resize and wait-reg, on the fresh ring p describes. */
static int setup_ring_memory(struct ur_state *st, const struct io_uring_params *p,
                             char *err, size_t errlen)
{
    /* Resizing maps the new rings where the kernel's layout puts them:
     * checked here against what the kernel reported for this ring. */
    st->resize = (st->features & UF_RESIZE) && rs_ring_layout_known(p);
    if ((st->features & UF_RESIZE) && !st->resize) {
        rs_log_info("io_uring: unexpected ring layout, the CQ will not grow");
        st->features &= ~(uint32_t)UF_RESIZE;
    }
    if (!(st->features & UF_WAIT_REG))
        return 0;
    int rc = rs_wait_reg_setup(&st->ring, &st->wreg);
    if (rc < 0) {
        snprintf(err, errlen, "registered wait region: %s", strerror(-rc));
        io_uring_queue_exit(&st->ring);
        rs_wait_reg_free(&st->wreg);
        return rc;
    }
    st->wait_reg = true;
    return 0;
}

static int setup_ring(struct ur_state *st, const struct rs_uring_support *sup, char *err,
                      size_t errlen)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    st->taskrun = "plain";
    if (st->features & UF_DEFER_TASKRUN) {
        p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
        st->taskrun = "defer";
    } else if ((st->features & ~UF_BASELINE) && sup->coop_taskrun &&
               !(st->features & UF_SQPOLL)) {
        p.flags |= IORING_SETUP_COOP_TASKRUN |
                   (sup->taskrun_flag ? IORING_SETUP_TASKRUN_FLAG : 0);
        st->taskrun = "coop";
    }
    if (st->features & ~UF_BASELINE) {
        /* Multishot ops produce CQEs without SQEs: a deep CQ. */
        if (sup->cqsize) {
            p.flags |= IORING_SETUP_CQSIZE;
            /* resize: small, grown when the load asks (ring_resize.h) */
            p.cq_entries = (st->features & UF_RESIZE)
                               ? rs_cq_initial(st->opts.ring_entries)
                               : st->opts.ring_entries * 8;
        }
        if (sup->submit_all)
            p.flags |= IORING_SETUP_SUBMIT_ALL;
    }
    if (!(st->features & UF_SQPOLL)) {
        /* The wait region can only be registered before the ring runs. */
        if (st->features & UF_WAIT_REG)
            p.flags |= IORING_SETUP_R_DISABLED;
        int rc = io_uring_queue_init_params(st->opts.ring_entries, &st->ring, &p);
        if (rc < 0) {
            snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
            return rc;
        }
        return setup_ring_memory(st, &p, err, errlen);
    }
    /* SQPOLL with several loops: the first ring's poller thread serves
     * them all (IORING_SETUP_ATTACH_WQ), rather than one kernel thread
     * spinning per loop on a machine with few CPUs. */
    p.flags |= IORING_SETUP_SQPOLL;
    p.sq_thread_idle = st->opts.sqpoll_idle_ms;
    st->taskrun = "sqpoll";
    pthread_mutex_lock(&sqpoll_mu);
    int rc = -EINVAL;
    if (sqpoll_owner_fd >= 0) {
        struct io_uring_params pa = p;
        pa.flags |= IORING_SETUP_ATTACH_WQ;
        pa.wq_fd = (uint32_t)sqpoll_owner_fd;
        rc = io_uring_queue_init_params(st->opts.ring_entries, &st->ring, &pa);
        if (rc == 0)
            st->taskrun = "sqpoll-shared";
    }
    if (rc < 0)
        rc = io_uring_queue_init_params(st->opts.ring_entries, &st->ring, &p);
    if (rc == 0 && sqpoll_owner_fd < 0) {
        sqpoll_owner_fd = st->ring.ring_fd;
        st->sqpoll_owner = true;
    }
    pthread_mutex_unlock(&sqpoll_mu);
    if (rc < 0)
        snprintf(err, errlen, "io_uring_queue_init (SQPOLL): %s", strerror(-rc));
    return rc;
}

/* Every file opcode arrived in 5.6; ask the kernel rather than trust that. */
static bool file_ops_supported(struct io_uring *ring)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    if (!p)
        return false;
    bool ok = io_uring_opcode_supported(p, IORING_OP_OPENAT2) &&
              io_uring_opcode_supported(p, IORING_OP_READ) &&
              io_uring_opcode_supported(p, IORING_OP_WRITE) &&
              io_uring_opcode_supported(p, IORING_OP_STATX) &&
              io_uring_opcode_supported(p, IORING_OP_CLOSE);
    io_uring_free_probe(p);
    return ok;
}

/* For splice.c: an SQE, with room for n - 1 more right after it (a
 * linked pair must not be split by a flush of the SQ in between). */
static struct io_uring_sqe *splice_get_sqe(void *ctx, unsigned n)
{
    struct ur_state *st = ctx;
    if (n > 1 && io_uring_sq_space_left(&st->ring) < n) {
        io_uring_submit(&st->ring);
        if (st->features & UF_SQPOLL)
            io_uring_sqring_wait(&st->ring);
        if (io_uring_sq_space_left(&st->ring) < n)
            return NULL;
    }
    return ur_get_sqe(st);
}

/* RS_OP_SENDFILE: splice (5.7) through a pipe, waiting for room in the
 * socket with a poll (a worker's splice into a blocking socket stopped
 * by a timer and a cancel). Without them the op is refused (-EOPNOTSUPP) and the
 * capability not declared: the core copies instead. */
static int setup_splice(struct rs_loop *loop, struct ur_state *st, char *err,
                        size_t errlen)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(&st->ring);
    bool ok = p && io_uring_opcode_supported(p, IORING_OP_SPLICE) &&
              io_uring_opcode_supported(p, IORING_OP_POLL_ADD) &&
              io_uring_opcode_supported(p, IORING_OP_TIMEOUT) &&
              io_uring_opcode_supported(p, IORING_OP_TIMEOUT_REMOVE) &&
              io_uring_opcode_supported(p, IORING_OP_ASYNC_CANCEL);
    if (p)
        io_uring_free_probe(p);
    if (!ok)
        return 0;
    st->splice =
        ur_splice_new(splice_get_sqe, st, TAG_SPLICE, SPLICE_PIPE_SIZE, &st->splice_held);
    if (!st->splice) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* setup_registrations() made the table first. */
    if ((st->features & UF_DIRECT_PIPE) && st->fixed)
        ur_splice_direct_pipes(st->splice);
    loop->caps |= RS_CAP_SENDFILE;
    loop->sendfile_op_max = UR_SPLICE_OP_MAX;
    return 0;
}

static int setup_registrations(struct rs_loop *loop, struct ur_state *st, char *err,
                               size_t errlen)
{
    int rc;
    if (st->features & UF_RING_FD) {
        rc = io_uring_register_ring_fd(&st->ring);
        if (rc < 0)
            st->features &= ~(uint32_t)UF_RING_FD; /* an optimisation only */
    }
    if (st->features & UF_FIXED_FILES) {
        /* As large as the kernel allows: RLIMIT_NOFILE per ring (at most
         * IORING_MAX_FIXED_FILES, 1 << 20). It costs the kernel a pointer
         * per slot, nothing in our RSS. */
        unsigned n = nofile_at_most(1u << 20);
        rc = io_uring_register_files_sparse(&st->ring, n);
        if (rc < 0) {
            snprintf(err, errlen, "io_uring_register_files_sparse(%u): %s", n,
                     strerror(-rc));
            return rc;
        }
        st->fixed = true;
        loop->caps |= RS_CAP_DIRECT_FD;
        st->direct_socket = (st->features & UF_DIRECT_SOCKET) != 0;
        if (st->features & UF_DIRECT_LISTEN)
            loop->caps |= RS_CAP_LISTEN_DIRECT;
        if (st->direct_socket)
            loop->caps |= RS_CAP_SOCKET_DIRECT;
        loop->fd_cap = n;
        /* Several loops: loop 0 may accept for all (--accept). Tried
         * only where it could matter. */
        if (loop->cfg->threads != 1 && loop->cfg->accept_mode != RS_ACCEPT_REUSEPORT &&
            rs_uring_msg_ring_fd_works())
            loop->caps |= RS_CAP_HANDOFF;
    }
    /* The kernel takes provided buffers first in, first out (ring or
     * list), so under load every buffer of the pool is touched in turn:
     * 512 x 16 KiB is 2048 pages, more than the TLB holds. Huge pages make
     * that a handful of entries (measured at 50 connections: the kernel's
     * copy into the buffers went from 2.3 % to 1.5 % of server CPU). Only
     * a hint: without transparent huge pages nothing changes. */
    madvise(loop->pool.mem, rs_bufpool_bytes(&loop->pool), MADV_HUGEPAGE);
    rc = (st->features & UF_BUF_RING) ? setup_buf_ring(loop, st, err, errlen)
                                      : provide_all(loop, st, err, errlen);
    if (rc < 0)
        return rc;
    st->br_plain = (st->features & UF_BUF_RING) && !st->inc && !st->br_pos;
    st->lend_plain = !st->inc && !(st->features & UF_BUNDLE);
    st->zc_enabled = st->features & UF_SEND_ZC;
    st->plain_send_max = st->zc_enabled ? st->opts.zc_threshold : UINT32_MAX;
    if (st->zc_enabled) {
        st->zc_fd_cap = zc_fd_cap(loop);
        if (ur_zc_setup(loop, st) < 0) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    st->batch_wait = (st->features & UF_BATCH_WAIT) && !(st->features & UF_SQPOLL);
    st->plain_wait = !st->batch_wait && !(st->features & UF_SQPOLL);
    if (file_ops_supported(&st->ring))
        loop->caps |= RS_CAP_FILE_NATIVE | RS_CAP_FILE_OPS;
    return setup_splice(loop, st, err, errlen);
}

/* io-wq: the kernel's thread pool for work that cannot complete without
 * blocking. It belongs to the task that submits (the loop's thread; with
 * SQPOLL the poller thread, shared by the loops attached to it) and has
 * two pools. Work on a regular file is "bounded" (it ends by itself), by
 * default at most min(SQ entries, 4 x online CPUs) workers; the rest is
 * "unbounded" (it may wait for a peer for ever), limited only by
 * RLIMIT_NPROC, because a queued item behind one that never ends could
 * wait for ever too. Ours: an IORING_OP_SPLICE's file is its output, a
 * pipe, so a sendfile's file -> pipe read is unbounded work, and io-wq
 * starts a worker for each one queued while none is free: a burst of
 * requests for uncached files is as many threads. Nothing ringserve
 * queues can wait for ever (splice.c: a worker's read ends with the
 * disk; its send into a blocking socket is cancelled after 50 ms), so
 * both pools can be capped (IORING_REGISTER_IOWQ_MAX_WORKERS, 5.15)
 * without starving what waits behind. The kernel applies the caps to the
 * submitting task's io-wq now or, when it has none yet, when it makes
 * one. Read back, they are what the start-up line shows. */
static void setup_iowq(struct ur_state *st)
{
    static int refused_logged;
    unsigned want[2] = {st->opts.iowq_max[0], st->opts.iowq_max[1]};
    if (want[0] || want[1]) {
        unsigned v[2] = {want[0], want[1]};
        int rc = io_uring_register_iowq_max_workers(&st->ring, v);
        if (rc < 0) {
            /* Before 5.15 (EINVAL): the kernel's defaults. */
            if (!__atomic_exchange_n(&refused_logged, 1, __ATOMIC_RELAXED))
                rs_log_debug("io_uring: IORING_REGISTER_IOWQ_MAX_WORKERS: %s; io-wq "
                             "keeps the kernel's limits",
                             strerror(-rc));
            return;
        }
    }
    /* 0, 0 asks without changing: 0, 0 back while the task has no io-wq. */
    unsigned now[2] = {0, 0};
    if (io_uring_register_iowq_max_workers(&st->ring, now) == 0 && (now[0] || now[1])) {
        st->iowq_max[0] = now[0];
        st->iowq_max[1] = now[1];
    } else if (want[0] || want[1]) {
        /* Set, to be applied: what we asked, clamped as the kernel will
         * (a 0 stays the kernel's default). */
        struct rlimit rl;
        rlim_t nproc = getrlimit(RLIMIT_NPROC, &rl) == 0 ? rl.rlim_cur : RLIM_INFINITY;
        for (int i = 0; i < 2; i++)
            st->iowq_max[i] = nproc < want[i] ? (unsigned)nproc : want[i];
    }
}

static bool ud_fits(const void *p)
{
    return ((uintptr_t)p & ~UD_PTR_MASK) == 0;
}

/* Once at start-up: do the addresses ops and zero-copy records live at fit
 * the 48 bits user_data gives them? Heap (small and large allocations: brk
 * and mmap), stack, and the loop itself. */
static int check_user_pointers(struct rs_loop *loop, char *err, size_t errlen)
{
    void *small = malloc(64), *large = malloc(1u << 20);
    int local = 0;
    const void *bad = NULL;
    const void *probe[] = {small, large, &local, loop, loop->pool.mem};
    for (size_t i = 0; i < sizeof(probe) / sizeof(probe[0]) && !bad; i++)
        if (!ud_fits(probe[i]))
            bad = probe[i];
    bool oom = !small || !large;
    free(small);
    free(large);
    if (oom) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (bad) {
        snprintf(err, errlen,
                 "user-space address %p does not fit the 48 bits this backend packs "
                 "into user_data (pointer tagging or an address space above 2^48); "
                 "use --backend=epoll",
                 bad);
        return -EOVERFLOW;
    }
    return 0;
}

int ur_init(struct rs_loop *loop, const struct rs_config *cfg, char *err, size_t errlen)
{
    const struct rs_uring_support *support = rs_probe_uring_cached();
    if (!support->available) {
        snprintf(err, errlen, "io_uring is unavailable: %s", support->why);
        return -(support->unavailable_err ? support->unavailable_err : ENOSYS);
    }
    struct uring_options opts;
    rs_uring_options_read(cfg, &opts);
    uint32_t features;
    int rc = rs_uring_features_parse(opts.features, rs_uring_supported(support),
                                     &features, err, errlen);
    if (rc < 0)
        return rc;
    struct ur_state *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    st->opts = opts;
    st->features = features;
    loop->backend = st;
    loop->caps = RS_CAP_CONNECT | RS_CAP_SOCKET;
    rc = setup_ring(st, support, err, errlen);
    if (rc < 0) {
        free(st);
        loop->backend = NULL;
        return rc;
    }
    /* ur_get_sqe's SQE size, and run()'s CQE size: never the 128-byte
     * SQEs or 32-byte CQEs, which no op of ours needs. */
    assert(!(st->ring.flags & (IORING_SETUP_SQE128 | IORING_SETUP_CQE32)));
    st->cq_short_from = st->resize ? rs_cq_short_from(&st->ring) : UINT_MAX;
    /* liburing 2.3 picks its way to wait with a timeout from the ring's
     * features: without EXT_ARG it queues a timeout SQE, as it must on
     * kernels before 5.11 (on_cqe() skips that SQE's CQE). */
    if (!(st->features & UF_EXT_ARG))
        st->ring.features &= ~(unsigned)IORING_FEAT_EXT_ARG;
    rc = setup_registrations(loop, st, err, errlen);
    if (rc < 0) {
        ur_fini(loop);
        return rc;
    }
    setup_iowq(st); /* after them: the ring fd's registration makes the io-wq */
    rc = check_user_pointers(loop, err, errlen);
    if (rc < 0) {
        ur_fini(loop);
        return rc;
    }
    return 0;
}

void ur_fini(struct rs_loop *loop)
{
    struct ur_state *st = state(loop);
    if (!st)
        return;
    if (st->sqpoll_owner) {
        pthread_mutex_lock(&sqpoll_mu);
        sqpoll_owner_fd = -1; /* attached rings keep the poller alive */
        pthread_mutex_unlock(&sqpoll_mu);
    }
    io_uring_queue_exit(&st->ring);
    rs_cq_grower_release(&st->cq); /* rings replaced since the last turn */
    rs_wait_reg_free(&st->wreg);
    ur_splice_free(st->splice); /* the ring is gone: so are its splices */
    ur_zc_fini(loop, st);
    ur_hup_fini(st);
    ur_inc_fini(loop, st);
    free(st->br_pos);
    free(st->sockopt_wait);
    if (st->br)
        munmap(st->br, st->br_bytes);
    free(st);
    loop->backend = NULL;
}
