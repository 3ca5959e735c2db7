/* Proxy end-to-end tests: what only a proxy can get wrong.
 *
 * Usage: proxy ECHO-SERVER PROXY-COMMAND...
 *        e.g. proxy build/ringserve build/ringserve --backend=uring --protocol=proxy
 *
 * PROXY-COMMAND is run with --listen=127.0.0.1:0 --upstream=... (and
 * sometimes --connect-timeout=MS) appended. The upstream is either
 * ECHO-SERVER (a ringserve binary, started with its default options on its
 * own ephemeral port) or a socket this program holds itself, so that a test
 * can play an upstream that half-closes first, never reads, floods, refuses
 * or never accepts. The echo suite through the proxy lives in e2e.c
 * (--via-proxy); the same proxy command runs both, one meson test per
 * backend and io_uring feature variant.
 *
 * Each test starts its own proxy, stops it with SIGTERM and checks the exit
 * status and the final statistics line (accepted=, sessions=,
 * connect_failed=, bytes_up=, bytes_down=, resets_in=, resets_out=).
 * Descriptor leaks are counted
 * in /proc/PID/fd plus the io_uring direct descriptor table.
 *
 * Nothing passes or fails on timing: every wait is a poll() with the
 * harness's 20 s safety bound. Two waits only decide *when to stop trying*
 * (how long a flooder keeps writing into a socket that stays full); a
 * correct proxy passes whatever they are.
 *
 * Environment: RS_PROXY_FILTER=pattern (cmocka wildcards),
 * RS_PROXY_VERBOSE=1 (print the proxy's stderr after each test),
 * RS_PROXY_SKIP_RSS=1 (no RSS bound: under valgrind, whose own memory
 * would dominate it).
 * Exit 77 (meson: skip) when io_uring is unavailable for a uring variant.
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
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench_server.h"
#include "harness.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

/* A proxy's memory bound: whatever a peer does, RSS stays below this. */
#define RSS_LIMIT_KIB (64L * 1024)
/* The most a flooder writes; a proxy without backpressure takes it all. */
#define FLOOD_CAP (256u * MIB)
#define MAX_FDS   16

static char **proxy_argv;
static char *echo_bin;

struct pstats {
    unsigned long long accepted, rejected, sessions, connect_failed, connects_direct,
        bytes_up, bytes_down, resets_in, resets_out;
};

struct pfx {
    struct h_server px; /* the proxy */
    struct h_server up; /* an echo server behind it, when the test wants one */
    bool px_started, up_started;
    int fds[MAX_FDS]; /* sockets teardown closes */
};

/* --- fixture ----------------------------------------------------------------- */

static int setup(void **state)
{
    struct pfx *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    for (int i = 0; i < MAX_FDS; i++)
        fx->fds[i] = -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct pfx *fx = *state;
    if (!fx)
        return 0;
    for (int i = 0; i < MAX_FDS; i++)
        if (fx->fds[i] >= 0)
            close(fx->fds[i]);
    if (fx->px_started) {
        if (getenv("RS_PROXY_VERBOSE")) {
            h_server_stop(&fx->px, SIGTERM);
            h_dump_stderr(&fx->px, "RS_PROXY_VERBOSE");
        }
        h_server_destroy(&fx->px);
    }
    if (fx->up_started)
        h_server_destroy(&fx->up);
    free(fx);
    return 0;
}

/* Remember fd so teardown closes it if the test fails first. */
static int keep(struct pfx *fx, int fd)
{
    if (fd < 0)
        fail_msg("socket: %s", strerror(errno));
    for (int i = 0; i < MAX_FDS; i++)
        if (fx->fds[i] < 0) {
            fx->fds[i] = fd;
            return fd;
        }
    fail_msg("more than %d sockets kept", MAX_FDS);
    return -1;
}

/* Close a kept fd (normally, or with a reset). */
static void drop(struct pfx *fx, int fd, bool reset)
{
    for (int i = 0; i < MAX_FDS; i++)
        if (fx->fds[i] == fd)
            fx->fds[i] = -1;
    if (reset)
        h_reset_close(fd);
    else
        close(fd);
}

static void start_echo(struct pfx *fx)
{
    static const char *const listen_any[] = {"--listen=127.0.0.1:0", NULL};
    char *const argv[] = {echo_bin, NULL};
    if (h_server_start(&fx->up, argv, listen_any) != H_STARTED) {
        h_dump_stderr(&fx->up, "echo server start-up");
        fail_msg("the echo server (%s) did not start", echo_bin);
    }
    fx->up_started = true;
}

/* Start the proxy in front of upstreams ("127.0.0.1:P[,127.0.0.1:Q]"),
 * with more (NULL-terminated, may be NULL) after it. */
static void start_proxy(struct pfx *fx, const char *upstreams, const char *const more[])
{
    char up[256];
    const char *extra[12] = {"--listen=127.0.0.1:0", up};
    size_t n = 2;
    snprintf(up, sizeof(up), "--upstream=%s", upstreams);
    for (size_t i = 0; more && more[i] && n < 11; i++)
        extra[n++] = more[i];
    extra[n] = NULL;
    enum h_start r = h_server_start(&fx->px, proxy_argv, extra);
    fx->px_started = true;
    if (r != H_STARTED) {
        h_dump_stderr(&fx->px, "proxy start-up");
        fail_msg("the proxy did not start");
    }
}

static void up_addr(char *buf, size_t len, uint16_t port)
{
    snprintf(buf, len, "127.0.0.1:%u", port);
}

/* A local upstream listener (backlog as for h_listen_local: -1 binds
 * without listening) and a proxy in front of it started with `more`;
 * returns the listener. */
static int proxy_to_local_upstream(struct pfx *fx, int backlog, const char *const more[])
{
    uint16_t port;
    char addr[64];
    int lfd = keep(fx, h_listen_local(backlog, &port));
    up_addr(addr, sizeof(addr), port);
    start_proxy(fx, addr, more);
    return lfd;
}

/* A client of a proxy that resets it at once (its upstream is down): when
 * the proxy is quicker than this thread, connect(2) itself reports the
 * reset (it came before connect returned; seen under qemu). -1 then: the
 * session was closed, as expected. */
static int connect_maybe_reset(struct pfx *fx)
{
    int c = h_connect(&fx->px);
    if (c < 0 && errno == ECONNRESET)
        return -1;
    return keep(fx, c);
}

/* A killed server's listening socket can outlive its process for a moment
 * (an io_uring server's ring is torn down by a kernel worker after the
 * exit, with its multishot accept still holding the socket): a connect
 * then still succeeds. Wait, bounded, until the port refuses. */
static void wait_port_refuses(struct h_server *srv)
{
    for (int i = 0; i < 1000; i++) {
        int fd = h_connect(srv);
        if (fd < 0 && errno == ECONNREFUSED)
            return;
        if (fd >= 0)
            close(fd);
        h_sleep_ms(10);
    }
    fail_msg("port %u still accepts 10 s after its server was killed", srv->port);
}

/* SIGTERM, exit 0, a stats line with every proxy counter. */
static void stop_proxy(struct pfx *fx, struct pstats *st)
{
    char line[2048], sts[64];
    h_server_stop(&fx->px, SIGTERM);
    if (!h_exited_with(&fx->px, 0)) {
        h_dump_stderr(&fx->px, "after stop");
        fail_msg("the proxy did not exit 0 after SIGTERM (%s)",
                 h_status_str(&fx->px, sts, sizeof(sts)));
    }
    if (!h_find_line(&fx->px, "ringserve: stats:", line, sizeof(line)) ||
        !h_line_value(line, "accepted", &st->accepted) ||
        !h_line_value(line, "rejected", &st->rejected) ||
        !h_line_value(line, "sessions", &st->sessions) ||
        !h_line_value(line, "connect_failed", &st->connect_failed) ||
        !h_line_value(line, "connects_direct", &st->connects_direct) ||
        !h_line_value(line, "bytes_up", &st->bytes_up) ||
        !h_line_value(line, "bytes_down", &st->bytes_down) ||
        !h_line_value(line, "resets_in", &st->resets_in) ||
        !h_line_value(line, "resets_out", &st->resets_out)) {
        h_dump_stderr(&fx->px, "after stop");
        fail_msg("no stats line with accepted=, rejected=, sessions=, connect_failed=, "
                 "connects_direct=, bytes_up=, bytes_down=, resets_in=, resets_out=");
    }
    if (getenv("RS_PROXY_VERBOSE"))
        h_dump_stderr(&fx->px, "RS_PROXY_VERBOSE");
}

/* The echo server behind the proxy exits 0; returns its stats line values. */
static void stop_echo(struct pfx *fx, unsigned long long *in, unsigned long long *out)
{
    char line[2048];
    h_server_stop(&fx->up, SIGTERM);
    if (!h_exited_with(&fx->up, 0) ||
        !h_find_line(&fx->up, "ringserve: stats:", line, sizeof(line)) ||
        !h_line_value(line, "bytes_in", in) || !h_line_value(line, "bytes_out", out)) {
        h_dump_stderr(&fx->up, "echo server after stop");
        fail_msg("the echo server behind the proxy did not stop cleanly");
    }
}

static void wait_fds(struct pfx *fx, long base, const char *what)
{
    long n = h_wait_fd_count(&fx->px, base);
    if (n != base)
        fail_msg("%s: the proxy holds %ld descriptors, %ld before (%ld leaked)", what, n,
                 base, n - base);
}

static unsigned char *pattern(size_t len, uint64_t seed)
{
    unsigned char *p = malloc(len ? len : 1);
    assert_non_null(p);
    h_fill(p, len, seed);
    return p;
}

static void write_all(int fd, const void *buf, size_t len)
{
    int w = h_write_all(fd, buf, len);
    if (w < 0)
        fail_msg("write %zu bytes: %s", len, strerror(-w));
}

/* A request to a proxy that may already have reset the client (its
 * upstream failed): a reset or broken pipe is an answer too. False then. */
static bool write_or_reset(int fd, const void *buf, size_t len)
{
    int w = h_write_all(fd, buf, len);
    if (w == -ECONNRESET || w == -EPIPE)
        return false;
    if (w < 0)
        fail_msg("write %zu bytes: %s", len, strerror(-w));
    return true;
}

/* Read exactly len bytes and compare them with want. */
static void read_expect(int fd, const unsigned char *want, size_t len, const char *who)
{
    unsigned char *got = malloc(len ? len : 1);
    assert_non_null(got);
    ssize_t r = h_read_exact(fd, got, len);
    if (r < 0)
        fail_msg("%s: read: %s", who, strerror((int)-r));
    if ((size_t)r != len)
        fail_msg("%s: EOF after %zd of %zu bytes", who, r, len);
    if (memcmp(got, want, len) != 0)
        fail_msg("%s: the bytes differ from what was sent", who);
    free(got);
}

static void expect_eof(int fd, const char *who)
{
    int r = h_expect_eof(fd);
    if (r != 0)
        fail_msg("%s: expected EOF, got %s", who, r == 1 ? "data" : strerror(-r));
}

/* The proxy closed this client: EOF or a reset, with no data first. */
static void expect_closed(int fd, const char *who)
{
    int r = h_expect_eof(fd);
    if (r != 0 && r != -ECONNRESET)
        fail_msg("%s: expected the proxy to close it, got %s", who,
                 r == 1 ? "data" : strerror(-r));
}

/* Write to fd until its socket stays full for 300 ms (the peer chain
 * stopped reading: backpressure works) or FLOOD_CAP bytes went (it did not).
 * The 300 ms only decides when to stop trying: a proxy that keeps reading
 * slowly is caught by the RSS bound instead. Returns the bytes written. */
static size_t flood(int fd)
{
    static unsigned char chunk[256 * KIB];
    size_t total = 0;
    h_fill(chunk, sizeof(chunk), 99);
    assert_int_equal(h_set_nonblock(fd, true), 0);
    while (total < FLOOD_CAP) {
        ssize_t w = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
        if (w > 0) {
            total += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            fail_msg("flooder send after %zu bytes: %s", total, strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, 300);
        if (r == 0)
            break;
    }
    assert_int_equal(h_set_nonblock(fd, false), 0);
    return total;
}

/* One verified round trip through the proxy to an upstream socket we hold:
 * the client sends, the upstream reads and answers, the client reads. */
static void ping_via(int client, int upstream, uint64_t seed)
{
    unsigned char *q = pattern(1000, seed), *a = pattern(3000, seed + 1);
    write_all(client, q, 1000);
    read_expect(upstream, q, 1000, "upstream reading the client's request");
    write_all(upstream, a, 3000);
    read_expect(client, a, 3000, "client reading the upstream's answer");
    free(q);
    free(a);
}

static void echo_via(int client, size_t len, uint64_t seed)
{
    unsigned char *m = pattern(len, seed);
    write_all(client, m, len);
    read_expect(client, m, len, "client reading its echo");
    free(m);
}

/* --- 1. half-close, client first ----------------------------------------------- */

/* The client sends a request and shuts down its side; the upstream reads it
 * to EOF (the FIN crossed the proxy), then answers 1 MiB; the client gets
 * every byte of it and then EOF once the upstream closes. */
static void test_proxy_half_close_client_first(void **state)
{
    struct pfx *fx = *state;
    int lfd = proxy_to_local_upstream(fx, 16, NULL);
    long base = h_server_fd_count(&fx->px);

    size_t qlen = 300 * KIB, alen = 1 * MIB;
    unsigned char *q = pattern(qlen, 11), *a = pattern(alen, 12);
    int c = keep(fx, h_connect(&fx->px));
    write_all(c, q, qlen);
    assert_int_equal(shutdown(c, SHUT_WR), 0);
    int u = keep(fx, h_accept(lfd));
    read_expect(u, q, qlen, "upstream reading the request");
    expect_eof(u, "upstream after the client's SHUT_WR");
    /* the other direction still flows */
    write_all(u, a, alen);
    drop(fx, u, false);
    read_expect(c, a, alen, "client reading the answer after its own SHUT_WR");
    expect_eof(c, "client after the upstream closed");
    drop(fx, c, false);
    wait_fds(fx, base, "after the session");

    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(st.connect_failed, 0);
    assert_int_equal(st.bytes_up, qlen);
    assert_int_equal(st.bytes_down, alen);
    free(q);
    free(a);
}

/* --- 2. half-close, upstream first ---------------------------------------------- */

/* The upstream speaks first and shuts down its side; the client gets the
 * bytes and EOF, then still sends 1 MiB which the upstream reads in full,
 * followed by EOF when the client closes. */
static void test_proxy_half_close_upstream_first(void **state)
{
    struct pfx *fx = *state;
    int lfd = proxy_to_local_upstream(fx, 16, NULL);
    long base = h_server_fd_count(&fx->px);

    size_t glen = 200 * KIB, qlen = 1 * MIB;
    unsigned char *g = pattern(glen, 21), *q = pattern(qlen, 22);
    int c = keep(fx, h_connect(&fx->px));
    int u = keep(fx, h_accept(lfd));
    write_all(u, g, glen);
    assert_int_equal(shutdown(u, SHUT_WR), 0);
    read_expect(c, g, glen, "client reading the greeting");
    expect_eof(c, "client after the upstream's SHUT_WR");
    write_all(c, q, qlen);
    drop(fx, c, false);
    read_expect(u, q, qlen, "upstream reading after its own SHUT_WR");
    expect_eof(u, "upstream after the client closed");
    drop(fx, u, false);
    wait_fds(fx, base, "after the session");

    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(st.connect_failed, 0);
    assert_int_equal(st.bytes_up, qlen);
    assert_int_equal(st.bytes_down, glen);
    free(g);
    free(q);
}

/* --- 3. upstream down at start ----------------------------------------------------- */

/* Nothing listens behind the proxy (a port bound but not listening, so no
 * one else can take it): each client is closed without data, each failure is
 * counted, and the proxy's descriptors come back. */
static void test_proxy_upstream_down(void **state)
{
    struct pfx *fx = *state;
    enum { N = 5 };
    proxy_to_local_upstream(fx, -1, NULL);
    long base = h_server_fd_count(&fx->px);
    for (int i = 0; i < N; i++) {
        int c = connect_maybe_reset(fx);
        if (c < 0)
            continue;
        /* a request in flight must not matter */
        if (write_or_reset(c, "hello?\n", 7))
            expect_closed(c, "client of a proxy whose upstream is down");
        drop(fx, c, false);
    }
    wait_fds(fx, base, "after refused sessions");
    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.accepted, N);
    assert_int_equal(st.connect_failed, N);
    assert_int_equal(st.bytes_down, 0);
}

/* Two upstreams, the first down: every client either gets a perfect echo or
 * is closed without data (and counted); round-robin with skipping means at
 * least half of them are served. */
static void test_proxy_one_upstream_down(void **state)
{
    struct pfx *fx = *state;
    enum { N = 10 };
    uint16_t port;
    char addr[128];
    keep(fx, h_listen_local(-1, &port));
    start_echo(fx);
    snprintf(addr, sizeof(addr), "127.0.0.1:%u,127.0.0.1:%u", port, fx->up.port);
    start_proxy(fx, addr, NULL);
    int served = 0, closed = 0;
    for (int i = 0; i < N; i++) {
        int c = connect_maybe_reset(fx);
        if (c < 0) {
            closed++;
            continue;
        }
        unsigned char *m = pattern(5000, 300 + (uint64_t)i), back[5000];
        ssize_t r = write_or_reset(c, m, sizeof(back))
                        ? h_read_exact(c, back, sizeof(back))
                        : -ECONNRESET;
        if (r == (ssize_t)sizeof(back)) {
            assert_memory_equal(back, m, sizeof(back));
            served++;
        } else if (r == 0 || r == -ECONNRESET) {
            closed++;
        } else {
            fail_msg("client %d: %zd bytes of 5000, then %s", i, r,
                     r < 0 ? strerror((int)-r) : "EOF");
        }
        drop(fx, c, false);
        free(m);
    }
    print_message("%d served, %d closed\n", served, closed);
    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.accepted, N);
    assert_int_equal(st.connect_failed, (unsigned long long)closed);
    assert_true(served >= N / 2);
    unsigned long long in, out;
    stop_echo(fx, &in, &out);
    assert_int_equal(in, (unsigned long long)served * 5000);
    assert_int_equal(out, in);
}

/* --- 4. upstream killed mid-stream ---------------------------------------------- */

/* An echo server behind the proxy is SIGKILLed while a client has 1 MiB in
 * flight: the client is closed (EOF or reset, no hang), the proxy lives on,
 * counts a failure for the next client (nothing listens any more), and
 * gives back every descriptor. */
static void test_proxy_upstream_killed(void **state)
{
    struct pfx *fx = *state;
    char addr[64];
    start_echo(fx);
    up_addr(addr, sizeof(addr), fx->up.port);
    start_proxy(fx, addr, NULL);
    long base = h_server_fd_count(&fx->px);

    int c = keep(fx, h_connect(&fx->px));
    echo_via(c, 64 * KIB, 41);
    unsigned char *big = pattern(1 * MIB, 42);
    assert_int_equal(h_set_nonblock(c, true), 0);
    h_send_some(c, big, 1 * MIB);
    assert_int_equal(h_set_nonblock(c, false), 0);
    h_server_stop(&fx->up, SIGKILL);
    long long r = h_drain_to_eof(c, NULL);
    if (r < 0 && r != -ECONNRESET)
        fail_msg("client of a killed upstream: %s instead of EOF or a reset",
                 strerror((int)-r));
    drop(fx, c, false);
    wait_fds(fx, base, "after the upstream died");

    wait_port_refuses(&fx->up);
    c = connect_maybe_reset(fx);
    if (c >= 0) {
        expect_closed(c, "client after the upstream died");
        drop(fx, c, false);
    }
    wait_fds(fx, base, "after a refused session");

    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.connect_failed, 1);
    free(big);
}

/* --- 5, 6. a peer that never reads ------------------------------------------- */

/* One side floods, the other accepts/connects and never reads. The proxy
 * must stop reading the flooder (its socket stays full well before
 * FLOOD_CAP), keep its RSS bounded, and still serve a second session. */
static void never_reads(struct pfx *fx, bool client_floods)
{
    const char *deaf_name = client_floods ? "an upstream" : "a client";
    int lfd = proxy_to_local_upstream(fx, 16, NULL);

    int c = keep(fx, h_connect(&fx->px));
    int u = keep(fx, h_accept(lfd));
    size_t sent = flood(client_floods ? c : u);
    long rss = h_server_rss_kib(&fx->px);
    print_message("the flooder wrote %zu bytes towards %s that never reads before its "
                  "socket stayed full; proxy VmRSS %ld KiB\n",
                  sent, deaf_name, rss);
    if (sent >= FLOOD_CAP)
        fail_msg("the proxy read all %u bytes towards %s that never reads: no "
                 "backpressure",
                 FLOOD_CAP, deaf_name);
    if (getenv("RS_PROXY_SKIP_RSS"))
        print_message("RSS bound not checked (RS_PROXY_SKIP_RSS set)\n");
    else if (rss <= 0 || rss >= RSS_LIMIT_KIB)
        fail_msg("proxy VmRSS %ld KiB (limit %ld)", rss, RSS_LIMIT_KIB);

    /* others are still served */
    int c2 = keep(fx, h_connect(&fx->px));
    int u2 = keep(fx, h_accept(lfd));
    ping_via(c2, u2, client_floods ? 51 : 61);
    drop(fx, c2, false);
    drop(fx, u2, false);

    drop(fx, c, true);
    drop(fx, u, true);
    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.sessions, 2);
    /* the flood, plus the second session's 1000 bytes up and 3000 down */
    if (client_floods)
        assert_true(st.bytes_up <= sent + 1000);
    else
        assert_true(st.bytes_down <= sent + 3000);
}

static void test_proxy_upstream_never_reads(void **state)
{
    never_reads(*state, true);
}

/* The mirror image: the upstream floods, the client never reads. */
static void test_proxy_client_never_reads(void **state)
{
    never_reads(*state, false);
}

/* --- 7. churn: no descriptor leak --------------------------------------------------- */

/* 2,000 sessions back to back through the proxy to an echo server: one in
 * three echoes 16 bytes and closes, one closes without a word, one echoes
 * and resets. The proxy's descriptors (direct ones included) return to the
 * count before, nothing failed, and the byte counts agree with the echo
 * server's. */
static void test_proxy_churn_no_fd_leak(void **state)
{
    struct pfx *fx = *state;
    enum { N = 2000 };
    char addr[64];
    start_echo(fx);
    up_addr(addr, sizeof(addr), fx->up.port);
    start_proxy(fx, addr, NULL);
    long base = h_server_fd_count(&fx->px);
    assert_true(base > 0);
    unsigned long long echoed = 0;
    for (int i = 0; i < N; i++) {
        int c = keep(fx, h_connect(&fx->px));
        char msg[17];
        snprintf(msg, sizeof(msg), "churn %010d", i);
        if (i % 3 != 1) {
            write_all(c, msg, 16);
            read_expect(c, (const unsigned char *)msg, 16, "churned client");
            echoed += 16;
        }
        drop(fx, c, i % 3 == 2);
    }
    wait_fds(fx, base, "after 2000 sessions");
    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.accepted, N);
    assert_int_equal(st.connect_failed, 0);
    assert_int_equal(st.bytes_up, echoed);
    assert_int_equal(st.bytes_down, echoed);
    unsigned long long in, out;
    stop_echo(fx, &in, &out);
    assert_int_equal(in, echoed);
    assert_int_equal(out, echoed);
}

/* --- 8. connect timeout ------------------------------------------------------------ */

/* The upstream listens with backlog 0 and one connection already waits in
 * its accept queue, so the kernel drops every further SYN: the proxy's
 * connect can only end by its --connect-timeout. The client is closed, the
 * failure counted, the descriptors come back. */
static void test_proxy_connect_timeout(void **state)
{
    struct pfx *fx = *state;
    uint16_t port;
    char addr[64];
    keep(fx, h_listen_local(0, &port));
    struct h_server filler = {.port = port};
    snprintf(filler.host, sizeof(filler.host), "127.0.0.1");
    keep(fx, h_connect(&filler)); /* completes: the queue holds it */
    up_addr(addr, sizeof(addr), port);
    static const char *const more[] = {"--connect-timeout=300", NULL};
    start_proxy(fx, addr, more);
    long base = h_server_fd_count(&fx->px);
    for (int i = 0; i < 2; i++) {
        int c = keep(fx, h_connect(&fx->px));
        if (write_or_reset(c, "anyone?\n", 8))
            expect_closed(c, "client of an upstream that never accepts");
        drop(fx, c, false);
    }
    wait_fds(fx, base, "after timed-out connects");
    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.connect_failed, 2);
}

/* --- 10. stop: sessions flow for --drain-timeout, what is cut is reset ------------- */

/* After SIGTERM the proxy stops accepting: wait until a connect to it is
 * refused, which shows that the stop began. The proxy runs with
 * --max-conns=1 and one session open, so a probe that comes before is
 * rejected at the door: it never becomes a session of its own. */
static void wait_stop_began(struct pfx *fx)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(fx->px.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int64_t until = h_now_ms() + H_TIMEOUT_MS;
    while (h_now_ms() < until) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        int rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
        int err = errno;
        close(fd);
        if (rc < 0 && err == ECONNREFUSED)
            return;
        h_sleep_ms(5);
    }
    fail_msg("the proxy still accepts %d ms after SIGTERM", H_TIMEOUT_MS);
}

/* SIGTERM arrived, the proxy exits by itself: 0, with its stats line. */
static void wait_proxy_exit(struct pfx *fx, struct pstats *st)
{
    h_server_wait(&fx->px, H_TIMEOUT_MS);
    stop_proxy(fx, st); /* exited already: checks status and stats */
}

/* A download through the proxy, SIGTERM after its first MiB: the rest
 * (31 MiB, all sent by the upstream after the stop began) arrives, in
 * order, then the upstream's FIN as the end. (The old proxy closed every
 * session at once: the client got what was queued and a clean FIN.) */
static void test_proxy_stop_lets_download_finish(void **state)
{
    struct pfx *fx = *state;
    const size_t first = 1 * MIB, total = 32 * MIB;
    static const char *const more[] = {"--drain-timeout=20000", "--max-conns=1", NULL};
    int lfd = proxy_to_local_upstream(fx, 16, more);
    int c = keep(fx, h_connect(&fx->px));
    write_all(c, "GET\n", 4);
    int u = keep(fx, h_accept(lfd));
    read_expect(u, (const unsigned char *)"GET\n", 4, "upstream reading the request");
    unsigned char *data = pattern(total, 81);
    write_all(u, data, first);
    read_expect(c, data, first, "client reading the first MiB");
    assert_int_equal(kill(fx->px.pid, SIGTERM), 0);
    wait_stop_began(fx);
    assert_int_equal(h_set_nonblock(u, true), 0);
    assert_int_equal(h_set_nonblock(c, true), 0);
    size_t up = first, got = first;
    static unsigned char buf[256 * KIB];
    for (;;) {
        struct pollfd p[2] = {{.fd = c, .events = POLLIN},
                              {.fd = u, .events = up < total ? POLLOUT : 0}};
        int r = poll(p, up < total ? 2 : 1, H_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            fail_msg("the download stalled after %zu of %zu bytes", got, total);
        if (up < total && (p[1].revents & POLLOUT)) {
            ssize_t w = send(u, data + up, total - up, MSG_NOSIGNAL);
            if (w > 0)
                up += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR)
                fail_msg("upstream send after %zu bytes: %s", up, strerror(errno));
            if (up == total)
                drop(fx, u, false); /* the end of the download: a FIN */
        }
        if (!(p[0].revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        ssize_t n = recv(c, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            fail_msg("client: %s after %zu of %zu bytes", strerror(errno), got, total);
        if (n == 0)
            break;
        if (got + (size_t)n > total || memcmp(buf, data + got, (size_t)n) != 0)
            fail_msg("client: wrong bytes at %zu", got);
        got += (size_t)n;
    }
    if (got != total)
        fail_msg("client: EOF after %zu of %zu bytes: the stop cut the download", got,
                 total);
    drop(fx, c, false);
    struct pstats st;
    wait_proxy_exit(fx, &st);
    assert_int_equal(st.bytes_down, total);
    free(data);
}

/* A session whose upstream is still connecting when the stop begins keeps
 * connecting and then flows. The upstream's accept queue is full (a filler
 * connection sits in it), so the proxy's SYN is dropped; after SIGTERM the
 * test accepts the filler, the SYN's retransmission gets in, and the
 * request and answer cross. (The old proxy aborted the session: nothing
 * ever connected.) */
static void test_proxy_stop_spares_connecting_session(void **state)
{
    struct pfx *fx = *state;
    uint16_t port;
    char addr[64];
    int lfd = keep(fx, h_listen_local(0, &port));
    struct h_server filler = {.port = port};
    snprintf(filler.host, sizeof(filler.host), "127.0.0.1");
    int f = keep(fx, h_connect(&filler)); /* completes: the queue holds it */
    up_addr(addr, sizeof(addr), port);
    static const char *const more[] = {"--drain-timeout=20000", "--connect-timeout=20000",
                                       "--max-conns=1", NULL};
    start_proxy(fx, addr, more);
    long base = h_server_fd_count(&fx->px);
    int c = keep(fx, h_connect(&fx->px));
    write_all(c, "hello\n", 6);
    /* The session exists once the proxy holds the client's socket and the
     * upstream's (process fds or direct slots). */
    int64_t until = h_now_ms() + H_TIMEOUT_MS;
    while (h_server_fd_count(&fx->px) < base + 2) {
        if (h_now_ms() > until)
            fail_msg("the proxy never started connecting");
        h_sleep_ms(5);
    }
    assert_int_equal(kill(fx->px.pid, SIGTERM), 0);
    wait_stop_began(fx);
    drop(fx, f, false);
    drop(fx, keep(fx, h_accept(lfd)), false); /* the filler: room in the queue */
    int u = keep(fx, h_accept(lfd));
    if (u < 0)
        fail_msg("the proxy's connect never arrived: the stop aborted it");
    read_expect(u, (const unsigned char *)"hello\n", 6, "upstream reading the request");
    write_all(u, "world\n", 6);
    drop(fx, u, false);
    read_expect(c, (const unsigned char *)"world\n", 6, "client reading the answer");
    expect_eof(c, "client after the upstream's FIN");
    drop(fx, c, false);
    struct pstats st;
    wait_proxy_exit(fx, &st);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(st.connect_failed, 0);
}

/* What the drain deadline cuts is cut visibly: an upstream floods a client
 * that never reads, SIGTERM with --drain-timeout=300; the proxy exits 0,
 * and the client, reading at last, gets a prefix and then a reset, never
 * a clean end of stream (the old proxy's close at the deadline sent a FIN:
 * the truncated download looked complete). The upstream is reset too. */
static void test_proxy_drain_deadline_resets(void **state)
{
    struct pfx *fx = *state;
    static const char *const more[] = {"--drain-timeout=300", NULL};
    int lfd = proxy_to_local_upstream(fx, 16, more);
    int c = keep(fx, h_connect(&fx->px));
    int u = keep(fx, h_accept(lfd));
    size_t sent = flood(u);
    assert_int_equal(kill(fx->px.pid, SIGTERM), 0);
    struct pstats st;
    wait_proxy_exit(fx, &st);
    unsigned long long got = 0;
    long long r = h_drain_to_eof(c, &got);
    print_message("upstream sent %zu bytes; the client read %llu, then %s\n", sent, got,
                  r < 0 ? strerror((int)-r) : "a clean end of stream");
    if (r >= 0)
        fail_msg("client: a clean end of stream after %llu of %zu bytes: the cut "
                 "download looks complete",
                 got, sent);
    assert_int_equal(r, -ECONNRESET);
    assert_true(got < sent);
    char b;
    assert_int_equal(recv(u, &b, 1, 0), -1);
    assert_int_equal(errno, ECONNRESET);
}

/* --- 9. capacity: two descriptors a session --------------------------------------- */

#define CAP_NOFILE 128

/* Under RLIMIT_NOFILE 128 a proxy session holds two descriptors (the
 * client's and the upstream's: process fds, or slots of a direct table
 * sized by the limit), so the default --max-conns must count two per
 * session. More clients than that connect at once; exactly max-conns are
 * served (each echoes through the proxy) and every other one is closed at
 * once and counted `rejected`, never accepted only to fail its upstream
 * connect (connect_failed stays 0). No timing: each client ends served or
 * closed, whatever the order. */
static void test_proxy_capacity_two_descriptors_a_session(void **state)
{
    struct pfx *fx = *state;
    const char *nofile = getenv("RS_PROXY_NOFILE_EXEC");
    if (!nofile)
        fail_msg("RS_PROXY_NOFILE_EXEC is not set (tests/e2e/meson.build sets it)");
    char addr[64], lim[16], line[2048];
    start_echo(fx);
    up_addr(addr, sizeof(addr), fx->up.port);
    /* nofile_exec 128 PROXY-COMMAND... */
    char **saved = proxy_argv;
    size_t n = 0;
    while (saved[n])
        n++;
    char **argv = calloc(n + 3, sizeof(*argv));
    assert_non_null(argv);
    snprintf(lim, sizeof(lim), "%d", CAP_NOFILE);
    argv[0] = (char *)nofile;
    argv[1] = lim;
    memcpy(argv + 2, saved, n * sizeof(*argv));
    proxy_argv = argv;
    start_proxy(fx, addr, NULL);
    proxy_argv = saved;
    free(argv);
    unsigned long long max = 0, limit = 0;
    if (!h_find_line(&fx->px, "ringserve: listening on", line, sizeof(line)) ||
        !h_line_value(line, "max-conns", &max) ||
        !h_line_value(line, "conn-limit", &limit))
        fail_msg("no max-conns= and conn-limit= on the start-up line");
    print_message("RLIMIT_NOFILE %d: %s\n", CAP_NOFILE, line);
    if (limit > CAP_NOFILE / 2)
        fail_msg("conn-limit=%llu: more than %d sessions of two descriptors", limit,
                 CAP_NOFILE / 2);
    assert_true(max >= 1 && max <= limit);
    size_t nc = (size_t)max + 16;
    int *c = calloc(nc, sizeof(int));
    assert_non_null(c);
    for (size_t i = 0; i < nc; i++) {
        c[i] = h_connect(&fx->px);
        if (c[i] < 0)
            fail_msg("client %zu: connect: %s", i, strerror(errno));
    }
    size_t served = 0, closed = 0;
    for (size_t i = 0; i < nc; i++) {
        char msg[32], got[16];
        snprintf(msg, sizeof(msg), "cap %012zu", i % 1000000);
        if (send(c[i], msg, 16, MSG_NOSIGNAL) != 16) {
            closed++; /* closed (reset) before we wrote */
            continue;
        }
        ssize_t r = h_read_exact(c[i], (unsigned char *)got, 16);
        if (r == 16 && memcmp(got, msg, 16) == 0)
            served++;
        else if (r == 0 || r == -ECONNRESET)
            closed++;
        else
            fail_msg("client %zu: neither its echo nor a close (%zd)", i, r);
    }
    for (size_t i = 0; i < nc; i++)
        close(c[i]);
    free(c);
    print_message("%zu clients: %zu served, %zu closed at once (max-conns=%llu)\n", nc,
                  served, closed, max);
    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.connect_failed, 0);
    assert_int_equal(served, max);
    assert_int_equal(closed, nc - max);
    assert_int_equal(st.rejected, nc - max);
}

/* --- 10. outbound socket kind ------------------------------------------------------ */

/* Where the proxy runs with direct-socket (io_uring with fixed files on a
 * kernel that can, the default here), its upstream sockets are direct
 * descriptors like the accepted ones: with sessions open it holds not one
 * process fd more, and every connect is counted in connects_direct.
 * Elsewhere each upstream is a plain fd, and connects_direct stays 0. */
static void test_proxy_outbound_socket_kind(void **state)
{
    struct pfx *fx = *state;
    enum { N = 8 };
    char addr[64], line[2048];
    start_echo(fx);
    up_addr(addr, sizeof(addr), fx->up.port);
    start_proxy(fx, addr, NULL);
    if (!h_find_line(&fx->px, "ringserve: listening", line, sizeof(line)))
        fail_msg("no listening line");
    const char *feat = strstr(line, "features=");
    bool direct = feat && strstr(feat, "direct-socket") && strstr(feat, "fixed-files");
    /* Process descriptors only (/proc/PID/fd), without the ring's direct
     * table, which h_server_fd_count adds. */
    long base = h_server_fd_count(&fx->px);
    long long plain0 = bench_proc_fd_count(fx->px.pid);
    int c[N];
    for (int i = 0; i < N; i++) {
        c[i] = keep(fx, h_connect(&fx->px));
        echo_via(c[i], 100, (uint64_t)i); /* the upstream is connected */
    }
    long long plain = bench_proc_fd_count(fx->px.pid);
    assert_true(plain0 >= 0 && plain >= 0);
    print_message(
        "outbound sockets %s: %lld process fds with %d sessions, %lld without\n",
        direct ? "direct" : "plain", plain, N, plain0);
    if (direct)
        assert_int_equal(plain, plain0);
    else
        assert_true(plain >= plain0 + N);
    for (int i = 0; i < N; i++)
        drop(fx, c[i], false);
    wait_fds(fx, base, "after the sessions");
    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.sessions, N);
    assert_int_equal(st.connects_direct, direct ? N : 0);
}

/* --- 11, 12. a reset stays a reset ------------------------------------------------ */

#define RESET_SEND (512u * KIB)

/* Read what fd delivers until it ends, 16 KiB at a time, checking that
 * every byte is the next of want[0..len): returns how it ended (0: a clean
 * EOF, -errno: an error such as -ECONNRESET), the count in *got. */
static int read_prefix(int fd, const unsigned char *want, size_t len, size_t *got,
                       const char *who)
{
    static unsigned char buf[16 * KIB];
    *got = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, 20000);
        if (pr == 0)
            fail_msg("%s: nothing for 20 s after %zu bytes", who, *got);
        if (pr < 0 && errno == EINTR)
            continue;
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r <= 0)
            return r == 0 ? 0 : -errno;
        if (*got + (size_t)r > len || memcmp(buf, want + *got, (size_t)r) != 0)
            fail_msg("%s: bytes %zu..%zu are not what was sent", who, *got,
                     *got + (size_t)r);
        *got += (size_t)r;
    }
}

/* One side of a session writes until its socket is full (the other side
 * has not read a byte: the proxy is behind), then resets. The other side
 * then reads: a prefix of what was written, then ECONNRESET. A clean EOF
 * would make a cut transfer look complete. */
static void reset_crosses(struct pfx *fx, bool upstream_resets)
{
    int lfd = proxy_to_local_upstream(fx, 16, NULL);
    long base = h_server_fd_count(&fx->px);
    int c = keep(fx, h_connect(&fx->px));
    int u = keep(fx, h_accept(lfd));
    ping_via(c, u, upstream_resets ? 81 : 91); /* both legs are up */
    int from = upstream_resets ? u : c, to = upstream_resets ? c : u;
    const char *who = upstream_resets ? "client of an upstream that reset"
                                      : "upstream of a client that reset";
    unsigned char *data = pattern(RESET_SEND, upstream_resets ? 82 : 92);
    assert_int_equal(h_set_nonblock(from, true), 0);
    /* Less than the proxy queues before it stops reading the sender
     * (--max-pending, 1 MiB), more than the receiver's socket holds: the
     * receiver, which has not read a byte yet, is behind when the reset
     * comes, and the proxy still holds bytes for it. (A sender that floods
     * past that, so that the proxy paused reading it, then resets, left
     * the io_uring proxy now and then with a recv armed on the reset
     * socket that never completed: see the branch notes.) */
    size_t sent = h_send_some(from, data, RESET_SEND);
    drop(fx, from, true);
    size_t got = 0;
    int end = read_prefix(to, data, sent, &got, who);
    print_message("%s: %zu bytes written before the reset, %zu received, then %s\n",
                  upstream_resets ? "upstream" : "client", sent, got,
                  end == 0 ? "EOF" : strerror(-end));
    if (end != -ECONNRESET)
        fail_msg("%s: %zu of %zu bytes, then %s instead of a reset", who, got, sent,
                 end == 0 ? "a clean EOF" : strerror(-end));
    drop(fx, to, false);
    wait_fds(fx, base, "after the reset session");
    struct pstats st;
    stop_proxy(fx, &st);
    assert_int_equal(st.sessions, 1);
    assert_int_equal(st.resets_in, 1);
    assert_int_equal(st.resets_out, 1);
    free(data);
}

static void test_proxy_upstream_reset_reaches_client(void **state)
{
    reset_crosses(*state, true);
}

static void test_proxy_client_reset_reaches_upstream(void **state)
{
    reset_crosses(*state, false);
}

/* --- main ----------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ECHO-SERVER PROXY [PROXY-ARGS...]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    echo_bin = argv[1];
    proxy_argv = argv + 2;
    static const char *const preflight[] = {"--listen=127.0.0.1:0",
                                            "--upstream=127.0.0.1:9", NULL};
    int pre = h_preflight_with(proxy_argv, preflight, "proxy");
    if (pre >= 0)
        return pre;
    const char *filter = getenv("RS_PROXY_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_proxy_half_close_client_first),
        T(test_proxy_half_close_upstream_first),
        T(test_proxy_upstream_down),
        T(test_proxy_one_upstream_down),
        T(test_proxy_upstream_killed),
        T(test_proxy_upstream_never_reads),
        T(test_proxy_client_never_reads),
        T(test_proxy_churn_no_fd_leak),
        T(test_proxy_connect_timeout),
        T(test_proxy_capacity_two_descriptors_a_session),
        T(test_proxy_outbound_socket_kind),
        T(test_proxy_upstream_reset_reaches_client),
        T(test_proxy_client_reset_reaches_upstream),
        T(test_proxy_stop_lets_download_finish),
        T(test_proxy_stop_spares_connecting_session),
        T(test_proxy_drain_deadline_resets),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
