/* The io_uring half of the kernel feature probe (probe/probe.c reports it):
 * every check creates what it tests (a ring, a registration, a loopback
 * connection running the ops the backend relies on) and destroys it before
 * returning. Compiled without liburing too: then the probe says so, and
 * the report keeps the names of what it would have checked.
 *
 * This file is the probe's entry and its table of contents: the names the
 * report gives opcodes and ring features, why io_uring is unavailable when
 * it is, and which trial runs when (some need what an earlier one found).
 * The trials themselves: probe_rings.c (a ring alone: set-up flags,
 * registrations, ring memory and waits, NIC-only features), probe_ops.c
 * (operations on a loopback connection), sharing probe_kit.c.
 */
#include "probe.h"
#include "rs_build.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if RS_HAVE_URING
#include <liburing.h>

#include "probe_trials.h"
#include "uring_util.h"
#endif

/* Constants newer than Debian's liburing 2.3 headers (or all of them when
 * built without liburing, so the report keeps its names). Kernel ABI. */
#ifndef IORING_FEAT_SINGLE_MMAP
#define IORING_FEAT_SINGLE_MMAP     (1U << 0)
#define IORING_FEAT_NODROP          (1U << 1)
#define IORING_FEAT_SUBMIT_STABLE   (1U << 2)
#define IORING_FEAT_RW_CUR_POS      (1U << 3)
#define IORING_FEAT_CUR_PERSONALITY (1U << 4)
#define IORING_FEAT_FAST_POLL       (1U << 5)
#define IORING_FEAT_POLL_32BITS     (1U << 6)
#define IORING_FEAT_SQPOLL_NONFIXED (1U << 7)
#define IORING_FEAT_EXT_ARG         (1U << 8)
#define IORING_FEAT_NATIVE_WORKERS  (1U << 9)
#define IORING_FEAT_RSRC_TAGS       (1U << 10)
#define IORING_FEAT_CQE_SKIP        (1U << 11)
#define IORING_FEAT_LINKED_FILE     (1U << 12)
#endif
#ifndef IORING_FEAT_REG_REG_RING
#define IORING_FEAT_REG_REG_RING (1U << 13)
#endif
#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15)
#endif
#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif

/* Opcodes newer than liburing 2.3: RS_IORING_OP_* in uring_util.h. */

/* --- names for the report ------------------------------------------------ */

#if RS_HAVE_URING
#define OPCODE(op) (op)
#else
#define OPCODE(op) 0 /* names only: nothing is probed without liburing */
#endif

const struct rs_probe_bit rs_uring_opcode_names[] = {
    {"accept", OPCODE(IORING_OP_ACCEPT)},
    {"recv", OPCODE(IORING_OP_RECV)},
    {"send", OPCODE(IORING_OP_SEND)},
    {"send_zc", OPCODE(IORING_OP_SEND_ZC)},
    {"recvmsg", OPCODE(IORING_OP_RECVMSG)},
    {"sendmsg", OPCODE(IORING_OP_SENDMSG)},
    {"poll_add", OPCODE(IORING_OP_POLL_ADD)},
    {"provide_buffers", OPCODE(IORING_OP_PROVIDE_BUFFERS)},
    {"close", OPCODE(IORING_OP_CLOSE)},
    {"shutdown", OPCODE(IORING_OP_SHUTDOWN)},
    {"async_cancel", OPCODE(IORING_OP_ASYNC_CANCEL)},
    {"socket", OPCODE(IORING_OP_SOCKET)},
    {"read", OPCODE(IORING_OP_READ)},
    /* Newer than liburing 2.3's enum: the kernel's numbers (include/uapi/
     * linux/io_uring.h), listed so the matrix shows where each arrived. */
    {"msg_ring", OPCODE(IORING_OP_MSG_RING)},        /* 5.18 */
    {"bind", OPCODE(RS_IORING_OP_BIND)},             /* 6.11 */
    {"listen", OPCODE(RS_IORING_OP_LISTEN)},         /* 6.11 */
    {"recv_zc", OPCODE(RS_IORING_OP_RECV_ZC)},       /* 6.15, zero-copy receive */
    {"epoll_wait", OPCODE(RS_IORING_OP_EPOLL_WAIT)}, /* 6.15 */
    {"pipe", OPCODE(RS_IORING_OP_PIPE)},             /* 6.16 */
};

const struct rs_probe_bit rs_uring_feature_names[] = {
    {"single_mmap", IORING_FEAT_SINGLE_MMAP},
    {"nodrop", IORING_FEAT_NODROP},
    {"submit_stable", IORING_FEAT_SUBMIT_STABLE},
    {"rw_cur_pos", IORING_FEAT_RW_CUR_POS},
    {"cur_personality", IORING_FEAT_CUR_PERSONALITY},
    {"fast_poll", IORING_FEAT_FAST_POLL},
    {"poll_32bits", IORING_FEAT_POLL_32BITS},
    {"sqpoll_nonfixed", IORING_FEAT_SQPOLL_NONFIXED},
    {"ext_arg", IORING_FEAT_EXT_ARG},
    {"native_workers", IORING_FEAT_NATIVE_WORKERS},
    {"rsrc_tags", IORING_FEAT_RSRC_TAGS},
    {"cqe_skip", IORING_FEAT_CQE_SKIP},
    {"linked_file", IORING_FEAT_LINKED_FILE},
    {"reg_reg_ring", IORING_FEAT_REG_REG_RING},
    {"recvsend_bundle", IORING_FEAT_RECVSEND_BUNDLE},
    {"min_timeout", IORING_FEAT_MIN_TIMEOUT},
};

const size_t rs_uring_nopcode_names =
    sizeof(rs_uring_opcode_names) / sizeof(rs_uring_opcode_names[0]);
const size_t rs_uring_nfeature_names =
    sizeof(rs_uring_feature_names) / sizeof(rs_uring_feature_names[0]);

static int read_disabled_sysctl(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
    int v = -1;

    if (!f)
        return -1; /* kernels before 6.6 have no such switch */
    if (fscanf(f, "%d", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}
/* --- io_uring checks ----------------------------------------------------- */

#if RS_HAVE_URING

/* Turn the failure of the plain ring into one actionable sentence. */
static void explain_unavailable(struct rs_uring_support *s, int err)
{
    char buf[96];
    const char *why;

    s->available = false;
    s->unavailable_err = err;
    if (err == EPERM && s->disabled_sysctl == 2)
        why = "kernel.io_uring_disabled=2: io_uring is off for every process";
    else if (err == EPERM && s->disabled_sysctl == 1)
        why = "kernel.io_uring_disabled=1: only CAP_SYS_ADMIN or "
              "kernel.io_uring_group may create rings";
    else if (err == EPERM)
        why = "blocked although the sysctl allows it: most likely a seccomp "
              "filter (container runtime profile)";
    else if (err == ENOSYS)
        why = "no io_uring_setup syscall: kernel built without CONFIG_IO_URING "
              "(or a filter answering ENOSYS)";
    else if (err == ENOMEM)
        why = "out of memory, or RLIMIT_MEMLOCK too low (kernels < 5.12 "
              "charge rings to it)";
    else
        why = strerror_r(err, buf, sizeof(buf)); /* GNU: returns the text */
    snprintf(s->why, sizeof(s->why), "%s: %s", rs_probe_errno_name(err), why);
}

/* The plain ring decides availability and supplies features and opcodes. */
static bool probe_plain(struct rs_uring_support *s)
{
    struct io_uring ring;
    struct io_uring_params p;
    struct io_uring_probe *probe;
    int ret;

    memset(&p, 0, sizeof(p));
    ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
    if (ret < 0) {
        explain_unavailable(s, -ret);
        return false;
    }
    s->available = true;
    s->features = p.features;
    probe = io_uring_get_probe_ring(&ring);
    if (probe) {
        for (unsigned op = 0; op < 64; op++)
            if (io_uring_opcode_supported(probe, (int)op))
                s->opcodes |= UINT64_C(1) << op;
        io_uring_free_probe(probe);
    }
    io_uring_queue_exit(&ring);
    return true;
}

static void probe_all(struct rs_uring_support *s)
{
    if (!probe_plain(s))
        return;
    s->recvsend_bundle = (s->features & IORING_FEAT_RECVSEND_BUNDLE) != 0;
    s->min_timeout = (s->features & IORING_FEAT_MIN_TIMEOUT) != 0;
    probe_try_setup_flags(s);
    s->buf_ring = probe_try_buf_ring(0);
    s->buf_ring_inc = s->buf_ring && probe_try_buf_ring(RS_IOU_PBUF_RING_INC);
    s->sparse_files = probe_try_sparse_files();
    s->ring_fd = probe_try_ring_fd();
    s->multishot_accept = probe_try_multishot_accept();
    s->multishot_recv = s->buf_ring && probe_try_multishot_recv();
    s->accept_direct = s->sparse_files && probe_try_accept_direct();
    s->send_zc = probe_try_send_zc();
    s->buf_recycle = probe_try_buf_recycle();
    if (s->sparse_files) {
        probe_try_socket_direct(s);
        s->pipe_direct = probe_try_pipe_direct();
        s->listen_direct =
            s->socket_direct && s->sockopt_cmd && probe_try_listen_direct();
    }
    s->resize_rings = s->defer_taskrun && probe_try_resize_rings();
    s->wait_region = probe_try_wait_region();
    s->napi = probe_try_napi();
    s->zcrx_lo_err = -probe_try_zcrx(1, 0);
    s->zcrx_nodev = probe_try_zcrx(0, PROBE_ZCRX_NODEV) == 0;
    s->sq_rewind = probe_try_sq_rewind();
    probe_try_query(s);
}

static void *probe_thread(void *arg)
{
    probe_all(arg);
    return NULL;
}

/* The trials run on a thread of their own. Their rings are torn down with
 * requests still armed (a multishot accept, a multishot recv): the kernel
 * cancels those after io_uring_queue_exit() returned and tells the task
 * that submitted them through task work, which interrupts that task like
 * a signal. The task's next blocking socket call with a timeout
 * (SO_RCVTIMEO) then fails with EINTR: seen in a program that started a
 * server (rs_server_start probes) and then talked to it
 * (tests/unit/test_server.c, about 1 run in 8 under load). A thread that
 * exits takes that work with it; the caller never sees it. */
void rs_probe_uring(struct rs_uring_support *s)
{
    memset(s, 0, sizeof(*s));
    s->compiled = true;
    s->disabled_sysctl = read_disabled_sysctl();
    pthread_t t;
    if (pthread_create(&t, NULL, probe_thread, s) != 0) {
        probe_all(s); /* no thread: here, interruptions and all */
        return;
    }
    pthread_join(t, NULL);
}

#else /* !RS_HAVE_URING */

void rs_probe_uring(struct rs_uring_support *s)
{
    memset(s, 0, sizeof(*s));
    s->compiled = false;
    s->disabled_sysctl = read_disabled_sysctl();
    s->unavailable_err = ENOTSUP;
    snprintf(s->why, sizeof(s->why), "%s: ringserve was built without liburing",
             rs_probe_errno_name(ENOTSUP));
}

#endif /* RS_HAVE_URING */
