/* ringbench: a load generator for TCP echo (and discard, chargen) servers.
 *
 * It shares nothing with the server it measures: plain non-blocking sockets
 * and its own epoll loop per thread, so a bug in the server's event loop
 * cannot hide in the tool that measures it.
 *
 * Shape of a run. The main thread is the controller: it parses the command
 * line, starts --threads workers, and moves every worker through the phases
 * connect -> warmup -> measure -> stop by storing the phase in an atomic and
 * kicking an eventfd that sits in every worker's epoll set. Workers own their
 * connections outright; the only things they share are that phase, a few
 * counters read for the progress line, and the first error message.
 *
 * A worker turn is one epoll_wait (edge-triggered, each socket registered
 * once for IN|OUT|RDHUP, no epoll_ctl per message), then for each ready
 * socket: read until EAGAIN or a short read, verify every byte against the
 * connection's stream (bench_pattern.h), retire the messages whose last byte
 * came back (one latency sample each, into the worker's histogram), start the
 * next messages and send speculatively; EPOLLOUT is only awaited after a
 * short send. Send data is generated on the fly from (connection, offset) into
 * one scratch buffer per worker, so nothing is allocated per message.
 *
 * Counting. With --duration, a round trip counts if it completes while the
 * phase is "measure". With --rounds, a message counts if it *starts* during
 * "measure", each connection starts exactly N counted messages, and the run
 * ends when all have come back: fixed work, for instruction or syscall counts.
 *
 * Open loop (--rate). A closed-loop client sends the next message only after
 * the previous one returned, so when the server stalls the client stops
 * offering load and the stall shows up as one slow sample instead of the many
 * it delayed ("coordinated omission"). With --rate, each worker follows a
 * fixed schedule of intended send times, round-robin over its connections;
 * a message that cannot go out on time (pipeline full) waits in a per
 * connection backlog, and its latency is measured from the intended time.
 *
 * This file: the controller and main. ringbench_conn.c is a worker and
 * the connections it drives, ringbench_opts.c parses the command line,
 * ringbench_report.c prints the result (their declarations in
 * ringbench.h). */
#include "ringbench.h"

#include "bench_hist.h"
#include "bench_pattern.h"
#include "bench_procs.h"
#include "bench_server.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Shared with the workers (ringbench.h says what each is) */
_Atomic int g_phase = PH_CONNECT;
_Atomic uint32_t g_connected;
_Atomic uint32_t g_errors;
_Atomic bool g_failed;
/* Stalled connections: counted, the first few named on stderr, the first
 * one quoted in the final error. A stall does not stop the run. */
_Atomic uint32_t g_stalls;
char g_stallmsg[400];
_Atomic uint32_t g_workers_done;
char g_errmsg[512];
int g_wake_fd = -1; /* controller -> workers: the phase changed */
int g_done_fd = -1; /* workers -> controller: finished or failed */
volatile sig_atomic_t g_interrupted;

static void set_phase(int ph)
{
    atomic_store(&g_phase, ph);
    efd_kick(g_wake_fd);
}

/* -------------------------------------------------------- controller */

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
    efd_kick(g_done_fd);
}

/* What a --processes child sends its parent, then its histogram. */
struct child_report {
    double seconds, connect_s;
    uint64_t rt, bytes, fair_min, fair_max, zero, held;
    uint32_t errors, stalls;
    bool interrupted, measured;
    char error[sizeof(g_errmsg) + sizeof(g_stallmsg) + 100];
};

static struct bench_child g_child_self;
static struct bench_child *g_child; /* set in a --processes child */

/* The server while the connections are held. */
static void sample_server(const struct opts *o, struct result *r)
{
    r->have_sock = bench_sockstat_read(&r->sock);
    if (!o->server_pid)
        return;
    r->rss_kib = bench_proc_rss_kib(o->server_pid);
    r->fds = bench_proc_fd_count(o->server_pid);
}

static uint64_t sum_live(struct worker *ws, uint32_t n, bool bytes)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += atomic_load_explicit(bytes ? &ws[i].live_bytes : &ws[i].live_rt,
                                  memory_order_relaxed);
    return s;
}

/* Wait until `deadline` (ns, 0 = none), a worker reports, or a signal. */
static void controller_wait(uint64_t deadline, int max_ms)
{
    int ms = max_ms;
    if (deadline) {
        uint64_t now = now_ns();
        uint64_t left = deadline > now ? deadline - now : 0;
        if (left / 1000000 < (uint64_t)ms)
            ms = (int)((left + 999999) / 1000000);
    }
    struct pollfd pfd = {.fd = g_done_fd, .events = POLLIN};
    if (poll(&pfd, 1, ms) > 0) {
        uint64_t v;
        ssize_t r = read(g_done_fd, &v, sizeof(v));
        (void)r;
    }
}

struct progress {
    bool on;
    uint64_t next, last_rt, last_bytes, last_t;
};

static void progress_tick(struct progress *p, const struct opts *o, struct worker *ws,
                          const char *what, uint64_t t_start)
{
    if (!p->on)
        return;
    uint64_t now = now_ns();
    if (now < p->next)
        return;
    p->next = now + NS_PER_S;
    uint64_t rt = sum_live(ws, o->threads, false), bytes = sum_live(ws, o->threads, true);
    double dt = p->last_t ? (double)(now - p->last_t) / 1e9 : 0;
    if (dt > 0 && rt >= p->last_rt && bytes >= p->last_bytes)
        fprintf(stderr, "\r\033[K[%6.1fs] %-9s %10.0f rt/s %9.2f MB/s  %u/%u connected",
                (double)(now - t_start) / 1e9, what, (double)(rt - p->last_rt) / dt,
                (double)(bytes - p->last_bytes) / dt / 1e6,
                atomic_load_explicit(&g_connected, memory_order_relaxed), o->connections);
    else
        fprintf(stderr, "\r\033[K[%6.1fs] %-9s %u/%u connected",
                (double)(now - t_start) / 1e9, what,
                atomic_load_explicit(&g_connected, memory_order_relaxed), o->connections);
    p->last_rt = rt;
    p->last_bytes = bytes;
    p->last_t = now;
}

/* Does a --duration window that ended at `end` still hold nothing for some
 * connection (for any, with --rate)? Then it runs on until every connection
 * has something measured, but for no longer than the stall timeout (by
 * then a connection still waiting is a stall). A window the server or this
 * client spent without CPU (a loaded machine) is merely longer; a
 * connection the server never serves still ends the run with nothing
 * (`zero`). */
static bool window_empty(const struct opts *o, struct worker *ws, uint64_t end)
{
    /* Open loop (--rate): a connection's turn may not come in a window,
     * so only a window with nothing at all runs on. */
    if (o->rate > 0 && sum_live(ws, o->threads, !round_trips(o)))
        return false;
    uint64_t served = 0, conns = 0;
    for (uint32_t i = 0; i < o->threads; i++) {
        served += atomic_load_explicit(&ws[i].live_served, memory_order_relaxed);
        conns += ws[i].nconns;
    }
    if (o->rate <= 0 && served >= conns)
        return false;
    return now_ns() < end + (uint64_t)(o->stall_timeout * 1e9);
}

static bool should_stop(void)
{
    return g_interrupted || atomic_load(&g_failed);
}

/* CPU and syscalls of the server over the measured interval. */
static void server_cpu(const struct opts *o, struct result *r,
                       const struct bench_proc_usage *cpu0,
                       const struct bench_proc_usage *cpu1, long long sys)
{
    if (!o->server_pid)
        return;
    if (cpu0->utime >= 0 && cpu1->utime >= 0) {
        long hz = sysconf(_SC_CLK_TCK);
        double tick = 1.0 / (double)(hz > 0 ? hz : 100);
        r->user_s = (double)(cpu1->utime - cpu0->utime) * tick;
        r->sys_s = (double)(cpu1->stime - cpu0->stime) * tick;
        r->cpu_s = r->user_s + r->sys_s;
        r->have_cpu = r->cpu_s >= 0;
        if (r->rt)
            r->cpu_us_per_rt = r->cpu_s * 1e6 / (double)r->rt;
        if (cpu0->ctxsw >= 0 && cpu1->ctxsw >= cpu0->ctxsw)
            r->ctxsw = cpu1->ctxsw - cpu0->ctxsw;
    }
    if (sys >= 0) {
        r->syscalls = sys;
        r->have_sys = true;
        if (r->rt)
            r->syscalls_per_rt = (double)sys / (double)r->rt;
    } else if (!o->quiet) {
        fprintf(stderr, "ringbench: note: perf stat unavailable or failed; syscalls "
                        "per round trip n/a\n");
    }
}

/* Has every connection of this process stalled (each is closed when it
 * does)? */
static bool all_stalled(const struct worker *ws, uint32_t started)
{
    uint64_t conns = 0;
    for (uint32_t i = 0; i < started; i++)
        conns += ws[i].nconns;
    return conns > 0 && atomic_load(&g_stalls) >= conns;
}

/* Why this run failed, or "": the first error; else stalled connections,
 * or nothing measured at all (a broken run must never read as a good one). */
static void verdict(const struct opts *o, const struct result *r, uint32_t stalls,
                    bool measured, char *error, size_t len)
{
    error[0] = '\0';
    if (atomic_load(&g_failed) && g_errmsg[0])
        snprintf(error, len, "%s", g_errmsg);
    else if (stalls)
        snprintf(error, len, "%u of %u connections stalled; first: %s", stalls,
                 o->connections, g_stallmsg);
    else if (!g_interrupted && measured && (round_trips(o) ? !r->rt : !r->bytes))
        snprintf(error, len, "no %s measured in %.3f s",
                 round_trips(o) ? "round trips" : "bytes", r->seconds);
}

/* Report; the exit status. */
static int conclude(const struct opts *o, const struct result *r, uint32_t errors,
                    uint32_t stalls, const char *error)
{
    if (error[0])
        fprintf(stderr, "ringbench: FAILED: %s\n", error);
    else if (g_interrupted)
        fprintf(stderr, "ringbench: interrupted\n");
    if (o->json)
        rb_report_json(o, r, errors, stalls, error[0] ? error : NULL);
    else
        rb_report_text(o, r, errors, stalls);
    fflush(stdout);
    if (error[0] || errors)
        return 1;
    return g_interrupted ? 130 : 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s,
                          .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !g_interrupted)
        ;
}

/* --processes: fork the children, keep them in step, merge what they
 * measured. Returns the exit status, or -1 in a child (which then runs
 * its slice; see bench_procs.h). */
static int run_parent(struct opts *o)
{
    struct result r = {
        .fair_min = UINT64_MAX, .rss_kib = -1, .rss0_kib = -1, .fds = -1, .ctxsw = -1};
    if (o->server_pid)
        r.rss0_kib = bench_proc_rss_kib(o->server_pid);
    fflush(stdout);
    fflush(stderr);
    struct bench_procs p;
    struct bench_child self;
    int rc = bench_procs_spawn(&p, o->processes, &self);
    if (rc < 0) {
        fprintf(stderr, "ringbench: cannot start %u processes: %s\n", o->processes,
                strerror(-rc));
        return 1;
    }
    if (rc == 1) {
        uint32_t first = (uint32_t)((uint64_t)o->connections * self.index / o->processes);
        uint32_t next =
            (uint32_t)((uint64_t)o->connections * (self.index + 1) / o->processes);
        o->id_base = first;
        o->connections = next - first;
        o->server_pid = 0; /* the parent watches the server */
        o->json = false;
        o->quiet = true;
        g_child_self = self;
        g_child = &g_child_self;
        return -1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct bench_perf perf = {.pid = -1};
    if (o->server_pid)
        bench_perf_start(&perf, o->server_pid);
    if (!o->quiet)
        fprintf(stderr, "ringbench: %u processes open %u connections...\n", o->processes,
                o->connections);
    uint64_t t_begin = now_ns();
    bool all = true;
    for (unsigned i = 0; i < p.n; i++) {
        char tag = '\0';
        if (!bench_read_all(p.up[i], &tag, 1) || tag != 'C')
            all = false;
    }
    r.connect_s = (double)(now_ns() - t_begin) / 1e9;
    bench_procs_tell(&p, all ? 'G' : 'S');
    struct bench_proc_usage cpu0 = {.utime = -1}, cpu1 = {.utime = -1};
    long long sys = -1;
    if (all && !o->rounds) {
        if (!o->quiet)
            fprintf(stderr,
                    "ringbench: all connected after %.1f s; %.0f s warm-up, %.0f s "
                    "measured\n",
                    r.connect_s, o->warmup, o->duration);
        sleep_s(o->warmup);
        if (o->server_pid) {
            bench_perf_cmd(&perf, "enable");
            if (!bench_proc_usage_read(o->server_pid, &cpu0))
                cpu0.utime = -1;
        }
    }
    struct bench_hist *total = malloc(sizeof(*total)), *h = malloc(sizeof(*h));
    if (!total || !h) {
        fprintf(stderr, "ringbench: out of memory\n");
        return 1;
    }
    bench_hist_init(total);
    r.hist = total;
    uint32_t errors = 0, stalls = 0;
    char error[sizeof(((struct child_report *)0)->error) + 32] = "";
    bool measured = true;
    for (unsigned i = 0; i < p.n; i++) {
        struct child_report rep;
        if (!bench_read_all(p.up[i], &rep, sizeof(rep)) ||
            !bench_read_all(p.up[i], h, sizeof(*h))) {
            errors++;
            if (!error[0])
                snprintf(error, sizeof(error), "process %u ended without a report", i);
            continue;
        }
        r.rt += rep.rt;
        r.bytes += rep.bytes;
        r.zero += rep.zero;
        r.held += rep.held;
        if (rep.seconds > r.seconds)
            r.seconds = rep.seconds;
        if (rep.fair_min < r.fair_min)
            r.fair_min = rep.fair_min;
        if (rep.fair_max > r.fair_max)
            r.fair_max = rep.fair_max;
        errors += rep.errors;
        stalls += rep.stalls;
        measured = measured && rep.measured;
        if (rep.interrupted)
            g_interrupted = 1;
        if (!error[0] && rep.error[0])
            snprintf(error, sizeof(error), "process %u: %s", i, rep.error);
        bench_hist_merge(total, h);
    }
    if (o->server_pid && cpu0.utime >= 0) {
        if (!bench_proc_usage_read(o->server_pid, &cpu1))
            cpu1.utime = -1;
        if (bench_perf_cmd(&perf, "disable"))
            sys = bench_perf_finish(&perf);
    }
    if (perf.pid > 0)
        bench_perf_finish(&perf);
    if (r.fair_min == UINT64_MAX)
        r.fair_min = 0;
    sample_server(o, &r); /* every connection still open */
    bench_procs_tell(&p, 'X');
    if (!bench_procs_reap(&p) && !error[0])
        snprintf(error, sizeof(error), "a process crashed");
    bench_procs_free(&p);
    server_cpu(o, &r, &cpu0, &cpu1, sys);
    if (!error[0] && !g_interrupted && measured && (round_trips(o) ? !r.rt : !r.bytes))
        snprintf(error, sizeof(error), "no %s measured in %.3f s",
                 round_trips(o) ? "round trips" : "bytes", r.seconds);
    int status = conclude(o, &r, errors, stalls, error);
    free(total);
    free(h);
    return status;
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t max_conns = 1000000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        max_conns = rl.rlim_cur > FD_RESERVE ? rl.rlim_cur - FD_RESERVE : 1;

    struct opts o;
    rb_parse_opts(&o, argc, argv, max_conns);

    signal(SIGPIPE, SIG_IGN);
    if (o.processes > 1) {
        int rc = run_parent(&o);
        if (rc >= 0)
            return rc;
        /* A child: the run below, on its slice, reporting to the parent. */
    }
    g_wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (g_wake_fd < 0 || g_done_fd < 0) {
        fprintf(stderr, "ringbench: eventfd: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct bench_perf perf = {.pid = -1};
    long long rss0 = -1;
    if (o.server_pid) {
        bench_perf_start(&perf, o.server_pid);
        rss0 = bench_proc_rss_kib(o.server_pid);
    }

    struct worker *ws = calloc(o.threads, sizeof(*ws));
    struct bench_hist *total = malloc(sizeof(*total));
    if (!ws || !total) {
        fprintf(stderr, "ringbench: out of memory\n");
        return 1;
    }
    bench_hist_init(total);
    for (uint32_t t = 0; t < o.threads; t++) {
        struct worker *w = &ws[t];
        w->idx = t;
        w->o = &o;
        uint32_t first = (uint32_t)((uint64_t)o.connections * t / o.threads);
        w->nconns = (uint32_t)((uint64_t)o.connections * (t + 1) / o.threads) - first;
        w->first_id = o.id_base + first;
        w->conns = calloc(w->nconns, sizeof(*w->conns));
        w->msgs = calloc((size_t)w->nconns * o.pipeline, sizeof(*w->msgs));
        w->rbuf = malloc(IO_BUF);
        w->wbuf = malloc(IO_BUF);
        w->hist = malloc(sizeof(*w->hist));
        /* Each pass may re-add what it takes: room for twice the connections. */
        w->ready = calloc(2 * (size_t)w->nconns, sizeof(*w->ready));
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (!w->conns || !w->msgs || !w->rbuf || !w->wbuf || !w->hist || !w->ready ||
            w->ep < 0) {
            fprintf(stderr, "ringbench: cannot set up worker %u: %s\n", t,
                    strerror(errno));
            return 1;
        }
        bench_hist_init(w->hist);
        for (uint32_t i = 0; i < w->nconns; i++) {
            w->conns[i].fd = -1;
            w->conns[i].id = w->first_id + i;
            w->conns[i].ring = &w->msgs[(size_t)i * o.pipeline];
        }
        if (o.rate > 0)
            w->rate_period = 1e9 / (o.rate * (double)w->nconns / (double)o.connections);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.ptr = NULL};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, g_wake_fd, &ev);
    }

    /* Signals go to the controller only. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    uint32_t started = 0;
    for (; started < o.threads; started++) {
        int rc = pthread_create(&ws[started].tid, NULL, rb_worker_main, &ws[started]);
        if (rc) {
            fprintf(stderr, "ringbench: pthread_create: %s\n", strerror(rc));
            atomic_store(&g_failed, true);
            set_phase(PH_STOP);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);

    struct progress prog = {.on = isatty(STDERR_FILENO) && !o.quiet};
    uint64_t t_begin = now_ns();
    while (!should_stop() && atomic_load(&g_connected) < o.connections) {
        controller_wait(0, 100);
        progress_tick(&prog, &o, ws, "connect", t_begin);
    }
    double connect_s = (double)(now_ns() - t_begin) / 1e9;
    if (g_child) {
        /* Every process connected before any warms up: they measure
         * together. */
        char tag = should_stop() ? 'F' : 'C';
        if (!bench_write_all(g_child->up, &tag, 1) ||
            (tag == 'C' && bench_child_next(g_child) != 'G'))
            g_interrupted = 1;
    }

    uint64_t t0 = 0, t1 = 0;
    struct bench_proc_usage cpu0 = {.utime = -1}, cpu1 = {.utime = -1};
    long long sys = -1;
    if (!should_stop() && o.warmup > 0) {
        set_phase(PH_WARMUP);
        uint64_t end = now_ns() + (uint64_t)(o.warmup * 1e9);
        while (!should_stop() && now_ns() < end) {
            controller_wait(end, 100);
            progress_tick(&prog, &o, ws, "warmup", t_begin);
        }
    }
    if (!should_stop()) {
        if (o.server_pid) {
            bench_perf_cmd(&perf, "enable");
            if (!bench_proc_usage_read(o.server_pid, &cpu0))
                cpu0.utime = -1;
        }
        t0 = now_ns();
        set_phase(PH_MEASURE);
        uint64_t end = o.rounds ? 0 : t0 + (uint64_t)(o.duration * 1e9);
        bool extended = false;
        while (!should_stop()) {
            if (o.rounds) {
                if (atomic_load(&g_workers_done) == started)
                    break;
            } else if (all_stalled(ws, started)) {
                /* Every connection stalled and was closed: nothing is left
                 * to measure, and the run fails whatever comes. Ending here
                 * lets a test give a window long enough for a slow machine
                 * to reach the stall it wants, without waiting it out on a
                 * fast one. */
                break;
            } else if (now_ns() >= end) {
                if (!window_empty(&o, ws, end))
                    break;
                /* A connection had nothing come back within the window:
                 * the server, or this client, did not run (a frozen or
                 * overloaded machine). Wait for its first reply, up to the
                 * stall timeout, rather than fail a run that is merely
                 * slow; the rates use the real window, so the slowness
                 * shows. */
                if (!extended && !o.quiet)
                    fprintf(stderr,
                            "ringbench: note: a connection had nothing measured in "
                            "%.3f s; the window runs on until every connection has "
                            "a reply (at most --stall-timeout=%g s more)\n",
                            o.duration, o.stall_timeout);
                extended = true;
                controller_wait(0, 10);
                continue;
            }
            controller_wait(end, 100);
            progress_tick(&prog, &o, ws, "measure", t_begin);
        }
        t1 = now_ns();
    }
    set_phase(PH_STOP);
    if (o.server_pid && t0) {
        if (!bench_proc_usage_read(o.server_pid, &cpu1))
            cpu1.utime = -1;
        if (bench_perf_cmd(&perf, "disable"))
            sys = bench_perf_finish(&perf);
    }
    if (perf.pid > 0)
        bench_perf_finish(&perf);
    for (uint32_t t = 0; t < started; t++)
        pthread_join(ws[t].tid, NULL);
    if (prog.on)
        fprintf(stderr, "\r\033[K");

    struct result r = {.hist = total,
                       .fair_min = UINT64_MAX,
                       .rss_kib = -1,
                       .rss0_kib = rss0,
                       .fds = -1,
                       .ctxsw = -1,
                       .connect_s = connect_s};
    uint64_t t_last = 0;
    for (uint32_t t = 0; t < o.threads; t++) {
        struct worker *w = &ws[t];
        r.rt += w->rt;
        r.bytes += w->bytes;
        bench_hist_merge(total, w->hist);
        if (w->t_done > t_last)
            t_last = w->t_done;
        for (uint32_t i = 0; i < w->nconns; i++) {
            const struct conn *c = &w->conns[i];
            uint64_t v = round_trips(&o) ? c->rt : c->counted_bytes;
            r.zero += v == 0;
            r.held += c->state == CS_OPEN;
            if (v < r.fair_min)
                r.fair_min = v;
            if (v > r.fair_max)
                r.fair_max = v;
        }
    }
    if (r.fair_min == UINT64_MAX)
        r.fair_min = 0;
    if (o.rounds && t_last && t_last < t1 && !should_stop())
        t1 = t_last;
    r.seconds = t0 && t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    sample_server(&o, &r);
    server_cpu(&o, &r, &cpu0, &cpu1, sys);
    uint32_t errors = atomic_load(&g_errors);
    uint32_t stalls = atomic_load(&g_stalls);
    char error[sizeof(((struct child_report *)0)->error)];
    verdict(&o, &r, stalls, t0 != 0, error, sizeof(error));
    int status = 0;
    if (g_child) {
        /* The parent reports; it also looks at the server while our
         * connections are still open, so we wait for its 'X'. */
        struct child_report rep = {.seconds = r.seconds,
                                   .connect_s = r.connect_s,
                                   .rt = r.rt,
                                   .bytes = r.bytes,
                                   .fair_min = r.fair_min,
                                   .fair_max = r.fair_max,
                                   .zero = r.zero,
                                   .held = r.held,
                                   .errors = errors,
                                   .stalls = stalls,
                                   .interrupted = g_interrupted,
                                   .measured = t0 != 0};
        snprintf(rep.error, sizeof(rep.error), "%s", error);
        if (bench_write_all(g_child->up, &rep, sizeof(rep)) &&
            bench_write_all(g_child->up, total, sizeof(*total)))
            while (bench_child_next(g_child) == 'S')
                ;
        status = error[0] || errors ? 1 : 0;
    } else {
        status = conclude(&o, &r, errors, stalls, error);
    }
    fflush(stdout);

    for (uint32_t t = 0; t < o.threads; t++) {
        struct worker *w = &ws[t];
        for (uint32_t i = 0; i < w->nconns; i++)
            if (w->conns[i].fd >= 0)
                close(w->conns[i].fd);
        close(w->ep);
        free(w->conns);
        free(w->msgs);
        free(w->rbuf);
        free(w->wbuf);
        free(w->hist);
        free(w->ready);
    }
    free(ws);
    free(total);
    close(g_wake_fd);
    close(g_done_fd);
    return status;
}
