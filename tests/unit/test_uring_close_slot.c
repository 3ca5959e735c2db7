/* io_uring's ur_close_slot (backend_uring/uring.c) when no SQE can be had.
 *
 * The backend closes a direct descriptor nobody else will (a connection
 * handed to another loop, one that came after the inbox closed, a new
 * socket it cannot deliver) with an IORING_OP_CLOSE of the slot. With the
 * submission queue stuck full (the kernel refusing submits: here
 * io_uring_submit is wrapped, -Wl,--wrap=io_uring_submit, to refuse while
 * the test says so, and the ring's SQ is filled with NOPs first), there
 * is no SQE for it. Before, the function then returned having done
 * nothing: the slot kept its socket (the connection stayed open for good),
 * and a socket the sendfile code held between ops kept its installed fd
 * too. Now what the loop keeps for the slot is put back first, and the
 * slot is cleared by a synchronous update of the file table: the peer
 * sees the connection end. On a real connection accepted through the
 * backend, as a direct descriptor:
 *
 * 1. a connection that never sent a file;
 * 2. a connection the loop sent a file to, its socket held between
 *    sendfile ops (an installed process fd, IORING_OP_FIXED_FD_INSTALL,
 *    Linux 6.8): the hold is given back as well.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../skip_reason.h"
#include "backend_uring/uring_state.h"
#include "kernel_release.h"
#include "mode_options.h"
#include "op.h"
#include "again.h"

int __real_io_uring_submit(struct io_uring *ring);
int __wrap_io_uring_submit(struct io_uring *ring);

static bool sq_stuck; /* io_uring_submit refuses (-EBUSY), submitting nothing */

int __wrap_io_uring_submit(struct io_uring *ring)
{
    if (sq_stuck)
        return -EBUSY;
    return __real_io_uring_submit(ring);
}

#define FILE_LEN 65536

struct fixture {
    struct rs_config cfg;
    struct rs_loop loop;
    int lfd, client, slot, file;
    int ndone;
    int32_t res;
};

static void done_fn(struct rs_loop *loop, struct rs_op *op, const struct rs_completion *c)
{
    (void)loop;
    struct fixture *fx = op->data;
    fx->ndone++;
    fx->res = c->res;
}

/* Submit op and run the loop until its one completion; its result. */
static int32_t run_op(struct fixture *fx, struct rs_op *op)
{
    int before = fx->ndone;
    assert_int_equal(fx->loop.ops->submit(&fx->loop, op), 0);
    for (int i = 0; i < 2000 && fx->ndone == before; i++)
        fx->loop.ops->run(&fx->loop, 10);
    assert_int_equal(fx->ndone, before + 1);
    return fx->res;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    rs_config_defaults(&fx->cfg);
    mode_options(&fx->cfg, "uring", "default", false);
    char err[256] = "";
    assert_int_equal(
        rs_loop_init(&fx->loop, &rs_backend_uring, &fx->cfg, err, sizeof(err)), 0);
    fx->lfd = rs_listen_socket("127.0.0.1", 0, true, false, 16);
    assert_true(fx->lfd >= 0);
    struct rs_op accept_op;
    rs_op_init(&accept_op, RS_OP_ACCEPT, fx->lfd, done_fn, fx);
    assert_int_equal(fx->loop.ops->submit(&fx->loop, &accept_op), 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)rs_socket_port(fx->lfd)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fx->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(fx->client, (struct sockaddr *)&a, sizeof(a)), 0);
    for (int i = 0; i < 2000 && fx->ndone == 0; i++)
        fx->loop.ops->run(&fx->loop, 10);
    assert_int_equal(fx->ndone, 1);
    assert_true(fx->res >= 0);
    fx->slot = fx->res;
    /* A scratch file, in the page cache (just written). */
    char path[] = "/tmp/rs-close-slot-XXXXXX";
    fx->file = mkstemp(path);
    assert_true(fx->file >= 0);
    unlink(path);
    static uint8_t buf[FILE_LEN];
    memset(buf, 'f', sizeof(buf));
    assert_int_equal(pwrite(fx->file, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    sq_stuck = false;
    /* The NOPs the test queued complete (ignored) before the ring goes. */
    for (int i = 0; i < 5; i++)
        fx->loop.ops->run(&fx->loop, 1);
    close(fx->client);
    close(fx->lfd);
    close(fx->file);
    rs_loop_fini(&fx->loop);
    free(fx);
    return 0;
}

/* Every free SQE taken (NOPs whose completions name no op), and the
 * kernel refusing submits: ur_get_sqe finds none. */
static void fill_sq_and_stick(struct ur_state *st)
{
    struct io_uring_sqe *sqe;
    while ((sqe = io_uring_get_sqe(&st->ring)) != NULL) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, (uint64_t)TAG_IGNORE << 56);
    }
    sq_stuck = true;
}

/* The client reads until EOF (at most `most` bytes before it; a hang
 * guard of 20 s, not a pass criterion: the EOF comes at once or never,
 * but "at once" is the kernel's, which a loaded machine may delay for
 * seconds while this thread's timer runs). */
static void expect_eof(struct fixture *fx, size_t most)
{
    uint8_t buf[8192];
    size_t got = 0;
    for (;;) {
        struct pollfd p = {.fd = fx->client, .events = POLLIN};
        if (poll_again(&p, 1, 20000) != 1)
            fail_msg("the connection stayed open after its slot was closed "
                     "(%zu bytes read)",
                     got);
        ssize_t n = recv_again(fx->client, buf, sizeof(buf), 0);
        if (n == 0)
            break;
        assert_true(n > 0);
        got += (size_t)n;
        assert_true(got <= most);
    }
}

static void test_close_slot_without_sqe(void **state)
{
    struct fixture *fx = *state;
    struct ur_state *st = fx->loop.backend;
    if (!st->fixed) { /* no direct descriptors: nothing to close by slot */
        rs_skip_reason("feature unavailable: fixed-files");
        skip();
    }
    fill_sq_and_stick(st);
    ur_close_slot(st, fx->slot);
    sq_stuck = false;
    expect_eof(fx, 0);
}

static void test_close_slot_without_sqe_held(void **state)
{
    struct fixture *fx = *state;
    struct ur_state *st = fx->loop.backend;
    if (!st->fixed) {
        rs_skip_reason("feature unavailable: fixed-files");
        skip();
    }
    struct rs_op op;
    rs_op_init(&op, RS_OP_SENDFILE, fx->slot, done_fn, fx);
    op.flags = RS_OPF_DIRECT;
    struct rs_sendfile src = {.file_fd = fx->file, .off = 0};
    op.buf = &src;
    op.len = FILE_LEN;
    assert_int_equal(run_op(fx, &op), FILE_LEN);
    if (!kernel_at_least(6, 8)) {
        /* No IORING_OP_FIXED_FD_INSTALL: nothing is held. */
        assert_int_equal(st->splice_held, 0);
        rs_skip_reason("no IORING_OP_FIXED_FD_INSTALL (Linux 6.8): no socket is held");
        skip();
    }
    assert_int_equal(st->splice_held, 1); /* the socket's installed fd, held */
    fill_sq_and_stick(st);
    ur_close_slot(st, fx->slot);
    sq_stuck = false;
    assert_int_equal(st->splice_held, 0);
    expect_eof(fx, FILE_LEN);
}

int main(void)
{
    if (!rs_backend_uring.init) {
        rs_skip_reason("io_uring unavailable: support not compiled in");
        return 77;
    }
    int starts = mode_loop_starts(&rs_backend_uring, "uring", "default", false);
    if (starts != 0)
        return starts;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_close_slot_without_sqe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_slot_without_sqe_held, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
