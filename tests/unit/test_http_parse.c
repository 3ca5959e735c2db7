/* The HTTP request-head parser (protocols/http_parse.c): every status it can
 * return, path normalization and the escapes it refuses, the limits, Range,
 * If-Modified-Since, keep-alive, dates, content types and range resolution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http_parse.h"

static struct rs_http_request req;

/* Parse a NUL-terminated head (no NUL inside). */
static int parse(const char *s)
{
    return rs_http_parse(s, strlen(s), &req);
}

/* Parse "GET <target> HTTP/1.1" with a Host. */
static int get(const char *target)
{
    char buf[RS_HTTP_HEAD_MAX];
    snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    return parse(buf);
}

static void test_http_parse_simple_get(void **state)
{
    (void)state;
    const char *s = "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n";
    assert_int_equal(parse(s), (int)strlen(s));
    assert_int_equal(req.method, RS_HTTP_GET);
    assert_int_equal(req.version_minor, 1);
    assert_true(req.keep_alive);
    assert_string_equal(req.path, "index.html");
    assert_false(req.dir_slash);
    assert_false(req.has_range);
    assert_int_equal(req.range_first, -1);
    assert_int_equal(req.range_last, -1);
    assert_false(req.has_ims);
}

static void test_http_parse_head_and_root(void **state)
{
    (void)state;
    const char *s = "HEAD / HTTP/1.0\r\n\r\n";
    assert_int_equal(parse(s), (int)strlen(s));
    assert_int_equal(req.method, RS_HTTP_HEAD);
    assert_int_equal(req.version_minor, 0);
    assert_false(req.keep_alive);
    assert_string_equal(req.path, "");
    assert_true(req.dir_slash);
}

static void test_http_parse_incomplete(void **state)
{
    (void)state;
    const char *s = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    size_t n = strlen(s);
    /* Every strict prefix asks for more. */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rs_http_parse(s, i, &req), 0);
    assert_int_equal(rs_http_parse(s, n, &req), (int)n);
}

static void test_http_parse_pipelined(void **state)
{
    (void)state;
    const char *s = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                    "HEAD /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    "GET /c";
    size_t n = strlen(s);
    int c1 = rs_http_parse(s, n, &req);
    assert_true(c1 > 0);
    assert_string_equal(req.path, "a");
    int c2 = rs_http_parse(s + c1, n - (size_t)c1, &req);
    assert_true(c2 > 0);
    assert_string_equal(req.path, "b");
    assert_int_equal(req.method, RS_HTTP_HEAD);
    assert_false(req.keep_alive);
    assert_int_equal(rs_http_parse(s + c1 + c2, n - (size_t)(c1 + c2), &req), 0);
}

static void test_http_parse_leading_empty_lines(void **state)
{
    (void)state;
    const char *s = "\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(parse(s), (int)strlen(s));
    assert_string_equal(req.path, "a");
    assert_int_equal(parse("\r\n\r\n\r\n\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"),
                     -400);
    assert_int_equal(parse("\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"), -400);
}

static void test_http_parse_malformed_400(void **state)
{
    (void)state;
    static const char *bad[] = {
        "GET /a HTTP/1.1\nHost: x\r\n\r\n",          /* bare LF ends the request line */
        "GET /a HTTP/1.1\r\nHost: x\n\r\n",          /* bare LF ends a header */
        "GET /a HTTP/1.1\r\nHost: x\r\n\n",          /* bare LF ends the head */
        "GET /a\r HTTP/1.1\r\nHost: x\r\n\r\n",      /* bare CR */
        "GET  /a HTTP/1.1\r\nHost: x\r\n\r\n",       /* two spaces */
        "GET /a  HTTP/1.1\r\nHost: x\r\n\r\n",       /* two spaces */
        "GET /a HTTP/1.1 \r\nHost: x\r\n\r\n",       /* trailing space */
        " GET /a HTTP/1.1\r\nHost: x\r\n\r\n",       /* leading space */
        "GET\t/a HTTP/1.1\r\nHost: x\r\n\r\n",       /* tab as separator */
        "GET /a\r\nHost: x\r\n\r\n",                 /* HTTP/0.9 */
        "GET /a HTTP/1\r\nHost: x\r\n\r\n",          /* bad version */
        "GET /a http/1.1\r\nHost: x\r\n\r\n",        /* version is case-sensitive */
        "GET /a HTTP/1.10\r\nHost: x\r\n\r\n",       /* bad version */
        "G(T /a HTTP/1.1\r\nHost: x\r\n\r\n",        /* not a token */
        "GET a HTTP/1.1\r\nHost: x\r\n\r\n",         /* not origin-form */
        "GET * HTTP/1.1\r\nHost: x\r\n\r\n",         /* asterisk-form */
        "GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n",      /* authority-form */
        "GET ftp://x/a HTTP/1.1\r\nHost: x\r\n\r\n", /* another scheme */
        "GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n", /* empty authority */
        "GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n",      /* fragment */
        "GET /a\\b HTTP/1.1\r\nHost: x\r\n\r\n",     /* raw backslash */
        "GET /a\"b HTTP/1.1\r\nHost: x\r\n\r\n",     /* raw quote */
        "GET /a<b> HTTP/1.1\r\nHost: x\r\n\r\n",     /* raw angle brackets */
        "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", /* raw UTF-8 */
        "GET /a%2 HTTP/1.1\r\nHost: x\r\n\r\n",      /* truncated escape */
        "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",     /* bad escape */
        "GET /a?q=%g0 HTTP/1.1\r\nHost: x\r\n\r\n",  /* bad escape in the query */
        "GET /a HTTP/1.1\r\n\r\n",                   /* HTTP/1.1 without Host */
        "GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",  /* two Hosts */
        "GET /a HTTP/1.0\r\nHost: x\r\nHOST: y\r\n\r\n",  /* two Hosts, 1.0 */
        "GET /a HTTP/1.1\r\nHost : x\r\n\r\n",            /* space before the colon */
        "GET /a HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",  /* obs-fold */
        "GET /a HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",  /* no colon */
        "GET /a HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",      /* empty name */
        "GET /a HTTP/1.1\r\nHost: x\r\nA\"b: v\r\n\r\n",  /* name not a token */
        "GET /a HTTP/1.1\r\nHost: x\r\nA: v\x01\r\n\r\n", /* control byte in a value */
        "GET /a HTTP/1.1\r\nHost: x\r\nA: v\x7f\r\n\r\n", /* DEL in a value */
        "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
        /* lengths disagree */
        ("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 00\r\n"
         "Content-Length: 1\r\n\r\n"),
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i]);
        if (rc != -400)
            fail_msg("case %zu (%s): %d, want -400", i, bad[i], rc);
    }
}

static void test_http_parse_nul_byte_400(void **state)
{
    (void)state;
    /* A raw NUL in the target, in a header name and in a header value. */
    static const char t[] = "GET /a\0b HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(rs_http_parse(t, sizeof(t) - 1, &req), -400);
    static const char h[] = "GET /a HTTP/1.1\r\nHo\0st: x\r\n\r\n";
    assert_int_equal(rs_http_parse(h, sizeof(h) - 1, &req), -400);
    static const char v[] = "GET /a HTTP/1.1\r\nHost: x\0y\r\n\r\n";
    assert_int_equal(rs_http_parse(v, sizeof(v) - 1, &req), -400);
    static const char m[] = "GE\0 /a HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(rs_http_parse(m, sizeof(m) - 1, &req), -400);
    /* Incomplete, but already wrong. */
    static const char p[] = "G\0";
    assert_int_equal(rs_http_parse(p, sizeof(p) - 1, &req), -400);
}

static void test_http_parse_method_405(void **state)
{
    (void)state;
    assert_int_equal(parse("POST /a HTTP/1.1\r\nHost: x\r\n\r\n"), -405);
    assert_int_equal(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"), -405);
    assert_int_equal(parse("get /a HTTP/1.1\r\nHost: x\r\n\r\n"),
                     -405); /* case-sensitive */
    assert_int_equal(parse("DELETE /a HTTP/1.1\r\nHost: x\r\n\r\n"), -405);
    /* A long method token is answered before its line ends. */
    assert_int_equal(parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ"), -405);
    assert_int_equal(parse("ABCDEFGH"), 0);
}

static void test_http_parse_version_505(void **state)
{
    (void)state;
    assert_int_equal(parse("GET /a HTTP/2.0\r\nHost: x\r\n\r\n"), -505);
    assert_int_equal(parse("GET /a HTTP/1.2\r\nHost: x\r\n\r\n"), -505);
    assert_int_equal(parse("GET /a HTTP/0.9\r\nHost: x\r\n\r\n"), -505);
}

static void test_http_parse_body_413(void **state)
{
    (void)state;
    assert_int_equal(parse("GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"),
                     -413);
    assert_int_equal(
        parse("GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"), -413);
    assert_int_equal(
        parse("GET /a HTTP/1.1\r\nHost: x\r\ntransfer-encoding: identity\r\n\r\n"), -413);
    /* A zero length is no body. */
    const char *s = "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    assert_int_equal(parse(s), (int)strlen(s));
    s = "GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\ncontent-length:  0 \r\n\r\n";
    assert_int_equal(parse(s), (int)strlen(s));
}

static void test_http_parse_target_414(void **state)
{
    (void)state;
    static char buf[3 * RS_HTTP_HEAD_MAX];
    /* A target of exactly RS_HTTP_PATH_MAX bytes is fine. */
    char target[RS_HTTP_PATH_MAX + 2];
    target[0] = '/';
    memset(target + 1, 'a', RS_HTTP_PATH_MAX - 1);
    target[RS_HTTP_PATH_MAX] = '\0';
    int n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    assert_int_equal(parse(buf), n);
    assert_int_equal(strlen(req.path), RS_HTTP_PATH_MAX - 1);
    /* One more byte is 414, complete or not. */
    target[RS_HTTP_PATH_MAX] = 'a';
    target[RS_HTTP_PATH_MAX + 1] = '\0';
    snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    assert_int_equal(parse(buf), -414);
    assert_int_equal(rs_http_parse(buf, 4 + RS_HTTP_PATH_MAX + 1, &req), -414);
    /* A query counts in the target. */
    target[RS_HTTP_PATH_MAX - 10] = '?';
    snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    assert_int_equal(parse(buf), -414);
    /* A huge target that never ends. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    assert_int_equal(rs_http_parse(buf, sizeof(buf), &req), -414);
}

static void test_http_parse_head_431(void **state)
{
    (void)state;
    static char buf[2 * RS_HTTP_HEAD_MAX];
    /* A head of exactly RS_HTTP_HEAD_MAX bytes is fine. */
    const char *pre = "GET /a HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    size_t pl = strlen(pre);
    size_t pad = RS_HTTP_HEAD_MAX - pl - 4;
    memcpy(buf, pre, pl);
    memset(buf + pl, 'p', pad);
    memcpy(buf + pl + pad, "\r\n\r\n", 4);
    assert_int_equal(rs_http_parse(buf, RS_HTTP_HEAD_MAX, &req), RS_HTTP_HEAD_MAX);
    /* One byte more is 431, and so is the incomplete prefix of that size. */
    memset(buf + pl, 'p', pad + 1);
    memcpy(buf + pl + pad + 1, "\r\n\r\n", 4);
    assert_int_equal(rs_http_parse(buf, RS_HTTP_HEAD_MAX + 1, &req), -431);
    assert_int_equal(rs_http_parse(buf, RS_HTTP_HEAD_MAX, &req), -431);
    assert_int_equal(rs_http_parse(buf, RS_HTTP_HEAD_MAX - 1, &req), 0);
    /* A request line without end, past the limit, with a short target. */
    memset(buf, 'v', sizeof(buf));
    memcpy(buf, "GET /a ", 7);
    assert_int_equal(rs_http_parse(buf, sizeof(buf), &req), -431);
    /* Too many header lines. */
    char *p = buf;
    p += sprintf(p, "GET /a HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < RS_HTTP_HEADERS_MAX; i++)
        p += sprintf(p, "A: b\r\n");
    p += sprintf(p, "\r\n");
    assert_int_equal(parse(buf), -431);
}

struct path_case {
    const char *target;
    int rc;           /* 0: parsed */
    const char *path; /* when parsed */
    bool dir;
};

static void test_http_parse_paths(void **state)
{
    (void)state;
    static const struct path_case cases[] = {
        {"/", 0, "", true},
        {"/a", 0, "a", false},
        {"/a/", 0, "a", true},
        {"/a/b/c.txt", 0, "a/b/c.txt", false},
        {"/a.b/c.d/", 0, "a.b/c.d", true}, /* dots inside names: the short way */
        {"/x/.hidden", 0, "x/.hidden",
         false}, /* a name starting with '.': the long way */
        {"/x/.hidden/", 0, "x/.hidden", true},
        {"//a///b//", 0, "a/b", true},
        {"/./a/./b/.", 0, "a/b", true},
        {"/a/../b", 0, "b", false},
        {"/a/b/../../c", 0, "c", false},
        {"/a/..", 0, "", true},
        {"/a/b/..", 0, "a", true},
        {"/..", -404, NULL, false},
        {"/../a", -404, NULL, false},
        {"/a/../..", -404, NULL, false},
        {"/a/../../etc/passwd", -404, NULL, false},
        {"/./..", -404, NULL, false},
        {"/%2e%2e", -404, NULL, false},
        {"/%2E%2E/etc/passwd", -404, NULL, false},
        {"/.%2e/x", -404, NULL, false},
        {"/a/%2e%2e/%2e%2e/x", -404, NULL, false},
        {"/..%2f..%2fetc%2fpasswd", -404, NULL, false},
        {"/a%2f..%2f..%2fb", -404, NULL, false},
        {"/a%2fb", 0, "a/b", false},
        {"/a%2f", 0, "a", true},
        {"/%2fetc%2fpasswd", 0, "etc/passwd", false}, /* a decoded leading '/' */
        {"/a%2f%2e%2e%2fb", 0, "b", false},
        {"/%2e", 0, "", true},
        {"/...", 0, "...", false}, /* a name, not a dot segment */
        {"/..a", 0, "..a", false},
        {"/a..", 0, "a..", false},
        {"/a%20b", 0, "a b", false},
        {"/%41", 0, "A", false},
        {"/a%00", -404, NULL, false},
        {"/a%00.html", -404, NULL, false},
        {"/%0a", -404, NULL, false},
        {"/%7f", -404, NULL, false},
        {"/a%5c..%5c..%5cb", -404, NULL, false}, /* encoded backslashes */
        {"/a%5cb", -404, NULL, false},
        {"/a?x=1", 0, "a", false},
        {"/a/?x=/../..", 0, "a", true},
        {"/?", 0, "", true},
        {"/a?b?c/d", 0, "a", false},
        {"/a;b=c", 0, "a;b=c", false},
        {"/~user/:@!$&'()*+,;=", 0, "~user/:@!$&'()*+,;=", false},
        {"/%c3%a9", 0, "\xc3\xa9", false},
        {"http://host/a/b", 0, "a/b", false},
        {"HTTP://host:8080/a", 0, "a", false},
        {"http://host", 0, "", true},
        {"http://host?q", 0, "", true},
        {"http://host/", 0, "", true},
        {"http://host/../etc/passwd", -404, NULL, false},
        {"http://host/%2e%2e/x", -404, NULL, false},
        {"http://user@host/a", 0, "a", false},
        {"http://ho%2fst/a", -400, NULL, false},
        /* IPv6 literals (RFC 3986 IP-literal), with and without a port. */
        {"http://[::1]:8080/x", 0, "x", false},
        {"http://[::1]/x", 0, "x", false},
        {"http://[::1]", 0, "", true},
        {"http://[::1]?q", 0, "", true},
        {"http://[2001:db8::a:1]:80/a/b", 0, "a/b", false},
        {"http://[::ffff:192.0.2.1]/x", 0, "x", false},
        {"http://user@[::1]:8/x", 0, "x", false},
        {"http://[::1/x", -400, NULL, false},
        {"http://[]/x", -400, NULL, false},
        {"http://[::1]x/y", -400, NULL, false},
        {"http://[::g]/x", -400, NULL, false},
        {"http://[v1.x]/x", -400, NULL, false},
        {"http://[fe80::1%25eth0]/x", -400, NULL, false},
        {"http://h[::1]/x", -400, NULL, false},
        {"http://]/x", -400, NULL, false},
        {"/[::1]", -400, NULL, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct path_case *c = &cases[i];
        int rc = get(c->target);
        if (c->rc != 0) {
            if (rc != c->rc)
                fail_msg("%s: %d, want %d", c->target, rc, c->rc);
            continue;
        }
        if (rc <= 0)
            fail_msg("%s: %d, want a parse", c->target, rc);
        if (strcmp(req.path, c->path) != 0)
            fail_msg("%s: path \"%s\", want \"%s\"", c->target, req.path, c->path);
        if (req.dir_slash != c->dir)
            fail_msg("%s: dir_slash %d, want %d", c->target, req.dir_slash, c->dir);
    }
}

static void test_http_parse_keep_alive(void **state)
{
    (void)state;
    struct {
        const char *head;
        bool keep;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade,close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: x\r\nConnection: closed\r\n\r\n", true},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nconnection:Keep-Alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nHost: x\r\nConnection: te\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = parse(cases[i].head);
        if (rc <= 0 || req.keep_alive != cases[i].keep)
            fail_msg("case %zu: rc %d keep_alive %d, want %d", i, rc, req.keep_alive,
                     cases[i].keep);
    }
}

static void test_http_parse_range(void **state)
{
    (void)state;
    struct {
        const char *value;
        bool has;
        int64_t first, last;
    } cases[] = {
        {"bytes=0-99", true, 0, 99},
        {"bytes=5-5", true, 5, 5},
        {"bytes=100-", true, 100, -1},
        {"bytes=-500", true, -1, 500},
        {"bytes=-0", true, -1, 0},
        {"BYTES=1-2", true, 1, 2},
        {"bytes=999999999999999999-", true, 999999999999999999LL, -1},
        {"bytes=9-5", false, -1, -1}, /* last < first */
        {"bytes=-", false, -1, -1},
        {"bytes=0-1,3-4", false, -1, -1}, /* several ranges: ignored */
        {"bytes= 0-1", false, -1, -1},
        {"bytes=a-b", false, -1, -1},
        {"bytes=+1-2", false, -1, -1},
        {"bytes=1--2", false, -1, -1},
        {"bytes=1-2-", false, -1, -1},
        {"bytes=1000000000000000000-", false, -1, -1}, /* 19 digits */
        {"items=0-1", false, -1, -1},
        {"bytes", false, -1, -1},
        {"", false, -1, -1},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), "GET /f HTTP/1.1\r\nHost: x\r\nRange: %s\r\n\r\n",
                 cases[i].value);
        int rc = parse(buf);
        if (rc <= 0 || req.has_range != cases[i].has ||
            req.range_first != cases[i].first || req.range_last != cases[i].last)
            fail_msg("\"%s\": rc %d has %d first %lld last %lld", cases[i].value, rc,
                     req.has_range, (long long)req.range_first,
                     (long long)req.range_last);
    }
    /* Two Range headers: both ignored. */
    assert_true(parse("GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: "
                      "bytes=2-3\r\n\r\n") > 0);
    assert_false(req.has_range);
    assert_int_equal(req.range_first, -1);
}

static void test_http_range_resolve(void **state)
{
    (void)state;
    struct {
        int64_t a, b, size;
        bool has;
        int status;
        int64_t first, count;
    } cases[] = {
        {-1, -1, 100, false, 200, 0, 100},  {0, 99, 100, true, 206, 0, 100},
        {0, 0, 100, true, 206, 0, 1},       {10, 19, 100, true, 206, 10, 10},
        {90, 1000, 100, true, 206, 90, 10}, {99, -1, 100, true, 206, 99, 1},
        {100, -1, 100, true, 416, 0, 100},  {100, 200, 100, true, 416, 0, 100},
        {-1, 10, 100, true, 206, 90, 10},   {-1, 1000, 100, true, 206, 0, 100},
        {-1, 0, 100, true, 416, 0, 100},    {0, -1, 0, true, 416, 0, 0},
        {-1, 5, 0, true, 200, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rs_http_request r = {0};
        r.has_range = cases[i].has;
        r.range_first = cases[i].a;
        r.range_last = cases[i].b;
        int64_t first, count;
        int st = rs_http_range_resolve(&r, cases[i].size, &first, &count);
        if (st != cases[i].status ||
            (st != 416 && (first != cases[i].first || count != cases[i].count)))
            fail_msg("case %zu: %d %lld+%lld", i, st, (long long)first, (long long)count);
    }
}

/* 2026-12-07 04:00:00 UTC: the clock of the tests that need one. */
#define NOW 1796616000LL

static int parse_now(const char *s, int64_t now)
{
    return rs_http_parse_at(s, strlen(s), now, &req);
}

static void test_http_parse_if_modified_since(void **state)
{
    (void)state;
    assert_true(parse("GET /f HTTP/1.1\r\nHost: x\r\n"
                      "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n") > 0);
    assert_true(req.has_ims);
    assert_int_equal(req.ims, 784111777);
    /* RFC 9110 5.6.7: all three forms of HTTP-date. */
    assert_true(parse("GET /f HTTP/1.1\r\nHost: x\r\n"
                      "If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\n\r\n") > 0);
    assert_true(req.has_ims);
    assert_int_equal(req.ims, 784111777);
    assert_true(parse("GET /f HTTP/1.1\r\nHost: x\r\n"
                      "If-Modified-Since: Sun Nov  6 08:49:37 1994\r\n\r\n") > 0);
    assert_true(req.has_ims);
    assert_int_equal(req.ims, 784111777);
    /* Junk is ignored, not an error. */
    assert_true(
        parse("GET /f HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: yesterday\r\n\r\n") > 0);
    assert_false(req.has_ims);
    /* A date later than the server's clock is invalid (RFC 9110 13.1.3):
     * ignored. The second itself is not in the future. */
    const char *at_now = "GET /f HTTP/1.1\r\nHost: x\r\n"
                         "If-Modified-Since: Mon, 07 Dec 2026 04:00:00 GMT\r\n\r\n";
    assert_true(parse_now(at_now, NOW) > 0);
    assert_true(req.has_ims);
    assert_int_equal(req.ims, NOW);
    assert_true(parse_now(at_now, NOW - 1) > 0);
    assert_false(req.has_ims);
    assert_int_equal(req.ims, -1);
    assert_true(parse("GET /f HTTP/1.1\r\nHost: x\r\n"
                      "If-Modified-Since: Fri, 31 Dec 9999 23:59:59 GMT\r\n\r\n") > 0);
    assert_false(req.has_ims);
}

static void test_http_parse_if_range(void **state)
{
    (void)state;
    const int64_t mtime = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    assert_true(parse_now("GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n"
                          "If-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
                          NOW) > 0);
    assert_true(req.has_range);
    assert_true(req.has_if_range);
    assert_int_equal(req.if_range, mtime);
    /* The date matches: the Range applies. */
    assert_true(rs_http_range_applies(&req, mtime, NOW));
    /* The file changed (any other second, before or after): it does not. */
    assert_false(rs_http_range_applies(&req, mtime + 1, NOW));
    assert_false(rs_http_range_applies(&req, mtime - 1, NOW));
    /* A file without a date (-1) matches nothing. */
    assert_false(rs_http_range_applies(&req, -1, NOW));
    /* Not a strong validator: the file's second has not ended yet, it may
     * still change within it (RFC 9110 8.8.2.2). */
    assert_false(rs_http_range_applies(&req, mtime, mtime));
    assert_true(rs_http_range_applies(&req, mtime, mtime + 1));

    /* The other date forms are dates too. */
    assert_true(parse_now("GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n"
                          "If-Range: Sunday, 06-Nov-94 08:49:37 GMT\r\n\r\n",
                          NOW) > 0);
    assert_true(rs_http_range_applies(&req, mtime, NOW));
    assert_true(parse_now("GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n"
                          "If-Range: Sun Nov  6 08:49:37 1994\r\n\r\n",
                          NOW) > 0);
    assert_true(rs_http_range_applies(&req, mtime, NOW));

    /* An entity-tag (this server sends none), junk, an empty value, two
     * If-Range headers (even agreeing ones): never a match. */
    static const char *const never[] = {
        "If-Range: \"abc\"\r\n",
        "If-Range: W/\"abc\"\r\n",
        "If-Range: yesterday\r\n",
        "If-Range:\r\n",
        ("If-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
         "If-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n"), /* two headers, one entry */
    };
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        char buf[512];
        snprintf(buf, sizeof(buf),
                 "GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n%s\r\n", never[i]);
        assert_true(parse_now(buf, NOW) > 0);
        assert_true(req.has_range);
        assert_true(req.has_if_range);
        assert_int_equal(req.if_range, -1);
        if (rs_http_range_applies(&req, mtime, NOW))
            fail_msg("%s: the Range applies", never[i]);
    }
    /* Without If-Range a Range applies whatever the file's date; without
     * a Range there is nothing to apply. */
    assert_true(parse_now("GET /f HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n", NOW) >
                0);
    assert_false(req.has_if_range);
    assert_true(rs_http_range_applies(&req, -1, NOW));
    assert_true(parse_now("GET /f HTTP/1.1\r\nHost: x\r\n"
                          "If-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
                          NOW) > 0);
    assert_false(rs_http_range_applies(&req, mtime, NOW));
}

static void test_http_date(void **state)
{
    (void)state;
    char out[30];
    assert_int_equal(rs_http_format_date(784111777, out), 29);
    assert_string_equal(out, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(rs_http_format_date(0, out), 29);
    assert_string_equal(out, "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_int_equal(rs_http_format_date(951782400, out), 29);
    assert_string_equal(out, "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_int_equal(rs_http_format_date(253402300799LL, out), 29);
    assert_string_equal(out, "Fri, 31 Dec 9999 23:59:59 GMT");
    /* Out of range: -1, and nothing written (the caller must not print
     * what it did not get). */
    static const int64_t outside[] = {-1,
                                      -315619200 /* 1960 */,
                                      253402300800LL,
                                      253402300800LL + 86400 * 366 /* 10001 */,
                                      INT64_MIN,
                                      INT64_MAX};
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        memset(out, 'x', sizeof(out));
        assert_int_equal(rs_http_format_date(outside[i], out), -1);
        for (size_t k = 0; k < sizeof(out); k++)
            assert_int_equal(out[k], 'x');
    }
    /* Round trips over a spread of times, one a day apart plus noise. */
    for (int64_t t = 0; t < 4102444800LL; t += 86400 * 37 + 3671) {
        assert_int_equal(rs_http_format_date(t, out), 29);
        assert_int_equal(rs_http_parse_date(out, 29, NOW), t);
    }
    static const char *bad[] = {
        "Sun, 06 Nov 1994 08:49:37 UTC", "Mon, 06 Nov 1994 08:49:37 GMT", /* weekday */
        "Sun, 6 Nov 1994 08:49:37 GMT",  "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT", "Sun, 06 Xyz 1994 08:49:37 GMT",
        "Thu, 29 Feb 2001 00:00:00 GMT", "Wed, 31 Dec 1969 23:59:59 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 GMT ",
        "sun, 06 Nov 1994 08:49:37 GMT", "Sun, 06 nov 1994 08:49:37 GMT", /* case */
        "Sun, 06 Nov 1994 08:49:37 gmt",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rs_http_parse_date(bad[i], strlen(bad[i]), NOW) != -1)
            fail_msg("\"%s\" parsed", bad[i]);
}

/* RFC 850 and asctime dates, their bounds and their two-digit years. */
static void test_http_date_forms(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t now, want;
    } cases[] = {
        {"Sunday, 06-Nov-94 08:49:37 GMT", NOW, 784111777},
        {"Sun Nov  6 08:49:37 1994", NOW, 784111777},
        {"Sun Nov 06 08:49:37 1994", NOW, 784111777},
        {"Thursday, 01-Jan-70 00:00:00 GMT", 86400, 0}, /* in 2026 it is 2070 */
        {"Thu Jan  1 00:00:00 1970", NOW, 0},
        {"Fri Dec 31 23:59:59 9999", NOW, 253402300799LL},
        {"Wednesday, 09-Sep-26 01:46:40 GMT", NOW, 1788918400},
        {"Tuesday, 29-Feb-00 00:00:00 GMT", NOW, 951782400},
        {"Tue Feb 29 00:00:00 2000", NOW, 951782400},
        {"Sun Nov  6 08:49:60 1994", NOW, 784111799}, /* a leap second is :59 */
        /* Two-digit years (RFC 9110 5.6.7): more than 50 years ahead of the
         * clock means the century before. In 2026, "76" is 2076 and "77"
         * is 1977; in 1994, "44" is 2044 and "45" is 1945 (before 1970:
         * refused). */
        {"Saturday, 01-Jan-77 00:00:00 GMT", NOW, 220924800},
        {"Wednesday, 01-Jan-76 00:00:00 GMT", NOW, 3345062400LL},
        {"Friday, 01-Jan-44 00:00:00 GMT", 784111777, 2335219200LL},
        {"Monday, 01-Jan-45 00:00:00 GMT", 784111777, -1},
        /* Malformed: each breaks one rule. */
        {"Sun, 06-Nov-94 08:49:37 GMT", NOW, -1},      /* short day name */
        {"Sunday, 06-Nov-1994 08:49:37 GMT", NOW, -1}, /* four-digit year */
        {"Sunday, 6-Nov-94 08:49:37 GMT", NOW, -1},
        {"Sunday 06-Nov-94 08:49:37 GMT", NOW, -1},
        {"Sunday, 06 Nov 94 08:49:37 GMT", NOW, -1},
        {"Monday, 06-Nov-94 08:49:37 GMT", NOW, -1}, /* weekday */
        {"Sunday, 06-Nov-94 08:49:37 UTC", NOW, -1},
        {"sunday, 06-Nov-94 08:49:37 GMT", NOW, -1},
        {"Funday, 06-Nov-94 08:49:37 GMT", NOW, -1},
        {"Sunday, 31-Nov-94 08:49:37 GMT", NOW, -1},
        {"Sun Nov 6 08:49:37 1994", NOW, -1}, /* no padding */
        {"Sun Nov  6 08:49:37 1994 ", NOW, -1},
        {"Sun Nov  6 08:49:37 94", NOW, -1},
        {"Mon Nov  6 08:49:37 1994", NOW, -1},
        {"Sun Nov  6 8:49:37 1994 ", NOW, -1},
        {"Sun Nov x6 08:49:37 1994", NOW, -1},
        {"Sun Nov  6 08:49:37 GMT", NOW, -1},
        {"Wed Dec 31 23:59:59 1969", NOW, -1},
        {"Thu Feb 29 00:00:00 2001", NOW, -1},
        {"Sun Nov  6 24:00:00 1994", NOW, -1},
        {"", NOW, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t t = rs_http_parse_date(cases[i].s, strlen(cases[i].s), cases[i].now);
        if (t != cases[i].want)
            fail_msg("\"%s\": %lld, want %lld", cases[i].s, (long long)t,
                     (long long)cases[i].want);
    }
}

static void test_http_content_type_and_reason(void **state)
{
    (void)state;
    assert_string_equal(rs_http_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(rs_http_content_type("a/b.PNG"), "image/png");
    assert_string_equal(rs_http_content_type("a.b/c"), "application/octet-stream");
    assert_string_equal(rs_http_content_type(""), "application/octet-stream");
    assert_string_equal(rs_http_content_type("x.tar.gz"), "application/gzip");
    assert_string_equal(rs_http_content_type(".css"), "text/css; charset=utf-8");
    static const int st[] = {200, 206, 304, 400, 404, 405, 413, 414, 416, 431, 505};
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++)
        assert_string_not_equal(rs_http_reason(st[i]), "Unknown");
    assert_string_equal(rs_http_reason(200), "OK");
    assert_string_equal(rs_http_reason(999), "Unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_parse_simple_get),
        cmocka_unit_test(test_http_parse_head_and_root),
        cmocka_unit_test(test_http_parse_incomplete),
        cmocka_unit_test(test_http_parse_pipelined),
        cmocka_unit_test(test_http_parse_leading_empty_lines),
        cmocka_unit_test(test_http_parse_malformed_400),
        cmocka_unit_test(test_http_parse_nul_byte_400),
        cmocka_unit_test(test_http_parse_method_405),
        cmocka_unit_test(test_http_parse_version_505),
        cmocka_unit_test(test_http_parse_body_413),
        cmocka_unit_test(test_http_parse_target_414),
        cmocka_unit_test(test_http_parse_head_431),
        cmocka_unit_test(test_http_parse_paths),
        cmocka_unit_test(test_http_parse_keep_alive),
        cmocka_unit_test(test_http_parse_range),
        cmocka_unit_test(test_http_range_resolve),
        cmocka_unit_test(test_http_parse_if_modified_since),
        cmocka_unit_test(test_http_parse_if_range),
        cmocka_unit_test(test_http_date),
        cmocka_unit_test(test_http_date_forms),
        cmocka_unit_test(test_http_content_type_and_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
