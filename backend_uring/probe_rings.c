/* The io_uring probe's trials on a ring alone, no socket: which set-up
 * flags a ring accepts, which registrations it takes (buffer rings, a
 * sparse file table, its own fd), ring memory and waits (resize, wait
 * regions), the registrations that need a network card (NAPI, zcrx), and
 * what IORING_REGISTER_QUERY answers. Where liburing 2.3 has no call or
 * struct for a trial, it asks the syscall directly with the kernel's
 * layout. Built only with liburing (RS_HAVE_URING); backend_uring/
 * probe_uring.c decides the order and records the findings.
 */
#include "probe_trials.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ring_resize.h"
#include "uring_util.h"
#include "wait_reg.h"

/* Newer than Debian's liburing 2.3 headers. Kernel ABI. */
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif

/* Create and destroy a ring with `p->flags`; p receives what the kernel
 * wrote back. 0 or -errno. */
static int ring_try(struct io_uring_params *p)
{
    struct io_uring ring;
    int ret = io_uring_queue_init_params(RING_ENTRIES, &ring, p);

    if (ret < 0)
        return ret;
    io_uring_queue_exit(&ring);
    return 0;
}

static bool setup_works(unsigned flags)
{
    struct io_uring_params p;

    memset(&p, 0, sizeof(p));
    p.flags = flags;
    p.sq_thread_idle = 10; /* SQPOLL only: ms before the thread sleeps */
    return ring_try(&p) == 0;
}

static bool cqsize_works(void)
{
    struct io_uring_params p;

    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = 8 * RING_ENTRIES;
    return ring_try(&p) == 0 && p.cq_entries >= 8 * RING_ENTRIES;
}

/* liburing 2.3 cannot map a ring without the SQ index array, so ask the
 * syscall directly and throw the fd away: the flag is what we test. */
static bool no_sqarray_works(void)
{
    struct io_uring_params p;
    long fd;

    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_NO_SQARRAY;
    fd = syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (fd < 0)
        return false;
    close((int)fd);
    return true;
}

void probe_try_setup_flags(struct rs_uring_support *s)
{
    s->sqpoll = setup_works(IORING_SETUP_SQPOLL);
    s->single_issuer = setup_works(IORING_SETUP_SINGLE_ISSUER);
    /* DEFER_TASKRUN is only accepted together with SINGLE_ISSUER. */
    s->defer_taskrun =
        setup_works(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
    s->coop_taskrun = setup_works(IORING_SETUP_COOP_TASKRUN);
    /* TASKRUN_FLAG needs COOP_TASKRUN (or DEFER_TASKRUN) to mean anything. */
    s->taskrun_flag = setup_works(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
    s->submit_all = setup_works(IORING_SETUP_SUBMIT_ALL);
    s->cqsize = cqsize_works();
    s->no_sqarray = no_sqarray_works();
}

/* --- registrations --- */

/* IOU_PBUF_RING_INC (6.12) is refused with -EINVAL by older kernels. */
bool probe_try_buf_ring(unsigned flags)
{
    struct io_uring ring;
    struct buf_ring b = {.br = NULL};
    bool ok;

    if (!probe_ring_open(&ring))
        return false;
    ok = probe_buf_ring_setup(&ring, &b, flags) == 0;
    io_uring_queue_exit(&ring);
    probe_buf_ring_free(&b);
    return ok;
}

bool probe_try_sparse_files(void)
{
    struct io_uring ring;
    bool ok;

    if (!probe_ring_open(&ring))
        return false;
    ok = io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0;
    io_uring_queue_exit(&ring);
    return ok;
}

bool probe_try_ring_fd(void)
{
    struct io_uring ring;
    bool ok;

    if (!probe_ring_open(&ring))
        return false;
    ok = io_uring_register_ring_fd(&ring) == 1; /* returns how many were registered */
    io_uring_queue_exit(&ring);
    return ok;
}

/* --- ring memory and waits (6.13) --- */

/* n NOPs, user_data base, base + 1, ...: submitted as the SQ fills. */
static bool nops(struct io_uring *ring, unsigned base, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        if (!sqe && io_uring_submit(ring) >= 0)
            sqe = io_uring_get_sqe(ring);
        if (!sqe)
            return false;
        io_uring_prep_nop(sqe);
        sqe->user_data = base + i;
    }
    return io_uring_submit(ring) >= 0;
}

/* Completions 0 .. n-1, in order, all there. */
static bool reap_in_order(struct io_uring *ring, unsigned n)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    bool ok = true;
    io_uring_for_each_cqe(ring, head, cqe)
    {
        ok = ok && cqe->user_data == seen && cqe->res == 0;
        seen++;
    }
    io_uring_cq_advance(ring, seen);
    return ok && seen == n && !io_uring_cq_has_overflow(ring);
}

/* What the backend's resize does: a DEFER_TASKRUN ring with a CQ of 8
 * holding 6 completions grows to 64 (rs_ring_resize_cq, the layout check
 * included), then takes 40 more: all 46 in order, none lost. */
bool probe_try_resize_rings(void)
{
    struct io_uring ring;
    struct io_uring_params p;
    struct rs_ring_retired old = {{NULL}, {0}};
    bool ok;

    memset(&p, 0, sizeof(p));
    p.flags =
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = 8;
    if (io_uring_queue_init_params(4, &ring, &p) < 0)
        return false;
    ok = rs_ring_layout_known(&p) && nops(&ring, 0, 6) &&
         rs_ring_resize_cq(&ring, 64, &old) == 0 && ring.cq.ring_entries == 64 &&
         nops(&ring, 6, 40) && reap_in_order(&ring, 46);
    io_uring_queue_exit(&ring);
    rs_ring_retired_unmap(&old);
    return ok;
}

/* A wait region registered on a disabled ring; a wait read from it must
 * time out (-ETIME: the region's 1 ms), and one with a NOP queued must
 * submit it and find its completion. */
bool probe_try_wait_region(void)
{
    struct io_uring ring;
    struct io_uring_params p;
    struct rs_wait_reg w = {NULL, 0};
    const struct __kernel_timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
    bool ok;

    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_R_DISABLED;
    if (io_uring_queue_init_params(RING_ENTRIES, &ring, &p) < 0)
        return false;
    ok = rs_wait_reg_setup(&ring, &w) == 0 &&
         rs_wait_reg_enter(&ring, &w, 1, &ms, 0, ring.ring_fd, false) == -ETIME;
    if (ok) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        io_uring_prep_nop(sqe);
        sqe->user_data = 0;
        ok = rs_wait_reg_enter(&ring, &w, 1, &ms, 0, ring.ring_fd, false) == 1 &&
             reap_in_order(&ring, 1);
    }
    io_uring_queue_exit(&ring);
    rs_wait_reg_free(&w);
    return ok;
}

/* --- need a network card: tried, never used --- */

enum {
    REG_NAPI = 27,   /* IORING_REGISTER_NAPI (6.9) */
    UNREG_NAPI = 28, /* IORING_UNREGISTER_NAPI */
    REG_ZCRX = 32,   /* IORING_REGISTER_ZCRX_IFQ (6.15) */
    REG_QUERY = 35,  /* IORING_REGISTER_QUERY */
    ZCRX_AREA = 16 * 4096,
    ZCRX_RQ = 64,
};

/* struct io_uring_napi; the kernel's names. */
struct napi_reg {
    uint32_t busy_poll_to;
    uint8_t prefer_busy_poll, opcode, pad[2];
    uint32_t op_param, resv;
};

/* The kernel accepts a NAPI busy-poll setting on any ring; what it then
 * polls are the NAPI instances its sockets' packets came through, and a
 * loopback socket has none. */
bool probe_try_napi(void)
{
    struct io_uring ring;
    struct napi_reg n = {.busy_poll_to = 1};
    bool ok;

    if (!probe_ring_open(&ring))
        return false;
    ok = io_uring_register((unsigned)ring.ring_fd, REG_NAPI, &n, 1) == 0;
    if (ok)
        io_uring_register((unsigned)ring.ring_fd, UNREG_NAPI, &n, 1);
    io_uring_queue_exit(&ring);
    return ok;
}

/* struct io_uring_zcrx_area_reg, io_uring_region_desc, io_uring_zcrx_ifq_reg. */
struct zcrx_area {
    uint64_t addr, len, rq_area_token;
    uint32_t flags, dmabuf_fd;
    uint64_t resv2[2];
};
struct zcrx_region {
    uint64_t user_addr, size;
    uint32_t flags, id;
    uint64_t mmap_offset, resv[4];
};
struct zcrx_ifq {
    uint32_t if_idx, if_rxq, rq_entries, flags;
    uint64_t area_ptr, region_ptr;
    uint32_t off_head, off_tail, off_rqes, off_resv2;
    uint64_t off_resv[2];
    uint32_t zcrx_id, rx_buf_len;
    uint64_t resv[3];
};

/* Register a zero-copy receive queue: loopback's queue 0 (if_idx 1), or no
 * device at all (ZCRX_REG_NODEV, newer kernels: a copying fallback). zcrx
 * needs DEFER_TASKRUN and 32-byte CQEs. 0 or -errno. */
int probe_try_zcrx(uint32_t if_idx, uint32_t flags)
{
    struct io_uring ring;
    struct io_uring_params p;
    int rc;

    memset(&p, 0, sizeof(p));
    p.flags =
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQE32;
    rc = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (rc < 0)
        return rc;
    void *area =
        mmap(NULL, ZCRX_AREA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *rq =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED || rq == MAP_FAILED) {
        rc = -ENOMEM;
    } else {
        struct zcrx_area a = {.addr = (uintptr_t)area, .len = ZCRX_AREA};
        struct zcrx_region r = {.user_addr = (uintptr_t)rq, .size = 4096, .flags = 1};
        struct zcrx_ifq z = {.if_idx = if_idx,
                             .rq_entries = ZCRX_RQ,
                             .flags = flags,
                             .area_ptr = (uintptr_t)&a,
                             .region_ptr = (uintptr_t)&r};
        rc = io_uring_register((unsigned)ring.ring_fd, REG_ZCRX, &z, 1);
    }
    io_uring_queue_exit(&ring);
    if (area != MAP_FAILED)
        munmap(area, ZCRX_AREA);
    if (rq != MAP_FAILED)
        munmap(rq, 4096);
    return rc;
}

/* struct io_uring_query_hdr and io_uring_query_opcode (linux/io_uring/query.h). */
struct query_hdr {
    uint64_t next_entry, query_data;
    uint32_t query_op, size;
    int32_t result;
    uint32_t resv[3];
};
struct query_opcodes {
    uint32_t nr_request_opcodes, nr_register_opcodes;
    uint64_t feature_flags, ring_setup_flags, enter_flags, sqe_flags;
    uint32_t nr_query_opcodes, pad;
};

/* IORING_REGISTER_QUERY without a ring (fd -1): how many request and
 * registration opcodes the kernel has. */
void probe_try_query(struct rs_uring_support *s)
{
    struct query_opcodes q;
    struct query_hdr h;

    memset(&q, 0, sizeof(q));
    memset(&h, 0, sizeof(h));
    h.query_data = (uintptr_t)&q;
    h.size = sizeof(q);
    h.query_op = 0; /* IO_URING_QUERY_OPCODES */
    if (syscall(__NR_io_uring_register, -1, REG_QUERY, &h, 0) == 0 && h.result == 0) {
        s->query = true;
        s->query_request_ops = q.nr_request_opcodes;
        s->query_register_ops = q.nr_register_opcodes;
    }
}

/* IORING_SETUP_SQ_REWIND (submission always from SQE 0), asked with
 * NO_SQARRAY as its users do, by the syscall: liburing 2.3 cannot map such
 * a ring. */
bool probe_try_sq_rewind(void)
{
    struct io_uring_params p;
    long fd;

    memset(&p, 0, sizeof(p));
    p.flags = (1U << 20) | IORING_SETUP_NO_SQARRAY; /* IORING_SETUP_SQ_REWIND */
    fd = syscall(__NR_io_uring_setup, RING_ENTRIES, &p);
    if (fd < 0)
        return false;
    close((int)fd);
    return true;
}
