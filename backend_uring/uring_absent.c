/* Built without liburing: the backend is there by name, with its options,
 * and never available, so that --backend=uring parses and the start says
 * why it cannot run ("io_uring support was not compiled in"). */
#include <stdio.h>

#include "backend_table.h"
#include "options.h"

static bool absent_available(char *why, size_t whylen)
{
    snprintf(why, whylen, "io_uring is unavailable: support was not compiled in");
    return false;
}

const struct rs_backend_ops rs_backend_uring = {
    .name = "uring",
    .available = absent_available,
    .options = rs_uring_options,
    .help = rs_uring_help,
};
