/* A strict HTTP/1.1 request-head parser for the static-file server.
 *
 * Pure code: no IO, no allocation, no locale, no global state. The caller
 * hands it the bytes received so far; it either asks for more (0), reports
 * one complete head (bytes consumed), or names the status to answer before
 * closing (a negative status). Pipelined requests follow one another in the
 * buffer: parse again from buf + consumed.
 *
 * What "strict" means here (RFC 9112 where it says MUST, and a refusal
 * wherever a lenient reading has been used to smuggle or escape):
 * - Lines end in CRLF. A bare LF or CR is 400. Up to 4 empty lines before the
 *   request line are skipped (RFC 9112 2.2 lets servers ignore one).
 * - request-line = method SP request-target SP HTTP-version, single spaces.
 *   GET and HEAD are served; any other well-formed method is 405.
 *   "HTTP/1.0" and "HTTP/1.1" are accepted; another HTTP/d.d is 505.
 * - The target is origin-form ("/a/b?q") or absolute-form
 *   ("http://host/a/b?q", the host may be an IPv6 literal "[::1]:8080");
 *   asterisk- and authority-form are 400. Only RFC 3986 pchar, '/' and '?'
 *   may appear (raw bytes >= 0x80, spaces, '\', '#', '"', '<', '>', '{',
 *   '}', '|', '^', '`' are 400; '[' and ']' only around the IPv6 host),
 *   and every '%' must start two hex digits.
 * - Header lines are token ":" OWS value OWS with visible ASCII, SP, HTAB
 *   and bytes >= 0x80 in the value; obsolete line folding, whitespace
 *   before the colon, and control characters are 400.
 * - HTTP/1.1 needs exactly one Host; HTTP/1.0 at most one.
 * - A request body is refused with 413 (Content-Length > 0, or any
 *   Transfer-Encoding); Content-Length that is not digits, or two that
 *   disagree, is 400.
 *
 * The path the caller gets is safe to hand to openat2(RESOLVE_BENEATH)
 * relative to the root, and safe even without it: percent-decoded first
 * (so %2e%2e is "..", %2f is '/'), then split on '/', empty and "."
 * segments dropped, ".." pops one segment; a ".." above the root, a decoded
 * NUL or other control byte, or a backslash is -404 (refused, with the same
 * answer as a missing file, so a prober learns nothing). The result never
 * starts with '/', never contains "..", "." segments, "//" or NUL.
 * Symlinks are the opener's business (RESOLVE_BENEATH).
 *
 * Range: one "bytes=" range, "a-b", "a-" or "-n"; anything else (several
 * ranges, other units, b < a, junk, numbers past 2^62) is ignored, as RFC
 * 9110 14.2 allows, and the full file is served.
 *
 * Dates (If-Modified-Since, If-Range): the three HTTP-date forms RFC 9110
 * 5.6.7 says a recipient MUST accept, IMF-fixdate, RFC 850 and asctime,
 * from 1970 to 9999, with a weekday that agrees with the date. An
 * unparsable If-Modified-Since is ignored (RFC 9110 13.1.3), and so is one
 * later than the server's clock ("invalid", 13.1.3; nginx answers 200 too).
 * An If-Range that holds neither a valid date nor anything else this server
 * could have sent (it sends no ETag) never matches: the Range is then
 * ignored, which is what 13.1.5 asks when the validator does not match.
 *
 * No IO, no allocation, no locale, no global state; the clock is an
 * argument (rs_http_parse_at), read by rs_http_parse only.
 */
#ifndef RINGSERVE_HTTP_PARSE_H
#define RINGSERVE_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rs_http_method { RS_HTTP_GET = 1, RS_HTTP_HEAD = 2 };

#define RS_HTTP_PATH_MAX    1024 /* longest request-target (bytes), and path buffer */
#define RS_HTTP_HEAD_MAX    8192 /* longest request head, request line included */
#define RS_HTTP_HEADERS_MAX 100  /* header lines per request */

struct rs_http_request {
    uint8_t method;        /* RS_HTTP_GET / RS_HTTP_HEAD */
    uint8_t version_minor; /* HTTP/1.x */
    bool keep_alive; /* 1.1: unless "Connection: close"; 1.0: only with "keep-alive" */
    char path[RS_HTTP_PATH_MAX];     /* decoded, normalized, relative; "" = the root */
    bool dir_slash;                  /* the target's path ended in '/' (or "/." "/..") */
    bool has_range;                  /* one valid "Range: bytes=..." */
    int64_t range_first, range_last; /* "a-b": a,b  "a-": a,-1  "-n": -1,n */
    bool has_ims;                    /* a valid If-Modified-Since, not in the future */
    int64_t ims;                     /* its value, seconds since the epoch */
    bool has_if_range;               /* an If-Range header (or several) */
    int64_t
        if_range; /* its date; -1: an entity-tag, junk or two headers (never matches) */
};

/* Parse one request head at buf[0..len).
 *  > 0  bytes consumed (through the blank line); *req filled
 *    0  incomplete: read more. Nothing for the caller to enforce: once len
 *       passes the limits the parser answers -431 or -414 itself.
 *  < 0  -status to answer, then close: -400 malformed, -404 path refused,
 *       -405 other method, -413 request body, -414 target longer than
 *       RS_HTTP_PATH_MAX, -431 head longer than RS_HTTP_HEAD_MAX or more
 *       than RS_HTTP_HEADERS_MAX lines, -505 other HTTP version.
 * *req is written in every case; after an error only method and
 * version_minor may be meaningful (0 when not parsed yet). */
int rs_http_parse(const char *buf, size_t len, struct rs_http_request *req);
/* The same with the clock given: `now` (seconds since the epoch) decides
 * which If-Modified-Since lies in the future and the century of a two-digit
 * RFC 850 year. rs_http_parse passes time(NULL). */
int rs_http_parse_at(const char *buf, size_t len, int64_t now,
                     struct rs_http_request *req);

/* RFC 9110 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT": 29 characters and
 * a NUL. Returns 29, or -1 (out untouched) for a time before 1970 or after
 * 9999: the caller must then say nothing rather than print out. */
int rs_http_format_date(int64_t t, char out[30]);

/* An HTTP-date in any of its three forms, exactly len bytes:
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   RFC 850      "Sunday, 06-Nov-94 08:49:37 GMT"
 *   asctime      "Sun Nov  6 08:49:37 1994"
 * Seconds since the epoch, or -1 on any error or a date before 1970. A
 * two-digit year is taken in the century that puts it at most 50 years
 * after `now` (RFC 9110 5.6.7). A leap second ":60" reads as ":59". */
int64_t rs_http_parse_date(const char *s, size_t len, int64_t now);

/* Whether the parsed Range applies to a file last modified at `mtime`
 * (RFC 9110 13.1.5): always without If-Range; with one, only when its date
 * equals mtime and that date is a strong validator, i.e. the second it
 * names had ended by `now` (a file changed twice within one second would
 * keep its date). False also when there is no Range. */
bool rs_http_range_applies(const struct rs_http_request *req, int64_t mtime, int64_t now);

/* The Content-Type for a path, by extension (case-insensitive);
 * "application/octet-stream" when unknown. Static strings. */
const char *rs_http_content_type(const char *path);

/* The reason phrase for a status; "Unknown" for one not used here. */
const char *rs_http_reason(int status);

/* Resolve a parsed Range against a file of `size` bytes:
 *  200  no usable range: serve [0, size)       (*first = 0, *count = size)
 *  206  serve [*first, *first + *count)
 *  416  unsatisfiable: first >= size, or "-0", or an empty file
 * A range reaching past the end is cut at the end (RFC 9110 14.1.2). */
int rs_http_range_resolve(const struct rs_http_request *req, int64_t size, int64_t *first,
                          int64_t *count);

#endif
