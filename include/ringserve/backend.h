/* Backends as modules: registering one from outside the library.
 *
 * A backend turns the core's operations (receive, send, accept, connect,
 * file IO...) into what a kernel interface offers; ringserve builds in an
 * io_uring one and an epoll one. A program can add its own before it
 * parses its command line: the backend's name becomes a --backend value,
 * its options become options of the command line (with its help section
 * in --help), and --backend=auto considers it after the built-in ones.
 *
 * The table itself (struct rs_backend_ops) and the operations it carries
 * are the backend contract, described in core/backend.h and core/op.h of
 * the source tree. They are not installed yet: a backend compiles against
 * the source tree, because that contract is not a stable ABI.
 */
#ifndef RINGSERVE_PUBLIC_BACKEND_H
#define RINGSERVE_PUBLIC_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "export.h"

struct rs_backend_ops;

/* An option a backend owns: --name (a flag) or --name=VALUE. */
struct rs_backend_option {
    const char *name; /* without the dashes: "ring-entries" */
    bool has_value;
    /* 0 when value is acceptable (NULL for a flag), else -EINVAL with
     * what is allowed in err ("a power of two from 1 to 32768"). NULL:
     * any value; the backend's init() has the last word. */
    int (*check)(const char *value, char *err, size_t errlen);
};

/* Add a backend. Call before parsing the command line and before any
 * server starts, from one thread; ops must stay valid for the life of the
 * process. 0; -EEXIST when a backend or a backend option of the same name
 * exists; -ENOSPC when RS_MAX_BACKENDS are known; -EINVAL when ops has no
 * name. */
#define RS_MAX_BACKENDS 8
RS_EXPORT int rs_backend_register(const struct rs_backend_ops *ops);

#endif
