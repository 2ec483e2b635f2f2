/*
 * admin.c - verify, gc and info: the calls that look at or tidy the store
 * as a whole.
 */
#include "api.h"

#include <stdio.h>
#include <string.h>

/* --- verify, gc, info ------------------------------------------------------------- */

int minidbx_verify(minidbx *db, const minidbx_id *id, unsigned flags, minidbx_verify_report *report,
                   minidbx_problem_cb cb, void *ctx)
{
    minidbx_verify_report local_report;
    int rc;

    CHECK_DB(db);
    if (flags & ~MINIDBX_VERIFY_REPAIR)
        return minidbx_error_set(MINIDBX_EINVAL, "verify: unknown flags 0x%x", flags);
    if ((flags & MINIDBX_VERIFY_REPAIR) && (rc = check_writable(db, "verify --repair")) < 0)
        return rc;
    NEED_METHOD(db, verify, "verify");
    memset(&local_report, 0, sizeof local_report);
    rc = db->be->verify(db->be, id, flags, &local_report, cb, ctx);
    if (report)
        *report = local_report;
    return rc;
}

int minidbx_gc_ex(minidbx *db, const minidbx_gc_options *opts, minidbx_gc_report *report)
{
    static const minidbx_gc_options defaults = MINIDBX_GC_OPTIONS_INIT;
    minidbx_gc_report local_report;
    int rc;

    CHECK_DB(db);
    if (!opts)
        opts = &defaults;
    if (opts->older_than_ns < 0)
        return minidbx_error_set(MINIDBX_EINVAL, "gc: a negative age (%lld ns)",
                                 (long long)opts->older_than_ns);
    if (opts->flags & ~MINIDBX_GC_DRY_RUN)
        return minidbx_error_set(MINIDBX_EINVAL, "gc: unknown flags 0x%x", opts->flags);
    if (!(opts->flags & MINIDBX_GC_DRY_RUN) && (rc = check_writable(db, "gc")) < 0)
        return rc;
    memset(&local_report, 0, sizeof local_report);
    if (db->be->version >= 4 && db->be->gc_ex) {
        rc = db->be->gc_ex(db->be, opts, &local_report);
    } else {
        /* an older table's gc removes every unnamed object: only that */
        NEED_METHOD(db, gc, "gc");
        if (opts->older_than_ns || opts->flags || opts->removed)
            return minidbx_error_set(MINIDBX_EUNSUPPORTED,
                                     "gc: the %s store removes every unnamed object at once "
                                     "(no grace period, dry run or list): ask for older than 0",
                                     db->be->name);
        rc = db->be->gc(db->be, &local_report);
    }
    if (report)
        *report = local_report;
    return rc;
}

int minidbx_gc(minidbx *db, minidbx_gc_report *report)
{
    return minidbx_gc_ex(db, NULL, report);
}

int minidbx_info(minidbx *db, minidbx_store_info *out)
{
    CHECK_DB(db);
    if (!out)
        return minidbx_error_set(MINIDBX_EINVAL, "info: NULL output");
    memset(out, 0, sizeof *out);
    snprintf(out->backend, sizeof out->backend, "%s", db->be->name ? db->be->name : "?");
    NEED_METHOD(db, info, "info");
    return db->be->info(db->be, out);
}

int minidbx_nodes(minidbx *db, const minidbx_id *holding, minidbx_node_info *out, size_t capacity,
                  size_t *out_count)
{
    CHECK_DB(db);
    if ((capacity && !out) || !out_count)
        return minidbx_error_set(MINIDBX_EINVAL, "nodes: NULL output");
    if (db->be->version < 3 || !db->be->nodes)
        return minidbx_error_set(MINIDBX_EUNSUPPORTED, "nodes: the %s store is not made of nodes",
                                 db->be->name);
    *out_count = 0;
    return db->be->nodes(db->be, holding, out, capacity, out_count);
}
