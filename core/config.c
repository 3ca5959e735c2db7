#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "protocol.h"
#include "proxy.h"
#include "rs_build.h"

void rs_config_defaults(struct rs_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->backend = "auto";
    strcpy(cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 7080;
    cfg->max_pending = 1u << 20;
    cfg->buffers = 512;
    cfg->buffer_size = 16384;
    cfg->drain_timeout_ms = 2000;
    cfg->threads = 1;
    cfg->nodelay = true;
    cfg->notsent_lowat = RS_NOTSENT_LOWAT_DEFAULT;
    cfg->protocol = "echo";
    cfg->open_file_cache = 64;
    cfg->open_file_cache_valid_ms = 1000;
    cfg->connect_timeout_ms = 3000;
    cfg->header_timeout_ms = 60000;
    cfg->send_timeout_ms = 60000;      /* nginx's send_timeout */
    cfg->keepalive_timeout_ms = 75000; /* nginx's keepalive_timeout */
    cfg->sched = RS_SCHED_NORMAL;
}

/* What --backend takes: auto, then the backends this process knows (a
 * program's registered ones included), after head and between seps. */
static void join_backends(char *out, size_t outlen, const char *head, const char *sep)
{
    size_t len = (size_t)snprintf(out, outlen, "%sauto", head);
    const struct rs_backend_ops *b;
    for (size_t i = 0; (b = rs_backend_at(i)) != NULL && len < outlen; i++)
        len += (size_t)snprintf(out + len, outlen - len, "%s%s", sep, b->name);
}

void rs_config_usage(FILE *out)
{
    fputs("Usage: ringserve [OPTION]...\n"
          "A completion-based TCP server: echo, discard, chargen, proxy or http.\n"
          "\n",
          out);
    rs_config_options_usage(out);
}

void rs_config_options_usage(FILE *out)
{
    char names[160];
    join_backends(names, sizeof(names), "--backend=", "|");
    fprintf(out, "Backend:\n  %-27s %s\n", names,
            strlen(names) > 27 ? "\n                              the IO backend"
                               : "the IO backend");
    fputs("                              (default auto: the first of those below\n"
          "                              that can run here); each has options of\n"
          "                              its own, below\n"
          "  --buffers=COUNT             receive buffers per loop, a power of two\n"
          "                              (default 512)\n"
          "  --buffer-size=BYTES         bytes per receive buffer (default 16K)\n"
          "  --sendfile=on|off           http: bodies over one buffer go from the file\n"
          "                              to the socket in the kernel (default on; how:\n"
          "                              see the backend), or off: read into memory,\n"
          "                              then sent (a copy)\n"
          "  --open-file-cache=N         http: keep up to N files open per loop, with\n"
          "                              their statx (default 64; 0 = off); they count\n"
          "                              against the descriptor budget (--max-conns)\n"
          "  --open-file-cache-valid=SECONDS  http: re-check a cached file's path after\n"
          "                              this long; a file replaced, removed or changed\n"
          "                              is reopened (default 1; 0 = on every request)\n"
          "\n",
          out);
    /* Each backend's own options, in order of preference. */
    const struct rs_backend_ops *b;
    for (size_t i = 0; (b = rs_backend_at(i)) != NULL; i++)
        if (b->help)
            fprintf(out, "%s\n", b->help);
    /* Two strings: ISO C promises only 4,095 characters in one. */
    fputs(
        "Server:\n"
        "  --listen=HOST:PORT          address to listen on (default 127.0.0.1:7080;\n"
        "                              [::1]:PORT for IPv6; port 0 picks one)\n"
        "  --protocol=echo|discard|chargen|proxy|http  what to serve (default echo)\n"
        "  --root=DIR                  --protocol=http: the directory served\n"
        "  --header-timeout=SECONDS    http: a request head must be complete this\n"
        "                              long after it is due (the first: from the\n"
        "                              connection's start; a later one: from its\n"
        "                              first byte), however it trickles in; else\n"
        "                              408 and close (default 60; decimals\n"
        "                              allowed; 0 = none)\n"
        "  --send-timeout=SECONDS      http: a response whose output made no\n"
        "                              progress this long (the client stopped\n"
        "                              reading) is cut with a reset (default 60;\n"
        "                              decimals allowed; 0 = none)\n"
        "  --keepalive-timeout=SECONDS http: close a connection idle this long\n"
        "                              between requests (default 75; decimals\n"
        "                              allowed; 0 = none)\n"
        "  --upstream=HOST:PORT[,HOST:PORT...]  proxy: where to connect, round\n"
        "                              robin; a failed upstream is skipped for 2 s\n"
        "  --connect-timeout=MS        proxy: give up connecting after this long\n"
        "                              (default 3000; 0 = the kernel's own)\n"
        "  --threads=N                 event loops (default 1; 0 = one per online\n"
        "                              CPU); how connections reach them: --accept\n"
        "  --accept=auto|handoff|reuseport  with several loops: each loop its own\n"
        "                              SO_REUSEPORT listener, or loop 0 accepts and\n"
        "                              hands each connection to the loop with the most\n"
        "                              room (where the backend can pass connections\n"
        "                              between loops);\n"
        "                              auto: handoff where possible (default)\n"
        "  --pin                       pin loop i to CPU i\n"
        "  --sched=auto|normal|batch   scheduling policy of the loop threads; batch\n"
        "                              (SCHED_BATCH) lets a woken loop wait for the\n"
        "                              running task instead of preempting it, so it\n"
        "                              wakes to bigger batches (less CPU when clients\n"
        "                              share its CPU, at a cost in tail latency);\n"
        "                              auto is batch while a loop has 4 or more\n"
        "                              connections, normal from 1 down;\n"
        "                              normal (default): the kernel's policy\n"
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
        "  --notsent-lowat=BYTES       unsent bytes the kernel queues per connection\n"
        "                              (TCP_NOTSENT_LOWAT, e.g. 256K; default 0: the\n"
        "                              kernel's default, no limit)\n"
        "\n",
        out);
    /* Two strings: C11 promises only 4095 characters per literal. */
    fputs("Statistics:\n"
          "  --stats-interval=SECONDS    also print a statistics line every SECONDS\n"
          "                              (decimals allowed, e.g. 0.5; default 0 = only\n"
          "                              the final line): round trips/s, bytes/s each\n"
          "                              way, completions per loop turn, the backend's\n"
          "                              wait calls/s, buffers lent, starved\n"
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

/* Where a usage error's reason goes: the buffer of the rs_config_parse_args
 * call running on this thread. The parse helpers below write it through
 * this pointer instead of printing, so that an embedding program decides
 * what the user sees. */
static _Thread_local struct {
    char *s;
    size_t n;
} reason;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    if (reason.n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason.s, reason.n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int bad(const char *opt, const char *val, const char *allowed)
{
    return usage_error("invalid value '%s' for %s: expected %s", val, opt, allowed);
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
    uint32_t v = 0;
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
    OPT_MAX_PENDING,
    OPT_BUFFERS,
    OPT_BUFFER_SIZE,
    OPT_MAX_CONNS,
    OPT_IDLE_TIMEOUT,
    OPT_DRAIN_TIMEOUT,
    OPT_THREADS,
    OPT_PIN,
    OPT_NO_NODELAY,
    OPT_NOTSENT_LOWAT,
    OPT_PROTOCOL,
    OPT_PROBE,
    OPT_JSON,
    OPT_SCHED,
    OPT_STATS_INTERVAL,
    OPT_STATS_FORMAT,
    OPT_SENDFILE,
    OPT_ACCEPT,
    OPT_ROOT,
    OPT_UPSTREAM,
    OPT_CONNECT_TIMEOUT,
    OPT_OPEN_FILE_CACHE,
    OPT_OPEN_FILE_CACHE_VALID,
    OPT_HEADER_TIMEOUT,
    OPT_SEND_TIMEOUT,
    OPT_KEEPALIVE_TIMEOUT,
};

/* ringserve's options. Parsed by hand rather than with getopt_long, whose
 * state (optind, opterr) is the process's: an embedding program may be in
 * the middle of its own getopt loop, and its options are not ours to
 * reject (rs_config_parse_args). */
struct option_def {
    const char *name; /* --name */
    char short_name;  /* -x, or 0 */
    bool has_value;   /* --name=VALUE or --name VALUE */
    int id;
};

static const struct option_def options[] = {
    {"backend", 0, true, OPT_BACKEND},
    {"listen", 0, true, OPT_LISTEN},
    {"max-pending", 0, true, OPT_MAX_PENDING},
    {"buffers", 0, true, OPT_BUFFERS},
    {"buffer-size", 0, true, OPT_BUFFER_SIZE},
    {"sched", 0, true, OPT_SCHED},
    {"sendfile", 0, true, OPT_SENDFILE},
    {"accept", 0, true, OPT_ACCEPT},
    {"root", 0, true, OPT_ROOT},
    {"open-file-cache", 0, true, OPT_OPEN_FILE_CACHE},
    {"open-file-cache-valid", 0, true, OPT_OPEN_FILE_CACHE_VALID},
    {"header-timeout", 0, true, OPT_HEADER_TIMEOUT},
    {"send-timeout", 0, true, OPT_SEND_TIMEOUT},
    {"keepalive-timeout", 0, true, OPT_KEEPALIVE_TIMEOUT},
    {"max-conns", 0, true, OPT_MAX_CONNS},
    {"idle-timeout", 0, true, OPT_IDLE_TIMEOUT},
    {"drain-timeout", 0, true, OPT_DRAIN_TIMEOUT},
    {"threads", 0, true, OPT_THREADS},
    {"pin", 0, false, OPT_PIN},
    {"no-nodelay", 0, false, OPT_NO_NODELAY},
    {"notsent-lowat", 0, true, OPT_NOTSENT_LOWAT},
    {"protocol", 0, true, OPT_PROTOCOL},
    {"upstream", 0, true, OPT_UPSTREAM},
    {"connect-timeout", 0, true, OPT_CONNECT_TIMEOUT},
    {"stats-interval", 0, true, OPT_STATS_INTERVAL},
    {"stats-format", 0, true, OPT_STATS_FORMAT},
    {"probe", 0, false, OPT_PROBE},
    {"json", 0, false, OPT_JSON},
    {"verbose", 'v', false, 'v'},
    {"quiet", 'q', false, 'q'},
    {"version", 'V', false, 'V'},
    {"help", 'h', false, 'h'},
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
    case OPT_BACKEND: {
        if (strcmp(arg, "auto") != 0 && !rs_backend_named(arg)) {
            char names[160];
            join_backends(names, sizeof(names), "one of ", ", ");
            return bad("--backend", arg, names);
        }
        cfg->backend = arg;
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
    case OPT_BUFFERS:
        return parse_pow2("--buffers", arg, &cfg->buffers);
    case OPT_BUFFER_SIZE:
        return parse_u32("--buffer-size", arg, 64, 1u << 24,
                         "a size from 64 bytes to 16M", &cfg->buffer_size);
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
    case OPT_SENDFILE:
        return parse_pair("--sendfile", arg, "on", "off", &cfg->no_sendfile);
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
    case OPT_NOTSENT_LOWAT:
        return parse_u32("--notsent-lowat", arg, 0, INT32_MAX,
                         "a size in bytes, e.g. 256K", &cfg->notsent_lowat);
    case OPT_PROTOCOL:
        if (!rs_protocol_find(arg))
            return bad("--protocol", arg, "one of echo, discard, chargen, proxy, http");
        cfg->protocol = arg;
        return 0;
    case OPT_UPSTREAM: {
        char err[200];
        if (rs_proxy_parse_upstreams(cfg, arg, err, sizeof(err)) < 0)
            return usage_error("invalid value '%s' for --upstream: %s", arg, err);
        return 0;
    }
    case OPT_CONNECT_TIMEOUT:
        return parse_u32("--connect-timeout", arg, 0, 3600000, "milliseconds (0 = none)",
                         &cfg->connect_timeout_ms);
    case OPT_STATS_INTERVAL:
        return parse_seconds("--stats-interval", arg, &cfg->stats_interval_ms);
    case OPT_HEADER_TIMEOUT:
        return parse_seconds("--header-timeout", arg, &cfg->header_timeout_ms);
    case OPT_SEND_TIMEOUT:
        return parse_seconds("--send-timeout", arg, &cfg->send_timeout_ms);
    case OPT_KEEPALIVE_TIMEOUT:
        return parse_seconds("--keepalive-timeout", arg, &cfg->keepalive_timeout_ms);
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

static const struct option_def *find_long(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

static const struct option_def *find_short(char c)
{
    for (size_t i = 0; i < sizeof(options) / sizeof(options[0]); i++)
        if (options[i].short_name == c)
            return &options[i];
    return NULL;
}

/* What the combination of options requires, checked once all are read. */
static int check_combination(const struct rs_config *cfg)
{
    bool proxy = !cfg->proto && cfg->protocol && strcmp(cfg->protocol, "proxy") == 0;
    if (proxy != (cfg->nupstreams > 0))
        return usage_error(proxy ? "--protocol=proxy needs --upstream=HOST:PORT"
                                 : "--upstream is for --protocol=proxy");
    bool http = !cfg->proto && cfg->protocol && strcmp(cfg->protocol, "http") == 0;
    if (http != (cfg->root != NULL))
        return usage_error(http ? "--protocol=http needs --root=DIR"
                                : "--root is for --protocol=http");
    return 0;
}

/* A backend's option, --NAME[=VALUE] with NAME len bytes at argv[i] + 2:
 * arguments used (1 or 2), 0 when no backend owns it, or -EINVAL. */
static int parse_backend_option(struct rs_config *cfg, char **argv, int i, int argc,
                                size_t len)
{
    char name[64];
    if (len >= sizeof(name))
        return 0;
    memcpy(name, argv[i] + 2, len);
    name[len] = '\0';
    const struct rs_backend_option *o = rs_backend_option_named(name, NULL);
    if (!o)
        return 0;
    const char *eq = argv[i][2 + len] == '=' ? argv[i] + 3 + len : NULL;
    if (eq && !o->has_value)
        return usage_error("option '--%s' takes no value", o->name);
    int used = 1;
    if (o->has_value && !eq) {
        if (i + 1 >= argc)
            return usage_error("option '%s' needs a value", argv[i]);
        eq = argv[i + 1];
        used = 2;
    }
    int rc = rs_config_set_option(cfg, o->name, eq, reason.s, reason.n);
    return rc < 0 ? rc : used;
}

/* One argument (and the next, for a value given apart). Returns how many
 * arguments it used (1 or 2), 0 when it is not one of ours, or -EINVAL.
 * --help and --version are not acted on: *what says they were seen. */
static int parse_arg(struct rs_config *cfg, char **argv, int i, int argc, int *what)
{
    const char *a = argv[i];
    const struct option_def *o;
    const char *value = NULL;
    if (a[1] == '-') {
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        o = find_long(a + 2, len);
        if (!o)
            return parse_backend_option(cfg, argv, i, argc, len);
        if (eq && !o->has_value)
            return usage_error("option '--%s' takes no value", o->name);
        value = eq ? eq + 1 : NULL;
    } else {
        /* -v, -q, -h, -V: single letters, no clusters. */
        o = a[2] == '\0' ? find_short(a[1]) : NULL;
        if (!o)
            return 0;
    }
    int used = 1;
    if (o->has_value && !value) {
        if (i + 1 >= argc)
            return usage_error("option '%s' needs a value", a);
        value = argv[i + 1];
        used = 2;
    }
    if (o->id == 'h' || o->id == 'V') {
        *what = o->id == 'h' ? RS_CONFIG_HELP : RS_CONFIG_VERSION;
        return used;
    }
    int rc = parse_one(cfg, o->id, value);
    return rc < 0 ? rc : used;
}

const char *rs_config_option(const struct rs_config *cfg, const char *name)
{
    /* The last one given wins, as with every option. */
    for (uint32_t i = cfg->nbackend_options; i-- > 0;)
        if (strcmp(cfg->backend_options[i].name, name) == 0)
            return cfg->backend_options[i].value;
    return NULL;
}

int rs_config_set_option(struct rs_config *cfg, const char *name, const char *value,
                         char *err, size_t errlen)
{
    const struct rs_backend_option *o = rs_backend_option_named(name, NULL);
    if (!o) {
        snprintf(err, errlen, "unknown option '--%s'", name);
        return -EINVAL;
    }
    if (!o->has_value != !value) {
        snprintf(err, errlen,
                 o->has_value ? "option '--%s' needs a value"
                              : "option '--%s' takes no value",
                 name);
        return -EINVAL;
    }
    char allowed[200] = "";
    if (o->check && o->check(value, allowed, sizeof(allowed)) < 0) {
        snprintf(err, errlen, "invalid value '%s' for --%s: expected %s",
                 value ? value : "", name, allowed);
        return -EINVAL;
    }
    uint32_t i = 0;
    while (i < cfg->nbackend_options &&
           strcmp(cfg->backend_options[i].name, o->name) != 0)
        i++;
    if (i == RS_MAX_BACKEND_OPTIONS) {
        snprintf(err, errlen, "more than %d backend options", RS_MAX_BACKEND_OPTIONS);
        return -ENOSPC;
    }
    cfg->backend_options[i].name = o->name;
    cfg->backend_options[i].value = value ? value : "";
    if (i == cfg->nbackend_options)
        cfg->nbackend_options++;
    return 0;
}

int rs_config_parse_args(struct rs_config *cfg, int *argc, char **argv, unsigned flags,
                         char *err, size_t errlen)
{
    bool embed = flags & RS_CONFIG_EMBED;
    reason.s = err;
    reason.n = errlen;
    if (errlen)
        err[0] = '\0';
    if (*argc < 1) { /* not even argv[0]: no options */
        int rc = check_combination(cfg);
        reason.n = 0;
        return rc;
    }
    /* The program's arguments are gathered apart and copied back only on
     * success: a failed parse leaves argv as it was. */
    char **keep = malloc(sizeof(*keep) * (size_t)(*argc + 1));
    if (!keep)
        return -ENOMEM;
    int what = 0, kept = 0, rc = 0;
    for (int i = 1; i < *argc;) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            /* The end of options: the rest is the program's. */
            if (!embed) {
                rc = i + 1 < *argc ? usage_error("unexpected argument '%s'", argv[i + 1])
                                   : 0;
                break;
            }
            while (i < *argc)
                keep[kept++] = argv[i++];
            break;
        }
        int used =
            a[0] == '-' && a[1] != '\0' ? parse_arg(cfg, argv, i, *argc, &what) : 0;
        if (used < 0) {
            rc = used;
            break;
        }
        if (used == 0) {
            if (!embed) {
                rc = a[0] == '-' && a[1] != '\0'
                         ? usage_error("unknown option '%s'", a)
                         : usage_error("unexpected argument '%s'", a);
                break;
            }
            keep[kept++] = argv[i++]; /* the program's */
            continue;
        }
        i += used;
    }
    if (rc == 0 && !what)
        rc = check_combination(cfg);
    if (rc == 0) {
        memcpy(argv + 1, keep, sizeof(*keep) * (size_t)kept);
        *argc = kept + 1;
        argv[*argc] = NULL;
    }
    free(keep);
    reason.s = NULL;
    reason.n = 0;
    return rc < 0 ? rc : what;
}

int rs_config_parse(struct rs_config *cfg, int argc, char **argv)
{
    char err[300];
    int rc = rs_config_parse_args(cfg, &argc, argv, 0, err, sizeof(err));
    if (rc == RS_CONFIG_HELP) {
        rs_config_usage(stdout);
        cfg->exit_now = true;
        return 0;
    }
    if (rc == RS_CONFIG_VERSION) {
        printf("ringserve %s", RS_VERSION);
        const struct rs_backend_ops *b;
        for (size_t i = 0; (b = rs_backend_at(i)) != NULL; i++)
            if (b->built_with)
                printf(" (%s)", b->built_with);
        printf("\n");
        cfg->exit_now = true;
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "ringserve: %s\n", err);
        fprintf(stderr, "Try 'ringserve --help' for more information.\n");
    }
    return rc;
}
