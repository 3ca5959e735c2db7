/* The backend contract.
 *
 * A backend moves bytes and reports completions; it knows nothing about
 * protocols or connection states. The core calls it only through this table,
 * chosen once at start-up, and branches on the capability bits it declares,
 * never on its name.
 *
 * Rules every backend keeps (tests/unit/test_backend_contract.c checks them
 * against each backend with the same code):
 *
 *  1. A completion is never delivered from inside submit() or cancel();
 *     only from run(). Re-entrancy bugs cannot happen in the core.
 *  2. An op submitted with RS_OPF_MULTISHOT may complete many times; every
 *     completion but the last carries RS_CF_MORE. A backend may ignore the
 *     request and complete once (without RS_CF_MORE); the core re-arms.
 *  3. A recv completion with res > 0 carries a lent buffer (RS_CF_BUFFER,
 *     bid). The core gives it back exactly once with buf_release() when the
 *     bytes are consumed. A completion without RS_CF_BUFFER carries none.
 *  4. res is >= 0 or -errno, exactly like cqe->res. -ENOBUFS on a recv means
 *     "no buffer was free": the op is disarmed, it is not an error.
 *  5. Every submitted op completes exactly once without RS_CF_MORE, cancel
 *     included (-ECANCELED, or its natural result if it raced). Only then may
 *     its memory be reused. The core frees a connection only when it has no
 *     op in flight, and RS_OP_CLOSE is the last op on a socket.
 *  6. The descriptor kind travels with the op (RS_OPF_DIRECT), never with
 *     the loop: a backend serves plain fds on every loop, and direct
 *     descriptors where it declared RS_CAP_DIRECT_FD.
 *  7. RS_OP_CONNECT completes with 0 or -errno (-ECONNREFUSED, -ETIMEDOUT,
 *     -ENETUNREACH...) once the connection is established or failed, like
 *     connect(2) on a blocking socket; a cancel ends it with -ECANCELED.
 *  8. File ops (RS_OP_OPENAT/READ/WRITE/STATX, and RS_OP_CLOSE of a
 *     plain fd) keep rules 1, 4 and 5 like any other op: one
 *     completion, from run(), res >= 0 or -errno. A backend whose kernel
 *     interface cannot do file IO asynchronously performs the calls on
 *     worker threads and still delivers from run(); it declares
 *     RS_CAP_FILE_NATIVE only when the kernel does the work itself. A
 *     cancel may not interrupt a file call already running: then the op
 *     completes with its natural result. RS_OP_OPENAT honours how.resolve
 *     (RESOLVE_BENEATH: nothing outside the directory fd is ever opened);
 *     where the kernel lacks openat2 a backend must refuse or emulate it
 *     more strictly, never open more loosely. A backend whose worker
 *     threads still hold file ops when it is finalised completes them
 *     then, from fini(): -ECANCELED for those no worker started, their
 *     result for those that ran, so their owners can free what they hold.
 *  9. RS_OP_SOCKET (RS_CAP_SOCKET) completes with a new TCP socket of the
 *     family in len, or -errno (-EMFILE, -ENFILE, -EAFNOSUPPORT...). The
 *     backend decides its kind: a direct descriptor (RS_CF_DIRECT) only if
 *     the op asked with RS_OPF_DIRECT and the backend declared
 *     RS_CAP_SOCKET_DIRECT, else a plain, non-blocking, close-on-exec fd;
 *     a backend that cannot honour RS_OPF_NODELAY on a direct socket, or
 *     whose direct table is full, falls back to a plain one. The socket is
 *     the submitter's from the completion on, cancelled or not (a cancel
 *     may not stop it: then the op completes with the new descriptor), and
 *     it is closed like any other (RS_OP_CLOSE, RS_OPF_DIRECT as flagged).
 * 10. RS_OP_SENDFILE (RS_CAP_SENDFILE) behaves like a send whose bytes come
 *     from a file: it completes once, from run(), when some bytes went out
 *     (res > 0, possibly fewer than len: the socket's buffer filled, or a
 *     backend's chunk ended), when the file ends before any byte was sent
 *     (res 0), or with -errno (-EPIPE, -ECONNRESET from the socket; -EBADF,
 *     -EINVAL from the file). A full socket buffer is waited out, never
 *     reported (no -EAGAIN), but not once 1 MiB of the op went out: then
 *     the op completes with what went out rather than wait for room, so
 *     that its completion — where the caller sees progress — comes every
 *     MiB or so that a slow peer takes, however large the op (the core's
 *     op size is the backend's choice: loop->sendfile_op_max). Bytes
 *     taken from the file but not sent are never counted and never sent
 *     later: the next op starts at the offset the caller gives. A cancel
 *     ends it with -ECANCELED, or with the bytes sent so far when some
 *     went out. A backend may hold descriptors of its own while the op is
 *     in flight (io_uring: a pipe), never after it but as rule 12 allows.
 * 11. RS_OP_CLOSE with RS_OPF_RESET (op.h) aborts the connection: the peer
 *     reads what reached it, then ECONNRESET, never a clean EOF.
 * 12. A backend may also keep process descriptors between ops, to save
 *     syscalls (io_uring: a direct socket's installed fd, from one
 *     sendfile op to the next). Such a hold must never be what makes a
 *     new descriptor fail at the process's limit: an op of its own that
 *     makes one (RS_OP_OPENAT, a plain RS_OP_SOCKET, a pipe it needs)
 *     and fails with -EMFILE or -ENFILE gives the holds back and is tried
 *     once more, and give_back_fds() does the same for the core's own
 *     calls (the dup(2)s of files handed to streams: rs_loop_dup_fd).
 *     Only the loop's own holds: another loop's stay.
 */
#ifndef RINGSERVE_BACKEND_H
#define RINGSERVE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "op.h"
#include "ringserve/backend.h"
#include "ringserve/loop.h"

struct rs_loop;
struct rs_config;
struct sockaddr;

/* rs_backend_ops.listen's flags */
#define RS_LISTEN_REUSEPORT (1u << 0) /* SO_REUSEPORT: one of the loops' group */
#define RS_LISTEN_NODELAY   (1u << 1) /* TCP_NODELAY, inherited by accepted sockets */
#define RS_LISTEN_V6ONLY    (1u << 2) /* IPV6_V6ONLY (an AF_INET6 address) */

/* Capability bits (RS_CAP_*): <ringserve/loop.h>, where protocols read
 * them too (rs_loop_caps). A backend declares its own in loop->caps
 * during init(). */

struct rs_backend_ops {
    const char *name; /* --backend=NAME */
    /* Optional: can this backend run in this process at all? false with a
     * one-line reason in why (io_uring: disabled by sysctl, forbidden by
     * seccomp, not compiled in...). Cheap after the first call; NULL means
     * always. The program asks before init() to choose a backend. */
    bool (*available)(char *why, size_t whylen);
    /* 0, -EINVAL for a configuration error (exit 2), other -errno otherwise.
     * On failure, err (if not NULL) holds a one-line reason. */
    int (*init)(struct rs_loop *loop, const struct rs_config *cfg, char *err,
                size_t errlen);
    void (*fini)(struct rs_loop *loop);
    /* Queue an op. 0 or -errno (-EBUSY: queue full, -ENOMEM...): then the
     * op was not taken, nothing of it happened, and nothing will complete
     * for it. The core retries what it cannot do without (shutdown, close)
     * on a later loop turn. */
    int (*submit)(struct rs_loop *loop, struct rs_op *op);
    /* Ask for an in-flight op to finish early; it still completes (rule 5).
     * 0, or -ENOENT when the op is not in flight (its completion is queued),
     * or another -errno (-EBUSY, -ENOMEM) when the backend cannot take the
     * cancel now: then the op is untouched, and the core asks again later. */
    int (*cancel)(struct rs_loop *loop, struct rs_op *op);
    /* Wait up to timeout_ms (-1: forever, 0: poll) and dispatch completions.
     * Returns the number dispatched, or -errno (-EINTR is not an error). */
    int (*run)(struct rs_loop *loop, int timeout_ms);
    /* Make a blocked run() return. Async-signal-safe. */
    void (*wake)(struct rs_loop *loop);
    /* Return a lent buffer (rule 3). */
    void (*buf_release)(struct rs_loop *loop, uint16_t bid);
    /* Human-readable description of the active mode/features, e.g.
     * "mode=et" or "features=multishot-accept,buf-ring". */
    void (*describe)(struct rs_loop *loop, char *out, size_t outlen);
    /* Optional: true while the kernel still holds something of ours that
     * no op accounts for (zero-copy sends awaiting their notification).
     * A stopping loop keeps running until this is false, or the drain
     * deadline passes. NULL means never. */
    bool (*busy)(struct rs_loop *loop);
    /* Optional: the process is out of descriptors (err: -EMFILE or
     * -ENFILE, from a call on the loop's thread that makes one): close
     * the process descriptors this loop keeps only to save syscalls
     * (rule 12), so that the call can be tried once more. true when any
     * was closed; false when none was held (then a retry would fail
     * alike). On the loop's thread, inside run() or outside it; no
     * completion comes of it. NULL means the backend keeps none. */
    bool (*give_back_fds)(struct rs_loop *loop, int err);
    /* Optional, for a loop that declared RS_CAP_LISTEN_DIRECT: a TCP
     * socket listening at addr (SO_REUSEADDR; RS_LISTEN_* in flags) made as
     * a direct descriptor, so that the listener holds no process
     * descriptor either. Called on the loop's own thread after init() and
     * before the first run(); it may wait for the kernel there. The
     * descriptor (accept on it with RS_OPF_DIRECT, close it with an
     * RS_OP_CLOSE op), or -errno. */
    int (*listen)(struct rs_loop *loop, const struct sockaddr *addr, uint32_t addrlen,
                  unsigned flags, int backlog);
    /* The system call run() waits in, for the statistics: "epoll_wait". */
    const char *wait_call;
    /* The options this backend owns (--NAME[=VALUE]), ended by one whose
     * name is NULL; NULL: none. The command line stores their values in
     * the configuration as given (rs_config_option), after the option's
     * check; init() reads them, its own defaults where they are absent. */
    const struct rs_backend_option *options;
    /* What it was built with, for --version ("liburing 2.3"); NULL: nothing
     * to say. */
    const char *built_with;
    /* Its section of --help: a title line, then one or more lines per
     * option, formatted like ringserve's own. NULL: none. */
    const char *help;
};

/* The backends built into the library, in order of preference, ended by
 * NULL (backend_table.c: the one list a built-in backend joins). Those
 * registered with rs_backend_register follow them. */
extern const struct rs_backend_ops *const rs_builtin_backends[];

/* Backend number i, built-in or registered, in order of preference; NULL
 * past the last: --backend=auto runs the first available. */
const struct rs_backend_ops *rs_backend_at(size_t i);
/* The backend called name; NULL when there is none. */
const struct rs_backend_ops *rs_backend_named(const char *name);
/* The backend to run for name ("auto": the first available, in order of
 * preference); NULL with the reason in why when it cannot run here. */
const struct rs_backend_ops *rs_backend_choose(const char *name, char *why,
                                               size_t whylen);
/* The backend option called name, and its backend in *owner (if not
 * NULL); NULL when no backend has one. */
const struct rs_backend_option *
rs_backend_option_named(const char *name, const struct rs_backend_ops **owner);

#endif
