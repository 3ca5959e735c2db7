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
 * below. A program that needs a loop without a server (a file tool, a
 * client making outbound connections) makes its own with rs_loop_new.
 */
#ifndef RINGSERVE_PUBLIC_LOOP_H
#define RINGSERVE_PUBLIC_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "export.h"

struct rs_loop;
struct rs_config;
struct rs_stats;

/* What a loop's backend can do (rs_loop_caps), declared by the backend
 * when the loop starts: a program branches on these, never on the
 * backend's name. */
/* Accepted sockets are direct descriptors (io_uring fixed files), not
 * process fds: only the loop's operations can use or close them. */
#define RS_CAP_DIRECT_FD (1u << 0)
/* Outbound connections (rs_stream_connect). */
#define RS_CAP_CONNECT (1u << 1)
/* File IO is asynchronous in the kernel (no worker threads, no blocking). */
#define RS_CAP_FILE_NATIVE (1u << 2)
/* Connections can be handed from one loop to another (--accept=handoff). */
#define RS_CAP_HANDOFF (1u << 3)
/* File IO at all, natively or on worker threads (io_uring on a kernel
 * older than 5.6 has none). */
#define RS_CAP_FILE_OPS (1u << 4)
/* The backend makes outbound sockets itself (else the core calls socket(2)). */
#define RS_CAP_SOCKET (1u << 5)
/* ...and they can be direct descriptors. */
#define RS_CAP_SOCKET_DIRECT (1u << 6)
/* A file's bytes go to a socket without passing through user memory
 * (rs_stream_write_file). */
#define RS_CAP_SENDFILE (1u << 7)
/* The loop's listening socket can be a direct descriptor too: with
 * RS_CAP_DIRECT_FD, a server on it holds no process descriptor per
 * connection nor for its listener. */
#define RS_CAP_LISTEN_DIRECT (1u << 8)

/* A loop of the program's own, on the backend cfg->backend names ("auto":
 * the first that can run here) with cfg's buffers and limits; cfg must
 * outlive it. Its protocol (cfg->proto or cfg->protocol) matters only
 * for streams it accepts, which a loop of one's own does not: it has no
 * listener. The calling thread logs for cfg until rs_loop_destroy, and
 * is the one to run the loop. 0 with *out set, or -errno with a one-line
 * reason in err: -ENOSYS when the backend cannot run here, -EINVAL for a
 * configuration it refuses. */
RS_EXPORT int rs_loop_new(const struct rs_config *cfg, struct rs_loop **out, char *err,
                          size_t errlen);

/* Run the loop on the calling thread until nothing is left that could
 * still produce a callback: no stream (open or closing), no request in
 * flight, no active referenced timer (timer.h). A loop of one's own has
 * no listener, so it returns once its work is done; rs_loop_stop ends it
 * earlier, gracefully (streams get cfg->drain_timeout_ms, then a reset).
 * 0, or -errno when the backend failed; -EBUSY, at once, from inside its
 * own run (a callback). */
RS_EXPORT int rs_loop_run(struct rs_loop *loop);

/* Ask the loop to stop: from its own callbacks, another thread or a
 * signal handler (async-signal-safe); rs_loop_run returns once it has. */
RS_EXPORT void rs_loop_stop(struct rs_loop *loop);

/* Free a loop from rs_loop_new once rs_loop_run has returned (or if it
 * never ran), its streams closed and the owner's timers stopped (one left
 * active is made inactive: never fired, safe to stop). 0 (NULL is
 * ignored too), or -EBUSY with nothing freed when called from inside its
 * own rs_loop_run (a callback) or while streams or file requests are still
 * there: they would call back into freed memory; run the loop until
 * rs_loop_run returns. */
RS_EXPORT int rs_loop_destroy(struct rs_loop *loop);

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

/* A graceful stop has begun on this loop (rs_loop_stop, rs_server_stop):
 * answer with a last reply, start nothing long. */
RS_EXPORT bool rs_loop_stopping(const struct rs_loop *loop);

/* The RS_CAP_* bits of the loop's backend. */
RS_EXPORT uint32_t rs_loop_caps(const struct rs_loop *loop);

/* The backend's name ("uring", "epoll"...), for messages. */
RS_EXPORT const char *rs_loop_backend_name(const struct rs_loop *loop);

/* The loop's counters (<ringserve/stats.h>), summed into the server's
 * totals. Written by the loop's thread only: a protocol adds to those
 * meant for it (sessions, bytes_up, bytes_down, connect_failed). */
RS_EXPORT struct rs_stats *rs_loop_stats(struct rs_loop *loop);

/* The loop's lent buffers outside a stream (a file read into one:
 * rs_fs_read_lent in <ringserve/fs.h>; a stream's own pass through
 * on_data and rs_stream_release/rs_stream_write_lent instead).
 * rs_loop_buf: the bytes of buffer bid (rs_config.buffer_size of them),
 * or NULL for a bid the loop does not have. rs_loop_buf_release gives
 * buffer bid back to the loop, exactly once per buffer lent; the bytes
 * may be reused at once. */
RS_EXPORT const uint8_t *rs_loop_buf(const struct rs_loop *loop, uint16_t bid);
RS_EXPORT void rs_loop_buf_release(struct rs_loop *loop, uint16_t bid);

/* The process's descriptor limit. A loop's backend may keep a few process
 * descriptors only to save syscalls (io_uring: a socket's installed fd
 * from one file sent on it to the next, up to 16 per loop; epoll keeps
 * none), and gives them back when one of its own ops finds the process
 * out of descriptors. A call of the program's own that makes a
 * descriptor (open(2), socket(2), dup(2)...) and fails with EMFILE or
 * ENFILE asks for them with rs_loop_give_back_fds(loop, -errno): true
 * when some were closed, so that one more try may succeed; false when
 * none was held, or err is another error. Only this loop's: another
 * loop's, in the same process, stay. rs_loop_dup_fd does both for a
 * duplicate: fcntl(fd, F_DUPFD_CLOEXEC, 0), tried once more when the
 * loop gave some back; the new descriptor, or -errno. Both from the
 * loop's thread only. */
RS_EXPORT bool rs_loop_give_back_fds(struct rs_loop *loop, int err);
RS_EXPORT int rs_loop_dup_fd(struct rs_loop *loop, int fd);

/* The protocol's per-loop state: NULL until set, typically from the
 * protocol's loop_init, and freed by its loop_fini. */
RS_EXPORT void *rs_loop_data(const struct rs_loop *loop);
RS_EXPORT void rs_loop_set_data(struct rs_loop *loop, void *data);

#endif
