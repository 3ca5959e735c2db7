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
 * 2. How many splices of a transfer go through the ring. Each is a trip
 *    to an io-wq worker and back (two context switches, a wake-up of the
 *    loop), so a cached file's file -> pipe half is made in the loop
 *    with splice(2): counted from the SQEs themselves, a cached file's
 *    transfer issues no file -> pipe SQE at all (before: one per pipe-full),
 *    one that is not cached issues them as before, and the peer gets
 *    every byte in order either way.
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
 *    never reads (before, it waited for good). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "backend_uring/splice.h"
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
    int drop_cancels;   /* pump(): so many cancel SQEs become NOPs */
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
};

static void rig_init(struct rig *g)
{
    ring_init(&g->s, 0);
    g->sp = ur_splice_new(get_sqe, &g->s, TAG, 0);
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
        uint8_t tmp[4096];
        for (off_t o = 0; o < (off_t)len; o += sizeof(tmp))
            assert_true(pread(fd, tmp, sizeof(tmp), o) > 0);
        long n = pages_cached(fd, len);
        assert_true(n < 0 || n == want); /* < 0: no cachestat to ask */
        return fd;
    }
    assert_int_equal(fsync(fd), 0);
    assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    if (pages_cached(fd, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The first step's SQEs run out at each of its n in turn: refused whole. */
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
            assert_int_equal(io_uring_wait_cqe(&s->ring, &cqe), 0);
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
    /* A cached file: the part goes into the pipe here, the step is OUT
     * and its timeout (two SQEs); without cachestat, the pair (three). */
    int file = make_file(10, true);
    struct rs_sendfile from = {.file_fd = file, .off = 0};
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_SENDFILE, g.sv[0], never, NULL);
    op.buf = &from;
    op.len = 10;
    refuse_each(&g.s, g.sp, &op, pages_cached(file, 10) < 0 ? 3 : 2);
    close(file);
    /* A file not cached: the linked pair, three SQEs. */
    file = make_file(10, false);
    if (file >= 0) {
        from.file_fd = file;
        refuse_each(&g.s, g.sp, &op, 3);
        close(file);
    } else {
        print_message("could not evict a file's pages: the pair's refusal untested\n");
    }
    rig_fini(&g);
}

/* The peer: reads want bytes and checks each is what the file holds,
 * after the first skip (what the test itself wrote first). */
struct reader {
    int fd;
    size_t want, got, skip;
    bool same;
};

static void *read_all(void *arg)
{
    struct reader *r = arg;
    uint8_t b[65536];
    r->same = true;
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
 * out of the file (file -> pipe) and the others (pipe -> socket). */
static void classify(struct src *s, int file, unsigned *ins, unsigned *outs)
{
    for (unsigned i = 0; i < s->ntaken; i++) {
        const struct io_uring_sqe *q = s->taken[i];
        if (q->opcode != IORING_OP_SPLICE)
            continue;
        if (q->splice_fd_in == file)
            (*ins)++;
        else
            (*outs)++;
    }
    s->ntaken = 0;
}

/* Send len bytes of file to a peer through ur_splice, to the end; the
 * splices the ring was given, by direction. The loop's counter of reads
 * by a worker (sendfile_worker_reads) must say as much as the SQEs. */
static void transfer(int file, size_t len, unsigned *ins, unsigned *outs)
{
    struct rig g;
    rig_init(&g);
    struct reader rd = {.fd = g.sv[1], .want = len};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_all, &rd), 0);
    struct rs_sendfile from = {.file_fd = file, .off = 0};
    struct done d = {0};
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_SENDFILE, g.sv[0], on_done, &d);
    op.buf = &from;
    op.len = (uint32_t)len;
    *ins = *outs = 0;
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    assert_int_equal(ur_splice_submit(g.sp, &op), 0);
    for (int cqes = 0; !d.done; cqes++) {
        assert_true(cqes < 1000);
        classify(&g.s, file, ins, outs);
        io_uring_submit(&g.s.ring);
        struct io_uring_cqe *cqe;
        assert_int_equal(io_uring_wait_cqe(&g.s.ring, &cqe), 0);
        uint64_t ud = cqe->user_data;
        int32_t res = cqe->res;
        io_uring_cqe_seen(&g.s.ring, cqe);
        if ((ud >> 56) == TAG)
            ur_splice_cqe(g.sp, loop, ud, res);
    }
    assert_int_equal(loop->stats.sendfile_worker_reads, *ins);
    free(loop);
    assert_int_equal(d.res, (int32_t)len);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rd.got, len);
    assert_true(rd.same);
    /* The pipe came back empty: cached for the next op, none live. */
    uint32_t live, cached;
    ur_splice_counts(g.sp, &live, &cached);
    assert_int_equal(live, 0);
    assert_int_equal(cached, 1);
    rig_fini(&g);
}

static void test_splice_cached_file_no_ring_reads(void **state)
{
    (void)state;
    /* Four pipe-fulls and a short fifth part. */
    size_t len = 4 * 65536 + 1000;
    int file = make_file(len, true);
    if (pages_cached(file, len) < 0) {
        close(file);
        rs_skip_reason("no cachestat(2) (Linux 6.5): every part goes through the ring");
        skip();
    }
    unsigned ins, outs;
    transfer(file, len, &ins, &outs);
    print_message("cached: %u file -> pipe, %u pipe -> socket SQEs\n", ins, outs);
    assert_int_equal(ins, 0);
    assert_true(outs >= 5);
    close(file);
    /* Not cached: the ring reads it (the loop must not wait for a disk). */
    file = make_file(len, false);
    if (file < 0) {
        print_message("could not evict a file's pages: the ring's reads untested\n");
        return;
    }
    transfer(file, len, &ins, &outs);
    print_message("not cached: %u file -> pipe, %u pipe -> socket SQEs\n", ins, outs);
    assert_true(ins >= 1);
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
            if (q->opcode != IORING_OP_ASYNC_CANCEL)
                continue;
            cancel_ud = q->user_data;
            if (g->s.drop_cancels > 0) { /* a cancel that stops nothing */
                g->s.drop_cancels--;
                io_uring_prep_nop(q);
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
            for (int idle = 0; idle < wait_ms && rc == -ETIME;) {
                int turn = wait_ms - idle < 50 ? wait_ms - idle : 50;
                struct __kernel_timespec ts = {.tv_nsec = turn * 1000000L};
                rc = io_uring_wait_cqe_timeout(&g->s.ring, &cqe, &ts);
                idle += turn;
            }
            if (rc == -ETIME)
                return;
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(io_uring_wait_cqe(&g->s.ring, &cqe), 0);
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
    rs_op_init(op, RS_OP_SENDFILE, g->sv[0], on_done, d);
    op->buf = from;
    op->len = len;
    assert_int_equal(ur_splice_submit(g->sp, op), 0);
}

/* A rig whose socket is full: a loopback TCP connection with small
 * buffers (sv[0] blocking, as the backend's own sockets are), filled
 * until it takes no more; returns the bytes the test wrote. TCP, not the
 * rig's AF_UNIX pair: before Linux 6.5 a splice into a unix socket
 * appends its pages to the peer's queue however full it is, and never
 * waits. */
static size_t rig_init_full(struct rig *g, unsigned flags)
{
    ring_init(&g->s, flags);
    g->sp = ur_splice_new(get_sqe, &g->s, TAG, 0);
    assert_non_null(g->sp);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &alen), 0);
    int small = 4096;
    g->sv[1] = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(g->sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(connect(g->sv[1], (struct sockaddr *)&a, sizeof(a)), 0);
    g->sv[0] = accept(l, NULL, NULL);
    assert_true(g->sv[0] >= 0);
    close(l);
    setsockopt(g->sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    uint8_t junk[4096] = {0};
    size_t filled = 0;
    for (ssize_t n; (n = send(g->sv[0], junk, sizeof(junk), MSG_DONTWAIT)) > 0;)
        filled += (size_t)n;
    assert_true(filled > 0);
    return filled;
}

static void test_splice_cancel_meets_running_worker(void **state)
{
    (void)state;
    struct rig g;
    /* The peer reads nothing yet: a splice into the full socket waits in
     * its worker. */
    size_t filled = rig_init_full(&g, 0);
    /* Not cached if it can be helped: such a part always goes through a
     * pipe and a worker, however the loop may send a cached one. */
    int file = make_file(65536, false);
    if (file < 0)
        file = make_file(65536, true);
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
        struct done d = {0};
        struct rs_op op;
        struct rs_sendfile from;
        submit_at(&g, &op, &from, file, total, (uint32_t)(65536 - total), &d);
        pump(&g, loop, &d, wait_ms, NULL);
        assert_false(d.done); /* it waits for room */
        assert_int_equal(ur_splice_cancel(g.sp, &op), 0);
        pump(&g, loop, &d, 10000, &cancel_res); /* a hang guard */
        if (!d.done)
            fail_msg("the cancelled op had not ended 10 s after its last completion");
        res = d.res;
        print_message("cancel after %d ms: the cancel %d, the op %d\n", wait_ms,
                      cancel_res, res);
        if (res != -ECANCELED && res <= 0)
            fail_msg("the cancelled op ended with %d: -ECANCELED or the bytes sent", res);
        total += res > 0 ? (uint64_t)res : 0;
        assert_true(total < 65536);
    }
    if (!(cancel_res == -EALREADY && res == -ECANCELED))
        print_message("no worker was stopped before its first byte: case untested\n");
    /* The pipe still held the part: closed, not cached for the next op. */
    uint32_t live, cached;
    ur_splice_counts(g.sp, &live, &cached);
    assert_int_equal(live, 0);
    assert_int_equal(cached, 0);
    /* The next op from where the peer is: it gets what the test wrote,
     * then exactly the file's bytes up to total + 1000, nothing of the
     * parts the cancelled ops took from the file but did not send. */
    struct reader rd = {.fd = g.sv[1], .want = filled + total + 1000, .skip = filled};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_all, &rd), 0);
    struct done d = {0};
    struct rs_op op;
    struct rs_sendfile from;
    submit_at(&g, &op, &from, file, total, 1000, &d);
    pump(&g, loop, &d, 0, NULL);
    assert_int_equal(d.res, 1000);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rd.got, filled + total + 1000);
    assert_true(rd.same);
    uint8_t extra;
    assert_int_equal(recv(g.sv[1], &extra, 1, MSG_DONTWAIT), -1); /* nothing more */
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
    struct rig g;
    rig_init_full(&g, flags);
    /* The pair is the first step of a part not known to be cached. */
    int file = make_file(65536, false);
    if (file < 0) {
        int cached = make_file(65536, true);
        if (pages_cached(cached, 65536) >= 0) {
            close(cached);
            rig_fini(&g);
            rs_skip_reason("no pages can be evicted here (tmpfs?), and a cached part "
                           "goes OUT alone");
            skip();
        }
        file = cached; /* no cachestat: every part is a pair */
    }
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    assert_non_null(loop);
    struct done d = {0};
    struct rs_op op;
    struct rs_sendfile from;
    submit_at(&g, &op, &from, file, 0, 65536, &d);
    unsigned ins = 0, outs = 0;
    classify(&g.s, file, &ins, &outs);
    assert_int_equal(ins, 1); /* the pair: IN in the ring */
    assert_int_equal(ur_splice_cancel(g.sp, &op), 0);
    g.s.drop_cancels = 1;
    pump(&g, loop, &d, 10000, NULL); /* a hang guard, not a wait */
    if (!d.done)
        fail_msg("the cancelled op had not ended 10 s after its last completion");
    /* What squeezed in before the socket was full may have gone out. */
    if (d.res != -ECANCELED && (d.res <= 0 || d.res >= 65536))
        fail_msg("the cancelled op ended with %d: -ECANCELED or the bytes sent", d.res);
    uint32_t live, cached;
    ur_splice_counts(g.sp, &live, &cached);
    assert_int_equal(live, 0);
    assert_int_equal(cached, 0); /* the pipe held IN's bytes: closed */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splice_chain_refused_whole_when_sqes_run_out),
        cmocka_unit_test(test_splice_cached_file_no_ring_reads),
        cmocka_unit_test(test_splice_cancel_meets_running_worker),
        cmocka_unit_test(test_splice_cancel_before_out_is_issued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
