/* Response heads from pre-formatted pieces, for the static-file server.
 *
 * A 200 for a 1 KiB file used to cost ~5,000 instructions in snprintf
 * alone, more than the rest of the request put together: the reason
 * phrase, the content type by extension, the file's Last-Modified date
 * and the length were formatted afresh for every response. Here each
 * piece is formatted when it changes, and a head is assembled by copying:
 *
 * - the Date line, once per second per loop (struct rs_http_date: the
 *   string and the second it was made for; the clock is an argument, so a
 *   test can turn it);
 * - what a response states about a file — Content-Type, Content-Length,
 *   Last-Modified, Accept-Ranges — once per file (struct
 *   rs_http_file_head), kept in the open-file cache's entry while the file
 *   stays cached, and remade whenever the size or mtime it was made from
 *   is not the one being served (a file replaced, or changed in place and
 *   refreshed);
 * - the status line and the Server line, constant strings.
 *
 * Pure code: no IO, no allocation, no clock of its own. */
#ifndef RINGSERVE_HTTP_HEAD_H
#define RINGSERVE_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The Date header line, "Date: IMF-fixdate\r\n", for the second `sec`. */
struct rs_http_date {
    int64_t sec; /* the second line[] was made for; INT64_MIN: never */
    uint8_t len; /* 0: the clock is outside what an HTTP-date can say */
    char line[40];
};

void rs_http_date_init(struct rs_http_date *d);
/* The line for `now` (seconds since the epoch), formatted only when the
 * second differs from the last call's; *len is 0 (and the line "") when
 * `now` has no HTTP-date (RFC 9110 6.6.1: no clock, no Date). */
const char *rs_http_date_line(struct rs_http_date *d, int64_t now, size_t *len);

/* The longest content type (rs_http_content_type) plus room. */
#define RS_HTTP_FILE_HEAD_MAX 176

/* The header lines a 200 states about a file, in the order they are sent:
 *   text[0, ct_end)        "Content-Type: T\r\n"
 *   text[ct_end, cl_end)   "Content-Length: SIZE\r\n"
 *   text[cl_end, lm_end)   "Last-Modified: DATE\r\n", empty without a date
 *   text[lm_end, len)      "Accept-Ranges: bytes\r\n"
 * A 206 states another length: it copies the pieces around the second. */
struct rs_http_file_head {
    uint64_t size; /* what it was made from */
    int64_t mtime;
    bool made;
    bool dated; /* the mtime has an HTTP-date: Last-Modified is sent, and
                 * validators are compared with it */
    uint8_t ct_end, cl_end, lm_end, len;
    char text[RS_HTTP_FILE_HEAD_MAX];
};

/* Make fh for the file at `path` (its extension names the type) of `size`
 * bytes last modified at `mtime` (seconds). */
void rs_http_file_head_make(struct rs_http_file_head *fh, const char *path, uint64_t size,
                            int64_t mtime);

/* fh, remade first unless it was made for this size and mtime. */
static inline const struct rs_http_file_head *
rs_http_file_head_for(struct rs_http_file_head *fh, const char *path, uint64_t size,
                      int64_t mtime)
{
    if (!fh->made || fh->size != size || fh->mtime != mtime)
        rs_http_file_head_make(fh, path, size, mtime);
    return fh;
}

/* Decimal digits of v at o; returns the end. */
char *rs_http_put_u64(char *o, uint64_t v);

/* Copy n bytes to o; returns the end. */
static inline char *rs_http_put(char *o, const void *p, size_t n)
{
    memcpy(o, p, n);
    return o + n;
}

/* A string literal, its length known at compile time. */
#define RS_HTTP_PUT_LIT(o, lit) rs_http_put((o), (lit), sizeof(lit) - 1)

/* "HTTP/1.1 STATUS REASON\r\nServer: ringserve\r\n" at o; returns the end.
 * The statuses this server sends are constant strings; any other is
 * spelled out digit by digit. */
char *rs_http_put_status(char *o, int status);

#endif
