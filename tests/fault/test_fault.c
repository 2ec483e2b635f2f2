/* test_fault.c - fault injection: fail the Nth write, pwrite, fsync,
 * fdatasync, rename, open, openat, mkdir, sync_file_range or malloc
 * (fault_shim.so, which must be LD_PRELOADed) during one operation, for N = 1, 2, ... until the
 * operation succeeds without the fault firing. After every round:
 *
 *   - the operation reported the failure (an error code, a non-zero exit
 *     with a message, a non-2xx status), never a success that did not
 *     happen: when it reported success, its effect is there; an fsync
 *     error (or a sync_file_range one: its wait may be what sees a failed
 *     writeback, which the final fsync then does not report) is never
 *     turned into a success;
 *   - nothing failed without a fault, and nothing crashed or hung;
 *   - the store opens, verify reports no problem other than orphan blobs
 *     and temp files (which repair then clears, leaving it clean);
 *   - everything acknowledged earlier (named objects, names, the objects a
 *     round prepared) still reads back, verified.
 *
 * usage: test_fault lib            library calls; the shim is armed just
 *                                  around the call, in a forked child
 *        test_fault cli MDBX       `mdbx` commands under MINIDBX_FAULT, armed
 *                                  at their first open or mkdir in the store
 *        test_fault serve MDBX     uploads (PUT /v1/objects) to `mdbx serve`
 *                                  under MINIDBX_FAULT, armed at its first
 *                                  accepted connection
 * MINIDBX_FAULT_STRIDE (default 1): in cli and serve modes, try every
 * STRIDE-th N of malloc only (lib mode tries every N of the operation
 * itself; the commands and the node allocate far more around it). MINIDBX_FAULT_OPS, MINIDBX_FAULT_SCENARIOS: comma
 * lists to run fewer ops or scenarios (put-inline, put-file, put-stream, put-large, delete, gc,
 * verify-repair, batch, name-set). MINIDBX_FAULT_VERBOSE=1: a line per round. */
#include "util.h"

#include <curl/curl.h>
#include <dirent.h>
#include <openssl/evp.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_N 20000          /* bound of every sweep */
#define ROUND_TIMEOUT_S 30   /* a round that takes longer hung */
#define INLINE_SIZE 1000u
#define FILE_SIZE 70000u     /* above the default inline threshold */
#define LARGE_SIZE (9u << 20) /* over the local writer's 8 MiB writeback window: it waits */
#define BASE_OBJECTS 4
#define ROUND_OBJECTS 4
#define MAX_REPORTED_FAILURES 40

static const char *const OPS[] = { "write", "pwrite", "fsync", "fdatasync", "rename",
                                   "open", "openat", "mkdir", "sync_file_range", "malloc" };
#define OP_COUNT (sizeof OPS / sizeof OPS[0])

typedef enum { MODE_LIB, MODE_CLI, MODE_SERVE } run_mode;

static run_mode mode;
static const char *mdbx_path;
static unsigned malloc_stride = 1;
static unsigned failures;
static test_rng rng;

/* What the current round is (for messages). */
static const char *cur_scenario, *cur_op;
static unsigned long long cur_n;

static void failure(const char *fmt, ...)
{
    failures++;
    if (failures > MAX_REPORTED_FAILURES)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s %s N=%llu: ", cur_scenario, cur_op, cur_n);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* ---- the shim, found with dlsym ---- */

static int (*shim_arm)(const char *spec);
static void (*shim_disarm)(void);
static unsigned long long (*shim_calls)(void);
static int (*shim_fired)(void);

static int find_shim(void)
{
    shim_arm = (int (*)(const char *))dlsym(RTLD_DEFAULT, "fault_shim_arm");
    shim_disarm = (void (*)(void))dlsym(RTLD_DEFAULT, "fault_shim_disarm");
    shim_calls = (unsigned long long (*)(void))dlsym(RTLD_DEFAULT, "fault_shim_calls");
    shim_fired = (int (*)(void))dlsym(RTLD_DEFAULT, "fault_shim_fired");
    return shim_arm && shim_disarm && shim_calls && shim_fired ? 0 : -1;
}

/* ---- a round's objects ---- */

typedef struct {
    unsigned char *data;
    size_t size;
    minidbx_id id;
    char hex[MINIDBX_ID_HEX_SIZE];
} object;

typedef struct {
    char dir[PATH_MAX - 64]; /* room for the suffixes of the files beside it */
    object base[BASE_OBJECTS];  /* named at the start: must survive everything */
    char base_name[BASE_OBJECTS][32];
    object obj[ROUND_OBJECTS];  /* what a round prepares or puts */
    char name[64], name2[64];
    char file[PATH_MAX];        /* obj[0]'s bytes as a file, for `mdbx put` */
} store_ctx;

/* (util.h's rng_alloc, sha256_raw and file_read_all are for check tests only: their
 * asserts need check's runner) */
static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        perror("test_fault");
        exit(EXIT_FAILURE);
    }
    return p;
}

/* A whole small file, NUL-terminated; NULL if it cannot be read. */
static char *read_text(const char *path, size_t *out_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *text = xmalloc(65536);
    size_t n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    *out_size = n;
    return text;
}

static void object_make(object *o, size_t size)
{
    free(o->data);
    o->data = xmalloc(size);
    rng_fill(&rng, o->data, size);
    o->size = size;
    /* OpenSSL, not the library, says what the id must be */
    EVP_Digest(o->data, size, o->id.bytes, NULL, EVP_sha256(), NULL);
    minidbx_id_format(&o->id, o->hex);
}

static minidbx *open_store(const char *dir)
{
    minidbx *db = NULL;
    int rc = minidbx_open(&db, dir, NULL);
    if (rc != 0)
        failure("open %s: %s (%s)", dir, minidbx_strerror(rc), minidbx_errmsg(NULL));
    return db;
}

/* Put o and insist it worked (harness setup, never under a fault). */
static int put_acked(minidbx *db, const object *o)
{
    minidbx_id id;
    int rc = minidbx_put(db, o->data, o->size, &id);
    if (rc != 0 || !minidbx_id_equal(&id, &o->id)) {
        failure("setup put: %s (%s)", minidbx_strerror(rc), minidbx_errmsg(db));
        return -1;
    }
    return 0;
}

/* 1 if o is in the store with its bytes, 0 if it is not there at all, -1
 * (after failing) if it is there but does not read back. */
static int object_state(minidbx *db, const object *o, const char *what)
{
    void *data = NULL;
    size_t size = 0;
    int rc = minidbx_get(db, &o->id, &data, &size);
    if (rc == MINIDBX_ENOTFOUND)
        return 0;
    int same = rc == 0 && size == o->size && memcmp(data, o->data, size) == 0;
    minidbx_free(data);
    if (same)
        return 1;
    failure("%s %.12s does not read back: %s (%s)", what, o->hex, minidbx_strerror(rc), minidbx_errmsg(db));
    return -1;
}

static void expect_object(minidbx *db, const object *o, int want, const char *what)
{
    int state = object_state(db, o, what);
    if (state >= 0 && state != want)
        failure("%s %.12s is %s", what, o->hex, state ? "still there" : "missing");
}

/* The id name points at, into *out; 0, or 1 if the name is not there. */
static int name_target(minidbx *db, const char *name, minidbx_id *out)
{
    minidbx_name_info info;
    int rc = minidbx_name_get(db, name, &info);
    if (rc == MINIDBX_ENOTFOUND)
        return 1;
    if (rc != 0) {
        failure("name_get %s: %s", name, minidbx_strerror(rc));
        return 1;
    }
    *out = info.id;
    return 0;
}

static void expect_name(minidbx *db, const char *name, const object *want)
{
    minidbx_id id;
    if (name_target(db, name, &id) != 0)
        failure("name %s is missing", name);
    else if (!minidbx_id_equal(&id, &want->id))
        failure("name %s points at another object", name);
}

/* Make a fresh store with the base objects, named (gc keeps them). */
static int store_create(store_ctx *s, const char *tag)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/minidbx-fault-%s-XXXXXX", tmp && tmp[0] ? tmp : "/tmp", tag);
    if (mkdtemp(s->dir) == NULL) {
        failure("mkdtemp: %s", strerror(errno));
        return -1;
    }
    minidbx *db = open_store(s->dir);
    if (db == NULL)
        return -1;
    int rc = 0;
    for (int i = 0; i < BASE_OBJECTS && rc == 0; i++) {
        object_make(&s->base[i], i % 2 ? FILE_SIZE : INLINE_SIZE);
        snprintf(s->base_name[i], sizeof s->base_name[i], "base/%d", i);
        rc = put_acked(db, &s->base[i]);
        if (rc == 0 && (rc = minidbx_name_set(db, s->base_name[i], &s->base[i].id)) != 0)
            failure("setup name_set: %s", minidbx_strerror(rc));
    }
    minidbx_close(db);
    return rc;
}

static void store_destroy(store_ctx *s)
{
    rm_rf(s->dir);
    for (int i = 0; i < BASE_OBJECTS; i++)
        free(s->base[i].data);
    for (int i = 0; i < ROUND_OBJECTS; i++)
        free(s->obj[i].data);
    if (s->file[0])
        unlink(s->file);
    memset(s, 0, sizeof *s);
}

/* ---- scenarios ----
 * Names are the same in every round (re-pointed by prepare), so the store
 * does not grow from round to round: an operation whose call count grew
 * with N would make a sweep that never ends. */

typedef struct scenario scenario;
struct scenario {
    const char *name;
    /* Parent, no fault: put what the round needs. 0 or -1. */
    int (*prepare)(minidbx *db, store_ctx *s);
    /* Child, store open, before arming (e.g. what open would sweep). */
    void (*after_open)(store_ctx *s);
    /* Child, armed: the operation. 0 or a MINIDBX_E* code. */
    int (*run)(minidbx *db, store_ctx *s);
    /* The same as an mdbx command line (NULL: no CLI for it). */
    void (*cli_args)(store_ctx *s, const char **argv);
    /* Parent: the operation's effect given its result (0: success). */
    void (*check)(minidbx *db, store_ctx *s, int ok);
    /* verify may find the corrupt and missing objects the round planted */
    int planted_problems;
    /* NULL: every op; else a comma list of the ops swept for it */
    const char *only_ops;
};

static int write_round_file(store_ctx *s)
{
    snprintf(s->file, sizeof s->file, "%s.input", s->dir);
    if (file_write_all(s->file, s->obj[0].data, s->obj[0].size) != 0) {
        failure("write %s: %s", s->file, strerror(errno));
        return -1;
    }
    return 0;
}

static int prepare_put(store_ctx *s, size_t size)
{
    object_make(&s->obj[0], size);
    return mode == MODE_CLI ? write_round_file(s) : 0;
}

static int prepare_put_inline(minidbx *db, store_ctx *s)
{
    (void)db;
    return prepare_put(s, INLINE_SIZE);
}

static int prepare_put_file(minidbx *db, store_ctx *s)
{
    (void)db;
    return prepare_put(s, FILE_SIZE);
}

static int prepare_put_large(minidbx *db, store_ctx *s)
{
    (void)db;
    return prepare_put(s, LARGE_SIZE);
}

static int run_put(minidbx *db, store_ctx *s)
{
    minidbx_id id;
    int rc = minidbx_put(db, s->obj[0].data, s->obj[0].size, &id);
    return rc == 0 && !minidbx_id_equal(&id, &s->obj[0].id) ? MINIDBX_ECORRUPT : rc;
}

/* The streaming writer, in three writes (the CLI's put uses it too). */
static int run_put_stream(minidbx *db, store_ctx *s)
{
    minidbx_writer *w = NULL;
    minidbx_id id;
    size_t third = s->obj[0].size / 3;
    int rc = minidbx_writer_open(db, &w);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = minidbx_writer_write(w, s->obj[0].data + (size_t)i * third,
                                  i < 2 ? third : s->obj[0].size - 2 * third);
    if (rc != 0) {
        minidbx_writer_abort(w);
        return rc;
    }
    rc = minidbx_writer_commit(w, &id);
    return rc == 0 && !minidbx_id_equal(&id, &s->obj[0].id) ? MINIDBX_ECORRUPT : rc;
}

static void cli_put(store_ctx *s, const char **argv)
{
    argv[0] = "put";
    argv[1] = s->file;
}

/* A failed put may or may not have stored the bytes (it must be whole if
 * it did: object_state reads it back); a successful one did. */
static void check_put(minidbx *db, store_ctx *s, int ok)
{
    int state = object_state(db, &s->obj[0], "the put object");
    if (ok && state == 0)
        failure("put reported success but the object is not there");
}

static int prepare_delete(minidbx *db, store_ctx *s)
{
    object_make(&s->obj[0], FILE_SIZE);
    return put_acked(db, &s->obj[0]);
}

static int run_delete(minidbx *db, store_ctx *s)
{
    return minidbx_delete(db, &s->obj[0].id);
}

static void cli_delete(store_ctx *s, const char **argv)
{
    argv[0] = "rm";
    argv[1] = s->obj[0].hex;
}

static void check_delete(minidbx *db, store_ctx *s, int ok)
{
    int state = object_state(db, &s->obj[0], "the object to delete");
    if (ok && state == 1)
        failure("delete reported success but the object is still there");
}

/* gc: two unnamed objects to collect, one named to keep. */
static int prepare_gc(minidbx *db, store_ctx *s)
{
    object_make(&s->obj[0], INLINE_SIZE);
    object_make(&s->obj[1], FILE_SIZE);
    object_make(&s->obj[2], FILE_SIZE);
    snprintf(s->name, sizeof s->name, "keep");
    if (put_acked(db, &s->obj[0]) || put_acked(db, &s->obj[1]) || put_acked(db, &s->obj[2]))
        return -1;
    int rc = minidbx_name_set(db, s->name, &s->obj[2].id);
    if (rc != 0)
        failure("setup name_set: %s", minidbx_strerror(rc));
    return rc ? -1 : 0;
}

static int run_gc(minidbx *db, store_ctx *s)
{
    (void)s;
    return test_gc_now(db, NULL);
}

static void cli_gc(store_ctx *s, const char **argv)
{
    (void)s;
    argv[0] = "gc";
    argv[1] = "--older-than";
    argv[2] = "0";
}

static void check_gc(minidbx *db, store_ctx *s, int ok)
{
    for (int i = 0; i < 2; i++) {
        int state = object_state(db, &s->obj[i], "garbage");
        if (ok && state == 1)
            failure("gc reported success but left garbage %.12s", s->obj[i].hex);
    }
    expect_object(db, &s->obj[2], 1, "a named object gc must keep");
    expect_name(db, s->name, &s->obj[2]);
}

/* verify --repair: a corrupt object, a missing one, an orphan blob, a temp
 * file (made after open, which would sweep it), and a named object that
 * must survive. */
static int prepare_verify(minidbx *db, store_ctx *s)
{
    char path[PATH_MAX];
    for (int i = 0; i < 4; i++)
        object_make(&s->obj[i], FILE_SIZE);
    snprintf(s->name, sizeof s->name, "verify");
    if (put_acked(db, &s->obj[0]) || put_acked(db, &s->obj[1]) || put_acked(db, &s->obj[2]))
        return -1;
    int rc = minidbx_name_set(db, s->name, &s->obj[2].id);
    store_blob_path(s->dir, &s->obj[0].id, path);
    rc = rc ? rc : file_flip_byte(path, 100);
    store_blob_path(s->dir, &s->obj[1].id, path);
    rc = rc ? rc : unlink(path);
    /* an orphan: obj[3]'s bytes where its blob would be, with no record */
    store_blob_path(s->dir, &s->obj[3].id, path);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    char *mid = strrchr(path, '/');
    *mid = '\0';
    mkdir(path, 0755);
    *mid = '/';
    mkdir(path, 0755);
    *slash = '/';
    rc = rc ? rc : file_write_all(path, s->obj[3].data, s->obj[3].size);
    if (rc != 0)
        failure("setup verify problems: %d (%s)", rc, strerror(errno));
    return rc ? -1 : 0;
}

static void verify_after_open(store_ctx *s)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tmp/1-1-1.tmp", s->dir);
    file_write_all(path, "left by a dead writer", 21);
}

static int run_verify(minidbx *db, store_ctx *s)
{
    (void)s;
    minidbx_verify_report report;
    return minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL);
}

static void cli_verify(store_ctx *s, const char **argv)
{
    (void)s;
    argv[0] = "verify";
    argv[1] = "--repair";
}

static void check_verify(minidbx *db, store_ctx *s, int ok)
{
    if (ok) {
        minidbx_verify_report report;
        problem_log log = { .quiet = 1 };
        int rc = minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log);
        if (rc != 0 || report.problems != 0)
            failure("verify --repair reported success, then verify finds %llu problems (rc %d)",
                 (unsigned long long)report.problems, rc);
        expect_object(db, &s->obj[0], 0, "the corrupt object");
        expect_object(db, &s->obj[1], 0, "the missing object");
    }
    expect_object(db, &s->obj[2], 1, "a good object repair must keep");
    expect_name(db, s->name, &s->obj[2]);
}

/* A batch: two puts, a name and a delete, committed together. */
static int prepare_batch(minidbx *db, store_ctx *s)
{
    object_make(&s->obj[0], INLINE_SIZE);
    object_make(&s->obj[1], FILE_SIZE);
    object_make(&s->obj[2], FILE_SIZE);
    snprintf(s->name, sizeof s->name, "batch");
    int rc = minidbx_name_delete(db, s->name); /* the last round's */
    if (rc != 0 && rc != MINIDBX_ENOTFOUND)
        failure("setup name_delete: %s", minidbx_strerror(rc));
    return put_acked(db, &s->obj[2]);
}

static int run_batch(minidbx *db, store_ctx *s)
{
    int rc = minidbx_batch_begin(db);
    if (rc != 0)
        return rc;
    if ((rc = minidbx_put(db, s->obj[0].data, s->obj[0].size, NULL)) == 0 &&
        (rc = minidbx_put(db, s->obj[1].data, s->obj[1].size, NULL)) == 0 &&
        (rc = minidbx_name_set(db, s->name, &s->obj[1].id)) == 0 &&
        (rc = minidbx_delete(db, &s->obj[2].id)) == 0)
        return minidbx_batch_commit(db);
    minidbx_batch_abort(db);
    return rc;
}

/* All or nothing. */
static void check_batch(minidbx *db, store_ctx *s, int ok)
{
    minidbx_id id;
    expect_object(db, &s->obj[0], ok, "a batch's put object");
    expect_object(db, &s->obj[1], ok, "a batch's put object");
    expect_object(db, &s->obj[2], !ok, "the object the batch deletes");
    int named = name_target(db, s->name, &id) == 0;
    if (named != ok)
        failure("the batch %s but its name is %s", ok ? "committed" : "failed", named ? "there" : "missing");
}

/* name set: point an acknowledged name at another object. */
static int prepare_name(minidbx *db, store_ctx *s)
{
    object_make(&s->obj[0], INLINE_SIZE);
    object_make(&s->obj[1], INLINE_SIZE);
    snprintf(s->name, sizeof s->name, "name");
    if (put_acked(db, &s->obj[0]) || put_acked(db, &s->obj[1]))
        return -1;
    int rc = minidbx_name_set(db, s->name, &s->obj[0].id);
    if (rc != 0)
        failure("setup name_set: %s", minidbx_strerror(rc));
    return rc ? -1 : 0;
}

static int run_name(minidbx *db, store_ctx *s)
{
    return minidbx_name_set(db, s->name, &s->obj[1].id);
}

static void cli_name(store_ctx *s, const char **argv)
{
    argv[0] = "name";
    argv[1] = "set";
    argv[2] = "--force"; /* it moves the name (mdbx refuses that without it) */
    argv[3] = s->name;
    argv[4] = s->obj[1].hex;
}

/* Success: the new target. Failure: the old or the new, never nothing. */
static void check_name(minidbx *db, store_ctx *s, int ok)
{
    minidbx_id id;
    if (name_target(db, s->name, &id) != 0)
        failure("the acknowledged name %s is gone", s->name);
    else if (ok && !minidbx_id_equal(&id, &s->obj[1].id))
        failure("name set reported success but the name points at the old object");
    else if (!minidbx_id_equal(&id, &s->obj[0].id) && !minidbx_id_equal(&id, &s->obj[1].id))
        failure("the name points at neither object");
    expect_object(db, &s->obj[0], 1, "a named object");
    expect_object(db, &s->obj[1], 1, "a named object");
}

static const scenario SCENARIOS[] = {
    { "put-inline", prepare_put_inline, NULL, run_put, cli_put, check_put, 0, NULL },
    { "put-file", prepare_put_file, NULL, run_put, cli_put, check_put, 0, NULL },
    { "put-stream", prepare_put_file, NULL, run_put_stream, NULL, check_put, 0, NULL },
    { "put-large", prepare_put_large, NULL, run_put, cli_put, check_put, 0, "sync_file_range,fdatasync" },
    { "delete", prepare_delete, NULL, run_delete, cli_delete, check_delete, 0, NULL },
    { "gc", prepare_gc, NULL, run_gc, cli_gc, check_gc, 0, NULL },
    { "verify-repair", prepare_verify, verify_after_open, run_verify, cli_verify, check_verify, 1, NULL },
    { "batch", prepare_batch, NULL, run_batch, NULL, check_batch, 0, NULL },
    { "name-set", prepare_name, NULL, run_name, cli_name, check_name, 0, NULL },
};

/* ---- the store after a round ---- */

/* rmdir the shard directories (STORE/blobs/ab/cd) that are empty: walks of
 * the blob tree cost a few calls per directory, and new random ids would
 * add directories every round. rmdir leaves the others alone. */
static void remove_empty_shards(const char *store)
{
    char blobs[PATH_MAX];
    store_path(store, "blobs", blobs);
    DIR *top = opendir(blobs);
    struct dirent *e1, *e2;
    while (top != NULL && (e1 = readdir(top)) != NULL) {
        if (e1->d_name[0] == '.')
            continue;
        char level1[PATH_MAX + 8];
        snprintf(level1, sizeof level1, "%s/%.2s", blobs, e1->d_name);
        DIR *mid = opendir(level1);
        while (mid != NULL && (e2 = readdir(mid)) != NULL) {
            char level2[PATH_MAX + 16];
            snprintf(level2, sizeof level2, "%s/%.2s", level1, e2->d_name);
            if (e2->d_name[0] != '.')
                rmdir(level2);
        }
        if (mid != NULL)
            closedir(mid);
        rmdir(level1);
    }
    if (top != NULL)
        closedir(top);
}

/* verify finds nothing but orphans and temp files (and, for verify-repair
 * rounds, what the round planted); repair clears it all; the base objects
 * and their names read back. */
static void check_store(const store_ctx *s, const scenario *sc)
{
    minidbx *db = open_store(s->dir);
    if (db == NULL)
        return;
    minidbx_verify_report report;
    problem_log log = { .quiet = 1 };
    int rc = minidbx_verify(db, NULL, 0, &report, problem_log_cb, &log);
    unsigned allowed = log.count[MINIDBX_PROBLEM_ORPHAN] + log.count[MINIDBX_PROBLEM_TEMP];
    if (sc->planted_problems)
        allowed += log.count[MINIDBX_PROBLEM_CORRUPT] + log.count[MINIDBX_PROBLEM_MISSING] +
                   log.count[MINIDBX_PROBLEM_BADREF];
    if (rc != 0)
        failure("verify: %s (%s)", minidbx_strerror(rc), minidbx_errmsg(db));
    else if (report.problems != allowed)
        failure("verify: %llu problems: corrupt %u, missing %u, orphan %u, temp %u, dangling %u, badref %u",
             (unsigned long long)report.problems, log.count[MINIDBX_PROBLEM_CORRUPT],
             log.count[MINIDBX_PROBLEM_MISSING], log.count[MINIDBX_PROBLEM_ORPHAN],
             log.count[MINIDBX_PROBLEM_TEMP], log.count[MINIDBX_PROBLEM_DANGLING],
             log.count[MINIDBX_PROBLEM_BADREF]);
    if (rc == 0 && report.problems > 0) {
        rc = minidbx_verify(db, NULL, MINIDBX_VERIFY_REPAIR, &report, NULL, NULL);
        if (rc == 0)
            rc = minidbx_verify(db, NULL, 0, &report, NULL, NULL);
        if (rc != 0 || report.problems != 0)
            failure("after repair: %llu problems (rc %d)", (unsigned long long)report.problems, rc);
    }
    for (int i = 0; i < BASE_OBJECTS; i++) {
        expect_object(db, &s->base[i], 1, "an acknowledged object");
        expect_name(db, s->base_name[i], &s->base[i]);
    }
    /* Collect what the round left unnamed, so that every round starts from
     * the same store: gc's own work grows with the garbage, and a sweep
     * whose call count grows as fast as N would never end. */
    rc = test_gc_now(db, NULL);
    if (rc != 0)
        failure("gc after the round: %s (%s)", minidbx_strerror(rc), minidbx_errmsg(db));
    minidbx_close(db);
    remove_empty_shards(s->dir);
}

/* ---- one round per mode ---- */

typedef struct {
    int ok;               /* the operation reported success */
    int fired;            /* the fault fired */
    unsigned long long calls;
    int crashed;          /* died of a signal or hung (the signal number) */
    char message[256];    /* what it said about its failure */
} round_result;

/* Shared with the forked child in lib mode. */
static round_result *shared_result;

static void round_lib(const scenario *sc, store_ctx *s, const char *spec, round_result *out)
{
    memset(shared_result, 0, sizeof *shared_result);
    shared_result->ok = -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(ROUND_TIMEOUT_S);
        minidbx *db = NULL;
        if (minidbx_open(&db, s->dir, NULL) != 0)
            _exit(3);
        if (sc->after_open)
            sc->after_open(s);
        if (shim_arm(spec) != 0)
            _exit(4);
        int rc = sc->run(db, s);
        shim_disarm();
        shared_result->ok = rc == 0;
        shared_result->fired = shim_fired();
        shared_result->calls = shim_calls();
        snprintf(shared_result->message, sizeof shared_result->message, "%s: %s", minidbx_strerror(rc),
                 minidbx_errmsg(db));
        minidbx_close(db);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    *out = *shared_result;
    if (WIFSIGNALED(status))
        out->crashed = WTERMSIG(status);
    else if (WEXITSTATUS(status) != 0)
        failure("the round's child could not start (exit %d)", WEXITSTATUS(status));
}

/* Read the shim's report file: fired, and the calls it counted. */
static void read_report(const char *path, round_result *out)
{
    size_t size = 0;
    char *text = read_text(path, &size);
    if (text == NULL)
        return;
    char *end = text + size;
    for (char *line = text; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (nl)
            *nl = '\0';
        char op[32];
        unsigned long long count;
        if (strncmp(line, "fired ", 6) == 0)
            out->fired = 1;
        else if (sscanf(line, "calls %31s %llu", op, &count) == 2)
            out->calls = count;
        line = nl ? nl + 1 : end;
    }
    free(text);
    unlink(path);
}

static pid_t spawn_with_fault(const char *spec, const char *arm, const char *report_path, const char **argv,
                              const char *out_path, const char *err_path)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    setenv("MINIDBX_FAULT", spec, 1);
    setenv("MINIDBX_FAULT_ARM", arm, 1);
    setenv("MINIDBX_FAULT_REPORT", report_path, 1);
    int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0)
        _exit(126);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    execv(mdbx_path, (char *const *)argv);
    _exit(127);
}

/* Wait at most timeout_s for pid; SIGKILL it after. Its wait status. */
static int wait_bounded(pid_t pid, int timeout_s, int *hung)
{
    int status = 0;
    *hung = 0;
    for (int waited_ms = 0;; waited_ms += 10) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return status;
        if (waited_ms >= timeout_s * 1000) {
            *hung = 1;
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return status;
        }
        usleep(10000);
    }
}

static void round_cli(const scenario *sc, store_ctx *s, const char *spec, round_result *out)
{
    char report_path[PATH_MAX], out_path[PATH_MAX], err_path[PATH_MAX];
    snprintf(report_path, sizeof report_path, "%s.report", s->dir);
    snprintf(out_path, sizeof out_path, "%s.out", s->dir);
    snprintf(err_path, sizeof err_path, "%s.err", s->dir);
    unlink(report_path);
    const char *argv[12] = { "mdbx", "-s", s->dir };
    sc->cli_args(s, argv + 3);
    int hung;
    /* armed at the command's first touch of the store: what comes before
     * (loading libraries, parsing arguments) is not the operation */
    char arm[PATH_MAX + 8];
    snprintf(arm, sizeof arm, "path:%s", s->dir);
    int status = wait_bounded(spawn_with_fault(spec, arm, report_path, argv, out_path, err_path),
                              ROUND_TIMEOUT_S, &hung);
    memset(out, 0, sizeof *out);
    read_report(report_path, out);
    size_t err_size = 0, out_size = 0;
    char *err = read_text(err_path, &err_size);
    char *printed = read_text(out_path, &out_size);
    if (hung)
        out->crashed = SIGALRM;
    else if (WIFSIGNALED(status))
        out->crashed = WTERMSIG(status);
    out->ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    snprintf(out->message, sizeof out->message, "exit %d: %.200s", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
             err ? err : "");
    char *nl = strchr(out->message, '\n');
    if (nl)
        *nl = '\0';
    if (!out->crashed && !out->ok && err_size == 0)
        failure("mdbx %s exited %d without a message", argv[3], WEXITSTATUS(status));
    /* a put that says it worked printed the id */
    if (out->ok && sc->run == run_put && (printed == NULL || strstr(printed, s->obj[0].hex) == NULL))
        failure("mdbx put exited 0 without printing the id");
    free(err);
    free(printed);
    unlink(out_path);
    unlink(err_path);
}

/* ---- serve mode: one upload over HTTP ---- */

static size_t collect_body(char *data, size_t size, size_t count, void *ctx)
{
    char *body = ctx;
    size_t have = strlen(body), n = size * count;
    size_t room = 1023 - have;
    memcpy(body + have, data, n < room ? n : room);
    body[have + (n < room ? n : room)] = '\0';
    return n;
}

/* PUT /v1/objects/ID (the node checks the id); the status, 0 if none. */
static long upload(const char *url, const object *o, char *body)
{
    char target[512];
    snprintf(target, sizeof target, "%s/v1/objects/%s", url, o->hex);
    CURL *curl = curl_easy_init();
    long status = 0;
    body[0] = '\0';
    if (curl == NULL)
        return 0;
    curl_easy_setopt(curl, CURLOPT_URL, target);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, o->data);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->size);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)ROUND_TIMEOUT_S);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return status;
}

static void round_serve(const scenario *sc, store_ctx *s, const char *spec, round_result *out)
{
    (void)sc;
    char report_path[PATH_MAX], url[256], body[1024];
    snprintf(report_path, sizeof report_path, "%s.report", s->dir);
    unlink(report_path);
    memset(out, 0, sizeof *out);
    setenv("MINIDBX_FAULT", spec, 1);
    setenv("MINIDBX_FAULT_ARM", "accept", 1);
    setenv("MINIDBX_FAULT_SCOPE", "files", 1); /* not its sockets and eventfds */
    setenv("MINIDBX_FAULT_REPORT", report_path, 1);
    static const char *const extra[] = { "--threads", "2", NULL };
    pid_t pid;
    int started = serve_start(mdbx_path, s->dir, extra, &pid, url, sizeof url);
    unsetenv("MINIDBX_FAULT");
    unsetenv("MINIDBX_FAULT_ARM");
    unsetenv("MINIDBX_FAULT_SCOPE");
    unsetenv("MINIDBX_FAULT_REPORT");
    if (started != 0) {
        failure("mdbx serve did not start (the fault is armed only at its first connection)");
        return;
    }
    long status = upload(url, &s->obj[0], body);
    out->ok = status >= 200 && status < 300;
    snprintf(out->message, sizeof out->message, "HTTP %ld %.200s", status, body);
    if (out->ok && strstr(body, s->obj[0].hex) == NULL)
        failure("upload answered %ld without the id: %s", status, body);
    /* the node must still stop cleanly on SIGTERM */
    kill(pid, SIGTERM);
    int hung;
    int wstatus = wait_bounded(pid, 15, &hung);
    if (hung)
        out->crashed = SIGALRM;
    else if (WIFSIGNALED(wstatus))
        out->crashed = WTERMSIG(wstatus);
    read_report(report_path, out);
}

/* ---- the sweep ---- */

/* 1 if word is in the comma list in the environment variable (or it is unset). */
/* Is word in the comma list? (NULL or empty: every word is.) */
static int in_list(const char *list, const char *word)
{
    if (list == NULL || list[0] == '\0')
        return 1;
    size_t len = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += len)
        if ((p == list || p[-1] == ',') && (p[len] == '\0' || p[len] == ','))
            return 1;
    return 0;
}

static int selected(const char *variable, const char *word)
{
    return in_list(getenv(variable), word);
}

static void sweep(const scenario *sc, const char *op)
{
    store_ctx s = { 0 };
    cur_scenario = sc->name;
    cur_op = op;
    cur_n = 0;
    if (store_create(&s, sc->name) != 0) {
        store_destroy(&s);
        return;
    }
    unsigned stride = strcmp(op, "malloc") == 0 && mode != MODE_LIB ? malloc_stride : 1;
    unsigned failed_before = failures;
    unsigned rounds = 0, errors = 0, fired_ok = 0;
    unsigned long long calls = 0;
    for (cur_n = 1; cur_n <= MAX_N; cur_n += stride) {
        minidbx *db = open_store(s.dir);
        int prepared = db ? sc->prepare(db, &s) : -1;
        minidbx_close(db);
        if (prepared != 0)
            break;
        char spec[64];
        snprintf(spec, sizeof spec, "%s:%llu", op, cur_n);
        round_result r;
        if (mode == MODE_LIB)
            round_lib(sc, &s, spec, &r);
        else if (mode == MODE_CLI)
            round_cli(sc, &s, spec, &r);
        else
            round_serve(sc, &s, spec, &r);
        rounds++;
        calls = r.calls;
        if (getenv("MINIDBX_FAULT_VERBOSE"))
            printf("  %s %s N=%llu: %s, fault %s, %llu calls: %s\n", sc->name, op, cur_n, r.ok ? "ok" : "error",
                   r.fired ? "fired" : "not fired", r.calls, r.message);
        if (r.crashed) {
            failure("%s (signal %d) with the fault %s", r.crashed == SIGALRM ? "hung" : "crashed", r.crashed,
                 r.fired ? "fired" : "not fired");
        } else if (!r.ok && !r.fired) {
            failure("failed without a fault: %s", r.message);
        } else if (r.ok && r.fired &&
                   (strcmp(op, "fsync") == 0 || strcmp(op, "fdatasync") == 0 || strcmp(op, "sync_file_range") == 0)) {
            failure("%s %s error was swallowed: the operation reported success", op[0] == 's' ? "a" : "an", op);
        }
        errors += !r.ok;
        fired_ok += r.ok && r.fired;
        minidbx *after = open_store(s.dir);
        if (after != NULL) {
            sc->check(after, &s, r.ok);
            minidbx_close(after);
        }
        check_store(&s, sc);
        if (failures - failed_before > 5) {
            printf("FAIL %s %s: too many failures, stopping this sweep\n", sc->name, op);
            break;
        }
        if (r.ok && !r.fired && !r.crashed)
            break;
    }
    if (cur_n > MAX_N)
        failure("still failing after %d rounds", MAX_N);
    printf("%s %s %s: %u rounds (N=1..%llu step %u), %llu calls of %s, %u errors reported, "
           "%u successes despite a fault (effect checked)\n",
           failures == failed_before ? "ok  " : "FAIL", sc->name, op, rounds, cur_n, stride, calls, op, errors,
           fired_ok);
    fflush(stdout);
    store_destroy(&s);
}

static int usage(void)
{
    fprintf(stderr, "usage: test_fault lib | cli MDBX | serve MDBX\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "lib") == 0)
        mode = MODE_LIB;
    else if (strcmp(argv[1], "cli") == 0 && argc == 3)
        mode = MODE_CLI;
    else if (strcmp(argv[1], "serve") == 0 && argc == 3)
        mode = MODE_SERVE;
    else
        return usage();
    mdbx_path = argc == 3 ? argv[2] : NULL;
    if (find_shim() != 0) {
        fprintf(stderr, "fault_shim.so is not preloaded (LD_PRELOAD=%s)\n",
                getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "");
        return EXIT_FAILURE;
    }
    if (getenv("MINIDBX_FAULT_STRIDE"))
        malloc_stride = (unsigned)atoi(getenv("MINIDBX_FAULT_STRIDE"));
    if (malloc_stride == 0)
        malloc_stride = 1;
    uint64_t seed = seed_from_clock();
    printf("seed %llu, malloc stride %u\n", (unsigned long long)seed, malloc_stride);
    rng_seed(&rng, seed);
    shared_result = mmap(NULL, sizeof *shared_result, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared_result == MAP_FAILED)
        return EXIT_FAILURE;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (size_t i = 0; i < sizeof SCENARIOS / sizeof SCENARIOS[0]; i++) {
        const scenario *sc = &SCENARIOS[i];
        if (mode == MODE_CLI && sc->cli_args == NULL)
            continue;
        if (mode == MODE_SERVE && sc->run != run_put)
            continue;
        for (size_t k = 0; k < OP_COUNT; k++)
            if (selected("MINIDBX_FAULT_OPS", OPS[k]) && selected("MINIDBX_FAULT_SCENARIOS", sc->name) &&
                in_list(sc->only_ops, OPS[k]))
                sweep(sc, OPS[k]);
    }
    curl_global_cleanup();
    printf("%u failures\n", failures);
    return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
