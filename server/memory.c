/* memory.c - what keeps the node's resident memory bounded however long
 * it runs and however big its store grows.
 *
 * What grew (peak RSS 40-47 MiB under 64 clients putting 4 KiB, and
 * 19-39 MiB for eight 50 MiB uploads measured after them) was not the
 * heap but the metadata map. LMDB reads its B-tree through a read-only
 * shared mapping of meta.lmdb, and every page fault on a file mapping maps
 * the 64 KiB around the page that is in the page cache (the kernel's
 * fault-around), so each leaf that a random 32-byte key touches adds up to
 * 64 KiB to RSS: about 1 MiB per 800 inline objects put, until the whole
 * file is resident. Those pages are clean page cache, shared with every
 * other reader of the file and dropped by the kernel first; but they count
 * in RSS, and so against the node's memory budget.
 *
 * So every CHECK_EVERY_REQUESTS requests a worker thread looks at the
 * file-backed part of RSS (one pread of /proc/self/statm), and once it
 * has grown by TRIM_GROWTH_BYTES since the last trim, it unmaps the pages
 * of every read-only shared mapping of a store's meta.lmdb (madvise
 * MADV_DONTNEED): LMDB's map (and any other store's, as a cluster
 * gateway's local nodes), never code, libraries or the heap. The check runs where the
 * pages are faulted in, as requests end, so it keeps pace with any load
 * without a timer (a thread that looked every 10 ms let RSS climb to
 * 39 MiB at 4,400 puts/s: right after a trim every put faults its path
 * in again). A node grows only by serving requests; a verify or gc job,
 * which reads the whole map, is trimmed when its request ends, and a
 * commit thread (commit.c) checks every few puts of a batch, which fault
 * in the paths of all their keys at once. A fault maps a whole folio of
 * the page cache, not one page: on this kernel (6.18, ext4) 64-256 KiB
 * of the file around each leaf LMDB reads, so a batch of 30 puts mapped
 * about 6 MiB before the check that followed it. Nothing
 * is lost or written: the pages stay in the page cache, and the next read
 * faults them in again (a minor fault). It is safe because such a mapping
 * stays where it is while the node runs: the store is opened before the
 * node starts and closed after it stops (LMDB maps its whole map size
 * once, at open, and never moves it), so an address read from
 * /proc/self/maps still belongs to the same mapping when it is advised.
 * Only maps of a store's meta.lmdb are advised: another read-only shared
 * file mapping (a name-service cache a lookup maps for a moment) may be
 * unmapped between the read and the madvise, and its addresses reused by
 * an anonymous mapping (a cached body, the heap), which the advice would
 * zero.
 *
 * The heap is bounded by the bounds on requests (bodies are streamed,
 * connection pools are CONNECTION_MEMORY_BYTES, the caches are fixed;
 * cache.c maps its copies itself, so they go back to the system when
 * freed): under 64 PUT clients it stays near 4-7 MiB (RssAnon), its free
 * pages given back now and then (trim_heap). glibc's thresholds are left
 * as they are: fixing its mmap or trim threshold stops
 * glibc from raising the mmap threshold, and then every write
 * transaction's LMDB page lists (3 MiB per nested transaction, one per
 * grouped write) are mmap'ed, faulted in and unmapped again, which slowed
 * a node under a cluster repair's copies until its peers' 1 s deadlines
 * marked it down. */
#include "node.h"

#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CHECK_EVERY_REQUESTS 8
/* A trim reads /proc/self/maps, which the kernel formats line by line:
 * at 1 MiB, 64 clients putting 4 KiB made a thousand trims a second and
 * spent a tenth of the node's CPU in them (perf); at 2 MiB the same load
 * did 11,200-13,000 puts/s against 9,500-11,200, its peak RSS 24.6-25.9
 * MiB against 23.2-25.5 (alternating runs of 8 s). */
#define TRIM_GROWTH_BYTES (2u << 20)
/* The heap is given back with the map, at most this often. */
#define HEAP_TRIM_EVERY_NS (100 * 1000 * 1000)

struct serve_memory {
    pthread_mutex_t trim_lock;  /* held by the one thread trimming */
    atomic_llong since;         /* file-backed RSS after the last trim */
    int64_t heap_trimmed_ns;    /* the last malloc_trim (under trim_lock) */
    int statm_fd;               /* /proc/self/statm, kept open; -1: no /proc */
    long page_bytes;
};

/* The file-backed resident bytes (statm's "shared": file and shmem
 * pages), or -1. */
static long long file_resident_bytes(struct serve_memory *mem)
{
    char text[128];
    long long size, resident, shared;
    ssize_t n = pread(mem->statm_fd, text, sizeof text - 1, 0);

    if (n <= 0)
        return -1;
    text[n] = '\0';
    if (sscanf(text, "%lld %lld %lld", &size, &resident, &shared) != 3)
        return -1;
    return shared * mem->page_bytes;
}

/* Is the mapping of the file at path a store's LMDB map? */
static bool is_store_map(const char *path)
{
    size_t len = strcspn(path, "\n");
    static const char name[] = "/meta.lmdb";
    return len >= sizeof name - 1 && memcmp(path + len - (sizeof name - 1), name, sizeof name - 1) == 0;
}

/* madvise(MADV_DONTNEED) every read-only shared mapping of a store's
 * meta.lmdb (see the top of the file): returns how many. */
static unsigned trim_file_mappings(void)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[4096];
    unsigned trimmed = 0;

    if (!maps)
        return 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long start, end;
        char perms[8];
        int path_at = 0;
        if (!strstr(line, "/meta.lmdb")) /* most lines: not worth parsing */
            continue;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &start, &end, perms, &path_at) != 3)
            continue;
        /* read-only, shared, and a store's LMDB file */
        if (strcmp(perms, "r--s") != 0 || line[path_at] != '/' || !is_store_map(line + path_at))
            continue;
        if (madvise((void *)start, end - start, MADV_DONTNEED) == 0)
            trimmed++;
    }
    fclose(maps);
    return trimmed;
}

/* Give glibc's free heap pages back (malloc_trim: madvise on the free
 * chunks of every arena), at most every HEAP_TRIM_EVERY_NS; under
 * trim_lock. Under 64 durable writers, load after load, the heap kept what
 * closed connections' pools and finished writers had freed: 7 MiB in the
 * first load, 9.5 in the third, against 7 in each with this. Its
 * thresholds stay glibc's own (see the top of the file). */
static void trim_heap(struct serve_memory *mem)
{
    int64_t now = serve_now_ns();

    if (now - mem->heap_trimmed_ns < HEAP_TRIM_EVERY_NS)
        return;
    mem->heap_trimmed_ns = now;
    malloc_trim(0);
}

void serve_memory_check(struct serve_server *srv)
{
    struct serve_memory *mem = srv->memory;

    if (mem->statm_fd < 0)
        return;
    long long now = file_resident_bytes(mem), since = atomic_load(&mem->since);
    if (now >= 0 && now < since)
        atomic_store(&mem->since, now); /* the kernel reclaimed some: measure from there */
    if (now < 0 || now - since < (long long)TRIM_GROWTH_BYTES ||
        pthread_mutex_trylock(&mem->trim_lock) != 0)
        return; /* another thread is at it */
    if (trim_file_mappings())
        atomic_fetch_add(&srv->metrics.memory_trims, 1);
    trim_heap(mem);
    atomic_store(&mem->since, file_resident_bytes(mem));
    pthread_mutex_unlock(&mem->trim_lock);
}

void serve_memory_request_done(struct serve_server *srv)
{
    static _Thread_local unsigned requests;

    if (++requests % CHECK_EVERY_REQUESTS == 0)
        serve_memory_check(srv);
}

int serve_memory_start(struct serve_server *srv)
{
    struct serve_memory *mem = calloc(1, sizeof *mem);

    if (!mem)
        return ENOMEM;
    mem->page_bytes = sysconf(_SC_PAGESIZE);
    /* without /proc there is nothing to measure by: no trimming */
    mem->statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    pthread_mutex_init(&mem->trim_lock, NULL);
    atomic_init(&mem->since, mem->statm_fd >= 0 ? file_resident_bytes(mem) : 0);
    srv->memory = mem;
    return 0;
}

void serve_memory_stop(struct serve_server *srv)
{
    struct serve_memory *mem = srv->memory;

    if (!mem)
        return;
    pthread_mutex_destroy(&mem->trim_lock);
    if (mem->statm_fd >= 0)
        close(mem->statm_fd);
    free(mem);
    srv->memory = NULL;
}
