/*
 * objects.c - the whole-buffer object calls: put, get, exists, missing,
 * delete, stat, list. Bytes that get hands out are verified against the id.
 */
#include "api.h"

#include <stdint.h>
#include <stdlib.h>

/* --- whole-buffer object calls ---------------------------------------------- */

static int verify_bytes(const minidbx_id *id, const void *data, size_t size)
{
    minidbx_id got;
    int rc = minidbx_id_of(&got, data, size);
    return rc < 0 ? rc : dbx_id_verify(id, &got);
}

/* A put above this size goes through the writer on a backend that asks
 * for it (MINIDBX_BACKEND_PUT_WRITES_FIRST). */
#define PUT_WRITES_FIRST_MIN (64u << 10)

static int put_via_writer(minidbx *db, const void *data, size_t size, minidbx_id *id)
{
    minidbx_writer *w;
    int rc = minidbx_writer_open(db, &w);
    if (rc < 0)
        return rc;
    if ((rc = minidbx_writer_write(w, data, size)) < 0) {
        minidbx_writer_abort(w);
        return rc;
    }
    return minidbx_writer_commit(w, id);
}

int minidbx_put(minidbx *db, const void *data, size_t size, minidbx_id *out_id)
{
    minidbx_id id;
    int rc;

    CHECK_DB(db);
    if (!data && size)
        return minidbx_error_set(MINIDBX_EINVAL, "put: NULL data");
    if ((rc = check_writable(db, "put")) < 0 || (rc = check_size(db, size)) < 0)
        return rc;
    if (!db->be->put || (size > PUT_WRITES_FIRST_MIN && db->be->version >= 3 &&
                         (db->be->flags & MINIDBX_BACKEND_PUT_WRITES_FIRST)))
        rc = put_via_writer(db, data, size, &id);
    else if ((rc = minidbx_id_of(&id, data, size)) == 0)
        rc = db->be->put(db->be, &id, data, size);
    if (rc == 0 && out_id)
        *out_id = id;
    return rc;
}

int dbx_put_known(minidbx *db, const minidbx_id *id, const void *data, size_t size, int *created)
{
    minidbx_backend_writer *bw;
    int rc;

    CHECK_DB(db);
    if (created)
        *created = -1;
    if ((rc = check_writable(db, "put")) < 0 || (rc = check_size(db, size)) < 0)
        return rc;
    if (!created && db->be->put)
        return db->be->put(db->be, id, data ? data : "", size);
    NEED_METHOD(db, writer_open, "writer");
    if ((rc = db->be->writer_open(db->be, &bw)) < 0)
        return rc;
    if (size > 0 && (rc = bw->write(bw, data, size)) < 0) {
        bw->abort(bw);
        return rc;
    }
    if (created && db->be->version >= 2 && bw->commit_created)
        return bw->commit_created(bw, id, created);
    return bw->commit(bw, id);
}

static int get_via_reader(minidbx *db, const minidbx_id *id, void **out_data, size_t *out_size)
{
    minidbx_backend_reader *r;
    uint64_t size;
    int rc = db->be->reader_open(db->be, id, &r, &size);
    if (rc < 0)
        return rc;
    char *buf = size < SIZE_MAX ? malloc(size ? (size_t)size : 1) : NULL;
    size_t done = 0, n = 1;
    if (!buf)
        rc = minidbx_error_set(MINIDBX_ENOMEM, "get: cannot allocate %llu bytes", (unsigned long long)size);
    while (rc == 0 && n > 0 && done < size)
        if ((rc = r->read(r, buf + done, (size_t)size - done, &n)) == 0)
            done += n;
    if (rc == 0 && done != size)
        rc = minidbx_error_set(MINIDBX_ECORRUPT, "get: object is shorter than its recorded size");
    r->close(r);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out_data = buf;
    *out_size = done;
    return 0;
}

int minidbx_get(minidbx *db, const minidbx_id *id, void **out_data, size_t *out_size)
{
    void *data = NULL;
    size_t size = 0;
    int rc;

    CHECK_DB(db);
    if ((rc = check_id(id)) < 0)
        return rc;
    if (!out_data || !out_size)
        return minidbx_error_set(MINIDBX_EINVAL, "get: NULL output");
    if (db->be->get)
        rc = db->be->get(db->be, id, &data, &size);
    else if (db->be->reader_open)
        rc = get_via_reader(db, id, &data, &size);
    else
        NEED_METHOD(db, get, "get");
    if (rc == 0 && db->verify)
        rc = verify_bytes(id, data, size);
    if (rc < 0) {
        free(data);
        return rc;
    }
    *out_data = data;
    *out_size = size;
    return 0;
}

int minidbx_exists(minidbx *db, const minidbx_id *id)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_id(id)) < 0)
        return rc;
    NEED_METHOD(db, exists, "exists");
    return db->be->exists(db->be, id);
}

int minidbx_missing(minidbx *db, const minidbx_id *ids, size_t count, minidbx_id *out_missing,
                    size_t *out_count)
{
    CHECK_DB(db);
    if ((count && (!ids || !out_missing)) || !out_count)
        return minidbx_error_set(MINIDBX_EINVAL, "missing: NULL argument");
    if (db->be->missing)
        return db->be->missing(db->be, ids, count, out_missing, out_count);
    NEED_METHOD(db, exists, "missing");
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        minidbx_id id = ids[i]; /* out_missing may alias ids */
        int rc = db->be->exists(db->be, &id);
        if (rc < 0)
            return rc;
        if (rc == 0)
            out_missing[n++] = id;
    }
    *out_count = n;
    return 0;
}

int minidbx_delete_ex(minidbx *db, const minidbx_id *id, unsigned flags)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_id(id)) < 0 || (rc = check_writable(db, "delete")) < 0)
        return rc;
    if (flags & ~MINIDBX_DELETE_CASCADE)
        return minidbx_error_set(MINIDBX_EINVAL, "delete: unknown flags 0x%x", flags);
    NEED_METHOD(db, del, "delete");
    return db->be->del(db->be, id, flags);
}

int minidbx_delete(minidbx *db, const minidbx_id *id)
{
    return minidbx_delete_ex(db, id, 0);
}

int minidbx_stat(minidbx *db, const minidbx_id *id, minidbx_object_info *out)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_id(id)) < 0)
        return rc;
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "stat: NULL output");
    NEED_METHOD(db, stat, "stat");
    return db->be->stat(db->be, id, out);
}

int minidbx_list(minidbx *db, const minidbx_id *after, minidbx_object_info *out, size_t capacity,
                 size_t *out_count)
{
    CHECK_DB(db);
    if ((capacity && !out) || !out_count)
        return minidbx_error_set(MINIDBX_EINVAL, "list: NULL output");
    NEED_METHOD(db, list, "list");
    return db->be->list(db->be, after, out, capacity, out_count);
}
