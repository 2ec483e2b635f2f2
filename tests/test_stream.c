/* test_stream.c - the writer and reader streams, put_fd/get_fd through
 * pipes, the reader's zero-copy fd, and (with the big_tests option,
 * MINIDBX_BIG_TESTS=1) a 1 GiB object generated on the fly and moved in
 * bounded memory: peak RSS of the child that does it must stay <= 32 MiB.
 * Runs on every backend of the matrix in util.c (MINIDBX_TEST_BACKEND). */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THRESHOLD MINIDBX_DEFAULT_INLINE_THRESHOLD
#define CHUNK (256u * 1024u)
#define BIG_SIZE (1024ull * 1024ull * 1024ull)
#define RSS_LIMIT_KIB (32l * 1024l)

/* Write data through a writer in uneven pieces; return the id. */
static minidbx_id write_in_pieces(minidbx *db, const unsigned char *data, size_t size)
{
    minidbx_writer *w = NULL;
    ck_assert_ok(minidbx_writer_open(db, &w));
    ck_assert_ptr_nonnull(w);
    size_t done = 0, piece = 1;
    while (done < size) {
        size_t n = size - done < piece ? size - done : piece;
        ck_assert_ok(minidbx_writer_write(w, data + done, n));
        done += n;
        piece = piece * 3 + 1;
    }
    ck_assert_ok(minidbx_writer_write(w, data, 0));
    minidbx_id id;
    ck_assert_ok(minidbx_writer_commit(w, &id));
    return id;
}

/* Read the object through a reader with capacity-sized reads; compare. */
static void read_and_compare(minidbx *db, const minidbx_id *id, const unsigned char *data,
                             size_t size, size_t capacity)
{
    minidbx_reader *r = NULL;
    uint64_t object_size = 0;
    ck_assert_ok(minidbx_reader_open(db, id, &r, &object_size));
    ck_assert_uint_eq(object_size, size);
    unsigned char *buf = malloc(capacity);
    size_t done = 0, got;
    for (;;) {
        ck_assert_ok(minidbx_reader_read(r, buf, capacity, &got));
        if (got == 0)
            break;
        ck_assert_uint_le(got, capacity);
        ck_assert_uint_le(done + got, size);
        ck_assert_msg(memcmp(buf, data + done, got) == 0, "reader bytes differ at %zu", done);
        done += got;
    }
    ck_assert_uint_eq(done, size);
    /* reading past the end stays at the end */
    ck_assert_ok(minidbx_reader_read(r, buf, capacity, &got));
    ck_assert_uint_eq(got, 0);
    minidbx_reader_close(r);
    free(buf);
}

START_TEST(writer_reader_round_trip)
{
    test_rng rng;
    rng_seed(&rng, 21);
    static const size_t sizes[] = {0, 1, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *data = rng_alloc(&rng, sizes[i]);
        minidbx_id id = write_in_pieces(fx_db, data, sizes[i]);
        minidbx_id ref;
        sha256_raw(data, sizes[i], &ref);
        ck_assert_msg(minidbx_id_equal(&id, &ref), "writer id of %zu bytes", sizes[i]);
        store_expect_bytes(fx_db, &id, data, sizes[i]);
        if (sizes[i] <= THRESHOLD + 1) /* byte by byte: slow, so small ones only */
            read_and_compare(fx_db, &id, data, sizes[i], 1);
        read_and_compare(fx_db, &id, data, sizes[i], 4093);
        read_and_compare(fx_db, &id, data, sizes[i], 1 << 20);
        minidbx_object_info info;
        ck_assert_ok(minidbx_stat(fx_db, &id, &info));
        ck_assert_uint_eq(info.flags & MINIDBX_OBJECT_INLINE,
                          sizes[i] <= THRESHOLD ? MINIDBX_OBJECT_INLINE : 0);
        /* the same bytes again through a writer: stored once */
        minidbx_id again = write_in_pieces(fx_db, data, sizes[i]);
        ck_assert(minidbx_id_equal(&id, &again));
        ck_assert_uint_eq(store_object_count(fx_db), i + 1);
        free(data);
    }
    char tmp[PATH_MAX];
    store_path(fx_dir, "tmp", tmp);
    ck_assert_int_le(dir_count_entries(tmp), 0);
}
END_TEST

START_TEST(writer_abort_leaves_nothing)
{
    test_rng rng;
    rng_seed(&rng, 22);
    unsigned char *data = rng_alloc(&rng, 2 << 20);
    minidbx_writer *w = NULL;
    ck_assert_ok(minidbx_writer_open(fx_db, &w));
    ck_assert_ok(minidbx_writer_write(w, data, 2 << 20));
    minidbx_writer_abort(w);
    minidbx_id ref;
    sha256_raw(data, 2 << 20, &ref);
    ck_assert_int_eq(minidbx_exists(fx_db, &ref), 0);
    ck_assert_uint_eq(store_object_count(fx_db), 0);
    char path[PATH_MAX];
    store_path(fx_dir, "tmp", path);
    /* a node drops its temp file when it sees the upload cut, a moment later */
    for (double start = now_ms(); dir_count_entries(path) > 0 && now_ms() - start < 5000;)
        usleep(10000);
    ck_assert_int_le(dir_count_entries(path), 0);
    store_path(fx_dir, "blobs", path);
    ck_assert_int_le(tree_count_files(path), 0);
    free(data);
}
END_TEST

/* One writer's commit with an expected id and the "created" answer: bytes
 * that hash to another id store nothing (ECORRUPT); the first commit of
 * some bytes creates them, the next one finds them. Inline and file sizes. */
static int commit_sized(size_t size, const minidbx_id *expect, minidbx_id *out_id, int *created)
{
    static unsigned char buf[3 * MINIDBX_DEFAULT_INLINE_THRESHOLD];
    minidbx_writer *w;
    memset(buf, 'c', size);
    ck_assert_ok(minidbx_writer_open(fx_db, &w));
    ck_assert_ok(minidbx_writer_write(w, buf, size));
    return minidbx_writer_commit_ex(w, expect, out_id, created);
}

START_TEST(writer_commit_ex_created_and_expect)
{
    static const size_t sizes[] = { 0, 700, 3 * MINIDBX_DEFAULT_INLINE_THRESHOLD };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        minidbx_id want, wrong, got;
        int created = -2;
        unsigned char *bytes = calloc(1, sizes[i] + 1);
        memset(bytes, 'c', sizes[i]);
        sha256_raw(bytes, sizes[i], &want);
        sha256_raw("other", 5, &wrong);
        free(bytes);

        ck_assert_rc(commit_sized(sizes[i], &wrong, &got, &created), MINIDBX_ECORRUPT);
        ck_assert_int_eq(created, -2);
        ck_assert_int_eq(minidbx_exists(fx_db, &want), 0);
        ck_assert_ok(commit_sized(sizes[i], &want, &got, &created));
        ck_assert(minidbx_id_equal(&got, &want));
        ck_assert_int_eq(created, 1);
        ck_assert_ok(commit_sized(sizes[i], NULL, NULL, &created));
        ck_assert_int_eq(created, 0);
        ck_assert_ok(commit_sized(sizes[i], &want, NULL, NULL));
    }
    ck_assert_int_eq(store_object_count(fx_db), 3);
}
END_TEST

START_TEST(reader_fd_on_file_object)
{
    test_rng rng;
    rng_seed(&rng, 23);
    size_t size = THRESHOLD * 5 + 3;
    unsigned char *data = rng_alloc(&rng, size);
    minidbx_id id;
    ck_assert_ok(minidbx_put(fx_db, data, size, &id));
    minidbx_reader *r = NULL;
    ck_assert_ok(minidbx_reader_open(fx_db, &id, &r, NULL));
    int fd = -1;
    uint64_t offset = 99;
    if (!test_backend_has(TEST_CAP_READER_FD)) {
        /* a remote object has no local file to hand out */
        ck_assert_rc(minidbx_reader_fd(r, &fd, &offset), MINIDBX_EUNSUPPORTED);
        minidbx_reader_close(r);
        free(data);
        return;
    }
    ck_assert_ok(minidbx_reader_fd(r, &fd, &offset));
    ck_assert_int_ge(fd, 0);
    unsigned char *got = malloc(size + 1);
    ssize_t n = pread(fd, got, size + 1, (off_t)offset);
    ck_assert_int_eq(n, (ssize_t)size); /* exactly the object's bytes, then EOF */
    ck_assert_mem_eq(got, data, size);
    /* the fd is read-only */
    ck_assert_int_eq(pwrite(fd, "x", 1, (off_t)offset), -1);
    minidbx_reader_close(r);
    free(got);
    free(data);
}
END_TEST

START_TEST(reader_fd_on_inline_object)
{
    minidbx_id id;
    ck_assert_ok(minidbx_put(fx_db, "small", 5, &id));
    minidbx_reader *r = NULL;
    ck_assert_ok(minidbx_reader_open(fx_db, &id, &r, NULL));
    int fd = -1;
    uint64_t offset = 0;
    ck_assert_rc(minidbx_reader_fd(r, &fd, &offset), MINIDBX_EUNSUPPORTED);
    minidbx_reader_close(r);
}
END_TEST

/* ---- pipes: a thread feeds or drains the other end ---- */

typedef struct {
    int fd;
    const unsigned char *data;
    size_t size;
    test_rng rng;     /* generate instead of data when data is NULL */
    uint64_t total;   /* bytes seen by a drainer */
    test_sha *sha;    /* digest of what passed */
    int error;
} pipe_job;

static void *pipe_feeder(void *arg)
{
    pipe_job *job = arg;
    unsigned char *chunk = malloc(CHUNK);
    uint64_t done = 0;
    while (done < job->size) {
        size_t n = job->size - done < CHUNK ? (size_t)(job->size - done) : CHUNK;
        const unsigned char *src = job->data ? job->data + done : chunk;
        if (job->data == NULL)
            rng_fill(&job->rng, chunk, n);
        if (job->sha)
            sha_update(job->sha, src, n);
        for (size_t off = 0; off < n;) {
            ssize_t w = write(job->fd, src + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                job->error = errno;
                goto out;
            }
            off += (size_t)w;
        }
        done += n;
    }
out:
    close(job->fd);
    free(chunk);
    return NULL;
}

static void *pipe_drainer(void *arg)
{
    pipe_job *job = arg;
    unsigned char *chunk = malloc(CHUNK);
    for (;;) {
        ssize_t n = read(job->fd, chunk, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            job->error = n < 0 ? errno : 0;
            break;
        }
        if (job->data && job->total + (uint64_t)n <= job->size &&
            memcmp(chunk, job->data + job->total, (size_t)n) != 0)
            job->error = -1;
        if (job->sha)
            sha_update(job->sha, chunk, (size_t)n);
        job->total += (uint64_t)n;
    }
    close(job->fd);
    free(chunk);
    return NULL;
}

START_TEST(put_fd_get_fd_through_pipes)
{
    test_rng rng;
    rng_seed(&rng, 24);
    static const size_t sizes[] = {0, 10, THRESHOLD + 1, 5 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *data = rng_alloc(&rng, sizes[i]);
        int in[2], out[2];
        ck_assert_int_eq(pipe(in), 0);
        pipe_job feed = {.fd = in[1], .data = data, .size = sizes[i]};
        pthread_t feeder;
        ck_assert_int_eq(pthread_create(&feeder, NULL, pipe_feeder, &feed), 0);
        minidbx_id id, ref;
        ck_assert_ok(minidbx_put_fd(fx_db, in[0], &id));
        pthread_join(feeder, NULL);
        close(in[0]);
        ck_assert_int_eq(feed.error, 0);
        sha256_raw(data, sizes[i], &ref);
        ck_assert_msg(minidbx_id_equal(&id, &ref), "put_fd id of %zu bytes", sizes[i]);
        store_expect_bytes(fx_db, &id, data, sizes[i]);

        ck_assert_int_eq(pipe(out), 0);
        pipe_job drain = {.fd = out[0], .data = data, .size = sizes[i]};
        pthread_t drainer;
        ck_assert_int_eq(pthread_create(&drainer, NULL, pipe_drainer, &drain), 0);
        ck_assert_ok(minidbx_get_fd(fx_db, &id, out[1]));
        close(out[1]);
        pthread_join(drainer, NULL);
        ck_assert_int_eq(drain.error, 0);
        ck_assert_uint_eq(drain.total, sizes[i]);
        free(data);
    }
}
END_TEST

START_TEST(get_fd_to_file)
{
    test_rng rng;
    rng_seed(&rng, 25);
    size_t size = (1 << 20) + 17;
    unsigned char *data = rng_alloc(&rng, size);
    minidbx_id id;
    ck_assert_ok(minidbx_put(fx_db, data, size, &id));
    char path[PATH_MAX];
    store_path(fx_dir, "copy", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "prefix", 6), 6); /* get_fd writes at the fd's position */
    ck_assert_ok(minidbx_get_fd(fx_db, &id, fd));
    close(fd);
    size_t got_size = 0;
    unsigned char *got = file_read_all(path, &got_size);
    ck_assert_uint_eq(got_size, size + 6);
    ck_assert_mem_eq(got + 6, data, size);
    free(got);
    free(data);
}
END_TEST

/* get_fd to a pipe whose reader is gone: EIO, not a crash (SIGPIPE ignored). */
START_TEST(get_fd_broken_pipe)
{
    signal(SIGPIPE, SIG_IGN);
    test_rng rng;
    rng_seed(&rng, 26);
    minidbx_id id = store_put_random(fx_db, &rng, 1 << 20);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    ck_assert_rc(minidbx_get_fd(fx_db, &id, p[1]), MINIDBX_EIO);
    close(p[1]);
}
END_TEST

/* ---- 1 GiB, in a child so that its ru_maxrss is its own ---- */

typedef struct {
    const char *dir;
    uint64_t seed;
} big_job;

static int big_writer_reader(void *arg)
{
    big_job *job = arg;
    minidbx *db = NULL;
    if (minidbx_open(&db, job->dir, NULL) != 0)
        return 10;
    test_rng rng;
    rng_seed(&rng, job->seed);
    unsigned char *chunk = malloc(CHUNK);
    test_sha *sha = sha_begin();
    minidbx_writer *w = NULL;
    if (minidbx_writer_open(db, &w) != 0)
        return 11;
    for (uint64_t done = 0; done < BIG_SIZE; done += CHUNK) {
        rng_fill(&rng, chunk, CHUNK);
        sha_update(sha, chunk, CHUNK);
        if (minidbx_writer_write(w, chunk, CHUNK) != 0)
            return 12;
    }
    minidbx_id id, ref;
    if (minidbx_writer_commit(w, &id) != 0)
        return 13;
    sha_end(sha, &ref);
    if (!minidbx_id_equal(&id, &ref))
        return 14;

    minidbx_reader *r = NULL;
    uint64_t size = 0;
    if (minidbx_reader_open(db, &id, &r, &size) != 0 || size != BIG_SIZE)
        return 15;
    sha = sha_begin();
    uint64_t total = 0;
    size_t got;
    int rc;
    while ((rc = minidbx_reader_read(r, chunk, CHUNK, &got)) == 0 && got > 0) {
        sha_update(sha, chunk, got);
        total += got;
    }
    minidbx_reader_close(r);
    sha_end(sha, &ref);
    if (rc != 0 || total != BIG_SIZE || !minidbx_id_equal(&id, &ref))
        return 16;
    rc = minidbx_delete(db, &id);
    minidbx_close(db);
    free(chunk);
    return rc == 0 ? 0 : 17;
}

static int big_put_fd_get_fd(void *arg)
{
    big_job *job = arg;
    minidbx *db = NULL;
    if (minidbx_open(&db, job->dir, NULL) != 0)
        return 20;
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return 21;
    pipe_job feed = {.fd = in[1], .size = BIG_SIZE, .sha = sha_begin()};
    rng_seed(&feed.rng, job->seed);
    pthread_t feeder, drainer;
    pthread_create(&feeder, NULL, pipe_feeder, &feed);
    minidbx_id id, ref;
    int rc = minidbx_put_fd(db, in[0], &id);
    pthread_join(feeder, NULL);
    close(in[0]);
    sha_end(feed.sha, &ref);
    if (rc != 0 || feed.error != 0 || !minidbx_id_equal(&id, &ref))
        return 22;
    pipe_job drain = {.fd = out[0], .size = BIG_SIZE, .sha = sha_begin()};
    pthread_create(&drainer, NULL, pipe_drainer, &drain);
    rc = minidbx_get_fd(db, &id, out[1]);
    close(out[1]);
    pthread_join(drainer, NULL);
    sha_end(drain.sha, &ref);
    if (rc != 0 || drain.total != BIG_SIZE || !minidbx_id_equal(&id, &ref))
        return 23;
    rc = minidbx_delete(db, &id);
    minidbx_close(db);
    return rc == 0 ? 0 : 24;
}

static void run_big(const char *what, int (*fn)(void *))
{
    big_job job = {.dir = fx_location, .seed = seed_from_clock()};
    double start = now_ms();
    long rss_kib = 0;
    int status = run_in_child(fn, &job, &rss_kib);
    double secs = (now_ms() - start) / 1000.0;
    printf("1 GiB %s: %.1f s, peak RSS %ld KiB (limit %ld KiB)%s\n", what, secs, rss_kib,
           RSS_LIMIT_KIB, TEST_UNDER_ASAN ? " [ASan: limit not enforced]" : "");
    fflush(stdout);
    ck_assert_msg(status == 0, "1 GiB %s child failed at step %d (seed %llu)", what, status,
                  (unsigned long long)job.seed);
    /* ASan's shadow memory and quarantine are not the library's */
    if (!TEST_UNDER_ASAN)
        ck_assert_msg(rss_kib <= RSS_LIMIT_KIB, "1 GiB %s: peak RSS %ld KiB > %ld KiB", what,
                      rss_kib, RSS_LIMIT_KIB);
}

START_TEST(big_writer_and_reader)
{
    minidbx_close(fx_db); /* the child opens its own handle */
    fx_db = NULL;
    run_big("writer/reader", big_writer_reader);
}
END_TEST

START_TEST(big_put_fd_and_get_fd)
{
    minidbx_close(fx_db);
    fx_db = NULL;
    run_big("put_fd/get_fd", big_put_fd_get_fd);
}
END_TEST

static int big_tests_enabled(void)
{
    const char *v = getenv("MINIDBX_BIG_TESTS");
    return v != NULL && strcmp(v, "1") == 0;
}

static Suite *stream_suite(void)
{
    Suite *s = suite_create("stream");
    TCase *tc = tcase_with_store("stream", TEST_TIMEOUT_S);
    tcase_add_test_needs(tc, writer_reader_round_trip, TEST_CAP_FILES);
    tcase_add_test_needs(tc, writer_abort_leaves_nothing, TEST_CAP_FILES);
    tcase_add_test(tc, writer_commit_ex_created_and_expect);
    tcase_add_test(tc, reader_fd_on_file_object);
    tcase_add_test(tc, reader_fd_on_inline_object);
    tcase_add_test(tc, put_fd_get_fd_through_pipes);
    tcase_add_test(tc, get_fd_to_file);
    tcase_add_test(tc, get_fd_broken_pipe);
    suite_add_tcase(s, tc);
    if (big_tests_enabled()) {
        TCase *big = tcase_with_store("1GiB", TEST_TIMEOUT_LONG_S);
        tcase_add_test(big, big_writer_and_reader);
        tcase_add_test(big, big_put_fd_and_get_fd);
        suite_add_tcase(s, big);
    } else {
        printf("1 GiB streaming tests skipped (meson option big_tests=false)\n");
    }
    return s;
}

int main(void)
{
    return run_suite(stream_suite());
}
