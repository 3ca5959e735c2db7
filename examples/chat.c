/* chat: every line a client sends goes to every other client.
 *
 *   chat [--listen=HOST:PORT] [--backend=uring|epoll|epoll-lt] [--max-line=BYTES]
 *        [--max-pending=BYTES] [--drain-timeout=MS]
 *
 * What it shows: a protocol that keeps per-loop state (the room) and
 * per-stream state (a client's unfinished line), fans each line out with
 * rs_stream_write_copy, and decides what memory a client may hold:
 *
 * - a line longer than --max-line is refused: its sender is reset (it
 *   cannot take the connection's end for an accepted line);
 * - a client whose queued output passes --max-pending (it reads slower
 *   than the room talks) is reset at once, dropping what was queued for
 *   it: one slow reader must neither grow the server's memory nor stall
 *   the room (stopping the senders instead would let it hold everyone);
 * - on SIGINT/SIGTERM (on_stop) every line the room accepted is still
 *   sent, after a last notice; a client in the middle of a line (some of
 *   it received, the newline not yet) is reset after that output, since
 *   its line was cut; any other client gets the library's default stop
 *   (rs_stream_stop): a FIN once it has closed its side, a reset if it
 *   sends more, or at --drain-timeout. So no client ever reads a clean
 *   end of stream after a line of its was dropped.
 *
 * The room is one loop's: streams of two loops cannot write to each
 * other, so the program runs one loop (--threads other than 1 is refused).
 *
 * Build against an installed libringserve:
 *   cc -std=c11 chat.c $(pkg-config --cflags --libs ringserve) -o chat
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringserve/config.h>
#include <ringserve/loop.h>
#include <ringserve/protocol.h>
#include <ringserve/server.h>
#include <ringserve/stream.h>

#define DEFAULT_MAX_LINE 4096
static const char stopping_notice[] = "*** server stopping\n";

static uint32_t max_line = DEFAULT_MAX_LINE;

struct client {
    struct rs_stream *s;
    struct client *prev, *next; /* in the room */
    char *part;                 /* the unfinished line: max_line bytes */
    uint32_t partlen;
};

struct room {
    struct client *head;
};

static struct room *room_of(struct rs_stream *s)
{
    return rs_loop_data(rs_stream_loop(s));
}

/* Queue line a then b (either may be empty) to every open client but
 * from; reset those whose queue passed max_pending. */
static void broadcast(struct client *from, const char *a, uint32_t alen, const char *b,
                      uint32_t blen)
{
    uint64_t max = rs_loop_config(rs_stream_loop(from->s))->max_pending;
    for (struct client *c = room_of(from->s)->head; c; c = c->next) {
        if (c == from || !rs_stream_is_open(c->s))
            continue;
        if (alen)
            rs_stream_write_copy(c->s, (const uint8_t *)a, alen);
        if (blen)
            rs_stream_write_copy(c->s, (const uint8_t *)b, blen);
        if (rs_stream_pending(c->s) > max)
            rs_stream_abort_reset(c->s, -ENOBUFS); /* a slow reader: cut */
    }
}

static void on_open(struct rs_stream *s)
{
    struct client *c = calloc(1, sizeof(*c));
    if (c)
        c->part = malloc(max_line);
    if (!c || !c->part) {
        if (c)
            free(c);
        rs_stream_abort_reset(s, -ENOMEM);
        return;
    }
    c->s = s;
    struct room *r = room_of(s);
    c->next = r->head;
    if (r->head)
        r->head->prev = c;
    r->head = c;
    rs_stream_set_data(s, c);
}

static void on_data(struct rs_stream *s, const uint8_t *p, uint32_t len, uint16_t bid)
{
    struct client *c = rs_stream_data(s);
    const char *q = (const char *)p, *end = q + len;
    while (c && q < end && rs_stream_is_open(s)) {
        const char *nl = memchr(q, '\n', (size_t)(end - q));
        uint32_t n = (uint32_t)((nl ? nl + 1 : end) - q);
        if (c->partlen + n > max_line) { /* nl included: a line is at most max_line */
            rs_stream_reset_reason(s, -EMSGSIZE);
            break;
        }
        if (!nl) { /* keep the unfinished line */
            memcpy(c->part + c->partlen, q, n);
            c->partlen += n;
            break;
        }
        broadcast(c, c->part, c->partlen, q, n);
        c->partlen = 0;
        q += n;
    }
    rs_stream_release(s, bid);
}

/* The client finished: its last line counts even without a newline. */
static void on_eof(struct rs_stream *s)
{
    struct client *c = rs_stream_data(s);
    if (c && c->partlen) {
        broadcast(c, c->part, c->partlen, "\n", 1);
        c->partlen = 0;
    }
    rs_stream_shutdown(s);
}

static void on_stop(struct rs_stream *s)
{
    struct client *c = rs_stream_data(s);
    rs_stream_write_static(s, (const uint8_t *)stopping_notice,
                           sizeof(stopping_notice) - 1);
    if (c && c->partlen)
        rs_stream_reset_reason(s, -ECONNABORTED); /* its line was cut */
    else
        rs_stream_stop(s);
}

static void on_close(struct rs_stream *s, int reason)
{
    (void)reason;
    struct client *c = rs_stream_data(s);
    if (!c)
        return;
    struct room *r = room_of(s);
    if (c->prev)
        c->prev->next = c->next;
    else
        r->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->part);
    free(c);
}

static int loop_init(struct rs_loop *loop, char *err, size_t errlen)
{
    struct room *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "no memory for the room");
        return -ENOMEM;
    }
    rs_loop_set_data(loop, r);
    return 0;
}

static void loop_fini(struct rs_loop *loop)
{
    free(rs_loop_data(loop));
    rs_loop_set_data(loop, NULL);
}

static const struct rs_protocol chat = {
    .name = "chat",
    .cbs = {.on_data = on_data, .on_eof = on_eof, .on_close = on_close},
    .on_open = on_open,
    .on_stop = on_stop,
    .loop_init = loop_init,
    .loop_fini = loop_fini,
};

/* Set by the handler, acted on by main between waits (so that a signal
 * that came during start-up is not lost). */
static volatile sig_atomic_t stop_wanted;

static void on_signal(int sig)
{
    (void)sig;
    stop_wanted = 1;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: chat [--max-line=BYTES] [ringserve options]\n\n"
                 "  --max-line=BYTES   longest line accepted, newline included "
                 "(default 4096)\n\n");
    rs_config_options_usage(out);
}

int main(int argc, char **argv)
{
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    cfg.log_name = "chat";
    char err[256];
    /* The examples' shorthand for --backend=epoll --epoll-mode=lt. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--backend=epoll-lt") == 0) {
            argv[i] = "--backend=epoll";
            if (rs_config_set_option(&cfg, "epoll-mode", "lt", err, sizeof(err)) < 0) {
                fprintf(stderr, "chat: %s\n", err);
                return 2;
            }
        }
    int rc = rs_config_parse_args(&cfg, &argc, argv, RS_CONFIG_EMBED, err, sizeof(err));
    if (rc == RS_CONFIG_HELP || rc == RS_CONFIG_VERSION) {
        usage(stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "chat: %s\n", err);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        uint64_t v;
        if (strncmp(argv[i], "--max-line=", 11) == 0 &&
            rs_parse_size(argv[i] + 11, UINT32_MAX, &v) == 0 && v > 0) {
            max_line = (uint32_t)v;
            continue;
        }
        fprintf(stderr, "chat: unknown or bad argument: %s\n", argv[i]);
        return 2;
    }
    if (cfg.threads != 1) {
        fprintf(stderr, "chat: one room, one loop: --threads must be 1\n");
        return 2;
    }
    cfg.proto = &chat;

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct rs_server *srv;
    if (rs_server_start(&cfg, &srv) < 0)
        return 1;
    while (rs_server_wait(srv, 100) == -ETIMEDOUT)
        if (stop_wanted)
            rs_server_stop(srv);
    return rs_server_destroy(srv, NULL) < 0;
}
