#include "features.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    uint32_t bit;
} names[] = {
    {"multishot-accept", UF_MULTISHOT_ACCEPT},
    {"multishot-recv", UF_MULTISHOT_RECV},
    {"buf-ring", UF_BUF_RING},
    {"fixed-files", UF_FIXED_FILES},
    {"ring-fd", UF_RING_FD},
    {"defer-taskrun", UF_DEFER_TASKRUN},
    {"send-zc", UF_SEND_ZC},
    {"sqpoll", UF_SQPOLL},
    {"bundle", UF_BUNDLE},
    {"batch-wait", UF_BATCH_WAIT},
    {"direct-socket", UF_DIRECT_SOCKET},
    {"ext-arg", UF_EXT_ARG},
    {"shutdown-op", UF_SHUTDOWN_OP},
    {"buf-recycle", UF_BUF_RECYCLE},
    {"buf-inc", UF_BUF_INC},
    {"resize", UF_RESIZE},
    {"wait-reg", UF_WAIT_REG},
    {"direct-pipe", UF_DIRECT_PIPE},
    {"direct-listen", UF_DIRECT_LISTEN},
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

uint32_t rs_uring_supported(const struct rs_uring_support *s)
{
    uint32_t f = 0;
    if (!s->available)
        return 0;
    f |= s->multishot_accept ? UF_MULTISHOT_ACCEPT : 0;
    f |= s->multishot_recv && s->buf_ring ? UF_MULTISHOT_RECV : 0;
    f |= s->buf_ring ? UF_BUF_RING : 0;
    f |= s->sparse_files && s->accept_direct ? UF_FIXED_FILES : 0;
    f |= s->ring_fd ? UF_RING_FD : 0;
    f |= s->defer_taskrun ? UF_DEFER_TASKRUN : 0;
    f |= s->send_zc ? UF_SEND_ZC : 0;
    f |= s->sqpoll ? UF_SQPOLL : 0;
    f |= s->recvsend_bundle && s->buf_ring ? UF_BUNDLE : 0;
    f |= s->min_timeout ? UF_BATCH_WAIT : 0;
    /* TCP_NODELAY on a direct socket needs the setsockopt command: without
     * it outbound sockets stay plain rather than lose NODELAY. */
    f |=
        (f & UF_FIXED_FILES) && s->socket_direct && s->sockopt_cmd ? UF_DIRECT_SOCKET : 0;
    f |= s->features & RS_FEAT_EXT_ARG ? UF_EXT_ARG : 0;
    f |= s->opcodes >> RS_OP_SHUTDOWN_NR & 1 ? UF_SHUTDOWN_OP : 0;
    f |= s->buf_recycle ? UF_BUF_RECYCLE : 0;
    f |= s->buf_ring && s->buf_ring_inc ? UF_BUF_INC : 0;
    f |= s->resize_rings && s->defer_taskrun ? UF_RESIZE : 0;
    f |= s->wait_region && (s->features & RS_FEAT_EXT_ARG) ? UF_WAIT_REG : 0;
    f |= (f & UF_FIXED_FILES) && s->pipe_direct ? UF_DIRECT_PIPE : 0;
    /* Its socket options (SO_REUSEADDR...) are set by command too. */
    f |=
        (f & UF_FIXED_FILES) && s->listen_direct && s->sockopt_cmd ? UF_DIRECT_LISTEN : 0;
    return f;
}

static uint32_t lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < NNAMES; i++)
        if (strlen(names[i].name) == len && strncmp(names[i].name, name, len) == 0)
            return names[i].bit;
    return 0;
}

/* The names of the features in f, in table order, joined by sep; "" for
 * none. */
static void join_names(uint32_t f, const char *sep, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NNAMES; i++) {
        if (!(f & names[i].bit))
            continue;
        int n =
            snprintf(out + used, outlen - used, "%s%s", used ? sep : "", names[i].name);
        if (n < 0 || (size_t)n >= outlen - used)
            break;
        used += (size_t)n;
    }
}

const char *rs_uring_feature_name(uint32_t bit)
{
    for (size_t i = 0; i < NNAMES; i++)
        if (names[i].bit == bit)
            return names[i].name;
    return "?";
}

int rs_uring_features_parse(const char *list, uint32_t supported, uint32_t *out,
                            char *err, size_t errlen)
{
    bool lenient = strncmp(list, "auto-", 5) == 0;
    if (lenient)
        list += 5;
    uint32_t want = 0, asked = 0;
    const char *p = list;
    if (!*p) {
        snprintf(err, errlen, "--uring-features: empty list");
        return -EINVAL;
    }
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool minus = len > 0 && *p == '-';
        const char *name = p + minus;
        size_t nlen = len - minus;
        uint32_t bits;
        if (nlen == 3 && !strncmp(name, "all", 3))
            bits = UF_ALL;
        else if (nlen == 4 && !strncmp(name, "none", 4))
            bits = UF_ALL, minus = true; /* "none" clears everything so far */
        else if (nlen == 7 && !strncmp(name, "default", 7))
            bits = supported & ~(uint32_t)UF_OPT_IN;
        else if ((bits = lookup(name, nlen)) == 0) {
            char known[256];
            join_names(UF_ALL, ", ", known, sizeof(known));
            snprintf(
                err, errlen,
                "--uring-features: unknown feature '%.*s' (known: all, none, default, "
                "%s)",
                (int)nlen, name, known);
            return -EINVAL;
        }
        if (minus) {
            want &= ~bits;
            asked &= ~bits;
        } else {
            want |= bits;
            asked |= bits;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    uint32_t missing = asked & ~supported;
    if (missing && !lenient) {
        snprintf(err, errlen,
                 "--uring-features: this kernel does not support '%s' (prefix the list "
                 "with auto- to skip what is missing)",
                 rs_uring_feature_name(missing & -missing));
        return -EINVAL;
    }
    want &= supported;
    /* Dependencies: multishot recv and bundles take buffers from the ring;
     * SQPOLL submits from its own thread, which DEFER_TASKRUN forbids. */
    if (!(want & UF_BUF_RING))
        want &= ~(uint32_t)(UF_MULTISHOT_RECV | UF_BUNDLE | UF_BUF_INC);
    /* A bundle CQE names whole buffers in ring order (deliver_bundle):
     * asked for, it wins over incremental consumption. */
    if (want & UF_BUNDLE)
        want &= ~(uint32_t)UF_BUF_INC;
    if (want & UF_SQPOLL)
        want &= ~(uint32_t)UF_DEFER_TASKRUN;
    /* Direct outbound sockets, pipes and listeners live in the fixed-file
     * table. */
    if (!(want & UF_FIXED_FILES))
        want &= ~(uint32_t)(UF_DIRECT_SOCKET | UF_DIRECT_PIPE | UF_DIRECT_LISTEN);
    /* The batched wait is an EXT_ARG wait with a minimum. */
    if (!(want & UF_EXT_ARG))
        want &= ~(uint32_t)(UF_BATCH_WAIT | UF_WAIT_REG);
    /* The kernel resizes DEFER_TASKRUN rings only; the SQPOLL thread waits
     * its own way (no registered wait there). */
    if (!(want & UF_DEFER_TASKRUN))
        want &= ~(uint32_t)UF_RESIZE;
    if (want & UF_SQPOLL)
        want &= ~(uint32_t)UF_WAIT_REG;
    *out = want;
    return 0;
}

void rs_uring_features_format(uint32_t f, char *out, size_t outlen)
{
    join_names(f, ",", out, outlen);
    if (!out[0])
        snprintf(out, outlen, "none");
}
