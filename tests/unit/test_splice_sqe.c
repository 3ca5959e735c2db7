/* io_uring's sendfile (backend_uring/splice.c), driven on a real ring
 * with the backend's SQE source replaced by the test's.
 *
 * 1. The SQE chains when the submission queue runs dry half-way. A step
 *    takes up to three SQEs (file -> pipe, pipe -> socket, the link
 *    timeout), linked; the backend's SQE source promises room for the
 *    chain, but splice.c must not rely on it: here the n-th SQE request
 *    fails. The submit must then be refused (-EBUSY, the core retries)
 *    with no SQE left half-prepared: before, a NULL SQE for the OUT splice
 *    or its timeout was written to (a crash), and an SQE flagged
 *    IOSQE_IO_LINK without its successor would have chained the next,
 *    unrelated SQE to it. The SQEs taken are NOPs whose completions name
 *    no op. Both shapes of the first step: the linked pair (a file not
 *    in the page cache) and OUT alone (a cached file, whose part went
 *    into the pipe in the loop).
 *    When the loop sends a cached file itself (2.), the one SQE of the
 *    step after is taken before a byte is sent: a refused submit has
 *    sent nothing (the core would send those bytes again).
 * 2. How many splices of a transfer go through the ring. Each is a trip
 *    to an io-wq worker and back (two context switches, a wake-up of the
 *    loop), so a cached file is sent by the loop itself with sendfile(2):
 *    counted from the SQEs themselves, a cached file's transfer issues no
 *    splice SQE at all (two versions ago: two per pipe-full, then one),
 *    to a plain socket and to a direct one (which gets a process fd from
 *    IORING_OP_FIXED_FD_INSTALL for the op, closed after it); the socket
 *    is left blocking as it was, no descriptor is left behind and no pipe
 *    was taken. Pages evicted while the op waits for room in the socket
 *    are found missing before the loop sends again (the rest goes by pipe
 *    through the ring). A file not cached goes through the ring as
 *    before, and the peer gets every byte in order either way.
 * 3. A cancel that meets a splice a worker is running. io-wq stops such a
 *    splice by signalling its worker, and one that had sent nothing yet
 *    returns -ERESTARTSYS (512, no errno: a pipe -> socket splice blocked
 *    on a full socket, as its link timeout or a cancel finds it). The op
 *    must still end with -ECANCELED (backend.h rule 10): before, it ended
 *    with -512, which a slow machine (a loaded qemu guest, where a worker
 *    takes the splice before the loop's cancel reaches it) showed as a
 *    failing contract test. Then the bytes left in the pipe are thrown
 *    away with it, and the next op sends from the offset it is given.
 * 4. A cancel that cannot reach the splice it must stop: the linked
 *    pair's pipe -> socket half is issued only once its file -> pipe half
 *    completed. The op must still end, with -ECANCELED, though the peer
 *    never reads (before, it waited for good).
 * 5. A cancel of an op the loop sends itself: while its direct socket's
 *    fd is being installed (INSTALL), and while it waits for room in a
 *    full socket (WAIT, a POLLOUT poll). The op ends at once with
 *    -ECANCELED or the bytes it sent, the socket's flags as they were,
 *    no descriptor left, no pipe taken, and no cancel asked again (there
 *    is no splice a cancel could miss).
 * 6. A peer gone before the loop's sendfile(2): -EPIPE, and no SIGPIPE
 *    kills a program whose loop runs on its own thread.
 * 7. (below) A direct socket is held between the ops of one file.
 * 8. (below) SIGPIPE's disposition is not asked once per op.
 * 9. (below) Out of descriptors, a pipe takes the held sockets' fds.
 * 10. (below) Ops larger than a MiB end at their first wait for room after
 *    it; the next starts with that wait. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "backend_uring/splice.h"
#include "backend_uring/splice_int.h"
#include "loop.h"
#include "op.h"
#include "../skip_reason.h"

#define TAG       8u
#define MAX_TAKEN 64

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

/* The backend's SQE source, replaced: a real ring, whose fail_at-th
 * request gets NULL, and which remembers the SQEs it handed out until
 * classify() has looked at what splice.c wrote into them. */
struct src {
    struct io_uring ring;
    int calls, fail_at; /* the fail_at-th request gets NULL (0: never) */
    int drop_cancels;   /* pump(): so many cancel SQEs find nothing (-ENOENT) */
    /* pump(): the cancels, pure timeouts (a cancel's retry, a splice's
     * timer) and polls it saw. */
    unsigned cancels, timeouts, polls;
    bool refuse_install; /* pump(): IORING_OP_FIXED_FD_INSTALL fails -EINVAL */
    struct io_uring_sqe *taken[MAX_TAKEN];
    unsigned ntaken;
};

static struct io_uring_sqe *get_sqe(void *ctx, unsigned n)
{
    struct src *s = ctx;
    (void)n;
    if (++s->calls == s->fail_at)
        return NULL;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
    if (sqe && s->ntaken < MAX_TAKEN)
        s->taken[s->ntaken++] = sqe;
    return sqe;
}

static void never(struct rs_loop *loop, struct rs_op *op, const struct rs_completion *c)
{
    (void)loop;
    (void)op;
    (void)c;
    fail_msg("a refused sendfile completed");
}

static void ring_init(struct src *s, unsigned flags)
{
    *s = (struct src){0};
    int rc = io_uring_queue_init(64, &s->ring, flags);
    if (rc < 0) {
        rs_skip_reason("io_uring unavailable: io_uring_queue_init: %s", strerror(-rc));
        skip();
    }
}

/* A ring, a splicer on it (the kernel's default 64 KiB pipes: pipe_size
 * 0) and a connected socket pair: sv[0] the op's socket, sv[1] its peer. */
struct rig {
    struct src s;
    struct ur_splice *sp;
    int sv[2];
    bool direct;   /* submit_at(): sv[0] as slot 0 of the ring's table */
    uint32_t held; /* sockets held between ops, as the splicer counts them */
};

static void rig_init(struct rig *g)
{
    ring_init(&g->s, 0);
    g->direct = false;
    g->sp = ur_splice_new(get_sqe, &g->s, TAG, 0, &g->held);
    assert_non_null(g->sp);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, g->sv), 0);
}

static void rig_fini(struct rig *g)
{
    ur_splice_free(g->sp);
    io_uring_queue_exit(&g->s.ring);
    close(g->sv[0]);
    close(g->sv[1]);
}

/* sv[0] as slot 0 of the ring's table of direct descriptors, or the
 * test skips (the rig torn down). */
static void rig_register_or_skip(struct rig *g)
{
    int rc = io_uring_register_files(&g->s.ring, &g->sv[0], 1);
    if (rc < 0) {
        rig_fini(g);
        rs_skip_reason("no direct descriptors: io_uring_register_files: %s",
                       strerror(-rc));
        skip();
    }
}

/* Pages of [0, len) of fd in the page cache; -1 when the kernel cannot
 * say (no cachestat(2) before Linux 6.5). */
static long pages_cached(int fd, uint64_t len)
{
    struct {
        uint64_t off, len;
    } range = {0, len};
    uint64_t cs[5];
    if (syscall(SYS_cachestat, fd, &range, cs, 0) < 0)
        return -1;
    return (long)cs[0];
}

/* Read a file's pages back into the page cache. */
static void make_cached(int fd, size_t len)
{
    uint8_t tmp[4096];
    for (off_t o = 0; o < (off_t)len; o += sizeof(tmp))
        assert_true(pread(fd, tmp, sizeof(tmp), o) > 0);
}

/* Drop fd's first len bytes from the page cache (written back first: only
 * clean pages go); false when some stayed (tmpfs, or no cachestat). */
static bool evict(int fd, size_t len)
{
    assert_int_equal(fsync(fd), 0);
    /* Pages still being read (read-ahead an earlier op started past its
     * range ends after the op) are locked, and POSIX_FADV_DONTNEED skips
     * them: asked again until none is left, a bounded number of times; a
     * file none of whose pages can go (tmpfs) is answered at once. */
    /* tmpfs pages cannot go at all. That is asked of the file system:
     * "every page stayed" is also what a read-ahead in flight over the
     * whole range looks like on a loaded machine. */
    struct statfs fs;
    assert_int_equal(fstatfs(fd, &fs), 0);
    if (fs.f_type == TMPFS_MAGIC)
        return false;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
        long left = pages_cached(fd, len);
        if (left == 0)
            return true;
        if (left < 0) /* no cachestat */
            return false;
        struct timespec ms = {0, 10 * 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    return false;
}

/* A file of len bytes (byte i is i * 7 mod 251) on a real file system
 * if there is one (/var/tmp: tmpfs pages cannot be evicted), its pages
 * cached or, as far as the kernel lets us, evicted. -1 when they could
 * not be evicted. */
static int make_file(size_t len, bool cached)
{
    char path[] = "/var/tmp/rs_splice_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) {
        memcpy(path, "/tmp/rs_splice_XXXXXX", sizeof("/tmp/rs_splice_XXXXXX"));
        fd = mkstemp(path);
    }
    assert_true(fd >= 0);
    unlink(path);
    uint8_t *b = malloc(len);
    assert_non_null(b);
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(i * 7 % 251);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    free(b);
    long want = (long)((len + 4095) / 4096);
    if (cached) {
        make_cached(fd, len);
        long n = pages_cached(fd, len);
        assert_true(n < 0 || n == want); /* < 0: no cachestat to ask */
        return fd;
    }
    if (!evict(fd, len)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A file of len bytes whose parts go through the ring's pipe and io-wq
 * (the cancel tests' worker), not the loop's own sendfile(2): its pages
 * evicted, or any file where the kernel cannot say what is cached. -1
 * where neither is possible (tmpfs with cachestat: every part is cached). */
static int ring_file(size_t len)
{
    int file = make_file(len, false);
    if (file >= 0)
        return file;
    file = make_file(len, true);
    if (pages_cached(file, len) < 0)
        return file;
    close(file);
    return -1;
}

/* The first step's SQEs run out at each of its n in turn: refused whole. */
/* io_uring_wait_cqe, again after -EINTR: a stop and a continue of the
 * process (SIGSTOP, a freezer, a debugger) end the wait so, with nothing
 * wrong. */
static int wait_cqe(struct io_uring *ring, struct io_uring_cqe **cqe)
{
    int rc;
    while ((rc = io_uring_wait_cqe(ring, cqe)) == -EINTR)
        ;
    return rc;
}

static void refuse_each(struct src *s, struct ur_splice *sp, struct rs_op *op, int n)
{
    for (int fail = 1; fail <= n; fail++) {
        s->calls = 0;
        s->fail_at = fail;
        assert_int_equal(ur_splice_submit(sp, op), -EBUSY);
        int taken = fail - 1;
        assert_int_equal(io_uring_submit(&s->ring), taken);
        for (int i = 0; i < taken; i++) {
            struct io_uring_cqe *cqe;
            assert_int_equal(wait_cqe(&s->ring, &cqe), 0);
            /* A NOP with no op behind it, unlinked: it ran (res 0). */
            assert_int_equal(cqe->res, 0);
            assert_int_equal(cqe->user_data, (uint64_t)TAG << 56);
            io_uring_cqe_seen(&s->ring, cqe);
        }
    }
    s->ntaken = 0;
}

static void test_splice_chain_refused_whole_when_sqes_run_out(void **state)
{
    (void)state;
    struct rig g;
    rig_init(&g);
    /* A cached file: the loop sends it, after taking the SQE of the step
     * that follows (one); without cachestat, the ring's file -> pipe
     * splice (one too). */
    int file = make_file(10, true);
    struct rs_sendfile from = {.file_fd = file, .off = 0};
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_SENDFILE, g.sv[0], never, NULL);
    op.buf = &from;
    op.len = 10;
    refuse_each(&g.s, g.sp, &op, 1);
    char b[16];
    assert_int_equal(recv(g.sv[1], b, sizeof(b), MSG_DONTWAIT), -1); /* nothing sent */
    assert_int_equal(errno, EAGAIN);
    close(file);
    /* A file not cached: the ring's file -> pipe splice alone (the loop
     * splices out of the pipe itself), one SQE. */
    file = make_file(10, false);
    if (file >= 0) {
        from.file_fd = file;
        refuse_each(&g.s, g.sp, &op, 1);
        close(file);
    } else {
        print_message("could not evict a file's pages: the pair's refusal untested\n");
    }
    rig_fini(&g);
}

/* The peer: reads want bytes and checks each is what the file holds,
 * after the first skip (what the test itself wrote first); with a gate
 * (a pipe's read end, else -1), only once a byte came through it. */
struct reader {
    int fd, gate;
    size_t want, got, skip;
    bool same;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    uint8_t b[65536];
    r->same = true;
    if (r->gate >= 0 && read(r->gate, b, 1) != 1)
        return NULL;
    while (r->got < r->want) {
        ssize_t n = read(r->fd, b, sizeof(b));
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            size_t at = r->got + (size_t)i;
            if (at >= r->skip && b[i] != (uint8_t)((at - r->skip) * 7 % 251))
                r->same = false;
        }
        r->got += (size_t)n;
    }
    return NULL;
}

struct done {
    bool done;
    int32_t res;
};

static void on_done(struct rs_loop *loop, struct rs_op *op, const struct rs_completion *c)
{
    (void)loop;
    struct done *d = op->data;
    assert_false(d->done);
    d->done = true;
    d->res = c->res;
}

/* What splice.c wrote into the SQEs it took since the last call: splices
 * out of the file (file -> pipe), the other splices (pipe -> socket), and
 * IORING_OP_FIXED_FD_INSTALL (54: liburing 2.3 has no name for it). */
struct sqes {
    unsigned ins, outs, installs, polls;
};

static void classify(struct src *s, int file, struct sqes *c)
{
    for (unsigned i = 0; i < s->ntaken; i++) {
        const struct io_uring_sqe *q = s->taken[i];
        if (q->opcode == 54)
            c->installs++;
        if (q->opcode == IORING_OP_POLL_ADD)
            c->polls++;
        if (q->opcode != IORING_OP_SPLICE)
            continue;
        if (q->splice_fd_in == file)
            c->ins++;
        else
            c->outs++;
    }
    s->ntaken = 0;
}

/* Descriptors this process has open. */
static int open_fds(void)
{
    int n = 0;
    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

/* Submit what is queued, then hand the next CQE to ur_splice if it is
 * its own. */
static void one_cqe(struct rig *g, struct rs_loop *loop)
{
    io_uring_submit(&g->s.ring);
    struct io_uring_cqe *cqe;
    assert_int_equal(wait_cqe(&g->s.ring, &cqe), 0);
    uint64_t ud = cqe->user_data;
    int32_t res = cqe->res;
    io_uring_cqe_seen(&g->s.ring, cqe);
    if ((ud >> 56) == TAG)
        ur_splice_cqe(g->sp, loop, ud, res);
}

/* Send len bytes of file to a peer through ur_splice, to the end, on a
 * plain socket or (direct) a direct descriptor in slot 0 of the ring's
 * table; the SQEs the ring was given, by kind. The loop's counters of
 * reads and sends by a worker (sendfile_worker_reads, _sends) must say as
 * much as the SQEs. Skips when the ring has no direct-descriptor table.
 * evict: the peer reads nothing until the op first waits for room; then
 * the file's pages are evicted (*evicted: whether the kernel did), and
 * only then does the peer read. */
static void transfer_evict(int file, size_t len, bool direct, bool evict, bool *evicted,
                           struct sqes *c)
{
    int fds_before = open_fds();
    struct rig g;
    rig_init(&g);
    if (direct)
        rig_register_or_skip(&g);
    int gate[2] = {-1, -1};
    if (evict)
        assert_int_equal(pipe(gate), 0);
    struct reader rd = {.fd = g.sv[1], .gate = gate[0], .want = len};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_all, &rd), 0);
    struct rs_sendfile from = {.file_fd = file, .off = 0};
    struct done d = {0};
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_SENDFILE, direct ? 0 : g.sv[0], on_done, &d);
    if (direct)
        op.flags |= RS_OPF_DIRECT;
    op.buf = &from;
    op.len = (uint32_t)len;
    *c = (struct sqes){0};
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    assert_int_equal(ur_splice_submit(g.sp, &op), 0);
    for (int cqes = 0; !d.done; cqes++) {
        assert_true(cqes < 1000);
        classify(&g.s, file, c);
        if (gate[1] >= 0 && c->polls > 0) {
            /* The op waits for room: its pages go, then the peer reads. */
            assert_int_equal(fsync(file), 0); /* dirty pages stay */
            assert_int_equal(posix_fadvise(file, 0, 0, POSIX_FADV_DONTNEED), 0);
            *evicted = pages_cached(file, len) < (long)((len + 4095) / 4096);
            /* And time passes: a range found cached is trusted for a
             * few ms while its op waits (the loop's clock, here frozen). */
            loop->now_ms += 60000;
            assert_int_equal(write(gate[1], "", 1), 1);
            close(gate[1]);
            gate[1] = -1;
        }
        one_cqe(&g, loop);
    }
    assert_int_equal(gate[1], -1); /* an evicting run did wait for room */
    if (gate[0] >= 0)
        close(gate[0]);
    assert_int_equal(loop->stats.sendfile_worker_reads, c->ins);
    assert_int_equal(loop->stats.sendfile_worker_sends, c->outs);
    free(loop);
    assert_int_equal(d.res, (int32_t)len);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rd.got, len);
    assert_true(rd.same);
    /* A direct socket the loop sent to itself (its fd installed) is held
     * as the op left it, non-blocking, for the socket's next sendfile op,
     * until the backend asks for it back before any other op. */
    bool loop_sent = c->installs > 0 && c->outs == 0;
    assert_int_equal(!!(fcntl(g.sv[0], F_GETFL) & O_NONBLOCK), direct && loop_sent);
    ur_splice_release(g.sp, direct ? 0 : g.sv[0]);
    /* The socket is as blocking as it was made. */
    assert_int_equal(fcntl(g.sv[0], F_GETFL) & O_NONBLOCK, 0);
    /* None live; a pipe (the loop's own sends take none) came back empty:
     * cached for the next op. */
    uint32_t live, cached;
    ur_splice_counts(g.sp, &live, &cached);
    assert_int_equal(live, 0);
    assert_int_equal(cached, c->ins + c->outs > 0 ? 1 : 0);
    rig_fini(&g);
    /* No descriptor left behind (an installed one is closed). */
    assert_int_equal(open_fds(), fds_before);
}

static void transfer(int file, size_t len, bool direct, struct sqes *c)
{
    transfer_evict(file, len, direct, false, NULL, c);
}

static void test_splice_cached_file_no_ring_splices(void **state)
{
    (void)state;
    /* Fifteen pipe-fulls and a short part: more than the peer's socket
     * takes at once, so the loop also waits for room; less than
     * UR_SPLICE_STEP, so that one op carries it all by either path. */
    size_t len = 15 * 65536 + 1000;
    int file = make_file(len, true);
    if (pages_cached(file, len) < 0) {
        close(file);
        rs_skip_reason("no cachestat(2) (Linux 6.5): every part goes through the ring");
        skip();
    }
    struct sqes c;
    transfer(file, len, false, &c);
    print_message("cached, plain socket: %u file -> pipe, %u pipe -> socket SQEs\n",
                  c.ins, c.outs);
    assert_int_equal(c.ins + c.outs, 0);
    assert_int_equal(c.installs, 0);
    transfer(file, len, true, &c);
    print_message("cached, direct socket: %u file -> pipe, %u pipe -> socket, %u install "
                  "SQEs\n",
                  c.ins, c.outs, c.installs);
    if (c.installs == 1 && c.outs > 0)
        print_message("the kernel refused IORING_OP_FIXED_FD_INSTALL (6.8): by pipe\n");
    else
        assert_int_equal(c.ins + c.outs, 0);
    /* Evicted while the op waits for room: the loop asks again before
     * sending more, and the rest goes by pipe through the ring. */
    for (int direct = 0; direct < 2; direct++) {
        bool evicted = false;
        transfer_evict(file, len, direct, true, &evicted, &c);
        print_message("evicted while waiting (%s socket): %u file -> pipe SQEs\n",
                      direct ? "direct" : "plain", c.ins);
        if (!evicted) {
            print_message("could not evict a file's pages: the fallback untested\n");
            break;
        }
        assert_true(c.ins >= 1);
        make_cached(file, len);
    }
    close(file);
    /* Not cached: the ring reads it (the loop must not wait for a disk). */
    file = make_file(len, false);
    if (file < 0) {
        print_message("could not evict a file's pages: the ring's reads untested\n");
        return;
    }
    /* Not cached: the ring reads it (the loop must not wait for a
     * disk), and the loop splices it out of the pipe: no pipe -> socket
     * splice in the ring, whose worker would wait for a peer that does
     * not read. Plain and direct (evicted again: the first read it). */
    for (int direct = 0; direct < 2; direct++) {
        if (direct && !evict(file, len)) {
            print_message("could not evict the file again: direct socket untested\n");
            break;
        }
        transfer(file, len, direct, &c);
        print_message("not cached (%s socket): %u file -> pipe, %u pipe -> socket, %u "
                      "install SQEs\n",
                      direct ? "direct" : "plain", c.ins, c.outs, c.installs);
        assert_true(c.ins >= 1);
        if (direct && c.outs > 0)
            print_message("the kernel refused IORING_OP_FIXED_FD_INSTALL (6.8): io-wq "
                          "sends to the direct socket\n");
        else
            assert_int_equal(c.outs, 0);
    }
    close(file);
}

/* Submit what splice.c queued and hand each CQE of its back to it: until
 * d says the op completed, or, with wait_ms, until nothing came for that
 * long (the op waits: the peer is not reading). The last result of a
 * cancel splice.c asked for (0: it found the splice queued; -EALREADY: a
 * worker was running it; -ENOENT: nothing in flight) goes to
 * *cancel_res, which tells which interleaving a run met. Each turn
 * enters the kernel for completions, as the backend's run() does: under
 * DEFER_TASKRUN that is when the ring's task work runs. */
static void pump(struct rig *g, struct rs_loop *loop, const struct done *d, int wait_ms,
                 int32_t *cancel_res)
{
    uint64_t cancel_ud = 0;
    for (int cqes = 0; !d->done; cqes++) {
        assert_true(cqes < 1000);
        for (unsigned i = 0; i < g->s.ntaken; i++) {
            struct io_uring_sqe *q = g->s.taken[i];
            g->s.timeouts += q->opcode == IORING_OP_TIMEOUT;
            g->s.polls += q->opcode == IORING_OP_POLL_ADD;
            if (q->opcode == 54 && g->s.refuse_install)
                q->rw_flags = 1u << 30; /* no such flag: -EINVAL, as before 6.8 */
            if (q->opcode != IORING_OP_ASYNC_CANCEL)
                continue;
            g->s.cancels++;
            cancel_ud = q->user_data;
            if (g->s.drop_cancels > 0) { /* a cancel that finds nothing */
                g->s.drop_cancels--;
                io_uring_prep_cancel64(q, (uint64_t)TAG << 56 | 1, 0);
                io_uring_sqe_set_data64(q, cancel_ud);
            }
        }
        g->s.ntaken = 0;
        io_uring_submit_and_get_events(&g->s.ring);
        struct io_uring_cqe *cqe;
        if (wait_ms) {
            /* In turns of at most 50 ms, as the backend's run() waits: on
             * 6.18 a DEFER_TASKRUN ring was seen to sleep through a
             * timeout's completion until the next io_uring_enter. */
            int rc = -ETIME;
            for (int idle = 0; idle < wait_ms && (rc == -ETIME || rc == -EINTR);) {
                int turn = wait_ms - idle < 50 ? wait_ms - idle : 50;
                struct __kernel_timespec ts = {.tv_nsec = turn * 1000000L};
                rc = io_uring_wait_cqe_timeout(&g->s.ring, &cqe, &ts);
                /* -EINTR (a stop and a continue): the turn again, uncounted */
                idle += rc == -EINTR ? 0 : turn;
            }
            if (rc == -ETIME)
                return;
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(wait_cqe(&g->s.ring, &cqe), 0);
        }
        uint64_t ud = cqe->user_data;
        int32_t res = cqe->res;
        io_uring_cqe_seen(&g->s.ring, cqe);
        if (ud == cancel_ud && cancel_res)
            *cancel_res = res;
        if ((ud >> 56) == TAG)
            ur_splice_cqe(g->sp, loop, ud, res);
    }
}

/* One sendfile of len bytes of file from offset off on the rig's socket. */
static void submit_at(struct rig *g, struct rs_op *op, struct rs_sendfile *from, int file,
                      uint64_t off, uint32_t len, struct done *d)
{
    *from = (struct rs_sendfile){.file_fd = file, .off = off};
    rs_op_init(op, RS_OP_SENDFILE, g->direct ? 0 : g->sv[0], on_done, d);
    if (g->direct)
        op->flags |= RS_OPF_DIRECT;
    op->buf = from;
    op->len = len;
    assert_int_equal(ur_splice_submit(g->sp, op), 0);
}

/* After a cancel and a pump: the op ended (the pump's hang guard did not
 * run out), with -ECANCELED or the bytes it sent, fewer than its len; no
 * op live, and no byte left in a cached pipe: one that held bytes is
 * closed, an empty one may go back to the cache (a cancel that met the
 * file's read still queued, before it took anything: seen on a loaded
 * machine), and the loop's own sends take none. */
static void cancel_ended(struct rig *g, const struct done *d, uint32_t len)
{
    if (!d->done)
        fail_msg("the cancelled op had not ended 10 s after its last completion");
    if (d->res != -ECANCELED && (d->res <= 0 || d->res >= (int32_t)len))
        fail_msg("the cancelled op ended with %d: -ECANCELED or the bytes sent", d->res);
    uint32_t live, cached;
    ur_splice_counts(g->sp, &live, &cached);
    assert_int_equal(live, 0);
    assert_true(cached <= 1);
    assert_int_equal(ur_splice_cached_bytes(g->sp), 0);
}

/* A rig whose socket is full: a loopback TCP connection with small
 * buffers (sv[0] blocking, as the backend's own sockets are), filled
 * until it takes no more; returns the bytes the test wrote. TCP, not the
 * rig's AF_UNIX pair: before Linux 6.5 a splice into a unix socket
 * appends its pages to the peer's queue however full it is, and never
 * waits. */
static void rig_init_tcp(struct rig *g, unsigned flags, int sndbuf, int rcvbuf)
{
    ring_init(&g->s, flags);
    g->direct = false;
    g->sp = ur_splice_new(get_sqe, &g->s, TAG, 0, &g->held);
    assert_non_null(g->sp);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    g->sv[1] = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(g->sv[1], SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    assert_int_equal(connect(g->sv[1], (struct sockaddr *)&a, sizeof(a)), 0);
    g->sv[0] = accept(l, NULL, NULL);
    assert_true(g->sv[0] >= 0);
    close(l);
    setsockopt(g->sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
}

static size_t rig_init_full(struct rig *g, unsigned flags)
{
    rig_init_tcp(g, flags, 4096, 4096);
    uint8_t junk[4096] = {0};
    size_t filled = 0;
    for (ssize_t n; (n = send(g->sv[0], junk, sizeof(junk), MSG_DONTWAIT)) > 0;)
        filled += (size_t)n;
    assert_true(filled > 0);
    return filled;
}

/* The next op, from where the peer is: the peer gets what the test wrote
 * (skip bytes, not yet read), then exactly the file's bytes up to total +
 * 1000, nothing of what cancelled ops took from the file but did not
 * send. */
static void next_op_from(struct rig *g, struct rs_loop *loop, int file, size_t skip,
                         uint64_t total)
{
    struct reader rd = {
        .fd = g->sv[1], .gate = -1, .want = skip + total + 1000, .skip = skip};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_all, &rd), 0);
    struct done d = {0};
    struct rs_op op;
    struct rs_sendfile from;
    submit_at(g, &op, &from, file, total, 1000, &d);
    pump(g, loop, &d, 0, NULL);
    assert_int_equal(d.res, 1000);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rd.got, skip + total + 1000);
    assert_true(rd.same);
    uint8_t extra;
    assert_int_equal(recv(g->sv[1], &extra, 1, MSG_DONTWAIT), -1); /* nothing more */
}

static void test_splice_cancel_meets_running_worker(void **state)
{
    (void)state;
    /* A cached part is sent by the loop itself and never meets a worker:
     * the file's pages are evicted before each try (each try's IN brought
     * them back). */
    int file = ring_file(65536);
    if (file < 0) {
        rs_skip_reason("no pages can be evicted here (tmpfs?), and the loop sends a "
                       "cached file itself");
        skip();
    }
    struct rig g;
    /* The peer reads nothing yet: a splice into the full socket waits in
     * its worker. */
    size_t filled = rig_init_full(&g, 0);
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    /* The cancel meets the splice still queued (it ends it with
     * -ECANCELED itself) or a worker running it (-EALREADY: the worker is
     * signalled). Which one depends on how soon a worker takes it: each
     * try gives it longer. A splice may still squeeze a few bytes in (TCP
     * frees room as the peer's kernel acknowledges) and end with them;
     * the tries go on until one met a running worker that sent nothing,
     * and every op must end with -ECANCELED or the bytes it sent. */
    int32_t cancel_res = 0, res = 0;
    uint64_t total = 0;
    for (int wait_ms = 1;
         wait_ms <= 256 && !(cancel_res == -EALREADY && res == -ECANCELED);
         wait_ms *= 2) {
        (void)evict(file, 65536); /* false without cachestat: by pipe anyway */
        struct done d = {0};
        struct rs_op op;
        struct rs_sendfile from;
        submit_at(&g, &op, &from, file, total, (uint32_t)(65536 - total), &d);
        pump(&g, loop, &d, wait_ms, NULL);
        assert_false(d.done); /* it waits for room */
        assert_int_equal(ur_splice_cancel(g.sp, &op), 0);
        pump(&g, loop, &d, 10000, &cancel_res); /* a hang guard */
        res = d.res;
        print_message("cancel after %d ms: the cancel %d, the op %d\n", wait_ms,
                      cancel_res, res);
        /* The pipe still held the part: closed, not cached for the next op. */
        cancel_ended(&g, &d, (uint32_t)(65536 - total));
        total += res > 0 ? (uint64_t)res : 0;
    }
    if (!(cancel_res == -EALREADY && res == -ECANCELED))
        print_message("no worker was stopped before its first byte: case untested\n");
    next_op_from(&g, loop, file, filled, total);
    free(loop);
    close(file);
    rig_fini(&g);
}

/* The linked pair's OUT is issued only when its IN completed, so a
 * cancel asked while IN is in flight cannot reach OUT: it finds IN done,
 * or running (a worker's read of a file is not interrupted), and OUT then
 * waits for a peer that reads nothing, for good (on 6.18 the link timeout
 * of a splice io-wq runs never fires). Here that cancel finds nothing (its
 * SQE made a NOP): IN's completion must ask again, and the op end with
 * -ECANCELED. Before, it never ended: the hang guard failed it. Both with
 * and without DEFER_TASKRUN, where OUT is issued by the loop's own task
 * work instead of the worker that ran IN. */
static void cancel_before_out(unsigned flags)
{
    /* The pair is the first step of a part not known to be cached. */
    int file = ring_file(65536);
    if (file < 0) {
        rs_skip_reason("no pages can be evicted here (tmpfs?), and a cached file is "
                       "sent by the loop itself");
        skip();
    }
    struct rig g;
    rig_init_full(&g, flags);
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    struct done d = {0};
    struct rs_op op;
    struct rs_sendfile from;
    submit_at(&g, &op, &from, file, 0, 65536, &d);
    struct sqes c = {0};
    classify(&g.s, file, &c);
    assert_int_equal(c.ins, 1); /* the pair: IN in the ring */
    assert_int_equal(ur_splice_cancel(g.sp, &op), 0);
    g.s.drop_cancels = 1;
    pump(&g, loop, &d, 10000, NULL); /* a hang guard, not a wait */
    /* What squeezed in before the socket was full may have gone out; the
     * pipe held IN's bytes: closed. */
    cancel_ended(&g, &d, 65536);
    free(loop);
    close(file);
    rig_fini(&g);
}

static void test_splice_cancel_before_out_is_issued(void **state)
{
    (void)state;
    cancel_before_out(0);
    struct io_uring probe;
    unsigned defer = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    if (io_uring_queue_init(4, &probe, defer) < 0) {
        print_message("no DEFER_TASKRUN (Linux 6.1): tested without it only\n");
        return;
    }
    io_uring_queue_exit(&probe);
    cancel_before_out(defer);
}

/* Where the loop's own send of a cached file is cancelled: while its
 * direct socket's fd is being installed, while it waits for room, and
 * while it waits with a cancel that found nothing. */
enum { AT_INSTALL, AT_WAIT, AT_WAIT_MISSED };

/* rig_init_full, its socket a direct descriptor when direct (the
 * backend's default for accepted sockets). false: the kernel has no direct
 * descriptors here (said, and the rig gone). */
static bool rig_init_full_as(struct rig *g, bool direct, size_t *filled)
{
    *filled = rig_init_full(g, 0);
    if (!direct)
        return true;
    int rc = io_uring_register_files(&g->s.ring, &g->sv[0], 1);
    if (rc < 0) {
        rig_fini(g);
        print_message("no direct descriptors (%s): direct socket untested\n",
                      strerror(-rc));
        return false;
    }
    g->direct = true;
    return true;
}

/* One op of a cached file, on a full socket whose peer reads nothing,
 * cancelled at step `at`: it must end at once with -ECANCELED (or the
 * bytes it sent), the socket's flags as they were, its installed fd
 * closed, no pipe taken, and no cancel asked again: the steps of a loop's
 * send have no splice a cancel could miss, so nothing to retry (a cancel
 * that found nothing ends the op at the poll's completion). */
static void cancel_loop_send(int file, bool direct, int at)
{
    struct rig g;
    size_t filled;
    if (!rig_init_full_as(&g, direct, &filled))
        return;
    int flags = fcntl(g.sv[0], F_GETFL);
    int fds = open_fds();
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    struct done d = {0};
    struct rs_op op;
    struct rs_sendfile from;
    submit_at(&g, &op, &from, file, 0, 65536, &d);
    struct sqes c = {0};
    classify(&g.s, file, &c);
    assert_int_equal(c.ins + c.outs, 0); /* cached: the loop sends it */
    if (at == AT_INSTALL) {
        assert_int_equal(c.installs, 1);
    } else {
        /* Until it waits for room (after the INSTALL's CQE, if direct). */
        for (int i = 0; i < 4 && c.polls == 0 && c.ins + c.outs == 0; i++) {
            one_cqe(&g, loop);
            classify(&g.s, file, &c);
        }
        if (c.polls == 0) {
            print_message("the kernel refused IORING_OP_FIXED_FD_INSTALL (6.8): by "
                          "pipe, the loop's WAIT untested\n");
        } else {
            io_uring_submit(&g.s.ring); /* the poll armed */
            /* The loop's send: non-blocking for the op, an fd installed. */
            assert_true(fcntl(g.sv[0], F_GETFL) & O_NONBLOCK);
            assert_int_equal(open_fds(), fds + (direct ? 1 : 0));
        }
    }
    g.s.drop_cancels = at == AT_WAIT_MISSED;
    assert_int_equal(ur_splice_cancel(g.sp, &op), 0);
    size_t junk_read = 0;
    if (at == AT_WAIT_MISSED) {
        pump(&g, loop, &d, 50, NULL); /* the cancel's CQE, then nothing */
        assert_int_equal(g.s.drop_cancels, 0);
        assert_false(d.done); /* still waiting for room, not asked again */
        /* The peer makes room: the poll's completion ends the op. */
        uint8_t b[65536];
        for (ssize_t n; (n = recv(g.sv[1], b, sizeof(b), MSG_DONTWAIT)) > 0;)
            junk_read += (size_t)n;
        assert_true(junk_read > 0 && junk_read <= filled);
    }
    pump(&g, loop, &d, 10000, NULL); /* a hang guard, not a wait */
    print_message("cancelled at %s (%s socket): the op %d\n",
                  at == AT_INSTALL ? "INSTALL"
                  : at == AT_WAIT  ? "WAIT"
                                   : "WAIT, missed",
                  direct ? "direct" : "plain", d.res);
    cancel_ended(&g, &d, 65536); /* and no pipe was taken */
    if (at == AT_INSTALL)
        assert_int_equal(d.res, -ECANCELED); /* the loop had sent nothing */
    assert_int_equal(g.s.cancels, 1);
    assert_int_equal(g.s.timeouts, 0); /* no retry timer */
    assert_int_equal(fcntl(g.sv[0], F_GETFL), flags);
    assert_int_equal(open_fds(), fds);
    /* The socket still works, from the offset the op reported. */
    next_op_from(&g, loop, file, filled - junk_read, d.res > 0 ? (uint64_t)d.res : 0);
    free(loop);
    rig_fini(&g);
}

static void test_splice_cancel_of_the_loops_own_send(void **state)
{
    (void)state;
    int file = make_file(65536, true);
    if (pages_cached(file, 65536) < 0) {
        close(file);
        rs_skip_reason("no cachestat(2) (Linux 6.5): the loop never sends");
        skip();
    }
    cancel_loop_send(file, true, AT_INSTALL);
    for (int direct = 0; direct < 2; direct++) {
        cancel_loop_send(file, direct, AT_WAIT);
        cancel_loop_send(file, direct, AT_WAIT_MISSED);
    }
    close(file);
}

/* Where the loop's send of a file not cached is cancelled: while the
 * ring reads a part into the pipe (IN), and while the loop waits for
 * room to splice the pipe into the socket (WAIT). */
enum { AT_IN, AT_PIPE_WAIT };

/* One op of an evicted file on a full socket whose peer reads nothing,
 * cancelled at step `at`: it ends with -ECANCELED (or the bytes it
 * sent), no splice of the pipe into the socket went to the ring (no
 * worker waits for the peer), the socket's flags are as they were, an
 * installed fd is closed, a pipe that held bytes is not kept, and the
 * socket still works from the offset the op reported. */
static void cancel_pipe_send(int file, bool direct, int at)
{
    struct rig g;
    size_t filled;
    if (!rig_init_full_as(&g, direct, &filled))
        return;
    int flags = fcntl(g.sv[0], F_GETFL);
    int fds = open_fds();
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    assert_true(evict(file, 65536));
    struct done d = {0};
    struct rs_op op;
    struct rs_sendfile from;
    submit_at(&g, &op, &from, file, 0, 65536, &d);
    struct sqes c = {0};
    classify(&g.s, file, &c);
    /* Until the ring reads (after the INSTALL's CQE, if direct). */
    for (int i = 0; i < 4 && c.ins == 0; i++) {
        one_cqe(&g, loop);
        classify(&g.s, file, &c);
    }
    /* No splice of the pipe into the socket in the ring: no worker
     * waits for a peer that does not read (the loop splices). */
    if (direct && c.installs == 1 && c.outs > 0) {
        print_message("the kernel refused IORING_OP_FIXED_FD_INSTALL (6.8): the loop's "
                      "pipe send untested\n");
        free(loop);
        rig_fini(&g);
        return;
    }
    assert_int_equal(c.outs, 0);
    assert_int_equal(c.ins, 1);
    if (at == AT_PIPE_WAIT) {
        one_cqe(&g, loop); /* the read: the loop splices, the socket is full */
        classify(&g.s, file, &c);
        assert_int_equal(c.polls, 1);
        io_uring_submit(&g.s.ring); /* the poll armed */
        assert_true(fcntl(g.sv[0], F_GETFL) & O_NONBLOCK);
        assert_int_equal(open_fds(), fds + (direct ? 1 : 0) + 2); /* + the pipe */
    }
    assert_int_equal(ur_splice_cancel(g.sp, &op), 0);
    pump(&g, loop, &d, 10000, NULL); /* a hang guard, not a wait */
    print_message("cancelled at %s (%s socket): the op %d\n",
                  at == AT_IN ? "IN" : "WAIT for the pipe", direct ? "direct" : "plain",
                  d.res);
    cancel_ended(&g, &d, 65536);
    classify(&g.s, file, &c);
    assert_int_equal(c.outs, 0);
    uint32_t live, cached;
    ur_splice_counts(g.sp, &live, &cached);
    assert_int_equal(fcntl(g.sv[0], F_GETFL), flags);
    /* An empty pipe may be kept (a read cancelled before it ran). */
    assert_int_equal(open_fds(), fds + 2 * (int)cached);
    next_op_from(&g, loop, file, filled, d.res > 0 ? (uint64_t)d.res : 0);
    free(loop);
    rig_fini(&g);
}

static void test_splice_cancel_of_the_loops_pipe_send(void **state)
{
    (void)state;
    /* A file of its own for each case: the case before may leave pages
     * of its file referenced for a while (by the bytes it queued on a
     * socket the ring still holds until its asynchronous teardown), and
     * referenced pages cannot be evicted. */
    for (int direct = 0; direct < 2; direct++) {
        for (int at = AT_IN; at <= AT_PIPE_WAIT; at++) {
            int file = make_file(65536, false);
            if (file < 0) {
                rs_skip_reason(
                    "no pages can be evicted here (tmpfs?): every part is cached");
                skip();
            }
            cancel_pipe_send(file, direct, at);
            close(file);
        }
    }
}

/* A direct socket the loop cannot have as an fd (no
 * IORING_OP_FIXED_FD_INSTALL before 6.8: refused here) stays blocking,
 * and an io-wq worker splices the pipe into it. Its peer reads nothing:
 * the worker's splice must not wait for it (before, it did until the
 * peer read: its IORING_OP_LINK_TIMEOUT never fires on 6.18). A timer
 * cancels the splice, and the op waits for room with a poll; once the
 * peer reads, every byte arrives. */
static void test_splice_blocking_socket_worker_released(void **state)
{
    (void)state;
    int file = make_file(65536, false);
    if (file < 0) {
        rs_skip_reason("no pages can be evicted here (tmpfs?): every part is cached, "
                       "and the ring's splices never meet a full socket");
        skip();
    }
    struct rig g;
    size_t filled = rig_init_full(&g, 0);
    int rc = io_uring_register_files(&g.s.ring, &g.sv[0], 1);
    if (rc < 0) {
        rig_fini(&g);
        close(file);
        rs_skip_reason("no direct descriptors: %s", strerror(-rc));
        skip();
    }
    g.direct = true;
    g.s.refuse_install = true;
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    struct done d = {0};
    struct rs_op op;
    struct rs_sendfile from;
    submit_at(&g, &op, &from, file, 0, 65536, &d);
    /* Until the op waits with a poll (or ends, or nothing happens for 10
     * s: the worker still waits). A fixed quiet window (2 s, before)
     * failed whenever the timer's chain of CQEs, the worker's included,
     * got no CPU for that long, and cost its length on every pass. */
    for (int quiet = 0; quiet < 50 && !d.done && g.s.polls == 0; quiet++)
        pump(&g, loop, &d, 200, NULL);
    print_message("blocking socket: %u timers, %u cancels, %u polls; the op %s\n",
                  g.s.timeouts, g.s.cancels, g.s.polls, d.done ? "ended" : "waits");
    assert_false(d.done);
    /* The worker's splice was stopped: the op waits for room. */
    if (g.s.polls == 0)
        fail_msg(
            "a worker's splice into a full blocking socket still waits for the peer");
    /* The peer reads: the rest goes, in order. */
    struct reader rd = {
        .fd = g.sv[1], .gate = -1, .want = filled + 65536, .skip = filled};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_all, &rd), 0);
    pump(&g, loop, &d, 0, NULL);
    assert_int_equal(d.res, 65536);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rd.got, filled + 65536);
    assert_true(rd.same);
    uint32_t live, cached;
    ur_splice_counts(g.sp, &live, &cached);
    assert_int_equal(live, 0);
    free(loop);
    close(file);
    rig_fini(&g);
}

/* A peer gone before a cached file goes out: the loop's sendfile(2) gets
 * EPIPE, which the kernel pairs with SIGPIPE (sendfile has no
 * MSG_NOSIGNAL). A program whose loop runs on its own thread, SIGPIPE
 * left at its default (this test), must not be killed: the op fails
 * with -EPIPE, no SIGPIPE is left pending and the signal mask is as it
 * was. */
/* The op on a socket whose peer left, from a cached file (the loop's
 * sendfile) or an evicted one (the ring reads, the loop splices out of
 * the pipe: splice(2) raises SIGPIPE just the same). */
static void peer_gone(int file, size_t len)
{
    struct rig g;
    rig_init(&g);
    close(g.sv[1]);
    g.sv[1] = socket(AF_UNIX, SOCK_STREAM, 0); /* for rig_fini */
    struct rs_sendfile from = {.file_fd = file, .off = 0};
    struct done d = {0};
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_SENDFILE, g.sv[0], on_done, &d);
    op.buf = &from;
    op.len = (uint32_t)len;
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    assert_int_equal(ur_splice_submit(g.sp, &op), 0);
    for (int cqes = 0; !d.done; cqes++) {
        assert_true(cqes < 100);
        one_cqe(&g, loop);
    }
    free(loop);
    assert_int_equal(d.res, -EPIPE);
    sigset_t pending, mask;
    assert_int_equal(sigpending(&pending), 0);
    assert_false(sigismember(&pending, SIGPIPE));
    assert_int_equal(pthread_sigmask(SIG_SETMASK, NULL, &mask), 0);
    assert_false(sigismember(&mask, SIGPIPE));
    rig_fini(&g);
}

static void test_splice_peer_gone_no_sigpipe(void **state)
{
    (void)state;
    struct sigaction dfl = {.sa_handler = SIG_DFL}, was;
    assert_int_equal(sigaction(SIGPIPE, &dfl, &was), 0);
    size_t len = 65536;
    int file = make_file(len, true);
    if (pages_cached(file, len) < 0) {
        close(file);
        sigaction(SIGPIPE, &was, NULL);
        rs_skip_reason("no cachestat(2) (Linux 6.5): the loop never sends");
        skip();
    }
    peer_gone(file, len);
    if (evict(file, len))
        peer_gone(file, len);
    else
        print_message("could not evict a file's pages: the loop's splice untested\n");
    close(file);
    sigaction(SIGPIPE, &was, NULL);
}

/* 7. A direct socket streaming a file in several ops: the first op's
 *    INSTALL'd fd and O_NONBLOCK flag are held for the next (no INSTALL,
 *    no fcntl(2)); a send between ops clears the flag but keeps the fd
 *    (ur_splice_unflag: the next op installs nothing); the socket goes
 *    back when the backend asks for it (ur_splice_release, before any
 *    other op on it) or the loop ends (ur_splice_free): then blocking
 *    again, no fd left. */
static void test_splice_direct_socket_held_between_ops(void **state)
{
    (void)state;
    const size_t part = 256 * 1024, nparts = 4;
    int file = make_file(part * nparts, true);
    if (pages_cached(file, part * nparts) < 0) {
        close(file);
        rs_skip_reason("no cachestat(2) (Linux 6.5): the loop does not send itself");
        skip();
    }
    for (int end_by_free = 0; end_by_free < 2; end_by_free++) {
        int fds_before = open_fds();
        struct rig g;
        rig_init(&g);
        int rc = io_uring_register_files(&g.s.ring, &g.sv[0], 1);
        if (rc < 0) {
            rig_fini(&g);
            close(file);
            rs_skip_reason("no direct descriptors: io_uring_register_files: %s",
                           strerror(-rc));
            skip();
        }
        g.direct = true;
        int fds_rig = open_fds(); /* the ring's, the pair */
        struct reader rd = {.fd = g.sv[1], .gate = -1, .want = part * nparts};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, read_all, &rd), 0);
        struct rs_loop *loop = calloc(1, sizeof(*loop));
        assert_non_null(loop);
        for (size_t i = 0; i < nparts; i++) {
            struct done d = {0};
            struct rs_op op;
            struct rs_sendfile from;
            g.s.ntaken = 0;
            submit_at(&g, &op, &from, file, i * part, (uint32_t)part, &d);
            struct sqes c = {0};
            /* Classify each SQE before pump() forgets it. */
            while (!d.done) {
                classify(&g.s, file, &c);
                one_cqe(&g, loop);
            }
            classify(&g.s, file, &c);
            assert_int_equal(d.res, (int32_t)part);
            if (i == 0 && c.outs > 0) {
                /* Before 6.8: io-wq sends to a direct socket, none held. */
                shutdown(g.sv[0], SHUT_WR); /* the reader sees the end */
                assert_int_equal(pthread_join(t, NULL), 0);
                free(loop);
                rig_fini(&g);
                close(file);
                rs_skip_reason("no IORING_OP_FIXED_FD_INSTALL (Linux 6.8): nothing held");
                skip();
            }
            assert_int_equal(c.ins + c.outs, 0);
            if (i == 0 && c.installs == 0)
                fail_msg("the first op on a direct socket installed no fd");
            if (i == 0)
                print_message("op 1: %u install SQE\n", c.installs);
            else if (c.installs != 0)
                fail_msg("op %zu on the same direct socket installed its fd again "
                         "(%u INSTALL SQEs): it was not held",
                         i + 1, c.installs);
            /* Held between ops: non-blocking, one more fd, counted
             * where the backend's submit looks. */
            assert_true(fcntl(g.sv[0], F_GETFL) & O_NONBLOCK);
            assert_int_equal(open_fds(), fds_rig + 1);
            assert_int_equal(g.held, 1);
            if (i == 1 && !end_by_free) {
                /* What the backend does before a send on the socket (a
                 * next response's head): blocking again, the fd kept for
                 * the next op, which then installs nothing. */
                ur_splice_unflag(g.sp, 0);
                assert_int_equal(fcntl(g.sv[0], F_GETFL) & O_NONBLOCK, 0);
                assert_int_equal(open_fds(), fds_rig + 1);
                assert_int_equal(g.held, 1);
            }
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(rd.got, part * nparts);
        assert_true(rd.same);
        free(loop);
        if (!end_by_free) {
            ur_splice_release(g.sp, 0);
            assert_int_equal(fcntl(g.sv[0], F_GETFL) & O_NONBLOCK, 0);
            assert_int_equal(open_fds(), fds_rig);
            assert_int_equal(g.held, 0);
            ur_splice_release(g.sp, 0); /* not held any more: nothing */
            assert_int_equal(g.held, 0);
        }
        rig_fini(&g);
        assert_int_equal(g.held, 0);
        assert_int_equal(open_fds(), fds_before);
    }
    close(file);
}

/* One op: len bytes of file from its start to the direct socket in slot,
 * all of them. */
static void send_whole_direct(struct rig *g, struct rs_loop *loop, int slot, int file,
                              size_t len)
{
    struct done d = {0};
    struct rs_op op = {0};
    struct rs_sendfile from = {.file_fd = file, .off = 0};
    rs_op_init(&op, RS_OP_SENDFILE, slot, on_done, &d);
    op.flags |= RS_OPF_DIRECT;
    op.buf = &from;
    op.len = (uint32_t)len;
    assert_int_equal(ur_splice_submit(g->sp, &op), 0);
    pump(g, loop, &d, 0, NULL);
    assert_int_equal(d.res, (int32_t)len);
}

/* 7b. More direct sockets streaming at once than the loop holds (16):
 *     the oldest held one is put back (blocking, its fd closed), the
 *     others stay held; ur_splice_free puts back the rest. */
static void test_splice_held_sockets_bounded(void **state)
{
    (void)state;
    enum { N = 17 };
    const size_t len = 4096;
    int file = make_file(len, true);
    if (pages_cached(file, len) < 0) {
        close(file);
        rs_skip_reason("no cachestat(2) (Linux 6.5): the loop does not send itself");
        skip();
    }
    int fds_before = open_fds();
    struct rig g = {.direct = true};
    ring_init(&g.s, 0);
    int sv[N][2], table[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
        table[i] = sv[i][0];
    }
    int rc = io_uring_register_files(&g.s.ring, table, N);
    if (rc < 0) {
        rs_skip_reason("no direct descriptors: io_uring_register_files: %s",
                       strerror(-rc));
        skip();
    }
    g.sp = ur_splice_new(get_sqe, &g.s, TAG, 0, &g.held);
    assert_non_null(g.sp);
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    int fds_rig = open_fds();
    for (int i = 0; i < N; i++) {
        send_whole_direct(&g, loop, i, file, len);
        if (i == 0 && !(fcntl(sv[0][0], F_GETFL) & O_NONBLOCK)) {
            free(loop);
            ur_splice_free(g.sp);
            io_uring_queue_exit(&g.s.ring);
            for (int k = 0; k < N; k++) {
                close(sv[k][0]);
                close(sv[k][1]);
            }
            close(file);
            rs_skip_reason("no IORING_OP_FIXED_FD_INSTALL (Linux 6.8): nothing held");
            skip();
        }
    }
    /* The first socket went back when the 17th was held. */
    assert_int_equal(fcntl(sv[0][0], F_GETFL) & O_NONBLOCK, 0);
    for (int i = 1; i < N; i++)
        assert_true(fcntl(sv[i][0], F_GETFL) & O_NONBLOCK);
    assert_int_equal(open_fds(), fds_rig + N - 1);
    assert_int_equal(g.held, N - 1);
    free(loop);
    ur_splice_free(g.sp);
    assert_int_equal(g.held, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(fcntl(sv[i][0], F_GETFL) & O_NONBLOCK, 0);
    io_uring_queue_exit(&g.s.ring);
    for (int i = 0; i < N; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    assert_int_equal(open_fds(), fds_before);
    close(file);
}

/* 9. Two direct sockets held (their installed fds), the process at its
 *    soft RLIMIT_NOFILE (every number below it taken), and an op on a
 *    third socket (plain) for a file not in the page cache, which needs
 *    a pipe: pipe2(2) finds no descriptor, the held sockets are given
 *    back (blocking again, their fds closed) and pipe2 tried once more,
 *    and the op goes through. Before, the submit failed with -EMFILE
 *    while the two fds sat held (this splicer makes no direct pipes). */
static void test_splice_pipe_at_limit_takes_held_fds(void **state)
{
    (void)state;
    const size_t len = 4096;
    int cached = make_file(len, true);
    int cold = make_file(len, false);
    const char *why = pages_cached(cached, len) < 0
                          ? "no cachestat(2) (Linux 6.5): the loop does not send itself"
                      : cold < 0 ? "a file whose pages cannot be evicted (tmpfs): no pipe"
                                 : NULL;
    int sv[3][2];
    for (int i = 0; i < 3; i++)
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
    struct rig g = {.direct = true};
    ring_init(&g.s, 0);
    int table[2] = {sv[0][0], sv[1][0]};
    int rc = why ? 0 : io_uring_register_files(&g.s.ring, table, 2);
    if (rc < 0)
        why = "no direct descriptors: io_uring_register_files";
    g.sp = ur_splice_new(get_sqe, &g.s, TAG, 0, &g.held);
    assert_non_null(g.sp);
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    for (int i = 0; i < 2 && !why; i++)
        send_whole_direct(&g, loop, i, cached, len);
    if (!why && g.held != 2)
        why = "no IORING_OP_FIXED_FD_INSTALL (Linux 6.8): nothing held";
    int32_t res = 0;
    if (!why) {
        struct rlimit old;
        assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
        int low = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(low >= 0);
        close(low); /* the lowest free number: the limit */
        struct rlimit at = {.rlim_cur = (rlim_t)low, .rlim_max = old.rlim_max};
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &at), 0);
        int p[2];
        assert_int_equal(pipe(p), -1); /* really out of descriptors */
        struct done d = {0};
        struct rs_op op;
        struct rs_sendfile from = {.file_fd = cold, .off = 0};
        rs_op_init(&op, RS_OP_SENDFILE, sv[2][0], on_done, &d);
        op.buf = &from;
        op.len = (uint32_t)len;
        rc = ur_splice_submit(g.sp, &op);
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
        assert_int_equal(rc, 0);
        assert_int_equal(g.held, 0);
        for (int i = 0; i < 2; i++)
            assert_int_equal(fcntl(sv[i][0], F_GETFL) & O_NONBLOCK, 0);
        pump(&g, loop, &d, 0, NULL);
        res = d.res;
    }
    free(loop);
    ur_splice_free(g.sp);
    io_uring_queue_exit(&g.s.ring);
    for (int i = 0; i < 3; i++) {
        close(sv[i][0]);
        close(sv[i][1]);
    }
    close(cached);
    if (cold >= 0)
        close(cold);
    if (why) {
        rs_skip_reason("%s", why);
        skip();
    }
    assert_int_equal(res, (int32_t)len);
}

/* sigaction(2), counted: the asks for SIGPIPE's disposition (no new
 * action) made while sigaction_counting. The program's own definition
 * comes before the C library's (and a sanitizer's), which it calls. */
static bool sigaction_counting;
static unsigned sigaction_asks;

int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    static int (*real)(int, const struct sigaction *, struct sigaction *);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "sigaction");
    if (sigaction_counting && sig == SIGPIPE && !act)
        sigaction_asks++;
    return real(sig, act, old);
}

/* 8. Many small ops of a cached file, each sent by the loop itself: the
 *    guard around its sendfile(2) needs SIGPIPE's disposition, but asks
 *    the kernel at most once per SIGPIPE_ASK_MS (1 s), not once per op
 *    (one syscall per op before). Bounded without a clock in the
 *    assertion: a run slow enough to need more asks (over 0.3 s for 64
 *    ops of 4 KiB) is reported, not failed. */
static void test_splice_sigpipe_disposition_not_asked_per_op(void **state)
{
    (void)state;
    const size_t part = 4096, nparts = 64;
    int file = make_file(part * nparts, true);
    if (pages_cached(file, part * nparts) < 0) {
        close(file);
        rs_skip_reason("no cachestat(2) (Linux 6.5): the loop does not send itself");
        skip();
    }
    struct rig g;
    rig_init(&g);
    struct reader rd = {.fd = g.sv[1], .gate = -1, .want = part * nparts};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_all, &rd), 0);
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sigaction_asks = 0;
    sigaction_counting = true;
    for (size_t i = 0; i < nparts; i++) {
        struct done d = {0};
        struct rs_op op;
        struct rs_sendfile from;
        submit_at(&g, &op, &from, file, i * part, (uint32_t)part, &d);
        pump(&g, loop, &d, 0, NULL);
        assert_int_equal(d.res, (int32_t)part);
    }
    sigaction_counting = false;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rd.got, part * nparts);
    assert_true(rd.same);
    free(loop);
    rig_fini(&g);
    close(file);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    print_message("%zu ops in %ld ms: SIGPIPE's disposition asked %u times\n", nparts, ms,
                  sigaction_asks);
    assert_true(sigaction_asks >= 1);
    if (ms > 300) {
        print_message("too slow a run to tell (over 300 ms)\n");
        return;
    }
    if (sigaction_asks >= nparts / 2)
        fail_msg(
            "SIGPIPE's disposition asked %u times for %zu ops in %ld ms: once per op",
            sigaction_asks, nparts, ms);
}

/* sendfile(2) (sendfile64 with 64-bit offsets, which is what the
 * backend calls), counted the same way; and the checks of what is cached
 * (this binary is linked with -Wl,--wrap=rs_range_cached). */
static unsigned sendfile_calls, range_checks;

ssize_t sendfile64(int out_fd, int in_fd, off64_t *offset, size_t count)
{
    static ssize_t (*real)(int, int, off64_t *, size_t);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "sendfile64");
    sendfile_calls++;
    return real(out_fd, in_fd, offset, count);
}

int __real_rs_range_cached(int fd, uint64_t off, uint64_t len);
int __wrap_rs_range_cached(int fd, uint64_t off, uint64_t len);
int __wrap_rs_range_cached(int fd, uint64_t off, uint64_t len)
{
    range_checks++;
    return __real_rs_range_cached(fd, off, len);
}

/* 10. A cached file sent as the stream sends it (ops of UR_SPLICE_OP_MAX,
 *    the next submitted from inside the completion of the last), to a
 *    peer that takes a socket-full at a time (the test drains it between
 *    completions; 64 KiB buffers). An op ends early, with 1 MiB or more
 *    but less than its len, once its socket is full after 1 MiB went out
 *    (before: it waited, and completed with all of its len). The next op
 *    then starts with the wait for room — its first SQE a POLLOUT poll,
 *    no sendfile(2) into the full socket before — and, when the last
 *    op's check of what is cached is fresh (a few ms), without checking
 *    again. Plain and direct sockets (held between the ops). */
struct chain {
    struct rig *g;
    struct rs_op op;
    struct rs_sendfile from;
    uint64_t len, done;
    unsigned ops, early, unsure;
};

static void chain_submit(struct chain *c)
{
    uint64_t left = c->len - c->done;
    c->op.len = left < UR_SPLICE_OP_MAX ? (uint32_t)left : UR_SPLICE_OP_MAX;
    assert_int_equal(ur_splice_submit(c->g->sp, &c->op), 0);
}

static void chain_done(struct rs_loop *loop, struct rs_op *op,
                       const struct rs_completion *c)
{
    (void)loop;
    struct chain *ch = op->data;
    assert_true(c->res > 0);
    ch->ops++;
    ch->done += (uint64_t)c->res;
    ch->from.off += (uint64_t)c->res; /* as the stream moves its chunk on */
    if (ch->done == ch->len)
        return;
    if ((uint32_t)c->res == op->len) {
        chain_submit(ch);
        return;
    }
    if ((uint32_t)c->res < UR_SPLICE_STEP)
        fail_msg("an op ended short (%d of %u) before %u bytes went out", c->res, op->len,
                 UR_SPLICE_STEP);
    ch->early++;
    /* What the ended op left for the next (white box: whether its check
     * is fresh enough to be trusted, CACHED_TRUST_MS, 10 ms). The submit
     * reads the clock itself, between the two readings here: only when
     * the later one still finds the check fresh must it have been taken
     * over, so a test that loses its CPU in between cannot fail. */
    const struct sp_next *n = &ch->g->sp->next;
    assert_true(n->op == op && n->full);
    uint64_t cached_ms = n->cached_ms;
    bool cached = n->cached_to > n->off;
    unsigned calls = sendfile_calls, checks = range_checks, taken = ch->g->s.ntaken;
    chain_submit(ch);
    bool fresh = cached && rs_now_ms() - cached_ms < 10;
    if (sendfile_calls != calls)
        fail_msg("the op after one that ended at a full socket began with %u "
                 "sendfile(2) before waiting for room",
                 sendfile_calls - calls);
    assert_int_equal(ch->g->s.ntaken, taken + 1);
    assert_int_equal(ch->g->s.taken[taken]->opcode, IORING_OP_POLL_ADD);
    if (fresh)
        assert_int_equal(range_checks, checks);
    else
        ch->unsure++;
}

static void chain_run(int file, uint64_t len, bool direct)
{
    struct rig g;
    rig_init_tcp(&g, 0, 64 * 1024, 64 * 1024);
    if (direct)
        rig_register_or_skip(&g);
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    struct chain c = {.g = &g, .from = {.file_fd = file, .off = 0}, .len = len};
    rs_op_init(&c.op, RS_OP_SENDFILE, direct ? 0 : g.sv[0], chain_done, &c);
    if (direct)
        c.op.flags |= RS_OPF_DIRECT;
    c.op.buf = &c.from;
    unsigned calls0 = sendfile_calls, checks0 = range_checks;
    chain_submit(&c);
    uint64_t got = 0;
    bool same = true;
    uint8_t *b = malloc(1u << 16);
    assert_non_null(b);
    for (int turns = 0; got < len; turns++) {
        assert_true(turns < 200000);
        /* The peer takes what reached it. */
        ssize_t n;
        while ((n = recv(g.sv[1], b, 1u << 16, MSG_DONTWAIT)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                same = same && b[i] == (uint8_t)((got + (uint64_t)i) * 7 % 251);
            got += (uint64_t)n;
        }
        if (c.done == len)
            continue;
        /* The loop's next CQE, if one comes within 10 ms (else the peer
         * reads again): the loop's clock read anew, as at each turn. */
        g.s.ntaken = 0;
        io_uring_submit(&g.s.ring);
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_nsec = 10 * 1000000L};
        if (io_uring_wait_cqe_timeout(&g.s.ring, &cqe, &ts) != 0)
            continue;
        uint64_t ud = cqe->user_data;
        int32_t res = cqe->res;
        io_uring_cqe_seen(&g.s.ring, cqe);
        loop->now_stale = true;
        if ((ud >> 56) == TAG)
            ur_splice_cqe(g.sp, loop, ud, res);
    }
    free(b);
    print_message("%s socket: %u ops for %llu bytes, %u ended early (%u too late to "
                  "tell about the check), %u sendfile(2), %u checks of what is cached\n",
                  direct ? "direct" : "plain", c.ops, (unsigned long long)len, c.early,
                  c.unsure, sendfile_calls - calls0, range_checks - checks0);
    assert_true(same);
    assert_true(c.early >= 1);
    free(loop);
    rig_fini(&g);
}

static void test_splice_large_ops_end_early_and_wait_first(void **state)
{
    (void)state;
    const uint64_t len = 6u << 20;
    int file = make_file(len, true);
    if (pages_cached(file, len) < 0) {
        close(file);
        rs_skip_reason("no cachestat(2) (Linux 6.5): the loop does not send itself");
        skip();
    }
    chain_run(file, len, false);
    chain_run(file, len, true);
    close(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splice_chain_refused_whole_when_sqes_run_out),
        cmocka_unit_test(test_splice_cached_file_no_ring_splices),
        cmocka_unit_test(test_splice_cancel_meets_running_worker),
        cmocka_unit_test(test_splice_cancel_before_out_is_issued),
        cmocka_unit_test(test_splice_cancel_of_the_loops_own_send),
        cmocka_unit_test(test_splice_cancel_of_the_loops_pipe_send),
        cmocka_unit_test(test_splice_blocking_socket_worker_released),
        cmocka_unit_test(test_splice_peer_gone_no_sigpipe),
        cmocka_unit_test(test_splice_direct_socket_held_between_ops),
        cmocka_unit_test(test_splice_held_sockets_bounded),
        cmocka_unit_test(test_splice_sigpipe_disposition_not_asked_per_op),
        cmocka_unit_test(test_splice_pipe_at_limit_takes_held_fds),
        cmocka_unit_test(test_splice_large_ops_end_early_and_wait_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
