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

struct rs_listener {
    struct rs_loop *loop;
    int fd;
    struct rs_op op;
    bool armed; /* accept op in flight */
    bool cancelling;
    bool paused;           /* EMFILE/ENFILE or --max-conns: waiting to retry */
    bool stopped;          /* draining: never accept again */
    struct rs_timer retry; /* the back-off */
};

/* Create a listening socket for host:port (SO_REUSEADDR, SO_REUSEPORT,
 * TCP_NODELAY inherited by accepted sockets). Returns fd or -errno. */
int rs_listen_socket(const char *host, uint16_t port, bool nodelay, bool reuseport,
                     int backlog);

/* The port a socket is bound to, or -errno. */
int rs_socket_port(int fd);

int rs_listener_start(struct rs_loop *loop, int fd);
/* Stop accepting for good (drain). */
void rs_listener_stop(struct rs_loop *loop);
/* A stream was freed: a paused accept may retry now. */
void rs_listener_conn_closed(struct rs_loop *loop);
/* True when the listener has no op in flight and its socket is closed. */
bool rs_listener_idle(const struct rs_loop *loop);
void rs_listener_fini(struct rs_loop *loop);

#endif
