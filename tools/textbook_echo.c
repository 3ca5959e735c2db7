/* textbook_echo: the edge-triggered epoll echo server from the textbook.
 *
 * The reference point tools/compare measures ringserve against: one file,
 * the obvious code, the way most epoll tutorials write it. One thread, one
 * epoll set, every socket registered once with EPOLLIN|EPOLLOUT|EPOLLET;
 * on each event, recv() until EAGAIN and send() each chunk straight back.
 * Nothing clever: no buffer pool, no batching, no fairness budget, no
 * limits. The one thing it does that some tutorials forget is to keep what
 * a short send() left over and finish it on EPOLLOUT (and not read more
 * meanwhile), so that ringbench's byte-for-byte check passes at any size.
 * Sockets get TCP_NODELAY, as ringserve's do.
 *
 *   textbook_echo PORT      listen on 127.0.0.1:PORT (0 picks one); prints
 *                           "textbook_echo: listening on 127.0.0.1:N"
 *
 * SIGINT/SIGTERM exit 0. Not a server to deploy.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define BUF_SIZE   16384

struct conn {
    char *out; /* bytes a short send left behind */
    size_t out_len, out_off;
};

static struct conn *conns; /* indexed by fd */
static int nconns_cap;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void close_conn(int fd)
{
    free(conns[fd].out);
    memset(&conns[fd], 0, sizeof(conns[fd]));
    close(fd); /* also removes it from the epoll set */
}

/* Send what is pending. 1: all sent, 0: EAGAIN (wait for EPOLLOUT), -1: error. */
static int flush_out(int fd)
{
    struct conn *c = &conns[fd];
    while (c->out_off < c->out_len) {
        ssize_t n = send(fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    return 1;
}

/* recv until EAGAIN, echoing each chunk. -1: close the connection. */
static int echo(int fd)
{
    static char buf[BUF_SIZE];
    struct conn *c = &conns[fd];
    for (;;) {
        if (c->out_len > 0) { /* a short send is pending: EPOLLOUT resumes */
            int rc = flush_out(fd);
            if (rc <= 0)
                return rc;
        }
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0)
            return -1;
        if (n < 0)
            return errno == EAGAIN ? 0 : -1;
        ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN)
            return -1;
        if (w < 0)
            w = 0;
        if (w < n) {
            char *p = realloc(c->out, (size_t)(n - w));
            if (!p)
                return -1;
            memcpy(p, buf + w, (size_t)(n - w));
            c->out = p;
            c->out_len = (size_t)(n - w);
            c->out_off = 0;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: textbook_echo PORT\n");
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "textbook_echo: bad port '%s'\n", argv[1]);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) < 0) {
        perror("textbook_echo: listen");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("textbook_echo: listening on 127.0.0.1:%u\n", ntohs(sin.sin_port));
    fflush(stdout);

    struct epoll_event events[MAX_EVENTS];
    while (!stop) {
        int n = epoll_wait(ep, events, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("textbook_echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >=
                       0) {
                    if (cfd >= nconns_cap) {
                        int cap = cfd * 2 + 64;
                        struct conn *p = realloc(conns, (size_t)cap * sizeof(*p));
                        if (!p) {
                            close(cfd);
                            continue;
                        }
                        memset(p + nconns_cap, 0,
                               (size_t)(cap - nconns_cap) * sizeof(*p));
                        conns = p;
                        nconns_cap = cap;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                              .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            if (echo(fd) < 0)
                close_conn(fd);
        }
    }
    for (int fd = 0; fd < nconns_cap; fd++)
        free(conns[fd].out);
    free(conns);
    close(ep);
    close(lfd);
    return 0;
}
