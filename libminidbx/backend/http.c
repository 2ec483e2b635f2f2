/*
 * http.c - the http:// (and https://) backend: a client of `mdbx serve`
 * over libcurl.
 *
 * Every call is one request of the node's /v1 API. Easy handles are kept
 * in a small pool so that connections are reused. Requests that may be
 * repeated (see retryable) are retried a bounded number of times on
 * transport errors.
 * The library core verifies what get and readers hand out against the id,
 * so a lying node gives MINIDBX_ECORRUPT; this file only moves bytes.
 *
 * Verify and gc run on the node (POST /v1/verify, POST /v1/gc), which
 * answers with the report and the problems as JSON. Batches cannot share a
 * transaction with the node: see "batches" below.
 *
 * Streams move in bounded memory: a writer is a PUT whose chunked body
 * curl pulls, in a thread, from one end of a socketpair that
 * minidbx_writer_write pushes into; a reader is a GET whose body a thread
 * pushes into a socketpair that minidbx_reader_read pulls from. The socket
 * buffers are the only buffers.
 */
#include "internal.h"
#include "wire.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define POOL_SIZE 8
#define DEFAULT_TIMEOUT_MS 30000u
#define ATTEMPTS 3
#define RETRY_PAUSE_MS 50
/* The node answers at most this many entries per list request. */
#define PAGE_MAX 10000
#define MISSING_BATCH 10000
#define URL_MAX 2048

struct http_backend {
    minidbx_backend base;
    char *url;           /* without a trailing slash */
    char *auth_header;   /* "Authorization: Bearer ...", or NULL */
    long timeout_ms;
    pthread_mutex_t pool_lock;
    CURL *pool[POOL_SIZE];
    size_t pool_count;
};

/* One request and what came back. */
struct http_call {
    const char *method;
    char url[URL_MAX];
    /* request body: a buffer, or a stream pulled from fd (chunked) */
    const char *body;
    const char *content_type; /* of the body, or NULL */
    size_t body_size;
    size_t body_sent;
    int body_fd;
    volatile int *body_aborted;
    bool long_running;        /* no stall timeout: the node is silent until done */
    /* response body: into buf, or pushed into sink_fd */
    char *buf;
    size_t buf_len, buf_cap;
    int sink_fd;
    /* response */
    long status;
    uint64_t content_length;
    int64_t created_ns;
    uint64_t refs;
    bool is_inline;
    int error_code;           /* X-Minidbx-Error, 0 if none came */
    char curl_error[CURL_ERROR_SIZE];
};

static void call_init(struct http_call *call, const char *method)
{
    memset(call, 0, sizeof *call);
    call->method = method;
    call->body_fd = -1;
    call->sink_fd = -1;
}

/* ---- URLs ---------------------------------------------------------------- */

static bool url_byte_plain(unsigned char c, bool keep_slash)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
}

/* Append text to out (of out_size), percent-encoding what is not plain. */
static int url_append(char *out, size_t out_size, const char *text, bool escape, bool keep_slash)
{
    size_t len = strlen(out);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        bool plain = !escape || url_byte_plain(*p, keep_slash);
        if (len + (plain ? 1 : 3) >= out_size)
            return minidbx_error_set(MINIDBX_EINVAL, "http: URL longer than %d bytes", URL_MAX);
        if (plain)
            out[len++] = (char)*p;
        else
            len += (size_t)snprintf(out + len, 4, "%%%02X", *p);
    }
    out[len] = '\0';
    return 0;
}

/* call->url = base + path (+ "/" + the id). */
static int call_url(struct http_backend *hb, struct http_call *call, const char *path,
                    const minidbx_id *id)
{
    char hex[MINIDBX_ID_HEX_SIZE] = "";
    if (id)
        minidbx_id_format(id, hex);
    call->url[0] = '\0';
    int rc = url_append(call->url, sizeof call->url, hb->url, false, false);
    if (rc == 0)
        rc = url_append(call->url, sizeof call->url, path, false, false);
    if (rc == 0 && id)
        rc = url_append(call->url, sizeof call->url, hex, false, false);
    return rc;
}

/* Append "?key=value" or "&key=value", the value escaped; NULL values skip. */
static int call_query(struct http_call *call, const char *key, const char *value)
{
    if (!value)
        return 0;
    int rc = url_append(call->url, sizeof call->url, strchr(call->url, '?') ? "&" : "?", false,
                        false);
    if (rc == 0)
        rc = url_append(call->url, sizeof call->url, key, false, false);
    if (rc == 0)
        rc = url_append(call->url, sizeof call->url, "=", false, false);
    if (rc == 0)
        rc = url_append(call->url, sizeof call->url, value, true, false);
    return rc;
}

/* ---- curl callbacks ----------------------------------------------------------- */

static int buf_reserve(struct http_call *call, size_t more)
{
    if (call->buf_len + more + 1 <= call->buf_cap)
        return 0;
    size_t cap = call->buf_cap ? call->buf_cap : 4096;
    while (cap < call->buf_len + more + 1)
        cap *= 2;
    char *grown = realloc(call->buf, cap);
    if (!grown)
        return -1;
    call->buf = grown;
    call->buf_cap = cap;
    return 0;
}

static size_t on_body(char *data, size_t size, size_t count, void *cls)
{
    struct http_call *call = cls;
    size_t n = size * count;

    /* An error reply's body goes to buf (for its message), never to a sink. */
    if (call->sink_fd >= 0 && call->status / 100 == 2) {
        for (size_t done = 0; done < n;) {
            ssize_t sent = send(call->sink_fd, data + done, n - done, MSG_NOSIGNAL);
            if (sent < 0 && errno == EINTR)
                continue;
            if (sent <= 0)
                return 0; /* the reader went away: stop the transfer */
            done += (size_t)sent;
        }
        return n;
    }
    if (buf_reserve(call, n) < 0)
        return 0;
    memcpy(call->buf + call->buf_len, data, n);
    call->buf_len += n;
    call->buf[call->buf_len] = '\0';
    return n;
}

static bool header_is(const char *line, size_t len, const char *name, const char **value)
{
    size_t name_len = strlen(name);
    if (len <= name_len + 1 || strncasecmp(line, name, name_len) != 0 || line[name_len] != ':')
        return false;
    *value = line + name_len + 1;
    while (**value == ' ')
        (*value)++;
    return true;
}

static size_t on_header(char *line, size_t size, size_t count, void *cls)
{
    struct http_call *call = cls;
    size_t len = size * count;
    const char *value;

    if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue): forget the last one's headers */
        call->content_length = 0;
        call->error_code = 0;
        call->status = strtol(strchr(line, ' ') ? strchr(line, ' ') : line, NULL, 10);
    } else if (header_is(line, len, "Content-Length", &value)) {
        call->content_length = strtoull(value, NULL, 10);
    } else if (header_is(line, len, "X-Minidbx-Created-Ns", &value)) {
        call->created_ns = strtoll(value, NULL, 10);
    } else if (header_is(line, len, "X-Minidbx-Refs", &value)) {
        call->refs = strtoull(value, NULL, 10);
    } else if (header_is(line, len, "X-Minidbx-Storage", &value)) {
        call->is_inline = strncmp(value, "inline", 6) == 0;
    } else if (header_is(line, len, DBX_WIRE_ERROR_HEADER, &value)) {
        size_t value_len = len - (size_t)(value - line);
        while (value_len && (value[value_len - 1] == '\r' || value[value_len - 1] == '\n' ||
                             value[value_len - 1] == ' '))
            value_len--;
        call->error_code = dbx_wire_error_code(value, value_len);
    }
    return len;
}

static size_t on_read(char *out, size_t size, size_t count, void *cls)
{
    struct http_call *call = cls;
    size_t n = size * count;

    if (call->body_fd < 0) {
        size_t left = call->body_size - call->body_sent;
        if (n > left)
            n = left;
        if (n)
            memcpy(out, call->body + call->body_sent, n);
        call->body_sent += n;
        return n;
    }
    for (;;) {
        ssize_t got = recv(call->body_fd, out, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 || (got == 0 && *call->body_aborted))
            return CURL_READFUNC_ABORT; /* the node must not see a clean end */
        return (size_t)got;
    }
}

/* ---- the pool and requests --------------------------------------------------- */

static CURL *pool_take(struct http_backend *hb)
{
    CURL *curl = NULL;
    pthread_mutex_lock(&hb->pool_lock);
    if (hb->pool_count)
        curl = hb->pool[--hb->pool_count];
    pthread_mutex_unlock(&hb->pool_lock);
    if (curl)
        curl_easy_reset(curl); /* options go; connections stay for reuse */
    else
        curl = curl_easy_init();
    return curl;
}

static void pool_give(struct http_backend *hb, CURL *curl)
{
    pthread_mutex_lock(&hb->pool_lock);
    if (hb->pool_count < POOL_SIZE) {
        hb->pool[hb->pool_count++] = curl;
        curl = NULL;
    }
    pthread_mutex_unlock(&hb->pool_lock);
    curl_easy_cleanup(curl);
}

static void set_options(struct http_backend *hb, CURL *curl, struct http_call *call,
                        struct curl_slist *headers)
{
    long timeout_s = (hb->timeout_ms + 999) / 1000;

    curl_easy_setopt(curl, CURLOPT_URL, call->url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, call->curl_error);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, hb->timeout_ms);
    if (call->long_running) {
        /* a dead peer is still noticed, if not a hung one */
        curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    } else {
        /* Streams may be long: what times out is a transfer that stalls. */
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, timeout_s);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, call);
    if (strcmp(call->method, "HEAD") == 0) {
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (strcmp(call->method, "PUT") == 0 || strcmp(call->method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, call->method);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(curl, CURLOPT_READDATA, call);
        if (call->body_fd < 0)
            curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)call->body_size);
    } else if (strcmp(call->method, "GET") != 0) {
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, call->method);
    }
}

/* What may be sent again after a transport error: reads, and the PUTs and
 * POSTs of this API whose body is in memory (an object PUT under its id,
 * a name set, the missing query: the same request has the same effect). */
static bool retryable(const struct http_call *call)
{
    return strcmp(call->method, "DELETE") != 0 && call->body_fd < 0 && call->sink_fd < 0;
}

/* Append line to *list; false (and the list freed) when out of memory. */
static bool header_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *grown = curl_slist_append(*list, line);
    if (!grown)
        curl_slist_free_all(*list);
    *list = grown;
    return grown != NULL;
}

static struct curl_slist *request_headers(struct http_backend *hb, const struct http_call *call)
{
    char content_type[64];
    struct curl_slist *headers = NULL;

    /* no "Expect: 100-continue": one round trip less per upload */
    if (!header_add(&headers, "Expect:"))
        return NULL;
    if (call->content_type) {
        snprintf(content_type, sizeof content_type, "Content-Type: %s", call->content_type);
        if (!header_add(&headers, content_type))
            return NULL;
    }
    if (hb->auth_header && !header_add(&headers, hb->auth_header))
        return NULL;
    return headers;
}

/* Run the request. 0 when an HTTP reply came (call->status says which),
 * or MINIDBX_EIO with the URL and curl's reason. */
static int http_perform(struct http_backend *hb, struct http_call *call)
{
    struct curl_slist *headers = request_headers(hb, call);
    CURL *curl = pool_take(hb);
    CURLcode res = CURLE_OUT_OF_MEMORY;
    int attempts = retryable(call) ? ATTEMPTS : 1;

    for (int i = 0; curl && headers && i < attempts; i++) {
        if (i > 0) {
            struct timespec pause = { 0, (long)RETRY_PAUSE_MS * (1L << i) * 1000000L };
            nanosleep(&pause, NULL);
        }
        call->curl_error[0] = '\0';
        call->buf_len = 0;
        call->body_sent = 0;
        call->status = 0;
        set_options(hb, curl, call, headers);
        res = curl_easy_perform(curl);
        /* Retry only what failed before any reply came. */
        if (res == CURLE_OK || call->status)
            break;
    }
    curl_slist_free_all(headers);
    if (curl) {
        curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL); /* call's, on our stack */
        pool_give(hb, curl);
    }
    if (res != CURLE_OK && !(res == CURLE_WRITE_ERROR && call->sink_fd >= 0))
        return minidbx_error_set(MINIDBX_EIO, "%s %s: %s", call->method, call->url,
                                 call->curl_error[0] ? call->curl_error : curl_easy_strerror(res));
    return 0;
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

/* The code of a reply that is not a success: the one the node named in
 * X-Minidbx-Error, else the status's (wire.c), with the node's message
 * ({"error": ...}) when it sent one. */
static int status_error(const struct http_call *call)
{
    int code = call->error_code ? call->error_code : dbx_wire_code_for_status(call->status);
    json_object *json = json_parse(call->buf, call->buf_len);
    const char *message = json_string(json, "error");
    code = minidbx_error_set(code, "%s %s: HTTP %ld: %s", call->method, call->url, call->status,
                             message ? message : minidbx_strerror(code));
    json_object_put(json);
    return code;
}

/* Perform and accept only a 2xx reply. */
static int http_expect_ok(struct http_backend *hb, struct http_call *call)
{
    int rc = http_perform(hb, call);
    if (rc == 0 && call->status / 100 != 2)
        rc = status_error(call);
    return rc;
}

static json_object *reply_json(struct http_call *call, int *rc)
{
    json_object *json = json_parse(call->buf, call->buf_len);
    if (!json)
        *rc = minidbx_error_set(MINIDBX_EIO, "%s %s: the reply is not JSON", call->method, call->url);
    return json;
}

/* Perform, accept only a 2xx reply, and parse it; NULL with *rc set if not. */
static json_object *http_expect_json(struct http_backend *hb, struct http_call *call, int *rc)
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
    struct http_call call;
    int rc;

    call_init(&call, "PUT");
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
    struct http_call call;
    int rc;

    call_init(&call, "GET");
    if ((rc = call_url(http_of(be), &call, "/v1/objects/", id)) == 0)
        rc = http_expect_ok(http_of(be), &call);
    if (rc == 0 && buf_reserve(&call, 0) < 0)
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if (rc < 0) {
        free(call.buf);
        return rc;
    }
    *out_data = call.buf;
    *out_size = call.buf_len;
    return 0;
}

static int http_head(struct http_backend *hb, const minidbx_id *id, struct http_call *call)
{
    call_init(call, "HEAD");
    int rc = call_url(hb, call, "/v1/objects/", id);
    return rc < 0 ? rc : http_perform(hb, call);
}

static int http_exists(minidbx_backend *be, const minidbx_id *id)
{
    struct http_call call;
    int rc = http_head(http_of(be), id, &call);

    if (rc == 0)
        rc = call.status == 200 ? 1 : call.status == 404 ? 0 : status_error(&call);
    free(call.buf);
    return rc;
}

static int http_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out)
{
    struct http_call call;
    int rc = http_head(http_of(be), id, &call);

    if (rc == 0 && call.status != 200)
        rc = status_error(&call);
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        out->id = *id;
        out->size = call.content_length;
        out->created_ns = call.created_ns;
        out->refs = call.refs;
        out->flags = call.is_inline ? MINIDBX_OBJECT_INLINE : 0;
    }
    free(call.buf);
    return rc;
}

static int http_del(minidbx_backend *be, const minidbx_id *id, unsigned flags)
{
    struct http_call call;
    int rc;

    call_init(&call, "DELETE");
    if ((rc = call_url(http_of(be), &call, "/v1/objects/", id)) == 0 &&
        (rc = call_query(&call, "cascade", flags & MINIDBX_DELETE_CASCADE ? "1" : NULL)) == 0)
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
    struct http_call call;
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
    call_init(&call, "POST");
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
    for (size_t i = 0; i < listed; i++) {
        if ((rc = parse_id_item(json_object_array_get_idx(missing, i), &out[(*out_count)++])) < 0)
            goto out;
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

static int fetch_page(struct http_backend *hb, struct http_call *call, const char *key,
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
    struct http_call call;
    char hex[MINIDBX_ID_HEX_SIZE], limit[24];
    bool more = true;
    size_t count = 0;
    int rc = 0;

    while (rc == 0 && more && count < capacity) {
        const minidbx_id *cursor = count ? &out[count - 1].id : after;
        if (cursor)
            minidbx_id_format(cursor, hex);
        call_init(&call, "GET");
        format_limit(limit, capacity, count);
        if ((rc = call_url(hb, &call, "/v1/objects", NULL)) == 0 &&
            (rc = call_query(&call, "after", cursor ? hex : NULL)) == 0 &&
            (rc = call_query(&call, "limit", limit)) == 0)
            rc = fetch_page(hb, &call, "objects", list_item, out, &count, strtoull(limit, NULL, 10),
                            &more);
    }
    *out_count = count;
    return rc;
}

/* ---- streams --------------------------------------------------------------------- */

/* A transfer running in its own thread, fed or drained through a socketpair. */
struct http_stream {
    struct http_backend *hb;
    struct http_call call;
    int local_fd;        /* our end */
    int remote_fd;       /* curl's end, closed by the thread when done */
    pthread_t thread;
    bool started;
    int rc;              /* the transfer's result, once joined */
    char error[512];     /* and its message, set in the thread */
    volatile int aborted;
};

static void *stream_main(void *cls)
{
    struct http_stream *s = cls;
    s->rc = http_perform(s->hb, &s->call);
    /* Messages are per thread: carry this one to the caller's. */
    if (s->rc < 0)
        snprintf(s->error, sizeof s->error, "%s", minidbx_errmsg(NULL));
    /* The other side sees the end (or an error) now. */
    shutdown(s->remote_fd, SHUT_RDWR);
    return NULL;
}

static int stream_start(struct http_backend *hb, struct http_stream *s, const char *method,
                        const char *path, const minidbx_id *id, bool upload)
{
    int fds[2];
    int rc;

    s->hb = hb;
    s->local_fd = s->remote_fd = -1;
    call_init(&s->call, method);
    if ((rc = call_url(hb, &s->call, path, id)) < 0)
        return rc;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
        return dbx_error_errno(errno, "http: socketpair");
    s->local_fd = fds[0];
    s->remote_fd = fds[1];
    if (upload) {
        s->call.content_type = "application/octet-stream";
        s->call.body_fd = s->remote_fd;
        s->call.body_aborted = &s->aborted;
    } else {
        s->call.sink_fd = s->remote_fd;
    }
    if ((rc = pthread_create(&s->thread, NULL, stream_main, s)) != 0)
        return dbx_error_errno(rc, "http: starting a transfer thread");
    s->started = true;
    return 0;
}

/* Wait for the transfer; its result, or the HTTP status's error. */
static int stream_finish(struct http_stream *s)
{
    if (s->started) {
        pthread_join(s->thread, NULL);
        s->started = false;
        if (s->rc < 0)
            s->rc = minidbx_error_set(s->rc, "%s", s->error);
        else if (s->call.status / 100 != 2)
            s->rc = status_error(&s->call);
    }
    return s->rc;
}

static void stream_free(struct http_stream *s)
{
    if (s->local_fd >= 0)
        shutdown(s->local_fd, SHUT_RDWR);
    stream_finish(s);
    if (s->local_fd >= 0)
        close(s->local_fd);
    if (s->remote_fd >= 0)
        close(s->remote_fd);
    free(s->call.buf);
}

struct http_writer {
    minidbx_backend_writer base;
    struct http_stream stream;
};

static int writer_write(minidbx_backend_writer *bw, const void *data, size_t size)
{
    struct http_writer *w = (struct http_writer *)bw;
    const char *p = data;

    while (size) {
        ssize_t sent = send(w->stream.local_fd, p, size, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0) {
            /* the transfer ended early: say why */
            shutdown(w->stream.local_fd, SHUT_RDWR);
            int rc = stream_finish(&w->stream);
            return rc < 0 ? rc : minidbx_error_set(MINIDBX_EIO, "PUT %s: the node stopped reading",
                                                   w->stream.call.url);
        }
        p += sent;
        size -= (size_t)sent;
    }
    return 0;
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

    shutdown(w->stream.local_fd, SHUT_WR); /* the end of the body */
    rc = stream_finish(&w->stream);
    if (rc == 0 && (reply = reply_json(&w->stream.call, &rc)) != NULL &&
        (rc = parse_id_item(json_get(reply, "id"), &got)) == 0 &&
        !minidbx_id_equal(&got, id))
        rc = minidbx_error_set(MINIDBX_ECORRUPT, "PUT %s: the node stored the bytes under another id",
                               w->stream.call.url);
    if (rc == 0)
        *created = w->stream.call.status == 201;
    json_object_put(reply);
    stream_free(&w->stream);
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
    stream_free(&w->stream);
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
    if ((rc = stream_start(http_of(be), &w->stream, "PUT", "/v1/objects", NULL, true)) < 0) {
        writer_abort(&w->base);
        return rc;
    }
    *out = &w->base;
    return 0;
}

struct http_reader {
    minidbx_backend_reader base;
    struct http_stream stream;
    uint64_t size;
    uint64_t received;
};

static int reader_read(minidbx_backend_reader *br, void *buf, size_t capacity, size_t *out_read)
{
    struct http_reader *r = (struct http_reader *)br;
    ssize_t got;

    *out_read = 0;
    do
        got = recv(r->stream.local_fd, buf, capacity, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return dbx_error_errno(errno, "GET %s", r->stream.call.url);
    if (got > 0) {
        r->received += (uint64_t)got;
        *out_read = (size_t)got;
        return 0;
    }
    int rc = stream_finish(&r->stream);
    if (rc == 0 && r->received != r->size)
        rc = minidbx_error_set(MINIDBX_EIO, "GET %s: %" PRIu64 " of %" PRIu64 " bytes came",
                               r->stream.call.url, r->received, r->size);
    return rc;
}

static void reader_close(minidbx_backend_reader *br)
{
    struct http_reader *r = (struct http_reader *)br;
    stream_free(&r->stream);
    free(r);
}

static int http_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                            uint64_t *out_size)
{
    struct http_reader *r = calloc(1, sizeof *r);
    minidbx_object_info info;
    int rc;

    if (!r)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    r->base.read = reader_read;
    r->base.close = reader_close;
    r->stream.local_fd = r->stream.remote_fd = -1;
    /* The size first (HEAD), so that a missing object fails here. */
    if ((rc = http_stat(be, id, &info)) < 0 ||
        (rc = stream_start(http_of(be), &r->stream, "GET", "/v1/objects/", id, false)) < 0) {
        reader_close(&r->base);
        return rc;
    }
    r->size = info.size;
    *out_size = info.size;
    *out = &r->base;
    return 0;
}

/* ---- names ---------------------------------------------------------------------- */

static int name_url(struct http_backend *hb, struct http_call *call, const char *name)
{
    int rc = call_url(hb, call, "/v1/names/", NULL);
    return rc < 0 ? rc : url_append(call->url, sizeof call->url, name, true, true);
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

static int http_name_set(minidbx_backend *be, const char *name, const minidbx_id *id)
{
    struct http_call call;
    char body[MINIDBX_ID_HEX_SIZE + 16];
    char hex[MINIDBX_ID_HEX_SIZE];
    int rc;

    minidbx_id_format(id, hex);
    snprintf(body, sizeof body, "{\"id\":\"%s\"}", hex);
    call_init(&call, "PUT");
    call.body = body;
    call.body_size = strlen(body);
    call.content_type = "application/json";
    if ((rc = name_url(http_of(be), &call, name)) == 0)
        rc = http_expect_ok(http_of(be), &call);
    free(call.buf);
    return rc;
}

static int http_name_get(minidbx_backend *be, const char *name, minidbx_name_info *out)
{
    struct http_call call;
    json_object *reply = NULL;
    int rc;

    call_init(&call, "GET");
    if ((rc = name_url(http_of(be), &call, name)) == 0 &&
        (reply = http_expect_json(http_of(be), &call, &rc)) != NULL)
        rc = name_item(reply, out);
    json_object_put(reply);
    free(call.buf);
    return rc;
}

static int http_name_delete(minidbx_backend *be, const char *name)
{
    struct http_call call;
    int rc;

    call_init(&call, "DELETE");
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
    struct http_call call;
    char limit[24];
    bool more = true;
    size_t count = 0;
    int rc = 0;

    while (rc == 0 && more && count < capacity) {
        const char *cursor = count ? out[count - 1].name : after;
        call_init(&call, "GET");
        format_limit(limit, capacity, count);
        if ((rc = call_url(hb, &call, "/v1/names", NULL)) == 0 &&
            (rc = call_query(&call, "prefix", prefix && prefix[0] ? prefix : NULL)) == 0 &&
            (rc = call_query(&call, "after", cursor)) == 0 &&
            (rc = call_query(&call, "limit", limit)) == 0)
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
static void call_init_admin(struct http_call *call)
{
    call_init(call, "POST");
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

/* {"kind": N, "id": ID or null, "detail": "...", "repaired": bool} -> cb */
static int problem_item(json_object *obj, minidbx_problem_cb cb, void *ctx)
{
    json_object *id_item = json_get(obj, "id");
    const char *detail = json_string(obj, "detail");
    bool has_id = id_item != NULL;
    uint64_t kind = 0;
    minidbx_id id;

    int rc = u64_item(obj, "kind", &kind);
    if (rc == 0 && has_id)
        rc = parse_id_item(id_item, &id);
    if (rc == 0 && cb)
        cb(ctx, (minidbx_problem)kind, has_id ? &id : NULL, detail ? detail : "",
           json_true(obj, "repaired"));
    return rc;
}

static int http_verify(minidbx_backend *be, const minidbx_id *id, unsigned flags,
                       minidbx_verify_report *report, minidbx_problem_cb cb, void *ctx)
{
    struct http_backend *hb = http_of(be);
    struct http_call call;
    char hex[MINIDBX_ID_HEX_SIZE];
    json_object *reply = NULL;
    int rc;

    if (id)
        minidbx_id_format(id, hex);
    call_init_admin(&call);
    if ((rc = call_url(hb, &call, "/v1/verify", NULL)) == 0 &&
        (rc = call_query(&call, "id", id ? hex : NULL)) == 0 &&
        (rc = call_query(&call, "repair", flags & MINIDBX_VERIFY_REPAIR ? "1" : NULL)) == 0 &&
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

static int http_gc(minidbx_backend *be, minidbx_gc_report *report)
{
    struct http_backend *hb = http_of(be);
    struct http_call call;
    json_object *reply = NULL;
    int rc;

    call_init_admin(&call);
    if ((rc = call_url(hb, &call, "/v1/gc", NULL)) == 0 &&
        (reply = http_expect_json(hb, &call, &rc)) != NULL &&
        (rc = u64_item(reply, "objects_removed", &report->objects_removed)) == 0)
        rc = u64_item(reply, "bytes_removed", &report->bytes_removed);
    json_object_put(reply);
    free(call.buf);
    return rc;
}

/* ---- info and lifecycle ---------------------------------------------------------- */

static int http_info(minidbx_backend *be, minidbx_store_info *out)
{
    struct http_backend *hb = http_of(be);
    struct http_call call;
    json_object *reply = NULL;
    int rc;

    call_init(&call, "GET");
    if ((rc = call_url(hb, &call, "/v1/info", NULL)) == 0 &&
        (reply = http_expect_json(hb, &call, &rc)) != NULL) {
        if ((rc = u64_item(reply, "objects", &out->objects)) == 0 &&
            (rc = u64_item(reply, "bytes", &out->bytes)) == 0 &&
            (rc = u64_item(reply, "inline_objects", &out->inline_objects)) == 0 &&
            (rc = u64_item(reply, "file_objects", &out->file_objects)) == 0 &&
            (rc = u64_item(reply, "names", &out->names)) == 0)
            rc = u64_item(reply, "inline_threshold", &out->inline_threshold);
    }
    snprintf(out->location, sizeof out->location, "%s", hb->url);
    json_object_put(reply);
    free(call.buf);
    return rc;
}

static void http_free(minidbx_backend *be)
{
    struct http_backend *hb = http_of(be);

    if (batch_of(hb)) /* closing a handle aborts the thread's batch on it */
        http_batch_abort(be);
    while (hb->pool_count)
        curl_easy_cleanup(hb->pool[--hb->pool_count]);
    pthread_mutex_destroy(&hb->pool_lock);
    free(hb->url);
    free(hb->auth_header);
    free(hb);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int set_token(struct http_backend *hb, const minidbx_options *opts)
{
    const char *token = opts->token ? opts->token : getenv("MINIDBX_TOKEN");
    if (!token || !token[0])
        return 0;
    size_t size = strlen(token) + sizeof "Authorization: Bearer ";
    if (!(hb->auth_header = malloc(size)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    snprintf(hb->auth_header, size, "Authorization: Bearer %s", token);
    return 0;
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
    .info = http_info,
};

/* Is the node there? Its /health, so that a wrong URL fails at open. */
static int check_health(struct http_backend *hb)
{
    struct http_call call;
    call_init(&call, "GET");
    int rc = call_url(hb, &call, "/health", NULL);
    if (rc == 0)
        rc = http_expect_ok(hb, &call);
    free(call.buf);
    return rc;
}

int dbx_http_open(minidbx_backend **out, const char *url, const minidbx_options *opts)
{
    struct http_backend *hb;
    int rc;

    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return minidbx_error_set(MINIDBX_EIO, "http: curl_global_init: %s",
                                 curl_easy_strerror(curl_init_result));
    if (strlen(url) >= URL_MAX - 256)
        return minidbx_error_set(MINIDBX_EINVAL, "%s: URL too long", url);
    if (!(hb = calloc(1, sizeof *hb)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    hb->base = http_table;
    pthread_mutex_init(&hb->pool_lock, NULL);
    hb->timeout_ms = opts->timeout_ms ? (long)opts->timeout_ms : (long)DEFAULT_TIMEOUT_MS;
    if (!(hb->url = strdup(url))) {
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t len = strlen(hb->url); len > 0 && hb->url[len - 1] == '/'; len--)
        hb->url[len - 1] = '\0';
    if ((rc = set_token(hb, opts)) < 0 || (rc = check_health(hb)) < 0)
        goto fail;
    *out = &hb->base;
    return 0;
fail:
    http_free(&hb->base);
    return rc;
}
