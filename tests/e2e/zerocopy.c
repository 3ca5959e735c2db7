/* Zero-copy sends that the kernel copied after all.
 *
 * Usage: zerocopy RINGSERVE
 *
 * To a loopback peer, send_zc cannot stay zero-copy: the kernel copies the
 * data when it reaches the local receiver and says so in the notification
 * (IORING_NOTIF_USAGE_ZC_COPIED, asked for with IORING_SEND_ZC_REPORT_USAGE).
 * ringserve then moves that connection to plain sends, counted as
 * zc_copied= in the final statistics; --zc-on-copy=keep turns that off.
 * These tests echo large messages over loopback with every send zero-copy
 * (--zc-threshold=1) and check the count and the data. A stopping server
 * waits for outstanding notifications, so the count is final at exit.
 *
 * Exits 77 (skip) where io_uring or send_zc is unavailable.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define MSG    (64u * 1024u)
#define CONNS  3
#define ROUNDS 4

static char *ringserve;

/* Echo ROUNDS messages on each of CONNS connections, stop the server, and
 * return its zc_copied= count. */
static unsigned long long echo_and_count(const char *on_copy)
{
    char opt[64];
    snprintf(opt, sizeof(opt), "--zc-on-copy=%s", on_copy);
    char *argv[] = {
        ringserve, "--backend=uring", "--uring-features=default", "--zc-threshold=1", opt,
        NULL};
    static const char *const extra[] = {"--listen=127.0.0.1:0", NULL};
    struct h_server s;
    assert_int_equal(h_server_start(&s, argv, extra), H_STARTED);
    unsigned char *out = malloc(MSG), *in = malloc(MSG);
    assert_non_null(out);
    assert_non_null(in);
    int fds[CONNS];
    for (int c = 0; c < CONNS; c++) {
        fds[c] = h_connect(&s);
        assert_true(fds[c] >= 0);
    }
    for (int r = 0; r < ROUNDS; r++) {
        for (int c = 0; c < CONNS; c++) {
            h_fill(out, MSG, (uint64_t)(r * CONNS + c + 1));
            assert_int_equal(h_write_all(fds[c], out, MSG), 0);
            assert_int_equal(h_read_exact(fds[c], in, MSG), (ssize_t)MSG);
            assert_memory_equal(in, out, MSG);
        }
    }
    for (int c = 0; c < CONNS; c++)
        close(fds[c]);
    free(out);
    free(in);
    h_server_stop(&s, SIGTERM);
    char line[1024];
    unsigned long long copied = ~0ull, in_b = 0, out_b = 0;
    if (!h_exited_with(&s, 0) ||
        !h_find_line(&s, "ringserve: stats:", line, sizeof(line)) ||
        !h_line_value(line, "zc_copied", &copied) ||
        !h_line_value(line, "bytes_in", &in_b) ||
        !h_line_value(line, "bytes_out", &out_b)) {
        h_dump_stderr(&s, "stop");
        h_server_destroy(&s);
        fail_msg("no clean exit with a stats line carrying zc_copied=");
    }
    h_server_destroy(&s);
    assert_int_equal(in_b, (unsigned long long)MSG * CONNS * ROUNDS);
    assert_int_equal(out_b, in_b);
    return copied;
}

/* Every connection's first notification reports the copy: each moves to
 * plain sends exactly once. */
static void test_zc_copied_moves_each_connection_once(void **state)
{
    (void)state;
    assert_int_equal(echo_and_count("plain"), CONNS);
}

static void test_zc_keep_never_moves(void **state)
{
    (void)state;
    assert_int_equal(echo_and_count("keep"), 0);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s RINGSERVE\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    ringserve = argv[1];
    /* send-zc named explicitly: a kernel without it makes this a skip. */
    char *probe[] = {ringserve, "--backend=uring", "--uring-features=default,send-zc",
                     NULL};
    int pre = h_preflight(probe, "zerocopy");
    if (pre >= 0)
        return pre;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zc_copied_moves_each_connection_once),
        cmocka_unit_test(test_zc_keep_never_moves),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
