/* Timers' internals: what the loop calls. The public half (struct
 * rs_timer, rs_timer_start/stop, how timers fire) is <ringserve/timer.h>.
 *
 * A per-loop min-heap by due_ms (timer.c); the heap array grows to the
 * largest number of timers ever active at once. */
#ifndef RINGSERVE_TIMER_H
#define RINGSERVE_TIMER_H

#include "ringserve/timer.h"

/* Timers the core reserves room for per stream when the stream is made,
 * so a stream that exists can always arm its timers: its own (connect
 * timeout, then the graceful close's bound) and two of its protocol's
 * session (HTTP: the send/keep-alive watch beside the request-head
 * deadline or the read retry). */
#define RS_TIMERS_PER_STREAM 3u
/* The loop's own timers (idle scan, drain, accept back-off) beyond those. */
#define RS_TIMER_LOOP_SLOTS 8u

/* For the loop: ms until the earliest timer is due (0 if overdue), with
 * at least one active (rs_timer_next_ms in loop.h: -1 when none is). */
int rs_timer_next_due_ms(const struct rs_loop *loop);
/* For the loop: fire every timer due at loop->now_ms. Returns how many. */
int rs_timer_run_due(struct rs_loop *loop);
/* For the loop: free the heap; timers still in it become inactive. */
void rs_timer_heap_fini(struct rs_loop *loop);

#endif
