/* test_objects.c - whole-buffer object calls: round trips at every
 * interesting size, dedup, stat/exists/delete/missing/list, opening rules
 * (create, NO_CREATE, READONLY, not-a-store), batches, max size.
 * Runs on every backend of the matrix in util.c (MINIDBX_TEST_BACKEND); a
 * case that needs what a backend lacks (TEST_CAP_*) is left out there. */
#include "util.h"

#include <minidbx/sys/backend.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define THRESHOLD MINIDBX_DEFAULT_INLINE_THRESHOLD

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Put size random bytes, read them back, check stat; return the id. */
static minidbx_id round_trip(test_rng *rng, size_t size)
{
    unsigned char *data = rng_alloc(rng, size);
    minidbx_id id, ref;
    int64_t before_ns = wall_ns();
    ck_assert_ok(minidbx_put(fx_db, data, size, &id));
    sha256_raw(data, size, &ref);
    ck_assert_msg(minidbx_id_equal(&id, &ref), "id of %zu bytes is not their SHA-256", size);
    ck_assert_int_eq(minidbx_exists(fx_db, &id), 1);
    store_expect_bytes(fx_db, &id, data, size);

    minidbx_object_info info;
    ck_assert_ok(minidbx_stat(fx_db, &id, &info));
    ck_assert(minidbx_id_equal(&info.id, &id));
    ck_assert_uint_eq(info.size, size);
    ck_assert_uint_eq(info.refs, 0);
    ck_assert_int_ge(info.created_ns, before_ns - 2000000000LL);
    ck_assert_int_le(info.created_ns, wall_ns() + 2000000000LL);
    unsigned want_inline = size <= THRESHOLD && test_backend_has(TEST_CAP_INLINE) ? MINIDBX_OBJECT_INLINE : 0;
    ck_assert_msg((info.flags & MINIDBX_OBJECT_INLINE) == want_inline,
                  "%zu-byte object: flags 0x%x, inline expected %u", size, info.flags, want_inline);
    free(data);
    return id;
}

START_TEST(round_trip_sizes)
{
    test_rng rng;
    rng_seed(&rng, 1);
    static const size_t sizes[] = {0, 1, 2, 100, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1,
                                   1 << 20, 10 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        round_trip(&rng, sizes[i]);
    ck_assert_uint_eq(store_object_count(fx_db), sizeof sizes / sizeof sizes[0]);
}
END_TEST

/* A file object lives at blobs/ab/cd/<hex>; an inline one has no file. */
START_TEST(blob_layout)
{
    test_rng rng;
    rng_seed(&rng, 2);
    minidbx_id big = round_trip(&rng, THRESHOLD + 1);
    minidbx_id small = round_trip(&rng, THRESHOLD);
    char path[PATH_MAX];
    store_blob_path(fx_dir, &big, path);
    ck_assert_msg(path_exists(path), "no blob file at %s", path);
    store_blob_path(fx_dir, &small, path);
    ck_assert_msg(!path_exists(path), "inline object also has a file at %s", path);
    store_path(fx_dir, "meta.lmdb", path);
    ck_assert_msg(path_exists(path), "no %s", path);
}
END_TEST

START_TEST(empty_object)
{
    minidbx_id id;
    ck_assert_ok(minidbx_put(fx_db, NULL, 0, &id));
    void *data = NULL;
    size_t size = 99;
    ck_assert_ok(minidbx_get(fx_db, &id, &data, &size));
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(size, 0);
    minidbx_free(data);
    ck_assert_ok(minidbx_put(fx_db, "", 0, NULL));
    ck_assert_uint_eq(store_object_count(fx_db), 1);
}
END_TEST

START_TEST(put_twice_stores_once)
{
    test_rng rng;
    rng_seed(&rng, 3);
    static const size_t sizes[] = {10, THRESHOLD + 100};
    for (size_t i = 0; i < 2; i++) {
        unsigned char *data = rng_alloc(&rng, sizes[i]);
        minidbx_id a, b;
        minidbx_object_info first, second;
        ck_assert_ok(minidbx_put(fx_db, data, sizes[i], &a));
        ck_assert_ok(minidbx_stat(fx_db, &a, &first));
        ck_assert_ok(minidbx_put(fx_db, data, sizes[i], &b));
        ck_assert(minidbx_id_equal(&a, &b));
        ck_assert_ok(minidbx_stat(fx_db, &b, &second));
        ck_assert_int_eq(first.created_ns, second.created_ns);
        free(data);
    }
    minidbx_store_info info;
    ck_assert_ok(minidbx_info(fx_db, &info));
    ck_assert_uint_eq(info.objects, 2);
    ck_assert_uint_eq(info.bytes, 10 + THRESHOLD + 100);
    ck_assert_uint_eq(info.inline_objects, 1);
    ck_assert_uint_eq(info.file_objects, 1);
    ck_assert_uint_eq(info.inline_threshold, THRESHOLD);
    ck_assert_str_eq(info.backend, test_backend_name());
    char blobs[PATH_MAX];
    store_path(fx_dir, "blobs", blobs);
    ck_assert_int_eq(tree_count_files(blobs), 1);
}
END_TEST

static void expect_gone(const minidbx_id *id)
{
    void *data = NULL;
    size_t size = 0;
    minidbx_object_info info;
    ck_assert_int_eq(minidbx_exists(fx_db, id), 0);
    ck_assert_rc(minidbx_get(fx_db, id, &data, &size), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_stat(fx_db, id, &info), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_delete(fx_db, id), MINIDBX_ENOTFOUND);
}

START_TEST(delete_objects)
{
    test_rng rng;
    rng_seed(&rng, 4);
    minidbx_id small = store_put_random(fx_db, &rng, 100);
    minidbx_id big = store_put_random(fx_db, &rng, THRESHOLD * 4);
    minidbx_id keep = store_put_random(fx_db, &rng, 50);
    char path[PATH_MAX];
    store_blob_path(fx_dir, &big, path);
    ck_assert(path_exists(path));
    ck_assert_ok(minidbx_delete(fx_db, &small));
    ck_assert_ok(minidbx_delete(fx_db, &big));
    expect_gone(&small);
    expect_gone(&big);
    ck_assert_msg(!path_exists(path), "blob file %s survives delete", path);
    ck_assert_int_eq(minidbx_exists(fx_db, &keep), 1);
    ck_assert_uint_eq(store_object_count(fx_db), 1);
}
END_TEST

START_TEST(missing_objects)
{
    test_rng rng;
    rng_seed(&rng, 5);
    minidbx_id ids[6];
    for (int i = 0; i < 6; i++) {
        if (i % 2 == 0)
            ids[i] = store_put_random(fx_db, &rng, (size_t)i * 10000);
        else
            rng_fill(&rng, ids[i].bytes, sizeof ids[i].bytes);
    }
    minidbx_id out[6];
    size_t count = 99;
    ck_assert_ok(minidbx_missing(fx_db, ids, 6, out, &count));
    ck_assert_uint_eq(count, 3);
    for (int i = 0; i < 3; i++)
        ck_assert(minidbx_id_equal(&out[i], &ids[2 * i + 1]));
    /* out_missing may alias ids */
    ck_assert_ok(minidbx_missing(fx_db, ids, 6, ids, &count));
    ck_assert_uint_eq(count, 3);
    ck_assert(minidbx_id_equal(&ids[0], &out[0]));
    ck_assert(minidbx_id_equal(&ids[2], &out[2]));
    ck_assert_ok(minidbx_missing(fx_db, ids, 0, out, &count));
    ck_assert_uint_eq(count, 0);
}
END_TEST

static int id_cmp(const minidbx_id *a, const minidbx_id *b)
{
    return memcmp(a->bytes, b->bytes, MINIDBX_ID_SIZE);
}

static int id_sort_cmp(const void *a, const void *b)
{
    return id_cmp(a, b);
}

/* Page through everything with a small capacity; return how many. */
static size_t list_all(minidbx_id *out, size_t max, size_t page)
{
    minidbx_object_info buf[16];
    ck_assert_uint_le(page, 16);
    size_t total = 0, count;
    const minidbx_id *after = NULL;
    do {
        ck_assert_ok(minidbx_list(fx_db, after, buf, page, &count));
        ck_assert_uint_le(count, page);
        for (size_t i = 0; i < count; i++) {
            ck_assert_uint_lt(total, max);
            out[total] = buf[i].id;
            if (total > 0)
                ck_assert_msg(id_cmp(&out[total - 1], &out[total]) < 0, "list not in id order at %zu", total);
            total++;
        }
        if (count > 0)
            after = &out[total - 1];
    } while (count == page);
    return total;
}

START_TEST(list_with_cursor)
{
    minidbx_id listed[64];
    ck_assert_uint_eq(list_all(listed, 64, 7), 0);
    test_rng rng;
    rng_seed(&rng, 6);
    enum { N = 50 };
    minidbx_id ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = store_put_random(fx_db, &rng, (size_t)rng_below(&rng, 3 * THRESHOLD));
    qsort(ids, N, sizeof ids[0], id_sort_cmp);
    static const size_t pages[] = {1, 7, 10, 16};
    for (size_t p = 0; p < 4; p++) {
        ck_assert_uint_eq(list_all(listed, 64, pages[p]), N);
        for (int i = 0; i < N; i++)
            ck_assert(minidbx_id_equal(&listed[i], &ids[i]));
    }
    /* resume after an id that is not in the store */
    minidbx_id between = ids[9];
    for (int i = MINIDBX_ID_SIZE - 1; i >= 0 && ++between.bytes[i] == 0; i--)
        ; /* ids[9] + 1, big-endian: not stored, sorts before ids[10] */
    minidbx_object_info one;
    size_t count;
    ck_assert_ok(minidbx_list(fx_db, &between, &one, 1, &count));
    ck_assert_uint_eq(count, 1);
    ck_assert(minidbx_id_equal(&one.id, &ids[10]));
    ck_assert_ok(minidbx_list(fx_db, &ids[N - 1], &one, 1, &count));
    ck_assert_uint_eq(count, 0);
}
END_TEST

START_TEST(delete_referenced)
{
    test_rng rng;
    rng_seed(&rng, 7);
    minidbx_id id = store_put_random(fx_db, &rng, THRESHOLD * 2);
    minidbx_id other = store_put_random(fx_db, &rng, 10);
    ck_assert_ok(minidbx_name_set(fx_db, "a/one", &id));
    ck_assert_ok(minidbx_name_set(fx_db, "b/two", &id));
    ck_assert_ok(minidbx_name_set(fx_db, "c/other", &other));
    minidbx_object_info info;
    ck_assert_ok(minidbx_stat(fx_db, &id, &info));
    ck_assert_uint_eq(info.refs, 2);
    ck_assert_rc(minidbx_delete(fx_db, &id), MINIDBX_EREFERENCED);
    ck_assert_rc(minidbx_delete_ex(fx_db, &id, 0), MINIDBX_EREFERENCED);
    ck_assert_rc(minidbx_delete_ex(fx_db, &id, MINIDBX_DELETE_CASCADE | 0x80u), MINIDBX_EINVAL);
    ck_assert_int_eq(minidbx_exists(fx_db, &id), 1);
    minidbx_name_info name;
    ck_assert_ok(minidbx_name_get(fx_db, "a/one", &name));

    ck_assert_ok(minidbx_delete_ex(fx_db, &id, MINIDBX_DELETE_CASCADE));
    expect_gone(&id);
    ck_assert_rc(minidbx_name_get(fx_db, "a/one", &name), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_name_get(fx_db, "b/two", &name), MINIDBX_ENOTFOUND);
    ck_assert_ok(minidbx_name_get(fx_db, "c/other", &name));
    ck_assert(minidbx_id_equal(&name.id, &other));
    minidbx_store_info store;
    ck_assert_ok(minidbx_info(fx_db, &store));
    ck_assert_uint_eq(store.names, 1);
    ck_assert_uint_eq(store.objects, 1);
}
END_TEST

/* Every change is refused on a read-only handle; reads still work. */
START_TEST(readonly_refuses_writes)
{
    test_rng rng;
    rng_seed(&rng, 8);
    minidbx_id id = store_put_random(fx_db, &rng, 100);
    minidbx_id big = store_put_random(fx_db, &rng, THRESHOLD + 1);
    ck_assert_ok(minidbx_name_set(fx_db, "n", &id));
    fixture_reopen(MINIDBX_OPEN_READONLY);

    minidbx_id fresh;
    ck_assert_ok(minidbx_id_of(&fresh, "new", 3)); /* the refused put writes no id */
    ck_assert_rc(minidbx_put(fx_db, "new", 3, &fresh), MINIDBX_EREADONLY);
    ck_assert_rc(minidbx_delete(fx_db, &id), MINIDBX_EREADONLY);
    ck_assert_rc(minidbx_delete_ex(fx_db, &big, MINIDBX_DELETE_CASCADE), MINIDBX_EREADONLY);
    ck_assert_rc(minidbx_name_set(fx_db, "m", &id), MINIDBX_EREADONLY);
    ck_assert_rc(minidbx_name_delete(fx_db, "n"), MINIDBX_EREADONLY);
    minidbx_writer *w = NULL;
    ck_assert_rc(minidbx_writer_open(fx_db, &w), MINIDBX_EREADONLY);
    ck_assert_ptr_null(w);
    ck_assert_rc(minidbx_batch_begin(fx_db), MINIDBX_EREADONLY);
    ck_assert_rc(minidbx_gc(fx_db, NULL), MINIDBX_EREADONLY);
    ck_assert_rc(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, NULL, NULL, NULL), MINIDBX_EREADONLY);
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    close(pipefd[1]);
    ck_assert_rc(minidbx_put_fd(fx_db, pipefd[0], &fresh), MINIDBX_EREADONLY);
    close(pipefd[0]);

    ck_assert_int_eq(minidbx_exists(fx_db, &id), 1);
    ck_assert_int_eq(minidbx_exists(fx_db, &big), 1);
    ck_assert_int_eq(minidbx_exists(fx_db, &fresh), 0);
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, NULL, NULL, NULL));
    minidbx_name_info name;
    ck_assert_ok(minidbx_name_get(fx_db, "n", &name));
    ck_assert_uint_eq(store_object_count(fx_db), 2);
}
END_TEST

START_TEST(no_create_on_missing_store)
{
    char path[PATH_MAX];
    store_path(fx_dir, "absent", path);
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = MINIDBX_OPEN_NO_CREATE;
    minidbx *db = (minidbx *)&opts; /* must be reset to NULL */
    ck_assert_rc(minidbx_open(&db, path, &opts), MINIDBX_ENOTFOUND);
    ck_assert_ptr_null(db);
    ck_assert_msg(!path_exists(path), "NO_CREATE created %s", path);
    ck_assert_str_ne(minidbx_errmsg(NULL), "");
    /* and it opens an existing one */
    db = NULL;
    ck_assert_ok(minidbx_open(&db, fx_dir, &opts));
    minidbx_close(db);
}
END_TEST

START_TEST(creates_in_empty_dir_with_null_opts)
{
    char path[PATH_MAX];
    store_path(fx_dir, "empty", path);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    minidbx *db = NULL;
    ck_assert_ok(minidbx_open(&db, path, NULL));
    minidbx_id id;
    ck_assert_ok(minidbx_put(db, "x", 1, &id));
    minidbx_close(db);
    ck_assert_ok(minidbx_open(&db, path, NULL));
    store_expect_bytes(db, &id, "x", 1);
    minidbx_close(db);
}
END_TEST

static void expect_not_a_store(const char *path)
{
    minidbx *db = (minidbx *)path;
    ck_assert_rc(minidbx_open(&db, path, NULL), MINIDBX_EINVAL);
    ck_assert_ptr_null(db);
}

START_TEST(refuses_regular_file)
{
    char path[PATH_MAX];
    store_path(fx_dir, "file", path);
    static const char content[] = "not a store\n";
    ck_assert_int_eq(file_write_all(path, content, sizeof content - 1), 0);
    struct stat before, after;
    ck_assert_int_eq(stat(path, &before), 0);
    expect_not_a_store(path);
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert(S_ISREG(after.st_mode));
    ck_assert_int_eq(after.st_size, before.st_size);
    size_t size = 0;
    unsigned char *got = file_read_all(path, &size);
    ck_assert_uint_eq(size, sizeof content - 1);
    ck_assert_mem_eq(got, content, size);
    free(got);
}
END_TEST

START_TEST(refuses_foreign_directory)
{
    char dir[PATH_MAX], file[PATH_MAX + 16];
    store_path(fx_dir, "home", dir);
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(file, sizeof file, "%s/notes.txt", dir);
    ck_assert_int_eq(file_write_all(file, "hello", 5), 0);
    expect_not_a_store(dir);
    ck_assert_int_eq(dir_count_entries(dir), 1); /* no meta.lmdb, blobs/, tmp/ */
    size_t size = 0;
    unsigned char *got = file_read_all(file, &size);
    ck_assert_uint_eq(size, 5);
    free(got);
    /* with NO_CREATE too */
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = MINIDBX_OPEN_NO_CREATE;
    minidbx *db = NULL;
    int rc = minidbx_open(&db, dir, &opts);
    ck_assert_msg(rc == MINIDBX_EINVAL || rc == MINIDBX_ENOTFOUND, "open NO_CREATE on a foreign dir: %d", rc);
    ck_assert_ptr_null(db);
    ck_assert_int_eq(dir_count_entries(dir), 1);
}
END_TEST

/* Does another process see this one's lock on meta.lmdb-lock? LMDB holds
 * a shared record lock on its first byte while the environment is open,
 * and a process that can take it exclusively thinks the store unused and
 * resets the lock table (readers and writers of the first are then lost).
 * 0 in the child: the lock is held. */
static int lock_is_held(void *lockfile)
{
    int fd = open(lockfile, O_RDWR | O_CLOEXEC);
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
    if (fd < 0 || fcntl(fd, F_GETLK, &fl) < 0)
        return 2;
    return fl.l_type == F_UNLCK;
}

/* A second open of a store in one process ("a" or "./a") shares the first:
 * both handles work, either may close first, and closing one leaves the
 * process's LMDB lock in place. */
START_TEST(second_open_shares_the_store)
{
    char again[PATH_MAX + 8], lockfile[PATH_MAX];
    snprintf(again, sizeof again, "%s/.", fx_dir);
    store_path(fx_dir, "meta.lmdb-lock", lockfile);
    minidbx *second = store_open(again, 0);
    ck_assert_int_eq(run_in_child(lock_is_held, lockfile, NULL), 0);
    minidbx_id id;
    ck_assert_ok(minidbx_put(second, "shared", 6, &id));
    store_expect_bytes(fx_db, &id, "shared", 6);
    minidbx_close(second);
    ck_assert_int_eq(run_in_child(lock_is_held, lockfile, NULL), 0); /* failed before: the close dropped it */
    store_expect_bytes(fx_db, &id, "shared", 6);
    /* the other order: the first handle closes, the second goes on */
    second = store_open(again, 0);
    minidbx_close(fx_db);
    fx_db = second;
    ck_assert_int_eq(run_in_child(lock_is_held, lockfile, NULL), 0);
    ck_assert_ok(minidbx_put(fx_db, "after", 5, &id));
    store_expect_bytes(fx_db, &id, "after", 5);
}
END_TEST

/* Threads that open, put and close the same store at once, while the
 * fixture's handle stays open: every put is there at the end. */
#define OPENERS 4
#define OPENER_ROUNDS 25
struct opener {
    int index;
    minidbx_id ids[OPENER_ROUNDS];
    int failures;
};

static void *open_put_close(void *arg)
{
    struct opener *o = arg;
    for (int i = 0; i < OPENER_ROUNDS; i++) {
        char data[32];
        int len = snprintf(data, sizeof data, "opener %d round %d", o->index, i);
        minidbx *db = NULL;
        if (minidbx_open(&db, fx_dir, NULL) != 0 || minidbx_put(db, data, (size_t)len, &o->ids[i]) != 0)
            o->failures++;
        minidbx_close(db);
    }
    return NULL;
}

START_TEST(threads_open_and_close_one_store)
{
    pthread_t threads[OPENERS];
    struct opener openers[OPENERS];
    minidbx_close(fx_db); /* so that the threads' closes are the store's last */
    fx_db = NULL;
    for (int t = 0; t < OPENERS; t++) {
        openers[t] = (struct opener){ .index = t };
        ck_assert_int_eq(pthread_create(&threads[t], NULL, open_put_close, &openers[t]), 0);
    }
    for (int t = 0; t < OPENERS; t++)
        ck_assert_int_eq(pthread_join(threads[t], NULL), 0);
    fx_db = store_open(fx_dir, 0);
    for (int t = 0; t < OPENERS; t++) {
        ck_assert_int_eq(openers[t].failures, 0);
        for (int i = 0; i < OPENER_ROUNDS; i++)
            ck_assert_int_eq(minidbx_exists(fx_db, &openers[t].ids[i]), 1);
    }
}
END_TEST

/* A child after fork() opens the store for itself (it inherits no lock). */
static int put_in_child(void *dir)
{
    minidbx *db = NULL;
    minidbx_id id;
    int rc = minidbx_open(&db, dir, NULL);
    if (rc == 0)
        rc = minidbx_put(db, "child", 5, &id);
    minidbx_close(db);
    return rc == 0 ? 0 : 1;
}

/* A second handle may ask for less than the first gives (read-only on a
 * read-write store, durability none on a durable one), not more. */
START_TEST(second_open_asks_no_more)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    minidbx *db = NULL;
    minidbx_id id;
    opts.flags = MINIDBX_OPEN_READONLY;
    minidbx *reader = store_open_opts(fx_dir, &opts);
    ck_assert_int_eq(minidbx_put(reader, "x", 1, &id), MINIDBX_EREADONLY);
    ck_assert_int_eq(minidbx_exists(reader, &id), 0);
    minidbx_close(reader);
    opts.flags = 0;
    opts.durability = MINIDBX_SYNC_NONE;
    minidbx *fast = store_open_opts(fx_dir, &opts); /* shares the durable store */
    ck_assert_ok(minidbx_put(fast, "fast", 4, &id));
    store_expect_bytes(fx_db, &id, "fast", 4);
    minidbx_close(fast);

    minidbx_close(fx_db);
    opts.flags = MINIDBX_OPEN_READONLY;
    opts.durability = MINIDBX_SYNC_FULL;
    fx_db = store_open_opts(fx_dir, &opts); /* read-only first */
    ck_assert_int_eq(minidbx_open(&db, fx_dir, NULL), MINIDBX_ESTATE);
    ck_assert_ptr_null(db);
    ck_assert_ptr_nonnull(strstr(minidbx_errmsg(NULL), "read-only"));
    ck_assert_int_eq(run_in_child(put_in_child, fx_dir, NULL), 0); /* another process may write */

    minidbx_close(fx_db);
    opts.flags = 0;
    opts.durability = MINIDBX_SYNC_NONE;
    fx_db = store_open_opts(fx_dir, &opts); /* durability none first */
    ck_assert_int_eq(minidbx_open(&db, fx_dir, NULL), MINIDBX_ESTATE);
    ck_assert_ptr_null(db);
    ck_assert_ptr_nonnull(strstr(minidbx_errmsg(NULL), "durability none"));
    opts.flags = MINIDBX_OPEN_READONLY; /* writes nothing: its durability asks for nothing */
    opts.durability = MINIDBX_SYNC_FULL;
    reader = store_open_opts(fx_dir, &opts);
    ck_assert_int_eq(minidbx_exists(reader, &id), 1);
    minidbx_close(reader);
}
END_TEST

/* Closing any handle of a shared store aborts the thread's batch on it:
 * the batch's puts are gone, and another process can write at once (the
 * batch held LMDB's writer lock). */
static int put_in_child_bounded(void *dir)
{
    alarm(20); /* a child blocked on a lock left held fails instead of hanging */
    return put_in_child(dir);
}

START_TEST(close_of_a_second_handle_aborts_batch)
{
    minidbx_id id;
    minidbx *second = store_open(fx_dir, 0);
    ck_assert_ok(minidbx_batch_begin(second));
    ck_assert_ok(minidbx_put(second, "in a batch", 10, &id));
    minidbx_close(second);
    ck_assert_int_eq(minidbx_exists(fx_db, &id), 0); /* failed before: the batch stayed open */
    ck_assert_int_eq(run_in_child(put_in_child_bounded, fx_dir, NULL), 0);
    ck_assert_ok(minidbx_batch_begin(fx_db)); /* the thread has no batch left */
    ck_assert_ok(minidbx_batch_abort(fx_db));
}
END_TEST

/* fork() while another thread opens and closes stores: every child can
 * open the store (none inherits the open lock held). */
static atomic_bool opening_stop;

static void *open_close_loop(void *dir)
{
    for (int i = 0; i < 2000 && !atomic_load(&opening_stop); i++) {
        minidbx *db = NULL;
        if (minidbx_open(&db, dir, NULL) == 0)
            minidbx_close(db);
    }
    return NULL;
}

START_TEST(fork_while_another_thread_opens)
{
    char other[PATH_MAX];
    pthread_t thread;
    store_path(fx_dir, "other", other);
    minidbx_close(store_open(other, 0));
    atomic_store(&opening_stop, false);
    ck_assert_int_eq(pthread_create(&thread, NULL, open_close_loop, other), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(run_in_child(put_in_child_bounded, fx_dir, NULL), 0); /* hung before: SIGALRM */
    atomic_store(&opening_stop, true);
    ck_assert_int_eq(pthread_join(thread, NULL), 0);
}
END_TEST

/* A child that opens the store for itself and then closes the handle it
 * inherited keeps its own LMDB lock (closing the inherited environment
 * would have dropped it). The parent holds none by then. */
static int reopen_then_close_inherited(void *pipe_fds)
{
    int *fds = pipe_fds;
    char lockfile[PATH_MAX], byte;
    minidbx *mine = NULL;
    alarm(20);
    if (minidbx_open(&mine, fx_dir, NULL) != 0)
        return 3;
    minidbx_close(fx_db); /* the parent's, inherited */
    if (read(fds[0], &byte, 1) != 1) /* the parent has closed its handle */
        return 4;
    store_path(fx_dir, "meta.lmdb-lock", lockfile);
    int held = run_in_child(lock_is_held, lockfile, NULL);
    minidbx_close(mine);
    return held;
}

START_TEST(child_closing_an_inherited_handle_keeps_its_lock)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(reopen_then_close_inherited(fds));
    minidbx_close(fx_db);
    fx_db = NULL;
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child: status %d", status);
    close(fds[0]);
    close(fds[1]);
    fx_db = store_open(fx_dir, 0);
}
END_TEST

/* Batches clean up their own blob files: an aborted put and a committed
 * delete of file objects leave no orphan for verify to find, without any
 * repair or gc. (Over http the aborted put stays, an object like any.) */
START_TEST(batch_leaves_no_orphans)
{
    test_rng rng;
    rng_seed(&rng, 11);
    char blobs[PATH_MAX];
    store_path(fx_dir, "blobs", blobs);
    minidbx_id doomed = store_put_random(fx_db, &rng, THRESHOLD * 2);
    ck_assert_int_eq(tree_count_files(blobs), 1);

    ck_assert_ok(minidbx_batch_begin(fx_db));
    minidbx_id aborted = store_put_random(fx_db, &rng, THRESHOLD * 3);
    /* over 64 KiB: a local store takes it through its writer (written, then hashed) */
    minidbx_id aborted_large = store_put_random(fx_db, &rng, THRESHOLD * 8);
    ck_assert_int_eq(tree_count_files(blobs), 3); /* renamed into place inside the batch */
    ck_assert_ok(minidbx_batch_abort(fx_db));
    int undone = test_backend_has(TEST_CAP_BATCH_TXN);
    ck_assert_int_eq(minidbx_exists(fx_db, &aborted), !undone);
    ck_assert_int_eq(minidbx_exists(fx_db, &aborted_large), !undone);
    ck_assert_int_eq(tree_count_files(blobs), 3 - 2 * undone);

    ck_assert_ok(minidbx_batch_begin(fx_db));
    ck_assert_ok(minidbx_delete(fx_db, &doomed));
    ck_assert_int_eq(minidbx_exists(fx_db, &doomed), 0);
    ck_assert_ok(minidbx_batch_commit(fx_db));
    ck_assert_int_eq(tree_count_files(blobs), 2 - 2 * undone);

    minidbx_verify_report report;
    problem_log log = {0};
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.problems, 0);
}
END_TEST

START_TEST(batch_commit_and_abort)
{
    test_rng rng;
    rng_seed(&rng, 9);
    minidbx_id kept[4], dropped[4];
    ck_assert_ok(minidbx_batch_begin(fx_db));
    ck_assert_rc(minidbx_batch_begin(fx_db), MINIDBX_ESTATE);
    for (int i = 0; i < 4; i++) {
        kept[i] = store_put_random(fx_db, &rng, i % 2 ? 100 : THRESHOLD * 3);
        ck_assert_int_eq(minidbx_exists(fx_db, &kept[i]), 1); /* visible to this thread */
    }
    ck_assert_ok(minidbx_batch_commit(fx_db));
    ck_assert_rc(minidbx_batch_commit(fx_db), MINIDBX_ESTATE);
    ck_assert_rc(minidbx_batch_abort(fx_db), MINIDBX_ESTATE);

    ck_assert_ok(minidbx_batch_begin(fx_db));
    for (int i = 0; i < 4; i++)
        dropped[i] = store_put_random(fx_db, &rng, i % 2 ? 200 : THRESHOLD * 2);
    ck_assert_ok(minidbx_batch_abort(fx_db));

    /* over http abort removes nothing: the "dropped" objects stay */
    int undone = test_backend_has(TEST_CAP_BATCH_TXN);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(minidbx_exists(fx_db, &kept[i]), 1);
        ck_assert_int_eq(minidbx_exists(fx_db, &dropped[i]), !undone);
    }
    ck_assert_uint_eq(store_object_count(fx_db), undone ? 4 : 8);
    fixture_reopen(0);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(minidbx_exists(fx_db, &kept[i]), 1);
        ck_assert_int_eq(minidbx_exists(fx_db, &dropped[i]), !undone);
    }
    /* aborted file objects leave no blob behind once verify/open cleaned up */
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, problem_log_cb, &log));
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_CORRUPT] + log.count[MINIDBX_PROBLEM_MISSING], 0);
    char blobs[PATH_MAX];
    store_path(fx_dir, "blobs", blobs);
    ck_assert_int_eq(tree_count_files(blobs), undone ? 2 : 4);
}
END_TEST

/* Closing a handle with a batch open aborts the batch. */
START_TEST(close_aborts_batch)
{
    minidbx_id id;
    ck_assert_ok(minidbx_batch_begin(fx_db));
    ck_assert_ok(minidbx_put(fx_db, "in a batch", 10, &id));
    fixture_reopen(0);
    ck_assert_int_eq(minidbx_exists(fx_db, &id), !test_backend_has(TEST_CAP_BATCH_TXN));
}
END_TEST

START_TEST(max_object_size)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.max_object_size = 1000; /* the client's limit, on any backend */
    fixture_reopen_opts(&opts);
    test_rng rng;
    rng_seed(&rng, 10);
    unsigned char *data = rng_alloc(&rng, 1001);
    minidbx_id id, ref;
    ck_assert_ok(minidbx_put(fx_db, data, 1000, &id));
    ck_assert_rc(minidbx_put(fx_db, data, 1001, &id), MINIDBX_ETOOBIG);
    sha256_raw(data, 1001, &ref);
    ck_assert_int_eq(minidbx_exists(fx_db, &ref), 0);
    ck_assert_uint_eq(store_object_count(fx_db), 1);

    minidbx_writer *w = NULL;
    ck_assert_ok(minidbx_writer_open(fx_db, &w));
    ck_assert_ok(minidbx_writer_write(w, data, 600));
    ck_assert_rc(minidbx_writer_write(w, data + 600, 401), MINIDBX_ETOOBIG);
    minidbx_writer_abort(w);
    ck_assert_uint_eq(store_object_count(fx_db), 1);
    char tmp[PATH_MAX];
    store_path(fx_dir, "tmp", tmp);
    ck_assert_int_le(dir_count_entries(tmp), 0); /* nothing reached the node either */
    free(data);
}
END_TEST

/* The inline threshold is fixed when the store is created. */
START_TEST(inline_threshold_is_the_stores)
{
    char path[PATH_MAX];
    store_path(fx_dir, "small-inline", path);
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.inline_threshold = 100;
    minidbx *db = store_open_opts(path, &opts);
    minidbx_id at, over;
    minidbx_object_info info;
    test_rng rng;
    rng_seed(&rng, 11);
    at = store_put_random(db, &rng, 100);
    over = store_put_random(db, &rng, 101);
    minidbx_close(db);
    opts.inline_threshold = 100000;
    db = store_open_opts(path, &opts);
    minidbx_store_info store;
    ck_assert_ok(minidbx_info(db, &store));
    ck_assert_uint_eq(store.inline_threshold, 100);
    ck_assert_ok(minidbx_stat(db, &at, &info));
    ck_assert_uint_eq(info.flags & MINIDBX_OBJECT_INLINE, MINIDBX_OBJECT_INLINE);
    ck_assert_ok(minidbx_stat(db, &over, &info));
    ck_assert_uint_eq(info.flags & MINIDBX_OBJECT_INLINE, 0);
    minidbx_id later = store_put_random(db, &rng, 5000);
    ck_assert_ok(minidbx_stat(db, &later, &info));
    ck_assert_uint_eq(info.flags & MINIDBX_OBJECT_INLINE, 0);
    minidbx_close(db);
}
END_TEST

START_TEST(null_handles_are_noops)
{
    minidbx_close(NULL);
    minidbx_free(NULL);
    minidbx_reader_close(NULL);
    minidbx_writer_abort(NULL);
    ck_assert_str_eq(minidbx_version(), MINIDBX_VERSION_STRING);
}
END_TEST

/* Data of other objects sharing a prefix must not be confused. */
START_TEST(get_missing_object)
{
    minidbx_id id;
    memset(&id, 0xab, sizeof id);
    void *data = (void *)&id;
    size_t size = 5;
    ck_assert_rc(minidbx_get(fx_db, &id, &data, &size), MINIDBX_ENOTFOUND);
    ck_assert_str_ne(minidbx_errmsg(fx_db), "");
    ck_assert_int_eq(minidbx_exists(fx_db, &id), 0);
    minidbx_reader *r = NULL;
    ck_assert_rc(minidbx_reader_open(fx_db, &id, &r, NULL), MINIDBX_ENOTFOUND);
    ck_assert_ptr_null(r);
}
END_TEST

static Suite *objects_suite(void)
{
    Suite *s = suite_create("objects");
    TCase *tc = tcase_with_store("objects", TEST_TIMEOUT_S);
    tcase_add_test(tc, round_trip_sizes);
    tcase_add_test_needs(tc, blob_layout, TEST_CAP_FILES);
    tcase_add_test(tc, empty_object);
    tcase_add_test_needs(tc, put_twice_stores_once, TEST_CAP_FILES);
    tcase_add_test_needs(tc, delete_objects, TEST_CAP_FILES);
    tcase_add_test(tc, missing_objects);
    tcase_add_test(tc, list_with_cursor);
    tcase_add_test(tc, delete_referenced);
    tcase_add_test(tc, readonly_refuses_writes);
    tcase_add_test_needs(tc, no_create_on_missing_store, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, creates_in_empty_dir_with_null_opts, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, refuses_regular_file, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, refuses_foreign_directory, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, second_open_shares_the_store, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, second_open_asks_no_more, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, close_of_a_second_handle_aborts_batch, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, fork_while_another_thread_opens, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, child_closing_an_inherited_handle_keeps_its_lock, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, threads_open_and_close_one_store, TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, batch_commit_and_abort, TEST_CAP_FILES);
    tcase_add_test_needs(tc, batch_leaves_no_orphans, TEST_CAP_FILES);
    tcase_add_test(tc, close_aborts_batch);
    tcase_add_test_needs(tc, max_object_size, TEST_CAP_FILES);
    tcase_add_test_needs(tc, inline_threshold_is_the_stores, TEST_CAP_OPEN_DIR);
    tcase_add_test(tc, null_handles_are_noops);
    tcase_add_test(tc, get_missing_object);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(objects_suite());
}
