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

/* --notsent-lowat's default: 0, the kernel's (no limit of our own).
 * Without a limit a large response (sendfile) fills the whole send buffer
 * (4 MiB by default), and the kernel sends most of it later, from the ACK
 * processing of the peer: on the peer's CPU when the peer is a local
 * process (loopback, a proxy's upstream). A small unsent queue (256 KiB)
 * makes the server's own send transmit its bytes. Measured on a quiet
 * machine (docs/http.md) that won 10-24 % of HTTP's 64 MiB rate with the
 * client on the server's CPU and the proxy's 1 MiB throughput with the
 * proxy on its own, but lost 10-15 % of HTTP's 64 MiB rate with the
 * client on another CPU, where servers are deployed: an opt-in. */
#define RS_NOTSENT_LOWAT_DEFAULT 0u

/* Options owned by backends, at most this many given at once. */
#define RS_MAX_BACKEND_OPTIONS 16

struct rs_config {
    /* "auto" (the first backend available here, in order of preference)
     * or a backend's name: "uring", "epoll", or one a program registered
     * (<ringserve/backend.h>). */
    const char *backend;
    char listen_host[256];
    uint16_t listen_port;
    uint64_t max_pending;    /* bytes of queued output before recv pauses */
    uint32_t buffers;        /* lent receive buffers per loop */
    uint32_t buffer_size;    /* bytes each */
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
    enum rs_sched sched; /* normal (default): the kernel's policy; batch:
                            SCHED_BATCH, no wake-up preemption; auto: batch
                            while a loop serves several connections */
    bool nodelay;
    /* TCP_NOTSENT_LOWAT of the listening sockets, inherited by accepted
     * ones: unsent bytes the kernel holds for a connection before a send
     * returns short (0: the kernel's default, net.ipv4.tcp_notsent_lowat). */
    uint32_t notsent_lowat;
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
    /* Files. */
    bool no_sendfile; /* http: --sendfile=off, copy large bodies through memory */
    const char *root; /* --protocol=http: the directory served */
    uint32_t header_timeout_ms;    /* http: time to receive a request head (0: none) */
    uint32_t send_timeout_ms;      /* http: a response's output making no progress
                                      this long is cut with a reset (0: none) */
    uint32_t keepalive_timeout_ms; /* http: a connection idle between requests
                                      this long is closed (0: none) */
    uint32_t open_file_cache;      /* http: open files kept per loop; 0: off */
    uint32_t open_file_cache_valid_ms; /* http: re-check a cached file after this */
    /* The proxy. */
    struct rs_upstream upstreams[RS_MAX_UPSTREAMS]; /* --upstream, resolved */
    uint32_t nupstreams;
    uint32_t connect_timeout_ms; /* outbound connects (default 3000; 0: none) */
    /* The options backends own (--ring-entries=8...), as given, in the
     * order given; read them with rs_config_option. */
    struct {
        const char *name, *value; /* value: "" for a flag */
    } backend_options[RS_MAX_BACKEND_OPTIONS];
    uint32_t nbackend_options;
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

/* A backend's option: the value last given for --name (no dashes), "" for
 * a flag given, NULL when absent (the backend's default). */
RS_EXPORT const char *rs_config_option(const struct rs_config *cfg, const char *name);

/* Give a backend's option as the command line would (value NULL for a
 * flag): checked by its backend, then stored. value must outlive cfg.
 * 0; -EINVAL with the reason in err when no backend owns name or the
 * value is refused; -ENOSPC past RS_MAX_BACKEND_OPTIONS. */
RS_EXPORT int rs_config_set_option(struct rs_config *cfg, const char *name,
                                   const char *value, char *err, size_t errlen);

/* "1M" -> 1048576. 0 or -EINVAL/-ERANGE. */
RS_EXPORT int rs_parse_size(const char *s, uint64_t max, uint64_t *out);

/* ringserve's --help: a usage line, then rs_config_options_usage. */
RS_EXPORT void rs_config_usage(FILE *out);
/* Every ringserve option with its help, grouped, for a program's own
 * --help. */
RS_EXPORT void rs_config_options_usage(FILE *out);

#endif
