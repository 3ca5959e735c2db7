/* Counters a loop keeps; summed over loops and printed on exit, and with
 * --stats-interval also while it runs (as rates per second).
 *
 * A loop's counters are plain integers written by its own thread only. The
 * interval printer runs in the main thread, so it never reads them: each
 * loop copies them to its board (a mutex and a snapshot) at the end of every
 * loop turn, and only when the interval is on. A loop that then blocks has
 * already posted its last numbers, so an idle loop needs no timer to stay
 * current.
 *
 * struct rs_stats and the final line are public: <ringserve/stats.h>. */
#ifndef RINGSERVE_STATS_H
#define RINGSERVE_STATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ringserve/stats.h"

/* The snapshot a loop posts for the interval printer. */
struct rs_stats_board {
    pthread_mutex_t mu;
    struct rs_stats snap;
};

/* What an interval line says besides the counters. */
struct rs_stats_line {
    enum rs_stats_format format;
    const char *backend;   /* "uring", "epoll" */
    const char *wait_call; /* "io_uring_enter", "epoll_wait" */
    double t;              /* seconds since start */
    double dt;             /* seconds since the previous line */
};

/* One interval line from two summed snapshots (prev may be all zero):
 * "ringserve: interval: ..." or one JSON object {"type":"interval",...}. */
void rs_stats_print_interval(FILE *out, const struct rs_stats_line *how,
                             const struct rs_stats *prev, const struct rs_stats *cur);

void rs_stats_board_init(struct rs_stats_board *b);
void rs_stats_board_fini(struct rs_stats_board *b);
void rs_stats_board_post(struct rs_stats_board *b, const struct rs_stats *s);
void rs_stats_board_read(struct rs_stats_board *b, struct rs_stats *out);

#endif
