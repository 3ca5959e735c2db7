/* The configuration as an embedding program uses it: its own options and
 * operands mixed with ringserve's, its own getopt loop, its own --help.
 * rs_config_parse_args takes ringserve's options, leaves the rest in argv
 * in order, prints nothing and leaves getopt's globals alone; the strict
 * rs_config_parse (ringserve's own command line) leaves them alone too. */
#include <errno.h>
#include <getopt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringserve.h>

#define ARGV(...)                                                                        \
    {                                                                                    \
        __VA_ARGS__, NULL                                                                \
    }
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

/* Nothing may reach stdout or stderr during a parse: both are sent to a
 * temporary file for the call and read back. */
struct quiet {
    FILE *tmp;
    int out, err;
};

static void quiet_begin(struct quiet *q)
{
    fflush(stdout);
    fflush(stderr);
    q->tmp = tmpfile();
    assert_non_null(q->tmp);
    q->out = dup(1);
    q->err = dup(2);
    dup2(fileno(q->tmp), 1);
    dup2(fileno(q->tmp), 2);
}

/* Returns how many bytes were printed meanwhile. */
static long quiet_end(struct quiet *q)
{
    fflush(stdout);
    fflush(stderr);
    dup2(q->out, 1);
    dup2(q->err, 2);
    close(q->out);
    close(q->err);
    fseek(q->tmp, 0, SEEK_END);
    long n = ftell(q->tmp);
    fclose(q->tmp);
    return n;
}

static void test_config_embed_keeps_the_programs_arguments(void **state)
{
    (void)state;
    char *argv[] = ARGV("sink", "--dir=/srv/up", "--threads=2", "-v", "input.txt",
                        "--idle", "5", "--max-pending", "64K", "-x", "--", "--threads=9");
    int argc = COUNT(argv);
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    char err[200] = "untouched";
    struct quiet q;
    quiet_begin(&q);
    int rc = rs_config_parse_args(&cfg, &argc, argv, RS_CONFIG_EMBED, err, sizeof(err));
    assert_int_equal(quiet_end(&q), 0);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    assert_int_equal(cfg.threads, 2);
    assert_int_equal(cfg.verbose, RS_LOG_VERBOSE);
    assert_int_equal(cfg.max_pending, 65536);
    /* The program's, in order; after "--" nothing is ringserve's. */
    const char *left[] = {"sink", "--dir=/srv/up", "input.txt", "--idle", "5", "-x",
                          "--",   "--threads=9"};
    assert_int_equal(argc, 8);
    for (int i = 0; i < argc; i++)
        assert_string_equal(argv[i], left[i]);
    assert_null(argv[argc]);
}

/* The program's own getopt loop works on what is left, before or after
 * ours: its optind and opterr are never reset under it. */
static void test_config_leaves_getopt_alone(void **state)
{
    (void)state;
    char *argv[] = ARGV("sink", "--threads=3", "--dir=/d", "--idle=7");
    int argc = COUNT(argv);
    optind = 5;
    opterr = 1;
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    char err[200];
    assert_int_equal(
        rs_config_parse_args(&cfg, &argc, argv, RS_CONFIG_EMBED, err, sizeof(err)), 0);
    assert_int_equal(optind, 5);
    assert_int_equal(opterr, 1);
    /* ...and then its getopt_long sees only its own options. */
    static const struct option mine[] = {{"dir", required_argument, NULL, 'd'},
                                         {"idle", required_argument, NULL, 'i'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = 0;
    const char *dir = NULL, *idle = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", mine, NULL)) != -1) {
        assert_true(opt == 'd' || opt == 'i');
        *(opt == 'd' ? &dir : &idle) = optarg;
    }
    assert_string_equal(dir, "/d");
    assert_string_equal(idle, "7");
    assert_int_equal(cfg.threads, 3);

    /* ringserve's own strict parse leaves them alone as well. */
    char *argv2[] = ARGV("ringserve", "--threads=4");
    optind = 9;
    opterr = 1;
    rs_config_defaults(&cfg);
    assert_int_equal(rs_config_parse(&cfg, COUNT(argv2), argv2), 0);
    assert_int_equal(cfg.threads, 4);
    assert_int_equal(optind, 9);
    assert_int_equal(opterr, 1);
}

/* --help and --version are the program's to answer: reported, not printed. */
static void test_config_help_and_version_are_returned(void **state)
{
    (void)state;
    struct rs_config cfg;
    char err[200];
    const char *help[] = {"--help", "-h"}, *version[] = {"--version", "-V"};
    for (int i = 0; i < 4; i++) {
        char *argv[] = ARGV("sink", "--dir=/d", (char *)(i < 2 ? help : version)[i % 2]);
        int argc = COUNT(argv);
        rs_config_defaults(&cfg);
        struct quiet q;
        quiet_begin(&q);
        int rc =
            rs_config_parse_args(&cfg, &argc, argv, RS_CONFIG_EMBED, err, sizeof(err));
        assert_int_equal(quiet_end(&q), 0);
        assert_int_equal(rc, i < 2 ? RS_CONFIG_HELP : RS_CONFIG_VERSION);
        assert_false(cfg.exit_now);
    }
}

/* A usage error is a return value with a reason, never a print; without
 * RS_CONFIG_EMBED an unknown option or operand is one. */
static void test_config_errors_are_returned(void **state)
{
    (void)state;
    struct {
        const char *arg;
        unsigned flags;
        const char *reason;
    } cases[] = {
        {"--threads=lots", RS_CONFIG_EMBED, "invalid value 'lots' for --threads"},
        {"--threads", RS_CONFIG_EMBED, "option '--threads' needs a value"},
        {"--pin=1", RS_CONFIG_EMBED, "option '--pin' takes no value"},
        {"--dir=/d", 0, "unknown option '--dir=/d'"},
        {"input.txt", 0, "unexpected argument 'input.txt'"},
        {"--upstream=127.0.0.1:1", RS_CONFIG_EMBED, "--upstream is for --protocol=proxy"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = ARGV("sink", (char *)cases[i].arg);
        int argc = COUNT(argv);
        struct rs_config cfg;
        rs_config_defaults(&cfg);
        char err[200] = "";
        struct quiet q;
        quiet_begin(&q);
        int rc =
            rs_config_parse_args(&cfg, &argc, argv, cases[i].flags, err, sizeof(err));
        assert_int_equal(quiet_end(&q), 0);
        assert_int_equal(rc, -EINVAL);
        if (strncmp(err, cases[i].reason, strlen(cases[i].reason)) != 0)
            fail_msg("%s: reason '%s', expected '%s...'", cases[i].arg, err,
                     cases[i].reason);
        assert_int_equal(argc, 2); /* untouched on failure */
    }
}

/* HTTP's send and keep-alive timeouts: nginx's defaults (60 s, 75 s),
 * seconds with decimals, 0 = none, a clear reason for a bad value, and
 * both in --help with their defaults. */
static void test_config_http_timeouts(void **state)
{
    (void)state;
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    assert_int_equal(cfg.send_timeout_ms, 60000);
    assert_int_equal(cfg.keepalive_timeout_ms, 75000);
    char err[200] = "";
    char *ok[] = ARGV("ringserve", "--send-timeout=1.5", "--keepalive-timeout", "0");
    int argc = COUNT(ok);
    assert_int_equal(rs_config_parse_args(&cfg, &argc, ok, 0, err, sizeof(err)), 0);
    assert_int_equal(cfg.send_timeout_ms, 1500);
    assert_int_equal(cfg.keepalive_timeout_ms, 0);
    struct {
        const char *arg, *reason;
    } cases[] = {
        {"--send-timeout=-1", "invalid value '-1' for --send-timeout: expected seconds"},
        {"--send-timeout=soon",
         "invalid value 'soon' for --send-timeout: expected seconds"},
        {"--send-timeout=0.001", "invalid value '0.001' for --send-timeout"},
        {"--keepalive-timeout=86401",
         "invalid value '86401' for --keepalive-timeout: expected seconds"},
        {"--keepalive-timeout=", "invalid value '' for --keepalive-timeout"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *argv[] = ARGV("ringserve", (char *)cases[i].arg);
        argc = COUNT(argv);
        rs_config_defaults(&cfg);
        assert_int_equal(rs_config_parse_args(&cfg, &argc, argv, 0, err, sizeof(err)),
                         -EINVAL);
        if (strncmp(err, cases[i].reason, strlen(cases[i].reason)) != 0)
            fail_msg("%s: reason '%s', expected '%s...'", cases[i].arg, err,
                     cases[i].reason);
        assert_int_equal(cfg.send_timeout_ms, 60000); /* untouched */
        assert_int_equal(cfg.keepalive_timeout_ms, 75000);
    }
    char help[8192];
    FILE *f = fmemopen(help, sizeof(help) - 1, "w");
    assert_non_null(f);
    rs_config_options_usage(f);
    size_t n = (size_t)ftell(f);
    fclose(f);
    help[n] = '\0';
    const char *send = strstr(help, "--send-timeout=SECONDS");
    const char *ka = strstr(help, "--keepalive-timeout=SECONDS");
    assert_non_null(send);
    assert_non_null(ka);
    assert_non_null(strstr(send, "(default 60;"));
    assert_non_null(strstr(ka, "(default 75;"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_embed_keeps_the_programs_arguments),
        cmocka_unit_test(test_config_leaves_getopt_alone),
        cmocka_unit_test(test_config_help_and_version_are_returned),
        cmocka_unit_test(test_config_errors_are_returned),
        cmocka_unit_test(test_config_http_timeouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
