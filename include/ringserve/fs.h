/* Asynchronous file requests: open, read, write, statx, fsync, close.
 *
 * A file request is a struct rs_fs_req the caller owns (embedded in its own
 * state, or on its own), started by one typed call and finished by one
 * callback on the loop's thread, like libuv's uv_fs_* requests:
 *
 *     struct rs_fs_req req = {0};        // zeroed before its first use
 *     req.data = upload;                 // the caller's, never touched here
 *     rs_fs_write(loop, &req, fd, buf, len, off, on_written);
 *     ...
 *     static void on_written(struct rs_fs_req *req)
 *     {
 *         struct upload *u = req->data;  // req->result: bytes or -errno
 *     }
 *
 * What the library does for every request, so that callers need not:
 *  - the backend performs the call without blocking the loop (io_uring:
 *    the kernel; epoll: its worker threads);
 *  - a backend that cannot take a request right now (a full submission
 *    queue: -EBUSY) is asked again on every loop turn until it does: a
 *    refusal is never a result;
 *  - the callback runs exactly once per successful start, never from
 *    inside the call that started it, and the request may be reused (or
 *    freed) from its callback on;
 *  - generations: a completion left over from an earlier use of the same
 *    request memory can never be taken for the current use;
 *  - the loop stays alive while requests are in flight: a stopping server
 *    finishes them before its loop exits.
 *
 * Every rs_fs_* call returns 0 when the request started (its callback will
 * run), or -errno when it could not start (the callback will not run):
 * -EINPROGRESS when req is still in flight, -EINVAL for bad arguments
 * (a file offset, or the end of a range, past INT64_MAX among them: the
 * kernel's offsets are signed, and io_uring would take -1 for "the file's
 * current position" where pread says EINVAL),
 * -EOPNOTSUPP when the backend has no file ops (io_uring before 5.6).
 * Buffers, paths and the statx target belong to the caller and must stay
 * valid until the callback. Descriptors are plain process fds, opened
 * close-on-exec. Only the loop's own thread may start or cancel requests.
 *
 * Sending a file to a socket goes through the socket's stream, behind its
 * other output: rs_fs_sendfile below, or rs_stream_write_file (stream.h)
 * when no callback is wanted; rs_fs_send sends bytes already read into the
 * caller's memory, without a copy into the stream's queue.
 */
#ifndef RINGSERVE_PUBLIC_FS_H
#define RINGSERVE_PUBLIC_FS_H

#include <linux/stat.h> /* struct statx, STATX_* */
#include <stdint.h>

#include "export.h"

struct rs_loop;
struct rs_fs_req;
struct rs_stream;

typedef void (*rs_fs_fn)(struct rs_fs_req *req);

/* What a request does (rs_fs_req.type). */
enum rs_fs_type {
    RS_FS_NONE = 0,
    RS_FS_OPEN,
    RS_FS_READ,
    RS_FS_WRITE,
    RS_FS_STATX,
    RS_FS_FSYNC,
    RS_FS_CLOSE,
    RS_FS_SENDFILE,
    RS_FS_SEND,
};

/* The library's part of a request: its state and the backend op it
 * embeds (so starting a request allocates nothing). Opaque; its size is
 * part of the ABI. */
#define RS_FS_REQ_PRIVATE_WORDS 28

struct rs_fs_req {
    void *data;           /* the caller's */
    struct rs_loop *loop; /* set by the call that started it */
    /* In the callback: open: the new fd; read/write: bytes (a read returns
     * 0 at the end of the file, a write may be short); statx, fsync,
     * close: 0. Or -errno (-ECANCELED after rs_fs_cancel). */
    int32_t result;
    uint8_t type; /* enum rs_fs_type */
    /* rs_fs_read_lent, in the callback when result > 0: the loop's buffer
     * holding the bytes (rs_loop_buf), now the caller's to give back. */
    uint16_t bid;
    union {
        uint64_t words[RS_FS_REQ_PRIVATE_WORDS];
        void *align;
    } priv;
};

/* Open path (relative to the working directory, or absolute) like
 * open(2); mode only counts with O_CREAT or O_TMPFILE. */
RS_EXPORT int rs_fs_open(struct rs_loop *loop, struct rs_fs_req *req, const char *path,
                         int flags, unsigned mode, rs_fs_fn cb);
/* Open path beneath the directory dirfd and never outside it: absolute
 * paths, ".." and symbolic links that lead out are refused (-EXDEV),
 * checked by the kernel during the walk (openat2 RESOLVE_BENEATH); where
 * the kernel lacks openat2, stricter: every symbolic link is refused. */
RS_EXPORT int rs_fs_open_beneath(struct rs_loop *loop, struct rs_fs_req *req, int dirfd,
                                 const char *path, int flags, unsigned mode, rs_fs_fn cb);
/* pread: up to len bytes at off into buf. */
RS_EXPORT int rs_fs_read(struct rs_loop *loop, struct rs_fs_req *req, int fd, void *buf,
                         uint32_t len, uint64_t off, rs_fs_fn cb);
/* pread into one of the loop's lent buffers instead of the caller's
 * memory: up to len bytes at off (len at most rs_config.buffer_size; more
 * is capped to it). When result > 0 the bytes are at rs_loop_buf(loop,
 * req->bid), lent to the caller, who passes the buffer on exactly once:
 * rs_loop_buf_release (<ringserve/loop.h>) once done with the bytes.
 * With no buffer free the result is -ENOBUFS (try again later: buffers
 * come back as streams and readers release theirs); the read did not
 * happen. (io_uring's buf-inc keeps a quarter of the pool for these reads:
 * its ring's buffers are shared by receives.) Holds no memory of the
 * caller's while in flight, and no buffer before the kernel has the
 * bytes. */
RS_EXPORT int rs_fs_read_lent(struct rs_loop *loop, struct rs_fs_req *req, int fd,
                              uint32_t len, uint64_t off, rs_fs_fn cb);
/* pwrite: len bytes of buf at off; a short write is the caller's to
 * continue. */
RS_EXPORT int rs_fs_write(struct rs_loop *loop, struct rs_fs_req *req, int fd,
                          const void *buf, uint32_t len, uint64_t off, rs_fs_fn cb);
/* statx(2) of path relative to dirfd, or of fd dirfd itself when path is
 * NULL; mask: STATX_SIZE, STATX_MODE, STATX_MTIME... into *out. */
RS_EXPORT int rs_fs_statx(struct rs_loop *loop, struct rs_fs_req *req, int dirfd,
                          const char *path, int at_flags, unsigned mask,
                          struct statx *out, rs_fs_fn cb);
/* fsync(2): data and metadata on stable storage. */
RS_EXPORT int rs_fs_fsync(struct rs_loop *loop, struct rs_fs_req *req, int fd,
                          rs_fs_fn cb);
/* fdatasync(2): the data and what is needed to read it back. */
RS_EXPORT int rs_fs_fdatasync(struct rs_loop *loop, struct rs_fs_req *req, int fd,
                              rs_fs_fn cb);
/* close(2). Once the callback runs the fd is gone, whatever the result. */
RS_EXPORT int rs_fs_close(struct rs_loop *loop, struct rs_fs_req *req, int fd,
                          rs_fs_fn cb);

/* Send len (1 to INT32_MAX) bytes of file fd from off to stream s, of
 * this loop, after everything queued on s before, without copying them
 * through user space (sendfile(2); io_uring: splice through a pipe). fd
 * stays the caller's: the stream sends from a duplicate (rs_loop_dup_fd:
 * -EMFILE or -ENFILE, nothing queued, when the process has no descriptor
 * for it even with the loop's held ones given back). The callback runs
 * once the last byte went out (result: len), or once the stream dropped
 * them (-ECANCELED: it was closed, aborted or failed first, or took no
 * more output; a file shorter than off + len fails the stream). It ends
 * with its stream: abort the stream to cancel it (rs_fs_cancel says
 * -EOPNOTSUPP). -EOPNOTSUPP also when the backend cannot send files. */
RS_EXPORT int rs_fs_sendfile(struct rs_loop *loop, struct rs_fs_req *req,
                             struct rs_stream *s, int fd, uint64_t off, uint64_t len,
                             rs_fs_fn cb);

/* Send len (1 to INT32_MAX) bytes of buf to stream s, of this loop, after
 * everything queued on s before, from buf itself: not copied into the
 * stream's queue, so buf must stay untouched until the callback (never
 * sent zero-copy: the kernel is done with buf when the callback runs). The
 * callback runs once the last byte went out (result: len) or once the
 * stream dropped them (-ECANCELED, as for rs_fs_sendfile). For large
 * bodies read from files into memory of the caller's own: one copy fewer
 * than rs_stream_write_copy, and the caller decides how many such buffers
 * a connection may hold. Ends with its stream like rs_fs_sendfile. */
RS_EXPORT int rs_fs_send(struct rs_loop *loop, struct rs_fs_req *req, struct rs_stream *s,
                         const void *buf, uint32_t len, rs_fs_fn cb);

/* Ask an in-flight request to finish early. Its callback still runs
 * exactly once: with -ECANCELED, or with its natural result when the call
 * had already started (a read inside the kernel cannot be interrupted).
 * 0, or -ENOENT when req is not in flight (its callback ran, or is due
 * this turn and will bring the natural result). */
RS_EXPORT int rs_fs_cancel(struct rs_fs_req *req);

#endif
