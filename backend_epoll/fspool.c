/* File IO beside epoll: a worker pool.
 *
 * epoll is a readiness interface, and readiness means nothing for a regular
 * file. The kernel's answer to "may I read this file without blocking?" is
 * always yes: epoll_ctl refuses a regular file outright (EPERM), and poll()
 * and select() report it readable and writable at all times. The truth is
 * different: a read of a page that is not in the page cache sleeps in the
 * kernel until the disk delivers it (milliseconds on a disk, tens of
 * microseconds on an SSD), and O_NONBLOCK does not change that for regular
 * files. openat() walks directories that may not be cached, statx() reads
 * an inode, fsync() waits for the disk by definition, close() of the last
 * reference may flush. Every one of these
 * blocks the calling thread, and in an event loop the calling thread is
 * every connection at once: one cold read stalls all of them.
 *
 * So, like libuv (uv__work_submit and its 4 threads) and nginx (thread
 * pools for aio), this file runs file calls on a few worker threads and
 * lets only the loop touch connections. The hand-off is two locked lists:
 *
 *  - submit() appends the op to `queue` and signals a condition variable;
 *    the first submit starts the workers, so a loop that never touches a
 *    file has no threads at all;
 *  - a worker takes the oldest op, performs the blocking call with no lock
 *    held, appends the op to `done`, and, when `done` was empty, writes the
 *    loop's eventfd: epoll_wait returns, and run() takes the whole list in
 *    one lock and delivers each op's completion. Completions therefore come
 *    only from run() (contract rule 1) and run on the loop's thread.
 *
 * The loop reads the eventfd before it takes the list, so a wake-up can
 * never be lost: a worker that finds the list non-empty knows a wake-up is
 * still owed. The price of all this is two context switches and a few
 * locked list operations per call, plus the threads' stacks — what
 * io_uring avoids by doing the same work inside the kernel (its own worker
 * threads, io-wq, run only when a call really must block).
 *
 * Cancel can take back an op no worker has started; one already running
 * finishes with its natural result, since a thread inside pread() cannot be
 * interrupted safely. With --fs=inline, the backend calls rs_fs_perform()
 * in the loop instead: correct, and a simple way to measure what blocking
 * the loop costs.
 *
 * Paths are confined with openat2(RESOLVE_BENEATH): the kernel refuses
 * "..", absolute paths and symbolic links that lead out of the directory,
 * atomically, during the walk. Without openat2 (before Linux 5.6, or a
 * seccomp profile that does not know it: ENOSYS), rs_openat_walk() walks
 * the path one component at a time with O_NOFOLLOW, which refuses every
 * symbolic link: stricter, never looser.
 */
#include "fspool.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

struct rs_fspool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct rs_file_op *queue, *queue_tail; /* waiting for a worker */
    struct rs_file_op *done, *done_tail;   /* finished, waiting for run() */
    uint32_t busy;                         /* queued + running */
    unsigned nthreads, started;
    int wake_fd;
    bool stop;
    pthread_t threads[64];
};

_Static_assert(sizeof(struct rs_open_how) == sizeof(struct open_how),
               "rs_open_how mirrors struct open_how");

static int sys_openat2(int dirfd, const char *path, const struct rs_open_how *how)
{
    return (int)syscall(SYS_openat2, dirfd, path, how, sizeof(*how));
}

int rs_openat_walk(int dirfd, const char *path, int flags, mode_t mode)
{
    if (path[0] == '/')
        return -EXDEV;
    size_t len = strlen(path);
    if (len == 0)
        return -ENOENT;
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int cur = dirfd, rc = 0;
    char *save = NULL;
    char *comp = strtok_r(copy, "/", &save);
    while (comp) {
        char *next = strtok_r(NULL, "/", &save);
        if (strcmp(comp, "..") == 0) {
            rc = -EXDEV;
            break;
        }
        int fd;
        if (!next) /* the last component: what the caller asked for */
            fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
        else if (strcmp(comp, ".") == 0)
            fd = openat(cur, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        else /* O_PATH|O_NOFOLLOW opens a link itself; O_DIRECTORY refuses it */
            fd = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            rc = -errno;
            struct stat sb; /* a link refused as "not a directory": say ELOOP */
            if (rc == -ENOTDIR && next &&
                fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
                rc = -ELOOP;
            break;
        }
        if (cur != dirfd)
            close(cur);
        cur = fd;
        comp = next;
    }
    if (rc < 0 && cur != dirfd)
        close(cur);
    free(copy);
    return rc < 0 ? rc : cur;
}

static int open_confined(struct rs_file_op *f)
{
    static atomic_bool no_openat2; /* set once, by whichever worker learns it */
    if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
        int fd = sys_openat2(f->op.fd, f->path, &f->how);
        if (fd >= 0 || errno != ENOSYS)
            return fd >= 0 ? fd : -errno;
        atomic_store_explicit(&no_openat2, true, memory_order_relaxed);
    }
    int flags = (int)f->how.flags;
    if (f->how.resolve == 0) {
        int fd = openat(f->op.fd, f->path, flags, (mode_t)f->how.mode);
        return fd >= 0 ? fd : -errno;
    }
    return rs_openat_walk(f->op.fd, f->path, flags, (mode_t)f->how.mode);
}

void rs_fs_perform(struct rs_file_op *f)
{
    bool pool = f->op.flags & RS_OPF_POOL_BUF;
    void *dst = pool ? f->bk_buf : f->dst;
    ssize_t n;
    do {
        switch (f->op.kind) {
        case RS_OP_OPENAT:
            f->bk_res = open_confined(f);
            return;
        case RS_OP_READ:
            n = pread(f->op.fd, dst, pool ? f->bk_len : f->op.len, (off_t)f->off);
            break;
        case RS_OP_WRITE:
            n = pwrite(f->op.fd, f->op.buf, f->op.len, (off_t)f->off);
            break;
        case RS_OP_STATX:
            n = statx(f->op.fd, f->path, f->at_flags, f->mask, f->stx);
            break;
        case RS_OP_FSYNC:
            n = f->op.len == RS_FSYNC_DATA ? fdatasync(f->op.fd) : fsync(f->op.fd);
            break;
        case RS_FS_SENDFILE: {
            const struct rs_sendfile *sf = f->dst;
            off_t off = (off_t)sf->off;
            n = sendfile(f->op.fd, sf->file_fd, &off, f->op.len);
            break;
        }
        default:
            f->bk_res = -EINVAL;
            return;
        }
    } while (n < 0 && errno == EINTR);
    f->bk_res = n < 0 ? -errno : (int32_t)n;
}

static void *worker(void *arg)
{
    struct rs_fspool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->queue && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop)
            break;
        struct rs_file_op *f = p->queue;
        p->queue = f->bk_next;
        if (!p->queue)
            p->queue_tail = NULL;
        pthread_mutex_unlock(&p->mu);

        rs_fs_perform(f);

        pthread_mutex_lock(&p->mu);
        f->bk_next = NULL;
        bool was_empty = !p->done;
        if (p->done_tail)
            p->done_tail->bk_next = f;
        else
            p->done = f;
        p->done_tail = f;
        if (was_empty) {
            uint64_t one = 1;
            ssize_t rc = write(p->wake_fd, &one, sizeof(one));
            (void)rc; /* a full counter is a wake-up already owed */
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct rs_fspool *rs_fspool_new(unsigned nthreads, int wake_fd)
{
    struct rs_fspool *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->nthreads = nthreads < 1 ? 1 : nthreads > 64 ? 64 : nthreads;
    p->wake_fd = wake_fd;
    return p;
}

/* Start the workers (under mu). Signals stay with the loop threads. */
static int start_workers(struct rs_fspool *p)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    while (p->started < p->nthreads) {
        p->started++;
        rc = pthread_create(&p->threads[p->started - 1], NULL, worker, p);
        if (rc != 0) {
            p->started--;
            p->nthreads = p->started; /* do with fewer; don't retry each time */
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p->started > 0 ? 0 : -rc;
}

int rs_fspool_submit(struct rs_fspool *p, struct rs_file_op *f)
{
    pthread_mutex_lock(&p->mu);
    if (p->started < p->nthreads) {
        int rc = start_workers(p);
        if (rc < 0) {
            pthread_mutex_unlock(&p->mu);
            return rc;
        }
    }
    f->bk_next = NULL;
    if (p->queue_tail)
        p->queue_tail->bk_next = f;
    else
        p->queue = f;
    p->queue_tail = f;
    p->busy++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int rs_fspool_cancel(struct rs_fspool *p, struct rs_file_op *f)
{
    int rc = -EBUSY;
    pthread_mutex_lock(&p->mu);
    struct rs_file_op *prev = NULL;
    for (struct rs_file_op *q = p->queue; q; prev = q, q = q->bk_next) {
        if (q != f)
            continue;
        if (prev)
            prev->bk_next = q->bk_next;
        else
            p->queue = q->bk_next;
        if (p->queue_tail == q)
            p->queue_tail = prev;
        p->busy--;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

struct rs_file_op *rs_fspool_reap(struct rs_fspool *p, uint32_t *busy)
{
    pthread_mutex_lock(&p->mu);
    struct rs_file_op *list = p->done;
    p->done = p->done_tail = NULL;
    for (struct rs_file_op *f = list; f; f = f->bk_next)
        p->busy--;
    if (busy)
        *busy = p->busy;
    pthread_mutex_unlock(&p->mu);
    return list;
}

struct rs_file_op *rs_fspool_stop(struct rs_fspool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    struct rs_file_op *list = p->queue;
    for (struct rs_file_op *f = list; f; f = f->bk_next) {
        f->bk_res = -ECANCELED;
        p->busy--;
    }
    p->queue = p->queue_tail = NULL;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return list;
}

struct rs_file_op *rs_fspool_free(struct rs_fspool *p)
{
    if (!p)
        return NULL;
    struct rs_file_op *queued = rs_fspool_stop(p);
    (void)queued;
    assert(!queued); /* the caller took them back */
    for (unsigned i = 0; i < p->started; i++)
        pthread_join(p->threads[i], NULL);
    struct rs_file_op *done = p->done;
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return done;
}
