/* End-to-end harness: spawn ringserve, read its output, drive clients.
 * See harness.h for the contract. */
#include "harness.h"
#include "../skip_reason.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_server.h"

/* Keep at most this much of a child's output. When a child writes more, the
 * head (which holds the listening line) and the newest output are kept and
 * the middle is dropped: the stats line we look for is always at the end. */
#define H_CAPTURE_MAX  (4u << 20)
#define H_CAPTURE_HEAD (64u << 10)

/* --- cleanup of children, whatever happens ------------------------------- */

#define H_MAX_CHILDREN 64

static pthread_mutex_t children_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t children[H_MAX_CHILDREN];
static bool atexit_done;

static void kill_children(void)
{
    pthread_mutex_lock(&children_lock);
    for (int i = 0; i < H_MAX_CHILDREN; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
            children[i] = 0;
        }
    }
    pthread_mutex_unlock(&children_lock);
}

static bool register_child(pid_t pid)
{
    bool ok = false;
    pthread_mutex_lock(&children_lock);
    if (!atexit_done) {
        atexit(kill_children);
        atexit_done = true;
    }
    for (int i = 0; i < H_MAX_CHILDREN; i++) {
        if (children[i] == 0) {
            children[i] = pid;
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&children_lock);
    return ok;
}

static void unregister_child(pid_t pid)
{
    pthread_mutex_lock(&children_lock);
    for (int i = 0; i < H_MAX_CHILDREN; i++)
        if (children[i] == pid)
            children[i] = 0;
    pthread_mutex_unlock(&children_lock);
}

/* --- time ---------------------------------------------------------------- */

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* --- output capture ------------------------------------------------------ */

static void capture_append(struct h_capture *c, const char *data, size_t n)
{
    if (c->len + n + 1 > H_CAPTURE_MAX && c->len > H_CAPTURE_HEAD) {
        size_t drop = c->len + n + 1 - H_CAPTURE_MAX + (1u << 20);
        if (drop > c->len - H_CAPTURE_HEAD)
            drop = c->len - H_CAPTURE_HEAD;
        memmove(c->buf + H_CAPTURE_HEAD, c->buf + H_CAPTURE_HEAD + drop,
                c->len - H_CAPTURE_HEAD - drop);
        c->len -= drop;
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = realloc(c->buf, cap);
        if (!p)
            return; /* lose output rather than crash the harness */
        c->buf = p;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, n);
    c->len += n;
    c->buf[c->len] = '\0';
}

static void *drain_main(void *arg)
{
    struct h_server *s = arg;
    int fds[2] = {s->out_fd, s->err_fd};
    struct h_capture *caps[2] = {&s->out, &s->err};
    char buf[16384];

    for (;;) {
        struct pollfd pfd[2];
        int n = 0, map[2];
        for (int i = 0; i < 2; i++) {
            if (fds[i] >= 0) {
                pfd[n].fd = fds[i];
                pfd[n].events = POLLIN;
                map[n++] = i;
            }
        }
        if (n == 0)
            break;
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int k = 0; k < n; k++) {
            if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            int i = map[k];
            ssize_t r = read(fds[i], buf, sizeof(buf));
            if (r < 0 && errno == EINTR)
                continue;
            pthread_mutex_lock(&s->lock);
            if (r > 0) {
                capture_append(caps[i], buf, (size_t)r);
            } else {
                caps[i]->eof = true;
                fds[i] = -1;
            }
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->lock);
        }
    }
    return NULL;
}

/* --- spawning ------------------------------------------------------------ */

/* Parse "ringserve: listening on HOST:PORT (backend=NAME, ...)" out of the
 * captured stderr. Called with s->lock held. Only a complete line counts. */
static bool parse_listening(struct h_server *s)
{
    static const char tag[] = "listening on ";
    if (!s->err.buf)
        return false;
    char *p = strstr(s->err.buf, tag);
    if (!p)
        return false;
    char *eol = strchr(p, '\n');
    if (!eol)
        return false;
    p += sizeof(tag) - 1;
    char *sp = p;
    while (sp < eol && *sp != ' ')
        sp++;
    char *colon = NULL;
    for (char *q = p; q < sp; q++)
        if (*q == ':')
            colon = q;
    if (!colon || colon == p)
        return false;
    size_t hl = (size_t)(colon - p);
    if (hl >= sizeof(s->host))
        return false;
    memcpy(s->host, p, hl);
    s->host[hl] = '\0';
    unsigned long port = strtoul(colon + 1, NULL, 10);
    if (port == 0 || port > 65535)
        return false;
    s->port = (uint16_t)port;

    s->backend[0] = '\0';
    char *b = strstr(sp, "backend=");
    if (b && b < eol) {
        b += strlen("backend=");
        size_t i = 0;
        while (b < eol && i + 1 < sizeof(s->backend) &&
               ((*b >= 'a' && *b <= 'z') || (*b >= '0' && *b <= '9') || *b == '_'))
            s->backend[i++] = *b++;
        s->backend[i] = '\0';
    }
    return true;
}

/* Reap the child, waiting at most timeout_ms; SIGKILL it after that if
 * kill_after is set. Returns 0 if reaped, -1 if still running. */
static int reap(struct h_server *s, int timeout_ms, bool kill_after)
{
    if (s->exited)
        return 0;
    if (s->pid <= 0)
        return -1;
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            s->status = st;
            s->exited = true;
            unregister_child(s->pid);
            s->pid = 0;
            return 0;
        }
        if (r < 0 && errno != EINTR)
            return -1;
        if (h_now_ms() >= deadline)
            break;
        h_sleep_ms(5);
    }
    if (kill_after) {
        kill(s->pid, SIGKILL);
        int st;
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR)
            ;
        s->status = st;
        s->exited = true;
        unregister_child(s->pid);
        s->pid = 0;
    }
    return -1;
}

static void join_drain(struct h_server *s)
{
    if (s->drain_running) {
        pthread_join(s->drain, NULL);
        s->drain_running = false;
    }
    if (s->out_fd >= 0)
        close(s->out_fd);
    if (s->err_fd >= 0)
        close(s->err_fd);
    s->out_fd = s->err_fd = -1;
}

enum h_start h_server_start(struct h_server *s, char *const argv[],
                            const char *const extra[])
{
    memset(s, 0, sizeof(*s));
    s->out_fd = s->err_fd = -1;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);

    size_t na = 0, ne = 0;
    while (argv[na])
        na++;
    while (extra && extra[ne])
        ne++;
    char **full = calloc(na + ne + 1, sizeof(*full));
    if (!full || na == 0) {
        free(full);
        return H_SPAWN_FAILED;
    }
    for (size_t i = 0; i < na; i++)
        full[i] = argv[i];
    for (size_t i = 0; i < ne; i++)
        full[na + i] = (char *)extra[i];

    int op[2], ep[2];
    if (pipe2(op, O_CLOEXEC) < 0) {
        free(full);
        return H_SPAWN_FAILED;
    }
    if (pipe2(ep, O_CLOEXEC) < 0) {
        close(op[0]);
        close(op[1]);
        free(full);
        return H_SPAWN_FAILED;
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Child: only async-signal-safe calls until exec. Undo what the
         * test process changed (SIGPIPE ignored, signals blocked) so the
         * server starts as it would from a shell. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(op[1], 1);
        dup2(ep[1], 2);
        execvp(full[0], full);
        static const char msg[] = "harness: exec failed\n";
        ssize_t w = write(2, msg, sizeof(msg) - 1);
        (void)w;
        _exit(127);
    }
    free(full);
    if (devnull >= 0)
        close(devnull);
    close(op[1]);
    close(ep[1]);
    if (pid < 0) {
        close(op[0]);
        close(ep[0]);
        return H_SPAWN_FAILED;
    }
    s->pid = pid;
    if (!register_child(pid))
        fprintf(stderr, "harness: too many children to track\n");
    s->out_fd = op[0];
    s->err_fd = ep[0];
    if (pthread_create(&s->drain, NULL, drain_main, s) != 0) {
        kill(pid, SIGKILL);
        reap(s, H_TIMEOUT_MS, true);
        join_drain(s);
        return H_SPAWN_FAILED;
    }
    s->drain_running = true;

    /* Wait for the listening line, or for stderr to close (the child
     * exited or closed it), or for the safety timeout. */
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += H_TIMEOUT_MS / 1000;
    enum h_start res = H_TIMEDOUT;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (parse_listening(s)) {
            s->ready = true;
            res = H_STARTED;
            break;
        }
        if (s->err.eof) {
            res = H_EXITED;
            break;
        }
        if (pthread_cond_timedwait(&s->cond, &s->lock, &dl) == ETIMEDOUT) {
            if (parse_listening(s)) {
                s->ready = true;
                res = H_STARTED;
            } else if (s->err.eof) {
                res = H_EXITED;
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);

    if (res == H_EXITED) {
        /* stderr closed: the child has exited or is about to. */
        if (reap(s, H_TIMEOUT_MS, true) < 0)
            res = H_TIMEDOUT;
        join_drain(s);
    } else if (res == H_TIMEDOUT) {
        kill(s->pid, SIGKILL);
        reap(s, H_TIMEOUT_MS, true);
        join_drain(s);
    }
    return res;
}

int h_server_stop(struct h_server *s, int sig)
{
    if (s->exited) {
        join_drain(s);
        return 0;
    }
    if (s->pid <= 0)
        return -1;
    pthread_mutex_lock(&s->lock);
    s->err_at_signal = s->err.len;
    s->signal_sent = sig;
    pthread_mutex_unlock(&s->lock);
    kill(s->pid, sig);
    reap(s, H_TIMEOUT_MS, true);
    join_drain(s);
    return 0;
}

int h_server_wait(struct h_server *s, int timeout_ms)
{
    int r = reap(s, timeout_ms, true);
    join_drain(s);
    return r;
}

void h_server_destroy(struct h_server *s)
{
    if (s->pid > 0 && !s->exited) {
        kill(s->pid, SIGKILL);
        reap(s, H_TIMEOUT_MS, true);
    }
    join_drain(s);
    free(s->out.buf);
    free(s->err.buf);
    s->out.buf = s->err.buf = NULL;
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
}

bool h_exited_with(const struct h_server *s, int code)
{
    return s->exited && WIFEXITED(s->status) && WEXITSTATUS(s->status) == code;
}

const char *h_status_str(const struct h_server *s, char *buf, size_t len)
{
    if (!s->exited)
        snprintf(buf, len, "still running");
    else if (WIFEXITED(s->status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(s->status));
    else if (WIFSIGNALED(s->status))
        snprintf(buf, len, "signal %d", WTERMSIG(s->status));
    else
        snprintf(buf, len, "status 0x%x", (unsigned)s->status);
    return buf;
}

static char *snapshot(struct h_server *s, struct h_capture *c)
{
    pthread_mutex_lock(&s->lock);
    char *r = strndup(c->buf ? c->buf : "", c->len);
    pthread_mutex_unlock(&s->lock);
    return r;
}

char *h_server_stderr(struct h_server *s)
{
    return snapshot(s, &s->err);
}

char *h_server_stdout(struct h_server *s)
{
    return snapshot(s, &s->out);
}

bool h_find_line(struct h_server *s, const char *prefix, char *line, size_t len)
{
    char *all = h_server_stderr(s);
    bool found = false;
    size_t pl = strlen(prefix);
    for (char *p = all; p && *p;) {
        char *eol = strchr(p, '\n');
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll >= pl && strncmp(p, prefix, pl) == 0 && len > 0) {
            size_t n = ll < len - 1 ? ll : len - 1;
            memcpy(line, p, n);
            line[n] = '\0';
            found = true;
        }
        p = eol ? eol + 1 : p + ll;
    }
    free(all);
    return found;
}

bool h_line_value(const char *line, const char *key, unsigned long long *val)
{
    size_t kl = strlen(key);
    for (const char *p = strstr(line, key); p; p = strstr(p + 1, key)) {
        bool boundary = p == line || p[-1] == ' ' || p[-1] == ',' || p[-1] == '(' ||
                        p[-1] == ':' || p[-1] == '\t';
        if (!boundary || p[kl] != '=')
            continue;
        const char *v = p + kl + 1;
        if (*v < '0' || *v > '9')
            return false;
        *val = strtoull(v, NULL, 10);
        return true;
    }
    return false;
}

long h_server_rss_kib(const struct h_server *s)
{
    return s->pid > 0 ? (long)bench_proc_rss_kib(s->pid) : -1;
}

void h_dump_stderr(struct h_server *s, const char *why)
{
    char *all = h_server_stderr(s);
    size_t len = strlen(all), start = 0;
    size_t mark = s->signal_sent ? s->err_at_signal : (size_t)-1;
    if (len > 8192) /* the tail says most; the head has the listening line */
        start = len - 8192;
    fprintf(stderr, "---- server stderr (%s)%s ----\n", why, start ? ", last 8 KiB" : "");
    if (mark >= start && mark <= len) {
        fprintf(stderr, "%.*s", (int)(mark - start), all + start);
        if (mark > start && all[mark - 1] != '\n')
            fputc('\n', stderr);
        fprintf(stderr, "<<<< harness sent %s here >>>>\n", strsignal(s->signal_sent));
        start = mark;
    }
    fprintf(stderr, "%s%s---- end ----\n", all + start,
            len > start && all[len - 1] != '\n' ? "\n" : "");
    free(all);
}

/* Direct descriptors a ring holds: the entries listed under "UserFiles:"
 * in /proc/PID/fdinfo/FD of an io_uring fd. -1 when the kernel did not list
 * them this time (it skips the table when the ring's lock is busy).
 *
 * Kernels differ (tools/kernels found it): 6.1 lists every slot of the
 * table, empty ones as "<none>", and when its lock is busy it still prints
 * the "UserFiles: N" line, without the slots; newer kernels list occupied
 * slots only, and print nothing of the ring when the lock is busy. So
 * "<none>" is not a descriptor, and once a kernel has shown that it lists
 * every slot, a table listed short of N was cut by the lock: try again. */
static long ring_direct_files(pid_t pid, const char *fd)
{
    static bool lists_every_slot;
    char path[320], line[256];
    snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)pid, fd);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long n = -1, slots = 0, declared = 0;
    bool in = false;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "UserFiles:", 10) == 0) {
            in = true;
            n = 0;
            declared = strtol(line + 10, NULL, 10);
            continue;
        }
        if (in) {
            char *p = line;
            while (*p == ' ')
                p++;
            if (!(*p >= '0' && *p <= '9' && strchr(p, ':')))
                break;
            slots++;
            if (strstr(p, "<none>"))
                lists_every_slot = true;
            else
                n++;
        }
    }
    fclose(f);
    if (n >= 0 && lists_every_slot && slots < declared)
        return -1;
    return n;
}

long h_server_fd_count(const struct h_server *s)
{
    pid_t pid = s->pid;
    if (pid <= 0)
        return -1;
    for (int attempt = 0; attempt < 50; attempt++) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        DIR *d = opendir(path);
        if (!d)
            return -1;
        long n = 0;
        bool retry = false;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            n++;
            char lp[320], target[128];
            snprintf(lp, sizeof(lp), "/proc/%d/fd/%s", (int)pid, e->d_name);
            ssize_t tl = readlink(lp, target, sizeof(target) - 1);
            if (tl <= 0)
                continue;
            target[tl] = '\0';
            if (strstr(target, "io_uring")) {
                long direct = ring_direct_files(pid, e->d_name);
                if (direct < 0)
                    retry = true;
                else
                    n += direct;
            }
        }
        closedir(d);
        if (!retry)
            return n;
        h_sleep_ms(10);
    }
    return -1;
}

long h_wait_fd_count(const struct h_server *s, long base)
{
    int64_t deadline = h_now_ms() + H_TIMEOUT_MS;
    for (;;) {
        long n = h_server_fd_count(s);
        if (n == base || h_now_ms() >= deadline)
            return n;
        h_sleep_ms(50);
    }
}

/* --- clients ------------------------------------------------------------- */

int h_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl);
}

int h_connect(struct h_server *s)
{
    return h_connect_rcvbuf(s, 0);
}

int h_connect_rcvbuf(struct h_server *s, int rcvbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(s->port)};
    if (inet_pton(AF_INET, s->host[0] ? s->host : "127.0.0.1", &sa.sin_addr) != 1)
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0 &&
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    s->connects++;
    return fd;
}

static int wait_fd(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int r = poll(&p, 1, H_TIMEOUT_MS);
        if (r > 0)
            return 0;
        if (r == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int h_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            p += w;
            len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return -errno;
        int r = wait_fd(fd, POLLOUT);
        if (r < 0)
            return r;
    }
    return 0;
}

ssize_t h_read_exact(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = recv(fd, p + got, len - got, MSG_DONTWAIT);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0)
            return (ssize_t)got;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int w = wait_fd(fd, POLLIN);
        if (w < 0)
            return w;
    }
    return (ssize_t)got;
}

int h_expect_eof(int fd)
{
    char c;
    for (;;) {
        ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
        if (r == 0)
            return 0;
        if (r > 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int w = wait_fd(fd, POLLIN);
        if (w < 0)
            return w;
    }
}

void h_fill(unsigned char *buf, size_t len, uint64_t seed)
{
    /* splitmix64 over 8-byte blocks */
    for (size_t i = 0; i < len; i += 8) {
        uint64_t z = seed + (uint64_t)(i / 8 + 1) * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        for (size_t k = 0; k < 8 && i + k < len; k++)
            buf[i + k] = (unsigned char)(z >> (8 * k));
    }
}

static bool flow_done(const struct h_flow *f)
{
    return f->sent == f->len && f->recvd == f->len && (!f->shut_wr || f->shut_done) &&
           (!f->want_eof || f->eof);
}

/* Service one flow after poll(). Returns 1 on progress, 0 on none, -1 on
 * failure (f->error set). */
static int flow_step(struct h_flow *f, short revents, unsigned char *rbuf, size_t rlen)
{
    int progress = 0;
    if ((revents & (POLLOUT | POLLERR | POLLHUP)) && f->sent < f->len) {
        size_t chunk = f->len - f->sent;
        if (chunk > (256u << 10))
            chunk = 256u << 10;
        ssize_t w = send(f->fd, f->out + f->sent, chunk, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            f->sent += (size_t)w;
            progress = 1;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            snprintf(f->error, sizeof(f->error), "send failed after %zu of %zu bytes: %s",
                     f->sent, f->len, strerror(errno));
            return -1;
        }
    }
    if (f->sent == f->len && f->shut_wr && !f->shut_done) {
        if (shutdown(f->fd, SHUT_WR) < 0) {
            snprintf(f->error, sizeof(f->error), "shutdown(SHUT_WR): %s",
                     strerror(errno));
            return -1;
        }
        f->shut_done = true;
        progress = 1;
    }
    /* lazy_reader: read only when the socket is not writable, and then only
     * a little, so the server stays backed up with output it must queue */
    bool may_read = !f->lazy_reader || f->sent == f->len || !(revents & POLLOUT);
    if (f->lazy_reader && rlen > 1024)
        rlen = 1024;
    if (may_read && (revents & (POLLIN | POLLERR | POLLHUP))) {
        for (int round = 0; round < (f->lazy_reader ? 1 : 8); round++) {
            ssize_t r = recv(f->fd, rbuf, rlen, MSG_DONTWAIT);
            if (r < 0) {
                if (errno == EAGAIN || errno == EINTR)
                    break;
                snprintf(f->error, sizeof(f->error),
                         "recv failed after %zu of %zu echoed bytes: %s", f->recvd,
                         f->len, strerror(errno));
                return -1;
            }
            if (r == 0) {
                if (f->recvd < f->len) {
                    snprintf(f->error, sizeof(f->error),
                             "EOF after only %zu of %zu echoed bytes (sent %zu)",
                             f->recvd, f->len, f->sent);
                    return -1;
                }
                f->eof = true;
                return 1;
            }
            progress = 1;
            size_t n = (size_t)r;
            if (f->recvd + n > f->sent) {
                snprintf(f->error, sizeof(f->error),
                         "received %zu bytes but only %zu were sent", f->recvd + n,
                         f->sent);
                return -1;
            }
            if (memcmp(rbuf, f->out + f->recvd, n) != 0) {
                size_t k = 0;
                while (rbuf[k] == f->out[f->recvd + k])
                    k++;
                snprintf(f->error, sizeof(f->error),
                         "echo differs at byte %zu: expected 0x%02x, got 0x%02x",
                         f->recvd + k, f->out[f->recvd + k], rbuf[k]);
                return -1;
            }
            f->recvd += n;
            if ((size_t)r < rlen)
                break;
        }
    }
    return progress;
}

int h_flows_run(struct h_flow *flows, size_t n, char *err, size_t errlen)
{
    struct pollfd *pfd = calloc(n, sizeof(*pfd));
    size_t *idx = calloc(n, sizeof(*idx));
    size_t rlen = 64u << 10;
    unsigned char *rbuf = malloc(rlen);
    int rc = -1;
    if (!pfd || !idx || !rbuf) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        flows[i].sent = flows[i].recvd = 0;
        flows[i].shut_done = flows[i].eof = false;
        flows[i].error[0] = '\0';
    }
    for (;;) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            struct h_flow *f = &flows[i];
            if (f->sent == f->len && f->shut_wr && !f->shut_done) {
                /* an empty flow, or one that finished sending last round */
                if (flow_step(f, 0, rbuf, rlen) < 0) {
                    snprintf(err, errlen, "client %zu: %s", i, f->error);
                    goto out;
                }
            }
            if (flow_done(f))
                continue;
            pfd[m].fd = f->fd;
            pfd[m].events = POLLIN;
            if (f->sent < f->len)
                pfd[m].events |= POLLOUT;
            pfd[m].revents = 0;
            idx[m++] = i;
        }
        if (m == 0) {
            rc = 0;
            break;
        }
        int r = poll(pfd, (nfds_t)m, H_TIMEOUT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            goto out;
        }
        if (r == 0) {
            struct h_flow *f = &flows[idx[0]];
            snprintf(err, errlen,
                     "no progress for %d ms on %zu unfinished client(s); client %zu: "
                     "sent %zu/%zu, echoed %zu, eof %s",
                     H_TIMEOUT_MS, m, idx[0], f->sent, f->len, f->recvd,
                     f->eof ? "yes" : "no");
            goto out;
        }
        for (size_t k = 0; k < m; k++) {
            if (!pfd[k].revents)
                continue;
            struct h_flow *f = &flows[idx[k]];
            if (flow_step(f, pfd[k].revents, rbuf, rlen) < 0) {
                snprintf(err, errlen, "client %zu: %s", idx[k], f->error);
                goto out;
            }
        }
    }
out:
    free(pfd);
    free(idx);
    free(rbuf);
    return rc;
}

size_t h_send_some(int fd, const void *data, size_t len)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t w = send(fd, (const char *)data + sent, len - sent, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    return sent;
}

int h_preflight(char *const argv[], const char *prog)
{
    static const char *const listen_any[] = {"--listen=127.0.0.1:0", NULL};
    return h_preflight_with(argv, listen_any, prog);
}

int h_preflight_with(char *const argv[], const char *const extra[], const char *prog)
{
    struct h_server s;
    char st[64];
    enum h_start r = h_server_start(&s, argv, extra);
    int rc = -1;
    if (r == H_STARTED) {
        h_server_stop(&s, SIGTERM);
    } else {
        char *err = h_server_stderr(&s);
        /* Only what the kernel lacks is a skip, in the form
         * scripts/test-summary.py checks against the probe; anything else
         * that stops the server from starting is a failure. */
        if (r == H_EXITED && (h_exited_with(&s, 1) || h_exited_with(&s, 2)) &&
            rs_skip_reason_for(err)) {
            rc = 77;
        } else {
            fprintf(stderr, "%s: the server did not start (%s)\n", prog,
                    r == H_EXITED ? h_status_str(&s, st, sizeof(st))
                                  : "no listening line");
            h_dump_stderr(&s, "start-up");
            rc = 1;
        }
        free(err);
    }
    h_server_destroy(&s);
    return rc;
}

void h_reset_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

int h_listen_local(int backlog, uint16_t *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        (backlog >= 0 && listen(fd, backlog) < 0) ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

int h_accept(int lfd)
{
    int w = wait_fd(lfd, POLLIN);
    if (w < 0) {
        errno = -w;
        return -1;
    }
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0 || errno != EINTR)
            return fd;
    }
}

long long h_drain_to_eof(int fd, unsigned long long *total)
{
    static char sink[64 * 1024];
    unsigned long long got = 0;
    long long rc;
    for (;;) {
        int w = wait_fd(fd, POLLIN);
        if (w < 0) {
            rc = w;
            break;
        }
        ssize_t n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0) {
            rc = (long long)got;
            break;
        }
        if (errno == EINTR || errno == EAGAIN)
            continue;
        rc = -errno;
        break;
    }
    if (total)
        *total = got;
    return rc;
}
