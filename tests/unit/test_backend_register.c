/* A backend from outside the library: the tests' scripted backend,
 * registered with the public rs_backend_register under its own name, with
 * an option of its own. Its name becomes a --backend value, its option an
 * option of the command line (checked by the backend, with its help
 * section in --help), and a server started with it runs its init() with
 * the value given; nothing in core/ knows it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <ringserve.h>
#include <ringserve/backend.h>

#include "fake_backend.h"

/* --scripted-knob=N: a number from 1 to 9. */
static int check_knob(const char *value, char *err, size_t errlen)
{
    if (strlen(value) != 1 || value[0] < '1' || value[0] > '9') {
        snprintf(err, errlen, "a digit from 1 to 9");
        return -EINVAL;
    }
    return 0;
}

static const struct rs_backend_option knob_options[] = {
    {"scripted-knob", true, check_knob},
    {NULL, false, NULL},
};

/* What init() saw, then a refusal: this test needs the start to reach
 * the backend, not a scripted loop serving real sockets. */
static char seen_knob[8];

static int knob_init(struct rs_loop *loop, const struct rs_config *cfg, char *err,
                     size_t errlen)
{
    (void)loop;
    const char *v = rs_config_option(cfg, "scripted-knob");
    snprintf(seen_knob, sizeof(seen_knob), "%s", v ? v : "(none)");
    snprintf(err, errlen, "scripted backend saw knob %s", seen_knob);
    return -EINVAL;
}

static struct rs_backend_ops scripted;

static int register_scripted(void **state)
{
    (void)state;
    scripted = fake_backend;
    scripted.name = "scripted";
    scripted.init = knob_init;
    scripted.options = knob_options;
    scripted.help = "Backend scripted: the tests' fake kernel.\n"
                    "  --scripted-knob=N           a digit (default none)\n";
    return 0;
}

struct sink {
    char text[4096];
    size_t len;
};

static void sink_line(void *data, enum rs_log_kind kind, const char *line)
{
    (void)kind;
    struct sink *k = data;
    int n = snprintf(k->text + k->len, sizeof(k->text) - k->len, "%s\n", line);
    if (n > 0 && (size_t)n < sizeof(k->text) - k->len)
        k->len += (size_t)n;
}

static int parse(struct rs_config *cfg, char **argv, int argc, char *err, size_t errlen)
{
    rs_config_defaults(cfg);
    return rs_config_parse_args(cfg, &argc, argv, 0, err, errlen);
}

static void test_backend_register_from_outside(void **state)
{
    (void)state;
    struct rs_config cfg;
    char err[200];
    char *argv[] = {"prog", "--backend=scripted", "--scripted-knob=7", NULL};
    /* Unknown before it is registered. */
    assert_int_equal(parse(&cfg, argv, 3, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "'scripted' for --backend"));

    assert_int_equal(rs_backend_register(&scripted), 0);
    assert_int_equal(rs_backend_register(&scripted), -EEXIST);
    struct rs_backend_ops clash = scripted;
    clash.name = "other";
    assert_int_equal(rs_backend_register(&clash), -EEXIST); /* its option is taken */
    clash.name = NULL;
    assert_int_equal(rs_backend_register(&clash), -EINVAL);

    /* Its option is checked by it. */
    char *bad[] = {"prog", "--backend=scripted", "--scripted-knob=0", NULL};
    assert_int_equal(parse(&cfg, bad, 3, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "invalid value '0' for --scripted-knob: expected a digit "
                             "from 1 to 9");
    assert_int_equal(parse(&cfg, argv, 3, err, sizeof(err)), 0);
    assert_string_equal(cfg.backend, "scripted");
    assert_string_equal(rs_config_option(&cfg, "scripted-knob"), "7");

    /* Its help is part of the options' help. */
    char help[16384];
    FILE *f = fmemopen(help, sizeof(help), "w");
    assert_non_null(f);
    rs_config_options_usage(f);
    fclose(f);
    assert_non_null(strstr(help, "Backend scripted: the tests' fake kernel."));
    assert_non_null(strstr(help, "--scripted-knob=N"));

    /* A server runs its init() with the value given. */
    struct sink k = {.len = 0};
    cfg.listen_port = 0;
    cfg.threads = 1;
    cfg.log_fn = sink_line;
    cfg.log_data = &k;
    struct rs_server *srv = NULL;
    assert_int_equal(rs_server_start(&cfg, &srv), -EINVAL);
    assert_null(srv);
    assert_string_equal(seen_knob, "7");
    assert_non_null(strstr(k.text, "scripted backend saw knob 7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_backend_register_from_outside, register_scripted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
