/* send.c - object bodies out: ETag, immutable caching, conditional
 * and range requests, and the promise that a GET never completes with
 * bytes that do not hash to the id it names.
 *
 * How each GET is answered:
 *
 *   a blob file of at most a quarter  sent from the verified bytes the node
 *   of --body-cache                   keeps (cache.c), with its headers in
 *                                     one go (per-connection: a sealed
 *                                     memfd, by sendfile); when not kept,
 *                                     read whole, hashed, then sent (and
 *                                     kept). A bad file gets an error
 *                                     status, no bytes.
 *   another object up to BUFFER_MAX   read whole into one buffer and checked
 *   bytes                             before anything is sent (faster than
 *                                     an fd response in libmicrohttpd
 *                                     0.9.75). Also an error, no bytes.
 *   a larger blob file, verified      sendfile from the file (zero copy).
 *   recently (cache.c)
 *   a larger object otherwise         streamed through a callback that
 *                                     hashes every byte of the object (the
 *                                     parts outside a Range too) and hands
 *                                     over the last piece only when the
 *                                     whole object matched its id; else the
 *                                     connection is cut, and the client sees
 *                                     a short body.
 *
 * Reads through minidbx_reader_read are verified by the library (the node
 * never opens its store with MINIDBX_OPEN_NO_VERIFY); bytes read from a
 * blob file's fd bypass the library and are hashed here. What the caches
 * of cache.c trust, and why that is safe, is said at the top of it. */
#include "node.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_IMMUTABLE "public, max-age=31536000, immutable"
/* Objects up to this size are read into one buffer, checked, then sent. */
#define BUFFER_MAX (64u * 1024u)
/* The piece a streamed body is read, hashed and handed over in. */
#define STREAM_BLOCK (64u * 1024u)

/* ---- ranges ---------------------------------------------------------------- */

void serve_parse_range(const char *text, uint64_t size, struct serve_range *out)
{
    unsigned long long first, last = UINT64_MAX;
    char tail;

    *out = (struct serve_range){ 0, size, MHD_HTTP_OK };
    if (!text || strncmp(text, "bytes=", 6) != 0 || strchr(text, ','))
        return; /* none, another unit, or several ranges: the whole object */
    text += 6;
    if (text[0] == '-') { /* the last N bytes */
        if (sscanf(text + 1, "%llu%c", &first, &tail) != 1 || text[1] < '0' || text[1] > '9')
            return;
        if (first == 0 || size == 0) { /* nothing to send: no range of it exists */
            out->status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
            return;
        }
        out->start = first >= size ? 0 : size - first;
    } else {
        if (text[0] < '0' || text[0] > '9')
            return;
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

/* ---- hashing ------------------------------------------------------------------ */

static bool digest_is(EVP_MD_CTX *ctx, const minidbx_id *id)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    return EVP_DigestFinal_ex(ctx, digest, &len) == 1 && len == sizeof id->bytes &&
           memcmp(digest, id->bytes, sizeof id->bytes) == 0;
}

/* pread until size bytes or the end of the file; the count, or -1. */
static ssize_t pread_full(int fd, void *buf, size_t size, uint64_t offset)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, (char *)buf + done, size - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* ---- what an object is read from ------------------------------------------------- */

/* An open object: its reader, and its blob file if it has one. */
struct object_source {
    struct serve_server *srv;
    minidbx_id id;
    minidbx_reader *reader;
    uint64_t size;
    int fd;           /* the blob file's fd (the reader's), or -1 */
    uint64_t offset;  /* where the object's bytes start in it */
    struct stat st;   /* fstat(fd) when it was opened */
    int64_t opened_rt_ns;
    bool unwritten;   /* no writer had the file open when its hashing began */
    const char *problem; /* why source_open failed, when the library did not say */
    char detail[96];     /* why reading the blob file failed (the server hashes those) */
};

static void source_close(struct object_source *src)
{
    minidbx_reader_close(src->reader); /* and with it the fd */
    src->reader = NULL;
    src->fd = -1;
}

/* Open id; 0 or a MINIDBX_E* code (the library's, or ECORRUPT/EIO for a
 * blob that is not a regular file: nothing is read from a FIFO or a device). */
static int source_open(struct serve_server *srv, const minidbx_id *id, struct object_source *src)
{
    int rc;

    *src = (struct object_source){ srv, *id, NULL, 0, -1, 0, { 0 }, serve_hash_start_ns(), false, NULL, "" };
    if ((rc = minidbx_reader_open(srv->db, id, &src->reader, &src->size)) < 0)
        return rc;
    if (minidbx_reader_fd(src->reader, &src->fd, &src->offset) < 0) {
        src->fd = -1;
        return 0; /* inline, or a store without files: read through the reader */
    }
    if (fstat(src->fd, &src->st) < 0) {
        src->problem = "get: cannot stat the blob file";
        source_close(src);
        return MINIDBX_EIO;
    }
    if (!S_ISREG(src->st.st_mode)) {
        src->problem = "get: the blob file is not a regular file";
        source_close(src);
        return MINIDBX_ECORRUPT;
    }
    return 0;
}

/* Before the blob file is read to be hashed: may the hashing be
 * remembered (cache.c: only if no one has the file open for writing)? */
static void source_hash_begins(struct object_source *src)
{
    src->unwritten = serve_file_rememberable(src->fd);
}

/* The blob file, read since source_hash_begins, hashed to its id. */
static void source_remember(struct object_source *src)
{
    if (src->unwritten)
        serve_verified_remember(src->srv, &src->id, src->fd, &src->st, src->opened_rt_ns);
}

/* 0 when size bytes at data hash to src's id, else ECORRUPT with the same
 * words the library uses ("object 1cf6a9adc377… failed verification: got …"). */
static int check_bytes(struct object_source *src, const void *data, size_t size)
{
    minidbx_id got;
    char want_hex[MINIDBX_ID_HEX_SIZE], got_hex[MINIDBX_ID_HEX_SIZE];
    if (minidbx_id_of(&got, data, size) == 0 && minidbx_id_equal(&got, &src->id))
        return 0;
    minidbx_id_format(&src->id, want_hex);
    minidbx_id_format(&got, got_hex);
    snprintf(src->detail, sizeof src->detail, "object %.12s\u2026 failed verification: got %.12s\u2026",
             want_hex, got_hex);
    return MINIDBX_ECORRUPT;
}

/* Read the whole object (at most BUFFER_MAX bytes) into a new buffer,
 * checked against the id: 0 or a MINIDBX_E* code. */
static int source_read_all(struct object_source *src, char **out)
{
    char *buf = malloc(src->size ? (size_t)src->size : 1);
    size_t done = 0, n = 1;
    int rc = 0;

    if (!buf)
        return MINIDBX_ENOMEM;
    if (src->fd >= 0) {
        bool cached = serve_verified_lookup(src->srv, &src->id, &src->st);
        if (!cached)
            source_hash_begins(src);
        errno = 0;
        if (pread_full(src->fd, buf, (size_t)src->size, src->offset) != (ssize_t)src->size) {
            snprintf(src->detail, sizeof src->detail, "cannot read the blob file (%s)",
                     errno ? strerror(errno) : "shorter than its record");
            rc = MINIDBX_EIO;
        } else if (!cached && (rc = check_bytes(src, buf, (size_t)src->size)) < 0)
            ;
        else if (!cached)
            source_remember(src);
        else { /* cached: the bytes just read are the ones hashed if the file did not change */
            struct stat now;
            if (fstat(src->fd, &now) < 0 || !serve_same_file(&now, &src->st))
                rc = check_bytes(src, buf, (size_t)src->size);
            else
                atomic_fetch_add(&src->srv->metrics.file_sends, 1);
        }
    } else {
        /* The library checks the bytes on the read that finds the end (or,
         * in later versions, on the one that gives the last byte). */
        char extra;
        while (rc == 0 && n > 0 && done < src->size)
            if ((rc = minidbx_reader_read(src->reader, buf + done, (size_t)src->size - done, &n)) == 0)
                done += n;
        if (rc == 0 && (rc = minidbx_reader_read(src->reader, &extra, 1, &n)) == 0 &&
            (done != src->size || n != 0))
            rc = MINIDBX_ECORRUPT; /* shorter or longer than its record */
    }
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

/* ---- streamed bodies ------------------------------------------------------------ */

/* A body sent piece by piece, each piece hashed on the way, the whole
 * object hashed (outside the range too) before the last piece is handed
 * over. */
struct stream_body {
    struct object_source src;
    struct serve_range range;
    uint64_t sent;        /* bytes of the range handed over */
    uint64_t hashed;      /* bytes of the object read and hashed from its start */
    EVP_MD_CTX *ctx;      /* blob files: our hash; readers hash for themselves */
    char *scratch;        /* STREAM_BLOCK bytes for what is outside the range */
};

/* Read len bytes of the object at hashed (the reads are sequential) into
 * buf, hashing them: 0, or -1 when the object cannot be read. */
static int stream_read(struct stream_body *body, char *buf, size_t len)
{
    struct object_source *src = &body->src;
    size_t done = 0, n;

    if (src->fd >= 0) {
        if (pread_full(src->fd, buf, len, src->offset + body->hashed) != (ssize_t)len ||
            EVP_DigestUpdate(body->ctx, buf, len) != 1)
            return -1;
    } else {
        for (; done < len; done += n)
            if (minidbx_reader_read(src->reader, buf + done, len - done, &n) < 0 || n == 0)
                return -1;
    }
    body->hashed += len;
    return 0;
}

/* Hash the object up to end (from where it stands), through scratch. */
static int stream_hash_to(struct stream_body *body, uint64_t end)
{
    while (body->hashed < end) {
        uint64_t left = end - body->hashed;
        if (stream_read(body, body->scratch, left < STREAM_BLOCK ? (size_t)left : STREAM_BLOCK) < 0)
            return -1;
    }
    return 0;
}

/* The whole object is hashed: does it match its id? */
static bool stream_verified(struct stream_body *body)
{
    struct object_source *src = &body->src;
    size_t n;

    if (src->fd < 0) /* the reader checks on the read that finds the end */
        return minidbx_reader_read(src->reader, body->scratch, STREAM_BLOCK, &n) == 0 && n == 0;
    if (!digest_is(body->ctx, &src->id))
        return false;
    source_remember(src);
    return true;
}

static ssize_t stream_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream_body *body = cls;
    uint64_t left = body->range.length - body->sent;
    size_t len = max < left ? max : (size_t)left;

    if (pos != body->sent || left == 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (stream_hash_to(body, body->range.start + body->sent) < 0 || stream_read(body, buf, len) < 0)
        goto bad;
    body->sent += len;
    /* The last piece leaves only if every byte of the object was right. */
    if (body->sent == body->range.length &&
        (stream_hash_to(body, body->src.size) < 0 || !stream_verified(body)))
        goto bad;
    return (ssize_t)len;
bad:
    atomic_fetch_add(&body->src.srv->metrics.corrupt_objects_refused, 1);
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_body_free(void *cls)
{
    struct stream_body *body = cls;
    source_close(&body->src);
    EVP_MD_CTX_free(body->ctx);
    free(body->scratch);
    free(body);
}

/* Takes src. */
static struct MHD_Response *stream_response(struct object_source *src, const struct serve_range *range)
{
    struct stream_body *body = calloc(1, sizeof *body);
    struct MHD_Response *resp = NULL;

    if (body) {
        body->src = *src;
        body->range = *range;
        if (body->src.fd >= 0)
            source_hash_begins(&body->src);
        src->reader = NULL;
        src->fd = -1;
        if ((body->scratch = malloc(STREAM_BLOCK)) &&
            (body->src.fd < 0 || ((body->ctx = EVP_MD_CTX_new()) &&
                                  EVP_DigestInit_ex(body->ctx, EVP_sha256(), NULL) == 1)))
            resp = MHD_create_response_from_callback(range->length, STREAM_BLOCK, stream_body_read,
                                                     body, stream_body_free);
        if (!resp)
            stream_body_free(body);
    }
    source_close(src);
    return resp;
}

/* ---- the responses ---------------------------------------------------------------- */

void serve_add_object_headers(struct MHD_Response *resp, const char *etag)
{
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, CACHE_IMMUTABLE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
}

/* The blob file read whole into a new copy and hashed: 0 with *out, or
 * with *out NULL when the copies' memory is spent (stream it instead);
 * else ECORRUPT or EIO. A good copy is kept for the next GETs. */
static int copy_read(struct object_source *src, struct serve_copy **out)
{
    struct serve_copy *copy = serve_copy_new(src->srv, src->size);
    int rc;

    *out = NULL;
    if (!copy)
        return 0;
    errno = 0;
    if (pread_full(src->fd, serve_copy_bytes(copy), (size_t)src->size, src->offset) !=
        (ssize_t)src->size) {
        snprintf(src->detail, sizeof src->detail, "cannot read the blob file (%s)",
                 errno ? strerror(errno) : "shorter than its record");
        rc = MINIDBX_EIO;
    } else {
        rc = check_bytes(src, serve_copy_bytes(copy), (size_t)src->size);
    }
    if (rc < 0) {
        serve_copy_release(copy);
        return rc;
    }
    if (serve_copy_seal(copy) < 0) {
        serve_copy_release(copy);
        return 0; /* stream it */
    }
    serve_copy_remember(src->srv, &src->id, src->fd, &src->st, src->opened_rt_ns, copy);
    *out = copy;
    return 0;
}

/* The kept copy of the open blob file, if it is unchanged (counted). */
static struct serve_copy *copy_lookup(struct serve_server *srv, const struct object_source *src)
{
    struct serve_copy *copy = serve_copy_lookup(srv, &src->id, &src->st);
    if (copy)
        atomic_fetch_add(&srv->metrics.memory_sends, 1);
    return copy;
}

/* The reply sending range of a verified copy (takes the reference). The
 * reply holds it until it is done: a buffer's free callback releases it,
 * a sealed memfd's (sendfile) the request's end. */
static struct MHD_Response *copy_response(struct serve_request *req, struct serve_copy *copy,
                                          const struct serve_range *range)
{
    struct MHD_Response *resp = NULL;
    int fd;

    if (serve_copy_fd(copy) < 0) {
        resp = MHD_create_response_from_buffer_with_free_callback_cls(
            (size_t)range->length, serve_copy_bytes(copy) + range->start, serve_copy_release, copy);
    } else if ((fd = dup(serve_copy_fd(copy))) >= 0) {
        /* libmicrohttpd closes the dup with the reply */
        if ((resp = MHD_create_response_from_fd_at_offset64(range->length, fd, range->start))) {
            serve_copy_release(req->copy);
            req->copy = copy;
        } else {
            close(fd);
        }
    }
    if (!resp)
        serve_copy_release(copy);
    return resp;
}

/* The body for range of the open object (takes src), or NULL after a
 * reply (a bad object) or with *result = MHD_NO. */
static struct MHD_Response *object_response(struct serve_request *req, struct object_source *src,
                                            const struct serve_range *range, enum MHD_Result *result)
{
    struct MHD_Response *resp = NULL;
    struct serve_copy *copy = NULL;
    char *buf = NULL;
    int rc = 0, fd;

    *result = MHD_NO;
    if (src->fd >= 0 && serve_copy_cacheable(req->srv, src->size) &&
        ((copy = copy_lookup(req->srv, src)) || ((rc = copy_read(src, &copy)) == 0 && copy))) {
        resp = copy_response(req, copy, range);
    } else if (rc < 0) {
        ; /* a bad file: the reply below */
    } else if (src->size <= BUFFER_MAX) {
        if ((rc = source_read_all(src, &buf)) == 0) {
            /* the buffer is freed at its start, the body is a slice of it */
            resp = MHD_create_response_from_buffer_with_free_callback_cls(
                (size_t)range->length, buf + range->start, free, buf);
            if (!resp)
                free(buf);
        }
    } else if (src->fd >= 0 && serve_verified_lookup(req->srv, &src->id, &src->st) &&
               (fd = dup(src->fd)) >= 0) {
        atomic_fetch_add(&req->srv->metrics.file_sends, 1);
        resp = MHD_create_response_from_fd_at_offset64(range->length, fd, src->offset + range->start);
        if (!resp)
            close(fd);
    } else {
        return stream_response(src, range);
    }
    source_close(src);
    if (rc < 0) {
        if (rc == MINIDBX_ECORRUPT)
            atomic_fetch_add(&req->srv->metrics.corrupt_objects_refused, 1);
        *result = src->detail[0]
                      ? serve_reply_code(req, rc, 0, "get: %s: %s", minidbx_strerror(rc), src->detail)
                      : serve_reply_failure(req, rc, "get");
    }
    return resp;
}

/* Never called: a HEAD response has a size but no body. */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls, (void)pos, (void)buf, (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* The reply for a source_open that failed with rc. */
static enum MHD_Result reply_source_failure(struct serve_request *req, int rc, const struct object_source *src)
{
    if (src->problem)
        return serve_reply_code(req, rc, 0, "%s", src->problem);
    return serve_reply_failure(req, rc, "get");
}

/* HEAD answers as GET would, without the body: an object whose blob file
 * is gone, short or not a regular file is refused here too, so that the
 * http:// client's exists, stat and reader_open say what a local store
 * says. */
static enum MHD_Result send_object_head(struct serve_request *req, const minidbx_id *id,
                                        const char *etag)
{
    struct object_source src;
    minidbx_object_info info;
    char text[24];
    int rc = source_open(req->srv, id, &src);

    source_close(&src);
    if (rc < 0)
        return reply_source_failure(req, rc, &src);
    if ((rc = minidbx_stat(req->srv->db, id, &info)) < 0)
        return serve_reply_failure(req, rc, "stat");
    struct MHD_Response *resp = MHD_create_response_from_callback(info.size, 4096, no_body, NULL, NULL);
    if (!resp)
        return MHD_NO;
    serve_add_object_headers(resp, etag);
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
    serve_add_object_headers(resp, etag);
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

static bool etag_matches(struct serve_request *req, const char *etag)
{
    const char *inm = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                  MHD_HTTP_HEADER_IF_NONE_MATCH);
    return inm && (strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL);
}

enum MHD_Result serve_send_object(struct serve_request *req, const minidbx_id *id)
{
    char etag[MINIDBX_ID_HEX_SIZE + 2], text[80];
    struct object_source src;
    struct serve_range range;
    enum MHD_Result result;

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
    int rc = source_open(req->srv, id, &src);
    if (rc < 0)
        return reply_source_failure(req, rc, &src);
    serve_parse_range(MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE),
                      src.size, &range);
    if (range.status == MHD_HTTP_RANGE_NOT_SATISFIABLE) {
        source_close(&src);
        return send_unsatisfiable(req, src.size);
    }
    uint64_t size = src.size;
    struct MHD_Response *resp = object_response(req, &src, &range, &result);
    if (!resp)
        return result;
    serve_add_object_headers(resp, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    if (range.status == MHD_HTTP_PARTIAL_CONTENT) {
        snprintf(text, sizeof text, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, range.start,
                 range.start + range.length - 1, size);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, text);
    }
    req->reply_bytes = range.length;
    return serve_queue(req, range.status, resp);
}
