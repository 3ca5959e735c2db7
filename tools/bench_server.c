/* Server observation for ringbench; see bench_server.h. */
#include "bench_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* utime and stime of a process, in clock ticks; false if unreadable. */
static bool proc_cpu_split(long pid, long long *utime_out, long long *stime_out)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and ')': fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return false;
    p++;
    /* After ')': field 3 (state) ... field 14 utime, 15 stime. */
    unsigned long long utime = 0;
    int field = 2;
    char *save = NULL;
    for (char *tok = strtok_r(p, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        field++;
        if (field == 14)
            utime = strtoull(tok, NULL, 10);
        else if (field == 15) {
            *utime_out = (long long)utime;
            *stime_out = (long long)strtoull(tok, NULL, 10);
            return true;
        }
    }
    return false;
}

long long bench_proc_cpu_ticks(long pid)
{
    long long u, s;
    return proc_cpu_split(pid, &u, &s) ? u + s : -1;
}

/* Context switches of every live thread: the per-thread counts in
 * /proc/PID/task/TID/status (the process-wide status line only has the
 * main thread's). */
static long long proc_ctxsw(long pid)
{
    char path[96], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/status", pid, e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue; /* the thread just exited */
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0)
                total += strtoll(line + 24, NULL, 10);
            else if (strncmp(line, "nonvoluntary_ctxt_switches:", 27) == 0)
                total += strtoll(line + 27, NULL, 10);
        }
        fclose(f);
    }
    closedir(d);
    return total;
}

bool bench_proc_usage_read(long pid, struct bench_proc_usage *u)
{
    if (!proc_cpu_split(pid, &u->utime, &u->stime))
        return false;
    u->ctxsw = proc_ctxsw(pid);
    return true;
}

long long bench_proc_rss_kib(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtoll(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

long long bench_proc_fd_count(long pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

bool bench_sockstat_read(struct bench_sockstat *s)
{
    *s = (struct bench_sockstat){-1, -1, -1, -1};
    FILE *f = fopen("/proc/net/sockstat", "re");
    if (!f)
        return false;
    char line[256];
    long long mem = -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "sockets: used %lld", &s->sockets_used) == 1)
            continue;
        long long orphan, alloc;
        if (sscanf(line, "TCP: inuse %lld orphan %lld tw %lld alloc %lld mem %lld",
                   &s->tcp_inuse, &orphan, &s->tcp_tw, &alloc, &mem) == 5)
            continue;
    }
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    if (mem >= 0)
        s->tcp_mem_kib = mem * (page > 0 ? page : 4096) / 1024;
    return s->tcp_inuse >= 0;
}

bool bench_perf_cmd(struct bench_perf *p, const char *cmd)
{
    if (!p->ok)
        return false;
    size_t len = strlen(cmd);
    if (write(p->ctl, cmd, len) != (ssize_t)len) {
        p->ok = false;
        return false;
    }
    char buf[16];
    struct pollfd pfd = {.fd = p->ack, .events = POLLIN};
    if (poll(&pfd, 1, 5000) <= 0 || read(p->ack, buf, sizeof(buf)) <= 0 ||
        strncmp(buf, "ack", 3) != 0) {
        p->ok = false;
        return false;
    }
    return true;
}

void bench_perf_start(struct bench_perf *p, long server_pid)
{
    int ctl[2], ack[2], out[2];
    p->ok = false;
    p->pid = -1;
    p->ctl = p->ack = p->out = -1;
    if (pipe2(ctl, O_CLOEXEC) < 0)
        return;
    if (pipe2(ack, O_CLOEXEC) < 0) {
        close(ctl[0]);
        close(ctl[1]);
        return;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(ctl[0]);
        close(ctl[1]);
        close(ack[0]);
        close(ack[1]);
        return;
    }
    char pidbuf[32];
    snprintf(pidbuf, sizeof(pidbuf), "%ld", server_pid);
    pid_t pid = fork();
    if (pid == 0) {
        /* Move our ends out of the way, then onto 2, 3, 4 (dup2 clears CLOEXEC). */
        int c = fcntl(ctl[0], F_DUPFD, 10), a = fcntl(ack[1], F_DUPFD, 10),
            e = fcntl(out[1], F_DUPFD, 10);
        /* perf must not outlive ringbench, attached to the server. */
        prctl(PR_SET_PDEATHSIG, SIGINT, 0UL, 0UL, 0UL);
        int devnull = open("/dev/null", O_RDWR);
        if (c < 0 || a < 0 || e < 0 || devnull < 0 || dup2(devnull, 0) < 0 ||
            dup2(devnull, 1) < 0 || dup2(e, 2) < 0 || dup2(c, 3) < 0 || dup2(a, 4) < 0)
            _exit(127);
        char *args[] = {"perf", "stat",      "-e",     "raw_syscalls:sys_enter",
                        "-p",   pidbuf,      "-x,",    "-D",
                        "-1",   "--control", "fd:3,4", NULL};
        execvp("perf", args);
        _exit(127);
    }
    close(ctl[0]);
    close(ack[1]);
    close(out[1]);
    if (pid < 0) {
        close(ctl[1]);
        close(ack[0]);
        close(out[0]);
        return;
    }
    p->pid = pid;
    p->ctl = ctl[1];
    p->ack = ack[0];
    p->out = out[0];
    p->ok = true;
}

/* Stop perf and return the count, or -1. */
long long bench_perf_finish(struct bench_perf *p)
{
    long long count = -1;
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGINT);
    char buf[4096];
    size_t len = 0;
    for (;;) {
        struct pollfd pfd = {.fd = p->out, .events = POLLIN};
        if (poll(&pfd, 1, 5000) <= 0)
            break;
        ssize_t n = read(p->out, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf) - 1)
            break;
    }
    buf[len] = '\0';
    /* perf closed its stderr, so it is exiting; give it 2 s, then kill it. */
    int status;
    pid_t got = 0;
    for (int i = 0; i < 200 && got == 0; i++) {
        got = waitpid(p->pid, &status, WNOHANG);
        if (got == 0)
            usleep(10000);
    }
    if (got == 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &status, 0);
    }
    if (p->ok) {
        for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
            if (strstr(line, "raw_syscalls:sys_enter") && line[0] >= '0' &&
                line[0] <= '9') {
                count = strtoll(line, NULL, 10);
                break;
            }
        }
    }
    close(p->ctl);
    close(p->ack);
    close(p->out);
    p->pid = -1;
    return count;
}
