/*
 * kv.c - the one driver every key/value peer runs under, so that each peer
 * is timed by the same loop, with the same order and the same checks.
 */
#include "bench.h"

#include <string.h>

int kv_check_item(const bench_dataset *ds, size_t i, const void *data, size_t size,
                  int full_check)
{
    const unsigned char *want = dataset_item(ds, i);
    const unsigned char *got = data;
    size_t n = ds->item_bytes;

    if (size != n)
        return fail("read-back", "object %zu: %zu bytes, expected %zu", i, size, n);
    if (full_check ? memcmp(got, want, n) != 0
                   : (memcmp(got, want, 8) != 0 || memcmp(got + n - 8, want + n - 8, 8) != 0))
        return fail("read-back", "object %zu: wrong bytes", i);
    return 0;
}

static int put_one_batch(const kv_peer *p, void *st, const bench_dataset *ds,
                         size_t first, size_t count, int batched)
{
    if (batched && p->begin && p->begin(st) != 0)
        return -1;
    for (size_t i = first; i < first + count; i++) {
        if (p->put(st, &ds->keys[i], dataset_item(ds, i), ds->item_bytes) != 0)
            return -1;
    }
    if (batched && p->commit && p->commit(st) != 0)
        return -1;
    return 0;
}

int kv_put_all(const kv_peer *p, void *st, const bench_dataset *ds, size_t batch,
               const batch_marks *marks, double *elapsed_s)
{
    double start, written = marks ? bytes_written() : 0.0;
    size_t done = 0, b = 0;

    if (p->prepare && p->prepare(st, ds) != 0)
        return -1;
    start = now_s();
    if (p->put_all) {
        if (p->put_all(st, ds) != 0)
            return -1;
        done = ds->count;
    }
    while (done < ds->count) {
        size_t n = ds->count - done < batch ? ds->count - done : batch;
        if (put_one_batch(p, st, ds, done, n, batch > 1) != 0)
            return -1;
        done += n;
        if (marks) {
            marks->seconds[b] = now_s() - start;
            marks->written[b++] = bytes_written() - written;
        }
    }
    *elapsed_s = now_s() - start;
    return 0;
}

int kv_get_all(const kv_peer *p, void *st, const bench_dataset *ds, const size_t *order,
               int full_check, double *elapsed_s)
{
    double start = now_s();

    if (p->get_all) {
        if (p->get_all(st, ds, order, full_check) != 0)
            return -1;
    } else {
        for (size_t k = 0; k < ds->count; k++) {
            const void *data;
            size_t size;
            size_t i = order[k];
            if (p->get(st, &ds->keys[i], &data, &size) != 0 ||
                kv_check_item(ds, i, data, size, full_check) != 0)
                return -1;
        }
    }
    *elapsed_s = now_s() - start;
    return 0;
}

int kv_exists_all(const kv_peer *p, void *st, const bench_dataset *ds, const size_t *order,
                  double *elapsed_s)
{
    double start = now_s();

    if (p->exists_all) {
        if (p->exists_all(st, ds, order) != 0)
            return -1;
    } else {
        for (size_t k = 0; k < ds->count; k++) {
            int rc = p->exists(st, &ds->keys[order[k]]);
            if (rc < 0)
                return -1;
            if (rc != 1)
                return fail(p->name, "exists: object %zu reported absent", order[k]);
        }
    }
    *elapsed_s = now_s() - start;
    return 0;
}

/* The ids of a call are gathered from the random order inside the timing:
 * a caller asking "which of these do you lack?" has to build that list too. */
int kv_missing_all(const kv_peer *p, void *st, const bench_dataset *ds, const size_t *order,
                   size_t batch, double *elapsed_s)
{
    minidbx_id ids[1000];
    double start = now_s();

    if (batch > sizeof(ids) / sizeof(ids[0]))
        batch = sizeof(ids) / sizeof(ids[0]);
    for (size_t done = 0; done < ds->count;) {
        size_t n = ds->count - done < batch ? ds->count - done : batch;
        size_t missing = 0;
        for (size_t k = 0; k < n; k++)
            ids[k] = ds->keys[order[done + k]];
        if (p->missing(st, ids, n, &missing) != 0)
            return -1;
        if (missing != 0)
            return fail(p->name, "missing: %zu of %zu stored objects reported missing",
                        missing, n);
        done += n;
    }
    *elapsed_s = now_s() - start;
    return 0;
}
