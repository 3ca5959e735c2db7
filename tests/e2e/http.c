/* End-to-end tests of `--protocol=http --root=DIR`: one file, run against
 * every backend (tests/e2e/meson.build lists the variants).
 *
 * Usage: http SERVER-COMMAND...   e.g.  http build/ringserve --backend=epoll
 *
 * The program builds a document root in a fresh temporary directory (small
 * and large files with deterministic contents, directories with and without
 * index.html, a name with a space, and symlinks leading out of the root to a
 * file holding "TOPSECRET"), then starts one server per test with
 * --listen=127.0.0.1:0 --protocol=http --root=ROOT appended.
 *
 * Real clients: `curl` for every status the server answers (200, 206, 304,
 * 400, 404, 405, 413, 414, 416, 431), HEAD, Range, If-Modified-Since,
 * keep-alive (curl reusing its connection, checked against the server's
 * accepted= count), large files verified by the sha256 of what arrived, and
 * several large downloads in parallel. Raw sockets for what curl will not
 * send: pipelined requests (responses in order), requests split byte by
 * byte, malformed requests (one answer, then the connection closes), escape
 * attempts (".." in every spelling, absolute-form, NUL bytes, backslashes,
 * symlinks out of the root: never a byte of the secret), and clients that
 * request far more than they read (the server's memory stays bounded, the
 * others are served, and the data arrives intact once the client reads).
 *
 * Nothing here asserts on time; waits are poll()s (and curl --max-time) with
 * generous safety nets that only stop a broken server from hanging the
 * suite. The teardown stops the server with SIGTERM and checks a clean exit
 * (and, where a test knows it, how many connections the server accepted).
 *
 * Environment: RS_E2E_FILTER=pattern runs only matching tests,
 * RS_E2E_VERBOSE=1 prints each server's stderr, RS_E2E_SKIP_RSS=1 skips the
 * memory bound (valgrind), RS_HTTP_SMALL_BIG=1 makes the large file 2 MiB
 * (valgrind), RS_HTTP_TESTS=a,b runs only the tests whose names contain a
 * or b (a word that matches no test is a failure), RS_HTTP_KEEP=1 keeps the temporary
 * directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_data_segs_in (glibc's lacks it) */
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../skip_reason.h"
#include "harness.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

#define SMALL_LEN 1024u
/* Over any --buffer-size a variant uses (so sent from the file), and with
 * its head under the first segments on loopback: half of the initial
 * window, 32 KiB). */
#define MID_LEN 20000u
#define SECRET  "TOPSECRET"

static char **server_argv;
static const char *want_backend;
static char base[PATH_MAX / 2]; /* the temporary directory */
static char root[PATH_MAX];     /* base/root, the document root */
static char root_arg[PATH_MAX + 16];
static unsigned char *small_data, *big_data;
static char big_sha[65];
/* The large file: 8 MiB + 123 (odd: the last chunk is short), or 2 MiB +
 * 123 with RS_HTTP_SMALL_BIG=1 (valgrind, where every byte is slow). */
static unsigned big_len = 8u * MIB + 123u;

struct fixture {
    struct h_server srv;
    long expect_accepted;           /* -1: not checked */
    long expect_header_timeouts;    /* -1: not checked */
    long expect_send_timeouts;      /* -1: not checked */
    long expect_keepalive_timeouts; /* -1: not checked */
    long long max_bytes_in;         /* -1: not checked */
    long long max_worker_reads;     /* sendfile_worker_reads=; -1: not checked */
    long long max_worker_sends;     /* sendfile_worker_sends=; -1: not checked */
    char tmp_root[PATH_MAX];        /* a root of the test's own, removed at teardown */
};

/* A stable file: its mtime is set to STABLE_MTIME (Sun, 09 Sep 2001
 * 01:46:40 GMT), long past, so its date is a strong validator. */
#define STABLE_LEN   100u
#define STABLE_MTIME 1000000000
/* hole.bin: zeros, more than a server's socket send buffer can take
 * (net.ipv4.tcp_wmem allows 4 MiB), so a client that does not read keeps
 * it queued. */
#define HOLE_LEN (16 * MIB)

/* --- the document root ---------------------------------------------------- */

static void write_file(const char *rel, const void *data, size_t len)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0) {
        fprintf(stderr, "http: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* The file's mtime, whole seconds; returns what the file system kept
 * (ext4 clamps to 1901..2446, tmpfs keeps any 64-bit time). */
static int64_t set_mtime(const char *rel, int64_t t)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    struct timespec ts[2] = {{.tv_sec = (time_t)t}, {.tv_sec = (time_t)t}};
    struct stat st;
    if (utimensat(AT_FDCWD, path, ts, 0) != 0 || stat(path, &st) != 0) {
        fprintf(stderr, "http: utimensat %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return (int64_t)st.st_mtime;
}

/* A sparse file of len bytes, all zeros: large, and free to make. */
static void make_hole(const char *rel, off_t len)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || ftruncate(fd, len) != 0 || close(fd) != 0) {
        fprintf(stderr, "http: cannot make %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void make_dir(const char *rel)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    if (mkdir(path, 0755) != 0) {
        fprintf(stderr, "http: mkdir %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void make_link(const char *target, const char *rel)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    if (symlink(target, path) != 0) {
        fprintf(stderr, "http: symlink %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void sha256_file(const char *path, char out[65]);

static void make_root(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof(base), "%s/rs-http-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
        fprintf(stderr, "http: mkdtemp: %s\n", strerror(errno));
        exit(1);
    }
    snprintf(root, sizeof(root), "%s/root", base);
    snprintf(root_arg, sizeof(root_arg), "--root=%s", root);
    small_data = malloc(SMALL_LEN);
    big_data = malloc(big_len);
    if (!small_data || !big_data)
        exit(1);
    h_fill(small_data, SMALL_LEN, 1);
    h_fill(big_data, big_len, 2);

    write_file("secret.txt", SECRET "\n", strlen(SECRET) + 1);
    make_dir("root");
    write_file("root/index.html", "<p>root index</p>\n", 18);
    write_file("root/small.txt", small_data, SMALL_LEN);
    write_file("root/big.bin", big_data, big_len);
    write_file("root/mid.bin", big_data, MID_LEN);
    write_file("root/empty.txt", "", 0);
    write_file("root/a b.txt", "space\n", 6);
    write_file("root/stable.txt", small_data, STABLE_LEN);
    make_hole("root/hole.bin", HOLE_LEN);
    set_mtime("root/stable.txt", STABLE_MTIME);
    make_dir("root/dir");
    write_file("root/dir/index.html", "<p>dir index</p>\n", 17);
    write_file("root/dir/style.css", "p{}\n", 4);
    make_dir("root/emptydir");
    make_dir("downloads");
    /* Ways out of the root through symlinks. */
    char abs_secret[PATH_MAX + 16];
    snprintf(abs_secret, sizeof(abs_secret), "%s/secret.txt", base);
    make_link("../secret.txt", "root/link_rel");
    make_link(abs_secret, "root/link_abs");
    make_link("..", "root/link_up");
    make_link("/etc", "root/link_etc");
    make_link("../../../../../../../../etc/passwd", "root/dir/link_deep");

    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/big.bin", root);
    sha256_file(path, big_sha);
}

static void remove_tree(const char *dir)
{
    if (getenv("RS_HTTP_KEEP"))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

static void remove_root(void)
{
    if (base[0])
        remove_tree(base);
}

/* --- running curl and sha256sum ------------------------------------------- */

/* Run argv (NULL-terminated) with its stdout captured into out (NUL-terminated,
 * truncated to outlen) and stdin/stderr inherited. Returns the exit code, or
 * -1 when it did not exit normally. */
static int run_capture(char *const argv[], char *out, size_t outlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        fail_msg("pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(p[1], 1);
        execvp(argv[0], argv);
        fprintf(stderr, "http: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    for (;;) {
        char tmp[4096];
        ssize_t r = read(p[0], tmp, sizeof(tmp));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t take = (size_t)r;
        if (n + take >= outlen)
            take = outlen - 1 - n;
        memcpy(out + n, tmp, take);
        n += take;
    }
    out[n] = '\0';
    close(p[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void sha256_file(const char *path, char out[65])
{
    char buf[256];
    char *argv[] = {"sha256sum", "--", (char *)path, NULL};
    if (run_capture(argv, buf, sizeof(buf)) != 0 || strlen(buf) < 64) {
        fprintf(stderr, "http: sha256sum %s failed\n", path);
        exit(1);
    }
    memcpy(out, buf, 64);
    out[64] = '\0';
}

/* One transfer as curl saw it. */
struct resp {
    int status;
    int num_connects;
    long long size;      /* bytes of body downloaded */
    char body[PATH_MAX]; /* where the body went */
    char hdrs[PATH_MAX]; /* where the headers went */
};

#define CURL_MAX_ARGS 64

/* curl, with its usual options, then `args` (NULL-terminated), against
 * URL(s) given in args as "@/path" (expanded to http://127.0.0.1:PORT/path).
 * Fills one struct resp per URL, in order. Returns the number of URLs. */
static int curl(struct fixture *fx, struct resp *r, int nr, const char *const args[])
{
    static unsigned seq;
    char *argv[CURL_MAX_ARGS];
    char owned[CURL_MAX_ARGS][PATH_MAX + 64];
    int n = 0, nurl = 0;
    argv[n++] = "curl";
    argv[n++] = "-sS";
    argv[n++] = "--no-progress-meter";
    argv[n++] = "--max-time";
    argv[n++] = "60";
    argv[n++] = "--path-as-is";
    argv[n++] = "-w";
    argv[n++] = "%{http_code} %{num_connects} %{size_download}\\n";
    for (const char *const *a = args; *a; a++) {
        assert_true(n + 6 < CURL_MAX_ARGS);
        if ((*a)[0] == '@') {
            assert_true(nurl < nr);
            seq++;
            snprintf(r[nurl].body, sizeof(r[nurl].body), "%s/downloads/b%u", base, seq);
            snprintf(r[nurl].hdrs, sizeof(r[nurl].hdrs), "%s/downloads/h%u", base, seq);
            argv[n++] = "-o";
            argv[n++] = r[nurl].body;
            argv[n++] = "-D";
            argv[n++] = r[nurl].hdrs;
            snprintf(owned[n], sizeof(owned[n]), "http://127.0.0.1:%u%s", fx->srv.port,
                     *a + 1);
            argv[n] = owned[n];
            n++;
            nurl++;
        } else {
            argv[n++] = (char *)*a;
        }
    }
    argv[n] = NULL;
    /* curl keeps only the last -D: every response's headers land in that
     * one file, and header() reads the last response's from it. */
    for (int i = 0; i + 1 < nurl; i++)
        memcpy(r[i].hdrs, r[nurl - 1].hdrs, sizeof(r[i].hdrs));
    char out[4096];
    int rc = run_capture(argv, out, sizeof(out));
    if (rc != 0)
        fail_msg("curl exited %d (output: %s)", rc, out);
    char *p = out;
    for (int i = 0; i < nurl; i++) {
        if (sscanf(p, "%d %d %lld", &r[i].status, &r[i].num_connects, &r[i].size) != 3)
            fail_msg("curl -w output unparsable: %s", out);
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    return nurl;
}

/* One URL, returns its status. */
static int curl1(struct fixture *fx, struct resp *r, const char *const args[])
{
    assert_int_equal(curl(fx, r, 1, args), 1);
    return r->status;
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *len = 0;
        return calloc(1, 1);
    }
    struct stat st;
    fstat(fd, &st);
    char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The value of header `name` in a header block (the last response's, when
 * it holds several), or NULL. Copied into val. */
static const char *header_in(const char *block, const char *name, char *val, size_t vlen)
{
    const char *found = NULL;
    size_t nl = strlen(name);
    for (const char *line = block; line && *line;) {
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            eol = line + strlen(line);
        if (strncmp(line, "HTTP/", 5) == 0)
            found = NULL; /* a new response starts */
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 &&
            line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t n = (size_t)(eol - v);
            if (n >= vlen)
                n = vlen - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            found = val;
        }
        line = *eol ? eol + 2 : NULL;
    }
    return found;
}

static const char *header(const struct resp *r, const char *name, char *val, size_t vlen)
{
    size_t n;
    char *h = slurp(r->hdrs, &n);
    const char *v = header_in(h, name, val, vlen);
    free(h);
    return v;
}

static void assert_body(const struct resp *r, const void *want, size_t len)
{
    size_t n;
    char *b = slurp(r->body, &n);
    if (n != len)
        fail_msg("%s: body of %zu bytes, want %zu", r->body, n, len);
    assert_memory_equal(b, want, len);
    free(b);
}

static void assert_header(const struct resp *r, const char *name, const char *want)
{
    char v[512];
    if (!header(r, name, v, sizeof(v)))
        fail_msg("no %s header", name);
    if (strcmp(v, want) != 0)
        fail_msg("%s: \"%s\", want \"%s\"", name, v, want);
}

/* --- raw sockets ------------------------------------------------------------ */

struct raw {
    int fd;
    char *buf; /* bytes received and not consumed yet */
    size_t len, cap;
    bool eof;
};

struct raw_resp {
    int status;
    long long content_length; /* -1 when absent */
    char head[4096];          /* the header block, NUL-terminated */
    unsigned char *body;      /* content_length bytes (none after HEAD/304) */
    size_t body_len;
};

/* A client socket; rcvbuf > 0: with that SO_RCVBUF (a slow reader's
 * small window), else the system's. */
static void raw_open_rcvbuf(struct fixture *fx, struct raw *c, int rcvbuf)
{
    memset(c, 0, sizeof(*c));
    c->fd = h_connect_rcvbuf(&fx->srv, rcvbuf);
    if (c->fd < 0)
        fail_msg("connect: %s", strerror(errno));
    c->cap = 64 * KIB;
    c->buf = malloc(c->cap);
    assert_non_null(c->buf);
}

static void raw_open(struct fixture *fx, struct raw *c)
{
    raw_open_rcvbuf(fx, c, 0);
}

static void raw_close(struct raw *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
}

static void raw_send(struct raw *c, const void *data, size_t len)
{
    int rc = h_write_all(c->fd, data, len);
    if (rc != 0)
        fail_msg("send: %s", strerror(-rc));
}

static void raw_sends(struct raw *c, const char *s)
{
    raw_send(c, s, strlen(s));
}

/* Read more into c->buf; false on EOF (or a reset after our data). */
static bool raw_fill(struct raw *c)
{
    if (c->len == c->cap) {
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, H_TIMEOUT_MS);
    if (r == 0)
        fail_msg("no data from the server for %d ms", H_TIMEOUT_MS);
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (n < 0 && errno == EINTR)
        return true;
    if (n < 0 && errno == ECONNRESET)
        n = 0;
    if (n < 0)
        fail_msg("recv: %s", strerror(errno));
    if (n == 0) {
        c->eof = true;
        return false;
    }
    c->len += (size_t)n;
    return true;
}

static void raw_consume(struct raw *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Read one response. head_only: the request was HEAD (no body follows).
 * Returns false on a clean EOF before any byte of it. */
static bool raw_response(struct raw *c, struct raw_resp *r, bool head_only)
{
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
        if (!raw_fill(c)) {
            if (c->len == 0)
                return false;
            fail_msg("EOF inside a response head (%zu bytes)", c->len);
        }
    }
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof(r->head))
        fail_msg("response head of %zu bytes", hl);
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    raw_consume(c, hl);
    if (sscanf(r->head, "HTTP/1.%*[01] %d ", &r->status) != 1)
        fail_msg("bad status line: %.80s", r->head);
    char v[64];
    if (header_in(r->head, "Content-Length", v, sizeof(v)))
        r->content_length = atoll(v);
    if (head_only || r->status == 304 || r->status == 204 || r->status < 200)
        return true;
    if (r->content_length < 0)
        fail_msg("response without Content-Length: %s", r->head);
    r->body_len = (size_t)r->content_length;
    r->body = malloc(r->body_len + 1);
    assert_non_null(r->body);
    size_t got = 0;
    while (got < r->body_len) {
        if (c->len == 0 && !raw_fill(c))
            fail_msg("EOF after %zu of %zu body bytes", got, r->body_len);
        size_t take = c->len < r->body_len - got ? c->len : r->body_len - got;
        memcpy(r->body + got, c->buf, take);
        raw_consume(c, take);
        got += take;
    }
    return true;
}

static void raw_resp_free(struct raw_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Connect and send s: returns the milliseconds from before the connect to
 * after the send. A server's head deadline starts at its accept, which is
 * no earlier than the connect began: a connection whose first bytes went
 * out sooner than the deadline after that must be answered. */
static int64_t raw_open_sends(struct fixture *fx, struct raw *c, const char *s)
{
    int64_t t0 = h_now_ms();
    raw_open(fx, c);
    raw_sends(c, s);
    return h_now_ms() - t0;
}

/* Attempts of a client that found its connection closed unanswered because
 * it got no CPU between its connect and its first bytes for as long as the
 * head deadline (a loaded machine): the window is a few microseconds wide,
 * so this many in a row means a machine that cannot run the test. */
#define HEAD_STALLS_MAX 10

/* A connection closed without a response although the client sent its
 * first bytes `took` ms after it began to connect: the bug, unless took
 * reaches the head deadline (deadline_ms); then it counts in *stalled and
 * the caller tries again on a new connection. */
static void head_unanswered(int64_t took, int deadline_ms, const char *what, int *stalled)
{
    if (took < deadline_ms - 20)
        fail_msg("%s: closed without a response although its first bytes went out %lld "
                 "ms after it began to connect (head deadline %d ms)",
                 what, (long long)took, deadline_ms);
    print_message("%s: closed unanswered, its first bytes %lld ms after it began to "
                  "connect: this client got no CPU that long; again\n",
                  what, (long long)took);
    if (++*stalled >= HEAD_STALLS_MAX)
        fail_msg("%s: %d clients in a row got no CPU for the head deadline between "
                 "their connect and their first bytes",
                 what, *stalled);
}

/* A new client gets /small.txt, whole: whatever other clients are doing,
 * the server still serves. With a head deadline (deadline_ms > 0) a
 * connection closed unanswered after a stall of this client is counted in
 * *stalled and tried again (head_unanswered). */
static void expect_small_served_within(struct fixture *fx, int deadline_ms, int *stalled)
{
    for (;;) {
        struct raw c;
        struct raw_resp r;
        int64_t took = raw_open_sends(
            fx, &c, "GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        bool answered = raw_response(&c, &r, false);
        if (!answered) {
            raw_close(&c);
            if (deadline_ms <= 0)
                fail_msg("a new client's GET /small.txt: closed without a response");
            head_unanswered(took, deadline_ms, "a prompt client", stalled);
            continue;
        }
        assert_int_equal(r.status, 200);
        assert_memory_equal(r.body, small_data, SMALL_LEN);
        raw_resp_free(&r);
        raw_close(&c);
        return;
    }
}

static void expect_small_served(struct fixture *fx)
{
    expect_small_served_within(fx, 0, NULL);
}

/* After an error response the server closes: nothing more arrives. */
static void raw_expect_eof(struct raw *c)
{
    while (c->len == 0 && raw_fill(c))
        ;
    if (c->len)
        fail_msg("%zu more bytes after the response, want EOF: %.80s", c->len, c->buf);
}

/* Everything the server still sends (counted into *got, not kept), then
 * how the connection ends: 0 for a clean EOF, else the errno. */
static int read_to_end(struct raw *c, size_t *got)
{
    for (;;) {
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        if (poll(&p, 1, H_TIMEOUT_MS) == 0)
            fail_msg("no data and no end for %d ms after %zu bytes", H_TIMEOUT_MS, *got);
        ssize_t n = recv(c->fd, c->buf, c->cap, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : 0;
        *got += (size_t)n;
    }
}

/* --- fixture ------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    fx->expect_accepted = -1;
    fx->expect_header_timeouts = -1;
    fx->expect_send_timeouts = -1;
    fx->expect_keepalive_timeouts = -1;
    fx->max_bytes_in = -1;
    fx->max_worker_reads = -1;
    fx->max_worker_sends = -1;
    *state = fx;
    const char *extra[] = {"--listen=127.0.0.1:0", "--protocol=http", root_arg, NULL};
    enum h_start r = h_server_start(&fx->srv, server_argv, extra);
    if (r != H_STARTED) {
        char st[64];
        fprintf(stderr, "server did not start (%s)\n",
                h_status_str(&fx->srv, st, sizeof(st)));
        h_dump_stderr(&fx->srv, "start-up");
        return -1;
    }
    if (want_backend && strcmp(fx->srv.backend, want_backend) != 0) {
        fprintf(stderr, "asked for backend=%s, server says backend=%s\n", want_backend,
                fx->srv.backend);
        return -1;
    }
    return 0;
}

/* key=N on the stats line: equal to want (or at most want), or want < 0. */
static bool stat_as_expected(const char *line, const char *key, long long want,
                             bool at_most)
{
    unsigned long long v;
    if (want < 0)
        return true;
    if (!h_line_value(line, key, &v)) {
        fprintf(stderr, "no %s= on the stats line\n", key);
        return false;
    }
    fprintf(stderr, "%s=%llu (%s %lld)\n", key, v, at_most ? "at most" : "want", want);
    return at_most ? v <= (unsigned long long)want : v == (unsigned long long)want;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    struct h_server *s = &fx->srv;
    char st[64], line[1024];
    unsigned long long acc = 0;
    const char *why = NULL;
    bool ringserve = strcmp(s->backend, "nginx") != 0;
    h_server_stop(s, SIGTERM);
    if (!h_exited_with(s, 0))
        why = "server did not exit 0 after SIGTERM";
    else if (ringserve && !h_find_line(s, "ringserve: stats:", line, sizeof(line)))
        why = "no 'ringserve: stats:' line on stderr";
    else if (ringserve && fx->expect_accepted >= 0 &&
             (!h_line_value(line, "accepted", &acc) ||
              acc != (unsigned long long)fx->expect_accepted))
        why = "accepted= differs from the connections the clients made";
    else if (ringserve && !stat_as_expected(line, "header_timeouts",
                                            fx->expect_header_timeouts, false))
        why = "header_timeouts= is not what the test expects";
    else if (ringserve &&
             !stat_as_expected(line, "send_timeouts", fx->expect_send_timeouts, false))
        why = "send_timeouts= is not what the test expects";
    else if (ringserve && !stat_as_expected(line, "keepalive_timeouts",
                                            fx->expect_keepalive_timeouts, false))
        why = "keepalive_timeouts= is not what the test expects";
    else if (ringserve && !stat_as_expected(line, "bytes_in", fx->max_bytes_in, true))
        why = "bytes_in= is more than the test allows";
    else if (ringserve &&
             !stat_as_expected(line, "sendfile_worker_reads", fx->max_worker_reads, true))
        why = "sendfile_worker_reads= is more than the test allows";
    if (ringserve && fx->max_worker_sends >= 0 && !why) {
        /* Before Linux 6.8 a direct socket has no fd to sendfile(2) to:
         * workers send to it, and the server says so once. */
        char *err = h_server_stderr(s);
        if (err && strstr(err, "no IORING_OP_FIXED_FD_INSTALL"))
            fx->max_worker_sends = -1;
        free(err);
    }
    if (!why && ringserve &&
        !stat_as_expected(line, "sendfile_worker_sends", fx->max_worker_sends, true))
        why = "sendfile_worker_sends= is more than the test allows";
    int rc = 0;
    if (why) {
        fprintf(stderr, "%s (%s; accepted=%llu, expected %ld)\n", why,
                h_status_str(s, st, sizeof(st)), acc, fx->expect_accepted);
        h_dump_stderr(s, "after stop");
        rc = -1;
    } else if (getenv("RS_E2E_VERBOSE")) {
        h_dump_stderr(s, "RS_E2E_VERBOSE");
    }
    h_server_destroy(s);
    if (fx->tmp_root[0])
        remove_tree(fx->tmp_root);
    free(fx);
    return rc;
}

/* Stop the fixture's server (it must exit cleanly) and start another with
 * these arguments added (NULL-terminated), and --root=DIR instead of the
 * shared root when dir is not NULL. */
static void restart_with(struct fixture *fx, const char *dir, const char *const more[])
{
    h_server_stop(&fx->srv, SIGTERM);
    if (!h_exited_with(&fx->srv, 0)) {
        h_dump_stderr(&fx->srv, "restart");
        fail_msg("the first server did not exit 0 after SIGTERM");
    }
    h_server_destroy(&fx->srv);
    memset(&fx->srv, 0, sizeof(fx->srv));
    char dir_arg[PATH_MAX + 16];
    if (dir)
        snprintf(dir_arg, sizeof(dir_arg), "--root=%s", dir);
    const char *extra[16] = {"--listen=127.0.0.1:0", "--protocol=http",
                             dir ? dir_arg : root_arg};
    size_t n = 3;
    for (const char *const *m = more; m && *m; m++) {
        assert_true(n + 1 < sizeof(extra) / sizeof(extra[0]));
        extra[n++] = *m;
    }
    extra[n] = NULL;
    if (h_server_start(&fx->srv, server_argv, extra) != H_STARTED) {
        h_dump_stderr(&fx->srv, "restart");
        fail_msg("the server did not start again");
    }
}

/* --- 200, content types, directories --------------------------------------- */

static void test_http_get_200(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    char v[128];

    assert_int_equal(curl1(fx, &r, (const char *[]){"@/small.txt", NULL}), 200);
    assert_body(&r, small_data, SMALL_LEN);
    assert_header(&r, "Content-Length", "1024");
    assert_non_null(header(&r, "Content-Type", v, sizeof(v)));
    assert_true(strncmp(v, "text/plain", 10) == 0);
    /* Last-Modified is the file's mtime, as an IMF-fixdate. */
    struct stat st;
    char path[PATH_MAX * 2], want[64];
    snprintf(path, sizeof(path), "%s/small.txt", root);
    assert_int_equal(stat(path, &st), 0);
    struct tm tm;
    gmtime_r(&st.st_mtime, &tm);
    strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_header(&r, "Last-Modified", want);

    assert_int_equal(curl1(fx, &r, (const char *[]){"@/", NULL}), 200);
    assert_body(&r, "<p>root index</p>\n", 18);
    assert_non_null(header(&r, "Content-Type", v, sizeof(v)));
    assert_true(strncmp(v, "text/html", 9) == 0);

    assert_int_equal(curl1(fx, &r, (const char *[]){"@/dir/", NULL}), 200);
    assert_body(&r, "<p>dir index</p>\n", 17);

    assert_int_equal(curl1(fx, &r, (const char *[]){"@/dir/style.css", NULL}), 200);
    assert_body(&r, "p{}\n", 4);
    assert_non_null(header(&r, "Content-Type", v, sizeof(v)));
    assert_true(strncmp(v, "text/css", 8) == 0);

    /* Percent-decoding, a query string, "//" and "/./" and a ".." that stays
     * inside the root, an empty file. */
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/a%20b.txt", NULL}), 200);
    assert_body(&r, "space\n", 6);
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/small.txt?x=1&y=/../..", NULL}),
                     200);
    assert_body(&r, small_data, SMALL_LEN);
    assert_int_equal(curl1(fx, &r, (const char *[]){"@//dir/./style.css", NULL}), 200);
    assert_body(&r, "p{}\n", 4);
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/dir/../small.txt", NULL}), 200);
    assert_body(&r, small_data, SMALL_LEN);
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/empty.txt", NULL}), 200);
    assert_body(&r, "", 0);
    assert_header(&r, "Content-Length", "0");
}

static void test_http_head(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    assert_int_equal(curl1(fx, &r, (const char *[]){"-I", "@/big.bin", NULL}), 200);
    assert_int_equal(r.size, 0);
    char want[32];
    snprintf(want, sizeof(want), "%u", big_len);
    assert_header(&r, "Content-Length", want);

    /* HEAD then GET on one connection: a HEAD answered with a body would
     * show up as garbage before the GET's status line. */
    struct raw c;
    struct raw_resp a, b;
    raw_open(fx, &c);
    raw_sends(&c, "HEAD /small.txt HTTP/1.1\r\nHost: t\r\n\r\n"
                  "GET /small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_true(raw_response(&c, &a, true));
    assert_int_equal(a.status, 200);
    assert_int_equal(a.content_length, SMALL_LEN);
    assert_true(raw_response(&c, &b, false));
    assert_int_equal(b.status, 200);
    assert_memory_equal(b.body, small_data, SMALL_LEN);
    raw_expect_eof(&c);
    raw_resp_free(&b);
    raw_close(&c);
}

/* --- error statuses with curl --------------------------------------------- */

static void test_http_404(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/missing.txt", NULL}), 404);
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/dir/missing", NULL}), 404);
    /* A directory without index.html: no listing. */
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/emptydir/", NULL}), 404);
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/small.txt/", NULL}), 404);
}

static void test_http_405(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    assert_int_equal(curl1(fx, &r, (const char *[]){"-X", "DELETE", "@/small.txt", NULL}),
                     405);
    char v[128];
    if (!header(&r, "Allow", v, sizeof(v)))
        fail_msg("405 without an Allow header (RFC 9110 15.5.6)");
    assert_non_null(strstr(v, "GET"));
    assert_non_null(strstr(v, "HEAD"));
    assert_int_equal(curl1(fx, &r, (const char *[]){"-X", "POST", "@/small.txt", NULL}),
                     405);
}

static void test_http_413(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    /* A GET with a body. */
    assert_int_equal(
        curl1(fx, &r,
              (const char *[]){"-X", "GET", "--data", "hello", "@/small.txt", NULL}),
        413);
}

static void test_http_414(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    char path[2100];
    path[0] = '@';
    path[1] = '/';
    memset(path + 2, 'a', 2000);
    path[2002] = '\0';
    assert_int_equal(curl1(fx, &r, (const char *[]){path, NULL}), 414);
}

static void test_http_431(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    static char h[10000];
    memcpy(h, "X-Big: ", 7);
    memset(h + 7, 'b', 9000);
    h[9007] = '\0';
    assert_int_equal(curl1(fx, &r, (const char *[]){"-H", h, "@/small.txt", NULL}), 431);
}

static void test_http_400(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    /* HTTP/1.1 without Host ("-H Host:" removes curl's). */
    assert_int_equal(curl1(fx, &r, (const char *[]){"-H", "Host:", "@/small.txt", NULL}),
                     400);
    /* A target that is neither origin- nor absolute-form. */
    assert_int_equal(
        curl1(fx, &r, (const char *[]){"--request-target", "small.txt", "@/", NULL}),
        400);
    /* A header line without a colon. */
    assert_int_equal(curl1(fx, &r, (const char *[]){"-H", "Bad Header;", "@/", NULL}),
                     400);
}

/* --- Range ------------------------------------------------------------------ */

static void test_http_range_206(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    assert_int_equal(curl1(fx, &r, (const char *[]){"-r", "10-19", "@/small.txt", NULL}),
                     206);
    assert_body(&r, small_data + 10, 10);
    assert_header(&r, "Content-Range", "bytes 10-19/1024");
    assert_header(&r, "Content-Length", "10");

    assert_int_equal(curl1(fx, &r, (const char *[]){"-r", "-100", "@/small.txt", NULL}),
                     206);
    assert_body(&r, small_data + SMALL_LEN - 100, 100);
    assert_header(&r, "Content-Range", "bytes 924-1023/1024");

    assert_int_equal(curl1(fx, &r, (const char *[]){"-r", "1000-", "@/small.txt", NULL}),
                     206);
    assert_body(&r, small_data + 1000, 24);

    /* Past the end: cut at the end. */
    assert_int_equal(
        curl1(fx, &r, (const char *[]){"-r", "1020-5000", "@/small.txt", NULL}), 206);
    assert_body(&r, small_data + 1020, 4);
    assert_header(&r, "Content-Range", "bytes 1020-1023/1024");

    /* A large slice of the large file, across many read chunks. */
    char range[64];
    snprintf(range, sizeof(range), "1000001-%u", big_len / 4 * 3);
    assert_int_equal(curl1(fx, &r, (const char *[]){"-r", range, "@/big.bin", NULL}),
                     206);
    assert_body(&r, big_data + 1000001, big_len / 4 * 3 - 1000001 + 1);

    /* Several ranges: served whole (the server may ignore Range). */
    assert_int_equal(
        curl1(fx, &r, (const char *[]){"-r", "0-1,5-6", "@/small.txt", NULL}), 200);
    assert_body(&r, small_data, SMALL_LEN);
}

static void test_http_range_416(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    assert_int_equal(curl1(fx, &r, (const char *[]){"-r", "1024-", "@/small.txt", NULL}),
                     416);
    assert_header(&r, "Content-Range", "bytes */1024");
    assert_int_equal(
        curl1(fx, &r, (const char *[]){"-r", "5000-6000", "@/small.txt", NULL}), 416);
}

/* --- If-Modified-Since ------------------------------------------------------ */

static void test_http_ims_304(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    char lm[64], h[128];
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/small.txt", NULL}), 200);
    assert_non_null(header(&r, "Last-Modified", lm, sizeof(lm)));

    snprintf(h, sizeof(h), "If-Modified-Since: %s", lm);
    assert_int_equal(curl1(fx, &r, (const char *[]){"-H", h, "@/small.txt", NULL}), 304);
    assert_int_equal(r.size, 0);

    /* A day earlier: modified since, the whole file. */
    struct tm tm = {0};
    assert_non_null(strptime(lm, "%a, %d %b %Y %H:%M:%S GMT", &tm));
    time_t t = timegm(&tm) - 86400;
    gmtime_r(&t, &tm);
    char older[64];
    strftime(older, sizeof(older), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(h, sizeof(h), "If-Modified-Since: %s", older);
    assert_int_equal(curl1(fx, &r, (const char *[]){"-H", h, "@/small.txt", NULL}), 200);
    assert_body(&r, small_data, SMALL_LEN);

    /* An unparsable date is ignored. */
    assert_int_equal(curl1(fx, &r,
                           (const char *[]){"-H", "If-Modified-Since: yesterday",
                                            "@/small.txt", NULL}),
                     200);
}

/* --- keep-alive -------------------------------------------------------------- */

static void test_http_keepalive(void **state)
{
    struct fixture *fx = *state;
    struct resp r[4];
    /* HTTP/1.1: curl reuses one connection for all four. */
    assert_int_equal(
        curl(fx, r, 4,
             (const char *[]){"@/small.txt", "@/missing", "@/dir/", "@/big.bin", NULL}),
        4);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(r[1].status, 404);
    assert_int_equal(r[2].status, 200);
    assert_int_equal(r[3].status, 200);
    assert_int_equal(r[0].num_connects, 1);
    for (int i = 1; i < 4; i++)
        if (r[i].num_connects != 0)
            fail_msg("transfer %d opened a new connection: keep-alive broken", i);
    assert_body(&r[0], small_data, SMALL_LEN);
    assert_body(&r[3], big_data, big_len);

    /* HTTP/1.0 without keep-alive: the server closes after each response. */
    assert_int_equal(
        curl(fx, r, 2, (const char *[]){"-0", "@/small.txt", "@/small.txt", NULL}), 2);
    assert_int_equal(r[0].status, 200);
    assert_int_equal(r[1].status, 200);
    assert_int_equal(r[1].num_connects, 1);
    char v[64];
    assert_false(header(&r[0], "Connection", v, sizeof(v)) &&
                 strcasecmp(v, "keep-alive") == 0);

    /* "Connection: close" from a 1.1 client. */
    assert_int_equal(curl(fx, r, 2,
                          (const char *[]){"-H", "Connection: close", "@/small.txt",
                                           "@/small.txt", NULL}),
                     2);
    assert_int_equal(r[1].num_connects, 1);
    assert_header(&r[0], "Connection", "close");
    /* 1 + 2 + 2 connections in all. */
    fx->expect_accepted = 5;
}

/* --- large files ------------------------------------------------------------ */

static void test_http_large_sha256(void **state)
{
    struct fixture *fx = *state;
    struct resp r[4];
    char got[65];
    assert_int_equal(curl1(fx, r, (const char *[]){"@/big.bin", NULL}), 200);
    assert_int_equal(r[0].size, big_len);
    sha256_file(r[0].body, got);
    assert_string_equal(got, big_sha);

    /* Four at once on four connections: the server interleaves them. */
    assert_int_equal(curl(fx, r, 4,
                          (const char *[]){"-Z", "--parallel-max", "4", "@/big.bin",
                                           "@/big.bin", "@/big.bin", "@/big.bin", NULL}),
                     4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].status, 200);
        sha256_file(r[i].body, got);
        if (strcmp(got, big_sha) != 0)
            fail_msg("parallel download %d: sha256 %s, want %s", i, got, big_sha);
    }
}

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

/* A cached file's body leaves without a worker thread: epoll and io_uring
 * both sendfile(2) it from the loop (io_uring with a process fd for a
 * direct socket, IORING_OP_FIXED_FD_INSTALL; before, it spliced file ->
 * pipe in the loop and handed pipe -> socket to an io-wq worker, one trip
 * per MiB, two context switches and a wake-up of the loop each; earlier
 * still, reading in the ring took a second trip). The server counts the
 * parts a worker read and sent (sendfile_worker_reads=, _sends=): none
 * for big.bin, whose pages the
 * test locks in the page cache first (mlock: read alone, reclaim on a busy
 * machine could evict a part before the server looks, and then a worker
 * read is right). cachestat's own count can still be short under load
 * for a range starting inside a large folio, which made this test fail
 * in parallel runs (sendfile_worker_reads=1) until the server asked such
 * an answer again (core/pagecache.c; pagecache-count tests that alone).
 * Needs cachestat(2) (Linux 6.5): without it the server cannot know what
 * is cached, and io_uring reads every part in io-wq. */
static void test_http_cached_body_no_worker(void **state)
{
    struct fixture *fx = *state;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/big.bin", root);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct {
        uint64_t off, len;
    } range = {0, big_len};
    uint64_t cs[5];
    long rc = syscall(SYS_cachestat, fd, &range, cs, 0);
    int err = errno;
    if (rc < 0) {
        close(fd);
        rs_skip_reason("no cachestat(2) (Linux 6.5): %s: the server cannot know what "
                       "is cached",
                       strerror(err));
        skip();
    }
    void *pinned = mmap(NULL, big_len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(pinned != MAP_FAILED);
    if (mlock(pinned, big_len) < 0) {
        err = errno;
        munmap(pinned, big_len);
        print_message("mlock: %s: cannot keep the file cached, not checked\n",
                      strerror(err));
        skip();
    }
    struct resp r[1];
    int status = curl1(fx, r, (const char *[]){"@/big.bin", NULL});
    munlock(pinned, big_len);
    munmap(pinned, big_len);
    assert_int_equal(status, 200);
    assert_int_equal(r[0].size, big_len);
    fx->max_worker_reads = 0;
    fx->max_worker_sends = 0;
}

/* The server's open descriptors other than pipes: its /proc/PID/fd entries
 * and the io_uring direct descriptors its rings hold (h_server_fd_count;
 * with fixed files, the default, sockets live only there, so /proc/PID/fd
 * alone would not see a leaked session); *pipes: how many pipe ends. */
static int server_fds(const struct fixture *fx, int *pipes)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)fx->srv.pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    *pipes = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char link[PATH_MAX], to[64] = "";
        snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
        ssize_t k = readlink(link, to, sizeof(to) - 1);
        if (k > 0 && strncmp(to, "pipe:", 5) == 0)
            (*pipes)++;
    }
    closedir(d);
    long all = h_server_fd_count(&fx->srv);
    if (all < 0)
        fail_msg("cannot count the server's descriptors");
    return (int)all - *pipes;
}

/* The server's established connections that it holds as process fds
 * (/proc/PID/net/tcp's entries on its port, matched by inode against
 * /proc/PID/fd), and how many of them are O_NONBLOCK (fdinfo's flags). */
static void server_conn_fds(const struct fixture *fx, int *n, int *nonblock)
{
    char path[64], line[512];
    unsigned long inodes[64];
    int ninodes = 0;
    snprintf(path, sizeof(path), "/proc/%d/net/tcp", (int)fx->srv.pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) && ninodes < 64) {
        unsigned port, st;
        unsigned long ino;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &port,
                   &st, &ino) == 3 &&
            port == fx->srv.port && st == 1 /* TCP_ESTABLISHED */)
            inodes[ninodes++] = ino;
    }
    fclose(f);
    *n = *nonblock = 0;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)fx->srv.pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));) {
        char link[PATH_MAX], to[64] = "";
        snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
        unsigned long ino;
        if (readlink(link, to, sizeof(to) - 1) <= 0 ||
            sscanf(to, "socket:[%lu]", &ino) != 1)
            continue;
        bool conn = false;
        for (int i = 0; i < ninodes; i++)
            conn = conn || inodes[i] == ino;
        if (!conn)
            continue;
        (*n)++;
        snprintf(link, sizeof(link), "/proc/%d/fdinfo/%s", (int)fx->srv.pid, e->d_name);
        FILE *fi = fopen(link, "r");
        unsigned flags = 0;
        while (fi && fgets(line, sizeof(line), fi))
            if (sscanf(line, "flags: %o", &flags) == 1)
                break;
        if (fi)
            fclose(fi);
        *nonblock += (flags & O_NONBLOCK) != 0;
    }
    closedir(d);
}

/* Between responses a connection is as its backend keeps it: epoll's
 * sockets are non-blocking always; io_uring's are blocking, though after
 * a file it may keep a process fd of a direct socket for the next file
 * (the O_NONBLOCK its sendfile(2) needed is cleared before the next
 * response's head goes through the ring, whose sends misbehave on a
 * non-blocking socket). Checked after a large body and a small response
 * on one keep-alive connection. */
static void test_http_socket_flags_between_responses(void **state)
{
    struct fixture *fx = *state;
    if (strcmp(fx->srv.backend, "nginx") == 0)
        skip();
    struct raw c;
    struct raw_resp r;
    raw_open(fx, &c);
    raw_sends(&c, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, big_len);
    raw_resp_free(&r);
    raw_sends(&c, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    raw_resp_free(&r);
    int n, nonblock;
    server_conn_fds(fx, &n, &nonblock);
    print_message("backend %s: %d connection fds, %d non-blocking\n", fx->srv.backend, n,
                  nonblock);
    bool epoll = strcmp(fx->srv.backend, "epoll") == 0;
    assert_int_equal(nonblock, epoll ? n : 0);
    raw_close(&c);
}

/* Large bodies go out with sendfile (epoll: sendfile(2); io_uring: splice
 * through a pipe of 2 descriptors per transfer, up to 16 empty ones kept
 * for reuse). Many downloads, some clients leaving mid-body (half with a
 * reset), must leave the server with the descriptors it had: no file, no
 * socket, no session left behind, and no more pipes than that cache. */
static void test_http_sendfile_fds_released(void **state)
{
    struct fixture *fx = *state;
    enum { ROUNDS = 3, FULL = 5, GONE = 12, PIPE_FDS = 2 * 16 };
    int base_pipes, base = server_fds(fx, &base_pipes);
    /* The open-file cache keeps big.bin open once it was served (one
     * descriptor more from then on): serve it once first. */
    struct raw warm;
    struct raw_resp wr;
    raw_open(fx, &warm);
    raw_sends(&warm, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(raw_response(&warm, &wr, false));
    assert_int_equal(wr.status, 200);
    raw_resp_free(&wr);
    raw_close(&warm);
    base++;
    for (int round = 0; round < ROUNDS; round++) {
        struct raw full[FULL], gone[GONE];
        for (int i = 0; i < GONE; i++) {
            raw_open(fx, &gone[i]);
            raw_sends(&gone[i], "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        for (int i = 0; i < FULL; i++) {
            raw_open(fx, &full[i]);
            raw_sends(&full[i], "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
        }
        /* Those leaving take some of the body first: their transfers are
         * under way when they go. */
        for (int i = 0; i < GONE; i++) {
            while (gone[i].len < 100 * KIB && raw_fill(&gone[i])) {
            }
            if (i % 2) {
                struct linger lg = {.l_onoff = 1, .l_linger = 0};
                setsockopt(gone[i].fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            }
            raw_close(&gone[i]);
        }
        for (int i = 0; i < FULL; i++) {
            struct raw_resp r;
            assert_true(raw_response(&full[i], &r, false));
            assert_int_equal(r.status, 200);
            assert_int_equal(r.body_len, big_len);
            assert_memory_equal(r.body, big_data, big_len);
            raw_resp_free(&r);
            raw_close(&full[i]);
        }
        /* Sessions whose clients went away close on the server's own time:
         * wait (bounded, 3 s) for the count to come back. */
        int pipes, n = server_fds(fx, &pipes);
        for (int i = 0; i < 300 && (n > base || pipes > base_pipes + PIPE_FDS); i++) {
            usleep(10000);
            n = server_fds(fx, &pipes);
        }
        print_message(
            "round %d: the server holds %d descriptors and %d pipe ends (%d and "
            "%d before any)\n",
            round, n, pipes, base, base_pipes);
        if (n != base)
            fail_msg("round %d: %d descriptors other than pipes, %d before", round, n,
                     base);
        if (pipes > base_pipes + PIPE_FDS)
            fail_msg("round %d: %d pipe ends, more than %d + %d cached", round, pipes,
                     base_pipes, PIPE_FDS);
    }
    expect_small_served(fx);
    fx->expect_accepted = ROUNDS * (FULL + GONE) + 2;
}

/* A body sent from the file leaves with its head in one segment, as it
 * must to be fast: a head sent alone (no MSG_MORE, nothing queued behind
 * it yet) makes a segment of its own, answered at once, and a client then
 * keeps its receive window small (measured with wrk on 1 MiB files: the
 * window stayed ~400 KiB instead of growing to MiBs, and the rest of every
 * body was pushed out by the client's own ACKs, on its CPU: 1.8x its CPU
 * per response). Counted on the client's socket: a fresh connection, one
 * response of head + MID_LEN bytes, under one loopback segment, must
 * arrive as one data segment. Deterministic: nothing else is in flight on
 * the connection, so no ACK can push the corked head out early. */
static void head_shares_first_segment(struct fixture *fx)
{
    struct raw c;
    struct raw_resp r;
    raw_open(fx, &c);
    int mss = 0;
    socklen_t len = sizeof(mss);
    assert_int_equal(getsockopt(c.fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &len), 0);
    raw_sends(&c, "GET /mid.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, MID_LEN);
    assert_memory_equal(r.body, big_data, MID_LEN);
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    len = sizeof(ti);
    assert_int_equal(getsockopt(c.fd, IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
    print_message("response of %zu bytes: %u data segments (mss %d)\n",
                  strlen(r.head) + MID_LEN, ti.tcpi_data_segs_in, mss);
    if ((size_t)mss >= strlen(r.head) + MID_LEN && ti.tcpi_data_segs_in != 1)
        fail_msg("head and body came in %u segments, want 1", ti.tcpi_data_segs_in);
    raw_resp_free(&r);
    raw_close(&c);
}

static void test_http_head_shares_first_segment(void **state)
{
    head_shares_first_segment(*state);
}

/* The same with the body read into memory: the head goes in front of the
 * first bytes read, in one send. */
static void test_http_head_shares_first_segment_copy(void **state)
{
    struct fixture *fx = *state;
    restart_with(fx, NULL, (const char *[]){"--sendfile=off", NULL});
    head_shares_first_segment(fx);
}

/* --- a file cut short while it is sent ---------------------------------------- */

/* A large file truncated while its body is on the way: the server cannot
 * send the Content-Length it promised. The client must see a reset after
 * the prefix it got, never a clean EOF (the old server closed with a FIN:
 * a client without Content-Length checking, or a proxy caching it, took
 * the prefix for the file). The client reads slowly (a small receive
 * window), so most of the body is still in the file when it shrinks. */
#define CUT_LEN (48u * MIB)

static void file_cut_mid_body(struct fixture *fx, const char *name)
{
    char rel[64], path[PATH_MAX * 2];
    snprintf(rel, sizeof(rel), "root/%s", name);
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    make_hole(rel, CUT_LEN); /* zeros, free to make */
    struct raw c;
    raw_open_rcvbuf(fx, &c, 32 * KIB);
    char req[128];
    snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: t\r\n\r\n", name);
    raw_sends(&c, req);
    while (c.len < 64 * KIB)
        if (!raw_fill(&c))
            fail_msg("EOF after %zu bytes, before the file was cut", c.len);
    assert_true(memmem(c.buf, c.len, "\r\n\r\n", 4) != NULL);
    assert_int_equal(truncate(path, (off_t)MIB), 0);
    size_t got = c.len;
    int end = read_to_end(&c, &got);
    if (end != ECONNRESET)
        fail_msg("a %u-byte body cut at %u: %zu bytes then %s, want ECONNRESET", CUT_LEN,
                 MIB, got, end ? strerror(end) : "a clean EOF");
    assert_true(got < CUT_LEN);
    raw_close(&c);
    fx->expect_accepted = 1;
    expect_small_served(fx);
    fx->expect_accepted = 2;
}

static void test_http_file_cut_mid_body(void **state)
{
    file_cut_mid_body(*state, "cut.bin");
}

static void test_http_file_cut_mid_body_copy(void **state)
{
    struct fixture *fx = *state;
    restart_with(fx, NULL, (const char *[]){"--sendfile=off", NULL});
    file_cut_mid_body(fx, "cut-copy.bin");
}

/* --- stop: a response in progress keeps flowing ------------------------------ */

/* A large body, SIGTERM once its first 64 KiB arrived (the client reads
 * slowly: a small receive window keeps most of the body in the server):
 * the whole body still arrives, then the server closes the connection and
 * exits 0. Run with the body read from the file (--sendfile=off; the old
 * server cut it about 0.1 s after the signal, with a clean FIN) and sent
 * from it. */
#define STOP_LEN (48u * MIB + 17u)

static void stop_mid_body(struct fixture *fx, bool sendfile)
{
    /* A long drain: the body must flow to its end, not to a deadline. */
    static const char *const reads[] = {"--drain-timeout=20000", "--sendfile=off", NULL};
    static const char *const files[] = {"--drain-timeout=20000", NULL};
    restart_with(fx, NULL, sendfile ? files : reads);
    /* Larger than what loopback's socket buffers absorb (about 8 MiB were
     * seen leaving the server before a 32 KiB receive window filled). */
    static unsigned char *data;
    if (!data) {
        data = malloc(STOP_LEN);
        assert_non_null(data);
        h_fill(data, STOP_LEN, 5);
        write_file("root/stop.bin", data, STOP_LEN);
    }
    struct raw c;
    raw_open_rcvbuf(fx, &c, 32 * KIB);
    raw_sends(&c, "GET /stop.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    while (c.len < 64 * KIB)
        if (!raw_fill(&c))
            fail_msg("EOF after %zu bytes, before the signal", c.len);
    assert_int_equal(kill(fx->srv.pid, SIGTERM), 0);
    struct raw_resp r;
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, STOP_LEN);
    assert_memory_equal(r.body, data, STOP_LEN);
    raw_resp_free(&r);
    raw_expect_eof(&c); /* the stop made it the connection's last */
    raw_close(&c);
    h_server_wait(&fx->srv, H_TIMEOUT_MS); /* teardown checks its exit */
    fx->expect_accepted = 1;
}

static void test_http_stop_body_flows_reads(void **state)
{
    stop_mid_body(*state, false);
}

static void test_http_stop_body_flows_sendfile(void **state)
{
    stop_mid_body(*state, true);
}

/* --- raw: pipelining, split requests, malformed requests --------------------- */

static void test_http_pipelined(void **state)
{
    struct fixture *fx = *state;
    enum { N = 40 };
    static char reqs[N * 128];
    size_t o = 0;
    /* Every response is told apart by its range, status or length. */
    for (int i = 0; i < N; i++) {
        const char *close = i == N - 1 ? "Connection: close\r\n" : "";
        if (i % 10 == 9)
            o += (size_t)sprintf(reqs + o, "GET /missing%d HTTP/1.1\r\nHost: t\r\n%s\r\n",
                                 i, close);
        else if (i % 10 == 5)
            o += (size_t)sprintf(reqs + o,
                                 "HEAD /small.txt HTTP/1.1\r\nHost: t\r\n%s\r\n", close);
        else if (i == 20)
            o += (size_t)sprintf(reqs + o, "GET /big.bin HTTP/1.1\r\nHost: t\r\n%s\r\n",
                                 close);
        else
            o += (size_t)sprintf(
                reqs + o,
                "GET /small.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=%d-%d\r\n"
                "%s\r\n",
                i * 20, i * 20 + i, close);
    }
    struct raw c;
    raw_open(fx, &c);
    raw_send(&c, reqs, o); /* all in one write */
    for (int i = 0; i < N; i++) {
        struct raw_resp r;
        bool head = i % 10 == 5;
        if (!raw_response(&c, &r, head))
            fail_msg("EOF before response %d", i);
        if (i % 10 == 9) {
            assert_int_equal(r.status, 404);
        } else if (head) {
            assert_int_equal(r.status, 200);
            assert_int_equal(r.content_length, SMALL_LEN);
        } else if (i == 20) {
            assert_int_equal(r.status, 200);
            assert_int_equal(r.body_len, big_len);
            assert_memory_equal(r.body, big_data, big_len);
        } else {
            if (r.status != 206 || r.body_len != (size_t)i + 1)
                fail_msg("response %d: status %d, %zu bytes; want 206 with %d", i,
                         r.status, r.body_len, i + 1);
            assert_memory_equal(r.body, small_data + i * 20, (size_t)i + 1);
        }
        raw_resp_free(&r);
    }
    raw_expect_eof(&c);
    raw_close(&c);
    fx->expect_accepted = 1;
}

static void test_http_split_request(void **state)
{
    struct fixture *fx = *state;
    struct raw c;
    struct raw_resp r;
    raw_open(fx, &c);
    /* One byte per send (TCP_NODELAY is on in h_connect): the server sees
     * the head in many pieces, across its reads. */
    const char *req =
        "GET /dir/style.css HTTP/1.1\r\nHost: t\r\nX-Pad: 0123456789\r\n\r\n";
    for (const char *p = req; *p; p++)
        raw_send(&c, p, 1);
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "p{}\n", 4);
    raw_resp_free(&r);
    /* The same connection serves the next one, split across two sends in
     * the middle of "\r\n\r\n". */
    raw_sends(&c, "GET /a%20b.txt HTTP/1.1\r\nHost: t\r\n\r");
    raw_sends(&c, "\n");
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "space\n", 6);
    raw_resp_free(&r);
    raw_close(&c);
}

struct bad_case {
    const char *req;
    size_t len; /* 0: strlen */
    int status;
};

static void test_http_malformed(void **state)
{
    struct fixture *fx = *state;
    static char long_head[9000 + 64], long_target[3000];
    snprintf(long_head, sizeof(long_head), "GET / HTTP/1.1\r\nHost: t\r\nX: %09000d", 0);
    snprintf(long_target, sizeof(long_target), "GET /%02990d", 0);
    static const char nul_req[] = "GET /small.txt\0 HTTP/1.1\r\nHost: t\r\n\r\n";
    const struct bad_case cases[] = {
        {"GET /small.txt HTTP/1.1\nHost: t\n\n", 0, 400},
        {"GARBAGE\r\n\r\n", 0, 400},
        {"GET /small.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400},
        {"GET /small.txt HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 0, 400},
        {"GET /small.txt HTTP/1.1\r\nHost : t\r\n\r\n", 0, 400},
        {"GET  /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", 0, 400},
        {"GET /small.txt\r\n\r\n", 0, 400},
        {"GET /sm%zzall.txt HTTP/1.1\r\nHost: t\r\n\r\n", 0, 400},
        {nul_req, sizeof(nul_req) - 1, 400},
        {"GET /small.txt HTTP/1.2\r\nHost: t\r\n\r\n", 0, 505},
        {"GET /small.txt HTTP/2.0\r\nHost: t\r\n\r\n", 0, 505},
        {"PUT /small.txt HTTP/1.1\r\nHost: t\r\n\r\n", 0, 405},
        {"GET /small.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: "
         "chunked\r\n\r\n0\r\n\r\n",
         0, 413},
        {"GET /small.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc", 0, 413},
        /* Never completed: the server answers once the limit is passed. */
        {long_head, 0, 431},
        {long_target, 0, 414},
        /* An error ends the connection: the good request after it in the
         * same write is never answered. */
        {"GET /small.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
         "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n",
         0, 400},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct raw c;
        struct raw_resp r;
        raw_open(fx, &c);
        raw_send(&c, cases[i].req, cases[i].len ? cases[i].len : strlen(cases[i].req));
        if (!raw_response(&c, &r, false))
            fail_msg("case %zu (%.40s...): EOF, want %d", i, cases[i].req,
                     cases[i].status);
        if (r.status != cases[i].status)
            fail_msg("case %zu (%.40s...): %d, want %d", i, cases[i].req, r.status,
                     cases[i].status);
        raw_resp_free(&r);
        raw_expect_eof(&c);
        raw_close(&c);
    }
}

/* --- escapes ---------------------------------------------------------------- */

static void test_http_escapes(void **state)
{
    struct fixture *fx = *state;
    static const char *const targets[] = {
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/.%2e/secret.txt",
        "/dir/../../secret.txt",
        "/dir/%2e%2e/%2e%2e/secret.txt",
        "/../../../../../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "http://t/../secret.txt",
        "http://t/%2e%2e/secret.txt",
        "//etc/passwd",
        "/%2fetc%2fpasswd",
        "/..%5csecret.txt",
        "/%5c..%5csecret.txt",
        "/small.txt%00.html",
        "/%00../secret.txt",
        "/link_rel",
        "/link_abs",
        "/link_up/secret.txt",
        "/link_etc/passwd",
        "/dir/link_deep",
        "/link_up/root/small.txt",
    };
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        struct raw c;
        struct raw_resp r;
        char req[512];
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", targets[i]);
        raw_open(fx, &c);
        raw_sends(&c, req);
        if (!raw_response(&c, &r, false))
            fail_msg("%s: EOF without a response", targets[i]);
        if (r.status != 400 && r.status != 403 && r.status != 404)
            fail_msg("%s: status %d, want 400, 403 or 404", targets[i], r.status);
        if (r.body && (memmem(r.body, r.body_len, SECRET, strlen(SECRET)) ||
                       memmem(r.body, r.body_len, "root:", 5)))
            fail_msg("%s: the response holds a file from outside the root", targets[i]);
        raw_resp_free(&r);
        raw_close(&c);
    }
    /* A raw NUL and a raw backslash in the target. */
    static const char nul[] = "GET /link_rel\0/ HTTP/1.1\r\nHost: t\r\n\r\n";
    static const char *const raws[] = {nul,
                                       "GET /..\\secret.txt HTTP/1.1\r\nHost: t\r\n\r\n"};
    const size_t lens[] = {sizeof(nul) - 1, 0};
    for (size_t i = 0; i < 2; i++) {
        struct raw c;
        struct raw_resp r;
        raw_open(fx, &c);
        raw_send(&c, raws[i], lens[i] ? lens[i] : strlen(raws[i]));
        assert_true(raw_response(&c, &r, false));
        assert_true(r.status == 400 || r.status == 404);
        if (r.body && memmem(r.body, r.body_len, SECRET, strlen(SECRET)))
            fail_msg("raw case %zu: the secret was served", i);
        raw_resp_free(&r);
        raw_close(&c);
    }
    /* And real curl, told not to clean the path up. */
    struct resp cr;
    int st = curl1(fx, &cr, (const char *[]){"@/../secret.txt", NULL});
    assert_true(st == 400 || st == 404);
    st = curl1(fx, &cr, (const char *[]){"@/link_abs", NULL});
    assert_true(st == 403 || st == 404);
    size_t n;
    char *b = slurp(cr.body, &n);
    assert_null(strstr(b, SECRET));
    free(b);
}

/* --- clients that do not read ----------------------------------------------- */

static void test_http_nonreader_bounded(void **state)
{
    struct fixture *fx = *state;
    enum { HOGS = 8, REQS = 4 }; /* 8 x 4 x 8 MiB = 256 MiB asked for */
    const long rss_limit_kib = 96 * 1024;
    static char reqs[REQS * 64];
    size_t o = 0;
    for (int i = 0; i < REQS; i++)
        o += (size_t)sprintf(reqs + o, "GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    struct raw hogs[HOGS];
    for (int i = 0; i < HOGS; i++) {
        /* A small receive window keeps data in the server, not in the kernel. */
        memset(&hogs[i], 0, sizeof(hogs[i]));
        hogs[i].fd = h_connect_rcvbuf(&fx->srv, 4096);
        assert_true(hogs[i].fd >= 0);
        hogs[i].cap = 64 * KIB;
        hogs[i].buf = malloc(hogs[i].cap);
        raw_send(&hogs[i], reqs, o);
    }
    /* Meanwhile others are served, and the server's memory stays bounded. */
    long max_rss = 0;
    for (int k = 0; k < 10; k++) {
        expect_small_served(fx);
        long rss = h_server_rss_kib(&fx->srv);
        if (rss > max_rss)
            max_rss = rss;
    }
    print_message(
        "server VmRSS at most %ld KiB with %d clients not reading %d MiB each\n", max_rss,
        HOGS, REQS * 8);
    if (getenv("RS_E2E_SKIP_RSS"))
        print_message("RSS bound not checked (RS_E2E_SKIP_RSS set)\n");
    else if (max_rss >= rss_limit_kib)
        fail_msg("server VmRSS %ld KiB >= %ld KiB with %d clients not reading", max_rss,
                 rss_limit_kib, HOGS);
    /* One of them reads at last: everything arrives, intact and in order. */
    for (int i = 0; i < REQS; i++) {
        struct raw_resp r;
        assert_true(raw_response(&hogs[0], &r, false));
        assert_int_equal(r.status, 200);
        assert_int_equal(r.body_len, big_len);
        assert_memory_equal(r.body, big_data, big_len);
        raw_resp_free(&r);
    }
    for (int i = 0; i < HOGS; i++)
        raw_close(&hogs[i]);
    fx->expect_accepted = HOGS + 10;
}

/* Send copies of chunk as fast as the socket takes them, until it stays
 * full for 1 s, fails (the server reset it) or cap bytes went out. The
 * 1 s wait only decides when to stop trying: a server that pauses its
 * reading passes whatever it is. Returns the bytes sent. */
static size_t flood(int fd, const char *chunk, size_t chunk_len, size_t cap)
{
    size_t sent = 0;
    assert_int_equal(h_set_nonblock(fd, true), 0);
    while (sent < cap) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || (p.revents & (POLLERR | POLLHUP)))
            break;
        size_t off = sent % chunk_len, n = h_send_some(fd, chunk + off, chunk_len - off);
        if (n == 0)
            break;
        sent += n;
    }
    assert_int_equal(h_set_nonblock(fd, false), 0);
    return sent;
}

/* A client that pipelines small requests as fast as it can and never
 * reads: the server must not parse and answer without end, nor buffer
 * what it sends. Reading pauses once the answers queue up past
 * --max-pending; on io_uring the receives racing that pause can bring more
 * than the session keeps (two receive buffers past a head), and then it
 * answers the requests it holds and closes, dropping the rest (the close
 * reads and drops input until --drain-timeout, so there the client's
 * sends need not block). Either way the protocol takes in a bounded amount
 * (bytes_in=, checked at teardown: a server that buffers takes in all). */
static void test_http_nonreader_pipelined_small(void **state)
{
    struct fixture *fx = *state;
    const size_t cap = 64 * MIB; /* the most the client tries to send */
    const long rss_limit_kib = 64 * 1024;
    static const char one[] = "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    const size_t one_len = sizeof(one) - 1;
    size_t chunk_len = 1000 * one_len, sent = 0;
    char *chunk = malloc(chunk_len);
    assert_non_null(chunk);
    for (size_t i = 0; i < chunk_len; i += one_len)
        memcpy(chunk + i, one, one_len);
    struct raw c;
    memset(&c, 0, sizeof(c));
    c.fd = h_connect_rcvbuf(&fx->srv, 4096);
    assert_true(c.fd >= 0);
    sent = flood(c.fd, chunk, chunk_len, cap);
    long rss = h_server_rss_kib(&fx->srv);
    print_message("sent %zu bytes of requests without reading; server VmRSS %ld KiB\n",
                  sent, rss);
    if (!getenv("RS_E2E_SKIP_RSS") && rss >= rss_limit_kib)
        fail_msg("server VmRSS %ld KiB >= %ld KiB", rss, rss_limit_kib);
    /* Others are still served. */
    expect_small_served(fx);
    /* The first answers are there, in order. */
    struct raw_resp r;
    c.cap = 64 * KIB;
    c.buf = malloc(c.cap);
    for (int i = 0; i < 3; i++) {
        assert_true(raw_response(&c, &r, false));
        assert_int_equal(r.status, 200);
        assert_memory_equal(r.body, small_data, SMALL_LEN);
        raw_resp_free(&r);
    }
    raw_close(&c);
    free(chunk);
    fx->expect_accepted = 2;
    /* The answered requests (each answer ~1.2 KiB: what the socket buffers
     * and --max-pending hold, a few MiB) and what raced the pause. */
    fx->max_bytes_in = 16 * MIB;
}

/* A client asks for the large file, takes the response head, never reads
 * the body, and streams junk. With sendfile the session is idle as soon as
 * the file is queued (it waits for the file to leave before it parses
 * again), and junk arriving then used to pile up in memory without end; it
 * must stop reading all the same: the client's sends block, the server's
 * memory stays bounded and it goes on serving others; once the client
 * reads, the whole file arrives, then the answer to the junk. (Without
 * sendfile the session is still reading the file here; the test holds
 * there too.) */
static void junk_behind_file(struct fixture *fx)
{
    const size_t cap = 64 * MIB; /* the most the client tries to send */
    const long rss_limit_kib = 64 * 1024;
    static const char req[] = "GET /hole.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    static char junk[64 * KIB];
    memset(junk, 0x01, sizeof(junk)); /* a control byte: 400 once parsed */
    struct raw c;
    memset(&c, 0, sizeof(c));
    c.fd = h_connect_rcvbuf(&fx->srv, 4096);
    assert_true(c.fd >= 0);
    raw_send(&c, req, sizeof(req) - 1);
    c.cap = 64 * KIB;
    c.buf = malloc(c.cap);
    while (!memmem(c.buf, c.len, "\r\n\r\n", 4))
        if (!raw_fill(&c))
            fail_msg("EOF before the response head");
    size_t sent = flood(c.fd, junk, sizeof(junk), cap);
    long rss = h_server_rss_kib(&fx->srv);
    print_message(
        "sent %zu bytes of junk behind a request, unread; server VmRSS %ld KiB\n", sent,
        rss);
    if (sent >= cap)
        fail_msg("the server read %zu bytes of junk from a client that never reads",
                 sent);
    if (!getenv("RS_E2E_SKIP_RSS") && rss >= rss_limit_kib)
        fail_msg("server VmRSS %ld KiB >= %ld KiB", rss, rss_limit_kib);
    expect_small_served(fx);
    struct raw_resp r;
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, HOLE_LEN);
    for (size_t i = 0; i < HOLE_LEN; i++)
        if (r.body[i])
            fail_msg("byte %zu of a file of zeros is 0x%02x", i, r.body[i]);
    raw_resp_free(&r);
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 400);
    raw_resp_free(&r);
    raw_expect_eof(&c);
    raw_close(&c);
    fx->expect_accepted = 2;
    /* What the server took in: the two requests, at most a head's worth of
     * junk and the receives racing the pause while the file was pending,
     * then the junk up to the parse error (the rest is dropped by the close,
     * not counted). On io_uring the receives racing the pause can fill
     * every free buffer of the pool (8 MiB by default) before the loop
     * sees the first of them: seen under qemu on 6.1, exactly the pool
     * plus the request. So the pool, the requests and a head's worth:
     * still far below what a server that does not pause takes in (all
     * 64 MiB). */
    fx->max_bytes_in = 8 * MIB + 64 * KIB;
}

static void test_http_junk_behind_file(void **state)
{
    junk_behind_file(*state);
}

static void test_http_junk_behind_file_copy(void **state)
{
    struct fixture *fx = *state;
    restart_with(fx, NULL, (const char *[]){"--sendfile=off", NULL});
    junk_behind_file(fx);
}

static void test_http_nonreader_pipelined_small_copy(void **state)
{
    struct fixture *fx = *state;
    restart_with(fx, NULL, (const char *[]){"--sendfile=off", NULL});
    test_http_nonreader_pipelined_small(state);
}

/* --- dates ------------------------------------------------------------------- */

/* The header block holds only well-formed lines: a status line, then
 * "Name: value" with a token name and printable ASCII (no stray bytes from
 * memory). */
static void assert_clean_head(const char *head)
{
    const char *line = strstr(head, "\r\n");
    assert_non_null(line);
    for (line += 2; strncmp(line, "\r\n", 2) != 0;) {
        const char *eol = strstr(line, "\r\n");
        assert_non_null(eol);
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon || colon == line)
            fail_msg("header line without a name: %.*s", (int)(eol - line), line);
        for (const char *q = line; q < eol; q++) {
            unsigned char ch = (unsigned char)*q;
            if (ch < 0x20 || ch > 0x7e)
                fail_msg("byte 0x%02x in header line %.*s", ch, (int)(eol - line), line);
        }
        line = eol + 2;
    }
}

/* Files dated before 1970 and after 9999: no Last-Modified at all (never
 * garbage), no 304 against a date the server never stated, and a clean
 * head whichever way the body goes (small, sendfile, HEAD). */
static void test_http_dates_out_of_range(void **state)
{
    struct fixture *fx = *state;
    /* tmpfs keeps any 64-bit mtime, ext4 stops at 2446: the test's own
     * root on /dev/shm when there is one. */
    snprintf(fx->tmp_root, sizeof(fx->tmp_root), "/dev/shm/rs-http-dates-XXXXXX");
    if (!mkdtemp(fx->tmp_root)) {
        snprintf(fx->tmp_root, sizeof(fx->tmp_root), "%s/dates-XXXXXX", base);
        if (!mkdtemp(fx->tmp_root))
            fail_msg("mkdtemp: %s", strerror(errno));
    }
    static const struct {
        const char *name;
        int64_t mtime;
        bool big;
    } files[] = {
        {"old.txt", -315619200, false},               /* 1960-01-01 */
        {"older.txt", -62135596800LL - 86400, false}, /* before year 1 */
        {"future.txt", 253402300800LL, false},        /* 10000-01-01 */
        {"far.txt", 253402300800LL * 4, false},       /* year ~40000 */
        {"old-big.bin", -315619200, true},
        {"future-big.bin", 253402300800LL + 86400 * 400, true},
    };
    size_t nf = sizeof(files) / sizeof(files[0]);
    int tested = 0;
    for (size_t i = 0; i < nf; i++) {
        char path[PATH_MAX * 2];
        snprintf(path, sizeof(path), "%s/%s", fx->tmp_root, files[i].name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        size_t len = files[i].big ? big_len : SMALL_LEN;
        assert_int_equal(write(fd, files[i].big ? big_data : small_data, len),
                         (ssize_t)len);
        struct timespec ts[2] = {{.tv_sec = (time_t)files[i].mtime},
                                 {.tv_sec = (time_t)files[i].mtime}};
        assert_int_equal(futimens(fd, ts), 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        close(fd);
        if ((int64_t)st.st_mtime >= 0 && (int64_t)st.st_mtime <= 253402300799LL)
            print_message("%s: the file system kept mtime %lld, not %lld: skipped\n",
                          files[i].name, (long long)st.st_mtime,
                          (long long)files[i].mtime);
    }
    restart_with(fx, fx->tmp_root, NULL);
    for (size_t i = 0; i < nf; i++) {
        char path[PATH_MAX * 2];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", fx->tmp_root, files[i].name);
        assert_int_equal(stat(path, &st), 0);
        if ((int64_t)st.st_mtime >= 0 && (int64_t)st.st_mtime <= 253402300799LL)
            continue;
        tested++;
        const unsigned char *want = files[i].big ? big_data : small_data;
        size_t len = files[i].big ? big_len : SMALL_LEN;
        char reqs[1024];
        /* GET; HEAD; a GET with an If-Modified-Since of now (a file dated
         * 1960 is "not modified since" by any reading of its mtime, but it
         * has no date the client could have had from us); a Range. */
        snprintf(reqs, sizeof(reqs),
                 "GET /%s HTTP/1.1\r\nHost: t\r\n\r\n"
                 "HEAD /%s HTTP/1.1\r\nHost: t\r\n\r\n"
                 "GET /%s HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: %s\r\n\r\n"
                 "GET /%s HTTP/1.1\r\nHost: t\r\nRange: bytes=1-3\r\n"
                 "Connection: close\r\n\r\n",
                 files[i].name, files[i].name, files[i].name,
                 "Mon, 07 Dec 2026 04:00:00 GMT", files[i].name);
        struct raw c;
        raw_open(fx, &c);
        raw_sends(&c, reqs);
        for (int k = 0; k < 4; k++) {
            struct raw_resp r;
            char v[128];
            assert_true(raw_response(&c, &r, k == 1));
            assert_clean_head(r.head);
            if (header_in(r.head, "Last-Modified", v, sizeof(v)))
                fail_msg("%s, response %d: Last-Modified: %s", files[i].name, k, v);
            assert_non_null(header_in(r.head, "Date", v, sizeof(v)));
            if (k == 3) {
                assert_int_equal(r.status, 206);
                assert_memory_equal(r.body, want + 1, 3);
            } else {
                if (r.status != 200)
                    fail_msg("%s, response %d: status %d", files[i].name, k, r.status);
                assert_int_equal(r.content_length, (long long)len);
                if (k != 1)
                    assert_memory_equal(r.body, want, len);
            }
            raw_resp_free(&r);
        }
        raw_expect_eof(&c);
        raw_close(&c);
    }
    print_message("%d files dated out of range served (root %s)\n", tested, fx->tmp_root);
    assert_true(tested >= 2); /* 1960 works everywhere */
}

/* If-Range (RFC 9110 13.1.5): the Range applies only when the validator
 * is the file's current date; otherwise the whole file, 200. */
static void test_http_if_range(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    char lm[64], h[128];
    assert_int_equal(curl1(fx, &r, (const char *[]){"@/stable.txt", NULL}), 200);
    assert_header(&r, "Last-Modified", "Sun, 09 Sep 2001 01:46:40 GMT");
    assert_non_null(header(&r, "Last-Modified", lm, sizeof(lm)));
    /* It matches: 206. In each of the three date forms. */
    static const char *const same[] = {
        "If-Range: Sun, 09 Sep 2001 01:46:40 GMT",
        "If-Range: Sunday, 09-Sep-01 01:46:40 GMT",
        "If-Range: Sun Sep  9 01:46:40 2001",
    };
    for (size_t i = 0; i < 3; i++) {
        if (curl1(fx, &r,
                  (const char *[]){"-r", "10-19", "-H", same[i], "@/stable.txt", NULL}) !=
            206)
            fail_msg("%s: status %d, want 206", same[i], r.status);
        assert_body(&r, small_data + 10, 10);
        assert_header(&r, "Content-Range", "bytes 10-19/100");
    }
    /* It does not: another date (a second off either way), an entity-tag
     * (the server sends none), junk. The whole file, 200. */
    static const char *const other[] = {
        "If-Range: Sun, 09 Sep 2001 01:46:41 GMT",
        "If-Range: Sun, 09 Sep 2001 01:46:39 GMT",
        "If-Range: \"5f1d-64\"",
        "If-Range: W/\"5f1d-64\"",
        "If-Range: yesterday",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        if (curl1(fx, &r,
                  (const char *[]){"-r", "10-19", "-H", other[i], "@/stable.txt",
                                   NULL}) != 200)
            fail_msg("%s: status %d, want 200", other[i], r.status);
        assert_body(&r, small_data, STABLE_LEN);
        assert_null(header(&r, "Content-Range", h, sizeof(h)));
    }
    /* On the large file too (sendfile or read-ahead): the file was written
     * at start-up, its date is its own; a date before it does not match. */
    assert_int_equal(curl1(fx, &r,
                           (const char *[]){"-r", "0-9", "-H",
                                            "If-Range: Sun, 09 Sep 2001 01:46:40 GMT",
                                            "@/big.bin", NULL}),
                     200);
    assert_int_equal(r.size, big_len);
    /* Without Range, If-Range changes nothing. */
    snprintf(h, sizeof(h), "If-Range: %s", lm);
    assert_int_equal(curl1(fx, &r, (const char *[]){"-H", h, "@/stable.txt", NULL}), 200);
    assert_body(&r, small_data, STABLE_LEN);
}

/* If-Modified-Since in the three forms RFC 9110 5.6.7 says a recipient
 * MUST accept; one in the future is invalid and ignored (200). */
static void test_http_ims_forms(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    static const char *const same[] = {
        "If-Modified-Since: Sun, 09 Sep 2001 01:46:40 GMT",
        "If-Modified-Since: Sunday, 09-Sep-01 01:46:40 GMT",
        "If-Modified-Since: Sun Sep  9 01:46:40 2001",
        "If-Modified-Since: Mon Sep 10 01:46:40 2001",
    };
    for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
        if (curl1(fx, &r, (const char *[]){"-H", same[i], "@/stable.txt", NULL}) != 304)
            fail_msg("%s: status %d, want 304", same[i], r.status);
    static const char *const modified[] = {
        "If-Modified-Since: Sat, 08 Sep 2001 01:46:40 GMT",
        "If-Modified-Since: Saturday, 08-Sep-01 01:46:40 GMT",
        "If-Modified-Since: Sat Sep  8 01:46:40 2001",
        /* Later than the server's clock: invalid, ignored. */
        "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT",
        "If-Modified-Since: Fri Dec 31 23:59:59 9999",
    };
    for (size_t i = 0; i < sizeof(modified) / sizeof(modified[0]); i++) {
        if (curl1(fx, &r, (const char *[]){"-H", modified[i], "@/stable.txt", NULL}) !=
            200)
            fail_msg("%s: status %d, want 200", modified[i], r.status);
        assert_body(&r, small_data, STABLE_LEN);
    }
}

/* An absolute-form target whose host is an IPv6 literal. */
static void test_http_absolute_ipv6(void **state)
{
    struct fixture *fx = *state;
    char req[256];
    snprintf(req, sizeof(req),
             "GET http://[::1]:%u/small.txt HTTP/1.1\r\nHost: [::1]:%u\r\n\r\n"
             "GET http://[::ffff:127.0.0.1]/dir/style.css HTTP/1.1\r\nHost: t\r\n"
             "Connection: close\r\n\r\n",
             fx->srv.port, fx->srv.port);
    struct raw c;
    struct raw_resp r;
    raw_open(fx, &c);
    raw_sends(&c, req);
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, small_data, SMALL_LEN);
    raw_resp_free(&r);
    assert_true(raw_response(&c, &r, false));
    assert_int_equal(r.status, 200);
    assert_memory_equal(r.body, "p{}\n", 4);
    raw_resp_free(&r);
    raw_expect_eof(&c);
    raw_close(&c);
}

/* --- the request-head deadline ------------------------------------------------ */

/* --header-timeout=1: a head trickling in a byte every 200 ms is cut (408,
 * then EOF) however steadily it progresses; a connection that sends
 * nothing is closed without a word; a prompt client is served. The only
 * bound on time is the trickle's length (40 bytes, 8 s), which a server
 * without the deadline outlasts. The deadline starts at the server's
 * accept: a client that got no CPU for a second between its connect and
 * its first bytes may be closed unanswered, like the silent one; only then
 * (head_unanswered) is it counted and tried again on a new connection. */
static void test_http_header_timeout(void **state)
{
    struct fixture *fx = *state;
    restart_with(fx, NULL, (const char *[]){"--header-timeout=1", NULL});
    struct raw slow, silent;
    raw_open(fx, &silent);
    int stalled = 0;
    for (;;) {
        int64_t took =
            raw_open_sends(fx, &slow, "GET /small.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ");
        bool cut = false;
        for (int i = 0; i < 40 && !cut; i++) {
            struct pollfd p = {.fd = slow.fd, .events = POLLIN};
            if (poll(&p, 1, 200) > 0) {
                cut = true;
                break;
            }
            if (send(slow.fd, "a", 1, MSG_NOSIGNAL) != 1)
                cut = true; /* reset: the server is gone from it */
        }
        if (!cut)
            fail_msg("a head trickling for 8 s was never cut (--header-timeout=1)");
        struct raw_resp r;
        if (raw_response(&slow, &r, false)) {
            assert_int_equal(r.status, 408);
            raw_resp_free(&r);
            raw_expect_eof(&slow);
            raw_close(&slow);
            break;
        }
        raw_close(&slow);
        head_unanswered(took, 1000, "a trickling head", &stalled);
    }
    /* The silent one: EOF, nothing before it. */
    raw_expect_eof(&silent);
    raw_close(&silent);
    expect_small_served_within(fx, 1000, &stalled);
    fx->expect_accepted = 3 + stalled;
    fx->expect_header_timeouts = 2 + stalled;
}

/* --- the send and keep-alive timeouts ------------------------------------------ */

/* A body far larger than what the kernel's socket buffers hold (4 MiB of
 * send buffer, the client's window): zeros, free to make. */
#define STALL_LEN (64u * MIB)

/* Send a GET for /name and read its head: returns its Content-Length;
 * the body bytes read with it stay in c. */
static long long get_head(struct raw *c, const char *name)
{
    char req[128];
    snprintf(req, sizeof(req), "GET /%s HTTP/1.1\r\nHost: t\r\n\r\n", name);
    raw_sends(c, req);
    char *end;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4)))
        if (!raw_fill(c))
            fail_msg("EOF before the head of /%s", name);
    char head[4096];
    size_t hl = (size_t)(end + 4 - c->buf);
    assert_true(hl < sizeof(head));
    memcpy(head, c->buf, hl);
    head[hl] = '\0';
    raw_consume(c, hl);
    if (strncmp(head, "HTTP/1.1 200 ", 13) != 0)
        fail_msg("/%s: %.40s", name, head);
    char v[32];
    assert_non_null(header_in(head, "Content-Length", v, sizeof(v)));
    return atoll(v);
}

/* Wait for the server to end c's connection (poll for events: 0 for a
 * reset, which raises POLLERR|POLLHUP even with bytes left unread;
 * POLLIN for a FIN), at most H_TIMEOUT_MS, then check that it was not
 * before a 1 s timeout counted from t0. what: the client, for messages. */
static void wait_for_end(struct raw *c, short events, int64_t t0, const char *what)
{
    struct pollfd p = {.fd = c->fd, .events = events};
    int r;
    while ((r = poll(&p, 1, H_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    if (r == 0)
        fail_msg("%s: no %s in %d ms", what, events ? "end" : "reset", H_TIMEOUT_MS);
    int64_t took = h_now_ms() - t0;
    print_message("%s: ended %lld ms after its request\n", what, (long long)took);
    if (took < 1000 - 20)
        fail_msg("%s: ended %lld ms after its request, before the 1 s timeout", what,
                 (long long)took);
}

/* --send-timeout=1: a client that takes the first 64 KiB of a large body
 * and then nothing is cut with a reset (it reads a prefix, then
 * ECONNRESET, never a clean EOF) once the server's output made no
 * progress for the timeout; the wait for it is bounded by H_TIMEOUT_MS,
 * which a server without the timeout outlasts. Never before the timeout:
 * the request was sent before the server's output could first move. */
static void test_http_send_timeout_cuts_stalled(void **state)
{
    struct fixture *fx = *state;
    restart_with(fx, NULL, (const char *[]){"--send-timeout=1", NULL});
    make_hole("root/stall.bin", STALL_LEN);
    struct raw c;
    raw_open_rcvbuf(fx, &c, 32 * KIB);
    int64_t t0 = h_now_ms();
    assert_int_equal(get_head(&c, "stall.bin"), STALL_LEN);
    while (c.len < 64 * KIB)
        if (!raw_fill(&c))
            fail_msg("EOF after %zu bytes of the body", c.len);
    wait_for_end(&c, 0, t0, "a client that stopped reading (--send-timeout=1)");
    size_t got = c.len;
    int end = read_to_end(&c, &got);
    if (end != ECONNRESET)
        fail_msg("a body cut by the send timeout: %zu bytes then %s, want ECONNRESET",
                 got, end ? strerror(end) : "a clean EOF");
    assert_true(got < STALL_LEN);
    raw_close(&c);
    expect_small_served(fx);
    fx->expect_accepted = 2;
    fx->expect_send_timeouts = 1;
    fx->expect_keepalive_timeouts = 0;
}

/* --send-timeout=10 against a reader that takes 2 MiB, pauses 250 ms, and
 * so on for 2 s: its output progresses all along, so it is never cut.
 * Then it reads the rest at full speed, all of it, and the connection
 * serves another request. The timeout is far above the reader's pauses:
 * a client or server that gets no CPU for seconds (a loaded machine, a
 * stolen vCPU) makes a real pause, which a correct server may cut. That a
 * response lasting several timeouts is never cut while it progresses
 * (a timeout counted from the response's start, or one that missed the
 * progress, cuts it) is test_http's send_timeout_slow_reader, on a clock
 * of the test's own. */
static void test_http_send_timeout_spares_slow_reader(void **state)
{
    struct fixture *fx = *state;
    restart_with(fx, NULL, (const char *[]){"--send-timeout=10", NULL});
    make_hole("root/slow.bin", STALL_LEN);
    struct raw c;
    raw_open(fx, &c);
    assert_int_equal(get_head(&c, "slow.bin"), STALL_LEN);
    size_t got = c.len;
    c.len = 0;
    for (int round = 0; round < 8; round++) {
        size_t want = got + 2 * MIB;
        while (got < want) {
            ssize_t n = recv(c.fd, c.buf, c.cap, 0);
            if (n <= 0)
                fail_msg("a reader taking 2 MiB every 250 ms was cut after %zu bytes "
                         "(%s)",
                         got, n < 0 ? strerror(errno) : "EOF");
            got += (size_t)n;
        }
        h_sleep_ms(250); /* the client's pace, not a wait for the server */
    }
    while (got < STALL_LEN) {
        size_t room = c.cap < STALL_LEN - got ? c.cap : STALL_LEN - got;
        ssize_t n = recv(c.fd, c.buf, room, 0);
        if (n <= 0)
            fail_msg("cut after %zu bytes (%s)", got, n < 0 ? strerror(errno) : "EOF");
        got += (size_t)n;
    }
    assert_int_equal(get_head(&c, "small.txt"), SMALL_LEN);
    raw_close(&c);
    fx->expect_accepted = 1;
    fx->expect_send_timeouts = 0;
}

/* How long busy_keepalive_client may keep starting again (see there): a
 * bound on the run, not a verdict on the server. */
#define BUSY_BUDGET_MS 30000

/* A request every 300 ms on one connection for 1.5 s, past the
 * keep-alive timeout (1 s): the timeout counts from the last response, so
 * the server never closes it. The server serves a request that arrived
 * before its deadline (also after a stall of its own: it reads before its
 * timers), so it may close only when this client itself let a second pass
 * between sending one request and the next (the head deadline, 0.5 s,
 * between its connect and its first): a client that got no CPU that long
 * (a loaded machine, a stolen vCPU). A close after a shorter gap of the
 * client's own is the bug, whatever the machine does; after a longer one
 * that connection is counted (*by_head: before its first response, by the
 * head deadline; *by_idle: later, by the keep-alive timeout) and the
 * sequence starts again on a new one. The server cannot cause a new
 * start, so they hide no bug; they are bounded only by BUSY_BUDGET_MS,
 * which a machine that never gives this client 1.5 s without such a gap
 * runs out. */
static void busy_keepalive_client(struct fixture *fx, int *by_head, int *by_idle)
{
    *by_head = *by_idle = 0;
    const char req[] = "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    int64_t budget_end = h_now_ms() + BUSY_BUDGET_MS;
    for (;;) {
        struct raw busy;
        int64_t idle_from = h_now_ms(), allowed = 500; /* the accept is later */
        raw_open(fx, &busy);
        int i;
        for (i = 0; i < 5; i++) {
            int64_t sent_at = h_now_ms();
            bool open = send(busy.fd, req, sizeof(req) - 1, MSG_NOSIGNAL) ==
                        (ssize_t)(sizeof(req) - 1);
            char *end = NULL;
            while (open && !(end = memmem(busy.buf, busy.len, "\r\n\r\n", 4)))
                open = raw_fill(&busy);
            size_t hl = end ? (size_t)(end + 4 - busy.buf) : 0;
            while (open && busy.len < hl + SMALL_LEN)
                open = raw_fill(&busy);
            if (!open) {
                int64_t gap = sent_at - idle_from;
                if (gap < allowed - 20)
                    fail_msg("a connection with a request every 300 ms closed after %d "
                             "responses, although the client sent this request %lld ms "
                             "after %s (the server may close after %lld ms)",
                             i, (long long)gap,
                             i ? "its last one" : "it began to connect",
                             (long long)allowed);
                print_message("busy connection closed after %d responses; the client "
                              "sent its next request %lld ms after its last one (or its "
                              "connect): it got no CPU that long; again on a new "
                              "connection\n",
                              i, (long long)gap);
                ++*(i == 0 ? by_head : by_idle);
                break;
            }
            if (strncmp(busy.buf, "HTTP/1.1 200 ", 13) != 0)
                fail_msg("busy connection: %.40s", busy.buf);
            raw_consume(&busy, hl + SMALL_LEN);
            idle_from = sent_at;
            allowed = 1000;
            if (i < 4)
                h_sleep_ms(300); /* the client's pace; none after the last */
        }
        raw_close(&busy);
        if (i == 5)
            return;
        if (h_now_ms() >= budget_end)
            fail_msg("%d busy connections in %d s were each closed after a stall of the "
                     "client's own: the machine never gave it 1.5 s without a 1 s gap",
                     *by_head + *by_idle, BUSY_BUDGET_MS / 1000);
    }
}

/* --keepalive-timeout=1 with --header-timeout=0.5: a connection idle after
 * its response is closed with a FIN (a clean EOF, no reset: nothing was
 * cut) after the keep-alive timeout, not after the shorter head deadline,
 * which a later request only starts with its first byte. A busy one is
 * never closed (busy_keepalive_client). */
static void test_http_keepalive_timeout(void **state)
{
    struct fixture *fx = *state;
    restart_with(fx, NULL,
                 (const char *[]){"--keepalive-timeout=1", "--header-timeout=0.5", NULL});
    int by_head, by_idle;
    busy_keepalive_client(fx, &by_head, &by_idle);
    struct raw idle;
    int64_t t0;
    for (;;) {
        struct raw_resp r;
        int64_t tc = h_now_ms();
        raw_open(fx, &idle);
        t0 =
            h_now_ms(); /* before the request: the response, and its timeout, are later */
        raw_sends(&idle, "GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        int64_t took = h_now_ms() - tc;
        if (raw_response(&idle, &r, false)) {
            assert_int_equal(r.status, 200);
            assert_memory_equal(r.body, small_data, SMALL_LEN);
            raw_resp_free(&r);
            break;
        }
        raw_close(&idle);
        head_unanswered(took, 500, "a connection's first request", &by_head);
    }
    wait_for_end(&idle, POLLIN, t0, "an idle connection (--keepalive-timeout=1)");
    char b[64];
    ssize_t n = recv(idle.fd, b, sizeof(b), MSG_DONTWAIT);
    if (n != 0)
        fail_msg("an idle connection's end: %s, want a clean EOF",
                 n > 0 ? "more bytes" : strerror(errno));
    raw_close(&idle);
    fx->expect_accepted = 2 + by_head + by_idle;
    fx->expect_keepalive_timeouts = 1 + by_idle;
    fx->expect_header_timeouts = by_head;
    fx->expect_send_timeouts = 0;
}

/* --- main ---------------------------------------------------------------------- */

/* Does a test's name contain the n-byte word at p (RS_HTTP_TESTS)? */
static bool name_has(const char *name, const char *p, size_t n)
{
    char word[64];
    snprintf(word, sizeof(word), "%.*s", (int)n, p);
    return n > 0 && strstr(name, word) != NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SERVER [SERVER-ARGS...]\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    server_argv = argv + 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--backend=uring") == 0)
            want_backend = "uring";
        else if (strcmp(argv[i], "--backend=epoll") == 0)
            want_backend = "epoll";
    }
    char *curl_v[] = {"curl", "--version", NULL};
    char out[4096];
    if (run_capture(curl_v, out, sizeof(out)) != 0) {
        fprintf(stderr, "http: curl is needed (apt-get install curl; scripts/deps.sh)\n");
        return 1;
    }
    if (getenv("RS_HTTP_SMALL_BIG"))
        big_len = 2u * MIB + 123u;
    make_root();
    atexit(remove_root);
    /* Skips (77) where io_uring is missing, or with a ringserve from
     * before --protocol=http. */
    const char *extra[] = {"--listen=127.0.0.1:0", "--protocol=http", root_arg, NULL};
    int pre = h_preflight_with(server_argv, extra, "http");
    if (pre >= 0)
        return pre;

    const char *filter = getenv("RS_E2E_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_http_get_200),
        T(test_http_head),
        T(test_http_404),
        T(test_http_405),
        T(test_http_413),
        T(test_http_414),
        T(test_http_431),
        T(test_http_400),
        T(test_http_range_206),
        T(test_http_range_416),
        T(test_http_ims_304),
        T(test_http_keepalive),
        T(test_http_large_sha256),
        T(test_http_cached_body_no_worker),
        T(test_http_sendfile_fds_released),
        T(test_http_socket_flags_between_responses),
        T(test_http_head_shares_first_segment),
        T(test_http_head_shares_first_segment_copy),
        T(test_http_pipelined),
        T(test_http_split_request),
        T(test_http_malformed),
        T(test_http_escapes),
        T(test_http_nonreader_bounded),
        T(test_http_nonreader_pipelined_small),
        T(test_http_nonreader_pipelined_small_copy),
        T(test_http_junk_behind_file),
        T(test_http_junk_behind_file_copy),
        T(test_http_dates_out_of_range),
        T(test_http_if_range),
        T(test_http_ims_forms),
        T(test_http_absolute_ipv6),
        T(test_http_header_timeout),
        T(test_http_send_timeout_cuts_stalled),
        T(test_http_send_timeout_spares_slow_reader),
        T(test_http_keepalive_timeout),
        T(test_http_stop_body_flows_reads),
        T(test_http_stop_body_flows_sendfile),
        T(test_http_file_cut_mid_body),
        T(test_http_file_cut_mid_body_copy),
    };
#undef T
    /* RS_HTTP_TESTS=a,b,c: only the tests whose names contain one of these
     * (under valgrind every server start costs seconds). */
    struct CMUnitTest chosen[sizeof(tests) / sizeof(tests[0])];
    size_t nchosen = 0;
    const char *only = getenv("RS_HTTP_TESTS");
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        bool take = !only || !*only;
        for (const char *p = only; p && *p && !take;) {
            size_t n = strcspn(p, ",");
            take = name_has(tests[i].name, p, n);
            p += n + (p[n] == ',');
        }
        if (take)
            chosen[nchosen++] = tests[i];
    }
    /* Every word must pick a test: a misspelt or renamed name would
     * otherwise quietly run less (or nothing) and pass. */
    for (const char *p = only; p && *p;) {
        size_t n = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]) && !found; i++)
            found = name_has(tests[i].name, p, n);
        if (!found) {
            fprintf(stderr, "FAIL: RS_HTTP_TESTS: '%.*s' matches no test\n", (int)n, p);
            free(small_data);
            free(big_data);
            return 1;
        }
        p += n + (p[n] == ',');
    }
    int rc = _cmocka_run_group_tests("http", chosen, nchosen, NULL, NULL);
    free(small_data);
    free(big_data);
    return rc;
}
