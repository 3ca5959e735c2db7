/* The one line a skipping test prints so that scripts/test-summary.py can
 * check the skip is allowed (see the top of that script): the reason must
 * be one the summary can verify on this machine, e.g.
 *
 *     rs_skip_reason("io_uring unavailable: %s", why);
 *     rs_skip_reason("feature unavailable: %s", "bundle");
 *
 * and then the test exits 77 (the whole program) or calls cmocka's skip()
 * (one case). A skip without such a line fails the summary. */
#ifndef RS_TESTS_SKIP_REASON_H
#define RS_TESTS_SKIP_REASON_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 1, 2), unused)) static void rs_skip_reason(const char *fmt,
                                                                         ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP-REASON: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

/* A start-up error that means the kernel lacks something, said as a skip
 * reason: ringserve's "io_uring is unavailable: ..." and "this kernel does
 * not support 'FEATURE'". Returns 1 when err was one (and the line was
 * printed), 0 when it was any other error: a failure. */
__attribute__((unused)) static int rs_skip_reason_for(const char *err)
{
    static const char unsup[] = "this kernel does not support '";
    const char *f = strstr(err, unsup);
    if (strstr(err, "io_uring is unavailable")) {
        rs_skip_reason("io_uring unavailable: %.*s", (int)strcspn(err, "\n"), err);
        return 1;
    }
    if (f) {
        f += sizeof(unsup) - 1;
        rs_skip_reason("feature unavailable: %.*s", (int)strcspn(f, "'"), f);
        return 1;
    }
    return 0;
}

#endif
