/* The backends this build knows, in order of preference: --backend=auto
 * runs the first one whose available() says yes. A new built-in backend
 * adds its table here and its directory to meson.build; a program's own
 * backend calls rs_backend_register instead. No file in core/ changes. */
#include "backend_table.h"

const struct rs_backend_ops *const rs_builtin_backends[] = {
    &rs_backend_uring,
    &rs_backend_epoll,
    NULL,
};
