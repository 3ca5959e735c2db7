/* A loop of the program's own, without a server: a file tool, a client,
 * a test. The server makes its loops with rs_loop_init on its threads;
 * here the program gets one on the heap, on the backend its configuration
 * names, and runs it on its own thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "log.h"
#include "loop.h"

int rs_loop_new(const struct rs_config *cfg, struct rs_loop **out, char *err,
                size_t errlen)
{
    *out = NULL;
    const struct rs_backend_ops *ops = rs_backend_choose(cfg->backend, err, errlen);
    if (!ops)
        return -ENOSYS;
    struct rs_loop *loop = calloc(1, sizeof(*loop));
    if (!loop) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* Its lines go where the configuration says, from this thread on
     * (log.h); the loop is run from here too. */
    rs_log_bind(cfg);
    int rc = rs_loop_init(loop, ops, cfg, err, errlen);
    if (rc < 0) {
        rs_log_bind(NULL);
        free(loop);
        return rc;
    }
    *out = loop;
    return 0;
}

void rs_loop_stop(struct rs_loop *loop)
{
    rs_loop_request_stop(loop);
}

int rs_loop_destroy(struct rs_loop *loop)
{
    if (!loop)
        return 0;
    /* Freed from one of its own callbacks, or with streams or requests
     * still to call back: their completions would land in freed memory.
     * Refused, nothing freed (a leak is the caller's to fix, not a
     * use-after-free). A failed backend's streams are abandoned instead. */
    if (loop->running || (!loop->failed && (loop->streams || loop->nreqs))) {
        rs_log_error("rs_loop_destroy: %s: refused",
                     loop->running ? "called from the loop's own run"
                                   : "streams or requests still there (run the loop "
                                     "until rs_loop_run returns)");
        return -EBUSY;
    }
    rs_loop_fini(loop);
    free(loop);
    rs_log_bind(NULL);
    return 0;
}
