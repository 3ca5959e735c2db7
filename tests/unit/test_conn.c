/* The connection state machine, driven by the scripted fake backend:
 * every completion, partial result and error is chosen by the test. */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "conn.h"
#include "fake_backend.h"
#include "loop.h"

#define FD 5

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
    char err[128];
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
    /* Nothing in flight, every lent buffer back (rs_loop_fini asserts). */
    assert_int_equal(fx->loop.nconns, 0);
    assert_int_equal(fx->loop.pool.lent, 0);
    assert_int_equal(fake(&fx->loop)->ninflight, 0);
    for (uint32_t i = 0; i < fx->loop.pool.count; i++)
        assert_true(fake(&fx->loop)->released[i] <= 1 || fx->loop.pool.held[i] == 0);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

/* For a test that finished the loop itself (a failed backend). */
static int teardown_failed(void **state)
{
    (void)state;
    return 0;
}

static struct rs_op *op_of(struct fixture *fx, uint8_t kind)
{
    return fake_find(&fx->loop, kind, FD);
}

static uint16_t recv_data(struct fixture *fx, const char *s, bool more)
{
    uint32_t len = (uint32_t)strlen(s);
    uint16_t bid = fake_lend(&fx->loop, s, len);
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    assert_non_null(r);
    fake_complete(&fx->loop, r, (int32_t)len, RS_CF_BUFFER | (more ? RS_CF_MORE : 0),
                  bid);
    fake_run(&fx->loop);
    return bid;
}

static void complete(struct fixture *fx, uint8_t kind, int32_t res)
{
    struct rs_op *op = op_of(fx, kind);
    assert_non_null(op);
    fake_complete(&fx->loop, op, res, 0, 0);
    fake_run(&fx->loop);
}

/* Finish a connection whose only op in flight is the multishot recv. */
static void close_by_eof(struct fixture *fx)
{
    complete(fx, RS_OP_RECV, 0);
    complete(fx, RS_OP_SHUTDOWN, 0);
    complete(fx, RS_OP_CLOSE, 0);
}

static void test_conn_echo_partial_sends(void **state)
{
    struct fixture *fx = *state;
    rs_conn_open(&fx->loop, FD, false);
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    assert_non_null(r);
    assert_true(r->flags & RS_OPF_MULTISHOT);
    uint16_t bid = recv_data(fx, "0123456789", true);
    struct rs_op *s = op_of(fx, RS_OP_SEND);
    assert_non_null(s);
    /* Zero copy: the send points into the lent buffer itself. */
    assert_ptr_equal(s->buf, rs_bufpool_ptr(&fx->loop.pool, bid));
    assert_int_equal(s->len, 10);
    complete(fx, RS_OP_SEND, 4);
    s = op_of(fx, RS_OP_SEND);
    assert_non_null(s);
    assert_int_equal(s->len, 6);
    assert_memory_equal(s->buf, "456789", 6);
    assert_int_equal(fake(&fx->loop)->released[bid], 0);
    complete(fx, RS_OP_SEND, 6);
    assert_null(op_of(fx, RS_OP_SEND));
    assert_int_equal(fake(&fx->loop)->released[bid], 1);
    assert_int_equal(fx->loop.stats.bytes_out, 10);
    close_by_eof(fx);
    assert_int_equal(fake(&fx->loop)->released[bid], 1);
}

static void test_conn_pipelined_order(void **state)
{
    struct fixture *fx = *state;
    rs_conn_open(&fx->loop, FD, false);
    recv_data(fx, "aaa", true);
    recv_data(fx, "bbb", true);
    recv_data(fx, "ccc", true);
    /* One send in flight at a time, in arrival order (copies may coalesce
     * queued chunks, so collect the bytes). */
    char got[16] = "";
    for (int i = 0; i < 3 && op_of(fx, RS_OP_SEND); i++) {
        struct rs_op *s = op_of(fx, RS_OP_SEND);
        strncat(got, s->buf, s->len);
        complete(fx, RS_OP_SEND, (int32_t)s->len);
    }
    assert_string_equal(got, "aaabbbccc");
    assert_null(op_of(fx, RS_OP_SEND));
    close_by_eof(fx);
}

static void test_conn_eof_with_pending_output(void **state)
{
    struct fixture *fx = *state;
    rs_conn_open(&fx->loop, FD, false);
    recv_data(fx, "hello", true);
    complete(fx, RS_OP_RECV, 0); /* EOF while the echo is in flight */
    assert_null(op_of(fx, RS_OP_SHUTDOWN));
    assert_null(op_of(fx, RS_OP_CLOSE));
    complete(fx, RS_OP_SEND, 2);
    assert_null(op_of(fx, RS_OP_SHUTDOWN)); /* "llo" still to go */
    complete(fx, RS_OP_SEND, 3);
    assert_non_null(op_of(fx, RS_OP_SHUTDOWN));
    complete(fx, RS_OP_SHUTDOWN, 0);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fx->loop.stats.bytes_out, 5);
}

static void test_conn_error_mid_send(void **state)
{
    struct fixture *fx = *state;
    rs_conn_open(&fx->loop, FD, false);
    recv_data(fx, "one", true);
    recv_data(fx, "two", true);
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    complete(fx, RS_OP_SEND, -ECONNRESET);
    /* Close at once: the recv is cancelled, queued output dropped. */
    assert_true(fake_was_cancelled(&fx->loop, r));
    assert_null(op_of(fx, RS_OP_SEND));
    assert_null(op_of(fx, RS_OP_CLOSE)); /* the recv is still in flight */
    complete(fx, RS_OP_RECV, -ECANCELED);
    assert_non_null(op_of(fx, RS_OP_CLOSE));
    assert_null(op_of(fx, RS_OP_SHUTDOWN)); /* an abort, not a graceful close */
    complete(fx, RS_OP_CLOSE, 0);
}

static void test_conn_recv_error_while_sending(void **state)
{
    struct fixture *fx = *state;
    rs_conn_open(&fx->loop, FD, false);
    uint16_t bid = recv_data(fx, "data", true);
    complete(fx, RS_OP_RECV, -ECONNRESET);
    /* The send still references the lent buffer: not released yet. */
    assert_int_equal(fake(&fx->loop)->released[bid], 0);
    assert_null(op_of(fx, RS_OP_CLOSE));
    complete(fx, RS_OP_SEND, -ECANCELED);
    assert_int_equal(fake(&fx->loop)->released[bid], 1);
    complete(fx, RS_OP_CLOSE, 0);
}

static void test_conn_backpressure(void **state)
{
    struct fixture *fx = *state; /* max_pending = 100 */
    rs_conn_open(&fx->loop, FD, false);
    char msg[61];
    memset(msg, 'x', 60);
    msg[60] = '\0';
    recv_data(fx, msg, true); /* 60 pending */
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    assert_false(fake_was_cancelled(&fx->loop, r));
    recv_data(fx, msg, true); /* 120 > 100: stop reading */
    assert_true(fake_was_cancelled(&fx->loop, r));
    complete(fx, RS_OP_RECV, -ECANCELED);
    assert_null(op_of(fx, RS_OP_RECV));
    complete(fx, RS_OP_SEND, 10); /* 110 left: still paused */
    assert_null(op_of(fx, RS_OP_RECV));
    complete(fx, RS_OP_SEND, 50); /* 60 left > 50: still paused */
    assert_null(op_of(fx, RS_OP_RECV));
    complete(fx, RS_OP_SEND, 30); /* 30 <= 50: read again */
    assert_non_null(op_of(fx, RS_OP_RECV));
    complete(fx, RS_OP_SEND, 30);
    close_by_eof(fx);
}

static void test_conn_enobufs_starves_then_rearms(void **state)
{
    struct fixture *fx = *state;
    struct rs_conn *c = rs_conn_open(&fx->loop, FD, false);
    complete(fx, RS_OP_RECV, -ENOBUFS);
    /* Not an error: parked, not re-armed at once (that would spin). */
    assert_null(op_of(fx, RS_OP_RECV));
    assert_null(op_of(fx, RS_OP_CLOSE));
    assert_ptr_equal(fx->loop.starved, c);
    assert_int_equal(fx->loop.stats.enobufs, 1);
    rs_loop_feed_starved(&fx->loop);
    assert_null(fx->loop.starved);
    assert_non_null(op_of(fx, RS_OP_RECV));
    close_by_eof(fx);
}

static void test_conn_single_shot_rearm(void **state)
{
    struct fixture *fx = *state;
    rs_conn_open(&fx->loop, FD, false);
    /* A backend that ignores RS_OPF_MULTISHOT completes without MORE. */
    recv_data(fx, "a", false);
    assert_non_null(op_of(fx, RS_OP_RECV));
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_RECV], 2);
    complete(fx, RS_OP_SEND, 1);
    close_by_eof(fx);
}

static void test_conn_abort_releases_queued_buffers(void **state)
{
    struct fixture *fx = *state;
    struct rs_conn *c = rs_conn_open(&fx->loop, FD, false);
    uint16_t b1 = recv_data(fx, "first", true);
    uint16_t b2 = recv_data(fx, "second", true);
    rs_conn_abort(c); /* e.g. idle timeout */
    /* b2 was queued (or copied): released; b1 is in the in-flight send. */
    assert_int_equal(fake(&fx->loop)->released[b2], 1);
    assert_int_equal(fake(&fx->loop)->released[b1], 0);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_SEND, -ECANCELED);
    assert_int_equal(fake(&fx->loop)->released[b1], 1);
    complete(fx, RS_OP_CLOSE, 0);
}

static void test_conn_reject_closes_at_once(void **state)
{
    struct fixture *fx = *state;
    rs_conn_open(&fx->loop, FD, true);
    assert_null(op_of(fx, RS_OP_RECV));
    assert_non_null(op_of(fx, RS_OP_CLOSE));
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fx->loop.stats.rejected, 1);
}

static void test_conn_finish_drains_output(void **state)
{
    struct fixture *fx = *state;
    struct rs_conn *c = rs_conn_open(&fx->loop, FD, false);
    recv_data(fx, "bye", true);
    rs_conn_finish(c); /* SIGTERM: finish the echo, then a lingering close */
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    assert_non_null(r);
    assert_false(fake_was_cancelled(&fx->loop, r)); /* still reading, to drop input */
    assert_null(op_of(fx, RS_OP_SHUTDOWN));
    complete(fx, RS_OP_SEND, 3);
    /* Output gone: our side shuts down while the recv stays armed. */
    assert_non_null(op_of(fx, RS_OP_SHUTDOWN));
    assert_non_null(op_of(fx, RS_OP_RECV));
    complete(fx, RS_OP_SHUTDOWN, 0);
    /* Input that arrives now is dropped, not echoed, and its buffer returned. */
    uint32_t released_before = 0;
    for (uint32_t i = 0; i < fx->loop.pool.count; i++)
        released_before += fake(&fx->loop)->released[i];
    recv_data(fx, "late", true);
    uint32_t released_after = 0;
    for (uint32_t i = 0; i < fx->loop.pool.count; i++)
        released_after += fake(&fx->loop)->released[i];
    assert_int_equal(released_after, released_before + 1);
    assert_int_equal(fx->loop.stats.dropped, 4);
    assert_null(op_of(fx, RS_OP_SEND));
    assert_null(op_of(fx, RS_OP_CLOSE)); /* not before the peer's EOF */
    complete(fx, RS_OP_RECV, 0);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fx->loop.stats.bytes_out, 3);
}

/* ---- refusals: a backend that says "not now" (issue 11) ----------------
 * A full io_uring SQ makes cancel() and submit() return -EBUSY, an epoll
 * backend out of memory -ENOMEM. Nothing was issued then, so nothing will
 * complete: the core must not record it as issued, and must try again on
 * a later loop turn (rs_loop_retry), or the connection waits forever. */

static void test_conn_refused_pause_cancel_is_retried(void **state)
{
    struct fixture *fx = *state; /* max_pending = 100 */
    struct rs_conn *c = rs_conn_open(&fx->loop, FD, false);
    char msg[61];
    memset(msg, 'x', 60);
    msg[60] = '\0';
    recv_data(fx, msg, true);
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    fake(&fx->loop)->refuse_cancel = 2;
    recv_data(fx, msg, true); /* 120 > 100: pause, but the cancel is refused */
    assert_true(c->paused);
    assert_false(fake_was_cancelled(&fx->loop, r));
    assert_false(c->recv_cancel); /* not recorded as issued */
    assert_true(c->retry);
    assert_int_equal(fx->loop.nretry, 1);
    rs_loop_retry(&fx->loop); /* refused again */
    assert_false(fake_was_cancelled(&fx->loop, r));
    assert_int_equal(fx->loop.nretry, 1);
    rs_loop_retry(&fx->loop); /* taken */
    assert_true(fake_was_cancelled(&fx->loop, r));
    assert_true(c->recv_cancel);
    assert_false(c->retry);
    assert_int_equal(fx->loop.nretry, 0);
    assert_int_equal(fx->loop.stats.refused, 2);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_SEND, 60);
    complete(fx, RS_OP_SEND, 60); /* drained: reading again */
    assert_non_null(op_of(fx, RS_OP_RECV));
    close_by_eof(fx);
}

static void test_conn_refused_abort_cancels_are_retried(void **state)
{
    struct fixture *fx = *state;
    struct rs_conn *c = rs_conn_open(&fx->loop, FD, false);
    recv_data(fx, "data", true);
    struct rs_op *r = op_of(fx, RS_OP_RECV), *s = op_of(fx, RS_OP_SEND);
    fake(&fx->loop)->refuse_cancel = 2; /* both the recv's and the send's */
    rs_conn_abort(c);
    assert_false(fake_was_cancelled(&fx->loop, r));
    assert_false(fake_was_cancelled(&fx->loop, s));
    rs_loop_retry(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, r));
    assert_true(fake_was_cancelled(&fx->loop, s));
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_SEND, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
}

static void test_conn_refused_close_is_retried(void **state)
{
    struct fixture *fx = *state;
    fake(&fx->loop)->refuse_submit[RS_OP_CLOSE] = 3;
    struct rs_conn *c = rs_conn_open(&fx->loop, FD, true); /* closes at once */
    assert_null(op_of(fx, RS_OP_CLOSE));
    assert_false(c->close_issued);
    assert_int_equal(c->inflight, 0);
    for (int i = 0; i < 2; i++) {
        rs_loop_retry(&fx->loop);
        assert_null(op_of(fx, RS_OP_CLOSE));
    }
    rs_loop_retry(&fx->loop);
    assert_non_null(op_of(fx, RS_OP_CLOSE));
    assert_int_equal(fx->loop.stats.refused, 3);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fx->loop.nconns, 0);
    assert_int_equal(fx->loop.nretry, 0);
}

static void test_conn_refused_shutdown_is_retried(void **state)
{
    struct fixture *fx = *state;
    rs_conn_open(&fx->loop, FD, false);
    recv_data(fx, "bye", true);
    complete(fx, RS_OP_RECV, 0);
    fake(&fx->loop)->refuse_submit[RS_OP_SHUTDOWN] = 1;
    complete(fx, RS_OP_SEND, 3); /* all sent: shutdown, refused */
    assert_null(op_of(fx, RS_OP_SHUTDOWN));
    rs_loop_retry(&fx->loop);
    assert_non_null(op_of(fx, RS_OP_SHUTDOWN));
    complete(fx, RS_OP_SHUTDOWN, 0);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fx->loop.stats.bytes_out, 3);
}

/* The whole loop, not just the connection: a draining loop whose closes
 * are refused many times still closes every connection and returns. (The
 * old code asserted here; built with NDEBUG it hung in the drain.) */
static void test_loop_stops_when_closes_are_refused(void **state)
{
    struct fixture *fx = *state;
    for (int fd = FD; fd < FD + 3; fd++)
        rs_conn_open(&fx->loop, fd, false);
    recv_data(fx, "pending output", true);
    struct fake_state *f = fake(&fx->loop);
    f->refuse_submit[RS_OP_CLOSE] = 7;
    f->refuse_submit[RS_OP_SHUTDOWN] = 2;
    f->auto_complete = true;
    rs_loop_request_stop(&fx->loop);
    assert_int_equal(rs_loop_run(&fx->loop), 0);
    assert_int_equal(fx->loop.nconns, 0);
    assert_int_equal(fx->loop.nretry, 0);
    assert_int_equal(fx->loop.stats.closed, 3);
    assert_int_equal(f->refused, 9);
    assert_int_equal(fx->loop.stats.refused, 9);
}

/* A backend that fails mid-run abandons its connections: their queued
 * output, heap copies included, must be freed (the old abandon() freed
 * only the structs). ASan's leak check sees it in the sanitizer build;
 * here glibc's own accounting does: a 1 MiB copy is an mmap'd block. */
static void test_loop_failed_run_frees_queued_copies(void **state)
{
    struct fixture *fx = *state;
    size_t before = mallinfo2().hblkhd;
    struct rs_conn *c = rs_conn_open(&fx->loop, FD, false);
    recv_data(fx, "in flight", true); /* a send in flight, lent */
    size_t big = 1u << 20;
    uint8_t *copy = calloc(1, big);
    assert_non_null(copy);
    rs_conn_send_copy(c, copy, (uint32_t)big); /* queued behind it, on the heap */
    rs_conn_send_static(c, (const uint8_t *)"static", 6);
    free(copy);
    fake(&fx->loop)->run_error = -EIO;
    assert_int_equal(rs_loop_run(&fx->loop), -EIO);
    assert_true(fx->loop.failed);
    rs_loop_fini(&fx->loop);
    assert_int_equal(mallinfo2().hblkhd, before);
    free(fx);
    *state = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conn_echo_partial_sends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_pipelined_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_eof_with_pending_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_error_mid_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_recv_error_while_sending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_backpressure, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_enobufs_starves_then_rearms, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_single_shot_rearm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_abort_releases_queued_buffers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_reject_closes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_finish_drains_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_refused_pause_cancel_is_retried,
                                        setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_conn_refused_abort_cancels_are_retried,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_refused_close_is_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_conn_refused_shutdown_is_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_stops_when_closes_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_failed_run_frees_queued_copies, setup,
                                        teardown_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
