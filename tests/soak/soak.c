/* soak.c - a long, mixed load on one `mdbx serve`, counting every status
 * that is not the one expected, and watching the node's memory and file
 * descriptors for growth.
 *
 * It starts the node on a fresh store, then keeps CONNECTIONS requests in
 * flight (libcurl multi, one handle per connection, reused) until TOTAL
 * requests have completed. The mix: PUT a new 4 KiB object (201), DELETE
 * one (204), GET a 4 KiB object (200, 4096 bytes), HEAD one (200), HEAD or
 * GET an id never stored (404), GET the 1 MiB object (200, 1 MiB). A pool
 * of stored ids says what each request must answer; an id is never deleted
 * while another request on it is in flight, so every expectation is exact.
 * PUTs and DELETEs balance around POOL_TARGET objects, so the store (and
 * the node's mapped metadata) stays bounded.
 *
 * Every SAMPLES-th of the run it prints the node's VmRSS and RssAnon (from
 * /proc/PID/status) and its open fds (/proc/PID/fd). After warm-up (10% of
 * the run) and at the end, with nothing in flight and the 64 connections
 * open, it samples the idle node. It fails if any status was unexpected,
 * or if from the first idle sample to the last RssAnon grew by more than
 * RSS_GROWTH_KIB or the open fds by more than FD_GROWTH.
 *
 * usage: soak MDBX TOTAL_REQUESTS */
#include "util.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONNECTIONS 64
#define SMALL_SIZE 4096u
#define BIG_SIZE (1024u * 1024u)
#define POOL_TARGET 2000u
#define POOL_CAPACITY (4u * POOL_TARGET)
#define SAMPLES 20
#define MAX_REPORTED 20
/* flat: the last sample within this of the one after warm-up */
#define RSS_GROWTH_KIB (16u * 1024u)
#define FD_GROWTH 4

typedef enum { REQ_PUT, REQ_DELETE, REQ_GET, REQ_HEAD, REQ_HEAD_MISSING, REQ_GET_MISSING, REQ_GET_BIG,
               REQ_KINDS } request_kind;
static const char *const KIND_NAMES[REQ_KINDS] = { "PUT 4K", "DELETE", "GET 4K", "HEAD", "HEAD missing",
                                                   "GET missing", "GET 1M" };

typedef struct {
    minidbx_id id;
    unsigned in_flight;
    int live; /* stored and acknowledged; index in live_slots */
    size_t live_index;
} slot;

typedef struct {
    CURL *curl;
    request_kind kind;
    size_t slot_index;
    unsigned char put_body[SMALL_SIZE];
    size_t body_bytes;
    char url[512];
} connection;

static char base_url[256];
static test_rng rng;
static slot *slots;
static size_t *free_slots, free_count;
static size_t *live_slots, live_count;
static unsigned long long unexpected, completed, by_kind[REQ_KINDS];
static unsigned reported;
static minidbx_id big_id;

static void unexpected_result(const connection *c, long status, CURLcode code)
{
    unexpected++;
    if (++reported <= MAX_REPORTED)
        printf("unexpected: %s %s -> HTTP %ld, %s, %zu body bytes\n", KIND_NAMES[c->kind], c->url, status,
               curl_easy_strerror(code), c->body_bytes);
}

static void live_add(size_t index)
{
    slots[index].live = 1;
    slots[index].live_index = live_count;
    live_slots[live_count++] = index;
}

static void live_remove(size_t index)
{
    size_t at = slots[index].live_index;
    live_slots[at] = live_slots[--live_count];
    slots[live_slots[at]].live_index = at;
    slots[index].live = 0;
}

static size_t count_body(char *data, size_t size, size_t count, void *ctx)
{
    (void)data;
    ((connection *)ctx)->body_bytes += size * count;
    return size * count;
}

static void set_url(connection *c, const minidbx_id *id)
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    snprintf(c->url, sizeof c->url, "%s/v1/objects/%s", base_url, hex);
}

/* A live slot with nothing in flight, for a DELETE; SIZE_MAX if none found. */
static size_t pick_idle_live(void)
{
    for (int tries = 0; tries < 8 && live_count > 0; tries++) {
        size_t index = live_slots[rng_below(&rng, live_count)];
        if (slots[index].in_flight == 0)
            return index;
    }
    return SIZE_MAX;
}

/* Until the pool holds POOL_TARGET objects, half the requests are PUTs;
 * then 3% PUT and 3% DELETE keep it there, and the rest read. */
static request_kind pick_kind(void)
{
    unsigned r = (unsigned)rng_below(&rng, 100);
    int can_put = free_count > 0;
    if (live_count == 0 || (can_put && (r < 3 || (live_count < POOL_TARGET && r < 50))))
        return REQ_PUT;
    if (r < 6)
        return live_count > POOL_TARGET / 2 ? REQ_DELETE : REQ_GET;
    if (r < 61)
        return REQ_GET;
    if (r < 81)
        return REQ_HEAD;
    if (r < 87)
        return REQ_HEAD_MISSING;
    if (r < 93)
        return REQ_GET_MISSING;
    if (r < 94)
        return REQ_GET_BIG;
    return REQ_GET;
}

static void start_request(CURLM *multi, connection *c)
{
    minidbx_id missing;
    CURL *curl = c->curl;
    curl_easy_reset(curl); /* keeps the connection */
    c->kind = pick_kind();
    c->body_bytes = 0;
    c->slot_index = SIZE_MAX;
    if (c->kind == REQ_DELETE && (c->slot_index = pick_idle_live()) == SIZE_MAX)
        c->kind = REQ_GET;
    switch (c->kind) {
    case REQ_PUT:
        c->slot_index = free_slots[--free_count];
        rng_fill(&rng, c->put_body, SMALL_SIZE);
        minidbx_id_of(&slots[c->slot_index].id, c->put_body, SMALL_SIZE);
        set_url(c, &slots[c->slot_index].id);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, c->put_body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)SMALL_SIZE);
        break;
    case REQ_DELETE:
        live_remove(c->slot_index); /* nobody else asks for it from now on */
        set_url(c, &slots[c->slot_index].id);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE");
        break;
    case REQ_GET:
    case REQ_HEAD:
        c->slot_index = live_slots[rng_below(&rng, live_count)];
        set_url(c, &slots[c->slot_index].id);
        curl_easy_setopt(curl, CURLOPT_NOBODY, c->kind == REQ_HEAD ? 1L : 0L);
        break;
    case REQ_HEAD_MISSING:
    case REQ_GET_MISSING:
        rng_fill(&rng, missing.bytes, sizeof missing.bytes);
        set_url(c, &missing);
        curl_easy_setopt(curl, CURLOPT_NOBODY, c->kind == REQ_HEAD_MISSING ? 1L : 0L);
        break;
    case REQ_GET_BIG:
        set_url(c, &big_id);
        break;
    case REQ_KINDS:
        break;
    }
    if (c->slot_index != SIZE_MAX)
        slots[c->slot_index].in_flight++;
    curl_easy_setopt(curl, CURLOPT_URL, c->url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, count_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(curl, CURLOPT_PRIVATE, c);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 60L);
    curl_multi_add_handle(multi, curl);
}

/* Was the answer the one this request must get? */
static void finish_request(connection *c, CURLcode code)
{
    long status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    int ok = code == CURLE_OK;
    switch (c->kind) {
    case REQ_PUT:
        ok = ok && (status == 201 || status == 200);
        if (ok)
            live_add(c->slot_index);
        else
            free_slots[free_count++] = c->slot_index;
        break;
    case REQ_DELETE:
        ok = ok && status == 204;
        free_slots[free_count++] = c->slot_index;
        break;
    case REQ_GET:
        ok = ok && status == 200 && c->body_bytes == SMALL_SIZE;
        break;
    case REQ_HEAD:
        ok = ok && status == 200 && c->body_bytes == 0;
        break;
    case REQ_HEAD_MISSING:
    case REQ_GET_MISSING:
        ok = ok && status == 404;
        break;
    case REQ_GET_BIG:
        ok = ok && status == 200 && c->body_bytes == BIG_SIZE;
        break;
    case REQ_KINDS:
        break;
    }
    if (c->slot_index != SIZE_MAX)
        slots[c->slot_index].in_flight--;
    if (!ok)
        unexpected_result(c, status, code);
    by_kind[c->kind]++;
    completed++;
}

/* ---- the node's resources ---- */

typedef struct {
    unsigned long long requests;
    long rss_kib, rss_anon_kib, fds;
    double seconds;
} sample;

static long status_field(const char *text, const char *field)
{
    const char *p = strstr(text, field);
    return p ? atol(p + strlen(field)) : -1;
}

static void take_sample(pid_t pid, sample *out, double start_ms)
{
    char path[64], text[4096] = "";
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        size_t n = fread(text, 1, sizeof text - 1, f);
        text[n] = '\0';
        fclose(f);
    }
    out->rss_kib = status_field(text, "VmRSS:");
    out->rss_anon_kib = status_field(text, "RssAnon:");
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    out->fds = dir_count_entries(path);
    out->requests = completed;
    out->seconds = (now_ms() - start_ms) / 1000;
    printf("sample: %llu requests, %.0f s, node VmRSS %ld KiB, RssAnon %ld KiB, %ld open fds, %llu unexpected\n",
           out->requests, out->seconds, out->rss_kib, out->rss_anon_kib, out->fds, unexpected);
    fflush(stdout);
}

/* PUT bytes once, outside the measured run (the 1 MiB object). */
static int put_once(const unsigned char *data, size_t size, minidbx_id *id)
{
    connection c = { 0 };
    minidbx_id_of(id, data, size);
    set_url(&c, id);
    CURL *curl = curl_easy_init();
    curl_easy_setopt(curl, CURLOPT_URL, c.url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, data);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, count_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c);
    long status = 0;
    CURLcode code = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return code == CURLE_OK && status == 201 ? 0 : -1;
}

static int run(pid_t pid, unsigned long long total)
{
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)CONNECTIONS);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)CONNECTIONS);
    static connection conns[CONNECTIONS];
    unsigned long long started = 0;
    for (int i = 0; i < CONNECTIONS && started < total; i++, started++) {
        conns[i].curl = curl_easy_init();
        start_request(multi, &conns[i]);
    }
    sample samples[SAMPLES + 2], idle_warm = { 0 }, idle_end;
    int sample_count = 0;
    unsigned long long every = total / SAMPLES ? total / SAMPLES : 1;
    /* After warm-up the load pauses until nothing is in flight, for a
     * sample of the idle node to compare with the one at the end. */
    unsigned long long warm_up = total / 10;
    int warm_taken = 0;
    double start = now_ms();
    int running = 1;
    while (running > 0 || started < total) {
        if (!warm_taken && running == 0 && completed >= warm_up) {
            printf("idle after warm-up: ");
            take_sample(pid, &idle_warm, start);
            warm_taken = 1;
            for (int i = 0; i < CONNECTIONS && started < total; i++, started++)
                start_request(multi, &conns[i]);
        }
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            connection *c;
            CURLcode code = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            curl_multi_remove_handle(multi, c->curl);
            finish_request(c, code);
            if (completed % every == 0 && sample_count < SAMPLES + 1)
                take_sample(pid, &samples[sample_count++], start);
            if (started < total && (warm_taken || started < warm_up)) {
                started++;
                start_request(multi, c);
                running++;
            }
        }
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    double seconds = (now_ms() - start) / 1000;
    printf("idle at the end: ");
    take_sample(pid, &idle_end, start);
    for (int i = 0; i < CONNECTIONS; i++)
        if (conns[i].curl)
            curl_easy_cleanup(conns[i].curl);
    curl_multi_cleanup(multi);

    printf("%llu requests over %d connections in %.0f s (%.0f/s), %llu unexpected statuses\n", completed,
           CONNECTIONS, seconds, (double)completed / seconds, unexpected);
    for (int k = 0; k < REQ_KINDS; k++)
        printf("  %-13s %llu\n", KIND_NAMES[k], by_kind[k]);
    int failed = unexpected > 0 || completed != total;
    const sample *warm = &idle_warm, *last = &idle_end;
    printf("idle node after warm-up (%llu requests): RssAnon %ld KiB, %ld fds; at the end: RssAnon %ld KiB "
           "(%+ld), %ld fds (%+ld)\n", warm->requests, warm->rss_anon_kib, warm->fds, last->rss_anon_kib,
           last->rss_anon_kib - warm->rss_anon_kib, last->fds, last->fds - warm->fds);
    if (last->rss_anon_kib > warm->rss_anon_kib + (long)RSS_GROWTH_KIB) {
        printf("FAIL: the node's anonymous memory grew by more than %u KiB\n", RSS_GROWTH_KIB);
        failed = 1;
    }
    if (last->fds > warm->fds + FD_GROWTH) {
        printf("FAIL: the node's open fds grew by more than %d\n", FD_GROWTH);
        failed = 1;
    }
    return failed;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: soak MDBX TOTAL_REQUESTS\n");
        return 2;
    }
    unsigned long long total = strtoull(argv[2], NULL, 10);
    signal(SIGPIPE, SIG_IGN);
    uint64_t seed = seed_from_clock();
    rng_seed(&rng, seed);
    const char *tmp = getenv("TMPDIR");
    char store[PATH_MAX - 32];
    snprintf(store, sizeof store, "%s/minidbx-soak-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(store) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    slots = calloc(POOL_CAPACITY, sizeof *slots);
    free_slots = calloc(POOL_CAPACITY, sizeof *free_slots);
    live_slots = calloc(POOL_CAPACITY, sizeof *live_slots);
    unsigned char *big = malloc(BIG_SIZE);
    if (!slots || !free_slots || !live_slots || !big)
        return 1;
    for (size_t i = 0; i < POOL_CAPACITY; i++)
        free_slots[free_count++] = POOL_CAPACITY - 1 - i;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pid_t pid;
    static const char *const extra[] = { "--max-connections-per-ip", "256", NULL };
    if (serve_start(argv[1], store, extra, &pid, base_url, sizeof base_url) != 0) {
        printf("FAIL: mdbx serve did not start\n");
        return 1;
    }
    printf("seed %llu, %llu requests, %d connections, node pid %d on %s\n", (unsigned long long)seed, total,
           CONNECTIONS, (int)pid, base_url);
    rng_fill(&rng, big, BIG_SIZE);
    int failed = put_once(big, BIG_SIZE, &big_id) != 0;
    if (failed)
        printf("FAIL: the 1 MiB object could not be put\n");
    else
        failed = run(pid, total);
    if (serve_stop(pid) != 0) {
        printf("FAIL: the node did not stop cleanly\n");
        failed = 1;
    }
    curl_global_cleanup();
    rm_rf(store);
    free(big);
    free(slots);
    free(free_slots);
    free(live_slots);
    return failed;
}
