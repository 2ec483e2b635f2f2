/*
 * remote.h - the libcurl layer that the remote backends share: http://,
 * s3:// and (through http:// nodes) cluster:, so that none of them copies
 * it. Not installed.
 *
 * It moves requests and replies; a backend says what to ask and reads the
 * answer in its own protocol. What it does:
 *   - connection reuse: one share handle per client (connections, DNS);
 *   - timeouts: connect, and a stall timeout (not a total one: a stream may
 *     be long), none for long_running calls (TCP keepalive instead);
 *   - bounded retries, with a growing pause, of requests that may be sent
 *     again (reads, and writes whose body is in memory) and failed before any reply came;
 *   - bodies from memory, or streamed in bounded memory through a
 *     socketpair and a thread (dbx_remote_stream);
 *   - objects read (get, readers) hashed while their bytes arrive and
 *     checked against the id, so the backend sets
 *     MINIDBX_BACKEND_VERIFIED_READS and the library does not hash again;
 *   - a reader's size from its first GET reply (Content-Length, or with
 *     ranges Content-Range): no HEAD first;
 *   - readers in ranges (range_size: s3://): GETs of a bounded range each,
 *     one after another, and one that breaks off asked again from the byte
 *     where it broke off;
 *   - the reply's status, Content-Length and X-Minidbx-Error (the error
 *     code a minidbx node names), other headers through a hook;
 *   - error text that names the method and the URL, with curl's reason or
 *     the protocol's own message (the client's error_message hook).
 */
#ifndef MINIDBX_REMOTE_H
#define MINIDBX_REMOTE_H

#include "internal.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>

#define DBX_REMOTE_URL_MAX 2048
#define DBX_REMOTE_EXTRA_HEADERS 4

struct dbx_remote;
struct dbx_remote_call;

/* A client of one server. */
typedef struct dbx_remote {
    char *url;         /* the base URL, without a trailing slash */
    char *auth_header; /* "Authorization: Bearer ...", or NULL */
    long timeout_ms;
    /* The protocol's message in the body of a reply that is not a success
     * (malloc'd), or NULL. NULL hook: curl's or the code's words only. */
    char *(*error_message)(const char *body, size_t len);
    /* The MINIDBX_E* code of a reply that is not a success and names no
     * X-Minidbx-Error (NULL hook: wire.c's table of statuses). */
    int (*status_code)(long status, const char *body, size_t len);
    /* Called once per request with its fresh easy handle and header list,
     * for a protocol that signs requests or adds headers to each (s3://:
     * SigV4). It may set options and append to *headers. 0 or an error. */
    int (*prepare)(struct dbx_remote *r, CURL *curl, const struct dbx_remote_call *call,
                   struct curl_slist **headers);
    void *prepare_ctx;
    /* Also retry, with the same growing pause, requests that may be sent
     * again (see retryable in remote.c) when the reply is a 5xx (an
     * overloaded engine's 503 SlowDown); and DELETE, when the protocol's
     * DELETE is idempotent. attempts: 0 for the default (3). */
    bool retry_server_errors;
    /* Headers are signed (SigV4): curl would sign the empty "Expect:" line
     * that turns 100-continue off, and send no such header, so it is left
     * out (curl then asks for 100-continue on large uploads). */
    bool signed_headers;
    bool delete_idempotent;
    /* Objects read through dbx_remote_get_object and dbx_remote_reader_open
     * are hashed as they arrive and checked against their id (false with
     * MINIDBX_OPEN_NO_VERIFY): the backend's reads are verified reads. */
    bool verify_reads;
    int attempts;
    /* A reader's body: 0, one GET (http://: a minidbx node hashes the whole
     * object for every range it serves); else GETs of at most range_size
     * bytes each (Range: bytes=A-B), one after another, and a GET that
     * breaks off (the connection dropped or reset, a 5xx) asked again from
     * the byte where it broke off (s3://). */
    uint64_t range_size;
    /* Connections (and DNS answers) are shared by every request through
     * one share handle; each request has a fresh easy handle, so nothing of
     * one reply (curl 7.88's header store: a folded first header of the
     * next reply read freed memory, curl #11103) reaches the next. A
     * reused handle would not be safe even after curl_easy_reset: it
     * resets options, not that store's pointer (state.prevhead). */
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
} dbx_remote;

/* One request and what came back. */
typedef struct dbx_remote_call {
    const char *method;
    char url[DBX_REMOTE_URL_MAX];
    /* request body: a buffer, or a stream pulled from fd (chunked) */
    const char *body;
    const char *content_type; /* of the body, or NULL */
    /* more request header lines ("Name: value"); NULLs are skipped */
    const char *extra_headers[DBX_REMOTE_EXTRA_HEADERS];
    size_t body_size;
    size_t body_sent;
    int body_fd;
    volatile int *body_aborted;
    bool long_running;        /* no stall timeout: the server is silent until done */
    /* dbx_boottime_ns by which the request must be over (0: none): no
     * attempt starts after it, and each is cut short at it (EIO). */
    int64_t deadline_ns;
    /* response body: into buf (NUL-terminated), or pushed into sink_fd */
    char *buf;
    size_t buf_len, buf_cap;
    int sink_fd;
    /* A 2xx reply's body is hashed here as it arrives (NULL: not), and
     * counted; with a sink, more than body_limit bytes stop the transfer
     * and set body_overflow. */
    dbx_hasher *hasher;
    uint64_t body_received;
    uint64_t body_limit;
    bool body_overflow;
    /* The transfer was stopped: a reply to buf past REPLY_MAX (EIO), or
     * an error's words past their first ERROR_WORDS_MAX bytes (kept). */
    bool reply_too_large, error_words_cut;
    /* The body is an object's: curl reads it in larger pieces. */
    bool object_body;
    /* A body to buf: when more than body_cap bytes come (or its
     * Content-Length says so), stop and set body_overflow (0: no cap). */
    uint64_t body_cap;
    /* Ask for bytes range_first..range_last (ranged): then a 2xx reply
     * must be a 206 whose Content-Range starts at range_first (or, with
     * range_whole_ok, a 200: the whole body), else its body is refused
     * (range_refused) and the transfer stops. */
    bool ranged, range_whole_ok, range_refused;
    uint64_t range_first, range_last;
    /* the reply's Content-Range: "bytes range_start-range_reply_last/range_total",
     * has_content_range only when start <= last < total */
    bool has_content_range;
    uint64_t range_start, range_reply_last, range_total;
    /* Called once the headers of the final reply are in (headers_done
     * NULL: not). */
    void (*headers_done)(struct dbx_remote_call *call);
    /* Called with each header line of the reply that the layer does not
     * read itself (header_fn NULL: none). */
    void (*header_fn)(void *ctx, const char *line, size_t len);
    void *header_ctx;
    /* response */
    long status;
    uint64_t content_length;
    bool has_content_length;
    int error_code;           /* X-Minidbx-Error, 0 if none came */
    CURLcode curl_code;       /* the last attempt's */
    char curl_error[CURL_ERROR_SIZE];
} dbx_remote_call;

/* Set up r for the server at url: curl's global state (once), the share,
 * the timeout (opts->timeout_ms, or 30 s) and a bearer token (opts->token,
 * or $MINIDBX_TOKEN). On failure r is still safe to dbx_remote_free. */
int dbx_remote_init(dbx_remote *r, const char *url, const minidbx_options *opts);
void dbx_remote_free(dbx_remote *r);

void dbx_remote_call_init(dbx_remote_call *call, const char *method);
/* call->url = the base URL + path + suffix (suffix may be NULL). */
int dbx_remote_call_url(const dbx_remote *r, dbx_remote_call *call, const char *path,
                        const char *suffix);
/* Append text to call->url, percent-encoded but for '/'. */
int dbx_remote_call_append_path(dbx_remote_call *call, const char *text);
/* Append "?key=value" or "&key=value", the value escaped; a NULL value adds
 * nothing. */
int dbx_remote_call_query(dbx_remote_call *call, const char *key, const char *value);

/* Run the request. 0 when a reply came (call->status says which), or
 * MINIDBX_EIO with the method, the URL and curl's reason. */
int dbx_remote_perform(dbx_remote *r, dbx_remote_call *call);
/* The error of a reply that is not a success: the code the server named in
 * X-Minidbx-Error, else the status's (wire.c), with the protocol's message. */
int dbx_remote_status_error(const dbx_remote *r, const dbx_remote_call *call);
/* Perform and accept only a 2xx reply. */
int dbx_remote_expect_ok(dbx_remote *r, dbx_remote_call *call);
/* GET the object id at call->url (set by the caller) into call->buf
 * (NUL-terminated; the caller frees it), accepting only a 2xx reply; with
 * r->verify_reads and id its bytes are hashed while they arrive and a body
 * that does not hash to id is ECORRUPT (call->buf is then freed). A body
 * stopped at call->body_cap (body_overflow) is not checked. */
int dbx_remote_get_object(dbx_remote *r, dbx_remote_call *call, const minidbx_id *id);
/* Room for more bytes (and a NUL) in call->buf. 0 or -1. */
int dbx_remote_buf_reserve(dbx_remote_call *call, size_t more);
/* Is line the header name? Then *value points past the colon and blanks. */
bool dbx_remote_header_is(const char *line, size_t len, const char *name, const char **value);

/* A transfer running in its own thread, fed (upload) or drained through a
 * socketpair: the socket buffers are the only buffers. */
typedef struct dbx_remote_stream {
    dbx_remote *remote;
    dbx_remote_call call;
    int local_fd;        /* our end */
    int remote_fd;       /* curl's end, closed by the thread when done */
    pthread_t thread;
    bool started;
    int rc;              /* the transfer's result, once joined */
    char error[512];     /* and its message, set in the thread */
    volatile int aborted;
    /* the reply's headers are in, or the transfer ended (for
     * dbx_remote_stream_wait_headers) */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool headers_in;
    bool sync_ready;
    /* A ranged download (range_end > 0): bytes range_at..range_end - 1 in
     * GETs of the remote's range_size (see dbx_remote.range_size). */
    uint64_t range_at, range_end;
    /* the call's header_fn and header_ctx (set before start; called in the
     * transfer's thread) */
    void (*header_fn)(void *ctx, const char *line, size_t len);
    void *header_ctx;
} dbx_remote_stream;

/* Set s's fds to -1, so that dbx_remote_stream_free is safe before start. */
void dbx_remote_stream_init(dbx_remote_stream *s);
/* Start method base URL + path + suffix in a thread: an upload (a chunked
 * body pushed with dbx_remote_stream_send) or a download (its body pulled
 * with dbx_remote_stream_recv). */
int dbx_remote_stream_start(dbx_remote *r, dbx_remote_stream *s, const char *method,
                            const char *path, const char *suffix, bool upload);
/* Push size bytes of an upload's body; the transfer's error if it ended. */
int dbx_remote_stream_send(dbx_remote_stream *s, const void *data, size_t size);
/* Pull up to capacity bytes of a download; *out_read 0: its end, and the
 * result is the transfer's (dbx_remote_stream_finish). */
int dbx_remote_stream_recv(dbx_remote_stream *s, void *buf, size_t capacity, size_t *out_read);
/* Wait for the transfer; its result, or the status's error. */
int dbx_remote_stream_finish(dbx_remote_stream *s);
/* End an upload's body, then dbx_remote_stream_finish. */
int dbx_remote_stream_finish_upload(dbx_remote_stream *s);
/* Stop the transfer if it runs, wait for it and free what s holds. To
 * abandon an upload, set s->aborted = 1 first: then the server never sees
 * a clean end of the body. */
void dbx_remote_stream_free(dbx_remote_stream *s);

/* A backend reader (minidbx/sys/backend.h) over a streamed GET of the base
 * URL + path + suffix, whose body must be *size bytes: a body that ends
 * short is EIO. *size DBX_REMOTE_SIZE_FROM_REPLY: the size from the first
 * reply, into *size (no HEAD first); a reply that is not a success is its
 * error here (a 404: ENOTFOUND), and one that does not say the size is EIO.
 * The first GET asks for at most DBX_REMOTE_READER_WHOLE_MAX bytes (with
 * r->range_size, as a range: its 206 says the whole size in Content-Range;
 * a 416 says the object is empty), read in the caller's thread: a body
 * that fits is checked before its first byte is handed out, without a
 * stream's thread. The rest of a larger one is streamed by a thread: with
 * r->range_size in ranges from where the first GET stopped (bounded
 * memory: the socket's buffers), each GET resumed where it broke off;
 * without, the first GET is dropped at its headers and the body streamed
 * by one more. With r->verify_reads and id, the bytes are hashed as they
 * arrive, and the read that would hand out the last byte waits for the
 * transfer and checks the hash first (as the library's own verifying
 * reader does, stream.c): a body that does not hash to id, or goes on past
 * size, is ECORRUPT and its last chunk is never handed out. */
#define DBX_REMOTE_SIZE_FROM_REPLY UINT64_MAX
#define DBX_REMOTE_READER_WHOLE_MAX (256u << 10)
int dbx_remote_reader_open(dbx_remote *r, const char *path, const char *suffix, uint64_t *size,
                           const minidbx_id *id, minidbx_backend_reader **out);

#endif
