/* RS_OP_SENDFILE on io_uring: IORING_OP_SPLICE through a pipe (splice.c
 * says how and why). Internal to the io_uring backend. */
#ifndef RINGSERVE_URING_SPLICE_H
#define RINGSERVE_URING_SPLICE_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

struct rs_loop;
struct rs_op;
struct ur_splice;

/* The backend's SQE source (it flushes a full SQ): one SQE, with n - 1 more
 * free right after it for a linked chain (NULL: none to be had). */
typedef struct io_uring_sqe *(*ur_get_sqe_fn)(void *ctx, unsigned n);

/* NULL when out of memory. pipe_size: bytes asked of F_SETPIPE_SZ (0: the
 * kernel's default). nheld: where the count of direct sockets held
 * between ops is kept, exact at every moment (see ur_splice_release
 * below): a field of the backend's hot state, so that its every submit
 * pays one test of it and no pointer chase when none is held; NULL: in
 * the splice state itself. */
struct ur_splice *ur_splice_new(ur_get_sqe_fn get_sqe, void *ctx, unsigned tag,
                                uint32_t pipe_size, uint32_t *nheld);
/* When pipe2(2) finds the process out of descriptors (EMFILE, ENFILE),
 * make the pipe with IORING_OP_PIPE in the ring's direct-descriptor table
 * instead (the kernel has the opcode; the ring has a table). */
void ur_splice_direct_pipes(struct ur_splice *sp);
/* After io_uring_queue_exit(): closes every pipe, frees every record. */
void ur_splice_free(struct ur_splice *sp);

/* An op (RS_OP_SENDFILE) may be as large as the caller likes: it ends
 * early, with what went out, once UR_SPLICE_STEP bytes went out and the
 * socket is full (the loop's own sendfile(2)), or once that much went
 * through its pipe; so its completion — where the stream's idle clock
 * and send timeout see progress — never waits for room after that much.
 * The backend lets the core cut files into ops of UR_SPLICE_OP_MAX
 * (loop->sendfile_op_max): fewer ops, checks and calls per MiB when the
 * socket takes more than a MiB at once. */
#define UR_SPLICE_STEP   (1u << 20)
#define UR_SPLICE_OP_MAX (4u << 20)

/* Start op (RS_OP_SENDFILE): 0, or -errno with nothing done. */
int ur_splice_submit(struct ur_splice *sp, struct rs_op *op);
/* Ask op to end early (backend.h rule 5): 0 or -EBUSY (no SQE). */
int ur_splice_cancel(struct ur_splice *sp, struct rs_op *op);
/* A CQE whose user_data carries the tag: res is cqe->res. May complete the
 * op. */
void ur_splice_cqe(struct ur_splice *sp, struct rs_loop *loop, uint64_t user_data,
                   int32_t res);
/* A direct socket the loop sent a file to keeps, between its sendfile
 * ops, its installed process fd and its O_NONBLOCK flag (splice_here.c
 * says why). Before a send on that socket the backend calls
 * ur_splice_unflag with the op's fd (the flag back; the fd stays for
 * the connection's next file), and before any other op on it but a
 * receive — a shutdown, a close, a hand-off — ur_splice_release (the
 * flag back and the installed fd closed: it would keep the connection
 * open). Both are no-ops for a socket not held; both take a slot, so the
 * backend calls them for ops on direct descriptors only (a plain fd of
 * the same number is another file); while *nheld (above) is 0 it need
 * not call them. */
void ur_splice_release(struct ur_splice *sp, int fd);
void ur_splice_unflag(struct ur_splice *sp, int fd);
/* An open, a socket or a pipe failed with err (-errno): if the process is
 * out of descriptors (EMFILE, ENFILE), every held socket is put back (the
 * direct slots stay: only the installed fds go), and true says some were:
 * try it once more. */
bool ur_splice_give_back(struct ur_splice *sp, int err);
/* Pipes made, reused and thrown away, for describe/tests. */
void ur_splice_counts(const struct ur_splice *sp, uint32_t *live, uint32_t *cached);
/* Bytes left in the cached pipes (FIONREAD; a direct pipe counts 0): a
 * pipe goes back to the cache only empty, for tests to check. */
uint32_t ur_splice_cached_bytes(const struct ur_splice *sp);

#endif
