/* proto_go.c - the endpoints of the Go Mini-Dropbox, with the shapes its
 * clients expect: POST /upload (multipart, field "file"), GET /retrieve,
 * POST /register, GET /get, GET /list. Ids are our SHA-256 ids.
 *
 * The master's records ({"hash","name","size","replicas"}) are kept as
 * small JSON objects in the store, each pointed at by the name
 * "_go/register/<hash>", so they survive restarts and gc; the name the
 * client gave also points at the object when the object is here.
 *
 * Over a cluster: store (a gateway, the old master), /get and /list say in
 * "replicas" which nodes hold each object now, asked of the nodes
 * (minidbx_nodes), rather than what a client registered; and /get answers
 * for an object that was uploaded without a record too.
 *
 * MD5 aliases (on unless --md5-aliases off): the old system named objects
 * by their MD5 (32 hex digits). Each /upload also sets the name
 * "_go/md5/<md5>" to the object, so the old clients' ids work on these
 * endpoints: they accept either kind of id and answer with the kind they
 * were given ("hash"; "id" is always the SHA-256). An alias only leads to
 * an object: the bytes sent are still verified against the SHA-256, and
 * the alias is used only when that object's bytes have its MD5 (checked
 * once per process and pair, alias_resolve): a name under _go/md5/ that
 * came from elsewhere (`mdbx pull`, a local `mdbx name set`) and points
 * at other bytes is no alias, and the next /upload of the right bytes
 * replaces it. An alias never moves otherwise (a second object with the
 * same MD5, a collision, gets 409 and is left unnamed). An aliased object
 * is named, so gc keeps it, as the old system kept every upload. */
#include "node.h"
#include "wire.h"

#include <minidbx/sys/backend.h> /* minidbx_error_set */

#include <ctype.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORD_PREFIX SERVE_RESERVED_NAME_PREFIX "register/"
#define MD5_PREFIX DBX_GO_MD5_ALIAS_PREFIX
#define MD5_HEX_DIGITS 32
/* The name of a record: RECORD_PREFIX and the hash it was registered by. */
#define RECORD_KEY_SIZE (sizeof RECORD_PREFIX + MINIDBX_ID_HEX_SIZE)
#define LIST_PAGE 256
/* A record's replicas: addresses of nodes, so few and short. They bound a
 * record's size, and so what /list holds in memory. */
#define REPLICAS_MAX 64
#define REPLICA_MAX_BYTES 255
/* /list stops after this many bytes of records (the Go API has no paging):
 * the reply then says X-Minidbx-Truncated: 1. */
#define LIST_MAX_BYTES (8u << 20)
/* Sizes are JSON numbers, i.e. doubles: integers are exact up to 2^53. */
#define SIZE_MAX_EXACT 9007199254740992.0

bool serve_name_reserved(const char *name)
{
    return strncmp(name, SERVE_RESERVED_NAME_PREFIX, sizeof SERVE_RESERVED_NAME_PREFIX - 1) == 0;
}

/* A size the client may give: an integer in 0..2^53, checked before it is
 * converted (a double out of range of uint64_t is undefined behaviour). */
static bool size_valid(const cJSON *size)
{
    return cJSON_IsNumber(size) && size->valuedouble >= 0 && size->valuedouble <= SIZE_MAX_EXACT &&
           size->valuedouble == (double)(uint64_t)size->valuedouble;
}

/* {"success", "hash" (when there is one), "message"}: the Go system's reply. */
static cJSON *go_json(bool success, const char *hash, const char *message)
{
    cJSON *json = cJSON_CreateObject();
    if (json) {
        cJSON_AddBoolToObject(json, "success", success);
        if (hash)
            cJSON_AddStringToObject(json, "hash", hash);
        cJSON_AddStringToObject(json, "message", message);
    }
    return json;
}

static enum MHD_Result go_reply(struct serve_request *req, unsigned status, bool success,
                                const char *hash, const char *message)
{
    return serve_reply_json(req, status, go_json(success, hash, message));
}

/* ---- MD5 aliases ------------------------------------------------------------ */

static bool md5_aliases(const struct serve_request *req)
{
    return !req->srv->cfg->no_md5_aliases;
}

static void alias_name(const char *md5, char out[sizeof MD5_PREFIX + MD5_HEX_DIGITS])
{
    snprintf(out, sizeof MD5_PREFIX + MD5_HEX_DIGITS, MD5_PREFIX "%s", md5);
}

/* The object an MD5 (32 lower-case hex digits) names: 0, ENOTFOUND, or an error. */
static int alias_get(minidbx *db, const char *md5, minidbx_id *id)
{
    char name[sizeof MD5_PREFIX + MD5_HEX_DIGITS];
    minidbx_name_info info;

    alias_name(md5, name);
    int rc = minidbx_name_get(db, name, &info);
    if (rc == 0)
        *id = info.id;
    return rc;
}

/* The MD5 of an object's bytes, read back from the store (and verified
 * against its id on the way, as every read is). */
static int object_md5(minidbx *db, const minidbx_id *id, char out[MD5_HEX_DIGITS + 1])
{
    enum { CHUNK = 64 * 1024 };
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned digest_size = 0;
    minidbx_reader *reader = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = malloc(CHUNK);
    uint64_t size;
    size_t got = 0;
    int rc = md && buf ? minidbx_reader_open(db, id, &reader, &size) : MINIDBX_ENOMEM;

    if (rc == 0 && EVP_DigestInit_ex(md, EVP_md5(), NULL) != 1)
        rc = MINIDBX_EIO;
    while (rc == 0 && (rc = minidbx_reader_read(reader, buf, CHUNK, &got)) == 0 && got > 0)
        if (EVP_DigestUpdate(md, buf, got) != 1)
            rc = MINIDBX_EIO;
    if (rc == 0 && EVP_DigestFinal_ex(md, digest, &digest_size) != 1)
        rc = MINIDBX_EIO;
    for (unsigned i = 0; rc == 0 && i < digest_size && i < MD5_HEX_DIGITS / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    minidbx_reader_close(reader);
    EVP_MD_CTX_free(md);
    free(buf);
    return rc;
}

/* Pairs (MD5, id) whose MD5 this process has computed from the object's
 * bytes, so that an alias is hashed once, not on every use: that the
 * object with a SHA-256 has an MD5 never stops being true. A small table,
 * one pair per slot (chosen by the MD5's first digits); a pair pushed out
 * is only hashed again. */
#define CHECKED_SLOTS 1024
static struct {
    char md5[MD5_HEX_DIGITS];
    minidbx_id id;
} checked[CHECKED_SLOTS];
static pthread_mutex_t checked_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t checked_slot(const char *md5)
{
    size_t slot = 0;
    for (size_t i = 0; i < 4; i++) /* lower-case hex digits */
        slot = slot * 16 + (size_t)(md5[i] <= '9' ? md5[i] - '0' : md5[i] - 'a' + 10);
    return slot % CHECKED_SLOTS;
}

static bool md5_checked(const char *md5, const minidbx_id *id)
{
    size_t slot = checked_slot(md5);
    pthread_mutex_lock(&checked_lock);
    bool found = memcmp(checked[slot].md5, md5, MD5_HEX_DIGITS) == 0 &&
                 minidbx_id_equal(&checked[slot].id, id);
    pthread_mutex_unlock(&checked_lock);
    return found;
}

static void md5_remember(const char *md5, const minidbx_id *id)
{
    size_t slot = checked_slot(md5);
    pthread_mutex_lock(&checked_lock);
    memcpy(checked[slot].md5, md5, MD5_HEX_DIGITS);
    checked[slot].id = *id;
    pthread_mutex_unlock(&checked_lock);
}

/* The object an MD5 names, checked: 0 when the alias exists and its
 * object's bytes have that MD5; ENOTFOUND when there is no alias, its
 * object is gone, or the object has another MD5 (a name under _go/md5/
 * that the node did not set: `mdbx pull` from another node, a local
 * `mdbx name set`); else an error (ECORRUPT: the object fails its own
 * SHA-256). The old clients thus never get bytes with another MD5 than
 * the one they asked for. */
static int alias_resolve(minidbx *db, const char *md5, minidbx_id *id)
{
    char actual[MD5_HEX_DIGITS + 1];
    int rc = alias_get(db, md5, id);

    if (rc < 0 || md5_checked(md5, id))
        return rc;
    if ((rc = object_md5(db, id, actual)) < 0)
        return rc;
    if (memcmp(actual, md5, MD5_HEX_DIGITS) != 0)
        return MINIDBX_ENOTFOUND;
    md5_remember(md5, id);
    return 0;
}

/* The node's alias sets, one at a time: the check that an alias is free
 * and its set are one step for this node's requests (two uploads of an
 * MD5 collision at once cannot both take it). */
static pthread_mutex_t alias_lock = PTHREAD_MUTEX_INITIALIZER;

/* Point the alias at id (whose MD5 the caller computed) unless it names
 * another object with this MD5 already (EEXISTS: a collision). An alias
 * that is no alias (alias_resolve: ENOTFOUND) is replaced. mtime_ns >= 0:
 * set with that time (a copy). */
static int alias_set(minidbx *db, const char *md5, const minidbx_id *id, int64_t mtime_ns)
{
    char name[sizeof MD5_PREFIX + MD5_HEX_DIGITS];
    minidbx_id current;

    md5_remember(md5, id);
    pthread_mutex_lock(&alias_lock);
    int rc = alias_resolve(db, md5, &current);
    if (rc == 0)
        rc = minidbx_id_equal(&current, id) ? 0 : MINIDBX_EEXISTS;
    else if (rc == MINIDBX_ENOTFOUND) {
        alias_name(md5, name);
        rc = mtime_ns >= 0 ? minidbx_name_set_at(db, name, id, mtime_ns) : minidbx_name_set(db, name, id);
    }
    pthread_mutex_unlock(&alias_lock);
    return rc;
}

bool serve_md5_alias(const char *name)
{
    size_t prefix = sizeof MD5_PREFIX - 1;
    return strncmp(name, MD5_PREFIX, prefix) == 0;
}

int serve_md5_alias_set(minidbx *db, const char *name, const minidbx_id *id, int64_t mtime_ns)
{
    const char *md5 = name + sizeof MD5_PREFIX - 1;
    char actual[MD5_HEX_DIGITS + 1];
    int rc;

    if (strlen(md5) != MD5_HEX_DIGITS || strspn(md5, "0123456789abcdef") != MD5_HEX_DIGITS)
        return minidbx_error_set(MINIDBX_EINVAL, "%s: an alias is " MD5_PREFIX
                                 "and 32 lower-case hex digits", name);
    if ((rc = object_md5(db, id, actual)) < 0)
        return rc;
    if (strcmp(actual, md5) != 0)
        return minidbx_error_set(MINIDBX_EINVAL, "%s: the object's MD5 is %s", name, actual);
    rc = alias_set(db, md5, id, mtime_ns);
    if (rc == MINIDBX_EEXISTS)
        return minidbx_error_set(MINIDBX_EEXISTS, "%s names another object already (an MD5 "
                                 "collision); an alias never moves", name);
    return rc;
}

/* ---- the endpoints ------------------------------------------------------------ */

/* A hash as the old clients give it: the SHA-256 (64 hex digits) or, with
 * MD5 aliases, an MD5 (32). */
struct go_hash {
    char text[MINIDBX_ID_HEX_SIZE]; /* as given, in lower case: replies and record keys use it */
    minidbx_id id;                  /* the object's id, when known */
    bool known;                     /* an id, or an MD5 whose alias exists */
};

/* Parse text into *h; false after replying 400 (or 500). */
static bool go_parse_hash(struct serve_request *req, const char *text, struct go_hash *h,
                          enum MHD_Result *result)
{
    memset(h, 0, sizeof *h);
    if (text && minidbx_id_parse(&h->id, text) == 0) {
        minidbx_id_format(&h->id, h->text);
        h->known = true;
        return true;
    }
    if (md5_aliases(req) && text && strlen(text) == MD5_HEX_DIGITS &&
        strspn(text, "0123456789abcdefABCDEF") == MD5_HEX_DIGITS) {
        for (size_t i = 0; i < MD5_HEX_DIGITS; i++)
            h->text[i] = (char)tolower((unsigned char)text[i]);
        int rc = alias_resolve(req->srv->db, h->text, &h->id);
        if (rc < 0 && rc != MINIDBX_ENOTFOUND) {
            *result = serve_reply_failure(req, rc, "md5 alias");
            return false;
        }
        h->known = rc == 0;
        return true;
    }
    *result = serve_reply_code(req, MINIDBX_EINVAL, 0,
                               md5_aliases(req) ? "a hash is 64 hex digits (the SHA-256), or 32 (an MD5 "
                                                  "that this node keeps as an alias)"
                                                : "an id is 64 hex digits (the SHA-256 of the object)");
    return false;
}

/* On a commit thread (commit.c): store the upload, then its MD5 alias.
 * job_json gets the reply: the Go system's, or the failure's words. */
static int go_upload_commit(struct serve_request *req)
{
    minidbx_object_info info;
    char id_hex[MINIDBX_ID_HEX_SIZE], md5[MD5_HEX_DIGITS + 1] = "";
    int rc = serve_commit_writer(req);

    if (rc < 0)
        return rc;
    minidbx_id_format(&req->put_id, id_hex);
    if ((rc = minidbx_stat(req->srv->db, &req->put_id, &info)) == 0 && md5_aliases(req) &&
        (rc = object_md5(req->srv->db, &req->put_id, md5)) == 0)
        rc = alias_set(req->srv->db, md5, &req->put_id, -1);
    if (rc == MINIDBX_EEXISTS) {
        req->job_json = go_json(false, id_hex,
                                "another object has this MD5 already (a collision): use the SHA-256 id");
        return rc;
    }
    if (rc < 0) {
        req->job_json = serve_json_failure(rc, "upload");
        return rc;
    }
    /* 200 either way, as the Go system answered; "created" (a field its
     * clients ignore) says whether this upload stored the object. */
    req->job_json = go_json(true, md5[0] ? md5 : id_hex, "File uploaded successfully");
    if (req->job_json) {
        cJSON_AddStringToObject(req->job_json, "id", id_hex);
        dbx_json_add_u64(req->job_json, "size", info.size);
        cJSON_AddBoolToObject(req->job_json, "created", req->put_created);
    }
    return 0;
}

static enum MHD_Result serve_go_upload(struct serve_request *req)
{
    cJSON *json;

    if (!atomic_load(&req->job_done)) {
        if (!req->file_seen)
            return go_reply(req, MHD_HTTP_BAD_REQUEST, false, NULL,
                            "no 'file' field in the multipart/form-data body");
        return serve_commit_run(req, go_upload_commit);
    }
    if (req->job_rc < 0 && req->job_rc != MINIDBX_EEXISTS)
        return serve_job_reply(req);
    json = req->job_json;
    req->job_json = NULL;
    return serve_reply_json(req, req->job_rc == 0 ? MHD_HTTP_OK : MHD_HTTP_CONFLICT, json);
}

static bool hash_arg(struct serve_request *req, struct go_hash *h, enum MHD_Result *result)
{
    return go_parse_hash(req, serve_query(req, "hash"), h, result);
}

static enum MHD_Result serve_go_retrieve(struct serve_request *req)
{
    enum MHD_Result result;
    struct go_hash h;

    if (!hash_arg(req, &h, &result))
        return result;
    if (!h.known)
        return serve_reply_code(req, MINIDBX_ENOTFOUND, 0, "no object has this MD5 here");
    return serve_send_object(req, &h.id);
}

static void record_key(const char *hash_text, char out[RECORD_KEY_SIZE])
{
    snprintf(out, RECORD_KEY_SIZE, RECORD_PREFIX "%s", hash_text);
}

/* The record in the body, checked and rebuilt with only its own fields;
 * NULL after replying 400. */
static cJSON *parse_record(struct serve_request *req, struct go_hash *hash, enum MHD_Result *result)
{
    cJSON *in = req->small ? cJSON_Parse(req->small) : NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(in, "name");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(in, "size");
    const cJSON *replicas = cJSON_GetObjectItemCaseSensitive(in, "replicas");
    const cJSON *item;
    cJSON *record = NULL;

    *result = MHD_YES;
    if (!cJSON_IsObject(in) || !cJSON_IsString(name) || !minidbx_name_valid(name->valuestring) ||
        !size_valid(size) || (replicas && !cJSON_IsArray(replicas)))
        goto bad;
    if (serve_name_reserved(name->valuestring)) {
        *result = go_reply(req, MHD_HTTP_BAD_REQUEST, false, NULL,
                           "names under " SERVE_RESERVED_NAME_PREFIX " are the node's own");
        goto out;
    }
    if (!go_parse_hash(req, cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(in, "hash")),
                       hash, result))
        goto out;
    if (cJSON_GetArraySize(replicas) > REPLICAS_MAX)
        goto bad;
    cJSON_ArrayForEach(item, replicas)
    {
        if (!cJSON_IsString(item) || strlen(item->valuestring) > REPLICA_MAX_BYTES)
            goto bad;
    }
    if (!(record = cJSON_CreateObject()))
        goto out;
    cJSON_AddStringToObject(record, "hash", hash->text);
    cJSON_AddStringToObject(record, "name", name->valuestring);
    dbx_json_add_u64(record, "size", (uint64_t)size->valuedouble);
    cJSON_AddItemToObject(record, "replicas",
                          replicas ? cJSON_Duplicate(replicas, 1) : cJSON_CreateArray());
    goto out;
bad:
    *result = go_reply(req, MHD_HTTP_BAD_REQUEST, false, NULL,
                       "expected JSON {\"hash\": ID, \"name\": NAME, \"size\": N "
                       "(an integer, 0..2^53), \"replicas\": [ADDR...] (at most 64, of 255 bytes)}");
out:
    cJSON_Delete(in);
    return record;
}

static int store_record(minidbx *db, const struct go_hash *hash, const cJSON *record)
{
    char key[RECORD_KEY_SIZE];
    char *text = cJSON_PrintUnformatted(record);
    minidbx_id record_id;
    int rc;

    if (!text)
        return MINIDBX_ENOMEM;
    record_key(hash->text, key);
    rc = minidbx_put(db, text, strlen(text), &record_id);
    free(text);
    if (rc == 0)
        rc = minidbx_name_set(db, key, &record_id);
    /* The client's name points at the object too, when it is here. */
    if (rc == 0 && hash->known && minidbx_exists(db, &hash->id) == 1)
        rc = minidbx_name_set(db, cJSON_GetStringValue(cJSON_GetObjectItem(record, "name")), &hash->id);
    return rc;
}

static enum MHD_Result serve_go_register(struct serve_request *req)
{
    enum MHD_Result result;
    struct go_hash hash;
    cJSON *record = parse_record(req, &hash, &result);

    if (!record)
        return req->replied ? result : MHD_NO;
    int rc = store_record(req->srv->db, &hash, record);
    cJSON_Delete(record);
    if (rc < 0)
        return serve_reply_failure(req, rc, "register");
    return go_reply(req, MHD_HTTP_OK, true, hash.text, "File registered successfully");
}

/* What load_record says of bytes that are not a JSON object. */
#define RECORD_UNREADABLE MINIDBX_ECORRUPT

/* The record that key names, parsed; NULL with *rc on failure. */
static cJSON *load_record(minidbx *db, const char *key, int *rc, size_t *out_bytes)
{
    minidbx_name_info info;
    void *data = NULL;
    size_t size = 0;
    cJSON *record = NULL;

    if ((*rc = minidbx_name_get(db, key, &info)) < 0 ||
        (*rc = minidbx_get(db, &info.id, &data, &size)) < 0)
        return NULL;
    *out_bytes = size;
    record = cJSON_ParseWithLength(data, size);
    minidbx_free(data);
    if (!cJSON_IsObject(record)) {
        cJSON_Delete(record);
        record = NULL;
        *rc = RECORD_UNREADABLE;
        return NULL;
    }
    /* cJSON prints large doubles rounded: give the size back exactly */
    const cJSON *record_size = cJSON_GetObjectItemCaseSensitive(record, "size");
    if (size_valid(record_size)) {
        char exact[24];
        snprintf(exact, sizeof exact, "%" PRIu64, (uint64_t)record_size->valuedouble);
        cJSON_ReplaceItemInObjectCaseSensitive(record, "size", cJSON_CreateRaw(exact));
    }
    return record;
}

/* On a store made of nodes, record.replicas = the nodes that hold hash,
 * home nodes first. Returns false on any other store (nothing changed). */
static bool set_replicas(minidbx *db, cJSON *record, const minidbx_id *hash)
{
    minidbx_node_info *nodes = malloc(REPLICAS_MAX * sizeof *nodes);
    size_t count = 0;
    bool cluster = nodes && minidbx_nodes(db, hash, nodes, REPLICAS_MAX, &count) == 0;
    cJSON *array = cluster ? cJSON_CreateArray() : NULL;

    for (size_t i = 0; array && i < count; i++)
        cJSON_AddItemToArray(array, cJSON_CreateString(nodes[i].location));
    if (array && !cJSON_ReplaceItemInObjectCaseSensitive(record, "replicas", array))
        cJSON_AddItemToObject(record, "replicas", array);
    free(nodes);
    return cluster;
}

/* A gateway's answer for an object that has no record: its hash, size and
 * replicas. NULL on another store, or when the object is not there. */
static cJSON *object_record(minidbx *db, const struct go_hash *hash)
{
    minidbx_object_info info;
    cJSON *record;

    if (!hash->known || minidbx_stat(db, &hash->id, &info) < 0 || !(record = cJSON_CreateObject()))
        return NULL;
    cJSON_AddStringToObject(record, "hash", hash->text);
    dbx_json_add_u64(record, "size", info.size);
    if (!set_replicas(db, record, &hash->id)) {
        cJSON_Delete(record);
        return NULL;
    }
    return record;
}

static enum MHD_Result serve_go_get(struct serve_request *req)
{
    char key[RECORD_KEY_SIZE], id_hex[MINIDBX_ID_HEX_SIZE];
    enum MHD_Result result;
    struct go_hash hash;
    size_t bytes;
    int rc;

    if (!hash_arg(req, &hash, &result))
        return result;
    /* registered by the hash given, else (an MD5) by its object's id */
    record_key(hash.text, key);
    cJSON *record = load_record(req->srv->db, key, &rc, &bytes);
    if (!record && rc == MINIDBX_ENOTFOUND && hash.known) {
        minidbx_id_format(&hash.id, id_hex);
        record_key(id_hex, key);
        record = load_record(req->srv->db, key, &rc, &bytes);
    }
    if (record && hash.known)
        set_replicas(req->srv->db, record, &hash.id);
    else if (!record && rc == MINIDBX_ENOTFOUND && (record = object_record(req->srv->db, &hash)) != NULL)
        rc = 0;
    if (!record)
        return rc == MINIDBX_ENOTFOUND ? serve_reply_error(req, MHD_HTTP_NOT_FOUND, "file not found")
                                       : serve_reply_failure(req, rc, "get");
    return serve_reply_json(req, MHD_HTTP_OK, record);
}

/* Every record, as a JSON array, read a page of names at a time. On a
 * store made of nodes, a record keyed by an MD5 gets its replicas through
 * the alias unchecked: checking it reads and hashes the object, and a list
 * of more records than the checked-alias cache holds would read every
 * object on every /list. A planted alias thus shows the nodes of another
 * object, nothing more: a read by that MD5 (/retrieve, /get) checks it. */
static enum MHD_Result serve_go_list(struct serve_request *req)
{
    minidbx_name_info *page = malloc(LIST_PAGE * sizeof *page);
    cJSON *array = cJSON_CreateArray();
    char after[MINIDBX_NAME_MAX + 1] = "";
    size_t count = LIST_PAGE, bytes = 0, total_bytes = 0;
    bool truncated = false;
    int rc = 0;

    if (!page || !array) {
        free(page);
        cJSON_Delete(array);
        return MHD_NO;
    }
    while (rc == 0 && count == LIST_PAGE && !truncated) {
        rc = minidbx_name_list(req->srv->db, RECORD_PREFIX, after[0] ? after : NULL, page,
                               LIST_PAGE, &count);
        for (size_t i = 0; rc == 0 && i < count && !truncated; i++) {
            cJSON *record = load_record(req->srv->db, page[i].name, &rc, &bytes);
            const char *key_hash = page[i].name + sizeof RECORD_PREFIX - 1;
            minidbx_id hash;
            if (record && (minidbx_id_parse(&hash, key_hash) == 0 ||
                           (strlen(key_hash) == MD5_HEX_DIGITS && alias_get(req->srv->db, key_hash, &hash) == 0)))
                set_replicas(req->srv->db, record, &hash);
            if (record)
                cJSON_AddItemToArray(array, record);
            total_bytes += record ? bytes : 0;
            truncated = total_bytes > LIST_MAX_BYTES;
            if (rc == RECORD_UNREADABLE)
                rc = 0; /* not a record (written before names were reserved): skipped */
        }
        if (rc == 0 && count)
            snprintf(after, sizeof after, "%s", page[count - 1].name);
    }
    free(page);
    if (rc < 0) {
        cJSON_Delete(array);
        return serve_reply_failure(req, rc, "list");
    }
    if (truncated) {
        req->extra_header[0] = "X-Minidbx-Truncated";
        req->extra_header[1] = "1";
    }
    return serve_reply_json(req, MHD_HTTP_OK, array);
}

/* The endpoints of the Go system this replaces. */
static const struct serve_route_spec go_routes[] = {
    { "POST", "/upload", serve_go_upload, "go_upload", BODY_MULTIPART, ACCESS_WRITE },
    { "GET", "/retrieve", serve_go_retrieve, "go_retrieve", BODY_NONE, ACCESS_READ },
    { "POST", "/register", serve_go_register, "go_register", BODY_SMALL, ACCESS_WRITE },
    { "GET", "/get", serve_go_get, "go_get", BODY_NONE, ACCESS_READ },
    { "GET", "/list", serve_go_list, "go_list", BODY_NONE, ACCESS_READ },
};

const struct serve_protocol serve_proto_go = SERVE_PROTOCOL("go", go_routes);
