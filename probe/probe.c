/* Kernel feature probe.
 *
 * Version numbers lie about io_uring: distributions backport features into
 * old kernels, a sysctl (kernel.io_uring_disabled) or a container's seccomp
 * profile forbids the whole interface on new ones, and a header can name a
 * flag the running kernel rejects. So this file asks the kernel by trying:
 * it creates a ring with each setup flag, registers each resource, and runs
 * the socket operations the uring backend relies on against a loopback
 * connection, checking the completion flags the backend will depend on
 * (IORING_CQE_F_MORE, F_BUFFER, F_NOTIF).
 *
 * Every check owns what it creates (ring, socket, mapping) and destroys it
 * before returning, so the probe leaves no descriptor, mapping or kernel
 * thread behind. Loopback completions arrive in microseconds; a bounded
 * wait (WAIT_NS) keeps a kernel that never answers from hanging the probe.
 * Any failure of a check means "no"; only the first check (can a plain ring
 * be created at all?) explains why, because that is what users must fix.
 *
 * The io_uring trials live with the backend, in backend_uring/probe_*.c
 * (core/ never includes liburing); this file probes epoll and the limits,
 * and prints the report.
 */
#include "probe.h"
#include "rs_build.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef EPOLLEXCLUSIVE
#define EPOLLEXCLUSIVE (1U << 28)
#endif
/* epoll busy-poll parameters (Linux 6.9); glibc before 2.40 lacks them. */
#ifndef EPIOCSPARAMS
struct epoll_params {
    uint32_t busy_poll_usecs;
    uint16_t busy_poll_budget;
    uint8_t prefer_busy_poll;
    uint8_t pad; /* must be zero */
};
#define EPIOCSPARAMS _IOW(0x8A, 0x01, struct epoll_params)
#endif

/* --- names for the report ------------------------------------------------ */

/* A boolean member of struct rs_uring_support, printed under `key`. */
struct named_field {
    const char *key;
    size_t off;
};

#define OFF(member) offsetof(struct rs_uring_support, member)

static const struct named_field setup_fields[] = {
    {"sqpoll", OFF(sqpoll)},
    {"single_issuer", OFF(single_issuer)},
    {"defer_taskrun", OFF(defer_taskrun)},
    {"coop_taskrun", OFF(coop_taskrun)},
    {"taskrun_flag", OFF(taskrun_flag)},
    {"submit_all", OFF(submit_all)},
    {"cqsize", OFF(cqsize)},
    {"no_sqarray", OFF(no_sqarray)},
    {"sq_rewind", OFF(sq_rewind)},
};

static const struct named_field register_fields[] = {
    {"buf_ring", OFF(buf_ring)},
    {"sparse_files", OFF(sparse_files)},
    {"ring_fd", OFF(ring_fd)},
    {"buf_ring_inc", OFF(buf_ring_inc)},
    {"resize_rings", OFF(resize_rings)},
    {"wait_region", OFF(wait_region)},
    {"napi", OFF(napi)},
    {"zcrx_nodev", OFF(zcrx_nodev)},
    {"query", OFF(query)},
};

static const struct named_field multishot_fields[] = {
    {"accept", OFF(multishot_accept)},     {"recv", OFF(multishot_recv)},
    {"accept_direct", OFF(accept_direct)}, {"send_zc", OFF(send_zc)},
    {"socket_direct", OFF(socket_direct)}, {"sockopt_cmd", OFF(sockopt_cmd)},
    {"buf_recycle", OFF(buf_recycle)},     {"pipe_direct", OFF(pipe_direct)},
    {"listen_direct", OFF(listen_direct)},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bool field_get(const struct rs_uring_support *s, size_t off)
{
    bool v;

    memcpy(&v, (const char *)s + off, sizeof(v));
    return v;
}

/* Symbolic names for the errors a probe meets; bug reports grep for them.
 * ENOTSUP has the same value as EOPNOTSUPP on Linux. */
const char *rs_probe_errno_name(int err)
{
    static const struct {
        int err;
        const char *name;
    } names[] = {
        {EPERM, "EPERM"},   {ENOSYS, "ENOSYS"}, {ENOMEM, "ENOMEM"},   {EINVAL, "EINVAL"},
        {EACCES, "EACCES"}, {EMFILE, "EMFILE"}, {ENFILE, "ENFILE"},   {EFAULT, "EFAULT"},
        {EBUSY, "EBUSY"},   {ENOTTY, "ENOTTY"}, {ENOTSUP, "ENOTSUP"}, {ENODEV, "ENODEV"},
    };

    for (size_t i = 0; i < COUNT(names); i++)
        if (names[i].err == err)
            return names[i].name;
    return "EOTHER"; /* the reason text still carries strerror() */
}

/* --- epoll, limits ------------------------------------------------------- */

struct epoll_facts {
    int exclusive_err; /* 0: EPOLLEXCLUSIVE accepted (Linux 4.5) */
    int busy_poll_err; /* 0: EPIOCSPARAMS accepted (Linux 6.9) */
};

static int epoll_exclusive_err(int epfd)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int err = 0;

    if (fd < 0)
        return errno;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        err = errno;
    close(fd);
    return err;
}

/* All-zero parameters are valid and unprivileged: busy polling stays off. */
static int epoll_busy_poll_err(int epfd)
{
    struct epoll_params params;

    memset(&params, 0, sizeof(params));
    return ioctl(epfd, EPIOCSPARAMS, &params) < 0 ? errno : 0;
}

static void probe_epoll(struct epoll_facts *f)
{
    int epfd = epoll_create1(EPOLL_CLOEXEC);

    if (epfd < 0) {
        f->exclusive_err = f->busy_poll_err = errno;
        return;
    }
    f->exclusive_err = epoll_exclusive_err(epfd);
    f->busy_poll_err = epoll_busy_poll_err(epfd);
    close(epfd);
}

/* --- report emitter: one walk over the facts, printed as JSON or as an
 * aligned two-column table. Nested JSON objects become text sections. --- */

enum { LABEL_WIDTH = 26 };

struct emit {
    FILE *out;
    bool json;
    int depth;          /* JSON nesting */
    bool first;         /* JSON: nothing written yet in the current object */
    const char *prefix; /* text: label prefix inside a sub-object */
};

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            fprintf(out, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(out, "\\u%04x", ch);
        else
            fputc(ch, out);
    }
    fputc('"', out);
}

static void json_key(struct emit *e, const char *key)
{
    fprintf(e->out, "%s\n%*s", e->first ? "" : ",", 2 * e->depth, "");
    json_string(e->out, key);
    fputs(": ", e->out);
    e->first = false;
}

static void text_row(struct emit *e, const char *key, const char *value)
{
    char label[64];

    snprintf(label, sizeof(label), "%s%s%s", e->prefix ? e->prefix : "",
             e->prefix ? " " : "", key);
    fprintf(e->out, "  %-*s %s\n", LABEL_WIDTH, label, value);
}

/* A JSON object that is a section (with a heading) in text mode. */
static void emit_open(struct emit *e, const char *key, const char *heading)
{
    if (!e->json) {
        fprintf(e->out, "\n%s\n", heading);
        return;
    }
    json_key(e, key);
    fputc('{', e->out);
    e->depth++;
    e->first = true;
}

/* A JSON object whose members are prefixed rows in text mode. */
static void emit_sub(struct emit *e, const char *key, const char *prefix)
{
    if (!e->json) {
        e->prefix = prefix;
        return;
    }
    emit_open(e, key, NULL);
}

static void emit_close(struct emit *e)
{
    e->prefix = NULL;
    if (!e->json)
        return;
    e->depth--;
    fprintf(e->out, "\n%*s}", 2 * e->depth, "");
    e->first = false;
}

static void emit_str(struct emit *e, const char *key, const char *value)
{
    if (!e->json) {
        text_row(e, key, value ? value : "-");
        return;
    }
    json_key(e, key);
    if (value)
        json_string(e->out, value);
    else
        fputs("null", e->out);
}

static void emit_bool(struct emit *e, const char *key, bool value)
{
    if (!e->json) {
        text_row(e, key, value ? "yes" : "no");
        return;
    }
    json_key(e, key);
    fputs(value ? "true" : "false", e->out);
}

/* A yes/no fact whose "no" has an errno worth showing in text mode. */
static void emit_bool_err(struct emit *e, const char *key, int err)
{
    char value[48];

    if (e->json || err == 0) {
        emit_bool(e, key, err == 0);
        return;
    }
    snprintf(value, sizeof(value), "no (%s)", rs_probe_errno_name(err));
    text_row(e, key, value);
}

static void emit_num(struct emit *e, const char *key, unsigned long long value)
{
    char buf[32];

    snprintf(buf, sizeof(buf), "%llu", value);
    if (!e->json) {
        text_row(e, key, buf);
        return;
    }
    json_key(e, key);
    fputs(buf, e->out);
}

/* An integer that may be absent: JSON null, text `absent_text`. */
static void emit_opt_num(struct emit *e, const char *key, bool present,
                         unsigned long long value, const char *absent_text)
{
    if (present)
        emit_num(e, key, value);
    else if (e->json)
        emit_str(e, key, NULL);
    else
        text_row(e, key, absent_text);
}

/* --- report sections --- */

static void report_system(struct emit *e)
{
    struct utsname u;
    bool have_uname = uname(&u) == 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);

    if (!e->json)
        fprintf(e->out, "\nSystem\n");
    else
        emit_str(e, "ringserve", RS_VERSION);
    emit_str(e, "kernel", have_uname ? u.release : NULL);
    emit_str(e, "arch", have_uname ? u.machine : NULL);
    emit_str(e, "liburing", RS_LIBURING_VERSION);
    emit_opt_num(e, "cpus", cpus > 0, (unsigned long long)cpus, "unknown");
}

static void report_fields(struct emit *e, const struct rs_uring_support *s,
                          const struct named_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        emit_bool(e, f[i].key, field_get(s, f[i].off));
}

static void report_opcodes(struct emit *e, const struct rs_uring_support *s)
{
    emit_open(e, "opcodes", "io_uring opcodes (IORING_REGISTER_PROBE)");
    for (size_t i = 0; i < rs_uring_nopcode_names; i++) {
        unsigned op = rs_uring_opcode_names[i].bit;
        emit_bool(e, rs_uring_opcode_names[i].key, op < 64 && (s->opcodes >> op & 1));
    }
    emit_close(e);
}

static void report_features(struct emit *e, const struct rs_uring_support *s)
{
    emit_open(e, "features", "io_uring features (io_uring_params.features)");
    for (size_t i = 0; i < rs_uring_nfeature_names; i++)
        emit_bool(e, rs_uring_feature_names[i].key,
                  (s->features & rs_uring_feature_names[i].bit) != 0);
    emit_close(e);
}

/* Zero-copy receive needs a network card's queue: on loopback the
 * registration's error is the finding. IORING_REGISTER_QUERY's counts say
 * which opcodes a kernel newer than the names above has. */
static void report_nic_and_query(struct emit *e, const struct rs_uring_support *s)
{
    emit_str(e, "zcrx_lo",
             !s->available    ? NULL
             : s->zcrx_lo_err ? rs_probe_errno_name(s->zcrx_lo_err)
                              : "accepted");
    emit_opt_num(e, "query_request_ops", s->query, s->query_request_ops, "-");
    emit_opt_num(e, "query_register_ops", s->query, s->query_register_ops, "-");
}

static void report_uring_state(struct emit *e, const struct rs_uring_support *s)
{
    int d = s->disabled_sysctl;

    emit_bool(e, "compiled", s->compiled);
    emit_bool(e, "available", s->available);
    emit_str(e, "errno", s->available ? NULL : rs_probe_errno_name(s->unavailable_err));
    emit_str(e, "reason", s->available ? NULL : s->why);
    emit_opt_num(e, "io_uring_disabled", d >= 0, (unsigned long long)d, "absent");
    if (e->json) {
        emit_num(e, "features_mask", s->features);
    } else {
        char mask[16];
        snprintf(mask, sizeof(mask), "0x%x", (unsigned)s->features);
        text_row(e, "features_mask", mask);
    }
}

static void report_uring(struct emit *e, const struct rs_uring_support *s)
{
    emit_open(e, "io_uring", "io_uring");
    report_uring_state(e, s);
    report_opcodes(e, s);
    emit_open(e, "setup", "io_uring setup flags (a ring created with each)");
    report_fields(e, s, setup_fields, COUNT(setup_fields));
    emit_close(e);
    report_features(e, s);
    emit_open(e, "register", "io_uring registrations (tried)");
    report_fields(e, s, register_fields, COUNT(register_fields));
    report_nic_and_query(e, s);
    emit_close(e);
    emit_open(e, "multishot", "io_uring ops on a loopback connection");
    report_fields(e, s, multishot_fields, COUNT(multishot_fields));
    emit_close(e);
    emit_close(e);
}

static void report_epoll(struct emit *e)
{
    struct epoll_facts f;

    probe_epoll(&f);
    emit_open(e, "epoll", "epoll");
    emit_bool_err(e, "exclusive", f.exclusive_err);
    emit_bool_err(e, "busy_poll_ioctl", f.busy_poll_err);
    emit_close(e);
}

static void report_rlimit(struct emit *e, const char *key, const char *prefix, int res)
{
    struct rlimit rl = {0, 0};
    bool ok = getrlimit(res, &rl) == 0;

    emit_sub(e, key, prefix);
    /* RLIM_INFINITY is JSON null and "unlimited" in text. */
    emit_opt_num(e, "soft", ok && rl.rlim_cur != RLIM_INFINITY, rl.rlim_cur,
                 ok ? "unlimited" : "unknown");
    emit_opt_num(e, "hard", ok && rl.rlim_max != RLIM_INFINITY, rl.rlim_max,
                 ok ? "unlimited" : "unknown");
    emit_close(e);
}

static void report_limits(struct emit *e)
{
    emit_open(e, "limits", "Limits");
    report_rlimit(e, "nofile", "RLIMIT_NOFILE", RLIMIT_NOFILE);
    report_rlimit(e, "memlock", "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK);
    emit_close(e);
}

/* What ringserve does here, from the facts below it: first in text (people
 * read it first), last in JSON (the older keys keep their places). */
static void report_summary(struct emit *e, const struct rs_uring_support *s)
{
    struct rs_probe_summary sum;
    char row[256];

    rs_probe_summarize(s, &sum);
    emit_open(e, "summary", "Summary (what ringserve uses on this kernel)");
    if (e->json) {
        emit_str(e, "backend", sum.backend);
        emit_str(e, "backend_reason", sum.backend_why[0] ? sum.backend_why : NULL);
        emit_str(e, "default_features", sum.defaults);
        emit_sub(e, "features", NULL);
        for (size_t i = 0; i < sum.n; i++)
            emit_str(e, sum.f[i].name,
                     sum.f[i].verdict == RS_FEATURE_DEFAULT  ? "default"
                     : sum.f[i].verdict == RS_FEATURE_OPT_IN ? "opt-in"
                                                             : "unavailable");
        emit_close(e);
        emit_sub(e, "reasons", NULL);
        for (size_t i = 0; i < sum.n; i++)
            emit_str(e, sum.f[i].name, sum.f[i].why[0] ? sum.f[i].why : NULL);
        emit_close(e);
        emit_sub(e, "not_used", NULL);
        emit_str(e, "napi", sum.napi);
        emit_str(e, "zcrx", sum.zcrx);
        emit_close(e);
    } else {
        snprintf(row, sizeof(row), "%s%s%s", sum.backend, sum.backend_why[0] ? ": " : "",
                 sum.backend_why);
        text_row(e, "backend (auto)", row);
        text_row(e, "default io_uring features",
                 strcmp(sum.backend, "uring") == 0 ? sum.defaults : "-");
        for (size_t i = 0; i < sum.n; i++) {
            const struct rs_feature_summary *f = &sum.f[i];
            if (f->verdict == RS_FEATURE_DEFAULT)
                snprintf(row, sizeof(row), "used by default");
            else if (f->verdict == RS_FEATURE_OPT_IN)
                snprintf(row, sizeof(row), "opt-in: --uring-features=default,%s",
                         f->name);
            else
                snprintf(row, sizeof(row), "no: %s", f->why);
            text_row(e, f->name, row);
        }
        text_row(e, "outbound sockets", sum.outbound);
        text_row(e, "napi busy poll", sum.napi);
        text_row(e, "zero-copy receive", sum.zcrx);
    }
    emit_close(e);
}

int rs_probe_report(FILE *out, bool json)
{
    struct rs_uring_support s;
    struct emit e = {.out = out, .json = json, .depth = 1, .first = true};

    rs_probe_uring(&s);
    if (json) {
        fputc('{', out);
    } else {
        fprintf(out, "ringserve %s feature probe\n", RS_VERSION);
        report_summary(&e, &s);
    }
    report_system(&e);
    report_uring(&e, &s);
    report_epoll(&e);
    report_limits(&e);
    if (json) {
        report_summary(&e, &s);
        fputs("\n}", out);
    }
    fputc('\n', out);
    if (fflush(out) != 0 || ferror(out))
        return -EIO;
    return 0;
}

static struct rs_uring_support cached;
static pthread_once_t cached_once = PTHREAD_ONCE_INIT;

static void probe_cached(void)
{
    rs_probe_uring(&cached);
}

const struct rs_uring_support *rs_probe_uring_cached(void)
{
    pthread_once(&cached_once, probe_cached);
    return &cached;
}
