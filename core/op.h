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

#include <stdint.h>

struct rs_loop;
struct rs_op;

enum rs_op_kind {
    RS_OP_ACCEPT = 1, /* res: new socket (a direct descriptor if the backend uses them) */
    RS_OP_RECV,       /* res: bytes; data lies in a lent buffer (RS_CF_BUFFER) */
    RS_OP_SEND,       /* res: bytes sent, may be short */
    RS_OP_SHUTDOWN,   /* shutdown(fd, SHUT_WR) */
    RS_OP_CLOSE,      /* close(fd); the last op a socket ever sees */
    RS_OP_HANDOFF,    /* move accepted socket fd to the loop in buf (RS_CAP_HANDOFF);
                         res >= 0: it is there, fd is no longer ours; < 0: it
                         still is */
};

/* RS_OP_ACCEPT with this fd: no socket, but the connections other loops
 * hand to this one (RS_OP_HANDOFF), one completion each; multishot. */
#define RS_FD_INBOX (-1)

/* rs_op.flags, set by the submitter */
#define RS_OPF_MULTISHOT (1u << 0) /* keep the op armed: many completions */
#define RS_OPF_STATIC_BUF                                                                \
    (1u << 1) /* RS_OP_SEND: buf outlives every use (zero-copy safe) */

/* rs_completion.flags, set by the backend */
#define RS_CF_MORE   (1u << 0) /* the op is still armed; more completions follow */
#define RS_CF_BUFFER (1u << 1) /* .bid names a lent buffer the core must release */

struct rs_completion {
    int32_t res; /* >= 0, or -errno exactly like cqe->res */
    uint32_t flags;
    uint16_t bid; /* valid with RS_CF_BUFFER */
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

/* For backends: deliver one completion of op (from run() only). */
static inline void rs_op_complete(struct rs_loop *loop, struct rs_op *op, int32_t res,
                                  uint32_t flags, uint16_t bid)
{
    struct rs_completion c = {.res = res, .flags = flags, .bid = bid};
    op->fn(loop, op, &c);
}

static inline void rs_op_init(struct rs_op *op, uint8_t kind, int fd, rs_complete_fn fn,
                              void *data)
{
    *op = (struct rs_op){.fn = fn, .data = data, .fd = fd, .kind = kind};
}

#endif
