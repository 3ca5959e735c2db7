/* What backend_uring/splice.c (the op: its start, its cancel),
 * splice_sqe.c (its steps' SQEs), splice_cqe.c (their CQEs),
 * splice_pipes.c (the pipe cache) and splice_here.c (the loop's own
 * sendfile(2) and splice(2) into the socket) share. Internal to those
 * five files. */
#ifndef RINGSERVE_URING_SPLICE_INT_H
#define RINGSERVE_URING_SPLICE_INT_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#include "splice.h"

/* What the record has in flight (splice.c's essay draws the machine):
 * a worker's linked pair IN -> OUT, or its OUT alone (with a timer when
 * the socket blocks); the poll for room for a worker's OUT (POLL) or the
 * loop's next sendfile(2) or splice(2) (WAIT); the direct pipe being
 * made; the NOP that ends the op with what the loop found; the direct
 * socket's fd being installed; the ring's file -> pipe splice alone for
 * the loop to send (IN). */
enum {
    STEP_PAIR,
    STEP_OUT,
    STEP_POLL,
    STEP_PIPE,
    STEP_END,
    STEP_INSTALL,
    STEP_WAIT,
    STEP_IN
};

struct sp_pipe {
    struct sp_pipe *next;
    int rd, wr;
    uint32_t cap; /* bytes it holds (F_GETPIPE_SZ) */
    bool direct;  /* rd and wr are direct descriptors (IORING_OP_PIPE) */
    int made[2];  /* STEP_PIPE: where the kernel writes them */
};

struct sp_rec {
    struct sp_rec *next, *prev; /* live list; free list through next */
    struct rs_op *op;
    struct sp_pipe *pipe;
    uint32_t want;   /* op->len */
    uint32_t sent;   /* bytes that went out */
    uint32_t inpipe; /* bytes taken from the file, not sent yet */
    uint32_t asked;  /* STEP_PAIR: bytes both splices were asked for */
    int32_t in_res;  /* STEP_PAIR: the IN splice's result, once known */
    uint8_t step;
    uint8_t gen;
    uint8_t cqes;  /* CQEs still to come for the step in flight */
    bool in_done;  /* STEP_PAIR: the IN's CQE came */
    bool cancel;   /* a cancel was asked: end at the next CQE */
    bool own_sock; /* sock was installed: closed at the op's end, or held */
    bool nb_set;   /* O_NONBLOCK was set on sock: put back at the op's end, or held */
    int sock;      /* the socket as a process fd while the loop sends; -1 */
    int sock_fl;   /* sock's file status flags before (F_GETFL) */
    /* Bytes [sent, cached_end) of the op were found cached at cached_ms:
     * the loop's sendfile(2) asks for no more than that (sp_rest_cached). */
    uint32_t cached_end;
    uint32_t took; /* bytes the last sendfile(2) of the transfer moved (0: none yet) */
    uint64_t cached_ms;
    bool slow;       /* the op's last check went stale while it waited (check_span) */
    bool wait_first; /* the last op ended at a full socket: WAIT before sending */
    bool ended_full; /* this op ends early, at a full socket (UR_SPLICE_STEP) */
    /* Cancels asked again for the op (at most CANCEL_TRIES). */
    uint8_t cancels;
    bool out_timer; /* STEP_OUT: a timer bounds the worker's splice (blocking socket) */
};

/* A direct socket held between ops (splice_here.c): its slot in the
 * ring's table, its installed process fd, and whether O_NONBLOCK is
 * still set (a send on the socket cleared it, the fd stays). */
struct sp_held {
    int slot;
    int fd;
    bool nb;
};
/* More sockets streaming files than this at once: the oldest held one is
 * put back (each op then pays what every op paid before). */
#define SP_HELD_MAX 16

/* How the op that just ended left its transfer, for the next op of the
 * same stream, which the core submits from inside the completion (the
 * stream sends on at once): where it stopped in which file, whether the
 * socket was full, and how far pages were found cached, when. Set only
 * around that completion (finish()): never stale. A core that submitted
 * later would only lose the shortcut (one more check and sendfile(2)). */
struct sp_next {
    const struct rs_op *op; /* NULL: none */
    const void *src;
    int fd, file_fd;
    uint64_t off;       /* where the next op must start in the file */
    uint64_t cached_to; /* file offset up to which pages were found cached */
    uint64_t cached_ms;
    uint32_t took;
    bool full;
};

struct ur_splice {
    /* Direct sockets held between ops: where ur_splice_new was told (the
     * backend's hot state), else own_nheld. */
    uint32_t *nheld;
    uint32_t own_nheld;
    ur_get_sqe_fn get_sqe;
    void *ctx;
    unsigned tag;
    uint32_t pipe_size;
    bool direct_pipes; /* pipe2 out of descriptors: IORING_OP_PIPE instead */
    bool no_cachestat; /* the kernel cannot say what is cached: IN in the ring */
    bool no_install;   /* no IORING_OP_FIXED_FD_INSTALL: direct sockets by pipe */
    struct sp_rec *live, *free_recs;
    struct sp_pipe *cache;
    struct sp_pipe *doomed; /* direct pipes whose close found no SQE yet */
    uint32_t ncache, nlive;
    struct sp_held held[SP_HELD_MAX]; /* *nheld of them, oldest first */
    /* SIGPIPE's disposition, as sigaction(2) said at pipe_asked_ms
     * (splice_here.c's pipe_guard). */
    bool pipe_known, pipe_ign;
    uint64_t pipe_asked_ms;
    struct sp_next next;
};

/* A step's user_data (ud_of): the record's address in the low 48 bits,
 * the op's generation above them, the backend's tag in the top byte. */
#define UD_PTR_MASK ((UINT64_C(1) << 48) - 1)
/* In the user_data of a cancel, and of the timer before a cancel is
 * asked again (ur_splice_cancel): their CQEs are theirs, not the step's
 * (records are aligned, so the pointer's lowest bits are free). */
#define UD_CANCEL UINT64_C(1)
#define UD_RETRY  UINT64_C(2)
/* Both bits: the timer that stops a worker's splice into a blocking
 * socket (prep_out). */
#define UD_OUT_TIMER (UD_CANCEL | UD_RETRY)

/* What the SQEs of r's step carry in their user_data: the record, its
 * generation and the backend's tag; a cancel's and a timer's add their
 * flag bits (UD_*). */
static inline uint64_t ud_of(const struct ur_splice *sp, const struct sp_rec *r)
{
    uintptr_t p = (uintptr_t)r;
    assert((p & ~UD_PTR_MASK) == 0 && (p & (UD_CANCEL | UD_RETRY)) == 0);
    return (uint64_t)p | (uint64_t)r->gen << 48 | (uint64_t)sp->tag << 56;
}

/* An op that goes through a pipe ends once UR_SPLICE_STEP went out
 * (ending it at a wait for room would throw away what its pipe holds, and
 * the pipe with it): it carries at most that much. */
static inline void sp_pipe_sized(struct sp_rec *r)
{
    if (r->want > UR_SPLICE_STEP && r->sent < UR_SPLICE_STEP)
        r->want = UR_SPLICE_STEP;
}

/* splice_sqe.c: queue the SQEs of r's step s (false: none to be had,
 * nothing issued); take a chain's n SQEs, all or none; write step s into
 * them; an ASYNC_CANCEL of whatever r has in flight (false: no SQE). */
bool sp_issue(struct ur_splice *sp, struct sp_rec *r, uint8_t s);
bool sp_take(struct ur_splice *sp, struct io_uring_sqe **q, unsigned n);
void sp_fill(struct ur_splice *sp, struct sp_rec *r, uint8_t s, struct io_uring_sqe **q);
bool sp_cancel_sqe(struct ur_splice *sp, struct sp_rec *r);
/* splice_cqe.c: the op ends with what went out, or err when nothing did. */
void sp_finish_err(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r,
                   int32_t err);
/* splice_cqe.c: the loop cannot send the rest of the op: on by pipe. */
void sp_by_pipe(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r);

/* splice_pipes.c: the pipe cache. */
struct sp_pipe *sp_pipe_get(struct ur_splice *sp, int *err);
void sp_pipe_put(struct ur_splice *sp, struct sp_pipe *p, bool empty);
void sp_pipe_close(struct ur_splice *sp, struct sp_pipe *p, bool ring_gone);
void sp_close_doomed(struct ur_splice *sp);

/* splice_here.c: the loop's own sendfile(2). */
bool sp_rest_cached(struct ur_splice *sp, struct sp_rec *r, uint64_t now_ms);
bool sp_next_trusted(struct ur_splice *sp, struct sp_rec *r, uint64_t now_ms);
void sp_next_set(struct ur_splice *sp, const struct sp_rec *r);
bool sp_start_here(struct ur_splice *sp, struct sp_rec *r);
void sp_here_step(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r);
void sp_sock_put(struct sp_rec *r);
void sp_sock_keep(struct ur_splice *sp, struct sp_rec *r);
bool sp_sock_take(struct ur_splice *sp, struct sp_rec *r);
void sp_held_drop_all(struct ur_splice *sp);
int sp_sock_nb(struct sp_rec *r);
int sp_out_here(struct ur_splice *sp, struct sp_rec *r);
/* splice.c: the loop moves the op through its pipe; the step after. The
 * step that moves the op's next part (in the loop, or through the ring). */
uint8_t sp_pipe_here(struct ur_splice *sp, struct sp_rec *r);
uint8_t sp_part_step(struct ur_splice *sp, struct sp_rec *r);

#endif
