/* router.c - a request's life: framing checked, its route found
 * (routes.c), access checked (rate, token, read-only), the body
 * taken (body.c), the handler called, the metrics counted at the end. */
#include "node.h"

#include <stdlib.h>
#include <string.h>

/* ---- access: tokens and rates ---------------------------------------------- */

static enum MHD_Result check_access(struct serve_request *req, bool *replied)
{
    const struct minidbx_server_config *cfg = req->srv->cfg;
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

    /* Before anything else: a request whose framing is ambiguous is
     * answered 400 and its connection closed, so that nothing sent after
     * its headers is ever read as a request. */
    const char *framing = serve_request_framing_problem(conn);
    bool nul = serve_conn_take_nul(srv, conn);
    /* HTTP/1.0 and 1.1 only: libmicrohttpd passes other versions through. */
    if (!framing && !nul && strcmp(version, MHD_HTTP_VERSION_1_1) != 0 &&
        strcmp(version, MHD_HTTP_VERSION_1_0) != 0)
        framing = "not an HTTP/1.0 or HTTP/1.1 request line";
    if (!framing && !nul)
        framing = serve_request_head_problem(conn, method, url, version);
    if (framing || nul) {
        req->spec = &serve_unknown_route;
        req->close_connection = true;
        return serve_reply_code(req, MINIDBX_EINVAL, MHD_HTTP_BAD_REQUEST, "%s",
                                framing ? framing : "a NUL byte (%00) in the URL or query");
    }
    req->spec = serve_find_route(method, url, &req->path_arg, &path_known);
    if (!req->spec) {
        req->spec = &serve_unknown_route;
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
    return serve_body_begin(req, &replied);
}

enum MHD_Result serve_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct serve_request *req = *con_cls;

    if (!req)
        return request_begin(cls, conn, url, method, version, con_cls);
    if (*upload_size) {
        size_t size = *upload_size;
        *upload_size = 0;
        return req->replied ? MHD_YES : serve_body_chunk(req, upload_data, size);
    }
    if (req->replied)
        return MHD_YES;
    if (req->job_started) /* resumed: the job is done */
        return req->spec->handler(req);
    serve_conn_body_done(req->srv, conn);
    /* the end of the body: the post processor hands over what it held */
    if (req->post && MHD_destroy_post_processor(req->post) != MHD_YES)
        serve_body_fail(req, MINIDBX_EINVAL, "truncated multipart/form-data body");
    req->post = NULL;
    /* cJSON stops at a NUL: "id\u0000junk" would read as "id" */
    if (req->small && serve_json_has_nul(req->small, req->small_len))
        serve_body_fail(req, MINIDBX_EINVAL, "a NUL character in the JSON body");
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
    serve_copy_release(req->copy);
    free(req);
}

void serve_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct serve_server *srv = cls;
    struct serve_request *req = *con_cls;

    if (!req)
        return;
    *con_cls = NULL;
    if (code == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        atomic_fetch_add(&srv->metrics.bytes_out, req->reply_bytes);
    unsigned status = req->replied ? req->status : 499;
    serve_metrics_record(&srv->metrics, req->spec ? serve_route_slot(req->spec) : 0, status,
                         serve_now_ns() - req->start_ns);
    serve_access_log(srv, conn, req, status,
                     code == MHD_REQUEST_TERMINATED_COMPLETED_OK ? req->reply_bytes : 0);
    atomic_fetch_sub(&srv->metrics.requests_in_flight, 1);
    serve_conn_request_done(srv, conn);
    request_free(req);
    serve_memory_request_done(srv);
}
