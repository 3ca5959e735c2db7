/* The stream state machine, driven by the scripted fake backend: every
 * completion, partial result and error is chosen by the test. */
#include <errno.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_backend.h"
#include "stream_fixture.h"
#include "fs.h"
#include "loop.h"
#include "protocol.h"
#include "stream.h"

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

/* Traffic marks a stream active without reading the clock: the idle scan
 * turns the flag into a stamp of its own time (loop.c). A receive and a
 * send each used to stamp the stream with rs_loop_now, which read the
 * clock once per turn, twice per round trip at one connection. */
static void test_stream_activity_reads_no_clock(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    uint64_t created = s->last_active_ms;
    assert_false(s->active);
    /* A turn's wait just ended: now_ms is stale, and a value no clock
     * reading gives, so a read would show. */
    fx->loop.now_stale = true;
    fx->loop.now_ms = 7;
    recv_data(fx, "ping", true);
    assert_true(s->active);
    complete(fx, RS_OP_SEND, 4);
    assert_true(fx->loop.now_stale);
    assert_int_equal(fx->loop.now_ms, 7);
    assert_true(s->last_active_ms == created); /* stamped by the scan only */
    assert_int_equal(fx->loop.stats.bytes_out, 4);
    fx->loop.now_ms = rs_now_ms();
    fx->loop.now_stale = false;
    close_by_eof(fx);
}

static void on_ref_sent(struct rs_fs_req *req)
{
    int *calls = req->data;
    (*calls)++;
}

/* rs_fs_send queues the caller's bytes by reference: the send points into
 * them (no copy), is never zero-copy (the caller reuses the memory once
 * told, while a zero-copy send may still be read by the kernel after its
 * completion), and the request is told on a later turn: the length once
 * all went out; -ECANCELED for bytes dropped with the stream. Static
 * bytes, by contrast, may go zero-copy. */
static void test_stream_ref_send_not_zero_copy(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    static const uint8_t stat[] = "static";
    rs_stream_write_static(s, stat, 6);
    struct rs_op *op = op_of(fx, RS_OP_SEND);
    assert_non_null(op);
    assert_true(op->flags & RS_OPF_STATIC_BUF);
    complete(fx, RS_OP_SEND, 6);
    uint8_t mine[10] = "0123456789";
    int calls = 0;
    struct rs_fs_req req = {.data = &calls};
    assert_int_equal(rs_fs_send(&fx->loop, &req, s, mine, 10, on_ref_sent), 0);
    op = op_of(fx, RS_OP_SEND);
    assert_non_null(op);
    assert_ptr_equal(op->buf, mine);
    assert_false(op->flags & RS_OPF_STATIC_BUF);
    assert_int_equal(rs_fs_cancel(&req), -EOPNOTSUPP);
    complete(fx, RS_OP_SEND, 4);
    op = op_of(fx, RS_OP_SEND);
    assert_ptr_equal(op->buf, mine + 4);
    assert_false(op->flags & RS_OPF_STATIC_BUF);
    complete(fx, RS_OP_SEND, 6);
    assert_int_equal(calls, 0); /* told on the next turn, not inside run() */
    rs_loop_retry(&fx->loop);
    assert_int_equal(calls, 1);
    assert_int_equal(req.result, 10);
    /* Dropped: the stream is aborted while the bytes wait behind a send. */
    rs_stream_write_copy(s, (const uint8_t *)"x", 1);
    assert_int_equal(rs_fs_send(&fx->loop, &req, s, mine, 10, on_ref_sent), 0);
    rs_stream_abort(s);
    assert_int_equal(calls, 1);
    complete(fx, RS_OP_SEND, -ECANCELED);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
    rs_loop_retry(&fx->loop);
    assert_int_equal(calls, 2);
    assert_int_equal(req.result, -ECANCELED);
}

static void test_stream_pipelined_order(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
    recv_data(fx, "aaa", true);
    recv_data(fx, "bbb", true);
    recv_data(fx, "ccc", true);
    /* One send in flight at a time, in arrival order: "aaa" alone, then
     * the two chunks queued meanwhile in one vectored send. */
    struct rs_op *s = op_of(fx, RS_OP_SEND);
    assert_false(s->flags & RS_OPF_MSG);
    assert_int_equal(s->len, 3);
    complete(fx, RS_OP_SEND, 3);
    s = op_of(fx, RS_OP_SEND);
    assert_true(s->flags & RS_OPF_MSG);
    assert_int_equal(s->len, 6);
    uint8_t got[6];
    fake_send_gather(s, got);
    assert_memory_equal(got, "bbbccc", 6);
    /* A short vectored send continues in the middle of a chunk. */
    complete(fx, RS_OP_SEND, 4);
    s = op_of(fx, RS_OP_SEND);
    assert_int_equal(s->len, 2);
    assert_memory_equal(s->buf, "cc", 2);
    complete(fx, RS_OP_SEND, 2);
    assert_int_equal(fx->loop.stats.bytes_out, 9);
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

/* ---- refusals: a backend that says "not now" (issue 11) ----------------
 * A full io_uring SQ makes cancel() and submit() return -EBUSY, an epoll
 * backend out of memory -ENOMEM. Nothing was issued then, so nothing will
 * complete: the core must not record it as issued, and must try again on
 * a later loop turn (rs_loop_retry), or the connection waits forever. */

static void test_stream_refused_pause_cancel_is_retried(void **state)
{
    struct fixture *fx = *state; /* max_pending = 100 */
    struct rs_stream *c = rs_stream_accept(&fx->loop, FD, false, false);
    char msg[61];
    memset(msg, 'x', 60);
    msg[60] = '\0';
    recv_data(fx, msg, true);
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    fake(&fx->loop)->refuse_cancel = 2;
    recv_data(fx, msg, true);   /* 120 > 100: pause, but the cancel is refused */
    assert_true(c->relay_hold); /* echo relays to itself: the relay holds it */
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

static void test_stream_refused_abort_cancels_are_retried(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *c = rs_stream_accept(&fx->loop, FD, false, false);
    recv_data(fx, "data", true);
    struct rs_op *r = op_of(fx, RS_OP_RECV), *s = op_of(fx, RS_OP_SEND);
    fake(&fx->loop)->refuse_cancel = 2; /* both the recv's and the send's */
    rs_stream_abort(c);
    assert_false(fake_was_cancelled(&fx->loop, r));
    assert_false(fake_was_cancelled(&fx->loop, s));
    rs_loop_retry(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, r));
    assert_true(fake_was_cancelled(&fx->loop, s));
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_SEND, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
}

static void test_stream_refused_close_is_retried(void **state)
{
    struct fixture *fx = *state;
    fake(&fx->loop)->refuse_submit[RS_OP_CLOSE] = 3;
    struct rs_stream *c =
        rs_stream_accept(&fx->loop, FD, false, true); /* closes at once */
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
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fx->loop.nretry, 0);
}

static void test_stream_refused_shutdown_is_retried(void **state)
{
    struct fixture *fx = *state;
    rs_stream_accept(&fx->loop, FD, false, false);
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
        rs_stream_accept(&fx->loop, fd, false, false);
    recv_data(fx, "pending output", true);
    struct fake_state *f = fake(&fx->loop);
    f->refuse_submit[RS_OP_CLOSE] = 7;
    f->refuse_submit[RS_OP_SHUTDOWN] = 2;
    f->auto_complete = true;
    rs_loop_request_stop(&fx->loop);
    assert_int_equal(rs_loop_run(&fx->loop), 0);
    assert_int_equal(fx->loop.nstreams, 0);
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
    struct rs_stream *c = rs_stream_accept(&fx->loop, FD, false, false);
    recv_data(fx, "in flight", true); /* a send in flight, lent */
    size_t big = 1u << 20;
    uint8_t *copy = calloc(1, big);
    assert_non_null(copy);
    rs_stream_write_copy(c, copy, (uint32_t)big); /* queued behind it, on the heap */
    rs_stream_write_static(c, (const uint8_t *)"static", 6);
    free(copy);
    fake(&fx->loop)->run_error = -EIO;
    assert_int_equal(rs_loop_run(&fx->loop), -EIO);
    assert_true(fx->loop.failed);
    rs_loop_fini(&fx->loop);
    assert_int_equal(mallinfo2().hblkhd, before);
    free(fx);
    *state = NULL;
}

/* ---- owner callbacks, outbound streams, half-close, timers --------- */

static struct {
    int connects, connect_res, eofs, writables, closes, close_reason, data;
    struct rs_stream *last;
} ev;

static void ev_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    (void)p;
    (void)len;
    ev.data++;
    rs_stream_release(s, bid);
}
static void ev_eof(struct rs_stream *s)
{
    ev.eofs++;
    ev.last = s;
}
static void ev_writable(struct rs_stream *s)
{
    ev.writables++;
    ev.last = s;
}
static void ev_connect(struct rs_stream *s, int res)
{
    ev.connects++;
    ev.connect_res = res;
    ev.last = s;
}
static void ev_close(struct rs_stream *s, int reason)
{
    ev.closes++;
    ev.close_reason = reason;
    ev.last = s;
}

static const struct rs_stream_cbs ev_cbs = {.on_data = ev_data,
                                            .on_eof = ev_eof,
                                            .on_writable = ev_writable,
                                            .on_connect = ev_connect,
                                            .on_close = ev_close};

/* Start a connect; its RS_OP_SOCKET is in flight (fd -1). */
static struct rs_stream *connect_start(struct fixture *fx, uint32_t timeout_ms)
{
    memset(&ev, 0, sizeof(ev));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(9),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct rs_stream *s = rs_stream_connect(&fx->loop, (struct sockaddr *)&a, sizeof(a),
                                            timeout_ms, &ev_cbs, fx);
    assert_non_null(s);
    assert_int_equal(s->state, RS_STREAM_CONNECTING);
    return s;
}

/* The stream's RS_OP_SOCKET: asked with TCP_NODELAY (the default config)
 * and a direct descriptor welcome, for the family connected to. */
static struct rs_op *socket_op(struct fixture *fx)
{
    struct rs_op *op = fake_find(&fx->loop, RS_OP_SOCKET, -1);
    assert_non_null(op);
    assert_int_equal(op->len, AF_INET);
    assert_true(op->flags & RS_OPF_NODELAY);
    assert_true(op->flags & RS_OPF_DIRECT);
    return op;
}

/* The fake does no IO; the socket is a real one, so that the connect
 * tests close it once its close op completed. */
static int complete_socket(struct fixture *fx, uint32_t flags)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    fake_complete(&fx->loop, socket_op(fx), fd, flags, 0);
    fake_run(&fx->loop);
    return fd;
}

/* A connect whose socket was made: the connect op is in flight. */
static struct rs_stream *connect_to(struct fixture *fx, uint32_t timeout_ms)
{
    struct rs_stream *s = connect_start(fx, timeout_ms);
    assert_int_equal(s->fd, -1);
    assert_null(
        fake_find(&fx->loop, RS_OP_CONNECT, -1)); /* no connect without a socket */
    int fd = complete_socket(fx, 0);
    assert_int_equal(s->fd, fd);
    assert_false(s->direct);
    assert_non_null(fake_find(&fx->loop, RS_OP_CONNECT, fd));
    return s;
}

/* The fake backend does no IO: the real socket rs_stream_connect made is
 * closed here once the close op completed. */
static void complete_close_of(struct fixture *fx, int fd)
{
    struct rs_op *op = fake_find(&fx->loop, RS_OP_CLOSE, fd);
    assert_non_null(op);
    fake_complete(&fx->loop, op, 0, 0, 0);
    fake_run(&fx->loop);
    close(fd);
}

static void test_stream_connect_then_flow(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = connect_to(fx, 1000);
    int fd = s->fd;
    struct rs_op *c = fake_find(&fx->loop, RS_OP_CONNECT, fd);
    assert_non_null(c);
    assert_int_equal(c->len, sizeof(struct sockaddr_in));
    /* Writes queued while connecting wait for the connection. */
    rs_stream_write_copy(s, (const uint8_t *)"early", 5);
    assert_null(fake_find(&fx->loop, RS_OP_SEND, fd));
    assert_null(fake_find(&fx->loop, RS_OP_RECV, fd));
    fake_complete(&fx->loop, c, 0, 0, 0);
    fake_run(&fx->loop);
    assert_int_equal(ev.connects, 1);
    assert_int_equal(ev.connect_res, 0);
    assert_int_equal(s->state, RS_STREAM_OPEN);
    assert_false(rs_timer_active(&s->timer)); /* the connect timer is gone */
    struct rs_op *snd = fake_find(&fx->loop, RS_OP_SEND, fd);
    assert_non_null(snd);
    assert_memory_equal(snd->buf, "early", 5);
    assert_non_null(fake_find(&fx->loop, RS_OP_RECV, fd));
    fake_complete(&fx->loop, snd, 5, 0, 0);
    fake_run(&fx->loop);
    /* Half-close, owner's way: on_eof does not shut our side down. */
    fake_complete(&fx->loop, fake_find(&fx->loop, RS_OP_RECV, fd), 0, 0, 0);
    fake_run(&fx->loop);
    assert_int_equal(ev.eofs, 1);
    assert_null(fake_find(&fx->loop, RS_OP_SHUTDOWN, fd));
    rs_stream_write_copy(s, (const uint8_t *)"late", 4); /* still flows out */
    snd = fake_find(&fx->loop, RS_OP_SEND, fd);
    assert_non_null(snd);
    rs_stream_shutdown(s); /* after the queued bytes */
    assert_null(fake_find(&fx->loop, RS_OP_SHUTDOWN, fd));
    fake_complete(&fx->loop, snd, 4, 0, 0);
    fake_run(&fx->loop);
    struct rs_op *sh = fake_find(&fx->loop, RS_OP_SHUTDOWN, fd);
    assert_non_null(sh);
    fake_complete(&fx->loop, sh, 0, 0, 0);
    fake_run(&fx->loop);
    /* Both directions done: the stream closes itself, gracefully. */
    assert_int_equal(ev.closes, 0);
    complete_close_of(fx, fd);
    assert_int_equal(ev.closes, 1);
    assert_int_equal(ev.close_reason, 0);
    assert_int_equal(fx->loop.stats.connects, 1);
    assert_int_equal(fx->loop.stats.connect_failed, 0);
}

static void test_stream_connect_refused(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = connect_to(fx, 0);
    int fd = s->fd;
    rs_stream_write_copy(s, (const uint8_t *)"lost", 4);
    fake_complete(&fx->loop, fake_find(&fx->loop, RS_OP_CONNECT, fd), -ECONNREFUSED, 0,
                  0);
    fake_run(&fx->loop);
    assert_int_equal(ev.connects, 1);
    assert_int_equal(ev.connect_res, -ECONNREFUSED);
    assert_null(fake_find(&fx->loop, RS_OP_SEND, fd));
    complete_close_of(fx, fd);
    assert_int_equal(ev.closes, 1);
    assert_int_equal(ev.close_reason, -ECONNREFUSED);
    assert_int_equal(fx->loop.stats.connect_failed, 1);
}

static void test_stream_connect_timeout(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = connect_to(fx, 250);
    int fd = s->fd;
    struct rs_op *c = fake_find(&fx->loop, RS_OP_CONNECT, fd);
    fx->loop.now_ms += 249;
    rs_timer_run_due(&fx->loop);
    assert_false(fake_was_cancelled(&fx->loop, c));
    fx->loop.now_ms += 1;
    assert_int_equal(rs_timer_next_ms(&fx->loop), 0);
    rs_timer_run_due(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, c));
    assert_int_equal(ev.connects, 0); /* the cancel still has to complete */
    fake_complete(&fx->loop, c, -ECANCELED, 0, 0);
    fake_run(&fx->loop);
    assert_int_equal(ev.connect_res, -ETIMEDOUT);
    complete_close_of(fx, fd);
    assert_int_equal(ev.close_reason, -ETIMEDOUT);
}

static void test_stream_abort_while_connecting(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = connect_to(fx, 1000);
    int fd = s->fd;
    struct rs_op *c = fake_find(&fx->loop, RS_OP_CONNECT, fd);
    rs_stream_abort(s);
    assert_true(fake_was_cancelled(&fx->loop, c));
    assert_null(fake_find(&fx->loop, RS_OP_CLOSE, fd)); /* not while connecting */
    fake_complete(&fx->loop, c, -ECANCELED, 0, 0);
    fake_run(&fx->loop);
    assert_int_equal(ev.connects, 0); /* the owner gave up: no on_connect */
    complete_close_of(fx, fd);
    assert_int_equal(ev.close_reason, -ECONNABORTED);
    assert_int_equal(fx->loop.ntimers, 0);
}

/* A direct socket: every op on it carries RS_OPF_DIRECT, and it is
 * counted. */
static void test_stream_socket_direct(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = connect_start(fx, 1000);
    int fd = complete_socket(fx, RS_CF_DIRECT);
    assert_true(s->direct);
    assert_int_equal(fx->loop.stats.connects_direct, 1);
    struct rs_op *c = fake_find(&fx->loop, RS_OP_CONNECT, fd);
    assert_non_null(c);
    assert_true(c->flags & RS_OPF_DIRECT);
    fake_complete(&fx->loop, c, 0, 0, 0);
    fake_run(&fx->loop);
    rs_stream_write_copy(s, (const uint8_t *)"x", 1);
    assert_true(fake_find(&fx->loop, RS_OP_SEND, fd)->flags & RS_OPF_DIRECT);
    assert_true(fake_find(&fx->loop, RS_OP_RECV, fd)->flags & RS_OPF_DIRECT);
    rs_stream_abort(s);
    fake_complete(&fx->loop, fake_find(&fx->loop, RS_OP_SEND, fd), -ECANCELED, 0, 0);
    fake_complete(&fx->loop, fake_find(&fx->loop, RS_OP_RECV, fd), -ECANCELED, 0, 0);
    fake_run(&fx->loop);
    assert_true(fake_find(&fx->loop, RS_OP_CLOSE, fd)->flags & RS_OPF_DIRECT);
    complete_close_of(fx, fd);
    assert_int_equal(ev.closes, 1);
}

/* No socket could be made (EMFILE): on_connect gets the error, then
 * on_close; there is nothing to close, so no close op. Whatever the owner
 * does from on_connect is harmless. */
static void owner_aborts(struct rs_stream *s, int res)
{
    ev_connect(s, res);
    rs_stream_write_copy(s, (const uint8_t *)"late", 4);
    rs_stream_abort(s);
    rs_stream_close(s);
}

static void test_stream_socket_failed(void **state)
{
    struct fixture *fx = *state;
    static const struct rs_stream_cbs cbs = {
        .on_data = ev_data, .on_connect = owner_aborts, .on_close = ev_close};
    for (int round = 0; round < 2; round++) {
        struct rs_stream *s = connect_start(fx, 1000);
        if (round == 1)
            s->cbs = &cbs;
        rs_stream_write_copy(s, (const uint8_t *)"early", 5);
        fake_complete(&fx->loop, socket_op(fx), -EMFILE, 0, 0);
        fake_run(&fx->loop);
        assert_int_equal(ev.connects, 1);
        assert_int_equal(ev.connect_res, -EMFILE);
        assert_int_equal(ev.closes, 1);
        assert_int_equal(ev.close_reason, -EMFILE);
        assert_int_equal(fake(&fx->loop)->ninflight, 0);
        assert_int_equal(fake(&fx->loop)->submits[RS_OP_CLOSE], 0);
        assert_int_equal(fx->loop.ntimers, 0);
    }
    assert_int_equal(fx->loop.stats.connect_failed, 2);
}

/* The backend refuses the socket op: rs_stream_connect fails at once,
 * with nothing left behind. */
static void test_stream_socket_refused(void **state)
{
    struct fixture *fx = *state;
    memset(&ev, 0, sizeof(ev));
    fake(&fx->loop)->refuse_submit[RS_OP_SOCKET] = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
    errno = 0;
    assert_null(rs_stream_connect(&fx->loop, (struct sockaddr *)&a, sizeof(a), 1000,
                                  &ev_cbs, fx));
    assert_int_equal(errno, EBUSY);
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fx->loop.ntimers, 0);
    assert_int_equal(ev.connects + ev.closes, 0);
    /* The next one goes through; its connect refused is an on_connect
     * error, and the socket is closed. */
    struct rs_stream *s = connect_start(fx, 1000);
    fake(&fx->loop)->refuse_submit[RS_OP_CONNECT] = 1;
    int fd = complete_socket(fx, 0);
    assert_int_equal(s->fd, fd);
    assert_int_equal(ev.connects, 1);
    assert_int_equal(ev.connect_res, -EBUSY);
    complete_close_of(fx, fd);
    assert_int_equal(ev.closes, 1);
}

/* Aborted while the socket op is in flight: the op is cancelled; if the
 * socket comes anyway it is closed, and the owner hears only on_close. */
static void test_stream_abort_while_making_socket(void **state)
{
    struct fixture *fx = *state;
    for (int round = 0; round < 3; round++) {
        struct rs_stream *s = connect_start(fx, 1000);
        struct rs_op *op = socket_op(fx);
        if (round == 2)
            rs_stream_close(s); /* a close while connecting is an abort */
        else
            rs_stream_abort(s);
        assert_true(fake_was_cancelled(&fx->loop, op));
        assert_int_equal(fx->loop.ntimers, 0);
        if (round == 0) {
            fake_complete(&fx->loop, op, -ECANCELED, 0, 0);
            fake_run(&fx->loop);
            assert_int_equal(fake(&fx->loop)->submits[RS_OP_CLOSE], 0);
        } else {
            int fd = complete_socket(fx, round == 1 ? RS_CF_DIRECT : 0);
            assert_null(fake_find(&fx->loop, RS_OP_CONNECT, fd));
            struct rs_op *c = fake_find(&fx->loop, RS_OP_CLOSE, fd);
            assert_non_null(c);
            assert_int_equal(!!(c->flags & RS_OPF_DIRECT), round == 1);
            complete_close_of(fx, fd);
        }
        assert_int_equal(ev.connects, 0);
        assert_int_equal(ev.closes, 1);
        assert_int_equal(ev.close_reason, round == 2 ? -ECANCELED : -ECONNABORTED);
    }
}

/* The connect timeout covers making the socket: a refused cancel is
 * retried, and a socket that comes after all is closed, -ETIMEDOUT. */
static void test_stream_socket_timeout(void **state)
{
    struct fixture *fx = *state;
    struct rs_stream *s = connect_start(fx, 250);
    struct rs_op *op = socket_op(fx);
    fake(&fx->loop)->refuse_cancel = 1;
    fx->loop.now_ms += 250;
    rs_timer_run_due(&fx->loop);
    assert_false(fake_was_cancelled(&fx->loop, op));
    assert_true(s->retry);
    rs_loop_retry(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, op));
    int fd = complete_socket(fx, 0); /* it raced the cancel */
    assert_int_equal(ev.connects, 1);
    assert_int_equal(ev.connect_res, -ETIMEDOUT);
    assert_null(fake_find(&fx->loop, RS_OP_CONNECT, fd));
    complete_close_of(fx, fd);
    assert_int_equal(ev.close_reason, -ETIMEDOUT);
    /* And one whose cancel won: no socket, nothing to close. */
    connect_start(fx, 250);
    op = socket_op(fx);
    fx->loop.now_ms += 250;
    rs_timer_run_due(&fx->loop);
    fake_complete(&fx->loop, op, -ECANCELED, 0, 0);
    fake_run(&fx->loop);
    assert_int_equal(ev.connect_res, -ETIMEDOUT);
    assert_int_equal(ev.close_reason, -ETIMEDOUT);
    assert_int_equal(fx->loop.stats.connect_failed, 2);
}

/* A backend without RS_OP_SOCKET: the stream makes a plain socket itself. */
static void test_stream_connect_without_socket_op(void **state)
{
    struct fixture *fx = *state;
    fx->loop.caps &= ~(uint32_t)(RS_CAP_SOCKET | RS_CAP_SOCKET_DIRECT);
    struct rs_stream *s = connect_start(fx, 1000);
    int fd = s->fd;
    assert_true(fd >= 0);
    assert_false(s->direct);
    assert_null(fake_find(&fx->loop, RS_OP_SOCKET, -1));
    struct rs_op *c = fake_find(&fx->loop, RS_OP_CONNECT, fd);
    assert_non_null(c);
    fake_complete(&fx->loop, c, -ECONNREFUSED, 0, 0);
    fake_run(&fx->loop);
    assert_int_equal(ev.connect_res, -ECONNREFUSED);
    complete_close_of(fx, fd);
    assert_int_equal(ev.closes, 1);
}

/* on_writable fires when pending crosses the low watermark downwards. */
static void test_stream_low_watermark(void **state)
{
    struct fixture *fx = *state;
    memset(&ev, 0, sizeof(ev));
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    s->cbs = &ev_cbs;
    rs_stream_set_lowat(s, 10);
    char msg[30];
    memset(msg, 'w', sizeof(msg));
    rs_stream_write_copy(s, (const uint8_t *)msg, 30);
    complete(fx, RS_OP_SEND, 15); /* 15 left: above */
    assert_int_equal(ev.writables, 0);
    complete(fx, RS_OP_SEND, 5); /* 10 left: at the mark */
    assert_int_equal(ev.writables, 1);
    complete(fx, RS_OP_SEND, 10); /* 0: no new crossing */
    assert_int_equal(ev.writables, 1);
    rs_stream_abort(s);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(ev.closes, 1);
}

/* A graceful close after the peer's EOF, with output the peer never
 * reads: the close gives up after --drain-timeout like a lingering one.
 * (The old close started its timer only when lingering, i.e. without the
 * EOF, and the idle scan skips closing streams: the stream, its socket and
 * its queued output stayed for good, --idle-timeout or not. Seen as: an
 * HTTP or proxy client that half-closes and never reads holds its
 * connection forever.) */
static void test_stream_close_after_eof_is_bounded(void **state)
{
    struct fixture *fx = *state;
    memset(&ev, 0, sizeof(ev));
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    s->cbs = &ev_cbs; /* on_eof: the owner decides (no shutdown) */
    rs_stream_write_copy(s, (const uint8_t *)"never read", 10);
    struct rs_op *snd = op_of(fx, RS_OP_SEND);
    assert_non_null(snd);
    complete(fx, RS_OP_RECV, 0);
    assert_int_equal(ev.eofs, 1);
    rs_stream_close(s); /* as http.c's close_if_done, proxy.c's on_close */
    assert_true(rs_timer_active(&s->timer));
    fx->loop.now_ms += fx->cfg.drain_timeout_ms;
    rs_timer_run_due(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, snd));
    complete(fx, RS_OP_SEND, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(ev.closes, 1);
    assert_int_equal(ev.close_reason, -ETIMEDOUT);
}

/* The close's bound counts from the last progress: a slow reader that
 * keeps reading gets every byte, however long the whole takes; only then
 * does the lingering read wait --drain-timeout for the EOF. (The old timer
 * ran from rs_stream_close: an HTTP response with Connection: close, up to
 * --max-pending of it still queued, was cut by an abort after 2 s.) */
static void test_stream_close_slow_reader_gets_everything(void **state)
{
    struct fixture *fx = *state;
    memset(&ev, 0, sizeof(ev));
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    s->cbs = &ev_cbs;
    char msg[30];
    memset(msg, 's', sizeof(msg));
    rs_stream_write_copy(s, (const uint8_t *)msg, sizeof(msg));
    rs_stream_close(s);
    uint64_t step = fx->cfg.drain_timeout_ms * 3 / 4;
    for (int i = 0; i < 3; i++) { /* 10 bytes per 3/4 of the timeout */
        fx->loop.now_ms += step;
        rs_timer_run_due(&fx->loop);
        struct rs_op *snd = op_of(fx, RS_OP_SEND);
        assert_non_null(snd);
        assert_false(fake_was_cancelled(&fx->loop, snd));
        complete(fx, RS_OP_SEND, 10);
    }
    assert_int_equal(fx->loop.stats.bytes_out, 30);
    complete(fx, RS_OP_SHUTDOWN, 0);
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    assert_non_null(r); /* lingering: reading to the peer's EOF */
    fx->loop.now_ms += step;
    rs_timer_run_due(&fx->loop);
    assert_false(fake_was_cancelled(&fx->loop, r));
    fx->loop.now_ms += fx->cfg.drain_timeout_ms - step;
    rs_timer_run_due(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, r)); /* no EOF in time */
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(ev.close_reason, -ETIMEDOUT);
}

static void tm_fire(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    int *order = t->data;
    order[order[0]++ + 1] = (int)t->due_ms;
}

/* A timer without a function is refused (it fired into NULL). A delay
 * of UINT64_MAX ("never") does not wrap round to a deadline in
 * the past (it fired at once), and an active timer restarted or stopped
 * through another loop of the thread leaves its own loop's heap (the
 * other heap was corrupted: its count dropped for a timer it never had). */
static void test_timer_misuse(void **state)
{
    struct fixture *fx = *state;
    static struct rs_timer t, u;
    static int order[4];
    memset(&t, 0, sizeof(t));
    memset(&u, 0, sizeof(u));
    order[0] = 0;
    fx->loop.now_ms = 1000;
    assert_int_equal(rs_timer_start(&fx->loop, &t, 1, NULL, order), -EINVAL);
    assert_false(rs_timer_active(&t));
    assert_int_equal(rs_timer_start(&fx->loop, &t, UINT64_MAX, tm_fire, order), 0);
    assert_int_equal(rs_timer_start(&fx->loop, &u, UINT64_MAX - 500, tm_fire, order), 0);
    fx->loop.now_ms = 5000;
    assert_int_equal(rs_timer_run_due(&fx->loop), 0);
    assert_int_equal(order[0], 0);
    assert_int_equal(rs_timer_next_ms(&fx->loop), INT32_MAX);
    rs_timer_stop(&fx->loop, &u);
    struct rs_config cfg2;
    rs_config_defaults(&cfg2);
    cfg2.buffers = 16;
    cfg2.buffer_size = 64;
    struct rs_loop *other = calloc(1, sizeof(*other));
    char err[128];
    assert_int_equal(rs_loop_init(other, &fake_backend, &cfg2, err, sizeof(err)), 0);
    assert_int_equal(rs_timer_start(other, &t, 10, tm_fire, order), 0);
    assert_int_equal(fx->loop.ntimers, 0);
    assert_int_equal(other->ntimers, 1);
    rs_timer_stop(&fx->loop, &t); /* the wrong loop named: t leaves its own */
    assert_int_equal(other->ntimers, 0);
    assert_int_equal(fx->loop.ntimers, 0);
    assert_false(rs_timer_active(&t));
    rs_loop_fini(other);
    free(other);
}

/* The heap fires due timers in due order, stopped ones never. */
static void test_timer_order(void **state)
{
    struct fixture *fx = *state;
    enum { N = 200 };
    static struct rs_timer t[N];
    static int order[N + 1];
    memset(t, 0, sizeof(t));
    order[0] = 0;
    uint64_t base = fx->loop.now_ms;
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        rs_timer_start(&fx->loop, &t[i], (x >> 8) % 1000, tm_fire, order);
    }
    for (int i = 0; i < N; i += 3)
        rs_timer_stop(&fx->loop, &t[i]);
    rs_timer_stop(&fx->loop, &t[0]);                        /* idempotent */
    rs_timer_start(&fx->loop, &t[1], 5000, tm_fire, order); /* restart: moves */
    fx->loop.now_ms = base + 1000;
    rs_timer_run_due(&fx->loop);
    int expect = N - (N + 2) / 3 - 1;
    assert_int_equal(order[0], expect);
    for (int i = 1; i < order[0]; i++)
        assert_true(order[i] <= order[i + 1]);
    assert_int_equal(fx->loop.ntimers, 1);
    assert_int_equal(rs_timer_next_ms(&fx->loop), 4000);
    rs_timer_stop(&fx->loop, &t[1]);
    assert_int_equal(rs_timer_next_ms(&fx->loop), -1);
}

/* ---- stop, reset, liveness ------------------------------------------- */

/* The default stop (no on_stop) of a peer that has not finished sending:
 * the queued echo goes out, but no FIN before the peer's EOF (a FIN would
 * tell a peer mid-upload that all it sent was taken). The EOF comes,
 * nothing was dropped: then FIN and a clean close. */
static void test_stream_stop_fin_only_after_eof(void **state)
{
    struct fixture *fx = *state;
    memset(&ev, 0, sizeof(ev));
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    s->cbs = &ev_cbs;
    rs_stream_write_copy(s, (const uint8_t *)"queued", 6);
    rs_stream_stop(s);
    complete(fx, RS_OP_SEND, 6);
    assert_int_equal(fx->loop.stats.bytes_out, 6); /* in-flight work finished */
    assert_null(op_of(fx, RS_OP_SHUTDOWN));        /* no FIN yet */
    assert_non_null(op_of(fx, RS_OP_RECV));        /* reading to the EOF */
    complete(fx, RS_OP_RECV, 0);
    complete(fx, RS_OP_SHUTDOWN, 0);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(ev.close_reason, 0);
    assert_int_equal(fx->loop.stats.dropped, 0);
}

/* Input that arrives after a stop is dropped: that is a cut, and the
 * stream ends with a reset (RS_OPF_RESET on its close), never a FIN. */
static void test_stream_stop_cut_input_resets(void **state)
{
    struct fixture *fx = *state;
    memset(&ev, 0, sizeof(ev));
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, true, false);
    s->cbs = &ev_cbs;
    rs_stream_stop(s);
    assert_null(op_of(fx, RS_OP_SHUTDOWN));
    recv_data(fx, "late", true);
    assert_int_equal(fx->loop.stats.dropped, 4);
    assert_int_equal(ev.data, 0); /* the protocol never sees it */
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    assert_true(fake_was_cancelled(&fx->loop, r));
    complete(fx, RS_OP_RECV, -ECANCELED);
    struct rs_op *c = op_of(fx, RS_OP_CLOSE);
    assert_non_null(c);
    assert_true(c->flags & RS_OPF_RESET);
    assert_true(c->flags & RS_OPF_DIRECT);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_SHUTDOWN], 0);
    assert_int_equal(ev.closes, 1);
    assert_int_equal(ev.close_reason, -ECONNABORTED);
}

/* A send that fails on our side (a zero result: a file chunk whose file
 * ended early; a file read error) cut the transfer: the stream ends with
 * a reset, so the peer cannot take the prefix for all of it. The peer's
 * own reset (or EPIPE) ends it as before, without one of ours. */
static void send_fails_with(struct fixture *fx, int res, bool want_reset)
{
    memset(&ev, 0, sizeof(ev));
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    s->cbs = &ev_cbs;
    rs_stream_write_copy(s, (const uint8_t *)"promised", 8);
    complete(fx, RS_OP_SEND, res);
    complete(fx, RS_OP_RECV, -ECANCELED);
    struct rs_op *c = op_of(fx, RS_OP_CLOSE);
    assert_non_null(c);
    assert_int_equal(!!(c->flags & RS_OPF_RESET), want_reset);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_SHUTDOWN], 0);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(ev.closes, 1);
    assert_int_equal(ev.close_reason, res < 0 ? res : -EPIPE);
}

static void test_stream_send_cut_resets(void **state)
{
    send_fails_with(*state, 0, true);
}

static void test_stream_send_error_resets(void **state)
{
    send_fails_with(*state, -EIO, true);
}

static void test_stream_send_peer_reset_no_reset_of_ours(void **state)
{
    send_fails_with(*state, -ECONNRESET, false);
}

/* An accepted stream on a loop that can send files, and a file (*fd)
 * for it: /dev/null, the fake sends nothing by itself. */
static struct rs_stream *file_stream(struct fixture *fx, int *fd)
{
    memset(&ev, 0, sizeof(ev));
    fx->loop.caps |= RS_CAP_SENDFILE;
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    s->cbs = &ev_cbs;
    *fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(*fd >= 0);
    return s;
}

/* Output that cannot be queued (here: a file range over 1 GiB needs a
 * duplicate descriptor per GiB, and the process has none left) cuts what
 * was written before it: the stream ends with a reset, not a FIN after the
 * head already on its way. */
static void test_stream_queue_failure_resets(void **state)
{
    struct fixture *fx = *state;
    int fd;
    struct rs_stream *s = file_stream(fx, &fd);
    rs_stream_write_copy(s, (const uint8_t *)"HTTP/1.1 200 OK\r\n", 17);
    /* No descriptor free below the limit: every one under it is in use. */
    int lowest = dup(0);
    assert_true(lowest >= 0);
    close(lowest);
    struct rlimit was;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
    struct rlimit now = {.rlim_cur = (rlim_t)lowest, .rlim_max = was.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &now), 0);
    int rc = rs_stream_write_file(s, fd, 0, 3ull << 30);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
    assert_int_equal(rc, 0); /* taken: fd closed, the stream failed */
    assert_false(rs_stream_is_open(s));
    complete(fx, RS_OP_SEND, -ECANCELED);
    complete(fx, RS_OP_RECV, -ECANCELED);
    struct rs_op *c = op_of(fx, RS_OP_CLOSE);
    assert_non_null(c);
    assert_true(c->flags & RS_OPF_RESET);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(ev.close_reason, -EMFILE);
}

/* A file goes out in RS_OP_SENDFILE ops of the backend's size
 * (loop->sendfile_op_max: io_uring's ops end early by themselves, rule 10
 * of backend.h), 1 MiB when it chose none (epoll); each op from where the
 * last one stopped, a short one included. Before, 1 MiB whatever the
 * backend. */
static void test_stream_sendfile_op_size_is_the_backends(void **state)
{
    struct fixture *fx = *state;
    int fd;
    struct rs_stream *s = file_stream(fx, &fd);
    assert_int_equal(rs_stream_write_file(s, fd, 0, 16u << 20), 0);
    struct rs_op *op = op_of(fx, RS_OP_SENDFILE);
    assert_non_null(op);
    assert_int_equal(op->len, 1u << 20); /* no size chosen: 1 MiB */
    fx->loop.sendfile_op_max = 4u << 20; /* for the ops after this one */
    complete(fx, RS_OP_SENDFILE, 1 << 20);
    op = op_of(fx, RS_OP_SENDFILE);
    assert_non_null(op);
    assert_int_equal(op->len, 4u << 20);
    assert_int_equal(((const struct rs_sendfile *)op->buf)->off, 1u << 20);
    complete(fx, RS_OP_SENDFILE, 3 << 19); /* ended early: 1.5 MiB */
    op = op_of(fx, RS_OP_SENDFILE);
    assert_non_null(op);
    assert_int_equal(op->len, 4u << 20);
    assert_int_equal(((const struct rs_sendfile *)op->buf)->off, 5u << 19);
    assert_int_equal(rs_stream_pending(s), (16u << 20) - (5u << 19));
    rs_stream_abort(s);
    complete(fx, RS_OP_SENDFILE, -ECANCELED);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
}

/* --drain-timeout=0 means no drain at a stop; a close outside a stop is
 * still bounded (the old code started no timer at all: a peer that never
 * read held the connection for good), and what it cuts is reset. */
static void test_stream_close_bounded_without_drain_timeout(void **state)
{
    struct fixture *fx = *state;
    memset(&ev, 0, sizeof(ev));
    fx->cfg.drain_timeout_ms = 0;
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    s->cbs = &ev_cbs;
    rs_stream_write_copy(s, (const uint8_t *)"never read", 10);
    struct rs_op *snd = op_of(fx, RS_OP_SEND);
    rs_stream_close(s);
    assert_true(rs_timer_active(&s->timer));
    fx->loop.now_ms += 2000;
    rs_timer_run_due(&fx->loop);
    assert_true(fake_was_cancelled(&fx->loop, snd));
    assert_true(s->reset);
    complete(fx, RS_OP_SEND, -ECANCELED);
    complete(fx, RS_OP_RECV, -ECANCELED);
    complete(fx, RS_OP_CLOSE, 0);
    assert_int_equal(ev.close_reason, -ETIMEDOUT);
}

/* A stop with --drain-timeout=0 resets every connection at once. */
static void test_loop_stop_without_drain_resets_at_once(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.drain_timeout_ms = 0;
    struct rs_stream *s = rs_stream_accept(&fx->loop, FD, false, false);
    rs_stream_write_copy(s, (const uint8_t *)"queued", 6);
    fake(&fx->loop)->auto_complete = true;
    rs_loop_request_stop(&fx->loop);
    assert_int_equal(rs_loop_run(&fx->loop), 0);
    assert_true(fx->loop.drain_aborted);
    assert_int_equal(fx->loop.stats.bytes_out, 0);
    assert_int_equal(fake(&fx->loop)->submits[RS_OP_SHUTDOWN], 0);
}

static int lv_fired;
static void lv_req_done(struct rs_loop *loop, struct rs_timer *t)
{
    (void)t;
    lv_fired++;
    rs_loop_req_done(loop);
}
static void lv_count(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    (void)t;
    lv_fired++;
}
static void lv_repeat(struct rs_loop *loop, struct rs_timer *t)
{
    lv_fired++;
    rs_timer_start(loop, t, 1, lv_repeat, NULL);
}

/* A loop without a listener or streams ends at once, unless a request is
 * in flight: then it runs until the request is done. An unreferenced
 * timer keeps nothing alive by itself. */
static void test_loop_alive_while_request_in_flight(void **state)
{
    struct fixture *fx = *state;
    static struct rs_timer t;
    memset(&t, 0, sizeof(t));
    rs_timer_unref(&t);
    lv_fired = 0;
    rs_timer_start(&fx->loop, &t, 2, lv_req_done, NULL);
    assert_int_equal(rs_loop_run(&fx->loop), 0); /* nothing alive: returns */
    assert_int_equal(lv_fired, 0);
    rs_loop_req_start(&fx->loop);
    assert_int_equal(rs_loop_run(&fx->loop), 0);
    assert_int_equal(lv_fired, 1); /* ran until the request was done */
    assert_int_equal(fx->loop.nreqs, 0);
}

/* A referenced timer keeps the loop alive until it fires; unref'd while
 * active, it stops counting at once. */
static void test_loop_alive_while_referenced_timer(void **state)
{
    struct fixture *fx = *state;
    static struct rs_timer t;
    memset(&t, 0, sizeof(t));
    lv_fired = 0;
    rs_timer_start(&fx->loop, &t, 2, lv_count, NULL);
    assert_int_equal(fx->loop.ntimers_ref, 1);
    assert_int_equal(rs_loop_run(&fx->loop), 0);
    assert_int_equal(lv_fired, 1);
    assert_int_equal(fx->loop.ntimers_ref, 0);
    rs_timer_start(&fx->loop, &t, 2, lv_count, NULL);
    rs_timer_unref(&t);
    assert_int_equal(fx->loop.ntimers_ref, 0);
    assert_int_equal(rs_loop_run(&fx->loop), 0);
    assert_int_equal(lv_fired, 1); /* never waited for */
    rs_timer_ref(&t);
    assert_int_equal(fx->loop.ntimers_ref, 1);
    rs_timer_stop(&fx->loop, &t);
    assert_int_equal(fx->loop.ntimers_ref, 0);
}

/* A referenced timer that restarts itself holds a stopping loop only
 * until the drain deadline: a stop always ends. */
static void test_loop_drain_deadline_ends_timers(void **state)
{
    struct fixture *fx = *state;
    static struct rs_timer t;
    memset(&t, 0, sizeof(t));
    fx->cfg.drain_timeout_ms = 20;
    lv_fired = 0;
    rs_timer_start(&fx->loop, &t, 1, lv_repeat, NULL);
    rs_loop_request_stop(&fx->loop);
    assert_int_equal(rs_loop_run(&fx->loop), 0);
    assert_true(fx->loop.drain_aborted);
    assert_true(lv_fired > 0);
    rs_timer_stop(&fx->loop, &t);
}

/* on_stop: once per accepted stream still open when the stop begins (not
 * for one already closing); what the protocol leaves open is reset at the
 * drain deadline. With --drain-timeout=0 it is never called: everything
 * is reset at once. */
static int st_stops, st_closes, st_reason;
static void st_eof(struct rs_stream *s)
{
    (void)s; /* keep the stream open: the protocol decides */
}
static void st_close(struct rs_stream *s, int reason)
{
    (void)s;
    st_closes++;
    st_reason = reason;
}
static void st_stop(struct rs_stream *s)
{
    (void)s;
    st_stops++; /* let it run: the deadline ends it */
}
static const struct rs_protocol st_proto = {
    .name = "stop-test",
    .cbs = {.on_data = ev_data, .on_eof = st_eof, .on_close = st_close},
    .on_stop = st_stop,
};

static void on_stop_run(struct fixture *fx, uint32_t drain_ms)
{
    st_stops = st_closes = st_reason = 0;
    fx->cfg.drain_timeout_ms = drain_ms;
    fx->loop.proto = &st_proto;
    rs_stream_accept(&fx->loop, FD, false, false);
    rs_stream_accept(&fx->loop, FD + 1, false, false);
    struct rs_stream *closing = rs_stream_accept(&fx->loop, FD + 2, false, false);
    rs_stream_close(closing);
    fake(&fx->loop)->auto_complete = true;
    rs_loop_request_stop(&fx->loop);
    assert_int_equal(rs_loop_run(&fx->loop), 0);
    assert_int_equal(st_closes, 3);
}

static void test_loop_on_stop_per_connection(void **state)
{
    struct fixture *fx = *state;
    on_stop_run(fx, 20);
    assert_int_equal(st_stops, 2);
    assert_true(fx->loop.drain_aborted);
    assert_int_equal(st_reason, -ETIMEDOUT);
}

static void test_loop_on_stop_not_called_without_drain(void **state)
{
    struct fixture *fx = *state;
    on_stop_run(fx, 0);
    assert_int_equal(st_stops, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stream_stop_fin_only_after_eof, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_send_cut_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_sendfile_op_size_is_the_backends,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_queue_failure_resets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_send_error_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_send_peer_reset_no_reset_of_ours,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_stop_cut_input_resets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_close_bounded_without_drain_timeout,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_stop_without_drain_resets_at_once,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_alive_while_request_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_alive_while_referenced_timer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_drain_deadline_ends_timers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_on_stop_per_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_on_stop_not_called_without_drain, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_echo_partial_sends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_activity_reads_no_clock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_ref_send_not_zero_copy, setup,
                                        teardown),
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
        cmocka_unit_test_setup_teardown(test_stream_connect_then_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_connect_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_connect_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_abort_while_connecting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_socket_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_socket_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_socket_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_abort_while_making_socket, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_socket_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_connect_without_socket_op, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_low_watermark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_misuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_close_after_eof_is_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_close_slow_reader_gets_everything,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_refused_pause_cancel_is_retried,
                                        setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_stream_refused_abort_cancels_are_retried,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_refused_close_is_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stream_refused_shutdown_is_retried, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_stops_when_closes_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_loop_failed_run_frees_queued_copies, setup,
                                        teardown_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
