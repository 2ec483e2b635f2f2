/*
 * node.h - the HTTP node's insides (`mdbx serve`; libmicrohttpd).
 *
 * server.h     the entry: settings, then a node that serves one store
 * config.c     the settings, the --config file
 * daemon.c     listen, TLS, threads, signals, drain
 * routes.c     the protocols' route tables: lookup, numbering
 * router.c     a request's life: route, access, body, handler, metrics
 * body.c       request bodies: objects, small JSON, multipart uploads
 * reply.c      replies, errors, query arguments
 * proto_v1.c   the /v1 API
 * proto_go.c   the endpoints of the Go system this replaces
 * metrics.c    counters and GET /metrics (Prometheus text format)
 * limits.c     rate, tokens, header and body deadlines, per-connection state
 * framing.c    refusing ambiguous requests (smuggling, NUL bytes)
 * send.c       object bodies out: verified before the last byte leaves
 * cache.c      blob files and bytes already verified, bounded
 * memory.c     the bound on resident memory: allocator, mapped file pages
 * job.c        slow maintenance calls (verify, gc) off the I/O threads
 * commit.c     durable writes off the I/O threads: commit threads
 * io.c         --io-model: a thread per connection, or a pool
 * fds.c        the limit on open files: raised, --max-connections fitted to it
 *
 * Handlers are thin: they parse what the URL and body say, call the public
 * API and turn the result into a reply. Every id that comes from a URL,
 * query or body goes through minidbx_id_parse before it is used.
 */
#ifndef MINIDBX_SERVER_NODE_H
#define MINIDBX_SERVER_NODE_H

#include "server.h"
#include "wire_json.h" /* the replies' JSON shapes (dbx_json_*) */

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>

/* ---- settings (config.c) -------------------------------------------------- */

/* Fill *err (code, errno value, message) and return code. */
int serve_error(struct minidbx_server_error *err, int code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The whole text of a file (malloc'd, NUL-terminated), or NULL with errno. */
char *serve_read_file_text(const char *path);

/* ---- routes and metrics (metrics.c) ------------------------------ */

/* Requests are counted per route: slot 0 for a request that matched none,
 * then one slot per row of the protocols' tables, in order (router.c). */
#define SERVE_ROUTE_SLOTS 64
#define SERVE_STATUS_SLOTS 20
#define SERVE_LATENCY_BUCKETS 14

struct serve_metrics {
    atomic_ullong requests[SERVE_ROUTE_SLOTS][SERVE_STATUS_SLOTS];
    atomic_ullong latency[SERVE_LATENCY_BUCKETS + 1]; /* last: +Inf */
    atomic_ullong latency_sum_us;
    atomic_ullong bytes_in;
    atomic_ullong bytes_out;
    atomic_llong connections_open;
    atomic_llong requests_in_flight;
    atomic_ullong rate_limited;
    atomic_ullong slow_clients_dropped;
    atomic_ullong slow_bodies_dropped;
    atomic_ullong slow_readers_dropped;
    atomic_ullong corrupt_objects_refused; /* GETs cut or refused: bytes not matching the id */
    atomic_ullong memory_sends;            /* GETs sent from a kept verified copy (cache.c) */
    atomic_ullong file_sends;              /* GETs of a file remembered as verified, not hashed */
    atomic_ullong memory_trims;            /* file mappings given back (memory.c) */
    atomic_ullong jobs_refused;            /* verify/gc refused: one was running */
    atomic_ullong commits_on_io_threads;   /* writes committed on an I/O thread (commit.c) */
    atomic_llong commits_waiting;          /* queued for a commit thread or in its commit */
    atomic_llong commits_queued;           /* of those, not yet taken by a thread */
    atomic_ullong commit_batches;          /* batches of puts committed (commit.c) */
    atomic_ullong batched_commits;         /* puts committed in them */
};

struct serve_server;
struct serve_request;

/* Count a finished request: its route's slot (serve_route_slot), status
 * and time taken. */
void serve_metrics_record(struct serve_metrics *m, size_t route_slot, unsigned status,
                          int64_t elapsed_ns);

/* ---- requests ------------------------------------------------------------ */

/* What a route does with a request body. */
enum serve_body {
    BODY_NONE,      /* any body is refused (GET, HEAD, DELETE) */
    BODY_OBJECT,    /* streamed into a writer: the object's bytes */
    BODY_SMALL,     /* buffered, at most SERVE_SMALL_BODY_MAX bytes (JSON) */
    BODY_MULTIPART  /* multipart/form-data: field "file" streamed into a writer */
};

#define SERVE_SMALL_BODY_MAX (1u << 20) /* 10,000 ids for /v1/missing fit */

/* Who may call a route. ACCESS_ADMIN: the write token, also on a node
 * serving its store read-only (verify: the library refuses a repair). */
enum serve_access { ACCESS_OPEN, ACCESS_READ, ACCESS_WRITE, ACCESS_ADMIN };

typedef enum MHD_Result (*serve_handler_fn)(struct serve_request *req);

/* One route: a row of its protocol's table. Adding a route is one row and
 * one handler; its metric label is the row's. */
struct serve_route_spec {
    const char *method;      /* "GET" also matches HEAD */
    const char *path;        /* exact path, or a prefix when it ends in '/' */
    serve_handler_fn handler;
    const char *metric;      /* the route="..." label of its counters; rows that
                              * share one are counted together */
    enum serve_body body;
    enum serve_access access;
};

/* A protocol: its routes, one table in its own file (proto_*.c). The
 * lookup (routes.c) tries the protocols in the order of its list, then each table's
 * rows in order: the first whose path and method match wins. */
struct serve_protocol {
    const char *name;
    const struct serve_route_spec *routes;
    size_t route_count;
};

/* A protocol's definition from its table: SERVE_PROTOCOL("v1", v1_routes). */
#define SERVE_PROTOCOL(proto_name, table) { proto_name, table, sizeof table / sizeof table[0] }

extern const struct serve_protocol serve_proto_v1; /* proto_v1.c: /v1, /health, /metrics */
extern const struct serve_protocol serve_proto_go; /* proto_go.c: the Go system's endpoints */

/* The route for method and path (routes.c), and its argument (what
 * follows a prefix route's path); NULL: none, and *path_known tells 405
 * from 404. */
const struct serve_route_spec *serve_find_route(const char *method, const char *path,
                                                const char **arg, bool *path_known);
/* What a request that matched no route counts as (slot 0). */
extern const struct serve_route_spec serve_unknown_route;

/* The routes of every protocol, numbered from 1 in the router's order (0:
 * a request that matched none, label "unknown"): how many slots there are,
 * the route in slot i, and the slot of a route. */
size_t serve_route_slots(void);
const struct serve_route_spec *serve_route_in_slot(size_t slot);
size_t serve_route_slot(const struct serve_route_spec *spec);

/* The state of one request, from its headers to its completion. */
struct serve_request {
    struct serve_server *srv;
    struct MHD_Connection *conn;
    const struct serve_route_spec *spec;
    const char *method;
    const char *url;
    const char *path_arg;   /* what follows a prefix route's path */
    bool head;              /* a HEAD request */
    bool replied;           /* a response is queued */
    bool close_connection;  /* the reply says Connection: close */
    const char *extra_header[2]; /* the reply has this header: name, value */
    unsigned status;
    int64_t start_ns;

    uint64_t reply_bytes;   /* the body of the reply, for the metrics */

    /* the body */
    uint64_t body_bytes;
    uint64_t object_bytes;  /* of those, object bytes (BODY_OBJECT, BODY_MULTIPART) */
    int body_code;          /* the MINIDBX_E* code that ends the body early */
    int64_t body_refused_ns;/* when it was set */
    char body_error[160];   /* and why */
    minidbx_writer *writer; /* BODY_OBJECT, BODY_MULTIPART */
    minidbx_id want_id;     /* PUT /v1/objects/ID: the id they must hash to */
    bool has_want;
    bool file_seen;         /* BODY_MULTIPART: the "file" field came */
    struct MHD_PostProcessor *post;
    char *small;            /* BODY_SMALL, NUL-terminated */
    size_t small_len;
    size_t small_cap;

    /* a slow call run by serve_job_run (job.c), or a commit by
     * serve_commit_run (commit.c) */
    bool job_started;       /* handed to another thread, the connection suspended */
    _Atomic bool job_done;  /* set by that thread before it resumes us (or by
                             * serve_commit_run on an I/O thread) */
    int job_rc;
    bool job_repair;        /* POST /v1/verify?repair=1 */
    bool job_names;         /* POST /v1/verify?names=1: list names removed */
    bool job_dry_run;       /* POST /v1/gc?dry_run=1 */
    int64_t job_older_than; /* POST /v1/gc?older_than=SECONDS */
    cJSON *job_json;        /* what the job built for the reply */
    int (*commit_fn)(struct serve_request *req); /* what a commit thread calls */
    struct serve_request *commit_next; /* the next one queued (commit.c) */

    /* a stored object (serve_commit_writer) */
    minidbx_id put_id;
    bool put_created;       /* this commit stored it (the store's own answer) */

    struct serve_copy *copy;/* a verified body its reply sends by sendfile (cache.c) */
};

struct serve_server {
    minidbx *db;
    const struct minidbx_server_config *cfg;
    struct serve_metrics metrics;
    struct serve_limits *limits;     /* rate limiter, slow-client reaper */
    struct serve_verified *verified; /* blob files recently verified (cache.c) */
    struct serve_jobs *jobs;         /* the one maintenance job (job.c) */
    struct serve_commits *commits;   /* the commit threads (commit.c), or NULL */
    int access_fd;                   /* the access log (accesslog.c), or -1 */
    struct serve_memory *memory;     /* the RSS bound (memory.c) */
    unsigned max_connections;        /* --max-connections, or fewer: what the fd limit holds (fds.c) */
    bool store_local;                /* a local store: /health reads it (proto_v1.c) */
    uint64_t store_inline_threshold; /* a local store's (commit.c batches puts up to it) */
};

/* ---- the limit on open files (fds.c) ------------------------------ */

/* Raise the soft RLIMIT_NOFILE to the hard one and set max_connections
 * to --max-connections, lowered (with a warning on stderr) to what the
 * limit holds. Call it once the node's own files are open, before the
 * daemon starts. Returns 0 or MINIDBX_EIO (not one connection fits). */
int serve_fds_fit(struct serve_server *srv, struct minidbx_server_error *err);

/* ---- the access log (accesslog.c) --------------------------------- */

/* Open --access-log (or, at --log-level info, stderr); access_fd -1: none. */
int serve_access_log_open(struct serve_server *srv, struct minidbx_server_error *err);
/* SIGHUP: open the file again under the same descriptor. */
void serve_access_log_reopen(struct serve_server *srv);
void serve_access_log_close(struct serve_server *srv);
/* One line for a finished request (status 499: the client went away). */
void serve_access_log(struct serve_server *srv, struct MHD_Connection *conn,
                      const struct serve_request *req, unsigned status, uint64_t bytes);

/* ---- limits (limits.c) -------------------------------------------- */

/* Wall-clock time in ns. */
int64_t serve_now_ns(void);
/* Start and stop the rate table and the thread that drops slow clients.
 * serve_limits_start returns 0 or an errno value. */
int serve_limits_start(struct serve_server *srv);
void serve_limits_stop(struct serve_server *srv);
/* Take one request from the client's allowance; false: over the rate. */
bool serve_rate_allow(struct serve_server *srv, struct MHD_Connection *conn);
/* 0 when the request's bearer token is want (or also, if not NULL), else
 * 401 (no token) or 403 (a wrong one). Compares in constant time. */
unsigned serve_token_status(struct MHD_Connection *conn, const char *want, const char *also);
/* MHD_OPTION_NOTIFY_CONNECTION: track connections for the header deadline. */
void serve_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
/* A request's headers are in / it is over (the connection waits again). */
void serve_conn_request_started(struct serve_server *srv, struct MHD_Connection *conn);
void serve_conn_request_done(struct serve_server *srv, struct MHD_Connection *conn);
/* size more bytes of the request body came / all of it did (from then on
 * the minimum body rate no longer applies). */
void serve_conn_body_bytes(struct serve_server *srv, struct MHD_Connection *conn, size_t size);
void serve_conn_body_done(struct serve_server *srv, struct MHD_Connection *conn);
/* A reply with a body of size bytes is queued (the deadline for sending it). */
void serve_conn_reply_queued(struct serve_server *srv, struct MHD_Connection *conn, uint64_t size);
/* Remember that the URL or a query argument of the connection's current
 * request unescaped to a NUL byte; serve_conn_take_nul tells it (once). A
 * connection that could not be tracked counts as having one (fail closed). */
void serve_conn_mark_nul(struct serve_server *srv, struct MHD_Connection *conn);
bool serve_conn_take_nul(struct serve_server *srv, struct MHD_Connection *conn);

/* ---- framing (framing.c) ------------------------------------------- */

/* What the headers say about the body, gathered header by header. */
struct serve_framing {
    unsigned content_lengths;    /* Content-Length headers */
    unsigned transfer_encodings; /* Transfer-Encoding headers */
    bool bad_transfer_encoding;  /* one that is not exactly "chunked" */
    bool bad_content_length;     /* one that is not all digits */
    bool bad_name;               /* a name with white space, a control byte or no byte */
    bool bad_value;              /* a value with a NUL or another control byte */
};

/* Feed one header (name and value with their lengths) to f. Pure: no I/O,
 * so fuzzers can call it. */
void serve_framing_add(struct serve_framing *f, const char *name, size_t name_len,
                       const char *value, size_t value_len);
/* NULL when the framing is unambiguous, else why the request is refused. */
const char *serve_framing_problem(const struct serve_framing *f);
/* serve_framing_add over every header of the connection's request, then
 * serve_framing_problem. */
const char *serve_request_framing_problem(struct MHD_Connection *conn);
/* NULL, or why the request (as MHD's access handler got it) is refused:
 * a raw NUL byte in the request line or a header value, where a C string
 * would cut a name, an id or a token short (framing.c). */
const char *serve_request_head_problem(struct MHD_Connection *conn, const char *method,
                                       const char *url, const char *version);
/* True if the JSON text (len bytes) holds a NUL byte, or a \u0000 escape
 * inside a string (cJSON would cut the string there). Pure. */
bool serve_json_has_nul(const char *text, size_t len);
/* The unescaper given to libmicrohttpd (MHD_OPTION_UNESCAPE_CALLBACK):
 * MHD_http_unescape, and a NUL byte in the result is remembered with
 * serve_conn_mark_nul. cls: the server. */
size_t serve_unescape(void *cls, struct MHD_Connection *conn, char *text);

/* ---- jobs (job.c) ------------------------------------------------------- */

/* A slow call: fills req->job_json (may stay NULL) and returns 0 or a
 * MINIDBX_E* code (then minidbx_errmsg says why, on the job's thread: the
 * function copies it into job_json as {"error": ...}). */
typedef int (*serve_job_fn)(struct serve_request *req);

int serve_jobs_start(struct serve_server *srv);
/* Wait for a job still running (at shutdown, before the daemon stops). */
void serve_jobs_stop(struct serve_server *srv);
/* After the daemon has stopped. */
void serve_jobs_free(struct serve_server *srv);
/* Run fn(req) on a thread of its own while the connection is suspended;
 * the route's handler is called again when it is done (req->job_done).
 * One job at a time in the whole node: while one runs, this replies 503
 * with Retry-After. Returns what the handler should return. */
enum MHD_Result serve_job_run(struct serve_request *req, serve_job_fn fn);
/* Once the job is done: reply with req->job_json, 200 or the status for
 * req->job_rc. */
enum MHD_Result serve_job_reply(struct serve_request *req);
/* The client has shut down its sending side (an end of file is waiting),
 * or said Connection: close and may do so any moment: libmicrohttpd 0.9.75
 * would close its connection on resuming it, before the reply. */
bool serve_client_may_half_close(struct MHD_Connection *conn);

/* ---- commits (commit.c) -------------------------------------------------- */

/* Start --commit-threads threads (none under --io-model per-connection, or
 * with 0): 0 or an errno value. */
int serve_commits_start(struct serve_server *srv);
/* Commit and resume what is queued, then join the threads: after the
 * drain, before the daemon stops. */
void serve_commits_stop(struct serve_server *srv);
/* After the daemon has stopped (stops first if need be). */
void serve_commits_free(struct serve_server *srv);
/* Call fn(req) (a durable write: library calls only, no replies; a
 * failure's words go to req->job_json, as serve_json_failure makes them)
 * on a commit thread while the connection waits suspended, or on this
 * thread (see commit.c for when); either way the route's handler is called
 * again with req->job_done set and req->job_rc the result, and replies.
 * Returns what the handler should return. */
enum MHD_Result serve_commit_run(struct serve_request *req, serve_job_fn fn);
/* serve_commit_run(req, serve_commit_writer) for a PUT of an object: on a
 * local store, one of at most its inline threshold is committed in a batch
 * with the others waiting (commit.c). */
enum MHD_Result serve_commit_put(struct serve_request *req);

/* ---- object responses (send.c) ------------------------------------------ */

/* A single byte range of an object, from a Range header. */
struct serve_range {
    uint64_t start;
    uint64_t length;
    unsigned status; /* 200 (no usable Range: the whole object), 206 or 416 */
};

/* Parse a Range header (NULL: none) for an object of size bytes. Pure. */
void serve_parse_range(const char *header, uint64_t size, struct serve_range *out);

/* ---- memory (memory.c) --------------------------------------------------- */

/* Start watching the node's resident file pages: 0 or an errno value.
 * Stop before the store is closed. */
int serve_memory_start(struct serve_server *srv);
void serve_memory_stop(struct serve_server *srv);
/* A request ended: now and then, give back the resident pages of the
 * store's file mappings if they have grown (memory.c). */
void serve_memory_request_done(struct serve_server *srv);
/* The same check now (after a batch of puts: commit.c). */
void serve_memory_check(struct serve_server *srv);

/* ---- threads (io.c) -------------------------------------------------------- */

/* The daemon's flags and options for --io-model (out: two items, the
 * last MHD_OPTION_END); before the daemon starts. */
unsigned serve_io_flags(const struct minidbx_server_config *cfg);
void serve_io_options(const struct minidbx_server_config *cfg, struct MHD_OptionItem out[2]);

/* ---- what the node remembers as verified (cache.c) ------------------------- */

struct stat;

int serve_verified_start(struct serve_server *srv);
/* After the daemon has stopped (no reply holds a body any more). */
void serve_verified_stop(struct serve_server *srv);
/* Do two fstat results name the same file with the same bytes (device,
 * inode, size, mtime, ctime)? */
bool serve_same_file(const struct stat *a, const struct stat *b);
/* The time a hashing starts, for the *_remember calls. */
int64_t serve_hash_start_ns(void);

/* Was the file (st: fstat of an fd just opened) of object id hashed in
 * full and found right, and is it unchanged since? */
bool serve_verified_lookup(struct serve_server *srv, const minidbx_id *id, const struct stat *st);
/* May a hashing of the file fd be remembered: is it on a filesystem where
 * a write through a mapping moves ctime, and open for writing nowhere, in
 * no process (no mapping either)? Asked before the hashing (cache.c). */
bool serve_file_rememberable(int fd);
/* The file fd, whose fstat was before when its hashing started at
 * hashed_since_ns, hashed to id, and serve_file_rememberable said yes before
 * the hashing: remember it if cache.c may. */
void serve_verified_remember(struct serve_server *srv, const minidbx_id *id, int fd,
                             const struct stat *before, int64_t hashed_since_ns);

/* The verified bytes of a blob file, shared by the replies that send
 * them; counted, so that all of them together stay bounded. */
struct serve_copy;
/* May an object of size bytes be read into a body? */
bool serve_copy_cacheable(struct serve_server *srv, uint64_t size);
/* A new body of size bytes (one reference), or NULL when the bodies'
 * memory is spent or size is too large. */
struct serve_copy *serve_copy_new(struct serve_server *srv, uint64_t size);
/* Where the bytes go (until serve_copy_seal). */
char *serve_copy_bytes(struct serve_copy *body);
/* The bytes are written and hashed: from now on they cannot change (a
 * memfd body is sealed). 0, or -1 (do not send it). */
int serve_copy_seal(struct serve_copy *body);
/* The sealed memfd holding a body's bytes, or -1 (they are in memory). */
int serve_copy_fd(const struct serve_copy *body);
/* Descriptors the kept bodies may hold (memfds) when all slots are full. */
unsigned serve_copy_fds_max(const struct serve_server *srv);
/* Bytes of copies in memory: kept, or held by replies. */
uint64_t serve_copy_memory_bytes(struct serve_server *srv);
/* Drop one reference (a libmicrohttpd free callback). NULL: no-op. */
void serve_copy_release(void *body);
/* The kept body of object id if its file (st) is unchanged since it was
 * read: a new reference, or NULL. */
struct serve_copy *serve_copy_lookup(struct serve_server *srv, const minidbx_id *id,
                                     const struct stat *st);
/* body holds the bytes of the file fd, hashed to id as for
 * serve_verified_remember: keep it (least recently used evicted). */
void serve_copy_remember(struct serve_server *srv, const minidbx_id *id, int fd,
                         const struct stat *before, int64_t hashed_since_ns, struct serve_copy *body);

/* ---- replies (reply.c) ----------------------------------------------------- */

/* Queue response with status (adding the headers every reply has), count
 * its bytes and destroy our reference. Returns what MHD_queue_response did. */
enum MHD_Result serve_queue(struct serve_request *req, unsigned status, struct MHD_Response *resp);
/* A text/plain reply. */
enum MHD_Result serve_reply_text(struct serve_request *req, unsigned status, const char *text);
/* Print json (and free it) as the body, with status. */
enum MHD_Result serve_reply_json(struct serve_request *req, unsigned status, cJSON *json);
/* {"error": "..."} with status. */
enum MHD_Result serve_reply_error(struct serve_request *req, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for a MINIDBX_E* code: its status (or status, if not 0), the
 * X-Minidbx-Error header naming the code and "code" in the body. */
enum MHD_Result serve_reply_code(struct serve_request *req, int code, unsigned status,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The reply for a failed library call: the status that fits code, and
 * minidbx_errmsg as the error. Call it right after the failure. */
enum MHD_Result serve_reply_failure(struct serve_request *req, int code, const char *what);
/* The same with status (0: the one that fits code). */
enum MHD_Result serve_reply_failure_status(struct serve_request *req, int code, unsigned status,
                                           const char *what);
/* {"error": "what: <strerror>: <errmsg>"} for a failed library call, as
 * serve_reply_failure says it; call it on the failing thread. */
cJSON *serve_json_failure(int code, const char *what);

/* Parse an id from a URL or query strictly; on failure reply 400 and return
 * false (the caller returns *result). */
bool serve_parse_id(struct serve_request *req, const char *hex, minidbx_id *id,
                    enum MHD_Result *result);
/* A query argument, or NULL. */
const char *serve_query(struct serve_request *req, const char *key);
/* A flag in the query (?key=1): given, and not "0". */
bool serve_query_flag(struct serve_request *req, const char *key);
/* Parse the ?limit= argument: default when absent, 1..max; false after a 400. */
bool serve_query_limit(struct serve_request *req, size_t def, size_t max, size_t *out,
                       enum MHD_Result *result);

/* Reply with an object's bytes (GET) or its headers (HEAD): ETag,
 * immutable caching, If-None-Match, a single Range. A GET never completes
 * with bytes that do not hash to id: it is refused before the first byte
 * or cut before the last (send.c). */
enum MHD_Result serve_send_object(struct serve_request *req, const minidbx_id *id);
/* Commit the writer of an object body (an empty one when no bytes came);
 * for PUT /v1/objects/ID only when the bytes hash to ID (else ECORRUPT,
 * 422, and nothing is stored). On any thread (a serve_job_fn for
 * serve_commit_run): 0 with req->put_id and req->put_created (whether
 * this commit stored a new object: the store's own answer) set, or the
 * failure's code with req->job_json its words ("put: ..."). */
int serve_commit_writer(struct serve_request *req);

/* Names under this prefix are the node's own (the Go registry's records):
 * clients may read them but not set them. */
#define SERVE_RESERVED_NAME_PREFIX "_go/"
bool serve_name_reserved(const char *name);

/* MD5 aliases (proto_go.c): whether name is one ("_go/md5/..."), and set
 * one as /upload does: only to an object whose bytes have that MD5, never
 * moved (EEXISTS), one set at a time; mtime_ns >= 0 keeps a copy's time. */
bool serve_md5_alias(const char *name);
int serve_md5_alias_set(minidbx *db, const char *name, const minidbx_id *id, int64_t mtime_ns);

/* ---- the request's life (router.c, body.c) --------------------------------- */

/* libmicrohttpd's access handler and its request-completed callback;
 * cls: the server. */
enum MHD_Result serve_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **con_cls);
void serve_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode code);
/* Before the body: refuse what is sure to be too big, set up the parsing.
 * *replied: a reply is queued (return what this returns). */
enum MHD_Result serve_body_begin(struct serve_request *req, bool *replied);
/* One chunk of the body. MHD_NO drops a client that keeps sending long
 * after a refusal. */
enum MHD_Result serve_body_chunk(struct serve_request *req, const char *data, size_t size);
/* Stop taking the body: what came is thrown away and the request ends with
 * code once the client has finished sending. */
void serve_body_fail(struct serve_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- handlers (the rest are static, next to their protocol's table) ---- */

/* GET /metrics (metrics.c). */
enum MHD_Result serve_metrics_page(struct serve_request *req);

#endif /* MINIDBX_SERVER_NODE_H */
