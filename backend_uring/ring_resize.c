/* Growing a live ring's completion queue: the kernel builds new rings,
 * copies the SQEs and CQEs still in flight into them and frees the old
 * ones; userspace then maps the new ones in place of the old (the SQ ring,
 * the CQ ring, the SQE array: each at its usual mmap offset of the ring fd).
 *
 * liburing 2.3 keeps what it knows of the rings in struct io_uring_sq and
 * io_uring_cq (public structs): io_uring_queue_mmap() fills a fresh pair
 * from the params the resize returns, and the indices of SQEs handed out
 * (sqe_head, sqe_tail) carry over. One gap in what the kernel returns
 * (through 6.18 at least): sq_off.array, the offset of the SQ index array,
 * comes back 0, as it is filled in only when a ring is created. Its place is
 * fixed by the layout (after the CQEs, cache-line aligned; rings_size() in
 * the kernel), which rs_ring_layout_known() checks against the kernel's own
 * answer on the fresh ring, so a different layout disables resizing rather
 * than corrupts the ring. Rings without the index array
 * (IORING_SETUP_NO_SQARRAY, what newer liburing sets up) need no offset. */
#include "ring_resize.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif

enum {
    RESIZE_RINGS = 33, /* IORING_REGISTER_RESIZE_RINGS (6.13; kernel ABI) */
    ARRAY_ALIGN = 64,  /* the kernel's SMP_CACHE_BYTES on x86-64 and arm64 */
};

static size_t sq_array_offset(unsigned cqes_off, unsigned cq_entries)
{
    size_t end = cqes_off + (size_t)cq_entries * sizeof(struct io_uring_cqe);
    return (end + ARRAY_ALIGN - 1) & ~(size_t)(ARRAY_ALIGN - 1);
}

bool rs_ring_layout_known(const struct io_uring_params *p)
{
    if (p->flags & IORING_SETUP_CQE32)
        return false; /* 32-byte CQEs: not what sq_array_offset() counts */
    if (p->flags & IORING_SETUP_NO_SQARRAY)
        return true;
    return p->sq_off.array == sq_array_offset(p->cq_off.cqes, p->cq_entries);
}

int rs_ring_resize_cq(struct io_uring *ring, unsigned cq_entries,
                      struct rs_ring_retired *old)
{
    if (io_uring_sq_ready(ring) > 0)
        return -EBUSY;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.sq_entries = ring->sq.ring_entries;
    p.cq_entries = cq_entries;
    p.flags = IORING_SETUP_CQSIZE;
    int rc = io_uring_register((unsigned)ring->ring_fd, RESIZE_RINGS, &p, 1);
    if (rc < 0)
        return rc;
    /* The kernel now uses the new rings: map them. */
    if (!(p.flags & IORING_SETUP_NO_SQARRAY) && p.sq_off.array == 0)
        p.sq_off.array = (unsigned)sq_array_offset(p.cq_off.cqes, p.cq_entries);
    p.features = ring->features; /* IORING_FEAT_SINGLE_MMAP: one mapping or two */
    struct io_uring fresh;
    rc = io_uring_queue_mmap(ring->ring_fd, &p, &fresh);
    if (rc < 0)
        return -ENXIO; /* the kernel's rings are the new ones: ours are stale */
    *old = (struct rs_ring_retired){
        .ptr = {ring->sq.sqes, ring->sq.ring_ptr,
                ring->cq.ring_ptr != ring->sq.ring_ptr ? ring->cq.ring_ptr : NULL},
        .len = {ring->sq.ring_entries * sizeof(struct io_uring_sqe), ring->sq.ring_sz,
                ring->cq.ring_sz},
    };
    unsigned head = ring->sq.sqe_head, tail = ring->sq.sqe_tail;
    ring->sq = fresh.sq;
    ring->cq = fresh.cq;
    ring->sq.sqe_head = head;
    ring->sq.sqe_tail = tail;
    /* SQ slot i holds SQE i, as io_uring_queue_init_params() sets it up. */
    if (!(p.flags & IORING_SETUP_NO_SQARRAY))
        for (unsigned i = 0; i < ring->sq.ring_entries; i++)
            ring->sq.array[i] = i;
    return 0;
}

void rs_ring_retired_unmap(struct rs_ring_retired *old)
{
    for (int i = 0; i < 3; i++) {
        if (old->ptr[i])
            munmap(old->ptr[i], old->len[i]);
        old->ptr[i] = NULL;
    }
}

static unsigned pow2_at_least(unsigned n)
{
    unsigned p = 1;
    while (p < n && p < RS_CQ_MAX_ENTRIES)
        p <<= 1;
    return p;
}

unsigned rs_cq_initial(unsigned sq_entries)
{
    return pow2_at_least(sq_entries + RS_CQ_SLACK);
}

void rs_cq_grow(struct io_uring *ring, struct rs_cq_grower *g)
{
    unsigned entries = ring->cq.ring_entries, ready = io_uring_cq_ready(ring);
    unsigned need = ring->sq.ring_entries + RS_CQ_SLACK;
    bool overflowed = io_uring_cq_has_overflow(ring);
    if ((entries - ready >= need && !overflowed) || entries >= RS_CQ_MAX_ENTRIES ||
        g->nretired == RS_RETIRED_MAX || g->broken)
        return;
    /* Room for what is there, twice the headroom: the next checks find
     * room to spare instead of growing by one step each time. */
    unsigned want = pow2_at_least(ready + 2 * need);
    if (want <= entries)
        want = entries * 2;
    int rc = rs_ring_resize_cq(ring, want, &g->retired[g->nretired]);
    if (rc == 0) {
        g->nretired++;
        g->grown++;
        g->dirty = true;
    } else if (rc == -ENXIO) {
        g->broken = true;
        g->dirty = true;
    }
}

void rs_cq_grower_unmap_retired(struct rs_cq_grower *g)
{
    for (unsigned i = 0; i < g->nretired; i++)
        rs_ring_retired_unmap(&g->retired[i]);
    g->nretired = 0;
}
