/* Log-linear histogram; see bench_hist.h for the layout. */
#include "bench_hist.h"

#include <string.h>

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned bench_hist_index(uint64_t v)
{
    if (v < BENCH_HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - BENCH_HIST_SUB_BITS;
    /* mantissa is in [SUB, 2*SUB): the top SUB_BITS+1 bits of v. */
    uint64_t mantissa = v >> shift;
    return (shift + 1u) * BENCH_HIST_SUB + (unsigned)(mantissa - BENCH_HIST_SUB);
}

uint64_t bench_hist_lower(unsigned idx)
{
    if (idx < BENCH_HIST_SUB)
        return idx;
    unsigned shift = idx / BENCH_HIST_SUB - 1u;
    uint64_t mantissa = BENCH_HIST_SUB + idx % BENCH_HIST_SUB;
    return mantissa << shift;
}

uint64_t bench_hist_upper(unsigned idx)
{
    if (idx + 1u >= BENCH_HIST_BUCKETS)
        return UINT64_MAX;
    return bench_hist_lower(idx + 1u) - 1u;
}

void bench_hist_record(struct bench_hist *h, uint64_t v)
{
    h->buckets[bench_hist_index(v)]++;
    h->count++;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->sum = (h->sum > UINT64_MAX - v) ? UINT64_MAX : h->sum + v;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->sum = (dst->sum > UINT64_MAX - src->sum) ? UINT64_MAX : dst->sum + src->sum;
}

uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 1.0)
        return h->max;
    if (q < 0.0)
        q = 0.0;
    /* The rank of the sample wanted, 1-based: ceil(q * count), at least 1. */
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t up = bench_hist_upper(i);
            if (up > h->max)
                up = h->max;
            if (up < h->min)
                up = h->min;
            return up;
        }
    }
    return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
