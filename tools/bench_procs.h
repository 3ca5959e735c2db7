/* Several ringbench processes that run as one (--processes=N).
 *
 * A process can hold only RLIMIT_NOFILE sockets, so 100,000 connections
 * under a limit of 20,000 need several processes. The parent forks them,
 * each takes a slice of the connections (its own connection ids, so source
 * addresses and verified streams stay those of one big run), and the
 * parent keeps them in step through a pipe pair per child:
 *
 *   child -> parent  'C' connected (or 'F' failed), later its result
 *   parent -> child  'G' go (warm up, then measure) or 'S' stop,
 *                    later 'X' exit (close the connections)
 *
 * So all measure together, and the parent can look at the server while
 * every connection is still held, after the results are in. */
#ifndef RINGBENCH_PROCS_H
#define RINGBENCH_PROCS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct bench_procs {
    unsigned n;
    pid_t *pid;
    int *up, *down; /* the parent's ends */
};

/* This process's end of the pipes, in a child. */
struct bench_child {
    unsigned index;
    int up, down;
};

/* Fork n children. Returns 0 in the parent, 1 in a child (with *self
 * set), -errno on failure (children already started are killed). */
int bench_procs_spawn(struct bench_procs *p, unsigned n, struct bench_child *self);

/* Write len bytes / read exactly len bytes; false on EOF or error. */
bool bench_write_all(int fd, const void *buf, size_t len);
bool bench_read_all(int fd, void *buf, size_t len);

/* Parent: send tag to every child. */
void bench_procs_tell(struct bench_procs *p, char tag);
/* Parent: reap every child (after 'X'); false if one did not exit 0 or 1. */
bool bench_procs_reap(struct bench_procs *p);
void bench_procs_free(struct bench_procs *p);

/* Child: the next tag from the parent, '\0' on EOF or error. */
char bench_child_next(const struct bench_child *c);

#endif
