#include "stats.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>

/* Every counter once: the sum, the final line and the JSON objects all walk
 * this table, so a new counter is one line here and one in stats.h. */
#define COUNTER(name)                                                                    \
    {                                                                                    \
#name, offsetof(struct rs_stats, name), false                                    \
    }
#define GAUGE(name)                                                                      \
    {                                                                                    \
#name, offsetof(struct rs_stats, name), true                                     \
    }
static const struct field {
    const char *name;
    size_t off;
    bool gauge; /* a level, not a count: no rate, not on the final text line */
} fields[] = {
    /* clang-format off */
    COUNTER(accepted),
    COUNTER(rejected),
    COUNTER(closed),
    COUNTER(bytes_in),
    COUNTER(bytes_out),
    COUNTER(dropped),
    COUNTER(recvs),
    COUNTER(sends),
    COUNTER(round_trips),
    COUNTER(enobufs),
    COUNTER(copies),
    COUNTER(accept_pauses),
    COUNTER(idle_closed),
    COUNTER(header_timeouts),
    COUNTER(send_timeouts),
    COUNTER(keepalive_timeouts),
    COUNTER(resets_in),
    COUNTER(resets_out),
    COUNTER(bundles),
    COUNTER(recvs_shared),
    COUNTER(cq_overflows),
    COUNTER(cq_resizes),
    COUNTER(sendfile_worker_reads),
    COUNTER(sendfile_worker_sends),
    COUNTER(zc_copied),
    COUNTER(accept_dropped),
    COUNTER(handoffs),
    COUNTER(refused),
    COUNTER(connects),
    COUNTER(connect_failed),
    COUNTER(connects_direct),
    COUNTER(nodelay_failed),
    COUNTER(sessions),
    COUNTER(bytes_up),
    COUNTER(bytes_down),
    COUNTER(turns),
    COUNTER(completions),
    COUNTER(waits),
    GAUGE(conns),
    GAUGE(lent),
    GAUGE(starved),
    /* clang-format on */
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static uint64_t *at(struct rs_stats *s, size_t i)
{
    return (uint64_t *)(void *)((char *)s + fields[i].off);
}

static uint64_t get(const struct rs_stats *s, size_t i)
{
    return *(const uint64_t *)(const void *)((const char *)s + fields[i].off);
}

void rs_stats_add(struct rs_stats *sum, const struct rs_stats *s)
{
    for (size_t i = 0; i < NFIELDS; i++)
        *at(sum, i) += get(s, i);
}

static void print_totals_json(FILE *out, const struct rs_stats *s)
{
    for (size_t i = 0; i < NFIELDS; i++)
        fprintf(out, "%s\"%s\":%" PRIu64, i ? "," : "", fields[i].name, get(s, i));
}

/* A line is built in memory and written at once: stderr is unbuffered,
 * and a reader (a script tailing the log) must never see half a line. */
static FILE *line_open(char **buf, size_t *len)
{
    *buf = NULL;
    return open_memstream(buf, len);
}

/* buf and len are valid only after fclose: hence pointers. */
static void line_close(FILE *f, FILE *out, char **buf, size_t *len)
{
    if (fclose(f) == 0 && *buf) {
        fwrite(*buf, 1, *len, out);
        fflush(out);
    }
    free(*buf);
}

void rs_stats_print(FILE *dst, const struct rs_stats *s, enum rs_stats_format format)
{
    char *buf;
    size_t len;
    FILE *out = line_open(&buf, &len);
    if (!out)
        return;
    if (format == RS_STATS_JSON) {
        fputs("{\"type\":\"final\",", out);
        print_totals_json(out, s);
        fputs("}\n", out);
    } else {
        fputs("ringserve: stats:", out);
        for (size_t i = 0; i < NFIELDS; i++)
            if (!fields[i].gauge)
                fprintf(out, " %s=%" PRIu64, fields[i].name, get(s, i));
        fputc('\n', out);
    }
    line_close(out, dst, &buf, &len);
}

static double per(uint64_t n, double d)
{
    return d > 0 ? (double)n / d : 0.0;
}

void rs_stats_print_interval(FILE *dst, const struct rs_stats_line *how,
                             const struct rs_stats *prev, const struct rs_stats *cur)
{
    char *buf;
    size_t len;
    FILE *out = line_open(&buf, &len);
    if (!out)
        return;
    double dt = how->dt;
    uint64_t rt = cur->round_trips - prev->round_trips;
    uint64_t in = cur->bytes_in - prev->bytes_in;
    uint64_t outb = cur->bytes_out - prev->bytes_out;
    uint64_t turns = cur->turns - prev->turns;
    uint64_t done = cur->completions - prev->completions;
    uint64_t waits = cur->waits - prev->waits;
    double cpt = turns ? (double)done / (double)turns : 0.0;
    if (how->format == RS_STATS_JSON) {
        /* Rates, then this interval's counts (they add up to the final
         * totals exactly, whatever the timing), then the totals. */
        fprintf(out,
                "{\"type\":\"interval\",\"backend\":\"%s\",\"wait_call\":\"%s\","
                "\"t\":%.6f,\"dt\":%.6f,\"round_trips_per_s\":%.1f,"
                "\"bytes_in_per_s\":%.1f,\"bytes_out_per_s\":%.1f,"
                "\"completions_per_turn\":%.3f,\"waits_per_s\":%.1f,"
                "\"turns_per_s\":%.1f,\"conns\":%" PRIu64 ",\"lent\":%" PRIu64
                ",\"starved\":%" PRIu64 ",\"delta\":{",
                how->backend, how->wait_call, how->t, dt, per(rt, dt), per(in, dt),
                per(outb, dt), cpt, per(waits, dt), per(turns, dt), cur->conns, cur->lent,
                cur->starved);
        bool first = true;
        for (size_t i = 0; i < NFIELDS; i++) {
            if (fields[i].gauge)
                continue;
            fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", fields[i].name,
                    get(cur, i) - get(prev, i));
            first = false;
        }
        fputs("},\"totals\":{", out);
        print_totals_json(out, cur);
        fputs("}}\n", out);
    } else {
        fprintf(out,
                "ringserve: interval: t=%.1fs conns=%" PRIu64 " round_trips/s=%.0f"
                " in=%.0fB/s out=%.0fB/s completions/turn=%.2f %s/s=%.0f"
                " lent=%" PRIu64 " starved=%" PRIu64 " accepted/s=%.0f closed/s=%.0f\n",
                how->t, cur->conns, per(rt, dt), per(in, dt), per(outb, dt), cpt,
                how->wait_call, per(waits, dt), cur->lent, cur->starved,
                per(cur->accepted - prev->accepted, dt),
                per(cur->closed - prev->closed, dt));
    }
    line_close(out, dst, &buf, &len);
}

void rs_stats_board_init(struct rs_stats_board *b)
{
    pthread_mutex_init(&b->mu, NULL);
    b->snap = (struct rs_stats){0};
}

void rs_stats_board_fini(struct rs_stats_board *b)
{
    pthread_mutex_destroy(&b->mu);
}

void rs_stats_board_post(struct rs_stats_board *b, const struct rs_stats *s)
{
    pthread_mutex_lock(&b->mu);
    b->snap = *s;
    pthread_mutex_unlock(&b->mu);
}

void rs_stats_board_read(struct rs_stats_board *b, struct rs_stats *out)
{
    pthread_mutex_lock(&b->mu);
    *out = b->snap;
    pthread_mutex_unlock(&b->mu);
}
