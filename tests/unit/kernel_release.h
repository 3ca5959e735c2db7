/* The running kernel's release, for tests whose expectation depends on a
 * feature that has no probe of its own (an io_uring opcode the backend
 * falls back from silently). */
#ifndef RINGSERVE_TEST_KERNEL_RELEASE_H
#define RINGSERVE_TEST_KERNEL_RELEASE_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/utsname.h>

/* Linux release at least major.minor. */
static inline bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return false;
    return ma > major || (ma == major && mi >= minor);
}

#endif
