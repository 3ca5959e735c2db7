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

__attribute__((format(printf, 1, 2), unused)) static void rs_skip_reason(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("SKIP-REASON: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

#endif
