/* fault_shim.c - an LD_PRELOAD shim that fails the Nth call of one libc
 * function, for the fault-injection sweeps (test_fault.c).
 *
 * Environment (read once, when the shim is loaded):
 *   MINIDBX_FAULT=OP:N[:ERRNO]  fail the Nth call (N >= 1) of OP made after
 *                       the shim is armed; only that one call fails. OP is
 *                       one of: write (write, writev), pwrite (pwrite,
 *                       pwrite64, pwritev, pwritev64), fsync, fdatasync,
 *                       rename (rename, renameat, renameat2), open (open,
 *                       open64), openat (openat, openat64), mkdir (mkdir,
 *                       mkdirat), sync_file_range, malloc (malloc, calloc,
 *                       realloc). ERRNO is
 *                       EIO (default for I/O), ENOSPC, EMFILE, EACCES or
 *                       ENOMEM (default for malloc, which returns NULL).
 *   MINIDBX_FAULT_ARM=start|accept|path:PREFIX|manual   when counting
 *                       starts: at once (default); at the first accept() or
 *                       accept4() that returns a connection (a server: count
 *                       from its first request, not its start-up); at the
 *                       first open, openat or mkdir of a path that starts
 *                       with PREFIX (a command: count from its first touch of
 *                       the store, not from loading its libraries); or when
 *                       the program calls fault_shim_arm() (found with dlsym).
 *   MINIDBX_FAULT_SCOPE=files  write, pwrite, fsync and fdatasync count
 *                       only calls on files and directories, not on sockets, pipes
 *                       or eventfds (a server's wake-up channel, which no
 *                       disk error can reach; libmicrohttpd aborts when a
 *                       write to it fails).
 *   MINIDBX_FAULT_REPORT=FILE  appends "fired OP N" when the fault fires and
 *                       "calls OP C armed A" at exit (C: calls of OP counted).
 *
 * Nothing is affected while MINIDBX_FAULT is unset and fault_shim_arm() was
 * not called. The shim makes raw system calls for its own report, so it
 * never counts or fails its own I/O. */

/* Define pwrite and pwrite64 (and the others) both, as libc does; meson's
 * -D_FILE_OFFSET_BITS=64 would make the first a macro for the second. */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum fault_op { OP_NONE, OP_WRITE, OP_PWRITE, OP_FSYNC, OP_FDATASYNC, OP_RENAME, OP_OPEN, OP_OPENAT,
                OP_MKDIR, OP_SYNC_FILE_RANGE, OP_MALLOC, OP_COUNT };

static const char *const op_names[OP_COUNT] = { "none", "write", "pwrite", "fsync", "fdatasync", "rename",
                                                "open", "openat", "mkdir", "sync_file_range", "malloc" };

/* The armed fault. target_op is written before armed (release), read after. */
static enum fault_op target_op;
static unsigned long long target_n;
static int target_errno;
static atomic_int armed;
static atomic_ullong calls; /* calls of target_op since arming */
static atomic_int fired;
static atomic_int arm_on_accept;
static atomic_int arm_on_path;
static char arm_path[4096];
static int files_only;
static char report_path[4096];

void *__libc_malloc(size_t size);
void *__libc_calloc(size_t count, size_t size);
void *__libc_realloc(void *p, size_t size);

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pwritev64)(int, const struct iovec *, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_sync_file_range)(int, off_t, off_t, unsigned);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_renameat2)(int, const char *, int, const char *, unsigned);
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_accept)(int, struct sockaddr *, socklen_t *);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);

/* Append one line to the report file with raw system calls. */
static void report(const char *fmt, ...)
{
    if (report_path[0] == '\0')
        return;
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (len <= 0)
        return;
    long fd = syscall(SYS_openat, AT_FDCWD, report_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (syscall(SYS_write, (int)fd, line, (size_t)(len < (int)sizeof line ? len : (int)sizeof line - 1)) < 0) {
        /* nothing to do: the test sees a missing line */
    }
    syscall(SYS_close, (int)fd);
}

static int errno_by_name(const char *name, int fallback)
{
    static const struct { const char *name; int value; } table[] = {
        { "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EMFILE", EMFILE }, { "EACCES", EACCES }, { "ENOMEM", ENOMEM },
    };
    for (size_t i = 0; name && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0)
            return table[i].value;
    return fallback;
}

/* Parse "OP:N[:ERRNO]" and arm. 0, or -1 if spec is not understood. */
int fault_shim_arm(const char *spec)
{
    char op[32];
    char err[16] = "";
    unsigned long long n = 0;
    if (spec == NULL || sscanf(spec, "%31[a-z_]:%llu:%15[A-Z]", op, &n, err) < 2 || n == 0)
        return -1;
    enum fault_op found = OP_NONE;
    for (int i = 1; i < OP_COUNT; i++)
        if (strcmp(op, op_names[i]) == 0)
            found = (enum fault_op)i;
    if (found == OP_NONE)
        return -1;
    atomic_store(&armed, 0);
    target_op = found;
    target_n = n;
    target_errno = errno_by_name(err[0] ? err : NULL, found == OP_MALLOC ? ENOMEM : EIO);
    atomic_store(&calls, 0);
    atomic_store(&fired, 0);
    atomic_store(&armed, 1);
    return 0;
}

void fault_shim_disarm(void)
{
    atomic_store(&armed, 0);
}

/* Calls of the armed op counted so far, and whether the fault fired. */
unsigned long long fault_shim_calls(void)
{
    return atomic_load(&calls);
}

int fault_shim_fired(void)
{
    return atomic_load(&fired);
}

static int count_call(enum fault_op op);

/* 1 if this call of op is the one to fail (errno is then set). */
static int should_fail(enum fault_op op)
{
    if (!atomic_load_explicit(&armed, memory_order_acquire) || op != target_op)
        return 0;
    return count_call(op);
}

/* The same for a call on fd, which may be out of scope. */
static int should_fail_fd(enum fault_op op, int fd)
{
    struct stat st;
    if (!atomic_load_explicit(&armed, memory_order_acquire) || op != target_op)
        return 0;
    if (files_only && (fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))))
        return 0;
    return count_call(op);
}

static int count_call(enum fault_op op)
{
    if (atomic_fetch_add(&calls, 1) + 1 != target_n)
        return 0;
    atomic_store(&fired, 1);
    report("fired %s %llu\n", op_names[op], target_n);
    errno = target_errno;
    return 1;
}

/* The next definition of a function (libc's), looked up on first use: a
 * library's constructor may call it before the shim's ran. */
static void *resolve(void **slot, const char *name)
{
    void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        fn = dlsym(RTLD_NEXT, name);
        __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
    }
    return fn;
}
#define CALL(name) ((__typeof__(real_##name))resolve((void **)&real_##name, #name))

__attribute__((constructor)) static void shim_init(void)
{
    const char *scope = getenv("MINIDBX_FAULT_SCOPE");
    files_only = scope != NULL && strcmp(scope, "files") == 0;
    const char *path = getenv("MINIDBX_FAULT_REPORT");
    if (path != NULL)
        snprintf(report_path, sizeof report_path, "%s", path);
    const char *spec = getenv("MINIDBX_FAULT");
    const char *when = getenv("MINIDBX_FAULT_ARM");
    if (spec == NULL || spec[0] == '\0')
        return;
    if (fault_shim_arm(spec) != 0) {
        static const char msg[] = "fault_shim: MINIDBX_FAULT not understood (OP:N[:ERRNO])\n";
        syscall(SYS_write, 2, msg, sizeof msg - 1);
        _exit(125);
    }
    if (when != NULL && strcmp(when, "start") != 0) {
        atomic_store(&armed, 0);
        atomic_store(&arm_on_accept, strcmp(when, "accept") == 0);
        if (strncmp(when, "path:", 5) == 0 && when[5] != '\0') {
            snprintf(arm_path, sizeof arm_path, "%s", when + 5);
            atomic_store(&arm_on_path, 1);
        }
    }
}

__attribute__((destructor)) static void shim_fini(void)
{
    if (target_op != OP_NONE)
        report("calls %s %llu armed %d\n", op_names[target_op], atomic_load(&calls), atomic_load(&armed));
}

/* ---- the interposed functions ---- */

void *malloc(size_t size)
{
    return should_fail(OP_MALLOC) ? NULL : __libc_malloc(size);
}

void *calloc(size_t count, size_t size)
{
    return should_fail(OP_MALLOC) ? NULL : __libc_calloc(count, size);
}

void *realloc(void *p, size_t size)
{
    return should_fail(OP_MALLOC) ? NULL : __libc_realloc(p, size);
}

ssize_t write(int fd, const void *buf, size_t size)
{
    return should_fail_fd(OP_WRITE, fd) ? -1 : CALL(write)(fd, buf, size);
}

ssize_t writev(int fd, const struct iovec *iov, int count)
{
    return should_fail_fd(OP_WRITE, fd) ? -1 : CALL(writev)(fd, iov, count);
}

ssize_t pwrite(int fd, const void *buf, size_t size, off_t offset)
{
    return should_fail_fd(OP_PWRITE, fd) ? -1 : CALL(pwrite)(fd, buf, size, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t size, off_t offset)
{
    return should_fail_fd(OP_PWRITE, fd) ? -1 : CALL(pwrite64)(fd, buf, size, offset);
}

ssize_t pwritev(int fd, const struct iovec *iov, int count, off_t offset)
{
    return should_fail_fd(OP_PWRITE, fd) ? -1 : CALL(pwritev)(fd, iov, count, offset);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int count, off_t offset)
{
    return should_fail_fd(OP_PWRITE, fd) ? -1 : CALL(pwritev64)(fd, iov, count, offset);
}

int fsync(int fd)
{
    return should_fail_fd(OP_FSYNC, fd) ? -1 : CALL(fsync)(fd);
}

int fdatasync(int fd)
{
    return should_fail_fd(OP_FDATASYNC, fd) ? -1 : CALL(fdatasync)(fd);
}

int sync_file_range(int fd, off_t offset, off_t bytes, unsigned flags)
{
    return should_fail_fd(OP_SYNC_FILE_RANGE, fd) ? -1 : CALL(sync_file_range)(fd, offset, bytes, flags);
}

int rename(const char *from, const char *to)
{
    return should_fail(OP_RENAME) ? -1 : CALL(rename)(from, to);
}

int renameat(int from_dir, const char *from, int to_dir, const char *to)
{
    return should_fail(OP_RENAME) ? -1 : CALL(renameat)(from_dir, from, to_dir, to);
}

int renameat2(int from_dir, const char *from, int to_dir, const char *to, unsigned flags)
{
    return should_fail(OP_RENAME) ? -1 : CALL(renameat2)(from_dir, from, to_dir, to, flags);
}

/* MINIDBX_FAULT_ARM=path:PREFIX: the first use of a path under PREFIX arms
 * the fault, before that call is counted. */
static void arm_at_path(const char *path)
{
    if (atomic_load_explicit(&arm_on_path, memory_order_relaxed) && path != NULL &&
        strncmp(path, arm_path, strlen(arm_path)) == 0 && atomic_exchange(&arm_on_path, 0))
        atomic_store_explicit(&armed, 1, memory_order_release);
}

/* The mode argument is there only with O_CREAT or O_TMPFILE. */
static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    arm_at_path(path);
    return should_fail(OP_OPEN) ? -1 : CALL(open)(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    arm_at_path(path);
    return should_fail(OP_OPEN) ? -1 : CALL(open64)(path, flags, mode);
}

int openat(int dir, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    arm_at_path(path);
    return should_fail(OP_OPENAT) ? -1 : CALL(openat)(dir, path, flags, mode);
}

int openat64(int dir, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    arm_at_path(path);
    return should_fail(OP_OPENAT) ? -1 : CALL(openat64)(dir, path, flags, mode);
}

int mkdir(const char *path, mode_t mode)
{
    arm_at_path(path);
    return should_fail(OP_MKDIR) ? -1 : CALL(mkdir)(path, mode);
}

int mkdirat(int dir, const char *path, mode_t mode)
{
    arm_at_path(path);
    return should_fail(OP_MKDIR) ? -1 : CALL(mkdirat)(dir, path, mode);
}

/* MINIDBX_FAULT_ARM=accept: a server's first connection arms the fault. */
static int arm_at_connection(int fd)
{
    if (fd >= 0 && atomic_exchange(&arm_on_accept, 0))
        atomic_store_explicit(&armed, 1, memory_order_release);
    return fd;
}

int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    return arm_at_connection(CALL(accept)(fd, addr, len));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    return arm_at_connection(CALL(accept4)(fd, addr, len, flags));
}
