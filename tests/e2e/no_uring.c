/* no_uring: run a command in a world without io_uring.
 *
 * Usage: no_uring COMMAND [ARGS...]
 *
 * Installs a seccomp filter that makes io_uring_setup (425), io_uring_enter
 * (426) and io_uring_register (427) fail with EPERM, then execs the command.
 * This is what a container runtime's default seccomp profile does, and it is
 * how the tests check that `--backend=auto` falls back to epoll and that
 * `--backend=uring` fails with a clear message.
 *
 * The filter is written with the raw BPF macros (libseccomp is not needed).
 * It survives execve() and is inherited by children; PR_SET_NO_NEW_PRIVS
 * lets an unprivileged process install it.
 *
 * Syscall numbers: io_uring arrived (5.1) after the kernel unified syscall
 * numbering across architectures, so 425-427 are the same on every
 * architecture this can run on (x86-64, i386, arm64, ...; only alpha
 * differs). The filter therefore does not branch on seccomp_data.arch; on
 * x86-64 it clears the x32 bit first so the x32 entry points are caught too.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#define NR_IO_URING_SETUP    425
#define NR_IO_URING_REGISTER 427
#define X32_SYSCALL_BIT      0x40000000u

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMAND [ARGS...]\n", argv[0]);
        return 2;
    }

    struct sock_filter filter[] = {
        /* A = syscall number, x32 bit cleared */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_STMT(BPF_ALU | BPF_AND | BPF_K, ~X32_SYSCALL_BIT),
        /* 425 <= A <= 427: fail with EPERM; anything else: allow */
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, NR_IO_URING_SETUP, 0, 2),
        BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, NR_IO_URING_REGISTER, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = (unsigned short)(sizeof(filter) / sizeof(filter[0])),
        .filter = filter,
    };

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        fprintf(stderr, "no_uring: prctl(PR_SET_NO_NEW_PRIVS): %s\n", strerror(errno));
        return 126;
    }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0) {
        fprintf(stderr, "no_uring: prctl(PR_SET_SECCOMP): %s\n", strerror(errno));
        return 126;
    }
    execvp(argv[1], argv + 1);
    fprintf(stderr, "no_uring: cannot run %s: %s\n", argv[1], strerror(errno));
    return 127;
}
