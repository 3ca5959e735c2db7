/* A fuzz target that fails on purpose, for test_fuzz_harness.sh: each kind
 * of failure the fuzz tests must report (a crash, undefined behaviour, a
 * leak, a hang) is one input prefix. Any other input passes. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void *volatile selftest_sink;

static int starts(const uint8_t *data, size_t size, const char *word)
{
    return size >= strlen(word) && memcmp(data, word, strlen(word)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (starts(data, size, "CRASH"))
        abort();
    if (starts(data, size, "UB")) {
        volatile int big = INT_MAX;
        selftest_sink = (void *)(intptr_t)(big + (int)size); /* signed overflow */
    }
    if (starts(data, size, "LEAK")) {
        selftest_sink = malloc(size + 64);
        selftest_sink = NULL;
    }
    if (starts(data, size, "HANG")) {
        volatile unsigned spin = 0;
        for (;;)
            spin++;
    }
    return 0;
}
