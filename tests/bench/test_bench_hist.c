/* Unit tests of the log-linear histogram: bucket arithmetic, percentiles of
 * known inputs within the bucket precision, exact max, merging. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "bench_hist.h"

/* Relative precision promised by bench_hist.h: one bucket, 1/128. */
static void assert_close(uint64_t got, uint64_t want)
{
    uint64_t diff = got > want ? got - want : want - got;
    if (diff * BENCH_HIST_SUB > want) {
        print_error("got %llu, want %llu within 1/%u\n", (unsigned long long)got,
                    (unsigned long long)want, BENCH_HIST_SUB);
        fail();
    }
}

static struct bench_hist *new_hist(void)
{
    struct bench_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    bench_hist_init(h);
    return h;
}

static void test_bench_hist_buckets_cover_every_value(void **state)
{
    (void)state;
    /* Small values have a bucket each. */
    for (uint64_t v = 0; v < BENCH_HIST_SUB; v++) {
        assert_int_equal(bench_hist_index(v), v);
        assert_int_equal(bench_hist_lower((unsigned)v), v);
        assert_int_equal(bench_hist_upper((unsigned)v), v);
    }
    /* Every bucket's edges map back to it, buckets tile the line with no gap,
     * and each is narrower than 1/128 of its lower edge. */
    for (unsigned i = 0; i + 1 < BENCH_HIST_BUCKETS; i++) {
        uint64_t lo = bench_hist_lower(i), hi = bench_hist_upper(i);
        assert_true(lo <= hi);
        assert_int_equal(bench_hist_index(lo), i);
        assert_int_equal(bench_hist_index(hi), i);
        assert_int_equal(bench_hist_lower(i + 1), hi + 1);
        if (i >= BENCH_HIST_SUB)
            assert_true((hi - lo + 1) * BENCH_HIST_SUB <= lo);
    }
    assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
    assert_true(bench_hist_upper(BENCH_HIST_BUCKETS - 1) == UINT64_MAX);
}

static void test_bench_hist_empty(void **state)
{
    (void)state;
    struct bench_hist *h = new_hist();
    assert_int_equal(h->count, 0);
    assert_int_equal(bench_hist_quantile(h, 0.5), 0);
    assert_int_equal(bench_hist_quantile(h, 1.0), 0);
    free(h);
}

static void test_bench_hist_uniform_percentiles(void **state)
{
    (void)state;
    struct bench_hist *h = new_hist();
    /* 1..100000 once each: the q-quantile is q * 100000. */
    for (uint64_t v = 1; v <= 100000; v++)
        bench_hist_record(h, v);
    assert_int_equal(h->count, 100000);
    assert_int_equal(h->min, 1);
    assert_int_equal(h->max, 100000);
    assert_close(bench_hist_quantile(h, 0.50), 50000);
    assert_close(bench_hist_quantile(h, 0.90), 90000);
    assert_close(bench_hist_quantile(h, 0.99), 99000);
    assert_close(bench_hist_quantile(h, 0.999), 99900);
    assert_int_equal(bench_hist_quantile(h, 1.0), 100000);
    /* A percentile is never below the true value (upper bucket edge). */
    assert_true(bench_hist_quantile(h, 0.50) >= 50000);
    assert_true(bench_hist_mean(h) > 50000.4 && bench_hist_mean(h) < 50000.6);
    free(h);
}

static void test_bench_hist_outlier_max_exact(void **state)
{
    (void)state;
    struct bench_hist *h = new_hist();
    /* 999 fast samples and one slow one: p99.9 is still fast, max is exact. */
    for (int i = 0; i < 999; i++)
        bench_hist_record(h, 20000);
    bench_hist_record(h, 123456789);
    assert_close(bench_hist_quantile(h, 0.5), 20000);
    assert_close(bench_hist_quantile(h, 0.999), 20000);
    assert_int_equal(bench_hist_quantile(h, 1.0), 123456789);
    assert_int_equal(h->max, 123456789);
    /* No percentile exceeds the max, even though its bucket reaches higher. */
    struct bench_hist *one = new_hist();
    bench_hist_record(one, 1000001);
    assert_int_equal(bench_hist_quantile(one, 0.5), 1000001);
    assert_int_equal(bench_hist_quantile(one, 0.99), 1000001);
    free(one);
    free(h);
}

static void test_bench_hist_merge(void **state)
{
    (void)state;
    struct bench_hist *a = new_hist(), *b = new_hist(), *all = new_hist();
    for (uint64_t v = 1; v <= 5000; v++) {
        bench_hist_record(a, v * 10);
        bench_hist_record(all, v * 10);
    }
    for (uint64_t v = 5001; v <= 10000; v++) {
        bench_hist_record(b, v * 10);
        bench_hist_record(all, v * 10);
    }
    bench_hist_merge(a, b);
    assert_int_equal(a->count, 10000);
    assert_int_equal(a->min, 10);
    assert_int_equal(a->max, 100000);
    assert_int_equal(a->sum, all->sum);
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        assert_int_equal(a->buckets[i], all->buckets[i]);
    assert_close(bench_hist_quantile(a, 0.5), 50000);
    assert_close(bench_hist_quantile(a, 0.99), 99000);
    /* Merging an empty histogram changes nothing. */
    struct bench_hist *empty = new_hist();
    bench_hist_merge(a, empty);
    assert_int_equal(a->count, 10000);
    assert_int_equal(a->min, 10);
    free(a);
    free(b);
    free(all);
    free(empty);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench_hist_buckets_cover_every_value),
        cmocka_unit_test(test_bench_hist_empty),
        cmocka_unit_test(test_bench_hist_uniform_percentiles),
        cmocka_unit_test(test_bench_hist_outlier_max_exact),
        cmocka_unit_test(test_bench_hist_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
