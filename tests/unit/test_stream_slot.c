/* The lent slot (core/stream.c): a lent buffer written while nothing is
 * queued is sent from the stream itself, without a chunk. Driven by the
 * scripted fake backend, which decides every partial result: the slot's
 * edge cases must keep the output queue's contract — order, partial sends
 * continued, each buffer released exactly once and only after the kernel
 * is done with it, a stop that loses nothing, a reset that stays one. The
 * same cases on real backends: test_lent_slot.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "stream_fixture.h"

static const uint8_t *buf_of(struct fixture *fx, uint16_t bid)
{
    return rs_bufpool_ptr(&fx->loop.pool, bid);
}

/* A partial send of the slot continues from the slot, ahead of everything
 * written behind it meanwhile (a lent buffer, a copy); the buffer goes
 * back only when its last byte is sent; once the queue is empty again the
 * next lent write takes the slot again. */
static void test_slot_partial_send_keeps_order(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    uint16_t b1 = recv_data(fx, "0123456789", true);
    struct rs_op *op = op_of(fx, RS_OP_SEND);
    assert_non_null(op);
    assert_ptr_equal(op->buf, buf_of(fx, b1));
    assert_int_equal(op->len, 10);
    /* Written while the slot's send is in flight: queued behind it. */
    uint16_t b2 = recv_data(fx, "abc", true);
    rs_stream_write_copy(s, (const uint8_t *)"XY", 2);
    assert_int_equal(rs_stream_pending(s), 15);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_SEND], 1);
    complete(fx, RS_OP_SEND, 4);
    op = op_of(fx, RS_OP_SEND);
    assert_false(op->flags & RS_OPF_MSG); /* the slot's rest, alone */
    assert_ptr_equal(op->buf, buf_of(fx, b1) + 4);
    assert_int_equal(op->len, 6);
    assert_int_equal(fake(&fx->loop)->released[b1], 0);
    complete(fx, RS_OP_SEND, 6);
    assert_int_equal(fake(&fx->loop)->released[b1], 1);
    /* Then the chunks, in the order written. */
    op = op_of(fx, RS_OP_SEND);
    assert_int_equal(op->len, 5);
    uint8_t got[5];
    fake_send_gather(op, got);
    assert_memory_equal(got, "abcXY", 5);
    assert_int_equal(fake(&fx->loop)->released[b2], 0);
    complete(fx, RS_OP_SEND, 5);
    assert_int_equal(fake(&fx->loop)->released[b2], 1);
    assert_int_equal(rs_stream_pending(s), 0);
    /* Empty again: the next echo takes the slot. */
    uint16_t b3 = recv_data(fx, "zz", true);
    uint32_t was = fake(&fx->loop)->released[b3]; /* it may be b1 or b2 again */
    op = op_of(fx, RS_OP_SEND);
    assert_ptr_equal(op->buf, buf_of(fx, b3));
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_SEND], 4);
    complete(fx, RS_OP_SEND, 2);
    assert_int_equal(fake(&fx->loop)->released[b3], was + 1);
    assert_int_equal(fx->loop.stats.bytes_out, 17);
    close_by_eof(fx);
}

/* A stop while the slot's send is in flight: the send is not cancelled,
 * its rest goes out after a partial result, and the FIN waits for the
 * peer's EOF (nothing was cut). */
static void test_slot_stop_while_in_flight(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    uint16_t b = recv_data(fx, "hello", true);
    struct rs_op *op = op_of(fx, RS_OP_SEND);
    rs_stream_stop(s);
    assert_false(fake_was_cancelled(&fx->loop, op));
    complete(fx, RS_OP_SEND, 2);
    op = op_of(fx, RS_OP_SEND);
    assert_non_null(op);
    assert_ptr_equal(op->buf, buf_of(fx, b) + 2);
    assert_int_equal(op->len, 3);
    complete(fx, RS_OP_SEND, 3);
    assert_int_equal(fake(&fx->loop)->released[b], 1);
    assert_int_equal(fx->loop.stats.bytes_out, 5);
    assert_null(op_of(fx, RS_OP_SHUTDOWN)); /* no FIN before the peer's EOF */
    complete(fx, RS_OP_RECV, 0);
    complete(fx, RS_OP_SHUTDOWN, 0);
    struct rs_op *c = op_of(fx, RS_OP_CLOSE);
    assert_non_null(c);
    assert_false(c->flags & RS_OPF_RESET);
    complete(fx, RS_OP_CLOSE, 0);
}

/* An abort while the slot's send is in flight: the send is cancelled, but
 * the buffer stays lent until its completion says the kernel let go. Also
 * after a partial result (the rest in flight). */
static void test_slot_abort_while_in_flight(void **state)
{
    struct fixture *fx = *state;
    for (int partial = 0; partial < 2; partial++) {
        struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
        uint16_t b = recv_data(fx, "hello", true);
        if (partial)
            complete(fx, RS_OP_SEND, 2);
        struct rs_op *op = op_of(fx, RS_OP_SEND);
        rs_stream_abort(s);
        assert_true(fake_was_cancelled(&fx->loop, op));
        assert_int_equal(fake(&fx->loop)->released[b], 0);
        complete(fx, RS_OP_SEND, -ECANCELED);
        assert_int_equal(fake(&fx->loop)->released[b], 1);
        complete(fx, RS_OP_RECV, -ECANCELED);
        complete(fx, RS_OP_CLOSE, 0);
        assert_int_equal(fake(&fx->loop)->released[b], 1);
        fake(&fx->loop)->released[b] = 0; /* the next round may get it again */
    }
}

/* A reset while the slot's send is in flight: the slot is flushed (a
 * partial result continued), then the close carries the reset — no FIN. */
static void test_slot_reset_flushes_then_resets(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    uint16_t b = recv_data(fx, "hello", true);
    rs_stream_reset(s);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_SEND, 1);
    assert_int_equal(op_of(fx, RS_OP_SEND)->len, 4);
    complete(fx, RS_OP_SEND, 4);
    assert_int_equal(fake(&fx->loop)->released[b], 1);
    assert_null(op_of(fx, RS_OP_SHUTDOWN));
    struct rs_op *c = op_of(fx, RS_OP_CLOSE);
    assert_non_null(c);
    assert_true(c->flags & RS_OPF_RESET);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_SHUTDOWN], 0);
    assert_int_equal(fx->loop.stats.bytes_out, 5);
}

/* A send error on the slot ends the stream and releases the buffer once:
 * the send's completion is the kernel letting go. */
static void test_slot_send_error_releases_once(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
    uint16_t b = recv_data(fx, "hello", true);
    uint16_t b2 = recv_data(fx, "more", true); /* a chunk behind it */
    complete(fx, RS_OP_SEND, -ECONNRESET);
    assert_int_equal(fake(&fx->loop)->released[b], 1);
    assert_int_equal(fake(&fx->loop)->released[b2], 1);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fx->loop.stats.resets_in, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slot_partial_send_keeps_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slot_stop_while_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_abort_while_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slot_reset_flushes_then_resets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_slot_send_error_releases_once, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
