/* job.c - maintenance calls that may take long (POST /v1/verify
 * hashes the whole store, POST /v1/gc walks it) run on a thread of their
 * own, one at a time in the whole node, while their connection waits
 * suspended. Run on an I/O thread, they would stall every other request
 * that libmicrohttpd had given that thread; run several at once, a client
 * with the write token could keep the disks and cores busy. A second one
 * while one runs gets 503 with Retry-After. A client that says
 * Connection: close (or has half-closed) gets its job run on its I/O
 * thread instead (see serve_job_run), and so does every client under
 * --io-model per-connection, where that thread is the connection's own
 * (and where libmicrohttpd 0.9.75 can lose a resume: the suspended
 * connection's thread and the daemon's both wait on one event, and the
 * first to wake may clear it before the other has seen it). */
#include "node.h"

#include <errno.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>

struct serve_jobs {
    pthread_mutex_t lock;
    pthread_cond_t idle;
    bool running;     /* a job has not finished its call */
    unsigned threads; /* job threads alive (one may still be resuming) */
    bool stopping;    /* draining: no new jobs */
};

struct job_start {
    struct serve_request *req;
    serve_job_fn fn;
};

int serve_jobs_start(struct serve_server *srv)
{
    struct serve_jobs *jobs = calloc(1, sizeof *jobs);
    if (!jobs)
        return ENOMEM;
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_cond_init(&jobs->idle, NULL);
    srv->jobs = jobs;
    return 0;
}

void serve_jobs_stop(struct serve_server *srv)
{
    struct serve_jobs *jobs = srv->jobs;
    if (!jobs)
        return;
    pthread_mutex_lock(&jobs->lock);
    jobs->stopping = true;
    if (jobs->running)
        fprintf(stderr, "mdbx serve: waiting for the running verify/gc to finish\n");
    while (jobs->threads)
        pthread_cond_wait(&jobs->idle, &jobs->lock);
    pthread_mutex_unlock(&jobs->lock);
}

void serve_jobs_free(struct serve_server *srv)
{
    struct serve_jobs *jobs = srv->jobs;
    if (!jobs)
        return;
    pthread_mutex_destroy(&jobs->lock);
    pthread_cond_destroy(&jobs->idle);
    free(jobs);
    srv->jobs = NULL;
}

/* The job's slot is free again; with thread_too, so is its thread count. */
static void jobs_release(struct serve_jobs *jobs, bool thread_too)
{
    pthread_mutex_lock(&jobs->lock);
    jobs->running = false;
    if (thread_too)
        jobs->threads--;
    pthread_cond_broadcast(&jobs->idle);
    pthread_mutex_unlock(&jobs->lock);
}

bool serve_client_may_half_close(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const char *connection = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                         MHD_HTTP_HEADER_CONNECTION);
    char byte;
    return (connection && strcasecmp(connection, "close") == 0) ||
           (info && recv(info->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0);
}

static void *job_main(void *cls)
{
    struct job_start start = *(struct job_start *)cls;
    struct serve_request *req = start.req;
    struct serve_jobs *jobs = req->srv->jobs;
    struct MHD_Connection *conn = req->conn;

    free(cls);
    req->job_rc = start.fn(req);
    atomic_store(&req->job_done, true);
    /* The next job may start as soon as this one's client has its reply:
     * free the slot before resuming. */
    jobs_release(jobs, false);
    /* From here on req belongs to the I/O thread again: it may be freed as
     * soon as the connection is resumed. */
    MHD_resume_connection(conn);
    pthread_mutex_lock(&jobs->lock);
    jobs->threads--;
    pthread_cond_broadcast(&jobs->idle);
    pthread_mutex_unlock(&jobs->lock);
    return NULL;
}

enum MHD_Result serve_job_run(struct serve_request *req, serve_job_fn fn)
{
    struct serve_jobs *jobs = req->srv->jobs;
    struct job_start *start = malloc(sizeof *start);
    pthread_attr_t attr;
    pthread_t thread;
    bool busy;

    if (!start)
        return serve_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    pthread_mutex_lock(&jobs->lock);
    busy = jobs->running || jobs->stopping;
    if (!busy) {
        jobs->running = true;
        jobs->threads++;
    }
    pthread_mutex_unlock(&jobs->lock);
    if (!busy && (req->srv->cfg->io_model == SERVE_IO_PER_CONNECTION ||
                  serve_client_may_half_close(req->conn))) {
        /* libmicrohttpd 0.9.75 closes a resumed connection as soon as it
         * reads the end of file of a client that has shut down its sending
         * side, before the handler can answer. Such clients (that, or one
         * that says Connection: close, as clients that half-close do) get
         * the job run here, on the I/O thread: still one at a time. */
        free(start);
        req->job_rc = fn(req);
        jobs_release(jobs, true);
        return serve_job_reply(req);
    }
    if (busy) {
        free(start);
        atomic_fetch_add(&req->srv->metrics.jobs_refused, 1);
        /* ESTATE: the call is not valid now (a client that only read the
         * status would take 503 for ENOMEM) */
        req->extra_header[0] = MHD_HTTP_HEADER_RETRY_AFTER;
        req->extra_header[1] = "5";
        return serve_reply_code(req, MINIDBX_ESTATE, MHD_HTTP_SERVICE_UNAVAILABLE,
                                "a verify or gc is already running; try again later");
    }
    *start = (struct job_start){ req, fn };
    req->job_started = true;
    /* Suspend first: the thread may resume the connection at once. */
    MHD_suspend_connection(req->conn);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&thread, &attr, job_main, start);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(start);
        req->job_started = false;
        MHD_resume_connection(req->conn);
        jobs_release(jobs, true);
        return serve_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot start a thread");
    }
    return MHD_YES;
}

enum MHD_Result serve_job_reply(struct serve_request *req)
{
    cJSON *json = req->job_json;
    req->job_json = NULL;
    if (req->job_rc < 0) {
        /* The same error reply as any other failure: status, code header. */
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(json, "error");
        enum MHD_Result result = serve_reply_code(req, req->job_rc, 0, "%s",
                                                  cJSON_IsString(error) ? error->valuestring
                                                                        : minidbx_strerror(req->job_rc));
        cJSON_Delete(json);
        return result;
    }
    return serve_reply_json(req, MHD_HTTP_OK, json);
}
