/* example_proto: a protocol of your own on libringserve.
 *
 * A line-uppercasing server: every byte received is sent back in upper
 * case. It uses only the installed library's public API: a struct
 * rs_protocol whose accepted streams get an on_data handler, handed to the
 * server through rs_config.proto. Everything else (backends, backpressure,
 * closing, --help) comes from the library; the process (signals, the exit
 * status) is this program's, in main() below.
 *
 * Build against an installed libringserve:
 *   cc -std=c11 example_proto.c $(pkg-config --cflags --libs ringserve) -o upper
 */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>

#include <ringserve.h>

/* Set by SIGINT or SIGTERM (the library's loop threads block every
 * signal, so the handler runs on this program's thread); main() polls it
 * between waits, so a signal that came during start-up is not lost. */
static volatile sig_atomic_t stop_wanted;

static void on_signal(int sig)
{
    (void)sig;
    stop_wanted = 1;
}

/* data lies in a buffer lent by the backend: copy what we send, then give
 * the buffer back (exactly once). */
static void upper_data(struct rs_stream *s, const uint8_t *data, uint32_t len,
                       uint16_t bid)
{
    uint8_t out[4096];
    for (uint32_t done = 0; done < len;) {
        uint32_t n = len - done < sizeof(out) ? len - done : (uint32_t)sizeof(out);
        for (uint32_t i = 0; i < n; i++)
            out[i] = (uint8_t)toupper(data[done + i]);
        rs_stream_write_copy(s, out, n);
        done += n;
    }
    rs_stream_release(s, bid);
    /* Backpressure: a client that sends without reading must not make us
     * queue without bound. Stop reading; on_writable resumes. */
    if (rs_stream_pending(s) > rs_loop_config(rs_stream_loop(s))->max_pending)
        rs_stream_read_stop(s);
}

static void upper_writable(struct rs_stream *s)
{
    rs_stream_read_start(s);
}

static const struct rs_protocol upper = {
    .name = "upper", .cbs = {.on_data = upper_data, .on_writable = upper_writable}};

int main(int argc, char **argv)
{
    struct rs_config cfg;
    rs_config_defaults(&cfg);
    if (rs_config_parse(&cfg, argc, argv) < 0)
        return 2;
    if (cfg.exit_now)
        return 0;
    cfg.proto = &upper;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct rs_server *srv;
    int rc = rs_server_start(&cfg, &srv);
    if (rc < 0)
        return rc == -EINVAL ? 2 : 1;
    while (rs_server_wait(srv, 100) == -ETIMEDOUT)
        if (stop_wanted)
            rs_server_stop(srv); /* drain, then the wait returns 0 */
    return rs_server_destroy(srv, NULL) < 0 ? 1 : 0;
}
