/* Slabs of same-size records and their free list (records.h). */
#include "records.h"

#include <assert.h>
#include <stdalign.h>
#include <stdlib.h>

#define RECORDS_PER_SLAB 64

/* What a free record's first bytes hold. */
struct free_link {
    struct free_link *next;
};

struct ur_slab {
    struct ur_slab *next;
    /* The records, each at a multiple of its size from here: aligned for
     * any type, so for the caller's. */
    alignas(max_align_t) unsigned char mem[];
};

void *ur_record_get(struct ur_records *rs, size_t size)
{
    assert(size >= sizeof(struct free_link));
    if (!rs->free) {
        struct ur_slab *slab = malloc(sizeof(*slab) + RECORDS_PER_SLAB * size);
        if (!slab)
            return NULL;
        slab->next = rs->slabs;
        rs->slabs = slab;
        for (size_t i = 0; i < RECORDS_PER_SLAB; i++)
            ur_record_put(rs, slab->mem + i * size);
    }
    struct free_link *r = rs->free;
    rs->free = r->next;
    return r;
}

void ur_record_put(struct ur_records *rs, void *r)
{
    struct free_link *l = r;
    l->next = rs->free;
    rs->free = l;
}

void ur_records_free(struct ur_records *rs)
{
    while (rs->slabs) {
        struct ur_slab *next = rs->slabs->next;
        free(rs->slabs);
        rs->slabs = next;
    }
    rs->free = NULL;
}
