/* The server: listeners and loops (one per thread) as a library object.
 *
 * What belongs to the process stays with the program: signal handling,
 * raising RLIMIT_NOFILE, SIGPIPE, exit statuses, the final statistics line.
 * core/main.c is ringserve's own program; tools/example_proto.c a minimal
 * one. The library never installs a signal handler, never changes a limit
 * and never exits; its loop threads block every signal, so signals reach
 * the program's threads.
 *
 *   struct rs_server *srv;
 *   int rc = rs_server_start(&cfg, &srv);   // listening once it returns 0
 *   ...                                      // rs_server_stop() to drain
 *   while (rs_server_wait(srv, 100) == -ETIMEDOUT) { ... }
 *   rc = rs_server_destroy(srv, &totals);
 *
 * Several servers may run in one process, each with its own rs_config.
 */
#ifndef RINGSERVE_PUBLIC_SERVER_H
#define RINGSERVE_PUBLIC_SERVER_H

#include <stdint.h>

#include "config.h"
#include "export.h"
#include "stats.h"

struct rs_server;

/* Choose the backend, open the listeners, start one loop per thread, and
 * print the start-up line ("listening on ..."). cfg must stay valid until
 * rs_server_destroy; the server fills in what it resolved (the port when 0
 * was asked, max_conns). 0 with *out set, or -errno with the reason logged:
 * -EINVAL when this configuration cannot be served here (a usage error:
 * --max-conns above what the backend can hold, a feature the kernel lacks,
 * --accept=handoff without the means), -ENOSYS when no backend is
 * available, anything else from the system (-EADDRINUSE...). */
RS_EXPORT int rs_server_start(struct rs_config *cfg, struct rs_server **out);

/* The port the server listens on. */
RS_EXPORT uint16_t rs_server_port(const struct rs_server *srv);

/* Ask every loop to drain its connections (--drain-timeout) and stop.
 * Returns at once. Thread-safe and async-signal-safe: it may be called from
 * a signal handler. Calling it again does nothing more. */
RS_EXPORT void rs_server_stop(struct rs_server *srv);

/* Wait up to timeout_ms (< 0: without limit) for every loop to finish,
 * printing the --stats-interval lines meanwhile. 0 once all have finished,
 * -ETIMEDOUT before. When a loop fails, the others are asked to stop.
 * -EDEADLK, at once, when called from one of this server's own loops (a
 * protocol callback): that loop could never finish while it waits. */
RS_EXPORT int rs_server_wait(struct rs_server *srv, int timeout_ms);

/* Stop (if still running), wait for the loops, add their statistics into
 * *totals (if not NULL) and free everything. 0, or -EIO when a loop
 * failed (already logged); -EDEADLK, nothing done, when called from one of
 * this server's own loops (rs_server_stop may be called there; destroy
 * from the program's thread). */
RS_EXPORT int rs_server_destroy(struct rs_server *srv, struct rs_stats *totals);

#endif
