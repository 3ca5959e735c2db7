/* upload_sink: every connection's bytes appended to a file of its own.
 *
 *   upload_sink --dir=DIR [--listen=HOST:PORT] [--backend=uring|epoll|epoll-lt]
 *               [--idle=SECONDS] [--threads=N]
 *
 * The protocol: a client connects, sends its upload and shuts down its
 * sending side. Once every byte is written and flushed (fdatasync) the sink
 * answers "OK <bytes>\n" and closes. Anything else — a reset, or an EOF
 * without that line — means the upload was NOT stored: a server that is
 * stopped (SIGINT/SIGTERM) mid-upload closes without the line, so a client
 * can always tell a cut upload from a stored one.
 *
 * What it shows: a protocol (on_open/on_data/on_eof/on_close) with state
 * per connection behind rs_stream_data, file requests (fs.h) with their
 * callbacks, a per-loop timer, backpressure from a slow disk to the
 * socket (stop reading past MAX_QUEUED, resume when written), idle
 * connections closed by the core (--idle), and a connection's state freed
 * only once its stream is closed and no request is in flight.
 *
 * Build against an installed libringserve:
 *   cc -std=c11 upload_sink.c $(pkg-config --cflags --libs ringserve) -o upload_sink
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringserve/config.h>
#include <ringserve/fs.h>
#include <ringserve/log.h>
#include <ringserve/loop.h>
#include <ringserve/protocol.h>
#include <ringserve/server.h>
#include <ringserve/stream.h>
#include <ringserve/timer.h>

#define MAX_QUEUED (1u << 20) /* bytes received but not yet written, per upload */

/* The program's options: set once by main, read by every loop. */
static struct {
    const char *dir;
} opt;

/* Per loop (rs_loop_data): the directory, the rate timer, counters. */
struct sink {
    int dirfd;
    struct rs_timer rate;
    uint64_t stored, stored_before; /* bytes written, at the last tick */
    unsigned next_id, open;
};

struct chunk {
    struct chunk *next;
    uint32_t len, done;
    uint8_t bytes[];
};

/* Per connection. Lives until its stream closed AND no request is in
 * flight: a request's callback must find it. */
struct upload {
    struct sink *sink;
    struct rs_loop *loop;
    struct rs_stream *s;  /* NULL once closed */
    struct rs_fs_req req; /* one file request at a time, reused */
    int fd;
    char name[32];
    struct chunk *head, *tail;
    uint64_t queued, off; /* bytes waiting; bytes written */
    int busy, eof, synced, failed, stopped_reading;
};

static void pump(struct upload *u);

static void on_tick(struct rs_loop *loop, struct rs_timer *t)
{
    struct sink *k = t->data;
    if (k->stored != k->stored_before)
        rs_log_info("loop %d: %u uploads open, %llu B/s stored", rs_loop_index(loop),
                    k->open, (unsigned long long)(k->stored - k->stored_before));
    k->stored_before = k->stored;
    rs_timer_start(loop, t, 1000, on_tick, k);
}

static int sink_loop_init(struct rs_loop *loop, char *err, size_t errlen)
{
    struct sink *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->dirfd = open(opt.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (k->dirfd < 0) {
        int rc = -errno;
        snprintf(err, errlen, "%s: %s", opt.dir, strerror(errno));
        free(k);
        return rc == -ENOENT || rc == -ENOTDIR ? -EINVAL : rc;
    }
    /* Background: the rate line must not keep a stopping loop alive. */
    rs_timer_unref(&k->rate);
    rs_timer_start(loop, &k->rate, 1000, on_tick, k);
    rs_loop_set_data(loop, k);
    return 0;
}

static void sink_loop_fini(struct rs_loop *loop)
{
    struct sink *k = rs_loop_data(loop);
    rs_timer_stop(loop, &k->rate);
    close(k->dirfd);
    free(k);
}

static void drop_chunks(struct upload *u)
{
    while (u->head) {
        struct chunk *c = u->head;
        u->head = c->next;
        free(c);
    }
    u->tail = NULL;
    u->queued = 0;
}

/* Something went wrong: a reset tells the client it was not stored. */
static void fail(struct upload *u, int err)
{
    rs_log_error("%s: %s", u->name, strerror(-err));
    u->failed = 1;
    drop_chunks(u);
    if (u->s)
        rs_stream_abort_reason(u->s, err);
}

static void on_fs(struct rs_fs_req *req)
{
    struct upload *u = req->data;
    u->busy = 0;
    if (req->type == RS_FS_WRITE && req->result == 0) {
        fail(u, -EIO); /* no progress: do not ask again forever */
    } else if (req->result < 0 && req->type != RS_FS_CLOSE) {
        fail(u, req->result);
    } else if (req->type == RS_FS_OPEN) {
        u->fd = req->result;
    } else if (req->type == RS_FS_WRITE) {
        struct chunk *c = u->head;
        c->done += (uint32_t)req->result; /* a short write continues */
        u->off += (uint64_t)req->result;
        u->queued -= (uint64_t)req->result;
        u->sink->stored += (uint64_t)req->result;
        if (c->done == c->len) {
            u->head = c->next;
            if (!u->head)
                u->tail = NULL;
            free(c);
        }
        if (u->stopped_reading && u->queued <= MAX_QUEUED / 2 && u->s) {
            u->stopped_reading = 0;
            rs_stream_read_start(u->s);
        }
    } else if (req->type == RS_FS_FSYNC && u->s) {
        char line[40];
        int n = snprintf(line, sizeof(line), "OK %llu\n", (unsigned long long)u->off);
        u->synced = 1;
        rs_stream_write_copy(u->s, (const uint8_t *)line, (uint32_t)n);
        rs_stream_shutdown(u->s);
    } else if (req->type == RS_FS_CLOSE) {
        u->fd = -1;
    }
    pump(u);
}

/* Start the next file request, if one is due and none is in flight; free
 * the upload once its stream is closed and nothing is left to do. */
static void pump(struct upload *u)
{
    if (u->busy) /* one request at a time: writes stay in order */
        return;
    int rc = 0;
    if (!u->s && u->fd >= 0) {
        drop_chunks(u);
        rc = rs_fs_close(u->loop, &u->req, u->fd, on_fs);
    } else if (!u->s) {
        u->sink->open--;
        free(u);
        return;
    } else if (u->failed || u->fd < 0) {
        return; /* the stream's close is on its way */
    } else if (u->head) {
        struct chunk *c = u->head;
        rc = rs_fs_write(u->loop, &u->req, u->fd, c->bytes + c->done, c->len - c->done,
                         u->off, on_fs);
    } else if (u->eof && !u->synced) {
        rc = rs_fs_fdatasync(u->loop, &u->req, u->fd, on_fs);
    } else {
        return; /* waiting for bytes, the EOF, or the stream's close */
    }
    if (rc < 0)
        fail(u, rc);
    else
        u->busy = 1;
}

static void sink_open(struct rs_stream *s)
{
    struct rs_loop *loop = rs_stream_loop(s);
    struct sink *k = rs_loop_data(loop);
    struct upload *u = calloc(1, sizeof(*u));
    if (!u) {
        rs_stream_abort_reason(s, -ENOMEM);
        return;
    }
    u->sink = k;
    u->loop = loop;
    u->s = s;
    u->fd = -1;
    u->req.data = u;
    snprintf(u->name, sizeof(u->name), "upload-%d-%u", rs_loop_index(loop), k->next_id++);
    k->open++;
    rs_stream_set_data(s, u);
    int rc = rs_fs_open_beneath(loop, &u->req, k->dirfd, u->name,
                                O_WRONLY | O_CREAT | O_EXCL, 0644, on_fs);
    if (rc < 0)
        fail(u, rc);
    else
        u->busy = 1;
}

/* The bytes are copied out of the lent buffer, which goes back at once:
 * a buffer must not outlive its stream, and a write may. */
static void sink_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    struct upload *u = rs_stream_data(s);
    if (u->failed) {
        rs_stream_release(s, bid);
        return;
    }
    struct chunk *c = malloc(sizeof(*c) + len);
    if (c) {
        *c = (struct chunk){.len = len};
        memcpy(c->bytes, p, len);
    }
    rs_stream_release(s, bid);
    if (!c) {
        fail(u, -ENOMEM);
        return;
    }
    if (u->tail)
        u->tail->next = c;
    else
        u->head = c;
    u->tail = c;
    u->queued += len;
    if (u->queued > MAX_QUEUED && !u->stopped_reading) {
        u->stopped_reading = 1; /* the disk is slower than the client */
        rs_stream_read_stop(s);
    }
    pump(u);
}

static void sink_eof(struct rs_stream *s)
{
    struct upload *u = rs_stream_data(s);
    u->eof = 1;
    pump(u);
}

static void sink_close(struct rs_stream *s, int reason)
{
    struct upload *u = rs_stream_data(s);
    if (!u)
        return;
    if (!u->synced)
        rs_log_info("%s: not stored (%s), %llu bytes written", u->name,
                    reason ? strerror(-reason) : "closed before the end",
                    (unsigned long long)u->off);
    u->s = NULL;
    pump(u);
}

/* A graceful stop: an upload whose end has arrived is finished (written,
 * flushed, answered "OK"); any other is refused the default way
 * (rs_stream_stop): input arriving after the stop ends it with a reset,
 * its EOF with a FIN but no "OK" line: not stored, and the client can
 * tell. */
static void sink_stop(struct rs_stream *s)
{
    struct upload *u = rs_stream_data(s);
    if (!u || !u->eof)
        rs_stream_stop(s);
}

static const struct rs_protocol sink_proto = {
    .name = "upload-sink",
    .cbs = {.on_data = sink_data, .on_eof = sink_eof, .on_close = sink_close},
    .on_open = sink_open,
    .on_stop = sink_stop,
    .loop_init = sink_loop_init,
    .loop_fini = sink_loop_fini,
    .descriptors_per_conn = 2, /* the socket and its file */
};

static int usage(void)
{
    fprintf(stderr, "usage: upload_sink --dir=DIR [--listen=HOST:PORT] "
                    "[--backend=uring|epoll|epoll-lt] [--idle=SECONDS] [--threads=N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    static const struct option opts[] = {{"dir", required_argument, NULL, 'd'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"backend", required_argument, NULL, 'b'},
                                         {"idle", required_argument, NULL, 'i'},
                                         {"threads", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'd') {
            opt.dir = optarg;
        } else if (c == 'l') {
            char *colon = strrchr(optarg, ':');
            if (!colon || (size_t)(colon - optarg) >= sizeof(cfg.listen_host))
                return usage();
            snprintf(cfg.listen_host, sizeof(cfg.listen_host), "%.*s",
                     (int)(colon - optarg), optarg);
            cfg.listen_port = (uint16_t)atoi(colon + 1);
        } else if (c == 'b') {
            char err[200];
            cfg.backend = strcmp(optarg, "uring") == 0 ? "uring" : "epoll";
            if (strcmp(optarg, "epoll-lt") == 0 &&
                rs_config_set_option(&cfg, "epoll-mode", "lt", err, sizeof(err)) < 0)
                return usage();
        } else if (c == 'i') {
            cfg.idle_timeout_s = (uint32_t)atoi(optarg);
        } else if (c == 't') {
            cfg.threads = (uint32_t)atoi(optarg);
        } else {
            return usage();
        }
    }
    if (!opt.dir || optind < argc)
        return usage();
    cfg.proto = &sink_proto;
    /* SIGINT/SIGTERM are taken by this thread (the loop threads block every
     * signal); blocked first, so one that arrives during start-up waits. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    struct rs_server *srv;
    int rc = rs_server_start(&cfg, &srv);
    if (rc < 0)
        return rc == -EINVAL ? 2 : 1;
    while (rs_server_wait(srv, 100) == -ETIMEDOUT) {
        struct timespec now = {0, 0};
        if (sigtimedwait(&sigs, NULL, &now) > 0)
            rs_server_stop(srv); /* every loop finishes its requests first */
    }
    return rs_server_destroy(srv, NULL) < 0 ? 1 : 0;
}
