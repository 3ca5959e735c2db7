/* An asynchronous operation, as the core sees it.
 *
 * The core speaks completions (the proactor pattern): it fills a struct
 * rs_op, hands it to the backend with submit(), and later, from inside the
 * backend's run(), the op's fn is called with a struct rs_completion.
 * Whether the backend really has completions (io_uring) or manufactures them
 * from readiness (epoll) is invisible here.
 */
#ifndef RINGSERVE_OP_H
#define RINGSERVE_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rs_loop;
struct rs_op;
struct statx;

enum rs_op_kind {
    RS_OP_ACCEPT = 1, /* res: new socket (a direct descriptor if the backend uses them) */
    RS_OP_RECV,       /* res: bytes; data lies in a lent buffer (RS_CF_BUFFER) */
    RS_OP_SEND,       /* res: bytes sent, may be short */
    RS_OP_SHUTDOWN,   /* shutdown(fd, SHUT_WR) */
    RS_OP_CLOSE,      /* close(fd); the last op a socket ever sees */
    RS_OP_CONNECT,    /* connect(fd, buf, len): buf is a struct sockaddr that must
                         stay valid until the completion; res 0 or -errno */
    /* Files: submitted as a struct rs_file_op (below). Their descriptors are
     * always plain process fds, never direct ones. */
    RS_OP_OPENAT,   /* openat2(fd, path, how): res = the new fd */
    RS_OP_READ,     /* pread(fd, dst, len, off): res = bytes, 0 at end of file */
    RS_OP_WRITE,    /* pwrite(fd, buf, len, off): res = bytes written */
    RS_OP_STATX,    /* statx(fd, path, flags, mask, stx): res = 0 */
    RS_OP_HANDOFF,  /* move accepted socket fd to the loop in buf (RS_CAP_HANDOFF);
                       res >= 0: it is there, fd is no longer ours; < 0: it
                       still is */
    RS_OP_SOCKET,   /* a new TCP socket (RS_CAP_SOCKET): len = address family
                       (AF_INET, AF_INET6), fd unused; non-blocking and
                       close-on-exec when it is a plain fd. With RS_OPF_DIRECT a
                       direct descriptor is welcome (not promised); with
                       RS_OPF_NODELAY it has TCP_NODELAY set. res = the new
                       descriptor, flagged RS_CF_DIRECT when it is a direct one */
    RS_OP_SENDFILE, /* send len bytes of a file to socket fd without copying
                       them through user space (RS_CAP_SENDFILE): buf is a
                       struct rs_sendfile; res = bytes sent, may be short; 0:
                       the file ended first */
    RS_OP_FSYNC,    /* fsync(fd), or fdatasync(fd) when len is RS_FSYNC_DATA
                       (a file op, like READ/WRITE): res 0 */
};

/* RS_OP_FSYNC's len: flush the data and only the metadata needed to read
 * it back (fdatasync), not the timestamps. */
#define RS_FSYNC_DATA 1u

/* RS_OP_SENDFILE's source: owned by the submitter, untouched until the
 * completion. len >= 1 (op.len) bytes of file_fd (a plain fd of a regular
 * file, open for reading) from off on go to the socket op.fd (direct with
 * RS_OPF_DIRECT). The socket should be non-blocking (every accepted socket
 * is): a blocking one may hold a backend's worker until its peer reads. */
struct rs_sendfile {
    int file_fd;
    uint64_t off;
};

/* RS_OP_ACCEPT with this fd: no socket, but the connections other loops
 * hand to this one (RS_OP_HANDOFF), one completion each; multishot. */
#define RS_FD_INBOX (-1)

/* rs_op.flags, set by the submitter */
/* Keep the op armed: many completions. */
#define RS_OPF_MULTISHOT (1u << 0)
/* RS_OP_SEND: buf outlives every use (zero-copy safe). */
#define RS_OPF_STATIC_BUF (1u << 1)
/* fd is a direct descriptor (an io_uring fixed-file slot), not a process
 * fd. The descriptor kind travels with each op: one loop may hold both
 * (accepted sockets direct, outbound ones plain where the kernel cannot
 * make direct ones). Only a backend declaring RS_CAP_DIRECT_FD ever hands
 * out direct descriptors (RS_CF_DIRECT). On RS_OP_SOCKET (which has no fd
 * yet) it means "a direct descriptor is welcome". */
#define RS_OPF_DIRECT (1u << 2)
/* RS_OP_READ: read into a buffer the backend lends from the loop's pool
 * (completion flagged RS_CF_BUFFER when res > 0, released like a recv's;
 * -ENOBUFS when none is free); len is capped at the pool's buffer size (0:
 * a whole buffer). The backend never writes the caller's op.len. */
#define RS_OPF_POOL_BUF (1u << 3)
/* RS_OP_SOCKET: set TCP_NODELAY on the new socket before completing. */
#define RS_OPF_NODELAY (1u << 4)
/* RS_OP_SEND: buf is a struct msghdr whose iovecs hold the bytes (a
 * vectored send, sendmsg(2)); len is their total. The msghdr and iovecs
 * stay untouched until the completion. Never zero-copy. */
#define RS_OPF_MSG (1u << 5)
/* RS_OP_SEND: more bytes follow at once (MSG_MORE): the kernel may hold
 * these to fill a segment with the next send's (an HTTP head before its
 * body). The next send without it pushes them out. */
#define RS_OPF_MORE (1u << 6)
/* RS_OP_CLOSE of a connected socket: abort the connection rather than
 * close it. The peer gets a TCP reset (its reads fail with ECONNRESET once
 * it has read what reached it), never a FIN that would look like a
 * complete transfer; bytes still in our send buffer are dropped. The close
 * completes like any other. How is the backend's business: epoll sets
 * SO_LINGER {1, 0} before close(2); io_uring links connect(2) to AF_UNSPEC
 * before the close, which the kernel turns into the reset at once and
 * which works on direct descriptors too (see uring.c). */
#define RS_OPF_RESET (1u << 7)

/* rs_completion.flags, set by the backend */
/* The op is still armed; more completions follow. */
#define RS_CF_MORE (1u << 0)
/* .bid names a lent buffer the core must release. */
#define RS_CF_BUFFER (1u << 1)
/* accept, socket: res is a direct descriptor (use it with RS_OPF_DIRECT). */
#define RS_CF_DIRECT (1u << 2)

struct rs_completion {
    int32_t res; /* >= 0, or -errno exactly like cqe->res */
    uint32_t flags;
    uint16_t bid; /* valid with RS_CF_BUFFER */
    /* With RS_CF_BUFFER: where the bytes start in buffer bid. 0 unless the
     * backend lends slices of one buffer to several receives (io_uring's
     * buf-inc); the core releases each slice once, by bid. */
    uint32_t off;
};

typedef void (*rs_complete_fn)(struct rs_loop *loop, struct rs_op *op,
                               const struct rs_completion *c);

struct rs_op {
    rs_complete_fn fn; /* called from run(), never from submit() */
    void *data;        /* the owner (a connection, a listener...) */
    const void *buf;   /* RS_OP_SEND: bytes to send */
    uint32_t len;      /* RS_OP_SEND: how many */
    int fd;            /* the socket the op works on */
    uint8_t kind;      /* enum rs_op_kind */
    uint8_t flags;     /* RS_OPF_* */
    /* Below: private to the backend that currently owns the op. */
    uint8_t bk_flags;
    uint8_t bk_gen;
    void *bk_ptr;
};

/* The openat2(2) arguments, laid out exactly like the kernel's struct
 * open_how (flags, mode, resolve: RESOLVE_BENEATH...). openat2 is strict:
 * unknown bits, or a mode without O_CREAT/O_TMPFILE, give -EINVAL. */
struct rs_open_how {
    uint64_t flags;
    uint64_t mode;
    uint64_t resolve;
};

/* A file op: an rs_op whose kind is one of the file kinds, plus what a file
 * op needs and a socket op does not (socket ops stay 48 bytes). The caller
 * owns every pointer until the op completes.
 *   OPENAT: op.fd = directory fd (or AT_FDCWD), path, how
 *   READ:   op.fd, dst (or RS_OPF_POOL_BUF), op.len, off
 *   WRITE:  op.fd, op.buf, op.len, off
 *   STATX:  op.fd, path ("" with AT_EMPTY_PATH: the fd itself), at_flags,
 *           mask (STATX_*), stx
 *   FSYNC:  op.fd, op.len (0 or RS_FSYNC_DATA)
 * Close a file with a plain rs_op: RS_OP_CLOSE without RS_OPF_DIRECT. */
struct rs_file_op {
    struct rs_op op;
    const char *path;
    void *dst;
    uint64_t off;
    struct rs_open_how how;
    struct statx *stx;
    uint32_t mask;
    int at_flags;
    /* Below: private to the backend. */
    struct rs_file_op *bk_next;
    void *bk_buf;    /* RS_OPF_POOL_BUF: the pool buffer read into */
    uint32_t bk_len; /* ...and how much of it: op.len capped, op.len untouched */
    int32_t bk_res;
    uint16_t bk_bid;
};

/* A file range the kernel can name: offsets are loff_t, signed, and
 * io_uring reads the offset -1 (UINT64_MAX) as "the file's position", so
 * neither the offset nor the range's end may pass INT64_MAX. */
static inline bool rs_file_range_ok(uint64_t off, uint64_t len)
{
    return off <= (uint64_t)INT64_MAX && len <= (uint64_t)INT64_MAX - off;
}

static inline struct rs_file_op *rs_file_op_of(struct rs_op *op)
{
    return (struct rs_file_op *)(void *)((char *)op - offsetof(struct rs_file_op, op));
}

static inline bool rs_op_is_file(const struct rs_op *op)
{
    return op->kind == RS_OP_OPENAT || op->kind == RS_OP_READ ||
           op->kind == RS_OP_WRITE || op->kind == RS_OP_STATX || op->kind == RS_OP_FSYNC;
}

/* For backends: deliver one completion of op (from run() only). */
static inline void rs_op_complete(struct rs_loop *loop, struct rs_op *op, int32_t res,
                                  uint32_t flags, uint16_t bid)
{
    struct rs_completion c = {.res = res, .flags = flags, .bid = bid};
    op->fn(loop, op, &c);
}

/* The same, for a receive whose bytes start `off` bytes into buffer bid. */
static inline void rs_op_complete_slice(struct rs_loop *loop, struct rs_op *op,
                                        int32_t res, uint32_t flags, uint16_t bid,
                                        uint32_t off)
{
    struct rs_completion c = {.res = res, .flags = flags, .bid = bid, .off = off};
    op->fn(loop, op, &c);
}

/* (Re)initialise an op for its next use. The generation (bk_gen) is kept:
 * backends bump it on every submit and drop a completion whose generation
 * is not the op's current one, so a late completion of an earlier use can
 * never be taken for this one. Resetting it here would hand every use the
 * same generation and defeat that check. The first use of an op's memory
 * may find any value there; zeroed memory (= {0}, calloc) keeps memory
 * checkers quiet. */
static inline void rs_op_init(struct rs_op *op, uint8_t kind, int fd, rs_complete_fn fn,
                              void *data)
{
    uint8_t gen = op->bk_gen;
    *op = (struct rs_op){.fn = fn, .data = data, .fd = fd, .kind = kind, .bk_gen = gen};
}

static inline void rs_file_op_init(struct rs_file_op *f, uint8_t kind, int fd,
                                   rs_complete_fn fn, void *data)
{
    uint8_t gen = f->op.bk_gen;
    *f = (struct rs_file_op){
        .op = {.fn = fn, .data = data, .fd = fd, .kind = kind, .bk_gen = gen}};
}

#endif
