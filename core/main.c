/* ringserve: a TCP echo server on io_uring completions or epoll readiness. */
#include <stdio.h>

#include "config.h"
#include "probe.h"
#include "server.h"

int main(int argc, char **argv)
{
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    if (rs_config_parse(&cfg, argc, argv) < 0)
        return 2; /* usage error, already explained */
    if (cfg.exit_now)
        return 0;
    if (cfg.probe)
        return rs_probe_report(stdout, cfg.json) < 0 ? 1 : 0;
    return rs_server_main(&cfg);
}
