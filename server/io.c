/* io.c - how connections get threads (--io-model), and how many
 * allocator arenas they share.
 *
 *   pool            --threads threads, each polling many connections
 *   (default)       (libmicrohttpd's thread pool).
 *   per-connection  libmicrohttpd's thread per connection: each open
 *                   connection (at most --max-connections; idle ones are
 *                   dropped after --idle-timeout, slow ones by limits.c)
 *                   has a thread that polls it alone. A request that
 *                   blocks (a durable PUT waiting for its flush, a
 *                   gateway waiting for its nodes) blocks only its own
 *                   connection, so concurrent durable writes share one
 *                   commit and flush instead of queueing behind the few
 *                   threads of a pool; and libmicrohttpd 0.9.75 sends an
 *                   fd body in 2 MiB sendfile pieces in this mode (128 KiB
 *                   in a pool, each after a poll round of its own), so a
 *                   kept body (a sealed memfd, cache.c) goes out in one
 *                   call. The prices: a poll and a thread switch per
 *                   request (a 4 KiB GET costs more CPU than in a pool),
 *                   and at --max-connections libmicrohttpd 0.9.75 accepts
 *                   and closes a new connection at once, where a pool
 *                   leaves it waiting in the kernel's backlog.
 *
 * A thread per connection also means an allocator arena per thread in
 * glibc (up to 8 per core), each keeping its freed memory: with 64
 * writers that was 22 MiB of heap instead of 4, so the arenas are capped
 * at one per core. So they are in a pool, whose I/O threads and commit
 * threads (commit.c) are 20 by default: under 64 durable writers the heap
 * peaked at 10.6 MiB uncapped, 5.9 capped. */
#include "node.h"

#include <malloc.h>
#include <unistd.h>

unsigned serve_io_flags(const struct minidbx_server_config *cfg)
{
    return cfg->io_model == SERVE_IO_PER_CONNECTION ? MHD_USE_THREAD_PER_CONNECTION : 0;
}

void serve_io_options(const struct minidbx_server_config *cfg, struct MHD_OptionItem out[2])
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    mallopt(M_ARENA_MAX, cores > 0 ? (int)cores : 1);
    out[1] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
    if (cfg->io_model == SERVE_IO_POOL)
        out[0] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, cfg->threads, NULL };
    else
        out[0] = out[1];
}
