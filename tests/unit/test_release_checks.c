/* The contract checks that must survive a release build.
 *
 * Release builds define NDEBUG (meson's b_ndebug=if-release), which
 * compiles every assert out. Where a violated contract would corrupt
 * memory, the core checks with code instead: this file is built with
 * NDEBUG, together with the pool it tests (core/bufpool.c), so it proves
 * the checks are not asserts. A double release or an id out of range is
 * refused (nothing changes) and counted; without the checks a second
 * release made `lent` wrap to 4294967295 and put one buffer twice on the
 * free stack, so two connections would have received into it at once. */
#ifndef NDEBUG
#error "test_release_checks must be built with NDEBUG, as a release build is"
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "bufpool.h"
#include "log.h"

static void test_release_double_buffer_release_refused(void **state)
{
    (void)state;
    struct rs_bufpool p;
    assert_int_equal(rs_bufpool_init(&p, 4, 64), 0);
    rs_log_level = -1;
    int bid = rs_bufpool_get(&p);
    assert_true(bid >= 0);
    rs_bufpool_lend(&p, (uint16_t)bid);
    assert_int_equal(p.lent, 1);
    assert_true(rs_bufpool_unlend(&p, (uint16_t)bid));
    rs_bufpool_put(&p, (uint16_t)bid);
    assert_int_equal(p.lent, 0);
    assert_int_equal(p.nfree, 4);
    /* Again: refused, counted, nothing changed. */
    assert_false(rs_bufpool_unlend(&p, (uint16_t)bid));
    assert_int_equal(p.lent, 0);
    assert_int_equal(p.violations, 1);
    /* A push past the stack's size (the same buffer freed twice). */
    rs_bufpool_put(&p, (uint16_t)bid);
    assert_int_equal(p.nfree, 4);
    assert_int_equal(p.violations, 2);
    /* Four gets hand out four different buffers. */
    int seen[4] = {0};
    for (int i = 0; i < 4; i++) {
        int b = rs_bufpool_get(&p);
        assert_true(b >= 0 && b < 4);
        assert_int_equal(seen[b]++, 0);
    }
    assert_int_equal(rs_bufpool_get(&p), -1);
    rs_bufpool_fini(&p);
}

static void test_release_out_of_range_release_refused(void **state)
{
    (void)state;
    struct rs_bufpool p;
    assert_int_equal(rs_bufpool_init(&p, 4, 64), 0);
    rs_log_level = -1;
    assert_false(rs_bufpool_release_ok(&p, 4));
    assert_false(rs_bufpool_unlend(&p, 60000));
    assert_int_equal(p.lent, 0);
    assert_int_equal(p.violations, 2);
    rs_bufpool_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_double_buffer_release_refused),
        cmocka_unit_test(test_release_out_of_range_release_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
