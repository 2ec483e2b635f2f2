/*
 * big.c - one big object (1 GiB) through minidbx_writer_* / minidbx_reader_*
 * in 1 MiB chunks, with content generated on the fly so that nothing big is
 * held in memory, and the limits it is compared with:
 *   limit: SHA-256 1 core      OpenSSL EVP over 1 MiB blocks
 *   limit: write+fdatasync     generate + write the same bytes, one fdatasync
 *   file + SHA-256 + fsync     what a careful program does by hand: hash
 *                              while writing, fsync, rename, fsync(dir);
 *                              and for get: read + hash + compare
 * minidbx runs in forked children so that each peak RSS is its own; they
 * are forked before the small workloads allocate their data sets.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

enum { SEED_BIG = 4 };

typedef struct {
    const bench_ctx *c;
    char store[PATH_MAX];
    uint64_t seed;
    unsigned open_flags;   /* extra MINIDBX_OPEN_* for a read: 0 is the default open */
    minidbx_id id;         /* what the put returned */
} big_job;

/* The object's bytes, chunk by chunk, from a seed. */
typedef struct {
    uint64_t state;
    uint64_t left;
} stream_gen;

static size_t gen_next(stream_gen *g, unsigned char *buf, size_t cap)
{
    size_t n = g->left < cap ? (size_t)g->left : cap;

    rng_fill(buf, n, &g->state);
    g->left -= n;
    return n;
}

static double mb_per_s(uint64_t bytes, double seconds)
{
    return seconds > 0.0 ? (double)bytes / 1e6 / seconds : 0.0;
}

/* ---- minidbx, in children --------------------------------------------- */

static int write_object(minidbx *db, const big_job *j, unsigned char *buf, minidbx_id *id)
{
    stream_gen g = { j->seed, j->c->sz.big_bytes };
    minidbx_writer *w = NULL;
    int rc = minidbx_writer_open(db, &w);

    if (rc != 0)
        return fail_mdx("minidbx_writer_open", rc);
    while (g.left > 0) {
        size_t n = gen_next(&g, buf, j->c->sz.chunk_bytes);
        if ((rc = minidbx_writer_write(w, buf, n)) != 0) {
            minidbx_writer_abort(w);
            return fail_mdx("minidbx_writer_write", rc);
        }
    }
    rc = minidbx_writer_commit(w, id);
    return rc == 0 ? 0 : fail_mdx("minidbx_writer_commit", rc);
}

static int big_put_child(void *arg, child_result *out)
{
    big_job *j = arg;
    unsigned char *buf = malloc(j->c->sz.chunk_bytes);
    minidbx *db = NULL;
    double start;
    int rc = -1;

    if (!buf)
        return fail("big put", "out of memory");
    if ((rc = minidbx_open(&db, j->store, NULL)) != 0) {
        rc = fail_mdx("minidbx_open", rc);
        goto out;
    }
    start = now_s();
    rc = write_object(db, j, buf, &out->id);
    out->value = mb_per_s(j->c->sz.big_bytes, now_s() - start);
out:
    minidbx_close(db);
    free(buf);
    return rc;
}

/* Read the whole object; if expect is not NULL compare it with the bytes
 * the seed gives (the untimed check). */
static int read_object(minidbx *db, const big_job *j, unsigned char *buf, unsigned char *expect)
{
    stream_gen g = { j->seed, j->c->sz.big_bytes };
    minidbx_reader *r = NULL;
    uint64_t size = 0, total = 0;
    size_t n = 0;
    int rc = minidbx_reader_open(db, &j->id, &r, &size);

    if (rc != 0)
        return fail_mdx("minidbx_reader_open", rc);
    do {
        if ((rc = minidbx_reader_read(r, buf, j->c->sz.chunk_bytes, &n)) != 0) {
            rc = fail_mdx("minidbx_reader_read", rc);
            break;
        }
        if (expect && (gen_next(&g, expect, n) != n || memcmp(buf, expect, n) != 0))
            rc = fail("big get", "bytes differ near offset %llu", (unsigned long long)total);
        total += n;
    } while (n > 0 && rc == 0);
    minidbx_reader_close(r);
    if (rc == 0 && (size != j->c->sz.big_bytes || total != size))
        rc = fail("big get", "size %llu, read %llu, put %llu", (unsigned long long)size,
                  (unsigned long long)total, (unsigned long long)j->c->sz.big_bytes);
    return rc;
}

static int open_for_reading(minidbx **db, const big_job *j)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    int rc;

    opts.flags = MINIDBX_OPEN_NO_CREATE | j->open_flags;
    rc = minidbx_open(db, j->store, &opts);
    return rc == 0 ? 0 : fail_mdx("minidbx_open (to read)", rc);
}

static int big_get_child(void *arg, child_result *out)
{
    big_job *j = arg;
    unsigned char *buf = malloc(j->c->sz.chunk_bytes);
    minidbx *db = NULL;
    double start;
    int rc = -1;

    if (!buf)
        return fail("big get", "out of memory");
    if (open_for_reading(&db, j) != 0)
        goto out;
    start = now_s();
    rc = read_object(db, j, buf, NULL);
    out->value = mb_per_s(j->c->sz.big_bytes, now_s() - start);
    out->id = j->id;
out:
    minidbx_close(db);
    free(buf);
    return rc;
}

static int big_check(big_job *j)
{
    unsigned char *buf = malloc(j->c->sz.chunk_bytes);
    unsigned char *expect = malloc(j->c->sz.chunk_bytes);
    minidbx *db = NULL;
    int rc = -1;

    if (!buf || !expect) {
        fail("big check", "out of memory");
        goto out;
    }
    j->open_flags = 0;
    if (open_for_reading(&db, j) == 0)
        rc = read_object(db, j, buf, expect);
out:
    minidbx_close(db);
    free(buf);
    free(expect);
    return rc;
}

static int record_child(bench_ctx *c, const char *metric, const char *rss_metric,
                        const char *peer, const child_result *res)
{
    if (results_record(c->res, WL_BIG, metric, peer, U_MBS, res->value) != 0 ||
        results_record(c->res, WL_BIG, rss_metric, peer, U_MIB, res->peak_rss_mib) != 0 ||
        results_record(c->res, WL_BIG, rss_metric, P_CHILD_START, U_MIB, res->start_rss_mib) != 0)
        return -1;
    return 0;
}

static int big_minidbx(bench_ctx *c, big_job *j)
{
    child_result res;

    if (path_join(j->store, c->run_dir, "big-minidbx") != 0 ||
        run_in_child(big_put_child, j, &res) != 0 ||
        record_child(c, M_BIG_PUT, M_BIG_RSS_PUT, P_MINIDBX, &res) != 0)
        return fail(WL_BIG, "minidbx put failed");
    j->id = res.id;
    j->open_flags = 0;
    if (run_in_child(big_get_child, j, &res) != 0 ||
        record_child(c, M_BIG_GET, M_BIG_RSS_GET, P_MINIDBX, &res) != 0)
        return fail(WL_BIG, "minidbx get failed");
    j->open_flags = MINIDBX_OPEN_READONLY | MINIDBX_OPEN_NO_VERIFY;
    if (run_in_child(big_get_child, j, &res) != 0 ||
        results_record(c->res, WL_BIG, M_BIG_GET, P_MINIDBX_NV, U_MBS, res.value) != 0 ||
        results_record(c->res, WL_BIG, M_BIG_RSS_GET, P_MINIDBX_NV, U_MIB, res.peak_rss_mib) != 0)
        return fail(WL_BIG, "minidbx no-verify get failed");
    return big_check(j);
}

/* ---- plain files and limits, in this process -------------------------- */

static int digest_start(EVP_MD_CTX **md)
{
    *md = EVP_MD_CTX_new();
    if (!*md || !EVP_DigestInit_ex(*md, EVP_sha256(), NULL))
        return fail("EVP_DigestInit_ex", "SHA-256 unavailable");
    return 0;
}

static int digest_end(EVP_MD_CTX *md, minidbx_id *out)
{
    unsigned int n = 0;

    if (!EVP_DigestFinal_ex(md, out->bytes, &n) || n != MINIDBX_ID_SIZE)
        return fail("EVP_DigestFinal_ex", "failed");
    return 0;
}

/* Generate and write the object to fd; hash it on the way if md. */
static int write_stream(int fd, const big_job *j, unsigned char *buf, EVP_MD_CTX *md)
{
    stream_gen g = { j->seed, j->c->sz.big_bytes };

    while (g.left > 0) {
        size_t n = gen_next(&g, buf, j->c->sz.chunk_bytes);
        if (md && !EVP_DigestUpdate(md, buf, n))
            return fail("EVP_DigestUpdate", "failed");
        if (write_all(fd, buf, n) != 0)
            return fail("write", "%s", strerror(errno));
    }
    return 0;
}

/* A careful hand-written durable put: hash while writing a temp file,
 * fsync, rename to the hex id, fsync the directory. */
static int files_put_stream(const bench_ctx *c, const big_job *j, unsigned char *buf,
                            double *seconds)
{
    char tmp[PATH_MAX], path[PATH_MAX], hex[MINIDBX_ID_HEX_SIZE];
    EVP_MD_CTX *md = NULL;
    minidbx_id id;
    double start = now_s();
    int fd = -1, rc = -1;

    if (path_join(tmp, c->run_dir, "big-file.tmp") != 0 || digest_start(&md) != 0)
        goto out;
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0) {
        fail("open", "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if (write_stream(fd, j, buf, md) != 0 || digest_end(md, &id) != 0)
        goto out;
    if (fsync(fd) != 0) {
        fail("fsync", "%s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = close(fd);
    fd = -1;
    if (rc != 0) {
        rc = fail("close", "%s: %s", tmp, strerror(errno));
        goto out;
    }
    rc = -1;
    minidbx_id_format(&id, hex);
    if (path_join(path, c->run_dir, hex) != 0)
        goto out;
    if (rename(tmp, path) != 0) {
        fail("rename", "%s: %s", path, strerror(errno));
        goto out;
    }
    if (fsync_dir(c->run_dir) != 0)
        goto out;
    *seconds = now_s() - start;
    rc = minidbx_id_equal(&id, &j->id) ? 0 : fail("big put", "minidbx id differs from SHA-256");
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(md);
    return rc;
}

static int files_get_stream(const bench_ctx *c, const big_job *j, unsigned char *buf,
                            double *seconds)
{
    char path[PATH_MAX], hex[MINIDBX_ID_HEX_SIZE];
    EVP_MD_CTX *md = NULL;
    minidbx_id id;
    size_t got;
    double start = now_s();
    int fd = -1, rc = -1;

    minidbx_id_format(&j->id, hex);
    if (path_join(path, c->run_dir, hex) != 0 || digest_start(&md) != 0)
        goto out;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        fail("open", "%s: %s", path, strerror(errno));
        goto out;
    }
    do {
        if (read_full(fd, buf, c->sz.chunk_bytes, &got) != 0 || !EVP_DigestUpdate(md, buf, got)) {
            fail("read", "%s failed", path);
            goto out;
        }
    } while (got > 0);
    if (digest_end(md, &id) != 0)
        goto out;
    *seconds = now_s() - start;
    rc = minidbx_id_equal(&id, &j->id) ? 0 : fail("big get", "%s: bytes do not hash to it", path);
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(md);
    return rc;
}

static int limit_write(const bench_ctx *c, const big_job *j, unsigned char *buf, double *seconds)
{
    char path[PATH_MAX];
    double start = now_s();
    int fd, rc = -1;

    if (path_join(path, c->run_dir, "big-limit-write") != 0)
        return -1;
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)) < 0)
        return fail("open", "%s: %s", path, strerror(errno));
    if (write_stream(fd, j, buf, NULL) == 0) {
        if (fdatasync(fd) != 0)
            fail("fdatasync", "%s: %s", path, strerror(errno));
        else
            rc = 0;
    }
    *seconds = now_s() - start;
    close(fd);
    return rc;
}

static int limit_sha(const bench_ctx *c, unsigned char *buf, double *seconds)
{
    EVP_MD_CTX *md = NULL;
    minidbx_id id;
    uint64_t seed = 7, left = c->sz.big_bytes;
    double start;
    int rc = -1;

    rng_fill(buf, c->sz.chunk_bytes, &seed);
    if (digest_start(&md) != 0)
        goto out;
    start = now_s();
    while (left > 0) {
        size_t n = left < c->sz.chunk_bytes ? (size_t)left : c->sz.chunk_bytes;
        if (!EVP_DigestUpdate(md, buf, n)) {
            fail("EVP_DigestUpdate", "failed");
            goto out;
        }
        left -= n;
    }
    if (digest_end(md, &id) != 0)
        goto out;
    *seconds = now_s() - start;
    rc = 0;
out:
    EVP_MD_CTX_free(md);
    return rc;
}

static int big_peers(bench_ctx *c, const big_job *j)
{
    unsigned char *buf = malloc(c->sz.chunk_bytes);
    uint64_t bytes = c->sz.big_bytes;
    double t = 0.0;
    int rc = -1;

    if (!buf)
        return fail(WL_BIG, "out of memory");
    if (files_put_stream(c, j, buf, &t) != 0 ||
        results_record(c->res, WL_BIG, M_BIG_PUT, P_FILES_STREAM, U_MBS, mb_per_s(bytes, t)) != 0)
        goto out;
    if (limit_sha(c, buf, &t) != 0 ||
        results_record(c->res, WL_BIG, M_BIG_PUT, P_LIMIT_SHA, U_MBS, mb_per_s(bytes, t)) != 0)
        goto out;
    if (limit_write(c, j, buf, &t) != 0 ||
        results_record(c->res, WL_BIG, M_BIG_PUT, P_LIMIT_WRITE, U_MBS, mb_per_s(bytes, t)) != 0)
        goto out;
    if (files_get_stream(c, j, buf, &t) != 0 ||
        results_record(c->res, WL_BIG, M_BIG_GET, P_FILES_STREAM, U_MBS, mb_per_s(bytes, t)) != 0)
        goto out;
    rc = 0;
out:
    free(buf);
    return rc;
}

int workload_big(bench_ctx *c)
{
    big_job j;

    memset(&j, 0, sizeof(j));
    j.c = c;
    j.seed = SEED_BIG + 1000u * (uint64_t)c->run;
    if (big_minidbx(c, &j) != 0)
        return -1;
    return big_peers(c, &j);
}
