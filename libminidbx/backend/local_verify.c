/*
 * local_verify.c - verify and gc for the local store. Both look first and
 * change afterwards: the look (hashing every byte) runs without locks, the
 * change re-checks each finding under the exclusive store lock and one
 * write transaction, so a concurrent put is never mistaken for an orphan.
 * Verify, repairing or not, reports only what that re-check confirms: a
 * live, healthy store gives no problem, whatever runs beside it. A blob
 * missing because a directory is (blobs/ not mounted) is never repaired:
 * only an object whose file alone is gone is removed.
 */
#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HASH_CHUNK_BYTES (1u << 20)

typedef struct {
    minidbx_problem kind;
    bool has_id;
    minidbx_id id;
    char *detail; /* a path or a name */
    bool keep;    /* MISSING, but a directory on its way is: repair leaves it */
    bool repaired;
} problem;

typedef struct {
    problem *items;
    size_t count, capacity;
} problem_list;

static int add_problem(problem_list *l, minidbx_problem kind, const minidbx_id *id, const char *detail)
{
    int rc = dbx_grow(&l->items, &l->capacity, l->count + 1, sizeof *l->items, 16);
    if (rc < 0)
        return rc;
    problem *p = &l->items[l->count];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->has_id = id != NULL;
    if (id)
        p->id = *id;
    if (!(p->detail = strdup(detail ? detail : "")))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    l->count++;
    return 0;
}

static void free_problems(problem_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].detail);
    free(l->items);
}

/* --- looking ---------------------------------------------------------------- */

/* Room for a blob's path and why a repair leaves it. */
#define DETAIL_MAX (PATH_MAX + 128)

/* The blob file at path (of s) is not there: is it the file alone, its
 * directories there (false: the object is lost, a repair removes it)? Or
 * is blobs/, blobs/ab or blobs/ab/cd missing or not a directory (true)? A
 * disk that is not mounted or a tree moved away, not lost bytes: the
 * object stays (a re-put or the directory back heals it), and detail says
 * why. Links are followed, as the open of the blob did. */
static bool blob_dir_missing(const local_store *s, const char *path, char detail[DETAIL_MAX])
{
    size_t rel = strlen(s->root) + 1; /* path is ROOT/blobs/ab/cd/<hex> */
    const size_t ends[] = { rel + 5, rel + 8, rel + 11 };
    char dir[PATH_MAX];
    struct stat st;
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        snprintf(dir, sizeof dir, "%.*s", (int)ends[i], path);
        int err = stat(dir, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
        if (err == 0)
            continue;
        snprintf(detail, DETAIL_MAX, "%s: %s %s: not repaired; is the disk mounted?", path, dir + rel,
                 err == ENOENT ? "is missing" : err == ENOTDIR ? "is not a directory" : strerror(err));
        return true;
    }
    return false;
}

/* Hash a blob file and compare; fills *kind with the problem or 0, and
 * *keep when the problem is a directory rather than the file (detail then
 * says so). bytes is NULL when re-checking (not counted again). */
static int check_blob(local_store *s, const minidbx_id *id, uint64_t size, char *buf, dbx_hasher *h,
                      minidbx_problem *kind, bool *keep, char detail[DETAIL_MAX], uint64_t *bytes)
{
    if (bytes)
        DBX_TEST_PAUSE("verify-object"); /* the scan has the record, not yet the file */
    char path[PATH_MAX];
    minidbx_id got;
    uint64_t total = 0;
    struct stat st;
    /* A FIFO or a symlink planted in place of the blob is CORRUPT (and
     * repair removes it), never opened for real or followed. */
    int fd = local_blob_open(s, id, path, &st);
    if (fd == -ENOENT || fd == BLOB_NOT_REGULAR) {
        *kind = fd == -ENOENT ? MINIDBX_PROBLEM_MISSING : MINIDBX_PROBLEM_CORRUPT;
        *keep = fd == -ENOENT && blob_dir_missing(s, path, detail);
        return 0;
    }
    /* Any other failure (no fds, no memory, EACCES, EIO) says nothing about
     * the bytes: fail the verify, or a repair would delete a good object. */
    if (fd < 0)
        return local_io_error(s, -fd, "open %s", path);
    for (;;) {
        ssize_t n = dbx_read_full(fd, buf, HASH_CHUNK_BYTES);
        if (n < 0) {
            close(fd);
            return dbx_error_errno((int)-n, "read %s", path);
        }
        if (n == 0)
            break;
        dbx_hasher_update(h, buf, (size_t)n);
        total += (uint64_t)n;
    }
    close(fd);
    int rc = dbx_hasher_final(h, &got);
    if (rc < 0)
        return rc;
    if (bytes)
        *bytes += total;
    *kind = (total != size || !minidbx_id_equal(&got, id)) ? MINIDBX_PROBLEM_CORRUPT : 0;
    return 0;
}

/* report is NULL when re-checking a suspect. */
static int check_record(local_store *s, const MDB_val *k, const MDB_val *v, char *buf, dbx_hasher *h,
                        problem_list *found, minidbx_verify_report *report)
{
    minidbx_verify_report recount = { 0 };
    bool scanning = report != NULL;
    if (!scanning)
        report = &recount;
    minidbx_id id, got;
    record_header rh;
    minidbx_problem kind = 0;
    bool keep = false;
    char detail[DETAIL_MAX] = "inline";
    int rc;
    if (k->mv_size != MINIDBX_ID_SIZE)
        return 0; /* not an id: cannot be named or repaired by id */
    memcpy(id.bytes, k->mv_data, MINIDBX_ID_SIZE);
    report->objects_checked++;
    if (local_record_parse(v, &id, &rh) < 0) {
        kind = MINIDBX_PROBLEM_CORRUPT; /* repair removes it and any blob file */
        local_blob_path(s, &id, detail);
    } else if (rh.flags & RECORD_INLINE) {
        if ((rc = minidbx_id_of(&got, (char *)v->mv_data + RECORD_HEADER_BYTES, (size_t)rh.size)) < 0)
            return rc;
        report->bytes_checked += rh.size;
        if (!minidbx_id_equal(&got, &id))
            kind = MINIDBX_PROBLEM_CORRUPT;
    } else {
        local_blob_path(s, &id, detail);
        if ((rc = check_blob(s, &id, rh.size, buf, h, &kind, &keep, detail,
                             scanning ? &report->bytes_checked : NULL)) < 0)
            return rc;
    }
    if (!kind)
        return 0;
    if ((rc = add_problem(found, kind, &id, detail)) < 0)
        return rc;
    found->items[found->count - 1].keep = keep;
    return 0;
}

/* Check one object, or all of them when id is NULL. */
static int check_objects(local_store *s, MDB_txn *txn, const minidbx_id *id, problem_list *found,
                         minidbx_verify_report *report)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    dbx_hasher *h = NULL;
    char *buf = malloc(HASH_CHUNK_BYTES), sid[16];
    int rc = buf ? dbx_hasher_new(&h) : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if (rc < 0)
        goto out;
    if (id) {
        k.mv_size = MINIDBX_ID_SIZE;
        k.mv_data = (void *)id->bytes;
        int lrc = mdb_get(txn, s->objects, &k, &v);
        if (lrc == MDB_NOTFOUND) {
            dbx_id_short(id, sid);
            rc = minidbx_error_set(MINIDBX_ENOTFOUND, "object %s: not found", sid);
        } else {
            rc = lrc ? dbx_error_lmdb(lrc, "%s: verify", s->root) : check_record(s, &k, &v, buf, h, found, report);
        }
        goto out;
    }
    int lrc = mdb_cursor_open(txn, s->objects, &c);
    for (lrc = lrc ? lrc : mdb_cursor_get(c, &k, &v, MDB_FIRST); lrc == 0 && rc == 0;
         lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        rc = check_record(s, &k, &v, buf, h, found, report);
    if (rc == 0 && lrc != MDB_NOTFOUND)
        rc = dbx_error_lmdb(lrc, "%s: verify", s->root);
out:
    mdb_cursor_close(c);
    dbx_hasher_free(h);
    free(buf);
    return rc;
}

/* Every name must point at an object and have its refs entry, and every
 * refs entry must belong to a name that points back. */
static int check_names(local_store *s, MDB_txn *txn, problem_list *found)
{
    MDB_cursor *names = NULL, *refs = NULL;
    MDB_val k, v;
    char name[MINIDBX_NAME_MAX + 1];
    int rc = 0, lrc = mdb_cursor_open(txn, s->names, &names);
    if (lrc == 0)
        lrc = mdb_cursor_open(txn, s->refs, &refs);
    for (lrc = lrc ? lrc : mdb_cursor_get(names, &k, &v, MDB_FIRST); lrc == 0 && rc == 0;
         lrc = mdb_cursor_get(names, &k, &v, MDB_NEXT)) {
        name_value nv;
        if (v.mv_size != sizeof nv || k.mv_size > MINIDBX_NAME_MAX)
            continue;
        memcpy(&nv, v.mv_data, sizeof nv);
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        MDB_val ok = { MINIDBX_ID_SIZE, nv.id.bytes }, ov, rk = ok, rv = k;
        if (mdb_get(txn, s->objects, &ok, &ov) == MDB_NOTFOUND)
            rc = add_problem(found, MINIDBX_PROBLEM_DANGLING, &nv.id, name);
        else if (mdb_cursor_get(refs, &rk, &rv, MDB_GET_BOTH) != 0)
            rc = add_problem(found, MINIDBX_PROBLEM_BADREF, &nv.id, name);
    }
    if (rc == 0 && lrc != MDB_NOTFOUND)
        rc = dbx_error_lmdb(lrc, "%s: verify names", s->root);
    /* The other direction: refs entries without their name. */
    for (lrc = rc ? MDB_NOTFOUND : mdb_cursor_get(refs, &k, &v, MDB_FIRST); lrc == 0 && rc == 0;
         lrc = mdb_cursor_get(refs, &k, &v, MDB_NEXT)) {
        minidbx_id id;
        name_value nv;
        MDB_val nk = v, nval;
        if (k.mv_size != MINIDBX_ID_SIZE || v.mv_size > MINIDBX_NAME_MAX)
            continue;
        memcpy(id.bytes, k.mv_data, MINIDBX_ID_SIZE);
        memcpy(name, v.mv_data, v.mv_size);
        name[v.mv_size] = '\0';
        bool ok = mdb_get(txn, s->names, &nk, &nval) == 0 && nval.mv_size == sizeof nv;
        if (ok) {
            memcpy(&nv, nval.mv_data, sizeof nv);
            ok = minidbx_id_equal(&nv.id, &id);
        }
        if (!ok)
            rc = add_problem(found, MINIDBX_PROBLEM_BADREF, &id, name);
    }
    if (rc == 0 && lrc != MDB_NOTFOUND)
        rc = dbx_error_lmdb(lrc, "%s: verify refs", s->root);
    mdb_cursor_close(names);
    mdb_cursor_close(refs);
    return rc;
}

/* A blob file is wanted if a file record for its id exists. */
static bool blob_wanted(local_store *s, MDB_txn *txn, const char *file_name, minidbx_id *id)
{
    MDB_val k, v;
    record_header h;
    if (minidbx_id_parse(id, file_name) < 0)
        return false;
    k.mv_size = MINIDBX_ID_SIZE;
    k.mv_data = id->bytes;
    if (mdb_get(txn, s->objects, &k, &v) != 0 || local_record_parse(&v, id, &h) < 0)
        return false;
    return !(h.flags & RECORD_INLINE);
}

typedef int (*orphan_fn)(void *ctx, const char *path, const minidbx_id *id_or_null);

/* The walk in progress: nftw passes its callback no context, and one walk
 * runs per thread at a time. */
typedef struct {
    local_store *s;
    MDB_txn *txn;
    orphan_fn fn;
    void *ctx;
    int rc;
    const char *top;  /* STORE/blobs, as paths are reported */
    size_t root_len;  /* of the path walked: top, or where top links to */
} orphan_walk;
static _Thread_local orphan_walk *current_walk;

/* Levels under STORE/blobs: 1 "ab", 2 "cd", 3 the blob files. Entries
 * are lstat'ed (FTW_PHYS), never opened: a symlink is not followed
 * anywhere (not even a shard directory), a FIFO is just a name. */
static int visit_blob_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    orphan_walk *w = current_walk;
    const char *name = path + ftw->base;
    char shown[PATH_MAX];
    minidbx_id id;
    (void)st;
    /* A directory that cannot be read, or an entry that cannot be stat'ed
     * (no memory, no fds, no permission), must fail the walk: a repair or
     * gc would otherwise report success having seen part of the store. An
     * entry that went away meanwhile is no orphan of ours. */
    if ((type == FTW_DNR || type == FTW_NS) && errno != ENOENT) {
        w->rc = dbx_error_errno(errno, "%s %s", type == FTW_DNR ? "opendir" : "stat", path);
        return FTW_STOP;
    }
    if (type == FTW_DNR || type == FTW_NS)
        return FTW_SKIP_SUBTREE;
    if (ftw->level == 0)
        return FTW_CONTINUE;
    if (ftw->level < 3) /* a shard directory: skip dot entries and non-directories */
        return name[0] == '.' || type != FTW_D ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
    /* a blob-level entry, whatever its type, is an orphan unless wanted */
    if (!blob_wanted(w->s, w->txn, name, &id) &&
        dbx_path_join(shown, sizeof shown, w->top, path + w->root_len + 1) == 0 &&
        (w->rc = w->fn(w->ctx, shown, minidbx_id_parse(&id, name) == 0 ? &id : NULL)) < 0)
        return FTW_STOP;
    return type == FTW_D ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
}

/* Walk STORE/blobs/xx/yy/ * and call fn for each entry no record wants. */
static int walk_orphans(local_store *s, MDB_txn *txn, orphan_fn fn, void *ctx)
{
    char top[PATH_MAX], *linked = NULL;
    struct stat st;
    if (dbx_path_join(top, sizeof top, s->root, "blobs") < 0)
        return dbx_error_errno(ENAMETOOLONG, "%s/blobs", s->root);
    /* STORE/blobs itself may be a link (to another disk): walk where it
     * points, report paths under STORE/blobs. Below it, no link is followed. */
    if (lstat(top, &st) == 0 && S_ISLNK(st.st_mode) && !(linked = realpath(top, NULL)))
        return errno == ENOENT ? 0 : dbx_error_errno(errno, "%s", top);
    const char *root = linked ? linked : top;
    orphan_walk w = { s, txn, fn, ctx, 0, top, strlen(root) };
    current_walk = &w;
    /* 4 descriptors: one per level that is open at once */
    int walked = nftw(root, visit_blob_entry, 4, FTW_PHYS | FTW_ACTIONRETVAL);
    int err = errno;
    current_walk = NULL;
    free(linked);
    if (w.rc < 0)
        return w.rc;
    if (walked == -1 && err != ENOENT)
        return dbx_error_errno(err, "walking %s", top);
    return 0;
}

static int collect_orphan(void *ctx, const char *path, const minidbx_id *id)
{
    return add_problem(ctx, MINIDBX_PROBLEM_ORPHAN, id, path);
}

static int unlink_orphan(void *ctx, const char *path, const minidbx_id *id)
{
    (void)id;
    if (unlink(path) == 0)
        ++*(uint64_t *)ctx;
    return 0;
}

/* --- confirming and repairing ------------------------------------------------ */

/* Is p still a problem in txn (a fresh snapshot, taken under the lock)?
 * What the unlocked scan saw may be gone: a missing object deleted, or
 * deleted and put again; a corrupt one healed by a put; an orphan that was
 * a put between its rename and its commit. Only what is still wrong is
 * reported or repaired. Adds the confirmed problem (its kind may change,
 * e.g. missing -> corrupt) to confirmed. */
static int recheck(local_store *s, MDB_txn *txn, const problem *p, bool locked, char *buf,
                   dbx_hasher *h, problem_list *confirmed)
{
    MDB_val k = { MINIDBX_ID_SIZE, (void *)p->id.bytes }, v, nk = { strlen(p->detail), p->detail }, nv;
    minidbx_id id;
    struct stat st;
    const char *base;
    bool named, refd;
    int lrc;
    switch (p->kind) {
    case MINIDBX_PROBLEM_CORRUPT:
    case MINIDBX_PROBLEM_MISSING:
        lrc = mdb_get(txn, s->objects, &k, &v);
        if (lrc == MDB_NOTFOUND)
            return 0; /* deleted meanwhile */
        return lrc ? dbx_error_lmdb(lrc, "%s: verify", s->root) : check_record(s, &k, &v, buf, h, confirmed, NULL);
    case MINIDBX_PROBLEM_ORPHAN:
        /* Only under the exclusive lock is no put between rename and commit. */
        base = strrchr(p->detail, '/');
        if (!locked || lstat(p->detail, &st) < 0 || blob_wanted(s, txn, base ? base + 1 : p->detail, &id))
            return 0;
        break;
    case MINIDBX_PROBLEM_DANGLING:
    case MINIDBX_PROBLEM_BADREF:
        named = mdb_get(txn, s->names, &nk, &nv) == 0 && nv.mv_size == sizeof(name_value) &&
                memcmp(nv.mv_data, p->id.bytes, MINIDBX_ID_SIZE) == 0;
        if (p->kind == MINIDBX_PROBLEM_DANGLING) {
            if (!named || mdb_get(txn, s->objects, &k, &v) != MDB_NOTFOUND)
                return 0;
            break;
        }
        MDB_cursor *c;
        MDB_val rk = k, rv = nk;
        if ((lrc = mdb_cursor_open(txn, s->refs, &c)) != 0)
            return dbx_error_lmdb(lrc, "%s: verify refs", s->root);
        refd = mdb_cursor_get(c, &rk, &rv, MDB_GET_BOTH) == 0;
        mdb_cursor_close(c);
        if (named == refd)
            return 0; /* the name and its refs entry agree now */
        break;
    default:
        break;
    }
    return add_problem(confirmed, p->kind, p->has_id ? &p->id : NULL, p->detail);
}

/* The names local_remove_object is about to remove with id: each one that
 * points at id goes to removed (reported as NAME_REMOVED once committed).
 * A refs entry whose name points at another object (a BADREF) is dropped
 * first, so that name is not removed with an object it never named. */
static int note_removed_names(local_store *s, MDB_txn *txn, const minidbx_id *id, problem_list *removed)
{
    MDB_cursor *c;
    MDB_val k = { MINIDBX_ID_SIZE, (void *)id->bytes }, v, nv;
    problem_list stray = { 0 };
    char name[MINIDBX_NAME_MAX + 1];
    int rc = 0, lrc = mdb_cursor_open(txn, s->refs, &c);
    if (lrc)
        return dbx_error_lmdb(lrc, "%s: repair refs", s->root);
    for (lrc = mdb_cursor_get(c, &k, &v, MDB_SET); lrc == 0 && rc == 0;
         lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP)) {
        MDB_val nk = v;
        if (v.mv_size > MINIDBX_NAME_MAX || mdb_get(txn, s->names, &nk, &nv) != 0)
            continue; /* no such name: nothing to remove */
        memcpy(name, v.mv_data, v.mv_size);
        name[v.mv_size] = '\0';
        bool ours = nv.mv_size == sizeof(name_value) && memcmp(nv.mv_data, id->bytes, MINIDBX_ID_SIZE) == 0;
        rc = add_problem(ours ? removed : &stray, MINIDBX_PROBLEM_NAME_REMOVED, id, name);
    }
    mdb_cursor_close(c);
    if (rc == 0 && lrc != MDB_NOTFOUND)
        rc = dbx_error_lmdb(lrc, "%s: repair refs", s->root);
    for (size_t i = 0; rc == 0 && i < stray.count; i++) {
        MDB_val rk = { MINIDBX_ID_SIZE, (void *)id->bytes };
        MDB_val rv = { strlen(stray.items[i].detail), stray.items[i].detail };
        if ((lrc = mdb_del(txn, s->refs, &rk, &rv)) != 0 && lrc != MDB_NOTFOUND)
            rc = dbx_error_lmdb(lrc, "%s: repair refs", s->root);
    }
    free_problems(&stray);
    return rc;
}

static int repair_one(local_store *s, MDB_txn *txn, problem *p, bool *unlink_after, problem_list *removed)
{
    MDB_val k = { MINIDBX_ID_SIZE, p->id.bytes }, v, nk, nv;
    minidbx_id id;
    const char *base;
    record_header h;
    int lrc;
    *unlink_after = false;
    if (p->keep)
        return 0; /* its directory is missing, not (we cannot tell) its bytes */
    switch (p->kind) {
    case MINIDBX_PROBLEM_CORRUPT:
    case MINIDBX_PROBLEM_MISSING:
        lrc = mdb_get(txn, s->objects, &k, &v);
        if (lrc == MDB_NOTFOUND)
            return 0;
        if (lrc)
            return dbx_error_lmdb(lrc, "%s: repair", s->root);
        if (local_record_parse(&v, &p->id, &h) < 0) /* unreadable: remove as if inline */
            memset(&h, 0, sizeof h);
        *unlink_after = !(h.flags & RECORD_INLINE);
        lrc = note_removed_names(s, txn, &p->id, removed); /* a minidbx code */
        return lrc < 0 ? lrc : local_remove_object(s, txn, &p->id, &h);
    case MINIDBX_PROBLEM_ORPHAN:
        base = strrchr(p->detail, '/');
        *unlink_after = !blob_wanted(s, txn, base ? base + 1 : p->detail, &id);
        return 0;
    case MINIDBX_PROBLEM_DANGLING:
        nk.mv_size = strlen(p->detail);
        nk.mv_data = p->detail;
        lrc = mdb_del(txn, s->names, &nk, NULL);
        if (lrc == 0 || lrc == MDB_NOTFOUND)
            lrc = mdb_del(txn, s->refs, &k, &nk);
        return lrc && lrc != MDB_NOTFOUND ? dbx_error_lmdb(lrc, "%s: repair", s->root) : 0;
    case MINIDBX_PROBLEM_BADREF:
        nk.mv_size = strlen(p->detail);
        nk.mv_data = p->detail;
        /* Make refs agree with the name table, which is authoritative. */
        lrc = mdb_del(txn, s->refs, &k, &nk);
        if (lrc && lrc != MDB_NOTFOUND)
            return dbx_error_lmdb(lrc, "%s: repair", s->root);
        if (mdb_get(txn, s->names, &nk, &nv) == 0 && nv.mv_size == sizeof(name_value) &&
            memcmp(nv.mv_data, p->id.bytes, MINIDBX_ID_SIZE) == 0) {
            lrc = mdb_put(txn, s->refs, &k, &nk, MDB_NODUPDATA);
            if (lrc && lrc != MDB_KEYEXIST)
                return dbx_error_lmdb(lrc, "%s: repair", s->root);
        }
        return 0;
    default:
        return 0;
    }
}

/* Fix the confirmed problems in txn (a write transaction under the
 * exclusive lock, the one they were confirmed in), commit, then unlink the
 * files: records first, as delete does. The names removed with their
 * objects go to removed, in the order of their objects in found. */
static int repair(local_store *s, MDB_txn *txn, problem_list *found, problem_list *removed)
{
    int rc = 0, lrc;
    bool *unlink_after = calloc(found->count ? found->count : 1, sizeof *unlink_after);
    if (!unlink_after)
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < found->count; i++)
        rc = repair_one(s, txn, &found->items[i], &unlink_after[i], removed);
    if (rc == 0 && (lrc = mdb_txn_commit(txn)) != 0)
        rc = dbx_error_lmdb(lrc, "%s: repair commit", s->root);
    else if (rc < 0)
        mdb_txn_abort(txn);
    for (size_t i = 0; rc == 0 && i < found->count; i++) {
        problem *p = &found->items[i];
        p->repaired = p->kind != MINIDBX_PROBLEM_ORPHAN && !p->keep;
        if (!unlink_after[i])
            continue;
        char path[PATH_MAX];
        if (p->kind == MINIDBX_PROBLEM_ORPHAN)
            snprintf(path, sizeof path, "%s", p->detail);
        else
            local_blob_path(s, &p->id, path);
        if (unlink(path) == 0 || errno == ENOENT)
            p->repaired = true;
    }
    free(unlink_after);
    return rc;
}

/* A blob directory missing makes every MISSING blob of the run suspect:
 * while a disk is not mounted, puts make shard directories on the one
 * below it, where the other objects of those shards are not. So when one
 * problem is kept for its directory, every MISSING one is kept. */
static int keep_every_missing(problem_list *l)
{
    static const char why[] = ": not repaired: other blob directories are missing; is the disk mounted?";
    bool dir_missing = false;
    for (size_t i = 0; i < l->count; i++)
        dir_missing |= l->items[i].keep;
    for (size_t i = 0; dir_missing && i < l->count; i++) {
        problem *p = &l->items[i];
        if (p->kind != MINIDBX_PROBLEM_MISSING || p->keep)
            continue;
        size_t len = strlen(p->detail);
        char *detail = realloc(p->detail, len + sizeof why);
        if (!detail)
            return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        memcpy(detail + len, why, sizeof why);
        p->detail = detail;
        p->keep = true;
    }
    return 0;
}

/* Re-check what the scan suspected, under the exclusive store lock (no
 * put is then between rename and commit, no delete between commit and
 * unlink) and in a fresh transaction: a write one when repairing, so what
 * is confirmed is what is removed. Inside the caller's own batch (no
 * repair there) the batch's transaction is used unlocked, and orphans,
 * which cannot then be told from another process's put in flight, are not
 * reported. A read-only handle that cannot take the lock does the same. */
static int confirm_and_repair(local_store *s, problem_list *suspects, bool fix, problem_list *confirmed,
                              problem_list *removed)
{
    bool in_batch = local_in_batch(s);
    int lock_fd = in_batch ? -1 : local_lock(s, true);
    if (lock_fd < 0 && !in_batch && (fix || !s->readonly))
        return lock_fd;
    read_txn rt = { NULL, false };
    MDB_txn *wtxn = NULL;
    dbx_hasher *h = NULL;
    char *buf = malloc(HASH_CHUNK_BYTES);
    int rc = buf ? dbx_hasher_new(&h) : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if (rc == 0 && fix) {
        int lrc = mdb_txn_begin(s->env, NULL, 0, &wtxn);
        rc = lrc ? dbx_error_lmdb(lrc, "%s: repair", s->root) : 0;
    } else if (rc == 0) {
        dbx_error_clear(); /* a lock we could not take is not this call's failure */
        rc = local_read_begin(s, &rt);
    }
    MDB_txn *txn = fix ? wtxn : rt.txn;
    for (size_t i = 0; rc == 0 && i < suspects->count; i++)
        rc = recheck(s, txn, &suspects->items[i], lock_fd >= 0, buf, h, confirmed);
    if (rc == 0)
        rc = keep_every_missing(confirmed);
    if (fix && rc == 0)
        rc = repair(s, wtxn, confirmed, removed); /* commits or aborts wtxn */
    else if (wtxn)
        mdb_txn_abort(wtxn);
    if (rt.txn)
        local_read_end(s, &rt);
    dbx_hasher_free(h);
    free(buf);
    local_unlock(lock_fd);
    return rc;
}

int local_verify(minidbx_backend *be, const minidbx_id *id, unsigned flags, minidbx_verify_report *report,
                 minidbx_problem_cb cb, void *ctx)
{
    local_store *s = (local_store *)be;
    problem_list suspects = { 0 }, found = { 0 }, removed = { 0 };
    read_txn rt;
    bool fix = flags & MINIDBX_VERIFY_REPAIR;
    if (fix && local_in_batch(s))
        return minidbx_error_set(MINIDBX_ESTATE, "verify --repair: not inside a batch");
    /* The look: every byte hashed, without locks, in one snapshot. */
    int rc = local_read_begin(s, &rt);
    if (rc < 0)
        return rc;
    rc = check_objects(s, rt.txn, id, &suspects, report);
    if (rc == 0 && !id)
        rc = check_names(s, rt.txn, &suspects);
    if (rc == 0 && !id)
        rc = walk_orphans(s, rt.txn, collect_orphan, &suspects);
    local_read_end(s, &rt);
    DBX_TEST_PAUSE("verify-scanned");
    if (rc == 0 && suspects.count)
        rc = confirm_and_repair(s, &suspects, fix, &found, &removed);
    for (size_t i = 0, j = 0; rc == 0 && i < found.count; i++) {
        problem *p = &found.items[i];
        report->problems++;
        report->repaired += p->repaired;
        if (cb)
            cb(ctx, p->kind, p->has_id ? &p->id : NULL, p->detail, p->repaired);
        /* then the names that went with it (not problems of their own) */
        for (; j < removed.count && (p->kind == MINIDBX_PROBLEM_CORRUPT || p->kind == MINIDBX_PROBLEM_MISSING) &&
               minidbx_id_equal(&removed.items[j].id, &p->id);
             j++)
            if (cb)
                cb(ctx, MINIDBX_PROBLEM_NAME_REMOVED, &p->id, removed.items[j].detail, 1);
    }
    /* A read-only handle reports stale temp files and leaves them. */
    if (rc == 0 && !id)
        rc = local_sweep_tmp(s, fix, cb, ctx, report);
    free_problems(&suspects);
    free_problems(&found);
    free_problems(&removed);
    return rc;
}

/* --- gc ---------------------------------------------------------------------------- */

/* An object gc removes (or, in a dry run, would). */
typedef struct {
    minidbx_id id;
    uint64_t size;
    bool is_file;
} gc_doomed;

typedef struct {
    gc_doomed *items;
    size_t count, capacity;
} gc_doomed_list;

/* Is the unnamed object h old enough to go? With a grace, an object put
 * within it (give or take the LOCAL_FRESHEN_NS a re-put may leave
 * unrecorded) stays. In unsigned arithmetic: a grace near INT64_MAX plus
 * the slack must not wrap into "everything is old". */
static bool gc_old_enough(const record_header *h, const minidbx_gc_options *opts, int64_t now)
{
    int64_t put_ns = local_record_put_ns(h);
    if (opts->older_than_ns == 0)
        return true;
    if (put_ns > now)
        return false; /* put "in the future" (the clock stepped back): young */
    return (uint64_t)now - (uint64_t)put_ns >= (uint64_t)opts->older_than_ns + LOCAL_FRESHEN_NS;
}

/* The scan, in gc's write transaction: every unnamed object old enough. */
static int gc_scan(local_store *s, MDB_txn *txn, const minidbx_gc_options *opts, gc_doomed_list *doomed,
                   minidbx_gc_report *report)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int64_t now = dbx_now_ns();
    int rc = 0, lrc = mdb_cursor_open(txn, s->objects, &c);
    for (lrc = lrc ? lrc : mdb_cursor_get(c, &k, &v, MDB_FIRST); lrc == 0 && rc == 0;
         lrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        minidbx_id id;
        record_header h;
        uint64_t refs;
        if (k.mv_size != MINIDBX_ID_SIZE)
            continue;
        memcpy(id.bytes, k.mv_data, MINIDBX_ID_SIZE);
        if ((rc = local_record_parse(&v, &id, &h)) < 0 || (rc = local_count_refs(s, txn, &id, &refs)) < 0)
            break;
        if (refs || !gc_old_enough(&h, opts, now))
            continue;
        if ((rc = dbx_grow(&doomed->items, &doomed->capacity, doomed->count + 1, sizeof *doomed->items, 16)) < 0)
            break;
        doomed->items[doomed->count++] = (gc_doomed){ id, h.size, !(h.flags & RECORD_INLINE) };
        report->objects_removed++;
        report->bytes_removed += h.size;
    }
    mdb_cursor_close(c);
    if (rc == 0 && lrc != MDB_NOTFOUND)
        rc = dbx_error_lmdb(lrc, "%s: gc", s->root);
    return rc;
}

/* One write transaction removes every unnamed object old enough. Puts
 * check for their object inside their own write transaction, so each one
 * is ordered before gc (and its object is young: kept, unless the grace is
 * 0) or after it (and it stores the object again): a put never returns
 * success for bytes gc then removes. Name an object in the same batch as
 * its put to keep it whatever its age. */
int local_gc_ex(minidbx_backend *be, const minidbx_gc_options *opts, minidbx_gc_report *report)
{
    local_store *s = (local_store *)be;
    MDB_txn *txn;
    gc_doomed_list doomed = { 0 };
    bool dry = opts->flags & MINIDBX_GC_DRY_RUN;
    char path[PATH_MAX];
    if (local_in_batch(s))
        return minidbx_error_set(MINIDBX_ESTATE, "gc: not inside a batch");
    int lock_fd = local_lock(s, !dry);
    if (lock_fd < 0)
        return lock_fd;
    int rc = 0, lrc = mdb_txn_begin(s->env, NULL, dry ? MDB_RDONLY : 0, &txn);
    if (lrc) {
        local_unlock(lock_fd);
        return dbx_error_lmdb(lrc, "%s: gc", s->root);
    }
    rc = gc_scan(s, txn, opts, &doomed, report);
    DBX_TEST_PAUSE("gc-scanned");
    for (size_t i = 0; rc == 0 && !dry && i < doomed.count; i++) {
        MDB_val key = { MINIDBX_ID_SIZE, doomed.items[i].id.bytes }, val;
        record_header h;
        if ((lrc = mdb_get(txn, s->objects, &key, &val)) != 0)
            rc = dbx_error_lmdb(lrc, "%s: gc", s->root);
        else if ((rc = local_record_parse(&val, &doomed.items[i].id, &h)) == 0)
            rc = local_remove_object(s, txn, &doomed.items[i].id, &h);
    }
    bool committed = false;
    if (rc == 0 && !dry && (lrc = mdb_txn_commit(txn)) != 0)
        rc = dbx_error_lmdb(lrc, "%s: gc commit", s->root);
    else if (rc < 0 || dry)
        mdb_txn_abort(txn);
    else
        committed = true;
    /* Files after the commit; then blobs no record wants (left by deletes
     * inside batches or by crashes), safe to judge under the exclusive lock. */
    for (size_t i = 0; rc == 0 && !dry && i < doomed.count; i++) {
        if (doomed.items[i].is_file) {
            local_blob_path(s, &doomed.items[i].id, path);
            unlink(path);
        }
    }
    if (rc == 0 && !dry) {
        read_txn rt;
        uint64_t orphans = 0;
        if ((rc = local_read_begin(s, &rt)) == 0) {
            rc = walk_orphans(s, rt.txn, unlink_orphan, &orphans);
            local_read_end(s, &rt);
        }
    }
    local_unlock(lock_fd);
    /* what the commit removed is gone even if the orphan sweep failed */
    for (size_t i = 0; (rc == 0 || committed) && opts->removed && i < doomed.count; i++)
        opts->removed(opts->ctx, &doomed.items[i].id, doomed.items[i].size);
    free(doomed.items);
    return rc;
}

/* The version-1 method: every unnamed object, now. */
int local_gc(minidbx_backend *be, minidbx_gc_report *report)
{
    minidbx_gc_options now = { 0, 0, NULL, NULL };
    return local_gc_ex(be, &now, report);
}
