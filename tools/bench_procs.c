/* See bench_procs.h. */
#include "bench_procs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

bool bench_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

bool bench_read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t r = read(fd, p, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        p += r;
        len -= (size_t)r;
    }
    return true;
}

int bench_procs_spawn(struct bench_procs *p, unsigned n, struct bench_child *self)
{
    p->n = 0;
    p->pid = calloc(n, sizeof(*p->pid));
    p->up = calloc(n, sizeof(*p->up));
    p->down = calloc(n, sizeof(*p->down));
    if (!p->pid || !p->up || !p->down)
        return -ENOMEM;
    pid_t parent = getpid();
    for (unsigned i = 0; i < n; i++) {
        int up[2], down[2];
        if (pipe2(up, O_CLOEXEC) < 0)
            goto fail;
        if (pipe2(down, O_CLOEXEC) < 0) {
            close(up[0]);
            close(up[1]);
            goto fail;
        }
        pid_t pid = fork();
        if (pid < 0) {
            close(up[0]);
            close(up[1]);
            close(down[0]);
            close(down[1]);
            goto fail;
        }
        if (pid == 0) {
            /* Die with the parent; keep only our own pipe ends. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent)
                _exit(1);
            for (unsigned k = 0; k < p->n; k++) {
                close(p->up[k]);
                close(p->down[k]);
            }
            close(up[0]);
            close(down[1]);
            /* The parent's bookkeeping is not the child's: free it, or
             * every child reports it as a leak at exit (LeakSanitizer). */
            free(p->pid);
            free(p->up);
            free(p->down);
            *p = (struct bench_procs){0};
            *self = (struct bench_child){.index = i, .up = up[1], .down = down[0]};
            return 1;
        }
        close(up[1]);
        close(down[0]);
        p->pid[i] = pid;
        p->up[i] = up[0];
        p->down[i] = down[1];
        p->n++;
    }
    return 0;
fail:;
    int err = -errno;
    for (unsigned k = 0; k < p->n; k++)
        kill(p->pid[k], SIGKILL);
    bench_procs_reap(p);
    return err;
}

void bench_procs_tell(struct bench_procs *p, char tag)
{
    for (unsigned i = 0; i < p->n; i++)
        (void)bench_write_all(p->down[i], &tag, 1);
}

bool bench_procs_reap(struct bench_procs *p)
{
    bool ok = true;
    for (unsigned i = 0; i < p->n; i++) {
        int st;
        while (waitpid(p->pid[i], &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) > 1)
            ok = false;
    }
    return ok;
}

void bench_procs_free(struct bench_procs *p)
{
    for (unsigned i = 0; i < p->n; i++) {
        close(p->up[i]);
        close(p->down[i]);
    }
    free(p->pid);
    free(p->up);
    free(p->down);
    p->n = 0;
}

char bench_child_next(const struct bench_child *c)
{
    char tag;
    return bench_read_all(c->down, &tag, 1) ? tag : '\0';
}
