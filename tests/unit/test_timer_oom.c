/* The timer heap out of memory: the library never exits for its user.
 * realloc is wrapped (-Wl,--wrap=realloc) so the heap's growth can fail on
 * demand. rs_timer_start used to abort() the process; now it returns
 * -ENOMEM with the timer inactive, and streams reserve their timers' room
 * when they are made, so a stream that exists can always arm them. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "fake_backend.h"
#include "loop.h"
#include "protocol.h"
#include "stream.h"
#include "timer.h"

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

static int realloc_failures; /* the next N reallocs fail */

void *__wrap_realloc(void *p, size_t n)
{
    if (realloc_failures > 0) {
        realloc_failures--;
        return NULL;
    }
    return __real_realloc(p, n);
}

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_int_equal(fake_loop_init(&fx->loop, &fx->cfg), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    realloc_failures = 0;
    assert_int_equal(fx->loop.ntimers, 0);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

static void fired(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop;
    (*(int *)t->data)++;
}

static void test_timer_start_out_of_memory_returns_enomem(void **state)
{
    struct fixture *fx = *state;
    static struct rs_timer t[200];
    int n = 0;
    uint32_t i = 0;
    /* Fill the heap to its capacity. */
    do {
        assert_int_equal(rs_timer_start(&fx->loop, &t[i], 10 + i, fired, &n), 0);
        i++;
    } while (fx->loop.ntimers < fx->loop.timers_cap);
    uint32_t full = i;
    realloc_failures = 1;
    assert_int_equal(rs_timer_start(&fx->loop, &t[full], 1, fired, &n), -ENOMEM);
    assert_false(rs_timer_active(&t[full]));
    assert_int_equal(fx->loop.ntimers, full);
    /* A restart needs no memory, even now. */
    realloc_failures = 1;
    assert_int_equal(rs_timer_start(&fx->loop, &t[0], 5, fired, &n), 0);
    realloc_failures = 0;
    /* And with memory back, the heap grows and every timer fires once. */
    assert_int_equal(rs_timer_start(&fx->loop, &t[full], 1, fired, &n), 0);
    fx->loop.now_ms += 100000;
    assert_int_equal(rs_timer_run_due(&fx->loop), (int)full + 1);
    assert_int_equal(n, (int)full + 1);
}

/* A stream is made only with room for its timers: under memory pressure
 * the accept fails cleanly (NULL, counted by the listener), and every
 * stream that exists has its two slots. */
static void test_stream_reserves_its_timers(void **state)
{
    struct fixture *fx = *state;
    static struct rs_timer t[256];
    int n = 0;
    /* Use up the heap's room with timers of our own. */
    uint32_t k = 0;
    while (fx->loop.ntimers < fx->loop.timers_cap) {
        assert_int_equal(rs_timer_start(&fx->loop, &t[k], 1000, fired, &n), 0);
        k++;
    }
    realloc_failures = 1;
    assert_null(rs_stream_accept(&fx->loop, 1000, false, false));
    assert_int_equal(fx->loop.nstreams, 0);
    for (uint32_t i = 0; i < k; i++)
        rs_timer_stop(&fx->loop, &t[i]);
    struct rs_stream *s = rs_stream_accept(&fx->loop, 1000, false, false);
    assert_non_null(s);
    assert_true(fx->loop.timers_cap >=
                RS_TIMERS_PER_STREAM * fx->loop.nstreams + RS_TIMER_LOOP_SLOTS);
    rs_stream_abort(s);
    struct rs_op *r = fake_find(&fx->loop, RS_OP_RECV, 1000);
    if (r)
        fake_complete(&fx->loop, r, -ECANCELED, 0, 0);
    fake_run(&fx->loop);
    struct rs_op *c = fake_find(&fx->loop, RS_OP_CLOSE, 1000);
    assert_non_null(c);
    fake_complete(&fx->loop, c, 0, 0, 0);
    fake_run(&fx->loop);
    assert_int_equal(fx->loop.nstreams, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timer_start_out_of_memory_returns_enomem,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_reserves_its_timers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
