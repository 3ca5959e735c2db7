/* The io_uring half of the kernel feature probe (probe/probe.c reports it):
 * every check creates what it tests (a ring, a registration, a loopback
 * connection running the ops the backend relies on) and destroys it before
 * returning. Compiled without liburing too: then the probe says so, and
 * the report keeps the names of what it would have checked.
 */
#include "probe.h"
#include "rs_build.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if RS_HAVE_URING
#include <liburing.h>

#include "ring_resize.h"
#include "uring_util.h"
#include "wait_reg.h"
#endif

/* Constants newer than Debian's liburing 2.3 headers (or all of them when
 * built without liburing, so the report keeps its names). Kernel ABI. */
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif
#ifndef IORING_FEAT_SINGLE_MMAP
#define IORING_FEAT_SINGLE_MMAP     (1U << 0)
#define IORING_FEAT_NODROP          (1U << 1)
#define IORING_FEAT_SUBMIT_STABLE   (1U << 2)
#define IORING_FEAT_RW_CUR_POS      (1U << 3)
#define IORING_FEAT_CUR_PERSONALITY (1U << 4)
#define IORING_FEAT_FAST_POLL       (1U << 5)
#define IORING_FEAT_POLL_32BITS     (1U << 6)
#define IORING_FEAT_SQPOLL_NONFIXED (1U << 7)
#define IORING_FEAT_EXT_ARG         (1U << 8)
#define IORING_FEAT_NATIVE_WORKERS  (1U << 9)
#define IORING_FEAT_RSRC_TAGS       (1U << 10)
#define IORING_FEAT_CQE_SKIP        (1U << 11)
#define IORING_FEAT_LINKED_FILE     (1U << 12)
#endif
#ifndef IORING_FEAT_REG_REG_RING
#define IORING_FEAT_REG_REG_RING (1U << 13)
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif

/* Opcodes newer than liburing 2.3: RS_IORING_OP_* in uring_util.h. */

/* --- names for the report ------------------------------------------------ */

#if RS_HAVE_URING
#define OPCODE(op) (op)
#else
#define OPCODE(op) 0 /* names only: nothing is probed without liburing */
#endif

const struct rs_probe_bit rs_uring_opcode_names[] = {
    {"accept", OPCODE(IORING_OP_ACCEPT)},
    {"recv", OPCODE(IORING_OP_RECV)},
    {"send", OPCODE(IORING_OP_SEND)},
    {"send_zc", OPCODE(IORING_OP_SEND_ZC)},
    {"recvmsg", OPCODE(IORING_OP_RECVMSG)},
    {"sendmsg", OPCODE(IORING_OP_SENDMSG)},
    {"poll_add", OPCODE(IORING_OP_POLL_ADD)},
    {"provide_buffers", OPCODE(IORING_OP_PROVIDE_BUFFERS)},
    {"close", OPCODE(IORING_OP_CLOSE)},
    {"shutdown", OPCODE(IORING_OP_SHUTDOWN)},
    {"async_cancel", OPCODE(IORING_OP_ASYNC_CANCEL)},
    {"socket", OPCODE(IORING_OP_SOCKET)},
    {"read", OPCODE(IORING_OP_READ)},
    /* Newer than liburing 2.3's enum: the kernel's numbers (include/uapi/
     * linux/io_uring.h), listed so the matrix shows where each arrived. */
    {"msg_ring", OPCODE(IORING_OP_MSG_RING)},        /* 5.18 */
    {"bind", OPCODE(RS_IORING_OP_BIND)},             /* 6.11 */
    {"listen", OPCODE(RS_IORING_OP_LISTEN)},         /* 6.11 */
    {"recv_zc", OPCODE(RS_IORING_OP_RECV_ZC)},       /* 6.15, zero-copy receive */
    {"epoll_wait", OPCODE(RS_IORING_OP_EPOLL_WAIT)}, /* 6.15 */
    {"pipe", OPCODE(RS_IORING_OP_PIPE)},             /* 6.16 */
};

const struct rs_probe_bit rs_uring_feature_names[] = {
    {"single_mmap", IORING_FEAT_SINGLE_MMAP},
    {"nodrop", IORING_FEAT_NODROP},
    {"submit_stable", IORING_FEAT_SUBMIT_STABLE},
    {"rw_cur_pos", IORING_FEAT_RW_CUR_POS},
    {"cur_personality", IORING_FEAT_CUR_PERSONALITY},
    {"fast_poll", IORING_FEAT_FAST_POLL},
    {"poll_32bits", IORING_FEAT_POLL_32BITS},
    {"sqpoll_nonfixed", IORING_FEAT_SQPOLL_NONFIXED},
    {"ext_arg", IORING_FEAT_EXT_ARG},
    {"native_workers", IORING_FEAT_NATIVE_WORKERS},
    {"rsrc_tags", IORING_FEAT_RSRC_TAGS},
    {"cqe_skip", IORING_FEAT_CQE_SKIP},
    {"linked_file", IORING_FEAT_LINKED_FILE},
    {"reg_reg_ring", IORING_FEAT_REG_REG_RING},
    {"recvsend_bundle", IORING_FEAT_RECVSEND_BUNDLE},
    {"min_timeout", IORING_FEAT_MIN_TIMEOUT},
};

const size_t rs_uring_nopcode_names =
    sizeof(rs_uring_opcode_names) / sizeof(rs_uring_opcode_names[0]);
const size_t rs_uring_nfeature_names =
    sizeof(rs_uring_feature_names) / sizeof(rs_uring_feature_names[0]);

static int read_disabled_sysctl(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    int v = -1;

    if (!f)
        return -1; /* kernels before 6.6 have no such switch */
    if (fscanf(f, "%d", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}
/* --- io_uring checks ----------------------------------------------------- */

#if RS_HAVE_URING

enum {
    RING_ENTRIES = 8,
    WAIT_NS = 100 * 1000 * 1000, /* per completion; loopback needs microseconds */
    BR_COUNT = 4,                /* provided buffers (power of two) */
    BR_SIZE = 64,
    BR_GROUP = 7,
    SPARSE_SLOTS = 4,
};

static const char ping[] = "ringserve-probe";

/* Turn the failure of the plain ring into one actionable sentence. */
static void explain_unavailable(struct rs_uring_support *s, int err)
{
    char buf[96];
    const char *why;

    s->available = false;
    s->unavailable_err = err;
    if (err == EPERM && s->disabled_sysctl == 2)
        why = "kernel.io_uring_disabled=2: io_uring is off for every process";
    else if (err == EPERM && s->disabled_sysctl == 1)
        why = "kernel.io_uring_disabled=1: only CAP_SYS_ADMIN or "
              "kernel.io_uring_group may create rings";
    else if (err == EPERM)
        why = "blocked although the sysctl allows it: most likely a seccomp "
              "filter (container runtime profile)";
    else if (err == ENOSYS)
        why = "no io_uring_setup syscall: kernel built without CONFIG_IO_URING "
              "(or a filter answering ENOSYS)";
    else if (err == ENOMEM)
        why = "out of memory, or RLIMIT_MEMLOCK too low (kernels < 5.12 "
              "charge rings to it)";
    else
        why = strerror_r(err, buf, sizeof(buf)); /* GNU: returns the text */
    snprintf(s->why, sizeof(s->why), "%s: %s", rs_probe_errno_name(err), why);
}

struct cqe_copy {
    int res;
    unsigned flags;
};

/* Wait for the next completion and consume it, so no caller can forget
 * io_uring_cqe_seen(). 0, or -ETIME when nothing came within WAIT_NS. */
static int next_cqe(struct io_uring *ring, struct cqe_copy *out)
{
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = WAIT_NS};
    struct io_uring_cqe *cqe;
    int ret = io_uring_wait_cqe_timeout(ring, &cqe, &ts);

    if (ret < 0)
        return ret;
    out->res = cqe->res;
    out->flags = cqe->flags;
    io_uring_cqe_seen(ring, cqe);
    return 0;
}

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

static void probe_setup_flags(struct rs_uring_support *s)
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

/* The plain ring decides availability and supplies features and opcodes. */
static bool probe_plain(struct rs_uring_support *s)
{
    struct io_uring ring;
    struct io_uring_params p;
    struct io_uring_probe *probe;
    int ret;

    memset(&p, 0, sizeof(p));
    ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (ret < 0) {
        explain_unavailable(s, -ret);
        return false;
    }
    s->available = true;
    s->features = p.features;
    probe = io_uring_get_probe_ring(&ring);
    if (probe) {
        for (unsigned op = 0; op < 64; op++)
            if (io_uring_opcode_supported(probe, (int)op))
                s->opcodes |= UINT64_C(1) << op;
        io_uring_free_probe(probe);
    }
    io_uring_queue_exit(&ring);
    return true;
}

/* --- loopback sockets --- */

/* Listener on 127.0.0.1, port chosen by the kernel. fd or -errno. */
static int listener_open(struct sockaddr_in *addr)
{
    socklen_t len = sizeof(*addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, 8) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &len) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

/* On loopback the handshake completes inside connect(), before any accept. */
static int client_connect(const struct sockaddr_in *addr)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static void fd_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* A listener, a client and the server end of their connection. */
struct conn_pair {
    int lfd, cfd, sfd;
};

static bool pair_open(struct conn_pair *p)
{
    struct sockaddr_in addr;

    p->cfd = p->sfd = -1;
    p->lfd = listener_open(&addr);
    if (p->lfd >= 0)
        p->cfd = client_connect(&addr);
    if (p->cfd >= 0)
        p->sfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
    return p->sfd >= 0;
}

static void pair_close(struct conn_pair *p)
{
    fd_close(&p->sfd);
    fd_close(&p->cfd);
    fd_close(&p->lfd);
}

static bool ring_open(struct io_uring *ring)
{
    return io_uring_queue_init(RING_ENTRIES, ring, 0) == 0;
}

/* --- provided buffer ring, built by hand (liburing 2.3 lacks
 * io_uring_setup_buf_ring): mmap the ring, register it, publish buffers. */

struct buf_ring {
    struct io_uring_buf_ring *br;
    size_t len;
    char data[BR_COUNT][BR_SIZE];
};

static int buf_ring_setup_flags(struct io_uring *ring, struct buf_ring *b, unsigned flags)
{
    int err;
    const char *what;
    b->br = rs_buf_ring_register(ring, BR_COUNT, BR_GROUP, flags, &b->len, &err, &what);
    if (!b->br)
        return err;
    for (int i = 0; i < BR_COUNT; i++)
        io_uring_buf_ring_add(b->br, b->data[i], BR_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(BR_COUNT), i);
    io_uring_buf_ring_advance(b->br, BR_COUNT);
    return 0;
}

static int buf_ring_setup(struct io_uring *ring, struct buf_ring *b)
{
    return buf_ring_setup_flags(ring, b, 0);
}

/* Call after io_uring_queue_exit(): the kernel drops its pin on exit. */
static void buf_ring_free(struct buf_ring *b)
{
    if (b->br)
        munmap(b->br, b->len);
    b->br = NULL;
}

/* --- registrations --- */

/* A buffer ring registered with `flags`: IOU_PBUF_RING_INC (6.12) is
 * refused with -EINVAL by older kernels. */
static bool try_buf_ring_flags(unsigned flags)
{
    struct io_uring ring;
    struct buf_ring b = {.br = NULL};
    bool ok;

    if (!ring_open(&ring))
        return false;
    ok = buf_ring_setup_flags(&ring, &b, flags) == 0;
    io_uring_queue_exit(&ring);
    buf_ring_free(&b);
    return ok;
}

static bool try_buf_ring(void)
{
    return try_buf_ring_flags(0);
}

static bool try_sparse_files(void)
{
    struct io_uring ring;
    bool ok;

    if (!ring_open(&ring))
        return false;
    ok = io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0;
    io_uring_queue_exit(&ring);
    return ok;
}

static bool try_ring_fd(void)
{
    struct io_uring ring;
    bool ok;

    if (!ring_open(&ring))
        return false;
    ok = io_uring_register_ring_fd(&ring) == 1; /* returns how many were registered */
    io_uring_queue_exit(&ring);
    return ok;
}

/* --- operations on a loopback connection --- */

/* One multishot accept SQE must yield two connections, both flagged MORE
 * (the request stays armed). Ring exit cancels it afterwards. */
static bool accept_twice(struct io_uring *ring, int lfd, const struct sockaddr_in *addr)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    int cfd[2] = {-1, -1};
    int got = 0;
    struct cqe_copy c;

    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    if (io_uring_submit(ring) != 1)
        return false;
    for (int i = 0; i < 2; i++)
        cfd[i] = client_connect(addr);
    while (got < 2 && next_cqe(ring, &c) == 0 && c.res >= 0) {
        close(c.res);
        if (!(c.flags & IORING_CQE_F_MORE))
            break;
        got++;
    }
    fd_close(&cfd[0]);
    fd_close(&cfd[1]);
    return got == 2;
}

static bool try_multishot_accept(void)
{
    struct io_uring ring;
    struct sockaddr_in addr;
    int lfd;
    bool ok = false;

    if (!ring_open(&ring))
        return false;
    lfd = listener_open(&addr);
    if (lfd >= 0)
        ok = accept_twice(&ring, lfd, &addr);
    io_uring_queue_exit(&ring);
    fd_close(&lfd);
    return ok;
}

/* Two messages through one multishot recv: each must arrive in a provided
 * buffer (F_BUFFER) holding exactly the bytes sent, with the recv still
 * armed (F_MORE). */
static bool recv_twice(struct io_uring *ring, struct buf_ring *b, struct conn_pair *p)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    const unsigned want = IORING_CQE_F_BUFFER | IORING_CQE_F_MORE;
    struct cqe_copy c;

    io_uring_prep_recv_multishot(sqe, p->sfd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BR_GROUP;
    if (io_uring_submit(ring) != 1)
        return false;
    for (int round = 0; round < 2; round++) {
        unsigned bid;

        if (send(p->cfd, ping, sizeof(ping), MSG_NOSIGNAL) != (ssize_t)sizeof(ping))
            return false;
        if (next_cqe(ring, &c) < 0 || c.res != (int)sizeof(ping) ||
            (c.flags & want) != want)
            return false;
        bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
        if (bid >= BR_COUNT || memcmp(b->data[bid], ping, sizeof(ping)) != 0)
            return false;
    }
    return true;
}

static bool try_multishot_recv(void)
{
    struct io_uring ring;
    struct buf_ring b = {.br = NULL};
    struct conn_pair p = {-1, -1, -1};
    bool ok = false;

    if (!ring_open(&ring))
        return false;
    if (buf_ring_setup(&ring, &b) == 0 && pair_open(&p))
        ok = recv_twice(&ring, &b, &p);
    io_uring_queue_exit(&ring);
    pair_close(&p);
    buf_ring_free(&b);
    return ok;
}

/* Accept into a slot the kernel allocates in the sparse table, then close
 * it with close_direct: that succeeds only if the slot really holds a file.
 *
 * liburing 2.3's io_uring_prep_accept_direct() adds 1 to the index, which
 * turns IORING_FILE_INDEX_ALLOC into 0 = "not direct": a plain accept that
 * returns an fd. Set the raw field instead. */
static bool accept_direct_once(struct io_uring *ring, int lfd,
                               const struct sockaddr_in *addr)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;
    int cfd;
    bool ok;

    rs_prep_accept_alloc(sqe, lfd);
    if (io_uring_submit(ring) != 1)
        return false;
    cfd = client_connect(addr);
    ok = next_cqe(ring, &c) == 0 && c.res >= 0 && c.res < SPARSE_SLOTS;
    if (ok) {
        sqe = io_uring_get_sqe(ring);
        io_uring_prep_close_direct(sqe, (unsigned)c.res);
        ok = io_uring_submit(ring) == 1 && next_cqe(ring, &c) == 0 && c.res == 0;
    }
    fd_close(&cfd);
    return ok;
}

static bool try_accept_direct(void)
{
    struct io_uring ring;
    struct sockaddr_in addr;
    int lfd = -1;
    bool ok = false;

    if (!ring_open(&ring))
        return false;
    if (io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0)
        lfd = listener_open(&addr);
    if (lfd >= 0)
        ok = accept_direct_once(&ring, lfd, &addr);
    io_uring_queue_exit(&ring);
    fd_close(&lfd);
    return ok;
}

/* send_zc completes twice: the result (flagged MORE), then a notification
 * (F_NOTIF) once the kernel no longer needs the buffer. A low
 * RLIMIT_MEMLOCK can make the first one -ENOMEM. */
static bool send_zc_once(struct io_uring *ring, struct conn_pair *p)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;

    io_uring_prep_send_zc(sqe, p->cfd, ping, sizeof(ping), MSG_NOSIGNAL, 0);
    if (io_uring_submit(ring) != 1)
        return false;
    if (next_cqe(ring, &c) < 0 || c.res != (int)sizeof(ping) ||
        !(c.flags & IORING_CQE_F_MORE))
        return false;
    return next_cqe(ring, &c) == 0 && (c.flags & IORING_CQE_F_NOTIF);
}

/* A trial on a plain ring and a fresh loopback connection. */
static bool try_on_pair(bool (*once)(struct io_uring *, struct conn_pair *))
{
    struct io_uring ring;
    struct conn_pair p = {-1, -1, -1};
    bool ok = false;

    if (!ring_open(&ring))
        return false;
    if (pair_open(&p))
        ok = once(&ring, &p);
    io_uring_queue_exit(&ring);
    pair_close(&p);
    return ok;
}

static bool try_send_zc(void)
{
    return try_on_pair(send_zc_once);
}

/* IORING_OP_SOCKET into a slot the kernel picks (*slot), in a sparse
 * table. 0 or -errno. */
static int socket_direct_once(struct io_uring *ring, int *slot)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;

    rs_prep_socket_alloc(sqe, AF_INET);
    if (io_uring_submit(ring) != 1 || next_cqe(ring, &c) < 0)
        return -EIO;
    if (c.res < 0)
        return c.res;
    *slot = c.res;
    return c.res < SPARSE_SLOTS ? 0 : -ERANGE;
}

/* SOCKET_URING_OP_SETSOCKOPT(TCP_NODELAY) on fd (fixed: a direct slot).
 * The command's result. */
static int sockopt_cmd_once(struct io_uring *ring, int fd, bool fixed)
{
    static const int one = 1;
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;

    rs_prep_setsockopt_cmd(sqe, fd, IPPROTO_TCP, TCP_NODELAY, &one);
    if (fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
    if (io_uring_submit(ring) != 1 || next_cqe(ring, &c) < 0)
        return -EIO;
    return c.res;
}

/* A direct socket, and TCP_NODELAY set on it by command: the command must
 * succeed on the direct slot, and on a plain socket getsockopt(2) must
 * then read the option back (a probe bit alone says neither). Fills both
 * findings. */
static void try_socket_direct(struct rs_uring_support *s)
{
    struct io_uring ring;
    int slot = -1, fd = -1, v = 0;
    socklen_t vlen = sizeof(v);

    if (!ring_open(&ring))
        return;
    if (io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0)
        s->socket_direct = socket_direct_once(&ring, &slot) == 0;
    if (s->socket_direct) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        s->sockopt_cmd = fd >= 0 && sockopt_cmd_once(&ring, slot, true) == 0 &&
                         sockopt_cmd_once(&ring, fd, false) == 0 &&
                         getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &vlen) == 0 &&
                         v != 0;
    }
    io_uring_queue_exit(&ring); /* closes the slot with the table */
    fd_close(&fd);
}

/* Submit the one SQE prepared; its CQE's result (-EIO when none came). */
static int run_one(struct io_uring *ring)
{
    struct cqe_copy c;

    if (io_uring_submit(ring) != 1 || next_cqe(ring, &c) < 0)
        return -EIO;
    return c.res;
}

/* IORING_OP_PIPE into two kernel-chosen direct slots: the op must succeed
 * and name two different slots of the table. */
static bool try_pipe_direct(void)
{
    struct io_uring ring;
    int fds[2] = {-1, -1};
    bool ok = false;

    if (!ring_open(&ring))
        return false;
    if (io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        rs_prep_pipe_alloc(sqe, fds, O_NONBLOCK);
        ok = run_one(&ring) == 0 && fds[0] >= 0 && fds[0] < SPARSE_SLOTS && fds[1] >= 0 &&
             fds[1] < SPARSE_SLOTS && fds[0] != fds[1];
    }
    io_uring_queue_exit(&ring); /* closes the slots with the table */
    return ok;
}

/* A listener made only of ring ops: IORING_OP_SOCKET into a direct slot,
 * SO_REUSEADDR by command, IORING_OP_BIND, IORING_OP_LISTEN. It binds the
 * port a plain socket holds (bound, not listening, SO_REUSEADDR: a direct
 * socket has no getsockname before 6.19), and must then accept a
 * connection made to that port. */
static bool listen_direct_once(struct io_uring *ring, int *holder, int *cfd)
{
    static const int one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int slot = -1;
    struct io_uring_sqe *sqe;

    *holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*holder < 0 || setsockopt(*holder, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(*holder, (struct sockaddr *)&addr, sizeof(addr)) ||
        getsockname(*holder, (struct sockaddr *)&addr, &len))
        return false;
    if (socket_direct_once(ring, &slot) < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    rs_prep_setsockopt_cmd(sqe, slot, SOL_SOCKET, SO_REUSEADDR, &one);
    sqe->flags |= IOSQE_FIXED_FILE;
    if (run_one(ring) < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    rs_prep_bind(sqe, slot, &addr, sizeof(addr));
    sqe->flags |= IOSQE_FIXED_FILE;
    if (run_one(ring) < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    rs_prep_listen(sqe, slot, 8);
    sqe->flags |= IOSQE_FIXED_FILE;
    if (run_one(ring) < 0)
        return false;
    *cfd = client_connect(&addr);
    if (*cfd < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    rs_prep_accept_alloc(sqe, slot);
    sqe->flags |= IOSQE_FIXED_FILE;
    int res = run_one(ring);
    return res >= 0 && res < SPARSE_SLOTS;
}

static bool try_listen_direct(void)
{
    struct io_uring ring;
    int holder = -1, cfd = -1;
    bool ok = false;

    if (!ring_open(&ring))
        return false;
    if (io_uring_register_files_sparse(&ring, SPARSE_SLOTS) == 0)
        ok = listen_direct_once(&ring, &holder, &cfd);
    io_uring_queue_exit(&ring);
    fd_close(&cfd);
    fd_close(&holder);
    return ok;
}

/* A single-shot recv with IOSQE_BUFFER_SELECT from IORING_OP_PROVIDE_BUFFERS
 * buffers finds no data and waits. Does it hold a buffer meanwhile? Provide
 * one, arm the recv on an idle connection, then remove one buffer from the
 * group: 1 removed if the buffer is still there (the kernel put it back when
 * the recv went to wait), -ENOENT if the waiting recv keeps it. On such a
 * kernel every idle connection pins a buffer of the pool. */
static bool buf_recycle_once(struct io_uring *ring, struct conn_pair *p)
{
    static char buf[BR_SIZE];
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    struct cqe_copy c;

    io_uring_prep_provide_buffers(sqe, buf, BR_SIZE, 1, BR_GROUP, 0);
    if (io_uring_submit(ring) != 1 || next_cqe(ring, &c) < 0 || c.res < 0)
        return false;
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv(sqe, p->sfd, NULL, BR_SIZE, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BR_GROUP;
    if (io_uring_submit(ring) != 1) /* issued here: no data, so it waits */
        return false;
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_remove_buffers(sqe, 1, BR_GROUP);
    return io_uring_submit(ring) == 1 && next_cqe(ring, &c) == 0 && c.res == 1;
}

static bool try_buf_recycle(void)
{
    return try_on_pair(buf_recycle_once);
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
static bool try_resize_rings(void)
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
static bool try_wait_region(void)
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
    ZCRX_NODEV = 2,  /* ZCRX_REG_NODEV */
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
static bool try_napi(void)
{
    struct io_uring ring;
    struct napi_reg n = {.busy_poll_to = 1};
    bool ok;

    if (!ring_open(&ring))
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
static int zcrx_try(uint32_t if_idx, uint32_t flags)
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
static void try_query(struct rs_uring_support *s)
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
static bool sq_rewind_works(void)
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

static void probe_all(struct rs_uring_support *s)
{
    if (!probe_plain(s))
        return;
    s->recvsend_bundle = (s->features & IORING_FEAT_RECVSEND_BUNDLE) != 0;
    s->min_timeout = (s->features & IORING_FEAT_MIN_TIMEOUT) != 0;
    probe_setup_flags(s);
    s->buf_ring = try_buf_ring();
    s->buf_ring_inc = s->buf_ring && try_buf_ring_flags(RS_IOU_PBUF_RING_INC);
    s->sparse_files = try_sparse_files();
    s->ring_fd = try_ring_fd();
    s->multishot_accept = try_multishot_accept();
    s->multishot_recv = s->buf_ring && try_multishot_recv();
    s->accept_direct = s->sparse_files && try_accept_direct();
    s->send_zc = try_send_zc();
    s->buf_recycle = try_buf_recycle();
    if (s->sparse_files) {
        try_socket_direct(s);
        s->pipe_direct = try_pipe_direct();
        s->listen_direct = s->socket_direct && s->sockopt_cmd && try_listen_direct();
    }
    s->resize_rings = s->defer_taskrun && try_resize_rings();
    s->wait_region = try_wait_region();
    s->napi = try_napi();
    s->zcrx_lo_err = -zcrx_try(1, 0);
    s->zcrx_nodev = zcrx_try(0, ZCRX_NODEV) == 0;
    s->sq_rewind = sq_rewind_works();
    try_query(s);
}

static void *probe_thread(void *arg)
{
    probe_all(arg);
    return NULL;
}

/* The trials run on a thread of their own. Their rings are torn down with
 * requests still armed (a multishot accept, a multishot recv): the kernel
 * cancels those after io_uring_queue_exit() returned and tells the task
 * that submitted them through task work, which interrupts that task like
 * a signal. The task's next blocking socket call with a timeout
 * (SO_RCVTIMEO) then fails with EINTR: seen in a program that started a
 * server (rs_server_start probes) and then talked to it
 * (tests/unit/test_server.c, about 1 run in 8 under load). A thread that
 * exits takes that work with it; the caller never sees it. */
void rs_probe_uring(struct rs_uring_support *s)
{
    memset(s, 0, sizeof(*s));
    s->compiled = true;
    s->disabled_sysctl = read_disabled_sysctl();
    pthread_t t;
    if (pthread_create(&t, NULL, probe_thread, s) != 0) {
        probe_all(s); /* no thread: here, interruptions and all */
        return;
    }
    pthread_join(t, NULL);
}

#else /* !RS_HAVE_URING */

void rs_probe_uring(struct rs_uring_support *s)
{
    memset(s, 0, sizeof(*s));
    s->compiled = false;
    s->disabled_sysctl = read_disabled_sysctl();
    s->unavailable_err = ENOTSUP;
    snprintf(s->why, sizeof(s->why), "%s: ringserve was built without liburing",
             rs_probe_errno_name(ENOTSUP));
}

#endif /* RS_HAVE_URING */
