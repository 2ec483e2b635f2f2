/*
 * local_open.c - opening and closing the local store (checking what is at
 * the path, creating it, LMDB's environment and databases, the format and
 * threshold records), its info, and the backend table that points at the
 * methods of the other local*.c files.
 */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define FORMAT_NAME "minidbx-local-1"
/* LMDB reserves address space, not disk: a sparse 1 TiB map means no user
 * ever has to guess a size, and no resize dance between processes. */
#define MAP_BYTES (1ull << 40)
#define MAX_READERS 1024
/* A writer holds up to this much in memory before it knows it needs a file. */
#define MAX_INLINE_THRESHOLD (16u << 20)

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
        rc = local_stats_read(s, rt.txn, &st);
    local_read_end(s, &rt);
    if (rc < 0)
        return rc;
    out->objects = objects.ms_entries;
    out->names = names.ms_entries;
    local_batch *b = local_batch_of(s); /* a batch sees its own puts */
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

/* The local stores open in this process, and the lock that serialises
 * opening and closing them. LMDB must not open one environment twice in a
 * process: its locks are POSIX record locks, which a close of any
 * descriptor of the lock file drops for the whole process, after which
 * another process takes the store for unused and resets its lock table,
 * and writes are lost. So a second open of a store shares the first. */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static local_store *open_stores;

/* A child forked while another thread opens or closes a store must not
 * inherit open_lock held. */
static void open_lock_take(void)
{
    pthread_mutex_lock(&open_lock);
}

static void open_lock_give(void)
{
    pthread_mutex_unlock(&open_lock);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_register(void)
{
    pthread_atfork(open_lock_take, open_lock_give, open_lock_give);
}

static void local_destroy(local_store *s)
{
    local_batch *b = local_batch_of(s);
    if (b)
        local_batch_discard(b);
    /* A child after fork() frees its copy of a parent's store and leaves
     * LMDB alone: closing the environment would close a descriptor of the
     * lock file, which drops every lock this process holds on it, those
     * of a store the child opened itself too. */
    bool ours = s->pid == 0 || s->pid == getpid();
    for (int i = 0; ours && i < s->pool_count; i++)
        mdb_txn_abort(s->pool[i]);
    if (s->env && ours)
        mdb_env_close(s->env);
    pthread_mutex_destroy(&s->pool_lock);
    pthread_mutex_destroy(&s->group_lock);
    free(s->root);
    free(s->lock_path);
    free(s);
}

/* Close one handle: it aborts the calling thread's batch on the store
 * (which handle began it cannot be told: they share the store). The last
 * one closes the store, under the lock, so that an open of the store
 * meanwhile cannot make a second environment whose locks this close
 * would drop. */
static void local_free(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    pthread_mutex_lock(&open_lock);
    local_batch *b = local_batch_of(s);
    if (b)
        local_batch_discard(b);
    if (--s->handles == 0) {
        local_store **p = &open_stores;
        while (*p && *p != s)
            p = &(*p)->next_open;
        if (*p)
            *p = s->next_open;
        local_destroy(s);
    }
    pthread_mutex_unlock(&open_lock);
}

/* The store at root that this process has open already, if any (by the
 * device and inode of its meta.lmdb, so "a" and "./a" are one store). */
static local_store *find_open(const char *root)
{
    char meta[PATH_MAX];
    struct stat st;
    snprintf(meta, sizeof meta, "%s/meta.lmdb", root);
    if (stat(meta, &st) < 0)
        return NULL;
    for (local_store *s = open_stores; s; s = s->next_open)
        if (s->dev == st.st_dev && s->ino == st.st_ino && s->pid == getpid())
            return s;
    return NULL;
}

/* A second handle on s, if s gives what it asks for: a read-only handle
 * shares a read-write store (the handle refuses writes), a handle that
 * asks for no durability a durable store. Not the other way round: an
 * environment opened read-only cannot write, and raising a live store's
 * durability would change it under the puts in progress. */
static int share_open(local_store *s, bool readonly, bool sync, minidbx_backend **out)
{
    if (s->readonly && !readonly)
        return minidbx_error_set(MINIDBX_ESTATE,
                                 "%s: this process has the store open read-only; close that handle "
                                 "before opening it read-write",
                                 s->root);
    if (sync && !readonly && !s->sync) /* a read-only handle writes nothing to make durable */
        return minidbx_error_set(MINIDBX_ESTATE,
                                 "%s: this process has the store open with durability none; close that "
                                 "handle before opening it with full durability",
                                 s->root);
    s->handles++;
    *out = &s->base;
    return 0;
}

/* Enter a newly opened store in the list of open ones. */
static int register_open(local_store *s)
{
    struct stat st;
    int fd;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) < 0)
        return dbx_error_errno(errno, "%s: meta.lmdb", s->root);
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->pid = getpid();
    s->handles = 1;
    s->next_open = open_stores;
    open_stores = s;
    return 0;
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
        return minidbx_error_set(MINIDBX_EINVAL, "%s: exists and is not a minidbx store: not a directory", path);
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

/* How many trailing levels of path do not exist yet (0: it does). */
static int missing_levels(const char *path)
{
    char dir[PATH_MAX];
    struct stat st;
    int n = 0;
    snprintf(dir, sizeof dir, "%s", path);
    for (size_t len = strlen(dir); len > 1 && dir[len - 1] == '/'; len--)
        dir[len - 1] = '\0'; /* "a/b/" is two levels, as "a/b" */
    while (stat(dir, &st) < 0 && errno == ENOENT) {
        n++;
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            break;
        *slash = '\0';
    }
    return n;
}

/* A store made at root along with levels directories (root and up): fsync
 * the parent of each, so that a power cut cannot take the new store, and
 * the puts acknowledged in it, away. */
static int fsync_new_parents(const char *root, int levels)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", root);
    for (int i = 0; i < levels; i++) {
        char *slash = strrchr(dir, '/');
        if (!slash)
            break;
        slash[slash == dir] = '\0'; /* "/a" -> "/", "/a/b" -> "/a" */
        int rc = local_fsync_dir(dir);
        if (rc < 0 || slash == dir)
            return rc;
    }
    return 0;
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
    return s->sync ? local_fsync_dir(s->root) : 0;
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
    .gc_ex = local_gc_ex,
    .info = local_info,
    .name_set_at = local_name_set_at,
    .name_set_keep = local_name_set_keep,
    .flags = MINIDBX_BACKEND_PUT_WRITES_FIRST,
};

static int open_locked(minidbx_backend **out, const char *path, const minidbx_options *opts)
{
    bool readonly = opts->flags & MINIDBX_OPEN_READONLY;
    int kind = classify_location(path);
    if (kind < 0)
        return kind;
    local_store *same = kind == 1 ? find_open(path) : NULL;
    if (same)
        return share_open(same, readonly, opts->durability == MINIDBX_SYNC_FULL, out);
    if (kind == 0 && (opts->flags & MINIDBX_OPEN_NO_CREATE))
        return minidbx_error_set(MINIDBX_ENOTFOUND, "%s: no store here (create it first)", path);
    if (kind == 0 && readonly)
        return minidbx_error_set(MINIDBX_ENOTFOUND, "%s: no store here, and read-only cannot create one", path);
    int new_levels = kind == 0 ? missing_levels(path) : 0;
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
    pthread_mutex_init(&s->group_lock, NULL);
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
    if (s->sync && new_levels > 0 && (rc = fsync_new_parents(s->root, new_levels)) < 0)
        goto fail;
    if ((rc = register_open(s)) < 0)
        goto fail;
    *out = &s->base;
    return 0;
fail:
    local_destroy(s);
    return rc;
}

int dbx_local_open(minidbx_backend **out, const char *path, const minidbx_options *opts)
{
    pthread_once(&atfork_once, atfork_register);
    pthread_mutex_lock(&open_lock);
    int rc = open_locked(out, path, opts);
    pthread_mutex_unlock(&open_lock);
    return rc;
}

/* Added for minidbx_copy (h10): see internal.h. LMDB does not say where
 * its map is (mdb_env_info's me_mapaddr is set with MDB_FIXEDMAP only), so
 * the map is found in /proc/self/maps by the data file's device and inode.
 * MADV_DONTNEED on that read-only shared map (LMDB writes with pwrite, not
 * through the map) drops this process's page table entries only: no byte
 * of the file or of the page cache changes, and a page touched again, also
 * through a pointer a reader holds right now, is mapped again from the
 * page cache. */
bool dbx_local_drop_pages(minidbx_backend *be)
{
    local_store *s = (local_store *)be;
    struct stat st;
    char line[PATH_MAX + 128];
    int fd;
    FILE *maps;

    if (be->free != local_free)
        return false;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0 || !(maps = fopen("/proc/self/maps", "re")))
        return true;
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end, inode;
        unsigned major, minor;
        if (sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &start, &end, &major, &minor, &inode) == 5 &&
            inode == st.st_ino && makedev(major, minor) == st.st_dev)
            madvise((void *)start, end - start, MADV_DONTNEED);
    }
    fclose(maps);
    return true;
}
