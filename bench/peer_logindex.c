/*
 * peer_logindex.c - "sketch: log + LMDB": what a write-ahead log in front of
 * LMDB could give, measured, before anyone builds it into the store. A put
 * is appended to a log (a batch's puts at its commit), which is fdatasync'ed:
 * one flush per commit, as SQLite's WAL. Every APPLY puts (the variant) the
 * logged puts are sorted by key and applied to LMDB in one synchronous
 * transaction (the checkpoint), and the log starts again. Reads go to LMDB;
 * close applies what is left (untimed, as every peer's close).
 *
 * It is a measurement, not a store: no checksums, no replay on open, and
 * no reader outside this process would see a logged put before its
 * checkpoint, which is what a real design would have to solve (see
 * bench/README.md, issue 12).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOGINDEX_MAP_BYTES ((size_t)64 << 30)

typedef struct {
    minidbx_id key;
    size_t offset, size; /* into the pending buffer */
} pending_put;

typedef struct {
    MDB_env *env;
    MDB_dbi dbi;
    int log_fd;
    int batched;          /* between begin and commit */
    size_t apply_every;
    unsigned char *buf;   /* the bytes of the logged, unapplied puts */
    size_t buf_len, buf_cap, log_from; /* log_from: what is in the log already */
    pending_put *puts;
    size_t count, cap;
    MDB_txn *read_txn;
    unsigned char *out;
    size_t out_cap;
} logindex_state;

static int mdb_fail(const char *call, int rc)
{
    return fail(call, "%d: %s", rc, mdb_strerror(rc));
}

static int cmp_pending(const void *a, const void *b)
{
    return memcmp(((const pending_put *)a)->key.bytes, ((const pending_put *)b)->key.bytes,
                  MINIDBX_ID_SIZE);
}

/* The checkpoint: every pending put into LMDB, sorted, one durable commit,
 * then the log is emptied. */
static int apply_pending(logindex_state *s)
{
    MDB_txn *txn;
    int rc;

    if (s->count == 0)
        return 0;
    qsort(s->puts, s->count, sizeof(*s->puts), cmp_pending);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return mdb_fail("mdb_txn_begin", rc);
    for (size_t i = 0; i < s->count; i++) {
        MDB_val k = { MINIDBX_ID_SIZE, s->puts[i].key.bytes };
        MDB_val v = { s->puts[i].size, s->buf + s->puts[i].offset };
        rc = mdb_put(txn, s->dbi, &k, &v, MDB_NOOVERWRITE);
        if (rc != 0 && rc != MDB_KEYEXIST) {
            mdb_txn_abort(txn);
            return mdb_fail("mdb_put", rc);
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return mdb_fail("mdb_txn_commit", rc);
    if (ftruncate(s->log_fd, 0) != 0)
        return fail("log", "truncate: %s", strerror(errno));
    s->count = s->buf_len = s->log_from = 0;
    return 0;
}

/* Append what is not in the log yet, and flush it: the commit point. */
static int log_flush(logindex_state *s)
{
    if (s->buf_len > s->log_from &&
        (write_all(s->log_fd, s->buf + s->log_from, s->buf_len - s->log_from) != 0 ||
         fdatasync(s->log_fd) != 0))
        return fail("log", "append: %s", strerror(errno));
    s->log_from = s->buf_len;
    return s->count >= s->apply_every ? apply_pending(s) : 0;
}

static int logindex_close(void *st)
{
    logindex_state *s = st;
    int rc = 0;

    if (!s)
        return 0;
    if (s->env && s->log_fd >= 0)
        rc = apply_pending(s);
    if (s->read_txn)
        mdb_txn_abort(s->read_txn);
    if (s->env)
        mdb_env_close(s->env);
    if (s->log_fd >= 0)
        close(s->log_fd);
    free(s->buf);
    free(s->puts);
    free(s->out);
    free(s);
    return rc;
}

static int logindex_setup(logindex_state *s, const char *dir, unsigned flags)
{
    char path[PATH_MAX];
    unsigned env_flags = (flags & KV_READ) ? MDB_RDONLY : 0;
    MDB_txn *txn;
    int rc;

    if (!(flags & KV_READ) && make_dir(dir) != 0)
        return -1;
    if ((rc = mdb_env_create(&s->env)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, LOGINDEX_MAP_BYTES)) != 0 ||
        (rc = mdb_env_open(s->env, dir, env_flags, 0644)) != 0)
        return mdb_fail("mdb_env_open", rc);
    if ((rc = mdb_txn_begin(s->env, NULL, env_flags, &txn)) != 0)
        return mdb_fail("mdb_txn_begin", rc);
    if ((rc = mdb_dbi_open(txn, NULL, 0, &s->dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0)
        return mdb_fail("mdb_dbi_open", rc);
    if (flags & KV_READ)
        return 0;
    if (path_join(path, dir, "log") != 0)
        return -1;
    s->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return s->log_fd < 0 ? fail("log", "%s: %s", path, strerror(errno)) : 0;
}

static int logindex_open(void **out, const char *dir, int variant, unsigned flags)
{
    logindex_state *s = calloc(1, sizeof(*s));

    if (!s)
        return fail("logindex", "out of memory");
    s->log_fd = -1;
    s->apply_every = (size_t)variant;
    if (logindex_setup(s, dir, flags) != 0) {
        logindex_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

static int logindex_begin(void *st)
{
    ((logindex_state *)st)->batched = 1;
    return 0;
}

static int logindex_commit(void *st)
{
    logindex_state *s = st;

    s->batched = 0;
    return log_flush(s);
}

static int grow(void **p, size_t *cap, size_t need, size_t item)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    void *more = realloc(*p, n * item);
    if (!more)
        return fail("logindex", "out of memory");
    *p = more;
    *cap = n;
    return 0;
}

static int logindex_put(void *st, const minidbx_id *key, const void *data, size_t size)
{
    logindex_state *s = st;
    uint64_t n = size;

    if (grow((void **)&s->buf, &s->buf_cap, s->buf_len + MINIDBX_ID_SIZE + 8 + size, 1) != 0 ||
        grow((void **)&s->puts, &s->cap, s->count + 1, sizeof(*s->puts)) != 0)
        return -1;
    /* The log record: key, length, bytes. */
    memcpy(s->buf + s->buf_len, key->bytes, MINIDBX_ID_SIZE);
    memcpy(s->buf + s->buf_len + MINIDBX_ID_SIZE, &n, 8);
    s->buf_len += MINIDBX_ID_SIZE + 8;
    s->puts[s->count++] = (pending_put){ *key, s->buf_len, size };
    memcpy(s->buf + s->buf_len, data, size);
    s->buf_len += size;
    return s->batched ? 0 : log_flush(s);
}

static int logindex_lookup(logindex_state *s, const minidbx_id *key, MDB_val *v)
{
    MDB_val k = { MINIDBX_ID_SIZE, (void *)key->bytes };
    int rc = s->read_txn ? mdb_txn_renew(s->read_txn)
                         : mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->read_txn);

    if (rc != 0)
        return mdb_fail("mdb_txn_begin", rc);
    rc = mdb_get(s->read_txn, s->dbi, &k, v);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_reset(s->read_txn);
        return mdb_fail("mdb_get", rc);
    }
    return rc == 0;
}

static int logindex_get(void *st, const minidbx_id *key, const void **data, size_t *size)
{
    logindex_state *s = st;
    MDB_val v;
    int rc = logindex_lookup(s, key, &v);

    if (rc == 1 && grow((void **)&s->out, &s->out_cap, v.mv_size, 1) == 0) {
        memcpy(s->out, v.mv_data, v.mv_size);
        *data = s->out;
        *size = v.mv_size;
    } else if (rc == 1) {
        rc = -1;
    }
    if (rc >= 0)
        mdb_txn_reset(s->read_txn);
    return rc == 1 ? 0 : rc == 0 ? fail("logindex get", "key not found") : -1;
}

static int logindex_exists(void *st, const minidbx_id *key)
{
    logindex_state *s = st;
    MDB_val v;
    int rc = logindex_lookup(s, key, &v);

    if (rc >= 0)
        mdb_txn_reset(s->read_txn);
    return rc;
}

/* Durable: a checkpoint every 1,000 puts; many: every 100,000. */
#define LOGINDEX_PEER(apply)                                                                       \
    {                                                                                              \
        .name = P_SKETCH_LOG, .variant = (apply), .open = logindex_open, .close = logindex_close,  \
        .begin = logindex_begin, .commit = logindex_commit, .put = logindex_put,                   \
        .get = logindex_get, .exists = logindex_exists,                                            \
    }

const kv_peer peer_logindex_durable = LOGINDEX_PEER(1000);
const kv_peer peer_logindex_many = LOGINDEX_PEER(100000);
