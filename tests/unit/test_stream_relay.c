/* The relay (core/stream_relay.c, rs_stream_relay): what one stream
 * receives is written to another by the stream layer, without on_data.
 * Driven by the scripted fake backend, which decides every partial send,
 * EOF and error: the relay must keep what an owner's on_data kept —
 * order, the --max-pending bound (the source stops reading), short sends
 * continued, the half-close forwarded, a reset left to the owner (never
 * turned into a FIN), a stop that cuts visibly, each lent buffer released
 * once — and give the stream back to its owner when it ends. The same on
 * real backends: test_relay.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocol.h"
#include "stream_fixture.h"

#define FD_B (FD + 1)

/* What the owner's callbacks saw. */
static struct {
    int data, eofs, writables, closes;
    uint32_t data_bytes;
    int close_reason;
    /* In on_close: the other stream's relay target, and whether it had
     * one (the relay must be gone before on_close). */
    struct rs_stream *watch;
    bool watch_relayed_at_close;
} seen;

static void t_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    (void)p;
    seen.data++;
    seen.data_bytes += len;
    rs_stream_release(s, bid);
}

static void t_eof(struct rs_stream *s)
{
    (void)s;
    seen.eofs++;
}

static void t_writable(struct rs_stream *s)
{
    (void)s;
    seen.writables++;
}

static void t_close(struct rs_stream *s, int reason)
{
    (void)s;
    seen.closes++;
    seen.close_reason = reason;
    if (seen.watch)
        seen.watch_relayed_at_close = rs_stream_relay_target(seen.watch) != NULL;
}

/* No on_eof: the relay's default (forward the half-close). */
static const struct rs_protocol plain_proto = {
    .name = "relay-test",
    .cbs = {.on_data = t_data, .on_writable = t_writable, .on_close = t_close}};
static const struct rs_protocol eof_proto = {.name = "relay-test-eof",
                                             .cbs = {.on_data = t_data,
                                                     .on_eof = t_eof,
                                                     .on_writable = t_writable,
                                                     .on_close = t_close}};

static int use(void **state, uint64_t max_pending, const struct rs_protocol *proto)
{
    setup_with(state, max_pending);
    struct fixture *fx = *state;
    fx->loop.proto = proto;
    memset(&seen, 0, sizeof(seen));
    return 0;
}
static int setup_plain(void **state)
{
    return use(state, 1u << 20, &plain_proto);
}
static int setup_plain_small(void **state)
{
    return use(state, 100, &plain_proto);
}
static int setup_eof(void **state)
{
    return use(state, 1u << 20, &eof_proto);
}

static struct rs_op *op_on(struct fixture *fx, int fd, uint8_t kind)
{
    return fake_find(&fx->loop, kind, fd);
}

static uint16_t recv_on(struct fixture *fx, int fd, const char *s)
{
    uint32_t len = (uint32_t)strlen(s);
    uint16_t bid = fake_lend(&fx->loop, s, len);
    struct rs_op *r = op_on(fx, fd, RS_OP_RECV);
    assert_non_null(r);
    fake_complete(&fx->loop, r, (int32_t)len, RS_CF_BUFFER | RS_CF_MORE, bid);
    fake_run(&fx->loop);
    return bid;
}

static void complete_on(struct fixture *fx, int fd, uint8_t kind, int32_t res)
{
    struct rs_op *op = op_on(fx, fd, kind);
    assert_non_null(op);
    fake_complete(&fx->loop, op, res, 0, 0);
    fake_run(&fx->loop);
}

static void send_is(struct fixture *fx, int fd, const char *want)
{
    struct rs_op *op = op_on(fx, fd, RS_OP_SEND);
    assert_non_null(op);
    uint8_t got[256];
    assert_int_equal(op->len, strlen(want));
    fake_send_gather(op, got);
    assert_memory_equal(got, want, op->len);
}

/* A's EOF (the relay shuts B down), B's EOF (B relays nowhere: it shuts
 * itself down, already done), A shut down by its owner; both close. */
static void close_pair(struct fixture *fx)
{
    complete_on(fx, FD, RS_OP_RECV, 0);
    complete_on(fx, FD_B, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD_B, RS_OP_RECV, 0);
    struct rs_stream *a = op_on(fx, FD, RS_OP_SHUTDOWN) ? NULL : fx->loop.streams;
    for (; a && a->fd != FD; a = a->next)
        ;
    if (a)
        rs_stream_shutdown(a);
    complete_on(fx, FD, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
    complete_on(fx, FD_B, RS_OP_CLOSE, 0);
}

/* A -> B: every chunk goes to B's queue in order, the first as B's slot,
 * a short send continues where it stopped, each buffer is released once
 * its last byte is sent; the owner's on_data never runs; the counters
 * (the owner's, the loop's bytes and round trips) and the idle flags move
 * as they would with on_data. */
static void test_relay_forwards_in_order(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    struct rs_stream *b = rs_stream_accept(&fx->loop, FD_B, false, false);
    uint64_t count = 0;
    assert_int_equal(rs_stream_relay(a, b, &count), 0);
    assert_ptr_equal(rs_stream_relay_target(a), b);
    assert_null(rs_stream_relay_target(b));
    uint16_t b1 = recv_on(fx, FD, "0123456789");
    send_is(fx, FD_B, "0123456789");
    uint16_t b2 = recv_on(fx, FD, "abc");
    uint16_t b3 = recv_on(fx, FD, "def");
    assert_int_equal(rs_stream_pending(b), 16);
    assert_null(op_on(fx, FD, RS_OP_SEND)); /* nothing goes back to A */
    complete_on(fx, FD_B, RS_OP_SEND, 4);   /* short */
    send_is(fx, FD_B, "456789");
    assert_int_equal(fake(&fx->loop)->released[b1], 0);
    complete_on(fx, FD_B, RS_OP_SEND, 6);
    assert_int_equal(fake(&fx->loop)->released[b1], 1);
    send_is(fx, FD_B, "abcdef");
    complete_on(fx, FD_B, RS_OP_SEND, 5); /* short, inside the second chunk */
    assert_int_equal(fake(&fx->loop)->released[b2], 1);
    assert_int_equal(fake(&fx->loop)->released[b3], 0);
    send_is(fx, FD_B, "f");
    complete_on(fx, FD_B, RS_OP_SEND, 1);
    assert_int_equal(fake(&fx->loop)->released[b3], 1);
    assert_int_equal(seen.data, 0);
    assert_int_equal(count, 16);
    assert_int_equal(fx->loop.stats.bytes_in, 16);
    assert_int_equal(fx->loop.stats.bytes_out, 16);
    assert_int_equal(fx->loop.stats.round_trips, 3);
    assert_true(a->active && b->active);
    assert_non_null(op_on(fx, FD, RS_OP_RECV)); /* A reads on */
    close_pair(fx);
    assert_int_equal(seen.closes, 2);
    assert_int_equal(seen.close_reason, 0);
}

/* A stream relaying to itself is an echo: the same bytes go back on it. */
static void test_relay_to_itself_echoes(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    assert_int_equal(rs_stream_relay(a, a, NULL), 0);
    recv_on(fx, FD, "ping");
    send_is(fx, FD, "ping");
    complete_on(fx, FD, RS_OP_SEND, 4);
    assert_int_equal(seen.data, 0);
    assert_int_equal(fx->loop.stats.round_trips, 1);
    /* The EOF: our side shuts down (to == from). */
    complete_on(fx, FD, RS_OP_RECV, 0);
    complete_on(fx, FD, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
    assert_int_equal(seen.closes, 1);
}

/* B's queue past --max-pending (100) holds A: its recv is cancelled, and
 * armed again only when a send brought B down to its low watermark (50).
 * What raced the cancel is still relayed. The owner's own read_stop is a
 * separate wish: a drained B does not override it. */
static void test_relay_backpressure_bound(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    struct rs_stream *b = rs_stream_accept(&fx->loop, FD_B, false, false);
    assert_int_equal(rs_stream_relay(a, b, NULL), 0);
    char msg[61];
    memset(msg, 'x', 60);
    msg[60] = '\0';
    recv_on(fx, FD, msg);
    struct rs_op *r = op_on(fx, FD, RS_OP_RECV);
    assert_false(fake_was_cancelled(&fx->loop, r));
    recv_on(fx, FD, msg); /* 120 > 100: held */
    assert_true(fake_was_cancelled(&fx->loop, r));
    recv_on(fx, FD, msg); /* raced the cancel: relayed, not lost */
    assert_int_equal(rs_stream_pending(b), 180);
    complete_on(fx, FD, RS_OP_RECV, -ECANCELED);
    assert_null(op_on(fx, FD, RS_OP_RECV));
    complete_on(fx, FD_B, RS_OP_SEND, 60); /* 120 left: still held */
    assert_null(op_on(fx, FD, RS_OP_RECV));
    complete_on(fx, FD_B, RS_OP_SEND, 60); /* 60 left, above 50 */
    assert_null(op_on(fx, FD, RS_OP_RECV));
    complete_on(fx, FD_B, RS_OP_SEND, 30); /* 30 <= 50: reads again */
    assert_non_null(op_on(fx, FD, RS_OP_RECV));
    /* Held again, then the owner stops reading too: the drain does not
     * start what the owner stopped. */
    recv_on(fx, FD, msg);
    recv_on(fx, FD, msg);
    r = op_on(fx, FD, RS_OP_RECV);
    assert_true(fake_was_cancelled(&fx->loop, r));
    complete_on(fx, FD, RS_OP_RECV, -ECANCELED);
    rs_stream_read_stop(a);
    complete_on(fx, FD_B, RS_OP_SEND, 30);
    complete_on(fx, FD_B, RS_OP_SEND, 120);
    assert_int_equal(rs_stream_pending(b), 0);
    assert_null(op_on(fx, FD, RS_OP_RECV));
    rs_stream_read_start(a);
    assert_non_null(op_on(fx, FD, RS_OP_RECV));
    assert_int_equal(seen.data, 0);
    close_pair(fx);
}

/* A's EOF, with no on_eof: B shuts down, after what was relayed to it is
 * sent; B's direction keeps flowing to A. */
static void test_relay_forwards_eof(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    struct rs_stream *b = rs_stream_accept(&fx->loop, FD_B, false, false);
    assert_int_equal(rs_stream_relay(a, b, NULL), 0);
    assert_int_equal(rs_stream_relay(b, a, NULL), 0);
    recv_on(fx, FD, "last");
    complete_on(fx, FD, RS_OP_RECV, 0);           /* A's EOF */
    assert_null(op_on(fx, FD_B, RS_OP_SHUTDOWN)); /* "last" first */
    assert_null(op_on(fx, FD, RS_OP_SHUTDOWN));
    complete_on(fx, FD_B, RS_OP_SEND, 4);
    assert_non_null(op_on(fx, FD_B, RS_OP_SHUTDOWN));
    complete_on(fx, FD_B, RS_OP_SHUTDOWN, 0);
    recv_on(fx, FD_B, "reply"); /* the other direction flows */
    send_is(fx, FD, "reply");
    complete_on(fx, FD, RS_OP_SEND, 5);
    complete_on(fx, FD_B, RS_OP_RECV, 0);
    complete_on(fx, FD, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
    complete_on(fx, FD_B, RS_OP_CLOSE, 0);
    assert_int_equal(seen.closes, 2);
    assert_int_equal(seen.close_reason, 0);
}

/* With an on_eof the owner decides: nothing is shut down for it. */
static void test_relay_eof_goes_to_owner(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    struct rs_stream *b = rs_stream_accept(&fx->loop, FD_B, false, false);
    assert_int_equal(rs_stream_relay(a, b, NULL), 0);
    complete_on(fx, FD, RS_OP_RECV, 0);
    assert_int_equal(seen.eofs, 1);
    assert_null(op_on(fx, FD_B, RS_OP_SHUTDOWN));
    assert_null(op_on(fx, FD, RS_OP_SHUTDOWN));
    rs_stream_shutdown(a);
    rs_stream_shutdown(b);
    complete_on(fx, FD, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD_B, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD_B, RS_OP_RECV, 0);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
    complete_on(fx, FD_B, RS_OP_CLOSE, 0);
}

/* rs_stream_relay_stop: what A receives next goes to on_data, and a hold
 * is lifted (backpressure is the owner's again). */
static void test_relay_stop_returns_control(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    struct rs_stream *b = rs_stream_accept(&fx->loop, FD_B, false, false);
    assert_int_equal(rs_stream_relay(a, b, NULL), 0);
    char msg[61];
    memset(msg, 'y', 60);
    msg[60] = '\0';
    recv_on(fx, FD, msg);
    recv_on(fx, FD, msg); /* held */
    complete_on(fx, FD, RS_OP_RECV, -ECANCELED);
    assert_null(op_on(fx, FD, RS_OP_RECV));
    rs_stream_relay_stop(a);
    rs_stream_relay_stop(a); /* idempotent */
    assert_null(rs_stream_relay_target(a));
    assert_non_null(op_on(fx, FD, RS_OP_RECV)); /* the hold is gone */
    recv_on(fx, FD, "mine");
    assert_int_equal(seen.data, 1);
    assert_int_equal(seen.data_bytes, 4);
    assert_int_equal(rs_stream_pending(b), 120); /* relayed bytes stay queued */
    /* B may be relayed to again, from another source. */
    assert_int_equal(rs_stream_relay(b, b, NULL), 0);
    complete_on(fx, FD_B, RS_OP_SEND, 60);
    complete_on(fx, FD_B, RS_OP_SEND, 60);
    /* No relay from A: its EOF shuts A down; B echoes its own. */
    complete_on(fx, FD, RS_OP_RECV, 0);
    complete_on(fx, FD, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
    complete_on(fx, FD_B, RS_OP_RECV, 0);
    complete_on(fx, FD_B, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD_B, RS_OP_CLOSE, 0);
}

/* The destination is freed (its peer reset it): the relay ends before its
 * on_close, the held source reads again (for its owner's on_data), and
 * nothing of the reset turns into a FIN on the source: what the source's
 * peer sees is its owner's decision. */
static void test_relay_ends_when_destination_freed(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    rs_stream_accept(&fx->loop, FD_B, false, false);
    struct rs_stream *b = fx->loop.streams; /* the newest */
    assert_int_equal(b->fd, FD_B);
    assert_int_equal(rs_stream_relay(a, b, NULL), 0);
    seen.watch = a;
    char msg[61];
    memset(msg, 'z', 60);
    msg[60] = '\0';
    recv_on(fx, FD, msg);
    recv_on(fx, FD, msg); /* held */
    complete_on(fx, FD, RS_OP_RECV, -ECANCELED);
    complete_on(fx, FD_B, RS_OP_SEND, -ECONNRESET); /* B's peer reset */
    assert_int_equal(fx->loop.stats.resets_in, 1);
    complete_on(fx, FD_B, RS_OP_RECV, -ECANCELED);
    complete_on(fx, FD_B, RS_OP_CLOSE, 0);
    assert_int_equal(seen.closes, 1);
    assert_int_equal(seen.close_reason, -ECONNRESET);
    assert_false(seen.watch_relayed_at_close);
    assert_null(rs_stream_relay_target(a));
    assert_null(op_on(fx, FD, RS_OP_SHUTDOWN)); /* no FIN made up */
    assert_non_null(op_on(fx, FD, RS_OP_RECV));
    recv_on(fx, FD, "after");
    assert_int_equal(seen.data, 1);
    seen.watch = NULL;
    rs_stream_reset(a); /* what a proxy does: a reset stays a reset */
    complete_on(fx, FD, RS_OP_RECV, -ECANCELED);
    struct rs_op *c = op_on(fx, FD, RS_OP_CLOSE);
    assert_non_null(c);
    assert_true(c->flags & RS_OPF_RESET);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
}

/* A source that fails (its peer reset it) is closed with the error; its
 * destination gets no shutdown from the relay. */
static void test_relay_source_reset_is_no_eof(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    struct rs_stream *b = rs_stream_accept(&fx->loop, FD_B, false, false);
    assert_int_equal(rs_stream_relay(a, b, NULL), 0);
    recv_on(fx, FD, "part");
    complete_on(fx, FD, RS_OP_RECV, -ECONNRESET);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
    assert_int_equal(seen.close_reason, -ECONNRESET);
    assert_null(rs_stream_relay_target(a));
    complete_on(fx, FD_B, RS_OP_SEND, 4);
    assert_null(op_on(fx, FD_B, RS_OP_SHUTDOWN));
    assert_true(rs_stream_is_open(b));
    rs_stream_reset(b);
    complete_on(fx, FD_B, RS_OP_RECV, -ECANCELED);
    struct rs_op *c = op_on(fx, FD_B, RS_OP_CLOSE);
    assert_non_null(c);
    assert_true(c->flags & RS_OPF_RESET);
    complete_on(fx, FD_B, RS_OP_CLOSE, 0);
}

/* A stop on a stream relaying to itself (echo's default end): what was
 * relayed is sent; input after the stop is dropped, not relayed, and the
 * end is a reset, never a FIN (the stop cut the transfer). A relay that
 * held the stream does not keep the stop from reading to drop. */
static void test_relay_stop_cuts_visibly(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    assert_int_equal(rs_stream_relay(a, a, NULL), 0);
    char msg[61];
    memset(msg, 's', 60);
    msg[60] = '\0';
    recv_on(fx, FD, msg);
    recv_on(fx, FD, msg); /* held: 120 > 100 */
    complete_on(fx, FD, RS_OP_RECV, -ECANCELED);
    rs_stream_stop(a);
    complete_on(fx, FD, RS_OP_SEND, 60);
    complete_on(fx, FD, RS_OP_SEND, 60);
    /* Sent; no FIN before the peer's EOF: reading to drop, hold or not. */
    assert_null(op_on(fx, FD, RS_OP_SHUTDOWN));
    assert_non_null(op_on(fx, FD, RS_OP_RECV));
    recv_on(fx, FD, "cut");
    assert_null(op_on(fx, FD, RS_OP_SEND)); /* not relayed */
    assert_int_equal(fx->loop.stats.dropped, 3);
    complete_on(fx, FD, RS_OP_RECV, -ECANCELED);
    struct rs_op *c = op_on(fx, FD, RS_OP_CLOSE);
    assert_non_null(c);
    assert_true(c->flags & RS_OPF_RESET);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
    assert_int_equal(seen.closes, 1);
    assert_true(seen.close_reason < 0);
}

/* One relay per source and per destination; open streams only. */
static void test_relay_refusals(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *a = rs_stream_accept(&fx->loop, FD, false, false);
    struct rs_stream *b = rs_stream_accept(&fx->loop, FD_B, false, false);
    assert_int_equal(rs_stream_relay(a, b, NULL), 0);
    assert_int_equal(rs_stream_relay(a, a, NULL), -EBUSY); /* a relays already */
    assert_int_equal(rs_stream_relay(b, b, NULL), -EBUSY); /* b is a's target */
    assert_int_equal(rs_stream_relay(b, a, NULL), 0);
    rs_stream_relay_stop(a);
    rs_stream_relay_stop(b);
    rs_stream_close(a);
    assert_int_equal(rs_stream_relay(a, b, NULL), -EPIPE);
    assert_int_equal(rs_stream_relay(b, a, NULL), -EPIPE);
    complete_on(fx, FD, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD, RS_OP_RECV, 0);
    complete_on(fx, FD, RS_OP_CLOSE, 0);
    complete_on(fx, FD_B, RS_OP_RECV, 0);
    complete_on(fx, FD_B, RS_OP_SHUTDOWN, 0);
    complete_on(fx, FD_B, RS_OP_CLOSE, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relay_forwards_in_order, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relay_to_itself_echoes, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relay_backpressure_bound, setup_plain_small,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relay_forwards_eof, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_relay_eof_goes_to_owner, setup_eof,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relay_stop_returns_control,
                                        setup_plain_small, teardown),
        cmocka_unit_test_setup_teardown(test_relay_ends_when_destination_freed,
                                        setup_plain_small, teardown),
        cmocka_unit_test_setup_teardown(test_relay_source_reset_is_no_eof, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relay_stop_cuts_visibly, setup_plain_small,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_relay_refusals, setup_plain, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
