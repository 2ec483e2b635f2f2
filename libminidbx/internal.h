/*
 * internal.h - what the library's files share. Nothing here is exported:
 * the library is built with -fvisibility=hidden and only MINIDBX_EXTERN
 * functions (all named minidbx_*) leave it.
 */
#ifndef MINIDBX_INTERNAL_H
#define MINIDBX_INTERNAL_H

#include <minidbx.h>
#include <minidbx/sys/backend.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* --- errors (error.c) --------------------------------------------------- */

/* Clear the calling thread's message: every public call starts with this so
 * minidbx_errmsg never reports a stale failure. */
void dbx_error_clear(void);

/* The thread's message, kept across a best-effort clean-up whose own
 * failure must not replace the error being returned. */
typedef struct {
    char text[512];
} dbx_error_saved;
void dbx_error_save(dbx_error_saved *out);
void dbx_error_restore(const dbx_error_saved *saved);

/* Map an errno value to a MINIDBX_E* code, set the message to
 * "<what>: strerror(err)" and return the code. */
int dbx_error_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For a failure on the store's own files (a temp file, a blob, the lock):
 * no full disk is a ENOTFOUND or EPERM of the caller's, so everything but
 * ENOSPC (EDQUOT, EFBIG) and ENOMEM is MINIDBX_EIO. */
int dbx_error_io(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same for an LMDB return code (positive ones are errno values). */
int dbx_error_lmdb(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- ids and hashing (id.c) ---------------------------------------------- */

typedef struct dbx_hasher dbx_hasher;

int dbx_hasher_new(dbx_hasher **out);
/* Look SHA-256 up in OpenSSL once per process (minidbx_open does it first):
 * 0 or ENOMEM. OpenSSL 3.0 may crash, not fail, when an allocation fails
 * inside its own first initialisation; doing it at open puts that moment
 * before any store is touched (tests/fault arms its faults there). */
int dbx_hash_init(void);
int dbx_hasher_update(dbx_hasher *h, const void *data, size_t size);
/* Finish into *out and reset the hasher so it can be used again. */
int dbx_hasher_final(dbx_hasher *h, minidbx_id *out);
void dbx_hasher_free(dbx_hasher *h);

/* "3fa1c2d4…" : the first 12 hex digits and an ellipsis, for messages. */
void dbx_id_short(const minidbx_id *id, char out[16]);
/* The one "failed verification" error: 0 if got is want, else
 * MINIDBX_ECORRUPT saying "object 3fa1… failed verification: got 9bc2…". */
int dbx_id_verify(const minidbx_id *want, const minidbx_id *got);

/* --- files (fsutil.c) ----------------------------------------------------- */

/* Write all of it, retrying short writes and EINTR. 0 or -errno. */
int dbx_write_all(int fd, const void *data, size_t size);
/* Read up to size bytes, retrying short reads and EINTR, stopping at EOF.
 * Returns the bytes read or -errno. */
ssize_t dbx_read_full(int fd, void *buf, size_t size);
/* pread variant of dbx_read_full. */
ssize_t dbx_pread_full(int fd, void *buf, size_t size, uint64_t offset);
/* fsync a directory so that an entry created or renamed in it is durable. */
int dbx_fsync_dir(const char *path);
/* mkdir that accepts an existing directory; *created tells which. -errno. */
int dbx_mkdir(const char *path, bool *created);
/* mkdir -p. 0 or -errno. */
int dbx_mkdir_p(const char *path);
/* out = dir/name; -ENAMETOOLONG if it does not fit. */
int dbx_path_join(char *out, size_t out_size, const char *dir, const char *name);
/* Wall-clock time in ns since the epoch. */
int64_t dbx_now_ns(void);
/* CLOCK_BOOTTIME in nanoseconds: for deadlines (it counts a suspend too). */
int64_t dbx_boottime_ns(void);

/* --- arrays (grow.c) ------------------------------------------------------ */

/* Make *items (a T **, of *capacity elements of item_size bytes) hold at
 * least need elements, doubling from first; updates *capacity. 0, or
 * MINIDBX_ENOMEM with *items and *capacity unchanged. */
int dbx_grow(void *items, size_t *capacity, size_t need, size_t item_size, size_t first);

/* --- threads (thread.c) -------------------------------------------------- */

/* pthread_create(thread, NULL, fn, arg) with every signal blocked in the
 * new thread (the caller's mask is left as it was): a library thread never
 * takes a signal meant for the program. 0 or an errno value. */
int dbx_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);

/* --- test-only pause points (testhook.c) ---------------------------------- */

/* TEST ONLY. With MINIDBX_TEST_PAUSE=POINT[,POINT...]:FILE in the
 * environment (read once, when the first store is opened), the library
 * creates FILE.POINT when it reaches a listed point and waits until a test
 * removes it (at most 10 s), so that race tests can place another process's
 * action exactly in the window they mean to test instead of hoping for it.
 * Points:
 *   verify-object    verify's unlocked scan, before it opens each blob file
 *                    (it has read the record)
 *   verify-scanned   verify, after its unlocked scan, before the re-check
 *   gc-scanned       gc, between its scan and its delete (lock held)
 *   put-renamed      a file put, between the rename and the record commit
 *   delete-committed a delete of a file object, between its record commit
 *                    and the unlink of its blob (exclusive lock held)
 *   put-before-name  minidbx_writer_commit_named, after the put and before
 *                    the name is set
 *   s3-verify-hashed s3:// verify REPAIR, after its second read found an
 *                    object's bytes wrong, before it removes the object
 *   s3-repair-names-removed  s3:// verify REPAIR, after it removed a bad
 *                    object's names, before the object's DELETE
 *   s3-remove-checked  an s3:// remover (delete, gc, REPAIR), under its
 *                    mark, after its last look, before its DELETE
 *   s3-name-set      an s3:// name set, before it writes its ref
 *   s3-name-ref      an s3:// name set, after its ref, before it looks
 *                    for removers' marks
 *   s3-name-waits    an s3:// name set that has found a mark, before it
 *                    waits for it
 *   s3-name-checked  an s3:// name set, after its HEAD found the object,
 *                    before it writes the name
 *   shard-made       a file put that has just created a shard directory,
 *                    before it fsyncs the directory's parent
 * Disabled (the normal case) it costs one load and one branch. */
extern const char *dbx_test_pause_point;
/* Called at every open: reads MINIDBX_TEST_PAUSE once per process, and
 * MINIDBX_TEST_CLOCK_SHIFT each time (below). */
void dbx_test_pause_init(void);
void dbx_test_pause_at(const char *point);
#define DBX_TEST_PAUSE(point)                                                   \
    do {                                                                        \
        if (dbx_test_pause_point)                                               \
            dbx_test_pause_at(point);                                           \
    } while (0)

/* TEST ONLY. MINIDBX_TEST_CLOCK_SHIFT=SECONDS (a signed integer) in the
 * environment when a store is opened moves dbx_now_ns by that much for
 * the whole process from then on (until an open sees another value), so
 * that gc's grace period can be tested without waiting: a put made with
 * -1300000 is 15 days old. Unset (the normal case) it adds 0. */
extern _Atomic int64_t dbx_test_clock_shift_ns;

/* --- puts of bytes whose id is known (objects.c) ------------------------- */

/* Store size bytes under id, which the caller computed from these very
 * bytes in this process: minidbx_put's checks without hashing again (a
 * cluster: store hands each node the id its own put computed, so an object
 * is hashed once, not once per copy). A remote node still checks the bytes
 * against id on its side (an http:// node's commit; an S3 engine reached
 * over http://, by x-amz-content-sha256). With created (may be NULL):
 * through the backend's writer, *created as minidbx_writer_commit_ex says. */
int dbx_put_known(minidbx *db, const minidbx_id *id, const void *data, size_t size, int *created);

/* --- the local backend (backend/local*.c) -------------------------------- */

int dbx_local_open(minidbx_backend **out, const char *path, const minidbx_options *opts);
/* Let the pages of a local store's metadata map that reads touched go from
 * this process (they stay mapped, and count in its RSS, until then: 10,000
 * inline 4 KiB objects are 80 MiB of them); the page cache keeps them.
 * Safe while other threads read. For a pass over a whole store
 * (minidbx_copy). false (nothing done) if be is not a local store. */
bool dbx_local_drop_pages(minidbx_backend *be);

/* --- the http:// backend (backend/http.c, when built with libcurl) ------- */

int dbx_http_open(minidbx_backend **out, const char *url, const minidbx_options *opts);

/* --- the s3:// backend (backend/s3*.c, with libcurl and libxml2) --------- */

int dbx_s3_open(minidbx_backend **out, const char *location, const minidbx_options *opts);

/* --- the cluster: backend (backend/cluster*.c, when built with json-c) ----- */

int dbx_cluster_open(minidbx_backend **out, const char *location, const minidbx_options *opts);

#endif
