/* The per-loop pool of receive buffers that backends lend to the core.
 *
 * One contiguous allocation, count buffers of size bytes each, named by a
 * 16-bit id (bid) exactly like an io_uring provided-buffer ring. The epoll
 * backend and the single-shot io_uring mode take ids from the free stack;
 * the io_uring buffer ring hands every id to the kernel instead. Either way
 * `lent` counts buffers currently held by the core, so the core can see
 * pressure (and copy instead of holding) without knowing the backend.
 * Pages are touched only when used: an idle server stays small.
 */
#ifndef RINGSERVE_BUFPOOL_H
#define RINGSERVE_BUFPOOL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RS_BUFPOOL_MAX 32768u /* io_uring buffer rings hold at most 2^15 entries */

struct rs_bufpool {
    uint8_t *mem;
    uint32_t size;  /* bytes per buffer */
    uint32_t count; /* buffers; a power of two */
    uint32_t nfree; /* entries in free[] */
    uint32_t lent;  /* buffers held by the core right now */
    uint16_t *free; /* stack of free ids (unused by the io_uring buffer ring) */
    uint8_t *held;  /* per id: 1 while lent to the core (catches double release) */
};

int rs_bufpool_init(struct rs_bufpool *p, uint32_t count, uint32_t size);
void rs_bufpool_fini(struct rs_bufpool *p);

static inline uint8_t *rs_bufpool_ptr(const struct rs_bufpool *p, uint16_t bid)
{
    assert(bid < p->count);
    return p->mem + (size_t)bid * p->size;
}

/* Free-stack use (epoll, single-shot io_uring). -1 when empty. */
static inline int rs_bufpool_get(struct rs_bufpool *p)
{
    if (p->nfree == 0)
        return -1;
    return p->free[--p->nfree];
}

static inline void rs_bufpool_put(struct rs_bufpool *p, uint16_t bid)
{
    assert(p->nfree < p->count);
    p->free[p->nfree++] = bid;
}

/* Bookkeeping of loans to the core, done by backends. */
static inline void rs_bufpool_lend(struct rs_bufpool *p, uint16_t bid)
{
    assert(bid < p->count && !p->held[bid]);
    p->held[bid] = 1;
    p->lent++;
}

static inline void rs_bufpool_unlend(struct rs_bufpool *p, uint16_t bid)
{
    assert(bid < p->count && p->held[bid]); /* released twice? */
    p->held[bid] = 0;
    p->lent--;
}

#endif
