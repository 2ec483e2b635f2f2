/* limits.c - what keeps one client from hurting the others: a
 * per-IP request rate, bearer tokens compared in constant time, a deadline
 * for request headers that drops slowloris clients (libmicrohttpd's own
 * timeout only notices silence, not a trickle), and a minimum average rate
 * for request bodies (the same trick, one body byte every few seconds). */
#include "node.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Clients tracked by the rate limiter. A full table evicts the least
 * recently seen client in the probe window, so memory stays fixed. */
#define RATE_SLOTS 4096
#define RATE_PROBES 8
/* How often the reaper looks for slow clients. */
#define REAPER_PERIOD_NS (200 * 1000 * 1000)

struct rate_slot {
    unsigned char addr[16];
    bool used;
    double tokens;
    int64_t last_ns;
};

/* A connection, for the header and body deadlines. */
struct tracked_conn {
    int fd;
    int64_t waiting_since_ns; /* 0 while a request is being served */
    int64_t body_since_ns;    /* when the headers ended; 0: no body in progress */
    int64_t reply_deadline_ns;/* when the reply must be out; 0: none queued */
    atomic_ullong body_bytes; /* of the request in progress */
    atomic_bool nul_escape;   /* the URL or a query argument unescaped to a NUL */
    struct tracked_conn *prev, *next;
};

struct serve_limits {
    pthread_mutex_t rate_lock;
    struct rate_slot *rate;
    pthread_mutex_t conn_lock;
    pthread_cond_t stop_cond;
    bool stopping;
    struct tracked_conn *conns;
    pthread_t reaper;
};

int64_t serve_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- rate ---------------------------------------------------------------- */

static size_t client_address(struct MHD_Connection *conn, unsigned char out[16])
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    memset(out, 0, 16);
    if (!info || !info->client_addr)
        return 0;
    if (info->client_addr->sa_family == AF_INET) {
        memcpy(out, &((const struct sockaddr_in *)(const void *)info->client_addr)->sin_addr, 4);
        return 4;
    }
    if (info->client_addr->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)info->client_addr)->sin6_addr, 16);
        return 16;
    }
    return 0;
}

static size_t rate_hash(const unsigned char addr[16])
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 1099511628211ull;
    return (size_t)(h % RATE_SLOTS);
}

static struct rate_slot *rate_slot_for(struct serve_limits *limits, const unsigned char addr[16])
{
    size_t start = rate_hash(addr);
    struct rate_slot *oldest = NULL;

    for (size_t i = 0; i < RATE_PROBES; i++) {
        struct rate_slot *slot = &limits->rate[(start + i) % RATE_SLOTS];
        if (slot->used && memcmp(slot->addr, addr, 16) == 0)
            return slot;
        if (!oldest || !slot->used || (oldest->used && slot->last_ns < oldest->last_ns))
            oldest = slot;
    }
    return oldest;
}

/* A token bucket per client: rate_limit_per_s tokens a second, as many at
 * most, one per request. */
bool serve_rate_allow(struct serve_server *srv, struct MHD_Connection *conn)
{
    unsigned rate = srv->cfg->rate_limit_per_s;
    unsigned char addr[16];
    bool allowed;

    if (rate == 0)
        return true;
    client_address(conn, addr);
    int64_t now = serve_now_ns();
    pthread_mutex_lock(&srv->limits->rate_lock);
    struct rate_slot *slot = rate_slot_for(srv->limits, addr);
    if (!slot->used || memcmp(slot->addr, addr, 16) != 0) {
        memcpy(slot->addr, addr, 16);
        slot->used = true;
        slot->tokens = rate;
        slot->last_ns = now;
    }
    slot->tokens += (double)(now - slot->last_ns) * rate / 1e9;
    if (slot->tokens > rate)
        slot->tokens = rate;
    slot->last_ns = now;
    allowed = slot->tokens >= 1.0;
    if (allowed)
        slot->tokens -= 1.0;
    pthread_mutex_unlock(&srv->limits->rate_lock);
    if (!allowed)
        atomic_fetch_add(&srv->metrics.rate_limited, 1);
    return allowed;
}

/* ---- tokens ------------------------------------------------------------- */

/* Compare digests, not the strings: the time taken says nothing about
 * where they differ, nor about the length of the secret. */
static bool token_equal(const char *given, const char *want)
{
    minidbx_id a, b;
    if (minidbx_id_of(&a, given, strlen(given)) < 0 || minidbx_id_of(&b, want, strlen(want)) < 0)
        return false;
    return CRYPTO_memcmp(a.bytes, b.bytes, sizeof a.bytes) == 0;
}

unsigned serve_token_status(struct MHD_Connection *conn, const char *want, const char *also)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                   MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
        return MHD_HTTP_UNAUTHORIZED;
    const char *given = auth + 7;
    bool ok = token_equal(given, want);
    ok |= also && token_equal(given, also);
    return ok ? 0 : MHD_HTTP_FORBIDDEN;
}

/* ---- the header deadline ----------------------------------------------------- */

void serve_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    struct serve_server *srv = cls;
    struct serve_limits *limits = srv->limits;
    struct tracked_conn *tc = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        atomic_fetch_add(&srv->metrics.connections_open, 1);
        if (!info || !(tc = calloc(1, sizeof *tc)))
            return;
        tc->fd = info->connect_fd;
        tc->waiting_since_ns = serve_now_ns();
        pthread_mutex_lock(&limits->conn_lock);
        tc->next = limits->conns;
        if (tc->next)
            tc->next->prev = tc;
        limits->conns = tc;
        pthread_mutex_unlock(&limits->conn_lock);
        *socket_context = tc;
        return;
    }
    /* MHD_CONNECTION_NOTIFY_CLOSED comes before the socket is closed, so
     * the reaper never touches an fd that was reused. */
    atomic_fetch_sub(&srv->metrics.connections_open, 1);
    if (!tc)
        return;
    pthread_mutex_lock(&limits->conn_lock);
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        limits->conns = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    pthread_mutex_unlock(&limits->conn_lock);
    free(tc);
    *socket_context = NULL;
}

static struct tracked_conn *tracked(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

static void set_waiting(struct serve_server *srv, struct MHD_Connection *conn, int64_t since_ns,
                        int64_t body_since_ns)
{
    struct tracked_conn *tc = tracked(conn);
    if (!tc)
        return;
    pthread_mutex_lock(&srv->limits->conn_lock);
    tc->waiting_since_ns = since_ns;
    tc->body_since_ns = body_since_ns;
    tc->reply_deadline_ns = 0;
    atomic_store(&tc->body_bytes, 0);
    pthread_mutex_unlock(&srv->limits->conn_lock);
}

void serve_conn_request_started(struct serve_server *srv, struct MHD_Connection *conn)
{
    set_waiting(srv, conn, 0, serve_now_ns());
}

void serve_conn_request_done(struct serve_server *srv, struct MHD_Connection *conn)
{
    set_waiting(srv, conn, serve_now_ns(), 0);
}

void serve_conn_body_done(struct serve_server *srv, struct MHD_Connection *conn)
{
    set_waiting(srv, conn, 0, 0);
}

/* A reply of size body bytes is queued: it must be sent within the grace
 * period plus the time it takes at min_body_rate, so that a client that
 * reads a few bytes now and then (never idle for MHD) cannot keep it. */
void serve_conn_reply_queued(struct serve_server *srv, struct MHD_Connection *conn, uint64_t size)
{
    const struct minidbx_server_config *cfg = srv->cfg;
    struct tracked_conn *tc = tracked(conn);
    if (!tc || !cfg->min_body_rate)
        return;
    double seconds = cfg->header_timeout_s + (double)size / (double)cfg->min_body_rate;
    pthread_mutex_lock(&srv->limits->conn_lock);
    tc->reply_deadline_ns = serve_now_ns() + (int64_t)(seconds * 1e9);
    pthread_mutex_unlock(&srv->limits->conn_lock);
}

void serve_conn_body_bytes(struct serve_server *srv, struct MHD_Connection *conn, size_t size)
{
    struct tracked_conn *tc = tracked(conn);
    (void)srv;
    if (tc)
        atomic_fetch_add(&tc->body_bytes, size);
}

void serve_conn_mark_nul(struct serve_server *srv, struct MHD_Connection *conn)
{
    struct tracked_conn *tc = tracked(conn);
    (void)srv;
    if (tc)
        atomic_store(&tc->nul_escape, true);
}

bool serve_conn_take_nul(struct serve_server *srv, struct MHD_Connection *conn)
{
    struct tracked_conn *tc = tracked(conn);
    (void)srv;
    return !tc || atomic_exchange(&tc->nul_escape, false);
}

/* A body in progress that is too slow: past the grace period (the header
 * deadline again), it has come at less than min_body_rate bytes/s on
 * average since the headers ended. */
static bool body_too_slow(const struct minidbx_server_config *cfg, const struct tracked_conn *tc, int64_t now)
{
    int64_t grace_ns = (int64_t)cfg->header_timeout_s * 1000000000;
    int64_t elapsed_ns = now - tc->body_since_ns;

    if (!cfg->min_body_rate || !tc->body_since_ns || elapsed_ns <= grace_ns)
        return false;
    double want = (double)cfg->min_body_rate * (double)elapsed_ns / 1e9;
    return (double)atomic_load(&tc->body_bytes) < want;
}

/* Shut down (not close: the fd is MHD's) every connection whose request
 * headers have taken longer than the deadline, whose body comes too
 * slowly, or whose reply is read too slowly; MHD then cleans it up. The wait for the next request on a
 * kept-alive connection counts as headers too. */
static void reap_slow_clients(struct serve_server *srv)
{
    int64_t deadline_ns = (int64_t)srv->cfg->header_timeout_s * 1000000000;
    int64_t now = serve_now_ns();

    for (struct tracked_conn *tc = srv->limits->conns; tc; tc = tc->next) {
        if (tc->reply_deadline_ns && now > tc->reply_deadline_ns) {
            shutdown(tc->fd, SHUT_RDWR);
            tc->reply_deadline_ns = 0;
            atomic_fetch_add(&srv->metrics.slow_readers_dropped, 1);
            continue;
        }
        if (body_too_slow(srv->cfg, tc, now)) {
            shutdown(tc->fd, SHUT_RDWR);
            tc->body_since_ns = 0;
            atomic_fetch_add(&srv->metrics.slow_bodies_dropped, 1);
            continue;
        }
        if (!tc->waiting_since_ns || now - tc->waiting_since_ns <= deadline_ns)
            continue;
        shutdown(tc->fd, SHUT_RDWR);
        tc->waiting_since_ns = 0;
        atomic_fetch_add(&srv->metrics.slow_clients_dropped, 1);
    }
}

static void *reaper_main(void *cls)
{
    struct serve_server *srv = cls;
    struct serve_limits *limits = srv->limits;

    pthread_mutex_lock(&limits->conn_lock);
    while (!limits->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += REAPER_PERIOD_NS;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&limits->stop_cond, &limits->conn_lock, &until);
        reap_slow_clients(srv);
    }
    pthread_mutex_unlock(&limits->conn_lock);
    return NULL;
}

int serve_limits_start(struct serve_server *srv)
{
    struct serve_limits *limits = calloc(1, sizeof *limits);
    int rc;

    if (!limits || !(limits->rate = calloc(RATE_SLOTS, sizeof *limits->rate))) {
        free(limits);
        return ENOMEM;
    }
    pthread_mutex_init(&limits->rate_lock, NULL);
    pthread_mutex_init(&limits->conn_lock, NULL);
    pthread_cond_init(&limits->stop_cond, NULL);
    srv->limits = limits;
    if ((rc = pthread_create(&limits->reaper, NULL, reaper_main, srv)) != 0) {
        free(limits->rate);
        free(limits);
        srv->limits = NULL;
        return rc;
    }
    return 0;
}

void serve_limits_stop(struct serve_server *srv)
{
    struct serve_limits *limits = srv->limits;
    if (!limits)
        return;
    pthread_mutex_lock(&limits->conn_lock);
    limits->stopping = true;
    pthread_cond_signal(&limits->stop_cond);
    pthread_mutex_unlock(&limits->conn_lock);
    pthread_join(limits->reaper, NULL);
    /* The daemon is stopped: every connection was reported closed. */
    pthread_mutex_destroy(&limits->rate_lock);
    pthread_mutex_destroy(&limits->conn_lock);
    pthread_cond_destroy(&limits->stop_cond);
    free(limits->rate);
    free(limits);
    srv->limits = NULL;
}
