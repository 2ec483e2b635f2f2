/*
 * local_names.c - names of the local store: "names" name -> (id, size, mtime)
 * and "refs" id -> names, changed together in one transaction.
 */
#include "local.h"

#include <string.h>

/* --- names -------------------------------------------------------------------------- */

static MDB_val name_key(const char *name)
{
    MDB_val k = { strlen(name), (void *)name };
    return k;
}

/* Is the stored copy (old) of a name newer than a set at (mtime_ns, id)?
 * Last writer wins: the later mtime, then the larger id. */
static bool name_copy_newer(const name_value *old, int64_t mtime_ns, const minidbx_id *id)
{
    if (old->mtime_ns != mtime_ns)
        return old->mtime_ns > mtime_ns;
    return memcmp(old->id.bytes, id->bytes, MINIDBX_ID_SIZE) > 0;
}

/* How a set treats a name that is there: replace it, keep a newer copy
 * (set_at), or keep it if it points elsewhere (name_set_keep: EEXISTS). */
enum set_mode { SET_REPLACE, SET_UNLESS_NEWER, SET_KEEP };

static int name_set(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns,
                    enum set_mode mode);

int local_name_set(minidbx_backend *be, const char *name, const minidbx_id *id)
{
    return name_set(be, name, id, dbx_now_ns(), SET_REPLACE);
}

/* minidbx_name_set_ex(MINIDBX_NAME_KEEP): the check in the set's own
 * transaction, so no writer between them is overwritten. */
int local_name_set_keep(minidbx_backend *be, const char *name, const minidbx_id *id)
{
    return name_set(be, name, id, dbx_now_ns(), SET_KEEP);
}

/* A copy of a name made elsewhere, with its time: it does not replace a
 * newer copy, checked in the same transaction, so that copies of a name
 * set concurrently on several stores (a cluster's nodes) converge on the
 * last writer whatever order the sets arrive in. */
int local_name_set_at(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns)
{
    return name_set(be, name, id, mtime_ns, SET_UNLESS_NEWER);
}

static int name_set(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns,
                    enum set_mode mode)
{
    local_store *s = (local_store *)be;
    MDB_txn *txn;
    bool in_batch;
    MDB_val k = local_id_key(id), v, nk = name_key(name);
    record_header h;
    char sid[16];
    bool unchanged = false;
    int rc = local_write_begin(s, &txn, &in_batch);
    if (rc < 0)
        return rc;
    int lrc = mdb_get(txn, s->objects, &k, &v);
    if (lrc == MDB_NOTFOUND) {
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "name %s: object %s not found", name, local_short_id(id, sid));
        goto end;
    }
    if (lrc || (rc = local_record_parse(&v, id, &h)) < 0) {
        rc = rc < 0 ? rc : dbx_error_lmdb(lrc, "%s: name set", s->root);
        goto end;
    }
    /* If the name pointed elsewhere, that object loses a reference. */
    if ((lrc = mdb_get(txn, s->names, &nk, &v)) == 0 && v.mv_size == sizeof(name_value)) {
        name_value old;
        memcpy(&old, v.mv_data, sizeof old);
        if (mode == SET_UNLESS_NEWER && name_copy_newer(&old, mtime_ns, id)) {
            unchanged = true;
            goto end; /* a later writer's copy stands: nothing to change */
        }
        if (mode == SET_KEEP) {
            if (!minidbx_id_equal(&old.id, id))
                rc = minidbx_error_set(MINIDBX_EEXISTS, "name %s points at another object", name);
            unchanged = true;
            goto end; /* kept, or already pointing at id: nothing to change */
        }
        MDB_val ok = local_id_key(&old.id), ov = name_key(name);
        lrc = mdb_del(txn, s->refs, &ok, &ov);
    }
    if (lrc && lrc != MDB_NOTFOUND) {
        rc = dbx_error_lmdb(lrc, "%s: name set", s->root);
        goto end;
    }
    name_value nv = { .id = *id, .size = h.size, .mtime_ns = mtime_ns };
    MDB_val value = { sizeof nv, &nv }, rk = local_id_key(id), rv = name_key(name);
    if ((lrc = mdb_put(txn, s->names, &nk, &value, 0)) == 0)
        lrc = mdb_put(txn, s->refs, &rk, &rv, MDB_NODUPDATA);
    if (lrc && lrc != MDB_KEYEXIST)
        rc = dbx_error_lmdb(lrc, "%s: name set %s", s->root, name);
end:
    rc = local_write_end(s, txn, in_batch, rc);
    return rc == 0 && unchanged ? local_sync_unchanged(s, in_batch) : rc;
}

static int name_info_from(const MDB_val *k, const MDB_val *v, minidbx_name_info *out)
{
    name_value nv;
    if (v->mv_size != sizeof nv || k->mv_size > MINIDBX_NAME_MAX)
        return minidbx_error_set(MINIDBX_ECORRUPT, "malformed name record");
    memcpy(&nv, v->mv_data, sizeof nv);
    memcpy(out->name, k->mv_data, k->mv_size);
    out->name[k->mv_size] = '\0';
    out->id = nv.id;
    out->size = nv.size;
    out->mtime_ns = nv.mtime_ns;
    return 0;
}

int local_name_get(minidbx_backend *be, const char *name, minidbx_name_info *out)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    MDB_val k = name_key(name), v;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    int lrc = mdb_get(rt.txn, s->names, &k, &v);
    if (lrc == MDB_NOTFOUND)
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "name %s: not found", name);
    else if (lrc)
        rc = dbx_error_lmdb(lrc, "%s: name get", s->root);
    else
        rc = name_info_from(&k, &v, out);
    local_read_end(s, &rt);
    return rc;
}

int local_name_delete(minidbx_backend *be, const char *name)
{
    local_store *s = (local_store *)be;
    MDB_txn *txn;
    bool in_batch;
    MDB_val k = name_key(name), v;
    int rc = local_write_begin(s, &txn, &in_batch);
    if (rc < 0)
        return rc;
    int lrc = mdb_get(txn, s->names, &k, &v);
    if (lrc == MDB_NOTFOUND) {
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "name %s: not found", name);
    } else if (lrc || v.mv_size != sizeof(name_value)) {
        rc = lrc ? dbx_error_lmdb(lrc, "%s: name delete", s->root)
                 : minidbx_error_set(MINIDBX_ECORRUPT, "name %s: malformed record", name);
    } else {
        name_value nv;
        memcpy(&nv, v.mv_data, sizeof nv);
        MDB_val rk = local_id_key(&nv.id), rv = name_key(name);
        lrc = mdb_del(txn, s->refs, &rk, &rv);
        if (lrc == 0 || lrc == MDB_NOTFOUND)
            lrc = mdb_del(txn, s->names, &k, NULL);
        if (lrc)
            rc = dbx_error_lmdb(lrc, "%s: name delete %s", s->root, name);
    }
    return local_write_end(s, txn, in_batch, rc);
}

int local_name_list(minidbx_backend *be, const char *prefix, const char *after,
                           minidbx_name_info *out, size_t capacity, size_t *out_count)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    MDB_cursor *c = NULL;
    size_t n = 0, prefix_len = strlen(prefix);
    /* Start at whichever comes later: the prefix or the cursor. */
    const char *start = (after && strcmp(after, prefix) > 0) ? after : prefix;
    MDB_val k = name_key(start), v;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    int lrc = mdb_cursor_open(rt.txn, s->names, &c);
    if (lrc == 0)
        lrc = start[0] ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (lrc == 0 && after && k.mv_size == strlen(after) && memcmp(k.mv_data, after, k.mv_size) == 0)
        lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    while (lrc == 0 && n < capacity) {
        if (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0)
            break;
        if ((rc = name_info_from(&k, &v, &out[n])) < 0)
            break;
        n++;
        lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && lrc && lrc != MDB_NOTFOUND)
        rc = dbx_error_lmdb(lrc, "%s: listing names", s->root);
    mdb_cursor_close(c);
    local_read_end(s, &rt);
    if (rc == 0)
        *out_count = n;
    return rc;
}
