/* End-to-end tests: one file, run against every backend.
 *
 * Usage: e2e [--expect=COUNTER]... [--via-proxy=ECHO-SERVER] SERVER-COMMAND...
 *        e.g.  e2e build/ringserve --backend=epoll
 *
 * --expect=COUNTER: a variant that exists to drive one path (a tiny ring's
 * CQ overflow, bundled receives) names the stats counter that proves it;
 * summed over every server the run started, it must end above zero, or the
 * run fails: the variant would otherwise pass without taking its path.
 *
 * With --via-proxy the same tests run through a proxy: SERVER-COMMAND is
 * the proxy (`ringserve --protocol=proxy ...`), and every test first starts
 * ECHO-SERVER (a ringserve binary, default options) on its own ephemeral
 * port and gives the proxy --upstream=127.0.0.1:THAT-PORT. The clients talk
 * to the proxy; the proxy's stats line must count what they sent and got
 * (bytes_up=, bytes_down=), and the echo server behind it must exit cleanly
 * with balanced stats too.
 *
 * The command line after the program name is the server to test; the
 * harness appends --listen=127.0.0.1:0 and reads the ephemeral port from the
 * server's "listening on" line. Every test gets a fresh server (so its final
 * stats can be checked against exactly what that test did) and stops it with
 * SIGTERM in the teardown, which also asserts a clean exit, the stats line,
 * and accepted= equal to the number of connections the test opened.
 *
 * If the server cannot start because io_uring is unavailable here, the whole
 * program exits 77 so meson reports a skip.
 *
 * Nothing here asserts on time. Waits are poll()s with a 20 s safety net.
 *
 * The server command may start with a wrapper (valgrind, no_uring): the
 * harness only needs the same process to print the lines and take SIGTERM.
 *
 * Environment:
 *   RS_E2E_FILTER=pattern  run only matching tests (cmocka wildcards)
 *   RS_E2E_VERBOSE=1       print each server's stderr after its test
 *   RS_E2E_SKIP_RSS=1      skip the RSS bound (under valgrind, whose own
 *                          memory would dominate it)
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

static char **server_argv;
static const char *want_backend; /* "uring"/"epoll" when the command forces one */
static const char *upstream_bin; /* --via-proxy: the echo server behind the proxy */

/* --expect=COUNTER: the counters whose sum over every server must end > 0. */
enum { MAX_EXPECT = 4 };
static const char *expect_key[MAX_EXPECT];
static unsigned long long expect_sum[MAX_EXPECT];
static unsigned nexpect;

/* The stats keys for the bytes the clients sent and the bytes they got
 * back: an echo server's, or a proxy's (towards the upstream, back). */
static const char *key_in = "bytes_in", *key_out = "bytes_out";

struct fixture {
    struct h_server srv; /* what the clients talk to: echo server or proxy */
    struct h_server up;  /* --via-proxy: the echo server behind the proxy */
    bool have_up;
    /* Every byte the clients sent was echoed and read back, so the server's
     * final stats must show bytes_in == bytes_out. */
    bool balanced;
};

static const char *const listen_any[] = {"--listen=127.0.0.1:0", NULL};
/* One more option for the server under test, set by a case's own setup
 * (NULL: none). */
static const char *case_arg;

/* --- fixture --------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    *state = fx;
    char upstream_arg[96];
    const char *plain_extra[] = {"--listen=127.0.0.1:0", case_arg, NULL};
    const char *proxy_extra[] = {"--listen=127.0.0.1:0", upstream_arg, case_arg, NULL};
    const char *const *extra = plain_extra;
    if (upstream_bin) {
        char *const up_argv[] = {(char *)upstream_bin, NULL};
        if (h_server_start(&fx->up, up_argv, listen_any) != H_STARTED) {
            fprintf(stderr, "the echo server behind the proxy did not start\n");
            h_dump_stderr(&fx->up, "upstream start-up");
            return -1;
        }
        fx->have_up = true;
        snprintf(upstream_arg, sizeof(upstream_arg), "--upstream=127.0.0.1:%u",
                 fx->up.port);
        extra = proxy_extra;
    }
    enum h_start r = h_server_start(&fx->srv, server_argv, extra);
    if (r != H_STARTED) {
        char st[64];
        fprintf(stderr, "server did not start (%s, %s)\n",
                r == H_EXITED     ? "exited"
                : r == H_TIMEDOUT ? "timed out"
                                  : "spawn failed",
                h_status_str(&fx->srv, st, sizeof(st)));
        h_dump_stderr(&fx->srv, "start-up");
        return -1;
    }
    if (want_backend && strcmp(fx->srv.backend, want_backend) != 0) {
        fprintf(stderr, "asked for backend=%s, server says backend=%s\n", want_backend,
                fx->srv.backend);
        h_dump_stderr(&fx->srv, "start-up");
        return -1;
    }
    return 0;
}

/* setup() with a drain deadline of 100 ms instead of the default 2 s, for
 * a case whose stop waits it out and does not test its length. */
static int setup_quick_drain(void **state)
{
    case_arg = "--drain-timeout=100";
    int rc = setup(state);
    case_arg = NULL;
    return rc;
}

/* --via-proxy: stop the echo server behind the proxy (after the proxy) and
 * check that it exited cleanly and that its bytes_in/bytes_out agree with
 * what the proxy says it forwarded each way: equal when every byte made the
 * whole trip, never more than the proxy forwarded when resets cut some off. */
static int stop_upstream(struct fixture *fx, unsigned long long up,
                         unsigned long long down)
{
    struct h_server *u = &fx->up;
    char line[1024], st[64];
    unsigned long long in = 0, out = 0;
    const char *why = NULL;
    h_server_stop(u, SIGTERM);
    if (!h_exited_with(u, 0))
        why = "the echo server behind the proxy did not exit 0";
    else if (!h_find_line(u, "ringserve: stats:", line, sizeof(line)) ||
             !h_line_value(line, "bytes_in", &in) ||
             !h_line_value(line, "bytes_out", &out))
        why = "the echo server behind the proxy printed no stats";
    else if (in > up)
        why = "the echo server received more than the proxy forwarded upstream";
    else if (down > out)
        why = "the proxy forwarded back more than the echo server sent";
    else if (fx->balanced && (in != up || out != down))
        why = "every echo was read back, yet the proxy's counts differ from the "
              "echo server's";
    if (!why)
        return 0;
    fprintf(stderr, "%s (%s; its bytes_in=%llu bytes_out=%llu, proxy %s=%llu %s=%llu)\n",
            why, h_status_str(u, st, sizeof(st)), in, out, key_in, up, key_out, down);
    h_dump_stderr(u, "upstream after stop");
    return -1;
}

/* Stop the server with sig and check the contract of a graceful stop:
 * exit 0, a stats line, accepted= the connections we made, and bytes_out
 * never above bytes_in (equal when the test read back every echo).
 * Returns 0 or -1 with the problem printed. */
static int stop_and_check(struct fixture *fx, int sig)
{
    struct h_server *s = &fx->srv;
    char st[64], line[1024];
    unsigned long long acc = 0, in = 0, out = 0;
    const char *why = NULL;
    h_server_stop(s, sig);
    if (!h_exited_with(s, 0))
        why = "server did not exit 0 after the signal";
    else if (!h_find_line(s, "ringserve: stats:", line, sizeof(line)))
        why = "no 'ringserve: stats:' line on stderr";
    else if (!h_line_value(line, "accepted", &acc) || !h_line_value(line, key_in, &in) ||
             !h_line_value(line, key_out, &out))
        why = "stats line lacks accepted= or the byte counts";
    else if (acc != s->connects)
        why = "accepted= differs from the number of connections made";
    else if (out > in)
        why = "more bytes went back to the clients than they sent";
    else if (fx->balanced && out != in)
        why = "every echo was read back, yet the byte counts differ";
    for (unsigned i = 0; !why && i < nexpect; i++) {
        unsigned long long v = 0;
        if (!h_line_value(line, expect_key[i], &v))
            why = "stats line lacks a counter given with --expect=";
        expect_sum[i] += v;
    }
    if (!why)
        return fx->have_up ? stop_upstream(fx, in, out) : 0;
    fprintf(stderr, "%s (%s; connections made: %u)\n", why,
            h_status_str(s, st, sizeof(st)), s->connects);
    h_dump_stderr(s, "after stop");
    return -1;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    int rc = 0;
    if (!fx)
        return 0;
    if (!fx->srv.exited)
        rc = stop_and_check(fx, SIGTERM);
    if (rc == 0 && getenv("RS_E2E_VERBOSE"))
        h_dump_stderr(&fx->srv, "RS_E2E_VERBOSE");
    h_server_destroy(&fx->srv);
    if (fx->have_up)
        h_server_destroy(&fx->up);
    free(fx);
    return rc;
}

/* --- helpers ----------------------------------------------------------------- */

static int connect_or_fail(struct fixture *fx)
{
    int fd = h_connect(&fx->srv);
    if (fd < 0)
        fail_msg("connect to 127.0.0.1:%u: %s", fx->srv.port, strerror(errno));
    return fd;
}

/* Send buf, read the same number of bytes back, require them identical. */
static void echo_exact(int fd, const void *buf, size_t len)
{
    unsigned char *back = malloc(len ? len : 1);
    assert_non_null(back);
    int w = h_write_all(fd, buf, len);
    if (w < 0)
        fail_msg("write %zu bytes: %s", len, strerror(-w));
    ssize_t r = h_read_exact(fd, back, len);
    if (r < 0)
        fail_msg("read echo of %zu bytes: %s", len, strerror((int)-r));
    if ((size_t)r != len)
        fail_msg("EOF after %zd of %zu echoed bytes", r, len);
    if (memcmp(back, buf, len) != 0) {
        size_t k = 0;
        while (back[k] == ((const unsigned char *)buf)[k])
            k++;
        fail_msg("echo differs at byte %zu of %zu: sent 0x%02x, got 0x%02x", k, len,
                 ((const unsigned char *)buf)[k], back[k]);
    }
    free(back);
}

static void run_flows(struct h_flow *f, size_t n)
{
    char err[512];
    if (h_flows_run(f, n, err, sizeof(err)) != 0)
        fail_msg("%s", err);
}

static unsigned char *pattern(size_t len, uint64_t seed)
{
    unsigned char *p = malloc(len);
    assert_non_null(p);
    h_fill(p, len, seed);
    return p;
}

/* --- 1. small echo ----------------------------------------------------------- */

static void test_e2e_small_echo(void **state)
{
    struct fixture *fx = *state;
    int fd = connect_or_fail(fx);
    char back[16] = {0};
    assert_int_equal(h_write_all(fd, "hello\n", 6), 0);
    assert_int_equal(h_read_exact(fd, back, 6), 6);
    assert_memory_equal(back, "hello\n", 6);
    /* the connection stays usable for a second message */
    echo_exact(fd, "again", 5);
    close(fd);
    fx->balanced = true;
}

/* --- 2. all byte values -------------------------------------------------------- */

static void test_e2e_all_byte_values(void **state)
{
    struct fixture *fx = *state;
    unsigned char buf[512];
    for (int i = 0; i < 256; i++) {
        buf[i] = (unsigned char)i;
        buf[511 - i] = (unsigned char)i; /* and descending: 0xff.. then ..0x00 */
    }
    int fd = connect_or_fail(fx);
    echo_exact(fd, buf, sizeof(buf));
    /* NUL and newline alone must not be treated as delimiters */
    echo_exact(fd, "\0", 1);
    echo_exact(fd, "\n\r\n\0\xff", 5);
    close(fd);
    fx->balanced = true;
}

/* --- 3. 8 MiB concurrent stream ----------------------------------------------- */

static void test_e2e_stream_8mib(void **state)
{
    struct fixture *fx = *state;
    size_t len = 8 * MIB;
    unsigned char *data = pattern(len, 3);
    struct h_flow f = {.fd = connect_or_fail(fx), .out = data, .len = len};
    assert_int_equal(h_set_nonblock(f.fd, true), 0);
    run_flows(&f, 1);
    assert_int_equal(f.recvd, len);
    close(f.fd);
    free(data);
    fx->balanced = true;
}

/* --- 4. pipelined messages ------------------------------------------------------ */

static void test_e2e_pipelined_300(void **state)
{
    struct fixture *fx = *state;
    enum { NMSG = 300 };
    size_t cap = NMSG * 80, len = 0;
    char *msgs = malloc(cap);
    char *back = malloc(cap);
    assert_non_null(msgs);
    assert_non_null(back);
    for (int i = 0; i < NMSG; i++) {
        /* varying lengths so message boundaries fall anywhere in a read */
        int n = snprintf(msgs + len, cap - len, "message %03d of %d: %.*s\n", i, NMSG,
                         i % 41, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ");
        assert_true(n > 0 && (size_t)n < cap - len);
        len += (size_t)n;
    }
    int fd = connect_or_fail(fx);
    /* one write() call carries all 300 messages */
    ssize_t w = send(fd, msgs, len, MSG_NOSIGNAL);
    assert_int_equal(w, (ssize_t)len);
    assert_int_equal(h_read_exact(fd, back, len), (ssize_t)len);
    /* check message by message, so a failure says which one went wrong */
    char *p = back;
    for (int i = 0; i < NMSG; i++) {
        char *nl = memchr(p, '\n', (size_t)(back + len - p));
        if (!nl)
            fail_msg("echo ends inside message %d", i);
        char want[32];
        int wl = snprintf(want, sizeof(want), "message %03d of %d: ", i, NMSG);
        if (strncmp(p, want, (size_t)wl) != 0)
            fail_msg("echoed message %d out of order or corrupt: '%.*s'", i,
                     (int)(nl - p), p);
        p = nl + 1;
    }
    assert_memory_equal(back, msgs, len);
    close(fd);
    free(msgs);
    free(back);
    fx->balanced = true;
}

/* --- 5. half-close ---------------------------------------------------------------- */

/* Each of n clients writes len bytes, shuts down its sending side right
 * after the last byte is handed to the kernel, and must then get every byte
 * back, followed by EOF. The small receive buffer and the lazy reading keep
 * the server's socket buffer full, so it usually still holds echo output of
 * its own when it reads the EOF; several clients at once make it all but
 * certain that at least one of them hits that case. */
static void half_close_with_pending(struct fixture *fx, int n, size_t len, uint64_t seed)
{
    struct h_flow *f = calloc((size_t)n, sizeof(*f));
    unsigned char *data = pattern(len, seed);
    assert_non_null(f);
    for (int i = 0; i < n; i++) {
        int fd = h_connect_rcvbuf(&fx->srv, 16 * KIB);
        if (fd < 0)
            fail_msg("connect: %s", strerror(errno));
        f[i] = (struct h_flow){.fd = fd,
                               .out = data,
                               .len = len,
                               .shut_wr = true,
                               .want_eof = true,
                               .lazy_reader = true};
        assert_int_equal(h_set_nonblock(fd, true), 0);
    }
    run_flows(f, (size_t)n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(f[i].recvd, len);
        assert_true(f[i].eof);
        close(f[i].fd);
    }
    free(data);
    free(f);
}

static void test_e2e_half_close_pending(void **state)
{
    struct fixture *fx = *state;
    half_close_with_pending(fx, 4, 4 * MIB, 5);
    fx->balanced = true;
}

/* More than the kernel's largest send buffer (tcp_wmem max, 4 MiB here). */
static void test_e2e_half_close_pending_16mib(void **state)
{
    struct fixture *fx = *state;
    half_close_with_pending(fx, 2, 16 * MIB, 55);
    fx->balanced = true;
}

static void test_e2e_half_close_small(void **state)
{
    struct fixture *fx = *state;
    int fd = connect_or_fail(fx);
    char back[8];
    assert_int_equal(h_write_all(fd, "bye\n", 4), 0);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_int_equal(h_read_exact(fd, back, 4), 4);
    assert_memory_equal(back, "bye\n", 4);
    assert_int_equal(h_expect_eof(fd), 0);
    close(fd);

    /* and a client that half-closes without sending anything gets EOF */
    fd = connect_or_fail(fx);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_int_equal(h_expect_eof(fd), 0);
    close(fd);
    fx->balanced = true;
}

/* --- 6. many concurrent clients ------------------------------------------------------
 */

static void test_e2e_concurrent_200(void **state)
{
    struct fixture *fx = *state;
    enum { N = 200 };
    size_t len = 32 * KIB;
    struct h_flow *f = calloc(N, sizeof(*f));
    unsigned char **data = calloc(N, sizeof(*data));
    assert_non_null(f);
    assert_non_null(data);
    /* all connections open before any data moves */
    for (int i = 0; i < N; i++) {
        data[i] = pattern(len, 6000 + (uint64_t)i);
        /* a readable tag too, so a cross-talk failure is easy to read */
        snprintf((char *)data[i], 16, "client%03d", i);
        f[i] = (struct h_flow){.fd = connect_or_fail(fx),
                               .out = data[i],
                               .len = len,
                               .shut_wr = true,
                               .want_eof = true};
        assert_int_equal(h_set_nonblock(f[i].fd, true), 0);
    }
    run_flows(f, N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(f[i].recvd, len);
        assert_true(f[i].eof);
        close(f[i].fd);
        free(data[i]);
    }
    free(data);
    free(f);
    fx->balanced = true;
}

/* --- 7. resets mid-transfer
 * ------------------------------------------------------------- */

static void test_e2e_resets_then_served(void **state)
{
    struct fixture *fx = *state;
    enum { N = 100 };
    size_t flood = 256 * KIB;
    unsigned char *data = pattern(flood, 7);
    int fds[N];

    for (int i = 0; i < N; i++)
        fds[i] = connect_or_fail(fx);
    for (int i = 0; i < N; i++) {
        /* one echo each, so every connection is live in the server ... */
        echo_exact(fds[i], data, 1 * KIB);
        /* ... then as much as fits without blocking, and no reading */
        assert_int_equal(h_set_nonblock(fds[i], true), 0);
        assert_true(h_send_some(fds[i], data, flood) > 0);
    }
    for (int i = 0; i < N; i++)
        h_reset_close(fds[i]);

    /* the server is still here and still echoes */
    size_t len = 1 * MIB;
    unsigned char *big = pattern(len, 77);
    struct h_flow f = {.fd = connect_or_fail(fx),
                       .out = big,
                       .len = len,
                       .shut_wr = true,
                       .want_eof = true};
    assert_int_equal(h_set_nonblock(f.fd, true), 0);
    run_flows(&f, 1);
    close(f.fd);

    int fd = connect_or_fail(fx);
    echo_exact(fd, "still alive\n", 12);
    close(fd);
    free(big);
    free(data);
}

/* --- 8. a client that never reads
 * --------------------------------------------------------- */

/* Write to the flooder as much as its socket takes right now. */
static void flood_some(int hog, const unsigned char *chunk, size_t chunk_len, size_t cap,
                       size_t *total)
{
    while (*total < cap) {
        size_t off = *total % chunk_len;
        ssize_t w = send(hog, chunk + off, chunk_len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0)
            fail_msg("flooder send after %zu bytes: %s", *total,
                     w < 0 ? strerror(errno) : "returned 0");
        *total += (size_t)w;
    }
}

static void test_e2e_nonreader_bounded(void **state)
{
    struct fixture *fx = *state;
    /* The most the flooder tries to write. Through a proxy the echo passes
     * three more socket pairs, whose autotuned buffers (tcp_rmem max is 32
     * MiB here) may hold tens of MiB before anyone pushes back: 20-31 MiB
     * measured; the cap leaves room for that. */
    const size_t cap = upstream_bin ? 192 * MIB : 64 * MIB;
    const long rss_limit_kib = 64 * 1024; /* 64 MiB */
    const int echoes = 32;                /* the other client's round trips */
    size_t chunk_len = 1 * MIB, hog_total = 0;
    unsigned char *chunk = pattern(chunk_len, 8);
    size_t msg_len = 64 * KIB;
    unsigned char *msg = pattern(msg_len, 88);
    unsigned char *rbuf = malloc(msg_len);
    assert_non_null(rbuf);

    int hog = connect_or_fail(fx);
    assert_int_equal(h_set_nonblock(hog, true), 0);
    int good = connect_or_fail(fx);
    assert_int_equal(h_set_nonblock(good, true), 0);

    /* Phase 1, together: the flooder writes whenever its socket has room,
     * while the other client does `echoes` complete round trips, each
     * verified. The other client must not be starved. */
    int done = 0;
    size_t sent = 0, got = 0;
    while (done < echoes) {
        struct pollfd p[2] = {{.fd = good, .events = POLLIN}, {.fd = hog}};
        if (sent < msg_len)
            p[0].events |= POLLOUT;
        if (hog_total < cap)
            p[1].events = POLLOUT;
        int r = poll(p, 2, H_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail_msg("client starved next to a flooder: no progress for %d ms after %d "
                     "round trips (flooder wrote %zu bytes)",
                     H_TIMEOUT_MS, done, hog_total);
        if (p[1].revents)
            flood_some(hog, chunk, chunk_len, cap, &hog_total);
        if ((p[0].revents & POLLOUT) && sent < msg_len) {
            ssize_t w = send(good, msg + sent, msg_len - sent, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN)
                fail_msg("send: %s", strerror(errno));
            sent += w > 0 ? (size_t)w : 0;
        }
        if (p[0].revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t n = recv(good, rbuf + got, msg_len - got, 0);
            if (n < 0 && errno == EAGAIN)
                continue;
            if (n <= 0)
                fail_msg("client next to a flooder: %s after %d round trips",
                         n == 0 ? "EOF" : strerror(errno), done);
            if (got + (size_t)n > sent)
                fail_msg("received more than was sent");
            got += (size_t)n;
            if (got == msg_len) {
                assert_memory_equal(rbuf, msg, msg_len);
                done++;
                sent = got = 0;
            }
        }
    }

    /* Phase 2: keep flooding until the flooder's socket stays full. With
     * backpressure the server stops reading it and that happens after a
     * few MiB. The 1 s wait only decides when to stop trying: a correct
     * server passes whatever it is; it can only hide a broken one that is
     * also extremely slow. */
    while (hog_total < cap) {
        struct pollfd p = {.fd = hog, .events = POLLOUT};
        int r = poll(&p, 1, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        flood_some(hog, chunk, chunk_len, cap, &hog_total);
    }

    /* Phase 3: with the flooder's connection saturated, others are served. */
    h_set_nonblock(good, false);
    echo_exact(good, msg, msg_len);
    int fd = connect_or_fail(fx);
    echo_exact(fd, "new client\n", 11);
    close(fd);

    long rss = h_server_rss_kib(&fx->srv);
    print_message("flooder wrote %zu bytes; server VmRSS %ld KiB\n", hog_total, rss);
    if (hog_total >= cap)
        fail_msg("the server read all %zu bytes from a client that never reads: "
                 "no backpressure (--max-pending)",
                 hog_total);
    assert_true(rss > 0);
    if (getenv("RS_E2E_SKIP_RSS"))
        print_message("RSS bound not checked (RS_E2E_SKIP_RSS set)\n");
    else if (rss >= rss_limit_kib)
        fail_msg("server VmRSS %ld KiB >= %ld KiB with one flooding client", rss,
                 rss_limit_kib);

    close(good);
    h_reset_close(hog); /* unread data: this is a reset anyway */
    free(chunk);
    free(msg);
    free(rbuf);
}

/* --- 9. graceful stop
 * ------------------------------------------------------------------------ */

static void test_e2e_sigterm_stats(void **state)
{
    struct fixture *fx = *state;
    enum { N = 10 };
    unsigned long long total = 0;
    struct h_flow f[N];
    unsigned char *data[N];
    for (int i = 0; i < N; i++) {
        size_t len = 1000 + (size_t)i * 3000;
        data[i] = pattern(len, 900 + (uint64_t)i);
        f[i] = (struct h_flow){.fd = connect_or_fail(fx),
                               .out = data[i],
                               .len = len,
                               .shut_wr = true,
                               .want_eof = true};
        assert_int_equal(h_set_nonblock(f[i].fd, true), 0);
        total += len;
    }
    run_flows(f, N);
    for (int i = 0; i < N; i++) {
        close(f[i].fd);
        free(data[i]);
    }

    /* the check itself: exit 0, stats with exact counts */
    fx->balanced = true;
    assert_int_equal(stop_and_check(fx, SIGTERM), 0);
    char line[1024];
    unsigned long long acc = 0, in = 0, out = 0;
    assert_true(h_find_line(&fx->srv, "ringserve: stats:", line, sizeof(line)));
    assert_true(h_line_value(line, "accepted", &acc));
    assert_true(h_line_value(line, key_in, &in));
    assert_true(h_line_value(line, key_out, &out));
    assert_int_equal(acc, N);
    assert_int_equal(in, total);
    assert_int_equal(out, total);
}

static void test_e2e_sigint_idle_client(void **state)
{
    struct fixture *fx = *state;
    /* an open, idle connection must not keep the server from stopping (it
     * holds the stop until the drain deadline, then is reset: the server
     * runs with a short one, setup_quick_drain) */
    int fd = connect_or_fail(fx);
    echo_exact(fd, "idle\n", 5);
    fx->balanced = true;
    assert_int_equal(stop_and_check(fx, SIGINT), 0);
    /* and the client learns its server is gone: EOF or a reset, no hang */
    int r = h_expect_eof(fd);
    if (r != 0 && r != -ECONNRESET)
        fail_msg("after the server exited, the idle client got %s",
                 r == 1 ? "data" : strerror(-r));
    close(fd);
}

/* An upload cut by a stop ends so that its client can tell. The client
 * writes without reading until its socket stays full, then SIGTERM, then
 * it goes on uploading (at most 64 MiB more) while it reads: what the
 * stop cuts is the rest of its upload, and it must see a reset, never a
 * clean end of stream. (The old server sent what it had queued and then
 * a FIN, dropping the rest of the upload: the client read a clean end of
 * stream, as if everything it sent had been taken.) Through the proxy the
 * session flows until the drain deadline (2 s), which resets it. The
 * 300 ms only decide when to stop writing before the signal. */
static void test_e2e_stop_cuts_upload_visibly(void **state)
{
    struct fixture *fx = *state;
    const size_t cap = 96 * MIB, more = 64 * MIB;
    static unsigned char chunk[256 * KIB];
    h_fill(chunk, sizeof(chunk), 77);
    int fd = h_connect_rcvbuf(&fx->srv, 32 * KIB);
    if (fd < 0)
        fail_msg("connect: %s", strerror(errno));
    assert_int_equal(h_set_nonblock(fd, true), 0);
    size_t sent = 0;
    while (sent < cap) {
        size_t off = sent % sizeof(chunk);
        ssize_t w = send(fd, chunk + off, sizeof(chunk) - off, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            fail_msg("send after %zu bytes: %s", sent, strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 300) == 0)
            break;
    }
    if (sent >= cap)
        fail_msg("the server took %zu bytes without the client reading any", sent);
    size_t before = sent;
    assert_int_equal(kill(fx->srv.pid, SIGTERM), 0);
    size_t got = 0;
    int end_err = 0;
    unsigned char buf[64 * KIB];
    while (!end_err) {
        bool upload = sent < before + more;
        struct pollfd p = {.fd = fd, .events = POLLIN | (upload ? POLLOUT : 0)};
        int r = poll(&p, 1, H_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail_msg("nothing %d ms after SIGTERM (read %zu bytes)", H_TIMEOUT_MS, got);
        if (upload && (p.revents & POLLOUT)) {
            size_t off = sent % sizeof(chunk);
            ssize_t w = send(fd, chunk + off, sizeof(chunk) - off, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                /* EPIPE, ECONNRESET: told, too. The send took the socket's
                 * error: a recv now would read a plain end of stream. */
                end_err = errno;
                break;
            }
        }
        if (!(p.revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] != chunk[(got + (size_t)i) % sizeof(chunk)])
                    fail_msg("echo differs at byte %zu", got + (size_t)i);
            got += (size_t)n;
            if (got > sent)
                fail_msg("received more than was sent");
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n == 0)
            fail_msg("a clean end of stream after %zu of the %zu bytes sent: the cut "
                     "upload looks complete",
                     got, sent);
        end_err = errno;
    }
    if (end_err != ECONNRESET && end_err != EPIPE)
        fail_msg("after %zu bytes: %s", got, strerror(end_err));
    print_message("client sent %zu bytes (%zu after SIGTERM), read %zu back, then %s\n",
                  sent, sent - before, got, strerror(end_err));
    close(fd);
    h_server_wait(&fx->srv, H_TIMEOUT_MS);
    char st[64];
    if (!h_exited_with(&fx->srv, 0))
        fail_msg("server did not exit 0 after SIGTERM (%s)",
                 h_status_str(&fx->srv, st, sizeof(st)));
}

/* --- 10. round trips of large messages
 * ------------------------------------------------------- */

static void test_e2e_roundtrips_16k(void **state)
{
    struct fixture *fx = *state;
    size_t len = 16 * KIB;
    int fd = connect_or_fail(fx);
    for (int i = 0; i < 50; i++) {
        unsigned char *msg = pattern(len, 1000 + (uint64_t)i);
        echo_exact(fd, msg, len);
        free(msg);
    }
    close(fd);
    fx->balanced = true;
}

/* --- main
 * --------------------------------------------------------------------------------------
 */

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SERVER [SERVER-ARGS...]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int first = 1;
    while (first < argc && strncmp(argv[first], "--expect=", 9) == 0 &&
           nexpect < MAX_EXPECT)
        expect_key[nexpect++] = argv[first++] + 9;
    server_argv = argv + first;
    if (first < argc && strncmp(argv[first], "--via-proxy=", 12) == 0) {
        upstream_bin = argv[first] + 12;
        server_argv = argv + first + 1;
        key_in = "bytes_up";
        key_out = "bytes_down";
    }
    if (!server_argv[0] || strncmp(server_argv[0], "--", 2) == 0) {
        fprintf(stderr,
                "usage: %s [--expect=COUNTER]... [--via-proxy=ECHO-SERVER] "
                "SERVER [ARGS...]\n",
                argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend=uring") == 0)
            want_backend = "uring";
        else if (strcmp(argv[i], "--backend=epoll") == 0)
            want_backend = "epoll";
        else if (strncmp(argv[i], "--backend=", 10) == 0)
            want_backend = NULL;
    }
    /* Nothing listens on port 9 (discard): the proxy only needs a valid
     * --upstream to start; no client connects during the preflight. */
    static const char *const preflight_proxy[] = {"--listen=127.0.0.1:0",
                                                  "--upstream=127.0.0.1:9", NULL};
    int pre = upstream_bin ? h_preflight_with(server_argv, preflight_proxy, "e2e")
                           : h_preflight(server_argv, "e2e");
    if (pre >= 0)
        return pre;

    const char *filter = getenv("RS_E2E_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define Q(fn) cmocka_unit_test_setup_teardown(fn, setup_quick_drain, teardown)
    const struct CMUnitTest tests[] = {
        T(test_e2e_small_echo),         T(test_e2e_all_byte_values),
        T(test_e2e_stream_8mib),        T(test_e2e_pipelined_300),
        T(test_e2e_half_close_pending), T(test_e2e_half_close_pending_16mib),
        T(test_e2e_half_close_small),   T(test_e2e_concurrent_200),
        T(test_e2e_resets_then_served), T(test_e2e_nonreader_bounded),
        T(test_e2e_sigterm_stats),      Q(test_e2e_sigint_idle_client),
        T(test_e2e_roundtrips_16k),     T(test_e2e_stop_cuts_upload_visibly),
    };
#undef T
#undef Q
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (unsigned i = 0; rc == 0 && i < nexpect; i++) {
        printf("%s=%llu summed over the servers of this run\n", expect_key[i],
               expect_sum[i]);
        if (expect_sum[i] == 0) {
            fprintf(stderr,
                    "FAIL: %s stayed 0: the path this variant is for was never taken\n",
                    expect_key[i]);
            rc = 1;
        }
    }
    return rc;
}
