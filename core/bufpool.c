#include "bufpool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"

int rs_bufpool_init(struct rs_bufpool *p, uint32_t count, uint32_t size)
{
    memset(p, 0, sizeof(*p));
    if (count == 0 || count > RS_BUFPOOL_MAX || (count & (count - 1)) != 0 || size == 0 ||
        size > UINT32_MAX - RS_BUFPOOL_COLOR)
        return -EINVAL;
    /* mmap, not malloc: pages stay untouched (and out of RSS) until a
     * buffer is first used, and the region is page aligned for the kernel. */
    uint32_t stride = size + RS_BUFPOOL_COLOR;
    size_t bytes = (size_t)count * stride;
    void *mem =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    p->free = malloc(count * sizeof(*p->free));
    p->held = calloc(count, 1);
    if (!p->free || !p->held) {
        munmap(mem, bytes);
        free(p->free);
        free(p->held);
        return -ENOMEM;
    }
    p->mem = mem;
    p->size = size;
    p->stride = stride;
    p->count = count;
    p->lent_hi = count - (count / 4 ? count / 4 : 1);
    /* Stack order: low ids on top, so a quiet server keeps reusing the same
     * few (already faulted-in) buffers. */
    for (uint32_t i = 0; i < count; i++)
        p->free[i] = (uint16_t)(count - 1 - i);
    p->nfree = count;
    return 0;
}

void rs_bufpool_fini(struct rs_bufpool *p)
{
    if (p->mem)
        munmap(p->mem, rs_bufpool_bytes(p));
    free(p->free);
    free(p->held);
    memset(p, 0, sizeof(*p));
}

/* The slow path of rs_bufpool_release_ok: log, count, refuse. */
bool rs_bufpool_release_refused(struct rs_bufpool *p, uint16_t bid)
{
    p->violations++;
    rs_log_error("contract violation: buffer %u returned %s; refused", bid,
                 bid >= p->count ? "but no such buffer exists"
                                 : "while not lent (released twice?)");
    return false;
}
