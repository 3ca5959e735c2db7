/* ringbench's command line: the --help text, each option's parsing and
 * checks (sizes, durations, the target address, --request's escapes), and
 * the checks across options, into struct opts. ringbench.c runs what it
 * describes. */
#include "ringbench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const rb_mode_names[NMODES] = {"echo", "discard", "chargen", "request"};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: ringbench [options]\n"
        "Drive a TCP echo (or discard/chargen) server and verify every byte.\n"
        "\n"
        "  --connect=HOST:PORT    server address (default 127.0.0.1:7080; IPv6 as "
        "[::1]:PORT)\n"
        "  --allow-remote         permit a non-loopback address\n"
        "  --mode=M               echo (default), discard, chargen or request\n"
        "  --request=TEXT         request mode: the request sent as each message\n"
        "                         (\\r \\n \\t \\\\ decoded), e.g. an HTTP/1.1 GET\n"
        "  --reply-size=B         request mode: bytes of each reply, which must start\n"
        "                         with \"HTTP/1.1 2\" (a 2xx answer)\n"
        "  --connections=N        concurrent connections (default 1)\n"
        "  --threads=N            client threads, each with its own epoll loop "
        "(default 1)\n"
        "  --processes=N          N processes of --threads each, one merged report: "
        "more\n"
        "                         connections than one process's RLIMIT_NOFILE "
        "(default 1)\n"
        "  --size=B|MIN-MAX       message size in bytes, K/M suffixes (default 64)\n"
        "  --pipeline=K           messages in flight per connection (default 1)\n"
        "  --duration=S           measured seconds (default 10); a window with\n"
        "                         nothing measured for a connection runs on until\n"
        "                         its first reply\n"
        "                         (at most --stall-timeout more)\n"
        "  --warmup=S             unmeasured seconds first (default 1; 0 with "
        "--rounds)\n"
        "  --rounds=N             fixed work: N measured round trips per connection\n"
        "  --rate=R               open loop: R messages/s in total, latency from the\n"
        "                         intended send time\n"
        "  --source-addrs=N       bind connections to 127.0.0.1..127.0.0.N\n"
        "  --stall-timeout=S      a connection waiting on the server that receives\n"
        "                         nothing this long is a stall (default 1): counted,\n"
        "                         named, and the run fails (a --duration window\n"
        "                         ends once every connection has stalled)\n"
        "  --server-pid=PID       also report the server's CPU, RSS and syscalls\n"
        "  --json                 print one JSON object instead of text\n"
        "  --quiet                no progress line, no notes\n"
        "  --help, --version\n"
        "\n"
        "Exit status: 0 success, 1 verification or connection failure, 2 usage "
        "error,\n130 interrupted.\n");
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("ringbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    exit(2);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s == '-' || *s == '+')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static uint64_t opt_uint(const char *name, const char *s, uint64_t lo, uint64_t hi)
{
    uint64_t v;
    if (!parse_u64(s, &v) || v < lo || v > hi)
        usage_error("--%s: expected an integer from %" PRIu64 " to %" PRIu64 ", got '%s'",
                    name, lo, hi, s);
    return v;
}

/* A non-negative decimal number; `what` names it in the error message. */
static double opt_number(const char *name, const char *what, const char *s, double lo,
                         double hi, bool s_suffix)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (s_suffix && *end == 's' && end[1] == '\0')
        end++;
    if (!*s || errno || *end || !isfinite(v) || v < lo || v > hi)
        usage_error("--%s: expected %s from %g to %g, got '%s'", name, what, lo, hi, s);
    return v;
}

static double opt_seconds(const char *name, const char *s, double lo, double hi)
{
    return opt_number(name, "seconds", s, lo, hi, true);
}

/* "4096", "4K", "1M" (binary multiples). */
static bool parse_size(const char *s, size_t n, uint64_t *out)
{
    char buf[32];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    uint64_t mul = 1;
    char last = buf[n - 1];
    if (last == 'k' || last == 'K')
        mul = 1024;
    else if (last == 'm' || last == 'M')
        mul = 1024 * 1024;
    if (mul > 1)
        buf[--n] = '\0';
    uint64_t v;
    if (!parse_u64(buf, &v) || v > MAX_SIZE / mul)
        return false;
    *out = v * mul;
    return true;
}

static void opt_size(struct opts *o, const char *s)
{
    const char *dash = strchr(s, '-');
    bool ok;
    if (dash) {
        ok = parse_size(s, (size_t)(dash - s), &o->size_min) &&
             parse_size(dash + 1, strlen(dash + 1), &o->size_max);
    } else {
        ok = parse_size(s, strlen(s), &o->size_min);
        o->size_max = o->size_min;
    }
    if (!ok || o->size_min < 1 || o->size_max > MAX_SIZE || o->size_min > o->size_max)
        usage_error("--size: expected BYTES or MIN-MAX from 1 to %llu, K/M suffixes "
                    "allowed, got '%s'",
                    MAX_SIZE, s);
}

/* --request=TEXT, with \r \n \t \\ decoded: HTTP needs CR LF. */
static void opt_request(struct opts *o, const char *s)
{
    size_t k = 0;
    for (size_t i = 0; s[i]; i++) {
        char ch = s[i];
        if (ch == '\\') {
            char e = s[++i];
            if (e == 'r')
                ch = '\r';
            else if (e == 'n')
                ch = '\n';
            else if (e == 't')
                ch = '\t';
            else if (e == '\\')
                ch = '\\';
            else
                usage_error("--request: unknown escape '\\%c' (\\r \\n \\t \\\\)",
                            e ? e : '0');
        }
        if (k == MAX_REQUEST)
            usage_error("--request: longer than %u bytes", MAX_REQUEST);
        o->request[k++] = ch;
    }
    if (k == 0)
        usage_error("--request: empty");
    o->request_len = k;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
        return true;
    return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
}

static void opt_connect(struct opts *o, const char *s)
{
    char host[256];
    const char *port;
    snprintf(o->target, sizeof(o->target), "%s", s);
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
            usage_error("--connect: expected HOST:PORT or [IPv6]:PORT, got '%s'", s);
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s || (size_t)(colon - s) >= sizeof(host) ||
            memchr(s, ':', (size_t)(colon - s)))
            usage_error("--connect: expected HOST:PORT or [IPv6]:PORT, got '%s'", s);
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    uint64_t p;
    if (!parse_u64(port, &p) || p < 1 || p > 65535)
        usage_error("--connect: port must be from 1 to 65535, got '%s'", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res)
        usage_error("--connect: cannot resolve '%s': %s", host, gai_strerror(rc));
    memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
    o->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

enum {
    OPT_CONNECT = 256,
    OPT_CONNECTIONS,
    OPT_SIZE,
    OPT_PIPELINE,
    OPT_DURATION,
    OPT_WARMUP,
    OPT_ROUNDS,
    OPT_RATE,
    OPT_SOURCE_ADDRS,
    OPT_THREADS,
    OPT_JSON,
    OPT_SERVER_PID,
    OPT_HELP,
    OPT_VERSION,
    OPT_QUIET,
    OPT_MODE,
    OPT_STALL,
    OPT_ALLOW_REMOTE,
    OPT_PROCESSES,
    OPT_REQUEST,
    OPT_REPLY_SIZE,
};

static const struct option long_opts[] = {
    {"connect", required_argument, NULL, OPT_CONNECT},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"size", required_argument, NULL, OPT_SIZE},
    {"pipeline", required_argument, NULL, OPT_PIPELINE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"rounds", required_argument, NULL, OPT_ROUNDS},
    {"rate", required_argument, NULL, OPT_RATE},
    {"source-addrs", required_argument, NULL, OPT_SOURCE_ADDRS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"json", no_argument, NULL, OPT_JSON},
    {"server-pid", required_argument, NULL, OPT_SERVER_PID},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"mode", required_argument, NULL, OPT_MODE},
    {"stall-timeout", required_argument, NULL, OPT_STALL},
    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
    {"processes", required_argument, NULL, OPT_PROCESSES},
    {"request", required_argument, NULL, OPT_REQUEST},
    {"reply-size", required_argument, NULL, OPT_REPLY_SIZE},
    {NULL, 0, NULL, 0},
};

void rb_parse_opts(struct opts *o, int argc, char **argv, uint64_t max_conns)
{
    *o = (struct opts){
        .connections = 1,
        .size_min = 64,
        .size_max = 64,
        .pipeline = 1,
        .duration = 10,
        .warmup = 1,
        .stall_timeout = 1,
        .threads = 1,
        .processes = 1,
        .mode = MODE_ECHO,
    };
    const char *connect_arg = "127.0.0.1:7080";
    opterr = 0;
    for (;;) {
        int idx = 0;
        int c = getopt_long(argc, argv, ":", long_opts, &idx);
        if (c == -1)
            break;
        switch (c) {
        case OPT_CONNECT:
            connect_arg = optarg;
            break;
        case OPT_CONNECTIONS:
            o->connections = (uint32_t)opt_uint("connections", optarg, 1, 10000000);
            break;
        case OPT_SIZE:
            opt_size(o, optarg);
            o->size_set = true;
            break;
        case OPT_REQUEST:
            opt_request(o, optarg);
            break;
        case OPT_REPLY_SIZE:
            o->reply_size = opt_uint("reply-size", optarg, REPLY_HEAD_N, MAX_SIZE);
            break;
        case OPT_PIPELINE:
            o->pipeline = (uint32_t)opt_uint("pipeline", optarg, 1, MAX_PIPELINE);
            break;
        case OPT_DURATION:
            o->duration = opt_seconds("duration", optarg, 0.001, 1e6);
            o->duration_set = true;
            break;
        case OPT_WARMUP:
            o->warmup = opt_seconds("warmup", optarg, 0, 1e6);
            o->warmup_set = true;
            break;
        case OPT_ROUNDS:
            o->rounds = opt_uint("rounds", optarg, 1, UINT64_MAX / MAX_SIZE);
            break;
        case OPT_RATE:
            o->rate =
                opt_number("rate", "messages per second", optarg, 0.001, 1e9, false);
            break;
        case OPT_SOURCE_ADDRS:
            o->source_addrs = (uint32_t)opt_uint("source-addrs", optarg, 1, 254);
            break;
        case OPT_THREADS:
            o->threads = (uint32_t)opt_uint("threads", optarg, 1, MAX_THREADS);
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_SERVER_PID:
            o->server_pid = (long)opt_uint("server-pid", optarg, 1, INT_MAX);
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        case OPT_VERSION:
            printf("ringbench %s\n", RB_VERSION);
            exit(0);
        case OPT_QUIET:
            o->quiet = true;
            break;
        case OPT_MODE: {
            bool found = false;
            for (unsigned m = 0; m < NMODES; m++)
                if (strcmp(optarg, rb_mode_names[m]) == 0) {
                    o->mode = (enum mode)m;
                    found = true;
                }
            if (!found)
                usage_error(
                    "--mode: expected echo, discard, chargen or request, got '%s'",
                    optarg);
            break;
        }
        case OPT_STALL:
            o->stall_timeout = opt_seconds("stall-timeout", optarg, 0.01, 1e6);
            break;
        case OPT_ALLOW_REMOTE:
            o->allow_remote = true;
            break;
        case OPT_PROCESSES:
            o->processes = (uint32_t)opt_uint("processes", optarg, 1, MAX_PROCESSES);
            break;
        case ':':
            usage_error("option '%s' needs a value", argv[optind - 1]);
            break;
        default:
            usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        usage_error("unexpected argument '%s'", argv[optind]);
    if (o->rounds && o->duration_set)
        usage_error("--rounds and --duration: give one or the other");
    if (o->rounds && !o->warmup_set)
        o->warmup = 0;
    if (o->rate > 0 && !round_trips(o))
        usage_error("--rate: only with --mode=echo or request");
    if ((o->mode == MODE_REQUEST) != (o->request_len != 0) ||
        (o->mode == MODE_REQUEST) != (o->reply_size != 0))
        usage_error(
            "--mode=request needs --request and --reply-size (and only it takes them)");
    if (o->mode == MODE_REQUEST) {
        if (o->size_set)
            usage_error(
                "--size: not with --mode=request (the request's length is its size)");
        o->size_min = o->size_max = o->request_len;
    }
    if (o->processes > o->connections)
        o->processes = o->connections;
    uint64_t per_proc = ((uint64_t)o->connections + o->processes - 1) / o->processes;
    if (per_proc > max_conns)
        usage_error("--connections=%u: %" PRIu64 " per process, but RLIMIT_NOFILE allows "
                    "%" PRIu64 " (add --processes=%" PRIu64 ")",
                    o->connections, per_proc, max_conns,
                    ((uint64_t)o->connections + max_conns - 1) / max_conns);
    if (o->threads > per_proc)
        o->threads = (uint32_t)per_proc;
    opt_connect(o, connect_arg);
    if (!o->allow_remote && !is_loopback(&o->addr))
        usage_error("--connect: %s is not a loopback address; load goes to loopback only "
                    "unless --allow-remote is given",
                    o->target);
    if (o->source_addrs && o->addr.ss_family != AF_INET)
        usage_error("--source-addrs: needs an IPv4 --connect address");
    if (o->server_pid) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%ld/stat", o->server_pid);
        if (access(path, R_OK) != 0)
            usage_error("--server-pid: no process %ld", o->server_pid);
    }
}
