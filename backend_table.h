/* The built-in backends by name, for the table below and for tests that
 * drive one directly. core/ never includes this file: it walks the table
 * (rs_backend_at) without knowing who is in it. */
#ifndef RINGSERVE_BACKEND_TABLE_H
#define RINGSERVE_BACKEND_TABLE_H

#include "backend.h"

extern const struct rs_backend_ops rs_backend_epoll;
/* Built without liburing: present, never available, so that --backend=uring
 * and its options still parse and the start says why it cannot run. */
extern const struct rs_backend_ops rs_backend_uring;

#endif
