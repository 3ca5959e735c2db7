/* The relay's shortcut on io_uring: a receive's completion becomes the
 * send of the same buffer without a trip through the stream's callbacks.
 *
 * A relayed stream (rs_stream_relay: an echo, a proxy's two directions)
 * passes each received buffer to another stream's send. On a completion
 * backend the receive's CQE already holds everything that send needs —
 * the buffer, its length — so the generic path (complete the recv, the
 * stream's on_recv, rs_stream_write_lent, the submit through the ops
 * table) is a long way round for the common case. Here the CQE dispatch
 * offers the buffer to the core (rs_stream_relay_direct, core/backend.h),
 * which checks that nothing is in the way and records both the receive
 * and the send in the stream's own state; the send SQE is then written
 * at once. The core decides, so every contract stays the stream layer's:
 * anything unusual (a queue to keep in order, a destination closing or
 * shut down, a pool under pressure, a chunk past --max-pending, a recv's
 * last CQE, zero copy) takes the generic path. The send's CQE is an
 * ordinary one: the stream's send completion releases the buffer and
 * counts the round trip, as for any send.
 *
 * The epoll backend has no such path, and needs none: readiness says
 * only that a recv(2) would not block, and its completions are made by
 * the backend itself from those calls; the bytes are not "in hand" any
 * earlier than the core's on_recv. */
#include "relay.h"

#include <assert.h>

#include "backend.h"
#include "uring_state.h"

bool ur_relay_recv(struct rs_loop *loop, struct ur_state *st, struct rs_op *op,
                   int32_t res, uint16_t bid)
{
    /* A plain send (zero copy above the threshold has its own path), and
     * a free submission slot, checked before the core records anything:
     * once it did, the send must go out. */
    struct io_uring_sq *sq = &st->ring.sq;
    if ((uint32_t)res >= st->plain_send_max ||
        sq->sqe_tail - __atomic_load_n(sq->khead, __ATOMIC_ACQUIRE) >= sq->ring_entries)
        return false;
    struct rs_op *send = rs_stream_relay_direct(loop, op, (uint32_t)res, bid);
    if (!send)
        return false;
    int rc = ur_submit(loop, send);
    assert(rc == 0);
    (void)rc;
    return true;
}
