/* --notsent-lowat on a real backend: the server's listening socket carries
 * TCP_NOTSENT_LOWAT (the value given; nothing by default or with 0), and
 * so do the connections it accepts (the kernel copies the option
 * from the listener). The test finds the server's sockets among its own
 * descriptors (the server runs in this process): the listener always, the
 * accepted socket where the backend keeps it as a plain descriptor (epoll;
 * io_uring's accepted sockets are direct descriptors, out of reach).
 *
 * Why the option exists (docs/http.md): without it a large response fills
 * the whole send buffer and most of its bytes are sent later from the
 * peer's ACK processing, on a local client's CPU.
 *
 * usage: test_notsent_lowat RINGSERVE-OPTIONS...  (e.g. --backend=epoll
 * --epoll-mode=lt); exit 77 (skip) when the backend is not available here. */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <ringserve.h>

#include "../skip_reason.h"
#include "first_error.h"
#include "inproc_server.h"
#include "again.h"

static int g_argc;
static char **g_argv;

/* TCP sockets of this process bound to port: how many, and whether all
 * have TCP_NOTSENT_LOWAT want (the listener and accepted sockets; the
 * client's own socket has another local port). *accepted counts the
 * non-listening ones. */
static int check_sockets(uint16_t port, int want, int *accepted)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    *accepted = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        struct sockaddr_in a;
        socklen_t alen = sizeof(a);
        if (e->d_name[0] == '.' || getsockname(fd, (struct sockaddr *)&a, &alen) < 0 ||
            a.sin_family != AF_INET || ntohs(a.sin_port) != port)
            continue;
        int v = 0, listening = 0;
        socklen_t len = sizeof(v);
        assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, &len), 0);
        if (v != want)
            fail_msg("fd %d on port %u: TCP_NOTSENT_LOWAT %d, want %d", fd, port, v,
                     want);
        len = sizeof(listening);
        assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len), 0);
        *accepted += !listening;
        n++;
    }
    closedir(d);
    return n;
}

/* Start the echo server with extra options, make one round trip (so the
 * connection is accepted), and check every socket of the server. */
static void run_with(const char *const *extra, int want)
{
    struct rs_server *srv =
        rs_test_server_start("test_notsent_lowat", NULL, extra, g_argc, g_argv);
    int c = rs_test_dial(srv, 0);
    assert_int_equal(send(c, "x", 1, 0), 1);
    char b;
    assert_int_equal(recv_again(c, &b, 1, MSG_WAITALL), 1);
    int accepted = 0;
    int n = check_sockets(rs_server_port(srv), want, &accepted);
    assert_true(n >= 1 + accepted); /* the listener, at least */
    bool epoll = false;             /* its accepted sockets are plain: one was checked */
    for (int i = 1; i < g_argc; i++)
        epoll |= strcmp(g_argv[i], "--backend=epoll") == 0;
    if (epoll)
        assert_int_equal(accepted, 1);
    close(c);
    rs_server_stop(srv);
    struct rs_stats totals;
    assert_int_equal(rs_server_destroy(srv, &totals), 0);
}

static void test_default_is_the_kernels(void **state)
{
    (void)state;
    /* Opt-in (include/ringserve/config.h says why): no value of our own. */
    assert_int_equal(RS_NOTSENT_LOWAT_DEFAULT, 0);
    run_with(NULL, 0);
}

static void test_size_suffix(void **state)
{
    (void)state;
    const char *const extra[] = {"--notsent-lowat=256K", NULL};
    run_with(extra, 256 * 1024);
}

static void test_value_given(void **state)
{
    (void)state;
    const char *const extra[] = {"--notsent-lowat=100000", NULL};
    run_with(extra, 100000);
}

static void test_zero_leaves_kernel_default(void **state)
{
    (void)state;
    /* A socket without a value of its own reads back 0: the sysctl
     * (net.ipv4.tcp_notsent_lowat) applies. */
    const char *const extra[] = {"--notsent-lowat=0", NULL};
    run_with(extra, 0);
}

int main(int argc, char **argv)
{
    g_argc = argc;
    g_argv = argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_is_the_kernels),
        cmocka_unit_test(test_size_suffix),
        cmocka_unit_test(test_value_given),
        cmocka_unit_test(test_zero_leaves_kernel_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
