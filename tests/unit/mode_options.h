/* A test variant's backend options ("epoll-et", "epoll-lt", "epoll-inline",
 * "uring" plus a --uring-features list), given as the command line gives
 * them. lt_one_worker: epoll-lt also runs the file ops on a single worker
 * (the contract test covers both pool sizes that way). */
#ifndef RINGSERVE_TEST_MODE_OPTIONS_H
#define RINGSERVE_TEST_MODE_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static inline void mode_options(struct rs_config *cfg, const char *mode,
                                const char *features, bool lt_one_worker)
{
    char err[200];
    bool lt = strcmp(mode, "epoll-lt") == 0;
    int rc = rs_config_set_option(cfg, "epoll-mode", lt ? "lt" : "et", err, sizeof(err));
    if (rc == 0 && strcmp(mode, "epoll-inline") == 0)
        rc = rs_config_set_option(cfg, "fs", "inline", err, sizeof(err));
    if (rc == 0 && lt && lt_one_worker)
        rc = rs_config_set_option(cfg, "fs-threads", "1", err, sizeof(err));
    if (rc == 0)
        rc = rs_config_set_option(cfg, "uring-features", features, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", mode, err);
        abort();
    }
}

#endif
