/* io_uring features: names, the --uring-features list, kernel support. */
#ifndef RINGSERVE_URING_FEATURES_H
#define RINGSERVE_URING_FEATURES_H

#include <stddef.h>
#include <stdint.h>

#include "probe.h"

/* Kernel ABI values the support check reads from the probe (known without
 * liburing, which a build may lack). */
#define RS_FEAT_EXT_ARG   (1u << 8) /* IORING_FEAT_EXT_ARG in io_uring_params.features */
#define RS_OP_SHUTDOWN_NR 34        /* IORING_OP_SHUTDOWN, an opcode number */

enum {
    UF_MULTISHOT_ACCEPT = 1u << 0,
    UF_MULTISHOT_RECV = 1u << 1,
    UF_BUF_RING = 1u << 2,
    UF_FIXED_FILES = 1u << 3,
    UF_RING_FD = 1u << 4,
    UF_DEFER_TASKRUN = 1u << 5,
    UF_SEND_ZC = 1u << 6,
    UF_SQPOLL = 1u << 7,
    UF_BUNDLE = 1u << 8,
    UF_BATCH_WAIT = 1u << 9,
    UF_DIRECT_SOCKET = 1u << 10, /* outbound sockets direct too (needs fixed-files) */
    /* Interfaces of Linux 5.11 that every ring uses where the kernel has
     * them; switchable so that a newer kernel can run the fallbacks an
     * older one needs (--uring-features=none is a 5.10 ring). */
    UF_EXT_ARG = 1u << 11,     /* waits with a timeout: IORING_ENTER_EXT_ARG */
    UF_SHUTDOWN_OP = 1u << 12, /* RS_OP_SHUTDOWN: IORING_OP_SHUTDOWN */
    /* Without buf-ring: a recv may wait for data holding no buffer (the
     * kernel recycles it); else each recv polls first, then takes one. */
    UF_BUF_RECYCLE = 1u << 13,
    /* The buffer ring's buffers are consumed incrementally (6.12): several
     * receives share one, each lent as a slice (needs buf-ring; bundles
     * take whole buffers, so bundle turns it off). */
    UF_BUF_INC = 1u << 14,
    /* Ring memory and waits (6.13; DEFER_TASKRUN rings only for resize): */
    UF_RESIZE = 1u << 15,   /* start with a small CQ, grow it before it fills */
    UF_WAIT_REG = 1u << 16, /* timed waits read from a registered region */
    /* Direct descriptors where a process fd would be: a splice pipe when
     * pipe2(2) finds the process out of descriptors (IORING_OP_PIPE), the
     * listening socket (IORING_OP_BIND/LISTEN). Both need fixed-files. */
    UF_DIRECT_PIPE = 1u << 17,
    UF_DIRECT_LISTEN = 1u << 18,
    UF_ALL = (1u << 19) - 1,
    /* what "default" means: everything but the opt-in ones */
    UF_OPT_IN = UF_SQPOLL | UF_BUNDLE | UF_BATCH_WAIT | UF_BUF_INC | UF_WAIT_REG |
                UF_DIRECT_LISTEN,
    /* what a ring without any of the 5.19+ ones still uses */
    UF_BASELINE = UF_EXT_ARG | UF_SHUTDOWN_OP | UF_BUF_RECYCLE,
};

/* Features this kernel supports, from the probe. */
uint32_t rs_uring_supported(const struct rs_uring_support *s);

/* Parse LIST against what the kernel supports. 0 with *out set, or -EINVAL
 * with a one-line reason in err (unknown name, unsupported feature). */
int rs_uring_features_parse(const char *list, uint32_t supported, uint32_t *out,
                            char *err, size_t errlen);

/* The name of one feature bit ("?" for none). */
const char *rs_uring_feature_name(uint32_t bit);

/* "multishot-accept,buf-ring" ("none" when empty). */
void rs_uring_features_format(uint32_t f, char *out, size_t outlen);

#endif
