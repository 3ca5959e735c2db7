/* The three built-in protocols, from the classic inetd set. */
#include <pthread.h>
#include <string.h>

#include "conn.h"
#include "loop.h"
#include "protocol.h"

/* echo (RFC 862): send back what arrives, from the very buffer it arrived
 * in. No copy in user space; the buffer returns to the pool when the send
 * completes. */
static void echo_data(struct rs_conn *c, const uint8_t *data, uint32_t len, uint16_t bid)
{
    rs_conn_send_lent(c, data, len, bid);
}

const struct rs_protocol rs_proto_echo = {.name = "echo", .on_data = echo_data};

/* discard (RFC 863): read and drop; stresses the receive path only. */
static void discard_data(struct rs_conn *c, const uint8_t *data, uint32_t len,
                         uint16_t bid)
{
    (void)data;
    (void)len;
    rs_conn_release(c, bid);
}

const struct rs_protocol rs_proto_discard = {.name = "discard", .on_data = discard_data};

/* chargen (RFC 864): lines of 72 characters from the 95 printable ASCII
 * characters, each line starting one character later, CR LF after each.
 * The pattern repeats every 95 lines, so one static table of 95 lines
 * (plus enough of a second copy to start anywhere) serves every connection
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

static void chargen_more(struct rs_conn *c)
{
    uint32_t off = (uint32_t)(c->proto_u64 % CG_PERIOD);
    rs_conn_send_static(c, cg_table + off, CG_CHUNK);
    c->proto_u64 += CG_CHUNK;
}

static void chargen_open(struct rs_conn *c)
{
    cg_init();
    chargen_more(c);
}

/* Input is ignored, as the RFC says. */
static void chargen_data(struct rs_conn *c, const uint8_t *data, uint32_t len,
                         uint16_t bid)
{
    (void)data;
    (void)len;
    rs_conn_release(c, bid);
}

const struct rs_protocol rs_proto_chargen = {.name = "chargen",
                                             .on_open = chargen_open,
                                             .on_data = chargen_data,
                                             .on_drained = chargen_more};

const struct rs_protocol *rs_protocol_find(const char *name)
{
    static const struct rs_protocol *const all[] = {&rs_proto_echo, &rs_proto_discard,
                                                    &rs_proto_chargen};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}
