/* Protocols: what a server does with the streams it accepts.
 *
 * The stream (stream.h) owns sockets, ops, the output queue and closing; a
 * protocol decides what to read, what to send and when to shut down, and
 * may open outbound streams of its own (the proxy). For each accepted
 * stream the core sets the protocol's callbacks (cbs), calls on_open, then
 * starts reading (unless on_open called rs_stream_read_stop). A protocol
 * keeps per-stream or per-session state behind stream->data and per-loop
 * state behind loop->proto_data.
 */
#ifndef RINGSERVE_PROTOCOL_H
#define RINGSERVE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#include "stream.h"

struct rs_loop;
struct rs_config;

struct rs_protocol {
    const char *name;
    /* The callbacks of accepted streams; on_data is required. on_open may
     * point a stream at other callbacks. */
    struct rs_stream_cbs cbs;
    /* A stream was accepted. Optional. */
    void (*on_open)(struct rs_stream *s);
    /* Per-loop set-up, before the first accept (0, or -errno with a
     * one-line reason in err; -EINVAL is a configuration error, exit 2).
     * Optional. */
    int (*loop_init)(struct rs_loop *loop, char *err, size_t errlen);
    /* A graceful stop began (rs_server_stop, SIGTERM): called once for
     * each accepted stream still open, on its loop's thread. The protocol
     * decides per connection: finish its work (keep the stream, answer
     * the request in progress, let a proxied transfer flow) and close it
     * when done, or end it now (rs_stream_close after a last reply,
     * rs_stream_reset to refuse visibly, rs_stream_stop for the default).
     * Whatever is still open at --drain-timeout is reset by the core.
     * Outbound streams are not told: they belong to the protocol's
     * sessions, which end them. rs_loop_stopping() is true from now on.
     * Optional: NULL means rs_stream_stop for every stream, outbound
     * ones included (see stream.h). With --drain-timeout=0 it is not
     * called: every stream is reset at once. */
    void (*on_stop)(struct rs_stream *s);
    /* Per-loop teardown, after the last stream closed and the last
     * request completed, on the loop's thread. Optional. */
    void (*loop_fini)(struct rs_loop *loop);
    /* Descriptors one accepted connection may hold at once, its own
     * included (a proxy session: 2; an HTTP request: its socket and the
     * file served). 0 means 1. The server's connection limit and default
     * --max-conns are divided by it, so that a full server rejects at the
     * door instead of failing the second descriptor. */
    uint8_t descriptors_per_conn;
    /* Descriptors each loop holds beyond its connections' (HTTP: its
     * open-file cache), reserved before the rest is divided among
     * connections. Optional (NULL: none). */
    uint32_t (*descriptors_per_loop)(const struct rs_config *cfg);
};

extern const struct rs_protocol rs_proto_echo;
extern const struct rs_protocol rs_proto_discard;
extern const struct rs_protocol rs_proto_chargen;
extern const struct rs_protocol rs_proto_proxy; /* proxy.c */
extern const struct rs_protocol rs_proto_http;  /* http.c: static files */

/* NULL when unknown. */
const struct rs_protocol *rs_protocol_find(const char *name);

#endif
