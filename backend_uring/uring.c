/* The io_uring backend: real completions.
 *
 * io_uring is two rings shared with the kernel. We write requests into the
 * submission queue (SQ) — "receive on this socket", "send these bytes" —
 * and the kernel writes results into the completion queue (CQ): bytes
 * received, bytes sent, -errno. The kernel does the IO itself, waiting for
 * readiness internally (FAST_POLL) instead of telling us about it. So where
 * the epoll backend must perform every recv/send and remember readiness,
 * this file only describes work and forwards results: cqe->res goes to the
 * core unchanged. One io_uring_enter per loop turn submits everything
 * queued during the previous turn and waits for the next completions.
 *
 * The features, each switchable with --uring-features:
 *  - multishot accept/recv: one SQE keeps producing CQEs (IORING_CQE_F_MORE)
 *    until an error, EOF, cancel or -ENOBUFS ends it; each multishot recv
 *    goes with a hang-up guard, a one-shot poll, because the recv itself
 *    can miss an EOF or reset that came before its last read (hup_rec);
 *  - buf-ring: a provided-buffer ring (built by hand with mmap and
 *    io_uring_register_buf_ring: liburing 2.3 has no io_uring_setup_buf_ring).
 *    The kernel picks a buffer only when data arrives, so idle connections
 *    hold none. It is the loop's buffer pool, and the core returns each
 *    buffer when the echo that carried it completes. An empty ring gives
 *    -ENOBUFS, which ends a multishot recv: a state, not an error (the core
 *    re-arms once buffers come back);
 *  - fixed-files: accepted sockets are direct descriptors (a private table
 *    in the ring, no fget/fput per op, no process fd used);
 *  - ring-fd: the ring's own fd is registered, saving an fget per enter;
 *  - defer-taskrun: SINGLE_ISSUER|DEFER_TASKRUN, completions are produced
 *    only when we ask for them, in our thread, in batches (else
 *    COOP_TASKRUN|TASKRUN_FLAG); with SUBMIT_ALL and a CQ 8x the SQ;
 *  - send-zc: sends of --zc-threshold bytes or more are zero-copy; the
 *    buffer is ours again only after the second, IORING_CQE_F_NOTIF CQE,
 *    which also says whether the kernel copied after all (to a loopback
 *    peer it must): such a connection gets plain sends from then on;
 *  - sqpoll (opt-in): a kernel thread polls the SQ, submission costs no
 *    syscall while it is awake.
 *  - ext-arg: a wait with a timeout passes it to io_uring_enter
 *    (IORING_ENTER_EXT_ARG, 5.11). Without it liburing queues an
 *    IORING_OP_TIMEOUT SQE, which completes with the next CQE or when
 *    the time is up, and posts a CQE of its own (user_data
 *    LIBURING_UDATA_TIMEOUT) that run() must skip;
 *  - shutdown-op: RS_OP_SHUTDOWN is IORING_OP_SHUTDOWN (5.11); without it
 *    shutdown(2) is called in submit() and its result carried to run() on
 *    a NOP, as for a plain socket below (a direct descriptor has no fd for
 *    shutdown(2), but direct descriptors need 5.19 anyway);
 *  - buf-recycle: without buf-ring, a single-shot recv that finds no data
 *    and waits holds no provided buffer meanwhile: the kernel recycles it.
 *    Older kernels (Debian's 5.10 among them: tools/kernels found it)
 *    keep the buffer the recv took at issue, so every idle connection pins
 *    one and, once the pool is gone, a connection with data starves for
 *    ever. There a recv first waits with IORING_OP_POLL_ADD (POLLIN) and
 *    is issued when the socket is readable: a buffer is taken only when
 *    there is data for it, at the price of an SQE and a CQE per read;
 *  - direct-socket: outbound sockets (RS_OP_SOCKET) are direct
 *    descriptors too, made by IORING_OP_SOCKET into a slot the kernel
 *    picks, TCP_NODELAY set by the SOCKET_URING_OP_SETSOCKOPT command
 *    (6.7+; a direct socket has no fd for setsockopt(2)). Where either is
 *    missing, without fixed-files, or when the table is full (-ENFILE),
 *    RS_OP_SOCKET falls back to socket(2): a plain fd, its result carried
 *    to run() on a NOP. So one loop may hold both kinds: the kind travels
 *    with each op (RS_OPF_DIRECT), never with the loop.
 * With fixed-files and several loops, loop 0 accepts for all and passes
 * each direct descriptor to the loop with the most room (--accept=handoff,
 * IORING_OP_MSG_RING; see handoff.c): N tables, filled evenly.
 * Without buf-ring (e.g. --uring-features=none) the pool is handed over
 * with the older IORING_OP_PROVIDE_BUFFERS: the kernel still picks buffers
 * as data arrives, but each returned buffer costs an SQE of its own.
 *
 * Never IOSQE_ASYNC on sockets: it forces a worker thread where FAST_POLL
 * would wait for readiness for free.
 *
 * Files are where completions matter most. A regular file is never "not
 * ready", so readiness (epoll) has nothing to say about it, and the epoll
 * backend needs worker threads. Here a file op is one more SQE:
 * IORING_OP_OPENAT2 (RESOLVE_BENEATH checked by the kernel during the
 * walk), READ/WRITE at an offset, STATX, FSYNC, CLOSE. The kernel first tries
 * the call without blocking (a read from the page cache completes inline,
 * no thread involved) and only when it must wait for the disk hands it to
 * its own workers (io-wq); either way the loop never blocks. A read may
 * also pick a buffer from the ring, like a recv (RS_OPF_POOL_BUF). Files
 * are plain descriptors even when sockets are direct ones.
 *
 * A file sent to a socket (RS_OP_SENDFILE) has no single SQE: io_uring has
 * no sendfile. splice.c makes it from IORING_OP_SPLICE through a pipe of
 * its own, file -> pipe -> socket, which the kernel always runs in io-wq
 * workers; the essay at its top says how a full socket, a short file and
 * a cancel are handled. Sockets stay blocking for it: io_uring's own
 * sends misbehave on O_NONBLOCK ones (see there).
 */
#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <signal.h>
#include <unistd.h>

#include "backend.h"
#include "backend_table.h"
#include "features.h"
#include "handoff.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "options.h"
#include "probe.h"
#include "rs_build.h"
#include "splice.h"
#include "uring_util.h"

#ifndef IORING_CQE_F_NOTIF
#define IORING_CQE_F_NOTIF (1U << 3)
#endif

#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3) /* 6.2+ */
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

#ifndef IORING_RECVSEND_BUNDLE
#define IORING_RECVSEND_BUNDLE (1U << 4) /* 6.10+, not in liburing 2.3's headers */
#endif

/* batch-wait: how long the kernel may hold a wake-up to gather a batch. */
#define BATCH_WAIT_US 20
#define BATCH_MAX     128
#define BGID          0

/* user_data = op pointer | generation << 48 | tag << 56. Linux hands user
 * space addresses below 2^47 (x86-64, 5-level paging included) or 2^48
 * (arm64, 52-bit VA included) unless a program maps above that on purpose,
 * which ringserve never does. Pointer tagging (arm64 TBI/MTE, HWASan) or
 * another architecture could break that, so ur_init() checks it once on
 * the memory ops live in (check_user_pointers) and refuses to start with
 * a clear message; the assert in ud_of() only guards that check. */
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

/* A zero-copy send in flight. Its first CQE completes the send (the core
 * may send the next bytes at once); its second, IORING_CQE_F_NOTIF, says
 * the kernel no longer reads the memory. On TCP that is when the data is
 * ACKed, which a peer waiting for the rest of a message may delay by
 * ~40 ms: holding the *send* until the notification would stall every
 * large echo on delayed ACKs. So only the *buffer* waits. */
struct zc_rec {
    struct zc_rec *next;
    struct rs_op *op; /* NULL once the first CQE was delivered */
    int32_t bid;      /* pool buffer held until the notification, or -1 */
    int fd;           /* the socket, for the copied verdict */
    uint8_t gen;
    uint8_t fd_epoch; /* which use of that descriptor number sent it */
};

#define ZC_SLAB 64
struct zc_slab {
    struct zc_slab *next;
    struct zc_rec recs[ZC_SLAB];
};

/* A multishot recv's hang-up guard: a one-shot IORING_OP_POLL_ADD for
 * POLLRDHUP|POLLERR|POLLHUP on the same socket, armed with the recv.
 *
 * Why: a multishot recv that has read the socket empty (msg_inq 0, no
 * IORING_CQE_F_SOCK_NONEMPTY) goes back to waiting for a wake-up without
 * looking at the socket's state again. When the peer's EOF or reset came
 * before that last read (its wake-up already spent, e.g. found by the
 * poll armed right after an -EAGAIN, or a queue of more than one issue's
 * worth of data and then an AF_UNIX EOF), no wake-up ever comes: the recv
 * stays armed on a dead socket for good (seen on Linux 6.18; liburing
 * issue 1549 is the same family). A one-shot poll has no such shortcut: it
 * completes as soon as the state is there, at arm time or later. When it
 * does while the recv is still armed, the recv is cancelled and the core
 * arms a fresh one, whose first read sees the socket as it is: what is
 * still queued, then the EOF or the reset. Bytes stay in the socket until
 * read, so none is lost. The guard ends with the recv: its final CQE
 * cancels it. */
struct hup_rec {
    struct hup_rec *next; /* free list */
    struct rs_op *op;     /* the recv; NULL once it ended */
};

#define HUP_SLAB 64
struct hup_slab {
    struct hup_slab *next;
    struct hup_rec recs[HUP_SLAB];
};

struct ur_state {
    struct io_uring ring;
    struct uring_options opts; /* this backend's command-line options */
    uint32_t features;
    bool zc_enabled;
    bool batch_wait;
    bool sqpoll_owner;
    bool fixed;
    bool direct_socket; /* RS_OP_SOCKET may make direct sockets (UF_DIRECT_SOCKET) */
    const char *taskrun;
    /* provided buffer ring */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    unsigned br_mask;
    unsigned br_pending; /* buffers added since the last advance */
    uint16_t *br_pos;    /* bundles only: per bid, the ring slot it was last added at */
    uint64_t wake_val;
    bool wake_armed;
    unsigned last_batch; /* CQEs reaped last turn: the next wait asks for as many */
    bool zc_warned;
    struct zc_rec *zc_free; /* recycled records */
    struct zc_slab *zc_slabs;
    uint32_t zc_inflight; /* records out: sends or notifications to come */
    uint8_t *zc_hold;     /* per bid: zero-copy sends still reading it */
    uint32_t zc_held;     /* buffers with zc_hold > 0 */
    uint8_t *zc_release;  /* per bid: the core released it meanwhile */
    /* Per descriptor (fd or direct slot): ZC_COPIED once the kernel
     * reported copying a zero-copy send on it. Zero copy to a local peer
     * (loopback) is a deferred copy plus a notification, slower than a
     * plain send, so we stop trying there. The low bits count closes of
     * that number, so a notification that outlives its connection cannot
     * judge the next one. */
    uint8_t *zc_fd;
    uint32_t zc_fd_cap;       /* descriptors zc_fd covers */
    struct hup_rec *hup_free; /* recycled hang-up guards */
    struct hup_slab *hup_slabs;
    struct rs_op *inbox;      /* RS_FD_INBOX accept: where handed connections go */
    struct ur_splice *splice; /* RS_OP_SENDFILE, when the kernel has splice */
    /* RS_OP_SOCKETs whose TCP_NODELAY command found no free SQE: retried
     * by run() before it waits. */
    struct rs_op **sockopt_wait;
    uint32_t nsockopt_wait, sockopt_wait_cap;
    bool sockopt_warned; /* the command failed once: said so */
};

static struct ur_state *state(struct rs_loop *loop)
{
    return loop->backend;
}

static uint64_t ud_of(struct rs_op *op, unsigned tag)
{
    uintptr_t p = (uintptr_t)op;
    assert((p & ~UD_PTR_MASK) == 0);
    return (uint64_t)p | (uint64_t)op->bk_gen << 48 | (uint64_t)tag << 56;
}

static struct io_uring_sqe *get_sqe(struct ur_state *st)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&st->ring);
    /* SQ full: push it to the kernel and take a fresh slot. The kernel may
     * refuse for a moment (-EBUSY: completions to flush first, -EAGAIN:
     * memory), so try a few times; flushing overflowed CQEs into the ring
     * (io_uring_get_events) dispatches nothing, so this is safe anywhere. */
    for (int tries = 0; !sqe && tries < 64; tries++) {
        int rc = io_uring_submit(&st->ring);
        if (st->features & UF_SQPOLL)
            io_uring_sqring_wait(&st->ring);
        else if (rc == -EBUSY || rc == -EAGAIN)
            io_uring_get_events(&st->ring);
        sqe = io_uring_get_sqe(&st->ring);
    }
    if (!sqe)
        rs_log_error("io_uring submission queue stuck full");
    return sqe;
}

/* The descriptor kind travels with the op: with fixed-files, accepted
 * sockets are direct descriptors while outbound ones may be plain fds. */
static void set_fd(const struct rs_op *op, struct io_uring_sqe *sqe)
{
    if (op->flags & RS_OPF_DIRECT)
        sqe->flags |= IOSQE_FIXED_FILE;
}

/* The zero-copy verdicts are kept per descriptor number of the loop's main
 * kind (direct slots with fixed-files, else fds): the other kind's numbers
 * would collide with them, so its sends simply never go zero-copy. */
static bool zc_kind_ok(const struct ur_state *st, const struct rs_op *op)
{
    return st->fixed == ((op->flags & RS_OPF_DIRECT) != 0);
}

static struct zc_rec *zc_get(struct ur_state *st)
{
    if (!st->zc_free) {
        /* Records come in slabs kept for the ring's lifetime, so fini can
         * free those whose notification never came. */
        struct zc_slab *slab = malloc(sizeof(*slab));
        if (!slab)
            return NULL;
        slab->next = st->zc_slabs;
        st->zc_slabs = slab;
        for (size_t i = 0; i < ZC_SLAB; i++) {
            slab->recs[i].next = st->zc_free;
            st->zc_free = &slab->recs[i];
        }
    }
    struct zc_rec *r = st->zc_free;
    st->zc_free = r->next;
    st->zc_inflight++;
    return r;
}

static void zc_put(struct ur_state *st, struct zc_rec *r)
{
    assert(st->zc_inflight > 0);
    st->zc_inflight--;
    r->next = st->zc_free;
    st->zc_free = r;
}

static struct hup_rec *hup_get(struct ur_state *st)
{
    if (!st->hup_free) {
        /* Slabs live as long as the ring: fini frees guards still out. */
        struct hup_slab *slab = malloc(sizeof(*slab));
        if (!slab)
            return NULL;
        slab->next = st->hup_slabs;
        st->hup_slabs = slab;
        for (size_t i = 0; i < HUP_SLAB; i++) {
            slab->recs[i].next = st->hup_free;
            st->hup_free = &slab->recs[i];
        }
    }
    struct hup_rec *r = st->hup_free;
    st->hup_free = r->next;
    return r;
}

static uint64_t hup_ud(const struct hup_rec *r)
{
    return (uint64_t)(uintptr_t)r | (uint64_t)TAG_HUP << 56;
}

/* Arm the guard of a multishot recv just prepared. Without a record or an
 * SQE the recv goes unguarded, as it always did. */
static void hup_arm(struct ur_state *st, struct rs_op *op)
{
    struct hup_rec *r = hup_get(st);
    if (!r)
        return;
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe) {
        r->next = st->hup_free;
        st->hup_free = r;
        return;
    }
    io_uring_prep_poll_add(sqe, op->fd, POLLRDHUP | POLLERR | POLLHUP);
    set_fd(op, sqe);
    io_uring_sqe_set_data64(sqe, hup_ud(r));
    r->op = op;
    op->bk_flags |= BKF_HUP;
    op->bk_ptr = r;
}

/* The recv ended (its final CQE): its guard goes too. The record is
 * recycled when the guard's own CQE comes. */
static void hup_end(struct ur_state *st, struct rs_op *op)
{
    struct hup_rec *r = op->bk_ptr;
    op->bk_flags &= (uint8_t)~BKF_HUP;
    op->bk_ptr = NULL;
    r->op = NULL;
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return; /* it completes at the socket's hang-up or at fini */
    io_uring_prep_cancel64(sqe, hup_ud(r), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
}

/* The guard completed: the peer hung up (or it was cancelled). */
static void on_hup_cqe(struct ur_state *st, struct hup_rec *r, int32_t res)
{
    struct rs_op *op = r->op;
    r->next = st->hup_free;
    st->hup_free = r;
    if (!op)
        return; /* the recv ended first */
    /* Checked in release builds: an op that moved on is not this guard's. */
    if (!(op->bk_flags & BKF_HUP) || op->bk_ptr != r) {
        rs_log_error("a hang-up guard outlived its receive: ignored");
        return;
    }
    op->bk_flags &= (uint8_t)~BKF_HUP;
    op->bk_ptr = NULL;
    /* A hang-up: EOF or reset (a reset shows all three). An error alone
     * (POLLERR) need not end the input, so it is left to the recv. */
    if (res <= 0 || !(res & (POLLRDHUP | POLLHUP)))
        return;
    /* The recv is still armed (else op would be NULL). It is cancelled by
     * its user_data, which names this request and no other: a shutdown by
     * descriptor number could land on a new connection, since the kernel
     * runs IORING_OP_SHUTDOWN on a worker and looks a direct slot up only
     * there, after a close and an accept may have refilled it (seen: a
     * healthy client read EOF half-way). Its -ECANCELED never reaches the
     * core: on_cqe arms the same op again (rearm_after_hup), and the new
     * recv's first read finds what is left, then the EOF or the reset. */
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return;
    io_uring_prep_cancel64(sqe, ud_of(op, TAG_OP), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    op->bk_flags |= BKF_HUP_REARM;
}

#define ZC_COPIED 0x80u
#define ZC_EPOCH  0x7fu

static uint8_t zc_fd_get(const struct ur_state *st, int fd)
{
    return fd >= 0 && (uint32_t)fd < st->zc_fd_cap ? st->zc_fd[fd] : 0;
}

/* The descriptor is being closed: its next owner starts afresh. */
static void zc_fd_closed(struct ur_state *st, int fd)
{
    if (fd >= 0 && (uint32_t)fd < st->zc_fd_cap)
        st->zc_fd[fd] = (uint8_t)((st->zc_fd[fd] + 1) & ZC_EPOCH);
}

/* A notification said the kernel copied what r sent. */
static void zc_fd_copied(struct rs_loop *loop, struct ur_state *st,
                         const struct zc_rec *r)
{
    uint8_t v = zc_fd_get(st, r->fd);
    if (st->opts.zc_keep_copied || (uint32_t)r->fd >= st->zc_fd_cap ||
        (v & ZC_EPOCH) != r->fd_epoch || (v & ZC_COPIED))
        return;
    st->zc_fd[r->fd] = (uint8_t)(v | ZC_COPIED);
    loop->stats.zc_copied++;
}

/* Zero-copy only for memory whose lifetime we control: a pool buffer (held
 * back from reuse until the notification) or memory the core declares
 * static. A heap chunk could be freed while the kernel still reads it. */
static bool prep_send_zc(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                         struct io_uring_sqe *sqe)
{
    int32_t bid = -1;
    if (!zc_kind_ok(st, op))
        return false;
    uint8_t fd_state = zc_fd_get(st, op->fd);
    if (fd_state & ZC_COPIED)
        return false;
    /* A zero-copy send pins its buffer until the data is ACKed, which a
     * peer that stops reading postpones forever. Cap what may be pinned so
     * such peers cannot drain the pool: past a quarter of the pool pinned,
     * or half of it lent, plain sends (which copy into the socket) it is. */
    const struct rs_bufpool *pool = &loop->pool;
    if (st->zc_held >= pool->count / 4 || pool->lent > pool->count / 2)
        return false;
    if (rs_bufpool_contains(pool, op->buf)) {
        bid = rs_bufpool_bid(pool, op->buf);
        if (st->zc_hold[bid] == UINT8_MAX)
            return false;
    } else if (!(op->flags & RS_OPF_STATIC_BUF)) {
        return false;
    }
    struct zc_rec *r = zc_get(st);
    if (!r)
        return false;
    *r = (struct zc_rec){.op = op,
                         .bid = bid,
                         .fd = op->fd,
                         .gen = op->bk_gen,
                         .fd_epoch = (uint8_t)(fd_state & ZC_EPOCH)};
    if (bid >= 0) {
        assert(st->zc_hold[bid] < UINT8_MAX);
        if (st->zc_hold[bid]++ == 0)
            st->zc_held++;
    }
    op->bk_flags |= BKF_ZC;
    op->bk_ptr = r;
    io_uring_prep_send_zc(sqe, op->fd, op->buf, op->len, MSG_NOSIGNAL,
                          IORING_SEND_ZC_REPORT_USAGE);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)r | (uint64_t)TAG_ZC << 56);
    return true;
}

static int prep_send(struct rs_loop *loop, struct ur_state *st, struct rs_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    int more = (op->flags & RS_OPF_MORE) ? MSG_MORE : 0;
    if (op->flags & RS_OPF_MSG) {
        /* Several queued chunks in one SQE (the kernel copies the msghdr
         * when it prepares the request; ours stays valid anyway). */
        io_uring_prep_sendmsg(sqe, op->fd, (const struct msghdr *)op->buf,
                              MSG_NOSIGNAL | more);
        io_uring_sqe_set_data64(sqe, ud_of(op, TAG_OP));
        set_fd(op, sqe);
        return 0;
    }
    bool zc = st->zc_enabled && op->len >= st->opts.zc_threshold && !more &&
              prep_send_zc(loop, st, op, sqe);
    if (!zc) {
        io_uring_prep_send(sqe, op->fd, op->buf, op->len, MSG_NOSIGNAL | more);
        io_uring_sqe_set_data64(sqe, ud_of(op, TAG_OP));
    }
    set_fd(op, sqe);
    return 0;
}

/* Close a direct descriptor nobody else will: a connection handed on, or
 * one handed to us after the inbox closed. */
static void close_slot(struct ur_state *st, int slot)
{
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return;
    zc_fd_closed(st, slot);
    io_uring_prep_close_direct(sqe, (unsigned)slot);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
}

/* File ops: plain descriptors, never IOSQE_FIXED_FILE. */
static void prep_file(struct rs_loop *loop, struct rs_op *op, struct io_uring_sqe *sqe)
{
    struct rs_file_op *f = rs_file_op_of(op);
    switch (op->kind) {
    case RS_OP_OPENAT:
        /* struct rs_open_how is laid out as struct open_how; the kernel
         * copies it at submission. */
        io_uring_prep_openat2(sqe, op->fd, f->path, (struct open_how *)(void *)&f->how);
        break;
    case RS_OP_READ:
        if (op->flags & RS_OPF_POOL_BUF) {
            uint32_t len =
                op->len && op->len < loop->pool.size ? op->len : loop->pool.size;
            io_uring_prep_read(sqe, op->fd, NULL, len, f->off);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = BGID;
        } else {
            io_uring_prep_read(sqe, op->fd, f->dst, op->len, f->off);
        }
        break;
    case RS_OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, op->len, f->off);
        break;
    case RS_OP_STATX:
        io_uring_prep_statx(sqe, op->fd, f->path, f->at_flags, f->mask, f->stx);
        break;
    case RS_OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd,
                            op->len == RS_FSYNC_DATA ? IORING_FSYNC_DATASYNC : 0);
        break;
    }
}

/* Closing a direct descriptor removes it from the ring's table, but the
 * socket lives on while any request issued before the removal is still in
 * flight: up to at least Linux 6.12 those pin the whole table generation,
 * and a multishot accept or another connection's multishot recv stays in
 * flight for ever. The peer then saw no FIN until some unrelated request
 * ended (tools/kernels found it on 6.1 and 6.12: an idle-closed client got
 * its EOF seconds late). So shut the socket down first, in a hard link (the
 * close runs even when the shutdown fails, e.g. ENOTCONN after a reset):
 * the FIN goes out now, whenever the file itself is freed. Returns the SQE
 * for the close: `sqe` itself when no second one is free (then as before). */
static struct io_uring_sqe *prep_shutdown_before_close(struct ur_state *st,
                                                       const struct rs_op *op,
                                                       struct io_uring_sqe *sqe)
{
    if (io_uring_sq_space_left(&st->ring) == 0)
        return sqe;
    io_uring_prep_shutdown(sqe, op->fd, SHUT_RDWR);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    return get_sqe(st);
}

/* RS_OPF_RESET: abort the connection, then close. SO_LINGER {1, 0} would
 * need a setsockopt command on a direct descriptor (6.7+), and its reset
 * goes out only when the file is freed, which in-flight requests of other
 * connections delay on kernels up to at least 6.12 (see above). connect(2)
 * to an AF_UNSPEC address instead "dissolves the association" (connect(2)):
 * for TCP the kernel runs tcp_disconnect(), which sends the reset at once
 * from any synchronised state, on every kernel with IORING_OP_CONNECT
 * (5.5+), plain fd or direct descriptor alike. Hard-linked: the close runs
 * whatever the connect returns. The caller checked there is room for the
 * second SQE; returns it. */
static const struct sockaddr unspec_addr = {.sa_family = AF_UNSPEC};

static struct io_uring_sqe *prep_reset_before_close(struct ur_state *st,
                                                    const struct rs_op *op,
                                                    struct io_uring_sqe *sqe)
{
    io_uring_prep_connect(sqe, op->fd, &unspec_addr, sizeof(unspec_addr));
    set_fd(op, sqe);
    sqe->flags |= IOSQE_IO_HARDLINK;
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    return get_sqe(st);
}

/* TCP_NODELAY's value, read by the kernel when the command runs. */
static const int one = 1;

/* A result made now, delivered from run() like any other (BKF_DONE_NOW). */
static void done_now(struct rs_op *op, int res, struct io_uring_sqe *sqe)
{
    op->bk_flags |= BKF_DONE_NOW;
    op->bk_ptr = (void *)(intptr_t)res;
    io_uring_prep_nop(sqe);
}

/* The fallback: a plain socket, made now. fd or -errno. */
static int plain_socket(struct rs_loop *loop, const struct rs_op *op)
{
    return rs_tcp_socket(loop, (int)op->len, (op->flags & RS_OPF_NODELAY) != 0);
}

static void prep_socket(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                        struct io_uring_sqe *sqe)
{
    if ((op->flags & RS_OPF_DIRECT) && st->direct_socket) {
        rs_prep_socket_alloc(sqe, (int)op->len);
        return;
    }
    done_now(op, plain_socket(loop, op), sqe);
}

/* TCP_NODELAY on the new direct socket in op->bk_ptr, as a command. false:
 * no SQE free. */
static bool prep_sockopt(struct ur_state *st, struct rs_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return false;
    rs_prep_setsockopt_cmd(sqe, (int)(intptr_t)op->bk_ptr, IPPROTO_TCP, TCP_NODELAY,
                           &one);
    sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64(sqe, ud_of(op, TAG_SOCKOPT));
    return true;
}

/* No SQE for the command right now: the op waits, and run() tries again
 * before its next wait (retry_sockopts). false: no memory to wait. */
static bool park_sockopt(struct ur_state *st, struct rs_op *op)
{
    if (st->nsockopt_wait == st->sockopt_wait_cap) {
        uint32_t cap = st->sockopt_wait_cap ? st->sockopt_wait_cap * 2 : 8;
        struct rs_op **w = realloc(st->sockopt_wait, cap * sizeof(*w));
        if (!w)
            return false;
        st->sockopt_wait = w;
        st->sockopt_wait_cap = cap;
    }
    st->sockopt_wait[st->nsockopt_wait++] = op;
    return true;
}

static void retry_sockopts(struct ur_state *st)
{
    if (st->nsockopt_wait == 0)
        return; /* the common case; and memmove must not see a NULL array */
    uint32_t done = 0;
    while (done < st->nsockopt_wait && prep_sockopt(st, st->sockopt_wait[done]))
        done++;
    memmove(st->sockopt_wait, st->sockopt_wait + done,
            (st->nsockopt_wait - done) * sizeof(*st->sockopt_wait));
    st->nsockopt_wait -= done;
}

/* A CQE of RS_OP_SOCKET: deliver the plain fd, or take the direct slot and
 * set TCP_NODELAY on it before the core sees it. A direct socket that
 * cannot have TCP_NODELAY is not delivered (rule 9): its slot is closed and
 * a plain socket, whose setsockopt(2) reports its own failure, goes
 * instead; the first such failure is a warning. */
static void on_socket_cqe(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                          const struct io_uring_cqe *cqe, unsigned tag)
{
    if (tag == TAG_SOCKOPT) {
        int slot = (int)(intptr_t)op->bk_ptr;
        if (cqe->res >= 0) {
            rs_op_complete(loop, op, slot, RS_CF_DIRECT, 0);
            return;
        }
        if (!st->sockopt_warned) {
            st->sockopt_warned = true;
            rs_log_error("warning: SOCKET_URING_OP_SETSOCKOPT(TCP_NODELAY) on a direct "
                         "socket: %s; such sockets are replaced by plain ones",
                         strerror(-cqe->res));
        }
        close_slot(st, slot);
        rs_op_complete(loop, op, plain_socket(loop, op), 0, 0);
        return;
    }
    int32_t res = cqe->res;
    if (res < 0 && res != -ECANCELED) {
        /* -ENFILE: the direct table is full; anything else the kernel
         * refuses: a plain socket may still do. */
        rs_op_complete(loop, op, plain_socket(loop, op), 0, 0);
        return;
    }
    if (res >= 0 && (op->flags & RS_OPF_NODELAY)) {
        op->bk_ptr = (void *)(intptr_t)res;
        if (prep_sockopt(st, op) || park_sockopt(st, op))
            return;
        /* Neither an SQE nor memory to wait for one: plain it is. */
        close_slot(st, res);
        rs_op_complete(loop, op, plain_socket(loop, op), 0, 0);
        return;
    }
    rs_op_complete(loop, op, res, res >= 0 ? RS_CF_DIRECT : 0, 0);
}

static void prep_recv(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                      struct io_uring_sqe *sqe, bool multi)
{
    /* Buffer ring: the kernel chooses the buffer when data arrives. */
    if (multi && (st->features & UF_MULTISHOT_RECV))
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
    else
        io_uring_prep_recv(sqe, op->fd, NULL, loop->pool.size, 0);
    /* Bundles: one CQE may fill several buffers in a row. */
    if (st->features & UF_BUNDLE)
        sqe->ioprio |= IORING_RECVSEND_BUNDLE;
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    set_fd(op, sqe);
}

/* The POLLIN of a recv without buf-recycle came: now the recv, which finds
 * the data at once and so holds its buffer only while there is data. An
 * error (-ECANCELED...) or a cancel asked meanwhile ends the op instead. */
static void recv_after_poll(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                            int32_t res)
{
    op->bk_flags &= ~(unsigned)BKF_POLL_FIRST;
    if (res < 0 || (op->bk_flags & BKF_CANCEL_ASKED)) {
        rs_op_complete(loop, op, res < 0 ? res : -ECANCELED, 0, 0);
        return;
    }
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe) {
        /* as when the pool is empty: the core arms the recv again */
        rs_op_complete(loop, op, -ENOBUFS, 0, 0);
        return;
    }
    prep_recv(loop, st, op, sqe, false);
    io_uring_sqe_set_data64(sqe, ud_of(op, TAG_OP));
}

/* A multishot recv its hang-up guard cancelled (on_hup_cqe): the same op,
 * same generation, armed again with a guard of its own. false: no SQE, the
 * -ECANCELED goes to the core, which arms a new recv itself. */
static bool rearm_after_hup(struct rs_loop *loop, struct ur_state *st, struct rs_op *op)
{
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return false;
    prep_recv(loop, st, op, sqe, true);
    io_uring_sqe_set_data64(sqe, ud_of(op, TAG_OP));
    hup_arm(st, op);
    return true;
}

static int ur_submit(struct rs_loop *loop, struct rs_op *op)
{
    struct ur_state *st = state(loop);
    /* A guard still tied to this op's previous life (its last CQE never
     * reached hup_end: dropped as stale) must not act on the new one. */
    if (op->bk_flags & BKF_HUP)
        ((struct hup_rec *)op->bk_ptr)->op = NULL;
    op->bk_gen++;
    op->bk_flags = 0;
    if (op->kind == RS_OP_SEND)
        return prep_send(loop, st, op);
    if (op->kind == RS_OP_SENDFILE)
        return st->splice ? ur_splice_submit(st->splice, op) : -EOPNOTSUPP;
    if (op->kind == RS_OP_ACCEPT && op->fd == RS_FD_INBOX) {
        /* Nothing to submit: the other loops' MSG_RINGs post to our CQ. */
        if (!(loop->caps & RS_CAP_HANDOFF) || st->inbox)
            return -EINVAL;
        st->inbox = op;
        return 0;
    }
    if (rs_op_is_file(op) && !(loop->caps & RS_CAP_FILE_NATIVE))
        return -EOPNOTSUPP; /* a kernel older than 5.6 */
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    bool multi = op->flags & RS_OPF_MULTISHOT;
    switch (op->kind) {
    case RS_OP_ACCEPT:
        /* The listener is a plain fd; with fixed-files the accepted socket
         * goes straight into the ring's table. */
        if (multi && (st->features & UF_MULTISHOT_ACCEPT)) {
            if (st->fixed)
                io_uring_prep_multishot_accept_direct(sqe, op->fd, NULL, NULL, 0);
            else
                io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
        } else if (st->fixed) {
            rs_prep_accept_alloc(sqe, op->fd);
        } else {
            io_uring_prep_accept(sqe, op->fd, NULL, NULL, SOCK_CLOEXEC);
        }
        break;
    case RS_OP_RECV:
        if (!(st->features & (UF_BUF_RING | UF_BUF_RECYCLE))) {
            /* a waiting recv would pin its buffer: wait for data first */
            io_uring_prep_poll_add(sqe, op->fd, POLLIN);
            op->bk_flags |= BKF_POLL_FIRST;
            set_fd(op, sqe);
            break;
        }
        prep_recv(loop, st, op, sqe, multi);
        break;
    case RS_OP_SHUTDOWN:
        if ((st->features & UF_SHUTDOWN_OP) || (op->flags & RS_OPF_DIRECT)) {
            io_uring_prep_shutdown(sqe, op->fd, SHUT_WR);
            set_fd(op, sqe);
        } else {
            done_now(op, shutdown(op->fd, SHUT_WR) == 0 ? 0 : -errno, sqe);
        }
        break;
    case RS_OP_CONNECT:
        /* The kernel waits for the handshake itself (no EINPROGRESS here):
         * the CQE carries connect(2)'s final result. */
        io_uring_prep_connect(sqe, op->fd, (const struct sockaddr *)op->buf,
                              (socklen_t)op->len);
        set_fd(op, sqe);
        break;
    case RS_OP_HANDOFF: {
        const struct rs_loop *to = op->buf;
        if (!(loop->caps & RS_CAP_HANDOFF) || to->ops != loop->ops || to == loop)
            return -EINVAL;
        rs_prep_msg_send_fd(sqe, state((struct rs_loop *)to)->ring.ring_fd,
                            (unsigned)op->fd, (uint64_t)TAG_INBOX << 56);
        break;
    }
    case RS_OP_SOCKET:
        prep_socket(loop, st, op, sqe);
        break;
    case RS_OP_CLOSE:
        if (op->flags & RS_OPF_RESET) {
            /* The reset needs an SQE of its own: without one, refuse
             * (the core retries) rather than close with a FIN. */
            if (io_uring_sq_space_left(&st->ring) == 0) {
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
                return -EBUSY;
            }
            sqe = prep_reset_before_close(st, op, sqe);
        } else if (op->flags & RS_OPF_DIRECT) {
            sqe = prep_shutdown_before_close(st, op, sqe);
        }
        if (zc_kind_ok(st, op))
            zc_fd_closed(st, op->fd);
        if (op->flags & RS_OPF_DIRECT) {
            io_uring_prep_close_direct(sqe, (unsigned)op->fd);
        } else {
            io_uring_prep_close(sqe, op->fd);
        }
        break;
    case RS_OP_OPENAT:
    case RS_OP_READ:
    case RS_OP_WRITE:
    case RS_OP_STATX:
    case RS_OP_FSYNC:
        prep_file(loop, op, sqe);
        break;
    default:
        /* The SQE is taken: left as it is, the kernel would run whatever
         * it held last. A refused op must leave no trace. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
        return -EINVAL;
    }
    io_uring_sqe_set_data64(sqe, ud_of(op, TAG_OP));
    if (op->kind == RS_OP_RECV && multi && (st->features & UF_MULTISHOT_RECV))
        hup_arm(st, op);
    return 0;
}

static int ur_cancel(struct rs_loop *loop, struct rs_op *op)
{
    struct ur_state *st = state(loop);
    if (op->kind == RS_OP_SENDFILE)
        return st->splice ? ur_splice_cancel(st->splice, op) : -ENOENT;
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return -EBUSY;
    if (op == st->inbox) {
        /* Its -ECANCELED comes from run(), through a NOP's CQE. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, (uint64_t)TAG_INBOX_END << 56);
        return 0;
    }
    op->bk_flags |= BKF_CANCEL_ASKED;
    uint64_t target = ud_of(op, TAG_OP);
    if (op->bk_flags & BKF_ZC)
        target = (uint64_t)(uintptr_t)op->bk_ptr | (uint64_t)TAG_ZC << 56;
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    return 0;
}

static void arm_wake(struct ur_state *st, struct rs_loop *loop)
{
    if (st->wake_armed)
        return;
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe)
        return; /* retried next turn */
    io_uring_prep_read(sqe, loop->wake_fd, &st->wake_val, sizeof(st->wake_val), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_WAKE << 56);
    st->wake_armed = true;
}

static void buf_return(struct rs_loop *loop, struct ur_state *st, uint16_t bid);

/* The last zero-copy send reading a buffer is done with it. */
static void zc_unhold(struct rs_loop *loop, struct ur_state *st, int32_t bid)
{
    if (bid < 0)
        return;
    assert(st->zc_hold[bid] > 0);
    if (--st->zc_hold[bid] > 0)
        return;
    st->zc_held--;
    if (st->zc_release[bid]) {
        /* The core released it earlier; it stayed counted as lent, so the
         * core's view of pool pressure included it. */
        st->zc_release[bid] = 0;
        rs_bufpool_unlend(&loop->pool, (uint16_t)bid);
        buf_return(loop, st, (uint16_t)bid);
    }
}

static void on_zc_cqe(struct rs_loop *loop, struct ur_state *st, struct zc_rec *r,
                      const struct io_uring_cqe *cqe)
{
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        assert(r->op == NULL);
        if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
            zc_fd_copied(loop, st, r);
        zc_unhold(loop, st, r->bid);
        zc_put(st, r);
        return;
    }
    struct rs_op *op = r->op;
    int32_t res = cqe->res;
    bool notif_follows = cqe->flags & IORING_CQE_F_MORE;
    r->op = NULL;
    op->bk_flags &= (uint8_t)~BKF_ZC;
    op->bk_ptr = NULL;
    if (!notif_follows) {
        zc_unhold(loop, st, r->bid);
        zc_put(st, r);
    }
    if (op->bk_gen != r->gen) {
        rs_log_error("dropping a stale zero-copy completion (res %d)", res);
        return;
    }
    if (res == -ENOMEM || res == -EOPNOTSUPP) {
        /* e.g. a low RLIMIT_MEMLOCK: plain sends from now on. */
        if (!st->zc_warned) {
            rs_log_error("send_zc failed (%s); falling back to plain send",
                         strerror(-res));
            st->zc_warned = true;
        }
        st->zc_enabled = false;
        if (prep_send(loop, st, op) == 0)
            return;
        res = -EBUSY;
    }
    rs_op_complete(loop, op, res, 0, 0);
}

/* A bundle CQE: res bytes in ceil(res / size) buffers taken from the ring
 * in order, starting with the one named in the CQE. The following ids are
 * read from the ring slots after it: the kernel consumed those slots, and
 * we cannot have refilled them yet (the ring never holds more than the
 * buffers nobody holds, and these are held until delivered; CQEs arrive in
 * consumption order). The core gets one completion per buffer, all but the
 * last flagged MORE, so its one-buffer-per-completion model holds. */
static void deliver_bundle(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                           const struct io_uring_cqe *cqe)
{
    uint32_t size = loop->pool.size;
    uint16_t first = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
    uint16_t pos = st->br_pos[first];
    uint32_t left = (uint32_t)cqe->res;
    assert((left + size - 1) / size <= loop->pool.count);
    loop->stats.bundles++;
    for (uint16_t i = 0; left > 0; i++) {
        /* Read slot pos+i before delivering buffer i: the slot can only be
         * refilled after buffer i itself has been released. */
        uint16_t bid =
            i == 0 ? first : st->br->bufs[(uint16_t)(pos + i) & st->br_mask].bid;
        uint32_t len = left < size ? left : size;
        left -= len;
        uint32_t flags = RS_CF_BUFFER;
        if (left > 0 || (cqe->flags & IORING_CQE_F_MORE))
            flags |= RS_CF_MORE;
        rs_bufpool_lend(&loop->pool, bid);
        rs_op_complete(loop, op, (int32_t)len, flags, bid);
    }
}

static void on_op_cqe(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                      const struct io_uring_cqe *cqe)
{
    uint32_t flags = 0;
    uint16_t bid = 0;
    int32_t res = cqe->res;
    if ((cqe->flags & IORING_CQE_F_BUFFER) && cqe->res > (int32_t)loop->pool.size &&
        (st->features & UF_BUNDLE)) {
        deliver_bundle(loop, st, op, cqe);
        return;
    } else if (cqe->flags & IORING_CQE_F_BUFFER) {
        /* Only a CQE flagged F_BUFFER carries one: EOF and errors don't. */
        bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (res > 0) {
            rs_bufpool_lend(&loop->pool, bid);
            flags |= RS_CF_BUFFER;
        } else {
            buf_return(loop, st, bid); /* picked, but nothing to lend */
        }
    }
    if (cqe->flags & IORING_CQE_F_MORE)
        flags |= RS_CF_MORE;
    if (op->kind == RS_OP_ACCEPT && res >= 0 && st->fixed)
        flags |= RS_CF_DIRECT;
    rs_op_complete(loop, op, res, flags, bid);
}

static void on_cqe(struct rs_loop *loop, struct ur_state *st,
                   const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    unsigned tag = (unsigned)(ud >> 56);
    /* liburing's own timeout SQE of a wait without ext-arg: its CQE comes
     * when the time is up, or after the CQE that ended the wait. */
    if (tag == TAG_IGNORE || ud == LIBURING_UDATA_TIMEOUT)
        return;
    if (tag == TAG_WAKE) {
        st->wake_armed = false;
        return;
    }
    if (tag == TAG_PROVIDE) {
        /* A returned buffer the kernel refused would be lost for good. */
        if (cqe->res < 0) {
            rs_log_error("IORING_OP_PROVIDE_BUFFERS(bid %u): %s; retrying",
                         (unsigned)(ud & 0xffff), strerror(-cqe->res));
            buf_return(loop, st, (uint16_t)(ud & 0xffff));
        }
        return;
    }
    if (tag == TAG_SPLICE) {
        ur_splice_cqe(st->splice, loop, ud, cqe->res);
        return;
    }
    if (tag == TAG_ZC) {
        on_zc_cqe(loop, st, (struct zc_rec *)(uintptr_t)(ud & UD_PTR_MASK), cqe);
        return;
    }
    if (tag == TAG_HUP) {
        on_hup_cqe(st, (struct hup_rec *)(uintptr_t)(ud & UD_PTR_MASK), cqe->res);
        return;
    }
    if (tag == TAG_INBOX) {
        if (st->inbox)
            rs_op_complete(loop, st->inbox, cqe->res,
                           RS_CF_MORE | (cqe->res >= 0 ? RS_CF_DIRECT : 0), 0);
        else if (cqe->res >= 0)
            close_slot(st, cqe->res); /* arrived after we stopped taking them */
        return;
    }
    if (tag == TAG_INBOX_END) {
        struct rs_op *op = st->inbox;
        st->inbox = NULL;
        if (op)
            rs_op_complete(loop, op, -ECANCELED, 0, 0);
        return;
    }
    struct rs_op *op = (struct rs_op *)(uintptr_t)(ud & UD_PTR_MASK);
    if ((uint8_t)(ud >> 48) != op->bk_gen) {
        rs_log_error("dropping a stale completion (res %d)", cqe->res);
        /* A buffer the kernel picked for it must still go back. */
        if (cqe->flags & IORING_CQE_F_BUFFER)
            buf_return(loop, st, (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT));
        return;
    }
    if (op->bk_flags & BKF_DONE_NOW) {
        rs_op_complete(loop, op, (int32_t)(intptr_t)op->bk_ptr, 0, 0);
        return;
    }
    if (op->bk_flags & BKF_POLL_FIRST) {
        recv_after_poll(loop, st, op, cqe->res);
        return;
    }
    if (op->kind == RS_OP_SOCKET) {
        on_socket_cqe(loop, st, op, cqe, tag);
        return;
    }
    if (op->kind == RS_OP_HANDOFF && cqe->res >= 0)
        close_slot(st, op->fd); /* the other ring has its own reference now */
    if ((op->bk_flags & BKF_HUP) && !(cqe->flags & IORING_CQE_F_MORE))
        hup_end(st, op);
    if ((op->bk_flags & BKF_HUP_REARM) && !(cqe->flags & IORING_CQE_F_MORE)) {
        op->bk_flags &= (uint8_t)~BKF_HUP_REARM;
        if (cqe->res == -ECANCELED && !(op->bk_flags & BKF_CANCEL_ASKED) &&
            rearm_after_hup(loop, st, op))
            return;
    }
    on_op_cqe(loop, st, op, cqe);
}

/* Buffers returned since the last turn become visible to the kernel in one
 * store. */
static void refill(struct ur_state *st)
{
    if (st->br_pending) {
        io_uring_buf_ring_advance(st->br, (int)st->br_pending);
        st->br_pending = 0;
    }
}

static struct __kernel_timespec ms_to_ts(int ms)
{
    return (struct __kernel_timespec){.tv_sec = ms / 1000,
                                      .tv_nsec = (ms % 1000) * 1000000L};
}

/* Submit, then wait for up to `want` completions, but no longer than
 * BATCH_WAIT_US for the batch once one has arrived (IORING_FEAT_MIN_TIMEOUT,
 * 6.12+). liburing 2.3 has no wrapper for that wait, and how it publishes
 * the SQ tail is its own business (private fields), so this uses only
 * documented interfaces: queued SQEs go to the kernel with io_uring_submit(),
 * and the wait is io_uring_enter2(2) on the ring fd with
 * IORING_ENTER_EXT_ARG and a struct io_uring_getevents_arg whose `pad`
 * field is the kernel's min_wait_usec. The price: a second syscall on turns
 * that have something to submit. */
static int batch_enter(struct ur_state *st, unsigned want, int timeout_ms)
{
    struct io_uring *ring = &st->ring;
    if (io_uring_sq_ready(ring) > 0) {
        int rc = io_uring_submit(ring);
        if (rc < 0)
            return rc;
    }
    /* No timeout wanted: a long one (1 s), re-armed each turn. */
    struct __kernel_timespec ts = ms_to_ts(timeout_ms >= 0 ? timeout_ms : 1000);
    /* In order (sigmask, sigmask_sz, min wait, ts): the third field is
     * `pad` in liburing 2.3's header and `min_wait_usec` in newer ones. */
    struct io_uring_getevents_arg arg = {0, _NSIG / 8, BATCH_WAIT_US,
                                         (uint64_t)(uintptr_t)&ts};
    return io_uring_enter2((unsigned)ring->ring_fd, 0, want,
                           IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG,
                           (sigset_t *)(void *)&arg, sizeof(arg));
}

static int ur_run(struct rs_loop *loop, int timeout_ms)
{
    struct ur_state *st = state(loop);
    struct io_uring_cqe *cqe;
    int dispatched = 0;
    arm_wake(st, loop);
    retry_sockopts(st);
    refill(st);
    /* One io_uring_enter below, whichever way (liburing 2.3 enters for
     * every wait with wait_nr > 0; with SQPOLL it may skip one). */
    loop->stats.waits++;
    int rc;
    if (st->features & UF_SQPOLL) {
        /* The SQ thread submits; we only wait (never a busy-wait on peek). */
        io_uring_submit(&st->ring);
        if (timeout_ms == 0) {
            rc = 0;
        } else if (timeout_ms < 0) {
            rc = io_uring_wait_cqe(&st->ring, &cqe);
        } else {
            struct __kernel_timespec ts = ms_to_ts(timeout_ms);
            rc = io_uring_wait_cqe_timeout(&st->ring, &cqe, &ts);
        }
    } else if (st->batch_wait && timeout_ms != 0 && st->last_batch > 1) {
        rc = batch_enter(st, st->last_batch, timeout_ms);
    } else if (timeout_ms == 0) {
        rc = io_uring_submit_and_get_events(&st->ring);
    } else if (timeout_ms < 0) {
        rc = io_uring_submit_and_wait(&st->ring, 1);
    } else {
        struct __kernel_timespec ts = ms_to_ts(timeout_ms);
        rc = io_uring_submit_and_wait_timeout(&st->ring, &cqe, 1, &ts, NULL);
    }
    /* -ETIME: the timeout expired; -EINTR: a signal; -EBUSY/-EAGAIN: the
     * kernel is short of CQ space or memory right now. None is fatal: reap
     * what is there, and the next turn submits again. */
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
        return rc;
    /* The kernel holds completions the CQ had no room for (a tiny ring
     * under load); counted so a test can prove that path was taken. */
    if (io_uring_cq_has_overflow(&st->ring))
        loop->stats.cq_overflows++;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&st->ring, head, cqe)
    {
        on_cqe(loop, st, cqe);
        n++;
    }
    io_uring_cq_advance(&st->ring, n);
    dispatched += (int)n;
    st->last_batch = n < BATCH_MAX ? n : BATCH_MAX;
    return rc == -EINTR ? -EINTR : dispatched;
}

static void buf_return(struct rs_loop *loop, struct ur_state *st, uint16_t bid)
{
    if (st->features & UF_BUF_RING) {
        io_uring_buf_ring_add(st->br, rs_bufpool_ptr(&loop->pool, bid), loop->pool.size,
                              bid, (int)st->br_mask, (int)st->br_pending);
        if (st->br_pos)
            st->br_pos[bid] = (uint16_t)(st->br->tail + st->br_pending);
        st->br_pending++;
        return;
    }
    /* Without a ring, each buffer goes back with an SQE of its own: the
     * cost the buffer ring (5.19) was invented to remove. */
    struct io_uring_sqe *sqe = get_sqe(st);
    if (!sqe) {
        rs_log_error("cannot return buffer %u: submission queue full", bid);
        return;
    }
    io_uring_prep_provide_buffers(sqe, rs_bufpool_ptr(&loop->pool, bid),
                                  (int)loop->pool.size, 1, BGID, bid);
    io_uring_sqe_set_data64(sqe, (uint64_t)TAG_PROVIDE << 56 | bid);
}

static void ur_buf_release(struct rs_loop *loop, uint16_t bid)
{
    struct ur_state *st = state(loop);
    /* Checked in release builds too: a buffer added to the ring twice
     * would be filled for two connections at once. */
    if (!rs_bufpool_release_ok(&loop->pool, bid))
        return;
    if (st->zc_hold && st->zc_hold[bid]) {
        if (st->zc_release[bid]) { /* released twice while a send_zc holds it */
            loop->pool.violations++;
            rs_log_error("contract violation: buffer %u returned twice; refused", bid);
            return;
        }
        st->zc_release[bid] = 1; /* returned at the last notification */
        return;
    }
    rs_bufpool_clear_loan(&loop->pool, bid); /* checked above */
    buf_return(loop, st, bid);
}

static int setup_buf_ring(struct rs_loop *loop, struct ur_state *st, char *err,
                          size_t errlen)
{
    uint32_t count = loop->pool.count;
    int rc;
    const char *what;
    st->br = rs_buf_ring_register(&st->ring, count, BGID, 0, &st->br_bytes, &rc, &what);
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
    for (uint32_t i = 0; i < count; i++)
        buf_return(loop, st, (uint16_t)i);
    refill(st);
    /* The kernel owns every id now; the free stack is not used. */
    loop->pool.nfree = 0;
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
    struct io_uring_sqe *sqe = get_sqe(st);
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
        buf_return(loop, st, (uint16_t)bid);
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
            p.cq_entries = st->opts.ring_entries * 8;
        }
        if (sup->submit_all)
            p.flags |= IORING_SETUP_SUBMIT_ALL;
    }
    if (!(st->features & UF_SQPOLL)) {
        int rc = io_uring_queue_init_params(st->opts.ring_entries, &st->ring, &p);
        if (rc < 0)
            snprintf(err, errlen, "io_uring_queue_init: %s", strerror(-rc));
        return rc;
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
    return get_sqe(st);
}

/* RS_OP_SENDFILE: splice (5.7) through a pipe, waiting for room in the
 * socket with a poll. Without them the op is refused (-EOPNOTSUPP) and the
 * capability not declared: the core copies instead. */
static int setup_splice(struct rs_loop *loop, struct ur_state *st, char *err,
                        size_t errlen)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(&st->ring);
    bool ok = p && io_uring_opcode_supported(p, IORING_OP_SPLICE) &&
              io_uring_opcode_supported(p, IORING_OP_POLL_ADD) &&
              io_uring_opcode_supported(p, IORING_OP_LINK_TIMEOUT) &&
              io_uring_opcode_supported(p, IORING_OP_ASYNC_CANCEL);
    if (p)
        io_uring_free_probe(p);
    if (!ok)
        return 0;
    st->splice = ur_splice_new(splice_get_sqe, st, TAG_SPLICE, SPLICE_PIPE_SIZE);
    if (!st->splice) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    loop->caps |= RS_CAP_SENDFILE;
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
    st->zc_enabled = st->features & UF_SEND_ZC;
    if (st->zc_enabled) {
        st->zc_hold = calloc(loop->pool.count, 1);
        st->zc_release = calloc(loop->pool.count, 1);
        st->zc_fd_cap = zc_fd_cap(loop);
        st->zc_fd = calloc(st->zc_fd_cap, 1);
        if (!st->zc_hold || !st->zc_release || !st->zc_fd) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    st->batch_wait = (st->features & UF_BATCH_WAIT) && !(st->features & UF_SQPOLL);
    if (file_ops_supported(&st->ring))
        loop->caps |= RS_CAP_FILE_NATIVE | RS_CAP_FILE_OPS;
    return setup_splice(loop, st, err, errlen);
}

static void ur_fini(struct rs_loop *loop);

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

static int ur_init(struct rs_loop *loop, const struct rs_config *cfg, char *err,
                   size_t errlen)
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
    rc = check_user_pointers(loop, err, errlen);
    if (rc < 0) {
        ur_fini(loop);
        return rc;
    }
    return 0;
}

static void ur_fini(struct rs_loop *loop)
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
    ur_splice_free(st->splice); /* the ring is gone: so are its splices */
    /* Notifications that never came: the ring is gone, so is the hold. */
    for (uint32_t bid = 0; st->zc_release && bid < loop->pool.count; bid++)
        if (st->zc_release[bid])
            rs_bufpool_unlend(&loop->pool, (uint16_t)bid);
    while (st->zc_slabs) {
        struct zc_slab *next = st->zc_slabs->next;
        free(st->zc_slabs);
        st->zc_slabs = next;
    }
    while (st->hup_slabs) {
        struct hup_slab *next = st->hup_slabs->next;
        free(st->hup_slabs);
        st->hup_slabs = next;
    }
    free(st->zc_hold);
    free(st->br_pos);
    free(st->zc_release);
    free(st->zc_fd);
    free(st->sockopt_wait);
    if (st->br)
        munmap(st->br, st->br_bytes);
    free(st);
    loop->backend = NULL;
}

/* A stopping loop waits for the notifications, so their buffers (and the
 * copied verdicts they carry) are settled before the statistics. */
static bool ur_busy(struct rs_loop *loop)
{
    return state(loop)->zc_inflight > 0;
}

static void ur_describe(struct rs_loop *loop, char *out, size_t outlen)
{
    struct ur_state *st = state(loop);
    char f[200];
    rs_uring_features_format(st->features, f, sizeof(f));
    snprintf(out, outlen, "features=%s, taskrun=%s", f, st->taskrun);
}

/* The kernel lets this process create a ring (probed once). */
static bool ur_available(char *why, size_t whylen)
{
    const struct rs_uring_support *s = rs_probe_uring_cached();
    if (!s->available)
        snprintf(why, whylen, "io_uring is unavailable: %s", s->why);
    return s->available;
}

const struct rs_backend_ops rs_backend_uring = {
    .name = "uring",
    .available = ur_available,
    .init = ur_init,
    .fini = ur_fini,
    .submit = ur_submit,
    .cancel = ur_cancel,
    .run = ur_run,
    .wake = rs_loop_wake,
    .buf_release = ur_buf_release,
    .describe = ur_describe,
    .wait_call = "io_uring_enter",
    .busy = ur_busy,
    .built_with = "liburing " RS_LIBURING_VERSION,
    .options = rs_uring_options,
    .help = rs_uring_help,
};
