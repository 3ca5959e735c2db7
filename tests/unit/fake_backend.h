/* A scripted backend for driving the core without a kernel: submit() and
 * cancel() are recorded; the test decides each completion, and run()
 * delivers them, as the contract demands, never from submit(). */
#ifndef RINGSERVE_FAKE_BACKEND_H
#define RINGSERVE_FAKE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "loop.h"

#define FAKE_MAX_OPS 64

struct fake_state {
    struct rs_op *inflight[FAKE_MAX_OPS];  /* submitted, not finally completed */
    bool inflight_cancelled[FAKE_MAX_OPS]; /* a cancel was taken for it */
    int ninflight;
    struct rs_op *cancelled[FAKE_MAX_OPS];
    int ncancelled;
    struct {
        struct rs_op *op;
        struct rs_completion c;
        int gen; /* >= 0: delivered only if the op is still in this generation */
    } queue[FAKE_MAX_OPS];
    int stale_dropped; /* completions dropped for an older generation */
    int nqueue;
    int submits[32]; /* per kind */
    uint32_t released[RS_BUFPOOL_MAX];
    bool fail_submit;
    /* Scheduled refusals, as a full io_uring SQ (-EBUSY) or an epoll
     * backend out of memory would produce them: the next N submits of a
     * kind, the next N cancels. A refused call leaves no trace. */
    int refuse_submit[32];
    int refuse_cancel;
    int refused; /* how many calls were refused so far */
    /* run() returns this (< 0) instead of delivering: a backend that
     * failed for good. fini() then tolerates ops left in flight. */
    int run_error;
    /* run() plays a kernel that completes whatever is in flight: a
     * cancelled op with -ECANCELED, a recv with EOF, a send in full,
     * shutdown and close with 0, an accept with -ECANCELED. For tests of
     * rs_loop_run() that must reach the end by themselves. */
    bool auto_complete;
    int sockets; /* RS_OP_SOCKETs auto_complete answered */
};

/* auto_complete's RS_OP_SOCKET results count up from here. */
#define FAKE_SOCKET_FD 900000

extern const struct rs_backend_ops fake_backend;
struct fake_state *fake(struct rs_loop *loop);

/* cfg: the defaults with a small pool (16 buffers of 64 bytes); then a
 * loop on the fake backend with it. 0 or -errno. */
int fake_loop_init(struct rs_loop *loop, struct rs_config *cfg);

/* The op of this kind and fd in flight, or NULL. */
struct rs_op *fake_find(struct rs_loop *loop, uint8_t kind, int fd);
bool fake_was_cancelled(struct rs_loop *loop, struct rs_op *op);
/* Script a completion; delivered by the next run(). */
void fake_complete(struct rs_loop *loop, struct rs_op *op, int32_t res, uint32_t flags,
                   uint16_t bid);
/* Script a completion of an earlier use of op (generation gen, as
 * op->bk_gen was then), as a kernel may still post one: like io_uring,
 * the next run() drops it when the op has moved on to another generation
 * (each submit bumps bk_gen). */
void fake_complete_gen(struct rs_loop *loop, struct rs_op *op, uint8_t gen, int32_t res);
/* Lend a pool buffer filled with data, as a kernel recv would. */
uint16_t fake_lend(struct rs_loop *loop, const void *data, uint32_t len);
/* The bytes a send op covers (buf/len, or the iovecs of an RS_OPF_MSG
 * send), copied into out (op->len bytes). */
void fake_send_gather(const struct rs_op *op, uint8_t *out);
/* Whether a send op reads any byte of [lo, hi). */
bool fake_send_reads(const struct rs_op *op, const void *lo, const void *hi);
/* Deliver queued completions; returns how many. */
int fake_run(struct rs_loop *loop);

#endif
