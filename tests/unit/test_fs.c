/* File requests (core/fs.h) on a real backend, the same code for each:
 * test_fs epoll-et|epoll-lt|epoll-inline|uring [FEATURES]; and on the
 * scripted fake backend (test_fs fake) for what a kernel will not do on
 * demand: refuse a submit or a cancel (-EBUSY), or post a completion of an
 * earlier use of a request.
 *
 * Every test counts callbacks: exactly one per started request, never
 * from inside the call that started it, with the caller's data pointer
 * back, and nothing in flight at teardown (rs_loop_fini asserts it). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../skip_reason.h"
#include "backend_table.h"
#include "fake_backend.h"
#include "fd_limit.h"
#include "fs.h"
#include "kernel_release.h"
#include "loop.h"
#include "mode_options.h"
#include "probe.h"
#include "rs_build.h"
#include "stream.h"

#define NREQ 64

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
    char dir[64];
    int dirfd;
    int calls; /* callbacks so far */
};

/* What a callback saw: one record per request. */
struct probe_req {
    struct rs_fs_req req;
    struct fixture *fx;
    int calls;
    int32_t result;
};

static const struct rs_backend_ops *backend;
static const char *mode_name;
static const char *features = "default";
static bool is_fake;

static void on_done(struct rs_fs_req *req)
{
    struct probe_req *p = req->data;
    /* The caller's pointer comes back untouched. */
    assert_ptr_equal(&p->req, req);
    p->calls++;
    p->result = req->result;
    p->fx->calls++;
}

static void probe_init(struct probe_req *p, struct fixture *fx)
{
    memset(p, 0, sizeof(*p));
    p->fx = fx;
    p->req.data = p;
}

/* One loop turn, as rs_loop_run makes it: retry what was refused, then
 * wait (briefly) and dispatch. */
static void turn(struct fixture *fx)
{
    rs_loop_retry(&fx->loop);
    if (is_fake)
        fake_run(&fx->loop);
    else
        fx->loop.ops->run(&fx->loop, 10);
}

static void run_until_calls(struct fixture *fx, int n)
{
    for (int i = 0; i < 2000 && fx->calls < n; i++)
        turn(fx);
    assert_int_equal(fx->calls, n);
}

static void config_for_mode(struct rs_config *cfg)
{
    rs_config_defaults(cfg);
    mode_options(cfg, mode_name, features, true);
    cfg->buffers = 8;
    cfg->buffer_size = 4096;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    config_for_mode(&fx->cfg);
    char err[256] = "";
    if (rs_loop_init(&fx->loop, backend, &fx->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "loop init: %s\n", err);
        free(fx);
        return -1;
    }
    strcpy(fx->dir, "/tmp/rs-fs-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->dirfd = open(fx->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(fx->dirfd >= 0);
    *state = fx;
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    limit_lift();
    assert_int_equal(fx->loop.nreqs, 0);
    assert_null(fx->loop.fs_retry);
    close(fx->dirfd);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

/* rc: what the call that started p returned. Check it started and did
 * not call back from inside, wait for its one callback; its result. */
static int32_t done_one(struct fixture *fx, struct probe_req *p, int rc)
{
    int before = fx->calls;
    assert_int_equal(rc, 0);
    assert_int_equal(p->calls, 0);
    run_until_calls(fx, before + 1);
    assert_int_equal(p->calls, 1);
    p->calls = 0;
    return p->result;
}
#define DO(fx, p, call) done_one((fx), (p), (call))

/* ---- real backends ------------------------------------------------------ */

/* Every operation once, one request reused for all of them. */
static void test_fs_each_op(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    struct probe_req p;
    probe_init(&p, fx);
    struct rs_fs_req *r = &p.req;
    int fd = DO(
        fx, &p,
        rs_fs_open_beneath(loop, r, fx->dirfd, "data", O_RDWR | O_CREAT, 0640, on_done));
    assert_true(fd >= 0);
    assert_int_equal(r->type, RS_FS_OPEN);
    /* Opened close-on-exec. */
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(DO(fx, &p, rs_fs_write(loop, r, fd, "0123456789", 10, 0, on_done)),
                     10);
    assert_int_equal(DO(fx, &p, rs_fs_write(loop, r, fd, "abc", 3, 20, on_done)), 3);
    assert_int_equal(DO(fx, &p, rs_fs_fsync(loop, r, fd, on_done)), 0);
    assert_int_equal(r->type, RS_FS_FSYNC);
    assert_int_equal(DO(fx, &p, rs_fs_fdatasync(loop, r, fd, on_done)), 0);
    struct statx stx = {0};
    assert_int_equal(
        DO(fx, &p,
           rs_fs_statx(loop, r, fd, NULL, 0, STATX_SIZE | STATX_MODE, &stx, on_done)),
        0);
    assert_int_equal(stx.stx_size, 23);
    assert_int_equal(stx.stx_mode & 0777, 0640); /* umask 022, set by main */
    memset(&stx, 0, sizeof(stx));
    assert_int_equal(
        DO(fx, &p, rs_fs_statx(loop, r, fx->dirfd, "data", 0, STATX_SIZE, &stx, on_done)),
        0);
    assert_int_equal(stx.stx_size, 23);
    char buf[32] = {0};
    assert_int_equal(DO(fx, &p, rs_fs_read(loop, r, fd, buf, sizeof(buf), 0, on_done)),
                     23);
    assert_memory_equal(buf, "0123456789\0\0\0\0\0\0\0\0\0\0abc", 23);
    /* End of file is 0, not an error. */
    assert_int_equal(DO(fx, &p, rs_fs_read(loop, r, fd, buf, sizeof(buf), 23, on_done)),
                     0);
    assert_int_equal(DO(fx, &p, rs_fs_close(loop, r, fd, on_done)), 0);
    assert_int_equal(r->type, RS_FS_CLOSE);
    assert_int_equal(fcntl(fd, F_GETFD), -1); /* really closed */
    /* Errors are results: -errno, through the callback. */
    assert_int_equal(DO(fx, &p, rs_fs_read(loop, r, fd, buf, 1, 0, on_done)), -EBADF);
    assert_int_equal(
        DO(fx, &p,
           rs_fs_open_beneath(loop, r, fx->dirfd, "missing", O_RDONLY, 0, on_done)),
        -ENOENT);
    /* The plain open takes absolute paths. */
    char path[128];
    snprintf(path, sizeof(path), "%s/data", fx->dir);
    fd = DO(fx, &p, rs_fs_open(loop, r, path, O_RDONLY, 0, on_done));
    assert_true(fd >= 0);
    assert_int_equal(DO(fx, &p, rs_fs_close(loop, r, fd, on_done)), 0);
}

/* Beneath a directory: nothing outside it opens, whatever the path. */
/* A read into one of the loop's lent buffers: the bytes there, the
 * buffer the caller's until given back, len capped at a buffer, and no
 * buffer free a result (-ENOBUFS), not a failure of the request. */
static void test_fs_read_lent(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    struct probe_req p;
    probe_init(&p, fx);
    struct rs_fs_req *r = &p.req;
    int fd = DO(
        fx, &p,
        rs_fs_open_beneath(loop, r, fx->dirfd, "lent", O_RDWR | O_CREAT, 0600, on_done));
    assert_true(fd >= 0);
    static uint8_t data[5000];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(pwrite(fd, data, sizeof(data), 0), (ssize_t)sizeof(data));
    assert_int_equal(DO(fx, &p, rs_fs_read_lent(loop, r, fd, 100, 10, on_done)), 100);
    assert_int_equal(r->type, RS_FS_READ);
    const uint8_t *b = rs_loop_buf(loop, r->bid);
    assert_non_null(b);
    assert_memory_equal(b, data + 10, 100);
    assert_int_equal(fx->loop.pool.lent, 1);
    rs_loop_buf_release(loop, r->bid);
    assert_int_equal(fx->loop.pool.lent, 0);
    /* More than a buffer holds: one buffer's worth. */
    assert_int_equal(DO(fx, &p, rs_fs_read_lent(loop, r, fd, 10000, 0, on_done)), 4096);
    assert_memory_equal(rs_loop_buf(loop, r->bid), data, 4096);
    rs_loop_buf_release(loop, r->bid);
    /* End of file: 0, and no buffer lent. */
    assert_int_equal(DO(fx, &p, rs_fs_read_lent(loop, r, fd, 100, sizeof(data), on_done)),
                     0);
    assert_int_equal(fx->loop.pool.lent, 0);
    /* Every buffer such reads may take held (the whole pool, or the part a
     * backend sets aside for them: io_uring's buf-inc): the next read says
     * -ENOBUFS. */
    uint16_t held[8];
    uint32_t n = fx->loop.pool.set_aside ? fx->loop.pool.set_aside : fx->loop.pool.count;
    assert_true(n >= 1 && n <= 8);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(
            DO(fx, &p, rs_fs_read_lent(loop, r, fd, 16, (uint64_t)i, on_done)), 16);
        held[i] = r->bid;
        assert_memory_equal(rs_loop_buf(loop, held[i]), data + i, 16);
    }
    assert_int_equal(DO(fx, &p, rs_fs_read_lent(loop, r, fd, 16, 0, on_done)), -ENOBUFS);
    for (uint32_t i = 0; i < n; i++)
        rs_loop_buf_release(loop, held[i]);
    assert_int_equal(fx->loop.pool.lent, 0);
    assert_null(rs_loop_buf(loop, 8)); /* no such buffer */
    assert_int_equal(DO(fx, &p, rs_fs_read_lent(loop, r, fd, 16, 0, on_done)), 16);
    rs_loop_buf_release(loop, r->bid);
    assert_int_equal(DO(fx, &p, rs_fs_close(loop, r, fd, on_done)), 0);
}

static void test_fs_open_beneath_confined(void **state)
{
    struct fixture *fx = *state;
    struct probe_req p;
    probe_init(&p, fx);
    assert_int_equal(symlinkat("/etc", fx->dirfd, "out"), 0);
    const char *escapes[] = {"../etc/passwd", "/etc/passwd", "out/passwd"};
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        int32_t res = DO(fx, &p,
                         rs_fs_open_beneath(&fx->loop, &p.req, fx->dirfd, escapes[i],
                                            O_RDONLY, 0, on_done));
        /* -EXDEV from openat2; the stricter fallback may say -ELOOP for
         * the link. Never a descriptor. */
        assert_true(res == -EXDEV || res == -ELOOP);
    }
}

/* Bad calls fail at once, with no callback; a request in flight cannot
 * be started again. */
static void test_fs_refused_calls(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    struct probe_req p;
    probe_init(&p, fx);
    char buf[8];
    assert_int_equal(rs_fs_read(loop, &p.req, 0, buf, 1, 0, NULL), -EINVAL);
    assert_int_equal(rs_fs_read(loop, &p.req, 0, NULL, 1, 0, on_done), -EINVAL);
    assert_int_equal(rs_fs_close(loop, &p.req, -1, on_done), -EBADF);
    assert_int_equal(rs_fs_open_beneath(loop, &p.req, -1, "x", O_RDONLY, 0, on_done),
                     -EBADF);
    assert_int_equal(rs_fs_cancel(&p.req), -ENOENT); /* never started */
    int fd = openat(fx->dirfd, "f", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(rs_fs_write(loop, &p.req, fd, "x", 1, 0, on_done), 0);
    assert_int_equal(rs_fs_write(loop, &p.req, fd, "y", 1, 0, on_done), -EINPROGRESS);
    run_until_calls(fx, 1);
    assert_int_equal(p.result, 1);
    assert_int_equal(rs_fs_cancel(&p.req), -ENOENT); /* done */
    close(fd);
    assert_int_equal(fx->calls, 1);
}

/* Many requests in flight at once, each with its own buffer and offset:
 * every one completes once with its own result. On a small ring this
 * also runs the submission queue full. */
static void test_fs_many_in_flight(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    int fd = openat(fx->dirfd, "many", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    static struct probe_req p[NREQ];
    static char bufs[NREQ][64];
    for (int i = 0; i < NREQ; i++) {
        probe_init(&p[i], fx);
        memset(bufs[i], 'a' + i % 26, sizeof(bufs[i]));
        assert_int_equal(
            rs_fs_write(loop, &p[i].req, fd, bufs[i], 64, (uint64_t)i * 64, on_done), 0);
    }
    assert_int_equal(fx->calls, 0);
    assert_int_equal(loop->nreqs, NREQ);
    run_until_calls(fx, NREQ);
    for (int i = 0; i < NREQ; i++) {
        assert_int_equal(p[i].calls, 1);
        assert_int_equal(p[i].result, 64);
        p[i].calls = 0;
    }
    assert_int_equal(loop->nreqs, 0);
    for (int i = 0; i < NREQ; i++) {
        memset(bufs[i], 0, sizeof(bufs[i]));
        assert_int_equal(
            rs_fs_read(loop, &p[i].req, fd, bufs[i], 64, (uint64_t)i * 64, on_done), 0);
    }
    run_until_calls(fx, 2 * NREQ);
    for (int i = 0; i < NREQ; i++) {
        assert_int_equal(p[i].result, 64);
        for (int k = 0; k < 64; k++)
            assert_int_equal(bufs[i][k], 'a' + i % 26);
    }
    close(fd);
}

/* A cancel of a request in flight: exactly one callback, -ECANCELED or
 * the natural result (a call already running is not interrupted). A read
 * of an empty pipe waits on io_uring, so there the cancel must win. */
static void test_fs_cancel(void **state)
{
    struct fixture *fx = *state;
    int pfd[2];
    assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
    struct probe_req p;
    probe_init(&p, fx);
    char buf[8];
    assert_int_equal(rs_fs_read(&fx->loop, &p.req, pfd[0], buf, sizeof(buf), 0, on_done),
                     0);
    int rc = rs_fs_cancel(&p.req);
    assert_true(rc == 0 || rc == -ENOENT);
    assert_int_equal(p.calls, 0); /* never from inside the cancel */
    run_until_calls(fx, 1);
    assert_int_equal(p.calls, 1);
    if (fx->loop.caps & RS_CAP_FILE_NATIVE)
        assert_int_equal(p.result, -ECANCELED);
    else
        assert_true(p.result == -ECANCELED ||
                    p.result == -ESPIPE); /* no pread on a pipe */
    /* A few more turns: no second callback. */
    for (int i = 0; i < 5; i++)
        turn(fx);
    assert_int_equal(fx->calls, 1);
    close(pfd[0]);
    close(pfd[1]);
}

/* A stopping loop runs until its requests are done: rs_loop_run returns
 * only after every callback ran (and fini finds nothing in flight). */
static void test_fs_stop_waits_for_requests(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    int fd = openat(fx->dirfd, "late", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    static struct probe_req p[16];
    static char big[256 * 1024];
    memset(big, 'z', sizeof(big));
    for (int i = 0; i < 16; i++) {
        probe_init(&p[i], fx);
        assert_int_equal(rs_fs_write(loop, &p[i].req, fd, big, sizeof(big),
                                     (uint64_t)i * sizeof(big), on_done),
                         0);
    }
    rs_loop_request_stop(loop);
    assert_int_equal(rs_loop_run(loop), 0);
    assert_int_equal(fx->calls, 16);
    for (int i = 0; i < 16; i++)
        assert_int_equal(p[i].result, (int32_t)sizeof(big));
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(sb.st_size, 16 * (off_t)sizeof(big));
    close(fd);
}

/* An outbound stream to a listener of ours, for rs_fs_sendfile. */
struct conn {
    struct rs_stream *s; /* NULL once closed */
    int connected;       /* 1, or the connect's -errno */
    int closed;
    int reason; /* on_close's */
};

static void conn_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    (void)p;
    (void)len;
    rs_stream_release(s, bid);
}

static void conn_connect(struct rs_stream *s, int res)
{
    struct conn *c = s->data;
    c->connected = res == 0 ? 1 : res;
}

static void conn_close(struct rs_stream *s, int reason)
{
    struct conn *c = s->data;
    c->reason = reason;
    c->closed = 1;
    c->s = NULL;
}

static const struct rs_stream_cbs conn_cbs = {
    .on_data = conn_data, .on_connect = conn_connect, .on_close = conn_close};

/* Connect c; the accepted peer's fd (non-blocking) is returned. A small
 * receive buffer on the peer makes a large transfer stall. */
static int connect_pair(struct fixture *fx, struct conn *c, int rcvbuf)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    if (rcvbuf)
        setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(lfd, 1), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    memset(c, 0, sizeof(*c));
    c->s =
        rs_stream_connect(&fx->loop, (struct sockaddr *)&a, sizeof(a), 0, &conn_cbs, c);
    assert_non_null(c->s);
    for (int i = 0; i < 2000 && !c->connected; i++)
        turn(fx);
    assert_int_equal(c->connected, 1);
    int peer = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    assert_true(peer >= 0);
    close(lfd);
    return peer;
}

static void close_pair(struct fixture *fx, struct conn *c, int peer)
{
    if (c->s)
        rs_stream_abort(c->s);
    for (int i = 0; i < 2000 && !c->closed; i++)
        turn(fx);
    assert_true(c->closed);
    close(peer);
}

static int file_of(struct fixture *fx, const char *name, size_t n)
{
    int fd = openat(fx->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    uint8_t chunk[4096];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof(chunk) ? n - done : sizeof(chunk);
        for (size_t i = 0; i < k; i++)
            chunk[i] = (uint8_t)((done + i) * 13 + 5);
        assert_int_equal(pwrite(fd, chunk, k, (off_t)done), (ssize_t)k);
        done += k;
    }
    return fd;
}

/* Turn the loop and read the peer until want bytes came and p's callback
 * ran (bounded: a broken backend fails the count). */
static void receive_all(struct fixture *fx, int peer, uint8_t *got, size_t want,
                        const struct probe_req *p)
{
    size_t n = 0;
    for (int i = 0; i < 4000 && (n < want || p->calls == 0); i++) {
        turn(fx);
        ssize_t r = recv(peer, got + n, want - n, MSG_DONTWAIT);
        if (r > 0)
            n += (size_t)r;
    }
    assert_int_equal(n, want);
}

/* A file range to a stream, between two writes: the peer gets them in
 * order, the callback says how much went out, and fd is still ours. */
static void test_fs_sendfile_in_order(void **state)
{
    struct fixture *fx = *state;
    /* epoll always; io_uring with splice (5.7), older than any kernel with
     * the file ops these tests need anyway. */
    assert_true(fx->loop.caps & RS_CAP_SENDFILE);
    struct conn c;
    int peer = connect_pair(fx, &c, 0);
    int fd = file_of(fx, "sent", 200000);
    struct probe_req p;
    probe_init(&p, fx);
    rs_stream_write_copy(c.s, (const uint8_t *)"HEAD", 4);
    assert_int_equal(rs_fs_sendfile(&fx->loop, &p.req, c.s, fd, 1000, 150000, on_done),
                     0);
    rs_stream_write_copy(c.s, (const uint8_t *)"TAIL", 4);
    assert_int_equal(p.calls, 0);
    assert_int_equal(rs_fs_cancel(&p.req), -EOPNOTSUPP);
    static uint8_t got[150008];
    receive_all(fx, peer, got, sizeof(got), &p);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.result, 150000);
    assert_int_equal(p.req.type, RS_FS_SENDFILE);
    assert_memory_equal(got, "HEAD", 4);
    for (size_t i = 0; i < 150000; i++)
        if (got[4 + i] != (uint8_t)((1000 + i) * 13 + 5))
            fail_msg("byte %zu differs", i);
    assert_memory_equal(got + 150004, "TAIL", 4);
    assert_true(fcntl(fd, F_GETFD) >= 0); /* still the caller's */
    close(fd);
    close_pair(fx, &c, peer);
}

/* The stream is aborted while the range waits for a peer that does not
 * read: the callback says -ECANCELED, on a later turn, exactly once. And
 * a stream that takes no more output drops a new range at once. */
static void test_fs_sendfile_dropped(void **state)
{
    struct fixture *fx = *state;
    /* epoll always; io_uring with splice (5.7), older than any kernel with
     * the file ops these tests need anyway. */
    assert_true(fx->loop.caps & RS_CAP_SENDFILE);
    struct conn c;
    int peer = connect_pair(fx, &c, 65536);
    int fd = file_of(fx, "big", 16u << 20);
    struct probe_req p, q;
    probe_init(&p, fx);
    probe_init(&q, fx);
    assert_int_equal(rs_fs_sendfile(&fx->loop, &p.req, c.s, fd, 0, 16u << 20, on_done),
                     0);
    for (int i = 0; i < 20; i++)
        turn(fx);
    assert_int_equal(p.calls, 0); /* stalled: the peer reads nothing */
    rs_stream_abort(c.s);
    assert_int_equal(p.calls, 0); /* never from inside the abort */
    close_pair(fx, &c, peer);
    run_until_calls(fx, 1);
    assert_int_equal(p.result, -ECANCELED);
    /* A stream that shut down its side takes no more output. */
    peer = connect_pair(fx, &c, 0);
    rs_stream_shutdown(c.s);
    assert_int_equal(rs_fs_sendfile(&fx->loop, &q.req, c.s, fd, 0, 10, on_done), 0);
    assert_int_equal(q.calls, 0);
    run_until_calls(fx, 2);
    assert_int_equal(q.result, -ECANCELED);
    close(fd);
    close_pair(fx, &c, peer);
    assert_int_equal(fx->calls, 2);
}

/* The process descriptors the loop holds for c's socket once its file
 * went out: those connected to peer, but for the stream's own (a plain
 * socket); one past the highest in *top (0: none). io_uring keeps a
 * direct socket's installed fd between its files (Linux 6.8:
 * IORING_OP_FIXED_FD_INSTALL); epoll keeps none. */
static int held_fds(const struct conn *c, int peer, int *top)
{
    int held = fds_connected_to(peer, top) - (c->s->direct ? 0 : 1);
    assert_true(held == 0 || held == 1);
    if (backend == &rs_backend_uring && c->s->direct && kernel_at_least(6, 8))
        assert_int_equal(held, 1); /* wherever it can install one */
    if (!held)
        *top = 0;
    return held;
}

/* Read n bytes of fd's pattern (file_of) from its offset off at peer,
 * turning the loop. */
static void receive_pattern(struct fixture *fx, int peer, size_t n, uint64_t off)
{
    static uint8_t got[65536];
    assert_true(n <= sizeof(got));
    size_t have = 0;
    for (int i = 0; i < 4000 && have < n; i++) {
        turn(fx);
        ssize_t r = recv(peer, got + have, n - have, MSG_DONTWAIT);
        if (r > 0)
            have += (size_t)r;
    }
    assert_int_equal(have, n);
    for (size_t i = 0; i < n; i++)
        if (got[i] != (uint8_t)((off + i) * 13 + 5))
            fail_msg("byte %zu differs", i);
}

/* rs_fs_sendfile hands the stream a duplicate of the caller's descriptor.
 * With the process at its descriptor limit and the loop holding a
 * process fd only to save syscalls (io_uring: the stream's direct socket
 * installed for its last file), the dup asks the loop to give it back
 * and the range goes out; a loop that holds none (epoll, plain sockets)
 * refuses the call with -EMFILE, nothing queued, the stream still open.
 * Before, io_uring refused it too, while the hold stood in the way. */
static void test_fs_sendfile_at_limit_takes_held_fds(void **state)
{
    struct fixture *fx = *state;
    struct conn c;
    int peer = connect_pair(fx, &c, 0);
    int fd = file_of(fx, "sent", 65536);
    struct probe_req p, q;
    probe_init(&p, fx);
    probe_init(&q, fx);
    assert_int_equal(rs_fs_sendfile(&fx->loop, &p.req, c.s, fd, 0, 65536, on_done), 0);
    receive_pattern(fx, peer, 65536, 0);
    run_until_calls(fx, 1);
    assert_int_equal(p.result, 65536);
    int top;
    int held = held_fds(&c, peer, &top);
    struct at_limit l;
    limit_set(&l, top);
    int rc = rs_fs_sendfile(&fx->loop, &q.req, c.s, fd, 1000, 60000, on_done);
    limit_restore(&l);
    if (held) {
        assert_int_equal(rc, 0);
        receive_pattern(fx, peer, 60000, 1000);
        run_until_calls(fx, 2);
        assert_int_equal(q.result, 60000);
    } else {
        assert_int_equal(rc, -EMFILE);
        for (int i = 0; i < 10; i++)
            turn(fx);
        assert_int_equal(q.calls, 0);
        assert_true(rs_stream_is_open(c.s));
    }
    assert_true(fcntl(fd, F_GETFD) >= 0); /* still the caller's */
    close(fd);
    close_pair(fx, &c, peer);
}

/* A file range over 1 GiB goes into the stream's queue in chunks of at
 * most 1 GiB, each with a descriptor of its own: the stream duplicates
 * the one it is given for every chunk but the last. At the descriptor
 * limit, with a hold as above, the dup asks for it back and the stream
 * carries the range (its first bytes checked, then the stream aborted);
 * a loop that holds none fails the stream at once (-EMFILE, a reset).
 * Before, io_uring failed the stream too, while the hold stood in the
 * way. The file's first 8 MiB are written (cached: the first op needs no
 * pipe), the rest is a hole never sent. */
static void test_fs_stream_file_over_gib_at_limit(void **state)
{
    struct fixture *fx = *state;
    struct conn c;
    int peer = connect_pair(fx, &c, 0);
    int fd = file_of(fx, "huge", 8u << 20);
    const uint64_t len = (1ull << 30) + (1u << 20); /* from 64 KiB: over 1 GiB */
    assert_int_equal(ftruncate(fd, (off_t)len), 0);
    struct probe_req p;
    probe_init(&p, fx);
    assert_int_equal(rs_fs_sendfile(&fx->loop, &p.req, c.s, fd, 0, 65536, on_done), 0);
    receive_pattern(fx, peer, 65536, 0);
    run_until_calls(fx, 1);
    int top;
    int held = held_fds(&c, peer, &top);
    int given = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* the stream's to close */
    assert_true(given >= 0);
    int before = lowest_free_fd();
    struct at_limit l;
    limit_set(&l, top);
    int rc = rs_stream_write_file(c.s, given, 65536, len - 65536);
    limit_restore(&l);
    assert_int_equal(rc, 0);
    if (held) {
        assert_true(rs_stream_is_open(c.s));
        receive_pattern(fx, peer, 65536, 65536);
    } else {
        for (int i = 0; i < 2000 && !c.closed; i++)
            turn(fx);
        assert_true(c.closed);
        assert_int_equal(c.reason, -EMFILE);
    }
    close_pair(fx, &c, peer);
    close(fd);
    /* Every chunk's descriptor closed with the stream. */
    assert_true(lowest_free_fd() <= before);
}

/* File offsets past what the kernel takes (loff_t is signed): -EINVAL at
 * once, no callback, on every backend. io_uring reads "offset -1" as "the
 * file's current position", so UINT64_MAX read or wrote at the position
 * (a read at 0, from a careless caller's offset) where epoll's pread said
 * -EINVAL; and a file range whose end passes INT64_MAX is refused before
 * the stream takes (or duplicates) the descriptor. */
static void test_fs_offset_past_int64(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    int fd = file_of(fx, "offsets", 100);
    struct probe_req p;
    probe_init(&p, fx);
    char buf[8];
    const uint64_t bad[] = {UINT64_MAX, (uint64_t)INT64_MAX + 1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(rs_fs_read(loop, &p.req, fd, buf, 8, bad[i], on_done), -EINVAL);
        assert_int_equal(rs_fs_read_lent(loop, &p.req, fd, 8, bad[i], on_done), -EINVAL);
        assert_int_equal(rs_fs_write(loop, &p.req, fd, "x", 1, bad[i], on_done), -EINVAL);
    }
    /* The last byte an offset can name: still a valid call (EOF here). */
    assert_int_equal(
        DO(fx, &p, rs_fs_read(loop, &p.req, fd, buf, 1, INT64_MAX - 1, on_done)), 0);
    struct conn c;
    int peer = connect_pair(fx, &c, 0);
    assert_int_equal(rs_fs_sendfile(loop, &p.req, c.s, fd, INT64_MAX - 9, 10, on_done),
                     -EINVAL);
    assert_int_equal(rs_fs_sendfile(loop, &p.req, c.s, fd, UINT64_MAX, 1, on_done),
                     -EINVAL);
    assert_int_equal(rs_stream_write_file(c.s, fd, UINT64_MAX - 1, 2), -EINVAL);
    assert_int_equal(rs_stream_write_file(c.s, fd, 0, UINT64_MAX), -EINVAL);
    assert_true(rs_stream_is_open(c.s));
    assert_true(fcntl(fd, F_GETFD) >= 0); /* refused: still the caller's */
    close(fd);
    close_pair(fx, &c, peer);
    assert_int_equal(fx->calls, 1);
}

/* Bytes of the caller's memory to a stream, between two writes: the peer
 * gets them in order, the callback says all went out, never from inside
 * the call; dropped with a stream that takes no more output. */
static void test_fs_send_in_order(void **state)
{
    struct fixture *fx = *state;
    struct conn c;
    int peer = connect_pair(fx, &c, 0);
    enum { LEN = 300000 };
    uint8_t *mine = malloc(LEN);
    assert_non_null(mine);
    for (size_t i = 0; i < LEN; i++)
        mine[i] = (uint8_t)(i * 7 + 3);
    struct probe_req p, q;
    probe_init(&p, fx);
    probe_init(&q, fx);
    rs_stream_write_copy(c.s, (const uint8_t *)"HEAD", 4);
    assert_int_equal(rs_fs_send(&fx->loop, &p.req, c.s, mine, LEN, on_done), 0);
    rs_stream_write_copy(c.s, (const uint8_t *)"TAIL", 4);
    assert_int_equal(p.calls, 0);
    assert_int_equal(rs_fs_cancel(&p.req), -EOPNOTSUPP);
    assert_int_equal(rs_fs_send(&fx->loop, &q.req, c.s, mine, 0, on_done), -EINVAL);
    static uint8_t got[LEN + 8];
    receive_all(fx, peer, got, sizeof(got), &p);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.result, LEN);
    assert_int_equal(p.req.type, RS_FS_SEND);
    assert_memory_equal(got, "HEAD", 4);
    assert_memory_equal(got + 4, mine, LEN);
    assert_memory_equal(got + 4 + LEN, "TAIL", 4);
    /* A stream that shut down its side takes no more output. */
    rs_stream_shutdown(c.s);
    assert_int_equal(rs_fs_send(&fx->loop, &q.req, c.s, mine, 10, on_done), 0);
    assert_int_equal(q.calls, 0);
    run_until_calls(fx, 2);
    assert_int_equal(q.result, -ECANCELED);
    close_pair(fx, &c, peer);
    free(mine);
}

/* ---- the fake backend: refusals and stale completions ------------------- */

/* The backend refuses the submit three times: the caller sees a started
 * request, no callback, and later the real result, never -EBUSY. */
static void test_fs_busy_submit_retried(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    struct probe_req p;
    probe_init(&p, fx);
    fake(loop)->refuse_submit[RS_OP_WRITE] = 3;
    assert_int_equal(rs_fs_write(loop, &p.req, 5, "abc", 3, 0, on_done), 0);
    assert_int_equal(loop->nreqs, 1); /* alive while refused */
    assert_non_null(loop->fs_retry);
    for (int i = 0; i < 3; i++) {
        assert_null(fake_find(loop, RS_OP_WRITE, 5));
        turn(fx);
        assert_int_equal(p.calls, 0);
    }
    struct rs_op *op = fake_find(loop, RS_OP_WRITE, 5);
    assert_non_null(op);
    assert_null(loop->fs_retry);
    fake_complete(loop, op, 3, 0, 0);
    turn(fx);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.result, 3);
    assert_int_equal(fake(loop)->refused, 3);
    assert_int_equal(loop->nreqs, 0);
}

/* A cancel of a request still waiting for the backend: -ECANCELED on the
 * next turn (not from inside rs_fs_cancel), and the backend never saw it. */
static void test_fs_cancel_refused(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    struct probe_req p;
    probe_init(&p, fx);
    fake(loop)->refuse_submit[RS_OP_READ] = 100;
    char buf[4];
    assert_int_equal(rs_fs_read(loop, &p.req, 5, buf, 4, 0, on_done), 0);
    assert_int_equal(rs_fs_cancel(&p.req), 0);
    assert_int_equal(p.calls, 0);
    turn(fx);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.result, -ECANCELED);
    assert_int_equal(fake(loop)->submits[RS_OP_READ], 0);
    fake(loop)->refuse_submit[RS_OP_READ] = 0;
}

/* The backend refuses the cancel twice: the core asks again each turn
 * until it is taken; the request still completes exactly once. */
static void test_fs_busy_cancel_retried(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    struct probe_req p;
    probe_init(&p, fx);
    char buf[4];
    assert_int_equal(rs_fs_read(loop, &p.req, 5, buf, 4, 0, on_done), 0);
    struct rs_op *op = fake_find(loop, RS_OP_READ, 5);
    fake(loop)->refuse_cancel = 2;
    assert_int_equal(rs_fs_cancel(&p.req), 0);
    assert_false(fake_was_cancelled(loop, op));
    turn(fx);
    assert_false(fake_was_cancelled(loop, op));
    turn(fx);
    assert_true(fake_was_cancelled(loop, op));
    fake_complete(loop, op, -ECANCELED, 0, 0);
    turn(fx);
    assert_int_equal(p.calls, 1);
    assert_int_equal(p.result, -ECANCELED);
}

/* A completion of the previous use of a request, arriving after the
 * request was started again (as io_uring may post one), is dropped by
 * generation: the callback sees only the current use's result. */
static void test_fs_stale_completion_after_reuse(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loop = &fx->loop;
    struct probe_req p;
    probe_init(&p, fx);
    char buf[4];
    assert_int_equal(rs_fs_read(loop, &p.req, 5, buf, 4, 0, on_done), 0);
    struct rs_op *op = fake_find(loop, RS_OP_READ, 5);
    uint8_t first = op->bk_gen;
    fake_complete(loop, op, 4, 0, 0);
    turn(fx);
    assert_int_equal(p.result, 4);
    /* Reused: a new generation, whatever rs_fs_read re-initialised. */
    assert_int_equal(rs_fs_read(loop, &p.req, 5, buf, 4, 100, on_done), 0);
    assert_int_not_equal(op->bk_gen, first);
    fake_complete_gen(loop, op, first, 777); /* the stale one */
    fake_complete(loop, op, 2, 0, 0);        /* the current one */
    turn(fx);
    assert_int_equal(fake(loop)->stale_dropped, 1);
    assert_int_equal(p.calls, 2);
    assert_int_equal(p.result, 2);
}

/* ---- main ---------------------------------------------------------------- */

static int available(void)
{
    if (is_fake || backend == &rs_backend_epoll)
        return 0;
    if (!backend->init) {
        rs_skip_reason("io_uring unavailable: support not compiled in");
        return 77;
    }
    const struct rs_uring_support *sup = rs_probe_uring_cached();
    if (!sup->available) {
        rs_skip_reason("io_uring unavailable: %s", sup->why);
        return 77;
    }
    /* A feature the kernel lacks (buf-inc before 6.12) is a skip. */
    return mode_loop_starts(backend, mode_name, features, true);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s fake|epoll-et|epoll-lt|epoll-inline|uring [FEATURES]\n",
                argv[0]);
        return 2;
    }
    mode_name = argv[1];
    is_fake = strcmp(mode_name, "fake") == 0;
    backend = is_fake                               ? &fake_backend
              : strncmp(mode_name, "epoll", 5) == 0 ? &rs_backend_epoll
                                                    : &rs_backend_uring;
    if (argc > 2)
        features = argv[2];
    int avail = available();
    if (avail != 0)
        return avail;
    umask(022);
    const struct CMUnitTest real[] = {
        cmocka_unit_test_setup_teardown(test_fs_each_op, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_read_lent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_open_beneath_confined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_refused_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_many_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_stop_waits_for_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_sendfile_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_sendfile_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_sendfile_at_limit_takes_held_fds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fs_stream_file_over_gib_at_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fs_send_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_offset_past_int64, setup, teardown),
    };
    const struct CMUnitTest scripted[] = {
        cmocka_unit_test_setup_teardown(test_fs_busy_submit_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_cancel_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_busy_cancel_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_stale_completion_after_reuse, setup,
                                        teardown),
    };
    return is_fake ? cmocka_run_group_tests(scripted, NULL, NULL)
                   : cmocka_run_group_tests(real, NULL, NULL);
}
