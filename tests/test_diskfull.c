/* test_diskfull.c - a full disk. Puts go on until one fails with
 * MINIDBX_ENOSPC (or MINIDBX_EIO); then every acknowledged object is still
 * readable, the failed one is not visible, verify is clean, and once space
 * is back a put on the same handle works again.
 *
 * usage: test_diskfull tmpfs   (root: a 4 MiB tmpfs mounted here, then
 *                               remounted at 64 MiB to give space back)
 *        test_diskfull shim    (under LD_PRELOAD=enospc_shim.so: writes under
 *                               the store fail past a byte budget; rounds with
 *                               different budgets hit different steps)
 * Exit 77 (skipped) when the mode cannot run here. */
#include "util.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#define MAX_PUTS 4000
#define FILE_OBJECT_SIZE (64u * 1024u)
#define INLINE_OBJECT_SIZE (4u * 1024u)

static char *mount_dir; /* tmpfs mode */

typedef struct {
    minidbx_id acked[MAX_PUTS];
    size_t acked_count;
    unsigned char *failed_data;
    size_t failed_size;
    int failed_rc;
} fill_result;

/* Put objects until one fails; the failure must be ENOSPC or EIO. */
static void fill_until_full(minidbx *db, test_rng *rng, fill_result *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < MAX_PUTS; i++) {
        size_t size = rng_below(rng, 3) == 0 ? INLINE_OBJECT_SIZE : FILE_OBJECT_SIZE;
        unsigned char *data = rng_alloc(rng, size);
        minidbx_id id;
        int rc = minidbx_put(db, data, size, &id);
        if (rc == 0) {
            out->acked[out->acked_count++] = id;
            free(data);
            continue;
        }
        ck_assert_msg(rc == MINIDBX_ENOSPC || rc == MINIDBX_EIO,
                      "put on a full disk: %d (%s): %s", rc, minidbx_strerror(rc), minidbx_errmsg(db));
        ck_assert_str_ne(minidbx_errmsg(db), "");
        printf("disk full after %zu puts: %s (%s)\n", out->acked_count, minidbx_strerror(rc),
               minidbx_errmsg(db));
        out->failed_data = data;
        out->failed_size = size;
        out->failed_rc = rc;
        return;
    }
    ck_abort_msg("%d puts and the disk never filled", MAX_PUTS);
}

static void expect_acked_readable(minidbx *db, const fill_result *fill)
{
    for (size_t i = 0; i < fill->acked_count; i++) {
        void *data = NULL;
        size_t size = 0;
        ck_assert_ok(minidbx_get(db, &fill->acked[i], &data, &size));
        minidbx_free(data);
    }
}

static void expect_failed_invisible(minidbx *db, const fill_result *fill)
{
    minidbx_id id;
    sha256_raw(fill->failed_data, fill->failed_size, &id);
    ck_assert_int_eq(minidbx_exists(db, &id), 0);
    void *data = NULL;
    size_t size = 0;
    ck_assert_rc(minidbx_get(db, &id, &data, &size), MINIDBX_ENOTFOUND);
}

/* No record may be wrong. A blob renamed into place before the metadata
 * commit failed may stay as an orphan (DESIGN.md: a failure leaves at most
 * an orphan that verify --repair clears; removing it at once could race a
 * put of the same bytes by another process), so repair it and then demand
 * a clean store. */
static void expect_verify_clean(minidbx *db)
{
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_msg(report.problems == log.count[MINIDBX_PROBLEM_ORPHAN],
                  "verify after disk full: %llu problems (corrupt %u, missing %u, orphan %u, temp %u, "
                  "dangling %u, badref %u)", (unsigned long long)report.problems,
                  log.count[MINIDBX_PROBLEM_CORRUPT], log.count[MINIDBX_PROBLEM_MISSING],
                  log.count[MINIDBX_PROBLEM_ORPHAN], log.count[MINIDBX_PROBLEM_TEMP],
                  log.count[MINIDBX_PROBLEM_DANGLING], log.count[MINIDBX_PROBLEM_BADREF]);
    if (log.count[MINIDBX_PROBLEM_ORPHAN] > 0) {
        printf("note: %u orphan blob(s) left by the failed put; repairing\n", log.count[MINIDBX_PROBLEM_ORPHAN]);
        ck_assert_ok(minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL));
        ck_assert_uint_eq(report.repaired, report.problems);
        ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
        ck_assert_uint_eq(report.problems, 0);
    }
}

/* With space back: the failed bytes and a new file object go in. */
static void expect_puts_work_again(minidbx *db, test_rng *rng, const fill_result *fill)
{
    minidbx_id id;
    ck_assert_ok(minidbx_put(db, fill->failed_data, fill->failed_size, &id));
    store_expect_bytes(db, &id, fill->failed_data, fill->failed_size);
    unsigned char *data = rng_alloc(rng, 1 << 20);
    ck_assert_ok(minidbx_put(db, data, 1 << 20, &id));
    store_expect_bytes(db, &id, data, 1 << 20);
    free(data);
}

/* The checks once a put failed; give_space_back is called in between. */
static void check_after_full(minidbx **db, const char *store, test_rng *rng, fill_result *fill,
                             void (*give_space_back)(void))
{
    expect_acked_readable(*db, fill);
    expect_failed_invisible(*db, fill);
    give_space_back();
    expect_verify_clean(*db);
    expect_puts_work_again(*db, rng, fill);
    minidbx_close(*db);
    *db = store_open(store, 0);
    expect_acked_readable(*db, fill);
    expect_verify_clean(*db);
    free(fill->failed_data);
}

/* ---- tmpfs ---- */

static void tmpfs_grow(void)
{
    ck_assert_msg(mount("tmpfs", mount_dir, "tmpfs", MS_REMOUNT, "size=64m") == 0,
                  "remount %s: %s", mount_dir, strerror(errno));
}

START_TEST(tmpfs_full)
{
    char store[PATH_MAX];
    snprintf(store, sizeof store, "%s/store", mount_dir);
    minidbx *db = store_open(store, 0);
    test_rng rng;
    rng_seed(&rng, seed_from_clock());
    static fill_result fill;
    fill_until_full(db, &rng, &fill);
    ck_assert_uint_gt(fill.acked_count, 0);
    check_after_full(&db, store, &rng, &fill, tmpfs_grow);
    minidbx_close(db);
}
END_TEST

static int run_tmpfs_mode(void)
{
    if (geteuid() != 0) {
        printf("SKIP: tmpfs disk-full test needs root (the shim variant runs without)\n");
        return TEST_EXIT_SKIP;
    }
    /* not tmpdir_make: check's asserts only work inside a test */
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    mount_dir = malloc(PATH_MAX);
    snprintf(mount_dir, PATH_MAX, "%s/minidbx-test-tmpfs-XXXXXX", base);
    if (mkdtemp(mount_dir) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", mount_dir, strerror(errno));
        return EXIT_FAILURE;
    }
    if (mount("tmpfs", mount_dir, "tmpfs", 0, "size=4m") != 0) {
        printf("SKIP: cannot mount a tmpfs on %s: %s\n", mount_dir, strerror(errno));
        rmdir(mount_dir);
        return TEST_EXIT_SKIP;
    }
    Suite *s = suite_create("diskfull");
    TCase *tc = tcase_create("tmpfs");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, tmpfs_full);
    suite_add_tcase(s, tc);
    int status = run_suite(s);
    /* unmount here, in the parent, so a failed test cannot leave it mounted */
    if (umount(mount_dir) != 0)
        fprintf(stderr, "umount %s: %s\n", mount_dir, strerror(errno));
    rmdir(mount_dir);
    free(mount_dir);
    return status;
}

/* ---- LD_PRELOAD shim ---- */

static unsigned long long *shim_bytes;

static void shim_set_budget(long long budget)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", budget);
    setenv("MINIDBX_SHIM_BUDGET", text, 1);
}

static void shim_unlimited(void)
{
    shim_set_budget(-1);
}

/* Budgets (bytes past what is written when the round starts) chosen so the
 * failing write lands in different places: a blob, an LMDB page, a meta
 * page, an fsync. */
static const long long SHIM_BUDGETS[] = {0, 1, 4096, 20000, 65536 + 17, 70000, 300001, 1 << 20};

START_TEST(shim_full)
{
    char *store = tmpdir_make("shim");
    setenv("MINIDBX_SHIM_DIR", store, 1);
    shim_unlimited();
    minidbx *db = store_open(store, 0);
    test_rng rng;
    rng_seed(&rng, seed_from_clock());
    static fill_result fill;
    long long budget = SHIM_BUDGETS[_i];
    shim_set_budget((long long)*shim_bytes + budget);
    fill_until_full(db, &rng, &fill);
    check_after_full(&db, store, &rng, &fill, shim_unlimited);
    minidbx_close(db);
    unsetenv("MINIDBX_SHIM_DIR");
    rm_rf(store);
    free(store);
}
END_TEST

static int run_shim_mode(void)
{
    if (TEST_UNDER_ASAN) {
        printf("SKIP: LD_PRELOAD shim disk-full test under AddressSanitizer (preload order)\n");
        return TEST_EXIT_SKIP;
    }
    shim_bytes = dlsym(RTLD_DEFAULT, "enospc_shim_bytes");
    if (shim_bytes == NULL) {
        fprintf(stderr, "enospc_shim.so is not preloaded (LD_PRELOAD=%s)\n",
                getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
        return EXIT_FAILURE;
    }
    Suite *s = suite_create("diskfull");
    TCase *tc = tcase_create("shim");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, shim_full, 0, (int)(sizeof SHIM_BUDGETS / sizeof SHIM_BUDGETS[0]));
    suite_add_tcase(s, tc);
    return run_suite(s);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "tmpfs";
    if (strcmp(mode, "tmpfs") == 0)
        return run_tmpfs_mode();
    if (strcmp(mode, "shim") == 0)
        return run_shim_mode();
    fprintf(stderr, "usage: %s tmpfs|shim\n", argv[0]);
    return 2;
}
