/* powercut_shim.c - an LD_PRELOAD shim that keeps, beside a store, what a
 * power cut would leave of it: only what was flushed. test_crash kills
 * the process and rebuilds the store from that record alone.
 *
 * Environment:
 *   MINIDBX_POWERCUT_STORE=DIR   the store (an absolute, real path); only
 *                                files and directories under it are watched
 *   MINIDBX_POWERCUT_SHADOW=DIR  where the flushed state is kept:
 *       DIR/i<ino>  the bytes of a file as flushed (fsync, fdatasync, or a
 *                   write through an O_SYNC/O_DSYNC descriptor, which is
 *                   durable when it returns)
 *       DIR/d<ino>  a directory's entries as of its last fsync, one per line:
 *                   "f|d <ino> <name>"
 *       DIR/pending.N  every write that was not flushed when it was made, in
 *                   order (N: when the process started; a record cut short
 *                   by the kill ends its file): {ino, offset, length} and the bytes, and
 *                   {ino, -1, 0} when the inode is flushed (what came before
 *                   it is in DIR/i<ino> then). The kernel may have written
 *                   any of these back before the power went: test_crash
 *                   applies a random part of those not flushed since.
 *   A flush of a file also covers the writes that processes before this
 *   one left unflushed (the kernel flushes every dirty page of the file):
 *   this process starts with those, read from their pending logs.
 *   test_crash writes d<ino> and i<ino> for the whole store before the
 *   process starts (the state it found), so anything not in them was never
 *   flushed.
 *
 * The model: a write is kept if a flush of its file came after it, and may
 * be kept (DIR/pending) if none did; a directory entry (create, rename,
 * unlink, mkdir) is lost unless the directory was fsync'ed after it. A file whose entry survived but whose bytes were
 * never flushed comes back empty. Files are known by inode number, so the
 * shim needs no path bookkeeping beyond open; a file the program writes
 * through a descriptor opened before the shim's variables were read is not
 * watched (none: they are read at load).
 *
 * The shim's own reads and writes are raw system calls, so it never sees
 * them. Thread-safe: one mutex for its tables. */
#undef _FILE_OFFSET_BITS
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 4096
#define MAX_RANGES 1024

/* What is known of a watched descriptor. */
struct watched {
    int on;
    int sync_writes; /* O_SYNC / O_DSYNC: each write is flushed when it returns */
    int append;      /* O_APPEND: a write lands at the end */
    int is_dir;
    ino_t ino;
};

/* Byte ranges of one inode written since its last flush. */
struct dirty {
    ino_t ino;
    size_t count;
    off_t start[MAX_RANGES], end[MAX_RANGES];
    struct dirty *next;
};

static char store_dir[PATH_MAX];
static char shadow_dir[PATH_MAX / 2];
static size_t store_len;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct watched fds[MAX_FD];
static struct dirty *dirty_list;

static void dirty_add(struct dirty *d, off_t start, off_t end);
static void inherit_dirty(void);

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);

__attribute__((constructor)) static void powercut_init(void)
{
    real_write = dlsym(RTLD_NEXT, "write");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = dlsym(RTLD_NEXT, "pwrite64");
    real_pwritev = dlsym(RTLD_NEXT, "pwritev");
    real_pwritev64 = dlsym(RTLD_NEXT, "pwritev64");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_open = dlsym(RTLD_NEXT, "open");
    real_open64 = dlsym(RTLD_NEXT, "open64");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_openat64 = dlsym(RTLD_NEXT, "openat64");
    real_close = dlsym(RTLD_NEXT, "close");
    const char *store = getenv("MINIDBX_POWERCUT_STORE"), *shadow = getenv("MINIDBX_POWERCUT_SHADOW");
    if (!store || !shadow || strlen(store) >= sizeof store_dir || strlen(shadow) >= sizeof shadow_dir)
        return;
    strcpy(store_dir, store);
    strcpy(shadow_dir, shadow);
    store_len = strlen(store_dir);
    inherit_dirty();
}

static void die(const char *what)
{
    char line[256];
    int len = snprintf(line, sizeof line, "powercut_shim: %s: %s\n", what, strerror(errno));
    syscall(SYS_write, 2, line, (size_t)len);
    _exit(99); /* the test sees an exit, not the SIGKILL it sent */
}

static void shadow_path(char kind, ino_t ino, char *out)
{
    snprintf(out, PATH_MAX, "%s/%c%llu", shadow_dir, kind, (unsigned long long)ino);
}

/* Is path (relative to dirfd) under the store? */
static int under_store(int dirfd, const char *path)
{
    char abs[2 * PATH_MAX + 2];
    if (!store_len || !path)
        return 0;
    if (path[0] != '/') {
        char base[PATH_MAX];
        if (dirfd != AT_FDCWD || !getcwd(base, sizeof base))
            return 0; /* the library opens by absolute path */
        snprintf(abs, sizeof abs, "%s/%s", base, path);
        path = abs;
    }
    return strncmp(path, store_dir, store_len) == 0 && (path[store_len] == '/' || path[store_len] == '\0');
}

static void watch(int fd, int flags)
{
    struct stat st;
    if (fd < 0 || fd >= MAX_FD || fstat(fd, &st) < 0)
        return;
    pthread_mutex_lock(&lock);
    fds[fd] = (struct watched){ .on = 1, .sync_writes = (flags & (O_SYNC | O_DSYNC)) != 0,
                                .append = (flags & O_APPEND) != 0, .is_dir = S_ISDIR(st.st_mode),
                                .ino = st.st_ino };
    pthread_mutex_unlock(&lock);
}

static struct dirty *dirty_of(ino_t ino)
{
    for (struct dirty *d = dirty_list; d; d = d->next)
        if (d->ino == ino)
            return d;
    struct dirty *d = calloc(1, sizeof *d);
    if (!d)
        die("out of memory");
    d->ino = ino;
    d->next = dirty_list;
    dirty_list = d;
    return d;
}

/* Copy [start, end) of the real file fd to the shadow of ino (clamped to
 * the real file's size), and give the shadow the real size. */
static void copy_range(int fd, ino_t ino, off_t start, off_t end)
{
    char path[PATH_MAX], self[64], buf[65536];
    struct stat st;
    shadow_path('i', ino, path);
    /* fd may be write-only (LMDB's O_DSYNC descriptor): read through a new one */
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    long in = syscall(SYS_openat, AT_FDCWD, self, O_RDONLY | O_CLOEXEC);
    long out = syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (in < 0 || out < 0 || fstat((int)in, &st) < 0)
        die("shadow open");
    if (end > st.st_size)
        end = st.st_size;
    for (off_t off = start; off < end;) {
        size_t want = (size_t)(end - off) < sizeof buf ? (size_t)(end - off) : sizeof buf;
        long got = syscall(SYS_pread64, (int)in, buf, want, off);
        if (got < 0)
            die("reading a flushed file");
        if (got == 0)
            break;
        if (syscall(SYS_pwrite64, (int)out, buf, (size_t)got, off) != got)
            die("shadow write");
        off += got;
    }
    if (syscall(SYS_ftruncate, (int)out, st.st_size) < 0)
        die("shadow truncate");
    syscall(SYS_close, (int)out);
    syscall(SYS_close, (int)in);
}

/* This process's DIR/pending.N, opened at its first record. */
static int pending_log(void)
{
    static long pending = -1;
    char path[PATH_MAX];
    if (pending < 0) { /* one file per process, named in the order they started */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        snprintf(path, sizeof path, "%s/pending.%020llu", shadow_dir,
                 (unsigned long long)now.tv_sec * 1000000000ull + (unsigned long long)now.tv_nsec);
        if ((pending = syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0)
            die("pending log");
    }
    return (int)pending;
}

/* A record's head: {ino, offset, length}; a flush is {ino, -1, 0}. */
static void pending_head(ino_t ino, off_t off, off_t len)
{
    int64_t head[3] = { (int64_t)ino, (int64_t)off, (int64_t)len };
    if (syscall(SYS_write, pending_log(), head, sizeof head) != (long)sizeof head)
        die("pending log write");
}

/* A write record's bytes: [off, off + len) read back from fd, padded with
 * zeros where the file is shorter. */
static void pending_data(int fd, off_t off, off_t len)
{
    char self[64], buf[65536];
    snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    long in = syscall(SYS_openat, AT_FDCWD, self, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        die("pending read");
    for (off_t done = 0; done < len;) {
        size_t want = (size_t)(len - done) < sizeof buf ? (size_t)(len - done) : sizeof buf;
        long got = syscall(SYS_pread64, (int)in, buf, want, off + done);
        if (got <= 0) /* shorter than written (truncated since): pad with zeros */
            got = (long)want, memset(buf, 0, want);
        if (syscall(SYS_write, pending_log(), buf, (size_t)got) != got)
            die("pending log write");
        done += got;
    }
    syscall(SYS_close, (int)in);
}

/* Before a write of n bytes at off on fd that the kernel would keep
 * unflushed: its record's head goes first, so that a kill between the
 * write and its record still leaves its range known (a record cut short
 * is no write to replay, but inherit_dirty takes its range as dirty).
 * True: the lock is held until wrote(). */
static bool will_write(int fd, off_t off, size_t n)
{
    if (n == 0 || off < 0 || fd < 0 || fd >= MAX_FD)
        return false;
    pthread_mutex_lock(&lock);
    struct watched w = fds[fd];
    if (w.on && !w.is_dir && !w.sync_writes && !w.append) {
        pending_head(w.ino, off, (off_t)n);
        return true;
    }
    pthread_mutex_unlock(&lock);
    return false;
}

/* After a write on fd of n bytes asked at off (off < 0: at the file's
 * end) that wrote rc; headed: will_write wrote the record's head. */
static void wrote(int fd, off_t off, size_t n, ssize_t rc, bool headed)
{
    if (headed) { /* the head said n bytes: the record carries n, as the file has them now */
        dirty_add(dirty_of(fds[fd].ino), off, off + (off_t)n);
        pending_data(fd, off, (off_t)n);
        pthread_mutex_unlock(&lock);
        return;
    }
    if (rc <= 0 || fd < 0 || fd >= MAX_FD)
        return;
    pthread_mutex_lock(&lock);
    struct watched w = fds[fd];
    if (w.on && !w.is_dir) {
        if (off < 0 || w.append) {
            struct stat st;
            off = fstat(fd, &st) == 0 && st.st_size >= rc ? st.st_size - rc : 0;
        }
        if (w.sync_writes) {
            copy_range(fd, w.ino, off, off + rc);
        } else {
            dirty_add(dirty_of(w.ino), off, off + rc);
            pending_head(w.ino, off, rc);
            pending_data(fd, off, rc);
        }
    }
    pthread_mutex_unlock(&lock);
}

/* Record a directory's entries as flushed (written whole, then renamed). */
static void flush_dir(int fd, ino_t ino)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    shadow_path('d', ino, path);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int dfd = (int)syscall(SYS_dup, fd);
    DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
    FILE *out = fopen(tmp, "w");
    if (!dir || !out)
        die("listing a directory");
    rewinddir(dir);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))
            fprintf(out, "%c %llu %s\n", S_ISDIR(st.st_mode) ? 'd' : 'f', (unsigned long long)st.st_ino,
                    e->d_name);
    }
    closedir(dir);
    if (fclose(out) != 0 || rename(tmp, path) != 0)
        die("writing a directory listing");
}

/* Add [start, end) to d, folding all into one range when full. */
static void dirty_add(struct dirty *d, off_t start, off_t end)
{
    if (d->count == MAX_RANGES) {
        for (size_t i = 1; i < d->count; i++) {
            d->start[0] = d->start[i] < d->start[0] ? d->start[i] : d->start[0];
            d->end[0] = d->end[i] > d->end[0] ? d->end[i] : d->end[0];
        }
        d->count = 1;
    }
    d->start[d->count] = start;
    d->end[d->count++] = end;
}

/* A flush writes back every dirty page of its file, whoever dirtied it: a
 * process that died left its unflushed writes in the page cache, and the
 * next flush of the file by anyone makes them durable. Those writes are
 * the records of the earlier processes' pending logs that no flush of
 * their inode followed: start this process's dirty ranges with them. The
 * earlier processes are gone (the tests run one watched process at a
 * time). */
static void inherit_dirty(void)
{
    struct dirent **names;
    int n = scandir(shadow_dir, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char path[PATH_MAX];
        if (strncmp(names[i]->d_name, "pending.", 8) == 0 &&
            (size_t)snprintf(path, sizeof path, "%s/%s", shadow_dir, names[i]->d_name) < sizeof path) {
            long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
            int64_t head[3];
            off_t at = 0;
            /* a record cut short by a kill ends the file */
            while (fd >= 0 && syscall(SYS_pread64, (int)fd, head, sizeof head, at) == (long)sizeof head) {
                struct dirty *d = dirty_of((ino_t)head[0]);
                if (head[1] < 0)
                    d->count = 0;
                else
                    dirty_add(d, (off_t)head[1], (off_t)(head[1] + head[2]));
                at += (off_t)sizeof head + (head[1] >= 0 ? (off_t)head[2] : 0);
            }
            if (fd >= 0)
                syscall(SYS_close, (int)fd);
        }
        free(names[i]);
    }
    if (n >= 0)
        free(names);
}

/* After a flush of fd returned: what it covered is durable now. */
static void flushed(int fd)
{
    if (fd < 0 || fd >= MAX_FD)
        return;
    pthread_mutex_lock(&lock);
    struct watched w = fds[fd];
    if (w.on && w.is_dir) {
        flush_dir(fd, w.ino);
    } else if (w.on) {
        struct dirty *d = dirty_of(w.ino);
        for (size_t i = 0; i < d->count; i++)
            copy_range(fd, w.ino, d->start[i], d->end[i]);
        if (d->count == 0)
            copy_range(fd, w.ino, 0, 0); /* at least the size */
        d->count = 0;
        pending_head(w.ino, -1, 0);
    }
    pthread_mutex_unlock(&lock);
}

/* --- the interposed calls ------------------------------------------------------- */

#define OPEN_MODE(flags, mode)                                                                               \
    do {                                                                                                     \
        if ((flags) & (O_CREAT | O_TMPFILE)) {                                                               \
            va_list ap;                                                                                      \
            va_start(ap, flags);                                                                             \
            mode = va_arg(ap, int);                                                                          \
            va_end(ap);                                                                                      \
        }                                                                                                    \
    } while (0)

int open(const char *path, int flags, ...)
{
    int mode = 0;
    OPEN_MODE(flags, mode);
    int fd = real_open(path, flags, mode);
    if (fd >= 0 && under_store(AT_FDCWD, path))
        watch(fd, flags);
    return fd;
}

int open64(const char *path, int flags, ...)
{
    int mode = 0;
    OPEN_MODE(flags, mode);
    int fd = real_open64(path, flags, mode);
    if (fd >= 0 && under_store(AT_FDCWD, path))
        watch(fd, flags);
    return fd;
}

int openat(int dirfd, const char *path, int flags, ...)
{
    int mode = 0;
    OPEN_MODE(flags, mode);
    int fd = real_openat(dirfd, path, flags, mode);
    if (fd >= 0 && under_store(dirfd, path))
        watch(fd, flags);
    return fd;
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    int mode = 0;
    OPEN_MODE(flags, mode);
    int fd = real_openat64(dirfd, path, flags, mode);
    if (fd >= 0 && under_store(dirfd, path))
        watch(fd, flags);
    return fd;
}

int close(int fd)
{
    if (fd >= 0 && fd < MAX_FD) {
        pthread_mutex_lock(&lock);
        fds[fd].on = 0;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

static size_t iov_bytes(const struct iovec *iov, int count)
{
    size_t n = 0;
    for (int i = 0; i < count; i++)
        n += iov[i].iov_len;
    return n;
}

ssize_t write(int fd, const void *buf, size_t n)
{
    off_t off = fd >= 0 && fd < MAX_FD && fds[fd].on ? lseek(fd, 0, SEEK_CUR) : -1;
    bool headed = will_write(fd, off, n);
    ssize_t rc = real_write(fd, buf, n);
    wrote(fd, off, n, rc, headed);
    return rc;
}

ssize_t writev(int fd, const struct iovec *iov, int count)
{
    off_t off = fd >= 0 && fd < MAX_FD && fds[fd].on ? lseek(fd, 0, SEEK_CUR) : -1;
    size_t n = iov_bytes(iov, count);
    bool headed = will_write(fd, off, n);
    ssize_t rc = real_writev(fd, iov, count);
    wrote(fd, off, n, rc, headed);
    return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    bool headed = will_write(fd, off, n);
    ssize_t rc = real_pwrite(fd, buf, n, off);
    wrote(fd, off, n, rc, headed);
    return rc;
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    bool headed = will_write(fd, off, n);
    ssize_t rc = real_pwrite64(fd, buf, n, off);
    wrote(fd, off, n, rc, headed);
    return rc;
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t off)
{
    size_t n = iov_bytes(iov, count);
    bool headed = will_write(fd, off, n);
    ssize_t rc = real_pwritev(fd, iov, count, off);
    wrote(fd, off, n, rc, headed);
    return rc;
}

ssize_t pwritev64(int fd, const struct iovec *iov, int count, off_t off)
{
    size_t n = iov_bytes(iov, count);
    bool headed = will_write(fd, off, n);
    ssize_t rc = real_pwritev64(fd, iov, count, off);
    wrote(fd, off, n, rc, headed);
    return rc;
}

int fsync(int fd)
{
    int rc = real_fsync(fd);
    if (rc == 0)
        flushed(fd);
    return rc;
}

int fdatasync(int fd)
{
    int rc = real_fdatasync(fd);
    if (rc == 0)
        flushed(fd);
    return rc;
}
