/* mem_backend.c - an in-memory minidbx backend: objects in an array under
 * one mutex. Small and slow on purpose (linear scans); see mem_backend.h. */
#include "mem_backend.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    minidbx_id id;
    unsigned char *data;
    size_t size;
    int64_t created_ns;
} mem_object;

typedef struct {
    minidbx_backend base; /* first: the library sees only this */
    pthread_mutex_t lock;
    mem_object *objects;
    size_t count, capacity;
    bool liar;
    char location[256];
} mem_store;

static mem_backend_calls calls;

const mem_backend_calls *mem_backend_last_calls(void)
{
    return &calls;
}

static mem_store *store_of(minidbx_backend *be)
{
    return (mem_store *)be;
}

static int64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Index of id, or -1. Caller holds the lock. */
static long find_locked(const mem_store *ms, const minidbx_id *id)
{
    for (size_t i = 0; i < ms->count; i++) {
        if (minidbx_id_equal(&ms->objects[i].id, id))
            return (long)i;
    }
    return -1;
}

/* Take ownership of data (malloc'd) as the object id. */
static int insert(mem_store *ms, const minidbx_id *id, unsigned char *data, size_t size)
{
    int rc = 0;
    pthread_mutex_lock(&ms->lock);
    if (find_locked(ms, id) >= 0) {
        free(data); /* already there: store once */
        goto out;
    }
    if (ms->count == ms->capacity) {
        size_t capacity = ms->capacity ? ms->capacity * 2 : 16;
        mem_object *grown = realloc(ms->objects, capacity * sizeof *grown);
        if (grown == NULL) {
            free(data);
            rc = minidbx_error_set(MINIDBX_ENOMEM, "mem: out of memory");
            goto out;
        }
        ms->objects = grown;
        ms->capacity = capacity;
    }
    ms->objects[ms->count++] = (mem_object){*id, data, size, wall_ns()};
out:
    pthread_mutex_unlock(&ms->lock);
    return rc;
}

/* A malloc'd copy of the object's bytes (flipped if the store lies). */
static int copy_out(mem_store *ms, const minidbx_id *id, unsigned char **out, size_t *out_size)
{
    int rc = 0;
    pthread_mutex_lock(&ms->lock);
    long i = find_locked(ms, id);
    if (i < 0) {
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "mem: no such object");
        goto out;
    }
    const mem_object *obj = &ms->objects[i];
    *out = malloc(obj->size ? obj->size : 1);
    if (*out == NULL) {
        rc = minidbx_error_set(MINIDBX_ENOMEM, "mem: out of memory");
        goto out;
    }
    memcpy(*out, obj->data, obj->size);
    if (ms->liar && obj->size > 0)
        (*out)[obj->size / 2] ^= 0x01;
    *out_size = obj->size;
out:
    pthread_mutex_unlock(&ms->lock);
    return rc;
}

static void mem_free(minidbx_backend *be)
{
    mem_store *ms = store_of(be);
    for (size_t i = 0; i < ms->count; i++)
        free(ms->objects[i].data);
    free(ms->objects);
    pthread_mutex_destroy(&ms->lock);
    free(ms);
    calls.freed++;
}

static int mem_put(minidbx_backend *be, const minidbx_id *id, const void *data, size_t size)
{
    calls.put++;
    unsigned char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return minidbx_error_set(MINIDBX_ENOMEM, "mem: out of memory");
    if (size > 0)
        memcpy(copy, data, size);
    return insert(store_of(be), id, copy, size);
}

static int mem_get(minidbx_backend *be, const minidbx_id *id, void **out_data, size_t *out_size)
{
    calls.get++;
    unsigned char *data = NULL;
    int rc = copy_out(store_of(be), id, &data, out_size);
    *out_data = data;
    return rc;
}

static int mem_exists(minidbx_backend *be, const minidbx_id *id)
{
    calls.exists++;
    mem_store *ms = store_of(be);
    pthread_mutex_lock(&ms->lock);
    int found = find_locked(ms, id) >= 0;
    pthread_mutex_unlock(&ms->lock);
    return found;
}

static void fill_info(const mem_object *obj, minidbx_object_info *out)
{
    memset(out, 0, sizeof *out);
    out->id = obj->id;
    out->size = obj->size;
    out->created_ns = obj->created_ns;
}

static int mem_stat(minidbx_backend *be, const minidbx_id *id, minidbx_object_info *out)
{
    mem_store *ms = store_of(be);
    int rc = 0;
    pthread_mutex_lock(&ms->lock);
    long i = find_locked(ms, id);
    if (i < 0)
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "mem: no such object");
    else
        fill_info(&ms->objects[i], out);
    pthread_mutex_unlock(&ms->lock);
    return rc;
}

static int mem_del(minidbx_backend *be, const minidbx_id *id, unsigned flags)
{
    (void)flags; /* no names here, so nothing to cascade */
    mem_store *ms = store_of(be);
    int rc = 0;
    pthread_mutex_lock(&ms->lock);
    long i = find_locked(ms, id);
    if (i < 0) {
        rc = minidbx_error_set(MINIDBX_ENOTFOUND, "mem: no such object");
    } else {
        free(ms->objects[i].data);
        ms->objects[i] = ms->objects[--ms->count];
    }
    pthread_mutex_unlock(&ms->lock);
    return rc;
}

/* Smallest stored id greater than after (any, if after is NULL); -1 if none. */
static long next_after_locked(const mem_store *ms, const minidbx_id *after)
{
    long best = -1;
    for (size_t i = 0; i < ms->count; i++) {
        const minidbx_id *id = &ms->objects[i].id;
        if (after && memcmp(id->bytes, after->bytes, MINIDBX_ID_SIZE) <= 0)
            continue;
        if (best < 0 || memcmp(id->bytes, ms->objects[best].id.bytes, MINIDBX_ID_SIZE) < 0)
            best = (long)i;
    }
    return best;
}

static int mem_list(minidbx_backend *be, const minidbx_id *after, minidbx_object_info *out,
                    size_t capacity, size_t *out_count)
{
    mem_store *ms = store_of(be);
    size_t n = 0;
    pthread_mutex_lock(&ms->lock);
    const minidbx_id *cursor = after;
    while (n < capacity) {
        long i = next_after_locked(ms, cursor);
        if (i < 0)
            break;
        fill_info(&ms->objects[i], &out[n]);
        cursor = &out[n].id;
        n++;
    }
    pthread_mutex_unlock(&ms->lock);
    *out_count = n;
    return 0;
}

/* ---- streams ---- */

typedef struct {
    minidbx_backend_writer base;
    mem_store *ms;
    unsigned char *data;
    size_t size, capacity;
} mem_writer;

static int mem_writer_write(minidbx_backend_writer *bw, const void *data, size_t size)
{
    mem_writer *w = (mem_writer *)bw;
    if (w->size + size > w->capacity) {
        size_t capacity = w->capacity ? w->capacity : 4096;
        while (capacity < w->size + size)
            capacity *= 2;
        unsigned char *grown = realloc(w->data, capacity);
        if (grown == NULL)
            return minidbx_error_set(MINIDBX_ENOMEM, "mem: out of memory");
        w->data = grown;
        w->capacity = capacity;
    }
    if (size > 0)
        memcpy(w->data + w->size, data, size);
    w->size += size;
    return 0;
}

static void mem_writer_abort(minidbx_backend_writer *bw)
{
    mem_writer *w = (mem_writer *)bw;
    free(w->data);
    free(w);
}

static int mem_writer_commit(minidbx_backend_writer *bw, const minidbx_id *id)
{
    mem_writer *w = (mem_writer *)bw;
    unsigned char *data = w->data ? w->data : malloc(1);
    int rc = data ? insert(w->ms, id, data, w->size)
                  : minidbx_error_set(MINIDBX_ENOMEM, "mem: out of memory");
    free(w);
    return rc;
}

static int mem_writer_open(minidbx_backend *be, minidbx_backend_writer **out)
{
    calls.writer_open++;
    mem_writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return minidbx_error_set(MINIDBX_ENOMEM, "mem: out of memory");
    w->base.write = mem_writer_write;
    w->base.commit = mem_writer_commit;
    w->base.abort = mem_writer_abort;
    w->ms = store_of(be);
    *out = &w->base;
    return 0;
}

typedef struct {
    minidbx_backend_reader base;
    unsigned char *data;
    size_t size, offset;
} mem_reader;

static int mem_reader_read(minidbx_backend_reader *br, void *buf, size_t capacity, size_t *out_read)
{
    mem_reader *r = (mem_reader *)br;
    size_t n = r->size - r->offset < capacity ? r->size - r->offset : capacity;
    memcpy(buf, r->data + r->offset, n);
    r->offset += n;
    *out_read = n;
    return 0;
}

static void mem_reader_close(minidbx_backend_reader *br)
{
    mem_reader *r = (mem_reader *)br;
    free(r->data);
    free(r);
}

static int mem_reader_open(minidbx_backend *be, const minidbx_id *id, minidbx_backend_reader **out,
                           uint64_t *out_size)
{
    calls.reader_open++;
    mem_reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        return minidbx_error_set(MINIDBX_ENOMEM, "mem: out of memory");
    int rc = copy_out(store_of(be), id, &r->data, &r->size);
    if (rc != 0) {
        free(r);
        return rc;
    }
    r->base.read = mem_reader_read;
    r->base.fd = NULL; /* no files: reader_fd gives EUNSUPPORTED */
    r->base.close = mem_reader_close;
    if (out_size)
        *out_size = r->size;
    *out = &r->base;
    return 0;
}

static int mem_info(minidbx_backend *be, minidbx_store_info *out)
{
    mem_store *ms = store_of(be);
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&ms->lock);
    out->objects = ms->count;
    for (size_t i = 0; i < ms->count; i++)
        out->bytes += ms->objects[i].size;
    pthread_mutex_unlock(&ms->lock);
    out->inline_objects = out->objects;
    snprintf(out->backend, sizeof out->backend, "mem");
    snprintf(out->location, sizeof out->location, "%s", ms->location);
    return 0;
}

int mem_backend_open(minidbx_backend **out, const char *location, const minidbx_options *opts)
{
    (void)opts;
    mem_store *ms = calloc(1, sizeof *ms);
    if (ms == NULL)
        return minidbx_error_set(MINIDBX_ENOMEM, "mem: out of memory");
    pthread_mutex_init(&ms->lock, NULL);
    snprintf(ms->location, sizeof ms->location, "%s", location);
    const char *rest = strncmp(location, "mem://", 6) == 0 ? location + 6 : location;
    bool minimal = strncmp(rest, "minimal", 7) == 0;
    ms->liar = strncmp(rest, "liar", 4) == 0;
    memset(&calls, 0, sizeof calls);

    minidbx_backend *be = &ms->base;
    be->version = MINIDBX_BACKEND_VERSION;
    be->name = "mem";
    be->free = mem_free;
    be->put = minimal ? NULL : mem_put;
    be->get = minimal ? NULL : mem_get;
    be->exists = mem_exists;
    be->missing = NULL;
    be->stat = mem_stat;
    be->del = mem_del;
    be->list = mem_list;
    be->writer_open = mem_writer_open;
    be->reader_open = mem_reader_open;
    be->info = mem_info;
    if (strncmp(rest, "writesfirst", 11) == 0)
        be->flags = MINIDBX_BACKEND_PUT_WRITES_FIRST;
    /* batch_*, name_*, verify and gc stay NULL */
    *out = be;
    return 0;
}
