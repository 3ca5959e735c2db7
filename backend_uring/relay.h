/* A relayed receive's send put on the wire from the receive's completion
 * (relay.c). */
#ifndef RINGSERVE_URING_RELAY_H
#define RINGSERVE_URING_RELAY_H

#include <stdbool.h>
#include <stdint.h>

struct rs_loop;
struct rs_op;
struct ur_state;

/* The backend's submit (uring.c). */
int ur_submit(struct rs_loop *loop, struct rs_op *op);

/* A multishot recv flagged RS_OPF_RELAY completed with res > 0 bytes in
 * buffer bid (lent already), still armed: true when the core took it as a
 * relayed chunk and its send is submitted; false: complete it as usual. */
bool ur_relay_recv(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                   int32_t res, uint16_t bid);

#endif
