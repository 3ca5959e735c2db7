/* Replays fuzzer inputs through LLVMFuzzerTestOneInput without libFuzzer,
 * so any compiler can run the corpus as a regression test:
 *
 *   fuzz_replay FILE-OR-DIR...
 *
 * Directories are read in name order (hidden files skipped). A failing
 * input aborts with the input's name (and, for the connection fuzzer,
 * built with RS_REPLAY_SCHED, the schedule driver's trace). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef RS_REPLAY_SCHED
#include "sched_driver.h"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned replayed;

static const char *current;

static void on_abort(int sig)
{
#ifdef RS_REPLAY_SCHED
    sched_dump_current(stderr);
#endif
    if (current)
        fprintf(stderr, "fuzz_replay: failing input: %s\n", current);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf || err) {
        fprintf(stderr, "fuzz_replay: %s: read failed\n", path);
        free(buf);
        return -1;
    }
#ifdef RS_REPLAY_SCHED
    snprintf(sched_context, sizeof(sched_context),
             "fuzz_replay %s  (RS_FUZZ_TRACE=1 to trace)", path);
#endif
    current = path;
    LLVMFuzzerTestOneInput(buf, len);
    current = NULL;
#ifdef RS_REPLAY_SCHED
    sched_context[0] = '\0';
#endif
    free(buf);
    replayed++;
    return 0;
}

static int replay(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "fuzz_replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char sub[4096];
        if (names[i]->d_name[0] != '.' && rc == 0) {
            snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
            if (stat(sub, &st) == 0 && S_ISREG(st.st_mode))
                rc = replay_file(sub);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fuzz_replay FILE-OR-DIR...\n");
        return 2;
    }
    signal(SIGABRT, on_abort);
    for (int i = 1; i < argc; i++)
        if (replay(argv[i]) < 0)
            return 1;
    /* An empty or mistyped corpus directory must not pass as a clean run. */
    if (replayed == 0) {
        fprintf(stderr, "fuzz_replay: no input found to replay\n");
        return 1;
    }
    printf("fuzz_replay: %u inputs replayed, all passed\n", replayed);
    return 0;
}
