/* The event loop, as a protocol or a program sees it.
 *
 * A server runs one loop per thread (--threads), each with its own backend
 * instance (an io_uring ring or an epoll set), its own receive buffers, its
 * own streams and timers; loops share nothing on the hot path. Everything
 * a loop owns is used from that loop's thread only: every callback a
 * protocol gets runs there, so a protocol needs no locks for its per-loop
 * or per-stream state.
 *
 * The struct is opaque: the loop is reached from a stream
 * (rs_stream_loop) or given to a callback, and read through the accessors
 * below.
 */
#ifndef RINGSERVE_PUBLIC_LOOP_H
#define RINGSERVE_PUBLIC_LOOP_H

#include <stdint.h>

#include "export.h"

struct rs_loop;
struct rs_config;

/* The loop's time in CLOCK_MONOTONIC milliseconds: read once per loop
 * turn and again after the backend's wait, so it is the time at which the
 * current completion was delivered (what timers count from). */
RS_EXPORT uint64_t rs_loop_now(struct rs_loop *loop);

/* The configuration the server was started with (rs_server_start): its
 * limits (max_pending...) and the program's own pointer (cfg->data). */
RS_EXPORT const struct rs_config *rs_loop_config(const struct rs_loop *loop);

/* The loop's number in its server, 0 to threads - 1 (for logs and for
 * sharding a program's own state by loop). */
RS_EXPORT int rs_loop_index(const struct rs_loop *loop);

/* The protocol's per-loop state: NULL until set, typically from the
 * protocol's loop_init, and freed by its loop_fini. */
RS_EXPORT void *rs_loop_data(const struct rs_loop *loop);
RS_EXPORT void rs_loop_set_data(struct rs_loop *loop, void *data);

#endif
