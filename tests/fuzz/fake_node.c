/* fake_node.c - a node that answers every request with set bytes (see
 * fake_node.h). */
#include "fake_node.h"

#include "fuzz.h"

#include <arpa/inet.h>
#include <errno.h>
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

static int listen_fd = -1;
static unsigned short port;
static pthread_t listener;
static atomic_bool stopping;

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
 * body (the client's streamed writers) is read to its last chunk. One
 * buffer for all (a large malloc per request was mmap and munmap). */
static void read_request(int fd)
{
    static char buf[REQUEST_MAX + 1];
    size_t len = 0, need = 0;
    int64_t deadline = now_ms() + READ_DEADLINE_MS;
    bool chunked = false;
    char *head_end = NULL;

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

void fake_node_set_response(const char *data, size_t size)
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

unsigned short fake_node_start(void)
{
    struct sockaddr_in addr = { .sin_family = AF_INET };
    socklen_t addr_len = sizeof addr;

    if (port)
        return port;
    signal(SIGPIPE, SIG_IGN);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    fuzz_check_setup(listen_fd >= 0 && bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
                         listen(listen_fd, 64) == 0 &&
                         getsockname(listen_fd, (struct sockaddr *)&addr, &addr_len) == 0,
                     "listen on 127.0.0.1");
    port = ntohs(addr.sin_port);
    fuzz_check_setup(pthread_create(&listener, NULL, listener_main, NULL) == 0, "pthread_create");
    atexit(stop_listener);
    return port;
}
