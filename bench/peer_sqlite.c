/*
 * peer_sqlite.c - SQLite in WAL mode with prepared statements, in the two
 * table layouts a user would try: `WITHOUT ROWID` (the row lives in the
 * primary-key b-tree) and the ordinary rowid table with a separate
 * primary-key index. synchronous=NORMAL when batched (WAL: durable at
 * checkpoints, not at each commit), FULL for the durable workload.
 */
#include "bench.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

enum { LAYOUT_WITHOUT_ROWID = 0, LAYOUT_ROWID = 1 };

typedef struct {
    sqlite3 *db;
    sqlite3_stmt *insert, *select, *exists, *begin, *commit;
    unsigned char *buf;
    size_t cap;
} sqlite_state;

static int sql_fail(sqlite_state *s, const char *what)
{
    return fail(what, "%s", s->db ? sqlite3_errmsg(s->db) : "cannot open");
}

static int sqlite_close(void *st)
{
    sqlite_state *s = st;

    if (!s)
        return 0;
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->select);
    sqlite3_finalize(s->exists);
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_close(s->db);
    free(s->buf);
    free(s);
    return 0;
}

static int exec_sql(sqlite_state *s, const char *sql)
{
    char *err = NULL;

    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fail(sql, "%s", err ? err : "failed");
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static int prepare_all(sqlite_state *s)
{
    struct {
        sqlite3_stmt **stmt;
        const char *sql;
    } list[] = {
        { &s->insert, "INSERT OR IGNORE INTO t(id, v) VALUES (?1, ?2)" },
        { &s->select, "SELECT v FROM t WHERE id = ?1" },
        { &s->exists, "SELECT 1 FROM t WHERE id = ?1" },
        { &s->begin, "BEGIN" },
        { &s->commit, "COMMIT" },
    };

    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        if (sqlite3_prepare_v2(s->db, list[i].sql, -1, list[i].stmt, NULL) != SQLITE_OK)
            return sql_fail(s, list[i].sql);
    }
    return 0;
}

static int sqlite_setup(sqlite_state *s, const char *dir, int layout, unsigned flags)
{
    char path[PATH_MAX];
    const char *table = layout == LAYOUT_WITHOUT_ROWID
        ? "CREATE TABLE IF NOT EXISTS t(id BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID"
        : "CREATE TABLE IF NOT EXISTS t(id BLOB PRIMARY KEY, v BLOB)";

    if (!(flags & KV_READ) && make_dir(dir) != 0)
        return -1;
    if (path_join(path, dir, "db.sqlite") != 0)
        return -1;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
        return sql_fail(s, "sqlite3_open_v2");
    if (exec_sql(s, "PRAGMA journal_mode=WAL") != 0 ||
        exec_sql(s, (flags & KV_DURABLE) ? "PRAGMA synchronous=FULL"
                                         : "PRAGMA synchronous=NORMAL") != 0 ||
        exec_sql(s, table) != 0)
        return -1;
    return prepare_all(s);
}

static int sqlite_open(void **out, const char *dir, int variant, unsigned flags)
{
    sqlite_state *s = calloc(1, sizeof(*s));

    if (!s)
        return fail("sqlite", "out of memory");
    if (sqlite_setup(s, dir, variant, flags) != 0) {
        sqlite_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

/* Step a statement that returns no row, then reset it. */
static int step_done(sqlite_state *s, sqlite3_stmt *stmt, const char *what)
{
    int rc = sqlite3_step(stmt);

    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : sql_fail(s, what);
}

static int sqlite_begin(void *st)
{
    sqlite_state *s = st;

    return step_done(s, s->begin, "BEGIN");
}

static int sqlite_commit(void *st)
{
    sqlite_state *s = st;

    return step_done(s, s->commit, "COMMIT");
}

static int sqlite_put(void *st, const minidbx_id *key, const void *data, size_t size)
{
    sqlite_state *s = st;

    if (sqlite3_bind_blob(s->insert, 1, key->bytes, MINIDBX_ID_SIZE, SQLITE_STATIC) != SQLITE_OK ||
        sqlite3_bind_blob(s->insert, 2, data, (int)size, SQLITE_STATIC) != SQLITE_OK)
        return sql_fail(s, "bind");
    return step_done(s, s->insert, "INSERT");
}

/* Step a lookup: 1 row (left unreset for the caller), 0 none, -1 error. */
static int step_lookup(sqlite_state *s, sqlite3_stmt *stmt, const minidbx_id *key)
{
    int rc;

    if (sqlite3_bind_blob(stmt, 1, key->bytes, MINIDBX_ID_SIZE, SQLITE_STATIC) != SQLITE_OK)
        return sql_fail(s, "bind");
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW)
        return 1;
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : sql_fail(s, "SELECT");
}

static int copy_value(sqlite_state *s, const void **data, size_t *size)
{
    const void *blob = sqlite3_column_blob(s->select, 0);
    size_t n = (size_t)sqlite3_column_bytes(s->select, 0);

    if (n > s->cap) {
        unsigned char *bigger = realloc(s->buf, n);
        if (!bigger)
            return fail("sqlite", "out of memory");
        s->buf = bigger;
        s->cap = n;
    }
    if (n)
        memcpy(s->buf, blob, n);
    *data = s->buf;
    *size = n;
    return 0;
}

static int sqlite_get(void *st, const minidbx_id *key, const void **data, size_t *size)
{
    sqlite_state *s = st;
    int rc = step_lookup(s, s->select, key);

    if (rc == 0)
        return fail("sqlite get", "key not found");
    if (rc < 0)
        return -1;
    rc = copy_value(s, data, size);
    sqlite3_reset(s->select);
    return rc;
}

static int sqlite_exists(void *st, const minidbx_id *key)
{
    sqlite_state *s = st;
    int rc = step_lookup(s, s->exists, key);

    if (rc == 1)
        sqlite3_reset(s->exists);
    return rc;
}

const kv_peer peer_sqlite_without_rowid = {
    .name = P_SQLITE_NR,
    .variant = LAYOUT_WITHOUT_ROWID,
    .open = sqlite_open,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .put = sqlite_put,
    .get = sqlite_get,
    .exists = sqlite_exists,
};

const kv_peer peer_sqlite_rowid = {
    .name = P_SQLITE_ROWID,
    .variant = LAYOUT_ROWID,
    .open = sqlite_open,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .put = sqlite_put,
    .get = sqlite_get,
    .exists = sqlite_exists,
};
