/* Descriptors at the process's limit: what the core (and a protocol)
 * asks of a loop whose backend keeps process descriptors only to save
 * syscalls (backend.h, rule 12). The backend's own ops give such holds
 * back when they find the process out of descriptors; the core's own
 * synchronous calls, which the backend never sees, ask here. Without
 * asking, a dup(2) at the limit failed while a hold that cost nothing to
 * give up stood in its way. */
#include <errno.h>
#include <fcntl.h>

#include "backend.h"
#include "loop.h"

bool rs_loop_give_back_fds(struct rs_loop *loop, int err)
{
    if (err != -EMFILE && err != -ENFILE)
        return false;
    return loop->ops->give_back_fds && loop->ops->give_back_fds(loop, err);
}

int rs_loop_dup_fd(struct rs_loop *loop, int fd)
{
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup >= 0)
        return dup;
    int err = -errno;
    if (!rs_loop_give_back_fds(loop, err))
        return err;
    dup = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* once: none is held now */
    return dup < 0 ? -errno : dup;
}
