/* test_copy.c - minidbx_copy: everything or a selection, listing and name
 * pages (more than one of each), the name rule (the source wins, reported
 * with what it replaced; dst-only names stay), re-runs that copy nothing,
 * dry runs, a callback that stops the copy, a name whose object came to
 * src after src's listing, and bad arguments. The source is the fixture's
 * store (any backend of the matrix); the destination a local store. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* More than one page of each: 1,000 ids per missing query, 256 names. */
#define OBJECTS 1100
#define NAMES 300

struct events {
    unsigned objects, names, names_replaced, object_failures, name_failures, bytes;
    int stop_after_objects; /* return 7 after this many objects (0: never) */
    minidbx *src_to_add_to;  /* put and name an object in src at the first event */
    minidbx_id added;
    int added_done;
    char last_failed_name[MINIDBX_NAME_MAX + 1];
    int last_error;
};

static int count_event(void *ctx, const minidbx_copy_event *e, const minidbx_copy_report *r)
{
    struct events *ev = ctx;

    ck_assert_ptr_nonnull(r);
    switch (e->kind) {
    case MINIDBX_COPY_OBJECT: ev->objects++; break;
    case MINIDBX_COPY_NAME:
        ev->names++;
        ev->names_replaced += e->previous != NULL;
        break;
    case MINIDBX_COPY_OBJECT_FAILED: ev->object_failures++; ev->last_error = e->error; break;
    case MINIDBX_COPY_NAME_FAILED:
        ev->name_failures++;
        ev->last_error = e->error;
        snprintf(ev->last_failed_name, sizeof ev->last_failed_name, "%s", e->name);
        break;
    case MINIDBX_COPY_BYTES: ev->bytes++; break;
    }
    if (ev->src_to_add_to && !ev->added_done) {
        /* after src's listing: its object is not in it, its name will be */
        ev->added_done = 1;
        ck_assert_ok(minidbx_put(ev->src_to_add_to, "came late", 9, &ev->added));
        ck_assert_ok(minidbx_name_set(ev->src_to_add_to, "zz/late", &ev->added));
    }
    if (ev->stop_after_objects && ev->objects >= (unsigned)ev->stop_after_objects)
        return 7;
    return 0;
}

/* Stores without fsync: these tests are about what is copied, and
 * thousands of fsyncs would only make them slow. */
static minidbx *open_dst(const char *leaf)
{
    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    char path[PATH_MAX];

    opts.durability = MINIDBX_SYNC_NONE;
    snprintf(path, sizeof path, "%s/%s", fx_dir, leaf);
    return store_open_opts(path, &opts);
}

/* OBJECTS small objects in src, NAMES names over some of them. */
static void fill_source(minidbx_id *ids)
{
    test_rng rng;
    char name[64];

    minidbx_options opts = MINIDBX_OPTIONS_INIT;
    opts.durability = MINIDBX_SYNC_NONE;
    fx_db = fixture_reopen_opts(&opts);
    rng_seed(&rng, 42);
    for (size_t i = 0; i < OBJECTS; i++)
        ids[i] = store_put_random(fx_db, &rng, 1 + rng_below(&rng, 300));
    for (size_t i = 0; i < NAMES; i++) {
        snprintf(name, sizeof name, "n/%05zu", i * 3);
        ck_assert_ok(minidbx_name_set(fx_db, name, &ids[i]));
    }
}

static size_t count_names(minidbx *db)
{
    minidbx_name_info page[100];
    size_t total = 0, count;
    char after[MINIDBX_NAME_MAX + 1] = "";

    do {
        ck_assert_ok(minidbx_name_list(db, NULL, total ? after : NULL, page, 100, &count));
        total += count;
        if (count)
            snprintf(after, sizeof after, "%s", page[count - 1].name);
    } while (count == 100);
    return total;
}

START_TEST(copy_everything_then_nothing)
{
    minidbx_id *ids = calloc(OBJECTS, sizeof *ids);
    minidbx *dst = open_dst("dst");
    minidbx_copy_report report;
    struct events ev = { 0 };
    minidbx_name_info info;
    char name[64];

    fill_source(ids);
    /* dst already has some: an object, names equal, names elsewhere, its own names */
    ck_assert_ok(minidbx_put(dst, "dst's own", 9, NULL));
    for (size_t i = 0; i < NAMES; i += 7) {
        snprintf(name, sizeof name, "n/%05zu", i * 3);
        minidbx_id id;
        ck_assert_ok(minidbx_put(dst, "elsewhere", 9, &id));
        ck_assert_ok(minidbx_name_set(dst, name, &id));
        snprintf(name, sizeof name, "n/%05zu-dst-only", i * 3);
        ck_assert_ok(minidbx_name_set(dst, name, &id));
    }
    ck_assert_ok(minidbx_copy(fx_db, dst, NULL, &report, count_event, &ev));
    ck_assert_uint_eq(report.objects_checked, OBJECTS);
    ck_assert_uint_eq(report.objects_copied, OBJECTS);
    ck_assert_uint_eq(report.objects_present, 0);
    ck_assert_uint_eq(report.names_set, NAMES);
    ck_assert_uint_eq(report.names_unchanged, 0);
    ck_assert_int_eq(report.listing_done, 1);
    ck_assert_uint_eq(ev.objects, OBJECTS);
    ck_assert_uint_eq(ev.names, NAMES);
    ck_assert_uint_eq(ev.names_replaced, (NAMES + 6) / 7);
    ck_assert_uint_eq(ev.object_failures + ev.name_failures, 0);
    for (size_t i = 0; i < OBJECTS; i++)
        ck_assert_int_eq(minidbx_exists(dst, &ids[i]), 1);
    for (size_t i = 0; i < NAMES; i++) {
        snprintf(name, sizeof name, "n/%05zu", i * 3);
        ck_assert_ok(minidbx_name_get(dst, name, &info));
        ck_assert(minidbx_id_equal(&info.id, &ids[i])); /* the source won */
    }
    ck_assert_uint_eq(count_names(dst), NAMES + (NAMES + 6) / 7); /* dst's own stayed */

    memset(&ev, 0, sizeof ev);
    ck_assert_ok(minidbx_copy(fx_db, dst, NULL, &report, count_event, &ev));
    ck_assert_uint_eq(report.objects_copied, 0);
    ck_assert_uint_eq(report.bytes_copied, 0);
    ck_assert_uint_eq(report.bytes_sent, 0);
    ck_assert_uint_eq(report.objects_present, OBJECTS);
    ck_assert_uint_eq(report.names_set, 0);
    ck_assert_uint_eq(report.names_unchanged, NAMES);
    ck_assert_uint_eq(ev.objects + ev.names + ev.bytes, 0);
    minidbx_close(dst);
    free(ids);
}
END_TEST

START_TEST(dry_run_changes_nothing)
{
    minidbx_id *ids = calloc(OBJECTS, sizeof *ids);
    minidbx *dst = open_dst("dst");
    minidbx_copy_options opts = MINIDBX_COPY_OPTIONS_INIT;
    minidbx_copy_report report;
    struct events ev = { 0 };

    fill_source(ids);
    ck_assert_ok(minidbx_put(dst, "x", 1, NULL));
    ck_assert_ok(minidbx_copy(fx_db, dst, NULL, NULL, NULL, NULL)); /* a first copy, no report */
    ck_assert_ok(minidbx_delete_ex(dst, &ids[0], MINIDBX_DELETE_CASCADE));
    ck_assert_ok(minidbx_delete(dst, &ids[OBJECTS - 1]));
    opts.flags = MINIDBX_COPY_DRY_RUN;
    ck_assert_ok(minidbx_copy(fx_db, dst, &opts, &report, count_event, &ev));
    ck_assert_uint_eq(report.objects_copied, 2);
    ck_assert_uint_eq(report.names_set, 1);
    ck_assert_uint_eq(ev.objects, 2);
    ck_assert_uint_eq(ev.names, 1);
    ck_assert_int_eq(minidbx_exists(dst, &ids[0]), 0);
    ck_assert_int_eq(minidbx_exists(dst, &ids[OBJECTS - 1]), 0);
    /* a dry run needs no writable destination */
    minidbx_close(dst);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/dst", fx_dir);
    dst = store_open(path, MINIDBX_OPEN_READONLY);
    ck_assert_ok(minidbx_copy(fx_db, dst, &opts, &report, NULL, NULL));
    ck_assert_uint_eq(report.objects_copied, 2);
    opts.flags = 0;
    ck_assert_rc(minidbx_copy(fx_db, dst, &opts, &report, NULL, NULL), MINIDBX_EREADONLY);
    minidbx_close(dst);
    free(ids);
}
END_TEST

START_TEST(only_what_is_given)
{
    minidbx_id ids[3], absent;
    minidbx *dst = open_dst("dst");
    minidbx_copy_options opts = MINIDBX_COPY_OPTIONS_INIT;
    minidbx_copy_report report;
    struct events ev = { 0 };
    const char *names[] = { "b", "nobody" };
    minidbx_name_info info;

    ck_assert_ok(minidbx_put(fx_db, "one", 3, &ids[0]));
    ck_assert_ok(minidbx_put(fx_db, "two", 3, &ids[1]));
    ck_assert_ok(minidbx_put(fx_db, "three", 5, &ids[2]));
    ck_assert_ok(minidbx_name_set(fx_db, "a", &ids[0]));
    ck_assert_ok(minidbx_name_set(fx_db, "b", &ids[1]));
    ck_assert_ok(minidbx_id_of(&absent, "absent", 6));
    minidbx_id given[] = { ids[2], ids[2], ids[1] };
    opts.ids = given;
    opts.id_count = 3;
    opts.names = names;
    opts.name_count = 1;
    ck_assert_ok(minidbx_copy(fx_db, dst, &opts, &report, count_event, &ev));
    ck_assert_uint_eq(report.objects_copied, 2); /* ids[1] given twice over, ids[2] twice */
    ck_assert_uint_eq(report.names_set, 1);
    ck_assert_int_eq(minidbx_exists(dst, &ids[0]), 0);
    ck_assert_ok(minidbx_name_get(dst, "b", &info));
    ck_assert_rc(minidbx_name_get(dst, "a", &info), MINIDBX_ENOTFOUND);

    /* a name src lacks and an id src lacks: reported, the rest goes on */
    memset(&ev, 0, sizeof ev);
    given[0] = absent;
    opts.id_count = 1;
    opts.name_count = 2;
    ck_assert_rc(minidbx_copy(fx_db, dst, &opts, &report, count_event, &ev), MINIDBX_ENOTFOUND);
    ck_assert_uint_eq(report.names_failed, 1);
    ck_assert_uint_eq(report.objects_failed, 1);
    ck_assert_uint_eq(report.names_unchanged, 1);
    ck_assert_str_eq(ev.last_failed_name, "nobody");
    ck_assert_ptr_nonnull(strstr(minidbx_errmsg(NULL), "1 object and 1 name could not be copied"));
    minidbx_close(dst);
}
END_TEST

START_TEST(callback_stops_the_copy)
{
    minidbx_id *ids = calloc(OBJECTS, sizeof *ids);
    minidbx *dst = open_dst("dst");
    minidbx_copy_options opts = MINIDBX_COPY_OPTIONS_INIT;
    minidbx_copy_report report;
    struct events ev = { .stop_after_objects = 10 };
    minidbx_verify_report verify;

    fill_source(ids);
    opts.threads = 3;
    ck_assert_int_eq(minidbx_copy(fx_db, dst, &opts, &report, count_event, &ev), 7);
    ck_assert_uint_ge(report.objects_copied, 10);
    ck_assert_uint_lt(report.objects_copied, OBJECTS / 2); /* it stopped soon */
    ck_assert_uint_eq(report.names_set, 0);
    ck_assert_uint_eq(store_object_count(dst), report.objects_copied);
    ck_assert_ok(minidbx_verify(dst, NULL, 0, &verify, NULL, NULL));
    ck_assert_uint_eq(verify.problems, 0);
    /* and a re-run finishes it */
    ck_assert_ok(minidbx_copy(fx_db, dst, NULL, &report, NULL, NULL));
    ck_assert_uint_eq(store_object_count(dst), OBJECTS);
    minidbx_close(dst);
    free(ids);
}
END_TEST

START_TEST(name_whose_object_came_after_the_listing)
{
    minidbx *dst = open_dst("dst");
    minidbx_copy_report report;
    struct events ev = { .src_to_add_to = fx_db };
    minidbx_name_info info;
    test_rng rng;

    rng_seed(&rng, 7);
    for (int i = 0; i < 20; i++)
        store_put_random(fx_db, &rng, 100);
    ck_assert_ok(minidbx_copy(fx_db, dst, NULL, &report, count_event, &ev));
    ck_assert_int_eq(ev.added_done, 1);
    ck_assert_ok(minidbx_name_get(dst, "zz/late", &info));
    ck_assert(minidbx_id_equal(&info.id, &ev.added));
    ck_assert_int_eq(minidbx_exists(dst, &ev.added), 1);
    ck_assert_uint_eq(report.objects_copied, 21);
    minidbx_close(dst);
}
END_TEST

/* Large objects in flight: those that sent bytes and are not done yet. */
struct in_flight {
    minidbx_id ids[16];
    unsigned count, most;
};

static int track_large(void *ctx, const minidbx_copy_event *e, const minidbx_copy_report *r)
{
    struct in_flight *f = ctx;
    unsigned i = 0;

    (void)r;
    while (i < f->count && !minidbx_id_equal(&f->ids[i], e->id))
        i++;
    if (e->kind == MINIDBX_COPY_BYTES && i == f->count) {
        ck_assert_uint_lt(f->count, 16);
        f->ids[f->count++] = *e->id;
        f->most = f->count > f->most ? f->count : f->most;
    } else if (e->kind == MINIDBX_COPY_OBJECT && i < f->count) {
        f->ids[i] = f->ids[--f->count];
    }
    return 0;
}

START_TEST(large_objects_one_at_a_time)
{
    minidbx *dst = open_dst("dst");
    minidbx_copy_options opts = MINIDBX_COPY_OPTIONS_INIT;
    minidbx_copy_report report;
    struct in_flight flight = { .count = 0 };
    test_rng rng;

    rng_seed(&rng, 9);
    for (int i = 0; i < 6; i++)
        store_put_random(fx_db, &rng, (9u << 20) + (unsigned)i); /* over 8 MiB */
    for (int i = 0; i < 50; i++)
        store_put_random(fx_db, &rng, 1000);
    opts.threads = 8;
    ck_assert_ok(minidbx_copy(fx_db, dst, &opts, &report, track_large, &flight));
    ck_assert_uint_eq(report.objects_copied, 56);
    ck_assert_uint_eq(flight.count, 0);
    ck_assert_uint_eq(flight.most, 1);
    minidbx_close(dst);
}
END_TEST

/* Flip a byte of the inline object whose bytes are data, in meta.lmdb. */
static void corrupt_inline(const char *store, const unsigned char *data, size_t size)
{
    char path[PATH_MAX];
    size_t file_size;
    unsigned char *file;

    store_path(store, "meta.lmdb", path);
    file = file_read_all(path, &file_size);
    ck_assert_ptr_nonnull(file);
    unsigned char *at = memmem(file, file_size, data, size);
    ck_assert_ptr_nonnull(at);
    at[size / 2] ^= 0xff;
    ck_assert_int_eq(file_write_all(path, file, file_size), 0);
    free(file);
}

/* Small objects go through a batch on dst: a corrupt one among them is
 * reported from the source and not copied, whether src's reader catches
 * it or, with MINIDBX_OPEN_NO_VERIFY, the writer's expected id does. */
START_TEST(corrupt_small_object_is_not_copied)
{
    static const unsigned open_flags[] = { 0, MINIDBX_OPEN_NO_VERIFY };
    char src_dir[PATH_MAX], leaf[16];
    unsigned char bytes[10][1000];
    minidbx_id ids[10];
    test_rng rng;
    minidbx *src;

    snprintf(src_dir, sizeof src_dir, "%s/src", fx_dir);
    src = store_open(src_dir, 0);
    rng_seed(&rng, 11);
    for (int i = 0; i < 10; i++) {
        rng_fill(&rng, bytes[i], sizeof bytes[i]);
        ck_assert_ok(minidbx_put(src, bytes[i], sizeof bytes[i], &ids[i]));
    }
    minidbx_close(src);
    corrupt_inline(src_dir, bytes[3], sizeof bytes[3]);
    for (int run = 0; run < 2; run++) {
        struct events ev = { 0 };
        minidbx_copy_report report;
        snprintf(leaf, sizeof leaf, "dst%d", run);
        minidbx *dst = open_dst(leaf);
        src = store_open(src_dir, open_flags[run] | MINIDBX_OPEN_READONLY);
        ck_assert_rc(minidbx_copy(src, dst, NULL, &report, count_event, &ev), MINIDBX_ECORRUPT);
        ck_assert_uint_eq(report.objects_failed, 1);
        ck_assert_uint_eq(report.objects_copied, 9);
        ck_assert_uint_eq(ev.object_failures, 1);
        ck_assert_int_eq(ev.last_error, MINIDBX_ECORRUPT);
        ck_assert_int_eq(minidbx_exists(dst, &ids[3]), 0);
        ck_assert_uint_eq(store_object_count(dst), 9);
        minidbx_close(src);
        minidbx_close(dst);
    }
}
END_TEST

/* A copy from a local store of many small (inline) objects: their bytes
 * live in the LMDB map, whose pages a read leaves mapped in the process
 * (and the kernel maps more about each touch); the copy lets them go as it
 * goes (dbx_local_drop_pages, past 16 MiB), so its peak RSS grows by about
 * 20 MiB, not by the 47 MiB of pages that the source's 6,000 x 4 KiB take
 * (69 MiB without: measured). Measured in a child: its peak RSS before
 * and after the copy. */
#define PAGES_OBJECTS 6000
#define PAGES_GROWTH_MAX_KIB (32 * 1024)

static long peak_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static int copy_growth_child(void *arg)
{
    char src_dir[PATH_MAX], dst_dir[PATH_MAX];
    snprintf(src_dir, sizeof src_dir, "%s/src", (const char *)arg);
    snprintf(dst_dir, sizeof dst_dir, "%s/dst", (const char *)arg);
    minidbx *src = store_open(src_dir, MINIDBX_OPEN_READONLY);
    minidbx *dst = store_open(dst_dir, 0);
    minidbx_copy_report report;
    long before = peak_kib();
    int rc = minidbx_copy(src, dst, NULL, &report, NULL, NULL);
    long growth = peak_kib() - before;
    printf("copy of %llu objects of 4 KiB from a local store: peak RSS grew by %ld KiB\n",
           (unsigned long long)report.objects_copied, growth);
    fflush(stdout); /* the child leaves with _exit */
    minidbx_close(src);
    minidbx_close(dst);
    if (rc != 0 || report.objects_copied != PAGES_OBJECTS)
        return 1;
    return !TEST_UNDER_ASAN && growth > PAGES_GROWTH_MAX_KIB ? 2 : 0;
}

START_TEST(local_source_pages_let_go)
{
    char src_dir[PATH_MAX];
    unsigned char bytes[4096];
    test_rng rng;

    snprintf(src_dir, sizeof src_dir, "%s/src", fx_dir);
    minidbx *src = store_open(src_dir, 0);
    rng_seed(&rng, 12);
    ck_assert_ok(minidbx_batch_begin(src));
    for (int i = 0; i < PAGES_OBJECTS; i++) {
        rng_fill(&rng, bytes, sizeof bytes);
        ck_assert_ok(minidbx_put(src, bytes, sizeof bytes, NULL));
    }
    ck_assert_ok(minidbx_batch_commit(src));
    minidbx_close(src);
    /* 2: it copied them all, but its RSS grew by more than the bound */
    ck_assert_int_eq(run_in_child(copy_growth_child, fx_dir, NULL), 0);
}
END_TEST

START_TEST(bad_arguments)
{
    minidbx *dst = open_dst("dst");
    minidbx_copy_options opts = MINIDBX_COPY_OPTIONS_INIT;
    const char *bad_name[] = { "/abs" };

    ck_assert_rc(minidbx_copy(NULL, dst, NULL, NULL, NULL, NULL), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_copy(fx_db, NULL, NULL, NULL, NULL, NULL), MINIDBX_EINVAL);
    ck_assert_rc(minidbx_copy(dst, dst, NULL, NULL, NULL, NULL), MINIDBX_EINVAL);
    opts.threads = 65;
    ck_assert_rc(minidbx_copy(fx_db, dst, &opts, NULL, NULL, NULL), MINIDBX_EINVAL);
    opts.threads = 64;
    opts.flags = 0x80;
    ck_assert_rc(minidbx_copy(fx_db, dst, &opts, NULL, NULL, NULL), MINIDBX_EINVAL);
    opts.flags = 0;
    opts.id_count = 1;
    ck_assert_rc(minidbx_copy(fx_db, dst, &opts, NULL, NULL, NULL), MINIDBX_EINVAL);
    opts.id_count = 0;
    opts.names = bad_name;
    opts.name_count = 1;
    ck_assert_rc(minidbx_copy(fx_db, dst, &opts, NULL, NULL, NULL), MINIDBX_EINVAL);
    opts.version = 0;
    opts.name_count = 0;
    ck_assert_rc(minidbx_copy(fx_db, dst, &opts, NULL, NULL, NULL), MINIDBX_EINVAL);
    /* 64 threads on an empty store */
    opts.version = MINIDBX_COPY_OPTIONS_VERSION;
    ck_assert_ok(minidbx_copy(fx_db, dst, &opts, NULL, NULL, NULL));
    minidbx_close(dst);
}
END_TEST

static Suite *copy_suite(void)
{
    Suite *s = suite_create("copy");
    TCase *tc = tcase_with_store("copy", TEST_TIMEOUT_LONG_S);
    tcase_add_test(tc, copy_everything_then_nothing);
    tcase_add_test(tc, dry_run_changes_nothing);
    tcase_add_test(tc, only_what_is_given);
    tcase_add_test(tc, callback_stops_the_copy);
    tcase_add_test(tc, name_whose_object_came_after_the_listing);
    tcase_add_test(tc, large_objects_one_at_a_time);
    tcase_add_test(tc, corrupt_small_object_is_not_copied);
    tcase_add_test(tc, bad_arguments);
    tcase_add_test_needs(tc, local_source_pages_let_go, TEST_CAP_FILES);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return run_suite(copy_suite());
}
