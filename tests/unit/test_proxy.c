/* The proxy protocol's two-stream sessions, driven by the scripted fake
 * backend: every connect result, completion, partial send and error is
 * chosen by the test. The fake does no IO: the outbound sockets (the
 * RS_OP_SOCKET results the test gives) are real (socket(2)) and closed
 * here after their close op. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_backend.h"
#include "log.h"
#include "loop.h"
#include "protocol.h"
#include "proxy.h"
#include "stream.h"

#define CLIENT                                                                           \
    1000 /* made up: above any real descriptor the test opens (socket(2) may hand out 5) \
          */

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
};

static int setup_with(void **state, uint64_t max_pending)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    rs_config_defaults(&fx->cfg);
    fx->cfg.buffers = 16;
    fx->cfg.buffer_size = 64;
    fx->cfg.max_pending = max_pending;
    fx->cfg.protocol = "proxy";
    char err[128];
    assert_int_equal(rs_proxy_parse_upstreams(&fx->cfg, "127.0.0.1:7001,127.0.0.1:7002",
                                              err, sizeof(err)),
                     0);
    assert_int_equal(fx->cfg.nupstreams, 2);
    assert_int_equal(rs_loop_init(&fx->loop, &fake_backend, &fx->cfg, err, sizeof(err)),
                     0);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 1u << 20);
}

static int setup_small(void **state)
{
    return setup_with(state, 100);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    /* Nothing in flight, every lent buffer back, no timer left. */
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fx->loop.pool.lent, 0);
    assert_int_equal(fake(&fx->loop)->ninflight, 0);
    assert_int_equal(fx->loop.ntimers, 0);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

static void run(struct fixture *fx)
{
    fake_run(&fx->loop);
}

static struct rs_op *op_of(struct fixture *fx, uint8_t kind, int fd)
{
    return fake_find(&fx->loop, kind, fd);
}

static void complete(struct fixture *fx, uint8_t kind, int fd, int32_t res)
{
    struct rs_op *op = op_of(fx, kind, fd);
    assert_non_null(op);
    fake_complete(&fx->loop, op, res, 0, 0);
    run(fx);
}

static uint16_t recv_data(struct fixture *fx, int fd, const char *s)
{
    uint32_t len = (uint32_t)strlen(s);
    uint16_t bid = fake_lend(&fx->loop, s, len);
    struct rs_op *r = op_of(fx, RS_OP_RECV, fd);
    assert_non_null(r);
    fake_complete(&fx->loop, r, (int32_t)len, RS_CF_BUFFER | RS_CF_MORE, bid);
    run(fx);
    return bid;
}

static struct rs_stream *outbound(struct fixture *fx)
{
    for (struct rs_stream *s = fx->loop.streams; s; s = s->next)
        if (s->outbound)
            return s;
    return NULL;
}

static int port_of(const struct rs_op *connect_op)
{
    const struct sockaddr_in *a = connect_op->buf;
    return ntohs(a->sin_port);
}

/* Accept a client; the upstream's socket op is in flight. */
static struct rs_stream *open_session_socket(struct fixture *fx)
{
    rs_stream_accept(&fx->loop, CLIENT, false, false);
    struct rs_stream *u = outbound(fx);
    assert_non_null(u);
    assert_int_equal(u->fd, -1);
    assert_non_null(op_of(fx, RS_OP_SOCKET, -1));
    return u;
}

/* Complete the upstream's socket op with a real socket (closed by
 * close_upstream). */
static int socket_made(struct fixture *fx)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    complete(fx, RS_OP_SOCKET, -1, fd);
    return fd;
}

/* Accept a client; return the upstream's fd (its connect in flight). */
static int open_session(struct fixture *fx, int expect_port)
{
    struct rs_stream *u = open_session_socket(fx);
    int fd = socket_made(fx);
    assert_int_equal(u->fd, fd);
    struct rs_op *c = op_of(fx, RS_OP_CONNECT, u->fd);
    assert_non_null(c);
    assert_int_equal(port_of(c), expect_port);
    assert_int_equal(fx->loop.stats.sessions >= 1, 1);
    return u->fd;
}

/* The close op of an outbound (real) socket completed: close it. */
static void close_upstream(struct fixture *fx, int ufd)
{
    complete(fx, RS_OP_CLOSE, ufd, 0);
    close(ufd);
}

static void test_proxy_forwards_without_copy(void **state)
{
    struct fixture *fx = *state;
    int u = open_session(fx, 7001);
    /* The client may speak first: its bytes wait for the connection. */
    assert_non_null(op_of(fx, RS_OP_RECV, CLIENT));
    uint16_t b1 = recv_data(fx, CLIENT, "hello");
    assert_null(op_of(fx, RS_OP_SEND, u));
    complete(fx, RS_OP_CONNECT, u, 0);
    struct rs_op *s = op_of(fx, RS_OP_SEND, u);
    assert_non_null(s);
    /* No copy: the upstream's send reads the client's lent buffer. */
    assert_ptr_equal(s->buf, rs_bufpool_ptr(&fx->loop.pool, b1));
    assert_int_equal(s->len, 5);
    assert_int_equal(fake(&fx->loop)->released[b1], 0);
    complete(fx, RS_OP_SEND, u, 5);
    assert_int_equal(fake(&fx->loop)->released[b1], 1);
    /* And back. */
    uint16_t b2 = recv_data(fx, u, "world!");
    s = op_of(fx, RS_OP_SEND, CLIENT);
    assert_non_null(s);
    assert_ptr_equal(s->buf, rs_bufpool_ptr(&fx->loop.pool, b2));
    complete(fx, RS_OP_SEND, CLIENT, 6);
    assert_int_equal(fx->loop.stats.bytes_up, 5);
    assert_int_equal(fx->loop.stats.bytes_down, 6);
    /* Half-close from the client: SHUT_WR to the upstream, whose reply
     * still flows back. */
    complete(fx, RS_OP_RECV, CLIENT, 0);
    assert_non_null(op_of(fx, RS_OP_SHUTDOWN, u));
    assert_null(op_of(fx, RS_OP_SHUTDOWN, CLIENT));
    complete(fx, RS_OP_SHUTDOWN, u, 0);
    recv_data(fx, u, "late reply");
    assert_non_null(op_of(fx, RS_OP_SEND, CLIENT));
    complete(fx, RS_OP_SEND, CLIENT, 10);
    /* The upstream ends too: both directions done on both streams. */
    complete(fx, RS_OP_RECV, u, 0);
    assert_non_null(op_of(fx, RS_OP_SHUTDOWN, CLIENT));
    complete(fx, RS_OP_SHUTDOWN, CLIENT, 0);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    close_upstream(fx, u);
    assert_int_equal(fx->loop.stats.connect_failed, 0);
}

/* Half-close the other way: the upstream finishes first (a server that
 * answers and closes); the client may still send. */
static void test_proxy_upstream_half_close(void **state)
{
    struct fixture *fx = *state;
    int u = open_session(fx, 7001);
    complete(fx, RS_OP_CONNECT, u, 0);
    recv_data(fx, u, "bye");
    complete(fx, RS_OP_RECV, u, 0);
    assert_null(op_of(fx, RS_OP_SHUTDOWN, CLIENT)); /* "bye" first */
    complete(fx, RS_OP_SEND, CLIENT, 3);
    assert_non_null(op_of(fx, RS_OP_SHUTDOWN, CLIENT));
    complete(fx, RS_OP_SHUTDOWN, CLIENT, 0);
    recv_data(fx, CLIENT, "more");
    complete(fx, RS_OP_SEND, u, 4);
    complete(fx, RS_OP_RECV, CLIENT, 0);
    complete(fx, RS_OP_SHUTDOWN, u, 0);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    close_upstream(fx, u);
}

/* Backpressure across the pair: an upstream that does not read stops the
 * client's reading; once it drains below half, the client is read again. */
static void test_proxy_backpressure_across_the_pair(void **state)
{
    struct fixture *fx = *state; /* max_pending = 100 */
    int u = open_session(fx, 7001);
    complete(fx, RS_OP_CONNECT, u, 0);
    char msg[61];
    memset(msg, 'x', 60);
    msg[60] = '\0';
    recv_data(fx, CLIENT, msg);
    struct rs_op *r = op_of(fx, RS_OP_RECV, CLIENT);
    assert_false(fake_was_cancelled(&fx->loop, r));
    recv_data(fx, CLIENT, msg); /* 120 queued on the upstream > 100 */
    assert_true(fake_was_cancelled(&fx->loop, r));
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    assert_null(op_of(fx, RS_OP_RECV, CLIENT));
    /* The upstream's own reading is untouched. */
    assert_non_null(op_of(fx, RS_OP_RECV, u));
    complete(fx, RS_OP_SEND, u, 60); /* 60 left > 50 */
    assert_null(op_of(fx, RS_OP_RECV, CLIENT));
    complete(fx, RS_OP_SEND, u, 20); /* 40 <= 50: read the client again */
    assert_non_null(op_of(fx, RS_OP_RECV, CLIENT));
    complete(fx, RS_OP_SEND, u, 40);
    /* A reset on the client closes both. */
    complete(fx, RS_OP_RECV, CLIENT, -ECONNRESET);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    assert_true(fake_was_cancelled(&fx->loop, op_of(fx, RS_OP_RECV, u)));
    complete(fx, RS_OP_RECV, u, -ECANCELED);
    close_upstream(fx, u);
}

/* A reset on the upstream side reaches the client as a reset, after every
 * byte already read from the upstream: the client's queue is sent, no FIN
 * (shutdown) is ever submitted, and the close carries RS_OPF_RESET. Every
 * buffer comes back; the counters tell the reset apart from a close. */
static void test_proxy_upstream_reset_resets_client(void **state)
{
    struct fixture *fx = *state;
    int u = open_session(fx, 7001);
    complete(fx, RS_OP_CONNECT, u, 0);
    uint16_t b = recv_data(fx, u, "partial");
    uint16_t b2 = recv_data(fx, u, "queued");
    complete(fx, RS_OP_RECV, u, -ECONNRESET);
    close_upstream(fx, u);
    assert_int_equal(fx->loop.stats.resets_in, 1);
    /* The client reads no more, but what was read for it still goes. */
    assert_true(fake_was_cancelled(&fx->loop, op_of(fx, RS_OP_RECV, CLIENT)));
    struct rs_op *snd = op_of(fx, RS_OP_SEND, CLIENT);
    assert_non_null(snd);
    assert_false(fake_was_cancelled(&fx->loop, snd));
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    complete(fx, RS_OP_SEND, CLIENT, 7); /* "partial" */
    assert_int_equal(fake(&fx->loop)->released[b], 1);
    assert_non_null(op_of(fx, RS_OP_SEND, CLIENT));
    complete(fx, RS_OP_SEND, CLIENT, 6); /* "queued" */
    assert_int_equal(fake(&fx->loop)->released[b2], 1);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_SHUTDOWN], 0);
    struct rs_op *cl = op_of(fx, RS_OP_CLOSE, CLIENT);
    assert_non_null(cl);
    assert_true(cl->flags & RS_OPF_RESET);
    assert_int_equal(fx->loop.stats.resets_out, 1);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
}

/* The mirror image: the client resets mid-upload. What it sent before is
 * forwarded to the upstream, which is then reset, never shut down. */
static void test_proxy_client_reset_resets_upstream(void **state)
{
    struct fixture *fx = *state;
    int u = open_session(fx, 7001);
    complete(fx, RS_OP_CONNECT, u, 0);
    recv_data(fx, CLIENT, "upload, first part");
    complete(fx, RS_OP_RECV, CLIENT, -ECONNRESET);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    assert_int_equal(fx->loop.stats.resets_in, 1);
    struct rs_op *snd = op_of(fx, RS_OP_SEND, u);
    assert_non_null(snd);
    assert_false(fake_was_cancelled(&fx->loop, snd));
    assert_true(fake_was_cancelled(&fx->loop, op_of(fx, RS_OP_RECV, u)));
    complete(fx, RS_OP_RECV, u, -ECANCELED);
    complete(fx, RS_OP_SEND, u, 18);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_SHUTDOWN], 0);
    struct rs_op *cl = op_of(fx, RS_OP_CLOSE, u);
    assert_non_null(cl);
    assert_true(cl->flags & RS_OPF_RESET);
    close_upstream(fx, u);
    assert_int_equal(fx->loop.stats.resets_out, 1);
}

/* A peer that stops reading cannot hold a reset back for good: the flush
 * is bounded by --drain-timeout without progress, and the close still
 * resets. */
static void test_proxy_reset_flush_is_bounded(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.drain_timeout_ms = 1000;
    int u = open_session(fx, 7001);
    complete(fx, RS_OP_CONNECT, u, 0);
    recv_data(fx, u, "never read");
    complete(fx, RS_OP_RECV, u, -ECONNRESET);
    close_upstream(fx, u);
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    struct rs_op *snd = op_of(fx, RS_OP_SEND, CLIENT);
    assert_false(fake_was_cancelled(&fx->loop, snd));
    fx->loop.now_ms += 1000;
    rs_timer_run_due(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, snd));
    complete(fx, RS_OP_SEND, CLIENT, -ECANCELED);
    struct rs_op *cl = op_of(fx, RS_OP_CLOSE, CLIENT);
    assert_non_null(cl);
    assert_true(cl->flags & RS_OPF_RESET);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
}

static struct rs_stream *inbound(struct fixture *fx)
{
    for (struct rs_stream *s = fx->loop.streams; s; s = s->next)
        if (!s->outbound)
            return s;
    return NULL;
}

/* Abort the client of the only session; the upstream follows. */
static void abort_session(struct fixture *fx, int u)
{
    rs_stream_abort(inbound(fx));
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    if (op_of(fx, RS_OP_RECV, u))
        complete(fx, RS_OP_RECV, u, -ECANCELED);
    if (op_of(fx, RS_OP_CONNECT, u))
        complete(fx, RS_OP_CONNECT, u, -ECANCELED);
    close_upstream(fx, u);
}

/* A refused connect closes the client at once, is counted, and the next
 * sessions skip that upstream for a while. */
static void test_proxy_refused_upstream_is_skipped(void **state)
{
    struct fixture *fx = *state;
    int u = open_session(fx, 7001);
    uint16_t b = recv_data(fx, CLIENT, "early");
    complete(fx, RS_OP_CONNECT, u, -ECONNREFUSED);
    assert_int_equal(fx->loop.stats.connect_failed, 1);
    close_upstream(fx, u);
    assert_int_equal(fake(&fx->loop)->released[b], 1); /* dropped with the queue */
    assert_true(fake_was_cancelled(&fx->loop, op_of(fx, RS_OP_RECV, CLIENT)));
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    /* Round robin: 7002 next. */
    u = open_session(fx, 7002);
    complete(fx, RS_OP_CONNECT, u, 0);
    abort_session(fx, u);
    /* 7001's turn, but it is down: skipped. */
    u = open_session(fx, 7002);
    complete(fx, RS_OP_CONNECT, u, -ETIMEDOUT);
    close_upstream(fx, u);
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    assert_int_equal(fx->loop.stats.connect_failed, 2);
    /* Both down: one is tried anyway rather than failing the client. */
    u = open_session(fx, 7001);
    abort_session(fx, u);
    /* The skip lasts two seconds. */
    fx->loop.now_ms += 2000;
    u = open_session(fx, 7002);
    abort_session(fx, u);
    u = open_session(fx, 7001);
    abort_session(fx, u);
    assert_int_equal(fx->loop.stats.connect_failed, 2);
    assert_int_equal(fx->loop.stats.sessions, 6);
}

/* The connect timeout is a timer that cancels the connect. */
static void test_proxy_connect_timeout(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.connect_timeout_ms = 500;
    int u = open_session(fx, 7001);
    struct rs_op *c = op_of(fx, RS_OP_CONNECT, u);
    fx->loop.now_ms += 500;
    rs_timer_run_due(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, c));
    complete(fx, RS_OP_CONNECT, u, -ECANCELED);
    assert_int_equal(fx->loop.stats.connect_failed, 1);
    close_upstream(fx, u);
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
}

/* No upstream socket (EMFILE): the client is closed at once, and the
 * failure counted like a failed connect. */
static void test_proxy_upstream_socket_fails(void **state)
{
    struct fixture *fx = *state;
    open_session_socket(fx);
    uint16_t b = recv_data(fx, CLIENT, "early");
    complete(fx, RS_OP_SOCKET, -1, -EMFILE);
    assert_null(outbound(fx)); /* nothing to close: freed at once */
    assert_int_equal(fx->loop.stats.connect_failed, 1);
    assert_int_equal(fake(&fx->loop)->released[b], 1);
    assert_true(fake_was_cancelled(&fx->loop, op_of(fx, RS_OP_RECV, CLIENT)));
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_CONNECT], 0);
}

/* The session for 7001 failed before its connect: its client is closed,
 * then the round robin goes on to 7002 and comes back to 7001, which was
 * not marked down. */
static void expect_7001_still_up(struct fixture *fx)
{
    complete(fx, RS_OP_RECV, CLIENT, -ECANCELED);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    int u = open_session(fx, 7002);
    abort_session(fx, u);
    u = open_session(fx, 7001); /* not skipped */
    abort_session(fx, u);
}

/* A socket the backend could not make (EMFILE: out of descriptors here)
 * is no sign of the upstream being down: the next sessions keep the round
 * robin. (The proxy marked every upstream it failed a socket for as down,
 * since RS_OP_SOCKET reports the failure through on_connect: under a
 * descriptor shortage, healthy upstreams were skipped for 2 s.) */
static void test_proxy_local_socket_failure_marks_nothing_down(void **state)
{
    struct fixture *fx = *state;
    open_session_socket(fx); /* for 7001 */
    complete(fx, RS_OP_SOCKET, -1, -EMFILE);
    expect_7001_still_up(fx);
    assert_int_equal(fx->loop.stats.connect_failed, 1);
}

/* The connect timer fires while the upstream's socket is still being made
 * (a slow or refused socket op): the connect never started, so the
 * upstream is not marked down. (It was, and a healthy upstream was skipped
 * for 2 s.) */
static void test_proxy_timeout_while_making_socket_marks_nothing_down(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.connect_timeout_ms = 500;
    open_session_socket(fx); /* for 7001 */
    fx->loop.now_ms += 500;
    rs_timer_run_due(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, op_of(fx, RS_OP_SOCKET, -1)));
    complete(fx, RS_OP_SOCKET, -1, -ECANCELED);
    assert_int_equal(fx->loop.stats.connect_failed, 1);
    expect_7001_still_up(fx);
}

/* No upstream socket could even be started (the backend refused the op):
 * the client is reset with that error, read before the debug log call
 * that may change errno (here it does: stderr is closed, so the log's
 * write fails with EBADF). */
static void test_proxy_socket_refused_reason_survives_logging(void **state)
{
    struct fixture *fx = *state;
    fake(&fx->loop)->refuse_submit[RS_OP_SOCKET] = 1;
    int saved_level = rs_log_level, saved_err = dup(2);
    assert_true(saved_err >= 0);
    rs_log_level = 1;
    close(2);
    struct rs_stream *c = rs_stream_accept(&fx->loop, CLIENT, false, false);
    int reason = c->close_reason;
    dup2(saved_err, 2);
    close(saved_err);
    rs_log_level = saved_level;
    assert_int_equal(reason, -EBUSY);
    assert_true(c->reset);
    assert_int_equal(fx->loop.stats.connect_failed, 1);
    assert_null(op_of(fx, RS_OP_RECV, CLIENT)); /* reset before reading */
    struct rs_op *cl = op_of(fx, RS_OP_CLOSE, CLIENT);
    assert_non_null(cl);
    assert_true(cl->flags & RS_OPF_RESET);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
}

/* The client goes away while the upstream's socket is being made: the
 * socket op is cancelled, and a socket that comes anyway is closed. */
static void test_proxy_client_gone_while_making_socket(void **state)
{
    struct fixture *fx = *state;
    for (int round = 0; round < 2; round++) {
        open_session_socket(fx);
        complete(fx, RS_OP_RECV, CLIENT, -ECONNRESET);
        complete(fx, RS_OP_CLOSE, CLIENT, 0); /* its on_close aborts the upstream */
        assert_true(fake_was_cancelled(&fx->loop, op_of(fx, RS_OP_SOCKET, -1)));
        if (round == 0) {
            complete(fx, RS_OP_SOCKET, -1, -ECANCELED);
        } else {
            int u = socket_made(fx);
            assert_null(op_of(fx, RS_OP_CONNECT, u));
            close_upstream(fx, u);
        }
        assert_null(outbound(fx));
    }
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_CONNECT], 0);
}

/* SIGTERM's drain closes both streams of a session gracefully. */
static void test_proxy_drain_closes_both(void **state)
{
    struct fixture *fx = *state;
    int u = open_session(fx, 7001);
    complete(fx, RS_OP_CONNECT, u, 0);
    recv_data(fx, CLIENT, "in flight");
    for (struct rs_stream *s = fx->loop.streams, *n; s; s = n) {
        n = s->next;
        rs_stream_close(s);
    }
    complete(fx, RS_OP_SEND, u, 9);
    complete(fx, RS_OP_SHUTDOWN, u, 0);
    complete(fx, RS_OP_SHUTDOWN, CLIENT, 0);
    complete(fx, RS_OP_RECV, u, 0);
    complete(fx, RS_OP_RECV, CLIENT, 0);
    complete(fx, RS_OP_CLOSE, CLIENT, 0);
    close_upstream(fx, u);
}

static void test_proxy_upstream_syntax(void **state)
{
    (void)state;
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    char err[200];
    assert_int_equal(
        rs_proxy_parse_upstreams(&cfg, "[::1]:80,localhost:81", err, sizeof(err)), 0);
    assert_int_equal(cfg.nupstreams, 2);
    assert_int_equal(cfg.upstreams[0].addr.ss_family, AF_INET6);
    const char *bad[] = {"",       "host",    "1.2.3.4:",    "1.2.3.4:0", "1.2.3.4:65536",
                         "::1:80", "[::1]80", "1.2.3.4:80,", "1.2.3.4:8x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(rs_proxy_parse_upstreams(&cfg, bad[i], err, sizeof(err)),
                         -EINVAL);
        assert_true(err[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_proxy_forwards_without_copy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proxy_upstream_half_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_backpressure_across_the_pair,
                                        setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_upstream_reset_resets_client, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proxy_client_reset_resets_upstream, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proxy_reset_flush_is_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proxy_refused_upstream_is_skipped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proxy_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_upstream_socket_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_proxy_local_socket_failure_marks_nothing_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_client_gone_while_making_socket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_proxy_drain_closes_both, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_proxy_timeout_while_making_socket_marks_nothing_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_socket_refused_reason_survives_logging,
                                        setup, teardown),
        cmocka_unit_test(test_proxy_upstream_syntax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
