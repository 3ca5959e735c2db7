#include "stats.h"

#include <inttypes.h>

void rs_stats_add(struct rs_stats *sum, const struct rs_stats *s)
{
    sum->accepted += s->accepted;
    sum->rejected += s->rejected;
    sum->handoffs += s->handoffs;
    sum->closed += s->closed;
    sum->bytes_in += s->bytes_in;
    sum->dropped += s->dropped;
    sum->bytes_out += s->bytes_out;
    sum->recvs += s->recvs;
    sum->sends += s->sends;
    sum->round_trips += s->round_trips;
    sum->enobufs += s->enobufs;
    sum->copies += s->copies;
    sum->accept_pauses += s->accept_pauses;
    sum->accept_dropped += s->accept_dropped;
    sum->refused += s->refused;
    sum->idle_closed += s->idle_closed;
    sum->bundles += s->bundles;
    sum->zc_copied += s->zc_copied;
}

void rs_stats_print(FILE *out, const struct rs_stats *s)
{
    fprintf(out,
            "ringserve: stats: accepted=%" PRIu64 " rejected=%" PRIu64 " closed=%" PRIu64
            " bytes_in=%" PRIu64 " bytes_out=%" PRIu64 " dropped=%" PRIu64
            " recvs=%" PRIu64 " sends=%" PRIu64 " round_trips=%" PRIu64
            " enobufs=%" PRIu64 " copies=%" PRIu64 " accept_pauses=%" PRIu64
            " idle_closed=%" PRIu64 " bundles=%" PRIu64 " zc_copied=%" PRIu64
            " accept_dropped=%" PRIu64 " refused=%" PRIu64 " handoffs=%" PRIu64 "\n",
            s->accepted, s->rejected, s->closed, s->bytes_in, s->bytes_out, s->dropped,
            s->recvs, s->sends, s->round_trips, s->enobufs, s->copies, s->accept_pauses,
            s->idle_closed, s->bundles, s->zc_copied, s->accept_dropped, s->refused,
            s->handoffs);
}
