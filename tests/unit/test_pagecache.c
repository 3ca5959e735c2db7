/* rs_range_cached (core/pagecache.c): whether a file's byte range is all
 * in the page cache, which both backends ask before the loop sends a
 * file itself (epoll's worker pool and io_uring's io-wq get the rest).
 *
 * The kernel's cachestat(2) can count short a range that starts inside a
 * large folio: when its walk pauses to reschedule right after the first
 * folio, it resumes past that folio's end by as many pages as the range
 * started into it (pagecache.c says how). A backend then sends a cached
 * range through a worker: e2e-http-epoll-lt's cached_body_no_worker
 * failed so under a parallel test run (sendfile_worker_reads=1 for an
 * mlock'ed file).
 *
 * The files here are mlock'ed, so that every page asked about stays
 * cached whatever the machine does, and written in one write (ext4,
 * xfs, ... then cache them in large folios where the kernel can). Each
 * range starts a few pages before a 2 MiB boundary, inside a folio. A
 * thread spinning on the same CPU makes the kernel's walk often asked to
 * reschedule, which is what a loaded machine does now and then: on Linux
 * 6.18 with ext4, cachestat alone was short about once in 3700 answers
 * here (the test prints how often it was), and rs_range_cached must never
 * be. A page that is not cached must still make it say so, also when the
 * kernel's short answer sends it to count again from an aligned start
 * with a page missing before the range. Needs cachestat(2) (Linux 6.5)
 * and mlock: skipped without. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "pagecache.h"

#ifndef SYS_cachestat
#define SYS_cachestat 451
#endif

#define KIB 1024u
#define MIB (1024u * KIB)
/* Odd, as a served file is: the last page is partial. */
#define FILE_LEN (8u * MIB + 123u)
/* Asked this many times per range: with the kernel short once in a few
 * thousand answers, each range meets it several times. */
#define ROUNDS 20000

struct file {
    char path[64];
    int fd;
    void *map;
};

static long page;

/* The kernel's own count of the pages of [off, off + len). */
static uint64_t kernel_cached(int fd, uint64_t off, uint64_t len)
{
    struct {
        uint64_t off, len;
    } range = {off, len};
    uint64_t cs[5];
    assert_int_equal(syscall(SYS_cachestat, fd, &range, cs, 0), 0);
    return cs[0];
}

static uint64_t pages_of(uint64_t off, uint64_t len)
{
    return (off + len - 1) / (uint64_t)page - off / (uint64_t)page + 1;
}

/* A file of FILE_LEN bytes written in pieces of `piece` bytes (one write
 * for all of it: the largest folios the file system makes), read into
 * the page cache by mapping it; the caller mlocks what must stay. */
static void file_make(struct file *f, size_t piece)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(f->path, sizeof(f->path), "%s/rs-pagecache-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    f->fd = mkstemp(f->path);
    assert_true(f->fd >= 0);
    unsigned char *data = malloc(FILE_LEN);
    assert_non_null(data);
    for (size_t i = 0; i < FILE_LEN; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 12));
    for (size_t done = 0; done < FILE_LEN;) {
        size_t n = FILE_LEN - done < piece ? FILE_LEN - done : piece;
        assert_int_equal(write(f->fd, data + done, n), (ssize_t)n);
        done += n;
    }
    free(data);
    f->map = mmap(NULL, FILE_LEN, PROT_READ, MAP_SHARED, f->fd, 0);
    assert_true(f->map != MAP_FAILED);
}

static void file_drop(struct file *f)
{
    munmap(f->map, FILE_LEN); /* unlocks too */
    close(f->fd);
    unlink(f->path);
}

static void lock_or_skip(struct file *f, size_t off, size_t len)
{
    if (mlock((char *)f->map + off, len) < 0) {
        int err = errno;
        file_drop(f);
        print_message("mlock: %s: cannot keep the file cached, not checked\n",
                      strerror(err));
        skip();
    }
}

/* A thread busy on the CPU the test runs on, so that the kernel, walking
 * the page cache for the test, is often asked to let it run. */
struct spinner {
    pthread_t thread;
    atomic_bool stop;
    bool pinned;
    cpu_set_t was;
};

static void *spin(void *arg)
{
    struct spinner *s = arg;
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed))
        ;
    return NULL;
}

static void spinner_start(struct spinner *s)
{
    /* Both on one CPU where the test may choose (else the spinner takes
     * its share of whichever CPU the scheduler gives it). */
    s->pinned = false;
    int cpu = sched_getcpu();
    if (cpu >= 0 && sched_getaffinity(0, sizeof(s->was), &s->was) == 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        s->pinned = sched_setaffinity(0, sizeof(one), &one) == 0;
    }
    atomic_init(&s->stop, false);
    assert_int_equal(pthread_create(&s->thread, NULL, spin, s), 0);
}

static void spinner_stop(struct spinner *s)
{
    atomic_store(&s->stop, true);
    assert_int_equal(pthread_join(s->thread, NULL), 0);
    if (s->pinned)
        assert_int_equal(sched_setaffinity(0, sizeof(s->was), &s->was), 0);
}

struct range {
    uint64_t off, len;
    int want; /* rs_range_cached's answer */
};

/* Every range asked `rounds` times, with the spinner: rs_range_cached must
 * always answer what the range holds; how often the kernel's own count
 * (asked right after) was short of a cached range is printed. */
static void ask(const struct file *f, const struct range *r, size_t n, int rounds)
{
    struct spinner s;
    spinner_start(&s);
    unsigned long kernel_short = 0, wrong = 0;
    int first_wrong = -1;
    for (int round = 0; round < rounds; round++) {
        for (size_t i = 0; i < n; i++) {
            int got = rs_range_cached(f->fd, r[i].off, r[i].len);
            if (got != r[i].want && wrong++ == 0)
                first_wrong = (int)i;
            if (r[i].want == 1 &&
                kernel_cached(f->fd, r[i].off, r[i].len) < pages_of(r[i].off, r[i].len))
                kernel_short++;
        }
    }
    spinner_stop(&s);
    print_message("cachestat alone was short of a cached range %lu times in %d\n",
                  kernel_short, rounds * (int)n);
    if (wrong)
        fail_msg("rs_range_cached answered wrong %lu times (first: range %d, off=%llu "
                 "len=%llu, want %d)",
                 wrong, first_wrong, (unsigned long long)r[first_wrong].off,
                 (unsigned long long)r[first_wrong].len, r[first_wrong].want);
}

static void skip_without_cachestat(void)
{
    struct {
        uint64_t off, len;
    } range = {0, 1};
    uint64_t cs[5];
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    long rc = syscall(SYS_cachestat, fd, &range, cs, 0);
    int err = errno;
    close(fd);
    if (rc < 0) {
        print_message("cachestat: %s: not checked\n", strerror(err));
        skip();
    }
}

/* A file cached whole, in the largest folios the file system makes:
 * ranges starting 8 pages (and a few bytes) before each 2 MiB boundary,
 * 1 MiB long, and the last one running to the file's end. */
static void test_pagecache_cached_ranges_inside_folios(void **state)
{
    (void)state;
    skip_without_cachestat();
    struct file f;
    file_make(&f, FILE_LEN);
    lock_or_skip(&f, 0, FILE_LEN);
    struct range r[4];
    for (int i = 0; i < 3; i++)
        r[i] =
            (struct range){(uint64_t)(i + 1) * 2 * MIB - 8 * (uint64_t)page + 16, MIB, 1};
    uint64_t tail = 8 * MIB - 8 * (uint64_t)page + 16;
    r[3] = (struct range){tail, FILE_LEN - tail, 1};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(kernel_cached(f.fd, r[i].off, r[i].len),
                         pages_of(r[i].off, r[i].len));
    ask(&f, r, 4, ROUNDS);
    file_drop(&f);
}

/* Pages missing: a file written in 64 KiB pieces (64 KiB folios where the
 * file system makes them), written back, one piece evicted and the rest
 * locked. A range over the hole is not cached; a cached range with the
 * hole before it, in the same aligned block, is, even when the kernel's
 * short count sends rs_range_cached to count again from the block's
 * start, hole included. */
static void test_pagecache_hole_before_and_inside(void **state)
{
    (void)state;
    skip_without_cachestat();
    struct file f;
    file_make(&f, 64 * KIB);
    assert_int_equal(fsync(f.fd), 0); /* written back: clean pages can be evicted */
    const uint64_t hole = 64 * KIB, hole_len = 64 * KIB;
    assert_int_equal(
        posix_fadvise(f.fd, (off_t)hole, (off_t)hole_len, POSIX_FADV_DONTNEED), 0);
    if (kernel_cached(f.fd, hole, hole_len) != 0) {
        file_drop(&f);
        print_message("POSIX_FADV_DONTNEED evicted nothing here (tmpfs?): not checked\n");
        skip();
    }
    lock_or_skip(&f, 0, hole);
    lock_or_skip(&f, hole + hole_len, FILE_LEN - hole - hole_len);
    /* The hole's pages are still out: nothing read them back. */
    assert_int_equal(kernel_cached(f.fd, hole, hole_len), 0);
    /* Short ranges: the kernel's walk, resuming 8 pages past the end of
     * the 16-page folio it started in, is then past the range's end. */
    uint64_t p = (uint64_t)page;
    struct range r[] = {
        /* From inside the first piece into the hole. */
        {8 * p + 16, 10 * p, 0},
        /* Inside the third and fourth pieces, past the hole. */
        {40 * p + 16, 10 * p, 1},
        {56 * p + 16, 10 * p, 1},
        /* A 1 MiB range over the hole, and one past it. */
        {8 * p + 16, MIB, 0},
        {40 * p + 16, MIB, 1},
    };
    ask(&f, r, sizeof(r) / sizeof(r[0]), 2 * ROUNDS);
    file_drop(&f);
}

int main(void)
{
    page = sysconf(_SC_PAGESIZE);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pagecache_cached_ranges_inside_folios),
        cmocka_unit_test(test_pagecache_hole_before_and_inside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
