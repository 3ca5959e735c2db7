/* The relay on a real backend: an in-process server whose protocol pairs
 * accepted connections two by two and relays each to the other
 * (rs_stream_relay both ways), a proxy without an upstream. The client
 * holds both ends, so it sees what a relay's two peers see: every byte in
 * order through short sends, the half-close forwarded, a reader that does
 * not read holding the writer back (the server's memory stays bounded), a
 * reset that stays a reset, a stop that never looks like a clean end. The
 * loops' own checks (every lent buffer back, nothing in flight) run at
 * destroy. The same contracts, scripted: test_stream_relay.c.
 *
 * usage: test_relay RINGSERVE-OPTIONS...  (e.g. --backend=epoll
 * --epoll-mode=lt); exit 77 (skip) when the backend is not available here. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

#define MAX_PENDING 65536

/* ---- the server's protocol: pairs ------------------------------------ */

/* The accepted stream waiting for its partner (one loop: --threads=1). */
static struct rs_stream *waiting;

static void pair_open(struct rs_stream *s)
{
    if (!waiting) {
        waiting = s;
        rs_stream_read_stop(s); /* nothing to relay to yet */
        return;
    }
    struct rs_stream *a = waiting;
    waiting = NULL;
    rs_stream_set_data(a, s);
    rs_stream_set_data(s, a);
    assert_int_equal(rs_stream_relay(a, s, NULL), 0);
    assert_int_equal(rs_stream_relay(s, a, NULL), 0);
    rs_stream_read_start(a);
}

/* Only after the relay ended (the partner was freed): dropped. */
static void pair_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    (void)p;
    (void)len;
    rs_stream_release(s, bid);
}

/* The proxy's rule: an error on one side resets the other. */
static void pair_close(struct rs_stream *s, int reason)
{
    struct rs_stream *other = rs_stream_data(s);
    if (s == waiting)
        waiting = NULL;
    if (!other)
        return;
    rs_stream_set_data(other, NULL);
    if (reason < 0)
        rs_stream_reset_reason(other, reason);
    else
        rs_stream_close(other);
}

static const struct rs_protocol pair_proto = {
    .name = "pairs",
    .cbs = {.on_data = pair_data, .on_close = pair_close},
    .on_open = pair_open,
    .descriptors_per_conn = 1};

/* ---- the client's side ----------------------------------------------- */

static struct rs_server *start_server(void)
{
    static const char *const extra[] = {"--max-pending=65536", "--drain-timeout=2000",
                                        NULL};
    waiting = NULL;
    return rs_test_server_start("test_relay", &pair_proto, extra, g_argc, g_argv);
}

/* A connection; small: its receive buffer and segments are small, so the
 * server's sends to it come back short. */
static int dial(struct rs_server *srv, bool small)
{
    return rs_test_dial(srv, small ? 4096 : 0);
}

/* Two connections the server pairs: x first (it waits), then y. */
static void dial_pair(struct rs_server *srv, int *x, int *y, bool small_y)
{
    *x = dial(srv, false);
    *y = dial(srv, small_y);
}

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)(i * 7 + (i >> 12));
}

/* Read until EOF or an error into nothing but a pattern check from *at
 * on: how it ended (0 or errno). */
static int read_check(int fd, uint64_t *at)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = recv_again(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 ? 0 : errno;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(*at + (uint64_t)i))
                fail_msg("byte %llu differs", (unsigned long long)(*at + (uint64_t)i));
        *at += (uint64_t)n;
    }
}

static void destroy_clean(struct rs_server *srv, struct rs_stats *totals)
{
    assert_int_equal(rs_server_destroy(srv, totals), 0);
    assert_int_equal(totals->lent, 0);
    assert_int_equal(totals->conns, 0);
}

/* Write n pattern bytes from *at on x while reading y (checked), one
 * thread, poll: y's receiver is small, so the server's sends to it come
 * back short over and over. */
static void pump(int x, int y, uint64_t n, uint64_t *wrote, uint64_t *read)
{
    uint8_t buf[65536];
    uint8_t in[65536];
    while (*read < n) {
        struct pollfd p[2] = {{.fd = x, .events = *wrote < n ? POLLOUT : 0},
                              {.fd = y, .events = POLLIN}};
        assert_true(poll_again(p, 2, 20000) > 0);
        if (p[0].revents & POLLOUT) {
            size_t len = n - *wrote < sizeof(buf) ? (size_t)(n - *wrote) : sizeof(buf);
            for (size_t i = 0; i < len; i++)
                buf[i] = pattern(*wrote + i);
            ssize_t k = send(x, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
            assert_true(k > 0 || errno == EAGAIN);
            if (k > 0)
                *wrote += (uint64_t)k;
        }
        if (p[1].revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t k = recv(y, in, sizeof(in), MSG_DONTWAIT);
            assert_true(k > 0 || (k < 0 && errno == EAGAIN));
            for (ssize_t i = 0; i < k; i++)
                if (in[i] != pattern(*read + (uint64_t)i))
                    fail_msg("byte %llu differs", (unsigned long long)(*read + i));
            if (k > 0)
                *read += (uint64_t)k;
        }
    }
}

/* 4 MiB from x to y through a small receiver (short sends), every byte in
 * order; x's EOF reaches y after the last byte; the other direction still
 * flows, and y's EOF reaches x. The server counts what it relayed. */
static void test_relay_order_and_half_close(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    int x, y;
    dial_pair(srv, &x, &y, true);
    const uint64_t n = 4u << 20;
    uint64_t wrote = 0, read = 0;
    pump(x, y, n, &wrote, &read);
    assert_int_equal(read, n);
    shutdown(x, SHUT_WR);
    assert_int_equal(read_check(y, &read), 0); /* a FIN, after every byte */
    assert_int_equal(read, n);
    assert_int_equal(send(y, "reply", 5, MSG_NOSIGNAL), 5);
    shutdown(y, SHUT_WR);
    uint8_t buf[16];
    size_t got = 0;
    for (;;) {
        ssize_t k = recv_again(x, buf + got, sizeof(buf) - got, 0);
        assert_true(k >= 0);
        if (k == 0)
            break;
        got += (size_t)k;
    }
    assert_int_equal(got, 5);
    assert_memory_equal(buf, "reply", 5);
    close(x);
    close(y);
    struct rs_stats totals = {0};
    destroy_clean(srv, &totals);
    assert_int_equal(totals.bytes_in, n + 5);
    assert_int_equal(totals.bytes_out, n + 5);
}

/* Ping-pong across the pair, each message relayed while the other stream
 * is idle (its lent slot): both directions in turn, every round trip
 * counted once. */
static void test_relay_ping_pong(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    int x, y;
    dial_pair(srv, &x, &y, false);
    const int rounds = 50;
    for (int i = 0; i < rounds; i++) {
        char msg[16], got[16];
        int len = snprintf(msg, sizeof(msg), "m%04d", i);
        int from = i % 2 ? y : x, to = i % 2 ? x : y;
        assert_int_equal(send(from, msg, (size_t)len, MSG_NOSIGNAL), len);
        int have = 0;
        while (have < len) {
            ssize_t k = recv_again(to, got + have, sizeof(got) - (size_t)have, 0);
            assert_true(k > 0);
            have += (int)k;
        }
        assert_int_equal(have, len);
        assert_memory_equal(got, msg, (size_t)len);
    }
    close(x);
    close(y);
    struct rs_stats totals = {0};
    destroy_clean(srv, &totals);
    assert_int_equal(totals.round_trips, rounds);
    assert_int_equal(totals.bytes_in, totals.bytes_out);
}

/* y never reads: the server stops reading x once y's queue passes
 * --max-pending, so x can write only what the sockets' buffers and that
 * bound hold — far less than the 64 MiB a server reading on would take.
 * Then y reads it all, in order. */
static void test_relay_reader_that_does_not_read(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    int x, y;
    dial_pair(srv, &x, &y, true);
    int sndbuf = 65536;
    setsockopt(x, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    const uint64_t cap = 64u << 20;
    uint8_t buf[65536];
    uint64_t wrote = 0;
    while (wrote < cap) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = pattern(wrote + i);
        ssize_t k = send(x, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (k > 0) {
            wrote += (uint64_t)k;
            continue;
        }
        assert_true(errno == EAGAIN);
        /* Full. A server that reads on makes room again at once; one
         * that holds x back never does (a slow one only makes this
         * test end sooner: it passes either way). */
        struct pollfd p = {.fd = x, .events = POLLOUT};
        if (poll_again(&p, 1, 1000) == 0)
            break;
    }
    /* The kernel's buffers (x's send, the server's receive for x, the
     * server's send to y, y's receive) and the relay's 64 KiB: a few MiB
     * at most here; an unbounded relay reaches the cap. */
    assert_true(wrote < (16u << 20));
    shutdown(x, SHUT_WR);
    uint64_t read = 0;
    assert_int_equal(read_check(y, &read), 0);
    assert_int_equal(read, wrote);
    close(x);
    close(y);
    struct rs_stats totals = {0};
    destroy_clean(srv, &totals);
    assert_int_equal(totals.bytes_out, wrote);
}

/* x resets its connection mid-transfer: y reads a prefix and then
 * ECONNRESET, never a clean EOF (the protocol resets the partner from
 * on_close; the relay made up no FIN of its own). */
static void test_relay_reset_stays_reset(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    for (int round = 0; round < 10; round++) {
        int x, y;
        dial_pair(srv, &x, &y, false);
        uint8_t buf[4096];
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = pattern(i);
        assert_int_equal(send(x, buf, sizeof(buf), MSG_NOSIGNAL), (ssize_t)sizeof(buf));
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(x, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(x); /* a reset */
        uint64_t read = 0;
        assert_int_equal(read_check(y, &read), ECONNRESET);
        assert_true(read <= sizeof(buf));
        close(y);
    }
    struct rs_stats totals = {0};
    destroy_clean(srv, &totals);
}

/* A stop while x is mid-transfer (it never sent its EOF): the stop cuts
 * the transfer, and y must be able to tell — a reset, never a clean EOF,
 * after a prefix of what x wrote. */
static void test_relay_stop_is_no_clean_end(void **state)
{
    (void)state;
    struct rs_server *srv = start_server();
    int x, y;
    dial_pair(srv, &x, &y, false);
    uint64_t wrote = 0, read = 0;
    pump(x, y, 256 * 1024, &wrote, &read);
    rs_server_stop(srv);
    /* x keeps sending until the server's end reaches it. */
    uint8_t buf[4096];
    for (int i = 0; i < 10000; i++) {
        for (size_t j = 0; j < sizeof(buf); j++)
            buf[j] = pattern(wrote + j);
        ssize_t k = send(x, buf, sizeof(buf), MSG_NOSIGNAL);
        if (k <= 0)
            break;
        wrote += (uint64_t)k;
    }
    int how = read_check(y, &read);
    assert_int_equal(how, ECONNRESET);
    assert_true(read <= wrote);
    close(x);
    close(y);
    struct rs_stats totals = {0};
    destroy_clean(srv, &totals);
}

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relay_order_and_half_close),
        cmocka_unit_test(test_relay_ping_pong),
        cmocka_unit_test(test_relay_reader_that_does_not_read),
        cmocka_unit_test(test_relay_reset_stays_reset),
        cmocka_unit_test(test_relay_stop_is_no_clean_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
