#include "server.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
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
#include "protocol.h"

/* Descriptors kept back from the default --max-conns, beyond those the
 * server holds once set up (stdio, listeners, epoll sets or rings, wake-up
 * eventfds, the HTTP roots: counted, see fds_in_use): room for what it
 * opens later (files being served, a connection accepted only to be
 * rejected, the exclusive bind of a port). */
#define FD_RESERVE 64

struct worker {
    struct rs_loop loop;
    struct rs_server *srv;
    struct rs_stats_board board; /* --stats-interval snapshots */
    pthread_t thread;
    int listen_fd;
    bool listen_direct; /* listen_fd is a direct descriptor of this loop's */
    bool listen_asked;  /* open_direct_listeners() asks this loop for one */
    /* A duplicate of the loop's wake-up eventfd, for rs_server_stop: the
     * loop's thread closes its own in rs_loop_fini, while another thread
     * (a signal handler) may still ask it to stop; this one stays open
     * until the server is freed. */
    int wake_fd;
    int index;
    int init_rc;
    int run_rc;
    char err[256];
    bool started;
    bool joined;
};

/* --stats-interval: the waiting thread sums the loops' latest snapshots
 * and prints the difference to the previous sum. It never touches a loop's
 * own counters (see stats.h). */
struct interval {
    double start, prev_t, next_t, period;
    struct rs_stats prev;
};

struct rs_server {
    struct rs_config *cfg;
    const struct rs_backend_ops *ops;
    struct worker *workers;
    unsigned nworkers;
    struct rs_group group;
    /* Start barrier: every loop reports init success or failure before the
     * start-up line is printed. The same lock guards nfinished. */
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* nready, go, abort_start */
    pthread_cond_t fin; /* nfinished; waits on CLOCK_MONOTONIC */
    unsigned nready, nfinished;
    bool go, abort_start;
    /* Direct listeners: the address every asked loop listens at, and how
     * many answered (listen_asked). */
    struct sockaddr_storage listen_addr;
    socklen_t listen_len;
    unsigned listen_flags, nlistened;
    bool stopping; /* the others told to stop after a loop failed */
    atomic_bool any_failed;
    struct interval iv;
    /* What this server can hold at most, why, and what it holds by
     * default; computed once every loop is set up (setup_group). */
    uint32_t conn_limit, conn_default;
    char conn_why[160];
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An interval line goes where the server's log goes: to the program's
 * sink when it has one (as information, whatever the level: the program
 * asked for the lines with stats_interval_ms), else to stderr as
 * ringserve has always printed it. */
static void print_interval_line(const struct rs_config *cfg,
                                const struct rs_stats_line *how,
                                const struct rs_stats *prev, const struct rs_stats *cur)
{
    if (!cfg->log_fn) {
        rs_stats_print_interval(stderr, how, prev, cur);
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return;
    rs_stats_print_interval(m, how, prev, cur);
    if (fclose(m) == 0 && buf) {
        static const char prefix[] = "ringserve: ";
        char *line = strncmp(buf, prefix, sizeof(prefix) - 1) == 0
                         ? buf + sizeof(prefix) - 1
                         : buf;
        line[strcspn(line, "\n")] = '\0';
        cfg->log_fn(cfg->log_data, RS_LOG_INFO, line);
    }
    free(buf);
}

static void print_interval(struct rs_server *srv, double now)
{
    struct interval *iv = &srv->iv;
    struct rs_stats cur = {0}, one;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        if (!srv->workers[i].started)
            continue;
        rs_stats_board_read(&srv->workers[i].board, &one);
        rs_stats_add(&cur, &one);
    }
    struct rs_stats_line how = {
        .format = srv->cfg->stats_json ? RS_STATS_JSON : RS_STATS_TEXT,
        .backend = srv->ops->name,
        .wait_call = srv->ops->wait_call ? srv->ops->wait_call : "wait",
        .t = now - iv->start,
        .dt = now - iv->prev_t,
    };
    print_interval_line(srv->cfg, &how, &iv->prev, &cur);
    iv->prev = cur;
    iv->prev_t = now;
    /* The next line one period on; after a stall, from now. */
    iv->next_t += iv->period;
    if (iv->next_t <= now)
        iv->next_t = now + iv->period;
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

static void worker_finished(struct worker *w)
{
    struct rs_server *srv = w->srv;
    pthread_mutex_lock(&srv->mu);
    srv->nfinished++;
    pthread_cond_broadcast(&srv->fin);
    pthread_mutex_unlock(&srv->mu);
}

/* The server whose loop this thread runs (NULL on the program's own
 * threads): waiting for a server's loops from one of them would wait for
 * the very thread that waits. */
static _Thread_local const struct rs_server *own_server;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rs_server *srv = w->srv;
    const struct rs_config *cfg = srv->cfg;
    own_server = srv;
    rs_log_bind(cfg); /* this thread logs for its server (log.h) */
    if (cfg->pin)
        pin_self(w->index);
    /* The ring is created by the thread that uses it: SINGLE_ISSUER and
     * DEFER_TASKRUN require it. */
    w->init_rc =
        cfg->sched == RS_SCHED_BATCH ? sched_batch_self(w->err, sizeof(w->err)) : 0;
    if (w->init_rc == 0)
        w->init_rc = rs_loop_init(&w->loop, srv->ops, cfg, w->err, sizeof(w->err));
    if (w->init_rc == 0) {
        w->wake_fd = fcntl(w->loop.wake_fd, F_DUPFD_CLOEXEC, 0);
        if (w->wake_fd < 0) {
            w->init_rc = -errno;
            snprintf(w->err, sizeof(w->err), "eventfd: %s", strerror(errno));
            rs_loop_fini(&w->loop);
        }
    }
    w->loop.index = w->index;
    if (cfg->stats_interval_ms)
        w->loop.board = &w->board;
    pthread_mutex_lock(&srv->mu);
    if (w->init_rc == 0)
        w->started = true;
    srv->nready++;
    pthread_cond_broadcast(&srv->cv);
    while (!srv->go && !srv->abort_start) {
        if (w->listen_asked) {
            /* Only this thread may use its ring (SINGLE_ISSUER). */
            w->listen_asked = false;
            pthread_mutex_unlock(&srv->mu);
            int fd = w->loop.ops->listen(&w->loop, (struct sockaddr *)&srv->listen_addr,
                                         srv->listen_len, srv->listen_flags,
                                         RS_LISTEN_BACKLOG);
            pthread_mutex_lock(&srv->mu);
            w->listen_fd = fd;
            w->listen_direct = fd >= 0;
            srv->nlistened++;
            pthread_cond_broadcast(&srv->cv);
            continue;
        }
        pthread_cond_wait(&srv->cv, &srv->mu);
    }
    bool run = srv->go && w->init_rc == 0;
    pthread_mutex_unlock(&srv->mu);
    if (run) {
        /* With handoff only loop 0 listens; the others take what it
         * hands them. */
        bool inbox = srv->group.handoff && w->index > 0;
        int rc = rs_listener_start(&w->loop, inbox ? RS_FD_INBOX : w->listen_fd,
                                   w->listen_direct);
        if (rc == 0 && !inbox)
            w->listen_fd = -1; /* the listener owns it now */
        w->run_rc = rc < 0 ? rc : rs_loop_run(&w->loop);
        if (w->run_rc < 0)
            atomic_store(&srv->any_failed, true);
    }
    /* Everything the loop owns is finished here, on its own thread: the
     * ring of an io_uring loop (registered fd, SINGLE_ISSUER) cannot be
     * driven from any other, so requests still in flight could never be
     * collected there. */
    if (w->init_rc == 0)
        rs_loop_fini(&w->loop);
    worker_finished(w);
    return NULL;
}

static uint64_t nofile_soft(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1u << 20;
    return rl.rlim_cur;
}

/* Descriptors the process holds now; an estimate when /proc is missing. */
static uint64_t fds_in_use(unsigned nworkers)
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

/* With direct descriptors (io_uring fixed-files) a connection lives in its
 * ring's private table, which the kernel sizes up to RLIMIT_NOFILE per
 * ring: N loops hold N tables, less a small reserve each for rejecting and
 * handing over. Otherwise every connection is a process descriptor, and
 * RLIMIT_NOFILE bounds them all (the program may raise it first: ringserve
 * raises the soft limit to the hard one, core/main.c). The
 * default then leaves out the descriptors the server already holds and
 * FD_RESERVE more (half of what is left when that is small), so that it is
 * reached before accept(2) runs out of descriptors: at the default a new
 * connection is rejected at once. Out of descriptors before the cap (a cap
 * set close to the limit, or `max`), accepting pauses and the clients wait
 * in the backlog until a connection closes. */
static void conn_limits(struct rs_server *srv)
{
    struct rs_loop *l0 = &srv->workers[0].loop;
    unsigned k = l0->proto && l0->proto->descriptors_per_conn > 1
                     ? l0->proto->descriptors_per_conn
                     : 1;
    /* What the loops hold of their own (an open-file cache) is not theirs
     * to give to connections. */
    uint64_t fixed =
        l0->proto && l0->proto->descriptors_per_loop
            ? (uint64_t)srv->nworkers * l0->proto->descriptors_per_loop(srv->cfg)
            : 0;
    char per[64] = "", held[48] = "";
    if (k > 1)
        snprintf(per, sizeof(per), ", %u per %s connection", k, l0->proto->name);
    if (fixed)
        snprintf(held, sizeof(held), ", %" PRIu64 " held by the loops", fixed);
    if (l0->caps & RS_CAP_DIRECT_FD) {
        uint64_t sum = 0;
        for (unsigned i = 0; i < srv->nworkers; i++)
            sum += rs_listener_room(&srv->workers[i].loop);
        sum = (sum > fixed ? sum - fixed : 0) / k;
        srv->conn_limit = srv->conn_default =
            sum > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)sum;
        snprintf(srv->conn_why, sizeof(srv->conn_why),
                 "%u ring%s x %u direct descriptors%s%s", srv->nworkers,
                 srv->nworkers == 1 ? "" : "s", rs_listener_room(l0), per, held);
        return;
    }
    uint64_t n = nofile_soft();
    uint64_t used = fds_in_use(srv->nworkers);
    used += fixed;
    uint64_t left = n > used ? n - used : 0;
    uint64_t d = (left > FD_RESERVE * 2 ? left - FD_RESERVE : left / 2) / k;
    n = (n > fixed ? n - fixed : 0) / k;
    uint32_t limit = n > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)n;
    srv->conn_limit = limit;
    srv->conn_default = d == 0 ? 1 : d > limit ? limit : (uint32_t)d;
    if (k > 1)
        snprintf(srv->conn_why, sizeof(srv->conn_why),
                 "RLIMIT_NOFILE, %u descriptors per %s connection%s", k, l0->proto->name,
                 held);
    else
        snprintf(srv->conn_why, sizeof(srv->conn_why),
                 "RLIMIT_NOFILE, a descriptor per connection%s", held);
}

/* Handoff: several loops, each able to take connections from another,
 * and not --accept=reuseport. Only loop 0 then listens. */
static bool handoff_possible(const struct rs_server *srv)
{
    bool handoff = srv->nworkers > 1 && srv->cfg->accept_mode != RS_ACCEPT_REUSEPORT;
    for (unsigned i = 0; i < srv->nworkers; i++)
        handoff = handoff && (srv->workers[i].loop.caps & RS_CAP_HANDOFF);
    return handoff;
}

/* --max-conns against what the backend can hold; the group set up. 0 or
 * -EINVAL (--max-conns asks for more than that) or -ENOMEM. */
static int setup_group(struct rs_server *srv)
{
    struct rs_config *cfg = srv->cfg;
    struct worker *workers = srv->workers;
    unsigned n = srv->nworkers;
    conn_limits(srv);
    uint32_t max = cfg->max_conns;
    if (max == RS_MAX_CONNS_LIMIT) {
        max = srv->conn_limit;
    } else if (max > srv->conn_limit) {
        rs_log_error("--max-conns=%u is more than this server can hold: %u (%s)%s", max,
                     srv->conn_limit, srv->conn_why,
                     (workers[0].loop.caps & RS_CAP_DIRECT_FD)
                         ? "; add --threads"
                         : "; use a backend with direct descriptors and --threads, "
                           "or raise the hard limit");
        return -EINVAL;
    } else if (max == 0) {
        max = srv->conn_default;
    }
    cfg->max_conns = max;
    struct rs_group *group = &srv->group;
    group->n = n;
    group->max_conns = max;
    group->loops = calloc(n, sizeof(*group->loops));
    if (!group->loops) {
        rs_log_error("out of memory");
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++) {
        group->loops[i] = &workers[i].loop;
        workers[i].loop.group = group;
        workers[i].loop.max_conns = max;
    }
    bool handoff = group->handoff = handoff_possible(srv);
    if (cfg->accept_mode == RS_ACCEPT_HANDOFF && !handoff && n > 1) {
        rs_log_error("--accept=handoff: the %s backend cannot pass connections between "
                     "loops here (see what it needs in --help)",
                     workers[0].loop.ops->name);
        return -EINVAL;
    }
    return 0;
}

/* For the error: the first other backend that can run here. */
static const char *other_backend(const char *name)
{
    const struct rs_backend_ops *b;
    for (size_t i = 0; (b = rs_backend_at(i)) != NULL; i++)
        if (strcmp(b->name, name) != 0 && (!b->available || b->available(NULL, 0)))
            return b->name;
    return NULL;
}

static void release_start(struct rs_server *srv, bool ok)
{
    pthread_mutex_lock(&srv->mu);
    if (ok)
        srv->go = true;
    else
        srv->abort_start = true;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
}

/* The loop threads block every signal: a process signal must reach the
 * program's threads, never interrupt a loop (which stops through its
 * wake-up eventfd instead, rs_server_stop). */
static int start_workers(struct rs_server *srv)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    unsigned started = 0;
    for (; started < srv->nworkers; started++) {
        struct worker *w = &srv->workers[started];
        rc = -pthread_create(&w->thread, NULL, worker_main, w);
        if (rc < 0) {
            rs_log_error("cannot start thread %u: %s", started, strerror(-rc));
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_lock(&srv->mu);
    if (rc < 0) {
        /* Threads already started wait on the barrier; release them. The
         * others never ran: they count as joined and finished. */
        for (unsigned i = started; i < srv->nworkers; i++) {
            srv->workers[i].joined = true;
            srv->nready++;
            srv->nfinished++;
        }
    }
    while (srv->nready < srv->nworkers)
        pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    return rc;
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

/* Each loop that accepts makes its listener as a direct descriptor, on its
 * own thread (its ring has a single issuer). The port is taken first by a
 * socket of ours that is bound but not listening (SO_REUSEADDR): it fails
 * as a plain listener would when another process listens there, it learns
 * the port the kernel picks for port 0 (a direct socket has no
 * getsockname before Linux 6.19), and it keeps anyone else off the port
 * until the loops listen, which SO_REUSEADDR lets them do next to it. */
static int open_direct_listeners(struct rs_server *srv)
{
    struct rs_config *cfg = srv->cfg;
    unsigned n = handoff_possible(srv) ? 1 : srv->nworkers;
    int holder = rs_listen_socket(cfg->listen_host, cfg->listen_port, false, false, -1);
    if (holder < 0)
        return listen_error(cfg, cfg->listen_port, holder);
    srv->listen_len = sizeof(srv->listen_addr);
    if (getsockname(holder, (struct sockaddr *)&srv->listen_addr, &srv->listen_len) < 0) {
        int err = -errno;
        close(holder);
        return listen_error(cfg, cfg->listen_port, err);
    }
    cfg->listen_port = (uint16_t)rs_socket_port(holder);
    srv->listen_flags = (n > 1 ? RS_LISTEN_REUSEPORT : 0) |
                        (cfg->nodelay ? RS_LISTEN_NODELAY : 0) |
                        (srv->listen_addr.ss_family == AF_INET6 ? RS_LISTEN_V6ONLY : 0);
    pthread_mutex_lock(&srv->mu);
    srv->nlistened = 0;
    for (unsigned i = 0; i < n; i++)
        srv->workers[i].listen_asked = true;
    pthread_cond_broadcast(&srv->cv);
    while (srv->nlistened < n)
        pthread_cond_wait(&srv->cv, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    close(holder);
    for (unsigned i = 0; i < n; i++)
        if (srv->workers[i].listen_fd < 0)
            return listen_error(cfg, cfg->listen_port, srv->workers[i].listen_fd);
    return 0;
}

static int open_listeners(struct rs_server *srv)
{
    struct rs_config *cfg = srv->cfg;
    if (srv->workers[0].loop.caps & RS_CAP_LISTEN_DIRECT)
        return open_direct_listeners(srv);
    uint16_t port = cfg->listen_port;
    bool shared = srv->nworkers > 1;
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
    for (unsigned i = 0; i < srv->nworkers; i++) {
        int fd = rs_listen_socket(cfg->listen_host, port, cfg->nodelay, shared,
                                  RS_LISTEN_BACKLOG);
        if (fd < 0)
            return listen_error(cfg, port, fd);
        int rc = rs_listen_notsent_lowat(fd, cfg->notsent_lowat);
        if (rc < 0) {
            close(fd);
            return listen_error(cfg, port, rc);
        }
        srv->workers[i].listen_fd = fd;
        if (port == 0)
            port = (uint16_t)rs_socket_port(fd);
    }
    cfg->listen_port = port;
    return 0;
}

static void print_start_line(const struct rs_server *srv, const char *fallback_why)
{
    const struct rs_config *cfg = srv->cfg;
    char desc[256] = "";
    struct rs_loop *l0 = &srv->workers[0].loop;
    l0->ops->describe(l0, desc, sizeof(desc));
    char addr[300];
    if (fallback_why[0])
        rs_log_info("%s; using %s", fallback_why, l0->ops->name);
    rs_log_info("listening on %s (backend=%s, %s, protocol=%s, threads=%u%s, "
                "max-pending=%llu, max-conns=%u, conn-limit=%u [%s], buffers=%ux%u%s)",
                host_port(cfg, cfg->listen_port, addr, sizeof(addr)), l0->ops->name, desc,
                cfg->proto ? cfg->proto->name : cfg->protocol, srv->nworkers,
                srv->nworkers < 2    ? ""
                : srv->group.handoff ? ", accept=handoff"
                                     : ", accept=reuseport",
                (unsigned long long)cfg->max_pending, cfg->max_conns, srv->conn_limit,
                srv->conn_why, cfg->buffers, cfg->buffer_size,
                cfg->sched == RS_SCHED_BATCH  ? ", sched=batch"
                : cfg->sched == RS_SCHED_AUTO ? ", sched=auto"
                                              : "");
}

static void server_free(struct rs_server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        w->started = false; /* its thread finished the loop (worker_main) */
        if (w->wake_fd >= 0)
            close(w->wake_fd);
        if (w->listen_fd >= 0 && !w->listen_direct)
            close(w->listen_fd); /* a direct one went with its ring */
        rs_stats_board_fini(&w->board);
    }
    pthread_cond_destroy(&srv->fin);
    pthread_cond_destroy(&srv->cv);
    pthread_mutex_destroy(&srv->mu);
    free(srv->group.loops);
    free(srv->workers);
    free(srv);
}

static void join_all(struct rs_server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (!w->joined) {
            pthread_join(w->thread, NULL);
            w->joined = true;
        }
    }
}

static struct rs_server *server_new(struct rs_config *cfg,
                                    const struct rs_backend_ops *ops)
{
    struct rs_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    unsigned n = cfg->threads;
    if (n == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n = online > 0 ? (unsigned)online : 1;
    }
    srv->workers = calloc(n, sizeof(*srv->workers));
    if (!srv->workers) {
        free(srv);
        return NULL;
    }
    srv->cfg = cfg;
    srv->ops = ops;
    srv->nworkers = n;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->fin, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&srv->any_failed, false);
    for (unsigned i = 0; i < n; i++) {
        struct worker *w = &srv->workers[i];
        w->srv = srv;
        w->index = (int)i;
        w->listen_fd = -1;
        w->wake_fd = -1;
        rs_stats_board_init(&w->board);
    }
    return srv;
}

static int server_start(struct rs_config *cfg, struct rs_server **out)
{
    *out = NULL;
    char why[200];
    const struct rs_backend_ops *ops = rs_backend_choose(cfg->backend, why, sizeof(why));
    if (!ops) {
        const char *other = other_backend(cfg->backend);
        rs_log_error("%s%s%s%s", why, other ? " (try --backend=" : "", other ? other : "",
                     other ? ")" : "");
        return -ENOSYS;
    }
    struct rs_server *srv = server_new(cfg, ops);
    if (!srv) {
        rs_log_error("out of memory");
        return -ENOMEM;
    }
    /* The loops first: whether they listen on direct descriptors is
     * their backend's to say. */
    int rc = start_workers(srv);
    for (unsigned i = 0; rc == 0 && i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (w->init_rc < 0) {
            rs_log_error("%s backend: %s", ops->name, w->err);
            rc = w->init_rc;
        }
    }
    if (rc == 0)
        rc = open_listeners(srv);
    if (rc == 0)
        rc = setup_group(srv);
    if (rc == 0 && srv->group.handoff) {
        /* Only loop 0 listens: the others leave the SO_REUSEPORT group
         * before anyone knows the port. */
        for (unsigned i = 1; i < srv->nworkers; i++) {
            if (srv->workers[i].listen_fd >= 0)
                close(srv->workers[i].listen_fd); /* never a direct one here */
            srv->workers[i].listen_fd = -1;
        }
    }
    if (rc == 0)
        print_start_line(srv, why);
    srv->iv.period = cfg->stats_interval_ms / 1000.0;
    srv->iv.start = srv->iv.prev_t = mono_s();
    srv->iv.next_t = srv->iv.start + srv->iv.period;
    release_start(srv, rc == 0);
    if (rc < 0) {
        join_all(srv);
        server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

/* The calling thread logs for this server while inside the call (log.h). */
int rs_server_start(struct rs_config *cfg, struct rs_server **out)
{
    const struct rs_config *prev = rs_log_bind(cfg);
    int rc = server_start(cfg, out);
    rs_log_bind(prev);
    return rc;
}

uint16_t rs_server_port(const struct rs_server *srv)
{
    return srv->cfg->listen_port;
}

/* Async-signal-safe. Not rs_loop_request_stop: a loop that finished has
 * closed its own eventfd (its number may be reused already); the
 * server's duplicate is still open. */
void rs_server_stop(struct rs_server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (!w->started)
            continue;
        w->loop.stop_requested = 1;
        uint64_t one = 1;
        ssize_t rc = write(w->wake_fd, &one, sizeof(one));
        (void)rc; /* a full counter is a pending wake-up already */
    }
}

static struct timespec mono_ts(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static int server_wait(struct rs_server *srv, int timeout_ms)
{
    bool interval = srv->cfg->stats_interval_ms > 0;
    double deadline = timeout_ms < 0 ? 0 : mono_s() + timeout_ms / 1000.0;
    pthread_mutex_lock(&srv->mu);
    for (;;) {
        if (atomic_load(&srv->any_failed) && !srv->stopping) {
            /* One loop died: stop the others rather than serve a fraction
             * of the connections. */
            srv->stopping = true;
            rs_server_stop(srv);
        }
        if (srv->nfinished == srv->nworkers)
            break;
        double now = mono_s();
        if (interval && now >= srv->iv.next_t) {
            pthread_mutex_unlock(&srv->mu);
            print_interval(srv, now);
            pthread_mutex_lock(&srv->mu);
            continue;
        }
        if (timeout_ms >= 0 && now >= deadline)
            break;
        /* A failed loop sets any_failed before it counts as finished, so
         * the wake-up that follows sees it. */
        double until = timeout_ms < 0 ? now + 3600 : deadline;
        if (interval && srv->iv.next_t < until)
            until = srv->iv.next_t;
        struct timespec ts = mono_ts(until);
        pthread_cond_timedwait(&srv->fin, &srv->mu, &ts);
    }
    bool done = srv->nfinished == srv->nworkers;
    pthread_mutex_unlock(&srv->mu);
    return done ? 0 : -ETIMEDOUT;
}

int rs_server_wait(struct rs_server *srv, int timeout_ms)
{
    if (own_server == srv) {
        rs_log_error("rs_server_wait from one of the server's own loops (a callback): "
                     "refused, it would wait for itself");
        return -EDEADLK;
    }
    const struct rs_config *prev = rs_log_bind(srv->cfg);
    int rc = server_wait(srv, timeout_ms);
    rs_log_bind(prev);
    return rc;
}

int rs_server_destroy(struct rs_server *srv, struct rs_stats *totals)
{
    if (own_server == srv) {
        rs_log_error("rs_server_destroy from one of the server's own loops (a callback): "
                     "refused, it would wait for itself; rs_server_stop, then destroy "
                     "from the program's thread");
        return -EDEADLK;
    }
    const struct rs_config *prev = rs_log_bind(srv->cfg);
    rs_server_stop(srv);
    server_wait(srv, -1);
    join_all(srv);
    int rc = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        if (!w->started)
            continue;
        if (w->run_rc < 0)
            rc = -EIO;
        if (totals)
            rs_stats_add(totals, &w->loop.stats);
    }
    server_free(srv);
    rs_log_bind(prev);
    return rc;
}
