/*
 * local_batch.c - batches of the local store: one LMDB write transaction for
 * many puts, deletes and name changes; blob files fsync'ed together at
 * commit, unlinked on abort.
 */
#include "local.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- batches --------------------------------------------------------------------- */

static void batch_free(local_batch *b)
{
    local_thread_batch = NULL;
    local_unlock(b->lock_fd);
    local_path_list_free(&b->files);
    local_path_list_free(&b->dirs);
    local_path_list_free(&b->kept);
    local_path_list_free(&b->deleted);
    free(b);
}

int local_batch_begin(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    if (local_thread_batch)
        return minidbx_error_set(MINIDBX_ESTATE, "batch_begin: this thread already has a batch open");
    local_batch *b = calloc(1, sizeof *b);
    if (!b)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    /* Lock order everywhere: store flock first, then the LMDB writer lock. */
    if ((b->lock_fd = local_lock(s, false)) < 0) {
        int rc = b->lock_fd;
        free(b);
        return rc;
    }
    local_readers_check(s);
    int rc = mdb_txn_begin(s->env, NULL, 0, &b->txn);
    if (rc) {
        local_unlock(b->lock_fd);
        free(b);
        return dbx_error_lmdb(rc, "%s: batch_begin", s->root);
    }
    b->store = s;
    local_thread_batch = b;
    return 0;
}

/* Throw a batch away. The blobs it renamed into place are unlinked while
 * it still holds the writer lock: until then nobody else can commit a
 * record for them, so nobody else can need them. */
void local_batch_discard(local_batch *b)
{
    for (size_t i = 0; i < b->files.count; i++)
        unlink(b->files.paths[i]);
    mdb_txn_abort(b->txn);
    batch_free(b);
}

/* After a committed batch deleted file objects: trade the shared store lock
 * for the exclusive one (never while holding the writer lock: puts wait for
 * it while holding the shared lock), then unlink each blob unless a put has
 * stored the object again meanwhile. Failing here only leaves orphans. */
static void batch_unlink_deleted(local_store *s, local_batch *b)
{
    read_txn rt;
    local_thread_batch = NULL; /* its transaction is committed: read a fresh one */
    local_unlock(b->lock_fd);
    if ((b->lock_fd = local_lock(s, true)) < 0 || local_read_begin(s, &rt) < 0)
        return;
    for (size_t i = 0; i < b->deleted.count; i++) {
        const char *base = strrchr(b->deleted.paths[i], '/');
        minidbx_id id;
        if (base && minidbx_id_parse(&id, base + 1) == 0 && local_record_exists(s, rt.txn, &id) == 0)
            unlink(b->deleted.paths[i]);
    }
    local_read_end(s, &rt);
}

int local_batch_commit(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    local_batch *b = local_batch_of(s);
    if (!b)
        return minidbx_error_set(MINIDBX_ESTATE, "batch_commit: no batch open by this thread");
    int rc = b->error ? minidbx_error_set(b->error, "batch_commit: a call in the batch failed (%s)",
                                          minidbx_strerror(b->error))
                      : 0;
    /* Blob files and their directories first, then the metadata. */
    for (size_t i = 0; rc == 0 && s->sync && i < b->files.count; i++)
        rc = local_fsync_path(b->files.paths[i]);
    for (size_t i = 0; rc == 0 && s->sync && i < b->kept.count; i++)
        rc = local_fsync_path(b->kept.paths[i]);
    for (size_t i = 0; rc == 0 && i < b->dirs.count; i++)
        rc = local_fsync_dir(b->dirs.paths[i]);
    if (rc == 0 && (b->bytes_delta || b->inline_delta))
        rc = local_stats_write(s, b->txn, b->bytes_delta, b->inline_delta);
    if (rc < 0) {
        local_batch_discard(b);
        return rc;
    }
    int lrc = mdb_txn_commit(b->txn);
    /* a put that found its object relies on a record maybe not yet on disk
     * (local_sync_found in local.c) */
    if (lrc == 0 && s->sync && b->found)
        lrc = mdb_env_sync(s->env, 1);
    /* on failure the blobs it renamed stay as orphans, for gc */
    rc = lrc ? dbx_error_lmdb(lrc, "%s: batch commit", s->root) : local_store_still_there(s);
    if (rc == 0 && b->deleted.count)
        batch_unlink_deleted(s, b);
    batch_free(b);
    return rc;
}

int local_batch_abort(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    local_batch *b = local_batch_of(s);
    if (!b)
        return minidbx_error_set(MINIDBX_ESTATE, "batch_abort: no batch open by this thread");
    local_batch_discard(b);
    return 0;
}
