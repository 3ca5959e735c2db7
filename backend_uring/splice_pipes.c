/* RS_OP_SENDFILE on io_uring: the pipes its splices go through (splice.c
 * says how an op uses them). Bytes in a pipe are taken from the file but
 * not yet sent, so a pipe stays with its op; one known to be empty goes
 * back to a small per-loop cache for the next op, any other is closed.
 *
 * A process out of descriptors cannot make a pipe with pipe2(2), and the
 * op would fail where sendfile(2) needs none. Where the kernel has
 * IORING_OP_PIPE (6.16) and the ring a direct-descriptor table, such an op
 * first makes its pipe as two direct descriptors (one more step, PIPE,
 * before the first PAIR): splices name them with SPLICE_F_FD_IN_FIXED
 * (fd_in) and IOSQE_FIXED_FILE (fd_out), and only an SQE closes them. Only
 * then: a direct pipe has no fd for F_SETPIPE_SZ, so it keeps the kernel's
 * default 64 KiB, and moving 1 MiB through it takes 16 splice pairs
 * instead of one (measured: about three times the server CPU per 1 MiB
 * response, BENCHMARKS.md).
 */
#include "splice_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define PIPE_CACHE 16 /* empty pipes kept per loop for the next ops */
/* What a direct pipe holds: the kernel's default (16 pages), which nothing
 * can change without an fd. Were it smaller (a user past
 * fs.pipe-user-pages-soft), IN would come back short: more steps, same
 * bytes. */
#define DIRECT_PIPE_CAP 65536u

void ur_splice_direct_pipes(struct ur_splice *sp)
{
    sp->direct_pipes = true;
}

/* A pipe no op will use again. A direct one is closed by two SQEs, whose
 * CQEs carry no record (ignored); without SQEs it waits in doomed for the
 * next call. ring_gone: after io_uring_queue_exit(), which took the direct
 * ones with the table. */
void sp_pipe_close(struct ur_splice *sp, struct sp_pipe *p, bool ring_gone)
{
    if (!p->direct) {
        close(p->rd);
        close(p->wr);
    } else if (!ring_gone && p->rd >= 0) {
        struct io_uring_sqe *a = sp->get_sqe(sp->ctx, 2);
        struct io_uring_sqe *b = a ? sp->get_sqe(sp->ctx, 1) : NULL;
        if (!b) {
            if (a) {
                io_uring_prep_nop(a);
                io_uring_sqe_set_data64(a, (uint64_t)sp->tag << 56);
            }
            p->next = sp->doomed;
            sp->doomed = p;
            return;
        }
        io_uring_prep_close_direct(a, (unsigned)p->rd);
        io_uring_sqe_set_data64(a, (uint64_t)sp->tag << 56);
        io_uring_prep_close_direct(b, (unsigned)p->wr);
        io_uring_sqe_set_data64(b, (uint64_t)sp->tag << 56);
    }
    free(p);
}

void sp_close_doomed(struct ur_splice *sp)
{
    struct sp_pipe *d = sp->doomed;
    sp->doomed = NULL;
    while (d) {
        struct sp_pipe *next = d->next;
        sp_pipe_close(sp, d, false);
        d = next;
    }
}

void ur_splice_counts(const struct ur_splice *sp, uint32_t *live, uint32_t *cached)
{
    *live = sp ? sp->nlive : 0;
    *cached = sp ? sp->ncache : 0;
}

uint32_t ur_splice_cached_bytes(const struct ur_splice *sp)
{
    uint32_t sum = 0;
    for (const struct sp_pipe *p = sp ? sp->cache : NULL; p; p = p->next) {
        int n = 0;
        if (!p->direct && p->rd >= 0 && ioctl(p->rd, FIONREAD, &n) == 0 && n > 0)
            sum += (uint32_t)n;
    }
    return sum;
}

/* A pipe from the cache, or a new one as large as the kernel lets us make
 * it (an unprivileged user past fs.pipe-user-pages-soft gets the default,
 * or less: it still works, in more steps). Non-blocking, so that no splice
 * can ever wait for the pipe itself. Out of descriptors, with direct
 * pipes: one still to be made (rd -1, STEP_PIPE). NULL with -errno in
 * *err. */
struct sp_pipe *sp_pipe_get(struct ur_splice *sp, int *err)
{
    struct sp_pipe *p = sp->cache;
    if (p) {
        sp->cache = p->next;
        sp->ncache--;
        return p;
    }
    p = malloc(sizeof(*p));
    int fds[2];
    int rc = p ? pipe2(fds, O_CLOEXEC | O_NONBLOCK) : -1;
    if (rc < 0 && p && ur_splice_give_back(sp, -errno))
        rc = pipe2(fds, O_CLOEXEC | O_NONBLOCK); /* once, held sockets given back */
    if (!p || rc < 0) {
        *err = p ? -errno : -ENOMEM;
        if (p && sp->direct_pipes && (*err == -EMFILE || *err == -ENFILE)) {
            *p = (struct sp_pipe){
                .rd = -1, .wr = -1, .cap = DIRECT_PIPE_CAP, .direct = true};
            return p;
        }
        free(p);
        return NULL;
    }
    p->direct = false;
    p->rd = fds[0];
    p->wr = fds[1];
    if (sp->pipe_size)
        (void)fcntl(p->wr, F_SETPIPE_SZ, (int)sp->pipe_size); /* a wish */
    int cap = fcntl(p->wr, F_GETPIPE_SZ);
    p->cap = cap > 0 ? (uint32_t)cap : 4096;
    return p;
}

/* An op is done with its pipe (if it had one: the loop's own sends need
 * none): keep it if it is known to be empty. */
void sp_pipe_put(struct ur_splice *sp, struct sp_pipe *p, bool empty)
{
    if (!p)
        return;
    if (!empty || sp->ncache >= PIPE_CACHE || p->rd < 0) {
        sp_pipe_close(sp, p, false);
        return;
    }
    p->next = sp->cache;
    sp->cache = p;
    sp->ncache++;
}
