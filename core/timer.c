/* The timer heap: a binary min-heap of struct rs_timer pointers ordered by
 * due_ms, each timer knowing its own index so stop is O(log n) without a
 * search (libuv's heap-inl.h and nginx's rbtree do the same job; a heap is
 * simpler and its array is the only allocation). Two timers due in the same
 * millisecond fire in heap order, which nothing here depends on. */
#include "timer.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "loop.h"

static void place(struct rs_timer **h, uint32_t i, struct rs_timer *t)
{
    h[i] = t;
    t->heap_idx = i + 1;
}

static void sift_up(struct rs_timer **h, uint32_t i)
{
    struct rs_timer *t = h[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h[parent]->due_ms <= t->due_ms)
            break;
        place(h, i, h[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(struct rs_timer **h, uint32_t n, uint32_t i)
{
    struct rs_timer *t = h[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h[c + 1]->due_ms < h[c]->due_ms)
            c++;
        if (t->due_ms <= h[c]->due_ms)
            break;
        place(h, i, h[c]);
        i = c;
    }
    place(h, i, t);
}

static void heap_remove(struct rs_loop *loop, struct rs_timer *t)
{
    struct rs_timer **h = loop->timers;
    uint32_t i = t->heap_idx - 1;
    assert(i < loop->ntimers && h[i] == t);
    t->heap_idx = 0;
    if (!t->unref) {
        assert(loop->ntimers_ref > 0);
        loop->ntimers_ref--;
    }
    struct rs_timer *last = h[--loop->ntimers];
    if (last == t)
        return;
    place(h, i, last);
    if (i > 0 && h[(i - 1) / 2]->due_ms > last->due_ms)
        sift_up(h, i);
    else
        sift_down(h, loop->ntimers, i);
}

int rs_timer_reserve(struct rs_loop *loop, uint32_t n)
{
    if (n <= loop->timers_cap)
        return 0;
    uint32_t cap = loop->timers_cap ? loop->timers_cap : 64;
    while (cap < n)
        cap *= 2;
    struct rs_timer **h = realloc(loop->timers, cap * sizeof(*h));
    if (!h)
        return -ENOMEM;
    loop->timers = h;
    loop->timers_cap = cap;
    return 0;
}

int rs_timer_start(struct rs_loop *loop, struct rs_timer *t, uint64_t delay_ms,
                   rs_timer_fn fn, void *data)
{
    if (!fn)
        return -EINVAL; /* it would be called, far from this mistake */
    /* From the heap it is in: a timer restarted on another loop (of the
     * same thread) leaves its old loop's heap, not this one's, which it
     * would corrupt. */
    if (rs_timer_active(t))
        heap_remove(t->loop, t); /* its slot is free again: no growth below */
    /* Out of memory for the heap: the timer is not started, and the caller
     * decides (a library never exits for its user). */
    if (loop->ntimers == loop->timers_cap &&
        rs_timer_reserve(loop, loop->ntimers + 1) < 0)
        return -ENOMEM;
    t->fn = fn;
    t->data = data;
    /* After a wait: now, not the turn's start. A delay past the end of
     * time (UINT64_MAX as "never") saturates instead of wrapping round to
     * a deadline in the past, which fired at once. */
    uint64_t now = rs_loop_now(loop);
    t->due_ms = delay_ms > UINT64_MAX - now ? UINT64_MAX : now + delay_ms;
    t->loop = loop;
    if (!t->unref)
        loop->ntimers_ref++;
    place(loop->timers, loop->ntimers, t);
    sift_up(loop->timers, loop->ntimers++);
    return 0;
}

/* An active timer moves between the loop's counts; an inactive one only
 * remembers the choice for its next start. */
void rs_timer_unref(struct rs_timer *t)
{
    if (t->unref)
        return;
    t->unref = true;
    if (rs_timer_active(t))
        t->loop->ntimers_ref--;
}

void rs_timer_ref(struct rs_timer *t)
{
    if (!t->unref)
        return;
    t->unref = false;
    if (rs_timer_active(t))
        t->loop->ntimers_ref++;
}

void rs_timer_stop(struct rs_loop *loop, struct rs_timer *t)
{
    (void)loop; /* the timer knows its heap: given another loop, no harm */
    if (rs_timer_active(t))
        heap_remove(t->loop, t);
}

int rs_timer_next_due_ms(const struct rs_loop *loop)
{
    assert(loop->ntimers > 0);
    uint64_t due = loop->timers[0]->due_ms;
    if (due <= loop->now_ms)
        return 0;
    uint64_t d = due - loop->now_ms;
    return d > INT32_MAX ? INT32_MAX : (int)d;
}

int rs_timer_run_due(struct rs_loop *loop)
{
    int n = 0;
    /* Timers started by a callback with delay 0 are due now too, but firing
     * them in the same pass could loop forever: stop after the ones that
     * were due when the pass began (bounded by the count at entry). */
    uint32_t budget = loop->ntimers;
    while (budget-- > 0 && loop->ntimers > 0 && loop->timers[0]->due_ms <= loop->now_ms) {
        struct rs_timer *t = loop->timers[0];
        heap_remove(loop, t);
        t->fn(loop, t);
        n++;
    }
    return n;
}

void rs_timer_heap_fini(struct rs_loop *loop)
{
    /* Timers left active (a loop that ended at its drain deadline, or one
     * whose backend failed) never fire; a later rs_timer_stop on them must
     * find them inactive, not look into a freed heap. */
    for (uint32_t i = 0; i < loop->ntimers; i++)
        loop->timers[i]->heap_idx = 0;
    loop->ntimers_ref = 0;
    free(loop->timers);
    loop->timers = NULL;
    loop->ntimers = loop->timers_cap = 0;
}
