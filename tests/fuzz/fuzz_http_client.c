/* fuzz_http_client.c - what the http:// backend makes of a node's replies.
 *
 * A thread of this process listens on 127.0.0.1 and answers every request
 * with the input as the raw response: "HTTP/1.1 STATUS X" and a line end,
 * then the input after its first byte (headers, body, more responses:
 * anything). It reads
 * each request whole first, and closes after answering, so that no call
 * waits on it. One library call per input goes to it.
 *
 * Input: byte 0: the low 4 bits pick STATUS from statuses[], the high 4
 * bits the call (see run_call). The status line is ours, whole, so that
 * the client never takes an input for a dead node: it retries those after
 * a pause, and a fuzzer must not wait.
 *
 * Properties (the promises of minidbx.h): bytes that get and a reader hand
 * out hash to the id asked for; a call returns 0 or a documented code;
 * what a listing or a name lookup fills in stays within its buffers and
 * is terminated; missing answers only ids it was asked about. */
#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
#include <minidbx.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_MAX (256u * 1024u)
#define READ_DEADLINE_MS 5000
#define LIST_CAPACITY 8

static const unsigned statuses[16] = { 200, 200, 201, 204, 206, 304, 400, 401,
                                       404, 409, 413, 422, 500, 501, 507, 302 };

static int listen_fd = -1;
static unsigned short port;
static pthread_t listener;
static atomic_bool stopping;
static char url[64];
static minidbx *db; /* opened afresh for each input */

/* The response being served, set before each call (the call waits). */
static pthread_mutex_t response_lock = PTHREAD_MUTEX_INITIALIZER;
static char *response;
static size_t response_size;

/* ---- no pauses --------------------------------------------------------------- */

/* The client pauses 100 and 200 ms before it retries a request that got
 * no reply (http.c); a fuzzer would spend most of its time there. This
 * nanosleep, which the library's calls bind to, skips pauses that short;
 * longer ones (libFuzzer's own, once a second) still sleep. */
#define SKIPPED_PAUSE_MAX_NS 250000000L

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (req->tv_sec == 0 && req->tv_nsec <= SKIPPED_PAUSE_MAX_NS)
        return 0;
    int err = clock_nanosleep(CLOCK_REALTIME, 0, req, rem);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* ---- the fake node ----------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the request: headers, then Content-Length bytes of body. A chunked
 * body (the client's streamed writers) is read to its last chunk. */
static void read_request(int fd)
{
    char *buf = malloc(REQUEST_MAX + 1);
    size_t len = 0, need = 0;
    int64_t deadline = now_ms() + READ_DEADLINE_MS;
    bool chunked = false;
    char *head_end = NULL;

    fuzz_check_setup(buf != NULL, "malloc");
    while (len < REQUEST_MAX && now_ms() < deadline) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, REQUEST_MAX - len, 0);
        if (n < 0 && errno == EINTR) /* libFuzzer's SIGALRM */
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (!head_end && (head_end = strstr(buf, "\r\n\r\n")) != NULL) {
            head_end += 4;
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (cl && cl < head_end)
                need = strtoull(cl + 17, NULL, 10);
            const char *te = strcasestr(buf, "\r\nTransfer-Encoding: chunked");
            chunked = te && te < head_end;
        }
        if (head_end && !chunked && len - (size_t)(head_end - buf) >= need)
            break;
        if (head_end && chunked && len >= 5 && memcmp(buf + len - 5, "0\r\n\r\n", 5) == 0)
            break;
    }
    free(buf);
}

static void *listener_main(void *unused)
{
    (void)unused;
    while (!atomic_load(&stopping)) {
        int fd = accept(listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        if (!atomic_load(&stopping)) {
            read_request(fd);
            pthread_mutex_lock(&response_lock);
            for (size_t sent = 0; sent < response_size;) {
                ssize_t n = send(fd, response + sent, response_size - sent, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    break;
                sent += (size_t)n;
            }
            pthread_mutex_unlock(&response_lock);
            shutdown(fd, SHUT_WR);
        }
        close(fd);
    }
    return NULL;
}

static void set_response(const char *data, size_t size)
{
    pthread_mutex_lock(&response_lock);
    free(response);
    response = malloc(size + 1);
    fuzz_check_setup(response != NULL, "malloc");
    memcpy(response, data, size);
    response_size = size;
    pthread_mutex_unlock(&response_lock);
}

static void stop_listener(void)
{
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(port) };
    atomic_store(&stopping, true);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* wakes accept */
    if (fd >= 0) {
        connect(fd, (struct sockaddr *)&addr, sizeof addr);
        close(fd);
    }
    pthread_join(listener, NULL);
    close(listen_fd);
    free(response);
}

static minidbx_options client_options(void)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.timeout_ms = 5000;
    opts.token = "fuzz-token";
    return opts;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct sockaddr_in addr = { .sin_family = AF_INET };
    socklen_t addr_len = sizeof addr;
    (void)argc, (void)argv;

    signal(SIGPIPE, SIG_IGN);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    fuzz_check_setup(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
                         listen(listen_fd, 64) == 0 &&
                         getsockname(listen_fd, (struct sockaddr *)&addr, &addr_len) == 0,
                     "listen on 127.0.0.1");
    port = ntohs(addr.sin_port);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", port);
    fuzz_check_setup(pthread_create(&listener, NULL, listener_main, NULL) == 0, "pthread_create");
    atexit(stop_listener);
    return 0;
}

/* ---- the calls ----------------------------------------------------------------- */

static void check_code(int rc, const char *call)
{
    if (rc > 0 || (rc < 0 && (rc < MINIDBX_ESTATE || rc > MINIDBX_ENOTFOUND)))
        fuzz_fail("%s returned %d, not a documented code", call, rc);
}

static void check_bytes(const minidbx_id *want, const void *data, size_t size, const char *call)
{
    minidbx_id got;
    fuzz_check_setup(minidbx_id_of(&got, data, size) == 0, "id_of");
    if (!minidbx_id_equal(&got, want))
        fuzz_fail("%s handed out %zu bytes that do not hash to the id asked for", call, size);
}

static void count_problem(void *ctx, minidbx_problem kind, const minidbx_id *id, const char *detail,
                          int repaired)
{
    (void)kind, (void)id, (void)repaired;
    if (!detail)
        fuzz_fail("verify gave a problem without detail");
    (*(size_t *)ctx)++;
}

static void check_name_info(const minidbx_name_info *info, const char *call)
{
    if (strnlen(info->name, sizeof info->name) == sizeof info->name)
        fuzz_fail("%s filled a name without its terminating NUL", call);
}

static void run_call(unsigned which, const minidbx_id *id, const minidbx_id *other)
{
    minidbx_object_info objects[LIST_CAPACITY];
    minidbx_name_info names[LIST_CAPACITY];
    minidbx_name_info name;
    minidbx_store_info info;
    minidbx_verify_report report;
    minidbx_gc_report gc;
    minidbx_id ids[3] = { *id, *other, *id }, missing[3];
    size_t count = SIZE_MAX;
    void *data = NULL;
    size_t size = 0;
    int rc;

    switch (which) {
    case 0: { /* open: the /health check */
        minidbx *opened = NULL;
        minidbx_options opts = client_options();
        check_code(rc = minidbx_open(&opened, url, &opts), "open");
        minidbx_close(opened);
        break;
    }
    case 1:
        check_code(rc = minidbx_get(db, id, &data, &size), "get");
        if (rc == 0)
            check_bytes(id, data, size, "get");
        minidbx_free(data);
        break;
    case 2:
        check_code(rc = minidbx_stat(db, id, &objects[0]), "stat");
        if (rc == 0 && !minidbx_id_equal(&objects[0].id, id))
            fuzz_fail("stat filled in another id");
        break;
    case 3:
        rc = minidbx_exists(db, id);
        if (rc != 1)
            check_code(rc, "exists");
        break;
    case 4:
        check_code(rc = minidbx_name_get(db, "docs/hello.txt", &name), "name_get");
        if (rc == 0)
            check_name_info(&name, "name_get");
        break;
    case 5:
        check_code(rc = minidbx_list(db, NULL, objects, LIST_CAPACITY, &count), "list");
        if (rc == 0 && count > LIST_CAPACITY)
            fuzz_fail("list filled %zu entries into room for %d", count, LIST_CAPACITY);
        break;
    case 6:
        check_code(rc = minidbx_name_list(db, "docs/", NULL, names, LIST_CAPACITY, &count), "name_list");
        if (rc == 0 && count > LIST_CAPACITY)
            fuzz_fail("name_list filled %zu entries into room for %d", count, LIST_CAPACITY);
        for (size_t i = 0; rc == 0 && i < count; i++)
            check_name_info(&names[i], "name_list");
        break;
    case 7:
        check_code(rc = minidbx_missing(db, ids, 3, missing, &count), "missing");
        if (rc == 0 && count > 3)
            fuzz_fail("missing answered %zu of 3 ids", count);
        for (size_t i = 0; rc == 0 && i < count; i++)
            if (!minidbx_id_equal(&missing[i], id) && !minidbx_id_equal(&missing[i], other) &&
                !fuzz_skip_known()) /* crashes/http_client-missing-unasked-id */
                fuzz_fail("missing answered an id it was not asked about");
        break;
    case 8: {
        size_t problems = 0;
        check_code(rc = minidbx_verify(db, NULL, 0, &report, count_problem, &problems), "verify");
        if (problems > 10000)
            fuzz_fail("verify reported %zu problems, over the documented 10,000", problems);
        break;
    }
    case 9:
        check_code(rc = minidbx_info(db, &info), "info");
        if (rc == 0 && (strnlen(info.backend, sizeof info.backend) == sizeof info.backend ||
                        strnlen(info.location, sizeof info.location) == sizeof info.location))
            fuzz_fail("info filled a string without its terminating NUL");
        break;
    case 10: {
        minidbx_reader *reader = NULL;
        uint64_t object_size = 0;
        check_code(rc = minidbx_reader_open(db, id, &reader, &object_size), "reader_open");
        if (rc == 0) {
            char chunk[4096];
            size_t got = 0, total = 0;
            unsigned char *all = NULL;
            /* bounded: the response is at most -max_len bytes */
            while ((rc = minidbx_reader_read(reader, chunk, sizeof chunk, &got)) == 0 && got > 0) {
                all = realloc(all, total + got);
                fuzz_check_setup(all != NULL, "realloc");
                memcpy(all + total, chunk, got);
                total += got;
            }
            check_code(rc, "reader_read");
            if (rc == 0)
                check_bytes(id, all, total, "a reader");
            free(all);
        }
        minidbx_reader_close(reader);
        break;
    }
    case 11:
        check_code(minidbx_put(db, "hello world\n", 12, NULL), "put");
        break;
    case 12:
        check_code(minidbx_delete(db, id), "delete");
        break;
    case 13:
        check_code(minidbx_gc(db, &gc), "gc");
        break;
    case 14:
        check_code(minidbx_name_set(db, "docs/hello.txt", id), "name_set");
        break;
    default:
        check_code(minidbx_name_delete(db, "docs/hello.txt"), "name_delete");
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char small[] = "hello world\n";
    static const char health[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";
    minidbx_options opts = client_options();
    minidbx_id id, other;
    char status_line[32];

    if (size < 1)
        return 0;
    /* crashes/http_client-libcurl-folded-first-header: libcurl 7.88 keeps a
     * pointer to the last header of a handle's previous transfer and
     * unfolds a folded first header onto it after freeing it (curl #11103,
     * fixed in 8.1.0); http.c reuses its handles */
    if (fuzz_skip_known() && size > 1 && (data[1] == ' ' || data[1] == '\t'))
        return 0;
    fuzz_check_setup(minidbx_id_of(&id, small, sizeof small - 1) == 0, "id_of");
    memset(other.bytes, 0xab, sizeof other.bytes);

    /* a new handle, so that nothing of the last input's transfers (the
     * pool of curl handles, their connections) plays a part in this one */
    set_response(health, sizeof health - 1);
    fuzz_check_setup(minidbx_open(&db, url, &opts) == 0, "open the http:// store");

    int n = snprintf(status_line, sizeof status_line, "HTTP/1.1 %u X\r\n", statuses[data[0] & 15]);
    char *raw = malloc((size_t)n + size);
    fuzz_check_setup(raw != NULL, "malloc");
    memcpy(raw, status_line, (size_t)n);
    memcpy(raw + n, data + 1, size - 1);
    set_response(raw, (size_t)n + size - 1);
    free(raw);

    run_call(data[0] >> 4, &id, &other);
    minidbx_close(db);
    db = NULL;
    return 0;
}
