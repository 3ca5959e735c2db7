/* The io_uring backend's state, shared by its files (internal: not
 * installed, included only inside backend_uring/).
 *
 *   uring.c     what the backend is (its opening essay), the table,
 *               buffer returns, direct descriptors closed or given back
 *   uring_submit.c  an op's SQE (submit, cancel)
 *   uring_run.c     a CQE's way to the core, and the loop turn's wait
 *   setup.c     the ring, its registrations, the buffer pool handed over
 *   sockets.c   RS_OP_SOCKET: direct sockets and their TCP_NODELAY
 *   zerocopy.c  send_zc, its notifications and per-descriptor verdicts
 *   hangup.c    the hang-up guard of each multishot recv
 *   records.c   the slabs their per-request records come from
 *   bufinc.c    buf-inc: buffers of the ring shared by several receives
 *   splice.c    RS_OP_SENDFILE through a pipe (its own interface)
 *   handoff.c   connections passed between loops (its own interface)
 */
#ifndef RINGSERVE_URING_STATE_H
#define RINGSERVE_URING_STATE_H

#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "backend_table.h"
#include "features.h"
#include "handoff.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "options.h"
#include "probe.h"
#include "records.h"
#include "ring_resize.h"
#include "rs_build.h"
#include "splice.h"
#include "uring_util.h"
#include "wait_reg.h"

#ifndef IORING_CQE_F_NOTIF
#define IORING_CQE_F_NOTIF (1U << 3)
#endif

#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3) /* 6.2+ */
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

/* buf-inc: the kernel will keep filling this CQE's buffer (6.12; kernel
 * UAPI include/uapi/linux/io_uring.h, not in liburing 2.3's headers). */
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4) /* 6.10+, not in liburing 2.3's headers */
#endif

/* batch-wait: how long, from the start of a wait, the kernel may hold a
 * wake-up to gather as many completions as the last turn brought. */
#define BATCH_WAIT_US 20
#define BATCH_MAX     128
#define BGID          0

/* user_data = op pointer | generation << 48 | tag << 56. Linux hands user
 * space addresses below 2^47 (x86-64, 5-level paging included) or 2^48
 * (arm64, 52-bit VA included) unless a program maps above that on purpose,
 * which ringserve never does. Pointer tagging (arm64 TBI/MTE, HWASan) or
 * another architecture could break that, so ur_init() checks it once on
 * the memory ops live in (check_user_pointers) and refuses to start with
 * a clear message; the assert in ur_ud_of() only guards that check. */
enum {
    TAG_OP = 0,
    TAG_IGNORE = 1,
    TAG_WAKE = 2,
    TAG_ZC = 3,
    TAG_PROVIDE = 4,
    TAG_INBOX = 5,     /* a connection another loop handed us (handoff.c) */
    TAG_INBOX_END = 6, /* the inbox op's cancel, completed from run() */
    TAG_SOCKOPT = 7,   /* a new direct socket's TCP_NODELAY, the op's second step */
    TAG_SPLICE = 8,    /* a step of an RS_OP_SENDFILE (splice.c) */
    TAG_HUP = 9,       /* a multishot recv's hang-up guard (hup_rec) */
    TAG_LISTEN = 10,   /* a step of a direct listener's set-up (listen.c) */
};

/* RS_OP_SENDFILE's pipe: one splice pair moves up to this much, and every
 * splice is a hand-off to an io-wq worker, so the fewer the better (1 MiB
 * is fs.pipe-max-size's default, what an unprivileged user may ask). */
#define SPLICE_PIPE_SIZE (1u << 20)
#define UD_PTR_MASK      ((UINT64_C(1) << 48) - 1)

/* rs_op.bk_flags while the op belongs to this backend */
#define BKF_ZC 16u /* send_zc in flight; bk_ptr is its zc_rec */
/* The op's result was made in submit() by a plain syscall (RS_OP_SOCKET
 * as socket(2), RS_OP_SHUTDOWN as shutdown(2)), the fd or -errno in
 * bk_ptr, delivered by a NOP's CQE. Else RS_OP_SOCKET is IORING_OP_SOCKET
 * into a direct slot, then (RS_OPF_NODELAY) the setsockopt command, bk_ptr
 * the slot. */
#define BKF_DONE_NOW 32u
/* A multishot recv with a hang-up guard in flight; bk_ptr is its hup_rec. */
#define BKF_HUP 64u
/* Its guard cancelled the recv: the -ECANCELED is ours, not the core's. */
#define BKF_HUP_REARM 128u
/* RS_OP_RECV without buf-recycle: its IORING_OP_POLL_ADD is in flight, the
 * recv comes next (recv_after_poll) */
#define BKF_POLL_FIRST 4u
/* the core asked for a cancel: a poll that completes anyway issues no recv */
#define BKF_CANCEL_ASKED 8u
/* buf-inc: a pool read into a buffer set aside from the ring, bk_bid of
 * its rs_file_op (bufinc.c) */
#define BKF_SET_ASIDE 1u
/* RS_OP_SOCKET, RS_OP_HANDOFF, RS_OP_OPENAT (tried again when out of
 * descriptors: ur_fds_give_back), or an accept of direct descriptors: its
 * CQE needs more than forwarding its result (on_special_op_cqe); a flag,
 * so that on_cqe tests one byte */
#define BKF_KIND_CQE 2u

struct ur_state {
    struct io_uring ring;
    struct uring_options opts; /* this backend's command-line options */
    uint32_t features;
    bool zc_enabled;
    bool batch_wait;
    bool plain_wait; /* neither SQPOLL nor batch-wait: run()'s common case */
    bool sqpoll_owner;
    bool fixed;
    bool direct_socket; /* RS_OP_SOCKET may make direct sockets (UF_DIRECT_SOCKET) */
    const char *taskrun;
    /* io-wq's caps in force for this ring's task (bounded, unbounded), as
     * the kernel reports them, or as asked where it cannot yet (a 0 is
     * then the kernel's default); 0, 0: not known (setup_iowq) */
    unsigned iowq_max[2];
    /* provided buffer ring */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    unsigned br_mask;
    unsigned br_pending; /* buffers added since the last advance */
    uint16_t *br_pos;    /* bundles only: per bid, the ring slot it was last added at */
    bool br_plain;       /* a buffer ring of whole buffers, without br_pos: the
                            common case of a release (ur_buf_release) */
    bool lend_plain;     /* neither buf-inc nor bundles: a receive's buffer is
                            lent whole, as the CQE names it (on_op_cqe) */
    /* sends shorter than this are never zero-copy */
    uint32_t plain_send_max;
    /* Direct sockets the splice code holds between sendfile ops, kept
     * exact by it (ur_splice_new's nheld; 0 without splice): here, so
     * that every submit's test for them is one load of the hot state. */
    uint32_t splice_held;
    /* buf-inc (bufinc.c): per buffer of the ring, its fill and its slices
     * out; ids from ring_bufs up are set aside for file reads */
    struct inc_buf *inc;
    uint32_t ring_bufs;
    uint64_t wake_val;
    bool wake_armed;
    unsigned last_batch; /* CQEs reaped last turn: the next wait asks for as many */
    bool zc_warned;
    struct ur_records zc_recs; /* struct zc_rec, one per send_zc in flight */
    uint32_t zc_inflight;      /* records out: sends or notifications to come */
    uint8_t *zc_hold;          /* per bid: zero-copy sends still reading it */
    uint32_t zc_held;          /* buffers with zc_hold > 0 */
    uint8_t *zc_release;       /* per bid: the core released it meanwhile */
    /* Per descriptor (fd or direct slot): ZC_COPIED once the kernel
     * reported copying a zero-copy send on it. Zero copy to a local peer
     * (loopback) is a deferred copy plus a notification, slower than a
     * plain send, so we stop trying there. The low bits count closes of
     * that number, so a notification that outlives its connection cannot
     * judge the next one. */
    uint8_t *zc_fd;
    uint32_t zc_fd_cap;         /* descriptors zc_fd covers */
    struct ur_records hup_recs; /* struct hup_rec, one per armed guard */
    struct rs_op *inbox;        /* RS_FD_INBOX accept: where handed connections go */
    struct ur_splice *splice;   /* RS_OP_SENDFILE, when the kernel has splice */
    /* RS_OP_SOCKETs whose TCP_NODELAY command found no free SQE: retried
     * by run() before it waits. */
    struct rs_op **sockopt_wait;
    uint32_t nsockopt_wait, sockopt_wait_cap;
    bool sockopt_warned; /* the command failed once: said so */
    /* resize: the CQ grows (ring_resize.c) */
    bool resize;
    struct rs_cq_grower cq;
    /* resize: a turn bringing this many CQEs or more grows the CQ
     * (rs_cq_short_from, again after each resize); UINT_MAX without */
    unsigned cq_short_from;
    /* wait-reg: timed waits read their arguments from this page */
    bool wait_reg;
    struct rs_wait_reg wreg;
};

static inline struct ur_state *state(struct rs_loop *loop)
{
    return loop->backend;
}

static inline uint64_t ur_ud_of(struct rs_op *op, unsigned tag)
{
    uintptr_t p = (uintptr_t)op;
    assert((p & ~UD_PTR_MASK) == 0);
    return (uint64_t)p | (uint64_t)op->bk_gen << 48 | (uint64_t)tag << 56;
}

/* A submission slot, or NULL when the SQ stays full (logged). The common
 * case, a free slot, is inline; ur_get_sqe_flush pushes a full queue to the
 * kernel first. */
struct io_uring_sqe *ur_get_sqe_flush(struct ur_state *st);
static inline struct io_uring_sqe *ur_get_sqe(struct ur_state *st)
{
    /* io_uring_get_sqe, for this ring: its SQEs are never 128 bytes
     * (setup.c asserts it), and the head is read with acquire semantics,
     * which SQPOLL needs and which costs nothing more on x86. liburing
     * 2.3 tests both ring flags on every call. */
    struct io_uring_sq *sq = &st->ring.sq;
    unsigned tail = sq->sqe_tail;
    if (tail - __atomic_load_n(sq->khead, __ATOMIC_ACQUIRE) < sq->ring_entries) {
        sq->sqe_tail = tail + 1;
        return &sq->sqes[tail & sq->ring_mask];
    }
    return ur_get_sqe_flush(st);
}

/* io_uring_submit_and_wait(ring, 1) for this ring (no SQPOLL): publish
 * the queued SQEs and enter once to submit them and wait for a
 * completion. liburing 2.3 does exactly this for a wait of one (it enters
 * for every wait_nr > 0), behind a generic path that tests the ring's
 * flags and its own for every call; the loop's turn pays it twice per
 * round trip at one connection. The tail is ours to publish: ur_get_sqe
 * already moves sqe_tail by hand, and without SQPOLL the kernel reads the
 * tail only inside io_uring_enter, so a plain store is enough (liburing's
 * own). Returns what io_uring_enter returns: SQEs submitted, or -errno. */
static inline int ur_submit_and_wait1(struct ur_state *st)
{
    struct io_uring_sq *sq = &st->ring.sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        __atomic_store_n(sq->ktail, tail, __ATOMIC_RELAXED);
    }
    unsigned flags = IORING_ENTER_GETEVENTS;
    if (st->features & UF_RING_FD)
        flags |= IORING_ENTER_REGISTERED_RING;
    unsigned submit = tail - __atomic_load_n(sq->khead, __ATOMIC_RELAXED);
    return io_uring_enter((unsigned)st->ring.enter_ring_fd, submit, 1, flags, NULL);
}

/* The descriptor kind travels with the op: with fixed-files, accepted
 * sockets are direct descriptors while outbound ones may be plain fds. */
static inline void ur_set_fd(const struct rs_op *op, struct io_uring_sqe *sqe)
{
    if (op->flags & RS_OPF_DIRECT)
        sqe->flags |= IOSQE_FIXED_FILE;
}

/* The zero-copy verdicts are kept per descriptor number of the loop's main
 * kind (direct slots with fixed-files, else fds): the other kind's numbers
 * would collide with them, so its sends simply never go zero-copy. */
static inline bool ur_zc_kind_ok(const struct ur_state *st, const struct rs_op *op)
{
    return st->fixed == ((op->flags & RS_OPF_DIRECT) != 0);
}

/* A result made now, delivered from run() like any other (BKF_DONE_NOW). */
static inline void ur_done_now(struct rs_op *op, int res, struct io_uring_sqe *sqe)
{
    op->bk_flags |= BKF_DONE_NOW;
    op->bk_ptr = (void *)(intptr_t)res;
    io_uring_prep_nop(sqe);
}

/* Buffers returned since the last turn become visible to the kernel in one
 * store. */
static inline void ur_refill(struct ur_state *st)
{
    if (st->br_pending) {
        io_uring_buf_ring_advance(st->br, (int)st->br_pending);
        st->br_pending = 0;
    }
}

/* uring.c: the table, the buffers' way back, descriptors */
void ur_buf_return(struct rs_loop *loop, struct ur_state *st, uint16_t bid);
void ur_close_slot(struct ur_state *st, int slot);
bool ur_fds_give_back(struct ur_state *st, int32_t res);

/* uring_submit.c: rs_backend_ops.submit and .cancel, a send's SQE, and
 * the SQEs a completion asks for again (uring_run.c's special cases) */
int ur_submit(struct rs_loop *loop, struct rs_op *op);
int ur_cancel(struct rs_loop *loop, struct rs_op *op);
int ur_prep_send(struct rs_loop *loop, struct ur_state *st, struct rs_op *op);
void ur_recv_after_poll(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                        int32_t res);
bool ur_rearm_after_hup(struct rs_loop *loop, struct ur_state *st, struct rs_op *op);
bool ur_reopen(struct rs_loop *loop, struct ur_state *st, struct rs_op *op);

/* uring_run.c: rs_backend_ops.run, and one CQE wherever run() would
 * send it */
int ur_run(struct rs_loop *loop, int timeout_ms);
void ur_dispatch_cqe(struct rs_loop *loop, struct ur_state *st,
                     const struct io_uring_cqe *cqe);

/* listen.c: rs_backend_ops.listen (direct-listen) */
int ur_listen(struct rs_loop *loop, const struct sockaddr *addr, uint32_t addrlen,
              unsigned flags, int backlog);

/* setup.c: the backend's init and fini */
int ur_init(struct rs_loop *loop, const struct rs_config *cfg, char *err, size_t errlen);
void ur_fini(struct rs_loop *loop);

/* sockets.c */
void ur_prep_socket(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                    struct io_uring_sqe *sqe);
void ur_retry_sockopts(struct ur_state *st);
void ur_socket_cqe(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                   const struct io_uring_cqe *cqe, unsigned tag);

/* zerocopy.c */
struct zc_rec;
bool ur_prep_send_zc(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                     struct io_uring_sqe *sqe);
void ur_zc_fd_closed(struct ur_state *st, int fd);
void ur_zc_cqe(struct rs_loop *loop, struct ur_state *st, struct zc_rec *r,
               const struct io_uring_cqe *cqe);
int ur_zc_setup(struct rs_loop *loop, struct ur_state *st);
void ur_zc_fini(struct rs_loop *loop, struct ur_state *st);

/* bufinc.c */
struct inc_buf;
/* An id of the buf-inc ring (not one set aside for file reads). */
static inline bool ur_inc_ring_bid(const struct ur_state *st, uint32_t bid)
{
    return st->inc && bid < st->ring_bufs;
}
int ur_inc_setup(struct rs_loop *loop, struct ur_state *st);
void ur_inc_fini(struct rs_loop *loop, struct ur_state *st);
/* A receive's res > 0 bytes in ring buffer bid, lent as a slice: where
 * they start. */
uint32_t ur_inc_recv(struct rs_loop *loop, struct ur_state *st, uint16_t bid, int32_t res,
                     uint32_t cqe_flags);
/* A stale CQE's bytes in bid: dropped, not lent. */
void ur_inc_drop(struct rs_loop *loop, struct ur_state *st, uint16_t bid, int32_t res,
                 uint32_t cqe_flags);
void ur_inc_release(struct rs_loop *loop, struct ur_state *st, uint16_t bid);
/* bid may be nobody's now (its last zero-copy send is done): lent no
 * more, and back into the ring if the kernel is done with it. */
void ur_inc_settle(struct rs_loop *loop, struct ur_state *st, uint16_t bid);
/* A set-aside id returned: back on the free stack. */
void ur_inc_put_aside(struct rs_loop *loop, uint16_t bid);
/* RS_OP_READ with RS_OPF_POOL_BUF, and its CQE (BKF_SET_ASIDE). */
void ur_inc_prep_read(struct rs_loop *loop, struct rs_op *op, struct io_uring_sqe *sqe);
void ur_inc_read_done(struct rs_loop *loop, struct rs_op *op, int32_t res);

/* hangup.c */
struct hup_rec;
void ur_hup_arm(struct ur_state *st, struct rs_op *op);
void ur_hup_end(struct ur_state *st, struct rs_op *op);
void ur_hup_forget(struct rs_op *op);
void ur_hup_cqe(struct ur_state *st, struct hup_rec *r, int32_t res);
void ur_hup_fini(struct ur_state *st);

#endif
