/* serve_reply.c - how the node answers: JSON and text replies, errors
 * mapped from MINIDBX_E* codes, strict ids from URLs, and object bodies
 * (ETag, immutable caching, conditional and range requests, zero-copy for
 * objects kept as files). */
#include "serve.h"
#include "wire.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CACHE_IMMUTABLE "public, max-age=31536000, immutable"
/* 422; libmicrohttpd renamed its constant between versions. */
#define HTTP_UNPROCESSABLE 422u

/* ---- replies --------------------------------------------------------------- */

enum MHD_Result serve_queue(struct serve_request *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result result;

    if (!resp)
        return MHD_NO;
    req->status = status;
    req->replied = true;
    result = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return result;
}

/* A response that owns body (freed with it, or here on failure). */
static struct MHD_Response *owned_response(struct serve_request *req, char *body, size_t size,
                                           const char *content_type)
{
    struct MHD_Response *resp;

    if (!body)
        return NULL;
    resp = MHD_create_response_from_buffer_with_free_callback(size, body, free);
    if (!resp) {
        free(body);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    req->reply_bytes = size;
    return resp;
}

static enum MHD_Result reply_owned(struct serve_request *req, unsigned status, char *body,
                                   size_t size, const char *content_type)
{
    return serve_queue(req, status, owned_response(req, body, size, content_type));
}

enum MHD_Result serve_reply_text(struct serve_request *req, unsigned status, const char *text)
{
    return reply_owned(req, status, strdup(text), strlen(text), "text/plain; charset=utf-8");
}

enum MHD_Result serve_reply_json(struct serve_request *req, unsigned status, cJSON *json)
{
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    cJSON_Delete(json);
    if (!text)
        return MHD_NO;
    return reply_owned(req, status, text, strlen(text), "application/json");
}

/* {"error": message, "code": NAME} with status, and the X-Minidbx-Error
 * header when code names a MINIDBX_E* code (0: none). */
static enum MHD_Result reply_error_v(struct serve_request *req, unsigned status, int code,
                                    const char *fmt, va_list ap)
{
    char message[512];
    const char *name = dbx_wire_error_name(code);
    cJSON *json = cJSON_CreateObject();
    char *text;

    vsnprintf(message, sizeof message, fmt, ap);
    if (!json)
        return MHD_NO;
    cJSON_AddStringToObject(json, "error", message);
    if (name)
        cJSON_AddStringToObject(json, "code", name);
    text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    struct MHD_Response *resp = owned_response(req, text, text ? strlen(text) : 0,
                                               "application/json");
    if (resp && name)
        MHD_add_response_header(resp, DBX_WIRE_ERROR_HEADER, name);
    return serve_queue(req, status, resp);
}

enum MHD_Result serve_reply_error(struct serve_request *req, unsigned status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result result = reply_error_v(req, status, 0, fmt, ap);
    va_end(ap);
    return result;
}

enum MHD_Result serve_reply_code(struct serve_request *req, int code, unsigned status,
                                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result result = reply_error_v(req, status ? status : dbx_wire_status_for(code), code,
                                           fmt, ap);
    va_end(ap);
    return result;
}

unsigned serve_status_for(int code)
{
    return dbx_wire_status_for(code);
}

enum MHD_Result serve_reply_failure(struct serve_request *req, int code, const char *what)
{
    const char *detail = minidbx_errmsg(NULL);
    return serve_reply_code(req, code, 0, "%s: %s%s%s", what, minidbx_strerror(code),
                            detail[0] ? ": " : "", detail);
}

/* ---- arguments ------------------------------------------------------------- */

bool serve_parse_id(struct serve_request *req, const char *hex, minidbx_id *id,
                    enum MHD_Result *result)
{
    if (hex && minidbx_id_parse(id, hex) == 0)
        return true;
    *result = serve_reply_code(req, MINIDBX_EINVAL, 0,
                               "an id is 64 hex digits (the SHA-256 of the object)");
    return false;
}

const char *serve_query(struct serve_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

bool serve_query_flag(struct serve_request *req, const char *key)
{
    const char *text = serve_query(req, key);
    return text && strcmp(text, "0") != 0;
}

bool serve_query_limit(struct serve_request *req, size_t def, size_t max, size_t *out,
                       enum MHD_Result *result)
{
    const char *text = serve_query(req, "limit");
    char *end;

    *out = def;
    if (!text)
        return true;
    unsigned long long value = strtoull(text, &end, 10);
    if (end != text && !*end && text[0] != '-' && value >= 1 && value <= max) {
        *out = (size_t)value;
        return true;
    }
    *result = serve_reply_code(req, MINIDBX_EINVAL, 0, "limit must be 1..%zu", max);
    return false;
}

/* ---- JSON ---------------------------------------------------------------- */

/* Integers go out exactly: cJSON's doubles would round past 2^53. */
void serve_json_add_u64(cJSON *obj, const char *key, uint64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, value);
    cJSON_AddItemToObject(obj, key, cJSON_CreateRaw(text));
}

static void json_add_i64(cJSON *obj, const char *key, int64_t value)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, value);
    cJSON_AddItemToObject(obj, key, cJSON_CreateRaw(text));
}

void serve_json_add_id(cJSON *obj, const char *key, const minidbx_id *id)
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    cJSON_AddStringToObject(obj, key, hex);
}

cJSON *serve_json_object_info(const minidbx_object_info *info)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    serve_json_add_id(obj, "id", &info->id);
    serve_json_add_u64(obj, "size", info->size);
    json_add_i64(obj, "created_ns", info->created_ns);
    serve_json_add_u64(obj, "refs", info->refs);
    cJSON_AddBoolToObject(obj, "inline", (info->flags & MINIDBX_OBJECT_INLINE) != 0);
    return obj;
}

cJSON *serve_json_name_info(const minidbx_name_info *info)
{
    cJSON *obj = cJSON_CreateObject();
    if (!obj)
        return NULL;
    cJSON_AddStringToObject(obj, "name", info->name);
    serve_json_add_id(obj, "id", &info->id);
    serve_json_add_u64(obj, "size", info->size);
    json_add_i64(obj, "mtime_ns", info->mtime_ns);
    return obj;
}

/* ---- objects out ------------------------------------------------------------ */

/* A byte range of an object: what the Range header asked for, if it
 * asked for one range we can serve. */
struct byte_range {
    uint64_t start;
    uint64_t length;
    unsigned status; /* 200, 206 or 416 */
};

static void parse_range(struct serve_request *req, uint64_t size, struct byte_range *out)
{
    const char *text = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    unsigned long long first, last = UINT64_MAX;
    char tail;

    *out = (struct byte_range){ 0, size, MHD_HTTP_OK };
    if (!text || strncmp(text, "bytes=", 6) != 0 || strchr(text, ','))
        return; /* none, another unit, or several ranges: the whole object */
    text += 6;
    if (text[0] == '-') { /* the last N bytes */
        if (sscanf(text + 1, "%llu%c", &first, &tail) != 1)
            return;
        if (first == 0) {
            out->status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
            return;
        }
        out->start = first >= size ? 0 : size - first;
    } else {
        int n = sscanf(text, "%llu-%llu%c", &first, &last, &tail);
        if (n != 2 && !(n == 1 && text[strlen(text) - 1] == '-'))
            return;
        if (last < first)
            return;
        if (first >= size) {
            out->status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
            return;
        }
        out->start = first;
        if (last < size - 1)
            size = last + 1;
    }
    out->length = size - out->start;
    out->status = MHD_HTTP_PARTIAL_CONTENT;
}

static bool etag_matches(struct serve_request *req, const char *etag)
{
    const char *inm = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_NONE_MATCH);
    return inm && (strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL);
}

static void add_object_headers(struct MHD_Response *resp, const char *etag)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, CACHE_IMMUTABLE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
}

/* A body pulled from a reader (inline objects, stores without files):
 * bytes are verified as they pass, so a bad object ends the response with
 * an error rather than with wrong bytes presented as complete. */
struct reader_body {
    minidbx_reader *reader;
    uint64_t skip;       /* bytes before the range */
    uint64_t remaining;  /* bytes of the range still to send */
};

static ssize_t reader_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct reader_body *body = cls;
    size_t n = 0;
    (void)pos;

    while (body->skip) {
        size_t want = body->skip < max ? (size_t)body->skip : max;
        if (minidbx_reader_read(body->reader, buf, want, &n) < 0 || n == 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        body->skip -= n;
    }
    if (body->remaining == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (max > body->remaining)
        max = (size_t)body->remaining;
    if (minidbx_reader_read(body->reader, buf, max, &n) < 0 || n == 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    body->remaining -= n;
    return (ssize_t)n;
}

static void reader_body_free(void *cls)
{
    struct reader_body *body = cls;
    minidbx_reader_close(body->reader);
    free(body);
}

/* The response for range of an open reader; takes the reader. Objects in
 * files go out with sendfile from a dup of the reader's fd (bytes read that
 * way bypass verification: `mdbx verify` and clients check them). */
static struct MHD_Response *object_response(minidbx_reader *reader, const struct byte_range *range)
{
    struct MHD_Response *resp = NULL;
    uint64_t offset;
    int fd;

    if (minidbx_reader_fd(reader, &fd, &offset) == 0 && (fd = dup(fd)) >= 0) {
        minidbx_reader_close(reader);
        resp = MHD_create_response_from_fd_at_offset64(range->length, fd,
                                                       offset + range->start);
        if (!resp)
            close(fd);
        return resp;
    }
    struct reader_body *body = malloc(sizeof *body);
    if (body) {
        *body = (struct reader_body){ reader, range->start, range->length };
        resp = MHD_create_response_from_callback(range->length, 64 * 1024, reader_body_read, body,
                                                 reader_body_free);
    }
    if (!resp) {
        free(body);
        minidbx_reader_close(reader);
    }
    return resp;
}

/* Never called: a HEAD response has a size but no body. */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls, (void)pos, (void)buf, (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static enum MHD_Result send_object_head(struct serve_request *req, const minidbx_id *id,
                                        const char *etag)
{
    minidbx_object_info info;
    char text[24];
    int rc = minidbx_stat(req->srv->db, id, &info);

    if (rc < 0)
        return serve_reply_failure(req, rc, "stat");
    struct MHD_Response *resp = MHD_create_response_from_callback(info.size, 4096, no_body, NULL, NULL);
    if (!resp)
        return MHD_NO;
    add_object_headers(resp, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    snprintf(text, sizeof text, "%" PRId64, info.created_ns);
    MHD_add_response_header(resp, "X-Minidbx-Created-Ns", text);
    snprintf(text, sizeof text, "%" PRIu64, info.refs);
    MHD_add_response_header(resp, "X-Minidbx-Refs", text);
    MHD_add_response_header(resp, "X-Minidbx-Storage",
                            info.flags & MINIDBX_OBJECT_INLINE ? "inline" : "file");
    return serve_queue(req, MHD_HTTP_OK, resp);
}

static enum MHD_Result send_not_modified(struct serve_request *req, const char *etag)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    add_object_headers(resp, etag);
    return serve_queue(req, MHD_HTTP_NOT_MODIFIED, resp);
}

static enum MHD_Result send_unsatisfiable(struct serve_request *req, uint64_t size)
{
    char text[48];
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    snprintf(text, sizeof text, "bytes */%" PRIu64, size);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, text);
    return serve_queue(req, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
}

enum MHD_Result serve_send_object(struct serve_request *req, const minidbx_id *id)
{
    char etag[MINIDBX_ID_HEX_SIZE + 2], text[80];
    struct byte_range range;
    minidbx_reader *reader;
    uint64_t size;

    etag[0] = '"';
    minidbx_id_format(id, etag + 1);
    strcpy(etag + MINIDBX_ID_HEX_SIZE, "\"");
    if (etag_matches(req, etag)) {
        int rc = minidbx_exists(req->srv->db, id);
        if (rc < 0)
            return serve_reply_failure(req, rc, "exists");
        if (rc == 1)
            return send_not_modified(req, etag);
    }
    if (req->head)
        return send_object_head(req, id, etag);
    int rc = minidbx_reader_open(req->srv->db, id, &reader, &size);
    if (rc < 0)
        return serve_reply_failure(req, rc, "get");
    parse_range(req, size, &range);
    if (range.status == MHD_HTTP_RANGE_NOT_SATISFIABLE) {
        minidbx_reader_close(reader);
        return send_unsatisfiable(req, size);
    }
    struct MHD_Response *resp = object_response(reader, &range);
    if (!resp)
        return MHD_NO;
    add_object_headers(resp, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    if (range.status == MHD_HTTP_PARTIAL_CONTENT) {
        snprintf(text, sizeof text, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, range.start,
                 range.start + range.length - 1, size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, text);
    }
    req->reply_bytes = range.length;
    return serve_queue(req, range.status, resp);
}

/* ---- objects in ------------------------------------------------------------- */

bool serve_commit_object(struct serve_request *req, minidbx_id *out_id, bool *created,
                         enum MHD_Result *result)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_len = 0;
    minidbx_id id;
    int rc;

    if (!req->writer && (rc = minidbx_writer_open(req->srv->db, &req->writer)) < 0)
        goto failed;
    if (EVP_DigestFinal_ex(req->hasher, digest, &digest_len) != 1 || digest_len != sizeof id.bytes) {
        *result = serve_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "hashing failed");
        return false;
    }
    memcpy(id.bytes, digest, sizeof id.bytes);
    if (req->has_want && !minidbx_id_equal(&id, &req->want_id)) {
        char got[MINIDBX_ID_HEX_SIZE];
        minidbx_id_format(&id, got);
        *result = serve_reply_error(req, HTTP_UNPROCESSABLE,
                                    "the bytes hash to %s, not to the id in the URL", got);
        return false; /* the writer is aborted when the request is freed */
    }
    if ((rc = minidbx_exists(req->srv->db, &id)) < 0)
        goto failed;
    *created = rc == 0;
    rc = minidbx_writer_commit(req->writer, out_id);
    req->writer = NULL;
    if (rc < 0)
        goto failed;
    return true;
failed:
    *result = serve_reply_failure(req, rc, "put");
    return false;
}
