/*
 * batch.c - the public batch calls: many puts, deletes and name changes
 * made durable by one commit, on backends that have batches.
 */
#include "api.h"


/* --- batches --------------------------------------------------------------------- */

int minidbx_batch_begin(minidbx *db)
{
    int rc;
    CHECK_DB(db);
    if ((rc = check_writable(db, "batch")) < 0)
        return rc;
    NEED_METHOD(db, batch_begin, "batch");
    return db->be->batch_begin(db->be);
}

int minidbx_batch_commit(minidbx *db)
{
    CHECK_DB(db);
    NEED_METHOD(db, batch_commit, "batch");
    return db->be->batch_commit(db->be);
}

int minidbx_batch_abort(minidbx *db)
{
    CHECK_DB(db);
    NEED_METHOD(db, batch_abort, "batch");
    return db->be->batch_abort(db->be);
}
