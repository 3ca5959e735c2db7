/* The openat2-less fallback of the epoll backend's file ops
 * (rs_openat_walk): it must never open anything outside the directory,
 * and refuses every symbolic link, even one that stays inside (stricter
 * than RESOLVE_BENEATH, documented in backend_epoll/fspool.c). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend_epoll/fspool.h"

static char dir[64];
static int dirfd_;

static int rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    strcpy(dir, "/tmp/rs-walk-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    dirfd_ = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = openat(dirfd_, "f", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, "ok", 2) != 2)
        return -1;
    close(fd);
    if (mkdirat(dirfd_, "d", 0755) < 0 || mkdirat(dirfd_, "d/e", 0755) < 0)
        return -1;
    fd = openat(dirfd_, "d/e/g", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    close(fd);
    if (symlinkat("/etc", dirfd_, "out") < 0 || symlinkat("f", dirfd_, "in") < 0 ||
        symlinkat("d", dirfd_, "dl") < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    close(dirfd_);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void opens(const char *path)
{
    int fd = rs_openat_walk(dirfd_, path, O_RDONLY, 0);
    if (fd < 0)
        fail_msg("'%s': %s", path, strerror(-fd));
    close(fd);
}

static void test_fs_walk_opens_inside(void **state)
{
    (void)state;
    opens("f");
    opens("d/e/g");
    opens("./d//e/./g");
    opens("d/e/");
}

static void test_fs_walk_refuses_escapes_and_links(void **state)
{
    (void)state;
    assert_int_equal(rs_openat_walk(dirfd_, "/etc/passwd", O_RDONLY, 0), -EXDEV);
    assert_int_equal(rs_openat_walk(dirfd_, "../etc/passwd", O_RDONLY, 0), -EXDEV);
    assert_int_equal(rs_openat_walk(dirfd_, "d/../../etc/passwd", O_RDONLY, 0), -EXDEV);
    assert_int_equal(rs_openat_walk(dirfd_, "d/..", O_RDONLY, 0), -EXDEV);
    assert_int_equal(rs_openat_walk(dirfd_, "out/passwd", O_RDONLY, 0), -ELOOP);
    assert_int_equal(rs_openat_walk(dirfd_, "out", O_RDONLY, 0), -ELOOP);
    assert_int_equal(rs_openat_walk(dirfd_, "in", O_RDONLY, 0), -ELOOP);
    assert_int_equal(rs_openat_walk(dirfd_, "dl/e/g", O_RDONLY, 0), -ELOOP);
    assert_int_equal(rs_openat_walk(dirfd_, "missing", O_RDONLY, 0), -ENOENT);
    assert_int_equal(rs_openat_walk(dirfd_, "", O_RDONLY, 0), -ENOENT);
    assert_int_equal(rs_openat_walk(dirfd_, "f/x", O_RDONLY, 0), -ENOTDIR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fs_walk_opens_inside),
        cmocka_unit_test(test_fs_walk_refuses_escapes_and_links),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
