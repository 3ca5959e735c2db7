/* The exported functions behind the public headers' opaque handles.
 *
 * struct rs_loop and struct rs_stream are opaque outside the library, so
 * that their layout can change without breaking programs built against
 * it. Inside the library the same names are inline (loop.h, stream.h);
 * here the macros are undone to define the real functions. */
#include "loop.h"
#include "stream.h"

#undef rs_loop_now
#undef rs_loop_stopping
#undef rs_stream_pending
#undef rs_stream_set_lowat
#undef rs_stream_is_open

uint64_t rs_loop_now(struct rs_loop *loop)
{
    return rs_loop_now_inline(loop);
}

bool rs_loop_stopping(const struct rs_loop *loop)
{
    return rs_loop_stopping_inline(loop);
}

const struct rs_config *rs_loop_config(const struct rs_loop *loop)
{
    return loop->cfg;
}

int rs_loop_index(const struct rs_loop *loop)
{
    return loop->index;
}

uint32_t rs_loop_caps(const struct rs_loop *loop)
{
    return loop->caps;
}

const char *rs_loop_backend_name(const struct rs_loop *loop)
{
    return loop->ops->name;
}

struct rs_stats *rs_loop_stats(struct rs_loop *loop)
{
    return &loop->stats;
}

void *rs_loop_data(const struct rs_loop *loop)
{
    return loop->proto_data;
}

void rs_loop_set_data(struct rs_loop *loop, void *data)
{
    loop->proto_data = data;
}

struct rs_loop *rs_stream_loop(const struct rs_stream *s)
{
    return s->loop;
}

void *rs_stream_data(const struct rs_stream *s)
{
    return s->data;
}

void rs_stream_set_data(struct rs_stream *s, void *data)
{
    s->data = data;
}

bool rs_stream_connect_sent(const struct rs_stream *s)
{
    return s->connect_sent;
}

void rs_stream_set_cbs(struct rs_stream *s, const struct rs_stream_cbs *cbs)
{
    s->cbs = cbs;
}

uint64_t rs_stream_pending(const struct rs_stream *s)
{
    return rs_stream_pending_inline(s);
}

void rs_stream_set_lowat(struct rs_stream *s, uint64_t bytes)
{
    rs_stream_set_lowat_inline(s, bytes);
}

bool rs_stream_is_open(const struct rs_stream *s)
{
    return rs_stream_is_open_inline(s);
}

const uint8_t *rs_loop_buf(const struct rs_loop *loop, uint16_t bid)
{
    if (bid >= loop->pool.count)
        return NULL;
    return rs_bufpool_ptr(&loop->pool, bid);
}

void rs_loop_buf_release(struct rs_loop *loop, uint16_t bid)
{
    loop->ops->buf_release(loop, bid);
}
