#include "fake_backend.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct fake_state *fake(struct rs_loop *loop)
{
    return loop->backend;
}

static int find_inflight(struct fake_state *f, struct rs_op *op)
{
    for (int i = 0; i < f->ninflight; i++)
        if (f->inflight[i] == op)
            return i;
    return -1;
}

static int fk_init(struct rs_loop *loop, const struct rs_config *cfg, char *err, size_t n)
{
    (void)cfg;
    (void)err;
    (void)n;
    loop->backend = calloc(1, sizeof(struct fake_state));
    /* scripted: any op kind is fine */
    loop->caps = RS_CAP_CONNECT | RS_CAP_SOCKET | RS_CAP_SOCKET_DIRECT | RS_CAP_FILE_OPS;
    return loop->backend ? 0 : -ENOMEM;
}

static void fk_fini(struct rs_loop *loop)
{
    struct fake_state *f = fake(loop);
    /* Teardown with ops in flight would be a use-after-free in a real
     * backend (unless it failed: then the core abandoned them). */
    assert(f->run_error || (f->ninflight == 0 && f->nqueue == 0));
    free(f);
    loop->backend = NULL;
}

static int fk_submit(struct rs_loop *loop, struct rs_op *op)
{
    struct fake_state *f = fake(loop);
    if (f->fail_submit)
        return -EBUSY;
    assert(find_inflight(f, op) < 0); /* an op is never submitted twice */
    if (op->kind < 32 && f->refuse_submit[op->kind] > 0) {
        f->refuse_submit[op->kind]--;
        f->refused++;
        return -EBUSY;
    }
    assert(f->ninflight < FAKE_MAX_OPS);
    op->bk_gen++; /* as io_uring does: a new generation per submit */
    f->inflight_cancelled[f->ninflight] = false;
    f->inflight[f->ninflight++] = op;
    f->submits[op->kind]++;
    return 0;
}

static int fk_cancel(struct rs_loop *loop, struct rs_op *op)
{
    struct fake_state *f = fake(loop);
    int i = find_inflight(f, op);
    if (i < 0)
        return -ENOENT;
    if (f->refuse_cancel > 0) {
        f->refuse_cancel--;
        f->refused++;
        return -EBUSY;
    }
    f->inflight_cancelled[i] = true;
    f->cancelled[f->ncancelled++ % FAKE_MAX_OPS] = op;
    return 0;
}

int fake_run(struct rs_loop *loop)
{
    struct fake_state *f = fake(loop);
    int n = 0;
    while (f->nqueue > 0) {
        struct rs_op *op = f->queue[0].op;
        struct rs_completion c = f->queue[0].c;
        int gen = f->queue[0].gen;
        memmove(&f->queue[0], &f->queue[1],
                (size_t)(f->nqueue - 1) * sizeof(f->queue[0]));
        f->nqueue--;
        if (gen >= 0 && (uint8_t)gen != op->bk_gen) {
            f->stale_dropped++;
            continue;
        }
        int i = find_inflight(f, op);
        assert(i >= 0); /* completing an op that is not in flight */
        if (!(c.flags & RS_CF_MORE)) {
            f->ninflight--;
            f->inflight[i] = f->inflight[f->ninflight];
            f->inflight_cancelled[i] = f->inflight_cancelled[f->ninflight];
        }
        op->fn(loop, op, &c);
        n++;
    }
    return n;
}

/* Script the completion a cooperative kernel would give each op in flight
 * that has none queued yet. */
static void auto_complete(struct rs_loop *loop)
{
    struct fake_state *f = fake(loop);
    for (int i = 0; i < f->ninflight; i++) {
        struct rs_op *op = f->inflight[i];
        bool queued = false;
        for (int q = 0; q < f->nqueue; q++)
            queued |= f->queue[q].op == op;
        if (queued)
            continue;
        int32_t res = 0;
        if (f->inflight_cancelled[i] || op->kind == RS_OP_ACCEPT)
            res = -ECANCELED;
        else if (op->kind == RS_OP_SEND)
            res = (int32_t)op->len;
        else if (op->kind == RS_OP_SOCKET)
            res = FAKE_SOCKET_FD + f->sockets++; /* a number only: no IO here */
        fake_complete(loop, op, res, 0, 0);
    }
}

static int fk_run(struct rs_loop *loop, int timeout_ms)
{
    (void)timeout_ms;
    struct fake_state *f = fake(loop);
    if (f->run_error)
        return f->run_error;
    if (f->auto_complete)
        auto_complete(loop);
    return fake_run(loop);
}

static void fk_wake(struct rs_loop *loop)
{
    (void)loop;
}

static void fk_buf_release(struct rs_loop *loop, uint16_t bid)
{
    if (!rs_bufpool_unlend(&loop->pool, bid))
        return;
    fake(loop)->released[bid]++;
    rs_bufpool_put(&loop->pool, bid);
}

static void fk_describe(struct rs_loop *loop, char *out, size_t n)
{
    (void)loop;
    snprintf(out, n, "fake");
}

const struct rs_backend_ops fake_backend = {
    .name = "fake",
    .init = fk_init,
    .fini = fk_fini,
    .submit = fk_submit,
    .cancel = fk_cancel,
    .run = fk_run,
    .wake = fk_wake,
    .buf_release = fk_buf_release,
    .describe = fk_describe,
};

struct rs_op *fake_find(struct rs_loop *loop, uint8_t kind, int fd)
{
    struct fake_state *f = fake(loop);
    for (int i = 0; i < f->ninflight; i++)
        if (f->inflight[i]->kind == kind && f->inflight[i]->fd == fd)
            return f->inflight[i];
    return NULL;
}

bool fake_was_cancelled(struct rs_loop *loop, struct rs_op *op)
{
    struct fake_state *f = fake(loop);
    for (int i = 0; i < f->ncancelled && i < FAKE_MAX_OPS; i++)
        if (f->cancelled[i] == op)
            return true;
    return false;
}

void fake_complete(struct rs_loop *loop, struct rs_op *op, int32_t res, uint32_t flags,
                   uint16_t bid)
{
    struct fake_state *f = fake(loop);
    assert(f->nqueue < FAKE_MAX_OPS);
    f->queue[f->nqueue].op = op;
    f->queue[f->nqueue].c =
        (struct rs_completion){.res = res, .flags = flags, .bid = bid};
    f->queue[f->nqueue].gen = -1;
    f->nqueue++;
}

void fake_complete_gen(struct rs_loop *loop, struct rs_op *op, uint8_t gen, int32_t res)
{
    struct fake_state *f = fake(loop);
    fake_complete(loop, op, res, 0, 0);
    f->queue[f->nqueue - 1].gen = gen;
}

uint16_t fake_lend(struct rs_loop *loop, const void *data, uint32_t len)
{
    int bid = rs_bufpool_get(&loop->pool);
    assert(bid >= 0 && len <= loop->pool.size);
    memcpy(rs_bufpool_ptr(&loop->pool, (uint16_t)bid), data, len);
    rs_bufpool_lend(&loop->pool, (uint16_t)bid);
    return (uint16_t)bid;
}

void fake_send_gather(const struct rs_op *op, uint8_t *out)
{
    if (!(op->flags & RS_OPF_MSG)) {
        memcpy(out, op->buf, op->len);
        return;
    }
    const struct msghdr *m = op->buf;
    size_t off = 0;
    for (size_t i = 0; i < m->msg_iovlen; i++) {
        memcpy(out + off, m->msg_iov[i].iov_base, m->msg_iov[i].iov_len);
        off += m->msg_iov[i].iov_len;
    }
    assert(off == op->len);
}

static bool overlaps(const void *p, size_t n, const void *lo, const void *hi)
{
    const uint8_t *b = p;
    return b < (const uint8_t *)hi && b + n > (const uint8_t *)lo;
}

bool fake_send_reads(const struct rs_op *op, const void *lo, const void *hi)
{
    if (!(op->flags & RS_OPF_MSG))
        return overlaps(op->buf, op->len, lo, hi);
    const struct msghdr *m = op->buf;
    for (size_t i = 0; i < m->msg_iovlen; i++)
        if (overlaps(m->msg_iov[i].iov_base, m->msg_iov[i].iov_len, lo, hi))
            return true;
    return false;
}

int fake_loop_init(struct rs_loop *loop, struct rs_config *cfg)
{
    rs_config_defaults(cfg);
    cfg->buffers = 16;
    cfg->buffer_size = 64;
    char err[128];
    return rs_loop_init(loop, &fake_backend, cfg, err, sizeof(err));
}
