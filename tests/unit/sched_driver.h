/* A schedule driver for the connection state machine.
 *
 * It runs a few connections through the real core (rs_stream_accept, stream.c,
 * the echo protocol) on top of the scripted fake backend, and at each step
 * lets a choice source pick one legal event: a recv completion (data in a
 * lent buffer, with or without RS_CF_MORE, EOF, -ENOBUFS, -ECONNRESET,
 * -EPIPE), a send completion (full, short, error), a cancel completing
 * (-ECANCELED, or the natural result racing it), shutdown/close completions,
 * rs_stream_abort/rs_stream_close (idle timeout, SIGTERM drain), a new
 * connection, or a loop turn that feeds starved connections as loop.c does.
 *
 * A reference model per connection watches every submit, cancel, completion
 * and buffer release, and fails (prints, then abort()) at the first broken
 * promise: echoed bytes not a prefix of received bytes, a graceful close
 * that loses data, a buffer released twice or while a send still reads it,
 * an op submitted after the close op, a connection freed with ops in flight
 * or left with nothing in flight (a hang), pending output beyond the bound.
 *
 * The choice source is either a seeded PRNG (tests/unit/test_random.c) or
 * the bytes of a fuzzer input (tests/fuzz/fuzz_conn.c): one driver, two
 * ways of exploring it.
 */
#ifndef RINGSERVE_TEST_SCHED_DRIVER_H
#define RINGSERVE_TEST_SCHED_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct sched_src {
    /* PRNG mode (data == NULL) */
    uint64_t rng;
    /* byte mode: each pick consumes one byte (two when n > 256) */
    const uint8_t *data;
    size_t len, pos;
    bool exhausted; /* byte mode ran out: picks return 0 */
};

void sched_src_seed(struct sched_src *s, uint64_t seed);
void sched_src_bytes(struct sched_src *s, const uint8_t *data, size_t len);
/* A choice in [0, n); n >= 1. */
uint32_t sched_pick(struct sched_src *s, uint32_t n);

struct sched_opts {
    uint32_t max_steps; /* random steps before the final drain */
    bool trace;         /* print every event to stderr as it happens */
};

/* Run one schedule to the end (every connection closed, every buffer back,
 * nothing in flight). Returns the number of steps taken; any failure
 * aborts after printing what happened. */
uint32_t sched_run(struct sched_src *src, const struct sched_opts *opts);

/* What the schedules run so far exercised, to show the paths were hit. */
struct sched_totals {
    uint64_t schedules, steps, conns, rejected, bytes_in, bytes_out, copies, enobufs;
    uint64_t starved_fed, paused_steps, races, partial_sends, cancels, errors;
    uint64_t graceful_closes, abortive_closes, submit_failures, refusals, retry_turns;
};
extern struct sched_totals sched_totals;
void sched_totals_print(FILE *out);

/* Printed on failure (and by sched_dump_current) before the trace, e.g.
 * "seed=1 schedule=42": set by the caller, may be empty. */
extern char sched_context[256];

/* Print the context and the last events of the schedule being run (for a
 * SIGABRT handler or a sanitizer death callback). No-op when none runs. */
void sched_dump_current(FILE *out);

#endif
