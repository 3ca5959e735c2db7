/* The HTTP protocol's session state machine (protocols/http.c), in process, on
 * a real backend: test_http epoll-et|epoll-lt|epoll-inline|uring [FEATURES].
 *
 * One loop, no listener: the server end of a socketpair is handed to the
 * loop as an accepted stream, and the test drives the loop turn by turn
 * while it plays the client on the other end, so the orders that matter
 * happen deterministically: a request arriving one byte at a time,
 * pipelined requests, a client that vanishes while file reads are in
 * flight, a pool of two buffers. Every test ends with no stream, no file
 * op and no lent buffer left (rs_loop_fini asserts the buffers; the
 * sanitizer and valgrind runs catch a leaked session). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../skip_reason.h"

#include "backend.h"
#include "backend_table.h"
#include "fcache.h"
#include "fd_limit.h"
#include "http_parse.h"
#include "kernel_release.h"
#include "listener.h"
#include "loop.h"
#include "mode_options.h"
#include "protocol.h"
#include "stream.h"

#define BIG_LEN (300u * 1024u + 17u)

static const struct rs_backend_ops *backend;
static const char *mode_name;
static const char *features = "default";

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
    char dir[64];
    int client;
    uint8_t *big;
};

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 31 + (i >> 9));
}

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[128];
    int len = snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_true(len > 0 && (size_t)len < sizeof(path));
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

/* Out of memory, injected: realloc is wrapped (-Wl,--wrap=realloc), and
 * while realloc_fails is set every call fails (counted in
 * realloc_failed). The session's input buffer is the only realloc a
 * request's bytes meet in these tests' turns. */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
static bool realloc_fails;
static int realloc_failed;

void *__wrap_realloc(void *p, size_t n)
{
    if (realloc_fails) {
        realloc_failed++;
        return NULL;
    }
    return __real_realloc(p, n);
}

static bool copy_bodies;           /* setup_with: --sendfile=off */
static bool no_file_cache;         /* setup_with: --open-file-cache=0 */
static bool long_drain;            /* setup_with: --drain-timeout of a minute */
static uint32_t header_timeout_ms; /* setup_with: --header-timeout (0: the default) */
/* setup_with: --send-timeout and --keepalive-timeout (0: the defaults;
 * OFF: 0, none) */
static uint32_t send_timeout_ms, keepalive_timeout_ms;
#define OFF UINT32_MAX

/* A clock of the test's own. The send and keep-alive timeouts count
 * milliseconds of CLOCK_MONOTONIC; a test that shows one NOT firing while
 * the client keeps within it would fail whenever the machine stops this
 * process for longer than the timeout (a loaded machine, a stolen vCPU),
 * as any correct server may then fire it. This program is linked with
 * --wrap=clock_gettime: while vclock_on, CLOCK_MONOTONIC reads vclock_ms,
 * which moves only when a test moves it (vclock_pass), after letting the
 * loop do all it can. */
static bool vclock_on;
static uint64_t vclock_ms;
/* Added to vclock_ms by a signal handler (which may only store to a
 * volatile sig_atomic_t): time that passed while a wait was cut short. */
static volatile sig_atomic_t vclock_jump_ms;

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts)
{
    if (!vclock_on || id != CLOCK_MONOTONIC)
        return __real_clock_gettime(id, ts);
    uint64_t ms = vclock_ms + (uint64_t)vclock_jump_ms;
    ts->tv_sec = (time_t)(ms / 1000u);
    ts->tv_nsec = (long)(ms % 1000u) * 1000000L;
    return 0;
}

static int setup_with(void **state, uint32_t buffers)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    strcpy(fx->dir, "/tmp/rs-http-unit-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->big = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++)
        fx->big[i] = pattern(i);
    write_file(fx->dir, "big.bin", fx->big, BIG_LEN);
    write_file(fx->dir, "a.txt", "hello\n", 6);
    rs_config_defaults(&fx->cfg);
    mode_options(&fx->cfg, mode_name, features, false);
    fx->cfg.protocol = "http";
    fx->cfg.root = fx->dir;
    fx->cfg.buffers = buffers;
    fx->cfg.buffer_size = 4096;
    fx->cfg.max_pending = 64 * 1024;
    fx->cfg.no_sendfile = copy_bodies;
    if (no_file_cache)
        fx->cfg.open_file_cache = 0;
    if (header_timeout_ms)
        fx->cfg.header_timeout_ms = header_timeout_ms;
    if (send_timeout_ms)
        fx->cfg.send_timeout_ms = send_timeout_ms == OFF ? 0 : send_timeout_ms;
    if (keepalive_timeout_ms)
        fx->cfg.keepalive_timeout_ms =
            keepalive_timeout_ms == OFF ? 0 : keepalive_timeout_ms;
    if (long_drain)
        fx->cfg.drain_timeout_ms = 60000;
    char err[256] = "";
    if (rs_loop_init(&fx->loop, backend, &fx->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "loop init: %s\n", err);
        return -1;
    }
    int sv[2];
    assert_int_equal(
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    fx->client = sv[1];
    assert_non_null(rs_stream_accept(&fx->loop, sv[0], false, false));
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 64);
}

static int setup_two_buffers(void **state)
{
    return setup_with(state, 2);
}

/* The same, with large bodies read into memory and copied out
 * (--sendfile=off) rather than sent with RS_OP_SENDFILE. */
static int setup_copy(void **state)
{
    copy_bodies = true;
    int rc = setup_with(state, 64);
    copy_bodies = false;
    return rc;
}

static int setup_two_buffers_copy(void **state)
{
    copy_bodies = true;
    int rc = setup_with(state, 2);
    copy_bodies = false;
    return rc;
}

/* A fixture whose server has these time limits (ms; 0: the config's
 * default; OFF: none); the next fixture gets the defaults again. */
static int setup_limits(void **state, uint32_t head, uint32_t send, uint32_t keepalive)
{
    header_timeout_ms = head;
    send_timeout_ms = send;
    keepalive_timeout_ms = keepalive;
    int rc = setup_with(state, 64);
    header_timeout_ms = send_timeout_ms = keepalive_timeout_ms = 0;
    return rc;
}

/* A request head must be complete within 500 ms: a hundred times the
 * trickle's pace below, so that only a stall of the whole machine that long
 * could make a deadline pushed back by each byte fire too. */
static int setup_head_deadline(void **state)
{
    return setup_limits(state, 500, 0, 0);
}

/* All three time limits at 500 ms. */
static int setup_timeouts(void **state)
{
    return setup_limits(state, 500, 500, 500);
}

static int setup_timeouts_copy(void **state)
{
    copy_bodies = true;
    int rc = setup_timeouts(state);
    copy_bodies = false;
    return rc;
}

/* All three at 500 ms on the test's clock, which starts at the real one. */
static int setup_timeouts_vclock(void **state)
{
    struct timespec ts;
    __real_clock_gettime(CLOCK_MONOTONIC, &ts);
    vclock_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    vclock_on = true;
    return setup_timeouts(state);
}

/* One of the two off, the other and the head deadline at 300 ms. */
static int setup_send_off(void **state)
{
    return setup_limits(state, 300, OFF, 300);
}

static int setup_keepalive_off(void **state)
{
    return setup_limits(state, 300, 300, OFF);
}

/* A lingering close that only the peer's EOF can end within a test's
 * turns: the drain timeout is a minute. */
static int setup_long_drain(void **state)
{
    long_drain = true;
    int rc = setup_with(state, 64);
    long_drain = false;
    return rc;
}

static int setup_long_drain_copy(void **state)
{
    copy_bodies = true;
    int rc = setup_long_drain(state);
    copy_bodies = false;
    return rc;
}

/* Large bodies go out with RS_OP_SENDFILE in this run. */
static bool by_file(const struct fixture *fx)
{
    return (fx->loop.caps & RS_CAP_SENDFILE) && !fx->cfg.no_sendfile;
}

/* One loop turn, as rs_loop_turn makes it, but with a bounded wait (the
 * client is this thread): starved streams, retries, the backend, then the
 * timers, which a wait that brought completions defers by one turn. Timers
 * first would judge a deadline that passed while this process had no CPU
 * before the bytes that came meanwhile: the head deadline of a request
 * already in the socket, the drain bound of a close whose peer read on. */
static void turn(struct fixture *fx)
{
    struct rs_loop *loop = &fx->loop;
    rs_loop_feed_starved(loop);
    rs_loop_retry(loop);
    int n = loop->ops->run(loop, 2);
    loop->now_ms = rs_now_ms();
    bool due = loop->ntimers > 0 && loop->timers[0]->due_ms <= loop->now_ms;
    if ((n > 0 || n == -EINTR) && due && !loop->timers_deferred) {
        loop->timers_deferred = true;
        return;
    }
    loop->timers_deferred = false;
    rs_timer_run_due(loop);
}

/* Turn the loop for ms: a window in which nothing may happen. */
static void turn_for(struct fixture *fx, uint64_t ms)
{
    uint64_t end = rs_now_ms() + ms;
    while (rs_now_ms() < end)
        turn(fx);
}

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    limit_lift();
    if (fx->client >= 0)
        close(fx->client);
    /* The stream sees the EOF and closes; sessions wait for their ops. */
    for (int i = 0; i < 3000 && fx->loop.nstreams > 0; i++)
        turn(fx);
    assert_int_equal(fx->loop.nstreams, 0);
    rs_loop_fini(&fx->loop); /* drains the file ops; asserts every buffer back */
    nftw(fx->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(fx->big);
    free(fx);
    return 0;
}

static int teardown_vclock(void **state)
{
    int rc = teardown(state);
    vclock_on = false;
    return rc;
}

/* Read from the client end, turning the loop, until `want` bytes or EOF. */
static size_t read_some(struct fixture *fx, uint8_t *out, size_t want, bool *eof)
{
    size_t got = 0;
    *eof = false;
    for (int i = 0; i < 20000 && got < want; i++) {
        ssize_t n = recv(fx->client, out + got, want - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            *eof = true;
            break;
        }
        turn(fx);
    }
    return got;
}

/* A response head, NUL-terminated; returns its Content-Length. */
static size_t response_head(struct fixture *fx, char *head, size_t headcap)
{
    size_t n = 0;
    bool eof;
    while (n < headcap - 1) {
        if (read_some(fx, (uint8_t *)head + n, 1, &eof) != 1)
            fail_msg("EOF inside a response head");
        n++;
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[n] = '\0';
    const char *cl = strstr(head, "Content-Length: ");
    size_t len = cl ? strtoul(cl + 16, NULL, 10) : 0;
    if (strstr(head, "HEAD-ONLY"))
        len = 0;
    return len;
}

/* One response: its head (NUL-terminated) and its body. */
static size_t response(struct fixture *fx, char *head, size_t headcap, uint8_t *body,
                       size_t bodycap)
{
    bool eof;
    size_t len = response_head(fx, head, headcap);
    assert_true(len <= bodycap);
    assert_int_equal(read_some(fx, body, len, &eof), len);
    return len;
}

static void send_all(struct fixture *fx, const char *s)
{
    assert_int_equal(send(fx->client, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

static void test_http_request_byte_by_byte_then_pipelined(void **state)
{
    struct fixture *fx = *state;
    const char *req = "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    for (const char *p = req; *p; p++) {
        assert_int_equal(send(fx->client, p, 1, 0), 1);
        turn(fx);
    }
    char head[1024];
    uint8_t body[64];
    assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
    assert_non_null(strstr(head, "HTTP/1.1 200 OK\r\n"));
    assert_memory_equal(body, "hello\n", 6);
    /* Three at once: answered in order, the 404 in the middle included. */
    send_all(fx, "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=5-9\r\n\r\n"
                 "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    response(fx, head, sizeof(head), body, sizeof(body));
    assert_non_null(strstr(head, "HTTP/1.1 404 "));
    assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 5);
    assert_non_null(strstr(head, "HTTP/1.1 206 "));
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(body[i], pattern(5 + i));
    assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
    assert_memory_equal(body, "hello\n", 6);
}

/* A large file through a small window: the server holds at most
 * --max-pending of it, and every byte arrives in order. */
static void test_http_large_file_in_order(void **state)
{
    struct fixture *fx = *state;
    send_all(fx, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    for (int i = 0; i < 200; i++)
        turn(fx);
    assert_non_null(fx->loop.streams);
    if (by_file(fx)) {
        /* The body is queued as the file itself: no byte of it in memory,
         * the queue is the head and what is left of the file. */
        assert_true(rs_stream_has_file(fx->loop.streams));
        assert_true(rs_stream_pending(fx->loop.streams) <= BIG_LEN + 1024);
    } else {
        /* Nobody read yet: the backlog is bounded by --max-pending plus the
         * one 64 KiB read that may start just below it (and the head). */
        assert_true(rs_stream_pending(fx->loop.streams) <=
                    fx->cfg.max_pending + 65536 + 1024);
        assert_true(rs_stream_pending(fx->loop.streams) < BIG_LEN / 2);
    }
    char head[1024];
    uint8_t *body = malloc(BIG_LEN);
    assert_int_equal(response(fx, head, sizeof(head), body, BIG_LEN), BIG_LEN);
    assert_memory_equal(body, fx->big, BIG_LEN);
    free(body);
}

/* The client disappears while reads are in flight: the session outlives
 * its stream until the last read lands, then gives everything back. */
static void test_http_client_gone_mid_file(void **state)
{
    struct fixture *fx = *state;
    send_all(fx, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    uint8_t buf[100];
    bool eof;
    assert_int_equal(read_some(fx, buf, sizeof(buf), &eof), sizeof(buf));
    close(fx->client);
    fx->client = -1;
    /* teardown: the stream closes, the orphaned session drains. */
}

/* Two buffers for everything (recv and read-ahead): -ENOBUFS on reads is
 * a state, and the later read-ahead slots must not hold the buffers the
 * first one waits for. */
static void test_http_two_buffers(void **state)
{
    struct fixture *fx = *state;
    send_all(
        fx,
        "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    char head[1024];
    uint8_t *body = malloc(BIG_LEN);
    assert_int_equal(response(fx, head, sizeof(head), body, BIG_LEN), BIG_LEN);
    assert_memory_equal(body, fx->big, BIG_LEN);
    assert_int_equal(response(fx, head, sizeof(head), body, BIG_LEN), 6);
    free(body);
}

/* A malformed request: one answer, then the connection ends. */
static void test_http_bad_request_closes(void **state)
{
    struct fixture *fx = *state;
    send_all(fx, "BREW /pot HTTP/1.1\r\nHost: t\r\n\r\nGET /a.txt HTTP/1.1\r\n\r\n");
    char head[1024];
    uint8_t body[256];
    response(fx, head, sizeof(head), body, sizeof(body));
    assert_non_null(strstr(head, "HTTP/1.1 405 "));
    assert_non_null(strstr(head, "Allow: GET, HEAD\r\n"));
    assert_non_null(strstr(head, "Connection: close\r\n"));
    bool eof;
    assert_int_equal(read_some(fx, body, 1, &eof), 0);
    assert_true(eof);
}

/* No memory for a request's bytes (the session's input buffer cannot
 * grow): they were taken off the socket and will never be answered, so
 * the connection ends with a reset (counted in resets_out), never a FIN
 * that a client could take for a keep-alive close. Nothing is answered. */
static void send_without_memory(struct fixture *fx, const char *req)
{
    realloc_fails = true;
    realloc_failed = 0;
    send_all(fx, req);
    for (int i = 0; i < 3000 && fx->loop.nstreams > 0; i++)
        turn(fx);
    realloc_fails = false;
    assert_true(realloc_failed > 0);
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fx->loop.stats.resets_out, 1);
}

static void test_http_input_enomem_resets(void **state)
{
    struct fixture *fx = *state;
    send_without_memory(fx, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    uint8_t buf[64];
    bool eof;
    assert_int_equal(read_some(fx, buf, sizeof(buf), &eof), 0);
    assert_true(eof);
}

/* The same while a large body is under way (the client reads nothing of
 * it): a pipelined request longer than the input buffer so far needs it
 * to grow, which fails. The body is cut, so the end is a reset: before,
 * the queued rest was dropped and a FIN followed, a clean EOF after a
 * prefix of the body. */
static void test_http_input_enomem_mid_body_resets(void **state)
{
    struct fixture *fx = *state;
    send_all(fx, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    char head[1024];
    assert_int_equal(response_head(fx, head, sizeof(head)), BIG_LEN);
    char req[1600];
    int n = snprintf(req, sizeof(req), "GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Pad: ");
    memset(req + n, 'p', sizeof(req) - (size_t)n - 5);
    memcpy(req + sizeof(req) - 5, "\r\n\r\n", 5); /* and the NUL */
    send_without_memory(fx, req);
    uint8_t *body = malloc(BIG_LEN);
    assert_non_null(body);
    bool eof;
    size_t got = read_some(fx, body, BIG_LEN, &eof);
    assert_true(got < BIG_LEN); /* cut */
    assert_memory_equal(body, fx->big, got);
    free(body);
}

/* ---- the open-file cache (fcache.h) ---- */

#define FOREVER_MS (3600u * 1000u)

/* GET path on the kept-alive connection: its status and body. */
static int get_file(struct fixture *fx, const char *path, char *body, size_t cap)
{
    char req[256], head[1024];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    send_all(fx, req);
    size_t n = response(fx, head, sizeof(head), (uint8_t *)body, cap - 1);
    body[n] = '\0';
    return atoi(head + 9);
}

static void write_tmp_then_rename(struct fixture *fx, const char *name, const char *text)
{
    char from[128], to[128];
    write_file(fx->dir, "new.tmp", text, strlen(text));
    snprintf(from, sizeof(from), "%s/new.tmp", fx->dir);
    snprintf(to, sizeof(to), "%s/%s", fx->dir, name);
    assert_int_equal(rename(from, to), 0);
}

/* A file replaced by a rename over it: the cached descriptor is served
 * until the entry is re-checked (here: a huge interval, then 0, which
 * re-checks on the next request: no clock, no sleep), and never after. */
static void test_http_fcache_replaced(void **state)
{
    struct fixture *fx = *state;
    char body[64];
    const struct rs_fcache_stats *st = rs_http_fcache_stats(&fx->loop);
    assert_non_null(st);
    fx->cfg.open_file_cache_valid_ms = FOREVER_MS;
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 200);
    uint64_t hits = st->hits;
    write_tmp_then_rename(fx, "a.txt", "replaced\n");
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 200);
    assert_string_equal(body, "hello\n"); /* cached: still valid */
    assert_int_equal(st->hits, hits + 1);
    fx->cfg.open_file_cache_valid_ms = 0;
    uint64_t changed = st->changed;
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 200);
    assert_string_equal(body, "replaced\n");
    assert_int_equal(st->changed, changed + 1);
    /* The new file is cached in turn: checked, unchanged, a hit. */
    hits = st->hits;
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 200);
    assert_string_equal(body, "replaced\n");
    assert_int_equal(st->hits, hits + 1);
}

static void set_mtime(struct fixture *fx, const char *name, time_t t)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* GET path: the head into head[cap], the body checked against want. */
static void get_head(struct fixture *fx, const char *path, char *head, size_t cap,
                     const void *want, size_t want_len)
{
    char req[256];
    uint8_t *body = malloc(want_len + 1);
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    send_all(fx, req);
    assert_int_equal(response(fx, head, cap, body, want_len + 1), want_len);
    assert_memory_equal(body, want, want_len);
    free(body);
}

/* The header lines a cached file's responses carry are made once and kept
 * with its cache entry: a file replaced (a new entry once re-checked) or
 * changed in place (a large file's entry is refreshed on every hit) is
 * announced with its new Content-Length and Last-Modified. */
static void test_http_fcache_head_follows_file(void **state)
{
    struct fixture *fx = *state;
    char head[1024];
    fx->cfg.open_file_cache_valid_ms = FOREVER_MS;
    set_mtime(fx, "a.txt", 784111777);
    get_head(fx, "/a.txt", head, sizeof(head), "hello\n", 6);
    assert_non_null(strstr(head, "Content-Length: 6\r\n"));
    assert_non_null(strstr(head, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
    assert_non_null(strstr(head, "Content-Type: text/plain; charset=utf-8\r\n"));
    write_tmp_then_rename(fx, "a.txt", "replaced\n");
    set_mtime(fx, "a.txt", 784111777 + 86400);
    fx->cfg.open_file_cache_valid_ms = 0;
    get_head(fx, "/a.txt", head, sizeof(head), "replaced\n", 9);
    assert_non_null(strstr(head, "Content-Length: 9\r\n"));
    assert_non_null(strstr(head, "Last-Modified: Mon, 07 Nov 1994 08:49:37 GMT\r\n"));

    fx->cfg.open_file_cache_valid_ms = FOREVER_MS;
    set_mtime(fx, "big.bin", 784111777);
    get_head(fx, "/big.bin", head, sizeof(head), fx->big, BIG_LEN);
    assert_non_null(strstr(head, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
    /* Rewritten in place, shorter (O_TRUNC: the same inode). */
    write_file(fx->dir, "big.bin", fx->big, BIG_LEN - 100);
    set_mtime(fx, "big.bin", 784111777 + 1);
    get_head(fx, "/big.bin", head, sizeof(head), fx->big, BIG_LEN - 100);
    char want[64];
    snprintf(want, sizeof(want), "Content-Length: %u\r\n", BIG_LEN - 100);
    assert_non_null(strstr(head, want));
    assert_non_null(strstr(head, "Last-Modified: Sun, 06 Nov 1994 08:49:38 GMT\r\n"));
    assert_int_equal(rs_http_fcache_stats(&fx->loop)->hits,
                     1); /* the rewritten big.bin */
}

/* A file removed: 404 once re-checked. */
static void test_http_fcache_removed(void **state)
{
    struct fixture *fx = *state;
    char body[64], path[128];
    fx->cfg.open_file_cache_valid_ms = FOREVER_MS;
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 200);
    snprintf(path, sizeof(path), "%s/a.txt", fx->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 200);
    fx->cfg.open_file_cache_valid_ms = 0;
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 404);
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 404);
}

/* Permissions changed: the entry is dropped and the file opened afresh,
 * with the permission checks of a first open (root passes them; anyone
 * else gets a 404). */
static void test_http_fcache_permissions(void **state)
{
    struct fixture *fx = *state;
    char body[64], path[128];
    const struct rs_fcache_stats *st = rs_http_fcache_stats(&fx->loop);
    fx->cfg.open_file_cache_valid_ms = FOREVER_MS;
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 200);
    snprintf(path, sizeof(path), "%s/a.txt", fx->dir);
    assert_int_equal(chmod(path, 0), 0);
    fx->cfg.open_file_cache_valid_ms = 0;
    uint64_t changed = st->changed, misses = st->misses;
    int status = get_file(fx, "/a.txt", body, sizeof(body));
    assert_int_equal(st->changed, changed + 1);
    assert_int_equal(st->misses, misses + 1);
    assert_int_equal(status, geteuid() == 0 ? 200 : 404);
    chmod(path, 0644);
}

/* --open-file-cache=0: nothing is kept; a removed file is gone at once. */
static void test_http_fcache_off(void **state)
{
    struct fixture *fx = *state;
    char body[64], path[128];
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 200);
    snprintf(path, sizeof(path), "%s/a.txt", fx->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(get_file(fx, "/a.txt", body, sizeof(body)), 404);
    assert_int_equal(rs_http_fcache_stats(&fx->loop)->hits, 0);
}

/* A cached large file goes out by RS_OP_SENDFILE on a descriptor of its
 * own (the stream closes what it sends); many in a row stay correct and
 * the cache stays one entry. */
static void test_http_fcache_large_repeated(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.open_file_cache_valid_ms = FOREVER_MS;
    uint8_t *body = malloc(BIG_LEN);
    char head[1024];
    for (int i = 0; i < 3; i++) {
        send_all(fx, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(response(fx, head, sizeof(head), body, BIG_LEN), BIG_LEN);
        assert_memory_equal(body, fx->big, BIG_LEN);
    }
    assert_int_equal(rs_http_fcache_stats(&fx->loop)->hits, 2);
    free(body);
}

/* An accept's completion (tcp_session). */
struct accepted {
    bool done;
    int32_t res;
    uint32_t flags;
};

static void accepted_fn(struct rs_loop *loop, struct rs_op *op,
                        const struct rs_completion *c)
{
    struct accepted *a = op->data;
    (void)loop;
    *a = (struct accepted){.done = true, .res = c->res, .flags = c->flags};
}

/* A session on a TCP connection accepted through the backend, as the
 * server's listener takes one: a direct descriptor where the loop makes
 * them (io_uring's fixed-files), else a plain socket (*direct says
 * which). Our end, non-blocking. */
static int tcp_session(struct fixture *fx, bool *direct)
{
    int lfd = rs_listen_socket("127.0.0.1", 0, true, false, 4);
    assert_true(lfd >= 0);
    struct accepted a = {0};
    struct rs_op op;
    rs_op_init(&op, RS_OP_ACCEPT, lfd, accepted_fn, &a);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &op), 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)rs_socket_port(lfd)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    for (int i = 0; i < 2000 && !a.done; i++)
        turn(fx);
    assert_true(a.done && a.res >= 0);
    assert_false(a.flags & RS_CF_MORE);
    close(lfd);
    *direct = a.flags & RS_CF_DIRECT;
    assert_non_null(rs_stream_accept(&fx->loop, a.res, *direct, false));
    assert_int_equal(fcntl(c, F_SETFL, O_NONBLOCK), 0);
    return c;
}

/* Turn the loop until no stream has a file queued: every response's
 * descriptor closed (a chunk's goes when its last op completes, which
 * may come after the client read the last byte). */
static void files_closed(struct fixture *fx)
{
    for (int i = 0; i < 2000; i++) {
        bool any = false;
        for (struct rs_stream *s = fx->loop.streams; s; s = s->next)
            any |= rs_stream_has_file(s);
        if (!any)
            return;
        turn(fx);
    }
    fail_msg("a response's file is still queued");
}

/* GET /big.bin on client c: true for a 200 with every byte right (its
 * descriptor closed since); false when the connection ended (reset)
 * before any byte of a response. */
static bool get_big(struct fixture *fx, int c)
{
    int was = fx->client;
    fx->client = c;
    send_all(fx, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    uint8_t first;
    bool eof;
    bool some = read_some(fx, &first, 1, &eof) == 1;
    if (some) {
        char head[1024] = {(char)first};
        uint8_t *body = malloc(BIG_LEN);
        size_t n = 1;
        while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0) {
            assert_true(n < sizeof(head) - 1);
            assert_int_equal(read_some(fx, (uint8_t *)head + n, 1, &eof), 1);
            n++;
        }
        head[n] = '\0';
        assert_non_null(strstr(head, "HTTP/1.1 200 OK\r\n"));
        assert_int_equal(read_some(fx, body, BIG_LEN, &eof), BIG_LEN);
        assert_memory_equal(body, fx->big, BIG_LEN);
        free(body);
        files_closed(fx);
    } else {
        assert_true(eof);
    }
    fx->client = was;
    return some;
}

/* A cached file's response hands the stream a duplicate of the cache's
 * descriptor. With the process at its descriptor limit and the loop
 * holding process fds only to save syscalls (io_uring: two connections'
 * direct sockets, installed for their last files), the dup asks the loop
 * to give them back: the response goes out (the dup takes one number,
 * the body's install the other), and the other connection is served
 * after. A loop that holds none (epoll, plain sockets) has nothing to
 * give: the dup fails and the connection is reset, as before. Before,
 * io_uring reset it too, while the holds stood in the way. */
static void test_http_cached_file_at_limit_takes_held_fds(void **state)
{
    struct fixture *fx = *state;
    fx->cfg.open_file_cache_valid_ms = FOREVER_MS;
    assert_true(by_file(fx));
    int c[2], held = 0, top = 0;
    for (int i = 0; i < 2; i++) {
        bool direct;
        c[i] = tcp_session(fx, &direct);
        assert_true(get_big(fx, c[i])); /* the second from the cache */
        int t;
        int n = fds_connected_to(c[i], &t) - (direct ? 0 : 1);
        assert_true(n == 0 || n == 1);
        /* io_uring holds one wherever it can install it (Linux 6.8). */
        if (backend == &rs_backend_uring && direct && kernel_at_least(6, 8))
            assert_int_equal(n, 1);
        if (n && t > top)
            top = t;
        held += n;
    }
    assert_true(held == 0 || held == 2);
    struct at_limit l;
    limit_set(&l, top);
    bool served = get_big(fx, c[0]);
    limit_restore(&l);
    assert_int_equal(rs_http_fcache_stats(&fx->loop)->hits, 2);
    if (held) {
        assert_true(served);
        assert_true(get_big(fx, c[1]));
    } else {
        assert_false(served);
    }
    close(c[0]);
    close(c[1]);
}

/* A directory's index.html comes from the cache too (looked up by its own
 * path once the directory was seen), and is re-checked like any file. */
static void test_http_fcache_index(void **state)
{
    struct fixture *fx = *state;
    char body[64], dir[128];
    snprintf(dir, sizeof(dir), "%s/d", fx->dir);
    assert_int_equal(mkdir(dir, 0755), 0);
    write_file(dir, "index.html", "index\n", 6);
    const struct rs_fcache_stats *st = rs_http_fcache_stats(&fx->loop);
    fx->cfg.open_file_cache_valid_ms = FOREVER_MS;
    assert_int_equal(get_file(fx, "/d/", body, sizeof(body)), 200);
    assert_string_equal(body, "index\n");
    uint64_t hits = st->hits;
    assert_int_equal(get_file(fx, "/d/", body, sizeof(body)), 200);
    assert_string_equal(body, "index\n");
    assert_int_equal(st->hits, hits + 1);
    write_tmp_then_rename(fx, "d/index.html", "new index\n");
    fx->cfg.open_file_cache_valid_ms = 0;
    assert_int_equal(get_file(fx, "/d/", body, sizeof(body)), 200);
    assert_string_equal(body, "new index\n");
}

static int setup_no_cache(void **state)
{
    no_file_cache = true;
    int rc = setup_with(state, 64);
    no_file_cache = false;
    return rc;
}

/* --- clients that send and never read ----------------------------------- */

/* The most a test client offers: far more than a server that pauses its
 * reading can take in (socket buffers and the bytes racing the pause). */
#define OFFER_MAX (8u * 1024 * 1024)

/* What the server may hold of a client's unparsed bytes: a head's worth,
 * plus the receives already under way when reading paused (one pool buffer
 * each; the bound allows all 64 of this loop's). */
static size_t input_bound(const struct fixture *fx)
{
    return RS_HTTP_HEAD_MAX + (size_t)fx->cfg.buffers * fx->cfg.buffer_size;
}

/* Send copies of unit (of len bytes) without reading anything, turning the
 * loop, until the socket stays full for 100 turns in a row or OFFER_MAX
 * bytes went out. Returns the bytes sent. */
static size_t offer(struct fixture *fx, const char *unit, size_t len)
{
    size_t sent = 0;
    int stuck = 0;
    while (sent < OFFER_MAX && stuck < 100) {
        ssize_t n = send(fx->client, unit + sent % len, len - sent % len,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            stuck = 0;
            continue;
        }
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        stuck++;
        turn(fx);
    }
    return sent;
}

/* Read the client end until EOF (turning the loop); returns the bytes. */
static size_t read_to_eof(struct fixture *fx, char *out, size_t cap)
{
    bool eof = false;
    size_t n = read_some(fx, (uint8_t *)out, cap - 1, &eof);
    assert_true(eof);
    out[n] = '\0';
    return n;
}

/* A client asks for a large file, takes the response head, never reads
 * the body, and streams junk: with sendfile the session is idle as soon as
 * the file is queued (without, it is still reading the file), and must
 * still stop reading. Then the client reads: the whole file, then the
 * answer to the junk, then EOF. */
static void test_http_junk_behind_file_bounded(void **state)
{
    struct fixture *fx = *state;
    static const char req[] = "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    send_all(fx, req);
    char head[1024];
    assert_int_equal(response_head(fx, head, sizeof(head)), BIG_LEN);
    assert_non_null(strstr(head, "HTTP/1.1 200 OK\r\n"));
    char junk[4096];
    memset(junk, 0x01, sizeof(junk)); /* a control byte: 400 once parsed */
    size_t sent = offer(fx, junk, sizeof(junk));
    uint64_t in = fx->loop.stats.bytes_in;
    print_message("offered %zu bytes of junk; the server took in %llu\n", sent,
                  (unsigned long long)in);
    if (sent >= OFFER_MAX)
        fail_msg("the server read all %zu bytes of junk: no backpressure", sent);
    if (in > sizeof(req) - 1 + input_bound(fx))
        fail_msg("the server took in %llu bytes, more than %zu", (unsigned long long)in,
                 sizeof(req) - 1 + input_bound(fx));
    uint8_t *body = malloc(BIG_LEN);
    bool eof;
    assert_int_equal(read_some(fx, body, BIG_LEN, &eof), BIG_LEN);
    assert_memory_equal(body, fx->big, BIG_LEN);
    free(body);
    /* Reading resumes once the file has left: the junk is a bad request. */
    char rest[1024];
    read_to_eof(fx, rest, sizeof(rest));
    assert_non_null(strstr(rest, "HTTP/1.1 400 Bad Request\r\n"));
    /* The server now reads and drops the rest of the junk (some 180 KiB,
     * more than 32 receive buffers) until the client's EOF. The client
     * closes before the lingering read is even armed: the close must end
     * at that EOF, within a few turns, not at the drain timeout (a minute
     * here). A multishot recv on io_uring misses such an EOF for good. */
    close(fx->client);
    fx->client = -1;
    for (int i = 0; i < 1000 && fx->loop.nstreams > 0; i++)
        turn(fx);
    assert_int_equal(fx->loop.nstreams, 0);
}

/* A client pipelines small requests, answered until its unread answers
 * pass --max-pending: from then on the session waits, idle, for its output
 * to drain, and what the client sends next must not pile up in it. */
static void test_http_idle_behind_output_bounded(void **state)
{
    struct fixture *fx = *state;
    static const char req[] = "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    const size_t req_len = sizeof(req) - 1;
    char batch[16 * (sizeof(req) - 1)];
    for (size_t i = 0; i < 16; i++)
        memcpy(batch + i * req_len, req, req_len);
    /* One answer, to learn its length (they are all alike). */
    send_all(fx, req);
    char head[1024];
    uint8_t body[64];
    size_t resp_len = response(fx, head, sizeof(head), body, sizeof(body));
    resp_len += strlen(head);
    /* Batches, each answered in full before the next (so no input waits in
     * the session), until the answers back up past --max-pending in the
     * server (the socket holds what it can first). */
    struct rs_stream *s = fx->loop.streams;
    assert_non_null(s);
    size_t asked = 1;
    for (int b = 0; b < 10000 && rs_stream_pending(s) <= fx->cfg.max_pending; b++) {
        assert_int_equal(send(fx->client, batch, 16 * req_len, MSG_NOSIGNAL),
                         (ssize_t)(16 * req_len));
        asked += 16;
        /* Until all are answered, or the answers stop at --max-pending. */
        for (int i = 0;
             i < 20000 && rs_stream_pending(s) <= fx->cfg.max_pending &&
             fx->loop.stats.bytes_out + rs_stream_pending(s) < asked * resp_len;
             i++)
            turn(fx);
    }
    assert_true(rs_stream_pending(s) > fx->cfg.max_pending);
    uint64_t before = fx->loop.stats.bytes_in;
    /* Now more requests, as fast as the socket takes them. */
    size_t sent = offer(fx, batch, 16 * req_len);
    uint64_t took = fx->loop.stats.bytes_in - before;
    print_message("%zu requests answered into a full queue; then %zu bytes offered, "
                  "%llu taken in\n",
                  asked, sent, (unsigned long long)took);
    if (sent >= OFFER_MAX)
        fail_msg("the server read all %zu bytes: no backpressure", sent);
    if (took > input_bound(fx))
        fail_msg("the server took in %llu bytes while its output was full, more than %zu",
                 (unsigned long long)took, input_bound(fx));
    /* The answers so far are intact and in order. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
        assert_memory_equal(body, "hello\n", 6);
    }
}

/* A head that trickles in, a byte per loop turn, never completes within
 * the deadline: 408, then the connection closes, counted once. */
static void test_http_head_deadline_trickle(void **state)
{
    struct fixture *fx = *state;
    const char *req = "GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ";
    send_all(fx, req);
    char out[1024];
    size_t n = 0;
    bool eof = false;
    uint64_t last = 0;
    for (int i = 0; i < 20000 && !eof; i++) {
        /* A byte every 5 ms: progress all along, so a deadline that each
         * byte pushed back would never fire (the pace only keeps the head
         * below its 8 KiB limit meanwhile). */
        if (rs_now_ms() - last >= 5) {
            last = rs_now_ms();
            if (send(fx->client, "a", 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                assert_true(errno == EAGAIN || errno == EPIPE || errno == ECONNRESET);
        }
        ssize_t r = recv(fx->client, out + n, sizeof(out) - 1 - n, MSG_DONTWAIT);
        if (r > 0)
            n += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            eof = true;
        turn(fx);
    }
    out[n] = '\0';
    assert_true(eof);
    assert_non_null(strstr(out, "HTTP/1.1 408 Request Timeout\r\n"));
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_int_equal(fx->loop.stats.header_timeouts, 1);
}

/* A request served in time; then the connection sits idle: closed by
 * the keep-alive timeout without a word (no 408 for a request never
 * sent), not by the head deadline, which a later request only starts
 * with its first byte. */
static void test_http_keepalive_timeout_idle(void **state)
{
    struct fixture *fx = *state;
    /* Read before the request is sent: the idle clock starts at a look of
     * the watch after the response was queued, so no correct close comes
     * sooner than 500 ms after this, however long this process stalls
     * anywhere (read after the response, a stall that came before it
     * shortened the span measured and failed the test). */
    uint64_t start = rs_now_ms();
    send_all(fx, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    char head[1024];
    uint8_t body[64];
    assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
    char rest[256];
    assert_int_equal(read_to_eof(fx, rest, sizeof(rest)), 0);
    assert_true(rs_now_ms() - start >= 500);
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 1);
    assert_int_equal(fx->loop.stats.header_timeouts, 0);
    assert_int_equal(fx->loop.stats.send_timeouts, 0);
}

/* The client asks for the large file and takes its head, no more: once
 * its socket is full the output makes no progress, and the send timeout
 * must cut the connection (on this socketpair the reset cannot be seen;
 * the e2e test sees it on TCP), counted once, by nothing else. */
static void large_unread_is_cut(struct fixture *fx)
{
    send_all(fx, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    char head[1024];
    assert_int_equal(response_head(fx, head, sizeof(head)), BIG_LEN);
    for (int i = 0; i < 20000 && fx->loop.nstreams > 0; i++)
        turn(fx);
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fx->loop.stats.send_timeouts, 1);
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 0);
    assert_int_equal(fx->loop.stats.header_timeouts, 0);
}

static void test_http_send_timeout_nonreader(void **state)
{
    large_unread_is_cut(*state);
}

/* --send-timeout=0 while the keep-alive timeout runs the watch: a client
 * that takes nothing of a large body for 1 s (over three times the other
 * limits) is not cut; then it reads the whole body, intact, and the idle
 * connection is closed by the keep-alive timeout. */
static void test_http_send_timeout_off(void **state)
{
    struct fixture *fx = *state;
    send_all(fx, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    char head[1024];
    assert_int_equal(response_head(fx, head, sizeof(head)), BIG_LEN);
    turn_for(fx, 1000);
    assert_int_equal(fx->loop.nstreams, 1);
    assert_int_equal(fx->loop.stats.send_timeouts, 0);
    uint8_t *body = malloc(BIG_LEN);
    assert_non_null(body);
    bool eof;
    assert_int_equal(read_some(fx, body, BIG_LEN, &eof), BIG_LEN);
    assert_memory_equal(body, fx->big, BIG_LEN);
    free(body);
    char rest[64];
    assert_int_equal(read_to_eof(fx, rest, sizeof(rest)), 0);
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 1);
    assert_int_equal(fx->loop.stats.send_timeouts, 0);
}

/* --keepalive-timeout=0 while the send timeout runs the watch: a
 * connection idle for 1 s after its response stays open (the head
 * deadline, 300 ms, is not for a request not begun); then a large
 * response it does not read is cut by the send timeout. */
static void test_http_keepalive_timeout_off(void **state)
{
    struct fixture *fx = *state;
    send_all(fx, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    char head[1024];
    uint8_t small[64];
    assert_int_equal(response(fx, head, sizeof(head), small, sizeof(small)), 6);
    turn_for(fx, 1000);
    assert_int_equal(fx->loop.nstreams, 1);
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 0);
    assert_int_equal(fx->loop.stats.header_timeouts, 0);
    large_unread_is_cut(fx);
}

/* --- the timeouts on the test's clock (vclock) ---------------------------------- */

/* Turn the loop until it has nothing left to do now: three turns in a row
 * in which nothing moved (no byte more for the client, none sent or
 * received by the server) with no file request in flight (a worker's read
 * may take any real time; the test's clock waits for it); or, should a
 * request stay in flight, 200 turns in which nothing moved. A timer due
 * within 5 ms (a retry after -ENOBUFS) is let fire: it stands for no wait
 * the test is about. */
static void settle(struct fixture *fx)
{
    struct rs_loop *loop = &fx->loop;
    int quiet = 0, still = 0;
    uint64_t last = UINT64_MAX;
    for (int i = 0; i < 20000 && quiet < 3 && still < 200; i++) {
        if (loop->ntimers > 0 && loop->timers[0]->due_ms > vclock_ms &&
            loop->timers[0]->due_ms <= vclock_ms + 5)
            vclock_ms = loop->timers[0]->due_ms;
        loop->now_ms = rs_now_ms();
        rs_timer_run_due(loop);
        rs_loop_feed_starved(loop);
        rs_loop_retry(loop);
        loop->ops->run(loop, 2);
        int q = -1;
        assert_int_equal(ioctl(fx->client, FIONREAD, &q), 0);
        /* a sum that any movement changes */
        uint64_t now = (uint64_t)q + loop->stats.bytes_out + loop->stats.bytes_in +
                       loop->stats.sends + loop->stats.recvs;
        still = now == last ? still + 1 : 0;
        quiet = still > 0 && loop->nreqs == 0 ? quiet + 1 : 0;
        last = now;
    }
    assert_true(quiet == 3 || still == 200);
}

/* ms pass on the test's clock, in steps of 50 ms with the loop settled
 * after each: the watch looks as often as it would. */
static void vclock_pass(struct fixture *fx, uint64_t ms)
{
    for (uint64_t done = 0; done < ms; done += 50) {
        vclock_ms += 50;
        settle(fx);
    }
}

/* Everything the client end holds now, appended at body + *got (at most
 * cap bytes in all); false at EOF. */
static bool drain_client(struct fixture *fx, uint8_t *body, size_t *got, size_t cap)
{
    for (;;) {
        ssize_t n = recv(fx->client, body + *got, cap - *got, MSG_DONTWAIT);
        if (n > 0) {
            *got += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        return false;
    }
}

/* One take of a slow reader: what the client end holds, again and again,
 * the loop settled in between, all at one instant of the test's clock,
 * until the server counts output sent: progress, as the send timeout
 * sees it (an io_uring sendfile op, up to 1 MiB, counts once all of it
 * is in the socket, more than a socket pair holds). false at EOF. */
static bool take(struct fixture *fx, uint8_t *body, size_t *got, size_t cap)
{
    uint64_t before = fx->loop.stats.bytes_out;
    for (int i = 0; i < 10000 && fx->loop.stats.bytes_out == before && *got < cap; i++) {
        if (!drain_client(fx, body, got, cap))
            return false;
        settle(fx);
    }
    if (fx->loop.stats.bytes_out == before && *got < cap)
        fail_msg("no output sent after %zu bytes, with the client taking all", *got);
    return true;
}

#define SLOW_LEN (6u * 1024u * 1024u + 5u)

/* --send-timeout=500 ms against a client that takes until the output
 * moves (take), then nothing for 300 ms, and so on: the output progresses
 * every 300 ms and is never cut, although the response lasts
 * several timeouts (a timeout counted from the response's start, or one
 * that missed the progress, cuts it within the first second). Then the
 * rest at full speed, all of it intact, and the connection serves
 * another request. On the test's clock: only the client's pauses count,
 * never how long this process waited for a CPU. */
static void test_http_send_timeout_slow_reader(void **state)
{
    struct fixture *fx = *state;
    uint8_t *want = malloc(SLOW_LEN), *body = malloc(SLOW_LEN);
    assert_non_null(want);
    assert_non_null(body);
    for (size_t i = 0; i < SLOW_LEN; i++)
        want[i] = pattern(i * 7);
    write_file(fx->dir, "slow.bin", want, SLOW_LEN);
    send_all(fx, "GET /slow.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    char head[1024];
    assert_int_equal(response_head(fx, head, sizeof(head)), SLOW_LEN);
    size_t got = 0;
    int pauses = 0;
    for (; pauses < 8; pauses++) {
        if (!take(fx, body, &got, SLOW_LEN))
            fail_msg("cut after %zu bytes, %d pauses of 300 ms", got, pauses);
        if (got == SLOW_LEN)
            break;
        vclock_pass(fx, 300);
        assert_int_equal(fx->loop.stats.send_timeouts, 0);
    }
    /* The response lasted over two timeouts (1 MiB sendfile ops: about
     * five takes; smaller sends: more than eight). */
    assert_true(pauses >= 4);
    while (got < SLOW_LEN) {
        settle(fx);
        if (!drain_client(fx, body, &got, SLOW_LEN))
            fail_msg("cut after %zu bytes", got);
    }
    assert_memory_equal(body, want, SLOW_LEN);
    send_all(fx, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    uint8_t small[64];
    assert_int_equal(response(fx, head, sizeof(head), small, sizeof(small)), 6);
    assert_memory_equal(small, "hello\n", 6);
    assert_int_equal(fx->loop.nstreams, 1);
    assert_int_equal(fx->loop.stats.send_timeouts, 0);
    free(want);
    free(body);
}

/* --keepalive-timeout=500 ms (and the head deadline at 500 ms): a request
 * every 300 ms, six of them, is never closed (the timeout counts from the
 * last response, not from the first or the connection's start); then
 * 500 ms without one closes it with a FIN, counted once. */
static void test_http_keepalive_timeout_busy(void **state)
{
    struct fixture *fx = *state;
    char head[1024];
    uint8_t body[64];
    for (int i = 0; i < 6; i++) {
        send_all(fx, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
        vclock_pass(fx, 300);
        assert_int_equal(fx->loop.nstreams, 1);
    }
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 0);
    vclock_pass(fx, 500);
    char rest[64];
    assert_int_equal(read_to_eof(fx, rest, sizeof(rest)), 0);
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 1);
    assert_int_equal(fx->loop.stats.header_timeouts, 0);
    assert_int_equal(fx->loop.stats.send_timeouts, 0);
}

/* A request that came in before the keep-alive deadline, but that the
 * loop had no CPU to see until after it (a loaded machine, a stolen
 * vCPU): served, not closed by the timeout. The loop's own turn
 * (rs_loop_turn) judges the timers after the completions its wait
 * brought; with the timers first, the keep-alive timeout closed the
 * connection with the request waiting in its socket. */
static void test_http_keepalive_request_before_deadline_served(void **state)
{
    struct fixture *fx = *state;
    char head[1024];
    uint8_t body[64];
    send_all(fx, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
    vclock_pass(fx, 300);
    /* In the server's socket now; the loop runs again only a second
     * later, past the 500 ms keep-alive deadline and the watch's next
     * look (whenever that is due). */
    send_all(fx, "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    vclock_ms += 1000;
    fx->loop.now_stale = true; /* its last reading is from before the pause */
    int q = 0;
    for (int i = 0; i < 1000 && q == 0 && fx->loop.stats.keepalive_timeouts == 0; i++) {
        assert_int_equal(rs_loop_turn(&fx->loop), 1);
        assert_int_equal(ioctl(fx->client, FIONREAD, &q), 0);
    }
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 0);
    assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
    assert_memory_equal(body, "hello\n", 6);
    assert_int_equal(fx->loop.nstreams, 1);
    /* And the keep-alive timeout still closes it once it is idle. */
    vclock_pass(fx, 1000);
    char rest[64];
    assert_int_equal(read_to_eof(fx, rest, sizeof(rest)), 0);
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 1);
}

/* The SIGALRM of test_http_keepalive_request_after_eintr_served: the
 * client's request goes out and a second passes, while the loop's wait is
 * cut short by the signal, as a stop and a continue do. */
static volatile sig_atomic_t eintr_alarmed;
static int eintr_client = -1;
static const char eintr_req[] = "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";

static void eintr_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    (void)!send(eintr_client, eintr_req, sizeof(eintr_req) - 1, MSG_NOSIGNAL);
    vclock_jump_ms = 1000;
    eintr_alarmed = 1;
    errno = saved;
}

/* The same request, but the loop's wait ends with EINTR and sees nothing:
 * a stop and a continue (SIGSTOP, a debugger, a loaded machine's freezer)
 * end epoll_wait and io_uring_enter so, handler or not. Here a SIGALRM
 * handler (no SA_RESTART) sends the request and moves the clock a second
 * past the keep-alive deadline while the loop waits. A turn that fired
 * the due timers after such a wait closed the connection with the request
 * in its socket; they wait for one more (non-blocking) wait. */
static void test_http_keepalive_request_after_eintr_served(void **state)
{
    struct fixture *fx = *state;
    char head[1024];
    uint8_t body[64];
    send_all(fx, eintr_req);
    assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
    vclock_pass(fx, 300);
    struct sigaction sa = {.sa_handler = eintr_alarm}, old;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    eintr_client = fx->client;
    eintr_alarmed = 0;
    /* The loop sleeps in its wait until the watch's next look (up to
     * 125 ms of the test's clock, that long for real: the clock stands);
     * the alarm comes in one of those sleeps. */
    struct itimerval it = {.it_interval = {0, 0}, .it_value = {0, 20000}};
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
    uint64_t eintr0 = fx->loop.stats.turns;
    for (int i = 0; i < 10000 && !eintr_alarmed; i++)
        assert_int_equal(rs_loop_turn(&fx->loop), 1);
    assert_true(eintr_alarmed);
    int q = 0;
    for (int i = 0; i < 1000 && q == 0 && fx->loop.stats.keepalive_timeouts == 0; i++) {
        assert_int_equal(rs_loop_turn(&fx->loop), 1);
        assert_int_equal(ioctl(fx->client, FIONREAD, &q), 0);
    }
    assert_int_equal(sigaction(SIGALRM, &old, NULL), 0);
    vclock_ms += (uint64_t)vclock_jump_ms;
    vclock_jump_ms = 0;
    print_message("the alarm came after %llu turns\n",
                  (unsigned long long)(fx->loop.stats.turns - eintr0));
    assert_int_equal(fx->loop.stats.keepalive_timeouts, 0);
    assert_int_equal(response(fx, head, sizeof(head), body, sizeof(body)), 6);
    assert_memory_equal(body, "hello\n", 6);
    assert_int_equal(fx->loop.nstreams, 1);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s epoll-et|epoll-lt|epoll-inline|uring [FEATURES]\n",
                argv[0]);
        return 2;
    }
    mode_name = argv[1];
    backend = strncmp(mode_name, "epoll", 5) == 0 ? &rs_backend_epoll : &rs_backend_uring;
    if (argc > 2)
        features = argv[2];
    if (!backend->init) {
        rs_skip_reason("io_uring unavailable: support not compiled in");
        return 77;
    }
    int starts = mode_loop_starts(backend, mode_name, features, false);
    if (starts != 0)
        return starts;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_request_byte_by_byte_then_pipelined,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_large_file_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_large_file_in_order, setup_copy,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_client_gone_mid_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_client_gone_mid_file, setup_copy,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_two_buffers, setup_two_buffers_copy,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_two_buffers, setup_two_buffers,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_bad_request_closes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_input_enomem_resets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_input_enomem_mid_body_resets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_input_enomem_mid_body_resets,
                                        setup_copy, teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_head_follows_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_head_follows_file, setup_copy,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_permissions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_off, setup_no_cache, teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_large_repeated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_fcache_large_repeated, setup_copy,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_cached_file_at_limit_takes_held_fds,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_junk_behind_file_bounded,
                                        setup_long_drain, teardown),
        cmocka_unit_test_setup_teardown(test_http_junk_behind_file_bounded,
                                        setup_long_drain_copy, teardown),
        cmocka_unit_test_setup_teardown(test_http_idle_behind_output_bounded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_idle_behind_output_bounded, setup_copy,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_head_deadline_trickle,
                                        setup_head_deadline, teardown),
        cmocka_unit_test_setup_teardown(test_http_keepalive_timeout_idle, setup_timeouts,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_send_timeout_nonreader, setup_timeouts,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_send_timeout_nonreader,
                                        setup_timeouts_copy, teardown),
        cmocka_unit_test_setup_teardown(test_http_send_timeout_slow_reader,
                                        setup_timeouts_vclock, teardown_vclock),
        cmocka_unit_test_setup_teardown(test_http_keepalive_timeout_busy,
                                        setup_timeouts_vclock, teardown_vclock),
        cmocka_unit_test_setup_teardown(
            test_http_keepalive_request_before_deadline_served, setup_timeouts_vclock,
            teardown_vclock),
        cmocka_unit_test_setup_teardown(test_http_keepalive_request_after_eintr_served,
                                        setup_timeouts_vclock, teardown_vclock),
        cmocka_unit_test_setup_teardown(test_http_send_timeout_off, setup_send_off,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_keepalive_timeout_off,
                                        setup_keepalive_off, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
