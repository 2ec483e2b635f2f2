/*
 * util.c - clock, PRNG, data sets, paths and child processes for the
 * benchmark. Nothing here is timed by itself.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int fail(const char *what, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "minidbx-bench: %s: ", what);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -1;
}

int fail_mdx(const char *call, int rc)
{
    return fail(call, "returned %d (%s): %s", rc, minidbx_strerror(rc),
                minidbx_errmsg(NULL));
}

/* splitmix64: fast enough (several GB/s) that generating content on the
 * fly costs little next to hashing and writing it. */
uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void rng_fill(void *buf, size_t len, uint64_t *state)
{
    unsigned char *p = buf;
    size_t i;

    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t v = rng_next(state);
        memcpy(p + i, &v, 8);
    }
    if (i < len) {
        uint64_t v = rng_next(state);
        memcpy(p + i, &v, len - i);
    }
}

int sha256(const void *data, size_t len, minidbx_id *out)
{
    unsigned int n = 0;

    if (!EVP_Digest(data, len, out->bytes, &n, EVP_sha256(), NULL) || n != MINIDBX_ID_SIZE)
        return fail("EVP_Digest", "SHA-256 failed");
    return 0;
}

void hex_of(const unsigned char *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    out[2 * len] = '\0';
}

int dataset_make(bench_dataset *ds, size_t count, size_t item_bytes, uint64_t seed)
{
    size_t i;

    memset(ds, 0, sizeof(*ds));
    ds->data = malloc(count * item_bytes);
    ds->keys = malloc(count * sizeof(*ds->keys));
    if (!ds->data || !ds->keys) {
        dataset_free(ds);
        return fail("dataset", "out of memory for %zu x %zu B", count, item_bytes);
    }
    ds->count = count;
    ds->item_bytes = item_bytes;
    /* Writing every byte here also warms the buffer before any timing. */
    rng_fill(ds->data, count * item_bytes, &seed);
    for (i = 0; i < count; i++) {
        if (sha256(dataset_item(ds, i), item_bytes, &ds->keys[i]) != 0) {
            dataset_free(ds);
            return -1;
        }
    }
    return 0;
}

void dataset_free(bench_dataset *ds)
{
    free(ds->data);
    free(ds->keys);
    memset(ds, 0, sizeof(*ds));
}

size_t *random_order(size_t count, uint64_t seed)
{
    size_t *order = malloc((count ? count : 1) * sizeof(*order));
    size_t i;

    if (!order) {
        fail("random_order", "out of memory");
        return NULL;
    }
    for (i = 0; i < count; i++)
        order[i] = i;
    for (i = count; i > 1; i--) {
        size_t j = (size_t)(rng_next(&seed) % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    return order;
}

int path_join(char out[PATH_MAX], const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);

    if (n < 0 || n >= PATH_MAX)
        return fail("path", "too long: %s/%s", dir, name);
    return 0;
}

int make_dir(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return fail("mkdir", "%s: %s", path, strerror(errno));
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0)
        return fail("remove", "%s: %s", path, strerror(errno));
    return 0;
}

int remove_tree(const char *path)
{
    return nftw(path, remove_entry, 32, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

/* nftw has no context argument: disk_bytes sums into this. */
static double disk_sum;

static int add_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)path;
    (void)type;
    (void)ftw;
    disk_sum += (double)sb->st_blocks * 512.0;
    return 0;
}

double disk_bytes(const char *path)
{
    disk_sum = 0.0;
    if (nftw(path, add_entry, 32, FTW_PHYS) != 0)
        return fail("disk usage", "%s: %s", path, strerror(errno));
    return disk_sum;
}

int write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read until len bytes or end of file; *got says how many. */
int read_full(int fd, void *buf, size_t len, size_t *got)
{
    unsigned char *p = buf;
    size_t done = 0;

    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    *got = done;
    return 0;
}

int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = -1;

    if (fd < 0)
        return fail("open dir", "%s: %s", path, strerror(errno));
    if (fsync(fd) != 0) {
        fail("fsync dir", "%s: %s", path, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

double peak_rss_mib(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1.0;
    return (double)ru.ru_maxrss / 1024.0; /* ru_maxrss is in KiB on Linux */
}

static void child_main(int (*fn)(void *, child_result *), void *arg, int fd)
{
    child_result res;
    int rc;

    memset(&res, 0, sizeof(res));
    res.start_rss_mib = peak_rss_mib();
    rc = fn(arg, &res);
    res.peak_rss_mib = peak_rss_mib();
    if (rc == 0 && write_all(fd, &res, sizeof(res)) != 0)
        rc = -1;
    fflush(NULL);
    _exit(rc == 0 ? 0 : 1);
}

int run_in_child(int (*fn)(void *arg, child_result *out), void *arg, child_result *out)
{
    int fds[2];
    pid_t pid;
    size_t got = 0;
    int rc = -1;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return fail("pipe", "%s", strerror(errno));
    fflush(NULL); /* or the child would print buffered output again */
    pid = fork();
    if (pid < 0) {
        fail("fork", "%s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        child_main(fn, arg, fds[1]);
    }
    close(fds[1]);
    if (read_full(fds[0], out, sizeof(*out), &got) != 0)
        fail("child", "read: %s", strerror(errno));
    close(fds[0]);
    if (wait_child(pid, "benchmark child") == 0 && got == sizeof(*out))
        rc = 0;
    return rc;
}

int spawn(char *const argv[], int *to_child, int *from_child, pid_t *pid)
{
    int in[2] = { -1, -1 }, outp[2] = { -1, -1 };
    int devnull = -1;

    if ((to_child && pipe2(in, O_CLOEXEC) != 0) || (from_child && pipe2(outp, O_CLOEXEC) != 0))
        goto fail_pipes;
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0)
        goto fail_pipes;
    fflush(NULL);
    *pid = fork();
    if (*pid < 0)
        goto fail_pipes;
    if (*pid == 0) {
        /* dup2 clears O_CLOEXEC on the copies; every other fd closes. */
        if (dup2(to_child ? in[0] : devnull, 0) < 0 || dup2(from_child ? outp[1] : devnull, 1) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(devnull);
    if (to_child) {
        close(in[0]);
        *to_child = in[1];
    }
    if (from_child) {
        close(outp[1]);
        *from_child = outp[0];
    }
    return 0;

fail_pipes:
    fail("spawn", "%s: %s", argv[0], strerror(errno));
    if (devnull >= 0)
        close(devnull);
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (outp[i] >= 0)
            close(outp[i]);
    }
    return -1;
}

int wait_child(pid_t pid, const char *what)
{
    int status;

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return fail(what, "waitpid: %s", strerror(errno));
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return fail(what, "exited with status %d", WEXITSTATUS(status));
    return fail(what, "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int program_in_path(const char *name)
{
    const char *path = getenv("PATH");
    char dir[PATH_MAX], full[PATH_MAX];

    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0 && len < sizeof(dir)) {
            memcpy(dir, path, len);
            dir[len] = '\0';
            if (snprintf(full, sizeof(full), "%s/%s", dir, name) < (int)sizeof(full) &&
                access(full, X_OK) == 0)
                return 1;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return 0;
}
