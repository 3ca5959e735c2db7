/* Small records of one size that the io_uring backend hands out per
 * request and takes back on its completion (a hang-up guard, a zero-copy
 * send), without a malloc per request. Internal (backend_uring/ only).
 *
 * Records come from slabs kept for the ring's lifetime: a record whose
 * completion never comes (the ring torn down first) is freed with its
 * slab at fini, so nothing needs to walk the records still out. A free
 * record's first bytes link it into the free list; a record in use is
 * the caller's alone. A zeroed struct ur_records is an empty one.
 */
#ifndef RINGSERVE_URING_RECORDS_H
#define RINGSERVE_URING_RECORDS_H

#include <stddef.h>

struct ur_slab;

struct ur_records {
    void *free;            /* recycled records, linked through their first bytes */
    struct ur_slab *slabs; /* every slab, for fini */
};

/* A record of `size` bytes (the same size on every call for one
 * ur_records, at least a pointer's), contents undefined; NULL when out of
 * memory. */
void *ur_record_get(struct ur_records *rs, size_t size);

/* r (from ur_record_get on rs) is free again. */
void ur_record_put(struct ur_records *rs, void *r);

/* Free every slab, records still out included; rs is empty again. */
void ur_records_free(struct ur_records *rs);

#endif
