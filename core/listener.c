#include "listener.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "stream.h"

/* How long to wait before accepting again after EMFILE/ENFILE, unless a
 * connection closes first. Long enough not to spin, short enough that a
 * freed descriptor is used soon. */
#define ACCEPT_BACKOFF_MS 100

/* Retry without a back-off (a stream closed): on the next loop turn. */
#define RETRY_NOW 0
/* Retry only when a stream closes. */
#define RETRY_ON_CLOSE UINT64_MAX

int rs_listen_socket(const char *host, uint16_t port, bool nodelay, bool reuseport,
                     int backlog)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int gai = getaddrinfo(host[0] ? host : NULL, portstr, &hints, &res);
    if (gai != 0)
        return gai == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
    int err = -EADDRNOTAVAIL;
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* Each loop has its own listener on the same port; the kernel
         * spreads connections over them. Only the server's own sockets may
         * share it: open_listeners() in server.c first binds the port
         * exclusively, so "in use" means another process holds it. */
        if (reuseport)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
        /* Linux copies TCP_NODELAY to accepted sockets: setting it here
         * covers direct descriptors too, which setsockopt cannot reach. */
        if (nodelay)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            (backlog < 0 || listen(fd, backlog) == 0))
            break;
        err = -errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd >= 0 ? fd : err;
}

int rs_listen_notsent_lowat(int fd, uint32_t bytes)
{
    int v = (int)bytes;
    if (bytes == 0 || setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v)) == 0)
        return 0;
    return -errno;
}

void rs_nodelay_failed(struct rs_loop *loop, int err)
{
    static atomic_bool warned;
    loop->stats.nodelay_failed++;
    if (!atomic_exchange(&warned, true))
        rs_log_error("warning: an outbound socket has no TCP_NODELAY (%s): small "
                     "writes may wait for ACKs; counted as nodelay_failed",
                     strerror(err));
}

int rs_tcp_socket(struct rs_loop *loop, int family, bool nodelay)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* A failure costs latency, not correctness: not fatal, not silent. */
    if (nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        rs_nodelay_failed(loop, errno);
    return fd;
}

int rs_socket_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Slots of a direct-descriptor table kept free of held connections: a
 * connection over a limit must still be accepted somewhere to be closed
 * cleanly (and counted), and with handoff, connections on their way to
 * another loop sit in the accepting loop's table until they arrive. */
#define REJECT_RESERVE 16

uint32_t rs_listener_room(const struct rs_loop *loop)
{
    if (!loop->fd_cap)
        return UINT32_MAX;
    return loop->fd_cap > 2 * REJECT_RESERVE ? loop->fd_cap - REJECT_RESERVE
                                             : loop->fd_cap / 2;
}

/* Connections are counted per loop (load) and per server (group->conns)
 * from the moment a loop takes responsibility for them (accepted here, or
 * a handoff to here begun). The two counts end at different times:
 *
 *  - group->conns is what --max-conns caps: live connections. One stops
 *    counting when its close is issued (rs_listener_conn_closing). With a
 *    descriptor per connection the count then never exceeds the sockets
 *    the process holds: the epoll backend's close(2) runs inside submit(),
 *    so its number can be accepted again in the same loop turn, before the
 *    close's completion frees the stream. Counted until the free, such a
 *    connection made the count run ahead of the descriptors, and an accept
 *    onto a freed number could find the server "over --max-conns=max" and
 *    reject a client that should have been served (or waited).
 *  - load is what a loop's table holds: a direct descriptor is taken until
 *    its close completes, so load counts until the stream is freed. */
static void count_conn(struct rs_loop *loop)
{
    atomic_fetch_add(&loop->load, 1);
    if (loop->group)
        atomic_fetch_add(&loop->group->conns, 1);
}

static void uncount(atomic_uint *a)
{
    unsigned v = atomic_load(a);
    /* Never below zero: streams opened by hand (unit tests, outbound
     * connections) were not counted. */
    while (v > 0 && !atomic_compare_exchange_weak(a, &v, v - 1))
        ;
}

/* --max-conns reached (for the whole server). */
static bool at_capacity(const struct rs_loop *loop)
{
    if (loop->group)
        return atomic_load(&loop->group->conns) >= loop->group->max_conns;
    return loop->nstreams >= loop->max_conns;
}

/* The connection just counted is one too many: over --max-conns, or over
 * this loop's share of its table. */
static bool over_limit(const struct rs_loop *loop)
{
    if (loop->group && atomic_load(&loop->group->conns) > loop->group->max_conns)
        return true;
    return atomic_load(&loop->load) > rs_listener_room(loop);
}

/* The backend's own limit on accepted sockets (io_uring's direct-descriptor
 * table). When that table is full the kernel takes a connection off the
 * backlog, finds no slot, and closes it: a client dropped per attempt. So
 * never let an accept run into it: accept one at a time near the limit,
 * and stop at it until a connection closes. A multishot accept takes the
 * whole backlog in one go, up to RS_LISTEN_BACKLOG connections (measured:
 * with 100,000 clients connecting, a 32-slot margin let bursts overflow
 * the table), so "near" is a backlog away. */
#define FD_MARGIN (RS_LISTEN_BACKLOG + 64)

/* Connections on their way to other loops hold a slot here each; past
 * this many, the accepting loop waits for some to arrive (the receivers
 * install them from their own threads, which may be busy). */
#define HANDOFFS_MAX 1024

/* Slots of the table in use: streams, and connections on their way out. */
static uint32_t fd_used(const struct rs_loop *loop)
{
    const struct rs_listener *l = loop->listener;
    if (!l)
        return loop->nstreams;
    return loop->nstreams + l->handoffs + (l->direct && l->fd >= 0);
}

static bool fd_full(const struct rs_loop *loop)
{
    return loop->fd_cap && fd_used(loop) >= loop->fd_cap;
}

/* A multishot accept drains the whole backlog in one go, so it can only be
 * trusted far from the limit: with a small table (or near a big one) the
 * listener accepts one connection per SQE. */
static bool fd_near(const struct rs_loop *loop)
{
    return loop->fd_cap &&
           (loop->fd_cap <= 2 * FD_MARGIN || fd_used(loop) + FD_MARGIN >= loop->fd_cap);
}

/* Ask the armed accept to end (it still completes, with -ECANCELED). A
 * cancel the backend refuses (-EBUSY: its queue is full) was not issued:
 * rs_listener_retry() tries again on a later turn. */
static void cancel_accept(struct rs_listener *l)
{
    if (!l->armed || l->cancelling)
        return;
    l->cancel_wanted = true;
    int rc = l->loop->ops->cancel(l->loop, &l->op);
    if (rc == 0 || rc == -ENOENT) {
        l->cancelling = true;
    } else {
        l->loop->stats.refused++;
        l->retry = true;
    }
}

static void on_orphan_closed(struct rs_loop *loop, struct rs_op *op,
                             const struct rs_completion *c);
static void close_if_done(struct rs_listener *l);

/* Close the next orphan, one close op at a time. */
static void close_orphans(struct rs_listener *l)
{
    if (l->close_busy || l->norphans == 0)
        return;
    uint8_t gen = l->close_op.bk_gen; /* stale completions must never match */
    rs_op_init(&l->close_op, RS_OP_CLOSE, l->orphans[0], on_orphan_closed, l);
    l->close_op.bk_gen = gen;
    l->close_op.flags = RS_OPF_DIRECT; /* only direct descriptors become orphans */
    if (l->loop->ops->submit(l->loop, &l->close_op) < 0) {
        l->loop->stats.refused++;
        l->retry = true;
        return;
    }
    l->close_busy = true;
}

static void on_orphan_closed(struct rs_loop *loop, struct rs_op *op,
                             const struct rs_completion *c)
{
    struct rs_listener *l = op->data;
    (void)loop;
    (void)c; /* a failed close cannot be retried: the descriptor is gone */
    assert(l->close_busy && l->norphans > 0);
    l->close_busy = false;
    l->norphans--;
    memmove(l->orphans, l->orphans + 1, l->norphans * sizeof(l->orphans[0]));
    close_orphans(l);
    close_if_done(l);
}

/* A socket was accepted but no connection could take it (out of memory):
 * close it, count it, and back off as for EMFILE. A direct descriptor is
 * not a process fd: only the backend can close it. */
static void drop_accepted(struct rs_listener *l, int fd, bool direct)
{
    struct rs_loop *loop = l->loop;
    loop->stats.accept_dropped++;
    if (!direct) {
        close(fd);
    } else if (l->norphans < RS_LISTENER_ORPHANS) {
        l->orphans[l->norphans++] = fd;
        close_orphans(l);
    } else {
        /* Only a multishot burst after the pause below gets here. */
        rs_log_error("loop %d: out of memory: direct descriptor %d leaks", loop->index,
                     fd);
    }
}

/* Stopped and nothing armed: the socket can go. A direct listener is
 * closed by an op, like the orphans (and after them when their queue is
 * full: on_orphan_closed() calls again). */
static void close_if_done(struct rs_listener *l)
{
    if (l->armed || !l->stopped || l->fd < 0)
        return;
    if (!l->direct) {
        close(l->fd);
    } else if (l->norphans < RS_LISTENER_ORPHANS) {
        l->orphans[l->norphans++] = l->fd;
        close_orphans(l);
    } else {
        return;
    }
    l->fd = -1;
}

static void backoff_over(struct rs_loop *loop, struct rs_timer *t);
static void resume(struct rs_listener *l);

/* Stop accepting until delay_ms passed (RETRY_ON_CLOSE: until a stream
 * closes). */
static void pause_accepting(struct rs_listener *l, uint64_t delay_ms)
{
    l->paused = true;
    if (delay_ms == RETRY_ON_CLOSE)
        rs_timer_stop(l->loop, &l->backoff);
    else
        rs_timer_start(l->loop, &l->backoff, delay_ms, backoff_over, l);
    cancel_accept(l);
}

static void arm(struct rs_listener *l)
{
    if (l->armed || l->stopped || (l->fd < 0 && !l->inbox))
        return;
    l->op.flags = (l->inbox || !fd_near(l->loop)) ? RS_OPF_MULTISHOT : 0;
    if (l->direct)
        l->op.flags |= RS_OPF_DIRECT;
    int rc = l->loop->ops->submit(l->loop, &l->op);
    if (rc < 0) {
        /* Retry later rather than give up accepting for good. */
        pause_accepting(l, ACCEPT_BACKOFF_MS);
        return;
    }
    l->armed = true;
    l->paused = false;
    rs_timer_stop(l->loop, &l->backoff);
}

/* After a connection was taken: stop at the table's end, or slow down near
 * it. At --max-conns the listener keeps accepting, and closes each new
 * connection at once (counted in `rejected`): a client learns at once that
 * the server is full, instead of waiting in the backlog. */
static void limit_accepting(struct rs_listener *l)
{
    struct rs_loop *loop = l->loop;
    if (fd_full(loop)) {
        loop->stats.accept_pauses++;
        pause_accepting(l, RETRY_ON_CLOSE);
    } else if (l->handoffs >= HANDOFFS_MAX) {
        pause_accepting(l, RETRY_ON_CLOSE); /* on_handoff() resumes */
    } else if (fd_near(loop)) {
        /* Multishot could overshoot the table: one at a time now. */
        cancel_accept(l);
    }
}

/* Take connection fd on l's loop (counted there already). Without memory
 * for the connection, it is closed and counted (accept_dropped), and
 * accepting backs off as for EMFILE. */
static void open_conn(struct rs_listener *l, int fd, bool direct, bool reject)
{
    struct rs_loop *loop = l->loop;
    if (rs_stream_accept(loop, fd, direct, reject))
        return;
    uncount(&loop->load);
    if (loop->group)
        uncount(&loop->group->conns);
    drop_accepted(l, fd, direct);
    if (!l->stopped && !l->inbox)
        pause_accepting(l, ACCEPT_BACKOFF_MS);
}

/* A connection handed to another loop. */
struct handoff {
    struct rs_op op;
    struct rs_listener *l;
    struct rs_loop *target;
};

/* The loop with the most room (this one included), or NULL when every
 * table is full. Only the accepting loop adds to a load, so a room seen
 * here cannot be taken by someone else meanwhile. Connections on their way
 * to another loop count there; their slots here come out of the reserve
 * (and fd_full() pauses accepting if they use it all). */
static struct rs_loop *pick_loop(struct rs_loop *loop)
{
    const struct rs_group *g = loop->group;
    struct rs_loop *best = NULL;
    uint32_t best_free = 0;
    for (unsigned i = 0; i < g->n; i++) {
        struct rs_loop *t = g->loops[i];
        uint32_t load = atomic_load(&t->load);
        uint32_t room = rs_listener_room(t);
        if (load >= room)
            continue;
        if (!best || room - load > best_free) {
            best = t;
            best_free = room - load;
        }
    }
    return best;
}

static void on_handoff(struct rs_loop *loop, struct rs_op *op,
                       const struct rs_completion *c)
{
    struct handoff *h = op->data;
    struct rs_listener *l = h->l;
    assert(l->handoffs > 0);
    l->handoffs--;
    if (c->res >= 0) {
        loop->stats.handoffs++;
    } else {
        /* The other loop could not take it (stopped, or its table full
         * after all): it is still ours, to keep if there is room. */
        rs_log_debug("loop %d: handoff to loop %d: %s", loop->index, h->target->index,
                     strerror(-c->res));
        uncount(&h->target->load);
        atomic_fetch_add(&loop->load, 1);
        open_conn(l, op->fd, true, l->stopped || over_limit(loop));
    }
    free(h);
    rs_listener_conn_closed(loop); /* its slot here is free again */
    close_if_done(l);
}

/* The accepting loop of a handoff group: keep the connection, or pass it
 * to the loop with the most room. Over --max-conns, or with every table
 * full, it is rejected here (closed at once and counted). */
static void dispatch(struct rs_listener *l, int fd, bool direct)
{
    struct rs_loop *loop = l->loop;
    struct rs_loop *t = (l->stopped || at_capacity(loop)) ? NULL : pick_loop(loop);
    if (!t || t == loop || !direct) {
        count_conn(loop);
        open_conn(l, fd, direct, !t || over_limit(loop));
        return;
    }
    struct handoff *h = malloc(sizeof(*h));
    if (h) {
        *h = (struct handoff){.l = l, .target = t};
        rs_op_init(&h->op, RS_OP_HANDOFF, fd, on_handoff, h);
        h->op.flags = RS_OPF_DIRECT;
        h->op.buf = t;
        atomic_fetch_add(&t->load, 1);
        atomic_fetch_add(&loop->group->conns, 1);
        if (loop->ops->submit(loop, &h->op) == 0) {
            l->handoffs++;
            return;
        }
        uncount(&t->load);
        uncount(&loop->group->conns);
        free(h);
    }
    count_conn(loop);
    open_conn(l, fd, direct, over_limit(loop));
}

static void on_accept(struct rs_loop *loop, struct rs_op *op,
                      const struct rs_completion *c)
{
    struct rs_listener *l = op->data;
    if (!(c->flags & RS_CF_MORE)) {
        l->armed = false;
        l->cancel_wanted = false;
        l->cancelling = false;
    }
    bool direct = c->flags & RS_CF_DIRECT;
    if (c->res >= 0 && l->inbox) {
        /* Handed over by the accepting loop, which counted it here. */
        open_conn(l, c->res, direct, l->stopped);
    } else if (c->res >= 0) {
        if (loop->group && loop->group->handoff) {
            dispatch(l, c->res, direct);
        } else {
            /* Over the cap, or accepted while draining (a multishot
             * accept can deliver a few more before its cancel lands):
             * close at once. */
            count_conn(loop);
            open_conn(l, c->res, direct, l->stopped || over_limit(loop));
        }
        if (!l->stopped && !l->paused)
            limit_accepting(l);
    } else if (c->res == -EMFILE || c->res == -ENFILE || c->res == -ENOMEM ||
               c->res == -ENOBUFS) {
        /* Out of descriptors: never exit, never spin. The level-triggered
         * listener would wake forever; don't re-arm until a back-off or a
         * connection closes. */
        loop->stats.accept_pauses++;
        rs_log_debug("loop %d: accept: %s, pausing", loop->index, strerror(-c->res));
        pause_accepting(l, ACCEPT_BACKOFF_MS);
    } else if (c->res != -ECANCELED && c->res != -ECONNABORTED && c->res != -EINTR &&
               c->res != -EAGAIN) {
        rs_log_error("loop %d: accept: %s", loop->index, strerror(-c->res));
        pause_accepting(l, ACCEPT_BACKOFF_MS);
    }
    if (!l->armed && !l->paused)
        arm(l);
    else if (!l->armed && !rs_timer_active(&l->backoff))
        resume(l); /* the back-off ended while this accept was ending */
    close_if_done(l);
}
int rs_listener_start(struct rs_loop *loop, int fd, bool direct)
{
    struct rs_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->loop = loop;
    l->fd = fd;
    l->inbox = fd == RS_FD_INBOX;
    l->direct = direct && !l->inbox;
    rs_timer_unref(&l->backoff); /* the listener itself keeps the loop alive */
    rs_op_init(&l->op, RS_OP_ACCEPT, fd, on_accept, l);
    loop->listener = l;
    arm(l);
    return 0;
}

void rs_listener_stop(struct rs_loop *loop)
{
    struct rs_listener *l = loop->listener;
    if (!l || l->stopped)
        return;
    l->stopped = true;
    l->paused = false;
    rs_timer_stop(loop, &l->backoff);
    cancel_accept(l);
    close_if_done(l);
}

bool rs_listener_retry(struct rs_loop *loop)
{
    struct rs_listener *l = loop->listener;
    if (!l || !l->retry)
        return false;
    l->retry = false;
    if (l->cancel_wanted)
        cancel_accept(l);
    close_orphans(l);
    close_if_done(l);
    return l->retry;
}

/* The back-off is over (or a stream closed): accept again, unless a limit
 * still holds; rs_listener_conn_closed() resumes from those. An accept
 * still armed (its cancel not completed yet) is not re-armed here: its
 * final completion resumes, in on_accept. */
static void resume(struct rs_listener *l)
{
    if (!l->paused || l->stopped || l->armed)
        return;
    if (fd_full(l->loop) || l->handoffs >= HANDOFFS_MAX)
        return;
    arm(l);
}

static void backoff_over(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    resume(t->data);
}

void rs_listener_conn_closing(struct rs_loop *loop)
{
    if (loop->group)
        uncount(&loop->group->conns);
}

void rs_listener_stream_freed(struct rs_loop *loop, bool accepted)
{
    if (accepted)
        uncount(&loop->load);
    rs_listener_conn_closed(loop);
}

void rs_listener_conn_closed(struct rs_loop *loop)
{
    struct rs_listener *l = loop->listener;
    if (l && l->paused && !l->stopped) /* a descriptor is free again */
        rs_timer_start(loop, &l->backoff, RETRY_NOW, backoff_over, l);
}

bool rs_listener_idle(const struct rs_loop *loop)
{
    const struct rs_listener *l = loop->listener;
    return !l || (!l->armed && l->fd < 0 && !l->close_busy && l->norphans == 0 &&
                  l->handoffs == 0);
}

bool rs_listener_active(const struct rs_loop *loop)
{
    return loop->listener && !loop->listener->stopped;
}

void rs_listener_abandon(struct rs_loop *loop)
{
    struct rs_listener *l = loop->listener;
    if (!l)
        return;
    l->armed = false;
    l->close_busy = false;
    l->norphans = 0;
    rs_timer_stop(loop, &l->backoff);
}

void rs_listener_fini(struct rs_loop *loop)
{
    struct rs_listener *l = loop->listener;
    if (!l)
        return;
    assert(!l->armed && !l->close_busy);
    rs_timer_stop(loop, &l->backoff);
    /* A direct listener still open goes with its ring's table. */
    if (l->fd >= 0 && !l->direct)
        close(l->fd);
    free(l);
    loop->listener = NULL;
}
