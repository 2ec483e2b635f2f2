/* serve_fixture.c - a real `mdbx serve` in the fuzzer's process (see
 * serve_fixture.h). */
#include "serve_fixture.h"

#include "fuzz.h"
#include "server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* How long one input may take, from connect to the server's close. The
 * server answers in milliseconds; this only catches a hang. */
#define EXCHANGE_DEADLINE_MS 10000
#define START_DEADLINE_MS 30000
#define LARGE_OBJECT_BYTES (100u * 1024u) /* over the 16 KiB inline threshold */

struct fixture_object fixture_objects[OBJ_COUNT];

static minidbx *db;
static struct minidbx_server_config cfg;
static minidbx_server *server;
static struct minidbx_server_error serve_error;
static pthread_t serve_thread;
static atomic_int serve_finished;
static int serve_status;
static unsigned short port;
static struct MHD_Daemon *node_daemon; /* the node's, for MHD_add_connection */
static bool started;

/* ---- time ------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the server thread -------------------------------------------------------- */

static void *serve_main(void *unused)
{
    (void)unused;
    serve_status = minidbx_server_run(server, db, &serve_error);
    atomic_store(&serve_finished, 1);
    return NULL;
}

/* The node prints "listening on http://127.0.0.1:PORT" once it listens:
 * read it from a pipe put in place of stdout for the while. */
static unsigned short wait_for_port(int fd)
{
    char line[256];
    size_t len = 0;
    int64_t deadline = now_ms() + START_DEADLINE_MS;
    unsigned value = 0;

    while (now_ms() < deadline && !atomic_load(&serve_finished)) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, line + len, sizeof line - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        line[len] = '\0';
        const char *at = strstr(line, "listening on http://127.0.0.1:");
        if (at && strchr(at, '\n') && sscanf(at, "listening on http://127.0.0.1:%u", &value) == 1)
            return (unsigned short)value;
        if (len == sizeof line - 1)
            break;
    }
    return 0;
}

static void stop_server(void)
{
    if (!started)
        return;
    pthread_kill(serve_thread, SIGTERM); /* blocked there: its sigwait takes it */
    pthread_join(serve_thread, NULL);
    for (int i = 0; i < OBJ_COUNT; i++)
        free(fixture_objects[i].bytes);
    minidbx_server_free(server);
    minidbx_close(db);
    minidbx_server_config_free(&cfg);
    started = false;
}

/* ---- the baseline ---------------------------------------------------------------- */

static void baseline_object(enum fixture_object_kind which, const void *bytes, size_t size, const char *name)
{
    struct fixture_object *o = &fixture_objects[which];
    o->bytes = malloc(size ? size : 1);
    fuzz_check_setup(o->bytes != NULL, "malloc");
    if (size)
        memcpy(o->bytes, bytes, size);
    o->size = size;
    o->name = name;
    fuzz_check_setup(minidbx_id_of(&o->id, bytes, size) == 0, "id_of");
    minidbx_id_format(&o->id, o->hex);
}

static void make_baseline(void)
{
    static char record_name[sizeof "_go/register/" + MINIDBX_ID_HEX_SIZE];
    unsigned char *large = malloc(LARGE_OBJECT_BYTES);
    char record[512];

    fuzz_check_setup(large != NULL, "malloc");
    for (size_t i = 0; i < LARGE_OBJECT_BYTES; i++)
        large[i] = (unsigned char)(i * 7 + i / 251);
    baseline_object(OBJ_SMALL, "hello world\n", 12, "docs/hello.txt");
    baseline_object(OBJ_LARGE, large, LARGE_OBJECT_BYTES, "big/blob.bin");
    baseline_object(OBJ_EMPTY, "", 0, "empty");
    free(large);
    /* a record as POST /register leaves it (proto_go.c) */
    int len = snprintf(record, sizeof record,
                       "{\"hash\":\"%s\",\"name\":\"docs/hello.txt\",\"size\":12,"
                       "\"replicas\":[\"127.0.0.1:8002\"]}",
                       fixture_objects[OBJ_SMALL].hex);
    snprintf(record_name, sizeof record_name, "_go/register/%s", fixture_objects[OBJ_SMALL].hex);
    baseline_object(OBJ_RECORD, record, (size_t)len, record_name);
}

/* ---- start ----------------------------------------------------------------------- */

void serve_fixture_start(void)
{
    static char store_path[4200];
    int pipe_fds[2];

    if (started)
        return;
    signal(SIGPIPE, SIG_IGN); /* as mdbx's main does */
    snprintf(store_path, sizeof store_path, "%s/store", fuzz_temp_dir("serve"));
    /* as `mdbx serve --listen 127.0.0.1:0 --threads 2 --max-object-size 1M
     * --write-token T` sets it up */
    minidbx_server_config_init(&cfg);
    static const char *const settings[][2] = {
        { "listen", "127.0.0.1:0" }, { "threads", "2" }, { "max-object-size", "1M" },
        { "write-token", FIXTURE_WRITE_TOKEN },
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        fuzz_check_setup(minidbx_server_config_set(&cfg, settings[i][0], settings[i][1],
                                                   &serve_error) == 0, serve_error.text);
    fuzz_check_setup(minidbx_server_config_check(&cfg, &serve_error) == 0, serve_error.text);
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.max_object_size = cfg.max_object_bytes; /* one limit: the store's */
    /* no fsync: the store is in memory, and a crash of the fuzzer ends it */
    opts.durability = MINIDBX_SYNC_NONE;
    fuzz_check_setup(minidbx_open(&db, store_path, &opts) == 0, "open the store");
    fuzz_check_setup(minidbx_server_open(&server, &cfg, &serve_error) == 0, serve_error.text);

    fflush(stdout);
    int saved_stdout = dup(STDOUT_FILENO);
    fuzz_check_setup(saved_stdout >= 0 && pipe(pipe_fds) == 0, "pipe");
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[1]);
    fuzz_check_setup(pthread_create(&serve_thread, NULL, serve_main, NULL) == 0, "pthread_create");
    port = wait_for_port(pipe_fds[0]);
    fflush(stdout);
    dup2(saved_stdout, STDOUT_FILENO);
    close(saved_stdout);
    close(pipe_fds[0]);
    if (!port || !node_daemon) {
        fprintf(stderr, "mdbx serve did not start (%d: %s)\n", serve_status, serve_error.text);
        abort();
    }
    started = true;
    atexit(stop_server);
    make_baseline();
    serve_fixture_reset();
}

/* ---- one exchange ----------------------------------------------------------------- */

/* Connections come to the node as they come from its listening socket
 * (libmicrohttpd's MHD_add_connection is what its accept calls), but over
 * a socketpair: no TCP handshake, no TIME_WAIT, no port to pick (a TCP
 * connect per input cost more than the request: serve_request went from
 * 3.9k to 6.9k inputs a second). The node's
 * daemon is the one it asks for its port once it listens: the link
 * (meson.build, -Wl,--wrap) sends that call here first. The connection
 * says it comes from 127.0.0.1, as it did over TCP (for the per-IP limit
 * and the rate limit). */
const union MHD_DaemonInfo *__real_MHD_get_daemon_info(struct MHD_Daemon *daemon,
                                                       enum MHD_DaemonInfoType info_type, ...);
const union MHD_DaemonInfo *__wrap_MHD_get_daemon_info(struct MHD_Daemon *daemon,
                                                       enum MHD_DaemonInfoType info_type, ...);

const union MHD_DaemonInfo *__wrap_MHD_get_daemon_info(struct MHD_Daemon *daemon,
                                                       enum MHD_DaemonInfoType info_type, ...)
{
    if (!node_daemon)
        node_daemon = daemon;
    return __real_MHD_get_daemon_info(daemon, info_type);
}

static int connect_server(void)
{
    struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000) };
    int fds[2];

    peer.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fuzz_check_setup(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0, "socketpair");
    fuzz_check_setup(fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK");
    /* the node owns fds[1] from here, even when it refuses it */
    if (MHD_add_connection(node_daemon, fds[1], (const struct sockaddr *)&peer, sizeof peer) != MHD_YES)
        fuzz_check_setup(0, "MHD_add_connection: the node refused a connection");
    return fds[0];
}

static void reply_add(struct fixture_reply *reply, size_t *cap, const char *data, size_t size)
{
    if (reply->size + size > FIXTURE_REPLY_MAX) {
        reply->truncated = true;
        size = FIXTURE_REPLY_MAX - reply->size;
    }
    if (reply->size + size + 1 > *cap) {
        while (reply->size + size + 1 > *cap)
            *cap *= 2;
        reply->data = realloc(reply->data, *cap);
        fuzz_check_setup(reply->data != NULL, "realloc");
    }
    memcpy(reply->data + reply->size, data, size);
    reply->size += size;
    reply->data[reply->size] = '\0';
}

/* Write the request while reading what comes back (a server may answer
 * before it has read everything), then read to the end: shut our write
 * side once all is sent when half_close, else wait for the server to
 * close (the request says "Connection: close"). */
static void exchange(const void *request, size_t size, struct fixture_reply *reply, bool half_close)
{
    const char *out = request;
    size_t sent = 0, cap = 4096;
    bool write_open = true;
    int64_t deadline = now_ms() + EXCHANGE_DEADLINE_MS;
    char buf[65536];
    int fd = connect_server();

    reply->data = malloc(cap);
    fuzz_check_setup(reply->data != NULL, "malloc");
    reply->data[0] = '\0';
    reply->size = 0;
    reply->truncated = false;
    if (size == 0) {
        if (half_close)
            shutdown(fd, SHUT_WR);
        write_open = false;
    }
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            fuzz_fail("mdbx serve did not finish with a connection within %d ms", EXCHANGE_DEADLINE_MS);
        struct pollfd p = { fd, POLLIN | (write_open ? POLLOUT : 0), 0 };
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        if (write_open && (p.revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = send(fd, out + sent, size - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || sent == size) {
                if (half_close)
                    shutdown(fd, SHUT_WR); /* the server may have closed: fine */
                write_open = false;
            }
        }
        if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n > 0)
                reply_add(reply, &cap, buf, (size_t)n);
            else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                break; /* closed, or reset after a refusal */
        }
    }
    close(fd);
}

void serve_fixture_exchange(const void *request, size_t size, struct fixture_reply *reply)
{
    exchange(request, size, reply, false);
}

void serve_fixture_exchange_raw(const void *request, size_t size, struct fixture_reply *reply)
{
    exchange(request, size, reply, true);
}

/* ---- back to the baseline ------------------------------------------------------------ */

static const struct fixture_object *baseline_by_id(const minidbx_id *id)
{
    for (int i = 0; i < OBJ_COUNT; i++)
        if (minidbx_id_equal(&fixture_objects[i].id, id))
            return &fixture_objects[i];
    return NULL;
}

static const struct fixture_object *baseline_by_name(const char *name)
{
    for (int i = 0; i < OBJ_COUNT; i++)
        if (strcmp(fixture_objects[i].name, name) == 0)
            return &fixture_objects[i];
    return NULL;
}

#define RESET_PAGE 64

/* Remove every name that is not one of the baseline's. Returns how many
 * of the baseline's names are there and point where they should. */
static int reset_names(minidbx *db)
{
    minidbx_name_info *page = malloc(RESET_PAGE * sizeof *page);
    char after[MINIDBX_NAME_MAX + 1] = "";
    size_t count = RESET_PAGE;
    int intact = 0;

    fuzz_check_setup(page != NULL, "malloc");
    while (count == RESET_PAGE) {
        fuzz_check_setup(minidbx_name_list(db, NULL, after[0] ? after : NULL, page, RESET_PAGE,
                                           &count) == 0, "reset: name_list");
        for (size_t i = 0; i < count; i++) {
            const struct fixture_object *o = baseline_by_name(page[i].name);
            if (!o)
                fuzz_check_setup(minidbx_name_delete(db, page[i].name) == 0, "reset: name_delete");
            else if (minidbx_id_equal(&page[i].id, &o->id))
                intact++;
        }
        if (count)
            snprintf(after, sizeof after, "%s", page[count - 1].name);
    }
    free(page);
    return intact;
}

/* Remove every object that is not one of the baseline's. Returns how many
 * of the baseline's objects are listed. */
static int reset_objects(minidbx *db)
{
    minidbx_object_info *page = malloc(RESET_PAGE * sizeof *page);
    minidbx_id after;
    size_t count = RESET_PAGE;
    bool first = true;
    int listed = 0;

    fuzz_check_setup(page != NULL, "malloc");
    while (count == RESET_PAGE) {
        fuzz_check_setup(minidbx_list(db, first ? NULL : &after, page, RESET_PAGE, &count) == 0,
                         "reset: list");
        for (size_t i = 0; i < count; i++) {
            if (baseline_by_id(&page[i].id))
                listed++;
            else
                fuzz_check_setup(minidbx_delete_ex(db, &page[i].id, MINIDBX_DELETE_CASCADE) == 0,
                                 "reset: delete");
        }
        if (count)
            after = page[count - 1].id;
        first = false;
    }
    free(page);
    return listed;
}

/* Two listings when nothing changed (most inputs); object by object when
 * something of the baseline is gone or moved. The large object is kept
 * as a file: exists looks at that too, not only at its record. */
void serve_fixture_reset(void)
{
    minidbx_name_info info;

    bool names_intact = reset_names(db) == OBJ_COUNT;
    bool objects_intact = reset_objects(db) == OBJ_COUNT &&
                          minidbx_exists(db, &fixture_objects[OBJ_LARGE].id) == 1;
    if (names_intact && objects_intact)
        return;
    for (int i = 0; i < OBJ_COUNT; i++) {
        const struct fixture_object *o = &fixture_objects[i];
        minidbx_id id;
        if (minidbx_exists(db, &o->id) != 1) {
            fuzz_check_setup(minidbx_put(db, o->bytes, o->size, &id) == 0, "reset: put");
            fuzz_check_setup(minidbx_id_equal(&id, &o->id), "reset: put gave another id");
        }
        if (minidbx_name_get(db, o->name, &info) != 0 || !minidbx_id_equal(&info.id, &o->id))
            fuzz_check_setup(minidbx_name_set(db, o->name, &o->id) == 0, "reset: name_set");
    }
}

/* ---- replies ------------------------------------------------------------------------ */

bool http_response_parse(const char *data, size_t size, struct http_response *out)
{
    unsigned status;
    char sp;

    if (size < 12 || strncmp(data, "HTTP/1.", 7) != 0 || (data[7] != '0' && data[7] != '1') ||
        sscanf(data + 8, " %3u%c", &status, &sp) != 2 || sp != ' ')
        return false;
    const char *line_end = memmem(data, size, "\r\n", 2);
    const char *end = memmem(data, size, "\r\n\r\n", 4);
    if (!line_end || !end)
        return false;
    out->status = status;
    out->headers = line_end + 2;
    out->headers_size = (size_t)(end + 2 - out->headers);
    out->body = end + 4;
    out->body_size = size - (size_t)(out->body - data);
    return true;
}

bool http_response_header(const struct http_response *r, const char *name, char *out, size_t cap)
{
    size_t name_len = strlen(name);
    const char *p = r->headers, *end = r->headers + r->headers_size;

    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            break;
        if ((size_t)(eol - p) > name_len && strncasecmp(p, name, name_len) == 0 && p[name_len] == ':') {
            const char *v = p + name_len + 1;
            while (v < eol && *v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(eol - v), v);
            return true;
        }
        p = eol + 2;
    }
    return false;
}

void fixture_check_reply(const struct fixture_reply *reply, bool head, struct http_response *out)
{
    char text[64];

    if (!http_response_parse(reply->data, reply->size, out))
        fuzz_fail("no HTTP response to a well-framed request (%zu bytes came: %.80s)", reply->size,
                  reply->data);
    if (out->status == 500)
        fuzz_fail("500 Internal Server Error: %.300s", out->body);
    if (!head && !reply->truncated && http_response_header(out, "Content-Length", text, sizeof text) &&
        strtoull(text, NULL, 10) != out->body_size)
        fuzz_fail("status %u: Content-Length %s but %zu bytes of body", out->status, text,
                  out->body_size);
    if (!head && http_response_header(out, "Content-Type", text, sizeof text) &&
        strcmp(text, "application/json") == 0) {
        cJSON *json = cJSON_ParseWithLength(out->body, out->body_size);
        if (!json)
            fuzz_fail("status %u: a JSON reply that does not parse: %.300s", out->status, out->body);
        cJSON_Delete(json);
    }
}

minidbx *serve_fixture_db(void)
{
    return db;
}

/* ---- building requests ------------------------------------------------------------- */

/* Room for size more bytes and a NUL. */
static void fuzz_buf_reserve(struct fuzz_buf *b, size_t size)
{
    if (b->size + size + 1 > b->cap) {
        b->cap = b->cap ? b->cap : 1024;
        while (b->size + size + 1 > b->cap)
            b->cap *= 2;
        b->data = realloc(b->data, b->cap);
        fuzz_check_setup(b->data != NULL, "realloc");
    }
}

void fuzz_buf_add(struct fuzz_buf *b, const void *data, size_t size)
{
    fuzz_buf_reserve(b, size);
    if (size)
        memcpy(b->data + b->size, data, size);
    b->size += size;
    b->data[b->size] = '\0';
}

/* Any length: a header of the request may carry up to a whole input. */
void fuzz_buf_addf(struct fuzz_buf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    fuzz_check_setup(n >= 0, "fuzz_buf_addf: vsnprintf");
    fuzz_buf_add(b, NULL, 0); /* data is allocated */
    fuzz_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->size, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->size += (size_t)n;
}

void fuzz_buf_add_escaped(struct fuzz_buf *b, const void *data, size_t size, const char *keep)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size; i++) {
        unsigned char c = p[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     (c && (strchr("-._~", c) || strchr(keep, c)));
        if (plain)
            fuzz_buf_add(b, &c, 1);
        else
            fuzz_buf_addf(b, "%%%02X", c);
    }
}

void fuzz_buf_free(struct fuzz_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->size = b->cap = 0;
}
