/* tree_copy: copy a directory tree with many file requests in flight.
 *
 *   tree_copy [--backend=uring|epoll|epoll-lt] [--inflight=N] [--chunk=BYTES]
 *             SRC DST
 *
 * Like `cp -r SRC DST` where DST does not exist yet: directories (made
 * here, with SRC's permission bits), regular files and symbolic links
 * (copied as links). Files are copied by up to --inflight (default 16)
 * copiers at once, each one a chain of requests on its own buffer of
 * --chunk bytes (default 256 KiB): open the source beneath SRC, open the
 * copy beneath DST, read, write, ..., close both, next file.
 *
 * What it shows: file requests with no socket at all, on a loop this
 * thread runs by itself; a request reused for every step of a copier,
 * its callback deciding the next step from req->type; and a loop that
 * stops itself when the last copier is done.
 *
 * Build against an installed libringserve:
 *   cc -std=c11 tree_copy.c $(pkg-config --cflags --libs ringserve) -o tree_copy
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ringserve/config.h>
#include <ringserve/fs.h>
#include <ringserve/loop.h>

struct file {
    char *path; /* relative to SRC and DST */
    unsigned mode;
};

struct tree {
    struct rs_loop *loop;
    int src, dst; /* directory fds */
    struct file *files;
    size_t nfiles, cap, next;
    unsigned running;
    int failed;
};

/* One copier: a file at a time, one request at a time. */
struct copier {
    struct tree *t;
    struct rs_fs_req req;
    struct file *f;
    int in, out;
    uint64_t off;
    uint32_t len, chunk; /* bytes read into buf, not yet written */
    uint8_t *buf;
};

/* nftw's callback has no user pointer: the walk is the one place the
 * program's state is global, and only while it runs. */
static struct tree *walking;
static size_t walk_root_len;

static void next_file(struct copier *c);
static void on_step(struct rs_fs_req *req);

static int failed(struct copier *c, const char *what, int err)
{
    fprintf(stderr, "tree_copy: %s: %s: %s\n", c->f->path, what, strerror(-err));
    c->t->failed = 1;
    return 0;
}

/* The step that ended (type, res) decides the next: 1 when it started,
 * 0 when this file is done, copied or failed. */
static int step(struct copier *c, int type, int res)
{
    struct tree *t = c->t;
    int rc;
    switch (type) {
    case RS_FS_OPEN:
        if (res < 0)
            return failed(c, c->in < 0 ? "open" : "create", res);
        if (c->in < 0) {
            c->in = res;
            rc = rs_fs_open_beneath(t->loop, &c->req, t->dst, c->f->path,
                                    O_WRONLY | O_CREAT | O_EXCL, c->f->mode, on_step);
        } else {
            c->out = res;
            rc = rs_fs_read(t->loop, &c->req, c->in, c->buf, c->chunk, c->off, on_step);
        }
        break;
    case RS_FS_READ:
        if (res <= 0) /* 0: the end of the file */
            return res < 0 ? failed(c, "read", res) : 0;
        c->len = (uint32_t)res;
        rc = rs_fs_write(t->loop, &c->req, c->out, c->buf, c->len, c->off, on_step);
        break;
    case RS_FS_WRITE:
        if (res <= 0)
            return failed(c, "write", res < 0 ? res : -EIO);
        c->off += (uint64_t)res;
        c->len -= (uint32_t)res;
        if (c->len) { /* a short write: the rest of the chunk first */
            memmove(c->buf, c->buf + res, c->len);
            rc = rs_fs_write(t->loop, &c->req, c->out, c->buf, c->len, c->off, on_step);
        } else {
            rc = rs_fs_read(t->loop, &c->req, c->in, c->buf, c->chunk, c->off, on_step);
        }
        break;
    default: /* RS_FS_CLOSE */
        if (res < 0)
            failed(c, "close", res);
        return 0;
    }
    return rc < 0 ? failed(c, "start", rc) : 1;
}

/* Close what this file has open, one request each, then the next file. */
static void finish_file(struct copier *c)
{
    while (c->in >= 0 || c->out >= 0) {
        int *fd = c->in >= 0 ? &c->in : &c->out;
        int f = *fd;
        *fd = -1;
        if (rs_fs_close(c->t->loop, &c->req, f, on_step) == 0)
            return;
        close(f);
    }
    next_file(c);
}

static void on_step(struct rs_fs_req *req)
{
    struct copier *c = req->data;
    if (!step(c, req->type, req->result))
        finish_file(c);
}

static void next_file(struct copier *c)
{
    struct tree *t = c->t;
    while (t->next < t->nfiles) {
        c->f = &t->files[t->next++];
        c->in = c->out = -1;
        c->off = 0;
        c->len = 0;
        int rc = rs_fs_open_beneath(t->loop, &c->req, t->src, c->f->path, O_RDONLY, 0,
                                    on_step);
        if (rc == 0)
            return;
        failed(c, "start", rc);
    }
    if (--t->running == 0)
        rs_loop_stop(t->loop); /* the last copier is done */
}

/* The walk: directories and links made now (metadata: no data to move),
 * regular files listed for the copiers. Directories get u+rwx while we
 * fill them (cp would restore a stricter mode afterwards; we do not). */
static int visit(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    struct tree *t = walking;
    if (ftw->level == 0)
        return 0; /* DST itself, made by main */
    const char *rel = path + walk_root_len + 1;
    int rc = 0;
    if (type == FTW_D) {
        rc = mkdirat(t->dst, rel, (sb->st_mode & 07777) | 0700);
    } else if (type == FTW_SL) {
        char target[4096];
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n >= 0)
            target[n] = '\0';
        rc = n < 0 ? -1 : symlinkat(target, t->dst, rel);
    } else if (type == FTW_F && S_ISREG(sb->st_mode)) {
        if (t->nfiles == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 256;
            struct file *f = realloc(t->files, t->cap * sizeof(*f));
            if (!f)
                return -1;
            t->files = f;
        }
        char *copy = strdup(rel);
        if (!copy)
            return -1;
        t->files[t->nfiles++] = (struct file){.path = copy, .mode = sb->st_mode & 07777};
    } else {
        fprintf(stderr, "tree_copy: %s: not a file, directory or link: skipped\n", path);
    }
    if (rc < 0) {
        fprintf(stderr, "tree_copy: %s: %s\n", rel, strerror(errno));
        t->failed = 1;
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: tree_copy [--backend=uring|epoll|epoll-lt] [--inflight=N] "
                    "[--chunk=BYTES] SRC DST\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct tree t;
    unsigned n = 16, chunk = 256 * 1024;
    const char *backend = "uring";
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    static const struct option opts[] = {{"backend", required_argument, NULL, 'b'},
                                         {"inflight", required_argument, NULL, 'n'},
                                         {"chunk", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (opt == 'b')
            backend = optarg;
        else if (opt == 'n' && atoi(optarg) > 0)
            n = (unsigned)atoi(optarg);
        else if (opt == 'c' && atoi(optarg) > 0)
            chunk = (unsigned)atoi(optarg);
        else
            return usage();
    }
    if (argc - optind != 2)
        return usage();
    char *src = argv[optind], *dst = argv[optind + 1];
    for (size_t l = strlen(src); l > 1 && src[l - 1] == '/'; l--)
        src[l - 1] = '\0';
    struct stat sb;
    if (stat(src, &sb) < 0 || !S_ISDIR(sb.st_mode) ||
        mkdir(dst, sb.st_mode & 07777) < 0) {
        fprintf(stderr, "tree_copy: %s: %s\n", src, strerror(errno ? errno : ENOTDIR));
        return 1;
    }
    t.src = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    t.dst = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    walking = &t;
    walk_root_len = strlen(src);
    if (t.src < 0 || t.dst < 0 || nftw(src, visit, 64, FTW_PHYS) != 0) {
        fprintf(stderr, "tree_copy: %s: %s\n", src, strerror(errno));
        return 1;
    }
    walking = NULL;
    cfg.verbose = -1;
    char err[256];
    cfg.backend = strncmp(backend, "epoll", 5) == 0 ? "epoll" : backend;
    if (strcmp(backend, "epoll-lt") == 0 &&
        rs_config_set_option(&cfg, "epoll-mode", "lt", err, sizeof(err)) < 0) {
        fprintf(stderr, "tree_copy: %s\n", err);
        return 2;
    }
    if (rs_loop_new(&cfg, &t.loop, err, sizeof(err)) < 0) {
        fprintf(stderr, "tree_copy: %s: %s\n", backend, err);
        return 1;
    }
    struct copier *copiers = calloc(n, sizeof(*copiers));
    t.running = n;
    for (unsigned i = 0; i < n; i++) {
        struct copier *c = &copiers[i];
        *c = (struct copier){.t = &t, .chunk = chunk, .buf = malloc(chunk)};
        c->req.data = c;
        if (!c->buf) {
            fprintf(stderr, "tree_copy: out of memory\n");
            return 1;
        }
        next_file(c); /* the last one with nothing to do stops the loop */
    }
    int rc = rs_loop_run(t.loop);
    rs_loop_destroy(t.loop);
    for (unsigned i = 0; i < n; i++)
        free(copiers[i].buf);
    free(copiers);
    for (size_t i = 0; i < t.nfiles; i++)
        free(t.files[i].path);
    free(t.files);
    close(t.src);
    close(t.dst);
    return rc < 0 || t.failed ? 1 : 0;
}
