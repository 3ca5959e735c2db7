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

/* Buffers sit RS_BUFPOOL_COLOR bytes further apart than their size. With a
 * power-of-two stride (16 KiB) every buffer would start in the same few
 * cache sets, and a ring cycling through hundreds of them would evict its
 * own lines on every receive (measured: the kernel's copy into the buffer
 * went from 1 % to 4 % of server CPU). Shifting each start by one line
 * spreads them over every set. */
#define RS_BUFPOOL_COLOR 64u

struct rs_bufpool {
    uint8_t *mem;
    uint32_t size;    /* usable bytes per buffer */
    uint32_t stride;  /* bytes from one buffer's start to the next */
    uint32_t count;   /* buffers; a power of two */
    uint32_t nfree;   /* entries in free[] */
    uint32_t lent;    /* buffers held by the core right now */
    uint32_t lent_hi; /* lent above it: a quarter (or one) left, holders copy */
    /* Free buffers that no receive can take: a backend may keep some on
     * the free stack for reads of files while the rest feed receives
     * (io_uring's buf-inc ring, whose buffers a file read cannot use). */
    uint32_t set_aside;
    uint16_t *free;      /* stack of free ids (unused by the io_uring buffer ring) */
    uint8_t *held;       /* per id: 1 while lent to the core (catches double release) */
    uint32_t violations; /* refused calls: see rs_bufpool_release_ok */
};

int rs_bufpool_init(struct rs_bufpool *p, uint32_t count, uint32_t size);
void rs_bufpool_fini(struct rs_bufpool *p);

static inline uint8_t *rs_bufpool_ptr(const struct rs_bufpool *p, uint16_t bid)
{
    assert(bid < p->count);
    return p->mem + (size_t)bid * p->stride;
}

/* The whole mapping, gaps included. */
static inline size_t rs_bufpool_bytes(const struct rs_bufpool *p)
{
    return (size_t)p->count * p->stride;
}

static inline bool rs_bufpool_contains(const struct rs_bufpool *p, const void *ptr)
{
    const uint8_t *b = ptr;
    return p->mem && b >= p->mem && b < p->mem + rs_bufpool_bytes(p);
}

/* The id of the buffer ptr points into; ptr must be in the pool. */
static inline uint16_t rs_bufpool_bid(const struct rs_bufpool *p, const void *ptr)
{
    assert(rs_bufpool_contains(p, ptr));
    return (uint16_t)((size_t)((const uint8_t *)ptr - p->mem) / p->stride);
}

/* Buffers a receive could get right now: neither lent nor set aside. */
static inline uint32_t rs_bufpool_recv_free(const struct rs_bufpool *p)
{
    return p->count - p->lent - p->set_aside;
}

/* Free-stack use (epoll, single-shot io_uring). -1 when empty. */
static inline int rs_bufpool_get(struct rs_bufpool *p)
{
    if (p->nfree == 0)
        return -1;
    return p->free[--p->nfree];
}

/* A contract check that stays in release builds, where an assert would be
 * compiled out (NDEBUG) and the violation would corrupt memory: a buffer
 * returned twice would sit twice on the free stack or in the kernel's ring
 * and be handed to two owners at once; an id out of range would write
 * outside the pool. True when buffer bid is lent to the core and may come
 * back (buf_release); otherwise the violation is logged and counted, and
 * the caller must refuse the call (change nothing). */
bool rs_bufpool_release_refused(struct rs_bufpool *p, uint16_t bid);
/* Inline: it runs for every buffer an echo sends back. */
static inline bool rs_bufpool_release_ok(struct rs_bufpool *p, uint16_t bid)
{
    if (__builtin_expect(bid < p->count && p->held[bid], 1))
        return true;
    return rs_bufpool_release_refused(p, bid);
}

/* Back on the free stack. A push past count (a buffer freed twice) is
 * refused like a double release. */
static inline void rs_bufpool_put(struct rs_bufpool *p, uint16_t bid)
{
    if (p->nfree >= p->count || bid >= p->count) {
        p->violations++;
        return;
    }
    p->free[p->nfree++] = bid;
}

/* Bookkeeping of loans to the core, done by backends. */
static inline void rs_bufpool_lend(struct rs_bufpool *p, uint16_t bid)
{
    assert(bid < p->count && !p->held[bid]);
    p->held[bid] = 1;
    p->lent++;
}

/* The core gave bid back: false (nothing changed) when it was not lent,
 * see rs_bufpool_release_ok. */
/* The loan of bid ends; the caller checked it (rs_bufpool_release_ok). */
static inline void rs_bufpool_clear_loan(struct rs_bufpool *p, uint16_t bid)
{
    p->held[bid] = 0;
    p->lent--;
}

static inline bool rs_bufpool_unlend(struct rs_bufpool *p, uint16_t bid)
{
    if (!rs_bufpool_release_ok(p, bid))
        return false;
    rs_bufpool_clear_loan(p, bid);
    return true;
}

#endif
