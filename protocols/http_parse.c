/* The HTTP/1.1 request-head parser; the rules it enforces are listed at the
 * top of http_parse.h. It walks the head line by line, so an error in the
 * request line is reported as soon as that line is complete (or, for an
 * overlong target, as soon as the target passes its limit), without waiting
 * for the rest of the head. */
#include "http_parse.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#define MAX_LEADING_EMPTY 4
#define METHOD_MAX        16 /* longer tokens are some other method: 405 at once */

/* Character classes, one bit each, for the bytes of a request. */
enum {
    C_TOKEN = 1, /* RFC 9110 tchar */
    C_PCHAR = 2, /* RFC 3986 unreserved / sub-delims / ':' / '@' / '%' */
    C_VALUE = 4, /* field-vchar, SP, HTAB, obs-text */
    C_DIGIT = 8,
    C_HEX = 16,
};

static unsigned char cls[256];

/* Filled on first use. A benign race: two threads write the same bytes. */
static void init_classes(void)
{
    static volatile bool done;
    if (done)
        return;
    for (int c = 0; c < 256; c++) {
        unsigned char k = 0;
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool digit = c >= '0' && c <= '9';
        if (alpha || digit || (c && strchr("!#$%&'*+-.^_`|~", c)))
            k |= C_TOKEN;
        if (alpha || digit || (c && strchr("-._~!$&'()*+,;=:@%", c)))
            k |= C_PCHAR;
        if ((c >= 0x21 && c <= 0x7e) || c == ' ' || c == '\t' || c >= 0x80)
            k |= C_VALUE;
        if (digit)
            k |= C_DIGIT | C_HEX;
        if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            k |= C_HEX;
        cls[c] = k;
    }
    done = true;
}

static bool is(char c, unsigned k)
{
    return cls[(unsigned char)c] & k;
}

static bool all(const char *p, size_t n, unsigned k)
{
    for (size_t i = 0; i < n; i++)
        if (!is(p[i], k))
            return false;
    return true;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static bool ieq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    if (alen != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lit[i])
            return false;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    return lower((unsigned char)c) - 'a' + 10;
}

/* Find the end of the line starting at p: the index of its '\n' within
 * [p, end), or -1 when there is none yet. */
static long find_lf(const char *p, const char *end)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    return lf ? (long)(lf - p) : -1;
}

/* A line of n bytes before its '\n' must end in exactly one CR, with no
 * other CR in it. Returns the length without the CR, or -1. */
static long strip_cr(const char *p, long n)
{
    if (n < 1 || p[n - 1] != '\r')
        return -1;
    if (memchr(p, '\r', (size_t)(n - 1)))
        return -1;
    return n - 1;
}

/* ---- the target ------------------------------------------------------ */

/* Decode and normalize the path part of a target, raw[0..n) (it starts
 * with '/', and every '%' is followed by two hex digits), into req->path.
 * Decoding comes first, so "%2f" separates segments exactly like '/' and
 * "%2e%2e" is the ".." it spells. Returns 0 or -status. */
static int normalize_any_path(const char *raw, size_t n, struct rs_http_request *req)
{
    char dec[RS_HTTP_PATH_MAX];
    size_t dn = 0;
    for (size_t i = 0; i < n; dn++) {
        char c = raw[i];
        if (c == '%') {
            c = (char)(hexval(raw[i + 1]) * 16 + hexval(raw[i + 2]));
            i += 3;
        } else {
            i++;
        }
        unsigned char u = (unsigned char)c;
        if (u < 0x20 || u == 0x7f || c == '\\')
            return -404;
        dec[dn] = c;
    }

    char *out = req->path;
    size_t o = 0; /* bytes in out: segments joined by single '/' */
    bool last_dir = true;
    for (size_t i = 0; i < dn;) {
        while (i < dn && dec[i] == '/')
            i++;
        size_t s = i;
        while (i < dn && dec[i] != '/')
            i++;
        size_t len = i - s;
        if (len == 0)
            break; /* trailing slashes */
        if (len == 1 && dec[s] == '.') {
            last_dir = true;
        } else if (len == 2 && dec[s] == '.' && dec[s + 1] == '.') {
            if (o == 0)
                return -404; /* above the root */
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--;
            last_dir = true;
        } else {
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, dec + s, len);
            o += len;
            last_dir = false;
        }
    }
    if (dn > 0 && dec[dn - 1] == '/')
        last_dir = true;
    assert(o < RS_HTTP_PATH_MAX); /* the leading '/' is never copied */
    out[o] = '\0';
    req->dir_slash = last_dir;
    return 0;
}

/* Most paths need no decoding and no normalizing: no '%', no "//", and
 * no segment that starts with '.' (so no "." or ".."; "/.hidden" takes
 * the long way too, which is merely slower). Such a path is the target
 * without its leading '/' and one trailing '/'; its bytes were checked
 * (pchar or '/': no control byte, no backslash). */
static bool plain_path(const char *raw, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (raw[i] == '%')
            return false;
        if (raw[i] == '/' && i + 1 < n && (raw[i + 1] == '/' || raw[i + 1] == '.'))
            return false;
    }
    return true;
}

static int normalize_path(const char *raw, size_t n, struct rs_http_request *req)
{
    if (!plain_path(raw, n))
        return normalize_any_path(raw, n, req);
    bool slash = raw[n - 1] == '/';
    size_t o = n - 1 - (slash && n > 1);
    assert(o < RS_HTTP_PATH_MAX);
    memcpy(req->path, raw + 1, o);
    req->path[o] = '\0';
    req->dir_slash = slash;
    return 0;
}

/* An IPv6 address in brackets, "[::1]", starting at t[a] in an authority
 * (RFC 3986 IP-literal; IPvFuture and zone identifiers are not taken): the
 * index just past it, where a port, the path or the end must follow; 0 when
 * it is not one. Which host is named does not matter here (the server
 * serves one root); only that the target is well-formed. */
static size_t skip_ip_literal(const char *t, size_t a, size_t n)
{
    size_t i = a + 1;
    while (i < n && (is(t[i], C_HEX) || t[i] == ':' || t[i] == '.'))
        i++;
    if (i == a + 1 || i >= n || t[i] != ']')
        return 0;
    i++;
    if (i < n && t[i] != ':' && t[i] != '/' && t[i] != '?')
        return 0;
    return i;
}

/* The request target, t[0..n). Returns 0 or -status. */
static int parse_target(const char *t, size_t n, struct rs_http_request *req)
{
    if (n == 0)
        return -400;
    if (n > RS_HTTP_PATH_MAX)
        return -414;
    size_t start = 0;
    if (t[0] != '/') {
        /* absolute-form: "http://" authority [ path-abempty ] [ "?" query ] */
        static const char scheme[] = "http://";
        size_t sl = sizeof(scheme) - 1;
        if (n < sl || !ieq(t, sl, scheme))
            return -400;
        size_t a = sl;
        while (a < n && t[a] != '/' && t[a] != '?') {
            if (t[a] == '[' && (a == sl || t[a - 1] == '@')) {
                a = skip_ip_literal(t, a, n);
                if (a == 0)
                    return -400;
                continue;
            }
            if (!is(t[a], C_PCHAR) || t[a] == '%')
                return -400;
            a++;
        }
        if (a == sl)
            return -400; /* an empty authority */
        start = a;
    }
    /* Validate every byte of path and query; find where the path ends. */
    size_t path_end = n;
    for (size_t i = start; i < n; i++) {
        char c = t[i];
        if (c == '?') {
            if (path_end == n)
                path_end = i;
            continue;
        }
        if (c == '/')
            continue;
        if (!is(c, C_PCHAR))
            return -400;
        if (c == '%') {
            if (i + 2 >= n || !is(t[i + 1], C_HEX) || !is(t[i + 2], C_HEX))
                return -400;
            i += 2;
        }
    }
    if (start == path_end) {
        /* "http://host" or "http://host?q": the root. */
        req->path[0] = '\0';
        req->dir_slash = true;
        return 0;
    }
    return normalize_path(t + start, path_end - start, req);
}

/* ---- the request line ------------------------------------------------ */

/* Check a request line that has no end yet, so a client streaming garbage or
 * a huge target is answered before the head limit. Returns 0 or -status. */
static int check_partial_line(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] != ' ') {
        if (!is(p[i], C_TOKEN))
            return -400;
        if (++i > METHOD_MAX)
            return -405;
    }
    if (i == n)
        return 0;
    size_t t = ++i;
    while (i < n && p[i] != ' ')
        i++;
    if (i - t > RS_HTTP_PATH_MAX)
        return -414;
    return 0;
}

static int parse_version(const char *v, size_t n, struct rs_http_request *req)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || !is(v[5], C_DIGIT) || v[6] != '.' ||
        !is(v[7], C_DIGIT))
        return -400;
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return -505;
    req->version_minor = (uint8_t)(v[7] - '0');
    return 0;
}

static int parse_request_line(const char *p, size_t n, struct rs_http_request *req)
{
    const char *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p)
        return -400;
    size_t ml = (size_t)(sp1 - p);
    if (!all(p, ml, C_TOKEN))
        return -400;
    const char *t = sp1 + 1;
    const char *end = p + n;
    const char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2) {
        /* HTTP/0.9 "GET /" or a target with no version: not served. */
        return -400;
    }
    if (memchr(sp2 + 1, ' ', (size_t)(end - sp2 - 1)))
        return -400;
    int rc = parse_version(sp2 + 1, (size_t)(end - sp2 - 1), req);
    if (rc < 0)
        return rc;
    if (ml == 3 && memcmp(p, "GET", 3) == 0)
        req->method = RS_HTTP_GET;
    else if (ml == 4 && memcmp(p, "HEAD", 4) == 0)
        req->method = RS_HTTP_HEAD;
    else
        return -405;
    return parse_target(t, (size_t)(sp2 - t), req);
}

/* ---- header values --------------------------------------------------- */

/* Digits only, no sign, at most 18 of them (fits int64). -1 otherwise. */
static int64_t parse_u62(const char *s, size_t n)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is(s[i], C_DIGIT))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "bytes=a-b" | "bytes=a-" | "bytes=-n"; false for anything else. */
static bool parse_range(const char *v, size_t n, struct rs_http_request *req)
{
    if (n < 6 || !ieq(v, 6, "bytes="))
        return false;
    v += 6;
    n -= 6;
    const char *dash = memchr(v, '-', n);
    if (!dash)
        return false;
    size_t fl = (size_t)(dash - v);
    size_t ll = n - fl - 1;
    int64_t first = fl ? parse_u62(v, fl) : -1;
    int64_t last = ll ? parse_u62(dash + 1, ll) : -1;
    if ((fl && first < 0) || (ll && last < 0) || (!fl && !ll))
        return false;
    if (fl && ll && last < first)
        return false;
    req->range_first = first;
    req->range_last = last;
    return true;
}

/* Connection: a comma-separated list of tokens. */
static void parse_connection(const char *v, size_t n, bool *close, bool *keep)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
            i++;
        if (ieq(v + s, i - s, "close"))
            *close = true;
        else if (ieq(v + s, i - s, "keep-alive"))
            *keep = true;
    }
}

/* ---- the head -------------------------------------------------------- */

int rs_http_parse(const char *buf, size_t len, struct rs_http_request *req)
{
    return rs_http_parse_at(buf, len, (int64_t)time(NULL), req);
}

int rs_http_parse_at(const char *buf, size_t len, int64_t now,
                     struct rs_http_request *req)
{
    init_classes();
    memset(req, 0, offsetof(struct rs_http_request, path));
    req->path[0] = '\0';
    req->dir_slash = false;
    req->has_range = false;
    req->range_first = req->range_last = -1;
    req->has_ims = false;
    req->ims = -1;
    req->has_if_range = false;
    req->if_range = -1;

    const char *p = buf;
    /* Only the first RS_HTTP_HEAD_MAX bytes can belong to this head. */
    const char *end = buf + (len < RS_HTTP_HEAD_MAX ? len : RS_HTTP_HEAD_MAX);
    bool at_limit = len >= RS_HTTP_HEAD_MAX;

    /* Empty lines before the request line. */
    for (int k = 0; k <= MAX_LEADING_EMPTY; k++) {
        if (p < end && p[0] == '\r') {
            if (end - p < 2)
                return at_limit ? -431 : 0;
            if (p[1] != '\n')
                return -400;
            if (k == MAX_LEADING_EMPTY)
                return -400;
            p += 2;
        } else if (p < end && p[0] == '\n') {
            return -400;
        } else {
            break;
        }
    }

    long lf = find_lf(p, end);
    if (lf < 0) {
        int rc = check_partial_line(p, (size_t)(end - p));
        if (rc < 0)
            return rc;
        return at_limit ? -431 : 0;
    }
    long ln = strip_cr(p, lf);
    if (ln < 0)
        return -400;
    int rc = parse_request_line(p, (size_t)ln, req);
    if (rc < 0)
        return rc;
    p += lf + 1;

    int hosts = 0, lengths = 0, nheaders = 0;
    int64_t content_length = -1;
    bool conn_close = false, conn_keep = false, ranges = false, chunked = false;
    for (;;) {
        lf = find_lf(p, end);
        if (lf < 0)
            return at_limit ? -431 : 0;
        ln = strip_cr(p, lf);
        if (ln < 0)
            return -400;
        const char *line = p;
        p += lf + 1;
        if (ln == 0)
            break;
        if (++nheaders > RS_HTTP_HEADERS_MAX)
            return -431;
        /* name ":" OWS value OWS; no space before the colon, no folding. */
        const char *colon = memchr(line, ':', (size_t)ln);
        if (!colon || colon == line)
            return -400;
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1;
        const char *ve = line + ln;
        if (!all(line, nl, C_TOKEN) || !all(v, (size_t)(ve - v), C_VALUE))
            return -400;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        size_t vl = (size_t)(ve - v);

        if (ieq(line, nl, "host")) {
            hosts++;
        } else if (ieq(line, nl, "connection")) {
            parse_connection(v, vl, &conn_close, &conn_keep);
        } else if (ieq(line, nl, "content-length")) {
            int64_t cl = parse_u62(v, vl);
            if (cl < 0 || (lengths++ && cl != content_length))
                return -400;
            content_length = cl;
        } else if (ieq(line, nl, "transfer-encoding")) {
            chunked = true;
        } else if (ieq(line, nl, "range")) {
            /* Two Range headers: ignore both, serve the whole file. */
            if (ranges)
                req->has_range = false;
            else
                req->has_range = parse_range(v, vl, req);
            ranges = true;
        } else if (ieq(line, nl, "if-modified-since")) {
            /* A date in the future is invalid (RFC 9110 13.1.3): ignored. */
            int64_t t = rs_http_parse_date(v, vl, now);
            req->has_ims = t >= 0 && t <= now;
            req->ims = req->has_ims ? t : -1;
        } else if (ieq(line, nl, "if-range")) {
            /* An entity-tag or junk stays -1 and never matches; so do two
             * If-Range headers, whatever they say. */
            req->if_range = req->has_if_range ? -1 : rs_http_parse_date(v, vl, now);
            req->has_if_range = true;
        }
    }
    if (hosts > 1 || (hosts == 0 && req->version_minor == 1))
        return -400;
    if (chunked || content_length > 0)
        return -413;
    if (!req->has_range)
        req->range_first = req->range_last = -1;
    if (req->version_minor == 1)
        req->keep_alive = !conn_close;
    else
        req->keep_alive = conn_keep && !conn_close;
    return (int)(p - buf);
}

/* ---- dates ----------------------------------------------------------- */

static const char wdays[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), and its inverse. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

#define MAX_DATE 253402300799LL /* 9999-12-31 23:59:59 */

int rs_http_format_date(int64_t t, char out[30])
{
    if (t < 0 || t > MAX_DATE)
        return -1;
    int64_t days = t / 86400, secs = t % 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    const char *w = wdays[days % 7];
    const char *mn = months[m - 1];
    unsigned hh = (unsigned)(secs / 3600), mm = (unsigned)(secs / 60 % 60),
             ss = (unsigned)(secs % 60);
    char *o = out;
    memcpy(o, w, 3);
    o += 3;
    *o++ = ',';
    *o++ = ' ';
    *o++ = (char)('0' + d / 10);
    *o++ = (char)('0' + d % 10);
    *o++ = ' ';
    memcpy(o, mn, 3);
    o += 3;
    *o++ = ' ';
    *o++ = (char)('0' + y / 1000);
    *o++ = (char)('0' + y / 100 % 10);
    *o++ = (char)('0' + y / 10 % 10);
    *o++ = (char)('0' + y % 10);
    *o++ = ' ';
    *o++ = (char)('0' + hh / 10);
    *o++ = (char)('0' + hh % 10);
    *o++ = ':';
    *o++ = (char)('0' + mm / 10);
    *o++ = (char)('0' + mm % 10);
    *o++ = ':';
    *o++ = (char)('0' + ss / 10);
    *o++ = (char)('0' + ss % 10);
    memcpy(o, " GMT", 5);
    return 29;
}

static int two(const char *s)
{
    if (!is(s[0], C_DIGIT) || !is(s[1], C_DIGIT))
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* The index of the 3-letter name at s in names[count], or -1. HTTP-dates
 * are case-sensitive (RFC 9110 5.6.7). */
static int name3(const char *s, const char (*names)[4], int count)
{
    for (int i = 0; i < count; i++)
        if (memcmp(s, names[i], 3) == 0)
            return i;
    return -1;
}

/* "HH:MM:SS" at s: 0, or -1. */
static int parse_tod(const char *s, int *hh, int *mm, int *ss)
{
    if (s[2] != ':' || s[5] != ':')
        return -1;
    *hh = two(s);
    *mm = two(s + 3);
    *ss = two(s + 6);
    if (*hh < 0 || *hh > 23 || *mm < 0 || *mm > 59 || *ss < 0 || *ss > 60)
        return -1;
    return 0;
}

/* The pieces of a date, checked together: a real day of a year from 1970
 * to 9999 whose weekday is wd (0 = Thursday, as in wdays). Seconds since
 * the epoch, or -1. */
static int64_t to_time(int64_t y, int mon, int d, int hh, int mm, int ss, int wd)
{
    static const unsigned char mdays[12] = {31, 29, 31, 30, 31, 30,
                                            31, 31, 30, 31, 30, 31};
    if (y < 1970 || y > 9999 || mon < 1 || mon > 12 || d < 1 || d > mdays[mon - 1] ||
        wd < 0)
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mon, (unsigned)d);
    /* 29 February of a common year comes out as 1 March: refuse it. */
    int64_t cy;
    unsigned cm, cd;
    civil_from_days(days, &cy, &cm, &cd);
    if (cm != (unsigned)mon || cd != (unsigned)d)
        return -1;
    /* The weekday must agree with the date; a leap second counts as :59. */
    if (days % 7 != wd)
        return -1;
    return days * 86400 + hh * 3600 + mm * 60 + (ss == 60 ? 59 : ss);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" */
static int64_t parse_imf(const char *s)
{
    if (s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
        memcmp(s + 25, " GMT", 4) != 0)
        return -1;
    int hh, mm, ss, y1 = two(s + 12), y2 = two(s + 14);
    if (y1 < 0 || y2 < 0 || parse_tod(s + 17, &hh, &mm, &ss) < 0)
        return -1;
    return to_time(y1 * 100 + y2, name3(s + 8, months, 12) + 1, two(s + 5), hh, mm, ss,
                   name3(s, wdays, 7));
}

/* "Sunday, 06-Nov-94 08:49:37 GMT": the day's full name, a two-digit year. */
static int64_t parse_rfc850(const char *s, size_t len, int64_t now)
{
    static const char *const long_days[7] = {"Thursday", "Friday",  "Saturday", "Sunday",
                                             "Monday",   "Tuesday", "Wednesday"};
    size_t nl = len - 24; /* the name's length: the rest is fixed */
    int wd = -1;
    for (int i = 0; i < 7; i++)
        if (strlen(long_days[i]) == nl && memcmp(s, long_days[i], nl) == 0)
            wd = i;
    const char *p = s + nl;
    if (wd < 0 || p[0] != ',' || p[1] != ' ' || p[4] != '-' || p[8] != '-' ||
        p[11] != ' ' || memcmp(p + 20, " GMT", 4) != 0)
        return -1;
    int hh, mm, ss, yy = two(p + 9);
    if (yy < 0 || parse_tod(p + 12, &hh, &mm, &ss) < 0)
        return -1;
    /* RFC 9110 5.6.7: a year that looks more than 50 years ahead of now is
     * the most recent past year with those two digits; so the latest year
     * ending in yy that is at most 50 years ahead. */
    int64_t cy = 1970;
    unsigned cm, cd;
    if (now > 0)
        civil_from_days(now / 86400, &cy, &cm, &cd);
    int64_t y = cy + 50 - (cy + 50 - yy) % 100;
    return to_time(y, name3(p + 5, months, 12) + 1, two(p + 2), hh, mm, ss, wd);
}

/* "Sun Nov  6 08:49:37 1994": the day of the month padded with a space. */
static int64_t parse_asctime(const char *s)
{
    if (s[3] != ' ' || s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
        return -1;
    int d = s[8] == ' ' ? (is(s[9], C_DIGIT) ? s[9] - '0' : -1) : two(s + 8);
    int hh, mm, ss, y1 = two(s + 20), y2 = two(s + 22);
    if (y1 < 0 || y2 < 0 || parse_tod(s + 11, &hh, &mm, &ss) < 0)
        return -1;
    return to_time(y1 * 100 + y2, name3(s + 4, months, 12) + 1, d, hh, mm, ss,
                   name3(s, wdays, 7));
}

int64_t rs_http_parse_date(const char *s, size_t len, int64_t now)
{
    init_classes();
    if (len == 29 && s[3] == ',')
        return parse_imf(s);
    if (len == 24)
        return parse_asctime(s);
    if (len >= 30 && len <= 33) /* "Friday" to "Wednesday" */
        return parse_rfc850(s, len, now);
    return -1;
}

bool rs_http_range_applies(const struct rs_http_request *req, int64_t mtime, int64_t now)
{
    if (!req->has_range)
        return false;
    if (!req->has_if_range)
        return true;
    return req->if_range >= 0 && req->if_range == mtime && mtime < now;
}

/* ---- content types, reasons, ranges ---------------------------------- */

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/vnd.microsoft.icon"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"gz", "application/gzip"},
    {"zip", "application/zip"},
    {"tar", "application/x-tar"},
};

const char *rs_http_content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash)) {
        size_t n = strlen(dot + 1);
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (ieq(dot + 1, n, types[i].ext))
                return types[i].type;
    }
    return "application/octet-stream";
}

const char *rs_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 206:
        return "Partial Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int rs_http_range_resolve(const struct rs_http_request *req, int64_t size, int64_t *first,
                          int64_t *count)
{
    *first = 0;
    *count = size;
    if (!req->has_range)
        return 200;
    int64_t a = req->range_first, b = req->range_last;
    if (a < 0) {
        /* "-n": the last n bytes. */
        if (b == 0)
            return 416;
        if (size == 0)
            return 200; /* nothing to slice: the whole (empty) file */
        *first = b >= size ? 0 : size - b;
        *count = size - *first;
        return 206;
    }
    if (a >= size)
        return 416;
    int64_t last = (b < 0 || b >= size) ? size - 1 : b;
    *first = a;
    *count = last - a + 1;
    return 206;
}
