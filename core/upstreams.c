/* --upstream=HOST:PORT[,HOST:PORT...]: the proxy's upstreams, resolved
 * while the command line is parsed, so that a bad name is a usage error
 * (exit 2) rather than a failure of every session. */
#include "proxy.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One HOST:PORT or [V6]:PORT, resolved now (numeric or by name). */
static int parse_one(const char *s, size_t len, struct rs_upstream *u, char *err,
                     size_t errlen)
{
    char buf[300];
    if (len == 0 || len >= sizeof(buf)) {
        snprintf(err, errlen, "empty or too long address");
        return -EINVAL;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *host = buf, *port;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "'%s': expected [V6ADDR]:PORT", buf);
            return -EINVAL;
        }
        *close = '\0';
        host = buf + 1;
        port = close + 2;
    } else {
        char *colon = strrchr(buf, ':');
        if (!colon || colon == buf || memchr(buf, ':', (size_t)(colon - buf))) {
            snprintf(err, errlen, "'%s': expected HOST:PORT", buf);
            return -EINVAL;
        }
        *colon = '\0';
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 1 || p > 65535) {
        snprintf(err, errlen, "'%s': bad port", port);
        return -EINVAL;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "'%s': %s", host, gai_strerror(gai));
        return -EINVAL;
    }
    memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
    u->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int rs_proxy_parse_upstreams(struct rs_config *cfg, const char *list, char *err,
                             size_t errlen)
{
    cfg->nupstreams = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (cfg->nupstreams == RS_MAX_UPSTREAMS) {
            snprintf(err, errlen, "at most %d upstreams", RS_MAX_UPSTREAMS);
            return -EINVAL;
        }
        int rc = parse_one(p, len, &cfg->upstreams[cfg->nupstreams], err, errlen);
        if (rc < 0)
            return rc;
        cfg->nupstreams++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}
