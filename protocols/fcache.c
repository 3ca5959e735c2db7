/* The open-file cache; see fcache.h. */
#include "fcache.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* FNV-1a: paths are short, and a chain walk compares the strings anyway. */
static uint32_t path_hash(const char *p)
{
    uint32_t h = 2166136261u;
    for (; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

int rs_fcache_init(struct rs_fcache *c, uint32_t cap)
{
    memset(c, 0, sizeof(*c));
    c->cap = cap;
    if (cap == 0)
        return 0;
    /* A power of two at least twice the capacity: short chains. */
    c->nbuckets = 16;
    while (c->nbuckets < 2 * cap)
        c->nbuckets *= 2;
    c->table = calloc(c->nbuckets, sizeof(*c->table));
    return c->table ? 0 : -ENOMEM;
}

static void lru_unlink(struct rs_fcache *c, struct rs_fcache_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(struct rs_fcache *c, struct rs_fcache_entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

static void destroy(struct rs_fcache *c, struct rs_fcache_entry *e)
{
    close(e->fd); /* a read-only file: close(2) does no IO */
    c->held--;
    free(e);
}

/* Out of the table; closed now, or by the last release. */
static void drop(struct rs_fcache *c, struct rs_fcache_entry *e)
{
    struct rs_fcache_entry **pp = &c->table[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    e->hnext = NULL;
    lru_unlink(c, e);
    e->dead = true;
    if (e->refs == 0)
        destroy(c, e);
}

void rs_fcache_fini(struct rs_fcache *c)
{
    /* An entry still in use belongs to a session that never finished (its
     * loop gave up waiting for its file ops): it keeps that entry, and the
     * descriptor, rather than a pointer to freed memory. */
    while (c->oldest)
        drop(c, c->oldest);
    free(c->table);
    c->table = NULL;
}

static bool same_ts(struct statx_timestamp a, struct statx_timestamp b)
{
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* Does the path still lead to the file as it was? */
static bool unchanged(const struct statx *was, const struct statx *now)
{
    return was->stx_dev_major == now->stx_dev_major &&
           was->stx_dev_minor == now->stx_dev_minor && was->stx_ino == now->stx_ino &&
           was->stx_size == now->stx_size && was->stx_mode == now->stx_mode &&
           same_ts(was->stx_mtime, now->stx_mtime) &&
           same_ts(was->stx_ctime, now->stx_ctime);
}

struct rs_fcache_entry *rs_fcache_get(struct rs_fcache *c, int root_fd, const char *path,
                                      int64_t now_ms, uint32_t valid_ms)
{
    if (c->cap == 0) {
        c->stats.misses++;
        return NULL;
    }
    uint32_t h = path_hash(path);
    struct rs_fcache_entry *e = c->table[h & (c->nbuckets - 1)];
    while (e && (e->hash != h || strcmp(e->path, path) != 0))
        e = e->hnext;
    if (!e) {
        c->stats.misses++;
        return NULL;
    }
    if (now_ms - e->checked_ms >= (int64_t)valid_ms) {
        /* A synchronous statx by path, once per entry and interval (nginx
         * does the same): its dentries and inode are in memory while the
         * file is being served. */
        struct statx now;
        c->stats.checks++;
        if (statx(root_fd, path[0] ? path : ".", AT_STATX_SYNC_AS_STAT,
                  RS_FCACHE_STATX_MASK, &now) != 0 ||
            !unchanged(&e->checked, &now)) {
            c->stats.changed++;
            c->stats.misses++;
            drop(c, e);
            return NULL;
        }
        e->checked_ms = now_ms;
    }
    lru_unlink(c, e);
    lru_push(c, e);
    e->refs++;
    c->stats.hits++;
    return e;
}

/* Make room for one more descriptor: drop the least recently used entry
 * nobody is reading. false: every descriptor held is in use. */
static bool make_room(struct rs_fcache *c)
{
    while (c->held >= c->cap) {
        struct rs_fcache_entry *e = c->oldest;
        while (e && e->refs > 0)
            e = e->newer;
        if (!e)
            return false;
        c->stats.evicted++;
        drop(c, e);
    }
    return true;
}

struct rs_fcache_entry *rs_fcache_put(struct rs_fcache *c, const char *path, int fd,
                                      const struct statx *stx, int64_t now_ms)
{
    if (c->cap == 0 || !S_ISREG(stx->stx_mode) ||
        (stx->stx_mask & RS_FCACHE_STATX_MASK) != RS_FCACHE_STATX_MASK)
        return NULL;
    uint32_t h = path_hash(path);
    struct rs_fcache_entry *old = c->table[h & (c->nbuckets - 1)];
    while (old && (old->hash != h || strcmp(old->path, path) != 0))
        old = old->hnext;
    if (old)
        drop(c, old); /* two misses raced on one path: the newer open wins */
    if (!make_room(c))
        return NULL;
    size_t n = strlen(path) + 1;
    struct rs_fcache_entry *e = malloc(sizeof(*e) + n);
    if (!e)
        return NULL;
    memset(e, 0, sizeof(*e));
    memcpy(e->path, path, n);
    e->fd = fd;
    e->stx = *stx;
    e->checked = *stx;
    e->hash = h;
    e->checked_ms = now_ms;
    e->refs = 1;
    struct rs_fcache_entry **b = &c->table[h & (c->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(c, e);
    c->held++;
    return e;
}

int rs_fcache_refresh(struct rs_fcache_entry *e)
{
    struct statx now;
    if (statx(e->fd, "", AT_EMPTY_PATH, RS_FCACHE_STATX_MASK, &now) != 0)
        return -errno;
    e->stx = now;
    return 0;
}

void rs_fcache_release(struct rs_fcache *c, struct rs_fcache_entry *e)
{
    assert(e->refs > 0);
    if (--e->refs == 0 && e->dead)
        destroy(c, e);
}

uint32_t rs_fcache_trim(struct rs_fcache *c)
{
    uint32_t n = 0;
    struct rs_fcache_entry *e = c->oldest;
    while (e) {
        struct rs_fcache_entry *next = e->newer;
        if (e->refs == 0) {
            drop(c, e);
            n++;
        }
        e = next;
    }
    return n;
}
