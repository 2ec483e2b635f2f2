/*
 * cluster_repair.c - verify, repair and gc on a cluster.
 */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cluster_verify(minidbx_backend *be, const minidbx_id *id, unsigned flags,
                   minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx)
{
    (void)be; (void)id; (void)flags; (void)report; (void)cb; (void)ctx;
    return minidbx_error_set(MINIDBX_EUNSUPPORTED, "cluster verify: not yet");
}

/* Each node's gc, summed. */
int cluster_gc(minidbx_backend *be, minidbx_gc_report *report)
{
    struct cluster *c = cluster_of(be);
    int rc = 0;

    for (size_t i = 0; i < c->count && rc == 0; i++) {
        minidbx *db = cluster_node_db(&c->nodes[i]);
        minidbx_gc_report one;
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        if ((rc = cluster_call_end(c, &c->nodes[i], start, minidbx_gc(db, &one))) == 0) {
            report->objects_removed += one.objects_removed;
            report->bytes_removed += one.bytes_removed;
        }
    }
    return rc;
}
