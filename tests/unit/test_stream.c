/* The stream state machine, driven by the scripted fake backend: every
 * completion, partial result and error is chosen by the test. */
#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fake_backend.h"
#include "loop.h"
#include "stream.h"

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
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fx->loop.pool.lent, 0);
    assert_int_equal(fake(&fx->loop)->ninflight, 0);
    for (uint32_t i = 0; i < fx->loop.pool.count; i++)
        assert_true(fake(&fx->loop)->released[i] <= 1 || fx->loop.pool.held[i] == 0);
    rs_loop_fini(&fx->loop);
    free(fx);
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

static void test_stream_echo_partial_sends(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
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

static void test_stream_pipelined_order(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
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

static void test_stream_eof_with_pending_output(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
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

static void test_stream_error_mid_send(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
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

static void test_stream_recv_error_while_sending(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
    uint16_t bid = recv_data(fx, "data", true);
    complete(fx, RS_OP_RECV, -ECONNRESET);
    /* The send still references the lent buffer: not released yet. */
    assert_int_equal(fake(&fx->loop)->released[bid], 0);
    assert_null(op_of(fx, RS_OP_CLOSE));
    complete(fx, RS_OP_SEND, -ECANCELED);
    assert_int_equal(fake(&fx->loop)->released[bid], 1);
    complete(fx, RS_OP_CLOSE, 0);
}

static void test_stream_backpressure(void **state)
{
    struct fixture *fx = *state; /* max_pending = 100 */
    rs_stream_accept(&fx->loop, FD, false, false);
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

static void test_stream_enobufs_starves_then_rearms(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *c = rs_stream_accept(&fx->loop, FD, false, false);
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

static void test_stream_single_shot_rearm(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
    /* A backend that ignores RS_OPF_MULTISHOT completes without MORE. */
    recv_data(fx, "a", false);
    assert_non_null(op_of(fx, RS_OP_RECV));
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_RECV], 2);
    complete(fx, RS_OP_SEND, 1);
    close_by_eof(fx);
}

static void test_stream_abort_releases_queued_buffers(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *c = rs_stream_accept(&fx->loop, FD, false, false);
    uint16_t b1 = recv_data(fx, "first", true);
    uint16_t b2 = recv_data(fx, "second", true);
    rs_stream_abort(c); /* e.g. idle timeout */
    /* b2 was queued (or copied): released; b1 is in the in-flight send. */
    assert_int_equal(fake(&fx->loop)->released[b2], 1);
    assert_int_equal(fake(&fx->loop)->released[b1], 0);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_SEND, -ECANCELED);
    assert_int_equal(fake(&fx->loop)->released[b1], 1);
    complete(fx, RS_OP_CLOSE, 0);
}

static void test_stream_reject_closes_at_once(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, true);
    assert_null(op_of(fx, RS_OP_RECV));
    assert_non_null(op_of(fx, RS_OP_CLOSE));
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fx->loop.stats.rejected, 1);
}

static void test_stream_finish_drains_output(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *c = rs_stream_accept(&fx->loop, FD, false, false);
    recv_data(fx, "bye", true);
    rs_stream_close(c); /* SIGTERM: finish the echo, then a lingering close */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_echo_partial_sends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_pipelined_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_eof_with_pending_output, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_error_mid_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_recv_error_while_sending, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_backpressure, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_stream_enobufs_starves_then_rearms, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_single_shot_rearm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_abort_releases_queued_buffers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_reject_closes_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_finish_drains_output, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
