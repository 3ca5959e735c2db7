#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int check_size(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    return rs_parse_size(v, max, out) == 0 && *out >= min ? 0 : -EINVAL;
}

/* A power of two from 1 to 32768: the ring's size. */
static int check_entries(const char *v, char *err, size_t errlen)
{
    uint64_t n;
    if (check_size(v, 1, 32768, &n) < 0 || (n & (n - 1))) {
        snprintf(err, errlen, "a power of two from 1 to 32768");
        return -EINVAL;
    }
    return 0;
}

static int check_ms(const char *v, char *err, size_t errlen)
{
    uint64_t n;
    if (check_size(v, 0, 3600000, &n) < 0) {
        snprintf(err, errlen, "milliseconds");
        return -EINVAL;
    }
    return 0;
}

static int check_bytes(const char *v, char *err, size_t errlen)
{
    uint64_t n;
    if (check_size(v, 0, UINT32_MAX, &n) < 0) {
        snprintf(err, errlen, "a size in bytes");
        return -EINVAL;
    }
    return 0;
}

static int check_on_copy(const char *v, char *err, size_t errlen)
{
    if (strcmp(v, "plain") != 0 && strcmp(v, "keep") != 0) {
        snprintf(err, errlen, "one of plain, keep");
        return -EINVAL;
    }
    return 0;
}

/* Most io-wq workers of each kind, "BOUNDED,UNBOUNDED". */
#define IOWQ_MAX_LIMIT (1u << 20)

static int parse_iowq(const char *v, uint32_t out[2])
{
    char a[24];
    const char *comma = strchr(v, ',');
    uint64_t n[2];
    if (!comma || (size_t)(comma - v) >= sizeof(a))
        return -EINVAL;
    memcpy(a, v, (size_t)(comma - v));
    a[comma - v] = '\0';
    if (check_size(a, 0, IOWQ_MAX_LIMIT, &n[0]) < 0 ||
        check_size(comma + 1, 0, IOWQ_MAX_LIMIT, &n[1]) < 0)
        return -EINVAL;
    out[0] = (uint32_t)n[0];
    out[1] = (uint32_t)n[1];
    return 0;
}

static int check_iowq(const char *v, char *err, size_t errlen)
{
    uint32_t n[2];
    if (parse_iowq(v, n) < 0) {
        snprintf(err, errlen, "BOUNDED,UNBOUNDED: two counts from 0 to %u",
                 IOWQ_MAX_LIMIT);
        return -EINVAL;
    }
    return 0;
}

/* --uring-features is checked against what the kernel has when a loop
 * starts (features.c): a name it does not know fails there, exit 2. */
const struct rs_backend_option rs_uring_options[] = {
    {"uring-features", true, NULL},
    {"ring-entries", true, check_entries},
    {"sqpoll-idle", true, check_ms},
    {"zc-threshold", true, check_bytes},
    {"zc-on-copy", true, check_on_copy},
    {"iowq-max", true, check_iowq},
    {NULL, false, NULL},
};

const char rs_uring_help[] =
    "Backend uring: io_uring completions. --accept=handoff needs fixed-files and\n"
    "IORING_OP_MSG_RING with IORING_MSG_SEND_FD (Linux 6.0+); --sendfile splices\n"
    "through a pipe; file IO is done by the kernel.\n"
    "  --uring-features=LIST       io_uring features: all, none, default, names,\n"
    "                              -name to remove; prefix auto- to drop what the\n"
    "                              kernel lacks instead of failing. Names:\n"
    "                              multishot-accept, multishot-recv, buf-ring,\n"
    "                              fixed-files, ring-fd, defer-taskrun, send-zc,\n"
    "                              sqpoll, bundle, batch-wait, direct-socket,\n"
    "                              direct-pipe, direct-listen, ext-arg,\n"
    "                              shutdown-op, buf-recycle, buf-inc, resize,\n"
    "                              wait-reg (default: all the kernel has, except\n"
    "                              sqpoll, bundle, batch-wait, buf-inc, wait-reg\n"
    "                              and direct-listen)\n"
    "                              buf-inc: receives share ring buffers (6.12+);\n"
    "                              a quarter of --buffers is kept for file reads\n"
    "  --ring-entries=N            io_uring submission queue size, a power of two;\n"
    "                              the completion queue is 8x, or with resize\n"
    "                              starts at N+64 and grows (default 1024)\n"
    "  --sqpoll-idle=MS            SQPOLL thread idle time (default 1000)\n"
    "  --zc-threshold=BYTES        send_zc for sends of at least this (default 16K)\n"
    "  --zc-on-copy=plain|keep     when the kernel reports it copied a zero-copy\n"
    "                              send (always, to a loopback peer): plain sends\n"
    "                              on that connection from then on (default), or\n"
    "                              keep zero copy (to measure what it costs)\n"
    "  --iowq-max=BOUNDED,UNBOUNDED  most kernel worker threads (io-wq) per loop\n"
    "                              for file work: bounded (stat, open, read of a\n"
    "                              file), unbounded (a file read into a sendfile's\n"
    "                              pipe); 0 = the kernel's default for that kind\n"
    "                              (bounded: 4 per CPU, unbounded: RLIMIT_NPROC);\n"
    "                              Linux 5.15+ (default 8,16)\n";

static uint32_t read_u32(const struct rs_config *cfg, const char *name, uint32_t def)
{
    const char *v = rs_config_option(cfg, name);
    uint64_t n;
    return v && rs_parse_size(v, UINT32_MAX, &n) == 0 ? (uint32_t)n : def;
}

void rs_uring_options_read(const struct rs_config *cfg, struct uring_options *out)
{
    const char *features = rs_config_option(cfg, "uring-features");
    const char *on_copy = rs_config_option(cfg, "zc-on-copy");
    out->features = features ? features : "default";
    out->ring_entries = read_u32(cfg, "ring-entries", 1024);
    out->sqpoll_idle_ms = read_u32(cfg, "sqpoll-idle", 1000);
    out->zc_threshold = read_u32(cfg, "zc-threshold", 16384);
    out->zc_keep_copied = on_copy && strcmp(on_copy, "keep") == 0;
    /* Why 8 and 16: docs/http.md, "io-wq workers". */
    const char *iowq = rs_config_option(cfg, "iowq-max");
    out->iowq_max[0] = 8;
    out->iowq_max[1] = 16;
    if (iowq)
        parse_iowq(iowq, out->iowq_max); /* checked by check_iowq */
}
