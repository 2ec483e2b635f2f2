/*
 * remote.c - the libcurl layer of the remote backends (see remote.h): the
 * share handle for connections, requests with timeouts and bounded retries, bodies
 * in memory or streamed through a socketpair, and the error text.
 */
#include "remote.h"
#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 30000u
#define ATTEMPTS 3
#define RETRY_PAUSE_MS 50
/* The most a reply's Content-Length reserves of buf before its bytes come
 * (with buf's NUL). A node's word is no reason to map more: past this buf
 * doubles as bytes arrive (dbx_grow), so large bodies stay O(n). A 200 MiB
 * reservation cost an ASan build two thirds of its time (tests/fuzz). */
#define PREALLOC_MAX (1u << 20)
/* A reply that is not an object's bytes (a page of a listing, a report:
 * a node keeps those far smaller) goes to buf up to this much; more is
 * EIO, not memory without bound on a node's word. */
#define REPLY_MAX (64u << 20)
/* Of an error reply's body (its words, for the message) the first this
 * many bytes are kept; the transfer stops there. */
#define ERROR_WORDS_MAX (64u << 10)
/* A transfer slower than this, averaged over the timeout, fails (a node
 * that drips a byte a second would otherwise hold the caller for ever). */
#define LOW_SPEED_BYTES 1024L
/* curl's receive buffer for an object's body (its default: 16 KiB). 1 MiB
 * s3:// gets, client CPU per get (bench/s3/run.sh, 2 runs each): 1.18-1.26
 * ms with 16 KiB, 1.02-1.05 ms with 256 KiB; unverified 0.56-0.59 and
 * 0.40-0.45 ms: fewer, larger callbacks (hash updates, copies, recvs). */
#define OBJECT_BUFFER_BYTES (256L << 10)
/* Idle connections kept per client (curl's default, 5, closes one at every
 * request's end once more threads than that share a client). */
#define MAX_CONNECTIONS 64L

void dbx_remote_call_init(dbx_remote_call *call, const char *method)
{
    memset(call, 0, sizeof *call);
    call->method = method;
    call->body_fd = -1;
    call->sink_fd = -1;
    call->body_limit = UINT64_MAX;
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
            return minidbx_error_set(MINIDBX_EINVAL, "http: URL longer than %d bytes",
                                     DBX_REMOTE_URL_MAX);
        if (plain)
            out[len++] = (char)*p;
        else
            len += (size_t)snprintf(out + len, 4, "%%%02X", *p);
    }
    out[len] = '\0';
    return 0;
}

int dbx_remote_call_url(const dbx_remote *r, dbx_remote_call *call, const char *path,
                        const char *suffix)
{
    call->url[0] = '\0';
    int rc = url_append(call->url, sizeof call->url, r->url, false, false);
    if (rc == 0)
        rc = url_append(call->url, sizeof call->url, path, false, false);
    if (rc == 0 && suffix)
        rc = url_append(call->url, sizeof call->url, suffix, false, false);
    return rc;
}

/* Append "?key=value" or "&key=value", the value escaped; NULL values skip. */
int dbx_remote_call_append_path(dbx_remote_call *call, const char *text)
{
    return url_append(call->url, sizeof call->url, text, true, true);
}

int dbx_remote_call_query(dbx_remote_call *call, const char *key, const char *value)
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

int dbx_remote_buf_reserve(dbx_remote_call *call, size_t more)
{
    if (more > SIZE_MAX - call->buf_len - 1)
        return -1;
    return dbx_grow(&call->buf, &call->buf_cap, call->buf_len + more + 1, 1, 4096) < 0 ? -1 : 0;
}

static size_t on_body(char *data, size_t size, size_t count, void *cls)
{
    dbx_remote_call *call = cls;
    size_t n = size * count;

    if (call->range_refused)
        return 0;
    if (call->body_cap && call->status / 100 == 2 && call->body_cap - call->buf_len < n) {
        call->body_overflow = true;
        return 0;
    }
    if (call->status / 100 == 2 && (call->hasher || call->sink_fd >= 0)) {
        if (call->sink_fd >= 0 && call->body_limit - call->body_received < n) {
            call->body_overflow = true;
            return 0;
        }
        call->body_received += n;
        /* hashed here, while the next bytes arrive */
        if (call->hasher && dbx_hasher_update(call->hasher, data, n) < 0)
            return 0;
    }
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
    if (call->status / 100 != 2 && call->buf_len + n > ERROR_WORDS_MAX) {
        n = call->buf_len < ERROR_WORDS_MAX ? ERROR_WORDS_MAX - call->buf_len : 0;
        call->error_words_cut = true; /* keep these, then stop */
    } else if (!call->object_body && call->buf_len + n > REPLY_MAX) {
        call->reply_too_large = true;
        return 0;
    }
    if (dbx_remote_buf_reserve(call, n) < 0)
        return 0;
    memcpy(call->buf + call->buf_len, data, n);
    call->buf_len += n;
    call->buf[call->buf_len] = '\0';
    return call->error_words_cut ? 0 : n;
}

bool dbx_remote_header_is(const char *line, size_t len, const char *name, const char **value)
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
    dbx_remote_call *call = cls;
    size_t len = size * count;
    const char *value;

    if (len > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (after 100 Continue): forget the last one's headers */
        call->content_length = 0;
        call->has_content_length = false;
        call->has_content_range = false;
        call->range_refused = false;
        call->reply_too_large = call->error_words_cut = false;
        call->error_code = 0;
        call->status = strtol(strchr(line, ' ') ? strchr(line, ' ') : line, NULL, 10);
    } else if (dbx_remote_header_is(line, len, "Content-Length", &value)) {
        call->content_length = strtoull(value, NULL, 10);
        call->has_content_length = true;
        if (call->body_cap && call->status / 100 == 2 && call->content_length > call->body_cap &&
            strcmp(call->method, "HEAD") != 0) {
            call->body_overflow = true;
            return 0; /* too large for buf: stop here */
        }
        /* a body that comes to buf: room for it at once (not a HEAD's
         * length), up to PREALLOC_MAX on the node's word */
        if (call->status / 100 == 2 && call->sink_fd < 0 && strcmp(call->method, "HEAD") != 0 &&
            call->buf_len == 0)
            dbx_remote_buf_reserve(call, call->content_length < PREALLOC_MAX
                                             ? (size_t)call->content_length
                                             : PREALLOC_MAX - 1);
    } else if (dbx_remote_header_is(line, len, DBX_WIRE_ERROR_HEADER, &value)) {
        size_t value_len = len - (size_t)(value - line);
        while (value_len && (value[value_len - 1] == '\r' || value[value_len - 1] == '\n' ||
                             value[value_len - 1] == ' '))
            value_len--;
        call->error_code = dbx_wire_error_code(value, value_len);
    } else if (dbx_remote_header_is(line, len, "Content-Range", &value)) {
        unsigned long long start = 0, last = 0, total = 0;
        call->has_content_range = sscanf(value, "bytes %llu-%llu/%llu", &start, &last, &total) == 3 &&
                                  start <= last && last < total;
        call->range_start = start;
        call->range_reply_last = last;
        call->range_total = total;
    } else if ((len == 2 && line[0] == '\r') || (len == 1 && line[0] == '\n')) {
        /* the end of a reply's headers: the final one's, past any 1xx */
        if (call->ranged && call->status / 100 == 2)
            call->range_refused =
                call->status == 206 ? !call->has_content_range || call->range_start != call->range_first ||
                                          call->range_reply_last > call->range_last
                                    : !call->range_whole_ok;
        if (call->status >= 200 && call->headers_done)
            call->headers_done(call);
    } else if (call->header_fn) {
        call->header_fn(call->header_ctx, line, len);
    }
    return len;
}

static size_t on_read(char *out, size_t size, size_t count, void *cls)
{
    dbx_remote_call *call = cls;
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

/* ---- connections and requests -------------------------------------------------- */

static void share_lock(CURL *curl, curl_lock_data data, curl_lock_access access, void *ctx)
{
    (void)curl, (void)access;
    pthread_mutex_lock(&((dbx_remote *)ctx)->share_locks[data]);
}

static void share_unlock(CURL *curl, curl_lock_data data, void *ctx)
{
    (void)curl;
    pthread_mutex_unlock(&((dbx_remote *)ctx)->share_locks[data]);
}

static CURL *handle_new(dbx_remote *r)
{
    CURL *curl = curl_easy_init();
    if (curl && (curl_easy_setopt(curl, CURLOPT_SHARE, r->share) != CURLE_OK ||
                 curl_easy_setopt(curl, CURLOPT_MAXCONNECTS, MAX_CONNECTIONS) != CURLE_OK)) {
        curl_easy_cleanup(curl);
        curl = NULL;
    }
    return curl;
}

static void set_options(dbx_remote *r, CURL *curl, dbx_remote_call *call,
                        struct curl_slist *headers)
{
    long timeout_s = (r->timeout_ms + 999) / 1000;

    curl_easy_setopt(curl, CURLOPT_URL, call->url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, call->curl_error);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
    if (call->long_running) {
        /* a dead peer is still noticed, if not a hung one */
        curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
    } else {
        /* Streams may be long: what times out is a transfer that stalls. */
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
        curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, timeout_s);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (call->object_body)
        curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, OBJECT_BUFFER_BYTES);
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

/* What may be sent again after a transport error: reads, and PUTs and
 * POSTs whose body is in memory. A backend sends such requests only when
 * they are idempotent (in the /v1 API: an object PUT under its id, a name
 * set, the missing query: the same request has the same effect). */
static bool retryable(const dbx_remote *r, const dbx_remote_call *call)
{
    return (r->delete_idempotent || strcmp(call->method, "DELETE") != 0) && call->body_fd < 0 &&
           call->sink_fd < 0;
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

static struct curl_slist *request_headers(dbx_remote *r, const dbx_remote_call *call)
{
    char content_type[64];
    struct curl_slist *headers = NULL;

    /* No "Expect: 100-continue" for a body in memory: one round trip less
     * per upload. A streamed body asks first: a node that refuses the
     * request (read-only, a token, too large) says so before any byte of
     * it is sent, instead of closing on a body it did not read, which
     * resets the connection before its answer can be read (EIO instead of
     * its error). */
    const char *expect = call->body_fd >= 0 ? "Expect: 100-continue" : "Expect:";
    if (!header_add(&headers, r->signed_headers ? "Accept: */*" : expect))
        return NULL;
    if (call->content_type) {
        snprintf(content_type, sizeof content_type, "Content-Type: %s", call->content_type);
        if (!header_add(&headers, content_type))
            return NULL;
    }
    if (r->auth_header && !header_add(&headers, r->auth_header))
        return NULL;
    for (int i = 0; i < DBX_REMOTE_EXTRA_HEADERS; i++)
        if (call->extra_headers[i] && !header_add(&headers, call->extra_headers[i]))
            return NULL;
    if (call->ranged) {
        char range[64];
        snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-%" PRIu64, call->range_first,
                 call->range_last);
        if (!header_add(&headers, range))
            return NULL;
    }
    return headers;
}

/* Run the request. 0 when an HTTP reply came (call->status says which),
 * or MINIDBX_EIO with the URL and curl's reason. */
int dbx_remote_perform(dbx_remote *r, dbx_remote_call *call)
{
    struct curl_slist *headers = request_headers(r, call);
    CURL *curl = handle_new(r);
    CURLcode res = CURLE_OUT_OF_MEMORY;
    int attempts = retryable(r, call) ? (r->attempts > 0 ? r->attempts : ATTEMPTS) : 1;

    if (curl && headers && r->prepare) {
        int rc = r->prepare(r, curl, call, &headers);
        if (rc < 0) {
            curl_slist_free_all(headers);
            curl_easy_cleanup(curl);
            return rc;
        }
    }
    for (int i = 0; curl && headers && i < attempts; i++) {
        if (i > 0) {
            struct timespec pause = { 0, (long)RETRY_PAUSE_MS * (1L << i) * 1000000L };
            nanosleep(&pause, NULL);
        }
        call->curl_error[0] = '\0';
        if (call->hasher && call->body_received) {
            minidbx_id discard; /* a retry starts the hash again */
            dbx_hasher_final(call->hasher, &discard);
        }
        call->body_received = 0;
        call->buf_len = 0;
        call->body_sent = 0;
        call->status = 0;
        set_options(r, curl, call, headers);
        if (call->deadline_ns) {
            int64_t left_ms = (call->deadline_ns - dbx_boottime_ns()) / 1000000;
            if (left_ms <= 0) {
                res = CURLE_OPERATION_TIMEDOUT;
                snprintf(call->curl_error, sizeof call->curl_error, "its deadline has passed");
                break;
            }
            curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)left_ms);
        }
        res = curl_easy_perform(curl);
        call->curl_code = res;
        /* Retry only what failed before any reply came, or (when asked)
         * what the server could not do for now; never what timed out: the
         * timeout is the caller's deadline (a cluster: node that hangs
         * costs it once), not a third of it. */
        if (res == CURLE_OK && call->status >= 500 && r->retry_server_errors)
            continue;
        if (res == CURLE_OK || call->status || res == CURLE_OPERATION_TIMEDOUT)
            break;
    }
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl); /* its connection stays in the share for reuse */
    /* A success whose body was cut short: a minidbx node cuts a reply when
     * the bytes it sends fail verification (a node that died mid-reply
     * looks the same; its next request fails to connect). Not the node's
     * link failing, so ECORRUPT: the caller may read another copy. */
    if (res == CURLE_PARTIAL_FILE && call->status >= 200 && call->status < 300)
        return minidbx_error_set(MINIDBX_ECORRUPT, "%s %s: the reply was cut short (%s)", call->method,
                                 call->url, call->curl_error[0] ? call->curl_error : curl_easy_strerror(res));
    if (res == CURLE_WRITE_ERROR && call->reply_too_large)
        return minidbx_error_set(MINIDBX_EIO, "%s %s: the reply goes on past %u MiB (not a minidbx node?)",
                                 call->method, call->url, REPLY_MAX >> 20);
    if (res != CURLE_OK &&
        !(res == CURLE_WRITE_ERROR && (call->sink_fd >= 0 || call->body_overflow || call->error_words_cut)))
        return minidbx_error_set(MINIDBX_EIO, "%s %s: %s", call->method, call->url,
                                 call->curl_error[0] ? call->curl_error : curl_easy_strerror(res));
    return 0;
}

int dbx_remote_status_error(const dbx_remote *r, const dbx_remote_call *call)
{
    int code = call->error_code ? call->error_code
               : r->status_code ? r->status_code(call->status, call->buf, call->buf_len)
                                : dbx_wire_code_for_status(call->status);
    char *message = r->error_message ? r->error_message(call->buf, call->buf_len) : NULL;
    code = minidbx_error_set(code, "%s %s: HTTP %ld: %s", call->method, call->url, call->status,
                             message ? message : minidbx_strerror(code));
    free(message);
    return code;
}

int dbx_remote_expect_ok(dbx_remote *r, dbx_remote_call *call)
{
    int rc = dbx_remote_perform(r, call);
    if (rc == 0 && call->status / 100 != 2)
        rc = dbx_remote_status_error(r, call);
    return rc;
}

/* The hash of what came against id; frees the hasher. */
static int check_hash(dbx_remote_call *call, const minidbx_id *id)
{
    minidbx_id got;
    int rc = dbx_hasher_final(call->hasher, &got);
    dbx_hasher_free(call->hasher);
    call->hasher = NULL;
    if (rc == 0 && (rc = dbx_id_verify(id, &got)) < 0)
        rc = minidbx_error_set(rc, "%s %s: %s", call->method, call->url, minidbx_errmsg(NULL));
    return rc;
}

int dbx_remote_get_object(dbx_remote *r, dbx_remote_call *call, const minidbx_id *id)
{
    int rc = r->verify_reads && id ? dbx_hasher_new(&call->hasher) : 0;

    call->object_body = true;

    if (rc == 0)
        rc = dbx_remote_expect_ok(r, call);
    if (call->hasher && call->body_overflow) { /* stopped at its cap: not all of it */
        dbx_hasher_free(call->hasher);
        call->hasher = NULL;
    } else if (call->hasher) {
        if (rc == 0)
            rc = check_hash(call, id);
        dbx_hasher_free(call->hasher);
        call->hasher = NULL;
    }
    if (rc == 0 && dbx_remote_buf_reserve(call, 0) < 0)
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if (rc < 0) {
        free(call->buf);
        call->buf = NULL;
    }
    return rc;
}

/* ---- streams --------------------------------------------------------------------- */

static void stream_signal_headers(dbx_remote_stream *s)
{
    pthread_mutex_lock(&s->lock);
    s->headers_in = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void stream_headers_done(dbx_remote_call *call)
{
    stream_signal_headers((dbx_remote_stream *)((char *)call - offsetof(dbx_remote_stream, call)));
}

/* May a range that failed with rc be asked again from where it broke off?
 * When the link failed (a connection dropped, reset or refused, a reply
 * cut short) or the engine could not serve it for now (a 5xx); not a
 * timeout (the caller's deadline), not a reader that went away, not a
 * reply refused. */
static bool range_retryable(const dbx_remote *r, const dbx_remote_call *call, int rc)
{
    if (call->range_refused || call->body_overflow)
        return false;
    if (rc == 0)
        return call->status >= 500 && r->retry_server_errors;
    switch (call->curl_code) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_COULDNT_CONNECT:
        return true;
    default:
        return false;
    }
}

/* A ranged download: GETs of at most range_size bytes from s->range_at to
 * s->range_end, one after another into the same socket and hasher. A GET
 * that breaks off is asked again from the byte where it broke off (range
 * requests are idempotent), after a growing pause, at most attempts times
 * per range. At the end call->body_received is the offset reached. */
static int stream_ranges(dbx_remote_stream *s)
{
    dbx_remote *r = s->remote;
    dbx_remote_call *call = &s->call;
    int attempts = r->attempts > 0 ? r->attempts : ATTEMPTS, failures = 0, rc = 0;
    uint64_t at = s->range_at;

    if (r->range_size == 0) /* never: reader_first refuses a 206 it did not ask for */
        return minidbx_error_set(MINIDBX_EIO, "GET %s: a ranged download without a range size", call->url);
    while (at < s->range_end) {
        uint64_t left = s->range_end - at;
        call->ranged = true;
        call->range_first = at;
        call->range_last = at + (left < r->range_size ? left : r->range_size) - 1;
        call->body_limit = call->range_last - at + 1;
        call->body_received = 0; /* so that perform keeps the hash */
        rc = dbx_remote_perform(r, call);
        at += call->body_received;
        if (rc == 0 && call->status / 100 == 2 && at == call->range_last + 1) {
            failures = 0;
            continue;
        }
        if (call->range_refused) {
            rc = minidbx_error_set(MINIDBX_EIO, "GET %s: asked for bytes %" PRIu64 "-%" PRIu64
                                   ", the reply was HTTP %ld%s", call->url, call->range_first,
                                   call->range_last, call->status,
                                   call->has_content_range ? " of another range" : " without a Content-Range");
            break;
        }
        if (!range_retryable(r, call, rc) || ++failures >= attempts)
            break;
        struct timespec pause = { 0, (long)RETRY_PAUSE_MS * (1L << failures) * 1000000L };
        nanosleep(&pause, NULL);
    }
    call->body_received = at;
    return rc;
}

static void *stream_main(void *cls)
{
    dbx_remote_stream *s = cls;
    s->rc = s->range_end ? stream_ranges(s) : dbx_remote_perform(s->remote, &s->call);
    stream_signal_headers(s); /* a transfer with no reply ends the wait too */
    /* Messages are per thread: carry this one to the caller's. */
    if (s->rc < 0)
        snprintf(s->error, sizeof s->error, "%s", minidbx_errmsg(NULL));
    /* The other side sees the end (or an error) now. */
    shutdown(s->remote_fd, SHUT_RDWR);
    return NULL;
}

void dbx_remote_stream_init(dbx_remote_stream *s)
{
    memset(s, 0, sizeof *s);
    s->local_fd = s->remote_fd = -1;
}

/* dbx_remote_stream_start; a download's body hashed into hasher (the
 * call owns it from here) and limited to limit bytes. */
static int stream_begin(dbx_remote *r, dbx_remote_stream *s, const char *method, const char *path,
                        const char *suffix, bool upload, dbx_hasher *hasher, uint64_t limit)
{
    int fds[2];
    int rc;

    s->remote = r;
    s->local_fd = s->remote_fd = -1;
    dbx_remote_call_init(&s->call, method);
    s->call.hasher = hasher;
    s->call.body_limit = limit;
    s->call.headers_done = stream_headers_done;
    s->call.header_fn = s->header_fn;
    s->call.header_ctx = s->header_ctx;
    s->headers_in = false;
    if (!s->sync_ready) {
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->cond, NULL);
        s->sync_ready = true;
    }
    if ((rc = dbx_remote_call_url(r, &s->call, path, suffix)) < 0)
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
        s->call.object_body = true;
    }
    if ((rc = dbx_thread_start(&s->thread, stream_main, s)) != 0)
        return dbx_error_errno(rc, "http: starting a transfer thread");
    s->started = true;
    return 0;
}

int dbx_remote_stream_start(dbx_remote *r, dbx_remote_stream *s, const char *method,
                            const char *path, const char *suffix, bool upload)
{
    return stream_begin(r, s, method, path, suffix, upload, NULL, UINT64_MAX);
}

int dbx_remote_stream_finish(dbx_remote_stream *s)
{
    if (s->started) {
        pthread_join(s->thread, NULL);
        s->started = false;
        if (s->rc < 0)
            s->rc = minidbx_error_set(s->rc, "%s", s->error);
        else if (s->call.status / 100 != 2)
            s->rc = dbx_remote_status_error(s->remote, &s->call);
    }
    return s->rc;
}

/* Wait until the reply's headers are in (or the transfer ended). */
static void stream_wait_headers(dbx_remote_stream *s)
{
    pthread_mutex_lock(&s->lock);
    while (!s->headers_in)
        pthread_cond_wait(&s->cond, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

int dbx_remote_stream_finish_upload(dbx_remote_stream *s)
{
    shutdown(s->local_fd, SHUT_WR); /* the end of the body */
    return dbx_remote_stream_finish(s);
}

void dbx_remote_stream_free(dbx_remote_stream *s)
{
    if (s->local_fd >= 0)
        shutdown(s->local_fd, SHUT_RDWR);
    dbx_remote_stream_finish(s);
    if (s->local_fd >= 0)
        close(s->local_fd);
    if (s->remote_fd >= 0)
        close(s->remote_fd);
    free(s->call.buf);
    if (s->sync_ready) {
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->cond);
        s->sync_ready = false;
    }
}

int dbx_remote_stream_send(dbx_remote_stream *s, const void *data, size_t size)
{
    const char *p = data;

    while (size) {
        ssize_t sent = send(s->local_fd, p, size, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0) {
            /* the transfer ended early: say why */
            shutdown(s->local_fd, SHUT_RDWR);
            int rc = dbx_remote_stream_finish(s);
            return rc < 0 ? rc : minidbx_error_set(MINIDBX_EIO, "%s %s: the node stopped reading",
                                                   s->call.method, s->call.url);
        }
        p += sent;
        size -= (size_t)sent;
    }
    return 0;
}

int dbx_remote_stream_recv(dbx_remote_stream *s, void *buf, size_t capacity, size_t *out_read)
{
    ssize_t got;

    *out_read = 0;
    do
        got = recv(s->local_fd, buf, capacity, 0);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return dbx_error_errno(errno, "%s %s", s->call.method, s->call.url);
    if (got > 0) {
        *out_read = (size_t)got;
        return 0;
    }
    return dbx_remote_stream_finish(s);
}

/* ---- readers ---------------------------------------------------------------------- */

struct remote_reader {
    minidbx_backend_reader base;
    /* the first GET's bytes (the whole body when whole, else its first
     * data_len bytes, already hashed), or NULL */
    char *data;
    size_t data_len;
    bool whole;
    dbx_remote_stream stream; /* the rest, when not whole */
    minidbx_id id;
    uint64_t size;
    uint64_t received;
    bool checked; /* the transfer ended and its hash was right */
};

/* Wait for the transfer (the hashing thread) and check what it hashed:
 * all of the body, no more than size bytes, hashing to the id. */
static int reader_check(struct remote_reader *r)
{
    dbx_remote_call *call = &r->stream.call;
    int rc = dbx_remote_stream_finish(&r->stream);

    if (rc == 0 && call->body_overflow)
        rc = minidbx_error_set(MINIDBX_ECORRUPT, "GET %s: the object goes on past its size of %" PRIu64
                               " bytes", call->url, r->size);
    else if (rc == 0 && call->body_received != r->size)
        rc = minidbx_error_set(MINIDBX_EIO, "GET %s: %" PRIu64 " of %" PRIu64 " bytes came",
                               call->url, call->body_received, r->size);
    if (call->hasher && rc == 0)
        rc = check_hash(call, &r->id);
    r->checked = rc == 0;
    return rc;
}

/* Hand out what is left of r->data; freed once all of it is out. */
static void reader_take_data(struct remote_reader *r, void *buf, size_t capacity, size_t *out_read)
{
    size_t left = r->data_len - (size_t)r->received;
    size_t n = left < capacity ? left : capacity;
    memcpy(buf, r->data + r->received, n);
    r->received += n;
    *out_read = n;
    if (!r->whole && r->received == r->data_len) {
        free(r->data);
        r->data = NULL;
    }
}

static int reader_read(minidbx_backend_reader *br, void *buf, size_t capacity, size_t *out_read)
{
    struct remote_reader *r = (struct remote_reader *)br;
    if (r->whole || r->received < r->data_len) {
        reader_take_data(r, buf, capacity, out_read);
        return 0;
    }
    bool hashing = r->stream.call.hasher != NULL;
    int rc = dbx_remote_stream_recv(&r->stream, buf, capacity, out_read);

    r->received += *out_read;
    if (rc < 0 || r->checked)
        return rc;
    /* The read that hands out the last byte checks the whole body first. */
    if (hashing && (*out_read == 0 || r->received >= r->size)) {
        if ((rc = reader_check(r)) < 0) {
            memset(buf, 0, *out_read);
            *out_read = 0;
        }
        return rc;
    }
    if (*out_read > 0)
        return 0;
    if (r->received != r->size)
        rc = minidbx_error_set(MINIDBX_EIO, "GET %s: %" PRIu64 " of %" PRIu64 " bytes came",
                               r->stream.call.url, r->received, r->size);
    return rc;
}

static void reader_close(minidbx_backend_reader *br)
{
    struct remote_reader *r = (struct remote_reader *)br;
    dbx_remote_stream_free(&r->stream);
    dbx_hasher_free(r->stream.call.hasher);
    free(r->data);
    free(r);
}

/* The size from the reply's headers (r->size DBX_REMOTE_SIZE_FROM_REPLY):
 * a reply that is not a success is its error, found once it ends. */
static int reader_size_from_reply(struct remote_reader *r)
{
    dbx_remote_call *call = &r->stream.call;
    int rc;

    stream_wait_headers(&r->stream);
    if (call->status / 100 != 2 || !call->status)
        return (rc = dbx_remote_stream_finish(&r->stream)) < 0
                   ? rc
                   : minidbx_error_set(MINIDBX_EIO, "GET %s: no reply", call->url);
    if (!call->has_content_length)
        return minidbx_error_set(MINIDBX_EIO, "GET %s: the reply has no Content-Length", call->url);
    r->size = call->content_length;
    return 0;
}

/* The first GET, in this thread: at most DBX_REMOTE_READER_WHOLE_MAX
 * bytes, into r->data, hashed into *hasher (may be NULL). With
 * remote->range_size it asks for them as a range: a 206 says the whole
 * size (Content-Range), a 416 that the object is empty. A body that fits
 * is r->whole, checked here (*hasher is then freed); a larger one leaves
 * its first bytes in r->data (a 206), or nothing (1: a 200, dropped at
 * its headers; its bytes come again in one stream). */
static int reader_first(dbx_remote *remote, struct remote_reader *r, const char *path,
                        const char *suffix, dbx_hasher **hasher)
{
    dbx_remote_call call;
    int rc;

    dbx_remote_call_init(&call, "GET");
    call.body_cap = DBX_REMOTE_READER_WHOLE_MAX;
    call.object_body = true;
    call.hasher = *hasher;
    call.ranged = remote->range_size > 0;
    call.range_whole_ok = true;
    call.range_last = DBX_REMOTE_READER_WHOLE_MAX - 1;
    if ((rc = dbx_remote_call_url(remote, &call, path, suffix)) == 0 &&
        (rc = dbx_remote_perform(remote, &call)) != 0 && call.range_refused && call.status == 206)
        rc = minidbx_error_set(MINIDBX_EIO, "GET %s: HTTP 206 whose Content-Range is not a part of "
                               "bytes 0-%" PRIu64 " of an object of that size (%s)", call.url,
                               call.range_last, call.has_content_range ? "another range" : "none or malformed");
    else if (rc == 0) {
        if (call.ranged && call.status == 416) {
            call.buf_len = 0; /* no byte 0: the object is empty (its body was the error's) */
            r->size = 0;
        } else if (call.status / 100 != 2) {
            rc = dbx_remote_status_error(remote, &call);
        } else if (!call.ranged && call.status == 206) {
            rc = minidbx_error_set(MINIDBX_EIO, "GET %s: asked for the whole object, the reply was HTTP 206",
                                   call.url);
        } else if (call.range_refused) {
            rc = minidbx_error_set(MINIDBX_EIO, "GET %s: asked for a range, the reply was HTTP %ld "
                                   "without a Content-Range", call.url, call.status);
        } else if (call.status == 206 && !call.body_overflow &&
                   call.buf_len != call.range_reply_last - call.range_start + 1) {
            /* the bytes must be the range the reply says: they are handed
             * out (before the end is hashed) up to the size it says */
            rc = minidbx_error_set(MINIDBX_EIO, "GET %s: HTTP 206 of bytes %" PRIu64 "-%" PRIu64
                                   " with a body of %zu bytes", call.url, call.range_start,
                                   call.range_reply_last, call.buf_len);
        } else if (call.body_overflow) {
            rc = 1;
            if (call.hasher && call.body_received) {
                minidbx_id discard; /* its bytes come again */
                rc = dbx_hasher_final(call.hasher, &discard) < 0 ? MINIDBX_EIO : 1;
            }
        } else {
            r->size = call.status == 206 ? call.range_total : call.buf_len;
        }
    }
    if (rc == 0 && dbx_remote_buf_reserve(&call, 0) < 0)
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if (rc == 0) {
        r->data = call.buf;
        r->data_len = call.buf_len;
        r->whole = r->data_len == r->size;
        call.buf = NULL;
        if (r->whole && call.hasher) {
            *hasher = NULL; /* check_hash frees it */
            rc = check_hash(&call, &r->id);
        }
    }
    free(call.buf);
    return rc;
}

int dbx_remote_reader_open(dbx_remote *remote, const char *path, const char *suffix, uint64_t *size,
                           const minidbx_id *id, minidbx_backend_reader **out)
{
    struct remote_reader *r = calloc(1, sizeof *r);
    dbx_hasher *hasher = NULL;
    int rc = 0;

    if (!r)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    r->base.read = reader_read;
    r->base.close = reader_close;
    r->size = *size;
    dbx_remote_stream_init(&r->stream);
    if (id && remote->verify_reads) {
        r->id = *id;
        rc = dbx_hasher_new(&hasher);
    }
    bool from_reply = *size == DBX_REMOTE_SIZE_FROM_REPLY;
    if (rc == 0 && from_reply && (rc = reader_first(remote, r, path, suffix, &hasher)) == 0) {
        from_reply = false;
        if (r->whole)
            goto done;
        /* the rest in ranges, from where the first GET stopped */
        r->stream.range_at = r->data_len;
        r->stream.range_end = r->size;
    }
    if (rc >= 0) {
        /* the body's limit (one stream): its size, or (from the reply) its
         * Content-Length, which curl does not read past */
        rc = stream_begin(remote, &r->stream, "GET", path, suffix, false, hasher,
                          hasher ? r->size : UINT64_MAX);
        hasher = NULL; /* the call's now: reader_close frees it */
    }
    if (rc < 0 || (from_reply && (rc = reader_size_from_reply(r)) < 0) ||
        /* an empty object has no last byte to check at: check it now */
        (r->stream.call.hasher && r->size == 0 && (rc = reader_check(r)) < 0)) {
        dbx_hasher_free(hasher);
        reader_close(&r->base);
        return rc;
    }
done:
    *size = r->size;
    *out = &r->base;
    return 0;
}

/* ---- the client ---------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int set_token(dbx_remote *r, const minidbx_options *opts)
{
    const char *token = opts->token ? opts->token : getenv("MINIDBX_TOKEN");
    if (!token || !token[0])
        return 0;
    size_t size = strlen(token) + sizeof "Authorization: Bearer ";
    if (!(r->auth_header = malloc(size)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    snprintf(r->auth_header, size, "Authorization: Bearer %s", token);
    return 0;
}

int dbx_remote_init(dbx_remote *r, const char *url, const minidbx_options *opts)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&r->share_locks[i], NULL);
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return minidbx_error_set(MINIDBX_EIO, "http: curl_global_init: %s",
                                 curl_easy_strerror(curl_init_result));
    if (!(r->share = curl_share_init()) ||
        curl_share_setopt(r->share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(r->share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(r->share, CURLSHOPT_USERDATA, r) != CURLSHE_OK ||
        curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
        curl_share_setopt(r->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK)
        return minidbx_error_set(MINIDBX_ENOMEM, "http: cannot set up a curl share handle");
    /* room for the longest path and query a backend appends */
    if (strlen(url) >= DBX_REMOTE_URL_MAX - 256)
        return minidbx_error_set(MINIDBX_EINVAL, "%s: URL too long", url);
    r->verify_reads = !(opts->flags & MINIDBX_OPEN_NO_VERIFY);
    r->timeout_ms = opts->timeout_ms ? (long)opts->timeout_ms : (long)DEFAULT_TIMEOUT_MS;
    if (!(r->url = strdup(url)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    for (size_t len = strlen(r->url); len > 0 && r->url[len - 1] == '/'; len--)
        r->url[len - 1] = '\0';
    return set_token(r, opts);
}

void dbx_remote_free(dbx_remote *r)
{
    curl_share_cleanup(r->share); /* NULL is fine; no request is in flight */
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&r->share_locks[i]);
    free(r->url);
    free(r->auth_header);
}
