/*
 * local.c - the local store: LMDB metadata, small objects inline, large
 * objects as files in sharded directories. See local.h for the layout and
 * the crash invariant every function here keeps.
 */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FORMAT_NAME "minidbx-local-1"
/* LMDB reserves address space, not disk: a sparse 1 TiB map means no user
 * ever has to guess a size, and no resize dance between processes. */
#define MAP_BYTES (1ull << 40)
#define MAX_READERS 1024
/* A writer holds up to this much in memory before it knows it needs a file. */
#define MAX_INLINE_THRESHOLD (16u << 20)
/* A temp file whose writer cannot be told dead is still removed when it is
 * unlocked and this old. */
#define STALE_TEMP_SECONDS 3600

/* Files created in one batch are fsync'ed together at commit. */
typedef struct {
    char **paths;
    size_t count, capacity;
} path_list;

struct local_batch {
    local_store *store;
    MDB_txn *txn;
    int lock_fd;        /* shared store lock, held for the batch */
    path_list files;    /* blobs renamed into place: fsync'ed at commit, unlinked on abort */
    path_list deleted;  /* blobs whose records the batch deleted: unlinked after commit */
    path_list dirs;     /* directories whose entries changed */
    int64_t bytes_delta, inline_delta; /* counters, written once at commit */
    int error;          /* first failure: the batch can only be aborted */
};

/* The batch of the calling thread, whichever store it is on: one batch per
 * thread at a time. A batch belongs to a thread, not to a store, so that
 * two threads batching on one handle never see each other's batch. */
static _Thread_local local_batch *thread_batch;

static local_batch *batch_of(const local_store *s)
{
    return thread_batch && thread_batch->store == s ? thread_batch : NULL;
}

static atomic_uint temp_counter;

/* --- small helpers ------------------------------------------------------ */

static MDB_val id_key(const minidbx_id *id)
{
    MDB_val k = { MINIDBX_ID_SIZE, (void *)id->bytes };
    return k;
}

static const char *short_id(const minidbx_id *id, char buf[16])
{
    dbx_id_short(id, buf);
    return buf;
}

static int path_list_add(path_list *l, const char *path)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->paths[i], path) == 0)
            return 0;
    if (l->count == l->capacity) {
        size_t cap = l->capacity ? l->capacity * 2 : 16;
        char **p = realloc(l->paths, cap * sizeof *p);
        if (!p)
            return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        l->paths = p;
        l->capacity = cap;
    }
    if (!(l->paths[l->count] = strdup(path)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    l->count++;
    return 0;
}

static void path_list_free(path_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

void local_blob_path(const local_store *s, const minidbx_id *id, char *out)
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    snprintf(out, PATH_MAX, "%s/blobs/%.2s/%.2s/%s", s->root, hex, hex + 2, hex);
}

int local_blob_open(const local_store *s, const minidbx_id *id, char *path, struct stat *st)
{
    local_blob_path(s, id, path);
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return errno == ELOOP ? BLOB_NOT_REGULAR : errno == ENOTDIR ? -ENOENT : -errno;
    if (fstat(fd, st) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return BLOB_NOT_REGULAR;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

int local_blob_ok(const local_store *s, const minidbx_id *id, uint64_t size)
{
    char path[PATH_MAX];
    struct stat st;
    local_blob_path(s, id, path);
    if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : local_io_error(s, errno, "stat %s", path);
    return S_ISREG(st.st_mode) && (uint64_t)st.st_size == size;
}

bool local_store_gone(const local_store *s)
{
    struct stat st;
    int fd;
    if (stat(s->root, &st) < 0 && errno == ENOENT)
        return true;
    return s->env && mdb_env_get_fd(s->env, &fd) == 0 && fstat(fd, &st) == 0 && st.st_nlink == 0;
}

int local_io_error(const local_store *s, int err, const char *fmt, ...)
{
    char what[PATH_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (local_store_gone(s))
        return minidbx_error_set(MINIDBX_EIO, "store directory %s is gone (%s: %s)", s->root, what,
                                 strerror(err));
    return dbx_error_io(err, "%s", what);
}

int local_record_parse(const MDB_val *v, const minidbx_id *id, record_header *out)
{
    char sid[16];
    if (v->mv_size < RECORD_HEADER_BYTES)
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: record too short",
                                 short_id(id, sid));
    memcpy(out, v->mv_data, sizeof *out);
    if (out->version != RECORD_VERSION)
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: unknown record version %u",
                                 short_id(id, sid), out->version);
    bool is_inline = out->flags & RECORD_INLINE;
    if ((is_inline && v->mv_size - RECORD_HEADER_BYTES != out->size) ||
        (!is_inline && v->mv_size != RECORD_HEADER_BYTES))
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: record size does not match",
                                 short_id(id, sid));
    return 0;
}

/* --- transactions --------------------------------------------------------- */

/* After a commit: a store whose directory was deleted keeps working in the
 * open LMDB map, so a change would "succeed" into a file nobody can open
 * again. Say so instead of acknowledging it. One fstat per commit. */
static int store_still_there(const local_store *s)
{
    if (!local_store_gone(s))
        return 0;
    return minidbx_error_set(MINIDBX_EIO, "store directory %s is gone: the change was not stored",
                             s->root);
}

bool local_in_batch(local_store *s)
{
    return batch_of(s) != NULL;
}

int local_read_begin(local_store *s, read_txn *rt)
{
    int rc;
    rt->borrowed = false;
    if (local_in_batch(s)) {
        rt->txn = batch_of(s)->txn;
        rt->borrowed = true;
        return 0;
    }
    rt->txn = NULL;
    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_count > 0)
        rt->txn = s->pool[--s->pool_count];
    pthread_mutex_unlock(&s->pool_lock);
    if (rt->txn) {
        if ((rc = mdb_txn_renew(rt->txn)) == 0)
            return 0;
        mdb_txn_abort(rt->txn);
        rt->txn = NULL;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rt->txn)) != 0)
        return dbx_error_lmdb(rc, "%s: cannot begin a read transaction", s->root);
    return 0;
}

void local_read_end(local_store *s, read_txn *rt)
{
    if (!rt->txn || rt->borrowed)
        return;
    mdb_txn_reset(rt->txn);
    pthread_mutex_lock(&s->pool_lock);
    if (s->pool_count < (int)(sizeof s->pool / sizeof s->pool[0])) {
        s->pool[s->pool_count++] = rt->txn;
        rt->txn = NULL;
    }
    pthread_mutex_unlock(&s->pool_lock);
    if (rt->txn)
        mdb_txn_abort(rt->txn);
    rt->txn = NULL;
}

int local_write_begin(local_store *s, MDB_txn **txn, bool *in_batch)
{
    *in_batch = local_in_batch(s);
    if (*in_batch) {
        if (batch_of(s)->error)
            return minidbx_error_set(batch_of(s)->error, "batch failed earlier (%s): abort it",
                                     minidbx_strerror(batch_of(s)->error));
        *txn = batch_of(s)->txn;
        return 0;
    }
    int rc = mdb_txn_begin(s->env, NULL, 0, txn);
    return rc ? dbx_error_lmdb(rc, "%s: cannot begin a write transaction", s->root) : 0;
}

/* End what local_write_begin began: commit when rc is 0, else abort. In a
 * batch, a failure poisons the batch (LMDB may have half-applied it). */
int local_write_end(local_store *s, MDB_txn *txn, bool in_batch, int rc)
{
    if (in_batch) {
        if (rc < 0 && rc != MINIDBX_ENOTFOUND && rc != MINIDBX_EREFERENCED && rc != MINIDBX_EINVAL)
            batch_of(s)->error = rc;
        return rc;
    }
    if (rc < 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    int lrc = mdb_txn_commit(txn);
    if (lrc)
        return dbx_error_lmdb(lrc, "%s: commit failed", s->root);
    return store_still_there(s);
}

int local_lock(local_store *s, bool exclusive)
{
    int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && s->readonly && (errno == EACCES || errno == EROFS))
        fd = open(s->lock_path, O_RDONLY | O_CLOEXEC); /* flock needs no write access */
    if (fd < 0)
        return local_io_error(s, errno, "%s", s->lock_path);
    while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
        if (errno == EINTR)
            continue;
        int err = errno;
        close(fd);
        return local_io_error(s, err, "%s: flock", s->lock_path);
    }
    return fd;
}

void local_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the only descriptor releases the flock */
}

/* --- counters ------------------------------------------------------------------- */

typedef struct {
    uint64_t bytes;
    uint64_t inline_objects;
} store_stats;

static int read_stats(local_store *s, MDB_txn *txn, store_stats *st)
{
    MDB_val k = { 5, "stats" }, v;
    memset(st, 0, sizeof *st);
    int rc = mdb_get(txn, s->info, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return dbx_error_lmdb(rc, "%s: reading counters", s->root);
    if (v.mv_size != sizeof *st)
        return minidbx_error_set(MINIDBX_ECORRUPT, "%s: counters record is malformed", s->root);
    memcpy(st, v.mv_data, sizeof *st);
    return 0;
}

static int write_stats(local_store *s, MDB_txn *txn, int64_t bytes, int64_t inline_objects)
{
    store_stats st;
    int rc = read_stats(s, txn, &st);
    if (rc < 0)
        return rc;
    st.bytes += (uint64_t)bytes;
    st.inline_objects += (uint64_t)inline_objects;
    MDB_val k = { 5, "stats" }, v = { sizeof st, &st };
    rc = mdb_put(txn, s->info, &k, &v, 0);
    return rc ? dbx_error_lmdb(rc, "%s: writing counters", s->root) : 0;
}

/* In a batch the counters are summed and written once, at commit: one
 * record every put would otherwise rewrite. */
int local_stats_add(local_store *s, MDB_txn *txn, int64_t bytes, int64_t inline_objects)
{
    local_batch *b = batch_of(s);
    if (b && b->txn == txn) {
        b->bytes_delta += bytes;
        b->inline_delta += inline_objects;
        return 0;
    }
    return write_stats(s, txn, bytes, inline_objects);
}

/* --- putting -------------------------------------------------------------------- */

/* Does a record for id exist in txn? 1, 0 or an error. */
static int record_exists(local_store *s, MDB_txn *txn, const minidbx_id *id)
{
    MDB_val k = id_key(id), v;
    int rc = mdb_get(txn, s->objects, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc ? dbx_error_lmdb(rc, "%s: looking up an object", s->root) : 1;
}

/* Is the stored record v of id whole: well formed, of size bytes, of the
 * right kind and, inline, holding exactly data? *old gets its header. */
static bool record_sound(const MDB_val *v, const minidbx_id *id, const void *data, uint64_t size,
                         bool is_inline, record_header *old)
{
    if (local_record_parse(v, id, old) < 0) {
        dbx_error_clear(); /* not a failure of this call: the put heals it */
        memset(old, 0, sizeof *old);
        return false;
    }
    if (old->size != size || !(old->flags & RECORD_INLINE) != !is_inline)
        return false;
    return !is_inline || size == 0 || memcmp((const char *)v->mv_data + RECORD_HEADER_BYTES, data, (size_t)size) == 0;
}

/* Insert the record (and for inline objects the bytes) in txn unless it is
 * there: 0 inserted, 1 already there and sound (nothing changed), 2 it was
 * there but damaged and has been rewritten (a bad copy heals when the right
 * bytes are put again), or an error. One B-tree descent does the check and
 * the insert; the compare costs a memcmp of at most the inline threshold. */
static int record_insert(local_store *s, MDB_txn *txn, const minidbx_id *id, const void *data,
                         uint64_t size, bool is_inline)
{
    record_header h = { .version = RECORD_VERSION, .flags = is_inline ? RECORD_INLINE : 0,
                        .size = size, .created_ns = dbx_now_ns() }, old;
    MDB_val k = id_key(id), v = { RECORD_HEADER_BYTES + (is_inline ? (size_t)size : 0), NULL };
    int rc = mdb_put(txn, s->objects, &k, &v, MDB_RESERVE | MDB_NOOVERWRITE);
    bool heal = rc == MDB_KEYEXIST; /* v is the stored record */
    if (heal && record_sound(&v, id, data, size, is_inline, &old))
        return 1;
    if (heal) {
        if (old.version == RECORD_VERSION)
            h.created_ns = old.created_ns;
        v.mv_size = RECORD_HEADER_BYTES + (is_inline ? (size_t)size : 0);
        rc = mdb_put(txn, s->objects, &k, &v, MDB_RESERVE);
    }
    if (rc)
        return dbx_error_lmdb(rc, "%s: storing an object record", s->root);
    memcpy(v.mv_data, &h, RECORD_HEADER_BYTES);
    if (is_inline && size)
        memcpy((char *)v.mv_data + RECORD_HEADER_BYTES, data, (size_t)size);
    /* A healed record replaces one of the same id, so of the same size and
     * kind as counted when it was first stored: the counters stand. */
    return heal ? 2 : local_stats_add(s, txn, (int64_t)size, is_inline ? 1 : 0);
}

/* The existence check is done in the write transaction, not a read one, so
 * that a put is ordered against gc: it either finds the object after gc, or
 * stores it again. 0 stored, 1 there already (the writer's "created"), or
 * an error. */
static int put_inline(local_store *s, const minidbx_id *id, const void *data, size_t size)
{
    MDB_txn *txn;
    bool in_batch;
    int rc = local_write_begin(s, &txn, &in_batch);
    if (rc < 0)
        return rc;
    rc = record_insert(s, txn, id, data, size, true);
    int end = local_write_end(s, txn, in_batch, rc < 0 ? rc : 0);
    return end < 0 ? end : rc;
}

static int fsync_dir_checked(const char *path)
{
    int err = dbx_fsync_dir(path);
    return err < 0 ? dbx_error_io(-err, "fsync %s", path) : 0;
}

/* Make STORE/blobs/ab/cd exist. New directory entries are made durable
 * (or queued for the batch) before any blob is committed under them. */
static int ensure_shard_dirs(local_store *s, const char *blob_path, bool in_batch)
{
    char dir[PATH_MAX];
    size_t root_len = strlen(s->root) + strlen("/blobs");
    for (int level = 0; level < 2; level++) {
        size_t len = root_len + 3 * (size_t)(level + 1); /* "/ab", "/ab/cd" */
        memcpy(dir, blob_path, len);
        dir[len] = '\0';
        bool created;
        int err = dbx_mkdir(dir, &created);
        if (err < 0)
            return local_io_error(s, -err, "mkdir %s", dir);
        if (!created || !s->sync)
            continue;
        dir[len - 3] = '\0'; /* the parent now has a new entry */
        int rc = in_batch ? path_list_add(&batch_of(s)->dirs, dir) : fsync_dir_checked(dir);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int fsync_path(const char *path);

static void dir_of(const char *path, char *out)
{
    snprintf(out, PATH_MAX, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
}

/* When the object is stored already, should this put's temp file replace
 * its blob? Yes when the blob is gone, not a regular file or of the wrong
 * size (the cheap check): a bad copy heals. Also when the temp file is
 * durable already (sync, outside a batch): then the rename costs what the
 * unlink would and heals a same-size corruption too, and a crash before the
 * rename is durable leaves the old file, no worse. Never otherwise: an
 * unsynced temp must not replace a good file that a crash could then lose.
 * 1 replace (*damaged: the blob failed the cheap check), 0 keep, or an error. */
static int blob_wants_replacing(local_store *s, const minidbx_id *id, uint64_t size, bool in_batch,
                                bool *damaged)
{
    int ok = local_blob_ok(s, id, size);
    if (ok < 0)
        return ok;
    *damaged = !ok;
    return *damaged || (s->sync && !in_batch);
}

/* Move a complete, (if sync) fsync'ed temp file into place and commit its
 * record. The shared store lock keeps delete and gc from unlinking the
 * path between the rename and the commit. 0 stored, 1 there already, or an
 * error. */
static int put_file(local_store *s, const minidbx_id *id, const char *temp_path, uint64_t size)
{
    char blob[PATH_MAX], dir[PATH_MAX], sid[16];
    MDB_txn *txn;
    bool in_batch = local_in_batch(s), damaged = false;
    int lock_fd = in_batch ? -1 : local_lock(s, false);
    if (lock_fd < 0 && !in_batch)
        return lock_fd;
    int rc = local_write_begin(s, &txn, &in_batch);
    if (rc < 0)
        goto out;
    int stored = record_exists(s, txn, id);
    if (stored > 0)
        stored = (rc = blob_wants_replacing(s, id, size, in_batch, &damaged)) < 0 ? rc : rc ? 2 : 1;
    if (stored == 1 && (rc = record_insert(s, txn, id, NULL, size, false)) > 0)
        rc = 0; /* the record is there (rewritten if it was damaged) */
    if (stored < 0 || stored == 1) {
        rc = local_write_end(s, txn, in_batch, stored < 0 ? stored : rc);
        unlink(temp_path); /* stored already: deduplicated */
        if (rc == 0)
            rc = 1;
        goto out;
    }
    local_blob_path(s, id, blob);
    dir_of(blob, dir);
    /* In a batch the temp file is fsync'ed at commit; a replacement for a
     * damaged blob is made durable first, like a put outside a batch. */
    if (damaged && in_batch && s->sync && (rc = fsync_path(temp_path)) < 0)
        goto end;
    if ((rc = ensure_shard_dirs(s, blob, in_batch)) < 0)
        goto end;
    if (rename(temp_path, blob) < 0) {
        rc = local_io_error(s, errno, "put %s: rename into %s", short_id(id, sid), blob);
        goto end;
    }
    DBX_TEST_PAUSE("put-renamed");
    /* Only a new blob is the batch's own, to unlink if it aborts. */
    if (in_batch)
        rc = (stored == 0 && path_list_add(&batch_of(s)->files, blob) < 0) ||
                     (s->sync && path_list_add(&batch_of(s)->dirs, dir) < 0)
                 ? MINIDBX_ENOMEM : 0;
    else if (s->sync && (stored == 0 || damaged))
        rc = fsync_dir_checked(dir);
    if (rc < 0)
        goto end;
    if ((rc = record_insert(s, txn, id, NULL, size, false)) > 0)
        rc = 0; /* stored already, or a damaged record rewritten */
end:
    rc = local_write_end(s, txn, in_batch, rc);
    if (rc == 0 && stored == 2)
        rc = 1; /* a healed copy: stored before, not created now */
    /* On failure the blob may stay as an orphan (no record): harmless, and
     * verify --repair or gc removes it. */
out:
    local_unlock(lock_fd);
    return rc;
}

/* --- temp files ---------------------------------------------------------------- */

/* Create STORE/tmp/<pid>-<n>.tmp, flock'ed so that a sweeper can tell a
 * live writer from a dead one. */
static int temp_create(local_store *s, char *path)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned n = atomic_fetch_add(&temp_counter, 1);
        snprintf(path, PATH_MAX, "%s/tmp/%ld-%u-%ld.tmp", s->root, (long)getpid(), n,
                 (long)(dbx_now_ns() & 0xffffff));
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return local_io_error(s, errno, "create %s", path);
        /* Blocking: a sweeper may hold the lock for an instant while it
         * asks whether we are dead (we are not, so it lets go). */
        while (flock(fd, LOCK_EX) < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            close(fd);
            unlink(path);
            return local_io_error(s, err, "flock %s", path);
        }
        return fd;
    }
    return minidbx_error_set(MINIDBX_EIO, "%s/tmp: cannot find a free temp name", s->root);
}

static bool writer_is_dead(const char *name, int fd, const struct stat *st)
{
    char *end;
    long pid = strtol(name, &end, 10);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return false; /* a live writer holds it */
    if (end != name && *end == '-' && pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH)
        return true;
    return time(NULL) - st->st_mtime > STALE_TEMP_SECONDS;
}

int local_sweep_tmp(local_store *s, bool remove, minidbx_problem_cb cb, void *ctx,
                    minidbx_verify_report *report)
{
    char dir_path[PATH_MAX], path[PATH_MAX];
    snprintf(dir_path, sizeof dir_path, "%s/tmp", s->root);
    DIR *dir = opendir(dir_path);
    if (!dir)
        return errno == ENOENT ? 0 : dbx_error_errno(errno, "opendir %s", dir_path);
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (dbx_path_join(path, sizeof path, dir_path, e->d_name) < 0)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK); /* a FIFO must not hang us */
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0) {
            if (fd >= 0)
                close(fd);
            continue;
        }
        bool dead = writer_is_dead(e->d_name, fd, &st);
        int repaired = dead && remove && unlink(path) == 0;
        close(fd);
        if (!dead)
            continue;
        if (report) {
            report->problems++;
            report->repaired += (uint64_t)repaired;
        }
        if (cb)
            cb(ctx, MINIDBX_PROBLEM_TEMP, NULL, path, repaired);
    }
    closedir(dir);
    return 0;
}

/* --- the writer ------------------------------------------------------------------ */

/* Bytes are kept in memory while the object could still be inline; past
 * the threshold they go to a temp file. */
typedef struct {
    minidbx_backend_writer base;
    local_store *s;
    char *buf;
    size_t buf_len;
    int fd;
    uint64_t size;
    uint64_t flushed; /* bytes whose writeback has been started */
    char path[PATH_MAX];
} local_writer;

/* Start writeback every WRITEBACK_BYTES so the disk works while we hash,
 * and wait for the window before, so at most two windows are dirty and the
 * final fdatasync has little left to do. */
#define WRITEBACK_BYTES (8u << 20)

static void writer_start_writeback(local_writer *w)
{
    if (!w->s->sync || w->size - w->flushed < WRITEBACK_BYTES)
        return;
    if (w->flushed >= WRITEBACK_BYTES)
        sync_file_range(w->fd, (off64_t)(w->flushed - WRITEBACK_BYTES), WRITEBACK_BYTES,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    sync_file_range(w->fd, (off64_t)w->flushed, (off64_t)(w->size - w->flushed), SYNC_FILE_RANGE_WRITE);
    w->flushed = w->size;
}

static int writer_spill(local_writer *w)
{
    int fd = temp_create(w->s, w->path);
    if (fd < 0)
        return fd;
    w->fd = fd;
    int err = dbx_write_all(fd, w->buf, w->buf_len);
    free(w->buf);
    w->buf = NULL;
    w->buf_len = 0;
    return err < 0 ? local_io_error(w->s, -err, "write %s", w->path) : 0;
}

static int lw_write(minidbx_backend_writer *base, const void *data, size_t size)
{
    local_writer *w = (local_writer *)base;
    int rc;
    if (w->fd < 0 && w->size + size <= w->s->inline_threshold) {
        if (!w->buf && !(w->buf = malloc(w->s->inline_threshold ? w->s->inline_threshold : 1)))
            return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        memcpy(w->buf + w->buf_len, data, size);
        w->buf_len += size;
        w->size += size;
        return 0;
    }
    if (w->fd < 0 && (rc = writer_spill(w)) < 0)
        return rc;
    int err = dbx_write_all(w->fd, data, size);
    if (err < 0)
        return local_io_error(w->s, -err, "write %s", w->path);
    w->size += size;
    writer_start_writeback(w); /* a hint: its errors surface in fdatasync */
    return 0;
}

static void lw_free(local_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    free(w);
}

static int lw_commit_created(minidbx_backend_writer *base, const minidbx_id *id, int *created)
{
    local_writer *w = (local_writer *)base;
    int rc;
    if (w->fd < 0) {
        rc = put_inline(w->s, id, w->buf, w->buf_len);
    } else if (w->s->sync && !local_in_batch(w->s) && fdatasync(w->fd) < 0) {
        rc = local_io_error(w->s, errno, "fsync %s", w->path);
        unlink(w->path);
    } else if ((rc = put_file(w->s, id, w->path, w->size)) < 0) {
        unlink(w->path); /* fails harmlessly if it was renamed */
    }
    lw_free(w);
    if (rc < 0)
        return rc;
    *created = rc == 0;
    return 0;
}

static int lw_commit(minidbx_backend_writer *base, const minidbx_id *id)
{
    int created;
    return lw_commit_created(base, id, &created);
}

static void lw_abort(minidbx_backend_writer *base)
{
    local_writer *w = (local_writer *)base;
    if (w->fd >= 0)
        unlink(w->path);
    lw_free(w);
}

static int local_writer_open(minidbx_backend *be, minidbx_backend_writer **out)
{
    local_writer *w = calloc(1, sizeof *w);
    if (!w)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    w->base.write = lw_write;
    w->base.commit = lw_commit;
    w->base.abort = lw_abort;
    w->base.commit_created = lw_commit_created;
    w->s = (local_store *)be;
    w->fd = -1;
    *out = &w->base;
    return 0;
}

static int local_put(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size)
{
    local_store *s = (local_store *)be;
    char path[PATH_MAX];
    int rc;
    if (size <= s->inline_threshold) {
        rc = put_inline(s, id, data, size);
        return rc < 0 ? rc : 0;
    }
    int fd = temp_create(s, path);
    if (fd < 0)
        return fd;
    rc = 0;
    int err = dbx_write_all(fd, data, size);
    if (err < 0)
        rc = local_io_error(s, -err, "write %s", path);
    else if (s->sync && !local_in_batch(s) && fdatasync(fd) < 0)
        rc = local_io_error(s, errno, "fsync %s", path);
    if (rc == 0)
        rc = put_file(s, id, path, size);
    if (rc < 0)
        unlink(path);
    close(fd);
    return rc < 0 ? rc : 0;
}

/* --- reading --------------------------------------------------------------------- */

/* Look a record up; for inline objects copy the bytes out (into *inline_copy,
 * malloc'd) before the transaction ends. */
static int lookup(local_store *s, const minidbx_id *id, record_header *h, char **inline_copy)
{
    read_txn rt;
    MDB_val k = id_key(id), v;
    char sid[16];
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    int lrc = mdb_get(rt.txn, s->objects, &k, &v);
    if (lrc == MDB_NOTFOUND)
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "object %s: not found", short_id(id, sid));
    else if (lrc)
        rc = dbx_error_lmdb(lrc, "%s: looking up %s", s->root, short_id(id, sid));
    else
        rc = local_record_parse(&v, id, h);
    if (rc == 0 && inline_copy && (h->flags & RECORD_INLINE)) {
        *inline_copy = malloc(h->size ? (size_t)h->size : 1);
        if (!*inline_copy)
            rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        else
            memcpy(*inline_copy, (char *)v.mv_data + RECORD_HEADER_BYTES, (size_t)h->size);
    }
    local_read_end(s, &rt);
    return rc;
}

/* Open an object's blob file. A file that is gone while its record is not
 * is a MISSING object (ECORRUPT); gone with its record: deleted meanwhile.
 * Anything but a regular file (a FIFO, a symlink) is ECORRUPT too. */
static int open_blob(local_store *s, const minidbx_id *id, const record_header *h)
{
    char path[PATH_MAX], sid[16];
    record_header again;
    struct stat st;
    int fd = local_blob_open(s, id, path, &st);
    if (fd < 0) {
        if (fd == -ENOENT && lookup(s, id, &again, NULL) == MINIDBX_ENOTFOUND)
            return minidbx_error_set(MINIDBX_ENOTFOUND, "object %s: not found", short_id(id, sid));
        if (fd == -ENOENT)
            return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: blob file %s is missing",
                                     short_id(id, sid), path);
        if (fd == BLOB_NOT_REGULAR)
            return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: blob file %s is not a regular file",
                                     short_id(id, sid), path);
        return local_io_error(s, -fd, "open %s", path);
    }
    if ((uint64_t)st.st_size != h->size) {
        close(fd);
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: blob file %s has the wrong size",
                                 short_id(id, sid), path);
    }
    return fd;
}

static int local_get(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size)
{
    local_store *s = (local_store *)be;
    record_header h;
    char *data = NULL, sid[16];
    int rc = lookup(s, id, &h, &data);
    if (rc < 0)
        return rc;
    if (!(h.flags & RECORD_INLINE)) {
        if (h.size > SIZE_MAX - 1)
            return minidbx_error_set(MINIDBX_ENOMEM, "object %s is too big for memory",
                                     short_id(id, sid));
        int fd = open_blob(s, id, &h);
        if (fd < 0)
            return fd;
        data = malloc(h.size ? (size_t)h.size : 1);
        ssize_t n = data ? dbx_pread_full(fd, data, (size_t)h.size, 0) : 0;
        close(fd);
        if (!data)
            return minidbx_error_set(MINIDBX_ENOMEM, "get %s: cannot allocate %llu bytes",
                                     short_id(id, sid), (unsigned long long)h.size);
        if (n < 0 || (uint64_t)n != h.size) {
            free(data);
            return n < 0 ? local_io_error(s, (int)-n, "read object %s", short_id(id, sid))
                         : minidbx_error_set(MINIDBX_ECORRUPT, "object %s: blob file is short",
                                             short_id(id, sid));
        }
    }
    *out_data = data;
    *out_size = (size_t)h.size;
    return 0;
}

typedef struct {
    minidbx_backend_reader base;
    char *inline_data; /* the bytes of an inline object, or NULL */
    int fd;            /* the blob file, or -1 */
    uint64_t size, offset;
} local_reader;

static int lr_read(minidbx_backend_reader *base, void *buf, size_t capacity, size_t *out_read)
{
    local_reader *r = (local_reader *)base;
    uint64_t left = r->size - r->offset;
    size_t n = left < capacity ? (size_t)left : capacity;
    if (r->inline_data) {
        memcpy(buf, r->inline_data + r->offset, n);
    } else if (n > 0) {
        ssize_t got = dbx_pread_full(r->fd, buf, n, r->offset);
        if (got < 0)
            return dbx_error_io((int)-got, "read blob");
        if ((size_t)got != n)
            return minidbx_error_set(MINIDBX_ECORRUPT, "blob file is shorter than its record");
    }
    r->offset += n;
    *out_read = n;
    return 0;
}

static int lr_fd(minidbx_backend_reader *base, int *out_fd, uint64_t *out_offset)
{
    local_reader *r = (local_reader *)base;
    if (r->fd < 0)
        return minidbx_error_set(MINIDBX_EUNSUPPORTED, "reader_fd: the object is inline");
    *out_fd = r->fd;
    *out_offset = 0;
    return 0;
}

static void lr_close(minidbx_backend_reader *base)
{
    local_reader *r = (local_reader *)base;
    if (r->fd >= 0)
        close(r->fd);
    free(r->inline_data);
    free(r);
}

static int local_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                             uint64_t *out_size)
{
    local_store *s = (local_store *)be;
    record_header h;
    local_reader *r = calloc(1, sizeof *r);
    if (!r)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    r->fd = -1;
    int rc = lookup(s, id, &h, &r->inline_data);
    if (rc == 0 && !(h.flags & RECORD_INLINE) && (r->fd = open_blob(s, id, &h)) < 0)
        rc = r->fd;
    if (rc < 0) {
        r->fd = -1;
        lr_close(&r->base);
        return rc;
    }
    r->size = h.size;
    r->base.read = lr_read;
    r->base.fd = lr_fd;
    r->base.close = lr_close;
    *out = &r->base;
    *out_size = h.size;
    return 0;
}

/* Is the object there to be read: 1, 0 or an error. A record whose blob is
 * gone, not a regular file or of the wrong size does not count (one
 * fstatat; the bytes are not hashed), nor does a malformed record: exists
 * and missing never claim what a get cannot deliver, so that a client
 * (push, sync) sends the bytes again and the put heals the copy. */
static int object_present(local_store *s, MDB_txn *txn, const minidbx_id *id)
{
    MDB_val k = id_key(id), v;
    record_header h;
    int rc = mdb_get(txn, s->objects, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return dbx_error_lmdb(rc, "%s: looking up an object", s->root);
    if (local_record_parse(&v, id, &h) < 0) {
        dbx_error_clear();
        return 0;
    }
    return (h.flags & RECORD_INLINE) ? 1 : local_blob_ok(s, id, h.size);
}

static int local_exists(minidbx_backend *be, const minidbx_id *id)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    rc = object_present(s, rt.txn, id);
    local_read_end(s, &rt);
    return rc;
}

static int local_missing(minidbx_backend *be, const minidbx_id *ids, size_t count,
                         minidbx_id *out_missing, size_t *out_count)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    size_t n = 0;
    int rc = local_read_begin(s, &rt);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        minidbx_id id = ids[i]; /* out_missing may alias ids */
        rc = object_present(s, rt.txn, &id);
        if (rc == 0)
            out_missing[n++] = id;
        if (rc > 0)
            rc = 0;
    }
    local_read_end(s, &rt);
    if (rc == 0)
        *out_count = n;
    return rc;
}

/* How many names point at id. */
int local_count_refs(local_store *s, MDB_txn *txn, const minidbx_id *id, uint64_t *out)
{
    MDB_cursor *c;
    MDB_val k = id_key(id), v;
    size_t n = 0;
    int rc = mdb_cursor_open(txn, s->refs, &c);
    if (rc)
        return dbx_error_lmdb(rc, "%s: refs cursor", s->root);
    rc = mdb_cursor_get(c, &k, &v, MDB_SET);
    if (rc == 0)
        rc = mdb_cursor_count(c, &n);
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return dbx_error_lmdb(rc, "%s: counting refs", s->root);
    *out = n;
    return 0;
}

static int fill_info(local_store *s, MDB_txn *txn, const minidbx_id *id, const record_header *h,
                     minidbx_object_info *out)
{
    minidbx_id copy = *id; /* id may point into *out */
    memset(out, 0, sizeof *out);
    out->id = copy;
    out->size = h->size;
    out->created_ns = h->created_ns;
    out->flags = (h->flags & RECORD_INLINE) ? MINIDBX_OBJECT_INLINE : 0;
    return local_count_refs(s, txn, &copy, &out->refs);
}

static int local_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    record_header h;
    MDB_val k = id_key(id), v;
    char sid[16];
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    int lrc = mdb_get(rt.txn, s->objects, &k, &v);
    if (lrc == MDB_NOTFOUND)
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "object %s: not found", short_id(id, sid));
    else if (lrc)
        rc = dbx_error_lmdb(lrc, "%s: stat", s->root);
    else if ((rc = local_record_parse(&v, id, &h)) == 0)
        rc = fill_info(s, rt.txn, id, &h, out);
    local_read_end(s, &rt);
    return rc;
}

static int local_list(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
                      size_t capacity, size_t *out_count)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    size_t n = 0;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    int lrc = mdb_cursor_open(rt.txn, s->objects, &c);
    if (lrc == 0) {
        if (after) {
            k = id_key(after);
            lrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
            if (lrc == 0 && k.mv_size == MINIDBX_ID_SIZE && memcmp(k.mv_data, after->bytes, MINIDBX_ID_SIZE) == 0)
                lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
        } else {
            lrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        }
    }
    while (lrc == 0 && n < capacity) {
        minidbx_id id;
        record_header h;
        if (k.mv_size != MINIDBX_ID_SIZE) {
            rc = minidbx_error_set(MINIDBX_ECORRUPT, "%s: malformed object key", s->root);
            break;
        }
        memcpy(id.bytes, k.mv_data, MINIDBX_ID_SIZE);
        if ((rc = local_record_parse(&v, &id, &h)) < 0 || (rc = fill_info(s, rt.txn, &id, &h, &out[n])) < 0)
            break;
        n++;
        lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && lrc && lrc != MDB_NOTFOUND)
        rc = dbx_error_lmdb(lrc, "%s: listing objects", s->root);
    mdb_cursor_close(c);
    local_read_end(s, &rt);
    if (rc == 0)
        *out_count = n;
    return rc;
}

/* --- deleting -------------------------------------------------------------------- */

int local_remove_object(local_store *s, MDB_txn *txn, const minidbx_id *id, const record_header *h)
{
    MDB_cursor *c;
    MDB_val k = id_key(id), v;
    int rc = mdb_cursor_open(txn, s->refs, &c);
    if (rc)
        return dbx_error_lmdb(rc, "%s: refs cursor", s->root);
    /* Drop every name that points here, then the refs, then the record. */
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP)) {
        MDB_val name = v;
        int drc = mdb_del(txn, s->names, &name, NULL);
        if (drc && drc != MDB_NOTFOUND) {
            rc = drc;
            break;
        }
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND)
        return dbx_error_lmdb(rc, "%s: removing names", s->root);
    k = id_key(id);
    rc = mdb_del(txn, s->refs, &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return dbx_error_lmdb(rc, "%s: removing refs", s->root);
    k = id_key(id);
    if ((rc = mdb_del(txn, s->objects, &k, NULL)) != 0)
        return dbx_error_lmdb(rc, "%s: removing a record", s->root);
    return local_stats_add(s, txn, -(int64_t)h->size, (h->flags & RECORD_INLINE) ? -1 : 0);
}

/* The record goes first, then the file: a crash in between leaves an
 * orphan file (harmless), never a record without bytes. The exclusive
 * store lock keeps a concurrent put of the same bytes from renaming its
 * file into place between our commit and our unlink. Inside a batch the
 * thread holds the shared lock, so the unlink waits for the commit. */
static int local_delete(minidbx_backend *be, const minidbx_id *id, unsigned flags)
{
    local_store *s = (local_store *)be;
    MDB_txn *txn;
    MDB_val k = id_key(id), v;
    record_header h;
    uint64_t refs = 0;
    char sid[16];
    bool in_batch = local_in_batch(s);
    int lock_fd = in_batch ? -1 : local_lock(s, true);
    if (lock_fd < 0 && !in_batch)
        return lock_fd;
    int rc = local_write_begin(s, &txn, &in_batch);
    if (rc < 0)
        goto out;
    int lrc = mdb_get(txn, s->objects, &k, &v);
    if (lrc == MDB_NOTFOUND)
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "object %s: not found", short_id(id, sid));
    else if (lrc)
        rc = dbx_error_lmdb(lrc, "%s: delete", s->root);
    else if ((rc = local_record_parse(&v, id, &h)) == 0 && (rc = local_count_refs(s, txn, id, &refs)) == 0) {
        if (refs && !(flags & MINIDBX_DELETE_CASCADE))
            rc = minidbx_error_set(MINIDBX_EREFERENCED, "object %s: %llu name(s) point at it",
                                   short_id(id, sid), (unsigned long long)refs);
        else
            rc = local_remove_object(s, txn, id, &h);
    }
    rc = local_write_end(s, txn, in_batch, rc);
    if (rc == 0 && !(h.flags & RECORD_INLINE)) {
        char path[PATH_MAX];
        DBX_TEST_PAUSE("delete-committed");
        local_blob_path(s, id, path);
        if (in_batch)
            rc = path_list_add(&batch_of(s)->deleted, path);
        else
            unlink(path);
    }
out:
    local_unlock(lock_fd);
    return rc;
}

/* --- batches --------------------------------------------------------------------- */

static void batch_free(local_batch *b)
{
    thread_batch = NULL;
    local_unlock(b->lock_fd);
    path_list_free(&b->files);
    path_list_free(&b->dirs);
    path_list_free(&b->deleted);
    free(b);
}

static int local_batch_begin(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    if (thread_batch)
        return minidbx_error_set(MINIDBX_ESTATE, "batch_begin: this thread already has a batch open");
    local_batch *b = calloc(1, sizeof *b);
    if (!b)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    /* Lock order everywhere: store flock first, then the LMDB writer lock. */
    if ((b->lock_fd = local_lock(s, false)) < 0) {
        int rc = b->lock_fd;
        free(b);
        return rc;
    }
    int rc = mdb_txn_begin(s->env, NULL, 0, &b->txn);
    if (rc) {
        local_unlock(b->lock_fd);
        free(b);
        return dbx_error_lmdb(rc, "%s: batch_begin", s->root);
    }
    b->store = s;
    thread_batch = b;
    return 0;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dbx_error_io(errno, "open %s", path);
    int rc = fsync(fd) < 0 ? dbx_error_io(errno, "fsync %s", path) : 0;
    close(fd);
    return rc;
}

/* Throw a batch away. The blobs it renamed into place are unlinked while
 * it still holds the writer lock: until then nobody else can commit a
 * record for them, so nobody else can need them. */
static void batch_discard(local_batch *b)
{
    for (size_t i = 0; i < b->files.count; i++)
        unlink(b->files.paths[i]);
    mdb_txn_abort(b->txn);
    batch_free(b);
}

/* After a committed batch deleted file objects: trade the shared store lock
 * for the exclusive one (never while holding the writer lock: puts wait for
 * it while holding the shared lock), then unlink each blob unless a put has
 * stored the object again meanwhile. Failing here only leaves orphans. */
static void batch_unlink_deleted(local_store *s, local_batch *b)
{
    read_txn rt;
    thread_batch = NULL; /* its transaction is committed: read a fresh one */
    local_unlock(b->lock_fd);
    if ((b->lock_fd = local_lock(s, true)) < 0 || local_read_begin(s, &rt) < 0)
        return;
    for (size_t i = 0; i < b->deleted.count; i++) {
        const char *base = strrchr(b->deleted.paths[i], '/');
        minidbx_id id;
        if (base && minidbx_id_parse(&id, base + 1) == 0 && record_exists(s, rt.txn, &id) == 0)
            unlink(b->deleted.paths[i]);
    }
    local_read_end(s, &rt);
}

static int local_batch_commit(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    local_batch *b = batch_of(s);
    if (!b)
        return minidbx_error_set(MINIDBX_ESTATE, "batch_commit: no batch open by this thread");
    int rc = b->error ? minidbx_error_set(b->error, "batch_commit: a call in the batch failed (%s)",
                                          minidbx_strerror(b->error))
                      : 0;
    /* Blob files and their directories first, then the metadata. */
    for (size_t i = 0; rc == 0 && s->sync && i < b->files.count; i++)
        rc = fsync_path(b->files.paths[i]);
    for (size_t i = 0; rc == 0 && i < b->dirs.count; i++)
        rc = fsync_dir_checked(b->dirs.paths[i]);
    if (rc == 0 && (b->bytes_delta || b->inline_delta))
        rc = write_stats(s, b->txn, b->bytes_delta, b->inline_delta);
    if (rc < 0) {
        batch_discard(b);
        return rc;
    }
    int lrc = mdb_txn_commit(b->txn);
    /* on failure the blobs it renamed stay as orphans, for gc */
    rc = lrc ? dbx_error_lmdb(lrc, "%s: batch commit", s->root) : store_still_there(s);
    if (rc == 0 && b->deleted.count)
        batch_unlink_deleted(s, b);
    batch_free(b);
    return rc;
}

static int local_batch_abort(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    local_batch *b = batch_of(s);
    if (!b)
        return minidbx_error_set(MINIDBX_ESTATE, "batch_abort: no batch open by this thread");
    batch_discard(b);
    return 0;
}

/* --- names -------------------------------------------------------------------------- */

static MDB_val name_key(const char *name)
{
    MDB_val k = { strlen(name), (void *)name };
    return k;
}

static int local_name_set(minidbx_backend *be, const char *name, const minidbx_id *id)
{
    local_store *s = (local_store *)be;
    MDB_txn *txn;
    bool in_batch;
    MDB_val k = id_key(id), v, nk = name_key(name);
    record_header h;
    char sid[16];
    int rc = local_write_begin(s, &txn, &in_batch);
    if (rc < 0)
        return rc;
    int lrc = mdb_get(txn, s->objects, &k, &v);
    if (lrc == MDB_NOTFOUND) {
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "name %s: object %s not found", name, short_id(id, sid));
        goto end;
    }
    if (lrc || (rc = local_record_parse(&v, id, &h)) < 0) {
        rc = rc < 0 ? rc : dbx_error_lmdb(lrc, "%s: name set", s->root);
        goto end;
    }
    /* If the name pointed elsewhere, that object loses a reference. */
    if ((lrc = mdb_get(txn, s->names, &nk, &v)) == 0 && v.mv_size == sizeof(name_value)) {
        name_value old;
        memcpy(&old, v.mv_data, sizeof old);
        MDB_val ok = id_key(&old.id), ov = name_key(name);
        lrc = mdb_del(txn, s->refs, &ok, &ov);
    }
    if (lrc && lrc != MDB_NOTFOUND) {
        rc = dbx_error_lmdb(lrc, "%s: name set", s->root);
        goto end;
    }
    name_value nv = { .id = *id, .size = h.size, .mtime_ns = dbx_now_ns() };
    MDB_val value = { sizeof nv, &nv }, rk = id_key(id), rv = name_key(name);
    if ((lrc = mdb_put(txn, s->names, &nk, &value, 0)) == 0)
        lrc = mdb_put(txn, s->refs, &rk, &rv, MDB_NODUPDATA);
    if (lrc && lrc != MDB_KEYEXIST)
        rc = dbx_error_lmdb(lrc, "%s: name set %s", s->root, name);
end:
    return local_write_end(s, txn, in_batch, rc);
}

static int name_info_from(const MDB_val *k, const MDB_val *v, minidbx_name_info *out)
{
    name_value nv;
    if (v->mv_size != sizeof nv || k->mv_size > MINIDBX_NAME_MAX)
        return minidbx_error_set(MINIDBX_ECORRUPT, "malformed name record");
    memcpy(&nv, v->mv_data, sizeof nv);
    memcpy(out->name, k->mv_data, k->mv_size);
    out->name[k->mv_size] = '\0';
    out->id = nv.id;
    out->size = nv.size;
    out->mtime_ns = nv.mtime_ns;
    return 0;
}

static int local_name_get(minidbx_backend *be, const char *name, minidbx_name_info *out)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    MDB_val k = name_key(name), v;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    int lrc = mdb_get(rt.txn, s->names, &k, &v);
    if (lrc == MDB_NOTFOUND)
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "name %s: not found", name);
    else if (lrc)
        rc = dbx_error_lmdb(lrc, "%s: name get", s->root);
    else
        rc = name_info_from(&k, &v, out);
    local_read_end(s, &rt);
    return rc;
}

static int local_name_delete(minidbx_backend *be, const char *name)
{
    local_store *s = (local_store *)be;
    MDB_txn *txn;
    bool in_batch;
    MDB_val k = name_key(name), v;
    int rc = local_write_begin(s, &txn, &in_batch);
    if (rc < 0)
        return rc;
    int lrc = mdb_get(txn, s->names, &k, &v);
    if (lrc == MDB_NOTFOUND) {
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "name %s: not found", name);
    } else if (lrc || v.mv_size != sizeof(name_value)) {
        rc = lrc ? dbx_error_lmdb(lrc, "%s: name delete", s->root)
                 : minidbx_error_set(MINIDBX_ECORRUPT, "name %s: malformed record", name);
    } else {
        name_value nv;
        memcpy(&nv, v.mv_data, sizeof nv);
        MDB_val rk = id_key(&nv.id), rv = name_key(name);
        lrc = mdb_del(txn, s->refs, &rk, &rv);
        if (lrc == 0 || lrc == MDB_NOTFOUND)
            lrc = mdb_del(txn, s->names, &k, NULL);
        if (lrc)
            rc = dbx_error_lmdb(lrc, "%s: name delete %s", s->root, name);
    }
    return local_write_end(s, txn, in_batch, rc);
}

static int local_name_list(minidbx_backend *be, const char *prefix, const char *after,
                           minidbx_name_info *out, size_t capacity, size_t *out_count)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    MDB_cursor *c = NULL;
    size_t n = 0, prefix_len = strlen(prefix);
    /* Start at whichever comes later: the prefix or the cursor. */
    const char *start = (after && strcmp(after, prefix) > 0) ? after : prefix;
    MDB_val k = name_key(start), v;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    int lrc = mdb_cursor_open(rt.txn, s->names, &c);
    if (lrc == 0)
        lrc = start[0] ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    if (lrc == 0 && after && k.mv_size == strlen(after) && memcmp(k.mv_data, after, k.mv_size) == 0)
        lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    while (lrc == 0 && n < capacity) {
        if (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0)
            break;
        if ((rc = name_info_from(&k, &v, &out[n])) < 0)
            break;
        n++;
        lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc == 0 && lrc && lrc != MDB_NOTFOUND)
        rc = dbx_error_lmdb(lrc, "%s: listing names", s->root);
    mdb_cursor_close(c);
    local_read_end(s, &rt);
    if (rc == 0)
        *out_count = n;
    return rc;
}

/* --- info ----------------------------------------------------------------------------- */

static int local_info(minidbx_backend *be, minidbx_store_info *out)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    MDB_stat objects, names;
    store_stats st;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    int lrc = mdb_stat(rt.txn, s->objects, &objects);
    if (lrc == 0)
        lrc = mdb_stat(rt.txn, s->names, &names);
    if (lrc)
        rc = dbx_error_lmdb(lrc, "%s: info", s->root);
    else
        rc = read_stats(s, rt.txn, &st);
    local_read_end(s, &rt);
    if (rc < 0)
        return rc;
    out->objects = objects.ms_entries;
    out->names = names.ms_entries;
    local_batch *b = batch_of(s); /* a batch sees its own puts */
    if (b) {
        st.bytes += (uint64_t)b->bytes_delta;
        st.inline_objects += (uint64_t)b->inline_delta;
    }
    out->bytes = st.bytes;
    out->inline_objects = st.inline_objects;
    out->file_objects = objects.ms_entries - st.inline_objects;
    out->inline_threshold = s->inline_threshold;
    snprintf(out->location, sizeof out->location, "%s", s->root);
    return 0;
}

/* --- open / close ------------------------------------------------------------------------ */

static void local_free(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    local_batch *b = batch_of(s);
    if (b)
        batch_discard(b);
    for (int i = 0; i < s->pool_count; i++)
        mdb_txn_abort(s->pool[i]);
    if (s->env)
        mdb_env_close(s->env);
    pthread_mutex_destroy(&s->pool_lock);
    free(s->root);
    free(s->lock_path);
    free(s);
}

/* What is at path: 1 a store, 0 nothing or an empty directory (a store may
 * be created), or an error (EINVAL: something else is there). */
static int classify_location(const char *path)
{
    struct stat st;
    char meta[PATH_MAX];
    if (stat(path, &st) < 0)
        return errno == ENOENT ? 0 : dbx_error_errno(errno, "%s", path);
    if (!S_ISDIR(st.st_mode))
        return minidbx_error_set(MINIDBX_EINVAL, "%s: exists and is not a minidbx store (not a directory)", path);
    snprintf(meta, sizeof meta, "%s/meta.lmdb", path);
    if (access(meta, F_OK) == 0)
        return 1;
    DIR *dir = opendir(path);
    if (!dir)
        return dbx_error_errno(errno, "%s", path);
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(dir)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = false;
    closedir(dir);
    if (!empty)
        return minidbx_error_set(MINIDBX_EINVAL, "%s: exists and is not a minidbx store", path);
    return 0;
}

static int open_env(local_store *s, bool create)
{
    char meta[PATH_MAX];
    unsigned flags = MDB_NOSUBDIR | MDB_NOTLS | (s->sync ? 0 : MDB_NOSYNC) | (s->readonly ? MDB_RDONLY : 0);
    int rc = mdb_env_create(&s->env);
    if (rc)
        return dbx_error_lmdb(rc, "%s: cannot create the LMDB environment", s->root);
    mdb_env_set_mapsize(s->env, MAP_BYTES);
    mdb_env_set_maxdbs(s->env, 8);
    mdb_env_set_maxreaders(s->env, MAX_READERS);
    snprintf(meta, sizeof meta, "%s/meta.lmdb", s->root);
    rc = mdb_env_open(s->env, meta, flags, 0644);
    if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
        return minidbx_error_set(MINIDBX_EINVAL, "%s: meta.lmdb is not a minidbx store", s->root);
    if (rc)
        return dbx_error_lmdb(rc, "%s: cannot open meta.lmdb", s->root);
    /* A process killed while reading leaves a reader slot that pins old
     * pages; clear those now. */
    int dead;
    mdb_reader_check(s->env, &dead);
    (void)create;
    return 0;
}

static int open_dbis(local_store *s, MDB_txn *txn, unsigned create)
{
    int rc;
    if ((rc = mdb_dbi_open(txn, "objects", create, &s->objects)) ||
        (rc = mdb_dbi_open(txn, "names", create, &s->names)) ||
        (rc = mdb_dbi_open(txn, "refs", create | MDB_DUPSORT, &s->refs)) ||
        (rc = mdb_dbi_open(txn, "info", create, &s->info)))
        return rc == MDB_NOTFOUND ? minidbx_error_set(MINIDBX_ECORRUPT, "%s: metadata tables are missing", s->root)
                                  : dbx_error_lmdb(rc, "%s: opening tables", s->root);
    return 0;
}

/* Check the format marker and read the inline threshold; on a new store
 * (no marker yet, or a crash right after creation) write both. */
static int load_or_init_info(local_store *s, MDB_txn *txn, size_t want_threshold)
{
    MDB_val fk = { 6, "format" }, tk = { 16, "inline_threshold" }, v;
    int rc = mdb_get(txn, s->info, &fk, &v);
    if (rc == 0) {
        if (v.mv_size != strlen(FORMAT_NAME) || memcmp(v.mv_data, FORMAT_NAME, v.mv_size) != 0)
            return minidbx_error_set(MINIDBX_EINVAL, "%s: unknown store format", s->root);
        uint64_t t;
        if ((rc = mdb_get(txn, s->info, &tk, &v)) || v.mv_size != sizeof t)
            return minidbx_error_set(MINIDBX_ECORRUPT, "%s: inline threshold record missing", s->root);
        memcpy(&t, v.mv_data, sizeof t);
        s->inline_threshold = (size_t)t;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return dbx_error_lmdb(rc, "%s: reading the format", s->root);
    if (s->readonly)
        return minidbx_error_set(MINIDBX_ECORRUPT, "%s: store was never initialised", s->root);
    uint64_t t = want_threshold;
    MDB_val fv = { strlen(FORMAT_NAME), FORMAT_NAME }, tv = { sizeof t, &t };
    if ((rc = mdb_put(txn, s->info, &tk, &tv, 0)) || (rc = mdb_put(txn, s->info, &fk, &fv, 0)))
        return dbx_error_lmdb(rc, "%s: writing the format", s->root);
    s->inline_threshold = (size_t)t;
    return 0;
}

/* Open the tables of an initialised store in a read transaction, so that
 * opening never waits for a writer (a batch may hold the write lock for a
 * while). 1 means the store still needs initialising. */
static int open_existing(local_store *s)
{
    MDB_txn *txn;
    MDB_val fk = { 6, "format" }, v;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return dbx_error_lmdb(rc, "%s: cannot begin a transaction", s->root);
    rc = mdb_dbi_open(txn, "info", 0, &s->info);
    if (rc == 0 && mdb_get(txn, s->info, &fk, &v) == MDB_NOTFOUND)
        rc = MDB_NOTFOUND;
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return 1;
    }
    if (rc)
        rc = dbx_error_lmdb(rc, "%s: opening tables", s->root);
    else if ((rc = open_dbis(s, txn, 0)) == 0)
        rc = load_or_init_info(s, txn, 0);
    if (rc == 0 && (rc = mdb_txn_commit(txn)) != 0) /* commit keeps the table handles */
        return dbx_error_lmdb(rc, "%s: opening tables", s->root);
    if (rc < 0)
        mdb_txn_abort(txn);
    return rc;
}

static int init_metadata(local_store *s, size_t want_threshold)
{
    MDB_txn *txn;
    int rc = open_existing(s);
    if (rc <= 0)
        return rc;
    if (s->readonly)
        return minidbx_error_set(MINIDBX_ECORRUPT, "%s: store was never initialised", s->root);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return dbx_error_lmdb(rc, "%s: cannot begin a transaction", s->root);
    if ((rc = open_dbis(s, txn, MDB_CREATE)) == 0)
        rc = load_or_init_info(s, txn, want_threshold);
    if (rc < 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc ? dbx_error_lmdb(rc, "%s: initialising", s->root) : 0;
}

static int make_dirs(local_store *s)
{
    char path[PATH_MAX];
    bool created;
    const char *subdirs[] = { "blobs", "tmp" };
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", s->root, subdirs[i]);
        int err = dbx_mkdir(path, &created);
        if (err < 0)
            return dbx_error_errno(-err, "mkdir %s", path);
    }
    return s->sync ? fsync_dir_checked(s->root) : 0;
}

static const minidbx_backend local_table = {
    .version = MINIDBX_BACKEND_VERSION,
    .name = "local",
    .free = local_free,
    .put = local_put,
    .get = local_get,
    .exists = local_exists,
    .missing = local_missing,
    .stat = local_stat,
    .del = local_delete,
    .list = local_list,
    .writer_open = local_writer_open,
    .reader_open = local_reader_open,
    .batch_begin = local_batch_begin,
    .batch_commit = local_batch_commit,
    .batch_abort = local_batch_abort,
    .name_set = local_name_set,
    .name_get = local_name_get,
    .name_delete = local_name_delete,
    .name_list = local_name_list,
    .verify = local_verify,
    .gc = local_gc,
    .info = local_info,
};

int dbx_local_open(minidbx_backend **out, const char *path, const minidbx_options *opts)
{
    bool readonly = opts->flags & MINIDBX_OPEN_READONLY;
    int kind = classify_location(path);
    if (kind < 0)
        return kind;
    if (kind == 0 && (opts->flags & MINIDBX_OPEN_NO_CREATE))
        return minidbx_error_set(MINIDBX_ENOTFOUND, "%s: no store here (create it first)", path);
    if (kind == 0 && readonly)
        return minidbx_error_set(MINIDBX_ENOTFOUND, "%s: no store here, and read-only cannot create one", path);
    if (kind == 0) {
        int err = dbx_mkdir_p(path);
        if (err < 0)
            return dbx_error_errno(-err, "create store %s", path);
    }
    local_store *s = calloc(1, sizeof *s);
    if (!s)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    s->base = local_table;
    pthread_mutex_init(&s->pool_lock, NULL);
    s->sync = opts->durability == MINIDBX_SYNC_FULL;
    s->readonly = readonly;
    s->root = realpath(path, NULL);
    int rc = 0;
    if (!s->root || asprintf(&s->lock_path, "%s/lock", s->root) < 0) {
        s->lock_path = NULL;
        rc = s->root ? minidbx_error_set(MINIDBX_ENOMEM, "out of memory") : dbx_error_errno(errno, "%s", path);
        goto fail;
    }
    size_t threshold = opts->inline_threshold ? opts->inline_threshold : MINIDBX_DEFAULT_INLINE_THRESHOLD;
    if (threshold > MAX_INLINE_THRESHOLD) {
        rc = minidbx_error_set(MINIDBX_EINVAL, "inline threshold %zu is over the maximum of %u bytes",
                               threshold, MAX_INLINE_THRESHOLD);
        goto fail;
    }
    if ((rc = open_env(s, kind == 0)) < 0 || (rc = init_metadata(s, threshold)) < 0)
        goto fail;
    if (!readonly && ((rc = make_dirs(s)) < 0 || (rc = local_sweep_tmp(s, true, NULL, NULL, NULL)) < 0))
        goto fail;
    *out = &s->base;
    return 0;
fail:
    local_free(&s->base);
    return rc;
}
