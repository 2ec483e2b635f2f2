/*
 * cluster_cache.c - a small cache of verified small objects in a cluster:
 * handle, so that a gateway answers a hot object without asking a node.
 *
 * Objects are immutable, so a cached object's bytes are always its bytes
 * (they were checked against the id when they came from the node). What a
 * cache can get wrong is only whether the object still exists: a delete
 * made through this handle drops the entry, and an entry is used for at
 * most CACHE_TTL_NS after it was filled, which bounds how long a delete
 * made elsewhere (another client, a node's gc) goes unseen; a gc made
 * through this handle empties the cache. A table of
 * "cache_objects" slots (the cluster file; 0: none), direct-mapped by id,
 * one lock each; objects up to CLUSTER_CACHE_OBJECT_MAX bytes.
 */
#include "cluster.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_TTL_NS 1000000000LL

struct cluster_cache_slot {
    pthread_mutex_t lock;
    minidbx_id id;
    int64_t filled_ns; /* monotonic; 0: empty */
    size_t size;
    char *data;
};

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int cluster_cache_init(struct cluster *c, size_t slots)
{
    c->cache_slots = 0;
    if (slots == 0)
        return 0;
    if (!(c->cache = calloc(slots, sizeof *c->cache)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    for (size_t i = 0; i < slots; i++)
        pthread_mutex_init(&c->cache[i].lock, NULL);
    c->cache_slots = slots;
    return 0;
}

void cluster_cache_free(struct cluster *c)
{
    for (size_t i = 0; i < c->cache_slots; i++) {
        free(c->cache[i].data);
        pthread_mutex_destroy(&c->cache[i].lock);
    }
    free(c->cache);
    c->cache = NULL;
    c->cache_slots = 0;
}

static struct cluster_cache_slot *slot_of(struct cluster *c, const minidbx_id *id)
{
    return c->cache_slots ? &c->cache[cluster_id_key(id) % c->cache_slots] : NULL;
}

bool cluster_cache_get(struct cluster *c, const minidbx_id *id, void **out_data, size_t *out_size)
{
    struct cluster_cache_slot *slot = slot_of(c, id);
    bool hit = false;

    if (!slot)
        return false;
    pthread_mutex_lock(&slot->lock);
    if (slot->filled_ns && minidbx_id_equal(&slot->id, id) && monotonic_ns() - slot->filled_ns < CACHE_TTL_NS) {
        char *copy = malloc(slot->size ? slot->size : 1);
        if (copy) {
            memcpy(copy, slot->data, slot->size);
            *out_data = copy;
            *out_size = slot->size;
            hit = true;
        }
    }
    pthread_mutex_unlock(&slot->lock);
    return hit;
}

void cluster_cache_put(struct cluster *c, const minidbx_id *id, const void *data, size_t size)
{
    struct cluster_cache_slot *slot = slot_of(c, id);
    char *copy;

    if (!slot || size > CLUSTER_CACHE_OBJECT_MAX || !(copy = malloc(size ? size : 1)))
        return;
    memcpy(copy, data, size);
    pthread_mutex_lock(&slot->lock);
    free(slot->data);
    slot->id = *id;
    slot->data = copy;
    slot->size = size;
    slot->filled_ns = monotonic_ns();
    pthread_mutex_unlock(&slot->lock);
}

void cluster_cache_clear(struct cluster *c)
{
    for (size_t i = 0; i < c->cache_slots; i++) {
        pthread_mutex_lock(&c->cache[i].lock);
        free(c->cache[i].data);
        c->cache[i].data = NULL;
        c->cache[i].filled_ns = 0;
        pthread_mutex_unlock(&c->cache[i].lock);
    }
}

void cluster_cache_forget(struct cluster *c, const minidbx_id *id)
{
    struct cluster_cache_slot *slot = slot_of(c, id);

    if (!slot)
        return;
    pthread_mutex_lock(&slot->lock);
    if (slot->filled_ns && minidbx_id_equal(&slot->id, id)) {
        free(slot->data);
        slot->data = NULL;
        slot->filled_ns = 0;
    }
    pthread_mutex_unlock(&slot->lock);
}
