/*
 * cluster_names.c - names on a cluster, and batches.
 *
 * A name lives on the R best nodes that are up in the HRW order of the
 * name (not of its object), and each of them holds the object too (copied
 * there when missing: a name never dangles on a node). It is also set on
 * its object's homes, as a pin (cluster.h). Writers that race
 * resolve by one rule, cluster_name_newer: the copy with the later mtime
 * wins, and of two with the same mtime the one with the larger id. Every
 * copy of one set carries the same mtime (minidbx_name_set_at), reads pick
 * the winner among the copies they see, and repair makes every copy agree.
 */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cluster_name_newer(const minidbx_name_info *a, const minidbx_name_info *b)
{
    if (a->mtime_ns != b->mtime_ns)
        return a->mtime_ns > b->mtime_ns;
    return memcmp(a->id.bytes, b->id.bytes, MINIDBX_ID_SIZE) > 0;
}

/* Attempts at setting a name on a node whose gc keeps taking the object
 * (a node without batches: an http:// one; see cluster_copy_object). */
#define NAME_COPY_ATTEMPTS 3

/* On one node: the name with its mtime (which leaves a newer copy of the
 * name there alone: last writer wins on the node, in one transaction), and
 * the object under it, copied from another node when missing. A copy is
 * committed together with the name (cluster_copy_object): left unnamed
 * for a moment, a gc on the node could take it. A gc between finding the
 * object there and setting the name makes the set ENOTFOUND: then again,
 * with a copy. ENOTFOUND: no node has the object. */
int cluster_name_copy(struct cluster *c, struct cluster_node *node, const char *name,
                      const minidbx_id *id, int64_t mtime_ns)
{
    minidbx *db = cluster_node_db(node);
    int rc = MINIDBX_ENOTFOUND;

    if (!db)
        return minidbx_error_set(MINIDBX_EIO, "%s: down", node->location);
    for (int attempt = 0; attempt < NAME_COPY_ATTEMPTS && rc == MINIDBX_ENOTFOUND; attempt++) {
        int64_t start = cluster_call_start();
        rc = cluster_call_end(c, node, start, minidbx_exists(db, id));
        if (rc == 1) {
            start = cluster_call_start();
            rc = cluster_call_end(c, node, start, minidbx_name_set_at(db, name, id, mtime_ns));
        } else if (rc == 0) {
            rc = cluster_copy_object(c, id, node, name, mtime_ns);
        }
    }
    return rc;
}

/* The pins: a copy of the name on each home of its object where it is not
 * yet (placed: the nodes it was set on), so that a node's gc keeps the
 * object there and its homes count all its names. Best effort: the name's
 * homes hold the object anyway; repair adds what fails. */
static uint64_t pin_at_object_homes(struct cluster *c, const char *name, const minidbx_id *id,
                                    int64_t mtime_ns, uint64_t placed)
{
    unsigned home[CLUSTER_NODES_MAX];
    unsigned count = cluster_homes(c, cluster_id_key(id), home);

    for (unsigned k = 0; k < count; k++)
        if (!(placed & (1ull << home[k])) && cluster_name_copy(c, &c->nodes[home[k]], name, id, mtime_ns) == 0)
            placed |= 1ull << home[k];
    return placed;
}

/* The name pointed at old before: its pins on old's homes that this set
 * did not reach still say old (and keep old's copies from gc, and count
 * in its refs): remove those, and only those (a copy that changed since
 * is another writer's). */
static void unpin_old(struct cluster *c, const char *name, const minidbx_name_info *old, uint64_t placed)
{
    unsigned home[CLUSTER_NODES_MAX];
    unsigned count = cluster_homes(c, cluster_id_key(&old->id), home);

    for (unsigned k = 0; k < count; k++) {
        struct cluster_node *node = &c->nodes[home[k]];
        minidbx *db = cluster_node_db(node);
        minidbx_name_info copy;
        if (!db || (placed & (1ull << home[k])) || minidbx_name_get(db, name, &copy) != 0 ||
            copy.mtime_ns != old->mtime_ns || !minidbx_id_equal(&copy.id, &old->id))
            continue;
        int64_t start = cluster_call_start();
        cluster_call_end(c, node, start, minidbx_name_delete(db, name));
    }
}

int cluster_name_set_at(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns)
{
    struct cluster *c = cluster_of(be);
    unsigned order[CLUSTER_NODES_MAX];
    unsigned stored = 0;
    uint64_t placed = 0;
    minidbx_name_info old, set = { .id = *id, .mtime_ns = mtime_ns };
    bool had = cluster_name_get(be, name, &old) == 0;
    bool replaces = had && !minidbx_id_equal(&old.id, id);
    int error = 0;
    char message[256] = "no node is up";

    /* Last writer wins: a newer copy stands, and keeps its pins. (A set
     * racing this check meets the same rule on each node, in the node's
     * own transaction.) */
    if (had && cluster_name_newer(&old, &set)) {
        dbx_error_clear();
        return 0;
    }

    cluster_order(c, cluster_name_key(name), order);
    for (size_t k = 0; k < c->count && stored < c->replicas; k++) {
        struct cluster_node *node = &c->nodes[order[k]];
        if (!cluster_node_db(node))
            continue;
        int rc = cluster_name_copy(c, node, name, id, mtime_ns);
        if (rc == MINIDBX_ENOTFOUND)
            return rc; /* the object is nowhere: nothing to point at */
        if (rc == 0) {
            stored++;
            placed |= 1ull << order[k];
            continue;
        }
        error = cluster_pick_error(error, rc);
        snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
    }
    if (stored >= c->write_quorum) {
        placed = pin_at_object_homes(c, name, id, mtime_ns, placed);
        if (replaces)
            unpin_old(c, name, &old, placed);
        dbx_error_clear();
        return 0;
    }
    return minidbx_error_set(error ? error : MINIDBX_EIO, "name set %s: %u of %u copies set, %u needed: %s",
                             name, stored, c->replicas, c->write_quorum, message);
}

int cluster_name_set(minidbx_backend *be, const char *name, const minidbx_id *id)
{
    return cluster_name_set_at(be, name, id, dbx_now_ns());
}

/* The newest copy among the name's R best nodes that answer, or, when none
 * of them has it, among the others (a copy placed there while a home was
 * down). */
int cluster_name_get(minidbx_backend *be, const char *name, minidbx_name_info *out)
{
    struct cluster *c = cluster_of(be);
    unsigned order[CLUSTER_NODES_MAX];
    unsigned answered = 0;
    bool found = false;
    int error = 0;
    char message[256] = "";

    cluster_order(c, cluster_name_key(name), order);
    for (size_t k = 0; k < c->count && !(found && answered >= c->replicas); k++) {
        struct cluster_node *node = &c->nodes[order[k]];
        minidbx *db = cluster_node_db(node);
        minidbx_name_info info;
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        int rc = cluster_call_end(c, node, start, minidbx_name_get(db, name, &info));
        if (rc == 0 || rc == MINIDBX_ENOTFOUND)
            answered++;
        if (rc == 0 && (!found || cluster_name_newer(&info, out))) {
            *out = info;
            found = true;
        } else if (rc < 0) {
            if (rc != MINIDBX_ENOTFOUND || !message[0])
                snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
            error = cluster_pick_error(error, rc);
        }
    }
    if (found)
        return 0;
    return minidbx_error_set(error ? error : MINIDBX_EIO, "%s", error ? message : "name get: no node is up");
}

/* From every node that is up. A node that is down keeps its copy; repair
 * may bring the name back from it (there are no tombstones). */
int cluster_name_delete(minidbx_backend *be, const char *name)
{
    struct cluster *c = cluster_of(be);
    bool deleted = false, answered = false;
    int error = 0;
    char message[256] = "";

    for (size_t i = 0; i < c->count; i++) {
        minidbx *db = cluster_node_db(&c->nodes[i]);
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        int rc = cluster_call_end(c, &c->nodes[i], start, minidbx_name_delete(db, name));
        answered |= rc == 0 || rc == MINIDBX_ENOTFOUND;
        deleted |= rc == 0;
        if (rc < 0 && rc != MINIDBX_ENOTFOUND) {
            error = rc;
            snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
        }
    }
    if (error)
        return minidbx_error_set(error, "%s", message);
    if (!answered)
        return minidbx_error_set(MINIDBX_EIO, "name delete %s: no node is up", name);
    return deleted ? 0 : minidbx_error_set(MINIDBX_ENOTFOUND, "name %s not found", name);
}

/* The nodes' sorted pages merged; of the copies of one name, the newest. */
struct name_page_args {
    const char *prefix, *after;
};

static int node_name_list(minidbx *db, const void *ctx, void *page, size_t capacity, size_t *got)
{
    const struct name_page_args *args = ctx;
    return minidbx_name_list(db, args->prefix, args->after, page, capacity, got);
}

int cluster_name_list(minidbx_backend *be, const char *prefix, const char *after,
                      minidbx_name_info *out, size_t capacity, size_t *out_count)
{
    struct cluster *c = cluster_of(be);
    struct name_page_args args = { prefix, after };
    minidbx_name_info *pages[CLUSTER_NODES_MAX] = { NULL };
    size_t got[CLUSTER_NODES_MAX] = { 0 }, pos[CLUSTER_NODES_MAX] = { 0 };
    size_t n = 0;
    int rc;

    *out_count = 0;
    if (capacity == 0)
        return 0;
    rc = cluster_fetch_pages(c, sizeof **pages, capacity, node_name_list, &args, (void **)pages, got);
    while (rc == 0 && n < capacity) {
        const minidbx_name_info *least = NULL;
        for (size_t i = 0; i < c->count; i++)
            if (pos[i] < got[i] && (!least || strcmp(pages[i][pos[i]].name, least->name) < 0))
                least = &pages[i][pos[i]];
        if (!least)
            break;
        out[n] = *least;
        for (size_t i = 0; i < c->count; i++) {
            if (pos[i] < got[i] && strcmp(pages[i][pos[i]].name, out[n].name) == 0) {
                if (cluster_name_newer(&pages[i][pos[i]], &out[n]))
                    out[n] = pages[i][pos[i]];
                pos[i]++;
            }
        }
        n++;
    }
    for (size_t i = 0; i < c->count; i++)
        free(pages[i]);
    *out_count = n;
    return rc;
}

/* --- batches ---------------------------------------------------------------------
 * A batch cannot share one transaction with N nodes: as on an http://
 * store, every call in it reaches the nodes at once, commit only ends the
 * batch, and abort removes nothing (what it left unnamed is gc's). */

static _Thread_local struct cluster *thread_batch;

int cluster_batch_begin(minidbx_backend *be)
{
    if (thread_batch)
        return minidbx_error_set(MINIDBX_ESTATE, "batch: this thread has a batch open already");
    thread_batch = cluster_of(be);
    return 0;
}

static int batch_end(minidbx_backend *be, const char *what)
{
    if (thread_batch != cluster_of(be))
        return minidbx_error_set(MINIDBX_ESTATE, "%s: no batch open by this thread", what);
    thread_batch = NULL;
    return 0;
}

int cluster_batch_commit(minidbx_backend *be)
{
    return batch_end(be, "batch commit");
}

int cluster_batch_abort(minidbx_backend *be)
{
    return batch_end(be, "batch abort");
}

void cluster_batch_forget(struct cluster *c)
{
    if (thread_batch == c)
        thread_batch = NULL;
}
