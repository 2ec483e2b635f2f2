/* race_worker.c - one process of test_races: opens the store and does one
 * thing to it, so that the test can run several at once on one store and
 * hold each at a pause point (MINIDBX_TEST_PAUSE, set by the test in this
 * process's environment only).
 *
 * usage: race_worker STORE ACTION [ARGS]
 *   put SIZE SEED [NAME]   put SIZE seeded random bytes (test_rng), named in
 *                          the same step if NAME; prints "id HEX"
 *   put-then-name SIZE SEED NAME MARKER
 *                          put, then create MARKER and wait until it is
 *                          removed, then name_set: the two separate calls
 *                          that minidbx_writer_commit_named replaces
 *   verify | repair        prints "problem KIND HEX DETAIL" per problem
 *   gc | gc-grace          gc with no grace period, or the default
 *                          (14 days); prints "removed N"
 *   rm HEX                 delete with MINIDBX_DELETE_CASCADE
 *   name-keep NAME HEX     name_set_ex with MINIDBX_NAME_KEEP
 *   stress WORKER ITERATIONS
 *                          a bounded random mix of put+name, name delete,
 *                          rm, gc and verify; prints "named NAME HEX" and
 *                          "unnamed NAME" for what it was told is done,
 *                          "problem ..." for anything verify reports
 * Environment: RACE_WORKER_SYNC=none opens the store with durability
 * none; RACE_WORKER_BATCH=1 makes a put one batch of its own.
 * Every action ends with "rc CODE" (0 or a MINIDBX_E* code); the exit
 * status is 0 unless the worker itself could not run. It uses none of the
 * check assertions of util.h: they only work inside a running test. */
#include "util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STRESS_NAMES_MAX 256

static minidbx *db;

static void print_id(const char *tag, const minidbx_id *id)
{
    char hex[MINIDBX_ID_HEX_SIZE];
    minidbx_id_format(id, hex);
    printf("%s %s\n", tag, hex);
}

static int report_rc(int rc)
{
    if (rc < 0)
        fprintf(stderr, "race_worker: %s (%s)\n", minidbx_strerror(rc), minidbx_errmsg(NULL));
    printf("rc %d\n", rc);
    return 0;
}

/* The same bytes as test_races makes for (size, seed). */
static int put_seeded(size_t size, uint64_t seed, const char *name, minidbx_id *id)
{
    test_rng rng;
    rng_seed(&rng, seed);
    unsigned char *data = malloc(size ? size : 1); /* no check helpers outside a test */
    if (!data)
        return MINIDBX_ENOMEM;
    rng_fill(&rng, data, size);
    minidbx_writer *w = NULL;
    const char *batch = getenv("RACE_WORKER_BATCH");
    bool in_batch = batch && strcmp(batch, "1") == 0;
    int rc = in_batch ? minidbx_batch_begin(db) : 0;
    if (rc == 0)
        rc = minidbx_writer_open(db, &w);
    if (rc == 0 && (rc = minidbx_writer_write(w, data, size)) < 0)
        minidbx_writer_abort(w);
    else if (rc == 0)
        rc = name ? minidbx_writer_commit_named(w, name, id) : minidbx_writer_commit(w, id);
    if (in_batch)
        rc = rc == 0 ? minidbx_batch_commit(db) : (minidbx_batch_abort(db), rc);
    free(data);
    return rc;
}

static void wait_removed(const char *marker)
{
    struct timespec poll = { 0, 1000000L };
    FILE *f = fopen(marker, "w");
    if (f)
        fclose(f);
    for (int ms = 0; ms < 10000 && access(marker, F_OK) == 0; ms++)
        nanosleep(&poll, NULL);
}

static void print_problem(void *ctx, minidbx_problem kind, const minidbx_id *id, const char *detail,
                          int repaired)
{
    char hex[MINIDBX_ID_HEX_SIZE] = "-";
    (void)ctx;
    if (id)
        minidbx_id_format(id, hex);
    printf("problem %s %s %s%s\n", problem_kind_name(kind), hex, detail, repaired ? " (repaired)" : "");
}

static int verify(unsigned flags)
{
    minidbx_verify_report report;
    return minidbx_verify(db, NULL, flags, &report, print_problem, NULL);
}

/* One worker of the stress mix. Its bytes are its own (the seed has the
 * worker in it), so a cascade delete only ever drops its own names. */
static int stress(unsigned worker, unsigned iterations)
{
    struct {
        char name[64];
        minidbx_id id;
    } names[STRESS_NAMES_MAX];
    unsigned count = 0;
    test_rng rng;
    rng_seed(&rng, 1000 + worker);
    for (unsigned i = 0; i < iterations; i++) {
        unsigned op = (unsigned)rng_below(&rng, 100);
        int rc = 0;
        if (op < 50 && count < STRESS_NAMES_MAX) {
            size_t size = rng_below(&rng, 2) ? (size_t)rng_below(&rng, 1000)
                                              : MINIDBX_DEFAULT_INLINE_THRESHOLD + 1 + (size_t)rng_below(&rng, 50000);
            snprintf(names[count].name, sizeof names[count].name, "w%u/%u", worker, i);
            if ((rc = put_seeded(size, ((uint64_t)worker << 32) | i, names[count].name, &names[count].id)) == 0) {
                char hex[MINIDBX_ID_HEX_SIZE];
                minidbx_id_format(&names[count].id, hex);
                printf("named %s %s\n", names[count].name, hex);
                count++;
            }
        } else if (op < 75 && count > 0) {
            unsigned pick = (unsigned)rng_below(&rng, count);
            if (op < 62)
                rc = minidbx_name_delete(db, names[pick].name);
            else
                rc = minidbx_delete_ex(db, &names[pick].id, MINIDBX_DELETE_CASCADE);
            if (rc == 0)
                printf("unnamed %s\n", names[pick].name);
            names[pick] = names[--count];
        } else if (op < 87) {
            rc = test_gc_now(db, NULL);
        } else {
            rc = verify(op < 95 ? 0 : MINIDBX_VERIFY_REPAIR);
        }
        if (rc < 0)
            return rc;
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: race_worker STORE ACTION [ARGS]\n");
        return 2;
    }
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    const char *sync = getenv("RACE_WORKER_SYNC");
    if (sync && strcmp(sync, "none") == 0)
        opts.durability = MINIDBX_SYNC_NONE;
    int rc = minidbx_open(&db, argv[1], &opts);
    if (rc < 0) {
        fprintf(stderr, "race_worker: open %s: %s\n", argv[1], minidbx_errmsg(NULL));
        return 2;
    }
    const char *action = argv[2];
    minidbx_id id;
    if (strcmp(action, "put") == 0 && argc >= 5) {
        rc = put_seeded(strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10), argc > 5 ? argv[5] : NULL, &id);
        if (rc == 0)
            print_id("id", &id);
    } else if (strcmp(action, "put-then-name") == 0 && argc == 7) {
        if ((rc = put_seeded(strtoul(argv[3], NULL, 10), strtoull(argv[4], NULL, 10), NULL, &id)) == 0) {
            wait_removed(argv[6]);
            rc = minidbx_name_set(db, argv[5], &id);
        }
    } else if (strcmp(action, "verify") == 0 || strcmp(action, "repair") == 0) {
        rc = verify(strcmp(action, "repair") == 0 ? MINIDBX_VERIFY_REPAIR : 0);
    } else if (strcmp(action, "gc") == 0 || strcmp(action, "gc-grace") == 0) {
        minidbx_gc_report report = { 0, 0 };
        rc = strcmp(action, "gc") == 0 ? test_gc_now(db, &report) : minidbx_gc(db, &report);
        printf("removed %llu\n", (unsigned long long)report.objects_removed);
    } else if (strcmp(action, "name-keep") == 0 && argc == 5) {
        if ((rc = minidbx_id_parse(&id, argv[4])) == 0)
            rc = minidbx_name_set_ex(db, argv[3], &id, MINIDBX_NAME_KEEP);
    } else if (strcmp(action, "rm") == 0 && argc == 4) {
        rc = minidbx_id_parse(&id, argv[3]);
        if (rc == 0)
            rc = minidbx_delete_ex(db, &id, MINIDBX_DELETE_CASCADE);
    } else if (strcmp(action, "stress") == 0 && argc == 5) {
        rc = stress((unsigned)strtoul(argv[3], NULL, 10), (unsigned)strtoul(argv[4], NULL, 10));
    } else {
        fprintf(stderr, "race_worker: bad action or arguments\n");
        minidbx_close(db);
        return 2;
    }
    report_rc(rc);
    minidbx_close(db);
    return 0;
}
