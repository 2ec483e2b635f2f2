/* commit.c - durable writes off the I/O threads (--commit-threads).
 *
 * A durable put ends in flushes: the blob file and its directory, then the
 * LMDB commit. Made on an I/O thread of the pool, that wait blocks every
 * other connection the thread serves, and the pool's few threads make one
 * commit each at a time: 64 writers on 2 I/O threads shared two commits at
 * a time (0.25x the same load on a --sync none node). Here the handler of
 * a request whose body is complete suspends its connection and queues the
 * request; one of the commit threads makes the library calls and resumes
 * the connection, and the handler, called again, replies. While one commit
 * flushes, the other commit threads' writes wait in the library's group
 * commit (libminidbx/backend/local.c) and the next commit takes them all:
 * one transaction and one round of flushes for as many writes as there
 * are commit threads waiting. The reply is queued only after the commit
 * returned, on the I/O thread: nothing is acknowledged before it is
 * durable, and a client gone meanwhile finds its write stored.
 *
 * Bounds. The threads are fixed, started with the node. The queue is a
 * list through the requests themselves (nothing allocated) and holds at
 * most COMMIT_QUEUE_PER_THREAD requests per thread, each with its body
 * complete: an inline object's writer holds at most the inline threshold
 * (16 KiB by default), a larger one a temp file. A body that completes with the queue full is
 * committed on its I/O thread, as with --commit-threads 0: that thread
 * reads none of its connections until the commit is done, which holds
 * back clients (they wait in their socket buffers) instead of memory.
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

/* Requests waiting for a commit thread, at most, per commit thread: with
 * the default 16 threads 128, so 64 clients each with a body complete fit,
 * their writers holding at most 2 MiB (16 KiB each, the default inline
 * threshold). */
#define COMMIT_QUEUE_PER_THREAD 8

struct serve_commits {
    pthread_mutex_t lock;
    pthread_cond_t queued_cond;  /* a request was queued, or stopping */
    struct serve_request *head;  /* oldest first, linked by commit_next */
    struct serve_request *tail;
    unsigned queued;
    unsigned queue_max;
    bool stopping;
    unsigned thread_count;       /* started, not yet joined */
    pthread_t threads[];
};

static void *commit_main(void *cls)
{
    struct serve_server *srv = cls;
    struct serve_commits *commits = srv->commits;

    pthread_mutex_lock(&commits->lock);
    for (;;) {
        while (!commits->head && !commits->stopping)
            pthread_cond_wait(&commits->queued_cond, &commits->lock);
        struct serve_request *req = commits->head;
        if (!req)
            break; /* stopping, and nothing left */
        commits->head = req->commit_next;
        if (!commits->head)
            commits->tail = NULL;
        commits->queued--;
        pthread_mutex_unlock(&commits->lock);

        struct MHD_Connection *conn = req->conn;
        req->job_rc = req->commit_fn(req);
        atomic_store(&req->job_done, true);
        atomic_fetch_sub(&srv->metrics.commits_waiting, 1);
        /* From here on req belongs to the I/O thread again: it may be
         * freed as soon as the connection is resumed. */
        MHD_resume_connection(conn);
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
    pthread_cond_init(&commits->queued_cond, NULL);
    commits->queue_max = count * COMMIT_QUEUE_PER_THREAD;
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
    pthread_cond_broadcast(&commits->queued_cond);
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
    pthread_cond_destroy(&commits->queued_cond);
    free(commits);
    srv->commits = NULL;
}

/* Queue req for a commit thread, its connection suspended; false: the
 * queue is full or the node is stopping. */
static bool commit_queue(struct serve_commits *commits, struct serve_request *req, serve_job_fn fn)
{
    bool queued = false;

    pthread_mutex_lock(&commits->lock);
    if (!commits->stopping && commits->queued < commits->queue_max) {
        req->commit_fn = fn;
        req->commit_next = NULL;
        req->job_started = true;
        atomic_fetch_add(&req->srv->metrics.commits_waiting, 1);
        /* Suspended before a thread can see it, and so before it can be
         * resumed. */
        MHD_suspend_connection(req->conn);
        if (commits->tail)
            commits->tail->commit_next = req;
        else
            commits->head = req;
        commits->tail = req;
        commits->queued++;
        pthread_cond_signal(&commits->queued_cond);
        queued = true;
    }
    pthread_mutex_unlock(&commits->lock);
    return queued;
}

enum MHD_Result serve_commit_run(struct serve_request *req, serve_job_fn fn)
{
    struct serve_commits *commits = req->srv->commits;

    if (commits && !serve_client_may_half_close(req->conn) && commit_queue(commits, req, fn))
        return MHD_YES;
    atomic_fetch_add(&req->srv->metrics.commits_on_io_threads, 1);
    req->job_rc = fn(req);
    atomic_store(&req->job_done, true);
    return req->spec->handler(req);
}
