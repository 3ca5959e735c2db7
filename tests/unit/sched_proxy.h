/* The schedule driver for the proxy's two-socket sessions (see
 * sched_proxy.c): random legal completions and events through the real
 * stream and proxy code on the fake backend, checked against a model. */
#ifndef RINGSERVE_TEST_SCHED_PROXY_H
#define RINGSERVE_TEST_SCHED_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "sched_driver.h"

/* Run one schedule (up to max_steps random steps, then a drain). Returns
 * the steps taken; any broken promise aborts after printing it. */
uint32_t sched_proxy_run(struct sched_src *src, uint32_t max_steps, bool trace);

struct sched_proxy_totals {
    uint64_t schedules, steps, sessions, sessions_closed, connect_failed, bytes, copies;
    uint64_t enobufs, cancels, races, graceful_shutdowns;
};
extern struct sched_proxy_totals sched_proxy_totals;
void sched_proxy_totals_print(FILE *out);

#endif
