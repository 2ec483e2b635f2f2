/* crash_writer.c - the victim of test_crash: opens the store and puts
 * random objects forever (small ones inline, larger ones up to 256 KiB as
 * files; some through the streaming writer, some in batches), printing each
 * id on its own line and flushing only once the put (or the batch commit)
 * has returned. A line on stdout is a promise: that object is durable.
 *
 * With THREADS > 1, that many threads put at once on one handle (their
 * commits are grouped: see local_write_grouped), each printing what it was
 * acknowledged, a whole line at a time.
 *
 * usage: crash_writer STORE SEED [THREADS]
 * Exits non-zero (with a message on stderr) if a call fails. */
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OBJECT (256u * 1024u)
#define MAX_BATCH 6
#define MAX_THREADS 16

/* Each thread's own state. */
struct writer {
    minidbx *db;
    test_rng rng;
    unsigned char buffer[MAX_OBJECT];
};

static pthread_mutex_t stdout_lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what, int rc)
{
    fprintf(stderr, "crash_writer: %s: %s (%s)\n", what, minidbx_strerror(rc), minidbx_errmsg(NULL));
    exit(1);
}

/* Mostly small objects, a good share just over and well over the threshold. */
static size_t random_size(test_rng *rng)
{
    switch (rng_below(rng, 4)) {
    case 0: return (size_t)rng_below(rng, 256);
    case 1: return (size_t)rng_below(rng, MINIDBX_DEFAULT_INLINE_THRESHOLD + 1);
    case 2: return MINIDBX_DEFAULT_INLINE_THRESHOLD + 1 + (size_t)rng_below(rng, 1024);
    default: return (size_t)rng_below(rng, MAX_OBJECT + 1);
    }
}

static minidbx_id put_one(struct writer *wr)
{
    minidbx *db = wr->db;
    unsigned char *buffer = wr->buffer;
    size_t size = random_size(&wr->rng);
    rng_fill(&wr->rng, buffer, size);
    minidbx_id id;
    int rc;
    if (rng_below(&wr->rng, 4) == 0) {
        minidbx_writer *w = NULL;
        if ((rc = minidbx_writer_open(db, &w)) != 0)
            die("writer_open", rc);
        size_t half = size / 2;
        if ((rc = minidbx_writer_write(w, buffer, half)) != 0 ||
            (rc = minidbx_writer_write(w, buffer + half, size - half)) != 0)
            die("writer_write", rc);
        rc = minidbx_writer_commit(w, &id);
    } else {
        rc = minidbx_put(db, buffer, size, &id);
    }
    if (rc != 0)
        die("put", rc);
    return id;
}

/* Print acknowledged ids, whole lines only, then flush: the promise. */
static void print_ids(const minidbx_id *ids, size_t count)
{
    char hex[MINIDBX_ID_HEX_SIZE];
    pthread_mutex_lock(&stdout_lock);
    for (size_t i = 0; i < count; i++) {
        minidbx_id_format(&ids[i], hex);
        printf("%s\n", hex);
    }
    fflush(stdout);
    pthread_mutex_unlock(&stdout_lock);
}

static void put_batch(struct writer *wr)
{
    minidbx_id ids[MAX_BATCH];
    size_t n = 2 + (size_t)rng_below(&wr->rng, MAX_BATCH - 1);
    int rc = minidbx_batch_begin(wr->db);
    if (rc != 0)
        die("batch_begin", rc);
    for (size_t i = 0; i < n; i++)
        ids[i] = put_one(wr);
    if ((rc = minidbx_batch_commit(wr->db)) != 0)
        die("batch_commit", rc);
    print_ids(ids, n);
}

static void *write_forever(void *arg)
{
    struct writer *wr = arg;
    for (;;) {
        if (rng_below(&wr->rng, 8) == 0) {
            put_batch(wr);
        } else {
            minidbx_id id = put_one(wr);
            print_ids(&id, 1);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: crash_writer STORE SEED [THREADS]\n");
        return 2;
    }
    uint64_t seed = strtoull(argv[2], NULL, 10);
    long threads = argc == 4 ? strtol(argv[3], NULL, 10) : 1;
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "crash_writer: THREADS must be 1..%d\n", MAX_THREADS);
        return 2;
    }
    minidbx *db = NULL;
    int rc = minidbx_open(&db, argv[1], NULL);
    if (rc != 0)
        die("open", rc);
    static struct writer writers[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    for (long i = 0; i < threads; i++) {
        writers[i].db = db;
        rng_seed(&writers[i].rng, seed + (uint64_t)i * 0x9e3779b97f4a7c15ull);
    }
    for (long i = 1; i < threads; i++)
        if (pthread_create(&tids[i], NULL, write_forever, &writers[i]) != 0)
            die("pthread_create", MINIDBX_ENOMEM);
    write_forever(&writers[0]); /* until killed */
    return 0;
}
