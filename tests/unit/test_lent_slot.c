/* The lent slot on a real backend: an in-process server whose protocol
 * mixes lent writes (the slot when nothing is queued, a chunk behind
 * anything else) with copies, and stops, resets or aborts a stream right
 * after a lent write, while that send is in flight. The client checks
 * every byte and how each connection ends; the loops' own checks (every
 * lent buffer back, nothing in flight at the end) run at destroy. The same
 * cases, scripted on the fake backend: test_stream_slot.c.
 *
 * usage: test_lent_slot RINGSERVE-OPTIONS...  (e.g. --backend=epoll
 * --epoll-mode=lt); exit 77 (skip) when the backend is not available here. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringserve.h>

#include "../skip_reason.h"
#include "first_error.h"
#include "inproc_server.h"
#include "again.h"

static int g_argc;
static char **g_argv;

/* What the protocol does with a receive, by its first byte: 'S' stop,
 * 'R' reset, 'A' abort, each right after echoing it by loan; anything else
 * is echoed with markers ('+' after, '[' before, or none, in turn) so that
 * lent writes land in the slot, behind a copy, and ahead of one. */
static void marks_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    uint8_t first = p[0];
    uintptr_t n = (uintptr_t)rs_stream_data(s); /* receives so far */
    rs_stream_set_data(s, (void *)(n + 1));
    if (first != 'S' && first != 'R' && first != 'A' && n % 3 == 2)
        rs_stream_write_copy(s, (const uint8_t *)"[", 1);
    rs_stream_write_lent(s, p, len, bid);
    if (first == 'S')
        rs_stream_stop(s);
    else if (first == 'R')
        rs_stream_reset(s);
    else if (first == 'A')
        rs_stream_abort(s);
    else if (n % 3 == 0)
        rs_stream_write_copy(s, (const uint8_t *)"+", 1);
}

static const struct rs_protocol marks_proto = {.name = "marks",
                                               .cbs = {.on_data = marks_data}};

/* A long --drain-timeout: a stopped stream lingers until the client's
 * EOF, which must end it (a FIN, not a reset). With the default 2 s, a
 * client thread that got no CPU for that long (or a SIGSTOP of the
 * process, after which the server's loop runs its due timers before
 * this thread sends) met a reset. */
static struct rs_server *start_server(void)
{
    static const char *const extra[] = {"--drain-timeout=30000", NULL};
    return rs_test_server_start("test_lent_slot", &marks_proto, extra, g_argc, g_argv);
}

static int dial(struct rs_server *srv, int rcvbuf)
{
    return rs_test_dial(srv, rcvbuf);
}

/* Read until EOF or an error: the bytes, and how it ended (0 or errno). */
static size_t read_to_end(int fd, uint8_t *buf, size_t cap, int *how)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = recv_again(fd, buf + got, cap - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *how = n == 0 ? 0 : errno;
            return got;
        }
        got += (size_t)n;
        assert_true(got < cap);
    }
}

static void destroy_clean(struct rs_server *srv)
{
    struct rs_stats totals = {0};
    assert_int_equal(rs_server_destroy(srv, &totals), 0);
    assert_int_equal(totals.lent, 0);
    assert_int_equal(totals.conns, 0);
}

/* 2 MiB through a client that reads 1 KiB at a time with a tiny receive
 * buffer, while it keeps writing: the server's sends come back short and
 * its queue fills behind the slot. With the markers taken out, the bytes
 * are the client's, in order. */
static void test_slot_order_under_partial_sends(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    int fd = dial(srv, 4096);
    enum { TOTAL = 8 << 20, BLOCK = 8192 };
    uint8_t *out = malloc(TOTAL), *in = malloc(2 * TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        out[i] = (uint8_t)('a' + (i * 7 + i / 251) % 26); /* never a marker or S/R/A */
    size_t sent = 0, got = 0, data = 0;
    while (data < TOTAL) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < TOTAL ? POLLOUT : 0)};
        assert_true(poll_again(&p, 1, 20000) > 0);
        if ((p.revents & POLLOUT) && sent < TOTAL) {
            size_t n = TOTAL - sent < BLOCK ? TOTAL - sent : BLOCK;
            ssize_t w = send(fd, out + sent, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            assert_true(w > 0 || errno == EAGAIN);
            if (w > 0)
                sent += (size_t)w;
        }
        if (p.revents & POLLIN) {
            ssize_t r = recv(fd, in + got, 1024, MSG_DONTWAIT);
            assert_true(r > 0 || errno == EAGAIN);
            for (ssize_t i = 0; i < r; i++)
                if (in[got + (size_t)i] != '+' && in[got + (size_t)i] != '[')
                    in[data++] = in[got + (size_t)i];
            got = data; /* markers dropped in place */
        }
    }
    assert_memory_equal(in, out, TOTAL);
    close(fd);
    /* Messages one at a time into a pipe nobody reads: each finds the
     * queue empty (its send went out whole) until the send buffers fill,
     * and the send that hits the wall comes back short. */
    fd = dial(srv, 4096);
    enum { MSGS = 64, MSG = 4096 };
    for (size_t i = 0; i < MSGS; i++)
        assert_int_equal(send(fd, out + i * MSG, MSG, MSG_NOSIGNAL), MSG);
    shutdown(fd, SHUT_WR);
    int how = -1;
    got = read_to_end(fd, in, 2 * TOTAL, &how);
    assert_int_equal(how, 0);
    data = 0;
    for (size_t i = 0; i < got; i++)
        if (in[i] != '+' && in[i] != '[')
            in[data++] = in[i];
    assert_int_equal(data, MSGS * MSG);
    assert_memory_equal(in, out, MSGS * MSG);
    close(fd);
    free(out);
    free(in);
    destroy_clean(srv);
}

/* A stop right after a lent write: the echo is complete and ends in a
 * clean EOF once the client sent its own (nothing was cut). */
static void test_slot_stop_in_flight(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    for (int i = 0; i < 20; i++) {
        int fd = dial(srv, 0);
        assert_int_equal(send(fd, "Shello", 6, MSG_NOSIGNAL), 6);
        uint8_t buf[64];
        size_t got = 0;
        while (got < 6) {
            ssize_t n = recv_again(fd, buf + got, sizeof(buf) - got, 0);
            assert_true(n > 0);
            got += (size_t)n;
        }
        assert_memory_equal(buf, "Shello", 6);
        shutdown(fd, SHUT_WR);
        int how = -1;
        assert_int_equal(read_to_end(fd, buf, sizeof(buf), &how), 0);
        assert_int_equal(how, 0); /* a FIN, not a reset */
        close(fd);
    }
    destroy_clean(srv);
}

/* A reset right after a lent write: the echo arrives, then the reset —
 * never a clean EOF. */
static void test_slot_reset_in_flight(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    for (int i = 0; i < 20; i++) {
        int fd = dial(srv, 0);
        assert_int_equal(send(fd, "Rhello", 6, MSG_NOSIGNAL), 6);
        uint8_t buf[64];
        int how = -1;
        size_t got = read_to_end(fd, buf, sizeof(buf), &how);
        assert_int_equal(how, ECONNRESET);
        assert_true(got <= 6);
        assert_memory_equal(buf, "Rhello", got);
        close(fd);
    }
    destroy_clean(srv);
}

/* An abort right after a lent write: whatever arrives is a prefix of the
 * echo; the buffer comes back once the cancelled send completed (checked
 * at destroy), and the server goes on serving. */
static void test_slot_abort_in_flight(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    for (int i = 0; i < 20; i++) {
        int fd = dial(srv, 0);
        assert_int_equal(send(fd, "Ahello", 6, MSG_NOSIGNAL), 6);
        uint8_t buf[64];
        int how = -1;
        size_t got = read_to_end(fd, buf, sizeof(buf), &how);
        assert_true(got <= 6);
        assert_memory_equal(buf, "Ahello", got);
        close(fd);
    }
    int fd = dial(srv, 0);
    assert_int_equal(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
    uint8_t buf[8];
    size_t got = 0;
    while (got < 5) {
        ssize_t n = recv_again(fd, buf + got, sizeof(buf) - got, 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(buf, "ping+", 5);
    close(fd);
    destroy_clean(srv);
}

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slot_order_under_partial_sends),
        cmocka_unit_test(test_slot_stop_in_flight),
        cmocka_unit_test(test_slot_reset_in_flight),
        cmocka_unit_test(test_slot_abort_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
