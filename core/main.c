/* ringserve: a TCP server on io_uring completions or epoll readiness.
 *
 * The program around the library (server.h): what belongs to the process
 * rather than to a server object lives here — the descriptor limit,
 * SIGPIPE, SIGINT/SIGTERM (the first drains, a second exits at once), the
 * final statistics line and the exit status (0 after a graceful stop, 1 on
 * a runtime failure, 2 on a usage error). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "probe.h"
#include "server.h"
#include "stats.h"

/* One descriptor per connection (epoll, io_uring without fixed files):
 * the soft limit is what the server can hold, so take all we may. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            rs_log_debug("raised RLIMIT_NOFILE from %llu to %llu",
                         (unsigned long long)old, (unsigned long long)rl.rlim_max);
    }
}

/* Sends say MSG_NOSIGNAL, but sendfile(2) and splice to a socket whose
 * peer left have no such flag and raise SIGPIPE. The library's threads
 * block every signal, so there it only stays pending; ignoring it keeps
 * any thread of this program from being killed by one. */
static void ignore_sigpipe(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* Signals are taken synchronously (sigtimedwait) by this thread, never by
 * a handler: the first asks the server to drain, a second exits at once. */
static void serve(struct rs_server *srv, const sigset_t *sigs)
{
    unsigned seen = 0;
    while (rs_server_wait(srv, 50) == -ETIMEDOUT) {
        struct timespec now = {0, 0};
        int sig = sigtimedwait(sigs, NULL, &now);
        if (sig < 0)
            continue;
        if (seen++ > 0) {
            rs_log_error("second signal: exiting now");
            _exit(1);
        }
        rs_log_info("%s: draining (send it again to exit at once)", strsignal(sig));
        rs_server_stop(srv);
    }
}

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
    rs_log_level = cfg.verbose;
    raise_nofile();
    ignore_sigpipe();
    /* Blocked before the server starts: a signal during start-up waits
     * for serve() instead of killing the process half set up. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct rs_server *srv;
    int rc = rs_server_start(&cfg, &srv);
    if (rc < 0)
        return rc == -EINVAL ? 2 : 1;
    serve(srv, &sigs);
    struct rs_stats totals = {0};
    if (rs_server_destroy(srv, &totals) < 0)
        return 1;
    rs_stats_print(stderr, &totals, cfg.stats_json ? RS_STATS_JSON : RS_STATS_TEXT);
    return 0;
}
