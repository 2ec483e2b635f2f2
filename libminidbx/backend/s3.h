/*
 * s3.h - what the s3:// backend's files share (s3.c: configuration,
 * requests, objects; s3_list.c: listings, names, verify, gc, info;
 * s3_stream.c: writers with multipart upload, readers). Not installed.
 *
 * The layout in the bucket (documented for users in minidbx.h, at
 * minidbx_open), under P = "PREFIX/" (or "" without a prefix):
 *   P objects/ab/<64 hex>   an object: its bytes, nothing else ("ab" is
 *                           the id's first two hex digits)
 *   P names/<name>          a name: {"id":HEX,"size":N,"mtime_ns":N}
 *   P refs/<64 hex>/<name>  empty: <name> points at that id (what delete,
 *                           stat's refs and gc read instead of every name)
 *   P tmp/<random>          a large writer's upload, copied to its key at
 *                           commit and removed
 *   P marks/<64 hex>/<random>  empty: a remover is about to DELETE that
 *                           object (s3_list.c, "marks": what name sets wait for)
 */
#ifndef MINIDBX_S3_H
#define MINIDBX_S3_H

#include "remote.h"

#define S3_KEY_MAX 1024
#define S3_ID_KEY_SIZE (sizeof "objects/ab/" + MINIDBX_ID_HEX_SIZE)

struct s3_backend {
    minidbx_backend base;
    dbx_remote remote;        /* endpoint + "/" + bucket, path style */
    char *bucket;
    char *prefix;             /* "" or "PREFIX/" */
    char *location;           /* "s3://BUCKET[/PREFIX]": no endpoint, no credentials */
    char *sigv4;              /* "aws:amz:REGION:s3" */
    char *access_key, *secret_key;
    char *token_header;       /* "x-amz-security-token: ..." or NULL */
    bool sign_payload;        /* an object PUT's x-amz-content-sha256 is its id (http://) */
    size_t part_size;         /* multipart part size (>= 5 MiB) */
    unsigned part_threads;    /* parts uploaded at once by one writer */
    uint64_t copy_max;        /* most bytes one CopyObject copies (5 GiB) */
    unsigned list_page;       /* max-keys per ListObjectsV2 page */
    size_t missing_list_min;  /* missing of this many ids tries a listing */
    int64_t stale_ns;         /* tmp/ uploads older than this are verify's TEMP */
    int64_t mark_ttl_ns;      /* a remover's DELETE is sent this soon after its mark, or not (s3_list.c) */
};

static inline struct s3_backend *s3_of(minidbx_backend *be)
{
    return (struct s3_backend *)be;
}

/* ---- requests (s3.c) ---- */

#define S3_ETAG_SIZE 80

/* Which bytes a key held when it was read: a PUT of other bytes changes
 * its ETag; a PUT of the same bytes its Last-Modified (whole seconds). */
struct s3_version {
    char etag[S3_ETAG_SIZE];
    int64_t mtime_ns;
};

/* A reply's header line: into out (of size, NUL-terminated, the value
 * without blanks and line end) if its name is name; else out is left. */
void s3_header_value(const char *line, size_t len, const char *name, char *out, size_t size);
/* A header hook (dbx_remote_call.header_fn) filling the s3_version ctx. */
void s3_version_header(void *ctx, const char *line, size_t len);
bool s3_version_equal(const struct s3_version *a, const struct s3_version *b);

/* call->url = the bucket's URL + "/" + the key (prefix + key, percent-
 * encoded as SigV4 wants it); method as given. */
int s3_call(struct s3_backend *sb, dbx_remote_call *call, const char *method, const char *key);
/* The bucket's URL + "/" + prefix + key, encoded: for streams. */
int s3_key_path(struct s3_backend *sb, const char *key, char *out, size_t size);
/* Perform and accept only a 2xx reply (the engine's error otherwise). */
int s3_expect_ok(struct s3_backend *sb, dbx_remote_call *call);
/* "objects/ab/<hex>" */
void s3_object_key(const minidbx_id *id, char out[S3_ID_KEY_SIZE]);
/* The error of a 2xx reply whose body is an <Error> (CopyObject and
 * CompleteMultipartUpload answer so); 0 if it is none. */
int s3_body_error(struct s3_backend *sb, const dbx_remote_call *call);
/* HEAD an object: 1 (and its size and mtime), 0 if it is not there, or an
 * error. */
int s3_head(struct s3_backend *sb, const char *key, uint64_t *size, int64_t *mtime_ns);
/* The same, with the version (may be NULL) instead of the mtime. */
int s3_head_version(struct s3_backend *sb, const char *key, uint64_t *size,
                    struct s3_version *version);
/* PUT an object's bytes to its key. created NULL: whatever is there;
 * else only if the key is new (If-None-Match), *created 1, or 0 when it was
 * there (then it is PUT again, plainly). */
int s3_put_object(struct s3_backend *sb, const minidbx_id *id, const void *data, size_t size,
                  int *created);
/* DELETE a key (deleting one that is not there succeeds, as in S3). */
int s3_delete_key(struct s3_backend *sb, const char *key);
/* DELETE a key only while it holds version: a HEAD first (its ETag and
 * Last-Modified must be version's), then a DELETE with If-Match: its ETag
 * (an engine with conditional deletes refuses it, 412, if the bytes
 * changed since; Ceph RGW 16 ignores If-Match on DELETE, so there a PUT
 * that lands between the HEAD and the DELETE is deleted). 0 when deleted,
 * 1 when the key holds other bytes (or none) now: nothing deleted. */
int s3_delete_key_if(struct s3_backend *sb, const char *key, const struct s3_version *version);
/* The same (version NULL: plainly), sent by deadline_ns (dbx_boottime_ns)
 * or not at all (EIO). */
int s3_delete_key_by(struct s3_backend *sb, const char *key, const struct s3_version *version,
                     int64_t deadline_ns);
/* A random hex string of 2 * bytes digits (bytes <= 32). */
int s3_random_hex(char *out, size_t bytes);

/* Run fn(ctx, i) for every i < count on up to threads threads. The first
 * error (by index) is returned, with its message. */
int s3_each(size_t count, unsigned threads, int (*fn)(void *ctx, size_t i), void *ctx);

/* ---- XML replies (s3.c, libxml2) ---- */

/* The engine's <Error> as "Code: Message" (malloc'd), or NULL. */
char *s3_error_message(const char *body, size_t len);
/* The text of the first element named tag below the root, malloc'd, or NULL. */
char *s3_xml_text(const char *body, size_t len, const char *tag);
/* "2026-11-30T04:10:29.123Z" or an HTTP date: ns since the epoch, or -1. */
int64_t s3_parse_time(const char *text);

/* ---- listings (s3_list.c) ---- */

/* Called per key (relative to the prefix) in key order: 0 goes on, 1 stops
 * the listing, < 0 is an error. */
typedef int (*s3_key_fn)(void *ctx, const char *key, uint64_t size, int64_t mtime_ns);
/* List the keys that start with prefix + under, after prefix + after (NULL:
 * from the first). *server_ns (may be NULL) gets the engine's clock at the
 * first page (its Date header). */
int s3_list(struct s3_backend *sb, const char *under, const char *after, s3_key_fn fn, void *ctx,
            int64_t *server_ns);

int s3_be_list(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
               size_t capacity, size_t *out_count);
/* Which of count ids (count > 0) are absent, from one listing of
 * objects/ from the lowest id to the highest: 1 and absent[] set, or 0 when
 * the listing went past budget keys (then absent[] means nothing). */
int s3_missing_by_listing(struct s3_backend *sb, const minidbx_id *ids, size_t count,
                          unsigned char *absent, uint64_t budget);
int s3_refs_count(struct s3_backend *sb, const minidbx_id *id, uint64_t *out);
int s3_be_del(minidbx_backend *be, const minidbx_id *id, unsigned flags);
int s3_be_name_set(minidbx_backend *be, const char *name, const minidbx_id *id);
int s3_be_name_set_at(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns);
int s3_be_name_get(minidbx_backend *be, const char *name, minidbx_name_info *out);
int s3_be_name_delete(minidbx_backend *be, const char *name);
int s3_be_name_list(minidbx_backend *be, const char *prefix, const char *after,
                    minidbx_name_info *out, size_t capacity, size_t *out_count);
int s3_be_verify(minidbx_backend *be, const minidbx_id *id, unsigned flags,
                 minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx);
int s3_be_gc(minidbx_backend *be, minidbx_gc_report *report);
int s3_be_gc_ex(minidbx_backend *be, const minidbx_gc_options *opts, minidbx_gc_report *report);
int s3_be_info(minidbx_backend *be, minidbx_store_info *out);

/* ---- streams (s3_stream.c) ---- */

int s3_be_writer_open(minidbx_backend *be, minidbx_backend_writer **out);
int s3_be_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                      uint64_t *out_size);
/* Hash the object at key as it streams in (bounded memory): *got its id,
 * *version (may be NULL) which bytes the GET read. */
int s3_hash_object(struct s3_backend *sb, const char *key, minidbx_id *got, uint64_t *size,
                   struct s3_version *version);
/* Abort every multipart upload under tmp/ started before before_ns;
 * *count (may be NULL) gets how many there were, cb hears each. */
int s3_abort_uploads(struct s3_backend *sb, int64_t before_ns, bool abort, uint64_t *count,
                     minidbx_problem_cb cb, void *ctx);

#endif
