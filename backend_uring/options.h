/* The io_uring backend's own command-line options, their defaults and
 * their --help section. Compiled with or without liburing: a build
 * without it still parses --uring-features and friends, and the start
 * then says why the backend cannot run. */
#ifndef RINGSERVE_URING_OPTIONS_H
#define RINGSERVE_URING_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"

struct uring_options {
    const char *features;    /* --uring-features, parsed by features.c */
    uint32_t ring_entries;   /* SQ entries (CQ: 8x with features) */
    uint32_t sqpoll_idle_ms; /* SQPOLL thread idle time */
    uint32_t zc_threshold;   /* send_zc at or above this many bytes */
    bool zc_keep_copied;     /* keep send_zc where the kernel reports copying */
    uint32_t iowq_max[2];    /* io-wq workers: bounded, unbounded (0: the kernel's) */
};

extern const struct rs_backend_option rs_uring_options[];
extern const char rs_uring_help[];

/* The values of cfg, defaults where absent (checked when they were given). */
void rs_uring_options_read(const struct rs_config *cfg, struct uring_options *out);

#endif
