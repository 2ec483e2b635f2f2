/*
 * cluster_objects.c - objects on a cluster: put writes R copies in
 * parallel on the best nodes that are up (in HRW order) and succeeds when
 * W are stored; get and readers try the nodes in HRW order and fall back on
 * one that is down, slow or hands out bytes that fail verification;
 * exists, missing, stat and list merge the nodes' answers.
 */
#include "cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A writer keeps up to this much in memory, the rest in a temp file: the
 * id, and so the nodes, is known only at commit. */
#define SPOOL_MEM_MAX (1u << 20)
/* A reader of an object up to this size reads it whole from one node,
 * so that a copy that fails verification falls back on the next. */
#define READER_WHOLE_MAX (1u << 20)
#define COPY_CHUNK (1u << 20)

/* --- the bytes a put copies: a buffer or a spooled file ------------------------- */

struct copy_source {
    const void *data; /* or, when NULL, */
    int fd;           /* a file of size bytes */
    uint64_t size;
};

struct copy_job {
    const minidbx_id *id;
    const struct copy_source *src;
    bool want_created;
};

/* A spooled file through a node writer, which hashes it again on the way
 * (and says whether the node created the object). */
static int put_streamed(minidbx *db, const struct copy_job *job, int *created)
{
    minidbx_writer *w;
    char *chunk = NULL;
    uint64_t done = 0;
    int rc = minidbx_writer_open(db, &w);

    if (rc < 0)
        return rc;
    if (!(chunk = malloc(COPY_CHUNK)))
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    while (rc == 0 && done < job->src->size) {
        size_t want = job->src->size - done < COPY_CHUNK ? (size_t)(job->src->size - done) : COPY_CHUNK;
        ssize_t got = dbx_pread_full(job->src->fd, chunk, want, done);
        if (got != (ssize_t)want)
            rc = dbx_error_io(got < 0 ? (int)-got : EIO, "cluster: read back the spooled object");
        else if ((rc = minidbx_writer_write(w, chunk, want)) == 0)
            done += want;
    }
    free(chunk);
    if (rc < 0) {
        minidbx_writer_abort(w);
        return rc;
    }
    return minidbx_writer_commit_ex(w, job->id, NULL, created);
}

static int store_copy(struct cluster_task *t)
{
    const struct copy_job *job = t->arg;
    minidbx *db = cluster_node_db(t->node);
    int64_t start = cluster_call_start();
    int rc;

    t->created = -1;
    if (!db)
        return minidbx_error_set(MINIDBX_EIO, "%s: down", t->node->location);
    /* bytes in memory were hashed by this handle's put or writer: the node
     * gets their id (a remote node checks the bytes against it); a spooled
     * file is read back through a node writer, which hashes it again */
    if (job->src->data)
        rc = dbx_put_known(db, job->id, job->src->data, (size_t)job->src->size,
                           job->want_created ? &t->created : NULL);
    else
        rc = put_streamed(db, job, &t->created);
    return cluster_call_end(t->c, t->node, start, rc);
}

/* R copies on the best nodes that are up, in parallel; a node that fails
 * hands its copy to the next node in HRW order, so that R copies exist
 * when R nodes are up. Succeeds with at least W. *created (may be NULL):
 * what the best-placed node that stored it said. */
static int place_copies(struct cluster *c, const minidbx_id *id, const struct copy_source *src,
                        int *created)
{
    struct copy_job job = { id, src, created != NULL };
    struct cluster_task tasks[CLUSTER_NODES_MAX];
    unsigned order[CLUSTER_NODES_MAX];
    unsigned stored = 0;
    size_t next = 0;
    int error = 0;
    char message[256] = "no node is up";
    char hex[16];

    cluster_order(c, cluster_id_key(id), order);
    if (created)
        *created = -1;
    while (stored < c->replicas && next < c->count) {
        size_t n = 0;
        while (n < c->replicas - stored && next < c->count) {
            struct cluster_node *node = &c->nodes[order[next++]];
            if (!cluster_node_db(node))
                continue;
            tasks[n] = (struct cluster_task){ .fn = store_copy, .c = c, .node = node, .arg = &job };
            n++;
        }
        if (n == 0)
            break;
        cluster_run_parallel(tasks, n);
        for (size_t i = 0; i < n; i++) {
            if (tasks[i].rc < 0) {
                error = cluster_pick_error(error, tasks[i].rc);
                snprintf(message, sizeof message, "%s", tasks[i].error);
                continue;
            }
            if (created && *created < 0)
                *created = tasks[i].created;
            stored++;
        }
    }
    if (stored >= c->write_quorum)
        return 0;
    dbx_id_short(id, hex);
    return minidbx_error_set(error && error != MINIDBX_ENOTFOUND ? error : MINIDBX_EIO,
                             "put %s: %u of %u copies stored, %u needed: %s", hex, stored,
                             c->replicas, c->write_quorum, message);
}

int cluster_put(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size)
{
    struct copy_source src = { data ? data : "", -1, size };
    return place_copies(cluster_of(be), id, &src, NULL);
}

/* --- reading: in HRW order, falling back ------------------------------------------ */

/* Calls fn on each node that is up, best first, until one succeeds; the
 * error of the node that said most otherwise. */
typedef int (*node_read_fn)(minidbx *db, const minidbx_id *id, void *ctx);

static int read_in_order(struct cluster *c, const minidbx_id *id, node_read_fn fn, void *ctx)
{
    unsigned order[CLUSTER_NODES_MAX];
    char message[256] = "";
    char hex[16];
    int error = 0;

    cluster_order(c, cluster_id_key(id), order);
    for (size_t k = 0; k < c->count; k++) {
        struct cluster_node *node = &c->nodes[order[k]];
        minidbx *db = cluster_node_db(node);
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        int rc = cluster_call_end(c, node, start, fn(db, id, ctx));
        if (rc >= 0)
            return rc;
        if (rc != MINIDBX_ENOTFOUND || !message[0])
            snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
        error = cluster_pick_error(error, rc);
    }
    dbx_id_short(id, hex);
    if (error == 0)
        return minidbx_error_set(MINIDBX_EIO, "%s: no node is up", hex);
    return minidbx_error_set(error, "%s", message);
}

struct get_out {
    void *data;
    size_t size;
};

static int node_get(minidbx *db, const minidbx_id *id, void *ctx)
{
    struct get_out *out = ctx;
    return minidbx_get(db, id, &out->data, &out->size);
}

int cluster_get(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size)
{
    struct cluster *c = cluster_of(be);
    struct get_out out = { NULL, 0 };

    if (cluster_cache_get(c, id, out_data, out_size))
        return 0;
    int rc = read_in_order(c, id, node_get, &out);
    if (rc == 0) {
        cluster_cache_put(c, id, out.data, out.size);
        *out_data = out.data;
        *out_size = out.size;
    }
    return rc;
}

/* A new temp file, unlinked (O_TMPFILE where the filesystem has it), in
 * $TMPDIR or /tmp: -1 and the error set. */
static int temp_file(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    int fd;

    if (!dir || !dir[0])
        dir = "/tmp";
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && snprintf(path, sizeof path, "%s/minidbx-cluster-XXXXXX", dir) < (int)sizeof path &&
        (fd = mkostemp(path, O_CLOEXEC)) >= 0)
        unlink(path);
    if (fd < 0)
        dbx_error_io(errno, "cluster: temp file in %s", dir);
    return fd;
}

/* A reader hands out no byte of a copy before the whole copy is known to
 * be right, so that a bad one falls back on the next node: a small object
 * is read whole into memory; a large one's blob file (a local node) is
 * hashed through its fd first; a large one on a remote node is spooled to
 * a temp file, checked on the way by the node's reader. */
struct cluster_reader {
    minidbx_backend_reader base;
    char *data;            /* a small object, whole */
    int fd;                /* or the bytes in a file: a node's blob, or a spool */
    uint64_t fd_offset;
    minidbx_reader *node_reader; /* holds a node's blob fd open */
    bool own_fd;           /* a spool, closed with the reader */
    uint64_t size, pos;
};

/* Hash size bytes of fd at offset: ECORRUPT unless they are id. */
static int hash_fd(int fd, uint64_t offset, uint64_t size, const minidbx_id *id)
{
    dbx_hasher *h = NULL;
    char *chunk = malloc(COPY_CHUNK);
    uint64_t done = 0;
    minidbx_id got;
    int rc = chunk ? dbx_hasher_new(&h) : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");

    while (rc == 0 && done < size) {
        size_t want = size - done < COPY_CHUNK ? (size_t)(size - done) : COPY_CHUNK;
        ssize_t n = dbx_pread_full(fd, chunk, want, offset + done);
        if (n != (ssize_t)want)
            rc = minidbx_error_set(MINIDBX_ECORRUPT, "cluster: a blob file is shorter than its record");
        else if ((rc = dbx_hasher_update(h, chunk, want)) == 0)
            done += want;
    }
    if (rc == 0 && (rc = dbx_hasher_final(h, &got)) == 0)
        rc = dbx_id_verify(id, &got);
    dbx_hasher_free(h);
    free(chunk);
    return rc;
}

/* The node reader's bytes into a temp file; the node's reader checks them
 * at their end. */
static int spool_reader(struct cluster_reader *r, minidbx_reader *node_reader)
{
    char *chunk = malloc(COPY_CHUNK);
    size_t n = 1;
    int rc = chunk ? 0 : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");

    if (rc == 0 && (r->fd = temp_file()) < 0)
        rc = MINIDBX_EIO;
    r->own_fd = r->fd >= 0;
    while (rc == 0 && n > 0) {
        if ((rc = minidbx_reader_read(node_reader, chunk, COPY_CHUNK, &n)) == 0 && n > 0) {
            int err = dbx_write_all(r->fd, chunk, n);
            if (err < 0)
                rc = dbx_error_io(-err, "cluster: spool an object to a temp file");
        }
    }
    free(chunk);
    return rc;
}

/* A small object's size bytes into memory; the node's reader checks them
 * before it hands out the last one. */
static int read_whole(struct cluster_reader *r, minidbx_reader *node_reader)
{
    size_t done = 0, n = 1;
    int rc = (r->data = malloc(r->size ? (size_t)r->size : 1)) ? 0
             : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");

    while (rc == 0 && n > 0 && done < r->size) {
        rc = minidbx_reader_read(node_reader, r->data + done, (size_t)r->size - done, &n);
        done += n;
    }
    if (rc == 0 && done != r->size)
        rc = minidbx_error_set(MINIDBX_EIO, "cluster: a node's reader ended after %zu of %llu bytes",
                               done, (unsigned long long)r->size);
    return rc;
}

static void reader_release(struct cluster_reader *r)
{
    minidbx_reader_close(r->node_reader);
    r->node_reader = NULL;
    if (r->own_fd)
        close(r->fd);
    r->fd = -1;
    r->own_fd = false;
    minidbx_free(r->data);
    r->data = NULL;
}

static int node_reader_open(minidbx *db, const minidbx_id *id, void *ctx)
{
    struct cluster_reader *r = ctx;
    minidbx_reader *nr;
    uint64_t size;
    int fd, rc;

    reader_release(r); /* what a node before this one left */
    /* one request on an http:// node: its reader's GET says the size */
    if ((rc = minidbx_reader_open(db, id, &nr, &size)) < 0)
        return rc;
    r->size = size;
    if (size > READER_WHOLE_MAX && minidbx_reader_fd(nr, &fd, &r->fd_offset) == 0) {
        r->node_reader = nr;
        r->fd = fd;
        return hash_fd(fd, r->fd_offset, size, id);
    }
    r->fd_offset = 0;
    rc = size <= READER_WHOLE_MAX ? read_whole(r, nr) : spool_reader(r, nr);
    minidbx_reader_close(nr);
    return rc;
}

static int reader_read(minidbx_backend_reader *br, void *buf, size_t capacity, size_t *out_read)
{
    struct cluster_reader *r = (struct cluster_reader *)br;
    size_t n = r->size - r->pos < capacity ? (size_t)(r->size - r->pos) : capacity;

    if (r->data) {
        memcpy(buf, r->data + r->pos, n);
    } else if (n > 0) {
        ssize_t got = dbx_pread_full(r->fd, buf, n, r->fd_offset + r->pos);
        if (got != (ssize_t)n)
            return dbx_error_io(got < 0 ? (int)-got : EIO, "cluster: read a checked copy back");
    }
    r->pos += n;
    *out_read = n;
    return 0;
}

static int reader_fd(minidbx_backend_reader *br, int *out_fd, uint64_t *out_offset)
{
    struct cluster_reader *r = (struct cluster_reader *)br;
    if (r->fd < 0)
        return minidbx_error_set(MINIDBX_EUNSUPPORTED, "a small object read whole has no fd");
    *out_fd = r->fd;
    *out_offset = r->fd_offset;
    return 0;
}

static void reader_close(minidbx_backend_reader *br)
{
    struct cluster_reader *r = (struct cluster_reader *)br;
    reader_release(r);
    free(r);
}

int cluster_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                        uint64_t *out_size)
{
    struct cluster_reader *r = calloc(1, sizeof *r);
    size_t got;
    int rc;

    if (!r)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    r->base.read = reader_read;
    r->base.fd = reader_fd;
    r->base.close = reader_close;
    r->fd = -1;
    if (cluster_cache_get(cluster_of(be), id, (void **)&r->data, &got)) {
        r->size = got;
    } else if ((rc = read_in_order(cluster_of(be), id, node_reader_open, r)) < 0) {
        reader_close(&r->base);
        return rc;
    } else if (r->data) {
        cluster_cache_put(cluster_of(be), id, r->data, (size_t)r->size);
    }
    *out_size = r->size;
    *out = &r->base;
    return 0;
}

/* --- exists, missing, stat: merged ------------------------------------------------ */

static int node_exists(minidbx *db, const minidbx_id *id, void *ctx)
{
    (void)ctx;
    int rc = minidbx_exists(db, id);
    /* "not here" goes on to the next node, as a get's ENOTFOUND does */
    return rc == 0 ? minidbx_error_set(MINIDBX_ENOTFOUND, "not here") : rc;
}

int cluster_exists(minidbx_backend *be, const minidbx_id *id)
{
    int rc = read_in_order(cluster_of(be), id, node_exists, NULL);
    if (rc == MINIDBX_ENOTFOUND) {
        dbx_error_clear();
        return 0;
    }
    return rc < 0 ? rc : 1;
}

int cluster_missing(minidbx_backend *be, const minidbx_id *ids, size_t count, minidbx_id *out_missing,
                    size_t *out_count)
{
    struct cluster *c = cluster_of(be);
    minidbx_id *left = malloc((count ? count : 1) * sizeof *left);
    size_t n = count;
    bool answered = false;

    if (!left)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    memcpy(left, ids, count * sizeof *left);
    /* each node narrows what the ones before it did not have */
    for (size_t i = 0; i < c->count && n > 0; i++) {
        struct cluster_node *node = &c->nodes[i];
        minidbx *db = cluster_node_db(node);
        size_t m;
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        if (cluster_call_end(c, node, start, minidbx_missing(db, left, n, left, &m)) == 0) {
            n = m;
            answered = true;
        }
    }
    if (!answered && count > 0) {
        free(left);
        return minidbx_error_set(MINIDBX_EIO, "missing: no node answered");
    }
    memcpy(out_missing, left, n * sizeof *left);
    *out_count = n;
    free(left);
    return 0;
}

/* The copies' records, merged: the most names a node counts (a name is
 * set on every home of its object, so a home counts them all), the
 * earliest creation. */
static void merge_info(minidbx_object_info *into, const minidbx_object_info *from)
{
    if (from->refs > into->refs)
        into->refs = from->refs;
    if (from->created_ns < into->created_ns)
        into->created_ns = from->created_ns;
}

int cluster_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out)
{
    struct cluster *c = cluster_of(be);
    unsigned order[CLUSTER_NODES_MAX];
    int error = 0, found = 0;
    char message[256] = "";

    cluster_order(c, cluster_id_key(id), order);
    for (size_t k = 0; k < c->count; k++) {
        struct cluster_node *node = &c->nodes[order[k]];
        minidbx *db = cluster_node_db(node);
        minidbx_object_info info;
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        int rc = cluster_call_end(c, node, start, minidbx_stat(db, id, &info));
        if (rc < 0) {
            if (rc != MINIDBX_ENOTFOUND || !message[0])
                snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
            error = cluster_pick_error(error, rc);
        } else if (found++) {
            merge_info(out, &info);
        } else {
            *out = info;
        }
    }
    if (found)
        return 0;
    return minidbx_error_set(error ? error : MINIDBX_EIO, "%s", error ? message : "stat: no node is up");
}

/* --- delete ------------------------------------------------------------------------ */

int cluster_del(minidbx_backend *be, const minidbx_id *id, unsigned flags)
{
    struct cluster *c = cluster_of(be);
    minidbx *holders[CLUSTER_NODES_MAX];
    struct cluster_node *holder_nodes[CLUSTER_NODES_MAX];
    size_t n = 0;
    int rc = 0;
    char hex[16];

    dbx_id_short(id, hex);
    cluster_cache_forget(c, id);
    for (size_t i = 0; i < c->count; i++) {
        minidbx *db = cluster_node_db(&c->nodes[i]);
        int64_t start = cluster_call_start();
        if (db && cluster_call_end(c, &c->nodes[i], start, minidbx_exists(db, id)) == 1) {
            holder_nodes[n] = &c->nodes[i];
            holders[n++] = db;
        }
    }
    if (n == 0)
        return minidbx_error_set(MINIDBX_ENOTFOUND, "delete %s: no node has it", hex);
    /* refuse before any copy goes, so that a refused delete removes nothing */
    for (size_t i = 0; i < n && !(flags & MINIDBX_DELETE_CASCADE); i++) {
        minidbx_object_info info;
        if (minidbx_stat(holders[i], id, &info) == 0 && info.refs > 0)
            return minidbx_error_set(MINIDBX_EREFERENCED, "delete %s: names point at it (on %s)", hex,
                                     holder_nodes[i]->location);
    }
    /* copy after copy: a put of the same bytes between two of them (or
     * onto a node not seen holding it above) keeps what it wrote after
     * this delete passed that node, and may end with fewer than R copies;
     * verify calls those MISSING and repair makes them again (minidbx.h:
     * no tombstones) */
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            DBX_TEST_PAUSE("cluster-delete-copies");
        int64_t start = cluster_call_start();
        int one = cluster_call_end(c, holder_nodes[i], start, minidbx_delete_ex(holders[i], id, flags));
        if (one < 0 && one != MINIDBX_ENOTFOUND && rc == 0)
            rc = one;
    }
    return rc;
}

/* --- list: the nodes' sorted pages, merged ------------------------------------------ */

static int node_list(minidbx *db, const void *ctx, void *page, size_t capacity, size_t *got)
{
    return minidbx_list(db, ctx, page, capacity, got);
}

int cluster_list(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
                 size_t capacity, size_t *out_count)
{
    struct cluster *c = cluster_of(be);
    minidbx_object_info *pages[CLUSTER_NODES_MAX] = { NULL };
    size_t got[CLUSTER_NODES_MAX] = { 0 }, pos[CLUSTER_NODES_MAX] = { 0 };
    size_t n = 0;
    int rc;

    *out_count = 0;
    if (capacity == 0)
        return 0;
    rc = cluster_fetch_pages(c, sizeof **pages, capacity, node_list, after, (void **)pages, got);
    /* each page holds the node's first ids after the cursor, so the first
     * capacity of their union are the cluster's */
    while (rc == 0 && n < capacity) {
        const minidbx_object_info *least = NULL;
        for (size_t i = 0; i < c->count; i++)
            if (pos[i] < got[i] && (!least || memcmp(pages[i][pos[i]].id.bytes, least->id.bytes,
                                                     MINIDBX_ID_SIZE) < 0))
                least = &pages[i][pos[i]];
        if (!least)
            break;
        out[n] = *least;
        for (size_t i = 0; i < c->count; i++)
            if (pos[i] < got[i] && minidbx_id_equal(&pages[i][pos[i]].id, &out[n].id))
                merge_info(&out[n], &pages[i][pos[i]++]);
        n++;
    }
    for (size_t i = 0; i < c->count; i++)
        free(pages[i]);
    *out_count = n;
    return rc;
}

/* --- writers: spooled, then placed ---------------------------------------------------- */

struct cluster_writer {
    minidbx_backend_writer base;
    struct cluster *c;
    char *mem;
    size_t mem_len, mem_cap;
    int fd;
    uint64_t size;
};

static int spool_file(struct cluster_writer *w)
{
    if ((w->fd = temp_file()) < 0)
        return MINIDBX_EIO;
    int err = dbx_write_all(w->fd, w->mem, w->mem_len);
    return err < 0 ? dbx_error_io(-err, "cluster writer: temp file") : 0;
}

static int writer_write(minidbx_backend_writer *bw, const void *data, size_t size)
{
    struct cluster_writer *w = (struct cluster_writer *)bw;
    int rc = 0;

    if (size == 0) /* data may be NULL then: nothing to copy */
        return 0;
    if (w->fd < 0 && w->mem_len + size <= SPOOL_MEM_MAX) {
        if ((rc = dbx_grow(&w->mem, &w->mem_cap, w->mem_len + size, 1, 64 * 1024)) < 0)
            return rc;
        memcpy(w->mem + w->mem_len, data, size);
        w->mem_len += size;
    } else {
        if (w->fd < 0 && (rc = spool_file(w)) < 0)
            return rc;
        int err = dbx_write_all(w->fd, data, size);
        if (err < 0)
            return dbx_error_io(-err, "cluster writer: temp file");
    }
    w->size += size;
    return 0;
}

static void writer_abort(minidbx_backend_writer *bw)
{
    struct cluster_writer *w = (struct cluster_writer *)bw;
    if (w->fd >= 0)
        close(w->fd);
    free(w->mem);
    free(w);
}

static int writer_commit_created(minidbx_backend_writer *bw, const minidbx_id *id, int *created)
{
    struct cluster_writer *w = (struct cluster_writer *)bw;
    struct copy_source src = { w->fd < 0 ? (w->mem ? w->mem : "") : NULL, w->fd, w->size };
    int rc = place_copies(w->c, id, &src, created);
    writer_abort(bw);
    return rc;
}

static int writer_commit(minidbx_backend_writer *bw, const minidbx_id *id)
{
    struct cluster_writer *w = (struct cluster_writer *)bw;
    struct copy_source src = { w->fd < 0 ? (w->mem ? w->mem : "") : NULL, w->fd, w->size };
    int rc = place_copies(w->c, id, &src, NULL);
    writer_abort(bw);
    return rc;
}

int cluster_writer_open(minidbx_backend *be, minidbx_backend_writer **out)
{
    struct cluster_writer *w = calloc(1, sizeof *w);

    if (!w)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    w->base.write = writer_write;
    w->base.commit = writer_commit;
    w->base.abort = writer_abort;
    w->base.commit_created = writer_commit_created;
    w->c = cluster_of(be);
    w->fd = -1;
    *out = &w->base;
    return 0;
}

/* --- copying one object between nodes (repair, names) --------------------------------- */

/* Commit w (id's bytes) on dst with name pointing at it at mtime_ns,
 * nothing in between where dst has batches (a local node: one
 * transaction, so no gc there takes the copy before the name pins it; an
 * http:// node: one after the other, and a gc between them makes the set
 * ENOTFOUND). A newer copy of the name on dst stands (last writer wins). */
static int commit_named_at(minidbx *dst, minidbx_writer *w, const minidbx_id *id, const char *name,
                           int64_t mtime_ns)
{
    int batch = minidbx_batch_begin(dst); /* without one, the two calls alone */
    int rc = minidbx_writer_commit_ex(w, id, NULL, NULL);
    if (rc == 0) {
        DBX_TEST_PAUSE("cluster-name-copy");
        rc = minidbx_name_set_at(dst, name, id, mtime_ns);
    }
    if (batch == 0 && rc == 0)
        rc = minidbx_batch_commit(dst);
    else if (batch == 0)
        minidbx_batch_abort(dst);
    return rc;
}

/* Stream id from src to dst in bounded memory: src's reader verifies the
 * bytes at their end, dst's writer checks they hash to id. With name, the
 * copy is committed named (commit_named_at). */
static int copy_between(minidbx *src, minidbx *dst, const minidbx_id *id, const char *name, int64_t mtime_ns)
{
    minidbx_reader *r = NULL;
    minidbx_writer *w = NULL;
    char *chunk = malloc(COPY_CHUNK);
    size_t n = 1;
    int rc = chunk ? minidbx_reader_open(src, id, &r, NULL) : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");

    if (rc == 0)
        rc = minidbx_writer_open(dst, &w);
    while (rc == 0 && n > 0)
        if ((rc = minidbx_reader_read(r, chunk, COPY_CHUNK, &n)) == 0 && n > 0)
            rc = minidbx_writer_write(w, chunk, n);
    if (rc == 0 && name)
        rc = commit_named_at(dst, w, id, name, mtime_ns);
    else if (rc == 0)
        rc = minidbx_writer_commit_ex(w, id, NULL, NULL);
    else
        minidbx_writer_abort(w);
    minidbx_reader_close(r);
    free(chunk);
    return rc;
}

int cluster_copy_object(struct cluster *c, const minidbx_id *id, struct cluster_node *dst, const char *name,
                        int64_t mtime_ns)
{
    unsigned order[CLUSTER_NODES_MAX];
    minidbx *dst_db = cluster_node_db(dst);
    int error = MINIDBX_ENOTFOUND;
    char message[256] = "no other node has it";
    char hex[16];

    if (!dst_db)
        return minidbx_error_set(MINIDBX_EIO, "%s: down", dst->location);
    cluster_order(c, cluster_id_key(id), order);
    for (size_t k = 0; k < c->count; k++) {
        struct cluster_node *node = &c->nodes[order[k]];
        minidbx *db = cluster_node_db(node);
        if (!db || node == dst)
            continue;
        int64_t start = cluster_call_start();
        int rc = copy_between(db, dst_db, id, name, mtime_ns);
        /* a failure may be either node's: neither is marked down for it */
        if (rc == 0)
            return cluster_call_end(c, node, start, 0);
        if (rc != MINIDBX_ENOTFOUND) {
            error = rc;
            snprintf(message, sizeof message, "%s", minidbx_errmsg(NULL));
        }
    }
    dbx_id_short(id, hex);
    return minidbx_error_set(error, "copy %s to %s: %s", hex, dst->location, message);
}
