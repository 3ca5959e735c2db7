/* See uring_util.h. Compiled empty without liburing. */
#include "rs_build.h"

#if RS_HAVE_URING
#include "uring_util.h"

#include <errno.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>

struct io_uring_buf_ring *rs_buf_ring_register(struct io_uring *ring, unsigned entries,
                                               unsigned short bgid, unsigned reg_flags,
                                               size_t *bytes, int *err, const char **what)
{
    *bytes = entries * sizeof(struct io_uring_buf);
    void *mem =
        mmap(NULL, *bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        *err = -errno;
        *what = "mmap";
        return NULL;
    }
    struct io_uring_buf_ring *br = mem;
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = entries;
    reg.bgid = bgid;
    /* The 16 bits after bgid: `pad` in liburing 2.3's header, `flags` in
     * newer ones (whose later fields, min_left among them, stay 0). */
    uint16_t flags = (uint16_t)reg_flags;
    memcpy((char *)&reg.bgid + sizeof(reg.bgid), &flags, sizeof(flags));
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        munmap(mem, *bytes);
        *err = rc;
        *what = "io_uring_register_buf_ring";
        return NULL;
    }
    return br;
}
#else
typedef int rs_uring_util_unused; /* ISO C: no empty translation unit */
#endif
