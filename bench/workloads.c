/*
 * workloads.c - the small-object workloads, each peer in its own fresh
 * directory of the run:
 *   small    N x 4 KiB: batched put, get and exists in random order,
 *            minidbx_missing in calls of 1,000
 *   durable  N x 4 KiB, one put per commit, every commit durable
 *   many     N x 256 B batched; puts/s of the first window vs the last,
 *            and the disk each store takes for it
 * Every store is read back and compared byte for byte (untimed) before
 * its timed read passes, which also leaves every peer equally warm.
 */
#include "bench.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum { SEED_SMALL = 1, SEED_DURABLE = 2, SEED_MANY = 3, SEED_ORDER = 99 };

static const kv_peer *const small_peers[] = {
    &peer_minidbx, &peer_lmdb,
#ifdef BENCH_HAVE_SQLITE
    &peer_sqlite_without_rowid, &peer_sqlite_rowid,
#endif
    &peer_files, &peer_git,
};

static const kv_peer *const durable_peers[] = {
    &peer_minidbx, &peer_lmdb,
#ifdef BENCH_HAVE_SQLITE
    &peer_sqlite_without_rowid, &peer_sqlite_rowid,
#endif
    &peer_files, &peer_fsync_loop, &peer_log,
};

static const kv_peer *const many_peers[] = {
    &peer_minidbx, &peer_lmdb,
#ifdef BENCH_HAVE_SQLITE
    &peer_sqlite_without_rowid, &peer_sqlite_rowid,
#endif
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* <run dir>/<workload>-<peer name with anything odd as '-'> */
static int store_dir(const bench_ctx *c, const char *workload, const kv_peer *p,
                     char out[PATH_MAX])
{
    char name[64];
    size_t n = (size_t)snprintf(name, sizeof(name), "%s-%s", workload, p->name);

    for (size_t i = 0; i < n && i < sizeof(name) - 1; i++) {
        if (!isalnum((unsigned char)name[i]))
            name[i] = '-';
    }
    return path_join(out, c->run_dir, name);
}

static double rate(size_t count, double seconds)
{
    return seconds > 0.0 ? (double)count / seconds : 0.0;
}

/* Open, put everything (timed), close. */
static int put_pass(const kv_peer *p, const char *dir, unsigned flags, const bench_dataset *ds,
                    size_t batch, double *batch_end_s, double *elapsed_s)
{
    void *st = NULL;
    int rc;

    if (p->open(&st, dir, p->variant, flags) != 0)
        return fail(p->name, "cannot open a new store in %s", dir);
    rc = kv_put_all(p, st, ds, batch, batch_end_s, elapsed_s);
    if (p->close(st) != 0)
        rc = -1;
    return rc;
}

/* Open for reading and compare every object in full, untimed. */
static int check_pass(const kv_peer *p, const char *dir, unsigned flags, const bench_dataset *ds,
                      const size_t *order)
{
    void *st = NULL;
    double ignored;
    int rc;

    if (p->open(&st, dir, p->variant, flags | KV_READ) != 0)
        return -1;
    rc = kv_get_all(p, st, ds, order, 1, &ignored);
    if (p->close(st) != 0)
        rc = -1;
    return rc;
}

/* The timed read passes of one open: get, exists, and missing if the peer
 * has a call for it. */
static int read_passes(bench_ctx *c, const kv_peer *p, const char *label, const char *dir,
                       unsigned flags, const bench_dataset *ds, const size_t *order)
{
    void *st = NULL;
    double t;
    int rc = -1;

    if (check_pass(p, dir, flags, ds, order) != 0)
        return -1;
    if (p->open(&st, dir, p->variant, flags | KV_READ) != 0)
        return -1;
    if (kv_get_all(p, st, ds, order, 0, &t) != 0 ||
        results_record(c->res, WL_SMALL, M_SMALL_GET, label, U_OPS, rate(ds->count, t)) != 0)
        goto out;
    if (kv_exists_all(p, st, ds, order, &t) != 0 ||
        results_record(c->res, WL_SMALL, M_SMALL_EXISTS, label, U_OPS, rate(ds->count, t)) != 0)
        goto out;
    if (p->missing && (kv_missing_all(p, st, ds, order, c->sz.batch, &t) != 0 ||
                       results_record(c->res, WL_SMALL, M_SMALL_MISSING, label, U_OPS,
                                      rate(ds->count, t)) != 0))
        goto out;
    rc = 0;
out:
    if (p->close(st) != 0)
        rc = -1;
    return rc;
}

static int skip_git(bench_ctx *c)
{
    static const char *const metrics[] = { M_SMALL_PUT, M_SMALL_GET, M_SMALL_EXISTS };

    for (size_t i = 0; i < COUNT_OF(metrics); i++) {
        if (results_skip(c->res, WL_SMALL, metrics[i], P_GIT, "skipped (git not found)") != 0)
            return -1;
    }
    return 0;
}

static int small_peer(bench_ctx *c, const kv_peer *p, const bench_dataset *ds,
                      const size_t *order, void *arg)
{
    char dir[PATH_MAX];
    double t;

    (void)arg;
    if (p == &peer_git && !c->have_git)
        return skip_git(c);
    if (store_dir(c, WL_SMALL, p, dir) != 0 ||
        put_pass(p, dir, 0, ds, c->sz.batch, NULL, &t) != 0 ||
        results_record(c->res, WL_SMALL, M_SMALL_PUT, p->name, U_OPS, rate(ds->count, t)) != 0)
        return -1;
    if (read_passes(c, p, p->name, dir, 0, ds, order) != 0)
        return -1;
    if (p->no_verify_name)
        return read_passes(c, p, p->no_verify_name, dir, KV_NO_VERIFY, ds, order);
    return 0;
}

static int durable_peer(bench_ctx *c, const kv_peer *p, const bench_dataset *ds,
                        const size_t *order, void *arg)
{
    char dir[PATH_MAX];
    double t;

    (void)arg;
    if (store_dir(c, WL_DURABLE, p, dir) != 0 ||
        put_pass(p, dir, KV_DURABLE, ds, 1, NULL, &t) != 0 ||
        results_record(c->res, WL_DURABLE, M_DURABLE_PUT, p->name, U_OPS, rate(ds->count, t)) != 0)
        return -1;
    return check_pass(p, dir, KV_DURABLE, ds, order);
}

/* puts/s over the first and the last window, from the time at the end of
 * each batch. */
static int record_windows(bench_ctx *c, const kv_peer *p, const double *batch_end_s,
                          size_t batches, double total_s)
{
    size_t window = c->sz.many_window, per = window / c->sz.batch;
    double first, last;

    if (per == 0 || per > batches)
        return fail(WL_MANY, "window of %zu puts does not fit the run", window);
    first = batch_end_s[per - 1];
    last = batch_end_s[batches - 1] - (per < batches ? batch_end_s[batches - 1 - per] : 0.0);
    if (results_record(c->res, WL_MANY, M_MANY_FIRST, p->name, U_OPS, rate(window, first)) != 0 ||
        results_record(c->res, WL_MANY, M_MANY_LAST, p->name, U_OPS, rate(window, last)) != 0 ||
        results_record(c->res, WL_MANY, M_MANY_RATIO, p->name, U_X,
                       rate(window, last) / rate(window, first)) != 0 ||
        results_record(c->res, WL_MANY, M_MANY_ALL, p->name, U_OPS,
                       rate(c->sz.many_count, total_s)) != 0)
        return -1;
    return 0;
}

/* What the store takes on disk, and (once per run) what the data is. */
static int record_disk(bench_ctx *c, const kv_peer *p, const char *dir, const bench_dataset *ds)
{
    double used = disk_bytes(dir);

    if (used < 0.0 ||
        results_record(c->res, WL_MANY, M_MANY_DISK, p->name, U_MIB, used / BENCH_MIB) != 0)
        return -1;
    if (p != &peer_minidbx)
        return 0;
    return results_record(c->res, WL_MANY, M_MANY_DISK, P_DATA, U_MIB,
                          (double)ds->count * (double)(MINIDBX_ID_SIZE + ds->item_bytes) /
                              BENCH_MIB);
}

static int many_peer(bench_ctx *c, const kv_peer *p, const bench_dataset *ds,
                     const size_t *order, void *arg)
{
    size_t batches = (ds->count + c->sz.batch - 1) / c->sz.batch;
    double *batch_end_s = arg;
    char dir[PATH_MAX];
    double t;

    if (store_dir(c, WL_MANY, p, dir) != 0 ||
        put_pass(p, dir, 0, ds, c->sz.batch, batch_end_s, &t) != 0 ||
        record_windows(c, p, batch_end_s, batches, t) != 0 || record_disk(c, p, dir, ds) != 0)
        return -1;
    return check_pass(p, dir, 0, ds, order);
}

typedef int (*peer_fn)(bench_ctx *c, const kv_peer *p, const bench_dataset *ds,
                       const size_t *order, void *arg);

/* Make the run's data set and random order, then run fn for each peer. */
static int run_peers(bench_ctx *c, const char *workload, const kv_peer *const *peers,
                     size_t npeers, size_t count, size_t bytes, uint64_t seed, peer_fn fn,
                     void *arg)
{
    bench_dataset ds;
    size_t *order = NULL;
    int rc = -1;

    /* A new seed per run: no run can find the previous one's bytes. */
    if (dataset_make(&ds, count, bytes, seed + 1000u * (uint64_t)c->run) != 0)
        return -1;
    if (!(order = random_order(ds.count, SEED_ORDER + (uint64_t)c->run)))
        goto out;
    for (size_t i = 0; i < npeers; i++) {
        if (fn(c, peers[i], &ds, order, arg) != 0) {
            fail(workload, "%s failed", peers[i]->name);
            goto out;
        }
    }
    rc = 0;
out:
    free(order);
    dataset_free(&ds);
    return rc;
}

int workload_small(bench_ctx *c)
{
    return run_peers(c, WL_SMALL, small_peers, COUNT_OF(small_peers), c->sz.small_count,
                     c->sz.small_bytes, SEED_SMALL, small_peer, NULL);
}

int workload_durable(bench_ctx *c)
{
    return run_peers(c, WL_DURABLE, durable_peers, COUNT_OF(durable_peers),
                     c->sz.durable_count, c->sz.small_bytes, SEED_DURABLE, durable_peer, NULL);
}

int workload_many(bench_ctx *c)
{
    size_t batches = (c->sz.many_count + c->sz.batch - 1) / c->sz.batch;
    double *batch_end_s = calloc(batches ? batches : 1, sizeof(*batch_end_s));
    int rc;

    if (!batch_end_s)
        return fail(WL_MANY, "out of memory");
    rc = run_peers(c, WL_MANY, many_peers, COUNT_OF(many_peers), c->sz.many_count,
                   c->sz.many_bytes, SEED_MANY, many_peer, batch_end_s);
    free(batch_end_s);
    return rc;
}
