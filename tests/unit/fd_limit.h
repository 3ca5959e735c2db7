/* The process at its descriptor limit, for the tests of what a loop
 * gives back there (test_fs.c, test_http.c): the table filled below a
 * number, the soft RLIMIT_NOFILE at the lowest free one, and a count of
 * the sockets connected to a peer (a backend's held fds among them).
 * The including file provides cmocka. */
#ifndef RS_TESTS_FD_LIMIT_H
#define RS_TESTS_FD_LIMIT_H

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* The lowest free descriptor number. */
__attribute__((unused)) static int lowest_free_fd(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

/* The free numbers below top taken (by /dev/null, in fill[]), then the
 * soft RLIMIT_NOFILE at the lowest free number: the next descriptor
 * fails with EMFILE unless one under the limit is closed. top: one past
 * a descriptor that must be under the limit (a held one: numbers freed
 * since it was made lie below it), or 0. (The limit bounds numbers, not
 * a count: a free number below it is what the next open gets.) */
struct at_limit {
    struct rlimit old;
    int fill[64];
    int nfill;
};

/* A copy of the one in force: a test that fails under it (cmocka jumps
 * out of its frame) leaves it to its teardown (limit_lift), so that the
 * next test does not run at the limit. */
static struct at_limit limit_in_force;
static bool limit_is_set;

__attribute__((unused)) static void limit_set(struct at_limit *l, int top)
{
    l->nfill = 0;
    for (int fd; (fd = lowest_free_fd()) < top;) {
        assert_true(l->nfill < 64);
        l->fill[l->nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_int_equal(l->fill[l->nfill++], fd);
    }
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &l->old), 0);
    limit_in_force = *l;
    limit_is_set = true;
    struct rlimit low = {.rlim_cur = (rlim_t)lowest_free_fd(),
                         .rlim_max = l->old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    int p[2];
    assert_int_equal(pipe(p), -1); /* really out of descriptors */
    assert_int_equal(errno, EMFILE);
}

__attribute__((unused)) static void limit_restore(struct at_limit *l)
{
    limit_is_set = false;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &l->old), 0);
    for (int i = 0; i < l->nfill; i++)
        close(l->fill[i]);
}

/* For a teardown: the limit a failed test left in force, lifted. */
__attribute__((unused)) static void limit_lift(void)
{
    if (limit_is_set)
        limit_restore(&limit_in_force);
}

/* The process's sockets connected to the address of peer's own end (a
 * socket of the test): the other end's, when it is a process fd, and any
 * a backend keeps for it; one past the highest number in *top (0: none).
 * Up to the soft limit (valgrind's own descriptors sit above it). */
__attribute__((unused)) static int fds_connected_to(int peer, int *top)
{
    struct sockaddr_storage me, other;
    socklen_t len = sizeof(me);
    assert_int_equal(getsockname(peer, (struct sockaddr *)&me, &len), 0);
    struct rlimit lim;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &lim), 0);
    int n = 0, end = lim.rlim_cur < 4096 ? (int)lim.rlim_cur : 4096;
    *top = 0;
    for (int fd = 0; fd < end; fd++) {
        socklen_t olen = sizeof(other);
        if (fd != peer && getpeername(fd, (struct sockaddr *)&other, &olen) == 0 &&
            olen == len && memcmp(&other, &me, len) == 0) {
            n++;
            *top = fd + 1;
        }
    }
    return n;
}

#endif
