/*
 * test_wire_errors.c - every MINIDBX_E* code a store behind `mdbx serve`
 * can return reaches an http:// client unchanged: the same code as the
 * local store gives for the same call, and the local store's message in the
 * client's. Each error is caused for real, through real `mdbx serve`
 * processes on one store: one writable (with a write token and a small
 * --max-object-size), one --read-only. Also the table itself (wire.c):
 * every code has a name and a status, and reads back as itself.
 *
 * argv[1] is the mdbx binary.
 */
#include "../util.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN "s3cret"
#define MAX_OBJECT "64K"
#define MAX_OBJECT_BYTES (64u << 10)

static const char *mdbx_path;

/* The table: names and codes both ways, a distinct name per code, a 4xx or
 * 5xx status, and the status alone read back as the code wherever the code
 * is the first (or only) one with that status. */
START_TEST(table_both_ways)
{
    for (int code = MINIDBX_ESTATE; code <= MINIDBX_ENOTFOUND; code++) {
        const char *name = dbx_wire_error_name(code);
        ck_assert_msg(name != NULL, "%d (%s) has no name on the wire", code, minidbx_strerror(code));
        ck_assert_int_eq(dbx_wire_error_code(name, strlen(name)), code);
        unsigned status = dbx_wire_status_for(code);
        ck_assert_msg(status >= 400 && status < 600, "%s: status %u", name, status);
        int back = dbx_wire_code_for_status(status);
        ck_assert_int_eq(dbx_wire_status_for(back), status);
    }
    /* verify problems: each kind has its own name and reads back as itself */
    for (int kind = MINIDBX_PROBLEM_CORRUPT; kind <= MINIDBX_PROBLEM_NAME_REMOVED; kind++) {
        const char *name = dbx_wire_problem_name((minidbx_problem)kind);
        ck_assert_str_ne(name, "unknown");
        ck_assert_int_eq(dbx_wire_problem_kind(name), kind);
    }
    ck_assert_str_eq(dbx_wire_problem_name(MINIDBX_PROBLEM_NAME_REMOVED), "name_removed");
    ck_assert_int_eq(dbx_wire_problem_kind("from-a-newer-node"), 0);
    ck_assert_int_eq(dbx_wire_code_for_status(404), MINIDBX_ENOTFOUND);
    ck_assert_int_eq(dbx_wire_code_for_status(413), MINIDBX_ETOOBIG);
    ck_assert_int_eq(dbx_wire_code_for_status(401), MINIDBX_EPERM);
    ck_assert_int_eq(dbx_wire_code_for_status(418), MINIDBX_EIO);
    ck_assert_int_eq(dbx_wire_error_code("ENOTFOUNDX", 10), 0);
    ck_assert_int_eq(dbx_wire_error_code("ENOTFOUND", 8), 0);
    ck_assert_ptr_null(dbx_wire_error_name(-1));
}
END_TEST

/* ---- the round trip ---------------------------------------------------------------- */

struct stores {
    minidbx *local;      /* the store itself, writable, with the size limit */
    minidbx *local_ro;   /* the store itself, read-only */
    minidbx *http;       /* the writable node, with the token */
    minidbx *http_ro;    /* the read-only node */
    minidbx *http_bad;   /* the writable node, with a wrong token */
    minidbx *http_none;  /* the writable node, without a token */
    minidbx_id named;    /* an object a name points at */
    minidbx_id loose;    /* an object no name points at */
    minidbx_id corrupt;  /* a file object whose blob has a flipped byte */
    minidbx_id absent;   /* not in the store */
};

typedef int (*call_fn)(minidbx *db, const struct stores *st);

static unsigned char big[MAX_OBJECT_BYTES + 1];

static int get_id(minidbx *db, const minidbx_id *id)
{
    void *data = NULL;
    size_t size;
    int rc = minidbx_get(db, id, &data, &size);
    minidbx_free(data);
    return rc;
}

static int get_absent(minidbx *db, const struct stores *st)
{
    return get_id(db, &st->absent);
}

static int stat_absent(minidbx *db, const struct stores *st)
{
    minidbx_object_info info;
    return minidbx_stat(db, &st->absent, &info);
}

static int name_absent(minidbx *db, const struct stores *st)
{
    minidbx_name_info info;
    (void)st;
    return minidbx_name_get(db, "no/such/name", &info);
}

static int name_to_absent(minidbx *db, const struct stores *st)
{
    return minidbx_name_set(db, "to/nothing", &st->absent);
}

static int delete_absent(minidbx *db, const struct stores *st)
{
    return minidbx_delete(db, &st->absent);
}

static int delete_named(minidbx *db, const struct stores *st)
{
    return minidbx_delete(db, &st->named);
}

static int put_big(minidbx *db, const struct stores *st)
{
    (void)st;
    return minidbx_put(db, big, sizeof big, NULL);
}

/* A streamed (chunked) upload: its size is known only as it comes. */
static int write_big(minidbx *db, const struct stores *st)
{
    minidbx_writer *w;
    int rc;
    (void)st;
    if ((rc = minidbx_writer_open(db, &w)) < 0)
        return rc;
    for (size_t done = 0; done < sizeof big && rc == 0; done += 4096) {
        size_t n = sizeof big - done < 4096 ? sizeof big - done : 4096;
        rc = minidbx_writer_write(w, big + done, n);
    }
    if (rc < 0) {
        minidbx_writer_abort(w);
        return rc;
    }
    return minidbx_writer_commit(w, NULL);
}

static int put_small(minidbx *db, const struct stores *st)
{
    (void)st;
    return minidbx_put(db, "small", 5, NULL);
}

static int name_set_loose(minidbx *db, const struct stores *st)
{
    return minidbx_name_set(db, "new/name", &st->loose);
}

static int delete_loose(minidbx *db, const struct stores *st)
{
    return minidbx_delete(db, &st->loose);
}

static int gc_store(minidbx *db, const struct stores *st)
{
    (void)st;
    return minidbx_gc(db, NULL);
}

static int repair_store(minidbx *db, const struct stores *st)
{
    return minidbx_verify(db, &st->named, MINIDBX_VERIFY_REPAIR, NULL, NULL, NULL);
}

static int verify_absent(minidbx *db, const struct stores *st)
{
    return minidbx_verify(db, &st->absent, 0, NULL, NULL, NULL);
}

static int get_corrupt(minidbx *db, const struct stores *st)
{
    return get_id(db, &st->corrupt);
}

/* The call on the local store and over http: the same code, and the local
 * message inside the client's (when want_local_message). */
static void expect_same(const char *what, call_fn fn, minidbx *local, minidbx *remote,
                        const struct stores *st, int want, int want_local_message)
{
    char local_message[512];
    int local_rc = fn(local, st);
    snprintf(local_message, sizeof local_message, "%s", minidbx_errmsg(NULL));
    int remote_rc = fn(remote, st);
    const char *remote_message = minidbx_errmsg(NULL);
    printf("%-28s local %-12s http %-12s %s\n", what, dbx_wire_error_name(local_rc),
           dbx_wire_error_name(remote_rc), remote_message);
    ck_assert_msg(local_rc == want, "%s: the local store said %d (%s), expected %s: %s", what,
                  local_rc, minidbx_strerror(local_rc), dbx_wire_error_name(want), local_message);
    ck_assert_msg(remote_rc == want, "%s: over http %d (%s), expected %s: %s", what, remote_rc,
                  minidbx_strerror(remote_rc), dbx_wire_error_name(want), remote_message);
    if (want_local_message)
        ck_assert_msg(strstr(remote_message, local_message) != NULL,
                      "%s: the store's message '%s' is not in the client's '%s'", what,
                      local_message, remote_message);
}

/* Over http only (a token has no local counterpart): the code, and text
 * the node's message must hold. */
static void expect_remote(const char *what, call_fn fn, minidbx *remote, const struct stores *st,
                          int want, const char *in_message)
{
    int rc = fn(remote, st);
    const char *message = minidbx_errmsg(NULL);
    printf("%-28s http %-12s %s\n", what, dbx_wire_error_name(rc), message);
    ck_assert_msg(rc == want, "%s: over http %d (%s), expected %s: %s", what, rc,
                  minidbx_strerror(rc), dbx_wire_error_name(want), message);
    ck_assert_msg(strstr(message, in_message) != NULL, "%s: '%s' not in '%s'", what, in_message,
                  message);
}

static minidbx *open_remote(const char *url, const char *token)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    minidbx *db = NULL;
    opts.token = token ? token : "";
    ck_assert_ok(minidbx_open(&db, url, &opts));
    return db;
}

static void fill_store(struct stores *st, const char *dir)
{
    char blob[PATH_MAX];
    test_rng rng;
    rng_seed(&rng, 99);
    rng_fill(&rng, big, sizeof big);
    st->named = store_put_random(st->local, &rng, 100);
    ck_assert_ok(minidbx_name_set(st->local, "a/name", &st->named));
    st->loose = store_put_random(st->local, &rng, 200);
    st->corrupt = store_put_random(st->local, &rng, 3 * MINIDBX_DEFAULT_INLINE_THRESHOLD);
    store_blob_path(dir, &st->corrupt, blob);
    ck_assert_int_eq(file_flip_byte(blob, 100), 0);
    sha256_raw("absent", 6, &st->absent);
}

START_TEST(every_code_round_trips)
{
    static const char *const writable[] = { "--write-token", TOKEN, "--max-object-size", MAX_OBJECT,
                                            NULL };
    static const char *const read_only[] = { "--read-only", NULL };
    char *dir = tmpdir_make("wire");
    char url[256], url_ro[256];
    pid_t pid, pid_ro;
    struct stores st;
    minidbx_options opts = MINIDBX_OPTIONS_INIT;

    opts.max_object_size = MAX_OBJECT_BYTES;
    st.local = store_open_opts(dir, &opts);
    fill_store(&st, dir);
    st.local_ro = store_open(dir, MINIDBX_OPEN_READONLY);
    ck_assert_int_eq(serve_start(mdbx_path, dir, writable, &pid, url, sizeof url), 0);
    ck_assert_int_eq(serve_start(mdbx_path, dir, read_only, &pid_ro, url_ro, sizeof url_ro), 0);
    st.http = open_remote(url, TOKEN);
    st.http_ro = open_remote(url_ro, NULL);
    st.http_bad = open_remote(url, "wrong");
    st.http_none = open_remote(url, NULL);

    expect_same("get absent", get_absent, st.local, st.http, &st, MINIDBX_ENOTFOUND, 1);
    expect_same("stat absent (HEAD)", stat_absent, st.local, st.http, &st, MINIDBX_ENOTFOUND, 0);
    expect_same("name get absent", name_absent, st.local, st.http, &st, MINIDBX_ENOTFOUND, 1);
    expect_same("name set to absent object", name_to_absent, st.local, st.http, &st,
                MINIDBX_ENOTFOUND, 1);
    expect_same("delete absent", delete_absent, st.local, st.http, &st, MINIDBX_ENOTFOUND, 1);
    expect_same("verify absent", verify_absent, st.local, st.http, &st, MINIDBX_ENOTFOUND, 1);
    expect_same("delete named", delete_named, st.local, st.http, &st, MINIDBX_EREFERENCED, 1);
    expect_same("put over the limit", put_big, st.local, st.http, &st, MINIDBX_ETOOBIG, 0);
    expect_same("stream over the limit", write_big, st.local, st.http, &st, MINIDBX_ETOOBIG, 0);
    expect_same("get a corrupt blob", get_corrupt, st.local, st.http, &st, MINIDBX_ECORRUPT, 1);

    expect_same("put, read-only", put_small, st.local_ro, st.http_ro, &st, MINIDBX_EREADONLY, 0);
    expect_same("stream, read-only", write_big, st.local_ro, st.http_ro, &st, MINIDBX_EREADONLY, 0);
    expect_same("name set, read-only", name_set_loose, st.local_ro, st.http_ro, &st,
                MINIDBX_EREADONLY, 0);
    expect_same("delete, read-only", delete_loose, st.local_ro, st.http_ro, &st,
                MINIDBX_EREADONLY, 0);
    expect_remote("gc, read-only node", gc_store, st.http_ro, &st, MINIDBX_EREADONLY, "read-only");
    expect_remote("repair, read-only node", repair_store, st.http_ro, &st, MINIDBX_EREADONLY,
                  "read-only");

    expect_remote("put, wrong token", put_small, st.http_bad, &st, MINIDBX_EPERM, "wrong token");
    expect_remote("delete, wrong token", delete_loose, st.http_bad, &st, MINIDBX_EPERM,
                  "wrong token");
    expect_remote("put, no token", put_small, st.http_none, &st, MINIDBX_EPERM, "token is needed");
    expect_remote("put over the limit (node)", put_big, st.http, &st, MINIDBX_ETOOBIG, "limit");

    minidbx_close(st.http);
    minidbx_close(st.http_ro);
    minidbx_close(st.http_bad);
    minidbx_close(st.http_none);
    ck_assert_int_eq(serve_stop(pid), 0);
    ck_assert_int_eq(serve_stop(pid_ro), 0);
    /* a node that is not there: a transport error */
    minidbx *down = NULL;
    ck_assert_rc(minidbx_open(&down, url, NULL), MINIDBX_EIO);
    minidbx_close(st.local);
    minidbx_close(st.local_ro);
    rm_rf(dir);
    free(dir);
}
END_TEST

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MDBX\n", argv[0]);
        return 2;
    }
    mdbx_path = argv[1];
    Suite *s = suite_create("wire errors");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_test(tc, table_both_ways);
    tcase_add_test(tc, every_code_round_trips);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
