/* Command-line tests: usage errors, --help, --version, a busy port, and the
 * io_uring fallback under a seccomp filter.
 *
 * Usage: cli RINGSERVE NO_URING [VERSION]
 *
 *   RINGSERVE  the server binary
 *   NO_URING   the helper that forbids io_uring with seccomp, then execs
 *   VERSION    if given, --version must print it
 *
 * `cli --probe-uring` is used by the tests themselves: it exits 0 if
 * io_uring_setup fails with EPERM (run under NO_URING, it proves the helper
 * works), 1 otherwise.
 */
#include <arpa/inet.h>
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
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static char *ringserve;
static char *no_uring;
static const char *version;
static char self_exe[4096];

/* --- running the server ------------------------------------------------------- */

/* Run argv to completion (it must exit by itself; a server that starts
 * listening instead is stopped and the test fails). */
static void run_to_exit(struct h_server *s, char *const argv[])
{
    enum h_start r = h_server_start(s, argv, NULL);
    if (r == H_STARTED) {
        h_server_stop(s, SIGKILL);
        h_dump_stderr(s, "unexpected start");
        fail_msg("%s started listening on port %u instead of exiting", argv[0], s->port);
    }
    if (r != H_EXITED)
        fail_msg("%s: %s", argv[0],
                 r == H_TIMEDOUT ? "neither exited nor listened within the timeout"
                                 : "could not be spawned");
}

static void expect_exit(struct h_server *s, int code)
{
    char st[64];
    if (!h_exited_with(s, code)) {
        h_dump_stderr(s, "unexpected exit status");
        fail_msg("expected exit %d, got %s", code, h_status_str(s, st, sizeof(st)));
    }
}

static void expect_in(struct h_server *s, const char *text, const char *needle,
                      const char *where)
{
    if (!strstr(text, needle)) {
        h_dump_stderr(s, "missing text");
        fail_msg("%s does not contain \"%s\"", where, needle);
    }
}

/* --- usage errors: exit 2, message on stderr naming the option ------------------ */

struct usage_case {
    const char *name;
    const char *arg;        /* the bad argument */
    bool add_listen;        /* also pass --listen=127.0.0.1:0 (in case it is accepted) */
    const char *mention[5]; /* stderr must contain each of these */
};

static const struct usage_case usage_cases[] = {
    {"usage: --backend=foo",
     "--backend=foo",
     true,
     {"--backend", "auto", "uring", "epoll"}},
    {"usage: --backend= (empty)", "--backend=", true, {"--backend"}},
    {"usage: --epoll-mode=xx", "--epoll-mode=xx", true, {"--epoll-mode", "lt", "et"}},
    {"usage: --max-pending=abc", "--max-pending=abc", true, {"--max-pending"}},
    {"usage: --max-pending=12abc", "--max-pending=12abc", true, {"--max-pending"}},
    {"usage: --listen=nonsense", "--listen=nonsense", false, {"--listen"}},
    {"usage: --listen=127.0.0.1:99999", "--listen=127.0.0.1:99999", false, {"--listen"}},
    {"usage: --max-pending=0", "--max-pending=0", true, {"--max-pending"}},
    {"usage: --backend without a value", "--backend", true, {"backend"}},
    {"usage: unknown flag", "--no-such-flag", true, {"no-such-flag"}},
    {"usage: --sched=fifo", "--sched=fifo", true, {"--sched", "normal", "batch"}},
    {"usage: --zc-on-copy=maybe",
     "--zc-on-copy=maybe",
     true,
     {"--zc-on-copy", "plain", "keep"}},
    {"usage: --fs=maybe", "--fs=maybe", true, {"--fs", "pool", "inline"}},
    {"usage: --iowq-max=8", "--iowq-max=8", true, {"--iowq-max", "BOUNDED,UNBOUNDED"}},
    {"usage: --iowq-max=8,x", "--iowq-max=8,x", true, {"--iowq-max"}},
    {"usage: --iowq-max=8,2000000", "--iowq-max=8,2000000", true, {"--iowq-max"}},
    {"usage: --fs-threads=0", "--fs-threads=0", true, {"--fs-threads"}},
    {"usage: --fs-threads=65", "--fs-threads=65", true, {"--fs-threads"}},
    /* Options that belong to another protocol must not start an echo
     * server (they did, once: the check returned 2 where main wants < 0). */
    {"usage: --root without http", "--root=/tmp", true, {"--root", "--protocol=http"}},
    {"usage: http without --root", "--protocol=http", true, {"--root"}},
    {"usage: --upstream without proxy", "--upstream=127.0.0.1:1", true, {"--upstream"}},
};

static void test_cli_usage_error(void **state)
{
    const struct usage_case *c = *state;
    char *argv[] = {ringserve, (char *)c->arg, "--listen=127.0.0.1:0", NULL};
    if (!c->add_listen)
        argv[2] = NULL;
    struct h_server s;
    run_to_exit(&s, argv);
    expect_exit(&s, 2);
    char *err = h_server_stderr(&s);
    for (int i = 0; i < 5 && c->mention[i]; i++)
        expect_in(&s, err, c->mention[i], "stderr");
    free(err);
    h_server_destroy(&s);
}

/* --- --help and --version --------------------------------------------------------- */

static void test_cli_help(void **state)
{
    (void)state;
    static const char *const options[] = {
        "--backend", "--listen",  "--epoll-mode",     "--max-pending", "--quiet",
        "--help",    "--version", "--uring-features", "--iowq-max",
    };
    char *argv[] = {ringserve, "--help", NULL};
    struct h_server s;
    run_to_exit(&s, argv);
    expect_exit(&s, 0);
    char *out = h_server_stdout(&s);
    char *err = h_server_stderr(&s);
    size_t n = strlen(out) + strlen(err) + 2;
    char *all = malloc(n);
    assert_non_null(all);
    snprintf(all, n, "%s\n%s", out, err);
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        expect_in(&s, all, options[i], "--help output");
    /* and the values the enumerated options take */
    expect_in(&s, all, "auto", "--help output");
    expect_in(&s, all, "uring", "--help output");
    expect_in(&s, all, "epoll", "--help output");
    free(all);
    free(out);
    free(err);
    h_server_destroy(&s);
}

static void test_cli_version(void **state)
{
    (void)state;
    char *argv[] = {ringserve, "--version", NULL};
    struct h_server s;
    run_to_exit(&s, argv);
    expect_exit(&s, 0);
    char *out = h_server_stdout(&s);
    char *err = h_server_stderr(&s);
    if (!*out && !*err)
        fail_msg("--version printed nothing");
    if (version && !strstr(out, version) && !strstr(err, version))
        fail_msg("--version does not print %s: stdout \"%s\" stderr \"%s\"", version, out,
                 err);
    free(out);
    free(err);
    h_server_destroy(&s);
}

/* --- busy port: exit 1 and the exact message -----------------------------------------
 */

static void busy_port(const char *backend_arg)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    unsigned port = ntohs(sa.sin_port);

    char listen_arg[64], want[128];
    snprintf(listen_arg, sizeof(listen_arg), "--listen=127.0.0.1:%u", port);
    snprintf(want, sizeof(want), "cannot listen on 127.0.0.1:%u: Address already in use",
             port);
    char *argv[] = {ringserve, listen_arg, (char *)backend_arg, NULL};
    struct h_server s;
    run_to_exit(&s, argv);
    expect_exit(&s, 1);
    char *err = h_server_stderr(&s);
    expect_in(&s, err, want, "stderr");
    free(err);
    h_server_destroy(&s);
    close(fd);
}

static void test_cli_busy_port_auto(void **state)
{
    (void)state;
    busy_port("--backend=auto");
}

static void test_cli_busy_port_epoll(void **state)
{
    (void)state;
    busy_port("--backend=epoll");
}

/* --- io_uring forbidden by seccomp ----------------------------------------------------
 */

static void test_cli_no_uring_helper_works(void **state)
{
    (void)state;
    char *argv[] = {no_uring, self_exe, "--probe-uring", NULL};
    struct h_server s;
    run_to_exit(&s, argv);
    if (!h_exited_with(&s, 0)) {
        h_dump_stderr(&s, "probe");
        fail_msg("under no_uring, io_uring_setup did not fail with EPERM");
    }
    h_server_destroy(&s);
}

static void test_cli_seccomp_auto_falls_back(void **state)
{
    (void)state;
    char *argv[] = {no_uring, ringserve, "--backend=auto", "--listen=127.0.0.1:0", NULL};
    struct h_server s;
    enum h_start r = h_server_start(&s, argv, NULL);
    if (r != H_STARTED) {
        char st[64];
        h_dump_stderr(&s, "start-up");
        fail_msg("--backend=auto without io_uring did not start (%s)",
                 h_status_str(&s, st, sizeof(st)));
    }
    if (strcmp(s.backend, "epoll") != 0) {
        h_server_stop(&s, SIGKILL);
        fail_msg("--backend=auto without io_uring says backend=%s, want epoll",
                 s.backend);
    }
    int fd = h_connect(&s);
    assert_true(fd >= 0);
    char back[32];
    assert_int_equal(h_write_all(fd, "fallback\n", 9), 0);
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
    assert_int_equal(h_read_exact(fd, back, 9), 9);
    assert_memory_equal(back, "fallback\n", 9);
    assert_int_equal(h_expect_eof(fd), 0);
    close(fd);
    h_server_stop(&s, SIGTERM);
    expect_exit(&s, 0);
    h_server_destroy(&s);
}

static void test_cli_seccomp_uring_fails(void **state)
{
    (void)state;
    char *argv[] = {no_uring, ringserve, "--backend=uring", "--listen=127.0.0.1:0", NULL};
    struct h_server s;
    run_to_exit(&s, argv);
    expect_exit(&s, 1);
    char *err = h_server_stderr(&s);
    expect_in(&s, err, "io_uring is unavailable", "stderr");
    free(err);
    h_server_destroy(&s);
}

/* --- main
 * ------------------------------------------------------------------------------- */

static int probe_uring(void)
{
    /* io_uring_setup(1, params): EPERM means the filter is in place */
    unsigned char params[120] = {0}; /* sizeof(struct io_uring_params) */
    long fd = syscall(425, 1, params);
    if (fd >= 0) {
        close((int)fd);
        fprintf(stderr, "io_uring_setup succeeded\n");
        return 1;
    }
    if (errno != EPERM) {
        fprintf(stderr, "io_uring_setup: %s (want EPERM)\n", strerror(errno));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--probe-uring") == 0)
        return probe_uring();
    if (argc < 3) {
        fprintf(stderr, "usage: %s RINGSERVE NO_URING [VERSION]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    ringserve = argv[1];
    no_uring = argv[2];
    version = argc > 3 ? argv[3] : NULL;
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    self_exe[n] = '\0';

    enum { NUSAGE = sizeof(usage_cases) / sizeof(usage_cases[0]), NOTHER = 7 };
    struct CMUnitTest tests[NUSAGE + NOTHER];
    size_t nt = 0;
    for (size_t i = 0; i < NUSAGE; i++)
        tests[nt++] = (struct CMUnitTest){.name = usage_cases[i].name,
                                          .test_func = test_cli_usage_error,
                                          .initial_state = (void *)&usage_cases[i]};
#define T(fn) tests[nt++] = (struct CMUnitTest)cmocka_unit_test(fn)
    T(test_cli_help);
    T(test_cli_version);
    T(test_cli_busy_port_auto);
    T(test_cli_busy_port_epoll);
    T(test_cli_no_uring_helper_works);
    T(test_cli_seccomp_auto_falls_back);
    T(test_cli_seccomp_uring_fails);
#undef T
    if (nt != NUSAGE + NOTHER) {
        fprintf(stderr, "cli: test table size mismatch\n");
        return 1;
    }
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
