/*
 * test_http_client.c - the public API over http://, against a real
 * `mdbx serve` process started here on a free 127.0.0.1 port.
 *
 * The round-trip cases run twice with the same assertions: on a local
 * store and on an http:// store. The rest is what only a remote store can
 * do wrong: a lying node (a blob corrupted on the node's disk), a node that
 * is down, limits, aborted writers, many threads on one handle, verify and
 * gc run by the node, and batches that cannot share the node's transaction.
 * (The library's own check tests run on an http:// store too: objects-http
 * and the others in tests/http/meson.build.)
 *
 * argv[1] is the mdbx binary.
 */
#include "../util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SERVER_MAX_OBJECT "64M"
#define SERVER_MAX_OBJECT_BYTES (64u << 20)
/* Streamed through a writer and a reader in the memory test. */
#define STREAM_BYTES (48u << 20)

static const char *mdbx_path;
static char *server_store;   /* the node's local store */
static char server_url[256];
static pid_t server_pid;

/* ---- the same round trip on both kinds of store ----------------------------------- */

static minidbx *open_location(int which)
{
    minidbx *db = NULL;
    if (which == 0)
        return store_open(fx_dir, 0);
    ck_assert_ok(minidbx_open(&db, server_url, NULL));
    return db;
}

/* Every object and name the http store's tests leave behind is removed, so
 * that the cases do not see each other's. */
static void clear_store(minidbx *db)
{
    minidbx_name_info names[64];
    minidbx_object_info objects[64];
    size_t count;

    do {
        ck_assert_ok(minidbx_name_list(db, NULL, NULL, names, 64, &count));
        for (size_t i = 0; i < count; i++)
            ck_assert_ok(minidbx_name_delete(db, names[i].name));
    } while (count == 64);
    do {
        ck_assert_ok(minidbx_list(db, NULL, objects, 64, &count));
        for (size_t i = 0; i < count; i++)
            ck_assert_ok(minidbx_delete(db, &objects[i].id));
    } while (count == 64);
}

START_TEST(roundtrip_objects)
{
    test_rng rng;
    minidbx *db = open_location(_i);
    minidbx_object_info info;
    void *data;
    size_t size;

    clear_store(db);
    rng_seed(&rng, 1);
    unsigned char *small = rng_alloc(&rng, 100);
    unsigned char *big = rng_alloc(&rng, 200000);
    minidbx_id small_id, big_id, again, missing;

    ck_assert_ok(minidbx_put(db, small, 100, &small_id));
    ck_assert_ok(minidbx_put(db, big, 200000, &big_id));
    ck_assert_ok(minidbx_put(db, big, 200000, &again));
    ck_assert(minidbx_id_equal(&big_id, &again));
    sha256_raw(big, 200000, &again);
    ck_assert(minidbx_id_equal(&big_id, &again));
    store_expect_bytes(db, &small_id, small, 100);
    store_expect_bytes(db, &big_id, big, 200000);
    ck_assert_ok(minidbx_put(db, NULL, 0, &again));
    store_expect_bytes(db, &again, "", 0);

    ck_assert_int_eq(minidbx_exists(db, &big_id), 1);
    sha256_raw("nope", 4, &missing);
    ck_assert_int_eq(minidbx_exists(db, &missing), 0);
    ck_assert_rc(minidbx_get(db, &missing, &data, &size), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_stat(db, &missing, &info), MINIDBX_ENOTFOUND);

    minidbx_id ids[3] = { small_id, missing, big_id }, out[3];
    size_t count = 9;
    ck_assert_ok(minidbx_missing(db, ids, 3, out, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert(minidbx_id_equal(&out[0], &missing));
    ck_assert_ok(minidbx_missing(db, ids, 3, ids, &count)); /* aliased */
    ck_assert_uint_eq(count, 1);

    ck_assert_ok(minidbx_stat(db, &big_id, &info));
    ck_assert_uint_eq(info.size, 200000);
    ck_assert(!(info.flags & MINIDBX_OBJECT_INLINE));
    ck_assert_int_gt(info.created_ns, 0);
    ck_assert_ok(minidbx_stat(db, &small_id, &info));
    ck_assert(info.flags & MINIDBX_OBJECT_INLINE);

    minidbx_object_info listed[8];
    ck_assert_ok(minidbx_list(db, NULL, listed, 8, &count));
    ck_assert_uint_eq(count, 3);
    ck_assert_ok(minidbx_list(db, NULL, listed, 1, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert_ok(minidbx_list(db, &listed[0].id, listed, 8, &count));
    ck_assert_uint_eq(count, 2);

    ck_assert_ok(minidbx_delete(db, &small_id));
    ck_assert_int_eq(minidbx_exists(db, &small_id), 0);
    ck_assert_rc(minidbx_delete(db, &small_id), MINIDBX_ENOTFOUND);

    minidbx_store_info store;
    ck_assert_ok(minidbx_info(db, &store));
    ck_assert_uint_eq(store.objects, 2);
    ck_assert_str_eq(store.backend, _i == 0 ? "local" : "http");
    free(small);
    free(big);
    minidbx_close(db);
}
END_TEST

START_TEST(roundtrip_names)
{
    test_rng rng;
    minidbx *db = open_location(_i);
    minidbx_name_info info, list[8];
    size_t count;

    clear_store(db);
    rng_seed(&rng, 2);
    minidbx_id a = store_put_random(db, &rng, 1000);
    minidbx_id b = store_put_random(db, &rng, 50000);
    ck_assert_ok(minidbx_name_set(db, "photos/2024/cat.jpg", &a));
    ck_assert_ok(minidbx_name_set(db, "photos/2024/dog.jpg", &b));
    ck_assert_ok(minidbx_name_set(db, "docs/caf\xc3\xa9 & \"notes\"?.txt", &b));
    ck_assert_ok(minidbx_name_get(db, "docs/caf\xc3\xa9 & \"notes\"?.txt", &info));
    ck_assert(minidbx_id_equal(&info.id, &b));
    ck_assert_uint_eq(info.size, 50000);
    ck_assert_rc(minidbx_name_get(db, "nope", &info), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_name_set(db, "a/../b", &a), MINIDBX_EINVAL);
    minidbx_id missing;
    sha256_raw("x", 1, &missing);
    ck_assert_rc(minidbx_name_set(db, "x", &missing), MINIDBX_ENOTFOUND);

    ck_assert_ok(minidbx_name_list(db, "photos/", NULL, list, 8, &count));
    ck_assert_uint_eq(count, 2);
    ck_assert_str_eq(list[0].name, "photos/2024/cat.jpg");
    ck_assert_ok(minidbx_name_list(db, "photos/", "photos/2024/cat.jpg", list, 8, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert_str_eq(list[0].name, "photos/2024/dog.jpg");
    ck_assert_ok(minidbx_name_list(db, NULL, NULL, list, 2, &count));
    ck_assert_uint_eq(count, 2);

    ck_assert_rc(minidbx_delete(db, &a), MINIDBX_EREFERENCED);
    ck_assert_ok(minidbx_delete_ex(db, &a, MINIDBX_DELETE_CASCADE));
    ck_assert_rc(minidbx_name_get(db, "photos/2024/cat.jpg", &info), MINIDBX_ENOTFOUND);
    ck_assert_ok(minidbx_name_delete(db, "photos/2024/dog.jpg"));
    ck_assert_rc(minidbx_name_delete(db, "photos/2024/dog.jpg"), MINIDBX_ENOTFOUND);
    minidbx_close(db);
}
END_TEST

START_TEST(roundtrip_streams)
{
    test_rng rng;
    minidbx *db = open_location(_i);
    minidbx_writer *w;
    minidbx_reader *r;
    minidbx_id id, want;
    uint64_t size;
    size_t total = 5u << 20, done = 0, n;

    clear_store(db);
    rng_seed(&rng, 3);
    unsigned char *data = rng_alloc(&rng, total);
    sha256_raw(data, total, &want);
    ck_assert_ok(minidbx_writer_open(db, &w));
    for (size_t off = 0; off < total; off += 65536)
        ck_assert_ok(minidbx_writer_write(w, data + off, total - off < 65536 ? total - off : 65536));
    ck_assert_ok(minidbx_writer_commit(w, &id));
    ck_assert(minidbx_id_equal(&id, &want));

    ck_assert_ok(minidbx_reader_open(db, &id, &r, &size));
    ck_assert_uint_eq(size, total);
    unsigned char *back = malloc(total + 1);
    do {
        ck_assert_ok(minidbx_reader_read(r, back + done, 100000, &n));
        done += n;
    } while (n);
    ck_assert_uint_eq(done, total);
    ck_assert_mem_eq(back, data, total);
    minidbx_reader_close(r);

    /* a reader closed early, and an aborted writer, leave nothing behind */
    ck_assert_ok(minidbx_reader_open(db, &id, &r, &size));
    ck_assert_ok(minidbx_reader_read(r, back, 1000, &n));
    minidbx_reader_close(r);
    ck_assert_ok(minidbx_writer_open(db, &w));
    ck_assert_ok(minidbx_writer_write(w, "never stored", 12));
    minidbx_writer_abort(w);
    ck_assert_int_eq(store_object_count(db), 1);

    /* put_fd / get_fd through a file */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s.file", fx_dir);
    ck_assert_int_eq(file_write_all(path, data, 300000), 0);
    FILE *f = fopen(path, "r");
    ck_assert_ok(minidbx_put_fd(db, fileno(f), &id));
    fclose(f);
    f = tmpfile();
    ck_assert_ok(minidbx_get_fd(db, &id, fileno(f)));
    ck_assert_int_eq(lseek(fileno(f), 0, SEEK_END), 300000);
    fclose(f);
    unlink(path);
    free(back);
    free(data);
    minidbx_close(db);
}
END_TEST

/* ---- only over http ------------------------------------------------------------ */

static minidbx *open_http(void)
{
    return open_location(1);
}

/* A byte flipped on the node's disk: the node cuts the response before
 * its last byte (the object is streamed while it is hashed), so the client
 * sees a short transfer (EIO) or, from a node that does send the wrong
 * bytes, a failed verification (ECORRUPT); never the bytes. */
static int is_refusal(int rc)
{
    return rc == MINIDBX_ECORRUPT || rc == MINIDBX_EIO;
}

START_TEST(corrupt_blob_never_reaches_client)
{
    test_rng rng;
    minidbx *db = open_http();
    char blob[PATH_MAX];
    void *data;
    size_t size, n;
    minidbx_reader *r;
    unsigned char buf[65536];
    int rc;

    rng_seed(&rng, 4);
    minidbx_id id = store_put_random(db, &rng, 100000);
    store_blob_path(server_store, &id, blob);
    ck_assert_int_eq(file_flip_byte(blob, 5000), 0);
    rc = minidbx_get(db, &id, &data, &size);
    ck_assert_msg(is_refusal(rc), "get of a corrupt object: %d (%s)", rc, minidbx_errmsg(NULL));
    /* a small object is read whole at open, so the refusal may come there */
    if ((rc = minidbx_reader_open(db, &id, &r, NULL)) == 0) {
        while ((rc = minidbx_reader_read(r, buf, sizeof buf, &n)) == 0 && n > 0)
            continue;
        minidbx_reader_close(r);
    }
    ck_assert_msg(is_refusal(rc), "reader of a corrupt object: %d (%s)", rc, minidbx_errmsg(NULL));
    ck_assert_int_eq(file_flip_byte(blob, 5000), 0); /* repaired on the node's disk */
    ck_assert_ok(minidbx_get(db, &id, &data, &size));
    minidbx_free(data);
    minidbx_close(db);
}
END_TEST

/* The node's count of object_get requests (GET and HEAD) answered 200,
 * from its /metrics. */
static unsigned long long object_gets(void)
{
    char cmd[512], line[512];
    unsigned long long count = 0;
    const char *want = "minidbx_http_requests_total{route=\"object_get\",status=\"200\"} ";

    snprintf(cmd, sizeof cmd, "curl -sS --fail --max-time 10 '%s/metrics'", server_url);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    while (fgets(line, sizeof line, p))
        if (strncmp(line, want, strlen(want)) == 0)
            count = strtoull(line + strlen(want), NULL, 10);
    ck_assert_int_eq(pclose(p), 0);
    return count;
}

/* Read id whole through a reader of db: its size, checked. */
static void read_through(minidbx *db, const minidbx_id *id, uint64_t want)
{
    minidbx_reader *r;
    unsigned char buf[65536];
    uint64_t size = 0, total = 0;
    size_t n;
    int rc;

    ck_assert_ok(minidbx_reader_open(db, id, &r, &size));
    ck_assert_uint_eq(size, want);
    while ((rc = minidbx_reader_read(r, buf, sizeof buf, &n)) == 0 && n > 0)
        total += n;
    ck_assert_ok(rc);
    ck_assert_uint_eq(total, want);
    minidbx_reader_close(r);
}

/* A reader of a small object is one request to the node (the GET's
 * Content-Length is its size; no HEAD first), also through a cluster:
 * store whose node it is (no cache: every read goes to the node); a large
 * one at most two; a missing object is still ENOTFOUND at open. */
START_TEST(reader_is_one_request)
{
    test_rng rng;
    minidbx *db = open_http(), *cluster = NULL;
    minidbx_reader *r = NULL;
    minidbx_id absent;
    char *dir = tmpdir_make("cluster"), file[PATH_MAX], json[1024];

    rng_seed(&rng, 7);
    minidbx_id small = store_put_random(db, &rng, 4096), big = store_put_random(db, &rng, 3 << 20);
    unsigned long long before = object_gets();
    read_through(db, &small, 4096);
    ck_assert_uint_eq(object_gets(), before + 1);
    /* a large one: its first GET is dropped at the headers, then streamed */
    read_through(db, &big, 3 << 20);
    ck_assert_uint_le(object_gets(), before + 3);

    snprintf(file, sizeof file, "%s/cluster.json", dir);
    snprintf(json, sizeof json,
             "{\"replicas\": 1, \"write_quorum\": 1, \"cache_objects\": 0, \"nodes\": [\"%s\"]}",
             server_url);
    ck_assert_int_eq(file_write_all(file, json, strlen(json)), 0);
    char location[PATH_MAX + 16];
    snprintf(location, sizeof location, "cluster:%s", file);
    ck_assert_ok(minidbx_open(&cluster, location, NULL));
    before = object_gets();
    read_through(cluster, &small, 4096);
    ck_assert_uint_eq(object_gets(), before + 1);
    read_through(cluster, &big, 3 << 20);
    ck_assert_uint_le(object_gets(), before + 3);

    rng_fill(&rng, &absent, sizeof absent);
    ck_assert_rc(minidbx_reader_open(db, &absent, &r, NULL), MINIDBX_ENOTFOUND);
    ck_assert_ptr_null(r);
    minidbx_close(cluster);
    minidbx_close(db);
    rm_rf(dir);
    free(dir);
}
END_TEST

START_TEST(node_down_gives_eio)
{
    minidbx *db = NULL;
    ck_assert_rc(minidbx_open(&db, "http://127.0.0.1:1", NULL), MINIDBX_EIO);
    ck_assert_ptr_null(db);
    ck_assert_ptr_nonnull(strstr(minidbx_errmsg(NULL), "http://127.0.0.1:1"));
}
END_TEST

START_TEST(limits_over_http)
{
    minidbx *db = open_http();
    minidbx_writer *w;
    size_t chunk = 1u << 20;
    unsigned char *buf = calloc(1, chunk);
    uint64_t before = store_object_count(db);
    int rc = 0;

    ck_assert_ok(minidbx_writer_open(db, &w));
    for (size_t i = 0; rc == 0 && i <= SERVER_MAX_OBJECT_BYTES / chunk; i++)
        rc = minidbx_writer_write(w, buf, chunk);
    if (rc == 0)
        rc = minidbx_writer_commit(w, NULL);
    else
        minidbx_writer_abort(w);
    ck_assert_rc(rc, MINIDBX_ETOOBIG);
    ck_assert_int_eq(store_object_count(db), before);
    void *big = calloc(1, SERVER_MAX_OBJECT_BYTES + 1);
    ck_assert_rc(minidbx_put(db, big, SERVER_MAX_OBJECT_BYTES + 1, NULL), MINIDBX_ETOOBIG);
    free(big);
    free(buf);
    minidbx_close(db);
}
END_TEST

/* More ids than the node takes in one request: the client batches. */
START_TEST(missing_in_batches)
{
    test_rng rng;
    minidbx *db = open_http();
    size_t count = 25000, missing = 0;
    minidbx_id *ids = malloc(count * sizeof *ids);

    rng_seed(&rng, 5);
    rng_fill(&rng, ids, count * sizeof *ids);
    ids[12345] = store_put_random(db, &rng, 100);
    ck_assert_ok(minidbx_missing(db, ids, count, ids, &missing));
    ck_assert_uint_eq(missing, count - 1);
    free(ids);
    minidbx_close(db);
}
END_TEST

/* Verify runs on the node; its problems reach the callback one by one. */
START_TEST(verify_over_http)
{
    test_rng rng;
    minidbx *db = open_http();
    minidbx_verify_report report;
    problem_log log = { .quiet = 1 };
    char blob[PATH_MAX];
    minidbx_id missing;

    clear_store(db);
    rng_seed(&rng, 6);
    minidbx_id good = store_put_random(db, &rng, 1000);
    minidbx_id bad = store_put_random(db, &rng, 100000);
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.objects_checked, 2);
    ck_assert_uint_eq(report.bytes_checked, 101000);
    ck_assert_uint_eq(report.problems, 0);
    ck_assert_uint_eq(log.total, 0);

    store_blob_path(server_store, &bad, blob);
    ck_assert_int_eq(file_flip_byte(blob, 50), 0);
    ck_assert_ok(minidbx_verify(db, &good, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.objects_checked, 1);
    ck_assert_uint_eq(report.problems, 0);
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.problems, 1);
    ck_assert_uint_eq(report.repaired, 0);
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_CORRUPT, &bad));
    ck_assert_int_eq(minidbx_exists(db, &bad), 1);

    ck_assert_ok(minidbx_verify(db, &bad, MINIDBX_VERIFY_REPAIR, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.problems, 1);
    ck_assert_uint_eq(report.repaired, 1);
    ck_assert_uint_eq(log.repaired[MINIDBX_PROBLEM_CORRUPT], 1);
    ck_assert_int_eq(minidbx_exists(db, &bad), 0);
    ck_assert_ok(minidbx_verify(db, NULL, 0, NULL, NULL, NULL));

    sha256_raw("nope", 4, &missing);
    ck_assert_rc(minidbx_verify(db, &missing, 0, &report, NULL, NULL), MINIDBX_ENOTFOUND);
    minidbx_close(db);
}
END_TEST

START_TEST(gc_over_http)
{
    test_rng rng;
    minidbx *db = open_http();
    minidbx_gc_report report;

    clear_store(db);
    rng_seed(&rng, 7);
    minidbx_id named = store_put_random(db, &rng, 500);
    minidbx_id loose = store_put_random(db, &rng, 70000);
    ck_assert_ok(minidbx_name_set(db, "keep", &named));
    ck_assert_ok(test_gc_now(db, &report));
    ck_assert_uint_eq(report.objects_removed, 1);
    ck_assert_uint_eq(report.bytes_removed, 70000);
    ck_assert_int_eq(minidbx_exists(db, &named), 1);
    ck_assert_int_eq(minidbx_exists(db, &loose), 0);
    ck_assert_ok(test_gc_now(db, NULL));
    minidbx_close(db);
}
END_TEST

static void count_removed(void *ctx, const minidbx_id *id, uint64_t size)
{
    (void)id, (void)size;
    ++*(uint64_t *)ctx;
}

/* The node lists the first 10,000 objects gc removes; the counts are
 * exact. The objects are put on the node's store directly, in one batch. */
START_TEST(gc_lists_at_most_10000)
{
    enum { N = 10003 };
    minidbx *db = open_http(), *direct = store_open(server_store, 0);
    minidbx_gc_options opts = MINIDBX_GC_OPTIONS_INIT;
    minidbx_gc_report report;
    uint64_t listed = 0;

    clear_store(db);
    ck_assert_ok(minidbx_batch_begin(direct));
    for (uint64_t i = 0; i < N; i++)
        ck_assert_ok(minidbx_put(direct, &i, sizeof i, NULL));
    ck_assert_ok(minidbx_batch_commit(direct));
    minidbx_close(direct);
    opts.older_than_ns = 0;
    opts.flags = MINIDBX_GC_DRY_RUN;
    opts.removed = count_removed;
    opts.ctx = &listed;
    ck_assert_ok(minidbx_gc_ex(db, &opts, &report));
    ck_assert_uint_eq(report.objects_removed, N);
    ck_assert_uint_eq(report.bytes_removed, N * 8);
    ck_assert_uint_eq(listed, 10000);
    ck_assert_uint_eq(store_object_count(db), N);
    listed = 0;
    opts.flags = 0;
    ck_assert_ok(minidbx_gc_ex(db, &opts, &report));
    ck_assert_uint_eq(report.objects_removed, N);
    ck_assert_uint_eq(listed, 10000);
    ck_assert_uint_eq(store_object_count(db), 0);
    minidbx_close(db);
}
END_TEST

/* A remote batch: its puts reach the node at once, and abort removes
 * nothing, so that it never deletes what another client was told is stored:
 * client A's batch puts X, client B puts the same bytes and hears they are
 * stored, A aborts, and X is still there. Unnamed leftovers go at gc. */
START_TEST(batch_over_http)
{
    test_rng rng;
    minidbx *a = open_http(), *b = open_http();
    minidbx_writer *w;
    minidbx_id x, x_again, streamed, kept;

    clear_store(a);
    rng_seed(&rng, 8);
    ck_assert_rc(minidbx_batch_commit(a), MINIDBX_ESTATE);
    ck_assert_rc(minidbx_batch_abort(a), MINIDBX_ESTATE);

    unsigned char *x_bytes = rng_alloc(&rng, 40000);
    ck_assert_ok(minidbx_batch_begin(a));
    ck_assert_rc(minidbx_batch_begin(a), MINIDBX_ESTATE);
    ck_assert_ok(minidbx_put(a, x_bytes, 40000, &x));
    ck_assert_ok(minidbx_writer_open(a, &w));
    ck_assert_ok(minidbx_writer_write(w, "through a writer", 16));
    ck_assert_ok(minidbx_writer_commit(w, &streamed));
    ck_assert_ok(minidbx_put(b, x_bytes, 40000, &x_again)); /* B: "stored" */
    ck_assert(minidbx_id_equal(&x, &x_again));
    ck_assert_ok(minidbx_batch_abort(a));
    store_expect_bytes(b, &x, x_bytes, 40000);
    ck_assert_int_eq(minidbx_exists(a, &streamed), 1);

    ck_assert_ok(minidbx_batch_begin(a));
    kept = store_put_random(a, &rng, 20000);
    ck_assert_ok(minidbx_batch_commit(a));
    ck_assert_rc(minidbx_batch_commit(a), MINIDBX_ESTATE);
    ck_assert_int_eq(minidbx_exists(a, &kept), 1);

    /* closing the handle ends its batch, removing nothing either */
    ck_assert_ok(minidbx_batch_begin(a));
    minidbx_id left = store_put_random(a, &rng, 200);
    minidbx_close(a);
    ck_assert_int_eq(minidbx_exists(b, &left), 1);
    ck_assert_int_eq(store_object_count(b), 4);
    free(x_bytes);
    minidbx_close(b);
}
END_TEST

/* 64-bit integers come through exactly: ns times are about 2^61, past the
 * 2^53 a double holds, and the client reads what the node's store says to
 * the last digit (names and listings are JSON; stat is headers). */
START_TEST(integers_are_exact)
{
    minidbx *db = open_http(), *direct = store_open(server_store, MINIDBX_OPEN_READONLY);
    minidbx_name_info over_http, on_disk, listed[4];
    minidbx_object_info objects_http[64], objects_disk[64];
    size_t count, count_disk;
    minidbx_id id;

    clear_store(db);
    ck_assert_ok(minidbx_put(db, "exact", 5, &id));
    ck_assert_ok(minidbx_name_set(db, "exact/time", &id));
    ck_assert_ok(minidbx_name_get(db, "exact/time", &over_http));
    ck_assert_ok(minidbx_name_get(direct, "exact/time", &on_disk));
    ck_assert(on_disk.mtime_ns > ((int64_t)1 << 53));
    ck_assert_int_eq(over_http.mtime_ns, on_disk.mtime_ns);
    ck_assert_ok(minidbx_name_list(db, "exact/", NULL, listed, 4, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert_int_eq(listed[0].mtime_ns, on_disk.mtime_ns);

    ck_assert_ok(minidbx_list(db, NULL, objects_http, 64, &count));
    ck_assert_ok(minidbx_list(direct, NULL, objects_disk, 64, &count_disk));
    ck_assert_uint_eq(count, count_disk);
    for (size_t i = 0; i < count; i++) {
        ck_assert(minidbx_id_equal(&objects_http[i].id, &objects_disk[i].id));
        ck_assert(objects_disk[i].created_ns > ((int64_t)1 << 53));
        ck_assert_int_eq(objects_http[i].created_ns, objects_disk[i].created_ns);
        ck_assert_uint_eq(objects_http[i].size, objects_disk[i].size);
        ck_assert_uint_eq(objects_http[i].refs, objects_disk[i].refs);
    }
    minidbx_close(direct);
    minidbx_close(db);
}
END_TEST

static void *abort_own_batch(void *cls)
{
    minidbx *db = cls;
    minidbx_id id;
    int ok = minidbx_batch_begin(db) == 0 && minidbx_put(db, "other thread", 12, &id) == 0 &&
             minidbx_batch_abort(db) == 0 && minidbx_exists(db, &id) == 1;
    return ok ? db : NULL;
}

/* A batch belongs to its thread: another thread on the same handle has its own. */
START_TEST(batches_are_per_thread)
{
    minidbx *db = open_http();
    pthread_t thread;
    void *result = NULL;
    minidbx_id id;

    ck_assert_ok(minidbx_batch_begin(db));
    ck_assert_ok(minidbx_put(db, "this thread", 11, &id));
    ck_assert_int_eq(pthread_create(&thread, NULL, abort_own_batch, db), 0);
    pthread_join(thread, &result);
    ck_assert_ptr_eq(result, db);
    ck_assert_ok(minidbx_batch_commit(db));
    ck_assert_int_eq(minidbx_exists(db, &id), 1);
    minidbx_close(db);
}
END_TEST

/* In a child, so that its peak RSS is its own: 48 MiB up through a writer
 * and back through a reader, 1 MiB at a time. */
static int stream_big(void *arg)
{
    (void)arg;
    minidbx *db = NULL;
    minidbx_writer *w;
    minidbx_reader *r;
    minidbx_id id;
    size_t chunk = 1u << 20, n, total = 0;
    unsigned char *buf = malloc(chunk);

    if (!buf || minidbx_open(&db, server_url, NULL) < 0 || minidbx_writer_open(db, &w) < 0)
        return 1;
    for (size_t done = 0; done < STREAM_BYTES; done += chunk) {
        memset(buf, (int)(done >> 20), chunk);
        if (minidbx_writer_write(w, buf, chunk) < 0)
            return 2;
    }
    if (minidbx_writer_commit(w, &id) < 0 || minidbx_reader_open(db, &id, &r, NULL) < 0)
        return 3;
    do {
        if (minidbx_reader_read(r, buf, chunk, &n) < 0)
            return 4;
        total += n;
    } while (n);
    minidbx_reader_close(r);
    minidbx_delete(db, &id);
    minidbx_close(db);
    free(buf);
    return total == STREAM_BYTES ? 0 : 5;
}

START_TEST(streams_use_bounded_memory)
{
    long rss_kib = 0;
    ck_assert_int_eq(run_in_child(stream_big, NULL, &rss_kib), 0);
    printf("48 MiB up and down over http: peak RSS %ld KiB\n", rss_kib);
    if (!TEST_UNDER_ASAN)
        ck_assert_int_lt(rss_kib, 32 * 1024);
}
END_TEST

struct worker {
    minidbx *db;
    int seed;
    int failures;
};

static void *worker_main(void *cls)
{
    struct worker *wk = cls;
    test_rng rng;
    unsigned char buf[3000];
    void *data;
    size_t size;
    minidbx_id id;

    rng_seed(&rng, (uint64_t)wk->seed);
    for (int i = 0; i < 50; i++) {
        rng_fill(&rng, buf, sizeof buf);
        if (minidbx_put(wk->db, buf, sizeof buf, &id) < 0 || minidbx_get(wk->db, &id, &data, &size) < 0) {
            wk->failures++;
            continue;
        }
        wk->failures += size != sizeof buf || memcmp(data, buf, size) != 0;
        minidbx_free(data);
    }
    return NULL;
}

START_TEST(threads_share_a_handle)
{
    minidbx *db = open_http();
    pthread_t threads[8];
    struct worker workers[8];

    for (int i = 0; i < 8; i++) {
        workers[i] = (struct worker){ db, 100 + i, 0 };
        ck_assert_int_eq(pthread_create(&threads[i], NULL, worker_main, &workers[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(threads[i], NULL);
        ck_assert_int_eq(workers[i].failures, 0);
    }
    minidbx_close(db);
}
END_TEST

/* ---- a hostile node: a thread on 127.0.0.1 that answers /health, then
 * lies in one way per mode (each bounded: it stops by itself) --------------- */

enum liar_mode { LIAR_206, LIAR_ENDLESS_JSON, LIAR_DRIP, LIAR_HUGE_ERROR };

struct liar {
    enum liar_mode mode;
    int listen_fd;
    unsigned port;
    pthread_t thread;
    atomic_int object_requests; /* GETs of /v1/objects/ */
    atomic_bool stop;
};

static bool send_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t n = send(fd, p, size, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        p += n;
        size -= (size_t)n;
    }
    return true;
}

/* Answer one request on fd (its request line and headers read first). */
static void liar_answer(struct liar *l, int fd)
{
    char request[4096] = "";
    size_t got = 0;
    while (got < sizeof request - 1 && !strstr(request, "\r\n\r\n")) {
        ssize_t n = recv(fd, request + got, sizeof request - 1 - got, 0);
        if (n <= 0)
            return;
        got += (size_t)n;
        request[got] = '\0';
    }
    if (strncmp(request, "GET /health ", 12) == 0) {
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}";
        send_all(fd, ok, sizeof ok - 1);
        return;
    }
    static char chunk[1 << 20];
    memset(chunk, ' ', sizeof chunk);
    char head[256];
    switch (l->mode) {
    case LIAR_206:
        atomic_fetch_add(&l->object_requests, 1);
        snprintf(head, sizeof head, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/38000\r\n"
                                    "Content-Length: 100\r\nConnection: close\r\n\r\n");
        if (send_all(fd, head, strlen(head)))
            send_all(fd, chunk, 100);
        break;
    case LIAR_ENDLESS_JSON: /* 400 MiB of a JSON reply that never ends its object */
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                    "Connection: close\r\n\r\n{\"objects\": ");
        for (int i = 0; send_all(fd, i == 0 ? head : chunk, i == 0 ? strlen(head) : sizeof chunk) && i < 400 &&
                        !atomic_load(&l->stop);
             i++)
            ;
        break;
    case LIAR_HUGE_ERROR: /* a 500 whose words go on for 100 MiB */
        snprintf(head, sizeof head, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                                    "Connection: close\r\n\r\nbroken");
        for (int i = 0; send_all(fd, i == 0 ? head : chunk, i == 0 ? strlen(head) : sizeof chunk) && i < 100 &&
                        !atomic_load(&l->stop);
             i++)
            ;
        break;
    case LIAR_DRIP: /* 4 bytes a second of a 1 MB body, for 20 s at most */
        atomic_fetch_add(&l->object_requests, 1);
        snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n");
        for (int i = 0; send_all(fd, i == 0 ? head : "drip", i == 0 ? strlen(head) : 4) && i < 20 &&
                        !atomic_load(&l->stop);
             i++)
            if (i > 0)
                sleep(1);
        break;
    }
}

static void *liar_main(void *arg)
{
    struct liar *l = arg;
    while (!atomic_load(&l->stop)) {
        int fd = accept(l->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        liar_answer(l, fd);
        close(fd);
    }
    return NULL;
}

static void liar_start(struct liar *l, enum liar_mode mode)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    *l = (struct liar){ .mode = mode };
    l->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l->listen_fd, 0);
    ck_assert_int_eq(bind(l->listen_fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq(listen(l->listen_fd, 16), 0);
    ck_assert_int_eq(getsockname(l->listen_fd, (struct sockaddr *)&addr, &len), 0);
    l->port = ntohs(addr.sin_port);
    ck_assert_int_eq(pthread_create(&l->thread, NULL, liar_main, l), 0);
}

static void liar_stop(struct liar *l)
{
    atomic_store(&l->stop, true);
    shutdown(l->listen_fd, SHUT_RDWR); /* wakes accept */
    pthread_join(l->thread, NULL);
    close(l->listen_fd);
}

static minidbx *liar_open(const struct liar *l, unsigned timeout_ms)
{
    char url[64];
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    minidbx *db = NULL;
    opts.timeout_ms = timeout_ms;
    snprintf(url, sizeof url, "http://127.0.0.1:%u", l->port);
    ck_assert_ok(minidbx_open(&db, url, &opts));
    return db;
}

static const char liar_hex[] = "c12d15c6b1e2d1bd0e5d1e1b0e8d6b8e2a2a4f46d4b0e3a3d6f5e2c1b0a9855d";

/* A node that answers a GET of a whole object with a 206: EIO at once
 * (it looped for ever on empty ranges, a thousand requests a second). */
START_TEST(node_answering_206_is_refused)
{
    struct liar l;
    minidbx_id id;
    minidbx_reader *reader = NULL;
    uint64_t size = 0;
    liar_start(&l, LIAR_206);
    minidbx *db = liar_open(&l, 5000);
    ck_assert_ok(minidbx_id_parse(&id, liar_hex));
    ck_assert_rc(minidbx_reader_open(db, &id, &reader, &size), MINIDBX_EIO);
    ck_assert_ptr_nonnull(strstr(minidbx_errmsg(db), "206"));
    ck_assert_int_le(atomic_load(&l.object_requests), 3); /* not a loop */
    minidbx_close(db);
    liar_stop(&l);
}
END_TEST

/* minidbx_info against a liar, in a child (run_in_child: its peak RSS):
 * 0 if it fails with EIO saying what it should. */
struct info_case {
    struct liar *liar;
    const char *said;
};

static int info_of_liar(void *arg)
{
    struct info_case *c = arg;
    char url[64];
    minidbx *db = NULL;
    minidbx_store_info info;
    snprintf(url, sizeof url, "http://127.0.0.1:%u", c->liar->port);
    if (minidbx_open(&db, url, NULL) != 0)
        return 3;
    int rc = minidbx_info(db, &info);
    bool said = strstr(minidbx_errmsg(db), c->said) != NULL;
    minidbx_close(db);
    return rc == MINIDBX_EIO && said ? 0 : 1;
}

/* A JSON reply that never ends: EIO past 64 MiB, in bounded memory. */
START_TEST(endless_json_reply_is_bounded)
{
    struct liar l;
    long rss_kib = 0;
    liar_start(&l, LIAR_ENDLESS_JSON);
    struct info_case c = { &l, "past 64 MiB" };
    ck_assert_int_eq(run_in_child(info_of_liar, &c, &rss_kib), 0); /* 1 before: no cap, no such error */
    ck_assert_int_lt(rss_kib, 256 * 1024); /* 64 MiB kept (more under ASan); 400 MiB before */
    liar_stop(&l);
}
END_TEST

/* An error reply whose words go on: the status's error, from the first
 * words, without reading the rest. */
START_TEST(endless_error_reply_is_cut)
{
    struct liar l;
    long rss_kib = 0;
    liar_start(&l, LIAR_HUGE_ERROR);
    struct info_case c = { &l, "HTTP 500" };
    ck_assert_int_eq(run_in_child(info_of_liar, &c, &rss_kib), 0);
    ck_assert_int_lt(rss_kib, 48 * 1024); /* 100 MiB of words were read into memory before */
    liar_stop(&l);
}
END_TEST

/* A node that drips 4 bytes a second: the get fails within the timeout
 * (2 s here) at under 1 KiB/s, long before the node stops (20 s). */
START_TEST(dripping_node_times_out)
{
    struct liar l;
    minidbx_id id;
    void *data = NULL;
    size_t size = 0;
    liar_start(&l, LIAR_DRIP);
    minidbx *db = liar_open(&l, 2000);
    ck_assert_ok(minidbx_id_parse(&id, liar_hex));
    double start = now_ms();
    ck_assert_rc(minidbx_get(db, &id, &data, &size), MINIDBX_EIO);
    ck_assert_msg(now_ms() - start < 12000, "the get took %.0f ms", now_ms() - start);
    minidbx_close(db);
    liar_stop(&l);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *both = tcase_with_store("local and http", TEST_TIMEOUT_S);
    /* loop index 0: a local store, 1: the http:// node */
    tcase_add_loop_test(both, roundtrip_objects, 0, 2);
    tcase_add_loop_test(both, roundtrip_names, 0, 2);
    tcase_add_loop_test(both, roundtrip_streams, 0, 2);
    suite_add_tcase(s, both);

    TCase *remote = tcase_with_store("http only", TEST_TIMEOUT_S);
    tcase_add_test(remote, corrupt_blob_never_reaches_client);
    tcase_add_test(remote, node_down_gives_eio);
    tcase_add_test(remote, reader_is_one_request);
    tcase_add_test(remote, limits_over_http);
    tcase_add_test(remote, verify_over_http);
    tcase_add_test(remote, gc_over_http);
    tcase_add_test(remote, gc_lists_at_most_10000);
    tcase_add_test(remote, batch_over_http);
    tcase_add_test(remote, integers_are_exact);
    tcase_add_test(remote, batches_are_per_thread);
    tcase_add_test(remote, missing_in_batches);
    tcase_add_test(remote, threads_share_a_handle);
    tcase_add_test(remote, streams_use_bounded_memory);
    suite_add_tcase(s, remote);

    TCase *hostile = tcase_create("hostile node");
    tcase_set_timeout(hostile, TEST_TIMEOUT_S);
    tcase_add_test(hostile, node_answering_206_is_refused);
    tcase_add_test(hostile, endless_json_reply_is_bounded);
    tcase_add_test(hostile, endless_error_reply_is_cut);
    tcase_add_test(hostile, dripping_node_times_out);
    suite_add_tcase(s, hostile);
    return s;
}

int main(int argc, char **argv)
{
    int status;

    if (argc < 2) {
        fprintf(stderr, "usage: %s MDBX\n", argv[0]);
        return 2;
    }
    mdbx_path = argv[1];
    signal(SIGPIPE, SIG_IGN);
    /* not tmpdir_make: check's asserts only work inside a test */
    const char *tmp = getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp";
    if (asprintf(&server_store, "%s/minidbx-test-http-node-XXXXXX", tmp) < 0 || !mkdtemp(server_store)) {
        perror("mkdtemp");
        return 1;
    }
    static const char *const limits[] = { "--max-object-size", SERVER_MAX_OBJECT, NULL };
    if (serve_start(mdbx_path, server_store, limits, &server_pid, server_url, sizeof server_url) < 0) {
        fprintf(stderr, "cannot start %s serve\n", mdbx_path);
        rm_rf(server_store);
        free(server_store);
        return 1;
    }
    status = run_suite(http_suite());
    if (serve_stop(server_pid) < 0)
        status = EXIT_FAILURE;
    rm_rf(server_store);
    free(server_store);
    return status;
}
