/*
 * local.h - the local store's internals, shared by its files, one per
 * concern: local.c (what the others build on: layout, records, fsyncs,
 * transactions, the lock, counters), local_objects.c (put, get, writers,
 * readers, exists, stat, list, delete), local_batch.c, local_names.c,
 * local_verify.c (verify, gc) and local_open.c (open, close, info, and the
 * table of methods). Not installed.
 *
 * On disk:
 *   STORE/meta.lmdb[-lock]  LMDB: "objects" id -> record (+ inline bytes),
 *                           "names" name -> name_value, "refs" id -> names
 *                           (dupsort), "info" format, threshold, counters
 *   STORE/blobs/ab/cd/<hex> objects over the inline threshold
 *   STORE/tmp/<pid>-<n>.tmp writes in flight (flock'ed by their writer)
 *   STORE/lock              flock: shared while a blob is renamed into
 *                           place and committed, exclusive while blobs are
 *                           unlinked (delete, gc, repair) and while verify
 *                           confirms what its unlocked scan suspected
 *
 * The invariant a crash must not break: a record exists only if its bytes
 * are on disk and right. Hence blob file fsync -> rename -> dir fsync ->
 * metadata commit for puts, and metadata commit -> unlink for deletes.
 */
#ifndef MINIDBX_LOCAL_H
#define MINIDBX_LOCAL_H

#include "internal.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#define RECORD_VERSION 1
#define RECORD_HEADER_BYTES 40
#define RECORD_INLINE 0x1u

/* The record that precedes an object's inline bytes (host byte order). */
typedef struct {
    uint8_t version;
    uint8_t flags;
    uint8_t pad[6];
    uint64_t size;
    int64_t created_ns; /* first put */
    int64_t put_ns;     /* last put, for gc's grace (0 in older records: created_ns) */
    uint64_t reserved;
} record_header;

/* A put of stored bytes rewrites put_ns only when it is older than this,
 * so that re-puts in a burst do not each dirty a page (gc allows for it). */
#define LOCAL_FRESHEN_NS 1000000000LL

static inline int64_t local_record_put_ns(const record_header *h)
{
    return h->put_ns ? h->put_ns : h->created_ns;
}

/* What a name points at. */
typedef struct {
    minidbx_id id;
    uint64_t size;
    int64_t mtime_ns;
} name_value;

typedef struct local_batch local_batch;

/* Files created in one batch are fsync'ed together at commit. */
typedef struct {
    char **paths;
    size_t count, capacity;
} path_list;

typedef struct local_store {
    minidbx_backend base;
    char *root;
    char *lock_path;
    MDB_env *env;
    MDB_dbi objects, names, refs, info;
    size_t inline_threshold;
    bool sync;
    bool readonly;

    /* Reset read transactions waiting to be renewed: MDB_NOTLS lets any
     * thread renew one, which saves a malloc and a reader-slot search per
     * get. */
    pthread_mutex_t pool_lock;
    MDB_txn *pool[64];
    int pool_count;

    /* Group commit (local.c, local_write_grouped): writes waiting for the
     * next shared commit, and whether a thread is committing one. */
    pthread_mutex_t group_lock;
    struct group_write *group_head, *group_tail;
    bool group_leader;

    /* Shard directories whose entry in their parent this handle has
     * fsync'ed (local_objects.c, ensure_shard_dirs), one bit each: blobs/ab
     * at ab, blobs/ab/cd at 256 + ab * 256 + cd. */
    atomic_uint shard_durable[(256 + 65536) / 32];

    /* When this process last cleared the reader slots of dead processes
     * (CLOCK_MONOTONIC ns; local_readers_check). */
    _Atomic int64_t readers_checked_ns;

    /* Handles of this process on the store (local_open.c): a second open
     * of the same meta.lmdb (device, inode) shares this one, as LMDB's
     * locks are per process. */
    dev_t dev;
    ino_t ino;
    pid_t pid; /* the process that opened it: a child after fork() does not share it */
    int handles; /* how many minidbx handles share it */
    struct local_store *next_open;
} local_store;

/* A batch (local_batch.c): one LMDB write transaction that the thread's
 * puts, deletes and name changes join until it is committed or aborted. */
struct local_batch {
    local_store *store;
    MDB_txn *txn;
    int lock_fd;        /* shared store lock, held for the batch */
    path_list files;    /* blobs renamed into place: fsync'ed at commit, unlinked on abort */
    path_list deleted;  /* blobs whose records the batch deleted: unlinked after commit */
    path_list dirs;     /* directories whose entries changed */
    path_list kept;     /* blobs already there that its puts rely on: fsync'ed at commit */
    bool found;         /* a put found its object stored: the commit makes sure it is durable */
    int64_t bytes_delta, inline_delta; /* counters, written once at commit */
    int error;          /* first failure: the batch can only be aborted */
};

/* The batch of the calling thread, whichever store it is on: one batch per
 * thread at a time. A batch belongs to a thread, not to a store, so that
 * two threads batching on one handle never see each other's batch. */
extern _Thread_local local_batch *local_thread_batch;

static inline local_batch *local_batch_of(const local_store *s)
{
    return local_thread_batch && local_thread_batch->store == s ? local_thread_batch : NULL;
}

/* Add path unless it is there already. 0 or ENOMEM. */
int local_path_list_add(path_list *l, const char *path);
void local_path_list_free(path_list *l);
/* Throw the batch away: unlink its blobs, abort its transaction, free it
 * (local_batch.c). */
void local_batch_discard(local_batch *b);

static inline MDB_val local_id_key(const minidbx_id *id)
{
    MDB_val k = { MINIDBX_ID_SIZE, (void *)id->bytes };
    return k;
}

/* dbx_id_short into buf, returning buf: for messages. */
static inline const char *local_short_id(const minidbx_id *id, char buf[16])
{
    dbx_id_short(id, buf);
    return buf;
}

/* A read transaction: the thread's own batch transaction if it has one
 * (so a batch sees its own puts), else one from the pool. */
typedef struct {
    MDB_txn *txn;
    bool borrowed;
} read_txn;

int local_read_begin(local_store *s, read_txn *rt);
void local_read_end(local_store *s, read_txn *rt);

/* Write transactions: the thread's batch, or a new one committed at end. */
int local_write_begin(local_store *s, MDB_txn **txn, bool *in_batch);
int local_write_end(local_store *s, MDB_txn *txn, bool in_batch, int rc);
bool local_in_batch(local_store *s);
/* One write that may share its commit: fn(s, txn, ctx) makes the changes
 * and returns 0 or more (handed back as is) or an error (its changes are
 * undone). Outside a batch, writes that threads of this process make at
 * the same time are applied in one LMDB transaction and committed once (one
 * round of flushes for all; a write that arrives during a commit joins the
 * next), each in a nested transaction so that one failing undoes only its
 * own. The call returns after the commit that holds its changes, so its
 * result is as durable as the store's mode promises. In a batch, fn runs in
 * the batch's transaction. fn may run on another thread than the caller's
 * (the caller's locks stay held while it waits); its error message reaches
 * the caller. */
typedef int (*local_write_fn)(local_store *s, MDB_txn *txn, void *ctx);
int local_write_grouped(local_store *s, local_write_fn fn, void *ctx);
/* After a commit: EIO if the store's directory was removed under us (the
 * open map would take changes nobody can read again), else 0. */
int local_store_still_there(const local_store *s);

/* The store flock (see above). Returns an fd to pass to unlock, or a code. */
int local_lock(local_store *s, bool exclusive);
void local_unlock(int fd);

/* How many names point at id. */
int local_count_refs(local_store *s, MDB_txn *txn, const minidbx_id *id, uint64_t *out);
/* Decode a record; ECORRUPT if it is malformed. */
int local_record_parse(const MDB_val *v, const minidbx_id *id, record_header *out);
/* STORE/blobs/ab/cd/<hex>, into out[PATH_MAX]. */
void local_blob_path(const local_store *s, const minidbx_id *id, char *out);
/* Open the blob file of id for reading (its path goes to path[PATH_MAX]).
 * Never follows a symlink, never blocks on a FIFO, accepts regular files
 * only, so that nothing planted in the store can hang or redirect a read.
 * Returns the fd (with *st filled), -ENOENT when there is no file,
 * BLOB_NOT_REGULAR, or another -errno. */
#define BLOB_NOT_REGULAR (-100000)
int local_blob_open(const local_store *s, const minidbx_id *id, char *path, struct stat *st);
/* The cheap check that a file object's bytes are there: 1 if its blob is a
 * regular file of size bytes, 0 if it is gone, of another type or size, or
 * an error. One fstatat, no hashing. */
int local_blob_ok(const local_store *s, const minidbx_id *id, uint64_t size);
/* 1 if the store's directory or metadata file was removed under us. */
bool local_store_gone(const local_store *s);
/* Report a failure on the store's own files (errno err) as MINIDBX_EIO
 * (ENOSPC, ENOMEM kept), saying "store directory X is gone" when it is. */
int local_io_error(const local_store *s, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Before a write transaction: at most every second, clear the reader slots
 * of dead processes (mdb_reader_check), whose old snapshots would keep
 * LMDB from reusing any page freed since: the file would grow for ever. */
void local_readers_check(local_store *s);

/* After a durable write that found what it was asked for already there and
 * changed nothing (so its commit flushed nothing): what it relies on may
 * be a writer's with durability none, still only in the page cache. Flush
 * the map (in a batch: at its commit). 0 or an error. */
int local_sync_unchanged(local_store *s, bool in_batch);
/* Remove a record, its names and refs, and adjust the counters. */
int local_remove_object(local_store *s, MDB_txn *txn, const minidbx_id *id, const record_header *h);
/* The byte and inline-object counters in "info". */
typedef struct {
    uint64_t bytes;
    uint64_t inline_objects;
} store_stats;

int local_stats_read(local_store *s, MDB_txn *txn, store_stats *st);
/* Add to the counters (in a batch: at its commit); local_stats_write
 * writes them now. */
int local_stats_add(local_store *s, MDB_txn *txn, int64_t bytes, int64_t inline_objects);
int local_stats_write(local_store *s, MDB_txn *txn, int64_t bytes, int64_t inline_objects);
/* Does a record for id exist in txn? 1, 0 or an error. */
int local_record_exists(local_store *s, MDB_txn *txn, const minidbx_id *id);
/* fsync a file or a directory by path; errors as MINIDBX_EIO with the path. */
int local_fsync_path(const char *path);
int local_fsync_dir(const char *path);
/* Remove temp files of writers that died; count what was (or would be) removed. */
int local_sweep_tmp(local_store *s, bool remove, minidbx_problem_cb cb, void *ctx,
                    minidbx_verify_report *report);

/* The table's methods, by file. */
/* local_objects.c */
int local_put(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size);
int local_get(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size);
int local_exists(minidbx_backend *be, const minidbx_id *id);
int local_missing(minidbx_backend *be, const minidbx_id *ids, size_t count, minidbx_id *out_missing,
                  size_t *out_count);
int local_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out);
int local_list(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
               size_t capacity, size_t *out_count);
int local_delete(minidbx_backend *be, const minidbx_id *id, unsigned flags);
int local_writer_open(minidbx_backend *be, minidbx_backend_writer **out);
int local_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                      uint64_t *out_size);
/* local_batch.c */
int local_batch_begin(minidbx_backend *be);
int local_batch_commit(minidbx_backend *be);
int local_batch_abort(minidbx_backend *be);
/* local_names.c */
int local_name_set(minidbx_backend *be, const char *name, const minidbx_id *id);
int local_name_set_at(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns);
int local_name_set_keep(minidbx_backend *be, const char *name, const minidbx_id *id);
int local_name_get(minidbx_backend *be, const char *name, minidbx_name_info *out);
int local_name_delete(minidbx_backend *be, const char *name);
int local_name_list(minidbx_backend *be, const char *prefix, const char *after,
                    minidbx_name_info *out, size_t capacity, size_t *out_count);
/* local_verify.c */
int local_verify(minidbx_backend *be, const minidbx_id *id, unsigned flags,
                 minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx);
int local_gc(minidbx_backend *be, minidbx_gc_report *report);
int local_gc_ex(minidbx_backend *be, const minidbx_gc_options *opts, minidbx_gc_report *report);

#endif
