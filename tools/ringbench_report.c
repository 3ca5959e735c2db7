/* ringbench's report: a run's result (struct result, which ringbench.c
 * fills) as the text a person reads or as one JSON object (--json, what
 * tools/compare and the tests read; docs/ringbench.md lists its keys). */
#include "ringbench.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static double mb_per_s(const struct result *r)
{
    return r->seconds > 0 ? (double)r->bytes / r->seconds / 1e6 : 0;
}

static void json_num(const char *key, double v, bool known, bool comma)
{
    if (known)
        printf("\"%s\":%.3f%s", key, v, comma ? "," : "");
    else
        printf("\"%s\":null%s", key, comma ? "," : "");
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

void rb_report_json(const struct opts *o, const struct result *r, uint32_t errors,
                    uint32_t stalls, const char *error)
{
    bool echo = round_trips(o);
    bool lat = echo && r->hist->count > 0;
    printf("{\"tool\":\"ringbench\",\"version\":\"%s\",\"mode\":\"%s\",\"connect\":",
           RB_VERSION, rb_mode_names[o->mode]);
    json_string(o->target);
    printf(",\"connections\":%u,\"threads\":%u,\"size_min\":%" PRIu64
           ",\"size_max\":%" PRIu64 ",\"pipeline\":%u,",
           o->connections, o->threads, o->size_min, o->size_max, o->pipeline);
    json_num("rate", o->rate, o->rate > 0, true);
    if (o->rounds)
        printf("\"rounds\":%" PRIu64 ",", o->rounds);
    else
        printf("\"rounds\":null,");
    json_num("warmup_s", o->warmup, true, true);
    json_num("duration_s", r->seconds, true, true);
    printf("\"round_trips\":%" PRIu64 ",", r->rt);
    json_num("rtt_per_s", r->seconds > 0 ? (double)r->rt / r->seconds : 0, echo, true);
    printf("\"bytes\":%" PRIu64 ",", r->bytes);
    json_num("mb_per_s", mb_per_s(r), true, true);
    if (lat) {
        const struct bench_hist *h = r->hist;
        printf("\"latency_us\":{");
        json_num("p50", (double)bench_hist_quantile(h, 0.50) / 1e3, true, true);
        json_num("p90", (double)bench_hist_quantile(h, 0.90) / 1e3, true, true);
        json_num("p99", (double)bench_hist_quantile(h, 0.99) / 1e3, true, true);
        json_num("p999", (double)bench_hist_quantile(h, 0.999) / 1e3, true, true);
        json_num("max", (double)h->max / 1e3, true, true);
        json_num("mean", bench_hist_mean(h) / 1e3, true, false);
        printf("},");
    } else {
        printf("\"latency_us\":null,");
    }
    printf("\"fairness\":{\"unit\":\"%s\",\"min\":%" PRIu64 ",\"max\":%" PRIu64
           ",\"zero\":%" PRIu64 "},",
           echo ? "round_trips" : "bytes", r->fair_min, r->fair_max, r->zero);
    printf("\"processes\":%u,\"held\":%" PRIu64 ",", o->processes, r->held);
    json_num("connect_s", r->connect_s, true, true);
    if (r->have_sock)
        printf("\"sockstat\":{\"sockets_used\":%lld,\"tcp_inuse\":%lld,\"tcp_tw\":%lld,"
               "\"tcp_mem_kib\":%lld},",
               r->sock.sockets_used, r->sock.tcp_inuse, r->sock.tcp_tw,
               r->sock.tcp_mem_kib);
    else
        printf("\"sockstat\":null,");
    printf("\"errors\":%u,\"stalls\":%u,\"error\":", errors, stalls);
    if (error)
        json_string(error);
    else
        printf("null");
    printf(",\"server\":");
    if (o->server_pid) {
        printf("{\"pid\":%ld,", o->server_pid);
        json_num("cpu_s", r->cpu_s, r->have_cpu, true);
        json_num("cpu_us_per_rt", r->cpu_us_per_rt, r->have_cpu && echo && r->rt, true);
        if (r->rss_kib >= 0)
            printf("\"rss_kib\":%lld,", r->rss_kib);
        else
            printf("\"rss_kib\":null,");
        if (r->rss0_kib >= 0)
            printf("\"rss_kib_start\":%lld,", r->rss0_kib);
        else
            printf("\"rss_kib_start\":null,");
        json_num("rss_bytes_per_conn",
                 r->held ? (double)r->rss_kib * 1024 / (double)r->held : 0,
                 r->rss_kib >= 0 && r->held, true);
        if (r->fds >= 0)
            printf("\"fds\":%lld,", r->fds);
        else
            printf("\"fds\":null,");
        json_num("user_s", r->user_s, r->have_cpu, true);
        json_num("sys_s", r->sys_s, r->have_cpu, true);
        json_num("ctxsw", (double)r->ctxsw, r->have_cpu && r->ctxsw >= 0, true);
        json_num("syscalls", (double)r->syscalls, r->have_sys, true);
        json_num("syscalls_per_rt", r->syscalls_per_rt, r->have_sys && echo && r->rt,
                 false);
        printf("}");
    } else {
        printf("null");
    }
    printf("}\n");
}

void rb_report_text(const struct opts *o, const struct result *r, uint32_t errors,
                    uint32_t stalls)
{
    bool echo = round_trips(o);
    char size[64];
    if (o->size_min == o->size_max)
        snprintf(size, sizeof(size), "%" PRIu64 " B", o->size_min);
    else
        snprintf(size, sizeof(size), "%" PRIu64 "-%" PRIu64 " B", o->size_min,
                 o->size_max);
    printf("ringbench %s: %s %s, %u connection%s, %u thread%s, %s", RB_VERSION,
           rb_mode_names[o->mode], o->target, o->connections,
           o->connections == 1 ? "" : "s", o->threads, o->threads == 1 ? "" : "s", size);
    if (echo)
        printf(", pipeline %u", o->pipeline);
    if (o->rate > 0)
        printf(", rate %.0f/s", o->rate);
    if (o->rounds)
        printf(", %" PRIu64 " rounds", o->rounds);
    printf("\n  measured      %.3f s (after %.3g s warmup)\n", r->seconds, o->warmup);
    if (echo) {
        printf("  round trips   %" PRIu64 "  (%.1f/s)\n", r->rt,
               r->seconds > 0 ? (double)r->rt / r->seconds : 0);
        printf("  throughput    %.2f MB/s each way\n", mb_per_s(r));
        const struct bench_hist *h = r->hist;
        if (h->count)
            printf("  latency us    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  "
                   "(mean %.1f)\n",
                   (double)bench_hist_quantile(h, 0.5) / 1e3,
                   (double)bench_hist_quantile(h, 0.9) / 1e3,
                   (double)bench_hist_quantile(h, 0.99) / 1e3,
                   (double)bench_hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3,
                   bench_hist_mean(h) / 1e3);
        printf("  fairness      %" PRIu64 " .. %" PRIu64 " round trips per connection\n",
               r->fair_min, r->fair_max);
    } else {
        printf("  bytes         %" PRIu64 " %s\n", r->bytes,
               o->mode == MODE_DISCARD ? "sent" : "received and verified");
        printf("  throughput    %.2f MB/s\n", mb_per_s(r));
        printf("  fairness      %" PRIu64 " .. %" PRIu64 " bytes per connection\n",
               r->fair_min, r->fair_max);
    }
    printf("  connections   %" PRIu64 " held at the end, %" PRIu64
           " with no %s measured; "
           "all open after %.3f s%s\n",
           r->held, r->zero, echo ? "round trip" : "byte", r->connect_s,
           o->processes > 1 ? " (several processes)" : "");
    printf("  errors        %u\n", errors);
    printf("  stalls        %u\n", stalls);
    if (r->have_sock)
        printf(
            "  kernel        sockets used %lld, TCP in use %lld (both ends on loopback), "
            "TCP memory %lld KiB\n",
            r->sock.sockets_used, r->sock.tcp_inuse, r->sock.tcp_mem_kib);
    if (o->server_pid) {
        printf("  server        pid %ld:", o->server_pid);
        if (r->have_cpu && echo && r->rt)
            printf(" %.2f us CPU/round trip,", r->cpu_us_per_rt);
        else if (r->have_cpu)
            printf(" %.3f s CPU,", r->cpu_s);
        if (r->have_sys && echo && r->rt)
            printf(" %.2f syscalls/round trip,", r->syscalls_per_rt);
        else
            printf(" syscalls n/a,");
        if (r->rss_kib >= 0 && r->held)
            printf(" RSS %lld KiB (%.0f B per held connection; %lld KiB at the start),",
                   r->rss_kib, (double)r->rss_kib * 1024 / (double)r->held, r->rss0_kib);
        else if (r->rss_kib >= 0)
            printf(" RSS %lld KiB,", r->rss_kib);
        else
            printf(" RSS n/a,");
        if (r->fds >= 0)
            printf(" %lld descriptors\n", r->fds);
        else
            printf(" descriptors n/a\n");
    }
}
