/*
 * s3_stream.c - s3:// writers and readers.
 *
 * A writer keeps one part (part_size, 5 MiB by default) in memory. An
 * object that fits is one PUT at commit, straight to its key. A larger
 * one becomes a multipart upload to tmp/<random> (its key is not known
 * until the last byte is hashed): each full part is sent by a thread of
 * its own, part_threads (2) at a time, so a writer holds at most
 * part_threads + 1 parts. Commit completes the upload, copies tmp/ to the
 * object's key on the engine (CopyObject, or UploadPartCopy in parts over
 * 5 GiB: no bytes come back) and removes tmp/. Any failure, and abort, stop the upload (AbortMultipartUpload), so
 * the engine keeps no parts; a process killed mid-upload leaves an
 * incomplete upload under tmp/, never an object: verify reports it (TEMP)
 * once it is older than the stale age and removes it with REPAIR.
 *
 * A reader fetches in ranges (remote.h: dbx_remote_reader_open, range_size;
 * bounded memory), its size from the first reply, its bytes hashed as they
 * arrive.
 */
#include "s3.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#define TMP_BASE_SIZE (sizeof "tmp/" + 32)            /* tmp/<random> */
#define SEGMENT_KEY_SIZE (TMP_BASE_SIZE + 24)         /* tmp/<random>.<segment> */

/* A multipart upload to key: its id and the ETag of each part sent. */
struct upload {
    char key[S3_KEY_MAX];
    char *id;              /* NULL until started, and once completed */
    char (*etags)[S3_ETAG_SIZE];
    size_t parts, cap;
};

struct part {
    struct s3_writer *w;
    pthread_t thread;
    bool running;
    unsigned number;       /* 1.. */
    char *data;
    size_t size;
    int rc;
    char error[512];
};

struct s3_writer {
    minidbx_backend_writer base;
    struct s3_backend *sb;
    char *buf;             /* the part being filled */
    size_t len, cap;       /* cap grows to part_size: a small object takes little */
    uint64_t total;
    /* Once more than a part came: an upload to tmp/<random>.0, and from
     * every copy_max bytes on (what one copy request may move) one to
     * tmp/<random>.1, .2, ...: the segments, each copied whole at commit. */
    char tmp_base[TMP_BASE_SIZE];
    struct upload up;      /* the current segment's */
    uint64_t up_bytes;     /* sent to it */
    size_t segments;       /* completed ones: tmp_base.0 .. */
    struct part *slots;    /* part_threads of them, used in turn */
    unsigned next_slot;
    int failed;
};

/* ---- multipart requests ----------------------------------------------------------- */

static int upload_query(dbx_remote_call *call, const char *part, const char *upload_id)
{
    int rc = dbx_remote_call_query(call, "partNumber", part);
    return rc < 0 ? rc : dbx_remote_call_query(call, "uploadId", upload_id);
}

static int upload_start(struct s3_backend *sb, struct upload *u, const char *key)
{
    dbx_remote_call call;
    int rc;

    snprintf(u->key, sizeof u->key, "%s", key);
    if ((rc = s3_call(sb, &call, "POST", u->key)) == 0 &&
        (rc = dbx_remote_call_query(&call, "uploads", "")) == 0) {
        call.body = "";
        call.content_type = "application/octet-stream";
        rc = s3_expect_ok(sb, &call);
    }
    if (rc == 0 && !(u->id = s3_xml_text(call.buf, call.buf_len, "UploadId")))
        rc = minidbx_error_set(MINIDBX_EIO, "POST %s: no UploadId in the reply", call.url);
    free(call.buf);
    return rc;
}

/* Room for the next part's ETag: its number (1..), or an error. */
static int upload_next_part(struct upload *u)
{
    if (dbx_grow(&u->etags, &u->cap, u->parts + 1, sizeof *u->etags, 64) < 0)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    u->etags[u->parts][0] = '\0';
    return (int)++u->parts;
}

static int upload_abort(struct s3_backend *sb, struct upload *u)
{
    dbx_remote_call call;
    if (!u->id)
        return 0;
    int rc = s3_call(sb, &call, "DELETE", u->key);
    if (rc == 0 && (rc = upload_query(&call, NULL, u->id)) == 0)
        rc = s3_expect_ok(sb, &call);
    if (rc == MINIDBX_ENOTFOUND) /* gone already */
        rc = 0;
    free(call.buf);
    return rc;
}

static void upload_free(struct upload *u)
{
    free(u->id);
    free(u->etags);
}

static void etag_header(void *ctx, const char *line, size_t len)
{
    s3_header_value(line, len, "ETag", ctx, S3_ETAG_SIZE);
}

static void *part_main(void *cls)
{
    struct part *p = cls;
    struct s3_writer *w = p->w;
    dbx_remote_call call;
    char number[16];
    char *etag = w->up.etags[p->number - 1];

    snprintf(number, sizeof number, "%u", p->number);
    p->rc = s3_call(w->sb, &call, "PUT", w->up.key);
    if (p->rc == 0)
        p->rc = upload_query(&call, number, w->up.id);
    call.body = p->data;
    call.body_size = p->size;
    call.content_type = "application/octet-stream";
    call.header_fn = etag_header;
    call.header_ctx = etag;
    etag[0] = '\0';
    if (p->rc == 0)
        p->rc = s3_expect_ok(w->sb, &call);
    if (p->rc == 0 && !etag[0])
        p->rc = minidbx_error_set(MINIDBX_EIO, "PUT %s: no ETag in the reply", call.url);
    if (p->rc < 0)
        snprintf(p->error, sizeof p->error, "%s", minidbx_errmsg(NULL));
    free(call.buf);
    return NULL;
}

/* Wait for a part's thread; its error, carried to this thread. */
static int part_join(struct part *p)
{
    if (!p->running)
        return 0;
    pthread_join(p->thread, NULL);
    p->running = false;
    return p->rc < 0 ? minidbx_error_set(p->rc, "%s", p->error) : 0;
}

static int join_all(struct s3_writer *w)
{
    int rc = 0;
    for (unsigned i = 0; i < w->sb->part_threads; i++) {
        int got = part_join(&w->slots[i]);
        if (rc == 0)
            rc = got;
    }
    return rc;
}

/* Complete u; its id is gone then (nothing left to abort). */
static int upload_complete(struct s3_backend *sb, struct upload *u)
{
    dbx_remote_call call;
    size_t size = 128 + u->parts * (S3_ETAG_SIZE + 64), len = 0;
    char *body = malloc(size);
    int rc;

    if (!body)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    len += (size_t)snprintf(body + len, size - len, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < u->parts; i++)
        len += (size_t)snprintf(body + len, size - len,
                                "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
                                u->etags[i]);
    snprintf(body + len, size - len, "</CompleteMultipartUpload>");
    if ((rc = s3_call(sb, &call, "POST", u->key)) == 0 && (rc = upload_query(&call, NULL, u->id)) == 0) {
        call.body = body;
        call.body_size = strlen(body);
        call.content_type = "application/xml";
        /* long_running: the engine assembles the parts before it answers */
        call.long_running = true;
        if ((rc = s3_expect_ok(sb, &call)) == 0)
            rc = s3_body_error(sb, &call);
    }
    if (rc == 0) {
        free(u->id);
        u->id = NULL;
    }
    free(call.buf);
    free(body);
    return rc;
}

static void segment_key(const struct s3_writer *w, size_t i, char out[SEGMENT_KEY_SIZE])
{
    snprintf(out, SEGMENT_KEY_SIZE, "%s.%zu", w->tmp_base, i);
}

static int start_segment(struct s3_writer *w)
{
    char key[SEGMENT_KEY_SIZE];
    int rc = 0;

    if (!w->tmp_base[0]) {
        memcpy(w->tmp_base, "tmp/", 4);
        rc = s3_random_hex(w->tmp_base + 4, 16);
    }
    segment_key(w, w->segments, key);
    w->up_bytes = 0;
    return rc < 0 ? rc : upload_start(w->sb, &w->up, key);
}

/* Complete the current segment (its parts all sent). */
static int end_segment(struct s3_writer *w)
{
    int rc = join_all(w);
    if (rc == 0 && (rc = upload_complete(w->sb, &w->up)) == 0) {
        w->segments++;
        upload_free(&w->up);
        memset(&w->up, 0, sizeof w->up);
    }
    return rc;
}

/* Send w->buf as the next part (in a thread); w->buf becomes a free buffer. */
static int send_part(struct s3_writer *w)
{
    struct part *p = &w->slots[w->next_slot];
    int rc;

    if (w->up.id && w->up_bytes + w->len > w->sb->copy_max && (rc = end_segment(w)) < 0)
        return rc;
    if (!w->up.id && (rc = start_segment(w)) < 0)
        return rc;
    w->next_slot = (w->next_slot + 1) % w->sb->part_threads;
    if ((rc = part_join(p)) < 0)
        return rc;
    if (!p->data && !(p->data = malloc(w->sb->part_size)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    int number = upload_next_part(&w->up);
    if (number < 0)
        return number;
    /* swap: the full buffer goes out, the slot's old one is filled next */
    char *full = w->buf;
    w->buf = p->data;
    w->cap = w->sb->part_size;
    p->data = full;
    p->size = w->len;
    p->number = (unsigned)number;
    p->w = w;
    w->up_bytes += w->len;
    w->len = 0;
    if ((rc = dbx_thread_start(&p->thread, part_main, p)) != 0)
        return dbx_error_errno(rc, "s3: starting a part upload");
    p->running = true;
    return 0;
}

/* "x-amz-copy-source: /BUCKET/<prefix + key, encoded>" */
static int copy_source(struct s3_backend *sb, const char *key, char out[S3_KEY_MAX + 64])
{
    char path[S3_KEY_MAX];
    int rc = s3_key_path(sb, key, path, sizeof path);
    /* path is "/KEY" under the bucket's URL */
    if (rc == 0)
        snprintf(out, S3_KEY_MAX + 64, "x-amz-copy-source: /%s%s", sb->bucket, path);
    return rc;
}

/* PUT to key (with query parts, for an upload's part) copying source whole,
 * on the engine. (No x-amz-copy-source-range: curl 7.88 signs it out of
 * order, so ranges are never asked for; segments are copied whole.) The
 * reply's ETag into etag (may be NULL). */
static int copy_request(struct s3_backend *sb, const char *key, const char *number,
                        const char *upload_id, const char *source_key, char *etag)
{
    dbx_remote_call call;
    char source[S3_KEY_MAX + 64];
    int rc;

    dbx_remote_call_init(&call, "PUT");
    if ((rc = copy_source(sb, source_key, source)) == 0 && (rc = s3_call(sb, &call, "PUT", key)) == 0 &&
        (rc = upload_query(&call, number, upload_id)) == 0) {
        call.body = "";
        call.extra_headers[0] = source;
        call.long_running = true; /* the engine copies before it answers */
        if ((rc = s3_expect_ok(sb, &call)) == 0)
            rc = s3_body_error(sb, &call);
        char *got = rc == 0 && etag ? s3_xml_text(call.buf, call.buf_len, "ETag") : NULL;
        if (rc == 0 && etag && !got)
            rc = minidbx_error_set(MINIDBX_EIO, "PUT %s: no ETag in the reply", call.url);
        if (got)
            snprintf(etag, S3_ETAG_SIZE, "%s", got);
        free(got);
    }
    free(call.buf);
    return rc;
}

/* The segments -> the object's key: one CopyObject, or an upload whose
 * parts are the segments (UploadPartCopy). */
static int copy_to(struct s3_writer *w, const char *key)
{
    struct s3_backend *sb = w->sb;
    char segment[SEGMENT_KEY_SIZE];

    if (w->segments == 1) {
        segment_key(w, 0, segment);
        return copy_request(sb, key, NULL, NULL, segment, NULL);
    }
    struct upload u = { .id = NULL };
    int rc = upload_start(sb, &u, key);
    for (size_t i = 0; rc == 0 && i < w->segments; i++) {
        char number[16];
        int part = upload_next_part(&u);
        if (part < 0) {
            rc = part;
            break;
        }
        snprintf(number, sizeof number, "%d", part);
        segment_key(w, i, segment);
        rc = copy_request(sb, key, number, u.id, segment, u.etags[part - 1]);
    }
    if (rc == 0)
        rc = upload_complete(sb, &u);
    if (rc < 0)
        upload_abort(sb, &u);
    upload_free(&u);
    return rc;
}

/* ---- the writer ---------------------------------------------------------------------- */

static void writer_free(struct s3_writer *w)
{
    if (w->slots)
        for (unsigned i = 0; i < w->sb->part_threads; i++)
            free(w->slots[i].data);
    free(w->slots);
    free(w->buf);
    upload_free(&w->up);
    free(w);
}

/* Remove the completed segments. */
static int remove_segments(struct s3_writer *w)
{
    char segment[SEGMENT_KEY_SIZE];
    int rc = 0;
    for (size_t i = 0; i < w->segments; i++) {
        segment_key(w, i, segment);
        int got = s3_delete_key(w->sb, segment);
        if (rc == 0)
            rc = got;
    }
    return rc;
}

/* Stop the upload, if one was started, and remove the segments: no parts
 * stay behind. */
static void writer_stop(struct s3_writer *w)
{
    /* keep the caller's message: this is cleanup */
    char saved[512];
    snprintf(saved, sizeof saved, "%s", minidbx_errmsg(NULL));
    join_all(w);
    upload_abort(w->sb, &w->up);
    remove_segments(w);
    minidbx_error_set(0, "%s", saved);
}

/* Room for need bytes in w->buf: doubling from 64 KiB, at most part_size. */
static int buf_grow(struct s3_writer *w, size_t need)
{
    size_t cap = w->cap ? w->cap : 65536;
    while (cap < need)
        cap *= 2;
    if (cap > w->sb->part_size)
        cap = w->sb->part_size;
    char *grown = realloc(w->buf, cap);
    if (!grown)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    w->buf = grown;
    w->cap = cap;
    return 0;
}

static int writer_write(minidbx_backend_writer *bw, const void *data, size_t size)
{
    struct s3_writer *w = (struct s3_writer *)bw;
    const char *p = data;
    int rc = 0;

    if (w->failed)
        return minidbx_error_set(w->failed, "s3 writer: an earlier write failed");
    while (size > 0 && rc == 0) {
        if (w->len == w->sb->part_size)
            rc = send_part(w);
        size_t n = w->sb->part_size - w->len < size ? w->sb->part_size - w->len : size;
        if (rc == 0 && w->len + n > w->cap)
            rc = buf_grow(w, w->len + n);
        if (rc == 0) {
            memcpy(w->buf + w->len, p, n);
            w->len += n;
            w->total += n;
            p += n;
            size -= n;
        }
    }
    if (rc < 0)
        w->failed = rc;
    return rc;
}

/* *created: exact for one PUT (If-None-Match); -1 (cannot tell) for a
 * multipart upload, whose copy to its key is not conditional. */
static int writer_commit_created(minidbx_backend_writer *bw, const minidbx_id *id, int *created)
{
    struct s3_writer *w = (struct s3_writer *)bw;
    char key[S3_ID_KEY_SIZE];
    int rc = w->failed ? minidbx_error_set(w->failed, "s3 writer: an earlier write failed") : 0;

    if (rc == 0 && !w->up.id) {
        /* one part or less: one PUT, hashed and checked by the engine */
        rc = s3_put_object(w->sb, id, w->buf, w->len, created);
    } else if (rc == 0) {
        if (created)
            *created = -1;
        s3_object_key(id, key);
        if ((rc = send_part(w)) == 0 && (rc = end_segment(w)) == 0)
            rc = copy_to(w, key);
        int removed = rc == 0 ? remove_segments(w) : 0;
        if (rc == 0)
            rc = removed;
    }
    if (rc < 0)
        writer_stop(w);
    writer_free(w);
    return rc;
}

static int writer_commit(minidbx_backend_writer *bw, const minidbx_id *id)
{
    return writer_commit_created(bw, id, NULL);
}

static void writer_abort(minidbx_backend_writer *bw)
{
    struct s3_writer *w = (struct s3_writer *)bw;
    writer_stop(w);
    writer_free(w);
}

int s3_be_writer_open(minidbx_backend *be, minidbx_backend_writer **out)
{
    struct s3_backend *sb = s3_of(be);
    struct s3_writer *w = calloc(1, sizeof *w);

    if (w) {
        w->sb = sb;
        w->slots = calloc(sb->part_threads, sizeof *w->slots);
    }
    if (!w || !w->slots) {
        if (w)
            writer_free(w);
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    }
    w->base.write = writer_write;
    w->base.commit = writer_commit;
    w->base.abort = writer_abort;
    w->base.commit_created = writer_commit_created;
    *out = &w->base;
    return 0;
}

/* ---- the reader ---------------------------------------------------------------------- */

int s3_be_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                      uint64_t *out_size)
{
    struct s3_backend *sb = s3_of(be);
    char key[S3_ID_KEY_SIZE], path[S3_KEY_MAX];
    int rc;

    s3_object_key(id, key);
    /* one request: the size is the GET reply's (a missing key: its 404,
     * ENOTFOUND, at open) */
    *out_size = DBX_REMOTE_SIZE_FROM_REPLY;
    if ((rc = s3_key_path(sb, key, path, S3_KEY_MAX)) == 0)
        rc = dbx_remote_reader_open(&sb->remote, path, NULL, out_size, id, out);
    return rc;
}

/* HEAD the key: its size, and ENOTFOUND if it is not there; its path. */
static int locate(struct s3_backend *sb, const char *key, uint64_t *size, char path[S3_KEY_MAX])
{
    int rc = s3_head(sb, key, size, NULL);

    if (rc == 0)
        return minidbx_error_set(MINIDBX_ENOTFOUND, "%s%s: no such object in %s", sb->prefix, key,
                                 sb->location);
    return rc < 0 ? rc : s3_key_path(sb, key, path, S3_KEY_MAX);
}

int s3_hash_object(struct s3_backend *sb, const char *key, minidbx_id *got, uint64_t *size,
                   struct s3_version *version)
{
    dbx_remote_stream stream;
    dbx_hasher *hasher = NULL;
    char buf[65536];
    size_t n = 0;
    int rc;
    char path[S3_KEY_MAX];

    dbx_remote_stream_init(&stream);
    if (version) {
        *version = (struct s3_version){ "", -1 };
        stream.header_fn = s3_version_header; /* the GET's own: the bytes hashed */
        stream.header_ctx = version;
    }
    if ((rc = dbx_hasher_new(&hasher)) == 0 && (rc = locate(sb, key, size, path)) == 0 &&
        (rc = dbx_remote_stream_start(&sb->remote, &stream, "GET", path, NULL, false)) == 0) {
        uint64_t total = 0;
        do {
            if ((rc = dbx_remote_stream_recv(&stream, buf, sizeof buf, &n)) == 0 && n)
                rc = dbx_hasher_update(hasher, buf, n);
            total += n;
        } while (rc == 0 && n > 0);
        *size = total;
        if (rc == 0)
            rc = dbx_hasher_final(hasher, got);
    }
    dbx_remote_stream_free(&stream);
    dbx_hasher_free(hasher);
    return rc;
}

/* ---- incomplete uploads ------------------------------------------------------------------ */

int s3_abort_uploads(struct s3_backend *sb, int64_t before_ns, bool abort, uint64_t *count,
                     minidbx_problem_cb cb, void *ctx)
{
    char prefix[S3_KEY_MAX];
    size_t prefix_len = strlen(sb->prefix);
    char *marker_key = NULL, *marker_id = NULL;
    bool more = true;
    int rc = 0;

    snprintf(prefix, sizeof prefix, "%stmp/", sb->prefix);
    while (rc == 0 && more) {
        dbx_remote_call call;
        xmlDocPtr doc = NULL;
        if ((rc = s3_call(sb, &call, "GET", NULL)) == 0 &&
            (rc = dbx_remote_call_query(&call, "key-marker", marker_key)) == 0 &&
            (rc = dbx_remote_call_query(&call, "prefix", prefix)) == 0 &&
            (rc = dbx_remote_call_query(&call, "upload-id-marker", marker_id)) == 0 &&
            (rc = dbx_remote_call_query(&call, "uploads", "")) == 0 &&
            (rc = s3_expect_ok(sb, &call)) == 0 &&
            !(doc = call.buf_len < INT32_MAX ? xmlReadMemory(call.buf, (int)call.buf_len, NULL, NULL,
                                                             XML_PARSE_NONET | XML_PARSE_NOERROR |
                                                                 XML_PARSE_NOWARNING)
                                             : NULL))
            rc = minidbx_error_set(MINIDBX_EIO, "GET %s: the reply is not XML", call.url);
        xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
        more = false;
        for (xmlNodePtr c = root ? root->children : NULL; rc == 0 && c; c = c->next) {
            if (c->type != XML_ELEMENT_NODE)
                continue;
            xmlChar *text = xmlNodeGetContent(c);
            const char *name = (const char *)c->name, *value = text ? (const char *)text : "";
            if (strcmp(name, "IsTruncated") == 0) {
                more = strcmp(value, "true") == 0;
            } else if (strcmp(name, "NextKeyMarker") == 0) {
                free(marker_key);
                marker_key = strdup(value);
            } else if (strcmp(name, "NextUploadIdMarker") == 0) {
                free(marker_id);
                marker_id = strdup(value);
            } else if (strcmp(name, "Upload") == 0) {
                char id[256], detail[S3_KEY_MAX + 64];
                xmlChar *k = NULL, *u = NULL, *t = NULL;
                for (xmlNodePtr f = c->children; f; f = f->next) {
                    if (f->type != XML_ELEMENT_NODE)
                        continue;
                    xmlChar **slot = strcmp((const char *)f->name, "Key") == 0 ? &k
                                     : strcmp((const char *)f->name, "UploadId") == 0 ? &u
                                     : strcmp((const char *)f->name, "Initiated") == 0 ? &t : NULL;
                    if (slot && !*slot)
                        *slot = xmlNodeGetContent(f);
                }
                int64_t initiated = s3_parse_time((const char *)t);
                if (k && u && initiated >= 0 && initiated <= before_ns &&
                    strncmp((const char *)k, sb->prefix, prefix_len) == 0) {
                    struct upload found = { .id = id };
                    snprintf(found.key, sizeof found.key, "%s", (const char *)k + prefix_len);
                    snprintf(id, sizeof id, "%s", (const char *)u);
                    if (abort)
                        rc = upload_abort(sb, &found);
                    snprintf(detail, sizeof detail, "%s: an incomplete multipart upload (%s)",
                             (const char *)k, id);
                    if (rc == 0 && count)
                        ++*count;
                    if (rc == 0 && cb)
                        cb(ctx, MINIDBX_PROBLEM_TEMP, NULL, detail, abort);
                }
                xmlFree(k);
                xmlFree(u);
                xmlFree(t);
            }
            xmlFree(text);
        }
        if (more && (!marker_key || !marker_id))
            rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        xmlFreeDoc(doc);
        free(call.buf);
    }
    free(marker_key);
    free(marker_id);
    return rc;
}
