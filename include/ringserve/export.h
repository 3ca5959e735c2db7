/* What every public header shares: the export marker.
 *
 * libringserve is built with -fvisibility=hidden: a function is part of
 * the library's ABI only when its declaration in an installed header
 * carries RS_EXPORT. Everything else (the backends, the buffer pool, the
 * listener...) stays internal: not installed, not exported, free to change
 * between releases. `nm -D libringserve.so` therefore lists exactly the
 * functions these headers document.
 */
#ifndef RINGSERVE_EXPORT_H
#define RINGSERVE_EXPORT_H

#if defined(__GNUC__) || defined(__clang__)
#define RS_EXPORT            __attribute__((visibility("default")))
#define RS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define RS_EXPORT
#define RS_PRINTF(fmt, args)
#endif

#endif
