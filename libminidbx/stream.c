/*
 * stream.c - writers and readers, and put_fd/get_fd on top of them: large
 * objects in bounded memory, hashed on the way through.
 */
#include "api.h"

#include <stdlib.h>
#include <string.h>

struct minidbx_writer {
    minidbx *db;
    minidbx_backend_writer *bw;
    dbx_hasher *hasher;
    uint64_t written;
    int error; /* sticky: after a failed write only abort is useful */
};

struct minidbx_reader {
    minidbx *db;
    minidbx_backend_reader *br;
    dbx_hasher *hasher; /* NULL when the handle does not verify */
    minidbx_id id;
    uint64_t size;      /* what reader_open said */
    uint64_t delivered; /* bytes handed to the caller so far */
    bool verified;      /* all size bytes hashed and found right */
    bool at_end;
};

/* Streams move data in chunks this size: big enough for full-speed I/O,
 * small enough that 1 GiB goes through in a few MiB of memory. */
#define CHUNK_BYTES (1u << 20)

/* --- writers ------------------------------------------------------------------ */

int minidbx_writer_open(minidbx *db, minidbx_writer **out)
{
    int rc;
    CHECK_DB(db);
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "writer_open: NULL out");
    *out = NULL;
    if ((rc = check_writable(db, "put")) < 0)
        return rc;
    NEED_METHOD(db, writer_open, "writer");
    minidbx_writer *w = calloc(1, sizeof *w);
    if (!w)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    w->db = db;
    if ((rc = dbx_hasher_new(&w->hasher)) < 0 || (rc = db->be->writer_open(db->be, &w->bw)) < 0) {
        dbx_hasher_free(w->hasher);
        free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int minidbx_writer_write(minidbx_writer *w, const void *data, size_t size)
{
    dbx_error_clear();
    if (!w || (!data && size))
        return minidbx_error_set(MINIDBX_EINVAL, "writer_write: NULL argument");
    if (w->error)
        return minidbx_error_set(w->error, "writer_write: the writer failed earlier (%s)",
                                 minidbx_strerror(w->error));
    /* The backend's write first, then the hash: a local store has started
     * the bytes' writeback by then, so the disk works while we hash. */
    int rc = check_size(w->db, w->written + size);
    if (rc == 0)
        rc = w->bw->write(w->bw, data, size);
    if (rc == 0)
        rc = dbx_hasher_update(w->hasher, data, size);
    if (rc < 0)
        w->error = rc;
    else
        w->written += size;
    return rc;
}

static void writer_free(minidbx_writer *w)
{
    dbx_hasher_free(w->hasher);
    free(w);
}

/* The backend's commit, with "created" when it can tell (table version 2). */
static int backend_commit(minidbx_writer *w, const minidbx_id *id, int *created)
{
    minidbx_backend_writer *bw = w->bw;
    *created = -1;
    if (w->db->be->version >= 2 && bw->commit_created)
        return bw->commit_created(bw, id, created);
    return bw->commit(bw, id);
}

/* Commit w's object and point name at it with nothing in between: on a
 * backend with batches both go in one batch, which on the local store is
 * one metadata transaction, so a gc or delete sees the object named or not
 * at all. Inside the caller's own batch (ESTATE) they simply join it. If
 * the name cannot be set, the batch is aborted and the put undone. */
static int commit_and_name(minidbx_writer *w, const minidbx_id *id, const char *name, unsigned flags,
                           int *created)
{
    minidbx_backend *be = w->db->be;
    int batch = be->batch_begin && be->batch_commit && be->batch_abort ? be->batch_begin(be)
                                                                        : MINIDBX_EUNSUPPORTED;
    if (batch < 0 && batch != MINIDBX_ESTATE && batch != MINIDBX_EUNSUPPORTED) {
        w->bw->abort(w->bw);
        return batch;
    }
    dbx_error_clear();
    int rc = backend_commit(w, id, created);
    if (rc == 0) {
        DBX_TEST_PAUSE("put-before-name");
        rc = dbx_name_set_flags(w->db, name, id, flags);
    }
    if (batch == 0 && rc == 0)
        rc = be->batch_commit(be);
    else if (batch == 0)
        be->batch_abort(be);
    return rc;
}

/* Every commit ends here: check what can be checked, then commit (and
 * name, if name is not NULL); frees the writer. */
static int writer_finish(minidbx_writer *w, const minidbx_id *expect, const char *name, unsigned flags,
                         minidbx_id *out_id, int *out_created)
{
    minidbx_id id;
    int rc, created = -1;

    if (w->error) {
        rc = minidbx_error_set(w->error, "writer_commit: the writer failed earlier (%s)",
                               minidbx_strerror(w->error));
        w->bw->abort(w->bw);
    } else if ((rc = dbx_hasher_final(w->hasher, &id)) < 0) {
        w->bw->abort(w->bw);
    } else if (expect && (rc = dbx_id_verify(expect, &id)) < 0) {
        w->bw->abort(w->bw);
    } else if (name) {
        rc = commit_and_name(w, &id, name, flags, &created);
    } else {
        rc = backend_commit(w, &id, &created);
    }
    writer_free(w);
    if (rc == 0 && out_id)
        *out_id = id;
    if (rc == 0 && out_created)
        *out_created = created;
    return rc;
}

int minidbx_writer_commit_ex(minidbx_writer *w, const minidbx_id *expect, minidbx_id *out_id,
                             int *out_created)
{
    dbx_error_clear();
    if (!w)
        return minidbx_error_set(MINIDBX_EINVAL, "writer_commit: NULL writer");
    return writer_finish(w, expect, NULL, 0, out_id, out_created);
}

int minidbx_writer_commit(minidbx_writer *w, minidbx_id *out_id)
{
    return minidbx_writer_commit_ex(w, NULL, out_id, NULL);
}

int minidbx_writer_commit_named(minidbx_writer *w, const char *name, minidbx_id *out_id)
{
    return minidbx_writer_commit_named_ex(w, name, 0, out_id);
}

int minidbx_writer_commit_named_ex(minidbx_writer *w, const char *name, unsigned flags, minidbx_id *out_id)
{
    int rc;
    dbx_error_clear();
    if (!w)
        return minidbx_error_set(MINIDBX_EINVAL, "writer_commit_named: NULL writer");
    if (flags & ~MINIDBX_NAME_KEEP) {
        minidbx_writer_abort(w);
        return minidbx_error_set(MINIDBX_EINVAL, "writer_commit_named: unknown flags 0x%x", flags);
    }
    if ((rc = dbx_check_name(name)) < 0 || (!w->db->be->name_set &&
        (rc = minidbx_error_set(MINIDBX_EUNSUPPORTED, "name set: not supported by the %s store",
                                w->db->be->name)) < 0)) {
        minidbx_writer_abort(w);
        return rc;
    }
    return writer_finish(w, NULL, name, flags, out_id, NULL);
}

void minidbx_writer_abort(minidbx_writer *w)
{
    if (!w)
        return;
    w->bw->abort(w->bw);
    writer_free(w);
}

/* --- readers ------------------------------------------------------------------ */

static int reader_check_end(minidbx_reader *r)
{
    minidbx_id got;
    int rc;
    if (!r->hasher)
        return 0;
    if ((rc = dbx_hasher_final(r->hasher, &got)) < 0)
        return rc;
    return dbx_id_verify(&r->id, &got);
}

int minidbx_reader_open(minidbx *db, const minidbx_id *id, minidbx_reader **out, uint64_t *out_size)
{
    uint64_t size = 0;
    int rc;

    CHECK_DB(db);
    if ((rc = check_id(id)) < 0)
        return rc;
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "reader_open: NULL out");
    *out = NULL;
    NEED_METHOD(db, reader_open, "reader");
    minidbx_reader *r = calloc(1, sizeof *r);
    if (!r)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    r->db = db;
    r->id = *id;
    if ((db->verify && (rc = dbx_hasher_new(&r->hasher)) < 0) ||
        (rc = db->be->reader_open(db->be, id, &r->br, &size)) < 0) {
        dbx_hasher_free(r->hasher);
        free(r);
        return rc;
    }
    r->size = size;
    /* An empty object has no last byte to check at: check it now. */
    if (size == 0 && r->hasher && (rc = reader_check_end(r)) < 0) {
        minidbx_reader_close(r);
        return rc;
    }
    r->verified = size == 0;
    if (out_size)
        *out_size = size;
    *out = r;
    return 0;
}

int minidbx_reader_read(minidbx_reader *r, void *buf, size_t capacity, size_t *out_read)
{
    size_t n = 0;
    int rc;

    dbx_error_clear();
    if (!r || !out_read || (!buf && capacity))
        return minidbx_error_set(MINIDBX_EINVAL, "reader_read: NULL argument");
    *out_read = 0;
    if (r->at_end)
        return 0;
    if (capacity == 0)
        return 0;
    if ((rc = r->br->read(r->br, buf, capacity, &n)) < 0)
        return rc;
    if (n == 0) {
        /* The end before size bytes: the hash says whether that is right. */
        if (r->hasher && !r->verified && (rc = reader_check_end(r)) < 0)
            return rc;
        r->at_end = true;
        return 0;
    }
    if (r->hasher && r->verified) {
        memset(buf, 0, n);
        return minidbx_error_set(MINIDBX_ECORRUPT, "reader: the object goes on past its size of %llu bytes",
                                 (unsigned long long)r->size);
    }
    if (r->hasher && (rc = dbx_hasher_update(r->hasher, buf, n)) < 0)
        return rc;
    r->delivered += n;
    /* The read that would deliver the last byte checks the hash first, so a
     * caller that reads exactly size bytes and stops is never handed a
     * corrupt object: it gets ECORRUPT instead of the final chunk. */
    if (r->hasher && r->delivered >= r->size) {
        if ((rc = reader_check_end(r)) < 0) {
            memset(buf, 0, n);
            return rc;
        }
        r->verified = true;
    }
    *out_read = n;
    return 0;
}

int minidbx_reader_fd(minidbx_reader *r, int *out_fd, uint64_t *out_offset)
{
    dbx_error_clear();
    if (!r || !out_fd || !out_offset)
        return minidbx_error_set(MINIDBX_EINVAL, "reader_fd: NULL argument");
    if (!r->br->fd)
        return minidbx_error_set(MINIDBX_EUNSUPPORTED, "reader_fd: this object has no file");
    return r->br->fd(r->br, out_fd, out_offset);
}

void minidbx_reader_close(minidbx_reader *r)
{
    if (!r)
        return;
    r->br->close(r->br);
    dbx_hasher_free(r->hasher);
    free(r);
}

/* --- file descriptors --------------------------------------------------------- */

int minidbx_put_fd(minidbx *db, int fd, minidbx_id *out_id)
{
    minidbx_writer *w = NULL;
    char *buf = NULL;
    int rc;

    CHECK_DB(db);
    if (fd < 0)
        return minidbx_error_set(MINIDBX_EINVAL, "put_fd: bad file descriptor");
    if (!(buf = malloc(CHUNK_BYTES)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if ((rc = minidbx_writer_open(db, &w)) < 0)
        goto out;
    for (;;) {
        ssize_t n = dbx_read_full(fd, buf, CHUNK_BYTES);
        if (n < 0) {
            rc = dbx_error_errno((int)-n, "put_fd: read");
            goto out;
        }
        if (n == 0)
            break;
        if ((rc = minidbx_writer_write(w, buf, (size_t)n)) < 0)
            goto out;
    }
    rc = minidbx_writer_commit(w, out_id);
    w = NULL;
out:
    minidbx_writer_abort(w);
    free(buf);
    return rc;
}

int minidbx_get_fd(minidbx *db, const minidbx_id *id, int fd)
{
    minidbx_reader *r = NULL;
    char *buf = NULL;
    int rc;

    CHECK_DB(db);
    if (fd < 0)
        return minidbx_error_set(MINIDBX_EINVAL, "get_fd: bad file descriptor");
    if ((rc = minidbx_reader_open(db, id, &r, NULL)) < 0)
        return rc;
    if (!(buf = malloc(CHUNK_BYTES))) {
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        size_t n;
        if ((rc = minidbx_reader_read(r, buf, CHUNK_BYTES, &n)) < 0 || n == 0)
            break;
        int err = dbx_write_all(fd, buf, n);
        if (err < 0) {
            rc = dbx_error_errno(-err, "get_fd: write");
            break;
        }
    }
out:
    minidbx_reader_close(r);
    free(buf);
    return rc;
}
