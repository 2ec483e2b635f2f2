/*
 * util.h - helpers shared by the minidbx check tests: temp stores, a fast
 * seeded PRNG, raw SHA-256 (OpenSSL, independent of the library), peak RSS,
 * the on-disk layout of a local store, a verify problem collector,
 * `mdbx serve` processes, and the backends the cases run on (what each can
 * do, and how a store is reached through it).
 *
 * Nothing here is part of the library; it only uses the public header.
 */
#ifndef MINIDBX_TEST_UTIL_H
#define MINIDBX_TEST_UTIL_H

#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <minidbx.h>

/* Assert that a minidbx call returned `expected`, and say what it did return
 * (code, its name and the thread's errmsg) when it did not. */
#define ck_assert_rc(expr, expected)                                            \
    do {                                                                        \
        int rc_got_ = (expr);                                                   \
        int rc_want_ = (expected);                                              \
        ck_assert_msg(rc_got_ == rc_want_, "%s returned %d (%s), expected %d (%s); errmsg: %s", \
                      #expr, rc_got_, minidbx_strerror(rc_got_), rc_want_,      \
                      minidbx_strerror(rc_want_), minidbx_errmsg(NULL));        \
    } while (0)

#define ck_assert_ok(expr) ck_assert_rc((expr), MINIDBX_OK)

/* Check's default per-test timeout is 4 s; tests that do real I/O use these. */
#define TEST_TIMEOUT_S 60
#define TEST_TIMEOUT_LONG_S 600

/* 1 when the tests were built with AddressSanitizer. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_UNDER_ASAN 1
#endif
#endif
#ifndef TEST_UNDER_ASAN
#define TEST_UNDER_ASAN 0
#endif

/* meson test treats this exit status as "skipped". */
#define TEST_EXIT_SKIP 77

/* ---- random bytes: xoshiro-like splitmix64, seeded, fast, reproducible ---- */

typedef struct {
    uint64_t state;
} test_rng;

void rng_seed(test_rng *rng, uint64_t seed);
uint64_t rng_next(test_rng *rng);
/* Uniform in [0, bound); bound must be > 0. */
uint64_t rng_below(test_rng *rng, uint64_t bound);
void rng_fill(test_rng *rng, void *buf, size_t size);
/* A malloc'd buffer of size random bytes (at least 1 byte allocated). */
unsigned char *rng_alloc(test_rng *rng, size_t size);
/* A seed that differs between runs (time and pid), printed by callers. */
uint64_t seed_from_clock(void);

/* ---- SHA-256 straight from OpenSSL, to check the library's ids ---- */

void sha256_raw(const void *data, size_t size, minidbx_id *out);

typedef struct test_sha test_sha;
test_sha *sha_begin(void);
void sha_update(test_sha *sha, const void *data, size_t size);
/* Writes the digest and frees sha. */
void sha_end(test_sha *sha, minidbx_id *out);

/* ---- temp directories and files ---- */

/* Make a fresh directory under $TMPDIR (or /tmp); malloc'd path. */
char *tmpdir_make(const char *tag);
/* Remove path and everything below it. 0 or -1. A missing path is 0. */
int rm_rf(const char *path);
/* Entries in dir other than "." and ".."; -1 if it cannot be opened. */
long dir_count_entries(const char *dir);
/* Regular files anywhere below dir; -1 if it cannot be opened. */
long tree_count_files(const char *dir);
/* Flip every bit of the byte at offset (negative: from the end). 0 or -1. */
int file_flip_byte(const char *path, long long offset);
/* Write size bytes to a new file at path (mode 0644). 0 or -1. */
int file_write_all(const char *path, const void *data, size_t size);
/* 1 if path exists (any type), else 0. */
int path_exists(const char *path);
/* Read a whole small file into a malloc'd buffer; NULL on error. */
unsigned char *file_read_all(const char *path, size_t *out_size);

/* ---- the local store's layout (DESIGN.md) ---- */

/* STORE/blobs/ab/cd/<64-hex> */
void store_blob_path(const char *store, const minidbx_id *id, char out[PATH_MAX]);
/* STORE/<leaf>, e.g. "tmp", "blobs", "meta.lmdb" */
void store_path(const char *store, const char *leaf, char out[PATH_MAX]);

/* ---- opening stores in tests ---- */

/* Open (creating) the local store at dir with flags; fails the test on error. */
minidbx *store_open(const char *dir, unsigned flags);
/* Same with full options. */
minidbx *store_open_opts(const char *dir, const minidbx_options *opts);
/* Put size random bytes and return their id; fails the test on error. */
minidbx_id store_put_random(minidbx *db, test_rng *rng, size_t size);
/* Get id and compare with data/size byte for byte; fails the test if not. */
void store_expect_bytes(minidbx *db, const minidbx_id *id, const void *data, size_t size);
/* The store's object count (minidbx_info). */
uint64_t store_object_count(minidbx *db);
/* minidbx_gc_ex with no grace period (older_than_ns 0): every unnamed
 * object goes now, as gc did before it had a grace period. */
int test_gc_now(minidbx *db, minidbx_gc_report *report);

/* ---- verify problem collector ---- */

#define PROBLEM_KINDS 10 /* minidbx_problem values are 1..9 */
#define PROBLEM_IDS_MAX 64

typedef struct {
    unsigned count[PROBLEM_KINDS];
    unsigned repaired[PROBLEM_KINDS];
    unsigned total;
    /* the first PROBLEM_IDS_MAX ids reported, with their kind */
    minidbx_id ids[PROBLEM_IDS_MAX];
    minidbx_problem kinds[PROBLEM_IDS_MAX];
    unsigned ids_len;
    int quiet; /* do not print each problem */
} problem_log;

/* A minidbx_problem_cb: ctx is a problem_log. */
void problem_log_cb(void *ctx, minidbx_problem kind, const minidbx_id *id,
                    const char *detail, int repaired);
/* 1 if the log holds (kind, id). */
int problem_log_has(const problem_log *log, minidbx_problem kind, const minidbx_id *id);
const char *problem_kind_name(minidbx_problem kind);

/* ---- processes and memory ---- */

/* Peak resident set of the calling process, in KiB (getrusage). */
long peak_rss_kib(void);
/* Run fn(arg) in a forked child, which exits with its return value. Returns
 * the child's exit status (128+signal if killed) and, if max_rss_kib is not
 * NULL, the child's own peak RSS in KiB (from wait4). */
int run_in_child(int (*fn)(void *arg), void *arg, long *max_rss_kib);
/* Monotonic clock in ms. */
/* Sleep until extra_ms past the start of the seconds-th wall-clock second
 * from now (1: the next one). */
void sleep_past_second(int seconds, long extra_ms);
double now_ms(void);

/* ---- a real `mdbx serve` ---- */

/* Start `MDBX -s store serve --listen 127.0.0.1:0 [extra...]` (extra: NULL-
 * terminated, at most 8, or NULL) and read the URL it announces into url.
 * The node gets SIGTERM when the calling process dies. 0 and *out_pid, or
 * -1 (nothing left running). No check asserts: usable outside a test. */
int serve_start(const char *mdbx, const char *store, const char *const *extra, pid_t *out_pid,
                char *url, size_t url_size);
/* SIGTERM and wait: 0 when the node exited 0 (under ASan: without a
 * report), else -1 after saying so on stderr. */
int serve_stop(pid_t pid);

/* ---- the backend under test: one capability matrix ---- */

/* What a backend can do that a case may need. A case states what it needs
 * when it is added (tcase_add_test_needs); on a backend without it the case
 * is left out, and the run says so. A backend joins every case that fits
 * it by adding one row to the table in util.c. */
#define TEST_CAP_OPEN_DIR  0x1u /* minidbx_open works on the store's directory itself: it
                                   creates, refuses or configures a store there (NO_CREATE,
                                   inline threshold), sweeps its tmp/, and its flags
                                   (NO_VERIFY) govern how the files are read */
#define TEST_CAP_FILES     0x2u /* the store's files lie under fx_dir in the local layout
                                   (blobs/, tmp/, meta.lmdb): a case may read, break or remove them */
#define TEST_CAP_BATCH_TXN 0x4u /* a batch is one store transaction: begin reaches the store,
                                   abort undoes the batch's puts */
#define TEST_CAP_READER_FD 0x8u /* minidbx_reader_fd hands out the object's own file */
#define TEST_CAP_INLINE    0x10u /* objects up to the inline threshold are kept inline, and
                                    stat's flags say so (s3:// keeps every object as one) */

/* The backend named by MINIDBX_TEST_BACKEND (default "local"): its name is
 * also what minidbx_info calls it. An unknown name fails the run. */
const char *test_backend_name(void);
/* 1 when the backend under test has every capability in caps, else 0. */
int test_backend_has(unsigned caps);
/* Add a case that needs caps: when the backend lacks one, the case is left
 * out and a line says which capability it lacked. */
void test_add_needing(TCase *tc, const TTest *test, unsigned caps);
#define tcase_add_test_needs(tc, tf, caps) test_add_needing((tc), (tf), (caps))

/* ---- a fixture: a fresh store per test ---- */

/* Set up by fixture_store_setup (checked fixture, so per test in the forked
 * child): a new temp dir fx_dir, the backend's location for a store there
 * (fx_location: the directory itself locally, the URL of a `mdbx serve` on
 * it over http) and a store opened on it with default options. */
extern char *fx_dir;
extern minidbx *fx_db;
extern const char *fx_location;
void fixture_store_setup(void);
void fixture_store_teardown(void);
/* Close fx_db and open fx_location again, with flags or options. */
minidbx *fixture_reopen(unsigned flags);
minidbx *fixture_reopen_opts(const minidbx_options *opts);
/* A TCase named name with the fixture above and timeout_s. */
TCase *tcase_with_store(const char *name, double timeout_s);

/* Run the suite (CK_FORK as configured), print results; the exit status. */
int run_suite(Suite *suite);

#endif /* MINIDBX_TEST_UTIL_H */
