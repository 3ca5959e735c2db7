/* The summary `ringserve --probe` opens with: which io_uring features
 * ringserve uses by default on this kernel, which it could use if asked,
 * and, for each one it cannot, the missing piece and the first kernel that
 * has it. The probe (probe/probe.c) says what the kernel can do; this file
 * knows what each feature needs, like rs_uring_supported() in features.c,
 * whose table of names it follows.
 *
 * The versions quoted are those of the io_uring documentation (liburing's
 * man pages); docs/kernels.md cites each and shows the features on Debian's
 * 6.1 and 6.12 kernels. A version is a hint, not a test: backports, a
 * sysctl or a seccomp filter can make any kernel answer differently, which
 * is why the probe tries everything. */
#include <stdio.h>
#include <string.h>

#include "features.h"
#include "probe.h"

#define OP_SEND_ZC 47 /* IORING_OP_SEND_ZC (kernel ABI; no liburing needed here) */

/* Why feature `bit` is not supported, from the probe's facts. */
static void why_missing(const struct rs_uring_support *s, uint32_t bit, char *why,
                        size_t len)
{
    const char *w = "not supported by this kernel";
    switch (bit) {
    case UF_MULTISHOT_ACCEPT:
        w = "multishot accept failed (IORING_ACCEPT_MULTISHOT, Linux 5.19+)";
        break;
    case UF_MULTISHOT_RECV:
        w = !s->buf_ring ? "needs buf-ring (Linux 5.19+)"
                         : "multishot recv failed (IORING_RECV_MULTISHOT, Linux 6.0+)";
        break;
    case UF_BUF_RING:
        w = "IORING_REGISTER_PBUF_RING refused (Linux 5.19+)";
        break;
    case UF_FIXED_FILES:
        w = !s->sparse_files ? "sparse file table refused (Linux 5.19+)"
                             : "accept into a kernel-chosen direct slot failed "
                               "(IORING_FILE_INDEX_ALLOC, Linux 5.19+)";
        break;
    case UF_RING_FD:
        w = "IORING_REGISTER_RING_FDS refused (Linux 5.18+)";
        break;
    case UF_DEFER_TASKRUN:
        w = s->coop_taskrun ? "IORING_SETUP_DEFER_TASKRUN refused (Linux 6.1+); "
                              "COOP_TASKRUN is used instead"
                            : "IORING_SETUP_DEFER_TASKRUN refused (Linux 6.1+)";
        break;
    case UF_SEND_ZC:
        w = (s->opcodes >> OP_SEND_ZC & 1)
                ? "IORING_OP_SEND_ZC is listed but failed (RLIMIT_MEMLOCK?)"
                : "no IORING_OP_SEND_ZC (Linux 6.0+)";
        break;
    case UF_SQPOLL:
        w = "IORING_SETUP_SQPOLL refused (unprivileged since Linux 5.13)";
        break;
    case UF_BUNDLE:
        w = !s->buf_ring ? "needs buf-ring (Linux 5.19+)"
                         : "no IORING_FEAT_RECVSEND_BUNDLE (Linux 6.10+)";
        break;
    case UF_BATCH_WAIT:
        w = "no IORING_FEAT_MIN_TIMEOUT (Linux 6.12+)";
        break;
    case UF_DIRECT_SOCKET:
        /* What the proxy's upstream sockets are instead, and why. */
        w = !(rs_uring_supported(s) & UF_FIXED_FILES)
                ? "needs fixed-files; outbound sockets are plain fds (socket(2))"
            : !s->socket_direct
                ? "IORING_OP_SOCKET into a direct slot failed (Linux 5.19+); outbound "
                  "sockets are plain fds (socket(2))"
                : "SOCKET_URING_OP_SETSOCKOPT failed (Linux 6.7+), needed for "
                  "TCP_NODELAY on a direct socket; outbound sockets are plain fds "
                  "(socket(2))";
        break;
    case UF_EXT_ARG:
        /* Not a failure: liburing falls back by itself. */
        w = "no IORING_FEAT_EXT_ARG (Linux 5.11+); a wait with a timeout queues "
            "an IORING_OP_TIMEOUT SQE instead";
        break;
    case UF_BUF_RECYCLE:
        w = "a recv waiting for data keeps its IORING_OP_PROVIDE_BUFFERS buffer "
            "(newer kernels recycle it; buf-ring, 5.19+, never pins one); without "
            "buf-ring a recv polls (IORING_OP_POLL_ADD) before it takes a buffer";
        break;
    case UF_RESIZE:
        w = !s->defer_taskrun ? "needs defer-taskrun: the kernel resizes only "
                                "DEFER_TASKRUN rings (Linux 6.1+)"
                              : "IORING_REGISTER_RESIZE_RINGS failed (Linux 6.13+); "
                                "the CQ is a fixed 8x the SQ";
        break;
    case UF_WAIT_REG:
        w = !(s->features & RS_FEAT_EXT_ARG)
                ? "needs ext-arg (Linux 5.11+)"
                : "IORING_REGISTER_MEM_REGION or a wait with IORING_ENTER_EXT_ARG_REG "
                  "failed (Linux 6.13+); each timed wait copies its arguments";
        break;
    case UF_DIRECT_PIPE:
        w = !(rs_uring_supported(s) & UF_FIXED_FILES)
                ? "needs fixed-files; a sendfile's splice pipe is pipe2(2) only, "
                  "and fails when the process is out of descriptors"
                : "IORING_OP_PIPE into direct slots failed (Linux 6.16+); a "
                  "sendfile's splice pipe is pipe2(2) only, and fails when the "
                  "process is out of descriptors";
        break;
    case UF_DIRECT_LISTEN:
        w = !(rs_uring_supported(s) & UF_FIXED_FILES)
                ? "needs fixed-files; the listener is a plain fd"
            : !s->sockopt_cmd
                ? "SOCKET_URING_OP_SETSOCKOPT failed (Linux 6.7+), needed for "
                  "SO_REUSEADDR on a direct socket; the listener is a plain fd"
                : "IORING_OP_BIND/IORING_OP_LISTEN on a direct socket failed "
                  "(Linux 6.11+); the listener is a plain fd";
        break;
    case UF_BUF_INC:
        w = !s->buf_ring ? "needs buf-ring (Linux 5.19+)"
                         : "a buffer ring with IOU_PBUF_RING_INC refused (Linux "
                           "6.12+); each receive takes a whole buffer";
        break;
    case UF_SHUTDOWN_OP:
        w = "no IORING_OP_SHUTDOWN (Linux 5.11+); a half-close is shutdown(2) "
            "called at once";
        break;
    }
    snprintf(why, len, "%s", w);
}

/* NAPI busy poll and zero-copy receive: never used, and why, with what
 * this kernel answered when they were tried. */
static void summarize_nic(const struct rs_uring_support *s, struct rs_probe_summary *out)
{
    snprintf(out->napi, sizeof(out->napi),
             "not used: %s; busy polling polls the NAPI instance a socket's packets "
             "came through, and loopback has none (SO_INCOMING_NAPI_ID 0): it needs a "
             "real NIC",
             !s->available ? "no io_uring"
             : s->napi     ? "IORING_REGISTER_NAPI accepted (Linux 6.9+)"
                           : "IORING_REGISTER_NAPI refused (Linux 6.9+)");
    snprintf(out->zcrx, sizeof(out->zcrx),
             "not used: zero-copy receive needs a NIC receive queue (header split, flow "
             "steering); registering loopback's queue: %s",
             !s->available    ? "no io_uring"
             : s->zcrx_lo_err ? rs_probe_errno_name(s->zcrx_lo_err)
                              : "accepted");
}

void rs_probe_summarize(const struct rs_uring_support *s, struct rs_probe_summary *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t supported = rs_uring_supported(s);
    uint32_t defaults = 0;
    char err[256];
    if (s->available)
        (void)rs_uring_features_parse("default", supported, &defaults, err, sizeof(err));
    if (!s->compiled) {
        out->backend = "epoll";
        snprintf(out->backend_why, sizeof(out->backend_why),
                 "io_uring support was not compiled in");
    } else if (!s->available) {
        out->backend = "epoll";
        snprintf(out->backend_why, sizeof(out->backend_why),
                 "io_uring is unavailable: %s", s->why);
    } else {
        out->backend = "uring";
    }
    rs_uring_features_format(defaults, out->defaults, sizeof(out->defaults));
    if (defaults & UF_DIRECT_SOCKET) {
        snprintf(out->outbound, sizeof(out->outbound),
                 "direct descriptors (IORING_OP_SOCKET into the fixed-file table, "
                 "TCP_NODELAY by SOCKET_URING_OP_SETSOCKOPT)");
    } else {
        /* The reason says "outbound sockets are plain fds" itself. */
        if (!s->available)
            snprintf(out->outbound, sizeof(out->outbound),
                     "plain fds (socket(2)): no io_uring");
        else if (supported & UF_DIRECT_SOCKET)
            snprintf(out->outbound, sizeof(out->outbound),
                     "plain fds (socket(2)): direct-socket is not in the default list");
        else
            why_missing(s, UF_DIRECT_SOCKET, out->outbound, sizeof(out->outbound));
    }
    summarize_nic(s, out);
    for (uint32_t bit = 1; bit & UF_ALL && out->n < RS_SUMMARY_MAX_FEATURES; bit <<= 1) {
        struct rs_feature_summary *f = &out->f[out->n++];
        f->name = rs_uring_feature_name(bit);
        if (defaults & bit) {
            f->verdict = RS_FEATURE_DEFAULT;
        } else if (supported & bit) {
            f->verdict = RS_FEATURE_OPT_IN;
        } else {
            f->verdict = RS_FEATURE_UNAVAILABLE;
            if (!s->available)
                snprintf(f->why, sizeof(f->why), "%s", out->backend_why);
            else
                why_missing(s, bit, f->why, sizeof(f->why));
        }
    }
}
