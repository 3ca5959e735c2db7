/* One event loop: a backend instance, a buffer pool, streams, timers.
 * With --threads=N there are N loops, sharing nothing on the hot path.
 * This is the loop's inside; protocols and programs see the opaque handle
 * and its accessors of <ringserve/loop.h>.
 *
 * Each turn of rs_loop_run: fire the timers that are due, re-arm streams
 * that starved for buffers, then wait in the backend's run() for at most
 * the time until the next timer and dispatch completions.
 *
 * Liveness (libuv's uv_loop_alive). rs_loop_run returns when nothing is
 * left that could still produce a callback: no listener accepting, no
 * stream (open or closing), no request in flight (rs_loop_req_start), no
 * active referenced timer (timer.h), and nothing the backend still holds
 * (its busy()). A server's loop has a listener until it is stopped, so it
 * runs until then; a loop without one (a file tool) runs until its
 * requests are done.
 *
 * Stop (rs_loop_request_stop, from any thread or a signal handler) is a
 * graceful end in three steps, all on the loop's own thread:
 *   1. the listener stops accepting, and each accepted connection still
 *      open is told: the protocol's on_stop (protocol.h) decides whether
 *      it finishes its work or ends now; without on_stop the core stops
 *      it by default (rs_stream_stop in stream.h: queued output is sent,
 *      a FIN only to a peer that finished sending, else a reset);
 *   2. the loop keeps running while anything above is alive, for at most
 *      --drain-timeout;
 *   3. at that deadline every stream left is reset (RST: its peer can
 *      tell the cut from a complete transfer), referenced timers stop
 *      counting, and the loop ends once the resets completed and every
 *      request in flight came back (a request cannot be recalled: its
 *      memory is the kernel's until it completes).
 * --drain-timeout=0 means no drain at all: step 1 resets every
 * connection at once, without asking the protocol.
 *
 * Everything a loop owns is finished by the thread that runs it:
 * rs_loop_fini must be called on the loop's thread (io_uring's ring with a
 * registered fd or SINGLE_ISSUER cannot be driven from another), after
 * rs_loop_run returned. */
#ifndef RINGSERVE_LOOP_H
#define RINGSERVE_LOOP_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "bufpool.h"
#include "config.h"
#include "ringserve/loop.h"
#include "stats.h"
#include "timer.h"

struct rs_stream;
struct rs_chunk;
struct rs_listener;
struct rs_protocol;
struct rs_fs_req;

/* The loops of one server. --max-conns counts connections in all of them,
 * and with handoff (RS_CAP_HANDOFF, io_uring direct descriptors) only loop
 * 0 accepts: it hands each connection to the loop with the most room, so
 * no loop's descriptor table overflows while another has room. */
struct rs_group {
    struct rs_loop **loops;
    unsigned n;
    uint32_t max_conns; /* for the whole server */
    atomic_uint conns;  /* held by all loops, including those in transit */
    bool handoff;       /* loop 0 accepts for everyone */
};

struct rs_loop {
    const struct rs_backend_ops *ops;
    void *backend; /* the backend's private state */
    uint32_t caps; /* RS_CAP_* declared by the backend */
    const struct rs_config *cfg;
    const struct rs_protocol *proto;
    struct rs_bufpool pool;
    struct rs_stats stats;
    /* --stats-interval: where each turn posts a snapshot (else NULL). */
    struct rs_stats_board *board;
    int wake_fd; /* eventfd; backends watch it, wake() writes it */
    int index;   /* loop number, for logs */

    void *proto_data; /* the protocol's per-loop state (loop_init/loop_fini) */

    struct rs_listener *listener;
    uint32_t nstreams; /* sockets open: accepted and outbound */
    uint32_t max_conns;
    uint32_t fd_cap; /* the backend's own limit on accepted sockets (0: none) */
    /* The largest RS_OP_SENDFILE op a stream submits, the backend's
     * choice at init (0: core/stream_out.c's default, 1 MiB). */
    uint32_t sendfile_op_max;
    struct rs_group *group;    /* NULL: a loop on its own */
    atomic_uint load;          /* connections here, plus those handed over to come */
    struct rs_stream *streams; /* all live streams (for drain, idle scan) */
    struct rs_stream *starved, *starved_tail; /* recv ended on -ENOBUFS; FIFO */
    uint32_t nstarved;
    /* File requests (fs.c) whose submit or cancel the backend refused,
     * retried each turn; a doubly linked list through the requests. */
    struct rs_fs_req *fs_retry;
    struct rs_stream *free_streams; /* recycled stream structs */
    struct rs_chunk *free_chunks;   /* recycled chunk nodes */
    uint32_t nfree_streams, nfree_chunks;
    struct rs_timer **timers; /* min-heap by due_ms (timer.c) */
    uint32_t ntimers, timers_cap;
    struct rs_timer idle_timer, drain_timer;
    uint32_t nretry;      /* streams with a refused cancel/shutdown/close */
    uint32_t nreqs;       /* requests in flight (rs_loop_req_start/done) */
    uint32_t ntimers_ref; /* active timers that keep the loop alive (timer.c) */
    uint64_t now_ms;      /* read once per loop turn (rs_loop_now, now_stale) */
    bool now_stale;       /* unread since the last wait: rs_loop_now reads the clock */
    /* Timers were due after a wait that brought completions: they fire
     * after one more wait, which does not block (rs_loop_turn). */
    bool timers_deferred;
    volatile sig_atomic_t stop_requested;
    bool draining;
    bool sched_batch;   /* --sched=auto: this loop's thread is SCHED_BATCH now */
    bool sched_refused; /* --sched=auto: the kernel refused a switch; stop trying */
    bool drain_aborted; /* the drain deadline passed: everything was aborted */
    bool failed;        /* the backend failed: streams are abandoned */
    bool running;       /* rs_loop_run is on this thread's stack */
};

/* Set up the loop and its backend. 0, -EINVAL (configuration), or -errno.
 * On the thread that will run it (io_uring: SINGLE_ISSUER, DEFER_TASKRUN). */
int rs_loop_init(struct rs_loop *loop, const struct rs_backend_ops *ops,
                 const struct rs_config *cfg, char *err, size_t errlen);
/* Tear the loop down, on its own thread. Requests still in flight (a loop
 * that was never run, or a test driving it by hand) are waited for first:
 * their completions are delivered here, before the protocol's loop_fini
 * and before the backend goes. */
void rs_loop_fini(struct rs_loop *loop);

/* (rs_loop_run is public: <ringserve/loop.h>.) */

/* A request (an op that is not a stream's: a file op, a protocol's own
 * submission) is in flight: the loop stays alive until the matching
 * rs_loop_req_done, which its completion calls. Requests are what a loop
 * cannot abandon: their buffers are the kernel's until they complete. */
void rs_loop_req_start(struct rs_loop *loop);
void rs_loop_req_done(struct rs_loop *loop);

/* A graceful stop has begun on this loop (protocols: answer with
 * "Connection: close", start nothing long). */
static inline bool rs_loop_stopping_inline(const struct rs_loop *loop)
{
    return loop->draining;
}
#define rs_loop_stopping(loop) rs_loop_stopping_inline(loop)

/* One turn of rs_loop_run: the stop, starved streams and retries, the
 * backend's wait and the completions it brought, then the timers due by
 * then (after the completions: a deadline that passed while the loop had
 * no CPU, or was stopped, is judged with what arrived meanwhile; a wait
 * that brought completions or ended with EINTR defers them by one
 * non-blocking wait). 1: go on; 0: nothing is
 * alive any more; -errno: the backend failed. Public for tests that drive
 * the core by hand. */
int rs_loop_turn(struct rs_loop *loop);

/* Re-arm starved streams, as many as there are free buffers (done once
 * per loop turn; public for tests that drive the core by hand). */
void rs_loop_feed_starved(struct rs_loop *loop);

/* For stream.c: an accepted stream's close was issued (it stops counting
 * against --max-conns). */
void rs_loop_stream_closing(struct rs_loop *loop);

/* For stream.c: a stream was freed (a paused listener may accept again);
 * accepted: it came from the listener (its slot in the loop's load). */
void rs_loop_stream_closed(struct rs_loop *loop, bool accepted);

/* How long a loop with refused operations to retry (rs_loop_retry) may
 * sleep: a queue that was full drains on the next run(); a backend out of
 * memory is not hammered in a spin. */
#define RS_RETRY_MS 10

/* Retry what the backend refused: cancels, shutdowns, closes (done once
 * per loop turn; public for tests that drive the core by hand). */
void rs_loop_retry(struct rs_loop *loop);
/* The same for file requests (fs.c). */
void rs_fs_retry(struct rs_loop *loop);
/* For stream.c: what a request queued on a stream (rs_fs_sendfile,
 * rs_fs_send) was sent in full, or dropped; its callback runs on the next
 * turn. */
void rs_fs_stream_done(struct rs_fs_req *req, bool sent);

/* Make a blocked run() return: write the loop's eventfd, which every
 * backend watches. Async-signal-safe. The backends' wake entry. */
void rs_loop_wake(struct rs_loop *loop);

/* The calling thread's policy: SCHED_BATCH or SCHED_OTHER. 0 or -errno. */
int rs_loop_sched_batch(bool on);

/* Ask the loop to stop: from a signal handler or another thread, while
 * the loop is not finished (rs_loop_fini closes the eventfd this writes;
 * rs_server_stop writes a duplicate the server keeps instead). */
void rs_loop_request_stop(struct rs_loop *loop);

uint64_t rs_now_ms(void);

/* ms until the earliest timer is due (0 if overdue), or -1 when none is
 * active. Inline: asked on every turn, and most loops have no timer. */
static inline int rs_timer_next_ms(const struct rs_loop *loop)
{
    return loop->ntimers > 0 ? rs_timer_next_due_ms(loop) : -1;
}

/* The time now, for timers and stamps taken during dispatch. Completions
 * are delivered after the backend's wait, which can last up to the next
 * timer (the idle scan's second): a reading from before it made a stream
 * that had just received data look idle for that long, and the idle scan
 * closed it (seen on Linux 6.1 under qemu, tools/kernels). So the clock is
 * read again at most once per turn, and only if someone asks. */
static inline uint64_t rs_loop_now_inline(struct rs_loop *loop)
{
    if (loop->now_stale) {
        loop->now_ms = rs_now_ms();
        loop->now_stale = false;
    }
    return loop->now_ms;
}
/* Inside the library the public rs_loop_now is this inline body (timers,
 * the protocols' own clocks). (accessors.c defines the exported function
 * for everyone else.) */
#define rs_loop_now(loop) rs_loop_now_inline(loop)

#endif
