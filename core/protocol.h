/* The built-in protocols (internal: the program picks one by name with
 * rs_protocol_find, declared with struct rs_protocol in
 * <ringserve/protocol.h>). */
#ifndef RINGSERVE_PROTOCOL_H
#define RINGSERVE_PROTOCOL_H

#include "ringserve/protocol.h"

extern const struct rs_protocol rs_proto_echo;
extern const struct rs_protocol rs_proto_discard;
extern const struct rs_protocol rs_proto_chargen;
extern const struct rs_protocol rs_proto_proxy; /* proxy.c */
extern const struct rs_protocol rs_proto_http;  /* http.c: static files */

#endif
