/*
 * peer_minidbx.c - minidbx itself behind the kv_peer calls: the library as
 * a user would call it, with the store's default durability (SYNC_FULL).
 */
#include "bench.h"

#include <stdlib.h>

typedef struct {
    minidbx *db;
    void *last_get;   /* freed at the next get, as a caller would */
} mdx_state;

static int mdx_open(void **out, const char *dir, int variant, unsigned flags)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    mdx_state *s = calloc(1, sizeof(*s));
    int rc;

    (void)variant;
    if (!s)
        return fail("minidbx", "out of memory");
    /* The verified read pass uses the default open, as most callers will;
     * the no-verify pass opens the store again read-only + no-verify. */
    if (flags & KV_READ)
        opts.flags |= MINIDBX_OPEN_NO_CREATE;
    if (flags & KV_NO_VERIFY)
        opts.flags |= MINIDBX_OPEN_READONLY | MINIDBX_OPEN_NO_VERIFY;
    rc = minidbx_open(&s->db, dir, &opts);
    if (rc != 0) {
        free(s);
        return fail_mdx("minidbx_open", rc);
    }
    *out = s;
    return 0;
}

static int mdx_close(void *st)
{
    mdx_state *s = st;

    if (!s)
        return 0;
    minidbx_free(s->last_get);
    minidbx_close(s->db);
    free(s);
    return 0;
}

static int mdx_begin(void *st)
{
    mdx_state *s = st;
    int rc = minidbx_batch_begin(s->db);

    return rc == 0 ? 0 : fail_mdx("minidbx_batch_begin", rc);
}

static int mdx_commit(void *st)
{
    mdx_state *s = st;
    int rc = minidbx_batch_commit(s->db);

    return rc == 0 ? 0 : fail_mdx("minidbx_batch_commit", rc);
}

static int mdx_put(void *st, const minidbx_id *key, const void *data, size_t size)
{
    mdx_state *s = st;
    minidbx_id id;
    int rc = minidbx_put(s->db, data, size, &id);

    if (rc != 0)
        return fail_mdx("minidbx_put", rc);
    if (!minidbx_id_equal(&id, key)) {
        char want[MINIDBX_ID_HEX_SIZE], got[MINIDBX_ID_HEX_SIZE];
        minidbx_id_format(key, want);
        minidbx_id_format(&id, got);
        return fail("minidbx_put", "returned id %s for bytes whose SHA-256 is %s", got, want);
    }
    return 0;
}

static int mdx_get(void *st, const minidbx_id *key, const void **data, size_t *size)
{
    mdx_state *s = st;
    void *buf = NULL;
    int rc;

    minidbx_free(s->last_get);
    s->last_get = NULL;
    rc = minidbx_get(s->db, key, &buf, size);
    if (rc != 0)
        return fail_mdx("minidbx_get", rc);
    s->last_get = buf;
    *data = buf;
    return 0;
}

static int mdx_exists(void *st, const minidbx_id *key)
{
    mdx_state *s = st;
    int rc = minidbx_exists(s->db, key);

    if (rc < 0)
        return fail_mdx("minidbx_exists", rc);
    return rc;
}

static int mdx_missing(void *st, const minidbx_id *keys, size_t count, size_t *out_missing)
{
    mdx_state *s = st;
    minidbx_id out[1000];
    int rc;

    if (count > sizeof(out) / sizeof(out[0]))
        return fail("minidbx_missing", "batch of %zu is too big for the bench", count);
    rc = minidbx_missing(s->db, keys, count, out, out_missing);
    return rc == 0 ? 0 : fail_mdx("minidbx_missing", rc);
}

const kv_peer peer_minidbx = {
    .name = P_MINIDBX,
    .no_verify_name = P_MINIDBX_NV,
    .open = mdx_open,
    .close = mdx_close,
    .begin = mdx_begin,
    .commit = mdx_commit,
    .put = mdx_put,
    .get = mdx_get,
    .exists = mdx_exists,
    .missing = mdx_missing,
};
