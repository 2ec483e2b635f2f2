/*
 * local.c - the local store: LMDB metadata, small objects inline, large
 * objects as files in sharded directories. This file holds what its other
 * files build on: the layout (blob paths, records), fsyncs, transactions,
 * the store lock, the counters and what a batch holds. See local.h for the
 * layout, the crash invariant every function keeps, and which file does
 * what.
 */
#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
                                 local_short_id(id, sid));
    memcpy(out, v->mv_data, sizeof *out);
    if (out->version != RECORD_VERSION)
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: unknown record version %u",
                                 local_short_id(id, sid), out->version);
    bool is_inline = out->flags & RECORD_INLINE;
    if ((is_inline && v->mv_size - RECORD_HEADER_BYTES != out->size) ||
        (!is_inline && v->mv_size != RECORD_HEADER_BYTES))
        return minidbx_error_set(MINIDBX_ECORRUPT, "object %s: record size does not match",
                                 local_short_id(id, sid));
    return 0;
}

/* Does a record for id exist in txn? 1, 0 or an error. */
int local_record_exists(local_store *s, MDB_txn *txn, const minidbx_id *id)
{
    MDB_val k = local_id_key(id), v;
    int rc = mdb_get(txn, s->objects, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc ? dbx_error_lmdb(rc, "%s: looking up an object", s->root) : 1;
}

/* --- files ------------------------------------------------------------------ */

int local_fsync_dir(const char *path)
{
    int err = dbx_fsync_dir(path);
    return err < 0 ? dbx_error_io(-err, "fsync %s", path) : 0;
}

int local_fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dbx_error_io(errno, "open %s", path);
    int rc = fsync(fd) < 0 ? dbx_error_io(errno, "fsync %s", path) : 0;
    close(fd);
    return rc;
}

/* --- transactions --------------------------------------------------------- */

#define READERS_CHECK_NS 1000000000LL

void local_readers_check(local_store *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    int64_t last = atomic_load(&s->readers_checked_ns);
    if (now - last < READERS_CHECK_NS || !atomic_compare_exchange_strong(&s->readers_checked_ns, &last, now))
        return; /* checked lately, or another thread is checking now */
    int dead;
    mdb_reader_check(s->env, &dead);
}

int local_sync_unchanged(local_store *s, bool in_batch)
{
    if (in_batch) {
        local_batch_of(s)->found = true;
        return 0;
    }
    int lrc = s->sync ? mdb_env_sync(s->env, 1) : 0;
    return lrc ? dbx_error_lmdb(lrc, "%s: sync failed", s->root) : 0;
}

/* After a commit: a store whose directory was deleted keeps working in the
 * open LMDB map, so a change would "succeed" into a file nobody can open
 * again. Say so instead of acknowledging it. One fstat per commit. */
int local_store_still_there(const local_store *s)
{
    if (!local_store_gone(s))
        return 0;
    return minidbx_error_set(MINIDBX_EIO, "store directory %s is gone: the change was not stored",
                             s->root);
}

bool local_in_batch(local_store *s)
{
    return local_batch_of(s) != NULL;
}

int local_read_begin(local_store *s, read_txn *rt)
{
    int rc;
    rt->borrowed = false;
    if (local_in_batch(s)) {
        rt->txn = local_batch_of(s)->txn;
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
        if (local_batch_of(s)->error)
            return minidbx_error_set(local_batch_of(s)->error, "batch failed earlier (%s): abort it",
                                     minidbx_strerror(local_batch_of(s)->error));
        *txn = local_batch_of(s)->txn;
        return 0;
    }
    local_readers_check(s);
    int rc = mdb_txn_begin(s->env, NULL, 0, txn);
    return rc ? dbx_error_lmdb(rc, "%s: cannot begin a write transaction", s->root) : 0;
}

/* End what local_write_begin began: commit when rc is 0, else abort. In a
 * batch, a failure poisons the batch (LMDB may have half-applied it). */
int local_write_end(local_store *s, MDB_txn *txn, bool in_batch, int rc)
{
    if (in_batch) {
        if (rc < 0 && rc != MINIDBX_ENOTFOUND && rc != MINIDBX_EREFERENCED && rc != MINIDBX_EINVAL &&
            rc != MINIDBX_EEXISTS)
            local_batch_of(s)->error = rc;
        if (rc > 0)
            local_batch_of(s)->found = true;
        return rc;
    }
    if (rc < 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    int lrc = mdb_txn_commit(txn);
    if (lrc)
        return dbx_error_lmdb(lrc, "%s: commit failed", s->root);
    return local_store_still_there(s);
}

/* --- group commit --------------------------------------------------------------- */

/* A write waiting for a shared commit; it lives on its caller's stack until
 * done is set (under group_lock). */
struct group_write {
    local_write_fn fn;
    void *ctx;
    int rc;
    bool done;
    pthread_cond_t wake; /* signalled when done, or when it heads the queue and no commit runs */
    char message[512];   /* the failure's words, set on the thread that ran fn */
    struct group_write *next;
};

/* Apply w in txn. Alone in its group it runs in txn itself (a failure then
 * aborts txn: LMDB may have half-applied it); with others, in a nested
 * transaction, so that a failure undoes its changes and no one else's. */
static void group_apply(local_store *s, MDB_txn *txn, struct group_write *w, bool alone)
{
    MDB_txn *child = txn;
    int lrc;
    dbx_error_clear();
    if (!alone && (lrc = mdb_txn_begin(s->env, txn, 0, &child)) != 0) {
        w->rc = dbx_error_lmdb(lrc, "%s: cannot begin a nested write transaction", s->root);
    } else {
        w->rc = w->fn(s, child, w->ctx);
        if (!alone && w->rc < 0)
            mdb_txn_abort(child);
        else if (!alone && (lrc = mdb_txn_commit(child)) != 0)
            w->rc = dbx_error_lmdb(lrc, "%s: nested commit failed", s->root);
    }
    if (w->rc < 0)
        snprintf(w->message, sizeof w->message, "%s", minidbx_errmsg(NULL));
}

/* A durable put that found its object stored (a dedup) may have committed
 * nothing, so no flush: but the record it relies on may be one that a
 * writer with durability none put a moment ago, still only in the page
 * cache. Flush the map then: one fdatasync, which finds little to write
 * (a commit that wrote has flushed it all already). */
static int local_sync_found(local_store *s, const struct group_write *group)
{
    if (!s->sync)
        return 0;
    for (const struct group_write *w = group; w; w = w->next)
        if (w->rc > 0)
            return mdb_env_sync(s->env, 1);
    return 0;
}

/* One transaction for every write of the group, one commit (one round of
 * flushes) for all of them. A write whose changes were applied gets the
 * commit's error if the commit fails. */
static void group_commit(local_store *s, struct group_write *group)
{
    bool alone = group->next == NULL;
    size_t applied = 0;
    MDB_txn *txn;
    local_readers_check(s);
    int rc, lrc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (lrc) {
        rc = dbx_error_lmdb(lrc, "%s: cannot begin a write transaction", s->root);
    } else {
        for (struct group_write *w = group; w; w = w->next)
            if (group_apply(s, txn, w, alone), w->rc >= 0)
                applied++;
        if (applied == 0) {
            mdb_txn_abort(txn);
            return;
        }
        DBX_TEST_PAUSE("group-commit");
        lrc = mdb_txn_commit(txn);
        rc = lrc ? dbx_error_lmdb(lrc, "%s: commit failed", s->root) : local_store_still_there(s);
        if (rc == 0 && (lrc = local_sync_found(s, group)) != 0)
            rc = dbx_error_lmdb(lrc, "%s: sync failed", s->root);
    }
    if (rc == 0)
        return;
    for (struct group_write *w = group; w; w = w->next) {
        if (w->rc >= 0) {
            w->rc = rc;
            snprintf(w->message, sizeof w->message, "%s", minidbx_errmsg(NULL));
        }
    }
}

/* The first waiting thread that finds no commit running takes every write
 * queued so far and commits them; writes queued meanwhile wait for the
 * next group. Each loop round either waits for a commit or runs one, so a
 * write is done after at most two commits. A commit wakes only its own
 * writers and the head of the next queue, who leads the next one: the
 * others of that queue sleep on (a broadcast woke them all, to sleep
 * again, which cost a server with 16 committing threads much of its CPU). */
int local_write_grouped(local_store *s, local_write_fn fn, void *ctx)
{
    if (local_in_batch(s)) {
        MDB_txn *txn;
        bool in_batch;
        int rc = local_write_begin(s, &txn, &in_batch);
        return rc < 0 ? rc : local_write_end(s, txn, in_batch, fn(s, txn, ctx));
    }
    struct group_write w = { .fn = fn, .ctx = ctx };
    pthread_cond_init(&w.wake, NULL);
    pthread_mutex_lock(&s->group_lock);
    if (s->group_tail)
        s->group_tail->next = &w;
    else
        s->group_head = &w;
    s->group_tail = &w;
    while (!w.done) {
        if (s->group_leader) {
            pthread_cond_wait(&w.wake, &s->group_lock);
            continue;
        }
        struct group_write *group = s->group_head;
        s->group_head = s->group_tail = NULL;
        s->group_leader = true;
        pthread_mutex_unlock(&s->group_lock);
        group_commit(s, group);
        pthread_mutex_lock(&s->group_lock);
        for (struct group_write *g = group, *next; g; g = next) {
            next = g->next; /* g may be gone once done is seen */
            g->done = true;
            pthread_cond_signal(&g->wake);
        }
        s->group_leader = false;
        if (s->group_head)
            pthread_cond_signal(&s->group_head->wake);
    }
    pthread_mutex_unlock(&s->group_lock);
    pthread_cond_destroy(&w.wake);
    if (w.rc < 0)
        minidbx_error_set(w.rc, "%s", w.message);
    return w.rc;
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

int local_stats_read(local_store *s, MDB_txn *txn, store_stats *st)
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

int local_stats_write(local_store *s, MDB_txn *txn, int64_t bytes, int64_t inline_objects)
{
    store_stats st;
    int rc = local_stats_read(s, txn, &st);
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
    local_batch *b = local_batch_of(s);
    if (b && b->txn == txn) {
        b->bytes_delta += bytes;
        b->inline_delta += inline_objects;
        return 0;
    }
    return local_stats_write(s, txn, bytes, inline_objects);
}

/* --- what a batch holds --------------------------------------------------- */

_Thread_local local_batch *local_thread_batch;

int local_path_list_add(path_list *l, const char *path)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->paths[i], path) == 0)
            return 0;
    int rc = dbx_grow(&l->paths, &l->capacity, l->count + 1, sizeof *l->paths, 16);
    if (rc < 0)
        return rc;
    if (!(l->paths[l->count] = strdup(path)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    l->count++;
    return 0;
}

void local_path_list_free(path_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}
