/*
 * test_s3.c - the s3:// backend on a real Ceph RGW (run under
 * tests/s3/with-rgw.sh, which sets MINIDBX_S3_ENDPOINT, AWS_* and
 * MINIDBX_TEST_S3_BUCKET): round trips across the multipart threshold,
 * listings over several pages, what a writer's abort and a client's
 * SIGKILL leave, the errors (wrong secret, missing bucket, engine down)
 * and that no message holds a secret. What the engine holds is checked
 * with curl --aws-sigv4, independently of the library.
 */
#include "../util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#define MIB (1024u * 1024u)
#define CHUNK (1u * MIB)

static char location[512]; /* s3://BUCKET/PREFIX, fresh per test */
static char prefix[256];

static const char *need_env(const char *name)
{
    const char *value = getenv(name);
    ck_assert_msg(value != NULL && value[0], "%s is not set: run under tests/s3/with-rgw.sh", name);
    return value;
}

static void fresh_location(void)
{
    char *dir = tmpdir_make("s3");
    snprintf(prefix, sizeof prefix, "%s", strrchr(dir, '/') + 1);
    snprintf(location, sizeof location, "s3://%s/%s", need_env("MINIDBX_TEST_S3_BUCKET"), prefix);
    rm_rf(dir);
    free(dir);
}

static minidbx *open_s3(void)
{
    minidbx *db = NULL;
    ck_assert_ok(minidbx_open(&db, location, NULL));
    return db;
}

/* Run curl --aws-sigv4 with options on ENDPOINT/BUCKET + path_and_query;
 * its output (malloc'd, NUL-terminated; at most max bytes) and *size. */
static char *engine_run(const char *options, const char *path_and_query, size_t max, size_t *size)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "curl -sS --fail --max-time 60 --aws-sigv4 aws:amz:us-east-1:s3 --user \"$AWS_ACCESS_KEY_ID:"
             "$AWS_SECRET_ACCESS_KEY\" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' %s '%s/%s%s'",
             options, need_env("MINIDBX_S3_ENDPOINT"), need_env("MINIDBX_TEST_S3_BUCKET"), path_and_query);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char *out = malloc(max + 1);
    ck_assert_ptr_nonnull(out);
    size_t n = fread(out, 1, max, p);
    out[n] = '\0';
    ck_assert_int_eq(pclose(p), 0);
    if (size)
        *size = n;
    return out;
}

static char *engine_get(const char *path_and_query, size_t max, size_t *size)
{
    return engine_run("", path_and_query, max, size);
}

/* PUT text to, or DELETE (text NULL), our prefix + key, behind the library's back. */
static void engine_change(const char *key, const char *text)
{
    char path[1024], options[256];
    snprintf(path, sizeof path, "/%s/%s", prefix, key);
    snprintf(options, sizeof options, text ? "-X PUT --data-binary '%s'" : "-X DELETE", text);
    free(engine_run(options, path, 4096, NULL));
}

/* PUT size bytes of data to our prefix + key, behind the library's back. */
static void engine_put_bytes(const char *key, const void *data, size_t size)
{
    char file[] = "/tmp/minidbx-s3-body-XXXXXX", path[1024], options[256];
    int fd = mkstemp(file);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
    close(fd);
    snprintf(path, sizeof path, "/%s/%s", prefix, key);
    snprintf(options, sizeof options, "-X PUT --data-binary @%s", file);
    free(engine_run(options, path, 4096, NULL));
    unlink(file);
}

static void object_key(const minidbx_id *id, char out[128])
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    snprintf(out, 128, "objects/%.2s/%s", hex, hex);
}

/* Wait for the wall clock's next second: the engine's Last-Modified and
 * Date have whole seconds, and gc keeps what was put in its own second. */
static void next_second(void)
{
    sleep_past_second(1, 10);
}

/* How many times tag comes in the engine's answer to query, which must be
 * a root element's document. */
static int count_tags(const char *query, const char *root, const char *tag)
{
    char *xml = engine_get(query, 1 << 20, NULL);
    ck_assert_msg(strstr(xml, root) != NULL, "not a %s: %s", root, xml);
    int count = 0;
    for (const char *p = xml; (p = strstr(p, tag)) != NULL; p++)
        count++;
    free(xml);
    return count;
}

/* How many multipart uploads the engine has under our prefix. */
static int uploads_under_prefix(void)
{
    char query[512];
    snprintf(query, sizeof query, "?prefix=%s%%2F&uploads=", prefix);
    return count_tags(query, "ListMultipartUploadsResult", "<Upload>");
}

/* How many keys the engine has under our prefix + under. */
static int keys_under(const char *under)
{
    char query[512];
    snprintf(query, sizeof query, "?list-type=2&prefix=%s%%2F%s", prefix, under);
    return count_tags(query, "ListBucketResult", "<Key>");
}

/* ---- round trips ---- */

/* Write size seeded random bytes through a writer in 1 MiB pieces. */
static minidbx_id write_seeded(minidbx *db, uint64_t seed, uint64_t size, minidbx_id *expect)
{
    test_rng rng;
    unsigned char *chunk = malloc(CHUNK);
    minidbx_writer *w = NULL;
    test_sha *sha = sha_begin();
    minidbx_id id;

    ck_assert_ptr_nonnull(chunk);
    rng_seed(&rng, seed);
    ck_assert_ok(minidbx_writer_open(db, &w));
    for (uint64_t done = 0; done < size;) {
        size_t n = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
        rng_fill(&rng, chunk, n);
        sha_update(sha, chunk, n);
        ck_assert_ok(minidbx_writer_write(w, chunk, n));
        done += n;
    }
    ck_assert_ok(minidbx_writer_commit(w, &id));
    sha_end(sha, expect);
    free(chunk);
    return id;
}

/* Read id back through a reader and compare with the seeded bytes. */
static void read_seeded(minidbx *db, const minidbx_id *id, uint64_t seed, uint64_t size)
{
    test_rng rng;
    unsigned char *want = malloc(CHUNK), *got = malloc(CHUNK);
    minidbx_reader *r = NULL;
    uint64_t got_size = 0, done = 0;
    size_t n = 0;

    rng_seed(&rng, seed);
    ck_assert_ok(minidbx_reader_open(db, id, &r, &got_size));
    ck_assert_uint_eq(got_size, size);
    do {
        ck_assert_ok(minidbx_reader_read(r, got, CHUNK, &n));
        for (size_t at = 0; at < n;) {
            /* the reference comes in CHUNK pieces: match them up */
            size_t in_chunk = (size_t)(done % CHUNK);
            if (in_chunk == 0)
                rng_fill(&rng, want, size - done < CHUNK ? (size_t)(size - done) : CHUNK);
            size_t take = CHUNK - in_chunk < n - at ? CHUNK - in_chunk : n - at;
            ck_assert_msg(memcmp(got + at, want + in_chunk, take) == 0, "bytes differ near %llu",
                          (unsigned long long)done);
            at += take;
            done += take;
        }
    } while (n > 0);
    ck_assert_uint_eq(done, size);
    minidbx_reader_close(r);
    free(want);
    free(got);
}

static void roundtrip(uint64_t size)
{
    minidbx *db = open_s3();
    minidbx_id id, expect, id2;
    uint64_t seed = seed_from_clock();

    printf("round trip of %llu bytes (seed %llu)\n", (unsigned long long)size, (unsigned long long)seed);
    id = write_seeded(db, seed, size, &expect);
    ck_assert(minidbx_id_equal(&id, &expect));
    read_seeded(db, &id, seed, size);
    ck_assert_int_eq(minidbx_exists(db, &id), 1);
    if (size <= 6 * MIB) {
        /* the whole-buffer calls too, and the key holds exactly the bytes */
        void *data = NULL;
        size_t got = 0;
        test_rng rng;
        unsigned char *want = malloc(size ? size : 1);
        rng_seed(&rng, seed);
        for (size_t at = 0; at < size; at += CHUNK)
            rng_fill(&rng, want + at, size - at < CHUNK ? size - at : CHUNK);
        ck_assert_ok(minidbx_get(db, &id, &data, &got));
        ck_assert_uint_eq(got, size);
        ck_assert(memcmp(data, want, size) == 0);
        minidbx_free(data);
        ck_assert_ok(minidbx_put(db, want, size, &id2));
        ck_assert(minidbx_id_equal(&id, &id2));

        char hex[MINIDBX_ID_HEX_SIZE], path[512];
        minidbx_id_format(&id, hex);
        snprintf(path, sizeof path, "/%s/objects/%.2s/%s", prefix, hex, hex);
        size_t raw_size = 0;
        char *raw = engine_get(path, size + 1, &raw_size);
        ck_assert_uint_eq(raw_size, size);
        ck_assert(memcmp(raw, want, size) == 0);
        free(raw);
        free(want);
    }
    minidbx_object_info info;
    ck_assert_ok(minidbx_stat(db, &id, &info));
    ck_assert_uint_eq(info.size, size);
    ck_assert_int_eq(uploads_under_prefix(), 0);
    ck_assert_int_eq(keys_under("tmp%2F"), 0);
    if (size > 6 * MIB) /* the engine keeps it in RAM: make room */
        ck_assert_ok(minidbx_delete(db, &id));
    minidbx_close(db);
}

START_TEST(roundtrip_sizes)
{
    static const uint64_t sizes[] = { 0, 4096, 5 * MIB - 1, 5 * MIB, 5 * MIB + 1 };
    fresh_location();
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        roundtrip(sizes[i]);
}
END_TEST

/* Over what one CopyObject copies (5 GiB; here 5 MiB), the copy from
 * tmp/ to the object's key goes in parts (UploadPartCopy). */
START_TEST(roundtrip_copied_in_parts)
{
    setenv("MINIDBX_S3_COPY_MAX", "5242880", 1);
    fresh_location();
    roundtrip(12ull * MIB + 3);
}
END_TEST

static int roundtrip_100mib_child(void *arg)
{
    (void)arg;
    roundtrip(100ull * MIB);
    return 0;
}

/* In bounded memory both ways: the writer holds 3 parts of 5 MiB, the
 * reader a socket's buffers; the child's peak RSS stays under 40 MiB. */
START_TEST(roundtrip_100mib)
{
    long rss_kib = 0;
    fresh_location();
    ck_assert_int_eq(run_in_child(roundtrip_100mib_child, NULL, &rss_kib), 0);
    printf("100 MiB round trip: peak RSS %ld KiB\n", rss_kib);
    if (!TEST_UNDER_ASAN)
        ck_assert_int_le(rss_kib, 40 * 1024);
}
END_TEST

struct seeded {
    minidbx_id id;
    uint64_t seed, size;
};

static int read_seeded_child(void *arg)
{
    struct seeded *o = arg;
    minidbx *db = open_s3();
    double start = now_ms();
    read_seeded(db, &o->id, o->seed, o->size);
    printf("read of %llu MiB through a reader: %.0f ms\n", (unsigned long long)(o->size / MIB),
           now_ms() - start);
    fflush(stdout); /* the child leaves with _exit */
    minidbx_close(db);
    return 0;
}

/* A reader of 100 MiB (8 MiB ranges, the default) holds the socket's
 * buffers, not a range: the reading child's peak RSS. */
START_TEST(read_100mib_bounded)
{
    struct seeded o = { .seed = seed_from_clock(), .size = 100ull * MIB };
    minidbx_id expect;
    long rss_kib = 0;

    fresh_location();
    minidbx *db = open_s3();
    o.id = write_seeded(db, o.seed, o.size, &expect);
    ck_assert_int_eq(run_in_child(read_seeded_child, &o, &rss_kib), 0);
    printf("100 MiB read: peak RSS %ld KiB\n", rss_kib);
    ck_assert_ok(minidbx_delete(db, &o.id));
    minidbx_close(db);
    if (!TEST_UNDER_ASAN)
        ck_assert_int_le(rss_kib, 24 * 1024);
}
END_TEST

/* ---- listings ---- */

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, MINIDBX_ID_SIZE);
}

START_TEST(listing_pages)
{
    enum { OBJECTS = 11, NAMES = 10 };
    minidbx_id ids[OBJECTS];
    minidbx_object_info listed[OBJECTS + 1];
    minidbx_name_info names[NAMES + 1];
    size_t count = 0;
    test_rng rng;

    fresh_location();
    setenv("MINIDBX_S3_LIST_PAGE", "3", 1); /* 11 objects: 4 pages */
    minidbx *db = open_s3();
    rng_seed(&rng, seed_from_clock());
    for (int i = 0; i < OBJECTS; i++)
        ids[i] = store_put_random(db, &rng, 100 + (size_t)i);
    qsort(ids, OBJECTS, sizeof ids[0], id_cmp);
    ck_assert_ok(minidbx_list(db, NULL, listed, OBJECTS + 1, &count));
    ck_assert_uint_eq(count, OBJECTS);
    for (int i = 0; i < OBJECTS; i++)
        ck_assert(minidbx_id_equal(&listed[i].id, &ids[i]));
    /* resumed after the 4th, 5 at a time */
    ck_assert_ok(minidbx_list(db, &ids[3], listed, 5, &count));
    ck_assert_uint_eq(count, 5);
    ck_assert(minidbx_id_equal(&listed[0].id, &ids[4]));
    ck_assert(minidbx_id_equal(&listed[4].id, &ids[8]));

    for (int i = 0; i < NAMES; i++) {
        char name[32];
        snprintf(name, sizeof name, "dir/n%02d", i);
        ck_assert_ok(minidbx_name_set(db, name, &ids[i]));
    }
    ck_assert_ok(minidbx_name_list(db, "dir/", NULL, names, NAMES + 1, &count));
    ck_assert_uint_eq(count, NAMES);
    for (int i = 0; i < NAMES; i++) {
        char name[32];
        snprintf(name, sizeof name, "dir/n%02d", i);
        ck_assert_str_eq(names[i].name, name);
        ck_assert(minidbx_id_equal(&names[i].id, &ids[i]));
    }
    ck_assert_ok(minidbx_name_list(db, "dir/", "dir/n06", names, NAMES, &count));
    ck_assert_uint_eq(count, 3);
    ck_assert_str_eq(names[0].name, "dir/n07");
    /* refs come through the pages too */
    ck_assert_ok(minidbx_list(db, NULL, listed, OBJECTS + 1, &count));
    for (int i = 0; i < OBJECTS; i++)
        ck_assert_uint_eq(listed[i].refs, i < NAMES ? 1 : 0);
    minidbx_close(db);
}
END_TEST

/* missing: the same answer (absent ids in input order, repeats kept) from
 * HEADs, from one listing, and from a listing that gives up (more keys
 * than 20 per id asked about) and falls back to HEADs. */
static void expect_missing(minidbx *db, const minidbx_id *ask, size_t count, const minidbx_id *want,
                           size_t want_count)
{
    minidbx_id out[64];
    size_t got = 99;
    ck_assert_ok(minidbx_missing(db, ask, count, out, &got));
    ck_assert_uint_eq(got, want_count);
    for (size_t i = 0; i < got; i++)
        ck_assert(minidbx_id_equal(&out[i], &want[i]));
}

START_TEST(missing_heads_and_listing)
{
    enum { STORED = 100 };
    minidbx_id stored[STORED], ask[12], want[12];
    size_t asked = 0, wanted = 0;
    test_rng rng;

    fresh_location();
    setenv("MINIDBX_S3_LIST_PAGE", "7", 1);
    minidbx *db = open_s3();
    rng_seed(&rng, seed_from_clock());
    for (int i = 0; i < STORED; i++)
        stored[i] = store_put_random(db, &rng, 10);
    for (int i = 0; i < 12; i++) {
        if (i % 3 == 1) {
            rng_fill(&rng, &ask[asked], sizeof ask[asked]);
            want[wanted++] = ask[asked++];
        } else {
            ask[asked++] = stored[(i * 37) % STORED];
        }
    }
    ask[11] = ask[1]; /* an absent id twice */
    want[wanted++] = ask[1];
    minidbx_close(db);

    const char *mins[] = { "1000", "4" };
    for (size_t m = 0; m < 2; m++) {
        setenv("MINIDBX_S3_MISSING_LIST_MIN", mins[m], 1);
        db = open_s3();
        expect_missing(db, ask, asked, want, wanted);
        /* 4 ids over 100 objects: past 80 keys the listing gives up */
        minidbx_id few[4] = { stored[0], want[0], stored[50], stored[99] };
        expect_missing(db, few, 4, &want[0], 1);
        /* out_missing may be ids itself */
        minidbx_id alias[12];
        size_t got = 0;
        memcpy(alias, ask, sizeof alias);
        ck_assert_ok(minidbx_missing(db, alias, asked, alias, &got));
        ck_assert_uint_eq(got, wanted);
        ck_assert(memcmp(alias, want, wanted * sizeof want[0]) == 0);
        minidbx_close(db);
    }
}
END_TEST

/* ---- writers that do not finish ---- */

START_TEST(writer_abort_leaves_no_upload)
{
    fresh_location();
    minidbx *db = open_s3();
    minidbx_writer *w = NULL;
    unsigned char *chunk = calloc(1, CHUNK);

    ck_assert_ok(minidbx_writer_open(db, &w));
    for (int i = 0; i < 12; i++) { /* two parts sent, one being filled */
        chunk[0] = (unsigned char)i;
        ck_assert_ok(minidbx_writer_write(w, chunk, CHUNK));
    }
    ck_assert_int_eq(uploads_under_prefix(), 1);
    minidbx_writer_abort(w);
    ck_assert_int_eq(uploads_under_prefix(), 0);
    ck_assert_int_eq(keys_under(""), 0);
    free(chunk);
    minidbx_close(db);
}
END_TEST

/* A child writes an object of 3 parts and more, and is killed with SIGKILL
 * once its upload is under way. No object is visible; the incomplete
 * upload (with its parts) stays on the engine until verify --repair (or
 * any S3 tool) aborts it. */
START_TEST(kill_mid_multipart)
{
    int go[2];
    fresh_location();
    ck_assert_int_eq(pipe(go), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        minidbx *db = NULL;
        minidbx_writer *w = NULL;
        unsigned char *chunk = calloc(1, CHUNK);
        close(go[0]);
        if (!chunk || minidbx_open(&db, location, NULL) != 0 || minidbx_writer_open(db, &w) != 0)
            _exit(1);
        for (int i = 0; i < 16; i++) {
            chunk[0] = (unsigned char)i;
            if (minidbx_writer_write(w, chunk, CHUNK) != 0)
                _exit(1);
        }
        if (write(go[1], "x", 1) != 1) /* 3 parts on their way */
            _exit(1);
        pause();
        _exit(0);
    }
    close(go[1]);
    char byte;
    ck_assert_int_eq(read(go[0], &byte, 1), 1);
    close(go[0]);
    kill(pid, SIGKILL);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    minidbx *db = open_s3();
    minidbx_object_info listed[4];
    size_t count = 99;
    ck_assert_ok(minidbx_list(db, NULL, listed, 4, &count));
    ck_assert_uint_eq(count, 0);
    ck_assert_int_eq(keys_under(""), 0); /* nothing visible to any S3 tool */
    ck_assert_int_eq(uploads_under_prefix(), 1);

    /* a young upload may be a live writer's: verify leaves it */
    minidbx_verify_report report;
    memset(&report, 0, sizeof report);
    ck_assert_ok(minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
    ck_assert_int_eq(uploads_under_prefix(), 1);
    minidbx_close(db);
    /* once older than the stale age, verify reports it, and repair aborts it */
    setenv("MINIDBX_S3_STALE_SECONDS", "0", 1);
    db = open_s3();
    problem_log log;
    memset(&log, 0, sizeof log);
    memset(&report, 0, sizeof report);
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_TEMP], 1);
    ck_assert_int_eq(uploads_under_prefix(), 1);
    memset(&report, 0, sizeof report);
    ck_assert_ok(minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL));
    ck_assert_uint_eq(report.repaired, 1);
    ck_assert_int_eq(uploads_under_prefix(), 0);
    minidbx_close(db);
}
END_TEST

/* ---- names, refs, delete, gc, verify ---- */

START_TEST(names_refs_delete_gc)
{
    test_rng rng;
    minidbx_object_info info;
    minidbx_gc_report gc;

    fresh_location();
    minidbx *db = open_s3();
    rng_seed(&rng, seed_from_clock());
    minidbx_id a = store_put_random(db, &rng, 1000), b = store_put_random(db, &rng, 2000);
    minidbx_id c = store_put_random(db, &rng, 3000);
    ck_assert_ok(minidbx_name_set(db, "x", &a));
    ck_assert_ok(minidbx_name_set(db, "y/1", &a));
    ck_assert_ok(minidbx_stat(db, &a, &info));
    ck_assert_uint_eq(info.refs, 2);
    ck_assert_rc(minidbx_delete(db, &a), MINIDBX_EREFERENCED);
    ck_assert_ok(minidbx_delete_ex(db, &a, MINIDBX_DELETE_CASCADE));
    ck_assert_int_eq(minidbx_exists(db, &a), 0);
    ck_assert_rc(minidbx_name_get(db, "x", &(minidbx_name_info){ 0 }), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_name_get(db, "y/1", &(minidbx_name_info){ 0 }), MINIDBX_ENOTFOUND);
    ck_assert_int_eq(keys_under("refs%2F"), 0);
    /* a name moved from b to c moves its ref */
    ck_assert_ok(minidbx_name_set(db, "z", &b));
    ck_assert_ok(minidbx_name_set(db, "z", &c));
    ck_assert_ok(minidbx_stat(db, &b, &info));
    ck_assert_uint_eq(info.refs, 0);
    ck_assert_ok(minidbx_stat(db, &c, &info));
    ck_assert_uint_eq(info.refs, 1);
    ck_assert_rc(minidbx_name_set(db, "w", &a), MINIDBX_ENOTFOUND); /* a is gone */
    /* a name keeps the time it is given (minidbx_copy carries src's) */
    minidbx_name_info named;
    ck_assert_ok(minidbx_name_set_at(db, "at", &c, 1234567890123456789LL));
    ck_assert_ok(minidbx_name_get(db, "at", &named));
    ck_assert_int_eq(named.mtime_ns, 1234567890123456789LL);
    ck_assert_uint_eq(named.size, 3000);
    ck_assert_ok(minidbx_name_delete(db, "at"));

    /* gc keeps what was put in its own second, and named objects */
    next_second();
    ck_assert_ok(test_gc_now(db, &gc));
    ck_assert_uint_eq(gc.objects_removed, 1);
    ck_assert_uint_eq(gc.bytes_removed, 2000);
    ck_assert_int_eq(minidbx_exists(db, &b), 0);
    ck_assert_int_eq(minidbx_exists(db, &c), 1);
    minidbx_id d = store_put_random(db, &rng, 10);
    ck_assert_ok(test_gc_now(db, &gc)); /* d: put in gc's second, or after it began */
    ck_assert_int_eq(minidbx_exists(db, &d), 1);
    ck_assert_ok(minidbx_name_delete(db, "z"));
    ck_assert_int_eq(keys_under("refs%2F"), 0);
    minidbx_close(db);
}
END_TEST

START_TEST(verify_finds_and_repairs)
{
    test_rng rng;
    minidbx_verify_report report;
    problem_log log;
    char key[128], ref[256];
    void *data = NULL;
    size_t size = 0;

    fresh_location();
    minidbx *db = open_s3();
    rng_seed(&rng, seed_from_clock());
    minidbx_id bad = store_put_random(db, &rng, 5000), gone = store_put_random(db, &rng, 10);
    minidbx_id good = store_put_random(db, &rng, 6 * MIB); /* one PUT, read back in a stream */
    ck_assert_ok(minidbx_name_set(db, "bad", &bad));
    ck_assert_ok(minidbx_name_set(db, "gone", &gone));
    ck_assert_ok(minidbx_name_set(db, "good", &good));
    object_key(&bad, key);
    engine_change(key, "not the bytes of this id");
    object_key(&gone, key);
    engine_change(key, NULL);
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(&good, hex);
    snprintf(ref, sizeof ref, "refs/%s/good", hex);
    engine_change(ref, NULL);

    ck_assert_rc(minidbx_get(db, &bad, &data, &size), MINIDBX_ECORRUPT);
    memset(&report, 0, sizeof report);
    memset(&log, 0, sizeof log);
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.objects_checked, 2);
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_CORRUPT], 1);
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_CORRUPT, &bad));
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_DANGLING, &gone));
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_BADREF, &good));
    ck_assert_uint_eq(report.problems, 3);
    ck_assert_uint_eq(report.repaired, 0);
    ck_assert_rc(minidbx_verify(db, &bad, 0, &report, NULL, NULL), MINIDBX_OK);

    memset(&report, 0, sizeof report);
    memset(&log, 0, sizeof log);
    ck_assert_ok(minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.problems, 3); /* the name removed is not one */
    ck_assert_uint_eq(report.repaired, 3);
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_NAME_REMOVED], 1); /* "bad", said */
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_NAME_REMOVED, &bad));
    ck_assert_int_eq(minidbx_exists(db, &bad), 0);
    ck_assert_rc(minidbx_name_get(db, "bad", &(minidbx_name_info){ 0 }), MINIDBX_ENOTFOUND);
    ck_assert_rc(minidbx_name_get(db, "gone", &(minidbx_name_info){ 0 }), MINIDBX_ENOTFOUND);
    minidbx_object_info info;
    ck_assert_ok(minidbx_stat(db, &good, &info));
    ck_assert_uint_eq(info.refs, 1);
    memset(&report, 0, sizeof report);
    ck_assert_ok(minidbx_verify(db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
    ck_assert_uint_eq(report.objects_checked, 1);
    ck_assert_uint_eq(report.bytes_checked, 6 * MIB);
    minidbx_close(db);
}
END_TEST

struct verify_args {
    minidbx *db;
    minidbx_verify_report report;
    int rc;
};

static void *verify_repair_thread(void *arg)
{
    struct verify_args *a = arg;
    a->rc = minidbx_verify(a->db, NULL, MINIDBX_VERIFY_REPAIR, &a->report, NULL, NULL);
    return NULL;
}

/* verify --repair holds (the test-only pause point s3-verify-hashed) after
 * its second read found the bytes wrong, and a client puts the right bytes
 * again (heals the copy) meanwhile: repair sees that the key holds other
 * bytes than it hashed (ETag, Last-Modified), hashes again, and keeps the
 * object and its name. */
/* verify --repair of a corrupt, named object held at the pause point
 * point while a client puts the right bytes again (heals it): the object
 * and its name must stay, and nothing is reported. */
static void repair_with_heal_at(const char *point)
{
    test_rng rng;
    char key[128], pause[300], marker[320];
    void *data = NULL, *good = NULL;
    size_t size = 0;

    fresh_location();
    char *dir = tmpdir_make("s3-pause");
    snprintf(pause, sizeof pause, "%s:%s/pause", point, dir);
    snprintf(marker, sizeof marker, "%s/pause.%s", dir, point);
    setenv("MINIDBX_TEST_PAUSE", pause, 1);
    struct verify_args args = { .db = open_s3() };
    rng_seed(&rng, seed_from_clock());
    minidbx_id id = store_put_random(args.db, &rng, 5000);
    ck_assert_ok(minidbx_name_set(args.db, "healed", &id));
    ck_assert_ok(minidbx_get(args.db, &id, &good, &size));
    object_key(&id, key);
    engine_change(key, "not the bytes of this id");

    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, verify_repair_thread, &args), 0);
    double start = now_ms();
    while (access(marker, F_OK) != 0 && now_ms() - start < 10000)
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    ck_assert_msg(access(marker, F_OK) == 0, "verify never reached %s", point);
    engine_put_bytes(key, good, size); /* a client heals the copy */
    ck_assert_int_eq(unlink(marker), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    unsetenv("MINIDBX_TEST_PAUSE");

    ck_assert_ok(args.rc);
    printf("verify --repair with a heal at %s: %llu problem(s), %llu repaired\n", point,
           (unsigned long long)args.report.problems, (unsigned long long)args.report.repaired);
    ck_assert_ok(minidbx_get(args.db, &id, &data, &size));
    ck_assert_mem_eq(data, good, size);
    minidbx_name_info info;
    ck_assert_ok(minidbx_name_get(args.db, "healed", &info));
    ck_assert(minidbx_id_equal(&info.id, &id));
    ck_assert_uint_eq(args.report.repaired, 0);
    ck_assert_uint_eq(args.report.problems, 0);
    minidbx_free(data);
    minidbx_free(good);
    minidbx_close(args.db);
    rm_rf(dir);
    free(dir);
}

START_TEST(verify_repair_keeps_healed)
{
    repair_with_heal_at("s3-verify-hashed"); /* before the repair looks again */
}
END_TEST

/* After the repair removed the object's names, before its DELETE: the
 * names come back (they were gone for good before). */
START_TEST(verify_repair_keeps_names_of_healed)
{
    repair_with_heal_at("s3-repair-names-removed");
}
END_TEST

/* ---- a name set racing a remover (gc, delete, delete with its names) ---- */

/* S3 has no transaction: a remover lists an object's refs and then
 * DELETEs it; a name set writes a ref, then its name. Whatever the
 * interleaving, a set that returns 0 leaves its name (and ref) on an
 * object that is there, and one that loses the race says ENOTFOUND and
 * leaves neither name nor ref. Each case holds one side at a test-only
 * pause point while the other acts. */
enum remover { GC, DELETE, CASCADE };

struct racer {
    minidbx *db;
    minidbx_id id;
    enum remover kind;
    int rc;
    atomic_bool done;
};

static void *remover_thread(void *p)
{
    struct racer *a = p;
    minidbx_gc_report report;
    a->rc = a->kind == GC ? test_gc_now(a->db, &report)
                          : minidbx_delete_ex(a->db, &a->id, a->kind == CASCADE ? MINIDBX_DELETE_CASCADE : 0);
    return NULL;
}

static void *setter_thread(void *p)
{
    struct racer *a = p;
    a->rc = minidbx_name_set(a->db, "pinned", &a->id);
    atomic_store(&a->done, true);
    return NULL;
}

static bool wait_for_file(const char *path, const atomic_bool *done)
{
    double start = now_ms();
    while (access(path, F_OK) != 0 && !(done && atomic_load(done)) && now_ms() - start < 10000)
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    return access(path, F_OK) == 0;
}

/* where one side is held: the remover after its last look, before its
 * DELETE; the set before its ref, after it, or after its HEAD (before
 * its name) */
enum race { REMOVER_CHECKED, SETTER_BEFORE_REF, SETTER_AFTER_REF, SETTER_CHECKED, RACES };

/* kept: "pinned" points at the object before the race (the set sets it
 * again) */
static void name_set_racing_remover(enum remover kind, enum race race, bool kept)
{
    static const char *const points[] = { "s3-remove-checked", "s3-name-set", "s3-name-ref", "s3-name-checked" };
    static const char *const kinds[] = { "gc", "delete", "delete CASCADE" };
    test_rng rng;
    char pause[400], held[320], waits[320];
    fresh_location();
    char *dir = tmpdir_make("s3-pause");
    snprintf(pause, sizeof pause, "%s,s3-name-waits:%s/pause", points[race], dir);
    snprintf(held, sizeof held, "%s/pause.%s", dir, points[race]);
    snprintf(waits, sizeof waits, "%s/pause.s3-name-waits", dir);
    setenv("MINIDBX_TEST_PAUSE", pause, 1); /* read at the first open of this process */
    minidbx *db = open_s3();
    rng_seed(&rng, seed_from_clock());
    minidbx_id id = store_put_random(db, &rng, 3000);
    if (kept)
        ck_assert_ok(minidbx_name_set(db, "pinned", &id));
    if (kind == GC)
        next_second(); /* gc takes what was put before the second it began in */
    struct racer remover = { .db = db, .id = id, .kind = kind, .rc = -1 };
    struct racer setter = { .db = db, .id = id, .rc = -1 };
    pthread_t rt, st;
    if (race == REMOVER_CHECKED) {
        /* the remover has found no ref and is about to DELETE; the set
         * comes now and waits for it */
        ck_assert_int_eq(pthread_create(&rt, NULL, remover_thread, &remover), 0);
        ck_assert_msg(wait_for_file(held, NULL), "the remover never reached %s", points[race]);
        ck_assert_int_eq(pthread_create(&st, NULL, setter_thread, &setter), 0);
        if (wait_for_file(waits, &setter.done))
            ck_assert_int_eq(unlink(waits), 0);
        ck_assert_int_eq(unlink(held), 0);
        ck_assert_int_eq(pthread_join(rt, NULL), 0);
        ck_assert_int_eq(pthread_join(st, NULL), 0);
    } else {
        /* the set is held; the remover runs whole */
        ck_assert_int_eq(pthread_create(&st, NULL, setter_thread, &setter), 0);
        ck_assert_msg(wait_for_file(held, NULL), "the name set never reached %s", points[race]);
        remover_thread(&remover);
        ck_assert_int_eq(unlink(held), 0);
        ck_assert_int_eq(pthread_join(st, NULL), 0);
    }
    unsetenv("MINIDBX_TEST_PAUSE");

    int there = minidbx_exists(db, &id);
    minidbx_name_info info;
    int named = minidbx_name_get(db, "pinned", &info);
    printf("%s%s, held at %s: remover %d, name set %d, object there %d, name %d\n", kinds[kind],
           kept ? " of a named object" : "", points[race], remover.rc, setter.rc, there, named);
    ck_assert_msg(setter.rc == 0 || setter.rc == MINIDBX_ENOTFOUND, "name set: %d", setter.rc);
    if (setter.rc == 0) {
        ck_assert_msg(there == 1, "the name set returned 0 but its object is gone");
        ck_assert_ok(named);
        ck_assert(minidbx_id_equal(&info.id, &id));
        ck_assert_int_eq(keys_under("refs%2F"), 1); /* its ref: gc and delete see the name */
    } else {
        ck_assert_int_eq(there, 0);
        ck_assert_rc(named, MINIDBX_ENOTFOUND);
        ck_assert_int_eq(keys_under("refs%2F"), 0);
    }
    /* The object goes when the remover found no ref, or (a cascade) a
     * name that pointed at it: then the set loses. Else the remover saw
     * the set's ref: the object stays. */
    if (kept ? kind == CASCADE : race == REMOVER_CHECKED || race == SETTER_BEFORE_REF) {
        ck_assert_ok(remover.rc);
        ck_assert_rc(setter.rc, MINIDBX_ENOTFOUND);
    } else {
        ck_assert_ok(setter.rc);
        ck_assert_int_eq(remover.rc, kind == GC ? 0 : MINIDBX_EREFERENCED);
    }
    ck_assert_int_eq(keys_under("marks%2F"), 0); /* no remover's mark left */
    minidbx_close(db);
    rm_rf(dir);
    free(dir);
}

START_TEST(name_set_racing_gc)
{
    name_set_racing_remover(GC, (enum race)_i, false);
}
END_TEST

START_TEST(name_set_racing_delete)
{
    name_set_racing_remover(DELETE, (enum race)_i, false);
}
END_TEST

START_TEST(name_set_racing_cascade)
{
    name_set_racing_remover(CASCADE, (enum race)_i, false);
}
END_TEST

/* the name set again while a delete of the object with its names runs */
START_TEST(name_set_again_racing_cascade)
{
    name_set_racing_remover(CASCADE, (enum race)_i, true);
}
END_TEST

/* A mark whose remover died (left in the bucket by hand here) holds a name
 * set of its object up for MARK_WAIT (2 x the TTL: 2 s here), then the set
 * removes it; gc removes a mark older than that. */
START_TEST(stale_marks_are_removed)
{
    test_rng rng;
    char hex[MINIDBX_ID_HEX_SIZE], mark[128];
    minidbx_gc_report gc;

    setenv("MINIDBX_S3_MARK_TTL_SECONDS", "1", 1);
    fresh_location();
    minidbx *db = open_s3();
    rng_seed(&rng, seed_from_clock());
    minidbx_id id = store_put_random(db, &rng, 100), other = store_put_random(db, &rng, 200);
    minidbx_id_format(&id, hex);
    snprintf(mark, sizeof mark, "marks/%s/dead", hex);
    engine_put_bytes(mark, "", 0);
    double start = now_ms();
    ck_assert_ok(minidbx_name_set(db, "after-a-dead-remover", &id));
    double waited = now_ms() - start;
    printf("a name set waited %.0f ms for a dead remover's mark\n", waited);
    ck_assert_msg(waited >= 2000, "the set did not wait for the mark: %.0f ms", waited);
    ck_assert_int_eq(keys_under("marks%2F"), 0);
    ck_assert_int_eq(minidbx_exists(db, &id), 1);

    minidbx_id_format(&other, hex);
    snprintf(mark, sizeof mark, "marks/%s/dead", hex);
    engine_put_bytes(mark, "", 0);
    ck_assert_ok(test_gc_now(db, &gc)); /* young: kept */
    ck_assert_int_eq(keys_under("marks%2F"), 1);
    sleep(4); /* older than MARK_WAIT + 1 s, by the engine's clock */
    ck_assert_ok(test_gc_now(db, &gc));
    ck_assert_int_eq(keys_under("marks%2F"), 0);
    unsetenv("MINIDBX_S3_MARK_TTL_SECONDS");
    minidbx_close(db);
}
END_TEST

/* ---- errors ---- */

static void expect_no_secret(const char *message)
{
    const char *secret = need_env("AWS_SECRET_ACCESS_KEY");
    ck_assert_msg(strstr(message, secret) == NULL, "a secret in: %s", message);
    ck_assert_msg(strstr(message, "wrongSecret") == NULL, "a secret in: %s", message);
    ck_assert_msg(strstr(message, need_env("AWS_ACCESS_KEY_ID")) == NULL, "a key id in: %s", message);
}

static void expect_open_error(const char *loc, int code, const char *needle1, const char *needle2)
{
    minidbx *db = NULL;
    ck_assert_rc(minidbx_open(&db, loc, NULL), code);
    ck_assert_ptr_null(db);
    const char *message = minidbx_errmsg(NULL);
    printf("%s: %s\n", loc, message);
    ck_assert_msg(strstr(message, needle1) != NULL, "'%s' not in: %s", needle1, message);
    ck_assert_msg(strstr(message, needle2) != NULL, "'%s' not in: %s", needle2, message);
    expect_no_secret(message);
}

/* Objects overwritten in the engine with one byte flipped: get and readers
 * (hashed while the bytes arrive, remote.c) refuse them with ECORRUPT; a
 * reader never hands out the last chunk (a small object, read whole, is
 * refused at open); a handle opened MINIDBX_OPEN_NO_VERIFY does not hash
 * and gets the bytes. The flip in the first piece of a body, its middle and
 * near its end; sizes on both sides of the 256 KiB that a reader reads
 * whole at open (DBX_REMOTE_READER_WHOLE_MAX), and bodies of 1 and 2 MiB
 * (a get's buffer reserved from the Content-Length). */
START_TEST(corrupt_object_refused)
{
    static const struct {
        size_t size, flip_from_end; /* flip_from_end > size: the first byte */
    } cases[] = {
        { 4096, 10 },
        { (256u << 10) - 1, 10 },
        { 256u << 10, SIZE_MAX },
        { 1 * MIB, MIB / 2 },
        { 2 * MIB + 100, 10 },
        { 2 * MIB + 100, SIZE_MAX },
    };
    test_rng rng;
    char key[128];
    unsigned char buf[65536];

    fresh_location();
    minidbx *db = open_s3();
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.flags = MINIDBX_OPEN_NO_VERIFY;
    minidbx *trusting = NULL;
    ck_assert_ok(minidbx_open(&trusting, location, &opts));
    rng_seed(&rng, seed_from_clock());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *data = NULL, *got = NULL;
        size_t size = 0, got_size = 0, n;
        uint64_t delivered = 0;
        minidbx_reader *r;
        minidbx_id id = store_put_random(db, &rng, cases[i].size);
        ck_assert_ok(minidbx_get(db, &id, &data, &size));
        ((unsigned char *)data)[cases[i].flip_from_end > size ? 0 : size - cases[i].flip_from_end] ^= 0x20;
        object_key(&id, key);
        engine_put_bytes(key, data, size);

        ck_assert_rc(minidbx_get(db, &id, &got, &got_size), MINIDBX_ECORRUPT);
        ck_assert_ptr_null(got);
        int rc = minidbx_reader_open(db, &id, &r, NULL);
        if (rc == 0) {
            while ((rc = minidbx_reader_read(r, buf, sizeof buf, &n)) == 0 && n > 0)
                delivered += n;
            minidbx_reader_close(r);
        }
        ck_assert_rc(rc, MINIDBX_ECORRUPT);
        ck_assert_uint_lt(delivered, size);

        ck_assert_ok(minidbx_get(trusting, &id, &got, &got_size));
        ck_assert_uint_eq(got_size, size);
        ck_assert_mem_eq(got, data, size);
        minidbx_free(got);
        minidbx_free(data);
    }
    minidbx_close(trusting);
    minidbx_close(db);
}
END_TEST

START_TEST(wrong_secret)
{
    fresh_location();
    const char *endpoint = need_env("MINIDBX_S3_ENDPOINT");
    char good[128];
    snprintf(good, sizeof good, "%s", need_env("AWS_SECRET_ACCESS_KEY"));
    setenv("AWS_SECRET_ACCESS_KEY", "wrongSecret0123456789abcdefABCDEF", 1);
    expect_open_error(location, MINIDBX_EPERM, "SignatureDoesNotMatch", endpoint);
    setenv("AWS_SECRET_ACCESS_KEY", good, 1);
}
END_TEST

START_TEST(missing_bucket)
{
    char loc[128], bucket[64];
    snprintf(bucket, sizeof bucket, "'no-such-bucket-%d'", (int)getpid());
    snprintf(loc, sizeof loc, "s3://%.*s/p", (int)strlen(bucket) - 2, bucket + 1);
    expect_open_error(loc, MINIDBX_ENOTFOUND, bucket, "NoSuchBucket");
}
END_TEST

/* A port nothing listens on: what a stopped engine looks like. */
static int closed_port(void)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

/* A port that accepts connections (the kernel does, into the backlog) and
 * never answers: what a hung engine looks like. Its fd; *port set. */
static int silent_listener(int *port)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *port = ntohs(addr.sin_port);
    return fd;
}

/* A hung engine: the request stalls for timeout_ms (rounded up to whole
 * seconds by curl's stall check; a timeout is not retried: it is the
 * caller's deadline), then EIO naming the URL: bounded, not a hang. */
START_TEST(engine_hangs)
{
    char endpoint[64];
    int port, fd = silent_listener(&port);
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    minidbx *db = NULL;

    fresh_location();
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
    setenv("MINIDBX_S3_ENDPOINT", endpoint, 1);
    opts.timeout_ms = 500;
    double start = now_ms();
    ck_assert_rc(minidbx_open(&db, location, &opts), MINIDBX_EIO);
    double took = now_ms() - start;
    printf("hung engine: EIO after %.0f ms: %s\n", took, minidbx_errmsg(NULL));
    ck_assert_msg(strstr(minidbx_errmsg(NULL), endpoint) != NULL, "%s", minidbx_errmsg(NULL));
    expect_no_secret(minidbx_errmsg(NULL));
    ck_assert_msg(took >= 500 && took < 10000, "gave up after %.0f ms: %s", took, minidbx_errmsg(NULL));
    close(fd);
}
END_TEST

START_TEST(engine_down)
{
    char endpoint[64];
    fresh_location();
    /* an open store whose engine goes away, and an open when it is away */
    minidbx *db = open_s3();
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", closed_port());
    setenv("MINIDBX_S3_ENDPOINT", endpoint, 1);
    expect_open_error(location, MINIDBX_EIO, endpoint, "GET");
    /* the messages of an open store: a missing object and a missing name */
    minidbx_id id;
    memset(&id, 0x5a, sizeof id);
    ck_assert_rc(minidbx_stat(db, &id, &(minidbx_object_info){ 0 }), MINIDBX_ENOTFOUND);
    expect_no_secret(minidbx_errmsg(NULL));
    ck_assert_rc(minidbx_name_get(db, "no/such/name", &(minidbx_name_info){ 0 }), MINIDBX_ENOTFOUND);
    expect_no_secret(minidbx_errmsg(NULL));
    minidbx_store_info info;
    ck_assert_ok(minidbx_info(db, &info));
    ck_assert_str_eq(info.backend, "s3");
    ck_assert_str_eq(info.location, location);
    expect_no_secret(info.location);
    minidbx_close(db);
}
END_TEST

/* ---- ranged reads, through a relay ---- */

/* A relay on 127.0.0.1 between the library and the RGW (the endpoint the
 * tests point the library at): it passes bytes both ways unchanged (the
 * signature covers the Host header, which the client sets for the relay),
 * notes each Range a request asks for, and can drop one connection (a
 * reset) once cut_at bytes of replies have passed: a link that fails in
 * the middle of a range. */
#define RELAY_RANGES_MAX 256

static struct relay {
    int listen_fd;
    struct sockaddr_in engine;
    pthread_t thread;
    pthread_mutex_t lock;
    unsigned long long first[RELAY_RANGES_MAX], last[RELAY_RANGES_MAX];
    int ranges;
    int requests;              /* GETs */
    unsigned long long replied; /* reply bytes passed since relay_reset */
    unsigned long long cut_at;  /* 0: never */
    int cuts;
    unsigned long long lie_total; /* not 0: Content-Range totals are rewritten to this (a lying engine) */
    unsigned long long lie_length; /* not 0: replies re-framed in chunks that say this Content-Length */
} relay = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* With relay.lie_total: "Content-Range: bytes A-B/T" in buf becomes
 * ".../lie_total". Returns the new length (buf has room: the number only
 * gets shorter or stays within 20 digits). */
static size_t relay_lie(char *buf, size_t n, size_t room)
{
    char *p = memmem(buf, n, "Content-Range: bytes ", 21);
    char *slash = p ? memchr(p, '/', (size_t)(buf + n - p)) : NULL;
    if (!relay.lie_total || !slash)
        return n;
    char *end = slash + 1;
    while (end < buf + n && *end >= '0' && *end <= '9')
        end++;
    char number[24];
    int len = snprintf(number, sizeof number, "%llu", relay.lie_total);
    size_t tail = (size_t)(buf + n - end), at = (size_t)(slash + 1 - buf);
    if (at + (size_t)len + tail > room)
        return n;
    memmove(buf + at + len, end, tail);
    memcpy(buf + at, number, (size_t)len);
    return at + (size_t)len + tail;
}

static bool write_all(int fd, const void *data, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const char *)data + done, n - done);
        if (w <= 0)
            return false;
        done += (size_t)w;
    }
    return true;
}

/* A reply re-framed (relay.lie_length): its Content-Length line says
 * lie_length and "Transfer-Encoding: chunked" follows it; its body (of the
 * length the engine said) goes as one chunk per piece read, and "0" ends
 * it. curl then reads the chunks and takes no Content-Length as the
 * body's end: a body longer than its Content-Length says. */
struct reframe {
    char head[16384];
    size_t head_len;
    unsigned long long body_left;
    bool in_body;
};

/* Pass n bytes of a reply to client, re-framed. false: the link is down,
 * or the reply is not one to re-frame (headers too long, no length). */
static bool relay_reframe(struct reframe *f, int client, const char *data, size_t n)
{
    while (n > 0) {
        if (!f->in_body) {
            size_t take = n < sizeof f->head - f->head_len ? n : sizeof f->head - f->head_len;
            memcpy(f->head + f->head_len, data, take);
            char *end = memmem(f->head, f->head_len + take, "\r\n\r\n", 4);
            char *length = memmem(f->head, f->head_len + take, "\r\nContent-Length: ", 18);
            if (!end)
                f->head_len += take;
            if (!end && f->head_len < sizeof f->head)
                return true; /* the rest of the headers is still to come */
            if (!end || !length || length > end)
                return false;
            size_t head_end = (size_t)(end + 4 - f->head), used = head_end - f->head_len;
            f->body_left = strtoull(length + 18, NULL, 10);
            char *line_end = strstr(length + 2, "\r\n");
            char lie[128];
            int lie_len = snprintf(lie, sizeof lie, "\r\nContent-Length: %llu\r\nTransfer-Encoding: chunked",
                                   relay.lie_length);
            if (!write_all(client, f->head, (size_t)(length - f->head)) ||
                !write_all(client, lie, (size_t)lie_len) ||
                !write_all(client, line_end, head_end - (size_t)(line_end - f->head)))
                return false;
            f->head_len = 0;
            f->in_body = true;
            data += used;
            n -= used;
        } else {
            size_t piece = n < f->body_left ? n : (size_t)f->body_left;
            char size_line[32];
            int len = snprintf(size_line, sizeof size_line, "%zx\r\n", piece);
            if (!write_all(client, size_line, (size_t)len) || !write_all(client, data, piece) ||
                !write_all(client, "\r\n", 2))
                return false;
            f->body_left -= piece;
            data += piece;
            n -= piece;
        }
        if (f->body_left == 0) {
            f->in_body = false; /* the next reply's headers come next */
            if (!write_all(client, "0\r\n\r\n", 5))
                return false;
        }
    }
    return true;
}

static void relay_note_request(const char *data, size_t len)
{
    pthread_mutex_lock(&relay.lock);
    for (const char *p = data; p < data + len && (p = memmem(p, (size_t)(data + len - p), "GET /", 5)); p++)
        relay.requests++;
    const char *p = memmem(data, len, "\r\nRange: bytes=", 15);
    unsigned long long a, b;
    if (p && sscanf(p + 15, "%llu-%llu", &a, &b) == 2 && relay.ranges < RELAY_RANGES_MAX) {
        relay.first[relay.ranges] = a;
        relay.last[relay.ranges++] = b;
    }
    pthread_mutex_unlock(&relay.lock);
}

/* Count n reply bytes: true when this connection is to be cut now. */
static bool relay_replied(size_t n)
{
    pthread_mutex_lock(&relay.lock);
    relay.replied += n;
    bool cut = relay.cut_at && relay.replied >= relay.cut_at && relay.cuts == 0;
    if (cut)
        relay.cuts++;
    pthread_mutex_unlock(&relay.lock);
    return cut;
}

static void *relay_pipe(void *arg)
{
    int client = (int)(intptr_t)arg, engine = socket(AF_INET, SOCK_STREAM, 0);
    char buf[65536 + 64];
    struct reframe reframe = { .in_body = false };

    if (engine >= 0 && connect(engine, (struct sockaddr *)&relay.engine, sizeof relay.engine) == 0) {
        struct pollfd fds[2] = { { client, POLLIN, 0 }, { engine, POLLIN, 0 } };
        for (bool open = true; open && poll(fds, 2, 60000) > 0;) {
            for (int i = 0; i < 2 && open; i++) {
                if (!fds[i].revents)
                    continue;
                ssize_t n = read(fds[i].fd, buf, 65536);
                if (n <= 0) {
                    open = false;
                    break;
                }
                if (i == 0)
                    relay_note_request(buf, (size_t)n);
                else if (relay_replied((size_t)n)) {
                    /* the link fails: a reset, in the middle of a reply */
                    struct linger now = { 1, 0 };
                    setsockopt(client, SOL_SOCKET, SO_LINGER, &now, sizeof now);
                    open = false;
                    break;
                }
                if (i == 1 && relay.lie_length) {
                    open = relay_reframe(&reframe, client, buf, (size_t)n);
                    continue;
                }
                if (i == 1)
                    n = (ssize_t)relay_lie(buf, (size_t)n, sizeof buf);
                for (ssize_t done = 0; open && done < n;) {
                    ssize_t w = write(fds[1 - i].fd, buf + done, (size_t)(n - done));
                    open = w > 0;
                    done += w > 0 ? w : 0;
                }
            }
        }
    }
    if (engine >= 0)
        close(engine);
    close(client);
    return NULL;
}

static void *relay_accept(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(relay.listen_fd, NULL, NULL);
        if (fd < 0)
            return NULL; /* relay_stop shut it down */
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, relay_pipe, (void *)(intptr_t)fd), 0);
        pthread_detach(t);
    }
}

/* Start the relay in front of MINIDBX_S3_ENDPOINT and point the library at it. */
static void relay_start(void)
{
    char endpoint[64];
    unsigned port;
    ck_assert_int_eq(sscanf(need_env("MINIDBX_S3_ENDPOINT"), "http://127.0.0.1:%u", &port), 1);
    relay.engine = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int listen_port;
    relay.listen_fd = silent_listener(&listen_port);
    ck_assert_int_eq(pthread_create(&relay.thread, NULL, relay_accept, NULL), 0);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", listen_port);
    setenv("MINIDBX_S3_ENDPOINT", endpoint, 1);
}

static void relay_stop(void)
{
    shutdown(relay.listen_fd, SHUT_RDWR);
    pthread_join(relay.thread, NULL);
    close(relay.listen_fd);
}

static void relay_reset(unsigned long long cut_at)
{
    pthread_mutex_lock(&relay.lock);
    relay.ranges = relay.requests = relay.cuts = 0;
    relay.replied = relay.lie_total = relay.lie_length = 0;
    relay.cut_at = cut_at;
    pthread_mutex_unlock(&relay.lock);
}

/* A reader of a 6 MiB + 100 object asks for it in ranges of at most
 * MINIDBX_S3_RANGE_SIZE (1 MiB here), one after another, each starting
 * where the last one ended: 256 KiB (the first GET, which learns the size),
 * then 1 MiB ranges; the bytes are verified as before. Then the relay
 * resets the connection in the middle of a range: the reader asks again
 * from the byte where the reply broke off and the read succeeds. */
START_TEST(reader_ranges_resume)
{
    const uint64_t size = 6 * MIB + 100, range = 1 * MIB, first = 256 << 10;
    minidbx_id id, expect;
    uint64_t seed = seed_from_clock();

    setenv("MINIDBX_S3_RANGE_SIZE", "1048576", 1);
    fresh_location();
    relay_start();
    minidbx *db = open_s3();
    id = write_seeded(db, seed, size, &expect);

    relay_reset(0);
    read_seeded(db, &id, seed, size);
    int ranges = relay.ranges;
    printf("ranged read: %d GETs, %d with a Range:", relay.requests, ranges);
    for (int i = 0; i < ranges; i++)
        printf(" %llu-%llu", relay.first[i], relay.last[i]);
    printf("\n");
    ck_assert_int_eq(ranges, 1 + (int)((size - first + range - 1) / range));
    ck_assert_int_eq(relay.requests, ranges);
    ck_assert_uint_eq(relay.first[0], 0);
    ck_assert_uint_eq(relay.last[0], first - 1);
    for (int i = 1; i < ranges; i++) {
        ck_assert_uint_eq(relay.first[i], relay.last[i - 1] + 1);
        ck_assert_uint_le(relay.last[i] - relay.first[i] + 1, range);
    }
    ck_assert_uint_eq(relay.last[ranges - 1], size - 1);

    /* a reset 2.5 MiB into the replies: in the third range */
    relay_reset(5 * MIB / 2);
    read_seeded(db, &id, seed, size);
    ranges = relay.ranges;
    printf("with a reset: %d cut, %d ranges:", relay.cuts, ranges);
    for (int i = 0; i < ranges; i++)
        printf(" %llu-%llu", relay.first[i], relay.last[i]);
    printf("\n");
    ck_assert_int_eq(relay.cuts, 1);
    ck_assert_int_eq(ranges, 1 + (int)((size - first + range - 1) / range) + 1);
    bool resumed = false;
    for (int i = 1; i < ranges; i++) {
        ck_assert_uint_le(relay.first[i], relay.last[i - 1] + 1);
        /* the resumed one starts in the middle of the one that broke off */
        resumed |= relay.first[i] > relay.first[i - 1] && relay.first[i] <= relay.last[i - 1];
    }
    ck_assert_msg(resumed, "no range started where another broke off");
    ck_assert_uint_eq(relay.last[ranges - 1], size - 1);
    ck_assert_ok(minidbx_delete(db, &id));
    minidbx_close(db);
    relay_stop();
}
END_TEST

/* An engine (or a man in the middle of plain http) whose first reply, a
 * 206 of 256 KiB, says the object has 1,000 bytes: the reader must not
 * open (it would hand out 256 KiB that no hash has covered, as the first
 * 1,000 bytes of an object that the caller reads to its size). */
START_TEST(reader_refuses_a_lying_range)
{
    const uint64_t size = 2 * MIB;
    minidbx_id id, expect;
    minidbx_reader *reader = NULL;
    uint64_t seed = seed_from_clock(), got_size = 0;

    setenv("MINIDBX_S3_RANGE_SIZE", "1048576", 1);
    fresh_location();
    relay_start();
    minidbx *db = open_s3();
    id = write_seeded(db, seed, size, &expect);
    relay_reset(0);
    pthread_mutex_lock(&relay.lock);
    relay.lie_total = 1000;
    pthread_mutex_unlock(&relay.lock);
    int rc = minidbx_reader_open(db, &id, &reader, &got_size);
    printf("a 206 of 256 KiB that says the object has 1,000 bytes: %s (%s)\n", minidbx_strerror(rc),
           minidbx_errmsg(db));
    ck_assert_int_eq(rc, MINIDBX_EIO);
    ck_assert_ptr_null(reader);
    relay_reset(0);
    read_seeded(db, &id, seed, size); /* the truth reads as before */
    minidbx_close(db);
    relay_stop();
    unsetenv("MINIDBX_S3_RANGE_SIZE");
}
END_TEST

/* A reply whose body is longer than its Content-Length says (chunked, and
 * a Content-Length of 300,000 for an object of 1 MiB, through the relay): a
 * get reserves room for 300,000 bytes at the headers (remote.c: on_header)
 * and the body outgrows it; every byte is still hashed, whatever the
 * Content-Length said. The bytes are the object's, so they read; a copy in
 * the engine with a byte flipped past those 300,000 is ECORRUPT. */
START_TEST(get_longer_than_its_length)
{
    const size_t size = MIB;
    test_rng rng;
    char key[128];
    void *data = NULL, *got = NULL;
    size_t data_size = 0, got_size = 0;

    fresh_location();
    relay_start();
    minidbx *db = open_s3();
    rng_seed(&rng, seed_from_clock());
    minidbx_id id = store_put_random(db, &rng, size);
    ck_assert_ok(minidbx_get(db, &id, &data, &data_size));

    relay_reset(0);
    pthread_mutex_lock(&relay.lock);
    relay.lie_length = 300000;
    pthread_mutex_unlock(&relay.lock);
    ck_assert_ok(minidbx_get(db, &id, &got, &got_size));
    ck_assert_int_eq(relay.requests, 1);
    ck_assert_uint_eq(got_size, size);
    ck_assert_mem_eq(got, data, size);
    minidbx_free(got);
    got = NULL;

    relay_reset(0);
    ((unsigned char *)data)[size - 10] ^= 0x20;
    object_key(&id, key);
    engine_put_bytes(key, data, size);
    pthread_mutex_lock(&relay.lock);
    relay.lie_length = 300000;
    pthread_mutex_unlock(&relay.lock);
    ck_assert_rc(minidbx_get(db, &id, &got, &got_size), MINIDBX_ECORRUPT);
    ck_assert_ptr_null(got);
    ck_assert_int_eq(relay.requests, 1);
    relay_reset(0);
    minidbx_free(data);
    minidbx_close(db);
    relay_stop();
}
END_TEST

static Suite *s3_suite(void)
{
    Suite *s = suite_create("s3");
    TCase *tc = tcase_create("s3");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_test(tc, roundtrip_sizes);
    tcase_add_test(tc, roundtrip_copied_in_parts);
    tcase_add_test(tc, listing_pages);
    tcase_add_test(tc, missing_heads_and_listing);
    tcase_add_test(tc, writer_abort_leaves_no_upload);
    tcase_add_test(tc, kill_mid_multipart);
    tcase_add_test(tc, names_refs_delete_gc);
    tcase_add_test(tc, verify_finds_and_repairs);
    tcase_add_test(tc, verify_repair_keeps_healed);
    tcase_add_test(tc, verify_repair_keeps_names_of_healed);
    tcase_add_test(tc, corrupt_object_refused);
    tcase_add_test(tc, reader_ranges_resume);
    tcase_add_test(tc, reader_refuses_a_lying_range);
    tcase_add_test(tc, get_longer_than_its_length);
    tcase_add_test(tc, wrong_secret);
    tcase_add_test(tc, missing_bucket);
    tcase_add_test(tc, engine_down);
    tcase_add_test(tc, engine_hangs);
    suite_add_tcase(s, tc);
    TCase *races = tcase_create("s3-races"); /* a name set and a remover, each held at its worst moment */
    tcase_set_timeout(races, TEST_TIMEOUT_S);
    tcase_add_loop_test(races, name_set_racing_gc, REMOVER_CHECKED, RACES);
    tcase_add_loop_test(races, name_set_racing_delete, REMOVER_CHECKED, RACES);
    tcase_add_loop_test(races, name_set_racing_cascade, REMOVER_CHECKED, RACES);
    tcase_add_loop_test(races, name_set_again_racing_cascade, REMOVER_CHECKED, RACES);
    tcase_add_test(races, stale_marks_are_removed);
    suite_add_tcase(s, races);
    TCase *big = tcase_create("s3-big");
    tcase_set_timeout(big, TEST_TIMEOUT_LONG_S);
    tcase_add_test(big, roundtrip_100mib);
    tcase_add_test(big, read_100mib_bounded);
    suite_add_tcase(s, big);
    return s;
}

int main(void)
{
    return run_suite(s3_suite());
}
