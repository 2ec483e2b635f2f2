/* reply.c - how the node answers: JSON and text replies, errors
 * mapped from MINIDBX_E* codes, strict ids from URLs, and object bodies
 * (ETag, immutable caching, conditional and range requests, zero-copy for
 * objects kept as files). */
#include "node.h"
#include "wire.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- replies --------------------------------------------------------------- */

enum MHD_Result serve_queue(struct serve_request *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result result;

    if (!resp)
        return MHD_NO;
    req->status = status;
    req->replied = true;
    if (req->close_connection)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (req->extra_header[0])
        MHD_add_response_header(resp, req->extra_header[0], req->extra_header[1]);
    serve_conn_reply_queued(req->srv, req->conn, req->head ? 0 : req->reply_bytes);
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

static void failure_message(char *out, size_t size, int code, const char *what)
{
    const char *detail = minidbx_errmsg(NULL);
    snprintf(out, size, "%s: %s%s%s", what, minidbx_strerror(code), detail[0] ? ": " : "", detail);
}

enum MHD_Result serve_reply_failure(struct serve_request *req, int code, const char *what)
{
    return serve_reply_failure_status(req, code, 0, what);
}

enum MHD_Result serve_reply_failure_status(struct serve_request *req, int code, unsigned status,
                                           const char *what)
{
    char message[512];
    failure_message(message, sizeof message, code, what);
    return serve_reply_code(req, code, status, "%s", message);
}

cJSON *serve_json_failure(int code, const char *what)
{
    char message[512];
    cJSON *json = cJSON_CreateObject();
    failure_message(message, sizeof message, code, what);
    const char *name = dbx_wire_error_name(code);
    if (json)
        cJSON_AddStringToObject(json, "error", message);
    if (json && name)
        cJSON_AddStringToObject(json, "code", name);
    return json;
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

/* ---- objects in ------------------------------------------------------------- */

int serve_commit_writer(struct serve_request *req)
{
    int rc, stored = -1;

    if (!req->writer && (rc = minidbx_writer_open(req->srv->db, &req->writer)) < 0)
        goto failed;
    /* The store's own commit checks the id the URL claims (ECORRUPT, and
     * nothing stored) and says whether the object is new: of any number of
     * uploads of the same bytes at once, exactly one hears it. Asking the
     * store before the commit could not tell them apart. */
    rc = minidbx_writer_commit_ex(req->writer, req->has_want ? &req->want_id : NULL, &req->put_id,
                                  &stored);
    req->writer = NULL;
    if (rc < 0)
        goto failed;
    req->put_created = stored == 1;
    return 0;
failed:
    req->job_json = serve_json_failure(rc, "put");
    return rc;
}
