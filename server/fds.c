/* fds.c - the node and its limit on open files (RLIMIT_NOFILE).
 *
 * A connection may hold two descriptors for as long as its client takes:
 * its socket, and the file its reply is sent from (a blob file, or a kept
 * body's memfd) or its upload is written to. A client that does not read
 * keeps both. Were the limit on open files to bind before
 * --max-connections, the node would find out at accept() (EMFILE), and
 * libmicrohttpd then stops accepting anyone until a connection closes:
 * a few hundred slow readers would shut everybody out for as long as
 * they like. So, before the node listens:
 *
 *   1. the soft limit is raised to the hard one (a process may; the common
 *      soft limit of 1024 is there for programs that use select(), which
 *      the node does not: it polls);
 *   2. if the limit still cannot hold 2 descriptors per connection plus
 *      a reserve, --max-connections is lowered to what it holds, with a
 *      warning naming both figures (lowered rather than refused, given or
 *      not: a node that serves fewer clients beats one that a supervisor
 *      restarts in a loop; the warning says how to serve them all). A
 *      limit that holds no connection at all stops the node.
 *
 * The reserve: the descriptors open when the node starts (the store's
 * LMDB files, the listening socket, the access log, /proc/self/statm,
 * whatever the caller inherited), two per I/O thread (libmicrohttpd's
 * wake-up eventfd, and a third descriptor for an instant while a handler
 * runs: a body's memfd is filled from the blob file before the blob file
 * closes), one per commit thread (the directory a durable put fsyncs),
 * the kept bodies' memfds under --io-model per-connection (cache.c), and
 * FDS_SPARE for what opens now and then (a verify or gc job's files,
 * the store's lock and shard directories, the access log's reopen). */
#include "node.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#define FDS_PER_CONNECTION 2u
#define FDS_SPARE 32u
/* Assumed open at start where /proc/self/fd cannot be read. */
#define FDS_OPEN_UNKNOWN 64u

/* Descriptors this process has open now. */
static unsigned fds_open_now(void)
{
    DIR *dir = opendir("/proc/self/fd");
    unsigned count = 0;

    if (!dir)
        return FDS_OPEN_UNKNOWN;
    for (struct dirent *e; (e = readdir(dir));)
        if (e->d_name[0] != '.')
            count++;
    closedir(dir);
    return count > 0 ? count - 1 : 0; /* not the directory's own */
}

static unsigned fds_reserved(const struct serve_server *srv)
{
    const struct minidbx_server_config *cfg = srv->cfg;
    unsigned threads = cfg->io_model == SERVE_IO_POOL ? cfg->threads : 0;
    unsigned commit_threads = cfg->io_model == SERVE_IO_POOL ? cfg->commit_threads : 0;

    return fds_open_now() + 2 * threads + commit_threads + serve_copy_fds_max(srv) + FDS_SPARE;
}

int serve_fds_fit(struct serve_server *srv, struct minidbx_server_error *err)
{
    const struct minidbx_server_config *cfg = srv->cfg;
    struct rlimit lim;

    srv->max_connections = cfg->max_connections;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return 0; /* nothing known: nothing to fit */
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t was = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
            lim.rlim_cur = was; /* not fatal: fit into what there is */
        else if (cfg->log_level >= SERVE_LOG_INFO)
            fprintf(stderr, "mdbx serve: raised the limit on open files from %llu to %llu\n",
                    (unsigned long long)was, (unsigned long long)lim.rlim_cur);
    }
    if (lim.rlim_cur == RLIM_INFINITY)
        return 0;
    unsigned long long limit = lim.rlim_cur, reserved = fds_reserved(srv);
    unsigned long long fit = limit > reserved ? (limit - reserved) / FDS_PER_CONNECTION : 0;
    if (fit == 0)
        return serve_error(err, MINIDBX_EIO, 0,
                           "the limit on open files (ulimit -n) is %llu: the node keeps %llu and each "
                           "connection may hold %u more; raise it", limit, reserved, FDS_PER_CONNECTION);
    if (fit < cfg->max_connections) {
        char hard[32] = "unlimited";
        if (lim.rlim_max != RLIM_INFINITY)
            snprintf(hard, sizeof hard, "%llu", (unsigned long long)lim.rlim_max);
        srv->max_connections = (unsigned)fit;
        fprintf(stderr, "mdbx serve: warning: --max-connections %u lowered to %llu: the limit on open "
                        "files (ulimit -n) is %llu (hard limit %s); the node keeps %llu and each connection "
                        "may hold %u. Raise the limit to %llu (ulimit -n, systemd's LimitNOFILE=) to serve "
                        "%u connections\n",
                cfg->max_connections, fit, limit, hard, reserved, FDS_PER_CONNECTION,
                reserved + (unsigned long long)FDS_PER_CONNECTION * cfg->max_connections, cfg->max_connections);
    }
    return 0;
}
