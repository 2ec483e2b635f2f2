/*
 * http.c - the http:// (and https://) backend: a client of `mdbx serve`
 * over libcurl.
 *
 * Every call is one request of the node's /v1 API, made through the libcurl
 * layer that the remote backends share (remote.h: connection reuse,
 * timeouts, retries, streams, error text); this file says what to ask and
 * reads the JSON answers.
 * The library core verifies what get and readers hand out against the id,
 * so a lying node gives MINIDBX_ECORRUPT; this file only moves bytes.
 *
 * Verify and gc run on the node (POST /v1/verify, POST /v1/gc), which
 * answers with the report and the problems as JSON. Batches cannot share a
 * transaction with the node: see "batches" below.
 *
 * Streams move in bounded memory: a writer is a PUT whose chunked body
 * minidbx_writer_write pushes, a reader a GET whose body
 * minidbx_reader_read pulls, both through a dbx_remote_stream.
 */
#include "remote.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* The node answers at most this many entries per list request. */
#define PAGE_MAX 10000
#define MISSING_BATCH 10000

struct http_backend {
    minidbx_backend base;
    dbx_remote remote; /* the libcurl layer (remote.h) */
};

/* call->url = the node's URL + path (+ the id, in hex). */
static int call_url(struct http_backend *hb, dbx_remote_call *call, const char *path,
                    const minidbx_id *id)
{
    char hex[MINIDBX_ID_HEX_SIZE] = "";
    if (id)
        minidbx_id_format(id, hex);
    return dbx_remote_call_url(&hb->remote, call, path, id ? hex : NULL);
}

/* ---- JSON replies ---------------------------------------------------------------
 * json-c, not cJSON: it reads integers as integers, so sizes and ns times
 * past 2^53 come through exactly (cJSON would round them through a double).
 */

/* The whole of text as one JSON value, or NULL. */
static json_object *json_parse(const char *text, size_t len)
{
    json_tokener *tok = text && len <= INT32_MAX ? json_tokener_new() : NULL;
    if (!tok)
        return NULL;
    json_object *json = json_tokener_parse_ex(tok, text, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len) {
        json_object_put(json);
        json = NULL;
    }
    json_tokener_free(tok);
    return json;
}

/* obj[key], or NULL when obj is no object, key is absent or its value null. */
static json_object *json_get(json_object *obj, const char *key)
{
    json_object *item = NULL;
    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, key, &item))
        return NULL;
    return item;
}

static const char *json_string(json_object *obj, const char *key)
{
    json_object *item = json_get(obj, key);
    return json_object_is_type(item, json_type_string) ? json_object_get_string(item) : NULL;
}

static bool json_true(json_object *obj, const char *key)
{
    json_object *item = json_get(obj, key);
    return json_object_is_type(item, json_type_boolean) && json_object_get_boolean(item);
}

static int json_lacks(const char *key)
{
    return minidbx_error_set(MINIDBX_EIO, "http: the node's reply lacks the integer '%s'", key);
}

/* An integer member, exactly (errno tells json-c's overflow). */
static int u64_item(json_object *obj, const char *key, uint64_t *out)
{
    json_object *item = json_get(obj, key);
    errno = 0;
    if (!json_object_is_type(item, json_type_int) || json_object_get_int64(item) < 0)
        return json_lacks(key);
    uint64_t value = json_object_get_uint64(item);
    if (errno)
        return json_lacks(key);
    *out = value;
    return 0;
}

static int i64_item(json_object *obj, const char *key, int64_t *out)
{
    json_object *item = json_get(obj, key);
    errno = 0;
    if (!json_object_is_type(item, json_type_int))
        return json_lacks(key);
    int64_t value = json_object_get_int64(item);
    if (errno)
        return json_lacks(key);
    *out = value;
    return 0;
}

/* The node's message in an error reply ({"error": ...}), for remote.c. */
static char *error_message(const char *body, size_t len)
{
    json_object *json = json_parse(body, len);
    const char *message = json_string(json, "error");
    char *copy = message ? strdup(message) : NULL;
    json_object_put(json);
    return copy;
}

static int status_error(struct http_backend *hb, const dbx_remote_call *call)
{
    return dbx_remote_status_error(&hb->remote, call);
}

static int http_expect_ok(struct http_backend *hb, dbx_remote_call *call)
{
    return dbx_remote_expect_ok(&hb->remote, call);
}

static json_object *reply_json(dbx_remote_call *call, int *rc)
{
    json_object *json = json_parse(call->buf, call->buf_len);
    if (!json)
        *rc = minidbx_error_set(MINIDBX_EIO, "%s %s: the reply is not JSON", call->method, call->url);
    return json;
}

/* Perform, accept only a 2xx reply, and parse it; NULL with *rc set if not. */
static json_object *http_expect_json(struct http_backend *hb, dbx_remote_call *call, int *rc)
{
    if ((*rc = http_expect_ok(hb, call)) < 0)
        return NULL;
    return reply_json(call, rc);
}

static struct http_backend *http_of(minidbx_backend *be)
{
    return (struct http_backend *)be;
}

/* ---- objects ------------------------------------------------------------------ */

static int http_put(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size)
{
    dbx_remote_call call;
    int rc;

    dbx_remote_call_init(&call, "PUT");
    call.body = data ? data : "";
    call.body_size = size;
    call.content_type = "application/octet-stream";
    if ((rc = call_url(http_of(be), &call, "/v1/objects/", id)) == 0)
        rc = http_expect_ok(http_of(be), &call);
    free(call.buf);
    return rc;
}

static int http_get(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size)
{
    dbx_remote_call call;
    int rc;

    dbx_remote_call_init(&call, "GET");
    if ((rc = call_url(http_of(be), &call, "/v1/objects/", id)) == 0)
        rc = dbx_remote_get_object(&http_of(be)->remote, &call, id);
    if (rc < 0)
        return rc;
    *out_data = call.buf;
    *out_size = call.buf_len;
    return 0;
}

/* The object headers of a HEAD reply, into the minidbx_object_info ctx. */
static void object_header(void *ctx, const char *line, size_t len)
{
    minidbx_object_info *info = ctx;
    const char *value;

    if (dbx_remote_header_is(line, len, "X-Minidbx-Created-Ns", &value))
        info->created_ns = strtoll(value, NULL, 10);
    else if (dbx_remote_header_is(line, len, "X-Minidbx-Refs", &value))
        info->refs = strtoull(value, NULL, 10);
    else if (dbx_remote_header_is(line, len, "X-Minidbx-Storage", &value))
        info->flags = strncmp(value, "inline", 6) == 0 ? MINIDBX_OBJECT_INLINE : 0;
}

/* HEAD the object; its headers go to *info when info is not NULL. */
static int http_head(struct http_backend *hb, const minidbx_id *id, dbx_remote_call *call,
                     minidbx_object_info *info)
{
    dbx_remote_call_init(call, "HEAD");
    if (info) {
        memset(info, 0, sizeof *info);
        call->header_fn = object_header;
        call->header_ctx = info;
    }
    int rc = call_url(hb, call, "/v1/objects/", id);
    return rc < 0 ? rc : dbx_remote_perform(&hb->remote, call);
}

static int http_exists(minidbx_backend *be, const minidbx_id *id)
{
    dbx_remote_call call;
    int rc = http_head(http_of(be), id, &call, NULL);

    if (rc == 0)
        rc = call.status == 200 ? 1 : call.status == 404 ? 0 : status_error(http_of(be), &call);
    /* a copy the node cannot serve intact (its blob file short, or not a
     * regular file) is not there, as a local store's exists says */
    if (rc == MINIDBX_ECORRUPT)
        rc = 0;
    free(call.buf);
    return rc;
}

static int http_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out)
{
    dbx_remote_call call;
    minidbx_object_info info;
    int rc = http_head(http_of(be), id, &call, &info);

    if (rc == 0 && call.status != 200)
        rc = status_error(http_of(be), &call);
    if (rc == 0) {
        info.id = *id;
        info.size = call.content_length;
        *out = info;
    }
    free(call.buf);
    return rc;
}

static int http_del(minidbx_backend *be, const minidbx_id *id, unsigned flags)
{
    dbx_remote_call call;
    int rc;

    dbx_remote_call_init(&call, "DELETE");
    if ((rc = call_url(http_of(be), &call, "/v1/objects/", id)) == 0 &&
        (rc = dbx_remote_call_query(&call, "cascade", flags & MINIDBX_DELETE_CASCADE ? "1" : NULL)) == 0)
        rc = http_expect_ok(http_of(be), &call);
    free(call.buf);
    return rc;
}

static int parse_id_item(json_object *item, minidbx_id *out)
{
    const char *hex = json_object_is_type(item, json_type_string) ? json_object_get_string(item)
                                                                  : NULL;
    if (minidbx_id_parse(out, hex) < 0)
        return minidbx_error_set(MINIDBX_EIO, "http: the node sent a bad id");
    return 0;
}

/* One batch of the missing query. */
static int missing_batch(struct http_backend *hb, const minidbx_id *ids, size_t count,
                         minidbx_id *out, size_t *out_count)
{
    dbx_remote_call call;
    json_object *in = json_object_new_array_ext((int)count), *reply = NULL;
    const char *body = NULL;
    int rc = 0;

    for (size_t i = 0; in && i < count; i++) {
        char hex[MINIDBX_ID_HEX_SIZE];
        minidbx_id_format(&ids[i], hex);
        json_object *item = json_object_new_string(hex);
        if (!item || json_object_array_add(in, item) < 0) {
            json_object_put(item);
            json_object_put(in);
            in = NULL;
        }
    }
    dbx_remote_call_init(&call, "POST");
    if (!in || !(body = json_object_to_json_string_ext(in, JSON_C_TO_STRING_PLAIN))) {
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        goto out;
    }
    call.body = body;
    call.body_size = strlen(body);
    call.content_type = "application/json";
    if ((rc = call_url(hb, &call, "/v1/missing", NULL)) < 0 ||
        !(reply = http_expect_json(hb, &call, &rc)))
        goto out;
    json_object *missing = json_get(reply, "missing");
    size_t listed = json_object_is_type(missing, json_type_array) ? json_object_array_length(missing) : 0;
    if (listed > count) {
        rc = minidbx_error_set(MINIDBX_EIO, "http: the node listed more missing ids than asked");
        goto out;
    }
    /* The answer must be a subsequence of the question (input order): a node
     * that names an id it was not asked about is not believed. */
    for (size_t i = 0, next = 0; i < listed; i++, next++) {
        minidbx_id *got = &out[*out_count];
        if ((rc = parse_id_item(json_object_array_get_idx(missing, i), got)) < 0)
            goto out;
        while (next < count && !minidbx_id_equal(&ids[next], got))
            next++;
        if (next == count) {
            rc = minidbx_error_set(MINIDBX_EIO, "http: the node listed a missing id it was not asked "
                                                "about (or out of order)");
            goto out;
        }
        ++*out_count;
    }
out:
    json_object_put(in); /* and the body it printed */
    json_object_put(reply);
    free(call.buf);
    return rc;
}

static int http_missing(minidbx_backend *be, const minidbx_id *ids, size_t count,
                        minidbx_id *out_missing, size_t *out_count)
{
    size_t found = 0;
    minidbx_id *batch_out = malloc(MISSING_BATCH * sizeof *batch_out);
    int rc = batch_out ? 0 : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");

    /* out_missing may alias ids: each batch's answer goes aside first */
    for (size_t done = 0; rc == 0 && done < count; done += MISSING_BATCH) {
        size_t n = count - done < MISSING_BATCH ? count - done : MISSING_BATCH, got = 0;
        if ((rc = missing_batch(http_of(be), ids + done, n, batch_out, &got)) == 0) {
            memcpy(out_missing + found, batch_out, got * sizeof *batch_out);
            found += got;
        }
    }
    free(batch_out);
    if (rc == 0)
        *out_count = found;
    return rc;
}

static int object_item(json_object *obj, minidbx_object_info *out)
{
    int rc = parse_id_item(json_get(obj, "id"), &out->id);
    if (rc == 0)
        rc = u64_item(obj, "size", &out->size);
    if (rc == 0)
        rc = u64_item(obj, "refs", &out->refs);
    if (rc == 0)
        rc = i64_item(obj, "created_ns", &out->created_ns);
    out->flags = json_true(obj, "inline") ? MINIDBX_OBJECT_INLINE : 0;
    return rc;
}

/* Fetch one page of a listing into out[*count...]; *more is false at the end. */
typedef int (*page_item_fn)(json_object *item, void *out, size_t index);

static int fetch_page(struct http_backend *hb, dbx_remote_call *call, const char *key,
                      page_item_fn fn, void *out, size_t *count, size_t page, bool *more)
{
    json_object *reply = NULL;
    int rc;
    size_t got = 0;

    if (!(reply = http_expect_json(hb, call, &rc)))
        goto out;
    json_object *array = json_get(reply, key);
    if (!json_object_is_type(array, json_type_array) || json_object_array_length(array) > page) {
        rc = minidbx_error_set(MINIDBX_EIO, "http: the node's listing is malformed");
        goto out;
    }
    for (size_t i = 0; i < json_object_array_length(array); i++) {
        if ((rc = fn(json_object_array_get_idx(array, i), out, *count + got)) < 0)
            goto out;
        got++;
    }
    *count += got;
    *more = got == page;
out:
    json_object_put(reply);
    free(call->buf);
    call->buf = NULL;
    return rc;
}

static int list_item(json_object *item, void *out, size_t index)
{
    return object_item(item, (minidbx_object_info *)out + index);
}

static char *format_limit(char text[24], size_t capacity, size_t count)
{
    size_t page = capacity - count < PAGE_MAX ? capacity - count : PAGE_MAX;
    snprintf(text, 24, "%zu", page);
    return text;
}

static int http_list(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
                     size_t capacity, size_t *out_count)
{
    struct http_backend *hb = http_of(be);
    dbx_remote_call call;
    char hex[MINIDBX_ID_HEX_SIZE], limit[24];
    bool more = true;
    size_t count = 0;
    int rc = 0;

    while (rc == 0 && more && count < capacity) {
        const minidbx_id *cursor = count ? &out[count - 1].id : after;
        if (cursor)
            minidbx_id_format(cursor, hex);
        dbx_remote_call_init(&call, "GET");
        format_limit(limit, capacity, count);
        if ((rc = call_url(hb, &call, "/v1/objects", NULL)) == 0 &&
            (rc = dbx_remote_call_query(&call, "after", cursor ? hex : NULL)) == 0 &&
            (rc = dbx_remote_call_query(&call, "limit", limit)) == 0)
            rc = fetch_page(hb, &call, "objects", list_item, out, &count, strtoull(limit, NULL, 10),
                            &more);
    }
    *out_count = count;
    return rc;
}

/* ---- streams ---------------------------------------------------------------------
 * A writer is a PUT whose chunked body it pushes, a reader a GET whose body
 * it pulls, each a dbx_remote_stream (remote.h).
 */

struct http_writer {
    minidbx_backend_writer base;
    dbx_remote_stream stream;
};

static int writer_write(minidbx_backend_writer *bw, const void *data, size_t size)
{
    struct http_writer *w = (struct http_writer *)bw;
    return dbx_remote_stream_send(&w->stream, data, size);
}

static void writer_abort(minidbx_backend_writer *bw);

/* The node answers 201 when its store's commit created the object, 200
 * when it had it. */
static int writer_commit_created(minidbx_backend_writer *bw, const minidbx_id *id, int *created)
{
    struct http_writer *w = (struct http_writer *)bw;
    minidbx_id got;
    json_object *reply = NULL;
    int rc;

    rc = dbx_remote_stream_finish_upload(&w->stream);
    if (rc == 0 && (reply = reply_json(&w->stream.call, &rc)) != NULL &&
        (rc = parse_id_item(json_get(reply, "id"), &got)) == 0 &&
        !minidbx_id_equal(&got, id))
        rc = minidbx_error_set(MINIDBX_ECORRUPT, "PUT %s: the node stored the bytes under another id",
                               w->stream.call.url);
    if (rc == 0)
        *created = w->stream.call.status == 201;
    json_object_put(reply);
    dbx_remote_stream_free(&w->stream);
    free(w);
    return rc;
}

static int writer_commit(minidbx_backend_writer *bw, const minidbx_id *id)
{
    int created;
    return writer_commit_created(bw, id, &created);
}

static void writer_abort(minidbx_backend_writer *bw)
{
    struct http_writer *w = (struct http_writer *)bw;
    w->stream.aborted = 1; /* before the end of the body is seen */
    dbx_remote_stream_free(&w->stream);
    free(w);
}

static int http_writer_open(minidbx_backend *be, minidbx_backend_writer **out)
{
    struct http_writer *w = calloc(1, sizeof *w);
    int rc;

    if (!w)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    w->base.write = writer_write;
    w->base.commit = writer_commit;
    w->base.abort = writer_abort;
    w->base.commit_created = writer_commit_created;
    if ((rc = dbx_remote_stream_start(&http_of(be)->remote, &w->stream, "PUT", "/v1/objects", NULL,
                                      true)) < 0) {
        writer_abort(&w->base);
        return rc;
    }
    *out = &w->base;
    return 0;
}

static int http_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                            uint64_t *out_size)
{
    char hex[MINIDBX_ID_HEX_SIZE];

    minidbx_id_format(id, hex);
    /* one request: the size is the GET reply's (a missing object fails here) */
    *out_size = DBX_REMOTE_SIZE_FROM_REPLY;
    return dbx_remote_reader_open(&http_of(be)->remote, "/v1/objects/", hex, out_size, id, out);
}

/* ---- names ---------------------------------------------------------------------- */

static int name_url(struct http_backend *hb, dbx_remote_call *call, const char *name)
{
    int rc = call_url(hb, call, "/v1/names/", NULL);
    return rc < 0 ? rc : dbx_remote_call_append_path(call, name);
}

static int name_item(json_object *obj, minidbx_name_info *out)
{
    const char *name = json_string(obj, "name");

    if (!name || strlen(name) > MINIDBX_NAME_MAX)
        return minidbx_error_set(MINIDBX_EIO, "http: the node sent a bad name");
    memset(out, 0, sizeof *out);
    strcpy(out->name, name);
    int rc = parse_id_item(json_get(obj, "id"), &out->id);
    if (rc == 0)
        rc = u64_item(obj, "size", &out->size);
    if (rc == 0)
        rc = i64_item(obj, "mtime_ns", &out->mtime_ns);
    return rc;
}

/* PUT /v1/names/NAME {"id": ID} (and "mtime_ns": "N", a string of digits
 * that no double rounds, when mtime_ns >= 0). */
static int name_put(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns)
{
    dbx_remote_call call;
    char body[MINIDBX_ID_HEX_SIZE + 48];
    char hex[MINIDBX_ID_HEX_SIZE];
    int rc;

    minidbx_id_format(id, hex);
    if (mtime_ns >= 0)
        snprintf(body, sizeof body, "{\"id\":\"%s\",\"mtime_ns\":\"%" PRId64 "\"}", hex, mtime_ns);
    else
        snprintf(body, sizeof body, "{\"id\":\"%s\"}", hex);
    dbx_remote_call_init(&call, "PUT");
    call.body = body;
    call.body_size = strlen(body);
    call.content_type = "application/json";
    if ((rc = name_url(http_of(be), &call, name)) == 0)
        rc = http_expect_ok(http_of(be), &call);
    free(call.buf);
    return rc;
}

static int http_name_set(minidbx_backend *be, const char *name, const minidbx_id *id)
{
    return name_put(be, name, id, -1);
}

static int http_name_set_at(minidbx_backend *be, const char *name, const minidbx_id *id, int64_t mtime_ns)
{
    return name_put(be, name, id, mtime_ns);
}

static int http_name_get(minidbx_backend *be, const char *name, minidbx_name_info *out)
{
    dbx_remote_call call;
    json_object *reply = NULL;
    int rc;

    dbx_remote_call_init(&call, "GET");
    if ((rc = name_url(http_of(be), &call, name)) == 0 &&
        (reply = http_expect_json(http_of(be), &call, &rc)) != NULL)
        rc = name_item(reply, out);
    json_object_put(reply);
    free(call.buf);
    return rc;
}

static int http_name_delete(minidbx_backend *be, const char *name)
{
    dbx_remote_call call;
    int rc;

    dbx_remote_call_init(&call, "DELETE");
    if ((rc = name_url(http_of(be), &call, name)) == 0)
        rc = http_expect_ok(http_of(be), &call);
    free(call.buf);
    return rc;
}

static int names_item(json_object *item, void *out, size_t index)
{
    return name_item(item, (minidbx_name_info *)out + index);
}

static int http_name_list(minidbx_backend *be, const char *prefix, const char *after,
                          minidbx_name_info *out, size_t capacity, size_t *out_count)
{
    struct http_backend *hb = http_of(be);
    dbx_remote_call call;
    char limit[24];
    bool more = true;
    size_t count = 0;
    int rc = 0;

    while (rc == 0 && more && count < capacity) {
        const char *cursor = count ? out[count - 1].name : after;
        dbx_remote_call_init(&call, "GET");
        format_limit(limit, capacity, count);
        if ((rc = call_url(hb, &call, "/v1/names", NULL)) == 0 &&
            (rc = dbx_remote_call_query(&call, "prefix", prefix && prefix[0] ? prefix : NULL)) == 0 &&
            (rc = dbx_remote_call_query(&call, "after", cursor)) == 0 &&
            (rc = dbx_remote_call_query(&call, "limit", limit)) == 0)
            rc = fetch_page(hb, &call, "names", names_item, out, &count, strtoull(limit, NULL, 10),
                            &more);
    }
    *out_count = count;
    return rc;
}

/* ---- batches ---------------------------------------------------------------- */

/* A batch cannot share a transaction with the node: every call in it
 * reaches the node at once and is durable there when it returns. So the
 * batch only keeps the thread's state (one batch per thread, as for the
 * local store), and abort removes nothing: an object a put of ours sent
 * may be one that another client was told is stored in the meantime, and
 * deleting it would lose what the node acknowledged to them. What the
 * batch left unnamed is gc's to remove. */
struct http_batch {
    struct http_backend *hb;
};

static _Thread_local struct http_batch *thread_batch;

static struct http_batch *batch_of(struct http_backend *hb)
{
    return thread_batch && thread_batch->hb == hb ? thread_batch : NULL;
}

static int http_batch_begin(minidbx_backend *be)
{
    struct http_batch *b;

    if (thread_batch)
        return minidbx_error_set(MINIDBX_ESTATE, "batch: this thread has a batch open already");
    if (!(b = calloc(1, sizeof *b)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    b->hb = http_of(be);
    thread_batch = b;
    return 0;
}

/* The calling thread's batch on hb, no longer open; NULL (and *rc) if none. */
static struct http_batch *batch_end(struct http_backend *hb, const char *what, int *rc)
{
    struct http_batch *b = batch_of(hb);
    if (!b)
        *rc = minidbx_error_set(MINIDBX_ESTATE, "%s: no batch open by this thread", what);
    else
        thread_batch = NULL;
    return b;
}

/* Everything is on the node already: the batch just ends. */
static int http_batch_commit(minidbx_backend *be)
{
    int rc = 0;
    free(batch_end(http_of(be), "batch commit", &rc));
    return rc;
}

/* Ends the batch and removes nothing (see "batches" above). */
static int http_batch_abort(minidbx_backend *be)
{
    int rc = 0;
    free(batch_end(http_of(be), "batch abort", &rc));
    return rc;
}

/* ---- verify and gc --------------------------------------------------------------- */

/* A POST of no body whose answer may take long: the node says nothing
 * until it has gone through the store. */
static void call_init_admin(dbx_remote_call *call)
{
    dbx_remote_call_init(call, "POST");
    call->body = "";
    call->long_running = true;
}

static int verify_report_items(json_object *reply, minidbx_verify_report *out)
{
    int rc = u64_item(reply, "objects_checked", &out->objects_checked);
    if (rc == 0)
        rc = u64_item(reply, "bytes_checked", &out->bytes_checked);
    if (rc == 0)
        rc = u64_item(reply, "problems", &out->problems);
    if (rc == 0)
        rc = u64_item(reply, "repaired", &out->repaired);
    return rc;
}

/* {"problem": NAME, "id": ID or null, "detail": "...", "repaired": bool}
 * (wire_json.c) -> cb. A kind this client does not know (a newer node's)
 * is skipped, not an error. */
static int problem_item(json_object *obj, minidbx_problem_cb cb, void *ctx)
{
    json_object *id_item = json_get(obj, "id");
    const char *detail = json_string(obj, "detail");
    const char *name = json_string(obj, "problem");
    minidbx_problem kind = dbx_wire_problem_kind(name);
    bool has_id = id_item != NULL && !json_object_is_type(id_item, json_type_null);
    minidbx_id id;
    int rc = 0;

    if (!name)
        rc = minidbx_error_set(MINIDBX_EIO, "verify: a problem without its kind");
    else if (kind == 0)
        return 0;
    if (rc == 0 && has_id)
        rc = parse_id_item(id_item, &id);
    if (rc == 0 && cb)
        cb(ctx, kind, has_id ? &id : NULL, detail ? detail : "", json_true(obj, "repaired"));
    return rc;
}

static int http_verify(minidbx_backend *be, const minidbx_id *id, unsigned flags,
                       minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx)
{
    struct http_backend *hb = http_of(be);
    dbx_remote_call call;
    char hex[MINIDBX_ID_HEX_SIZE];
    json_object *reply = NULL;
    int rc;

    if (id)
        minidbx_id_format(id, hex);
    call_init_admin(&call);
    if ((rc = call_url(hb, &call, "/v1/verify", NULL)) == 0 &&
        (rc = dbx_remote_call_query(&call, "id", id ? hex : NULL)) == 0 &&
        (rc = dbx_remote_call_query(&call, "repair", flags & MINIDBX_VERIFY_REPAIR ? "1" : NULL)) == 0 &&
        (rc = dbx_remote_call_query(&call, "names", flags & MINIDBX_VERIFY_REPAIR ? "1" : NULL)) == 0 &&
        (reply = http_expect_json(hb, &call, &rc)) != NULL &&
        (rc = verify_report_items(reply, report)) == 0) {
        json_object *problems = json_get(reply, "problem_list");
        size_t count = json_object_is_type(problems, json_type_array)
                           ? json_object_array_length(problems) : 0;
        for (size_t i = 0; i < count && rc == 0; i++)
            rc = problem_item(json_object_array_get_idx(problems, i), cb, ctx);
    }
    json_object_put(reply);
    free(call.buf);
    return rc;
}

/* {"id": ID, "size": N} of the reply's "removed" list -> opts->removed */
static int removed_item(json_object *obj, const minidbx_gc_options *opts)
{
    minidbx_id id;
    uint64_t size;
    int rc = parse_id_item(json_get(obj, "id"), &id);
    if (rc == 0 && (rc = u64_item(obj, "size", &size)) == 0 && opts->removed)
        opts->removed(opts->ctx, &id, size);
    return rc;
}

/* Does the node take gc's grace period and dry run ("gc_grace" in
 * /v1/info)? A node from before them ignores both, and its gc removes
 * every unnamed object: 1, 0 or an error. */
static int node_has_gc_grace(struct http_backend *hb)
{
    dbx_remote_call call;
    json_object *reply = NULL;
    int rc;

    dbx_remote_call_init(&call, "GET");
    if ((rc = call_url(hb, &call, "/v1/info", NULL)) == 0 && (reply = http_expect_json(hb, &call, &rc)) != NULL)
        rc = json_true(reply, "gc_grace");
    json_object_put(reply);
    free(call.buf);
    return rc;
}

/* POST /v1/gc?older_than=SECONDS&dry_run=1: the grace goes in whole
 * seconds, rounded up (a node keeps a little more, never less). A node
 * that does not say it takes them is asked only for what it would do
 * anyway (older than 0, no dry run); a node that takes them echoes both,
 * and a reply to a grace or a dry run that does not is an error that says
 * what happened. */
static int http_gc_ex(minidbx_backend *be, const minidbx_gc_options *opts, minidbx_gc_report *report)
{
    struct http_backend *hb = http_of(be);
    bool dry = opts->flags & MINIDBX_GC_DRY_RUN;
    dbx_remote_call call;
    json_object *reply = NULL;
    char seconds[24];
    uint64_t echoed = 0;
    int rc;

    snprintf(seconds, sizeof seconds, "%lld", (long long)(opts->older_than_ns / 1000000000 +
                                                          (opts->older_than_ns % 1000000000 != 0)));
    if ((opts->older_than_ns || dry) && (rc = node_has_gc_grace(hb)) <= 0)
        return rc < 0 ? rc
                      : minidbx_error_set(MINIDBX_EUNSUPPORTED,
                                          "gc: the node at %s is older than gc's grace period and dry "
                                          "run (its gc removes every unnamed object): nothing done",
                                          hb->remote.url);
    call_init_admin(&call);
    if ((rc = call_url(hb, &call, "/v1/gc", NULL)) == 0 &&
        (rc = dbx_remote_call_query(&call, "older_than", seconds)) == 0 &&
        (rc = dbx_remote_call_query(&call, "dry_run", dry ? "1" : NULL)) == 0 &&
        (reply = http_expect_json(hb, &call, &rc)) != NULL &&
        (rc = u64_item(reply, "objects_removed", &report->objects_removed)) == 0 &&
        (rc = u64_item(reply, "bytes_removed", &report->bytes_removed)) == 0 &&
        (opts->older_than_ns || dry) && /* else what any node does: an old one does not echo */
        (u64_item(reply, "older_than", &echoed) < 0 || echoed != strtoull(seconds, NULL, 10) ||
         json_true(reply, "dry_run") != dry))
        rc = minidbx_error_set(MINIDBX_EIO, "gc: the node ignored older_than and dry_run (it is older than "
                               "this client) and removed %llu unnamed objects",
                               (unsigned long long)report->objects_removed);
    json_object *removed = rc == 0 ? json_get(reply, "removed") : NULL;
    size_t count = json_object_is_type(removed, json_type_array) ? json_object_array_length(removed) : 0;
    for (size_t i = 0; i < count && rc == 0; i++)
        rc = removed_item(json_object_array_get_idx(removed, i), opts);
    json_object_put(reply);
    free(call.buf);
    return rc;
}

/* The version-1 method: every unnamed object, now. */
static int http_gc(minidbx_backend *be, minidbx_gc_report *report)
{
    minidbx_gc_options now = { 0, 0, NULL, NULL };
    return http_gc_ex(be, &now, report);
}

/* ---- info and lifecycle ---------------------------------------------------------- */

static int http_info(minidbx_backend *be, minidbx_store_info *out)
{
    struct http_backend *hb = http_of(be);
    dbx_remote_call call;
    json_object *reply = NULL;
    int rc;

    dbx_remote_call_init(&call, "GET");
    if ((rc = call_url(hb, &call, "/v1/info", NULL)) == 0 &&
        (reply = http_expect_json(hb, &call, &rc)) != NULL) {
        if ((rc = u64_item(reply, "objects", &out->objects)) == 0 &&
            (rc = u64_item(reply, "bytes", &out->bytes)) == 0 &&
            (rc = u64_item(reply, "inline_objects", &out->inline_objects)) == 0 &&
            (rc = u64_item(reply, "file_objects", &out->file_objects)) == 0 &&
            (rc = u64_item(reply, "names", &out->names)) == 0)
            rc = u64_item(reply, "inline_threshold", &out->inline_threshold);
    }
    snprintf(out->location, sizeof out->location, "%s", hb->remote.url);
    json_object_put(reply);
    free(call.buf);
    return rc;
}

static void http_free(minidbx_backend *be)
{
    struct http_backend *hb = http_of(be);

    if (batch_of(hb)) /* closing a handle aborts the thread's batch on it */
        http_batch_abort(be);
    dbx_remote_free(&hb->remote);
    free(hb);
}

static const minidbx_backend http_table = {
    .version = MINIDBX_BACKEND_VERSION,
    .name = "http",
    .free = http_free,
    .put = http_put,
    .get = http_get,
    .exists = http_exists,
    .missing = http_missing,
    .stat = http_stat,
    .del = http_del,
    .list = http_list,
    .writer_open = http_writer_open,
    .reader_open = http_reader_open,
    .batch_begin = http_batch_begin,
    .batch_commit = http_batch_commit,
    .batch_abort = http_batch_abort,
    .name_set = http_name_set,
    .name_get = http_name_get,
    .name_delete = http_name_delete,
    .name_list = http_name_list,
    .verify = http_verify,
    .gc = http_gc,
    .gc_ex = http_gc_ex,
    .info = http_info,
    .name_set_at = http_name_set_at,
    /* get and readers hash what arrives (remote.c) */
    .flags = MINIDBX_BACKEND_VERIFIED_READS,
};

/* Is the node there? Its /health, so that a wrong URL fails at open. */
static int check_health(struct http_backend *hb)
{
    dbx_remote_call call;
    dbx_remote_call_init(&call, "GET");
    int rc = call_url(hb, &call, "/health", NULL);
    if (rc == 0)
        rc = http_expect_ok(hb, &call);
    free(call.buf);
    return rc;
}

int dbx_http_open(minidbx_backend **out, const char *url, const minidbx_options *opts)
{
    struct http_backend *hb = calloc(1, sizeof *hb);
    int rc;

    if (!hb)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    hb->base = http_table;
    rc = dbx_remote_init(&hb->remote, url, opts);
    hb->remote.error_message = error_message;
    if (rc == 0)
        rc = check_health(hb);
    if (rc < 0) {
        http_free(&hb->base);
        return rc;
    }
    *out = &hb->base;
    return 0;
}
