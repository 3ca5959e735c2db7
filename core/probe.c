/* Kernel feature probe.
 *
 * Version numbers lie about io_uring: distributions backport features into
 * old kernels, a sysctl (kernel.io_uring_disabled) or a container's seccomp
 * profile forbids the whole interface on new ones, and a header can name a
 * flag the running kernel rejects. So this file asks the kernel by trying:
 * it creates a ring with each setup flag, registers each resource, and runs
 * the socket operations the uring backend relies on against a loopback
 * connection, checking the completion flags the backend will depend on
 * (IORING_CQE_F_MORE, F_BUFFER, F_NOTIF).
 *
 * Every check owns what it creates (ring, socket, mapping) and destroys it
 * before returning, so the probe leaves no descriptor, mapping or kernel
 * thread behind. Loopback completions arrive in microseconds; a bounded
 * wait (WAIT_NS) keeps a kernel that never answers from hanging the probe.
 * Any failure of a check means "no"; only the first check (can a plain ring
 * be created at all?) explains why, because that is what users must fix.
 */
#include "probe.h"
#include "rs_build.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#if RS_HAVE_URING
#include <liburing.h>

#include "uring_util.h"
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

#ifndef EPOLLEXCLUSIVE
#define EPOLLEXCLUSIVE (1U << 28)
#endif
/* epoll busy-poll parameters (Linux 6.9); glibc before 2.40 lacks them. */
#ifndef EPIOCSPARAMS
struct epoll_params {
    uint32_t busy_poll_usecs;
    uint16_t busy_poll_budget;
    uint8_t prefer_busy_poll;
    uint8_t pad; /* must be zero */
};
#define EPIOCSPARAMS _IOW(0x8A, 0x01, struct epoll_params)
#endif

/* --- names for the report ------------------------------------------------ */

#if RS_HAVE_URING
#define OPCODE(op) (op)
#else
#define OPCODE(op) 0 /* names only: nothing is probed without liburing */
#endif

struct named_bit {
    const char *key;
    unsigned bit; /* opcode number, or feature mask */
};

static const struct named_bit opcode_names[] = {
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
};

static const struct named_bit feature_names[] = {
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

/* A boolean member of struct rs_uring_support, printed under `key`. */
struct named_field {
    const char *key;
    size_t off;
};

#define OFF(member) offsetof(struct rs_uring_support, member)

static const struct named_field setup_fields[] = {
    {"sqpoll", OFF(sqpoll)},
    {"single_issuer", OFF(single_issuer)},
    {"defer_taskrun", OFF(defer_taskrun)},
    {"coop_taskrun", OFF(coop_taskrun)},
    {"taskrun_flag", OFF(taskrun_flag)},
    {"submit_all", OFF(submit_all)},
    {"cqsize", OFF(cqsize)},
    {"no_sqarray", OFF(no_sqarray)},
};

static const struct named_field register_fields[] = {
    {"buf_ring", OFF(buf_ring)},
    {"sparse_files", OFF(sparse_files)},
    {"ring_fd", OFF(ring_fd)},
};

static const struct named_field multishot_fields[] = {
    {"accept", OFF(multishot_accept)},
    {"recv", OFF(multishot_recv)},
    {"accept_direct", OFF(accept_direct)},
    {"send_zc", OFF(send_zc)},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool field_get(const struct rs_uring_support *s, size_t off)
{
    bool v;

    memcpy(&v, (const char *)s + off, sizeof(v));
    return v;
}

/* Symbolic names for the errors a probe meets; bug reports grep for them.
 * ENOTSUP has the same value as EOPNOTSUPP on Linux. */
static const char *errno_name(int err)
{
    static const struct {
        int err;
        const char *name;
    } names[] = {
        {EPERM, "EPERM"},   {ENOSYS, "ENOSYS"}, {ENOMEM, "ENOMEM"},   {EINVAL, "EINVAL"},
        {EACCES, "EACCES"}, {EMFILE, "EMFILE"}, {ENFILE, "ENFILE"},   {EFAULT, "EFAULT"},
        {EBUSY, "EBUSY"},   {ENOTTY, "ENOTTY"}, {ENOTSUP, "ENOTSUP"},
    };

    for (size_t i = 0; i < COUNT(names); i++)
        if (names[i].err == err)
            return names[i].name;
    return "EOTHER"; /* the reason text still carries strerror() */
}

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
    snprintf(s->why, sizeof(s->why), "%s: %s", errno_name(err), why);
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

static int buf_ring_setup(struct io_uring *ring, struct buf_ring *b)
{
    int err;
    const char *what;
    b->br = rs_buf_ring_register(ring, BR_COUNT, BR_GROUP, &b->len, &err, &what);
    if (!b->br)
        return err;
    for (int i = 0; i < BR_COUNT; i++)
        io_uring_buf_ring_add(b->br, b->data[i], BR_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(BR_COUNT), i);
    io_uring_buf_ring_advance(b->br, BR_COUNT);
    return 0;
}

/* Call after io_uring_queue_exit(): the kernel drops its pin on exit. */
static void buf_ring_free(struct buf_ring *b)
{
    if (b->br)
        munmap(b->br, b->len);
    b->br = NULL;
}

/* --- registrations --- */

static bool try_buf_ring(void)
{
    struct io_uring ring;
    struct buf_ring b = {.br = NULL};
    bool ok;

    if (!ring_open(&ring))
        return false;
    ok = buf_ring_setup(&ring, &b) == 0;
    io_uring_queue_exit(&ring);
    buf_ring_free(&b);
    return ok;
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

static bool try_send_zc(void)
{
    struct io_uring ring;
    struct conn_pair p = {-1, -1, -1};
    bool ok = false;

    if (!ring_open(&ring))
        return false;
    if (pair_open(&p))
        ok = send_zc_once(&ring, &p);
    io_uring_queue_exit(&ring);
    pair_close(&p);
    return ok;
}

void rs_probe_uring(struct rs_uring_support *s)
{
    memset(s, 0, sizeof(*s));
    s->compiled = true;
    s->disabled_sysctl = read_disabled_sysctl();
    if (!probe_plain(s))
        return;
    s->recvsend_bundle = (s->features & IORING_FEAT_RECVSEND_BUNDLE) != 0;
    s->min_timeout = (s->features & IORING_FEAT_MIN_TIMEOUT) != 0;
    probe_setup_flags(s);
    s->buf_ring = try_buf_ring();
    s->sparse_files = try_sparse_files();
    s->ring_fd = try_ring_fd();
    s->multishot_accept = try_multishot_accept();
    s->multishot_recv = s->buf_ring && try_multishot_recv();
    s->accept_direct = s->sparse_files && try_accept_direct();
    s->send_zc = try_send_zc();
}

#else /* !RS_HAVE_URING */

void rs_probe_uring(struct rs_uring_support *s)
{
    memset(s, 0, sizeof(*s));
    s->compiled = false;
    s->disabled_sysctl = read_disabled_sysctl();
    s->unavailable_err = ENOTSUP;
    snprintf(s->why, sizeof(s->why), "%s: ringserve was built without liburing",
             errno_name(ENOTSUP));
}

#endif /* RS_HAVE_URING */

/* --- epoll, limits ------------------------------------------------------- */

struct epoll_facts {
    int exclusive_err; /* 0: EPOLLEXCLUSIVE accepted (Linux 4.5) */
    int busy_poll_err; /* 0: EPIOCSPARAMS accepted (Linux 6.9) */
};

static int epoll_exclusive_err(int epfd)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = 0;

    if (fd < 0)
        return errno;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        err = errno;
    close(fd);
    return err;
}

/* All-zero parameters are valid and unprivileged: busy polling stays off. */
static int epoll_busy_poll_err(int epfd)
{
    struct epoll_params params;

    memset(&params, 0, sizeof(params));
    return ioctl(epfd, EPIOCSPARAMS, &params) < 0 ? errno : 0;
}

static void probe_epoll(struct epoll_facts *f)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);

    if (epfd < 0) {
        f->exclusive_err = f->busy_poll_err = errno;
        return;
    }
    f->exclusive_err = epoll_exclusive_err(epfd);
    f->busy_poll_err = epoll_busy_poll_err(epfd);
    close(epfd);
}

/* --- report emitter: one walk over the facts, printed as JSON or as an
 * aligned two-column table. Nested JSON objects become text sections. --- */

enum { LABEL_WIDTH = 26 };

struct emit {
    FILE *out;
    bool json;
    int depth;          /* JSON nesting */
    bool first;         /* JSON: nothing written yet in the current object */
    const char *prefix; /* text: label prefix inside a sub-object */
};

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json_key(struct emit *e, const char *key)
{
    fprintf(e->out, "%s\n%*s", e->first ? "" : ",", 2 * e->depth, "");
    json_string(e->out, key);
    fputs(": ", e->out);
    e->first = false;
}

static void text_row(struct emit *e, const char *key, const char *value)
{
    char label[64];

    snprintf(label, sizeof(label), "%s%s%s", e->prefix ? e->prefix : "",
             e->prefix ? " " : "", key);
    fprintf(e->out, "  %-*s %s\n", LABEL_WIDTH, label, value);
}

/* A JSON object that is a section (with a heading) in text mode. */
static void emit_open(struct emit *e, const char *key, const char *heading)
{
    if (!e->json) {
        fprintf(e->out, "\n%s\n", heading);
        return;
    }
    json_key(e, key);
    fputc('{', e->out);
    e->depth++;
    e->first = true;
}

/* A JSON object whose members are prefixed rows in text mode. */
static void emit_sub(struct emit *e, const char *key, const char *prefix)
{
    if (!e->json) {
        e->prefix = prefix;
        return;
    }
    emit_open(e, key, NULL);
}

static void emit_close(struct emit *e)
{
    e->prefix = NULL;
    if (!e->json)
        return;
    e->depth--;
    fprintf(e->out, "\n%*s}", 2 * e->depth, "");
    e->first = false;
}

static void emit_str(struct emit *e, const char *key, const char *value)
{
    if (!e->json) {
        text_row(e, key, value ? value : "-");
        return;
    }
    json_key(e, key);
    if (value)
        json_string(e->out, value);
    else
        fputs("null", e->out);
}

static void emit_bool(struct emit *e, const char *key, bool value)
{
    if (!e->json) {
        text_row(e, key, value ? "yes" : "no");
        return;
    }
    json_key(e, key);
    fputs(value ? "true" : "false", e->out);
}

/* A yes/no fact whose "no" has an errno worth showing in text mode. */
static void emit_bool_err(struct emit *e, const char *key, int err)
{
    char value[48];

    if (e->json || err == 0) {
        emit_bool(e, key, err == 0);
        return;
    }
    snprintf(value, sizeof(value), "no (%s)", errno_name(err));
    text_row(e, key, value);
}

static void emit_num(struct emit *e, const char *key, unsigned long long value)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", value);
    if (!e->json) {
        text_row(e, key, buf);
        return;
    }
    json_key(e, key);
    fputs(buf, e->out);
}

/* An integer that may be absent: JSON null, text `absent_text`. */
static void emit_opt_num(struct emit *e, const char *key, bool present,
                         unsigned long long value, const char *absent_text)
{
    if (present)
        emit_num(e, key, value);
    else if (e->json)
        emit_str(e, key, NULL);
    else
        text_row(e, key, absent_text);
}

/* --- report sections --- */

static void report_system(struct emit *e)
{
    struct utsname u;
    bool have_uname = uname(&u) == 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (!e->json)
        fprintf(e->out, "\nSystem\n");
    else
        emit_str(e, "ringserve", RS_VERSION);
    emit_str(e, "kernel", have_uname ? u.release : NULL);
    emit_str(e, "arch", have_uname ? u.machine : NULL);
    emit_str(e, "liburing", RS_LIBURING_VERSION);
    emit_opt_num(e, "cpus", cpus > 0, (unsigned long long)cpus, "unknown");
}

static void report_fields(struct emit *e, const struct rs_uring_support *s,
                          const struct named_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        emit_bool(e, f[i].key, field_get(s, f[i].off));
}

static void report_opcodes(struct emit *e, const struct rs_uring_support *s)
{
    emit_open(e, "opcodes", "io_uring opcodes (IORING_REGISTER_PROBE)");
    for (size_t i = 0; i < COUNT(opcode_names); i++) {
        unsigned op = opcode_names[i].bit;
        emit_bool(e, opcode_names[i].key, op < 64 && (s->opcodes >> op & 1));
    }
    emit_close(e);
}

static void report_features(struct emit *e, const struct rs_uring_support *s)
{
    emit_open(e, "features", "io_uring features (io_uring_params.features)");
    for (size_t i = 0; i < COUNT(feature_names); i++)
        emit_bool(e, feature_names[i].key, (s->features & feature_names[i].bit) != 0);
    emit_close(e);
}

static void report_uring_state(struct emit *e, const struct rs_uring_support *s)
{
    int d = s->disabled_sysctl;

    emit_bool(e, "compiled", s->compiled);
    emit_bool(e, "available", s->available);
    emit_str(e, "errno", s->available ? NULL : errno_name(s->unavailable_err));
    emit_str(e, "reason", s->available ? NULL : s->why);
    emit_opt_num(e, "io_uring_disabled", d >= 0, (unsigned long long)d, "absent");
    if (e->json) {
        emit_num(e, "features_mask", s->features);
    } else {
        char mask[16];
        snprintf(mask, sizeof(mask), "0x%x", (unsigned)s->features);
        text_row(e, "features_mask", mask);
    }
}

static void report_uring(struct emit *e, const struct rs_uring_support *s)
{
    emit_open(e, "io_uring", "io_uring");
    report_uring_state(e, s);
    report_opcodes(e, s);
    emit_open(e, "setup", "io_uring setup flags (a ring created with each)");
    report_fields(e, s, setup_fields, COUNT(setup_fields));
    emit_close(e);
    report_features(e, s);
    emit_open(e, "register", "io_uring registrations (tried)");
    report_fields(e, s, register_fields, COUNT(register_fields));
    emit_close(e);
    emit_open(e, "multishot", "io_uring ops on a loopback connection");
    report_fields(e, s, multishot_fields, COUNT(multishot_fields));
    emit_close(e);
    emit_close(e);
}

static void report_epoll(struct emit *e)
{
    struct epoll_facts f;

    probe_epoll(&f);
    emit_open(e, "epoll", "epoll");
    emit_bool_err(e, "exclusive", f.exclusive_err);
    emit_bool_err(e, "busy_poll_ioctl", f.busy_poll_err);
    emit_close(e);
}

static void report_rlimit(struct emit *e, const char *key, const char *prefix, int res)
{
    struct rlimit rl = {0, 0};
    bool ok = getrlimit(res, &rl) == 0;

    emit_sub(e, key, prefix);
    /* RLIM_INFINITY is JSON null and "unlimited" in text. */
    emit_opt_num(e, "soft", ok && rl.rlim_cur != RLIM_INFINITY, rl.rlim_cur,
                 ok ? "unlimited" : "unknown");
    emit_opt_num(e, "hard", ok && rl.rlim_max != RLIM_INFINITY, rl.rlim_max,
                 ok ? "unlimited" : "unknown");
    emit_close(e);
}

static void report_limits(struct emit *e)
{
    emit_open(e, "limits", "Limits");
    report_rlimit(e, "nofile", "RLIMIT_NOFILE", RLIMIT_NOFILE);
    report_rlimit(e, "memlock", "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK);
    emit_close(e);
}

/* What ringserve does here, from the facts below it: first in text (people
 * read it first), last in JSON (the older keys keep their places). */
static void report_summary(struct emit *e, const struct rs_uring_support *s)
{
    struct rs_probe_summary sum;
    char row[256];

    rs_probe_summarize(s, &sum);
    emit_open(e, "summary", "Summary (what ringserve uses on this kernel)");
    if (e->json) {
        emit_str(e, "backend", sum.backend);
        emit_str(e, "backend_reason", sum.backend_why[0] ? sum.backend_why : NULL);
        emit_str(e, "default_features", sum.defaults);
        emit_sub(e, "features", NULL);
        for (size_t i = 0; i < sum.n; i++)
            emit_str(e, sum.f[i].name,
                     sum.f[i].verdict == RS_FEATURE_DEFAULT  ? "default"
                     : sum.f[i].verdict == RS_FEATURE_OPT_IN ? "opt-in"
                                                             : "unavailable");
        emit_close(e);
        emit_sub(e, "reasons", NULL);
        for (size_t i = 0; i < sum.n; i++)
            emit_str(e, sum.f[i].name, sum.f[i].why[0] ? sum.f[i].why : NULL);
        emit_close(e);
    } else {
        snprintf(row, sizeof(row), "%s%s%s", sum.backend, sum.backend_why[0] ? ": " : "",
                 sum.backend_why);
        text_row(e, "backend (auto)", row);
        text_row(e, "default io_uring features",
                 strcmp(sum.backend, "uring") == 0 ? sum.defaults : "-");
        for (size_t i = 0; i < sum.n; i++) {
            const struct rs_feature_summary *f = &sum.f[i];
            if (f->verdict == RS_FEATURE_DEFAULT)
                snprintf(row, sizeof(row), "used by default");
            else if (f->verdict == RS_FEATURE_OPT_IN)
                snprintf(row, sizeof(row), "opt-in: --uring-features=default,%s",
                         f->name);
            else
                snprintf(row, sizeof(row), "no: %s", f->why);
            text_row(e, f->name, row);
        }
    }
    emit_close(e);
}

int rs_probe_report(FILE *out, bool json)
{
    struct rs_uring_support s;
    struct emit e = {.out = out, .json = json, .depth = 1, .first = true};

    rs_probe_uring(&s);
    if (json) {
        fputc('{', out);
    } else {
        fprintf(out, "ringserve %s feature probe\n", RS_VERSION);
        report_summary(&e, &s);
    }
    report_system(&e);
    report_uring(&e, &s);
    report_epoll(&e);
    report_limits(&e);
    if (json) {
        report_summary(&e, &s);
        fputs("\n}", out);
    }
    fputc('\n', out);
    if (fflush(out) != 0 || ferror(out))
        return -EIO;
    return 0;
}

static struct rs_uring_support cached;
static pthread_once_t cached_once = PTHREAD_ONCE_INIT;

static void probe_cached(void)
{
    rs_probe_uring(&cached);
}

const struct rs_uring_support *rs_probe_uring_cached(void)
{
    pthread_once(&cached_once, probe_cached);
    return &cached;
}
