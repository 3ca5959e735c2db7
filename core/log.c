/* Per-server logging through a thread binding.
 *
 * Every line is logged for "the server of the calling thread": a loop
 * thread is bound to its server for its whole life, the thread inside
 * rs_server_start/wait/destroy for the call. A thread-local pointer makes
 * that free for the callers (no server argument threaded through every
 * backend and protocol function) and keeps two servers in one process
 * apart: each thread serves one server at a time. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

#include "config.h"

int rs_log_level;

static _Thread_local const struct rs_config *bound;

const struct rs_config *rs_log_bind(const struct rs_config *cfg)
{
    const struct rs_config *prev = bound;
    bound = cfg;
    return prev;
}

static void vlog(enum rs_log_kind kind, const char *fmt, va_list ap)
{
    const struct rs_config *cfg = bound;
    int level = cfg ? cfg->verbose : rs_log_level;
    if ((kind == RS_LOG_INFO && level < RS_LOG_NORMAL) ||
        (kind == RS_LOG_DEBUG && level < RS_LOG_VERBOSE))
        return;
    /* One fprintf-sized write per line keeps lines from several loops whole. */
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    if (cfg && cfg->log_fn) {
        cfg->log_fn(cfg->log_data, kind, line);
        return;
    }
    const char *name = cfg && cfg->log_name ? cfg->log_name : "ringserve";
    fprintf(stderr, "%s: %s\n", name, line);
}

void rs_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(RS_LOG_ERROR, fmt, ap);
    va_end(ap);
}

void rs_log_info(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(RS_LOG_INFO, fmt, ap);
    va_end(ap);
}

void rs_log_debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(RS_LOG_DEBUG, fmt, ap);
    va_end(ap);
}
