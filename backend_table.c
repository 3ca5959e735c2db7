/* The backends this build knows, in order of preference: --backend=auto
 * runs the first one whose available() says yes. A new backend adds its
 * table here and its directory to meson.build; no file in core/ changes. */
#include <string.h>

#include "backend.h"

const struct rs_backend_ops *const rs_backends[] = {
    &rs_backend_uring, /* nameless when built without liburing */
    &rs_backend_epoll,
    NULL,
};

const struct rs_backend_ops *rs_backend_named(const char *name)
{
    for (size_t i = 0; rs_backends[i]; i++)
        if (rs_backends[i]->name && strcmp(rs_backends[i]->name, name) == 0)
            return rs_backends[i];
    return NULL;
}
