/* test_verify.c - every read from disk is checked against the id: a flipped
 * byte in a blob file or in an inline value (changed with raw LMDB) gives
 * MINIDBX_ECORRUPT from get, readers and get_fd; verify reports it, repair
 * removes it, a second verify is clean. Also: a missing blob file, a stray
 * blob file (orphan), a temp file left by a writer that died, an orphan walk
 * that must not leave the store. */
#include "util.h"

#include <fcntl.h>
#include <lmdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define THRESHOLD MINIDBX_DEFAULT_INLINE_THRESHOLD
#define INLINE_HEADER_SIZE 40

/* ---- raw LMDB: flip a byte of an inline object's bytes ---- */

static void lmdb_check(int rc, const char *what)
{
    ck_assert_msg(rc == MDB_SUCCESS, "raw LMDB %s: %s", what, mdb_strerror(rc));
}

typedef enum { RECORD_FLIP_LAST_BYTE, RECORD_DELETE } record_edit;

/* Edit the "objects" record of id with raw LMDB. The store must be closed:
 * LMDB forbids two environments on one file in one process. For an inline
 * object the value is a 40-byte header and then its `size` bytes. */
/* A write transaction on the store's meta.lmdb, and its table named table. */
static MDB_env *raw_begin(const char *store, const char *table, unsigned flags, MDB_txn **txn, MDB_dbi *dbi)
{
    char path[PATH_MAX];
    store_path(store, "meta.lmdb", path);
    MDB_env *env;
    lmdb_check(mdb_env_create(&env), "env_create");
    lmdb_check(mdb_env_set_maxdbs(env, 16), "set_maxdbs");
    lmdb_check(mdb_env_open(env, path, MDB_NOSUBDIR, 0644), "env_open");
    lmdb_check(mdb_txn_begin(env, NULL, 0, txn), "txn_begin");
    lmdb_check(mdb_dbi_open(*txn, table, flags, dbi), "dbi_open");
    return env;
}

static void edit_object_record(const char *store, const minidbx_id *id, size_t size, record_edit edit)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_env *env = raw_begin(store, "objects", 0, &txn, &dbi);
    MDB_val key = {MINIDBX_ID_SIZE, (void *)id->bytes};
    MDB_val value;
    lmdb_check(mdb_get(txn, dbi, &key, &value), "get record");
    if (edit == RECORD_DELETE) {
        lmdb_check(mdb_del(txn, dbi, &key, NULL), "del record");
    } else {
        ck_assert_msg(value.mv_size == INLINE_HEADER_SIZE + size,
                      "inline record of a %zu-byte object is %zu bytes (expected header %d + bytes)",
                      size, value.mv_size, INLINE_HEADER_SIZE);
        unsigned char *copy = malloc(value.mv_size);
        memcpy(copy, value.mv_data, value.mv_size);
        copy[value.mv_size - 1] ^= 0xff;
        MDB_val changed = {value.mv_size, copy};
        lmdb_check(mdb_put(txn, dbi, &key, &changed, 0), "put record");
        free(copy);
    }
    lmdb_check(mdb_txn_commit(txn), "commit");
    mdb_env_close(env);
}

static void corrupt_inline_value(const char *store, const minidbx_id *id, size_t size)
{
    edit_object_record(store, id, size, RECORD_FLIP_LAST_BYTE);
}

/* ---- fixtures: one inline and one file object corrupted, one good ---- */

typedef struct {
    minidbx_id bad_inline, bad_file, good_inline, good_file;
    unsigned char *bad_inline_data, *bad_file_data;
    size_t inline_size, file_size;
} corrupted_store;

static void corrupt_two_objects(corrupted_store *cs)
{
    test_rng rng;
    rng_seed(&rng, 41);
    cs->inline_size = 1000;
    cs->file_size = THRESHOLD * 3;
    cs->bad_inline_data = rng_alloc(&rng, cs->inline_size);
    cs->bad_file_data = rng_alloc(&rng, cs->file_size);
    ck_assert_ok(minidbx_put(fx_db, cs->bad_inline_data, cs->inline_size, &cs->bad_inline));
    ck_assert_ok(minidbx_put(fx_db, cs->bad_file_data, cs->file_size, &cs->bad_file));
    cs->good_inline = store_put_random(fx_db, &rng, 500);
    cs->good_file = store_put_random(fx_db, &rng, THRESHOLD * 2);
    ck_assert_ok(minidbx_name_set(fx_db, "points/at/bad", &cs->bad_inline));
    minidbx_close(fx_db);
    fx_db = NULL;

    char blob[PATH_MAX];
    store_blob_path(fx_dir, &cs->bad_file, blob);
    ck_assert_msg(file_flip_byte(blob, -1) == 0, "cannot flip a byte of %s", blob);
    corrupt_inline_value(fx_dir, &cs->bad_inline, cs->inline_size);
    fixture_reopen(0);
}

static void free_corrupted(corrupted_store *cs)
{
    free(cs->bad_inline_data);
    free(cs->bad_file_data);
}

static void expect_get_corrupt(const minidbx_id *id)
{
    void *data = (void *)1;
    size_t size = 0;
    ck_assert_rc(minidbx_get(fx_db, id, &data, &size), MINIDBX_ECORRUPT);
    ck_assert_str_ne(minidbx_errmsg(fx_db), "");
}

/* A reader may hand out bytes, but must end in ECORRUPT, never in 0. */
static void expect_reader_corrupt(const minidbx_id *id, size_t capacity)
{
    minidbx_reader *r = NULL;
    int rc = minidbx_reader_open(fx_db, id, &r, NULL);
    if (rc == MINIDBX_ECORRUPT)
        return; /* refusing up front is fine too */
    ck_assert_ok(rc);
    unsigned char *buf = malloc(capacity);
    size_t got = 0;
    int reads = 0;
    while ((rc = minidbx_reader_read(r, buf, capacity, &got)) == 0) {
        ck_assert_msg(got > 0, "reader of a corrupt object reached a clean end");
        ck_assert_int_lt(++reads, 1 << 20);
    }
    ck_assert_rc(rc, MINIDBX_ECORRUPT);
    minidbx_reader_close(r);
    free(buf);
}

static void expect_get_fd_corrupt(const minidbx_id *id)
{
    char path[PATH_MAX];
    store_path(fx_dir, "out", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_rc(minidbx_get_fd(fx_db, id, fd), MINIDBX_ECORRUPT);
    close(fd);
    unlink(path);
}

START_TEST(corrupt_reads_fail)
{
    corrupted_store cs;
    corrupt_two_objects(&cs);
    const minidbx_id *bad[2] = {&cs.bad_inline, &cs.bad_file};
    for (int i = 0; i < 2; i++) {
        expect_get_corrupt(bad[i]);
        expect_reader_corrupt(bad[i], 1 << 20);
        expect_reader_corrupt(bad[i], 100);
        expect_get_fd_corrupt(bad[i]);
    }
    const minidbx_id *good[2] = {&cs.good_inline, &cs.good_file};
    for (int i = 0; i < 2; i++) {
        void *data = NULL;
        size_t size = 0;
        ck_assert_ok(minidbx_get(fx_db, good[i], &data, &size));
        minidbx_free(data);
    }
    free_corrupted(&cs);
}
END_TEST

/* The names a repair reports removed, in the order it reports them. */
typedef struct {
    problem_log log;
    char names[4][64];
    minidbx_id ids[4];
    int count;
    minidbx_problem after; /* the kind reported just before the first name */
    minidbx_problem last;
} removed_names;

static void removed_names_cb(void *ctx, minidbx_problem kind, const minidbx_id *id, const char *detail,
                             int repaired)
{
    removed_names *r = ctx;
    problem_log_cb(&r->log, kind, id, detail, repaired);
    if (kind == MINIDBX_PROBLEM_NAME_REMOVED) {
        ck_assert_int_lt(r->count, 4);
        ck_assert_ptr_nonnull(id);
        ck_assert_int_eq(repaired, 1);
        if (r->count == 0)
            r->after = r->last;
        snprintf(r->names[r->count], sizeof r->names[0], "%s", detail);
        r->ids[r->count++] = *id;
    }
    r->last = kind;
}

static int removed_names_has(const removed_names *r, const char *name, const minidbx_id *id)
{
    for (int i = 0; i < r->count; i++)
        if (strcmp(r->names[i], name) == 0 && minidbx_id_equal(&r->ids[i], id))
            return 1;
    return 0;
}

/* Repair removes a corrupt object with its names, and says which names:
 * one NAME_REMOVED each (after its object's CORRUPT), not counted as
 * problems; a name of a sound object is neither removed nor reported. */
START_TEST(repair_reports_removed_names)
{
    corrupted_store cs;
    corrupt_two_objects(&cs); /* "points/at/bad" names bad_inline */
    ck_assert_ok(minidbx_name_set(fx_db, "also/bad", &cs.bad_file));
    ck_assert_ok(minidbx_name_set(fx_db, "also/bad/too", &cs.bad_file));
    ck_assert_ok(minidbx_name_set(fx_db, "good", &cs.good_file));

    removed_names dry = { 0 };
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, removed_names_cb, &dry));
    ck_assert_int_eq(dry.count, 0); /* without REPAIR, nothing removed */

    removed_names r = { 0 };
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, removed_names_cb, &r));
    ck_assert_uint_eq(report.problems, 2);
    ck_assert_uint_eq(report.repaired, 2);
    ck_assert_int_eq(r.count, 3);
    ck_assert_uint_eq(r.log.count[MINIDBX_PROBLEM_NAME_REMOVED], 3);
    ck_assert(removed_names_has(&r, "points/at/bad", &cs.bad_inline));
    ck_assert(removed_names_has(&r, "also/bad", &cs.bad_file));
    ck_assert(removed_names_has(&r, "also/bad/too", &cs.bad_file));
    ck_assert_int_eq(r.after, MINIDBX_PROBLEM_CORRUPT);
    minidbx_name_info name;
    ck_assert_rc(minidbx_name_get(fx_db, "also/bad", &name), MINIDBX_ENOTFOUND);
    ck_assert_ok(minidbx_name_get(fx_db, "good", &name));
    ck_assert(minidbx_id_equal(&name.id, &cs.good_file));

    /* one id: its names only */
    ck_assert_ok(minidbx_put(fx_db, cs.bad_file_data, cs.file_size, NULL));
    ck_assert_ok(minidbx_name_set(fx_db, "again/bad", &cs.bad_file));
    char blob[PATH_MAX];
    store_blob_path(fx_dir, &cs.bad_file, blob);
    ck_assert_int_eq(unlink(blob), 0);
    removed_names one = { 0 };
    ck_assert_ok(minidbx_verify(fx_db, &cs.bad_file, MINIDBX_VERIFY_REPAIR, &report, removed_names_cb, &one));
    ck_assert_uint_eq(report.problems, 1);
    ck_assert_int_eq(one.count, 1);
    ck_assert(removed_names_has(&one, "again/bad", &cs.bad_file));
    ck_assert_int_eq(one.after, MINIDBX_PROBLEM_MISSING);
    ck_assert_ok(minidbx_name_get(fx_db, "good", &name));
    free_corrupted(&cs);
}
END_TEST

/* Add a refs entry (id -> name) with raw LMDB (the store closed): the
 * name's own object is another one. */
static void add_stray_ref(const char *store, const minidbx_id *id, const char *name)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_env *env = raw_begin(store, "refs", MDB_DUPSORT, &txn, &dbi);
    MDB_val key = { MINIDBX_ID_SIZE, (void *)id->bytes }, value = { strlen(name), (void *)name };
    lmdb_check(mdb_put(txn, dbi, &key, &value, MDB_NODUPDATA), "put ref");
    lmdb_check(mdb_txn_commit(txn), "commit");
    mdb_env_close(env);
}

/* A stray refs entry from a corrupt object to a name of a sound one: the
 * repair removes the corrupt object and its own name, never that name. */
START_TEST(repair_keeps_a_name_of_another_object)
{
    corrupted_store cs;
    corrupt_two_objects(&cs); /* "points/at/bad" names bad_inline; the store reopened */
    ck_assert_ok(minidbx_name_set(fx_db, "good", &cs.good_file));
    minidbx_close(fx_db);
    fx_db = NULL;
    add_stray_ref(fx_dir, &cs.bad_inline, "good");
    fixture_reopen(0);

    removed_names r = { 0 };
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, removed_names_cb, &r));
    ck_assert_int_eq(r.count, 1);
    ck_assert(removed_names_has(&r, "points/at/bad", &cs.bad_inline));
    minidbx_name_info name;
    ck_assert_ok(minidbx_name_get(fx_db, "good", &name));
    ck_assert(minidbx_id_equal(&name.id, &cs.good_file));
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
    free_corrupted(&cs);
}
END_TEST

START_TEST(verify_reports_repairs_then_clean)
{
    corrupted_store cs;
    corrupt_two_objects(&cs);

    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.objects_checked, 4);
    ck_assert_uint_eq(report.problems, 2);
    ck_assert_uint_eq(report.repaired, 0);
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_CORRUPT], 2);
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_CORRUPT, &cs.bad_inline));
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_CORRUPT, &cs.bad_file));
    ck_assert_uint_eq(log.repaired[MINIDBX_PROBLEM_CORRUPT], 0);
    /* without repair, nothing changed */
    ck_assert_int_eq(minidbx_exists(fx_db, &cs.bad_inline), 1);
    ck_assert_int_eq(minidbx_exists(fx_db, &cs.bad_file), 1);

    /* one id at a time */
    problem_log one = {0};
    ck_assert_ok(minidbx_verify(fx_db, &cs.bad_file, 0, &report, problem_log_cb, &one));
    ck_assert_uint_eq(report.objects_checked, 1);
    ck_assert_uint_eq(report.problems, 1);
    ck_assert(problem_log_has(&one, MINIDBX_PROBLEM_CORRUPT, &cs.bad_file));
    ck_assert_ok(minidbx_verify(fx_db, &cs.good_file, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
    minidbx_id ghost;
    memset(&ghost, 7, sizeof ghost);
    ck_assert_rc(minidbx_verify(fx_db, &ghost, 0, &report, NULL, NULL), MINIDBX_ENOTFOUND);

    problem_log fixed = {0};
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, problem_log_cb, &fixed));
    ck_assert_uint_eq(report.problems, 2);
    ck_assert_uint_eq(report.repaired, 2);
    ck_assert_uint_eq(fixed.repaired[MINIDBX_PROBLEM_CORRUPT], 2);
    ck_assert_int_eq(minidbx_exists(fx_db, &cs.bad_inline), 0);
    ck_assert_int_eq(minidbx_exists(fx_db, &cs.bad_file), 0);
    minidbx_name_info name;
    ck_assert_rc(minidbx_name_get(fx_db, "points/at/bad", &name), MINIDBX_ENOTFOUND);
    char blob[PATH_MAX];
    store_blob_path(fx_dir, &cs.bad_file, blob);
    ck_assert_msg(!path_exists(blob), "repair left %s", blob);
    ck_assert_int_eq(minidbx_exists(fx_db, &cs.good_inline), 1);
    ck_assert_int_eq(minidbx_exists(fx_db, &cs.good_file), 1);

    problem_log after = {0};
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &after));
    ck_assert_uint_eq(report.problems, 0);
    ck_assert_uint_eq(after.total, 0);
    ck_assert_uint_eq(report.objects_checked, 2);
    ck_assert_uint_eq(report.bytes_checked, 500 + THRESHOLD * 2);
    /* the corrupt bytes can be put again and are whole */
    ck_assert_ok(minidbx_put(fx_db, cs.bad_file_data, cs.file_size, NULL));
    store_expect_bytes(fx_db, &cs.bad_file, cs.bad_file_data, cs.file_size);
    free_corrupted(&cs);
}
END_TEST

/* NO_VERIFY trusts the disk: documented, so get succeeds on wrong bytes. */
START_TEST(no_verify_skips_hash)
{
    corrupted_store cs;
    corrupt_two_objects(&cs);
    fixture_reopen(MINIDBX_OPEN_NO_VERIFY);
    void *data = NULL;
    size_t size = 0;
    ck_assert_ok(minidbx_get(fx_db, &cs.bad_file, &data, &size));
    ck_assert_uint_eq(size, cs.file_size);
    minidbx_free(data);
    /* verify still hashes */
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 2);
    free_corrupted(&cs);
}
END_TEST

START_TEST(missing_blob_file)
{
    test_rng rng;
    rng_seed(&rng, 42);
    minidbx_id id = store_put_random(fx_db, &rng, THRESHOLD * 2);
    minidbx_id keep = store_put_random(fx_db, &rng, THRESHOLD * 2);
    char blob[PATH_MAX];
    store_blob_path(fx_dir, &id, blob);
    ck_assert_int_eq(unlink(blob), 0);

    void *data = NULL;
    size_t size = 0;
    int rc = minidbx_get(fx_db, &id, &data, &size);
    ck_assert_msg(rc == MINIDBX_ECORRUPT || rc == MINIDBX_EIO || rc == MINIDBX_ENOTFOUND,
                  "get with its blob file gone: %d (%s)", rc, minidbx_strerror(rc));
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.problems, 1);
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_MISSING, &id));
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL));
    ck_assert_uint_eq(report.repaired, 1);
    ck_assert_int_eq(minidbx_exists(fx_db, &id), 0);
    ck_assert_int_eq(minidbx_exists(fx_db, &keep), 1);
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
}
END_TEST

/* ---- blobs/ unavailable for a moment: a disk not mounted, a tree moved ---- */

#define AWAY_OBJECTS 3

typedef enum {
    BLOBS_MOVED,
    BLOBS_EMPTY,     /* an empty mountpoint */
    BLOBS_PUT_UNDER, /* the same, with the first object's shard made in it, as a put there would */
    SHARD_MOVED      /* the first object's shard directory */
} blobs_away;

typedef struct {
    problem_log log;
    unsigned left; /* MISSING, not repaired, saying why */
} away_log;

static void away_cb(void *ctx, minidbx_problem kind, const minidbx_id *id, const char *detail, int repaired)
{
    away_log *a = ctx;
    problem_log_cb(&a->log, kind, id, detail, repaired);
    if (kind == MINIDBX_PROBLEM_MISSING && !repaired && detail && strstr(detail, ": not repaired") &&
        strstr(detail, "; is the disk mounted?"))
        a->left++;
}

/* A repair while blobs/ (or one shard directory) is away reports each
 * object there MISSING and leaves it, record and names: once the
 * directory is back, every object reads right, verify is clean and gc
 * (no grace) removes nothing, neither a record nor a blob file. */
static void repair_with_blobs_away(blobs_away how)
{
    test_rng rng;
    rng_seed(&rng, 43);
    const size_t size = THRESHOLD * 2 + 1;
    minidbx_id ids[AWAY_OBJECTS];
    unsigned char *data[AWAY_OBJECTS];
    char name[32], from[PATH_MAX], to[PATH_MAX], blob[PATH_MAX], shard[PATH_MAX];
    for (int i = 0; i < AWAY_OBJECTS; i++) {
        data[i] = rng_alloc(&rng, size);
        ck_assert_ok(minidbx_put(fx_db, data[i], size, &ids[i]));
        snprintf(name, sizeof name, "docs/f%d", i);
        ck_assert_ok(minidbx_name_set(fx_db, name, &ids[i]));
    }
    if (how == SHARD_MOVED) { /* blobs/ab/cd of the first object */
        store_blob_path(fx_dir, &ids[0], from);
        *strrchr(from, '/') = '\0';
    } else {
        store_path(fx_dir, "blobs", from);
    }
    unsigned away = 0;
    for (int i = 0; i < AWAY_OBJECTS; i++) {
        store_blob_path(fx_dir, &ids[i], blob);
        away += strncmp(blob, from, strlen(from)) == 0 && blob[strlen(from)] == '/';
    }
    store_path(fx_dir, "away", to);
    ck_assert_int_eq(rename(from, to), 0);
    if (how == BLOBS_EMPTY || how == BLOBS_PUT_UNDER)
        ck_assert_int_eq(mkdir(from, 0755), 0);
    store_blob_path(fx_dir, &ids[0], shard);
    *strrchr(shard, '/') = '\0'; /* blobs/ab/cd */
    if (how == BLOBS_PUT_UNDER) {
        *strrchr(shard, '/') = '\0';
        ck_assert_int_eq(mkdir(shard, 0755), 0);
        shard[strlen(shard)] = '/';
        ck_assert_int_eq(mkdir(shard, 0755), 0);
    }

    away_log a = { 0 };
    minidbx_verify_report report = { 0 };
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, away_cb, &a));
    ck_assert_uint_eq(report.problems, away);
    ck_assert_uint_eq(report.repaired, 0);
    ck_assert_uint_eq(a.log.count[MINIDBX_PROBLEM_MISSING], away);
    ck_assert_uint_eq(a.left, away);
    ck_assert_uint_eq(a.log.count[MINIDBX_PROBLEM_NAME_REMOVED], 0);
    for (int i = 0; i < AWAY_OBJECTS; i++) {
        minidbx_name_info info;
        snprintf(name, sizeof name, "docs/f%d", i);
        ck_assert_ok(minidbx_name_get(fx_db, name, &info));
        ck_assert(minidbx_id_equal(&info.id, &ids[i]));
        /* The record is there: a local stat reads it alone (exists looks
         * at the blob too); a node's HEAD finds no bytes: ECORRUPT. */
        minidbx_object_info record;
        int rc = minidbx_stat(fx_db, &ids[i], &record);
        ck_assert_msg(rc == 0 || rc == MINIDBX_ECORRUPT, "stat: %s", minidbx_strerror(rc));
        ck_assert(rc != 0 || record.refs == 1);
    }

    /* the directory is back */
    if (how == BLOBS_PUT_UNDER) {
        ck_assert_int_eq(rmdir(shard), 0);
        *strrchr(shard, '/') = '\0';
        ck_assert_int_eq(rmdir(shard), 0);
    }
    if (how == BLOBS_EMPTY || how == BLOBS_PUT_UNDER)
        ck_assert_int_eq(rmdir(from), 0);
    ck_assert_int_eq(rename(to, from), 0);
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &a.log));
    ck_assert_uint_eq(report.problems, 0);
    minidbx_gc_options now = { 0, 0, NULL, NULL };
    minidbx_gc_report gc = { 0 };
    ck_assert_ok(minidbx_gc_ex(fx_db, &now, &gc));
    ck_assert_uint_eq(gc.objects_removed, 0);
    for (int i = 0; i < AWAY_OBJECTS; i++) {
        void *got = NULL;
        size_t got_size = 0;
        store_blob_path(fx_dir, &ids[i], blob);
        ck_assert_msg(path_exists(blob), "gc removed %s", blob);
        ck_assert_ok(minidbx_get(fx_db, &ids[i], &got, &got_size));
        ck_assert_uint_eq(got_size, size);
        ck_assert(memcmp(got, data[i], size) == 0);
        minidbx_free(got);
        free(data[i]);
    }
}

START_TEST(repair_with_blobs_moved_away)
{
    repair_with_blobs_away(BLOBS_MOVED);
}
END_TEST

START_TEST(repair_with_blobs_an_empty_mountpoint)
{
    repair_with_blobs_away(BLOBS_EMPTY);
}
END_TEST

/* A put while the disk is not mounted made a shard directory below the
 * mountpoint: the first object's file is "missing" from a directory that
 * is there, but other directories are missing: it is kept too. */
START_TEST(repair_with_a_shard_made_below_the_mountpoint)
{
    repair_with_blobs_away(BLOBS_PUT_UNDER);
}
END_TEST

START_TEST(repair_with_a_shard_directory_away)
{
    repair_with_blobs_away(SHARD_MOVED);
}
END_TEST

/* A blob file cut short: never handed out as the object. */
START_TEST(truncated_blob_file)
{
    test_rng rng;
    rng_seed(&rng, 46);
    minidbx_id id = store_put_random(fx_db, &rng, THRESHOLD * 4);
    char blob[PATH_MAX];
    store_blob_path(fx_dir, &id, blob);
    ck_assert_int_eq(truncate(blob, THRESHOLD), 0);
    void *data = NULL;
    size_t size = 0;
    int rc = minidbx_get(fx_db, &id, &data, &size);
    ck_assert_msg(rc == MINIDBX_ECORRUPT || rc == MINIDBX_EIO, "get of a truncated blob: %d (%s)", rc,
                  minidbx_strerror(rc));
    expect_reader_corrupt(&id, 1 << 20);
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.problems, 1);
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_CORRUPT, &id) || problem_log_has(&log, MINIDBX_PROBLEM_MISSING, &id));
}
END_TEST

START_TEST(orphan_blob_file)
{
    test_rng rng;
    rng_seed(&rng, 43);
    minidbx_id keep = store_put_random(fx_db, &rng, THRESHOLD * 2);
    /* a blob file with a valid name and matching bytes but no record */
    size_t size = THRESHOLD * 2;
    unsigned char *data = rng_alloc(&rng, size);
    minidbx_id stray;
    sha256_raw(data, size, &stray);
    char blob[PATH_MAX], dir[PATH_MAX];
    store_blob_path(fx_dir, &stray, blob);
    snprintf(dir, sizeof dir, "%s", blob);
    *strrchr(dir, '/') = '\0';
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(file_write_all(blob, data, size), 0);

    ck_assert_int_eq(minidbx_exists(fx_db, &stray), 0);
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_ORPHAN], 1);
    ck_assert_uint_eq(report.problems, 1);
    ck_assert(path_exists(blob));
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.repaired, 1);
    ck_assert_msg(!path_exists(blob), "repair left the orphan %s", blob);
    ck_assert_int_eq(minidbx_exists(fx_db, &keep), 1);
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
    free(data);
}
END_TEST

/* A name whose object record vanished (raw LMDB): DANGLING, repaired. */
START_TEST(dangling_name)
{
    minidbx_id id, keep;
    ck_assert_ok(minidbx_put(fx_db, "pointed at", 10, &id));
    ck_assert_ok(minidbx_put(fx_db, "kept", 4, &keep));
    ck_assert_ok(minidbx_name_set(fx_db, "dangles", &id));
    ck_assert_ok(minidbx_name_set(fx_db, "fine", &keep));
    minidbx_close(fx_db);
    fx_db = NULL;
    edit_object_record(fx_dir, &id, 10, RECORD_DELETE);
    fixture_reopen(0);

    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_ge(log.count[MINIDBX_PROBLEM_DANGLING], 1);
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_CORRUPT] + log.count[MINIDBX_PROBLEM_MISSING], 0);
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL));
    ck_assert_uint_eq(report.repaired, report.problems);
    minidbx_name_info name;
    ck_assert_rc(minidbx_name_get(fx_db, "dangles", &name), MINIDBX_ENOTFOUND);
    ck_assert_ok(minidbx_name_get(fx_db, "fine", &name));
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(report.problems, 0);
    minidbx_object_info info;
    ck_assert_ok(minidbx_stat(fx_db, &keep, &info));
    ck_assert_uint_eq(info.refs, 1);
}
END_TEST

/* ---- a writer that dies with its temp file in tmp/ ---- */

static void dying_writer(const char *dir, int ready_fd)
{
    minidbx *db = NULL;
    if (minidbx_open(&db, dir, NULL) != 0)
        _exit(2);
    minidbx_writer *w = NULL;
    if (minidbx_writer_open(db, &w) != 0)
        _exit(3);
    test_rng rng;
    rng_seed(&rng, 44);
    static unsigned char chunk[1 << 16];
    for (int i = 0; i < 16; i++) { /* 1 MiB: far past the inline threshold */
        rng_fill(&rng, chunk, sizeof chunk);
        if (minidbx_writer_write(w, chunk, sizeof chunk) != 0)
            _exit(4);
    }
    if (write(ready_fd, "r", 1) != 1)
        _exit(5);
    pause();
    _exit(6);
}

START_TEST(temp_file_of_dead_writer_swept)
{
    minidbx_close(fx_db);
    fx_db = NULL;
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(ready[0]);
        dying_writer(fx_dir, ready[1]);
    }
    close(ready[1]);
    char c = 0;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    close(ready[0]);
    fixture_reopen(0); /* opened while the writer lives */
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);

    char tmp[PATH_MAX];
    store_path(fx_dir, "tmp", tmp);
    ck_assert_int_ge(dir_count_entries(tmp), 1);
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_ge(log.count[MINIDBX_PROBLEM_TEMP], 1);
    ck_assert_uint_eq(log.total, log.count[MINIDBX_PROBLEM_TEMP]);

    fixture_reopen(0);
    ck_assert_msg(dir_count_entries(tmp) == 0, "open left %ld files in tmp/", dir_count_entries(tmp));
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
}
END_TEST

/* A live writer's temp file is not swept by another handle's open. */
START_TEST(temp_file_of_live_writer_kept)
{
    minidbx_writer *w = NULL;
    ck_assert_ok(minidbx_writer_open(fx_db, &w));
    test_rng rng;
    rng_seed(&rng, 45);
    unsigned char *data = rng_alloc(&rng, 1 << 20);
    ck_assert_ok(minidbx_writer_write(w, data, 1 << 20));
    pid_t pid = fork(); /* another process opens the store meanwhile */
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        minidbx *other = NULL;
        int rc = minidbx_open(&other, fx_dir, NULL);
        minidbx_close(other);
        _exit(rc == 0 ? 0 : 1);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    minidbx_id id, ref;
    ck_assert_ok(minidbx_writer_commit(w, &id));
    sha256_raw(data, 1 << 20, &ref);
    ck_assert(minidbx_id_equal(&id, &ref));
    store_expect_bytes(fx_db, &id, data, 1 << 20);
    free(data);
}
END_TEST


/* ---- the last byte is checked before it is delivered (issue 8) ---- */

static void expect_clean(void)
{
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, NULL, NULL));
    ck_assert_uint_eq(report.problems, 0);
}

/* Read exactly size bytes in chunks of capacity and stop, as a consumer
 * that trusts the size would: the read that completes the object must
 * fail on a corrupt one. Returns the rc of the last read made. */
static int read_exactly_size(const minidbx_id *id, size_t capacity)
{
    minidbx_reader *r = NULL;
    uint64_t size = 0;
    int rc = minidbx_reader_open(fx_db, id, &r, &size);
    if (rc < 0)
        return rc;
    unsigned char *buf = malloc(capacity);
    uint64_t total = 0;
    while (total < size) {
        size_t want = size - total < capacity ? (size_t)(size - total) : capacity, got = 0;
        if ((rc = minidbx_reader_read(r, buf, want, &got)) < 0)
            break;
        ck_assert_msg(got > 0, "reader gave 0 bytes at %llu of %llu", (unsigned long long)total,
                      (unsigned long long)size);
        total += got;
    }
    minidbx_reader_close(r);
    free(buf);
    return rc;
}

START_TEST(reader_checks_the_last_byte)
{
    corrupted_store cs;
    corrupt_two_objects(&cs);
    const minidbx_id *bad[2] = {&cs.bad_inline, &cs.bad_file};
    size_t sizes[2] = {cs.inline_size, cs.file_size};
    for (int i = 0; i < 2; i++) {
        ck_assert_rc(read_exactly_size(bad[i], sizes[i]), MINIDBX_ECORRUPT);
        ck_assert_rc(read_exactly_size(bad[i], 100), MINIDBX_ECORRUPT);
    }
    ck_assert_ok(read_exactly_size(&cs.good_inline, 500));
    ck_assert_ok(read_exactly_size(&cs.good_file, 333));
    free_corrupted(&cs);
}
END_TEST

/* ---- a bad copy heals when the right bytes are put again (issue 8) ---- */

START_TEST(put_heals_corrupt_copies)
{
    corrupted_store cs;
    corrupt_two_objects(&cs);
    minidbx_id id;
    ck_assert_ok(minidbx_put(fx_db, cs.bad_inline_data, cs.inline_size, &id));
    ck_assert_ok(minidbx_put(fx_db, cs.bad_file_data, cs.file_size, &id));
    store_expect_bytes(fx_db, &cs.bad_inline, cs.bad_inline_data, cs.inline_size);
    store_expect_bytes(fx_db, &cs.bad_file, cs.bad_file_data, cs.file_size);
    minidbx_name_info name;
    ck_assert_ok(minidbx_name_get(fx_db, "points/at/bad", &name)); /* the name survived the heal */
    expect_clean();
    ck_assert_uint_eq(store_object_count(fx_db), 4);
    minidbx_store_info info;
    ck_assert_ok(minidbx_info(fx_db, &info));
    ck_assert_uint_eq(info.bytes, cs.inline_size + cs.file_size + 500 + THRESHOLD * 2);
    free_corrupted(&cs);
}
END_TEST

/* A blob gone or cut short: exists and missing do not claim the object,
 * and a put (also one in a batch, also through a writer) brings it back. */
START_TEST(put_heals_missing_and_short_blobs)
{
    test_rng rng;
    rng_seed(&rng, 47);
    size_t size = THRESHOLD * 3;
    unsigned char *data[3];
    minidbx_id ids[3], out[3];
    char blob[PATH_MAX];
    for (int i = 0; i < 3; i++) {
        data[i] = rng_alloc(&rng, size);
        ck_assert_ok(minidbx_put(fx_db, data[i], size, &ids[i]));
        store_blob_path(fx_dir, &ids[i], blob);
        ck_assert_int_eq(i == 1 ? truncate(blob, 10) : unlink(blob), 0);
        ck_assert_int_eq(minidbx_exists(fx_db, &ids[i]), 0);
    }
    size_t n = 0;
    ck_assert_ok(minidbx_missing(fx_db, ids, 3, out, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_ok(minidbx_put(fx_db, data[0], size, &out[0]));
    ck_assert_ok(minidbx_batch_begin(fx_db));
    ck_assert_ok(minidbx_put(fx_db, data[1], size, &out[1]));
    ck_assert_ok(minidbx_batch_commit(fx_db));
    minidbx_writer *w = NULL;
    ck_assert_ok(minidbx_writer_open(fx_db, &w));
    ck_assert_ok(minidbx_writer_write(w, data[2], size));
    ck_assert_ok(minidbx_writer_commit(w, &out[2]));
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(minidbx_exists(fx_db, &ids[i]), 1);
        store_expect_bytes(fx_db, &ids[i], data[i], size);
        free(data[i]);
    }
    ck_assert_ok(minidbx_missing(fx_db, ids, 3, out, &n));
    ck_assert_uint_eq(n, 0);
    expect_clean();
}
END_TEST

/* ---- special files in place of a blob (issue 8, defect 10) ---- */

START_TEST(fifo_or_symlink_blob_is_corrupt)
{
    test_rng rng;
    rng_seed(&rng, 48);
    size_t size = THRESHOLD * 2;
    unsigned char *data[2];
    minidbx_id ids[2];
    char blob[PATH_MAX], copy[PATH_MAX];
    for (int i = 0; i < 2; i++) {
        data[i] = rng_alloc(&rng, size);
        ck_assert_ok(minidbx_put(fx_db, data[i], size, &ids[i]));
        ck_assert_ok(minidbx_name_set(fx_db, i ? "link" : "fifo", &ids[i]));
    }
    store_blob_path(fx_dir, &ids[0], blob);
    ck_assert_int_eq(unlink(blob), 0);
    ck_assert_int_eq(mkfifo(blob, 0644), 0);
    /* a symlink to a file with the right bytes: still not followed */
    store_blob_path(fx_dir, &ids[1], blob);
    store_path(fx_dir, "outside", copy);
    ck_assert_int_eq(rename(blob, copy), 0);
    ck_assert_int_eq(symlink(copy, blob), 0);

    for (int i = 0; i < 2; i++) {
        void *got = NULL;
        size_t got_size = 0;
        minidbx_reader *r = NULL;
        ck_assert_rc(minidbx_get(fx_db, &ids[i], &got, &got_size), MINIDBX_ECORRUPT);
        ck_assert_msg(strstr(minidbx_errmsg(fx_db), "not a regular file"), "errmsg: %s", minidbx_errmsg(fx_db));
        ck_assert_rc(minidbx_reader_open(fx_db, &ids[i], &r, NULL), MINIDBX_ECORRUPT);
        expect_get_fd_corrupt(&ids[i]);
        ck_assert_int_eq(minidbx_exists(fx_db, &ids[i]), 0);
    }
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_CORRUPT, &ids[0]));
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_CORRUPT, &ids[1]));
    ck_assert_uint_eq(report.problems, 2);
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL));
    ck_assert_uint_eq(report.repaired, 2);
    ck_assert(path_exists(copy)); /* the link was removed, not its target */
    expect_clean();
    for (int i = 0; i < 2; i++)
        free(data[i]);
}
END_TEST

/* A put over a FIFO or symlink replaces it with the real bytes. */
START_TEST(put_replaces_a_special_file)
{
    test_rng rng;
    rng_seed(&rng, 49);
    size_t size = THRESHOLD * 2;
    unsigned char *data = rng_alloc(&rng, size);
    minidbx_id id;
    char blob[PATH_MAX];
    ck_assert_ok(minidbx_put(fx_db, data, size, &id));
    store_blob_path(fx_dir, &id, blob);
    ck_assert_int_eq(unlink(blob), 0);
    ck_assert_int_eq(mkfifo(blob, 0644), 0);
    ck_assert_ok(minidbx_put(fx_db, data, size, &id));
    store_expect_bytes(fx_db, &id, data, size);
    free(data);
}
END_TEST

/* The orphan walk stays in the store: a shard directory that is a symlink
 * is not followed (gc and repair must never unlink files elsewhere), and
 * an orphan FIFO is reported and removed without being opened. */
START_TEST(orphan_walk_stays_in_the_store)
{
    test_rng rng;
    rng_seed(&rng, 52);
    size_t size = THRESHOLD * 2;
    unsigned char *data = rng_alloc(&rng, size);
    minidbx_id stray;
    sha256_raw(data, size, &stray);
    char blob[PATH_MAX], shard[PATH_MAX], outside[PATH_MAX], fifo[PATH_MAX];
    char elsewhere[PATH_MAX + 80], cmd[2 * PATH_MAX + 32];
    /* STORE/blobs/ab -> STORE/outside, holding cd/<hex>: a file no record
     * wants, reachable only through the link */
    store_blob_path(fx_dir, &stray, blob);
    store_path(fx_dir, "outside", outside);
    snprintf(shard, sizeof shard, "%s", blob);
    *strrchr(shard, '/') = '\0';
    *strrchr(shard, '/') = '\0';
    snprintf(elsewhere, sizeof elsewhere, "%s/%s", outside, blob + strlen(shard) + 1);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && rm -rf '%s'", outside, shard);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(symlink(outside, shard), 0);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", elsewhere);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(file_write_all(elsewhere, data, size), 0);
    /* an orphan FIFO in a real shard directory */
    minidbx_id other = stray;
    other.bytes[0] ^= 0x80; /* another first byte: another shard */
    store_blob_path(fx_dir, &other, fifo);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", fifo);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(mkfifo(fifo, 0644), 0);

    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(fx_db, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_ORPHAN], 1);
    ck_assert(problem_log_has(&log, MINIDBX_PROBLEM_ORPHAN, &other));
    ck_assert_uint_eq(report.problems, 1);
    minidbx_gc_report gc;
    ck_assert_ok(minidbx_gc(fx_db, &gc));
    ck_assert_msg(path_exists(elsewhere), "gc followed the link and removed %s", elsewhere);
    ck_assert_msg(!path_exists(fifo), "gc left the orphan FIFO %s", fifo);
    ck_assert_ok(minidbx_verify(fx_db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL));
    ck_assert_msg(path_exists(elsewhere), "repair followed the link and removed %s", elsewhere);
    free(data);
}
END_TEST

/* ---- the store itself failing (issue 8, defect 9) ---- */

START_TEST(deleted_store_is_an_io_error)
{
    test_rng rng;
    rng_seed(&rng, 50);
    minidbx_id id = store_put_random(fx_db, &rng, 100);
    ck_assert_ok(minidbx_name_set(fx_db, "before", &id));
    ck_assert_int_eq(rm_rf(fx_dir), 0);
    unsigned char *big = rng_alloc(&rng, THRESHOLD * 2);
    ck_assert_rc(minidbx_put(fx_db, "small", 5, NULL), MINIDBX_EIO);
    ck_assert_msg(strstr(minidbx_errmsg(fx_db), "is gone"), "errmsg: %s", minidbx_errmsg(fx_db));
    ck_assert_rc(minidbx_put(fx_db, big, THRESHOLD * 2, NULL), MINIDBX_EIO);
    ck_assert_msg(strstr(minidbx_errmsg(fx_db), "is gone"), "errmsg: %s", minidbx_errmsg(fx_db));
    ck_assert_rc(minidbx_gc(fx_db, NULL), MINIDBX_EIO);
    ck_assert_rc(minidbx_name_set(fx_db, "after", &id), MINIDBX_EIO);
    if (test_backend_has(TEST_CAP_BATCH_TXN)) /* else a batch begins in the client */
        ck_assert_rc(minidbx_batch_begin(fx_db), MINIDBX_EIO);
    free(big);
}
END_TEST

START_TEST(unwritable_tmp_is_an_io_error)
{
    char tmp[PATH_MAX];
    store_path(fx_dir, "tmp", tmp);
    ck_assert_int_eq(rm_rf(tmp), 0);
    ck_assert_int_eq(file_write_all(tmp, "x", 1), 0); /* even root cannot create in a file */
    test_rng rng;
    rng_seed(&rng, 51);
    unsigned char *big = rng_alloc(&rng, THRESHOLD * 2);
    ck_assert_rc(minidbx_put(fx_db, big, THRESHOLD * 2, NULL), MINIDBX_EIO);
    ck_assert_msg(strstr(minidbx_errmsg(fx_db), "/tmp/"), "errmsg: %s", minidbx_errmsg(fx_db));
    free(big);
}
END_TEST

/* A read-only handle reports stale temp files (and leaves them). */
START_TEST(readonly_verify_reports_temp_files)
{
    char tmp[PATH_MAX], stale[PATH_MAX + 32];
    store_path(fx_dir, "tmp", tmp);
    snprintf(stale, sizeof stale, "%s/999999999-1-1.tmp", tmp); /* no such pid */
    ck_assert_int_eq(file_write_all(stale, "partial", 7), 0);
    minidbx *ro = store_open(fx_location, MINIDBX_OPEN_READONLY);
    problem_log log = {0};
    minidbx_verify_report report;
    ck_assert_ok(minidbx_verify(ro, NULL, 0, &report, problem_log_cb, &log));
    ck_assert_uint_eq(log.count[MINIDBX_PROBLEM_TEMP], 1);
    ck_assert_uint_eq(report.problems, 1);
    ck_assert(path_exists(stale));
    minidbx_close(ro);
}
END_TEST

static Suite *verify_suite(void)
{
    Suite *s = suite_create("verify");
    TCase *tc = tcase_with_store("verify", TEST_TIMEOUT_S);
    tcase_add_test_needs(tc, corrupt_reads_fail, TEST_CAP_FILES);
    tcase_add_test_needs(tc, verify_reports_repairs_then_clean, TEST_CAP_FILES);
    tcase_add_test_needs(tc, repair_reports_removed_names, TEST_CAP_FILES);
    tcase_add_test_needs(tc, repair_keeps_a_name_of_another_object, TEST_CAP_FILES | TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, no_verify_skips_hash, TEST_CAP_FILES | TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, missing_blob_file, TEST_CAP_FILES);
    tcase_add_test_needs(tc, repair_with_blobs_moved_away, TEST_CAP_FILES);
    tcase_add_test_needs(tc, repair_with_blobs_an_empty_mountpoint, TEST_CAP_FILES);
    tcase_add_test_needs(tc, repair_with_a_shard_made_below_the_mountpoint, TEST_CAP_FILES);
    tcase_add_test_needs(tc, repair_with_a_shard_directory_away, TEST_CAP_FILES);
    tcase_add_test_needs(tc, truncated_blob_file, TEST_CAP_FILES);
    tcase_add_test_needs(tc, orphan_blob_file, TEST_CAP_FILES);
    tcase_add_test_needs(tc, dangling_name, TEST_CAP_FILES);
    tcase_add_test_needs(tc, temp_file_of_dead_writer_swept, TEST_CAP_FILES | TEST_CAP_OPEN_DIR);
    tcase_add_test_needs(tc, temp_file_of_live_writer_kept, TEST_CAP_FILES);
    tcase_add_test_needs(tc, reader_checks_the_last_byte, TEST_CAP_FILES);
    tcase_add_test_needs(tc, put_heals_corrupt_copies, TEST_CAP_FILES);
    tcase_add_test_needs(tc, put_heals_missing_and_short_blobs, TEST_CAP_FILES);
    tcase_add_test_needs(tc, fifo_or_symlink_blob_is_corrupt, TEST_CAP_FILES);
    tcase_add_test_needs(tc, put_replaces_a_special_file, TEST_CAP_FILES);
    tcase_add_test_needs(tc, orphan_walk_stays_in_the_store, TEST_CAP_FILES);
    tcase_add_test_needs(tc, deleted_store_is_an_io_error, TEST_CAP_FILES);
    tcase_add_test_needs(tc, unwritable_tmp_is_an_io_error, TEST_CAP_FILES);
    tcase_add_test_needs(tc, readonly_verify_reports_temp_files, TEST_CAP_FILES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(verify_suite());
}
