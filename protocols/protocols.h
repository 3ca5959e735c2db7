/* The protocols built into libringserve, for the table that names them
 * (table.c). Each is a client of the public API only: no file here
 * includes a header of core/ (tests/layout/check_protocol_includes.py). */
#ifndef RINGSERVE_PROTOCOLS_H
#define RINGSERVE_PROTOCOLS_H

#include <ringserve/protocol.h>

extern const struct rs_protocol rs_proto_echo;    /* inetd.c */
extern const struct rs_protocol rs_proto_discard; /* inetd.c */
extern const struct rs_protocol rs_proto_chargen; /* inetd.c */
extern const struct rs_protocol rs_proto_proxy;   /* proxy.c */
extern const struct rs_protocol rs_proto_http;    /* http.c */

#endif
