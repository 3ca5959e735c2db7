/* A log_fn (rs_config.log_fn) that keeps a server's first error line in
 * data, a char[RS_FIRST_ERROR_LEN]: a failed start-up names there what the
 * kernel lacks, for rs_skip_reason_for (../skip_reason.h). */
#ifndef RS_TESTS_FIRST_ERROR_H
#define RS_TESTS_FIRST_ERROR_H

#include <stdio.h>

#include <ringserve/log.h>

#define RS_FIRST_ERROR_LEN 512

__attribute__((unused)) static void rs_keep_first_error(void *data, enum rs_log_kind kind,
                                                        const char *line)
{
    char *out = data;
    if (kind == RS_LOG_ERROR && !out[0])
        snprintf(out, RS_FIRST_ERROR_LEN, "%s", line);
}

#endif
