/*
 * minidbx/sys/backend.h - the backend table, for backend authors.
 *
 * A minidbx handle wraps one backend: a versioned table of function
 * pointers. The local store is one; http://, s3:// and cluster: stores are
 * others; a program may add its own (tests/mem_backend.c in the source tree
 * is a complete in-memory one, registered with minidbx_register_scheme).
 *
 * What the library does before a call reaches a backend, so that no backend
 * repeats it:
 *   - ids and names are validated (a backend never sees a bad one);
 *   - writes on a store opened MINIDBX_OPEN_READONLY are refused;
 *   - ids are computed: put and writer commit receive the SHA-256 of the
 *     bytes, computed by the library;
 *   - bytes handed out by get and readers are hashed and compared with the
 *     id (unless MINIDBX_OPEN_NO_VERIFY, or the backend says it checked
 *     them: MINIDBX_BACKEND_VERIFIED_READS), so a lying backend gives
 *     MINIDBX_ECORRUPT, never wrong bytes.
 *
 * Rules for backends:
 *   - return 0 or a negative MINIDBX_E* code; on error, say what happened
 *     with minidbx_error_set();
 *   - a method left NULL makes the public call return MINIDBX_EUNSUPPORTED
 *     (get, missing and put have fallbacks noted below);
 *   - methods may be called from several threads at once;
 *   - the table is versioned: new methods are only appended, and a backend
 *     built against an older version keeps working.
 *
 * In the source tree, the built-in backends are in libminidbx/backend/:
 * the local store (local*.c, by concern), the http:// client (http.c), and
 * remote.c, the libcurl layer that a built-in remote backend (s3://,
 * cluster:) uses rather than copying http.c. Built-in schemes are rows of
 * one table in libminidbx/open.c; a program adds its own with
 * minidbx_register_scheme.
 */
#ifndef MINIDBX_SYS_BACKEND_H
#define MINIDBX_SYS_BACKEND_H

#include <minidbx.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version 2 appended minidbx_backend_writer.commit_created; version 3
 * appended minidbx_backend.name_set_at, .nodes and .flags; version 4
 * appended .gc_ex; version 5 .name_set_keep. */
#define MINIDBX_BACKEND_VERSION 5

typedef struct minidbx_backend minidbx_backend;
typedef struct minidbx_backend_writer minidbx_backend_writer;
typedef struct minidbx_backend_reader minidbx_backend_reader;

/** A write stream. Embed it first in your own struct. */
struct minidbx_backend_writer {
    int (*write)(minidbx_backend_writer *w, const void *data, size_t size);
    /** id is the SHA-256 of everything written. Frees w whatever happens. */
    int (*commit)(minidbx_backend_writer *w, const minidbx_id *id);
    /** Throw away what was written; frees w. */
    void (*abort)(minidbx_backend_writer *w);
    /** Since version 2 (read only when the backend's table says version >= 2;
     *  may be NULL): commit, and set *out_created to 1 when this commit
     *  stored a new object or 0 when the store had it already. The answer
     *  must come from the store's own commit (e.g. an insert that fails when
     *  the key exists), never from an exists() asked before: two writers
     *  committing the same bytes at once must not both hear 1. Frees w
     *  whatever happens. An expected id (minidbx_writer_commit_ex) is
     *  checked by the library before this is called. */
    int (*commit_created)(minidbx_backend_writer *w, const minidbx_id *id, int *out_created);
};

/** A read stream. Embed it first in your own struct. */
struct minidbx_backend_reader {
    /** *out_read = 0 means the end. */
    int (*read)(minidbx_backend_reader *r, void *buf, size_t capacity, size_t *out_read);
    /** May be NULL: no zero-copy fd. */
    int (*fd)(minidbx_backend_reader *r, int *out_fd, uint64_t *out_offset);
    void (*close)(minidbx_backend_reader *r);
};

struct minidbx_backend {
    unsigned version;  /* MINIDBX_BACKEND_VERSION */
    const char *name;  /* short, e.g. "local", "http", "mem" */

    /** Release everything; called once by minidbx_close. */
    void (*free)(minidbx_backend *be);

    /** Store bytes whose id the library computed. NULL: the writer is used. */
    int (*put)(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size);
    /** Return a malloc'd copy (at least 1 byte allocated). NULL: the reader is used. */
    int (*get)(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size);
    /** 1, 0 or an error. */
    int (*exists)(minidbx_backend *be, const minidbx_id *id);
    /** NULL: exists is called for each id. */
    int (*missing)(minidbx_backend *be, const minidbx_id *ids, size_t count,
                   minidbx_id *out_missing, size_t *out_count);
    int (*stat)(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out);
    int (*del)(minidbx_backend *be, const minidbx_id *id, unsigned flags);
    int (*list)(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
                size_t capacity, size_t *out_count);

    int (*writer_open)(minidbx_backend *be, minidbx_backend_writer **out);
    int (*reader_open)(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                       uint64_t *out_size);

    int (*batch_begin)(minidbx_backend *be);
    int (*batch_commit)(minidbx_backend *be);
    int (*batch_abort)(minidbx_backend *be);

    int (*name_set)(minidbx_backend *be, const char *name, const minidbx_id *id);
    int (*name_get)(minidbx_backend *be, const char *name, minidbx_name_info *out);
    int (*name_delete)(minidbx_backend *be, const char *name);
    int (*name_list)(minidbx_backend *be, const char *prefix, const char *after,
                     minidbx_name_info *out, size_t capacity, size_t *out_count);

    int (*verify)(minidbx_backend *be, const minidbx_id *id, unsigned flags,
                  minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx);
    /** Remove every unnamed object now (no grace); minidbx_gc_ex calls it
     *  only for older_than_ns 0 without flags or callback, on a table
     *  without gc_ex. */
    int (*gc)(minidbx_backend *be, minidbx_gc_report *report);
    int (*info)(minidbx_backend *be, minidbx_store_info *out);

    /* Since version 3 (read only when the table says version >= 3; NULL
     * makes the calls EUNSUPPORTED): */
    /** name_set with the mtime the caller gives (minidbx_name_set_at). */
    int (*name_set_at)(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns);
    /** minidbx_nodes: the nodes of a store made of several, each node's
     *  state; with holding not NULL, only the nodes that hold that object. */
    int (*nodes)(minidbx_backend *be, const minidbx_id *holding, minidbx_node_info *out,
                 size_t capacity, size_t *out_count);
    /** MINIDBX_BACKEND_* flags (since version 3). */
    unsigned flags;

    /* Since version 4 (read only when the table says version >= 4): */
    /** minidbx_gc_ex: opts is never NULL and checked (older_than_ns >= 0,
     *  known flags); report starts zeroed. Call opts->removed (if set) once
     *  per object removed, or that would be with MINIDBX_GC_DRY_RUN. */
    int (*gc_ex)(minidbx_backend *be, const minidbx_gc_options *opts, minidbx_gc_report *report);

    /* Since version 5 (read only when the table says version >= 5; NULL:
     * the library reads the name, then sets it): */
    /** minidbx_name_set_ex with MINIDBX_NAME_KEEP, the check atomic with
     *  the set: EEXISTS when name points at another object. */
    int (*name_set_keep)(minidbx_backend *be, const char *name, const minidbx_id *id);
};

/** get and readers hand out only bytes that the backend itself checked
 *  against the id (a cluster: store's nodes check what they send, and it
 *  reads another copy when one fails), so the library does not hash them
 *  a second time. A backend that sets it and hands out unchecked bytes
 *  breaks the first promise: set it only when every path checks. */
#define MINIDBX_BACKEND_VERIFIED_READS 0x1u

/** minidbx_put of more than 64 KiB goes through the writer (the backend
 *  is given the bytes first, then the library hashes them and commits)
 *  rather than through put (hash first, then the backend's call): for a
 *  backend whose disk can work on the bytes while the library hashes, as
 *  the local store starts writing a blob's temp file back before its
 *  flush. */
#define MINIDBX_BACKEND_PUT_WRITES_FIRST 0x2u

/** Wrap a backend in a handle. The handle owns be from this call on, even
 *  when it fails (be->free is called then). opts may be NULL. */
MINIDBX_EXTERN int minidbx_open_backend(minidbx **out, minidbx_backend *be, const minidbx_options *opts);

/** Opens a backend for a location such as "mem://x". opts is never NULL. */
typedef int (*minidbx_backend_open_fn)(minidbx_backend **out, const char *location,
                                       const minidbx_options *opts);

/** Make minidbx_open hand locations that start with "scheme:" (as
 *  "scheme://..." or "scheme:...") to open_fn, whole. A scheme is a letter
 *  and 1..30 letters, digits, '+', '.' or '-', matched without regard to
 *  case; http, https and file stay built in. Registering a scheme again
 *  replaces it. Thread-safe. Up to 16 schemes.
 *  Errors: EINVAL (not a scheme, or NULL), ENOMEM (table full). */
MINIDBX_EXTERN int minidbx_register_scheme(const char *scheme, minidbx_backend_open_fn open_fn);

/** Set the calling thread's error message (printf format) and return code,
 *  so a backend can write: return minidbx_error_set(MINIDBX_EIO, "...", ...). */
MINIDBX_EXTERN int minidbx_error_set(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif /* MINIDBX_SYS_BACKEND_H */
