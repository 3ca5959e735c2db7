/* Response heads from pre-formatted pieces (protocols/http_head.c): the
 * Date line remade when the second changes and only then (the clock is an
 * argument: no sleep), a file's header lines, and a head made for one size
 * or mtime remade for another. The cache entry's head over a replaced or
 * refreshed file: test_fcache.c; whole responses: test_http.c and the e2e
 * suites. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http_head.h"

#define T0 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT */

static void test_date_line_follows_the_second(void **state)
{
    (void)state;
    struct rs_http_date d;
    rs_http_date_init(&d);
    size_t len;
    const char *l = rs_http_date_line(&d, T0, &len);
    assert_string_equal(l, "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    assert_int_equal(len, strlen(l));
    /* Within the second the line is not made again: a mark left in it
     * stays. */
    d.line[6] = '#';
    l = rs_http_date_line(&d, T0, &len);
    assert_int_equal(l[6], '#');
    /* The next second: made afresh. */
    l = rs_http_date_line(&d, T0 + 1, &len);
    assert_string_equal(l, "Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n");
    assert_int_equal(len, 37);
    /* A clock back by a second is another second too. */
    l = rs_http_date_line(&d, T0, &len);
    assert_string_equal(l, "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
    /* Midnight, a new day and month. */
    l = rs_http_date_line(&d, 788918399 + 1, &len);
    assert_string_equal(l, "Date: Sun, 01 Jan 1995 00:00:00 GMT\r\n");
}

/* No HTTP-date for the clock: no Date line at all, and back once there is. */
static void test_date_line_without_a_date(void **state)
{
    (void)state;
    struct rs_http_date d;
    rs_http_date_init(&d);
    size_t len;
    assert_string_equal(rs_http_date_line(&d, -5, &len), "");
    assert_int_equal(len, 0);
    assert_string_equal(rs_http_date_line(&d, 253402300800LL, &len), "");
    assert_int_equal(len, 0);
    rs_http_date_line(&d, T0, &len);
    assert_int_equal(len, 37);
}

static void test_file_head_lines(void **state)
{
    (void)state;
    struct rs_http_file_head fh = {0};
    rs_http_file_head_make(&fh, "dir.x/index.HTML", 1024, T0);
    assert_true(fh.made && fh.dated);
    const char *want = "Content-Type: text/html; charset=utf-8\r\n"
                       "Content-Length: 1024\r\n"
                       "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                       "Accept-Ranges: bytes\r\n";
    assert_int_equal(fh.len, strlen(want));
    assert_memory_equal(fh.text, want, fh.len);
    assert_memory_equal(fh.text + fh.ct_end, "Content-Length: 1024\r\n",
                        fh.cl_end - fh.ct_end);
    assert_memory_equal(fh.text + fh.cl_end, "Last-Modified: ", 15);
    assert_memory_equal(fh.text + fh.lm_end, "Accept-Ranges: bytes\r\n",
                        fh.len - fh.lm_end);
    /* No extension, no date (before 1970), an empty file. */
    rs_http_file_head_make(&fh, "a.b/noext", 0, -1);
    want = "Content-Type: application/octet-stream\r\nContent-Length: 0\r\n"
           "Accept-Ranges: bytes\r\n";
    assert_false(fh.dated);
    assert_int_equal(fh.lm_end, fh.cl_end);
    assert_int_equal(fh.len, strlen(want));
    assert_memory_equal(fh.text, want, fh.len);
    /* The largest size: 20 digits. */
    rs_http_file_head_make(&fh, "x.css", UINT64_MAX, T0);
    assert_memory_equal(fh.text + fh.ct_end, "Content-Length: 18446744073709551615\r\n",
                        fh.cl_end - fh.ct_end);
}

/* Made for one size and mtime, a head is remade for another, and kept for
 * the same. */
static void test_file_head_remade_when_the_file_differs(void **state)
{
    (void)state;
    struct rs_http_file_head fh = {0};
    const struct rs_http_file_head *p = rs_http_file_head_for(&fh, "a.txt", 6, T0);
    assert_memory_equal(p->text + p->ct_end, "Content-Length: 6\r\n", 19);
    fh.text[0] = '#'; /* a mark: kept while the file is the same */
    p = rs_http_file_head_for(&fh, "a.txt", 6, T0);
    assert_int_equal(p->text[0], '#');
    p = rs_http_file_head_for(&fh, "a.txt", 9, T0); /* another length */
    assert_int_equal(p->text[0], 'C');
    assert_memory_equal(p->text + p->ct_end, "Content-Length: 9\r\n", 19);
    p = rs_http_file_head_for(&fh, "a.txt", 9, T0 + 60); /* another mtime */
    assert_memory_equal(p->text + p->cl_end,
                        "Last-Modified: Sun, 06 Nov 1994 08:50:37 GMT\r\n", 46);
}

static void test_status_lines(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *line;
    } cases[] = {
        {200, "HTTP/1.1 200 OK\r\n"},
        {206, "HTTP/1.1 206 Partial Content\r\n"},
        {304, "HTTP/1.1 304 Not Modified\r\n"},
        {404, "HTTP/1.1 404 Not Found\r\n"},
        {416, "HTTP/1.1 416 Range Not Satisfiable\r\n"},
        {503, "HTTP/1.1 503 Service Unavailable\r\n"},
        {299, "HTTP/1.1 299 Unknown\r\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[128], want[128];
        char *end = rs_http_put_status(buf, cases[i].status);
        *end = '\0';
        strcpy(want, cases[i].line);
        strcat(want, "Server: ringserve\r\n");
        assert_string_equal(buf, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_date_line_follows_the_second),
        cmocka_unit_test(test_date_line_without_a_date),
        cmocka_unit_test(test_file_head_lines),
        cmocka_unit_test(test_file_head_remade_when_the_file_differs),
        cmocka_unit_test(test_status_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
