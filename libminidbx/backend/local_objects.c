/*
 * local_objects.c - objects of the local store: put (inline or as a blob file),
 * writers and temp files, get, readers, exists, missing, stat, list,
 * delete. See local.h for the crash invariant each keeps.
 */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A temp file whose writer cannot be told dead is still removed when it is
 * unlocked and this old. */
#define STALE_TEMP_SECONDS 3600

static atomic_uint temp_counter;

/* --- putting -------------------------------------------------------------------- */

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
 * there: 0 inserted, 1 already there and sound (its put time moved to now
 * if it was over LOCAL_FRESHEN_NS old, so that gc's grace counts from the
 * last put), 2 it was there but damaged and has been rewritten (a bad copy
 * heals when the right bytes are put again), or an error. One B-tree
 * descent does the check and the insert; the compare costs a memcmp of at
 * most the inline threshold. */
static int record_insert(local_store *s, MDB_txn *txn, const minidbx_id *id, const void *data,
                         uint64_t size, bool is_inline)
{
    int64_t now = dbx_now_ns();
    record_header h = { .version = RECORD_VERSION, .flags = is_inline ? RECORD_INLINE : 0,
                        .size = size, .created_ns = now, .put_ns = now }, old;
    MDB_val k = local_id_key(id), v = { RECORD_HEADER_BYTES + (is_inline ? (size_t)size : 0), NULL };
    int rc = mdb_put(txn, s->objects, &k, &v, MDB_RESERVE | MDB_NOOVERWRITE);
    bool heal = rc == MDB_KEYEXIST; /* v is the stored record */
    bool sound = heal && record_sound(&v, id, data, size, is_inline, &old);
    if (sound && now - local_record_put_ns(&old) < LOCAL_FRESHEN_NS)
        return 1;
    if (heal) { /* sound: rewritten from data (the same bytes) to freshen it */
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
    return sound ? 1 : heal ? 2 : local_stats_add(s, txn, (int64_t)size, is_inline ? 1 : 0);
}

/* The existence check is done in the write transaction, not a read one, so
 * that a put is ordered against gc: it either finds the object after gc, or
 * stores it again. */
struct inline_put {
    const minidbx_id *id;
    const void *data;
    size_t size;
};

static int inline_put_op(local_store *s, MDB_txn *txn, void *ctx)
{
    struct inline_put *p = ctx;
    return record_insert(s, txn, p->id, p->data, p->size, true);
}

/* 0 stored, 1 there already (the writer's "created"), 2 healed, or an
 * error. The commit is shared with concurrent writers (group commit). */
static int put_inline(local_store *s, const minidbx_id *id, const void *data, size_t size)
{
    struct inline_put p = { id, data, size };
    return local_write_grouped(s, inline_put_op, &p);
}

/* Make STORE/blobs/ab/cd exist, and its entries (ab in blobs, cd in ab)
 * durable (or queued for the batch's fsyncs) before any blob is committed
 * under it. Not only when this call made the directory: whoever did may
 * have died (or still be about to fsync) before the entry was durable,
 * and a power cut would then take the blob with it. So each handle fsyncs
 * the parent the first time it uses a shard directory, and remembers. */
static int ensure_shard_dirs(local_store *s, const minidbx_id *id, const char *blob_path, bool in_batch)
{
    char dir[PATH_MAX];
    size_t root_len = strlen(s->root) + strlen("/blobs");
    for (int level = 0; level < 2; level++) {
        size_t len = root_len + 3 * (size_t)(level + 1); /* "/ab", "/ab/cd" */
        unsigned bit = level == 0 ? id->bytes[0] : 256u + id->bytes[0] * 256u + id->bytes[1];
        unsigned mask = 1u << (bit % 32);
        memcpy(dir, blob_path, len);
        dir[len] = '\0';
        bool created;
        int err = dbx_mkdir(dir, &created);
        if (err < 0)
            return local_io_error(s, -err, "mkdir %s", dir);
        if (!s->sync || (!created && (atomic_load(&s->shard_durable[bit / 32]) & mask)))
            continue;
        if (created)
            DBX_TEST_PAUSE("shard-made");
        dir[len - 3] = '\0'; /* the parent, which has (or had) a new entry */
        /* A batch fsyncs the parents of what it made at its commit; one it
         * did not make is fsync'ed now, once per handle. */
        bool at_commit = in_batch && created;
        int rc = at_commit ? local_path_list_add(&local_batch_of(s)->dirs, dir) : local_fsync_dir(dir);
        if (rc < 0)
            return rc;
        if (!at_commit)
            atomic_fetch_or(&s->shard_durable[bit / 32], mask);
    }
    return 0;
}

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

/* A durable batch relies on the blob of id, which is there already: have
 * its commit fsync the blob and its directory, and make the shard
 * directories' entries durable. */
static int batch_keeps_blob(local_store *s, const minidbx_id *id)
{
    char blob[PATH_MAX], dir[PATH_MAX];
    local_blob_path(s, id, blob);
    dir_of(blob, dir);
    int rc = ensure_shard_dirs(s, id, blob, true);
    if (rc == 0 && (local_path_list_add(&local_batch_of(s)->kept, blob) < 0 ||
                    local_path_list_add(&local_batch_of(s)->dirs, dir) < 0))
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    return rc;
}

/* A file put: its temp file, and whether the op renamed it into place. */
struct file_put {
    const minidbx_id *id;
    const char *temp_path;
    uint64_t size;
    bool in_batch;
    bool renamed;
};

/* Move a complete, (if sync) fsync'ed temp file into place and record it in
 * txn: 0 stored, 1 there already (the temp file was not used), or an error.
 * The blob is renamed, and its directory made durable, before the record
 * that points at it can commit. */
static int file_put_op(local_store *s, MDB_txn *txn, void *ctx)
{
    struct file_put *p = ctx;
    char blob[PATH_MAX], dir[PATH_MAX], sid[16];
    bool damaged = false;
    int rc = 0, stored = local_record_exists(s, txn, p->id);
    if (stored > 0)
        stored = (rc = blob_wants_replacing(s, p->id, p->size, p->in_batch, &damaged)) < 0 ? rc : rc ? 2 : 1;
    if (stored < 0)
        return stored;
    if (stored == 1) { /* the record is there (rewritten if it was damaged) */
        /* A durable batch keeps the blob: its commit makes the blob and its
         * entry durable, as a writer with durability none may have put it
         * a moment ago. */
        if (p->in_batch && s->sync && (rc = batch_keeps_blob(s, p->id)) < 0)
            return rc;
        rc = record_insert(s, txn, p->id, NULL, p->size, false);
        return rc < 0 ? rc : 1;
    }
    local_blob_path(s, p->id, blob);
    dir_of(blob, dir);
    /* In a batch the temp file is fsync'ed at commit; a replacement for a
     * damaged blob is made durable first, like a put outside a batch. */
    if (damaged && p->in_batch && s->sync && (rc = local_fsync_path(p->temp_path)) < 0)
        return rc;
    if ((rc = ensure_shard_dirs(s, p->id, blob, p->in_batch)) < 0)
        return rc;
    if (rename(p->temp_path, blob) < 0)
        return local_io_error(s, errno, "put %s: rename into %s", local_short_id(p->id, sid), blob);
    p->renamed = true;
    DBX_TEST_PAUSE("put-renamed");
    /* Only a new blob is the batch's own, to unlink if it aborts. */
    if (p->in_batch)
        rc = (stored == 0 && local_path_list_add(&local_batch_of(s)->files, blob) < 0) ||
                     (s->sync && local_path_list_add(&local_batch_of(s)->dirs, dir) < 0)
                 ? MINIDBX_ENOMEM : 0;
    else if (s->sync) /* a replaced blob's old entry may not be durable either (durability none) */
        rc = local_fsync_dir(dir);
    if (rc < 0)
        return rc;
    if ((rc = record_insert(s, txn, p->id, NULL, p->size, false)) < 0)
        return rc;
    return stored == 2 ? 1 : 0; /* a healed copy: stored before, not created now */
}

/* Store a temp file as id's blob: 0 stored, 1 there already, or an error.
 * The shared store lock keeps delete and gc from unlinking the path
 * between the rename and the commit. On failure the blob may stay as an
 * orphan (no record): harmless, and verify --repair or gc removes it. */
static int put_file(local_store *s, const minidbx_id *id, const char *temp_path, uint64_t size)
{
    struct file_put p = { .id = id, .temp_path = temp_path, .size = size, .in_batch = local_in_batch(s) };
    int lock_fd = p.in_batch ? -1 : local_lock(s, false);
    if (lock_fd < 0 && !p.in_batch)
        return lock_fd;
    int rc = local_write_grouped(s, file_put_op, &p);
    if (rc > 0 && !p.renamed)
        unlink(temp_path); /* stored already: deduplicated */
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
    uint64_t started; /* bytes whose writeback has been started */
    uint64_t waited;  /* bytes whose writeback has been waited for */
    int writeback_error; /* errno of a failed writeback: the put fails */
    bool no_writeback;   /* sync_file_range is not for this file: fdatasync does it all */
    char path[PATH_MAX];
} local_writer;

/* Start the writeback of what was written once WRITEBACK_START bytes wait
 * (a put of one buffer: right after its one write, so the disk works while
 * the library hashes), and keep at most about WRITEBACK_BYTES of a large
 * file waiting for the disk: the final fdatasync has little left to do.
 * An error here is the put's: a wait that meets a failed writeback reports
 * it and marks it seen for this file (the kernel's errseq), so the final
 * fdatasync would not report it again and the put would be acknowledged
 * over bytes that never reached the disk. */
#define WRITEBACK_START (256u << 10)
#define WRITEBACK_BYTES (8u << 20)

static bool writeback_call(local_writer *w, uint64_t offset, uint64_t bytes, unsigned flags)
{
    if (sync_file_range(w->fd, (off64_t)offset, (off64_t)bytes, flags) == 0)
        return true;
    if (errno == EINVAL || errno == ESPIPE || errno == ENOSYS || errno == EPERM || errno == EOPNOTSUPP)
        w->no_writeback = true; /* not for this file (or not allowed here): the final fdatasync does it all */
    else
        w->writeback_error = errno;
    return false;
}

static void writer_start_writeback(local_writer *w)
{
    if (!w->s->sync || w->no_writeback || w->writeback_error || w->size - w->started < WRITEBACK_START)
        return;
    if (!writeback_call(w, w->started, w->size - w->started, SYNC_FILE_RANGE_WRITE))
        return;
    w->started = w->size;
    for (; w->started - w->waited > WRITEBACK_BYTES; w->waited += WRITEBACK_BYTES)
        if (!writeback_call(w, w->waited, WRITEBACK_BYTES,
                            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER))
            return;
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
    writer_start_writeback(w);
    return w->writeback_error ? local_io_error(w->s, w->writeback_error, "write back %s", w->path) : 0;
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
    } else if (w->writeback_error) {
        rc = local_io_error(w->s, w->writeback_error, "write back %s", w->path);
        unlink(w->path);
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

int local_writer_open(minidbx_backend *be, minidbx_backend_writer **out)
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

int local_put(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size)
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

/* Read and parse id's record in txn (v points into the map until the
 * transaction ends): 0, ENOTFOUND, ECORRUPT or an LMDB error. */
static int record_get(local_store *s, MDB_txn *txn, const minidbx_id *id, MDB_val *v, record_header *h)
{
    MDB_val k = local_id_key(id);
    char sid[16];
    int lrc = mdb_get(txn, s->objects, &k, v);
    if (lrc == MDB_NOTFOUND)
        return minidbx_error_set(MINIDBX_ENOTFOUND, "object %s: not found", local_short_id(id, sid));
    if (lrc)
        return dbx_error_lmdb(lrc, "%s: looking up %s", s->root, local_short_id(id, sid));
    return local_record_parse(v, id, h);
}

/* Look a record up; for inline objects copy the bytes out (into *inline_copy,
 * malloc'd) before the transaction ends. */
static int lookup(local_store *s, const minidbx_id *id, record_header *h, char **inline_copy)
{
    read_txn rt;
    MDB_val v;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    rc = record_get(s, rt.txn, id, &v, h);
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
            return minidbx_error_set(MINIDBX_ENOTFOUND, "object %s: not found", local_short_id(id, sid));
        if (fd == -ENOENT)
            return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: blob file %s is missing",
                                     local_short_id(id, sid), path);
        if (fd == BLOB_NOT_REGULAR)
            return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: blob file %s is not a regular file",
                                     local_short_id(id, sid), path);
        return local_io_error(s, -fd, "open %s", path);
    }
    if ((uint64_t)st.st_size != h->size) {
        close(fd);
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: blob file %s has the wrong size",
                                 local_short_id(id, sid), path);
    }
    return fd;
}

int local_get(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size)
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
                                     local_short_id(id, sid));
        int fd = open_blob(s, id, &h);
        if (fd < 0)
            return fd;
        data = malloc(h.size ? (size_t)h.size : 1);
        ssize_t n = data ? dbx_pread_full(fd, data, (size_t)h.size, 0) : 0;
        close(fd);
        if (!data)
            return minidbx_error_set(MINIDBX_ENOMEM, "get %s: cannot allocate %llu bytes",
                                     local_short_id(id, sid), (unsigned long long)h.size);
        if (n < 0 || (uint64_t)n != h.size) {
            free(data);
            return n < 0 ? local_io_error(s, (int)-n, "read object %s", local_short_id(id, sid))
                         : minidbx_error_set(MINIDBX_ECORRUPT, "object %s: blob file is short",
                                             local_short_id(id, sid));
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

int local_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
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
 * fstatat; the bytes are not hashed), nor does a malformed file record:
 * exists and missing do not claim what a get cannot deliver, so that a client
 * (push, sync) sends the bytes again and the put heals the copy. */
static int object_present(local_store *s, MDB_txn *txn, const minidbx_id *id)
{
    MDB_val k = local_id_key(id), v;
    record_header h;
    int rc = mdb_get(txn, s->objects, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return dbx_error_lmdb(rc, "%s: looking up an object", s->root);
    /* Longer than a header: an inline record, its bytes in the value. Do
     * not read the header to make sure: on a random lookup that touches a
     * cold page of the map for every object and halves exists/missing
     * (minidbx-bench small); a damaged record is found by get and verify,
     * and a put of the right bytes heals it. */
    if (v.mv_size > RECORD_HEADER_BYTES)
        return 1;
    if (local_record_parse(&v, id, &h) < 0) {
        dbx_error_clear();
        return 0;
    }
    return (h.flags & RECORD_INLINE) ? 1 : local_blob_ok(s, id, h.size);
}

int local_exists(minidbx_backend *be, const minidbx_id *id)
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

int local_missing(minidbx_backend *be, const minidbx_id *ids, size_t count,
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
    MDB_val k = local_id_key(id), v;
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

int local_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out)
{
    local_store *s = (local_store *)be;
    read_txn rt;
    record_header h;
    MDB_val v;
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    if ((rc = record_get(s, rt.txn, id, &v, &h)) == 0)
        rc = fill_info(s, rt.txn, id, &h, out);
    local_read_end(s, &rt);
    return rc;
}

int local_list(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
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
            k = local_id_key(after);
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
    MDB_val k = local_id_key(id), v;
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
    k = local_id_key(id);
    rc = mdb_del(txn, s->refs, &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return dbx_error_lmdb(rc, "%s: removing refs", s->root);
    k = local_id_key(id);
    if ((rc = mdb_del(txn, s->objects, &k, NULL)) != 0)
        return dbx_error_lmdb(rc, "%s: removing a record", s->root);
    return local_stats_add(s, txn, -(int64_t)h->size, (h->flags & RECORD_INLINE) ? -1 : 0);
}

/* The record goes first, then the file: a crash in between leaves an
 * orphan file (harmless), never a record without bytes. The exclusive
 * store lock keeps a concurrent put of the same bytes from renaming its
 * file into place between our commit and our unlink. Inside a batch the
 * thread holds the shared lock, so the unlink waits for the commit. */
int local_delete(minidbx_backend *be, const minidbx_id *id, unsigned flags)
{
    local_store *s = (local_store *)be;
    MDB_txn *txn;
    MDB_val k = local_id_key(id), v;
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
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "object %s: not found", local_short_id(id, sid));
    else if (lrc)
        rc = dbx_error_lmdb(lrc, "%s: delete", s->root);
    else if ((rc = local_record_parse(&v, id, &h)) == 0 && (rc = local_count_refs(s, txn, id, &refs)) == 0) {
        if (refs && !(flags & MINIDBX_DELETE_CASCADE))
            rc = minidbx_error_set(MINIDBX_EREFERENCED, "object %s: %llu name(s) point at it",
                                   local_short_id(id, sid), (unsigned long long)refs);
        else
            rc = local_remove_object(s, txn, id, &h);
    }
    rc = local_write_end(s, txn, in_batch, rc);
    if (rc == 0 && !(h.flags & RECORD_INLINE)) {
        char path[PATH_MAX];
        DBX_TEST_PAUSE("delete-committed");
        local_blob_path(s, id, path);
        if (in_batch)
            rc = local_path_list_add(&local_batch_of(s)->deleted, path);
        else
            unlink(path);
    }
out:
    local_unlock(lock_fd);
    return rc;
}
