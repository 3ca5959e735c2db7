/* cachestat(2) (Linux 6.5): how many pages of a range are in the page
 * cache, counted without touching them (no read-ahead, no fault), for the
 * price of one system call. glibc has no wrapper yet.
 *
 * Its count can be short when the range starts inside a large folio.
 * The kernel walks the page cache's xarray under RCU and, when asked to
 * reschedule, pauses the walk (xas_pause) after the entry it has just
 * counted. The first entry is found by looking up the range's first
 * page, so the walk's index is that page, not the folio's first page;
 * the pause moves it on by the folio's size all the same, and the walk
 * resumes as many pages past the folio's end as the range started into
 * it (rounded down to the xarray node's slots). A folio it resumes inside
 * is counted whole, but one it jumps over is not counted at all, nor is
 * anything when it resumes past the range's end. Measured on Linux 6.18,
 * ext4 (a file written in one large write is cached in 2 MiB folios), the
 * pages mlock'ed, a 1 MiB range starting 8 pages before a folio's end:
 * about one answer in 3700 said 8 of its 257 pages were cached (the
 * first folio's part) with a CPU-bound thread sharing the CPU, one in
 * 11000 without it on the same loaded machine; the same range started at
 * the folio's first page was never short in millions of answers. A
 * backend asking whether an op's range is cached then hands a cached
 * range to a worker thread (epoll) or to io-wq (io_uring) for nothing.
 *
 * Every other entry of the walk is reached by moving from slot to slot,
 * which sets the index to the entry's first page: a pause after it
 * resumes right after it. A walk started at a multiple of the largest
 * page-cache folio starts at an entry's first page too (a folio sits at
 * a multiple of its size), and its count is exact. So a short answer is
 * asked again from there: the pages of [aligned start, last] minus those
 * of [aligned start, first - 1]. The first answer stands when it cannot
 * have lost a page: enough pages; none (the first entry is always
 * counted, so the range's first page is not cached); or a start that is
 * aligned already. The second asking costs a walk over the pages before
 * the range, up to a folio's worth (2 MiB on x86-64), and only where the
 * answer is "not all cached", where a worker's read follows anyway. */
#include "pagecache.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_cachestat
#define SYS_cachestat 451 /* Linux 6.5, the same number on every architecture */
#endif

/* The largest page-cache folio, in bytes: a PMD's size (the kernel's
 * MAX_PAGECACHE_ORDER is at most the PMD's order; 2^8 pages without
 * transparent huge pages), or, when that cannot be read, 2^13 pages, the
 * largest PMD order of any base page size (arm64 with 64 KiB pages). */
static uint64_t page_size, folio_pages;

static void sizes_init(void)
{
    page_size = (uint64_t)sysconf(_SC_PAGESIZE);
    folio_pages = 1u << 13;
    int fd =
        open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *end;
    unsigned long long v = strtoull(buf, &end, 10);
    /* A power of two of at least a page, as a PMD's size is. */
    if (end != buf && v >= page_size && (v & (v - 1)) == 0)
        folio_pages = v / page_size;
}

/* The page-cache pages of pages [first, last]: 0 or more, or -errno. */
static int64_t pages_cached(int fd, uint64_t page, uint64_t first, uint64_t last)
{
    struct {
        uint64_t off, len;
    } range = {first * page, (last - first + 1) * page};
    struct {
        uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
    } cs;
    if (syscall(SYS_cachestat, fd, &range, &cs, 0) < 0)
        return -errno;
    return (int64_t)cs.nr_cache;
}

int rs_range_cached(int fd, uint64_t off, uint64_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sizes_init);
    uint64_t page = page_size;
    uint64_t first = off / page;
    uint64_t last = (off + len - 1) / page;
    uint64_t want = last - first + 1;
    int64_t n = pages_cached(fd, page, first, last);
    if (n < 0)
        return (int)n;
    uint64_t start = first - first % folio_pages;
    if ((uint64_t)n >= want || n == 0 || start == first)
        return (uint64_t)n >= want;
    /* Possibly short (see above): counted again from an aligned start. */
    int64_t all = pages_cached(fd, page, start, last);
    if (all < 0)
        return (int)all;
    if ((uint64_t)all >= last - start + 1)
        return 1; /* the pages before the range too: no need to subtract */
    int64_t before = pages_cached(fd, page, start, first - 1);
    if (before < 0)
        return (int)before;
    /* Two answers, not one: pages evicted in between may make it < 0. */
    return all - before >= (int64_t)want;
}
