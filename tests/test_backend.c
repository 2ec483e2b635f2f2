/* test_backend.c - a user's own backend (mem_backend.c) behind the public
 * calls: registered as "mem://", it stores and serves objects; the library
 * verifies what it hands out (a lying backend gives ECORRUPT), falls back to
 * streams where put/get are NULL, and answers EUNSUPPORTED for NULL methods. */
#include "mem_backend.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static minidbx *mem_open(const char *location)
{
    ck_assert_ok(minidbx_register_scheme("mem", mem_backend_open));
    minidbx *db = NULL;
    ck_assert_ok(minidbx_open(&db, location, NULL));
    ck_assert_ptr_nonnull(db);
    return db;
}

/* put/get/exists/stat/list/delete, through whichever methods exist. */
static void exercise_objects(minidbx *db)
{
    test_rng rng;
    rng_seed(&rng, 51);
    static const size_t sizes[] = {0, 1, 1000, 100000};
    minidbx_id ids[4];
    for (int i = 0; i < 4; i++) {
        unsigned char *data = rng_alloc(&rng, sizes[i]);
        minidbx_id ref;
        ck_assert_ok(minidbx_put(db, data, sizes[i], &ids[i]));
        sha256_raw(data, sizes[i], &ref);
        ck_assert(minidbx_id_equal(&ids[i], &ref));
        ck_assert_ok(minidbx_put(db, data, sizes[i], NULL)); /* again: stored once */
        ck_assert_int_eq(minidbx_exists(db, &ids[i]), 1);
        store_expect_bytes(db, &ids[i], data, sizes[i]);
        minidbx_object_info info;
        ck_assert_ok(minidbx_stat(db, &ids[i], &info));
        ck_assert_uint_eq(info.size, sizes[i]);
        free(data);
    }
    ck_assert_uint_eq(store_object_count(db), 4);
    minidbx_object_info listed[8];
    size_t count;
    ck_assert_ok(minidbx_list(db, NULL, listed, 8, &count));
    ck_assert_uint_eq(count, 4);

    minidbx_id probe[2] = {ids[1], ids[1]};
    probe[1].bytes[0] ^= 0xff;
    minidbx_id missing[2];
    ck_assert_ok(minidbx_missing(db, probe, 2, missing, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert(minidbx_id_equal(&missing[0], &probe[1]));

    ck_assert_ok(minidbx_delete(db, &ids[2]));
    ck_assert_int_eq(minidbx_exists(db, &ids[2]), 0);
    void *data = NULL;
    size_t size;
    ck_assert_rc(minidbx_get(db, &ids[2], &data, &size), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_delete(db, &ids[2]), MINIDBX_ENOTFOUND);
    ck_assert_uint_eq(store_object_count(db), 3);
}

START_TEST(mem_store_works)
{
    minidbx *db = mem_open("mem://x");
    exercise_objects(db);
    const mem_backend_calls *calls = mem_backend_last_calls();
    ck_assert_uint_gt(calls->put, 0);
    ck_assert_uint_gt(calls->get, 0);
    minidbx_store_info info;
    ck_assert_ok(minidbx_info(db, &info));
    ck_assert_str_eq(info.backend, "mem");
    minidbx_close(db);
    ck_assert_uint_eq(calls->freed, 1);
}
END_TEST

START_TEST(mem_store_streams)
{
    minidbx *db = mem_open("mem://streams");
    test_rng rng;
    rng_seed(&rng, 52);
    unsigned char *data = rng_alloc(&rng, 300000);
    minidbx_writer *w = NULL;
    ck_assert_ok(minidbx_writer_open(db, &w));
    ck_assert_ok(minidbx_writer_write(w, data, 100000));
    ck_assert_ok(minidbx_writer_write(w, data + 100000, 200000));
    minidbx_id id, ref;
    ck_assert_ok(minidbx_writer_commit(w, &id));
    sha256_raw(data, 300000, &ref);
    ck_assert(minidbx_id_equal(&id, &ref));
    minidbx_reader *r = NULL;
    uint64_t size = 0;
    ck_assert_ok(minidbx_reader_open(db, &id, &r, &size));
    ck_assert_uint_eq(size, 300000);
    int fd;
    uint64_t offset;
    ck_assert_rc(minidbx_reader_fd(r, &fd, &offset), MINIDBX_EUNSUPPORTED);
    unsigned char buf[7000];
    size_t got, done = 0;
    while (minidbx_reader_read(r, buf, sizeof buf, &got) == 0 && got > 0) {
        ck_assert_mem_eq(buf, data + done, got);
        done += got;
    }
    ck_assert_uint_eq(done, 300000);
    minidbx_reader_close(r);
    free(data);
    minidbx_close(db);
}
END_TEST

/* put, get and missing NULL: the library uses writer, reader and exists. */
START_TEST(fallbacks_when_put_get_missing_null)
{
    minidbx *db = mem_open("mem://minimal");
    exercise_objects(db);
    const mem_backend_calls *calls = mem_backend_last_calls();
    ck_assert_uint_eq(calls->put, 0);
    ck_assert_uint_eq(calls->get, 0);
    ck_assert_uint_gt(calls->writer_open, 0);
    ck_assert_uint_gt(calls->reader_open, 0);
    minidbx_close(db);
}
END_TEST

/* A put of more than 64 KiB goes through the writer when the backend asks
 * for it (MINIDBX_BACKEND_PUT_WRITES_FIRST), through put otherwise; the id
 * is the same either way. */
static void put_of_size(const char *location, size_t size, unsigned want_put, unsigned want_writer)
{
    minidbx *db = mem_open(location);
    unsigned char *data = malloc(size);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < size; i++)
        data[i] = (unsigned char)(i * 7 + size);
    minidbx_id id, want;
    ck_assert_ok(minidbx_id_of(&want, data, size));
    ck_assert_ok(minidbx_put(db, data, size, &id));
    ck_assert_mem_eq(id.bytes, want.bytes, sizeof id.bytes);
    const mem_backend_calls *calls = mem_backend_last_calls();
    ck_assert_msg(calls->put == want_put && calls->writer_open == want_writer,
                  "%s, %zu bytes: put %u writer %u, want %u and %u", location, size, calls->put,
                  calls->writer_open, want_put, want_writer);
    void *back = NULL;
    size_t back_size = 0;
    ck_assert_ok(minidbx_get(db, &id, &back, &back_size));
    ck_assert_uint_eq(back_size, size);
    ck_assert_mem_eq(back, data, size);
    free(back);
    free(data);
    minidbx_close(db);
}

START_TEST(large_put_writes_first_when_asked)
{
    put_of_size("mem://writesfirst", (64u << 10) + 1, 0, 1);
    put_of_size("mem://writesfirst", 1u << 20, 0, 1);
    put_of_size("mem://writesfirst", 64u << 10, 1, 0);
    put_of_size("mem://plain", 1u << 20, 1, 0);
}
END_TEST

static void expect_liar_caught(const char *location)
{
    minidbx *db = mem_open(location);
    test_rng rng;
    rng_seed(&rng, 53);
    minidbx_id id = store_put_random(db, &rng, 5000);
    void *data = NULL;
    size_t size = 0;
    ck_assert_rc(minidbx_get(db, &id, &data, &size), MINIDBX_ECORRUPT);
    ck_assert_str_ne(minidbx_errmsg(db), "");

    minidbx_reader *r = NULL;
    ck_assert_ok(minidbx_reader_open(db, &id, &r, NULL));
    unsigned char buf[1024];
    size_t got;
    int rc;
    while ((rc = minidbx_reader_read(r, buf, sizeof buf, &got)) == 0)
        ck_assert_msg(got > 0, "a lying backend's stream ended cleanly");
    ck_assert_rc(rc, MINIDBX_ECORRUPT);
    minidbx_reader_close(r);

    char path[PATH_MAX];
    char *dir = tmpdir_make("liar");
    snprintf(path, sizeof path, "%s/out", dir);
    FILE *f = fopen(path, "w");
    ck_assert_rc(minidbx_get_fd(db, &id, fileno(f)), MINIDBX_ECORRUPT);
    fclose(f);
    rm_rf(dir);
    free(dir);
    minidbx_close(db);
}

START_TEST(lying_backend_gives_ecorrupt)
{
    expect_liar_caught("mem://liar");
}
END_TEST

START_TEST(no_verify_trusts_backend)
{
    ck_assert_ok(minidbx_register_scheme("mem", mem_backend_open));
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = MINIDBX_OPEN_NO_VERIFY;
    minidbx *db = NULL;
    ck_assert_ok(minidbx_open(&db, "mem://liar", &opts));
    minidbx_id id;
    ck_assert_ok(minidbx_put(db, "0123456789", 10, &id));
    void *data = NULL;
    size_t size = 0;
    ck_assert_ok(minidbx_get(db, &id, &data, &size));
    ck_assert_uint_eq(size, 10);
    ck_assert_int_ne(memcmp(data, "0123456789", 10), 0); /* it really lies */
    minidbx_free(data);
    minidbx_close(db);
}
END_TEST

START_TEST(null_methods_unsupported)
{
    minidbx *db = mem_open("mem://x");
    minidbx_id id;
    ck_assert_ok(minidbx_put(db, "abc", 3, &id));
    minidbx_name_info name;
    size_t count;
    ck_assert_rc(minidbx_name_set(db, "a", &id), MINIDBX_EUNSUPPORTED);
    ck_assert_str_ne(minidbx_errmsg(db), "");
    ck_assert_rc(minidbx_name_get(db, "a", &name), MINIDBX_EUNSUPPORTED);
    ck_assert_rc(minidbx_name_delete(db, "a"), MINIDBX_EUNSUPPORTED);
    ck_assert_rc(minidbx_name_list(db, NULL, NULL, &name, 1, &count), MINIDBX_EUNSUPPORTED);
    ck_assert_rc(minidbx_batch_begin(db), MINIDBX_EUNSUPPORTED);
    ck_assert_rc(minidbx_verify(db, NULL, 0, NULL, NULL, NULL), MINIDBX_EUNSUPPORTED);
    ck_assert_rc(minidbx_gc(db, NULL), MINIDBX_EUNSUPPORTED);
    /* argument checks still come first */
    ck_assert_rc(minidbx_name_set(db, "/bad", &id), MINIDBX_EINVAL);
    minidbx_close(db);
}
END_TEST

START_TEST(readonly_checked_by_library)
{
    ck_assert_ok(minidbx_register_scheme("mem", mem_backend_open));
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = MINIDBX_OPEN_READONLY;
    minidbx *db = NULL;
    ck_assert_ok(minidbx_open(&db, "mem://ro", &opts));
    minidbx_id id;
    ck_assert_rc(minidbx_put(db, "abc", 3, &id), MINIDBX_EREADONLY);
    ck_assert_uint_eq(mem_backend_last_calls()->put, 0);
    minidbx_close(db);
}
END_TEST

START_TEST(open_backend_directly)
{
    minidbx_backend *be = NULL;
    ck_assert_ok(mem_backend_open(&be, "mem://direct", NULL));
    minidbx *db = NULL;
    ck_assert_ok(minidbx_open_backend(&db, be, NULL));
    exercise_objects(db);
    minidbx_close(db);
    ck_assert_uint_eq(mem_backend_last_calls()->freed, 1);
}
END_TEST

/* The handle owns the table even when open_backend fails. */
START_TEST(open_backend_failure_frees_table)
{
    minidbx_backend *be = NULL;
    ck_assert_ok(mem_backend_open(&be, "mem://bad-version", NULL));
    be->version = 0;
    minidbx *db = (minidbx *)be;
    ck_assert_rc(minidbx_open_backend(&db, be, NULL), MINIDBX_EINVAL);
    ck_assert_ptr_null(db);
    ck_assert_uint_eq(mem_backend_last_calls()->freed, 1);

    ck_assert_ok(mem_backend_open(&be, "mem://bad-options", NULL));
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.version = 0;
    ck_assert_rc(minidbx_open_backend(&db, be, &opts), MINIDBX_EINVAL);
    ck_assert_uint_eq(mem_backend_last_calls()->freed, 1);
}
END_TEST

START_TEST(scheme_registration)
{
    ck_assert_rc(minidbx_register_scheme("", mem_backend_open), MINIDBX_EINVAL);
    char long_scheme[200];
    memset(long_scheme, 'm', sizeof long_scheme - 1);
    long_scheme[sizeof long_scheme - 1] = '\0';
    ck_assert_rc(minidbx_register_scheme(long_scheme, mem_backend_open), MINIDBX_EINVAL);
    minidbx *db = (minidbx *)long_scheme;
    ck_assert_rc(minidbx_open(&db, "nosuchscheme://x", NULL), MINIDBX_EUNSUPPORTED);
    ck_assert_ptr_null(db);
    ck_assert_ok(minidbx_register_scheme("mem", mem_backend_open));
    ck_assert_ok(minidbx_register_scheme("mem", mem_backend_open)); /* replaces */
    ck_assert_ok(minidbx_open(&db, "mem://again", NULL));
    minidbx_close(db);
}
END_TEST

/* The location grammar of minidbx_open: what looks like a URL is never
 * taken for a directory (and no directory appears); a relative path with a
 * colon in its first segment is written ./foo:bar. */
static void expect_refused(const char *location, int code)
{
    minidbx *db = NULL;
    ck_assert_rc(minidbx_open(&db, location, NULL), code);
    ck_assert_ptr_null(db);
    ck_assert_msg(dir_count_entries(".") == 0, "%s left something in the directory", location);
}

static void expect_local(const char *location, const char *dir)
{
    minidbx *db = NULL;
    minidbx_store_info info;
    ck_assert_ok(minidbx_open(&db, location, NULL));
    ck_assert_ok(minidbx_info(db, &info));
    ck_assert_str_eq(info.backend, "local");
    minidbx_close(db);
    ck_assert(path_exists(dir));
}

START_TEST(location_grammar)
{
    char *dir = tmpdir_make("grammar");
    char url[PATH_MAX + 16];
    ck_assert_int_eq(chdir(dir), 0);

    expect_refused("cluster:nodes.json", MINIDBX_ENOTFOUND); /* no such cluster file */
    expect_refused("Cluster:nodes.json", MINIDBX_ENOTFOUND);
    expect_refused("cluster:", MINIDBX_EINVAL);
    /* s3:// is built in: only as s3://, with a valid bucket, and with
     * credentials (checked before any request is made) */
    expect_refused("s3:bucket", MINIDBX_EINVAL);
    expect_refused("s3://Not_A!Bucket/prefix", MINIDBX_EINVAL);
    expect_refused("s3://bucket//prefix", MINIDBX_EINVAL);
    unsetenv("AWS_ACCESS_KEY_ID");
    expect_refused("s3://bucket/prefix", MINIDBX_EPERM);
    ck_assert_msg(strstr(minidbx_errmsg(NULL), "AWS_ACCESS_KEY_ID") != NULL, "%s", minidbx_errmsg(NULL));
    expect_refused("nosuch://x", MINIDBX_EUNSUPPORTED);
    expect_refused("foo:bar", MINIDBX_EINVAL);
    expect_refused("my+scheme.v2-1:x", MINIDBX_EINVAL);
    expect_refused("http:host", MINIDBX_EINVAL);
    expect_refused("file:store", MINIDBX_EINVAL);
    expect_refused("mem:x", MINIDBX_EINVAL); /* not registered (yet) */

    expect_local("./foo:bar", "foo:bar");
    expect_local("C:", "C:");
    ck_assert_int_eq(mkdir("sub", 0755), 0);
    expect_local("sub/b:c", "sub/b:c");
    snprintf(url, sizeof url, "file://%s/via-file-url", dir);
    expect_local(url, "via-file-url");
    expect_local("plain", "plain");

    /* a registered scheme takes both forms, whole */
    ck_assert_ok(minidbx_register_scheme("mem", mem_backend_open));
    minidbx *db = NULL;
    ck_assert_ok(minidbx_open(&db, "MEM:opaque", NULL));
    minidbx_close(db);
    ck_assert_rc(minidbx_register_scheme("1mem", mem_backend_open), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_register_scheme("m", mem_backend_open), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_register_scheme("me/m", mem_backend_open), MINIDBX_EINVAL);
    ck_assert_rc(chdir("/"), 0);
    rm_rf(dir);
    free(dir);
}
END_TEST

static Suite *backend_suite(void)
{
    Suite *s = suite_create("backend");
    TCase *tc = tcase_create("mem");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_test(tc, mem_store_works);
    tcase_add_test(tc, mem_store_streams);
    tcase_add_test(tc, fallbacks_when_put_get_missing_null);
    tcase_add_test(tc, large_put_writes_first_when_asked);
    tcase_add_test(tc, lying_backend_gives_ecorrupt);
    tcase_add_test(tc, no_verify_trusts_backend);
    tcase_add_test(tc, location_grammar);
    tcase_add_test(tc, null_methods_unsupported);
    tcase_add_test(tc, readonly_checked_by_library);
    tcase_add_test(tc, open_backend_directly);
    tcase_add_test(tc, open_backend_failure_frees_table);
    tcase_add_test(tc, scheme_registration);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(backend_suite());
}
