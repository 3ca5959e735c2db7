/* The listener's failure paths, driven by the scripted fake backend: a
 * cancel the backend refuses, a connection that cannot be allocated after
 * its socket was accepted (plain and direct descriptors), a close of such
 * a socket refused; and what counts against --max-conns. Out of memory is injected by
 * wrapping malloc
 * (-Wl,--wrap=malloc): the core's objects call __wrap_malloc below. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_backend.h"
#include "listener.h"
#include "loop.h"
#include "stream.h"

void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

/* The next N allocations of the core fail: malloc, and aligned_alloc
 * (a stream is cache-line aligned). */
static int malloc_failures;

static bool fail_now(void)
{
    if (malloc_failures > 0) {
        malloc_failures--;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return fail_now() ? NULL : __real_aligned_alloc(align, n);
}

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
    int lfd; /* a real socket: the listener closes it when stopped */
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_int_equal(fake_loop_init(&fx->loop, &fx->cfg), 0);
    fx->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fx->lfd >= 0);
    assert_int_equal(rs_listener_start(&fx->loop, fx->lfd, false), 0);
    assert_non_null(fake_find(&fx->loop, RS_OP_ACCEPT, fx->lfd));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    malloc_failures = 0;
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fake(&fx->loop)->ninflight, 0);
    assert_true(rs_listener_idle(&fx->loop));
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

static void complete(struct fixture *fx, uint8_t kind, int fd, int32_t res,
                     uint32_t flags)
{
    struct rs_op *op = fake_find(&fx->loop, kind, fd);
    assert_non_null(op);
    fake_complete(&fx->loop, op, res, flags, 0);
    fake_run(&fx->loop);
}

/* Stop accepting and let the accept end: the listener closes its socket. */
static void stop(struct fixture *fx)
{
    rs_listener_stop(&fx->loop);
    struct rs_op *a = fake_find(&fx->loop, RS_OP_ACCEPT, fx->lfd);
    if (a) {
        assert_true(fake_was_cancelled(&fx->loop, a));
        complete(fx, RS_OP_ACCEPT, fx->lfd, -ECANCELED, 0);
    }
    assert_true(fx->loop.listener->fd < 0);
}

/* Near the end of a direct-descriptor table (2 slots): the multishot
 * accept must end (one accept at a time from here on). A refused cancel is
 * not "cancelling": the next loop turn asks again. (The old listener set
 * cancelling and never asked again: the accept stayed armed.) */
static void test_listener_refused_cancel_is_retried(void **state)
{
    struct fixture *fx = *state;
    fx->loop.fd_cap = 2;
    struct rs_op *a = fake_find(&fx->loop, RS_OP_ACCEPT, fx->lfd);
    fake(&fx->loop)->refuse_cancel = 1;
    complete(fx, RS_OP_ACCEPT, fx->lfd, 50, RS_CF_MORE); /* at the cap now */
    assert_int_equal(fx->loop.nstreams, 1);
    assert_false(fake_was_cancelled(&fx->loop, a));
    assert_false(fx->loop.listener->cancelling);
    assert_false(rs_listener_retry(&fx->loop)); /* retried, taken */
    assert_true(fake_was_cancelled(&fx->loop, a));
    assert_int_equal(fx->loop.stats.refused, 1);
    complete(fx, RS_OP_ACCEPT, fx->lfd, -ECANCELED, 0);
    /* The connection leaves; rejected before anything in flight matters. */
    rs_stream_abort(fx->loop.streams);
    complete(fx, RS_OP_RECV, 50, -ECANCELED, 0);
    complete(fx, RS_OP_CLOSE, 50, 0, 0);
    stop(fx);
}

/* No memory for the connection after a plain socket was accepted: the
 * socket is closed at once, counted, and accepting backs off. */
static void test_listener_oom_closes_plain_socket(void **state)
{
    struct fixture *fx = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    malloc_failures = 1;
    complete(fx, RS_OP_ACCEPT, fx->lfd, sv[0], RS_CF_MORE);
    malloc_failures = 0;
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fx->loop.stats.accept_dropped, 1);
    assert_int_equal(fcntl(sv[0], F_GETFD), -1); /* closed */
    assert_true(fx->loop.listener->paused);
    stop(fx);
}

/* The same with a direct descriptor (io_uring's fixed-file table): no
 * process fd exists, only a close op through the backend can free the
 * slot. The old listener said "retry" in a comment and leaked it. A close
 * the backend refuses is retried on a later turn. */
static void test_listener_oom_closes_direct_descriptor(void **state)
{
    struct fixture *fx = *state;
    fx->loop.caps |= RS_CAP_DIRECT_FD;
    fake(&fx->loop)->refuse_submit[RS_OP_CLOSE] = 2;
    malloc_failures = 1;
    complete(fx, RS_OP_ACCEPT, fx->lfd, 7, RS_CF_MORE | RS_CF_DIRECT);
    malloc_failures = 0;
    assert_int_equal(fx->loop.stats.accept_dropped, 1);
    assert_null(fake_find(&fx->loop, RS_OP_CLOSE, 7)); /* refused */
    assert_true(fx->loop.listener->paused);
    /* A second one from the same multishot burst, before its cancel lands. */
    malloc_failures = 1;
    complete(fx, RS_OP_ACCEPT, fx->lfd, 8, RS_CF_MORE | RS_CF_DIRECT);
    malloc_failures = 0;
    assert_int_equal(fx->loop.stats.accept_dropped, 2);
    assert_null(fake_find(&fx->loop, RS_OP_CLOSE, 7)); /* refused again */
    rs_listener_retry(&fx->loop);
    assert_non_null(fake_find(&fx->loop, RS_OP_CLOSE, 7));
    assert_null(fake_find(&fx->loop, RS_OP_CLOSE, 8)); /* one close at a time */
    assert_false(rs_listener_idle(&fx->loop));
    complete(fx, RS_OP_ACCEPT, fx->lfd, -ECANCELED, 0);
    complete(fx, RS_OP_CLOSE, 7, 0, 0);
    assert_non_null(fake_find(&fx->loop, RS_OP_CLOSE, 8));
    complete(fx, RS_OP_CLOSE, 8, 0, 0);
    assert_int_equal(fx->loop.stats.refused, 2);
    stop(fx);
    assert_true(rs_listener_idle(&fx->loop));
}

/* A pause whose back-off ends before the paused accept's cancel has
 * completed (a busy loop turn; a cancel the backend refused at first):
 * the timer finds the accept still armed and leaves it, and the accept's
 * final completion must then accept again. (The old listener re-armed
 * only from the timer or a closing connection: with none left to close it
 * never accepted again.) */
static void test_listener_backoff_ends_before_cancel(void **state)
{
    struct fixture *fx = *state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    struct rs_op *a = fake_find(&fx->loop, RS_OP_ACCEPT, fx->lfd);
    malloc_failures = 1;
    complete(fx, RS_OP_ACCEPT, fx->lfd, sv[0], RS_CF_MORE); /* no memory: pause */
    malloc_failures = 0;
    assert_true(fx->loop.listener->paused);
    assert_true(fake_was_cancelled(&fx->loop, a));
    fx->loop.now_ms += 1000; /* the back-off is over, the cancel not yet */
    rs_timer_run_due(&fx->loop);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_ACCEPT], 1);
    complete(fx, RS_OP_ACCEPT, fx->lfd, -ECANCELED, 0);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_ACCEPT], 2);
    assert_non_null(fake_find(&fx->loop, RS_OP_ACCEPT, fx->lfd));
    assert_false(fx->loop.listener->paused);
    stop(fx);
}

static struct rs_stream *stream_of(struct fixture *fx, int fd)
{
    for (struct rs_stream *s = fx->loop.streams; s; s = s->next)
        if (s->fd == fd)
            return s;
    fail_msg("no stream on %d", fd);
    return NULL;
}

/* Abort an accepted stream whose recv is armed: its close is issued (and
 * left in flight). */
static void abort_to_close(struct fixture *fx, int fd)
{
    rs_stream_abort(stream_of(fx, fd));
    complete(fx, RS_OP_RECV, fd, -ECANCELED, 0);
    assert_non_null(fake_find(&fx->loop, RS_OP_CLOSE, fd));
}

/* --max-conns counts live connections: one stops counting when its close
 * is issued, not when the close completes. The epoll backend's close(2)
 * runs inside submit(), so in the same loop turn accept(2) can hand out
 * that very number again; counted until the completion, the connection
 * made the count run ahead of the descriptors in use, and with
 * --max-conns=max (RLIMIT_NOFILE) a client accepted onto a freed number
 * was rejected although accept had not even run out of descriptors
 * (fault test test_emfile, under load: "accepted=143 rejected=7"). */
static void test_listener_closing_conn_leaves_the_cap(void **state)
{
    struct fixture *fx = *state;
    struct rs_loop *loops[1] = {&fx->loop};
    struct rs_group g = {.loops = loops, .n = 1, .max_conns = 2};
    fx->loop.group = &g;
    complete(fx, RS_OP_ACCEPT, fx->lfd, 50, RS_CF_MORE);
    complete(fx, RS_OP_ACCEPT, fx->lfd, 51, RS_CF_MORE);
    assert_int_equal(atomic_load(&g.conns), 2);
    abort_to_close(fx, 50); /* its close in flight: descriptor 50 is free */
    assert_int_equal(atomic_load(&g.conns), 1);
    assert_int_equal(atomic_load(&fx->loop.load), 2); /* its slot: until freed */
    /* accepted onto the number just closed, before that close completes */
    complete(fx, RS_OP_ACCEPT, fx->lfd, 52, RS_CF_MORE);
    assert_int_equal(fx->loop.stats.accepted, 3);
    assert_int_equal(fx->loop.stats.rejected, 0);
    /* the cap itself still holds: a third live connection is rejected */
    complete(fx, RS_OP_ACCEPT, fx->lfd, 53, RS_CF_MORE);
    assert_int_equal(fx->loop.stats.rejected, 1);
    assert_int_equal(atomic_load(&g.conns), 2); /* 51 and 52 */
    complete(fx, RS_OP_CLOSE, 53, 0, 0);
    complete(fx, RS_OP_CLOSE, 50, 0, 0);
    assert_int_equal(atomic_load(&fx->loop.load), 2);
    abort_to_close(fx, 51);
    abort_to_close(fx, 52);
    assert_int_equal(atomic_load(&g.conns), 0);
    complete(fx, RS_OP_CLOSE, 51, 0, 0);
    complete(fx, RS_OP_CLOSE, 52, 0, 0);
    assert_int_equal(atomic_load(&g.conns), 0);
    assert_int_equal(atomic_load(&fx->loop.load), 0);
    stop(fx);
    fx->loop.group = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_listener_refused_cancel_is_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listener_oom_closes_plain_socket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listener_oom_closes_direct_descriptor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listener_closing_conn_leaves_the_cap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_listener_backoff_ends_before_cancel, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
