/* A wait with a timeout passes its parameters to io_uring_enter(2) in a
 * struct the kernel copies in on every call (IORING_ENTER_EXT_ARG: the
 * getevents argument, then the timespec it points to). With a registered
 * wait region the parameters sit in a page the kernel has pinned: the call
 * names an offset into it, and the kernel reads them in place. Same
 * syscall count; what it saves is the two copies per wait (measured in
 * docs/kernels.md: tens of nanoseconds per wait).
 *
 * liburing 2.3 has no call that submits and waits this way, and waiting
 * separately would cost a second syscall on every turn with SQEs queued.
 * So this file publishes the queued SQEs itself, as liburing does before
 * every io_uring_enter: sqe_tail (the SQEs handed out) becomes the
 * kernel-visible tail, and sqe_head records that it was published. These
 * are public fields of struct io_uring_sq with the same meaning from
 * liburing 2.3 to 2.15 (__io_uring_flush_sq() in src/queue.c); without
 * SQPOLL the kernel reads the tail only inside the call (the release
 * store costs nothing on x86). */
#include "wait_reg.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum {
    MEM_REGION = 34,           /* IORING_REGISTER_MEM_REGION (kernel ABI) */
    ENABLE_RINGS = 12,         /* IORING_REGISTER_ENABLE_RINGS */
    REGION_TYPE_USER = 1,      /* IORING_MEM_REGION_TYPE_USER */
    REGION_REG_WAIT_ARG = 1,   /* IORING_MEM_REGION_REG_WAIT_ARG */
    ENTER_EXT_ARG_REG = 1 << 6 /* IORING_ENTER_EXT_ARG_REG */
};

/* struct io_uring_region_desc and io_uring_mem_region_reg (kernel ABI). */
struct region_desc {
    __u64 user_addr, size;
    __u32 flags, id;
    __u64 mmap_offset;
    __u64 resv[4];
};
struct mem_region_reg {
    __u64 region_uptr, flags;
    __u64 resv[2];
};

int rs_wait_reg_setup(struct io_uring *ring, struct rs_wait_reg *w)
{
    long page = sysconf(_SC_PAGESIZE);
    w->len = page > 0 ? (size_t)page : 4096;
    w->slot =
        mmap(NULL, w->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (w->slot == MAP_FAILED) {
        w->slot = NULL;
        return -ENOMEM;
    }
    struct region_desc rd = {.user_addr = (__u64)(uintptr_t)w->slot,
                             .size = w->len,
                             .flags = REGION_TYPE_USER};
    struct mem_region_reg reg = {.region_uptr = (__u64)(uintptr_t)&rd,
                                 .flags = REGION_REG_WAIT_ARG};
    int rc = io_uring_register((unsigned)ring->ring_fd, MEM_REGION, &reg, 1);
    if (rc == 0)
        rc = io_uring_register((unsigned)ring->ring_fd, ENABLE_RINGS, NULL, 0);
    return rc;
}

void rs_wait_reg_free(struct rs_wait_reg *w)
{
    if (w->slot)
        munmap(w->slot, w->len);
    w->slot = NULL;
}

int rs_wait_reg_enter(struct io_uring *ring, struct rs_wait_reg *w, unsigned want,
                      const struct __kernel_timespec *ts, unsigned min_wait_usec,
                      int enter_fd, bool registered)
{
    struct io_uring_sq *sq = &ring->sq;
    unsigned tail = sq->sqe_tail;
    if (sq->sqe_head != tail) {
        sq->sqe_head = tail;
        io_uring_smp_store_release(sq->ktail, tail);
    }
    unsigned submit = tail - io_uring_smp_load_acquire(sq->khead);
    struct rs_reg_wait *p = &w->slot[0];
    p->ts = *ts;
    p->min_wait_usec = min_wait_usec;
    p->flags = RS_REG_WAIT_TS;
    unsigned flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG | ENTER_EXT_ARG_REG |
                     (registered ? IORING_ENTER_REGISTERED_RING : 0);
    /* The argument is the offset of our slot in the region: 0. */
    return io_uring_enter2((unsigned)enter_fd, submit, want, flags, NULL,
                           sizeof(struct rs_reg_wait));
}
