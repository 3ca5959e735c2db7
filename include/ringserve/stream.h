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
 * loop re-arms the recv once buffers come back. A relayed stream
 * (rs_stream_relay, below: echo, a proxy) skips on_data: the stream layer
 * writes what it receives to the relay's destination itself.
 *
 * Output. Writes are queued in order, one send in flight; when several
 * chunks wait, that send is vectored (sendmsg over up to RS_SENDV_MAX of
 * them); a short send continues where it stopped. rs_stream_pending() counts queued
 * bytes; nothing stops a writer but itself: backpressure is the owner's policy
 * (typically: rs_stream_read_stop on the stream that feeds this one when
 * pending passes rs_loop_config(loop)->max_pending, rs_stream_read_start again from
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
 * the reset at once, queued output dropped. Errors abort: the peer's (a
 * reset) as they come; ours (a send or a write that failed here: no
 * memory, no descriptor, a file cut short, the backend refusing the send)
 * with a reset, so a cut transfer never ends in a FIN. Either way on_close
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
#ifndef RINGSERVE_PUBLIC_STREAM_H
#define RINGSERVE_PUBLIC_STREAM_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "export.h"

struct rs_loop;
struct rs_stream; /* opaque: reached through the functions below */

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

/* The loop the stream belongs to (its callbacks run on that loop's thread). */
RS_EXPORT struct rs_loop *rs_stream_loop(const struct rs_stream *s);
/* The owner's pointer: given to rs_stream_connect, NULL for an accepted
 * stream until its owner (the protocol's on_open) sets it. */
RS_EXPORT void *rs_stream_data(const struct rs_stream *s);
RS_EXPORT void rs_stream_set_data(struct rs_stream *s, void *data);
/* Point the stream at other callbacks (on_data stays required). NULL:
 * none at all any more, on_close included; only for a stream being
 * aborted that its owner forgets at once. */
RS_EXPORT void rs_stream_set_cbs(struct rs_stream *s, const struct rs_stream_cbs *cbs);

/* Start an outbound connection to addr (IPv4 or IPv6) on a new socket with
 * TCP_NODELAY as configured. Where the backend has RS_OP_SOCKET
 * (RS_CAP_SOCKET) it makes the socket, a direct descriptor where it can
 * (io_uring with fixed-files and direct-socket), else a plain fd; without
 * it the socket is made here with socket(2).  The stream is returned at once in the
 * connecting state; cbs->on_connect reports the result: -errno when no
 * socket could be made (EMFILE...), or the connect's, -ETIMEDOUT after
 * timeout_ms (0: no timeout of ours), which covers making the socket too.
 * Writes may be queued before the connect completes; they are sent after
 * it. NULL with errno set when nothing could be started (the backend
 * refused the op, no memory, or socket(2) failed right here; EINVAL for
 * no cbs or no cbs->on_data, EAFNOSUPPORT for an address not IPv4/6). */
RS_EXPORT struct rs_stream *
rs_stream_connect(struct rs_loop *loop, const struct sockaddr *addr, socklen_t addrlen,
                  uint32_t timeout_ms, const struct rs_stream_cbs *cbs, void *data);

/* Input on or off. read_stop cancels the armed recv (data racing the
 * cancel still arrives). Both are idempotent. */
RS_EXPORT void rs_stream_read_start(struct rs_stream *s);
RS_EXPORT void rs_stream_read_stop(struct rs_stream *s);

/* Queue bytes for sending, in order. After a shutdown or on a closing
 * stream the bytes are dropped (a lent buffer is released). */
RS_EXPORT void rs_stream_write_lent(struct rs_stream *s, const uint8_t *p, uint32_t len,
                                    uint16_t bid); /* zero copy */
RS_EXPORT void rs_stream_write_copy(struct rs_stream *s, const uint8_t *p,
                                    uint32_t len); /* copied */
/* p must outlive the stream (static tables); may be sent zero-copy. */
RS_EXPORT void rs_stream_write_static(struct rs_stream *s, const uint8_t *p,
                                      uint32_t len);
/* Queue len bytes of file fd from offset off, sent with RS_OP_SENDFILE
 * (the backend must declare RS_CAP_SENDFILE: else -EOPNOTSUPP, and fd is
 * untouched; -EINVAL, fd untouched too, when off + len passes INT64_MAX).
 * Otherwise 0: the stream owns fd from now on and closes it once the
 * bytes are sent or dropped (after a shutdown or on a closing stream at
 * once). The bytes count in rs_stream_pending like any others but take
 * no memory. If the file turns out shorter (truncated while it is sent),
 * the stream fails (-EPIPE) with a reset: the promised bytes cannot be
 * sent, and the peer reads a prefix, then ECONNRESET, never a clean EOF.
 * So does any send that fails on this side (a file read error: -EIO).
 * A range over 1 GiB takes a duplicate of fd per GiB past the first
 * (rs_loop_dup_fd, loop.h): with none to be had, the stream fails the
 * same way (-EMFILE). on_writable also fires when a file's last byte
 * went out. */
RS_EXPORT int rs_stream_write_file(struct rs_stream *s, int fd, uint64_t off,
                                   uint64_t len);
/* hlen bytes of head (copied), then a file range as rs_stream_write_file
 * says, queued together: the head leaves in the body's first segment (with
 * MSG_MORE) instead of alone, as a response head before its body should
 * (a head sent on its own, answered at once, keeps a client's receive
 * window small for the body behind it). Same results as
 * rs_stream_write_file; on -EOPNOTSUPP nothing is queued. */
RS_EXPORT int rs_stream_write_head_file(struct rs_stream *s, const uint8_t *head,
                                        uint32_t hlen, int fd, uint64_t off,
                                        uint64_t len);
/* A file chunk is queued (not all of its bytes sent yet). */
RS_EXPORT bool rs_stream_has_file(const struct rs_stream *s);
/* Give a lent buffer back without sending it. */
RS_EXPORT void rs_stream_release(struct rs_stream *s, uint16_t bid);

/* Relay: from now on, what `from` receives is written to `to` (to ==
 * from: echo) by the stream itself, as on_data would with
 * rs_stream_write_lent, without calling on_data: the lent buffer goes
 * straight from the receive to to's output queue (no copy; released
 * once its send completed or its bytes were dropped). Order, short sends
 * and the queue's rules are those of rs_stream_write_lent. The relay
 * keeps the backpressure an owner would: when to holds more than
 * max_pending bytes (rs_loop_config), from stops reading, and reads
 * again once a send brought to down to its low watermark
 * (rs_stream_set_lowat); the owner's own rs_stream_read_start/stop are
 * kept apart from that hold. count: NULL, or a counter the relay adds
 * each chunk's length to (the proxy's bytes_up and bytes_down).
 *
 * Only data is relayed; the rest stays the owner's: on_eof (when NULL,
 * from's EOF becomes rs_stream_shutdown(to) instead of (from): the
 * half-close goes where the bytes went), on_writable, on_connect,
 * on_close. Errors, resets, stops and timeouts are the streams' own, as
 * without a relay (a proxy's on_close still decides that a reset on one
 * side resets the other). A stream that starts closing receives nothing
 * more for the relay (a closing stream drops its input; a closing `to`
 * drops what is written to it).
 *
 * One relay per source and one per destination: -EBUSY otherwise;
 * -EINVAL for streams of two loops; -EPIPE when either is no longer open.
 * `to` may still be connecting: the bytes wait in its queue. 0 on
 * success. */
RS_EXPORT int rs_stream_relay(struct rs_stream *from, struct rs_stream *to,
                              uint64_t *count);
/* End from's relay (idempotent): what from receives next goes to on_data
 * again, and backpressure is the owner's again (a stream the relay held
 * reads again). Bytes already relayed stay queued on the destination. A
 * relay also ends, without this call, when either stream is freed,
 * before its on_close. */
RS_EXPORT void rs_stream_relay_stop(struct rs_stream *from);
/* Where from's relay writes, or NULL when it has none. */
RS_EXPORT struct rs_stream *rs_stream_relay_target(const struct rs_stream *from);

/* Queued output bytes, the in-flight send included. */
RS_EXPORT uint64_t rs_stream_pending(const struct rs_stream *s);
/* on_writable fires when pending falls from above bytes to at or below. */
RS_EXPORT void rs_stream_set_lowat(struct rs_stream *s, uint64_t bytes);
/* Still open for the owner: neither closing nor closed. */
RS_EXPORT bool rs_stream_is_open(const struct rs_stream *s);

/* shutdown(SHUT_WR) once the queued output is sent; reading goes on. */
RS_EXPORT void rs_stream_shutdown(struct rs_stream *s);
/* Graceful close (see above). */
RS_EXPORT void rs_stream_close(struct rs_stream *s);
/* Close now, dropping queued output. on_close gets reason (-errno; 0 is
 * taken as -ECONNABORTED). */
RS_EXPORT void rs_stream_abort_reason(struct rs_stream *s, int reason);
static inline void rs_stream_abort(struct rs_stream *s)
{
    rs_stream_abort_reason(s, 0);
}
/* Close with a reset: what the peer must see when the transfer it is part
 * of was cut (the other side of a proxy session reset or failed). The
 * queued output is sent first, bounded like a graceful close by
 * --drain-timeout without progress; then, instead of shutdown(SHUT_WR) and
 * a FIN, the connection is aborted: the peer reads a prefix of what was
 * written (bytes still in the kernel's send buffer are lost) and then
 * ECONNRESET, never a clean EOF. No more input is read. Counted in
 * resets_out. on_close gets reason (-errno: what cut the transfer;
 * -ECONNRESET for rs_stream_reset) unless an earlier error came first. On
 * a closing stream the close still ends in a reset if its close op was not
 * submitted yet. */
RS_EXPORT void rs_stream_reset_reason(struct rs_stream *s, int reason);
static inline void rs_stream_reset(struct rs_stream *s)
{
    rs_stream_reset_reason(s, -ECONNRESET);
}
/* An outbound stream's connect was submitted: only then does a failed or
 * timed-out connect say anything about the peer (before it, no socket
 * could be made here: EMFILE...). */
RS_EXPORT bool rs_stream_connect_sent(const struct rs_stream *s);

/* Close now with a reset, without sending what is queued: the drain
 * deadline, a close that made no progress. Like rs_stream_abort_reason
 * (on_close gets reason), and the connection ends in a TCP reset. */
RS_EXPORT void rs_stream_abort_reset(struct rs_stream *s, int reason);

/* A graceful stop began and the protocol has no on_stop: the default end
 * of an open stream. Its queued output is sent; then a peer that already
 * finished sending (its EOF came) gets a FIN, the normal end. Any other
 * peer may be mid-transfer, and a FIN would tell it that what it sent was
 * all taken: the stream reads on and drops, ending with a FIN if the
 * peer's EOF comes first, with a reset as soon as a byte was dropped (the
 * stop cut its input; counted in stats.dropped), or with a reset at the
 * drain deadline. A stream still connecting is aborted. Protocols may
 * call it from on_stop for the connections they let the core end. */
RS_EXPORT void rs_stream_stop(struct rs_stream *s);

#endif
