/* Outbound streams (rs_stream_connect): the socket op where the backend
 * makes sockets, then the connect op, bounded by the connect timer. Once
 * connected, a stream is like any accepted one (stream.c). */
#include "stream_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "protocol.h"

static void connect_expired(struct rs_loop *loop, struct rs_timer *t)
{
    struct rs_stream *s = t->data;
    (void)loop;
    if (s->state != RS_STREAM_CONNECTING)
        return;
    s->timed_out = true;
    stream_cancel_connect(s);
}

static void connect_done(struct rs_stream *s, int res)
{
    struct rs_loop *loop = s->loop;
    rs_timer_stop(loop, &s->timer);
    if (s->state != RS_STREAM_CONNECTING) {
        /* Aborted while connecting: the close follows. */
        maybe_progress(s);
        return;
    }
    if (res == -ECANCELED && s->timed_out)
        res = -ETIMEDOUT;
    if (res < 0) {
        loop->stats.connect_failed++;
        stream_fail(s, res);
        if (s->cbs->on_connect)
            s->cbs->on_connect(s, res);
        return;
    }
    s->state = RS_STREAM_OPEN;
    s->last_active_ms = rs_loop_now(loop);
    if (s->cbs->on_connect)
        s->cbs->on_connect(s, 0);
    stream_arm_recv(s);
    start_send(s);
    maybe_progress(s);
}

static void on_connect_op(struct rs_loop *loop, struct rs_op *op,
                          const struct rs_completion *comp);

/* Submit the connect on the stream's new socket. A refusal is reported
 * like a failed connect (the socket is closed by the close op). */
static int start_connect(struct rs_stream *s)
{
    s->ctl_op.kind = RS_OP_CONNECT;
    s->ctl_op.fn = on_connect_op;
    s->ctl_op.buf = &s->peer;
    s->ctl_op.len = s->peer_len;
    s->ctl_op.flags = opf(s, 0);
    int rc = s->loop->ops->submit(s->loop, &s->ctl_op);
    if (rc < 0) {
        s->ctl_op.fn = stream_on_ctl;
        return rc;
    }
    s->inflight++;
    s->connect_busy = true;
    s->connect_sent = true;
    return 0;
}

static void on_connect_op(struct rs_loop *loop, struct rs_op *op,
                          const struct rs_completion *comp)
{
    struct rs_stream *s = op->data;
    (void)loop;
    assert(!(comp->flags & RS_CF_MORE));
    assert(s->inflight > 0 && s->connect_busy);
    s->inflight--;
    s->connect_busy = false;
    s->connect_cancel = false;
    op->fn = stream_on_ctl; /* the op is the shutdown and close from now on */
    connect_done(s, comp->res);
}

/* The stream's descriptor from now on: every op uses it. */
static void adopt_fd(struct rs_stream *s, int fd, bool direct)
{
    s->fd = fd;
    s->direct = direct;
    s->recv_op.fd = s->send_op.fd = s->ctl_op.fd = fd;
    if (direct)
        s->loop->stats.connects_direct++;
}

/* RS_OP_SOCKET completed: connect on the new socket, or end the stream.
 * Without a socket there is nothing to close: the stream is freed here,
 * from the completion (never from inside an rs_stream_* call). */
static void on_socket_op(struct rs_loop *loop, struct rs_op *op,
                         const struct rs_completion *comp)
{
    struct rs_stream *s = op->data;
    int res = comp->res;
    assert(!(comp->flags & RS_CF_MORE));
    assert(s->inflight > 0 && s->connect_busy && s->fd < 0);
    s->inflight--;
    s->connect_busy = false;
    s->connect_cancel = false;
    op->fn = stream_on_ctl;
    if (res >= 0)
        adopt_fd(s, res, (comp->flags & RS_CF_DIRECT) != 0);
    if (s->state != RS_STREAM_CONNECTING) {
        /* Aborted meanwhile: close the socket if there is one. */
        if (s->fd >= 0)
            maybe_progress(s);
        else
            stream_free(s);
        return;
    }
    if (s->timed_out)
        res = -ETIMEDOUT; /* the timer cancelled it, or the socket came too late */
    if (res >= 0) {
        int rc = start_connect(s);
        if (rc < 0)
            connect_done(s, rc);
        return;
    }
    if (s->fd >= 0) {
        connect_done(s, res); /* on_connect, then the close op */
        return;
    }
    rs_timer_stop(loop, &s->timer);
    loop->stats.connect_failed++;
    /* Closing before on_connect: whatever the owner calls from it (abort,
     * close, writes) finds a stream that is done. */
    s->state = RS_STREAM_CLOSING;
    s->close_reason = res;
    if (s->cbs->on_connect)
        s->cbs->on_connect(s, res);
    stream_free(s);
}

struct rs_stream *rs_stream_connect(struct rs_loop *loop, const struct sockaddr *addr,
                                    socklen_t addrlen, uint32_t timeout_ms,
                                    const struct rs_stream_cbs *cbs, void *data)
{
    /* on_data is required: the first bytes received would call NULL. */
    if (!cbs || !cbs->on_data || !addr) {
        errno = EINVAL;
        return NULL;
    }
    if (addrlen > sizeof(((struct rs_stream *)0)->peer) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
        errno = EAFNOSUPPORT;
        return NULL;
    }
    struct rs_stream *s = stream_new(loop, -1, false, cbs, data);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->state = RS_STREAM_CONNECTING;
    s->outbound = true;
    memcpy(&s->peer, addr, addrlen);
    s->peer_len = addrlen;
    int rc;
    if (loop->caps & RS_CAP_SOCKET) {
        /* The backend makes the socket, direct where it can. */
        s->ctl_op.kind = RS_OP_SOCKET;
        s->ctl_op.fn = on_socket_op;
        s->ctl_op.len = addr->sa_family;
        s->ctl_op.flags = RS_OPF_DIRECT | (loop->cfg->nodelay ? RS_OPF_NODELAY : 0);
        rc = loop->ops->submit(loop, &s->ctl_op);
        if (rc < 0) {
            /* Nothing exists yet, nobody knows of it: gone at once. */
            s->ctl_op.fn = stream_on_ctl;
            s->cbs = NULL;
            s->state = RS_STREAM_CLOSING;
            stream_free(s);
            errno = -rc;
            return NULL;
        }
        s->inflight++;
        s->connect_busy = true;
    } else {
        int fd = rs_tcp_socket(loop, addr->sa_family, loop->cfg->nodelay);
        if (fd < 0) {
            s->cbs = NULL;
            s->state = RS_STREAM_CLOSING;
            stream_free(s);
            errno = -fd;
            return NULL;
        }
        adopt_fd(s, fd, false);
        rc = start_connect(s);
        if (rc < 0) {
            /* Never submitted: nothing is in flight; the close op (retried
             * if refused) ends it without telling anyone. */
            s->state = RS_STREAM_CLOSING;
            s->close_reason = rc;
            s->cbs = NULL;
            maybe_progress(s);
            errno = -rc;
            return NULL;
        }
    }
    loop->stats.connects++;
    /* A connect without its timeout could hang for good: abort it (the
     * owner hears on_close). Cannot happen while the reservation holds. */
    if (timeout_ms && rs_timer_start(loop, &s->timer, timeout_ms, connect_expired, s) < 0)
        stream_fail(s, -ENOMEM);
    return s;
}
