#include "loop.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "listener.h"
#include "log.h"
#include "protocol.h"

/* Idle connections are found by one scan of the connection list per
 * second: no timer syscall per connection, and O(n) once a second is
 * nothing next to the traffic that n connections make. */
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
    return 0;
}

/* The backend failed mid-run: no op will ever complete. Free the
 * connections and their queued output (heap copies included); lent
 * buffers go with the pool, sockets with the process. */
static void abandon(struct rs_loop *loop)
{
    while (loop->conns) {
        struct rs_conn *c = loop->conns;
        loop->conns = c->next;
        rs_conn_abandon(c);
    }
    loop->nconns = 0;
    loop->nretry = 0;
    loop->starved = loop->starved_tail = NULL;
    loop->pool.lent = 0;
    rs_listener_abandon(loop);
}

void rs_loop_fini(struct rs_loop *loop)
{
    if (loop->failed)
        abandon(loop);
    assert(loop->conns == NULL && loop->nconns == 0);
    rs_listener_fini(loop);
    loop->ops->fini(loop);
    rs_conn_cache_fini(loop);
    /* Every lent buffer came back: rule 3 of the backend contract. */
    assert(loop->pool.lent == 0);
    rs_bufpool_fini(&loop->pool);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    loop->wake_fd = -1;
}

void rs_loop_request_stop(struct rs_loop *loop)
{
    loop->stop_requested = 1;
    if (loop->ops && loop->wake_fd >= 0)
        loop->ops->wake(loop);
}

static void begin_drain(struct rs_loop *loop)
{
    loop->draining = true;
    rs_listener_stop(loop);
    /* Stop reading everywhere; connections close once their queued output
     * is sent (or at the drain deadline). */
    struct rs_conn *c = loop->conns;
    while (c) {
        struct rs_conn *next = c->next;
        rs_conn_finish(c);
        c = next;
    }
}

static void abort_all(struct rs_loop *loop)
{
    struct rs_conn *c = loop->conns;
    while (c) {
        struct rs_conn *next = c->next;
        rs_conn_abort(c);
        c = next;
    }
}

/* Buffers came back: starved connections may read again, whichever
 * connection returned them. As many as there are free buffers, oldest
 * first: re-arming all of them for one buffer would only earn most of them
 * another -ENOBUFS. Those re-armed without data pending hold no buffer, so
 * the next turn feeds the next ones. */
void rs_loop_feed_starved(struct rs_loop *loop)
{
    if (!loop->starved || loop->pool.lent >= loop->pool.count)
        return;
    uint32_t n = loop->pool.count - loop->pool.lent;
    while (loop->starved && n-- > 0)
        rs_conn_unstarve(loop->starved);
}

void rs_loop_retry(struct rs_loop *loop)
{
    if (loop->nretry == 0)
        return;
    struct rs_conn *c = loop->conns;
    while (c) {
        /* rs_conn_retry only submits and cancels: no completion runs, so
         * neither c nor its successor can be freed under us. */
        struct rs_conn *next = c->next;
        if (c->retry)
            rs_conn_retry(c);
        c = next;
    }
}

static void close_idle(struct rs_loop *loop)
{
    uint64_t limit = (uint64_t)loop->cfg->idle_timeout_s * 1000u;
    struct rs_conn *c = loop->conns;
    while (c) {
        struct rs_conn *next = c->next;
        if (c->state == RS_CONN_OPEN && loop->now_ms - c->last_active_ms >= limit) {
            loop->stats.idle_closed++;
            rs_conn_abort(c);
        }
        c = next;
    }
}

static int min_timeout(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

int rs_loop_run(struct rs_loop *loop)
{
    uint64_t drain_deadline = 0, next_idle_scan = loop->now_ms + IDLE_SCAN_MS;
    bool aborted = false;
    for (;;) {
        loop->now_ms = rs_now_ms();
        if (loop->stop_requested && !loop->draining) {
            begin_drain(loop);
            drain_deadline = loop->now_ms + loop->cfg->drain_timeout_ms;
        }
        if (loop->draining) {
            if (loop->nconns == 0 && rs_listener_idle(loop) &&
                (aborted || !loop->ops->busy || !loop->ops->busy(loop)))
                break;
            if (!aborted && loop->now_ms >= drain_deadline) {
                aborted = true;
                abort_all(loop);
            }
        }
        rs_loop_feed_starved(loop);
        rs_loop_retry(loop);
        int timeout = rs_listener_tick(loop);
        if (loop->nretry)
            timeout = min_timeout(timeout, RS_RETRY_MS);
        if (loop->cfg->idle_timeout_s) {
            if (loop->now_ms >= next_idle_scan) {
                close_idle(loop);
                next_idle_scan = loop->now_ms + IDLE_SCAN_MS;
            }
            timeout = min_timeout(timeout, (int)(next_idle_scan - loop->now_ms));
        }
        if (loop->draining && !aborted)
            timeout = min_timeout(timeout, (int)(drain_deadline - loop->now_ms));
        int n = loop->ops->run(loop, timeout);
        if (n < 0 && n != -EINTR && n != -EAGAIN && n != -EBUSY) {
            /* Nothing can complete any more: this loop's connections are
             * abandoned (closed by the process exit) and the server stops. */
            rs_log_error("loop %d: backend run failed: %s", loop->index, strerror(-n));
            loop->failed = true;
            return n;
        }
    }
    return 0;
}
