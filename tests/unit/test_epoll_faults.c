/* The epoll backend when its own system calls fail: epoll_ctl refusing to
 * narrow the interest set, and no memory for a queued completion at the
 * moment a send, close or cancel is submitted. Both are injected by
 * wrapping the calls for the library's objects (-Wl,--wrap=epoll_ctl,
 * -Wl,--wrap=malloc): the backend under test is the real one, on real
 * sockets.
 *
 * What must hold: a socket nobody waits on does not stay in a
 * level-triggered interest set (epoll_wait would return at once, forever),
 * and a call the backend refuses has no effect at all (a refused close has
 * not closed; a refused cancel leaves the op armed; a refused send has sent
 * nothing). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "loop.h"

int __real_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);

static int ctl_failures;    /* the next N MOD/DEL calls fail with ENOMEM */
static int malloc_failures; /* the next N mallocs of the library fail */

int __wrap_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (op != EPOLL_CTL_ADD && ctl_failures > 0) {
        ctl_failures--;
        errno = ENOMEM;
        return -1;
    }
    return __real_epoll_ctl(epfd, op, fd, ev);
}

void *__wrap_malloc(size_t n)
{
    if (malloc_failures > 0) {
        malloc_failures--;
        return NULL;
    }
    return __real_malloc(n);
}

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
    int sv[2]; /* sv[0] is the backend's socket, sv[1] the peer */
    int ncomp;
    struct rs_completion last;
};

static void record_fn(struct rs_loop *loop, struct rs_op *op,
                      const struct rs_completion *c)
{
    struct fixture *fx = op->data;
    fx->ncomp++;
    fx->last = *c;
    if (c->flags & RS_CF_BUFFER)
        loop->ops->buf_release(loop, c->bid);
}

static int setup_mode(void **state, enum rs_epoll_mode mode)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    rs_config_defaults(&fx->cfg);
    fx->cfg.epoll_mode = mode;
    fx->cfg.buffers = 4;
    fx->cfg.buffer_size = 256;
    char err[128];
    assert_int_equal(
        rs_loop_init(&fx->loop, &rs_backend_epoll, &fx->cfg, err, sizeof(err)), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fx->sv), 0);
    *state = fx;
    return 0;
}

static int setup_lt(void **state)
{
    return setup_mode(state, RS_EPOLL_LT);
}

static int setup_et(void **state)
{
    return setup_mode(state, RS_EPOLL_ET);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    ctl_failures = malloc_failures = 0;
    if (fx->sv[0] >= 0)
        close(fx->sv[0]);
    close(fx->sv[1]);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

/* The loop's epoll descriptor: the only eventpoll in this process. */
static int epoll_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int found = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], target[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strcmp(target, "anon_inode:[eventpoll]") == 0)
                found = atoi(e->d_name);
        }
    }
    closedir(d);
    assert_true(found >= 0);
    return found;
}

/* The interest mask the kernel holds for fd in the loop's epoll set, or -1
 * when fd is not registered (from /proc/self/fdinfo: "tfd: N events: M"). */
static long registered_events(int fd)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epoll_fd());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    long events = -1;
    while (fgets(line, sizeof(line), f)) {
        int tfd;
        unsigned ev;
        if (sscanf(line, "tfd: %d events: %x", &tfd, &ev) == 2 && tfd == fd)
            events = (long)ev;
    }
    fclose(f);
    return events;
}

/* lt: a recv cancelled while epoll_ctl fails (MOD and the DEL fallback):
 * the socket must still leave the set by the next run(), or every
 * epoll_wait returns at once for input nobody reads. */
static void test_epoll_lt_failed_ctl_is_retried(void **state)
{
    struct fixture *fx = *state;
    struct rs_op recv_op = {0};
    rs_op_init(&recv_op, RS_OP_RECV, fx->sv[0], record_fn, fx);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    assert_true(registered_events(fx->sv[0]) & EPOLLIN);
    ctl_failures = 2;
    assert_int_equal(fx->loop.ops->cancel(&fx->loop, &recv_op), 0);
    assert_int_equal(ctl_failures, 0); /* both attempts were made */
    assert_int_equal(write(fx->sv[1], "unread", 6), 6);
    fx->loop.ops->run(&fx->loop, 0);
    assert_int_equal(fx->ncomp, 1);
    assert_int_equal(fx->last.res, -ECANCELED);
    /* Retried by run(): no longer registered, so no spin. */
    assert_int_equal(registered_events(fx->sv[0]), -1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(fx->loop.ops->run(&fx->loop, 0), 0);
    /* And it can be used again. */
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    fx->loop.ops->run(&fx->loop, 100);
    assert_int_equal(fx->ncomp, 2);
    assert_int_equal(fx->last.res, 6);
}

/* A MOD that fails once falls back to DEL at once. */
static void test_epoll_lt_failed_mod_falls_back_to_del(void **state)
{
    struct fixture *fx = *state;
    struct rs_op recv_op = {0}, send_op = {0};
    rs_op_init(&recv_op, RS_OP_RECV, fx->sv[0], record_fn, fx);
    rs_op_init(&send_op, RS_OP_SEND, fx->sv[0], record_fn, fx);
    /* Fill the socket so a send must wait for EPOLLOUT. */
    static char junk[1 << 16];
    while (write(fx->sv[0], junk, sizeof(junk)) > 0) {
    }
    send_op.buf = "x";
    send_op.len = 1;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &send_op), 0);
    assert_int_equal(registered_events(fx->sv[0]) & (EPOLLIN | EPOLLOUT),
                     EPOLLIN | EPOLLOUT);
    ctl_failures = 1; /* the MOD to EPOLLOUT only */
    assert_int_equal(fx->loop.ops->cancel(&fx->loop, &recv_op), 0);
    /* DEL, then ADD of what is still wanted. */
    assert_int_equal(registered_events(fx->sv[0]) & (EPOLLIN | EPOLLOUT), EPOLLOUT);
    assert_int_equal(fx->loop.ops->cancel(&fx->loop, &send_op), 0);
    fx->loop.ops->run(&fx->loop, 0);
    assert_int_equal(fx->ncomp, 2);
}

/* A close refused for lack of memory has not closed the socket: the core
 * retries it later, and a second close(2) on a number that may belong to
 * someone else by then would be a disaster. */
static void test_epoll_refused_close_leaves_fd_open(void **state)
{
    struct fixture *fx = *state;
    struct rs_op close_op = {0};
    rs_op_init(&close_op, RS_OP_CLOSE, fx->sv[0], record_fn, fx);
    malloc_failures = 1; /* the completion queue's first allocation */
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &close_op), -ENOMEM);
    assert_true(fcntl(fx->sv[0], F_GETFD) >= 0);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &close_op), 0);
    assert_int_equal(fcntl(fx->sv[0], F_GETFD), -1);
    fx->sv[0] = -1;
    fx->loop.ops->run(&fx->loop, 0);
    assert_int_equal(fx->ncomp, 1);
    assert_int_equal(fx->last.res, 0);
}

/* A refused cancel leaves the op armed: it still completes (rule 5). The
 * old code forgot the op first and then failed to queue its -ECANCELED. */
static void test_epoll_refused_cancel_leaves_op_armed(void **state)
{
    struct fixture *fx = *state;
    struct rs_op recv_op = {0};
    rs_op_init(&recv_op, RS_OP_RECV, fx->sv[0], record_fn, fx);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &recv_op), 0);
    malloc_failures = 1;
    assert_int_equal(fx->loop.ops->cancel(&fx->loop, &recv_op), -ENOMEM);
    assert_int_equal(write(fx->sv[1], "data", 4), 4);
    for (int i = 0; i < 10 && fx->ncomp == 0; i++)
        fx->loop.ops->run(&fx->loop, 100);
    assert_int_equal(fx->ncomp, 1);
    assert_int_equal(fx->last.res, 4);
}

/* A refused send has sent nothing (the core aborts the connection, but it
 * must not believe bytes went out that did, or the reverse). */
static void test_epoll_refused_send_sends_nothing(void **state)
{
    struct fixture *fx = *state;
    struct rs_op send_op = {0};
    rs_op_init(&send_op, RS_OP_SEND, fx->sv[0], record_fn, fx);
    send_op.buf = "hello";
    send_op.len = 5;
    malloc_failures = 1;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &send_op), -ENOMEM);
    char buf[8];
    assert_int_equal(read(fx->sv[1], buf, sizeof(buf)), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &send_op), 0);
    fx->loop.ops->run(&fx->loop, 0);
    assert_int_equal(fx->last.res, 5);
    assert_int_equal(read(fx->sv[1], buf, sizeof(buf)), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_epoll_lt_failed_ctl_is_retried, setup_lt,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_epoll_lt_failed_mod_falls_back_to_del,
                                        setup_lt, teardown),
        cmocka_unit_test_setup_teardown(test_epoll_refused_close_leaves_fd_open, setup_lt,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_epoll_refused_close_leaves_fd_open, setup_et,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_epoll_refused_cancel_leaves_op_armed,
                                        setup_lt, teardown),
        cmocka_unit_test_setup_teardown(test_epoll_refused_cancel_leaves_op_armed,
                                        setup_et, teardown),
        cmocka_unit_test_setup_teardown(test_epoll_refused_send_sends_nothing, setup_et,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
