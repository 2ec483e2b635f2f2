/*
 * latency.c - one client, one put at a time: the time a caller waits for
 * minidbx_put of a 4 KiB and of a 1 MiB object, with the store's default
 * durability (MINIDBX_SYNC_FULL) and with syncing off (MINIDBX_SYNC_NONE,
 * the Go system's way: it never fsyncs). Each figure is the median over
 * the puts of a run. Next to the durable rows, in the same run: one flush
 * of as many bytes (append to a file + fdatasync), so that the goal
 * "durable <= 2 flushes + 0.3 ms" is measured on this disk, not assumed;
 * and, for 4 KiB, two such appends to two files by two threads at once:
 * what a write-ahead log beside LMDB would pay if its flush ran beside
 * LMDB's own (near one flush if the disk overlaps them, two if not).
 * The objects are distinct random bytes, made before each timed put.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SEED_LATENCY = 7 };

typedef struct {
    const char *metric;
    size_t bytes;
    size_t count;
    minidbx_durability durability;
} latency_row;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median_ms(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return 1000.0 * (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0);
}

/* n puts of distinct objects into a fresh store; their median latency. */
static int time_puts(bench_ctx *c, const latency_row *row, unsigned char *buf, double *ms_out)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    char dir[PATH_MAX], name[64];
    double *t = calloc(row->count, sizeof(*t));
    uint64_t seed = SEED_LATENCY + 1000u * (uint64_t)c->run + row->bytes + row->durability;
    minidbx *db = NULL;
    int rc = -1;

    if (!t)
        return fail(WL_LATENCY, "out of memory");
    snprintf(name, sizeof(name), "latency-%zu-%s", row->bytes,
             row->durability == MINIDBX_SYNC_FULL ? "sync" : "nosync");
    opts.durability = row->durability;
    if (path_join(dir, c->run_dir, name) != 0 || (rc = minidbx_open(&db, dir, &opts)) != 0) {
        free(t);
        return rc < 0 && db == NULL ? fail_mdx("minidbx_open", rc) : -1;
    }
    for (size_t i = 0; i < row->count && rc == 0; i++) {
        minidbx_id id;
        rng_fill(buf, row->bytes, &seed);
        double start = now_s();
        if ((rc = minidbx_put(db, buf, row->bytes, &id)) != 0)
            fail_mdx("minidbx_put", rc);
        t[i] = now_s() - start;
    }
    minidbx_close(db);
    if (rc == 0)
        *ms_out = median_ms(t, row->count);
    free(t);
    return rc == 0 ? 0 : -1;
}

/* The same number of appends of bytes + fdatasync to one file. */
static int time_flushes(bench_ctx *c, const latency_row *row, unsigned char *buf, double *ms_out)
{
    char path[PATH_MAX], name[64];
    double *t = calloc(row->count, sizeof(*t));
    uint64_t seed = SEED_LATENCY + 7u;
    int fd = -1, rc = -1;

    if (!t)
        return fail(WL_LATENCY, "out of memory");
    snprintf(name, sizeof(name), "latency-flush-%zu", row->bytes);
    if (path_join(path, c->run_dir, name) != 0)
        goto out;
    if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        fail("open", "%s: %s", path, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < row->count; i++) {
        rng_fill(buf, row->bytes, &seed);
        double start = now_s();
        if (write_all(fd, buf, row->bytes) != 0 || fdatasync(fd) != 0) {
            fail("append+fdatasync", "%s: %s", path, strerror(errno));
            goto out;
        }
        t[i] = now_s() - start;
    }
    *ms_out = median_ms(t, row->count);
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(t);
    return rc;
}

/* One of the two files of time_flush_pair, appended to by its own thread
 * whenever the barrier lets it go. */
typedef struct {
    int fd;
    size_t bytes, count;
    const unsigned char *buf;
    pthread_barrier_t *go;
    int failed;
} flush_side;

static void *flush_side_run(void *arg)
{
    flush_side *f = arg;

    for (size_t i = 0; i < f->count; i++) {
        pthread_barrier_wait(&f->go[0]);
        if (!f->failed && (write_all(f->fd, f->buf, f->bytes) != 0 || fdatasync(f->fd) != 0))
            f->failed = errno ? errno : EIO;
        pthread_barrier_wait(&f->go[1]);
    }
    return NULL;
}

/* row->count rounds of: two threads each append row->bytes to a file of
 * its own and fdatasync it, at the same moment; the median round. */
static int time_flush_pair(bench_ctx *c, const latency_row *row, unsigned char *buf, double *ms_out)
{
    char path[PATH_MAX], name[64];
    double *t = calloc(row->count, sizeof(*t));
    pthread_barrier_t go[2];
    flush_side side[2] = { { .fd = -1 }, { .fd = -1 } };
    pthread_t other;
    int rc = -1;

    if (!t)
        return fail(WL_LATENCY, "out of memory");
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof(name), "latency-flush-pair-%d", k);
        side[k] = (flush_side){ .fd = -1, .bytes = row->bytes, .count = row->count, .buf = buf, .go = go };
        if (path_join(path, c->run_dir, name) != 0 ||
            (side[k].fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
            fail("open", "%s: %s", path, strerror(errno));
            goto out;
        }
    }
    pthread_barrier_init(&go[0], NULL, 2);
    pthread_barrier_init(&go[1], NULL, 2);
    if (pthread_create(&other, NULL, flush_side_run, &side[1]) != 0) {
        fail("pthread_create", "no thread");
        goto barriers;
    }
    for (size_t i = 0; i < row->count; i++) {
        double start = now_s();
        pthread_barrier_wait(&go[0]);
        if (!side[0].failed && (write_all(side[0].fd, buf, row->bytes) != 0 || fdatasync(side[0].fd) != 0))
            side[0].failed = errno ? errno : EIO;
        pthread_barrier_wait(&go[1]);
        t[i] = now_s() - start;
    }
    pthread_join(other, NULL);
    if (side[0].failed || side[1].failed)
        fail("append+fdatasync", "two files at once: %s", strerror(side[0].failed ? side[0].failed : side[1].failed));
    else
        *ms_out = median_ms(t, row->count), rc = 0;
barriers:
    pthread_barrier_destroy(&go[0]);
    pthread_barrier_destroy(&go[1]);
out:
    for (int k = 0; k < 2; k++)
        if (side[k].fd >= 0)
            close(side[k].fd);
    free(t);
    return rc;
}

int workload_latency(bench_ctx *c)
{
    const latency_row rows[] = {
        { M_LAT_SMALL, 4096, c->sz.latency_small, MINIDBX_SYNC_FULL },
        { M_LAT_SMALL_NS, 4096, c->sz.latency_small, MINIDBX_SYNC_NONE },
        { M_LAT_BIG, 1 << 20, c->sz.latency_big, MINIDBX_SYNC_FULL },
        { M_LAT_BIG_NS, 1 << 20, c->sz.latency_big, MINIDBX_SYNC_NONE },
    };
    unsigned char *buf = malloc(1 << 20);
    int rc = 0;

    if (!buf)
        return fail(WL_LATENCY, "out of memory");
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]) && rc == 0; i++) {
        double ms;
        rc = time_puts(c, &rows[i], buf, &ms) != 0 ||
             results_record(c->res, WL_LATENCY, rows[i].metric, P_MINIDBX, U_MS, ms) != 0;
        if (rc == 0 && rows[i].durability == MINIDBX_SYNC_FULL)
            rc = time_flushes(c, &rows[i], buf, &ms) != 0 ||
                 results_record(c->res, WL_LATENCY, rows[i].metric, P_LIMIT_FLUSH, U_MS, ms) != 0;
        if (rc == 0 && rows[i].durability == MINIDBX_SYNC_FULL && rows[i].bytes == 4096)
            rc = time_flush_pair(c, &rows[i], buf, &ms) != 0 ||
                 results_record(c->res, WL_LATENCY, rows[i].metric, P_LIMIT_FLUSH2, U_MS, ms) != 0;
    }
    free(buf);
    return rc ? -1 : 0;
}
