/* Randomized state-machine test: many seeded random schedules through the
 * real connection code on the fake backend (the driver and its checks are
 * in sched_driver.c).
 *
 *   test_random [--seed N] [--count N] [--steps N] [--schedule I] [--trace]
 *
 * The seed comes from --seed, else RS_SEED, else a fixed default, so CI
 * runs are reproducible. Schedule i of a run uses its own PRNG stream
 * derived from (seed, i): a failure prints both, and
 *   test_random --seed S --schedule I --trace
 * replays exactly that schedule, printing every event.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched_driver.h"
#include "sched_proxy.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define HAVE_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HAVE_SANITIZER 1
#endif
#ifdef HAVE_SANITIZER
#include <sanitizer/common_interface_defs.h>
#endif

#define DEFAULT_SEED  20240501u
#define DEFAULT_COUNT 10000u
#define DEFAULT_STEPS 300u
/* Two-socket proxy sessions (sched_proxy.c): fewer, each heavier. */
#define DEFAULT_PROXY_COUNT 3000u

static uint64_t mix(uint64_t seed, uint64_t i)
{
    uint64_t z = seed ^ (i * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull);
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdull;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ull;
    return z ^ (z >> 33);
}

/* A core assert() or a sanitizer report ends the process without going
 * through the driver's own failure path: print the seed and the trace
 * from here. */
static void on_death(void)
{
    sched_dump_current(stderr);
}

static void on_abort(int sig)
{
    on_death();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || !*s || *end)
        return -1;
    *out = v;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: test_random [--seed N] [--count N] [--steps N] "
                    "[--schedule I] [--proxy-count N] [--proxy-schedule I] [--trace]\n");
    return 2;
}

int main(int argc, char **argv)
{
    uint64_t seed = DEFAULT_SEED, count = DEFAULT_COUNT, steps = DEFAULT_STEPS;
    uint64_t only = UINT64_MAX, pcount = DEFAULT_PROXY_COUNT, ponly = UINT64_MAX;
    bool trace = false;
    const char *env = getenv("RS_SEED");
    if (env && *env && parse_u64(env, &seed) < 0)
        return usage();
    env = getenv("RS_SCHEDULES");
    if (env && *env && parse_u64(env, &count) < 0)
        return usage();
    env = getenv("RS_PROXY_SCHEDULES");
    if (env && *env && parse_u64(env, &pcount) < 0)
        return usage();
    for (int i = 1; i < argc; i++) {
        uint64_t *dst = NULL;
        if (strcmp(argv[i], "--trace") == 0) {
            trace = true;
            continue;
        }
        if (strcmp(argv[i], "--seed") == 0)
            dst = &seed;
        else if (strcmp(argv[i], "--count") == 0)
            dst = &count;
        else if (strcmp(argv[i], "--steps") == 0)
            dst = &steps;
        else if (strcmp(argv[i], "--schedule") == 0)
            dst = &only;
        else if (strcmp(argv[i], "--proxy-count") == 0)
            dst = &pcount;
        else if (strcmp(argv[i], "--proxy-schedule") == 0)
            dst = &ponly;
        if (!dst || i + 1 >= argc || parse_u64(argv[i + 1], dst) < 0)
            return usage();
        i++;
    }
    if (steps == 0 || steps > 100000)
        return usage();

    signal(SIGABRT, on_abort);
#ifdef HAVE_SANITIZER
    __sanitizer_set_death_callback(on_death);
#endif

    struct sched_opts opts = {.max_steps = (uint32_t)steps, .trace = trace};
    /* Replaying one schedule of either kind runs only that one. */
    if (ponly != UINT64_MAX)
        count = 0;
    if (only != UINT64_MAX)
        pcount = 0;
    uint64_t first = only == UINT64_MAX ? 0 : only;
    uint64_t last = only == UINT64_MAX ? count : only + 1;
    printf("conn-random: seed %" PRIu64 ", schedules %" PRIu64 "..%" PRIu64
           ", up to %" PRIu64 " steps each\n",
           seed, first, last - 1, steps);
    fflush(stdout);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t total_steps = 0;
    for (uint64_t i = first; i < last; i++) {
        snprintf(sched_context, sizeof(sched_context),
                 "%s --seed %" PRIu64 " --schedule %" PRIu64 " --steps %" PRIu64
                 " --trace   (RS_SEED=%" PRIu64 ", schedule index %" PRIu64 ")",
                 argv[0], seed, i, steps, seed, i);
        struct sched_src src;
        sched_src_seed(&src, mix(seed, i));
        total_steps += sched_run(&src, &opts);
    }
    sched_context[0] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs =
        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("conn-random: %" PRIu64 " schedules, %" PRIu64
           " steps, all passed in %.2f s\n",
           last - first, total_steps, secs);
    sched_totals_print(stdout);

    /* Two-socket sessions: the proxy on the same stream code. */
    first = ponly == UINT64_MAX ? 0 : ponly;
    last = ponly == UINT64_MAX ? pcount : ponly + 1;
    if (first >= last)
        return 0;
    printf("proxy-random: seed %" PRIu64 ", schedules %" PRIu64 "..%" PRIu64
           ", up to %" PRIu64 " steps each\n",
           seed, first, last - 1, steps);
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    total_steps = 0;
    for (uint64_t i = first; i < last; i++) {
        snprintf(sched_context, sizeof(sched_context),
                 "%s --seed %" PRIu64 " --proxy-schedule %" PRIu64 " --steps %" PRIu64
                 " --trace",
                 argv[0], seed, i, steps);
        struct sched_src src;
        sched_src_seed(&src, mix(seed ^ 0x70726f7879ull, i));
        total_steps += sched_proxy_run(&src, (uint32_t)steps, trace);
    }
    sched_context[0] = '\0';
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("proxy-random: %" PRIu64 " schedules, %" PRIu64
           " steps, all passed in %.2f s\n",
           last - first, total_steps, secs);
    sched_proxy_totals_print(stdout);
    return 0;
}
