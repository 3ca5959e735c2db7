/* Logging: one line per message, to a sink chosen per server.
 *
 * Every server logs through its own configuration (struct rs_config):
 * cfg->verbose is the level (RS_LOG_QUIET: errors only, RS_LOG_NORMAL,
 * RS_LOG_VERBOSE: debug lines too), cfg->log_fn the sink (NULL: stderr),
 * cfg->log_name the name each stderr line starts with (NULL: "ringserve").
 * Two servers in one process therefore log independently.
 *
 * rs_log_error/info/debug log for the server whose thread calls them: on a
 * loop thread (every protocol callback) the loop's server; on the thread
 * inside rs_server_start/wait/destroy, that server. Anywhere else (before
 * any server exists) they go to stderr as "ringserve: ..." at
 * RS_LOG_NORMAL.
 */
#ifndef RINGSERVE_PUBLIC_LOG_H
#define RINGSERVE_PUBLIC_LOG_H

#include "export.h"

/* A server's level (struct rs_config.verbose). */
#define RS_LOG_QUIET   (-1) /* errors only */
#define RS_LOG_NORMAL  0    /* errors and information (the start-up line...) */
#define RS_LOG_VERBOSE 1    /* everything, debug lines included */

/* What a line is, as the sink is told. */
enum rs_log_kind { RS_LOG_ERROR, RS_LOG_INFO, RS_LOG_DEBUG };

/* A sink: gets each line that passed the level, without the name prefix
 * and without a newline. Called from whichever thread logs (loop threads
 * included, possibly at once): a sink shared by loops must be
 * thread-safe. */
typedef void (*rs_log_fn)(void *data, enum rs_log_kind kind, const char *line);

RS_EXPORT void rs_log_error(const char *fmt, ...) RS_PRINTF(1, 2);
RS_EXPORT void rs_log_info(const char *fmt, ...) RS_PRINTF(1, 2);
RS_EXPORT void rs_log_debug(const char *fmt, ...) RS_PRINTF(1, 2);

#endif
