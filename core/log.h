/* Logging's internals: which server the calling thread logs for. The
 * public half (levels, sinks, rs_log_*) is <ringserve/log.h>. */
#ifndef RINGSERVE_LOG_H
#define RINGSERVE_LOG_H

#include "ringserve/log.h"

struct rs_config;

/* The level outside any server (ringserve's own main: before the server
 * starts and after it ends). */
extern int rs_log_level;

/* From now on this thread logs for cfg (NULL: for no server). Returns the
 * previous binding, to be restored: rs_server_start binds the caller's
 * thread for the duration of the call, a loop thread for its life. */
const struct rs_config *rs_log_bind(const struct rs_config *cfg);

#endif
