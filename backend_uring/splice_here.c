/* RS_OP_SENDFILE on io_uring: the loop's own sends into the socket —
 * sendfile(2) of a cached range, splice(2) out of the op's pipe — and the
 * socket discipline they share (splice.c has the overview).
 *
 * When the whole op's range is cached the loop sends it itself, with
 * sendfile(2), the way nginx does: no pipe, no worker, no wake-up; the
 * loop sleeps only when the socket is full (a POLLOUT step, WAIT). Any
 * other range goes through a pipe, and the loop splices the pipe into
 * the socket itself (sp_out_here), so that no io-wq worker ever waits
 * for a peer that does not read. Both need the socket as a process fd: a
 * plain socket is its own; a direct one (the default for accepted
 * sockets) gets one from IORING_OP_FIXED_FD_INSTALL (6.8), INSTALL (the
 * direct descriptor keeps the socket open; the installed fd must go
 * before the connection can close). O_NONBLOCK is set while the loop
 * sends: the flag belongs to the socket's open file, which the ring's
 * own ops share, and a splice in io-wq or a blocking retry of a send
 * honours it (-EAGAIN where the ring would otherwise wait); meanwhile
 * the only other op on the socket is the receive, which never waits.
 * A plain socket's flags are put back when its op ends (sp_sock_put). A
 * direct socket is held as it is between ops (sp_sock_keep: a large
 * file is a run of ops on one socket, and the install, its close and
 * the fcntl pair were 4 of ~8 syscalls per MiB): a send on it clears
 * the flag and keeps the fd for the connection's next file
 * (ur_splice_unflag), any other op but a receive gives it back
 * (ur_splice_release); an op that failed or was cancelled puts it back
 * at once. sendfile(2) and splice(2) raise SIGPIPE for
 * a peer gone: blocked around the calls unless ignored (pipe_guard). A
 * kernel without the opcode, or a process out of descriptors, leaves the
 * sending to io-wq workers (splice.c says how that is bounded).
 * Counted on 6.18 for a 64 MiB cached response: the 64 worker trips and
 * their ~130 context switches are gone (docs/http.md).
 */
#include "splice_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "op.h"
#include "pagecache.h"

/* How long a range found cached stays trusted while its op waits for room
 * in the socket: its pages were just used (the page cache's most recent),
 * and a check walks every page (1-10 us per MiB on 6.18, more for small
 * folios). */
#define CACHED_TRUST_MS 10

/* How much of the op one check covers, from where it stands. A check
 * walks every page it covers (1-10 us per MiB), and the loop's
 * sendfile(2) asks for no more than was checked. A peer that keeps up
 * (the op's last check is less than CACHED_TRUST_MS old when it runs
 * out) gets the op's whole rest: checked once per op or less
 * (sp_next_trusted), its calls, which take MiBs, never cut at a checked
 * end (each cut is one more sendfile(2) and one more check: a span of
 * twice the last call's bytes was counted at +25 % syscalls per 64 MiB
 * response, +40 % with the client on another CPU). A slow one, whose op
 * is checked again after each wait of CACHED_TRUST_MS or more, gets
 * about what its socket takes: twice what its last sendfile(2) took, at
 * least UR_SPLICE_STEP — no more pages walked per call than with 1 MiB
 * ops. */
static uint32_t check_span(const struct sp_rec *r)
{
    uint32_t rest = r->want - r->sent;
    if (!r->slow || r->took == 0)
        return rest;
    uint32_t span = r->took < UR_SPLICE_STEP / 2 ? UR_SPLICE_STEP : 2 * r->took;
    return span < rest ? span : rest;
}

/* The op's next bytes (check_span of them) are in the page cache, so
 * that the loop may send them itself: sendfile(2) then cannot wait for a
 * disk. r->cached_end says how far. */
bool sp_rest_cached(struct ur_splice *sp, struct sp_rec *r, uint64_t now_ms)
{
    const struct rs_sendfile *src = r->op->buf;
    if (sp->no_cachestat)
        return false;
    uint32_t len = check_span(r);
    int c = rs_range_cached(src->file_fd, src->off + r->sent, len);
    if (c == -ENOSYS || c == -EPERM)
        sp->no_cachestat = true;
    r->cached_ms = now_ms;
    r->cached_end = c == 1 ? r->sent + len : r->sent;
    return c == 1;
}

/* r continues the transfer of the op that just ended (struct sp_next):
 * it starts with a wait for room if that one ended at a full socket, and
 * takes over its check of what is cached while that is fresh. true: the
 * op's first bytes need no check. */
bool sp_next_trusted(struct ur_splice *sp, struct sp_rec *r, uint64_t now_ms)
{
    const struct sp_next *n = &sp->next;
    const struct rs_sendfile *src = r->op->buf;
    if (n->op != r->op || n->src != src || n->fd != r->op->fd ||
        n->file_fd != src->file_fd || n->off != src->off)
        return false;
    r->wait_first = n->full;
    r->took = n->took;
    r->slow = now_ms - n->cached_ms >= CACHED_TRUST_MS;
    if (r->slow || n->cached_to <= src->off)
        return false;
    uint64_t end = n->cached_to - src->off;
    r->cached_end = end < r->want ? (uint32_t)end : r->want;
    r->cached_ms = n->cached_ms;
    return true;
}

/* r, which the loop sent itself, ends short of its len and well: what the
 * next op of the transfer may take over (sp_next_trusted). An op that
 * sent all of its len is not remembered: its file chunk may have ended,
 * and the next op be another file's at a descriptor number reused. */
void sp_next_set(struct ur_splice *sp, const struct sp_rec *r)
{
    const struct rs_sendfile *src = r->op->buf;
    if (r->pipe || r->sent >= r->op->len)
        return;
    sp->next = (struct sp_next){.op = r->op,
                                .src = src,
                                .fd = r->op->fd,
                                .file_fd = src->file_fd,
                                .off = src->off + r->sent,
                                .cached_to = src->off + r->cached_end,
                                .cached_ms = r->cached_ms,
                                .took = r->took,
                                .full = r->ended_full};
}

/* r->sock non-blocking for the rest of the op (the flag is the socket
 * file's, shared with the ring's ops: sp_sock_put puts it back, the
 * essay says why). 0 or -errno. */
int sp_sock_nb(struct sp_rec *r)
{
    if (r->nb_set)
        return 0;
    /* This backend makes its direct sockets blocking, with no other
     * status flag (accepted or made without SOCK_NONBLOCK): only a
     * plain fd, which may come from anywhere, is asked. */
    r->sock_fl = r->own_sock ? 0 : fcntl(r->sock, F_GETFL);
    if (r->sock_fl < 0 || (!(r->sock_fl & O_NONBLOCK) &&
                           fcntl(r->sock, F_SETFL, r->sock_fl | O_NONBLOCK) < 0))
        return -errno;
    r->nb_set = true;
    return 0;
}

/* sendfile(2) and splice(2) into a socket whose peer left raise SIGPIPE
 * (neither has MSG_NOSIGNAL), which would kill a program that runs a
 * loop on a thread of its own and never thought of it (a splice in io-wq
 * never could): unless it is ignored, it is blocked around the calls,
 * and one they raised is taken back before the mask is restored. The
 * library never changes the disposition, which is the program's (a
 * server ignores SIGPIPE, as ringserve's main does, and then pays no
 * mask at all); it asks sigaction(2) for it at most once a second per
 * loop (SIGPIPE_ASK_MS; once per op was one syscall per MiB sent, and
 * once per 10 ms still 8 per 64 MiB response): a program that stops
 * ignoring SIGPIPE while files are being sent is protected again within
 * a second (before, an op that had begun with it ignored went on
 * unprotected until it ended, however long a slow peer made that). */
#define SIGPIPE_ASK_MS 1000
struct pipe_guard {
    sigset_t only, old;
    bool masked;
};

static bool pipe_ignored(struct ur_splice *sp)
{
    uint64_t now = rs_now_ms();
    if (!sp->pipe_known || now - sp->pipe_asked_ms >= SIGPIPE_ASK_MS) {
        struct sigaction sa;
        sp->pipe_ign = sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN;
        sp->pipe_known = true;
        sp->pipe_asked_ms = now;
    }
    return sp->pipe_ign;
}

static void guard_on(struct ur_splice *sp, struct pipe_guard *g)
{
    g->masked = false;
    if (pipe_ignored(sp))
        return;
    sigemptyset(&g->only);
    sigaddset(&g->only, SIGPIPE);
    g->masked = pthread_sigmask(SIG_BLOCK, &g->only, &g->old) == 0;
}

static void guard_off(struct pipe_guard *g, int err)
{
    if (!g->masked)
        return;
    if (err == -EPIPE && !sigismember(&g->old, SIGPIPE)) {
        struct timespec now = {0, 0};
        while (sigtimedwait(&g->only, NULL, &now) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* sendfile(2) from the loop into r->sock, non-blocking while the op
 * lasts, of the bytes found cached (up to r->cached_end). r->sent grows
 * by what went out. 0: the op is done — all sent, or the file ended
 * (r->in_res 0) or failed (r->in_res -errno); -EAGAIN: the socket is
 * full and bytes remain; -ENODATA: all that was found cached went out,
 * and the rest must be checked before it is sent. */
static int send_here(struct ur_splice *sp, struct sp_rec *r)
{
    const struct rs_sendfile *src = r->op->buf;
    r->in_res = sp_sock_nb(r);
    if (r->in_res < 0)
        return 0;
    assert(r->cached_end <= r->want);
    struct pipe_guard g;
    guard_on(sp, &g);
    int rc = -ENODATA;
    while (r->sent < r->cached_end) {
        off_t pos = (off_t)(src->off + r->sent);
        size_t ask = r->cached_end - r->sent;
        ssize_t n = sendfile(r->sock, src->file_fd, &pos, ask);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            rc = -EAGAIN;
            break;
        }
        if (n <= 0) {
            r->in_res = n == 0 ? 0 : -errno;
            rc = 0;
            break;
        }
        r->sent += (uint32_t)n;
        r->took = (uint32_t)n;
        if ((size_t)n < ask) {
            /* The socket took what fit (or the file ended: the next
             * call, after POLLOUT, says so). */
            rc = -EAGAIN;
            break;
        }
    }
    guard_off(&g, r->in_res);
    return rc == -ENODATA && r->sent == r->want ? 0 : rc;
}

/* After the loop's sendfile(2) said rc (not -ENODATA): the op is done
 * (END), waits for room (WAIT), or — the socket full after
 * UR_SPLICE_STEP went out — ends early (END, r->ended_full), so that its
 * completion never waits for a slow peer after that much. */
static uint8_t after_send(struct sp_rec *r, int rc)
{
    assert(rc != -ENODATA);
    if (rc != -EAGAIN)
        return STEP_END;
    if (r->sent < UR_SPLICE_STEP)
        return STEP_WAIT;
    r->ended_full = true;
    return STEP_END;
}

/* The pipe -> socket half of the pipe path, in the loop: splice(2) of
 * what the pipe holds into r->sock, non-blocking, so that a peer that
 * does not read costs a POLLOUT poll (WAIT), never a thread (an io-wq
 * worker's splice into a blocking socket waits until the peer reads).
 * r->sent grows and r->inpipe shrinks by what went out. 0: the pipe is
 * empty; -EAGAIN: the socket is full and the pipe is not; -errno. */
int sp_out_here(struct ur_splice *sp, struct sp_rec *r)
{
    int err = sp_sock_nb(r);
    if (err < 0)
        return err;
    struct pipe_guard g;
    guard_on(sp, &g);
    while (r->inpipe > 0) {
        unsigned more = r->sent + r->inpipe < r->want ? SPLICE_F_MORE : 0;
        ssize_t n =
            splice(r->pipe->rd, NULL, r->sock, NULL, r->inpipe, SPLICE_F_NONBLOCK | more);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n == 0 ? -EPIPE : -errno;
            break;
        }
        r->sent += (uint32_t)n;
        r->inpipe -= (uint32_t)n;
        if (r->inpipe > 0) {
            /* The socket took what fit: wait for room rather than ask
             * again for an EAGAIN. */
            err = -EAGAIN;
            break;
        }
    }
    guard_off(&g, err);
    return err;
}

/* The loop is done sending the op: an installed fd goes (the direct
 * descriptor still holds the socket). */
void sp_sock_put(struct sp_rec *r)
{
    if (r->nb_set && !(r->sock_fl & O_NONBLOCK))
        (void)fcntl(r->sock, F_SETFL, r->sock_fl);
    r->nb_set = false;
    if (r->own_sock)
        close(r->sock);
    r->own_sock = false;
    r->sock = -1;
}

static void held_remove(struct ur_splice *sp, uint32_t i)
{
    assert(i < *sp->nheld);
    (*sp->nheld)--;
    memmove(&sp->held[i], &sp->held[i + 1], (*sp->nheld - i) * sizeof(sp->held[0]));
}

/* A held socket blocking again (this backend's direct sockets have no
 * other status flag). */
static void held_unflag(struct sp_held *h)
{
    if (h->nb)
        (void)fcntl(h->fd, F_SETFL, 0);
    h->nb = false;
}

/* A held socket put back: blocking again, its installed fd closed;
 * removed. */
static void held_drop(struct ur_splice *sp, uint32_t i)
{
    assert(i < *sp->nheld);
    held_unflag(&sp->held[i]);
    close(sp->held[i].fd);
    held_remove(sp, i);
}

static int held_find(const struct ur_splice *sp, int slot)
{
    for (uint32_t i = 0; i < *sp->nheld; i++)
        if (sp->held[i].slot == slot)
            return (int)i;
    return -1;
}

/* The op ended well: a direct socket stays as the loop made it for the
 * next op — one more sendfile op of the same file is what follows on a
 * socket streaming a large one (the core cuts a file into ops of
 * SENDFILE_OP_MAX) — until another op on it needs it back
 * (ur_splice_unflag, ur_splice_release). The fcntl(2) pair is then paid
 * once per run of ops, the INSTALL and its close once per connection.
 * Any other socket is put back now. */
void sp_sock_keep(struct ur_splice *sp, struct sp_rec *r)
{
    if (!r->own_sock || !r->nb_set) {
        sp_sock_put(r);
        return;
    }
    if (*sp->nheld == SP_HELD_MAX)
        held_drop(sp, 0);
    sp->held[(*sp->nheld)++] =
        (struct sp_held){.slot = r->op->fd, .fd = r->sock, .nb = true};
    r->own_sock = false;
    r->nb_set = false;
    r->sock = -1;
}

/* r's direct socket, if held since its last op: the record takes it
 * over (no INSTALL; no fcntl either unless a send came between). */
bool sp_sock_take(struct ur_splice *sp, struct sp_rec *r)
{
    int i = held_find(sp, r->op->fd);
    if (i < 0)
        return false;
    r->sock = sp->held[i].fd;
    r->own_sock = true;
    r->nb_set = sp->held[i].nb; /* else sp_sock_nb sets it again */
    r->sock_fl = 0;
    held_remove(sp, (uint32_t)i);
    return true;
}

void ur_splice_release(struct ur_splice *sp, int fd)
{
    int i = held_find(sp, fd);
    if (i >= 0)
        held_drop(sp, (uint32_t)i);
}

void ur_splice_unflag(struct ur_splice *sp, int fd)
{
    int i = held_find(sp, fd);
    if (i >= 0)
        held_unflag(&sp->held[i]);
}

/* At the loop's end: every held socket put back. */
void sp_held_drop_all(struct ur_splice *sp)
{
    while (*sp->nheld > 0)
        held_drop(sp, *sp->nheld - 1);
}

/* The process is out of descriptors: a hold only saves syscalls, and up
 * to SP_HELD_MAX of them per loop (idle keep-alive connections' too)
 * must not be what makes an open fail. Given back all at once rather
 * than the one descriptor asked for: at the limit, the next open is
 * likely to follow, and holding is the wrong trade until the next op
 * installs again. */
bool ur_splice_give_back(struct ur_splice *sp, int err)
{
    if ((err != -EMFILE && err != -ENFILE) || *sp->nheld == 0)
        return false;
    sp_held_drop_all(sp);
    return true;
}

/* The first step of an op on a cached range, sent by the loop: INSTALL
 * for a direct socket; a plain one is sent to at once, and the SQE of
 * the step after (END with what went out, or WAIT for room) is taken
 * first, so that a refused submit has sent nothing. false: no SQE. */
bool sp_start_here(struct ur_splice *sp, struct sp_rec *r)
{
    bool direct = r->op->flags & RS_OPF_DIRECT;
    if (direct && r->sock < 0)
        return sp_issue(sp, r, STEP_INSTALL);
    struct io_uring_sqe *q[1];
    if (!sp_take(sp, q, 1))
        return false;
    if (!direct)
        r->sock = r->op->fd;
    uint8_t s;
    if (r->pipe) {
        s = sp_pipe_here(sp, r);
    } else if (r->wait_first) {
        /* The last op of the transfer ended at a full socket: a
         * sendfile(2) now would most likely find it still full. */
        s = STEP_WAIT;
    } else {
        int rc = send_here(sp, r);
        while (rc == -ENODATA && sp_rest_cached(sp, r, rs_now_ms()))
            rc = send_here(sp, r);
        /* The rest not cached (evicted since): WAIT, whose completion
         * (at once: there is room) finds that again and goes by pipe. */
        s = rc == -ENODATA ? STEP_WAIT : after_send(r, rc);
    }
    if (s == STEP_END && r->in_res >= 0)
        sp_sock_keep(sp, r); /* before the op can complete */
    else if (s == STEP_END)
        sp_sock_put(r);
    sp_fill(sp, r, s, q);
    return true;
}

/* The loop sends what it can of the op (the socket as r->sock), then the
 * op ends, waits for room, or — pages evicted meanwhile — goes on by
 * pipe through the ring. */
void sp_here_step(struct ur_splice *sp, struct rs_loop *loop, struct sp_rec *r)
{
    if (r->pipe) {
        /* The pipe path: the loop splices out of the pipe. */
        uint8_t s = sp_pipe_here(sp, r);
        if (s != STEP_END && sp_issue(sp, r, s))
            return;
        if (s != STEP_END) {
            rs_log_error("sendfile: no SQE for the next step");
            r->in_res = -EBUSY;
        }
        sp_finish_err(sp, loop, r, r->in_res);
        return;
    }
    uint64_t now = rs_loop_now(loop);
    int rc = -ENODATA;
    while (rc == -ENODATA) {
        r->slow = now - r->cached_ms >= CACHED_TRUST_MS;
        bool fresh = !r->slow && r->sent < r->cached_end;
        if (!fresh && !sp_rest_cached(sp, r, now)) {
            sp_by_pipe(sp, loop, r); /* the socket stays the loop's to send to */
            return;
        }
        rc = send_here(sp, r);
    }
    if (after_send(r, rc) == STEP_WAIT) {
        if (sp_issue(sp, r, STEP_WAIT))
            return;
        rs_log_error("sendfile: no SQE to wait for room");
        r->in_res = -EBUSY;
    }
    sp_finish_err(sp, loop, r, r->in_res); /* the socket put back first */
}
