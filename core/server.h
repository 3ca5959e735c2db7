/* The server: listeners, loops (one per thread), signals, exit status. */
#ifndef RINGSERVE_SERVER_H
#define RINGSERVE_SERVER_H

#include "config.h"

/* Run until SIGINT/SIGTERM. Returns the process exit status: 0 after a
 * graceful stop, 1 on a runtime failure, 2 on a configuration error. */
int rs_server_main(struct rs_config *cfg);

#endif
