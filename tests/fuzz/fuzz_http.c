/* libFuzzer target for the HTTP request-head parser (protocols/http_parse.c)
 * and the response-head pieces made from what it parsed (http_head.c).
 *
 * Each input is parsed three ways: as raw bytes (a whole head, or several
 * pipelined), as the request-target of an otherwise valid request (so the
 * fuzzer spends its time on path decoding and normalization instead of
 * rediscovering "GET / HTTP/1.1"), as the value of a Range, an
 * If-Modified-Since and an If-Range header, and as an HTTP-date on its own
 * (any of the three forms). Its first bytes also pick a time that is
 * written in all three forms, which must read back the same. After every
 * parse the promises of http_parse.h are checked, and a broken one
 * abort()s, which libFuzzer reports as a crash:
 * - the result is 0, a status from the documented set, or a byte count
 *   with 0 < consumed <= len and consumed <= RS_HTTP_HEAD_MAX;
 * - a parsed path never starts with '/', never contains a ".." or "."
 *   segment, "//", a NUL before its end, a control byte or a backslash, and
 *   fits in RS_HTTP_PATH_MAX with its NUL;
 * - every strict prefix of a complete head is "incomplete" (0), and the
 *   head alone parses to the same count (no look-ahead past the blank line);
 * - a Range is one of the three documented forms, and resolving it against
 *   any size yields a slice inside the file;
 * - a parsed date formats back to the same 29 bytes (IMF-fixdate), lies in
 *   1970..9999, and reads back from that form as the same time; a time
 *   outside that span is never formatted (and the output is untouched);
 * - an If-Modified-Since is never later than the clock given;
 * - an If-Range makes a Range apply only when its date equals the file's
 *   and that second had ended by the clock given.
 * - the header lines a response would state about a file at the parsed
 *   path (http_head.h) are in their places, end in CRLF, and read back as
 *   the type, size and mtime they were made from.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_head.h"
#include "http_parse.h"

#define MAX_DATE 253402300799LL /* Fri, 31 Dec 9999 23:59:59 GMT */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz_http: %s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

static bool known_status(int rc)
{
    switch (-rc) {
    case 400:
    case 404:
    case 405:
    case 413:
    case 414:
    case 431:
    case 505:
        return true;
    default:
        return false;
    }
}

static void check_path(const struct rs_http_request *r)
{
    size_t n = strnlen(r->path, RS_HTTP_PATH_MAX);
    CHECK(n < RS_HTTP_PATH_MAX);
    CHECK(n == 0 || r->path[0] != '/');
    CHECK(n == 0 || r->path[n - 1] != '/');
    CHECK(strstr(r->path, "//") == NULL);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)r->path[i];
        CHECK(c >= 0x20 && c != 0x7f && c != '\\');
    }
    /* No "." or ".." segment anywhere. */
    const char *s = r->path;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        CHECK(!(len == 1 && s[0] == '.'));
        CHECK(!(len == 2 && s[0] == '.' && s[1] == '.'));
        s += len;
        if (*s == '/')
            s++;
    }
}

static void check_range(const struct rs_http_request *r, uint64_t salt)
{
    if (!r->has_range) {
        CHECK(r->range_first == -1 && r->range_last == -1);
    } else {
        CHECK(r->range_first >= 0 || r->range_last >= 0);
        CHECK(r->range_first >= -1 && r->range_last >= -1);
        if (r->range_first >= 0 && r->range_last >= 0)
            CHECK(r->range_first <= r->range_last);
    }
    static const int64_t sizes[] = {0, 1, 2, 100, 4096, (int64_t)1 << 40};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]) + 1; i++) {
        int64_t size =
            i < sizeof(sizes) / sizeof(sizes[0]) ? sizes[i] : (int64_t)(salt % 100000);
        int64_t first = -7, count = -7;
        int st = rs_http_range_resolve(r, size, &first, &count);
        CHECK(st == 200 || st == 206 || st == 416);
        if (st == 200)
            CHECK(first == 0 && count == size);
        if (st == 206) {
            CHECK(first >= 0 && count >= 1 && first + count <= size);
            CHECK(r->has_range);
        }
    }
}

/* t is a time the parser produced: in range, and it survives a round trip
 * through IMF-fixdate. */
static void check_time(int64_t t, int64_t now)
{
    char out[30];
    CHECK(t >= 0 && t <= MAX_DATE);
    CHECK(rs_http_format_date(t, out) == 29);
    CHECK(rs_http_parse_date(out, 29, now) == t);
}

static void check_dates(const struct rs_http_request *r, int64_t now, uint64_t salt)
{
    if (r->has_ims) {
        check_time(r->ims, now);
        CHECK(r->ims <= now);
    } else {
        CHECK(r->ims == -1);
    }
    if (!r->has_if_range) {
        CHECK(r->if_range == -1);
    } else if (r->if_range != -1) {
        check_time(r->if_range, now);
    }
    /* Whatever the file's date, the Range applies only as 13.1.5 says. */
    const int64_t mtimes[] = {-1,
                              0,
                              r->if_range,
                              r->if_range + 1,
                              now,
                              now - 1,
                              (int64_t)(salt % (MAX_DATE + 2)) - 1};
    for (size_t i = 0; i < sizeof(mtimes) / sizeof(mtimes[0]); i++) {
        bool applies = rs_http_range_applies(r, mtimes[i], now);
        if (!r->has_range)
            CHECK(!applies);
        else if (!r->has_if_range)
            CHECK(applies);
        else
            CHECK(applies ==
                  (r->if_range >= 0 && r->if_range == mtimes[i] && mtimes[i] < now));
    }
}

/* The header lines a 200 would state about a file at the parsed path
 * (http_head.h), for a size and an mtime from the input (now and then an
 * mtime without an HTTP-date): each piece in its place, every line ending
 * in CRLF, and what they say reading back as what they were made from. */
static void check_file_head(const struct rs_http_request *r, uint64_t salt)
{
    static const int64_t odd[] = {-1, -86400, MAX_DATE + 1};
    struct rs_http_file_head fh;
    memset(&fh, 0, sizeof(fh));
    uint64_t size = salt % 7 == 0 ? UINT64_MAX - salt % 100 : salt >> 3;
    int64_t mtime = salt % 5 == 0 ? odd[salt / 5 % 3] : (int64_t)(salt % (MAX_DATE + 1));
    const struct rs_http_file_head *h = rs_http_file_head_for(&fh, r->path, size, mtime);
    CHECK(h->made && h->size == size && h->mtime == mtime);
    CHECK(h->ct_end <= h->cl_end && h->cl_end <= h->lm_end && h->lm_end <= h->len &&
          h->len <= sizeof(h->text));
    const char *type = rs_http_content_type(r->path);
    size_t tl = strlen(type);
    CHECK(h->ct_end == 14 + tl + 2 && memcmp(h->text, "Content-Type: ", 14) == 0 &&
          memcmp(h->text + 14, type, tl) == 0);
    char num[32];
    size_t nl = (size_t)(h->cl_end - h->ct_end) - 18;
    CHECK(nl < sizeof(num) && memcmp(h->text + h->ct_end, "Content-Length: ", 16) == 0);
    memcpy(num, h->text + h->ct_end + 16, nl);
    num[nl] = '\0';
    CHECK(strtoull(num, NULL, 10) == size);
    char date[30];
    bool dated = rs_http_format_date(mtime, date) == 29;
    CHECK(h->dated == dated && (h->lm_end - h->cl_end) == (dated ? 46 : 0));
    if (dated)
        CHECK(rs_http_parse_date(h->text + h->cl_end + 15, 29, mtime) == mtime);
    CHECK(h->len - h->lm_end == 22 &&
          memcmp(h->text + h->lm_end, "Accept-Ranges: bytes\r\n", 22) == 0);
    const uint8_t ends[] = {h->ct_end, h->cl_end, h->lm_end, h->len};
    for (size_t i = 0; i < sizeof(ends); i++)
        CHECK(h->text[ends[i] - 2] == '\r' && h->text[ends[i] - 1] == '\n');
}

static int parse_checked(const char *buf, size_t len, uint64_t salt)
{
    struct rs_http_request r;
    /* A clock anywhere from 1970 to 9999, so two-digit years and "in the
     * future" are tried against every century. */
    int64_t now = (int64_t)(salt % (MAX_DATE + 1));
    int rc = rs_http_parse_at(buf, len, now, &r);
    if (rc > 0) {
        CHECK((size_t)rc <= len);
        CHECK(rc <= RS_HTTP_HEAD_MAX);
        CHECK(r.method == RS_HTTP_GET || r.method == RS_HTTP_HEAD);
        CHECK(r.version_minor <= 1);
        check_path(&r);
        check_range(&r, salt);
        check_dates(&r, now, salt);
        check_file_head(&r, salt);
        /* The head alone parses the same; a strict prefix is incomplete.
         * Checking every prefix would be quadratic, so a few. */
        struct rs_http_request r2;
        CHECK(rs_http_parse_at(buf, (size_t)rc, now, &r2) == rc);
        CHECK(strcmp(r2.path, r.path) == 0);
        CHECK(r2.ims == r.ims && r2.if_range == r.if_range);
        CHECK(rs_http_parse_at(buf, (size_t)rc - 1, now, &r2) == 0);
        CHECK(rs_http_parse_at(buf, (size_t)rc / 2, now, &r2) == 0);
    } else if (rc < 0) {
        CHECK(known_status(rc));
    } else {
        CHECK(len < RS_HTTP_HEAD_MAX);
    }
    return rc;
}

/* One time, from the input, written in the three forms: each reads back as
 * that time (the RFC 850 year against a clock in the same year, where its
 * two digits are unambiguous). Times outside 1970..9999 are not written,
 * and the buffer stays as it was. */
static void check_forms(uint64_t salt, uint8_t pick)
{
    static const char *const long_days[7] = {"Thursday", "Friday",  "Saturday", "Sunday",
                                             "Monday",   "Tuesday", "Wednesday"};
    /* Mostly inside the span, now and then just outside it. */
    int64_t t = (int64_t)(salt % (MAX_DATE + 1));
    if (pick % 8 == 0)
        t = pick & 8 ? -1 - (int64_t)(salt % 1000000) : MAX_DATE + 1 + (int64_t)pick;
    char imf[30];
    memset(imf, '#', sizeof(imf));
    if (rs_http_format_date(t, imf) < 0) {
        CHECK(t < 0 || t > MAX_DATE);
        for (size_t i = 0; i < sizeof(imf); i++)
            CHECK(imf[i] == '#');
        return;
    }
    CHECK(t >= 0 && t <= MAX_DATE);
    CHECK(rs_http_parse_date(imf, 29, t) == t);
    /* "Sun, 06 Nov 1994 08:49:37 GMT" -> its pieces. */
    int wd = (int)((t / 86400) % 7);
    char day[3], mon[4], year[5], tod[9];
    memcpy(day, imf + 5, 2);
    day[2] = '\0';
    memcpy(mon, imf + 8, 3);
    mon[3] = '\0';
    memcpy(year, imf + 12, 4);
    year[4] = '\0';
    memcpy(tod, imf + 17, 8);
    tod[8] = '\0';
    char rfc850[40], asct[30];
    snprintf(rfc850, sizeof(rfc850), "%s, %s-%s-%s %s GMT", long_days[wd], day, mon,
             year + 2, tod);
    CHECK(rs_http_parse_date(rfc850, strlen(rfc850), t) == t);
    snprintf(asct, sizeof(asct), "%.3s %s %c%c %s %s", imf, mon,
             day[0] == '0' ? ' ' : day[0], day[1], tod, year);
    CHECK(strlen(asct) == 24);
    CHECK(rs_http_parse_date(asct, 24, t) == t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t salt = 0;
    for (size_t i = 0; i < size && i < 8; i++)
        salt = salt * 131 + data[i];

    /* 1. Raw bytes, and any pipelined requests after the first. */
    const char *p = (const char *)data;
    size_t left = size;
    for (int k = 0; k < 8 && left > 0; k++) {
        int rc = parse_checked(p, left, salt);
        if (rc <= 0)
            break;
        p += rc;
        left -= (size_t)rc;
    }

    /* 2. The input as a request-target; 3. as Range / If-Modified-Since. */
    static char buf[RS_HTTP_HEAD_MAX + 256];
    size_t n = size < RS_HTTP_PATH_MAX + 8 ? size : RS_HTTP_PATH_MAX + 8;
    size_t o = 0;
    memcpy(buf, "GET ", 4);
    o = 4;
    memcpy(buf + o, data, n);
    o += n;
    static const char tail[] = " HTTP/1.1\r\nHost: h\r\n\r\n";
    memcpy(buf + o, tail, sizeof(tail) - 1);
    o += sizeof(tail) - 1;
    parse_checked(buf, o, salt);

    n = size < 200 ? size : 200;
    static const char pre[] = "HEAD /f HTTP/1.0\r\nRange: ";
    o = sizeof(pre) - 1;
    memcpy(buf, pre, o);
    memcpy(buf + o, data, n);
    o += n;
    static const char mid[] = "\r\nIf-Modified-Since: ";
    memcpy(buf + o, mid, sizeof(mid) - 1);
    o += sizeof(mid) - 1;
    memcpy(buf + o, data, n);
    o += n;
    static const char ifr[] = "\r\nIf-Range: ";
    memcpy(buf + o, ifr, sizeof(ifr) - 1);
    o += sizeof(ifr) - 1;
    memcpy(buf + o, data, n);
    o += n;
    memcpy(buf + o, "\r\n\r\n", 4);
    o += 4;
    parse_checked(buf, o, salt);

    /* 4. The input as an HTTP-date, any form. */
    int64_t now = (int64_t)(salt % (MAX_DATE + 1));
    int64_t t = rs_http_parse_date((const char *)data, size, now);
    if (t >= 0) {
        char out[30];
        CHECK(size == 29 || size == 24 || (size >= 30 && size <= 33));
        check_time(t, now);
        CHECK(rs_http_format_date(t, out) == 29);
        /* Leap second ":60" reads as ":59", so compare all but the seconds. */
        if (size == 29)
            CHECK(memcmp(out, data, 23) == 0);
    } else {
        CHECK(t == -1);
    }
    check_forms(salt, size >= 16 ? data[15] : 0);
    buf[o] = '\0';
    CHECK(rs_http_content_type(buf) != NULL);
    return 0;
}
