/* The open-file cache (protocols/fcache.c) on its own: lookups, the LRU bound,
 * entries in use outliving their eviction, revalidation by path, trim.
 * Real files in a scratch directory; the clock is a number the test sets. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fcache.h"

struct fx {
    char dir[64];
    int root;
    struct rs_fcache c;
};

static void put_file(struct fx *f, const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", f->dir, name);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* What the server does on a miss: open, statx, offer. */
static struct rs_fcache_entry *open_and_put(struct fx *f, const char *name, int64_t now)
{
    int fd = openat(f->root, name, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct statx stx;
    assert_int_equal(statx(fd, "", AT_EMPTY_PATH, RS_FCACHE_STATX_MASK, &stx), 0);
    struct rs_fcache_entry *e = rs_fcache_put(&f->c, name, fd, &stx, now);
    if (!e)
        close(fd);
    return e;
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

static int setup_cap(void **state, uint32_t cap)
{
    struct fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/rs-fcache-unit-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    for (int i = 0; i < 4; i++) {
        char n[8];
        snprintf(n, sizeof(n), "f%d", i);
        put_file(f, n, n);
    }
    f->root = open(f->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->root >= 0);
    assert_int_equal(rs_fcache_init(&f->c, cap), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_cap(state, 2);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rs_fcache_fini(&f->c);
    assert_int_equal(f->c.held, 0);
    close(f->root);
    char p[128];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s/f%d", f->dir, i);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void test_fcache_hit_after_put(void **state)
{
    struct fx *f = *state;
    assert_null(rs_fcache_get(&f->c, f->root, "f0", 0, 1000));
    struct rs_fcache_entry *e = open_and_put(f, "f0", 0);
    assert_non_null(e);
    rs_fcache_release(&f->c, e);
    struct rs_fcache_entry *h = rs_fcache_get(&f->c, f->root, "f0", 10, 1000);
    assert_ptr_equal(h, e);
    assert_int_equal(h->stx.stx_size, 2);
    rs_fcache_release(&f->c, h);
    assert_int_equal(f->c.stats.hits, 1);
    assert_int_equal(f->c.stats.checks, 0); /* within the interval: no statx */
}

/* Capacity 2: a third file evicts the least recently used idle entry,
 * and its descriptor is closed. */
static void test_fcache_lru_bound(void **state)
{
    struct fx *f = *state;
    struct rs_fcache_entry *a = open_and_put(f, "f0", 0), *b = open_and_put(f, "f1", 0);
    int fa = a->fd, fb = b->fd;
    rs_fcache_release(&f->c, a);
    rs_fcache_release(&f->c, b);
    rs_fcache_release(&f->c, rs_fcache_get(&f->c, f->root, "f0", 1, 1000)); /* f0 newer */
    struct rs_fcache_entry *c = open_and_put(f, "f2", 2);
    assert_non_null(c);
    rs_fcache_release(&f->c, c);
    assert_int_equal(f->c.held, 2);
    assert_int_equal(f->c.stats.evicted, 1);
    assert_false(fd_open(fb)); /* f1 went */
    assert_true(fd_open(fa));
    assert_null(rs_fcache_get(&f->c, f->root, "f1", 3, 1000));
}

/* Entries in use are never closed: full of them, a put is refused (the
 * caller keeps its descriptor) and the cache holds no more than cap. */
static void test_fcache_in_use_never_closed(void **state)
{
    struct fx *f = *state;
    struct rs_fcache_entry *a = open_and_put(f, "f0", 0), *b = open_and_put(f, "f1", 0);
    assert_null(open_and_put(f, "f2", 0));
    assert_int_equal(f->c.held, 2);
    assert_true(fd_open(a->fd) && fd_open(b->fd));
    rs_fcache_release(&f->c, a);
    rs_fcache_release(&f->c, b);
    struct rs_fcache_entry *c = open_and_put(f, "f2", 0); /* f0, idle, makes room */
    assert_non_null(c);
    rs_fcache_release(&f->c, c);
    rs_fcache_release(&f->c, rs_fcache_get(&f->c, f->root, "f2", 0, 1000));
    assert_int_equal(f->c.held, 2);
}

/* Dropped while in use (the file changed): out of the table at once,
 * closed by the last release, counted until then. */
static void test_fcache_dropped_in_use(void **state)
{
    struct fx *f = *state;
    struct rs_fcache_entry *a = open_and_put(f, "f0", 0);
    int fd = a->fd;
    put_file(f, "f0", "changed"); /* same inode, new size and mtime */
    assert_null(rs_fcache_get(&f->c, f->root, "f0", 5000, 1000));
    assert_int_equal(f->c.stats.changed, 1);
    assert_true(fd_open(fd));
    assert_int_equal(f->c.held, 1);
    char buf[4];
    assert_int_equal(pread(fd, buf, 2, 0), 2); /* the reader still reads */
    rs_fcache_release(&f->c, a);
    assert_false(fd_open(fd));
    assert_int_equal(f->c.held, 0);
}

/* Revalidation: unchanged keeps the entry (one statx), a rename over it
 * or a removal drops it. */
static void test_fcache_revalidation(void **state)
{
    struct fx *f = *state;
    rs_fcache_release(&f->c, open_and_put(f, "f0", 0));
    rs_fcache_release(&f->c, open_and_put(f, "f1", 0));
    struct rs_fcache_entry *e = rs_fcache_get(&f->c, f->root, "f0", 1000, 1000);
    assert_non_null(e);
    rs_fcache_release(&f->c, e);
    assert_int_equal(f->c.stats.checks, 1);
    char from[128], to[128];
    put_file(f, "f3", "f0"); /* same size and text, another inode */
    snprintf(from, sizeof(from), "%s/f3", f->dir);
    snprintf(to, sizeof(to), "%s/f0", f->dir);
    assert_int_equal(rename(from, to), 0);
    assert_null(rs_fcache_get(&f->c, f->root, "f0", 2000, 1000));
    snprintf(to, sizeof(to), "%s/f1", f->dir);
    assert_int_equal(unlink(to), 0);
    assert_null(rs_fcache_get(&f->c, f->root, "f1", 2000, 1000));
    assert_int_equal(f->c.stats.changed, 2);
    assert_int_equal(f->c.held, 0);
}

static void test_fcache_trim(void **state)
{
    struct fx *f = *state;
    struct rs_fcache_entry *a = open_and_put(f, "f0", 0);
    rs_fcache_release(&f->c, open_and_put(f, "f1", 0));
    assert_int_equal(rs_fcache_trim(&f->c), 1); /* f1; f0 is in use */
    assert_int_equal(f->c.held, 1);
    rs_fcache_release(&f->c, a);
}

/* The file's head lines that an entry carries (http_head.h), as the server
 * takes them: made for the size and mtime being served. */
static const struct rs_http_file_head *entry_head(struct rs_fcache_entry *e)
{
    return rs_http_file_head_for(&e->head, e->path, e->stx.stx_size,
                                 (int64_t)e->stx.stx_mtime.tv_sec);
}

static void set_mtime(struct fx *f, const char *name, time_t t)
{
    struct timespec ts[2] = {{t, 0}, {t, 0}};
    assert_int_equal(utimensat(f->root, name, ts, 0), 0);
}

static bool head_has(const struct rs_http_file_head *h, const char *line)
{
    size_t n = strlen(line);
    for (size_t i = 0; i + n <= h->len; i++)
        if (memcmp(h->text + i, line, n) == 0)
            return true;
    return false;
}

/* A file replaced by a rename over it: once the entry is re-checked, the
 * new entry states the new file's length and Last-Modified, never the old
 * ones. */
static void test_fcache_head_of_replaced_file(void **state)
{
    struct fx *f = *state;
    set_mtime(f, "f0", 784111777);
    struct rs_fcache_entry *e = open_and_put(f, "f0", 0);
    assert_false(e->head.made); /* made on first use */
    const struct rs_http_file_head *h = entry_head(e);
    assert_true(head_has(h, "Content-Length: 2\r\n"));
    assert_true(head_has(h, "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
    rs_fcache_release(&f->c, e);

    put_file(f, "f3", "replaced");
    set_mtime(f, "f3", 784111777 + 86400);
    char from[128], to[128];
    snprintf(from, sizeof(from), "%s/f3", f->dir);
    snprintf(to, sizeof(to), "%s/f0", f->dir);
    assert_int_equal(rename(from, to), 0);
    /* Within the interval the old entry, and its head, are still served. */
    e = rs_fcache_get(&f->c, f->root, "f0", 10, 1000);
    assert_non_null(e);
    assert_true(head_has(entry_head(e), "Content-Length: 2\r\n"));
    rs_fcache_release(&f->c, e);
    assert_null(rs_fcache_get(&f->c, f->root, "f0", 5000, 1000));
    e = open_and_put(f, "f0", 5000);
    h = entry_head(e);
    assert_true(head_has(h, "Content-Length: 8\r\n"));
    assert_true(head_has(h, "Last-Modified: Mon, 07 Nov 1994 08:49:37 GMT\r\n"));
    assert_false(head_has(h, "Content-Length: 2\r\n"));
    rs_fcache_release(&f->c, e);
}

/* A file changed in place and refreshed through its descriptor
 * (rs_fcache_refresh, the large-file path): the same entry, a head remade
 * for the new length and mtime. */
static void test_fcache_head_of_refreshed_file(void **state)
{
    struct fx *f = *state;
    set_mtime(f, "f1", 784111777);
    struct rs_fcache_entry *e = open_and_put(f, "f1", 0);
    assert_true(head_has(entry_head(e), "Content-Length: 2\r\n"));
    put_file(f, "f1", "longer text"); /* O_TRUNC: the same inode */
    set_mtime(f, "f1", 784111777 + 1);
    assert_int_equal(rs_fcache_refresh(e), 0);
    const struct rs_http_file_head *h = entry_head(e);
    assert_true(head_has(h, "Content-Length: 11\r\n"));
    assert_true(head_has(h, "Last-Modified: Sun, 06 Nov 1994 08:49:38 GMT\r\n"));
    rs_fcache_release(&f->c, e);
}

/* A change the check by path must see — permissions taken away (chmod:
 * mode and ctime) — seen first through the descriptor by a refresh (a
 * large file served within the interval): the next check still drops the
 * entry, so the file is opened afresh with the open's permission checks.
 * (A refresh that moved what the check compares with hid the chmod from
 * every later check: a file made unreadable stayed served from the cache
 * for as long as requests kept coming.) */
static void test_fcache_refresh_hides_no_change(void **state)
{
    struct fx *f = *state;
    rs_fcache_release(&f->c, open_and_put(f, "f0", 0));
    assert_int_equal(fchmodat(f->root, "f0", 0, 0), 0);
    struct rs_fcache_entry *e = rs_fcache_get(&f->c, f->root, "f0", 10, 1000);
    assert_non_null(e); /* within the interval: trusted */
    assert_int_equal(rs_fcache_refresh(e), 0);
    assert_int_equal(e->stx.stx_mode & 07777, 0); /* what is served is of now */
    rs_fcache_release(&f->c, e);
    assert_null(rs_fcache_get(&f->c, f->root, "f0", 2000, 1000));
    assert_int_equal(f->c.stats.changed, 1);
    assert_int_equal(f->c.held, 0);
}

static int setup_off(void **state)
{
    return setup_cap(state, 0);
}

static void test_fcache_off(void **state)
{
    struct fx *f = *state;
    assert_null(open_and_put(f, "f0", 0));
    assert_null(rs_fcache_get(&f->c, f->root, "f0", 0, 1000));
    assert_int_equal(f->c.held, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fcache_hit_after_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcache_lru_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcache_in_use_never_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcache_dropped_in_use, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcache_revalidation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcache_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fcache_head_of_replaced_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fcache_head_of_refreshed_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fcache_refresh_hides_no_change, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fcache_off, setup_off, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
