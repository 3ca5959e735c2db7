/* The server as a library object (server.h): start, stop, wait, destroy,
 * run in-process against real sockets on every backend. What it checks is
 * what an embedding program relies on: several servers in one process, a
 * failed start that leaves nothing behind, stop from a signal handler, no
 * signal disposition touched, loop threads that never take a signal, and
 * totals that count what was served.
 *
 * usage: test_server RINGSERVE-OPTIONS...  (e.g. --backend=epoll
 * --epoll-mode=lt); exit 77 (skip) when the backend is not available here. */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
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
#include <pthread.h>

#include "../skip_reason.h"
#include "first_error.h"

#include "bench_server.h"
#include "config.h"
#include "log.h"
#include "loop.h"
#include "op.h"
#include "protocol.h"
#include "server.h"
#include "stats.h"
#include "stream.h"

static int g_argc;
static char **g_argv;

/* A configuration from the variant's options plus extra ones. */
static void config(struct rs_config *cfg, const char *extra1, const char *extra2)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = "test_server";
    argv[argc++] = "--listen=127.0.0.1:0";
    argv[argc++] = "--quiet";
    argv[argc++] = "--drain-timeout=5000";
    for (int i = 1; i < g_argc && argc < 28; i++)
        argv[argc++] = g_argv[i];
    if (extra1)
        argv[argc++] = (char *)extra1;
    if (extra2)
        argv[argc++] = (char *)extra2;
    argv[argc] = NULL;
    rs_config_defaults(cfg);
    assert_int_equal(rs_config_parse(cfg, argc, argv), 0);
}

/* This process's descriptors (/proc/self/fd, via ringbench's helper). */
static long long count_fds(void)
{
    long long n = bench_proc_fd_count((long)getpid());
    assert_true(n >= 0);
    return n;
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    /* A broken server fails the test instead of hanging it. */
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Send len bytes of a pattern, read them back, compare. */
static void echo_round(int fd, size_t len, unsigned seed)
{
    char out[8192], in[8192];
    assert_true(len <= sizeof(out));
    for (size_t i = 0; i < len; i++)
        out[i] = (char)(seed * 31 + i * 7);
    assert_int_equal(send(fd, out, len, MSG_NOSIGNAL), (ssize_t)len);
    size_t got = 0;
    while (got < len) {
        ssize_t n = recv(fd, in + got, len - got, 0);
        /* With SO_RCVTIMEO a blocked recv is not restarted after an
         * interruption: io_uring's task-work notification to this thread
         * (the backend probe made rings here) counts as one. */
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        got += (size_t)n;
    }
    assert_memory_equal(in, out, len);
}

static struct rs_server *start_or_skip(struct rs_config *cfg)
{
    struct rs_server *srv = NULL;
    int rc = rs_server_start(cfg, &srv);
    if (rc == -ENOSYS) {
        /* the backend cannot run here: the summary checks the probe agrees */
        rs_skip_reason("io_uring unavailable: rs_server_start: ENOSYS");
        skip();
    }
    assert_int_equal(rc, 0);
    assert_non_null(srv);
    assert_true(rs_server_port(srv) > 0);
    return srv;
}

/* Two servers at once, one and two loops, each echoing on its own port;
 * stopped, waited for and destroyed independently; the totals count what
 * each served and nothing of the other's. */
static void test_two_servers_in_one_process(void **state)
{
    (void)state;
    struct rs_config c1, c2;
    config(&c1, "--threads=1", NULL);
    config(&c2, "--threads=2", NULL);
    long long fds0 = count_fds();
    struct rs_server *s1 = start_or_skip(&c1);
    struct rs_server *s2 = start_or_skip(&c2);
    assert_int_not_equal(rs_server_port(s1), rs_server_port(s2));
    int a = dial(rs_server_port(s1));
    int b[3];
    for (int i = 0; i < 3; i++)
        b[i] = dial(rs_server_port(s2));
    for (unsigned r = 0; r < 20; r++) {
        echo_round(a, 1000, r);
        for (int i = 0; i < 3; i++)
            echo_round(b[i], 3000, r + (unsigned)i);
    }
    /* Running: a wait with no time left says so. */
    assert_int_equal(rs_server_wait(s1, 0), -ETIMEDOUT);
    close(a);
    rs_server_stop(s1);
    rs_server_stop(s1); /* twice: nothing more */
    assert_int_equal(rs_server_wait(s1, -1), 0);
    assert_int_equal(rs_server_wait(s1, 0), 0);
    struct rs_stats t1 = {0};
    assert_int_equal(rs_server_destroy(s1, &t1), 0);
    assert_int_equal(t1.accepted, 1);
    assert_int_equal(t1.bytes_in, 20 * 1000);
    assert_int_equal(t1.bytes_out, 20 * 1000);
    /* The second server still serves after the first is gone. */
    for (int i = 0; i < 3; i++)
        echo_round(b[i], 100, 99);
    for (int i = 0; i < 3; i++)
        close(b[i]);
    struct rs_stats t2 = {0};
    assert_int_equal(rs_server_destroy(s2, &t2), 0); /* stops it itself */
    assert_int_equal(t2.accepted, 3);
    assert_int_equal(t2.bytes_in, 3 * (20 * 3000 + 100));
    assert_int_equal(count_fds(), fds0);
}

/* A log sink that keeps what it was given (loop threads and the caller's
 * thread log at once: locked). */
struct sink {
    pthread_mutex_t mu;
    char text[8192];
    size_t len;
    unsigned errors, infos, debugs;
};

static void sink_line(void *data, enum rs_log_kind kind, const char *line)
{
    struct sink *k = data;
    pthread_mutex_lock(&k->mu);
    int n = snprintf(k->text + k->len, sizeof(k->text) - k->len, "%s\n", line);
    if (n > 0 && (size_t)n < sizeof(k->text) - k->len)
        k->len += (size_t)n;
    k->errors += kind == RS_LOG_ERROR;
    k->infos += kind == RS_LOG_INFO;
    k->debugs += kind == RS_LOG_DEBUG;
    pthread_mutex_unlock(&k->mu);
}

/* What a server's own protocol keeps per server: found from any stream
 * through the configuration (rs_loop_config(loop)->data), no globals. */
struct tagged {
    const char *tag;
    unsigned opened;
};

static void tagged_open(struct rs_stream *s)
{
    struct tagged *t = rs_loop_config(rs_stream_loop(s))->data;
    t->opened++; /* one loop per server here: no race */
    rs_log_info("opened by %s", t->tag);
    rs_log_debug("debug from %s", t->tag);
}

static void tagged_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    rs_stream_write_lent(s, p, len, bid);
}

static const struct rs_protocol tagged_proto = {
    .name = "tagged", .cbs = {.on_data = tagged_data}, .on_open = tagged_open};

/* Two servers in one process, each with its own data, log level and sink:
 * each sink sees its own server's lines only, at its own level, including
 * what the protocol logs from the loop threads. */
static void test_per_server_data_and_logging(void **state)
{
    (void)state;
    struct sink ka = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct sink kb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct tagged ta = {.tag = "server-a"}, tb = {.tag = "server-b"};
    struct rs_config ca, cb;
    config(&ca, "--threads=1", "--verbose");
    config(&cb, "--threads=1", NULL);
    cb.verbose = RS_LOG_NORMAL; /* config() asked for --quiet */
    ca.proto = cb.proto = &tagged_proto;
    ca.data = &ta;
    cb.data = &tb;
    ca.log_fn = cb.log_fn = sink_line;
    ca.log_data = &ka;
    cb.log_data = &kb;
    struct rs_server *sa = start_or_skip(&ca);
    struct rs_server *sb = start_or_skip(&cb);
    int fa = dial(rs_server_port(sa)), fb = dial(rs_server_port(sb));
    echo_round(fa, 100, 1); /* on_open has run once the echo came back */
    echo_round(fb, 100, 2);
    close(fa);
    close(fb);
    assert_int_equal(rs_server_destroy(sa, NULL), 0);
    assert_int_equal(rs_server_destroy(sb, NULL), 0);
    assert_int_equal(ta.opened, 1);
    assert_int_equal(tb.opened, 1);
    /* A: verbose, its own lines only. */
    assert_non_null(strstr(ka.text, "listening on"));
    assert_non_null(strstr(ka.text, "opened by server-a"));
    assert_non_null(strstr(ka.text, "debug from server-a"));
    assert_null(strstr(ka.text, "server-b"));
    assert_true(ka.debugs >= 1);
    /* B: normal level, no debug line, nothing of A's. */
    assert_non_null(strstr(kb.text, "listening on"));
    assert_non_null(strstr(kb.text, "opened by server-b"));
    assert_null(strstr(kb.text, "debug from"));
    assert_null(strstr(kb.text, "server-a"));
    assert_int_equal(kb.debugs, 0);
    assert_int_equal(ka.errors + kb.errors, 0);
}

/* A server with a sink and --stats-interval: its interval lines go to the
 * sink too, not to stderr. rs_server_wait prints them; a 60 ms wait with
 * a 10 ms period prints at least one, however the threads are scheduled. */
static void test_interval_lines_reach_the_sink(void **state)
{
    (void)state;
    struct sink k = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct rs_config c;
    config(&c, "--threads=1", "--stats-interval=0.01");
    c.log_fn = sink_line;
    c.log_data = &k;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_int_equal(dup2(fileno(tmp), 2), 2);
    struct rs_server *srv = start_or_skip(&c);
    assert_int_equal(rs_server_wait(srv, 60), -ETIMEDOUT);
    assert_int_equal(rs_server_destroy(srv, NULL), 0);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fseek(tmp, 0, SEEK_END);
    long printed = ftell(tmp);
    fclose(tmp);
    assert_int_equal(printed, 0);
    assert_non_null(strstr(k.text, "interval: t="));
    assert_null(strstr(k.text, "ringserve:"));
}

/* Without a sink a server's lines go to stderr under the program's own
 * name, not "ringserve". */
static void test_log_name_on_stderr(void **state)
{
    (void)state;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fileno(tmp), 2), 2);
    struct rs_config c;
    config(&c, "--threads=1", NULL);
    c.verbose = RS_LOG_NORMAL;
    c.log_name = "upload-sink";
    struct rs_server *srv = NULL;
    int rc = rs_server_start(&c, &srv);
    if (rc == 0)
        rc = rs_server_destroy(srv, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    char text[4096] = "";
    rewind(tmp);
    size_t n = fread(text, 1, sizeof(text) - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    assert_non_null(strstr(text, "upload-sink: listening on"));
    assert_null(strstr(text, "ringserve:"));
}

/* Destroy while a client is connected and idle: the server drains (the
 * client does nothing, so until --drain-timeout), closes it (the client
 * reads end of stream), and returns. */
static void test_destroy_closes_open_clients(void **state)
{
    (void)state;
    struct rs_config c;
    config(&c, "--drain-timeout=100", NULL);
    long long fds0 = count_fds();
    struct rs_server *srv = start_or_skip(&c);
    int fd = dial(rs_server_port(srv));
    echo_round(fd, 512, 1);
    struct rs_stats t = {0};
    assert_int_equal(rs_server_destroy(srv, &t), 0);
    char byte;
    ssize_t n;
    do
        n = recv(fd, &byte, 1, 0);
    while (n < 0 && errno == EINTR);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
    close(fd);
    assert_int_equal(t.accepted, 1);
    assert_int_equal(t.closed, 1);
    assert_int_equal(count_fds(), fds0);
}

/* ---- waiting for the server from its own loop ---- */

/* A protocol that, from a loop callback, waits for its own server and
 * destroys it: both are refused at once (-EDEADLK) instead of waiting for
 * the loop they run on (the old server waited for ever: that loop could
 * never finish). rs_server_stop stays allowed there. */
static struct {
    struct rs_server *srv;
    int wait_rc, destroy_rc;
} g_self;

static void self_open(struct rs_stream *s)
{
    (void)s;
    g_self.wait_rc = rs_server_wait(g_self.srv, -1);
    g_self.destroy_rc = rs_server_destroy(g_self.srv, NULL);
}

static const struct rs_protocol self_proto = {
    .name = "self-wait", .cbs = {.on_data = tagged_data}, .on_open = self_open};

static void test_wait_from_own_loop_refused(void **state)
{
    (void)state;
    struct rs_config c;
    config(&c, "--threads=1", NULL);
    c.proto = &self_proto;
    memset(&g_self, 0, sizeof(g_self));
    g_self.srv = start_or_skip(&c);
    int fd = dial(rs_server_port(g_self.srv));
    echo_round(fd, 100, 4); /* on_open has run once the echo came back */
    assert_int_equal(g_self.wait_rc, -EDEADLK);
    assert_int_equal(g_self.destroy_rc, -EDEADLK);
    close(fd);
    assert_int_equal(rs_server_destroy(g_self.srv, NULL), 0);
}

/* ---- a request in flight at stop ---- */

/* A protocol that refuses at stop (on_stop: reset) and, as each connection
 * closes, starts a file read: at a stop the read is in flight when the
 * loop's last stream is gone. The loop must run until it completes, and
 * deliver the completion on its own thread. (The old loop ended with its
 * last stream, and its teardown ran on the thread that destroyed the
 * server, where io_uring's run() fails: the read was never collected.) */
static struct {
    struct rs_file_op op;
    char buf[64];
    int fd;
    atomic_int submitted, completed, wrong_thread;
    pthread_t loop_thread;
    int32_t res;
} g_fop;

static void fop_done(struct rs_loop *loop, struct rs_op *op,
                     const struct rs_completion *c)
{
    (void)op;
    g_fop.res = c->res;
    if (!pthread_equal(pthread_self(), g_fop.loop_thread))
        atomic_fetch_add(&g_fop.wrong_thread, 1);
    atomic_fetch_add(&g_fop.completed, 1);
    rs_loop_req_done(loop);
}

static void fop_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    rs_stream_write_lent(s, p, len, bid); /* echo: the client knows it is served */
}

static void fop_close(struct rs_stream *s, int reason)
{
    (void)reason;
    g_fop.loop_thread = pthread_self();
    rs_file_op_init(&g_fop.op, RS_OP_READ, g_fop.fd, fop_done, NULL);
    g_fop.op.dst = g_fop.buf;
    g_fop.op.op.len = sizeof(g_fop.buf);
    g_fop.op.off = 0;
    if (s->loop->ops->submit(s->loop, &g_fop.op.op) == 0) {
        rs_loop_req_start(s->loop);
        atomic_fetch_add(&g_fop.submitted, 1);
    }
}

static void fop_stop(struct rs_stream *s)
{
    rs_stream_reset_reason(s, -ESHUTDOWN);
}

static const struct rs_protocol fop_proto = {
    .name = "file-op-at-stop",
    .cbs = {.on_data = fop_data, .on_close = fop_close},
    .on_stop = fop_stop,
};

static void test_request_in_flight_at_stop_is_collected(void **state)
{
    (void)state;
    struct rs_config c;
    config(&c, "--threads=1", NULL);
    c.proto = &fop_proto;
    FILE *f = tmpfile();
    assert_non_null(f);
    static const char text[64] = "sixty-four bytes of a file read by the loop at stop";
    assert_int_equal(fwrite(text, 1, sizeof(text), f), sizeof(text));
    fflush(f);
    memset(&g_fop, 0, sizeof(g_fop));
    g_fop.fd = fileno(f);
    struct rs_server *srv = start_or_skip(&c);
    int fd = dial(rs_server_port(srv));
    echo_round(fd, 100, 3); /* accepted and served: the stream exists */
    struct rs_stats t = {0};
    assert_int_equal(rs_server_destroy(srv, &t), 0);
    assert_int_equal(atomic_load(&g_fop.submitted), 1);
    assert_int_equal(atomic_load(&g_fop.completed), 1);
    assert_int_equal(atomic_load(&g_fop.wrong_thread), 0);
    assert_int_equal(g_fop.res, (int32_t)sizeof(text));
    assert_memory_equal(g_fop.buf, text, sizeof(text));
    /* The stop refused the connection visibly. */
    char byte;
    ssize_t n;
    do
        n = recv(fd, &byte, 1, 0);
    while (n < 0 && errno == EINTR);
    assert_int_equal(n, -1);
    assert_int_equal(errno, ECONNRESET);
    close(fd);
    fclose(f);
}

/* A port already taken: -EADDRINUSE, nothing left open, and the server
 * holding the port is not disturbed. */
static void test_busy_port_fails_cleanly(void **state)
{
    (void)state;
    struct rs_config c1, c2;
    config(&c1, NULL, NULL);
    struct rs_server *s1 = start_or_skip(&c1);
    char listen[64];
    snprintf(listen, sizeof(listen), "--listen=127.0.0.1:%u", rs_server_port(s1));
    config(&c2, listen, "--threads=2");
    long long fds0 = count_fds();
    struct rs_server *s2 = (struct rs_server *)&s2; /* must be reset */
    assert_int_equal(rs_server_start(&c2, &s2), -EADDRINUSE);
    assert_null(s2);
    assert_int_equal(count_fds(), fds0);
    int fd = dial(rs_server_port(s1));
    echo_round(fd, 64, 3);
    close(fd);
    assert_int_equal(rs_server_destroy(s1, NULL), 0);
}

/* More connections than the backend can hold is a usage error (-EINVAL),
 * found after the loops were set up: they are all torn down again. */
static void test_max_conns_above_limit_is_einval(void **state)
{
    (void)state;
    struct rs_config c;
    config(&c, "--max-conns=100000000", "--threads=2");
    long long fds0 = count_fds();
    struct rs_server *srv = NULL;
    int rc = rs_server_start(&c, &srv);
    if (rc == -ENOSYS) {
        rs_skip_reason("io_uring unavailable: rs_server_start: ENOSYS");
        skip();
    }
    assert_int_equal(rc, -EINVAL);
    assert_null(srv);
    assert_int_equal(count_fds(), fds0);
}

static struct rs_server *g_srv;
static void stop_from_handler(int sig)
{
    (void)sig;
    rs_server_stop(g_srv);
}

/* SigBlk of every thread of this process but the calling one: the loop
 * threads must block SIGINT and SIGTERM (and every other signal). */
static void assert_other_threads_block_signals(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    pid_t self = gettid();
    unsigned others = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == self)
            continue;
        char path[300], line[256];
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue; /* an io-wq or fs-pool thread that just ended */
        unsigned long long blk = 0;
        bool seen = false;
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "SigBlk: %llx", &blk) == 1)
                seen = true;
        fclose(f);
        assert_true(seen);
        assert_true(blk & (1ull << (SIGINT - 1)));
        assert_true(blk & (1ull << (SIGTERM - 1)));
        assert_true(blk & (1ull << (SIGUSR1 - 1)));
        others++;
    }
    closedir(d);
    assert_true(others >= 2); /* two loop threads at least */
}

/* The library leaves the process's signals alone: no disposition changed
 * (SIGPIPE, SIGINT, SIGTERM stay as the program set them), loop threads
 * blocking every signal so a process signal reaches the program's thread,
 * and rs_server_stop works from that thread's signal handler. */
static void test_signals_belong_to_the_program(void **state)
{
    (void)state;
    struct sigaction before[3], after;
    const int sigs[3] = {SIGPIPE, SIGINT, SIGTERM};
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], NULL, &before[i]);
    struct rs_config c;
    config(&c, "--threads=2", NULL);
    g_srv = start_or_skip(&c);
    for (int i = 0; i < 3; i++) {
        sigaction(sigs[i], NULL, &after);
        assert_true(after.sa_handler == before[i].sa_handler);
    }
    assert_other_threads_block_signals();
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = stop_from_handler;
    sigaction(SIGUSR1, &sa, NULL);
    /* Process-directed: only this thread can take it. */
    kill(getpid(), SIGUSR1);
    assert_int_equal(rs_server_wait(g_srv, -1), 0);
    sa.sa_handler = SIG_DFL;
    sigaction(SIGUSR1, &sa, NULL);
    assert_int_equal(rs_server_destroy(g_srv, NULL), 0);
    g_srv = NULL;
}

/* The first error line a server logs, into data (char[512]). */

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    /* Skip where the variant's backend cannot run (io_uring forbidden or
     * absent); anything else failing to start is a failure, below. */
    struct rs_config c;
    config(&c, NULL, NULL);
    char first_error[RS_FIRST_ERROR_LEN] = "";
    c.log_fn = rs_keep_first_error;
    c.log_data = first_error;
    struct rs_server *srv;
    int rc = rs_server_start(&c, &srv);
    if (rc == -ENOSYS) {
        rs_skip_reason("io_uring unavailable: rs_server_start: ENOSYS");
        return 77;
    }
    /* A --uring-features name this kernel lacks (strict list): a skip the
     * summary checks against the probe. */
    if (rc == -EINVAL && rs_skip_reason_for(first_error))
        return 77;
    if (rc == 0)
        rs_server_destroy(srv, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_servers_in_one_process),
        cmocka_unit_test(test_per_server_data_and_logging),
        cmocka_unit_test(test_log_name_on_stderr),
        cmocka_unit_test(test_interval_lines_reach_the_sink),
        cmocka_unit_test(test_destroy_closes_open_clients),
        cmocka_unit_test(test_request_in_flight_at_stop_is_collected),
        cmocka_unit_test(test_wait_from_own_loop_refused),
        cmocka_unit_test(test_busy_port_fails_cleanly),
        cmocka_unit_test(test_max_conns_above_limit_is_einval),
        cmocka_unit_test(test_signals_belong_to_the_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
