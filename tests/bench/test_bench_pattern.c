/* Unit tests of the verification streams: deterministic, different across
 * connections and offsets, and every kind of damage is caught at the right
 * offset. Also the chargen line pattern. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bench_pattern.h"

#define N 4096

static uint8_t a[N + 16], b[N + 16];

static void test_bench_pattern_deterministic(void **state)
{
    (void)state;
    bench_pattern_fill(7, 0, a, N);
    bench_pattern_fill(7, 0, b, N);
    assert_memory_equal(a, b, N);
    /* Filling from any offset, aligned or not, gives the same bytes. */
    for (uint64_t off = 0; off < 24; off++) {
        bench_pattern_fill(7, off, b, 100);
        assert_memory_equal(a + off, b, 100);
        for (uint64_t i = 0; i < 100; i++)
            assert_int_equal(bench_pattern_byte(7, off + i), a[off + i]);
    }
    /* Known values pin the stream down: a change to the generator is a change
     * of the protocol between ringbench versions and must be deliberate. */
    assert_true(bench_pattern_word(0, 0) == 0x58016df76f315627ULL);
    assert_true(bench_pattern_word(7, 125) == 0x8e3b9a2c2f143256ULL);
    assert_int_equal(bench_pattern_byte(0, 1000), 0x7f);
    assert_int_equal(bench_pattern_byte(7, 1000), 0x56);
    assert_int_equal(bench_pattern_check(7, 0, a, N), N);
    assert_int_equal(bench_pattern_check(7, 5, a + 5, N - 5), N - 5);
}

static void test_bench_pattern_differs_across_streams_and_offsets(void **state)
{
    (void)state;
    /* Different connections: almost no byte agrees (chance is 1/256). */
    bench_pattern_fill(1, 0, a, N);
    bench_pattern_fill(2, 0, b, N);
    size_t same = 0;
    for (size_t i = 0; i < N; i++)
        same += a[i] == b[i];
    assert_true(same < N / 64);
    /* Same connection, different offsets (also far apart): unrelated. */
    bench_pattern_fill(1, 1 << 20, b, N);
    same = 0;
    for (size_t i = 0; i < N; i++)
        same += a[i] == b[i];
    assert_true(same < N / 64);
    /* Not a short cycle: words at offsets 8 apart differ. */
    for (uint64_t w = 0; w < 1000; w++)
        assert_true(bench_pattern_word(1, w) != bench_pattern_word(1, w + 1));
    /* Connection 0 and high connection numbers are as good as any. */
    assert_true(bench_pattern_word(0, 0) != bench_pattern_word(1, 0));
    assert_true(bench_pattern_word(15000, 3) != bench_pattern_word(15001, 3));
}

static void test_bench_pattern_detects_flip(void **state)
{
    (void)state;
    for (size_t at = 0; at < 40; at++) {
        bench_pattern_fill(3, 100, a, 64);
        a[at] ^= 0x01;
        assert_int_equal(bench_pattern_check(3, 100, a, 64), at);
    }
    bench_pattern_fill(3, 0, a, N);
    a[N - 1] ^= 0x80;
    assert_int_equal(bench_pattern_check(3, 0, a, N), N - 1);
}

static void test_bench_pattern_detects_drop_and_insert(void **state)
{
    (void)state;
    bench_pattern_fill(5, 0, a, N);
    /* Drop 1 byte or a chunk at 1000: the bytes after it arrive early. */
    for (size_t gap = 1; gap <= 100; gap += 33) {
        memcpy(b, a, 1000);
        memcpy(b + 1000, a + 1000 + gap, N - 1000 - gap);
        size_t at = bench_pattern_check(5, 0, b, N - gap);
        assert_true(at >= 1000 && at < 1004); /* a chance byte match may delay it */
    }
    /* Insert a byte at 1000. */
    memcpy(b, a, 1000);
    b[1000] = (uint8_t)(a[1000] ^ 0x5a);
    memcpy(b + 1001, a + 1000, N - 1000);
    assert_int_equal(bench_pattern_check(5, 0, b, N + 1), 1000);
    /* Duplicate a chunk: [1000, 1100) twice. */
    memcpy(b, a, 1100);
    memcpy(b + 1100, a + 1000, 100);
    size_t at = bench_pattern_check(5, 0, b, 1200);
    assert_true(at >= 1100 && at < 1104);
}

static void test_bench_pattern_detects_reorder_and_swap(void **state)
{
    (void)state;
    bench_pattern_fill(9, 0, a, N);
    /* Swap two 512-byte chunks. */
    memcpy(b, a, N);
    memcpy(b + 512, a + 1024, 512);
    memcpy(b + 1024, a + 512, 512);
    size_t at = bench_pattern_check(9, 0, b, N);
    assert_true(at >= 512 && at < 516);
    /* Another connection's stream, at the same offset: caught at once
     * (unless the first bytes agree by chance, 1/256 each). */
    bench_pattern_fill(10, 0, b, N);
    assert_true(bench_pattern_check(9, 0, b, N) < 4);
    /* And when streams are swapped mid-way. */
    memcpy(b, a, 2000);
    bench_pattern_fill(10, 2000, b + 2000, N - 2000);
    at = bench_pattern_check(9, 0, b, N);
    assert_true(at >= 2000 && at < 2004);
}

static void test_bench_chargen_pattern(void **state)
{
    (void)state;
    static const char line0[] =
        "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n";
    static const char line1[] =
        "\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghi\r\n";
    uint8_t buf[BENCH_CHARGEN_STRIDE * 200];
    /* Phase 1 is RFC 864's example: line 0 starts with '!'. */
    bench_chargen_fill(1, 0, buf, sizeof(buf));
    assert_memory_equal(buf, line0, BENCH_CHARGEN_STRIDE);
    assert_memory_equal(buf + BENCH_CHARGEN_STRIDE, line1, BENCH_CHARGEN_STRIDE);
    /* After 95 lines the pattern repeats. */
    assert_memory_equal(buf + 95 * BENCH_CHARGEN_STRIDE, buf, BENCH_CHARGEN_STRIDE);
    assert_int_equal(bench_chargen_check(1, 0, buf, sizeof(buf)), sizeof(buf));
    assert_int_equal(bench_chargen_check(1, 1000, buf + 1000, 3000), 3000);
    /* The wrong phase, a flipped byte, a dropped byte are caught. */
    assert_int_equal(bench_chargen_check(0, 0, buf, sizeof(buf)), 0);
    buf[5000] ^= 1;
    assert_int_equal(bench_chargen_check(1, 0, buf, sizeof(buf)), 5000);
    buf[5000] ^= 1;
    assert_int_equal(bench_chargen_check(1, 300, buf + 301, 1000), 0);
    /* check agrees with byte() everywhere, including across the \r\n. */
    for (uint64_t off = 0; off < sizeof(buf); off++)
        assert_int_equal(buf[off], bench_chargen_byte(1, off));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench_pattern_deterministic),
        cmocka_unit_test(test_bench_pattern_differs_across_streams_and_offsets),
        cmocka_unit_test(test_bench_pattern_detects_flip),
        cmocka_unit_test(test_bench_pattern_detects_drop_and_insert),
        cmocka_unit_test(test_bench_pattern_detects_reorder_and_swap),
        cmocka_unit_test(test_bench_chargen_pattern),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
