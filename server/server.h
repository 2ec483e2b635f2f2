/*
 * server.h - the HTTP node behind `mdbx serve`, as its callers see it: a
 * configuration built setting by setting, then a node that serves one open
 * store until SIGTERM or SIGINT. cli/cmd_serve.c parses the command line
 * into it; the fuzzers of tests/fuzz start a node in their own process.
 *
 * The node uses only <minidbx.h> and the wire format (libminidbx/wire*.h);
 * how it works inside is in node.h.
 *
 * Every call here is for one thread (the one that configures and runs the
 * node). Errors come back as a MINIDBX_E* code with the words filled into a
 * struct minidbx_server_error; nothing here prints them.
 */
#ifndef MINIDBX_SERVER_H
#define MINIDBX_SERVER_H

#include <minidbx.h>
#include <stdbool.h>
#include <stdint.h>

/* --log-level: error (only what stops the node or fails a request of
 * its own), warn (the default: also libmicrohttpd's messages about
 * clients), info (also an access log line per request on stderr when
 * --access-log does not name a file). */
enum { SERVE_LOG_ERROR = -1, SERVE_LOG_WARN = 0, SERVE_LOG_INFO = 1 };

/* --io-model: --threads threads that each poll many connections (the
 * default), or a thread per open connection. */
enum { SERVE_IO_POOL = 0, SERVE_IO_PER_CONNECTION = 1 };
/* --commit-threads: the threads that commit durable writes in a pool. */
#define SERVE_COMMIT_THREADS_DEFAULT 16

/* What `mdbx help serve` says about the settings and the routes. */
#define MINIDBX_SERVER_USAGE "[--listen [HOST]:PORT] [--threads N] [--max-object-size SIZE] ..."
#define MINIDBX_SERVER_HELP                                                      \
    "  --listen [HOST]:PORT        where to listen (default 127.0.0.1:8001):\n"  \
    "                              HOST an address ([::1] for IPv6) or a name\n" \
    "                              (localhost); :PORT every address; PORT\n"    \
    "                              alone 127.0.0.1; port 0 picks a free one,\n" \
    "                              printed on start\n"                         \
    "  --io-model pool|per-connection  pool (default): --threads threads each\n" \
    "                              serve many connections; per-connection: a\n" \
    "                              thread per open connection, at most\n"     \
    "                              --max-connections (more are closed at once\n" \
    "                              instead of waiting); concurrent durable\n"  \
    "                              writes share flushes, a kept body goes out\n" \
    "                              by sendfile in one piece; more CPU per small\n" \
    "                              request\n"                                  \
    "  --threads N                 I/O threads of --io-model pool (default 4)\n" \
    "  --commit-threads N          threads of --io-model pool that make the\n" \
    "                              durable commits of writes, while the I/O\n" \
    "                              threads serve other requests; writes\n"    \
    "                              waiting together share one commit and\n"  \
    "                              flush (small PUTs on a local store: in one\n" \
    "                              batch) (default 16; 0: commit on the I/O\n" \
    "                              threads)\n"                                \
    "  --max-object-size SIZE      largest object, e.g. 512M (default 1G): the\n" \
    "                              store's limit; larger uploads get 413\n"     \
    "                              (ETOOBIG) and store nothing\n"               \
    "  --read-only                 serve the store read-only: writes get 403\n" \
    "                              (EREADONLY)\n"                               \
    "  --sync full|none            full (default): a write is acknowledged once\n" \
    "                              it is on stable storage (concurrent writes\n" \
    "                              share one commit and flush); none: nothing\n" \
    "                              is flushed (the Go system's way: a machine\n" \
    "                              crash may lose the last writes)\n"          \
    "  --max-connections N         open connections in all (default 1000); the\n" \
    "                              node raises its soft limit on open files to\n" \
    "                              the hard one, and lowers N (with a warning)\n" \
    "                              to what it holds: 2 per connection and a\n"   \
    "                              reserve of about 70\n"                        \
    "  --max-connections-per-ip N  open connections per client (default 64)\n"   \
    "  --rate-limit N              requests per second per client IP, with a\n"  \
    "                              burst of N; over it: 429 (default 0: off)\n"  \
    "  --read-token T              reads need 'Authorization: Bearer T'\n"       \
    "  --write-token T             writes need it (the write token reads too)\n" \
    "  --tls-cert FILE --tls-key FILE  serve HTTPS with this PEM pair\n"         \
    "  --idle-timeout SECONDS      drop a connection silent this long (30)\n"    \
    "  --header-timeout SECONDS    drop a connection whose request headers\n"    \
    "                              take longer than this (slowloris; 10)\n"      \
    "  --min-body-rate BYTES       once --header-timeout has passed since the\n" \
    "                              headers, drop a request whose body came\n"   \
    "                              slower than this per second on average,\n"   \
    "                              or whose reply is read slower (default\n"    \
    "                              1K; 0: off)\n"                               \
    "  --verified-cache N          blob files remembered as verified, so\n"     \
    "                              repeated GETs skip hashing (default 1024;\n" \
    "                              0: hash every GET); see mdbx(1)\n"           \
    "  --body-cache SIZE           verified bytes of blob files kept in memory\n" \
    "                              and sent from there (default 8M; objects\n" \
    "                              up to a quarter of it; 0: off)\n"          \
    "  --md5-aliases on|off        keep each /upload's MD5 as an alias, so\n"    \
    "                              the old system's clients use their 32-hex\n" \
    "                              ids on its endpoints (default on)\n"        \
    "  --access-log FILE           one line per request (time, client, method,\n" \
    "                              path, status, bytes, duration) to FILE ('-':\n" \
    "                              stderr), opened again on SIGHUP (rotation)\n" \
    "  --access-log-format common|json  the Common Log Format with the\n"      \
    "                              duration in seconds last (default), or JSON\n" \
    "  --log-level error|warn|info warn (default): the node's messages and\n"  \
    "                              libmicrohttpd's about clients; error: the\n" \
    "                              node's only; info: also the access log on\n" \
    "                              stderr when --access-log is not given\n"    \
    "  --profile NAME              a preset of some of these settings; each\n"  \
    "                              one given by itself wins (before or after):\n" \
    "                              throughput: --threads 8 --max-connections\n" \
    "                              4000 --max-connections-per-ip 512\n"       \
    "                              --verified-cache 65536 --body-cache 64M;\n"  \
    "                              low-memory: --threads 1 --max-connections\n" \
    "                              64 --max-connections-per-ip 16\n"          \
    "                              --verified-cache 64 --body-cache 0;\n"      \
    "                              large-files: --max-object-size 64G\n"      \
    "                              --idle-timeout 300 --min-body-rate 16K\n"   \
    "                              --drain-timeout 300 --body-cache 0\n"       \
    "  --drain-timeout SECONDS     on SIGTERM/SIGINT, how long requests in\n"    \
    "                              flight may take to finish (10)\n"            \
    "  --config FILE.json          the same settings as a JSON object, keys\n"   \
    "                              named like the options (\"listen\", ...);\n"  \
    "                              options given on the command line win\n"     \
    "Routes: PUT /v1/objects[/ID], GET|HEAD|DELETE /v1/objects/ID, GET\n"        \
    "/v1/objects?after=ID&limit=N, POST /v1/missing, PUT|GET|HEAD|DELETE\n"      \
    "/v1/names/NAME, GET /v1/names?prefix=P&after=N&limit=N, GET /v1/info,\n"    \
    "POST /v1/verify?id=ID&repair=1 (both optional), POST\n"                     \
    "/v1/gc?older_than=SECONDS&dry_run=1 (both optional: 14 days, no),\n"        \
    "GET /health (503 when the store cannot be read), GET /metrics, and the\n"   \
    "Go system's POST /upload, GET /retrieve?hash=ID, POST /register, GET\n"     \
    "/get?hash=ID, GET /list.\n"                                                \
    "Stops on SIGTERM or SIGINT after the requests in flight. See mdbx(1).\n"

struct minidbx_server_config {
    const char *listen;
    unsigned threads;
    uint64_t max_object_bytes;      /* the store must be opened with it as max_object_size */
    unsigned max_connections;
    unsigned max_connections_per_ip;
    unsigned rate_limit_per_s;
    const char *read_token;
    const char *write_token;
    const char *tls_cert_file;
    const char *tls_key_file;
    unsigned idle_timeout_s;
    unsigned header_timeout_s;
    unsigned drain_timeout_s;
    uint64_t min_body_rate;         /* bytes/s, 0: no minimum */
    unsigned verified_cache_entries;
    uint64_t body_cache_bytes;      /* verified blob bytes kept in memory */
    const char *config_file;
    bool read_only;                 /* writes get 403 EREADONLY */
    bool sync_none;                 /* --sync none: open the store MINIDBX_SYNC_NONE */
    bool no_md5_aliases;            /* --md5-aliases off (proto_go.c) */
    const char *access_log;         /* --access-log FILE ("-": stderr), or NULL */
    bool access_log_json;           /* --access-log-format json */
    int log_level;                  /* --log-level: SERVE_LOG_WARN (0) by default */
    int io_model;                   /* --io-model: SERVE_IO_POOL (0) by default */
    unsigned commit_threads;        /* --commit-threads (pool only; 0: commit on the I/O threads) */
    const char *profile;            /* --profile, or NULL */
    unsigned long long explicit_settings; /* bit per setting given one by one (profiles skip them) */
    void *file_settings;            /* owned: the parsed config file, which strings point into */
};

/* One setting: its name is the command-line option's (--NAME) and the
 * config file's key. minidbx_server_settings ends with a NULL name. */
struct minidbx_server_setting {
    const char *name;
    bool takes_value;  /* false: a flag (read-only) */
};
extern const struct minidbx_server_setting minidbx_server_settings[];

/* Why a call failed. code MINIDBX_EINVAL: a setting cannot be used (text
 * says which and why: a usage error). Otherwise errnum, when not 0, is the
 * errno value of a failed system call on text (a file name, or "serve");
 * else text is the whole message. */
struct minidbx_server_error {
    int code;
    int errnum;
    char text[512];
};

/* The defaults (listen on 127.0.0.1:8001, 4 threads, 1 GiB objects, ...). */
void minidbx_server_config_init(struct minidbx_server_config *cfg);
/* Set the setting called name to value (NULL: a flag given without one).
 * cfg keeps the pointer: value must live as long as cfg. Returns 0 or
 * MINIDBX_EINVAL (unknown name, a value that does not parse). */
int minidbx_server_config_set(struct minidbx_server_config *cfg, const char *name,
                              const char *value, struct minidbx_server_error *err);
/* Read cfg->config_file (a JSON object of settings) and set what it says.
 * Returns 0, MINIDBX_EINVAL (not an object, an unknown or bad setting) or
 * MINIDBX_EIO (the file cannot be read: err->errnum). */
int minidbx_server_config_load(struct minidbx_server_config *cfg, struct minidbx_server_error *err);
/* Settings that are each valid but not together, or out of range: 0 or
 * MINIDBX_EINVAL. */
/* "profile NAME: threads 1, max-connections 64, ...": the values now of
 * the settings the profile has (sizes in bytes; "(given)" after one given
 * by itself, which the profile left alone); "" without a profile. */
void minidbx_server_profile_describe(const struct minidbx_server_config *cfg, char *out, size_t size);

int minidbx_server_config_check(const struct minidbx_server_config *cfg,
                                struct minidbx_server_error *err);
/* Free what minidbx_server_config_load kept. */
void minidbx_server_config_free(struct minidbx_server_config *cfg);

/* A node, ready to run. */
typedef struct minidbx_server minidbx_server;

/* Read what the node needs before it runs (the TLS files). cfg must stay
 * valid and unchanged until minidbx_server_free. Returns 0, MINIDBX_EIO
 * (a file cannot be read), MINIDBX_EUNSUPPORTED (TLS without TLS support)
 * or MINIDBX_ENOMEM. */
int minidbx_server_open(minidbx_server **out, const struct minidbx_server_config *cfg,
                        struct minidbx_server_error *err);
/* Listen and serve db until SIGTERM or SIGINT, then drain (the requests
 * in flight get drain_timeout_s) and return 0. Prints "listening on
 * URL" on stdout once it listens, and what happens (drain, stop) on
 * stderr. SIGTERM and SIGINT are blocked in the calling thread (and so in
 * every thread the node starts): send them to that thread or the process.
 * It raises the process's soft RLIMIT_NOFILE to the hard limit, and takes
 * fewer connections than max_connections (saying so on stderr) when that
 * limit cannot hold two descriptors per connection and a reserve (fds.c).
 * Errors: MINIDBX_EINVAL (--listen is no numeric ADDR:PORT), MINIDBX_EIO
 * (cannot listen, cannot start a thread, a limit on open files that holds
 * not one connection). */
int minidbx_server_run(minidbx_server *srv, minidbx *db, struct minidbx_server_error *err);
/* NULL is a no-op. */
void minidbx_server_free(minidbx_server *srv);

#endif /* MINIDBX_SERVER_H */
