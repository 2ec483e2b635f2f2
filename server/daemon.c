/* daemon.c - the node's life: read the TLS files, listen, run the
 * libmicrohttpd daemon and its threads, wait for SIGTERM or SIGINT, drain
 * the requests in flight, stop. Requests go to router.c. */
#include "node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Requests a connection's memory pool must hold: the headers, and the
 * buffer that upload chunks arrive in. Larger headers get 431. Kept
 * small: libmicrohttpd 0.9.75 zeroes the whole pool between two requests
 * of a kept-alive connection (MHD_pool_reset), which at 128 KiB was the
 * largest cost of a 4 KiB GET (15% of the node's CPU in perf), and every
 * open connection holds its pool's touched pages. */
#define CONNECTION_MEMORY_BYTES (32u * 1024u)

/* ---- the daemon ------------------------------------------------------------- */

struct minidbx_server {
    const struct minidbx_server_config *cfg;
    char *tls_cert; /* PEM text, or NULL: plain HTTP */
    char *tls_key;
};

/* Where --listen says: "HOST:PORT" (HOST an address or a name such as
 * localhost), "[V6ADDR]:PORT", ":PORT" (every address of the machine) or
 * "PORT" (127.0.0.1, as the default). A name that resolves to several
 * addresses gives its first IPv4 one, if any. */
static int parse_listen(const char *listen, struct sockaddr_storage *out, socklen_t *out_len,
                        struct minidbx_server_error *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':'), *port = colon ? colon + 1 : listen;
    struct addrinfo hints = { .ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL, *pick;
    size_t len = colon ? (size_t)(colon - listen) : 0;

    if (!port[0] || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) || atoi(port) > 65535)
        return serve_error(err, MINIDBX_EINVAL, 0,
                           "--listen: '%s' is not HOST:PORT, :PORT or PORT (e.g. 127.0.0.1:8001, "
                           "localhost:8001, [::1]:8001, :8001)", listen);
    if (len >= sizeof host)
        return serve_error(err, MINIDBX_EINVAL, 0, "--listen: the host of '%s' is too long", listen);
    if (!colon)
        snprintf(host, sizeof host, "127.0.0.1");
    else if (len == 0)
        snprintf(host, sizeof host, "0.0.0.0");
    else if (listen[0] == '[' && listen[len - 1] == ']' && len > 2)
        snprintf(host, sizeof host, "%.*s", (int)len - 2, listen + 1);
    else
        snprintf(host, sizeof host, "%.*s", (int)len, listen);
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0 || !res)
        return serve_error(err, MINIDBX_EINVAL, 0, "--listen: cannot use host '%s' (%s)", host,
                           gai ? gai_strerror(gai) : "no address");
    for (pick = res; pick && pick->ai_family != AF_INET; pick = pick->ai_next)
        continue;
    pick = pick ? pick : res;
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    *out_len = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int listen_fd_listen(int fd)
{
    return listen(fd, SOMAXCONN);
}

/* "127.0.0.1" or "[::1]": the address a socket is bound to. */
static void format_host(int fd, char *out, size_t size)
{
    struct sockaddr_storage addr = { 0 };
    socklen_t len = sizeof addr;
    char host[INET6_ADDRSTRLEN] = "?";

    if (getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        getnameinfo((struct sockaddr *)&addr, len, host, sizeof host, NULL, 0, NI_NUMERICHOST);
    snprintf(out, size, addr.ss_family == AF_INET6 ? "[%s]" : "%s", host);
}

/* The listening socket, bound here rather than by libmicrohttpd so that a
 * failure says what went wrong, in one line: "127.0.0.1:8001 is in use". */
static int open_listen_socket(const struct sockaddr_storage *addr, socklen_t len, int *out_fd,
                              struct minidbx_server_error *err)
{
    char host[INET6_ADDRSTRLEN] = "?", port[8] = "?", listen[INET6_ADDRSTRLEN + 16];
    int one = 1, fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    getnameinfo((const struct sockaddr *)addr, len, host, sizeof host, port, sizeof port,
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(listen, sizeof listen, addr->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, port);

    if (fd < 0)
        return serve_error(err, MINIDBX_EIO, errno, "serve");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)addr, len) != 0 || listen_fd_listen(fd) != 0) {
        int e = errno;
        close(fd);
        if (e == EADDRINUSE)
            return serve_error(err, MINIDBX_EIO, 0, "%s is in use", listen);
        if (e == EACCES)
            return serve_error(err, MINIDBX_EPERM, 0, "%s: permission denied (a port below 1024 needs "
                               "privileges)", listen);
        if (e == EADDRNOTAVAIL)
            return serve_error(err, MINIDBX_EIO, 0, "%s: not an address of this machine", listen);
        return serve_error(err, MINIDBX_EIO, 0, "cannot listen on %s: %s", listen, strerror(e));
    }
    *out_fd = fd;
    return 0;
}

/* libmicrohttpd's messages (a client that went away mid-request, ...),
 * at --log-level warn and info. */
static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    const struct serve_server *srv = cls;

    char message[1024];

    if (srv->cfg->log_level < SERVE_LOG_WARN)
        return;
    vsnprintf(message, sizeof message, fmt, ap);
    /* A request line that is not HTTP (libmicrohttpd answers 400 and quotes
     * its HTML page): most often a TLS client on a plain port. */
    if (strstr(message, "Error processing request (HTTP response code is 400")) {
        fprintf(stderr, "mdbx serve: a malformed request got 400 and its connection was closed "
                        "(a TLS client on this plain HTTP port? use http://, or --tls-cert and --tls-key)\n");
        return;
    }
    /* its messages may quote what a client sent: no raw bytes in the log */
    size_t len = strlen(message);
    while (len && message[len - 1] == '\n')
        message[--len] = '\0';
    fputs("mdbx serve: ", stderr);
    for (const unsigned char *p = (const unsigned char *)message; *p; p++)
        if (*p >= 0x20 && *p < 0x7f)
            fputc(*p, stderr);
        else
            fprintf(stderr, "\\x%02x", *p);
    fputc('\n', stderr);
}

static struct MHD_Daemon *start_daemon(struct serve_server *srv, int listen_fd, int family,
                                       const struct minidbx_server *tls)
{
    const struct minidbx_server_config *cfg = srv->cfg;
    /* poll, not epoll: libmicrohttpd 0.9.75's edge-triggered epoll misses
     * a client that sends a partial body and closes in one go, and keeps
     * the request until the idle timeout (tests/http/lifecycle.sh). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME | serve_io_flags(cfg);
    struct MHD_OptionItem io_options[2];
    struct MHD_OptionItem tls_options[] = {
        { MHD_OPTION_HTTPS_MEM_CERT, 0, tls->tls_cert },
        { MHD_OPTION_HTTPS_MEM_KEY, 0, tls->tls_key },
        { MHD_OPTION_END, 0, NULL },
    };

    serve_io_options(cfg, io_options);
    if (tls->tls_cert)
        flags |= MHD_USE_TLS;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    return MHD_start_daemon(flags, 0, NULL, NULL, serve_on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, srv, /* first, to catch every message */
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)listen_fd,
        MHD_OPTION_ARRAY, io_options, /* --io-model (io.c) */
        MHD_OPTION_CONNECTION_LIMIT, srv->max_connections, /* fitted to the fd limit (fds.c) */
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY_BYTES,
        MHD_OPTION_NOTIFY_COMPLETED, serve_on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, serve_on_connection, srv,
        MHD_OPTION_UNESCAPE_CALLBACK, serve_unescape, srv,
        /* HTTP/1.1 without Host, white space in the URL: 400 (the rest of
         * the framing is checked in framing.c) */
        MHD_OPTION_STRICT_FOR_CLIENT, (int)1,
        MHD_OPTION_ARRAY, tls->tls_cert ? tls_options : tls_options + 2,
        MHD_OPTION_END);
}

/* While the node stops: a second SIGTERM or SIGINT exits at once. The
 * stop waits for every commit in progress, which waits for the store's
 * write lock, which another process may hold for as long as it likes; an
 * operator who will not wait says so again. Nothing acknowledged is lost:
 * a write is answered only once it is committed. */
struct force_stop {
    pthread_t thread;
    bool running;
    sigset_t *set;
    atomic_bool done; /* the stop is over: the SIGHUP that wakes the thread ends it */
};

static void *force_stop_main(void *arg)
{
    struct force_stop *f = arg;
    int sig = 0;

    for (;;) {
        if (sigwait(f->set, &sig) != 0)
            continue;
        if (atomic_load(&f->done))
            return NULL;
        if (sig != SIGHUP)
            break;
    }
    static const char said[] = "mdbx serve: signalled again: exiting now, without the writes still waiting "
                               "for the store (none of them was acknowledged)\n";
    ssize_t n = write(STDERR_FILENO, said, sizeof said - 1);
    (void)n;
    _exit(1);
}

/* Not pthread_cancel: a thread cancelled in sigwait leaves its stack as
 * AddressSanitizer poisoned it, which it then reports at the thread's end. */
static void force_stop_end(struct force_stop *f)
{
    if (!f->running)
        return;
    atomic_store(&f->done, true);
    pthread_kill(f->thread, SIGHUP);
    pthread_join(f->thread, NULL);
}

/* Wait for SIGTERM or SIGINT (blocked in every thread since before the
 * daemon started; SIGHUP opens the access log again), then drain: stop
 * accepting, give requests in flight up to drain_timeout_s to finish,
 * stop. From the first signal on, a second one exits at once. */
static void wait_and_drain(struct serve_server *srv, struct MHD_Daemon *daemon, sigset_t *set,
                           struct force_stop *force)
{
    int sig = 0;

    while (sigwait(set, &sig) != 0 || sig == SIGHUP)
        if (sig == SIGHUP) {
            serve_access_log_reopen(srv);
            sig = 0;
        }
    fprintf(stderr, "mdbx serve: %s: draining\n", strsignal(sig));
    force->set = set;
    force->running = pthread_create(&force->thread, NULL, force_stop_main, force) == 0;
    MHD_socket listen_fd = MHD_quiesce_daemon(daemon);
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    int64_t deadline = serve_now_ns() + (int64_t)srv->cfg->drain_timeout_s * 1000000000;
    while (atomic_load(&srv->metrics.requests_in_flight) > 0 && serve_now_ns() < deadline) {
        struct timespec pause = { 0, 20 * 1000 * 1000 };
        nanosleep(&pause, NULL);
    }
    long long left = atomic_load(&srv->metrics.requests_in_flight);
    if (left > 0)
        fprintf(stderr, "mdbx serve: %lld requests still running after %us; stopping (signal again to exit "
                        "without waiting for them)\n",
                left, srv->cfg->drain_timeout_s);
}

static unsigned bound_port(struct MHD_Daemon *daemon)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

/* Stop what run_server started besides the daemon (each stop is a no-op
 * for a part that did not start); after the daemon has stopped. */
static void stop_parts(struct serve_server *srv)
{
    serve_commits_free(srv); /* its threads are gone before the memory check they call */
    serve_memory_stop(srv);
    serve_jobs_free(srv);
    serve_verified_stop(srv);
    serve_limits_stop(srv);
    serve_access_log_close(srv);
}

static int run_server(struct serve_server *srv, const struct minidbx_server *tls,
                      struct minidbx_server_error *err)
{
    struct sockaddr_storage addr;
    socklen_t addr_len = 0;
    char where[INET6_ADDRSTRLEN + 16];
    sigset_t set;
    int rc, listen_fd = -1;

    if ((rc = parse_listen(srv->cfg->listen, &addr, &addr_len, err)) != 0 ||
        (rc = open_listen_socket(&addr, addr_len, &listen_fd, err)) != 0)
        return rc;
    if ((rc = serve_access_log_open(srv, err)) != 0) {
        close(listen_fd);
        return rc;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* Asked once: on a store made of nodes, info lists every node. */
    minidbx_store_info info;
    srv->store_local = minidbx_info(srv->db, &info) == 0 && strcmp(info.backend, "local") == 0;
    srv->store_inline_threshold = srv->store_local ? info.inline_threshold : 0;
    if ((rc = serve_limits_start(srv)) != 0 || (rc = serve_verified_start(srv)) != 0 ||
        (rc = serve_jobs_start(srv)) != 0 || (rc = serve_commits_start(srv)) != 0 ||
        (rc = serve_memory_start(srv)) != 0) {
        stop_parts(srv);
        close(listen_fd);
        return serve_error(err, MINIDBX_EIO, rc, "serve");
    }
    /* last: every file of the node's own is open now */
    if ((rc = serve_fds_fit(srv, err)) != 0) {
        stop_parts(srv);
        close(listen_fd);
        return rc;
    }
    struct MHD_Daemon *daemon = start_daemon(srv, listen_fd, addr.ss_family, tls);
    if (!daemon) {
        stop_parts(srv);
        close(listen_fd);
        return serve_error(err, MINIDBX_EIO, 0, "cannot serve on %s%s", srv->cfg->listen,
                           tls->tls_cert ? " (are the TLS files a certificate and its key?)" : "");
    }
    if (srv->cfg->profile) {
        char described[512];
        minidbx_server_profile_describe(srv->cfg, described, sizeof described);
        fprintf(stderr, "mdbx serve: %s\n", described);
    }
    format_host(listen_fd, where, sizeof where);
    printf("listening on %s://%s:%u\n", tls->tls_cert ? "https" : "http", where, bound_port(daemon));
    fflush(stdout);
    struct force_stop force = { .running = false };
    wait_and_drain(srv, daemon, &set, &force);
    /* they resume their connections: before the daemon goes */
    serve_jobs_stop(srv);
    serve_commits_stop(srv);
    MHD_stop_daemon(daemon);
    stop_parts(srv);
    force_stop_end(&force);
    fprintf(stderr, "mdbx serve: stopped\n");
    return 0;
}

int minidbx_server_open(minidbx_server **out, const struct minidbx_server_config *cfg,
                        struct minidbx_server_error *err)
{
    minidbx_server *server = calloc(1, sizeof *server);
    int rc = 0;

    *out = NULL;
    if (!server)
        return serve_error(err, MINIDBX_ENOMEM, ENOMEM, "serve");
    if (serve_route_slots() > SERVE_ROUTE_SLOTS) {
        free(server);
        return serve_error(err, MINIDBX_EUNSUPPORTED, 0, "%zu routes: the metrics have %d slots",
                           serve_route_slots(), SERVE_ROUTE_SLOTS);
    }
    server->cfg = cfg;
    if (cfg->tls_cert_file && !MHD_is_feature_supported(MHD_FEATURE_TLS))
        rc = serve_error(err, MINIDBX_EUNSUPPORTED, 0, "this libmicrohttpd has no TLS support");
    else if (cfg->tls_cert_file && !(server->tls_cert = serve_read_file_text(cfg->tls_cert_file)))
        rc = serve_error(err, MINIDBX_EIO, errno, "%s", cfg->tls_cert_file);
    else if (cfg->tls_cert_file && !(server->tls_key = serve_read_file_text(cfg->tls_key_file)))
        rc = serve_error(err, MINIDBX_EIO, errno, "%s", cfg->tls_key_file);
    if (rc) {
        minidbx_server_free(server);
        return rc;
    }
    *out = server;
    return 0;
}

int minidbx_server_run(minidbx_server *server, minidbx *db, struct minidbx_server_error *err)
{
    struct serve_server *srv = calloc(1, sizeof *srv);
    int rc;

    if (!srv)
        return serve_error(err, MINIDBX_ENOMEM, ENOMEM, "serve");
    srv->db = db;
    srv->cfg = server->cfg;
    rc = run_server(srv, server, err);
    free(srv);
    return rc;
}

void minidbx_server_free(minidbx_server *server)
{
    if (!server)
        return;
    free(server->tls_cert);
    free(server->tls_key);
    free(server);
}
