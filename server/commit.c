/* commit.c - durable writes off the I/O threads (--commit-threads).
 *
 * A durable put ends in flushes: the blob file and its directory, then the
 * LMDB commit. Made on an I/O thread of the pool, that wait blocks every
 * other connection the thread serves, and the pool's few threads make one
 * commit each at a time: 64 writers on 2 I/O threads shared two commits at
 * a time (0.25x the same load on a --sync none node). Here the handler of
 * a request whose body is complete suspends its connection and queues the
 * request; a commit thread makes the library calls and resumes the
 * connection, and the handler, called again, replies. The reply is queued
 * only after the commit returned, on the I/O thread: nothing is
 * acknowledged before it is durable, and a client gone meanwhile finds its
 * write stored.
 *
 * Two queues. Small objects put on a local store (PUT /v1/objects of at
 * most the store's inline threshold: bytes that go into the LMDB record)
 * wait in the batch queue; one commit thread at a time takes all of them
 * and commits them in one library batch (minidbx_batch_begin: one
 * transaction, one round of flushes, on one thread). Everything else
 * (blob files, /upload, a store of another kind) waits in the single
 * queue, taken one at a time: a thread blocks in its commit's flushes
 * (a blob file's own fsync among them, in parallel with the others'),
 * and the library's group commit (libminidbx/backend/local.c) lets the
 * threads waiting meanwhile share the next commit. Batches are for the
 * small ones because a batch costs one thread switch per batch where a
 * group costs two per write (the write's thread sleeps in the group and
 * is woken), which is most of the CPU a small durable put takes (measured:
 * see bench/http/README.md); a blob file's flush is better made by its
 * own thread, beside the others. A batch holds the store's write lock
 * from its first put to its commit, so it runs nothing but writer commits
 * (no lock of the node's is taken inside it); one failed write fails the
 * whole batch (minidbx_batch_commit: none of it is stored, every request
 * in it gets the error), which for a small put is only what fails the
 * commit itself (a full disk, an I/O error): an id that does not match is
 * refused before the batch sees the write.
 *
 * Bounds. The threads are fixed, started with the node. The queues are
 * lists through the requests themselves (nothing allocated) and hold at
 * most COMMIT_QUEUE_PER_THREAD requests per thread in all, each with its
 * body complete: a small object's writer holds at most the inline
 * threshold (16 KiB by default), a larger one a temp file. A body that
 * completes with the queues full is committed on its I/O thread, as with
 * --commit-threads 0: that thread reads none of its connections until the
 * commit is done, which holds back clients (they wait in their socket
 * buffers) instead of memory.
 *
 * Committed on the I/O thread instead, as job.c does for verify and gc:
 * under --io-model per-connection (no commit threads: the thread is the
 * connection's own, and libmicrohttpd 0.9.75 can lose a resume there), a
 * client that may half-close (0.9.75 closes a resumed connection on
 * reading its end of file, before the reply), and a body that completes
 * once the node has begun to stop.
 *
 * Stopping: serve_commits_stop, after the drain and before the daemon
 * stops (libmicrohttpd 0.9.75 aborts if a connection is still suspended
 * then), lets the threads commit and resume whatever is queued, then joins
 * them. */
#include "node.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Requests waiting for a commit thread, at most, per commit thread: with
 * the default 16 threads 128, so that 64 clients each with a body complete
 * fit, their writers holding at most 2 MiB. */
#define COMMIT_QUEUE_PER_THREAD 8

/* A batch looks at the node's resident map pages after this many puts. */
#define COMMIT_MEMORY_CHECK_EVERY 4

/* Requests waiting, oldest first, linked by commit_next. */
struct commit_queue {
    struct serve_request *head;
    struct serve_request *tail;
};

struct serve_commits {
    pthread_mutex_t lock;
    pthread_cond_t work_cond;    /* a request was queued, a batch ended, or stopping */
    struct commit_queue single;  /* one at a time, each on its own thread */
    struct commit_queue batch;   /* all at once, in one batch */
    bool batching;               /* a thread is committing a batch */
    uint64_t batch_max_bytes;    /* objects put up to this size are batched; 0: none */
    unsigned queued;             /* in both queues */
    unsigned queue_max;
    bool stopping;
    unsigned thread_count;       /* started, not yet joined */
    pthread_t threads[];
};

static void queue_append(struct commit_queue *q, struct serve_request *req)
{
    req->commit_next = NULL;
    if (q->tail)
        q->tail->commit_next = req;
    else
        q->head = req;
    q->tail = req;
}

/* The commit of req is done: hand it back to its I/O thread. */
static void commit_done(struct serve_server *srv, struct serve_request *req)
{
    struct MHD_Connection *conn = req->conn;

    atomic_store(&req->job_done, true);
    atomic_fetch_sub(&srv->metrics.commits_waiting, 1);
    /* From here on req belongs to the I/O thread again: it may be freed as
     * soon as the connection is resumed. */
    MHD_resume_connection(conn);
}

/* Commit the requests of list (linked by commit_next) in one batch, then
 * resume them. Alone, or if no batch can begin, each is committed by
 * itself (in the library's group commit). */
static void commit_batch(struct serve_server *srv, struct serve_request *list)
{
    bool in_batch = list->commit_next && minidbx_batch_begin(srv->db) == 0;
    struct serve_request *req, *next;

    size_t count = 0;
    for (req = list; req; req = req->commit_next) {
        req->job_rc = req->commit_fn(req);
        /* each put faults in its key's path of the map (a whole page cache
         * folio a fault, often 64-256 KiB): give them back as the batch
         * goes, not only after it (memory.c) */
        if (++count % COMMIT_MEMORY_CHECK_EVERY == 0)
            serve_memory_check(srv);
    }
    int rc = in_batch ? minidbx_batch_commit(srv->db) : 0;
    if (in_batch) {
        size_t stored = 0;
        for (req = list; rc == 0 && req; req = req->commit_next)
            stored += req->job_rc >= 0;
        atomic_fetch_add(&srv->metrics.commit_batches, 1);
        atomic_fetch_add(&srv->metrics.batched_commits, stored);
    }
    for (req = list; rc < 0 && req; req = req->commit_next) {
        if (req->job_rc < 0)
            continue;
        /* nothing of the batch is stored: not this one either */
        req->job_rc = rc;
        req->put_created = false;
        req->job_json = serve_json_failure(rc, "put");
    }
    for (req = list; req; req = next) {
        next = req->commit_next; /* req may be gone once resumed */
        commit_done(srv, req);
    }
}

static void *commit_main(void *cls)
{
    struct serve_server *srv = cls;
    struct serve_commits *commits = srv->commits;

    pthread_mutex_lock(&commits->lock);
    for (;;) {
        bool batch_ready = commits->batch.head && !commits->batching;
        if (!batch_ready && !commits->single.head) {
            if (commits->stopping && !commits->batch.head)
                break; /* nothing left (a batch still queued waits for the batcher) */
            pthread_cond_wait(&commits->work_cond, &commits->lock);
            continue;
        }
        if (batch_ready) {
            struct serve_request *list = commits->batch.head;
            for (struct serve_request *r = list; r; r = r->commit_next) {
                commits->queued--;
                atomic_fetch_sub(&srv->metrics.commits_queued, 1);
            }
            commits->batch.head = commits->batch.tail = NULL;
            commits->batching = true;
            pthread_mutex_unlock(&commits->lock);
            commit_batch(srv, list);
            pthread_mutex_lock(&commits->lock);
            commits->batching = false;
            /* the next batch, or the last thread's way out */
            pthread_cond_broadcast(&commits->work_cond);
            continue;
        }
        struct serve_request *req = commits->single.head;
        commits->single.head = req->commit_next;
        if (!commits->single.head)
            commits->single.tail = NULL;
        commits->queued--;
        atomic_fetch_sub(&srv->metrics.commits_queued, 1);
        pthread_mutex_unlock(&commits->lock);
        req->job_rc = req->commit_fn(req);
        commit_done(srv, req);
        pthread_mutex_lock(&commits->lock);
    }
    pthread_mutex_unlock(&commits->lock);
    return NULL;
}

int serve_commits_start(struct serve_server *srv)
{
    const struct minidbx_server_config *cfg = srv->cfg;
    unsigned count = cfg->io_model == SERVE_IO_POOL ? cfg->commit_threads : 0;
    struct serve_commits *commits;
    int rc = 0;

    if (count == 0)
        return 0; /* every commit on its I/O thread */
    if (!(commits = calloc(1, sizeof *commits + count * sizeof commits->threads[0])))
        return ENOMEM;
    pthread_mutex_init(&commits->lock, NULL);
    pthread_cond_init(&commits->work_cond, NULL);
    commits->queue_max = count * COMMIT_QUEUE_PER_THREAD;
    /* Batches share a transaction, which only a local store has (on the
     * others a batch is a row of calls, one after the other). */
    if (srv->store_local)
        commits->batch_max_bytes = srv->store_inline_threshold;
    srv->commits = commits;
    for (unsigned i = 0; i < count && rc == 0; i++)
        if ((rc = pthread_create(&commits->threads[i], NULL, commit_main, srv)) == 0)
            commits->thread_count++;
    if (rc != 0)
        serve_commits_free(srv);
    return rc;
}

void serve_commits_stop(struct serve_server *srv)
{
    struct serve_commits *commits = srv->commits;

    if (!commits)
        return;
    pthread_mutex_lock(&commits->lock);
    commits->stopping = true;
    pthread_cond_broadcast(&commits->work_cond);
    pthread_mutex_unlock(&commits->lock);
    for (unsigned i = 0; i < commits->thread_count; i++)
        pthread_join(commits->threads[i], NULL);
    commits->thread_count = 0;
}

void serve_commits_free(struct serve_server *srv)
{
    struct serve_commits *commits = srv->commits;

    if (!commits)
        return;
    serve_commits_stop(srv);
    pthread_mutex_destroy(&commits->lock);
    pthread_cond_destroy(&commits->work_cond);
    free(commits);
    srv->commits = NULL;
}

/* Queue req for a commit thread (in the batch queue with batch), its
 * connection suspended; false: the queues are full or the node is
 * stopping. */
static bool commit_queue(struct serve_commits *commits, struct serve_request *req, serve_job_fn fn,
                         bool batch)
{
    bool queued = false;

    pthread_mutex_lock(&commits->lock);
    if (!commits->stopping && commits->queued < commits->queue_max) {
        req->commit_fn = fn;
        req->job_started = true;
        atomic_fetch_add(&req->srv->metrics.commits_waiting, 1);
        atomic_fetch_add(&req->srv->metrics.commits_queued, 1);
        /* Suspended before a thread can see it, and so before it can be
         * resumed. */
        MHD_suspend_connection(req->conn);
        queue_append(batch ? &commits->batch : &commits->single, req);
        commits->queued++;
        pthread_cond_signal(&commits->work_cond);
        queued = true;
    }
    pthread_mutex_unlock(&commits->lock);
    return queued;
}

static enum MHD_Result commit_run(struct serve_request *req, serve_job_fn fn, bool batch)
{
    struct serve_commits *commits = req->srv->commits;

    if (commits && !serve_client_may_half_close(req->conn) && commit_queue(commits, req, fn, batch))
        return MHD_YES;
    atomic_fetch_add(&req->srv->metrics.commits_on_io_threads, 1);
    req->job_rc = fn(req);
    atomic_store(&req->job_done, true);
    return req->spec->handler(req);
}

enum MHD_Result serve_commit_run(struct serve_request *req, serve_job_fn fn)
{
    return commit_run(req, fn, false);
}

enum MHD_Result serve_commit_put(struct serve_request *req)
{
    const struct serve_commits *commits = req->srv->commits;
    /* the batch_max_bytes read without the lock: set before any thread */
    bool small = commits && commits->batch_max_bytes > 0 && req->object_bytes <= commits->batch_max_bytes;
    return commit_run(req, serve_commit_writer, small);
}
