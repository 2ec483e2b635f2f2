/* metrics.c - counters kept with atomics (no lock on the request
 * path) and GET /metrics in the Prometheus text format. */
#include "node.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The statuses counted one by one; the last slot takes any other. 499:
 * the client went away before a reply. */
static const unsigned status_slots[SERVE_STATUS_SLOTS] = {
    200, 201, 204, 206, 304, 400, 401, 403, 404, 405,
    409, 413, 416, 422, 429, 499, 500, 501, 507, 0,
};

/* Upper bounds of the latency buckets, in microseconds. */
static const unsigned latency_bounds_us[SERVE_LATENCY_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, 5000000, 30000000,
};

void serve_metrics_record(struct serve_metrics *m, size_t route_slot, unsigned status,
                          int64_t elapsed_ns)
{
    size_t slot = 0, bucket = 0;
    uint64_t elapsed_us = elapsed_ns > 0 ? (uint64_t)elapsed_ns / 1000 : 0;

    while (slot < SERVE_STATUS_SLOTS - 1 && status_slots[slot] != status)
        slot++;
    while (bucket < SERVE_LATENCY_BUCKETS && elapsed_us > latency_bounds_us[bucket])
        bucket++;
    if (route_slot >= SERVE_ROUTE_SLOTS) /* refused at start (daemon.c) */
        route_slot = 0;
    atomic_fetch_add(&m->requests[route_slot][slot], 1);
    atomic_fetch_add(&m->latency[bucket], 1);
    atomic_fetch_add(&m->latency_sum_us, elapsed_us);
}

static void print_requests(FILE *out, struct serve_metrics *m)
{
    size_t slots = serve_route_slots();
    size_t label_slot[SERVE_ROUTE_SLOTS]; /* the first slot with each slot's label */

    /* Routes may share a label (their counters are printed together): find
     * each one's first slot once, not per status. */
    for (size_t r = 0; r < slots && r < SERVE_ROUTE_SLOTS; r++) {
        label_slot[r] = r;
        for (size_t earlier = 0; earlier < r; earlier++)
            if (strcmp(serve_route_in_slot(earlier)->metric, serve_route_in_slot(r)->metric) == 0) {
                label_slot[r] = earlier;
                break;
            }
    }
    fprintf(out, "# HELP minidbx_http_requests_total Requests by route and status.\n"
                 "# TYPE minidbx_http_requests_total counter\n");
    for (size_t r = 0; r < slots && r < SERVE_ROUTE_SLOTS; r++) {
        const char *label = serve_route_in_slot(r)->metric;
        if (label_slot[r] != r)
            continue; /* printed with the first route of its label */
        for (int s = 0; s < SERVE_STATUS_SLOTS; s++) {
            unsigned long long n = 0;
            for (size_t same = r; same < slots && same < SERVE_ROUTE_SLOTS; same++)
                if (label_slot[same] == r)
                    n += atomic_load(&m->requests[same][s]);
            if (!n)
                continue;
            if (status_slots[s])
                fprintf(out, "minidbx_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n",
                        label, status_slots[s], n);
            else
                fprintf(out, "minidbx_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                        label, n);
        }
    }
}

static void print_latency(FILE *out, struct serve_metrics *m)
{
    unsigned long long cumulative = 0;

    fprintf(out, "# HELP minidbx_http_request_duration_seconds Time from headers to completion.\n"
                 "# TYPE minidbx_http_request_duration_seconds histogram\n");
    for (int b = 0; b < SERVE_LATENCY_BUCKETS; b++) {
        cumulative += atomic_load(&m->latency[b]);
        fprintf(out, "minidbx_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                latency_bounds_us[b] / 1e6, cumulative);
    }
    cumulative += atomic_load(&m->latency[SERVE_LATENCY_BUCKETS]);
    fprintf(out, "minidbx_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cumulative);
    fprintf(out, "minidbx_http_request_duration_seconds_sum %.6f\n",
            atomic_load(&m->latency_sum_us) / 1e6);
    fprintf(out, "minidbx_http_request_duration_seconds_count %llu\n", cumulative);
}

static void print_value(FILE *out, const char *name, const char *type, const char *help,
                        long long value)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type, name, value);
}

/* The plain counters of struct serve_metrics, in the order printed. */
static const struct {
    const char *name;
    const char *help;
    size_t offset; /* of an atomic_ullong in struct serve_metrics */
} counters[] = {
    { "minidbx_http_received_bytes_total", "Request body bytes.",
      offsetof(struct serve_metrics, bytes_in) },
    { "minidbx_http_sent_bytes_total", "Response body bytes.",
      offsetof(struct serve_metrics, bytes_out) },
    { "minidbx_http_rate_limited_total", "Requests refused with 429.",
      offsetof(struct serve_metrics, rate_limited) },
    { "minidbx_http_slow_clients_dropped_total", "Connections dropped at the header deadline.",
      offsetof(struct serve_metrics, slow_clients_dropped) },
    { "minidbx_http_slow_bodies_dropped_total", "Requests dropped for a body slower than --min-body-rate.",
      offsetof(struct serve_metrics, slow_bodies_dropped) },
    { "minidbx_http_slow_readers_dropped_total", "Replies cut: read slower than --min-body-rate.",
      offsetof(struct serve_metrics, slow_readers_dropped) },
    { "minidbx_http_corrupt_objects_refused_total",
      "GETs refused or cut short: the bytes did not match the id.",
      offsetof(struct serve_metrics, corrupt_objects_refused) },
    { "minidbx_http_verified_memory_sends_total",
      "GETs sent from verified bytes kept in memory (--body-cache).",
      offsetof(struct serve_metrics, memory_sends) },
    { "minidbx_http_verified_file_sends_total",
      "GETs of a blob file remembered as verified, sent without hashing (--verified-cache).",
      offsetof(struct serve_metrics, file_sends) },
    { "minidbx_http_memory_trims_total",
      "Times the node unmapped the resident pages of its store's read-only file mappings.",
      offsetof(struct serve_metrics, memory_trims) },
    { "minidbx_http_jobs_refused_total", "POST /v1/verify or /v1/gc refused with 503: one was running.",
      offsetof(struct serve_metrics, jobs_refused) },
    { "minidbx_http_commits_on_io_threads_total",
      "Writes committed on an I/O thread, not on a commit thread (--commit-threads).",
      offsetof(struct serve_metrics, commits_on_io_threads) },
    { "minidbx_http_commit_batches_total", "Batches of small puts committed at once by a commit thread.",
      offsetof(struct serve_metrics, commit_batches) },
    { "minidbx_http_batched_commits_total", "Puts stored by those batches.",
      offsetof(struct serve_metrics, batched_commits) },
};

static void print_store(FILE *out, minidbx *db)
{
    minidbx_store_info info;
    if (minidbx_info(db, &info) < 0)
        return;
    print_value(out, "minidbx_store_objects", "gauge", "Objects in the store.", (long long)info.objects);
    print_value(out, "minidbx_store_bytes", "gauge", "Bytes of objects in the store.",
                (long long)info.bytes);
    print_value(out, "minidbx_store_names", "gauge", "Names in the store.", (long long)info.names);
}

/* A label value: backslash, quote and newline escaped. */
static void print_label(FILE *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            fputc('\\', out);
        if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
}

static void print_node_series(FILE *out, const minidbx_node_info *nodes, size_t count, const char *name,
                              const char *type, const char *help, int which)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < count; i++) {
        fprintf(out, "%s{node=\"", name);
        print_label(out, nodes[i].location);
        switch (which) {
        case 0: fprintf(out, "\"} %d\n", nodes[i].up); break;
        case 1: fprintf(out, "\"} %llu\n", (unsigned long long)nodes[i].requests); break;
        case 2: fprintf(out, "\"} %llu\n", (unsigned long long)nodes[i].failures); break;
        case 3: fprintf(out, "\"} %.6f\n", nodes[i].latency_us_avg / 1e6); break;
        default: fprintf(out, "\"} %.6f\n", nodes[i].latency_us_max / 1e6); break;
        }
    }
}

/* A gateway (a store made of nodes): each node's state. */
static void print_nodes(FILE *out, minidbx *db)
{
    enum { NODES_MAX = 64 };
    minidbx_node_info *nodes = malloc(NODES_MAX * sizeof *nodes);
    size_t count = 0;

    if (nodes && minidbx_nodes(db, NULL, nodes, NODES_MAX, &count) == 0) {
        print_node_series(out, nodes, count, "minidbx_cluster_node_up", "gauge",
                          "1 if the node is in use, 0 if it is down.", 0);
        print_node_series(out, nodes, count, "minidbx_cluster_node_requests_total", "counter",
                          "Calls made to the node.", 1);
        print_node_series(out, nodes, count, "minidbx_cluster_node_failures_total", "counter",
                          "Calls to the node that failed.", 2);
        print_node_series(out, nodes, count, "minidbx_cluster_node_latency_seconds_mean", "gauge",
                          "Mean time of a call to the node.", 3);
        print_node_series(out, nodes, count, "minidbx_cluster_node_latency_seconds_max", "gauge",
                          "Slowest call to the node.", 4);
    }
    free(nodes);
}

enum MHD_Result serve_metrics_page(struct serve_request *req)
{
    struct serve_metrics *m = &req->srv->metrics;
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);

    if (!out)
        return MHD_NO;
    print_requests(out, m);
    print_latency(out, m);
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
        print_value(out, counters[i].name, "counter", counters[i].help,
                    (long long)atomic_load((atomic_ullong *)((char *)m + counters[i].offset)));
    print_value(out, "minidbx_http_connections_open", "gauge", "Open connections.",
                atomic_load(&m->connections_open));
    print_value(out, "minidbx_http_connections_max", "gauge",
                "Connections the node takes at most: --max-connections, or what the limit on open files holds.",
                (long long)req->srv->max_connections);
    print_value(out, "minidbx_http_requests_in_flight", "gauge", "Requests being served.",
                atomic_load(&m->requests_in_flight));
    print_value(out, "minidbx_http_commits_waiting", "gauge",
                "Writes queued for a commit thread or in its commit, their connections suspended.",
                atomic_load(&m->commits_waiting));
    print_value(out, "minidbx_http_commits_queued", "gauge",
                "Of those, the ones no commit thread has taken yet.", atomic_load(&m->commits_queued));
    print_value(out, "minidbx_http_verified_memory_bytes", "gauge",
                "Verified blob bytes in memory: kept, or held by replies being sent.",
                (long long)serve_copy_memory_bytes(req->srv));
    print_store(out, req->srv->db);
    print_nodes(out, req->srv->db);
    if (fclose(out) != 0) {
        free(text);
        return MHD_NO;
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(size, text, free);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    req->reply_bytes = size;
    return serve_queue(req, MHD_HTTP_OK, resp);
}
