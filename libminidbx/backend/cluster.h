/*
 * cluster.h - what the files of the cluster: backend share. Not installed.
 *
 * A cluster: store is N stores ("nodes", any location minidbx_open takes),
 * each opened with its own handle. Objects are placed by rendezvous
 * (highest random weight) hashing of their id, names by hashing the name;
 * each lives on the R best-scoring nodes that are up ("homes"). A name also
 * has a copy on each home of its object (a pin: a node's gc keeps what a
 * name on that node points at, and the object's homes count all its names),
 * and every node with a name holds its object. The files:
 *   cluster.c         the cluster file, opening, node state (up/down, the
 *                     prober thread that brings a node back), placement,
 *                     info and nodes, the table;
 *   cluster_objects.c put (R copies in parallel), get and readers (in HRW
 *                     order, falling back), exists/missing/stat/list merged;
 *   cluster_names.c   names (last writer wins), batches;
 *   cluster_repair.c  verify and repair (back to R verified copies), gc;
 *   cluster_cache.c   a small cache of verified small objects (a gateway's
 *                     hot objects), used for at most 1 s;
 *   cluster_pool.c    the worker threads that write a put's copies.
 *
 * How a node fails: a call that returns MINIDBX_EIO (the node cannot be
 * reached, or did not answer within its deadline) marks the node down;
 * calls skip a node that is down, and the prober thread tries it again
 * after a pause that doubles from 250 ms to 10 s, so a dead or hung node
 * costs its deadline once, not on every call.
 */
#ifndef MINIDBX_CLUSTER_H
#define MINIDBX_CLUSTER_H

#include "internal.h"

#include <pthread.h>
#include <stdatomic.h>

#define CLUSTER_NODES_MAX 64

struct cluster_node {
    char *location;
    uint64_t key;                 /* the hash of location: the node's identity in HRW */
    minidbx *_Atomic db;          /* NULL until it opened (set once, under lock) */
    atomic_bool up;
    atomic_uint_fast64_t requests, failures, latency_us_total, latency_us_max;
    pthread_mutex_t lock;         /* what follows */
    int64_t down_since_ns;
    int64_t retry_at_ns;          /* monotonic: when the prober tries again */
    unsigned backoff_ms;
    char last_error[256];
};

struct cluster {
    minidbx_backend base;
    char *path;                   /* the cluster file */
    unsigned replicas;            /* R */
    unsigned write_quorum;        /* W */
    size_t count;                 /* N */
    struct cluster_node *nodes;
    minidbx_options node_opts;    /* what every node is opened with */
    /* the prober: wakes when a node goes down, or when a retry is due */
    pthread_t prober;
    bool prober_started;
    pthread_mutex_t prober_lock;
    pthread_cond_t prober_wake;
    bool stopping;
    /* the threads that write a put's copies (cluster_pool.c) */
    struct cluster_pool *pool;
    /* small verified objects (cluster_cache.c) */
    struct cluster_cache_slot *cache;
    size_t cache_slots;
};

static inline struct cluster *cluster_of(minidbx_backend *be)
{
    return (struct cluster *)be;
}

/* --- placement (cluster.c) ------------------------------------------------- */

uint64_t cluster_id_key(const minidbx_id *id);
uint64_t cluster_name_key(const char *name);
/* order[0..N) = node indexes by HRW score for key, best first. */
void cluster_order(const struct cluster *c, uint64_t key, unsigned order[CLUSTER_NODES_MAX]);

/* The R best nodes that are up for key (indexes into c->nodes, best
 * first): the homes. Returns how many (fewer when fewer are up). */
unsigned cluster_homes(struct cluster *c, uint64_t key, unsigned out[CLUSTER_NODES_MAX]);
/* The nodes that are up now, a bit each (bit i: c->nodes[i]). */
uint64_t cluster_up_nodes(struct cluster *c);
/* cluster_homes among the nodes of up (a bit each) instead of those up
 * now (repair: see cluster_repair.c). */
unsigned cluster_homes_among(const struct cluster *c, uint64_t key, uint64_t up, unsigned out[CLUSTER_NODES_MAX]);

/* --- node state (cluster.c) ------------------------------------------------- */

/* The node's handle if it is up, else NULL. */
minidbx *cluster_node_db(struct cluster_node *node);
/* Start timing a call to a node. */
int64_t cluster_call_start(void);
/* Account for a call that returned rc: counts, latency, and on EIO (the
 * node cannot be reached or timed out) mark the node down with the
 * thread's error message. Returns rc. */
int cluster_call_end(struct cluster *c, struct cluster_node *node, int64_t start, int rc);
/* Is rc a failure of the node itself (then it is marked down)? */
static inline bool cluster_node_failed(int rc)
{
    return rc == MINIDBX_EIO;
}

/* The error to return when no node could answer: the worst seen. */
int cluster_pick_error(int have, int rc);

/* Run fn for count tasks in parallel (cluster_pool.c): the first in the
 * calling thread, the others on the handle's pool of workers (or, when
 * none is to be had, in the caller after the first); each task keeps its
 * own rc and error message. */
struct cluster_task {
    int (*fn)(struct cluster_task *t);
    struct cluster *c;
    struct cluster_node *node;
    void *arg;
    int rc;
    int created;
    char error[256];
};
void cluster_run_parallel(struct cluster_task *tasks, size_t count);
int cluster_pool_new(struct cluster *c);
/* Stops and joins the workers: no call may be running. */
void cluster_pool_free(struct cluster *c);

/* Ask every node that is up for one sorted page (fn: a node's list call
 * with ctx its arguments) into pages[i] (malloc'd, capacity items of
 * item_size; NULL for a node that is down) and got[i]. 0 when at least one
 * node answered, else EIO; the caller frees pages[0..N). */
typedef int (*cluster_page_fn)(minidbx *db, const void *ctx, void *page, size_t capacity, size_t *got);
int cluster_fetch_pages(struct cluster *c, size_t item_size, size_t capacity, cluster_page_fn fn,
                        const void *ctx, void *pages[], size_t got[]);

/* --- objects (cluster_objects.c) --------------------------------------------- */

int cluster_put(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size);
int cluster_get(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size);
int cluster_exists(minidbx_backend *be, const minidbx_id *id);
int cluster_missing(minidbx_backend *be, const minidbx_id *ids, size_t count,
                    minidbx_id *out_missing, size_t *out_count);
int cluster_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out);
int cluster_del(minidbx_backend *be, const minidbx_id *id, unsigned flags);
int cluster_list(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
                 size_t capacity, size_t *out_count);
int cluster_writer_open(minidbx_backend *be, minidbx_backend_writer **out);
int cluster_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                        uint64_t *out_size);
/* Copy an object onto dst from whichever other node holds a good copy
 * (streamed, verified on the way); with name (may be NULL), committed with
 * that name pointing at it at mtime_ns, in one batch on dst. */
int cluster_copy_object(struct cluster *c, const minidbx_id *id, struct cluster_node *dst, const char *name,
                        int64_t mtime_ns);

/* --- names (cluster_names.c) --------------------------------------------------- */

int cluster_name_set(minidbx_backend *be, const char *name, const minidbx_id *id);
int cluster_name_set_at(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns);
int cluster_name_get(minidbx_backend *be, const char *name, minidbx_name_info *out);
int cluster_name_delete(minidbx_backend *be, const char *name);
int cluster_name_list(minidbx_backend *be, const char *prefix, const char *after,
                      minidbx_name_info *out, size_t capacity, size_t *out_count);
/* Set name -> id with mtime_ns on one node, copying the object there first
 * when it lacks it. ENOTFOUND: no node has the object. */
int cluster_name_copy(struct cluster *c, struct cluster_node *node, const char *name,
                      const minidbx_id *id, int64_t mtime_ns);
/* The rule for copies of one name that differ: 1 if a wins over b (the
 * later mtime; the same mtime: the larger id). */
bool cluster_name_newer(const minidbx_name_info *a, const minidbx_name_info *b);
int cluster_batch_begin(minidbx_backend *be);
int cluster_batch_commit(minidbx_backend *be);
int cluster_batch_abort(minidbx_backend *be);
void cluster_batch_forget(struct cluster *c);

/* --- the cache of small objects (cluster_cache.c) ------------------------------ */

#define CLUSTER_CACHE_OBJECT_MAX (64u * 1024u)
struct cluster_cache_slot;
int cluster_cache_init(struct cluster *c, size_t slots);
void cluster_cache_free(struct cluster *c);
/* A malloc'd copy of a fresh entry for id: true. */
bool cluster_cache_get(struct cluster *c, const minidbx_id *id, void **out_data, size_t *out_size);
/* Remember verified bytes (nothing over CLUSTER_CACHE_OBJECT_MAX). */
void cluster_cache_put(struct cluster *c, const minidbx_id *id, const void *data, size_t size);
void cluster_cache_forget(struct cluster *c, const minidbx_id *id);
void cluster_cache_clear(struct cluster *c);

/* --- verify, repair, gc (cluster_repair.c) ------------------------------------------ */

int cluster_verify(minidbx_backend *be, const minidbx_id *id, unsigned flags,
                   minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx);
int cluster_gc(minidbx_backend *be, minidbx_gc_report *report);
int cluster_gc_ex(minidbx_backend *be, const minidbx_gc_options *opts, minidbx_gc_report *report);

#endif
