/* The fixture of the stream state-machine tests: a loop on the scripted
 * fake backend (16 buffers of 64 bytes) and the helpers that play the
 * kernel's side of one accepted stream. Shared by test_stream.c and
 * test_stream_slot.c; everything is static inline, so a file may use any
 * part of it. Include it after <cmocka.h>: the helpers assert with it. */
#ifndef RINGSERVE_TEST_STREAM_FIXTURE_H
#define RINGSERVE_TEST_STREAM_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_backend.h"
#include "loop.h"
#include "stream.h"

#define FD                                                                               \
    1000 /* made up: above any real descriptor the test opens (socket(2) may hand out 5) \
          */

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
};

static inline int setup_with(void **state, uint64_t max_pending)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    rs_config_defaults(&fx->cfg);
    fx->cfg.buffers = 16;
    fx->cfg.buffer_size = 64;
    fx->cfg.max_pending = max_pending;
    char err[128];
    assert_int_equal(rs_loop_init(&fx->loop, &fake_backend, &fx->cfg, err, sizeof(err)),
                     0);
    *state = fx;
    return 0;
}

static inline int setup(void **state)
{
    return setup_with(state, 1u << 20);
}

static inline int setup_small(void **state)
{
    return setup_with(state, 100);
}

static inline int teardown(void **state)
{
    struct fixture *fx = *state;
    /* Nothing in flight, every lent buffer back (rs_loop_fini asserts). */
    assert_int_equal(fx->loop.nstreams, 0);
    assert_int_equal(fx->loop.pool.lent, 0);
    assert_int_equal(fake(&fx->loop)->ninflight, 0);
    for (uint32_t i = 0; i < fx->loop.pool.count; i++)
        assert_true(fake(&fx->loop)->released[i] <= 1 || fx->loop.pool.held[i] == 0);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

/* For a test that finished the loop itself (a failed backend). */
static inline int teardown_failed(void **state)
{
    (void)state;
    return 0;
}

static inline struct rs_op *op_of(struct fixture *fx, uint8_t kind)
{
    return fake_find(&fx->loop, kind, FD);
}

static inline uint16_t recv_data(struct fixture *fx, const char *s, bool more)
{
    uint32_t len = (uint32_t)strlen(s);
    uint16_t bid = fake_lend(&fx->loop, s, len);
    struct rs_op *r = op_of(fx, RS_OP_RECV);
    assert_non_null(r);
    fake_complete(&fx->loop, r, (int32_t)len, RS_CF_BUFFER | (more ? RS_CF_MORE : 0),
                  bid);
    fake_run(&fx->loop);
    return bid;
}

static inline void complete(struct fixture *fx, uint8_t kind, int32_t res)
{
    struct rs_op *op = op_of(fx, kind);
    assert_non_null(op);
    fake_complete(&fx->loop, op, res, 0, 0);
    fake_run(&fx->loop);
}

/* Finish a connection whose only op in flight is the multishot recv. */
static inline void close_by_eof(struct fixture *fx)
{
    complete(fx, RS_OP_RECV, 0);
    complete(fx, RS_OP_SHUTDOWN, 0);
    complete(fx, RS_OP_CLOSE, 0);
}

#endif
