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

#include "../skip_reason.h"
#include "config.h"
#include "loop.h"

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

/* Does a loop of this backend and mode start here? 0 when it does; 77
 * after a SKIP-REASON line when the kernel lacks what the variant asks for
 * (checked against the probe by scripts/test-summary.py); 1 for anything
 * else (epoll failing, an unknown feature name...), which is a failure. */
static inline int mode_loop_starts(const struct rs_backend_ops *backend, const char *mode,
                                   const char *features, bool lt_one_worker)
{
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    mode_options(&cfg, mode, features, lt_one_worker);
    struct rs_loop loop;
    char err[256] = "";
    if (rs_loop_init(&loop, backend, &cfg, err, sizeof(err)) < 0) {
        if (strncmp(mode, "epoll", 5) != 0 && rs_skip_reason_for(err))
            return 77;
        fprintf(stderr, "FAIL: %s: the loop does not start: %s\n", mode, err);
        return 1;
    }
    rs_loop_fini(&loop);
    return 0;
}

#endif
