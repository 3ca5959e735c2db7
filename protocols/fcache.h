/* An open-file cache for the HTTP server: per loop, path -> descriptor +
 * statx, like nginx's open_file_cache.
 *
 * Serving a small file costs an open, a statx and a close around one read;
 * a cached file costs the read alone. An entry is trusted for `valid_ms`
 * after it was opened or last checked; the first lookup after that runs
 * statx(2) on the path (from the document root) and keeps the entry only
 * if it still names the same file unchanged: same device and inode, size,
 * mtime, ctime (a chmod or chown changes it) and mode. Anything else — the
 * file replaced (rename over it), removed, rewritten, its permissions
 * changed — drops the entry and the lookup misses: the caller opens the
 * path afresh, with all its checks (RESOLVE_BENEATH, permissions), and
 * offers the result back with rs_fcache_put.
 *
 * Revalidating by path cannot widen what is served: the entry is kept only
 * when the path leads to the very inode that was opened under the checks,
 * so a symbolic link swapped to point outside the root fails the
 * comparison.
 *
 * Descriptors: at most `cap` are held. An entry in use (a response reading
 * it) is never closed under the reader: evicted or dropped while in use, it
 * leaves the table at once and is closed by its last rs_fcache_release.
 * Entries in use are counted against `cap` until then, so the cache never
 * holds more than `cap` descriptors of its own; the server reserves them
 * out of RLIMIT_NOFILE before dividing the rest among connections.
 *
 * Single-threaded: one cache per loop, used on the loop's thread only. */
#ifndef RS_FCACHE_H
#define RS_FCACHE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "http_head.h"

struct rs_fcache_entry {
    int fd;           /* O_RDONLY, owned by the cache */
    struct statx stx; /* what is served: as of the last check or refresh */
    /* What a response states about the file, made by the server on first
     * use (not made in a new entry); an entry replaced is a new entry,
     * and a head made for another size or mtime than the one served is
     * remade (rs_http_file_head_for). */
    struct rs_http_file_head head;
    /* private */
    struct rs_fcache_entry *hnext;         /* hash chain */
    struct rs_fcache_entry *newer, *older; /* LRU, while in the table */
    /* The file as the open or the last check by path found it: what the
     * next check compares with. A refresh never moves it, so a change it
     * sees through the descriptor (a chmod, a rewrite) still drops the
     * entry at the next check. */
    struct statx checked;
    int64_t checked_ms;
    uint32_t refs, hash;
    bool dead; /* out of the table; closed when refs reaches 0 */
    char path[];
};

struct rs_fcache_stats {
    uint64_t hits;    /* served from the cache */
    uint64_t misses;  /* not cached (or dropped just now) */
    uint64_t checks;  /* revalidations by statx */
    uint64_t changed; /* revalidations that found the file changed or gone */
    uint64_t evicted; /* least recently used entries dropped for room */
};

struct rs_fcache {
    struct rs_fcache_entry **table; /* nbuckets chains */
    struct rs_fcache_entry *newest, *oldest;
    uint32_t nbuckets, cap;
    uint32_t held; /* descriptors held: entries in the table + dead in use */
    struct rs_fcache_stats stats;
};

/* The statx mask an entry needs: what a response uses and what a check
 * compares. */
#define RS_FCACHE_STATX_MASK                                                             \
    (STATX_TYPE | STATX_MODE | STATX_SIZE | STATX_MTIME | STATX_CTIME | STATX_INO)

/* cap 0: the cache is off (every lookup misses, nothing is kept).
 * 0 or -ENOMEM. */
int rs_fcache_init(struct rs_fcache *c, uint32_t cap);
/* Close every descriptor not in use (none should be any more). */
void rs_fcache_fini(struct rs_fcache *c);

/* The entry for `path` (relative to root_fd), checked if older than
 * valid_ms, with a reference taken; NULL on a miss. */
struct rs_fcache_entry *rs_fcache_get(struct rs_fcache *c, int root_fd, const char *path,
                                      int64_t now_ms, uint32_t valid_ms);
/* Offer a regular file just opened for `path` and its statx (with at least
 * RS_FCACHE_STATX_MASK). On success the cache owns fd and the returned
 * entry carries a reference for the caller; NULL (cache off, or full of
 * entries in use): the caller keeps fd. */
struct rs_fcache_entry *rs_fcache_put(struct rs_fcache *c, const char *path, int fd,
                                      const struct statx *stx, int64_t now_ms);
/* statx the entry's descriptor again (no path walk, no IO): for callers
 * that must see a change made in place, to the same inode, before the
 * entry's next check. It updates what is served (stx), not what the next
 * check compares with: a change seen here (a chmod, a rewrite) still drops
 * the entry at that check, and the file is opened afresh, with the open's
 * permission checks. 0 or -errno. */
int rs_fcache_refresh(struct rs_fcache_entry *e);
/* The caller is done with the entry's descriptor. */
void rs_fcache_release(struct rs_fcache *c, struct rs_fcache_entry *e);
/* Close every entry not in use (out of descriptors: give them back).
 * Returns how many were closed. */
uint32_t rs_fcache_trim(struct rs_fcache *c);

/* The HTTP protocol's cache statistics for a loop serving it (http.c), or
 * NULL: for tests and reports. */
struct rs_loop;
const struct rs_fcache_stats *rs_http_fcache_stats(const struct rs_loop *loop);

#endif
