/* A stream: one TCP socket with an output queue, driven by completions.
 *
 * Streams are what protocols work with. A stream is either accepted (the
 * listener hands it to the protocol's on_open) or outbound
 * (rs_stream_connect). It owns its socket, its ops and its queued output;
 * its owner (a protocol, a session joining two streams) gets callbacks and
 * keeps its own state behind `data`.
 *
 *   connecting (socket, then connect) -> open (reading, writing, either side half-closed)
 *              -> closing -> (close op completes) -> on_close -> freed
 *
 * Input. While reading (the default; rs_stream_read_start/stop), one
 * multishot recv is armed; received bytes come to on_data in a buffer lent
 * by the backend. on_data must pass each buffer on exactly once: queue it
 * for sending on any stream of the same loop with rs_stream_write_lent (no
 * copy: released when that send completes) or give it back with
 * rs_stream_release. A recv racing a read_stop may still deliver data:
 * on_data must accept it. -ENOBUFS (no free buffer) is not an error: the
 * loop re-arms the recv once buffers come back.
 *
 * Output. Writes are queued in order, one send in flight; when several
 * chunks wait, that send is vectored (sendmsg over up to RS_SENDV_MAX of
 * them); a short send continues where it stopped. rs_stream_pending() counts queued
 * bytes; nothing stops a writer but itself: backpressure is the owner's policy
 * (typically: rs_stream_read_stop on the stream that feeds this one when
 * pending passes loop->cfg->max_pending, rs_stream_read_start again from
 * on_writable).
 *
 * Half-close. The peer's EOF calls on_eof; by default (on_eof NULL) the
 * stream shuts its own side down once its output is sent. The owner may
 * instead keep writing and call rs_stream_shutdown later (a proxy forwards
 * the EOF to the other socket). A stream whose both directions are done
 * (EOF received, our shutdown(SHUT_WR) completed) closes itself.
 *
 * Closing. rs_stream_close: send what is queued, shut down, then read and
 * drop input until the peer's EOF (closing with unread input would make
 * the kernel reset the connection and discard what the peer has not read
 * yet). The drain timeout bounds it from the last progress: when that long
 * passes without a send completing or, all sent, without the peer's EOF,
 * the close becomes a reset (-ETIMEDOUT; with --drain-timeout=0 the bound
 * is 2 s). rs_stream_abort: close now, dropping queued output.
 * rs_stream_reset: send what is queued, then abort with a TCP reset, so the
 * peer cannot take a cut transfer for a complete one; rs_stream_abort_reset:
 * the reset at once, queued output dropped. Errors (a reset, a failed
 * send) abort. Either way on_close
 * is the last callback, with reason 0 (graceful) or -errno, and the struct
 * is freed right after it returns: it is freed only when no op is in
 * flight.
 *
 * Every callback runs from the loop (rs_loop_run), never from inside an
 * rs_stream_* call, so an owner may call any function here from any
 * callback; none of them frees the stream.
 *
 * A cancel, shutdown or close the backend refuses (-EBUSY: its queue is
 * full, -ENOMEM) is never recorded as issued: the stream sets retry, and
 * the loop calls rs_stream_retry() on a later turn until the backend takes
 * it.
 */
#ifndef RINGSERVE_STREAM_H
#define RINGSERVE_STREAM_H

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "op.h"
#include "timer.h"

struct rs_loop;
struct rs_chunk;
struct rs_sendv;
struct rs_stream;

struct rs_stream_cbs {
    /* len > 0 bytes at p, in lent buffer bid: pass on with
     * rs_stream_write_lent (any stream of this loop) or rs_stream_release.
     * Required. */
    void (*on_data)(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid);
    /* The peer shut down its side; nothing more will be received. NULL:
     * rs_stream_shutdown(s). */
    void (*on_eof)(struct rs_stream *s);
    /* A send brought the queued output from above the low watermark to at
     * or below it (rs_stream_set_lowat; default max_pending / 2). Optional. */
    void (*on_writable)(struct rs_stream *s);
    /* Outbound streams: the connect finished, res 0 or -errno (-ECONNREFUSED,
     * -ETIMEDOUT, -EHOSTUNREACH...). After a failure the stream closes
     * itself: on_close follows. Optional. */
    void (*on_connect)(struct rs_stream *s, int res);
    /* The last call: the socket is closed and the struct is freed when this
     * returns. reason: 0 after a graceful close, else -errno (the first
     * error; -ECONNABORTED for rs_stream_abort, -ETIMEDOUT for the idle
     * timeout). Optional. */
    void (*on_close)(struct rs_stream *s, int reason);
};

enum rs_stream_state {
    RS_STREAM_CONNECTING = 1,
    RS_STREAM_OPEN,
    RS_STREAM_CLOSING,
    RS_STREAM_CLOSED
};

struct rs_stream {
    struct rs_loop *loop;
    const struct rs_stream_cbs *cbs;
    void *data;        /* the owner's */
    uint64_t user_u64; /* the owner's, too (chargen: pattern offset) */
    /* Below: the core's. Read-only for owners. */
    struct rs_stream *next, *prev;                 /* loop->streams */
    struct rs_stream *starved_next, *starved_prev; /* loop->starved, FIFO */
    int fd;
    uint8_t state;
    uint8_t inflight;    /* ops submitted and not finally completed */
    uint8_t send_chunks; /* queued chunks the in-flight send covers */
    bool direct;         /* fd is a direct descriptor (io_uring fixed file) */
    bool outbound;       /* from rs_stream_connect */
    bool reading;        /* the owner wants input */
    bool recv_armed;     /* the recv op is in flight */
    bool recv_cancel;    /* ...and the backend took a cancel for it */
    bool send_busy;      /* the send op is in flight */
    bool send_cancel;    /* ...and the backend took a cancel for it */
    bool connect_busy;   /* the connect op is in flight */
    bool connect_cancel; /* ...and the backend took a cancel for it */
    bool retry;          /* the backend refused a cancel/shutdown/close: retry */
    bool eof;            /* the peer shut down its side */
    bool starved;        /* on loop->starved */
    bool shut_wanted;    /* shutdown(SHUT_WR) once the queue is empty */
    bool shut_done;      /* shutdown(SHUT_WR) issued */
    bool close_issued;   /* the close op was submitted */
    bool graceful;       /* closing after all output was sent */
    bool lingering;      /* closing: input is read and dropped until the peer's EOF */
    bool timed_out;      /* the connect timer fired */
    bool connect_sent;   /* the connect op was submitted: only then does a
                            failed or timed-out connect say anything about
                            the peer (before it, the socket was not made) */
    bool reset;          /* closing ends in a TCP reset (rs_stream_reset) */
    bool stop_hold;      /* closing for a stop: no FIN before the peer's EOF */
    bool cut;            /* ...and input was dropped: end with a reset */
    int close_reason;    /* for on_close: 0 or the first -errno */
    struct rs_op recv_op, send_op, ctl_op;
    struct rs_chunk *head, *tail;
    struct rs_sendv *sendv; /* a vectored send's msghdr: allocated when first needed */
    uint64_t pending;       /* queued output bytes, in-flight send included */
    uint64_t lowat;         /* on_writable threshold */
    uint64_t last_active_ms;
    struct rs_timer timer; /* connect timeout, then the graceful close's bound */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } peer;             /* outbound: the address being connected to */
    socklen_t peer_len; /* ...and its length */
};

/* Start an outbound connection to addr (IPv4 or IPv6) on a new socket with
 * TCP_NODELAY as configured. Where the backend has RS_OP_SOCKET
 * (RS_CAP_SOCKET) it makes the socket, a direct descriptor where it can
 * (io_uring with fixed-files and direct-socket), else a plain fd; without
 * it the socket is made here with socket(2). Its kind is s->direct once
 * known (fd is -1 until then). The stream is returned at once in the
 * connecting state; cbs->on_connect reports the result: -errno when no
 * socket could be made (EMFILE...), or the connect's, -ETIMEDOUT after
 * timeout_ms (0: no timeout of ours), which covers making the socket too.
 * Writes may be queued before the connect completes; they are sent after
 * it. NULL with errno set when nothing could be started (the backend
 * refused the op, no memory, or socket(2) failed right here). */
struct rs_stream *rs_stream_connect(struct rs_loop *loop, const struct sockaddr *addr,
                                    socklen_t addrlen, uint32_t timeout_ms,
                                    const struct rs_stream_cbs *cbs, void *data);

/* Input on or off. read_stop cancels the armed recv (data racing the
 * cancel still arrives). Both are idempotent. */
void rs_stream_read_start(struct rs_stream *s);
void rs_stream_read_stop(struct rs_stream *s);

/* Queue bytes for sending, in order. After a shutdown or on a closing
 * stream the bytes are dropped (a lent buffer is released). */
void rs_stream_write_lent(struct rs_stream *s, const uint8_t *p, uint32_t len,
                          uint16_t bid); /* zero copy */
void rs_stream_write_copy(struct rs_stream *s, const uint8_t *p,
                          uint32_t len); /* copied */
/* p must outlive the stream (static tables); may be sent zero-copy. */
void rs_stream_write_static(struct rs_stream *s, const uint8_t *p, uint32_t len);
/* Queue len bytes of file fd from offset off, sent with RS_OP_SENDFILE
 * (the backend must declare RS_CAP_SENDFILE: else -EOPNOTSUPP, and fd is
 * untouched). Otherwise 0: the stream owns fd from now on and closes it
 * once the bytes are sent or dropped (after a shutdown or on a closing
 * stream at once). The bytes count in rs_stream_pending like any others
 * but take no memory. If the file turns out shorter, the stream fails
 * (-EPIPE): the promised bytes cannot be sent. on_writable also fires when
 * a file's last byte went out. */
int rs_stream_write_file(struct rs_stream *s, int fd, uint64_t off, uint64_t len);
/* A file chunk is queued (not all of its bytes sent yet). */
bool rs_stream_has_file(const struct rs_stream *s);
/* Give a lent buffer back without sending it. */
void rs_stream_release(struct rs_stream *s, uint16_t bid);

/* Queued output bytes, the in-flight send included. */
static inline uint64_t rs_stream_pending(const struct rs_stream *s)
{
    return s->pending;
}
/* on_writable fires when pending falls from above bytes to at or below. */
static inline void rs_stream_set_lowat(struct rs_stream *s, uint64_t bytes)
{
    s->lowat = bytes;
}
/* Still open for the owner: neither closing nor closed. */
static inline bool rs_stream_is_open(const struct rs_stream *s)
{
    return s->state == RS_STREAM_OPEN || s->state == RS_STREAM_CONNECTING;
}

/* shutdown(SHUT_WR) once the queued output is sent; reading goes on. */
void rs_stream_shutdown(struct rs_stream *s);
/* Graceful close (see above). */
void rs_stream_close(struct rs_stream *s);
/* Close now, dropping queued output. on_close gets reason (-errno; 0 is
 * taken as -ECONNABORTED). */
void rs_stream_abort_reason(struct rs_stream *s, int reason);
static inline void rs_stream_abort(struct rs_stream *s)
{
    rs_stream_abort_reason(s, 0);
}
/* Close with a reset: what the peer must see when the transfer it is part
 * of was cut (the other side of a proxy session reset or failed). The
 * queued output is sent first, bounded like a graceful close by
 * --drain-timeout without progress; then, instead of shutdown(SHUT_WR) and
 * a FIN, the connection is aborted (RS_OPF_RESET on the close): the peer
 * reads a prefix of what was written (bytes still in the kernel's send
 * buffer are lost) and then ECONNRESET, never a clean EOF. No more input is
 * read. Counted in resets_out. on_close gets reason (-errno: what cut the
 * transfer; -ECONNRESET for rs_stream_reset) unless an earlier error came
 * first. On a closing stream the close still ends in a reset
 * if its close op was not submitted yet. */
void rs_stream_reset_reason(struct rs_stream *s, int reason);
static inline void rs_stream_reset(struct rs_stream *s)
{
    rs_stream_reset_reason(s, -ECONNRESET);
}

/* Close now with a reset, without sending what is queued: the drain
 * deadline, a close that made no progress. Like rs_stream_abort_reason
 * (on_close gets reason), and the close op carries RS_OPF_RESET. */
void rs_stream_abort_reset(struct rs_stream *s, int reason);

/* A graceful stop began and the protocol has no on_stop: the default end
 * of an open stream. Its queued output is sent; then a peer that already
 * finished sending (its EOF came) gets a FIN, the normal end. Any other
 * peer may be mid-transfer, and a FIN would tell it that what it sent was
 * all taken: the stream reads on and drops, ending with a FIN if the
 * peer's EOF comes first, with a reset as soon as a byte was dropped (the
 * stop cut its input; counted in stats.dropped), or with a reset at the
 * drain deadline. A stream still connecting is aborted. Protocols may
 * call it from on_stop for the connections they let the core end. */
void rs_stream_stop(struct rs_stream *s);

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
 * last chunk of the range tells req (rs_fs_sendfile_done) when it is sent
 * or dropped. 1: req was not attached (nothing queued: the stream takes no
 * output, or queuing failed), fd closed. */
struct rs_fs_req;
int rs_stream_write_file_req(struct rs_stream *s, int fd, uint64_t off, uint64_t len,
                             struct rs_fs_req *req);

#endif
