/* enospc_shim.c - an LD_PRELOAD shim that makes a disk "full" for files
 * under one directory, for test_diskfull when it cannot mount a tmpfs.
 *
 * Environment, read on every call so a test can change it at run time:
 *   MINIDBX_SHIM_DIR     only fds whose path starts with this are affected
 *   MINIDBX_SHIM_BUDGET  bytes that may be written to them (counted since
 *                        the process started, see enospc_shim_bytes); past
 *                        it, writes fail with ENOSPC and so do fsyncs.
 *                        Unset or negative: no limit.
 * The counters below are exported so the test can find them with dlsym. */

/* Define pwrite and pwrite64 both, as libc does; meson's
 * -D_FILE_OFFSET_BITS=64 would make the first a macro for the second. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

unsigned long long enospc_shim_bytes;    /* written to affected fds */
unsigned long long enospc_shim_failures; /* calls failed with ENOSPC */

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_fallocate)(int, int, off_t, off_t);

__attribute__((constructor)) static void shim_init(void)
{
    real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    real_pwrite = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    real_writev = (ssize_t(*)(int, const struct iovec *, int))dlsym(RTLD_NEXT, "writev");
    real_pwritev = (ssize_t(*)(int, const struct iovec *, int, off_t))dlsym(RTLD_NEXT, "pwritev");
    real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    real_fallocate = (int (*)(int, int, off_t, off_t))dlsym(RTLD_NEXT, "fallocate");
}

/* 1 if fd is a file under $MINIDBX_SHIM_DIR. */
static int in_scope(int fd)
{
    const char *dir = getenv("MINIDBX_SHIM_DIR");
    if (dir == NULL || dir[0] == '\0')
        return 0;
    char link[64], path[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        return 0;
    path[n] = '\0';
    return strncmp(path, dir, strlen(dir)) == 0;
}

static long long budget(void)
{
    const char *text = getenv("MINIDBX_SHIM_BUDGET");
    return text ? atoll(text) : -1;
}

/* Charge size bytes to fd; 0 if allowed, -1 (errno ENOSPC) if the disk is full. */
static int charge(int fd, size_t size)
{
    if (!in_scope(fd))
        return 0;
    long long limit = budget();
    unsigned long long used = __atomic_load_n(&enospc_shim_bytes, __ATOMIC_SEQ_CST);
    if (limit >= 0 && used + size > (unsigned long long)limit) {
        __atomic_add_fetch(&enospc_shim_failures, 1, __ATOMIC_SEQ_CST);
        errno = ENOSPC;
        return -1;
    }
    __atomic_add_fetch(&enospc_shim_bytes, size, __ATOMIC_SEQ_CST);
    return 0;
}

/* fsync fails once the budget is spent, as on a thin volume. */
static int sync_allowed(int fd)
{
    if (!in_scope(fd))
        return 1;
    long long limit = budget();
    if (limit >= 0 && __atomic_load_n(&enospc_shim_bytes, __ATOMIC_SEQ_CST) >= (unsigned long long)limit) {
        __atomic_add_fetch(&enospc_shim_failures, 1, __ATOMIC_SEQ_CST);
        errno = ENOSPC;
        return 0;
    }
    return 1;
}

static size_t iov_bytes(const struct iovec *iov, int count)
{
    size_t total = 0;
    for (int i = 0; i < count; i++)
        total += iov[i].iov_len;
    return total;
}

ssize_t write(int fd, const void *buf, size_t size)
{
    return charge(fd, size) ? -1 : real_write(fd, buf, size);
}

ssize_t pwrite(int fd, const void *buf, size_t size, off_t offset)
{
    return charge(fd, size) ? -1 : real_pwrite(fd, buf, size, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t size, off_t offset)
{
    return charge(fd, size) ? -1 : real_pwrite64(fd, buf, size, offset);
}

ssize_t writev(int fd, const struct iovec *iov, int count)
{
    return charge(fd, iov_bytes(iov, count)) ? -1 : real_writev(fd, iov, count);
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t offset)
{
    return charge(fd, iov_bytes(iov, count)) ? -1 : real_pwritev(fd, iov, count, offset);
}

int fsync(int fd)
{
    return sync_allowed(fd) ? real_fsync(fd) : -1;
}

int fdatasync(int fd)
{
    return sync_allowed(fd) ? real_fdatasync(fd) : -1;
}

int fallocate(int fd, int mode, off_t offset, off_t len)
{
    return charge(fd, (size_t)len) ? -1 : real_fallocate(fd, mode, offset, len);
}
