/*
 * minidbx.h - an embeddable, content-addressed blob store.
 *
 * This header is the manual. Every function says what it does, who owns
 * what is passed in and handed out, which errors it returns and whether it
 * may be called from several threads at once.
 *
 * Objects are immutable byte strings named by their SHA-256 (the "id").
 * Putting the same bytes twice stores them once. A store is opened from a
 * location: a directory path for the local store (LMDB metadata, small
 * objects inline, large objects as files in sharded directories), or a URL
 * handled by a transport backend (see minidbx/sys/backend.h).
 *
 * Conventions
 * -----------
 * - Functions return 0 on success or a negative MINIDBX_E* code. The codes
 *   live in their own band (-40900 .. -40999) and are never renumbered: a
 *   number, once released, keeps its meaning; new codes take the next free
 *   number. The band is clear of negative errno values, libuv, GnuTLS
 *   (down to -1250 and -65000 .. -65500), NSPR/NSS, mbed TLS (which fills
 *   -1 .. -32767), Berkeley DB (-30800 .. -30999), LMDB and libmdbx
 *   (-30799 .. -30778, -30421 .. -30410) and WiredTiger (-31800 .. -31999),
 *   so a program that mixes their codes in one int can tell them apart.
 * - minidbx_strerror(code) names a code; minidbx_errmsg() says exactly what
 *   went wrong in the last failing call made by the calling thread.
 * - Memory handed out by the library (minidbx_get) is released with
 *   minidbx_free(). Handles are released with their own close/abort call;
 *   passing NULL to any of those is a no-op.
 * - A minidbx handle may be shared by any number of threads. Writers,
 *   readers and batches are owned by one thread at a time.
 * - A store may be opened by several processes at once. Within one process,
 *   a second open of a local store (by any path to its directory) shares
 *   the first one's LMDB environment, whose locks are per process; the
 *   handles may be closed in any order. The second must ask for no more
 *   than the first gives: read-only on a store open read-write (the handle
 *   refuses writes itself), MINIDBX_SYNC_NONE on a durable one; a
 *   read-write open of a store open read-only, or a durable read-write
 *   open of one open with MINIDBX_SYNC_NONE, is MINIDBX_ESTATE (close the
 *   other handle first). A thread's batch is on the store: all its handles in
 *   that thread join it, and closing any of them aborts it.
 *   Do not use a handle across fork(): open the store again in the child.
 */
#ifndef MINIDBX_H
#define MINIDBX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define MINIDBX_EXTERN __attribute__((visibility("default")))
#else
#define MINIDBX_EXTERN
#endif

#define MINIDBX_VERSION_MAJOR 0
#define MINIDBX_VERSION_MINOR 1
#define MINIDBX_VERSION_PATCH 0
#define MINIDBX_VERSION_STRING "0.1.0"

/** A handle on an open store (opaque). */
typedef struct minidbx minidbx;

/** The library's version string, e.g. "0.1.0". */
MINIDBX_EXTERN const char *minidbx_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

#define MINIDBX_OK            0
#define MINIDBX_ENOTFOUND     (-40901) /* no such object or name */
#define MINIDBX_EEXISTS       (-40902) /* it already exists (e.g. creating a store) */
#define MINIDBX_EINVAL        (-40903) /* bad argument: id, name, location, option */
#define MINIDBX_ECORRUPT      (-40904) /* bytes do not match their id, or bad metadata */
#define MINIDBX_ENOSPC        (-40905) /* no space left on the device or in the map */
#define MINIDBX_EIO           (-40906) /* an I/O or transport error */
#define MINIDBX_ETOOBIG       (-40907) /* object larger than max_object_size */
#define MINIDBX_EREFERENCED   (-40908) /* object is pointed at by a name */
#define MINIDBX_EREADONLY     (-40909) /* store opened read-only */
#define MINIDBX_ENOMEM        (-40910) /* out of memory */
#define MINIDBX_EUNSUPPORTED  (-40911) /* the backend lacks this call */
#define MINIDBX_EPERM         (-40912) /* permission denied (file mode, token) */
#define MINIDBX_ESTATE        (-40913) /* call not valid now (e.g. nested batch) */

/** A static, human-readable name for a code ("object not found"). Never
 *  NULL; unknown codes give "unknown error". Thread-safe. */
MINIDBX_EXTERN const char *minidbx_strerror(int code);

/** Detail of the last failing call made by the calling thread, e.g.
 *  "get 3fa1...: blob file failed verification". The message is thread-local,
 *  so db may be NULL (as after a failed minidbx_open) and is only accepted
 *  for symmetry with sqlite3_errmsg. Valid until the thread's next minidbx
 *  call. Never NULL (empty string when there is nothing to say). */
MINIDBX_EXTERN const char *minidbx_errmsg(const minidbx *db);

/* ------------------------------------------------------------------------ */
/* Ids                                                                      */
/* ------------------------------------------------------------------------ */

#define MINIDBX_ID_SIZE 32
#define MINIDBX_ID_HEX_SIZE 65 /* 64 hex digits + NUL */

/** An object id: the SHA-256 of the object's bytes. */
typedef struct {
    unsigned char bytes[MINIDBX_ID_SIZE];
} minidbx_id;

/** Parse exactly 64 hex digits (either case) followed by the end of the
 *  string. Anything else (63 or 65 digits, a non-hex character, a path, a
 *  NULL hex) gives MINIDBX_EINVAL and leaves *out untouched. */
MINIDBX_EXTERN int minidbx_id_parse(minidbx_id *out, const char *hex);

/** Write the id as 64 lowercase hex digits and a NUL into out. */
MINIDBX_EXTERN void minidbx_id_format(const minidbx_id *id, char out[MINIDBX_ID_HEX_SIZE]);

/** 1 if the two ids are equal, else 0. */
MINIDBX_EXTERN int minidbx_id_equal(const minidbx_id *a, const minidbx_id *b);

/** Compute the id of size bytes at data (SHA-256) without storing them.
 *  Returns 0, or MINIDBX_ENOMEM if the digest could not be set up. */
MINIDBX_EXTERN int minidbx_id_of(minidbx_id *out, const void *data, size_t size);

/* ------------------------------------------------------------------------ */
/* Opening and closing                                                      */
/* ------------------------------------------------------------------------ */

/** Open flags (minidbx_options.flags). */
#define MINIDBX_OPEN_NO_CREATE  0x1u /* fail with ENOTFOUND if the store is missing */
#define MINIDBX_OPEN_READONLY   0x2u /* refuse every change with EREADONLY */
#define MINIDBX_OPEN_NO_VERIFY  0x4u /* do not hash bytes on read (faster, trusts the disk) */

/** Durability of a committed put. */
typedef enum {
    /** Default. When a put (or batch commit) returns, the object and its
     *  metadata are on stable storage: files and their directories are
     *  fsync'ed before the metadata commit, which is fsync'ed too. On the
     *  local store, puts that threads of one process make at the same
     *  time share one metadata commit and its flushes (group commit): a
     *  put that arrives while a commit is being flushed joins the next
     *  one, and each returns once the commit holding it is durable.
     *  This holds across a power cut, not only a crash of the process:
     *  what a put relies on (the blob file, its directory entry, the shard
     *  directories and, for a new store, the store's own entry) is flushed
     *  before it returns (tests/fault: the 'powercut' test), also when the
     *  object (or a name set) was there already, perhaps from a writer with
     *  durability none a moment before: such a put or name set flushes
     *  what it relies on. (A name set does not make its object's bytes
     *  durable: put them with this durability first.) The cost, on
     *  the local store: LMDB flushes twice per commit (its pages, then its
     *  meta page), a file object adds its file and its directory; SQLite's
     *  WAL needs one flush per commit (bench/README.md, issue 12). One
     *  thread that needs more durable puts per second puts them in a batch
     *  (minidbx_batch_begin: one commit, one round of flushes for all) or
     *  spreads them over threads, which share commits. */
    MINIDBX_SYNC_FULL = 0,
    /** Nothing is fsync'ed. A crash of the process loses nothing that was
     *  acknowledged; a crash of the machine may lose the last puts (never
     *  a record whose bytes are wrong: reads verify). For bulk loads. */
    MINIDBX_SYNC_NONE = 1
} minidbx_durability;

#define MINIDBX_OPTIONS_VERSION 1

/** Options for minidbx_open. Initialise with MINIDBX_OPTIONS_INIT, then set
 *  what you need; new fields are only ever appended. */
typedef struct {
    unsigned version;               /* MINIDBX_OPTIONS_VERSION */
    unsigned flags;                 /* MINIDBX_OPEN_* */
    minidbx_durability durability;  /* MINIDBX_SYNC_FULL by default */
    /** Objects of at most this many bytes are kept inside the metadata
     *  database; larger ones are files. 0 means the default
     *  (MINIDBX_DEFAULT_INLINE_THRESHOLD). Only read when a local store is
     *  created; afterwards the store's own value is used. */
    size_t inline_threshold;
    /** Largest object a put accepts (MINIDBX_ETOOBIG beyond). 0: no limit. */
    uint64_t max_object_size;
    /** Bearer token for remote stores (NULL: $MINIDBX_TOKEN, if set). */
    const char *token;
    /** Remote stores: the connect timeout, and how long a transfer may
     *  move at under 1 KiB/s (stalled, or dripping) before it fails, in
     *  milliseconds (0: 30 s). A large transfer that keeps moving is never
     *  cut off. A reply that is not an object's bytes (a listing, a
     *  report) over 64 MiB is MINIDBX_EIO. */
    unsigned timeout_ms;
} minidbx_options;

#define MINIDBX_DEFAULT_INLINE_THRESHOLD (16u * 1024u)

#define MINIDBX_OPTIONS_INIT { MINIDBX_OPTIONS_VERSION, 0u, MINIDBX_SYNC_FULL, 0u, 0u, NULL, 0u }

/** Open the store at location and return a handle in *out.
 *
 *  The location grammar, strictly:
 *    SCHEME      a letter, then one or more letters, digits, '+', '.', '-'
 *                (case does not matter), followed by ':'. A location that
 *                starts with SCHEME ':' is never a directory.
 *    file://PATH       the local store at PATH.
 *    http://HOST:PORT, https://HOST:PORT
 *                      a node running `mdbx serve`, in builds with the http
 *                      client (else EUNSUPPORTED); every call works, batches
 *                      as described at minidbx_batch_begin. An error the
 *                      node's store returns comes back as the same code,
 *                      with the node's message in minidbx_errmsg; a node
 *                      that cannot be reached is EIO.
 *    SCHEME://... or SCHEME:...
 *                      a scheme registered with minidbx_register_scheme
 *                      (the whole location is handed to it; http, https
 *                      and file cannot be replaced).
 *    s3://BUCKET[/PREFIX]
 *                      a store in an S3 bucket (any S3-compatible engine:
 *                      AWS S3, Ceph RGW, MinIO...), in builds with libcurl
 *                      and libxml2 (else EUNSUPPORTED). See "s3:// stores"
 *                      below. The bucket must exist (ENOTFOUND, naming it,
 *                      if not); the prefix needs no creating.
 *    cluster:FILE      N stores ("nodes") as one, described by the JSON
 *                      file FILE (builds with json-c; else EUNSUPPORTED):
 *        {"replicas": R, "write_quorum": W, "timeout_ms": T,
 *         "cache_objects": C, "nodes": [LOCATION, ...]}
 *                      nodes: 1..64 distinct locations of any kind but
 *                        cluster: (a directory, http://, s3://...; one
 *                        directory named twice, as "a", "./a" or
 *                        "file://a", is EINVAL: R copies there would be
 *                        one); a
 *                        relative directory is relative to FILE's own.
 *                        Each is opened with minidbx_open and this call's
 *                        options, with verification always on.
 *                      replicas: copies of each object, 1..N (default 2,
 *                        or N if smaller); write_quorum: copies a put must
 *                        have stored to succeed, 1..R (default R);
 *                        timeout_ms: each node's deadline (the http://
 *                        connect and stall timeout; default 5000);
 *                        cache_objects: slots of a cache of small objects
 *                        (up to 64 KiB) already read and verified, each
 *                        used for at most 1 s (default 1024; 0: none): a
 *                        delete made through another handle may go unseen
 *                        by get for that long.
 *                      Any other field, a missing or bad one gives EINVAL
 *                        naming it; no file gives ENOTFOUND.
 *                      Placement: rendezvous (highest random weight)
 *                        hashing of the id and each node's location: an
 *                        object's "homes" are the R nodes that score best,
 *                        so adding or removing one of N nodes moves about
 *                        1/N of the objects. A put writes the R copies in
 *                        parallel and succeeds when W are stored; when a
 *                        home is down the copy goes to the next node in
 *                        that order, so R copies exist while R nodes are up
 *                        (repair moves it home later). get and readers try
 *                        the nodes in that order and fall back on a node
 *                        that is down, does not answer within its deadline,
 *                        or hands out bytes that fail verification: a
 *                        copy is checked whole before its first byte is
 *                        handed on (up to 1 MiB read into memory; larger,
 *                        a local node's blob is hashed first, a remote
 *                        one spooled to a temp file in $TMPDIR), and the
 *                        library does not hash it again. exists, missing,
 *                        stat and list merge the nodes' answers.
 *                      A node that fails (EIO: unreachable, or past its
 *                        deadline) is marked down and skipped; a thread
 *                        probes it again after 250 ms, doubling to 10 s,
 *                        so a dead or hung node costs its deadline once.
 *                        Open fails only when no node can be reached.
 *                      Names live on the R best nodes for the name's own
 *                        hash, and on its object's homes (where the name
 *                        keeps a node's gc off the object, and makes stat's
 *                        refs count every name); each of those nodes holds
 *                        the object (it is copied there). Writers that race
 *                        resolve by last
 *                        writer wins: of differing copies the one with the
 *                        later mtime, then the larger id, is the name; all
 *                        copies of one set share its mtime, reads return the
 *                        winner, repair makes every copy agree. A delete
 *                        removes every copy on the nodes that are up (no
 *                        tombstones: a node down during it may keep one,
 *                        and a put of the same bytes racing it may be left
 *                        with fewer than R copies: repair restores them).
 *                      A node that comes back, or a node put in a dead
 *                        one's place, is filled by repair.
 *                      Batches are as on http://; gc runs each node's gc;
 *                        verify with MINIDBX_VERIFY_REPAIR is the repair
 *                        (see minidbx_verify); minidbx_nodes tells each
 *                        node's state.
 *    any other SCHEME: EUNSUPPORTED when written SCHEME://..., else EINVAL.
 *    anything else     a directory path: the local store. A relative path
 *                      whose first segment has a colon is written with a
 *                      leading "./" ("./foo:bar"); "C:" (one letter) and
 *                      "a/b:c" are paths as they are.
 *  opts may be NULL for the defaults.
 *
 *  A local store is created if location does not exist or is an empty
 *  directory, unless MINIDBX_OPEN_NO_CREATE (then MINIDBX_ENOTFOUND). A
 *  location that exists but is not a store gives MINIDBX_EINVAL and is left
 *  untouched. Opening sweeps temp files left by writers that died.
 *
 *  Errors: EINVAL, ENOTFOUND, EPERM, EIO, ENOSPC, ENOMEM, ECORRUPT (the
 *  metadata is not a minidbx store of a known format), EUNSUPPORTED (a
 *  scheme this build does not have). On error *out is set to NULL. */
MINIDBX_EXTERN int minidbx_open(minidbx **out, const char *location, const minidbx_options *opts);

/* s3:// stores
 * ------------
 * Configuration, from the environment S3 tools share:
 *   AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   required (else EPERM)
 *   AWS_SESSION_TOKEN                          sent as x-amz-security-token
 *   AWS_REGION, else AWS_DEFAULT_REGION        else us-east-1
 *   MINIDBX_S3_ENDPOINT  e.g. http://127.0.0.1:7480 for a self-hosted
 *                        engine; else https://s3.REGION.amazonaws.com.
 *                        Requests are path style (ENDPOINT/BUCKET/KEY).
 *   timeout_ms (minidbx_options) as for http://.
 * Requests are signed with SigV4 by libcurl. Credentials never appear in
 * an error message, a log line or minidbx_info (whose location is
 * "s3://BUCKET[/PREFIX]", without the endpoint).
 *
 * Layout, under P = "PREFIX/" (nothing without a prefix), readable by any
 * S3 tool:
 *   P objects/ab/<64 hex id>   an object: exactly its bytes ("ab": the
 *                              id's first two hex digits)
 *   P names/<name>             a name: JSON {"id":...,"size":...,
 *                              "mtime_ns":...}
 *   P refs/<64 hex id>/<name>  empty: says <name> points at that id (read
 *                              by delete, stat's refs and gc)
 *   P tmp/<random>.<n>         a large writer's multipart upload (in
 *                              segments of 5 GiB), until its commit
 *   P marks/<64 hex id>/<random>  empty: a delete, gc or repair is about
 *                              to remove that object (see Names below)
 * Objects: put and a writer of at most 5 MiB are one PUT to the object's
 * key. Over http:// its x-amz-content-sha256 is the id, so the engine
 * checks the bytes it got (and refuses others); over https://, where TLS
 * guards them, it is UNSIGNED-PAYLOAD (as boto3 does), which saves the
 * engine hashing every body (10-15% of a 1 MiB PUT on a local RGW).
 * A larger writer is a multipart upload to P tmp/ in 5 MiB parts (their
 * hashes are not known: UNSIGNED-PAYLOAD; every read verifies), 2 sent at
 * once (memory: 3 parts, 15 MiB, at most), completed at commit, copied on
 * the engine to the object's key (no bytes come back) and removed. (One
 * copy moves at most 5 GiB: a larger object is uploaded in segments of
 * 5 GiB, tmp/<random>.0, .1, ..., each copied whole as a part of a
 * multipart upload to its key.) A failing or aborted writer aborts
 * its upload and removes its segments, so no parts stay behind. A process
 * killed mid-upload leaves no object, only an incomplete upload under
 * P tmp/ (the engine keeps its parts): verify reports it as TEMP once older
 * than an hour, and REPAIR aborts it (as would any S3 tool, or a lifecycle
 * rule on the bucket).
 * Readers fetch in ranges (Range: bytes=A-B), one GET at a time, in
 * bounded memory (a reader holds the socket's buffers, not a range: 7 MiB
 * peak RSS reading 100 MiB): a first GET of at most 256 KiB, which learns
 * the size (an object that fits is read whole and checked before its
 * first byte is handed out), then ranges of 8 MiB. A range whose
 * connection drops or resets, or that gets a 5xx, is asked again from the
 * byte where it broke off (up to 5 times per range; a stall of timeout_ms
 * is not retried). The bytes of all ranges are hashed in order as they
 * arrive, and the read that would hand out the last byte checks the id
 * first: ECORRUPT, and that byte never handed out, if they do not match.
 * exists and stat are HEADs
 * (stat adds a listing of P refs/<id>/). missing asks about 1,000 ids or
 * more with one listing of P objects/ from the lowest to the highest (1,000
 * keys a request) while that reads at most 20 keys per id, else with a HEAD
 * per id, 16 at a time. list is ListObjectsV2 over P objects/
 * (continuation tokens; id order).
 * created_ns is the engine's Last-Modified: a put of bytes that are
 * already there writes them again and moves it. minidbx_writer_commit_ex
 * of at most 5 MiB asks the engine to create the key only if it is new
 * (If-None-Match: *), so *out_created is exact (bytes that were there are
 * then PUT again, plainly); over 5 MiB the copy to the key cannot be
 * conditional and *out_created is -1 (cannot tell).
 * Names: a set writes the object's ref, then waits while a remover's
 * mark on the object stands, then HEADs the object (gone: its ref is
 * removed again, ENOTFOUND), then writes the name (a crash between them
 * leaves a ref too many: the object is kept; verify reports BADREF once
 * the ref is 5 minutes old, the longest a live set can be between them).
 * A remover (delete, gc, REPAIR) writes its mark, then lists the refs,
 * and DELETEs only if there are none (a ref under 5 minutes old whose name
 * does not point at the id yet is a set in flight: delete says
 * EREFERENCED, REPAIR keeps the object for now), with a deadline 30 s
 * after its mark (MINIDBX_S3_MARK_TTL_SECONDS: the request is cut there
 * and not retried past it), then removes the mark. Each side writes
 * before it reads, so a set that returns 0 never leaves its name on an
 * object a remover deletes. This needs an engine whose listings show
 * every acknowledged write to every client (one Ceph RGW zone and AWS S3
 * do; a multisite RGW between zones does not). Left: two sets of one
 * name to one object at once write the same ref; if one of them fails
 * (the object was deleted and put again between its checks), its undo
 * removes that ref under the other's name, which then holds the object
 * no longer: verify reports BADREF and REPAIR writes the ref again.
 * A mark left by a remover
 * that died holds up a set of that object for up to 60 s (twice the TTL),
 * after which the set removes it; gc removes such marks too. A cascading
 * delete whose names took past the TTL takes a new mark and lists the
 * refs again (EREFERENCED if names were set meanwhile). name_list is one
 * listing and a GET per name.
 * Batches: S3 has no transactions. A batch is a plain sequence, as on
 * http:// (see minidbx_batch_begin): every call reaches the engine at
 * once; abort removes nothing, gc removes what it left unnamed.
 * verify reads back and hashes every object (4 at a time); a mismatch is
 * read and hashed again before it is reported, and only then removed by
 * REPAIR (with its names), and only while the key still holds the bytes
 * that read hashed: its ETag and Last-Modified are compared (a HEAD)
 * before the names are removed and again just before the DELETE, which
 * also carries If-Match: ETAG. A copy that a client put again meanwhile
 * (healed) is hashed again instead, and kept if it is right now. Left: the
 * moment between that last HEAD and the DELETE on an engine that ignores
 * If-Match on DELETE (Ceph RGW 16 does; a put landing there is removed,
 * as gc's). It also reports names whose object is gone
 * (DANGLING), names and refs that disagree (BADREF) and old P tmp/ keys
 * and uploads (TEMP).
 * gc removes the objects that no ref names and whose Last-Modified is
 * older_than_ns (at least a second: Last-Modified is in whole seconds)
 * before the engine's clock when gc began (its Date header); a put of
 * stored bytes writes them again, which moves Last-Modified and so makes
 * them young; a dry run lists and deletes nothing. Each is checked again
 * (under a mark, as for delete: its refs listed, a HEAD) just before its
 * DELETE, so a name set racing gc either keeps the object or fails with
 * ENOTFOUND, and a put of the same bytes keeps it, except in the moment
 * between that HEAD and the DELETE (S3 has no conditional delete): do
 * not run gc with a grace shorter than the time a client may hold unnamed
 * bytes it relies on without naming them.
 * Errors: the engine's code and message are in minidbx_errmsg with the
 * method and URL. A wrong secret is EPERM ("SignatureDoesNotMatch"), a
 * missing bucket ENOTFOUND ("NoSuchBucket", naming it), an engine that
 * cannot be reached EIO (with the URL), one that stalls for timeout_ms
 * EIO too (not retried: the timeout is the caller's deadline). Idempotent
 * requests (all but streamed ones) are retried up to 5 times, with pauses
 * of 0.1 to 0.8 s, on a transport error before any reply or a 5xx (503
 * SlowDown).
 * For tests: MINIDBX_S3_LIST_PAGE (keys per listing page, 1..1000),
 * MINIDBX_S3_PART_SIZE (bytes, >= 5 MiB), MINIDBX_S3_PART_THREADS (2),
 * MINIDBX_S3_COPY_MAX (bytes one copy request moves, 5 MiB..5 GiB),
 * MINIDBX_S3_RANGE_SIZE (a reader's ranges, bytes, >= 64 KiB; 8 MiB),
 * MINIDBX_S3_MISSING_LIST_MIN (ids from which missing lists, 1000) and
 * MINIDBX_S3_STALE_SECONDS (the TEMP age, 3600) change the above. */

/** Close the handle and free everything it owns. NULL is a no-op. Writers
 *  and readers must be closed first; an open batch is aborted. */
MINIDBX_EXTERN void minidbx_close(minidbx *db);

/** Free memory handed out by the library. NULL is a no-op. */
MINIDBX_EXTERN void minidbx_free(void *p);

/* ------------------------------------------------------------------------ */
/* Objects: whole-buffer calls                                              */
/* ------------------------------------------------------------------------ */

/** Store size bytes at data (data may be NULL when size is 0) and write
 *  their id to *out_id (which may be NULL). Storing bytes that are already
 *  there succeeds and stores nothing twice. Thread-safe.
 *  A bad copy heals: on the local store, putting an object whose stored
 *  copy is damaged replaces it (inline bytes are compared; a blob file
 *  that is gone, not a regular file or of the wrong size is replaced, and
 *  with MINIDBX_SYNC_FULL outside a batch any blob is, which also mends a
 *  same-size corruption). The same holds for writers and put_fd.
 *  Errors: EREADONLY, ETOOBIG, ENOSPC, EIO (also when the store's own
 *  files fail: its directory was deleted, tmp/ cannot be written), ENOMEM.
 *  Nothing partial is ever visible after a failure. */
MINIDBX_EXTERN int minidbx_put(minidbx *db, const void *data, size_t size, minidbx_id *out_id);

/** Fetch an object into a new buffer (*out_data, free with minidbx_free;
 *  a 0-byte object gives a valid 1-byte allocation) of *out_size bytes.
 *  The bytes are checked against the id before they are returned (unless
 *  MINIDBX_OPEN_NO_VERIFY). Thread-safe.
 *  Errors: ENOTFOUND, ECORRUPT (never wrong bytes), ENOMEM, EIO. */
MINIDBX_EXTERN int minidbx_get(minidbx *db, const minidbx_id *id, void **out_data, size_t *out_size);

/** 1 if the object is there, 0 if not, or a negative error. Thread-safe.
 *  On the local store "there" includes a cheap check of a file object's
 *  blob (one stat: a regular file of the right size, not hashed), so an
 *  object whose file is gone is reported missing and a put heals it. */
MINIDBX_EXTERN int minidbx_exists(minidbx *db, const minidbx_id *id);

/** Which of count ids are missing. The missing ones are written, in input
 *  order, to out_missing (room for count ids; may alias ids) and their
 *  number to *out_count. One metadata transaction for the whole batch. */
MINIDBX_EXTERN int minidbx_missing(minidbx *db, const minidbx_id *ids, size_t count,
                                   minidbx_id *out_missing, size_t *out_count);

#define MINIDBX_DELETE_CASCADE 0x1u /* also delete the names that point at it */

/** Delete an object. An object that names point at is refused with
 *  MINIDBX_EREFERENCED (use minidbx_delete_ex to delete the names too).
 *  Thread-safe. Errors: ENOTFOUND, EREFERENCED, EREADONLY, EIO. */
MINIDBX_EXTERN int minidbx_delete(minidbx *db, const minidbx_id *id);

/** minidbx_delete with flags: 0 behaves as minidbx_delete;
 *  MINIDBX_DELETE_CASCADE also deletes every name that points at the object
 *  (in one transaction on the local store), so it never fails with
 *  EREFERENCED, except on s3:// while a name set of the object is in
 *  flight (see minidbx_open). Any other bit gives EINVAL. Thread-safe.
 *  Errors: as minidbx_delete, plus EINVAL. */
MINIDBX_EXTERN int minidbx_delete_ex(minidbx *db, const minidbx_id *id, unsigned flags);

#define MINIDBX_OBJECT_INLINE 0x1u /* kept inside the metadata database */

/** What a store knows about one object. */
typedef struct {
    minidbx_id id;
    uint64_t size;        /* bytes */
    int64_t created_ns;   /* when first stored, ns since the Unix epoch */
    uint64_t refs;        /* how many names point at it */
    unsigned flags;       /* MINIDBX_OBJECT_* */
} minidbx_object_info;

/** Fill *out for one object (id may point into *out). Errors: ENOTFOUND,
 *  EIO. Thread-safe. */
MINIDBX_EXTERN int minidbx_stat(minidbx *db, const minidbx_id *id, minidbx_object_info *out);

/** List objects in id order, starting after *after (NULL: from the first).
 *  Up to capacity entries go to out and their number to *out_count; fewer
 *  than capacity means the end was reached. To resume, pass the last id
 *  returned as after. Stateless, so it can be resumed by another process. */
MINIDBX_EXTERN int minidbx_list(minidbx *db, const minidbx_id *after,
                                minidbx_object_info *out, size_t capacity, size_t *out_count);

/* ------------------------------------------------------------------------ */
/* Streams and file descriptors                                             */
/* ------------------------------------------------------------------------ */

typedef struct minidbx_writer minidbx_writer;
typedef struct minidbx_reader minidbx_reader;

/** Start writing an object of unknown length. Memory stays bounded however
 *  much is written. Errors: EREADONLY, ENOSPC, EIO, ENOMEM. */
MINIDBX_EXTERN int minidbx_writer_open(minidbx *db, minidbx_writer **out);

/** Append size bytes. After an error the writer can only be aborted.
 *  Errors: ETOOBIG, ENOSPC, EIO. */
MINIDBX_EXTERN int minidbx_writer_write(minidbx_writer *w, const void *data, size_t size);

/** Make the object durable (per the store's durability), write its id to
 *  *out_id (may be NULL) and free the writer, whatever the result. */
MINIDBX_EXTERN int minidbx_writer_commit(minidbx_writer *w, minidbx_id *out_id);

/** minidbx_writer_commit, and more:
 *  - expect (may be NULL): the id the bytes must have. When they hash to
 *    another id nothing is stored and MINIDBX_ECORRUPT is returned (an
 *    upload under a claimed id, e.g. PUT /v1/objects/ID).
 *  - *out_created (may be NULL) gets 1 when this commit stored a new
 *    object and 0 when the store had it already. The answer comes from the
 *    store's own commit, so of any number of writers (threads, processes,
 *    clients of one node) committing the same bytes at once, exactly one
 *    hears 1. Inside a batch, 1 means new to the batch, which may still be
 *    aborted. It is -1 when the backend cannot tell (a backend table older
 *    than MINIDBX_BACKEND_VERSION 2, or one without commit_created).
 *  Frees the writer whatever the result. Errors: as minidbx_writer_commit,
 *  plus ECORRUPT (expect differs). */
MINIDBX_EXTERN int minidbx_writer_commit_ex(minidbx_writer *w, const minidbx_id *expect,
                                            minidbx_id *out_id, int *out_created);

/** Commit as minidbx_writer_commit and point name at the object (as
 *  minidbx_name_set) at once: a concurrent minidbx_gc or delete never sees
 *  the object stored but not yet named, so it is never removed in between
 *  (put, then name_set, can fail with ENOTFOUND when a gc runs between
 *  them). On the local store both happen in one metadata transaction (the
 *  caller's batch, if one is open, else a batch of their own); if the name
 *  cannot be set nothing is stored. (A thread with a batch open on another
 *  store gets two transactions here, as with put and name_set.) The temp
 *  file's last writeback (a few MiB at most: writers flush as they go) is
 *  fsync'ed at that batch's commit, under the store's writer lock. On a
 *  remote store (http://) the node gets a put and then a name set; a gc
 *  on the node between them can still remove the object, and the call
 *  then fails with ENOTFOUND.
 *  Frees the writer whatever the result.
 *  Errors: as minidbx_writer_commit, plus EINVAL (bad name). */
MINIDBX_EXTERN int minidbx_writer_commit_named(minidbx_writer *w, const char *name, minidbx_id *out_id);

/** minidbx_writer_commit_named with minidbx_name_set_ex's flags: with
 *  MINIDBX_NAME_KEEP a name that points at another object is not moved:
 *  EEXISTS, and on the local store nothing is stored either (the check is
 *  in the same transaction as the put and the set, so of two writers
 *  naming different bytes at once exactly one wins). On other stores the
 *  check is a read before the set, after the put: the object may then stay,
 *  unnamed. 0: as minidbx_writer_commit_named. Frees the writer whatever
 *  the result. Errors: as minidbx_writer_commit_named, plus EEXISTS, and
 *  EINVAL for any other flag. */
MINIDBX_EXTERN int minidbx_writer_commit_named_ex(minidbx_writer *w, const char *name, unsigned flags,
                                                  minidbx_id *out_id);

/** Throw away what was written and free the writer. NULL is a no-op. */
MINIDBX_EXTERN void minidbx_writer_abort(minidbx_writer *w);

/** Open an object for reading in chunks. *out_size (may be NULL) gets its
 *  size. A local blob file that is not a regular file (a FIFO, a symlink)
 *  or has the wrong size is refused here. Errors: ENOTFOUND, ECORRUPT,
 *  EIO, ENOMEM. */
MINIDBX_EXTERN int minidbx_reader_open(minidbx *db, const minidbx_id *id,
                                       minidbx_reader **out, uint64_t *out_size);

/** Read up to capacity bytes into buf; *out_read gets how many (0 at the
 *  end). The bytes are hashed as they pass, and the read that would deliver
 *  the object's last byte (the size reader_open gave) checks the hash
 *  first: if it does not match the id, that read returns MINIDBX_ECORRUPT
 *  with *out_read 0 (buf then holds nothing of use) instead of the final
 *  chunk. So a caller that reads exactly size bytes and stops, and one that
 *  reads until 0, are both protected: no corrupt object is ever delivered
 *  whole. Earlier chunks are handed out before the end is known: write them
 *  somewhere provisional until the last read succeeds. A backend that sends
 *  more bytes than the size, or fewer, gives ECORRUPT too. Not checked
 *  with MINIDBX_OPEN_NO_VERIFY. (s3://, http:// and cluster: stores hash
 *  while the bytes arrive, in their transfer, with the same guarantee.)
 *  Errors: ECORRUPT, EIO. */
MINIDBX_EXTERN int minidbx_reader_read(minidbx_reader *r, void *buf, size_t capacity, size_t *out_read);

/** For zero-copy serving: if the object is a file, hand out a read-only fd
 *  and the offset where its bytes start. The fd stays owned by the reader
 *  (do not close it); bytes read through it bypass verification.
 *  Errors: EUNSUPPORTED (inline object or a backend without files). */
MINIDBX_EXTERN int minidbx_reader_fd(minidbx_reader *r, int *out_fd, uint64_t *out_offset);

/** Close a reader. NULL is a no-op. */
MINIDBX_EXTERN void minidbx_reader_close(minidbx_reader *r);

/** Store everything read from fd until end of file (a pipe works) and
 *  write the id to *out_id. Errors as for the writer, plus EIO on read. */
MINIDBX_EXTERN int minidbx_put_fd(minidbx *db, int fd, minidbx_id *out_id);

/** Write an object's bytes to fd. The bytes are verified as they go; on
 *  MINIDBX_ECORRUPT some bytes may already have been written, so write to
 *  a temp file and rename it only on success. Errors: ENOTFOUND, ECORRUPT,
 *  EIO (on the store or on fd; EPIPE keeps errno). */
MINIDBX_EXTERN int minidbx_get_fd(minidbx *db, const minidbx_id *id, int fd);

/* ------------------------------------------------------------------------ */
/* Batches                                                                  */
/* ------------------------------------------------------------------------ */

/** Group the calling thread's following puts (and deletes, names) on db so
 *  that they share one metadata transaction and one round of fsync. Until
 *  minidbx_batch_commit they are visible only to this thread and not
 *  durable; other writers to the store wait until the batch ends, readers
 *  never do. Keep batches short (e.g. 1,000 puts).
 *  On a remote store (http://) a batch cannot share a transaction with the
 *  node: each call in it reaches the node at once, visible to all and
 *  durable when it returns; commit only ends the batch, and abort ends it
 *  too and removes nothing. An object the batch put may be one another
 *  client has been told is stored since, so abort never deletes it: what
 *  the batch left without a name is removed by the next minidbx_gc (after
 *  its grace period). Name changes and deletes are not undone either.
 *  s3:// stores batch the same way.
 *  Errors: ESTATE (a batch is already open on db), EREADONLY, EIO. */
MINIDBX_EXTERN int minidbx_batch_begin(minidbx *db);

/** Make everything in the batch durable at once. The batch is over whatever
 *  the result; on error none of it is stored. Errors: ESTATE, ENOSPC, EIO. */
MINIDBX_EXTERN int minidbx_batch_commit(minidbx *db);

/** Throw the batch away. Errors: ESTATE (no batch open by this thread). */
MINIDBX_EXTERN int minidbx_batch_abort(minidbx *db);

/* ------------------------------------------------------------------------ */
/* Names                                                                    */
/* ------------------------------------------------------------------------ */

/** Longest name in bytes (LMDB's key limit). */
#define MINIDBX_NAME_MAX 500

/** A name: a UTF-8 path like "photos/2024/cat.jpg" pointing at an object.
 *  Valid names are 1..MINIDBX_NAME_MAX bytes, relative (no leading '/'),
 *  with no empty, "." or ".." segments, no NUL and no control characters. */
typedef struct {
    char name[MINIDBX_NAME_MAX + 1];
    minidbx_id id;
    uint64_t size;       /* the object's size when the name was set */
    int64_t mtime_ns;    /* when the name was set, ns since the Unix epoch */
} minidbx_name_info;

/** 1 if name is a valid name, else 0. */
MINIDBX_EXTERN int minidbx_name_valid(const char *name);

/** Point name at id (replacing what it pointed at). The object must exist.
 *  On s3:// a set racing a delete or gc of the object waits for it (up to
 *  60 s after a remover that died; see minidbx_open).
 *  Errors: EINVAL (bad name), ENOTFOUND (no such object), EREADONLY, EIO. */
MINIDBX_EXTERN int minidbx_name_set(minidbx *db, const char *name, const minidbx_id *id);

/** minidbx_name_set_ex: do not move a name that points at another object. */
#define MINIDBX_NAME_KEEP 0x1u

/** minidbx_name_set with flags; whether a name that points elsewhere may
 *  move is the caller's explicit choice. 0: as minidbx_name_set (it moves).
 *  MINIDBX_NAME_KEEP: set the name only when it is free or already points
 *  at id (then nothing changes); else EEXISTS and nothing changes (`mdbx
 *  name set` without --force). On a local store the check is in the set's
 *  own transaction (a writer between them cannot be overwritten); on other
 *  stores it is a read before the write. Errors: as minidbx_name_set, plus
 *  EEXISTS, and EINVAL for any other flag. */
MINIDBX_EXTERN int minidbx_name_set_ex(minidbx *db, const char *name, const minidbx_id *id,
                                       unsigned flags);

/** minidbx_name_set with the name's mtime given (ns since the Unix epoch,
 *  >= 0) instead of taken from the clock: a copy of a name made elsewhere
 *  keeps the time it was set, so that copies of one name on several stores
 *  can be compared and made to agree (a cluster: store's repair uses it;
 *  see "cluster:" at minidbx_open). Last writer wins: where the store's
 *  copy of the name is newer (a later mtime, or the same mtime and a
 *  larger id) it stays, and the call returns 0 having changed nothing;
 *  on the local store (and so on an http:// node) that check and the set
 *  are one transaction, so copies set concurrently converge on the newest
 *  whatever order they arrive in (on s3:// the check is a read before the
 *  write, not atomic). minidbx_name_set always replaces. The local store,
 *  http:// nodes, s3:// and cluster: stores support it; other backends
 *  give EUNSUPPORTED.
 *  Errors: as minidbx_name_set, plus EINVAL (negative mtime), EUNSUPPORTED. */
MINIDBX_EXTERN int minidbx_name_set_at(minidbx *db, const char *name, const minidbx_id *id,
                                       int64_t mtime_ns);

/** Look a name up. Errors: EINVAL, ENOTFOUND. */
MINIDBX_EXTERN int minidbx_name_get(minidbx *db, const char *name, minidbx_name_info *out);

/** Remove a name (the object stays; gc may remove it later).
 *  Errors: EINVAL, ENOTFOUND, EREADONLY, EIO. */
MINIDBX_EXTERN int minidbx_name_delete(minidbx *db, const char *name);

/** List names that start with prefix (NULL or "" for all) in byte order,
 *  after the name after (NULL: from the first). Up to capacity go to out;
 *  fewer than capacity means the end. Resume with the last name returned. */
MINIDBX_EXTERN int minidbx_name_list(minidbx *db, const char *prefix, const char *after,
                                     minidbx_name_info *out, size_t capacity, size_t *out_count);

/* ------------------------------------------------------------------------ */
/* Verify, gc, info                                                         */
/* ------------------------------------------------------------------------ */

#define MINIDBX_VERIFY_REPAIR 0x1u /* remove what is corrupt or orphaned (a cluster: copy what is missing) */

/** Kinds of problem verify reports. */
typedef enum {
    MINIDBX_PROBLEM_CORRUPT = 1,   /* bytes do not hash to the id */
    MINIDBX_PROBLEM_MISSING = 2,   /* a record whose blob file is gone */
    MINIDBX_PROBLEM_ORPHAN = 3,    /* a blob file without a record */
    MINIDBX_PROBLEM_TEMP = 4,      /* a temp file left by a dead writer */
    MINIDBX_PROBLEM_DANGLING = 5,  /* a name whose object is gone */
    MINIDBX_PROBLEM_BADREF = 6,    /* a reference count that is wrong */
    /* cluster: stores only (see minidbx_open): */
    MINIDBX_PROBLEM_MISPLACED = 7, /* a copy on a node that is not one of its homes */
    MINIDBX_PROBLEM_STALE = 8,     /* a node that should hold a name lacks its newest copy */
    /* Not a problem of its own but what a repair did about one: a name
     * removed with the CORRUPT or MISSING object it pointed at (REPAIR
     * only; detail is the name, id the object, repaired 1). One call per
     * name, right after its object's problem. Not counted in the
     * report's problems or repaired. Never on a cluster: (its repair
     * never removes a name from the store). */
    MINIDBX_PROBLEM_NAME_REMOVED = 9
} minidbx_problem;

typedef struct {
    uint64_t objects_checked;
    uint64_t bytes_checked;
    uint64_t problems;   /* all problems found (not NAME_REMOVED) */
    uint64_t repaired;   /* of those, fixed or removed (with REPAIR); the
                          * others (problems - repaired) remain */
} minidbx_verify_report;

/** Called once per problem: id may be NULL (a temp file), detail says
 *  where; repaired is 1 if REPAIR fixed it. Kinds may be added: ignore
 *  those you do not know (an http:// node from before NAME_REMOVED does
 *  not report removed names). */
typedef void (*minidbx_problem_cb)(void *ctx, minidbx_problem kind, const minidbx_id *id,
                                   const char *detail, int repaired);

/** Check one object (id) or the whole store (id NULL): re-hash every
 *  object's bytes, look for records without bytes, blob files without
 *  records, names without objects and stale temp files (reported, and
 *  removed only with REPAIR; a read-only handle reports them too). The
 *  scan takes no lock; on the local store every problem it finds is
 *  checked again under the store lock, in a fresh transaction (the one
 *  that repairs), before it is reported or repaired, so writers working
 *  beside verify (put, delete, gc) never cause a false report and repair
 *  never removes an object that was deleted and put again meanwhile. A
 *  blob that is not a regular file (a FIFO, a symlink) is CORRUPT. With
 *  MINIDBX_VERIFY_REPAIR, corrupt and missing objects are removed (with
 *  the names that point at them, each reported to cb as
 *  MINIDBX_PROBLEM_NAME_REMOVED), orphans and temp files deleted and
 *  reference counts fixed. On the local store a MISSING object is removed
 *  only when its file alone is gone (blobs/, blobs/ab and blobs/ab/cd are
 *  directories: the file was deleted, its bytes are lost). When one of
 *  those directories is missing or not a directory (a disk not mounted, a
 *  tree moved away), repair leaves the object and its names as they are
 *  and reports it MISSING, not repaired, detail saying which directory:
 *  once the directory is back the object reads again (and a put of its
 *  bytes heals it meanwhile). Then every other MISSING object of that run
 *  is left too (puts while a disk is not mounted make shard directories
 *  below it, where the other objects of those shards are not).
 *  report and cb may be NULL. Returns 0 when it
 *  ran (problems are in the report), or an error: ENOTFOUND (one id),
 *  EREADONLY (repair on a read-only store), EIO. On a remote store the
 *  node runs it and cb is called once it has answered, for at most the
 *  first 10,000 problems (the report counts them all).
 *  On a cluster: store verify walks every name and object once and reads
 *  back each copy on its homes (the R best nodes that were up when it
 *  began or are up now: a node that fails during the pass stays a home,
 *  and what it lacks is left to the next pass): a home
 *  without a copy is MISSING, a bad copy CORRUPT, a home without the newest
 *  copy of a name STALE, a copy outside the homes MISPLACED. REPAIR copies
 *  (from a node with a good copy, verified on the way), puts the right
 *  bytes again, sets the newest name with its mtime, and removes a
 *  misplaced copy only once every home copy is sound and never one that a
 *  name on that node points at; cb may be called from several threads, one
 *  call at a time. objects_checked counts objects, not copies. */
MINIDBX_EXTERN int minidbx_verify(minidbx *db, const minidbx_id *id, unsigned flags,
                                  minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx);

typedef struct {
    uint64_t objects_removed;
    uint64_t bytes_removed;
} minidbx_gc_report;

/** The grace period of gc by default: 14 days, as git prune's. An object
 *  put less than this long ago is kept even when no name points at it. */
#define MINIDBX_GC_DEFAULT_GRACE_NS (14LL * 24 * 3600 * 1000000000)

#define MINIDBX_GC_DRY_RUN 0x1u /* remove nothing: report (and call removed for) what would go */

/** What gc removes and how it tells. Start from MINIDBX_GC_OPTIONS_INIT. */
typedef struct {
    /** Keep unnamed objects put less than this many ns ago (>= 0); 0 removes
     *  every unnamed object. An object's age is the time since it was last
     *  put: putting bytes that are stored already makes them young again,
     *  as git freshens a re-added object (see each backend below). */
    int64_t older_than_ns;
    unsigned flags; /* MINIDBX_GC_* */
    /** May be NULL. Called once per object removed (with DRY_RUN: that
     *  would be), after it is gone, in no set order. On a remote store the
     *  node lists the first 10,000 (the report counts them all). */
    void (*removed)(void *ctx, const minidbx_id *id, uint64_t size);
    void *ctx;
} minidbx_gc_options;

#define MINIDBX_GC_OPTIONS_INIT { MINIDBX_GC_DEFAULT_GRACE_NS, 0, NULL, NULL }

/** Remove every object that no name points at and that was last put at
 *  least opts->older_than_ns ago (opts NULL: MINIDBX_GC_OPTIONS_INIT, so a
 *  14-day grace). Gc decides under the store's lock: a put racing gc either
 *  comes first and makes its object young (kept, unless older_than_ns is 0,
 *  when the object may go as any unnamed one) or comes after and stores it
 *  again, so a put never returns success for bytes gc then removes. Name
 *  an object (in the same batch as its put) to keep it whatever its age.
 *  Ages by backend:
 *  - local: the record keeps the time of the last put (stat's created_ns
 *    stays the first put); a put of stored bytes rewrites that time when it
 *    is more than a second old, so gc with older_than_ns > 0 keeps one more
 *    second's worth, to be exact about "put within older_than_ns";
 *  - http://: the node's store decides (by its clock); the request carries
 *    older_than_ns in whole seconds (rounded up) and the dry-run flag;
 *  - s3://: the object's Last-Modified (ListObjectsV2), by the engine's
 *    clock; a put of stored bytes writes them again, which moves it;
 *  - cluster:: every node's gc runs with these options.
 *  Only runs when called. report may be NULL.
 *  Errors: EINVAL (older_than_ns < 0, unknown flags), EREADONLY (not with
 *  DRY_RUN), EUNSUPPORTED (a backend table older than version 4 does only
 *  older_than_ns 0 without DRY_RUN and without removed), EIO. */
MINIDBX_EXTERN int minidbx_gc_ex(minidbx *db, const minidbx_gc_options *opts, minidbx_gc_report *report);

/** minidbx_gc_ex(db, NULL, report): the default 14-day grace, so gc keeps
 *  unnamed objects put in the last 14 days (set older_than_ns 0 with
 *  minidbx_gc_ex to remove them now). */
MINIDBX_EXTERN int minidbx_gc(minidbx *db, minidbx_gc_report *report);

/** Figures about a store. */
typedef struct {
    uint64_t objects;
    uint64_t bytes;           /* sum of object sizes */
    uint64_t inline_objects;
    uint64_t file_objects;
    uint64_t names;
    uint64_t inline_threshold;
    char backend[16];         /* "local", "http", ... */
    char location[1024];      /* the path or URL it was opened with */
} minidbx_store_info;

/** Fill *out. Errors: EIO, EUNSUPPORTED. */
MINIDBX_EXTERN int minidbx_info(minidbx *db, minidbx_store_info *out);

/* ------------------------------------------------------------------------ */
/* Copying between stores: push, pull, sync                                 */
/* ------------------------------------------------------------------------ */

/* minidbx_copy copies what one store has and another lacks, from any store
 * to any store (local, http://, and every other scheme), with the public
 * calls only: it lists src (minidbx_list), asks dst which ids it lacks in
 * batches of 1,000 (minidbx_missing), and copies those in parallel, each
 * in its own thread as a reader on src streamed into a writer on dst, in
 * bounded memory (one 1 MiB buffer per thread), then copies the names.
 * Small objects (up to 64 KiB) go 64 to a thread at a time, read first and
 * then written in one batch on dst, and names 64 at a time in one batch
 * too (minidbx_batch_begin): on a local dst one commit and one fsync for
 * them all. A dst reports them copied only once the batch is committed.
 * A local store's metadata map (where its inline objects live) stays
 * mapped in the process where reads touched it; the copy lets those pages
 * go (the page cache keeps them) each time 16 MiB more of file pages are
 * mapped, so that its RSS stays bounded too (10,000 x 4 KiB: 34 MiB peak,
 * not 97).
 *
 * Every copy is checked: the writer's commit expects the id
 * (minidbx_writer_commit_ex), so bytes that do not hash to their id are
 * never stored on dst, even when src was opened with
 * MINIDBX_OPEN_NO_VERIFY (which saves hashing them twice: a copy between
 * stores needs only the writer's check).
 *
 * Names. A name that src has and dst lacks is set on dst. A name that
 * both have, pointing at different objects, is set to src's object on dst:
 * the source wins, as in a mirror or a backup, whatever the names' times
 * (times need not be comparable: a store without minidbx_name_set_at
 * keeps the time a name was set there). It is never silent: every name
 * set is reported (MINIDBX_COPY_NAME, with the object it pointed at before
 * on dst). Names that only dst has are left alone: a copy never deletes
 * anything on dst.
 * A name's object is copied first, so that dst never has a name without
 * its object. A name is set with the time it was set on src where dst can
 * keep it (minidbx_name_set_at), else at dst's clock.
 *
 * Re-running a copy that succeeded copies nothing and sets no name.
 */

#define MINIDBX_COPY_DRY_RUN 0x1u /* find what would be copied; change nothing */

#define MINIDBX_COPY_OPTIONS_VERSION 1

/** Options for minidbx_copy. Initialise with MINIDBX_COPY_OPTIONS_INIT;
 *  new fields are only ever appended. */
typedef struct {
    unsigned version;   /* MINIDBX_COPY_OPTIONS_VERSION */
    unsigned flags;     /* MINIDBX_COPY_* */
    /** Copies at once, each in a thread of its own: 0 means 4; at most 64.
     *  Objects over 8 MiB are copied one at a time (a writer to a remote
     *  store may hold several MiB of each, and each is a long stream, or
     *  several parts at once, already); the other threads go on with
     *  smaller ones. */
    unsigned threads;
    /** What to copy. With no ids and no names (the default): every object
     *  and every name of src. Otherwise only these objects, and these
     *  names (looked up on src) with their objects. */
    const minidbx_id *ids;
    size_t id_count;
    const char *const *names;
    size_t name_count;
} minidbx_copy_options;

#define MINIDBX_COPY_OPTIONS_INIT { MINIDBX_COPY_OPTIONS_VERSION, 0u, 0u, NULL, 0u, NULL, 0u }

/** What minidbx_copy tells its callback about. */
typedef enum {
    /** An object was copied (with MINIDBX_COPY_DRY_RUN: would be): id, size. */
    MINIDBX_COPY_OBJECT = 1,
    /** An object could not be copied: id, error, message, from_source. */
    MINIDBX_COPY_OBJECT_FAILED = 2,
    /** A name was set on dst (dry run: would be): name, id, and previous,
     *  the object it pointed at on dst before (NULL: dst had no such name). */
    MINIDBX_COPY_NAME = 3,
    /** A name could not be copied: name, id (NULL when src has no such
     *  name), error, message. */
    MINIDBX_COPY_NAME_FAILED = 4,
    /** Bytes of a large object went to dst (size: how many), for progress
     *  lines; objects of one chunk (1 MiB) or less get only their
     *  MINIDBX_COPY_OBJECT. */
    MINIDBX_COPY_BYTES = 5
} minidbx_copy_event_kind;

/** One event. Pointers are valid during the callback only. */
typedef struct {
    minidbx_copy_event_kind kind;
    const minidbx_id *id;
    const char *name;
    const minidbx_id *previous;
    uint64_t size;
    int error;            /* *_FAILED: a MINIDBX_E* code, else 0 */
    const char *message;  /* *_FAILED: what went wrong, else "" */
    int from_source;      /* *_FAILED: 1 when src failed (a missing or
                             corrupt object), 0 when dst did */
} minidbx_copy_event;

/** Counts of a copy, so far (in the callback) or in all (at the end). */
typedef struct {
    uint64_t objects_checked;  /* objects of src looked up on dst */
    uint64_t objects_present;  /* of those, dst had them: not copied */
    uint64_t objects_missing;  /* of those, dst lacked them: to copy */
    uint64_t bytes_missing;    /* their bytes */
    uint64_t objects_copied;   /* copied (dry run: would be) */
    uint64_t bytes_copied;     /* their bytes */
    uint64_t objects_failed;
    uint64_t bytes_sent;       /* bytes written to dst so far, also of
                                  copies in flight or failed (progress) */
    uint64_t names_set;        /* set on dst (dry run: would be) */
    uint64_t names_unchanged;  /* dst had them, pointing at the same object */
    uint64_t names_failed;
    /** 1 once every object of src has been looked up on dst, so that
     *  objects_missing and bytes_missing are the totals to copy. */
    int listing_done;
} minidbx_copy_report;

/** Called for each event, one call at a time (under the copy's lock), from
 *  the calling thread or one of the copy's threads; report is the counts
 *  so far. Return 0 to go on; anything else stops the copy as soon as it
 *  can (copies in flight are aborted: dst keeps only whole, verified
 *  objects) and minidbx_copy returns that value: make it positive, so
 *  that it cannot be taken for a MINIDBX_E* code. */
typedef int (*minidbx_copy_cb)(void *ctx, const minidbx_copy_event *event,
                               const minidbx_copy_report *report);

/** Copy to dst what src has and dst lacks (see above): objects, then
 *  names. src and dst may be stores of any kinds; dst must be writable
 *  (unless MINIDBX_COPY_DRY_RUN), src may be read-only. opts may be NULL
 *  (everything, 4 threads); report and cb may be NULL.
 *
 *  An object or a name that fails is reported to cb (*_FAILED) and the
 *  copy goes on with the others, unless dst is unusable: a dst error that
 *  every copy would meet (EREADONLY, EPERM, ENOSPC, EUNSUPPORTED), or EIO
 *  from 4 copies in a row with no success between them (a node that went
 *  away), stops the copy. Failures of src's listing stop it too.
 *
 *  Returns 0 when everything was copied. Otherwise: what cb returned when
 *  it stopped the copy; else the error that stopped it; else, when some
 *  objects or names failed, the first failure's code (ECORRUPT: a src
 *  object failed verification and was not copied; ENOTFOUND: a given id or
 *  name is not in src), with minidbx_errmsg saying how many failed.
 *  Objects copied before a failure stay on dst; a re-run copies the rest.
 *  Errors also: EINVAL (bad arguments, a bad id or name in opts, src and
 *  dst the same handle), EREADONLY (dst opened read-only), ENOMEM.
 *  Thread-safe as far as the two handles are: other threads may use them
 *  meanwhile. */
MINIDBX_EXTERN int minidbx_copy(minidbx *src, minidbx *dst, const minidbx_copy_options *opts,
                                minidbx_copy_report *report, minidbx_copy_cb cb, void *ctx);

/** The state of one node of a store made of several (a cluster: store). */
typedef struct {
    char location[1024];     /* the node's location, as the cluster file gives it */
    int up;                  /* 1: in use; 0: down (skipped, probed again with backoff) */
    int home;                /* minidbx_nodes with an id: 1 if one of the object's R homes */
    char last_error[256];    /* the last failure's message ("" if none) */
    int64_t down_since_ns;   /* when it went down (0 if up) */
    uint64_t requests;       /* calls made to it */
    uint64_t failures;       /* of those, failed (an error other than ENOTFOUND) */
    uint64_t latency_us_avg; /* mean time of a call, in microseconds */
    uint64_t latency_us_max; /* slowest call */
} minidbx_node_info;

/** The nodes of a store made of several, in the order of the cluster file
 *  (holding NULL), or, with holding an id, the nodes that hold that object,
 *  its home nodes first (each node that is up is asked). Up to capacity go
 *  to out, their number to *out_count (a store of more nodes than capacity
 *  gives the first capacity). Thread-safe.
 *  Errors: EUNSUPPORTED (a store of one node: local, http://), EINVAL. */
MINIDBX_EXTERN int minidbx_nodes(minidbx *db, const minidbx_id *holding, minidbx_node_info *out,
                                 size_t capacity, size_t *out_count);

#ifdef __cplusplus
}
#endif
#endif /* MINIDBX_H */
