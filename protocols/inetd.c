/* The three built-in inetd protocols, each a few lines on the public
 * stream API. (The proxy, a two-socket protocol, is in proxy.c.) */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <ringserve.h>

#include "protocols.h"

/* echo (RFC 862): send back what arrives, from the very buffer it arrived
 * in: the stream relays to itself (rs_stream_relay), so the stream layer
 * writes each received buffer to its own output queue without a callback
 * per chunk. No copy in user space; the buffer returns to the pool when
 * the send completes. The relay keeps the backpressure (no reading while
 * more than --max-pending bytes wait to be sent, reading again once half
 * of it went out) and, without an on_eof, the half-close: our side shuts
 * down after the last byte. */
static void echo_open(struct rs_stream *s)
{
    /* Cannot fail on a fresh stream; if it did, echo_data does the same
     * work by hand. */
    (void)rs_stream_relay(s, s, NULL);
}

/* Only without the relay: the same thing, one callback per chunk. */
static void echo_data(struct rs_stream *s, const uint8_t *data, uint32_t len,
                      uint16_t bid)
{
    rs_stream_write_lent(s, data, len, bid);
    if (rs_stream_pending(s) > rs_loop_config(rs_stream_loop(s))->max_pending)
        rs_stream_read_stop(s);
}

static void echo_writable(struct rs_stream *s)
{
    rs_stream_read_start(s);
}

const struct rs_protocol rs_proto_echo = {
    .name = "echo",
    .cbs = {.on_data = echo_data, .on_writable = echo_writable},
    .on_open = echo_open};

/* discard (RFC 863): read and drop; stresses the receive path only. */
static void discard_data(struct rs_stream *s, const uint8_t *data, uint32_t len,
                         uint16_t bid)
{
    (void)data;
    (void)len;
    rs_stream_release(s, bid);
}

const struct rs_protocol rs_proto_discard = {.name = "discard",
                                             .cbs = {.on_data = discard_data}};

/* chargen (RFC 864): lines of 72 characters from the 95 printable ASCII
 * characters, each line starting one character later, CR LF after each.
 * The pattern repeats every 95 lines, so one static table of 95 lines
 * (plus enough of a second copy to start anywhere) serves every stream
 * without copying: sends point straight into it. */
#define CG_LINE   74u
#define CG_PERIOD (95u * CG_LINE)
#define CG_CHUNK  65536u
static uint8_t cg_table[CG_PERIOD + CG_CHUNK];
static pthread_once_t cg_once = PTHREAD_ONCE_INIT;

static void cg_fill(void)
{
    for (uint32_t i = 0; i < sizeof(cg_table); i++) {
        uint32_t line = (i / CG_LINE) % 95u, col = i % CG_LINE;
        if (col == 72)
            cg_table[i] = '\r';
        else if (col == 73)
            cg_table[i] = '\n';
        else
            cg_table[i] = (uint8_t)(' ' + (line + col) % 95u);
    }
}

/* Loops on several threads share the table: fill it exactly once. */
static void cg_init(void)
{
    pthread_once(&cg_once, cg_fill);
}

/* The next piece, queued when everything before it was sent (low
 * watermark 0): one chunk in flight, memory bounded. Where the stream is
 * in the pattern, below CG_PERIOD, is all its state: it rides in the
 * stream's data pointer, no allocation per stream. */
static void chargen_more(struct rs_stream *s)
{
    uintptr_t off = (uintptr_t)rs_stream_data(s);
    rs_stream_write_static(s, cg_table + off, CG_CHUNK);
    rs_stream_set_data(s, (void *)((off + CG_CHUNK) % CG_PERIOD));
}

static void chargen_open(struct rs_stream *s)
{
    cg_init();
    rs_stream_set_lowat(s, 0);
    chargen_more(s);
}

/* Input is ignored, as the RFC says. */
static void chargen_data(struct rs_stream *s, const uint8_t *data, uint32_t len,
                         uint16_t bid)
{
    (void)data;
    (void)len;
    rs_stream_release(s, bid);
}

const struct rs_protocol rs_proto_chargen = {
    .name = "chargen",
    .cbs = {.on_data = chargen_data, .on_writable = chargen_more},
    .on_open = chargen_open};
