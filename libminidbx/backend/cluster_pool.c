/*
 * cluster_pool.c - the threads that write a put's copies in parallel: a
 * pool that lives as long as the handle, so that a put neither starts nor
 * joins a thread. The caller runs the first task itself; each other task
 * goes to an idle worker, or to a new one while the pool has fewer than
 * CLUSTER_POOL_MAX, or else (none to be had) the caller runs it after its
 * own. Workers wait on a condition of their own, so handing over a task
 * wakes exactly one thread.
 */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>

/* Enough for R - 1 copies of every put that a gateway's threads make at
 * once; past it, copies are written one after another by the caller. */
#define CLUSTER_POOL_MAX 32

/* One call of cluster_run_parallel: how many of its tasks are still out. */
struct pool_batch {
    size_t pending;
    pthread_cond_t done;
};

struct cluster_worker {
    struct cluster_pool *pool;
    pthread_t thread;
    pthread_cond_t wake;
    bool started;
    struct cluster_task *task; /* to run; NULL: idle */
    struct pool_batch *batch;
    struct cluster_worker *next_idle;
};

struct cluster_pool {
    pthread_mutex_t lock; /* everything here and in the workers */
    struct cluster_worker *idle;
    struct cluster_worker *workers[CLUSTER_POOL_MAX];
    size_t count;
    bool stopping;
};

static void run_task(struct cluster_task *t)
{
    t->rc = t->fn(t);
    if (t->rc < 0)
        snprintf(t->error, sizeof t->error, "%s", minidbx_errmsg(NULL));
}

static void *worker_main(void *arg)
{
    struct cluster_worker *w = arg;
    struct cluster_pool *pool = w->pool;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!w->task && !pool->stopping)
            pthread_cond_wait(&w->wake, &pool->lock);
        if (!w->task)
            break;
        struct cluster_task *t = w->task;
        pthread_mutex_unlock(&pool->lock);
        run_task(t);
        pthread_mutex_lock(&pool->lock);
        w->task = NULL;
        w->next_idle = pool->idle;
        pool->idle = w;
        /* the batch lives on its caller's stack: it waits for this, under
         * the lock, before it goes */
        if (--w->batch->pending == 0)
            pthread_cond_signal(&w->batch->done);
        w->batch = NULL;
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* An idle worker, or a new one (pool->lock held); NULL if none. */
static struct cluster_worker *take_worker(struct cluster_pool *pool, struct cluster_task *t,
                                          struct pool_batch *batch)
{
    struct cluster_worker *w = pool->idle;

    if (w) {
        pool->idle = w->next_idle;
    } else {
        if (pool->count == CLUSTER_POOL_MAX || !(w = calloc(1, sizeof *w)))
            return NULL;
        w->pool = pool;
        pthread_cond_init(&w->wake, NULL);
    }
    w->task = t;
    w->batch = batch;
    if (w->started) {
        pthread_cond_signal(&w->wake);
    } else if (dbx_thread_start(&w->thread, worker_main, w) == 0) {
        w->started = true;
        pool->workers[pool->count++] = w;
    } else {
        pthread_cond_destroy(&w->wake);
        free(w);
        return NULL;
    }
    return w;
}

void cluster_run_parallel(struct cluster_task *tasks, size_t count)
{
    struct cluster_pool *pool = count ? tasks[0].c->pool : NULL;
    struct pool_batch batch = { 0 };
    bool handed[CLUSTER_NODES_MAX] = { false };

    if (count == 0)
        return;
    pthread_cond_init(&batch.done, NULL);
    pthread_mutex_lock(&pool->lock);
    for (size_t i = 1; i < count; i++)
        if (take_worker(pool, &tasks[i], &batch)) {
            handed[i] = true;
            batch.pending++;
        }
    pthread_mutex_unlock(&pool->lock);
    run_task(&tasks[0]);
    for (size_t i = 1; i < count; i++)
        if (!handed[i])
            run_task(&tasks[i]);
    pthread_mutex_lock(&pool->lock);
    while (batch.pending > 0)
        pthread_cond_wait(&batch.done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_cond_destroy(&batch.done);
}

int cluster_pool_new(struct cluster *c)
{
    if (!(c->pool = calloc(1, sizeof *c->pool)))
        return minidbx_error_set(MINIDBX_ENOMEM, "out of memory");
    pthread_mutex_init(&c->pool->lock, NULL);
    return 0;
}

void cluster_pool_free(struct cluster *c)
{
    struct cluster_pool *pool = c->pool;

    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    for (size_t i = 0; i < pool->count; i++)
        pthread_cond_signal(&pool->workers[i]->wake);
    pthread_mutex_unlock(&pool->lock);
    for (size_t i = 0; i < pool->count; i++) {
        pthread_join(pool->workers[i]->thread, NULL);
        pthread_cond_destroy(&pool->workers[i]->wake);
        free(pool->workers[i]);
    }
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    c->pool = NULL;
}
