/* A loop of the program's own, through the public API alone: made on the
 * backend the configuration names, a timer, an outbound connection to a
 * local listener, stopped from a callback, destroyed. Run on every
 * backend: test_loop_own BACKEND [OPTION...] (e.g. epoll --epoll-mode=lt);
 * exit 77 (skip) when the backend cannot run here. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringserve.h>

#include "../skip_reason.h"

static int g_argc;
static char **g_argv;

struct run {
    int timer_fired;
    int connected;
    int closed, close_reason;
    struct rs_timer timer;
};

static void on_connect(struct rs_stream *s, int res)
{
    struct run *r = rs_stream_data(s);
    r->connected = res == 0 ? 1 : res;
    rs_stream_abort(s); /* the peer never accepts: no graceful end to wait for */
}

static void on_close(struct rs_stream *s, int reason)
{
    struct run *r = rs_stream_data(s);
    r->closed++;
    r->close_reason = reason;
}

static void on_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    (void)p;
    (void)len;
    rs_stream_release(s, bid);
}

static const struct rs_stream_cbs cbs = {
    .on_data = on_data, .on_connect = on_connect, .on_close = on_close};

/* A loop on the backend the command line names. The parse takes the
 * options it knows out of the array it is given: a copy of argv each time. */
static struct rs_loop *open_loop(struct rs_config *cfg)
{
    char *argv[64];
    char err[200];
    assert_true(g_argc < 64);
    memcpy(argv, g_argv, sizeof(*argv) * (size_t)(g_argc + 1));
    int argc = g_argc;
    rs_config_defaults(cfg);
    assert_int_equal(rs_config_parse_args(cfg, &argc, argv, 0, err, sizeof(err)), 0);
    cfg->verbose = RS_LOG_QUIET;
    struct rs_loop *loop = NULL;
    int rc = rs_loop_new(cfg, &loop, err, sizeof(err));
    if (rc == -ENOSYS && rs_skip_reason_for(err))
        skip(); /* the backend cannot run here, and err says why */
    assert_int_equal(rc, 0);
    return loop;
}

/* A listener that never accepts (the kernel completes the handshake):
 * its fd, and its address in *a. */
static int idle_listener(struct sockaddr_in *a)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET};
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(*a);
    assert_int_equal(bind(lfd, (struct sockaddr *)a, sizeof(*a)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)a, &alen), 0);
    return lfd;
}

/* Every millisecond until the stream is gone, then stop the loop: from a
 * callback, with no timer left active (a loop's owner stops its timers). */
static void on_timer(struct rs_loop *loop, struct rs_timer *t)
{
    struct run *r = t->data;
    r->timer_fired++;
    if (r->closed)
        rs_loop_stop(loop);
    else
        rs_timer_start(loop, t, 1, on_timer, r);
}

static void test_loop_own_timer_connect_stop(void **state)
{
    (void)state;
    struct rs_config cfg;
    struct rs_loop *loop = open_loop(&cfg);
    assert_string_equal(rs_loop_backend_name(loop), cfg.backend);
    assert_true(rs_loop_caps(loop) & RS_CAP_CONNECT);

    struct sockaddr_in a;
    int lfd = idle_listener(&a);

    struct run r = {0};
    rs_timer_start(loop, &r.timer, 1, on_timer, &r);
    struct rs_stream *s =
        rs_stream_connect(loop, (struct sockaddr *)&a, sizeof(a), 5000, &cbs, &r);
    assert_non_null(s);
    assert_int_equal(rs_loop_run(loop), 0);
    assert_int_equal(rs_loop_destroy(loop), 0);
    close(lfd);
    assert_int_equal(r.connected, 1);
    assert_int_equal(r.closed, 1);
    assert_int_equal(r.close_reason, -ECONNABORTED);
    assert_true(r.timer_fired >= 1);
    assert_false(rs_timer_active(&r.timer));
}

/* A connect without on_data is refused (EINVAL). Calls in the wrong
 * state are refused with -EBUSY, nothing freed: a
 * destroy with a stream still there (its completions would land in freed
 * memory; the old loop asserted in debug builds and freed it under the
 * kernel's op in release builds), and a run or a destroy from the loop's
 * own callback. Then the loop, run to its end, is destroyed. */
struct misuse {
    int run_rc, destroy_rc, fired;
    struct rs_timer timer;
};

static void misuse_timer(struct rs_loop *loop, struct rs_timer *t)
{
    struct misuse *m = t->data;
    m->fired++;
    m->run_rc = rs_loop_run(loop);
    m->destroy_rc = rs_loop_destroy(loop);
}

static void test_loop_own_misuse_refused(void **state)
{
    (void)state;
    struct rs_config cfg;
    struct rs_loop *loop = open_loop(&cfg);
    struct sockaddr_in a;
    int lfd = idle_listener(&a);
    struct run r = {0};
    /* No callbacks, or no on_data: the first bytes would call NULL. */
    static const struct rs_stream_cbs no_data = {.on_close = on_close};
    errno = 0;
    assert_null(rs_stream_connect(loop, (struct sockaddr *)&a, sizeof(a), 0, NULL, &r));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(
        rs_stream_connect(loop, (struct sockaddr *)&a, sizeof(a), 0, &no_data, &r));
    assert_int_equal(errno, EINVAL);
    struct rs_stream *s =
        rs_stream_connect(loop, (struct sockaddr *)&a, sizeof(a), 5000, &cbs, &r);
    assert_non_null(s);
    assert_int_equal(rs_loop_destroy(loop), -EBUSY); /* the stream is there */
    struct misuse m = {0};
    rs_timer_start(loop, &m.timer, 0, misuse_timer, &m);
    assert_int_equal(rs_loop_run(loop), 0); /* the stream aborts itself once connected */
    assert_int_equal(m.fired, 1);
    assert_int_equal(m.run_rc, -EBUSY);
    assert_int_equal(m.destroy_rc, -EBUSY);
    assert_int_equal(r.closed, 1);
    assert_int_equal(rs_loop_destroy(loop), 0);
    close(lfd);
}

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_own_timer_connect_stop),
        cmocka_unit_test(test_loop_own_misuse_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
