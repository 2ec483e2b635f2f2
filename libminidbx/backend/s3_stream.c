/*
 * s3_stream.c - s3:// writers and readers.
 *
 * A writer keeps one part (part_size, 5 MiB by default) in memory. An
 * object that fits is one PUT at commit, straight to its key. A larger
 * one becomes a multipart upload to tmp/<random> (its key is not known
 * until the last byte is hashed): each full part is sent by a thread of
 * its own, part_threads (4) at a time, so a writer holds at most
 * part_threads + 1 parts. Commit completes the upload, copies tmp/ to the
 * object's key on the engine (CopyObject: no bytes come back) and removes
 * tmp/. Any failure, and abort, stop the upload (AbortMultipartUpload), so
 * the engine keeps no parts; a process killed mid-upload leaves an
 * incomplete upload under tmp/, never an object: verify reports it (TEMP)
 * once it is older than the stale age and removes it with REPAIR.
 *
 * A reader is a HEAD (for the size, and ENOTFOUND) then one streamed GET
 * (remote.h's dbx_remote_stream: bounded memory).
 */
#include "s3.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

/* CopyObject copies at most 5 GiB in one request. */
#define COPY_MAX (5ull << 30)
#define TMP_KEY_SIZE (sizeof "tmp/" + 32)

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
    size_t len;
    uint64_t total;
    char tmp_key[TMP_KEY_SIZE];
    char *upload_id;       /* once a multipart upload is started */
    struct part *slots;    /* part_threads of them, used in turn */
    unsigned next_slot;
    char (*etags)[80];     /* one per part sent */
    size_t parts, etags_cap;
    int failed;
};

/* ---- multipart requests ----------------------------------------------------------- */

static int upload_query(dbx_remote_call *call, const char *part, const char *upload_id)
{
    int rc = dbx_remote_call_query(call, "partNumber", part);
    return rc < 0 ? rc : dbx_remote_call_query(call, "uploadId", upload_id);
}

static int start_upload(struct s3_writer *w)
{
    dbx_remote_call call;
    int rc;

    if ((rc = s3_random_hex(w->tmp_key + 4, 16)) < 0)
        return rc;
    memcpy(w->tmp_key, "tmp/", 4);
    if ((rc = s3_call(w->sb, &call, "POST", w->tmp_key)) == 0 &&
        (rc = dbx_remote_call_query(&call, "uploads", "")) == 0) {
        call.body = "";
        call.content_type = "application/octet-stream";
        rc = s3_expect_ok(w->sb, &call);
    }
    if (rc == 0 && !(w->upload_id = s3_xml_text(call.buf, call.buf_len, "UploadId")))
        rc = minidbx_error_set(MINIDBX_EIO, "POST %s: no UploadId in the reply", call.url);
    free(call.buf);
    return rc;
}

struct etag {
    char *out;
};

static void etag_header(void *ctx, const char *line, size_t len)
{
    struct etag *e = ctx;
    const char *value;
    if (dbx_remote_header_is(line, len, "ETag", &value)) {
        size_t n = len - (size_t)(value - line);
        while (n && (value[n - 1] == '\r' || value[n - 1] == '\n' || value[n - 1] == ' '))
            n--;
        snprintf(e->out, 80, "%.*s", (int)(n < 79 ? n : 79), value);
    }
}

static void *part_main(void *cls)
{
    struct part *p = cls;
    struct s3_writer *w = p->w;
    dbx_remote_call call;
    char number[16];
    struct etag etag = { w->etags[p->number - 1] };

    snprintf(number, sizeof number, "%u", p->number);
    p->rc = s3_call(w->sb, &call, "PUT", w->tmp_key);
    if (p->rc == 0)
        p->rc = upload_query(&call, number, w->upload_id);
    call.body = p->data;
    call.body_size = p->size;
    call.content_type = "application/octet-stream";
    call.header_fn = etag_header;
    call.header_ctx = &etag;
    etag.out[0] = '\0';
    if (p->rc == 0)
        p->rc = s3_expect_ok(w->sb, &call);
    if (p->rc == 0 && !etag.out[0])
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

/* Send w->buf as the next part (in a thread); w->buf becomes a free buffer. */
static int send_part(struct s3_writer *w)
{
    struct part *p = &w->slots[w->next_slot];
    int rc;

    w->next_slot = (w->next_slot + 1) % w->sb->part_threads;
    if ((rc = part_join(p)) < 0)
        return rc;
    if (dbx_grow(&w->etags, &w->etags_cap, w->parts + 1, sizeof *w->etags, 64) < 0)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if (!p->data && !(p->data = malloc(w->sb->part_size)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    /* swap: the full buffer goes out, the slot's old one is filled next */
    char *full = w->buf;
    w->buf = p->data;
    p->data = full;
    p->size = w->len;
    p->number = (unsigned)++w->parts;
    p->w = w;
    w->len = 0;
    if ((rc = pthread_create(&p->thread, NULL, part_main, p)) != 0)
        return dbx_error_errno(rc, "s3: starting a part upload");
    p->running = true;
    return 0;
}

static int abort_upload(struct s3_backend *sb, const char *key, const char *upload_id)
{
    dbx_remote_call call;
    int rc = s3_call(sb, &call, "DELETE", key);
    if (rc == 0 && (rc = upload_query(&call, NULL, upload_id)) == 0)
        rc = s3_expect_ok(sb, &call);
    if (rc == MINIDBX_ENOTFOUND) /* gone already */
        rc = 0;
    free(call.buf);
    return rc;
}

static int complete_upload(struct s3_writer *w)
{
    dbx_remote_call call;
    size_t size = 128 + w->parts * 160, len = 0;
    char *body = malloc(size);
    int rc;

    if (!body)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    len += (size_t)snprintf(body + len, size - len, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < w->parts; i++)
        len += (size_t)snprintf(body + len, size - len,
                                "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
                                w->etags[i]);
    snprintf(body + len, size - len, "</CompleteMultipartUpload>");
    if ((rc = s3_call(w->sb, &call, "POST", w->tmp_key)) == 0 &&
        (rc = upload_query(&call, NULL, w->upload_id)) == 0) {
        call.body = body;
        call.body_size = strlen(body);
        call.content_type = "application/xml";
        /* long_running: the engine assembles the parts before it answers */
        call.long_running = true;
        if ((rc = s3_expect_ok(w->sb, &call)) == 0)
            rc = s3_body_error(w->sb, &call);
    }
    free(call.buf);
    free(body);
    return rc;
}

/* CopyObject tmp/ -> the object's key, on the engine. */
static int copy_to(struct s3_writer *w, const char *key)
{
    dbx_remote_call call;
    char source[S3_KEY_MAX + 64], path[S3_KEY_MAX];
    int rc;

    if (w->total > COPY_MAX)
        return minidbx_error_set(MINIDBX_ETOOBIG, "s3: objects over 5 GiB cannot be copied to "
                                 "their key in one request (not supported yet)");
    if ((rc = s3_key_path(w->sb, w->tmp_key, path, sizeof path)) < 0)
        return rc;
    /* path is "/KEY" under the bucket's URL: the source is "/BUCKET/KEY" */
    snprintf(source, sizeof source, "x-amz-copy-source: /%s%s", w->sb->bucket, path);
    if ((rc = s3_call(w->sb, &call, "PUT", key)) == 0) {
        call.body = "";
        call.extra_headers[0] = source;
        call.long_running = true;
        if ((rc = s3_expect_ok(w->sb, &call)) == 0)
            rc = s3_body_error(w->sb, &call);
    }
    free(call.buf);
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
    free(w->etags);
    free(w->upload_id);
    free(w);
}

/* Stop the upload, if one was started: no parts stay behind. */
static void writer_stop(struct s3_writer *w)
{
    if (w->upload_id) {
        join_all(w);
        /* keep the caller's message: this is cleanup */
        char saved[512];
        snprintf(saved, sizeof saved, "%s", minidbx_errmsg(NULL));
        abort_upload(w->sb, w->tmp_key, w->upload_id);
        minidbx_error_set(0, "%s", saved);
    }
}

static int writer_write(minidbx_backend_writer *bw, const void *data, size_t size)
{
    struct s3_writer *w = (struct s3_writer *)bw;
    const char *p = data;
    int rc = 0;

    if (w->failed)
        return minidbx_error_set(w->failed, "s3 writer: an earlier write failed");
    while (size > 0 && rc == 0) {
        if (w->len == w->sb->part_size && (rc = (w->upload_id ? 0 : start_upload(w))) == 0)
            rc = send_part(w);
        size_t n = w->sb->part_size - w->len < size ? w->sb->part_size - w->len : size;
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

    if (rc == 0 && !w->upload_id) {
        /* one part or less: one PUT, hashed and checked by the engine */
        rc = s3_put_object(w->sb, id, w->buf, w->len, created);
    } else if (rc == 0) {
        if (created)
            *created = -1;
        s3_object_key(id, key);
        if ((rc = send_part(w)) == 0 && (rc = join_all(w)) == 0 && (rc = complete_upload(w)) == 0) {
            free(w->upload_id); /* complete: nothing to abort now */
            w->upload_id = NULL;
            rc = copy_to(w, key);
            int removed = s3_delete_key(w->sb, w->tmp_key);
            if (rc == 0)
                rc = removed;
        }
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
        w->buf = malloc(sb->part_size);
        w->slots = calloc(sb->part_threads, sizeof *w->slots);
    }
    if (!w || !w->buf || !w->slots) {
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

/* HEAD the key: its size, and ENOTFOUND if it is not there; its path. */
static int locate(struct s3_backend *sb, const char *key, uint64_t *size, char path[S3_KEY_MAX])
{
    int rc = s3_head(sb, key, size, NULL);

    if (rc == 0)
        return minidbx_error_set(MINIDBX_ENOTFOUND, "%s%s: no such object in %s", sb->prefix, key,
                                 sb->location);
    return rc < 0 ? rc : s3_key_path(sb, key, path, S3_KEY_MAX);
}

int s3_be_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                      uint64_t *out_size)
{
    struct s3_backend *sb = s3_of(be);
    char key[S3_ID_KEY_SIZE], path[S3_KEY_MAX];
    int rc;

    s3_object_key(id, key);
    if ((rc = locate(sb, key, out_size, path)) == 0)
        rc = dbx_remote_reader_open(&sb->remote, path, NULL, *out_size, out);
    return rc;
}

int s3_hash_object(struct s3_backend *sb, const char *key, minidbx_id *got, uint64_t *size)
{
    dbx_remote_stream stream;
    dbx_hasher *hasher = NULL;
    char buf[65536];
    size_t n = 0;
    int rc;
    char path[S3_KEY_MAX];

    dbx_remote_stream_init(&stream);
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
                char key[S3_KEY_MAX], id[256], detail[S3_KEY_MAX + 64];
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
                    snprintf(key, sizeof key, "%s", (const char *)k + prefix_len);
                    snprintf(id, sizeof id, "%s", (const char *)u);
                    if (abort)
                        rc = abort_upload(sb, key, id);
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
