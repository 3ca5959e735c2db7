#include "log.h"

#include <stdarg.h>
#include <stdio.h>

int rs_log_level;

static void vlog(const char *fmt, va_list ap)
{
    /* One fprintf-sized write per line keeps lines from several loops whole. */
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    fprintf(stderr, "ringserve: %s\n", line);
}

void rs_log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void rs_log_info(const char *fmt, ...)
{
    if (rs_log_level < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void rs_log_debug(const char *fmt, ...)
{
    if (rs_log_level < 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}
