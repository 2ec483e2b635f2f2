/* body.c - request bodies: an object streamed into a writer, a small
 * JSON body buffered, a multipart/form-data upload; refused early when
 * sure to be too big, and drained after a refusal so the client sees it. */
#include "node.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A multipart body may be this much larger than the file it carries. */
#define MULTIPART_OVERHEAD_BYTES (64u * 1024u)
/* After a body is refused (413, ...) the rest of it is read and thrown
 * away, so that the client, which sends before it reads, sees the status
 * instead of a reset connection; for this long at most (as nginx's
 * lingering_time), then the connection is cut. */
#define DISCARD_BODY_NS (30ll * 1000 * 1000 * 1000)

/* Stop taking the body: what came is thrown away and the request ends with
 * code (its status, and its name in X-Minidbx-Error) once the client has
 * finished sending. */
void serve_body_fail(struct serve_request *req, int code, const char *fmt, ...)
{
    va_list ap;

    if (req->body_code)
        return;
    req->body_code = code;
    req->body_refused_ns = serve_now_ns();
    va_start(ap, fmt);
    vsnprintf(req->body_error, sizeof req->body_error, fmt, ap);
    va_end(ap);
    minidbx_writer_abort(req->writer);
    req->writer = NULL;
}

/* What the transport takes before a byte is stored. The object size limit
 * itself is the library's (the store is opened with max_object_size =
 * --max-object-size, and a writer refuses a byte over it with ETOOBIG);
 * these bounds come from the same number: a Content-Length over it is
 * refused before the body, a multipart body may add its framing. */
static uint64_t body_limit(const struct serve_request *req)
{
    uint64_t max = req->srv->cfg->max_object_bytes;
    switch (req->spec->body) {
    case BODY_OBJECT: return max;
    case BODY_MULTIPART: return max + MULTIPART_OVERHEAD_BYTES;
    case BODY_SMALL: return SERVE_SMALL_BODY_MAX;
    default: return 0;
    }
}

/* Object bytes (a PUT body, or the multipart "file" field) go to the
 * writer, which hashes them and enforces the size limit (ETOOBIG). */
static void object_bytes(struct serve_request *req, const char *data, size_t size)
{
    int rc;

    if (req->body_code)
        return;
    req->object_bytes += size;
    if (!req->writer && (rc = minidbx_writer_open(req->srv->db, &req->writer)) < 0) {
        serve_body_fail(req, rc, "writer: %s", minidbx_errmsg(NULL));
        return;
    }
    if ((rc = minidbx_writer_write(req->writer, data, size)) < 0)
        serve_body_fail(req, rc, "write: %s", minidbx_errmsg(NULL));
}

static enum MHD_Result on_post_field(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data,
                                     uint64_t off, size_t size)
{
    struct serve_request *req = cls;
    (void)kind, (void)filename, (void)content_type, (void)transfer_encoding;

    /* A part whose Content-Disposition has no name= comes with key NULL. */
    if (!key || strcmp(key, "file") != 0)
        return MHD_YES;
    if (off == 0 && req->file_seen && req->object_bytes > 0)
        serve_body_fail(req, MINIDBX_EINVAL, "more than one 'file' field");
    req->file_seen = true;
    if (size)
        object_bytes(req, data, size);
    return MHD_YES;
}

static void small_bytes(struct serve_request *req, const char *data, size_t size)
{
    if (req->small_len + size + 1 > req->small_cap) {
        size_t cap = req->small_cap ? req->small_cap : 4096;
        while (cap < req->small_len + size + 1)
            cap *= 2;
        char *grown = realloc(req->small, cap);
        if (!grown) {
            serve_body_fail(req, MINIDBX_ENOMEM, "out of memory");
            return;
        }
        req->small = grown;
        req->small_cap = cap;
    }
    memcpy(req->small + req->small_len, data, size);
    req->small_len += size;
    req->small[req->small_len] = '\0';
}

/* One chunk of the body. Returns MHD_NO to drop a client that keeps
 * sending long after a refusal. */
enum MHD_Result serve_body_chunk(struct serve_request *req, const char *data, size_t size)
{
    uint64_t limit = body_limit(req);

    req->body_bytes += size;
    atomic_fetch_add(&req->srv->metrics.bytes_in, size);
    serve_conn_body_bytes(req->srv, req->conn, size);
    if (req->body_code)
        return serve_now_ns() - req->body_refused_ns > DISCARD_BODY_NS ? MHD_NO : MHD_YES;
    /* a PUT body is the object: the writer bounds it */
    if (req->spec->body != BODY_OBJECT && req->body_bytes > limit) {
        serve_body_fail(req, MINIDBX_ETOOBIG, "body is over the limit of %llu bytes", (unsigned long long)limit);
        return MHD_YES;
    }
    switch (req->spec->body) {
    case BODY_OBJECT: object_bytes(req, data, size); break;
    case BODY_SMALL: small_bytes(req, data, size); break;
    case BODY_MULTIPART:
        if (MHD_post_process(req->post, data, size) != MHD_YES)
            serve_body_fail(req, MINIDBX_EINVAL, "malformed multipart/form-data body");
        break;
    case BODY_NONE: break;
    }
    return MHD_YES;
}

/* Before the body: refuse what is sure to be too big, set up the parsing. */
enum MHD_Result serve_body_begin(struct serve_request *req, bool *replied)
{
    const char *length = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    *replied = true;
    if (length && strtoull(length, NULL, 10) > body_limit(req))
        return serve_reply_code(req, MINIDBX_ETOOBIG, 0, "body of %s bytes is over the limit of %llu",
                                length, (unsigned long long)body_limit(req));
    /* PUT /v1/objects/ID: the bytes must hash to ID, checked by the commit */
    if (req->spec->body == BODY_OBJECT && req->path_arg[0]) {
        enum MHD_Result result;
        if (!serve_parse_id(req, req->path_arg, &req->want_id, &result))
            return result;
        req->has_want = true;
    }
    if (req->spec->body == BODY_MULTIPART &&
        !(req->post = MHD_create_post_processor(req->conn, 64 * 1024, on_post_field, req)))
        return serve_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                 "expected a multipart/form-data body with a 'file' field");
    *replied = false;
    return MHD_YES;
}
