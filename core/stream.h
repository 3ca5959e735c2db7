/* The stream's internals: the struct and what the loop and the listener
 * call. The public half (what owners call, the callbacks and how a stream
 * lives and dies) is <ringserve/stream.h>, included here. */
#ifndef RINGSERVE_STREAM_H
#define RINGSERVE_STREAM_H

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "op.h"
#include "ringserve/stream.h"
#include "timer.h"

struct rs_loop;
struct rs_chunk;
struct rs_sendv;

enum rs_stream_state {
    RS_STREAM_CONNECTING = 1,
    RS_STREAM_OPEN,
    RS_STREAM_CLOSING,
    RS_STREAM_CLOSED
};

/* The fields are ordered by use. A ping-pong round trip (a receive, its
 * echo's or relay's send, and that send's completion) touches the first
 * three cache lines and nothing else of the stream: the state line (0),
 * the send line (1: the send op and the lent slot it sends) and the
 * receive line (2: the recv op and where its bytes go). The receive
 * touches all three; the send's completion only the first two. With
 * hundreds of connections the kernel's per-socket state pushes these
 * lines out of the cache between two steps of the same stream, so each
 * line a step touches is a miss: three lines, five misses per round
 * trip (it was four lines touched by both, eight). The streams are
 * allocated RS_STREAM_ALIGN-aligned (stream.c), and stream.c asserts the
 * layout. */
#define RS_STREAM_LINE  64
#define RS_STREAM_ALIGN 64

struct rs_stream {
    /* Line 0: what every step reads. */
    struct rs_loop *loop;
    const struct rs_stream_cbs *cbs;
    uint64_t pending; /* queued output bytes, in-flight send included */
    uint64_t lowat;   /* on_writable threshold */
    struct rs_chunk *head;
    /* relay_from is the stream whose relay writes into this one (see
     * relay_to) */
    struct rs_stream *relay_from;
    uint8_t state;
    bool direct;      /* fd is a direct descriptor (io_uring fixed file) */
    bool reading;     /* the owner wants input */
    bool recv_armed;  /* the recv op is in flight */
    bool recv_cancel; /* ...and the backend took a cancel for it */
    bool send_busy;   /* the send op is in flight */
    bool send_cancel; /* ...and the backend took a cancel for it */
    bool lingering;   /* closing: input is read and dropped until the peer's EOF */
    /* eof and shut_wanted in one aligned word: maybe_progress tests both
     * after every completion, in one instruction. */
    bool eof;         /* the peer shut down its side */
    bool starved;     /* on loop->starved */
    bool shut_wanted; /* shutdown(SHUT_WR) once the queue is empty */
    bool active;      /* data moved since the idle scan last looked */
    bool relay_hold;  /* relaying into a stream with too much queued: not reading */
    /* Line 1: the send. The lent slot: the output queue's first entry
     * when it holds a lent buffer written while nothing else was queued
     * (ping-pong: an echo's every message). It needs no chunk node, and
     * its send completes without walking the queue. Chunks written
     * behind it wait in head..tail: the queue is the slot, then the
     * chunks. */
    struct rs_op send_op;
    const uint8_t *slot_ptr; /* next byte to send */
    uint32_t slot_len;       /* bytes left; 0: the slot is empty */
    uint16_t slot_bid;       /* the lent buffer, released once all is sent */
    uint8_t send_chunks;     /* queued chunks the in-flight send covers (0: the slot) */
    uint8_t inflight;        /* ops submitted and not finally completed */
    /* Line 2: the receive. The relay (rs_stream_relay,
     * core/stream_relay.c): what this stream receives goes to relay_to
     * without on_data (this stream itself for echo); relay_count: the
     * owner's byte counter, or NULL. */
    struct rs_op recv_op;
    struct rs_stream *relay_to;
    uint64_t *relay_count;
    /* The end of what a round trip touches. */
    void *data;        /* the owner's, as is user_u64; every other field is the
                          core's, read-only for owners */
    uint64_t user_u64; /* the owner's (chargen: pattern offset) */
    int fd;
    bool outbound;       /* from rs_stream_connect */
    bool connect_busy;   /* the connect op is in flight */
    bool connect_cancel; /* ...and the backend took a cancel for it */
    bool retry;          /* the backend refused a cancel/shutdown/close: retry */
    bool shut_done;      /* shutdown(SHUT_WR) issued */
    bool close_issued;   /* the close op was submitted */
    bool graceful;       /* closing after all output was sent */
    bool timed_out;      /* the connect timer fired */
    bool connect_sent;   /* the connect op was submitted: only then does a
                            failed or timed-out connect say anything about
                            the peer (before it, the socket was not made) */
    bool reset;          /* closing ends in a TCP reset (rs_stream_reset) */
    bool stop_hold;      /* closing for a stop: no FIN before the peer's EOF */
    bool cut;            /* ...and input was dropped: end with a reset */
    struct rs_stream *next, *prev;                 /* loop->streams */
    struct rs_stream *starved_next, *starved_prev; /* loop->starved, FIFO */
    int close_reason; /* for on_close: 0 or the first -errno */
    struct rs_op ctl_op;
    struct rs_chunk *tail;
    struct rs_sendv *sendv; /* a vectored send's msghdr: allocated when first needed */
    /* When the idle scan last found the stream active (its creation or
     * connection before that): a reading of now_ms, never ahead of it. */
    uint64_t last_active_ms;
    struct rs_timer timer; /* connect timeout, then the graceful close's bound */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer;             /* outbound: the address being connected to */
    socklen_t peer_len; /* ...and its length */
};

/* Inside the library the public accessors below are these inline bodies:
 * protocols built into the library ask for pending on every receive.
 * (accessors.c defines the exported functions for everyone else.) */
static inline uint64_t rs_stream_pending_inline(const struct rs_stream *s)
{
    return s->pending;
}
static inline void rs_stream_set_lowat_inline(struct rs_stream *s, uint64_t bytes)
{
    s->lowat = bytes;
}
static inline bool rs_stream_is_open_inline(const struct rs_stream *s)
{
    return s->state == RS_STREAM_OPEN || s->state == RS_STREAM_CONNECTING;
}
#define rs_stream_pending(s)          rs_stream_pending_inline(s)
#define rs_stream_set_lowat(s, bytes) rs_stream_set_lowat_inline(s, bytes)
#define rs_stream_is_open(s)          rs_stream_is_open_inline(s)

/* For the listener: take an accepted socket (direct: a direct descriptor).
 * reject: close it at once (over --max-conns). The protocol's on_open runs
 * before the first recv is armed. NULL when out of memory. */
struct rs_stream *rs_stream_accept(struct rs_loop *loop, int fd, bool direct,
                                   bool reject);
/* For the loop: take s off the starved list and re-arm its recv. */
void rs_stream_unstarve(struct rs_stream *s);
/* For the loop: issue again what the backend refused (see retry). */
void rs_stream_retry(struct rs_stream *s);
/* For the loop: the backend failed; free s and its queued output without
 * any op (nothing can complete any more). */
void rs_stream_abandon(struct rs_stream *s);
/* For the loop: free the recycled stream and chunk structs. */
void rs_stream_cache_fini(struct rs_loop *loop);
/* For fs.c: rs_stream_write_file for a file request (fs.c, rs_fs_sendfile): the
 * last chunk of the range tells req (rs_fs_stream_done) when it is sent
 * or dropped. 1: req was not attached (nothing queued: the stream takes no
 * output, or queuing failed), fd closed. */
struct rs_fs_req;
int rs_stream_write_file_req(struct rs_stream *s, int fd, uint64_t off, uint64_t len,
                             struct rs_fs_req *req);
/* For fs.c (rs_fs_send): len bytes of p queued by reference, never sent
 * zero-copy; the chunk tells req (rs_fs_stream_done) when they are sent or
 * dropped. 1: nothing queued (the stream takes no output, or no memory). */
int rs_stream_write_ref_req(struct rs_stream *s, const uint8_t *p, uint32_t len,
                            struct rs_fs_req *req);

#endif
