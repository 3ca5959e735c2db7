/* Timers: one-shot callbacks on a loop.
 *
 * A timer is a struct the owner embeds wherever it likes (a session, a
 * per-loop state); starting it links it into its loop's min-heap, nothing
 * is allocated per timer. The loop's wait timeout is the earliest due time,
 * so an idle loop sleeps until the next timer or the next completion, and
 * each loop turn fires every timer that is due, in due order, after the
 * completions its wait brought (and, when it brought any or was cut short
 * by a signal, as a stop and a continue do, after one more wait that does
 * not block): a deadline that passed while the loop had no CPU is judged
 * with what arrived meanwhile, as nginx judges events before
 * timers. A timer belongs to one loop and is used from that loop's thread
 * only.
 *
 * Times are CLOCK_MONOTONIC milliseconds (rs_loop_now: the clock is read
 * at most once per turn and once after the backend's wait, so a timer
 * started from a completion counts from after the wait, not before it).
 *
 *     struct rs_timer t = {0};          // zero: not active
 *     if (rs_timer_start(loop, &t, 500, on_timeout, session) < 0) ... // -ENOMEM
 *     ...
 *     rs_timer_stop(loop, &t);          // idempotent; safe from its own fn
 *
 * A timer's fn runs from the loop (never from rs_timer_start), after the
 * timer was removed from the heap; it may start the same timer again.
 *
 * Liveness (libuv's uv_ref/uv_unref). A timer is referenced unless
 * rs_timer_unref was called on it: an active referenced timer keeps its
 * loop alive, so rs_loop_run does not return while it is pending (a
 * stopping loop waits for it too, until the drain deadline: past that
 * deadline a loop ends once its streams and requests are done, whatever
 * timers are left, and those never fire). An unreferenced timer fires like
 * any other while the loop runs for other reasons, but never holds it:
 * the right kind for background work (a rate printer, a periodic scan).
 * The reference is a property of the timer, kept across start and stop;
 * ref/unref may be called at any time, active or not. The core's own
 * timers are all unreferenced: the idle scan, the drain deadline, the
 * listener's accept back-off and each stream's connect/close bound (the
 * stream, or the listener, is what keeps the loop alive).
 */
#ifndef RINGSERVE_PUBLIC_TIMER_H
#define RINGSERVE_PUBLIC_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "export.h"

struct rs_loop;
struct rs_timer;

typedef void (*rs_timer_fn)(struct rs_loop *loop, struct rs_timer *t);

/* Public so that owners can embed it; only data is theirs to touch. */
struct rs_timer {
    uint64_t due_ms;      /* private: the loop time at which it fires */
    uint32_t heap_idx;    /* private: position in the heap + 1; 0 when not active */
    bool unref;           /* private: does not keep the loop alive (rs_timer_unref) */
    rs_timer_fn fn;       /* private: set by rs_timer_start */
    void *data;           /* the owner's */
    struct rs_loop *loop; /* private: set by rs_timer_start, whose heap it is in */
};

/* Start (or restart) t: fn(loop, t) runs delay_ms from now; t->data =
 * data. A delay too long to add to the clock (UINT64_MAX: "never") waits
 * for ever, it never wraps round to a time past. A timer still active on
 * another loop of the same thread moves to this one. 0, -EINVAL for a
 * NULL fn (t untouched), or -ENOMEM when the heap had to grow and could
 * not: then t is not active (a restart never needs memory). Never exits
 * the process. */
RS_EXPORT int rs_timer_start(struct rs_loop *loop, struct rs_timer *t, uint64_t delay_ms,
                             rs_timer_fn fn, void *data);
/* Make room for n active timers now, so that starting that many later
 * cannot fail: 0 or -ENOMEM. */
RS_EXPORT int rs_timer_reserve(struct rs_loop *loop, uint32_t n);
/* Stop t if active (on whichever loop it is active); harmless otherwise. */
RS_EXPORT void rs_timer_stop(struct rs_loop *loop, struct rs_timer *t);

/* The timer no longer keeps its loop alive (rs_timer_ref: it does again).
 * Idempotent; active or not. */
RS_EXPORT void rs_timer_unref(struct rs_timer *t);
RS_EXPORT void rs_timer_ref(struct rs_timer *t);

/* Started and not yet fired or stopped. */
static inline bool rs_timer_active(const struct rs_timer *t)
{
    return t->heap_idx != 0;
}

#endif
