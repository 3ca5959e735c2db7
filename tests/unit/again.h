/* Blocking calls with a timeout, made again after EINTR. A stop and a
 * continue of the process (SIGSTOP, tests/tools/freezer.py, a debugger)
 * end poll(2) with a timeout, and recv(2) on a socket with SO_RCVTIMEO,
 * with EINTR even without a handler (signal(7)): nothing went wrong, and
 * a test must not fail for it. Made again with the whole timeout, which
 * is a hang guard wherever these are used. */
#ifndef RS_TESTS_AGAIN_H
#define RS_TESTS_AGAIN_H

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

__attribute__((unused)) static int poll_again(struct pollfd *p, nfds_t n, int ms)
{
    int r;
    while ((r = poll(p, n, ms)) < 0 && errno == EINTR)
        ;
    return r;
}

__attribute__((unused)) static ssize_t recv_again(int fd, void *buf, size_t len,
                                                  int flags)
{
    ssize_t r;
    while ((r = recv(fd, buf, len, flags)) < 0 && errno == EINTR)
        ;
    return r;
}

#endif
