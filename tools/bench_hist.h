/* A log-linear latency histogram: every sample is recorded, none sampled.
 *
 * Values (nanoseconds, or any unsigned 64-bit quantity) below 2^BENCH_HIST_SUB_BITS
 * get one bucket each. Above that, each power of two [2^e, 2^(e+1)) is cut into
 * 2^BENCH_HIST_SUB_BITS equal buckets, so a bucket's width is at most 1/128 of
 * the values it holds: a reported percentile is within 0.8% of the true one.
 * The exact minimum, maximum and sum are kept beside the buckets.
 *
 * Recording is an index computation and an increment, no allocation; merging
 * is a bucket-wise sum, so each thread keeps its own histogram and the totals
 * are merged at the end. */
#ifndef RINGBENCH_HIST_H
#define RINGBENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB      (1u << BENCH_HIST_SUB_BITS)
/* Exponent groups above the linear range: msb from SUB_BITS to 63. */
#define BENCH_HIST_BUCKETS ((64u - BENCH_HIST_SUB_BITS + 1u) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t count;
    uint64_t min; /* UINT64_MAX while empty */
    uint64_t max;
    uint64_t sum; /* saturates rather than wraps */
    uint64_t buckets[BENCH_HIST_BUCKETS];
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t v);
/* dst += src. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/* The value at or below which a fraction q (0..1) of the samples lie: the
 * upper edge of the bucket holding that sample, never above the exact max.
 * q = 1 gives the exact max; an empty histogram gives 0. */
uint64_t bench_hist_quantile(const struct bench_hist *h, double q);
double bench_hist_mean(const struct bench_hist *h);

/* Bucket arithmetic, exposed for the unit test. */
unsigned bench_hist_index(uint64_t v);
uint64_t bench_hist_lower(unsigned idx);
uint64_t bench_hist_upper(unsigned idx); /* inclusive */

#endif
