/* Internal to the io_uring probe (backend_uring/probe_*.c; not installed,
 * built only with liburing): the trials that probe_uring.c runs, and the
 * kit they share (probe_kit.c). A trial creates what it tests, checks
 * what the kernel does with it, destroys it, and answers yes or no (or an
 * errno, or fills its fields of the findings); it never fails otherwise.
 */
#ifndef RINGSERVE_PROBE_TRIALS_H
#define RINGSERVE_PROBE_TRIALS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

#include "probe.h"

enum {
    RING_ENTRIES = 8,
    WAIT_NS = 100 * 1000 * 1000, /* per completion; loopback needs microseconds */
    BR_COUNT = 4,                /* provided buffers (power of two) */
    BR_SIZE = 64,
    BR_GROUP = 7,
    SPARSE_SLOTS = 4,
    PROBE_ZCRX_NODEV = 2, /* ZCRX_REG_NODEV: a zcrx without a device */
};

/* --- the trials on a ring alone (probe_rings.c) --- */

/* Each set-up flag the backend may ask for, by creating a ring with it:
 * fills s->sqpoll .. s->no_sqarray. */
void probe_try_setup_flags(struct rs_uring_support *s);
/* A buffer ring registered with `flags` (0, or RS_IOU_PBUF_RING_INC). */
bool probe_try_buf_ring(unsigned flags);
bool probe_try_sparse_files(void);
bool probe_try_ring_fd(void);
bool probe_try_resize_rings(void);
bool probe_try_wait_region(void);
bool probe_try_napi(void);
/* Registers a zero-copy receive queue: 0 or -errno. */
int probe_try_zcrx(uint32_t if_idx, uint32_t flags);
bool probe_try_sq_rewind(void);
/* Fills s->query and what it answered. */
void probe_try_query(struct rs_uring_support *s);

/* --- the trials of operations on a loopback connection (probe_ops.c) --- */

bool probe_try_multishot_accept(void);
bool probe_try_multishot_recv(void);
bool probe_try_accept_direct(void);
bool probe_try_send_zc(void);
bool probe_try_buf_recycle(void);
/* Fills s->socket_direct and s->sockopt_cmd. */
void probe_try_socket_direct(struct rs_uring_support *s);
bool probe_try_pipe_direct(void);
bool probe_try_listen_direct(void);

/* --- the kit (probe_kit.c) --- */

struct cqe_copy {
    int res;
    unsigned flags;
};

/* Wait for the next completion and consume it, so no caller can forget
 * io_uring_cqe_seen(). 0, or -ETIME when nothing came within WAIT_NS. */
int probe_next_cqe(struct io_uring *ring, struct cqe_copy *out);
/* Submit the one SQE prepared; its CQE's result (-EIO when none came). */
int probe_run_one(struct io_uring *ring);
/* A plain ring of RING_ENTRIES. */
bool probe_ring_open(struct io_uring *ring);

/* Listener on 127.0.0.1, port chosen by the kernel. fd or -errno. */
int probe_listener_open(struct sockaddr_in *addr);
/* A connected client socket. fd or -errno. */
int probe_client_connect(const struct sockaddr_in *addr);
/* Close *fd if open; *fd becomes -1. */
void probe_fd_close(int *fd);

/* A listener, a client and the server end of their connection. */
struct conn_pair {
    int lfd, cfd, sfd;
};
bool probe_pair_open(struct conn_pair *p);
void probe_pair_close(struct conn_pair *p);
/* A trial on a plain ring and a fresh loopback connection. */
bool probe_on_pair(bool (*once)(struct io_uring *, struct conn_pair *));

/* A provided buffer ring of BR_COUNT buffers of BR_SIZE in group
 * BR_GROUP, registered with `flags` and filled. */
struct buf_ring {
    struct io_uring_buf_ring *br;
    size_t len;
    char data[BR_COUNT][BR_SIZE];
};
/* 0 or -errno. */
int probe_buf_ring_setup(struct io_uring *ring, struct buf_ring *b, unsigned flags);
/* Call after io_uring_queue_exit(): the kernel drops its pin on exit. */
void probe_buf_ring_free(struct buf_ring *b);

#endif
