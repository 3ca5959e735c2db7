/* Built without liburing: the backend table exists, with no name, so the
 * core can say "io_uring support was not compiled in". */
#include "backend.h"

const struct rs_backend_ops rs_backend_uring = {.name = NULL};
