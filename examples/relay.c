/* relay: every connection forwarded to one upstream, both ways.
 *
 *   relay --to=HOST:PORT [--listen=HOST:PORT] [--backend=uring|epoll|epoll-lt]
 *         [--threads=N]
 *
 * What it shows: two sockets joined, a server's accepted stream and an
 * outbound one (rs_stream_connect), by two relays (rs_stream_relay): the
 * library itself writes what one socket receives to the other, from the
 * very buffer the kernel filled (no copy, no callback per chunk). The
 * relays keep what a hand-written forwarder would: a stream that has too
 * much queued stops the other side's reading until it drained
 * (backpressure: memory per pair stays bounded), and an EOF on one side
 * becomes a shutdown on the other once its queue is sent. What is left to
 * the program is the pair's life: an error on one side resets the other,
 * so a reset stays a reset, and the pair's state is freed when both
 * streams have closed, in whichever order that happens.
 *
 * Build against an installed libringserve:
 *   cc -std=c11 relay.c $(pkg-config --cflags --libs ringserve) -o relay
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringserve/config.h>
#include <ringserve/loop.h>
#include <ringserve/protocol.h>
#include <ringserve/server.h>
#include <ringserve/stream.h>

#define CONNECT_TIMEOUT_MS 3000

/* The program's options: set once by main, read by every loop. */
static struct {
    struct sockaddr_storage to;
    socklen_t tolen;
} opt;

struct pair {
    struct rs_stream *client, *upstream; /* NULL once closed */
};

static struct rs_stream *other(struct rs_stream *s)
{
    struct pair *p = rs_stream_data(s);
    return s == p->client ? p->upstream : p->client;
}

/* Only once a relay ended: the other side was freed, and this one is
 * being closed (relay_close): what still arrives goes nowhere. */
static void relay_data(struct rs_stream *s, const uint8_t *bytes, uint32_t len,
                       uint16_t bid)
{
    (void)bytes;
    (void)len;
    rs_stream_release(s, bid);
}

static void relay_close(struct rs_stream *s, int reason)
{
    struct pair *p = rs_stream_data(s);
    struct rs_stream *to = other(s);
    if (s == p->client)
        p->client = NULL;
    else
        p->upstream = NULL;
    if (to && rs_stream_is_open(to)) {
        if (reason < 0)
            rs_stream_reset_reason(to, reason); /* a reset stays a reset */
        else
            rs_stream_close(to);
    }
    if (!p->client && !p->upstream)
        free(p);
}

static void relay_connected(struct rs_stream *s, int res)
{
    (void)s;
    /* A failed connect closes the upstream stream: relay_close resets the
     * client. */
    if (res < 0)
        fprintf(stderr, "relay: upstream: %s\n", strerror(-res));
}

static void relay_open(struct rs_stream *client);

/* Both streams of a pair get the same callbacks: accepted ones from the
 * protocol, outbound ones from relay_open. No on_eof: a relayed stream's
 * EOF is forwarded to the other side. */
static const struct rs_protocol relay_proto = {
    .name = "relay",
    .cbs = {.on_data = relay_data,
            .on_connect = relay_connected,
            .on_close = relay_close},
    .on_open = relay_open,
    .descriptors_per_conn = 2,
};

static void relay_open(struct rs_stream *client)
{
    struct pair *p = calloc(1, sizeof(*p));
    if (!p) {
        rs_stream_abort_reason(client, -ENOMEM);
        return;
    }
    rs_stream_set_data(client, p);
    p->client = client;
    /* What the client sends before the upstream is up waits in the
     * upstream stream's queue. */
    p->upstream = rs_stream_connect(rs_stream_loop(client), (struct sockaddr *)&opt.to,
                                    opt.tolen, CONNECT_TIMEOUT_MS, &relay_proto.cbs, p);
    if (!p->upstream) {
        rs_stream_abort_reason(client, -errno);
        return;
    }
    /* Each side's bytes to the other, by the library. Two fresh streams
     * of one loop: neither call can be refused. */
    rs_stream_relay(client, p->upstream, NULL);
    rs_stream_relay(p->upstream, client, NULL);
}

/* "HOST:PORT" into host and port, split at the last colon ("[::1]:80"). */
static int split(const char *arg, char *host, size_t hostlen, const char **port)
{
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || (size_t)(colon - arg) >= hostlen)
        return -1;
    size_t n = (size_t)(colon - arg);
    if (arg[0] == '[' && arg[n - 1] == ']')
        snprintf(host, hostlen, "%.*s", (int)n - 2, arg + 1);
    else
        snprintf(host, hostlen, "%.*s", (int)n, arg);
    *port = colon + 1;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: relay --to=HOST:PORT [--listen=HOST:PORT] "
                    "[--backend=uring|epoll|epoll-lt] [--threads=N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    static const struct option opts[] = {{"to", required_argument, NULL, 'o'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"backend", required_argument, NULL, 'b'},
                                         {"threads", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    const char *to = NULL, *port;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'o') {
            to = optarg;
        } else if (c == 'l') {
            if (split(optarg, cfg.listen_host, sizeof(cfg.listen_host), &port) < 0)
                return usage();
            cfg.listen_port = (uint16_t)atoi(port);
        } else if (c == 'b') {
            char err[200];
            cfg.backend = strcmp(optarg, "uring") == 0 ? "uring" : "epoll";
            if (strcmp(optarg, "epoll-lt") == 0 &&
                rs_config_set_option(&cfg, "epoll-mode", "lt", err, sizeof(err)) < 0)
                return usage();
        } else if (c == 't') {
            cfg.threads = (uint32_t)atoi(optarg);
        } else {
            return usage();
        }
    }
    char host[256];
    if (!to || optind < argc || split(to, host, sizeof(host), &port) < 0)
        return usage();
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "relay: %s: %s\n", to, gai_strerror(gai));
        return 2;
    }
    memcpy(&opt.to, ai->ai_addr, ai->ai_addrlen);
    opt.tolen = ai->ai_addrlen;
    freeaddrinfo(ai);
    cfg.proto = &relay_proto;
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct rs_server *srv;
    int rc = rs_server_start(&cfg, &srv);
    if (rc < 0)
        return rc == -EINVAL ? 2 : 1;
    while (rs_server_wait(srv, 100) == -ETIMEDOUT) {
        struct timespec now = {0, 0};
        if (sigtimedwait(&sigs, NULL, &now) > 0)
            rs_server_stop(srv);
    }
    return rs_server_destroy(srv, NULL) < 0 ? 1 : 0;
}
