/* The backend contract (core/backend.h), checked against a real backend:
 * the same test code for every backend and mode, chosen on the command
 * line: test_backend_contract epoll-et|epoll-lt|uring [FEATURES].
 *
 * Each test drives ops by hand on a real loopback TCP connection and
 * records every completion, so the rules are checked directly: nothing
 * completes inside submit(), multishot ops flag every completion but the
 * last, lent buffers come with RS_CF_BUFFER and go back exactly once,
 * results are -errno, cancel still completes exactly once; the descriptor
 * kind travels with each op; a connect succeeds, is refused, or is
 * cancelled while the handshake hangs, on plain fds even on a loop whose
 * accepted sockets are direct descriptors; a call the backend refuses (an
 * op it cannot take, a cancel of an op not in flight) leaves no trace and
 * the backend usable.
 *
 * Exit 77 (skip) only when this build or kernel lacks what the arguments
 * ask for, as the probe reports it; a backend that fails to start where
 * the probe says it can is a failure, not a skip. RS_CONTRACT_FILTER (a
 * glob of test names) runs only the tests it matches. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../skip_reason.h"

#include "backend.h"
#include "backend_table.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "kernel_release.h"
#include "mode_options.h"
#include "probe.h"
#include "rs_build.h"
#if RS_HAVE_URING
#include "backend_uring/features.h"
#include "again.h"
#else
/* Without the io_uring backend no io_uring feature is ever in use. */
enum { UF_DIRECT_PIPE = 0, UF_DIRECT_LISTEN = 0 };
#endif

#define MAX_EV 256

struct record {
    struct rs_op *op;
    struct rs_completion c;
};

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
    struct record ev[MAX_EV];
    int nev;
    int lfd;    /* listener (a plain fd) */
    int client; /* our end of the connection */
    int server; /* the backend's accepted socket (maybe a direct descriptor) */
    bool server_direct;
    struct rs_op accept_op;
    char dir[64]; /* file tests: a scratch directory */
    int dirfd;
};

static const struct rs_backend_ops *backend;
static const char *mode_name;
static const char *features = "default";
static bool small_rcvbuf; /* setup_with: the client's receive buffer */
static bool small_sndbuf; /* setup_with: the server's send buffer (the listener's) */
static bool small_ring;   /* loop_setup: --ring-entries=4 */

/* Whether this run's io_uring loops grow their completion queue. */
static bool resize_on(void)
{
#if RS_HAVE_URING
    uint32_t f;
    char err[256];
    const struct rs_uring_support *sup = rs_probe_uring_cached();
    return backend == &rs_backend_uring &&
           rs_uring_features_parse(features, rs_uring_supported(sup), &f, err,
                                   sizeof(err)) == 0 &&
           (f & UF_RESIZE);
#else
    return false;
#endif
}

static void record_fn(struct rs_loop *loop, struct rs_op *op,
                      const struct rs_completion *c)
{
    struct fixture *fx = op->data;
    (void)loop;
    assert_true(fx->nev < MAX_EV);
    fx->ev[fx->nev++] = (struct record){.op = op, .c = *c};
}

/* The bytes a completion lent: in buffer bid, from offset off (a backend
 * that lends slices of one buffer to several receives says where). */
static const uint8_t *bytes_of(const struct fixture *fx, const struct rs_completion *c)
{
    assert_true(c->flags & RS_CF_BUFFER);
    assert_true(c->off < fx->loop.pool.size);
    return rs_bufpool_ptr(&fx->loop.pool, c->bid) + c->off;
}

/* Run the loop until `n` completions were recorded (bounded). On a kernel
 * that never delivers, say where and what did arrive (tools/kernels shows
 * only the log of a test that fails inside a VM). */
static void run_until_at(struct fixture *fx, int n, int line)
{
    for (int i = 0; i < 2000 && fx->nev < n; i++)
        fx->loop.ops->run(&fx->loop, 10);
    if (fx->nev >= n)
        return;
    for (int i = 0; i < fx->nev; i++)
        print_message("  completion %d: res %d flags 0x%x\n", i, fx->ev[i].c.res,
                      fx->ev[i].c.flags);
    fail_msg("line %d: %d completions after 20 s, expected %d", line, fx->nev, n);
}
#define run_until(fx, n) run_until_at((fx), (n), __LINE__)

/* How long a poll(2) waits for what the kernel delivers by itself (a
 * loopback handshake, a FIN): a hang guard, never a pass criterion. Under
 * load softirqs run in ksoftirqd, a thread that may get no CPU for
 * seconds while this one's timer runs: as long as run_until's. */
#define KERNEL_WAIT_MS 20000

/* An op on the accepted socket, flagged with its descriptor kind. */
static void server_op(struct fixture *fx, struct rs_op *op, uint8_t kind)
{
    rs_op_init(op, kind, fx->server, record_fn, fx);
    if (fx->server_direct)
        op->flags |= RS_OPF_DIRECT;
}

/* The configuration for this run's backend and mode. epoll-lt also runs
 * the file ops on a single worker, epoll-inline in the loop itself. */
static void config_for_mode(struct rs_config *cfg)
{
    rs_config_defaults(cfg);
    mode_options(cfg, mode_name, features, true);
}

static int loop_setup(struct fixture *fx, uint32_t buffers)
{
    config_for_mode(&fx->cfg);
    if (small_ring) {
        char err[200];
        assert_int_equal(
            rs_config_set_option(&fx->cfg, "ring-entries", "4", err, sizeof(err)), 0);
    }
    fx->cfg.buffers = buffers;
    fx->cfg.buffer_size = 4096;
    char err[256] = "";
    int rc = rs_loop_init(&fx->loop, backend, &fx->cfg, err, sizeof(err));
    if (rc < 0)
        fprintf(stderr, "loop init: %s\n", err);
    return rc;
}

static int setup_with(void **state, uint32_t buffers)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (loop_setup(fx, buffers) < 0) {
        free(fx);
        return -1;
    }
    fx->lfd = rs_listen_socket("127.0.0.1", 0, true, false, 16);
    assert_true(fx->lfd >= 0);
    if (small_sndbuf) {
        /* An accepted socket inherits it: each send takes a little. */
        int sz = 64 * 1024;
        setsockopt(fx->lfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    }
    /* Accept through the backend: with direct descriptors only it knows
     * what the accepted "fd" is. */
    rs_op_init(&fx->accept_op, RS_OP_ACCEPT, fx->lfd, record_fn, fx);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &fx->accept_op), 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)rs_socket_port(fx->lfd)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fx->client = socket(AF_INET, SOCK_STREAM, 0);
    if (small_rcvbuf) {
        /* The sendfile tests fill the socket: a small receive window makes
         * that quick. */
        int sz = 64 * 1024;
        setsockopt(fx->client, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    assert_int_equal(connect(fx->client, (struct sockaddr *)&a, sizeof(a)), 0);
    run_until(fx, 1);
    assert_ptr_equal(fx->ev[0].op, &fx->accept_op);
    assert_true(fx->ev[0].c.res >= 0);
    fx->server = fx->ev[0].c.res;
    /* The descriptor kind comes with the completion (rule 6). */
    fx->server_direct = fx->ev[0].c.flags & RS_CF_DIRECT;
    if (fx->server_direct)
        assert_true(fx->loop.caps & RS_CAP_DIRECT_FD);
    /* The accept op is single-shot here: it completed without MORE. */
    assert_false(fx->ev[0].c.flags & RS_CF_MORE);
    fx->nev = 0;
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 64);
}

static int setup_one_buffer(void **state)
{
    return setup_with(state, 1);
}

static int setup_four_buffers(void **state)
{
    return setup_with(state, 4);
}

static void close_server(struct fixture *fx)
{
    struct rs_op op = {0};
    server_op(fx, &op, RS_OP_CLOSE);
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    run_until(fx, before + 1);
    assert_ptr_equal(fx->ev[before].op, &op);
    assert_int_equal(fx->ev[before].c.res, 0);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    close(fx->client);
    close(fx->lfd);
    /* Every lent buffer was returned (rs_loop_fini asserts it too). */
    assert_int_equal(fx->loop.pool.lent, 0);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

/* Give back the buffers of completions from..nev (a cancel may race with
 * a last receive). */
static void release_all_from(struct fixture *fx, int from)
{
    for (int i = from; i < fx->nev; i++)
        if (fx->ev[i].c.flags & RS_CF_BUFFER)
            fx->loop.ops->buf_release(&fx->loop, fx->ev[i].c.bid);
}

static void release_all(struct fixture *fx)
{
    for (int i = 0; i < fx->nev; i++)
        if (fx->ev[i].c.flags & RS_CF_BUFFER)
            fx->loop.ops->buf_release(&fx->loop, fx->ev[i].c.bid);
}

/* RS_OPF_RESET on a socket's close: the peer reads what reached it, then
 * ECONNRESET, never a clean EOF. */
static void test_contract_close_reset(void **state)
{
    struct fixture *fx = *state;
    struct rs_op snd = {0}, cl = {0};
    server_op(fx, &snd, RS_OP_SEND);
    snd.buf = "abc";
    snd.len = 3;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &snd), 0);
    run_until(fx, 1);
    assert_int_equal(fx->ev[0].c.res, 3);
    server_op(fx, &cl, RS_OP_CLOSE);
    cl.flags |= RS_OPF_RESET;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &cl), 0);
    run_until(fx, 2);
    assert_ptr_equal(fx->ev[1].op, &cl);
    assert_int_equal(fx->ev[1].c.res, 0);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fx->client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[8];
    assert_int_equal(recv_again(fx->client, buf, sizeof(buf), 0), 3);
    assert_memory_equal(buf, "abc", 3);
    ssize_t r = recv_again(fx->client, buf, sizeof(buf), 0);
    if (r >= 0)
        fail_msg("after a reset close the peer read %s", r == 0 ? "a clean EOF" : "data");
    assert_int_equal(errno, ECONNRESET);
}

static void test_contract_no_completion_inside_submit(void **state)
{
    struct fixture *fx = *state;
    struct rs_op send = {0};
    server_op(fx, &send, RS_OP_SEND);
    send.buf = "ping";
    send.len = 4;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &send), 0);
    /* epoll sends speculatively inside submit(): the result must still wait
     * for run(). */
    assert_int_equal(fx->nev, 0);
    run_until(fx, 1);
    assert_ptr_equal(fx->ev[0].op, &send);
    assert_int_equal(fx->ev[0].c.res, 4);
    assert_false(fx->ev[0].c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    char buf[8];
    assert_int_equal(recv_again(fx->client, buf, 4, MSG_WAITALL), 4);
    assert_memory_equal(buf, "ping", 4);
    close_server(fx);
}

static void test_contract_multishot_recv_lends_buffers(void **state)
{
    struct fixture *fx = *state;
    struct rs_op recv_op = {0};
    server_op(fx, &recv_op, RS_OP_RECV);
    recv_op.flags |= RS_OPF_MULTISHOT;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    assert_int_equal(send(fx->client, "abc", 3, 0), 3);
    run_until(fx, 1);
    size_t got = 0;
    char data[16];
    for (int i = 0; i < fx->nev; i++) {
        struct rs_completion *c = &fx->ev[i].c;
        assert_true(c->res > 0);
        assert_true(c->flags & RS_CF_BUFFER);
        memcpy(data + got, bytes_of(fx, c), (size_t)c->res);
        got += (size_t)c->res;
    }
    assert_int_equal(got, 3);
    assert_memory_equal(data, "abc", 3);
    assert_int_equal(fx->loop.pool.lent, (uint32_t)fx->nev);
    bool multishot = fx->ev[fx->nev - 1].c.flags & RS_CF_MORE;
    release_all(fx);
    assert_int_equal(fx->loop.pool.lent, 0);
    fx->nev = 0;
    if (!multishot) /* a backend may complete once (rule 2): re-arm */
        assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    /* EOF ends the op: res 0, no MORE, no buffer. */
    shutdown(fx->client, SHUT_WR);
    run_until(fx, 1);
    struct rs_completion *last = &fx->ev[fx->nev - 1].c;
    assert_int_equal(last->res, 0);
    assert_false(last->flags & (RS_CF_MORE | RS_CF_BUFFER));
    close_server(fx);
}

static void check_usable(struct fixture *fx);

/* Does this loop lend slices of one buffer to several receives? The
 * backend names its active features in describe() (io_uring: buf-inc). */
static bool lends_slices(struct fixture *fx)
{
    char d[256] = "";
    if (fx->loop.ops->describe)
        fx->loop.ops->describe(&fx->loop, d, sizeof(d));
    return strstr(d, "buf-inc") != NULL;
}

#define SLICE_MSGS 14
#define SLICE_LEN  1000 /* buffers of 4096: now and then one straddles two */

/* Receives held at the same time never share bytes, and a buffer goes
 * back to the kernel only when the kernel is done with it AND every
 * receive lent from it came back. With a pool of 4 buffers, messages
 * arrive one at a time; each is checked as it comes and given back at
 * once, except those in the first message's buffer after the first
 * message itself: the first is given back while the kernel still fills
 * that buffer (io_uring buf-inc: the rest of it goes to the next
 * receives), the later ones stay held while more than the whole pool's
 * worth of data goes through the other buffers. A buffer returned too
 * early would be filled again from its start under the held bytes: they
 * are checked again at the end. Every backend runs this; where receives
 * share buffers (buf-inc) several must have shared the first one, side
 * by side in arrival order. */
static void test_contract_recv_slices_in_order(void **state)
{
    struct fixture *fx = *state; /* a pool of 4 buffers of 4096 bytes */
    static uint8_t sent[SLICE_MSGS * SLICE_LEN];
    for (size_t i = 0; i < sizeof(sent); i++)
        sent[i] = (uint8_t)(i * 31 + i / 251 + 7);
    struct rs_op recv_op = {0};
    server_op(fx, &recv_op, RS_OP_RECV);
    recv_op.flags |= RS_OPF_MULTISHOT;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    size_t at[MAX_EV]; /* where each completion's bytes are in `sent` */
    bool held[MAX_EV] = {false};
    size_t got = 0;
    int first_bid = -1;
    for (int m = 0; m < SLICE_MSGS; m++) {
        assert_int_equal(send(fx->client, sent + (size_t)m * SLICE_LEN, SLICE_LEN, 0),
                         SLICE_LEN);
        while (got < (size_t)(m + 1) * SLICE_LEN) {
            int before = fx->nev;
            if (before > 0 && !(fx->ev[before - 1].c.flags & RS_CF_MORE))
                assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
            run_until(fx, before + 1);
            for (int i = before; i < fx->nev; i++) {
                struct rs_completion *c = &fx->ev[i].c;
                assert_ptr_equal(fx->ev[i].op, &recv_op);
                assert_true(c->res >
                            0); /* never -ENOBUFS: all but one buffer come back */
                assert_true(got + (size_t)c->res <= sizeof(sent));
                assert_memory_equal(bytes_of(fx, c), sent + got, (size_t)c->res);
                at[i] = got;
                got += (size_t)c->res;
                if (first_bid < 0)
                    first_bid = c->bid;
                held[i] = m > 0 && c->bid == first_bid;
                if (!held[i])
                    fx->loop.ops->buf_release(&fx->loop, c->bid);
            }
        }
    }
    /* The held bytes are still what came, and no two held receives
     * overlap. */
    int nheld = 0, side_by_side = 0, prev = -1;
    for (int i = 0; i < fx->nev; i++) {
        if (!held[i])
            continue;
        struct rs_completion *c = &fx->ev[i].c;
        assert_memory_equal(bytes_of(fx, c), sent + at[i], (size_t)c->res);
        for (int j = 0; j < i; j++) {
            const struct rs_completion *d = &fx->ev[j].c;
            if (held[j] && d->bid == c->bid)
                assert_true(d->off + (uint32_t)d->res <= c->off ||
                            c->off + (uint32_t)c->res <= d->off);
        }
        if (prev >= 0 && fx->ev[prev].c.bid == c->bid &&
            fx->ev[prev].c.off + (uint32_t)fx->ev[prev].c.res == c->off &&
            at[prev] + (size_t)fx->ev[prev].c.res == at[i])
            side_by_side++;
        prev = i;
        nheld++;
    }
    assert_true(nheld >= 1);
    if (lends_slices(fx))
        assert_true(side_by_side >= 1);
    else
        assert_int_equal(side_by_side, 0);
    assert_true(fx->loop.pool.lent >= 1);
    for (int i = 0; i < fx->nev; i++)
        if (held[i])
            fx->loop.ops->buf_release(&fx->loop, fx->ev[i].c.bid);
    assert_int_equal(fx->loop.pool.lent, 0);
    assert_int_equal(fx->loop.pool.violations, 0);
    if (fx->ev[fx->nev - 1].c.flags & RS_CF_MORE) {
        int before = fx->nev;
        assert_int_equal(fx->loop.ops->cancel(&fx->loop, &recv_op), 0);
        do
            run_until(fx, fx->nev + 1);
        while (fx->ev[fx->nev - 1].c.flags & RS_CF_MORE);
        release_all_from(fx, before);
    }
    fx->nev = 0;
    check_usable(fx);
    close_server(fx);
}

/* A multishot recv armed on a socket that already holds its peer's EOF
 * behind more data than one issue reads: every byte, then the EOF (res 0,
 * no MORE). io_uring's multishot recv reads such a socket empty and then
 * waits for a wake-up that came before it was armed: on Linux 6.18 (an
 * AF_UNIX socket with some 45 buffers queued) the EOF never came unless
 * the backend guards the recv (backend_uring/hangup.c, hup_rec). */
static void test_contract_multishot_recv_eof_behind_data(void **state)
{
    struct fixture *fx = *state;
    int sv[2];
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    static uint8_t chunk[4096];
    size_t sent = 0;
    while (sent < 45 * sizeof(chunk)) {
        ssize_t n = send(sv[1], chunk, sizeof(chunk), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    assert_true(sent > 36 * sizeof(chunk)); /* more than one issue's worth */
    close(sv[1]);
    struct rs_op recv_op = {0};
    rs_op_init(&recv_op, RS_OP_RECV, sv[0], record_fn, fx);
    recv_op.flags |= RS_OPF_MULTISHOT;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    size_t got = 0;
    bool eof = false;
    for (int turn = 0; turn < 500 && !eof; turn++) {
        fx->loop.ops->run(&fx->loop, 10);
        bool ended = false;
        for (int i = 0; i < fx->nev; i++) {
            const struct rs_completion *c = &fx->ev[i].c;
            assert_ptr_equal(fx->ev[i].op, &recv_op);
            assert_true(c->res >= 0);
            got += (size_t)c->res;
            eof = c->res == 0;
            ended = !(c->flags & RS_CF_MORE);
        }
        release_all(fx);
        fx->nev = 0;
        if (ended && !eof) /* a backend may complete once (rule 2): re-arm */
            assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    }
    if (!eof)
        fail_msg("%zu of %zu bytes, then no EOF in 500 turns", got, sent);
    assert_int_equal(got, sent);
    close(sv[0]);
}

static void test_contract_cancel_completes_once(void **state)
{
    struct fixture *fx = *state;
    struct rs_op recv_op = {0};
    server_op(fx, &recv_op, RS_OP_RECV);
    recv_op.flags |= RS_OPF_MULTISHOT;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    fx->loop.ops->run(&fx->loop, 0);
    assert_int_equal(fx->nev, 0);
    fx->loop.ops->cancel(&fx->loop, &recv_op);
    assert_int_equal(fx->nev, 0); /* not from inside cancel() either */
    run_until(fx, 1);
    /* drain anything else, then check exactly one final completion */
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 1);
    assert_int_equal(fx->nev, 1);
    assert_int_equal(fx->ev[0].c.res, -ECANCELED);
    assert_false(fx->ev[0].c.flags & RS_CF_MORE);
    close_server(fx);
}

static void test_contract_errors_are_negative_errno(void **state)
{
    struct fixture *fx = *state;
    /* The peer resets: a recv sees -ECONNRESET. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fx->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    struct rs_op recv_op = {0};
    server_op(fx, &recv_op, RS_OP_RECV);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    close(fx->client);
    fx->client = -1;
    run_until(fx, 1);
    assert_int_equal(fx->ev[0].c.res, -ECONNRESET);
    assert_false(fx->ev[0].c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    /* And a send after it: -EPIPE or -ECONNRESET, never a positive count. */
    struct rs_op send = {0};
    server_op(fx, &send, RS_OP_SEND);
    send.buf = "x";
    send.len = 1;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &send), 0);
    run_until(fx, 2);
    assert_true(fx->ev[1].c.res == -EPIPE || fx->ev[1].c.res == -ECONNRESET);
    close_server(fx);
}

static void test_contract_enobufs_is_a_state(void **state)
{
    struct fixture *fx = *state; /* a pool of one buffer */
    struct rs_op recv_op = {0};
    server_op(fx, &recv_op, RS_OP_RECV);
    recv_op.flags |= RS_OPF_MULTISHOT;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    assert_int_equal(send(fx->client, "1", 1, 0), 1);
    run_until(fx, 1);
    assert_true(fx->ev[0].c.flags & RS_CF_BUFFER);
    uint16_t held = fx->ev[0].c.bid;
    bool armed = fx->ev[0].c.flags & RS_CF_MORE;
    if (!armed) /* single-shot backend: re-arm for the next message */
        assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    /* The only buffer is held: the op's next completion is -ENOBUFS, ending
     * it. When it comes depends on the kernel: Linux 6.1 tries the next
     * receive straight after a completion, finds the ring empty and ends the
     * op at once, before "2" is sent (tools/kernels found it); newer kernels
     * end it when "2" arrives. So it is ev[1] either way, never counted
     * from whatever the first run_until happened to collect. */
    assert_int_equal(send(fx->client, "2", 1, 0), 1);
    int n = 1;
    run_until(fx, n + 1);
    assert_int_equal(fx->ev[n].c.res, -ENOBUFS);
    assert_false(fx->ev[n].c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    /* Give the buffer back and re-arm: the data is still there. */
    fx->loop.ops->buf_release(&fx->loop, held);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    run_until(fx, n + 2);
    assert_int_equal(fx->ev[n + 1].c.res, 1);
    assert_true(fx->ev[n + 1].c.flags & RS_CF_BUFFER);
    assert_int_equal(*bytes_of(fx, &fx->ev[n + 1].c), '2');
    fx->loop.ops->buf_release(&fx->loop, fx->ev[n + 1].c.bid);
    if (fx->ev[n + 1].c.flags & RS_CF_MORE) {
        fx->loop.ops->cancel(&fx->loop, &recv_op);
        run_until(fx, n + 3);
        assert_false(fx->ev[n + 2].c.flags & RS_CF_MORE);
    }
    close_server(fx);
}

/* A vectored send (RS_OPF_MSG): the iovecs' bytes go out in order, and
 * the result counts them all (or a prefix). */
static void test_contract_vectored_send(void **state)
{
    struct fixture *fx = *state;
    struct iovec iov[3] = {{.iov_base = "one,", .iov_len = 4},
                           {.iov_base = "two,", .iov_len = 4},
                           {.iov_base = "three", .iov_len = 5}};
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = 3};
    struct rs_op send_op = {0};
    server_op(fx, &send_op, RS_OP_SEND);
    send_op.flags |= RS_OPF_MSG;
    send_op.buf = &msg;
    send_op.len = 13;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &send_op), 0);
    assert_int_equal(fx->nev, 0);
    run_until(fx, 1);
    assert_int_equal(fx->ev[0].c.res, 13);
    char buf[13];
    assert_int_equal(recv_again(fx->client, buf, 13, MSG_WAITALL), 13);
    assert_memory_equal(buf, "one,two,three", 13);
    close_server(fx);
}

/* ---- RS_OP_SENDFILE (rule 10) --------------------------------------- */

#define SF_LEN (8u << 20) /* the file: larger than any socket buffer here */

static uint8_t sf_byte(uint64_t i)
{
    return (uint8_t)(i * 131 + (i >> 12));
}

/* An accepted connection as in setup(), the client's receive window small,
 * and a scratch file of SF_LEN patterned bytes open in fx->dirfd. */
static int setup_sendfile(void **state)
{
    small_rcvbuf = true;
    int rc = setup_with(state, 64);
    small_rcvbuf = false;
    if (rc < 0)
        return rc;
    struct fixture *fx = *state;
    if (!(fx->loop.caps & RS_CAP_SENDFILE)) {
        /* Every backend declares it on this kernel (splice is 5.7). */
        fail_msg("%s lacks RS_CAP_SENDFILE", mode_name);
    }
    strcpy(fx->dir, "/tmp/rs-sendfile-XXXXXX");
    fx->dirfd = mkstemp(fx->dir);
    assert_true(fx->dirfd >= 0);
    unlink(fx->dir);
    uint8_t *p = malloc(SF_LEN);
    assert_non_null(p);
    for (uint64_t i = 0; i < SF_LEN; i++)
        p[i] = sf_byte(i);
    assert_int_equal(pwrite(fx->dirfd, p, SF_LEN, 0), (ssize_t)SF_LEN);
    free(p);
    /* The client reads without blocking: the test drives both ends. */
    fcntl(fx->client, F_SETFL, fcntl(fx->client, F_GETFL) | O_NONBLOCK);
    return 0;
}

/* setup_sendfile, the server's send buffer small too: a sendfile(2)
 * sends a fraction of a 1 MiB op. */
static int setup_sendfile_small_sndbuf(void **state)
{
    small_sndbuf = true;
    int rc = setup_sendfile(state);
    small_sndbuf = false;
    return rc;
}

static int teardown_sendfile(void **state)
{
    struct fixture *fx = *state;
    close(fx->dirfd);
    return teardown(state);
}

/* What the client has received so far, checked against the file from
 * *at on; returns the bytes read. */
static size_t sf_drain(struct fixture *fx, uint64_t *at)
{
    uint8_t buf[65536];
    size_t got = 0;
    for (;;) {
        ssize_t n = recv_again(fx->client, buf, sizeof(buf), 0);
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != sf_byte(*at + (uint64_t)i))
                fail_msg("byte %llu: got %u, the file has %u",
                         (unsigned long long)(*at + (uint64_t)i), buf[i],
                         sf_byte(*at + (uint64_t)i));
        *at += (uint64_t)n;
        got += (size_t)n;
    }
    return got;
}

static void sf_submit(struct fixture *fx, struct rs_op *op, struct rs_sendfile *src,
                      uint64_t off, uint32_t len)
{
    server_op(fx, op, RS_OP_SENDFILE);
    *src = (struct rs_sendfile){.file_fd = fx->dirfd, .off = off};
    op->buf = src;
    op->len = len;
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, op), 0);
    assert_int_equal(fx->nev, before); /* rule 1 */
}

/* Run until op's one completion, the client reading (and checking) all
 * along unless drain is false: then give up after ~300 ms (the op waits
 * for room) and return INT32_MIN. */
/* Monotonic milliseconds: the hang guard of sf_wait. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int32_t sf_wait(struct fixture *fx, struct rs_op *op, bool drain, uint64_t *at)
{
    int before = fx->nev;
    /* A hang guard, not a pass criterion: cold pages read by an emulated
     * disk under qemu TCG can take seconds, more than a count of 1 ms
     * turns allowed. */
    uint64_t give_up = mono_ms() + 60000;
    for (int i = 0; fx->nev == before && mono_ms() < give_up; i++) {
        fx->loop.ops->run(&fx->loop, drain ? 1 : 10);
        if (drain)
            sf_drain(fx, at);
        else if (i >= 30)
            return INT32_MIN;
    }
    assert_int_equal(fx->nev, before + 1);
    assert_ptr_equal(fx->ev[before].op, op);
    assert_false(fx->ev[before].c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    return fx->ev[before].c.res;
}

/* The client reads until it has `until` bytes in all (bounded). */
static void sf_read_to(struct fixture *fx, uint64_t *at, uint64_t until)
{
    for (int i = 0; i < 2000 && *at < until; i++) {
        if (sf_drain(fx, at) == 0)
            poll(&(struct pollfd){.fd = fx->client, .events = POLLIN}, 1, 10);
    }
    if (*at != until)
        fail_msg("the peer has %llu bytes of the file, expected %llu",
                 (unsigned long long)*at, (unsigned long long)until);
}

/* Cancel op, which is in flight, and wait for its one completion:
 * -ECANCELED, or the bytes it sent (rule 10). The client reads nothing
 * meanwhile: the cancel alone must end the op. */
static int32_t sf_cancel(struct fixture *fx, struct rs_op *op)
{
    int n = fx->nev;
    int rc = fx->loop.ops->cancel(&fx->loop, op);
    /* -ENOENT: it finished already (epoll inline, or a kernel that cannot
     * tell what is cached, sends at once); its completion is queued. */
    assert_true(rc == 0 || rc == -ENOENT);
    /* Not from inside cancel() (rule 1). */
    assert_int_equal(fx->nev, n);
    uint64_t give_up = mono_ms() + 60000; /* a hang guard, as in sf_wait */
    while (fx->nev == n && mono_ms() < give_up)
        fx->loop.ops->run(&fx->loop, 10);
    assert_int_equal(fx->nev, n + 1);
    assert_ptr_equal(fx->ev[n].op, op);
    assert_false(fx->ev[n].c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    int32_t res = fx->ev[n].c.res;
    if (res != -ECANCELED && res <= 0)
        fail_msg("the cancelled sendfile ended with %d (cancel() said %d): "
                 "-ECANCELED or the bytes it sent",
                 res, rc);
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 1);
    assert_int_equal(fx->nev, n + 1); /* exactly once */
    return res;
}

/* A whole range in ops that may each be short: every byte arrives once,
 * in order, at the right offset. */
static uint64_t sf_send_range(struct fixture *fx, uint64_t off, uint64_t len)
{
    uint64_t at = off, sent = 0;
    while (sent < len) {
        struct rs_op op = {0};
        struct rs_sendfile src;
        uint64_t left = len - sent;
        sf_submit(fx, &op, &src, off + sent,
                  left > (1u << 30) ? 1u << 30 : (uint32_t)left);
        int32_t res = sf_wait(fx, &op, true, &at);
        assert_true(res > 0);
        assert_true((uint64_t)res <= left);
        sent += (uint64_t)res;
    }
    sf_read_to(fx, &at, off + len);
    return sent;
}

static void test_contract_sendfile_full(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(sf_send_range(fx, 0, SF_LEN), SF_LEN);
    close_server(fx);
}

/* From an offset that is no multiple of a page, and a length that is none
 * either. */
static void test_contract_sendfile_offset(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(sf_send_range(fx, 12345, 1000003), 1000003);
    close_server(fx);
}

/* The process's descriptors now (differences only: valgrind's own sit
 * there too, unchanged). */
static int process_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A socket the loop sent a file to may keep a process fd between ops (on
 * io_uring a direct socket keeps its installed fd for the connection's
 * next file). An op on a plain descriptor that only has the number of the
 * socket's slot (here an fsync, harmless on anything) is no op on the
 * socket: the process's descriptors are the same after it, and the socket
 * still carries the next file in order. */
static void test_contract_sendfile_plain_fd_same_number(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(sf_send_range(fx, 0, 65536), 65536);
    int fds = process_fds();
    struct rs_file_op f;
    memset(&f, 0, sizeof(f));
    rs_op_init(&f.op, RS_OP_FSYNC, fx->server, record_fn, fx); /* no RS_OPF_DIRECT */
    int before = fx->nev;
    if (fx->loop.ops->submit(&fx->loop, &f.op) == 0) {
        run_until(fx, before + 1);
        assert_ptr_equal(fx->ev[before].op, &f.op);
    }
    assert_int_equal(process_fds(), fds);
    assert_int_equal(sf_send_range(fx, 65536, 65536), 65536);
    close_server(fx);
}

/* Asked for more than the file holds: short, then 0 at its end. */
static void test_contract_sendfile_short_at_eof(void **state)
{
    struct fixture *fx = *state;
    struct rs_op op = {0};
    struct rs_sendfile src;
    uint64_t at = SF_LEN - 100;
    sf_submit(fx, &op, &src, SF_LEN - 100, 5000);
    assert_int_equal(sf_wait(fx, &op, true, &at), 100);
    sf_read_to(fx, &at, SF_LEN);
    sf_submit(fx, &op, &src, SF_LEN, 5000);
    assert_int_equal(sf_wait(fx, &op, true, &at), 0);
    sf_submit(fx, &op, &src, SF_LEN + 4096, 1);
    assert_int_equal(sf_wait(fx, &op, true, &at), 0);
    close_server(fx);
}

/* The peer reset the connection: -EPIPE or -ECONNRESET, never a count. */
static void test_contract_sendfile_peer_closed(void **state)
{
    struct fixture *fx = *state;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fx->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fx->client);
    fx->client = -1;
    /* The reset reached the server's socket: a recv ends with it (or with
     * 0, the error taken). Waited for, not slept on: under load the
     * loopback's softirq runs in ksoftirqd, which may get no CPU for a
     * while, and a sendfile ahead of the reset sends a count. */
    int base = fx->nev;
    struct rs_op rcv = {0};
    server_op(fx, &rcv, RS_OP_RECV);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &rcv), 0);
    run_until(fx, base + 1);
    assert_true(fx->ev[base].c.res == -ECONNRESET || fx->ev[base].c.res == 0);
    assert_false(fx->ev[base].c.flags & RS_CF_BUFFER);
    struct rs_op op = {0};
    struct rs_sendfile src;
    sf_submit(fx, &op, &src, 0, SF_LEN);
    /* Its one completion, however long the backend's worker waits for a
     * CPU (sf_wait without draining gives up after ~300 ms). */
    run_until(fx, base + 2);
    assert_ptr_equal(fx->ev[base + 1].op, &op);
    int32_t res = fx->ev[base + 1].c.res;
    assert_true(res == -EPIPE || res == -ECONNRESET);
    close_server(fx);
}

/* Fill the socket (the peer does not read) with the file from offset
 * from on, until an op waits for room; returns the bytes sent before it.
 * The op is left in flight. */
static uint64_t sf_fill(struct fixture *fx, struct rs_op *op, struct rs_sendfile *src,
                        uint64_t from)
{
    uint64_t sent = 0, at = 0;
    for (int i = 0; i < 64; i++) {
        sf_submit(fx, op, src, from + sent, SF_LEN - (uint32_t)(from + sent));
        int32_t res = sf_wait(fx, op, false, &at);
        if (res == INT32_MIN)
            return sent; /* it waits: the socket is full */
        assert_true(res > 0);
        sent += (uint64_t)res;
        assert_true(from + sent < SF_LEN);
    }
    fail_msg("the socket never filled: %llu bytes sent", (unsigned long long)sent);
    return 0;
}

/* A full socket is waited out, not reported: once the peer reads, the op
 * goes on, and what it took from the file (io_uring: bytes waiting in its
 * pipe) arrives exactly once, in order. */
static void test_contract_sendfile_full_socket_then_drained(void **state)
{
    struct fixture *fx = *state;
    struct rs_op op = {0};
    struct rs_sendfile src;
    uint64_t before = sf_fill(fx, &op, &src, 0); /* 0 when the first op waits */
    uint64_t at = 0;
    int32_t res = sf_wait(fx, &op, true, &at); /* now the client reads */
    assert_true(res > 0);
    /* The rest of the file, then every byte checked. */
    for (uint64_t off = before + (uint64_t)res; off < SF_LEN;) {
        struct rs_op more = {0};
        struct rs_sendfile s2;
        sf_submit(fx, &more, &s2, off, (uint32_t)(SF_LEN - off));
        int32_t r = sf_wait(fx, &more, true, &at);
        assert_true(r > 0);
        off += (uint64_t)r;
    }
    sf_read_to(fx, &at, SF_LEN);
    close_server(fx);
}

/* Drop the file's pages from the page cache (written back first: only
 * clean pages go), so that the next sendfile must read the disk (on a
 * file system with a disk; on tmpfs nothing changes). */
static void sf_evict(struct fixture *fx)
{
    assert_int_equal(fdatasync(fx->dirfd), 0);
    assert_int_equal(posix_fadvise(fx->dirfd, 0, 0, POSIX_FADV_DONTNEED), 0);
}

/* Read the whole file back into the page cache, so that the next ops
 * find every page there (io_uring: the loop sends them itself with
 * sendfile(2), no pipe, no worker; epoll: no worker reads ahead). */
static void sf_cache(struct fixture *fx)
{
    uint8_t *b = malloc(1u << 20);
    assert_non_null(b);
    for (uint64_t off = 0; off < SF_LEN; off += 1u << 20)
        assert_int_equal(pread(fx->dirfd, b, 1u << 20, (off_t)off), 1 << 20);
    free(b);
}

/* Where a sendfile test's ops found the file: a cached one and a cold
 * one take different paths in a backend (io_uring: the loop's own
 * sendfile(2) or a pipe and io-wq workers; epoll: the loop's sendfile(2)
 * or a worker reading ahead), and a cancel must meet each alike. */
static void sf_file_state(struct fixture *fx, bool cold)
{
    if (cold)
        sf_evict(fx);
    else
        sf_cache(fx);
}

/* What the worker counters say a pass took (which path), for the log. */
static void sf_paths(struct fixture *fx, bool cold, uint64_t reads, uint64_t sends)
{
    print_message("%s file: %llu worker reads, %llu worker sends\n",
                  cold ? "cold" : "cached",
                  (unsigned long long)(fx->loop.stats.sendfile_worker_reads - reads),
                  (unsigned long long)(fx->loop.stats.sendfile_worker_sends - sends));
}

/* A cancel while the op waits for room: one completion, -ECANCELED or the
 * bytes sent so far; the peer then receives exactly the bytes reported,
 * nothing the op had taken from the file but not sent. First the op
 * that filled the socket (it may have sent some), then ops started on the
 * full socket until one sent nothing (io_uring, file not cached: its
 * splice waits in a worker, and the cancel interrupts the worker before
 * its first byte; cached: the loop's own send waits on a poll). cold:
 * each op starts on pages evicted again (the ops before read them back,
 * and read ahead). The stream ends where the peer has read every byte. */
static void sf_cancel_waiting(struct fixture *fx, bool cold)
{
    struct rs_op op = {0};
    struct rs_sendfile src;
    uint64_t before = sf_fill(fx, &op, &src, 0);
    uint64_t at = 0;
    int32_t res = sf_cancel(fx, &op);
    uint64_t total = before + (res > 0 ? (uint64_t)res : 0);
    /* Ops on the full socket: the first ones may still squeeze a few
     * bytes in before they wait; one that sent nothing ends the rounds. */
    for (int round = 0; round < 4 && res != -ECANCELED; round++) {
        struct rs_op next = {0};
        struct rs_sendfile s1;
        sf_file_state(fx, cold);
        sf_submit(fx, &next, &s1, total, SF_LEN - (uint32_t)total);
        res = sf_wait(fx, &next, false, &at);
        if (res == INT32_MIN) /* it waits, as it should on a full socket */
            res = sf_cancel(fx, &next);
        else /* room came after all */
            assert_true(res > 0);
        total += res > 0 ? (uint64_t)res : 0;
    }
    /* The socket still works: 1000 more bytes from where the peer is. */
    struct rs_op more = {0};
    struct rs_sendfile s2;
    sf_submit(fx, &more, &s2, total, 1000);
    int32_t r = sf_wait(fx, &more, true, &at);
    assert_int_equal(r, 1000);
    sf_read_to(fx, &at, total + 1000);
    /* Nothing beyond what was reported. */
    usleep(20000);
    assert_int_equal(sf_drain(fx, &at), 0);
}

/* sf_cancel_waiting() with the file cached, then with its pages evicted
 * (the peer's stream starts again at the file's offset 0 each time). */
static void test_contract_sendfile_cancel(void **state)
{
    struct fixture *fx = *state;
    for (int cold = 0; cold < 2; cold++) {
        uint64_t reads = fx->loop.stats.sendfile_worker_reads;
        uint64_t sends = fx->loop.stats.sendfile_worker_sends;
        sf_file_state(fx, cold);
        sf_cancel_waiting(fx, cold);
        sf_paths(fx, cold, reads, sends);
    }
    close_server(fx);
}

/* A send flagged RS_OPF_MORE (MSG_MORE: an HTTP head), then a sendfile:
 * the head waits for the body's first bytes, and both arrive, in order. */
static void test_contract_sendfile_after_send_more(void **state)
{
    struct fixture *fx = *state;
    struct rs_op head = {0};
    server_op(fx, &head, RS_OP_SEND);
    head.flags |= RS_OPF_MORE;
    head.buf = "HEAD";
    head.len = 4;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &head), 0);
    run_until(fx, 1);
    assert_int_equal(fx->ev[0].c.res, 4);
    struct rs_op op = {0};
    struct rs_sendfile src;
    sf_submit(fx, &op, &src, 0, 1000);
    /* Both completions' bytes: "HEAD", then the file's first 1000. */
    uint8_t buf[1004];
    size_t got = 0;
    for (int i = 0; i < 4000 && (got < sizeof(buf) || fx->nev < 2); i++) {
        fx->loop.ops->run(&fx->loop, 1);
        ssize_t n = recv_again(fx->client, buf + got, sizeof(buf) - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
    assert_int_equal(fx->nev, 2);
    assert_ptr_equal(fx->ev[1].op, &op);
    assert_int_equal(fx->ev[1].c.res, 1000);
    assert_int_equal(got, sizeof(buf));
    assert_memory_equal(buf, "HEAD", 4);
    for (size_t k = 0; k < 1000; k++)
        assert_int_equal(buf[4 + k], sf_byte(k));
    close_server(fx);
}

/* From a file that is not cached (epoll with workers: a worker brings the
 * pages in before the loop's sendfile(2); io_uring: the splice reads them
 * in io-wq): the same bytes, in order. */
static void test_contract_sendfile_cold(void **state)
{
    struct fixture *fx = *state;
    sf_evict(fx);
    assert_int_equal(sf_send_range(fx, 4096 * 3 + 17, 3u << 20), 3u << 20);
    close_server(fx);
}

/* rs_range_cached (core/pagecache.c), counted: this binary is linked
 * with -Wl,--wrap=rs_range_cached, so the backends' checks of what is
 * cached come here first. */
int __real_rs_range_cached(int fd, uint64_t off, uint64_t len);
int __wrap_rs_range_cached(int fd, uint64_t off, uint64_t len);
static unsigned range_checks;
static int range_last; /* the last answer: 1 all cached, 0 not, -errno */

int __wrap_rs_range_cached(int fd, uint64_t off, uint64_t len)
{
    range_checks++;
    range_last = __real_rs_range_cached(fd, off, len);
    return range_last;
}

/* A cached file sent as a stream sends it (ops of at most 1 MiB, each
 * from where the last one stopped, one source) through a socket that
 * takes a fraction of an op per call: what is cached is checked about
 * once per op's worth of bytes, not before every sendfile(2) (epoll
 * checked before each call, each check walking the op's whole range).
 * The bound, 3 checks per MiB plus one per 10 ms the transfer took, holds
 * for every backend: io_uring checks an op's range when it starts and
 * again when it waited 10 ms or more for room (on its own clock); epoll
 * trusts a check for 10 ms of the loop's clock, which nothing here moves
 * but the one step below. That step (the loop's clock moved past any
 * trust right after the first op stopped short, well inside its range)
 * must make the next op check again. */
static void test_contract_sendfile_cached_checks(void **state)
{
    struct fixture *fx = *state;
    sf_cache(fx);
    const uint64_t len = 4u << 20;
    const uint32_t op_max = 1u << 20;
    uint64_t at = 0, sent = 0;
    unsigned ops = 0, stepped = 0;
    unsigned checks0 = range_checks;
    uint64_t t0 = mono_ms();
    struct rs_sendfile src; /* the stream's chunk: one source for the file */
    while (sent < len) {
        struct rs_op op = {0};
        uint64_t left = len - sent;
        unsigned before = range_checks;
        sf_submit(fx, &op, &src, sent, left < op_max ? (uint32_t)left : op_max);
        if (stepped == 1) {
            /* The op after the clock's step: checked again. */
            if (range_checks == before)
                fail_msg("the loop's clock moved 1 s, and the next op of the "
                         "transfer (offset %llu) was sent on the old check",
                         (unsigned long long)sent);
            stepped = 2;
        }
        int32_t res = sf_wait(fx, &op, true, &at);
        assert_true(res > 0);
        sent += (uint64_t)res;
        ops++;
        if (ops == 1 && res <= (int32_t)(op_max / 2) && range_checks > checks0 &&
            range_last == 1) {
            fx->loop.now_ms += 1000;
            stepped = 1;
        }
    }
    uint64_t ms = mono_ms() - t0;
    unsigned checks = range_checks - checks0;
    sf_read_to(fx, &at, len);
    print_message("%u ops, %u checks of what is cached, %llu ms%s\n", ops, checks,
                  (unsigned long long)ms,
                  stepped ? "" : " (the first op was not short: no clock step)");
    unsigned bound = 3 * (unsigned)(len >> 20) + (unsigned)(ms / 10);
    if (checks > bound)
        fail_msg("%u checks of what is cached for %llu MiB in %u ops (%llu ms): more "
                 "than %u",
                 checks, (unsigned long long)(len >> 20), ops, (unsigned long long)ms,
                 bound);
    close_server(fx);
}

/* Rule 10's step: an op larger than 1 MiB, to a peer that takes the
 * bytes a socket-full at a time (the client drains between the loop's
 * turns; both buffers 64 KiB), completes once it has to wait for room
 * after 1 MiB went out, with what went out: its completion is where the
 * caller sees progress (the stream's idle clock, HTTP's send timeout),
 * so a slow reader must see it every MiB or so whatever the op's size.
 * Cached (io_uring: the loop's sendfile(2), which ends the op at that
 * wait) and cold (io_uring: a pipe, whose op carries at most 1 MiB);
 * epoll completes after each sendfile(2) anyway. Before, io_uring's op
 * lasted to its end: 8 MiB at once. */
static void test_contract_sendfile_progress_each_mib(void **state)
{
    struct fixture *fx = *state;
    /* 1 MiB, plus what one call may move at most here: a socket-full
     * (both 64 KiB buffers, doubled by the kernel) and then some. */
    const uint32_t bound = (1u << 20) + (1u << 20);
    uint64_t at = 0, off = 0;
    for (int cold = 0; cold < 2; cold++) {
        sf_file_state(fx, cold);
        struct rs_op op = {0};
        struct rs_sendfile src;
        sf_submit(fx, &op, &src, off, (uint32_t)(SF_LEN - off));
        int32_t res = sf_wait(fx, &op, true, &at);
        print_message("%s file: an op of %llu bytes completed with %d\n",
                      cold ? "cold" : "cached", (unsigned long long)(SF_LEN - off), res);
        assert_true(res > 0);
        if ((uint32_t)res > bound)
            fail_msg("an op to a peer taking a socket-full at a time completed with "
                     "%d bytes: it waited for room after 1 MiB went out (more than %u)",
                     res, bound);
        off += (uint64_t)res;
        sf_read_to(fx, &at, off);
    }
    close_server(fx);
}

/* The server's socket (non-blocking) filled to the last byte with the
 * file from offset from on, by sendfile(2) here: the bytes sent. */
static uint64_t sf_top_up(struct fixture *fx, uint64_t from)
{
    off_t off = (off_t)from;
    while ((uint64_t)off < SF_LEN) {
        ssize_t n = sendfile(fx->server, fx->dirfd, &off, SF_LEN - (size_t)off);
        if (n < 0 && errno == EAGAIN)
            break;
        assert_true(n > 0);
    }
    return (uint64_t)off - from;
}

/* Room that comes while the backend still has a cold read of the op in
 * hand is not lost. The socket is full when the op starts (epoll: a
 * worker's sendfile(2) meets it and answers EAGAIN, which reaches the loop
 * only when it reaps the worker's result); the peer then reads everything
 * before the loop runs again, so the socket's one EPOLLOUT edge comes in
 * the same turn as the worker's EAGAIN, and no other will come: an op
 * parked after that edge would wait for good (the edge-triggered loop
 * handles a turn's socket events before its workers' results). The op
 * must go on and send the rest. A round whose op found room after all
 * (the socket's buffer grows) fills the socket again. */
static void test_contract_sendfile_room_during_cold_read(void **state)
{
    struct fixture *fx = *state;
    uint64_t total = 0, at = 0;
    int worker_met_full = 0, rounds = 0;
    bool again = true; /* a worker had the op, its call found room */
    /* Each round fills the socket (a few MiB): two fit in the file. */
    for (; again && total < SF_LEN / 4; rounds++) {
        struct rs_op fill = {0}, op = {0};
        struct rs_sendfile src;
        sf_cache(fx); /* the fill goes out from the page cache, at once */
        total += sf_fill(fx, &fill, &src, total);
        int32_t res = sf_cancel(fx, &fill);
        total += res > 0 ? (uint64_t)res : 0;
        /* The op waited for an EPOLLOUT, which needs a third of the
         * buffer free; less than that may be free, and a call would take
         * it. The rest of the room is taken here, with the file's next
         * bytes (a non-blocking socket: a call that finds no room answers
         * EAGAIN; io_uring's sockets are direct or blocking). */
        if (!fx->server_direct && (fcntl(fx->server, F_GETFL) & O_NONBLOCK))
            total += sf_top_up(fx, total);
        sf_evict(fx);
        uint64_t reads = fx->loop.stats.sendfile_worker_reads;
        sf_submit(fx, &op, &src, total, SF_LEN - (uint32_t)total);
        /* A worker took it (epoll's pool; io_uring's io-wq reads report to
         * the ring instead): let it meet the full socket before the peer
         * reads. Bounded, and not a pass criterion: a slower worker's
         * EAGAIN comes after the edge, the order that always worked. */
        bool worker = fx->loop.stats.sendfile_worker_reads != reads;
        if (worker)
            poll(&(struct pollfd){.fd = fx->loop.wake_fd, .events = POLLIN}, 1, 200);
        /* The peer takes everything sent so far: the socket is empty now,
         * and no more room will come. */
        for (int i = 0; i < 2000 && at < total; i++)
            if (sf_drain(fx, &at) == 0)
                poll(&(struct pollfd){.fd = fx->client, .events = POLLIN}, 1, 10);
        assert_true(at >= total);
        /* The worker's call sent nothing: the order above happened. */
        if (worker && sf_drain(fx, &at) == 0 && at == total)
            worker_met_full++;
        again = worker && worker_met_full == 0;
        res = sf_wait(fx, &op, true, &at);
        assert_true(res > 0);
        total += (uint64_t)res;
        sf_read_to(fx, &at, total);
    }
    print_message("%d rounds, %d with the worker's call on a full socket\n", rounds,
                  worker_met_full);
    close_server(fx);
}

/* A cancel right after the submit: one completion, which the cancel
 * alone brings (the peer reads nothing before it), and the socket goes on
 * from the offset it reports. Pages not cached (epoll: while a worker may
 * be reading them; io_uring: while the file -> pipe splice may run in a
 * worker, and the pipe -> socket one is not issued yet), then cached
 * (io_uring: while a direct socket's fd is being installed for the loop's
 * own send, or that send waits for room). */
static void test_contract_sendfile_cold_cancel(void **state)
{
    struct fixture *fx = *state;
    for (int cold = 1; cold >= 0; cold--) {
        uint64_t reads = fx->loop.stats.sendfile_worker_reads;
        uint64_t sends = fx->loop.stats.sendfile_worker_sends;
        sf_file_state(fx, cold);
        struct rs_op op = {0};
        struct rs_sendfile src;
        uint64_t at = 0;
        /* More than the socket takes: an op the cancel did not stop
         * would wait for room for good. */
        sf_submit(fx, &op, &src, 0, SF_LEN);
        int32_t res = sf_cancel(fx, &op);
        uint64_t total = res > 0 ? (uint64_t)res : 0;
        struct rs_op more = {0};
        struct rs_sendfile s2;
        sf_submit(fx, &more, &s2, total, 1000);
        assert_int_equal(sf_wait(fx, &more, true, &at), 1000);
        sf_read_to(fx, &at, total + 1000);
        sf_paths(fx, cold, reads, sends);
    }
    close_server(fx);
}

/* ---- RS_OP_CONNECT (rule 7) ------------------------------------------ */

static struct sockaddr_in loopback(int port)
{
    return (struct sockaddr_in){.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

/* Plain fds made here: with fixed-files the loop serves both kinds side
 * by side (rule 6). The backend's own sockets are tested below. */
static int plain_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    return fd;
}

static void close_plain(struct fixture *fx, int fd)
{
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_CLOSE, fd, record_fn, fx);
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    run_until(fx, before + 1);
    assert_ptr_equal(fx->ev[before].op, &op);
    assert_int_equal(fx->ev[before].c.res, 0);
}

/* Submit a connect of fd to addr; nothing may complete inside submit(). */
static void submit_connect(struct fixture *fx, struct rs_op *op, int fd,
                           const struct sockaddr_in *addr)
{
    assert_true(fx->loop.caps & RS_CAP_CONNECT);
    rs_op_init(op, RS_OP_CONNECT, fd, record_fn, fx);
    op->buf = addr;
    op->len = sizeof(*addr);
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, op), 0);
    assert_int_equal(fx->nev, before);
}

static void test_contract_connect_succeeds(void **state)
{
    struct fixture *fx = *state;
    struct sockaddr_in a = loopback(rs_socket_port(fx->lfd));
    int fd = plain_socket();
    struct rs_op op = {0};
    submit_connect(fx, &op, fd, &a);
    run_until(fx, 1);
    assert_ptr_equal(fx->ev[0].op, &op);
    assert_int_equal(fx->ev[0].c.res, 0);
    assert_false(fx->ev[0].c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    /* The connection is real: bytes sent through the backend arrive. */
    struct pollfd p = {.fd = fx->lfd, .events = POLLIN};
    assert_int_equal(poll_again(&p, 1, KERNEL_WAIT_MS), 1);
    int peer = accept4(fx->lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);
    struct rs_op send_op = {0};
    rs_op_init(&send_op, RS_OP_SEND, fd, record_fn, fx);
    send_op.buf = "up";
    send_op.len = 2;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &send_op), 0);
    run_until(fx, 2);
    assert_int_equal(fx->ev[1].c.res, 2);
    char buf[2];
    assert_int_equal(recv_again(peer, buf, 2, MSG_WAITALL), 2);
    assert_memory_equal(buf, "up", 2);
    close(peer);
    close_plain(fx, fd);
    close_server(fx);
}

static void test_contract_connect_refused(void **state)
{
    struct fixture *fx = *state;
    /* A bound socket that does not listen: the port is ours, and refused. */
    int closed = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    assert_int_equal(bind(closed, (struct sockaddr *)&a, sizeof(a)), 0);
    a = loopback(rs_socket_port(closed));
    int fd = plain_socket();
    struct rs_op op = {0};
    submit_connect(fx, &op, fd, &a);
    run_until(fx, 1);
    assert_int_equal(fx->ev[0].c.res, -ECONNREFUSED);
    assert_false(fx->ev[0].c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    close(closed);
    close_plain(fx, fd);
    close_server(fx);
}

/* A listener whose accept queue is full drops SYNs: the connect hangs
 * (what a connect timeout is for). The core's timeout is a timer that
 * cancels the op: the cancel must end it exactly once. */
static void test_contract_connect_cancel(void **state)
{
    struct fixture *fx = *state;
    int full = rs_listen_socket("127.0.0.1", 0, false, false, 0);
    assert_true(full >= 0);
    struct sockaddr_in a = loopback(rs_socket_port(full));
    int fillers[2];
    for (int i = 0; i < 2; i++) {
        fillers[i] = plain_socket();
        int rc = connect(fillers[i], (struct sockaddr *)&a, sizeof(a));
        assert_true(rc == 0 || errno == EINPROGRESS);
        if (i == 0) { /* the first one is queued; wait for its handshake */
            struct pollfd p = {.fd = fillers[0], .events = POLLOUT};
            assert_int_equal(poll_again(&p, 1, KERNEL_WAIT_MS), 1);
        }
    }
    int fd = plain_socket();
    struct rs_op op = {0};
    submit_connect(fx, &op, fd, &a);
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 10);
    assert_int_equal(fx->nev, 0); /* still connecting */
    fx->loop.ops->cancel(&fx->loop, &op);
    assert_int_equal(fx->nev, 0); /* not from inside cancel() */
    run_until(fx, 1);
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 1);
    assert_int_equal(fx->nev, 1);
    assert_int_equal(fx->ev[0].c.res, -ECANCELED);
    assert_false(fx->ev[0].c.flags & RS_CF_MORE);
    close_plain(fx, fd);
    for (int i = 0; i < 2; i++)
        close(fillers[i]);
    close(full);
    close_server(fx);
}

/* ---- RS_OP_SOCKET (rule 9) ------------------------------------------ */

struct sock {
    int fd;
    bool direct;
};

/* Close a socket of either kind through the backend. */
static void close_sock(struct fixture *fx, struct sock k)
{
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_CLOSE, k.fd, record_fn, fx);
    op.flags = k.direct ? RS_OPF_DIRECT : 0;
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    run_until(fx, before + 1);
    assert_ptr_equal(fx->ev[before].op, &op);
    assert_int_equal(fx->ev[before].c.res, 0);
}

/* An RS_OP_SOCKET for family, flagged. */
static void socket_op_init(struct fixture *fx, struct rs_op *op, int family,
                           uint8_t flags)
{
    rs_op_init(op, RS_OP_SOCKET, -1, record_fn, fx);
    op->len = (uint32_t)family;
    op->flags = flags;
}

/* RS_OP_SOCKET with flags; the new socket, of the kind the backend says.
 * A direct one only where asked for and the backend declared it; a plain
 * one is non-blocking, close-on-exec, and has TCP_NODELAY if asked. */
static struct sock new_socket(struct fixture *fx, int family, uint8_t flags)
{
    assert_true(fx->loop.caps & RS_CAP_SOCKET);
    struct rs_op op = {0};
    socket_op_init(fx, &op, family, flags);
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    assert_int_equal(fx->nev, before); /* rule 1 */
    run_until(fx, before + 1);
    const struct record *r = &fx->ev[before];
    assert_ptr_equal(r->op, &op);
    assert_true(r->c.res >= 0);
    assert_false(r->c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    struct sock k = {.fd = r->c.res, .direct = (r->c.flags & RS_CF_DIRECT) != 0};
    bool want_direct =
        (flags & RS_OPF_DIRECT) && (fx->loop.caps & RS_CAP_SOCKET_DIRECT) != 0;
    assert_int_equal(k.direct, want_direct);
    if (!k.direct) {
        int v = 0;
        socklen_t len = sizeof(v);
        assert_int_equal(getsockopt(k.fd, IPPROTO_TCP, TCP_NODELAY, &v, &len), 0);
        assert_int_equal(v != 0, (flags & RS_OPF_NODELAY) != 0);
        assert_true(fcntl(k.fd, F_GETFL) & O_NONBLOCK);
        assert_true(fcntl(k.fd, F_GETFD) & FD_CLOEXEC);
        len = sizeof(v);
        assert_int_equal(getsockopt(k.fd, SOL_SOCKET, SO_DOMAIN, &v, &len), 0);
        assert_int_equal(v, family);
    }
    return k;
}

/* A socket that cannot have the TCP_NODELAY it was asked for (here: an
 * AF_UNIX stream socket, where no TCP option exists, the one way to make
 * the option fail on demand) is still delivered, as a plain fd (rule 9: a
 * direct socket is delivered only with its option), and the failure is
 * counted, never silent. */
static void test_contract_socket_nodelay_failure_counted(void **state)
{
    struct fixture *fx = *state;
    struct rs_op op = {0};
    socket_op_init(fx, &op, AF_UNIX, RS_OPF_DIRECT | RS_OPF_NODELAY);
    int saved = rs_log_level;
    rs_log_level = -1;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    run_until(fx, 1);
    rs_log_level = saved;
    assert_ptr_equal(fx->ev[0].op, &op);
    assert_true(fx->ev[0].c.res >= 0);
    struct sock k = {.fd = fx->ev[0].c.res,
                     .direct = (fx->ev[0].c.flags & RS_CF_DIRECT) != 0};
    if (k.direct)
        fail_msg("a direct socket without the TCP_NODELAY it was asked for");
    assert_int_equal(fx->loop.stats.nodelay_failed, 1);
    close_sock(fx, k);
    close_server(fx);
}

/* A socket made by the backend connects to a local listener and carries
 * bytes both ways; its close sends the FIN at once (the peer sees EOF). */
static void test_contract_socket_connects(void **state)
{
    struct fixture *fx = *state;
    struct sockaddr_in a = loopback(rs_socket_port(fx->lfd));
    struct sock k = new_socket(fx, AF_INET, RS_OPF_DIRECT | RS_OPF_NODELAY);
#if RS_HAVE_URING
    /* Where the kernel can, the default io_uring loop makes direct ones. */
    if (backend == &rs_backend_uring && strcmp(features, "default") == 0 &&
        (rs_uring_supported(rs_probe_uring_cached()) & UF_DIRECT_SOCKET))
        assert_true(k.direct);
#endif
    struct rs_op op = {0}, send_op = {0}, recv_op = {0};
    rs_op_init(&op, RS_OP_CONNECT, k.fd, record_fn, fx);
    op.buf = &a;
    op.len = sizeof(a);
    op.flags = k.direct ? RS_OPF_DIRECT : 0;
    int base = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    run_until(fx, base + 1);
    assert_int_equal(fx->ev[base].c.res, 0);
    struct pollfd p = {.fd = fx->lfd, .events = POLLIN};
    assert_int_equal(poll_again(&p, 1, KERNEL_WAIT_MS), 1);
    int peer = accept4(fx->lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(peer >= 0);
    rs_op_init(&send_op, RS_OP_SEND, k.fd, record_fn, fx);
    send_op.flags = op.flags;
    send_op.buf = "up";
    send_op.len = 2;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &send_op), 0);
    run_until(fx, base + 2);
    assert_ptr_equal(fx->ev[base + 1].op, &send_op);
    assert_int_equal(fx->ev[base + 1].c.res, 2);
    char buf[4];
    assert_int_equal(recv_again(peer, buf, 2, MSG_WAITALL), 2);
    assert_memory_equal(buf, "up", 2);
    rs_op_init(&recv_op, RS_OP_RECV, k.fd, record_fn, fx);
    recv_op.flags = op.flags; /* single shot: one completion */
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    assert_int_equal(send(peer, "down", 4, 0), 4);
    run_until(fx, base + 3);
    const struct record *r = &fx->ev[base + 2];
    assert_ptr_equal(r->op, &recv_op);
    assert_true(r->c.res > 0 && r->c.res <= 4);
    assert_true(r->c.flags & RS_CF_BUFFER);
    assert_memory_equal(bytes_of(fx, &r->c), "down", (size_t)r->c.res);
    assert_false(r->c.flags & RS_CF_MORE);
    fx->loop.ops->buf_release(&fx->loop, r->c.bid);
    close_sock(fx, k);
    /* The peer sees EOF now, not whenever the ring lets go of the file. */
    p = (struct pollfd){.fd = peer, .events = POLLIN};
    assert_int_equal(poll_again(&p, 1, KERNEL_WAIT_MS), 1);
    char rest[8];
    ssize_t n;
    while ((n = recv(peer, rest, sizeof(rest), MSG_DONTWAIT)) > 0) {
    }
    assert_int_equal(n, 0);
    close(peer);
    /* IPv6 sockets too (where the kernel has IPv6). */
    int v6 = socket(AF_INET6, SOCK_STREAM, 0);
    if (v6 >= 0) {
        close(v6);
        close_sock(fx, new_socket(fx, AF_INET6, RS_OPF_DIRECT));
    }
    /* Without RS_OPF_DIRECT it is a plain fd on every loop. */
    close_sock(fx, new_socket(fx, AF_INET, RS_OPF_NODELAY));
    close_sock(fx, new_socket(fx, AF_INET, 0));
    close_server(fx);
}

static void test_contract_socket_connect_refused(void **state)
{
    struct fixture *fx = *state;
    int closed = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback(0);
    assert_int_equal(bind(closed, (struct sockaddr *)&a, sizeof(a)), 0);
    a = loopback(rs_socket_port(closed));
    struct sock k = new_socket(fx, AF_INET, RS_OPF_DIRECT | RS_OPF_NODELAY);
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_CONNECT, k.fd, record_fn, fx);
    op.buf = &a;
    op.len = sizeof(a);
    op.flags = k.direct ? RS_OPF_DIRECT : 0;
    int base = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    run_until(fx, base + 1);
    assert_int_equal(fx->ev[base].c.res, -ECONNREFUSED);
    close(closed);
    close_sock(fx, k);
    close_server(fx);
}

/* A cancelled socket op completes once: -ECANCELED, or (it raced) the new
 * socket, which is then ours to close. A connect on a backend-made socket
 * to a listener that never accepts ends with its cancel. */
static void test_contract_socket_cancel(void **state)
{
    struct fixture *fx = *state;
    struct rs_op op = {0};
    socket_op_init(fx, &op, AF_INET, RS_OPF_DIRECT | RS_OPF_NODELAY);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    int rc = fx->loop.ops->cancel(&fx->loop, &op);
    assert_true(rc == 0 || rc == -ENOENT);
    assert_int_equal(fx->nev, 0);
    run_until(fx, 1);
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 1);
    assert_int_equal(fx->nev, 1);
    assert_false(fx->ev[0].c.flags & RS_CF_MORE);
    if (fx->ev[0].c.res != -ECANCELED) {
        assert_true(fx->ev[0].c.res >= 0);
        close_sock(fx, (struct sock){.fd = fx->ev[0].c.res,
                                     .direct = (fx->ev[0].c.flags & RS_CF_DIRECT) != 0});
    }
    fx->nev = 0;
    /* Backlog 0 and one queued connection: further SYNs are dropped. */
    int full = rs_listen_socket("127.0.0.1", 0, false, false, 0);
    assert_true(full >= 0);
    struct sockaddr_in a = loopback(rs_socket_port(full));
    int filler = plain_socket();
    int crc = connect(filler, (struct sockaddr *)&a, sizeof(a));
    assert_true(crc == 0 || errno == EINPROGRESS);
    struct pollfd p = {.fd = filler, .events = POLLOUT};
    assert_int_equal(poll_again(&p, 1, KERNEL_WAIT_MS), 1);
    struct sock k = new_socket(fx, AF_INET, RS_OPF_DIRECT | RS_OPF_NODELAY);
    struct rs_op c = {0};
    rs_op_init(&c, RS_OP_CONNECT, k.fd, record_fn, fx);
    c.buf = &a;
    c.len = sizeof(a);
    c.flags = k.direct ? RS_OPF_DIRECT : 0;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &c), 0);
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 10);
    assert_int_equal(fx->nev, 1); /* the socket op's only */
    assert_int_equal(fx->loop.ops->cancel(&fx->loop, &c), 0);
    run_until(fx, 2);
    assert_int_equal(fx->ev[1].c.res, -ECANCELED);
    close_sock(fx, k);
    close(filler);
    close(full);
    close_server(fx);
}

/* ---- file ops (rule 8) ---- */

#define FILE_LEN 100

static void write_file(int dirfd, const char *name, const void *p, size_t n, mode_t mode)
{
    int fd = openat(dirfd, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 + 3);
}

/* A scratch tree:
 *   a.txt (100 bytes)   secret (mode 0600)   sub/ (a directory)
 *   in -> a.txt         out -> /etc          up -> ..     */
static int setup_files(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (loop_setup(fx, 8) < 0) {
        free(fx);
        return -1;
    }
    /* Every backend here does file ops; io_uring on this kernel natively. */
    assert_true(fx->loop.caps & RS_CAP_FILE_OPS);
    if (backend == &rs_backend_epoll)
        assert_false(fx->loop.caps & RS_CAP_FILE_NATIVE);
    strcpy(fx->dir, "/tmp/rs-contract-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    chmod(fx->dir, 0755); /* searchable by the unprivileged child (EACCES) */
    fx->dirfd = open(fx->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(fx->dirfd >= 0);
    uint8_t data[FILE_LEN];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = pattern(i);
    write_file(fx->dirfd, "a.txt", data, sizeof(data), 0644);
    write_file(fx->dirfd, "secret", "s", 1, 0600);
    assert_int_equal(mkdirat(fx->dirfd, "sub", 0755), 0);
    assert_int_equal(symlinkat("a.txt", fx->dirfd, "in"), 0);
    assert_int_equal(symlinkat("/etc", fx->dirfd, "out"), 0);
    assert_int_equal(symlinkat("..", fx->dirfd, "up"), 0);
    fx->client = fx->lfd = -1;
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

static int teardown_files(void **state)
{
    struct fixture *fx = *state;
    close(fx->dirfd);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    assert_int_equal(fx->loop.pool.lent, 0);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

/* Submit one file op and wait for its one completion; returns res. */
static int32_t file_op(struct fixture *fx, struct rs_file_op *f)
{
    f->op.fn = record_fn;
    f->op.data = fx;
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &f->op), 0);
    assert_int_equal(fx->nev, before); /* rule 1: never from submit() */
    run_until(fx, before + 1);
    assert_int_equal(fx->nev, before + 1);
    assert_ptr_equal(fx->ev[before].op, &f->op);
    assert_false(fx->ev[before].c.flags & RS_CF_MORE);
    return fx->ev[before].c.res;
}

static int32_t open_at(struct fixture *fx, const char *path, uint64_t flags)
{
    struct rs_file_op f = {0};
    rs_file_op_init(&f, RS_OP_OPENAT, fx->dirfd, record_fn, fx);
    f.path = path;
    /* openat2 is strict: a mode without O_CREAT is -EINVAL. */
    f.how = (struct rs_open_how){.flags = flags | O_CLOEXEC,
                                 .mode = (flags & O_CREAT) ? 0644 : 0,
                                 .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    return file_op(fx, &f);
}

static int32_t read_at(struct fixture *fx, int fd, void *dst, uint32_t len, uint64_t off)
{
    struct rs_file_op f = {0};
    rs_file_op_init(&f, RS_OP_READ, fd, record_fn, fx);
    f.dst = dst;
    f.op.len = len;
    f.off = off;
    return file_op(fx, &f);
}

static void close_file(struct fixture *fx, int fd)
{
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_CLOSE, fd, record_fn, fx);
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    run_until(fx, before + 1);
    assert_int_equal(fx->ev[before].c.res, 0);
}

static void test_contract_file_read_short_at_eof(void **state)
{
    struct fixture *fx = *state;
    int fd = open_at(fx, "a.txt", O_RDONLY);
    assert_true(fd >= 0);
    uint8_t buf[4096];
    assert_int_equal(read_at(fx, fd, buf, 64, 0), 64);
    for (size_t i = 0; i < 64; i++)
        assert_int_equal(buf[i], pattern(i));
    /* Short at the end of the file, then 0: end of file is not an error. */
    assert_int_equal(read_at(fx, fd, buf, sizeof(buf), 60), FILE_LEN - 60);
    for (size_t i = 0; i < FILE_LEN - 60; i++)
        assert_int_equal(buf[i], pattern(60 + i));
    assert_int_equal(read_at(fx, fd, buf, sizeof(buf), FILE_LEN), 0);
    assert_int_equal(read_at(fx, fd, buf, sizeof(buf), 1u << 30), 0);
    /* statx of the descriptor itself. */
    struct statx stx;
    memset(&stx, 0, sizeof(stx));
    struct rs_file_op st = {0};
    rs_file_op_init(&st, RS_OP_STATX, fd, record_fn, fx);
    st.path = "";
    st.at_flags = AT_EMPTY_PATH;
    st.mask = STATX_SIZE | STATX_MODE | STATX_MTIME;
    st.stx = &stx;
    assert_int_equal(file_op(fx, &st), 0);
    assert_int_equal(stx.stx_size, FILE_LEN);
    assert_true(S_ISREG(stx.stx_mode));
    assert_true(stx.stx_mtime.tv_sec > 0);
    close_file(fx, fd);
    /* A closed descriptor: -EBADF. */
    assert_int_equal(read_at(fx, fd, buf, 1, 0), -EBADF);
}

static void test_contract_file_write_at_offset(void **state)
{
    struct fixture *fx = *state;
    int fd = open_at(fx, "log", O_RDWR | O_CREAT | O_EXCL);
    assert_true(fd >= 0);
    struct rs_file_op w = {0};
    rs_file_op_init(&w, RS_OP_WRITE, fd, record_fn, fx);
    w.op.buf = "hello";
    w.op.len = 5;
    w.off = 10;
    assert_int_equal(file_op(fx, &w), 5);
    char buf[32];
    assert_int_equal(read_at(fx, fd, buf, sizeof(buf), 0), 15);
    for (int i = 0; i < 10; i++)
        assert_int_equal(buf[i], 0); /* the hole reads as zeros */
    assert_memory_equal(buf + 10, "hello", 5);
    close_file(fx, fd);
    /* O_EXCL on an existing file. */
    assert_int_equal(open_at(fx, "log", O_RDWR | O_CREAT | O_EXCL), -EEXIST);
}

static int32_t fsync_fd(struct fixture *fx, int fd, uint32_t how)
{
    struct rs_file_op f = {0};
    rs_file_op_init(&f, RS_OP_FSYNC, fd, record_fn, fx);
    f.op.len = how;
    return file_op(fx, &f);
}

/* RS_OP_FSYNC (and its fdatasync form) after a write: 0; on a closed
 * descriptor: -EBADF, from run() like every result. Then a plain
 * RS_OP_CLOSE of the file, and the data is there for a fresh reader. */
static void test_contract_file_fsync_and_close(void **state)
{
    struct fixture *fx = *state;
    int fd = open_at(fx, "synced", O_WRONLY | O_CREAT | O_EXCL);
    assert_true(fd >= 0);
    struct rs_file_op w = {0};
    rs_file_op_init(&w, RS_OP_WRITE, fd, record_fn, fx);
    w.op.buf = "durable";
    w.op.len = 7;
    assert_int_equal(file_op(fx, &w), 7);
    assert_int_equal(fsync_fd(fx, fd, 0), 0);
    assert_int_equal(fsync_fd(fx, fd, RS_FSYNC_DATA), 0);
    close_file(fx, fd);
    assert_int_equal(fsync_fd(fx, fd, 0), -EBADF);
    int rfd = open_at(fx, "synced", O_RDONLY);
    assert_true(rfd >= 0);
    char buf[16];
    assert_int_equal(read_at(fx, rfd, buf, sizeof(buf), 0), 7);
    assert_memory_equal(buf, "durable", 7);
    close_file(fx, rfd);
}

/* An op re-initialised for its next use keeps counting generations: a
 * backend bumps bk_gen on every submit and drops completions of an older
 * one, which only works if rs_op_init does not start each use afresh. */
static void test_contract_op_init_keeps_generation(void **state)
{
    struct fixture *fx = *state;
    int fd = open_at(fx, "a.txt", O_RDONLY);
    assert_true(fd >= 0);
    struct rs_file_op f = {0};
    uint8_t seen[4];
    char buf[8];
    for (int i = 0; i < 4; i++) {
        rs_file_op_init(&f, RS_OP_READ, fd, record_fn, fx);
        f.dst = buf;
        f.op.len = sizeof(buf);
        assert_int_equal(file_op(fx, &f), (int32_t)sizeof(buf));
        seen[i] = f.op.bk_gen;
    }
    /* Backends that use generations give each use a new one; those that
     * do not (epoll delivers file ops from its own list) leave it alone. */
    if (seen[0] != 0 || seen[1] != 0) {
        for (int i = 1; i < 4; i++)
            assert_int_not_equal(seen[i], seen[i - 1]);
        assert_int_not_equal(seen[3], seen[0]);
    }
    close_file(fx, fd);
}

static void test_contract_file_errors(void **state)
{
    struct fixture *fx = *state;
    assert_int_equal(open_at(fx, "missing", O_RDONLY), -ENOENT);
    assert_int_equal(open_at(fx, "a.txt/x", O_RDONLY), -ENOTDIR);
    assert_int_equal(open_at(fx, "sub", O_WRONLY), -EISDIR);
    /* A directory opens for reading, but reading it is -EISDIR. */
    int fd = open_at(fx, "sub", O_RDONLY);
    assert_true(fd >= 0);
    char buf[16];
    assert_int_equal(read_at(fx, fd, buf, sizeof(buf), 0), -EISDIR);
    close_file(fx, fd);
    struct statx stx;
    struct rs_file_op st = {0};
    rs_file_op_init(&st, RS_OP_STATX, fx->dirfd, record_fn, fx);
    st.path = "missing";
    st.mask = STATX_SIZE;
    st.stx = &stx;
    assert_int_equal(file_op(fx, &st), -ENOENT);
}

/* kernel.io_uring_disabled=1: only root (or a set group) may create rings. */
static bool uring_forbidden_to_users(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    int v = 0;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return backend == &rs_backend_uring && v == 1;
}

/* EACCES needs an unprivileged caller: as root, a child drops to nobody
 * and runs the op on a loop of its own. Any failure to get there is a
 * failure, except a ring refused to users by the io_uring_disabled sysctl
 * (a skip the summary checks against the probe). */
static void test_contract_file_eacces(void **state)
{
    struct fixture *fx = *state;
    if (geteuid() != 0) {
        assert_int_equal(open_at(fx, "secret", O_RDONLY), -EACCES);
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
            _exit(5);
        struct fixture child;
        memset(&child, 0, sizeof(child));
        child.dirfd = fx->dirfd;
        if (loop_setup(&child, 8) < 0)
            _exit(uring_forbidden_to_users() ? 77 : 6);
        struct rs_file_op f;
        memset(&f, 0, sizeof(f)); /* init keeps the generation found there */
        rs_file_op_init(&f, RS_OP_OPENAT, child.dirfd, record_fn, &child);
        f.path = "secret";
        f.how = (struct rs_open_how){.flags = O_RDONLY | O_CLOEXEC,
                                     .resolve = RESOLVE_BENEATH};
        if (child.loop.ops->submit(&child.loop, &f.op) < 0)
            _exit(3);
        for (int i = 0; i < 2000 && child.nev < 1; i++)
            child.loop.ops->run(&child.loop, 10);
        int res = child.nev == 1 ? child.ev[0].c.res : 1;
        rs_loop_fini(&child.loop);
        _exit(res == -EACCES ? 0 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        rs_skip_reason("io_uring forbidden to unprivileged users (io_uring_disabled=1)");
        skip();
    }
    /* 5: could not drop to nobody; 6: no loop as nobody; 3, 4: the op */
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Whether this process can call openat2 (valgrind, for one, cannot: then
 * the epoll backend's stricter fallback runs). */
static bool have_openat2(void)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC};
    int fd = (int)syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));
    if (fd >= 0)
        close(fd);
    return fd >= 0 || errno != ENOSYS;
}

/* RESOLVE_BENEATH: nothing outside the directory, whatever the path. */
static void test_contract_file_escape_refused(void **state)
{
    struct fixture *fx = *state;
    bool fallback = !have_openat2() && backend == &rs_backend_epoll;
    const char *escapes[] = {"../etc/passwd", "/etc/passwd",          "out/passwd",
                             "up/etc/passwd", "sub/../../etc/passwd", "up"};
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        int32_t res = open_at(fx, escapes[i], O_RDONLY);
        if (res >= 0)
            fail_msg("'%s' opened outside the directory", escapes[i]);
        /* The fallback refuses links as links (-ELOOP). */
        if (!(fallback && res == -ELOOP))
            assert_int_equal(res, -EXDEV);
    }
    /* A link that stays inside is fine, except for the fallback, which
     * refuses every link. */
    int fd = open_at(fx, "in", O_RDONLY);
    if (fallback) {
        assert_int_equal(fd, -ELOOP);
        return;
    }
    assert_true(fd >= 0);
    close_file(fx, fd);
}

static void test_contract_file_read_into_pool_buffer(void **state)
{
    struct fixture *fx = *state;
    int fd = open_at(fx, "a.txt", O_RDONLY);
    assert_true(fd >= 0);
    struct rs_file_op f = {0};
    rs_file_op_init(&f, RS_OP_READ, fd, record_fn, fx);
    f.op.flags = RS_OPF_POOL_BUF;
    f.op.len = 0; /* a whole buffer */
    f.off = 10;
    assert_int_equal(file_op(fx, &f), FILE_LEN - 10);
    /* The caller's op.len is the caller's: no backend rewrites it. */
    assert_int_equal(f.op.len, 0);
    struct rs_completion *c = &fx->ev[fx->nev - 1].c;
    assert_true(c->flags & RS_CF_BUFFER);
    assert_int_equal(fx->loop.pool.lent, 1);
    const uint8_t *p = bytes_of(fx, c);
    for (size_t i = 0; i < FILE_LEN - 10; i++)
        assert_int_equal(p[i], pattern(10 + i));
    fx->loop.ops->buf_release(&fx->loop, c->bid);
    /* More than a buffer asked: capped at one, op.len left alone. */
    rs_file_op_init(&f, RS_OP_READ, fd, record_fn, fx);
    f.op.flags = RS_OPF_POOL_BUF;
    f.op.len = 1u << 20;
    f.off = 0;
    assert_int_equal(file_op(fx, &f), FILE_LEN);
    assert_int_equal(f.op.len, 1u << 20);
    fx->loop.ops->buf_release(&fx->loop, fx->ev[fx->nev - 1].c.bid);
    /* At end of file: res 0 and no buffer (rule 3). */
    rs_file_op_init(&f, RS_OP_READ, fd, record_fn, fx);
    f.op.flags = RS_OPF_POOL_BUF;
    f.off = FILE_LEN;
    assert_int_equal(file_op(fx, &f), 0);
    assert_false(fx->ev[fx->nev - 1].c.flags & RS_CF_BUFFER);
    assert_int_equal(fx->loop.pool.lent, 0);
    close_file(fx, fd);
}

/* A backend that runs file calls on worker threads (epoll's pool) stops
 * with calls still queued: each completes once anyway (rule 5), with
 * -ECANCELED if no worker started it, so its owner can free what it
 * holds. (The pool dropped them.) More opens of a FIFO than there are
 * workers: an open for reading blocks until a writer comes, so the workers
 * block in theirs and the rest wait in the queue; the first cancelled
 * completion opens the FIFO for writing, which ends the blocked opens, so
 * the workers can be joined. */
static char stop_fifo[96];
static int stop_writer = -1;
static int stop_seen[16];
static int stop_fds[16];

static void stop_unblock(void)
{
    if (stop_writer < 0)
        stop_writer = open(stop_fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
}

static void stop_fn(struct rs_loop *loop, struct rs_op *op, const struct rs_completion *c)
{
    (void)loop;
    int i = (int)(intptr_t)op->data;
    stop_seen[i]++;
    stop_fds[i] = c->res;
    if (c->res < 0 && c->res != -ECANCELED)
        fail_msg("open %d at stop: %s", i, strerror(-c->res));
    if (c->res == -ECANCELED)
        stop_unblock();
}

static void stop_alarm(int sig)
{
    (void)sig;
    stop_unblock(); /* the old pool: nothing completed, nobody unblocked it */
}

static void test_contract_file_ops_complete_at_stop(void **state)
{
    (void)state;
    if (backend != &rs_backend_epoll || strcmp(mode_name, "epoll-inline") == 0) {
        /* No worker pool: nothing can be queued at stop (io_uring's kernel
         * owns its file ops; inline ones are done at submit). Not a skip:
         * there is nothing here to find. */
        print_message("%s: no file ops can wait in a queue here\n", mode_name);
        return;
    }
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_int_equal(loop_setup(fx, 64), 0);
    char dir[] = "/tmp/rs_stop_XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(stop_fifo, sizeof(stop_fifo), "%s/fifo", dir);
    assert_int_equal(mkfifo(stop_fifo, 0600), 0);
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dirfd >= 0);
    stop_writer = -1;
    const char *workers = rs_config_option(&fx->cfg, "fs-threads"); /* epoll's pool */
    int n = (workers ? atoi(workers) : 4) + 2;
    assert_true(n <= 16);
    static struct rs_file_op ops[16];
    memset(stop_seen, 0, sizeof(stop_seen));
    for (int i = 0; i < n; i++) {
        rs_file_op_init(&ops[i], RS_OP_OPENAT, dirfd, stop_fn, (void *)(intptr_t)i);
        ops[i].path = "fifo";
        ops[i].how = (struct rs_open_how){.flags = O_RDONLY | O_CLOEXEC};
        assert_int_equal(fx->loop.ops->submit(&fx->loop, &ops[i].op), 0);
    }
    signal(SIGALRM, stop_alarm);
    alarm(20); /* fires only if the pool drops what was queued */
    rs_loop_fini(&fx->loop);
    alarm(0);
    int cancelled = 0;
    for (int i = 0; i < n; i++) {
        if (stop_seen[i] != 1)
            fail_msg("open %d of %d completed %d times at stop", i, n, stop_seen[i]);
        if (stop_fds[i] >= 0)
            close(stop_fds[i]);
        else
            cancelled++;
    }
    assert_true(cancelled >= 2); /* at most fs-threads can have run */
    if (stop_writer >= 0)
        close(stop_writer);
    close(dirfd);
    unlink(stop_fifo);
    rmdir(dir);
    free(fx);
}

/* Many reads in flight at once (the worker pool's queue), one cancelled:
 * each completes exactly once, the cancelled one with -ECANCELED or its
 * natural result. */
static void test_contract_file_many_in_flight(void **state)
{
    struct fixture *fx = *state;
    int fd = open_at(fx, "a.txt", O_RDONLY);
    assert_true(fd >= 0);
    enum { N = 32 };
    static struct rs_file_op ops[N];
    static uint8_t bufs[N][8];
    int base = fx->nev;
    for (int i = 0; i < N; i++) {
        rs_file_op_init(&ops[i], RS_OP_READ, fd, record_fn, fx);
        ops[i].dst = bufs[i];
        ops[i].op.len = 8;
        ops[i].off = (uint64_t)i;
        assert_int_equal(fx->loop.ops->submit(&fx->loop, &ops[i].op), 0);
    }
    fx->loop.ops->cancel(&fx->loop, &ops[N - 1].op);
    assert_int_equal(fx->nev, base);
    run_until(fx, base + N);
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 1);
    assert_int_equal(fx->nev, base + N);
    int seen[N] = {0};
    for (int e = base; e < base + N; e++) {
        int i = (int)(rs_file_op_of(fx->ev[e].op) - ops);
        assert_true(i >= 0 && i < N);
        seen[i]++;
        int32_t res = fx->ev[e].c.res;
        if (i == N - 1 && res == -ECANCELED)
            continue;
        assert_int_equal(res, 8);
        for (int k = 0; k < 8; k++)
            assert_int_equal(bufs[i][k], pattern((size_t)(i + k)));
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    close_file(fx, fd);
}

/* The ring's own size, for the burst test: a small SQ, so that the CQ a
 * resizing ring starts with (twice the SQ plus room for one pass of
 * deferred work) is smaller than the burst. Other backends ignore it. */
static int setup_small_ring(void **state)
{
    small_ring = true;
    int rc = setup(state);
    small_ring = false;
    return rc;
}

/* More completions at once than a small ring's completion queue starts
 * with: 200 one-byte sends queued before run(), each done at once by the
 * kernel (the socket has room), so all 200 results wait in the CQ for the
 * next run(). Every send completes exactly once with its byte, and the
 * bytes reach the peer in order. On io_uring with the resize feature the CQ
 * grows before it would overflow: cq_resizes counts it and cq_overflows
 * stays 0 (a ring whose CQ cannot grow may overflow: the kernel then
 * keeps the extra completions aside, nothing is lost either). */
static void test_contract_cq_burst(void **state)
{
    struct fixture *fx = *state;
    enum { N = 200 };
    static struct rs_op ops[N];
    static char bytes[N];
    for (int i = 0; i < N; i++) {
        bytes[i] = (char)('a' + i % 26);
        server_op(fx, &ops[i], RS_OP_SEND);
        ops[i].buf = &bytes[i];
        ops[i].len = 1;
        assert_int_equal(fx->loop.ops->submit(&fx->loop, &ops[i]), 0);
    }
    run_until(fx, N);
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 1);
    assert_int_equal(fx->nev, N);
    int seen[N] = {0};
    for (int e = 0; e < N; e++) {
        ptrdiff_t i = fx->ev[e].op - ops;
        assert_true(i >= 0 && i < N);
        seen[i]++;
        assert_int_equal(fx->ev[e].c.res, 1);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    char got[N];
    size_t have = 0;
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fx->client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (have < N) {
        ssize_t r = recv_again(fx->client, got + have, N - have, 0);
        assert_true(r > 0);
        have += (size_t)r;
    }
    assert_memory_equal(got, bytes, N);
    print_message("cq_overflows=%llu cq_resizes=%llu\n",
                  (unsigned long long)fx->loop.stats.cq_overflows,
                  (unsigned long long)fx->loop.stats.cq_resizes);
    if (resize_on()) {
        assert_int_equal(fx->loop.stats.cq_overflows, 0);
        assert_true(fx->loop.stats.cq_resizes > 0);
    }
    close_server(fx);
}

static void check_usable(struct fixture *fx);

/* Returning a buffer twice, or one that does not exist, would hand one
 * buffer to two owners (or write outside the pool): every backend refuses
 * it with a check that stays in release builds (not an assert), counts it,
 * and goes on working. */
static void test_contract_double_release_refused(void **state)
{
    struct fixture *fx = *state;
    struct rs_op recv_op = {0};
    server_op(fx, &recv_op, RS_OP_RECV);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    assert_int_equal(send(fx->client, "abc", 3, 0), 3);
    run_until(fx, 1);
    assert_true(fx->ev[0].c.flags & RS_CF_BUFFER);
    uint16_t bid = fx->ev[0].c.bid;
    int saved = rs_log_level;
    rs_log_level = -1;
    fx->loop.ops->buf_release(&fx->loop, bid);
    assert_int_equal(fx->loop.pool.lent, 0);
    assert_int_equal(fx->loop.pool.violations, 0);
    fx->loop.ops->buf_release(&fx->loop, bid);                           /* again */
    fx->loop.ops->buf_release(&fx->loop, (uint16_t)fx->loop.pool.count); /* none such */
    rs_log_level = saved;
    assert_int_equal(fx->loop.pool.lent, 0);
    assert_int_equal(fx->loop.pool.violations, 2);
    fx->nev = 0; /* the recv was single-shot: it is over */
    check_usable(fx);
    close_server(fx);
}

/* Does any recorded completion belong to op? */
static bool completed(const struct fixture *fx, const struct rs_op *op)
{
    for (int i = 0; i < fx->nev; i++)
        if (fx->ev[i].op == op)
            return true;
    return false;
}

/* One single-shot recv through the backend, with recv_op: it still works. */
static void check_usable_with(struct fixture *fx, struct rs_op *recv_op)
{
    server_op(fx, recv_op, RS_OP_RECV);
    int before = fx->nev;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, recv_op), 0);
    assert_int_equal(send(fx->client, "ok", 2, 0), 2);
    run_until(fx, before + 1);
    struct rs_completion *c = &fx->ev[before].c;
    assert_ptr_equal(fx->ev[before].op, recv_op);
    assert_int_equal(c->res, 2);
    assert_true(c->flags & RS_CF_BUFFER);
    assert_memory_equal(bytes_of(fx, c), "ok", 2);
    fx->loop.ops->buf_release(&fx->loop, c->bid);
}

static void check_usable(struct fixture *fx)
{
    struct rs_op recv_op = {0};
    check_usable_with(fx, &recv_op);
}

static void settle(struct fixture *fx)
{
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 1);
}

/* submit() may refuse (rc < 0): then the op was not taken, nothing ever
 * completes for it, and the backend carries on. An op kind it does not
 * know must be refused; a recv on a descriptor that is no socket may be
 * refused or complete once with -errno. */
static void test_contract_refused_submit_leaves_no_trace(void **state)
{
    struct fixture *fx = *state;
    struct rs_op bogus = {0};
    server_op(fx, &bogus, 200);
    assert_true(fx->loop.ops->submit(&fx->loop, &bogus) < 0);
    int devnull = -1, bad;
    if (fx->loop.caps & RS_CAP_DIRECT_FD) {
        bad = (int)fx->loop.fd_cap + 10; /* no such slot */
    } else {
        devnull = open("/dev/null", O_RDONLY);
        assert_true(devnull >= 0);
        bad = devnull;
    }
    struct rs_op recv_op = {0};
    rs_op_init(&recv_op, RS_OP_RECV, bad, record_fn, fx);
    if (devnull < 0)
        recv_op.flags |= RS_OPF_DIRECT;
    int rc = fx->loop.ops->submit(&fx->loop, &recv_op);
    if (rc == 0) {
        run_until(fx, 1);
        assert_ptr_equal(fx->ev[0].op, &recv_op);
        assert_true(fx->ev[0].c.res < 0);
        assert_false(fx->ev[0].c.flags & (RS_CF_MORE | RS_CF_BUFFER));
    }
    int n = fx->nev;
    settle(fx);
    assert_int_equal(fx->nev, n);
    assert_false(completed(fx, &bogus));
    if (devnull >= 0)
        close(devnull);
    check_usable(fx);
    close_server(fx);
}

/* cancel() of an op that is not in flight (never submitted, or already
 * finished) returns 0 or -ENOENT, delivers nothing for it, and the backend
 * carries on. */
static void test_contract_cancel_not_in_flight(void **state)
{
    struct fixture *fx = *state;
    struct rs_op never = {0};
    server_op(fx, &never, RS_OP_RECV);
    int rc = fx->loop.ops->cancel(&fx->loop, &never);
    assert_true(rc == 0 || rc == -ENOENT);
    settle(fx);
    assert_false(completed(fx, &never));
    struct rs_op done = {0};
    check_usable_with(fx, &done); /* a single-shot recv: finished now */
    int n = fx->nev;
    rc = fx->loop.ops->cancel(&fx->loop, &done);
    assert_true(rc == 0 || rc == -ENOENT);
    settle(fx);
    assert_int_equal(fx->nev, n);
    check_usable(fx);
    close_server(fx);
}

/* The io_uring features this run's loops use, or 0 on epoll (and without
 * liburing). */
static uint32_t uring_features_used(void)
{
#if RS_HAVE_URING
    uint32_t f = 0;
    char err[256];
    if (backend == &rs_backend_uring &&
        rs_uring_features_parse(features ? features : "default",
                                rs_uring_supported(rs_probe_uring_cached()), &f, err,
                                sizeof(err)) == 0)
        return f;
#endif
    return 0;
}

/* The lowest free descriptor number. A soft RLIMIT_NOFILE there leaves no
 * number for a new descriptor: every one below is taken. (A count of
 * /proc/self/fd would not do under valgrind, whose own descriptors sit
 * above the program's limit.) */
static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

/* Rule 10 with the process out of descriptors (its soft RLIMIT_NOFILE at
 * its lowest free descriptor number): sendfile(2) needs none; io_uring's splice needs a
 * pipe, which direct-pipe makes in the ring's table (IORING_OP_PIPE) when pipe2(2) fails.
 * Without direct-pipe the op fails cleanly with -EMFILE at submit, nothing sent. Either
 * way the loop carries on. */
static void test_contract_sendfile_out_of_descriptors(void **state)
{
    struct fixture *fx = *state;
    bool needs_pipe = backend == &rs_backend_uring;
    bool direct_pipe = uring_features_used() & UF_DIRECT_PIPE;
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = {.rlim_cur = (rlim_t)lowest_free_fd(), .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fds[2];
    assert_int_equal(pipe(fds), -1); /* really out of descriptors */
    assert_int_equal(errno, EMFILE);
    if (needs_pipe && !direct_pipe) {
        struct rs_op op = {0};
        server_op(fx, &op, RS_OP_SENDFILE);
        struct rs_sendfile src = {.file_fd = fx->dirfd, .off = 0};
        op.buf = &src;
        op.len = SF_LEN;
        int rc = fx->loop.ops->submit(&fx->loop, &op);
        if (rc != 0) {
            assert_int_equal(rc, -EMFILE); /* no pipe to be had */
        } else {
            /* A cached range the loop sends itself (io_uring's sendfile(2)
             * from the loop) needs no pipe: to a plain socket it goes out
             * (all of it, or, the op ending early at a full socket, its
             * first MiB or more); a direct one needs a process fd for it,
             * and fails. */
            uint64_t at = 0;
            int32_t res = sf_wait(fx, &op, true, &at);
            if (fx->server_direct) {
                assert_int_equal(res, -EMFILE);
            } else {
                assert_true(res >= (int32_t)(1u << 20) && res <= (int32_t)SF_LEN);
                sf_read_to(fx, &at, (uint64_t)res);
            }
        }
    } else {
        /* Cancelled at once (io_uring: while its direct pipe is being
         * made): it still completes once, and whatever went out is
         * counted. */
        uint64_t at = 0;
        struct rs_op op = {0};
        struct rs_sendfile src;
        sf_submit(fx, &op, &src, 0, SF_LEN);
        int rc = fx->loop.ops->cancel(&fx->loop, &op);
        assert_true(rc == 0 || rc == -ENOENT); /* -ENOENT: its result is queued */
        int32_t res = sf_wait(fx, &op, true, &at);
        assert_true(res == -ECANCELED || res > 0);
        uint64_t sent = res > 0 ? (uint64_t)res : 0;
        sf_read_to(fx, &at, sent);
        uint64_t rest = sf_send_range(fx, sent, SF_LEN - sent);
        assert_int_equal(sent + rest, SF_LEN);
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* And again with descriptors to spare: a direct pipe kept in the
     * cache, or a new plain one. */
    uint64_t again = sf_send_range(fx, 0, SF_LEN);
    assert_int_equal(again, SF_LEN);
    close_server(fx);
}

/* The process's descriptors below lowest_free_fd() that are the accepted
 * connection's socket (its peer is the client): its own, when plain, and
 * any the backend keeps for it. */
static int connection_fds(struct fixture *fx)
{
    struct sockaddr_storage me, peer;
    socklen_t len = sizeof(me);
    assert_int_equal(getsockname(fx->client, (struct sockaddr *)&me, &len), 0);
    int n = 0, top = lowest_free_fd();
    for (int fd = 0; fd < top; fd++) {
        socklen_t plen = sizeof(peer);
        if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0 && plen == len &&
            memcmp(&peer, &me, len) == 0 && fd != fx->client)
            n++;
    }
    return n;
}

/* One op that makes a process descriptor, with the process at its soft
 * RLIMIT_NOFILE (every number below it taken): kind 0 an RS_OP_OPENAT of
 * /dev/null, kind 1 a plain RS_OP_SOCKET, kind 2 the core's own dup(2)
 * (rs_loop_dup_fd, which asks the backend's give_back_fds). Its result. */
static int32_t new_fd_at_limit(struct fixture *fx, int kind, int dev)
{
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = {.rlim_cur = (rlim_t)lowest_free_fd(), .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int32_t res;
    if (kind == 0) {
        struct rs_file_op f = {0};
        rs_file_op_init(&f, RS_OP_OPENAT, dev, record_fn, fx);
        f.path = "null";
        f.how = (struct rs_open_how){.flags = O_RDONLY | O_CLOEXEC};
        res = file_op(fx, &f);
    } else if (kind == 2) {
        res = rs_loop_dup_fd(&fx->loop, dev);
    } else {
        struct rs_op op = {0};
        socket_op_init(fx, &op, AF_INET, 0); /* no RS_OPF_DIRECT: socket(2) */
        int before = fx->nev;
        assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
        run_until(fx, before + 1);
        assert_ptr_equal(fx->ev[before].op, &op);
        res = fx->ev[before].c.res;
    }
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    return res;
}

/* A backend may keep a process fd of a socket it sent a file to, for the
 * connection's next file (io_uring, for a direct socket: the installed
 * fd, up to 16 per loop, idle keep-alive connections' too). With the
 * process at its descriptor limit, such fds must not be what makes an
 * open fail (rule 12): the backend gives them back and the open (or
 * socket) succeeds; so does a dup(2) of the core's, which asks for them
 * (give_back_fds, through rs_loop_dup_fd); the connection then carries
 * its next file in order. A backend that keeps none (epoll, io_uring
 * without direct sockets) has nothing to give back, and the op fails
 * cleanly with -EMFILE. Before, io_uring failed the op with -EMFILE
 * while holding the fd, and the core's dup had no way to ask. */
static void test_contract_held_fds_given_back_at_limit(void **state)
{
    struct fixture *fx = *state;
    int own = fx->server_direct ? 0 : 1;
    int dev = open("/dev", O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(dev >= 0);
    uint64_t at = 0;
    for (int kind = 0; kind < 3; kind++, at += 65536) {
        assert_int_equal(sf_send_range(fx, at, 65536), 65536);
        int held = connection_fds(fx) - own;
        assert_true(held == 0 || held == 1);
        /* io_uring holds it wherever it can install one (Linux 6.8). */
        if (backend != &rs_backend_epoll && fx->server_direct && kernel_at_least(6, 8))
            assert_int_equal(held, 1);
        if (kind == 1 && !(fx->loop.caps & RS_CAP_SOCKET))
            continue;
        if (kind == 2) {
            /* Only out of descriptors: any other failure keeps the hold. */
            assert_false(rs_loop_give_back_fds(&fx->loop, -EBADF));
            assert_false(rs_loop_give_back_fds(&fx->loop, 0));
            assert_int_equal(connection_fds(fx) - own, held);
        }
        int32_t res = new_fd_at_limit(fx, kind, dev);
        if (held) {
            assert_true(res >= 0);
            close(res);
            assert_int_equal(connection_fds(fx), own); /* given back */
        } else {
            assert_int_equal(res, -EMFILE);
        }
    }
    assert_int_equal(sf_send_range(fx, at, 65536), 65536);
    close(dev);
    close_server(fx);
}

/* The backend's listen hook (RS_CAP_LISTEN_DIRECT, io_uring's
 * direct-listen): a listener that is a direct descriptor, at a port a
 * plain socket of ours holds (bound, not listening), accepts a
 * connection (RS_OPF_DIRECT on the accept), and is closed by an op; then
 * nothing listens there. A backend without the capability never gets
 * here with direct-listen asked for. */
static void test_contract_listen_direct(void **state)
{
    struct fixture *fx = *state;
    bool asked = uring_features_used() & UF_DIRECT_LISTEN;
    assert_int_equal((fx->loop.caps & RS_CAP_LISTEN_DIRECT) != 0, asked);
    if (!asked) {
        assert_true(!fx->loop.ops->listen ||
                    fx->loop.ops->listen(&fx->loop, NULL, 0, 0, 1) == -EOPNOTSUPP);
        close_server(fx);
        return;
    }
    int holder = rs_listen_socket("127.0.0.1", 0, false, false, -1);
    assert_true(holder >= 0);
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    assert_int_equal(getsockname(holder, (struct sockaddr *)&a, &alen), 0);
    int slot = fx->loop.ops->listen(&fx->loop, (struct sockaddr *)&a, alen,
                                    RS_LISTEN_NODELAY, 8);
    assert_true(slot >= 0);
    int before = fx->nev;
    struct rs_op acc = {0};
    rs_op_init(&acc, RS_OP_ACCEPT, slot, record_fn, fx);
    acc.flags = RS_OPF_DIRECT;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &acc), 0);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    run_until(fx, before + 1);
    assert_ptr_equal(fx->ev[before].op, &acc);
    assert_true(fx->ev[before].c.res >= 0);
    assert_true(fx->ev[before].c.flags & RS_CF_DIRECT);
    struct rs_op cl = {0};
    rs_op_init(&cl, RS_OP_CLOSE, fx->ev[before].c.res, record_fn, fx);
    cl.flags = RS_OPF_DIRECT;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &cl), 0);
    run_until(fx, before + 2);
    assert_int_equal(fx->ev[before + 1].c.res, 0);
    struct rs_op lcl = {0};
    rs_op_init(&lcl, RS_OP_CLOSE, slot, record_fn, fx);
    lcl.flags = RS_OPF_DIRECT;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &lcl), 0);
    run_until(fx, before + 3);
    assert_int_equal(fx->ev[before + 2].c.res, 0);
    close(c);
    c = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), -1);
    assert_int_equal(errno, ECONNREFUSED);
    close(c);
    close(holder);
    close_server(fx);
}

/* May this backend, with these arguments, run on this kernel? 0: yes; 77
 * with the reason printed: the probe says the kernel (or the build) lacks
 * it; 1: the arguments are wrong. */
static int available(void)
{
    if (!backend->init) {
        rs_skip_reason("io_uring unavailable: support not compiled in");
        return 77;
    }
    if (backend == &rs_backend_epoll)
        return 0;
#if RS_HAVE_URING
    const struct rs_uring_support *sup = rs_probe_uring_cached();
    if (!sup->available) {
        rs_skip_reason("io_uring unavailable: %s", sup->why);
        return 77;
    }
    uint32_t f;
    char err[256];
    if (rs_uring_features_parse(features, UF_ALL, &f, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (rs_uring_features_parse(features, rs_uring_supported(sup), &f, err, sizeof(err)) <
        0) {
        if (rs_skip_reason_for(err))
            return 77;
        fprintf(stderr, "%s\n", err);
        return 1;
    }
#endif
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s epoll-et|epoll-lt|uring [FEATURES]\n", argv[0]);
        return 2;
    }
    mode_name = argv[1];
    /* sendfile(2) cannot be told MSG_NOSIGNAL: a reset peer raises SIGPIPE
     * (the program ignores it, core/main.c). */
    signal(SIGPIPE, SIG_IGN);
    backend = strncmp(mode_name, "epoll", 5) == 0 ? &rs_backend_epoll : &rs_backend_uring;
    if (argc > 2)
        features = argv[2];
    int avail = available();
    if (avail != 0)
        return avail;
    /* The probe says it can run here: failing to start now is a failure. */
    struct fixture probe;
    config_for_mode(&probe.cfg);
    char err[256] = "";
    if (rs_loop_init(&probe.loop, backend, &probe.cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "FAIL: %s cannot start although the probe says it can: %s\n",
                mode_name, err);
        return 1;
    }
    rs_loop_fini(&probe.loop);
    /* One test, or a few, many times over (a flaky one under load, or in
     * a guest: tools/kernels --extra): a glob of test names. */
    const char *only = getenv("RS_CONTRACT_FILTER");
    if (only)
        cmocka_set_test_filter(only);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_contract_no_completion_inside_submit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_full, setup_sendfile,
                                        teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_plain_fd_same_number,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_offset, setup_sendfile,
                                        teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_short_at_eof,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_peer_closed,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_full_socket_then_drained,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_cancel, setup_sendfile,
                                        teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_cold, setup_sendfile,
                                        teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_cached_checks,
                                        setup_sendfile_small_sndbuf, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_progress_each_mib,
                                        setup_sendfile_small_sndbuf, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_after_send_more,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_cold_cancel,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_room_during_cold_read,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_sendfile_out_of_descriptors,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_held_fds_given_back_at_limit,
                                        setup_sendfile, teardown_sendfile),
        cmocka_unit_test_setup_teardown(test_contract_listen_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_multishot_recv_lends_buffers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_recv_slices_in_order,
                                        setup_four_buffers, teardown),
        cmocka_unit_test_setup_teardown(test_contract_multishot_recv_eof_behind_data,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_cancel_completes_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_errors_are_negative_errno, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_enobufs_is_a_state,
                                        setup_one_buffer, teardown),
        cmocka_unit_test_setup_teardown(test_contract_vectored_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_close_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_cq_burst, setup_small_ring,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_double_release_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_connect_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_connect_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_socket_connects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_socket_connect_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_socket_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_socket_nodelay_failure_counted,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_refused_submit_leaves_no_trace,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_contract_cancel_not_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_contract_file_read_short_at_eof, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(test_contract_file_write_at_offset, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(test_contract_file_errors, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(test_contract_file_fsync_and_close, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(test_contract_op_init_keeps_generation,
                                        setup_files, teardown_files),
        cmocka_unit_test_setup_teardown(test_contract_file_eacces, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(test_contract_file_escape_refused, setup_files,
                                        teardown_files),
        cmocka_unit_test_setup_teardown(test_contract_file_read_into_pool_buffer,
                                        setup_files, teardown_files),
        cmocka_unit_test_setup_teardown(test_contract_file_many_in_flight, setup_files,
                                        teardown_files),
        cmocka_unit_test(test_contract_file_ops_complete_at_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
