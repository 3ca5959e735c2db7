/* The HTTP server's file: the path a request names, found in the
 * open-file cache (fcache.h) or opened beneath the root (openat2
 * RESOLVE_BENEATH), examined with statx(2), a directory replaced by its
 * index.html; then answered (http_respond.c), or a 404 or 503. http.c's
 * essay has the session around it. */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ringserve.h>

#include "http_int.h"

static void on_open(struct rs_fs_req *req);

static void open_path(struct http_sess *h)
{
    h->state = ST_OPEN;
    h->fop.data = h;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. Regular files
     * ignore it. Beneath the root: no "..", absolute path or symbolic link
     * leads out (rs_fs_open_beneath). */
    int rc =
        rs_fs_open_beneath(h->loop, &h->fop, h->hl->root_fd, h->path[0] ? h->path : ".",
                           O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, on_open);
    file_op_started(h, "open", rc);
}

static void examined(struct http_sess *h);
static void not_found(struct http_sess *h);

/* h->path from the open-file cache (no open, no statx, no close:
 * fcache.h), else opened. */
void http_open_file(struct http_sess *h)
{
    struct rs_fcache_entry *e =
        rs_fcache_get(&h->hl->fcache, h->hl->root_fd, h->path, rs_loop_now(h->loop),
                      rs_loop_config(h->loop)->open_file_cache_valid_ms);
    if (e) {
        h->state = ST_OPEN;
        h->fce = e;
        h->fd = e->fd;
        /* More than one buffer: the statx of the descriptor costs nothing
         * next to the body, and a file changed in place (truncated,
         * appended to) is then served at its size of now. */
        if (e->stx.stx_size > rs_loop_config(h->loop)->buffer_size &&
            rs_fcache_refresh(e) < 0) {
            not_found(h);
            return;
        }
        h->stx = e->stx;
        examined(h);
        return;
    }
    open_path(h);
}

static void not_found(struct http_sess *h)
{
    close_file(h);
    http_respond_short(h, 404, NULL, 0);
    http_finish_response(h);
}

static void on_open(struct rs_fs_req *req)
{
    struct http_sess *h = req->data;
    /* req lives inside the session, which op_done() may free. */
    int res = req->result;
    if (!op_done(h) || h->state != ST_OPEN) {
        if (res >= 0)
            close(res); /* orphaned: nobody will read it */
        return;
    }
    if (res < 0) {
        /* ENOENT, ENOTDIR, EXDEV (escape), ELOOP, EACCES...: 404 for all,
         * so a prober learns nothing. EMFILE & co. are ours: 503. */
        if (res == -EMFILE || res == -ENFILE || res == -ENOMEM) {
            rs_fcache_trim(&h->hl->fcache); /* give back what nobody reads */
            http_respond_short(h, 503, NULL, 0);
            http_finish_response(h);
        } else {
            not_found(h);
        }
        return;
    }
    h->fd = res;
    /* statx of the descriptor just opened, here and now: its inode is in
     * memory, so this cannot wait for a disk (on a local file system),
     * while IORING_OP_STATX always goes to an io-wq thread (measured: one
     * hand-off per request and ~1.5x the CPU per 1 KiB request) and the
     * epoll pool would add a second round trip. */
    if (statx(h->fd, "", AT_EMPTY_PATH, RS_FCACHE_STATX_MASK, &h->stx) < 0) {
        not_found(h);
        return;
    }
    if (S_ISDIR(h->stx.stx_mode) && !h->is_index) {
        /* A directory: its index.html, or 404 (no listings). */
        size_t n = strlen(h->path);
        close_file(h);
        if (n + TAIL_LEN + 1 > sizeof(h->path)) {
            not_found(h);
            return;
        }
        memcpy(h->path + n, n ? "/index.html" : "index.html",
               n ? TAIL_LEN + 1 : TAIL_LEN);
        h->is_index = true;
        http_open_file(h);
        return;
    }
    if (S_ISREG(h->stx.stx_mode)) {
        struct rs_fcache_entry *e =
            rs_fcache_put(&h->hl->fcache, h->path, h->fd, &h->stx, rs_loop_now(h->loop));
        if (e)
            h->fce = e;
    }
    examined(h);
}

/* The file is open and its statx at hand (just now, or from the cache). */
static void examined(struct http_sess *h)
{
    /* Not a regular file, or "file.txt/": 404. */
    if (!S_ISREG(h->stx.stx_mode) || (h->req.dir_slash && !h->is_index)) {
        not_found(h);
        return;
    }
    http_respond(h);
}
