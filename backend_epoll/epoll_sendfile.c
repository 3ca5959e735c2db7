/* The epoll backend's RS_OP_SENDFILE beyond the socket: how much of an
 * op's file range the loop may send itself, from the page cache
 * (cachestat(2), its answer trusted a while), and the worker job that
 * makes the call when the pages are not cached, so that the loop never
 * waits for the disk. epoll.c's essay says why; epoll_io.c sends what is
 * cached and ends a job (ep_job_done). */
#include <errno.h>
#include <stdlib.h>

#include "epoll_state.h"
#include "pagecache.h"

/* How much of a sendfile's range the loop may send without waiting for
 * the disk: the op's length when its pages are all in the page cache, 0
 * when they are not (a worker sends them), or less than the op's length
 * when the range checked for an earlier call of the same transfer ends
 * before the op does (the call stops there: a short completion, and the
 * next op checks on). When the kernel cannot say (before 6.5): all of
 * it, and sendfile(2) blocks on what is not cached, as it always did. */
uint32_t ep_sendfile_cached_len(struct rs_loop *loop, struct ep_state *st,
                                struct ep_sock *s, const struct rs_op *op)
{
    const struct rs_sendfile *sf = op->buf;
    if (st->no_cachestat)
        return op->len;
    /* The same source (the core keeps one per file chunk), its offset
     * inside the checked range, checked lately: no new check. */
    if (s->cs_src == sf && s->cs_fd == sf->file_fd && sf->off >= s->cs_start &&
        sf->off < s->cs_end && rs_loop_now(loop) - s->cs_ms < CACHED_TRUST_MS) {
        uint64_t left = s->cs_end - sf->off;
        if (left >= op->len)
            return op->len;
        /* Less than the op asks: stop at the checked end only if that
         * is at least what the last call sent, so as not to make a short
         * call where one call would have sent the lot; else check the
         * op's range. */
        if (left >= s->cs_last)
            return (uint32_t)left;
    }
    s->cs_src = NULL;
    int c = rs_range_cached(sf->file_fd, sf->off, op->len);
    if (c == -ENOSYS || c == -EPERM) {
        st->no_cachestat = true;
        return op->len;
    }
    if (c == 0)
        return 0;
    if (c == 1) {
        s->cs_src = sf;
        s->cs_fd = sf->file_fd;
        s->cs_start = sf->off;
        s->cs_end = sf->off + op->len;
        s->cs_ms = rs_loop_now(loop);
        s->cs_last = 0;
    }
    return op->len; /* c < 0: not known, as before 6.5 */
}

/* Hand a sendfile whose pages are not cached to a worker (pool mode). 0:
 * it is there; else the caller sends in the loop, as before. The op stays
 * in flight until the worker is done with it (a cancel cannot interrupt
 * it): its socket and file stay open until then. */
int ep_job_start(struct rs_loop *loop, struct ep_state *st, struct ep_sock *s,
                 struct rs_op *op)
{
    if (!st->fs && !(st->fs = rs_fspool_new(st->fs_threads, loop->wake_fd)))
        return -ENOMEM;
    struct ep_job *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    rs_file_op_init(&w->f, RS_FS_SENDFILE, op->fd, ep_job_done, NULL);
    w->f.dst = (void *)(uintptr_t)op->buf;
    w->f.op.len = op->len < JOB_MAX ? op->len : JOB_MAX;
    w->op = op;
    w->cancel = false;
    s->out_edge = false;
    if (rs_fspool_submit(st->fs, &w->f) < 0) {
        free(w);
        return -ENOMEM;
    }
    loop->stats.sendfile_worker_reads++;
    loop->stats.sendfile_worker_sends++;
    w->prev = NULL;
    w->next = st->jobs;
    if (st->jobs)
        st->jobs->prev = w;
    st->jobs = w;
    s->job = w;
    return 0;
}
