/* libFuzzer target: the input bytes are the schedule.
 *
 * Each byte the schedule driver (tests/unit/sched_driver.c) consumes picks the
 * next choice: the first few set the configuration (pool size, max_pending,
 * how often errors happen, how many connections), then every byte picks an
 * event (which op completes, or abort/finish/open/loop turn) and its
 * parameters (data length, partial send size, error). When the input runs
 * out, a deterministic drain closes everything and the end-of-schedule
 * checks run. Every broken invariant abort()s, which libFuzzer reports as a
 * crash and saves as crash-<sha1>.
 *
 * RS_FUZZ_TRACE=1 prints every event (use it with fuzz_replay on one file).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "sched_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int trace = -1;
    if (trace < 0) {
        const char *e = getenv("RS_FUZZ_TRACE");
        trace = e && *e && *e != '0';
    }
    struct sched_src src;
    sched_src_bytes(&src, data, size);
    /* The input length bounds the schedule; this only caps the work one
     * huge input can ask for. */
    struct sched_opts opts = {.max_steps = 20000, .trace = trace != 0};
    sched_run(&src, &opts);
    return 0;
}
