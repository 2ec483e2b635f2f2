/*
 * cluster_repair.c - verify and repair on a cluster, and gc.
 *
 * Verify walks every name and every object once, merging the nodes' sorted
 * lists, and knows for each which nodes hold a copy. An object's homes are
 * the R best nodes in the HRW order of its id that were up when the pass
 * began or are up now; a name's, of the name. (Not only those up now: a
 * node that misses a deadline in the middle of a pass is marked down for
 * a while, and the rest of the pass would move its copies to the next
 * node, which the next pass, with the node back, would undo. Its copies
 * fail instead, and are left to the next pass.) What it finds, and what MINIDBX_VERIFY_REPAIR does about it:
 *   MISSING   a home without a copy: the copy is made from another node
 *             (streamed, verified at both ends);
 *   CORRUPT   a home's copy fails the node's own verify: the right bytes
 *             are put there again (a put heals a bad copy);
 *   STALE     a name's home, or a home of its object (where the name pins
 *             it), without the newest copy of the name (none, or an older
 *             one: cluster_name_newer): the newest is set there, with its
 *             mtime;
 *   MISPLACED a copy on a node that is not a home: removed, but only once
 *             every home has a verified copy, and never an object that a
 *             name on that node points at (that node is one of the name's
 *             homes, which hold their objects).
 * Names go first, so that an object whose misplaced name is removed is
 * then a misplaced copy itself. Without REPAIR the same problems are
 * reported and nothing changes (a dry run).
 */
#include "cluster.h"

#include <stdatomic.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE 1024
/* Objects and names are repaired this many at a time: each waits mostly
 * on nodes (a verify, a copy, an fsync), not on this process's CPU. */
#define REPAIR_THREADS 8

struct repair {
    struct cluster *c;
    uint64_t up; /* the nodes up when the pass began */
    bool fix;
    pthread_mutex_t lock; /* the report and the callback: one problem at a time */
    minidbx_verify_report *report;
    minidbx_problem_cb cb;
    void *ctx;
};

/* Run fn(rp, i) for i in 0..count, on up to REPAIR_THREADS threads. */
struct pool {
    struct repair *rp;
    void (*fn)(struct repair *rp, void *items, size_t i);
    void *items;
    size_t count;
    atomic_size_t next;
};

static void *pool_worker(void *arg)
{
    struct pool *p = arg;
    size_t i;
    while ((i = atomic_fetch_add(&p->next, 1)) < p->count)
        p->fn(p->rp, p->items, i);
    return NULL;
}

static void run_pool(struct repair *rp, void (*fn)(struct repair *rp, void *items, size_t i), void *items,
                     size_t count)
{
    struct pool p = { rp, fn, items, count, 0 };
    pthread_t threads[REPAIR_THREADS];
    size_t started = 0;

    while (started < REPAIR_THREADS && started + 1 < count &&
           dbx_thread_start(&threads[started], pool_worker, &p) == 0)
        started++;
    pool_worker(&p);
    for (size_t i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
}

static void problem(struct repair *rp, minidbx_problem kind, const minidbx_id *id, bool repaired,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem(struct repair *rp, minidbx_problem kind, const minidbx_id *id, bool repaired,
                    const char *fmt, ...)
{
    char detail[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&rp->lock);
    rp->report->problems++;
    rp->report->repaired += repaired;
    if (rp->cb)
        rp->cb(rp->ctx, kind, id, detail, repaired);
    pthread_mutex_unlock(&rp->lock);
}

/* --- objects ------------------------------------------------------------------ */

/* What the nodes hold of one object: a bit per node. */
struct holding {
    uint64_t held;   /* a copy */
    uint64_t pinned; /* a copy that a name on that node points at */
    uint64_t size;
};

/* Is the node's copy sound? It is read to its end through the node's
 * handle, which checks it against the id (a node's own verify would do it
 * without moving the bytes, but an http:// node runs one verify at a time
 * and refuses the others). 1, 0, or an error of the node. */
static int copy_sound(struct repair *rp, struct cluster_node *node, const minidbx_id *id)
{
    minidbx *db = cluster_node_db(node);
    minidbx_reader *r = NULL;
    char *chunk = malloc(1u << 20);
    size_t n = 1;
    int64_t start = cluster_call_start();
    int rc = !chunk ? minidbx_error_set(MINIDBX_ENOMEM, "out of memory")
                    : db ? minidbx_reader_open(db, id, &r, NULL) : MINIDBX_EIO;

    while (rc == 0 && n > 0)
        rc = minidbx_reader_read(r, chunk, 1u << 20, &n);
    minidbx_reader_close(r);
    free(chunk);
    if (rc == MINIDBX_ENOTFOUND || rc == MINIDBX_ECORRUPT) {
        cluster_call_end(rp->c, node, start, 0);
        return 0;
    }
    cluster_call_end(rp->c, node, start, rc);
    return rc < 0 ? rc : 1;
}

/* Put the right bytes on node again (a put heals a bad copy: on a local
 * node, of any kind with full durability, else one of the wrong size or
 * type). When that is not enough and no name on the node points at the
 * copy, the copy is deleted and made again, but only once another node has
 * handed over sound bytes: a copy is never deleted when no other can
 * replace it (the verdict "bad" may come from one failed read). 1 when the
 * copy is sound. */
static bool replace_copy(struct repair *rp, struct cluster_node *node, const minidbx_id *id, bool pinned)
{
    minidbx *db = cluster_node_db(node);
    int copied = cluster_copy_object(rp->c, id, node, NULL, 0);

    if (copied == 0 && copy_sound(rp, node, id) == 1)
        return true;
    if (copied != 0 || pinned || !db || minidbx_delete(db, id) < 0)
        return false;
    return cluster_copy_object(rp->c, id, node, NULL, 0) == 0 && copy_sound(rp, node, id) == 1;
}

/* The homes of key for this pass (see the top of the file). */
static unsigned pass_homes(struct repair *rp, uint64_t key, unsigned out[CLUSTER_NODES_MAX])
{
    return cluster_homes_among(rp->c, key, rp->up | cluster_up_nodes(rp->c), out);
}

static void repair_object(struct repair *rp, const minidbx_id *id, const struct holding *h)
{
    struct cluster *c = rp->c;
    unsigned home[CLUSTER_NODES_MAX];
    unsigned count = pass_homes(rp, cluster_id_key(id), home), sound = 0;
    uint64_t is_home = 0;

    pthread_mutex_lock(&rp->lock);
    rp->report->objects_checked++;
    rp->report->bytes_checked += h->size;
    pthread_mutex_unlock(&rp->lock);
    for (unsigned k = 0; k < count; k++) {
        struct cluster_node *node = &c->nodes[home[k]];
        bool fixed = false;
        is_home |= 1ull << home[k];
        if (h->held & (1ull << home[k])) {
            int rc = copy_sound(rp, node, id);
            if (rc == 1) {
                sound++;
                continue;
            }
            if (rc < 0) /* the node failed: it is down now, nothing to say of the copy */
                continue;
            fixed = rp->fix && replace_copy(rp, node, id, (h->pinned & (1ull << home[k])) != 0);
            sound += fixed;
            problem(rp, MINIDBX_PROBLEM_CORRUPT, id, fixed, "bad copy on %s%s", node->location,
                    fixed ? ", replaced" : rp->fix ? ", not replaced" : "");
            continue;
        }
        /* sound only once read back: a put onto a copy the listing missed
         * may keep that copy as it was */
        fixed = rp->fix && cluster_copy_object(c, id, node, NULL, 0) == 0 && copy_sound(rp, node, id) == 1;
        sound += fixed;
        problem(rp, MINIDBX_PROBLEM_MISSING, id, fixed, "no copy on %s, a home%s", node->location,
                fixed ? ": copied there" : rp->fix ? ": not copied" : "");
    }
    /* a surplus copy goes only when every home has a sound one */
    for (size_t i = 0; i < c->count; i++) {
        struct cluster_node *node = &c->nodes[i];
        minidbx *db = cluster_node_db(node);
        bool fixed = false;
        if (!(h->held & (1ull << i)) || (is_home & (1ull << i)) || (h->pinned & (1ull << i)) || !db)
            continue;
        if (rp->fix && sound == c->replicas && count == c->replicas) {
            int64_t start = cluster_call_start();
            fixed = cluster_call_end(c, node, start, minidbx_delete(db, id)) == 0;
        }
        problem(rp, MINIDBX_PROBLEM_MISPLACED, id, fixed, "surplus copy on %s%s", node->location,
                fixed ? ", removed" : rp->fix ? ", kept (the homes are not all sound)" : "");
    }
}

static int list_page(minidbx *db, const void *ctx, void *page, size_t capacity, size_t *got)
{
    return minidbx_list(db, ctx, page, capacity, got);
}

/* Merge sorted pages of size capacity; items are minidbx_object_info or
 * minidbx_name_info (key_of tells their order). Returns the bound up to
 * which the merge is complete: the least last item of a full page (NULL:
 * every page ended, the merge is complete). */
static const void *complete_up_to(struct cluster *c, void *pages[], const size_t got[], size_t capacity,
                                  size_t item_size, int (*cmp)(const void *, const void *))
{
    const void *bound = NULL;
    for (size_t i = 0; i < c->count; i++) {
        if (got[i] < capacity)
            continue;
        const void *last = (const char *)pages[i] + (got[i] - 1) * item_size;
        if (!bound || cmp(last, bound) < 0)
            bound = last;
    }
    return bound;
}

static int cmp_object(const void *a, const void *b)
{
    return memcmp(((const minidbx_object_info *)a)->id.bytes, ((const minidbx_object_info *)b)->id.bytes,
                  MINIDBX_ID_SIZE);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const minidbx_name_info *)a)->name, ((const minidbx_name_info *)b)->name);
}

struct object_item {
    minidbx_id id;
    struct holding h;
};

static void object_task(struct repair *rp, void *items, size_t i)
{
    struct object_item *item = (struct object_item *)items + i;
    repair_object(rp, &item->id, &item->h);
}

/* Every object once, with the nodes that hold it. */
static int repair_objects(struct repair *rp)
{
    struct cluster *c = rp->c;
    minidbx_object_info *pages[CLUSTER_NODES_MAX] = { NULL };
    size_t got[CLUSTER_NODES_MAX], pos[CLUSTER_NODES_MAX];
    struct object_item *items = malloc(c->count * PAGE * sizeof *items);
    minidbx_id cursor;
    bool started = false, done = false;
    int rc = items ? 0 : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");

    while (rc == 0 && !done) {
        rc = cluster_fetch_pages(c, sizeof **pages, PAGE, list_page, started ? &cursor : NULL,
                                 (void **)pages, got);
        const minidbx_object_info *bound =
            rc ? NULL : complete_up_to(c, (void **)pages, got, PAGE, sizeof **pages, cmp_object);
        memset(pos, 0, sizeof pos);
        size_t n = 0;
        while (rc == 0) {
            const minidbx_object_info *least = NULL;
            for (size_t i = 0; i < c->count; i++)
                if (pos[i] < got[i] && (!least || cmp_object(&pages[i][pos[i]], least) < 0))
                    least = &pages[i][pos[i]];
            if (!least || (bound && cmp_object(least, bound) > 0))
                break;
            minidbx_id id = least->id;
            struct holding h = { 0, 0, least->size };
            for (size_t i = 0; i < c->count; i++) {
                if (pos[i] < got[i] && minidbx_id_equal(&pages[i][pos[i]].id, &id)) {
                    h.held |= 1ull << i;
                    h.pinned |= pages[i][pos[i]].refs ? 1ull << i : 0;
                    pos[i]++;
                }
            }
            items[n++] = (struct object_item){ id, h };
        }
        run_pool(rp, object_task, items, n);
        done = bound == NULL;
        if (bound)
            cursor = bound->id;
        started = true;
        for (size_t i = 0; i < c->count; i++) {
            free(pages[i]);
            pages[i] = NULL;
        }
    }
    free(items);
    return rc;
}

/* One object, when verify is given an id: who holds it, asked node by node. */
static int repair_one(struct repair *rp, const minidbx_id *id)
{
    struct cluster *c = rp->c;
    struct holding h = { 0, 0, 0 };

    for (size_t i = 0; i < c->count; i++) {
        minidbx *db = cluster_node_db(&c->nodes[i]);
        minidbx_object_info info;
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        int rc = cluster_call_end(c, &c->nodes[i], start, minidbx_stat(db, id, &info));
        if (rc == 0) {
            h.held |= 1ull << i;
            h.pinned |= info.refs ? 1ull << i : 0;
            h.size = info.size;
        }
    }
    if (!h.held) {
        char hex[16];
        dbx_id_short(id, hex);
        return minidbx_error_set(MINIDBX_ENOTFOUND, "verify %s: no node has it", hex);
    }
    repair_object(rp, id, &h);
    return 0;
}

/* --- names ------------------------------------------------------------------------- */

static bool same_copy(const minidbx_name_info *a, const minidbx_name_info *b)
{
    return a->mtime_ns == b->mtime_ns && minidbx_id_equal(&a->id, &b->id);
}

/* copies[i]: node i's copy of the name, when has bit i. Its copies belong
 * on the name's homes and on its object's homes (the pins). */
static void repair_name(struct repair *rp, const minidbx_name_info *copies, uint64_t has)
{
    struct cluster *c = rp->c;
    const minidbx_name_info *best = NULL;
    unsigned home[2 * CLUSTER_NODES_MAX];
    unsigned count, agree = 0;
    uint64_t expected = 0;

    for (size_t i = 0; i < c->count; i++)
        if ((has & (1ull << i)) && (!best || cluster_name_newer(&copies[i], best)))
            best = &copies[i];
    count = pass_homes(rp, cluster_name_key(best->name), home);
    count += pass_homes(rp, cluster_id_key(&best->id), home + count);
    for (unsigned k = 0; k < count; k++) {
        unsigned i = home[k];
        bool present = has & (1ull << i), fixed;
        if (expected & (1ull << i))
            continue; /* a name home that is an object home too */
        expected |= 1ull << i;
        if (present && same_copy(&copies[i], best)) {
            agree++;
            continue;
        }
        fixed = rp->fix && cluster_name_copy(c, &c->nodes[i], best->name, &best->id, best->mtime_ns) == 0;
        agree += fixed;
        problem(rp, MINIDBX_PROBLEM_STALE, &best->id, fixed, "name %s: %s on %s, a home%s", best->name,
                present ? "an older copy" : "no copy", c->nodes[i].location,
                fixed ? ": set to the newest" : rp->fix ? ": not set" : "");
    }
    DBX_TEST_PAUSE("cluster-repair-surplus");
    for (size_t i = 0; i < c->count; i++) {
        minidbx *db = cluster_node_db(&c->nodes[i]);
        minidbx_name_info now;
        bool fixed = false, changed = false;
        if (!(has & (1ull << i)) || (expected & (1ull << i)) || !db)
            continue;
        if (rp->fix && agree == (unsigned)__builtin_popcountll(expected)) {
            /* only the copy the listing saw: a set since then may have
             * made this node a home of its new object, and the copy its
             * pin there */
            int64_t start = cluster_call_start();
            changed = cluster_call_end(c, &c->nodes[i], start, minidbx_name_get(db, best->name, &now)) != 0 ||
                      !same_copy(&now, &copies[i]);
            start = cluster_call_start();
            fixed = !changed &&
                    cluster_call_end(c, &c->nodes[i], start, minidbx_name_delete(db, best->name)) == 0;
        }
        problem(rp, MINIDBX_PROBLEM_MISPLACED, &copies[i].id, fixed, "name %s: surplus copy on %s%s",
                best->name, c->nodes[i].location,
                fixed ? ", removed" : changed ? ", kept (set again since)"
                : rp->fix ? ", kept (the homes do not all agree)" : "");
    }
}

static int name_page(minidbx *db, const void *ctx, void *page, size_t capacity, size_t *got)
{
    return minidbx_name_list(db, "", ctx, page, capacity, got);
}

/* A page's names: copies[item * N + node], with has[item]. */
struct name_items {
    size_t nodes;
    minidbx_name_info *copies;
    uint64_t *has;
};

static void name_task(struct repair *rp, void *items, size_t i)
{
    struct name_items *names = items;
    repair_name(rp, names->copies + i * names->nodes, names->has[i]);
}

static int repair_names(struct repair *rp)
{
    struct cluster *c = rp->c;
    minidbx_name_info *pages[CLUSTER_NODES_MAX] = { NULL };
    struct name_items items = { c->count, calloc(c->count * c->count * PAGE, sizeof *items.copies),
                                malloc(c->count * PAGE * sizeof *items.has) };
    size_t got[CLUSTER_NODES_MAX], pos[CLUSTER_NODES_MAX];
    char cursor[MINIDBX_NAME_MAX + 1];
    bool started = false, done = false;
    int rc = items.copies && items.has ? 0 : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");

    while (rc == 0 && !done) {
        rc = cluster_fetch_pages(c, sizeof **pages, PAGE, name_page, started ? cursor : NULL,
                                 (void **)pages, got);
        const minidbx_name_info *bound =
            rc ? NULL : complete_up_to(c, (void **)pages, got, PAGE, sizeof **pages, cmp_name);
        memset(pos, 0, sizeof pos);
        size_t n = 0;
        while (rc == 0) {
            const minidbx_name_info *least = NULL;
            for (size_t i = 0; i < c->count; i++)
                if (pos[i] < got[i] && (!least || cmp_name(&pages[i][pos[i]], least) < 0))
                    least = &pages[i][pos[i]];
            if (!least || (bound && cmp_name(least, bound) > 0))
                break;
            char name[MINIDBX_NAME_MAX + 1];
            minidbx_name_info *copies = items.copies + n * c->count;
            uint64_t has = 0;
            snprintf(name, sizeof name, "%s", least->name);
            for (size_t i = 0; i < c->count; i++) {
                if (pos[i] < got[i] && strcmp(pages[i][pos[i]].name, name) == 0) {
                    copies[i] = pages[i][pos[i]++];
                    has |= 1ull << i;
                }
            }
            items.has[n++] = has;
        }
        run_pool(rp, name_task, &items, n);
        done = bound == NULL;
        if (bound)
            snprintf(cursor, sizeof cursor, "%s", bound->name);
        started = true;
        for (size_t i = 0; i < c->count; i++) {
            free(pages[i]);
            pages[i] = NULL;
        }
    }
    free(items.copies);
    free(items.has);
    return rc;
}

int cluster_verify(minidbx_backend *be, const minidbx_id *id, unsigned flags,
                   minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx)
{
    struct repair rp = { .c = cluster_of(be), .up = cluster_up_nodes(cluster_of(be)), .fix = (flags & MINIDBX_VERIFY_REPAIR) != 0,
                         .report = report, .cb = cb, .ctx = ctx };
    int rc;

    pthread_mutex_init(&rp.lock, NULL);
    if (id)
        rc = repair_one(&rp, id);
    else if ((rc = repair_names(&rp)) == 0)
        rc = repair_objects(&rp);
    pthread_mutex_destroy(&rp.lock);
    return rc;
}

/* What the nodes' gc removed: each copy once, as the nodes listed them. */
struct gc_copies {
    minidbx_gc_options node_opts;
    const minidbx_gc_options *opts;
    struct gc_copy {
        minidbx_id id;
        uint64_t size;
    } *items;
    size_t count, capacity, listed; /* listed: by the node running now */
    int error;
};

static void gc_copy_removed(void *ctx, const minidbx_id *id, uint64_t size)
{
    struct gc_copies *g = ctx;
    g->listed++;
    if (g->error == 0 && (g->error = dbx_grow(&g->items, &g->capacity, g->count + 1, sizeof *g->items, 64)) == 0)
        g->items[g->count++] = (struct gc_copy){ *id, size };
}

static int gc_copy_cmp(const void *a, const void *b)
{
    return memcmp(((const struct gc_copy *)a)->id.bytes, ((const struct gc_copy *)b)->id.bytes, MINIDBX_ID_SIZE);
}

/* Each node's gc with the caller's options: a node keeps what a name on it
 * points at, and a name is set on every home of its object
 * (cluster_names.c), so a named object keeps its home copies. The report
 * counts objects, not copies (an object whose copies went from two nodes
 * is one), and removed is called once per object; a node that listed
 * fewer than it removed (a remote node lists 10,000) has the rest counted
 * as it reported them. */
int cluster_gc_ex(minidbx_backend *be, const minidbx_gc_options *opts, minidbx_gc_report *report)
{
    struct cluster *c = cluster_of(be);
    struct gc_copies g = { .node_opts = *opts, .opts = opts };
    int rc = 0;

    g.node_opts.removed = gc_copy_removed;
    g.node_opts.ctx = &g;
    cluster_cache_clear(c);
    for (size_t i = 0; i < c->count && rc == 0; i++) {
        minidbx *db = cluster_node_db(&c->nodes[i]);
        minidbx_gc_report one;
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        g.listed = 0;
        if ((rc = cluster_call_end(c, &c->nodes[i], start, minidbx_gc_ex(db, &g.node_opts, &one))) == 0 &&
            g.error == 0 && one.objects_removed > g.listed) {
            report->objects_removed += one.objects_removed - g.listed;
            report->bytes_removed += one.bytes_removed; /* the listed ones' bytes come off below */
            for (size_t k = g.count - g.listed; k < g.count; k++)
                report->bytes_removed -= g.items[k].size;
        }
    }
    if (rc == 0 && g.error)
        rc = minidbx_error_set(g.error, "gc: out of memory listing what was removed");
    if (g.count)
        qsort(g.items, g.count, sizeof *g.items, gc_copy_cmp);
    for (size_t k = 0; k < g.count; k++) {
        if (k && minidbx_id_equal(&g.items[k].id, &g.items[k - 1].id))
            continue;
        report->objects_removed++;
        report->bytes_removed += g.items[k].size;
        if (opts->removed)
            opts->removed(opts->ctx, &g.items[k].id, g.items[k].size);
    }
    free(g.items);
    return rc;
}

int cluster_gc(minidbx_backend *be, minidbx_gc_report *report)
{
    minidbx_gc_options now = { 0, 0, NULL, NULL };
    return cluster_gc_ex(be, &now, report);
}
