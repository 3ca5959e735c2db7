/* The epoll backend's own command-line options, their defaults and its
 * --help section. */
#ifndef RINGSERVE_EPOLL_OPTIONS_H
#define RINGSERVE_EPOLL_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"

struct epoll_options {
    bool et;             /* --epoll-mode=et (default) or lt */
    bool fs_inline;      /* --fs=inline: file ops in the loop, blocking */
    uint32_t fs_threads; /* --fs-threads: worker threads for file ops */
};

extern const struct rs_backend_option rs_epoll_options[];
extern const char rs_epoll_help[];

/* The values of cfg, defaults where absent (checked when they were given). */
void rs_epoll_options_read(const struct rs_config *cfg, struct epoll_options *out);

#endif
