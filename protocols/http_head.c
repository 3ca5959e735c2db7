/* Response heads from pre-formatted pieces; see http_head.h. */
#include "http_head.h"

#include <assert.h>

#include "http_parse.h"

void rs_http_date_init(struct rs_http_date *d)
{
    d->sec = INT64_MIN;
    d->len = 0;
    d->line[0] = '\0';
}

const char *rs_http_date_line(struct rs_http_date *d, int64_t now, size_t *len)
{
    if (now != d->sec) {
        char *o = RS_HTTP_PUT_LIT(d->line, "Date: ");
        int n = rs_http_format_date(now, o);
        if (n == 29) {
            o = RS_HTTP_PUT_LIT(o + n, "\r\n");
            *o = '\0';
            d->len = (uint8_t)(o - d->line);
        } else {
            d->line[0] = '\0';
            d->len = 0;
        }
        d->sec = now;
    }
    *len = d->len;
    return d->line;
}

char *rs_http_put_u64(char *o, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *o++ = tmp[--n];
    return o;
}

void rs_http_file_head_make(struct rs_http_file_head *fh, const char *path, uint64_t size,
                            int64_t mtime)
{
    const char *type = rs_http_content_type(path);
    size_t tl = strlen(type);
    /* The longest type and every other line fit, with room to spare. */
    assert(tl <= 40);
    char *o = fh->text;
    o = RS_HTTP_PUT_LIT(o, "Content-Type: ");
    o = rs_http_put(o, type, tl);
    o = RS_HTTP_PUT_LIT(o, "\r\n");
    fh->ct_end = (uint8_t)(o - fh->text);
    o = RS_HTTP_PUT_LIT(o, "Content-Length: ");
    o = rs_http_put_u64(o, size);
    o = RS_HTTP_PUT_LIT(o, "\r\n");
    fh->cl_end = (uint8_t)(o - fh->text);
    /* No date an HTTP-date can write (before 1970, after 9999): no
     * Last-Modified at all, rather than one that is not the file's
     * (RFC 9110 8.8.2). */
    char *d = o + sizeof("Last-Modified: ") - 1;
    fh->dated = rs_http_format_date(mtime, d) == 29;
    if (fh->dated) {
        o = RS_HTTP_PUT_LIT(o, "Last-Modified: ");
        o = RS_HTTP_PUT_LIT(o + 29, "\r\n");
    }
    fh->lm_end = (uint8_t)(o - fh->text);
    o = RS_HTTP_PUT_LIT(o, "Accept-Ranges: bytes\r\n");
    fh->len = (uint8_t)(o - fh->text);
    assert(fh->len <= sizeof(fh->text));
    fh->size = size;
    fh->mtime = mtime;
    fh->made = true;
}

/* The status line and the Server line, whole, for each status sent. */
#define STATUS(code, reason) "HTTP/1.1 " #code " " reason "\r\nServer: ringserve\r\n"

char *rs_http_put_status(char *o, int status)
{
    switch (status) {
    case 200:
        return RS_HTTP_PUT_LIT(o, STATUS(200, "OK"));
    case 206:
        return RS_HTTP_PUT_LIT(o, STATUS(206, "Partial Content"));
    case 304:
        return RS_HTTP_PUT_LIT(o, STATUS(304, "Not Modified"));
    case 404:
        return RS_HTTP_PUT_LIT(o, STATUS(404, "Not Found"));
    default:
        break;
    }
    const char *reason = rs_http_reason(status);
    o = RS_HTTP_PUT_LIT(o, "HTTP/1.1 ");
    o = rs_http_put_u64(o, (uint64_t)(status < 0 ? 0 : status));
    *o++ = ' ';
    o = rs_http_put(o, reason, strlen(reason));
    return RS_HTTP_PUT_LIT(o, "\r\nServer: ringserve\r\n");
}
