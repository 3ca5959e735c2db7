/* Run-time configuration: everything the command line can set. */
#ifndef RINGSERVE_CONFIG_H
#define RINGSERVE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

struct rs_protocol;

enum rs_backend_choice { RS_BACKEND_AUTO, RS_BACKEND_URING, RS_BACKEND_EPOLL };
enum rs_epoll_mode { RS_EPOLL_ET, RS_EPOLL_LT };
/* Scheduling policy of the loop threads (--sched). */
enum rs_sched { RS_SCHED_AUTO, RS_SCHED_NORMAL, RS_SCHED_BATCH };

/* --max-conns=max */
#define RS_MAX_CONNS_LIMIT UINT32_MAX

/* --protocol=proxy: where to connect. */
#define RS_MAX_UPSTREAMS 64
struct rs_upstream {
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct rs_config {
    enum rs_backend_choice backend;
    enum rs_epoll_mode epoll_mode;
    char listen_host[256];
    uint16_t listen_port;
    uint64_t max_pending;       /* bytes of queued output before recv pauses */
    const char *uring_features; /* the --uring-features list, parsed by the backend */
    uint32_t buffers;           /* lent receive buffers per loop */
    uint32_t buffer_size;       /* bytes each */
    uint32_t zc_threshold;      /* send_zc at or above this many bytes */
    bool zc_keep_copied;        /* keep send_zc where the kernel reports copying */
    uint32_t sqpoll_idle_ms;
    uint32_t ring_entries;   /* io_uring SQ entries (CQ: 8x with features) */
    uint32_t max_conns;      /* 0: derived from RLIMIT_NOFILE; RS_MAX_CONNS_LIMIT:
                                as many as the backend can hold */
    uint32_t idle_timeout_s; /* 0: off */
    uint32_t drain_timeout_ms;
    uint32_t threads; /* 0: one per online CPU */
    /* How connections reach the loops: each its own SO_REUSEPORT listener
     * (the kernel hashes), or loop 0 accepting for all and handing over
     * (RS_CAP_HANDOFF); auto: handoff where every loop can. */
    enum { RS_ACCEPT_AUTO, RS_ACCEPT_HANDOFF, RS_ACCEPT_REUSEPORT } accept_mode;
    bool pin;
    enum rs_sched sched; /* batch: SCHED_BATCH, no wake-up preemption; auto:
                            batch while a loop serves several connections */
    bool nodelay;
    int verbose;          /* -1 quiet, 0 normal, 1 verbose */
    const char *protocol; /* "echo", "discard", "chargen" */
    /* A protocol of the embedding program's own; overrides `protocol`. */
    const struct rs_protocol *proto;
    bool probe, json;
    bool exit_now;              /* --help/--version: printed, nothing more to do */
    uint32_t stats_interval_ms; /* 0: no interval lines */
    bool stats_json;            /* every statistics line one JSON object */
    /* Files (issue 13). */
    uint32_t fs_threads; /* epoll: worker threads for file ops (default 4) */
    bool fs_inline;      /* epoll: perform file ops in the loop, blocking */
    bool no_sendfile;    /* http: --sendfile=off, copy large bodies through memory */
    const char *root;    /* --protocol=http: the directory served */
    uint32_t open_file_cache;          /* http: open files kept per loop; 0: off */
    uint32_t open_file_cache_valid_ms; /* http: re-check a cached file after this */
    uint32_t header_timeout_ms; /* http: time to receive a request head (0: none) */
    /* The proxy (issue 12). */
    struct rs_upstream upstreams[RS_MAX_UPSTREAMS]; /* --upstream, resolved */
    uint32_t nupstreams;
    uint32_t connect_timeout_ms; /* outbound connects (default 3000; 0: none) */
};

void rs_config_defaults(struct rs_config *cfg);

/* Parse argv. 0, or -EINVAL on a usage error (message already printed to
 * stderr: exit 2). With --help or --version the text is printed, exit_now
 * is set and 0 returned: the command is done (exit 0). */
int rs_config_parse(struct rs_config *cfg, int argc, char **argv);

/* "1M" -> 1048576. 0 or -EINVAL/-ERANGE. */
int rs_parse_size(const char *s, uint64_t max, uint64_t *out);

void rs_config_usage(FILE *out);

#endif
