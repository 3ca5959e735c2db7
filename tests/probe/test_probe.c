/* Tests for the kernel feature probe (probe/probe.c).
 *
 * The probe's answers depend on the machine, so these tests check
 * consistency rather than fixed values: the struct agrees with what the
 * test itself observes (can it create a ring?), facts imply each other
 * (defer_taskrun needs single_issuer), the JSON report is well-formed,
 * carries exactly the documented keys (docs/probe.md) and agrees with the
 * struct, and the text report is an aligned two-column table. The
 * unavailable path is exercised for real in a child process whose seccomp
 * filter makes io_uring_setup fail, as a container profile would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../skip_reason.h"

#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend_uring/features.h"
#include "probe.h"
#include "rs_build.h"

#if RS_HAVE_URING
#include <liburing.h>
#endif

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* --- a minimal JSON validator that records every scalar by dotted path --- */

enum { MAX_SCALARS = 128, PATH_LEN = 96, VALUE_LEN = 320 };

struct scalar {
    char path[PATH_LEN];
    char value[VALUE_LEN]; /* raw JSON text: true, 12, "str", null */
};

struct json {
    const char *s;
    size_t pos;
    int depth;
    struct scalar scalars[MAX_SCALARS];
    size_t n;
    bool duplicate;
};

static bool j_value(struct json *j, const char *path);

static void j_ws(struct json *j)
{
    while (j->s[j->pos] && strchr(" \t\r\n", j->s[j->pos]))
        j->pos++;
}

static bool j_lit(struct json *j, const char *lit)
{
    size_t n = strlen(lit);

    if (strncmp(j->s + j->pos, lit, n) != 0)
        return false;
    j->pos += n;
    return true;
}

static bool j_digits(struct json *j)
{
    size_t start = j->pos;

    while (j->s[j->pos] >= '0' && j->s[j->pos] <= '9')
        j->pos++;
    return j->pos > start;
}

static bool j_number(struct json *j)
{
    if (j->s[j->pos] == '-')
        j->pos++;
    if (j->s[j->pos] == '0')
        j->pos++;
    else if (!j_digits(j))
        return false;
    if (j->s[j->pos] == '.') {
        j->pos++;
        if (!j_digits(j))
            return false;
    }
    if (j->s[j->pos] == 'e' || j->s[j->pos] == 'E') {
        j->pos++;
        if (j->s[j->pos] == '+' || j->s[j->pos] == '-')
            j->pos++;
        if (!j_digits(j))
            return false;
    }
    return true;
}

/* A string; its decoded-enough text (escapes kept) goes to out if given. */
static bool j_string(struct json *j, char *out, size_t outlen)
{
    size_t n = 0;

    if (j->s[j->pos++] != '"')
        return false;
    for (;;) {
        unsigned char ch = (unsigned char)j->s[j->pos++];

        if (ch == '"')
            break;
        if (ch < 0x20)
            return false; /* includes the terminating NUL */
        if (ch == '\\') {
            char esc = j->s[j->pos++];
            if (esc == 'u') {
                for (int i = 0; i < 4; i++) {
                    char hex = j->s[j->pos++];
                    if (!hex || !strchr("0123456789abcdefABCDEF", hex))
                        return false;
                }
            } else if (!esc || !strchr("\"\\/bfnrt", esc)) {
                return false;
            }
        }
        if (out && n + 1 < outlen)
            out[n++] = (char)ch;
    }
    if (out)
        out[n] = '\0';
    return true;
}

static struct scalar *j_find(struct json *j, const char *path)
{
    for (size_t i = 0; i < j->n; i++)
        if (strcmp(j->scalars[i].path, path) == 0)
            return &j->scalars[i];
    return NULL;
}

static bool j_record(struct json *j, const char *path, size_t start)
{
    size_t len = j->pos - start;
    struct scalar *sc;

    if (j->n == MAX_SCALARS || len >= VALUE_LEN || strlen(path) >= PATH_LEN)
        return false;
    if (j_find(j, path))
        j->duplicate = true;
    sc = &j->scalars[j->n++];
    snprintf(sc->path, sizeof(sc->path), "%s", path);
    memcpy(sc->value, j->s + start, len);
    sc->value[len] = '\0';
    return true;
}

static bool j_member(struct json *j, const char *path)
{
    char key[64], sub[PATH_LEN * 2];

    j_ws(j);
    if (!j_string(j, key, sizeof(key)))
        return false;
    j_ws(j);
    if (j->s[j->pos++] != ':')
        return false;
    snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
    return j_value(j, sub);
}

static bool j_object(struct json *j, const char *path)
{
    j->pos++; /* '{' */
    j_ws(j);
    if (j->s[j->pos] == '}') {
        j->pos++;
        return true;
    }
    for (;;) {
        if (!j_member(j, path))
            return false;
        j_ws(j);
        if (j->s[j->pos] == '}') {
            j->pos++;
            return true;
        }
        if (j->s[j->pos++] != ',')
            return false;
    }
}

static bool j_array(struct json *j, const char *path)
{
    char sub[PATH_LEN * 2];

    j->pos++; /* '[' */
    j_ws(j);
    if (j->s[j->pos] == ']') {
        j->pos++;
        return true;
    }
    for (int i = 0;; i++) {
        snprintf(sub, sizeof(sub), "%s[%d]", path, i);
        if (!j_value(j, sub))
            return false;
        j_ws(j);
        if (j->s[j->pos] == ']') {
            j->pos++;
            return true;
        }
        if (j->s[j->pos++] != ',')
            return false;
    }
}

static bool j_value(struct json *j, const char *path)
{
    size_t start;
    bool ok;
    char c;

    j_ws(j);
    start = j->pos;
    c = j->s[j->pos];
    if (++j->depth > 16)
        return false;
    if (c == '{')
        ok = j_object(j, path);
    else if (c == '[')
        ok = j_array(j, path);
    else if (c == '"')
        ok = j_string(j, NULL, 0) && j_record(j, path, start);
    else if (c == '-' || (c >= '0' && c <= '9'))
        ok = j_number(j) && j_record(j, path, start);
    else
        ok = (j_lit(j, "true") || j_lit(j, "false") || j_lit(j, "null")) &&
             j_record(j, path, start);
    j->depth--;
    return ok;
}

/* Parse one top-level object and nothing after it. */
static bool json_parse(struct json *j, const char *text)
{
    memset(j, 0, sizeof(*j));
    j->s = text;
    j_ws(j);
    if (j->s[j->pos] != '{' || !j_value(j, ""))
        return false;
    j_ws(j);
    return j->s[j->pos] == '\0' && !j->duplicate;
}

/* --- helpers --- */

static char *report(bool json)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    assert_int_equal(rs_probe_report(f, json), 0);
    assert_int_equal(fclose(f), 0);
    assert_non_null(buf);
    return buf;
}

static const char *get(struct json *j, const char *path)
{
    struct scalar *sc = j_find(j, path);

    if (!sc)
        fail_msg("JSON lacks \"%s\"", path);
    return sc->value;
}

static void assert_json_bool(struct json *j, const char *path, bool want)
{
    const char *v = get(j, path);

    if (strcmp(v, want ? "true" : "false") != 0)
        fail_msg("%s is %s, the struct says %s", path, v, want ? "true" : "false");
}

static int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Every key documented in docs/probe.md, in no particular order. */
static const char *const documented[] = {
    "ringserve",
    "kernel",
    "arch",
    "liburing",
    "cpus",
    "io_uring.compiled",
    "io_uring.available",
    "io_uring.errno",
    "io_uring.reason",
    "io_uring.io_uring_disabled",
    "io_uring.features_mask",
    "io_uring.opcodes.accept",
    "io_uring.opcodes.recv",
    "io_uring.opcodes.send",
    "io_uring.opcodes.send_zc",
    "io_uring.opcodes.recvmsg",
    "io_uring.opcodes.sendmsg",
    "io_uring.opcodes.poll_add",
    "io_uring.opcodes.provide_buffers",
    "io_uring.opcodes.close",
    "io_uring.opcodes.shutdown",
    "io_uring.opcodes.async_cancel",
    "io_uring.opcodes.socket",
    "io_uring.opcodes.read",
    "io_uring.opcodes.msg_ring",
    "io_uring.opcodes.bind",
    "io_uring.opcodes.listen",
    "io_uring.opcodes.recv_zc",
    "io_uring.opcodes.epoll_wait",
    "io_uring.opcodes.pipe",
    "io_uring.setup.sqpoll",
    "io_uring.setup.single_issuer",
    "io_uring.setup.defer_taskrun",
    "io_uring.setup.coop_taskrun",
    "io_uring.setup.taskrun_flag",
    "io_uring.setup.submit_all",
    "io_uring.setup.cqsize",
    "io_uring.setup.no_sqarray",
    "io_uring.setup.sq_rewind",
    "io_uring.features.single_mmap",
    "io_uring.features.nodrop",
    "io_uring.features.submit_stable",
    "io_uring.features.rw_cur_pos",
    "io_uring.features.cur_personality",
    "io_uring.features.fast_poll",
    "io_uring.features.poll_32bits",
    "io_uring.features.sqpoll_nonfixed",
    "io_uring.features.ext_arg",
    "io_uring.features.native_workers",
    "io_uring.features.rsrc_tags",
    "io_uring.features.cqe_skip",
    "io_uring.features.linked_file",
    "io_uring.features.reg_reg_ring",
    "io_uring.features.recvsend_bundle",
    "io_uring.features.min_timeout",
    "io_uring.register.buf_ring",
    "io_uring.register.sparse_files",
    "io_uring.register.ring_fd",
    "io_uring.register.buf_ring_inc",
    "io_uring.register.resize_rings",
    "io_uring.register.wait_region",
    "io_uring.register.napi",
    "io_uring.register.zcrx_nodev",
    "io_uring.register.query",
    "io_uring.register.zcrx_lo",
    "io_uring.register.query_request_ops",
    "io_uring.register.query_register_ops",
    "io_uring.multishot.accept",
    "io_uring.multishot.recv",
    "io_uring.multishot.accept_direct",
    "io_uring.multishot.send_zc",
    "io_uring.multishot.socket_direct",
    "io_uring.multishot.sockopt_cmd",
    "io_uring.multishot.buf_recycle",
    "io_uring.multishot.pipe_direct",
    "io_uring.multishot.listen_direct",
    "epoll.exclusive",
    "epoll.busy_poll_ioctl",
    "limits.nofile.soft",
    "limits.nofile.hard",
    "limits.memlock.soft",
    "limits.memlock.hard",
    "summary.backend",
    "summary.backend_reason",
    "summary.default_features",
    "summary.features.multishot-accept",
    "summary.features.multishot-recv",
    "summary.features.buf-ring",
    "summary.features.fixed-files",
    "summary.features.ring-fd",
    "summary.features.defer-taskrun",
    "summary.features.send-zc",
    "summary.features.sqpoll",
    "summary.features.bundle",
    "summary.features.batch-wait",
    "summary.features.direct-socket",
    "summary.features.ext-arg",
    "summary.features.shutdown-op",
    "summary.features.buf-recycle",
    "summary.features.buf-inc",
    "summary.features.resize",
    "summary.features.wait-reg",
    "summary.features.direct-pipe",
    "summary.features.direct-listen",
    "summary.reasons.multishot-accept",
    "summary.reasons.multishot-recv",
    "summary.reasons.buf-ring",
    "summary.reasons.fixed-files",
    "summary.reasons.ring-fd",
    "summary.reasons.defer-taskrun",
    "summary.reasons.send-zc",
    "summary.reasons.sqpoll",
    "summary.reasons.bundle",
    "summary.reasons.batch-wait",
    "summary.reasons.direct-socket",
    "summary.reasons.ext-arg",
    "summary.reasons.shutdown-op",
    "summary.reasons.buf-recycle",
    "summary.reasons.buf-inc",
    "summary.reasons.resize",
    "summary.reasons.wait-reg",
    "summary.not_used.napi",
    "summary.not_used.zcrx",
    "summary.reasons.direct-pipe",
    "summary.reasons.direct-listen",
};

/* Every boolean fact of the struct, as false when io_uring is unusable. */
static bool any_fact(const struct rs_uring_support *s)
{
    return s->sqpoll || s->single_issuer || s->defer_taskrun || s->coop_taskrun ||
           s->taskrun_flag || s->submit_all || s->cqsize || s->no_sqarray ||
           s->buf_ring || s->sparse_files || s->ring_fd || s->multishot_accept ||
           s->multishot_recv || s->accept_direct || s->send_zc || s->recvsend_bundle ||
           s->socket_direct || s->sockopt_cmd || s->features || s->opcodes ||
           s->resize_rings || s->wait_region || s->napi || s->sq_rewind ||
           s->zcrx_nodev || s->query;
}

/* --- struct tests --- */

static void test_probe_available_matches_queue_init(void **state)
{
    struct rs_uring_support s;

    (void)state;
    rs_probe_uring(&s);
#if RS_HAVE_URING
    struct io_uring ring;
    int ret = io_uring_queue_init(8, &ring, 0);

    if (ret == 0)
        io_uring_queue_exit(&ring);
    assert_true(s.compiled);
    assert_int_equal(s.available, ret == 0);
    if (ret < 0)
        assert_int_equal(s.unavailable_err, -ret);
#else
    assert_false(s.compiled);
    assert_false(s.available);
#endif
}

static void test_probe_facts_are_consistent(void **state)
{
    struct rs_uring_support s;

    (void)state;
    rs_probe_uring(&s);
    if (!s.available) {
        assert_true(s.unavailable_err > 0);
        assert_true(s.why[0] != '\0');
        assert_false(any_fact(&s));
        return;
    }
    assert_int_equal(s.unavailable_err, 0);
    assert_string_equal(s.why, "");
    assert_true(!s.defer_taskrun || s.single_issuer);
    assert_true(!s.taskrun_flag || s.coop_taskrun);
    assert_true(!s.multishot_recv || s.buf_ring);
    assert_true(!s.accept_direct || s.sparse_files);
    assert_int_equal(s.recvsend_bundle, (s.features & (1U << 14)) != 0);
    assert_int_equal(s.min_timeout, (s.features & (1U << 15)) != 0);
#if RS_HAVE_URING
    /* A kernel that can run send_zc must list the opcode. */
    assert_true(!s.send_zc || (s.opcodes >> IORING_OP_SEND_ZC & 1));
    assert_true(s.opcodes >> IORING_OP_NOP & 1);
#endif
}

/* Every check closes what it opened, and the whole probe is quick. The
 * brief is < 200 ms; the bound here is loose for sanitizers and busy CI.
 * A process that gets no CPU for a second (a loaded machine, a stolen
 * vCPU) makes any one run slow: the probe (never cached) runs again, and
 * only one that is slow every time fails, after PROBE_RUNS runs. */
#define PROBE_RUNS 5
static void test_probe_cleans_up_and_is_fast(void **state)
{
    struct rs_uring_support s;
    int fds = count_open_fds();
    double ms = 0;

    (void)state;
    for (int i = 0; i < PROBE_RUNS; i++) {
        double t0 = now_ms();
        rs_probe_uring(&s);
        ms = now_ms() - t0;
        print_message("rs_probe_uring took %.1f ms\n", ms);
        assert_int_equal(count_open_fds(), fds);
        if (ms < 1000.0)
            return;
    }
    fail_msg("rs_probe_uring took over 1 s in each of %d runs (the last %.1f ms)",
             PROBE_RUNS, ms);
}

/* Nothing of the probe reaches the calling thread once it returned. The
 * trials end rings with requests still armed; the kernel cancels those
 * afterwards and notifies the task that submitted them with task work,
 * which interrupts a blocking socket call with SO_RCVTIMEO (EINTR) like a
 * signal would. rs_server_start probes in its caller's thread: a program
 * that then talked to its server saw its recv fail (test_server, about 1
 * run in 8 under load). The probe runs its trials on a thread of its own. */
/* A stop and a continue (SIGSTOP, a freezer) end such a recv with EINTR
 * too: counted by a SIGCONT handler, which has run when the recv returns,
 * so an EINTR it explains is tried again and only the probe's fails. */
static volatile sig_atomic_t conts;

static void on_cont(int sig)
{
    (void)sig;
    conts++;
}

static int probe_then_recv(void)
{
    struct rs_uring_support s;
    int sv[2];
    struct timeval tv = {.tv_usec = 20 * 1000};

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
        setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        sigaction(SIGCONT, &(struct sigaction){.sa_handler = on_cont}, NULL) != 0)
        return 2;
    for (int round = 0; round < 5; round++) {
        rs_probe_uring(&s);
        for (int i = 0; i < 5; i++) { /* nothing comes: each recv times out */
            char b;
            sig_atomic_t seen = conts;
            errno = 0;
            ssize_t r = recv(sv[0], &b, 1, 0);
            if (r == -1 && errno == EINTR && conts != seen) {
                i--;
                continue;
            }
            if (r != -1 || errno != EAGAIN) {
                fprintf(stderr, "round %d, recv %d after the probe: %s\n", round, i,
                        strerror(errno));
                return 1;
            }
        }
    }
    return 0;
}

/* In a child: a thread that never touched io_uring itself (the tests
 * above did, in this process). */
static void test_probe_never_interrupts_the_caller(void **state)
{
    int status;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(probe_then_recv());
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* --- report tests --- */

static void test_probe_json_is_documented_and_agrees(void **state)
{
    struct rs_uring_support s;
    struct json *j = malloc(sizeof(*j));
    char *text = report(true);
    struct rlimit rl;

    (void)state;
    assert_non_null(j);
    rs_probe_uring(&s);
    if (!json_parse(j, text))
        fail_msg("invalid JSON near offset %zu:\n%s", j->pos, text);
    for (size_t i = 0; i < COUNT(documented); i++)
        get(j, documented[i]);
    assert_int_equal(j->n, COUNT(documented)); /* no undocumented keys */

    assert_json_bool(j, "io_uring.available", s.available);
    assert_json_bool(j, "io_uring.compiled", s.compiled);
    assert_json_bool(j, "io_uring.setup.defer_taskrun", s.defer_taskrun);
    assert_json_bool(j, "io_uring.register.buf_ring", s.buf_ring);
    assert_json_bool(j, "io_uring.multishot.recv", s.multishot_recv);
    assert_json_bool(j, "io_uring.features.recvsend_bundle", s.recvsend_bundle);
    assert_json_bool(j, "io_uring.features.min_timeout", s.min_timeout);
    assert_json_bool(j, "io_uring.multishot.socket_direct", s.socket_direct);
    assert_json_bool(j, "io_uring.multishot.sockopt_cmd", s.sockopt_cmd);
    assert_json_bool(j, "io_uring.multishot.buf_recycle", s.buf_recycle);
    assert_json_bool(j, "io_uring.multishot.pipe_direct", s.pipe_direct);
    assert_json_bool(j, "io_uring.multishot.listen_direct", s.listen_direct);
    assert_int_equal(strtoull(get(j, "io_uring.features_mask"), NULL, 10), s.features);
    assert_string_equal(get(j, "liburing"), "\"" RS_LIBURING_VERSION "\"");
    if (s.available) {
        assert_string_equal(get(j, "io_uring.errno"), "null");
        assert_string_equal(get(j, "io_uring.reason"), "null");
    } else {
        assert_true(get(j, "io_uring.reason")[0] == '"');
    }
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur != RLIM_INFINITY)
        assert_int_equal(strtoull(get(j, "limits.nofile.soft"), NULL, 10), rl.rlim_cur);
    free(j);
    free(text);
}

static bool is_heading(const char *line)
{
    static const char *const headings[] = {
        "Summary (what ringserve uses on this kernel)",
        "System",
        "io_uring",
        "io_uring opcodes (IORING_REGISTER_PROBE)",
        "io_uring setup flags (a ring created with each)",
        "io_uring features (io_uring_params.features)",
        "io_uring registrations (tried)",
        "io_uring ops on a loopback connection",
        "epoll",
        "Limits",
    };

    for (size_t i = 0; i < COUNT(headings); i++)
        if (strcmp(line, headings[i]) == 0)
            return true;
    return false;
}

/* Rows are "  <label padded to 26> <value>": the value starts at column 29. */
static void assert_text_line(const char *line)
{
    size_t len = strlen(line);

    if (len == 0 || is_heading(line))
        return;
    if (len < 30 || strncmp(line, "  ", 2) != 0 || line[2] == ' ' || line[28] != ' ' ||
        line[29] == ' ')
        fail_msg("misaligned row: \"%s\"", line);
}

static void test_probe_text_is_an_aligned_table(void **state)
{
    struct rs_uring_support s;
    struct utsname u;
    char *text = report(false);
    char *save = NULL, *line;
    char want[128];
    int rows = 0;

    (void)state;
    rs_probe_uring(&s);
    assert_int_equal(uname(&u), 0);
    snprintf(want, sizeof(want), "\n  %-26s %s\n", "kernel", u.release);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "\n  %-26s %s\n", "available",
             s.available ? "yes" : "no");
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "(null)"));
    assert_true(strncmp(text, "ringserve ", 10) == 0);
    line = strtok_r(strchr(text, '\n'), "\n", &save);
    for (; line; line = strtok_r(NULL, "\n", &save), rows++)
        assert_text_line(line);
    assert_true(rows > 50);
    free(text);
}

/* --- the summary, from facts made up to look like kernels ringserve meets
 * (tools/kernels checks the real ones on Debian's 6.1 and 6.12) --- */

/* Linux 6.1 as Debian ships it: no bundles, no min-timeout waits. */
static struct rs_uring_support kernel_6_1(void)
{
    struct rs_uring_support s = {
        .available = true,
        .compiled = true,
        .disabled_sysctl = -1,
        .sqpoll = true,
        .single_issuer = true,
        .defer_taskrun = true,
        .coop_taskrun = true,
        .taskrun_flag = true,
        .submit_all = true,
        .cqsize = true,
        .buf_ring = true,
        .sparse_files = true,
        .ring_fd = true,
        .multishot_accept = true,
        .multishot_recv = true,
        .accept_direct = true,
        .send_zc = true,
        .opcodes = ~0ull,
        .features = 0x1fff,
    };
    return s;
}

static const struct rs_feature_summary *verdict_of(const struct rs_probe_summary *sum,
                                                   const char *name)
{
    for (size_t i = 0; i < sum->n; i++)
        if (strcmp(sum->f[i].name, name) == 0)
            return &sum->f[i];
    fail_msg("no verdict for %s", name);
    return NULL;
}

static void test_probe_summary_on_6_1(void **state)
{
    struct rs_uring_support s = kernel_6_1();
    struct rs_probe_summary sum;

    (void)state;
    rs_probe_summarize(&s, &sum);
    assert_string_equal(sum.backend, "uring");
    assert_string_equal(sum.backend_why, "");
    assert_string_equal(sum.defaults, "multishot-accept,multishot-recv,buf-ring,"
                                      "fixed-files,ring-fd,defer-taskrun,send-zc,"
                                      "ext-arg,shutdown-op");
    assert_int_equal(verdict_of(&sum, "sqpoll")->verdict, RS_FEATURE_OPT_IN);
    assert_int_equal(verdict_of(&sum, "bundle")->verdict, RS_FEATURE_UNAVAILABLE);
    assert_non_null(strstr(verdict_of(&sum, "bundle")->why, "6.10"));
    assert_int_equal(verdict_of(&sum, "batch-wait")->verdict, RS_FEATURE_UNAVAILABLE);
    assert_non_null(strstr(verdict_of(&sum, "batch-wait")->why, "6.12"));
    assert_string_equal(verdict_of(&sum, "send-zc")->why, "");
    /* 6.1 has IORING_OP_SOCKET but not the setsockopt command: outbound
     * sockets stay plain fds, and the summary says why. */
    s.socket_direct = true;
    rs_probe_summarize(&s, &sum);
    assert_int_equal(verdict_of(&sum, "direct-socket")->verdict, RS_FEATURE_UNAVAILABLE);
    assert_non_null(strstr(verdict_of(&sum, "direct-socket")->why, "6.7"));
    assert_non_null(strstr(verdict_of(&sum, "direct-socket")->why, "plain fds"));
    assert_non_null(strstr(sum.outbound, "plain fds"));
    assert_non_null(strstr(sum.outbound, "SOCKET_URING_OP_SETSOCKOPT"));
    /* 6.7+: direct, by default. */
    s.sockopt_cmd = true;
    rs_probe_summarize(&s, &sum);
    assert_int_equal(verdict_of(&sum, "direct-socket")->verdict, RS_FEATURE_DEFAULT);
    assert_non_null(strstr(sum.defaults, "send-zc,direct-socket,ext-arg"));
    assert_non_null(strstr(sum.outbound, "direct descriptors"));
    /* ...but never without fixed-files. */
    s.accept_direct = false;
    rs_probe_summarize(&s, &sum);
    assert_int_equal(verdict_of(&sum, "direct-socket")->verdict, RS_FEATURE_UNAVAILABLE);
    assert_non_null(strstr(verdict_of(&sum, "direct-socket")->why, "needs fixed-files"));
    s.accept_direct = true;
    s.socket_direct = s.sockopt_cmd = false;
    /* 6.12 adds both: opt-in, never default. */
    s.recvsend_bundle = s.min_timeout = true;
    rs_probe_summarize(&s, &sum);
    assert_int_equal(verdict_of(&sum, "bundle")->verdict, RS_FEATURE_OPT_IN);
    assert_int_equal(verdict_of(&sum, "batch-wait")->verdict, RS_FEATURE_OPT_IN);
}

/* An older kernel (5.15-like): each missing piece is named, and a feature
 * that needs another says so. */
static void test_probe_summary_names_what_is_missing(void **state)
{
    struct rs_uring_support s = kernel_6_1();
    struct rs_probe_summary sum;

    (void)state;
    s.buf_ring = s.multishot_recv = s.defer_taskrun = s.single_issuer = false;
    s.send_zc = false;
    s.opcodes = 0;
    rs_probe_summarize(&s, &sum);
    assert_string_equal(sum.defaults, "multishot-accept,fixed-files,ring-fd,ext-arg");
    assert_non_null(strstr(verdict_of(&sum, "multishot-recv")->why, "needs buf-ring"));
    assert_non_null(strstr(verdict_of(&sum, "defer-taskrun")->why, "COOP_TASKRUN"));
    assert_non_null(strstr(verdict_of(&sum, "send-zc")->why, "6.0"));
    /* No io_uring at all: epoll, and every feature says why. */
    s = (struct rs_uring_support){.compiled = true, .disabled_sysctl = 2};
    snprintf(s.why, sizeof(s.why), "EPERM: kernel.io_uring_disabled=2");
    rs_probe_summarize(&s, &sum);
    assert_string_equal(sum.backend, "epoll");
    assert_non_null(strstr(sum.backend_why, "io_uring_disabled=2"));
    assert_string_equal(sum.defaults, "none");
    for (size_t i = 0; i < sum.n; i++) {
        assert_int_equal(sum.f[i].verdict, RS_FEATURE_UNAVAILABLE);
        assert_non_null(strstr(sum.f[i].why, "io_uring_disabled=2"));
    }
}

/* Linux 5.10 as released (5.10.0, before Debian's 5.10.162+ took the 5.15
 * io_uring): single-shot ops, IORING_OP_PROVIDE_BUFFERS, no EXT_ARG, no
 * IORING_OP_SHUTDOWN. The backend is still io_uring, with no feature on,
 * and the summary says what each missing piece costs. */
static void test_probe_summary_on_5_10(void **state)
{
    struct rs_uring_support s = {
        .available = true,
        .compiled = true,
        .disabled_sysctl = -1,
        .sqpoll = true,
        .cqsize = true,
        .features = 0xff,            /* SINGLE_MMAP .. SQPOLL_NONFIXED: no EXT_ARG */
        .opcodes = (1ull << 34) - 1, /* up to IORING_OP_TEE (33): no SHUTDOWN */
    };
    struct rs_probe_summary sum;
    uint32_t f;
    char err[256];

    (void)state;
    rs_probe_summarize(&s, &sum);
    assert_string_equal(sum.backend, "uring");
    assert_string_equal(sum.defaults, "none");
    assert_non_null(strstr(verdict_of(&sum, "ext-arg")->why, "5.11"));
    assert_non_null(strstr(verdict_of(&sum, "ext-arg")->why, "IORING_OP_TIMEOUT"));
    assert_non_null(strstr(verdict_of(&sum, "shutdown-op")->why, "shutdown(2)"));
    assert_non_null(strstr(verdict_of(&sum, "buf-ring")->why, "5.19"));
    assert_non_null(strstr(verdict_of(&sum, "buf-recycle")->why, "IORING_OP_POLL_ADD"));
    assert_non_null(strstr(sum.outbound, "plain fds"));
    /* Asking for it is an error naming it; auto- leaves it out. */
    assert_int_equal(rs_uring_features_parse("default,ext-arg", rs_uring_supported(&s),
                                             &f, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "ext-arg"));
    assert_int_equal(
        rs_uring_features_parse("auto-all", rs_uring_supported(&s), &f, err, sizeof(err)),
        0);
    assert_int_equal(f, UF_SQPOLL);
    /* Debian's 5.10.262: EXT_ARG and SHUTDOWN backported, both default. */
    s.features = 0x7ff;
    s.opcodes = (1ull << 40) - 1;
    rs_probe_summarize(&s, &sum);
    assert_string_equal(sum.defaults, "ext-arg,shutdown-op");
    /* The batched wait is an EXT_ARG wait: never without it. */
    assert_int_equal(
        rs_uring_features_parse("batch-wait,-ext-arg", UF_ALL, &f, err, sizeof(err)), 0);
    assert_int_equal(f, 0);
}

/* What the real probe reports agrees with what the server starts with. */
static void test_probe_summary_text_comes_first(void **state)
{
    char *text = report(false);
    const char *summary = strstr(text, "\nSummary (");
    const char *system = strstr(text, "\nSystem\n");

    (void)state;
    assert_non_null(summary);
    assert_non_null(system);
    assert_true(summary < system);
    assert_non_null(strstr(text, "\n  backend (auto)             "));
    free(text);
}

/* --- the unavailable path, for real: a seccomp filter answers io_uring_setup
 * with `err`, as container runtimes' default profiles do. --- */

static int deny_io_uring_setup(int err)
{
    /* No architecture check: the child only runs this binary's own code. */
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)COUNT(f), .filter = f};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -errno;
    return 0;
}

/* Child side: no cmocka asserts (they would unwind into the parent's
 * runner state); report the first failed check as the exit status. */
static int child_check_denied(int err, const char *why_word)
{
    struct rs_uring_support s;
    struct json *j = malloc(sizeof(*j));
    char *text = NULL;
    size_t len = 0;
    FILE *f;
    char want[32];

    if (!j || deny_io_uring_setup(err) < 0)
        return 8; /* no seccomp filter: a failure, not a skip */
    rs_probe_uring(&s);
    if (s.available || s.unavailable_err != err || any_fact(&s))
        return 2;
    if (why_word && !strstr(s.why, why_word))
        return 3;
    f = open_memstream(&text, &len);
    if (!f || rs_probe_report(f, true) != 0 || fclose(f) != 0)
        return 4;
    if (!json_parse(j, text))
        return 5;
    snprintf(want, sizeof(want), "\"%s\"", err == EPERM ? "EPERM" : "ENOSYS");
    if (!j_find(j, "io_uring.errno") || strcmp(j_find(j, "io_uring.errno")->value, want))
        return 6;
    if (strcmp(j_find(j, "io_uring.available")->value, "false") != 0)
        return 7;
    return 0;
}

static void run_denied(int err, const char *why_word)
{
    int status;
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0)
        _exit(child_check_denied(err, why_word));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("denied with errno %d: check %d failed", err, WEXITSTATUS(status));
}

static void test_probe_reports_seccomp_eperm(void **state)
{
    struct rs_uring_support s;

    (void)state;
    rs_probe_uring(&s);
    if (!s.available) { /* already unavailable here: nothing to deny */
        rs_skip_reason("io_uring unavailable: %s", s.why);
        skip();
    }
    /* With the sysctl at 0 (or absent), EPERM can only be a filter. */
    run_denied(EPERM, s.disabled_sysctl <= 0 ? "seccomp" : NULL);
}

static void test_probe_reports_enosys(void **state)
{
    struct rs_uring_support s;

    (void)state;
    rs_probe_uring(&s);
    if (!s.available) {
        rs_skip_reason("io_uring unavailable: %s", s.why);
        skip();
    }
    run_denied(ENOSYS, "CONFIG_IO_URING");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_available_matches_queue_init),
        cmocka_unit_test(test_probe_facts_are_consistent),
        cmocka_unit_test(test_probe_cleans_up_and_is_fast),
        cmocka_unit_test(test_probe_never_interrupts_the_caller),
        cmocka_unit_test(test_probe_json_is_documented_and_agrees),
        cmocka_unit_test(test_probe_text_is_an_aligned_table),
        cmocka_unit_test(test_probe_summary_on_6_1),
        cmocka_unit_test(test_probe_summary_names_what_is_missing),
        cmocka_unit_test(test_probe_summary_on_5_10),
        cmocka_unit_test(test_probe_summary_text_comes_first),
        cmocka_unit_test(test_probe_reports_seccomp_eperm),
        cmocka_unit_test(test_probe_reports_enosys),
    };

    return cmocka_run_group_tests_name("probe", tests, NULL, NULL);
}
