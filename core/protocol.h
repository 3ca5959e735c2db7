/* Protocol handlers: what a connection does with the bytes it receives.
 *
 * The connection state machine (conn.c) owns sockets, ops, backpressure
 * and closing; a protocol only decides what to send. Received bytes arrive
 * in a buffer lent by the backend: the handler must either pass it on with
 * rs_conn_send_lent() (zero copy: released when that send completes) or
 * give it back with rs_conn_release(). Exactly one of the two, exactly once.
 */
#ifndef RINGSERVE_PROTOCOL_H
#define RINGSERVE_PROTOCOL_H

#include <stdint.h>

struct rs_conn;

struct rs_protocol {
    const char *name;
    /* The connection is open; may queue output (chargen). Optional. */
    void (*on_open)(struct rs_conn *c);
    /* len > 0 bytes at data, in lent buffer bid. Required. */
    void (*on_data)(struct rs_conn *c, const uint8_t *data, uint32_t len, uint16_t bid);
    /* All queued output was sent; may queue more. Optional. */
    void (*on_drained)(struct rs_conn *c);
    /* The connection is about to be freed. Optional. */
    void (*on_close)(struct rs_conn *c);
};

extern const struct rs_protocol rs_proto_echo;
extern const struct rs_protocol rs_proto_discard;
extern const struct rs_protocol rs_proto_chargen;

/* NULL when unknown. */
const struct rs_protocol *rs_protocol_find(const char *name);

#endif
