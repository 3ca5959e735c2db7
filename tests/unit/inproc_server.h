/* An in-process server for a test, and a client socket to it: what the
 * tests that run a protocol of their own on every backend variant share
 * (test_lent_slot.c, test_relay.c). The including file provides cmocka,
 * <ringserve.h>, ../skip_reason.h and first_error.h. */
#ifndef RS_TESTS_INPROC_SERVER_H
#define RS_TESTS_INPROC_SERVER_H

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

/* Start proto on 127.0.0.1:0, one loop, quiet: name, then extra (NULL
 * ends it), then the variant's options (argv[1..argc-1] of the test).
 * A start-up refusal that means the kernel lacks io_uring or a feature
 * the variant names is a skip (with its reason); any other fails. */
__attribute__((unused)) static struct rs_server *
rs_test_server_start(const char *name, const struct rs_protocol *proto,
                     const char *const *extra, int argc, char **argv)
{
    char *args[32];
    int n = 0;
    args[n++] = (char *)name;
    args[n++] = "--listen=127.0.0.1:0";
    args[n++] = "--quiet";
    args[n++] = "--threads=1";
    for (; extra && *extra && n < 16; extra++)
        args[n++] = (char *)*extra;
    for (int i = 1; i < argc && n < 30; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    static struct rs_config cfg;
    rs_config_defaults(&cfg);
    assert_int_equal(rs_config_parse(&cfg, n, args), 0);
    cfg.proto = proto;
    static char first_error[RS_FIRST_ERROR_LEN];
    first_error[0] = '\0';
    cfg.log_fn = rs_keep_first_error;
    cfg.log_data = first_error;
    struct rs_server *srv = NULL;
    int rc = rs_server_start(&cfg, &srv);
    if (rc == -ENOSYS) {
        rs_skip_reason("io_uring unavailable: rs_server_start: ENOSYS");
        skip();
    }
    /* A --uring-features name this kernel lacks (strict list): a skip. */
    if (rc == -EINVAL && rs_skip_reason_for(first_error))
        skip();
    assert_int_equal(rc, 0);
    return srv;
}

/* A connection to srv. rcvbuf > 0: that receive buffer and small segments,
 * set before connect so the window the server sees is small from the
 * start — the kernel sizes the server's send buffer from the peer's MSS,
 * so its sends come back short after a few tens of KiB instead of a few
 * MiB. A broken server fails the test, never hangs it (20 s timeouts). */
__attribute__((unused)) static int rs_test_dial(struct rs_server *srv, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0) {
        int mss = 536;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss));
    }
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(rs_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

#endif
