/* accesslog.c - one line per request (--access-log FILE, or - for
 * standard error): the Common Log Format with the duration added, or JSON
 * lines (--access-log-format json). A line is one write(2) on a file
 * opened O_APPEND, so lines of concurrent requests never interleave; on
 * SIGHUP the file is opened again under the same descriptor number
 * (logrotate's way: move the file, then signal the node). */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define PATH_SHOWN_MAX 2048

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
}

int serve_access_log_open(struct serve_server *srv, struct minidbx_server_error *err)
{
    const char *path = srv->cfg->access_log;

    srv->access_fd = -1;
    if (!path && srv->cfg->log_level >= SERVE_LOG_INFO)
        path = "-";
    if (!path)
        return 0;
    if (strcmp(path, "-") == 0) {
        srv->access_fd = STDERR_FILENO;
        return 0;
    }
    if ((srv->access_fd = open_log(path)) < 0)
        return serve_error(err, MINIDBX_EIO, errno, "%s", path);
    return 0;
}

void serve_access_log_reopen(struct serve_server *srv)
{
    const char *path = srv->cfg->access_log;
    int fd;

    if (srv->access_fd < 0 || !path || strcmp(path, "-") == 0)
        return;
    if ((fd = open_log(path)) < 0) {
        fprintf(stderr, "mdbx serve: SIGHUP: cannot open the access log %s again: %s; still writing "
                        "to the old one\n", path, strerror(errno));
        return;
    }
    /* the same number: a request logging now writes to the old file or
     * the new one, never to a closed descriptor */
    dup2(fd, srv->access_fd);
    close(fd);
}

void serve_access_log_close(struct serve_server *srv)
{
    if (srv->access_fd > STDERR_FILENO)
        close(srv->access_fd);
    srv->access_fd = -1;
}

/* The client's address, "127.0.0.1" or "::1". */
static void client_address(struct MHD_Connection *conn, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = info ? info->client_addr : NULL;

    snprintf(out, size, "-");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)size);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out, (socklen_t)size);
}

/* text with '"', '\\' and bytes outside printable ASCII escaped, \xHH
 * (or \u00HH in JSON): a client cannot forge a line or a field. At most
 * max bytes of text. */
static size_t escape(char *out, size_t room, const char *text, size_t max, bool json)
{
    size_t n = 0;

    for (const unsigned char *p = (const unsigned char *)(text ? text : "-"); *p && max--; p++) {
        bool plain = *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
        if (n + 7 >= room)
            break;
        n += plain ? (size_t)snprintf(out + n, room - n, "%c", *p)
                   : (size_t)snprintf(out + n, room - n, json ? "\\u%04x" : "\\x%02x", *p);
    }
    out[n] = '\0';
    return n;
}

void serve_access_log(struct serve_server *srv, struct MHD_Connection *conn,
                      const struct serve_request *req, unsigned status, uint64_t bytes)
{
    /* the path gets what the line has left after every other field (at
     * most about 450 bytes): a long one is cut inside its own string, so
     * the line stays one line and, in JSON, an object */
    char line[LINE_MAX_BYTES], client[INET6_ADDRSTRLEN], method[32 * 6 + 8], path[LINE_MAX_BYTES - 512];
    bool json = srv->cfg->access_log_json;
    struct timespec now;
    struct tm tm;
    int64_t elapsed_us = (serve_now_ns() - req->start_ns) / 1000;
    int len;

    if (srv->access_fd < 0)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    client_address(conn, client, sizeof client);
    escape(method, sizeof method, req->method, 32, json);
    escape(path, sizeof path, req->url, PATH_SHOWN_MAX, json);
    if (json) {
        char when[40];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        /* escape() left printable ASCII and \u escapes: JSON strings as they are */
        len = snprintf(line, sizeof line,
                       "{\"time\":\"%s.%03ldZ\",\"client\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
                       "\"status\":%u,\"bytes\":%llu,\"duration_ms\":%.3f}\n",
                       when, now.tv_nsec / 1000000, client, method, path, status,
                       (unsigned long long)bytes, (double)elapsed_us / 1000.0);
    } else {
        char when[40];
        strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        len = snprintf(line, sizeof line, "%s - - [%s] \"%s %s HTTP/1.1\" %u %llu %.6f\n", client, when,
                       method, path, status, (unsigned long long)bytes, (double)elapsed_us / 1e6);
    }
    if (len <= 0)
        return;
    if ((size_t)len >= sizeof line) { /* cut, but still one line */
        len = (int)sizeof line - 1;
        line[len - 1] = '\n';
    }
    ssize_t w;
    do
        w = write(srv->access_fd, line, (size_t)len);
    while (w < 0 && errno == EINTR);
}
