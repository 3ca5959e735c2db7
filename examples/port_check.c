/* port_check: which TCP ports of a host accept connections.
 *
 *   port_check [--backend=uring|epoll|epoll-lt] [--timeout=MS] [--inflight=N]
 *              HOST FIRST[-LAST]
 *
 * Prints one line per port, in order: "PORT open", "PORT closed" (refused),
 * "PORT timeout" (no answer within --timeout, default 1000 ms: a filtering
 * firewall, or a listener whose backlog is full) or "PORT error: why".
 *
 * What it shows: the client side of the library, with no listener and no
 * server: one loop run by this thread, outbound streams with a connect
 * timeout (rs_stream_connect), at most --inflight (default 64) connects in
 * flight, and a loop that stops itself when the last one has closed.
 *
 * Build against an installed libringserve:
 *   cc -std=c11 port_check.c $(pkg-config --cflags --libs ringserve) -o port_check
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringserve/config.h>
#include <ringserve/loop.h>
#include <ringserve/stream.h>

struct check {
    struct rs_loop *loop;
    struct sockaddr_storage addr; /* the host; the port is set per connect */
    socklen_t addrlen;
    unsigned first, count, next, inflight, timeout_ms, max_inflight;
    int *result; /* per port: 0 open, else -errno */
};

/* One connect: which port, and where its result goes. */
struct probe {
    struct check *ck;
    unsigned i;
};

static void start_more(struct check *ck);

static void on_connect(struct rs_stream *s, int res)
{
    struct probe *p = rs_stream_data(s);
    p->ck->result[p->i] = res;
    if (res == 0)
        rs_stream_abort(s); /* open: that is all we wanted to know */
}

/* Nothing is expected, but a server that speaks first may send a banner. */
static void on_data(struct rs_stream *s, const uint8_t *bytes, uint32_t len, uint16_t bid)
{
    (void)bytes;
    (void)len;
    rs_stream_release(s, bid);
}

static void on_close(struct rs_stream *s, int reason)
{
    struct probe *p = rs_stream_data(s);
    struct check *ck = p->ck;
    (void)reason; /* the connect's result is what counts */
    free(p);
    ck->inflight--;
    start_more(ck);
}

static const struct rs_stream_cbs probe_cbs = {
    .on_data = on_data, .on_connect = on_connect, .on_close = on_close};

static void set_port(struct sockaddr_storage *ss, unsigned port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

static void start_more(struct check *ck)
{
    while (ck->next < ck->count && ck->inflight < ck->max_inflight) {
        unsigned i = ck->next++;
        struct probe *p = malloc(sizeof(*p));
        if (!p) {
            ck->result[i] = -ENOMEM;
            continue;
        }
        *p = (struct probe){.ck = ck, .i = i};
        set_port(&ck->addr, ck->first + i);
        /* The address is copied: the next connect may change it. */
        if (!rs_stream_connect(ck->loop, (struct sockaddr *)&ck->addr, ck->addrlen,
                               ck->timeout_ms, &probe_cbs, p)) {
            ck->result[i] = -errno;
            free(p);
            continue;
        }
        ck->inflight++;
    }
    if (ck->inflight == 0)
        rs_loop_stop(ck->loop); /* all done: rs_loop_run returns */
}

static int usage(void)
{
    fprintf(stderr, "usage: port_check [--backend=uring|epoll|epoll-lt] [--timeout=MS] "
                    "[--inflight=N] HOST FIRST[-LAST]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct check ck = {.timeout_ms = 1000, .max_inflight = 64};
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    cfg.verbose = -1; /* no start-up chatter: the output is the report */
    const char *backend = "uring";
    static const struct option opts[] = {{"backend", required_argument, NULL, 'b'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"inflight", required_argument, NULL, 'n'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'b')
            backend = optarg;
        else if (c == 't')
            ck.timeout_ms = (unsigned)atoi(optarg);
        else if (c == 'n' && atoi(optarg) > 0)
            ck.max_inflight = (unsigned)atoi(optarg);
        else
            return usage();
    }
    if (argc - optind != 2)
        return usage();
    unsigned last;
    int n = sscanf(argv[optind + 1], "%u-%u", &ck.first, &last);
    if (n < 1 || ck.first > 65535 || (n == 2 && (last < ck.first || last > 65535)))
        return usage();
    ck.count = (n == 2 ? last : ck.first) - ck.first + 1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int gai = getaddrinfo(argv[optind], NULL, &hints, &ai);
    if (gai != 0) {
        fprintf(stderr, "port_check: %s: %s\n", argv[optind], gai_strerror(gai));
        return 2;
    }
    memcpy(&ck.addr, ai->ai_addr, ai->ai_addrlen);
    ck.addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    char err[256] = "out of memory";
    cfg.backend = strncmp(backend, "epoll", 5) == 0 ? "epoll" : backend;
    if (strcmp(backend, "epoll-lt") == 0 &&
        rs_config_set_option(&cfg, "epoll-mode", "lt", err, sizeof(err)) < 0) {
        fprintf(stderr, "port_check: %s\n", err);
        return 2;
    }
    ck.result = calloc(ck.count, sizeof(*ck.result));
    int rc = ck.result ? rs_loop_new(&cfg, &ck.loop, err, sizeof(err)) : -ENOMEM;
    if (rc == -ENOSYS) {
        fprintf(stderr, "port_check: backend %s is unavailable: %s\n", backend, err);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "port_check: %s: %s\n", backend, err);
        return 1;
    }
    start_more(&ck);
    rc = rs_loop_run(ck.loop);
    rs_loop_destroy(ck.loop);
    for (unsigned i = 0; rc == 0 && i < ck.count; i++) {
        int r = ck.result[i];
        const char *what = r == 0               ? "open"
                           : r == -ECONNREFUSED ? "closed"
                           : r == -ETIMEDOUT    ? "timeout"
                                                : NULL;
        if (what)
            printf("%u %s\n", ck.first + i, what);
        else
            printf("%u error: %s\n", ck.first + i, strerror(-r));
    }
    free(ck.result);
    return rc < 0 ? 1 : 0;
}
