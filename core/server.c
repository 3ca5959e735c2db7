#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "probe.h"
#include "protocol.h"

/* Descriptors kept back from the default --max-conns, beyond those the
 * server holds once set up (stdio, listeners, epoll sets or rings, wake-up
 * eventfds, the HTTP roots: counted, see fds_in_use): room for what it
 * opens later (files being served, a connection accepted only to be
 * rejected, the exclusive bind of a port). */
#define FD_RESERVE 64

struct worker {
    struct rs_loop loop;
    struct rs_config *cfg;
    const struct rs_backend_ops *ops;
    struct rs_stats_board board; /* --stats-interval snapshots */
    pthread_t thread;
    int listen_fd;
    int index;
    int init_rc;
    int run_rc;
    char err[256];
    bool started;
};

static struct worker *workers;
static unsigned nworkers;
static struct rs_group group;

/* Ready barrier: every loop reports init success or failure before the
 * start-up line is printed. */
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cv = PTHREAD_COND_INITIALIZER;
static unsigned nready;
static bool go, abort_start;

/* Signals are taken synchronously by the main thread (sigtimedwait), never
 * by a handler interrupting a loop: the loops run with SIGINT/SIGTERM
 * blocked and are told to stop through their wake-up eventfd. */
static void block_signals(sigset_t *set)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
}

static atomic_uint nfinished;
static atomic_bool any_failed;

static void stop_all(void)
{
    for (unsigned i = 0; i < nworkers; i++)
        if (workers[i].started)
            rs_loop_request_stop(&workers[i].loop);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --stats-interval: the main thread sums the loops' latest snapshots and
 * prints the difference to the previous sum. It never touches a loop's own
 * counters (see stats.h). */
struct interval {
    double start, prev_t, next_t, period;
    struct rs_stats prev;
};

static void print_interval(const struct rs_config *cfg, struct interval *iv, double now)
{
    struct rs_stats cur = {0}, one;
    for (unsigned i = 0; i < nworkers; i++) {
        if (!workers[i].started)
            continue;
        rs_stats_board_read(&workers[i].board, &one);
        rs_stats_add(&cur, &one);
    }
    const struct rs_backend_ops *ops = workers[0].ops;
    struct rs_stats_line how = {
        .format = cfg->stats_json ? RS_STATS_JSON : RS_STATS_TEXT,
        .backend = ops->name,
        .wait_call = ops->wait_call ? ops->wait_call : "wait",
        .t = now - iv->start,
        .dt = now - iv->prev_t,
    };
    rs_stats_print_interval(stderr, &how, &iv->prev, &cur);
    iv->prev = cur;
    iv->prev_t = now;
    /* The next line one period on; after a stall, from now. */
    iv->next_t += iv->period;
    if (iv->next_t <= now)
        iv->next_t = now + iv->period;
}

/* Wait for the loops to finish; the first signal asks them to drain, a
 * second one exits at once. */
static void supervise(const struct rs_config *cfg, const sigset_t *set)
{
    unsigned seen = 0;
    bool stopping = false;
    struct interval iv = {.period = cfg->stats_interval_ms / 1000.0};
    iv.start = iv.prev_t = mono_s();
    iv.next_t = iv.start + iv.period;
    while (atomic_load(&nfinished) < nworkers) {
        long wait_ns = 50 * 1000000L;
        if (cfg->stats_interval_ms) {
            double now = mono_s();
            if (now >= iv.next_t)
                print_interval(cfg, &iv, now);
            double left = iv.next_t - now;
            if (left < 0.05)
                wait_ns = left > 0 ? (long)(left * 1e9) : 0;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = wait_ns};
        int sig = sigtimedwait(set, NULL, &ts);
        if (atomic_load(&any_failed) && !stopping) {
            /* One loop died: stop the others rather than serve a fraction
             * of the connections. */
            stopping = true;
            stop_all();
        }
        if (sig < 0)
            continue;
        if (seen++ > 0) {
            rs_log_error("second signal: exiting now");
            _exit(1);
        }
        rs_log_info("%s: draining (send it again to exit at once)", strsignal(sig));
        stop_all();
    }
}

static void pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu % CPU_SETSIZE, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
        rs_log_error("cannot pin loop %d to CPU %d", cpu, cpu);
}

/* SCHED_BATCH: when a loop is woken while another task runs on its CPU,
 * it waits for that task to block (or for the tick) instead of preempting
 * it. A completion loop then wakes to every completion that arrived
 * meanwhile, not to the first. Needs no privilege. */
static int sched_batch_self(char *err, size_t errlen)
{
    int rc = rs_loop_sched_batch(true);
    if (rc != 0)
        snprintf(err, errlen, "--sched=batch: %s", strerror(-rc));
    return rc;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (w->cfg->pin)
        pin_self(w->index);
    /* The ring is created by the thread that uses it: SINGLE_ISSUER and
     * DEFER_TASKRUN require it. */
    w->init_rc =
        w->cfg->sched == RS_SCHED_BATCH ? sched_batch_self(w->err, sizeof(w->err)) : 0;
    if (w->init_rc == 0)
        w->init_rc = rs_loop_init(&w->loop, w->ops, w->cfg, w->err, sizeof(w->err));
    w->loop.index = w->index;
    if (w->cfg->stats_interval_ms)
        w->loop.board = &w->board;
    pthread_mutex_lock(&ready_mu);
    if (w->init_rc == 0)
        w->started = true;
    nready++;
    pthread_cond_broadcast(&ready_cv);
    while (!go && !abort_start)
        pthread_cond_wait(&ready_cv, &ready_mu);
    bool run = go && w->init_rc == 0;
    pthread_mutex_unlock(&ready_mu);
    if (w->init_rc < 0) {
        atomic_fetch_add(&nfinished, 1);
        return NULL;
    }
    if (run) {
        /* With handoff only loop 0 listens; the others take what it
         * hands them. */
        bool inbox = w->loop.group && w->loop.group->handoff && w->index > 0;
        int rc = rs_listener_start(&w->loop, inbox ? RS_FD_INBOX : w->listen_fd);
        if (rc == 0 && !inbox)
            w->listen_fd = -1; /* the listener owns it now */
        w->run_rc = rc < 0 ? rc : rs_loop_run(&w->loop);
        if (w->run_rc < 0)
            atomic_store(&any_failed, true);
    }
    if (!run) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    atomic_fetch_add(&nfinished, 1);
    return NULL;
}

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

static uint64_t nofile_soft(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1u << 20;
    return rl.rlim_cur;
}

/* Descriptors the process holds now; an estimate when /proc is missing. */
static uint64_t fds_in_use(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 3 + 4 * (uint64_t)nworkers;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* not the directory's own descriptor */
}

/* What this server can hold at most, why, and what it holds by default;
 * computed once, when every loop is set up (setup_group). */
static uint32_t conn_limit, conn_default;
static char conn_why[160];

/* With direct descriptors (io_uring fixed-files) a connection lives in its
 * ring's private table, which the kernel sizes up to RLIMIT_NOFILE per
 * ring: N loops hold N tables, less a small reserve each for rejecting and
 * handing over. Otherwise every connection is a process descriptor, and
 * RLIMIT_NOFILE (raised to the hard limit at start) bounds them all. The
 * default then leaves out the descriptors the server already holds and
 * FD_RESERVE more (half of what is left when that is small), so that it is
 * reached before accept(2) runs out of descriptors: at the default a new
 * connection is rejected at once. Out of descriptors before the cap (a cap
 * set close to the limit, or `max`), accepting pauses and the clients wait
 * in the backlog until a connection closes. */
static void conn_limits(uint32_t *limit, uint32_t *dflt, char *why, size_t whylen)
{
    struct rs_loop *l0 = &workers[0].loop;
    if (l0->caps & RS_CAP_DIRECT_FD) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < nworkers; i++)
            sum += rs_listener_room(&workers[i].loop);
        *limit = *dflt = sum > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)sum;
        snprintf(why, whylen, "%u ring%s x %u direct descriptors", nworkers,
                 nworkers == 1 ? "" : "s", rs_listener_room(l0));
        return;
    }
    uint64_t n = nofile_soft();
    *limit = n > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)n;
    uint64_t used = fds_in_use();
    uint64_t left = n > used ? n - used : 0;
    uint64_t d = left > FD_RESERVE * 2 ? left - FD_RESERVE : left / 2;
    *dflt = d == 0 ? 1 : d > *limit ? *limit : (uint32_t)d;
    snprintf(why, whylen, "RLIMIT_NOFILE, a descriptor per connection");
}

/* --max-conns against what the backend can hold; the group set up. 0, or
 * 2 (usage) when --max-conns asks for more than that. */
static int setup_group(struct rs_config *cfg)
{
    conn_limits(&conn_limit, &conn_default, conn_why, sizeof(conn_why));
    uint32_t limit = conn_limit, dflt = conn_default;
    const char *why = conn_why;
    uint32_t max = cfg->max_conns;
    if (max == RS_MAX_CONNS_LIMIT) {
        max = limit;
    } else if (max > limit) {
        rs_log_error("--max-conns=%u is more than this server can hold: %u (%s)%s", max,
                     limit, why,
                     (workers[0].loop.caps & RS_CAP_DIRECT_FD)
                         ? "; add --threads"
                         : "; use --backend=uring with fixed-files and --threads, or "
                           "raise the hard limit");
        return 2;
    } else if (max == 0) {
        max = dflt;
    }
    cfg->max_conns = max;
    group.n = nworkers;
    group.max_conns = max;
    group.loops = calloc(nworkers, sizeof(*group.loops));
    if (!group.loops) {
        rs_log_error("out of memory");
        return 1;
    }
    /* Handoff: every loop can take connections from another. */
    bool handoff = nworkers > 1 && cfg->accept_mode != RS_ACCEPT_REUSEPORT;
    for (unsigned i = 0; i < nworkers; i++) {
        group.loops[i] = &workers[i].loop;
        workers[i].loop.group = &group;
        workers[i].loop.max_conns = max;
        handoff = handoff && (workers[i].loop.caps & RS_CAP_HANDOFF);
    }
    group.handoff = handoff;
    if (cfg->accept_mode == RS_ACCEPT_HANDOFF && !handoff && nworkers > 1) {
        rs_log_error("--accept=handoff: the %s backend cannot pass connections between "
                     "loops here (it needs io_uring fixed-files and IORING_OP_MSG_RING "
                     "with IORING_MSG_SEND_FD, Linux 6.0+)",
                     workers[0].loop.ops->name);
        return 2;
    }
    return 0;
}

static const struct rs_backend_ops *choose_backend(struct rs_config *cfg, char *why,
                                                   size_t whylen)
{
    /* Through the table, branching on what each backend says about itself
     * (available), never on its name beyond the user's --backend. why
     * keeps the first refusal: "io_uring is unavailable (why); using
     * epoll". */
    why[0] = '\0';
    const char *want = cfg->backend == RS_BACKEND_URING   ? "uring"
                       : cfg->backend == RS_BACKEND_EPOLL ? "epoll"
                                                          : NULL;
    if (want && !rs_backend_named(want)) {
        snprintf(why, whylen, "io_uring support was not compiled in");
        return NULL;
    }
    for (size_t i = 0; rs_backends[i]; i++) {
        const struct rs_backend_ops *b = rs_backends[i];
        if (!b->name) { /* not built in */
            if (!why[0])
                snprintf(why, whylen, "io_uring support was not compiled in");
            continue;
        }
        if (want && strcmp(b->name, want) != 0)
            continue;
        char reason[200] = "";
        if (!b->available || b->available(reason, sizeof(reason)))
            return b;
        if (!why[0])
            snprintf(why, whylen, "%s", reason);
        if (want)
            return NULL;
    }
    return NULL;
}

static void release_start(bool ok)
{
    pthread_mutex_lock(&ready_mu);
    if (ok)
        go = true;
    else
        abort_start = true;
    pthread_cond_broadcast(&ready_cv);
    pthread_mutex_unlock(&ready_mu);
}

static int start_workers(struct rs_config *cfg, const struct rs_backend_ops *ops)
{
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        w->cfg = cfg;
        w->ops = ops;
        w->index = (int)i;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            rs_log_error("cannot start thread %u: %s", i, strerror(rc));
            /* Threads already started wait on the barrier; release them. */
            nworkers = i;
            release_start(false);
            return -rc;
        }
    }
    pthread_mutex_lock(&ready_mu);
    while (nready < nworkers)
        pthread_cond_wait(&ready_cv, &ready_mu);
    pthread_mutex_unlock(&ready_mu);
    return 0;
}

/* "127.0.0.1:7080" or "[::1]:7080". */
static const char *host_port(const struct rs_config *cfg, uint16_t port, char *out,
                             size_t len)
{
    const char *h = cfg->listen_host;
    bool v6 = strchr(h, ':') != NULL;
    snprintf(out, len, "%s%s%s:%u", v6 ? "[" : "", h, v6 ? "]" : "", port);
    return out;
}

static int listen_error(const struct rs_config *cfg, uint16_t port, int err)
{
    char addr[300];
    rs_log_error("cannot listen on %s: %s", host_port(cfg, port, addr, sizeof(addr)),
                 strerror(-err));
    return err;
}

static int open_listeners(struct rs_config *cfg)
{
    uint16_t port = cfg->listen_port;
    bool shared = nworkers > 1;
    if (shared) {
        /* SO_REUSEPORT would let us join another server already on this
         * port. An exclusive bind first makes "Address already in use"
         * mean what it says. */
        int fd = rs_listen_socket(cfg->listen_host, port, false, false, 1);
        if (fd < 0)
            return listen_error(cfg, port, fd);
        port = (uint16_t)rs_socket_port(fd);
        close(fd);
    }
    for (unsigned i = 0; i < nworkers; i++) {
        int fd = rs_listen_socket(cfg->listen_host, port, cfg->nodelay, shared,
                                  RS_LISTEN_BACKLOG);
        if (fd < 0)
            return listen_error(cfg, port, fd);
        workers[i].listen_fd = fd;
        if (port == 0)
            port = (uint16_t)rs_socket_port(fd);
    }
    cfg->listen_port = port;
    return 0;
}

static void print_start_line(const struct rs_config *cfg, const char *fallback_why)
{
    char desc[256] = "";
    struct rs_loop *l0 = &workers[0].loop;
    l0->ops->describe(l0, desc, sizeof(desc));
    char addr[300];
    if (fallback_why[0])
        rs_log_info("io_uring is unavailable (%s); using epoll", fallback_why);
    rs_log_info("listening on %s (backend=%s, %s, protocol=%s, threads=%u%s, "
                "max-pending=%llu, max-conns=%u, conn-limit=%u [%s], buffers=%ux%u%s)",
                host_port(cfg, cfg->listen_port, addr, sizeof(addr)), l0->ops->name, desc,
                cfg->proto ? cfg->proto->name : cfg->protocol, nworkers,
                nworkers < 2    ? ""
                : group.handoff ? ", accept=handoff"
                                : ", accept=reuseport",
                (unsigned long long)cfg->max_pending, cfg->max_conns, conn_limit,
                conn_why, cfg->buffers, cfg->buffer_size,
                cfg->sched == RS_SCHED_BATCH  ? ", sched=batch"
                : cfg->sched == RS_SCHED_AUTO ? ", sched=auto"
                                              : "");
}

int rs_server_main(struct rs_config *cfg)
{
    rs_log_level = cfg->verbose;
    raise_nofile();
    char why[200];
    const struct rs_backend_ops *ops = choose_backend(cfg, why, sizeof(why));
    if (!ops) {
        rs_log_error("io_uring is unavailable: %s (try --backend=epoll)", why);
        return 1;
    }
    nworkers = cfg->threads;
    if (nworkers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nworkers = n > 0 ? (unsigned)n : 1;
    }
    workers = calloc(nworkers, sizeof(*workers));
    if (!workers) {
        rs_log_error("out of memory");
        return 1;
    }
    for (unsigned i = 0; i < nworkers; i++) {
        workers[i].listen_fd = -1;
        rs_stats_board_init(&workers[i].board);
    }
    int status = 0;
    sigset_t sigs;
    block_signals(&sigs);
    if (open_listeners(cfg) < 0 || start_workers(cfg, ops) < 0) {
        status = 1;
        release_start(false);
    } else {
        for (unsigned i = 0; i < nworkers; i++) {
            if (workers[i].init_rc < 0 && status == 0) {
                rs_log_error("%s backend: %s", ops->name, workers[i].err);
                status = workers[i].init_rc == -EINVAL ? 2 : 1;
            }
        }
        if (status == 0)
            status = setup_group(cfg);
        if (status == 0 && group.handoff) {
            /* Only loop 0 listens: the others leave the SO_REUSEPORT
             * group before anyone knows the port. */
            for (unsigned i = 1; i < nworkers; i++) {
                close(workers[i].listen_fd);
                workers[i].listen_fd = -1;
            }
        }
        if (status == 0)
            print_start_line(cfg, why);
        release_start(status == 0);
        if (status == 0)
            supervise(cfg, &sigs);
    }
    struct rs_stats sum = {0};
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        if (w->thread)
            pthread_join(w->thread, NULL);
        if (w->listen_fd >= 0)
            close(w->listen_fd);
        if (w->started) {
            if (w->run_rc < 0)
                status = 1;
            rs_stats_add(&sum, &w->loop.stats);
        }
    }
    for (unsigned i = 0; i < nworkers; i++) {
        struct worker *w = &workers[i];
        if (w->started) {
            w->started = false;
            rs_loop_fini(&w->loop);
        }
    }
    if (status == 0)
        rs_stats_print(stderr, &sum, cfg->stats_json ? RS_STATS_JSON : RS_STATS_TEXT);
    for (unsigned i = 0; i < nworkers; i++)
        rs_stats_board_fini(&workers[i].board);
    free(workers);
    workers = NULL;
    free(group.loops);
    group.loops = NULL;
    return status;
}
