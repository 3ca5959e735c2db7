/* --upstream for the proxy protocol (protocols/proxy.c), parsed with the
 * rest of the command line (upstreams.c). */
#ifndef RINGSERVE_PROXY_H
#define RINGSERVE_PROXY_H

#include <stddef.h>

#include "config.h"

/* Parse and resolve "HOST:PORT[,HOST:PORT...]" ([V6]:PORT too) into
 * cfg->upstreams. 0, or -EINVAL with a one-line reason in err. */
int rs_proxy_parse_upstreams(struct rs_config *cfg, const char *list, char *err,
                             size_t errlen);

#endif
