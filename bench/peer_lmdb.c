/*
 * peer_lmdb.c - raw LMDB as a careful user would use it: 32-byte key ->
 * value, default (synchronous) commits, MDB_NOOVERWRITE so a second put of
 * the same key stores nothing, one reused read transaction
 * (mdb_txn_reset/renew) per lookup, and the value copied out as minidbx
 * hands out a copy.
 */
#include "bench.h"

#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

/* Virtual size only: the file grows as pages are used. */
#define LMDB_MAP_BYTES ((size_t)64 << 30)

typedef struct {
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *write_txn;   /* open between begin and commit */
    MDB_txn *read_txn;    /* reset between lookups */
    unsigned char *buf;
    size_t cap;
} lmdb_state;

static int lmdb_fail(const char *call, int rc)
{
    return fail(call, "%d: %s", rc, mdb_strerror(rc));
}

static int lmdb_close(void *st)
{
    lmdb_state *s = st;

    if (!s)
        return 0;
    if (s->write_txn)
        mdb_txn_abort(s->write_txn);
    if (s->read_txn)
        mdb_txn_abort(s->read_txn);
    if (s->env)
        mdb_env_close(s->env);
    free(s->buf);
    free(s);
    return 0;
}

static int lmdb_open_env(lmdb_state *s, const char *dir, unsigned flags)
{
    unsigned env_flags = (flags & KV_READ) ? MDB_RDONLY : 0;
    MDB_txn *txn = NULL;
    int rc;

    if (!(flags & KV_READ) && make_dir(dir) != 0)
        return -1;
    if ((rc = mdb_env_create(&s->env)) != 0)
        return lmdb_fail("mdb_env_create", rc);
    if ((rc = mdb_env_set_mapsize(s->env, LMDB_MAP_BYTES)) != 0)
        return lmdb_fail("mdb_env_set_mapsize", rc);
    if ((rc = mdb_env_open(s->env, dir, env_flags, 0644)) != 0)
        return lmdb_fail("mdb_env_open", rc);
    if ((rc = mdb_txn_begin(s->env, NULL, env_flags & MDB_RDONLY, &txn)) != 0)
        return lmdb_fail("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, &s->dbi)) != 0) {
        mdb_txn_abort(txn);
        return lmdb_fail("mdb_dbi_open", rc);
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return lmdb_fail("mdb_txn_commit", rc);
    return 0;
}

static int lmdb_open(void **out, const char *dir, int variant, unsigned flags)
{
    lmdb_state *s = calloc(1, sizeof(*s));

    (void)variant;
    if (!s)
        return fail("lmdb", "out of memory");
    if (lmdb_open_env(s, dir, flags) != 0) {
        lmdb_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int lmdb_begin(void *st)
{
    lmdb_state *s = st;
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->write_txn);

    return rc == 0 ? 0 : lmdb_fail("mdb_txn_begin", rc);
}

static int lmdb_commit(void *st)
{
    lmdb_state *s = st;
    int rc = mdb_txn_commit(s->write_txn);

    s->write_txn = NULL; /* freed whatever the result */
    return rc == 0 ? 0 : lmdb_fail("mdb_txn_commit", rc);
}

static int lmdb_put(void *st, const minidbx_id *key, const void *data, size_t size)
{
    lmdb_state *s = st;
    MDB_val k = { MINIDBX_ID_SIZE, (void *)key->bytes };
    MDB_val v = { size, (void *)data };
    int own = s->write_txn == NULL; /* outside a batch: a commit of its own */
    int rc;

    if (own && lmdb_begin(s) != 0)
        return -1;
    rc = mdb_put(s->write_txn, s->dbi, &k, &v, MDB_NOOVERWRITE);
    if (rc != 0 && rc != MDB_KEYEXIST) {
        if (own) {
            mdb_txn_abort(s->write_txn);
            s->write_txn = NULL;
        }
        return lmdb_fail("mdb_put", rc);
    }
    return own ? lmdb_commit(s) : 0;
}

static int read_begin(lmdb_state *s)
{
    int rc = s->read_txn ? mdb_txn_renew(s->read_txn)
                         : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->read_txn);

    return rc == 0 ? 0 : lmdb_fail("mdb_txn_begin/renew", rc);
}

/* 1 found (value in *v), 0 not found, -1 error; the read txn is left open. */
static int lookup(lmdb_state *s, const minidbx_id *key, MDB_val *v)
{
    MDB_val k = { MINIDBX_ID_SIZE, (void *)key->bytes };
    int rc = mdb_get(s->read_txn, s->dbi, &k, v);

    if (rc == MDB_NOTFOUND)
        return 0;
    return rc == 0 ? 1 : lmdb_fail("mdb_get", rc);
}

static int lmdb_get(void *st, const minidbx_id *key, const void **data, size_t *size)
{
    lmdb_state *s = st;
    MDB_val v;
    int rc;

    if (read_begin(s) != 0)
        return -1;
    rc = lookup(s, key, &v);
    if (rc == 1 && v.mv_size > s->cap) {
        unsigned char *bigger = realloc(s->buf, v.mv_size);
        if (!bigger)
            rc = fail("lmdb", "out of memory");
        else {
            s->buf = bigger;
            s->cap = v.mv_size;
        }
    }
    if (rc == 1) {
        memcpy(s->buf, v.mv_data, v.mv_size);
        *data = s->buf;
        *size = v.mv_size;
    }
    mdb_txn_reset(s->read_txn);
    if (rc == 0)
        return fail("mdb_get", "key not found");
    return rc == 1 ? 0 : -1;
}

static int lmdb_exists(void *st, const minidbx_id *key)
{
    lmdb_state *s = st;
    MDB_val v;
    int rc;

    if (read_begin(s) != 0)
        return -1;
    rc = lookup(s, key, &v);
    mdb_txn_reset(s->read_txn);
    return rc;
}

/* The LMDB counterpart of minidbx_missing: one read txn per call. */
static int lmdb_missing(void *st, const minidbx_id *keys, size_t count, size_t *out_missing)
{
    lmdb_state *s = st;
    size_t missing = 0;
    int rc = 0;

    if (read_begin(s) != 0)
        return -1;
    for (size_t i = 0; i < count && rc >= 0; i++) {
        MDB_val v;
        rc = lookup(s, &keys[i], &v);
        missing += rc == 0;
    }
    mdb_txn_reset(s->read_txn);
    *out_missing = missing;
    return rc < 0 ? -1 : 0;
}

const kv_peer peer_lmdb = {
    .name = P_LMDB,
    .open = lmdb_open,
    .close = lmdb_close,
    .begin = lmdb_begin,
    .commit = lmdb_commit,
    .put = lmdb_put,
    .get = lmdb_get,
    .exists = lmdb_exists,
    .missing = lmdb_missing,
};
