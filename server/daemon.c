/* daemon.c - `mdbx serve`: options, the daemon and its signals, routing,
 * access checks and request bodies. Replies are in reply.c, limits in
 * limits.c, the handlers in proto_v1.c and proto_go.c. */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Requests a connection's memory pool must hold: the headers, and the
 * buffer that upload chunks arrive in. Larger headers get 431. */
#define CONNECTION_MEMORY_BYTES (128u * 1024u)
/* A multipart body may be this much larger than the file it carries. */
#define MULTIPART_OVERHEAD_BYTES (64u * 1024u)
/* After a body is refused (413, ...) the rest of it is read and thrown
 * away, so that the client, which sends before it reads, sees the status
 * instead of a reset connection; for this long at most (as nginx's
 * lingering_time), then the connection is cut. */
#define DISCARD_BODY_NS (30ll * 1000 * 1000 * 1000)

/* ---- the route table ------------------------------------------------------ */

static const struct serve_route_spec routes[] = {
    { "PUT", "/v1/objects", ROUTE_OBJECT_PUT, BODY_OBJECT, ACCESS_WRITE, serve_object_put },
    { "PUT", "/v1/objects/", ROUTE_OBJECT_PUT, BODY_OBJECT, ACCESS_WRITE, serve_object_put },
    { "GET", "/v1/objects", ROUTE_OBJECT_LIST, BODY_NONE, ACCESS_READ, serve_object_list },
    { "GET", "/v1/objects/", ROUTE_OBJECT_GET, BODY_NONE, ACCESS_READ, serve_object_get },
    { "DELETE", "/v1/objects/", ROUTE_OBJECT_DELETE, BODY_NONE, ACCESS_WRITE, serve_object_delete },
    { "POST", "/v1/missing", ROUTE_MISSING, BODY_SMALL, ACCESS_READ, serve_missing },
    { "PUT", "/v1/names/", ROUTE_NAME_PUT, BODY_SMALL, ACCESS_WRITE, serve_name_put },
    { "GET", "/v1/names", ROUTE_NAME_LIST, BODY_NONE, ACCESS_READ, serve_name_list },
    { "GET", "/v1/names/", ROUTE_NAME_GET, BODY_NONE, ACCESS_READ, serve_name_get },
    { "DELETE", "/v1/names/", ROUTE_NAME_DELETE, BODY_NONE, ACCESS_WRITE, serve_name_delete },
    { "GET", "/v1/info", ROUTE_INFO, BODY_NONE, ACCESS_READ, serve_info },
    { "POST", "/v1/verify", ROUTE_VERIFY, BODY_NONE, ACCESS_ADMIN, serve_verify },
    { "POST", "/v1/gc", ROUTE_GC, BODY_NONE, ACCESS_WRITE, serve_gc },
    { "GET", "/health", ROUTE_HEALTH, BODY_NONE, ACCESS_OPEN, serve_health },
    { "GET", "/metrics", ROUTE_METRICS, BODY_NONE, ACCESS_READ, serve_metrics_page },
    { "POST", "/upload", ROUTE_GO_UPLOAD, BODY_MULTIPART, ACCESS_WRITE, serve_go_upload },
    { "GET", "/retrieve", ROUTE_GO_RETRIEVE, BODY_NONE, ACCESS_READ, serve_go_retrieve },
    { "POST", "/register", ROUTE_GO_REGISTER, BODY_SMALL, ACCESS_WRITE, serve_go_register },
    { "GET", "/get", ROUTE_GO_GET, BODY_NONE, ACCESS_READ, serve_go_get },
    { "GET", "/list", ROUTE_GO_LIST, BODY_NONE, ACCESS_READ, serve_go_list },
};

#define ROUTE_SPEC_COUNT (sizeof routes / sizeof routes[0])

static bool path_matches(const struct serve_route_spec *spec, const char *path, const char **arg)
{
    size_t len = strlen(spec->path);
    bool prefix = spec->path[len - 1] == '/';

    if (prefix ? strncmp(path, spec->path, len) != 0 || path[len] == '\0'
               : strcmp(path, spec->path) != 0)
        return false;
    *arg = path + (prefix ? len : strlen(path));
    return true;
}

static bool method_matches(const char *want, const char *method)
{
    return strcmp(want, method) == 0 || (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* The route for method and path; *path_known tells 405 from 404. */
static const struct serve_route_spec *find_route(const char *method, const char *path,
                                                 const char **arg, bool *path_known)
{
    *path_known = false;
    for (size_t i = 0; i < ROUTE_SPEC_COUNT; i++) {
        if (!path_matches(&routes[i], path, arg))
            continue;
        *path_known = true;
        if (method_matches(routes[i].method, method))
            return &routes[i];
    }
    return NULL;
}

/* ---- request bodies ------------------------------------------------------- */

static void body_fail(struct serve_request *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Stop taking the body: what came is thrown away and the request ends with
 * code (its status, and its name in X-Minidbx-Error) once the client has
 * finished sending. */
static void body_fail(struct serve_request *req, int code, const char *fmt, ...)
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
        body_fail(req, rc, "writer: %s", minidbx_errmsg(NULL));
        return;
    }
    if ((rc = minidbx_writer_write(req->writer, data, size)) < 0)
        body_fail(req, rc, "write: %s", minidbx_errmsg(NULL));
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
        body_fail(req, MINIDBX_EINVAL, "more than one 'file' field");
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
            body_fail(req, MINIDBX_ENOMEM, "out of memory");
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
static enum MHD_Result body_chunk(struct serve_request *req, const char *data, size_t size)
{
    uint64_t limit = body_limit(req);

    req->body_bytes += size;
    atomic_fetch_add(&req->srv->metrics.bytes_in, size);
    serve_conn_body_bytes(req->srv, req->conn, size);
    if (req->body_code)
        return serve_now_ns() - req->body_refused_ns > DISCARD_BODY_NS ? MHD_NO : MHD_YES;
    /* a PUT body is the object: the writer bounds it */
    if (req->spec->body != BODY_OBJECT && req->body_bytes > limit) {
        body_fail(req, MINIDBX_ETOOBIG, "body is over the limit of %llu bytes", (unsigned long long)limit);
        return MHD_YES;
    }
    switch (req->spec->body) {
    case BODY_OBJECT: object_bytes(req, data, size); break;
    case BODY_SMALL: small_bytes(req, data, size); break;
    case BODY_MULTIPART:
        if (MHD_post_process(req->post, data, size) != MHD_YES)
            body_fail(req, MINIDBX_EINVAL, "malformed multipart/form-data body");
        break;
    case BODY_NONE: break;
    }
    return MHD_YES;
}

/* Before the body: refuse what is sure to be too big, set up the parsing. */
static enum MHD_Result body_begin(struct serve_request *req, bool *replied)
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

/* ---- access: tokens and rates ---------------------------------------------- */

static enum MHD_Result check_access(struct serve_request *req, bool *replied)
{
    const struct serve_config *cfg = req->srv->cfg;
    const char *want = NULL, *also = NULL;
    enum serve_access access = req->spec->access;

    *replied = true;
    if (!serve_rate_allow(req->srv, req->conn))
        return serve_reply_error(req, MHD_HTTP_TOO_MANY_REQUESTS, "over the rate limit");
    if (access == ACCESS_WRITE || access == ACCESS_ADMIN)
        want = cfg->write_token ? cfg->write_token : cfg->read_token;
    else if (access == ACCESS_READ && cfg->read_token)
        want = cfg->read_token, also = cfg->write_token;
    if (want) {
        unsigned status = serve_token_status(req->conn, want, also);
        if (status)
            return serve_reply_code(req, MINIDBX_EPERM, status, status == MHD_HTTP_UNAUTHORIZED
                                                                    ? "a bearer token is needed"
                                                                    : "wrong token");
    }
    if (access == ACCESS_WRITE && cfg->read_only)
        return serve_reply_code(req, MINIDBX_EREADONLY, 0, "%s %s: the store is served read-only",
                                req->method, req->url);
    *replied = false;
    return MHD_YES;
}

/* ---- the request's life ---------------------------------------------------- */

static enum MHD_Result request_begin(struct serve_server *srv, struct MHD_Connection *conn,
                                     const char *url, const char *method, const char *version,
                                     void **con_cls)
{
    struct serve_request *req = calloc(1, sizeof *req);
    bool path_known, replied;
    enum MHD_Result result;

    if (!req)
        return MHD_NO;
    req->srv = srv;
    req->conn = conn;
    req->method = method;
    req->url = url;
    req->head = strcmp(method, "HEAD") == 0;
    req->start_ns = serve_now_ns();
    *con_cls = req;
    atomic_fetch_add(&srv->metrics.requests_in_flight, 1);
    serve_conn_request_started(srv, conn);

    static const struct serve_route_spec unknown = { "", "", ROUTE_UNKNOWN, BODY_NONE,
                                                     ACCESS_OPEN, NULL };
    /* Before anything else: a request whose framing is ambiguous is
     * answered 400 and its connection closed, so that nothing sent after
     * its headers is ever read as a request. */
    const char *framing = serve_request_framing_problem(conn);
    bool nul = serve_conn_take_nul(srv, conn);
    /* HTTP/1.0 and 1.1 only: libmicrohttpd passes other versions through. */
    if (!framing && !nul && strcmp(version, MHD_HTTP_VERSION_1_1) != 0 &&
        strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        framing = "not an HTTP/1.0 or HTTP/1.1 request line";
    if (framing || nul) {
        req->spec = &unknown;
        req->close_connection = true;
        return serve_reply_code(req, MINIDBX_EINVAL, MHD_HTTP_BAD_REQUEST, "%s",
                                framing ? framing : "a NUL byte (%00) in the URL or query");
    }
    req->spec = find_route(method, url, &req->path_arg, &path_known);
    if (!req->spec) {
        req->spec = &unknown;
        if (!serve_rate_allow(srv, conn))
            return serve_reply_error(req, MHD_HTTP_TOO_MANY_REQUESTS, "over the rate limit");
        return serve_reply_error(req, path_known ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND,
                                 "%s %s: %s", method, url,
                                 path_known ? "method not allowed" : "no such route");
    }
    if ((result = check_access(req, &replied)) != MHD_YES || replied)
        return result;
    /* The handler runs on the next call, once MHD knows the request is
     * complete: a reply queued now would cost the kept-alive connection. */
    if (req->spec->body == BODY_NONE)
        return MHD_YES;
    return body_begin(req, &replied);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct serve_request *req = *con_cls;

    if (!req)
        return request_begin(cls, conn, url, method, version, con_cls);
    if (*upload_size) {
        size_t size = *upload_size;
        *upload_size = 0;
        return req->replied ? MHD_YES : body_chunk(req, upload_data, size);
    }
    if (req->replied)
        return MHD_YES;
    if (req->job_started) /* resumed: the job is done */
        return req->spec->handler(req);
    serve_conn_body_done(req->srv, conn);
    /* the end of the body: the post processor hands over what it held */
    if (req->post && MHD_destroy_post_processor(req->post) != MHD_YES)
        body_fail(req, MINIDBX_EINVAL, "truncated multipart/form-data body");
    req->post = NULL;
    /* cJSON stops at a NUL: "id\u0000junk" would read as "id" */
    if (req->small && serve_json_has_nul(req->small, req->small_len))
        body_fail(req, MINIDBX_EINVAL, "a NUL character in the JSON body");
    if (req->body_code)
        return serve_reply_code(req, req->body_code, 0, "%s", req->body_error);
    return req->spec->handler(req);
}

static void request_free(struct serve_request *req)
{
    /* A writer still open here belongs to a request that did not finish
     * (the client went away, or a timeout): nothing of it is stored. */
    minidbx_writer_abort(req->writer);
    if (req->post)
        MHD_destroy_post_processor(req->post);
    free(req->small);
    cJSON_Delete(req->job_json);
    free(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct serve_server *srv = cls;
    struct serve_request *req = *con_cls;

    if (!req)
        return;
    *con_cls = NULL;
    if (code == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        atomic_fetch_add(&srv->metrics.bytes_out, req->reply_bytes);
    serve_metrics_record(&srv->metrics, req->spec ? req->spec->route : ROUTE_UNKNOWN,
                         req->replied ? req->status : 499, serve_now_ns() - req->start_ns);
    atomic_fetch_sub(&srv->metrics.requests_in_flight, 1);
    serve_conn_request_done(srv, conn);
    request_free(req);
}

/* ---- options ------------------------------------------------------------- */

enum {
    OPT_LISTEN = 0x200, /* above the global options' codes (util.c) */
    OPT_THREADS, OPT_MAX_OBJECT, OPT_MAX_CONN, OPT_MAX_CONN_IP, OPT_RATE,
    OPT_READ_TOKEN, OPT_WRITE_TOKEN, OPT_TLS_CERT, OPT_TLS_KEY, OPT_IDLE, OPT_HEADER,
    OPT_DRAIN, OPT_CONFIG, OPT_READ_ONLY, OPT_MIN_BODY_RATE, OPT_VERIFIED_CACHE
};

static const struct option serve_longopts[] = {
    { "listen", required_argument, NULL, OPT_LISTEN },
    { "threads", required_argument, NULL, OPT_THREADS },
    { "max-object-size", required_argument, NULL, OPT_MAX_OBJECT },
    { "max-connections", required_argument, NULL, OPT_MAX_CONN },
    { "max-connections-per-ip", required_argument, NULL, OPT_MAX_CONN_IP },
    { "rate-limit", required_argument, NULL, OPT_RATE },
    { "read-token", required_argument, NULL, OPT_READ_TOKEN },
    { "write-token", required_argument, NULL, OPT_WRITE_TOKEN },
    { "tls-cert", required_argument, NULL, OPT_TLS_CERT },
    { "tls-key", required_argument, NULL, OPT_TLS_KEY },
    { "idle-timeout", required_argument, NULL, OPT_IDLE },
    { "header-timeout", required_argument, NULL, OPT_HEADER },
    { "drain-timeout", required_argument, NULL, OPT_DRAIN },
    { "min-body-rate", required_argument, NULL, OPT_MIN_BODY_RATE },
    { "verified-cache", required_argument, NULL, OPT_VERIFIED_CACHE },
    { "config", required_argument, NULL, OPT_CONFIG },
    { "read-only", no_argument, NULL, OPT_READ_ONLY },
    { NULL, 0, NULL, 0 },
};

struct option_ctx {
    struct cli *cli;
    struct serve_config *cfg;
    bool config_only; /* the first pass only looks for --config */
};

/* "512M", "1G", "4096": binary suffixes K, M, G, T. */
static bool parse_size(const char *text, uint64_t *out)
{
    char *end;
    unsigned shift = 0;

    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || end == text || text[0] == '-')
        return false;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B')
        end += *end == 'i' && end[1] == 'B' ? 2 : 1;
    if (*end || value > (UINT64_MAX >> shift))
        return false;
    *out = (uint64_t)value << shift;
    return true;
}

static bool parse_uint(const char *text, unsigned *out)
{
    uint64_t value;
    if (!parse_size(text, &value) || value > UINT_MAX)
        return false;
    *out = (unsigned)value;
    return true;
}

/* Apply one setting (from the command line or the config file). */
static int apply_setting(struct cli *cli, struct serve_config *cfg, int opt, const char *value)
{
    unsigned *number = NULL;

    switch (opt) {
    case OPT_LISTEN: cfg->listen = value; return 0;
    case OPT_READ_TOKEN: cfg->read_token = value; return 0;
    case OPT_WRITE_TOKEN: cfg->write_token = value; return 0;
    case OPT_TLS_CERT: cfg->tls_cert_file = value; return 0;
    case OPT_TLS_KEY: cfg->tls_key_file = value; return 0;
    case OPT_CONFIG: cfg->config_file = value; return 0;
    case OPT_READ_ONLY:
        if (value && strcmp(value, "true") != 0 && strcmp(value, "false") != 0)
            return cli_usage_error(cli, "--read-only takes no value (in a config file: true or false)");
        cfg->read_only = !value || strcmp(value, "true") == 0;
        return 0;
    case OPT_MAX_OBJECT:
        if (!parse_size(value, &cfg->max_object_bytes) || cfg->max_object_bytes == 0)
            return cli_usage_error(cli, "bad size '%s' for --max-object-size", value);
        return 0;
    case OPT_MIN_BODY_RATE:
        if (!parse_size(value, &cfg->min_body_rate))
            return cli_usage_error(cli, "bad rate '%s' for --min-body-rate", value);
        return 0;
    case OPT_VERIFIED_CACHE: number = &cfg->verified_cache_entries; break;
    case OPT_THREADS: number = &cfg->threads; break;
    case OPT_MAX_CONN: number = &cfg->max_connections; break;
    case OPT_MAX_CONN_IP: number = &cfg->max_connections_per_ip; break;
    case OPT_RATE: number = &cfg->rate_limit_per_s; break;
    case OPT_IDLE: number = &cfg->idle_timeout_s; break;
    case OPT_HEADER: number = &cfg->header_timeout_s; break;
    case OPT_DRAIN: number = &cfg->drain_timeout_s; break;
    default: return CLI_EXIT_USAGE;
    }
    if (!parse_uint(value, number))
        return cli_usage_error(cli, "bad number '%s'", value);
    return 0;
}

static int on_option(void *cls, int opt, const char *value)
{
    struct option_ctx *ctx = cls;
    if (ctx->config_only && opt != OPT_CONFIG)
        return 0;
    return apply_setting(ctx->cli, ctx->cfg, opt, value);
}

static char *read_file_text(const char *path);

static int load_config_file(struct cli *cli, struct serve_config *cfg, cJSON **out_tree)
{
    int rc = CLI_EXIT_OK;
    char *text = read_file_text(cfg->config_file);

    if (!text)
        return cli_fail_errno(cli, cfg->config_file, errno);
    cJSON *tree = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(tree)) {
        cJSON_Delete(tree);
        return cli_usage_error(cli, "%s: not a JSON object", cfg->config_file);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, tree)
    {
        const struct option *o = serve_longopts;
        while (o->name && strcmp(o->name, item->string) != 0)
            o++;
        if (!o->name || o->val == OPT_CONFIG) {
            rc = cli_usage_error(cli, "%s: unknown setting '%s'", cfg->config_file, item->string);
            break;
        }
        char number[32];
        const char *value = cJSON_GetStringValue(item);
        if (cJSON_IsNumber(item) && item->valuedouble >= 0) {
            snprintf(number, sizeof number, "%.0f", item->valuedouble);
            value = number;
        }
        if (cJSON_IsBool(item))
            value = cJSON_IsTrue(item) ? "true" : "false";
        if (!value) {
            rc = cli_usage_error(cli, "%s: '%s' must be a string or a number", cfg->config_file,
                                 item->string);
            break;
        }
        if ((rc = apply_setting(cli, cfg, o->val, value)) != 0)
            break;
    }
    *out_tree = tree; /* the strings in cfg point into it */
    return rc;
}

static void config_defaults(struct serve_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->listen = "127.0.0.1:8001";
    cfg->threads = 4;
    cfg->max_object_bytes = (uint64_t)1 << 30;
    cfg->max_connections = 1000;
    cfg->max_connections_per_ip = 64;
    cfg->idle_timeout_s = 30;
    cfg->header_timeout_s = 10;
    cfg->drain_timeout_s = 10;
    cfg->min_body_rate = 1024;
    cfg->verified_cache_entries = 1024;
}

static int parse_serve_options(struct cli *cli, int argc, char **argv, struct serve_config *cfg,
                               cJSON **config_tree)
{
    struct option_ctx ctx = { cli, cfg, true };
    int first, rc;

    config_defaults(cfg);
    rc = cli_parse_options(cli, argc, argv, "", serve_longopts, on_option, &ctx, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (first != argc)
        return cli_usage_error(cli, "unexpected argument '%s'", argv[first]);
    if (cfg->config_file && (rc = load_config_file(cli, cfg, config_tree)) != 0)
        return rc;
    ctx.config_only = false;
    rc = cli_parse_options(cli, argc, argv, "", serve_longopts, on_option, &ctx, &first);
    if (rc != CLI_PARSE_CONTINUE)
        return rc;
    if (cfg->threads == 0 || cfg->threads > 256)
        return cli_usage_error(cli, "--threads must be 1..256");
    if (cfg->max_connections == 0 || cfg->max_connections_per_ip == 0)
        return cli_usage_error(cli, "connection limits must be at least 1");
    if (cfg->idle_timeout_s == 0 || cfg->header_timeout_s == 0)
        return cli_usage_error(cli, "timeouts must be at least 1 second");
    if (cfg->verified_cache_entries > 1000000)
        return cli_usage_error(cli, "--verified-cache must be 0..1000000");
    if (!cfg->tls_cert_file != !cfg->tls_key_file)
        return cli_usage_error(cli, "--tls-cert and --tls-key go together");
    return CLI_PARSE_CONTINUE;
}

/* ---- the daemon ------------------------------------------------------------- */

static int parse_listen(struct cli *cli, const char *listen, struct sockaddr_storage *out)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;

    if (!colon || colon == listen || (size_t)(colon - listen) >= sizeof host)
        return cli_usage_error(cli, "--listen wants ADDR:PORT, e.g. 127.0.0.1:8001 or [::1]:8001");
    size_t len = (size_t)(colon - listen);
    if (listen[0] == '[' && listen[len - 1] == ']')
        memcpy(host, listen + 1, len - 2), host[len - 2] = '\0';
    else
        memcpy(host, listen, len), host[len] = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || !res)
        return cli_usage_error(cli, "--listen: '%s' is not a numeric ADDR:PORT", listen);
    memcpy(out, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static char *read_file_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0;

    if (!f)
        return NULL;
    FILE *mem = open_memstream(&text, &len);
    char buf[4096];
    size_t n;
    while (mem && (n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, mem);
    if (mem)
        fclose(mem);
    fclose(f);
    return text;
}

struct tls_pem {
    char *cert;
    char *key;
};

static int load_tls(struct cli *cli, const struct serve_config *cfg, struct tls_pem *pem)
{
    if (!cfg->tls_cert_file)
        return 0;
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        fprintf(stderr, "mdbx serve: this libmicrohttpd has no TLS support\n");
        return CLI_EXIT_FAILURE;
    }
    if (!(pem->cert = read_file_text(cfg->tls_cert_file)))
        return cli_fail_errno(cli, cfg->tls_cert_file, errno);
    if (!(pem->key = read_file_text(cfg->tls_key_file)))
        return cli_fail_errno(cli, cfg->tls_key_file, errno);
    return 0;
}

/* libmicrohttpd's messages (a client that went away mid-request, ...). */
static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    fputs("mdbx serve: ", stderr);
    vfprintf(stderr, fmt, ap);
}

static struct MHD_Daemon *start_daemon(struct serve_server *srv, const struct sockaddr_storage *addr,
                                       const struct tls_pem *pem)
{
    const struct serve_config *cfg = srv->cfg;
    /* poll, not epoll: libmicrohttpd 0.9.75's edge-triggered epoll misses
     * a client that sends a partial body and closes in one go, and keeps
     * the request until the idle timeout (tests/http/lifecycle.sh). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_OptionItem tls_options[] = {
        { MHD_OPTION_HTTPS_MEM_CERT, 0, pem->cert },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, pem->key },
        { MHD_OPTION_END, 0, NULL },
    };

    if (pem->cert)
        flags |= MHD_USE_TLS;
    if (addr->ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, /* first, to catch every message */
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
        MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
        MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY_BYTES,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, serve_on_connection, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, serve_unescape, srv,
        /* HTTP/1.1 without Host, white space in the URL: 400 (the rest of
         * the framing is checked in framing.c) */
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_ARRAY, pem->cert ? tls_options : tls_options + 2,
        MHD_OPTION_END);
}

/* Wait for SIGTERM or SIGINT (blocked in every thread since before the
 * daemon started), then drain: stop accepting, give requests in flight up
 * to drain_timeout_s to finish, stop. */
static void wait_and_drain(struct serve_server *srv, struct MHD_Daemon *daemon, const sigset_t *set)
{
    int sig = 0;

    while (sigwait(set, &sig) != 0)
        continue;
    fprintf(stderr, "mdbx serve: %s: draining\n", strsignal(sig));
    MHD_socket listen_fd = MHD_quiesce_daemon(daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    int64_t deadline = serve_now_ns() + (int64_t)srv->cfg->drain_timeout_s * 1000000000;
    while (atomic_load(&srv->metrics.requests_in_flight) > 0 && serve_now_ns() < deadline) {
        struct timespec pause = { 0, 20 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
    long long left = atomic_load(&srv->metrics.requests_in_flight);
    if (left > 0)
        fprintf(stderr, "mdbx serve: %lld requests still running after %us; stopping\n", left,
                srv->cfg->drain_timeout_s);
}

static unsigned bound_port(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

static int run_server(struct cli *cli, struct serve_server *srv, const struct tls_pem *pem)
{
    struct sockaddr_storage addr;
    sigset_t set;
    int rc;

    if ((rc = parse_listen(cli, srv->cfg->listen, &addr)) != 0)
        return rc;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if ((rc = serve_limits_start(srv)) != 0 || (rc = serve_verified_start(srv)) != 0 ||
        (rc = serve_jobs_start(srv)) != 0) {
        serve_jobs_free(srv);
        serve_verified_stop(srv);
        serve_limits_stop(srv);
        return cli_fail_errno(cli, "serve", rc);
    }
    struct MHD_Daemon *daemon = start_daemon(srv, &addr, pem);
    if (!daemon) {
        serve_jobs_free(srv);
        serve_verified_stop(srv);
        serve_limits_stop(srv);
        fprintf(stderr, "mdbx serve: cannot listen on %s (in use? bad TLS files?)\n",
                srv->cfg->listen);
        return CLI_EXIT_FAILURE;
    }
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(strrchr(srv->cfg->listen, ':') - srv->cfg->listen),
             srv->cfg->listen);
    printf("listening on %s://%s:%u\n", pem->cert ? "https" : "http", host, bound_port(daemon));
    fflush(stdout);
    wait_and_drain(srv, daemon, &set);
    serve_jobs_stop(srv); /* it resumes its connection: before the daemon goes */
    MHD_stop_daemon(daemon);
    serve_jobs_free(srv);
    serve_verified_stop(srv);
    serve_limits_stop(srv);
    fprintf(stderr, "mdbx serve: stopped\n");
    return CLI_EXIT_OK;
}

int cmd_serve(struct cli *cli, int argc, char **argv)
{
    struct serve_config cfg;
    struct serve_server *srv = NULL;
    struct tls_pem pem = { NULL, NULL };
    cJSON *config_tree = NULL;
    int rc = parse_serve_options(cli, argc, argv, &cfg, &config_tree);

    if (rc != CLI_PARSE_CONTINUE)
        goto out;
    /* One limit: the library enforces it on every write to the store. */
    cli->max_object_size = cfg.max_object_bytes;
    if ((rc = load_tls(cli, &cfg, &pem)) != 0 ||
        (rc = cli_open_store(cli, cfg.read_only ? CLI_OPEN_READ : CLI_OPEN_CREATE)) != 0)
        goto out;
    if (!(srv = calloc(1, sizeof *srv))) {
        rc = cli_fail_errno(cli, "serve", ENOMEM);
        goto out;
    }
    srv->db = cli->db;
    srv->cfg = &cfg;
    rc = run_server(cli, srv, &pem);
out:
    free(srv);
    free(pem.cert);
    free(pem.key);
    cJSON_Delete(config_tree);
    return rc;
}
