#include "loop.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "protocol.h"
#include "stream.h"

/* Idle streams are found by one scan of the stream list per second (a
 * timer): no timer per stream to move on every message, and O(n) once a
 * second is nothing next to the traffic that n streams make. A receive or
 * send only sets the stream's `active` flag; the scan turns it into a
 * stamp (its own now_ms) and clears it. So no completion reads the clock,
 * and a stream counts as active until the first scan after its last
 * activity: an idle one is closed at most one scan later than its exact
 * deadline would say, a busy one never. */
#define IDLE_SCAN_MS 1000

uint64_t rs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int rs_loop_init(struct rs_loop *loop, const struct rs_backend_ops *ops,
                 const struct rs_config *cfg, char *err, size_t errlen)
{
    memset(loop, 0, sizeof(*loop));
    loop->ops = ops;
    loop->cfg = cfg;
    loop->wake_fd = -1;
    loop->max_conns = cfg->max_conns ? cfg->max_conns : UINT32_MAX;
    loop->proto = cfg->proto ? cfg->proto
                             : rs_protocol_find(cfg->protocol ? cfg->protocol : "echo");
    loop->now_ms = rs_now_ms();
    /* The core's own timers are background work: the listener and the
     * streams are what keep a loop alive. */
    rs_timer_unref(&loop->idle_timer);
    rs_timer_unref(&loop->drain_timer);
    if (!loop->proto) {
        snprintf(err, errlen, "unknown protocol");
        return -EINVAL;
    }
    int rc = rs_bufpool_init(&loop->pool, cfg->buffers, cfg->buffer_size);
    if (rc < 0) {
        snprintf(err, errlen, "cannot allocate %u buffers of %u bytes: %s", cfg->buffers,
                 cfg->buffer_size, strerror(-rc));
        return rc;
    }
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        rs_bufpool_fini(&loop->pool);
        return rc;
    }
    rc = ops->init(loop, cfg, err, errlen);
    if (rc < 0) {
        close(loop->wake_fd);
        loop->wake_fd = -1;
        rs_bufpool_fini(&loop->pool);
        return rc;
    }
    if (loop->proto->loop_init) {
        rc = loop->proto->loop_init(loop, err, errlen);
        if (rc < 0) {
            ops->fini(loop);
            close(loop->wake_fd);
            loop->wake_fd = -1;
            rs_bufpool_fini(&loop->pool);
            return rc;
        }
    }
    return 0;
}

/* The backend failed mid-run: no op will ever complete. Free the
 * connections and their queued output (heap copies included); lent
 * buffers go with the pool, sockets with the process. */
static void abandon(struct rs_loop *loop)
{
    /* No timer may fire or be stopped through a freed stream: empty the
     * heap first, marking every timer inactive. */
    for (uint32_t i = 0; i < loop->ntimers; i++)
        loop->timers[i]->heap_idx = 0;
    loop->ntimers = 0;
    while (loop->streams) {
        struct rs_stream *s = loop->streams;
        loop->streams = s->next;
        rs_stream_abandon(s);
    }
    loop->nstreams = 0;
    loop->nretry = 0;
    loop->nreqs = 0; /* their callbacks never run: the program is told by the error */
    loop->fs_retry = NULL;
    loop->starved = loop->starved_tail = NULL;
    loop->nstarved = 0;
    loop->pool.lent = 0;
    rs_listener_abandon(loop);
}

/* Deliver the completions of the requests still in flight. rs_loop_run
 * returns only once they came back; this is for loops that never ran (a
 * start that failed after init) or that tests drive by hand. A request
 * cannot be abandoned while the backend works (its memory is the
 * kernel's), so the wait has no deadline of its own; it ends early only
 * if the backend fails. */
static void collect_requests(struct rs_loop *loop)
{
    while (loop->nreqs > 0 && !loop->failed) {
        loop->now_ms = rs_now_ms();
        rs_timer_run_due(loop);
        rs_loop_retry(loop); /* requests the backend refused: ask again */
        int n = loop->ops->run(loop, RS_RETRY_MS);
        if (n < 0 && n != -EINTR && n != -EAGAIN && n != -EBUSY) {
            rs_log_error("loop %d: backend run failed with %u requests in flight: %s",
                         loop->index, loop->nreqs, strerror(-n));
            loop->failed = true;
        }
    }
}

void rs_loop_fini(struct rs_loop *loop)
{
    collect_requests(loop);
    if (loop->failed)
        abandon(loop);
    assert(loop->streams == NULL && loop->nstreams == 0);
    /* Requests still in flight would complete into freed memory. */
    assert(loop->nreqs == 0);
    rs_listener_fini(loop);
    rs_timer_stop(loop, &loop->idle_timer);
    rs_timer_stop(loop, &loop->drain_timer);
    if (loop->proto && loop->proto->loop_fini)
        loop->proto->loop_fini(loop);
    rs_timer_heap_fini(loop);
    loop->ops->fini(loop);
    rs_stream_cache_fini(loop);
    /* Every lent buffer came back: rule 3 of the backend contract. */
    assert(loop->pool.lent == 0);
    rs_bufpool_fini(&loop->pool);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    loop->wake_fd = -1;
}

void rs_loop_wake(struct rs_loop *loop)
{
    uint64_t one = 1;
    ssize_t rc = write(loop->wake_fd, &one, sizeof(one));
    (void)rc; /* a full counter is a pending wake-up already */
}

void rs_loop_request_stop(struct rs_loop *loop)
{
    loop->stop_requested = 1;
    if (loop->ops && loop->wake_fd >= 0)
        loop->ops->wake(loop);
}

void rs_loop_req_start(struct rs_loop *loop)
{
    loop->nreqs++;
}

void rs_loop_req_done(struct rs_loop *loop)
{
    assert(loop->nreqs > 0);
    loop->nreqs--;
}

/* Every stream, with a reset: what is cut is cut visibly. */
static void reset_all(struct rs_loop *loop, int reason)
{
    struct rs_stream *s = loop->streams;
    while (s) {
        struct rs_stream *next = s->next;
        rs_stream_abort_reset(s, reason);
        s = next;
    }
}

/* The drain deadline passed: whatever is still open is reset now, and
 * referenced timers no longer hold the loop (rs_loop_run). */
static void drain_expired(struct rs_loop *loop, struct rs_timer *t)
{
    (void)t;
    loop->drain_aborted = true;
    reset_all(loop, -ETIMEDOUT);
}

/* Tell each accepted connection still open that the stop began. Streams
 * are never freed from inside an rs_stream_* call or on_stop (only from
 * completions), so the walk is safe; streams on_stop opens (an outbound
 * connection) join the head of the list and are not told. */
static void tell_streams(struct rs_loop *loop)
{
    const struct rs_protocol *proto = loop->proto;
    struct rs_stream *s = loop->streams;
    while (s) {
        struct rs_stream *next = s->next;
        if (rs_stream_is_open(s)) {
            if (!proto->on_stop)
                rs_stream_stop(s);
            else if (!s->outbound)
                proto->on_stop(s);
            /* else: the protocol's own outbound stream, its to end */
        }
        s = next;
    }
}

static void begin_drain(struct rs_loop *loop)
{
    loop->draining = true;
    rs_timer_stop(loop, &loop->idle_timer);
    rs_listener_stop(loop);
    if (loop->cfg->drain_timeout_ms == 0) {
        /* No drain: every connection ends now, visibly. */
        loop->drain_aborted = true;
        reset_all(loop, -ECONNABORTED);
        return;
    }
    rs_timer_start(loop, &loop->drain_timer, loop->cfg->drain_timeout_ms, drain_expired,
                   NULL);
    tell_streams(loop);
}

/* Buffers came back: starved streams may read again, whichever stream
 * returned them. As many as there are free buffers, oldest first:
 * re-arming all of them for one buffer would only earn most of them
 * another -ENOBUFS. Those re-armed without data pending hold no buffer, so
 * the next turn feeds the next ones. */
void rs_loop_feed_starved(struct rs_loop *loop)
{
    if (!loop->starved)
        return; /* nearly every turn */
    uint32_t n = rs_bufpool_recv_free(&loop->pool);
    while (loop->starved && n-- > 0)
        rs_stream_unstarve(loop->starved);
}

void rs_loop_stream_closing(struct rs_loop *loop)
{
    rs_listener_conn_closing(loop);
}

void rs_loop_stream_closed(struct rs_loop *loop, bool accepted)
{
    rs_listener_stream_freed(loop, accepted);
}

void rs_loop_retry(struct rs_loop *loop)
{
    if (loop->fs_retry)
        rs_fs_retry(loop);
    if (loop->nretry == 0)
        return;
    struct rs_stream *s = loop->streams;
    while (s) {
        /* rs_stream_retry only submits and cancels: no completion runs, so
         * neither s nor its successor can be freed under us. */
        struct rs_stream *next = s->next;
        if (s->retry)
            rs_stream_retry(s);
        s = next;
    }
}

static void idle_scan(struct rs_loop *loop, struct rs_timer *t)
{
    uint64_t limit = (uint64_t)loop->cfg->idle_timeout_s * 1000u;
    struct rs_stream *s = loop->streams;
    while (s) {
        struct rs_stream *next = s->next;
        if (s->active) {
            s->active = false;
            s->last_active_ms = loop->now_ms;
        }
        /* Every stamp is a reading of now_ms (rs_loop_now): one ahead of it
         * would wrap the subtraction and close a busy stream. */
        assert(s->last_active_ms <= loop->now_ms);
        if (s->state == RS_STREAM_OPEN && loop->now_ms - s->last_active_ms >= limit) {
            loop->stats.idle_closed++;
            /* Output still queued: a transfer the peer stopped reading is
             * cut here, and a FIN after the bytes already in the socket
             * would pass for its end. A reset, like any cut; an idle
             * connection with nothing queued just closes. */
            if (rs_stream_pending(s) > 0)
                rs_stream_abort_reset(s, -ETIMEDOUT);
            else
                rs_stream_abort_reason(s, -ETIMEDOUT);
        }
        s = next;
    }
    rs_timer_start(loop, t, IDLE_SCAN_MS, idle_scan, NULL);
}

static void fill_gauges(struct rs_loop *loop)
{
    loop->stats.conns = loop->nstreams;
    loop->stats.lent = loop->pool.lent;
    loop->stats.starved = loop->nstarved;
}

int rs_loop_sched_batch(bool on)
{
    struct sched_param sp = {.sched_priority = 0};
    return -pthread_setschedparam(pthread_self(), on ? SCHED_BATCH : SCHED_OTHER, &sp);
}

/* --sched=auto. With clients on the same CPU, a woken loop that preempts
 * the running client finds one or two completions; under SCHED_BATCH it
 * waits until the client blocks and finds all of them: one io_uring_enter
 * serves the batch (BENCHMARKS.md measured 3x fewer enters and 10-20 %
 * less CPU per round trip at 50-500 connections). With one connection
 * there is nothing to batch and the wait only adds latency. So: batch from
 * SCHED_AUTO_ON connections, normal again at SCHED_AUTO_OFF or fewer (the
 * gap keeps churn around one value from costing a syscall per turn). The
 * check is two compares per turn; the switch is one syscall per crossing. */
#define SCHED_AUTO_ON  4
#define SCHED_AUTO_OFF 1

static void sched_auto(struct rs_loop *loop)
{
    bool want = loop->sched_batch ? loop->nstreams > SCHED_AUTO_OFF
                                  : loop->nstreams >= SCHED_AUTO_ON;
    if (want == loop->sched_batch)
        return;
    int rc = rs_loop_sched_batch(want);
    if (rc < 0) {
        /* Refused here (a seccomp filter, say): keep the policy this thread
         * has rather than paying a refused syscall on every turn. */
        rs_log_debug("loop %d: cannot switch scheduling policy: %s", loop->index,
                     strerror(-rc));
        loop->sched_refused = true;
        return;
    }
    loop->sched_batch = want;
}

/* The end of a turn: the interval printer's snapshot, gauges included. */
static void post_stats(struct rs_loop *loop)
{
    fill_gauges(loop);
    rs_stats_board_post(loop->board, &loop->stats);
}

/* Anything left that could still call back (see loop.h). Past the drain
 * deadline, only what cannot be abandoned counts: streams (being reset)
 * and requests in flight. */
static bool alive(struct rs_loop *loop)
{
    if (loop->nstreams > 0 || loop->nreqs > 0)
        return true;
    if (!rs_listener_idle(loop) || rs_listener_active(loop))
        return true;
    if (loop->drain_aborted)
        return false;
    return loop->ntimers_ref > 0 || (loop->ops->busy && loop->ops->busy(loop));
}

/* Most turns have no timer due: that test is here, inline, and the heap
 * is walked only when there is something to fire. The clock is read once
 * per turn for the timers: here, unless something of the last turn read
 * it after the wait already (rs_loop_now). Without timers nothing reads
 * now_ms but through rs_loop_now, which reads the clock itself when it is
 * stale: a turn then costs no clock read at all. */
static inline bool timer_due(struct rs_loop *loop)
{
    return loop->ntimers > 0 && loop->timers[0]->due_ms <= rs_loop_now(loop);
}

static void run_due_timers(struct rs_loop *loop)
{
    if (timer_due(loop))
        rs_timer_run_due(loop);
}

/* A turn with nothing to do before its wait: no stop asked, no timer, a
 * stream alive, none starved, nothing refused to retry. The fields
 * prepare_turn tests one after another (some twice, around calls that
 * cannot happen here), tested together: a busy server's every turn. Its
 * wait then has no timeout. */
static inline bool quiet_turn(const struct rs_loop *loop)
{
    return !loop->stop_requested && loop->ntimers == 0 && loop->nstreams > 0 &&
           !loop->starved && !loop->fs_retry && loop->nretry == 0 &&
           !(loop->listener && loop->listener->retry);
}

/* What a turn does before its wait: the stop, starved streams, retries,
 * and the wait's timeout (*timeout: 0 when a timer is already due). false:
 * nothing is alive any more, the loop ends. */
static bool prepare_turn(struct rs_loop *loop, int *timeout_out)
{
    if (loop->stop_requested && !loop->draining)
        begin_drain(loop);
    if (!alive(loop)) {
        fill_gauges(loop);
        return false;
    }
    rs_loop_feed_starved(loop);
    rs_loop_retry(loop);
    int timeout = rs_timer_next_ms(loop);
    /* (The listener's own flag first: asked on every turn.) */
    if (loop->nretry || loop->fs_retry ||
        (loop->listener && loop->listener->retry && rs_listener_retry(loop)))
        timeout = timeout >= 0 && timeout < RS_RETRY_MS ? timeout : RS_RETRY_MS;
    /* Starved streams left over while buffers are free: the next turn
     * must come now, not when some completion happens to arrive. Those
     * just re-armed may have no data pending (Linux 6.1 ends a multishot
     * recv with -ENOBUFS as soon as the ring is empty, data or not), so
     * none of them may ever complete, and the streams still starved,
     * with data waiting, would sleep forever (found by tools/kernels). */
    if (loop->starved && rs_bufpool_recv_free(&loop->pool) > 0)
        timeout = 0;
    *timeout_out = timeout;
    return true;
}

static int loop_run(struct rs_loop *loop);

int rs_loop_run(struct rs_loop *loop)
{
    /* From one of its own callbacks: the turn in progress would be run
     * inside itself (completions delivered twice, streams freed under
     * their caller). */
    if (loop->running) {
        rs_log_error("loop %d: rs_loop_run from inside its own run: refused",
                     loop->index);
        return -EBUSY;
    }
    loop->running = true;
    int rc = loop_run(loop);
    loop->running = false;
    return rc;
}

static int loop_run(struct rs_loop *loop)
{
    loop->now_ms = rs_now_ms();
    if (loop->cfg->idle_timeout_s && !rs_timer_active(&loop->idle_timer))
        rs_timer_start(loop, &loop->idle_timer, IDLE_SCAN_MS, idle_scan, NULL);
    int rc;
    while ((rc = rs_loop_turn(loop)) > 0)
        ;
    if (rc == 0)
        rs_timer_stop(loop, &loop->drain_timer);
    return rc;
}

int rs_loop_turn(struct rs_loop *loop)
{
    int timeout = -1;
    if (!quiet_turn(loop) && !prepare_turn(loop, &timeout))
        return 0;
    /* Stale until read: by the first completion that stamps its
     * stream, else by the timers below. */
    loop->now_stale = true;
    int n = loop->ops->run(loop, timeout);
    loop->stats.turns++;
    if (n > 0)
        loop->stats.completions += (uint64_t)n;
    if (loop->board)
        post_stats(loop);
    if (loop->cfg->sched == RS_SCHED_AUTO && !loop->sched_refused)
        sched_auto(loop);
    if (n < 0 && n != -EINTR && n != -EAGAIN && n != -EBUSY) {
        /* Nothing can complete any more: this loop's streams are
         * abandoned (closed by the process exit) and the server stops. */
        rs_log_error("loop %d: backend run failed: %s", loop->index, strerror(-n));
        loop->failed = true;
        return n;
    }
    /* Timers last, after the completions this wait brought. A deadline
     * that passed while the loop had no CPU (a loaded machine, a stolen
     * vCPU, a stop signal) is judged once what arrived meanwhile was
     * seen: a request that came in before the keep-alive timeout is
     * served, not closed by it (nginx too handles events, then timers).
     * A completion may itself be a first step (a poll saying "readable"
     * before the recv it starts), so timers due after a wait that brought
     * any fire after one more wait, which does not block (a timer due
     * makes prepare_turn's timeout 0): once, then they fire whatever that
     * wait brought, so a loop that is always busy delays them by one
     * turn, never for longer. A wait cut short by a signal (-EINTR) is
     * treated the same: a stop and a continue (SIGSTOP, a debugger, a
     * freezer) end epoll_wait and io_uring_enter with EINTR even without
     * a handler, having seen nothing of what arrived while the process
     * was stopped, which is exactly when deadlines pass. */
    if ((n > 0 || n == -EINTR) && !loop->timers_deferred && timer_due(loop)) {
        loop->timers_deferred = true;
        return 1;
    }
    loop->timers_deferred = false;
    run_due_timers(loop);
    return 1;
}
