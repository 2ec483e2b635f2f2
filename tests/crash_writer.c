/* crash_writer.c - the victim of test_crash: opens the store and puts
 * random objects forever (small ones inline, larger ones up to 256 KiB as
 * files; some through the streaming writer, some in batches), printing each
 * id on its own line and flushing only once the put (or the batch commit)
 * has returned. A line on stdout is a promise: that object is durable.
 *
 * usage: crash_writer STORE SEED
 * Exits non-zero (with a message on stderr) if a call fails. */
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define MAX_OBJECT (256u * 1024u)
#define MAX_BATCH 6

static test_rng rng;
static unsigned char buffer[MAX_OBJECT];

static void die(const char *what, int rc)
{
    fprintf(stderr, "crash_writer: %s: %s (%s)\n", what, minidbx_strerror(rc), minidbx_errmsg(NULL));
    exit(1);
}

/* Mostly small objects, a good share just over and well over the threshold. */
static size_t random_size(void)
{
    switch (rng_below(&rng, 4)) {
    case 0: return (size_t)rng_below(&rng, 256);
    case 1: return (size_t)rng_below(&rng, MINIDBX_DEFAULT_INLINE_THRESHOLD + 1);
    case 2: return MINIDBX_DEFAULT_INLINE_THRESHOLD + 1 + (size_t)rng_below(&rng, 1024);
    default: return (size_t)rng_below(&rng, MAX_OBJECT + 1);
    }
}

static minidbx_id put_one(minidbx *db)
{
    size_t size = random_size();
    rng_fill(&rng, buffer, size);
    minidbx_id id;
    int rc;
    if (rng_below(&rng, 4) == 0) {
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

static void print_id(const minidbx_id *id)
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    printf("%s\n", hex);
}

static void put_batch(minidbx *db)
{
    minidbx_id ids[MAX_BATCH];
    size_t n = 2 + (size_t)rng_below(&rng, MAX_BATCH - 1);
    int rc = minidbx_batch_begin(db);
    if (rc != 0)
        die("batch_begin", rc);
    for (size_t i = 0; i < n; i++)
        ids[i] = put_one(db);
    if ((rc = minidbx_batch_commit(db)) != 0)
        die("batch_commit", rc);
    for (size_t i = 0; i < n; i++)
        print_id(&ids[i]);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: crash_writer STORE SEED\n");
        return 2;
    }
    rng_seed(&rng, strtoull(argv[2], NULL, 10));
    minidbx *db = NULL;
    int rc = minidbx_open(&db, argv[1], NULL);
    if (rc != 0)
        die("open", rc);
    for (;;) {
        if (rng_below(&rng, 8) == 0) {
            put_batch(db);
        } else {
            minidbx_id id = put_one(db);
            print_id(&id);
            fflush(stdout);
        }
    }
}
