/* Counters a loop keeps; summed over loops and printed on exit. */
#ifndef RINGSERVE_STATS_H
#define RINGSERVE_STATS_H

#include <stdint.h>
#include <stdio.h>

struct rs_stats {
    uint64_t accepted; /* connections accepted */
    uint64_t rejected; /* closed at once: over --max-conns, or every table full */
    uint64_t handoffs; /* accepted here and handed to another loop */
    uint64_t closed;
    uint64_t bytes_in; /* received and handed to the protocol */
    uint64_t dropped;  /* received while stopping, and dropped */
    uint64_t bytes_out;
    uint64_t recvs;          /* receive completions carrying data */
    uint64_t sends;          /* send completions */
    uint64_t round_trips;    /* receive completions fully echoed back */
    uint64_t enobufs;        /* receives that found no free buffer */
    uint64_t copies;         /* chunks copied out of a lent buffer under pressure */
    uint64_t accept_pauses;  /* EMFILE/ENFILE back-offs */
    uint64_t accept_dropped; /* accepted, then closed: no memory for the connection */
    uint64_t refused; /* cancels, shutdowns, closes the backend refused (retried) */
    uint64_t idle_closed;
    uint64_t bundles;   /* io_uring recv completions that filled several buffers */
    uint64_t zc_copied; /* connections moved to plain sends: the kernel copied
                           their zero-copy send (a loopback peer) */
};

void rs_stats_add(struct rs_stats *sum, const struct rs_stats *s);
void rs_stats_print(FILE *out, const struct rs_stats *s);

#endif
