/* Run-time configuration: everything the command line can set. */
#ifndef RINGSERVE_PUBLIC_CONFIG_H
#define RINGSERVE_PUBLIC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "export.h"
#include "log.h"

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
    int verbose;          /* the log level: RS_LOG_QUIET, _NORMAL, _VERBOSE */
    rs_log_fn log_fn;     /* where this server's lines go; NULL: stderr */
    void *log_data;       /* log_fn's first argument */
    const char *log_name; /* stderr lines start "NAME: "; NULL: "ringserve" */
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
    /* The proxy (issue 12). */
    struct rs_upstream upstreams[RS_MAX_UPSTREAMS]; /* --upstream, resolved */
    uint32_t nupstreams;
    uint32_t connect_timeout_ms; /* outbound connects (default 3000; 0: none) */
    /* The embedding program's own pointer, untouched by the library: a
     * protocol reaches it from any loop as rs_loop_config(loop)->data, so
     * per-server state needs no globals. */
    void *data;
};

RS_EXPORT void rs_config_defaults(struct rs_config *cfg);

/* Parse argv as ringserve's own command line: anything that is not a
 * ringserve option is a usage error. 0, or -EINVAL on a usage error
 * (message already printed to stderr: exit 2). With --help or --version
 * the text is printed, exit_now is set and 0 returned: the command is done
 * (exit 0). A program with options of its own wants rs_config_parse_args. */
RS_EXPORT int rs_config_parse(struct rs_config *cfg, int argc, char **argv);

/* rs_config_parse_args flags. RS_CONFIG_EMBED: argv also holds the
 * program's own options and arguments; they are left in argv for the
 * program instead of being rejected. */
#define RS_CONFIG_EMBED 1u

/* What rs_config_parse_args saw besides options: the program prints its
 * own help (rs_config_options_usage adds ringserve's options) or version. */
#define RS_CONFIG_HELP    1
#define RS_CONFIG_VERSION 2

/* Parse the ringserve options in argv[1..*argc-1] into cfg, printing
 * nothing and leaving getopt's state (optind, opterr) alone, so that a
 * program can parse its own options before or after.
 *
 * With RS_CONFIG_EMBED, whatever is not a ringserve option (the program's
 * options, their values, operands, and everything from "--" on) stays in
 * argv, in order after argv[0]; *argc becomes their count and
 * argv[*argc] = NULL. Give the program's options values with "=" (--dir=X)
 * or make sure a value given apart never looks like a ringserve option.
 * Long options are matched whole (no abbreviations).
 *
 * Returns 0; RS_CONFIG_HELP or RS_CONFIG_VERSION when -h/--help or
 * -V/--version was given (nothing printed: the program decides); or
 * -EINVAL with a one-line reason in err (no "ringserve:" prefix, no
 * newline) for a bad value, a missing value, or (without
 * RS_CONFIG_EMBED) an unknown option or an operand. */
RS_EXPORT int rs_config_parse_args(struct rs_config *cfg, int *argc, char **argv,
                                   unsigned flags, char *err, size_t errlen);

/* "1M" -> 1048576. 0 or -EINVAL/-ERANGE. */
RS_EXPORT int rs_parse_size(const char *s, uint64_t max, uint64_t *out);

/* ringserve's --help: a usage line, then rs_config_options_usage. */
RS_EXPORT void rs_config_usage(FILE *out);
/* Every ringserve option with its help, grouped, for a program's own
 * --help. */
RS_EXPORT void rs_config_options_usage(FILE *out);

#endif
