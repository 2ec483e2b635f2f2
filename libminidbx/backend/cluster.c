/*
 * cluster.c - the cluster: backend: its file, opening, each node's state
 * (up or down, and the prober that brings a node back), rendezvous
 * placement, info and nodes, and the table (see cluster.h for the files).
 *
 * The cluster file (the grammar is at minidbx_open in minidbx.h):
 *   {"replicas": R, "write_quorum": W, "timeout_ms": T, "cache_objects": C,
 *    "nodes": [LOCATION...]}
 * read with json-c, so that a bad file is refused naming the field.
 */
#include "cluster.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <json-c/json.h>

#define DEFAULT_REPLICAS 2
#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_CACHE_OBJECTS 1024
#define CACHE_OBJECTS_MAX (1 << 20)
#define TIMEOUT_MS_MAX 3600000
#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 10000
#define CLUSTER_FILE_MAX (1u << 20)

/* --- placement ------------------------------------------------------------ */

/* splitmix64's finaliser: every input bit moves every output bit. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t fnv1a64(const char *text)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return mix64(h);
}

uint64_t cluster_id_key(const minidbx_id *id)
{
    uint64_t key;
    memcpy(&key, id->bytes, sizeof key); /* a SHA-256: already uniform */
    return key;
}

uint64_t cluster_name_key(const char *name)
{
    return fnv1a64(name);
}

/* Rendezvous: the score of (node, key); a node keeps its scores whatever
 * other nodes come or go, so adding or removing one of N nodes moves only
 * the keys that it wins or held (about 1/N). */
static uint64_t hrw_score(uint64_t node_key, uint64_t key)
{
    return mix64(node_key ^ mix64(key));
}

void cluster_order(const struct cluster *c, uint64_t key, unsigned order[CLUSTER_NODES_MAX])
{
    uint64_t score[CLUSTER_NODES_MAX];

    for (size_t i = 0; i < c->count; i++) { /* insertion sort: N is small */
        uint64_t s = hrw_score(c->nodes[i].key, key);
        size_t j = i;
        while (j > 0 && score[j - 1] < s) {
            score[j] = score[j - 1];
            order[j] = order[j - 1];
            j--;
        }
        score[j] = s;
        order[j] = (unsigned)i;
    }
}

unsigned cluster_homes(struct cluster *c, uint64_t key, unsigned out[CLUSTER_NODES_MAX])
{
    unsigned order[CLUSTER_NODES_MAX], n = 0;

    cluster_order(c, key, order);
    for (size_t k = 0; k < c->count && n < c->replicas; k++)
        if (cluster_node_db(&c->nodes[order[k]]))
            out[n++] = order[k];
    return n;
}

uint64_t cluster_up_nodes(struct cluster *c)
{
    uint64_t up = 0;
    for (size_t i = 0; i < c->count; i++)
        if (cluster_node_db(&c->nodes[i]))
            up |= 1ull << i;
    return up;
}

unsigned cluster_homes_among(const struct cluster *c, uint64_t key, uint64_t up, unsigned out[CLUSTER_NODES_MAX])
{
    unsigned order[CLUSTER_NODES_MAX], n = 0;

    cluster_order(c, key, order);
    for (size_t k = 0; k < c->count && n < c->replicas; k++)
        if (up & (1ull << order[k]))
            out[n++] = order[k];
    return n;
}

/* --- node state ------------------------------------------------------------- */

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

minidbx *cluster_node_db(struct cluster_node *node)
{
    return atomic_load(&node->up) ? atomic_load(&node->db) : NULL;
}

int64_t cluster_call_start(void)
{
    return monotonic_ns();
}

static void mark_down(struct cluster *c, struct cluster_node *node, const char *why)
{
    pthread_mutex_lock(&node->lock);
    snprintf(node->last_error, sizeof node->last_error, "%s", why);
    if (atomic_exchange(&node->up, false)) {
        node->down_since_ns = dbx_now_ns();
        node->backoff_ms = BACKOFF_FIRST_MS;
        node->retry_at_ns = monotonic_ns() + (int64_t)BACKOFF_FIRST_MS * 1000000;
    }
    pthread_mutex_unlock(&node->lock);
    pthread_mutex_lock(&c->prober_lock);
    pthread_cond_signal(&c->prober_wake);
    pthread_mutex_unlock(&c->prober_lock);
}

int cluster_call_end(struct cluster *c, struct cluster_node *node, int64_t start, int rc)
{
    uint64_t us = (uint64_t)(monotonic_ns() - start) / 1000;
    uint64_t max = atomic_load(&node->latency_us_max);

    atomic_fetch_add(&node->requests, 1);
    atomic_fetch_add(&node->latency_us_total, us);
    while (us > max && !atomic_compare_exchange_weak(&node->latency_us_max, &max, us))
        ;
    if (rc < 0 && rc != MINIDBX_ENOTFOUND) {
        atomic_fetch_add(&node->failures, 1);
        if (cluster_node_failed(rc)) {
            mark_down(c, node, minidbx_errmsg(NULL));
        } else {
            pthread_mutex_lock(&node->lock);
            snprintf(node->last_error, sizeof node->last_error, "%s", minidbx_errmsg(NULL));
            pthread_mutex_unlock(&node->lock);
        }
    }
    return rc;
}

/* Which error says most about a call that no node could answer: a node's
 * real error over "not found", and anything over EIO only when no node
 * was reached at all. */
int cluster_pick_error(int have, int rc)
{
    if (have == 0 || have == MINIDBX_ENOTFOUND)
        return rc;
    if (rc == MINIDBX_ENOTFOUND || rc == 0)
        return have;
    return have == MINIDBX_EIO ? rc : have;
}

int cluster_fetch_pages(struct cluster *c, size_t item_size, size_t capacity, cluster_page_fn fn,
                        const void *ctx, void *pages[], size_t got[])
{
    bool answered = false;

    for (size_t i = 0; i < c->count; i++) {
        minidbx *db = cluster_node_db(&c->nodes[i]);
        pages[i] = NULL;
        got[i] = 0;
        if (!db)
            continue;
        if (!(pages[i] = malloc(capacity * item_size)))
            return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        int64_t start = cluster_call_start();
        if (cluster_call_end(c, &c->nodes[i], start, fn(db, ctx, pages[i], capacity, &got[i])) == 0)
            answered = true;
        else
            got[i] = 0;
    }
    return answered ? 0 : minidbx_error_set(MINIDBX_EIO, "list: no node answered");
}

/* --- the prober ---------------------------------------------------------------- */

static const minidbx_id probe_id; /* all zeros: asking for it is cheap everywhere */

static int open_node(struct cluster *c, struct cluster_node *node)
{
    minidbx *db = NULL;
    int rc = minidbx_open(&db, node->location, &c->node_opts);
    if (rc == 0)
        atomic_store(&node->db, db);
    return rc;
}

/* Try a down node once: open it if it never opened, else ask it something. */
static void probe(struct cluster *c, struct cluster_node *node)
{
    minidbx *db = atomic_load(&node->db);
    int64_t start = cluster_call_start();
    int rc = db ? minidbx_exists(db, &probe_id) : open_node(c, node);

    pthread_mutex_lock(&node->lock);
    if (rc >= 0) {
        node->down_since_ns = 0;
        atomic_store(&node->up, true);
    } else {
        snprintf(node->last_error, sizeof node->last_error, "%s", minidbx_errmsg(NULL));
        node->backoff_ms = node->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : node->backoff_ms * 2;
        node->retry_at_ns = monotonic_ns() + (int64_t)node->backoff_ms * 1000000;
    }
    pthread_mutex_unlock(&node->lock);
    if (rc >= 0)
        cluster_call_end(c, node, start, 0);
}

static void *prober_main(void *arg)
{
    struct cluster *c = arg;

    pthread_mutex_lock(&c->prober_lock);
    while (!c->stopping) {
        int64_t now = monotonic_ns(), next = now + (int64_t)BACKOFF_MAX_MS * 1000000;
        for (size_t i = 0; i < c->count && !c->stopping; i++) {
            struct cluster_node *node = &c->nodes[i];
            if (atomic_load(&node->up))
                continue;
            pthread_mutex_lock(&node->lock);
            int64_t due = node->retry_at_ns;
            pthread_mutex_unlock(&node->lock);
            if (due <= now) {
                pthread_mutex_unlock(&c->prober_lock);
                probe(c, node);
                pthread_mutex_lock(&c->prober_lock);
                pthread_mutex_lock(&node->lock);
                due = atomic_load(&node->up) ? next : node->retry_at_ns;
                pthread_mutex_unlock(&node->lock);
            }
            if (due < next)
                next = due;
        }
        if (c->stopping)
            break;
        /* the condition variable waits on CLOCK_MONOTONIC (see cluster_open) */
        struct timespec until = { (time_t)(next / 1000000000), (long)(next % 1000000000) };
        pthread_cond_timedwait(&c->prober_wake, &c->prober_lock, &until);
    }
    pthread_mutex_unlock(&c->prober_lock);
    return NULL;
}

/* --- info and nodes ---------------------------------------------------------------- */

#define INFO_PAGE 1024

static int cluster_info(minidbx_backend *be, minidbx_store_info *out)
{
    struct cluster *c = cluster_of(be);
    minidbx_object_info *objects = malloc(INFO_PAGE * sizeof *objects);
    minidbx_name_info *names = malloc(INFO_PAGE * sizeof *names);
    size_t count = INFO_PAGE;
    int rc = objects && names ? 0 : minidbx_error_set(MINIDBX_ENOMEM, "out of memory");

    /* every object and name once, however many copies: the merged lists */
    for (const minidbx_id *after = NULL; rc == 0 && count == INFO_PAGE; after = &objects[count - 1].id) {
        if ((rc = cluster_list(be, after, objects, INFO_PAGE, &count)) < 0)
            break;
        for (size_t i = 0; i < count; i++) {
            out->objects++;
            out->bytes += objects[i].size;
            if (objects[i].flags & MINIDBX_OBJECT_INLINE)
                out->inline_objects++;
            else
                out->file_objects++;
        }
        if (count == 0)
            break;
    }
    count = INFO_PAGE;
    for (const char *after = NULL; rc == 0 && count == INFO_PAGE; after = names[count - 1].name) {
        if ((rc = cluster_name_list(be, "", after, names, INFO_PAGE, &count)) < 0 || count == 0)
            break;
        out->names += count;
    }
    for (size_t i = 0; rc == 0 && i < c->count; i++) {
        minidbx_store_info node_info;
        minidbx *db = cluster_node_db(&c->nodes[i]);
        if (db && minidbx_info(db, &node_info) == 0) {
            out->inline_threshold = node_info.inline_threshold;
            break;
        }
    }
    snprintf(out->location, sizeof out->location, "cluster:%s", c->path);
    free(objects);
    free(names);
    return rc;
}

static void node_info(struct cluster_node *node, minidbx_node_info *out)
{
    uint64_t requests = atomic_load(&node->requests);

    memset(out, 0, sizeof *out);
    snprintf(out->location, sizeof out->location, "%s", node->location);
    out->up = cluster_node_db(node) != NULL;
    out->requests = requests;
    out->failures = atomic_load(&node->failures);
    out->latency_us_avg = requests ? atomic_load(&node->latency_us_total) / requests : 0;
    out->latency_us_max = atomic_load(&node->latency_us_max);
    pthread_mutex_lock(&node->lock);
    snprintf(out->last_error, sizeof out->last_error, "%s", node->last_error);
    out->down_since_ns = out->up ? 0 : node->down_since_ns;
    pthread_mutex_unlock(&node->lock);
}

static int cluster_nodes(minidbx_backend *be, const minidbx_id *holding, minidbx_node_info *out,
                         size_t capacity, size_t *out_count)
{
    struct cluster *c = cluster_of(be);
    unsigned order[CLUSTER_NODES_MAX];
    size_t n = 0;

    if (!holding) {
        for (size_t i = 0; i < c->count && n < capacity; i++)
            node_info(&c->nodes[i], &out[n++]);
        *out_count = n;
        return 0;
    }
    cluster_order(c, cluster_id_key(holding), order);
    for (size_t k = 0; k < c->count && n < capacity; k++) {
        struct cluster_node *node = &c->nodes[order[k]];
        minidbx *db = cluster_node_db(node);
        if (!db)
            continue;
        int64_t start = cluster_call_start();
        int rc = cluster_call_end(c, node, start, minidbx_exists(db, holding));
        if (rc == 1) {
            node_info(node, &out[n]);
            out[n++].home = k < c->replicas;
        }
    }
    *out_count = n;
    return 0;
}

/* --- the table and its life ------------------------------------------------------------ */

static void cluster_free(minidbx_backend *be)
{
    struct cluster *c = cluster_of(be);

    cluster_batch_forget(c);
    if (c->prober_started) {
        pthread_mutex_lock(&c->prober_lock);
        c->stopping = true;
        pthread_cond_signal(&c->prober_wake);
        pthread_mutex_unlock(&c->prober_lock);
        pthread_join(c->prober, NULL);
    }
    cluster_pool_free(c);
    for (size_t i = 0; c->nodes && i < c->count; i++) {
        minidbx_close(atomic_load(&c->nodes[i].db));
        pthread_mutex_destroy(&c->nodes[i].lock);
        free(c->nodes[i].location);
    }
    pthread_cond_destroy(&c->prober_wake);
    pthread_mutex_destroy(&c->prober_lock);
    cluster_cache_free(c);
    free(c->nodes);
    free(c->path);
    free(c);
}

static const minidbx_backend cluster_table = {
    .version = MINIDBX_BACKEND_VERSION,
    .name = "cluster",
    .free = cluster_free,
    .put = cluster_put,
    .get = cluster_get,
    .exists = cluster_exists,
    .missing = cluster_missing,
    .stat = cluster_stat,
    .del = cluster_del,
    .list = cluster_list,
    .writer_open = cluster_writer_open,
    .reader_open = cluster_reader_open,
    .batch_begin = cluster_batch_begin,
    .batch_commit = cluster_batch_commit,
    .batch_abort = cluster_batch_abort,
    .name_set = cluster_name_set,
    .name_get = cluster_name_get,
    .name_delete = cluster_name_delete,
    .name_list = cluster_name_list,
    .verify = cluster_verify,
    .gc = cluster_gc,
    .gc_ex = cluster_gc_ex,
    .info = cluster_info,
    .name_set_at = cluster_name_set_at,
    .nodes = cluster_nodes,
    /* every read is checked by a node's handle (opened verifying) or by
     * hash_fd, and a copy that fails is skipped (cluster_objects.c) */
    .flags = MINIDBX_BACKEND_VERIFIED_READS,
};

/* --- the cluster file ---------------------------------------------------------------- */

static int bad_field(const char *path, const char *field, const char *why)
{
    return minidbx_error_set(MINIDBX_EINVAL, "cluster file %s: \"%s\" %s", path, field, why);
}

/* An integer member in min..max, or def when absent. */
static int int_field(json_object *root, const char *path, const char *key, int64_t min, int64_t max,
                     int64_t def, int64_t *out)
{
    json_object *item;
    char why[96];

    if (!json_object_object_get_ex(root, key, &item)) {
        *out = def;
        return 0;
    }
    errno = 0;
    int64_t value = json_object_get_int64(item);
    if (!json_object_is_type(item, json_type_int) || errno || value < min || value > max) {
        snprintf(why, sizeof why, "must be an integer in %" PRId64 "..%" PRId64, min, max);
        return bad_field(path, key, why);
    }
    *out = value;
    return 0;
}

/* Does location start with a scheme and a colon (open.c's grammar)? */
static bool has_scheme(const char *location)
{
    size_t len = strspn(location, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    return len >= 2 && location[len] == ':' &&
           ((location[0] >= 'a' && location[0] <= 'z') || (location[0] >= 'A' && location[0] <= 'Z'));
}

/* A node's location: a relative directory is relative to the cluster file. */
static char *node_location(const char *path, const char *location)
{
    const char *slash = strrchr(path, '/');
    char *out;

    if (has_scheme(location) || location[0] == '/' || !slash)
        return strdup(location);
    if (asprintf(&out, "%.*s/%s", (int)(slash - path), path, location) < 0)
        return NULL;
    return out;
}

static int read_nodes(struct cluster *c, json_object *root)
{
    json_object *nodes;
    char field[32];

    if (!json_object_object_get_ex(root, "nodes", &nodes))
        return bad_field(c->path, "nodes", "is missing (a list of node locations)");
    if (!json_object_is_type(nodes, json_type_array) || json_object_array_length(nodes) == 0 ||
        json_object_array_length(nodes) > CLUSTER_NODES_MAX)
        return bad_field(c->path, "nodes", "must be a list of 1..64 locations");
    c->count = json_object_array_length(nodes);
    if (!(c->nodes = calloc(c->count, sizeof *c->nodes)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->count; i++) {
        struct cluster_node *node = &c->nodes[i];
        json_object *item = json_object_array_get_idx(nodes, i);
        const char *text = json_object_is_type(item, json_type_string) ? json_object_get_string(item) : NULL;

        pthread_mutex_init(&node->lock, NULL);
        atomic_init(&node->up, false);
        snprintf(field, sizeof field, "nodes[%zu]", i);
        if (!text || !text[0])
            return bad_field(c->path, field, "must be a location (a directory, http://..., s3://...)");
        if (strncasecmp(text, "cluster:", 8) == 0)
            return bad_field(c->path, field, "cannot be a cluster");
        if (!(node->location = node_location(c->path, text)))
            return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
        node->key = fnv1a64(node->location);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->nodes[j].location, node->location) == 0)
                return bad_field(c->path, field, "names a node twice");
    }
    return 0;
}

static int read_file(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    char *text = NULL;
    size_t len = 0;
    int rc = 0;

    if (!f)
        return errno == ENOENT ? minidbx_error_set(MINIDBX_ENOTFOUND, "cluster file %s: no such file", path)
                               : dbx_error_errno(errno, "cluster file %s", path);
    if (!(text = malloc(CLUSTER_FILE_MAX + 1)))
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    else if ((len = fread(text, 1, CLUSTER_FILE_MAX + 1, f)) > CLUSTER_FILE_MAX || ferror(f))
        rc = minidbx_error_set(MINIDBX_EINVAL, "cluster file %s: unreadable or over 1 MiB", path);
    fclose(f);
    if (rc < 0) {
        free(text);
        return rc;
    }
    text[len] = '\0';
    *out = text;
    return 0;
}

static int read_config(struct cluster *c)
{
    static const char *const known[] = { "replicas", "write_quorum", "timeout_ms", "cache_objects", "nodes" };
    json_object *root = NULL;
    char *text = NULL;
    int64_t replicas, quorum, timeout_ms, cache_objects;
    int rc = read_file(c->path, &text);

    if (rc < 0)
        return rc;
    if (!(root = json_tokener_parse(text)) || !json_object_is_type(root, json_type_object)) {
        rc = minidbx_error_set(MINIDBX_EINVAL, "cluster file %s: not a JSON object", c->path);
        goto out;
    }
    json_object_object_foreach(root, key, value)
    {
        (void)value;
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] && strcmp(known[i], key) != 0)
            i++;
        if (i == sizeof known / sizeof known[0]) {
            rc = bad_field(c->path, key, "is not a field of a cluster file "
                                         "(replicas, write_quorum, timeout_ms, cache_objects, nodes)");
            goto out;
        }
    }
    if ((rc = read_nodes(c, root)) < 0 ||
        (rc = int_field(root, c->path, "replicas", 1, (int64_t)c->count,
                        c->count < DEFAULT_REPLICAS ? (int64_t)c->count : DEFAULT_REPLICAS, &replicas)) < 0 ||
        (rc = int_field(root, c->path, "write_quorum", 1, replicas, replicas, &quorum)) < 0 ||
        (rc = int_field(root, c->path, "timeout_ms", 1, TIMEOUT_MS_MAX, DEFAULT_TIMEOUT_MS, &timeout_ms)) < 0 ||
        (rc = int_field(root, c->path, "cache_objects", 0, CACHE_OBJECTS_MAX, DEFAULT_CACHE_OBJECTS,
                        &cache_objects)) < 0 ||
        (rc = cluster_cache_init(c, (size_t)cache_objects)) < 0)
        goto out;
    c->replicas = (unsigned)replicas;
    c->write_quorum = (unsigned)quorum;
    c->node_opts.timeout_ms = (unsigned)timeout_ms;
out:
    json_object_put(root);
    free(text);
    return rc;
}

/* A local node's directory, once it exists: (device, inode), else 0s. */
struct node_dir_id {
    dev_t dev;
    ino_t ino;
};

static struct node_dir_id node_dir_id(const struct cluster_node *node)
{
    struct stat st;
    const char *path = node->location;
    if (strncmp(path, "file://", 7) == 0)
        path += 7;
    else if (has_scheme(path))
        return (struct node_dir_id){ 0, 0 };
    if (stat(path, &st) != 0)
        return (struct node_dir_id){ 0, 0 };
    return (struct node_dir_id){ st.st_dev, st.st_ino };
}

/* Two locations of one directory ("n0", "./n0", "file://n0", a symlink)
 * would be one store holding what the cluster counts as two copies:
 * refused. */
static int check_not_opened(struct cluster *c, size_t i, const struct node_dir_id dirs[])
{
    struct node_dir_id mine = node_dir_id(&c->nodes[i]);
    char field[32], why[80];

    for (size_t j = 0; j < i && mine.ino; j++) {
        if (dirs[j].ino == mine.ino && dirs[j].dev == mine.dev) {
            snprintf(field, sizeof field, "nodes[%zu]", i);
            snprintf(why, sizeof why, "names the directory of nodes[%zu] again", j);
            return bad_field(c->path, field, why);
        }
    }
    return 0;
}

/* Open every node; one that cannot be reached now is down (the prober
 * tries again), any other failure fails the open. */
static int open_nodes(struct cluster *c)
{
    struct node_dir_id dirs[CLUSTER_NODES_MAX];
    size_t up = 0;

    for (size_t i = 0; i < c->count; i++) {
        struct cluster_node *node = &c->nodes[i];
        int rc = check_not_opened(c, i, dirs);
        if (rc < 0)
            return rc;
        rc = open_node(c, node);
        dirs[i] = node_dir_id(node); /* made by the open when it was not there */
        if (rc == 0) {
            atomic_store(&node->up, true);
            up++;
        } else if (cluster_node_failed(rc) || rc == MINIDBX_ENOTFOUND) {
            /* ENOTFOUND: a read-only open of a node whose store is gone */
            snprintf(node->last_error, sizeof node->last_error, "%s", minidbx_errmsg(NULL));
            node->down_since_ns = dbx_now_ns();
            node->backoff_ms = BACKOFF_FIRST_MS;
            node->retry_at_ns = monotonic_ns() + (int64_t)BACKOFF_FIRST_MS * 1000000;
        } else {
            return minidbx_error_set(rc, "cluster file %s: nodes[%zu] (%s): %s", c->path, i,
                                     node->location, minidbx_errmsg(NULL));
        }
    }
    if (up == 0)
        return minidbx_error_set(MINIDBX_EIO, "cluster file %s: no node can be reached (%s: %s)",
                                 c->path, c->nodes[0].location, c->nodes[0].last_error);
    return 0;
}

static void init_prober_sync(struct cluster *c)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&c->prober_wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&c->prober_lock, NULL);
}

/* After the nodes are set up: the prober reads them. */
static int start_prober(struct cluster *c)
{
    if (dbx_thread_start(&c->prober, prober_main, c) != 0)
        return minidbx_error_set(MINIDBX_ENOMEM, "cluster: cannot start the prober thread");
    c->prober_started = true;
    return 0;
}

int dbx_cluster_open(minidbx_backend **out, const char *location, const minidbx_options *opts)
{
    struct cluster *c = calloc(1, sizeof *c);
    const char *path = location + strlen("cluster:");
    int rc;

    if (!c)
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    c->base = cluster_table;
    c->node_opts = *opts;
    /* nodes verify what they hand out: a copy that fails is one to skip;
     * a node's directory that is gone (a replaced disk) is made again */
    c->node_opts.flags &= ~(MINIDBX_OPEN_NO_VERIFY | MINIDBX_OPEN_NO_CREATE);
    init_prober_sync(c);
    rc = 0;
    if (!path[0])
        rc = minidbx_error_set(MINIDBX_EINVAL, "%s: write cluster:FILE (a JSON cluster file)", location);
    if (rc == 0 && !(c->path = strdup(path)))
        rc = minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    if (rc == 0)
        rc = cluster_pool_new(c);
    if (rc == 0)
        rc = read_config(c);
    if (rc == 0)
        rc = open_nodes(c);
    if (rc == 0)
        rc = start_prober(c);
    if (rc < 0) {
        cluster_free(&c->base);
        return rc;
    }
    *out = &c->base;
    return 0;
}
