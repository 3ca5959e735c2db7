#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"
#include "proxy.h"
#include "rs_build.h"

void rs_config_defaults(struct rs_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->backend = RS_BACKEND_AUTO;
    cfg->epoll_mode = RS_EPOLL_ET;
    strcpy(cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 7080;
    cfg->max_pending = 1u << 20;
    cfg->uring_features = "default";
    cfg->buffers = 512;
    cfg->buffer_size = 16384;
    cfg->zc_threshold = 16384;
    cfg->sqpoll_idle_ms = 1000;
    cfg->ring_entries = 1024;
    cfg->drain_timeout_ms = 2000;
    cfg->threads = 1;
    cfg->nodelay = true;
    cfg->protocol = "echo";
    cfg->fs_threads = 4;
    cfg->open_file_cache = 64;
    cfg->open_file_cache_valid_ms = 1000;
    cfg->connect_timeout_ms = 3000;
    cfg->header_timeout_ms = 60000;
}

void rs_config_usage(FILE *out)
{
    fputs(
        "Usage: ringserve [OPTION]...\n"
        "A TCP echo server on io_uring completions or emulated epoll readiness.\n"
        "\n"
        "Backend:\n"
        "  --backend=auto|uring|epoll  IO backend (default auto: io_uring when the\n"
        "                              kernel allows it, else epoll)\n"
        "  --epoll-mode=et|lt          epoll notification: edge- or level-triggered\n"
        "                              (default et)\n"
        "  --uring-features=LIST       io_uring features: all, none, default, names,\n"
        "                              -name to remove; prefix auto- to drop what the\n"
        "                              kernel lacks instead of failing. Names:\n"
        "                              multishot-accept, multishot-recv, buf-ring,\n"
        "                              fixed-files, ring-fd, defer-taskrun, send-zc,\n"
        "                              sqpoll, bundle (default: all the kernel has,\n"
        "                              except sqpoll and bundle)\n"
        "  --buffers=COUNT             receive buffers per loop, a power of two\n"
        "                              (default 512)\n"
        "  --buffer-size=BYTES         bytes per receive buffer (default 16K)\n"
        "  --zc-threshold=BYTES        send_zc for sends of at least this (default 16K)\n"
        "  --zc-on-copy=plain|keep     when the kernel reports it copied a zero-copy\n"
        "                              send (always, to a loopback peer): plain sends\n"
        "                              on that connection from then on (default), or\n"
        "                              keep zero copy (to measure what it costs)\n"
        "  --sqpoll-idle=MS            SQPOLL thread idle time (default 1000)\n"
        "  --ring-entries=N            io_uring submission queue size, a power of two;\n"
        "                              the completion queue is 8x (default 1024)\n"
        "  --fs=pool|inline            epoll: file IO on worker threads (default), or\n"
        "                              in the loop, blocking it (to see the cost)\n"
        "  --fs-threads=N              epoll: file IO worker threads per loop, 1 to 64\n"
        "                              (default 4); io_uring does file IO natively\n"
        "  --sendfile=on|off           http: bodies over one buffer go from the file\n"
        "                              to the socket in the kernel (epoll: sendfile(2),\n"
        "                              io_uring: splice through a pipe; default on),\n"
        "                              or off: read into memory, then sent (a copy)\n"
        "  --open-file-cache=N         http: keep up to N files open per loop, with\n"
        "                              their statx (default 64; 0 = off); they count\n"
        "                              against the descriptor budget (--max-conns)\n"
        "  --open-file-cache-valid=SECONDS  http: re-check a cached file's path after\n"
        "                              this long; a file replaced, removed or changed\n"
        "                              is reopened (default 1; 0 = on every request)\n"
        "\n",
        out);
    /* Two strings: ISO C promises only 4,095 characters in one. */
    fputs(
        "Server:\n"
        "  --listen=HOST:PORT          address to listen on (default 127.0.0.1:7080;\n"
        "                              [::1]:PORT for IPv6; port 0 picks one)\n"
        "  --protocol=echo|discard|chargen|proxy|http  what to serve (default echo)\n"
        "  --root=DIR                  --protocol=http: the directory served\n"
        "  --header-timeout=SECONDS    http: a request head must be complete this\n"
        "                              long after the server is ready for it (the\n"
        "                              connection opened, or the response before\n"
        "                              queued), however it trickles in; else 408\n"
        "                              and close (default 60; decimals allowed;\n"
        "                              0 = none)\n"
        "  --upstream=HOST:PORT[,HOST:PORT...]  proxy: where to connect, round\n"
        "                              robin; a failed upstream is skipped for 2 s\n"
        "  --connect-timeout=MS        proxy: give up connecting after this long\n"
        "                              (default 3000; 0 = the kernel's own)\n"
        "  --threads=N                 event loops (default 1; 0 = one per online\n"
        "                              CPU); how connections reach them: --accept\n"
        "  --accept=auto|handoff|reuseport  with several loops: each loop its own\n"
        "                              SO_REUSEPORT listener, or loop 0 accepts and\n"
        "                              hands each connection to the loop with the most\n"
        "                              room (io_uring fixed-files, IORING_OP_MSG_RING);\n"
        "                              auto: handoff where possible (default)\n"
        "  --pin                       pin loop i to CPU i\n"
        "  --sched=auto|normal|batch   scheduling policy of the loop threads; batch\n"
        "                              (SCHED_BATCH) lets a woken loop wait for the\n"
        "                              running task instead of preempting it, so it\n"
        "                              wakes to bigger batches; auto (default) is\n"
        "                              batch while a loop has 4 or more connections,\n"
        "                              normal from 1 down (no latency lost at one)\n"
        "  --max-pending=BYTES         queued output per connection before reading\n"
        "                              pauses (default 1M)\n"
        "  --max-conns=N|max           connections per server; more are closed at\n"
        "                              once (default and max: what the backend can\n"
        "                              hold, stated at start-up as conn-limit; with a\n"
        "                              descriptor per connection the default keeps\n"
        "                              those the server uses and 64 more back)\n"
        "  --idle-timeout=SECONDS      close connections idle this long (default off)\n"
        "  --drain-timeout=MS          on SIGINT/SIGTERM, time to finish in-flight\n"
        "                              work; what is left is reset (default 2000;\n"
        "                              0: reset every connection at once)\n"
        "  --no-nodelay                leave Nagle's algorithm on (TCP_NODELAY off)\n"
        "\n",
        out);
    /* Two strings: C11 promises only 4095 characters per literal. */
    fputs("Statistics:\n"
          "  --stats-interval=SECONDS    also print a statistics line every SECONDS\n"
          "                              (decimals allowed, e.g. 0.5; default 0 = only\n"
          "                              the final line): round trips/s, bytes/s each\n"
          "                              way, completions per loop turn, epoll_wait or\n"
          "                              io_uring_enter calls/s, buffers lent, starved\n"
          "                              connections\n"
          "  --stats-format=text|json    every statistics line (interval and final) as\n"
          "                              text (default) or as one JSON object\n"
          "\n"
          "Other:\n"
          "  --probe                     print the kernel feature report and exit\n"
          "  --json                      with --probe: JSON output\n"
          "  -v, --verbose               more logging\n"
          "  -q, --quiet                 only errors and the final statistics\n"
          "  -V, --version               print the version and exit\n"
          "  -h, --help                  print this help and exit\n"
          "\n"
          "Sizes take K, M or G suffixes (powers of 1024). Exit status: 0 after\n"
          "SIGINT/SIGTERM, 1 on a runtime failure, 2 on a usage error.\n",
          out);
}

int rs_parse_size(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno)
        return errno == ERANGE ? -ERANGE : -EINVAL;
    unsigned shift = 0;
    if (*end) {
        switch (*end) {
        case 'k':
        case 'K':
            shift = 10;
            break;
        case 'm':
        case 'M':
            shift = 20;
            break;
        case 'g':
        case 'G':
            shift = 30;
            break;
        default:
            return -EINVAL;
        }
        end++;
        if (*end == 'i' && end[1] == 'B')
            end += 2;
        else if (*end == 'B')
            end++;
        if (*end)
            return -EINVAL;
    }
    if (v > (max >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

/* HOST:PORT, [V6]:PORT, or :PORT. */
static int parse_listen(struct rs_config *cfg, const char *s)
{
    const char *colon;
    const char *host = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (hlen >= sizeof(cfg->listen_host))
        return -EINVAL;
    uint64_t port;
    if (rs_parse_size(colon + 1, 65535, &port) < 0 || strpbrk(colon + 1, "kKmMgGB"))
        return -EINVAL;
    memcpy(cfg->listen_host, host, hlen);
    cfg->listen_host[hlen] = '\0';
    cfg->listen_port = (uint16_t)port;
    return 0;
}

static int bad(const char *opt, const char *val, const char *allowed)
{
    fprintf(stderr, "ringserve: invalid value '%s' for %s: expected %s\n", val, opt,
            allowed);
    fprintf(stderr, "Try 'ringserve --help' for more information.\n");
    return -EINVAL;
}

/* An option with two values: *second tells which was given. */
static int parse_pair(const char *opt, const char *val, const char *first,
                      const char *second, bool *is_second)
{
    if (strcmp(val, first) != 0 && strcmp(val, second) != 0) {
        char allowed[64];
        snprintf(allowed, sizeof(allowed), "one of %s, %s", first, second);
        return bad(opt, val, allowed);
    }
    *is_second = strcmp(val, second) == 0;
    return 0;
}

static int parse_u32(const char *opt, const char *val, uint64_t min, uint64_t max,
                     const char *allowed, uint32_t *out)
{
    uint64_t v;
    if (rs_parse_size(val, max, &v) < 0 || v < min)
        return bad(opt, val, allowed);
    *out = (uint32_t)v;
    return 0;
}

/* A power of two from 1 to 32768: ring and buffer-ring sizes. */
static int parse_pow2(const char *opt, const char *val, uint32_t *out)
{
    static const char allowed[] = "a power of two from 1 to 32768";
    uint32_t v;
    if (parse_u32(opt, val, 1, 32768, allowed, &v))
        return -EINVAL;
    if (v & (v - 1))
        return bad(opt, val, allowed);
    *out = v;
    return 0;
}

enum {
    OPT_BACKEND = 256,
    OPT_LISTEN,
    OPT_EPOLL_MODE,
    OPT_MAX_PENDING,
    OPT_URING_FEATURES,
    OPT_BUFFERS,
    OPT_BUFFER_SIZE,
    OPT_ZC_THRESHOLD,
    OPT_SQPOLL_IDLE,
    OPT_MAX_CONNS,
    OPT_IDLE_TIMEOUT,
    OPT_DRAIN_TIMEOUT,
    OPT_THREADS,
    OPT_PIN,
    OPT_NO_NODELAY,
    OPT_PROTOCOL,
    OPT_PROBE,
    OPT_JSON,
    OPT_RING_ENTRIES,
    OPT_ZC_ON_COPY,
    OPT_SCHED,
    OPT_STATS_INTERVAL,
    OPT_STATS_FORMAT,
    OPT_FS,
    OPT_SENDFILE,
    OPT_ACCEPT,
    OPT_FS_THREADS,
    OPT_ROOT,
    OPT_UPSTREAM,
    OPT_CONNECT_TIMEOUT,
    OPT_OPEN_FILE_CACHE,
    OPT_OPEN_FILE_CACHE_VALID,
    OPT_HEADER_TIMEOUT,
};

static const struct option long_opts[] = {
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"epoll-mode", required_argument, NULL, OPT_EPOLL_MODE},
    {"max-pending", required_argument, NULL, OPT_MAX_PENDING},
    {"uring-features", required_argument, NULL, OPT_URING_FEATURES},
    {"buffers", required_argument, NULL, OPT_BUFFERS},
    {"buffer-size", required_argument, NULL, OPT_BUFFER_SIZE},
    {"zc-threshold", required_argument, NULL, OPT_ZC_THRESHOLD},
    {"sqpoll-idle", required_argument, NULL, OPT_SQPOLL_IDLE},
    {"ring-entries", required_argument, NULL, OPT_RING_ENTRIES},
    {"zc-on-copy", required_argument, NULL, OPT_ZC_ON_COPY},
    {"sched", required_argument, NULL, OPT_SCHED},
    {"fs", required_argument, NULL, OPT_FS},
    {"sendfile", required_argument, NULL, OPT_SENDFILE},
    {"accept", required_argument, NULL, OPT_ACCEPT},
    {"fs-threads", required_argument, NULL, OPT_FS_THREADS},
    {"root", required_argument, NULL, OPT_ROOT},
    {"open-file-cache", required_argument, NULL, OPT_OPEN_FILE_CACHE},
    {"open-file-cache-valid", required_argument, NULL, OPT_OPEN_FILE_CACHE_VALID},
    {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
    {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"pin", no_argument, NULL, OPT_PIN},
    {"no-nodelay", no_argument, NULL, OPT_NO_NODELAY},
    {"protocol", required_argument, NULL, OPT_PROTOCOL},
    {"upstream", required_argument, NULL, OPT_UPSTREAM},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"stats-interval", required_argument, NULL, OPT_STATS_INTERVAL},
    {"stats-format", required_argument, NULL, OPT_STATS_FORMAT},
    {"probe", no_argument, NULL, OPT_PROBE},
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"version", no_argument, NULL, 'V'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Seconds with an optional fraction, 0 or from 0.01 to a day (what 0 means is
 * the option's: none, or every time). */
static int parse_seconds(const char *opt, const char *arg, uint32_t *ms)
{
    static const char allowed[] = "seconds: 0 or 0.01 to 86400, e.g. 1 or 0.5";
    char *end;
    errno = 0;
    double v = strtod(arg, &end);
    if (end == arg || *end || errno || !(v >= 0) || v > 86400 || arg[0] == '-' ||
        arg[0] == '+' || (v > 0 && v < 0.01))
        return bad(opt, arg, allowed);
    *ms = (uint32_t)(v * 1000.0 + 0.5);
    return 0;
}

static int parse_one(struct rs_config *cfg, int opt, const char *arg)
{
    uint64_t v;
    switch (opt) {
    case OPT_BACKEND:
        if (!strcmp(arg, "auto"))
            cfg->backend = RS_BACKEND_AUTO;
        else if (!strcmp(arg, "uring") || !strcmp(arg, "io_uring"))
            cfg->backend = RS_BACKEND_URING;
        else if (!strcmp(arg, "epoll"))
            cfg->backend = RS_BACKEND_EPOLL;
        else
            return bad("--backend", arg, "one of auto, uring, epoll");
        return 0;
    case OPT_EPOLL_MODE: {
        bool lt = false;
        if (parse_pair("--epoll-mode", arg, "et", "lt", &lt))
            return -EINVAL;
        cfg->epoll_mode = lt ? RS_EPOLL_LT : RS_EPOLL_ET;
        return 0;
    }
    case OPT_LISTEN:
        if (parse_listen(cfg, arg) < 0)
            return bad("--listen", arg, "HOST:PORT, e.g. 127.0.0.1:7080 or [::1]:7080");
        return 0;
    case OPT_MAX_PENDING:
        if (rs_parse_size(arg, UINT64_C(1) << 40, &v) < 0 || v < 1)
            return bad("--max-pending", arg, "a size in bytes >= 1, e.g. 1M");
        cfg->max_pending = v;
        return 0;
    case OPT_URING_FEATURES:
        cfg->uring_features = arg;
        return 0;
    case OPT_BUFFERS:
        return parse_pow2("--buffers", arg, &cfg->buffers);
    case OPT_BUFFER_SIZE:
        return parse_u32("--buffer-size", arg, 64, 1u << 24,
                         "a size from 64 bytes to 16M", &cfg->buffer_size);
    case OPT_ZC_THRESHOLD:
        return parse_u32("--zc-threshold", arg, 0, UINT32_MAX, "a size in bytes",
                         &cfg->zc_threshold);
    case OPT_ZC_ON_COPY:
        return parse_pair("--zc-on-copy", arg, "plain", "keep", &cfg->zc_keep_copied);
    case OPT_SCHED:
        if (!strcmp(arg, "auto"))
            cfg->sched = RS_SCHED_AUTO;
        else if (!strcmp(arg, "normal"))
            cfg->sched = RS_SCHED_NORMAL;
        else if (!strcmp(arg, "batch"))
            cfg->sched = RS_SCHED_BATCH;
        else
            return bad("--sched", arg, "one of auto, normal, batch");
        return 0;
    case OPT_ACCEPT:
        if (strcmp(arg, "auto") == 0)
            cfg->accept_mode = RS_ACCEPT_AUTO;
        else if (strcmp(arg, "handoff") == 0)
            cfg->accept_mode = RS_ACCEPT_HANDOFF;
        else if (strcmp(arg, "reuseport") == 0)
            cfg->accept_mode = RS_ACCEPT_REUSEPORT;
        else
            return bad("--accept", arg, "one of auto, handoff, reuseport");
        return 0;
    case OPT_FS:
        return parse_pair("--fs", arg, "pool", "inline", &cfg->fs_inline);
    case OPT_SENDFILE:
        return parse_pair("--sendfile", arg, "on", "off", &cfg->no_sendfile);
    case OPT_FS_THREADS:
        return parse_u32("--fs-threads", arg, 1, 64, "a number from 1 to 64",
                         &cfg->fs_threads);
    case OPT_OPEN_FILE_CACHE:
        return parse_u32("--open-file-cache", arg, 0, 65536, "a number from 0 to 65536",
                         &cfg->open_file_cache);
    case OPT_OPEN_FILE_CACHE_VALID:
        return parse_seconds("--open-file-cache-valid", arg,
                              &cfg->open_file_cache_valid_ms);
    case OPT_ROOT:
        if (!*arg)
            return bad("--root", arg, "a directory");
        cfg->root = arg;
        return 0;
    case OPT_SQPOLL_IDLE:
        return parse_u32("--sqpoll-idle", arg, 0, 3600000, "milliseconds",
                         &cfg->sqpoll_idle_ms);
    case OPT_RING_ENTRIES:
        return parse_pow2("--ring-entries", arg, &cfg->ring_entries);
    case OPT_MAX_CONNS:
        if (strcmp(arg, "max") == 0) {
            cfg->max_conns = RS_MAX_CONNS_LIMIT;
            return 0;
        }
        return parse_u32("--max-conns", arg, 1, 100000000, "a number >= 1, or max",
                         &cfg->max_conns);
    case OPT_IDLE_TIMEOUT:
        return parse_u32("--idle-timeout", arg, 0, 86400 * 365, "seconds (0 = off)",
                         &cfg->idle_timeout_s);
    case OPT_DRAIN_TIMEOUT:
        return parse_u32("--drain-timeout", arg, 0, 3600000, "milliseconds",
                         &cfg->drain_timeout_ms);
    case OPT_THREADS:
        return parse_u32("--threads", arg, 0, 1024, "a number from 0 to 1024",
                         &cfg->threads);
    case OPT_PIN:
        cfg->pin = true;
        return 0;
    case OPT_NO_NODELAY:
        cfg->nodelay = false;
        return 0;
    case OPT_PROTOCOL:
        if (!rs_protocol_find(arg))
            return bad("--protocol", arg, "one of echo, discard, chargen, proxy, http");
        cfg->protocol = arg;
        return 0;
    case OPT_UPSTREAM: {
        char err[200];
        if (rs_proxy_parse_upstreams(cfg, arg, err, sizeof(err)) < 0) {
            fprintf(stderr, "ringserve: invalid value '%s' for --upstream: %s\n", arg,
                    err);
            fprintf(stderr, "Try 'ringserve --help' for more information.\n");
            return 2;
        }
        return 0;
    }
    case OPT_CONNECT_TIMEOUT:
        return parse_u32("--connect-timeout", arg, 0, 3600000, "milliseconds (0 = none)",
                         &cfg->connect_timeout_ms);
    case OPT_STATS_INTERVAL:
        return parse_seconds("--stats-interval", arg, &cfg->stats_interval_ms);
    case OPT_HEADER_TIMEOUT:
        return parse_seconds("--header-timeout", arg, &cfg->header_timeout_ms);
    case OPT_STATS_FORMAT:
        return parse_pair("--stats-format", arg, "text", "json", &cfg->stats_json);
    case OPT_PROBE:
        cfg->probe = true;
        return 0;
    case OPT_JSON:
        cfg->json = true;
        return 0;
    case 'v':
        cfg->verbose = 1;
        return 0;
    case 'q':
        cfg->verbose = -1;
        return 0;
    }
    return -EINVAL;
}

int rs_config_parse(struct rs_config *cfg, int argc, char **argv)
{
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":vqVh", long_opts, NULL)) != -1) {
        if (opt == 'h') {
            rs_config_usage(stdout);
            cfg->exit_now = true;
            return 0;
        }
        if (opt == 'V') {
            printf("ringserve %s (liburing %s)\n", RS_VERSION, RS_LIBURING_VERSION);
            cfg->exit_now = true;
            return 0;
        }
        if (opt == '?' || opt == ':') {
            const char *what = argv[optind - 1];
            if (opt == ':')
                fprintf(stderr, "ringserve: option '%s' needs a value\n", what);
            else
                fprintf(stderr, "ringserve: unknown option '%s'\n", what);
            fprintf(stderr, "Try 'ringserve --help' for more information.\n");
            return -EINVAL;
        }
        int rc = parse_one(cfg, opt, optarg);
        if (rc != 0)
            return rc < 0 ? rc : -EINVAL;
    }
    if (optind < argc) {
        fprintf(stderr, "ringserve: unexpected argument '%s'\n", argv[optind]);
        fprintf(stderr, "Try 'ringserve --help' for more information.\n");
        return -EINVAL;
    }
    bool proxy = !cfg->proto && cfg->protocol && strcmp(cfg->protocol, "proxy") == 0;
    if (proxy != (cfg->nupstreams > 0)) {
        fprintf(stderr, proxy ? "ringserve: --protocol=proxy needs --upstream=HOST:PORT\n"
                              : "ringserve: --upstream is for --protocol=proxy\n");
        fprintf(stderr, "Try 'ringserve --help' for more information.\n");
        return -EINVAL; /* main exits 2 */
    }
    bool http = !cfg->proto && cfg->protocol && strcmp(cfg->protocol, "http") == 0;
    if (http != (cfg->root != NULL)) {
        fprintf(stderr, http ? "ringserve: --protocol=http needs --root=DIR\n"
                             : "ringserve: --root is for --protocol=http\n");
        fprintf(stderr, "Try 'ringserve --help' for more information.\n");
        return -EINVAL;
    }
    return 0;
}
