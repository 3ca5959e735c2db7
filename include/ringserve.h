/* libringserve: completion-based TCP servers on io_uring or epoll.
 *
 * The whole public API, one include. docs/api.md walks through it; each
 * function is documented where it is declared:
 *
 *   <ringserve/server.h>    start, stop, wait for and destroy a server
 *   <ringserve/config.h>    its configuration, parsed from argv or filled in
 *   <ringserve/protocol.h>  what a server does with the streams it accepts
 *   <ringserve/stream.h>    one TCP socket: read, write, shut down, close
 *   <ringserve/loop.h>      the loop a stream or timer lives on
 *   <ringserve/timer.h>     one-shot timers on a loop
 *   <ringserve/fs.h>        asynchronous file requests
 *   <ringserve/log.h>       per-server log lines and sinks
 *   <ringserve/stats.h>     a server's counters
 *   <ringserve/backend.h>   adding a backend of one's own
 *
 * Public headers need nothing but C11: `cc -std=c11 prog.c $(pkg-config
 * --cflags --libs ringserve)` builds a program on them.
 */
#ifndef RINGSERVE_H
#define RINGSERVE_H

#include "ringserve/backend.h"
#include "ringserve/config.h"
#include "ringserve/fs.h"
#include "ringserve/log.h"
#include "ringserve/loop.h"
#include "ringserve/protocol.h"
#include "ringserve/server.h"
#include "ringserve/stats.h"
#include "ringserve/stream.h"
#include "ringserve/timer.h"

#endif
