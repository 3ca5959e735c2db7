/* Growing a live ring's completion queue (IORING_REGISTER_RESIZE_RINGS,
 * Linux 6.13), for liburing 2.3, which has no io_uring_resize_rings().
 * Internal; include only where liburing is (RS_HAVE_URING). */
#ifndef RINGSERVE_RING_RESIZE_H
#define RINGSERVE_RING_RESIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

/* The largest CQ the kernel makes (IORING_MAX_CQ_ENTRIES). */
#define RS_CQ_MAX_ENTRIES 65536u

/* Mappings of a ring's rings and SQEs from before a resize: kept mapped
 * until no pointer into them is in use (a CQE being dispatched), then
 * unmapped with rs_ring_retired_unmap(). The kernel no longer uses them;
 * the mapping alone keeps the pages. */
struct rs_ring_retired {
    void *ptr[3];
    size_t len[3];
};

/* Whether the kernel laid out the ring `p` describes (the params
 * io_uring_queue_init_params() filled in) as rs_ring_resize_cq() expects
 * to find it after a resize. Checked once, on the fresh ring. */
bool rs_ring_layout_known(const struct io_uring_params *p);

/* Resize ring's CQ to cq_entries (a power of two, at most
 * RS_CQ_MAX_ENTRIES), keeping its SQ size, and map the new rings into
 * *ring. The ring must be a DEFER_TASKRUN one (else -EINVAL, the kernel's
 * answer) with no SQE queued but not submitted (else -EBUSY: it would be
 * lost). CQEs not yet consumed are carried over, in order. The old
 * mappings go to *old. 0 or -errno, the ring unchanged, except -ENXIO:
 * the kernel resized but the new rings could not be mapped (out of
 * memory), and the ring is unusable. */
int rs_ring_resize_cq(struct io_uring *ring, unsigned cq_entries,
                      struct rs_ring_retired *old);

void rs_ring_retired_unmap(struct rs_ring_retired *old);

/* The policy: a CQ that starts small and grows before it fills.
 *
 * Completions land in the CQ at two moments: when SQEs are submitted
 * (an op that completes at once: up to one CQE per SQE, so up to the SQ's
 * size per submission), and when a wait runs deferred work (DEFER_TASKRUN:
 * at most two passes of 20 items per io_uring_enter since 6.13, most of
 * them one CQE each). So the CQ keeps room for a full SQ plus
 * RS_CQ_SLACK whenever the SQ is empty, which is exactly when a resize is
 * possible: after each submission and each wait. A multishot op that posts
 * many CQEs in one pass can still overflow it; the kernel then keeps them
 * aside (IORING_FEAT_NODROP) and the next check grows the CQ. */
#define RS_CQ_SLACK    64u
#define RS_RETIRED_MAX 16 /* resizes between two unmaps (each doubles) */

struct rs_cq_grower {
    uint64_t grown; /* resizes done, not yet counted in the loop's stats */
    bool broken;    /* a resize left the ring unmapped: run() fails */
    /* grown or broken since the owner last looked: one test per turn */
    bool dirty;
    unsigned nretired;
    struct rs_ring_retired retired[RS_RETIRED_MAX];
};

/* The CQ a growing ring starts with, for an SQ of sq_entries. */
unsigned rs_cq_initial(unsigned sq_entries);

/* With the SQ empty: grow ring's CQ if it has less room than a full SQ
 * plus RS_CQ_SLACK. Failures other than a lost mapping leave the ring as
 * it was (the kernel's overflow list still loses nothing). The test is
 * inline: every loop turn asks, and nearly every turn has room. */
void rs_cq_grow(struct io_uring *ring, struct rs_cq_grower *g);
/* The test alone, for a caller that read the CQ's ready count and its
 * overflow flag already. */
static inline bool rs_cq_short(const struct io_uring *ring, unsigned ready, bool overflow)
{
    return ring->cq.ring_entries - ready < ring->sq.ring_entries + RS_CQ_SLACK ||
           overflow;
}
/* The ready count from which rs_cq_short holds (overflow aside): fixed
 * until the CQ next grows, so that a caller keeping it tests one compare
 * per turn. */
static inline unsigned rs_cq_short_from(const struct io_uring *ring)
{
    unsigned need = ring->sq.ring_entries + RS_CQ_SLACK;
    return ring->cq.ring_entries >= need ? ring->cq.ring_entries - need + 1 : 0;
}
static inline void rs_cq_grow_check(struct io_uring *ring, struct rs_cq_grower *g)
{
    if (rs_cq_short(ring, io_uring_cq_ready(ring), io_uring_cq_has_overflow(ring)))
        rs_cq_grow(ring, g);
}

/* Unmap the rings replaced since the last call: no CQE pointer into them
 * may be in use (call it after a turn's dispatch, and at teardown). Inline:
 * every turn calls it, and nearly every turn has nothing to unmap. */
void rs_cq_grower_unmap_retired(struct rs_cq_grower *g);
static inline void rs_cq_grower_release(struct rs_cq_grower *g)
{
    if (g->nretired > 0)
        rs_cq_grower_unmap_retired(g);
}

#endif
