/* A connection: the state machine between the backend and a protocol.
 *
 *   open (reading, sending) -> closing -> (close op) -> freed
 *
 * - One multishot recv armed while open and not paused; re-armed when the
 *   backend ends it (single-shot backends, -ENOBUFS, cancel).
 * - Output is a queue of chunks sent in order, one send in flight.
 * - Backpressure: above cfg->max_pending queued bytes the recv is cancelled;
 *   it is re-armed once the queue drains below half.
 * - EOF: queued output is sent, then shutdown(SHUT_WR), then close.
 * - Stop (SIGTERM drain): queued output is sent, then shutdown(SHUT_WR);
 *   input is dropped until the peer's EOF, then close.
 * - Errors: close at once, dropping queued output.
 * - The struct is freed only when no op is in flight (inflight == 0 after
 *   the close op completed).
 * - A cancel, shutdown or close the backend refuses (-EBUSY, -ENOMEM) is
 *   never recorded as issued: the connection sets retry, and the loop calls
 *   rs_conn_retry() on a later turn until the backend takes it.
 */
#ifndef RINGSERVE_CONN_H
#define RINGSERVE_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "op.h"

struct rs_loop;
struct rs_chunk;

enum rs_conn_state { RS_CONN_OPEN = 1, RS_CONN_CLOSING, RS_CONN_CLOSED };

struct rs_conn {
    struct rs_loop *loop;
    struct rs_conn *next, *prev;                 /* loop->conns */
    struct rs_conn *starved_next, *starved_prev; /* loop->starved, FIFO */
    int fd;
    uint8_t state;
    uint8_t inflight;  /* ops submitted and not finally completed */
    bool recv_armed;   /* the recv op is in flight */
    bool recv_cancel;  /* ...and the backend took a cancel for it */
    bool send_busy;    /* the send op is in flight */
    bool send_cancel;  /* ...and the backend took a cancel for it */
    bool retry;        /* the backend refused a cancel/shutdown/close: retry */
    bool eof;          /* the peer shut down its side */
    bool starved;      /* on loop->starved */
    bool shut_done;    /* shutdown(SHUT_WR) issued */
    bool close_issued; /* the close op was submitted */
    bool graceful;     /* closing after all output was sent */
    bool paused;       /* backpressure: recv stopped until output drains */
    bool lingering;    /* stopping: input is read and dropped until the peer's EOF */
    struct rs_op recv_op, send_op, ctl_op;
    struct rs_chunk *head, *tail;
    uint64_t pending; /* queued output bytes, in-flight send included */
    uint64_t last_active_ms;
    uint64_t proto_u64; /* protocol scratch (chargen: pattern offset) */
};

/* Take an accepted socket. reject: close it at once (over --max-conns). */
struct rs_conn *rs_conn_open(struct rs_loop *loop, int fd, bool reject);

/* For protocols. */
void rs_conn_send_lent(struct rs_conn *c, const uint8_t *data, uint32_t len,
                       uint16_t bid);
void rs_conn_send_copy(struct rs_conn *c, const uint8_t *data, uint32_t len);
/* data must outlive the connection (static tables). */
void rs_conn_send_static(struct rs_conn *c, const uint8_t *data, uint32_t len);
void rs_conn_release(struct rs_conn *c, uint16_t bid);
uint64_t rs_conn_pending(const struct rs_conn *c);

/* Close now, dropping queued output (errors, idle timeout, drain deadline). */
void rs_conn_abort(struct rs_conn *c);
/* Graceful stop: send what is queued, shut down our side, then read and
 * drop input until the peer's EOF before closing (closing with unread
 * input would make the kernel reset the connection and discard output
 * the peer has not read yet). */
void rs_conn_finish(struct rs_conn *c);
/* Take c off the starved list and re-arm its recv (called by the loop when
 * buffers came back). */
void rs_conn_unstarve(struct rs_conn *c);

/* Issue again what the backend refused (see retry above). Called by the
 * loop once per turn for each connection with retry set. */
void rs_conn_retry(struct rs_conn *c);
/* The backend failed: free the connection and its queued output without
 * any op (nothing can complete any more). */
void rs_conn_abandon(struct rs_conn *c);

/* Chunk-node cache of a loop. */
void rs_conn_cache_fini(struct rs_loop *loop);

#endif
