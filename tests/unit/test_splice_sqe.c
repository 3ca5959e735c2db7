/* The io_uring sendfile's SQE chains when the submission queue runs dry
 * half-way (backend_uring/splice.c). A step takes up to three SQEs (file ->
 * pipe, pipe -> socket, the link timeout), linked; the backend's SQE source
 * promises room for the chain, but splice.c must not rely on it: here the
 * source is a real ring whose n-th SQE request fails. The submit must then
 * be refused (-EBUSY, the core retries) with no SQE left half-prepared:
 * before, a NULL SQE for the OUT splice or its timeout was written to
 * (a crash), and an SQE flagged IOSQE_IO_LINK without its successor would
 * have chained the next, unrelated SQE to it. The SQEs taken are NOPs
 * whose completions name no op. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <liburing.h>

#include "backend_uring/splice.h"
#include "op.h"
#include "../skip_reason.h"

#define TAG 8u

struct src {
    struct io_uring ring;
    int calls, fail_at; /* the fail_at-th request gets NULL (0: never) */
};

static struct io_uring_sqe *get_sqe(void *ctx, unsigned n)
{
    struct src *s = ctx;
    (void)n;
    if (++s->calls == s->fail_at)
        return NULL;
    return io_uring_get_sqe(&s->ring);
}

static void never(struct rs_loop *loop, struct rs_op *op, const struct rs_completion *c)
{
    (void)loop;
    (void)op;
    (void)c;
    fail_msg("a refused sendfile completed");
}

static void test_splice_chain_refused_whole_when_sqes_run_out(void **state)
{
    (void)state;
    struct src s = {0};
    int rc = io_uring_queue_init(16, &s.ring, 0);
    if (rc < 0) {
        rs_skip_reason("io_uring unavailable: io_uring_queue_init: %s", strerror(-rc));
        skip();
    }
    struct ur_splice *sp = ur_splice_new(get_sqe, &s, TAG, 0);
    assert_non_null(sp);
    char path[] = "/tmp/rs_splice_XXXXXX";
    int file = mkstemp(path);
    assert_true(file >= 0);
    unlink(path);
    assert_int_equal(write(file, "0123456789", 10), 10);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct rs_sendfile from = {.file_fd = file, .off = 0};
    struct rs_op op = {0};
    rs_op_init(&op, RS_OP_SENDFILE, sv[0], never, NULL);
    op.buf = &from;
    op.len = 10;
    /* The first step (PAIR) takes three SQEs: fail each in turn. */
    for (int fail = 1; fail <= 3; fail++) {
        s.calls = 0;
        s.fail_at = fail;
        assert_int_equal(ur_splice_submit(sp, &op), -EBUSY);
        int taken = fail - 1;
        assert_int_equal(io_uring_submit(&s.ring), taken);
        for (int i = 0; i < taken; i++) {
            struct io_uring_cqe *cqe;
            assert_int_equal(io_uring_wait_cqe(&s.ring, &cqe), 0);
            /* A NOP with no op behind it, unlinked: it ran (res 0). */
            assert_int_equal(cqe->res, 0);
            assert_int_equal(cqe->user_data, (uint64_t)TAG << 56);
            io_uring_cqe_seen(&s.ring, cqe);
        }
    }
    ur_splice_free(sp);
    io_uring_queue_exit(&s.ring);
    close(sv[0]);
    close(sv[1]);
    close(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splice_chain_refused_whole_when_sqes_run_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
