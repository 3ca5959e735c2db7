/* The epoll backend: completions manufactured from readiness.
 *
 * epoll tells you when a socket *could* make progress: "there is something
 * to read", "there is room to write". It does no IO. The core wants the
 * opposite contract, the one io_uring gives: "here is a buffer of bytes you
 * received", "your send finished, this many bytes went out". This backend
 * turns the first into the second: it keeps, per descriptor, the op waiting
 * for readability (an accept or a recv) and the op waiting for writability
 * (a send), performs the syscall itself when epoll says it may succeed, and
 * reports the result as a completion from run().
 *
 * Two notification modes, chosen with --epoll-mode:
 *
 *  - level-triggered (lt): epoll reports a socket for as long as it is
 *    readable (or writable). Simple and forgiving: read once per wake-up,
 *    and if data is left, the next epoll_wait says so again. The price is
 *    the interest mask: a socket we do not want to read from (backpressure)
 *    or write to (nothing blocked) must be taken out of the set, or
 *    epoll_wait returns at once, forever. So lt registers EPOLLIN while a
 *    recv is armed and adds EPOLLOUT only while a send is blocked: an
 *    epoll_ctl whenever that changes, none per message in the common case.
 *
 *  - edge-triggered (et): each socket is registered once with
 *    EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET and never touched again. epoll
 *    reports a *change*: new data arrived, room appeared. Data left unread
 *    is never announced again, so the backend must remember readiness itself
 *    (nginx's `ready` bit): rd_ready is set by an event and cleared only by
 *    EAGAIN or a short read; while it is set and a recv is armed, we read.
 *    To keep one busy client from starving the rest, each wake-up reads at
 *    most READ_BUDGET times per socket; a socket still ready goes on a
 *    ready list served on the next turn, without sleeping in epoll_wait.
 *
 * Both modes send speculatively (Boost.Asio, nginx): submit() tries send()
 * at once, and only on EAGAIN waits for writability. The result is queued
 * and delivered from run(), never from inside submit() (contract rule 1).
 *
 * A connect is the same idea: connect(2) on the non-blocking socket at
 * once; EINPROGRESS parks the op as the writer, and when epoll reports the
 * socket writable (or in error) SO_ERROR says how the handshake ended.
 * io_uring instead waits for the handshake in the kernel and reports the
 * final result. The socket before it (RS_OP_SOCKET) is no IO at all:
 * socket(2) in submit(), its fd delivered from run(); epoll has only plain
 * descriptors.
 *
 * Receive buffers are lent from the loop's pool the moment a read is
 * attempted, like io_uring's provided buffers: an idle connection holds
 * none. An empty pool yields -ENOBUFS, exactly as the io_uring buffer ring
 * does, and the core treats both the same way.
 *
 * Files are another matter: epoll cannot wait for them at all. File ops go
 * to a worker pool (fspool.c, whose header says why), or with --fs=inline
 * are performed in submit() itself, blocking the loop; either way
 * their completions come from run().
 *
 * RS_OP_SENDFILE sits between the two: sendfile(2) is a send as far as the
 * socket goes (speculative, then on EPOLLOUT) and a file read as far as the
 * page cache goes. Cached pages cost nothing to wait for; a page that is
 * not cached would make sendfile read the disk in the loop. So a sendfile
 * first asks cachestat(2) (6.5+) whether its range is all cached (the
 * answer serves the next calls of the same transfer inside that range
 * for 10 ms: a socket takes a fraction of an op per call), and when
 * it is not, a worker makes the sendfile(2) call (RS_FS_SENDFILE: it waits
 * for the disk, never for the peer: the socket is non-blocking), as nginx
 * does with `aio threads`. With --fs=inline the loop reads them itself,
 * on purpose.
 *
 * This file is the backend's table, its init and fini; epoll_state.h
 * lists where the rest lives (epoll_io.c does the IO described above,
 * epoll_sendfile.c the page-cache check and the workers' sendfile jobs).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "backend_table.h"
#include "epoll_state.h"
#include "options.h"

static void ep_buf_release(struct rs_loop *loop, uint16_t bid)
{
    if (rs_bufpool_unlend(&loop->pool, bid)) /* refused: returned twice */
        rs_bufpool_put(&loop->pool, bid);
}

static int ep_init(struct rs_loop *loop, const struct rs_config *cfg, char *err,
                   size_t errlen)
{
    struct ep_state *st = calloc(1, sizeof(*st));
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    struct epoll_options opts;
    rs_epoll_options_read(cfg, &opts);
    st->et = opts.et;
    st->fs_inline = opts.fs_inline;
    st->fs_threads = opts.fs_threads;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "epoll_create1: %s", strerror(errno));
        free(st);
        return rc;
    }
    struct epoll_event ev = {.events = EPOLLIN,
                             .data.u64 = ep_pack(loop->wake_fd, WAKE_TAG)};
    if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0) {
        int rc = -errno;
        snprintf(err, errlen, "epoll_ctl(wake): %s", strerror(errno));
        close(st->epfd);
        free(st);
        return rc;
    }
    loop->backend = st;
    loop->caps = RS_CAP_CONNECT | RS_CAP_FILE_OPS | RS_CAP_SOCKET | RS_CAP_SENDFILE;
    return 0;
}

static void ep_fini(struct rs_loop *loop)
{
    struct ep_state *st = state(loop);
    if (!st)
        return;
    if (st->fs) {
        /* Every op completes once, even at the end (rule 5): those no
         * worker started with -ECANCELED, those running with their result
         * once the workers are joined, so their owners can free what they
         * hold. The pool's own sendfile jobs are freed below instead. */
        ep_fs_complete_list(loop, rs_fspool_stop(st->fs));
        ep_fs_complete_list(loop, rs_fspool_free(st->fs)); /* joins the workers */
        st->fs = NULL;
    }
    while (st->jobs) /* jobs dropped, or finished and never reaped */
        ep_job_free(st, st->jobs);
    assert(st->done_len == 0);
    close(st->epfd);
    free(st->socks);
    free(st->done);
    free(st->ready);
    free(st);
    loop->backend = NULL;
}

static void ep_describe(struct rs_loop *loop, char *out, size_t outlen)
{
    struct ep_state *st = state(loop);
    if (st->fs_inline)
        snprintf(out, outlen, "mode=%s, fs=inline", st->et ? "et" : "lt");
    else
        snprintf(out, outlen, "mode=%s, fs-threads=%u", st->et ? "et" : "lt",
                 st->fs_threads);
}

const struct rs_backend_ops rs_backend_epoll = {
    .name = "epoll",
    .init = ep_init,
    .fini = ep_fini,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .run = ep_run,
    .wake = rs_loop_wake,
    .buf_release = ep_buf_release,
    .describe = ep_describe,
    .wait_call = "epoll_wait",
    .options = rs_epoll_options,
    .help = rs_epoll_help,
};
