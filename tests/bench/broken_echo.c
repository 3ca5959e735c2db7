/* broken_echo: a small echo server that breaks on purpose, to prove that
 * ringbench notices. It also speaks discard and chargen so those modes of
 * ringbench have something to talk to.
 *
 *   broken_echo [--listen=HOST:PORT] [--proto=echo|discard|chargen]
 *               [--fault=none|flip|drop|add|close|swallow] [--after=N] [--chunk=N]
 *               [--every=M] [--fault-conn=K]
 *
 * Faults hit the echo stream of every connection (or only the K-th accepted,
 * counting from 0) at stream offset N (default 1000):
 *   flip   the byte at offset N is inverted
 *   drop   the bytes [N, N + chunk) are not echoed (chunk default 100)
 *   add    one extra byte is echoed before offset N
 *   close  the connection is closed once N bytes were echoed
 *   swallow  every M-th message of --chunk bytes (default M 1000) is not
 *          echoed at all: a server that loses one message now and then
 *
 * With port 0 it prints the chosen port on stdout, one line, once listening.
 * Single-threaded, level-triggered epoll, one buffer per connection: reading
 * stops while echoed bytes wait to be sent. Simplicity over speed. */
#include "bench_pattern.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536

enum fault { F_NONE, F_FLIP, F_DROP, F_ADD, F_CLOSE, F_SWALLOW };
enum proto { P_ECHO, P_DISCARD, P_CHARGEN };

struct bconn {
    int fd;
    bool faulty;
    uint64_t in_off;  /* stream offset of the next byte read */
    uint64_t out_off; /* chargen: stream offset of the next byte written */
    size_t len, pos;  /* pending output in buf[pos..len) */
    uint8_t buf[2 * BUF + 1];
};

static enum fault fault = F_NONE;
static enum proto proto = P_ECHO;
static uint64_t after = 1000, chunk = 100, every = 1000;
static long fault_conn = -1;

static void die(const char *what)
{
    fprintf(stderr, "broken_echo: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void bconn_close(int ep, struct bconn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Copy n received bytes at stream offset c->in_off into the output buffer,
 * applying the fault. Returns false when the connection must close now. */
static bool take(struct bconn *c, const uint8_t *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t off = c->in_off + i;
        uint8_t b = in[i];
        if (c->faulty && off == after) {
            switch (fault) {
            case F_FLIP:
                b ^= 0xff;
                break;
            case F_ADD:
                c->buf[c->len++] = (uint8_t)(b ^ 0x5a);
                break;
            case F_CLOSE:
                c->in_off += i;
                return false;
            default:
                break;
            }
        }
        if (c->faulty && fault == F_DROP && off >= after && off < after + chunk)
            continue;
        if (c->faulty && fault == F_SWALLOW && (off / chunk + 1) % every == 0)
            continue;
        c->buf[c->len++] = b;
    }
    c->in_off += n;
    return true;
}

/* Send what is pending; false on a fatal error. */
static bool flush(struct bconn *c)
{
    while (c->pos < c->len) {
        ssize_t n = send(c->fd, c->buf + c->pos, c->len - c->pos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK;
        }
        c->pos += (size_t)n;
    }
    c->pos = c->len = 0;
    return true;
}

static void set_events(int ep, struct bconn *c)
{
    uint32_t ev;
    if (proto == P_CHARGEN)
        ev = EPOLLOUT | EPOLLIN;
    else
        ev = c->pos < c->len ? EPOLLOUT : EPOLLIN;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
}

static void on_conn(int ep, struct bconn *c, uint32_t events)
{
    static uint8_t in[BUF];
    if (proto == P_CHARGEN) {
        if (events & (EPOLLERR | EPOLLHUP | EPOLLIN)) {
            ssize_t n = recv(c->fd, in, sizeof(in), 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                bconn_close(ep, c);
                return;
            }
        }
        if (c->pos == c->len) {
            c->pos = 0;
            c->len = BUF;
            /* Line 0 starts with '!' as in RFC 864's example. */
            bench_chargen_fill(1, c->out_off, c->buf, BUF);
            c->out_off += BUF;
        }
        if (!flush(c))
            bconn_close(ep, c);
        return;
    }
    if ((events & EPOLLOUT) && !flush(c)) {
        bconn_close(ep, c);
        return;
    }
    if (c->pos == c->len && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        ssize_t n = recv(c->fd, in, sizeof(in), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            bconn_close(ep, c);
            return;
        }
        if (proto == P_DISCARD)
            return;
        if (!take(c, in, (size_t)n)) {
            flush(c); /* what came before the fault, best effort */
            bconn_close(ep, c);
            return;
        }
        if (!flush(c)) {
            bconn_close(ep, c);
            return;
        }
    }
    set_events(ep, c);
}

static void usage_fail(const char *arg)
{
    fprintf(stderr,
            "broken_echo: bad argument '%s'\nusage: broken_echo [--listen=HOST:PORT] "
            "[--proto=echo|discard|chargen] [--fault=none|flip|drop|add|close|swallow] "
            "[--after=N] [--chunk=N] [--every=M] [--fault-conn=K]\n",
            arg);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *listen_arg = "127.0.0.1:0";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--listen=", 9) == 0) {
            listen_arg = a + 9;
        } else if (strncmp(a, "--fault=", 8) == 0) {
            static const char *const names[] = {"none", "flip",  "drop",
                                                "add",  "close", "swallow"};
            unsigned f;
            for (f = 0; f < 6 && strcmp(a + 8, names[f]) != 0; f++)
                ;
            if (f == 6)
                usage_fail(a);
            fault = (enum fault)f;
        } else if (strncmp(a, "--proto=", 8) == 0) {
            if (strcmp(a + 8, "echo") == 0)
                proto = P_ECHO;
            else if (strcmp(a + 8, "discard") == 0)
                proto = P_DISCARD;
            else if (strcmp(a + 8, "chargen") == 0)
                proto = P_CHARGEN;
            else
                usage_fail(a);
        } else if (strncmp(a, "--after=", 8) == 0) {
            after = strtoull(a + 8, NULL, 10);
        } else if (strncmp(a, "--chunk=", 8) == 0) {
            chunk = strtoull(a + 8, NULL, 10);
            if (chunk == 0)
                usage_fail(a);
        } else if (strncmp(a, "--every=", 8) == 0) {
            every = strtoull(a + 8, NULL, 10);
            if (every == 0)
                usage_fail(a);
        } else if (strncmp(a, "--fault-conn=", 13) == 0) {
            fault_conn = strtol(a + 13, NULL, 10);
        } else {
            usage_fail(a);
        }
    }
    char host[256];
    const char *colon = strrchr(listen_arg, ':');
    if (!colon || (size_t)(colon - listen_arg) >= sizeof(host))
        usage_fail(listen_arg);
    memcpy(host, listen_arg, (size_t)(colon - listen_arg));
    host[colon - listen_arg] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        usage_fail(listen_arg);

    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, res->ai_addr, res->ai_addrlen) < 0)
        die("bind");
    freeaddrinfo(res);
    if (listen(lfd, 1024) < 0)
        die("listen");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(lfd, (struct sockaddr *)&ss, &sl);
    unsigned port =
        ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
    printf("%u\n", port);
    fflush(stdout);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    long accepted = 0;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr) {
                on_conn(ep, evs[i].data.ptr, evs[i].events);
                continue;
            }
            for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                    break;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                struct bconn *c = calloc(1, sizeof(*c));
                if (!c) {
                    close(fd);
                    continue;
                }
                c->fd = fd;
                c->faulty = fault != F_NONE && (fault_conn < 0 || fault_conn == accepted);
                accepted++;
                struct epoll_event e = {.events = proto == P_CHARGEN ? EPOLLIN | EPOLLOUT
                                                                     : EPOLLIN,
                                        .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
            }
        }
    }
}
