/* What ringbench learns about the server it loads, given its pid: CPU time and
 * RSS from /proc, and syscalls counted by `perf stat` running as a child. */
#ifndef RINGBENCH_SERVER_H
#define RINGBENCH_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

/* utime + stime of a process, in clock ticks (sysconf(_SC_CLK_TCK)); -1 if
 * unreadable. */
long long bench_proc_cpu_ticks(long pid);
/* A process's CPU split and its context switches (voluntary + involuntary,
 * summed over its live threads). */
struct bench_proc_usage {
    long long utime, stime; /* clock ticks */
    long long ctxsw;        /* -1 if unreadable */
};
/* false if the process is gone. */
bool bench_proc_usage_read(long pid, struct bench_proc_usage *u);
/* VmRSS in KiB; -1 if unreadable. */
long long bench_proc_rss_kib(long pid);
/* Process descriptors (entries of /proc/PID/fd; io_uring direct descriptors
 * are not among them); -1 if unreadable. */
long long bench_proc_fd_count(long pid);

/* The kernel's socket counts and TCP memory (/proc/net/sockstat, this
 * network namespace: on loopback both ends of every connection). */
struct bench_sockstat {
    long long sockets_used; /* "sockets: used" */
    long long tcp_inuse, tcp_tw;
    long long tcp_mem_kib; /* "TCP: mem" pages, in KiB */
};
/* false if unreadable. */
bool bench_sockstat_read(struct bench_sockstat *s);

/* perf stat runs as a child from the start, attached to the server with its
 * counters disabled (-D -1); --control lets us enable and disable them exactly
 * at the edges of the measured interval and wait for perf's acknowledgement. */
struct bench_perf {
    pid_t pid;
    int ctl, ack, out; /* our ends */
    bool ok;
};

/* Start perf, attached to `server_pid` with its counters off. On failure
 * p->ok is false and the other calls do nothing. */
void bench_perf_start(struct bench_perf *p, long server_pid);
/* Send "enable" or "disable" and wait for perf's acknowledgement. */
bool bench_perf_cmd(struct bench_perf *p, const char *cmd);
/* Stop perf; the raw_syscalls:sys_enter count while enabled, or -1. */
long long bench_perf_finish(struct bench_perf *p);

#endif
