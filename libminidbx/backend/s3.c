/*
 * s3.c - the s3:// backend: a store in an S3 bucket (any S3-compatible
 * engine: AWS, Ceph RGW, ...), over the libcurl layer the remote backends
 * share (remote.h). This file: configuration, signing, the engine's
 * errors, and the object calls. s3_list.c has listings, names, verify, gc
 * and info; s3_stream.c writers (multipart upload) and readers.
 *
 * Requests are signed by libcurl (CURLOPT_AWS_SIGV4), path style
 * (ENDPOINT/BUCKET/KEY). What curl 7.88 leaves to us, and S3 engines
 * insist on: an x-amz-content-sha256 header (the id, for an object's
 * PUT, since an id is the SHA-256 of the bytes; else UNSIGNED-PAYLOAD),
 * query strings already canonical (sorted, "name=value" each, values
 * RFC 3986-encoded: callers add parameters in name order), and keys
 * percent-encoded except for A-Z a-z 0-9 - . _ ~ and '/'.
 *
 * Credentials live in this struct and in curl's handles only: no message,
 * log line or info carries them (URLs hold no credentials; errors name the
 * method and URL).
 */
#include "s3.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#define DEFAULT_REGION "us-east-1"
#define PART_SIZE_MIN (5u << 20)
#define PART_THREADS 2
#define COPY_MAX (5ull << 30)
#define RANGE_SIZE (8u << 20)   /* a reader's GETs: bytes each */
#define RANGE_SIZE_MIN (64u << 10)
#define LIST_PAGE 1000
#define ATTEMPTS 5
#define STALE_S 3600
#define MARK_TTL_S 30
#define MISSING_LIST_MIN 1000 /* ids: from this many on, missing tries a listing */
#define MISSING_KEYS_PER_ID 20
#define UNSIGNED_PAYLOAD "x-amz-content-sha256: UNSIGNED-PAYLOAD"

/* ---- XML (libxml2) ----------------------------------------------------------- */

static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    xmlInitParser();
}

static xmlDocPtr xml_read(const char *body, size_t len)
{
    if (!body || len == 0 || len > INT32_MAX)
        return NULL;
    return xmlReadMemory(body, (int)len, NULL, NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static xmlNodePtr xml_child(xmlNodePtr node, const char *tag)
{
    for (xmlNodePtr c = node ? node->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, tag) == 0)
            return c;
    return NULL;
}

static char *xml_node_text(xmlNodePtr node)
{
    xmlChar *text = node ? xmlNodeGetContent(node) : NULL;
    char *copy = text ? strdup((const char *)text) : NULL;
    xmlFree(text);
    return copy;
}

char *s3_xml_text(const char *body, size_t len, const char *tag)
{
    xmlDocPtr doc = xml_read(body, len);
    char *text = doc ? xml_node_text(xml_child(xmlDocGetRootElement(doc), tag)) : NULL;
    xmlFreeDoc(doc);
    return text;
}

char *s3_error_message(const char *body, size_t len)
{
    xmlDocPtr doc = xml_read(body, len);
    xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL;
    char *message = NULL;

    if (root && strcmp((const char *)root->name, "Error") == 0) {
        char *code = xml_node_text(xml_child(root, "Code"));
        char *text = xml_node_text(xml_child(root, "Message"));
        char *bucket = xml_node_text(xml_child(root, "BucketName"));
        size_t size = 64 + (code ? strlen(code) : 0) + (text ? strlen(text) : 0) +
                      (bucket ? strlen(bucket) : 0);
        if ((message = malloc(size)) != NULL)
            snprintf(message, size, "%s%s%s%s%s%s", code ? code : "error",
                     text && text[0] ? ": " : "", text ? text : "",
                     bucket ? " (bucket '" : "", bucket ? bucket : "", bucket ? "')" : "");
        free(code);
        free(text);
        free(bucket);
    }
    xmlFreeDoc(doc);
    return message;
}

int64_t s3_parse_time(const char *text)
{
    struct tm tm;
    char *end;
    long ms = 0;

    memset(&tm, 0, sizeof tm);
    if (!text)
        return -1;
    if (!(end = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm)) &&
        !(end = strptime(text, "%a, %d %b %Y %H:%M:%S", &tm)))
        return -1;
    if (*end == '.')
        ms = strtol(end + 1, NULL, 10) % 1000;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000000000 + (int64_t)ms * 1000000;
}

/* ---- errors ------------------------------------------------------------------- */

/* What the engine's status means here. 503 (SlowDown) and every other 5xx
 * are EIO, once remote.c's retries are spent. */
static int status_code(long status, const char *body, size_t len)
{
    (void)body, (void)len;
    switch (status) {
    case 401:
    case 403:
        return MINIDBX_EPERM;
    case 404:
        return MINIDBX_ENOTFOUND;
    case 400:
        return MINIDBX_EINVAL;
    case 411:
    case 413:
        return MINIDBX_ETOOBIG;
    case 507:
        return MINIDBX_ENOSPC;
    default:
        return MINIDBX_EIO;
    }
}

int s3_body_error(struct s3_backend *sb, const dbx_remote_call *call)
{
    char *message = s3_error_message(call->buf, call->buf_len);
    if (!message)
        return 0;
    int rc = minidbx_error_set(MINIDBX_EIO, "%s %s: HTTP %ld: %s", call->method, call->url,
                               call->status, message);
    (void)sb;
    free(message);
    return rc;
}

/* ---- requests ------------------------------------------------------------------ */

/* Each request: SigV4 by curl, the payload's hash (or UNSIGNED-PAYLOAD),
 * the session token. */
static int prepare(dbx_remote *r, CURL *curl, const dbx_remote_call *call,
                   struct curl_slist **headers)
{
    struct s3_backend *sb = r->prepare_ctx;
    bool hashed = false;

    for (int i = 0; i < DBX_REMOTE_EXTRA_HEADERS; i++)
        if (call->extra_headers[i] && strncmp(call->extra_headers[i], "x-amz-content-sha256:", 21) == 0)
            hashed = true;
    struct curl_slist *more = hashed ? *headers : curl_slist_append(*headers, UNSIGNED_PAYLOAD);
    if (more && sb->token_header)
        more = curl_slist_append(more, sb->token_header);
    if (!more)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    *headers = more;
    if (curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sb->sigv4) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_USERNAME, sb->access_key) != CURLE_OK ||
        curl_easy_setopt(curl, CURLOPT_PASSWORD, sb->secret_key) != CURLE_OK)
        return minidbx_error_set(MINIDBX_EUNSUPPORTED, "s3: this libcurl cannot sign requests "
                                 "(CURLOPT_AWS_SIGV4 needs curl 7.75 or later)");
    return 0;
}

void s3_object_key(const minidbx_id *id, char out[S3_ID_KEY_SIZE])
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    snprintf(out, S3_ID_KEY_SIZE, "objects/%.2s/%s", hex, hex);
}

int s3_call(struct s3_backend *sb, dbx_remote_call *call, const char *method, const char *key)
{
    dbx_remote_call_init(call, method);
    /* the bucket itself is ENDPOINT/BUCKET, without a slash: that is how
     * engines (RGW) canonicalise it for the signature */
    int rc = dbx_remote_call_url(&sb->remote, call, key ? "/" : "", NULL);
    if (rc == 0 && key) {
        if ((rc = dbx_remote_call_append_path(call, sb->prefix)) == 0)
            rc = dbx_remote_call_append_path(call, key);
    }
    return rc;
}

int s3_key_path(struct s3_backend *sb, const char *key, char *out, size_t size)
{
    dbx_remote_call call;
    int rc = s3_call(sb, &call, "GET", key);
    /* without the base URL: dbx_remote_stream_start adds it */
    const char *path = call.url + strlen(sb->remote.url);
    if (rc == 0 && (size_t)snprintf(out, size, "%s", path) >= size)
        rc = minidbx_error_set(MINIDBX_EINVAL, "s3: key too long: %s", key);
    return rc;
}

int s3_expect_ok(struct s3_backend *sb, dbx_remote_call *call)
{
    return dbx_remote_expect_ok(&sb->remote, call);
}

void s3_header_value(const char *line, size_t len, const char *name, char *out, size_t size)
{
    const char *value;
    if (!dbx_remote_header_is(line, len, name, &value))
        return;
    size_t n = len - (size_t)(value - line);
    while (n && (value[n - 1] == '\r' || value[n - 1] == '\n' || value[n - 1] == ' '))
        n--;
    snprintf(out, size, "%.*s", (int)(n < size - 1 ? n : size - 1), value);
}

void s3_version_header(void *ctx, const char *line, size_t len)
{
    struct s3_version *v = ctx;
    char text[64] = "";

    s3_header_value(line, len, "ETag", v->etag, sizeof v->etag);
    s3_header_value(line, len, "Last-Modified", text, sizeof text);
    if (text[0])
        v->mtime_ns = s3_parse_time(text);
}

bool s3_version_equal(const struct s3_version *a, const struct s3_version *b)
{
    return strcmp(a->etag, b->etag) == 0 && a->mtime_ns == b->mtime_ns;
}

int s3_head(struct s3_backend *sb, const char *key, uint64_t *size, int64_t *mtime_ns)
{
    struct s3_version version = { "", -1 };
    int rc = s3_head_version(sb, key, size, &version);
    if (mtime_ns && rc > 0)
        *mtime_ns = version.mtime_ns;
    return rc;
}

int s3_head_version(struct s3_backend *sb, const char *key, uint64_t *size,
                    struct s3_version *version)
{
    dbx_remote_call call;
    struct s3_version unused;
    int rc = s3_call(sb, &call, "HEAD", key);

    if (!version)
        version = &unused;
    *version = (struct s3_version){ "", -1 };
    call.header_fn = s3_version_header;
    call.header_ctx = version;
    if (rc == 0 && (rc = dbx_remote_perform(&sb->remote, &call)) == 0) {
        if (call.status / 100 == 2) {
            rc = 1;
            if (size)
                *size = call.content_length;
        } else if (call.status != 404) {
            rc = dbx_remote_status_error(&sb->remote, &call);
        }
    }
    free(call.buf);
    return rc;
}

/* DELETE key; with if_match (a header line, or NULL) conditional on it;
 * by deadline_ns (dbx_boottime_ns; 0: none) or not at all. */
static int delete_key(struct s3_backend *sb, const char *key, const char *if_match, int64_t deadline_ns,
                      long *status)
{
    dbx_remote_call call;
    int rc = s3_call(sb, &call, "DELETE", key);
    call.extra_headers[0] = if_match;
    call.deadline_ns = deadline_ns;
    if (rc == 0 && (rc = dbx_remote_perform(&sb->remote, &call)) == 0) {
        *status = call.status;
        if (call.status / 100 != 2 && call.status != 412)
            rc = dbx_remote_status_error(&sb->remote, &call);
    }
    free(call.buf);
    return rc;
}

int s3_delete_key(struct s3_backend *sb, const char *key)
{
    long status;
    return delete_key(sb, key, NULL, 0, &status);
}

int s3_delete_key_by(struct s3_backend *sb, const char *key, const struct s3_version *version,
                     int64_t deadline_ns)
{
    struct s3_version now;
    char if_match[S3_ETAG_SIZE + 16];
    long status = 0;
    int rc = version ? s3_head_version(sb, key, NULL, &now) : 1;

    if (rc <= 0 || (version && !s3_version_equal(&now, version)))
        return rc < 0 ? rc : 1;
    if (version)
        snprintf(if_match, sizeof if_match, "If-Match: %s", version->etag);
    if ((rc = delete_key(sb, key, version ? if_match : NULL, deadline_ns, &status)) < 0)
        return rc;
    return status == 412 ? 1 : 0;
}

int s3_delete_key_if(struct s3_backend *sb, const char *key, const struct s3_version *version)
{
    return s3_delete_key_by(sb, key, version, 0);
}

int s3_random_hex(char *out, size_t bytes)
{
    unsigned char raw[32];
    if (bytes > sizeof raw || getrandom(raw, bytes, 0) != (ssize_t)bytes)
        return dbx_error_errno(errno ? errno : EIO, "s3: getrandom");
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* ---- many requests at once ----------------------------------------------------- */

struct each {
    int (*fn)(void *ctx, size_t i);
    void *ctx;
    size_t count, next;
    pthread_mutex_t lock;
    size_t failed_at; /* the lowest index that failed, or count */
    int rc;
    char message[512];
};

static void *each_main(void *cls)
{
    struct each *e = cls;
    for (;;) {
        pthread_mutex_lock(&e->lock);
        size_t i = e->next++;
        bool stop = i >= e->count || e->failed_at < e->count;
        pthread_mutex_unlock(&e->lock);
        if (stop)
            return NULL;
        int rc = e->fn(e->ctx, i);
        if (rc < 0) {
            pthread_mutex_lock(&e->lock);
            if (i < e->failed_at) {
                e->failed_at = i;
                e->rc = rc;
                snprintf(e->message, sizeof e->message, "%s", minidbx_errmsg(NULL));
            }
            pthread_mutex_unlock(&e->lock);
        }
    }
}

int s3_each(size_t count, unsigned threads, int (*fn)(void *ctx, size_t i), void *ctx)
{
    struct each e = { .fn = fn, .ctx = ctx, .count = count, .failed_at = count };
    pthread_t tids[32];
    unsigned started = 0;

    if (threads > 32)
        threads = 32;
    if (threads > count)
        threads = (unsigned)count;
    if (threads <= 1) {
        for (size_t i = 0; i < count; i++) {
            int rc = fn(ctx, i);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    pthread_mutex_init(&e.lock, NULL);
    while (started < threads && dbx_thread_start(&tids[started], each_main, &e) == 0)
        started++;
    if (started == 0)
        each_main(&e); /* no thread could start: do it here */
    for (unsigned i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    pthread_mutex_destroy(&e.lock);
    if (e.failed_at < count)
        return minidbx_error_set(e.rc, "%s", e.message);
    return 0;
}

/* ---- objects ------------------------------------------------------------------- */

int s3_put_object(struct s3_backend *sb, const minidbx_id *id, const void *data, size_t size,
                  int *created)
{
    dbx_remote_call call;
    char key[S3_ID_KEY_SIZE], hex[MINIDBX_ID_HEX_SIZE];
    char hash_header[sizeof "x-amz-content-sha256: " + MINIDBX_ID_HEX_SIZE];

    s3_object_key(id, key);
    minidbx_id_format(id, hex);
    /* The id is the body's SHA-256: over http:// the engine checks the
     * bytes it got against it (over https://, TLS guards them, and the
     * engine's hashing is saved: UNSIGNED-PAYLOAD, as boto3 does). */
    snprintf(hash_header, sizeof hash_header, "x-amz-content-sha256: %s", hex);
    int rc = s3_call(sb, &call, "PUT", key);
    call.body = data ? data : "";
    call.body_size = size;
    call.content_type = "application/octet-stream";
    call.extra_headers[0] = sb->sign_payload ? hash_header : NULL;
    /* only if the key is new: the engine's own answer to "created?" */
    call.extra_headers[1] = created ? "If-None-Match: *" : NULL;
    if (rc == 0 && (rc = dbx_remote_perform(&sb->remote, &call)) == 0) {
        if (created && call.status == 412) {
            /* there already: written again all the same, which moves its
             * Last-Modified past a gc that began before (and mends it) */
            *created = 0;
            free(call.buf);
            return s3_put_object(sb, id, data, size, NULL);
        }
        if (call.status / 100 != 2)
            rc = dbx_remote_status_error(&sb->remote, &call);
        else if (created)
            *created = 1;
    }
    free(call.buf);
    return rc;
}

static int s3_put(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size)
{
    return s3_put_object(s3_of(be), id, data, size, NULL);
}

static int s3_get(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size)
{
    struct s3_backend *sb = s3_of(be);
    dbx_remote_call call;
    char key[S3_ID_KEY_SIZE];

    s3_object_key(id, key);
    int rc = s3_call(sb, &call, "GET", key);
    if (rc == 0)
        rc = dbx_remote_get_object(&sb->remote, &call, id);
    if (rc < 0)
        return rc;
    *out_data = call.buf;
    *out_size = call.buf_len;
    return 0;
}

static int s3_exists(minidbx_backend *be, const minidbx_id *id)
{
    char key[S3_ID_KEY_SIZE];
    s3_object_key(id, key);
    return s3_head(s3_of(be), key, NULL, NULL);
}

struct missing_ctx {
    struct s3_backend *sb;
    const minidbx_id *ids;
    unsigned char *absent;
};

static int missing_one(void *cls, size_t i)
{
    struct missing_ctx *m = cls;
    char key[S3_ID_KEY_SIZE];
    s3_object_key(&m->ids[i], key);
    int rc = s3_head(m->sb, key, NULL, NULL);
    if (rc >= 0)
        m->absent[i] = rc == 0;
    return rc < 0 ? rc : 0;
}

/* Many ids: one listing of objects/ (1,000 keys a request) while it
 * reads at most MISSING_KEYS_PER_ID keys per id asked about, else (and for
 * a few ids) a HEAD per id, 16 at a time. */
static int s3_missing(minidbx_backend *be, const minidbx_id *ids, size_t count,
                      minidbx_id *out_missing, size_t *out_count)
{
    struct missing_ctx m = { s3_of(be), ids, calloc(count ? count : 1, 1) };
    size_t found = 0;
    int rc = 0;

    if (!m.absent)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if (count >= m.sb->missing_list_min)
        rc = s3_missing_by_listing(m.sb, ids, count, m.absent, (uint64_t)count * MISSING_KEYS_PER_ID);
    if (rc == 0)
        rc = s3_each(count, 16, missing_one, &m);
    if (rc >= 0) {
        rc = 0;
        /* out_missing may alias ids: found <= i, in order */
        for (size_t i = 0; i < count; i++)
            if (m.absent[i])
                out_missing[found++] = ids[i];
        *out_count = found;
    }
    free(m.absent);
    return rc;
}

static int s3_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out)
{
    struct s3_backend *sb = s3_of(be);
    char key[S3_ID_KEY_SIZE];
    minidbx_object_info info;
    int rc;

    memset(&info, 0, sizeof info);
    info.id = *id;
    s3_object_key(id, key);
    if ((rc = s3_head(sb, key, &info.size, &info.created_ns)) == 0) {
        char hex[MINIDBX_ID_HEX_SIZE];
        minidbx_id_format(id, hex);
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "stat %s: no such object in %s", hex, sb->location);
    }
    if (rc > 0)
        rc = s3_refs_count(sb, id, &info.refs);
    if (rc == 0)
        *out = info;
    return rc;
}

/* ---- batches ------------------------------------------------------------------- */

/* S3 has no transactions: a batch is a plain sequence (see minidbx.h). The
 * batch only keeps the thread's state, one per thread as elsewhere. */
static _Thread_local struct s3_backend *thread_batch;

static int s3_batch_begin(minidbx_backend *be)
{
    (void)be;
    if (thread_batch)
        return minidbx_error_set(MINIDBX_ESTATE, "batch: this thread has a batch open already");
    thread_batch = s3_of(be);
    return 0;
}

static int batch_end(minidbx_backend *be, const char *what)
{
    if (thread_batch != s3_of(be))
        return minidbx_error_set(MINIDBX_ESTATE, "%s: no batch open by this thread", what);
    thread_batch = NULL;
    return 0;
}

static int s3_batch_commit(minidbx_backend *be)
{
    return batch_end(be, "batch commit");
}

static int s3_batch_abort(minidbx_backend *be)
{
    return batch_end(be, "batch abort");
}

/* ---- open and close ---------------------------------------------------------------- */

static void s3_free(minidbx_backend *be)
{
    struct s3_backend *sb = s3_of(be);

    if (thread_batch == sb)
        thread_batch = NULL;
    dbx_remote_free(&sb->remote);
    free(sb->bucket);
    free(sb->prefix);
    free(sb->location);
    free(sb->sigv4);
    free(sb->access_key);
    if (sb->secret_key) {
        memset(sb->secret_key, 0, strlen(sb->secret_key));
        free(sb->secret_key);
    }
    free(sb->token_header);
    free(sb);
}

static const minidbx_backend s3_table = {
    .version = MINIDBX_BACKEND_VERSION,
    .name = "s3",
    .free = s3_free,
    .put = s3_put,
    .get = s3_get,
    .exists = s3_exists,
    .missing = s3_missing,
    .stat = s3_stat,
    .del = s3_be_del,
    .list = s3_be_list,
    .writer_open = s3_be_writer_open,
    .reader_open = s3_be_reader_open,
    .batch_begin = s3_batch_begin,
    .batch_commit = s3_batch_commit,
    .batch_abort = s3_batch_abort,
    .name_set = s3_be_name_set,
    .name_get = s3_be_name_get,
    .name_delete = s3_be_name_delete,
    .name_list = s3_be_name_list,
    .verify = s3_be_verify,
    .gc = s3_be_gc,
    .gc_ex = s3_be_gc_ex,
    .info = s3_be_info,
    .name_set_at = s3_be_name_set_at,
    /* get and readers hash what arrives (remote.c) */
    .flags = MINIDBX_BACKEND_VERIFIED_READS,
};

static const char *env(const char *name)
{
    const char *value = getenv(name);
    return value && value[0] ? value : NULL;
}

static unsigned long env_number(const char *name, unsigned long fallback, unsigned long min)
{
    const char *value = env(name);
    unsigned long n = value ? strtoul(value, NULL, 10) : fallback;
    return n < min ? min : n;
}

/* A bucket name as S3 has them: 3..63 of a-z 0-9 . - (and _ for old ones). */
static bool bucket_valid(const char *bucket, size_t len)
{
    if (len < 3 || len > 63)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((bucket[i] >= 'a' && bucket[i] <= 'z') || (bucket[i] >= '0' && bucket[i] <= '9') ||
              bucket[i] == '.' || bucket[i] == '-' || bucket[i] == '_'))
            return false;
    return true;
}

static char *dup_printf(const char *a, const char *b, const char *c)
{
    size_t size = strlen(a) + strlen(b) + strlen(c) + 1;
    char *out = malloc(size);
    if (out)
        snprintf(out, size, "%s%s%s", a, b, c);
    return out;
}

/* s3://BUCKET[/PREFIX[/]] -> bucket, "PREFIX/" (or ""), location. */
static int parse_location(struct s3_backend *sb, const char *location)
{
    const char *rest = location + strlen("s3://");
    size_t bucket_len = strcspn(rest, "/");
    const char *prefix = rest[bucket_len] ? rest + bucket_len + 1 : "";
    size_t prefix_len = strlen(prefix);

    while (prefix_len && prefix[prefix_len - 1] == '/')
        prefix_len--;
    if (!bucket_valid(rest, bucket_len) || prefix[0] == '/' || prefix_len > 512 ||
        strcspn(prefix, "?#") < prefix_len)
        return minidbx_error_set(MINIDBX_EINVAL, "%s: not s3://BUCKET[/PREFIX] (a bucket is 3..63 "
                                 "of a-z 0-9 . -; a prefix has no leading '/', '?' or '#')", location);
    if (!(sb->bucket = strndup(rest, bucket_len)) || !(sb->prefix = malloc(prefix_len + 2)) ||
        !(sb->location = malloc(bucket_len + prefix_len + 8)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    snprintf(sb->prefix, prefix_len + 2, "%.*s%s", (int)prefix_len, prefix, prefix_len ? "/" : "");
    snprintf(sb->location, bucket_len + prefix_len + 8, "s3://%s%s%.*s", sb->bucket,
             prefix_len ? "/" : "", (int)prefix_len, prefix);
    return 0;
}

static int configure(struct s3_backend *sb, const char *location, const minidbx_options *opts)
{
    const char *key = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");
    const char *token = env("AWS_SESSION_TOKEN");
    const char *region = env("AWS_REGION");
    const char *endpoint = env("MINIDBX_S3_ENDPOINT");
    char aws[128], *base;
    int rc;

    if (!region)
        region = env("AWS_DEFAULT_REGION");
    if (!region)
        region = DEFAULT_REGION;
    if ((rc = parse_location(sb, location)) < 0)
        return rc;
    if (!key || !secret)
        return minidbx_error_set(MINIDBX_EPERM, "%s: no credentials (set AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY)", sb->location);
    if (strlen(region) > 64 || strcspn(region, ":/ ") != strlen(region))
        return minidbx_error_set(MINIDBX_EINVAL, "AWS_REGION: not a region: %s", region);
    if (!endpoint) {
        snprintf(aws, sizeof aws, "https://s3.%s.amazonaws.com", region);
        endpoint = aws;
    }
    if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
        return minidbx_error_set(MINIDBX_EINVAL, "MINIDBX_S3_ENDPOINT: not an http:// or https:// "
                                 "URL: %s", endpoint);
    sb->access_key = strdup(key);
    sb->secret_key = strdup(secret);
    sb->sigv4 = dup_printf("aws:amz:", region, ":s3");
    sb->token_header = token ? dup_printf("x-amz-security-token: ", token, "") : NULL;
    if (!sb->access_key || !sb->secret_key || !sb->sigv4 || (token && !sb->token_header))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    size_t len = strlen(endpoint);
    while (len && endpoint[len - 1] == '/')
        len--;
    if (!(base = malloc(len + strlen(sb->bucket) + 2)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    snprintf(base, len + strlen(sb->bucket) + 2, "%.*s/%s", (int)len, endpoint, sb->bucket);
    rc = dbx_remote_init(&sb->remote, base, opts);
    free(base);
    /* dbx_remote_init reads a bearer token; S3 signs instead */
    free(sb->remote.auth_header);
    sb->remote.auth_header = NULL;
    sb->remote.error_message = s3_error_message;
    sb->remote.status_code = status_code;
    sb->remote.prepare = prepare;
    sb->remote.prepare_ctx = sb;
    sb->remote.retry_server_errors = true;
    sb->remote.signed_headers = true;
    sb->remote.delete_idempotent = true;
    sb->remote.attempts = ATTEMPTS;
    sb->sign_payload = strncmp(endpoint, "http://", 7) == 0;
    sb->part_size = env_number("MINIDBX_S3_PART_SIZE", PART_SIZE_MIN, PART_SIZE_MIN);
    sb->part_threads = (unsigned)env_number("MINIDBX_S3_PART_THREADS", PART_THREADS, 1);
    sb->copy_max = env_number("MINIDBX_S3_COPY_MAX", COPY_MAX, PART_SIZE_MIN);
    if (sb->copy_max > COPY_MAX)
        sb->copy_max = COPY_MAX;
    if (sb->copy_max < sb->part_size)
        sb->copy_max = sb->part_size;
    sb->remote.range_size = env_number("MINIDBX_S3_RANGE_SIZE", RANGE_SIZE, RANGE_SIZE_MIN);
    sb->missing_list_min = env_number("MINIDBX_S3_MISSING_LIST_MIN", MISSING_LIST_MIN, 1);
    sb->list_page = (unsigned)env_number("MINIDBX_S3_LIST_PAGE", LIST_PAGE, 1);
    if (sb->list_page > LIST_PAGE)
        sb->list_page = LIST_PAGE;
    sb->stale_ns = (int64_t)env_number("MINIDBX_S3_STALE_SECONDS", STALE_S, 0) * 1000000000;
    sb->mark_ttl_ns = (int64_t)env_number("MINIDBX_S3_MARK_TTL_SECONDS", MARK_TTL_S, 1) * 1000000000;
    return rc;
}

/* Is the bucket there, and are we let in? One small listing, whose error
 * (unlike a HEAD's) says why: SignatureDoesNotMatch, NoSuchBucket, ... */
static int check_bucket(struct s3_backend *sb)
{
    dbx_remote_call call;
    int rc = s3_call(sb, &call, "GET", NULL);

    if (rc == 0 && (rc = dbx_remote_call_query(&call, "list-type", "2")) == 0 &&
        (rc = dbx_remote_call_query(&call, "max-keys", "1")) == 0 &&
        (rc = dbx_remote_call_query(&call, "prefix", sb->prefix)) == 0)
        rc = s3_expect_ok(sb, &call);
    free(call.buf);
    return rc;
}

int dbx_s3_open(minidbx_backend **out, const char *location, const minidbx_options *opts)
{
    struct s3_backend *sb = calloc(1, sizeof *sb);
    int rc;

    if (!sb)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    pthread_once(&xml_once, xml_init);
    sb->base = s3_table;
    if ((rc = configure(sb, location, opts)) == 0)
        rc = check_bucket(sb);
    if (rc < 0) {
        s3_free(&sb->base);
        return rc;
    }
    *out = &sb->base;
    return 0;
}
