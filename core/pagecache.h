/* Is a file's byte range in the page cache? (pagecache.c) Both backends
 * ask before a sendfile runs in the loop itself: from cached pages it
 * cannot block; a page not cached would be read from disk right there,
 * blocking every connection of the loop. */
#ifndef RINGSERVE_PAGECACHE_H
#define RINGSERVE_PAGECACHE_H

#include <stdint.h>

/* 1: every page of [off, off + len) is cached; 0: some is not; -errno:
 * the kernel cannot say (-ENOSYS before Linux 6.5, or a seccomp profile
 * that refuses cachestat(2)). len > 0. */
int rs_range_cached(int fd, uint64_t off, uint64_t len);

#endif
