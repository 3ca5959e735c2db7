/* nofile_exec N PROGRAM [ARGS...]: set RLIMIT_NOFILE to N (soft and hard),
 * then exec PROGRAM. The fault tests run the server through it to make
 * accept() hit EMFILE (or a full direct-descriptor table) with few clients:
 * ringserve raises its soft limit to the hard one, so the hard limit must be
 * the low one. Lowering a hard limit needs no privilege. Same process id
 * after the exec, so the harness still signals and measures the server. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s NOFILE PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    char *end = NULL;
    unsigned long n = strtoul(argv[1], &end, 10);
    if (!end || *end || n < 8) {
        fprintf(stderr, "%s: bad limit '%s'\n", argv[0], argv[1]);
        return 2;
    }
    struct rlimit rl = {.rlim_cur = n, .rlim_max = n};
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        fprintf(stderr, "%s: setrlimit(RLIMIT_NOFILE, %lu): %s\n", argv[0], n,
                strerror(errno));
        return 1;
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "%s: exec %s: %s\n", argv[0], argv[2], strerror(errno));
    return 127;
}
