/* The accepting side of a loop: one listening socket, one (multishot)
 * accept op, and the back-off that keeps EMFILE/ENFILE from spinning. */
#ifndef RINGSERVE_LISTENER_H
#define RINGSERVE_LISTENER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "op.h"
#include "timer.h"

struct rs_loop;

/* Accepted descriptors waiting for a close op (see on_accept). */
#define RS_LISTENER_ORPHANS 64

struct rs_listener {
    struct rs_loop *loop;
    int fd;
    bool direct; /* fd is a direct descriptor (RS_CAP_LISTEN_DIRECT) */
    struct rs_op op;
    bool armed;              /* accept op in flight */
    bool cancel_wanted;      /* ...and should end (pause, stop, one at a time) */
    bool cancelling;         /* ...and the backend took the cancel */
    bool paused;             /* EMFILE/ENFILE or --max-conns: waiting to retry */
    bool stopped;            /* draining: never accept again */
    bool retry;              /* the backend refused a cancel or close: retry */
    struct rs_timer backoff; /* paused: accept again when it fires */
    bool inbox;              /* no socket: takes connections other loops hand over */
    uint32_t handoffs;       /* handed to other loops, not yet there */
    /* Direct descriptors accepted when no connection could be allocated:
     * only an op can close them, one at a time through close_op. */
    struct rs_op close_op;
    bool close_busy;
    uint32_t norphans;
    int orphans[RS_LISTENER_ORPHANS];
};

/* The listen backlog ringserve asks for (the kernel caps it at
 * net.core.somaxconn): also the most one multishot accept can take at
 * once. */
#define RS_LISTEN_BACKLOG 4096

/* Create a listening socket for host:port (SO_REUSEADDR, SO_REUSEPORT,
 * TCP_NODELAY inherited by accepted sockets). Returns fd or -errno. With
 * backlog < 0 the socket is bound but not listening: it holds the port
 * (SO_REUSEADDR) for sockets of this process that bind it meanwhile. */
int rs_listen_socket(const char *host, uint16_t port, bool nodelay, bool reuseport,
                     int backlog);

/* TCP_NOTSENT_LOWAT on listening socket fd (bytes > 0), which accepted
 * sockets inherit; 0 leaves the kernel's default. 0 or -errno. */
int rs_listen_notsent_lowat(int fd, uint32_t bytes);

/* A new TCP socket of family (AF_INET, AF_INET6) for an outbound
 * connection: non-blocking, close-on-exec, TCP_NODELAY when asked. fd, or
 * -errno. What RS_OP_SOCKET makes where it cannot make a direct one. A
 * socket whose TCP_NODELAY failed is still returned (it costs latency, not
 * correctness), reported with rs_nodelay_failed(loop, ...). */
int rs_tcp_socket(struct rs_loop *loop, int family, bool nodelay);
/* An outbound socket goes without the TCP_NODELAY it was asked for (err:
 * the positive errno): counted in loop->stats.nodelay_failed, and a
 * warning the first time in the process, never silently. */
void rs_nodelay_failed(struct rs_loop *loop, int err);

/* The port a socket is bound to, or -errno. */
int rs_socket_port(int fd);

/* Start accepting on fd (a direct descriptor when direct: the backend's
 * listen hook made it), or with fd RS_FD_INBOX (RS_CAP_HANDOFF) take the
 * connections the group's accepting loop hands over. */
int rs_listener_start(struct rs_loop *loop, int fd, bool direct);
/* Connections a loop may hold: its backend's table (fd_cap) less a reserve
 * for rejecting and handing over; UINT32_MAX without such a table. */
uint32_t rs_listener_room(const struct rs_loop *loop);
/* Stop accepting for good (drain). */
void rs_listener_stop(struct rs_loop *loop);
/* Once per loop turn: issue again a cancel or close the backend refused.
 * True while something is still waiting for a retry (the loop then
 * sleeps at most RS_RETRY_MS). */
bool rs_listener_retry(struct rs_loop *loop);
/* A descriptor is free again: a paused accept may retry now. */
void rs_listener_conn_closed(struct rs_loop *loop);
/* An accepted stream's close was issued: it no longer counts against
 * --max-conns (its descriptor is, or is about to be, released). */
void rs_listener_conn_closing(struct rs_loop *loop);
/* A stream was freed; accepted: one the listener counted. */
void rs_listener_stream_freed(struct rs_loop *loop, bool accepted);
/* True when the listener has no op in flight and its socket is closed. */
bool rs_listener_idle(const struct rs_loop *loop);
/* Started and not stopped: it keeps its loop alive. */
bool rs_listener_active(const struct rs_loop *loop);
/* The backend failed: forget the ops in flight (nothing will complete). */
void rs_listener_abandon(struct rs_loop *loop);
void rs_listener_fini(struct rs_loop *loop);

#endif
