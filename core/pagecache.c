/* cachestat(2) (Linux 6.5): how many pages of a range are in the page
 * cache, counted without touching them (no read-ahead, no fault), for the
 * price of one system call. glibc has no wrapper yet. */
#include "pagecache.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_cachestat
#define SYS_cachestat 451 /* Linux 6.5, the same number on every architecture */
#endif

int rs_range_cached(int fd, uint64_t off, uint64_t len)
{
    static long page;
    if (!page)
        page = sysconf(_SC_PAGESIZE);
    struct {
        uint64_t off, len;
    } range = {off, len};
    struct {
        uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
    } cs;
    if (syscall(SYS_cachestat, fd, &range, &cs, 0) < 0)
        return -errno;
    uint64_t first = off / (uint64_t)page;
    uint64_t last = (off + len - 1) / (uint64_t)page;
    return cs.nr_cache >= last - first + 1;
}
