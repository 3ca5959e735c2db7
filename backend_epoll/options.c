#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int check_pair(const char *v, const char *a, const char *b, char *err,
                      size_t errlen)
{
    if (strcmp(v, a) != 0 && strcmp(v, b) != 0) {
        snprintf(err, errlen, "one of %s, %s", a, b);
        return -EINVAL;
    }
    return 0;
}

static int check_mode(const char *v, char *err, size_t errlen)
{
    return check_pair(v, "et", "lt", err, errlen);
}

static int check_fs(const char *v, char *err, size_t errlen)
{
    return check_pair(v, "pool", "inline", err, errlen);
}

static int check_threads(const char *v, char *err, size_t errlen)
{
    uint64_t n;
    if (rs_parse_size(v, 64, &n) < 0 || n < 1) {
        snprintf(err, errlen, "a number from 1 to 64");
        return -EINVAL;
    }
    return 0;
}

const struct rs_backend_option rs_epoll_options[] = {
    {"epoll-mode", true, check_mode},
    {"fs", true, check_fs},
    {"fs-threads", true, check_threads},
    {NULL, false, NULL},
};

const char rs_epoll_help[] =
    "Backend epoll: completions emulated on readiness (--sendfile: sendfile(2)):\n"
    "  --epoll-mode=et|lt          epoll notification: edge- or level-triggered\n"
    "                              (default et)\n"
    "  --fs=pool|inline            file IO on worker threads (default), or in the\n"
    "                              loop, blocking it (to see the cost)\n"
    "  --fs-threads=N              file IO worker threads per loop, 1 to 64\n"
    "                              (default 4)\n";

void rs_epoll_options_read(const struct rs_config *cfg, struct epoll_options *out)
{
    const char *mode = rs_config_option(cfg, "epoll-mode");
    const char *fs = rs_config_option(cfg, "fs");
    const char *threads = rs_config_option(cfg, "fs-threads");
    uint64_t n = 4;
    if (threads && rs_parse_size(threads, 64, &n) < 0)
        n = 4;
    out->et = !mode || strcmp(mode, "lt") != 0;
    out->fs_inline = fs && strcmp(fs, "inline") == 0;
    out->fs_threads = n ? (uint32_t)n : 4;
}
