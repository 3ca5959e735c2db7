/* Kernel feature probe: what io_uring and epoll can do on this machine,
 * found by trying (creating rings, registering, running ops on a loopback
 * socket), never by reading version numbers. Used by `ringserve --probe`
 * and by the io_uring backend to resolve --uring-features. */
#ifndef RINGSERVE_PROBE_H
#define RINGSERVE_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct rs_uring_support {
    bool available;      /* a plain ring can be created */
    int unavailable_err; /* errno of the failure when !available (EPERM, ENOSYS...) */
    char why[160];       /* one line: why io_uring is unavailable, "" if available */
    uint32_t features;   /* io_uring_params.features of a plain ring */
    /* setup flags, each tested by creating a ring with it */
    bool sqpoll, single_issuer, defer_taskrun, coop_taskrun, taskrun_flag, submit_all,
        cqsize, no_sqarray;
    /* registrations, tested for real */
    bool buf_ring, sparse_files, ring_fd;
    /* ops tested on a loopback connection */
    bool multishot_accept, multishot_recv, accept_direct, send_zc;
    bool recvsend_bundle; /* IORING_FEAT_RECVSEND_BUNDLE */
    bool min_timeout;     /* IORING_FEAT_MIN_TIMEOUT: batched waits (6.12+) */
    /* added after the first version; the fields above keep their names */
    bool compiled;       /* built with liburing (RS_HAVE_URING) */
    int disabled_sysctl; /* /proc/sys/kernel/io_uring_disabled, -1 if absent */
    uint64_t opcodes;    /* bit n set: opcode n supported (IORING_REGISTER_PROBE) */
    /* IORING_OP_SOCKET into a kernel-chosen direct slot (5.19+) */
    bool socket_direct;
    /* SOCKET_URING_OP_SETSOCKOPT sets TCP_NODELAY, on a direct socket too (6.7+) */
    bool sockopt_cmd;
    /* A recv waiting for data holds no IORING_OP_PROVIDE_BUFFERS buffer
     * (older kernels, Debian's 5.10 among them, keep the one it took) */
    bool buf_recycle;
    /* a buffer ring registered with IOU_PBUF_RING_INC (6.12): receives may
     * share a buffer (probed; ringserve does not use it yet) */
    bool buf_ring_inc;
    /* Ring memory and waits (6.13), each tried; the backend's resize and
     * wait-reg features: */
    bool resize_rings; /* IORING_REGISTER_RESIZE_RINGS grew a DEFER_TASKRUN ring's
                          CQ with completions in it, and they came out in order */
    bool wait_region;  /* IORING_REGISTER_MEM_REGION (REG_WAIT_ARG) on a disabled
                          ring, then a wait read from it (IORING_ENTER_EXT_ARG_REG)
                          timed out as the region said */
    /* Need a network card: registration tried, never used on loopback */
    bool napi;       /* IORING_REGISTER_NAPI accepted (6.9) */
    int zcrx_lo_err; /* errno of IORING_REGISTER_ZCRX_IFQ on loopback's queue 0
                        (6.15; 0: accepted) */
    /* Newer than 6.18, for the 7.x survey (docs/io_uring-features.md) */
    bool sq_rewind;  /* a ring with IORING_SETUP_SQ_REWIND */
    bool zcrx_nodev; /* zcrx registered without a device (ZCRX_REG_NODEV: copies) */
    bool query;      /* IORING_REGISTER_QUERY answered without a ring */
    uint32_t query_request_ops, query_register_ops; /* what it answered */
    /* IORING_OP_PIPE (6.16) made a pipe into two kernel-chosen direct slots */
    bool pipe_direct;
    /* a direct socket bound and listening by IORING_OP_BIND/LISTEN (6.11)
     * accepted a connection */
    bool listen_direct;
};

/* Fill *s. Never fails: an unusable io_uring is a finding. The io_uring
 * trials live with the backend (backend_uring/probe_*.c); this header
 * and the report (probe/probe.c) only see their findings. */
void rs_probe_uring(struct rs_uring_support *s);

/* Names of the io_uring opcodes and ring features the report lists, from
 * backend_uring/probe_uring.c (kernel ABI values, known without liburing). */
struct rs_probe_bit {
    const char *key;
    unsigned bit; /* opcode number, or feature mask */
};
extern const struct rs_probe_bit rs_uring_opcode_names[], rs_uring_feature_names[];
extern const size_t rs_uring_nopcode_names, rs_uring_nfeature_names;

/* "EPERM", "ENOSYS"...: the symbolic name bug reports grep for. */
const char *rs_probe_errno_name(int err);

/* The same, probed once per process and kept: the server's backend choice
 * and every loop's io_uring set-up share one probe. */
const struct rs_uring_support *rs_probe_uring_cached(void);

/* The summary `--probe` opens with: what ringserve will do on this kernel.
 * Filled from the probe by the io_uring backend's side
 * (backend_uring/summary.c), which knows what each feature needs. */
enum rs_feature_verdict {
    RS_FEATURE_DEFAULT,     /* used with no options (--uring-features=default) */
    RS_FEATURE_OPT_IN,      /* works here, used only when asked for */
    RS_FEATURE_UNAVAILABLE, /* this kernel (or process) cannot: see why */
};

struct rs_feature_summary {
    const char *name; /* --uring-features name */
    enum rs_feature_verdict verdict;
    char why[224]; /* unavailable: what is missing and since when; else "" */
};

#define RS_SUMMARY_MAX_FEATURES 24

struct rs_probe_summary {
    const char *backend;   /* what --backend=auto runs: "uring" or "epoll" */
    char backend_why[200]; /* epoll: why not io_uring; uring: "" */
    char defaults[200];    /* the default feature list, as the start-up line says it */
    size_t n;
    struct rs_feature_summary f[RS_SUMMARY_MAX_FEATURES];
    /* What the outbound sockets (RS_OP_SOCKET: the proxy's upstreams) are
     * by default, and why: "direct descriptors (...)" or "plain fds: ..." */
    char outbound[256];
    /* io_uring features that need a network card, and what they do here:
     * NAPI busy poll and zero-copy receive (zcrx) */
    char napi[256], zcrx[256];
};

void rs_probe_summarize(const struct rs_uring_support *s, struct rs_probe_summary *out);

/* Print the full report (`ringserve --probe [--json]`). 0 or -errno. */
int rs_probe_report(FILE *out, bool json);

#endif
