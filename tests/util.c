/* util.c - helpers shared by the minidbx check tests (see util.h). */
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- random bytes ---- */

void rng_seed(test_rng *rng, uint64_t seed)
{
    rng->state = seed ^ 0x9e3779b97f4a7c15ULL;
}

/* splitmix64: one add and three multiply-xorshifts per 8 bytes, so a GiB
 * is generated faster than the library can hash it. */
uint64_t rng_next(test_rng *rng)
{
    uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t rng_below(test_rng *rng, uint64_t bound)
{
    return rng_next(rng) % bound;
}

void rng_fill(test_rng *rng, void *buf, size_t size)
{
    unsigned char *out = buf;
    while (size >= 8) {
        uint64_t v = rng_next(rng);
        memcpy(out, &v, 8);
        out += 8;
        size -= 8;
    }
    if (size > 0) {
        uint64_t v = rng_next(rng);
        memcpy(out, &v, size);
    }
}

unsigned char *rng_alloc(test_rng *rng, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    ck_assert_ptr_nonnull(buf);
    rng_fill(rng, buf, size);
    return buf;
}

uint64_t seed_from_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40);
}

/* ---- SHA-256 ---- */

struct test_sha {
    EVP_MD_CTX *ctx;
};

test_sha *sha_begin(void)
{
    test_sha *sha = malloc(sizeof *sha);
    ck_assert_ptr_nonnull(sha);
    sha->ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(sha->ctx);
    ck_assert_int_eq(EVP_DigestInit_ex(sha->ctx, EVP_sha256(), NULL), 1);
    return sha;
}

void sha_update(test_sha *sha, const void *data, size_t size)
{
    ck_assert_int_eq(EVP_DigestUpdate(sha->ctx, data, size), 1);
}

void sha_end(test_sha *sha, minidbx_id *out)
{
    unsigned int len = 0;
    ck_assert_int_eq(EVP_DigestFinal_ex(sha->ctx, out->bytes, &len), 1);
    ck_assert_uint_eq(len, MINIDBX_ID_SIZE);
    EVP_MD_CTX_free(sha->ctx);
    free(sha);
}

void sha256_raw(const void *data, size_t size, minidbx_id *out)
{
    test_sha *sha = sha_begin();
    sha_update(sha, data, size);
    sha_end(sha, out);
}

/* ---- temp directories and files ---- */

char *tmpdir_make(const char *tag)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    char *path = malloc(PATH_MAX);
    ck_assert_ptr_nonnull(path);
    snprintf(path, PATH_MAX, "%s/minidbx-test-%s-XXXXXX", base, tag);
    ck_assert_msg(mkdtemp(path) != NULL, "mkdtemp %s: %s", path, strerror(errno));
    return path;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    int rc = (type == FTW_DP) ? rmdir(path) : unlink(path);
    return (rc == 0 || errno == ENOENT) ? 0 : -1;
}

int rm_rf(const char *path)
{
    if (path == NULL || !path_exists(path))
        return 0;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

long dir_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

long tree_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    long n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char child[PATH_MAX];
        struct stat st;
        snprintf(child, sizeof child, "%s/%s", dir, de->d_name);
        if (lstat(child, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            long sub = tree_count_files(child);
            n += sub > 0 ? sub : 0;
        } else {
            n++;
        }
    }
    closedir(d);
    return n;
}

int file_flip_byte(const char *path, long long offset)
{
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    int rc = -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size == 0)
        goto out;
    off_t at = offset >= 0 ? (off_t)offset : st.st_size + (off_t)offset;
    if (at < 0 || at >= st.st_size)
        goto out;
    unsigned char byte;
    if (pread(fd, &byte, 1, at) != 1)
        goto out;
    byte ^= 0xff;
    if (pwrite(fd, &byte, 1, at) != 1)
        goto out;
    rc = 0;
out:
    close(fd);
    return rc;
}

int file_write_all(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    const unsigned char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        p += n;
        size -= (size_t)n;
    }
    return close(fd);
}

int path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

unsigned char *file_read_all(const char *path, size_t *out_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            unsigned char *grown = realloc(buf, cap);
            ck_assert_ptr_nonnull(grown);
            buf = grown;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    *out_size = len;
    return buf;
}

/* ---- the local store's layout ---- */

void store_blob_path(const char *store, const minidbx_id *id, char out[PATH_MAX])
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    snprintf(out, PATH_MAX, "%s/blobs/%.2s/%.2s/%s", store, hex, hex + 2, hex);
}

void store_path(const char *store, const char *leaf, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%s", store, leaf);
}

/* ---- opening stores ---- */

minidbx *store_open_opts(const char *dir, const minidbx_options *opts)
{
    minidbx *db = NULL;
    ck_assert_ok(minidbx_open(&db, dir, opts));
    ck_assert_ptr_nonnull(db);
    return db;
}

minidbx *store_open(const char *dir, unsigned flags)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = flags;
    return store_open_opts(dir, &opts);
}

minidbx_id store_put_random(minidbx *db, test_rng *rng, size_t size)
{
    unsigned char *data = rng_alloc(rng, size);
    minidbx_id id;
    ck_assert_ok(minidbx_put(db, data, size, &id));
    free(data);
    return id;
}

void store_expect_bytes(minidbx *db, const minidbx_id *id, const void *data, size_t size)
{
    void *got = NULL;
    size_t got_size = (size_t)-1;
    ck_assert_ok(minidbx_get(db, id, &got, &got_size));
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(got_size, size);
    if (size > 0)
        ck_assert_msg(memcmp(got, data, size) == 0, "bytes of a %zu-byte object differ", size);
    minidbx_free(got);
}

uint64_t store_object_count(minidbx *db)
{
    minidbx_store_info info;
    memset(&info, 0, sizeof info);
    ck_assert_ok(minidbx_info(db, &info));
    return info.objects;
}

int test_gc_now(minidbx *db, minidbx_gc_report *report)
{
    minidbx_gc_options now = MINIDBX_GC_OPTIONS_INIT;
    now.older_than_ns = 0;
    return minidbx_gc_ex(db, &now, report);
}

/* ---- verify problem collector ---- */

const char *problem_kind_name(minidbx_problem kind)
{
    switch (kind) {
    case MINIDBX_PROBLEM_CORRUPT: return "CORRUPT";
    case MINIDBX_PROBLEM_MISSING: return "MISSING";
    case MINIDBX_PROBLEM_ORPHAN: return "ORPHAN";
    case MINIDBX_PROBLEM_TEMP: return "TEMP";
    case MINIDBX_PROBLEM_DANGLING: return "DANGLING";
    case MINIDBX_PROBLEM_BADREF: return "BADREF";
    case MINIDBX_PROBLEM_MISPLACED: return "MISPLACED";
    case MINIDBX_PROBLEM_STALE: return "STALE";
    case MINIDBX_PROBLEM_NAME_REMOVED: return "NAME_REMOVED";
    }
    return "?";
}

void problem_log_cb(void *ctx, minidbx_problem kind, const minidbx_id *id,
                    const char *detail, int repaired)
{
    problem_log *log = ctx;
    unsigned k = (kind >= 1 && kind < PROBLEM_KINDS) ? (unsigned)kind : 0;
    log->count[k]++;
    log->repaired[k] += repaired ? 1 : 0;
    log->total++;
    if (id != NULL && log->ids_len < PROBLEM_IDS_MAX) {
        log->ids[log->ids_len] = *id;
        log->kinds[log->ids_len] = kind;
        log->ids_len++;
    }
    if (!log->quiet) {
        char hex[MINIDBX_ID_HEX_SIZE] = "-";
        if (id != NULL)
            minidbx_id_format(id, hex);
        fprintf(stderr, "  verify: %s %s%s: %s\n", problem_kind_name(kind), hex,
                repaired ? " (repaired)" : "", detail ? detail : "(no detail)");
    }
}

int problem_log_has(const problem_log *log, minidbx_problem kind, const minidbx_id *id)
{
    for (unsigned i = 0; i < log->ids_len; i++) {
        if (log->kinds[i] == kind && minidbx_id_equal(&log->ids[i], id))
            return 1;
    }
    return 0;
}

/* ---- processes and memory ---- */

long peak_rss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss; /* Linux reports KiB */
}

int run_in_child(int (*fn)(void *arg), void *arg, long *max_rss_kib)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(fn(arg));
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    pid_t got;
    do {
        got = wait4(pid, &status, 0, &ru);
    } while (got < 0 && errno == EINTR);
    ck_assert_int_eq(got, pid);
    if (max_rss_kib != NULL)
        *max_rss_kib = ru.ru_maxrss;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

void sleep_past_second(int seconds, long extra_ms)
{
    struct timespec now, rest;
    clock_gettime(CLOCK_REALTIME, &now);
    long ns = 1000000000L - now.tv_nsec + extra_ms * 1000000L;
    rest.tv_sec = seconds - 1 + ns / 1000000000L;
    rest.tv_nsec = ns % 1000000000L;
    while (nanosleep(&rest, &rest) != 0 && errno == EINTR)
        ;
}

double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- a real `mdbx serve` ---- */

#define SERVE_EXTRA_MAX 8

static void serve_exec(const char *mdbx, const char *store, const char *const *extra, pid_t parent,
                       int out_fd)
{
    const char *argv[7 + SERVE_EXTRA_MAX] = { "mdbx", "-s", store, "serve", "--listen", "127.0.0.1:0" };
    size_t argc = 6;

    for (; extra && *extra && argc < 6 + SERVE_EXTRA_MAX; extra++)
        argv[argc++] = *extra;
    argv[argc] = NULL;
    /* A failed test skips its teardown: the node must not outlive it. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(126);
    dup2(out_fd, STDOUT_FILENO);
    execv(mdbx, (char *const *)argv);
    _exit(127);
}

int serve_start(const char *mdbx, const char *store, const char *const *extra, pid_t *out_pid,
                char *url, size_t url_size)
{
    pid_t parent = getpid();
    char line[300], format[32];
    int fds[2];

    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        serve_exec(mdbx, store, extra, parent, fds[1]);
    }
    close(fds[1]);
    FILE *out = pid > 0 ? fdopen(fds[0], "r") : NULL;
    /* its first line on stdout: "listening on http://127.0.0.1:PORT" */
    snprintf(format, sizeof format, "listening on %%%zus", url_size - 1);
    int started = out != NULL && fgets(line, sizeof line, out) != NULL && sscanf(line, format, url) == 1;
    if (out != NULL)
        fclose(out);
    else
        close(fds[0]);
    if (!started && pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    *out_pid = started ? pid : 0;
    return started ? 0 : -1;
}

int serve_stop(pid_t pid)
{
    int status = 0;
    pid_t got;

    if (pid <= 0)
        return -1;
    kill(pid, SIGTERM);
    do {
        got = waitpid(pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    if (got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    fprintf(stderr, "mdbx serve did not exit cleanly (status 0x%x)\n", status);
    return -1;
}

/* ---- the backends ---- */

/* A backend in the matrix: its capabilities, and how a store in a local
 * directory is reached through it. */
typedef struct {
    const char *name;
    unsigned caps;
    /* Write the location of the store in dir to location; *state is for
     * release. 0, or -1 after saying why on stderr. */
    int (*make_location)(const char *dir, char *location, size_t size, void **state);
    /* Undo make_location (NULL: nothing to undo): 0, or -1 when what
     * served the store did not end cleanly. */
    int (*release)(void *state);
} test_backend;

static int local_location(const char *dir, char *location, size_t size, void **state)
{
    *state = NULL;
    return (size_t)snprintf(location, size, "%s", dir) < size ? 0 : -1;
}

/* A real `mdbx serve` ($MDBX) on dir, opened as http://127.0.0.1:PORT. */
static int http_location(const char *dir, char *location, size_t size, void **state)
{
    const char *mdbx = getenv("MDBX");
    pid_t *pid = malloc(sizeof *pid);

    *state = pid;
    if (pid != NULL)
        *pid = 0;
    if (mdbx == NULL || mdbx[0] == '\0') {
        fprintf(stderr, "MINIDBX_TEST_BACKEND=http needs MDBX=<mdbx binary>\n");
        return -1;
    }
    if (pid == NULL || serve_start(mdbx, dir, NULL, pid, location, size) != 0) {
        fprintf(stderr, "%s serve on %s did not start\n", mdbx, dir);
        return -1;
    }
    return 0;
}

static int http_release(void *state)
{
    pid_t *pid = state;
    int rc = pid != NULL && *pid > 0 ? serve_stop(*pid) : 0; /* under ASan: the node's report fails it */
    free(pid);
    return rc;
}

/* A fresh prefix in the test bucket of the RGW that tests/s3/with-rgw.sh
 * started (MINIDBX_S3_ENDPOINT, AWS_*, MINIDBX_TEST_S3_BUCKET): s3://BUCKET/
 * <dir's name>, unique per test. Nothing to release: the bucket goes with
 * the RGW. */
static int s3_location(const char *dir, char *location, size_t size, void **state)
{
    const char *bucket = getenv("MINIDBX_TEST_S3_BUCKET");
    const char *leaf = strrchr(dir, '/');

    *state = NULL;
    if (getenv("MINIDBX_S3_ENDPOINT") == NULL || bucket == NULL || bucket[0] == '\0') {
        fprintf(stderr, "MINIDBX_TEST_BACKEND=s3 needs an RGW: run the test under tests/s3/with-rgw.sh\n");
        return -1;
    }
    return (size_t)snprintf(location, size, "s3://%s/%s", bucket, leaf ? leaf + 1 : dir) < size ? 0 : -1;
}

/* A cluster: store over three local stores in dir (n0, n1, n2), R = 2. */
static int cluster_location(const char *dir, char *location, size_t size, void **state)
{
    static const char text[] = "{\"replicas\": 2, \"nodes\": [\"n0\", \"n1\", \"n2\"]}\n";
    char file[PATH_MAX];

    *state = NULL;
    if ((size_t)snprintf(file, sizeof file, "%s/cluster.json", dir) >= sizeof file ||
        file_write_all(file, text, sizeof text - 1) != 0) {
        fprintf(stderr, "cannot write %s\n", file);
        return -1;
    }
    return (size_t)snprintf(location, size, "cluster:%s", file) < size ? 0 : -1;
}

/* One row per backend. */
static const test_backend BACKENDS[] = {
    { "local", TEST_CAP_OPEN_DIR | TEST_CAP_FILES | TEST_CAP_BATCH_TXN | TEST_CAP_READER_FD | TEST_CAP_INLINE,
      local_location, NULL },
    { "http", TEST_CAP_FILES | TEST_CAP_INLINE, http_location, http_release },
    { "s3", 0, s3_location, NULL },
    { "cluster", TEST_CAP_INLINE, cluster_location, NULL },
};

static const struct {
    unsigned cap;
    const char *name;
} CAP_NAMES[] = {
    { TEST_CAP_OPEN_DIR, "OPEN_DIR" },
    { TEST_CAP_FILES, "FILES" },
    { TEST_CAP_BATCH_TXN, "BATCH_TXN" },
    { TEST_CAP_READER_FD, "READER_FD" },
    { TEST_CAP_INLINE, "INLINE" },
};

static const test_backend *backend_under_test(void)
{
    const char *name = getenv("MINIDBX_TEST_BACKEND");

    if (name == NULL || name[0] == '\0')
        name = "local";
    for (size_t i = 0; i < sizeof BACKENDS / sizeof BACKENDS[0]; i++)
        if (strcmp(BACKENDS[i].name, name) == 0)
            return &BACKENDS[i];
    fprintf(stderr, "MINIDBX_TEST_BACKEND=%s: no such backend in tests/util.c\n", name);
    exit(EXIT_FAILURE);
}

const char *test_backend_name(void)
{
    return backend_under_test()->name;
}

int test_backend_has(unsigned caps)
{
    return (backend_under_test()->caps & caps) == caps;
}

void test_add_needing(TCase *tc, const TTest *test, unsigned caps)
{
    unsigned lacking = caps & ~backend_under_test()->caps;

    if (lacking == 0) {
        tcase_add_test(tc, test);
        return;
    }
    printf("%s: left out on %s, which lacks", test->name, test_backend_name());
    for (size_t i = 0; i < sizeof CAP_NAMES / sizeof CAP_NAMES[0]; i++)
        if (lacking & CAP_NAMES[i].cap)
            printf(" %s", CAP_NAMES[i].name);
    printf("\n");
    fflush(stdout);
}

/* ---- fixture ---- */

char *fx_dir;
minidbx *fx_db;
const char *fx_location;

static char fx_location_buf[PATH_MAX];
static void *fx_backend_state;

void fixture_store_setup(void)
{
    const test_backend *backend = backend_under_test();

    fx_dir = tmpdir_make("fx");
    ck_assert_msg(backend->make_location(fx_dir, fx_location_buf, sizeof fx_location_buf, &fx_backend_state) == 0,
                  "no %s store on %s", backend->name, fx_dir);
    fx_location = fx_location_buf;
    fx_db = store_open(fx_location, 0);
}

void fixture_store_teardown(void)
{
    const test_backend *backend = backend_under_test();
    void *state = fx_backend_state;

    minidbx_close(fx_db);
    fx_db = NULL;
    fx_backend_state = NULL;
    if (backend->release != NULL)
        ck_assert_msg(backend->release(state) == 0, "the %s store on %s did not end cleanly", backend->name, fx_dir);
    rm_rf(fx_dir);
    free(fx_dir);
    fx_dir = NULL;
    fx_location = NULL;
}

minidbx *fixture_reopen_opts(const minidbx_options *opts)
{
    minidbx_close(fx_db);
    fx_db = store_open_opts(fx_location, opts);
    return fx_db;
}

minidbx *fixture_reopen(unsigned flags)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = flags;
    return fixture_reopen_opts(&opts);
}

TCase *tcase_with_store(const char *name, double timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, fixture_store_setup, fixture_store_teardown);
    tcase_set_timeout(tc, timeout_s);
    return tc;
}

/* Every temp dir of the run goes under one root made here and removed at
 * the end, also when a test failed (check's forked children skip their
 * teardown then). MINIDBX_KEEP_TMP=1 keeps it for a post-mortem. */
static char *make_run_root(void)
{
    const char *base = getenv("TMPDIR");
    char *root = malloc(PATH_MAX);
    if (root == NULL)
        return NULL;
    snprintf(root, PATH_MAX, "%s/minidbx-tests-XXXXXX", base && base[0] ? base : "/tmp");
    if (mkdtemp(root) == NULL) {
        free(root);
        return NULL;
    }
    setenv("TMPDIR", root, 1);
    return root;
}

int run_suite(Suite *suite)
{
    backend_under_test(); /* an unknown MINIDBX_TEST_BACKEND fails here, before any case */
    char *root = make_run_root();
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    if (root != NULL) {
        const char *keep = getenv("MINIDBX_KEEP_TMP");
        if (keep != NULL && strcmp(keep, "1") == 0)
            printf("temp files kept in %s\n", root);
        else
            rm_rf(root);
        free(root);
    }
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
