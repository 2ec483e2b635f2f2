/* proto_v1.c - the /v1 API: objects, the batch missing query, names,
 * info, verify and gc, and /health. Each handler parses its arguments,
 * makes one or two calls of the public API and replies. */
#include "node.h"

#include <errno.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LIST_DEFAULT 1000
#define LIST_MAX 10000
#define MISSING_MAX 10000 /* as the http:// client batches them */

/* ---- objects ------------------------------------------------------------- */

/* The commit runs on a commit thread (commit.c), this again for the reply. */
static enum MHD_Result serve_object_put(struct serve_request *req)
{
    if (!atomic_load(&req->job_done))
        return serve_commit_put(req);
    if (req->job_rc < 0)
        return serve_job_reply(req);
    cJSON *json = cJSON_CreateObject();
    if (json) {
        dbx_json_add_id(json, "id", &req->put_id);
        dbx_json_add_u64(json, "size", req->object_bytes);
        cJSON_AddBoolToObject(json, "created", req->put_created);
    }
    return serve_reply_json(req, req->put_created ? MHD_HTTP_CREATED : MHD_HTTP_OK, json);
}

static enum MHD_Result serve_object_get(struct serve_request *req)
{
    enum MHD_Result result;
    minidbx_id id;

    if (!serve_parse_id(req, req->path_arg, &id, &result))
        return result;
    return serve_send_object(req, &id);
}

static enum MHD_Result serve_object_delete(struct serve_request *req)
{
    enum MHD_Result result;
    minidbx_id id;
    unsigned flags = serve_query_flag(req, "cascade") ? MINIDBX_DELETE_CASCADE : 0;

    if (!serve_parse_id(req, req->path_arg, &id, &result))
        return result;
    int rc = minidbx_delete_ex(req->srv->db, &id, flags);
    if (rc < 0)
        return serve_reply_failure(req, rc, "delete");
    return serve_reply_text(req, MHD_HTTP_NO_CONTENT, "");
}

/* {"objects": [...], "next": ID or null}: pass next as ?after= to go on. */
static enum MHD_Result serve_object_list(struct serve_request *req)
{
    enum MHD_Result result;
    minidbx_object_info *infos = NULL;
    minidbx_id after;
    const char *after_text = serve_query(req, "after");
    size_t limit, count = 0;

    if ((after_text && !serve_parse_id(req, after_text, &after, &result)) ||
        !serve_query_limit(req, LIST_DEFAULT, LIST_MAX, &limit, &result))
        return result;
    if (!(infos = malloc(limit * sizeof *infos)))
        return MHD_NO;
    int rc = minidbx_list(req->srv->db, after_text ? &after : NULL, infos, limit, &count);
    if (rc < 0) {
        free(infos);
        return serve_reply_failure(req, rc, "list");
    }
    cJSON *json = cJSON_CreateObject();
    cJSON *array = json ? cJSON_AddArrayToObject(json, "objects") : NULL;
    for (size_t i = 0; array && i < count; i++)
        cJSON_AddItemToArray(array, dbx_json_object_info(&infos[i]));
    if (json && count == limit)
        dbx_json_add_id(json, "next", &infos[count - 1].id);
    else if (json)
        cJSON_AddNullToObject(json, "next");
    free(infos);
    return serve_reply_json(req, MHD_HTTP_OK, json);
}

/* A JSON array of ids in, {"missing": [the ones not here]} out. */
static enum MHD_Result serve_missing(struct serve_request *req)
{
    cJSON *in = req->small ? cJSON_Parse(req->small) : NULL;
    int count = cJSON_GetArraySize(in);
    minidbx_id *ids = NULL;
    enum MHD_Result result;
    size_t missing = 0;

    if (!cJSON_IsArray(in) || count > MISSING_MAX) {
        result = serve_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "expected a JSON array of at most %d ids", MISSING_MAX);
        goto out;
    }
    if (!(ids = malloc(((size_t)count + 1) * sizeof *ids))) {
        result = MHD_NO;
        goto out;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, in)
    {
        if (!serve_parse_id(req, cJSON_GetStringValue(item), &ids[i++], &result))
            goto out;
    }
    int rc = minidbx_missing(req->srv->db, ids, (size_t)count, ids, &missing);
    if (rc < 0) {
        result = serve_reply_failure(req, rc, "missing");
        goto out;
    }
    cJSON *json = cJSON_CreateObject();
    cJSON *array = json ? cJSON_AddArrayToObject(json, "missing") : NULL;
    for (size_t j = 0; array && j < missing; j++) {
        char hex[MINIDBX_ID_HEX_SIZE];
        minidbx_id_format(&ids[j], hex);
        cJSON_AddItemToArray(array, cJSON_CreateString(hex));
    }
    result = serve_reply_json(req, MHD_HTTP_OK, json);
out:
    free(ids);
    cJSON_Delete(in);
    return result;
}

/* ---- names --------------------------------------------------------------- */

static bool name_arg(struct serve_request *req, enum MHD_Result *result)
{
    if (minidbx_name_valid(req->path_arg))
        return true;
    *result = serve_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                "invalid name: 1..%d bytes of UTF-8, relative, without empty, "
                                "'.' or '..' segments or control characters",
                                MINIDBX_NAME_MAX);
    return false;
}

static enum MHD_Result reply_name(struct serve_request *req, unsigned status)
{
    minidbx_name_info info;
    int rc = minidbx_name_get(req->srv->db, req->path_arg, &info);
    if (rc < 0)
        return serve_reply_failure(req, rc, "name get");
    return serve_reply_json(req, status, dbx_json_name_info(&info));
}

/* An mtime as a string of decimal digits (cJSON keeps numbers as doubles,
 * which would round ns times past 2^53): 0..INT64_MAX, or false. */
static bool parse_mtime(const cJSON *item, int64_t *out)
{
    const char *text = cJSON_GetStringValue(item);
    size_t len = text ? strlen(text) : 0;
    char *end;

    if (len == 0 || len > 19 || strspn(text, "0123456789") != len)
        return false;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno || *end)
        return false;
    *out = value;
    return true;
}

/* Body: {"id": ID}, or {"id": ID, "mtime_ns": "N"} (a string of digits) to
 * keep a time set elsewhere (minidbx_name_set_at: a cluster's copies). */
static enum MHD_Result serve_name_put(struct serve_request *req)
{
    cJSON *in = req->small ? cJSON_Parse(req->small) : NULL;
    const cJSON *mtime = cJSON_GetObjectItemCaseSensitive(in, "mtime_ns");
    enum MHD_Result result;
    minidbx_id id;
    int64_t mtime_ns = -1;

    if (!name_arg(req, &result))
        goto out;
    /* A copy with its mtime is a gateway's (a cluster: store over nodes)
     * copying its names, its Go records under _go/ too; any writer may
     * make such a record with POST /register anyway. */
    if (serve_name_reserved(req->path_arg) && !mtime) {
        result = serve_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "names under " SERVE_RESERVED_NAME_PREFIX " are the node's own");
        goto out;
    }
    if (!serve_parse_id(req, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "id")), &id,
                        &result))
        goto out;
    if (mtime && !parse_mtime(mtime, &mtime_ns)) {
        result = serve_reply_error(req, MHD_HTTP_BAD_REQUEST,
                                   "mtime_ns: expected a string of digits, 0..2^63-1 ns since the epoch");
        goto out;
    }
    /* an MD5 alias (a gateway's copy) is set as /upload sets it: only to
     * an object with that MD5, and never moved */
    int rc = serve_md5_alias(req->path_arg) ? serve_md5_alias_set(req->srv->db, req->path_arg, &id, mtime_ns)
             : mtime_ns >= 0 ? minidbx_name_set_at(req->srv->db, req->path_arg, &id, mtime_ns)
                             : minidbx_name_set(req->srv->db, req->path_arg, &id);
    result = rc < 0 ? serve_reply_failure(req, rc, "name set") : reply_name(req, MHD_HTTP_OK);
out:
    cJSON_Delete(in);
    return result;
}

static enum MHD_Result serve_name_get(struct serve_request *req)
{
    enum MHD_Result result;
    if (!name_arg(req, &result))
        return result;
    return reply_name(req, MHD_HTTP_OK);
}

static enum MHD_Result serve_name_delete(struct serve_request *req)
{
    enum MHD_Result result;
    if (!name_arg(req, &result))
        return result;
    int rc = minidbx_name_delete(req->srv->db, req->path_arg);
    if (rc < 0)
        return serve_reply_failure(req, rc, "name delete");
    return serve_reply_text(req, MHD_HTTP_NO_CONTENT, "");
}

/* ?prefix=P&after=NAME&limit=N -> {"names": [...], "next": NAME or null}. */
static enum MHD_Result serve_name_list(struct serve_request *req)
{
    enum MHD_Result result;
    minidbx_name_info *infos = NULL;
    size_t limit, count = 0;

    if (!serve_query_limit(req, LIST_DEFAULT, LIST_MAX, &limit, &result))
        return result;
    if (!(infos = malloc(limit * sizeof *infos)))
        return MHD_NO;
    int rc = minidbx_name_list(req->srv->db, serve_query(req, "prefix"), serve_query(req, "after"),
                               infos, limit, &count);
    if (rc < 0) {
        free(infos);
        return serve_reply_failure(req, rc, "name list");
    }
    cJSON *json = cJSON_CreateObject();
    cJSON *array = json ? cJSON_AddArrayToObject(json, "names") : NULL;
    for (size_t i = 0; array && i < count; i++)
        cJSON_AddItemToArray(array, dbx_json_name_info(&infos[i]));
    if (json && count == limit)
        cJSON_AddStringToObject(json, "next", infos[count - 1].name);
    else if (json)
        cJSON_AddNullToObject(json, "next");
    free(infos);
    return serve_reply_json(req, MHD_HTTP_OK, json);
}

/* ---- info and health --------------------------------------------------------- */

static enum MHD_Result serve_info(struct serve_request *req)
{
    minidbx_store_info info;
    int rc = minidbx_info(req->srv->db, &info);

    if (rc < 0)
        return serve_reply_failure(req, rc, "info");
    cJSON *json = cJSON_CreateObject();
    if (json) {
        dbx_json_add_u64(json, "objects", info.objects);
        dbx_json_add_u64(json, "bytes", info.bytes);
        dbx_json_add_u64(json, "inline_objects", info.inline_objects);
        dbx_json_add_u64(json, "file_objects", info.file_objects);
        dbx_json_add_u64(json, "names", info.names);
        dbx_json_add_u64(json, "inline_threshold", info.inline_threshold);
        cJSON_AddStringToObject(json, "backend", info.backend);
        dbx_json_add_nodes(json, req->srv->db); /* a gateway: each node's state */
        cJSON_AddBoolToObject(json, "gc_grace", true); /* POST /v1/gc takes older_than, dry_run */
    }
    return serve_reply_json(req, MHD_HTTP_OK, json);
}

/* ---- verify and gc ------------------------------------------------------------ */

/* The problems a verify reply lists; the report still counts them all. */
#define VERIFY_PROBLEMS_MAX 10000

struct problem_list {
    cJSON *array;
    size_t listed;
    bool truncated;
    bool names; /* list "name_removed" too (a client from before it fails on it) */
};

/* Add obj (may be NULL: out of memory) unless the list is full. */
static void list_add(struct problem_list *list, cJSON *obj)
{
    if (list->listed >= VERIFY_PROBLEMS_MAX || !list->array || !obj) {
        list->truncated = list->truncated || list->listed >= VERIFY_PROBLEMS_MAX;
        cJSON_Delete(obj);
        return;
    }
    cJSON_AddItemToArray(list->array, obj);
    list->listed++;
}

static void add_problem(void *ctx, minidbx_problem kind, const minidbx_id *id, const char *detail,
                        int repaired)
{
    struct problem_list *list = ctx;
    if (kind == MINIDBX_PROBLEM_NAME_REMOVED && !list->names)
        return;
    list_add(list, list->listed < VERIFY_PROBLEMS_MAX ? dbx_json_problem(kind, id, detail, repaired) : NULL);
}

/* On the job's thread (job.c): the id, if any, is in req->want_id. */
static int verify_job(struct serve_request *req)
{
    unsigned flags = req->job_repair ? MINIDBX_VERIFY_REPAIR : 0;
    cJSON *json = cJSON_CreateObject();
    struct problem_list list = { json ? cJSON_AddArrayToObject(json, "problem_list") : NULL, 0, false,
                                 req->job_names };
    minidbx_verify_report report;

    int rc = minidbx_verify(req->srv->db, req->has_want ? &req->want_id : NULL, flags, &report,
                            add_problem, &list);
    if (rc < 0) {
        cJSON_Delete(json);
        req->job_json = serve_json_failure(rc, "verify");
        return rc;
    }
    if (json) {
        dbx_json_add_u64(json, "objects_checked", report.objects_checked);
        dbx_json_add_u64(json, "bytes_checked", report.bytes_checked);
        dbx_json_add_u64(json, "problems", report.problems);
        dbx_json_add_u64(json, "repaired", report.repaired);
        cJSON_AddBoolToObject(json, "truncated", list.truncated);
    }
    req->job_json = json;
    return 0;
}

/* ?id=ID (else the whole store) &repair=1 &names=1 -> {"objects_checked", "bytes_checked",
 * "problems", "repaired", "problem_list": [{"problem", "id", "detail", "repaired"}],
 * "truncated"}: each problem as `mdbx --json verify` prints it
 * (dbx_json_problem); at most VERIFY_PROBLEMS_MAX are listed. The names a
 * repair removed ("name_removed") are listed only with names=1: a client
 * from before them fails on a kind it does not know. Needs the write token, repair or not: it reads the whole
 * store. Runs as a job (one at a time, off the I/O threads). */
static enum MHD_Result serve_verify(struct serve_request *req)
{
    const char *id_text = serve_query(req, "id");
    enum MHD_Result result;

    if (req->job_started)
        return serve_job_reply(req);
    if (id_text && !serve_parse_id(req, id_text, &req->want_id, &result))
        return result;
    req->has_want = id_text != NULL;
    req->job_repair = serve_query_flag(req, "repair");
    req->job_names = serve_query_flag(req, "names");
    return serve_job_run(req, verify_job);
}

/* {"id": ID, "size": N} in the gc reply's "removed" list */
static void add_removed(void *ctx, const minidbx_id *id, uint64_t size)
{
    struct problem_list *list = ctx;
    cJSON *obj = list->listed < VERIFY_PROBLEMS_MAX ? cJSON_CreateObject() : NULL;
    if (obj) {
        dbx_json_add_id(obj, "id", id);
        dbx_json_add_u64(obj, "size", size);
    }
    list_add(list, obj);
}

static int gc_job(struct serve_request *req)
{
    minidbx_gc_options opts = MINIDBX_GC_OPTIONS_INIT;
    cJSON *json = cJSON_CreateObject();
    struct problem_list list = { json ? cJSON_AddArrayToObject(json, "removed") : NULL, 0, false, false };
    minidbx_gc_report report;

    opts.older_than_ns = req->job_older_than * 1000000000;
    opts.flags = req->job_dry_run ? MINIDBX_GC_DRY_RUN : 0;
    opts.removed = add_removed;
    opts.ctx = &list;
    int rc = minidbx_gc_ex(req->srv->db, &opts, &report);
    if (rc < 0) {
        cJSON_Delete(json);
        req->job_json = serve_json_failure(rc, "gc");
        return rc;
    }
    if (json) {
        dbx_json_add_u64(json, "objects_removed", report.objects_removed);
        dbx_json_add_u64(json, "bytes_removed", report.bytes_removed);
        dbx_json_add_u64(json, "older_than", (uint64_t)req->job_older_than);
        cJSON_AddBoolToObject(json, "dry_run", req->job_dry_run);
        cJSON_AddBoolToObject(json, "truncated", list.truncated);
    }
    req->job_json = json;
    return 0;
}

/* The longest grace a request may ask for: 100 years, in seconds. */
#define GC_OLDER_THAN_MAX 3153600000LL

/* ?older_than=SECONDS (whole seconds; absent: the library's default, 14
 * days, so that a client that does not say is safe) &dry_run=1 ->
 * {"objects_removed", "bytes_removed", "older_than", "dry_run",
 * "removed": [{"id", "size"}], "truncated"}: the objects removed (with
 * dry_run: that would be), at most VERIFY_PROBLEMS_MAX listed, the counts
 * exact. A job, as verify. */
static enum MHD_Result serve_gc(struct serve_request *req)
{
    const char *text = serve_query(req, "older_than");
    char *end = NULL;

    if (req->job_started)
        return serve_job_reply(req);
    req->job_older_than = MINIDBX_GC_DEFAULT_GRACE_NS / 1000000000;
    if (text) {
        errno = 0;
        long long seconds = text[0] >= '0' && text[0] <= '9' ? strtoll(text, &end, 10) : -1;
        if (seconds < 0 || seconds > GC_OLDER_THAN_MAX || errno || *end)
            return serve_reply_code(req, MINIDBX_EINVAL, 0, "older_than: whole seconds from 0 to %lld",
                                    GC_OLDER_THAN_MAX);
        req->job_older_than = seconds;
    }
    req->job_dry_run = serve_query_flag(req, "dry_run");
    return serve_job_run(req, gc_job);
}

/* Can the node's store still be read? On a local store, a read
 * transaction and one lookup (of an id no object has: a B-tree descent,
 * no file touched); it fails once LMDB has marked the environment failed
 * (MDB_PANIC after a failed commit: every read and write of this process
 * fails until it opens the store again) or the metadata cannot be read.
 * A store over other nodes (http://, cluster:) is not asked: that would
 * send every health probe over the network, and its nodes' states are in
 * /v1/info and /metrics. 0 or the library's error. */
static int store_readable(struct serve_server *srv)
{
    static const minidbx_id probe; /* all zeros */
    int rc = srv->store_local ? minidbx_exists(srv->db, &probe) : 0;
    return rc < 0 ? rc : 0;
}

/* "OK", as the Go nodes said it; to a client that asks for JSON (Accept:
 * application/json), the Go system's {"status": "healthy", ...}. 200
 * either way, so that `curl -f` works on both. A store that cannot be
 * read: 503 and why, so that a load balancer takes the node out. */
static enum MHD_Result serve_health(struct serve_request *req)
{
    const char *accept = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_ACCEPT);
    cJSON *json;
    int rc = store_readable(req->srv);

    if (rc < 0)
        return serve_reply_failure_status(req, rc, MHD_HTTP_SERVICE_UNAVAILABLE, "the store cannot be read");
    if (!accept || !strstr(accept, "application/json") || !(json = cJSON_CreateObject()))
        return serve_reply_text(req, MHD_HTTP_OK, "OK");
    cJSON_AddStringToObject(json, "status", "healthy");
    cJSON_AddStringToObject(json, "service", "minidbx");
    cJSON_AddStringToObject(json, "version", minidbx_version());
    dbx_json_add_i64(json, "timestamp", (int64_t)time(NULL));
    return serve_reply_json(req, MHD_HTTP_OK, json);
}

/* The /v1 API, and the node's /health and /metrics. */
static const struct serve_route_spec v1_routes[] = {
    { "PUT", "/v1/objects", serve_object_put, "object_put", BODY_OBJECT, ACCESS_WRITE },
    { "PUT", "/v1/objects/", serve_object_put, "object_put", BODY_OBJECT, ACCESS_WRITE },
    { "GET", "/v1/objects", serve_object_list, "object_list", BODY_NONE, ACCESS_READ },
    { "GET", "/v1/objects/", serve_object_get, "object_get", BODY_NONE, ACCESS_READ },
    { "DELETE", "/v1/objects/", serve_object_delete, "object_delete", BODY_NONE, ACCESS_WRITE },
    { "POST", "/v1/missing", serve_missing, "missing", BODY_SMALL, ACCESS_READ },
    { "PUT", "/v1/names/", serve_name_put, "name_put", BODY_SMALL, ACCESS_WRITE },
    { "GET", "/v1/names", serve_name_list, "name_list", BODY_NONE, ACCESS_READ },
    { "GET", "/v1/names/", serve_name_get, "name_get", BODY_NONE, ACCESS_READ },
    { "DELETE", "/v1/names/", serve_name_delete, "name_delete", BODY_NONE, ACCESS_WRITE },
    { "GET", "/v1/info", serve_info, "info", BODY_NONE, ACCESS_READ },
    { "POST", "/v1/verify", serve_verify, "verify", BODY_NONE, ACCESS_ADMIN },
    { "POST", "/v1/gc", serve_gc, "gc", BODY_NONE, ACCESS_WRITE },
    { "GET", "/health", serve_health, "health", BODY_NONE, ACCESS_OPEN },
    { "GET", "/metrics", serve_metrics_page, "metrics", BODY_NONE, ACCESS_READ },
};

const struct serve_protocol serve_proto_v1 = SERVE_PROTOCOL("v1", v1_routes);
