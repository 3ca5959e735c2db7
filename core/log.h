/* Logging to stderr, one line per message, prefixed "ringserve: ". */
#ifndef RINGSERVE_LOG_H
#define RINGSERVE_LOG_H

extern int rs_log_level; /* -1 quiet, 0 normal, 1 verbose */

void rs_log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rs_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void rs_log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
