/* A server's counters: kept per loop, summed by rs_server_destroy into the
 * caller's struct rs_stats, and printed by ringserve as its final line. */
#ifndef RINGSERVE_PUBLIC_STATS_H
#define RINGSERVE_PUBLIC_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "export.h"

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
    uint64_t
        header_timeouts;   /* http: connections closed for a head not complete in time */
    uint64_t resets_in;    /* connections the peer reset (ECONNRESET, EPIPE) */
    uint64_t resets_out;   /* connections we reset (rs_stream_reset: the proxy's
                              other side was reset or failed) */
    uint64_t bundles;      /* io_uring recv completions that filled several buffers */
    uint64_t recvs_shared; /* io_uring buf-inc: receives whose bytes went into a
                              buffer behind an earlier receive's; receive
                              buffers used = recvs - recvs_shared */
    uint64_t cq_overflows; /* io_uring loop turns that found the CQ overflowed */
    uint64_t zc_copied;    /* connections moved to plain sends: the kernel copied
                              their zero-copy send (a loopback peer) */
    uint64_t connects;     /* outbound connections started (rs_stream_connect) */
    uint64_t connect_failed;  /* ...that failed: refused, unreachable, timed out */
    uint64_t connects_direct; /* ...on a direct descriptor (io_uring direct-socket) */
    uint64_t nodelay_failed;  /* outbound sockets left without TCP_NODELAY */
    /* The proxy protocol: */
    uint64_t sessions;    /* client connections proxied (an upstream was tried) */
    uint64_t bytes_up;    /* client -> upstream */
    uint64_t bytes_down;  /* upstream -> client */
    uint64_t turns;       /* loop turns: calls to the backend's run() */
    uint64_t completions; /* completions those turns dispatched */
    uint64_t waits;       /* the backend's wait calls: epoll_wait or
                             io_uring_enter (submissions included) */
    /* Gauges, filled in when a snapshot is posted (summed over loops). */
    uint64_t conns;   /* open connections */
    uint64_t lent;    /* receive buffers lent out (held by connections) */
    uint64_t starved; /* connections waiting for a free buffer */
    /* Counters added later (after the gauges, so the fields above keep
     * their offsets): */
    uint64_t cq_resizes; /* io_uring completion queues grown (resize feature) */
    uint64_t sendfile_worker_reads; /* sendfile parts whose file side a worker
                                       thread read: pages not known to be in
                                       the page cache (io_uring: file -> pipe
                                       splices in io-wq; epoll: pool jobs) */
    uint64_t sendfile_worker_sends; /* sendfile parts whose socket side a
                                       worker thread sent: io_uring's pipe ->
                                       socket splices in io-wq (a part the
                                       loop could not send itself), epoll's
                                       pool jobs */
    uint64_t send_timeouts;         /* http: responses cut (a reset) by --send-timeout */
    uint64_t keepalive_timeouts;    /* http: idle connections closed by
                                       --keepalive-timeout */
};

enum rs_stats_format { RS_STATS_TEXT, RS_STATS_JSON };

/* sum += s, counter by counter. */
RS_EXPORT void rs_stats_add(struct rs_stats *sum, const struct rs_stats *s);
/* The final line: "ringserve: stats: key=value ..." or one JSON object
 * {"type":"final",...}. */
RS_EXPORT void rs_stats_print(FILE *out, const struct rs_stats *s,
                              enum rs_stats_format format);

#endif
